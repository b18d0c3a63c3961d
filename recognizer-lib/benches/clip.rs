//! Clip analysis speed: a 0.5 s 640x360 clip cut from the hamilton video (libx264, no B-frames,
//! like the edge's clips), one thread.
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/rollcall/cargo-target   # optional: the shared target dir
//! ROLLCALL_HOME=~/.local/share/rollcall cargo bench -p rollcall-recognizer --bench clip
//! ```
//!
//! - `clip/decode`: decode the 15-frame clip up to its last sampled frame (default policy:
//!   frames 0 and 8, so 9 frames decoded) and convert the sampled ones to RGB.
//! - `clip/analyze`: the whole [`ClipAnalyzer::analyze`] as configured by default: for this
//!   640x360 clip the fast detector (UltraFace + O-Net; YuNet for frames over 640x480), a
//!   frame's faces embedded together, identities carried between sampled frames.
//! - `clip/analyze_yunet`: the same with YuNet + O-Net; `clip/analyze_fast_embed_all`: fast
//!   detector, every face embedded (no carrying over).
//! - `clip/analyze_mtcnn`: the MTCNN cascade and every face embedded (the analysis before the
//!   fast detector), for comparison.
//! - `clip/analyze_consecutive`, `crowd/analyze_consecutive`: the default analysis of the same
//!   clip sent again and again as its stream's next clip (sequence numbers 1, 2, 3...): a still
//!   scene, where confident identities are handed across clip boundaries (up to 3 in a row) and
//!   only every fourth clip re-measures them. The others analyse the clip on its own each time.
//! - `crowd/analyze`, `crowd/analyze_fast`: a 0.5 s 1280x720 clip of the lecture hall of
//!   `tests/common/lecture_hall.rs` (28 people, faces of ~30 and ~50 px; everyone of
//!   `faces/train` enrolled), default analysis (YuNet at this size) and with the fast detector;
//!   the names each finds are printed first.
//! - `frame/detect_yunet`, `frame/detect_fast`, `frame/detect_mtcnn`: detection alone on the
//!   clip's first frame; `crowd_frame/detect_yunet`, `crowd_frame/detect_fast`: on the hall,
//!   and `crowd_frame/detect_tiled_fast`, the alternative to YuNet measured for docs/accuracy.md:
//!   UltraFace on 320x240 tiles of the frame at full resolution (overlapping by 80x60, 20
//!   tiles for 1280x720), proposals merged by NMS, then O-Net. How many of the hall's 28 faces
//!   each finds is printed first.
//! - `frame/embed_face`: landmarks, alignment and embedding of one face of that frame;
//!   `crowd_frame/embed_N_faces`: the hall's N faces (28 when all are found) embedded together
//!   (one call), against `crowd_frame/embed_one_face_at_a_time`; `crowd_frame/follow_N_faces`:
//!   the hall's faces of frame 0 found again in frame 8 by O-Net alone (what the analyzer does in
//!   a large clip's later frames).
//!
//! Needs the shared data (`$ROLLCALL_DATA`, default `../shared/data`), `ffmpeg` with libx264 and
//! the models (YuNet and `fr_detect.onnx` included); without them it prints why and measures
//! nothing.
// `criterion_group!` generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

#[path = "../tests/common/lecture_hall.rs"]
mod lecture_hall;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rollcall_models::ModelCache;
use rollcall_protocol::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};
use rollcall_recognizer::clip::{decode_clip, ClipAnalyzer, ClipLimits, SamplePolicy};
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::enrollment::{
    embed_person_photos, load_gallery, recalibrate, store_enrollment,
};
use rollcall_recognizer::runtime::RuntimeOptions;
use rollcall_recognizer::vision::ultraface::iou;
use rollcall_recognizer::vision::{
    Detection, DetectorKind, DetectorOptions, FaceBox, FaceDetector, FacePipeline,
    FastDetectorOptions, Gallery, PipelineOptions, RgbImage, UltraFace,
};

const VIDEO: &str = "videos/short_hamilton_clip/short_hamilton_clip.mp4";
const START_SECONDS: &str = "4.0";
const FPS: f32 = 29.97;

fn data_dir() -> PathBuf {
    std::env::var_os("ROLLCALL_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// The 0.5 s clip, transcoded with the ffmpeg CLI.
fn clip(data: &Path) -> Result<Vec<u8>, String> {
    let video = data.join(VIDEO);
    if !video.is_file() {
        return Err(format!("no video {}", video.display()));
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = tmp.path().join("clip.h264");
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-ss", START_SECONDS, "-i"])
        .arg(&video)
        .args([
            "-t", "0.5", "-an", "-c:v", "libx264", "-bf", "0", "-g", "15",
        ])
        .args(["-f", "h264"])
        .arg(&out)
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ffmpeg (with libx264) failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::read(&out).map_err(|e| e.to_string())
}

fn load(options: PipelineOptions) -> Result<Arc<FacePipeline>, String> {
    let cache = ModelCache::from_env().map_err(|e| e.to_string())?;
    FacePipeline::load(&cache, options)
        .map(Arc::new)
        .map_err(|e| format!("models not available (set ROLLCALL_HOME): {e}"))
}

/// Analyse `bytes` as the stream's next clip on every iteration (the sequence number counts up
/// from `meta.seq`), printing how many faces a clip embeds once the stream is under way.
fn bench_consecutive(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    name: &str,
    analyzer: &ClipAnalyzer,
    meta: &ClipMeta,
    bytes: &[u8],
    gallery: &Gallery,
) {
    let mut seq = meta.seq;
    let mut next = || {
        seq += 1;
        let meta = ClipMeta {
            seq,
            ..meta.clone()
        };
        analyzer
            .analyze(&meta.clip_id(), Some(&meta), bytes, gallery)
            .unwrap()
    };
    let runs: Vec<_> = (0..8).map(|_| next()).collect();
    eprintln!("{label}/{name}: {}", lecture_hall::per_clip_figures(&runs));
    group.bench_function(name, |b| b.iter(&mut next));
}

fn gallery(data: &Path, pipeline: &FacePipeline) -> Result<Gallery, String> {
    let directory = SqliteDirectory::open_in_memory().map_err(|e| e.to_string())?;
    for (person, photo) in [
        (
            "lin_manuel_miranda",
            "examples/lin_manuel_miranda/lin-manuel-miranda.png",
        ),
        (
            "alex_lacamoire",
            "examples/alex_lacamoire/alex-lacamoire.png",
        ),
    ] {
        let enrollment = embed_person_photos(pipeline, person, &[data.join(photo)]);
        store_enrollment(&directory, &enrollment).map_err(|e| e.to_string())?;
    }
    recalibrate(&directory).map_err(|e| e.to_string())?;
    load_gallery(&directory, None).map_err(|e| e.to_string())
}

fn bench_clip(c: &mut Criterion) {
    let data = data_dir();
    let bytes = match clip(&data) {
        Ok(bytes) => bytes,
        Err(reason) => {
            eprintln!("clip bench skipped: {reason}");
            return;
        }
    };
    let meta = ClipMeta {
        device_id: "bench".into(),
        session_id: "clip".into(),
        seq: 0,
        first_frame_ns: 0,
        last_frame_ns: 0,
        closed_ns: 0,
        fps: FPS,
        width: 640,
        height: 360,
        frame_count: 0,
        codec: CLIP_CODEC_H264_ANNEXB.into(),
    };
    let clip_id = meta.clip_id();
    let mut group = c.benchmark_group("clip");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));

    group.bench_function("decode", |b| {
        let policy = SamplePolicy::default();
        b.iter(|| decode_clip(&clip_id, &bytes, &ClipLimits::default(), &policy, FPS).unwrap())
    });

    let pipeline = match load(PipelineOptions::default()) {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("clip analysis bench skipped: {reason}");
            return;
        }
    };
    if !pipeline.has_fast_detector() || !pipeline.has_yunet() {
        // Say which one and why: the pipeline only logs it at debug level.
        let cache = ModelCache::from_env().ok();
        let why = |model: &str, loaded: bool| match (&cache, loaded) {
            (_, true) => None,
            (Some(cache), false) => Some(match cache.model_path(model) {
                Ok(path) => format!("{model} at {} did not load", path.display()),
                Err(e) => e.to_string(),
            }),
            (None, false) => Some(format!("{model}: no model cache")),
        };
        let missing: Vec<String> = [
            why("fr_detect.onnx", pipeline.has_fast_detector()),
            why(
                "face_detection_yunet_2023mar_int8bq.onnx",
                pipeline.has_yunet(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        eprintln!(
            "clip analysis bench skipped: a video detector is missing (rollcall models fetch): {}",
            missing.join("; ")
        );
        return;
    }
    let gallery = match gallery(&data, &pipeline) {
        Ok(g) => g,
        Err(reason) => {
            eprintln!("clip analysis bench skipped: {reason}");
            return;
        }
    };
    let default = ClipAnalyzer::new(pipeline.clone());
    assert_eq!(default.detector_for(640, 360), DetectorKind::Fast);
    let fast = default.clone().with_detector(DetectorKind::Fast);
    for (name, analyzer) in [
        ("analyze", default.clone()),
        (
            "analyze_yunet",
            default.clone().with_detector(DetectorKind::Yunet),
        ),
        ("analyze_fast_embed_all", fast.clone().with_reuse(None)),
        (
            "analyze_mtcnn",
            default
                .clone()
                .with_detector(DetectorKind::Mtcnn)
                .with_reuse(None),
        ),
    ] {
        let sample = analyzer
            .analyze(&clip_id, Some(&meta), &bytes, &gallery)
            .unwrap();
        eprintln!(
            "{name}: {} frames, {} analysed, {} decoded, {} faces, people {:?}; decode {:.1} detect {:.1} embed {:.1} total {:.1} ms",
            sample.frames_in_clip,
            sample.frames_analyzed,
            sample.frames_decoded,
            sample.faces_detected,
            sample
                .people
                .iter()
                .map(|p| format!("{} {:.3} seen {}", p.person_id, p.best_similarity, p.frames_seen))
                .collect::<Vec<_>>(),
            sample.timings.decode_ms,
            sample.timings.detect_ms,
            sample.timings.embed_ms,
            sample.timings.total_ms,
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                analyzer
                    .analyze(&clip_id, Some(&meta), &bytes, &gallery)
                    .unwrap()
            })
        });
    }
    bench_consecutive(
        &mut group,
        "clip",
        "analyze_consecutive",
        &default,
        &meta,
        &bytes,
        &gallery,
    );
    group.finish();

    let (frames, _) = decode_clip(
        &clip_id,
        &bytes,
        &ClipLimits::default(),
        &SamplePolicy::Every(1000),
        FPS,
    )
    .unwrap();
    let frame = &frames[0].image;
    let mut group = c.benchmark_group("frame");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, kind) in [
        ("detect_yunet", DetectorKind::Yunet),
        ("detect_fast", DetectorKind::Fast),
        ("detect_mtcnn", DetectorKind::Mtcnn),
    ] {
        let found = pipeline.detect_with(frame, kind).unwrap();
        eprintln!("{name}: {} faces", found.faces.len());
        group.bench_function(name, |b| {
            b.iter(|| pipeline.detect_with(frame, kind).unwrap())
        });
    }
    let detections = pipeline.detect_with(frame, DetectorKind::Fast).unwrap();
    if let Some(face) = detections.faces.first() {
        group.bench_function("embed_face", |b| {
            b.iter(|| pipeline.embed(frame, &detections, face).unwrap())
        });
    }
    group.finish();

    if let Err(reason) = bench_crowd(c, &data, &pipeline) {
        eprintln!("crowd bench skipped: {reason}");
    }
}

/// The lecture hall's clip: names found, then timings.
fn bench_crowd(c: &mut Criterion, data: &Path, pipeline: &Arc<FacePipeline>) -> Result<(), String> {
    let gallery = lecture_hall::everyone_enrolled(data, pipeline)?;
    let hall = lecture_hall::LectureHall::build(data, pipeline, &gallery)?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = tmp.path().join("hall.h264");
    hall.encode(&path, 15, 30, &["-bf", "0", "-g", "15", "-f", "h264"])?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let meta = ClipMeta {
        device_id: "bench".into(),
        session_id: "crowd".into(),
        seq: 0,
        first_frame_ns: 0,
        last_frame_ns: 0,
        closed_ns: 0,
        fps: 30.0,
        width: lecture_hall::WIDTH,
        height: lecture_hall::HEIGHT,
        frame_count: 0,
        codec: CLIP_CODEC_H264_ANNEXB.into(),
    };
    let clip_id = meta.clip_id();
    let default = ClipAnalyzer::new(pipeline.clone());
    let mut group = c.benchmark_group("crowd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    for (name, analyzer) in [
        ("analyze", default.clone()),
        (
            "analyze_fast",
            default.clone().with_detector(DetectorKind::Fast),
        ),
    ] {
        let a = analyzer
            .analyze(&clip_id, Some(&meta), &bytes, &gallery)
            .map_err(|e| e.to_string())?;
        for face_px in [lecture_hall::BACK_FACE_PX, lecture_hall::FRONT_FACE_PX] {
            let seated = hall.enrolled_at(face_px);
            let named = seated.iter().filter(|p| a.person(p).is_some()).count();
            eprintln!(
                "crowd/{name}: {face_px} px faces: {named} of {} named",
                seated.len()
            );
        }
        let wrong = a
            .people
            .iter()
            .filter(|p| {
                !hall
                    .seats
                    .iter()
                    .any(|s| s.enrolled && s.person == p.person_id)
            })
            .count();
        eprintln!(
            "crowd/{name}: {} faces in 2 frames, {wrong} wrong names, {} distinct strangers \
             ({} in the hall); decode {:.1} detect {:.1} embed {:.1} total {:.1} ms",
            a.faces_detected,
            a.unknown_faces,
            hall.strangers(),
            a.timings.decode_ms,
            a.timings.detect_ms,
            a.timings.embed_ms,
            a.timings.total_ms,
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                analyzer
                    .analyze(&clip_id, Some(&meta), &bytes, &gallery)
                    .unwrap()
            })
        });
    }
    bench_consecutive(
        &mut group,
        "crowd",
        "analyze_consecutive",
        &default,
        &meta,
        &bytes,
        &gallery,
    );
    // As the embedded service loads the models (one session per worker, a worker per core):
    // with the other sessions idle, a frame's faces are embedded on several cores at once.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > 1 {
        let mut options = PipelineOptions::default();
        options.runtime.sessions_per_model = cores;
        let service = ClipAnalyzer::new(load(options)?);
        bench_consecutive(
            &mut group,
            "crowd",
            "analyze_consecutive_idle_cores",
            &service,
            &meta,
            &bytes,
            &gallery,
        );
    }
    group.finish();

    let frame = hall.frame(0);
    let cache = ModelCache::from_env().map_err(|e| e.to_string())?;
    let runtime = RuntimeOptions::default();
    let model = |name: &str| cache.model_path(name).map_err(|e| e.to_string());
    let ultraface =
        UltraFace::load(&model("fr_detect.onnx")?, &runtime).map_err(|e| e.to_string())?;
    let mtcnn = FaceDetector::load(
        &model("pnet.onnx")?,
        &model("rnet.onnx")?,
        &model("onet.onnx")?,
        DetectorOptions::default(),
        &runtime,
    )
    .map_err(|e| e.to_string())?;
    let seats: Vec<(f32, f32)> = hall.seats.iter().map(|s| s.centre).collect();
    let on_seats = |boxes: Vec<FaceBox>| {
        // Faces move by up to 2 px from their seat; 30 px is the smallest.
        lecture_hall::found(&seats, lecture_hall::BACK_FACE_PX, &boxes)
    };
    for kind in [DetectorKind::Yunet, DetectorKind::Fast] {
        let found = pipeline
            .detect_with(&frame, kind)
            .map_err(|e| e.to_string())?;
        let n = on_seats(found.faces.iter().map(|d| d.bbox).collect());
        eprintln!("crowd_frame/detect_{kind}: {n} of {} faces", seats.len());
    }
    let tiled = tiled_fast(&ultraface, &mtcnn, &frame);
    eprintln!(
        "crowd_frame/detect_tiled_fast: {} of {} faces",
        on_seats(tiled.iter().map(|d| d.bbox).collect()),
        seats.len()
    );
    let mut group = c.benchmark_group("crowd_frame");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, kind) in [
        ("detect_yunet", DetectorKind::Yunet),
        ("detect_fast", DetectorKind::Fast),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| pipeline.detect_with(&frame, kind).unwrap())
        });
    }
    group.bench_function("detect_tiled_fast", |b| {
        b.iter(|| tiled_fast(&ultraface, &mtcnn, &frame))
    });
    let detections = pipeline
        .detect_with(&frame, DetectorKind::Yunet)
        .map_err(|e| e.to_string())?;
    // The clip analyzer's later frames: frame 0's faces followed into frame 8.
    let boxes: Vec<FaceBox> = detections.faces.iter().map(|d| d.bbox).collect();
    let later = hall.frame(8);
    group.bench_function(format!("follow_{}_faces", boxes.len()), |b| {
        b.iter(|| pipeline.follow(&later, &boxes).unwrap())
    });
    let faces: Vec<_> = detections.faces.iter().collect();
    eprintln!("crowd_frame: {} faces embedded together", faces.len());
    group.bench_function(format!("embed_{}_faces", faces.len()), |b| {
        b.iter(|| pipeline.embed_faces(&frame, &detections, &faces).unwrap())
    });
    group.bench_function("embed_one_face_at_a_time", |b| {
        b.iter(|| {
            for face in &faces {
                pipeline.embed(&frame, &detections, face).unwrap();
            }
        })
    });
    group.finish();
    Ok(())
}

/// UltraFace on 320x240 tiles of `frame` at full resolution (overlapping by 80x60), proposals
/// merged by NMS (IoU 0.4, as UltraFace's own), then O-Net on each (the alternative to YuNet).
fn tiled_fast(ultraface: &UltraFace, mtcnn: &FaceDetector, frame: &RgbImage) -> Vec<Detection> {
    let options = FastDetectorOptions::default();
    let (fw, fh) = frame.dimensions();
    let (tw, th, step_x, step_y) = (320u32.min(fw), 240u32.min(fh), 240, 180);
    let starts = |len: u32, tile: u32, step: u32| {
        let mut v: Vec<u32> = (0..len.saturating_sub(tile))
            .step_by(step as usize)
            .collect();
        v.push(len - tile);
        v.dedup();
        v
    };
    let mut proposals = Vec::new();
    for y in starts(fh, th, step_y) {
        for x in starts(fw, tw, step_x) {
            let tile = image::imageops::crop_imm(frame, x, y, tw, th).to_image();
            for p in ultraface.proposals(&tile, &options).unwrap() {
                proposals.push((p.bbox.translated(x as f32, y as f32), p.score));
            }
        }
    }
    proposals.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept: Vec<FaceBox> = Vec::new();
    for (b, _) in proposals {
        if kept.iter().all(|k| iou(k, &b) <= options.nms_iou) {
            kept.push(b);
        }
    }
    let boxes: Vec<FaceBox> = kept.iter().map(|b| options.onet_box(b)).collect();
    mtcnn.refine_proposals(frame, &boxes).unwrap()
}

criterion_group!(benches, bench_clip);
criterion_main!(benches);
