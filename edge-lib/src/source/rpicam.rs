//! Raspberry Pi cameras through `rpicam-vid` (or the older `libcamera-vid`): the tool encodes
//! H.264 on the Pi's hardware and writes it to stdout; ffmpeg decodes it here.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use ffmpeg_next as ffmpeg;

use super::ffmpeg_video::{self, FfmpegVideo, OpenError, ReadError};
use super::{
    now_ns, CaptureError, Frame, FrameSource, SourceOptions, DEFAULT_CAMERA_FPS,
    DEFAULT_CAMERA_SIZE,
};

/// Camera commands tried in order by default.
pub const RPICAM_COMMANDS: [&str; 2] = ["rpicam-vid", "libcamera-vid"];

/// Lines of the tool's stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 12;

/// How to start the camera tool.
#[derive(Clone, Debug)]
pub struct RpicamConfig {
    /// Commands tried in order until one starts (default: [`RPICAM_COMMANDS`]).
    pub commands: Vec<String>,
    /// `PATH` to search the commands in; `None` inherits the process's.
    pub path_env: Option<OsString>,
    /// Extra arguments appended to the command line (e.g. `--camera 1`, `--rotation 180`).
    pub extra_args: Vec<String>,
}

impl Default for RpicamConfig {
    fn default() -> Self {
        Self {
            commands: RPICAM_COMMANDS.iter().map(|s| s.to_string()).collect(),
            path_env: None,
            extra_args: Vec::new(),
        }
    }
}

/// Frames from the Raspberry Pi camera: runs
/// `rpicam-vid -t 0 -n --codec h264 --inline --width W --height H --framerate F -o -`
/// (falling back to `libcamera-vid`) and decodes the H.264 it writes to stdout.
///
/// The camera paces itself; default size and rate are [`DEFAULT_CAMERA_SIZE`] and
/// [`DEFAULT_CAMERA_FPS`]. The tool is killed when the source is dropped. If it exits
/// mid-run, [`next_frame`](FrameSource::next_frame) returns [`CaptureError::Tool`] with the
/// end of its stderr, and the source ends.
pub struct RpicamSource {
    command_line: String,
    child: Child,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    video: Option<FfmpegVideo>,
    max_frames: Option<u64>,
    next_index: u64,
    failed: bool,
}

impl RpicamSource {
    /// Starts the first available camera command and opens its H.264 stream.
    pub fn open(options: &SourceOptions, config: &RpicamConfig) -> Result<Self, CaptureError> {
        let (width, height) = options
            .requested_size("rpicam")?
            .unwrap_or(DEFAULT_CAMERA_SIZE);
        let fps = options
            .requested_fps("rpicam")?
            .unwrap_or(DEFAULT_CAMERA_FPS);
        let mut args: Vec<String> = [
            "-t",
            "0",
            "-n",
            "--codec",
            "h264",
            "--inline",
            "--width",
            &width.to_string(),
            "--height",
            &height.to_string(),
            "--framerate",
            &fps.to_string(),
            "-o",
            "-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(config.extra_args.iter().cloned());

        let mut tried = Vec::new();
        let mut started = None;
        for program in &config.commands {
            let mut cmd = Command::new(program);
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(path) = &config.path_env {
                cmd.env("PATH", path);
            }
            match cmd.spawn() {
                Ok(child) => {
                    started = Some((format!("{program} {}", args.join(" ")), child));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::debug!(program, "camera command not found");
                    tried.push(program.clone());
                }
                Err(e) => {
                    tracing::warn!(program, error = %e, "camera command could not be started");
                    tried.push(format!("{program} ({e})"));
                }
            }
        }
        let Some((command_line, mut child)) = started else {
            return Err(CaptureError::ToolNotFound { tried });
        };
        tracing::info!(command = %command_line, "started camera command");

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut stderr_reader = None;
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            let spawned = std::thread::Builder::new()
                .name("rpicam-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        tracing::debug!(target: "rollcall_edge::rpicam", "{line}");
                        if let Ok(mut t) = tail.lock() {
                            if t.len() == STDERR_TAIL_LINES {
                                t.pop_front();
                            }
                            t.push_back(line);
                        }
                    }
                });
            match spawned {
                Ok(handle) => stderr_reader = Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the thread that reads the camera's stderr")
                }
            }
        }
        let mut source = Self {
            command_line,
            child,
            stderr_tail,
            stderr_reader,
            video: None,
            max_frames: options.max_frames,
            next_index: 0,
            failed: false,
        };
        let Some(stdout) = source.child.stdout.take() else {
            return Err(source.tool_error("no stdout pipe".to_string()));
        };
        ffmpeg_video::init();
        let io = ffmpeg::format::context::StreamIo::from_read(stdout)
            .map_err(|e| source.tool_error(format!("cannot wrap its stdout for ffmpeg: {e}")))?;
        let mut dict = ffmpeg::Dictionary::new();
        dict.set("framerate", &fps.to_string());
        let input = ffmpeg::format::input_from_stream(io, Some("rpicam.h264"), Some(dict))
            .map_err(|e| source.tool_error(format!("no H.264 stream on its stdout ({e})")))?;
        let video = FfmpegVideo::new(input, Some((width, height))).map_err(|e| match e {
            OpenError::NoVideoStream => {
                source.tool_error("its output has no video stream".to_string())
            }
            OpenError::Decoder(r) => source.tool_error(format!("cannot decode its output: {r}")),
        })?;
        source.video = Some(video);
        Ok(source)
    }

    /// An error about the tool, with its exit status (if it has exited) and stderr tail.
    fn tool_error(&mut self, what: String) -> CaptureError {
        // Give a dying process a moment so that its status and last words are available.
        let mut status = None;
        for _ in 0..20 {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        let mut reason = what;
        if let Some(s) = status {
            reason.push_str(&format!("; exited with {s}"));
            // Let the stderr reader catch the last lines (bounded: a leftover grandchild
            // may keep the pipe open).
            for _ in 0..50 {
                if self.stderr_reader.as_ref().is_none_or(|h| h.is_finished()) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let tail: Vec<String> = self
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        if !tail.is_empty() {
            reason.push_str(&format!("; stderr: {}", tail.join(" | ")));
        }
        CaptureError::Tool {
            command: self.command_line.clone(),
            reason,
        }
    }
}

impl FrameSource for RpicamSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.failed || self.max_frames.is_some_and(|m| self.next_index >= m) {
            return Ok(None);
        }
        let Some(video) = self.video.as_mut() else {
            return Ok(None);
        };
        let result = video.next_picture();
        let (width, height) = video.out_size();
        match result {
            Ok(Some(picture)) => {
                let frame = Frame {
                    index: self.next_index,
                    capture_ns: now_ns(),
                    width,
                    height,
                    data: picture.data,
                };
                self.next_index += 1;
                Ok(Some(frame))
            }
            Ok(None) => {
                self.failed = true;
                let frames = self.next_index;
                Err(self.tool_error(format!("stream ended after {frames} frames")))
            }
            Err(e) => {
                self.failed = true;
                let reason = match e {
                    ReadError::Demux(e) => format!("reading its output failed: {e}"),
                    ReadError::Decode(r) => format!("decoding its output failed: {r}"),
                };
                Err(self.tool_error(reason))
            }
        }
    }

    fn describe(&self) -> String {
        let (w, h) = self.size();
        format!(
            "rpicam ({w}x{h} @ {:.2} fps): {}",
            self.fps(),
            self.command_line
        )
    }

    fn fps(&self) -> f32 {
        self.video
            .as_ref()
            .map_or(DEFAULT_CAMERA_FPS, FfmpegVideo::fps)
    }

    fn size(&self) -> (u32, u32) {
        self.video
            .as_ref()
            .map_or(DEFAULT_CAMERA_SIZE, FfmpegVideo::out_size)
    }
}

impl Drop for RpicamSource {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Err(e) = self.child.kill() {
                tracing::debug!(error = %e, "cannot kill the camera command");
            }
        }
        // Close the pipe before reaping, so a tool blocked on writing sees EPIPE.
        self.video = None;
        if let Err(e) = self.child.wait() {
            tracing::debug!(error = %e, "cannot reap the camera command");
        }
    }
}
