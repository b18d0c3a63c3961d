//! Area-averaging resize, the same arithmetic as OpenCV's `INTER_AREA` which MTCNN was run with.
//!
//! Shrinking averages every source pixel a destination pixel covers, weighted by the covered
//! fraction; enlarging (or a mix) uses OpenCV's `INTER_AREA` flavour of bilinear weights.

/// One contribution of a source index to a destination index.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    dst: usize,
    src: usize,
    weight: f32,
}

/// Taps for one axis. `shrink` selects area averaging; otherwise OpenCV's INTER_AREA-linear weights.
fn axis_taps(src_len: usize, dst_len: usize, shrink: bool) -> Vec<Tap> {
    let scale = src_len as f64 / dst_len as f64;
    let mut taps = Vec::with_capacity(dst_len * 3);
    if shrink {
        for d in 0..dst_len {
            let start = d as f64 * scale;
            let end = ((d + 1) as f64 * scale).min(src_len as f64);
            let mut s = start.floor() as usize;
            while (s as f64) < end && s < src_len {
                let lo = start.max(s as f64);
                let hi = end.min((s + 1) as f64);
                let weight = ((hi - lo) / (end - start)) as f32;
                if weight > 1e-6 {
                    taps.push(Tap {
                        dst: d,
                        src: s,
                        weight,
                    });
                }
                s += 1;
            }
        }
    } else {
        let inv_scale = 1.0 / scale;
        for d in 0..dst_len {
            let sx = (d as f64 * scale).floor() as isize;
            let mut fx = (d + 1) as f64 - (sx + 1) as f64 * inv_scale;
            fx = if fx <= 0.0 { 0.0 } else { fx - fx.floor() };
            let last = src_len as isize - 1;
            if sx >= last {
                taps.push(Tap {
                    dst: d,
                    src: last.max(0) as usize,
                    weight: 1.0,
                });
            } else {
                let s0 = sx.max(0) as usize;
                taps.push(Tap {
                    dst: d,
                    src: s0,
                    weight: (1.0 - fx) as f32,
                });
                taps.push(Tap {
                    dst: d,
                    src: s0 + 1,
                    weight: fx as f32,
                });
            }
        }
    }
    taps
}

/// Resize an interleaved RGB `u8` image of `src_w` x `src_h` to `dst_w` x `dst_h`, returning
/// interleaved RGB `f32` (0..255 scale).
pub fn resize_area_rgb(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    dst_w: usize,
    dst_h: usize,
) -> Vec<f32> {
    debug_assert_eq!(src.len(), src_w * src_h * 3);
    let mut out = Vec::new();
    AreaResizer::default().resize_window(
        src,
        (src_w, src_h),
        Window {
            x: 0,
            y: 0,
            width: src_w,
            height: src_h,
        },
        (dst_w, dst_h),
        &mut out,
    );
    out
}

/// Area-average an interleaved RGB `u8` image of `size` (width, height) down to `dst` (no side
/// larger than the source's), one source row at a time: besides the output, the scratch memory is
/// the output's size in `f32` plus one row, however large the source. The values are those of
/// [`resize_area_rgb`], rounded to `u8`.
pub fn shrink_area_rgb(src: &[u8], size: (usize, usize), dst: (usize, usize)) -> Vec<u8> {
    let (src_w, src_h) = size;
    let (dst_w, dst_h) = dst;
    debug_assert_eq!(src.len(), src_w * src_h * 3);
    debug_assert!(dst_w <= src_w && dst_h <= src_h && dst_w > 0 && dst_h > 0);
    let x_taps = axis_taps(src_w, dst_w, true);
    // Vertical taps by source row; for each destination row they stay in source order, so every
    // destination value adds its contributions in the same order as `resize_area_rgb`.
    let mut y_taps = axis_taps(src_h, dst_h, true);
    y_taps.sort_by_key(|t| t.src);
    let row_len = dst_w * 3;
    let mut sums = vec![0f32; dst_h * row_len];
    let mut row = vec![0f32; row_len];
    let mut next = 0;
    for y in 0..src_h {
        if y_taps.get(next).is_none_or(|t| t.src != y) {
            continue;
        }
        row.fill(0.0);
        let src_row = &src[y * src_w * 3..(y + 1) * src_w * 3];
        let mut sums_x = [0f32; 3];
        let mut current = usize::MAX;
        for tap in &x_taps {
            if tap.dst != current {
                if current != usize::MAX {
                    row[current * 3..current * 3 + 3].copy_from_slice(&sums_x);
                }
                current = tap.dst;
                sums_x = [0.0; 3];
            }
            let px = &src_row[tap.src * 3..tap.src * 3 + 3];
            sums_x[0] += px[0] as f32 * tap.weight;
            sums_x[1] += px[1] as f32 * tap.weight;
            sums_x[2] += px[2] as f32 * tap.weight;
        }
        if current != usize::MAX {
            row[current * 3..current * 3 + 3].copy_from_slice(&sums_x);
        }
        while let Some(tap) = y_taps.get(next).filter(|t| t.src == y) {
            let out_row = &mut sums[tap.dst * row_len..(tap.dst + 1) * row_len];
            for (o, s) in out_row.iter_mut().zip(&row) {
                *o += s * tap.weight;
            }
            next += 1;
        }
    }
    sums.iter()
        .map(|v| round_non_negative(*v).min(255.0) as u8)
        .collect()
}

/// A rectangle of an image, possibly reaching outside it; pixels outside the image are black.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub x: i64,
    pub y: i64,
    pub width: usize,
    pub height: usize,
}

/// [`resize_area_rgb`] of windows of an image without copying the window out first, with its
/// scratch memory kept between calls (MTCNN resizes hundreds of crops per image).
///
/// Results are bit-identical to copying the window into a zero-filled buffer and calling
/// [`resize_area_rgb`] on it: the same taps are applied in the same order, and the taps that
/// would read the black outside (adding exactly `0.0`) are skipped.
#[derive(Debug, Default)]
pub struct AreaResizer {
    rows: Vec<f32>,
    /// Horizontal taps that land inside the image, in destination order: (image offset, weight).
    inside_x: Vec<(usize, f32)>,
    /// Per destination column: its offset in a row and its range of `inside_x`.
    columns: Vec<(usize, usize, usize)>,
    /// Window rows some vertical tap reads.
    needed: Vec<bool>,
}

impl AreaResizer {
    /// Resize `window` of the `size.0` x `size.1` interleaved RGB image `src` to `dst`
    /// (width, height) into `out` (interleaved RGB `f32`, 0..255; resized and overwritten).
    pub fn resize_window(
        &mut self,
        src: &[u8],
        size: (usize, usize),
        window: Window,
        dst: (usize, usize),
        out: &mut Vec<f32>,
    ) {
        let (src_w, src_h) = size;
        let (dst_w, dst_h) = dst;
        let (crop_w, crop_h) = (window.width, window.height);
        debug_assert_eq!(src.len(), src_w * src_h * 3);
        let shrink = crop_w >= dst_w && crop_h >= dst_h;
        let x_taps = axis_taps(crop_w, dst_w, shrink);
        let y_taps = axis_taps(crop_h, dst_h, shrink);
        // Taps come grouped by destination column, in order.
        self.inside_x.clear();
        self.columns.clear();
        let mut taps = x_taps.iter().peekable();
        for d in 0..dst_w {
            let start = self.inside_x.len();
            while let Some(tap) = taps.next_if(|t| t.dst == d) {
                let x = window.x + tap.src as i64;
                if x >= 0 && x < src_w as i64 {
                    self.inside_x.push((x as usize * 3, tap.weight));
                }
            }
            self.columns.push((d * 3, start, self.inside_x.len()));
        }

        // Horizontal pass: the window's rows that lie inside the image and that a vertical tap
        // reads, to dst_w columns. Each column sums its taps in order from 0.0, as adding them
        // one by one into a zeroed row does. Rows outside the image stay unread (zeros).
        let row_len = dst_w * 3;
        self.rows.resize(crop_h * row_len, 0.0);
        let row_inside = |r: usize| {
            let y = window.y + r as i64;
            (y >= 0 && y < src_h as i64).then_some(y as usize)
        };
        self.needed.clear();
        self.needed.resize(crop_h, false);
        for tap in &y_taps {
            self.needed[tap.src] = true;
        }
        for (r, _) in self.needed.iter().enumerate().filter(|(_, n)| **n) {
            let Some(y) = row_inside(r) else {
                continue;
            };
            let src_row = &src[y * src_w * 3..(y + 1) * src_w * 3];
            let out_row = &mut self.rows[r * row_len..(r + 1) * row_len];
            for &(d, start, end) in &self.columns {
                let (mut red, mut green, mut blue) = (0f32, 0f32, 0f32);
                for &(s, weight) in &self.inside_x[start..end] {
                    let px = &src_row[s..s + 3];
                    red += px[0] as f32 * weight;
                    green += px[1] as f32 * weight;
                    blue += px[2] as f32 * weight;
                }
                out_row[d] = red;
                out_row[d + 1] = green;
                out_row[d + 2] = blue;
            }
        }
        // Vertical pass.
        out.clear();
        out.resize(dst_h * row_len, 0.0);
        for tap in &y_taps {
            if row_inside(tap.src).is_none() {
                continue;
            }
            let src_row = &self.rows[tap.src * row_len..(tap.src + 1) * row_len];
            let out_row = &mut out[tap.dst * row_len..(tap.dst + 1) * row_len];
            for (o, s) in out_row.iter_mut().zip(src_row) {
                *o += s * tap.weight;
            }
        }
    }
}

/// `x.round()` (halves away from zero) for `0 <= x < 2^31`, without the `roundf` library call
/// that `f32::round` compiles to on baseline x86-64 (no SSE4.1): resizing a 640x360 frame for
/// UltraFace rounds 230 000 values, and the calls were 4 % of a clip's analysis time.
/// NaN gives 0; callers only pass weighted sums of pixel values.
pub(crate) fn round_non_negative(x: f32) -> f32 {
    // Truncation is floor for x >= 0, and x - floor(x) is exact below 2^24 (and 0 above it).
    let floor = x as i32 as f32;
    if x - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    }
}

/// [`round_non_negative`] in `f64` (alignment warps in `f64`).
pub(crate) fn round_non_negative_f64(x: f64) -> f64 {
    let floor = x as i64 as f64;
    if x - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rounding_matches_std_round_on_pixel_ranges() {
        // Every quarter step, every tie, and neighbours of the ties one ulp away.
        for i in 0..=2048u32 {
            let x = i as f32 * 0.125;
            for v in [
                x,
                f32::from_bits(x.to_bits() + 1),
                f32::from_bits(x.to_bits().max(1) - 1),
            ] {
                assert_eq!(round_non_negative(v), v.round(), "{v}");
                let w = f64::from(v);
                assert_eq!(round_non_negative_f64(w), w.round(), "{w}");
            }
        }
        // Pseudo-random sums of weighted pixels.
        let mut state = 0x1234_5678u32;
        for _ in 0..100_000 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = (state >> 8) as f32 / (1 << 24) as f32 * 256.0;
            assert_eq!(round_non_negative(v), v.round(), "{v}");
        }
        assert_eq!(round_non_negative(f32::NAN), 0.0);
    }

    #[test]
    fn integer_shrink_averages_blocks() {
        // 4x2 -> 2x1: each output pixel is the mean of a 2x2 block.
        let mut src = Vec::new();
        for v in [0u8, 10, 100, 200, 20, 30, 50, 50] {
            src.extend_from_slice(&[v, v, v]);
        }
        let out = resize_area_rgb(&src, 4, 2, 2, 1);
        assert!((out[0] - 15.0).abs() < 1e-4);
        assert!((out[3] - 100.0).abs() < 1e-4);
    }

    #[test]
    fn fractional_shrink_keeps_constant_images_constant() {
        let src = vec![77u8; 13 * 9 * 3];
        let out = resize_area_rgb(&src, 13, 9, 5, 4);
        assert!(out.iter().all(|v| (v - 77.0).abs() < 1e-3));
    }

    #[test]
    fn enlarging_interpolates_between_neighbours() {
        let src = vec![0u8, 0, 0, 100, 100, 100];
        let out = resize_area_rgb(&src, 2, 1, 4, 1);
        let reds: Vec<f32> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds.first().copied(), Some(0.0));
        assert_eq!(reds.last().copied(), Some(100.0));
        assert!(reds.windows(2).all(|w| w[0] <= w[1]));
    }

    /// The resize as first written: every row, every tap, one allocation per call.
    fn reference_resize(
        src: &[u8],
        src_w: usize,
        src_h: usize,
        dst_w: usize,
        dst_h: usize,
    ) -> Vec<f32> {
        let shrink = src_w >= dst_w && src_h >= dst_h;
        let x_taps = axis_taps(src_w, dst_w, shrink);
        let y_taps = axis_taps(src_h, dst_h, shrink);
        let mut rows = vec![0f32; src_h * dst_w * 3];
        for y in 0..src_h {
            let src_row = &src[y * src_w * 3..(y + 1) * src_w * 3];
            let out_row = &mut rows[y * dst_w * 3..(y + 1) * dst_w * 3];
            for tap in &x_taps {
                for c in 0..3 {
                    out_row[tap.dst * 3 + c] += src_row[tap.src * 3 + c] as f32 * tap.weight;
                }
            }
        }
        let mut out = vec![0f32; dst_h * dst_w * 3];
        let row_len = dst_w * 3;
        for tap in &y_taps {
            for i in 0..row_len {
                out[tap.dst * row_len + i] += rows[tap.src * row_len + i] * tap.weight;
            }
        }
        out
    }

    #[test]
    fn windows_match_copying_the_window_then_resizing_bit_for_bit() {
        let (w, h) = (37usize, 29usize);
        let src: Vec<u8> = (0..w * h * 3).map(|i| (i * 131 % 251) as u8).collect();
        let mut resizer = AreaResizer::default();
        let mut out = Vec::new();
        for &(x, y, cw, ch, dw, dh) in &[
            (0i64, 0i64, 37usize, 29usize, 12usize, 9usize),
            (0, 0, 37, 29, 37, 29),
            (0, 0, 37, 29, 80, 50),
            (5, 3, 20, 20, 24, 24),
            (-4, -6, 20, 20, 48, 48),
            (30, 20, 15, 15, 24, 24),
            (-20, 0, 10, 10, 24, 24),
            (2, 2, 1, 1, 24, 24),
            (10, -3, 30, 8, 7, 5),
        ] {
            let mut crop = vec![0u8; cw * ch * 3];
            for r in 0..ch as i64 {
                for c in 0..cw as i64 {
                    let (sx, sy) = (x + c, y + r);
                    if sx >= 0 && sy >= 0 && sx < w as i64 && sy < h as i64 {
                        let s = (sy as usize * w + sx as usize) * 3;
                        let d = (r as usize * cw + c as usize) * 3;
                        crop[d..d + 3].copy_from_slice(&src[s..s + 3]);
                    }
                }
            }
            let expected = reference_resize(&crop, cw, ch, dw, dh);
            let window = Window {
                x,
                y,
                width: cw,
                height: ch,
            };
            resizer.resize_window(&src, (w, h), window, (dw, dh), &mut out);
            assert_eq!(out.len(), expected.len());
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "window {window:?} -> {dw}x{dh}, value {i}"
                );
            }
            if (x, y, cw, ch) == (0, 0, w, h) {
                assert_eq!(resize_area_rgb(&src, w, h, dw, dh), expected);
            }
        }
    }

    #[test]
    fn row_by_row_shrink_equals_the_whole_image_resize_rounded() {
        let (w, h) = (97usize, 61usize);
        let src: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        for dst in [(40, 25), (97, 30), (13, 61), (1, 1), (96, 60)] {
            let expected: Vec<u8> = resize_area_rgb(&src, w, h, dst.0, dst.1)
                .iter()
                .map(|v| round_non_negative(*v).min(255.0) as u8)
                .collect();
            assert_eq!(shrink_area_rgb(&src, (w, h), dst), expected, "{dst:?}");
        }
    }

    #[test]
    fn same_size_is_identity() {
        let src: Vec<u8> = (0..5 * 3 * 3).map(|i| i as u8).collect();
        let out = resize_area_rgb(&src, 5, 3, 5, 3);
        for (o, s) in out.iter().zip(&src) {
            assert!((o - *s as f32).abs() < 1e-4);
        }
    }
}
