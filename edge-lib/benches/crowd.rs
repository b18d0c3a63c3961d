//! The lecture hall's clips as a session sends them: the hall's video (1280x720, 30 fps, written
//! by libx264 at CRF 18 like a camera's view) cut and encoded by the edge's `ClipSegmenter` with
//! its default settings, then analysed clip after clip as one stream by the recogniser, with a
//! model session per core as the embedded service loads them. The recogniser's own crowd bench
//! (`recognizer-lib/benches/clip.rs`) analyses a libx264 clip, which no edge sends.
//!
//! `cargo bench -p rollcall-edge --bench crowd`
//!
//! Needs `$ROLLCALL_DATA` (default `../shared/data`), the models (`rollcall models fetch`) and
//! the `ffmpeg` CLI; without them it prints why and measures nothing.
// `criterion_group!` generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

#[path = "../../recognizer-lib/tests/common/lecture_hall.rs"]
mod lecture_hall;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rollcall_edge::replay::RecordedClips;
use rollcall_edge::segment::{EncodedClip, DEFAULT_CLIP_MS};
use rollcall_edge::source::{SourceOptions, SourceSpec};
use rollcall_models::ModelCache;
use rollcall_recognizer::clip::ClipAnalyzer;
use rollcall_recognizer::vision::{FacePipeline, Gallery, PipelineOptions};

fn data_dir() -> PathBuf {
    std::env::var_os("ROLLCALL_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// The hall's video cut into clips as a session cuts it (default segmenter), the pipeline and
/// the gallery.
fn setup() -> Result<(Vec<EncodedClip>, Arc<FacePipeline>, Gallery), String> {
    let data = data_dir();
    let cache = ModelCache::from_env().map_err(|e| e.to_string())?;
    let mut options = PipelineOptions::default();
    options.runtime.sessions_per_model =
        std::thread::available_parallelism().map_or(1, |n| n.get());
    let pipeline = Arc::new(
        FacePipeline::load(&cache, options)
            .map_err(|e| format!("models not available (set ROLLCALL_HOME): {e}"))?,
    );
    let gallery = lecture_hall::everyone_enrolled(&data, &pipeline)?;
    let hall = lecture_hall::LectureHall::build(&data, &pipeline, &gallery)?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let video = tmp.path().join("lecture-hall.mp4");
    hall.encode(&video, 120, 30, &[])?;
    let recorded = RecordedClips::record(
        &SourceSpec::File(video),
        &SourceOptions::default(),
        DEFAULT_CLIP_MS,
        usize::MAX,
    )
    .map_err(|e| e.to_string())?;
    let clips = recorded.clips().to_vec();
    Ok((clips, pipeline, gallery))
}

fn bench_crowd(c: &mut Criterion) {
    let (clips, pipeline, gallery) = match setup() {
        Ok(setup) => setup,
        Err(reason) => {
            eprintln!("crowd bench skipped: {reason}");
            return;
        }
    };
    let analyzer = ClipAnalyzer::new(pipeline);
    // The stream's clips in turn, as the next clips of one session (sequence numbers count
    // up), so identities carry from clip to clip as they do live.
    let mut seq = 0u64;
    let mut next = || {
        let clip = &clips[seq as usize % clips.len()];
        let mut meta = clip.meta.clone();
        meta.seq = seq;
        seq += 1;
        analyzer
            .analyze(&meta.clip_id(), Some(&meta), &clip.bytes, &gallery)
            .expect("the hall's clip analyses")
    };
    let runs: Vec<_> = (0..clips.len()).map(|_| next()).collect();
    eprintln!(
        "crowd/edge_clips: {} clips of {:?} kB; {}",
        clips.len(),
        clips
            .iter()
            .map(|c| c.bytes.len() / 1024)
            .collect::<Vec<_>>(),
        lecture_hall::per_clip_figures(&runs)
    );
    let mut group = c.benchmark_group("crowd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    group.bench_function("edge_clips_consecutive_idle_cores", |b| b.iter(&mut next));
    group.finish();
}

criterion_group!(benches, bench_crowd);
criterion_main!(benches);
