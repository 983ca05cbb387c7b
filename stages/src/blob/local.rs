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

/// Creates `dir` and the folders above it that are missing, readable by the owner alone.
async fn private_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .await
}

/// A file written aside, removed when dropped unless taken (renamed into place).
struct Aside(Option<PathBuf>);

impl Drop for Aside {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
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

/// Writes `body` beside `path`, then renames it into place (see [`LocalBlobs::put_stream`]).
fn write_whole(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = temporary(path);
    let mut aside = Aside(Some(tmp.clone()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(body)?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    aside.0 = None;
    Ok(())
}

impl BlobStore for LocalBlobs {
    /// A whole body is written in one trip to the blocking pool (folder, file aside, rename),
    /// not one per step as a stream's chunks need.
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let path = self.path(key)?;
            let fail = |source| BlobError::Io {
                key: key.to_owned(),
                source,
            };
            tokio::task::spawn_blocking(move || write_whole(&path, &body))
                .await
                .map_err(|e| fail(std::io::Error::other(e)))?
                .map_err(fail)
        }
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
                private_dir(dir).await.map_err(fail)?;
            }
            // Write aside, then rename: a reader sees the old object or the new, never half.
            // The file aside goes whatever happens, even when the caller drops this future
            // (a request that timed out or broke off).
            let tmp = temporary(&path);
            let mut aside = Aside(Some(tmp.clone()));
            let written = async {
                // Transcripts hold source code and secrets: the owner's alone.
                let mut file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .await
                    .map_err(fail)?;
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
                    aside.0 = None;
                    Ok(size)
                }
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let (source, target) = (self.path(from)?, self.path(to)?);
            if let Some(dir) = target.parent() {
                private_dir(dir).await.map_err(io(to))?;
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
                Ok(()) | Err(BlobError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            // Folders the removal left empty go too (a deleted session leaves no folder named
            // after it); one that is not empty, or the store's root, stays.
            let mut folder = path.parent();
            while let Some(dir) = folder.filter(|dir| *dir != self.root) {
                if tokio::fs::remove_dir(dir).await.is_err() {
                    break;
                }
                folder = dir.parent();
            }
            Ok(())
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}
