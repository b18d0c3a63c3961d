//! V4L2 cameras (USB webcams, capture cards, the Pi camera through its V4L2 bridge) via
//! ffmpeg's `video4linux2` input device.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;

use super::ffmpeg_video::{self, FfmpegVideo, OpenError, ReadError};
use super::{
    now_ns, CaptureError, Frame, FrameSource, SourceOptions, DEFAULT_CAMERA_FPS,
    DEFAULT_CAMERA_SIZE,
};

/// Frames from a V4L2 device such as `/dev/video0`.
///
/// The requested size and frame rate (default [`DEFAULT_CAMERA_SIZE`] at
/// [`DEFAULT_CAMERA_FPS`]) are passed to the driver as `video_size` / `framerate`; frames are
/// scaled to the requested size if the driver picks another one. The camera paces itself
/// ([`SourceOptions::pace`] does not apply). If the device disappears or fails mid-run,
/// [`next_frame`](FrameSource::next_frame) returns [`CaptureError::DeviceLost`] once and the
/// source ends.
pub struct V4l2Source {
    device: PathBuf,
    video: FfmpegVideo,
    max_frames: Option<u64>,
    next_index: u64,
    failed: bool,
}

impl V4l2Source {
    /// Opens the device with the requested options.
    pub fn open(device: impl AsRef<Path>, options: &SourceOptions) -> Result<Self, CaptureError> {
        let device = device.as_ref().to_path_buf();
        let name = format!("v4l2:{}", device.display());
        let (width, height) = options
            .requested_size(&name)?
            .unwrap_or(DEFAULT_CAMERA_SIZE);
        let fps = options.requested_fps(&name)?.unwrap_or(DEFAULT_CAMERA_FPS);
        if !device.exists() {
            return Err(CaptureError::DeviceNotFound { device });
        }
        ffmpeg_video::init();
        let format = ffmpeg::device::input::video()
            .find(|f| {
                f.name()
                    .split(',')
                    .any(|n| n == "video4linux2" || n == "v4l2")
            })
            .ok_or_else(|| CaptureError::V4l2Unavailable {
                device: device.clone(),
            })?;
        let mut dict = ffmpeg::Dictionary::new();
        dict.set("video_size", &format!("{width}x{height}"));
        dict.set("framerate", &format_fps(fps));
        let context = ffmpeg::format::open_with(&device, &format, dict).map_err(|e| {
            CaptureError::DeviceOpen {
                device: device.clone(),
                reason: describe_open_error(e),
            }
        })?;
        let ffmpeg::format::context::Context::Input(input) = context else {
            return Err(CaptureError::DeviceOpen {
                device,
                reason: "opened as an output".to_string(),
            });
        };
        let video = FfmpegVideo::new(input, Some((width, height))).map_err(|e| match e {
            OpenError::NoVideoStream => CaptureError::NoVideoStream {
                input: device.display().to_string(),
            },
            OpenError::Decoder(reason) => CaptureError::DeviceOpen {
                device: device.clone(),
                reason,
            },
        })?;
        let source = Self {
            device,
            video,
            max_frames: options.max_frames,
            next_index: 0,
            failed: false,
        };
        tracing::info!(source = %source.describe(), "opened V4L2 camera");
        Ok(source)
    }

    /// The device being read.
    pub fn device(&self) -> &Path {
        &self.device
    }
}

/// Frame rate as ffmpeg's option parser takes it (`30` or `29.97`).
fn format_fps(fps: f32) -> String {
    if (fps - fps.round()).abs() < 1e-3 {
        format!("{}", fps.round() as u32)
    } else {
        format!("{fps:.3}")
    }
}

fn describe_open_error(e: ffmpeg::Error) -> String {
    match e {
        ffmpeg::Error::Other { errno } if errno == ffmpeg::error::EBUSY => {
            format!("device is busy (another program is using it): {e}")
        }
        ffmpeg::Error::Other { errno } if errno == ffmpeg::error::EACCES => {
            format!("permission denied (is the user in the 'video' group?): {e}")
        }
        ffmpeg::Error::Other { errno }
            if errno == ffmpeg::error::ENOENT || errno == ffmpeg::error::ENODEV =>
        {
            format!("no such device: {e}")
        }
        other => other.to_string(),
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.failed || self.max_frames.is_some_and(|m| self.next_index >= m) {
            return Ok(None);
        }
        match self.video.next_picture() {
            Ok(Some(picture)) => {
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
            Ok(None) => {
                // A camera never ends by itself: treat end of stream as the device going away.
                self.failed = true;
                Err(CaptureError::DeviceLost {
                    device: self.device.clone(),
                    reason: format!("stream ended after {} frames", self.next_index),
                })
            }
            Err(e) => {
                self.failed = true;
                let reason = match e {
                    ReadError::Demux(e) => e.to_string(),
                    ReadError::Decode(r) => r,
                };
                tracing::warn!(device = %self.device.display(), frames = self.next_index, %reason, "camera failed");
                Err(CaptureError::DeviceLost {
                    device: self.device.clone(),
                    reason,
                })
            }
        }
    }

    fn describe(&self) -> String {
        let (w, h) = self.video.out_size();
        format!(
            "v4l2:{} ({w}x{h} @ {:.2} fps)",
            self.device.display(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_option_text() {
        assert_eq!(format_fps(30.0), "30");
        assert_eq!(format_fps(29.97), "29.970");
    }
}
