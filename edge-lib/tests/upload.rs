//! Sink path checks, uploader retries and backoff, crash recovery.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rollcall_edge::segment::EncodedClip;
use rollcall_edge::spool::ClipSpool;
use rollcall_edge::upload::{
    ClipSink, LocalDirSink, SinkError, UploadEvent, Uploader, UploaderConfig,
};
use rollcall_protocol::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};

fn clip(session: &str, seq: u64) -> EncodedClip {
    EncodedClip {
        meta: ClipMeta {
            device_id: "pi-1".into(),
            session_id: session.into(),
            seq,
            first_frame_ns: 1_700_000_000_000_000_000 + seq * 500_000_000,
            last_frame_ns: 1_700_000_000_466_000_000 + seq * 500_000_000,
            closed_ns: 1_700_000_000_470_000_000 + seq * 500_000_000,
            fps: 30.0,
            width: 640,
            height: 480,
            frame_count: 15,
            codec: CLIP_CODEC_H264_ANNEXB.into(),
        },
        bytes: format!("clip {session} {seq}").into_bytes(),
        encode: Duration::from_millis(40),
    }
}

fn fast_retries() -> UploaderConfig {
    UploaderConfig {
        workers: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_attempts: 10,
        retry_later: Duration::from_millis(50),
        idle_poll: Duration::from_millis(20),
        keep_until_answered: false,
    }
}

fn collect_events() -> (
    impl Fn(UploadEvent) + Send + Sync + 'static,
    mpsc::Receiver<UploadEvent>,
) {
    let (tx, rx) = mpsc::channel();
    (move |ev| tx.send(ev).unwrap(), rx)
}

/// Fails the first `failures` puts, then stores into an inner sink.
struct FlakySink {
    failures: usize,
    calls: AtomicUsize,
    inner: LocalDirSink,
    retryable: bool,
}

impl ClipSink for FlakySink {
    fn put(&self, meta: &ClipMeta, bytes: &[u8]) -> Result<(), SinkError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            return Err(SinkError::Other {
                key: meta.object_key(),
                message: format!("simulated outage (call {n})"),
                retryable: self.retryable,
            });
        }
        self.inner.put(meta, bytes)
    }
}

fn stored(root: &Path, meta: &ClipMeta) -> Option<Vec<u8>> {
    std::fs::read(root.join(meta.object_key())).ok()
}

#[test]
fn local_dir_sink_writes_bytes_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDirSink::new(dir.path().join("objects"));
    let c = clip("s1", 3);
    sink.put(&c.meta, &c.bytes).unwrap();
    sink.put(&c.meta, &c.bytes).unwrap(); // idempotent
    let path = dir.path().join("objects/clips/pi-1/s1/00000003.h264");
    assert_eq!(std::fs::read(&path).unwrap(), c.bytes);
    let meta: ClipMeta = serde_json::from_slice(
        &std::fs::read(dir.path().join("objects/clips/pi-1/s1/00000003.h264.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta, c.meta);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left: {names:?}");
}

#[test]
fn local_dir_sink_refuses_unsafe_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let sink = LocalDirSink::new(&root);
    for (device, session) in [
        ("..", "s"),
        ("pi", ".."),
        ("/etc", "s"),
        ("a/b", "s"),
        ("pi", "s p"),
        ("pi", "x\\y"),
        ("", "s"),
    ] {
        let mut c = clip("s", 0);
        c.meta.device_id = device.into();
        c.meta.session_id = session.into();
        let err = sink.put(&c.meta, &c.bytes).unwrap_err();
        assert!(
            matches!(err, SinkError::InvalidKey { .. }),
            "{device}/{session}: {err}"
        );
        assert!(!err.is_retryable());
    }
    assert!(!root.exists() || std::fs::read_dir(&root).unwrap().next().is_none());
    assert!(!dir.path().join("etc").exists());
    assert!(sink.path_for("../x").is_err());
    assert_eq!(
        sink.path_for("clips/a/b.h264").unwrap(),
        root.join("clips/a/b.h264")
    );
}

#[test]
fn uploader_retries_a_flaky_sink_until_everything_is_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(ClipSpool::open(dir.path().join("spool"), "pi-1", 1 << 20).unwrap());
    let root = dir.path().join("objects");
    let sink = Arc::new(FlakySink {
        failures: 7,
        calls: AtomicUsize::new(0),
        inner: LocalDirSink::new(&root),
        retryable: true,
    });
    let (on_event, events) = collect_events();
    let uploader =
        Uploader::start(Arc::clone(&spool), sink.clone(), fast_retries(), on_event).unwrap();
    let clips: Vec<_> = (0..6).map(|seq| clip("s1", seq)).collect();
    for c in &clips {
        spool.push(c).unwrap();
    }
    let health = uploader.health();
    assert!(
        uploader.finish(Duration::from_secs(10)),
        "spool not drained"
    );
    let link = health.status();
    assert_eq!(link.retries, 7, "{link:?}");
    assert_eq!(link.outages, 1, "{link:?}");
    assert!(
        link.store_down_since_ns.is_none(),
        "reachable again: {link:?}"
    );
    let events: Vec<UploadEvent> = events.try_iter().collect();
    assert_eq!(events.len(), 6, "one event per clip");
    assert!(events.iter().all(|e| e.result.is_ok()));
    let total_attempts: u32 = events.iter().map(|e| e.attempts).sum();
    assert_eq!(total_attempts as usize, 6 + 7);
    assert_eq!(sink.calls.load(Ordering::SeqCst), 13);
    assert!(events
        .iter()
        .any(|e| e.attempts > 1 && e.upload >= Duration::from_millis(5)));
    for c in &clips {
        assert_eq!(
            stored(&root, &c.meta).unwrap(),
            c.bytes,
            "{}",
            c.meta.clip_id()
        );
    }
    assert!(spool.is_empty());
    assert_eq!(spool.stats().dropped, 0);
}

#[test]
fn uploaded_clips_wait_in_the_spool_for_their_answer_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(ClipSpool::open(dir.path().join("spool"), "pi-1", 1 << 20).unwrap());
    let root = dir.path().join("objects");
    let config = UploaderConfig {
        keep_until_answered: true,
        ..fast_retries()
    };
    let uploader = Uploader::start(
        Arc::clone(&spool),
        Arc::new(LocalDirSink::new(&root)),
        config,
        |_| {},
    )
    .unwrap();
    let clips: Vec<_> = (0..3).map(|seq| clip("s1", seq)).collect();
    for c in &clips {
        spool.push(c).unwrap();
    }
    assert!(uploader.finish(Duration::from_secs(10)), "all uploaded");
    let stats = spool.stats();
    assert_eq!((stats.clips, stats.unsent, stats.awaiting), (3, 0, 3));
    for c in &clips {
        assert_eq!(stored(&root, &c.meta).unwrap(), c.bytes);
        assert!(spool.complete(&c.meta.session_id, c.meta.seq).unwrap());
    }
    assert!(spool.is_empty());
    assert!(walk(&dir.path().join("spool"))
        .iter()
        .all(|p| p.ends_with(rollcall_edge::spool::LOCK_FILE)));
}

#[test]
fn exhausted_attempts_keep_the_clip_for_a_later_round() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(ClipSpool::open(dir.path().join("spool"), "pi-1", 1 << 20).unwrap());
    let root = dir.path().join("objects");
    let sink = Arc::new(FlakySink {
        failures: 5,
        calls: AtomicUsize::new(0),
        inner: LocalDirSink::new(&root),
        retryable: true,
    });
    let (on_event, events) = collect_events();
    let config = UploaderConfig {
        workers: 1,
        max_attempts: 3,
        ..fast_retries()
    };
    let uploader = Uploader::start(Arc::clone(&spool), sink, config, on_event).unwrap();
    let c = clip("s1", 0);
    spool.push(&c).unwrap();
    assert!(uploader.finish(Duration::from_secs(10)));
    let events: Vec<UploadEvent> = events.try_iter().collect();
    let summary: Vec<(u32, bool)> = events
        .iter()
        .map(|e| (e.attempts, e.result.is_ok()))
        .collect();
    // 3 failures, back to the spool; 2 more failures then success in the next round.
    assert_eq!(summary, vec![(3, false), (3, true)]);
    let err = events[0].result.as_ref().unwrap_err();
    assert!(
        err.to_string().contains("clips/pi-1/s1/00000000.h264"),
        "{err}"
    );
    assert_eq!(stored(&root, &c.meta).unwrap(), c.bytes);
}

#[test]
fn permanent_errors_are_not_retried_in_a_round_but_the_clip_stays() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(ClipSpool::open(dir.path().join("spool"), "pi-1", 1 << 20).unwrap());
    let sink = Arc::new(FlakySink {
        failures: usize::MAX,
        calls: AtomicUsize::new(0),
        inner: LocalDirSink::new(dir.path().join("objects")),
        retryable: false,
    });
    let (on_event, events) = collect_events();
    let config = UploaderConfig {
        workers: 1,
        retry_later: Duration::from_secs(60),
        ..fast_retries()
    };
    let uploader = Uploader::start(Arc::clone(&spool), sink.clone(), config, on_event).unwrap();
    spool.push(&clip("s1", 0)).unwrap();
    let ev = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(ev.attempts, 1);
    assert!(ev.result.is_err());
    assert!(!uploader.finish(Duration::from_millis(100)));
    assert_eq!(sink.calls.load(Ordering::SeqCst), 1);
    assert_eq!(spool.len(), 1, "the clip must never be lost silently");
}

#[test]
fn clips_left_by_a_crash_are_uploaded_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let root = dir.path().join("objects");
    let clips: Vec<_> = (0..4).map(|seq| clip("before-crash", seq)).collect();
    {
        let spool = Arc::new(ClipSpool::open(&spool_dir, "pi-1", 1 << 20).unwrap());
        for c in &clips {
            spool.push(c).unwrap();
        }
        // "Crash": the uploader never ran, the spool is dropped.
    }
    let spool = Arc::new(ClipSpool::open(&spool_dir, "pi-1", 1 << 20).unwrap());
    assert_eq!(spool.stats().recovered, 4);
    let (on_event, events) = collect_events();
    let config = UploaderConfig {
        workers: 1,
        ..fast_retries()
    };
    let uploader = Uploader::start(
        Arc::clone(&spool),
        Arc::new(LocalDirSink::new(&root)),
        config,
        on_event,
    )
    .unwrap();
    let mut newer = clip("after-restart", 0);
    newer.meta.closed_ns += 3_600_000_000_000; // an hour later
    spool.push(&newer).unwrap();
    assert!(uploader.finish(Duration::from_secs(10)));
    for c in &clips {
        assert_eq!(stored(&root, &c.meta).unwrap(), c.bytes);
    }
    let order: Vec<(String, u64)> = events
        .try_iter()
        .map(|e| (e.meta.session_id, e.meta.seq))
        .collect();
    // One worker: recovered clips first, in seq order, then the new session.
    assert_eq!(order.len(), 5);
    assert_eq!(
        order[..4].iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(order[..4].iter().all(|(s, _)| s == "before-crash"));
    // Nothing left on disk in the spool but the device's lock.
    let leftover: Vec<_> = walk(&spool_dir)
        .into_iter()
        .filter(|p| !p.ends_with(rollcall_edge::spool::LOCK_FILE))
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Counts puts in progress at once.
struct SlowSink {
    current: AtomicUsize,
    peak: AtomicUsize,
    seen: Mutex<HashMap<String, usize>>,
}

impl ClipSink for SlowSink {
    fn put(&self, meta: &ClipMeta, _bytes: &[u8]) -> Result<(), SinkError> {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(15));
        *self.seen.lock().unwrap().entry(meta.clip_id()).or_default() += 1;
        self.current.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn concurrency_is_bounded_by_the_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(ClipSpool::open(dir.path(), "pi-1", 1 << 20).unwrap());
    for seq in 0..12 {
        spool.push(&clip("s", seq)).unwrap();
    }
    let sink = Arc::new(SlowSink {
        current: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        seen: Mutex::new(HashMap::new()),
    });
    let config = UploaderConfig {
        workers: 3,
        ..fast_retries()
    };
    let uploader = Uploader::start(Arc::clone(&spool), sink.clone(), config, |_| {}).unwrap();
    assert!(uploader.finish(Duration::from_secs(10)));
    let peak = sink.peak.load(Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "peak concurrency {peak}");
    let seen = sink.seen.lock().unwrap();
    assert_eq!(seen.len(), 12);
    assert!(
        seen.values().all(|&n| n == 1),
        "each clip uploaded once: {seen:?}"
    );
}

#[test]
fn stopping_during_backoff_returns_the_clip_to_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(ClipSpool::open(dir.path(), "pi-1", 1 << 20).unwrap());
    let sink = Arc::new(FlakySink {
        failures: usize::MAX,
        calls: AtomicUsize::new(0),
        inner: LocalDirSink::new(dir.path().join("objects")),
        retryable: true,
    });
    let config = UploaderConfig {
        workers: 1,
        initial_backoff: Duration::from_secs(30),
        ..fast_retries()
    };
    let (on_event, events) = collect_events();
    let uploader = Uploader::start(Arc::clone(&spool), sink, config, on_event).unwrap();
    spool.push(&clip("s", 0)).unwrap();
    while spool.stats().in_flight == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(20));
    let t = std::time::Instant::now();
    uploader.stop();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop waited for the backoff"
    );
    let ev = events.recv_timeout(Duration::from_secs(1)).unwrap();
    assert!(ev.result.is_err());
    let stats = spool.stats();
    assert_eq!((stats.clips, stats.in_flight), (1, 0));
}
