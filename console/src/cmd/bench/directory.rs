//! `rollcall bench directory --people N`: the people directory at the size of a university.
//!
//! The bench fills a fresh directory with N synthetic people (reproducible pseudo-random unit
//! templates, `--samples` enrolment embeddings each, stored as `rollcall enroll` stores them:
//! batched `enroll_many`, then the threshold recalibrated and the gallery published), then starts
//! a second process of this executable that does what a worker or a Lambda cold start does with
//! it: open the directory, load the gallery, and search it. That process reports
//!
//! - `gallery_load_ms`: open + load (SQLite: the people table; AWS: the gallery snapshot, one S3
//!   read, with the version check);
//! - `search_us_per_face`: one face identified against everyone (candidates found on the int8
//!   copy of the templates, then re-scored exactly), and `batch_search_us_per_face` for faces
//!   identified 8 at a time (as in a crowded frame); `exact_search_us_per_face` for the search
//!   that scores every f32 template (the reference: the bench fails unless both give the same
//!   verdicts);
//! - `rss_mb`: its peak resident memory (VmHWM), the gallery and everything else included.
//!
//! Synthetic faces are fine for timing: load and search cost depend on the gallery's size, not
//! on whose faces they are. Each searched face is a noisy copy of an enrolled template, and the
//! bench fails unless (nearly) every one is named correctly, so a broken search cannot report a
//! fast time. With `--backend aws` the table `<prefix>-bench-people` and its snapshot in the
//! clips bucket are created for the run and deleted after it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::directory::synthetic::{
    synthetic_enrollment, synthetic_face, synthetic_person_id,
};
use rollcall_recognizer::directory::{NewEnrollment, PeopleDirectory, SETTING_EMBEDDING_MODEL};
use rollcall_recognizer::enrollment::{load_gallery, recalibrate, EMBEDDING_MODEL_ID};
use rollcall_recognizer::vision::gallery::{Gallery, Identity};
use serde::{Deserialize, Serialize};

/// Options of `rollcall bench directory`.
#[derive(Args, Debug)]
pub struct DirectoryArgs {
    /// People in the synthetic directory.
    #[arg(long, default_value_t = 30_000, value_name = "N")]
    people: usize,
    /// Enrolment embeddings stored per person (the photos of each).
    #[arg(long, default_value_t = 3, value_name = "K")]
    samples: usize,
    /// Embedding dimension (fr_feature: 512).
    #[arg(long, default_value_t = 512, value_name = "D")]
    dim: usize,
    /// Faces searched to time the search.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    searches: usize,
    /// `local` (SQLite file in a temporary folder) or `aws` (DynamoDB table
    /// `<prefix>-bench-people` + gallery snapshot in the clips bucket, created for the run).
    #[arg(long, default_value = "local", value_name = "local|aws")]
    backend: String,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    #[cfg(feature = "aws")]
    #[command(flatten)]
    aws: crate::settings::AwsNames,
    /// The measuring process's part (started by the bench itself): load the directory at
    /// `sqlite:PATH` or `dynamodb:TABLE:BUCKET`, search it, print JSON.
    #[arg(long, hide = true, value_name = "LOCATION")]
    measure: Option<String>,
}

/// What the measuring process reports.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    people_loaded: usize,
    gallery_load_ms: f64,
    search_us_per_face: f64,
    batch_search_us_per_face: f64,
    exact_search_us_per_face: f64,
    searches: usize,
    named_correctly: f64,
    gallery_mb: f64,
    compact_mb: f64,
    rss_mb: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    backend: String,
    people: usize,
    samples_per_person: usize,
    dim: usize,
    populate_s: f64,
    calibrate_ms: f64,
    threshold: f32,
    publish_ms: f64,
    #[serde(flatten)]
    measured: Measured,
}

/// Targets of issue "a whole university" (docs/benchmarks.md).
const TARGET_LOAD_MS: f64 = 1500.0;
const TARGET_SEARCH_US: f64 = 2000.0;
const TARGET_RSS_MB: f64 = 600.0;

/// People stored per `enroll_many` call while filling the directory.
const FILL_BATCH: usize = 500;

pub(super) fn run(args: DirectoryArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        (2..=1_000_000).contains(&args.people),
        "--people must be between 2 and 1000000, got {}",
        args.people
    );
    anyhow::ensure!(
        (1..=150).contains(&args.samples),
        "--samples must be between 1 and 150, got {}",
        args.samples
    );
    anyhow::ensure!(
        (8..=4096).contains(&args.dim),
        "--dim must be between 8 and 4096, got {}",
        args.dim
    );
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.searches),
        "--searches must be between 1 and 1000000, got {}",
        args.searches
    );
    if let Some(location) = &args.measure {
        let measured = measure(location, &args)?;
        println!("{}", serde_json::to_string(&measured)?);
        return Ok(ExitCode::SUCCESS);
    }
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (directory, location, cleanup) = open_fresh(&args, scratch.path())?;
    let result = fill_and_measure(&args, directory.as_ref(), &location);
    drop(directory);
    if let Some(cleanup) = cleanup {
        if let Err(e) = cleanup() {
            eprintln!("warning: cleaning up after the bench: {e:#}");
        }
    }
    let report = result?;
    let passed = print_report(&report, args.json)?;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

type Cleanup = Box<dyn FnOnce() -> Result<()>>;

/// An empty directory of the chosen backend, its location for the measuring process, and what
/// removes it afterwards.
fn open_fresh(
    args: &DirectoryArgs,
    scratch: &Path,
) -> Result<(Arc<dyn PeopleDirectory>, String, Option<Cleanup>)> {
    match args.backend.as_str() {
        "local" => {
            let path = scratch.join("people.db");
            let directory = SqliteDirectory::open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            Ok((
                Arc::new(directory),
                format!("sqlite:{}", path.display()),
                None,
            ))
        }
        #[cfg(feature = "aws")]
        "aws" => {
            use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
            let names = args.aws.names();
            let table = format!("{}-bench-people", names.prefix);
            ensure_bucket(&names.bucket)?;
            let directory = DynamoDirectory::connect_with(&table, Some(&names.bucket))
                .with_context(|| format!("cannot connect to DynamoDB for {table}"))?;
            // A table left by an interrupted run would add its people to this one's.
            let _ = directory.delete_table();
            directory
                .ensure_table()
                .with_context(|| format!("cannot create the DynamoDB table {table}"))?;
            let location = format!("dynamodb:{table}:{}", names.bucket);
            let directory = Arc::new(directory);
            let owned = Arc::clone(&directory);
            let cleanup: Cleanup = Box::new(move || {
                owned
                    .delete_table()
                    .context("cannot delete the bench table")
            });
            Ok((directory, location, Some(cleanup)))
        }
        other => anyhow::bail!("--backend must be local or aws, got {other:?}"),
    }
}

/// Create `bucket` unless it exists (the bench may run before `rollcall aws provision`).
#[cfg(feature = "aws")]
fn ensure_bucket(bucket: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sdk = rollcall_protocol::aws::load_config().await;
        let s3 = rollcall_protocol::aws::s3_client(&sdk);
        if rollcall_protocol::aws::check_bucket(&s3, bucket)
            .await
            .is_ok()
        {
            return Ok(());
        }
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot create bucket {bucket}: {}",
                    rollcall_protocol::aws::sdk_message(&e)
                )
            })
    })
}

/// Fill `directory` with the synthetic people, calibrate, publish, then measure in a second
/// process.
fn fill_and_measure(
    args: &DirectoryArgs,
    directory: &dyn PeopleDirectory,
    location: &str,
) -> Result<Report> {
    let started = Instant::now();
    let mut last_line = Instant::now();
    for first in (0..args.people).step_by(FILL_BATCH) {
        let batch: Vec<NewEnrollment> = (first..(first + FILL_BATCH).min(args.people))
            .map(|i| synthetic_enrollment(i, args.samples, args.dim))
            .collect();
        directory
            .enroll_many(&batch)
            .with_context(|| format!("cannot store synthetic people from #{first}"))?;
        if last_line.elapsed().as_secs() >= 10 {
            last_line = Instant::now();
            eprintln!(
                "bench directory: {} of {} people stored ({:.0} s)",
                first + batch.len(),
                args.people,
                started.elapsed().as_secs_f64()
            );
        }
    }
    directory.set_setting(SETTING_EMBEDDING_MODEL, EMBEDDING_MODEL_ID)?;
    let populate_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let calibration = recalibrate(directory)?;
    let calibrate_ms = ms_since(started);
    let started = Instant::now();
    directory.publish_gallery()?;
    let publish_ms = ms_since(started);

    let exe = std::env::current_exe().context("cannot find the rollcall executable")?;
    let out = Command::new(exe)
        .args(["bench", "directory", "--measure", location])
        .args(["--people", &args.people.to_string()])
        .args(["--samples", &args.samples.to_string()])
        .args(["--dim", &args.dim.to_string()])
        .args(["--searches", &args.searches.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start the measuring process")?;
    anyhow::ensure!(
        out.status.success(),
        "the measuring process failed ({})",
        out.status
    );
    let measured: Measured = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "unreadable report of the measuring process: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(Report {
        backend: args.backend.clone(),
        people: args.people,
        samples_per_person: args.samples,
        dim: args.dim,
        populate_s,
        calibrate_ms,
        threshold: calibration.threshold,
        publish_ms,
        measured,
    })
}

/// The measuring process: open, load, search.
fn measure(location: &str, args: &DirectoryArgs) -> Result<Measured> {
    let started = Instant::now();
    let directory = open_location(location)?;
    let gallery = load_gallery(directory.as_ref(), None)
        .with_context(|| format!("cannot load the gallery of {location}"))?;
    let gallery_load_ms = ms_since(started);
    anyhow::ensure!(
        gallery.len() == args.people,
        "{location} holds {} people, {} expected",
        gallery.len(),
        args.people
    );
    let probes: Vec<(usize, Vec<f32>)> = (0..args.searches)
        .map(|k| {
            let person = (k * 7919) % args.people;
            (
                person,
                synthetic_face(person, args.dim, 1_000_000 + k as u64),
            )
        })
        .collect();

    let started = Instant::now();
    let verdicts: Vec<Identity> = probes.iter().map(|(_, p)| gallery.identify(p)).collect();
    let search_us_per_face = ms_since(started) * 1000.0 / probes.len() as f64;
    let started = Instant::now();
    let mut batched = Vec::with_capacity(probes.len());
    for chunk in probes.chunks(8) {
        let faces: Vec<&[f32]> = chunk.iter().map(|(_, p)| p.as_slice()).collect();
        batched.extend(gallery.identify_batch(&faces));
    }
    let batch_search_us_per_face = ms_since(started) * 1000.0 / probes.len() as f64;
    anyhow::ensure!(
        batched == verdicts,
        "batched and one-by-one search disagree"
    );
    let started = Instant::now();
    let exact: Vec<Identity> = probes
        .iter()
        .map(|(_, p)| gallery.identify_exact(p))
        .collect();
    let exact_search_us_per_face = ms_since(started) * 1000.0 / probes.len() as f64;
    anyhow::ensure!(
        exact == verdicts,
        "the search disagrees with the exact search (every template scored in f32)"
    );
    let correct = probes
        .iter()
        .zip(&verdicts)
        .filter(|((person, _), v)| v.person_id() == Some(synthetic_person_id(*person).as_str()))
        .count();
    Ok(Measured {
        people_loaded: gallery.len(),
        gallery_load_ms,
        search_us_per_face,
        batch_search_us_per_face,
        exact_search_us_per_face,
        searches: probes.len(),
        named_correctly: correct as f64 / probes.len() as f64,
        gallery_mb: gallery_mb(&gallery),
        compact_mb: gallery.compact_bytes() as f64 / 1e6,
        rss_mb: peak_rss_mb().unwrap_or(f64::NAN),
    })
}

fn open_location(location: &str) -> Result<Box<dyn PeopleDirectory>> {
    if let Some(path) = location.strip_prefix("sqlite:") {
        let directory = SqliteDirectory::open(PathBuf::from(path))
            .with_context(|| format!("cannot open {path}"))?;
        return Ok(Box::new(directory));
    }
    #[cfg(feature = "aws")]
    if let Some(rest) = location.strip_prefix("dynamodb:") {
        let (table, bucket) = rest
            .split_once(':')
            .context("expected dynamodb:TABLE:BUCKET")?;
        let directory = rollcall_recognizer::directory::dynamodb::DynamoDirectory::connect_with(
            table,
            Some(bucket),
        )?;
        return Ok(Box::new(directory));
    }
    anyhow::bail!("unknown directory location {location:?}")
}

fn print_report(report: &Report, json: bool) -> Result<bool> {
    let m = &report.measured;
    let checks = [
        (
            "gallery_load_ms",
            m.gallery_load_ms,
            TARGET_LOAD_MS,
            m.gallery_load_ms <= TARGET_LOAD_MS,
        ),
        (
            "search_us_per_face",
            m.search_us_per_face,
            TARGET_SEARCH_US,
            m.search_us_per_face <= TARGET_SEARCH_US,
        ),
        ("rss_mb", m.rss_mb, TARGET_RSS_MB, m.rss_mb <= TARGET_RSS_MB),
    ];
    // Nearly every noisy copy must be named: a search that finds nobody is not fast, it is broken.
    let search_works = m.named_correctly >= 0.99;
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!(
            "directory bench: {} people x {} samples, {}-d, backend {}",
            report.people, report.samples_per_person, report.dim, report.backend
        );
        println!(
            "  filled in {:.1} s; threshold {:.3} calibrated in {:.0} ms; gallery published in {:.0} ms",
            report.populate_s, report.threshold, report.calibrate_ms, report.publish_ms
        );
        for (name, value, target, ok) in checks {
            println!(
                "  {name:<26} {value:>10.1}   target <= {target:<6} {}",
                if ok { "ok" } else { "MISSED" }
            );
        }
        println!(
            "  {:<26} {:>10.1}   (8 faces per search)",
            "batch_search_us_per_face", m.batch_search_us_per_face
        );
        println!(
            "  {:<26} {:>10.1}   (every f32 template scored)",
            "exact_search_us_per_face", m.exact_search_us_per_face
        );
        println!(
            "  {:<26} {:>10.1}   (templates alone)",
            "gallery_mb", m.gallery_mb
        );
        println!(
            "  {:<26} {:>10.1}   (their int8 copy for finding candidates)",
            "compact_mb", m.compact_mb
        );
        println!(
            "  named correctly: {:.1} % of {} noisy copies of enrolled faces",
            m.named_correctly * 100.0,
            m.searches
        );
    }
    if !search_works {
        eprintln!(
            "bench directory: only {:.1} % of the searched faces were named correctly",
            m.named_correctly * 100.0
        );
    }
    Ok(search_works && checks.iter().all(|c| c.3))
}

fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

fn gallery_mb(gallery: &Gallery) -> f64 {
    gallery.matrix_bytes() as f64 / 1e6
}

/// Peak resident memory of this process (VmHWM), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bench_runs_in_process() {
        let scratch = tempfile::tempdir().unwrap();
        let args = DirectoryArgs {
            people: 300,
            samples: 2,
            dim: 128,
            searches: 50,
            backend: "local".into(),
            json: true,
            #[cfg(feature = "aws")]
            aws: crate::settings::AwsNames {
                prefix: "rollcall".into(),
                bucket: None,
            },
            measure: None,
        };
        let (directory, location, _) = open_fresh(&args, scratch.path()).unwrap();
        for first in (0..300).step_by(100) {
            let batch: Vec<_> = (first..first + 100)
                .map(|i| synthetic_enrollment(i, 2, 128))
                .collect();
            directory.enroll_many(&batch).unwrap();
        }
        recalibrate(directory.as_ref()).unwrap();
        let measured = measure(&location, &args).unwrap();
        assert_eq!(measured.people_loaded, 300);
        assert!(measured.named_correctly > 0.95, "{measured:?}");
        assert!(measured.rss_mb > 0.0);
        assert!(measure("nowhere:x", &args).is_err());
    }
}
