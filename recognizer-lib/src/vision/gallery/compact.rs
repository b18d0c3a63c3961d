//! A compact int8 copy of the gallery's templates, used only to find the few templates worth
//! scoring exactly.
//!
//! At 30,000 people the f32 templates are 61 MB: one face searched against all of them streams
//! that much memory (~7 ms here). The int8 copy is a quarter of it (and fits a server's last-level
//! cache), so every template is scored on it first. Each of those approximate scores comes with a
//! proven bound on its distance from the exact score (from the quantisation errors, measured when
//! the copy is made and when the face is quantised), so the search can rule out every template
//! that cannot be among the best and re-score only the rest exactly (see
//! [`super::Gallery::identify`]). The f32 templates remain the truth: every score a caller sees
//! is an exact one.

use super::ROW_BLOCK;

/// Largest magnitude of a template code (symmetric, so -128 is never used).
const ROW_CODE_MAX: i32 = 127;

/// Largest magnitude of a face code: faces are quantised to i16, far finer than the templates,
/// so their share of the error bound is negligible at the same cost per multiply-add.
const QUERY_CODE_MAX: i32 = i16::MAX as i32;

/// Independent partial sums of the integer dot product (see `dot` in the parent module: fixed
/// blocks the compiler turns into vector multiply-adds).
const CODE_LANES: usize = 32;

/// The int8 copy: row `i` approximates template `i` as `scales[i] * codes[i*dimension..]`.
#[derive(Clone, Debug, Default)]
pub(super) struct CompactTemplates {
    dimension: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// L2 norm of each row's quantisation error (template minus its approximation), rounded up.
    errors: Vec<f32>,
    /// Largest L2 norm of a template (1 up to rounding: they are normalised).
    row_norm_max: f64,
    /// Largest face code for this dimension: keeps every integer dot product inside i32.
    query_code_max: i32,
}

/// A face quantised for [`CompactTemplates::approximate_batch`].
#[derive(Clone, Debug)]
pub(super) struct CompactQuery {
    codes: Vec<i16>,
    scale: f32,
    /// L2 norm of the face.
    norm: f64,
    /// L2 norm of the face's quantisation error.
    residual: f64,
}

impl CompactTemplates {
    /// The int8 copy of the row-major `matrix` of `dimension`-long templates. `None` when the
    /// dimension is too large for the integer sums or a row is zero or not finite.
    pub(super) fn new(matrix: &[f32], dimension: usize) -> Option<CompactTemplates> {
        let query_code_max = query_code_max(dimension)?;
        let rows = matrix.len() / dimension;
        let mut compact = CompactTemplates {
            dimension,
            codes: Vec::with_capacity(rows * dimension),
            scales: Vec::with_capacity(rows),
            errors: Vec::with_capacity(rows),
            row_norm_max: 0.0,
            query_code_max,
        };
        for row in matrix.chunks_exact(dimension) {
            let largest = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            if !(largest.is_finite() && largest > 0.0) {
                return None;
            }
            let scale = largest / ROW_CODE_MAX as f32;
            let mut error = 0f64;
            let mut norm = 0f64;
            for &x in row {
                let code = (x / scale)
                    .round()
                    .clamp(-ROW_CODE_MAX as f32, ROW_CODE_MAX as f32);
                let residual = x as f64 - scale as f64 * code as f64;
                error += residual * residual;
                norm += x as f64 * x as f64;
                compact.codes.push(code as i8);
            }
            compact.scales.push(scale);
            compact.errors.push(rounded_up(error.sqrt()));
            compact.row_norm_max = compact.row_norm_max.max(norm.sqrt());
        }
        Some(compact)
    }

    /// Bytes held by the copy.
    pub(super) fn bytes(&self) -> usize {
        self.codes.len() + (self.scales.len() + self.errors.len()) * std::mem::size_of::<f32>()
    }

    /// `face` quantised, or `None` when it cannot be (wrong dimension, zero, not finite): the
    /// caller then searches exactly.
    pub(super) fn quantise(&self, face: &[f32]) -> Option<CompactQuery> {
        if face.len() != self.dimension || face.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let largest = face.iter().fold(0f32, |m, x| m.max(x.abs()));
        if largest == 0.0 {
            return None;
        }
        let scale = largest / self.query_code_max as f32;
        let limit = self.query_code_max as f32;
        let mut norm = 0f64;
        let mut residual = 0f64;
        let codes = face
            .iter()
            .map(|&x| {
                let code = (x / scale).round().clamp(-limit, limit);
                let error = x as f64 - scale as f64 * code as f64;
                residual += error * error;
                norm += x as f64 * x as f64;
                code as i16
            })
            .collect();
        Some(CompactQuery {
            codes,
            scale,
            norm: norm.sqrt(),
            residual: residual.sqrt(),
        })
    }

    /// Approximate score of every template for each query, in template order, reading the codes
    /// once per call (callers pass a batch of faces).
    pub(super) fn approximate_batch(&self, queries: &[&CompactQuery]) -> Vec<Vec<f32>> {
        let rows = self.scales.len();
        let mut out: Vec<Vec<f32>> = queries.iter().map(|_| vec![0f32; rows]).collect();
        if rows == 0 {
            return out;
        }
        let mut dots = vec![0i32; ROW_BLOCK];
        for (block_index, block) in self.codes.chunks(ROW_BLOCK * self.dimension).enumerate() {
            let first_row = block_index * ROW_BLOCK;
            let block_rows = block.len() / self.dimension;
            let dots = &mut dots[..block_rows];
            for (query, scores) in queries.iter().zip(out.iter_mut()) {
                integer_dots_fastest(block, self.dimension, &query.codes, dots);
                let scales = &self.scales[first_row..first_row + block_rows];
                for ((score, dot), row_scale) in
                    scores[first_row..].iter_mut().zip(&*dots).zip(scales)
                {
                    *score = (row_scale * query.scale) * *dot as f32;
                }
            }
        }
        out
    }

    /// For `query`: a bound, per template row, on |exact score - approximate score|.
    pub(super) fn error_bound(&self, query: &CompactQuery) -> impl Fn(usize) -> f64 + '_ {
        // exact - approximate = t.q - (t-e).(q-d) = t.d + e.q - e.d for template t quantised
        // with error e and face q with error d, so by Cauchy-Schwarz it is at most
        // |t||d| + |e|(|q| + |d|). `slack` covers the floating-point rounding of both the
        // approximate and the exact score (a dot product of n terms rounds by at most about
        // n * epsilon * |t||q|), with a factor of two to spare.
        let slack = 4.0
            * (self.dimension + 8) as f64
            * f32::EPSILON as f64
            * query.norm
            * self.row_norm_max;
        let shared = self.row_norm_max * query.residual + slack;
        let spread = query.norm + query.residual;
        move |row: usize| shared + self.errors[row] as f64 * spread
    }

    /// Templates that may be among the `k` best for `query` given its approximate scores: every
    /// template left out scores exactly below at least `k` others, so the `k` best of the exact
    /// scores of those returned are the `k` best of all. In template order.
    pub(super) fn candidates(
        &self,
        query: &CompactQuery,
        approximate: &[f32],
        k: usize,
    ) -> Vec<usize> {
        let rows = approximate.len();
        if k == 0 {
            return Vec::new();
        }
        if k >= rows {
            return (0..rows).collect();
        }
        let bound = self.error_bound(query);
        let lower: Vec<f64> = approximate
            .iter()
            .enumerate()
            .map(|(row, a)| *a as f64 - bound(row))
            .collect();
        // The k-th highest lower bound: k templates score exactly at least this much.
        let floor = if k == 1 {
            lower.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        } else {
            let mut sorted = lower.clone();
            let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            *kth
        };
        approximate
            .iter()
            .enumerate()
            .filter(|(row, a)| **a as f64 + bound(*row) >= floor)
            .map(|(row, _)| row)
            .collect()
    }
}

/// Largest face code such that no integer dot product of `dimension` terms leaves i32; `None`
/// when that would make the face codes coarser than the templates' (absurd dimensions).
fn query_code_max(dimension: usize) -> Option<i32> {
    let per_term = i32::MAX as i64 / (ROW_CODE_MAX as i64 * dimension.max(1) as i64);
    let code_max = per_term.min(QUERY_CODE_MAX as i64) as i32;
    (code_max > ROW_CODE_MAX).then_some(code_max)
}

/// `value` as f32, rounded towards +infinity (a bound must not shrink).
fn rounded_up(value: f64) -> f32 {
    let v = value as f32;
    if (v as f64) < value {
        v * (1.0 + f32::EPSILON) + f32::MIN_POSITIVE
    } else {
        v
    }
}

/// [`integer_dots`] through the widest build this CPU runs (the detection is cached by std).
fn integer_dots_fastest(block: &[i8], dimension: usize, query: &[i16], dots: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (just checked); the function is the portable code built for it.
        unsafe { integer_dots_avx2(block, dimension, query, dots) };
        return;
    }
    integer_dots(block, dimension, query, dots)
}

/// Integer dot products of `query` with each `dimension`-long row of `block`.
#[inline(always)]
fn integer_dots(block: &[i8], dimension: usize, query: &[i16], dots: &mut [i32]) {
    for (dot, row) in dots.iter_mut().zip(block.chunks_exact(dimension)) {
        *dot = integer_dot(row, query);
    }
}

/// [`integer_dots`] compiled for AVX2 (twice the vector width of the x86-64 baseline, measured
/// ~1.7x faster per face at 30,000 people; docs/benchmarks.md). No intrinsics: the same code.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn integer_dots_avx2(block: &[i8], dimension: usize, query: &[i16], dots: &mut [i32]) {
    integer_dots(block, dimension, query, dots)
}

/// Dot product of a template row's codes with a face's codes. Cannot overflow: the face codes
/// are limited by [`query_code_max`].
#[inline(always)]
fn integer_dot(row: &[i8], query: &[i16]) -> i32 {
    let n = row.len().min(query.len());
    let (row, query) = (&row[..n], &query[..n]);
    let mut acc = [0i32; CODE_LANES];
    let (row_blocks, query_blocks) = (row.chunks_exact(CODE_LANES), query.chunks_exact(CODE_LANES));
    let tail: i32 = row_blocks
        .remainder()
        .iter()
        .zip(query_blocks.remainder())
        .map(|(r, q)| *r as i32 * *q as i32)
        .sum();
    for (r, q) in row_blocks.zip(query_blocks) {
        // Fixed-size blocks: widened to i16 pairs and summed into i32 (pmaddwd and the like).
        if let (Ok(r), Ok(q)) = (
            <&[i8; CODE_LANES]>::try_from(r),
            <&[i16; CODE_LANES]>::try_from(q),
        ) {
            for ((sum, r), q) in acc.iter_mut().zip(r).zip(q) {
                *sum += *r as i32 * *q as i32;
            }
        }
    }
    acc.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    fn exact(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn approximate_scores_stay_within_their_bound() {
        for dimension in [5, 37, 512] {
            let rows: Vec<Vec<f32>> = (0..200)
                .map(|i| {
                    let mut v = pseudo_random(i, dimension);
                    // Some rows with one dominant value: coarse codes for the rest.
                    if i % 5 == 0 {
                        v[0] = 20.0;
                    }
                    unit(v)
                })
                .collect();
            let matrix: Vec<f32> = rows.iter().flatten().copied().collect();
            let compact = CompactTemplates::new(&matrix, dimension).unwrap();
            assert_eq!(compact.bytes(), 200 * dimension + 200 * 8);
            for q in 0..20u64 {
                // Faces need not be unit length.
                let face: Vec<f32> = pseudo_random(10_000 + q, dimension)
                    .into_iter()
                    .map(|x| x * (q + 1) as f32)
                    .collect();
                let query = compact.quantise(&face).unwrap();
                let approximate = compact.approximate_batch(&[&query]).remove(0);
                let bound = compact.error_bound(&query);
                for (row, (t, a)) in rows.iter().zip(&approximate).enumerate() {
                    let error = (exact(t, &face) - *a as f64).abs();
                    assert!(
                        error <= bound(row),
                        "{dimension}-d row {row}: {error} > {}",
                        bound(row)
                    );
                }
            }
        }
    }

    #[test]
    fn integer_sums_cannot_overflow_at_any_dimension() {
        // Every template code 127 and every face code at its maximum: the largest dot product
        // there can be (a debug build would panic on overflow).
        for dimension in [512, 4096, 5000, 100_000] {
            let row = unit(vec![1.0; dimension]);
            let Some(compact) = CompactTemplates::new(&row, dimension) else {
                assert!(dimension > 16_000, "{dimension}-d must get a compact copy");
                continue;
            };
            let query = compact.quantise(&row).unwrap();
            let score = compact.approximate_batch(&[&query])[0][0];
            assert!((score - 1.0).abs() < 1e-3, "{dimension}-d: {score}");
        }
        assert!(query_code_max(512) == Some(i16::MAX as i32));
    }

    #[test]
    fn faces_that_cannot_be_quantised_are_refused() {
        let compact = CompactTemplates::new(&unit(vec![1.0, 2.0, 3.0]), 3).unwrap();
        assert!(compact.quantise(&[0.0, 0.0, 0.0]).is_none());
        assert!(compact.quantise(&[1.0, f32::INFINITY, 0.0]).is_none());
        assert!(compact.quantise(&[1.0, 0.0]).is_none());
        assert!(CompactTemplates::new(&[0.0, 0.0, 0.0], 3).is_none());
    }
}
