//! The durable spool in whole sessions, without recognition: a store that cannot take clips
//! (its folder is under a regular file, so every put fails with ENOTDIR) keeps every clip on
//! disk; a full spool drops the oldest unsent clips and names them; the next session of the
//! device sends what the earlier one left, first and in order.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
use rollcall_edge::session::{run_session, SessionConfig, SessionProbe, SessionReport};
use rollcall_edge::source::{open_source, Pace, SourceOptions, SourceSpec};
use rollcall_edge::spool::{inventory, ClipSpool};
use rollcall_edge::upload::{LocalDirSink, UploaderConfig};
use rollcall_protocol::results::LocalResultQueue;
use rollcall_protocol::store::LocalClipStore;

use common::runtime;

const DEVICE: &str = "durable-cam";

/// 3 s of the test pattern at 160x120 as fast as it comes: 6 clips of 0.5 s.
fn source_options() -> SourceOptions {
    SourceOptions {
        width: Some(160),
        height: Some(120),
        pace: Pace::Fast,
        max_frames: Some(90),
        ..SourceOptions::default()
    }
}

fn config(spool: &std::path::Path, session: &str) -> SessionConfig {
    let mut config = SessionConfig::new(SourceSpec::TestPattern, DEVICE, session, spool);
    config.source_options = source_options();
    config.grace = Duration::from_millis(800);
    config.receive_wait = Duration::from_millis(20);
    config.uploader = UploaderConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        retry_later: Duration::from_millis(50),
        idle_poll: Duration::from_millis(20),
        ..UploaderConfig::default()
    };
    config
}

/// A sink whose folder cannot be created: a regular file stands where a folder should be.
fn unreachable_sink(dir: &std::path::Path) -> Arc<LocalDirSink> {
    let blocker = dir.join("not-a-folder");
    std::fs::write(&blocker, b"a file").unwrap();
    Arc::new(LocalDirSink::new(blocker.join("objects")))
}

fn run(config: &SessionConfig, sink: Arc<LocalDirSink>) -> SessionReport {
    let runtime = runtime();
    run_session(
        config,
        sink,
        Arc::new(LocalResultQueue::new()),
        runtime.handle().clone(),
        Arc::new(AtomicBool::new(false)),
        &SessionProbe::new(),
        |_| {},
    )
    .unwrap()
}

fn seq_of(clip_id: &str) -> u64 {
    clip_id.rsplit('/').next().unwrap().parse().unwrap()
}

/// Size of the first clip of the test pattern with these options.
fn first_clip_bytes() -> u64 {
    let mut source = open_source(&SourceSpec::TestPattern, &source_options()).unwrap();
    let mut segmenter =
        ClipSegmenter::new(SegmentConfig::new(DEVICE, "probe", source.fps())).unwrap();
    while let Some(frame) = source.next_frame().unwrap() {
        if let Some(clip) = segmenter.push(frame).unwrap().into_iter().next() {
            return clip.bytes.len() as u64;
        }
    }
    panic!("the test pattern gave no clip");
}

#[test]
fn an_unreachable_store_keeps_every_clip_in_the_spool_and_reports_the_outage() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let report = run(&config(&spool, "s1"), unreachable_sink(dir.path()));
    let c = report.clips;
    assert_eq!(c.captured, 6, "{c:?}");
    assert_eq!((c.uploaded, c.results, c.lost), (0, 0, 0), "{c:?}");
    assert_eq!(c.spooled, c.captured, "unsent clips are spooled, not lost");
    assert!(report.lost_clip_ids.is_empty());
    let link = &report.link;
    assert!(link.store_down_since_ns.is_some(), "{link:?}");
    assert!(link.retries >= 1 && link.outages == 1, "{link:?}");
    assert!(
        link.last_error
            .as_deref()
            .is_some_and(|e| e.contains("objects")),
        "the error names the store path: {link:?}"
    );
    assert_eq!(report.peak_spooled, 6);
    let found = inventory(&spool).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].device_id, DEVICE);
    assert_eq!(found[0].clips(), 6);
    assert!(!found[0].in_use, "the lock went with the session");
}

#[test]
fn a_full_spool_drops_the_oldest_unsent_clips_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let mut config = config(&spool, "full");
    // Room for about three clips (metadata included) of the six.
    config.spool_max_bytes = first_clip_bytes() * 3 + 1500;
    let report = run(&config, unreachable_sink(dir.path()));
    let c = report.clips;
    println!("{c:?} lost {:?}", report.lost_clip_ids);
    assert_eq!(c.captured, 6);
    assert!(c.lost >= 1 && c.spooled >= 1, "{c:?}");
    assert_eq!(c.lost + c.spooled, c.captured, "every clip accounted for");
    assert_eq!(report.lost_clip_ids.len() as u64, c.lost);
    assert!(report
        .lost_clip_ids
        .iter()
        .all(|id| id.starts_with("durable-cam/full/")));
    // The lost ones are gone from disk, the spooled ones are there.
    let on_disk: Vec<u64> = {
        let reopened = ClipSpool::open(&spool, DEVICE, u64::MAX).unwrap();
        reopened.clips().iter().map(|m| m.seq).collect()
    };
    assert_eq!(on_disk.len() as u64, c.spooled, "{on_disk:?}");
    let lost: Vec<u64> = report.lost_clip_ids.iter().map(|id| seq_of(id)).collect();
    assert!(lost.iter().all(|seq| !on_disk.contains(seq)));
    // Oldest first (clips in flight excepted): the newest clip is never the one dropped.
    assert!(on_disk.contains(&5), "{on_disk:?}");
    assert!(lost.iter().all(|&seq| seq < 5), "{lost:?}");
    assert!(report.spool_dropped >= c.lost);
}

#[test]
fn the_next_session_sends_the_earlier_clips_first_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let first = run(&config(&spool, "before"), unreachable_sink(dir.path()));
    assert_eq!(first.clips.spooled, 6);

    // The store works now. Nothing answers (no recognizer here): every clip is uploaded and
    // stays in the spool awaiting its result.
    let created = Arc::new(Mutex::new(Vec::new()));
    let store = {
        let created = Arc::clone(&created);
        Arc::new(
            LocalClipStore::new(dir.path().join("objects"))
                .on_created(move |event| created.lock().unwrap().push(event.key)),
        )
    };
    let mut config = config(&spool, "after");
    // One worker: uploads complete in the order clips are taken.
    config.uploader.workers = 1;
    let second = run(&config, Arc::new(LocalDirSink::from_store(store)));
    let e = second.earlier;
    assert_eq!((e.recovered, e.uploaded), (6, 6), "{e:?}");
    assert_eq!((e.results, e.lost, e.spooled), (0, 0, 6), "{e:?}");
    assert_eq!(second.clips.uploaded, second.clips.captured);
    assert_eq!(second.clips.spooled, second.clips.captured);
    let keys = created.lock().unwrap().clone();
    let expected: Vec<String> = (0..6)
        .map(|seq| format!("clips/durable-cam/before/{seq:08}.h264"))
        .collect();
    assert_eq!(keys[..6], expected[..], "{keys:?}");
    assert!(keys[6..]
        .iter()
        .all(|k| k.starts_with("clips/durable-cam/after/")));
}
