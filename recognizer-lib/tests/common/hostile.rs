//! Hostile photos made on the fly from real ones (nothing binary is committed): a huge, mostly
//! uniform picture with one face, a crowd tiled from many faces, phone photos stored sideways
//! with an EXIF orientation. Shared by the library's and the binary's tests and by the
//! `hostile_photos` example that writes them for the memory benchmark.

#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageEncoder, ImageFormat, Rgb, RgbImage};

/// Side of the huge test photo: 144 megapixels, under the 150 megapixel budget and the 16384
/// side limit (the size that took 23.7 GB before detection worked on a bounded copy).
pub const HUGE_SIDE: u32 = 12_000;

/// Faces in the crowd photo.
pub const CROWD: (u32, u32) = (20, 20);

/// `side` x `side` uniform grey with `face` pasted unscaled at `at`.
pub fn uniform_with(face: &RgbImage, side: u32, at: (u32, u32)) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(side, side, Rgb([118, 121, 117]));
    imageops::replace(&mut canvas, face, i64::from(at.0), i64::from(at.1));
    canvas
}

/// PNG bytes of `image`.
pub fn png_bytes(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encode PNG");
    bytes.into_inner()
}

/// `photos` (repeated as needed) resized to `cell` x `cell` and tiled `grid.0` x `grid.1`.
pub fn tiled(photos: &[RgbImage], grid: (u32, u32), cell: u32) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(grid.0 * cell, grid.1 * cell, Rgb([128, 128, 128]));
    for i in 0..grid.0 * grid.1 {
        let photo = &photos[i as usize % photos.len()];
        let small = imageops::resize(photo, cell, cell, FilterType::Triangle);
        imageops::replace(
            &mut canvas,
            &small,
            i64::from((i % grid.0) * cell),
            i64::from((i / grid.0) * cell),
        );
    }
    canvas
}

/// A TIFF-structured EXIF block holding only the orientation tag (what cameras write, reduced).
pub fn exif_orientation(value: u16) -> Vec<u8> {
    let mut exif = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    exif.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    exif.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    exif.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    exif.extend_from_slice(&1u32.to_be_bytes()); // one value
    exif.extend_from_slice(&value.to_be_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    exif
}

/// `upright` as a phone with EXIF `orientation` (3, 6 or 8) stores it: turned away from upright,
/// the way viewers turn it back.
pub fn stored_sideways(upright: &RgbImage, orientation: u16) -> RgbImage {
    let image = DynamicImage::ImageRgb8(upright.clone());
    match orientation {
        3 => image.rotate180(),
        // 6: viewers turn it 90 degrees clockwise, so it was stored turned counter-clockwise.
        6 => image.rotate270(),
        8 => image.rotate90(),
        other => panic!("orientation {other} is not a turn"),
    }
    .into_rgb8()
}

/// JPEG bytes of `upright` stored the way a phone with EXIF `orientation` (3, 6 or 8) stores
/// it: [`stored_sideways`] pixels and the tag that tells viewers how to turn them back.
pub fn sideways_jpeg(upright: &RgbImage, orientation: u16) -> Vec<u8> {
    let stored = stored_sideways(upright, orientation);
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 92);
    encoder
        .set_exif_metadata(exif_orientation(orientation))
        .expect("JPEG takes EXIF");
    encoder
        .write_image(
            stored.as_raw(),
            stored.width(),
            stored.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("encode JPEG");
    jpeg
}

/// The photo with one face pasted into the huge picture: `examples/barack_obama/obama1.jpg`.
pub fn huge_photo_face(data: &Path) -> RgbImage {
    image::open(data.join("examples/barack_obama/obama1.jpg"))
        .expect("obama1.jpg decodes")
        .into_rgb8()
}

/// The crowd's faces: every LFW photo of the public set (250x250, one face each in the centre).
pub fn crowd_faces(data: &Path) -> Vec<RgbImage> {
    let mut files: Vec<PathBuf> = ["train", "val"]
        .iter()
        .flat_map(|split| std::fs::read_dir(data.join("faces").join(split)).expect("faces"))
        .filter_map(|person| person.ok().map(|p| p.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lfw_"))
        })
        .flat_map(|dir| std::fs::read_dir(dir).expect("person folder"))
        .filter_map(|f| f.ok().map(|f| f.path()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| image::open(f).expect("LFW photo decodes").into_rgb8())
        .collect()
}

/// The huge photo: [`HUGE_SIDE`] square, uniform but for [`huge_photo_face`] near the middle.
pub fn huge_photo(data: &Path) -> RgbImage {
    uniform_with(&huge_photo_face(data), HUGE_SIDE, (5_100, 6_300))
}

/// The crowd photo: [`CROWD`] faces tiled in 90-pixel cells (1800x1800).
pub fn crowd_photo(data: &Path) -> RgbImage {
    tiled(&crowd_faces(data), CROWD, 90)
}
