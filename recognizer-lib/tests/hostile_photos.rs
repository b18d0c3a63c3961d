//! Hostile photos through the whole per-image path, generated from the real data set: a
//! 12000x12000 mostly uniform PNG with one face (found on a bounded working copy, aligned from
//! the original pixels), a tiled crowd of 400 faces (R-Net/O-Net in chunks), phone photos stored
//! sideways with EXIF orientations 3, 6 and 8 (turned upright before detection). Memory is
//! measured by the benchmark (docs/benchmarks.md), not here.

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use rollcall_recognizer::error::RecognizerError;
use rollcall_recognizer::vision::{
    cosine, decode_photo, DecodeLimits, FacePipeline, RgbImage, DEFAULT_MAX_DETECT_SIDE,
};

/// The embedding of the largest face in `image`.
fn largest_embedding(pipeline: &FacePipeline, image: &RgbImage) -> Option<Vec<f32>> {
    let (face, _, _) = pipeline.largest_face(image).expect("pipeline runs");
    face.map(|f| f.embedding)
}

#[test]
fn a_huge_mostly_uniform_png_is_searched_on_a_working_copy_and_aligned_on_the_original() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let face = hostile::huge_photo_face(&data);
    let png = {
        let huge = hostile::huge_photo(&data);
        hostile::png_bytes(&huge)
    };
    println!("12000x12000 PNG: {} bytes", png.len());

    // Over a smaller budget it is refused from the header, naming the file and the budget.
    let tight = DecodeLimits {
        max_pixels: 100_000_000,
    };
    match decode_photo(&png, "huge.png", &tight) {
        Err(e @ RecognizerError::ImageOverBudget { .. }) => {
            let message = e.to_string();
            assert!(message.contains("huge.png"), "{message}");
            assert!(message.contains("12000x12000"), "{message}");
            assert!(message.contains("100 megapixels"), "{message}");
        }
        other => panic!("expected the budget refusal, got {other:?}"),
    }

    let photo = decode_photo(&png, "huge.png", &DecodeLimits::default()).expect("decodes");
    drop(png);
    assert_eq!(photo.image.dimensions(), (12_000, 12_000));
    assert_eq!(pipeline.options().max_detect_side, DEFAULT_MAX_DETECT_SIDE);
    assert!(
        pipeline.options().max_detect_side < 12_000,
        "the working copy is used"
    );
    let (faces, _) = pipeline.faces(&photo.image).expect("pipeline runs");
    assert_eq!(
        faces.len(),
        1,
        "one face on a uniform background: {faces:?}"
    );
    let b = faces[0].detection.bbox;
    let (x0, y0) = (5_100.0, 6_300.0);
    assert!(
        b.x1 >= x0
            && b.y1 >= y0
            && b.x2 <= x0 + face.width() as f32
            && b.y2 <= y0 + face.height() as f32,
        "the box lies on the pasted photo: {b:?}"
    );
    // Aligned from the original pixels: the same embedding as the photo on its own.
    let alone = largest_embedding(&pipeline, &face).expect("face in the photo alone");
    let similarity = cosine(&alone, &faces[0].embedding);
    assert!(
        similarity > 0.9,
        "similarity to the photo alone {similarity}"
    );
}

#[test]
fn a_crowd_of_400_faces_is_found() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let crowd = hostile::crowd_photo(&data);
    let (cols, rows) = hostile::CROWD;
    assert_eq!(crowd.dimensions(), (cols * 90, rows * 90));
    let detections = pipeline.detect(&crowd).expect("pipeline runs");
    // Each cell holds one LFW photo: its own face in the middle (some photos show a second
    // person at the edge too). Count the cells whose middle face was found.
    let cells_found = (0..cols * rows)
        .filter(|i| {
            let (cx, cy) = (((i % cols) * 90 + 45) as f32, ((i / cols) * 90 + 45) as f32);
            detections.faces.iter().any(|d| {
                let (x, y) = ((d.bbox.x1 + d.bbox.x2) / 2.0, (d.bbox.y1 + d.bbox.y2) / 2.0);
                (x - cx).abs() < 20.0 && (y - cy).abs() < 20.0
            })
        })
        .count();
    println!(
        "{} faces found; {cells_found} of {} cells' faces",
        detections.faces.len(),
        cols * rows
    );
    assert!(
        cells_found >= (cols * rows) as usize * 9 / 10,
        "{cells_found} cells"
    );
}

#[test]
fn phone_photos_stored_sideways_come_out_upright() {
    let (Some(data), Some(pipeline)) = (common::data_dir(), common::pipeline()) else {
        return;
    };
    let upright = hostile::huge_photo_face(&data);
    let reference = largest_embedding(&pipeline, &upright).expect("upright face");
    for orientation in [3u16, 6, 8] {
        let jpeg = hostile::sideways_jpeg(&upright, orientation);
        // As stored (what was read before orientations were applied): the face lies sideways
        // or upside down, and the largest "face" is not the person.
        let raw = image::load_from_memory(&jpeg).unwrap().into_rgb8();
        let sideways =
            largest_embedding(&pipeline, &raw).map_or(f32::NAN, |e| cosine(&reference, &e));
        let photo = decode_photo(&jpeg, "phone.jpg", &DecodeLimits::default()).unwrap();
        assert_eq!(photo.orientation, orientation as u8);
        assert_eq!(photo.image.dimensions(), upright.dimensions());
        let embedding = largest_embedding(&pipeline, &photo.image).expect("upright face");
        let similarity = cosine(&reference, &embedding);
        println!("orientation {orientation}: as stored {sideways:.3}, upright {similarity:.3}");
        assert!(similarity > 0.9, "orientation {orientation}: {similarity}");
        assert!(
            sideways.is_nan() || sideways < 0.5,
            "orientation {orientation}: the stored pixels would not have matched ({sideways})"
        );
    }
}
