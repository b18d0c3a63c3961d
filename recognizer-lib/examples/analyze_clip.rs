//! Enrol people from one photo each into an in-memory people directory, then analyse an H.264
//! Annex-B clip and print the [`ClipAnalysis`](rollcall_recognizer::clip::ClipAnalysis) as JSON.
//!
//! ```text
//! cargo run --release -p rollcall-recognizer --example analyze_clip -- \
//!     [--policy auto|all|every:K] [--fps FPS] CLIP.h264 PERSON=PHOTO [PERSON=PHOTO ...]
//! ```
//!
//! Models come from the cache in `$ROLLCALL_HOME` (`rollcall models fetch`). A clip can be made
//! from any video with `ffmpeg -i in.mp4 -t 0.5 -an -c:v libx264 -bf 0 -g 15 -f h264 clip.h264`.

use std::path::PathBuf;
use std::sync::Arc;

use rollcall_models::ModelCache;
use rollcall_protocol::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};
use rollcall_recognizer::clip::{ClipAnalyzer, SamplePolicy};
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::enrollment::{
    embed_person_photos, load_gallery, recalibrate, store_enrollment,
};
use rollcall_recognizer::vision::{FacePipeline, PipelineOptions};

const USAGE: &str = "usage: analyze_clip [--policy auto|all|every:K] [--fps FPS] CLIP.h264 PERSON=PHOTO [PERSON=PHOTO ...]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut policy = SamplePolicy::default();
    let mut fps: Option<f32> = None;
    let mut clip: Option<PathBuf> = None;
    let mut people: Vec<(String, PathBuf)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--policy" => policy = args.next().ok_or(USAGE)?.parse()?,
            "--fps" => fps = Some(args.next().ok_or(USAGE)?.parse()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => match arg.split_once('=') {
                Some((person, photo)) => people.push((person.to_string(), photo.into())),
                None if clip.is_none() => clip = Some(arg.into()),
                None => return Err(format!("unexpected argument {arg:?}\n{USAGE}").into()),
            },
        }
    }
    let clip = clip.ok_or(USAGE)?;

    let pipeline = Arc::new(FacePipeline::load(
        &ModelCache::from_env()?,
        PipelineOptions::default(),
    )?);

    // Enrol: the largest face of each photo becomes the person's template.
    let directory = SqliteDirectory::open_in_memory()?;
    for (person, photo) in &people {
        let enrollment = embed_person_photos(&pipeline, person, std::slice::from_ref(photo));
        if enrollment.used() == 0 {
            eprintln!(
                "{person}: {} not usable: {:?}",
                photo.display(),
                enrollment.photos[0].1
            );
            continue;
        }
        store_enrollment(&directory, &enrollment)?;
        eprintln!("enrolled {person} from {}", photo.display());
    }
    let calibration = recalibrate(&directory)?;
    let gallery = load_gallery(&directory, None)?;
    eprintln!(
        "{} people enrolled, match threshold {:.3}",
        gallery.len(),
        calibration.threshold
    );

    // The metadata an edge device would send with the clip; only fps (for sampling) matters here.
    let bytes = std::fs::read(&clip)?;
    let meta = ClipMeta {
        device_id: "example".into(),
        session_id: "analyze-clip".into(),
        seq: 0,
        first_frame_ns: 0,
        last_frame_ns: 0,
        closed_ns: 0,
        fps: fps.unwrap_or(0.0),
        width: 0,
        height: 0,
        frame_count: 0,
        codec: CLIP_CODEC_H264_ANNEXB.into(),
    };
    let analyzer = ClipAnalyzer::new(pipeline).with_policy(policy);
    let analysis = analyzer.analyze(&meta.clip_id(), Some(&meta), &bytes, &gallery)?;
    println!("{}", serde_json::to_string_pretty(&analysis)?);
    Ok(())
}
