//! `rollcall demo`: the quick start's real run on demo data fetched from package registries.
//!
//! Enrols Barack Obama from one photo and Joe Biden from another (face_recognition 1.3.0's test
//! images, PyPI), imports DEMO academic records, then identifies two *other* photos of Obama and a
//! group photo of six strangers (insightface 2.1, PyPI) who must all come out unknown.

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

use crate::settings::{ConfigFile, RecognizerArgs};

/// Demo academic records: clearly marked as demo data.
const DEMO_RECORDS: &str = include_str!("../../demo/people.csv");

/// Run the demo: fetch models and demo photos, enrol two people, identify other photos.
#[derive(Args, Debug)]
pub struct DemoArgs {
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
    let directory = settings.directory()?;
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
        "== result: Obama recognised in {named_obama} of 2 new photos; {strangers_named} stranger(s) wrongly named; people directory {}",
        display(&settings.db)
    );
    Ok(if named_obama >= 1 && strangers_named == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
