//! Identification accuracy on a labelled probe set (`VALDIR/<person>/<image>`): closed-set top-1,
//! open-set accuracy with strangers, false accepts and false rejects.

use serde::Serialize;

/// The outcome of identifying one probe photo.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeResult {
    /// The probe photo.
    pub file: String,
    /// The person the photo shows if they are enrolled; `None` for a stranger.
    pub expected: Option<String>,
    /// The closest enrolled person regardless of threshold (`None`: no face or empty gallery).
    pub closest: Option<String>,
    /// Similarity to `closest`.
    pub similarity: Option<f32>,
    /// The name given at the threshold; `None` is "unknown".
    pub named: Option<String>,
    /// Detection + alignment + embedding time for this photo, milliseconds.
    pub millis: f64,
}

/// One probe that came out wrong in the open-set protocol.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    /// The probe photo.
    pub file: String,
    /// Person id, or `unknown` for a stranger.
    pub expected: String,
    /// Person id, or `unknown`.
    pub got: String,
    /// Similarity to the closest person, if any.
    pub similarity: Option<f32>,
}

/// Accuracy figures; rates are fractions 0..1 (NaN where the denominator is zero).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvaluationReport {
    /// Enrolled probes whose closest person is right, ignoring the threshold.
    pub closed_set_top1: f64,
    /// All probes answered right at the threshold (strangers must come out unknown).
    pub open_set_accuracy: f64,
    /// Probes given a name.
    pub named_rate: f64,
    /// Strangers named as someone.
    pub false_accept_rate: f64,
    /// Enrolled probes that came out unknown.
    pub false_reject_rate: f64,
    /// Enrolled probes named as somebody else.
    pub misidentification_rate: f64,
    /// Probe photos evaluated.
    pub probes: usize,
    /// Of those, photos of enrolled people.
    pub enrolled_probes: usize,
    /// Of those, photos of strangers.
    pub stranger_probes: usize,
    /// Median detection + embedding time per photo, milliseconds.
    pub ms_per_image_median: f64,
    /// The match threshold used.
    pub threshold: f32,
    /// Every probe that came out wrong.
    pub failures: Vec<Failure>,
}

fn rate(count: usize, total: usize) -> f64 {
    if total == 0 {
        f64::NAN
    } else {
        count as f64 / total as f64
    }
}

/// Median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Compute the report from per-probe results.
pub fn summarize(results: &[ProbeResult], threshold: f32) -> EvaluationReport {
    let enrolled: Vec<&ProbeResult> = results.iter().filter(|r| r.expected.is_some()).collect();
    let strangers: Vec<&ProbeResult> = results.iter().filter(|r| r.expected.is_none()).collect();
    let top1 = enrolled.iter().filter(|r| r.closest == r.expected).count();
    let correct = results.iter().filter(|r| r.named == r.expected).count();
    let named = results.iter().filter(|r| r.named.is_some()).count();
    let false_accepts = strangers.iter().filter(|r| r.named.is_some()).count();
    let false_rejects = enrolled.iter().filter(|r| r.named.is_none()).count();
    let misidentified = enrolled
        .iter()
        .filter(|r| r.named.is_some() && r.named != r.expected)
        .count();
    let label = |p: &Option<String>| p.clone().unwrap_or_else(|| "unknown".to_string());
    let failures = results
        .iter()
        .filter(|r| r.named != r.expected)
        .map(|r| Failure {
            file: r.file.clone(),
            expected: label(&r.expected),
            got: label(&r.named),
            similarity: r.similarity,
        })
        .collect();
    let times: Vec<f64> = results.iter().map(|r| r.millis).collect();
    EvaluationReport {
        closed_set_top1: rate(top1, enrolled.len()),
        open_set_accuracy: rate(correct, results.len()),
        named_rate: rate(named, results.len()),
        false_accept_rate: rate(false_accepts, strangers.len()),
        false_reject_rate: rate(false_rejects, enrolled.len()),
        misidentification_rate: rate(misidentified, enrolled.len()),
        probes: results.len(),
        enrolled_probes: enrolled.len(),
        stranger_probes: strangers.len(),
        ms_per_image_median: median(&times),
        threshold,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(expected: Option<&str>, closest: Option<&str>, named: Option<&str>) -> ProbeResult {
        ProbeResult {
            file: "f".into(),
            expected: expected.map(String::from),
            closest: closest.map(String::from),
            similarity: Some(0.5),
            named: named.map(String::from),
            millis: 10.0,
        }
    }

    #[test]
    fn rates_follow_the_open_set_protocol() {
        let results = vec![
            probe(Some("ada"), Some("ada"), Some("ada")), // right
            probe(Some("ada"), Some("ada"), None),        // false reject, top-1 right
            probe(Some("bob"), Some("ada"), Some("ada")), // misidentified
            probe(None, Some("bob"), None),               // stranger rejected: right
            probe(None, Some("bob"), Some("bob")),        // false accept
        ];
        let r = summarize(&results, 0.4);
        assert_eq!(r.probes, 5);
        assert!((r.closed_set_top1 - 2.0 / 3.0).abs() < 1e-9);
        assert!((r.open_set_accuracy - 2.0 / 5.0).abs() < 1e-9);
        assert!((r.false_accept_rate - 0.5).abs() < 1e-9);
        assert!((r.false_reject_rate - 1.0 / 3.0).abs() < 1e-9);
        assert!((r.misidentification_rate - 1.0 / 3.0).abs() < 1e-9);
        assert!((r.named_rate - 3.0 / 5.0).abs() < 1e-9);
        assert_eq!(r.failures.len(), 3);
        assert_eq!(r.failures[0].got, "unknown");
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert!(summarize(&[], 0.4).false_accept_rate.is_nan());
    }
}
