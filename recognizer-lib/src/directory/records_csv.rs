//! Import of academic records from a CSV file (RFC 4180, as written by spreadsheets).
//!
//! The first non-blank row is the header. It must name a `person_id` and a `name` column (matched
//! case-insensitively, surrounding spaces ignored); every other named column becomes a detail of the
//! [`PersonRecord`] (key = the header text as written, trimmed; empty values are omitted). Values are trimmed.
//! Quoted fields may contain commas, doubled quotes (`""`) and line breaks; a UTF-8 byte-order mark at the
//! start is ignored; line endings may be `\n` or `\r\n`. Columns with an empty header are ignored.
//!
//! Rows that cannot be imported (wrong number of fields, invalid `person_id`, empty name, a `person_id`
//! seen before — the first occurrence wins) are returned as [`RejectedRow`]s with their line number; the
//! rest is imported. Blank rows (no values at all) are skipped silently.
//!
//! ```
//! use rollcall_recognizer::directory::records_csv::read_records_from;
//!
//! let csv = "person_id,name,programme\njean_dupont,\"Dupont, Jean\",MSc AI\n../x,Bad,\n";
//! let import = read_records_from(csv.as_bytes(), "inline.csv")?;
//! assert_eq!(import.records[0].name, "Dupont, Jean");
//! assert_eq!(import.records[0].details["programme"], "MSc AI");
//! assert_eq!(import.rejected[0].line, 3);
//! # Ok::<(), rollcall_recognizer::directory::DirectoryError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use rollcall_protocol::input_files::read_regular_file;

use super::{validate_person_id, DirectoryError, PersonRecord};

/// Largest records file read (256 MiB: about a million rows of academic records).
pub const MAX_RECORDS_BYTES: u64 = 256 << 20;

/// The outcome of reading a records file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordsImport {
    /// Valid records, in file order (`enrolled_at` = `None`, `image_count` = 0).
    pub records: Vec<PersonRecord>,
    /// Rows that were not imported, in file order.
    pub rejected: Vec<RejectedRow>,
}

/// A row of the records file that was not imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow {
    /// 1-based line number where the row starts (the header is on line 1 unless preceded by blank lines).
    pub line: u64,
    /// Why the row was rejected.
    pub reason: String,
}

impl std::fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Read records from the CSV file at `path`.
///
/// A missing or unreadable file, or one that is not a regular file (a FIFO, a device, a
/// directory: refused without reading, so nothing blocks) or larger than [`MAX_RECORDS_BYTES`],
/// gives [`DirectoryError::Io`], a file without a usable header
/// [`DirectoryError::InvalidRecords`]; both name the path.
pub fn read_records(path: &Path) -> Result<RecordsImport, DirectoryError> {
    let bytes =
        read_regular_file(path, Some(MAX_RECORDS_BYTES)).map_err(|error| DirectoryError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    parse_records(&bytes, path)
}

/// Read records from any reader; `source` names it in errors (e.g. a file name or `"stdin"`).
pub fn read_records_from<R: Read>(
    mut reader: R,
    source: &str,
) -> Result<RecordsImport, DirectoryError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|error| DirectoryError::Io {
            path: PathBuf::from(source),
            error,
        })?;
    parse_records(&bytes, Path::new(source))
}

fn parse_records(bytes: &[u8], source: &Path) -> Result<RecordsImport, DirectoryError> {
    let invalid = |reason: String| DirectoryError::InvalidRecords {
        path: source.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        invalid(format!(
            "not valid UTF-8 (line {line}); save it as \"CSV UTF-8\""
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut rows = parse_csv(text).into_iter().filter(|row| !row.is_blank());
    let header = rows.next().ok_or_else(|| {
        invalid("no header row: the file is empty (expected columns person_id,name,...)".into())
    })?;
    if let Some(error) = &header.error {
        return Err(invalid(format!("header on line {}: {error}", header.line)));
    }
    let columns: Vec<String> = header.fields.iter().map(|h| h.trim().to_owned()).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, column) in columns.iter().enumerate() {
        if column.is_empty() {
            continue;
        }
        if let Some(first) = seen.insert(column.to_lowercase(), i) {
            return Err(invalid(format!(
                "header on line {}: column {:?} appears twice (columns {} and {})",
                header.line,
                column,
                first + 1,
                i + 1
            )));
        }
    }
    let find = |wanted: &str| seen.get(wanted).copied();
    let (id_col, name_col) = match (find("person_id"), find("name")) {
        (Some(id), Some(name)) => (id, name),
        (id, _) => {
            let missing = if id.is_none() { "person_id" } else { "name" };
            return Err(invalid(format!(
                "header on line {} has no {missing} column (found: {}); the first row must name the columns, \
                 including person_id and name",
                header.line,
                columns.join(",")
            )));
        }
    };
    if columns.iter().any(String::is_empty) {
        tracing::warn!(source = %source.display(), "records file has columns without a header; they are ignored");
    }

    let mut import = RecordsImport::default();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for row in rows {
        let reject = |reason: String| RejectedRow {
            line: row.line,
            reason,
        };
        if let Some(error) = &row.error {
            import.rejected.push(reject(error.clone()));
            continue;
        }
        if row.fields.len() != columns.len() {
            import.rejected.push(reject(format!(
                "expected {} fields as in the header, found {}",
                columns.len(),
                row.fields.len()
            )));
            continue;
        }
        let person_id = row.fields[id_col].trim();
        if let Err(e) = validate_person_id(person_id) {
            import.rejected.push(reject(e.to_string()));
            continue;
        }
        let name = row.fields[name_col].trim();
        if name.is_empty() {
            import
                .rejected
                .push(reject(format!("missing name for person_id {person_id:?}")));
            continue;
        }
        if let Some(first) = first_line.get(person_id) {
            import.rejected.push(reject(format!(
                "duplicate person_id {person_id:?} (first on line {first}; that row is kept)"
            )));
            continue;
        }
        first_line.insert(person_id.to_owned(), row.line);
        let details: BTreeMap<String, String> = columns
            .iter()
            .zip(&row.fields)
            .enumerate()
            .filter(|(i, (column, value))| {
                *i != id_col && *i != name_col && !column.is_empty() && !value.trim().is_empty()
            })
            .map(|(_, (column, value))| (column.clone(), value.trim().to_owned()))
            .collect();
        import.records.push(PersonRecord {
            person_id: person_id.to_owned(),
            name: name.to_owned(),
            details,
            enrolled_at: None,
            image_count: 0,
        });
    }
    Ok(import)
}

/// One CSV record as parsed, before interpretation.
#[derive(Debug)]
struct CsvRow {
    /// Line where the record starts.
    line: u64,
    fields: Vec<String>,
    /// A syntax problem that makes the row unusable.
    error: Option<String>,
}

impl CsvRow {
    fn is_blank(&self) -> bool {
        self.error.is_none() && self.fields.iter().all(|f| f.trim().is_empty())
    }
}

/// Split RFC 4180 text into records. Lenient: a quote inside an unquoted field, or after a closing quote,
/// is kept literally; only an unterminated quoted field is an error (it swallows the rest of the text).
fn parse_csv(text: &str) -> Vec<CsvRow> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line: u64 = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_quotes = false;
        let mut was_quoted = false;
        let mut error = None;
        loop {
            let Some(c) = chars.next() else {
                if in_quotes {
                    error = Some("unterminated quoted field (a '\"' is never closed)".to_owned());
                }
                fields.push(field);
                break;
            };
            if in_quotes {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => in_quotes = false,
                    '\n' | '\r' => {
                        if c == '\n' || chars.peek() != Some(&'\n') {
                            line += 1;
                        }
                        field.push(c);
                    }
                    c => field.push(c),
                }
                continue;
            }
            match c {
                '"' if !was_quoted && field.trim().is_empty() => {
                    field.clear();
                    in_quotes = true;
                    was_quoted = true;
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '\n' | '\r' => {
                    if c == '\r' && chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    line += 1;
                    fields.push(field);
                    break;
                }
                c => field.push(c),
            }
        }
        rows.push(CsvRow {
            line: start,
            fields,
            error,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(text: &str) -> RecordsImport {
        read_records_from(text.as_bytes(), "test.csv").unwrap()
    }

    fn reasons(import: &RecordsImport) -> Vec<(u64, String)> {
        import
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.clone()))
            .collect()
    }

    #[test]
    fn good_and_bad_rows() {
        let text = "\u{feff}Person_ID , Name ,student_id,programme,year\r\n\
                    jean_dupont,\"Dupont, Jean\",S001,\"MSc \"\"AI\"\"\",2\r\n\
                    alice,Alice Smith,S002,,1\r\n\
                    \r\n\
                    bob,,S003,BSc,3\r\n\
                    ../x,Evil,S004,BSc,3\r\n\
                    carol,Carol,S005,BSc,3,extra\r\n\
                    dan,Dan\r\n\
                    alice,Alice Again,S006,BSc,2\r\n\
                    \"multi\",\"Line\r\nName\",S007,,\r\n\
                    Jean Dupont,  Jean D.  ,S008,, 4 \r\n";
        let result = import(text);
        let ids: Vec<&str> = result
            .records
            .iter()
            .map(|r| r.person_id.as_str())
            .collect();
        assert_eq!(ids, ["jean_dupont", "alice", "multi", "Jean Dupont"]);

        let jean = &result.records[0];
        assert_eq!(jean.name, "Dupont, Jean");
        assert_eq!(
            jean.details,
            BTreeMap::from([
                ("student_id".to_string(), "S001".to_string()),
                ("programme".to_string(), "MSc \"AI\"".to_string()),
                ("year".to_string(), "2".to_string()),
            ])
        );
        assert_eq!((jean.enrolled_at.as_ref(), jean.image_count), (None, 0));
        let alice = &result.records[1];
        assert_eq!(alice.name, "Alice Smith");
        assert!(
            !alice.details.contains_key("programme"),
            "empty values are omitted"
        );
        assert_eq!(result.records[2].name, "Line\r\nName");
        assert_eq!(result.records[3].name, "Jean D.");
        assert_eq!(result.records[3].details["year"], "4");

        let rejected = reasons(&result);
        let lines: Vec<u64> = rejected.iter().map(|r| r.0).collect();
        assert_eq!(lines, [5, 6, 7, 8, 9]);
        assert!(rejected[0].1.contains("missing name"), "{rejected:?}");
        assert!(rejected[1].1.contains("\"../x\""), "{rejected:?}");
        assert!(rejected[2].1.contains("expected 5 fields") && rejected[2].1.contains("found 6"));
        assert!(rejected[3].1.contains("found 2"), "{rejected:?}");
        assert!(
            rejected[4].1.contains("duplicate") && rejected[4].1.contains("line 3"),
            "{rejected:?}"
        );
        assert_eq!(
            result.rejected[0].to_string(),
            format!("line 5: {}", rejected[0].1)
        );
    }

    #[test]
    fn extra_columns_become_details() {
        let result =
            import("person_id,name,Student ID,Email,Year\nkim,Kim Lee,S9,kim@example.edu,\n");
        assert!(result.rejected.is_empty());
        assert_eq!(
            result.records[0].details,
            BTreeMap::from([
                ("Student ID".to_string(), "S9".to_string()),
                ("Email".to_string(), "kim@example.edu".to_string()),
            ])
        );
    }

    #[test]
    fn minimal_file_lf_without_final_newline_and_unnamed_columns() {
        let result = import("\n\nname,person_id,\n\"Ann\",ann,ignored\n,,\nBo,bo,");
        assert_eq!(result.records.len(), 2);
        assert!(result.records.iter().all(|r| r.details.is_empty()));
        assert_eq!(result.records[1].person_id, "bo");
        assert!(result.rejected.is_empty(), "{:?}", result.rejected);
    }

    #[test]
    fn unterminated_quote_rejects_rest() {
        let result = import("person_id,name\na,A\nb,\"B\nc,C\n");
        assert_eq!(result.records.len(), 1);
        assert_eq!(result.rejected.len(), 1);
        assert_eq!(result.rejected[0].line, 3);
        assert!(result.rejected[0].reason.contains("unterminated"));
    }

    #[test]
    fn literal_quotes_inside_fields() {
        let result = import("person_id,name,height\nx,O\"Brien,5'10\"\ny,\"Y\"z,1\n");
        assert_eq!(result.records[0].name, "O\"Brien");
        assert_eq!(result.records[0].details["height"], "5'10\"");
        assert_eq!(result.records[1].name, "Yz");
    }

    #[test]
    fn header_errors_name_the_source() {
        for (text, expect) in [
            ("", "no header row"),
            ("\u{feff}\n\n", "no header row"),
            ("id,name\na,A\n", "no person_id column"),
            ("person_id,full name\na,A\n", "no name column"),
            ("alice,Alice Smith\n", "no person_id column"),
            ("person_id,name,Name\n", "appears twice"),
        ] {
            let err = read_records_from(text.as_bytes(), "records/people.csv").unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, DirectoryError::InvalidRecords { .. }),
                "{msg}"
            );
            assert!(
                msg.contains("records/people.csv") && msg.contains(expect),
                "{text:?}: {msg}"
            );
        }
        let err = read_records_from(&b"person_id,name\nx,\xff\n"[..], "latin1.csv").unwrap_err();
        assert!(err.to_string().contains("UTF-8 (line 2)"), "{err}");
    }

    #[test]
    fn reads_files_and_names_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("people.csv");
        std::fs::write(&path, "person_id,name\nann,Ann\n").unwrap();
        assert_eq!(read_records(&path).unwrap().records[0].name, "Ann");

        let missing = tmp.path().join("missing.csv");
        let err = read_records(&missing).unwrap_err();
        assert!(matches!(err, DirectoryError::Io { .. }), "{err}");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }
}
