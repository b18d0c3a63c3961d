//! [`S3ClipStore`]: clips in an S3 bucket (feature `aws`).
//!
//! The bytes are the object body (`Content-Type: video/h264`); [`ClipMeta`] is one user-metadata
//! field, `x-amz-meta-rollcall-meta`, holding the ClipMeta JSON (about 300 bytes, well under
//! S3's 2 KB user-metadata limit; a foreign client may send any subset of the fields, or none).
//! `get` refuses an object over the caller's limit from the response's `Content-Length`, before
//! the body is read, and reports the object's `ETag` (its version) and `LastModified`.

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::{sdk_message, sdk_retryable};
use crate::store::{validate_key, ClipStore, StoreError, StoredClip};
use crate::wire::{ClipMeta, PartialClipMeta};

/// User-metadata field holding the ClipMeta JSON (`x-amz-meta-rollcall-meta` on the wire).
pub const META_FIELD: &str = "rollcall-meta";

/// Clips in one S3 bucket; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct S3ClipStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ClipStore {
    /// A store over `bucket` with `client` (see [`crate::aws::s3_client`]).
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3ClipStore {
        S3ClipStore {
            client,
            bucket: bucket.into(),
        }
    }

    /// A store over `bucket` with a client for `config`.
    pub fn from_config(config: &crate::aws::SdkConfig, bucket: impl Into<String>) -> S3ClipStore {
        S3ClipStore::new(crate::aws::s3_client(config), bucket)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
}

impl ClipStore for S3ClipStore {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put(&self, key: &str, meta: &ClipMeta, bytes: &[u8]) -> Result<(), StoreError> {
        validate_key(key)?;
        let json = serde_json::to_string(meta).map_err(|e| StoreError::Metadata {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("video/h264")
            .metadata(META_FIELD, json)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| StoreError::Backend {
                key: key.to_string(),
                backend: "s3",
                message: sdk_message(&e),
                retryable: sdk_retryable(&e),
            })?;
        Ok(())
    }

    async fn get(&self, key: &str, max_bytes: usize) -> Result<StoredClip, StoreError> {
        validate_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                return Err(if missing {
                    StoreError::NotFound {
                        key: key.to_string(),
                    }
                } else {
                    StoreError::Backend {
                        key: key.to_string(),
                        backend: "s3",
                        message: sdk_message(&e),
                        retryable: sdk_retryable(&e),
                    }
                });
            }
        };
        let limit = max_bytes as u64;
        if let Some(size) = out.content_length().filter(|&n| n >= 0) {
            if size as u64 > limit {
                return Err(StoreError::TooLarge {
                    key: key.to_string(),
                    size: size as u64,
                    limit,
                });
            }
        }
        let meta = match out.metadata().and_then(|m| m.get(META_FIELD)) {
            Some(json) => Some(serde_json::from_str::<PartialClipMeta>(json).map_err(|e| {
                StoreError::Metadata {
                    key: key.to_string(),
                    message: format!("{META_FIELD}: {e}"),
                }
            })?),
            None => None,
        };
        let version = out
            .e_tag()
            .map(|tag| tag.trim_matches('"').to_string())
            .filter(|tag| !tag.is_empty());
        let stored_ns = out.last_modified().and_then(|t| {
            let secs = u64::try_from(t.secs()).ok()?;
            Some(secs.saturating_mul(1_000_000_000) + u64::from(t.subsec_nanos()))
        });
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Backend {
                key: key.to_string(),
                backend: "s3",
                message: format!("reading the body: {e}"),
                retryable: true,
            })?
            .to_vec();
        if bytes.len() as u64 > limit {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(StoredClip {
            bytes,
            meta,
            version,
            stored_ns,
        })
    }
}
