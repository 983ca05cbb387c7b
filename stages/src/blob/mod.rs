//! Where transcripts and parse results are kept: the `BlobStore` port, with an S3
//! implementation (any S3-compatible server through `AWS_ENDPOINT_URL`, path-style; in builds
//! with the `s3` feature) and a local directory one, chosen by `SESSIONFLOW_BLOB`
//! (`s3://bucket/prefix` or a directory).
//!
//! Keys are `transcripts/{workspace_id}/{session_id}/raw.jsonl` and `…/parsed.json`.

mod local;
#[cfg(feature = "s3")]
mod s3;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sessionflow_protocol::ids::Id;

/// A body arriving in chunks.
pub type ByteStream<'a> = BoxStream<'a, Result<Bytes, std::io::Error>>;

pub use local::LocalBlobs;
#[cfg(feature = "s3")]
pub use s3::S3Blobs;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {key} not found")]
    NotFound { key: String },
    #[error("blob key {key:?} is not valid: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("blob {key}: {source}")]
    Io { key: String, source: std::io::Error },
    #[error("blob {key}: S3 {operation} failed: {message}")]
    S3 {
        key: String,
        operation: &'static str,
        message: String,
    },
    #[error("blob {key}: the body failed while streaming: {source}")]
    Body { key: String, source: std::io::Error },
    #[error("blob store {spec:?} is not valid: {reason}")]
    Config { spec: String, reason: &'static str },
}

/// A place to put and get whole objects by key.
pub trait BlobStore: Send + Sync {
    /// Stores `body` under `key`, replacing what was there; readers never see half an object.
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), BlobError>>;
    /// Stores what `body` yields under `key` as it arrives, never holding the whole object;
    /// returns its size. A body that fails leaves nothing under `key`.
    fn put_stream<'a>(
        &'a self,
        key: &'a str,
        body: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<u64, BlobError>>;
    /// Moves the object under `from` to `to`, replacing what was there.
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;
    /// The object under `key`, or [`BlobError::NotFound`].
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, BlobError>>;
    /// The size of the object under `key`, if there is one.
    fn size<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, BlobError>>;
    /// Removes the object under `key`; removing nothing is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;
    /// Where the objects go, for logs.
    fn describe(&self) -> String;
}

/// Key of a session's raw transcript; ids that passed the id rule cannot nest or climb.
pub fn raw_transcript_key(workspace_id: &Id, session_id: &Id) -> String {
    format!("transcripts/{workspace_id}/{session_id}/raw.jsonl")
}

/// Key of a session's parse result backup.
pub fn parsed_key(workspace_id: &Id, session_id: &Id) -> String {
    format!("transcripts/{workspace_id}/{session_id}/parsed.json")
}

/// Refuses keys that could leave the store's root or are not plain relative paths.
fn check_key(key: &str) -> Result<(), BlobError> {
    let invalid = |reason| {
        Err(BlobError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("empty");
    }
    if key.starts_with('/') || key.contains('\\') || key.contains('\0') {
        return invalid("must be a relative path with `/` separators");
    }
    if key
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return invalid("empty, `.` or `..` path segment");
    }
    Ok(())
}

/// Opens the store `spec` names: `s3://bucket[/prefix]`, or a directory path.
pub async fn open(spec: &str) -> Result<Box<dyn BlobStore>, BlobError> {
    match spec.strip_prefix("s3://") {
        #[cfg(feature = "s3")]
        Some(rest) => Ok(Box::new(S3Blobs::from_env(rest, spec).await?)),
        #[cfg(not(feature = "s3"))]
        Some(_) => Err(BlobError::Config {
            spec: spec.to_owned(),
            reason: "this sessionflow was built without S3 support; build it with \
                     `cargo build --release --features s3`, or give a directory",
        }),
        None if spec.is_empty() => Err(BlobError::Config {
            spec: spec.to_owned(),
            reason: "empty; give s3://bucket/prefix or a directory",
        }),
        None => Ok(Box::new(LocalBlobs::new(spec))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_store() {
        assert!(check_key("transcripts/w/s/raw.jsonl").is_ok());
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b", "a/"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
