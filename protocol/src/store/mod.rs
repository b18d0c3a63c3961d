//! The object store holding clips: [`ClipStore`] (put / get by key, with [`ClipMeta`] as object
//! metadata) and its backends.
//!
//! - [`local::LocalClipStore`]: a directory (embedded deployment); `root/<key>` holds the bytes
//!   and `root/<key>.json` the metadata. The edge's `LocalDirSink` writes through it.
//! - [`s3::S3ClipStore`] (feature `aws`): an S3 bucket (AWS deployment).
//!
//! Beside the clips, a store keeps the **answer ledger** (`answers/...`): one small object per clip
//! version a function instance claimed or answered ([`ClipStore::claim`]), so that duplicate
//! deliveries of one version reaching *different* instances (Lambda sandboxes, workers) are
//! analysed once: a second instance republishes the recorded result, or leaves the event for a
//! later delivery while the first still holds it.
//!
//! The trait's methods return `Send` futures so that network backends (the AWS SDK is async)
//! implement it directly; the local backend's futures complete without waiting. Every key is
//! checked with [`validate_key`] before it touches a backend.

use std::future::Future;
use std::path::PathBuf;

pub use crate::ids::{validate_key, InvalidKey, MAX_KEY_LEN, MAX_KEY_SEGMENT_LEN};
use crate::wire::{unix_now_ns, ClipMeta, PartialClipMeta, RecognitionResult};

pub mod local;
#[cfg(feature = "aws")]
pub mod s3;

pub use local::LocalClipStore;

/// Default largest clip the function fetches (8 MiB).
pub const DEFAULT_MAX_CLIP_BYTES: usize = 8 * 1024 * 1024;

/// Why a store operation failed. Every variant names the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is refused by [`validate_key`]. Not retryable.
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
    /// Nothing is stored under the key.
    #[error("no clip stored under {key}")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The object is larger than the caller's limit; it was not read.
    #[error("clip {key}: {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The key.
        key: String,
        /// The object's size in bytes.
        size: u64,
        /// The caller's limit in bytes.
        limit: u64,
    },
    /// A file system operation failed.
    #[error("clip {key}: I/O error on {}: {source}", path.display())]
    Io {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The object's metadata is not JSON or has a field of the wrong type.
    #[error("clip {key}: unreadable metadata: {message}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong with the metadata.
        message: String,
    },
    /// Any other backend failure (network, service error, permissions...).
    #[error("clip {key}: {backend} store: {message}")]
    Backend {
        /// The key.
        key: String,
        /// The backend (`"s3"`).
        backend: &'static str,
        /// The backend's message.
        message: String,
        /// Whether the same call may succeed later.
        retryable: bool,
    },
}

impl StoreError {
    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            StoreError::InvalidKey(e) => &e.key,
            StoreError::NotFound { key }
            | StoreError::TooLarge { key, .. }
            | StoreError::Io { key, .. }
            | StoreError::Metadata { key, .. }
            | StoreError::Backend { key, .. } => key,
        }
    }

    /// Whether the same call may succeed later (I/O hiccups, throttling, network).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Io { .. } => true,
            StoreError::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// A clip read back from a store.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredClip {
    /// The Annex-B bytes.
    pub bytes: Vec<u8>,
    /// Its metadata as stored, when the object carries any (any subset of the fields: see
    /// [`PartialClipMeta::resolve`]).
    pub meta: Option<PartialClipMeta>,
    /// The object's version (S3: the entity tag without quotes; local store:
    /// [`content_version`]), when the store tells.
    pub version: Option<String>,
    /// When the store received the object (S3 `LastModified`, the file's modification time), ns
    /// since the Unix epoch.
    pub stored_ns: Option<u64>,
}

/// The version of a clip's bytes in stores without entity tags (the local store): a hash of the
/// content and its length. Stable within one build of rollcall, which is all the in-process
/// idempotency memory needs.
pub fn content_version(bytes: &[u8]) -> String {
    use std::hash::{DefaultHasher, Hasher};
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    format!("{:016x}-{}", hasher.finish(), bytes.len())
}

/// Prefix of the answer ledger's objects (outside `clips/`, so writing them triggers nothing and
/// devices, whose write permission covers `clips/<device>/*` only, cannot forge answers).
pub const ANSWERS_PREFIX: &str = "answers/";

/// The ledger key of one version of the clip under `key`: `answers/<key>/<version>`, the version
/// reduced to `[A-Za-z0-9_-]` (S3 entity tags are hex, multipart ones end in `-<parts>`).
pub fn answer_key(key: &str, version: &str) -> String {
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{ANSWERS_PREFIX}{key}/{version}")
}

/// What the answer ledger says about one clip version when an instance asks to claim it.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Nobody had claimed it: the caller holds it now, and answers or releases it.
    Claimed,
    /// Another instance claimed it at `since_ns` (ns since the Unix epoch) and has not answered.
    HeldBy {
        /// The holder's instance id.
        holder: String,
        /// When it claimed the version.
        since_ns: u64,
    },
    /// Already answered: the result that was published.
    Answered(Box<RecognitionResult>),
}

/// One ledger object: who claimed the version when, and the result once answered.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    /// Instance id of the claimer.
    pub holder: String,
    /// When it claimed (or answered) the version, ns since the Unix epoch.
    pub since_ns: u64,
    /// The published result, once answered.
    #[serde(default)]
    pub result: Option<RecognitionResult>,
}

impl LedgerEntry {
    /// A fresh claim by `holder`.
    pub fn claim(holder: &str) -> LedgerEntry {
        LedgerEntry {
            holder: holder.to_string(),
            since_ns: unix_now_ns(),
            result: None,
        }
    }

    /// The answer `holder` published.
    pub fn answered(holder: &str, result: &RecognitionResult) -> LedgerEntry {
        LedgerEntry {
            result: Some(result.clone()),
            ..LedgerEntry::claim(holder)
        }
    }

    /// What a reader of this entry learns. An entry that cannot be parsed (damaged, or released
    /// between a failed claim and the read) counts as held since now: the delivery is handed
    /// back and tried again.
    pub fn read(bytes: &[u8]) -> Claim {
        match serde_json::from_slice::<LedgerEntry>(bytes) {
            Ok(LedgerEntry {
                result: Some(result),
                ..
            }) => Claim::Answered(Box::new(result)),
            Ok(entry) => Claim::HeldBy {
                holder: entry.holder,
                since_ns: entry.since_ns,
            },
            Err(_) => Claim::HeldBy {
                holder: String::new(),
                since_ns: unix_now_ns(),
            },
        }
    }

    /// The entry as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A RecognitionResult always serialises (finite floats are not guaranteed: NaN becomes
        // null, which reads back as an entry without a result).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Where clips live between the edge and the function: get and put by key, with [`ClipMeta`] as
/// object metadata.
///
/// `put` is idempotent (the edge retries; the same clip may be put twice). Implementations are
/// shared between threads. Futures are `Send` so a multi-threaded async runtime can drive them;
/// callers on plain threads use a runtime handle's `block_on`.
pub trait ClipStore: Send + Sync {
    /// Short backend name for messages (`"local"`, `"s3"`).
    fn backend(&self) -> &'static str;

    /// Store `bytes` under `key` with `meta` as metadata, replacing any earlier object.
    fn put(
        &self,
        key: &str,
        meta: &ClipMeta,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Read the object under `key`; [`StoreError::TooLarge`] without reading it when it is over
    /// `max_bytes`.
    fn get(
        &self,
        key: &str,
        max_bytes: usize,
    ) -> impl Future<Output = Result<StoredClip, StoreError>> + Send;

    /// Claim the answering of `version` of the clip under `key` for instance `holder`, atomically
    /// across every process sharing the store (S3: a conditional put, `If-None-Match: *`; local:
    /// exclusive file creation). See [`Claim`].
    fn claim(
        &self,
        key: &str,
        version: &str,
        holder: &str,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Record `result` as the published answer of `version` of `key` (replacing the claim).
    fn record_answer(
        &self,
        key: &str,
        version: &str,
        holder: &str,
        result: &RecognitionResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Give up a claim that was not answered (the result could not be published), so another
    /// delivery may take it at once. Releasing a version nobody claimed is not an error.
    fn release_claim(
        &self,
        key: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: ClipStore> ClipStore for std::sync::Arc<T> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn put(
        &self,
        key: &str,
        meta: &ClipMeta,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put(key, meta, bytes)
    }
    fn get(
        &self,
        key: &str,
        max_bytes: usize,
    ) -> impl Future<Output = Result<StoredClip, StoreError>> + Send {
        (**self).get(key, max_bytes)
    }
    fn claim(
        &self,
        key: &str,
        version: &str,
        holder: &str,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(key, version, holder)
    }
    fn record_answer(
        &self,
        key: &str,
        version: &str,
        holder: &str,
        result: &RecognitionResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_answer(key, version, holder, result)
    }
    fn release_claim(
        &self,
        key: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release_claim(key, version)
    }
}
