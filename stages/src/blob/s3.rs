//! Blobs in an S3 bucket, under an optional prefix. `AWS_ENDPOINT_URL` points it at any
//! S3-compatible server, which is then addressed path-style.

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{BlobError, BlobStore, check_key};

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
