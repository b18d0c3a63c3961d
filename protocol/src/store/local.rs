//! A directory as the object store: the embedded deployment's "bucket".
//!
//! Layout: `root/<key>` holds a clip's bytes and `root/<key>.json` its [`ClipMeta`]
//! (e.g. `clips/pi-1/s1/00000003.h264` and `clips/pi-1/s1/00000003.h264.json`). Both are written
//! to a temporary name and renamed into place, metadata first: once the bytes exist under their
//! key, the metadata is there too. Keys are checked with [`validate_key`], so nothing outside
//! `root` can be named.
//!
//! A store can announce every successful put to a notifier ([`LocalClipStore::on_created`]), the
//! local counterpart of an S3 `ObjectCreated` notification.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{
    answer_key, content_version, validate_key, Claim, ClipStore, InvalidKey, LedgerEntry,
    StoreError, StoredClip,
};
use crate::input_files::open_regular_file;
use crate::wire::{ClipEvent, ClipMeta, PartialClipMeta, RecognitionResult};

/// Called after every successful put, on the putting thread.
pub type CreatedFn = dyn Fn(ClipEvent) + Send + Sync;

/// The object store in a local directory; see the [module docs](self).
///
/// ```
/// use rollcall_protocol::store::{ClipStore, LocalClipStore};
/// # use rollcall_protocol::wire::ClipMeta;
/// # let meta: ClipMeta = serde_json::from_str(r#"{"device_id":"pi-1","session_id":"s1","seq":3,
/// #   "first_frame_ns":0,"last_frame_ns":0,"closed_ns":0,"fps":30.0,"width":640,"height":480,
/// #   "frame_count":15,"codec":"h264-annexb"}"#).unwrap();
/// let dir = tempfile::tempdir()?;
/// let store = LocalClipStore::new(dir.path());
/// store.put_blocking(&meta.object_key(), &meta, b"\0\0\0\x01clip")?;
/// let clip = store.get_blocking("clips/pi-1/s1/00000003.h264", 1 << 20)?;
/// assert_eq!(clip.meta, Some(meta.into()));
/// assert!(store.get_blocking("../etc/passwd", 1 << 20).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalClipStore {
    root: PathBuf,
    durable: bool,
    notify: Option<Arc<CreatedFn>>,
}

impl std::fmt::Debug for LocalClipStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClipStore")
            .field("root", &self.root)
            .field("durable", &self.durable)
            .field("notifies", &self.notify.is_some())
            .finish()
    }
}

impl LocalClipStore {
    /// A store rooted at `root` (created on the first put if missing). Puts are durable (synced
    /// to disk before the rename) by default.
    pub fn new(root: impl Into<PathBuf>) -> LocalClipStore {
        LocalClipStore {
            root: root.into(),
            durable: true,
            notify: None,
        }
    }

    /// Whether puts `fsync` the files before renaming them into place (default true). A store
    /// that only lives as long as one process (an embedded session) can skip it.
    pub fn durable(mut self, durable: bool) -> LocalClipStore {
        self.durable = durable;
        self
    }

    /// Call `notify` with a [`ClipEvent`] after every successful put ("clip created").
    pub fn on_created(mut self, notify: impl Fn(ClipEvent) + Send + Sync + 'static) -> Self {
        self.notify = Some(Arc::new(notify));
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the bytes stored under `key`, if the key is valid.
    pub fn path_for(&self, key: &str) -> Result<PathBuf, InvalidKey> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Path of the metadata stored with `key`, if the key is valid.
    pub fn meta_path_for(&self, key: &str) -> Result<PathBuf, InvalidKey> {
        let mut path = self.path_for(key)?.into_os_string();
        path.push(".json");
        Ok(PathBuf::from(path))
    }

    /// [`ClipStore::put`] on the calling thread.
    pub fn put_blocking(&self, key: &str, meta: &ClipMeta, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_for(key)?;
        let meta_path = self.meta_path_for(key)?;
        let json = serde_json::to_vec_pretty(meta).map_err(|e| StoreError::Metadata {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        create_parent(key, &path)?;
        self.write_atomic(key, &meta_path, &json)?;
        self.write_atomic(key, &path, bytes)?;
        tracing::debug!(%key, bytes = bytes.len(), root = %self.root.display(), "clip stored");
        if let Some(notify) = &self.notify {
            notify(ClipEvent {
                key: key.to_string(),
                meta: meta.clone(),
                version: Some(content_version(bytes)),
            });
        }
        Ok(())
    }

    /// [`ClipStore::get`] on the calling thread. A clip stored without metadata file comes back
    /// with `meta: None`; its version is [`content_version`], its time the file's.
    pub fn get_blocking(&self, key: &str, max_bytes: usize) -> Result<StoredClip, StoreError> {
        let path = self.path_for(key)?;
        let meta_path = self.meta_path_for(key)?;
        let io_error = |path: &Path, source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound {
                    key: key.to_string(),
                }
            } else {
                StoreError::Io {
                    key: key.to_string(),
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        // Only a regular file is a clip: a FIFO or a device put in the store is refused without
        // blocking the worker.
        let file = open_regular_file(&path).map_err(|e| match e.kind() {
            // Not a regular file (a folder, a FIFO, ...): no clip by that key.
            io::ErrorKind::InvalidInput => StoreError::NotFound {
                key: key.to_string(),
            },
            _ => io_error(&path, e),
        })?;
        let metadata = file.metadata().map_err(|e| io_error(&path, e))?;
        let size = metadata.len();
        let stored_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        if size > max_bytes as u64 {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                size,
                limit: max_bytes as u64,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // Read one byte past the limit: a file that grew since the size check is still refused.
        file.take((max_bytes as u64).saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(&path, e))?;
        if bytes.len() > max_bytes {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                size: bytes.len() as u64,
                limit: max_bytes as u64,
            });
        }
        let meta =
            match fs::read(&meta_path) {
                Ok(json) => Some(serde_json::from_slice::<PartialClipMeta>(&json).map_err(
                    |e| StoreError::Metadata {
                        key: key.to_string(),
                        message: format!("{}: {e}", meta_path.display()),
                    },
                )?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error(&meta_path, e)),
            };
        Ok(StoredClip {
            version: Some(content_version(&bytes)),
            bytes,
            meta,
            stored_ns,
        })
    }

    /// [`ClipStore::claim`] on the calling thread: the ledger file is created exclusively.
    pub fn claim_blocking(
        &self,
        key: &str,
        version: &str,
        holder: &str,
    ) -> Result<Claim, StoreError> {
        let path = self.ledger_path(key, version)?;
        create_parent(key, &path)?;
        let io_error = |path: &Path, source: io::Error| StoreError::Io {
            key: key.to_string(),
            path: path.to_path_buf(),
            source,
        };
        // The entry is written whole under a temporary name, then linked into place: linking
        // fails when the name exists (the exclusive part) and never shows a half-written entry.
        let tmp = self.temp_path(&path);
        let written = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&LedgerEntry::claim(holder).to_bytes())?;
            if self.durable {
                file.sync_all()?;
            }
            Ok::<_, io::Error>(())
        })();
        let linked = written.and_then(|()| fs::hard_link(&tmp, &path));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Claim::Claimed),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let mut bytes = Vec::new();
                open_regular_file(&path)
                    .and_then(|file| file.take(1 << 20).read_to_end(&mut bytes))
                    .map_err(|e| io_error(&path, e))?;
                Ok(LedgerEntry::read(&bytes))
            }
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// [`ClipStore::record_answer`] on the calling thread.
    pub fn record_answer_blocking(
        &self,
        key: &str,
        version: &str,
        holder: &str,
        result: &RecognitionResult,
    ) -> Result<(), StoreError> {
        let path = self.ledger_path(key, version)?;
        create_parent(key, &path)?;
        let entry = LedgerEntry::answered(holder, result);
        self.write_atomic(key, &path, &entry.to_bytes())
    }

    /// [`ClipStore::release_claim`] on the calling thread.
    pub fn release_claim_blocking(&self, key: &str, version: &str) -> Result<(), StoreError> {
        let path = self.ledger_path(key, version)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
                key: key.to_string(),
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The ledger file of `version` of `key`.
    fn ledger_path(&self, key: &str, version: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        let ledger = answer_key(key, version);
        validate_key(&ledger)?;
        Ok(self.root.join(&ledger))
    }

    /// A temporary name beside `path`, unique to this process and call (the counter is shared
    /// by every store of the process: two stores on one folder must not pick the same name).
    fn temp_path(&self, path: &Path) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
    }

    fn write_atomic(&self, key: &str, path: &Path, data: &[u8]) -> Result<(), StoreError> {
        let tmp = self.temp_path(path);
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            if self.durable {
                f.sync_all()?;
            }
            fs::rename(&tmp, path)
        })();
        result.map_err(|source| {
            let _ = fs::remove_file(&tmp);
            StoreError::Io {
                key: key.to_string(),
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

/// Create the folder `path` (of `key`) goes into.
fn create_parent(key: &str, path: &Path) -> Result<(), StoreError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    fs::create_dir_all(parent).map_err(|source| StoreError::Io {
        key: key.to_string(),
        path: parent.to_path_buf(),
        source,
    })
}

impl ClipStore for LocalClipStore {
    fn backend(&self) -> &'static str {
        "local"
    }

    /// Writes on the calling thread (small files, local disk); the future is ready at once.
    async fn put(&self, key: &str, meta: &ClipMeta, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_blocking(key, meta, bytes)
    }

    /// Reads on the calling thread; the future is ready at once.
    async fn get(&self, key: &str, max_bytes: usize) -> Result<StoredClip, StoreError> {
        self.get_blocking(key, max_bytes)
    }

    async fn claim(&self, key: &str, version: &str, holder: &str) -> Result<Claim, StoreError> {
        self.claim_blocking(key, version, holder)
    }

    async fn record_answer(
        &self,
        key: &str,
        version: &str,
        holder: &str,
        result: &RecognitionResult,
    ) -> Result<(), StoreError> {
        self.record_answer_blocking(key, version, holder, result)
    }

    async fn release_claim(&self, key: &str, version: &str) -> Result<(), StoreError> {
        self.release_claim_blocking(key, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CLIP_CODEC_H264_ANNEXB;
    use std::sync::Mutex;

    fn meta(seq: u64) -> ClipMeta {
        ClipMeta {
            device_id: "pi-1".into(),
            session_id: "s1".into(),
            seq,
            first_frame_ns: 1,
            last_frame_ns: 2,
            closed_ns: 3,
            fps: 30.0,
            width: 64,
            height: 48,
            frame_count: 15,
            codec: CLIP_CODEC_H264_ANNEXB.into(),
        }
    }

    #[test]
    fn put_get_layout_and_notification() {
        let dir = tempfile::tempdir().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        let store = LocalClipStore::new(dir.path().join("objects"))
            .durable(false)
            .on_created(move |e| seen.lock().unwrap().push(e));
        let m = meta(3);
        store.put_blocking(&m.object_key(), &m, b"bytes").unwrap();
        let bytes_path = dir.path().join("objects/clips/pi-1/s1/00000003.h264");
        assert_eq!(fs::read(&bytes_path).unwrap(), b"bytes");
        let json = fs::read(dir.path().join("objects/clips/pi-1/s1/00000003.h264.json")).unwrap();
        assert_eq!(serde_json::from_slice::<ClipMeta>(&json).unwrap(), m);
        let got = store.get_blocking(&m.object_key(), 5).unwrap();
        assert_eq!(got.bytes, b"bytes");
        assert_eq!(
            store.get_blocking(&m.object_key(), usize::MAX).unwrap(),
            got,
            "no limit"
        );
        assert_eq!(got.meta, Some(PartialClipMeta::from(m.clone())));
        assert_eq!(got.version, Some(content_version(b"bytes")));
        assert!(got.stored_ns.is_some_and(|t| t > 0));
        assert_eq!(
            events.lock().unwrap().as_slice(),
            &[ClipEvent {
                version: got.version.clone(),
                ..ClipEvent::for_clip(m.clone())
            }]
        );
        // An overwrite with other bytes is another version.
        store.put_blocking(&m.object_key(), &m, b"other").unwrap();
        assert_ne!(
            store.get_blocking(&m.object_key(), 5).unwrap().version,
            got.version
        );
        // Idempotent put.
        store.put_blocking(&m.object_key(), &m, b"bytes").unwrap();
        assert_eq!(
            store.get_blocking(&m.object_key(), 5).unwrap().version,
            got.version
        );
        assert_eq!(
            store.get_blocking(&m.object_key(), 5).unwrap().bytes,
            b"bytes"
        );
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(bytes_path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn limits_missing_and_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalClipStore::new(dir.path());
        let m = meta(1);
        store
            .put_blocking(&m.object_key(), &m, &[7u8; 100])
            .unwrap();
        match store.get_blocking(&m.object_key(), 99).unwrap_err() {
            StoreError::TooLarge { key, size, limit } => {
                assert_eq!(
                    (key.as_str(), size, limit),
                    (m.object_key().as_str(), 100, 99)
                )
            }
            e => panic!("{e}"),
        }
        let e = store.get_blocking("clips/none.h264", 10).unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("clips/none.h264"));
        // A directory is not a clip, nor is a FIFO (refused without blocking).
        let e = store.get_blocking("clips", 10).unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
        #[cfg(target_os = "linux")]
        {
            let fifo = dir.path().join("fifo.h264");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            assert!(made.is_ok_and(|s| s.success()));
            let e = store.get_blocking("fifo.h264", 10).unwrap_err();
            assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
        }
        // Bytes without metadata.
        fs::write(dir.path().join("loose.h264"), b"x").unwrap();
        assert_eq!(store.get_blocking("loose.h264", 10).unwrap().meta, None);
        // Partial metadata (a foreign client's).
        fs::write(dir.path().join("loose.h264.json"), br#"{"fps": 25.0}"#).unwrap();
        assert_eq!(
            store
                .get_blocking("loose.h264", 10)
                .unwrap()
                .meta
                .unwrap()
                .fps,
            Some(25.0)
        );
        // Damaged metadata.
        fs::write(dir.path().join("loose.h264.json"), b"{").unwrap();
        let e = store.get_blocking("loose.h264", 10).unwrap_err();
        assert!(matches!(e, StoreError::Metadata { .. }), "{e}");
        for bad in [
            "../escape.h264",
            "/etc/passwd",
            "a\\b",
            "a/../../b",
            "a\u{1b}b",
            "",
        ] {
            let e = store.put_blocking(bad, &m, b"x").unwrap_err();
            assert!(matches!(e, StoreError::InvalidKey(_)), "{bad:?}: {e}");
            assert!(!e.is_retryable());
            assert_eq!(e.key(), bad);
            assert!(store.get_blocking(bad, 10).is_err());
        }
        assert!(!dir.path().parent().unwrap().join("escape.h264").exists());
    }

    #[test]
    fn the_answer_ledger_is_claimed_once_per_version_across_store_handles() {
        let dir = tempfile::tempdir().unwrap();
        // Two handles on one folder stand for two processes: nothing is shared but the files.
        let (a, b) = (
            LocalClipStore::new(dir.path()),
            LocalClipStore::new(dir.path()),
        );
        let m = meta(4);
        let key = m.object_key();
        assert_eq!(
            a.claim_blocking(&key, "v1", "inst-a").unwrap(),
            Claim::Claimed
        );
        match b.claim_blocking(&key, "v1", "inst-b").unwrap() {
            Claim::HeldBy { holder, since_ns } => {
                assert_eq!(holder, "inst-a");
                assert!(since_ns > 0);
            }
            other => panic!("{other:?}"),
        }
        // Another version of the same key (an overwrite) is claimed anew.
        assert_eq!(
            b.claim_blocking(&key, "v2", "inst-b").unwrap(),
            Claim::Claimed
        );
        let mut result = RecognitionResult::empty_for(&m);
        result.instance_id = "inst-a".into();
        a.record_answer_blocking(&key, "v1", "inst-a", &result)
            .unwrap();
        assert_eq!(
            b.claim_blocking(&key, "v1", "inst-b").unwrap(),
            Claim::Answered(Box::new(result))
        );
        // A released claim can be taken at once; releasing twice is fine.
        b.release_claim_blocking(&key, "v2").unwrap();
        b.release_claim_blocking(&key, "v2").unwrap();
        assert_eq!(
            a.claim_blocking(&key, "v2", "inst-a").unwrap(),
            Claim::Claimed
        );
        // The ledger lives outside clips/ and cannot be steered out of the store.
        assert!(dir.path().join(answer_key(&key, "v1")).is_file());
        assert!(answer_key(&key, "v1").starts_with("answers/clips/"));
        assert!(a.claim_blocking("../x.h264", "v1", "inst-a").is_err());
        assert_eq!(
            answer_key("clips/a/b/00000001.h264", "../../etc"),
            "answers/clips/a/b/00000001.h264/______etc"
        );
    }
}
