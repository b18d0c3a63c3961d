//! H.264 Annex-B clip decoding with OpenH264 (built from the bundled C source: no system library,
//! no ffmpeg), and conversion of the selected frames to RGB.
//!
//! The stream is split into NAL units ([`openh264::nal_units`]) and the NAL units are grouped into
//! access units (one picture each, all its slices together) before they reach the decoder, which
//! runs with [`Flush::NoFlush`] and is flushed once at the end, so streams with B-frames (frames
//! held back for reordering) decode completely too. Frames are numbered in output (display) order.
//!
//! The pictures of the stream are counted before decoding (one per access unit), which fixes the
//! sampling stride ([`SamplePolicy::stride`]) and so the last frame to analyse. Frames up to that
//! one are decoded (later frames depend on earlier ones), only the selected ones are converted to
//! RGB, and decoding stops after the last selected frame: the pictures after it are never
//! needed (with the default policy, 6 of the 15 frames of a 0.5 s clip at 30 fps). Damage in
//! those pictures therefore goes unnoticed; a clip cut short still shows in the count (see
//! [`DecodeStats::pictures`]).
//!
//! Anything wrong with the input (empty, over the size limit, not Annex-B, corrupt or cut short)
//! is a [`ClipError`] naming the clip; OpenH264's error concealment is off, so damaged pictures
//! are reported instead of being silently patched.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::{nal_units, OpenH264API};
use serde::{Deserialize, Serialize};

use super::sample::{effective_fps, SamplePolicy};
use super::ClipError;
use crate::vision::RgbImage;

/// Default largest clip accepted, in bytes (8 MiB; a 0.5 s 640x480 clip is 20-100 KiB), the
/// object stores' own default.
pub use rollcall_protocol::store::DEFAULT_MAX_CLIP_BYTES;

/// Default largest number of frames decoded from one clip (60 s at 30 fps).
pub const DEFAULT_MAX_CLIP_FRAMES: usize = 1_800;

/// Bounds on the work one clip may cause; checked before (bytes) and while (frames) decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipLimits {
    /// Clips larger than this are refused before decoding starts.
    pub max_bytes: usize,
    /// Decoding stops with an error after this many frames.
    pub max_frames: usize,
}

impl Default for ClipLimits {
    fn default() -> Self {
        ClipLimits {
            max_bytes: DEFAULT_MAX_CLIP_BYTES,
            max_frames: DEFAULT_MAX_CLIP_FRAMES,
        }
    }
}

/// One selected frame, converted to RGB.
#[derive(Clone, Debug)]
pub struct DecodedFrame {
    /// Position of the frame in the clip, in output (display) order, from 0.
    pub index: usize,
    /// Its pixels.
    pub image: RgbImage,
}

/// What decoding a clip took and produced.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DecodeStats {
    /// Pictures (frames) in the stream, counted from its access units before decoding: the
    /// clip's length in frames, whether or not all were decoded.
    pub pictures: usize,
    /// Distance between selected frames ([`SamplePolicy::stride`] for `pictures` frames).
    pub stride: usize,
    /// Frames the decoder produced: every frame up to the last selected one (decoding stops
    /// there), selected or not.
    pub frames_decoded: usize,
    /// Frames converted to RGB (the selected ones).
    pub frames_converted: usize,
    /// NAL units in the stream.
    pub nal_units: usize,
    /// Access units (pictures plus their parameter sets) fed to the decoder.
    pub access_units: usize,
    /// Width of the first decoded frame.
    pub width: u32,
    /// Height of the first decoded frame.
    pub height: u32,
    /// Time spent decoding and converting (callbacks excluded).
    pub decode_time: Duration,
}

/// Decode a clip and return the frames `policy` selects (at `fps`), in display order.
///
/// Convenience over [`decode_clip_with`]; the selected frames are all held in memory.
pub fn decode_clip(
    clip_id: &str,
    bytes: &[u8],
    limits: &ClipLimits,
    policy: &SamplePolicy,
    fps: f32,
) -> Result<(Vec<DecodedFrame>, DecodeStats), ClipError> {
    let mut frames = Vec::new();
    let stats = decode_clip_with(clip_id, bytes, limits, policy, fps, |frame| {
        frames.push(frame);
        Ok(())
    })?;
    Ok((frames, stats))
}

/// [`decode_clip_with`] with the decoding on a thread of its own, one selected frame ahead of
/// `on_frame`: the next frame is decoded while this one is analysed. At most two RGB frames
/// are alive (the one `on_frame` holds and the next, waiting). An error from `on_frame` stops
/// decoding and is returned as is. Decodes on the calling thread, as [`decode_clip_with`],
/// when `beside` is false (no core to spare) or no thread can be started.
pub fn decode_clip_beside(
    clip_id: &str,
    bytes: &[u8],
    limits: &ClipLimits,
    policy: &SamplePolicy,
    fps: f32,
    beside: bool,
    mut on_frame: impl FnMut(DecodedFrame) -> Result<(), ClipError>,
) -> Result<DecodeStats, ClipError> {
    if !beside {
        return decode_clip_with(clip_id, bytes, limits, policy, fps, on_frame);
    }
    // A rendezvous channel: the decoder waits with the next frame until it is taken.
    let (frames, next) = std::sync::mpsc::sync_channel::<DecodedFrame>(0);
    std::thread::scope(|scope| {
        let decoder = std::thread::Builder::new()
            .name("clip-decode".into())
            .spawn_scoped(scope, move || {
                decode_clip_with(clip_id, bytes, limits, policy, fps, |frame| {
                    frames.send(frame).map_err(|_| ClipError::Decoder {
                        clip: clip_id.to_string(),
                        message: "decoding stopped: the analysis ended".into(),
                    })
                })
            });
        let Ok(decoder) = decoder else {
            return decode_clip_with(clip_id, bytes, limits, policy, fps, on_frame);
        };
        // Taking `next` into this block drops it on an error, which stops the decoder at its
        // next frame instead of leaving it waiting.
        let analysed = {
            let next = next;
            next.iter().try_for_each(&mut on_frame)
        };
        let decoded = decoder.join().unwrap_or_else(|_| {
            Err(ClipError::Decoder {
                clip: clip_id.to_string(),
                message: "the decoding thread panicked".into(),
            })
        });
        analysed.and(decoded)
    })
}

/// Decode a clip up to the last frame `policy` selects (for the clip's length at `fps`); convert
/// the selected frames to RGB and hand each to `on_frame` as soon as it is decoded (so only one
/// RGB frame is alive at a time).
///
/// An error from `on_frame` stops decoding and is returned as is.
pub fn decode_clip_with(
    clip_id: &str,
    bytes: &[u8],
    limits: &ClipLimits,
    policy: &SamplePolicy,
    fps: f32,
    mut on_frame: impl FnMut(DecodedFrame) -> Result<(), ClipError>,
) -> Result<DecodeStats, ClipError> {
    let clip = || clip_id.to_string();
    if bytes.len() > limits.max_bytes {
        return Err(ClipError::TooLarge {
            clip: clip(),
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(ClipError::Empty { clip: clip() });
    }
    let nals: Vec<&[u8]> = nal_units(bytes).collect();
    if nals.is_empty() {
        return Err(ClipError::NotAnnexB {
            clip: clip(),
            size: bytes.len(),
        });
    }
    let (units, pictures) = access_units(bytes, &nals);
    if pictures > limits.max_frames {
        return Err(ClipError::TooManyFrames {
            clip: clip(),
            limit: limits.max_frames,
        });
    }
    let stride = policy.stride(pictures, effective_fps(Some(fps)));
    // Decoding stops once this frame is out. If the count is off (a stream OpenH264 reads
    // differently), frames past it are still selected by the stride until the stream ends.
    let last_selected = pictures.saturating_sub(1) / stride * stride;
    let select = |index: usize| index % stride == 0;

    let started = Instant::now();
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    let mut decoder =
        Decoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
            ClipError::Decoder {
                clip: clip(),
                message: openh264_message(&e),
            }
        })?;
    let mut stats = DecodeStats {
        pictures,
        stride,
        nal_units: nals.len(),
        access_units: units.len(),
        ..DecodeStats::default()
    };
    let mut busy = started.elapsed();
    let mut stopped_early = false;

    for (n, &(offset, end)) in units.iter().enumerate() {
        if pictures > 0 && stats.frames_decoded > last_selected {
            stopped_early = true;
            break;
        }
        let started = Instant::now();
        let packet = &bytes[offset..end];
        let corrupt = |message: String, frames_decoded: usize| ClipError::Corrupt {
            clip: clip(),
            access_unit: n,
            offset,
            frames_decoded,
            message,
        };
        let frames_decoded = stats.frames_decoded;
        // OpenH264's Rust wrapper asserts on odd pixel formats: a panic is a corrupt clip too.
        let step = catch_unwind(AssertUnwindSafe(|| match decoder.decode(packet) {
            Err(e) => Err(openh264_message(&e)),
            Ok(None) => Ok(None),
            Ok(Some(yuv)) => {
                let selected = select(frames_decoded);
                let image = if selected {
                    Some(yuv_to_rgb(&yuv)?)
                } else {
                    None
                };
                Ok(Some((dimensions(&yuv), image)))
            }
        }));
        let outcome = match step {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(message)) => return Err(corrupt(message, frames_decoded)),
            Err(panic) => return Err(corrupt(panic_message(panic), frames_decoded)),
        };
        busy += started.elapsed();
        if let Some((size, image)) = outcome {
            stats.emit(clip_id, limits, size, image, &mut on_frame)?;
        }
    }

    if stopped_early {
        stats.decode_time = busy;
        return Ok(stats);
    }

    // Frames held back for reordering come out now.
    let started = Instant::now();
    let first_index = stats.frames_decoded;
    let flushed = catch_unwind(AssertUnwindSafe(|| {
        let remaining = decoder
            .flush_remaining()
            .map_err(|e| openh264_message(&e))?;
        let mut out = Vec::with_capacity(remaining.len());
        for (i, yuv) in remaining.iter().enumerate() {
            let image = if select(first_index + i) {
                Some(yuv_to_rgb(yuv)?)
            } else {
                None
            };
            out.push((dimensions(yuv), image));
        }
        Ok::<_, String>(out)
    }));
    let flush_error = |message: String| ClipError::Corrupt {
        clip: clip(),
        access_unit: units.len(),
        offset: bytes.len(),
        frames_decoded: first_index,
        message: format!("at the end of the stream: {message}"),
    };
    let flushed = match flushed {
        Ok(Ok(frames)) => frames,
        Ok(Err(message)) => return Err(flush_error(message)),
        Err(panic) => return Err(flush_error(panic_message(panic))),
    };
    busy += started.elapsed();
    for (size, image) in flushed {
        stats.emit(clip_id, limits, size, image, &mut on_frame)?;
    }

    if stats.frames_decoded == 0 {
        return Err(ClipError::NoFrames {
            clip: clip(),
            access_units: units.len(),
        });
    }
    stats.decode_time = busy;
    Ok(stats)
}

impl DecodeStats {
    /// Count one decoded frame (and pass it on when it was converted).
    fn emit(
        &mut self,
        clip_id: &str,
        limits: &ClipLimits,
        (width, height): (u32, u32),
        image: Option<RgbImage>,
        on_frame: &mut impl FnMut(DecodedFrame) -> Result<(), ClipError>,
    ) -> Result<(), ClipError> {
        let index = self.frames_decoded;
        if index >= limits.max_frames {
            return Err(ClipError::TooManyFrames {
                clip: clip_id.to_string(),
                limit: limits.max_frames,
            });
        }
        if index == 0 {
            self.width = width;
            self.height = height;
        }
        self.frames_decoded += 1;
        if let Some(image) = image {
            self.frames_converted += 1;
            on_frame(DecodedFrame { index, image })?;
        }
        Ok(())
    }
}

/// Byte ranges `(start, end)` of the access units: each starts with the first NAL unit of a new
/// picture (an access unit delimiter, SEI or parameter set after a slice, or a slice whose
/// `first_mb_in_slice` is 0) and runs to the start of the next. Also the number of pictures
/// (access units with a slice: all but maybe the last).
fn access_units(bytes: &[u8], nals: &[&[u8]]) -> (Vec<(usize, usize)>, usize) {
    let base = bytes.as_ptr() as usize;
    let mut units = Vec::new();
    let mut start: Option<usize> = None;
    let mut has_slice = false;
    for nal in nals {
        let offset = nal.as_ptr() as usize - base;
        let (kind, first_slice_of_picture) = nal_header(nal);
        let is_slice = matches!(kind, Some(1..=5));
        // 6 SEI, 7 SPS, 8 PPS, 9 access unit delimiter, 14-18 reserved/prefix: start a new
        // access unit when they follow a slice (H.264 7.4.1.2.3).
        let opens = match kind {
            Some(6..=9 | 14..=18) => has_slice,
            Some(1..=5) => has_slice && first_slice_of_picture,
            _ => false,
        };
        if opens {
            if let Some(s) = start {
                units.push((s, offset));
            }
            start = Some(offset);
            has_slice = false;
        }
        start.get_or_insert(offset);
        has_slice |= is_slice;
    }
    let mut pictures = units.len();
    if let Some(s) = start {
        units.push((s, bytes.len()));
        pictures += usize::from(has_slice);
    }
    (units, pictures)
}

/// NAL unit type and, for slices, whether `first_mb_in_slice` is 0. `nal` starts with a start
/// code (any number of zero bytes, then 1).
fn nal_header(nal: &[u8]) -> (Option<u8>, bool) {
    let Some(one) = nal.iter().position(|&b| b != 0) else {
        return (None, false);
    };
    if nal[one] != 1 {
        return (None, false);
    }
    let Some(&header) = nal.get(one + 1) else {
        return (None, false);
    };
    let kind = header & 0x1f;
    // first_mb_in_slice is ue(v): it is 0 exactly when its first bit is 1.
    let first = nal.get(one + 2).is_some_and(|b| b & 0x80 != 0);
    (Some(kind), first)
}

fn dimensions(yuv: &DecodedYUV<'_>) -> (u32, u32) {
    let (w, h) = yuv.dimensions();
    (
        u32::try_from(w).unwrap_or(u32::MAX),
        u32::try_from(h).unwrap_or(u32::MAX),
    )
}

/// Convert a decoded picture to RGB.
///
/// OpenH264's converter has a SIMD path for widths divisible by 8 and a slow floating-point one
/// (about 12 ns per pixel) for the rest; those other widths (844x614, say) go through
/// [`yuv420_to_rgb`], same limited-range BT.601 in fixed point, within 1 of OpenH264's values.
fn yuv_to_rgb(yuv: &DecodedYUV<'_>) -> Result<RgbImage, String> {
    let (width, height) = yuv.dimensions();
    if width == 0 || height == 0 {
        return Err(format!("decoded picture has no pixels ({width}x{height})"));
    }
    let mut rgb = vec![0u8; width * height * 3];
    if width % 8 == 0 && height >= 2 {
        yuv.write_rgb8(&mut rgb);
    } else {
        yuv420_to_rgb(
            yuv.y(),
            yuv.u(),
            yuv.v(),
            (width, height),
            yuv.strides(),
            &mut rgb,
        )?;
    }
    let (w, h) = dimensions(yuv);
    RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| format!("decoded picture {width}x{height} does not fit an RGB image"))
}

/// 16.16 fixed-point factors of limited-range BT.601 (the ones OpenH264 uses).
const fn fixed(value: f64) -> i32 {
    (value * 65536.0 + if value < 0.0 { -0.5 } else { 0.5 }) as i32
}
const Y_MUL: i32 = fixed(255.0 / 219.0);
const RV_MUL: i32 = fixed(255.0 / 224.0 * 1.402);
const GV_MUL: i32 = fixed(-255.0 / 224.0 * 1.402 * 0.299 / 0.587);
const GU_MUL: i32 = fixed(-255.0 / 224.0 * 1.772 * 0.114 / 0.587);
const BU_MUL: i32 = fixed(255.0 / 224.0 * 1.772);

/// YUV 4:2:0 planes (with row strides) to packed RGB, any width and height. Fails instead of
/// panicking when a plane is shorter than the dimensions require.
fn yuv420_to_rgb(
    y_plane: &[u8],
    u_plane: &[u8],
    v_plane: &[u8],
    (width, height): (usize, usize),
    (y_stride, u_stride, v_stride): (usize, usize, usize),
    out: &mut [u8],
) -> Result<(), String> {
    let chroma_width = width.div_ceil(2);
    let short = || format!("YUV planes too small for {width}x{height}");
    if out.len() != width * height * 3 {
        return Err(short());
    }
    for (row, out_row) in out.chunks_exact_mut(width * 3).enumerate() {
        let ys = y_plane
            .get(row * y_stride..row * y_stride + width)
            .ok_or_else(short)?;
        let c = row / 2;
        let us = u_plane
            .get(c * u_stride..c * u_stride + chroma_width)
            .ok_or_else(short)?;
        let vs = v_plane
            .get(c * v_stride..c * v_stride + chroma_width)
            .ok_or_else(short)?;
        for (x, (pixel, &luma)) in out_row.chunks_exact_mut(3).zip(ys).enumerate() {
            let u = i32::from(us[x / 2]) - 128;
            let v = i32::from(vs[x / 2]) - 128;
            let l = (i32::from(luma) - 16) * Y_MUL;
            let clamp = |value: i32| (value >> 16).clamp(0, 255) as u8;
            pixel[0] = clamp(l + RV_MUL * v);
            pixel[1] = clamp(l + GV_MUL * v + GU_MUL * u);
            pixel[2] = clamp(l + BU_MUL * u);
        }
    }
    Ok(())
}

/// OpenH264's error without the backtrace boilerplate of its `Display`.
fn openh264_message(error: &openh264::Error) -> String {
    let code = error.native_code();
    if code != 0 {
        format!(
            "OpenH264 decoding state {code:#x} ({})",
            describe_state(code)
        )
    } else {
        // Custom messages only exist in the Display text.
        let text = error.to_string();
        let message = text
            .split("User Message:")
            .nth(1)
            .map(|m| m.trim_end_matches(". Backtraces enabled.").trim())
            .unwrap_or(&text);
        format!("OpenH264: {message}")
    }
}

/// Names of the bits of OpenH264's `DECODING_STATE`.
fn describe_state(code: i64) -> String {
    const BITS: [(i64, &str); 11] = [
        (0x01, "frame pending"),
        (0x02, "reference frame lost"),
        (0x04, "bitstream error"),
        (0x08, "depth layer lost"),
        (0x10, "no parameter sets"),
        (0x20, "data error concealed"),
        (0x40, "reference list null pointers"),
        (0x1000, "invalid argument"),
        (0x2000, "init failed"),
        (0x4000, "out of memory"),
        (0x8000, "unsupported stream"),
    ];
    let names: Vec<&str> = BITS
        .iter()
        .filter(|(bit, _)| code & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "unknown".to_string()
    } else {
        names.join(", ")
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("decoder panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::encoder::Encoder;
    use openh264::formats::YUVBuffer;

    /// A small Annex-B stream made with OpenH264's encoder: `frames` 64x48 frames, a moving bar.
    fn synthetic_clip(frames: usize) -> Vec<u8> {
        let mut encoder = Encoder::new().unwrap();
        let mut out = Vec::new();
        for f in 0..frames {
            let mut rgb = vec![0u8; 64 * 48 * 3];
            for y in 0..48 {
                for x in 0..64 {
                    let i = (y * 64 + x) * 3;
                    let bar = (x + f * 4) % 64 < 16;
                    rgb[i] = if bar { 230 } else { 20 };
                    rgb[i + 1] = (y * 5) as u8;
                    rgb[i + 2] = 128;
                }
            }
            let yuv =
                YUVBuffer::from_rgb8_source(openh264::formats::RgbSliceU8::new(&rgb, (64, 48)));
            out.extend(encoder.encode(&yuv).unwrap().to_vec());
        }
        out
    }

    fn every(k: usize) -> SamplePolicy {
        SamplePolicy::Every(k)
    }

    #[test]
    fn decodes_all_frames_and_converts_only_selected_ones() {
        let bytes = synthetic_clip(10);
        let (frames, stats) =
            decode_clip("cam/s/1", &bytes, &ClipLimits::default(), &every(3), 30.0).unwrap();
        assert_eq!(stats.frames_decoded, 10);
        assert_eq!(stats.frames_converted, 4);
        assert_eq!(
            frames.iter().map(|f| f.index).collect::<Vec<_>>(),
            [0, 3, 6, 9]
        );
        assert_eq!((stats.width, stats.height), (64, 48));
        assert_eq!(frames[0].image.dimensions(), (64, 48));
        // The bar is red-ish on the left of frame 0.
        let p = frames[0].image.get_pixel(4, 10);
        assert!(p[0] > 150 && p[2] < 200, "{p:?}");
        assert!(stats.access_units >= 10, "{stats:?}");
    }

    #[test]
    fn decoding_stops_after_the_last_selected_frame() {
        let bytes = synthetic_clip(10);
        let (frames, stats) =
            decode_clip("cam/s/9", &bytes, &ClipLimits::default(), &every(4), 30.0).unwrap();
        assert_eq!(
            frames.iter().map(|f| f.index).collect::<Vec<_>>(),
            [0, 4, 8]
        );
        assert_eq!((stats.pictures, stats.stride), (10, 4));
        assert_eq!(stats.frames_decoded, 9, "frame 9 is never needed");
        // auto, 10 frames at 30 fps (0.33 s): 2 frames, 0 and 5; frames 6-9 are not decoded.
        let (frames, stats) = decode_clip(
            "cam/s/9",
            &bytes,
            &ClipLimits::default(),
            &SamplePolicy::default(),
            30.0,
        )
        .unwrap();
        assert_eq!(frames.iter().map(|f| f.index).collect::<Vec<_>>(), [0, 5]);
        assert_eq!((stats.pictures, stats.frames_decoded), (10, 6));
        // Damage after the last selected frame is never decoded; `all` decodes and reports it.
        let (units, _) = access_units(&bytes, &nal_units(&bytes).collect::<Vec<_>>());
        let mut damaged = bytes.clone();
        let (start, end) = units[9];
        for i in (start + (end - start) / 2..end).step_by(3) {
            damaged[i] ^= 0x5a;
        }
        let (_, stats) =
            decode_clip("cam/s/9", &damaged, &ClipLimits::default(), &every(4), 30.0).unwrap();
        assert_eq!(stats.frames_decoded, 9);
    }

    #[test]
    fn decoding_beside_gives_the_same_frames_and_stops_at_an_analysis_error() {
        let bytes = synthetic_clip(10);
        let limits = ClipLimits::default();
        let (frames, stats) = decode_clip("cam/s/2", &bytes, &limits, &every(3), 30.0).unwrap();
        let mut beside = Vec::new();
        let beside_stats =
            decode_clip_beside("cam/s/2", &bytes, &limits, &every(3), 30.0, true, |f| {
                beside.push(f);
                Ok(())
            })
            .unwrap();
        let pixels = |frames: &[DecodedFrame]| -> Vec<(usize, Vec<u8>)> {
            frames
                .iter()
                .map(|f| (f.index, f.image.as_raw().clone()))
                .collect()
        };
        assert_eq!(pixels(&beside), pixels(&frames));
        assert_eq!(
            (beside_stats.frames_decoded, beside_stats.frames_converted),
            (stats.frames_decoded, stats.frames_converted)
        );
        // The analysis fails on the second frame: its error comes back, and the decoder,
        // waiting to hand over the third, stops instead of waiting for ever.
        let mut seen = Vec::new();
        let e = decode_clip_beside("cam/s/2", &bytes, &limits, &every(3), 30.0, true, |f| {
            seen.push(f.index);
            if f.index == 3 {
                return Err(ClipError::Recognition {
                    clip: "cam/s/2".into(),
                    frame_index: f.index,
                    source: Box::new(crate::error::RecognizerError::ModelOutput {
                        model: "test".into(),
                        message: "refused".into(),
                    }),
                });
            }
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(e, ClipError::Recognition { frame_index: 3, .. }),
            "{e}"
        );
        assert_eq!(seen, [0, 3]);
        // A corrupt clip's error comes from the decoder as on the calling thread.
        let e = decode_clip_beside(
            "cam/s/x",
            &[0, 0, 1, 0x65, 1, 2, 3],
            &limits,
            &every(1),
            30.0,
            true,
            |_| Ok(()),
        )
        .unwrap_err();
        assert_eq!(e.clip_id(), "cam/s/x");
    }

    #[test]
    fn size_limit_is_checked_before_decoding() {
        let bytes = synthetic_clip(2);
        let limits = ClipLimits {
            max_bytes: bytes.len() - 1,
            ..ClipLimits::default()
        };
        match decode_clip("cam/s/2", &bytes, &limits, &every(1), 30.0) {
            Err(ClipError::TooLarge { clip, size, limit }) => {
                assert_eq!(clip, "cam/s/2");
                assert_eq!(size, bytes.len());
                assert_eq!(limit, bytes.len() - 1);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Even garbage is refused for its size first.
        let garbage = vec![0xAAu8; DEFAULT_MAX_CLIP_BYTES + 1];
        let e = decode_clip("big", &garbage, &ClipLimits::default(), &every(1), 30.0).unwrap_err();
        assert!(matches!(e, ClipError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("big"), "{e}");
    }

    #[test]
    fn frame_limit_stops_decoding() {
        let bytes = synthetic_clip(5);
        let limits = ClipLimits {
            max_frames: 3,
            ..ClipLimits::default()
        };
        let e = decode_clip("cam/s/3", &bytes, &limits, &every(1), 30.0).unwrap_err();
        assert!(
            matches!(e, ClipError::TooManyFrames { limit: 3, .. }),
            "{e}"
        );
    }

    #[test]
    fn empty_and_non_annexb_inputs_are_errors() {
        let limits = ClipLimits::default();
        let e = decode_clip("c-empty", &[], &limits, &every(1), 30.0).unwrap_err();
        assert!(matches!(e, ClipError::Empty { .. }), "{e}");
        assert_eq!(e.clip_id(), "c-empty");
        let e = decode_clip("c-text", b"hello, world", &limits, &every(1), 30.0).unwrap_err();
        assert!(matches!(e, ClipError::NotAnnexB { .. }), "{e}");
        assert!(e.to_string().contains("c-text"), "{e}");
        // Parameter sets alone: valid, but no picture.
        let bytes = synthetic_clip(1);
        let nals: Vec<&[u8]> = nal_units(&bytes).collect();
        let headers: Vec<u8> = nals
            .iter()
            .filter(|n| matches!(nal_header(n).0, Some(7 | 8)))
            .flat_map(|n| n.iter().copied())
            .collect();
        assert!(!headers.is_empty());
        let e = decode_clip("c-headers", &headers, &limits, &every(1), 30.0).unwrap_err();
        assert!(matches!(e, ClipError::NoFrames { .. }), "{e}");
    }

    #[test]
    fn random_bytes_are_an_error_not_a_panic() {
        // xorshift, fixed seeds: reproducible garbage, some of it with start codes sprinkled in.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let limits = ClipLimits::default();
        for round in 0..200 {
            let len = 1 + (next() % 4096) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                for _ in 0..(1 + len / 256) {
                    let at = (next() as usize) % len;
                    let code = [0u8, 0, 0, 1, [0x67, 0x68, 0x65, 0x41, 0x06][round % 5]];
                    for (i, b) in code.iter().enumerate() {
                        if at + i < len {
                            bytes[at + i] = *b;
                        }
                    }
                }
            }
            let id = format!("garbage-{round}");
            match decode_clip(&id, &bytes, &limits, &every(1), 30.0) {
                Err(e) => assert_eq!(e.clip_id(), id),
                Ok((_, stats)) => assert!(stats.frames_decoded > 0),
            }
        }
    }

    #[test]
    fn damaged_clips_are_errors_naming_the_clip() {
        let bytes = synthetic_clip(8);
        let limits = ClipLimits::default();
        // Cut in half, mid-picture.
        let half = &bytes[..bytes.len() / 2];
        match decode_clip("cam/s/half", half, &limits, &every(1), 30.0) {
            Err(e) => assert_eq!(e.clip_id(), "cam/s/half"),
            Ok((_, stats)) => assert!(stats.frames_decoded < 8, "{stats:?}"),
        }
        // Without its parameter sets and IDR picture.
        let (units, _) = access_units(&bytes, &nal_units(&bytes).collect::<Vec<_>>());
        let tail = &bytes[units[1].0..];
        let e = decode_clip("cam/s/tail", tail, &limits, &every(1), 30.0).unwrap_err();
        assert_eq!(e.clip_id(), "cam/s/tail");
        // Bits flipped inside the slice data of the IDR picture.
        let mut flipped = bytes.clone();
        let (start, end) = units[0];
        for i in (start + (end - start) / 2..end).step_by(7) {
            flipped[i] ^= 0x5a;
        }
        if let Err(e) = decode_clip("cam/s/flipped", &flipped, &limits, &every(1), 30.0) {
            assert_eq!(e.clip_id(), "cam/s/flipped");
        }
    }

    #[test]
    fn access_units_group_parameter_sets_with_their_picture() {
        let bytes = synthetic_clip(3);
        let nals: Vec<&[u8]> = nal_units(&bytes).collect();
        let (units, pictures) = access_units(&bytes, &nals);
        assert_eq!(units.len(), 3, "{units:?}");
        assert_eq!(pictures, 3);
        assert!(units[0].0 <= 1, "starts at the first start code: {units:?}");
        assert_eq!(units.last().unwrap().1, bytes.len());
        for pair in units.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "contiguous");
        }
        // The first unit holds SPS, PPS and the IDR slice.
        let first: Vec<u8> = nal_units(&bytes[units[0].0..units[0].1])
            .filter_map(|n| nal_header(n).0)
            .collect();
        assert!(
            first.contains(&7) && first.contains(&8) && first.contains(&5),
            "{first:?}"
        );
    }

    #[test]
    fn fixed_point_conversion_matches_openh264() {
        let bytes = synthetic_clip(2);
        let mut decoder = Decoder::new().unwrap();
        let mut checked = 0;
        for nal in nal_units(&bytes) {
            let Some(yuv) = decoder.decode(nal).unwrap() else {
                continue;
            };
            let (w, h) = yuv.dimensions();
            let mut reference = vec![0u8; w * h * 3];
            yuv.write_rgb8(&mut reference);
            let mut ours = vec![0u8; w * h * 3];
            yuv420_to_rgb(yuv.y(), yuv.u(), yuv.v(), (w, h), yuv.strides(), &mut ours).unwrap();
            for (a, b) in reference.iter().zip(&ours) {
                assert!(a.abs_diff(*b) <= 1, "{a} vs {b}");
            }
            // Odd sizes (a crop of the same planes) and planes that are too short.
            let mut odd = vec![0u8; 61 * 47 * 3];
            yuv420_to_rgb(yuv.y(), yuv.u(), yuv.v(), (61, 47), yuv.strides(), &mut odd).unwrap();
            assert_eq!(odd[..61 * 3], ours[..61 * 3]);
            let mut big = vec![0u8; w * (h + 8) * 3];
            assert!(yuv420_to_rgb(
                yuv.y(),
                yuv.u(),
                yuv.v(),
                (w, h + 8),
                yuv.strides(),
                &mut big
            )
            .is_err());
            checked += 1;
        }
        assert!(checked > 0);
    }

    #[test]
    fn nal_header_reads_type_and_first_mb() {
        assert_eq!(nal_header(&[0, 0, 1, 0x65, 0x88]), (Some(5), true));
        assert_eq!(nal_header(&[0, 0, 0, 1, 0x41, 0x9a]), (Some(1), true));
        assert_eq!(nal_header(&[0, 0, 1, 0x41, 0x40]), (Some(1), false));
        assert_eq!(nal_header(&[0, 0, 1]), (None, false));
        assert_eq!(nal_header(&[0, 0, 2, 0x41]), (None, false));
        assert_eq!(describe_state(0x14), "bitstream error, no parameter sets");
    }
}
