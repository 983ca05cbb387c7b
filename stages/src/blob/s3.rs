//! Blobs in an S3 bucket, under an optional prefix. `AWS_ENDPOINT_URL` points it at any
//! S3-compatible server, which is then addressed path-style.

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{BlobError, BlobStore, check_key};

/// Size of each part of a streamed upload (S3 wants at least 5 MiB but for the last).
const PART_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

fn s3_error<E, R>(key: &str, operation: &'static str, err: SdkError<E, R>) -> BlobError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    BlobError::S3 {
        key: key.to_owned(),
        operation,
        message: DisplayErrorContext(&err).to_string(),
    }
}

impl S3Blobs {
    /// A store for `bucket[/prefix]` with the client configured from the environment (AWS
    /// credentials and region, `AWS_ENDPOINT_URL`); the region defaults to `us-east-1`.
    pub async fn from_env(location: &str, spec: &str) -> Result<Self, BlobError> {
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(BlobError::Config {
                spec: spec.to_owned(),
                reason: "no bucket; give s3://bucket/prefix",
            });
        }
        let region = aws_config::meta::region::RegionProviderChain::default_provider()
            .or_else(aws_config::Region::new("us-east-1"));
        let shared = aws_config::from_env().region(region).load().await;
        let path_style = shared.endpoint_url().is_some();
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            .build();
        Ok(Self::new(
            aws_sdk_s3::Client::from_conf(config),
            bucket,
            prefix.trim_matches('/'),
        ))
    }

    pub fn new(client: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Self {
        S3Blobs {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    /// Creates the bucket unless it exists (for development servers and tests).
    pub async fn create_bucket_if_missing(&self) -> Result<(), BlobError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| s3_error(&self.bucket, "CreateBucket", e))?;
        Ok(())
    }

    /// Streams `body` as a multipart upload, a part at a time; a body smaller than one part is
    /// one plain put.
    async fn put_parts(
        &self,
        key: &str,
        mut body: super::ByteStream<'_>,
    ) -> Result<u64, BlobError> {
        let object = self.object_key(key)?;
        let mut buffer = BytesMut::new();
        let mut size = 0u64;
        let mut upload: Option<(String, Vec<CompletedPart>)> = None;
        loop {
            let chunk = match body.next().await {
                Some(Ok(chunk)) => Some(chunk),
                Some(Err(source)) => {
                    self.abort(&object, upload.as_ref()).await;
                    return Err(BlobError::Body {
                        key: key.to_owned(),
                        source,
                    });
                }
                None => None,
            };
            let done = chunk.is_none();
            if let Some(chunk) = chunk {
                size += chunk.len() as u64;
                buffer.extend_from_slice(&chunk);
            }
            if done && upload.is_none() {
                self.put(key, buffer.freeze()).await?;
                return Ok(size);
            }
            if buffer.len() >= PART_BYTES || (done && !buffer.is_empty()) {
                if upload.is_none() {
                    let created = self
                        .client
                        .create_multipart_upload()
                        .bucket(&self.bucket)
                        .key(&object)
                        .send()
                        .await
                        .map_err(|e| s3_error(key, "CreateMultipartUpload", e))?;
                    upload = Some((
                        created.upload_id().unwrap_or_default().to_owned(),
                        Vec::new(),
                    ));
                }
                if let Some((id, parts)) = upload.as_mut() {
                    let number = parts.len() as i32 + 1;
                    let part = buffer.split().freeze();
                    let sent = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(&object)
                        .upload_id(id.as_str())
                        .part_number(number)
                        .body(ByteStream::from(part))
                        .send()
                        .await;
                    match sent {
                        Ok(sent) => parts.push(
                            CompletedPart::builder()
                                .part_number(number)
                                .set_e_tag(sent.e_tag().map(str::to_owned))
                                .build(),
                        ),
                        Err(e) => {
                            self.abort(&object, upload.as_ref()).await;
                            return Err(s3_error(key, "UploadPart", e));
                        }
                    }
                }
            }
            if done {
                break;
            }
        }
        if let Some((id, parts)) = upload {
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&object)
                .upload_id(id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| s3_error(key, "CompleteMultipartUpload", e))?;
        }
        Ok(size)
    }

    async fn abort(&self, object: &str, upload: Option<&(String, Vec<CompletedPart>)>) {
        if let Some((id, _)) = upload {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(object)
                .upload_id(id.as_str())
                .send()
                .await;
        }
    }

    fn object_key(&self, key: &str) -> Result<String, BlobError> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }
}

impl BlobStore for S3Blobs {
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let object = self.object_key(key)?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(object)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error(key, "PutObject", e))?;
            Ok(())
        }
        .boxed()
    }

    fn put_stream<'a>(
        &'a self,
        key: &'a str,
        body: super::ByteStream<'a>,
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        self.put_parts(key, body).boxed()
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let (source, target) = (self.object_key(from)?, self.object_key(to)?);
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .copy_source(copy_source(&self.bucket, &source))
                .key(target)
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(service) if service.to_string().contains("NoSuchKey") => {
                        BlobError::NotFound {
                            key: from.to_owned(),
                        }
                    }
                    _ => s3_error(from, "CopyObject", e),
                })?;
            self.delete(from).await
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        async move {
            let object = self.object_key(key)?;
            let response = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(object)
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(service) if service.is_no_such_key() => BlobError::NotFound {
                        key: key.to_owned(),
                    },
                    _ => s3_error(key, "GetObject", e),
                })?;
            let body = response.body.collect().await.map_err(|e| BlobError::S3 {
                key: key.to_owned(),
                operation: "GetObject",
                message: e.to_string(),
            })?;
            Ok(body.into_bytes())
        }
        .boxed()
    }

    fn size<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, BlobError>> {
        async move {
            let object = self.object_key(key)?;
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(object)
                .send()
                .await
            {
                Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                Err(e) => Err(s3_error(key, "HeadObject", e)),
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let object = self.object_key(key)?;
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(object)
                .send()
                .await
                .map_err(|e| s3_error(key, "DeleteObject", e))?;
            Ok(())
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// CopyObject's `x-amz-copy-source`: `bucket/key`, URL-encoded (a key with `+`, `%`, `?`, a
/// space or non-ASCII characters would otherwise name another object or none), `/` kept.
fn copy_source(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "{}/{}",
        percent_encoding::utf8_percent_encode(bucket, KEEP),
        percent_encoding::utf8_percent_encode(key, KEEP)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_sources_are_encoded_but_keep_their_slashes() {
        assert_eq!(
            super::copy_source("b", "transcripts/w 1/a+b%c?d/é.jsonl"),
            "b/transcripts/w%201/a%2Bb%25c%3Fd/%C3%A9.jsonl"
        );
    }
}
