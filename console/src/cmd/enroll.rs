//! `rollcall enroll --photos DIR [--records CSV]`: templates from `DIR/<person>/<images>`.
//!
//! Photos are embedded on several threads (`--workers`, default: the core count) and stored in
//! batches; people whose photos did not change since they were enrolled are skipped (`--force`
//! embeds everyone again), so a run over a whole university's photos can be interrupted and
//! started again. Progress (people done, rate, time left) goes to stderr: a bar when stderr is
//! a terminal, a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rollcall_recognizer::enrollment::{
    enroll_people, recalibrate, scan_photo_tree, BulkOptions, PersonOutcome, PersonReport,
    PhotoOutcome,
};

use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::directory::{has_consent, SETTING_REQUIRE_CONSENT};

use crate::cmd::people::{check_records_file, import_records, print_calibration};
use crate::exit_codes::usage;
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
    /// Threads embedding photos at once (default: the core count).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Embed everyone again, also people whose photos did not change since their enrolment.
    #[arg(long)]
    force: bool,
    /// Enrol only people whose record has `consent` = yes (a `consent` column of the records
    /// CSV), and from now on never name anyone without it, also people enrolled earlier whose
    /// consent was withdrawn: their faces count as unknown. Stored in the directory, so every
    /// worker and the Lambda follow it.
    #[arg(long)]
    require_consent: bool,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

pub fn run(args: EnrollArgs, config: &ConfigFile) -> Result<ExitCode> {
    let mut settings = args.recognizer.resolve(config)?;
    let workers = args
        .workers
        .unwrap_or_else(|| BulkOptions::default().workers);
    if !(1..=64).contains(&workers) {
        return usage(format!("--workers must be between 1 and 64, got {workers}"));
    }
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
    let mut tree = tree;
    if args.require_consent {
        directory.set_setting(SETTING_REQUIRE_CONSENT, "true")?;
        let mut with_consent = Vec::with_capacity(tree.people.len());
        for (person_id, photos) in std::mem::take(&mut tree.people) {
            if directory
                .person(&person_id)?
                .is_some_and(|p| has_consent(&p))
            {
                with_consent.push((person_id, photos));
            } else {
                println!(
                    "not enrolled {}: no consent in the records (--require-consent)",
                    terminal_safe(&person_id)
                );
            }
        }
        tree.people = with_consent;
        let withheld = directory
            .people()?
            .iter()
            .filter(|p| p.is_enrolled() && !has_consent(p))
            .count();
        if withheld > 0 {
            println!("{withheld} enrolled people without consent are never named (they count as unknown)");
        }
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

    // One session per model and worker: the workers embed truly in parallel.
    settings.options.runtime.sessions_per_model = workers;
    let pipeline = settings.pipeline()?;
    let options = BulkOptions {
        workers,
        force: args.force,
        ..BulkOptions::default()
    };
    let mut progress = Progress::start(tree.people.len() as u64);
    let summary = enroll_people(
        &pipeline,
        directory.as_ref(),
        &tree.people,
        &options,
        |report| {
            progress.suspend(|| print_person(report));
            progress.advance();
        },
    );
    progress.finish();
    let summary = summary?;
    let calibration = recalibrate(directory.as_ref())?;
    directory
        .publish_gallery()
        .with_context(|| format!("cannot write the gallery snapshot of {location}"))?;
    println!(
        "{} enrolled, {} unchanged (skipped), {} not enrolled; people directory {}",
        summary.enrolled, summary.unchanged, summary.not_enrolled, location
    );
    print_calibration(&calibration);
    Ok(if summary.enrolled + summary.unchanged > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One person's lines on stdout (nothing for a person skipped as unchanged: the summary counts
/// them).
fn print_person(report: &PersonReport) {
    let mut notes = Vec::new();
    for (path, note) in &report.notes {
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        notes.push(format!("{file}: {note}"));
    }
    for (path, outcome) in &report.photos {
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        match outcome {
            PhotoOutcome::Used { faces } if *faces > 1 => {
                notes.push(format!("{file}: {faces} faces, the largest was used"))
            }
            PhotoOutcome::Used { .. } => {}
            PhotoOutcome::NoFace => notes.push(format!("{file}: rejected, no face found")),
            PhotoOutcome::Rejected { reason } => notes.push(format!("{file}: rejected, {reason}")),
        }
    }
    let person_id = &report.person_id;
    let used = report
        .photos
        .iter()
        .filter(|(_, o)| matches!(o, PhotoOutcome::Used { .. }))
        .count();
    let rejected = report.photos.len() - used;
    match &report.outcome {
        PersonOutcome::Unchanged => return,
        PersonOutcome::Enrolled { left_out } => {
            println!(
                "{person_id}: enrolled from {} image(s), {rejected} rejected",
                used - left_out.len()
            );
            for file in left_out {
                notes.push(format!(
                    "{file}: left out, its face does not match the person's other photos"
                ));
            }
        }
        PersonOutcome::NotEnrolled { reason } => {
            println!(
                "{person_id}: NOT enrolled ({}); any earlier enrolment is kept",
                terminal_safe(reason)
            )
        }
    }
    for note in notes {
        println!("  {}", terminal_safe(&note));
    }
}

/// People done, rate and time left, on stderr: an indicatif bar on a terminal, else a plain
/// line at most every [`Progress::LINE_EVERY`] (and at the end).
enum Progress {
    Bar(ProgressBar),
    Lines {
        total: u64,
        done: u64,
        started: Instant,
        last_line: Instant,
    },
}

impl Progress {
    const LINE_EVERY: Duration = Duration::from_secs(10);

    fn start(total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "enrolling {bar:30} {pos}/{len} people  {per_sec}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Lines {
                total,
                done: 0,
                started: now,
                last_line: now,
            }
        }
    }

    /// Run `print` without the bar in the way.
    fn suspend(&self, print: impl FnOnce()) {
        match self {
            Progress::Bar(bar) => bar.suspend(print),
            Progress::Lines { .. } => print(),
        }
    }

    fn advance(&mut self) {
        match self {
            Progress::Bar(bar) => bar.inc(1),
            Progress::Lines {
                total,
                done,
                started,
                last_line,
            } => {
                *done += 1;
                if last_line.elapsed() >= Self::LINE_EVERY {
                    *last_line = Instant::now();
                    eprintln!("{}", progress_line(*done, *total, started.elapsed()));
                }
            }
        }
    }

    fn finish(&mut self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines {
                total,
                done,
                started,
                ..
            } => eprintln!("{}", progress_line(*done, *total, started.elapsed())),
        }
    }
}

/// `enrolling: 1200/30000 people (4.0 %), 12.3 people/s, ETA 39m02s`.
fn progress_line(done: u64, total: u64, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let eta = if done >= total {
        "done".to_string()
    } else if rate > 0.0 {
        let left = ((total - done) as f64 / rate).round() as u64;
        format!("ETA {}m{:02}s", left / 60, left % 60)
    } else {
        "ETA unknown".to_string()
    };
    format!(
        "enrolling: {done}/{total} people ({:.1} %), {rate:.1} people/s, {eta}",
        done as f64 * 100.0 / total.max(1) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_has_rate_and_eta() {
        let line = progress_line(1200, 30_000, Duration::from_secs(100));
        assert_eq!(
            line,
            "enrolling: 1200/30000 people (4.0 %), 12.0 people/s, ETA 40m00s"
        );
        assert!(progress_line(5, 5, Duration::from_secs(1)).ends_with("done"));
        assert!(progress_line(0, 5, Duration::ZERO).ends_with("ETA unknown"));
    }
}
