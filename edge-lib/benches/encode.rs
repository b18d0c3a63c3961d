//! Encoding cost of the clip segmenter: 640x480 test-pattern frames through
//! `ClipSegmenter` (openh264, one thread, default bit rate), one 15-frame clip per iteration.
//! Target: well under 33 ms per frame (30 fps on one core).
//!
//! `cargo bench -p rollcall-edge --bench encode`
// `criterion_group!` generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
use rollcall_edge::source::{Frame, TestPatternSource};

const W: u32 = 640;
const H: u32 = 480;
const FRAMES_PER_CLIP: usize = 15;

fn frames(n: usize) -> Vec<Frame> {
    (0..n as u64)
        .map(|i| Frame {
            index: i,
            capture_ns: i * 33_333_333,
            width: W,
            height: H,
            data: TestPatternSource::render(i, W, H),
        })
        .collect()
}

fn bench_encode(c: &mut Criterion) {
    // Pre-rendered frames so only encoding is measured; cycled so content keeps moving.
    let pool = frames(90);
    let mut group = c.benchmark_group("segment_encode");
    group.throughput(Throughput::Elements(FRAMES_PER_CLIP as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("640x480_clip_of_15_frames", |b| {
        let mut seg =
            ClipSegmenter::new(SegmentConfig::new("bench", "s", 30.0)).expect("segmenter");
        let mut next = 0usize;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let mut closed = 0;
                for _ in 0..FRAMES_PER_CLIP {
                    let mut frame = pool[next % pool.len()].clone();
                    frame.index = next as u64;
                    next += 1;
                    closed += seg.push(frame).expect("encode").len();
                }
                assert_eq!(closed, 1);
            }
            start.elapsed()
        });
    });
    group.finish();

    // Plain figure for docs/benchmarks.md: ms per frame over 300 frames (20 clips).
    let mut seg = ClipSegmenter::new(SegmentConfig::new("bench", "s", 30.0)).expect("segmenter");
    let mut encode = Duration::ZERO;
    let mut bytes = 0usize;
    let mut n = 0u32;
    let start = Instant::now();
    for (i, frame) in pool.iter().cycle().take(300).enumerate() {
        let mut f = frame.clone();
        f.index = i as u64;
        for clip in seg.push(f).expect("encode") {
            encode += clip.encode;
            bytes += clip.bytes.len();
            n += clip.meta.frame_count;
        }
    }
    let wall = start.elapsed();
    println!(
        "segmenter 640x480: {:.2} ms/frame inside the encoder, {:.2} ms/frame wall (incl. frame copy), {} frames, {:.0} kB per 0.5 s clip",
        encode.as_secs_f64() * 1e3 / f64::from(n),
        wall.as_secs_f64() * 1e3 / f64::from(n),
        n,
        bytes as f64 / 1e3 / (f64::from(n) / 15.0)
    );
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
