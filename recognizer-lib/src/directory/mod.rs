//! The people directory: who can be recognised, their academic records and their enrolled faces.
//!
//! [`PeopleDirectory`] is the backend-neutral interface used by enrolment, the recognizer function and the
//! console. It holds, per person:
//!
//! - a [`PersonRecord`] (display name plus free-form academic details such as `student_id`, `programme`,
//!   `year`, usually imported from a CSV file with [`records_csv::read_records`]);
//! - the enrolled face template: one mean embedding ([`GalleryEntry`]);
//! - the per-image embeddings that formed it ([`EnrollmentSample`]), kept so the match threshold can be
//!   recalibrated whenever the gallery changes.
//!
//! It also stores a few settings (for example `match_threshold` and `embedding_model`) and a
//! [`gallery version`](PeopleDirectory::gallery_version) that long-running workers poll to know when to
//! reload the gallery.
//!
//! Backends: [`sqlite::SqliteDirectory`] (embedded default, one file). [`dynamodb::DynamoDirectory`]
//! (feature `aws`, one DynamoDB table) beside it.
//!
//! ```
//! use rollcall_recognizer::directory::{PeopleDirectory, PersonRecord, sqlite::SqliteDirectory};
//!
//! let dir = SqliteDirectory::open_in_memory()?;
//! let mut alice = PersonRecord::new("alice_smith")?;
//! alice.details.insert("programme".into(), "BSc Physics".into());
//! dir.upsert_records(&[alice])?;
//! dir.enroll("alice_smith", &[0.6, 0.8], &[])?;
//! let stored = dir.person("alice_smith")?.unwrap();
//! assert_eq!(stored.name, "Alice Smith");
//! assert_eq!(dir.gallery()?.len(), 1);
//! # Ok::<(), rollcall_recognizer::directory::DirectoryError>(())
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub mod attendance;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod records_csv;
pub mod snapshot;
pub mod sqlite;
pub mod synthetic;

/// Maximum length of a person id, in bytes.
pub const MAX_PERSON_ID_LEN: usize = 128;

/// Setting key under which the calibrated cosine match threshold is stored (decimal text).
pub const SETTING_MATCH_THRESHOLD: &str = "match_threshold";
/// Setting key under which the name of the embedding model that produced the gallery is stored.
pub const SETTING_EMBEDDING_MODEL: &str = "embedding_model";

/// Setting key that, when `true`, makes recognition name only people whose record gives
/// consent ([`has_consent`]); everyone else comes out unknown.
pub const SETTING_REQUIRE_CONSENT: &str = "require_consent";
/// The record detail (a `consent` column of the records CSV) read by [`has_consent`].
pub const CONSENT_DETAIL: &str = "consent";

/// Whether the record's `consent` detail says yes (`yes`, `y`, `true`, `1`, `granted`,
/// `given`; any case). A missing or other value is no consent.
pub fn has_consent(record: &PersonRecord) -> bool {
    record.details.get(CONSENT_DETAIL).is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "yes" | "y" | "true" | "1" | "granted" | "given"
        )
    })
}

/// Academic record + enrolment state of one person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// Stable identifier (see [`validate_person_id`]); also the enrolment folder name.
    pub person_id: String,
    /// Display name. Defaults to [`default_display_name`] of the id when no record was imported.
    pub name: String,
    /// Academic details: `student_id`, `programme`, `year`, ... (any CSV columns beyond `person_id`, `name`).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// When the current embedding was stored, RFC 3339 UTC (`2024-05-01T12:34:56Z`); `None` if not enrolled.
    #[serde(default)]
    pub enrolled_at: Option<String>,
    /// Number of images that formed the mean embedding (0 if not enrolled).
    #[serde(default)]
    pub image_count: u32,
}

impl PersonRecord {
    /// A record with a validated id, the default display name, no details and no enrolment.
    pub fn new(person_id: &str) -> Result<Self, DirectoryError> {
        validate_person_id(person_id)?;
        Ok(Self {
            person_id: person_id.to_owned(),
            name: default_display_name(person_id),
            details: BTreeMap::new(),
            enrolled_at: None,
            image_count: 0,
        })
    }

    /// Whether the person has an enrolled face template.
    pub fn is_enrolled(&self) -> bool {
        self.enrolled_at.is_some()
    }
}

/// One enrolled face template: a person's mean embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct GalleryEntry {
    /// Whose face this is.
    pub person_id: String,
    /// Mean embedding of the enrolment images (as stored; normalisation is the caller's choice).
    pub embedding: Vec<f32>,
    /// Number of images that formed the mean.
    pub image_count: u32,
}

/// A per-image embedding, kept so the threshold can be recalibrated whenever the gallery changes.
#[derive(Clone, Debug, PartialEq)]
pub struct EnrollmentSample {
    /// Whose face this is; must equal the person being enrolled.
    pub person_id: String,
    /// Where the embedding came from (file name or other label; informational).
    pub image: String,
    /// The embedding of that one image.
    pub embedding: Vec<f32>,
}

/// One person's enrolment, for [`PeopleDirectory::enroll_many`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewEnrollment {
    /// Who is enrolled.
    pub person_id: String,
    /// Their mean embedding (the template).
    pub mean: Vec<f32>,
    /// The per-image embeddings it was made from.
    pub samples: Vec<EnrollmentSample>,
    /// Fingerprint of the photos the enrolment was made from (every photo of the person's
    /// folder, used or not; see `enrollment::photos_digest`), so a later run can skip a person
    /// whose photos did not change. `None` clears it.
    pub photos_digest: Option<String>,
}

/// Errors of the people directory and of record import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// A person id that [`validate_person_id`] refuses.
    #[error("invalid person id {id:?}: {reason}")]
    InvalidPersonId {
        /// The offending id.
        id: String,
        /// Why it was refused.
        reason: String,
    },
    /// An enrolment that cannot be stored (empty or non-finite embedding, sample of another person, ...).
    #[error("invalid enrolment for {person_id:?}: {reason}")]
    InvalidEnrollment {
        /// The person being enrolled.
        person_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An embedding whose dimension differs from the embeddings already in the directory.
    #[error(
        "embedding dimension mismatch for {person_id:?}: the directory holds {expected}-d embeddings, got {actual}-d \
         (all embeddings in one directory must come from the same model; remove the old enrolments first)"
    )]
    DimensionMismatch {
        /// The person being enrolled.
        person_id: String,
        /// Dimension of the embeddings already stored.
        expected: usize,
        /// Dimension offered.
        actual: usize,
    },
    /// The store exists but is not a usable people directory (not a database, foreign schema, bad data).
    #[error("people directory {} is unusable: {reason}", path.display())]
    Corrupt {
        /// The database (or other store) location.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// There is no people directory at the path given (commands that only use a directory
    /// never create one: a mistyped path must not become a new, empty directory).
    #[error("no people directory at {}", path.display())]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// A stored setting has a value this code cannot use (e.g. a threshold that is not a number).
    #[error("stored setting {key} = {value:?} is unusable: {reason}")]
    InvalidSetting {
        /// The setting's key, e.g. [`SETTING_MATCH_THRESHOLD`].
        key: String,
        /// The stored value.
        value: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A class name that [`attendance::validate_class`] refuses.
    #[error("invalid class name {class:?}: {reason}")]
    InvalidClass {
        /// The offending name.
        class: String,
        /// Why it was refused.
        reason: String,
    },
    /// An attendance record or a correction that cannot be stored (no reason given, a status
    /// that cannot be set, a person twice).
    #[error("attendance of session {session_id:?}: {reason}")]
    InvalidCorrection {
        /// The session concerned.
        session_id: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or created.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A records file that cannot be imported at all (no header, missing required columns, not UTF-8).
    /// Problems with individual rows are reported as [`records_csv::RejectedRow`]s instead.
    #[error("records file {}: {reason}", path.display())]
    InvalidRecords {
        /// The records file (or the label given for a reader).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Any other failure of the storage backend.
    #[error("{backend} people directory at {location}: {message}")]
    Backend {
        /// Backend name, e.g. `"sqlite"` or `"dynamodb"`.
        backend: &'static str,
        /// Where the backend stores data (file path, table name).
        location: String,
        /// The backend's error message.
        message: String,
    },
}

/// Check that `id` can be used as a person id.
///
/// Person ids double as folder names and object-store keys, so they must be non-empty, at most
/// [`MAX_PERSON_ID_LEN`] bytes, without `/`, `\`, NUL or other control characters, without leading or
/// trailing whitespace, not `.` or `..` and must not start with `-`. Spaces, `_`, `-`, `.` and non-ASCII
/// letters are fine (`Jean Dupont`, `ok_name-1`, `Zoë.Ng`).
pub fn validate_person_id(id: &str) -> Result<(), DirectoryError> {
    let refuse = |reason: &str| {
        Err(DirectoryError::InvalidPersonId {
            id: id.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if id.is_empty() {
        return refuse("it is empty");
    }
    if id.len() > MAX_PERSON_ID_LEN {
        return Err(DirectoryError::InvalidPersonId {
            id: id.to_owned(),
            reason: format!(
                "it is {} bytes long, the limit is {MAX_PERSON_ID_LEN}",
                id.len()
            ),
        });
    }
    if id.contains('/') || id.contains('\\') {
        return refuse("it contains a path separator ('/' or '\\')");
    }
    if id.contains('\0') {
        return refuse("it contains a NUL character");
    }
    if id.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    if id == "." || id == ".." {
        return refuse("'.' and '..' are reserved path components");
    }
    if id.starts_with('-') {
        return refuse("it starts with '-' (would be read as a command-line option)");
    }
    if id.trim() != id {
        return refuse("it has leading or trailing whitespace");
    }
    Ok(())
}

/// The display name used when no record was imported: `_` becomes a space and each word is capitalised
/// (`"jean_dupont"` -> `"Jean Dupont"`, `"att_s1"` -> `"Att S1"`).
pub fn default_display_name(person_id: &str) -> String {
    let words: Vec<String> = person_id
        .replace('_', " ")
        .split_whitespace()
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect();
    if words.is_empty() {
        person_id.to_owned()
    } else {
        words.join(" ")
    }
}

/// Format a time as RFC 3339 UTC with second precision, e.g. `2024-05-01T12:34:56Z`.
/// Times before the Unix epoch are clamped to it.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Storage of people records, enrolled face templates and directory settings.
///
/// Implementations are shared between threads (`Send + Sync`); every method is a complete operation
/// (no partial enrolments are ever visible). Person ids passed in are validated with [`validate_person_id`].
pub trait PeopleDirectory: Send + Sync {
    /// Insert or update the name and details of each record; enrolment state (`enrolled_at`, `image_count`)
    /// in the records is ignored and stored embeddings are kept. An empty name is replaced by
    /// [`default_display_name`]. Returns the number of records written.
    fn upsert_records(&self, records: &[PersonRecord]) -> Result<usize, DirectoryError>;

    /// Replace a person's enrolment: mean embedding + per-image samples (creates the person, with the
    /// default name, if missing). `image_count` becomes `samples.len()` and `enrolled_at` the current time.
    ///
    /// Every embedding must be non-empty and finite, every sample must belong to `person_id`, and all must
    /// share the dimension of the embeddings of the other people already enrolled
    /// ([`DirectoryError::DimensionMismatch`] otherwise).
    fn enroll(
        &self,
        person_id: &str,
        mean: &[f32],
        samples: &[EnrollmentSample],
    ) -> Result<(), DirectoryError>;

    /// Store several enrolments as [`enroll`](Self::enroll) does, plus each one's photos digest,
    /// in as few writes as the backend allows (one transaction, batched writes) and with one
    /// gallery-version change. All are checked before anything is written.
    fn enroll_many(&self, enrollments: &[NewEnrollment]) -> Result<(), DirectoryError>;

    /// The photos digest stored with each enrolled person that has one (see
    /// [`NewEnrollment::photos_digest`]), by person id.
    fn photos_digests(&self) -> Result<BTreeMap<String, String>, DirectoryError>;

    /// Make the next [`gallery`](Self::gallery) load fast after a batch of changes, e.g. by
    /// writing a snapshot of every template (DynamoDB: one S3 object instead of a table scan).
    /// Backends whose `gallery` reads the templates directly have nothing to do.
    fn publish_gallery(&self) -> Result<(), DirectoryError> {
        Ok(())
    }

    /// One person's record, or `None` if unknown.
    fn person(&self, person_id: &str) -> Result<Option<PersonRecord>, DirectoryError>;

    /// All people, sorted by `person_id`.
    fn people(&self) -> Result<Vec<PersonRecord>, DirectoryError>;

    /// Remove a person's record, embedding and samples. Returns whether the person existed.
    fn remove(&self, person_id: &str) -> Result<bool, DirectoryError>;

    /// The mean embeddings of all enrolled people, sorted by `person_id`.
    fn gallery(&self) -> Result<Vec<GalleryEntry>, DirectoryError>;

    /// One person's enrolled template, or `None` if the person is unknown or not enrolled
    /// (for showing one person without reading the whole gallery).
    fn gallery_entry(&self, person_id: &str) -> Result<Option<GalleryEntry>, DirectoryError>;

    /// One person's per-image enrolment samples, in enrolment order (empty if unknown or not
    /// enrolled).
    fn person_samples(&self, person_id: &str) -> Result<Vec<EnrollmentSample>, DirectoryError>;

    /// All per-image enrolment samples, sorted by `person_id` (enrolment order within a person).
    fn samples(&self) -> Result<Vec<EnrollmentSample>, DirectoryError>;

    /// A setting's value, e.g. [`SETTING_MATCH_THRESHOLD`] or [`SETTING_EMBEDDING_MODEL`].
    fn setting(&self, key: &str) -> Result<Option<String>, DirectoryError>;

    /// Store a setting's value (replacing any previous one).
    fn set_setting(&self, key: &str, value: &str) -> Result<(), DirectoryError>;

    /// A number that changes whenever anything a running function caches changes (enrol, remove,
    /// records written, a setting's value changed), so long-running workers know when to reload:
    /// they reload on a change only. Only equality is meaningful.
    fn gallery_version(&self) -> Result<u64, DirectoryError>;
}

/// Check an embedding offered for storage: non-empty and finite.
pub(crate) fn check_embedding(
    person_id: &str,
    what: &str,
    embedding: &[f32],
) -> Result<(), DirectoryError> {
    if embedding.is_empty() {
        return Err(DirectoryError::InvalidEnrollment {
            person_id: person_id.to_owned(),
            reason: format!("{what} is empty"),
        });
    }
    if let Some(i) = embedding.iter().position(|v| !v.is_finite()) {
        return Err(DirectoryError::InvalidEnrollment {
            person_id: person_id.to_owned(),
            reason: format!(
                "{what} has a non-finite value ({}) at index {i}",
                embedding[i]
            ),
        });
    }
    Ok(())
}

/// Check an enrolment offered for storage, whatever the backend: a valid id, a usable mean
/// embedding, and samples that belong to the person and match the mean's dimension.
pub(crate) fn check_enrollment(
    person_id: &str,
    mean: &[f32],
    samples: &[EnrollmentSample],
) -> Result<(), DirectoryError> {
    validate_person_id(person_id)?;
    check_embedding(person_id, "mean embedding", mean)?;
    let invalid = |reason: String| DirectoryError::InvalidEnrollment {
        person_id: person_id.to_owned(),
        reason,
    };
    for (i, sample) in samples.iter().enumerate() {
        if sample.person_id != person_id {
            return Err(invalid(format!(
                "sample {i} ({:?}) belongs to {:?}",
                sample.image, sample.person_id
            )));
        }
        check_embedding(
            person_id,
            &format!("sample {i} ({:?})", sample.image),
            &sample.embedding,
        )?;
        if sample.embedding.len() != mean.len() {
            return Err(invalid(format!(
                "sample {i} ({:?}) has {} values but the mean embedding has {}",
                sample.image,
                sample.embedding.len(),
                mean.len()
            )));
        }
    }
    Ok(())
}

/// Check a batch offered to [`PeopleDirectory::enroll_many`]: every enrolment valid, one
/// dimension throughout, nobody twice. Returns the dimension (`None` for an empty batch).
pub(crate) fn check_enrollments(
    enrollments: &[NewEnrollment],
) -> Result<Option<usize>, DirectoryError> {
    let mut seen = std::collections::HashSet::new();
    let mut dimension: Option<(usize, &str)> = None;
    for e in enrollments {
        check_enrollment(&e.person_id, &e.mean, &e.samples)?;
        if !seen.insert(e.person_id.as_str()) {
            return Err(DirectoryError::InvalidEnrollment {
                person_id: e.person_id.clone(),
                reason: "enrolled twice in one batch".to_string(),
            });
        }
        match dimension {
            Some((expected, _)) if expected != e.mean.len() => {
                return Err(DirectoryError::DimensionMismatch {
                    person_id: e.person_id.clone(),
                    expected,
                    actual: e.mean.len(),
                })
            }
            Some(_) => {}
            None => dimension = Some((e.mean.len(), &e.person_id)),
        }
    }
    Ok(dimension.map(|(d, _)| d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn person_id_validation() {
        for ok in ["ok_name-1", "Jean Dupont", "att_s1", "Zoë.Ng", "a..b", "x"] {
            validate_person_id(ok).unwrap_or_else(|e| panic!("{ok:?} refused: {e}"));
        }
        let long = "a".repeat(MAX_PERSON_ID_LEN + 1);
        for bad in [
            "",
            "../x",
            "a/b",
            "a\\b",
            "..",
            ".",
            "-rf",
            "a\0b",
            "a\nb",
            "tab\there",
            " lead",
            "trail ",
            &long,
        ] {
            let err = validate_person_id(bad).expect_err(bad);
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("{bad:?}")),
                "{msg} should name {bad:?}"
            );
            assert!(matches!(err, DirectoryError::InvalidPersonId { .. }));
        }
        assert!(validate_person_id(&"a".repeat(MAX_PERSON_ID_LEN)).is_ok());
        let msg = validate_person_id("a/b").unwrap_err().to_string();
        assert!(msg.contains("separator"), "{msg}");
    }

    #[test]
    fn consent_is_an_explicit_yes() {
        let mut r = PersonRecord::new("ann").unwrap();
        assert!(!has_consent(&r));
        for (value, expected) in [
            ("Yes", true),
            (" granted ", true),
            ("1", true),
            ("no", false),
            ("", false),
            ("withdrawn", false),
        ] {
            r.details.insert(CONSENT_DETAIL.into(), value.into());
            assert_eq!(has_consent(&r), expected, "{value:?}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(default_display_name("jean_dupont"), "Jean Dupont");
        assert_eq!(default_display_name("att_s1"), "Att S1");
        assert_eq!(default_display_name("Jean Dupont"), "Jean Dupont");
        assert_eq!(default_display_name("émile__zola"), "Émile Zola");
        assert_eq!(default_display_name("_"), "_");
        assert_eq!(PersonRecord::new("ok_name-1").unwrap().name, "Ok Name-1");
        assert!(PersonRecord::new("../x").is_err());
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_714_566_896)),
            "2024-05-01T12:34:56Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn person_record_serde_round_trip() {
        let mut r = PersonRecord::new("jean_dupont").unwrap();
        r.details.insert("year".into(), "2".into());
        r.enrolled_at = Some("2024-05-01T12:34:56Z".into());
        r.image_count = 7;
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<PersonRecord>(&json).unwrap(), r);
        let minimal: PersonRecord =
            serde_json::from_str(r#"{"person_id":"a","name":"A"}"#).unwrap();
        assert_eq!(minimal.image_count, 0);
        assert!(minimal.details.is_empty() && !minimal.is_enrolled());
    }
}
