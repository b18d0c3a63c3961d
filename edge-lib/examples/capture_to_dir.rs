//! Capture -> 0.5 s clips -> disk spool -> upload into a local directory, printing every clip.
//!
//! ```text
//! cargo run -p rollcall-edge --example capture_to_dir -- [SOURCE] [OUT_DIR] [SECONDS]
//! ```
//! SOURCE is `test` (default), `file:PATH`, `v4l2:/dev/video0` or `rpicam`; OUT_DIR defaults to
//! `./rollcall-capture` (spool in `OUT_DIR/spool`, uploaded objects in `OUT_DIR/objects`);
//! SECONDS (default 3; 0 = until the source ends) limits the capture. `RUST_LOG=debug` shows
//! the library's logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
use rollcall_edge::source::{open_source, SourceOptions, SourceSpec};
use rollcall_edge::spool::ClipSpool;
use rollcall_edge::upload::{LocalDirSink, Uploader, UploaderConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let spec = SourceSpec::parse(&args.next().unwrap_or_else(|| "test".to_string()))?;
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "rollcall-capture".to_string()),
    );
    let seconds: f32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3.0);

    let mut source = open_source(&spec, &SourceOptions::default())?;
    let max_frames = (seconds > 0.0).then(|| (seconds * source.fps()).round() as u64);
    println!("source: {}", source.describe());

    let spool = Arc::new(ClipSpool::open(
        out.join("spool"),
        "example-device",
        256 << 20,
    )?);
    let sink = Arc::new(LocalDirSink::new(out.join("objects")));
    let uploader = Uploader::start(Arc::clone(&spool), sink, UploaderConfig::default(), |ev| {
        let outcome = match &ev.result {
            Ok(()) => "uploaded".to_string(),
            Err(e) => format!("FAILED ({e})"),
        };
        println!(
            "  {} {outcome}: attempts={} upload={:.1} ms spool_wait={:.1} ms",
            ev.meta.clip_id(),
            ev.attempts,
            ev.upload.as_secs_f64() * 1e3,
            ev.spool_wait.as_secs_f64() * 1e3
        );
    })?;

    let session = format!("s{}", rollcall_edge::source::now_ns() / 1_000_000_000);
    let mut segmenter =
        ClipSegmenter::new(SegmentConfig::new("example-device", session, source.fps()))?;
    let mut frames = 0u64;
    loop {
        if max_frames.is_some_and(|m| frames >= m) {
            break;
        }
        let frame = match source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                eprintln!("capture ended: {e}");
                break;
            }
        };
        frames += 1;
        for clip in segmenter.push(frame)? {
            println!(
                "clip {}: {} frames {}x{}, {} bytes, encode {:.1} ms ({:.2} ms/frame)",
                clip.meta.clip_id(),
                clip.meta.frame_count,
                clip.meta.width,
                clip.meta.height,
                clip.bytes.len(),
                clip.encode.as_secs_f64() * 1e3,
                clip.encode.as_secs_f64() * 1e3 / f64::from(clip.meta.frame_count)
            );
            let pushed = spool.push(&clip)?;
            for evicted in pushed.evicted {
                eprintln!("spool full: dropped {}", evicted.clip_id());
            }
        }
    }
    if let Some(clip) = segmenter.finish()? {
        println!(
            "clip {}: {} frames (last, partial), {} bytes",
            clip.meta.clip_id(),
            clip.meta.frame_count,
            clip.bytes.len()
        );
        spool.push(&clip)?;
    }
    let drained = uploader.finish(Duration::from_secs(30));
    println!(
        "{frames} frames; objects in {}; spool {}",
        out.join("objects").display(),
        if drained {
            "empty".to_string()
        } else {
            format!("still holds {} clips (uploaded next run)", spool.len())
        }
    );
    Ok(())
}
