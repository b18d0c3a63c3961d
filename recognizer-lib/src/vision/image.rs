//! Decoding photos of any supported format into 8-bit RGB.

use std::io::Cursor;
use std::path::Path;

pub use image::RgbImage;
use image::{ImageReader, Limits};

use crate::error::RecognizerError;

/// Largest width or height accepted; larger photos are refused before any pixel is decoded.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Read and decode an image file (JPEG, PNG, PGM/PPM, GIF, BMP; grey, RGB or RGBA) to RGB.
///
/// The format is taken from the file's content, not its name.
pub fn load_image(path: &Path) -> Result<RgbImage, RecognizerError> {
    let bytes = std::fs::read(path).map_err(|e| RecognizerError::Read {
        input: path.display().to_string(),
        message: e.to_string(),
    })?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decode image bytes to RGB; `label` names the input in errors.
pub fn decode_image(bytes: &[u8], label: &str) -> Result<RgbImage, RecognizerError> {
    let decode_error = |message: String| RecognizerError::ImageDecode {
        input: label.to_string(),
        message,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_error(e.to_string()))?;
    if reader.format().is_none() {
        return Err(decode_error("unrecognised file format".to_string()));
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| decode_error(e.to_string()))?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(RecognizerError::ImageTooLarge {
            input: label.to_string(),
            width,
            height,
            limit: MAX_IMAGE_SIDE,
        });
    }
    if width == 0 || height == 0 {
        return Err(decode_error("image has no pixels".to_string()));
    }
    reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_error(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| decode_error(e.to_string()))?;
    Ok(decoded.to_rgb8())
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

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, Rgba, RgbaImage};

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
        assert_eq!(decode_image(&jpeg, "jpeg").unwrap().dimensions(), (7, 5));
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
