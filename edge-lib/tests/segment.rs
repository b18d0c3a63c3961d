//! Segmenter: frame conservation, clip structure, decodability, metadata.

mod common;

use rollcall_edge::segment::{ClipSegmenter, EncodedClip, SegmentConfig};
use rollcall_edge::source::{FrameSource, Pace, SourceOptions, TestPatternSource};

fn run(frames: u64, fps: f32, clip_ms: u32, size: (u32, u32)) -> Vec<EncodedClip> {
    let opts = SourceOptions {
        width: Some(size.0),
        height: Some(size.1),
        fps: Some(fps),
        pace: Pace::Fast,
        max_frames: Some(frames),
        ..Default::default()
    };
    let mut source = TestPatternSource::new(&opts).unwrap();
    let mut config = SegmentConfig::new("pi-1", "session-7", source.fps());
    config.clip_ms = clip_ms;
    let mut seg = ClipSegmenter::new(config).unwrap();
    let mut clips = Vec::new();
    while let Some(frame) = source.next_frame().unwrap() {
        clips.extend(seg.push(frame).unwrap());
    }
    clips.extend(seg.finish().unwrap());
    clips
}

#[test]
fn frames_are_conserved_across_clips() {
    let clips = run(47, 30.0, 500, (160, 120));
    let counts: Vec<u32> = clips.iter().map(|c| c.meta.frame_count).collect();
    assert_eq!(counts, vec![15, 15, 15, 2]);
    assert_eq!(counts.iter().sum::<u32>(), 47);
    let seqs: Vec<u64> = clips.iter().map(|c| c.meta.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    // Clips follow each other in capture time.
    for pair in clips.windows(2) {
        assert!(pair[0].meta.last_frame_ns <= pair[1].meta.first_frame_ns);
    }
}

#[test]
fn exact_multiple_has_no_empty_last_clip() {
    let clips = run(30, 30.0, 500, (64, 48));
    assert_eq!(
        clips.iter().map(|c| c.meta.frame_count).collect::<Vec<_>>(),
        vec![15, 15]
    );
}

#[test]
fn other_rates_and_lengths() {
    // 25 fps, 500 ms -> round(12.5) = 13 frames per clip.
    let clips = run(40, 25.0, 500, (64, 48));
    assert_eq!(
        clips.iter().map(|c| c.meta.frame_count).collect::<Vec<_>>(),
        vec![13, 13, 13, 1]
    );
    // Tiny clips: at least one frame each.
    let clips = run(5, 10.0, 20, (64, 48));
    assert_eq!(clips.len(), 5);
    assert!(clips.iter().all(|c| c.meta.frame_count == 1));
}

#[test]
fn every_clip_is_self_contained_and_decodable() {
    let clips = run(47, 30.0, 500, (320, 240));
    for clip in &clips {
        common::check_clip(clip);
        let m = &clip.meta;
        assert_eq!(
            (m.device_id.as_str(), m.session_id.as_str()),
            ("pi-1", "session-7")
        );
        assert_eq!((m.width, m.height, m.fps), (320, 240, 30.0));
        assert!(clip.encode > std::time::Duration::ZERO);
    }
    // Clips also decode in any order with fresh decoders (no cross-clip references).
    let (n, _, _) = common::decode_clip(&clips[2].bytes);
    assert_eq!(n, 15);
}

#[test]
fn clip_meta_serialises() {
    let clips = run(3, 30.0, 500, (64, 48));
    let json = serde_json::to_string(&clips[0].meta).unwrap();
    let back: rollcall_protocol::wire::ClipMeta = serde_json::from_str(&json).unwrap();
    assert_eq!(back, clips[0].meta);
    assert_eq!(back.object_key(), "clips/pi-1/session-7/00000000.h264");
}
