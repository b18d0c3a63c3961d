//! Hostile capture inputs: a video whose display matrix says "turn me" (phones filming in
//! portrait), a video larger than the clip encoder takes, a source whose frames the encoder
//! refuses (one warning with the reason, not one per frame; the report says what happened), and
//! a FIFO given as a video file (refused at once instead of blocking). The videos are generated
//! with the ffmpeg CLI; nothing binary is committed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollcall_edge::session::{run_session, SessionConfig, SessionProbe};
use rollcall_edge::source::{
    open_source, FileSource, FrameSource, Pace, SourceOptions, SourceSpec,
};
use rollcall_edge::upload::LocalDirSink;
use rollcall_protocol::results::LocalResultQueue;

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg {args:?}");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

/// A 160x120 picture (grey, a red block in the top-left corner), 10 frames, upright.
fn upright_video(dir: &Path) -> PathBuf {
    let out = dir.join("upright.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:size=160x120:rate=10,drawbox=x=0:y=0:w=48:h=32:color=red:t=fill",
        "-frames:v",
        "10",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        path(&out),
    ]);
    out
}

/// `video`'s pixels turned by `transpose` (ffmpeg's filter value), with a display matrix
/// (`rotate=90`, written by stream copy as ffmpeg 5.1 does) that players undo.
fn tagged_video(dir: &Path, video: &Path, transpose: &str, name: &str) -> PathBuf {
    let turned = dir.join(format!("{name}-pixels.mp4"));
    ffmpeg(&[
        "-i",
        path(video),
        "-vf",
        &format!("transpose={transpose}"),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        path(&turned),
    ]);
    let tagged = dir.join(format!("{name}.mp4"));
    ffmpeg(&[
        "-i",
        path(&turned),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        path(&tagged),
    ]);
    tagged
}

/// The first frame as RGB, as ffmpeg itself shows it (its autorotation applied): the reference.
fn ffmpeg_first_frame(video: &Path) -> (u32, u32, Vec<u8>) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i", path(video)])
        .args(["-frames:v", "1", "-c:v", "ppm", "-f", "image2pipe", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success());
    // PPM: "P6\n<width> <height>\n255\n" then RGB.
    let text = String::from_utf8_lossy(&out.stdout[..32.min(out.stdout.len())]).into_owned();
    let fields: Vec<&str> = text.split_ascii_whitespace().take(4).collect();
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let header = format!("P6\n{w} {h}\n255\n").len();
    (w, h, out.stdout[header..].to_vec())
}

fn fast() -> SourceOptions {
    SourceOptions {
        pace: Pace::Fast,
        ..SourceOptions::default()
    }
}

/// Mean colour of the `size` x `size` block at (x, y) of an RGB picture `width` wide.
fn block_colour(rgb: &[u8], width: u32, (x, y): (u32, u32), size: u32) -> [f32; 3] {
    let mut sum = [0f32; 3];
    for row in y..y + size {
        for col in x..x + size {
            let i = ((row * width + col) * 3) as usize;
            for c in 0..3 {
                sum[c] += f32::from(rgb[i + c]);
            }
        }
    }
    sum.map(|v| v / (size * size) as f32)
}

fn is_red(colour: [f32; 3]) -> bool {
    colour[0] > 150.0 && colour[1] < 100.0 && colour[2] < 100.0
}

#[test]
fn videos_with_a_display_matrix_are_delivered_upright_like_ffmpeg_shows_them() {
    if !common::ffmpeg_cli() {
        println!("SKIP: the ffmpeg CLI is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let upright = upright_video(dir.path());
    // `clock`: pixels turned 90 degrees clockwise, which the rotate=90 matrix turns back;
    // `cclock`: turned the other way, so players show it upside down (and so must we).
    for (transpose, name) in [("clock", "portrait"), ("cclock", "upside-down")] {
        let video = tagged_video(dir.path(), &upright, transpose, name);
        let (w, h, reference) = ffmpeg_first_frame(&video);
        let mut source = FileSource::open(&video, &fast()).unwrap();
        assert_eq!(source.size(), (w, h), "{name}");
        let frame = source.next_frame().unwrap().expect("a frame");
        assert_eq!((frame.width, frame.height), (w, h), "{name}");
        let rgb = frame.to_rgb().unwrap();
        // Same corners red or grey as ffmpeg's own (autorotated) picture.
        let corners = [(2, 2), (w - 14, 2), (2, h - 14), (w - 14, h - 14)];
        for corner in corners {
            let ours = block_colour(&rgb, w, corner, 12);
            let theirs = block_colour(&reference, w, corner, 12);
            assert_eq!(
                is_red(ours),
                is_red(theirs),
                "{name} corner {corner:?}: ours {ours:?}, ffmpeg {theirs:?}"
            );
        }
        let red_corners = corners
            .iter()
            .filter(|c| is_red(block_colour(&rgb, w, **c, 12)))
            .count();
        assert_eq!(red_corners, 1, "{name}");
        if name == "portrait" {
            assert_eq!((w, h), (160, 120), "turned back to the upright size");
            assert!(is_red(block_colour(&rgb, w, (2, 2), 12)), "upright again");
        }
        let mut frames = 1;
        while let Some(frame) = source.next_frame().unwrap() {
            assert_eq!((frame.width, frame.height), (w, h));
            frames += 1;
        }
        assert_eq!(frames, 10);
    }
}

#[test]
fn videos_larger_than_the_encoder_takes_are_scaled_to_fit() {
    if !common::ffmpeg_cli() {
        println!("SKIP: the ffmpeg CLI is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("4k.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=4096x2160:rate=5",
        "-frames:v",
        "3",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        path(&video),
    ]);
    let mut source = FileSource::open(&video, &fast()).unwrap();
    assert_eq!(source.size(), (3840, 2024));
    let frame = source.next_frame().unwrap().unwrap();
    assert_eq!((frame.width, frame.height), (3840, 2024));
}

/// Counts the WARN lines a session logs.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl std::io::Write for Warnings {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn frames_the_encoder_refuses_give_one_warning_and_the_report_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let warnings = Warnings::default();
    let writer = warnings.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = SessionConfig::new(
        SourceSpec::TestPattern,
        "cam-4k",
        "s-4k",
        dir.path().join("spool"),
    );
    // A camera asked for 4096x2160: every frame is larger than the encoder takes.
    config.source_options = SourceOptions {
        width: Some(4096),
        height: Some(2160),
        max_frames: Some(12),
        ..fast()
    };
    config.grace = Duration::from_secs(1);
    let report = tracing::subscriber::with_default(subscriber, || {
        run_session(
            &config,
            Arc::new(LocalDirSink::new(dir.path().join("objects"))),
            Arc::new(LocalResultQueue::new()),
            runtime.handle().clone(),
            Arc::new(AtomicBool::new(false)),
            &SessionProbe::new(),
            |_| {},
        )
        .unwrap()
    });
    assert_eq!(report.clips.captured, 0);
    let error = report.error.expect("the report says what happened");
    assert!(
        error.contains("12 frame(s) could not be encoded"),
        "{error}"
    );
    assert!(error.contains("4096x2160"), "{error}");
    assert!(
        error.contains("larger than the encoder takes (3840x2160)"),
        "{error}"
    );
    let lines = warnings.0.lock().unwrap().clone();
    let skipped: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("frames skipped"))
        .collect();
    assert_eq!(
        skipped.len(),
        1,
        "one warning, not one per frame: {lines:?}"
    );
    assert!(
        skipped[0].contains("larger than the encoder takes"),
        "{}",
        skipped[0]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_fifo_given_as_a_video_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("camera.mp4");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let spec = SourceSpec::File(fifo.clone());
    let error = match open_source(&spec, &fast()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a FIFO was opened as a video"),
    };
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.contains("camera.mp4"), "{error}");
    assert!(error.contains("is a FIFO (named pipe)"), "{error}");
}
