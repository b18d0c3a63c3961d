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
    let shrink = src_w >= dst_w && src_h >= dst_h;
    let x_taps = axis_taps(src_w, dst_w, shrink);
    let y_taps = axis_taps(src_h, dst_h, shrink);

    // Horizontal pass: every source row to dst_w columns.
    let mut rows = vec![0f32; src_h * dst_w * 3];
    for y in 0..src_h {
        let src_row = &src[y * src_w * 3..(y + 1) * src_w * 3];
        let out_row = &mut rows[y * dst_w * 3..(y + 1) * dst_w * 3];
        for tap in &x_taps {
            let s = tap.src * 3;
            let d = tap.dst * 3;
            out_row[d] += src_row[s] as f32 * tap.weight;
            out_row[d + 1] += src_row[s + 1] as f32 * tap.weight;
            out_row[d + 2] += src_row[s + 2] as f32 * tap.weight;
        }
    }
    // Vertical pass.
    let mut out = vec![0f32; dst_h * dst_w * 3];
    let row_len = dst_w * 3;
    for tap in &y_taps {
        let src_row = &rows[tap.src * row_len..(tap.src + 1) * row_len];
        let out_row = &mut out[tap.dst * row_len..(tap.dst + 1) * row_len];
        for (o, s) in out_row.iter_mut().zip(src_row) {
            *o += s * tap.weight;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn same_size_is_identity() {
        let src: Vec<u8> = (0..5 * 3 * 3).map(|i| i as u8).collect();
        let out = resize_area_rgb(&src, 5, 3, 5, 3);
        for (o, s) in out.iter().zip(&src) {
            assert!((o - *s as f32).abs() < 1e-4);
        }
    }
}
