//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod mqtt_broker;
pub mod rtsp;
pub mod webhook_receiver;

use openh264::decoder::Decoder;
use rollcall_edge::segment::{nal_types, EncodedClip};

/// Decodes an Annex-B clip with a fresh openh264 decoder; returns (frames, width, height).
pub fn decode_clip(bytes: &[u8]) -> (usize, usize, usize) {
    use openh264::formats::YUVSource;
    let mut decoder = Decoder::new().expect("decoder");
    let mut frames = 0;
    let mut size = (0, 0);
    for nal in openh264::nal_units(bytes) {
        if let Some(picture) = decoder.decode(nal).expect("clip decodes") {
            frames += 1;
            size = picture.dimensions();
        }
    }
    for picture in decoder.flush_remaining().expect("flush") {
        frames += 1;
        size = picture.dimensions();
    }
    (frames, size.0, size.1)
}

/// Checks one clip: SPS, PPS, IDR first; decodable alone to `frame_count` pictures of its size.
pub fn check_clip(clip: &EncodedClip) {
    let types = nal_types(&clip.bytes);
    assert!(
        types.len() >= 3,
        "clip {} too short: {types:?}",
        clip.meta.clip_id()
    );
    assert_eq!(
        &types[..3],
        &[7, 8, 5],
        "clip {} starts with {types:?}",
        clip.meta.clip_id()
    );
    assert!(!types.contains(&1) || types.iter().position(|&t| t == 1) > Some(2));
    let (frames, w, h) = decode_clip(&clip.bytes);
    assert_eq!(
        frames,
        clip.meta.frame_count as usize,
        "decoded frames of clip {}",
        clip.meta.clip_id()
    );
    assert_eq!((w as u32, h as u32), (clip.meta.width, clip.meta.height));
    assert_eq!(
        clip.meta.codec,
        rollcall_protocol::wire::CLIP_CODEC_H264_ANNEXB
    );
    assert!(clip.meta.first_frame_ns <= clip.meta.last_frame_ns);
    assert!(clip.meta.last_frame_ns <= clip.meta.closed_ns);
}

/// Whether the ffmpeg CLI can be run.
pub fn ffmpeg_cli() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Writes a small H.264 MP4 with the ffmpeg CLI; `None` (with a printed reason) without it.
pub fn make_test_video(dir: &Path, size: &str, rate: u32, seconds: u32) -> Option<PathBuf> {
    if !ffmpeg_cli() {
        println!("SKIP: the ffmpeg CLI is not installed; cannot generate a test video");
        return None;
    }
    let out = dir.join("testsrc.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size={size}:rate={rate}"))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed to write {}", out.display());
    Some(out)
}

/// `$ROLLCALL_DATA` or `<workspace>/../shared/data`; `None` (with a printed reason) when
/// missing, or a panic when `ROLLCALL_REQUIRE_DATA=1`.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ROLLCALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("..")
                .join("shared")
                .join("data")
        });
    if dir.join("videos").is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "real data not found at {} (set ROLLCALL_DATA)",
        dir.join("videos").display()
    );
    if std::env::var("ROLLCALL_REQUIRE_DATA").as_deref() == Ok("1") {
        panic!("{msg}, and ROLLCALL_REQUIRE_DATA=1");
    }
    println!("SKIP: {msg}");
    None
}

/// A multi-thread Tokio runtime with one worker for the queues' futures.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
