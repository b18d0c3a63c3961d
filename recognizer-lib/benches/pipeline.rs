//! Detect + align + embed per image, one thread: the median goes into docs/benchmarks.md.
//!
//! `cargo bench -p rollcall-recognizer --bench pipeline` (needs `rollcall models fetch` and the
//! data set at `$ROLLCALL_DATA`, default `../shared/data`).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use rollcall_models::ModelCache;
use rollcall_recognizer::vision::{load_image, FacePipeline, PipelineOptions, RgbImage};

fn probe_images() -> Vec<(String, RgbImage)> {
    let data = std::env::var_os("ROLLCALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
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
    let pipeline = match FacePipeline::load(&cache, PipelineOptions::default()) {
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
    let mut index = 0;
    c.bench_function("detect_align_embed_largest_face_per_image", |b| {
        b.iter(|| {
            let (_, image) = &images[index % images.len()];
            index += 1;
            pipeline.largest_face(image).expect("pipeline")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(60);
    targets = bench_pipeline
}
criterion_main!(benches);
