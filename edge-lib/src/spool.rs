//! The durable on-disk spool of one device's clips: every clip is on disk before it is offered
//! for upload and stays there until its result has arrived (or it is reported lost by id).
//!
//! Layout under the spool root (default `$ROLLCALL_HOME/spool`):
//!
//! ```text
//! <root>/<device_id>/.~lock                      held (flock) by the process using the device
//! <root>/<device_id>/<session_id>/<seq:08>.h264  the clip's Annex-B bytes
//! <root>/<device_id>/<session_id>/<seq:08>.json  its ClipMeta
//! ```
//!
//! Both files are written to a temporary name, synced and renamed into place, bytes first: a
//! clip exists once its `.json` does. Anything else found by [`ClipSpool::open`] (temporary
//! files, bytes without metadata) is debris of a crash and is removed; complete clips are
//! recovered and sent again like new ones (recovered clips of earlier sessions come first).
//!
//! One process uses a device's spool at a time: [`ClipSpool::open`] takes an exclusive lock on
//! the device folder and fails with [`SpoolError::Locked`] while another process holds it. The
//! lock dies with its process (even on SIGKILL). Devices sharing a spool root never see each
//! other's clips. [`inventory`] reads a spool root without taking any lock (`spool status`).
//!
//! A clip's life: pushed (unsent) -> claimed by an upload worker (in flight) -> either
//! released back (upload failed; retried later) or uploaded ([`ClipSpool::mark_uploaded`]:
//! awaiting its result) -> removed when its result arrives ([`ClipSpool::complete`]). An
//! uploader that does not wait for results removes it at once ([`ClipSpool::remove`]).
//!
//! The spool is bounded in bytes. When a new clip does not fit, clips not being uploaded right
//! now are evicted oldest first: uploaded clips first (they are in the object store already;
//! their result may still come), then unsent ones. An evicted unsent clip is **lost**: counted,
//! logged as a warning and its id kept ([`ClipSpool::lost_clip_ids`]), never silently.

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rollcall_protocol::ids::{validate_id, InvalidId};
use rollcall_protocol::wire::ClipMeta;

use crate::segment::EncodedClip;
use crate::source::now_ns;

/// Name of the lock file in a device's spool folder. `~` is not allowed in ids, so no session
/// folder can have this name.
pub const LOCK_FILE: &str = ".~lock";

/// Default byte limit of a device's spool (1 GiB: about three hours of 0.5 s VGA clips).
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;

/// Lost clip ids remembered by a spool (the count goes on beyond).
pub const MAX_LOST_IDS: usize = 10_000;

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
    /// Another process uses this device's spool.
    #[error("the spool of device {device_id} in {dir} is in use by another process{}",
        holder.map_or(String::new(), |pid| format!(" (pid {pid})")))]
    Locked {
        /// The device.
        device_id: String,
        /// The device's spool folder.
        dir: PathBuf,
        /// The process holding the lock, as it wrote it into the lock file.
        holder: Option<u32>,
    },
    /// A clip of another device was pushed.
    #[error("clip {clip_id} belongs to another device than this spool's ({device_id})")]
    WrongDevice {
        /// `device/session/seq` of the clip.
        clip_id: String,
        /// The spool's device.
        device_id: String,
    },
    /// The clip alone is larger than the whole spool; it was not stored (and counts as lost).
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
    /// Unsent clips evicted (deleted without upload) to make room, oldest first: lost.
    pub evicted: Vec<ClipMeta>,
    /// Uploaded clips whose copy was deleted to make room while their result is still
    /// awaited (not lost: the object store has them).
    pub released: Vec<ClipMeta>,
}

/// A clip taken out of the spool for upload; it stays on disk until its result arrives
/// ([`ClipSpool::complete`]) or goes back with [`ClipSpool::release`] (failure).
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
    /// Clips in the spool (unsent, in flight and awaiting their result).
    pub clips: usize,
    /// Clips not uploaded yet (in flight included).
    pub unsent: usize,
    /// Clips uploaded and awaiting their result.
    pub awaiting: usize,
    /// Bytes on disk (clip bytes + metadata).
    pub bytes: u64,
    /// Clips being uploaded right now.
    pub in_flight: usize,
    /// Clips lost since open (evicted unsent, too large, unreadable).
    pub dropped: u64,
    /// Clips found on disk by `open` (left by an earlier process).
    pub recovered: usize,
    /// Most unsent clips at once since open.
    pub peak_unsent: usize,
}

/// Order of clips: session start (ns), session, seq.
type Key = (u64, String, u64);

struct Entry {
    meta: ClipMeta,
    disk_bytes: u64,
    /// `None` for clips recovered from disk.
    pushed_at: Option<Instant>,
    in_flight: bool,
    uploaded: bool,
    not_before: Option<Instant>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<Key, Entry>,
    /// First `closed_ns` seen per session: orders sessions.
    session_start: HashMap<String, u64>,
    total_bytes: u64,
    dropped: u64,
    lost_ids: Vec<String>,
    recovered: usize,
    peak_unsent: usize,
    /// Bumped by every upload and every answered clip.
    progress: u64,
    /// Pushes being written, per session: their folder must not be tidied away meanwhile.
    pushing: HashMap<String, usize>,
}

impl State {
    fn key_for(&mut self, meta: &ClipMeta) -> Key {
        let start = *self
            .session_start
            .entry(meta.session_id.clone())
            .or_insert(meta.closed_ns);
        (start, meta.session_id.clone(), meta.seq)
    }

    fn find_key(&self, session_id: &str, seq: u64) -> Option<Key> {
        let start = *self.session_start.get(session_id)?;
        let key = (start, session_id.to_string(), seq);
        self.entries.contains_key(&key).then_some(key)
    }

    fn unsent(&self) -> usize {
        self.entries.values().filter(|e| !e.uploaded).count()
    }

    fn note_lost(&mut self, meta: &ClipMeta) {
        self.dropped += 1;
        if self.lost_ids.len() < MAX_LOST_IDS {
            self.lost_ids.push(meta.clip_id());
        }
    }

    fn take(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.total_bytes = self.total_bytes.saturating_sub(entry.disk_bytes);
        Some(entry)
    }
}

/// A push writing into a session's folder, from before the folder is made until the clip is
/// in the spool's state (or has failed): while it lives, the folder is not tidied away.
struct SessionWrite<'a> {
    spool: &'a ClipSpool,
    session_id: &'a str,
}

impl<'a> SessionWrite<'a> {
    fn start(spool: &'a ClipSpool, session_id: &'a str) -> Self {
        *spool
            .lock()
            .pushing
            .entry(session_id.to_string())
            .or_default() += 1;
        Self { spool, session_id }
    }
}

impl Drop for SessionWrite<'_> {
    fn drop(&mut self) {
        let mut state = self.spool.lock();
        if let Some(n) = state.pushing.get_mut(self.session_id) {
            *n -= 1;
            if *n == 0 {
                state.pushing.remove(self.session_id);
            }
        }
        // A failed push may leave the folder empty.
        self.spool.tidy_session(&state, self.session_id);
    }
}

/// The spool of one device; see the [module docs](self).
///
/// Shared between the capture thread ([`push`](ClipSpool::push)), the upload workers
/// ([`claim_next`](ClipSpool::claim_next), [`mark_uploaded`](ClipSpool::mark_uploaded),
/// [`release`](ClipSpool::release)) and the result receiver ([`complete`](ClipSpool::complete))
/// through an `Arc`.
pub struct ClipSpool {
    root: PathBuf,
    dir: PathBuf,
    device_id: String,
    max_bytes: u64,
    state: Mutex<State>,
    changed: Condvar,
    tmp_counter: AtomicU64,
    _lock: DeviceLock,
    /// Lets a test put another thread's step at the one point of a push that races with it.
    #[cfg(test)]
    between_folder_and_files: Option<TestStep>,
}

#[cfg(test)]
type TestStep = Box<dyn Fn(&ClipSpool) + Send + Sync>;

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
    /// Opens (creating it if needed) the spool of `device_id` under `root`, bounded to
    /// `max_bytes` on disk: takes the device's lock and recovers the clips an earlier process
    /// left there. Recovered clips beyond `max_bytes` are evicted oldest first (lost).
    pub fn open(
        root: impl AsRef<Path>,
        device_id: &str,
        max_bytes: u64,
    ) -> Result<Self, SpoolError> {
        validate_id("device id", device_id)?;
        let root = root.as_ref().to_path_buf();
        let dir = root.join(device_id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock = DeviceLock::acquire(&dir, device_id)?;
        let spool = Self {
            root,
            dir,
            device_id: device_id.to_string(),
            max_bytes,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            tmp_counter: AtomicU64::new(0),
            _lock: lock,
            #[cfg(test)]
            between_folder_and_files: None,
        };
        spool.recover()?;
        {
            let mut state = spool.lock();
            let (evicted, _) = spool.evict_to_fit(&mut state, 0);
            if !evicted.is_empty() {
                tracing::warn!(dir = %spool.dir.display(), evicted = evicted.len(), "recovered clips exceed the spool limit");
            }
            state.peak_unsent = state.unsent();
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

    /// The spool root (shared by devices).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This device's spool folder, `<root>/<device_id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The device whose clips this spool holds.
    pub fn device_id(&self) -> &str {
        &self.device_id
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

    fn clip_paths(&self, session_id: &str, seq: u64) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(session_id);
        (
            dir.join(format!("{seq:08}.h264")),
            dir.join(format!("{seq:08}.json")),
        )
    }

    /// Stores a clip durably (temporary file, fsync, rename; metadata last), evicting clips
    /// not being uploaded if the spool would exceed its limit.
    pub fn push(&self, clip: &EncodedClip) -> Result<PushOutcome, SpoolError> {
        let meta = &clip.meta;
        validate_id("device id", &meta.device_id)?;
        validate_id("session id", &meta.session_id)?;
        if meta.device_id != self.device_id {
            return Err(SpoolError::WrongDevice {
                clip_id: meta.clip_id(),
                device_id: self.device_id.clone(),
            });
        }
        let json = serde_json::to_vec_pretty(meta).map_err(|e| SpoolError::Metadata {
            clip_id: meta.clip_id(),
            reason: e.to_string(),
        })?;
        let disk_bytes = (clip.bytes.len() + json.len()) as u64;
        if disk_bytes > self.max_bytes {
            self.lock().note_lost(meta);
            tracing::warn!(clip = %meta.clip_id(), disk_bytes, max_bytes = self.max_bytes, "clip larger than the whole spool: lost");
            return Err(SpoolError::TooLarge {
                clip_id: meta.clip_id(),
                bytes: disk_bytes,
                max_bytes: self.max_bytes,
                dir: self.dir.clone(),
            });
        }
        let _writing = SessionWrite::start(self, &meta.session_id);
        let (bytes_path, json_path) = self.clip_paths(&meta.session_id, meta.seq);
        if let Some(parent) = bytes_path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        #[cfg(test)]
        if let Some(step) = &self.between_folder_and_files {
            step(self);
        }
        self.write_atomic(&bytes_path, &clip.bytes)?;
        self.write_atomic(&json_path, &json)?;

        let mut state = self.lock();
        if let Some(old_key) = state.find_key(&meta.session_id, meta.seq) {
            // Same clip pushed again: replace it.
            state.take(&old_key);
        }
        let (evicted, released) = self.evict_to_fit(&mut state, disk_bytes);
        let key = state.key_for(meta);
        state.entries.insert(
            key,
            Entry {
                meta: meta.clone(),
                disk_bytes,
                pushed_at: Some(Instant::now()),
                in_flight: false,
                uploaded: false,
                not_before: None,
            },
        );
        state.total_bytes += disk_bytes;
        let unsent = state.unsent();
        state.peak_unsent = state.peak_unsent.max(unsent);
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
        Ok(PushOutcome { evicted, released })
    }

    /// Evicts clips not in flight until `incoming` more bytes fit (or nothing more can be
    /// evicted): uploaded ones oldest first, then unsent ones oldest first (lost). Deletes their
    /// files. Returns (lost, released).
    fn evict_to_fit(&self, state: &mut State, incoming: u64) -> (Vec<ClipMeta>, Vec<ClipMeta>) {
        let mut evicted = Vec::new();
        let mut released = Vec::new();
        while state.total_bytes + incoming > self.max_bytes {
            let pick = |uploaded: bool| {
                state
                    .entries
                    .iter()
                    .find(|(_, e)| !e.in_flight && e.uploaded == uploaded)
                    .map(|(k, _)| k.clone())
            };
            let Some(key) = pick(true).or_else(|| pick(false)) else {
                break;
            };
            let Some(entry) = state.take(&key) else {
                break;
            };
            self.delete_files(&entry.meta);
            if entry.uploaded {
                tracing::info!(
                    clip = %entry.meta.clip_id(),
                    max_bytes = self.max_bytes,
                    "spool full: dropped the copy of an uploaded clip still awaiting its result"
                );
                released.push(entry.meta);
            } else {
                state.note_lost(&entry.meta);
                tracing::warn!(
                    clip = %entry.meta.clip_id(),
                    dir = %self.dir.display(),
                    max_bytes = self.max_bytes,
                    "spool full: evicted the oldest clip without uploading it (lost)"
                );
                evicted.push(entry.meta);
            }
        }
        (evicted, released)
    }

    fn delete_files(&self, meta: &ClipMeta) {
        let (bytes_path, json_path) = self.clip_paths(&meta.session_id, meta.seq);
        // Metadata first: a clip without metadata is debris that `open` cleans up.
        for path in [json_path, bytes_path] {
            remove_quietly(&path);
        }
    }

    /// Removes the session's folder once its last clip is gone (best effort).
    fn tidy_session(&self, state: &State, session_id: &str) {
        if state.pushing.contains_key(session_id)
            || state.entries.keys().any(|(_, s, _)| s == session_id)
        {
            return;
        }
        let _ = fs::remove_dir(self.dir.join(session_id));
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

    /// Metadata of the oldest clip in the spool (whatever its state).
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

    /// Whether the clip `session_id`/`seq` is in the spool.
    pub fn contains(&self, session_id: &str, seq: u64) -> bool {
        self.lock().find_key(session_id, seq).is_some()
    }

    /// Takes the oldest clip that is not uploaded, not being uploaded and not waiting for a
    /// retry, marks it as being uploaded and reads its bytes. A clip whose files vanished or
    /// cannot be read is lost (logged as an error and counted) and the next one is tried.
    pub fn claim_next(&self) -> Option<SpooledClip> {
        loop {
            let (meta, pushed_at) = {
                let mut state = self.lock();
                let now = Instant::now();
                let entry = state.entries.values_mut().find(|e| {
                    !e.in_flight && !e.uploaded && e.not_before.is_none_or(|t| t <= now)
                })?;
                entry.in_flight = true;
                entry.not_before = None;
                (entry.meta.clone(), entry.pushed_at)
            };
            let (bytes_path, _) = self.clip_paths(&meta.session_id, meta.seq);
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
                        "spooled clip unreadable: lost"
                    );
                    let mut state = self.lock();
                    if let Some(key) = state.find_key(&meta.session_id, meta.seq) {
                        state.take(&key);
                    }
                    state.note_lost(&meta);
                    drop(state);
                    self.delete_files(&meta);
                }
            }
        }
    }

    /// A claimed clip is in the object store: it stays in the spool, awaiting its result
    /// ([`complete`](Self::complete)), and is not claimed again.
    pub fn mark_uploaded(&self, meta: &ClipMeta) {
        let mut state = self.lock();
        if let Some(key) = state.find_key(&meta.session_id, meta.seq) {
            if let Some(entry) = state.entries.get_mut(&key) {
                entry.in_flight = false;
                entry.uploaded = true;
                entry.not_before = None;
            }
        }
        state.progress += 1;
        drop(state);
        self.changed.notify_all();
    }

    /// Deletes a clip (after a successful upload when no result is awaited). Removing a clip
    /// that is not in the spool (evicted meanwhile, removed twice) is not an error.
    pub fn remove(&self, meta: &ClipMeta) -> Result<(), SpoolError> {
        self.remove_clip(&meta.session_id, meta.seq).map(|_| ())
    }

    /// The result of clip `session_id`/`seq` arrived: deletes the clip. Returns whether it was
    /// in the spool.
    pub fn complete(&self, session_id: &str, seq: u64) -> Result<bool, SpoolError> {
        self.remove_clip(session_id, seq)
    }

    fn remove_clip(&self, session_id: &str, seq: u64) -> Result<bool, SpoolError> {
        let mut state = self.lock();
        let Some(key) = state.find_key(session_id, seq) else {
            return Ok(false);
        };
        let (bytes_path, json_path) = self.clip_paths(session_id, seq);
        // Metadata first: if deleting the bytes then fails, they are debris, not a re-upload.
        if let Err(e) = fs::remove_file(&json_path) {
            if e.kind() != io::ErrorKind::NotFound {
                // Still a complete clip on disk: keep it (it will be sent again).
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
        state.take(&key);
        state.progress += 1;
        self.tidy_session(&state, session_id);
        drop(state);
        self.changed.notify_all();
        Ok(true)
    }

    /// Puts a claimed clip back after a failed upload; it becomes eligible again after
    /// `retry_after` (immediately if `None`).
    pub fn release(&self, meta: &ClipMeta, retry_after: Option<Duration>) {
        let mut state = self.lock();
        if let Some(key) = state.find_key(&meta.session_id, meta.seq) {
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
        let claimable = |e: &&Entry| !e.in_flight && !e.uploaded;
        if state
            .entries
            .values()
            .filter(claimable)
            .any(|e| e.not_before.is_none_or(|t| t <= now))
        {
            return;
        }
        // Wake up in time for the earliest retry.
        let next_retry = state
            .entries
            .values()
            .filter(claimable)
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

    /// Number of clips in the spool (whatever their state).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Clips not uploaded yet.
    pub fn unsent(&self) -> usize {
        self.lock().unsent()
    }

    /// A counter bumped by every upload and every answered clip: unchanged means no progress.
    pub fn progress(&self) -> u64 {
        self.lock().progress
    }

    /// Ids (`device/session/seq`) of the clips lost since open, oldest first (the first
    /// [`MAX_LOST_IDS`]).
    pub fn lost_clip_ids(&self) -> Vec<String> {
        self.lock().lost_ids.clone()
    }

    /// Counters.
    pub fn stats(&self) -> SpoolStats {
        Self::stats_of(&self.lock())
    }

    fn stats_of(state: &State) -> SpoolStats {
        let unsent = state.unsent();
        SpoolStats {
            clips: state.entries.len(),
            unsent,
            awaiting: state.entries.len() - unsent,
            bytes: state.total_bytes,
            in_flight: state.entries.values().filter(|e| e.in_flight).count(),
            dropped: state.dropped,
            recovered: state.recovered,
            peak_unsent: state.peak_unsent,
        }
    }

    /// Scans the device folder for clips left by an earlier process and removes crash debris.
    fn recover(&self) -> Result<(), SpoolError> {
        let mut found = Vec::new();
        let mut unusable = Vec::new();
        for session in read_dir_sorted(&self.dir)? {
            let Some(session_id) = valid_dir_name(&session, "session id") else {
                continue;
            };
            for file in &read_dir_sorted(&session)? {
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
                match self.recover_one(file, stem, &session_id) {
                    Ok(entry) => found.push(entry),
                    Err(reason) => {
                        tracing::warn!(path = %file.display(), %reason, "dropping an unusable spooled clip (lost)");
                        remove_quietly(file);
                        remove_quietly(&session.join(format!("{stem}.h264")));
                        unusable.push(format!("{}/{session_id}/{stem}", self.device_id));
                    }
                }
            }
            // Best effort: an empty session directory is left over from answered clips.
            let _ = fs::remove_dir(&session);
        }
        let mut state = self.lock();
        for id in unusable {
            state.dropped += 1;
            if state.lost_ids.len() < MAX_LOST_IDS {
                state.lost_ids.push(id);
            }
        }
        // Sessions are ordered by their earliest clip.
        for entry in &found {
            let start = state
                .session_start
                .entry(entry.meta.session_id.clone())
                .or_insert(entry.meta.closed_ns);
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

    fn recover_one(&self, json_path: &Path, stem: &str, session_id: &str) -> Result<Entry, String> {
        let seq: u64 = stem
            .parse()
            .map_err(|_| format!("file name {stem:?} is not a sequence number"))?;
        let (meta, json_len) = read_meta(json_path)?;
        if meta.device_id != self.device_id || meta.session_id != session_id || meta.seq != seq {
            return Err(format!(
                "metadata names clip {} but the file is {}/{session_id}/{stem}",
                meta.clip_id(),
                self.device_id
            ));
        }
        let (bytes_path, _) = self.clip_paths(session_id, seq);
        let bytes_len = fs::metadata(&bytes_path)
            .map_err(|e| format!("clip bytes {}: {e}", bytes_path.display()))?
            .len();
        if bytes_len == 0 {
            return Err("clip bytes are empty".to_string());
        }
        Ok(Entry {
            meta,
            disk_bytes: bytes_len + json_len,
            pushed_at: None,
            in_flight: false,
            uploaded: false,
            not_before: None,
        })
    }
}

/// Reads a spooled clip's metadata file; returns it and the file's length.
fn read_meta(json_path: &Path) -> Result<(ClipMeta, u64), String> {
    let json = fs::read(json_path).map_err(|e| format!("cannot read: {e}"))?;
    let meta: ClipMeta = serde_json::from_slice(&json).map_err(|e| format!("bad metadata: {e}"))?;
    Ok((meta, json.len() as u64))
}

/// The clips of one session waiting in a spool, as [`inventory`] found them.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SessionInventory {
    /// The session.
    pub session_id: String,
    /// Complete clips (metadata + bytes).
    pub clips: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// `closed_ns` of the oldest clip (ns since the Unix epoch).
    pub oldest_closed_ns: u64,
}

/// The clips of one device waiting in a spool, as [`inventory`] found them.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceInventory {
    /// The device.
    pub device_id: String,
    /// Whether a process holds the device's spool lock right now.
    pub in_use: bool,
    /// Sessions with clips, oldest first.
    pub sessions: Vec<SessionInventory>,
}

impl DeviceInventory {
    /// Clips of every session.
    pub fn clips(&self) -> u64 {
        self.sessions.iter().map(|s| s.clips).sum()
    }

    /// `closed_ns` of the device's oldest clip.
    pub fn oldest_closed_ns(&self) -> Option<u64> {
        self.sessions.iter().map(|s| s.oldest_closed_ns).min()
    }
}

/// What waits in the spool under `root`, per device and session, read without taking any lock
/// or changing anything (a running session may be adding and removing clips meanwhile). A
/// missing root is an empty spool. Folders and files that are not clips are skipped.
pub fn inventory(root: &Path) -> Result<Vec<DeviceInventory>, SpoolError> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut devices = Vec::new();
    for device in read_dir_sorted(root)? {
        let Some(device_id) = valid_dir_name(&device, "device id") else {
            continue;
        };
        let mut sessions = Vec::new();
        for session in read_dir_sorted(&device)? {
            let Some(session_id) = valid_dir_name(&session, "session id") else {
                continue;
            };
            let mut found = SessionInventory {
                session_id,
                clips: 0,
                bytes: 0,
                oldest_closed_ns: u64::MAX,
            };
            // A session's folder can vanish under a running session: nothing to count then.
            for file in read_dir_sorted(&session).unwrap_or_default() {
                let is_meta = file.extension().is_some_and(|e| e == "json")
                    && !file
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'));
                if !is_meta {
                    continue;
                }
                let Ok((meta, json_len)) = read_meta(&file) else {
                    continue;
                };
                let Ok(bytes) = fs::metadata(file.with_extension("h264")) else {
                    continue;
                };
                found.clips += 1;
                found.bytes += bytes.len() + json_len;
                found.oldest_closed_ns = found.oldest_closed_ns.min(meta.closed_ns);
            }
            if found.clips > 0 {
                sessions.push(found);
            }
        }
        sessions.sort_by_key(|s| s.oldest_closed_ns);
        devices.push(DeviceInventory {
            in_use: DeviceLock::held_by_another(&device),
            device_id,
            sessions,
        });
    }
    Ok(devices)
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

/// The exclusive lock on a device's spool folder: `flock` on [`LOCK_FILE`], released by the
/// kernel when the process ends however it ends.
struct DeviceLock {
    /// Held open for the lock's lifetime; closing it releases the lock.
    _file: fs::File,
}

impl DeviceLock {
    fn acquire(dir: &Path, device_id: &str) -> Result<DeviceLock, SpoolError> {
        let path = dir.join(LOCK_FILE);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        if !try_lock(&file).map_err(io_err(&path))? {
            let holder = fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            return Err(SpoolError::Locked {
                device_id: device_id.to_string(),
                dir: dir.to_path_buf(),
                holder,
            });
        }
        // Who holds it, for the message another process prints.
        let pid = std::process::id().to_string();
        let written = file
            .set_len(0)
            .and_then(|()| file.write_all(pid.as_bytes()));
        if let Err(e) = written {
            tracing::debug!(path = %path.display(), error = %e, "cannot write the pid into the spool lock");
        }
        Ok(DeviceLock { _file: file })
    }

    /// Whether another process holds the lock of the device folder `dir` (probes it).
    fn held_by_another(dir: &Path) -> bool {
        let Ok(file) = fs::File::open(dir.join(LOCK_FILE)) else {
            return false;
        };
        // Getting it means nobody else had it; closing the file releases it again.
        !try_lock(&file).unwrap_or(true)
    }
}

/// Takes an exclusive `flock` without waiting: `Ok(false)` when another open file holds it.
#[cfg(unix)]
fn try_lock(file: &fs::File) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own, valid for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Without `flock` there is no lock: one process per device is then the operator's job.
#[cfg(not(unix))]
fn try_lock(_file: &fs::File) -> io::Result<bool> {
    Ok(true)
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

    fn open(dir: &Path, max: u64) -> ClipSpool {
        ClipSpool::open(dir, "dev", max).unwrap()
    }

    #[test]
    fn push_claim_remove_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path(), 1 << 20);
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
    fn uploaded_clips_stay_until_their_result_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path(), 1 << 20);
        spool.push(&clip("s", 0, 10)).unwrap();
        spool.push(&clip("s", 1, 10)).unwrap();
        let before = spool.progress();
        let a = spool.claim_next().unwrap();
        spool.mark_uploaded(&a.meta);
        assert!(spool.progress() > before);
        // Not claimed again, still on disk.
        assert_eq!(spool.claim_next().unwrap().meta.seq, 1);
        assert!(spool.claim_next().is_none());
        assert!(dir.path().join("dev/s/00000000.json").is_file());
        let stats = spool.stats();
        assert_eq!((stats.clips, stats.unsent, stats.awaiting), (2, 1, 1));
        assert!(spool.complete("s", 0).unwrap());
        assert!(!spool.complete("s", 0).unwrap(), "answered twice");
        assert!(!dir.path().join("dev/s/00000000.json").exists());
        assert!(!spool.contains("s", 0));
        assert!(spool.contains("s", 1));
        assert!(spool.complete("s", 1).unwrap());
        assert!(spool.is_empty());
        assert!(
            !dir.path().join("dev/s").exists(),
            "empty session folder removed"
        );
    }

    #[test]
    fn release_with_delay_defers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path(), 1 << 20);
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
    fn bounded_evicts_oldest_not_in_flight_and_names_the_lost_clips() {
        let dir = tempfile::tempdir().unwrap();
        let one = 1000 + json_len(&clip("s", 0, 1000));
        let spool = open(dir.path(), one * 3);
        for seq in 0..3 {
            let out = spool.push(&clip("s", seq, 1000)).unwrap();
            assert!(out.evicted.is_empty() && out.released.is_empty());
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
        assert_eq!(
            spool.lost_clip_ids(),
            vec!["dev/s/00000001", "dev/s/00000002", "dev/s/00000005"]
        );
    }

    #[test]
    fn a_full_spool_drops_the_copies_of_uploaded_clips_before_unsent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let one = 1000 + json_len(&clip("s", 0, 1000));
        let spool = open(dir.path(), one * 2);
        spool.push(&clip("s", 0, 1000)).unwrap();
        spool.push(&clip("s", 1, 1000)).unwrap();
        // Clip 1 is uploaded (awaiting its result), clip 0 is not.
        let a = spool.claim_next().unwrap();
        let b = spool.claim_next().unwrap();
        spool.release(&a.meta, None);
        spool.mark_uploaded(&b.meta);
        let out = spool.push(&clip("s", 2, 1000)).unwrap();
        assert!(out.evicted.is_empty(), "nothing lost: {out:?}");
        assert_eq!(
            out.released.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(spool.stats().dropped, 0);
        assert!(spool.lost_clip_ids().is_empty());
    }

    #[test]
    fn rejects_unsafe_ids_and_other_devices() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path(), 1 << 20);
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
            assert!(ClipSpool::open(dir.path(), bad, 1 << 20).is_err(), "{bad}");
        }
        let mut c = clip("s", 0, 10);
        c.meta.device_id = "other".into();
        let err = spool.push(&c).unwrap_err();
        assert!(matches!(err, SpoolError::WrongDevice { .. }), "{err}");
        assert!(spool.is_empty());
    }

    #[test]
    fn one_process_per_device_and_devices_apart() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path(), 1 << 20);
        spool.push(&clip("s", 0, 10)).unwrap();
        // flock locks belong to the open file: a second open in this process is refused too.
        let err = ClipSpool::open(dir.path(), "dev", 1 << 20).unwrap_err();
        assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("device dev"), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        let other = ClipSpool::open(dir.path(), "other", 1 << 20).unwrap();
        assert!(other.is_empty(), "another device's clips are not mine");
        let found = inventory(dir.path()).unwrap();
        assert_eq!(found.len(), 2);
        assert!(found[0].in_use && found[0].device_id == "dev");
        assert_eq!(found[0].clips(), 1);
        drop(spool);
        assert!(!inventory(dir.path()).unwrap()[0].in_use);
        let again = open(dir.path(), 1 << 20);
        assert_eq!(again.stats().recovered, 1);
    }

    #[test]
    fn recovery_finds_clips_and_cleans_debris() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = open(dir.path(), 1 << 20);
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
        fs::create_dir_all(dir.path().join("dev/bad name")).unwrap();

        let found = inventory(dir.path()).unwrap();
        assert_eq!(found[0].clips(), 3, "{found:?}");
        assert_eq!(found[0].sessions[0].session_id, "old");
        assert_eq!(found[0].oldest_closed_ns(), Some(1_000));

        let spool = open(dir.path(), 1 << 20);
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
        assert_eq!(spool.lost_clip_ids(), vec!["dev/old/00000004"]);
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
            let spool = open(dir.path(), 1 << 20);
            for seq in 0..4 {
                spool.push(&clip("s", seq, 1000)).unwrap();
            }
        }
        let one = 1000 + json_len(&clip("s", 0, 1000));
        let spool = open(dir.path(), one * 2);
        assert_eq!(
            spool.clips().iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(spool.stats().dropped, 2);
    }

    /// A session's folder is removed when its last clip is answered; a clip of that session
    /// being written at that moment must still land (CI lost one this way: `File exists` from a
    /// folder removed under the push).
    #[test]
    fn a_clip_pushed_while_its_session_folder_is_tidied_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(dir.path(), 1 << 20);
        spool.push(&clip("s", 0, 100)).unwrap();
        // Clip 0's result arrives between clip 1's folder being made and its files written.
        spool.between_folder_and_files = Some(Box::new(|spool: &ClipSpool| {
            assert!(spool.complete("s", 0).unwrap());
        }));
        spool.push(&clip("s", 1, 100)).unwrap();
        assert_eq!(
            spool.clips().iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![1]
        );
        assert!(dir.path().join("dev/s/00000001.h264").is_file());
        assert!(dir.path().join("dev/s/00000001.json").is_file());
        spool.between_folder_and_files = None;

        // The folder still goes once the last clip is answered.
        assert!(spool.complete("s", 1).unwrap());
        assert!(!dir.path().join("dev/s").exists());
    }

    #[test]
    fn inventory_of_a_missing_root_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(inventory(&dir.path().join("nothing")).unwrap().is_empty());
    }
}
