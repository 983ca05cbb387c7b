//! Blobs as files under a directory: the embedded default, and what tests use beside S3.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;

use super::{BlobError, BlobStore, ByteStream, check_key};

#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBlobs { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io(key: &str) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BlobError::NotFound {
                key: key.to_owned(),
            }
        } else {
            BlobError::Io {
                key: key.to_owned(),
                source,
            }
        }
    }
}

/// A temporary name beside `path`, unique to this process and call.
fn temporary(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

impl BlobStore for LocalBlobs {
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        let body = futures::stream::iter([Ok(body)]).boxed();
        self.put_stream(key, body)
            .map(|written| written.map(|_| ()))
            .boxed()
    }

    fn put_stream<'a>(
        &'a self,
        key: &'a str,
        mut body: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        async move {
            let path = self.path(key)?;
            let fail = |source| BlobError::Io {
                key: key.to_owned(),
                source,
            };
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(fail)?;
            }
            // Write aside, then rename: a reader sees the old object or the new, never half.
            let tmp = temporary(&path);
            let written = async {
                let mut file = tokio::fs::File::create(&tmp).await.map_err(fail)?;
                let mut size = 0u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|source| BlobError::Body {
                        key: key.to_owned(),
                        source,
                    })?;
                    file.write_all(&chunk).await.map_err(fail)?;
                    size += chunk.len() as u64;
                }
                file.flush().await.map_err(fail)?;
                Ok(size)
            }
            .await;
            match written {
                Ok(size) => {
                    tokio::fs::rename(&tmp, &path).await.map_err(fail)?;
                    Ok(size)
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    Err(e)
                }
            }
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let (source, target) = (self.path(from)?, self.path(to)?);
            if let Some(dir) = target.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(io(to))?;
            }
            tokio::fs::rename(&source, &target).await.map_err(io(from))
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        async move {
            let path = self.path(key)?;
            let bytes = tokio::fs::read(&path).await.map_err(io(key))?;
            Ok(Bytes::from(bytes))
        }
        .boxed()
    }

    fn size<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, BlobError>> {
        async move {
            let path = self.path(key)?;
            match tokio::fs::metadata(&path).await.map_err(io(key)) {
                Ok(meta) => Ok(Some(meta.len())),
                Err(BlobError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let path = self.path(key)?;
            match tokio::fs::remove_file(&path).await.map_err(io(key)) {
                Ok(()) | Err(BlobError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}
