//! Object storage for the evidence store (S3, GCS, Azure, or a mounted filesystem through `file://`), so that the
//! local disk holds only the last few hours.
//!
//! The uploader's thread is [`super::upload`]; this module holds the URL, the store's marker and the client.
//!
//! In: files the writer hands over once their hour is compacted (`hour + 1 h + compact_after_hours` behind the
//! pipeline's clock): it moves them, whole, from `DIR/<table>/hour=…/` to `DIR/_upload/<table>/hour=…/`, then
//! nudges the uploader with the clock. Out: each such file put under the URL's prefix at the same relative name
//! (`<prefix>/<table>/hour=…/<file>`), then deleted locally; remote hours older than `retention_days` deleted. For
//! readers, [`Remote`] lists a table's remote hours and fetches a file's batches. State: on the uploader's own
//! thread, a one-worker tokio runtime and the store's client, the newest clock it was given and the last clock hour
//! whose retention it applied; nothing in the pipeline's thread.
//!
//! An upload is one `PUT` (or, past 8 MiB, a multipart upload), which object stores make visible all at once. A
//! file stays in `_upload/` until its upload succeeded, so a failure or a crash loses nothing: the next pass (every
//! nudge, and every 30 s after a failure) puts it again under the same name; a file that keeps failing does not
//! hold up the others. Only the writer creates and removes `_upload/` folders; the uploader deletes files only.
//!
//! One prefix belongs to one store: the directory's `object_store.json` names the URL and a random store id, and
//! the first upload claims the prefix by writing that id to `<prefix>/_quench_store.json`. A store whose id is not
//! the claimed one (another directory pointed at the same URL, say a test replay with production's configuration)
//! does not open and its readers refuse the prefix, rather than mix two stores' rows. Readers (`quench query`,
//! `session`, `explain`, `ocsf`, `backtest`) find the remote hours from the directory alone and read a name found
//! in two places once. Credentials and endpoints come from the environment, as the vendors' own tools read them
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, …); a URL carrying credentials (user info, a query such as a SAS token) is
//! refused, so none is ever written to the store or to a log.
//!
//! Without the `object-store` cargo feature the module still parses the setting, and refuses it by name.

#[cfg(feature = "object-store")]
use super::hour_of_dir;
#[cfg(any(feature = "object-store", test))]
use super::safe_name;
use super::tables::TableKind;
use super::{io, EvidenceError};
use crate::event::Ts;
use arrow_array::RecordBatch;
use std::path::Path;
#[cfg(feature = "object-store")]
use std::path::PathBuf;
#[cfg(feature = "object-store")]
use std::sync::mpsc::sync_channel;
#[cfg(feature = "object-store")]
use std::sync::Arc;
use std::time::Duration;

/// Where the writer moves files whose hour is closed, for the uploader.
pub const UPLOAD: &str = "_upload";
/// The file in the store's directory that names its object storage.
pub const MARKER: &str = "object_store.json";
/// The object under the prefix that names the store owning it.
pub const OWNER: &str = "_quench_store.json";
/// Files up to this size go in one `PUT`; larger ones in parts. With the 60 s bound on a request, a part needs
/// some 1.1 Mbit/s.
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub const SINGLE_PUT: u64 = 8 << 20;
/// The part size of a multipart upload (S3's smallest is 5 MiB).
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub const PART: usize = 8 << 20;
/// How long the uploader waits before trying again after a failure, when no nudge comes first.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long the last pass at shutdown may go on putting files (the rest wait for the next start).
pub(super) const LAST_PASS: Duration = Duration::from_secs(30);

/// The URL schemes `evidence.object_store` accepts: those whose path, after the bucket or container, is the
/// objects' path.
const SCHEMES: [&str; 5] = ["s3", "s3a", "gs", "az", "file"];

/// Check an `evidence.object_store` value: a URL whose scheme names object storage. Returns why not.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("allowed: a URL such as s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///path");
    };
    if !SCHEMES.contains(&scheme) {
        return Err("allowed schemes: s3 (s3a), gs, az and file; for an S3-compatible server give s3:// and set AWS_ENDPOINT, for Azure set AZURE_STORAGE_ACCOUNT_NAME");
    }
    if rest.contains(['?', '#', '@']) {
        return Err("a URL with user info, a query or a fragment is refused: credentials (keys, SAS tokens) come from the environment, never from the configuration");
    }
    if rest.trim_matches('/').is_empty() && scheme != "file" {
        return Err("the URL names no bucket or container");
    }
    if !cfg!(feature = "object-store") {
        return Err("this quench was built without object storage: build it with `cargo build --release --features object-store`");
    }
    Ok(())
}

/// What a store's directory says of its object storage.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub url: String,
    /// The store's id, claimed in the prefix's [`OWNER`] object.
    pub id: String,
}

/// The object storage a store's directory names, if any.
pub fn marked(dir: &Path) -> Result<Option<Marker>, EvidenceError> {
    let p = dir.join(MARKER);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(serde_json::from_slice::<Marker>(&b)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p)(e)),
    }
}

/// Name `url` (with a new store id) in the store's directory, or refuse when it already names another URL.
pub fn mark(dir: &Path, url: &str) -> Result<Marker, EvidenceError> {
    match marked(dir)? {
        Some(m) if m.url == url => Ok(m),
        Some(m) => Err(EvidenceError::Remote {
            url: url.to_string(),
            why: format!(
                "evidence.object_store: the store {dir:?} already keeps its hours in {:?}; \
                 give that URL, or a new [evidence] dir",
                m.url
            ),
        }),
        None => {
            let m = Marker {
                url: url.to_string(),
                id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            };
            let p = dir.join(MARKER);
            let tmp = dir.join(format!("{MARKER}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec(&m)?).map_err(io(&tmp))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io(&tmp))?;
            std::fs::rename(&tmp, &p).map_err(io(&p))?;
            std::fs::File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(io(dir))?;
            Ok(m)
        }
    }
}

#[cfg(feature = "object-store")]
mod imp {
    use super::*;
    use object_store::path::Path as ObjPath;
    use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload};

    /// A blocking handle on the store's object storage.
    pub struct Remote {
        /// Taken only when dropped (shut down without waiting, so a reader inside another runtime may drop it).
        rt: Option<tokio::runtime::Runtime>,
        store: Arc<dyn ObjectStore>,
        prefix: ObjPath,
        url: String,
        /// For `file://`: the folder the prefix is, whose puts are synced before a local copy is deleted.
        local_root: Option<PathBuf>,
        single_put: u64,
        part: usize,
    }

    impl Drop for Remote {
        fn drop(&mut self) {
            if let Some(rt) = self.rt.take() {
                rt.shutdown_background();
            }
        }
    }

    /// The id of the store that claimed `prefix` ([`OWNER`]), if one did.
    pub async fn owner(
        store: &dyn ObjectStore,
        prefix: &ObjPath,
    ) -> object_store::Result<Option<String>> {
        #[derive(serde::Deserialize)]
        struct Owner {
            id: String,
        }
        match store.get(&prefix.clone().join(OWNER)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                Ok(serde_json::from_slice::<Owner>(&bytes).ok().map(|o| o.id))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Refuse a prefix another store claimed (its rows would mix with this store's).
    pub fn not_owner(url: &str, claimed: &str, ours: &str) -> EvidenceError {
        err(
            url,
            format!(
                "the prefix belongs to another evidence store (id {claimed}, this store's is {ours}); \
                 give each store its own prefix (if that store is gone for good and this directory replaces \
                 it, delete the prefix's {OWNER} and start again)"
            ),
        )
    }

    fn err(url: &str, e: impl std::fmt::Display) -> EvidenceError {
        EvidenceError::Remote {
            url: url.to_string(),
            why: e.to_string(),
        }
    }

    /// The object storage client for `url` (credentials and endpoint from the environment) and the path prefix
    /// the store's files go under. Builds no runtime: the query crate hands it to DataFusion.
    pub fn client(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjPath), EvidenceError> {
        check_url(url).map_err(|why| err(url, why))?;
        let parsed = url::Url::parse(url).map_err(|e| err(url, e))?;
        let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| err(url, e))?;
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        // a bounded wait per request, unless the environment sets one (`AWS_TIMEOUT`, …); the builders' own
        // client options would replace what they read from the environment (`AWS_ALLOW_HTTP` among it)
        macro_rules! build {
            ($builder:ty) => {{
                let mut b = <$builder>::from_env().with_url(url).with_retry(retry);
                for (k, v) in [("timeout", "60s"), ("connect_timeout", "5s")] {
                    let key = k.parse().map_err(|e| err(url, e))?;
                    if b.get_config_value(&key).is_none() {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(b.build().map_err(|e| err(url, e))?)
            }};
        }
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::AmazonS3 => build!(object_store::aws::AmazonS3Builder),
            ObjectStoreScheme::GoogleCloudStorage => {
                build!(object_store::gcp::GoogleCloudStorageBuilder)
            }
            ObjectStoreScheme::MicrosoftAzure => build!(object_store::azure::MicrosoftAzureBuilder),
            ObjectStoreScheme::Local => {
                Arc::new(object_store::local::LocalFileSystem::new().with_automatic_cleanup(true))
            }
            other => {
                return Err(err(
                    url,
                    format!("{other:?} is not object storage Quench writes to"),
                ))
            }
        };
        Ok((store, prefix))
    }

    impl Remote {
        /// Connect to `url` (credentials and endpoint from the environment).
        pub fn open(url: &str) -> Result<Remote, EvidenceError> {
            let (store, prefix) = client(url)?;
            let local_root = url
                .starts_with("file://")
                .then(|| PathBuf::from(format!("/{}", prefix.as_ref())));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("quench-object-store")
                .enable_all()
                .build()
                .map_err(|e| err(url, e))?;
            Ok(Remote {
                rt: Some(rt),
                store,
                prefix,
                url: url.to_string(),
                local_root,
                single_put: SINGLE_PUT,
                part: PART,
            })
        }

        #[cfg(test)]
        pub fn with_parts(mut self, single_put: u64, part: usize) -> Remote {
            (self.single_put, self.part) = (single_put, part);
            self
        }

        /// The client, for a reader that runs its own queries (the query crate registers it with DataFusion).
        pub fn store(&self) -> Arc<dyn ObjectStore> {
            self.store.clone()
        }

        pub fn url(&self) -> &str {
            &self.url
        }

        /// Run a future on the handle's runtime and wait for it (callable from inside another runtime too).
        fn run<T: Send + 'static>(
            &self,
            f: impl std::future::Future<Output = Result<T, EvidenceError>> + Send + 'static,
        ) -> Result<T, EvidenceError> {
            let (tx, rx) = sync_channel(1);
            let rt = self
                .rt
                .as_ref()
                .ok_or_else(|| err(&self.url, "the object storage client stopped"))?;
            rt.spawn(async move {
                let _ = tx.send(f.await);
            });
            rx.recv()
                .map_err(|_| err(&self.url, "the object storage client stopped"))?
        }

        /// [`Remote::run`] for one call of the client.
        fn wait<T: Send + 'static>(
            &self,
            f: impl std::future::Future<Output = object_store::Result<T>> + Send + 'static,
        ) -> Result<T, EvidenceError> {
            let url = self.url.clone();
            self.run(async move { f.await.map_err(|e| err(&url, e)) })
        }

        /// The id of the store that claimed the prefix, if one did.
        fn claimed_by(&self) -> Result<Option<String>, EvidenceError> {
            let (store, prefix) = (self.store.clone(), self.prefix.clone());
            self.wait(async move { owner(store.as_ref(), &prefix).await })
        }

        fn path(&self, rel: &str) -> Result<ObjPath, EvidenceError> {
            let parts = rel.split('/').filter(|p| !p.is_empty());
            let mut p = self.prefix.clone();
            for part in parts {
                p = p.join(part);
            }
            Ok(p)
        }

        /// Put the local file `from` at `rel`: one `PUT` up to [`SINGLE_PUT`] bytes, else a multipart upload of
        /// [`PART`]-byte parts (the sizes a test may lower), at most two in flight (memory stays bounded whatever an hour weighs). Either way
        /// the object appears whole or not at all. Returns the bytes put.
        pub fn put_file(&self, rel: &str, from: &Path) -> Result<u64, EvidenceError> {
            let (store, path) = (self.store.clone(), self.path(rel)?);
            let len = std::fs::metadata(from).map_err(io(from))?.len();
            if len <= self.single_put {
                let bytes = std::fs::read(from).map_err(io(from))?;
                self.wait(
                    async move { store.put(&path, PutPayload::from(bytes)).await.map(|_| ()) },
                )?;
                self.synced(rel)?;
                return Ok(len);
            }
            let from = from.to_path_buf();
            let url = self.url.clone();
            let part = self.part;
            self.run(async move {
                use std::io::Read;
                let upload = store.put_multipart(&path).await.map_err(|e| err(&url, e))?;
                let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, part);
                let mut f = match std::fs::File::open(&from) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(io(&from)(e));
                    }
                };
                let mut buf = vec![0u8; part];
                loop {
                    let n = match f.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) => {
                            let _ = w.abort().await;
                            return Err(io(&from)(e));
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    // a failed part: the upload is aborted, so no orphaned parts stay billed
                    if let Err(e) = w.wait_for_capacity(2).await {
                        let _ = w.abort().await;
                        return Err(err(&url, e));
                    }
                    w.write(&buf[..n]);
                }
                w.finish().await.map(|_| ()).map_err(|e| err(&url, e))
            })?;
            self.synced(rel)?;
            Ok(len)
        }

        /// On `file://`, make a put durable before its local copy goes (object stores are, once they answer): the
        /// file, and the folders from its own up to the prefix's.
        fn synced(&self, rel: &str) -> Result<(), EvidenceError> {
            let Some(root) = &self.local_root else {
                return Ok(());
            };
            let f = root.join(rel);
            std::fs::File::open(&f)
                .and_then(|h| h.sync_all())
                .map_err(io(&f))?;
            // every folder up to the prefix: the put may have created the table's and the hour's, and a folder
            // entry lost in a power cut would lose the file after its local copy went
            let mut d = f.parent();
            while let Some(dir) = d.filter(|d| d.starts_with(root)) {
                std::fs::File::open(dir)
                    .and_then(|h| h.sync_all())
                    .map_err(io(dir))?;
                d = dir.parent();
            }
            Ok(())
        }

        /// Claim the prefix for the store `id` (done before its first upload); refused when another store holds
        /// it. The claim is written only if none exists (a conditional put), so of two stores starting at the same
        /// instant one claims and the other refuses; where the object storage has no conditional put, each reads
        /// the claim back and the one whose write lost refuses.
        pub fn claim(&self, id: &str) -> Result<(), EvidenceError> {
            match self.claimed_by()? {
                Some(c) if c == id => return Ok(()),
                Some(c) => return Err(not_owner(&self.url, &c, id)),
                None => {}
            }
            let (store, path) = (self.store.clone(), self.prefix.clone().join(OWNER));
            let body = serde_json::to_vec(&serde_json::json!({ "id": id }))?;
            self.wait(async move {
                let create = object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                };
                match store
                    .put_opts(&path, PutPayload::from(body.clone()), create)
                    .await
                {
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                    Err(object_store::Error::NotImplemented { .. }) => {
                        store.put(&path, PutPayload::from(body)).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            })?;
            self.check_owner(id)
        }

        /// At open: refuse the prefix when a store other than `ours` (none: this store has no id yet) claimed it.
        /// When the object storage does not answer, the store opens (the uploader claims the prefix later, and
        /// refuses then).
        pub fn refuse_claimed(&self, ours: Option<&str>) -> Result<(), EvidenceError> {
            match self.claimed_by() {
                Ok(Some(c)) if Some(c.as_str()) != ours => {
                    Err(not_owner(&self.url, &c, ours.unwrap_or("not made yet")))
                }
                Ok(_) => Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "evidence store: object storage not reached at start; its claim is checked at the first upload");
                    Ok(())
                }
            }
        }

        /// For a reader: refuse the prefix when another store claimed it (an unclaimed one holds no upload yet).
        pub fn check_owner(&self, id: &str) -> Result<(), EvidenceError> {
            match self.claimed_by()? {
                Some(c) if c != id => Err(not_owner(&self.url, &c, id)),
                _ => Ok(()),
            }
        }

        pub fn delete(&self, rel: &str) -> Result<(), EvidenceError> {
            let (store, path) = (self.store.clone(), self.path(rel)?);
            self.wait(async move { store.delete(&path).await })
        }

        /// The names directly under `rel` (folders and objects), as last path parts.
        fn children(&self, rel: &str) -> Result<(Vec<String>, Vec<String>), EvidenceError> {
            let (store, path) = (self.store.clone(), self.path(rel)?);
            let listed = self.wait(async move { store.list_with_delimiter(Some(&path)).await })?;
            let last = |p: &ObjPath| p.filename().map(String::from);
            Ok((
                listed.common_prefixes.iter().filter_map(last).collect(),
                listed
                    .objects
                    .iter()
                    .filter_map(|o| last(&o.location))
                    .collect(),
            ))
        }

        /// The hours of `table` kept remotely, with their start.
        pub fn hours(&self, table: TableKind) -> Result<Vec<(Ts, String)>, EvidenceError> {
            let (dirs, _) = self.children(table.name())?;
            let mut out: Vec<(Ts, String)> = dirs
                .into_iter()
                .filter_map(|d| hour_of_dir(&d).map(|h| (h, d)))
                .collect();
            out.sort();
            Ok(out)
        }

        /// The files of one remote hour, as names relative to the store's root.
        pub fn files(&self, table: TableKind, hour: &str) -> Result<Vec<String>, EvidenceError> {
            let (_, objects) = self.children(&format!("{}/{hour}", table.name()))?;
            let mut out: Vec<String> = objects
                .into_iter()
                .map(|o| format!("{}/{hour}/{o}", table.name()))
                .filter(|r| safe_name(r))
                .collect();
            out.sort();
            Ok(out)
        }

        /// Every batch of the remote file `rel`.
        pub fn batches(&self, rel: &str) -> Result<Vec<RecordBatch>, EvidenceError> {
            let (store, path) = (self.store.clone(), self.path(rel)?);
            let bytes = self.wait(async move { store.get(&path).await?.bytes().await })?;
            super::super::read::parquet_batches(
                bytes,
                &PathBuf::from(format!("{}/{rel}", self.url)),
            )
        }
    }
}

#[cfg(not(feature = "object-store"))]
mod imp {
    use super::*;

    /// A handle on object storage; this build has none, so [`Remote::open`] always refuses.
    pub struct Remote {
        never: std::convert::Infallible,
    }

    impl Remote {
        pub fn open(url: &str) -> Result<Remote, EvidenceError> {
            Err(EvidenceError::Remote {
                url: url.to_string(),
                why: "this quench was built without object storage: build it with \
                      `cargo build --release --features object-store`"
                    .into(),
            })
        }
        pub fn url(&self) -> &str {
            match self.never {}
        }
        pub fn put_file(&self, _: &str, _: &Path) -> Result<u64, EvidenceError> {
            match self.never {}
        }
        pub fn claim(&self, _: &str) -> Result<(), EvidenceError> {
            match self.never {}
        }
        pub fn check_owner(&self, _: &str) -> Result<(), EvidenceError> {
            match self.never {}
        }
        pub fn refuse_claimed(&self, _: Option<&str>) -> Result<(), EvidenceError> {
            match self.never {}
        }
        pub fn delete(&self, _: &str) -> Result<(), EvidenceError> {
            match self.never {}
        }
        pub fn hours(&self, _: TableKind) -> Result<Vec<(Ts, String)>, EvidenceError> {
            match self.never {}
        }
        pub fn files(&self, _: TableKind, _: &str) -> Result<Vec<String>, EvidenceError> {
            match self.never {}
        }
        pub fn batches(&self, _: &str) -> Result<Vec<RecordBatch>, EvidenceError> {
            match self.never {}
        }
    }
}

pub use imp::Remote;
#[cfg(feature = "object-store")]
pub use imp::{client, not_owner, owner};

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "object-store")]
    #[test]
    fn a_url_that_is_no_object_storage_is_refused_naming_what_is_allowed() {
        for bad in [
            "bucket/prefix",
            "memory:///",
            "http://minio:9000/b",
            "ftp://x/y",
            "s3://",
            "https://account.blob.core.windows.net/container/p",
            "s3://AKIAKEY:secret@bucket/p",
            "az://container/p?sv=2024&sig=abc",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url("az://c/p?sig=abc")
            .unwrap_err()
            .contains("credentials"));
        for good in [
            "s3://bucket/prefix",
            "gs://b/p",
            "az://container/p",
            "file:///tmp/x",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
    }

    #[cfg(feature = "object-store")]
    #[test]
    fn a_file_over_the_single_put_size_goes_in_parts_and_arrives_whole() {
        let base = std::env::temp_dir().join(format!("quench-parts-{:x}", fastrand::u64(..)));
        std::fs::create_dir_all(&base).unwrap();
        let file = base.join("hour.parquet");
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &body).unwrap();
        let url = format!("file://{}", base.join("bucket").display());
        let r = Remote::open(&url).unwrap().with_parts(1_000, 3_000);
        let rel = "events/hour=2026-11-30T10/part-a-000001.parquet";
        assert_eq!(r.put_file(rel, &file).unwrap(), 10_000);
        assert_eq!(std::fs::read(base.join("bucket").join(rel)).unwrap(), body);
        // and a small one in one put
        std::fs::write(&file, b"small").unwrap();
        r.put_file(rel, &file).unwrap();
        assert_eq!(
            std::fs::read(base.join("bucket").join(rel)).unwrap(),
            b"small"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[cfg(not(feature = "object-store"))]
    #[test]
    fn object_storage_in_a_build_without_it_is_refused_naming_the_feature() {
        let e = check_url("s3://bucket/prefix").unwrap_err();
        assert!(e.contains("--features object-store"), "{e}");
        assert!(Remote::open("s3://bucket/prefix").is_err());
    }

    #[test]
    fn a_stored_name_that_climbs_out_of_its_table_is_not_one() {
        assert!(safe_name("events/hour=2026-11-30T10/part-a-000001.parquet"));
        for bad in [
            "events/hour=2026-11-30T10/../../x.parquet",
            "../events/hour=2026-11-30T10/a.parquet",
            "secrets/hour=2026-11-30T10/a.parquet",
            "events/hour=2026-11-30T10/a.parquet.tmp",
            "events/hour=x/a.parquet",
            "events/hour=2026-11-30T10/sub/a.parquet",
        ] {
            assert!(!safe_name(bad), "{bad}");
        }
    }
}
