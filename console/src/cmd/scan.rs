//! `rollcall scan VIDEO`: capture -> 0.5 s clips -> clip recognition in one process, as fast as
//! the machine allows. Capture and encoding run on one thread, analysis on another.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc};

use anyhow::{Context, Result};
use clap::Args;
use rollcall_edge::segment::{ClipSegmenter, EncodedClip, SegmentConfig, SkippedFrames};
use rollcall_edge::source::{open_source, Pace, SourceOptions, SourceSpec};
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::clip::{ClipAnalyzer, ClipLimits};
use rollcall_recognizer::directory::PeopleDirectory;
use rollcall_recognizer::evaluation::median;
use serde::Serialize;

use crate::exit_codes::{failed_if, usage};
use crate::settings::{ClipArgs, ConfigFile, DirectoryAccess, RecognizerArgs};

/// Cut a video into clips and recognise the people in each.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Video file (anything ffmpeg reads).
    #[arg(value_name = "VIDEO")]
    video: PathBuf,
    /// Clip length in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    clip_ms: u32,
    #[command(flatten)]
    clip: ClipArgs,
    /// Print exactly one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

#[derive(Serialize)]
struct PersonSummary {
    person_id: String,
    name: String,
    clips: u32,
    best_similarity: f32,
}

#[derive(Serialize)]
struct ScanReport {
    clips: usize,
    clips_failed: usize,
    /// Frames the encoder could not take (lost input, like a failed clip).
    frames_skipped: u64,
    people: Vec<PersonSummary>,
    unknown_faces: u64,
    ms_per_clip_median: f64,
}

pub fn run(args: ScanArgs, config: &ConfigFile) -> Result<ExitCode> {
    if !(100..=10_000).contains(&args.clip_ms) {
        return usage("--clip-ms must be between 100 and 10000");
    }
    let settings = args.recognizer.resolve(config)?;
    let directory = settings.directory(DirectoryAccess::ReadOnly)?;
    let gallery = settings.gallery(&directory)?;
    let spec = SourceSpec::File(args.video.clone());
    let options = SourceOptions {
        pace: Pace::Fast,
        ..SourceOptions::default()
    };
    let mut source = open_source(&spec, &options)
        .with_context(|| format!("cannot read video {}", args.video.display()))?;
    let mut segment = SegmentConfig::new("scan", "scan", source.fps());
    segment.clip_ms = args.clip_ms;
    let mut segmenter = ClipSegmenter::new(segment)?;

    let pipeline = Arc::new(settings.pipeline()?);
    let analyzer = ClipAnalyzer::new(pipeline)
        .with_policy(args.clip.sample)
        .with_limits(ClipLimits {
            max_bytes: args.clip.max_clip_bytes,
            ..ClipLimits::default()
        });

    // Capture + encode on a thread of its own; a small queue keeps memory bounded.
    let (clips_tx, clips_rx) = mpsc::sync_channel::<EncodedClip>(4);
    let video = args.video.display().to_string();
    let capture = std::thread::spawn(move || -> Result<(u64, SkippedFrames)> {
        let mut frames = 0u64;
        while let Some(frame) = source.next_frame()? {
            frames += 1;
            for clip in segmenter.push_skipping(frame)? {
                if clips_tx.send(clip).is_err() {
                    return Ok((frames, segmenter.skipped().clone()));
                }
            }
        }
        if let Some(clip) = segmenter.finish()? {
            let _ = clips_tx.send(clip);
        }
        Ok((frames, segmenter.skipped().clone()))
    });

    let mut people: BTreeMap<String, PersonSummary> = BTreeMap::new();
    let (mut clips, mut failed, mut unknown_faces) = (0usize, 0usize, 0u64);
    let mut times = Vec::new();
    for clip in clips_rx {
        clips += 1;
        let meta = &clip.meta;
        let start_s = meta.seq as f64 * f64::from(args.clip_ms) / 1000.0;
        match analyzer.analyze(&meta.clip_id(), Some(meta), &clip.bytes, &gallery) {
            Err(e) => {
                failed += 1;
                if !args.json {
                    println!(
                        "clip {:04} [{start_s:6.2} s]: error: {}",
                        meta.seq,
                        terminal_safe(&e.to_string())
                    );
                }
            }
            Ok(analysis) => {
                times.push(analysis.timings.total_ms);
                unknown_faces += u64::from(analysis.unknown_faces);
                let mut names = Vec::new();
                for sighting in &analysis.people {
                    let entry = match people.entry(sighting.person_id.clone()) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let name = directory
                                .person(&sighting.person_id)?
                                .map_or_else(|| sighting.person_id.clone(), |r| r.name);
                            e.insert(PersonSummary {
                                person_id: sighting.person_id.clone(),
                                name,
                                clips: 0,
                                best_similarity: f32::MIN,
                            })
                        }
                    };
                    entry.clips += 1;
                    entry.best_similarity = entry.best_similarity.max(sighting.best_similarity);
                    names.push(format!(
                        "{} {:.2} ({} frame{})",
                        terminal_safe(&entry.name),
                        sighting.best_similarity,
                        sighting.frames_seen,
                        if sighting.frames_seen == 1 { "" } else { "s" }
                    ));
                }
                if !args.json {
                    let unknown = if analysis.unknown_faces > 0 {
                        format!("; {} unknown face(s)", analysis.unknown_faces)
                    } else {
                        String::new()
                    };
                    println!(
                        "clip {:04} [{start_s:6.2} s] {:>2} frames: {}{unknown}  ({:.0} ms)",
                        meta.seq,
                        meta.frame_count,
                        if names.is_empty() {
                            "nobody known".to_string()
                        } else {
                            names.join(", ")
                        },
                        analysis.timings.total_ms
                    );
                }
            }
        }
    }
    let (frames, skipped) = match capture.join() {
        Ok(outcome) => outcome.with_context(|| format!("capture of {video} failed"))?,
        Err(_) => anyhow::bail!("capture of {video} stopped unexpectedly"),
    };

    let mut people: Vec<PersonSummary> = people.into_values().collect();
    people.sort_by(|a, b| b.clips.cmp(&a.clips).then(a.person_id.cmp(&b.person_id)));
    let report = ScanReport {
        clips,
        clips_failed: failed,
        frames_skipped: skipped.count,
        people,
        unknown_faces,
        ms_per_clip_median: median(&times),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{video}: {frames} frames, {clips} clips ({failed} failed), median {:.0} ms per clip",
            report.ms_per_clip_median
        );
        for p in &report.people {
            println!(
                "  {} ({}): {} clip(s), best similarity {:.3}",
                terminal_safe(&p.name),
                p.person_id,
                p.clips,
                p.best_similarity
            );
        }
        println!("  unknown faces: {}", report.unknown_faces);
        if let Some(summary) = skipped.summary() {
            println!("  {}", terminal_safe(&summary));
        }
    }
    // A clip that could not be recognised, or a frame that could not be encoded, is lost input.
    Ok(failed_if(clips == 0 || failed > 0 || skipped.count > 0))
}
