//! [`S3ClipStore`]: clips in an S3 bucket (feature `aws`).
//!
//! The bytes are the object body (`Content-Type: video/h264`); [`ClipMeta`] is one user-metadata
//! field, `x-amz-meta-rollcall-meta`, holding the ClipMeta JSON (about 300 bytes, well under
//! S3's 2 KB user-metadata limit; a foreign client may send any subset of the fields, or none).
//! `get` refuses an object over the caller's limit from the response's `Content-Length`, before
//! the body is read, and reports the object's `ETag` (its version) and `LastModified`.

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::{sdk_message, sdk_retryable};
use crate::store::{
    answer_key, validate_key, Claim, ClipStore, LedgerEntry, StoreError, StoredClip,
};
use crate::wire::{ClipMeta, PartialClipMeta, RecognitionResult};

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

    fn backend_error<E>(
        key: &str,
        e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError
    where
        E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
    {
        StoreError::Backend {
            key: key.to_string(),
            backend: "s3",
            message: sdk_message(e),
            retryable: sdk_retryable(e),
        }
    }

    /// Write a ledger object; `exclusive` makes it conditional on no object being there.
    async fn put_ledger(
        &self,
        key: &str,
        ledger: &str,
        entry: &LedgerEntry,
        exclusive: bool,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(ledger)
            .content_type("application/json")
            .body(ByteStream::from(entry.to_bytes()));
        if exclusive {
            put = put.if_none_match("*");
        }
        match put.send().await {
            Ok(_) => Ok(true),
            // 412: the object exists; 409: a concurrent conditional write won.
            Err(e)
                if exclusive
                    && e.raw_response()
                        .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                Ok(false)
            }
            Err(e) => Err(Self::backend_error(key, &e)),
        }
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
            .map_err(|e| Self::backend_error(key, &e))?;
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
                    Self::backend_error(key, &e)
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

    async fn claim(&self, key: &str, version: &str, holder: &str) -> Result<Claim, StoreError> {
        validate_key(key)?;
        let ledger = answer_key(key, version);
        if self
            .put_ledger(key, &ledger, &LedgerEntry::claim(holder), true)
            .await?
        {
            return Ok(Claim::Claimed);
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&ledger)
            .send()
            .await;
        match out {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| StoreError::Backend {
                    key: key.to_string(),
                    backend: "s3",
                    message: format!("reading {ledger}: {e}"),
                    retryable: true,
                })?;
                Ok(LedgerEntry::read(&bytes.to_vec()))
            }
            // Released between the two calls: held by nobody, so by someone about to claim it.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                Ok(LedgerEntry::read(b""))
            }
            Err(e) => Err(Self::backend_error(key, &e)),
        }
    }

    async fn record_answer(
        &self,
        key: &str,
        version: &str,
        holder: &str,
        result: &RecognitionResult,
    ) -> Result<(), StoreError> {
        validate_key(key)?;
        let entry = LedgerEntry::answered(holder, result);
        self.put_ledger(key, &answer_key(key, version), &entry, false)
            .await
            .map(|_| ())
    }

    async fn release_claim(&self, key: &str, version: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(answer_key(key, version))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Self::backend_error(key, &e))
    }
}
