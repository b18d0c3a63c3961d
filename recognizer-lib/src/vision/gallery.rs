//! Matching embeddings against enrolled people: per-person mean templates, cosine similarity, a
//! threshold below which a face is "unknown", and calibration of that threshold from enrolment data.

use std::collections::BTreeMap;

use super::embed::l2_normalised;
use crate::error::RecognizerError;

/// Threshold used when enrolment data cannot support a calibration (too few people or photos).
/// Close to the best value measured for `fr_feature` on public faces (see docs/accuracy.md).
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.40;

/// Calibrated thresholds are kept inside this range: outside it the enrolment set is too small or
/// odd to be trusted over the default.
pub const THRESHOLD_RANGE: (f32, f32) = (0.30, 0.55);

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Mean of several unit embeddings, re-normalised. `None` for an empty or degenerate set.
pub fn mean_embedding(embeddings: &[&[f32]]) -> Option<Vec<f32>> {
    let first = embeddings.first()?;
    let mut sum = vec![0f32; first.len()];
    for e in embeddings {
        if e.len() != sum.len() {
            return None;
        }
        for (s, x) in sum.iter_mut().zip(e.iter()) {
            *s += x;
        }
    }
    l2_normalised(sum)
}

/// An enrolment photo whose face is less similar than this to the mean of the person's other
/// photos shows somebody else (a wrong largest face, a poster, a false detection): genuine pairs
/// score far above it and even the closest strangers average around 0.3.
pub const OUTLIER_SIMILARITY: f32 = 0.25;

/// Mean template of one person's photo embeddings, leaving out photos that do not look like the
/// others (see [`OUTLIER_SIMILARITY`]). Needs three photos to outvote one; returns the mean and the
/// indices left out.
pub fn robust_mean_embedding(embeddings: &[&[f32]]) -> Option<(Vec<f32>, Vec<usize>)> {
    let mut left_out = Vec::new();
    if embeddings.len() >= 3 {
        for (i, e) in embeddings.iter().enumerate() {
            let others: Vec<&[f32]> = embeddings
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| *o)
                .collect();
            if let Some(mean) = mean_embedding(&others) {
                if cosine(e, &mean) < OUTLIER_SIMILARITY {
                    left_out.push(i);
                }
            }
        }
        // Never discard the majority: then the photos disagree and nobody can tell who is right.
        if left_out.len() * 2 >= embeddings.len() {
            left_out.clear();
        }
    }
    let kept: Vec<&[f32]> = embeddings
        .iter()
        .enumerate()
        .filter(|(i, _)| !left_out.contains(i))
        .map(|(_, e)| *e)
        .collect();
    mean_embedding(&kept).map(|mean| (mean, left_out))
}

/// One enrolled person's template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The person's id.
    pub person_id: String,
    /// Unit-length mean embedding.
    pub embedding: Vec<f32>,
    /// Photos the template was made from.
    pub image_count: u32,
}

/// A person the face resembles, with the cosine similarity.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    /// The person's id.
    pub person_id: String,
    /// Cosine similarity of the face to their template.
    pub similarity: f32,
}

/// The verdict for one face.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    /// Similar enough to an enrolled person.
    Known(Candidate),
    /// Nobody is similar enough; `closest` is the best candidate, if anyone is enrolled.
    Unknown {
        /// The most similar enrolled person, below the threshold.
        closest: Option<Candidate>,
    },
}

impl Identity {
    /// The recognised person's id, if any.
    pub fn person_id(&self) -> Option<&str> {
        match self {
            Identity::Known(c) => Some(&c.person_id),
            Identity::Unknown { .. } => None,
        }
    }
    /// Similarity to the closest enrolled person (known or not).
    pub fn similarity(&self) -> Option<f32> {
        match self {
            Identity::Known(c) => Some(c.similarity),
            Identity::Unknown { closest } => closest.as_ref().map(|c| c.similarity),
        }
    }
}

/// All enrolled templates plus the decision threshold.
#[derive(Clone, Debug, Default)]
pub struct Gallery {
    templates: Vec<Template>,
    dimension: usize,
    threshold: f32,
}

impl Gallery {
    /// A gallery of `templates` (each re-normalised) deciding at `threshold`.
    pub fn new(templates: Vec<Template>, threshold: f32) -> Result<Gallery, RecognizerError> {
        let dimension = templates.first().map_or(0, |t| t.embedding.len());
        let mut normalised = Vec::with_capacity(templates.len());
        for mut t in templates {
            if t.embedding.len() != dimension {
                return Err(RecognizerError::EmbeddingDimension {
                    expected: dimension,
                    actual: t.embedding.len(),
                });
            }
            t.embedding =
                l2_normalised(t.embedding).ok_or_else(|| RecognizerError::ModelOutput {
                    model: "gallery".to_string(),
                    message: format!("template of {} is zero or not finite", t.person_id),
                })?;
            normalised.push(t);
        }
        Ok(Gallery {
            templates: normalised,
            dimension,
            threshold,
        })
    }

    /// Enrolled templates.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }
    /// Number of enrolled people.
    pub fn len(&self) -> usize {
        self.templates.len()
    }
    /// True when nobody is enrolled.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
    /// Cosine similarity at or above which a face is named.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
    /// Change the decision threshold.
    pub fn set_threshold(&mut self, threshold: f32) {
        self.threshold = threshold;
    }

    /// The `k` most similar people, most similar first.
    pub fn top_k(&self, embedding: &[f32], k: usize) -> Vec<Candidate> {
        if embedding.len() != self.dimension {
            return Vec::new();
        }
        let mut scored: Vec<Candidate> = self
            .templates
            .iter()
            .map(|t| Candidate {
                person_id: t.person_id.clone(),
                similarity: cosine(embedding, &t.embedding),
            })
            .collect();
        scored.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        scored.truncate(k);
        scored
    }

    /// Name the face, or say it is unknown.
    pub fn identify(&self, embedding: &[f32]) -> Identity {
        match self.top_k(embedding, 1).into_iter().next() {
            Some(best) if best.similarity >= self.threshold => Identity::Known(best),
            closest => Identity::Unknown { closest },
        }
    }
}

/// How a threshold was chosen, for reports.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// The threshold chosen.
    pub threshold: f32,
    /// Leave-one-out scores of enrolled photos against their own person.
    pub genuine_pairs: usize,
    /// Scores of enrolled photos against the closest other person.
    pub impostor_pairs: usize,
    /// Equal-weight error rate (false rejects + false accepts) / 2 on the enrolment data at `threshold`.
    pub training_error: f32,
    /// Why the default was used instead, if it was.
    pub fallback: Option<String>,
}

/// Choose the decision threshold from enrolment photos: `samples` are (person, unit embedding).
///
/// Genuine scores: each photo against the mean of its person's *other* photos (leave one out).
/// Impostor scores: each photo against the closest *other* person's mean (what a stranger looks
/// like to the gallery). The threshold minimises the sum of both error rates; when a range of
/// thresholds ties, its middle is taken. The result is clamped to [`THRESHOLD_RANGE`]; with fewer
/// than two people or no person with two photos, [`DEFAULT_MATCH_THRESHOLD`] is returned.
pub fn calibrate_threshold(samples: &[(String, Vec<f32>)]) -> Calibration {
    let mut by_person: BTreeMap<&str, Vec<&[f32]>> = BTreeMap::new();
    for (person, embedding) in samples {
        by_person.entry(person).or_default().push(embedding);
    }
    let fallback = |reason: &str| Calibration {
        threshold: DEFAULT_MATCH_THRESHOLD,
        genuine_pairs: 0,
        impostor_pairs: 0,
        training_error: f32::NAN,
        fallback: Some(reason.to_string()),
    };
    if by_person.len() < 2 {
        return fallback("fewer than two people enrolled");
    }
    let means: Vec<(&str, Vec<f32>)> = by_person
        .iter()
        .filter_map(|(p, es)| mean_embedding(es).map(|m| (*p, m)))
        .collect();

    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (person, embeddings) in &by_person {
        for (i, e) in embeddings.iter().enumerate() {
            if embeddings.len() >= 2 {
                let others: Vec<&[f32]> = embeddings
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, o)| *o)
                    .collect();
                if let Some(mean) = mean_embedding(&others) {
                    genuine.push(cosine(e, &mean));
                }
            }
            let closest_other = means
                .iter()
                .filter(|(p, _)| p != person)
                .map(|(_, m)| cosine(e, m))
                .fold(f32::NEG_INFINITY, f32::max);
            if closest_other.is_finite() {
                impostor.push(closest_other);
            }
        }
    }
    if genuine.is_empty() {
        return fallback("no enrolled person has two or more usable photos");
    }
    let (threshold, error) = best_threshold(&genuine, &impostor);
    let clamped = threshold.clamp(THRESHOLD_RANGE.0, THRESHOLD_RANGE.1);
    Calibration {
        threshold: clamped,
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        training_error: error,
        fallback: (clamped != threshold).then(|| {
            format!(
                "calibrated {threshold:.3} is outside {:.2}..{:.2}; clamped",
                THRESHOLD_RANGE.0, THRESHOLD_RANGE.1
            )
        }),
    }
}

/// Threshold minimising (false-reject rate + false-accept rate) / 2; middle of the best range.
///
/// With the observed scores sorted as `cuts`, every threshold in `(cuts[k-1], cuts[k]]` makes the
/// same decisions, so each such interval is scored once (at its upper end) and the answer is the
/// middle of the best interval (the highest one on ties).
fn best_threshold(genuine: &[f32], impostor: &[f32]) -> (f32, f32) {
    let mut cuts: Vec<f32> = genuine.iter().chain(impostor).copied().collect();
    cuts.sort_by(f32::total_cmp);
    cuts.dedup();
    let Some(&top) = cuts.last() else {
        return (DEFAULT_MATCH_THRESHOLD, f32::NAN);
    };
    let error_at = |t: f32| {
        let fr = genuine.iter().filter(|s| **s < t).count() as f32 / genuine.len().max(1) as f32;
        let fa = impostor.iter().filter(|s| **s >= t).count() as f32 / impostor.len().max(1) as f32;
        (fr + fa) / 2.0
    };
    // Interval k's representative threshold: cuts[k], or above everything for the last one.
    let representative = |k: usize| cuts.get(k).copied().unwrap_or(top + 0.05);
    let errors: Vec<f32> = (0..=cuts.len())
        .map(|k| error_at(representative(k)))
        .collect();
    let best = errors.iter().copied().fold(f32::INFINITY, f32::min);
    // Among equally good ranges take the highest: at equal total error, fewer false accepts.
    let last = errors.iter().rposition(|e| *e == best).unwrap_or(0);
    let mut first = last;
    while first > 0 && errors[first - 1] == best {
        first -= 1;
    }
    let low = if first == 0 {
        cuts[0] - 0.05
    } else {
        cuts[first - 1]
    };
    let high = representative(last);
    ((low + high) / 2.0, best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        l2_normalised(v.to_vec()).unwrap()
    }

    fn gallery(threshold: f32) -> Gallery {
        Gallery::new(
            vec![
                Template {
                    person_id: "ada".into(),
                    embedding: vec![1.0, 0.0, 0.0],
                    image_count: 1,
                },
                Template {
                    person_id: "bob".into(),
                    embedding: vec![0.0, 2.0, 0.0],
                    image_count: 1,
                },
            ],
            threshold,
        )
        .unwrap()
    }

    #[test]
    fn cosine_of_unit_vectors() {
        assert!((cosine(&unit(&[1.0, 1.0]), &unit(&[1.0, 0.0])) - 0.70710677).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
    }

    #[test]
    fn mean_is_normalised_and_rejects_mixed_sizes() {
        let m = mean_embedding(&[&[1.0, 0.0], &[0.0, 1.0]]).unwrap();
        assert!((m[0] - m[1]).abs() < 1e-6 && (cosine(&m, &m) - 1.0).abs() < 1e-6);
        assert!(mean_embedding(&[&[1.0, 0.0], &[1.0]]).is_none());
        assert!(mean_embedding(&[]).is_none());
    }

    #[test]
    fn robust_mean_leaves_out_a_photo_of_someone_else() {
        let ada = [
            unit(&[1.0, 0.1, 0.0]),
            unit(&[1.0, 0.0, 0.1]),
            unit(&[0.9, 0.1, 0.1]),
        ];
        let stranger = unit(&[0.0, 0.0, 1.0]);
        let mut all: Vec<&[f32]> = ada.iter().map(|v| v.as_slice()).collect();
        all.push(&stranger);
        let (mean, left_out) = robust_mean_embedding(&all).unwrap();
        assert_eq!(left_out, vec![3]);
        assert!(cosine(&mean, &ada[0]) > 0.99);
        // Two photos cannot outvote each other.
        let (_, left_out) = robust_mean_embedding(&[&ada[0], &stranger]).unwrap();
        assert!(left_out.is_empty());
    }

    #[test]
    fn identify_names_above_threshold_and_unknown_below() {
        let g = gallery(0.5);
        let near_bob = unit(&[0.2, 1.0, 0.1]);
        assert_eq!(g.identify(&near_bob).person_id(), Some("bob"));
        let stranger = unit(&[0.3, 0.3, 1.0]);
        match g.identify(&stranger) {
            Identity::Unknown { closest: Some(c) } => assert!(c.similarity < 0.5),
            other => panic!("expected unknown, got {other:?}"),
        }
        let top = g.top_k(&near_bob, 2);
        assert_eq!(top[0].person_id, "bob");
        assert_eq!(top[1].person_id, "ada");
        assert!(g.top_k(&[1.0], 2).is_empty(), "wrong dimension");
    }

    #[test]
    fn gallery_rejects_mixed_dimensions() {
        let result = Gallery::new(
            vec![
                Template {
                    person_id: "a".into(),
                    embedding: vec![1.0, 0.0],
                    image_count: 1,
                },
                Template {
                    person_id: "b".into(),
                    embedding: vec![1.0, 0.0, 0.0],
                    image_count: 1,
                },
            ],
            0.4,
        );
        assert!(result.is_err());
    }

    #[test]
    fn threshold_separates_genuine_from_impostor_scores() {
        let (t, error) = best_threshold(&[0.6, 0.7, 0.8], &[0.1, 0.2, 0.3]);
        assert_eq!(error, 0.0);
        assert!(t > 0.3 && t < 0.6, "{t}");
        assert!((t - 0.45).abs() < 0.01, "middle of the gap: {t}");
        // Overlap: the best cut still minimises the summed error.
        let (t, error) = best_threshold(&[0.35, 0.6, 0.7], &[0.1, 0.4, 0.2]);
        assert!(error > 0.0 && error < 0.25, "{error}");
        assert!(
            (t - 0.5).abs() < 1e-6,
            "the higher of two equal ranges: {t}"
        );
    }

    #[test]
    fn calibration_uses_leave_one_out_and_falls_back_without_data() {
        // Two people, three noisy photos each, well apart.
        let mut samples = Vec::new();
        for (person, axis) in [("ada", 0usize), ("bob", 1usize)] {
            for noise in [0.1f32, 0.2, 0.3] {
                let mut v = vec![noise, noise * 0.5, 0.2];
                v[axis] = 1.0;
                samples.push((person.to_string(), unit(&v)));
            }
        }
        let c = calibrate_threshold(&samples);
        assert!(c.fallback.is_none() || c.fallback.as_deref().unwrap().contains("clamped"));
        assert_eq!(c.genuine_pairs, 6);
        assert_eq!(c.impostor_pairs, 6);
        assert!(c.threshold >= THRESHOLD_RANGE.0 && c.threshold <= THRESHOLD_RANGE.1);

        let single = vec![
            ("ada".to_string(), unit(&[1.0, 0.0])),
            ("bob".to_string(), unit(&[0.0, 1.0])),
        ];
        let c = calibrate_threshold(&single);
        assert_eq!(c.threshold, DEFAULT_MATCH_THRESHOLD);
        assert!(c.fallback.is_some());
        assert_eq!(calibrate_threshold(&[]).threshold, DEFAULT_MATCH_THRESHOLD);
    }
}
