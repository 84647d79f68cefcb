//! The object storage as a query sees it: every object of the store's prefix except those the store still holds
//! locally under `_upload/`, so that a file put there whose local copy was not yet deleted (the uploader deletes
//! it right after the put; a crash or a failed delete in between leaves both) is read once, from the local disk.
//!
//! In: the store's client and the names of the files waiting locally. Out: the same client with those objects
//! left out of every listing (reads, writes and the rest pass through). State: the set of names left out.

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::collections::HashSet;
use std::sync::Arc;

/// `inner` without the objects named in `skip`.
#[derive(Debug)]
pub struct Unmoved {
    inner: Arc<dyn ObjectStore>,
    skip: Arc<HashSet<ObjPath>>,
}

impl Unmoved {
    pub fn new(inner: Arc<dyn ObjectStore>, skip: HashSet<ObjPath>) -> Unmoved {
        Unmoved {
            inner,
            skip: Arc::new(skip),
        }
    }
}

impl std::fmt::Display for Unmoved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (less {} files still local)",
            self.inner,
            self.skip.len()
        )
    }
}

#[async_trait]
impl ObjectStore for Unmoved {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &ObjPath, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<ObjPath>>,
    ) -> BoxStream<'static, Result<ObjPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjPath>) -> BoxStream<'static, Result<ObjectMeta>> {
        let skip = self.skip.clone();
        self.inner
            .list(prefix)
            .try_filter(move |m| futures::future::ready(!skip.contains(&m.location)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjPath>) -> Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects.retain(|m| !self.skip.contains(&m.location));
        Ok(r)
    }

    async fn copy_opts(&self, from: &ObjPath, to: &ObjPath, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn objects_still_held_locally_are_left_out_of_every_listing() {
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for name in ["p/events/hour=a/one.parquet", "p/events/hour=a/two.parquet"] {
            mem.put(&ObjPath::from(name), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let skip = HashSet::from([ObjPath::from("p/events/hour=a/two.parquet")]);
        let u = Unmoved::new(mem, skip);
        let listed: Vec<String> = u
            .list(Some(&ObjPath::from("p")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed, ["p/events/hour=a/one.parquet"]);
        let r = u
            .list_with_delimiter(Some(&ObjPath::from("p/events/hour=a")))
            .await
            .unwrap();
        let names: Vec<String> = r.objects.iter().map(|m| m.location.to_string()).collect();
        assert_eq!(names, ["p/events/hour=a/one.parquet"]);
        // still readable by name
        assert!(u
            .get_opts(
                &ObjPath::from("p/events/hour=a/two.parquet"),
                GetOptions::default()
            )
            .await
            .is_ok());
    }
}
