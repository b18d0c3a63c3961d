//! Detect + align + embed per image, one thread.
//!
//! `cargo bench -p rollcall-recognizer --bench pipeline` (needs `rollcall models fetch` and the
//! data set at `$ROLLCALL_DATA`, default `../shared/data`).
//!
//! Before criterion runs, every photo of `faces/val` (298) is timed three times in a row and two
//! medians over the photos are printed: of each photo's first run (what `rollcall eval` reports
//! as `ms_per_image_median`, the figure the target, median <= 12 ms, is about) and of its
//! fastest run (less sensitive to other load on the machine), with the detection and embedding
//! medians of the fastest runs. Criterion then measures the mean over 18 photos of the
//! set (grey tight crops, LFW, the larger celebrity photos pull it up), MTCNN (the default for
//! photos) and the fast detector, and `align_face_bicubic` the warp of one face to 112x112. `ROLLCALL_BENCH_NO_PRELU_REWRITE=1` loads the models as they
//! are (without `runtime::prelu`'s rewrite), for comparison.
// `criterion_group!` generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rollcall_models::ModelCache;
use rollcall_recognizer::vision::{
    align_face_with, load_image, DetectorKind, FacePipeline, PipelineOptions, RgbImage, WarpFilter,
};

fn data_dir() -> PathBuf {
    std::env::var_os("ROLLCALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Medians over the photos of `dir/<person>/*`, in ms: photos, first run, fastest of three runs,
/// and the detection and embedding parts of the fastest runs.
fn whole_set_medians(pipeline: &FacePipeline, dir: &Path) -> Option<(usize, f64, f64, f64, f64)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|person| std::fs::read_dir(person.path()).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let (mut first, mut whole, mut detect, mut embed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for file in files {
        let Ok(image) = load_image(&file) else {
            continue;
        };
        let mut best = (f64::INFINITY, 0.0, 0.0);
        for _ in 0..3 {
            let started = Instant::now();
            let Ok((_, _, times)) = pipeline.largest_face(&image) else {
                break;
            };
            let total = ms(started.elapsed());
            if best.0.is_infinite() {
                first.push(total);
            }
            if total < best.0 {
                best = (total, ms(times.detect), ms(times.embed));
            }
        }
        if best.0.is_finite() {
            whole.push(best.0);
            detect.push(best.1);
            embed.push(best.2);
        }
    }
    Some((
        whole.len(),
        median(&mut first),
        median(&mut whole),
        median(&mut detect),
        median(&mut embed),
    ))
}

fn probe_images() -> Vec<(String, RgbImage)> {
    let data = data_dir();
    let mut images = Vec::new();
    // A spread of the set: grey tight crops, 250x250 LFW, larger celebrity photos.
    for person in [
        "att_s1",
        "att_s20",
        "lfw_George_W_Bush",
        "lfw_Tony_Blair",
        "celeb_madonna",
        "celeb_ben_afflek",
    ] {
        let dir = data.join("faces/val").join(person);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for file in files.into_iter().take(3) {
            if let Ok(image) = load_image(&file) {
                images.push((file.display().to_string(), image));
            }
        }
    }
    images
}

fn bench_pipeline(c: &mut Criterion) {
    let Ok(cache) = ModelCache::from_env() else {
        eprintln!("SKIPPED: no model cache");
        return;
    };
    let mut options = PipelineOptions::default();
    // A/B switch: the models as they are, without the PRelu rewrite (see runtime::prelu).
    if std::env::var_os("ROLLCALL_BENCH_NO_PRELU_REWRITE").is_some() {
        eprintln!("PRelu rewrite off (ROLLCALL_BENCH_NO_PRELU_REWRITE)");
        options.runtime.rewrite_prelu = false;
    }
    let pipeline = match FacePipeline::load(&cache, options) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let images = probe_images();
    if images.is_empty() {
        eprintln!("SKIPPED: data set not found");
        return;
    }
    if let Some((photos, first, fastest, detect, embed)) =
        whole_set_medians(&pipeline, &data_dir().join("faces/val"))
    {
        eprintln!(
            "faces/val, {photos} photos, MTCNN: median {first:.2} ms per photo (first run), \
             {fastest:.2} ms (fastest of 3: detect {detect:.2}, landmarks + align + embed {embed:.2})"
        );
    }
    // The warp a crowd's small faces take (bicubic, enlarged to 112x112): the landmarks of
    // the first photo's face.
    if let Some((image, face)) = images.iter().find_map(|(_, image)| {
        let found = pipeline.detect(image).ok()?;
        Some((image, found.faces.first()?.clone()))
    }) {
        c.bench_function("align_face_bicubic", |b| {
            b.iter(|| align_face_with(image, &face.landmarks, WarpFilter::Bicubic))
        });
    }
    let mut index = 0;
    c.bench_function("detect_align_embed_largest_face_per_image", |b| {
        b.iter(|| {
            let (_, image) = &images[index % images.len()];
            index += 1;
            pipeline.largest_face(image).expect("pipeline")
        })
    });
    if pipeline.has_fast_detector() {
        let mut index = 0;
        c.bench_function("detect_align_embed_largest_face_per_image_fast", |b| {
            b.iter(|| {
                let (_, image) = &images[index % images.len()];
                index += 1;
                let found = pipeline
                    .detect_with(image, DetectorKind::Fast)
                    .expect("detect");
                let largest = found
                    .faces
                    .iter()
                    .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()));
                largest.map(|face| pipeline.embed(image, &found, face).expect("embed"))
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(60);
    targets = bench_pipeline
}
criterion_main!(benches);
