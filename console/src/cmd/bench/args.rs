//! The flags of `rollcall bench cameras`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rollcall_recognizer::clip::SamplePolicy;

use crate::plan::durations::parse_duration;
use crate::settings::RecognizerArgs;

/// Options of `rollcall bench cameras`.
#[derive(Args, Debug)]
pub struct CamerasArgs {
    /// Camera counts to measure, in order (e.g. 1,2,4,6,8). Stops at the first count that is
    /// not kept in real time unless --keep-going.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,N,...",
        conflicts_with = "max"
    )]
    pub(super) cameras: Vec<usize>,
    /// Step up 1, 2, 3, ... cameras until the real-time criterion fails, at most N.
    /// (Default when neither --cameras nor --max is given: --max 8.)
    #[arg(long, value_name = "N")]
    pub(super) max: Option<usize>,
    /// Capture time per camera count (e.g. 20s, 1m).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub(super) duration: Duration,
    /// Video file a camera replays at real-time pace (repeatable: camera i plays video
    /// i mod count; a video shorter than --duration is replayed from the start).
    /// Default: the demo video $ROLLCALL_HOME/demo/WolfgangLanger_Pexels.mp4.
    #[arg(long = "video", value_name = "PATH")]
    pub(super) videos: Vec<PathBuf>,
    /// Cameras send clips recorded once before the run (each video cut into clips as a
    /// session would, then sent again at camera pace with fresh ids and times) instead of each
    /// decoding its video and encoding every frame: measures the recognition side alone, as
    /// when the cameras are separate devices. Without it, the simulated cameras' own decoding
    /// and encoding share this machine's CPU with the recognition they measure.
    #[arg(long)]
    pub(super) replay: bool,
    /// Frame size every camera delivers, WIDTHxHEIGHT (videos are scaled to it).
    #[arg(long, default_value = "640x360", value_parser = parse_size, value_name = "WxH")]
    pub(super) size: (u32, u32),
    /// Most recognition workers at once (default: the core count). With --backend aws: clips
    /// each `rollcall worker` process recognises at once (its --max-workers).
    #[arg(long, value_name = "N")]
    pub(super) max_workers: Option<usize>,
    /// Clip length in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub(super) clip_ms: u32,
    /// Frames analysed per clip: `auto` (at least 4 per second), `auto:N`, `all`, `every:K`.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    pub(super) sample: SamplePolicy,
    /// How far end-to-end p99 may exceed the clip length and still count as real time.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub(super) latency_margin: Duration,
    /// After capture, how long to wait without a new result before outstanding clips count as
    /// lost.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(super) grace: Duration,
    /// Measure every camera count even after one failed the criterion.
    #[arg(long)]
    pub(super) keep_going: bool,
    /// Print the results as JSON (the table goes to stderr).
    #[arg(long)]
    pub(super) json: bool,
    /// --backend aws: the deployment's resource names. The bench provisions them first (as
    /// `rollcall aws provision --device bench-cam-01 ...` does, default options: this resets the
    /// clip-events queue's visibility timeout to 60 s); someone must be enrolled in the people
    /// table (`ROLLCALL_AWS_PREFIX=<prefix> rollcall enroll --backend aws --photos DIR`).
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub(super) aws: crate::settings::AwsNames,
    /// --backend aws: `rollcall worker` processes the bench starts on this machine for the run
    /// (and kills at its end).
    #[cfg(feature = "aws")]
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub(super) workers: usize,
    #[command(flatten)]
    pub(super) recognizer: RecognizerArgs,
}

/// `640x360`.
pub(super) fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    match parsed {
        Some((w, h)) if (16..=7680).contains(&w) && (16..=4320).contains(&h) => Ok((w, h)),
        _ => Err(format!(
            "{text:?} is not a frame size WIDTHxHEIGHT between 16x16 and 7680x4320 (e.g. 640x360)"
        )),
    }
}

/// The device id of camera `index` (0-based): `bench-cam-01`, `bench-cam-02`, ...
pub(super) fn camera_device(index: usize) -> String {
    format!("bench-cam-{:02}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("640x360").unwrap(), (640, 360));
        assert_eq!(parse_size("1280X720").unwrap(), (1280, 720));
        for bad in ["", "640", "640x", "x360", "0x0", "640x360x2", "99999x10"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
