//! `rollcall identify IMAGE...`: every face in each image, named or unknown.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rollcall_recognizer::directory::PeopleDirectory;
use rollcall_recognizer::vision::{load_image, FaceBox, Identity};
use serde::Serialize;

use crate::settings::{ConfigFile, RecognizerArgs};

/// Identify the faces in images.
#[derive(Args, Debug)]
pub struct IdentifyArgs {
    /// Images to look at.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

#[derive(Serialize)]
struct FaceReport {
    #[serde(rename = "box")]
    bbox: FaceBox,
    detection_score: f32,
    /// Person id, or null when unknown.
    person_id: Option<String>,
    /// Display name, or "unknown".
    name: String,
    details: std::collections::BTreeMap<String, String>,
    /// Similarity to the closest enrolled person.
    similarity: Option<f32>,
}

#[derive(Serialize)]
struct ImageReport {
    image: String,
    faces: Vec<FaceReport>,
    error: Option<String>,
}

pub fn run(args: IdentifyArgs, config: &ConfigFile) -> Result<ExitCode> {
    let settings = args.recognizer.resolve(config)?;
    let directory = settings.directory()?;
    let gallery = settings.gallery(&directory)?;
    let pipeline = settings.pipeline()?;
    let mut reports = Vec::new();
    for path in &args.images {
        let image_name = path.display().to_string();
        let outcome = load_image(path).and_then(|image| pipeline.faces(&image));
        let report = match outcome {
            Err(e) => ImageReport {
                image: image_name,
                faces: Vec::new(),
                error: Some(e.to_string()),
            },
            Ok((faces, _)) => {
                let mut found = Vec::new();
                for face in faces {
                    let identity = gallery.identify(&face.embedding);
                    let record = match &identity {
                        Identity::Known(c) => directory.person(&c.person_id)?,
                        Identity::Unknown { .. } => None,
                    };
                    found.push(FaceReport {
                        bbox: face.detection.bbox,
                        detection_score: face.detection.score,
                        person_id: identity.person_id().map(str::to_owned),
                        name: record
                            .as_ref()
                            .map_or_else(|| "unknown".to_string(), |r| r.name.clone()),
                        details: record.map(|r| r.details).unwrap_or_default(),
                        similarity: identity.similarity(),
                    });
                }
                ImageReport {
                    image: image_name,
                    faces: found,
                    error: None,
                }
            }
        };
        if !args.json {
            print_report(&report);
        }
        reports.push(report);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "threshold": gallery.threshold(),
                "images": reports,
            }))?
        );
    }
    let any_ok = reports.iter().any(|r| r.error.is_none());
    Ok(if any_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &ImageReport) {
    if let Some(error) = &report.error {
        println!("{}: error: {error}", report.image);
        return;
    }
    println!("{}: {} face(s)", report.image, report.faces.len());
    for face in &report.faces {
        let b = &face.bbox;
        let similarity = face
            .similarity
            .map_or_else(|| "-".to_string(), |s| format!("{s:.3}"));
        let who = match &face.person_id {
            Some(id) => format!("{} ({id})", face.name),
            None => "unknown".to_string(),
        };
        let details: Vec<String> = face
            .details
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!(
            "  [{:.0},{:.0} {:.0}x{:.0}] {who}  similarity {similarity}{}",
            b.x1,
            b.y1,
            b.width(),
            b.height(),
            if details.is_empty() {
                String::new()
            } else {
                format!("  [{}]", details.join(", "))
            }
        );
    }
}
