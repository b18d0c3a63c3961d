//! Decoding photos of any supported format into upright 8-bit RGB, within a pixel budget.
//!
//! - **Budget**: the header is read first; a photo whose width x height exceeds
//!   [`DecodeLimits::max_pixels`] (default [`DEFAULT_MAX_IMAGE_PIXELS`], 150 megapixels: about
//!   450 MB decoded) or whose side exceeds [`MAX_IMAGE_SIDE`] is refused before any pixel is
//!   decoded, naming the file and the budget.
//! - **Orientation**: the EXIF orientation (JPEG APP1, PNG eXIf) is applied, so a phone photo
//!   taken sideways comes out upright ([`Photo::orientation`] says what was done).
//! - **Notes**: an animated GIF says which frame was used; a truncated JPEG says so even when
//!   the decoder fills in the missing part ([`Photo::notes`]).
//! - Only regular files are read ([`rollcall_protocol::input_files`]): a FIFO or a device is
//!   refused by name instead of blocking.

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
pub use image::RgbImage;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use rollcall_protocol::input_files::read_regular_file;

use crate::error::RecognizerError;

/// Largest width or height accepted; larger photos are refused before any pixel is decoded.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Default decoded-image budget, in pixels (150 megapixels, e.g. 12000x12000 fits; about 450 MB
/// as RGB). Photos with more pixels are refused before decoding.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 150_000_000;

/// How much a photo may cost to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (width x height) a photo may have; larger ones are refused before decoding.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: DEFAULT_MAX_IMAGE_PIXELS,
        }
    }
}

impl DecodeLimits {
    /// Largest file read: enough for an uncompressed RGBA picture at the budget, so only files
    /// that cannot be a photo within the budget are refused for their size.
    fn max_file_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(4).saturating_add(1 << 20)
    }

    /// Largest buffer a decoder may allocate: 16-bit RGBA at the budget.
    fn max_decoder_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(8).saturating_add(1 << 20)
    }
}

/// A decoded photo, upright.
#[derive(Clone, Debug, PartialEq)]
pub struct Photo {
    /// The pixels, with the EXIF orientation applied.
    pub image: RgbImage,
    /// The EXIF orientation that was applied (1: none; 3: turned 180 degrees; 6: turned 90
    /// degrees clockwise; 8: turned 90 degrees counter-clockwise; 2, 4, 5, 7: mirrored).
    pub orientation: u8,
    /// What the caller should pass on to the user: the frame used of an animated GIF, a
    /// truncated JPEG.
    pub notes: Vec<String>,
}

/// Read and decode an image file (JPEG, PNG, PGM/PPM, GIF, BMP; grey, RGB or RGBA) to upright
/// RGB within the default [`DecodeLimits`]. Notes ([`Photo::notes`]) are logged as warnings; use
/// [`load_photo`] to get them.
///
/// The format is taken from the file's content, not its name.
pub fn load_image(path: &Path) -> Result<RgbImage, RecognizerError> {
    let photo = load_photo(path, &DecodeLimits::default())?;
    log_notes(&path.display().to_string(), &photo.notes);
    Ok(photo.image)
}

/// Decode image bytes to upright RGB within the default [`DecodeLimits`]; `label` names the
/// input in errors. Notes are logged as warnings; use [`decode_photo`] to get them.
pub fn decode_image(bytes: &[u8], label: &str) -> Result<RgbImage, RecognizerError> {
    let photo = decode_photo(bytes, label, &DecodeLimits::default())?;
    log_notes(label, &photo.notes);
    Ok(photo.image)
}

fn log_notes(label: &str, notes: &[String]) {
    for note in notes {
        tracing::warn!(input = %label, "{note}");
    }
}

/// Read and decode the image file at `path` (a regular file only) within `limits`.
pub fn load_photo(path: &Path, limits: &DecodeLimits) -> Result<Photo, RecognizerError> {
    let label = path.display().to_string();
    let bytes = read_regular_file(path, Some(limits.max_file_bytes())).map_err(|e| {
        RecognizerError::Read {
            input: label.clone(),
            source: e,
        }
    })?;
    decode_photo(&bytes, &label, limits)
}

/// Decode image bytes within `limits` to an upright [`Photo`]; `label` names the input in
/// errors.
pub fn decode_photo(
    bytes: &[u8],
    label: &str,
    limits: &DecodeLimits,
) -> Result<Photo, RecognizerError> {
    let decode_error = |message: String| RecognizerError::ImageDecode {
        input: label.to_string(),
        message,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_error(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(decode_error("unrecognised file format".to_string()));
    };
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(MAX_IMAGE_SIDE);
    decoder_limits.max_image_height = Some(MAX_IMAGE_SIDE);
    decoder_limits.max_alloc = Some(limits.max_decoder_bytes());
    // The side limit is checked below with a clearer message; the reader must not refuse first.
    let mut header_limits = Limits::no_limits();
    header_limits.max_alloc = Some(limits.max_decoder_bytes());
    reader.limits(header_limits);
    let truncated = format == ImageFormat::Jpeg && !jpeg_is_complete(bytes);
    let explain = |message: String| {
        if truncated {
            format!("truncated JPEG (no end-of-image marker): {message}")
        } else {
            message
        }
    };
    // Only the header is read here: the dimensions come before any pixel is decoded.
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(explain(e.to_string())))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(decode_error("image has no pixels".to_string()));
    }
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(RecognizerError::ImageTooLarge {
            input: label.to_string(),
            width,
            height,
            limit: MAX_IMAGE_SIDE,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(RecognizerError::ImageOverBudget {
            input: label.to_string(),
            width,
            height,
            budget: limits.max_pixels,
        });
    }
    decoder
        .set_limits(decoder_limits)
        .map_err(|e| decode_error(e.to_string()))?;
    // An unreadable EXIF block only loses the orientation, not the photo.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let decoded =
        DynamicImage::from_decoder(decoder).map_err(|e| decode_error(explain(e.to_string())))?;
    // `into_rgb8` moves an RGB picture instead of copying it; other layouts are converted and
    // the original freed before the orientation (which may copy) is applied.
    let mut upright = DynamicImage::ImageRgb8(decoded.into_rgb8());
    upright.apply_orientation(orientation);
    let mut notes = Vec::new();
    if truncated {
        notes.push(
            "truncated JPEG (no end-of-image marker): the decoder filled in the missing part of the picture"
                .to_string(),
        );
    }
    if format == ImageFormat::Gif {
        let frames = gif_frame_count(bytes);
        if frames > 1 {
            notes.push(format!(
                "animated GIF with {frames} frames: only the first frame is used"
            ));
        }
    }
    Ok(Photo {
        image: upright.into_rgb8(),
        orientation: orientation.to_exif(),
        notes,
    })
}

/// Whether a JPEG stream reaches its end-of-image marker: segments are walked from the start,
/// and entropy-coded data after each start-of-scan is skipped (stuffed `FF 00` bytes and restart
/// markers are data). Bytes after the end marker (camera trailers) do not matter.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while bytes.get(i) == Some(&0xFF) && bytes.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if bytes.get(i) != Some(&0xFF) {
            return false;
        }
        let Some(&marker) = bytes.get(i + 1) else {
            return false;
        };
        i += 2;
        match marker {
            0xD9 => return true,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let (Some(&hi), Some(&lo)) = (bytes.get(i), bytes.get(i + 1)) else {
            return false;
        };
        i += usize::from(u16::from_be_bytes([hi, lo]));
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed byte or a restart.
            loop {
                match (bytes.get(i), bytes.get(i + 1)) {
                    (Some(0xFF), Some(0x00 | 0xD0..=0xD7 | 0xFF)) => i += 1,
                    (Some(0xFF), Some(_)) => break,
                    (Some(_), _) => i += 1,
                    (None, _) => return false,
                }
            }
        }
    }
}

/// How many pictures a GIF stream holds (image descriptors before the trailer or the end of
/// the bytes).
fn gif_frame_count(bytes: &[u8]) -> usize {
    let table_len = |flags: u8| {
        if flags & 0x80 != 0 {
            3 * (1usize << ((flags & 0x07) + 1))
        } else {
            0
        }
    };
    // Sub-blocks (length byte, data) up to the empty one; returns the index after it.
    let skip_sub_blocks = |mut i: usize| -> Option<usize> {
        loop {
            let len = usize::from(*bytes.get(i)?);
            i += 1 + len;
            if len == 0 {
                return Some(i);
            }
        }
    };
    let Some(&screen_flags) = bytes.get(10) else {
        return 0;
    };
    let mut i = 13 + table_len(screen_flags);
    let mut frames = 0;
    loop {
        match bytes.get(i) {
            Some(0x21) => match skip_sub_blocks(i + 2) {
                Some(next) => i = next,
                None => return frames,
            },
            Some(0x2C) => {
                let Some(&flags) = bytes.get(i + 9) else {
                    return frames;
                };
                // Descriptor (10 bytes), local table, LZW code size, then the data sub-blocks.
                match skip_sub_blocks(i + 10 + table_len(flags) + 1) {
                    Some(next) => {
                        frames += 1;
                        i = next;
                    }
                    None => return frames + 1,
                }
            }
            _ => return frames,
        }
    }
}

/// Copy of `image` with `fraction` of its width and height added on every side, edge pixels
/// repeated outwards. Returns the padded image and the (x, y) offset of the original inside it.
pub fn pad_replicate(image: &RgbImage, fraction: f32) -> (RgbImage, (u32, u32)) {
    let (width, height) = image.dimensions();
    let pad_x = ((width as f32) * fraction).round() as u32;
    let pad_y = ((height as f32) * fraction).round() as u32;
    let padded = RgbImage::from_fn(width + 2 * pad_x, height + 2 * pad_y, |x, y| {
        let sx = x.saturating_sub(pad_x).min(width - 1);
        let sy = y.saturating_sub(pad_y).min(height - 1);
        *image.get_pixel(sx, sy)
    });
    (padded, (pad_x, pad_y))
}

/// The integration tests' generators of hostile photos (the EXIF block, phone photos stored
/// sideways), shared with the unit tests below.
#[cfg(test)]
#[path = "../../tests/common/hostile.rs"]
mod test_photos;

#[cfg(test)]
mod tests {
    use super::test_photos as hostile;
    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::codecs::png::PngEncoder;
    use image::{Delay, Frame, GrayImage, ImageEncoder, Luma, Rgb, Rgba, RgbaImage};

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image
            .write_to(&mut bytes, format)
            .expect("encode test image");
        bytes.into_inner()
    }

    #[test]
    fn every_supported_format_decodes_to_rgb() {
        let rgb = RgbImage::from_fn(7, 5, |x, y| Rgb([x as u8 * 30, y as u8 * 40, 200]));
        for format in [
            ImageFormat::Png,
            ImageFormat::Bmp,
            ImageFormat::Pnm,
            ImageFormat::Gif,
        ] {
            let bytes = encode(DynamicImage::ImageRgb8(rgb.clone()), format);
            let decoded = decode_image(&bytes, "test").expect("decodes");
            assert_eq!(decoded.dimensions(), (7, 5), "{format:?}");
            if format != ImageFormat::Gif {
                assert_eq!(decoded, rgb, "{format:?} is lossless");
            }
        }
        let jpeg = encode(DynamicImage::ImageRgb8(rgb), ImageFormat::Jpeg);
        let photo = decode_photo(&jpeg, "jpeg", &DecodeLimits::default()).unwrap();
        assert_eq!(photo.image.dimensions(), (7, 5));
        assert_eq!(photo.orientation, 1);
        assert!(photo.notes.is_empty(), "{:?}", photo.notes);
    }

    #[test]
    fn grey_and_rgba_become_rgb() {
        let grey = GrayImage::from_pixel(4, 3, Luma([77]));
        let pgm = encode(DynamicImage::ImageLuma8(grey), ImageFormat::Pnm);
        let decoded = decode_image(&pgm, "grey.pgm").unwrap();
        assert_eq!(decoded.get_pixel(1, 1), &Rgb([77, 77, 77]));

        let rgba = RgbaImage::from_pixel(2, 2, Rgba([10, 20, 30, 128]));
        let png = encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
        assert_eq!(
            decode_image(&png, "a.png").unwrap().get_pixel(0, 0),
            &Rgb([10, 20, 30])
        );
    }

    #[test]
    fn corrupt_and_foreign_bytes_are_errors_naming_the_input() {
        let error = decode_image(b"this is not an image", "notes.txt").unwrap_err();
        assert!(error.to_string().contains("notes.txt"), "{error}");

        let rgb = RgbImage::from_pixel(16, 16, Rgb([1, 2, 3]));
        let mut png = encode(DynamicImage::ImageRgb8(rgb), ImageFormat::Png);
        png.truncate(png.len() / 2);
        let error = decode_image(&png, "half.png").unwrap_err();
        assert!(error.to_string().contains("half.png"), "{error}");

        let missing = load_image(Path::new("/nonexistent/face.jpg")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/face.jpg"));
    }

    #[test]
    fn an_unreadable_file_keeps_its_io_error_as_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.jpg");
        let error = load_photo(&missing, &DecodeLimits::default()).unwrap_err();
        assert!(error.to_string().contains("missing.jpg"), "{error}");
        match &error {
            RecognizerError::Read { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn photos_over_the_pixel_budget_are_refused_from_the_header() {
        // A PGM header announcing 13000x12000 pixels (156 megapixels) and almost no data: the
        // refusal comes from the header alone, before anything is allocated for the pixels.
        let mut pgm = b"P5\n13000 12000\n255\n".to_vec();
        pgm.extend_from_slice(&[0u8; 64]);
        let error = decode_photo(&pgm, "huge.pgm", &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(error, RecognizerError::ImageOverBudget { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("huge.pgm"), "{message}");
        assert!(message.contains("13000x12000"), "{message}");
        assert!(message.contains("150 megapixel"), "{message}");

        // A smaller budget refuses a small picture the same way.
        let png = encode(
            DynamicImage::ImageRgb8(RgbImage::new(100, 100)),
            ImageFormat::Png,
        );
        let tight = DecodeLimits { max_pixels: 9_999 };
        assert!(matches!(
            decode_photo(&png, "small.png", &tight),
            Err(RecognizerError::ImageOverBudget { budget: 9_999, .. })
        ));
        assert!(decode_photo(&png, "small.png", &DecodeLimits { max_pixels: 10_000 }).is_ok());

        let mut wide = b"P5\n20000 10\n255\n".to_vec();
        wide.extend_from_slice(&[0u8; 64]);
        assert!(matches!(
            decode_photo(&wide, "wide.pgm", &DecodeLimits::default()),
            Err(RecognizerError::ImageTooLarge { .. })
        ));
    }

    /// An upright test picture: wider than high, red in the top-left corner, blue bottom-right.
    fn upright() -> RgbImage {
        RgbImage::from_fn(40, 20, |x, y| match (x < 10 && y < 6, x >= 30 && y >= 14) {
            (true, _) => Rgb([255, 0, 0]),
            (_, true) => Rgb([0, 0, 255]),
            _ => Rgb([128, 128, 128]),
        })
    }

    /// PNG bytes of `stored` with an EXIF block holding `orientation`.
    fn png_with_exif(stored: &RgbImage, orientation: u16) -> Vec<u8> {
        let mut png = Vec::new();
        let mut encoder = PngEncoder::new(&mut png);
        encoder
            .set_exif_metadata(hostile::exif_orientation(orientation))
            .unwrap();
        let (w, h) = stored.dimensions();
        encoder
            .write_image(stored.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        png
    }

    #[test]
    fn exif_orientation_3_6_8_comes_out_upright() {
        for orientation in [3u16, 6, 8] {
            // PNG (eXIf chunk): lossless, so the upright picture must come back exactly.
            let stored = hostile::stored_sideways(&upright(), orientation);
            let png = png_with_exif(&stored, orientation);
            let photo = decode_photo(&png, "phone.png", &DecodeLimits::default()).unwrap();
            assert_eq!(photo.orientation, orientation as u8);
            assert_eq!(photo.image, upright(), "PNG orientation {orientation}");

            // JPEG (APP1 Exif), as phones write them: lossy, so compare the corners' colours.
            let jpeg = hostile::sideways_jpeg(&upright(), orientation);
            let photo = decode_photo(&jpeg, "phone.jpg", &DecodeLimits::default()).unwrap();
            assert_eq!(photo.orientation, orientation as u8);
            assert_eq!(photo.image.dimensions(), (40, 20), "JPEG {orientation}");
            let red = photo.image.get_pixel(3, 3);
            let blue = photo.image.get_pixel(36, 17);
            assert!(red[0] > 200 && red[2] < 60, "JPEG {orientation}: {red:?}");
            assert!(
                blue[2] > 200 && blue[0] < 60,
                "JPEG {orientation}: {blue:?}"
            );
        }
    }

    #[test]
    fn truncated_jpegs_are_reported_as_truncated() {
        let picture = RgbImage::from_fn(64, 64, |x, y| Rgb([(x * 4) as u8, (y * 4) as u8, 90]));
        let jpeg = encode(DynamicImage::ImageRgb8(picture), ImageFormat::Jpeg);
        assert!(jpeg_is_complete(&jpeg));
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"camera trailer \xff\xd8 after the end");
        assert!(jpeg_is_complete(&trailer), "bytes after EOI do not matter");

        for cut in [jpeg.len() - 2, jpeg.len() * 3 / 4, jpeg.len() / 2] {
            let truncated = &jpeg[..cut];
            assert!(!jpeg_is_complete(truncated));
            match decode_photo(truncated, "cut.jpg", &DecodeLimits::default()) {
                Ok(photo) => assert!(
                    photo.notes.iter().any(|n| n.contains("truncated JPEG")),
                    "decodable but not reported as truncated: {:?}",
                    photo.notes
                ),
                Err(error) => {
                    let message = error.to_string();
                    assert!(message.contains("cut.jpg"), "{message}");
                    assert!(message.contains("truncated JPEG"), "{message}");
                }
            }
        }
    }

    #[test]
    fn animated_gifs_say_which_frame_is_used() {
        let mut gif = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut gif);
            for shade in [10u8, 200, 90] {
                let frame = RgbaImage::from_pixel(8, 6, Rgba([shade, shade, shade, 255]));
                encoder
                    .encode_frame(Frame::from_parts(
                        frame,
                        0,
                        0,
                        Delay::from_numer_denom_ms(100, 1),
                    ))
                    .unwrap();
            }
        }
        assert_eq!(gif_frame_count(&gif), 3);
        let photo = decode_photo(&gif, "wave.gif", &DecodeLimits::default()).unwrap();
        assert_eq!(photo.image.get_pixel(0, 0)[0], 10, "the first frame");
        assert_eq!(
            photo.notes,
            vec!["animated GIF with 3 frames: only the first frame is used".to_string()]
        );

        let still = encode(
            DynamicImage::ImageRgb8(RgbImage::new(4, 4)),
            ImageFormat::Gif,
        );
        assert_eq!(gif_frame_count(&still), 1);
        assert!(decode_photo(&still, "still.gif", &DecodeLimits::default())
            .unwrap()
            .notes
            .is_empty());
    }

    #[test]
    fn padding_replicates_edges() {
        let image = RgbImage::from_fn(4, 2, |x, _| Rgb([x as u8, 0, 0]));
        let (padded, (ox, oy)) = pad_replicate(&image, 0.25);
        assert_eq!((ox, oy), (1, 1));
        assert_eq!(padded.dimensions(), (6, 4));
        assert_eq!(padded.get_pixel(0, 0), &Rgb([0, 0, 0]));
        assert_eq!(padded.get_pixel(5, 3), &Rgb([3, 0, 0]));
        assert_eq!(padded.get_pixel(2, 1), &Rgb([1, 0, 0]));
    }
}
