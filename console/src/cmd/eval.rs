//! `rollcall eval --photos VALDIR`: open-set identification accuracy on labelled photos.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::enrollment::scan_photo_tree;
use rollcall_recognizer::evaluation::{summarize, EvaluationReport, ProbeResult};
use rollcall_recognizer::vision::{load_photo, Identity};
use serde::Serialize;

use crate::exit_codes::failed_if;
use crate::settings::{ConfigFile, DirectoryAccess, RecognizerArgs};

/// Measure accuracy on VALDIR/<person>/<image>; people not enrolled must come out unknown.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Probe photos laid out as VALDIR/<person_id>/<images>.
    #[arg(long, value_name = "VALDIR")]
    photos: PathBuf,
    /// Print exactly one JSON object (rates as fractions 0..1).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

/// An entry of the probe folder that was not evaluated, and why.
#[derive(Serialize)]
struct Skipped {
    file: String,
    reason: String,
}

/// `eval --json`: the accuracy figures and everything that was not evaluated.
#[derive(Serialize)]
struct EvalJson<'a> {
    #[serde(flatten)]
    report: &'a EvaluationReport,
    /// Entries skipped: not photos (folders, FIFOs, broken links, ...), unreadable photos.
    skipped_count: usize,
    skipped: &'a [Skipped],
    /// Photos evaluated with something to know (animated GIF frame, truncated JPEG).
    notes: &'a [Skipped],
}

pub fn run(args: EvalArgs, config: &ConfigFile) -> Result<ExitCode> {
    let settings = args.recognizer.resolve(config)?;
    let directory = settings.directory(DirectoryAccess::ReadOnly)?;
    let gallery = settings.gallery(&directory)?;
    let tree = scan_photo_tree(&args.photos)
        .with_context(|| format!("cannot read probe folder {}", args.photos.display()))?;
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut notes: Vec<Skipped> = Vec::new();
    let mut skip = |file: String, reason: String| {
        eprintln!(
            "skipped {}: {}",
            terminal_safe(&file),
            terminal_safe(&reason)
        );
        skipped.push(Skipped { file, reason });
    };
    for (path, reason) in &tree.rejected {
        skip(path.display().to_string(), reason.clone());
    }
    let pipeline = settings.pipeline()?;
    let total: usize = tree.people.iter().map(|(_, files)| files.len()).sum();
    let enrolled = |person: &str| gallery.contains(person);

    let mut results = Vec::with_capacity(total);
    let mut done = 0usize;
    for (person, files) in &tree.people {
        for path in files {
            done += 1;
            if done % 50 == 0 {
                eprintln!("evaluated {done}/{total} photos");
            }
            let file = path.display().to_string();
            let photo = match load_photo(path, &pipeline.options().decode) {
                Ok(photo) => photo,
                Err(e) => {
                    // The error names the file already.
                    skip(file, e.to_string());
                    continue;
                }
            };
            for note in &photo.notes {
                eprintln!("note: {}: {}", terminal_safe(&file), terminal_safe(note));
                notes.push(Skipped {
                    file: file.clone(),
                    reason: note.clone(),
                });
            }
            let started = Instant::now();
            let face = match pipeline.largest_face(&photo.image) {
                Ok((face, _, _)) => face,
                Err(e) => {
                    skip(file, e.to_string());
                    continue;
                }
            };
            let millis = started.elapsed().as_secs_f64() * 1000.0;
            let (closest, similarity, named) = match face {
                None => (None, None, None),
                Some(face) => {
                    let identity = gallery.identify(&face.embedding);
                    let closest = gallery.top_k(&face.embedding, 1).into_iter().next();
                    let named = match identity {
                        Identity::Known(c) => Some(c.person_id),
                        Identity::Unknown { .. } => None,
                    };
                    (
                        closest.as_ref().map(|c| c.person_id.clone()),
                        closest.map(|c| c.similarity),
                        named,
                    )
                }
            };
            results.push(ProbeResult {
                file,
                expected: enrolled(person).then(|| person.clone()),
                closest,
                similarity,
                named,
                millis,
            });
        }
    }
    let report = summarize(&results, gallery.threshold());
    if args.json {
        let json = EvalJson {
            report: &report,
            skipped_count: skipped.len(),
            skipped: &skipped,
            notes: &notes,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_report(&report, skipped.len());
    }
    if report.probes == 0 {
        eprintln!("no probe photo could be evaluated");
    }
    // Anything in the folder that was not evaluated makes the figures partial.
    Ok(failed_if(report.probes == 0 || !skipped.is_empty()))
}

fn print_report(report: &EvaluationReport, skipped: usize) {
    let pct = |v: f64| {
        if v.is_nan() {
            "n/a".to_string()
        } else {
            format!("{:.1} %", v * 100.0)
        }
    };
    for f in &report.failures {
        let similarity = f
            .similarity
            .map_or_else(|| "no face".to_string(), |s| format!("{s:.3}"));
        println!(
            "wrong: {} expected {} got {} (similarity {similarity})",
            terminal_safe(&f.file),
            f.expected,
            f.got
        );
    }
    println!(
        "probes: {} ({} enrolled, {} strangers; {skipped} skipped)",
        report.probes, report.enrolled_probes, report.stranger_probes
    );
    println!("closed-set top-1:   {}", pct(report.closed_set_top1));
    println!("open-set accuracy:  {}", pct(report.open_set_accuracy));
    println!("named rate:         {}", pct(report.named_rate));
    println!("false-accept rate:  {}", pct(report.false_accept_rate));
    println!("false-reject rate:  {}", pct(report.false_reject_rate));
    println!("misidentified:      {}", pct(report.misidentification_rate));
    println!("threshold:          {:.3}", report.threshold);
    println!("median ms / image:  {:.1}", report.ms_per_image_median);
}
