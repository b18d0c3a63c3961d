//! Enrolment: photos of people in `DIR/<person>/<images>` -> mean templates in the people directory,
//! and the match threshold recalibrated from every stored photo embedding.
//!
//! [`enroll_people`] does it at scale: photos embedded on several threads, templates stored in
//! batches, and people whose photos did not change since their last enrolment skipped (a
//! [`photos_digest`] is stored with every template), so an interrupted run of a whole
//! university's photos picks up where it stopped.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::directory::{
    validate_person_id, DirectoryError, EnrollmentSample, NewEnrollment, PeopleDirectory,
    SETTING_EMBEDDING_MODEL, SETTING_MATCH_THRESHOLD,
};
use crate::error::RecognizerError;
use crate::vision::{
    calibrate_threshold, load_image, robust_mean_embedding, Calibration, FacePipeline, Gallery,
    Template, DEFAULT_MATCH_THRESHOLD,
};

/// Identifies the embedding model whose vectors the directory holds; a gallery made by another
/// model must not be matched against this one's embeddings.
pub const EMBEDDING_MODEL_ID: &str = "fr_feature.onnx@87aacdfe";

/// Photos grouped by person, and what in the folder could not be used.
#[derive(Clone, Debug, Default)]
pub struct PhotoTree {
    /// Valid person folders with their files, sorted by person id and file name.
    pub people: Vec<(String, Vec<PathBuf>)>,
    /// Entries that are not usable person folders: (path, reason).
    pub rejected: Vec<(PathBuf, String)>,
}

/// List `DIR/<person>/<files>`. Person folder names must be valid person ids; files directly in
/// `DIR` and folders with unusable names are reported, not fatal. Hidden entries are ignored.
pub fn scan_photo_tree(dir: &Path) -> Result<PhotoTree, RecognizerError> {
    let read_error = |path: &Path, e: std::io::Error| RecognizerError::Read {
        input: path.display().to_string(),
        message: e.to_string(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, e))?;
    let mut tree = PhotoTree::default();
    for entry in entries {
        let entry = entry.map_err(|e| read_error(dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tree.rejected
                .push((path, "folder name is not valid UTF-8".to_string()));
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if !path.is_dir() {
            tree.rejected.push((
                path,
                "not a person folder (expected DIR/<person>/<images>)".to_string(),
            ));
            continue;
        }
        if let Err(e) = validate_person_id(&name) {
            tree.rejected.push((path, e.to_string()));
            continue;
        }
        let mut files = Vec::new();
        for file in std::fs::read_dir(&path).map_err(|e| read_error(&path, e))? {
            let file = file.map_err(|e| read_error(&path, e))?;
            let file_path = file.path();
            let hidden = file.file_name().to_string_lossy().starts_with('.');
            if !hidden && file_path.is_file() {
                files.push(file_path);
            }
        }
        files.sort();
        tree.people.push((name, files));
    }
    tree.people.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tree)
}

/// What happened to one enrolment photo.
#[derive(Clone, Debug, PartialEq)]
pub enum PhotoOutcome {
    /// Used; `faces` were found and the largest was taken when there were several.
    Used {
        /// Faces found in the photo.
        faces: usize,
    },
    /// Readable, but no face was found (padded retry included).
    NoFace,
    /// Could not be read or decoded (or the face could not be aligned).
    Rejected {
        /// Why.
        reason: String,
    },
}

/// The result of enrolling one person.
#[derive(Clone, Debug)]
pub struct PersonEnrollment {
    /// The person.
    pub person_id: String,
    /// Every photo of theirs and what became of it.
    pub photos: Vec<(PathBuf, PhotoOutcome)>,
    /// Embeddings of the used photos.
    pub samples: Vec<EnrollmentSample>,
}

impl PersonEnrollment {
    /// Number of photos that went into the template.
    pub fn used(&self) -> usize {
        self.samples.len()
    }
}

/// Embed the largest face of each photo. Never fails as a whole: each photo gets an outcome.
pub fn embed_person_photos(
    pipeline: &FacePipeline,
    person_id: &str,
    photos: &[PathBuf],
) -> PersonEnrollment {
    let mut result = PersonEnrollment {
        person_id: person_id.to_string(),
        photos: Vec::new(),
        samples: Vec::new(),
    };
    for path in photos {
        let outcome = match load_image(path) {
            Err(e) => PhotoOutcome::Rejected {
                reason: e.to_string(),
            },
            Ok(image) => match pipeline.largest_face(&image) {
                Err(e) => PhotoOutcome::Rejected {
                    reason: e.to_string(),
                },
                Ok((None, 0, _)) => PhotoOutcome::NoFace,
                Ok((None, _, _)) => PhotoOutcome::Rejected {
                    reason: "face landmarks could not be aligned".to_string(),
                },
                Ok((Some(face), faces, _)) => {
                    result.samples.push(EnrollmentSample {
                        person_id: person_id.to_string(),
                        image: path
                            .file_name()
                            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                        embedding: face.embedding,
                    });
                    PhotoOutcome::Used { faces }
                }
            },
        };
        result.photos.push((path.clone(), outcome));
    }
    result
}

/// What [`store_enrollment`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredEnrollment {
    /// Whether a template was stored (false: no usable photo; nothing changed).
    pub stored: bool,
    /// Photos left out of the template because their face does not match the person's other photos.
    pub left_out: Vec<String>,
}

/// Store a person's template (robust mean of the samples), replacing any earlier enrolment.
/// Stores nothing when no photo was usable.
pub fn store_enrollment(
    directory: &dyn PeopleDirectory,
    enrollment: &PersonEnrollment,
) -> Result<StoredEnrollment, RecognizerError> {
    let Some((new, left_out)) = new_enrollment(enrollment, None) else {
        return Ok(StoredEnrollment::default());
    };
    check_embedding_model(directory, &enrollment.person_id)?;
    directory.enroll_many(std::slice::from_ref(&new))?;
    directory.set_setting(SETTING_EMBEDDING_MODEL, EMBEDDING_MODEL_ID)?;
    Ok(StoredEnrollment {
        stored: true,
        left_out,
    })
}

/// Fingerprint of one person's photos as enrolment sees them: the embedding model and, for every
/// file in name order, its name and the sha256 of its content. Equal digests mean the same
/// photos give the same template, so the person need not be embedded again.
pub fn photos_digest(photos: &[PathBuf]) -> Result<String, RecognizerError> {
    let mut sorted: Vec<&PathBuf> = photos.iter().collect();
    sorted.sort();
    let mut digest = Sha256::new();
    digest.update(EMBEDDING_MODEL_ID.as_bytes());
    let mut buffer = vec![0u8; 1 << 16];
    for path in sorted {
        let read_error = |e: std::io::Error| RecognizerError::Read {
            input: path.display().to_string(),
            message: e.to_string(),
        };
        let mut file_hash = Sha256::new();
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        loop {
            let n = file.read(&mut buffer).map_err(read_error)?;
            if n == 0 {
                break;
            }
            file_hash.update(&buffer[..n]);
        }
        digest.update([0]);
        digest.update(path.file_name().unwrap_or_default().as_encoded_bytes());
        digest.update([0]);
        digest.update(file_hash.finalize());
    }
    Ok(hex::encode(digest.finalize()))
}

/// How [`enroll_people`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkOptions {
    /// Threads embedding photos at once (the pipeline needs as many sessions per model to
    /// run them truly in parallel: `RuntimeOptions::sessions_per_model`).
    pub workers: usize,
    /// Embed everyone again, even people whose photos did not change.
    pub force: bool,
    /// Templates stored per directory write (one transaction / batched writes).
    pub store_batch: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            force: false,
            store_batch: 64,
        }
    }
}

/// What happened to one person of an [`enroll_people`] run.
#[derive(Clone, Debug)]
pub enum PersonOutcome {
    /// Enrolled before from the same photos (same [`photos_digest`]): not embedded again.
    Unchanged,
    /// A template was stored; `left_out` photos did not match the person's other photos.
    Enrolled {
        /// Images (file names) left out of the template.
        left_out: Vec<String>,
    },
    /// No template stored (no usable photo, or the directory refused it); any earlier
    /// enrolment is kept.
    NotEnrolled {
        /// Why.
        reason: String,
    },
}

/// One person's report, as [`enroll_people`] hands it to its caller.
#[derive(Clone, Debug)]
pub struct PersonReport {
    /// The person.
    pub person_id: String,
    /// What became of each photo (empty when [`PersonOutcome::Unchanged`]).
    pub photos: Vec<(PathBuf, PhotoOutcome)>,
    /// The outcome.
    pub outcome: PersonOutcome,
}

/// Counts of an [`enroll_people`] run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BulkSummary {
    /// People whose template was stored.
    pub enrolled: usize,
    /// People skipped because their photos did not change.
    pub unchanged: usize,
    /// People without a template stored.
    pub not_enrolled: usize,
    /// Photos read and embedded.
    pub photos: usize,
}

/// A person embedded by a worker, waiting to be stored.
struct Embedded {
    enrollment: PersonEnrollment,
    digest: Option<String>,
}

/// Enrol `people` (person id, photos) into `directory`: photos embedded on `options.workers`
/// threads, templates stored [`BulkOptions::store_batch`] at a time, people whose stored
/// [`photos_digest`] matches their photos skipped (unless `options.force`). `report` is called
/// on the calling thread once per person, in completion order. Does not recalibrate: call
/// [`recalibrate`] (and [`PeopleDirectory::publish_gallery`]) after it.
///
/// Fails only when the directory cannot be read or written at all; a person who cannot be
/// enrolled is a [`PersonOutcome::NotEnrolled`] report.
pub fn enroll_people(
    pipeline: &FacePipeline,
    directory: &dyn PeopleDirectory,
    people: &[(String, Vec<PathBuf>)],
    options: &BulkOptions,
    mut report: impl FnMut(&PersonReport),
) -> Result<BulkSummary, RecognizerError> {
    let stored_digests = if options.force {
        BTreeMap::new()
    } else {
        directory.photos_digests()?
    };
    if let Some((first, _)) = people.first() {
        check_embedding_model(directory, first)?;
    }
    let mut summary = BulkSummary::default();
    let next = AtomicUsize::new(0);
    let workers = options.workers.clamp(1, 64).min(people.len().max(1));
    let (tx, rx) = mpsc::sync_channel::<(usize, Option<Embedded>)>(workers * 4);
    std::thread::scope(|scope| -> Result<(), RecognizerError> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stored_digests) = (&next, &stored_digests);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((person_id, photos)) = people.get(index) else {
                    break;
                };
                // An unreadable photo gets no digest: the person is embedded (and the photo
                // reported) every time until it is fixed.
                let digest = photos_digest(photos).ok();
                let embedded =
                    if digest.is_some() && digest.as_ref() == stored_digests.get(person_id) {
                        None
                    } else {
                        Some(Embedded {
                            enrollment: embed_person_photos(pipeline, person_id, photos),
                            digest,
                        })
                    };
                if tx.send((index, embedded)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: Vec<Embedded> = Vec::new();
        let mut last_store = Instant::now();
        let mut outcome = Ok(());
        for (index, embedded) in rx.iter() {
            match embedded {
                None => {
                    summary.unchanged += 1;
                    report(&PersonReport {
                        person_id: people[index].0.clone(),
                        photos: Vec::new(),
                        outcome: PersonOutcome::Unchanged,
                    });
                }
                Some(e) => {
                    summary.photos += e.enrollment.photos.len();
                    pending.push(e);
                }
            }
            // Store in batches, and at least every few seconds so a slow run shows progress
            // in the directory too (and loses little when interrupted).
            if pending.len() >= options.store_batch.max(1)
                || (!pending.is_empty() && last_store.elapsed() > Duration::from_secs(5))
            {
                if let Err(e) = store_batch(directory, &mut pending, &mut summary, &mut report) {
                    // Stop the workers: nothing more can be stored.
                    next.store(people.len(), Ordering::Relaxed);
                    outcome = Err(e);
                    break;
                }
                last_store = Instant::now();
            }
        }
        outcome?;
        store_batch(directory, &mut pending, &mut summary, &mut report)
    })?;
    if summary.enrolled > 0 {
        directory.set_setting(SETTING_EMBEDDING_MODEL, EMBEDDING_MODEL_ID)?;
    }
    Ok(summary)
}

/// Refuse to add `person_id` (or a whole run's people) to a directory whose templates come from
/// another embedding model.
fn check_embedding_model(
    directory: &dyn PeopleDirectory,
    person_id: &str,
) -> Result<(), RecognizerError> {
    if let Some(model) = directory.setting(SETTING_EMBEDDING_MODEL)? {
        if model != EMBEDDING_MODEL_ID && !directory.gallery()?.is_empty() {
            return Err(RecognizerError::Directory(
                DirectoryError::InvalidEnrollment {
                    person_id: person_id.to_string(),
                    reason: format!(
                        "the directory holds embeddings of model {model}, not {EMBEDDING_MODEL_ID}; re-enrol everyone into a new database"
                    ),
                },
            ));
        }
    }
    Ok(())
}

/// Store the templates of `pending` (emptying it) with one `enroll_many`; reports every person.
/// A batch the directory refuses is stored person by person, so one bad enrolment does not
/// cost the others theirs.
fn store_batch(
    directory: &dyn PeopleDirectory,
    pending: &mut Vec<Embedded>,
    summary: &mut BulkSummary,
    report: &mut impl FnMut(&PersonReport),
) -> Result<(), RecognizerError> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut batch = Vec::new();
    let mut prepared = Vec::new();
    for e in pending.drain(..) {
        match new_enrollment(&e.enrollment, e.digest.clone()) {
            Some((new, left_out)) => {
                batch.push(new);
                prepared.push((e, left_out));
            }
            None => {
                summary.not_enrolled += 1;
                let reason = if e.enrollment.photos.is_empty() {
                    "folder is empty"
                } else {
                    "no usable image"
                };
                report(&PersonReport {
                    person_id: e.enrollment.person_id.clone(),
                    photos: e.enrollment.photos,
                    outcome: PersonOutcome::NotEnrolled {
                        reason: reason.to_string(),
                    },
                });
            }
        }
    }
    let results: Vec<Result<(), String>> = match directory.enroll_many(&batch) {
        Ok(()) => vec![Ok(()); batch.len()],
        Err(_) => {
            // Tell who fails: one refused enrolment must not cost the others theirs.
            let one_by_one: Vec<Result<(), DirectoryError>> = batch
                .iter()
                .map(|b| directory.enroll_many(std::slice::from_ref(b)))
                .collect();
            // The directory itself is failing (unreachable, read-only): stop the run.
            if one_by_one
                .iter()
                .all(|r| matches!(r, Err(DirectoryError::Backend { .. })))
            {
                if let Some(Err(e)) = one_by_one.into_iter().next() {
                    return Err(e.into());
                }
                return Ok(());
            }
            one_by_one
                .into_iter()
                .map(|r| r.map_err(|e| e.to_string()))
                .collect()
        }
    };
    for ((e, left_out), result) in prepared.into_iter().zip(results) {
        let outcome = match result {
            Ok(()) => {
                summary.enrolled += 1;
                PersonOutcome::Enrolled { left_out }
            }
            Err(reason) => {
                summary.not_enrolled += 1;
                PersonOutcome::NotEnrolled { reason }
            }
        };
        report(&PersonReport {
            person_id: e.enrollment.person_id,
            photos: e.enrollment.photos,
            outcome,
        });
    }
    Ok(())
}

/// The template to store for one person (robust mean, outliers left out) and the left-out
/// images; `None` when no photo was usable.
fn new_enrollment(
    enrollment: &PersonEnrollment,
    photos_digest: Option<String>,
) -> Option<(NewEnrollment, Vec<String>)> {
    let embeddings: Vec<&[f32]> = enrollment
        .samples
        .iter()
        .map(|s| s.embedding.as_slice())
        .collect();
    let (mean, left_out) = robust_mean_embedding(&embeddings)?;
    let samples = enrollment
        .samples
        .iter()
        .enumerate()
        .filter(|(i, _)| !left_out.contains(i))
        .map(|(_, s)| s.clone())
        .collect();
    Some((
        NewEnrollment {
            person_id: enrollment.person_id.clone(),
            mean,
            samples,
            photos_digest,
        },
        left_out
            .iter()
            .map(|i| enrollment.samples[*i].image.clone())
            .collect(),
    ))
}

/// Recompute the match threshold from every stored photo embedding and save it.
pub fn recalibrate(directory: &dyn PeopleDirectory) -> Result<Calibration, RecognizerError> {
    let samples: Vec<(String, Vec<f32>)> = directory
        .samples()?
        .into_iter()
        .map(|s| (s.person_id, s.embedding))
        .collect();
    let calibration = calibrate_threshold(&samples);
    directory.set_setting(
        SETTING_MATCH_THRESHOLD,
        &format!("{:.4}", calibration.threshold),
    )?;
    Ok(calibration)
}

/// The stored match threshold, or the default when none was calibrated.
pub fn stored_threshold<D: PeopleDirectory + ?Sized>(
    directory: &D,
) -> Result<f32, RecognizerError> {
    Ok(directory
        .setting(SETTING_MATCH_THRESHOLD)?
        .and_then(|v| v.parse::<f32>().ok())
        .filter(|t| t.is_finite())
        .unwrap_or(DEFAULT_MATCH_THRESHOLD))
}

/// Everyone enrolled in `directory`, deciding at `threshold` (or the stored calibrated one).
pub fn load_gallery<D: PeopleDirectory + ?Sized>(
    directory: &D,
    threshold: Option<f32>,
) -> Result<Gallery, RecognizerError> {
    let threshold = match threshold {
        Some(t) => t,
        None => stored_threshold(directory)?,
    };
    let templates = directory
        .gallery()?
        .into_iter()
        .map(|entry| Template {
            person_id: entry.person_id,
            embedding: entry.embedding,
            image_count: entry.image_count,
        })
        .collect();
    Gallery::new(templates, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::sqlite::SqliteDirectory;

    #[test]
    fn photo_tree_reports_stray_files_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ada_lovelace")).unwrap();
        std::fs::write(dir.path().join("ada_lovelace/1.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("ada_lovelace/.hidden"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("-rf")).unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let tree = scan_photo_tree(dir.path()).unwrap();
        assert_eq!(tree.people.len(), 2);
        assert_eq!(tree.people[0].0, "ada_lovelace");
        assert_eq!(tree.people[0].1.len(), 1);
        assert!(tree.people[1].1.is_empty());
        assert_eq!(tree.rejected.len(), 2, "{:?}", tree.rejected);
        assert!(scan_photo_tree(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn store_and_reload_gallery_with_calibrated_threshold() {
        let directory = SqliteDirectory::open_in_memory().unwrap();
        let unit = |v: Vec<f32>| crate::vision::embed::l2_normalised(v).unwrap();
        for (person, axis) in [("ada", 0usize), ("bob", 1usize)] {
            let samples = (0..3)
                .map(|i| {
                    let mut v = vec![0.1 * i as f32, 0.2, 0.05];
                    v[axis] = 1.0;
                    EnrollmentSample {
                        person_id: person.to_string(),
                        image: format!("{i}.jpg"),
                        embedding: unit(v),
                    }
                })
                .collect();
            let enrollment = PersonEnrollment {
                person_id: person.to_string(),
                photos: Vec::new(),
                samples,
            };
            assert!(store_enrollment(&directory, &enrollment).unwrap().stored);
        }
        let empty = PersonEnrollment {
            person_id: "nobody".into(),
            photos: Vec::new(),
            samples: Vec::new(),
        };
        assert!(!store_enrollment(&directory, &empty).unwrap().stored);
        let calibration = recalibrate(&directory).unwrap();
        assert_eq!(calibration.genuine_pairs, 6);
        let gallery = load_gallery(&directory, None).unwrap();
        assert_eq!(gallery.len(), 2);
        assert!((gallery.threshold() - calibration.threshold).abs() < 1e-3);
        assert_eq!(
            load_gallery(&directory, Some(0.9)).unwrap().threshold(),
            0.9
        );
    }
}
