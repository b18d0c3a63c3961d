//! Clip latency: HdrHistogram-backed distributions of the end-to-end latency of every clip (closed
//! at the edge -> its result received) and of the stages in between.
//!
//! Values are recorded in microseconds from 1 us to 10 minutes with 3 significant digits (any
//! reported percentile is within 0.1 % of the exact value); longer durations are recorded as 10
//! minutes. Recorders of different sessions (or threads) merge exactly: counts add up.
//!
//! ```
//! use std::time::Duration;
//! use rollcall_edge::latency::{LatencyRecorder, Stage};
//!
//! let mut session = LatencyRecorder::new();
//! for ms in [480, 510, 530, 2_100] {
//!     session.record(Stage::EndToEnd, Duration::from_millis(ms));
//! }
//! let summary = session.summary(Stage::EndToEnd).unwrap();
//! assert_eq!(summary.count, 4);
//! assert!((summary.max_ms - 2_100.0).abs() < 2.1);
//! // Four buckets between the fastest and the slowest clip, for a bar chart.
//! let bars = session.buckets(Stage::EndToEnd, 4);
//! assert_eq!(bars.iter().map(|(_, n)| n).sum::<u64>(), 4);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Smallest distinguishable value, microseconds.
pub const LOWEST_US: u64 = 1;
/// Largest value recorded as is (10 minutes), microseconds; larger ones are clamped to it.
pub const HIGHEST_US: u64 = 600_000_000;
/// Precision of every histogram: values are kept to 3 significant digits.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A measured step of a clip's trip. All but [`Stage::EndToEnd`] are parts of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Encoding the clip's frames at the edge.
    Encode,
    /// Time the clip waited in the edge's disk spool before its upload started.
    SpoolWait,
    /// Uploading the clip to the object store.
    Upload,
    /// The recognizer function's whole run for the clip (as it reports it).
    FunctionTotal,
    /// H.264 decoding in the function.
    Decode,
    /// Face detection in the function.
    Detect,
    /// Face alignment and embedding in the function.
    Embed,
    /// People-directory lookup in the function.
    Lookup,
    /// Result delivery: function done -> result received at the edge.
    Delivery,
    /// Clip closed at the edge -> its result received at the edge.
    EndToEnd,
}

impl Stage {
    /// Every stage, in the order of a clip's trip (end-to-end last).
    pub const ALL: [Stage; 10] = [
        Stage::Encode,
        Stage::SpoolWait,
        Stage::Upload,
        Stage::FunctionTotal,
        Stage::Decode,
        Stage::Detect,
        Stage::Embed,
        Stage::Lookup,
        Stage::Delivery,
        Stage::EndToEnd,
    ];

    /// The stage's name (`snake_case`, as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Encode => "encode",
            Stage::SpoolWait => "spool_wait",
            Stage::Upload => "upload",
            Stage::FunctionTotal => "function_total",
            Stage::Decode => "decode",
            Stage::Detect => "detect",
            Stage::Embed => "embed",
            Stage::Lookup => "lookup",
            Stage::Delivery => "delivery",
            Stage::EndToEnd => "end_to_end",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stage name that [`Stage::from_str`] does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown latency stage {0:?} (expected one of: encode, spool_wait, upload, function_total, decode, detect, embed, lookup, delivery, end_to_end)")]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Stage::ALL
            .into_iter()
            .find(|stage| stage.name() == wanted)
            .ok_or_else(|| UnknownStage(s.to_string()))
    }
}

/// Distribution of one stage, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, in milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// Largest, in milliseconds.
    pub max_ms: f64,
    /// Mean, in milliseconds.
    pub mean_ms: f64,
}

/// Latency histograms per [`Stage`]. A stage's histogram is created on its first value.
#[derive(Clone, Debug, Default)]
pub struct LatencyRecorder {
    stages: BTreeMap<Stage, Histogram<u64>>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> LatencyRecorder {
        LatencyRecorder::default()
    }

    /// Record one duration of `stage` (microsecond resolution; over 10 minutes counts as 10).
    pub fn record(&mut self, stage: Stage, duration: Duration) {
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.histogram(stage).saturating_record(us.min(HIGHEST_US));
    }

    /// Record the time from `start_ns` to `end_ns` (nanoseconds since the Unix epoch, e.g.
    /// [`ClipMeta::closed_ns`](rollcall_protocol::wire::ClipMeta::closed_ns) and the arrival of
    /// the result). Returns `false`, recording nothing, when `end_ns < start_ns` (clocks of two
    /// machines out of step).
    pub fn record_between_ns(&mut self, stage: Stage, start_ns: u64, end_ns: u64) -> bool {
        match end_ns.checked_sub(start_ns) {
            Some(ns) => {
                self.record(stage, Duration::from_nanos(ns));
                true
            }
            None => false,
        }
    }

    /// Add every value of `other` to this recorder (e.g. to combine sessions).
    pub fn merge(&mut self, other: &LatencyRecorder) {
        for (stage, theirs) in &other.stages {
            let ours = self.histogram(*stage);
            // Same bounds on both sides, so adding cannot run out of range; if it ever did,
            // re-record value by value (clamped) rather than lose the counts.
            if ours.add(theirs).is_err() {
                for value in theirs.iter_recorded() {
                    ours.saturating_record_n(
                        value.value_iterated_to().min(HIGHEST_US),
                        value.count_at_value(),
                    );
                }
            }
        }
    }

    /// Number of values recorded for `stage`.
    pub fn count(&self, stage: Stage) -> u64 {
        self.stages.get(&stage).map_or(0, Histogram::len)
    }

    /// True when nothing was recorded for any stage.
    pub fn is_empty(&self) -> bool {
        self.stages.values().all(Histogram::is_empty)
    }

    /// Percentiles, maximum and mean of `stage`; `None` when nothing was recorded for it.
    pub fn summary(&self, stage: Stage) -> Option<LatencySummary> {
        let h = self.stages.get(&stage).filter(|h| !h.is_empty())?;
        Some(LatencySummary {
            count: h.len(),
            p50_ms: us_to_ms(h.value_at_quantile(0.50)),
            p90_ms: us_to_ms(h.value_at_quantile(0.90)),
            p99_ms: us_to_ms(h.value_at_quantile(0.99)),
            max_ms: us_to_ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        })
    }

    /// Summaries of every stage that has values (serialises as a JSON object keyed by stage).
    pub fn summaries(&self) -> BTreeMap<Stage, LatencySummary> {
        Stage::ALL
            .into_iter()
            .filter_map(|stage| self.summary(stage).map(|s| (stage, s)))
            .collect()
    }

    /// `stage`'s values in `n` equal-width buckets spanning its minimum to its maximum, for a bar
    /// chart: `(upper_ms, count)` per bucket, lowest first (each bucket holds the values below
    /// its upper bound and at or above the previous one's; the last one includes the maximum).
    /// Empty when nothing was recorded or `n` is 0.
    pub fn buckets(&self, stage: Stage, n: usize) -> Vec<(f64, u64)> {
        let Some(h) = self.stages.get(&stage).filter(|h| !h.is_empty()) else {
            return Vec::new();
        };
        if n == 0 {
            return Vec::new();
        }
        let low = h.lowest_equivalent(h.min());
        let high = h.highest_equivalent(h.max());
        let width = (high - low + 1).div_ceil(n as u64).max(1);
        let mut counts = vec![0u64; n];
        for value in h.iter_recorded() {
            let at = h.lowest_equivalent(value.value_iterated_to());
            let index = (at.saturating_sub(low) / width).min(n as u64 - 1) as usize;
            counts[index] += value.count_at_value();
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, count)| (us_to_ms(low + (i as u64 + 1) * width), count))
            .collect()
    }

    fn histogram(&mut self, stage: Stage) -> &mut Histogram<u64> {
        self.stages.entry(stage).or_insert_with(new_histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Within HdrHistogram's precision (3 significant digits: 0.1 %, plus a microsecond).
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_known_values() {
        let mut r = LatencyRecorder::new();
        for v in 1..=1000 {
            r.record(Stage::EndToEnd, ms(v));
        }
        let s = r.summary(Stage::EndToEnd).unwrap();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_ms, 500.0), "{s:?}");
        assert!(close(s.p90_ms, 900.0), "{s:?}");
        assert!(close(s.p99_ms, 990.0), "{s:?}");
        assert!(close(s.max_ms, 1000.0), "{s:?}");
        assert!(close(s.mean_ms, 500.5), "{s:?}");
        assert!(r.summary(Stage::Upload).is_none());
        assert_eq!(r.count(Stage::Upload), 0);
    }

    #[test]
    fn microsecond_resolution_and_clamping() {
        let mut r = LatencyRecorder::new();
        r.record(Stage::Decode, Duration::from_micros(850));
        r.record(Stage::Decode, Duration::from_micros(1));
        let s = r.summary(Stage::Decode).unwrap();
        assert!(close(s.max_ms, 0.850), "{s:?}");
        assert!(close(s.p50_ms, 0.001), "{s:?}");
        r.record(Stage::Upload, Duration::from_secs(3600));
        assert!(close(r.summary(Stage::Upload).unwrap().max_ms, 600_000.0));
        r.record(Stage::Upload, Duration::MAX);
        assert_eq!(r.count(Stage::Upload), 2);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        for v in 1..=100 {
            a.record(Stage::EndToEnd, ms(v));
            a.record(Stage::Detect, ms(10));
        }
        for v in 101..=150 {
            b.record(Stage::EndToEnd, ms(v));
        }
        b.record(Stage::Lookup, ms(2));
        a.merge(&b);
        assert_eq!(a.count(Stage::EndToEnd), 150);
        assert_eq!(a.count(Stage::Detect), 100);
        assert_eq!(a.count(Stage::Lookup), 1);
        let s = a.summary(Stage::EndToEnd).unwrap();
        assert!(close(s.max_ms, 150.0), "{s:?}");
        assert!(close(s.p50_ms, 75.0), "{s:?}");
        // Merging an empty recorder changes nothing; merging into one copies.
        a.merge(&LatencyRecorder::new());
        assert_eq!(a.count(Stage::EndToEnd), 150);
        let mut c = LatencyRecorder::new();
        c.merge(&a);
        assert_eq!(c.summaries(), a.summaries());
    }

    #[test]
    fn summaries_cover_recorded_stages_in_trip_order() {
        let mut r = LatencyRecorder::new();
        assert!(r.is_empty());
        assert!(r.summaries().is_empty());
        r.record(Stage::EndToEnd, ms(700));
        r.record(Stage::Encode, ms(3));
        let all = r.summaries();
        assert_eq!(
            all.keys().copied().collect::<Vec<_>>(),
            [Stage::Encode, Stage::EndToEnd]
        );
        assert!(!r.is_empty());
    }

    #[test]
    fn wall_clock_spans() {
        let mut r = LatencyRecorder::new();
        let closed = 1_700_000_000_000_000_000u64;
        assert!(r.record_between_ns(Stage::EndToEnd, closed, closed + 612_000_000));
        assert!(!r.record_between_ns(Stage::EndToEnd, closed, closed - 1));
        let s = r.summary(Stage::EndToEnd).unwrap();
        assert_eq!(s.count, 1);
        assert!(close(s.p50_ms, 612.0), "{s:?}");
    }

    #[test]
    fn buckets_for_a_bar_chart() {
        let mut r = LatencyRecorder::new();
        for v in [1, 1, 1, 2, 2, 10] {
            r.record(Stage::Delivery, ms(v));
        }
        let b = r.buckets(Stage::Delivery, 3);
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [5, 0, 1]);
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0), "{b:?}");
        assert!(b[2].0 >= 10.0 && b[2].0 < 10.1, "{b:?}");
        assert!(b[0].0 > 1.0 && b[0].0 < 5.0, "{b:?}");

        let mut many = LatencyRecorder::new();
        for v in 0..1000u64 {
            many.record(Stage::EndToEnd, ms(500 + v * 3 % 1500));
        }
        let b = many.buckets(Stage::EndToEnd, 20);
        assert_eq!(b.len(), 20);
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 1000);
        assert!(b.last().unwrap().0 >= 1997.0);

        // One value: everything in the first bucket.
        let mut one = LatencyRecorder::new();
        one.record(Stage::Embed, ms(8));
        let b = one.buckets(Stage::Embed, 4);
        assert_eq!(b[0].1, 1);
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 1);
        assert!(one.buckets(Stage::Embed, 0).is_empty());
        assert!(one.buckets(Stage::Upload, 4).is_empty());
    }

    #[test]
    fn stage_names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(stage.to_string().parse::<Stage>(), Ok(stage));
        }
        assert_eq!("End-To-End".parse::<Stage>(), Ok(Stage::EndToEnd));
        assert!("total".parse::<Stage>().is_err());
    }

    #[test]
    fn summaries_serialise_keyed_by_stage() {
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<LatencySummary>();
        assert_serde::<Stage>();
        let mut r = LatencyRecorder::new();
        r.record(Stage::SpoolWait, ms(12));
        let json = serde_json::to_value(r.summaries()).unwrap();
        assert_eq!(json["spool_wait"]["count"], 1);
        assert!(json["spool_wait"]["p99_ms"].as_f64().unwrap() > 11.9);
    }
}
