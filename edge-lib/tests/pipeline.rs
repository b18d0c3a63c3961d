//! End to end: test pattern -> segmenter -> spool -> uploader -> local directory.

mod common;

use std::sync::{mpsc, Arc};
use std::time::Duration;

use rollcall_edge::segment::{ClipSegmenter, EncodedClip, SegmentConfig};
use rollcall_edge::source::{open_source, Pace, SourceOptions, SourceSpec};
use rollcall_edge::spool::ClipSpool;
use rollcall_edge::upload::{LocalDirSink, Uploader, UploaderConfig};
use rollcall_protocol::wire::ClipMeta;

#[test]
fn test_pattern_to_local_dir() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SourceOptions {
        width: Some(320),
        height: Some(240),
        pace: Pace::Fast,
        max_frames: Some(70),
        ..Default::default()
    };
    let mut source = open_source(&SourceSpec::parse("test").unwrap(), &opts).unwrap();
    let spool = Arc::new(ClipSpool::open(dir.path().join("spool"), "cam-0", 64 << 20).unwrap());
    let root = dir.path().join("objects");
    let (tx, rx) = mpsc::channel();
    let uploader = Uploader::start(
        Arc::clone(&spool),
        Arc::new(LocalDirSink::new(&root)),
        UploaderConfig::default(),
        move |ev| tx.send(ev).unwrap(),
    )
    .unwrap();
    let mut seg = ClipSegmenter::new(SegmentConfig::new("cam-0", "run-1", source.fps())).unwrap();
    let mut pushed = 0;
    while let Some(frame) = source.next_frame().unwrap() {
        for clip in seg.push(frame).unwrap() {
            spool.push(&clip).unwrap();
            pushed += 1;
        }
    }
    if let Some(clip) = seg.finish().unwrap() {
        spool.push(&clip).unwrap();
        pushed += 1;
    }
    assert_eq!(pushed, 5); // 15 * 4 + 10
    assert!(uploader.finish(Duration::from_secs(20)));
    let events: Vec<_> = rx.try_iter().collect();
    assert_eq!(events.len(), 5);
    let mut total = 0;
    for ev in &events {
        assert!(ev.result.is_ok());
        let bytes = std::fs::read(root.join(ev.meta.object_key())).unwrap();
        let mut side = root.join(ev.meta.object_key()).into_os_string();
        side.push(".json");
        let meta: ClipMeta = serde_json::from_slice(&std::fs::read(side).unwrap()).unwrap();
        assert_eq!(meta, ev.meta);
        let clip = EncodedClip {
            meta,
            bytes,
            encode: Duration::ZERO,
        };
        common::check_clip(&clip);
        total += clip.meta.frame_count;
    }
    assert_eq!(total, 70);
}
