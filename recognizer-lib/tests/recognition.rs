//! The recognizer core on real photos: detection on every format, enrolment and identification
//! on a subset of `faces/` (fast; default run), and the full evaluation against the targets
//! (`full_evaluation_meets_targets`, run by CI).

mod common;
#[path = "common/lecture_hall.rs"]
mod lecture_hall;

use std::path::{Path, PathBuf};

use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::directory::PeopleDirectory;
use rollcall_recognizer::enrollment::{
    embed_person_photos, load_gallery, recalibrate, scan_photo_tree, store_enrollment, PhotoOutcome,
};
use rollcall_recognizer::evaluation::{summarize, ProbeResult};
use rollcall_recognizer::runtime::{ConvLayout, RuntimeOptions};
use rollcall_recognizer::vision::ultraface::iou;
use rollcall_recognizer::vision::{
    decode_image, load_image, DetectorKind, FaceEmbedder, FacePipeline, Identity, PipelineOptions,
    YuNet, YuNetOptions, MAX_EMBED_BATCH, YUNET_MODEL,
};

/// The largest difference between two embeddings' values.
fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn enroll_tree(pipeline: &FacePipeline, dir: &Path, only: Option<&[&str]>) -> SqliteDirectory {
    let directory = SqliteDirectory::open_in_memory().expect("in-memory directory");
    let tree = scan_photo_tree(dir).expect("photo tree");
    for (person, photos) in &tree.people {
        if only.is_some_and(|names| !names.contains(&person.as_str())) {
            continue;
        }
        let enrollment = embed_person_photos(pipeline, person, photos);
        store_enrollment(&directory, &enrollment).expect("store");
    }
    recalibrate(&directory).expect("calibrate");
    directory
}

fn evaluate(
    pipeline: &FacePipeline,
    directory: &SqliteDirectory,
    dir: &Path,
    only: Option<&[&str]>,
) -> rollcall_recognizer::evaluation::EvaluationReport {
    let gallery = load_gallery(directory, None).expect("gallery");
    let mut results = Vec::new();
    for (person, files) in scan_photo_tree(dir).expect("probe tree").people {
        if only.is_some_and(|names| !names.contains(&person.as_str())) {
            continue;
        }
        let enrolled = gallery.contains(&person);
        for file in files {
            let image = load_image(&file).expect("probe decodes");
            let started = std::time::Instant::now();
            let (face, _, _) = pipeline.largest_face(&image).expect("pipeline");
            let millis = started.elapsed().as_secs_f64() * 1e3;
            let (closest, similarity, named) = match face {
                None => (None, None, None),
                Some(face) => {
                    let top = gallery.top_k(&face.embedding, 1).into_iter().next();
                    let named = match gallery.identify(&face.embedding) {
                        Identity::Known(c) => Some(c.person_id),
                        Identity::Unknown { .. } => None,
                    };
                    (
                        top.as_ref().map(|c| c.person_id.clone()),
                        top.map(|c| c.similarity),
                        named,
                    )
                }
            };
            results.push(ProbeResult {
                file: file.display().to_string(),
                expected: enrolled.then(|| person.clone()),
                closest,
                similarity,
                named,
                millis,
            });
        }
    }
    summarize(&results, gallery.threshold())
}

#[test]
fn detects_faces_in_every_image_format_of_the_data_set() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    // One file of each kind: grey PGM tight crop, colour JPEG, PNG.
    let mut seen = std::collections::BTreeSet::new();
    for (_, files) in scan_photo_tree(&data.join("faces/train")).unwrap().people {
        for file in files {
            let ext = file
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if seen.insert(ext.clone()) {
                let image = load_image(&file).unwrap();
                let (faces, _) = pipeline.faces(&image).unwrap();
                assert!(!faces.is_empty(), "no face in {}", file.display());
                for face in &faces {
                    assert_eq!(face.embedding.len(), 512);
                    let norm: f32 = face.embedding.iter().map(|v| v * v).sum();
                    assert!((norm - 1.0).abs() < 1e-3);
                }
            }
        }
    }
    assert!(seen.len() >= 2, "formats seen: {seen:?}");
}

#[test]
fn group_photo_yields_several_faces_and_a_blank_image_none() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let multi: Vec<PathBuf> = std::fs::read_dir(data.join("examples/_multi_person"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    let most = multi
        .iter()
        .filter_map(|p| load_image(p).ok())
        .map(|img| pipeline.faces(&img).unwrap().0.len())
        .max()
        .unwrap_or(0);
    assert!(most >= 2, "a multi-person photo must give several faces");

    let blank = image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
    assert!(pipeline.faces(&blank).unwrap().0.is_empty());
}

/// How the models run changes speed, never results: the default pipeline (`PRelu` rewritten,
/// see `runtime::prelu`; the embedder's convolution layout timed at load, see
/// `runtime::ConvLayout`) must find the same faces and give the same embeddings as the files as
/// they are, and as every convolution layout forced.
#[test]
fn runtime_variants_keep_detections_and_embeddings() {
    let (Some(data), Some(default)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let cache = rollcall_models::ModelCache::from_env().expect("model cache");
    let as_they_are = RuntimeOptions {
        rewrite_prelu: false,
        flush_subnormal_weights: false,
        ..RuntimeOptions::default()
    };
    for runtime in [
        as_they_are,
        RuntimeOptions {
            conv_layout: ConvLayout::Blocked,
            ..RuntimeOptions::default()
        },
        RuntimeOptions {
            conv_layout: ConvLayout::Plain,
            ..RuntimeOptions::default()
        },
    ] {
        let variant = format!(
            "prelu rewritten: {}, subnormals flushed: {}, layout {}",
            runtime.rewrite_prelu, runtime.flush_subnormal_weights, runtime.conv_layout
        );
        let options = PipelineOptions {
            runtime,
            ..PipelineOptions::default()
        };
        let other = FacePipeline::load(&cache, options).expect("models load");
        compare_pipelines(&data, &default, &other, &variant);
    }
}

fn compare_pipelines(data: &Path, default: &FacePipeline, other: &FacePipeline, variant: &str) {
    let mut compared = 0;
    let tree = scan_photo_tree(&data.join("faces/val")).expect("probe tree");
    let chosen = [
        "att_s1",
        "lfw_Tony_Blair",
        "celeb_madonna",
        "celeb_ben_afflek",
    ];
    for (_, files) in tree
        .people
        .iter()
        .filter(|(p, _)| chosen.contains(&p.as_str()))
    {
        for file in files.iter().take(3) {
            let image = load_image(file).expect("probe decodes");
            let (a, _) = other.faces(&image).expect("variant models");
            let (b, _) = default.faces(&image).expect("default models");
            assert_eq!(a.len(), b.len(), "{variant}: {}", file.display());
            for (fa, fb) in a.iter().zip(&b) {
                let moved = [
                    fa.detection.bbox.x1 - fb.detection.bbox.x1,
                    fa.detection.bbox.y1 - fb.detection.bbox.y1,
                    fa.detection.bbox.x2 - fb.detection.bbox.x2,
                    fa.detection.bbox.y2 - fb.detection.bbox.y2,
                ];
                assert!(
                    moved.iter().all(|d| d.abs() < 0.01),
                    "{variant}: {}: {moved:?}",
                    file.display()
                );
                let cos = rollcall_recognizer::vision::cosine(&fa.embedding, &fb.embedding);
                assert!(cos > 0.9999, "{variant}: {}: cosine {cos}", file.display());
                compared += 1;
            }
        }
    }
    assert!(compared >= 6, "{variant}: only {compared} faces compared");
}

/// `fr_feature` runs with its batch dimension freed at load time (the file fixes it to 1):
/// faces embedded several per run must get the embeddings they get one at a time. (The
/// pipeline runs one face per run by default, the cheapest here; larger runs are set with
/// `FaceEmbedder::with_faces_per_run`.)
#[test]
fn embedder_runs_of_several_faces_equal_one_face_at_a_time() {
    let (Some(data), Some(_)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let cache = rollcall_models::ModelCache::from_env().expect("model cache");
    let model = cache.model_path("fr_feature.onnx").expect("model path");
    let one_at_a_time = FaceEmbedder::load(&model, &RuntimeOptions::default()).expect("fr_feature");
    let in_runs_of_4 = FaceEmbedder::load(&model, &RuntimeOptions::default())
        .expect("fr_feature")
        .with_faces_per_run(4);
    // Real pixels, a different 112x112 window of the photo for every face; 9 faces make runs
    // of 4, 4 and 1.
    let photo = load_image(&data.join("examples/_multi_person/two_people.jpg")).expect("photo");
    let faces: Vec<_> = (0..9)
        .map(|i| image::imageops::crop_imm(&photo, 9 * i, 5 * i, 112, 112).to_image())
        .collect();
    let batched = in_runs_of_4
        .embed_batch_on(&faces, 1)
        .expect("embed in runs of 4");
    assert_eq!(batched.len(), faces.len());
    for (i, (face, batched)) in faces.iter().zip(&batched).enumerate() {
        let alone = one_at_a_time.embed(face).expect("embed alone");
        let worst = largest_difference(&alone, batched);
        assert!(worst <= 1e-5, "face {i}: values differ by {worst}");
    }
}

/// Faces of a frame embedded together (aligned, then embedded in runs, possibly spread over
/// sessions) must get the embeddings they get one at a time, in order.
#[test]
fn batched_embeddings_equal_one_face_at_a_time() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let mut compared = 0;
    for photo in [
        "examples/_multi_person/two_people.jpg",
        "examples/_multi_person/obama_and_biden.jpg",
        "faces/val/celeb_jerry_seinfeld/10.jpg",
    ] {
        let image = load_image(&data.join(photo)).expect("photo decodes");
        let detections = pipeline.detect(&image).expect("detect");
        assert!(!detections.faces.is_empty(), "{photo}: no face");
        // Every face, repeated past the largest batch so that the faces span several runs.
        let faces: Vec<&_> = detections
            .faces
            .iter()
            .cycle()
            .take(detections.faces.len().max(MAX_EMBED_BATCH + 3))
            .collect();
        let together = pipeline
            .embed_faces(&image, &detections, &faces)
            .expect("embed together");
        assert_eq!(together.len(), faces.len());
        for (face, batched) in faces.iter().zip(&together) {
            let alone = pipeline
                .embed(&image, &detections, face)
                .expect("embed alone");
            let (Some(alone), Some(batched)) = (alone, batched) else {
                assert!(
                    batched.is_none(),
                    "{photo}: one path embedded, the other not"
                );
                continue;
            };
            let worst = largest_difference(&alone.embedding, &batched.embedding);
            assert!(worst <= 1e-5, "{photo}: values differ by {worst}");
            compared += 1;
        }
    }
    assert!(
        compared > 2 * MAX_EMBED_BATCH,
        "only {compared} faces compared"
    );
}

/// A crowd's faces are spread over the embedder's idle sessions, one thread each: they must
/// get, in order, the embeddings they get one at a time (here two sessions, both idle).
#[test]
fn a_crowd_spread_over_idle_sessions_embeds_as_one_face_at_a_time() {
    let (Some(data), Some(_)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIPPED: one core, the crowd is embedded on one thread");
        return;
    }
    let cache = rollcall_models::ModelCache::from_env().expect("model cache");
    let embedder = FaceEmbedder::load(
        &cache.model_path("fr_feature.onnx").expect("model path"),
        &RuntimeOptions {
            sessions_per_model: 2,
            ..RuntimeOptions::default()
        },
    )
    .expect("fr_feature");
    assert_eq!(embedder.idle_sessions(), 2);
    // Real pixels, a different 112x112 window of the photo for every face.
    let photo = load_image(&data.join("examples/_multi_person/two_people.jpg")).expect("photo");
    let faces: Vec<_> = (0..2 * MAX_EMBED_BATCH + 3)
        .map(|i| image::imageops::crop_imm(&photo, 9 * i as u32, 5 * i as u32, 112, 112).to_image())
        .collect();
    let together = embedder.embed_batch(&faces).expect("embed the crowd");
    assert_eq!(together.len(), faces.len());
    assert_eq!(embedder.idle_sessions(), 2, "sessions given back");
    for (i, (face, spread)) in faces.iter().zip(&together).enumerate() {
        let alone = embedder.embed(face).expect("embed alone");
        let worst = largest_difference(&alone, spread);
        assert!(worst <= 1e-5, "face {i}: values differ by {worst}");
    }

    // The pipeline spreads the alignment with the embedding: a grid of real faces gives the
    // same faces and embeddings spread over two sessions as on one thread.
    let pipeline = FacePipeline::load(
        &cache,
        PipelineOptions {
            runtime: RuntimeOptions {
                sessions_per_model: 2,
                ..RuntimeOptions::default()
            },
            ..PipelineOptions::default()
        },
    )
    .expect("pipeline with two sessions");
    let (grid, _) = lecture_hall::face_grid(&data, &pipeline, 60.0, 960, 540).expect("grid");
    let detections = pipeline
        .detect_with(&grid, DetectorKind::Yunet)
        .expect("detect");
    let found: Vec<_> = detections.faces.iter().collect();
    assert!(found.len() >= 2 * MAX_EMBED_BATCH, "{} faces", found.len());
    let spread = pipeline
        .embed_faces_on(&grid, &detections, &found, 2)
        .expect("spread");
    let alone = pipeline
        .embed_faces_on(&grid, &detections, &found, 1)
        .expect("one thread");
    assert_eq!(spread.len(), alone.len());
    for (i, (a, b)) in spread.iter().zip(&alone).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => {
                assert_eq!(a.detection, b.detection, "face {i}");
                let worst = largest_difference(&a.embedding, &b.embedding);
                assert!(worst <= 1e-5, "face {i}: values differ by {worst}");
            }
            (None, None) => {}
            _ => panic!("face {i}: aligned on one path only"),
        }
    }
}

/// Following faces (the clip analyzer's later frames): O-Net around an earlier frame's boxes
/// finds each face where it is now, with the landmarks a whole search gives, and nothing where
/// there is no face.
#[test]
fn following_finds_the_faces_of_an_earlier_frame_where_they_moved() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let photo = load_image(&data.join("examples/_multi_person/two_people.jpg")).expect("photo");
    let earlier = pipeline.detect(&photo).expect("detect").faces;
    assert!(earlier.len() >= 2, "{earlier:?}");
    // The next frame: everything moved right and down by a tenth of the largest face.
    let shift = (earlier[0].bbox.width() / 10.0).round().max(2.0) as u32;
    let mut moved = image::RgbImage::from_pixel(photo.width(), photo.height(), image::Rgb([90; 3]));
    image::imageops::overlay(&mut moved, &photo, i64::from(shift), i64::from(shift));
    let searched = pipeline.detect(&moved).expect("search").faces;
    let boxes: Vec<_> = earlier.iter().map(|d| d.bbox).collect();
    let followed = pipeline.follow(&moved, &boxes).expect("follow").faces;
    assert_eq!(followed.len(), earlier.len(), "{followed:?}");
    for face in &followed {
        let best = searched
            .iter()
            .max_by(|a, b| iou(&a.bbox, &face.bbox).total_cmp(&iou(&b.bbox, &face.bbox)))
            .expect("searched faces");
        assert!(
            iou(&best.bbox, &face.bbox) >= 0.8,
            "followed {:?}, searched {:?}",
            face.bbox,
            best.bbox
        );
        let side = best.bbox.width();
        for (a, b) in face.landmarks.iter().zip(&best.landmarks) {
            let off = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
            assert!(
                off <= side / 10.0,
                "landmark {a:?} vs {b:?} (face {side} px)"
            );
        }
    }
    // The same boxes over background find nothing; no boxes, no faces.
    let blank = image::RgbImage::from_pixel(photo.width(), photo.height(), image::Rgb([90; 3]));
    assert!(pipeline
        .follow(&blank, &boxes)
        .expect("follow")
        .faces
        .is_empty());
    assert!(pipeline
        .follow(&moved, &[])
        .expect("follow")
        .faces
        .is_empty());
}

/// YuNet on its own (without O-Net), loaded from the model cache; its weights are folded to
/// float at load.
fn yunet_alone() -> YuNet {
    let cache = rollcall_models::ModelCache::from_env().expect("model cache");
    YuNet::load(
        &cache
            .model_path(YUNET_MODEL)
            .expect("YuNet in the manifest"),
        &Default::default(),
    )
    .expect("YuNet loads once its weights are folded")
}

/// YuNet as published stores block-quantised weights that ONNX Runtime refuses; they are folded
/// to float at load, and its 640x640 input is freed. The folded graph must still find faces:
/// on real photos of every size, each face MTCNN finds is found by YuNet alone (box and eye
/// landmarks where MTCNN puts them), and the YuNet + O-Net detector returns MTCNN's box.
#[test]
fn yunet_finds_the_faces_mtcnn_finds() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    assert!(
        pipeline.has_yunet(),
        "YuNet missing: run `rollcall models fetch`"
    );
    let yunet = yunet_alone();
    let mut checked = 0;
    for photo in [
        "examples/_multi_person/two_people.jpg",
        "examples/_multi_person/obama_and_biden.jpg",
        "examples/_multi_person/kit_with_rose.jpg",
        "faces/val/lfw_Tony_Blair/Tony_Blair_0006.jpg",
        "faces/val/celeb_madonna/10.jpg",
    ] {
        let image = load_image(&data.join(photo)).expect("photo decodes");
        let mtcnn = pipeline
            .detect_with(&image, DetectorKind::Mtcnn)
            .expect("MTCNN");
        let raw = yunet
            .faces(&image, &YuNetOptions::default())
            .expect("YuNet runs on any size");
        let refined = pipeline
            .detect_with(&image, DetectorKind::Yunet)
            .expect("YuNet + O-Net");
        for face in mtcnn.faces.iter().filter(|f| f.score > 0.95) {
            let side = face.bbox.width().max(face.bbox.height());
            let found = raw
                .iter()
                .find(|y| iou(&y.proposal.bbox, &face.bbox) > 0.4)
                .unwrap_or_else(|| panic!("{photo}: YuNet missed the face at {:?}", face.bbox));
            for eye in 0..2 {
                let (dx, dy) = (
                    found.landmarks[eye][0] - face.landmarks[eye][0],
                    found.landmarks[eye][1] - face.landmarks[eye][1],
                );
                assert!(
                    dx.hypot(dy) < 0.15 * side,
                    "{photo}: eye {eye} {:?} vs MTCNN {:?}",
                    found.landmarks[eye],
                    face.landmarks[eye]
                );
            }
            let best = refined
                .faces
                .iter()
                .map(|r| iou(&r.bbox, &face.bbox))
                .fold(0f32, f32::max);
            assert!(best > 0.7, "{photo}: refined box IoU {best} with MTCNN's");
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} faces checked");
}

/// Issue: faces of ~20-30 px in 720p frames were lost by the clip detector (the fast detector
/// sees frames at 320x240). The faces of the probe set pasted in a grid at several sizes: YuNet +
/// O-Net must find at least 90 % from 20 px in a 1280x720 frame, and never fewer than the fast
/// detector. Prints the table docs/accuracy.md gives (`--nocapture`).
#[test]
fn yunet_keeps_the_small_faces_the_fast_detector_loses() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    for (width, height) in [(1280, 720), (640, 360)] {
        for face_px in [16.0f32, 20.0, 24.0, 30.0, 40.0] {
            let (frame, centres) =
                lecture_hall::face_grid(&data, &pipeline, face_px, width, height).expect("grid");
            let mut counts = Vec::new();
            for kind in [DetectorKind::Yunet, DetectorKind::Fast] {
                let boxes: Vec<_> = pipeline
                    .detect_with(&frame, kind)
                    .expect("detect")
                    .faces
                    .iter()
                    .map(|d| d.bbox)
                    .collect();
                counts.push(lecture_hall::found(&centres, face_px, &boxes));
            }
            eprintln!(
                "{width}x{height}, {face_px} px faces: YuNet {} / fast {} of {}",
                counts[0],
                counts[1],
                centres.len()
            );
            assert!(
                counts[0] >= counts[1],
                "{width}x{height} {face_px} px: {counts:?}"
            );
            if face_px >= 20.0 {
                assert!(
                    counts[0] * 10 >= centres.len() * 9,
                    "{width}x{height} {face_px} px: YuNet found {} of {}",
                    counts[0],
                    centres.len()
                );
            }
        }
    }
}

/// Issue 11: YuNet's memory grew with the frame (a 1920x1080 run peaked ~330 MB above a
/// 960x540 one), so frames over its pixel budget are detected in tiles plus the whole frame
/// shrunk (`YuNet::faces`). On 1920x1080 grids of faces from 20 to 260 px, the tiled detection
/// must find what one whole-frame run finds, each face once (no duplicates where tiles overlap).
#[test]
fn tiled_yunet_finds_what_one_whole_run_finds() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let yunet = yunet_alone();
    let whole = YuNetOptions {
        max_input_pixels: usize::MAX,
        ..YuNetOptions::default()
    };
    let tiled = YuNetOptions::default();
    for face_px in [20.0f32, 24.0, 32.0, 48.0, 80.0, 140.0, 260.0] {
        let (frame, centres) =
            lecture_hall::face_grid(&data, &pipeline, face_px, 1920, 1080).expect("grid");
        let mut counts = Vec::new();
        for options in [&whole, &tiled] {
            let faces = yunet.faces(&frame, options).expect("YuNet runs");
            let boxes: Vec<_> = faces.iter().map(|f| f.proposal.bbox).collect();
            counts.push((lecture_hall::found(&centres, face_px, &boxes), faces.len()));
        }
        let [(found_whole, all_whole), (found_tiled, all_tiled)] = counts[..] else {
            unreachable!()
        };
        eprintln!(
            "1920x1080, {face_px} px faces: whole run {found_whole} ({all_whole} boxes), \
             tiled {found_tiled} ({all_tiled} boxes) of {}",
            centres.len()
        );
        // A face on the edge of detection may flip either way with its surroundings.
        let slack = (centres.len() / 20).max(1);
        assert!(
            found_tiled + slack >= found_whole
                && (face_px < 24.0 || found_tiled * 10 >= centres.len() * 9),
            "{face_px} px: tiled found {found_tiled}, whole {found_whole} of {}",
            centres.len()
        );
        assert!(
            all_tiled <= all_whole + 1 + centres.len() / 20,
            "{face_px} px: tiled gave {all_tiled} boxes for {found_tiled} faces, whole {all_whole}"
        );
    }
}

#[test]
fn subset_enrolment_identifies_people_and_rejects_strangers() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    // Enrolled: a few AT&T and LFW people. Probes also include AT&T s31/s32, never enrolled.
    let enrolled: &[&str] = &[
        "att_s1",
        "att_s2",
        "att_s3",
        "lfw_George_W_Bush",
        "lfw_Colin_Powell",
    ];
    let probes: &[&str] = &[
        "att_s1",
        "att_s2",
        "att_s3",
        "lfw_George_W_Bush",
        "lfw_Colin_Powell",
        "att_s31",
        "att_s32",
    ];
    let directory = enroll_tree(&pipeline, &data.join("faces/train"), Some(enrolled));
    assert_eq!(directory.gallery().unwrap().len(), enrolled.len());
    let report = evaluate(&pipeline, &directory, &data.join("faces/val"), Some(probes));
    assert!(report.probes >= 20, "{report:?}");
    assert!(report.stranger_probes >= 5);
    assert!(report.closed_set_top1 >= 0.95, "{report:?}");
    assert!(report.false_accept_rate <= 0.1, "{report:?}");
    assert!(report.open_set_accuracy >= 0.9, "{report:?}");
}

#[test]
fn corrupt_and_non_image_files_are_rejected_without_stopping_enrolment() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let person = dir.path().join("ada_lovelace");
    std::fs::create_dir(&person).unwrap();
    let good = scan_photo_tree(&data.join("faces/train"))
        .unwrap()
        .people
        .into_iter()
        .find(|(p, _)| p == "att_s1")
        .unwrap()
        .1;
    std::fs::copy(&good[0], person.join("good.pgm")).unwrap();
    std::fs::write(person.join("notes.txt"), "not an image").unwrap();
    let bytes = std::fs::read(&good[1]).unwrap();
    std::fs::write(person.join("cut.pgm"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(person.join("blank.png"), {
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(64, 64, image::Rgb([0, 0, 0]))
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        png.into_inner()
    })
    .unwrap();

    let tree = scan_photo_tree(dir.path()).unwrap();
    let enrollment = embed_person_photos(&pipeline, "ada_lovelace", &tree.people[0].1);
    assert_eq!(enrollment.used(), 1);
    let outcome = |name: &str| {
        enrollment
            .photos
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert_eq!(outcome("blank.png"), PhotoOutcome::NoFace);
    for name in ["notes.txt", "cut.pgm"] {
        match outcome(name) {
            PhotoOutcome::Rejected { reason } => assert!(reason.contains(name), "{reason}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(decode_image(b"", "empty.jpg").is_err());
}

/// The whole public set. CI runs it (`--include-ignored`). The bars are the figures this build
/// reaches (docs/accuracy.md) less a margin for run-to-run noise, so a regression fails CI. The
/// open-set target of the core issue is 0.99; this build reaches 0.9933 (296/298), so the bar is
/// the target itself (one more miss fails).
#[test]
#[ignore = "full evaluation (about half a minute); CI runs it"]
fn full_evaluation_meets_targets() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let directory = enroll_tree(&pipeline, &data.join("faces/train"), None);
    let report = evaluate(&pipeline, &directory, &data.join("faces/val"), None);
    eprintln!(
        "open-set {:.4} closed-set {:.4} FAR {:.4} FRR {:.4} threshold {:.3} probes {} \
         ms/image median {:.1}",
        report.open_set_accuracy,
        report.closed_set_top1,
        report.false_accept_rate,
        report.false_reject_rate,
        report.threshold,
        report.probes,
        report.ms_per_image_median
    );
    for failure in &report.failures {
        eprintln!("  {failure:?}");
    }
    assert_eq!(report.probes, 298);
    assert!(
        report.closed_set_top1 >= 0.99,
        "closed-set top-1 {report:?}"
    );
    assert!(report.false_accept_rate <= 0.02, "false accepts {report:?}");
    assert!(
        report.open_set_accuracy >= 0.99,
        "open-set accuracy {report:?}"
    );
}
