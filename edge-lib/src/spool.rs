//! On-disk spool of encoded clips waiting for upload.
//!
//! Layout: `<dir>/<device_id>/<session_id>/<seq:08>.h264` (the Annex-B bytes) and
//! `<seq:08>.json` (the [`ClipMeta`]). Both are written to a temporary name, synced and renamed
//! into place, bytes first: a clip exists once its `.json` does. Anything else found by
//! [`ClipSpool::open`] (temporary files, bytes without metadata) is debris of a crash and is
//! removed; complete clips are recovered and uploaded like new ones.
//!
//! The spool is bounded in bytes: when a new clip does not fit, the oldest clips not being
//! uploaded right now are evicted, counted as dropped and logged as warnings. Clips come out
//! oldest first: sessions in the order they started, clips of a session in `seq` order.
//!
//! A `ClipSpool` is shared between the capture thread ([`push`](ClipSpool::push)) and the
//! upload workers ([`claim_next`](ClipSpool::claim_next), [`remove`](ClipSpool::remove),
//! [`release`](ClipSpool::release)) through an `Arc`; one directory must be used by one
//! `ClipSpool` (one process) at a time.

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rollcall_protocol::wire::ClipMeta;

use crate::segment::EncodedClip;
use crate::source::now_ns;
use rollcall_protocol::ids::{validate_id, InvalidId};

/// Why a spool operation failed. Every variant names the file or clip involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system operation failed.
    #[error("spool I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The clip's device or session id cannot be used as a file name.
    #[error("cannot spool clip: {0}")]
    InvalidId(#[from] InvalidId),
    /// The clip alone is larger than the whole spool; it was not stored (and counts as dropped).
    #[error("clip {clip_id} ({bytes} bytes) is larger than the spool limit of {max_bytes} bytes in {dir}")]
    TooLarge {
        /// `device/session/seq` of the clip.
        clip_id: String,
        /// Its size on disk (bytes + metadata).
        bytes: u64,
        /// The spool's limit.
        max_bytes: u64,
        /// The spool directory.
        dir: PathBuf,
    },
    /// A clip's metadata cannot be serialised.
    #[error("cannot serialise the metadata of clip {clip_id}: {reason}")]
    Metadata {
        /// `device/session/seq` of the clip.
        clip_id: String,
        /// The serialiser's message.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Result of a [`ClipSpool::push`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PushOutcome {
    /// Clips evicted (deleted without upload) to make room, oldest first.
    pub evicted: Vec<ClipMeta>,
}

/// A clip taken out of the spool for upload; it stays on disk until
/// [`ClipSpool::remove`] (success) or goes back with [`ClipSpool::release`] (failure).
#[derive(Debug, Clone)]
pub struct SpooledClip {
    /// The clip's metadata.
    pub meta: ClipMeta,
    /// The clip's Annex-B bytes.
    pub bytes: Vec<u8>,
    /// How long the clip waited in the spool before this claim: since its push in this
    /// process, or since it was closed (wall clock) for clips recovered after a restart.
    pub spool_wait: Duration,
}

/// Counters of a spool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Clips in the spool (including those being uploaded).
    pub clips: usize,
    /// Bytes on disk (clip bytes + metadata).
    pub bytes: u64,
    /// Clips being uploaded right now.
    pub in_flight: usize,
    /// Clips dropped since open (evicted, too large, unreadable).
    pub dropped: u64,
    /// Clips found on disk by `open` (left by an earlier process).
    pub recovered: usize,
}

/// Order of clips: session start (ns), device, session, seq.
type Key = (u64, String, String, u64);

struct Entry {
    meta: ClipMeta,
    disk_bytes: u64,
    /// `None` for clips recovered from disk.
    pushed_at: Option<Instant>,
    in_flight: bool,
    not_before: Option<Instant>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<Key, Entry>,
    /// First `closed_ns` seen per (device, session): orders sessions.
    session_start: HashMap<(String, String), u64>,
    total_bytes: u64,
    dropped: u64,
    recovered: usize,
}

impl State {
    fn key_for(&mut self, meta: &ClipMeta) -> Key {
        let start = *self
            .session_start
            .entry((meta.device_id.clone(), meta.session_id.clone()))
            .or_insert(meta.closed_ns);
        (
            start,
            meta.device_id.clone(),
            meta.session_id.clone(),
            meta.seq,
        )
    }

    fn find_key(&self, meta: &ClipMeta) -> Option<Key> {
        let start = *self
            .session_start
            .get(&(meta.device_id.clone(), meta.session_id.clone()))?;
        let key = (
            start,
            meta.device_id.clone(),
            meta.session_id.clone(),
            meta.seq,
        );
        self.entries.contains_key(&key).then_some(key)
    }
}

/// The on-disk spool; see the [module docs](self).
pub struct ClipSpool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    changed: Condvar,
    tmp_counter: AtomicU64,
}

impl std::fmt::Debug for ClipSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipSpool")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ClipSpool {
    /// Opens (creating it if needed) the spool in `dir`, bounded to `max_bytes` on disk, and
    /// recovers the clips an earlier process left there. Recovered clips beyond `max_bytes`
    /// are evicted oldest first.
    pub fn open(dir: impl AsRef<Path>, max_bytes: u64) -> Result<Self, SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let spool = Self {
            dir,
            max_bytes,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            tmp_counter: AtomicU64::new(0),
        };
        spool.recover()?;
        {
            let mut state = spool.lock();
            let evicted = spool.evict_to_fit(&mut state, 0);
            if !evicted.is_empty() {
                tracing::warn!(dir = %spool.dir.display(), evicted = evicted.len(), "recovered clips exceed the spool limit");
            }
            let stats = Self::stats_of(&state);
            tracing::info!(
                dir = %spool.dir.display(),
                clips = stats.clips,
                bytes = stats.bytes,
                max_bytes,
                "spool opened"
            );
        }
        Ok(spool)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The byte limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state (counters only).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn clip_paths(&self, meta: &ClipMeta) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(&meta.device_id).join(&meta.session_id);
        (
            dir.join(format!("{:08}.h264", meta.seq)),
            dir.join(format!("{:08}.json", meta.seq)),
        )
    }

    /// Stores a clip durably (temporary file, fsync, rename; metadata last), evicting the
    /// oldest clips not being uploaded if the spool would exceed its limit.
    pub fn push(&self, clip: &EncodedClip) -> Result<PushOutcome, SpoolError> {
        let meta = &clip.meta;
        validate_id("device id", &meta.device_id)?;
        validate_id("session id", &meta.session_id)?;
        let json = serde_json::to_vec_pretty(meta).map_err(|e| SpoolError::Metadata {
            clip_id: meta.clip_id(),
            reason: e.to_string(),
        })?;
        let disk_bytes = (clip.bytes.len() + json.len()) as u64;
        if disk_bytes > self.max_bytes {
            self.lock().dropped += 1;
            tracing::warn!(clip = %meta.clip_id(), disk_bytes, max_bytes = self.max_bytes, "clip larger than the whole spool: dropped");
            return Err(SpoolError::TooLarge {
                clip_id: meta.clip_id(),
                bytes: disk_bytes,
                max_bytes: self.max_bytes,
                dir: self.dir.clone(),
            });
        }
        let (bytes_path, json_path) = self.clip_paths(meta);
        if let Some(parent) = bytes_path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        self.write_atomic(&bytes_path, &clip.bytes)?;
        self.write_atomic(&json_path, &json)?;

        let mut state = self.lock();
        if let Some(old_key) = state.find_key(meta) {
            // Same clip pushed again: replace it.
            if let Some(old) = state.entries.remove(&old_key) {
                state.total_bytes = state.total_bytes.saturating_sub(old.disk_bytes);
            }
        }
        let evicted = self.evict_to_fit(&mut state, disk_bytes);
        let key = state.key_for(meta);
        state.entries.insert(
            key,
            Entry {
                meta: meta.clone(),
                disk_bytes,
                pushed_at: Some(Instant::now()),
                in_flight: false,
                not_before: None,
            },
        );
        state.total_bytes += disk_bytes;
        if state.total_bytes > self.max_bytes {
            tracing::debug!(
                total = state.total_bytes,
                max = self.max_bytes,
                "spool over its limit while clips are being uploaded"
            );
        }
        drop(state);
        self.changed.notify_all();
        tracing::debug!(clip = %meta.clip_id(), disk_bytes, "clip spooled");
        Ok(PushOutcome { evicted })
    }

    /// Evicts the oldest clips not in flight until `incoming` more bytes fit (or nothing more
    /// can be evicted). Deletes their files.
    fn evict_to_fit(&self, state: &mut State, incoming: u64) -> Vec<ClipMeta> {
        let mut evicted = Vec::new();
        while state.total_bytes + incoming > self.max_bytes {
            let Some(key) = state
                .entries
                .iter()
                .find(|(_, e)| !e.in_flight)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            let Some(entry) = state.entries.remove(&key) else {
                break;
            };
            state.total_bytes = state.total_bytes.saturating_sub(entry.disk_bytes);
            state.dropped += 1;
            self.delete_files(&entry.meta);
            tracing::warn!(
                clip = %entry.meta.clip_id(),
                dir = %self.dir.display(),
                max_bytes = self.max_bytes,
                "spool full: evicted the oldest clip without uploading it"
            );
            evicted.push(entry.meta);
        }
        evicted
    }

    fn delete_files(&self, meta: &ClipMeta) {
        let (bytes_path, json_path) = self.clip_paths(meta);
        // Metadata first: a clip without metadata is debris that `open` cleans up.
        for path in [json_path, bytes_path] {
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete spooled file");
                }
            }
        }
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), SpoolError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("clip");
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        result.map_err(|source| {
            let _ = fs::remove_file(&tmp);
            SpoolError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Metadata of the oldest clip in the spool (whether or not it is being uploaded).
    pub fn oldest(&self) -> Option<ClipMeta> {
        self.lock().entries.values().next().map(|e| e.meta.clone())
    }

    /// Metadata of every clip in the spool, oldest first.
    pub fn clips(&self) -> Vec<ClipMeta> {
        self.lock()
            .entries
            .values()
            .map(|e| e.meta.clone())
            .collect()
    }

    /// Takes the oldest clip that is neither being uploaded nor waiting for a retry, marks it
    /// as being uploaded and reads its bytes. A clip whose files vanished or cannot be read is
    /// dropped (logged as an error and counted) and the next one is tried.
    pub fn claim_next(&self) -> Option<SpooledClip> {
        loop {
            let (meta, pushed_at) = {
                let mut state = self.lock();
                let now = Instant::now();
                let entry = state
                    .entries
                    .values_mut()
                    .find(|e| !e.in_flight && e.not_before.is_none_or(|t| t <= now))?;
                entry.in_flight = true;
                entry.not_before = None;
                (entry.meta.clone(), entry.pushed_at)
            };
            let (bytes_path, _) = self.clip_paths(&meta);
            match fs::read(&bytes_path) {
                Ok(bytes) => {
                    let spool_wait = match pushed_at {
                        Some(t) => t.elapsed(),
                        None => Duration::from_nanos(now_ns().saturating_sub(meta.closed_ns)),
                    };
                    return Some(SpooledClip {
                        meta,
                        bytes,
                        spool_wait,
                    });
                }
                Err(e) => {
                    tracing::error!(
                        clip = %meta.clip_id(),
                        path = %bytes_path.display(),
                        error = %e,
                        "spooled clip unreadable: dropped"
                    );
                    let mut state = self.lock();
                    if let Some(key) = state.find_key(&meta) {
                        if let Some(entry) = state.entries.remove(&key) {
                            state.total_bytes = state.total_bytes.saturating_sub(entry.disk_bytes);
                        }
                    }
                    state.dropped += 1;
                    drop(state);
                    self.delete_files(&meta);
                }
            }
        }
    }

    /// Deletes a clip after a successful upload. Removing a clip that is not in the spool
    /// (evicted meanwhile, removed twice) is not an error.
    pub fn remove(&self, meta: &ClipMeta) -> Result<(), SpoolError> {
        let mut state = self.lock();
        let Some(key) = state.find_key(meta) else {
            return Ok(());
        };
        let (bytes_path, json_path) = self.clip_paths(meta);
        // Metadata first: if deleting the bytes then fails, they are debris, not a re-upload.
        if let Err(e) = fs::remove_file(&json_path) {
            if e.kind() != io::ErrorKind::NotFound {
                // Still a complete clip on disk: keep it (it will be uploaded again).
                if let Some(entry) = state.entries.get_mut(&key) {
                    entry.in_flight = false;
                }
                return Err(SpoolError::Io {
                    path: json_path,
                    source: e,
                });
            }
        }
        remove_quietly(&bytes_path);
        if let Some(entry) = state.entries.remove(&key) {
            state.total_bytes = state.total_bytes.saturating_sub(entry.disk_bytes);
        }
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    /// Puts a claimed clip back after a failed upload; it becomes eligible again after
    /// `retry_after` (immediately if `None`).
    pub fn release(&self, meta: &ClipMeta, retry_after: Option<Duration>) {
        let mut state = self.lock();
        if let Some(key) = state.find_key(meta) {
            if let Some(entry) = state.entries.get_mut(&key) {
                entry.in_flight = false;
                entry.not_before = retry_after.map(|d| Instant::now() + d);
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Waits until a clip may be claimable or `timeout` passes, whichever comes first. Returns
    /// early on any change to the spool (push, release, remove) or [`wake`](Self::wake).
    pub fn wait_for_work(&self, timeout: Duration) {
        let state = self.lock();
        let now = Instant::now();
        let ready = state
            .entries
            .values()
            .any(|e| !e.in_flight && e.not_before.is_none_or(|t| t <= now));
        if ready {
            return;
        }
        // Wake up in time for the earliest retry.
        let next_retry = state
            .entries
            .values()
            .filter(|e| !e.in_flight)
            .filter_map(|e| e.not_before)
            .min()
            .map(|t| t.saturating_duration_since(now));
        let wait = next_retry.map_or(timeout, |d| d.min(timeout));
        let _unused = self.changed.wait_timeout(state, wait);
    }

    /// Wakes every thread blocked in [`wait_for_work`](Self::wait_for_work).
    pub fn wake(&self) {
        self.changed.notify_all();
    }

    /// Whether the spool holds no clip at all.
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// Number of clips in the spool.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Counters.
    pub fn stats(&self) -> SpoolStats {
        Self::stats_of(&self.lock())
    }

    fn stats_of(state: &State) -> SpoolStats {
        SpoolStats {
            clips: state.entries.len(),
            bytes: state.total_bytes,
            in_flight: state.entries.values().filter(|e| e.in_flight).count(),
            dropped: state.dropped,
            recovered: state.recovered,
        }
    }

    /// Scans the directory for clips left by an earlier process and removes crash debris.
    fn recover(&self) -> Result<(), SpoolError> {
        let mut found = Vec::new();
        for device in read_dir_sorted(&self.dir)? {
            let Some(device_id) = valid_dir_name(&device, "device id") else {
                continue;
            };
            for session in read_dir_sorted(&device)? {
                let Some(session_id) = valid_dir_name(&session, "session id") else {
                    continue;
                };
                let files = read_dir_sorted(&session)?;
                for file in &files {
                    let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    if name.starts_with('.') && name.ends_with(".tmp") {
                        tracing::info!(path = %file.display(), "removing an interrupted spool write");
                        remove_quietly(file);
                        continue;
                    }
                    if let Some(stem) = name.strip_suffix(".h264") {
                        if !session.join(format!("{stem}.json")).exists() {
                            tracing::warn!(path = %file.display(), "removing clip bytes without metadata (interrupted write)");
                            remove_quietly(file);
                        }
                        continue;
                    }
                    let Some(stem) = name.strip_suffix(".json") else {
                        continue;
                    };
                    match self.recover_one(file, stem, &device_id, &session_id) {
                        Ok(entry) => found.push(entry),
                        Err(reason) => {
                            tracing::warn!(path = %file.display(), %reason, "dropping an unusable spooled clip");
                            remove_quietly(file);
                            remove_quietly(&session.join(format!("{stem}.h264")));
                            self.lock().dropped += 1;
                        }
                    }
                }
                // Best effort: an empty session directory is left over from uploaded clips.
                let _ = fs::remove_dir(&session);
            }
            let _ = fs::remove_dir(&device);
        }
        let mut state = self.lock();
        // Sessions are ordered by their earliest clip.
        for entry in &found {
            let k = (entry.meta.device_id.clone(), entry.meta.session_id.clone());
            let start = state.session_start.entry(k).or_insert(entry.meta.closed_ns);
            *start = (*start).min(entry.meta.closed_ns);
        }
        state.recovered = found.len();
        for entry in found {
            let key = state.key_for(&entry.meta);
            state.total_bytes += entry.disk_bytes;
            if let Some(old) = state.entries.insert(key, entry) {
                state.total_bytes = state.total_bytes.saturating_sub(old.disk_bytes);
            }
        }
        if state.recovered > 0 {
            tracing::info!(dir = %self.dir.display(), clips = state.recovered, "recovered clips left by an earlier run");
        }
        Ok(())
    }

    fn recover_one(
        &self,
        json_path: &Path,
        stem: &str,
        device_id: &str,
        session_id: &str,
    ) -> Result<Entry, String> {
        let seq: u64 = stem
            .parse()
            .map_err(|_| format!("file name {stem:?} is not a sequence number"))?;
        let json = fs::read(json_path).map_err(|e| format!("cannot read: {e}"))?;
        let meta: ClipMeta =
            serde_json::from_slice(&json).map_err(|e| format!("bad metadata: {e}"))?;
        if meta.device_id != device_id || meta.session_id != session_id || meta.seq != seq {
            return Err(format!(
                "metadata names clip {} but the file is {device_id}/{session_id}/{stem}",
                meta.clip_id()
            ));
        }
        let (bytes_path, _) = self.clip_paths(&meta);
        let bytes_len = fs::metadata(&bytes_path)
            .map_err(|e| format!("clip bytes {}: {e}", bytes_path.display()))?
            .len();
        if bytes_len == 0 {
            return Err("clip bytes are empty".to_string());
        }
        Ok(Entry {
            meta,
            disk_bytes: bytes_len + json.len() as u64,
            pushed_at: None,
            in_flight: false,
            not_before: None,
        })
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        out.push(entry.map_err(io_err(dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// The directory's name if it is a directory named by a valid id; logs and skips otherwise.
fn valid_dir_name(path: &Path, kind: &'static str) -> Option<String> {
    if !path.is_dir() {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    match validate_id(kind, name) {
        Ok(()) => Some(name.to_string()),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring a foreign entry in the spool");
            None
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a spool file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_protocol::wire::CLIP_CODEC_H264_ANNEXB;

    pub(crate) fn clip(session: &str, seq: u64, len: usize) -> EncodedClip {
        EncodedClip {
            meta: ClipMeta {
                device_id: "dev".into(),
                session_id: session.into(),
                seq,
                first_frame_ns: 1,
                last_frame_ns: 2,
                closed_ns: 1_000 + seq,
                fps: 30.0,
                width: 64,
                height: 48,
                frame_count: 15,
                codec: CLIP_CODEC_H264_ANNEXB.into(),
            },
            bytes: vec![seq as u8; len],
            encode: Duration::from_millis(1),
        }
    }

    fn json_len(c: &EncodedClip) -> u64 {
        serde_json::to_vec_pretty(&c.meta).unwrap().len() as u64
    }

    #[test]
    fn push_claim_remove_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = ClipSpool::open(dir.path(), 1 << 20).unwrap();
        for seq in [0, 1, 2] {
            spool.push(&clip("s", seq, 100)).unwrap();
        }
        assert!(dir.path().join("dev/s/00000001.h264").is_file());
        assert!(dir.path().join("dev/s/00000001.json").is_file());
        assert_eq!(spool.oldest().unwrap().seq, 0);
        let a = spool.claim_next().unwrap();
        let b = spool.claim_next().unwrap();
        assert_eq!((a.meta.seq, b.meta.seq), (0, 1));
        assert_eq!(a.bytes, vec![0u8; 100]);
        assert_eq!(spool.stats().in_flight, 2);
        spool.release(&b.meta, None);
        spool.remove(&a.meta).unwrap();
        spool.remove(&a.meta).unwrap(); // idempotent
        assert!(!dir.path().join("dev/s/00000000.h264").exists());
        assert_eq!(spool.claim_next().unwrap().meta.seq, 1);
        assert_eq!(spool.claim_next().unwrap().meta.seq, 2);
        assert!(spool.claim_next().is_none());
        assert_eq!(spool.len(), 2);
    }

    #[test]
    fn release_with_delay_defers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = ClipSpool::open(dir.path(), 1 << 20).unwrap();
        spool.push(&clip("s", 0, 10)).unwrap();
        let c = spool.claim_next().unwrap();
        spool.release(&c.meta, Some(Duration::from_millis(80)));
        assert!(spool.claim_next().is_none());
        let t = Instant::now();
        spool.wait_for_work(Duration::from_secs(2));
        assert!(t.elapsed() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(90));
        assert_eq!(spool.claim_next().unwrap().meta.seq, 0);
    }

    #[test]
    fn bounded_evicts_oldest_not_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let one = 1000 + json_len(&clip("s", 0, 1000));
        let spool = ClipSpool::open(dir.path(), one * 3).unwrap();
        for seq in 0..3 {
            assert!(spool
                .push(&clip("s", seq, 1000))
                .unwrap()
                .evicted
                .is_empty());
        }
        // Clip 0 is being uploaded: clip 1 goes instead.
        let claimed = spool.claim_next().unwrap();
        assert_eq!(claimed.meta.seq, 0);
        let out = spool.push(&clip("s", 3, 1000)).unwrap();
        assert_eq!(
            out.evicted.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![1]
        );
        assert!(!dir.path().join("dev/s/00000001.h264").exists());
        let out = spool.push(&clip("s", 4, 1000)).unwrap();
        assert_eq!(
            out.evicted.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2]
        );
        let stats = spool.stats();
        assert_eq!((stats.clips, stats.dropped), (3, 2));
        assert!(stats.bytes <= one * 3);
        assert_eq!(
            spool.clips().iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![0, 3, 4]
        );
        // Too large for the whole spool.
        let err = spool.push(&clip("s", 5, (one * 3) as usize)).unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("dev/s/00000005"), "{err}");
        assert_eq!(spool.stats().dropped, 3);
    }

    #[test]
    fn rejects_unsafe_ids() {
        let dir = tempfile::tempdir().unwrap();
        let spool = ClipSpool::open(dir.path(), 1 << 20).unwrap();
        for bad in ["..", "a/b", "", "/etc"] {
            let mut c = clip("s", 0, 10);
            c.meta.session_id = bad.into();
            assert!(
                matches!(spool.push(&c), Err(SpoolError::InvalidId(_))),
                "{bad}"
            );
            let mut c = clip("s", 0, 10);
            c.meta.device_id = bad.into();
            assert!(
                matches!(spool.push(&c), Err(SpoolError::InvalidId(_))),
                "{bad}"
            );
        }
        assert!(spool.is_empty());
    }

    #[test]
    fn recovery_finds_clips_and_cleans_debris() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = ClipSpool::open(dir.path(), 1 << 20).unwrap();
            spool.push(&clip("old", 0, 10)).unwrap();
            spool.push(&clip("old", 1, 10)).unwrap();
            let mut newer = clip("new", 0, 10);
            newer.meta.closed_ns = 5_000;
            spool.push(&newer).unwrap();
            // Crash: dropped without upload.
        }
        let s = dir.path().join("dev/old");
        fs::write(s.join(".00000002.h264.1.0.tmp"), b"partial").unwrap();
        fs::write(s.join("00000003.h264"), b"no metadata").unwrap();
        fs::write(s.join("00000004.json"), b"{ not json").unwrap();
        fs::write(s.join("00000004.h264"), b"x").unwrap();
        fs::create_dir_all(dir.path().join("bad name")).unwrap();

        let spool = ClipSpool::open(dir.path(), 1 << 20).unwrap();
        let order: Vec<_> = spool
            .clips()
            .iter()
            .map(|m| (m.session_id.clone(), m.seq))
            .collect();
        assert_eq!(
            order,
            vec![("old".into(), 0), ("old".into(), 1), ("new".into(), 0)]
        );
        let stats = spool.stats();
        assert_eq!((stats.recovered, stats.dropped), (3, 1));
        assert!(!s.join(".00000002.h264.1.0.tmp").exists());
        assert!(!s.join("00000003.h264").exists());
        assert!(!s.join("00000004.json").exists());
        let c = spool.claim_next().unwrap();
        assert_eq!(c.bytes, vec![0u8; 10]);
        assert!(c.spool_wait > Duration::from_secs(1)); // closed_ns is in 1970
    }

    #[test]
    fn recovery_respects_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = ClipSpool::open(dir.path(), 1 << 20).unwrap();
            for seq in 0..4 {
                spool.push(&clip("s", seq, 1000)).unwrap();
            }
        }
        let one = 1000 + json_len(&clip("s", 0, 1000));
        let spool = ClipSpool::open(dir.path(), one * 2).unwrap();
        assert_eq!(
            spool.clips().iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(spool.stats().dropped, 2);
    }
}
