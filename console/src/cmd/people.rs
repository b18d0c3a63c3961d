//! `rollcall people import|list|show|remove`: the people directory's records, on whichever
//! backend is configured (SQLite `--db`, or DynamoDB with `--backend aws`), the same way
//! `rollcall enroll` chooses it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::directory::{records_csv, PeopleDirectory, PersonRecord};
use rollcall_recognizer::enrollment::recalibrate;
use rollcall_recognizer::vision::Calibration;
use serde::Serialize;

use crate::settings::{ConfigFile, DirectoryAccess, DirectoryWithAttendance, RecognizerArgs};

/// `rollcall people ...`
#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// Import academic records from a CSV file (columns person_id, name, then any academic
    /// details such as student_id, programme, year). Bad rows are reported with their line
    /// number and skipped; the rest are imported. People imported without photos show as
    /// "not enrolled" until `rollcall enroll` adds their face.
    Import(ImportArgs),
    /// List everyone in the directory: id, name, enrolment, academic details.
    List(ListArgs),
    /// Show one person's record, enrolment and stored samples (the embedding as its dimension
    /// and norm, not its values).
    Show(ShowArgs),
    /// Remove a person: record, face template and samples. The match threshold is then
    /// recalibrated from the remaining enrolments. With --erase, also every class roster
    /// entry and attendance row of theirs (the right to erasure).
    Remove(RemoveArgs),
}

/// Which people directory: the same flags and environment as `rollcall enroll`.
#[derive(Args, Debug, Clone)]
pub struct DirectoryArgs {
    /// People directory (SQLite file) for `--backend local`. Default: $ROLLCALL_HOME/people.db.
    #[arg(long, env = "ROLLCALL_DB", value_name = "PATH")]
    db: Option<PathBuf>,
    /// Where the people directory lives: `local` (SQLite, --db) or `aws` (the DynamoDB table
    /// `<ROLLCALL_AWS_PREFIX>-people`, default prefix `rollcall`).
    #[arg(
        long,
        env = "ROLLCALL_BACKEND",
        default_value = "local",
        value_name = "local|aws"
    )]
    backend: String,
}

impl DirectoryArgs {
    /// Open the configured directory through the settings `enroll` uses (flags > env > config
    /// file > defaults), so both commands always pick the same backend and file.
    pub fn open(
        &self,
        config: &ConfigFile,
        access: DirectoryAccess,
    ) -> Result<(Arc<dyn PeopleDirectory>, String)> {
        let (directory, _, location) = self.open_with_attendance(config, access)?;
        Ok((directory, location))
    }

    /// [`open`](Self::open), with the classes and attendance stored beside the people.
    pub fn open_with_attendance(
        &self,
        config: &ConfigFile,
        access: DirectoryAccess,
    ) -> Result<DirectoryWithAttendance> {
        let recognizer = RecognizerArgs {
            db: self.db.clone(),
            backend: self.backend.clone(),
            // Only the directory is opened: no model settings apply.
            ..RecognizerArgs::default()
        };
        recognizer.resolve(config)?.people_and_attendance(access)
    }
}

/// Options of `rollcall people import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The records file (CSV, UTF-8, header row with person_id and name).
    #[arg(value_name = "CSV")]
    csv: PathBuf,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Options of `rollcall people list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Options of `rollcall people show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The person's id.
    #[arg(value_name = "ID")]
    person_id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Options of `rollcall people remove`.
#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The person's id.
    #[arg(value_name = "ID")]
    person_id: String,
    /// Erase every trace: also take them off every class and delete their rows (and the
    /// corrections of them) from every session's attendance; prints what went.
    #[arg(long)]
    erase: bool,
    #[command(flatten)]
    directory: DirectoryArgs,
}

pub fn run(command: PeopleCommand, config: &ConfigFile) -> Result<ExitCode> {
    match command {
        PeopleCommand::Import(args) => import(args, config),
        PeopleCommand::List(args) => list(args, config),
        PeopleCommand::Show(args) => show(args, config),
        PeopleCommand::Remove(args) => remove(args, config),
    }
}

/// What an import did.
pub struct ImportSummary {
    /// Records written (new or updated).
    pub imported: usize,
    /// Rows skipped (each was printed with its line number).
    pub rejected: usize,
}

/// Read `csv` and upsert its valid rows into `directory`, printing each rejected row with its
/// line number and a summary line. Shared with `rollcall enroll --records`.
pub fn import_records(directory: &dyn PeopleDirectory, csv: &Path) -> Result<ImportSummary> {
    let import = records_csv::read_records(csv)
        .with_context(|| format!("cannot import records from {}", csv.display()))?;
    for rejected in &import.rejected {
        println!(
            "records {}: line {} rejected: {}",
            csv.display(),
            rejected.line,
            terminal_safe(&rejected.reason)
        );
    }
    let imported = directory.upsert_records(&import.records)?;
    println!(
        "records {}: {} imported, {} rejected",
        csv.display(),
        imported,
        import.rejected.len()
    );
    Ok(ImportSummary {
        imported,
        rejected: import.rejected.len(),
    })
}

/// Refuse a records file that is missing or not a regular file (a FIFO would block the reader),
/// naming it. Shared with `rollcall enroll --records`.
pub fn check_records_file(csv: &Path) -> Result<()> {
    rollcall_protocol::input_files::regular_file_metadata(csv)
        .map(|_| ())
        .with_context(|| format!("cannot import records from {}", csv.display()))
}

/// One line about the match threshold after the gallery changed. Shared with `rollcall enroll`.
pub fn print_calibration(calibration: &Calibration) {
    match &calibration.fallback {
        None => println!(
            "match threshold {:.3} calibrated from {} genuine and {} impostor scores",
            calibration.threshold, calibration.genuine_pairs, calibration.impostor_pairs
        ),
        Some(reason) => println!("match threshold {:.3} ({reason})", calibration.threshold),
    }
}

fn import(args: ImportArgs, config: &ConfigFile) -> Result<ExitCode> {
    // Before the directory is created: a bad records file must not leave an empty one behind.
    check_records_file(&args.csv)?;
    let (directory, location) = args.directory.open(config, DirectoryAccess::Create)?;
    let summary = import_records(directory.as_ref(), &args.csv)?;
    println!("people directory {location}");
    // Partial imports succeed (the bad rows were listed); a file with nothing usable fails.
    Ok(if summary.imported == 0 && summary.rejected > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A person as `list --json` and `show --json` print them.
#[derive(Serialize)]
struct PersonJson<'a> {
    person_id: &'a str,
    name: &'a str,
    details: &'a std::collections::BTreeMap<String, String>,
    enrolled: bool,
    enrolled_at: Option<&'a str>,
    image_count: u32,
}

impl<'a> From<&'a PersonRecord> for PersonJson<'a> {
    fn from(p: &'a PersonRecord) -> Self {
        PersonJson {
            person_id: &p.person_id,
            name: &p.name,
            details: &p.details,
            enrolled: p.is_enrolled(),
            enrolled_at: p.enrolled_at.as_deref(),
            image_count: p.image_count,
        }
    }
}

#[derive(Serialize)]
struct ListJson<'a> {
    directory: &'a str,
    count: usize,
    people: Vec<PersonJson<'a>>,
}

/// Control characters (a CSV field may hold a line break) would break the table's rows: they
/// are shown escaped.
fn one_line(text: &str) -> String {
    terminal_safe(text).into_owned()
}

/// At most `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn enrolled_text(p: &PersonRecord) -> String {
    match (p.is_enrolled(), p.image_count) {
        (false, _) => "no".to_string(),
        (true, 0) => "yes".to_string(),
        (true, 1) => "yes (1 image)".to_string(),
        (true, n) => format!("yes ({n} images)"),
    }
}

fn details_summary(p: &PersonRecord) -> String {
    let parts: Vec<String> = p
        .details
        .iter()
        .map(|(k, v)| format!("{}={}", one_line(k), one_line(v)))
        .collect();
    clip(&parts.join(", "), 60)
}

fn list(args: ListArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (directory, location) = args.directory.open(config, DirectoryAccess::ReadOnly)?;
    let people = directory
        .people()
        .with_context(|| format!("cannot list the people in {location}"))?;
    if args.json {
        let json = ListJson {
            directory: &location,
            count: people.len(),
            people: people.iter().map(PersonJson::from).collect(),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    if people.is_empty() {
        println!("nobody in {location} (import records with `rollcall people import CSV` or enrol photos with `rollcall enroll`)");
        return Ok(ExitCode::SUCCESS);
    }
    let header = ["PERSON_ID", "NAME", "ENROLLED", "ENROLLED_AT", "DETAILS"];
    let rows: Vec<[String; 5]> = people
        .iter()
        .map(|p| {
            [
                one_line(&p.person_id),
                clip(&one_line(&p.name), 40),
                enrolled_text(p),
                p.enrolled_at.clone().unwrap_or_else(|| "-".to_string()),
                details_summary(p),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    let enrolled = people.iter().filter(|p| p.is_enrolled()).count();
    println!(
        "{} people, {enrolled} enrolled, {} not enrolled; people directory {location}",
        people.len(),
        people.len() - enrolled
    );
    Ok(ExitCode::SUCCESS)
}

/// An embedding described without its values.
#[derive(Serialize)]
struct EmbeddingJson {
    dim: usize,
    norm: f32,
}

impl EmbeddingJson {
    fn of(values: &[f32]) -> EmbeddingJson {
        EmbeddingJson {
            dim: values.len(),
            norm: values.iter().map(|v| v * v).sum::<f32>().sqrt(),
        }
    }
}

#[derive(Serialize)]
struct SampleJson {
    image: String,
    #[serde(flatten)]
    embedding: EmbeddingJson,
}

#[derive(Serialize)]
struct ShowJson<'a> {
    directory: &'a str,
    #[serde(flatten)]
    person: PersonJson<'a>,
    /// The mean embedding (the face template), `null` when not enrolled.
    embedding: Option<EmbeddingJson>,
    samples: Vec<SampleJson>,
}

fn not_found(person_id: &str, location: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no person with id {person_id:?} in the people directory {location} \
         (`rollcall people list` shows who is there)"
    )
}

fn show(args: ShowArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (directory, location) = args.directory.open(config, DirectoryAccess::ReadOnly)?;
    let id = &args.person_id;
    let person = directory
        .person(id)?
        .ok_or_else(|| not_found(id, &location))?;
    let template = directory.gallery_entry(id)?;
    let samples: Vec<SampleJson> = directory
        .person_samples(id)?
        .into_iter()
        .map(|s| SampleJson {
            embedding: EmbeddingJson::of(&s.embedding),
            image: s.image,
        })
        .collect();
    let json = ShowJson {
        directory: &location,
        person: PersonJson::from(&person),
        embedding: template.as_ref().map(|t| EmbeddingJson::of(&t.embedding)),
        samples,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("person_id    {}", one_line(&person.person_id));
    println!("name         {}", one_line(&person.name));
    match &person.enrolled_at {
        Some(at) => println!(
            "enrolled     yes, {at}, from {} image(s)",
            person.image_count
        ),
        None => println!("enrolled     no"),
    }
    match &json.embedding {
        Some(e) => println!("embedding    {}-d, norm {:.4}", e.dim, e.norm),
        None => println!("embedding    none"),
    }
    println!("samples      {}", json.samples.len());
    for sample in &json.samples {
        println!(
            "  {}  ({}-d, norm {:.4})",
            one_line(&sample.image),
            sample.embedding.dim,
            sample.embedding.norm
        );
    }
    if person.details.is_empty() {
        println!("details      none");
    } else {
        println!("details");
        let width = person
            .details
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(0);
        for (key, value) in &person.details {
            println!("  {:<width$}  {}", one_line(key), one_line(value));
        }
    }
    println!("directory    {location}");
    Ok(ExitCode::SUCCESS)
}

fn remove(args: RemoveArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (directory, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    let id = &args.person_id;
    // Read first, to say what went and whether the threshold needs recalibrating.
    let person = directory.person(id)?;
    let samples = directory.person_samples(id)?.len();
    let removed = match &person {
        Some(_) => directory.remove(id)?,
        None => false,
    };
    let erased = if args.erase {
        Some(book.erase_person(id)?)
    } else {
        None
    };
    let erased_any = erased.is_some_and(|e| e.roster_entries + e.attendance_rows > 0);
    if !removed && !erased_any {
        // Unknown, or removed by someone else between the read and the delete.
        return Err(not_found(id, &location));
    }
    if let (true, Some(person)) = (removed, &person) {
        println!(
            "removed {id} ({}{}) from {location}",
            one_line(&person.name),
            if person.is_enrolled() {
                format!(", face template and {samples} sample(s)")
            } else {
                ", not enrolled".to_string()
            }
        );
    }
    if let Some(e) = erased {
        println!(
            "erased {id}: {} class roster entr{}, {} attendance row(s), {} correction(s)",
            e.roster_entries,
            if e.roster_entries == 1 { "y" } else { "ies" },
            e.attendance_rows,
            e.corrections
        );
    }
    if person.as_ref().is_some_and(|p| p.is_enrolled()) && removed {
        print_calibration(&recalibrate(directory.as_ref())?);
        // A published gallery snapshot still holds the template until it is rewritten.
        directory
            .publish_gallery()
            .with_context(|| format!("cannot rewrite the gallery snapshot of {location}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_stay_on_one_line_and_are_clipped() {
        assert_eq!(one_line("Line\r\nName"), "Line\\r\\nName");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        let mut p = PersonRecord::new("ann").unwrap();
        assert_eq!(enrolled_text(&p), "no");
        p.enrolled_at = Some("2024-05-01T12:34:56Z".into());
        p.image_count = 3;
        assert_eq!(enrolled_text(&p), "yes (3 images)");
        p.details.insert("year".into(), "2".into());
        p.details.insert("programme".into(), "BSc".into());
        assert_eq!(details_summary(&p), "programme=BSc, year=2");
    }

    #[test]
    fn embeddings_are_described_not_printed() {
        let e = EmbeddingJson::of(&[3.0, 4.0]);
        assert_eq!((e.dim, e.norm), (2, 5.0));
    }
}
