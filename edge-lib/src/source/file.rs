//! Video files: anything ffmpeg demuxes and decodes, delivered in real time or as fast as possible.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use rollcall_protocol::input_files::regular_file_metadata;

use super::ffmpeg_video::{self, FfmpegVideo, OpenError, ReadError};
use super::{now_ns, CaptureError, Frame, FrameSource, Pace, SourceOptions};

/// Frames of a video file (any container and codec the system's ffmpeg reads), converted to
/// I420 at the requested size (default: the native size rounded down to even).
///
/// With [`Pace::RealTime`] (the default) frames are delivered on the stream's own timestamps,
/// as a camera would deliver them; with [`Pace::Fast`] as fast as decoding allows. Either way
/// `capture_ns` is the wall clock when the frame is delivered. The file's own frame rate is
/// kept ([`SourceOptions::fps`] is ignored).
pub struct FileSource {
    path: PathBuf,
    video: FfmpegVideo,
    pace: Pace,
    max_frames: Option<u64>,
    next_index: u64,
    /// Wall-clock instant and stream time (s) of the first delivered frame, for pacing.
    pace_origin: Option<(Instant, f64)>,
    failed: bool,
}

impl FileSource {
    /// Opens `path` and its best video stream.
    pub fn open(path: impl AsRef<Path>, options: &SourceOptions) -> Result<Self, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let name = format!("file:{}", path.display());
        let requested = options.requested_size(&name)?;
        // Checked first so a missing file says so plainly instead of in ffmpeg's words, and a
        // FIFO or a device is refused instead of blocking (cameras are `v4l2:` sources).
        if let Err(e) = regular_file_metadata(&path) {
            return Err(CaptureError::FileOpen {
                path,
                reason: e.to_string(),
            });
        }
        ffmpeg_video::init();
        let input = ffmpeg::format::input(&path).map_err(|e| CaptureError::FileOpen {
            path: path.clone(),
            reason: format!("not a readable video ({e})"),
        })?;
        let video = FfmpegVideo::new(input, requested).map_err(|e| match e {
            OpenError::NoVideoStream => CaptureError::NoVideoStream {
                input: path.display().to_string(),
            },
            OpenError::Decoder(reason) => CaptureError::Decode {
                input: path.display().to_string(),
                reason,
            },
        })?;
        let source = Self {
            path,
            video,
            pace: options.pace,
            max_frames: options.max_frames,
            next_index: 0,
            pace_origin: None,
            failed: false,
        };
        tracing::debug!(source = %source.describe(), "opened video file");
        Ok(source)
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sleeps until the frame with stream time `pts` is due (real-time pacing).
    fn pace(&mut self, pts: Option<f64>) {
        if self.pace != Pace::RealTime {
            return;
        }
        // Without timestamps, fall back to the nominal frame rate.
        let t = pts.unwrap_or(self.next_index as f64 / f64::from(self.video.fps()));
        let Some((start, t0)) = self.pace_origin else {
            self.pace_origin = Some((Instant::now(), t));
            return;
        };
        let offset = t - t0;
        if !(0.0..=86_400.0).contains(&offset) {
            // Timestamps went backwards or jumped: re-anchor instead of stalling.
            tracing::debug!(path = %self.path.display(), offset, "timestamp discontinuity; re-anchoring pacing");
            self.pace_origin = Some((Instant::now(), t));
            return;
        }
        let due = start + Duration::from_secs_f64(offset);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.failed || self.max_frames.is_some_and(|m| self.next_index >= m) {
            return Ok(None);
        }
        let picture = match self.video.next_picture() {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::debug!(path = %self.path.display(), frames = self.next_index, "end of video file");
                return Ok(None);
            }
            Err(e) => {
                self.failed = true;
                let reason = match e {
                    ReadError::Demux(e) => {
                        format!("reading failed after {} frames: {e}", self.next_index)
                    }
                    ReadError::Decode(r) => {
                        format!("decoding failed after {} frames: {r}", self.next_index)
                    }
                };
                return Err(CaptureError::Decode {
                    input: self.path.display().to_string(),
                    reason,
                });
            }
        };
        self.pace(picture.pts_secs);
        let (width, height) = self.video.out_size();
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

    fn describe(&self) -> String {
        let (w, h) = self.video.out_size();
        let pace = match self.pace {
            Pace::RealTime => "real time",
            Pace::Fast => "fast",
        };
        format!(
            "file:{} ({w}x{h} @ {:.2} fps, {pace})",
            self.path.display(),
            self.video.fps()
        )
    }

    fn fps(&self) -> f32 {
        self.video.fps()
    }

    fn size(&self) -> (u32, u32) {
        self.video.out_size()
    }
}
