//! Matching embeddings against enrolled people: per-person mean templates, cosine similarity, a
//! threshold below which a face is "unknown", and calibration of that threshold from enrolment data.

use std::collections::BTreeMap;

use super::embed::l2_normalised;
use crate::error::RecognizerError;
use crate::vision::gallery::compact::CompactTemplates;

mod compact;

/// Threshold used when enrolment data cannot support a calibration (too few people or photos).
/// Close to the best value measured for `fr_feature` on public faces (see docs/accuracy.md).
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.40;

/// Calibrated thresholds are kept inside this range: outside it the enrolment set is too small or
/// odd to be trusted over the default.
pub const THRESHOLD_RANGE: (f32, f32) = (0.30, 0.55);

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

/// Lanes of the dot product: independent partial sums the compiler keeps in vector registers
/// (floating-point addition is not reassociated for us, so one running sum would not vectorise).
const LANES: usize = 16;

/// Dot product of two equally long slices (extra elements of the longer one are ignored).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_blocks.zip(b_blocks) {
        // Fixed-size blocks: the loop is unrolled into vector multiply-adds.
        if let (Ok(x), Ok(y)) = (<&[f32; LANES]>::try_from(x), <&[f32; LANES]>::try_from(y)) {
            for ((sum, x), y) in acc.iter_mut().zip(x).zip(y) {
                *sum += x * y;
            }
        }
    }
    acc.iter().sum::<f32>() + tail
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

/// Faces scored together against the gallery: each block of template rows is read from memory
/// once for all of them. A 30,000-person gallery of 512-d templates is 61 MB, far more than the
/// caches hold, so a lone face pays for streaming it; a batch shares that cost.
const QUERY_BATCH: usize = 8;

/// Template rows scored per block: small enough to stay in the L1/L2 cache while every face of
/// the batch is scored against them.
const ROW_BLOCK: usize = 64;

/// Galleries of at least this many people are searched through their compact int8 copy (see
/// [`Gallery::identify`]); smaller ones exactly, template by template. Measured with `rollcall
/// bench directory` (docs/benchmarks.md): the two-step search pays from a few hundred people.
pub const COMPACT_SEARCH_MIN_PEOPLE: usize = 256;

/// All enrolled templates plus the decision threshold.
///
/// The templates are one contiguous row-major matrix (one unit-length row per person), so a
/// search is one matrix-vector product (a matrix-matrix product for [`Gallery::identify_batch`])
/// over memory read front to back. From [`COMPACT_SEARCH_MIN_PEOPLE`] people on, the gallery also
/// keeps an int8 copy of the matrix (a quarter of its size) to find candidates quickly; every
/// verdict and similarity is still computed on the f32 templates (see [`Gallery::identify`]).
#[derive(Clone, Debug, Default)]
pub struct Gallery {
    person_ids: Vec<String>,
    image_counts: Vec<u32>,
    /// `person_ids.len() * dimension` values, row `i` is person `i`'s template.
    matrix: Vec<f32>,
    dimension: usize,
    threshold: f32,
    /// Template rows whose person may not be named (no consent): a face matching one of them
    /// comes out unknown, without a closest candidate. Kept as templates rather than dropped,
    /// so such a face cannot be named as the next most similar person instead.
    withheld: std::collections::HashSet<String>,
    /// The int8 copy of `matrix` searched first (galleries of [`COMPACT_SEARCH_MIN_PEOPLE`] or
    /// more people).
    compact: Option<CompactTemplates>,
}

impl Gallery {
    /// A gallery of `templates` (each re-normalised) deciding at `threshold`.
    pub fn new(templates: Vec<Template>, threshold: f32) -> Result<Gallery, RecognizerError> {
        let dimension = templates.first().map_or(0, |t| t.embedding.len());
        let mut gallery = Gallery {
            person_ids: Vec::with_capacity(templates.len()),
            image_counts: Vec::with_capacity(templates.len()),
            matrix: Vec::with_capacity(templates.len() * dimension),
            dimension,
            threshold,
            withheld: Default::default(),
            compact: None,
        };
        for t in templates {
            if t.embedding.len() != dimension {
                return Err(RecognizerError::EmbeddingDimension {
                    expected: dimension,
                    actual: t.embedding.len(),
                });
            }
            let row = l2_normalised(t.embedding).ok_or_else(|| RecognizerError::ModelOutput {
                model: "gallery".to_string(),
                message: format!("template of {} is zero or not finite", t.person_id),
            })?;
            gallery.matrix.extend_from_slice(&row);
            gallery.person_ids.push(t.person_id);
            gallery.image_counts.push(t.image_count);
        }
        if gallery.len() >= COMPACT_SEARCH_MIN_PEOPLE {
            gallery.compact = CompactTemplates::new(&gallery.matrix, dimension);
        }
        Ok(gallery)
    }

    /// Enrolled people's ids, in template order.
    pub fn person_ids(&self) -> &[String] {
        &self.person_ids
    }
    /// Whether `person_id` has a template.
    pub fn contains(&self, person_id: &str) -> bool {
        self.person_ids.iter().any(|id| id == person_id)
    }
    /// Whether a face may be named `person_id`: they have a template and are not withheld.
    pub fn can_name(&self, person_id: &str) -> bool {
        !self.is_withheld(person_id) && self.contains(person_id)
    }
    /// The `index`th template (unit length) and its person, if there is one.
    pub fn template(&self, index: usize) -> Option<Template> {
        let row = self.row(index)?;
        Some(Template {
            person_id: self.person_ids[index].clone(),
            embedding: row.to_vec(),
            image_count: self.image_counts[index],
        })
    }
    /// Length of the templates (0 when empty).
    pub fn dimension(&self) -> usize {
        self.dimension
    }
    /// Number of enrolled people.
    pub fn len(&self) -> usize {
        self.person_ids.len()
    }
    /// True when nobody is enrolled.
    pub fn is_empty(&self) -> bool {
        self.person_ids.is_empty()
    }
    /// Bytes held by the templates (the matrix alone; ids and counts are small beside it).
    pub fn matrix_bytes(&self) -> usize {
        self.matrix.len() * std::mem::size_of::<f32>()
    }
    /// Bytes held by the int8 copy of the templates used to find candidates (0 when the
    /// gallery is searched exactly: fewer than [`COMPACT_SEARCH_MIN_PEOPLE`] people).
    pub fn compact_bytes(&self) -> usize {
        self.compact.as_ref().map_or(0, CompactTemplates::bytes)
    }
    /// Cosine similarity at or above which a face is named.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
    /// Change the decision threshold.
    pub fn set_threshold(&mut self, threshold: f32) {
        self.threshold = threshold;
    }

    fn row(&self, index: usize) -> Option<&[f32]> {
        let start = index.checked_mul(self.dimension)?;
        self.matrix.get(start..start + self.dimension)
    }

    /// Similarity of `embedding` to every template, in template order (empty when the
    /// dimension differs).
    pub fn scores(&self, embedding: &[f32]) -> Vec<f32> {
        self.scores_batch(&[embedding]).pop().unwrap_or_default()
    }

    /// [`scores`](Self::scores) of several faces, streaming the templates once per
    /// [`QUERY_BATCH`] faces. A face of the wrong dimension gets an empty score list.
    pub fn scores_batch(&self, embeddings: &[&[f32]]) -> Vec<Vec<f32>> {
        let mut out: Vec<Vec<f32>> = embeddings
            .iter()
            .map(|e| {
                if e.len() == self.dimension {
                    vec![0f32; self.len()]
                } else {
                    Vec::new()
                }
            })
            .collect();
        if self.dimension == 0 {
            return out;
        }
        let valid: Vec<usize> = (0..embeddings.len())
            .filter(|i| !out[*i].is_empty())
            .collect();
        for batch in valid.chunks(QUERY_BATCH) {
            for (block_index, block) in self.matrix.chunks(ROW_BLOCK * self.dimension).enumerate() {
                let first_row = block_index * ROW_BLOCK;
                for &query in batch {
                    let q = embeddings[query];
                    let scores = &mut out[query][first_row..];
                    for (score, row) in scores.iter_mut().zip(block.chunks_exact(self.dimension)) {
                        *score = dot(q, row);
                    }
                }
            }
        }
        out
    }

    /// The `k` most similar people, most similar first.
    ///
    /// Exactly the `k` best of [`scores`](Self::scores) (ties: the earlier template first),
    /// found through the compact copy when the gallery has one (see [`identify`](Self::identify)).
    pub fn top_k(&self, embedding: &[f32], k: usize) -> Vec<Candidate> {
        self.top_k_batch(&[embedding], k).pop().unwrap_or_default()
    }

    /// [`top_k`](Self::top_k) of several faces, reading the templates once per
    /// [`QUERY_BATCH`] faces.
    fn top_k_batch(&self, embeddings: &[&[f32]], k: usize) -> Vec<Vec<Candidate>> {
        let Some(compact) = &self.compact else {
            return self.top_k_batch_exact(embeddings, k);
        };
        let mut out: Vec<Option<Vec<Candidate>>> = vec![None; embeddings.len()];
        let quantised: Vec<(usize, compact::CompactQuery)> = embeddings
            .iter()
            .enumerate()
            .filter_map(|(i, e)| compact.quantise(e).map(|q| (i, q)))
            .collect();
        for batch in quantised.chunks(QUERY_BATCH) {
            let queries: Vec<&compact::CompactQuery> = batch.iter().map(|(_, q)| q).collect();
            let approximate = compact.approximate_batch(&queries);
            for ((face, query), approximate) in batch.iter().zip(&approximate) {
                let embedding = embeddings[*face];
                // Only the candidates are scored exactly, with the same dot product as
                // `scores`, so their scores (and the ranking below) are bit for bit the same.
                let rescored = compact
                    .candidates(query, approximate, k)
                    .into_iter()
                    .filter_map(|row| self.row(row).map(|t| (row, dot(embedding, t))));
                out[*face] = Some(self.best_of(rescored, k));
            }
        }
        // Faces the compact copy cannot take (wrong dimension, zero, not finite) are searched
        // exactly, which also gives them the same answer as a gallery without the copy.
        let rest: Vec<usize> = (0..embeddings.len())
            .filter(|i| out[*i].is_none())
            .collect();
        let rest_embeddings: Vec<&[f32]> = rest.iter().map(|i| embeddings[*i]).collect();
        for (i, ranked) in rest
            .into_iter()
            .zip(self.top_k_batch_exact(&rest_embeddings, k))
        {
            out[i] = Some(ranked);
        }
        out.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// [`top_k_batch`](Self::top_k_batch) from every template's exact score (the definition
    /// the compact search must reproduce).
    fn top_k_batch_exact(&self, embeddings: &[&[f32]], k: usize) -> Vec<Vec<Candidate>> {
        self.scores_batch(embeddings)
            .iter()
            .map(|scores| self.best_of(scores.iter().copied().enumerate(), k))
            .collect()
    }

    /// The `k` best of (template index, score) pairs, most similar first; equal scores in
    /// template order.
    fn best_of(&self, scored: impl Iterator<Item = (usize, f32)>, k: usize) -> Vec<Candidate> {
        let candidate = |(i, similarity): (usize, f32)| Candidate {
            person_id: self.person_ids[i].clone(),
            similarity,
        };
        if k == 1 {
            // The common case (identify): one pass, no list.
            let best = scored.fold(None, |best: Option<(usize, f32)>, (i, s)| match best {
                Some((_, b)) if b >= s => best,
                _ => Some((i, s)),
            });
            return best.map(candidate).into_iter().collect();
        }
        let mut best: Vec<(usize, f32)> = scored.collect();
        let k = k.min(best.len());
        if k == 0 {
            return Vec::new();
        }
        let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k < best.len() {
            best.select_nth_unstable_by(k - 1, by_score);
            best.truncate(k);
        }
        best.sort_by(by_score);
        best.into_iter().map(candidate).collect()
    }

    /// Never name the people of `person_ids` (e.g. no consent): a face matching one of them
    /// is [`Identity::Unknown`] with no closest candidate. Returns how many templates that
    /// withholds.
    pub fn withhold(&mut self, person_ids: &std::collections::HashSet<String>) -> usize {
        self.withheld = self
            .person_ids
            .iter()
            .filter(|id| person_ids.contains(*id))
            .cloned()
            .collect();
        self.withheld.len()
    }

    fn is_withheld(&self, person_id: &str) -> bool {
        self.withheld.contains(person_id)
    }

    /// The verdict for one face given its most similar person.
    fn decide(&self, best: Option<Candidate>) -> Identity {
        if best
            .as_ref()
            .is_some_and(|b| self.is_withheld(&b.person_id))
        {
            return Identity::Unknown { closest: None };
        }
        match best {
            Some(best) if best.similarity >= self.threshold => Identity::Known(best),
            closest => Identity::Unknown { closest },
        }
    }

    /// Name the face, or say it is unknown.
    ///
    /// The verdict is the one of the exact search (the most similar template by f32 cosine,
    /// the earlier one on a tie, against the threshold). Galleries with a compact copy find it
    /// in two steps: every template is scored on the int8 copy, each approximate score with a
    /// proven bound on its error, and only the templates whose upper bound reaches the best
    /// lower bound are scored exactly; the others cannot be the best (docs/accuracy.md).
    pub fn identify(&self, embedding: &[f32]) -> Identity {
        self.identify_batch(&[embedding])
            .pop()
            .unwrap_or(Identity::Unknown { closest: None })
    }

    /// [`identify`](Self::identify) by scoring every template exactly (no compact copy): the
    /// reference the two-step search reproduces, kept for benchmarks and checks.
    pub fn identify_exact(&self, embedding: &[f32]) -> Identity {
        self.decide(
            self.top_k_batch_exact(&[embedding], 1)
                .pop()
                .and_then(|best| best.into_iter().next()),
        )
    }

    /// [`identify`](Self::identify) every face of a batch (e.g. all faces of a frame), reading
    /// the templates once per [`QUERY_BATCH`] faces instead of once per face.
    pub fn identify_batch(&self, embeddings: &[&[f32]]) -> Vec<Identity> {
        self.top_k_batch(embeddings, 1)
            .into_iter()
            .map(|best| self.decide(best.into_iter().next()))
            .collect()
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

/// Most enrolment photos scored as impostors in one calibration. Each is compared with every
/// enrolled person, so the work grows with photos x people: beyond this many photos an evenly
/// spaced subset (every person's photos in turn, so no group is left out) is scored. 4,000
/// impostor scores place the threshold within a fraction of a percent of the false-accept rate,
/// and against a 30,000-person gallery they take seconds instead of the better part of an hour.
pub const MAX_IMPOSTOR_PROBES: usize = 4000;

/// Choose the decision threshold from enrolment photos: `samples` are (person, unit embedding).
///
/// Genuine scores: each photo against the mean of its person's *other* photos (leave one out).
/// Impostor scores: each photo against the closest *other* person's mean among *everyone*
/// enrolled -- what a stranger's face meets at recognition time, so the threshold rises with the
/// gallery: the more people, the more likely one of them resembles any given face (see
/// docs/accuracy.md). At most [`MAX_IMPOSTOR_PROBES`] photos are scored as impostors. The
/// threshold minimises the sum of both error rates; when a range of thresholds ties, its middle
/// is taken. The result is clamped to [`THRESHOLD_RANGE`]; with fewer than two people or no
/// person with two photos, [`DEFAULT_MATCH_THRESHOLD`] is returned.
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
    for embeddings in by_person.values() {
        if embeddings.len() < 2 {
            continue;
        }
        for (i, e) in embeddings.iter().enumerate() {
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
    }
    let probes: Vec<(&str, &[f32])> = by_person
        .iter()
        .flat_map(|(p, es)| es.iter().map(move |e| (*p, *e)))
        .collect();
    let impostor = closest_other_scores(&means, &spread_subset(&probes, MAX_IMPOSTOR_PROBES));
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

/// At most `limit` items, evenly spaced over `items` (all of them when there are few enough).
fn spread_subset<T: Copy>(items: &[T], limit: usize) -> Vec<T> {
    if items.len() <= limit {
        return items.to_vec();
    }
    (0..limit).map(|i| items[i * items.len() / limit]).collect()
}

/// For each probe (person, embedding): its similarity to the closest mean of another person,
/// searched over all `means` as one matrix (the probes split between the cores).
fn closest_other_scores(means: &[(&str, Vec<f32>)], probes: &[(&str, &[f32])]) -> Vec<f32> {
    let dimension = means.first().map_or(0, |(_, m)| m.len());
    let gallery = Gallery {
        person_ids: means.iter().map(|(p, _)| p.to_string()).collect(),
        image_counts: vec![0; means.len()],
        matrix: means
            .iter()
            .filter(|(_, m)| m.len() == dimension)
            .flat_map(|(_, m)| m.iter().copied())
            .collect(),
        dimension,
        threshold: 0.0,
        withheld: Default::default(),
        compact: None,
    };
    if gallery.matrix.len() != means.len() * dimension {
        // Mixed dimensions: nothing sensible to compare.
        return Vec::new();
    }
    let index: std::collections::HashMap<&str, usize> = means
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (*p, i))
        .collect();
    let closest = |chunk: &[(&str, &[f32])]| -> Vec<f32> {
        let mut out = Vec::with_capacity(chunk.len());
        for batch in chunk.chunks(QUERY_BATCH) {
            let embeddings: Vec<&[f32]> = batch.iter().map(|(_, e)| *e).collect();
            for ((person, _), scores) in batch.iter().zip(gallery.scores_batch(&embeddings)) {
                let own = index.get(person).copied();
                let best = scores
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != own)
                    .map(|(_, s)| *s)
                    .fold(f32::NEG_INFINITY, f32::max);
                if best.is_finite() {
                    out.push(best);
                }
            }
        }
        out
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Small sets are not worth a thread.
    if threads < 2 || probes.len() * means.len() < 1 << 20 {
        return closest(probes);
    }
    let per_thread = probes.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = probes
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || closest(chunk)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
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

    /// A reproducible unit vector (xorshift), for galleries bigger than hand-written ones.
    fn pseudo_random_unit(seed: u64, dimension: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v = (0..dimension)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        unit(&l2_normalised(v).unwrap())
    }

    #[test]
    fn matrix_search_matches_one_cosine_per_template() {
        let dimension = 37; // not a multiple of the lanes: the tail is summed too
        let templates: Vec<Template> = (0..150)
            .map(|i| Template {
                person_id: format!("p{i}"),
                embedding: pseudo_random_unit(i, dimension),
                image_count: 1,
            })
            .collect();
        let g = Gallery::new(templates.clone(), 0.5).unwrap();
        assert_eq!(g.len(), 150);
        assert_eq!(g.matrix_bytes(), 150 * dimension * 4);
        assert!(g.contains("p149") && !g.contains("p150"));
        let probes: Vec<Vec<f32>> = (1000..1020)
            .map(|i| pseudo_random_unit(i, dimension))
            .collect();
        let probe_refs: Vec<&[f32]> = probes.iter().map(Vec::as_slice).collect();
        let batch = g.scores_batch(&probe_refs);
        for (probe, scores) in probes.iter().zip(&batch) {
            assert_eq!(scores.len(), 150);
            for (t, score) in templates.iter().zip(scores) {
                let naive: f32 = probe.iter().zip(&t.embedding).map(|(a, b)| a * b).sum();
                assert!((naive - score).abs() < 1e-5, "{naive} vs {score}");
            }
            let best = scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            assert_eq!(g.top_k(probe, 1)[0].person_id, format!("p{}", best.0));
            let top = g.top_k(probe, 5);
            assert_eq!(top.len(), 5);
            assert!(top.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        }
        // One face of a batch with the wrong dimension gets no scores; the others are unaffected.
        let short = [1.0f32, 0.0];
        let mixed = g.scores_batch(&[probe_refs[0], &short, probe_refs[1]]);
        assert!(mixed[1].is_empty());
        assert_eq!(mixed[0], batch[0]);
        assert_eq!(mixed[2], batch[1]);
        // A genuine face (template + a little noise) is named, batched or not.
        let mut near = templates[42].embedding.clone();
        near[0] += 0.05;
        let near = unit(&near);
        assert_eq!(g.identify(&near).person_id(), Some("p42"));
        let verdicts = g.identify_batch(&[&near, &short]);
        assert_eq!(verdicts[0], g.identify(&near));
        assert_eq!(verdicts[1], Identity::Unknown { closest: None });
        assert_eq!(g.template(42).unwrap().person_id, "p42");
        assert!(g.template(150).is_none());
    }

    /// `v` nudged by `amount` along a pseudo-random direction, re-normalised.
    fn nudged(v: &[f32], amount: f32, seed: u64) -> Vec<f32> {
        let direction = pseudo_random_unit(seed, v.len());
        unit(
            &v.iter()
                .zip(&direction)
                .map(|(x, d)| x + amount * d)
                .collect::<Vec<f32>>(),
        )
    }

    /// The smallest f32 above a positive `x` (`f32::next_up` needs a newer Rust than ours).
    fn just_above(x: f32) -> f32 {
        f32::from_bits(x.to_bits() + 1)
    }

    #[test]
    fn compact_search_gives_the_exact_verdicts() {
        // Galleries with near-duplicate templates (closer than the int8 error, so the compact
        // scores alone would often rank them wrongly), probes between two people, probes right
        // at the threshold, and withheld people: the two-step search must agree with the exact
        // one on every verdict, similarity and top-k list.
        let mut rescored = 0usize;
        let mut searches = 0usize;
        for (seed, people, dimension) in [(1u64, 600, 512), (2, 300, 37), (3, 1000, 64)] {
            let mut embeddings: Vec<Vec<f32>> = Vec::new();
            for i in 0..people as u64 {
                let v = match i % 10 {
                    // Near-ties: a nudged copy of the previous template (1e-3 .. 1e-6 apart).
                    1 => nudged(&embeddings[i as usize - 1], 1e-3, seed * 7919 + i),
                    2 => nudged(&embeddings[i as usize - 2], 1e-6, seed * 7919 + i),
                    // An exact duplicate: the earlier template must win the tie.
                    3 => embeddings[i as usize - 3].clone(),
                    _ => pseudo_random_unit(seed * 100_000 + i, dimension),
                };
                embeddings.push(v);
            }
            let templates: Vec<Template> = embeddings
                .iter()
                .enumerate()
                .map(|(i, e)| Template {
                    person_id: format!("p{i}"),
                    embedding: e.clone(),
                    image_count: 1,
                })
                .collect();
            let mut g = Gallery::new(templates, 0.5).unwrap();
            assert!(g.compact.is_some(), "{people} people use the compact copy");
            assert!(g.compact_bytes() < g.matrix_bytes() / 3);

            let mut probes: Vec<Vec<f32>> = Vec::new();
            for k in 0..60u64 {
                let person = (k as usize * 37) % people;
                let noise = [0.05f32, 0.3, 0.8, 1.5][k as usize % 4];
                probes.push(nudged(&embeddings[person], noise, seed * 1_000_003 + k));
                // Strangers.
                probes.push(pseudo_random_unit(seed * 3_000_017 + k, dimension));
                // Half-way between two people: nearly tied best candidates.
                let other = (person + 5) % people;
                let between: Vec<f32> = embeddings[person]
                    .iter()
                    .zip(&embeddings[other])
                    .map(|(a, b)| a + b)
                    .collect();
                probes.push(unit(&between));
                // A template itself (an exact duplicate of it may exist).
                probes.push(embeddings[person].clone());
            }
            let refs: Vec<&[f32]> = probes.iter().map(Vec::as_slice).collect();
            let check = |g: &Gallery, what: &str| {
                let batch = g.identify_batch(&refs);
                for (face, verdict) in refs.iter().zip(&batch) {
                    let exact = g.identify_exact(face);
                    assert_eq!(verdict, &exact, "{what}: batched verdict");
                    assert_eq!(g.identify(face), exact, "{what}: verdict");
                }
            };
            for probe in &refs {
                for k in [1, 2, 5] {
                    let exact = g.top_k_batch_exact(&[probe], k).remove(0);
                    assert_eq!(g.top_k(probe, k), exact, "seed {seed}: top {k}");
                }
                let quantised = g.compact.as_ref().unwrap().quantise(probe).unwrap();
                let compact = g.compact.as_ref().unwrap();
                let approximate = compact.approximate_batch(&[&quantised]).remove(0);
                rescored += compact.candidates(&quantised, &approximate, 1).len();
                searches += 1;
            }
            check(&g, "threshold 0.5");
            // The threshold exactly at, and one step above, a face's best similarity.
            for probe in refs.iter().step_by(23) {
                let best = g.top_k_batch_exact(&[probe], 1).remove(0).remove(0);
                g.set_threshold(best.similarity);
                assert!(matches!(g.identify(probe), Identity::Known(_)));
                check(&g, "threshold at a best score");
                g.set_threshold(just_above(best.similarity));
                assert!(matches!(g.identify(probe), Identity::Unknown { .. }));
                check(&g, "threshold just above a best score");
            }
            // Withheld people, including the best match of some probes.
            g.set_threshold(0.5);
            let withheld: std::collections::HashSet<String> =
                (0..people).step_by(3).map(|i| format!("p{i}")).collect();
            g.withhold(&withheld);
            check(&g, "withheld people");
            // Faces the compact copy cannot take are searched exactly.
            let zero = vec![0f32; dimension];
            let mut not_finite = probes[0].clone();
            not_finite[1] = f32::NAN;
            for face in [&zero[..], &not_finite[..], &probes[0][..3]] {
                // Debug text: a NaN similarity is not equal to itself.
                let same = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
                    assert_eq!(format!("{a:?}"), format!("{b:?}"))
                };
                same(&g.identify(face), &g.identify_exact(face));
                same(
                    &g.top_k(face, 3),
                    &g.top_k_batch_exact(&[face], 3).remove(0),
                );
            }
        }
        // The point of it: only a handful of templates are scored exactly per face.
        let mean = rescored as f64 / searches as f64;
        assert!(mean < 20.0, "{mean} templates re-scored per face");
    }

    #[test]
    fn small_galleries_are_searched_exactly() {
        let g = gallery(0.5);
        assert!(g.compact.is_none());
        assert_eq!(g.compact_bytes(), 0);
    }

    #[test]
    fn calibration_scores_impostors_against_the_whole_gallery() {
        // Person "a" has a look-alike among many people: the impostor score of a's photos is
        // their similarity to that look-alike, however many others there are.
        let dimension = 64;
        let mut samples = Vec::new();
        for i in 0..40u64 {
            let centre = pseudo_random_unit(i, dimension);
            for k in 0..3u64 {
                let noise = pseudo_random_unit(10_000 + i * 10 + k, dimension);
                let v: Vec<f32> = centre
                    .iter()
                    .zip(&noise)
                    .map(|(c, n)| c + 0.3 * n)
                    .collect();
                samples.push((format!("p{i:02}"), unit(&v)));
            }
        }
        let c = calibrate_threshold(&samples);
        assert_eq!(c.impostor_pairs, 120);
        assert_eq!(c.genuine_pairs, 120);
        assert_eq!(c.training_error, 0.0, "{c:?}");
        // The subset keeps every person represented and is exactly `limit` long.
        let items: Vec<usize> = (0..10_000).collect();
        let subset = spread_subset(&items, 4000);
        assert_eq!(subset.len(), 4000);
        assert_eq!(subset[0], 0);
        assert!(subset.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 3));
        assert_eq!(spread_subset(&items[..5], 4000).len(), 5);
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

    #[test]
    fn withheld_people_come_out_unknown_without_a_closest_candidate() {
        let mut g = gallery(0.5);
        let first = g.person_ids()[0].clone();
        let probe = g.template(0).unwrap().embedding;
        assert_eq!(g.identify(&probe).person_id(), Some(first.as_str()));
        assert_eq!(g.withhold(&[first.clone()].into_iter().collect()), 1);
        assert_eq!(g.identify(&probe), Identity::Unknown { closest: None });
    }
}
