//! Enrolment: photos of people in `DIR/<person>/<images>` -> mean templates in the people directory,
//! and the match threshold recalibrated from every stored photo embedding.

use std::path::{Path, PathBuf};

use crate::directory::{
    validate_person_id, EnrollmentSample, PeopleDirectory, SETTING_EMBEDDING_MODEL,
    SETTING_MATCH_THRESHOLD,
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
    let embeddings: Vec<&[f32]> = enrollment
        .samples
        .iter()
        .map(|s| s.embedding.as_slice())
        .collect();
    let Some((mean, left_out)) = robust_mean_embedding(&embeddings) else {
        return Ok(StoredEnrollment::default());
    };
    if let Some(model) = directory.setting(SETTING_EMBEDDING_MODEL)? {
        if model != EMBEDDING_MODEL_ID && !directory.gallery()?.is_empty() {
            return Err(RecognizerError::Directory(
                crate::directory::DirectoryError::InvalidEnrollment {
                    person_id: enrollment.person_id.clone(),
                    reason: format!(
                        "the directory holds embeddings of model {model}, not {EMBEDDING_MODEL_ID}; re-enrol everyone into a new database"
                    ),
                },
            ));
        }
    }
    let kept: Vec<EnrollmentSample> = enrollment
        .samples
        .iter()
        .enumerate()
        .filter(|(i, _)| !left_out.contains(i))
        .map(|(_, s)| s.clone())
        .collect();
    directory.enroll(&enrollment.person_id, &mean, &kept)?;
    directory.set_setting(SETTING_EMBEDDING_MODEL, EMBEDDING_MODEL_ID)?;
    Ok(StoredEnrollment {
        stored: true,
        left_out: left_out
            .iter()
            .map(|i| enrollment.samples[*i].image.clone())
            .collect(),
    })
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
