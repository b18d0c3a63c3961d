//! Embedded people directory in one SQLite file (the default when running without a cloud account).
//!
//! The file uses WAL journaling, so several processes (for example `rollcall worker`s on one machine) can
//! read it while one writes. Embeddings are stored as little-endian `f32` BLOBs; all embeddings in one file
//! share one dimension.
//!
//! Schema (version [`SCHEMA_VERSION`]):
//!
//! - `meta(key, value)`: `format` = [`FORMAT_TAG`], `schema_version`, `gallery_version`;
//! - `settings(key, value)`: user-visible settings ([`PeopleDirectory::setting`]);
//! - `people(person_id, name, details JSON, enrolled_at, image_count, embedding BLOB,
//!   photos_digest)` (`photos_digest` is added to older files on their first enrolment: readers
//!   of schema version 1 ignore it);
//! - `samples(person_id, seq, image, embedding BLOB)`;
//! - `class_members(class, person_id)`: the class rosters ([`AttendanceBook`]);
//! - `attendance(session_id, class, device, started_at, ended_at, record JSON)`: one row per
//!   session, the whole [`SessionAttendance`] (rows and corrections) in `record`.
//!
//! The last two are created by the first writable open of a file written before they existed
//! (readers of schema version 1 ignore them); a read-only open of such a file sees no classes
//! and no attendance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction,
    TransactionBehavior,
};

use super::attendance::{check_attendance, validate_class, AttendanceBook, SessionAttendance};
use super::{
    check_enrollment, check_enrollments, default_display_name, rfc3339_utc, validate_person_id,
    DirectoryError, EnrollmentSample, GalleryEntry, NewEnrollment, PeopleDirectory, PersonRecord,
};

/// Version of the schema this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Value of the `format` key in the `meta` table that marks a rollcall people directory.
pub const FORMAT_TAG: &str = "rollcall-people-directory";

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const CREATE_SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE people (
    person_id     TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}',
    enrolled_at   TEXT,
    image_count   INTEGER NOT NULL DEFAULT 0,
    embedding     BLOB,
    photos_digest TEXT
);
CREATE TABLE samples (
    person_id TEXT NOT NULL REFERENCES people(person_id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    image     TEXT NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (person_id, seq)
);
";

/// Classes and attendance (added after schema version 1 without changing it: older files gain
/// them at their first writable open).
const CREATE_ATTENDANCE: &str = "
CREATE TABLE IF NOT EXISTS class_members (
    class     TEXT NOT NULL,
    person_id TEXT NOT NULL,
    PRIMARY KEY (class, person_id)
);
CREATE TABLE IF NOT EXISTS attendance (
    session_id TEXT PRIMARY KEY NOT NULL,
    class      TEXT NOT NULL,
    device     TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attendance_by_start ON attendance (started_at);
";

const PERSON_COLUMNS: &str = "person_id, name, details, enrolled_at, image_count";

/// A [`PeopleDirectory`] stored in a SQLite database file (or in memory).
///
/// The connection sits behind a mutex, so one value can be shared between threads; open one value per
/// process and share it (`Arc<SqliteDirectory>`), rather than one per thread.
pub struct SqliteDirectory {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDirectory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteDirectory {
    /// Open the directory at `path`, creating the parent directory, the file and the schema as needed.
    ///
    /// A file that is not a SQLite database, or a database that is not a rollcall people directory (or was
    /// written by a newer schema version), gives [`DirectoryError::Corrupt`] naming the path.
    /// Use [`open_existing`](Self::open_existing) or [`open_read_only`](Self::open_read_only)
    /// where a mistyped path must not silently become a new, empty directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DirectoryError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| DirectoryError::Io {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| map_err(path, e))?;
        Self::init(conn, path.to_path_buf())
    }

    /// Open the directory at `path` for reading and writing; it must exist already
    /// ([`DirectoryError::Missing`] otherwise: nothing is created).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, DirectoryError> {
        let path = path.as_ref();
        check_exists(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, e))?;
        Self::init(conn, path.to_path_buf())
    }

    /// Open the existing directory at `path` read-only: nothing in it (or beside it) is created
    /// or changed, and every write fails. For commands that only look people up.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, DirectoryError> {
        let path = path.as_ref();
        check_exists(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, e))?;
        let err = |e| map_err(path, e);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let tables = table_names(&conn).map_err(err)?;
        if tables.is_empty() {
            return Err(DirectoryError::Corrupt {
                path: path.to_path_buf(),
                reason: "the file holds no people directory (it is empty)".to_string(),
            });
        }
        check_schema(&conn, &tables).map_err(|reason| DirectoryError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// A fresh directory that lives only in memory (tests, examples, throw-away runs).
    pub fn open_in_memory() -> Result<Self, DirectoryError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| map_err(&path, e))?;
        Self::init(conn, path)
    }

    /// The database file (`:memory:` for an in-memory directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(mut conn: Connection, path: PathBuf) -> Result<Self, DirectoryError> {
        let err = |e| map_err(&path, e);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // The first statement that reads the file: a non-database fails here with SQLITE_NOTADB.
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(err)?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let tables = table_names(&tx).map_err(err)?;
        if tables.is_empty() {
            tx.execute_batch(CREATE_SCHEMA).map_err(err)?;
            // Start the gallery version from the clock so a re-created file does not repeat old versions.
            let start = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            let mut insert = tx
                .prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(err)?;
            for (key, value) in [
                ("format", FORMAT_TAG.to_owned()),
                ("schema_version", SCHEMA_VERSION.to_string()),
                ("gallery_version", start.to_string()),
            ] {
                insert.execute(params![key, value]).map_err(err)?;
            }
            drop(insert);
            tracing::debug!(path = %path.display(), "created people directory");
        } else {
            check_schema(&tx, &tables).map_err(|reason| DirectoryError::Corrupt {
                path: path.clone(),
                reason,
            })?;
        }
        tx.execute_batch(CREATE_ATTENDANCE).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied change (transactions roll back on drop).
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, e: rusqlite::Error) -> DirectoryError {
        map_err(&self.path, e)
    }

    fn corrupt(&self, reason: String) -> DirectoryError {
        DirectoryError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    fn write_tx<'c>(&self, conn: &'c mut Connection) -> Result<Transaction<'c>, DirectoryError> {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))
    }

    fn bump_gallery_version(&self, tx: &Transaction<'_>) -> Result<(), DirectoryError> {
        let current = self.read_gallery_version(tx)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'gallery_version'",
            params![current.wrapping_add(1).to_string()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn read_gallery_version(&self, conn: &Connection) -> Result<u64, DirectoryError> {
        let value: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'gallery_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let value =
            value.ok_or_else(|| self.corrupt("meta table has no gallery_version".into()))?;
        value
            .parse()
            .map_err(|_| self.corrupt(format!("gallery_version {value:?} is not a number")))
    }

    fn read_person(&self, row: &Row<'_>) -> Result<PersonRecord, DirectoryError> {
        let person_id: String = row.get(0).map_err(|e| self.err(e))?;
        let name: String = row.get(1).map_err(|e| self.err(e))?;
        let details: String = row.get(2).map_err(|e| self.err(e))?;
        let enrolled_at: Option<String> = row.get(3).map_err(|e| self.err(e))?;
        let image_count: i64 = row.get(4).map_err(|e| self.err(e))?;
        let details = serde_json::from_str(&details).map_err(|e| {
            self.corrupt(format!(
                "details of {person_id:?} are not a JSON string map: {e}"
            ))
        })?;
        let image_count = u32::try_from(image_count).map_err(|_| {
            self.corrupt(format!(
                "image_count of {person_id:?} is out of range: {image_count}"
            ))
        })?;
        Ok(PersonRecord {
            person_id,
            name,
            details,
            enrolled_at,
            image_count,
        })
    }

    /// Refuse a batch whose embeddings differ in dimension from those of the people already
    /// enrolled (other than the batch's own people, whose templates it replaces).
    fn check_dimension(
        &self,
        tx: &Transaction<'_>,
        enrollments: &[NewEnrollment],
        dimension: usize,
    ) -> Result<(), DirectoryError> {
        let mut stmt = tx
            .prepare_cached(
                "SELECT person_id, length(embedding) FROM people
                 WHERE embedding IS NOT NULL AND length(embedding) <> ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query([(dimension * 4) as i64])
            .map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let other: String = row.get(0).map_err(|e| self.err(e))?;
            let bytes: i64 = row.get(1).map_err(|e| self.err(e))?;
            if enrollments.iter().any(|e| e.person_id == other) {
                continue;
            }
            if bytes % 4 != 0 {
                return Err(self.corrupt(format!(
                    "mean embedding of {other:?}: embedding BLOB is {bytes} bytes, not a whole number of 4-byte floats"
                )));
            }
            return Err(DirectoryError::DimensionMismatch {
                person_id: enrollments[0].person_id.clone(),
                expected: (bytes / 4) as usize,
                actual: dimension,
            });
        }
        Ok(())
    }

    fn decode(&self, person_id: &str, what: &str, blob: &[u8]) -> Result<Vec<f32>, DirectoryError> {
        decode_embedding(blob)
            .map_err(|reason| self.corrupt(format!("{what} of {person_id:?}: {reason}")))
    }
}

/// Map a rusqlite error: damaged or foreign files become [`DirectoryError::Corrupt`], the rest
/// [`DirectoryError::Backend`].
fn map_err(path: &Path, e: rusqlite::Error) -> DirectoryError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => DirectoryError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a SQLite database ({e})"),
        },
        Some(ErrorCode::DatabaseCorrupt) => DirectoryError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("the SQLite database is damaged ({e})"),
        },
        _ => DirectoryError::Backend {
            backend: "sqlite",
            location: path.display().to_string(),
            message: e.to_string(),
        },
    }
}

/// [`DirectoryError::Missing`] unless something exists at `path`.
fn check_exists(path: &Path) -> Result<(), DirectoryError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(DirectoryError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(error) => Err(DirectoryError::Io {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// The database's own tables, sorted by name.
fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt.query_map([], |row| row.get(0))?;
    names.collect()
}

/// Check that an existing, non-empty database is a rollcall directory this code can use.
fn check_schema(tx: &Connection, tables: &[String]) -> Result<(), String> {
    let foreign = || {
        format!(
            "not a rollcall people directory (it holds the tables {}); choose another file",
            tables.join(", ")
        )
    };
    if !tables.iter().any(|t| t == "meta") {
        return Err(foreign());
    }
    let meta = |key: &str| -> Result<Option<String>, String> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|e| format!("cannot read its meta table: {e}"))
    };
    if meta("format")?.as_deref() != Some(FORMAT_TAG) {
        return Err(foreign());
    }
    let version = meta("schema_version")?.ok_or("its meta table has no schema_version")?;
    match version.parse::<u32>() {
        Ok(SCHEMA_VERSION) => {}
        Ok(v) if v > SCHEMA_VERSION => {
            return Err(format!(
                "it has schema version {v}, written by a newer rollcall; this build reads version {SCHEMA_VERSION}"
            ))
        }
        _ => return Err(format!("unsupported schema version {version:?}")),
    }
    for needed in ["people", "samples", "settings"] {
        if !tables.iter().any(|t| t == needed) {
            return Err(format!("the {needed} table is missing"));
        }
    }
    Ok(())
}

/// Whether the `people` table has the `photos_digest` column (files written before it existed
/// do not).
fn has_digest_column(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('people') WHERE name = 'photos_digest'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Add the `photos_digest` column to a file written before it existed (inside a write
/// transaction, so two writers cannot both add it).
fn ensure_digest_column(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    if !has_digest_column(tx)? {
        tx.execute_batch("ALTER TABLE people ADD COLUMN photos_digest TEXT")?;
    }
    Ok(())
}

/// Encode an embedding as little-endian `f32`s.
fn encode_embedding(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decode a little-endian `f32` BLOB, refusing empty, ragged and non-finite data.
fn decode_embedding(blob: &[u8]) -> Result<Vec<f32>, String> {
    if blob.is_empty() {
        return Err("embedding BLOB is empty".into());
    }
    if blob.len() % 4 != 0 {
        return Err(format!(
            "embedding BLOB is {} bytes, not a whole number of 4-byte floats",
            blob.len()
        ));
    }
    let values: Vec<f32> = blob
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "embedding has a non-finite value ({}) at index {i}",
            values[i]
        ));
    }
    Ok(values)
}

impl PeopleDirectory for SqliteDirectory {
    fn upsert_records(&self, records: &[PersonRecord]) -> Result<usize, DirectoryError> {
        for record in records {
            validate_person_id(&record.person_id)?;
        }
        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO people (person_id, name, details) VALUES (?1, ?2, ?3)
                     ON CONFLICT (person_id) DO UPDATE SET name = excluded.name, details = excluded.details",
                )
                .map_err(|e| self.err(e))?;
            for record in records {
                let name = record.name.trim();
                let name = if name.is_empty() {
                    default_display_name(&record.person_id)
                } else {
                    name.to_owned()
                };
                let details =
                    serde_json::to_string(&record.details).expect("a string map always serialises");
                stmt.execute(params![record.person_id, name, details])
                    .map_err(|e| self.err(e))?;
            }
        }
        // Running functions cache records until the version changes.
        if !records.is_empty() {
            self.bump_gallery_version(&tx)?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(records.len())
    }

    fn enroll(
        &self,
        person_id: &str,
        mean: &[f32],
        samples: &[EnrollmentSample],
    ) -> Result<(), DirectoryError> {
        check_enrollment(person_id, mean, samples)?;
        self.enroll_many(&[NewEnrollment {
            person_id: person_id.to_owned(),
            mean: mean.to_vec(),
            samples: samples.to_vec(),
            photos_digest: None,
        }])
    }

    fn enroll_many(&self, enrollments: &[NewEnrollment]) -> Result<(), DirectoryError> {
        let Some(dimension) = check_enrollments(enrollments)? else {
            return Ok(());
        };
        let mut counts = Vec::with_capacity(enrollments.len());
        for e in enrollments {
            counts.push(u32::try_from(e.samples.len()).map_err(|_| {
                DirectoryError::InvalidEnrollment {
                    person_id: e.person_id.clone(),
                    reason: format!("too many samples ({})", e.samples.len()),
                }
            })?);
        }

        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        self.check_dimension(&tx, enrollments, dimension)?;
        ensure_digest_column(&tx).map_err(|e| self.err(e))?;
        let now = rfc3339_utc(SystemTime::now());
        {
            let mut person = tx
                .prepare_cached(
                    "INSERT INTO people (person_id, name, details, enrolled_at, image_count, embedding, photos_digest)
                     VALUES (?1, ?2, '{}', ?3, ?4, ?5, ?6)
                     ON CONFLICT (person_id) DO UPDATE SET
                         enrolled_at = excluded.enrolled_at,
                         image_count = excluded.image_count,
                         embedding = excluded.embedding,
                         photos_digest = excluded.photos_digest",
                )
                .map_err(|e| self.err(e))?;
            let mut clear = tx
                .prepare_cached("DELETE FROM samples WHERE person_id = ?1")
                .map_err(|e| self.err(e))?;
            let mut sample = tx
                .prepare_cached("INSERT INTO samples (person_id, seq, image, embedding) VALUES (?1, ?2, ?3, ?4)")
                .map_err(|e| self.err(e))?;
            for (e, image_count) in enrollments.iter().zip(counts) {
                person
                    .execute(params![
                        e.person_id,
                        default_display_name(&e.person_id),
                        now,
                        image_count,
                        encode_embedding(&e.mean),
                        e.photos_digest
                    ])
                    .map_err(|err| self.err(err))?;
                clear.execute([&e.person_id]).map_err(|err| self.err(err))?;
                for (seq, s) in e.samples.iter().enumerate() {
                    sample
                        .execute(params![
                            e.person_id,
                            seq as i64,
                            s.image,
                            encode_embedding(&s.embedding)
                        ])
                        .map_err(|err| self.err(err))?;
                }
            }
        }
        self.bump_gallery_version(&tx)?;
        tx.commit().map_err(|e| self.err(e))?;
        tracing::debug!(people = enrollments.len(), dim = dimension, "enrolled");
        Ok(())
    }

    fn photos_digests(&self) -> Result<BTreeMap<String, String>, DirectoryError> {
        let conn = self.lock();
        if !has_digest_column(&conn).map_err(|e| self.err(e))? {
            return Ok(BTreeMap::new());
        }
        let mut stmt = conn
            .prepare(
                "SELECT person_id, photos_digest FROM people
                 WHERE embedding IS NOT NULL AND photos_digest IS NOT NULL",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn person(&self, person_id: &str) -> Result<Option<PersonRecord>, DirectoryError> {
        validate_person_id(person_id)?;
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {PERSON_COLUMNS} FROM people WHERE person_id = ?1"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([person_id]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => Ok(Some(self.read_person(row)?)),
            None => Ok(None),
        }
    }

    fn people(&self) -> Result<Vec<PersonRecord>, DirectoryError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {PERSON_COLUMNS} FROM people ORDER BY person_id"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut people = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            people.push(self.read_person(row)?);
        }
        Ok(people)
    }

    fn remove(&self, person_id: &str) -> Result<bool, DirectoryError> {
        validate_person_id(person_id)?;
        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        tx.execute("DELETE FROM samples WHERE person_id = ?1", [person_id])
            .map_err(|e| self.err(e))?;
        let removed = tx
            .execute("DELETE FROM people WHERE person_id = ?1", [person_id])
            .map_err(|e| self.err(e))?
            > 0;
        if removed {
            self.bump_gallery_version(&tx)?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    fn gallery(&self) -> Result<Vec<GalleryEntry>, DirectoryError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT person_id, image_count, embedding FROM people WHERE embedding IS NOT NULL ORDER BY person_id")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut gallery: Vec<GalleryEntry> = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let person_id: String = row.get(0).map_err(|e| self.err(e))?;
            let image_count: i64 = row.get(1).map_err(|e| self.err(e))?;
            let blob: Vec<u8> = row.get(2).map_err(|e| self.err(e))?;
            let embedding = self.decode(&person_id, "mean embedding", &blob)?;
            if let Some(first) = gallery.first() {
                if first.embedding.len() != embedding.len() {
                    return Err(self.corrupt(format!(
                        "mean embedding of {person_id:?} has {} values but that of {:?} has {}",
                        embedding.len(),
                        first.person_id,
                        first.embedding.len()
                    )));
                }
            }
            let image_count = u32::try_from(image_count).map_err(|_| {
                self.corrupt(format!(
                    "image_count of {person_id:?} is out of range: {image_count}"
                ))
            })?;
            gallery.push(GalleryEntry {
                person_id,
                embedding,
                image_count,
            });
        }
        Ok(gallery)
    }

    fn gallery_entry(&self, person_id: &str) -> Result<Option<GalleryEntry>, DirectoryError> {
        validate_person_id(person_id)?;
        let conn = self.lock();
        let row: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT image_count, embedding FROM people WHERE person_id = ?1 AND embedding IS NOT NULL",
                [person_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((image_count, blob)) = row else {
            return Ok(None);
        };
        let embedding = self.decode(person_id, "mean embedding", &blob)?;
        let image_count = u32::try_from(image_count).map_err(|_| {
            self.corrupt(format!(
                "image_count of {person_id:?} is out of range: {image_count}"
            ))
        })?;
        Ok(Some(GalleryEntry {
            person_id: person_id.to_owned(),
            embedding,
            image_count,
        }))
    }

    fn person_samples(&self, person_id: &str) -> Result<Vec<EnrollmentSample>, DirectoryError> {
        validate_person_id(person_id)?;
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT image, embedding FROM samples WHERE person_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([person_id]).map_err(|e| self.err(e))?;
        let mut samples = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let image: String = row.get(0).map_err(|e| self.err(e))?;
            let blob: Vec<u8> = row.get(1).map_err(|e| self.err(e))?;
            let embedding = self.decode(person_id, &format!("sample {image:?}"), &blob)?;
            samples.push(EnrollmentSample {
                person_id: person_id.to_owned(),
                image,
                embedding,
            });
        }
        Ok(samples)
    }

    fn samples(&self) -> Result<Vec<EnrollmentSample>, DirectoryError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT person_id, image, embedding FROM samples ORDER BY person_id, seq")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut samples: Vec<EnrollmentSample> = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let person_id: String = row.get(0).map_err(|e| self.err(e))?;
            let image: String = row.get(1).map_err(|e| self.err(e))?;
            let blob: Vec<u8> = row.get(2).map_err(|e| self.err(e))?;
            let embedding = self.decode(&person_id, &format!("sample {image:?}"), &blob)?;
            if let Some(first) = samples.first() {
                if first.embedding.len() != embedding.len() {
                    return Err(self.corrupt(format!(
                        "sample {image:?} of {person_id:?} has {} values but the samples of {:?} have {}",
                        embedding.len(),
                        first.person_id,
                        first.embedding.len()
                    )));
                }
            }
            samples.push(EnrollmentSample {
                person_id,
                image,
                embedding,
            });
        }
        Ok(samples)
    }

    fn setting(&self, key: &str) -> Result<Option<String>, DirectoryError> {
        let conn = self.lock();
        conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), DirectoryError> {
        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        let changed = tx
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value
                 WHERE settings.value IS NOT excluded.value",
                params![key, value],
            )
            .map_err(|e| self.err(e))?;
        // Running functions cache settings (the match threshold) until the version changes.
        if changed > 0 {
            self.bump_gallery_version(&tx)?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn gallery_version(&self) -> Result<u64, DirectoryError> {
        let conn = self.lock();
        self.read_gallery_version(&conn)
    }
}

impl SqliteDirectory {
    /// Whether the attendance tables exist (a read-only open of an older file lacks them).
    fn has_attendance_tables(&self, conn: &Connection) -> Result<bool, DirectoryError> {
        let tables = table_names(conn).map_err(|e| self.err(e))?;
        Ok(tables.iter().any(|t| t == "attendance") && tables.iter().any(|t| t == "class_members"))
    }

    fn read_attendance(&self, record: &str) -> Result<SessionAttendance, DirectoryError> {
        serde_json::from_str(record)
            .map_err(|e| self.corrupt(format!("an attendance record is unreadable: {e}")))
    }
}

impl AttendanceBook for SqliteDirectory {
    fn add_to_class(&self, class: &str, person_ids: &[String]) -> Result<usize, DirectoryError> {
        validate_class(class)?;
        for id in person_ids {
            validate_person_id(id)?;
        }
        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        let mut added = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO class_members (class, person_id) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(|e| self.err(e))?;
            for id in person_ids {
                added += insert
                    .execute(params![class, id])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(added)
    }

    fn remove_from_class(
        &self,
        class: &str,
        person_ids: &[String],
    ) -> Result<usize, DirectoryError> {
        validate_class(class)?;
        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        let removed = if person_ids.is_empty() {
            tx.execute("DELETE FROM class_members WHERE class = ?1", [class])
                .map_err(|e| self.err(e))?
        } else {
            let mut removed = 0;
            for id in person_ids {
                removed += tx
                    .execute(
                        "DELETE FROM class_members WHERE class = ?1 AND person_id = ?2",
                        params![class, id],
                    )
                    .map_err(|e| self.err(e))?;
            }
            removed
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    fn classes(&self) -> Result<BTreeMap<String, Vec<String>>, DirectoryError> {
        let conn = self.lock();
        let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if !self.has_attendance_tables(&conn)? {
            return Ok(classes);
        }
        let mut stmt = conn
            .prepare("SELECT class, person_id FROM class_members ORDER BY class, person_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (class, id) = row.map_err(|e| self.err(e))?;
            classes.entry(class).or_default().push(id);
        }
        Ok(classes)
    }

    fn roster(&self, class: &str) -> Result<Vec<String>, DirectoryError> {
        validate_class(class)?;
        let conn = self.lock();
        if !self.has_attendance_tables(&conn)? {
            return Ok(Vec::new());
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT person_id FROM class_members WHERE class = ?1 ORDER BY person_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([class], |row| row.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn store_attendance(&self, attendance: &SessionAttendance) -> Result<(), DirectoryError> {
        check_attendance(attendance)?;
        let record = serde_json::to_string(attendance)
            .map_err(|e| self.corrupt(format!("attendance cannot be written: {e}")))?;
        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        tx.execute(
            "INSERT INTO attendance (session_id, class, device, started_at, ended_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (session_id) DO UPDATE SET class = excluded.class,
                 device = excluded.device, started_at = excluded.started_at,
                 ended_at = excluded.ended_at, record = excluded.record",
            params![
                attendance.session_id,
                attendance.class,
                attendance.device,
                attendance.started_at,
                attendance.ended_at,
                record
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn attendance(&self, session_id: &str) -> Result<Option<SessionAttendance>, DirectoryError> {
        let conn = self.lock();
        if !self.has_attendance_tables(&conn)? {
            return Ok(None);
        }
        let record: Option<String> = conn
            .query_row(
                "SELECT record FROM attendance WHERE session_id = ?1",
                [session_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        record.map(|r| self.read_attendance(&r)).transpose()
    }

    fn attendance_history(&self) -> Result<Vec<SessionAttendance>, DirectoryError> {
        let conn = self.lock();
        if !self.has_attendance_tables(&conn)? {
            return Ok(Vec::new());
        }
        let mut stmt = conn
            .prepare("SELECT record FROM attendance ORDER BY started_at, session_id")
            .map_err(|e| self.err(e))?;
        let records = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for record in records {
            out.push(self.read_attendance(&record.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    fn prune_attendance(&self, before: &str) -> Result<usize, DirectoryError> {
        let mut conn = self.lock();
        let tx = self.write_tx(&mut conn)?;
        let removed = tx
            .execute("DELETE FROM attendance WHERE ended_at < ?1", [before])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn record(id: &str, name: &str, details: &[(&str, &str)]) -> PersonRecord {
        PersonRecord {
            person_id: id.into(),
            name: name.into(),
            details: details
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            enrolled_at: None,
            image_count: 0,
        }
    }

    fn sample(id: &str, image: &str, embedding: &[f32]) -> EnrollmentSample {
        EnrollmentSample {
            person_id: id.into(),
            image: image.into(),
            embedding: embedding.to_vec(),
        }
    }

    #[test]
    fn is_send_sync_and_object_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SqliteDirectory>();
        let dir: Arc<dyn PeopleDirectory> = Arc::new(SqliteDirectory::open_in_memory().unwrap());
        assert!(dir.people().unwrap().is_empty());
    }

    #[test]
    fn records_round_trip_and_persist() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nested/dir/people.sqlite");
        let bob = record("bob", "Bob Stone", &[("student_id", "S2"), ("year", "3")]);
        let alice = record("alice", "Alice Smith", &[("programme", "BSc Physics")]);
        {
            let dir = SqliteDirectory::open(&path).unwrap();
            assert_eq!(dir.path(), path);
            assert_eq!(
                dir.upsert_records(&[bob.clone(), alice.clone()]).unwrap(),
                2
            );
            assert_eq!(dir.people().unwrap(), vec![alice.clone(), bob.clone()]);
            assert_eq!(dir.person("bob").unwrap(), Some(bob.clone()));
            assert_eq!(dir.person("nobody").unwrap(), None);
            assert!(dir.person("../x").is_err());
            dir.set_setting("match_threshold", "0.391").unwrap();
            dir.set_setting("match_threshold", "0.385").unwrap();
        }
        let dir = SqliteDirectory::open(&path).unwrap();
        assert_eq!(dir.people().unwrap(), vec![alice, bob]);
        assert_eq!(
            dir.setting("match_threshold").unwrap().as_deref(),
            Some("0.385")
        );
        assert_eq!(dir.setting("embedding_model").unwrap(), None);
        let mode: String = dir
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn upsert_keeps_embeddings_and_defaults_empty_names() {
        let dir = SqliteDirectory::open_in_memory().unwrap();
        dir.enroll(
            "jean_dupont",
            &[1.0, 0.0],
            &[sample("jean_dupont", "a.jpg", &[1.0, 0.0])],
        )
        .unwrap();
        let enrolled = dir.person("jean_dupont").unwrap().unwrap();
        assert_eq!(enrolled.name, "Jean Dupont");
        assert_eq!(enrolled.image_count, 1);
        let version = dir.gallery_version().unwrap();

        let mut update = record("jean_dupont", "Jean-Luc Dupont", &[("year", "2")]);
        update.enrolled_at = Some("1999-01-01T00:00:00Z".into()); // ignored
        update.image_count = 99; // ignored
        dir.upsert_records(&[update, record("ann", "  ", &[])])
            .unwrap();
        let updated = dir.person("jean_dupont").unwrap().unwrap();
        assert_eq!(updated.name, "Jean-Luc Dupont");
        assert_eq!(
            updated.details,
            BTreeMap::from([("year".to_string(), "2".to_string())])
        );
        assert_eq!(updated.enrolled_at, enrolled.enrolled_at);
        assert_eq!(updated.image_count, 1);
        assert_eq!(dir.gallery().unwrap().len(), 1);
        assert_eq!(dir.samples().unwrap().len(), 1);
        assert_eq!(dir.person("ann").unwrap().unwrap().name, "Ann");
        assert_ne!(
            dir.gallery_version().unwrap(),
            version,
            "running functions cache records: they reload on the new version"
        );

        let err = dir
            .upsert_records(&[record("ok", "Ok", &[]), record("a/b", "Bad", &[])])
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::InvalidPersonId { .. }),
            "{err}"
        );
        assert!(
            dir.person("ok").unwrap().is_none(),
            "nothing written when one record is invalid"
        );
    }

    #[test]
    fn enroll_replaces_previous_embedding_and_samples() {
        let dir = SqliteDirectory::open_in_memory().unwrap();
        dir.upsert_records(&[record("alice", "Alice Smith", &[("year", "1")])])
            .unwrap();
        assert!(dir.gallery().unwrap().is_empty());
        assert!(!dir.person("alice").unwrap().unwrap().is_enrolled());

        let first = [
            sample("alice", "1.jpg", &[1.0, 0.0, 0.0]),
            sample("alice", "2.jpg", &[0.0, 1.0, 0.0]),
        ];
        dir.enroll("alice", &[0.5, 0.5, 0.0], &first).unwrap();
        dir.enroll(
            "bob",
            &[0.0, 0.0, 1.0],
            &[sample("bob", "b.png", &[0.0, 0.0, 1.0])],
        )
        .unwrap();
        let alice = dir.person("alice").unwrap().unwrap();
        assert_eq!(alice.name, "Alice Smith", "enrolment keeps the record");
        assert_eq!(alice.image_count, 2);
        let at = alice.enrolled_at.unwrap();
        assert!(
            at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{at}"
        );
        assert_eq!(dir.samples().unwrap().len(), 3);

        let second = [
            sample("alice", "3.jpg", &[0.0, 0.6, 0.8]),
            sample("alice", "4.jpg", &[0.0, 0.8, 0.6]),
            sample("alice", "5.jpg", &[0.0, 0.7, 0.7]),
        ];
        dir.enroll("alice", &[0.0, 0.7, 0.7], &second).unwrap();
        assert_eq!(
            dir.gallery().unwrap(),
            vec![
                GalleryEntry {
                    person_id: "alice".into(),
                    embedding: vec![0.0, 0.7, 0.7],
                    image_count: 3
                },
                GalleryEntry {
                    person_id: "bob".into(),
                    embedding: vec![0.0, 0.0, 1.0],
                    image_count: 1
                },
            ]
        );
        let mut expected = second.to_vec();
        expected.push(sample("bob", "b.png", &[0.0, 0.0, 1.0]));
        assert_eq!(dir.samples().unwrap(), expected);
        assert_eq!(dir.person("alice").unwrap().unwrap().image_count, 3);
        assert_eq!(dir.person("bob").unwrap().unwrap().name, "Bob");
    }

    #[test]
    fn remove_deletes_record_embedding_and_samples() {
        let dir = SqliteDirectory::open_in_memory().unwrap();
        dir.enroll(
            "alice",
            &[1.0, 0.0],
            &[sample("alice", "1.jpg", &[1.0, 0.0])],
        )
        .unwrap();
        dir.enroll("bob", &[0.0, 1.0], &[sample("bob", "1.jpg", &[0.0, 1.0])])
            .unwrap();
        let v = dir.gallery_version().unwrap();
        assert!(dir.remove("alice").unwrap());
        assert_ne!(dir.gallery_version().unwrap(), v);
        assert!(dir.person("alice").unwrap().is_none());
        assert_eq!(dir.gallery().unwrap().len(), 1);
        assert!(dir.samples().unwrap().iter().all(|s| s.person_id == "bob"));
        let v = dir.gallery_version().unwrap();
        assert!(!dir.remove("alice").unwrap());
        assert_eq!(
            dir.gallery_version().unwrap(),
            v,
            "removing nobody changes nothing"
        );
        assert!(dir.remove("..").is_err());
    }

    #[test]
    fn one_person_template_and_samples() {
        let dir = SqliteDirectory::open_in_memory().unwrap();
        dir.upsert_records(&[record("ann", "Ann", &[])]).unwrap();
        assert_eq!(dir.gallery_entry("ann").unwrap(), None, "record only");
        assert!(dir.person_samples("ann").unwrap().is_empty());
        assert_eq!(dir.gallery_entry("nobody").unwrap(), None);
        assert!(dir.person_samples("nobody").unwrap().is_empty());
        assert!(dir.gallery_entry("../x").is_err());
        assert!(dir.person_samples("a/b").is_err());

        let ann = [
            sample("ann", "2.jpg", &[0.0, 1.0]),
            sample("ann", "1.jpg", &[1.0, 0.0]),
        ];
        dir.enroll("ann", &[0.5, 0.5], &ann).unwrap();
        dir.enroll("bob", &[0.0, 1.0], &[sample("bob", "b.jpg", &[0.0, 1.0])])
            .unwrap();
        assert_eq!(
            dir.gallery_entry("ann").unwrap(),
            Some(GalleryEntry {
                person_id: "ann".into(),
                embedding: vec![0.5, 0.5],
                image_count: 2
            })
        );
        assert_eq!(
            dir.person_samples("ann").unwrap(),
            ann.to_vec(),
            "enrolment order, not name order"
        );
        dir.remove("ann").unwrap();
        assert_eq!(dir.gallery_entry("ann").unwrap(), None);
        assert!(dir.person_samples("ann").unwrap().is_empty());
        assert_eq!(dir.person_samples("bob").unwrap().len(), 1);
    }

    #[test]
    fn gallery_version_changes_with_the_gallery() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("people.db");
        let dir = SqliteDirectory::open(&path).unwrap();
        let mut seen = vec![dir.gallery_version().unwrap()];
        dir.enroll("a", &[1.0], &[]).unwrap();
        seen.push(dir.gallery_version().unwrap());
        dir.enroll("a", &[2.0], &[]).unwrap();
        seen.push(dir.gallery_version().unwrap());
        // What functions cache besides the embeddings: settings and records.
        dir.set_setting("match_threshold", "0.4").unwrap();
        seen.push(dir.gallery_version().unwrap());
        dir.set_setting("match_threshold", "0.4").unwrap();
        assert_eq!(dir.gallery_version().unwrap(), seen[3], "unchanged value");
        dir.upsert_records(&[PersonRecord::new("a").unwrap()])
            .unwrap();
        seen.push(dir.gallery_version().unwrap());
        dir.upsert_records(&[]).unwrap();
        assert_eq!(dir.gallery_version().unwrap(), seen[4], "nothing written");
        dir.remove("a").unwrap();
        seen.push(dir.gallery_version().unwrap());
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique, seen, "every change gives a new version: {seen:?}");
        // Another connection (another process) sees the same version.
        let other = SqliteDirectory::open(&path).unwrap();
        assert_eq!(other.gallery_version().unwrap(), seen[5]);
        other.enroll("b", &[3.0], &[]).unwrap();
        assert_ne!(dir.gallery_version().unwrap(), seen[5]);
        assert_eq!(dir.gallery().unwrap()[0].person_id, "b");
    }

    #[test]
    fn dimension_mismatch_and_bad_embeddings_rejected() {
        let dir = SqliteDirectory::open_in_memory().unwrap();
        dir.enroll("alice", &[1.0, 0.0, 0.0], &[]).unwrap();
        let v = dir.gallery_version().unwrap();
        let err = dir.enroll("bob", &[1.0, 0.0], &[]).unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::DimensionMismatch {
                    expected: 3,
                    actual: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("\"bob\""), "{err}");
        assert!(dir.person("bob").unwrap().is_none());
        assert_eq!(dir.gallery_version().unwrap(), v);
        // The only enrolled person may change dimension (e.g. a new model): all embeddings still agree.
        dir.enroll("alice", &[1.0, 0.0], &[]).unwrap();
        dir.enroll("bob", &[0.0, 1.0], &[]).unwrap();

        for (mean, samples, what) in [
            (vec![], vec![], "is empty"),
            (vec![f32::NAN, 1.0], vec![], "non-finite"),
            (vec![1.0, f32::INFINITY], vec![], "non-finite"),
            (
                vec![1.0, 0.0],
                vec![sample("bob", "x", &[1.0, f32::NEG_INFINITY])],
                "non-finite",
            ),
            (
                vec![1.0, 0.0],
                vec![sample("bob", "x", &[1.0])],
                "has 1 values",
            ),
            (
                vec![1.0, 0.0],
                vec![sample("alice", "x", &[1.0, 0.0])],
                "belongs to",
            ),
        ] {
            let err = dir.enroll("bob", &mean, &samples).unwrap_err();
            assert!(
                matches!(err, DirectoryError::InvalidEnrollment { .. }),
                "{err}"
            );
            assert!(
                err.to_string().contains(what),
                "{err} should mention {what}"
            );
        }
        assert_eq!(dir.gallery().unwrap()[1].embedding, vec![0.0, 1.0]);
    }

    #[test]
    fn damaged_embeddings_are_reported_on_read() {
        let dir = SqliteDirectory::open_in_memory().unwrap();
        dir.enroll(
            "alice",
            &[1.0, 0.0],
            &[sample("alice", "1.jpg", &[1.0, 0.0])],
        )
        .unwrap();
        dir.lock()
            .execute(
                "UPDATE people SET embedding = x'0000803f000000' WHERE person_id = 'alice'",
                [],
            )
            .unwrap();
        let err = dir.gallery().unwrap_err();
        assert!(matches!(err, DirectoryError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains("7 bytes") && err.to_string().contains("alice"),
            "{err}"
        );

        let nan = encode_embedding(&[1.0, f32::NAN]);
        dir.lock()
            .execute("UPDATE samples SET embedding = ?1", [nan])
            .unwrap();
        let err = dir.samples().unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
    }

    #[test]
    fn garbage_file_is_reported_as_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("people.sqlite");
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, garbage).unwrap();
        let err = SqliteDirectory::open(&path).unwrap_err();
        assert!(matches!(err, DirectoryError::Corrupt { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("not a SQLite database"),
            "{msg}"
        );

        std::fs::write(&path, "person_id,name\nalice,Alice\n").unwrap();
        let err = SqliteDirectory::open(&path).unwrap_err();
        assert!(matches!(err, DirectoryError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn foreign_schema_is_reported_as_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
            .unwrap();
        let err = SqliteDirectory::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DirectoryError::Corrupt { .. }), "{msg}");
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("invoices"),
            "{msg}"
        );

        let newer = tmp.path().join("newer.db");
        drop(SqliteDirectory::open(&newer).unwrap());
        Connection::open(&newer)
            .unwrap()
            .execute(
                "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        let msg = SqliteDirectory::open(&newer).unwrap_err().to_string();
        assert!(msg.contains("schema version 99"), "{msg}");
    }

    #[test]
    fn concurrent_use_from_threads() {
        let dir = Arc::new(SqliteDirectory::open_in_memory().unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let dir = Arc::clone(&dir);
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let id = format!("p{t}_{i}");
                        dir.enroll(&id, &[t as f32, i as f32], &[sample(&id, "x", &[1.0, 2.0])])
                            .unwrap();
                        assert!(dir.gallery().unwrap().len() > i);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(dir.gallery().unwrap().len(), 40);
        assert_eq!(dir.people().unwrap().len(), 40);
    }

    #[test]
    fn enroll_many_in_one_transaction_with_photo_digests() {
        use crate::directory::synthetic::synthetic_enrollment;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("people.db");
        let dir = SqliteDirectory::open(&path).unwrap();
        dir.upsert_records(&[record("student-000002", "Bea Example", &[("year", "1")])])
            .unwrap();
        let v0 = dir.gallery_version().unwrap();
        let mut batch: Vec<NewEnrollment> = (0..5).map(|i| synthetic_enrollment(i, 3, 8)).collect();
        batch[2].photos_digest = Some("abc".into());
        batch[4].photos_digest = Some("def".into());
        dir.enroll_many(&batch).unwrap();
        assert_eq!(dir.gallery_version().unwrap(), v0.wrapping_add(1));
        assert_eq!(dir.gallery().unwrap().len(), 5);
        assert_eq!(dir.samples().unwrap().len(), 15);
        let kept = dir.person("student-000002").unwrap().unwrap();
        assert_eq!((kept.name.as_str(), kept.image_count), ("Bea Example", 3));
        let digests = dir.photos_digests().unwrap();
        assert_eq!(digests.len(), 2);
        assert_eq!(digests["student-000002"], "abc");
        // Re-enrolled without a digest (e.g. by `enroll`): the old digest no longer applies.
        dir.enroll("student-000004", &batch[4].mean, &batch[4].samples)
            .unwrap();
        assert!(!dir.photos_digests().unwrap().contains_key("student-000004"));
        // Checked whole before anything is written.
        let v1 = dir.gallery_version().unwrap();
        let mut bad = vec![
            synthetic_enrollment(10, 1, 8),
            synthetic_enrollment(11, 1, 4),
        ];
        assert!(matches!(
            dir.enroll_many(&bad),
            Err(DirectoryError::DimensionMismatch {
                expected: 8,
                actual: 4,
                ..
            })
        ));
        bad[1] = synthetic_enrollment(10, 1, 8);
        assert!(matches!(
            dir.enroll_many(&bad),
            Err(DirectoryError::InvalidEnrollment { .. })
        ));
        assert!(matches!(
            dir.enroll_many(&[synthetic_enrollment(12, 1, 4)]),
            Err(DirectoryError::DimensionMismatch {
                expected: 8,
                actual: 4,
                ..
            })
        ));
        assert_eq!(dir.gallery_version().unwrap(), v1);
        assert!(dir.person("student-000010").unwrap().is_none());
        dir.enroll_many(&[]).unwrap();
        // A whole re-enrolment with another dimension replaces everyone at once.
        let everyone: Vec<NewEnrollment> = (0..5).map(|i| synthetic_enrollment(i, 1, 4)).collect();
        dir.enroll_many(&everyone).unwrap();
        assert!(dir
            .gallery()
            .unwrap()
            .iter()
            .all(|e| e.embedding.len() == 4));
    }

    #[test]
    fn files_without_the_digest_column_gain_it_at_their_first_enrolment() {
        use crate::directory::synthetic::synthetic_enrollment;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.db");
        {
            let dir = SqliteDirectory::open(&path).unwrap();
            dir.enroll_many(&[synthetic_enrollment(0, 1, 4)]).unwrap();
            // As written before the column existed.
            dir.lock()
                .execute_batch("ALTER TABLE people DROP COLUMN photos_digest")
                .unwrap();
        }
        let dir = SqliteDirectory::open(&path).unwrap();
        assert!(dir.photos_digests().unwrap().is_empty());
        assert_eq!(dir.gallery().unwrap().len(), 1);
        let mut again = synthetic_enrollment(1, 1, 4);
        again.photos_digest = Some("d1".into());
        dir.enroll_many(&[again]).unwrap();
        assert_eq!(dir.photos_digests().unwrap()["student-000001"], "d1");
    }

    fn attendance_of(session_id: &str, ended_at: &str, ids: &[&str]) -> SessionAttendance {
        use crate::directory::attendance::{AttendanceRow, AttendanceStatus};
        SessionAttendance {
            session_id: session_id.into(),
            class: "c".into(),
            device: "cam".into(),
            started_at: "2026-01-01T08:00:00Z".into(),
            ended_at: ended_at.into(),
            confirm_clips: 2,
            rows: ids
                .iter()
                .map(|id| AttendanceRow {
                    person_id: id.to_string(),
                    name: id.to_string(),
                    status: AttendanceStatus::Absent,
                    decided: None,
                    clips: 0,
                    best_similarity: None,
                    first_seen_ns: None,
                    last_seen_ns: None,
                })
                .collect(),
            corrections: vec![],
        }
    }

    #[test]
    fn classes_attendance_prune_and_erase() {
        let dir = SqliteDirectory::open_in_memory().unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dir.add_to_class("c", &ids(&["bob", "ann", "bob"])).unwrap(),
            2
        );
        assert_eq!(dir.add_to_class("c", &ids(&["ann"])).unwrap(), 0);
        dir.add_to_class("d", &ids(&["ann"])).unwrap();
        assert_eq!(dir.roster("c").unwrap(), ids(&["ann", "bob"]));
        assert!(dir.add_to_class("a/b", &ids(&["ann"])).is_err());
        assert!(dir.add_to_class("c", &ids(&["../x"])).is_err());

        dir.store_attendance(&attendance_of(
            "s1",
            "2026-01-01T09:00:00Z",
            &["ann", "bob"],
        ))
        .unwrap();
        dir.store_attendance(&attendance_of("s2", "2026-03-01T09:00:00Z", &["ann"]))
            .unwrap();
        assert!(dir
            .store_attendance(&attendance_of(
                "s3",
                "2026-03-01T09:00:00Z",
                &["ann", "ann"]
            ))
            .is_err());
        assert_eq!(dir.attendance_history().unwrap().len(), 2);

        let erased = dir.erase_person("ann").unwrap();
        assert_eq!(
            (erased.roster_entries, erased.attendance_rows),
            (2, 2),
            "{erased:?}"
        );
        assert_eq!(dir.roster("c").unwrap(), ids(&["bob"]));
        assert!(dir.roster("d").unwrap().is_empty());
        assert!(!dir.attendance("s1").unwrap().unwrap().mentions("ann"));

        assert_eq!(dir.prune_attendance("2026-02-01T00:00:00Z").unwrap(), 1);
        assert!(dir.attendance("s1").unwrap().is_none());
        assert!(dir.attendance("s2").unwrap().is_some());
        assert_eq!(dir.remove_from_class("c", &[]).unwrap(), 1);
        assert!(dir.classes().unwrap().is_empty());
    }

    #[test]
    fn files_without_the_attendance_tables_read_as_empty_and_gain_them_when_written() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("people.db");
        SqliteDirectory::open(&path).unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("DROP TABLE class_members; DROP TABLE attendance;")
                .unwrap();
        }
        let reader = SqliteDirectory::open_read_only(&path).unwrap();
        assert!(reader.classes().unwrap().is_empty());
        assert!(reader.attendance("s1").unwrap().is_none());
        assert!(reader.attendance_history().unwrap().is_empty());
        let writer = SqliteDirectory::open_existing(&path).unwrap();
        writer.add_to_class("c", &["ann".to_string()]).unwrap();
        assert_eq!(reader.roster("c").unwrap(), vec!["ann"]);
    }
}
