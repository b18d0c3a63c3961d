//! How busy the recognition side is: one reading ([`Load`]), the readings of one step over time
//! ([`PoolSample`]) and what they sum up to ([`BacklogSummary`]).

/// The recognition side at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Load {
    /// Embedded: clips queued in the pool, not started; aws: clip-events messages, waiting +
    /// in flight.
    pub(super) backlog: usize,
    /// Embedded: the pool's workers; aws: messages in flight (received by a worker).
    pub(super) workers: usize,
    /// Clips being recognised.
    pub(super) busy: usize,
}

impl Load {
    pub(super) fn idle(&self) -> bool {
        self.backlog == 0 && self.busy == 0
    }
}

/// One load sample: seconds since the step's start, backlog, workers.
pub(super) type PoolSample = (f64, usize, usize);

/// The sampled backlog over one step's capture time.
#[derive(Debug, PartialEq)]
pub(super) struct BacklogSummary {
    pub(super) peak: usize,
    pub(super) last_third_peak: usize,
    pub(super) trend_per_s: f64,
}

impl BacklogSummary {
    /// `samples` are (seconds since start, backlog, workers); only those within the capture
    /// time count (the drain after capture empties the queue by design).
    pub(super) fn of(samples: &[PoolSample], capture_s: f64) -> BacklogSummary {
        let during: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.0 <= capture_s)
            .map(|s| (s.0, s.1 as f64))
            .collect();
        let peak_from = |from: f64| {
            samples
                .iter()
                .filter(|s| s.0 >= from && s.0 <= capture_s)
                .map(|s| s.1)
                .max()
                .unwrap_or(0)
        };
        BacklogSummary {
            peak: peak_from(0.0),
            last_third_peak: peak_from(capture_s * 2.0 / 3.0),
            trend_per_s: slope(&during),
        }
    }
}

/// Least-squares slope of y over x (0 with fewer than two distinct x).
pub(super) fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_summary_uses_the_capture_window_only() {
        // Flat at 1 for 9 s, then a growing queue in the last third, then the drain.
        let mut samples: Vec<PoolSample> = (0..60).map(|i| (f64::from(i) * 0.1, 1, 2)).collect();
        samples.extend((0..30).map(|i| (6.0 + i as f64 * 0.1, 2 + i / 3, 2)));
        samples.push((9.5, 40, 2));
        let summary = BacklogSummary::of(&samples, 9.0);
        assert_eq!(summary.peak, 11);
        assert_eq!(summary.last_third_peak, 11);
        assert!(summary.trend_per_s > 0.5, "{summary:?}");

        let steady: Vec<PoolSample> = (0..90).map(|i| (i as f64 * 0.1, i % 2, 2)).collect();
        let summary = BacklogSummary::of(&steady, 9.0);
        assert_eq!((summary.peak, summary.last_third_peak), (1, 1));
        assert!(summary.trend_per_s.abs() < 0.05, "{summary:?}");
        assert_eq!(BacklogSummary::of(&[], 9.0).peak, 0);
    }

    #[test]
    fn slopes() {
        assert_eq!(slope(&[]), 0.0);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
    }
}
