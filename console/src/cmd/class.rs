//! `rollcall class add|remove|list|import`: class rosters, stored beside the people directory
//! (SQLite `--db`, or DynamoDB with `--backend aws`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::directory::attendance::validate_class;
use rollcall_recognizer::directory::records_csv;
use rollcall_recognizer::directory::PeopleDirectory;
use serde::Serialize;

use super::people::{check_records_file, DirectoryArgs};
use crate::exit_codes::UsageError;
use crate::plan::attendance::roster_names;
use crate::settings::{ConfigFile, DirectoryAccess};

/// `rollcall class ...`
#[derive(Debug, Subcommand)]
pub enum ClassCommand {
    /// Put people (by id, as in `rollcall people list`) on a class's roster, creating the class.
    Add(AddArgs),
    /// Take people off a class's roster; without ids, remove the whole class.
    Remove(RemoveArgs),
    /// List the classes with their size, or one class's roster.
    List(ListArgs),
    /// Put everyone of a CSV file (a `person_id` and a `name` column, as for `people import`)
    /// on a class's roster; rows naming nobody in the directory are reported and skipped.
    Import(ImportArgs),
}

/// Options of `rollcall class add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The class.
    #[arg(value_name = "CLASS")]
    class: String,
    /// Who to add.
    #[arg(value_name = "PERSON_ID", required = true)]
    person_ids: Vec<String>,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Options of `rollcall class remove`.
#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The class.
    #[arg(value_name = "CLASS")]
    class: String,
    /// Who to take off (nobody named: the whole class).
    #[arg(value_name = "PERSON_ID")]
    person_ids: Vec<String>,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Options of `rollcall class list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show this class's roster instead of every class.
    #[arg(value_name = "CLASS")]
    class: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Options of `rollcall class import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The class.
    #[arg(value_name = "CLASS")]
    class: String,
    /// The CSV file.
    #[arg(value_name = "CSV")]
    csv: PathBuf,
    #[command(flatten)]
    directory: DirectoryArgs,
}

pub fn run(command: ClassCommand, config: &ConfigFile) -> Result<ExitCode> {
    match command {
        ClassCommand::Add(args) => add(args, config),
        ClassCommand::Remove(args) => remove(args, config),
        ClassCommand::List(args) => list(args, config),
        ClassCommand::Import(args) => import(args, config),
    }
}

fn class_name(class: &str) -> Result<()> {
    validate_class(class).map_err(|e| UsageError(e.to_string()).into())
}

/// The ids of `wanted` that the directory does not know.
fn unknown_people(people: &dyn PeopleDirectory, wanted: &[String]) -> Result<Vec<String>> {
    let mut unknown = Vec::new();
    for id in wanted {
        if people.person(id)?.is_none() {
            unknown.push(id.clone());
        }
    }
    Ok(unknown)
}

fn add(args: AddArgs, config: &ConfigFile) -> Result<ExitCode> {
    class_name(&args.class)?;
    let (people, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    let unknown = unknown_people(people.as_ref(), &args.person_ids)?;
    if !unknown.is_empty() {
        return Err(UsageError(format!(
            "not in the people directory {location}: {} (`rollcall people list` shows who is there); nobody was added",
            terminal_safe(&unknown.join(", "))
        ))
        .into());
    }
    let added = book.add_to_class(&args.class, &args.person_ids)?;
    let size = book.roster(&args.class)?.len();
    println!(
        "class {}: {added} added, {} already on it; {size} on the roster",
        args.class,
        args.person_ids.len() - added
    );
    Ok(ExitCode::SUCCESS)
}

fn remove(args: RemoveArgs, config: &ConfigFile) -> Result<ExitCode> {
    class_name(&args.class)?;
    let (_, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    if book.roster(&args.class)?.is_empty() {
        return Err(UsageError(format!("no class {:?} in {location}", args.class)).into());
    }
    let removed = book.remove_from_class(&args.class, &args.person_ids)?;
    if args.person_ids.is_empty() {
        println!("class {} removed ({removed} on its roster)", args.class);
    } else {
        println!(
            "class {}: {removed} taken off; {} on the roster",
            args.class,
            book.roster(&args.class)?.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct MemberJson {
    person_id: String,
    name: String,
}

fn list(args: ListArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (people, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    match &args.class {
        Some(class) => {
            class_name(class)?;
            let ids = book.roster(class)?;
            if ids.is_empty() {
                return Err(UsageError(format!("no class {class:?} in {location}")).into());
            }
            let members: Vec<MemberJson> = roster_names(people.as_ref(), &ids)?
                .into_iter()
                .map(|(person_id, name)| MemberJson { person_id, name })
                .collect();
            if args.json {
                let json = serde_json::json!({"class": class, "members": members});
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                for m in &members {
                    println!(
                        "{}  {}",
                        terminal_safe(&m.person_id),
                        terminal_safe(&m.name)
                    );
                }
                println!("class {class}: {} on the roster", members.len());
            }
        }
        None => {
            let classes: BTreeMap<String, Vec<String>> = book.classes()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&classes)?);
            } else if classes.is_empty() {
                println!("no classes in {location} (`rollcall class add CLASS ID...` makes one)");
            } else {
                for (class, ids) in &classes {
                    println!("{}  {} on the roster", terminal_safe(class), ids.len());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn import(args: ImportArgs, config: &ConfigFile) -> Result<ExitCode> {
    class_name(&args.class)?;
    check_records_file(&args.csv)?;
    let (people, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    let csv = args.csv.display();
    let import = records_csv::read_records(&args.csv)
        .with_context(|| format!("cannot import the class from {csv}"))?;
    for rejected in &import.rejected {
        println!(
            "class {csv}: line {} rejected: {}",
            rejected.line,
            terminal_safe(&rejected.reason)
        );
    }
    let ids: Vec<String> = import.records.into_iter().map(|r| r.person_id).collect();
    let unknown = unknown_people(people.as_ref(), &ids)?;
    for id in &unknown {
        println!(
            "class {csv}: {} is not in the people directory {location}: skipped",
            terminal_safe(id)
        );
    }
    let known: Vec<String> = ids.into_iter().filter(|id| !unknown.contains(id)).collect();
    let added = book.add_to_class(&args.class, &known)?;
    println!(
        "class {}: {added} added from {csv}, {} rejected or unknown; {} on the roster",
        args.class,
        import.rejected.len() + unknown.len(),
        book.roster(&args.class)?.len()
    );
    Ok(if known.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
