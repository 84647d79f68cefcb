//! Object storage for the evidence store (S3, GCS, Azure, or a mounted filesystem through `file://`), so that the
//! local disk holds only the last few hours.
//!
//! In: files the writer hands over once their hour is compacted (`hour + 1 h + compact_after_hours` behind the
//! pipeline's clock): it moves them, whole, from `DIR/<table>/hour=…/` to `DIR/_upload/<table>/hour=…/`, then
//! nudges the uploader with the clock. Out: each such file put under the URL's prefix at the same relative name
//! (`<prefix>/<table>/hour=…/<file>`), then deleted locally; remote hours older than `retention_days` deleted. For
//! readers, [`Remote`] lists a table's remote hours and fetches a file's batches. State: on the uploader's own
//! thread, a one-worker tokio runtime and the store's client, the newest clock it was given and the last clock hour
//! whose retention it applied; nothing in the pipeline's thread.
//!
//! An upload is a single `PUT` of a whole file, which object stores make visible all at once. A file stays in
//! `_upload/` until its upload succeeded, so a failure or a crash loses nothing: the next pass (every nudge, and
//! every 30 s after a failure) puts it again under the same name. Readers read `_upload/` and the remote together
//! and read a name found in both once. The URL goes into `DIR/object_store.json` when the store opens, so that
//! `quench query`, `session`, `explain` and `backtest` find the remote hours from the directory alone; a store that
//! already names another URL is refused. Credentials and endpoints come from the environment, as the vendors' own
//! tools read them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …); none is ever written to the store.
//!
//! Without the `object-store` cargo feature the module still parses the setting, and refuses it by name.

use super::tables::TableKind;
#[cfg(feature = "object-store")]
use super::hour_of_dir;
use super::{io, safe_name, EvidenceError, EvidenceStats};
use crate::event::Ts;
use arrow_array::RecordBatch;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// Where the writer moves files whose hour is closed, for the uploader.
pub const UPLOAD: &str = "_upload";
/// The file in the store's directory that names its object storage.
pub const MARKER: &str = "object_store.json";
/// How long the uploader waits before trying again after a failure, when no nudge comes first.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The URL schemes `evidence.object_store` accepts.
const SCHEMES: [&str; 10] = [
    "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "file", "https",
];

/// Check an `evidence.object_store` value: a URL whose scheme names object storage. Returns why not.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("allowed: a URL such as s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///path");
    };
    if !SCHEMES.contains(&scheme) {
        return Err("allowed schemes: s3, s3a, gs, az, adl, azure, abfs, abfss, file and https (an S3, GCS or Azure endpoint); for an S3-compatible server give s3:// and set AWS_ENDPOINT");
    }
    if rest.trim_matches('/').is_empty() && scheme != "file" {
        return Err("the URL names no bucket or container");
    }
    if !cfg!(feature = "object-store") {
        return Err("this quench was built without object storage: build it with `cargo build --release --features object-store`");
    }
    Ok(())
}

/// The URL a store's directory names for its object storage, if any.
pub fn marked(dir: &Path) -> Result<Option<String>, EvidenceError> {
    #[derive(serde::Deserialize)]
    struct Marker {
        url: String,
    }
    let p = dir.join(MARKER);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(serde_json::from_slice::<Marker>(&b)?.url)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p)(e)),
    }
}

/// Name `url` in the store's directory, or refuse when it already names another.
pub fn mark(dir: &Path, url: &str) -> Result<(), EvidenceError> {
    match marked(dir)? {
        Some(u) if u == url => Ok(()),
        Some(u) => Err(EvidenceError::Remote {
            url: url.to_string(),
            why: format!(
                "evidence.object_store: the store {dir:?} already keeps its hours in {u:?}; \
                 give that URL, or a new [evidence] dir"
            ),
        }),
        None => {
            let p = dir.join(MARKER);
            let tmp = dir.join(format!("{MARKER}.tmp"));
            std::fs::write(
                &tmp,
                serde_json::to_vec(&serde_json::json!({ "url": url }))?,
            )
            .map_err(io(&tmp))?;
            std::fs::rename(&tmp, &p).map_err(io(&p))
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
        rt: tokio::runtime::Runtime,
        store: Arc<dyn ObjectStore>,
        prefix: ObjPath,
        url: String,
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
                for (k, v) in [("timeout", "30s"), ("connect_timeout", "5s")] {
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
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("quench-object-store")
                .enable_all()
                .build()
                .map_err(|e| err(url, e))?;
            Ok(Remote {
                rt,
                store,
                prefix,
                url: url.to_string(),
            })
        }

        /// The client, for a reader that runs its own queries (the query crate registers it with DataFusion).
        pub fn store(&self) -> Arc<dyn ObjectStore> {
            self.store.clone()
        }

        pub fn url(&self) -> &str {
            &self.url
        }

        /// Run a future on the handle's runtime and wait for it (callable from inside another runtime too).
        fn wait<T: Send + 'static>(
            &self,
            f: impl std::future::Future<Output = object_store::Result<T>> + Send + 'static,
        ) -> Result<T, EvidenceError> {
            let (tx, rx) = sync_channel(1);
            self.rt.spawn(async move {
                let _ = tx.send(f.await);
            });
            rx.recv()
                .map_err(|_| err(&self.url, "the object storage client stopped"))?
                .map_err(|e| err(&self.url, e))
        }

        fn path(&self, rel: &str) -> Result<ObjPath, EvidenceError> {
            let parts = rel.split('/').filter(|p| !p.is_empty());
            let mut p = self.prefix.clone();
            for part in parts {
                p = p.join(part);
            }
            Ok(p)
        }

        /// Put `bytes` at `rel` (one whole object).
        pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), EvidenceError> {
            let (store, path) = (self.store.clone(), self.path(rel)?);
            self.wait(async move { store.put(&path, PutPayload::from(bytes)).await.map(|_| ()) })
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
        pub fn put(&self, _: &str, _: Vec<u8>) -> Result<(), EvidenceError> {
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

#[cfg(feature = "object-store")]
pub use imp::client;
pub use imp::Remote;

enum Nudge {
    /// Upload what waits, and apply retention against this clock.
    Go(Option<Ts>),
    /// A last pass, then stop.
    Stop,
}

/// The uploader's thread, owned by the store's writer.
pub struct Uploader {
    tx: SyncSender<Nudge>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Uploader {
    /// Start uploading the files under `DIR/_upload/` to `remote`.
    pub fn start(
        remote: Remote,
        dir: &Path,
        retention_ms: i64,
        stats: Arc<EvidenceStats>,
    ) -> Result<Uploader, EvidenceError> {
        // one nudge waiting is enough: the pass it starts sees every file moved before it
        let (tx, rx) = sync_channel(1);
        let mut u = Upload {
            remote,
            dir: dir.to_path_buf(),
            retention_ms,
            clock: None,
            retained_hour: None,
            stats,
        };
        let thread = std::thread::Builder::new()
            .name("quench-evidence-upload".into())
            .spawn(move || u.serve(rx))
            .map_err(io(dir))?;
        Ok(Uploader {
            tx,
            thread: Some(thread),
        })
    }

    /// Files were handed over (or the clock moved): a pass will run. Never waits.
    pub fn nudge(&self, clock: Option<Ts>) {
        let _ = self.tx.try_send(Nudge::Go(clock));
    }

    /// A last pass over what waits, then stop (waits for it).
    pub fn stop(mut self) {
        let _ = self.tx.send(Nudge::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Upload {
    remote: Remote,
    dir: PathBuf,
    retention_ms: i64,
    clock: Option<Ts>,
    /// The clock hour whose retention last ran (remote retention lists every table: once per hour is enough).
    retained_hour: Option<i64>,
    stats: Arc<EvidenceStats>,
}

impl Upload {
    fn serve(&mut self, rx: Receiver<Nudge>) {
        let mut failed = false;
        loop {
            // after a failure, try again on the next nudge or after a while; otherwise wait for work
            let m = if failed {
                rx.recv_timeout(RETRY_AFTER)
            } else {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            let last = match m {
                Ok(Nudge::Go(clock)) => {
                    self.clock = self.clock.max(clock);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Ok(Nudge::Stop) | Err(RecvTimeoutError::Disconnected) => true,
            };
            failed = match self.pass() {
                Ok(()) => false,
                Err(e) => {
                    self.stats.upload_failures.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "evidence store: upload to object storage failed; the files stay local and are tried again");
                    true
                }
            };
            if last {
                return;
            }
        }
    }

    fn pass(&mut self) -> Result<(), EvidenceError> {
        let root = self.dir.join(UPLOAD);
        for f in super::walk(&root)? {
            let Some(rel) = f
                .strip_prefix(&root)
                .ok()
                .and_then(|r| r.to_str())
                .map(|r| r.replace(std::path::MAIN_SEPARATOR, "/"))
            else {
                continue;
            };
            if !safe_name(&rel) {
                continue;
            }
            let bytes = match std::fs::read(&f) {
                Ok(b) => b,
                // expired by the writer meanwhile
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&f)(e)),
            };
            let n = bytes.len() as u64;
            self.remote.put(&rel, bytes)?;
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&f)(e)),
            }
            if let Some(hour) = f.parent() {
                // the hour's folder goes once empty (another file may still be on its way: then it stays)
                let _ = std::fs::remove_dir(hour);
            }
            self.stats.uploaded_files.fetch_add(1, Relaxed);
            self.stats.uploaded_bytes.fetch_add(n, Relaxed);
        }
        self.retain()
    }

    /// Delete remote hours past retention, once per hour of the clock.
    fn retain(&mut self) -> Result<(), EvidenceError> {
        let Some(clock) = self.clock else {
            return Ok(());
        };
        let hour = clock.0.div_euclid(3_600_000);
        if self.retention_ms <= 0 || self.retained_hour >= Some(hour) {
            return Ok(());
        }
        for t in TableKind::ALL {
            for (h, name) in self.remote.hours(t)? {
                if h.0 + 3_600_000 + self.retention_ms < clock.0 {
                    for rel in self.remote.files(t, &name)? {
                        self.remote.delete(&rel)?;
                    }
                    self.stats.expired_hours.fetch_add(1, Relaxed);
                }
            }
        }
        self.retained_hour = Some(hour);
        Ok(())
    }
}

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
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        for good in [
            "s3://bucket/prefix",
            "gs://b/p",
            "az://container/p",
            "file:///tmp/x",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
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
