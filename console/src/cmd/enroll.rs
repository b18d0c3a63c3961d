//! `rollcall enroll --photos DIR [--records CSV]`: templates from `DIR/<person>/<images>`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use rollcall_recognizer::enrollment::{
    embed_person_photos, recalibrate, scan_photo_tree, store_enrollment, PhotoOutcome,
};

use rollcall_protocol::terminal_text::terminal_safe;

use crate::cmd::people::{check_records_file, import_records, print_calibration};
use crate::settings::{ConfigFile, DirectoryAccess, RecognizerArgs};

/// Enrol people from photo folders into the people directory.
#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Folder laid out as DIR/<person_id>/<images> (JPEG, PNG, PGM/PPM, GIF, BMP).
    #[arg(long, value_name = "DIR")]
    photos: PathBuf,
    /// Academic records to import first: CSV with person_id, name and any further columns.
    #[arg(long, value_name = "CSV")]
    records: Option<PathBuf>,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

pub fn run(args: EnrollArgs, config: &ConfigFile) -> Result<ExitCode> {
    let settings = args.recognizer.resolve(config)?;
    // The inputs are checked before the directory is opened (and maybe created): a mistyped
    // folder or records file must not leave an empty directory behind.
    let tree = scan_photo_tree(&args.photos)
        .with_context(|| format!("cannot read photo folder {}", args.photos.display()))?;
    if let Some(csv) = &args.records {
        check_records_file(csv)?;
    }
    let (directory, location) = settings.people_directory(DirectoryAccess::Create)?;
    if let Some(csv) = &args.records {
        import_records(directory.as_ref(), csv)?;
    }
    for (path, reason) in &tree.rejected {
        println!(
            "skipped {}: {}",
            terminal_safe(&path.display().to_string()),
            terminal_safe(reason)
        );
    }
    if tree.people.is_empty() {
        println!(
            "{}: no person folders found (expected {}/<person>/<images>)",
            args.photos.display(),
            args.photos.display()
        );
        return Ok(ExitCode::FAILURE);
    }

    let pipeline = settings.pipeline()?;
    let (mut enrolled, mut failed) = (0usize, 0usize);
    for (person_id, photos) in &tree.people {
        let enrollment = embed_person_photos(&pipeline, person_id, photos);
        let mut notes = Vec::new();
        for (path, note) in &enrollment.notes {
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            notes.push(format!("{file}: {note}"));
        }
        for (path, outcome) in &enrollment.photos {
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            match outcome {
                PhotoOutcome::Used { faces } if *faces > 1 => {
                    notes.push(format!("{file}: {faces} faces, the largest was used"))
                }
                PhotoOutcome::Used { .. } => {}
                PhotoOutcome::NoFace => notes.push(format!("{file}: rejected, no face found")),
                PhotoOutcome::Rejected { reason } => {
                    notes.push(format!("{file}: rejected, {reason}"))
                }
            }
        }
        let rejected = enrollment.photos.len() - enrollment.used();
        match store_enrollment(directory.as_ref(), &enrollment) {
            Ok(outcome) if outcome.stored => {
                enrolled += 1;
                println!(
                    "{person_id}: enrolled from {} image(s), {rejected} rejected",
                    enrollment.used() - outcome.left_out.len()
                );
                for file in &outcome.left_out {
                    notes.push(format!(
                        "{file}: left out, its face does not match the person's other photos"
                    ));
                }
            }
            Ok(_) => {
                failed += 1;
                let why = if photos.is_empty() {
                    "folder is empty"
                } else {
                    "no usable image"
                };
                println!("{person_id}: NOT enrolled ({why}); any earlier enrolment is kept");
            }
            Err(e) => {
                failed += 1;
                println!(
                    "{person_id}: NOT enrolled: {}",
                    terminal_safe(&e.to_string())
                );
            }
        }
        for note in notes {
            println!("  {}", terminal_safe(&note));
        }
    }
    let calibration = recalibrate(directory.as_ref())?;
    println!(
        "{enrolled} enrolled, {failed} not enrolled; people directory {}",
        location
    );
    print_calibration(&calibration);
    Ok(if enrolled > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
