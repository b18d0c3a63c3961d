//! `rollcall identify IMAGE...`: every face in each image, named or unknown.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::directory::PeopleDirectory;
use rollcall_recognizer::vision::{load_photo, FaceBox, Identity};
use serde::Serialize;

use crate::exit_codes::failed_if;
use crate::settings::{ConfigFile, DirectoryAccess, RecognizerArgs};

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
    /// EXIF orientation applied before detection (1: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    orientation: Option<u8>,
    /// What the user should know about the photo: the frame used of an animated GIF, a
    /// truncated JPEG.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

pub fn run(args: IdentifyArgs, config: &ConfigFile) -> Result<ExitCode> {
    let settings = args.recognizer.resolve(config)?;
    let directory = settings.directory(DirectoryAccess::ReadOnly)?;
    let gallery = settings.gallery(&directory)?;
    let pipeline = settings.pipeline()?;
    let mut reports = Vec::new();
    for path in &args.images {
        let image_name = path.display().to_string();
        let outcome = load_photo(path, &pipeline.options().decode).and_then(|photo| {
            let (faces, _) = pipeline.faces(&photo.image)?;
            Ok((photo, faces))
        });
        let report = match outcome {
            Err(e) => ImageReport {
                image: image_name,
                faces: Vec::new(),
                error: Some(e.to_string()),
                orientation: None,
                notes: Vec::new(),
            },
            Ok((photo, faces)) => {
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
                    orientation: Some(photo.orientation),
                    notes: photo.notes,
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
    // Every image must have been looked at: one that could not be read fails the run.
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 && !args.json {
        eprintln!("{failed} of {} image(s) could not be read", reports.len());
    }
    Ok(failed_if(failed > 0))
}

fn print_report(report: &ImageReport) {
    let image = terminal_safe(&report.image);
    if let Some(error) = &report.error {
        println!("{image}: error: {}", terminal_safe(error));
        return;
    }
    println!("{image}: {} face(s)", report.faces.len());
    for note in &report.notes {
        println!("  note: {}", terminal_safe(note));
    }
    for face in &report.faces {
        let b = &face.bbox;
        let similarity = face
            .similarity
            .map_or_else(|| "-".to_string(), |s| format!("{s:.3}"));
        let who = match &face.person_id {
            Some(id) => format!("{} ({})", terminal_safe(&face.name), terminal_safe(id)),
            None => "unknown".to_string(),
        };
        let details: Vec<String> = face
            .details
            .iter()
            .map(|(k, v)| format!("{}: {}", terminal_safe(k), terminal_safe(v)))
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
