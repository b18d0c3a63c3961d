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

use rollcall_protocol::input_files::{entry_metadata, regular_file_metadata};

use crate::directory::{
    has_consent, validate_person_id, DirectoryError, EnrollmentSample, NewEnrollment,
    PeopleDirectory, SETTING_EMBEDDING_MODEL, SETTING_MATCH_THRESHOLD, SETTING_REQUIRE_CONSENT,
};
use crate::error::RecognizerError;
use crate::vision::{
    calibrate_threshold, load_photo, robust_mean_embedding, Calibration, FacePipeline, Gallery,
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

/// List `DIR/<person>/<files>`. Person folder names must be valid person ids. Everything that
/// is not used is reported in [`PhotoTree::rejected`] with its reason, not fatal: files directly
/// in `DIR`, folders with unusable names or that cannot be read, and entries of a person folder
/// that are not regular files (folders, FIFOs, devices, sockets, broken symbolic links, link
/// loops). Hidden entries (names starting with `.`) are not inputs and are ignored.
pub fn scan_photo_tree(dir: &Path) -> Result<PhotoTree, RecognizerError> {
    let read_error = |path: &Path, e: std::io::Error| RecognizerError::Read {
        input: path.display().to_string(),
        source: e,
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
        match entry_metadata(&path) {
            Err(e) => {
                tree.rejected.push((path, e.to_string()));
                continue;
            }
            Ok(metadata) if !metadata.is_dir() => {
                tree.rejected.push((
                    path,
                    "not a person folder (expected DIR/<person>/<images>)".to_string(),
                ));
                continue;
            }
            Ok(_) => {}
        }
        if let Err(e) = validate_person_id(&name) {
            tree.rejected.push((path, e.to_string()));
            continue;
        }
        let listing = match std::fs::read_dir(&path) {
            Ok(listing) => listing,
            Err(e) => {
                tree.rejected
                    .push((path, format!("cannot read the person folder: {e}")));
                continue;
            }
        };
        let mut files = Vec::new();
        for file in listing {
            let file = match file {
                Ok(file) => file,
                Err(e) => {
                    tree.rejected
                        .push((path.clone(), format!("cannot list the person folder: {e}")));
                    break;
                }
            };
            let file_path = file.path();
            if file.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // Checked without opening: a FIFO must be reported, not read (that would block).
            match regular_file_metadata(&file_path) {
                Ok(_) => files.push(file_path),
                Err(e) => tree.rejected.push((file_path, e.to_string())),
            }
        }
        files.sort();
        tree.people.push((name, files));
    }
    tree.people.sort_by(|a, b| a.0.cmp(&b.0));
    tree.rejected.sort();
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
    /// What the user should know about photos that were read: the frame used of an animated
    /// GIF, a truncated JPEG ([`crate::vision::Photo::notes`]).
    pub notes: Vec<(PathBuf, String)>,
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
        notes: Vec::new(),
    };
    for path in photos {
        let outcome = match load_photo(path, &pipeline.options().decode) {
            Err(e) => PhotoOutcome::Rejected {
                reason: e.to_string(),
            },
            Ok(photo) => match pipeline.largest_face(&photo.image) {
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
                    result
                        .notes
                        .extend(photo.notes.iter().map(|n| (path.clone(), n.clone())));
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
    check_embedding_model(directory, || Ok(directory.gallery()?.is_empty()))?;
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
            source: e,
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
    /// Notes on photos that were read (the frame of an animated GIF, a truncated JPEG...).
    pub notes: Vec<(PathBuf, String)>,
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
    if !people.is_empty() {
        check_embedding_model(directory, || Ok(directory.gallery()?.is_empty()))?;
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
                        notes: Vec::new(),
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
                    notes: e.enrollment.notes,
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
            notes: e.enrollment.notes,
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

/// The stored match threshold, or the default when none was calibrated. A stored value that is
/// not a number, not finite or outside the cosine range -1..1 is an error naming the setting
/// ([`DirectoryError::InvalidSetting`]): guessing a threshold would silently name the wrong
/// people or nobody.
///
/// [`DirectoryError::InvalidSetting`]: crate::directory::DirectoryError::InvalidSetting
pub fn stored_threshold<D: PeopleDirectory + ?Sized>(
    directory: &D,
) -> Result<f32, RecognizerError> {
    let Some(value) = directory.setting(SETTING_MATCH_THRESHOLD)? else {
        return Ok(DEFAULT_MATCH_THRESHOLD);
    };
    match value.trim().parse::<f32>() {
        Ok(t) if t.is_finite() && (-1.0..=1.0).contains(&t) => Ok(t),
        _ => Err(invalid_setting(
            SETTING_MATCH_THRESHOLD,
            &value,
            "a match threshold is a cosine similarity between -1 and 1; re-enrol (which \
             recalibrates it) or pass --threshold",
        )),
    }
}

fn invalid_setting(key: &str, value: &str, reason: &str) -> RecognizerError {
    RecognizerError::Directory(crate::directory::DirectoryError::InvalidSetting {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    })
}

/// Refuse a directory whose stored embeddings come from another embedding model than
/// [`EMBEDDING_MODEL_ID`] (its faces would be compared with incomparable vectors). The same check
/// guards enrolment ([`store_enrollment`]) and every gallery load ([`load_gallery`]).
/// `gallery_is_empty` is only asked when the stored model differs (a directory whose people were
/// all removed may be re-enrolled with another model).
fn check_embedding_model<D: PeopleDirectory + ?Sized>(
    directory: &D,
    gallery_is_empty: impl FnOnce() -> Result<bool, RecognizerError>,
) -> Result<(), RecognizerError> {
    match directory.setting(SETTING_EMBEDDING_MODEL)? {
        Some(model) if model != EMBEDDING_MODEL_ID && !gallery_is_empty()? => Err(invalid_setting(
            SETTING_EMBEDDING_MODEL,
            &model,
            &format!(
                "the directory holds embeddings of that model, not of {EMBEDDING_MODEL_ID} which \
                 this build computes; re-enrol everyone into a new database"
            ),
        )),
        _ => Ok(()),
    }
}

/// Everyone enrolled in `directory`, deciding at `threshold` (or the stored calibrated one).
/// The stored settings are checked first: the threshold ([`stored_threshold`], unless one is
/// given) and the embedding model that made the gallery.
pub fn load_gallery<D: PeopleDirectory + ?Sized>(
    directory: &D,
    threshold: Option<f32>,
) -> Result<Gallery, RecognizerError> {
    let threshold = match threshold {
        Some(t) => t,
        None => stored_threshold(directory)?,
    };
    let entries = directory.gallery()?;
    check_embedding_model(directory, || Ok(entries.is_empty()))?;
    let templates = entries
        .into_iter()
        .map(|entry| Template {
            person_id: entry.person_id,
            embedding: entry.embedding,
            image_count: entry.image_count,
        })
        .collect();
    let mut gallery = Gallery::new(templates, threshold)?;
    if directory.setting(SETTING_REQUIRE_CONSENT)?.as_deref() == Some("true") {
        // Consent withdrawn after enrolment: the template stays (so the face is not named as
        // someone else) but is never named.
        let without: std::collections::HashSet<String> = directory
            .people()?
            .into_iter()
            .filter(|p| p.is_enrolled() && !has_consent(p))
            .map(|p| p.person_id)
            .collect();
        let withheld = gallery.withhold(&without);
        if withheld > 0 {
            tracing::info!(withheld, "people without consent are never named");
        }
    }
    Ok(gallery)
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

    #[cfg(target_os = "linux")]
    #[test]
    fn photo_tree_reports_every_special_entry_with_its_reason_without_blocking() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let person = dir.path().join("ada_lovelace");
        std::fs::create_dir(&person).unwrap();
        std::fs::write(person.join("1.jpg"), b"x").unwrap();
        std::fs::create_dir(person.join("2.jpg")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(person.join("3.jpg"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
        symlink(person.join("gone.jpg"), person.join("4.jpg")).unwrap();
        symlink(person.join("5.jpg"), person.join("6.jpg")).unwrap();
        symlink(person.join("6.jpg"), person.join("5.jpg")).unwrap();
        symlink("/dev/null", person.join("7.jpg")).unwrap();
        symlink(person.join("1.jpg"), person.join("8.jpg")).unwrap();
        symlink(dir.path().join("nowhere"), dir.path().join("bob")).unwrap();

        let tree = scan_photo_tree(dir.path()).unwrap();
        let files: Vec<String> = tree.people[0]
            .1
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["1.jpg", "8.jpg"], "regular files and links to them");
        let reason = |name: &str| {
            tree.rejected
                .iter()
                .find(|(p, _)| p.file_name().is_some_and(|n| n == name))
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| panic!("{name} not reported: {:?}", tree.rejected))
        };
        assert_eq!(reason("2.jpg"), "is a directory, not a regular file");
        assert_eq!(
            reason("3.jpg"),
            "is a FIFO (named pipe), not a regular file"
        );
        assert!(reason("4.jpg").starts_with("is a broken symbolic link"));
        assert!(reason("5.jpg").contains("symbolic link loop"));
        assert!(reason("6.jpg").contains("symbolic link loop"));
        assert_eq!(reason("7.jpg"), "is a character device, not a regular file");
        assert!(reason("bob").starts_with("is a broken symbolic link"));
        assert_eq!(tree.rejected.len(), 7, "{:?}", tree.rejected);
    }

    #[test]
    fn unusable_stored_settings_are_refused_by_name() {
        let directory = SqliteDirectory::open_in_memory().unwrap();
        assert_eq!(
            stored_threshold(&directory).unwrap(),
            DEFAULT_MATCH_THRESHOLD
        );
        for bad in ["abc", "NaN", "inf", "5", "-1.5", ""] {
            directory.set_setting(SETTING_MATCH_THRESHOLD, bad).unwrap();
            let error = load_gallery(&directory, None).unwrap_err().to_string();
            assert!(error.contains("match_threshold"), "{bad:?}: {error}");
            assert!(error.contains(&format!("{bad:?}")), "{bad:?}: {error}");
            // An explicit threshold does not need the stored one.
            assert!(load_gallery(&directory, Some(0.5)).is_ok());
        }
        directory
            .set_setting(SETTING_MATCH_THRESHOLD, " 0.3910 ")
            .unwrap();
        assert!((stored_threshold(&directory).unwrap() - 0.391).abs() < 1e-6);

        // Embeddings of another model: refused when the gallery is used, as enrolment refuses it.
        directory.enroll("ada", &[1.0, 0.0], &[]).unwrap();
        directory
            .set_setting(SETTING_EMBEDDING_MODEL, "dlib_resnet@0000")
            .unwrap();
        let error = load_gallery(&directory, None).unwrap_err().to_string();
        assert!(error.contains("embedding_model"), "{error}");
        assert!(error.contains("dlib_resnet@0000"), "{error}");
        let enrollment = PersonEnrollment {
            person_id: "bob".into(),
            photos: Vec::new(),
            samples: vec![EnrollmentSample {
                person_id: "bob".into(),
                image: "1.jpg".into(),
                embedding: vec![0.0, 1.0],
            }],
            notes: Vec::new(),
        };
        let error = store_enrollment(&directory, &enrollment)
            .unwrap_err()
            .to_string();
        assert!(error.contains("embedding_model"), "{error}");
        directory
            .set_setting(SETTING_EMBEDDING_MODEL, EMBEDDING_MODEL_ID)
            .unwrap();
        assert_eq!(load_gallery(&directory, None).unwrap().len(), 1);
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
                notes: Vec::new(),
            };
            assert!(store_enrollment(&directory, &enrollment).unwrap().stored);
        }
        let empty = PersonEnrollment {
            person_id: "nobody".into(),
            photos: Vec::new(),
            samples: Vec::new(),
            notes: Vec::new(),
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
