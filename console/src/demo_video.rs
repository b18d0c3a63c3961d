//! The demo video: photos and a clip from the registries' demo data, built once with ffmpeg into
//! the model cache. `rollcall demo` builds it; sessions fall back to it when there is no camera,
//! and `bench cameras` replays it.

use anyhow::{Context, Result};
use rollcall_models::ModelCache;

/// The demo video: (input, seconds shown) in order; photos are held still, videos play.
const DEMO_VIDEO_PARTS: [(&str, Option<u32>); 4] = [
    ("obama2.jpg", Some(3)),
    ("obama3.jpg", Some(3)),
    ("t1.jpg", Some(3)),
    ("single_face.mp4", None),
];

/// Build the demo video (640x360, 30 fps) with the ffmpeg command-line tool, once.
pub fn build_demo_video(cache: &ModelCache) -> Result<std::path::PathBuf> {
    let out = demo_video_path(cache);
    if out.is_file() {
        return Ok(out);
    }
    let mut command = std::process::Command::new("ffmpeg");
    command.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
    let mut filters = String::new();
    for (i, (name, seconds)) in DEMO_VIDEO_PARTS.iter().enumerate() {
        let path = cache.demo_path(name)?;
        if let Some(seconds) = seconds {
            command.args(["-loop", "1", "-framerate", "30", "-t", &seconds.to_string()]);
        }
        command.arg("-i").arg(&path);
        // Fit into 640x360 without distortion; every part the same format for concat.
        filters.push_str(&format!(
            "[{i}:v]scale=640:360:force_original_aspect_ratio=decrease,\
             pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=30,format=yuv420p[v{i}];"
        ));
    }
    for i in 0..DEMO_VIDEO_PARTS.len() {
        filters.push_str(&format!("[v{i}]"));
    }
    filters.push_str(&format!("concat=n={}:v=1:a=0[out]", DEMO_VIDEO_PARTS.len()));
    let partial = out.with_extension("partial.mp4");
    command
        .args(["-filter_complex", &filters, "-map", "[out]"])
        // MPEG-4 Part 2 is built into every libavcodec; quality 3 keeps faces sharp.
        .args(["-c:v", "mpeg4", "-q:v", "3", "-an"])
        .arg(&partial);
    let status = command.status().map_err(|e| {
        anyhow::anyhow!(
            "cannot run ffmpeg to build the demo video ({e}); install it: sudo apt install ffmpeg"
        )
    })?;
    anyhow::ensure!(status.success(), "ffmpeg failed to build {}", out.display());
    std::fs::rename(&partial, &out)
        .with_context(|| format!("cannot move the demo video into {}", out.display()))?;
    Ok(out)
}

/// Where `rollcall demo` writes its demo video.
pub fn demo_video_path(cache: &ModelCache) -> std::path::PathBuf {
    cache.root().join("demo").join("rollcall-demo.mp4")
}
