//! Frame sources: a camera, a video file or a synthetic pattern, all behind one trait.
//!
//! Every source hands out [`Frame`]s in I420 (YUV 4:2:0 planar, the layout the H.264 encoder
//! takes) with even width and height. A source is chosen with a one-line spec string
//! ([`SourceSpec::parse`]) and opened with [`open_source`]:
//!
//! | spec | source |
//! |---|---|
//! | `file:PATH` | any video ffmpeg reads ([`FileSource`]) |
//! | `v4l2:/dev/videoN` | a V4L2 camera through ffmpeg's avdevice ([`V4l2Source`]) |
//! | `rpicam` | a Raspberry Pi camera through `rpicam-vid` / `libcamera-vid` ([`RpicamSource`]) |
//! | `test` | a moving synthetic pattern ([`TestPatternSource`]) |
//! | `rtsp://`, `rtsps://`, `http://`, `https://` URL | a network camera or stream, reconnected when it drops ([`NetworkSource`]) |
//!
//! A session hands its source a [`SourceLink`] ([`FrameSource::link`]): a source that can wait
//! for long (a camera reconnecting) gives up when the session stops, and records the times it
//! was offline in the link's [`OutageLog`].

#![warn(missing_docs)]

mod ffmpeg_video;
mod file;
mod link;
mod network;
mod rpicam;
mod test_pattern;
mod v4l2;

use std::fmt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use file::FileSource;
pub use link::{Outage, OutageLog, SourceLink};
pub use network::{CameraUrl, NetworkOptions, NetworkSource, RtspTransport, NETWORK_SCHEMES};
pub use rpicam::{RpicamConfig, RpicamSource, RPICAM_COMMANDS};
pub use test_pattern::TestPatternSource;
pub use v4l2::V4l2Source;

/// Default capture size for cameras and the test pattern when none is requested.
pub const DEFAULT_CAMERA_SIZE: (u32, u32) = (640, 480);
/// The largest frame the clip encoder takes: long side 3840, short side 2160, in either
/// orientation. Video files larger than this are scaled down to fit when opened.
pub const MAX_FRAME_SIZE: (u32, u32) = (3840, 2160);
/// Default frame rate for cameras and the test pattern when none is requested.
pub const DEFAULT_CAMERA_FPS: f32 = 30.0;

/// One captured picture.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Position of the frame in its source, from 0, without gaps.
    pub index: u64,
    /// Wall-clock time the frame was captured (delivered by the source), ns since the Unix epoch.
    pub capture_ns: u64,
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// I420 (YUV 4:2:0 planar): `width*height` luma bytes, then the U and V planes of
    /// `(width/2)*(height/2)` bytes each, rows packed without padding.
    pub data: Vec<u8>,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("index", &self.index)
            .field("capture_ns", &self.capture_ns)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl Frame {
    /// Byte length of an I420 picture of `width` x `height` (chroma planes rounded up).
    pub fn i420_len(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
    }

    /// Whether `data` has exactly the length an I420 picture of this size needs.
    pub fn is_well_formed(&self) -> bool {
        self.width > 0
            && self.height > 0
            && self.data.len() == Self::i420_len(self.width, self.height)
    }

    /// The Y, U and V planes, or `None` when `data` does not have the I420 length.
    pub fn planes(&self) -> Option<(&[u8], &[u8], &[u8])> {
        if !self.is_well_formed() {
            return None;
        }
        let y_len = self.width as usize * self.height as usize;
        let c_len = (self.width as usize).div_ceil(2) * (self.height as usize).div_ceil(2);
        let (y, rest) = self.data.split_at(y_len);
        let (u, v) = rest.split_at(c_len);
        Some((y, u, v))
    }

    /// Converts the picture to packed RGB (3 bytes per pixel, BT.601 limited range), for tests
    /// and previews. `None` when `data` does not have the I420 length.
    pub fn to_rgb(&self) -> Option<Vec<u8>> {
        i420_to_rgb(self.width, self.height, &self.data)
    }
}

/// Converts an I420 picture to packed RGB (BT.601 limited range, like most cameras and
/// ffmpeg's default). Returns `None` when `data` is not `Frame::i420_len(width, height)` long.
pub fn i420_to_rgb(width: u32, height: u32, data: &[u8]) -> Option<Vec<u8>> {
    if width == 0 || height == 0 || data.len() != Frame::i420_len(width, height) {
        return None;
    }
    let (w, h) = (width as usize, height as usize);
    let cw = w.div_ceil(2);
    let c_len = cw * h.div_ceil(2);
    let (y_plane, rest) = data.split_at(w * h);
    let (u_plane, v_plane) = rest.split_at(c_len);
    let mut rgb = vec![0u8; w * h * 3];
    for row in 0..h {
        for col in 0..w {
            let y = i32::from(y_plane[row * w + col]) - 16;
            let ci = (row / 2) * cw + col / 2;
            let u = i32::from(u_plane[ci]) - 128;
            let v = i32::from(v_plane[ci]) - 128;
            let c = 298 * y;
            let r = (c + 409 * v + 128) >> 8;
            let g = (c - 100 * u - 208 * v + 128) >> 8;
            let b = (c + 516 * u + 128) >> 8;
            let o = (row * w + col) * 3;
            rgb[o] = r.clamp(0, 255) as u8;
            rgb[o + 1] = g.clamp(0, 255) as u8;
            rgb[o + 2] = b.clamp(0, 255) as u8;
        }
    }
    Some(rgb)
}

/// Wall clock now, nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Why a source could not be opened or stopped delivering frames. Every variant names its input.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The source spec string is not one of the known forms.
    #[error("invalid source spec {spec:?}: {reason} (expected file:PATH, v4l2:/dev/videoN, rpicam, test or an rtsp://, rtsps://, http(s):// URL)")]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested options cannot be honoured.
    #[error("invalid source options for {source_name}: {reason}")]
    InvalidOptions {
        /// The source the options were meant for.
        source_name: String,
        /// What is wrong with them.
        reason: String,
    },
    /// A video file does not exist or cannot be read.
    #[error("cannot open video file {path}: {reason}")]
    FileOpen {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        reason: String,
    },
    /// A network camera or stream cannot be opened (refused, timed out, unauthorised...).
    #[error("cannot open camera stream {url}: {reason}")]
    StreamOpen {
        /// The URL, redacted (no password).
        url: String,
        /// The underlying failure.
        reason: String,
    },
    /// The input opened but has no video stream.
    #[error("{input} has no video stream")]
    NoVideoStream {
        /// File, device or command that was opened.
        input: String,
    },
    /// Decoding or converting the video failed (corrupt or unsupported data).
    #[error("cannot decode video from {input}: {reason}")]
    Decode {
        /// File, device or command the video came from.
        input: String,
        /// The underlying failure.
        reason: String,
    },
    /// A camera device does not exist.
    #[error("camera device {device} does not exist")]
    DeviceNotFound {
        /// The device path.
        device: PathBuf,
    },
    /// A camera device exists but cannot be opened (busy, no permission, not a capture device...).
    #[error("cannot open camera device {device}: {reason}")]
    DeviceOpen {
        /// The device path.
        device: PathBuf,
        /// The underlying failure.
        reason: String,
    },
    /// A camera stopped delivering frames (unplugged, driver error...).
    #[error("camera device {device} failed during capture: {reason}")]
    DeviceLost {
        /// The device path.
        device: PathBuf,
        /// The underlying failure.
        reason: String,
    },
    /// This ffmpeg build has no `video4linux2` input device.
    #[error("ffmpeg has no video4linux2 input device (libavdevice built without V4L2?); needed for {device}")]
    V4l2Unavailable {
        /// The device that was asked for.
        device: PathBuf,
    },
    /// None of the camera commands could be started.
    #[error("no camera command found: tried {}", tried.join(", "))]
    ToolNotFound {
        /// Every command that was tried, in order.
        tried: Vec<String>,
    },
    /// A camera command started but failed or ended unexpectedly.
    #[error("camera command {command} failed: {reason}")]
    Tool {
        /// The command line that was run.
        command: String,
        /// What went wrong, including the end of its stderr when there is any.
        reason: String,
    },
}

/// How fast a finite source (file, test pattern) delivers frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pace {
    /// Deliver frames at the stream's own rate, as a camera would (the default).
    #[default]
    RealTime,
    /// Deliver frames as fast as they can be produced (tests, benchmarks, batch runs).
    Fast,
}

/// What to ask of a source. `None` means "the source's native value" for files and
/// [`DEFAULT_CAMERA_SIZE`] / [`DEFAULT_CAMERA_FPS`] for cameras and the test pattern.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceOptions {
    /// Output width in pixels; rounded down to even. Needs `height` too.
    pub width: Option<u32>,
    /// Output height in pixels; rounded down to even. Needs `width` too.
    pub height: Option<u32>,
    /// Frame rate to request from a camera or to generate; a file keeps its own rate.
    pub fps: Option<f32>,
    /// Real-time or as-fast-as-possible delivery (files and the test pattern; cameras are
    /// always real time).
    pub pace: Pace,
    /// Stop after this many frames (end of source), if set.
    pub max_frames: Option<u64>,
    /// Timeouts and reconnection of network cameras.
    pub network: NetworkOptions,
}

impl SourceOptions {
    /// The requested size, if both dimensions are given; validated and rounded down to even.
    pub(crate) fn requested_size(
        &self,
        source_name: &str,
    ) -> Result<Option<(u32, u32)>, CaptureError> {
        match (self.width, self.height) {
            (None, None) => Ok(None),
            (Some(w), Some(h)) => {
                let (w, h) = (w & !1, h & !1);
                if w < 2 || h < 2 || w > 7680 || h > 4320 {
                    return Err(CaptureError::InvalidOptions {
                        source_name: source_name.to_string(),
                        reason: format!("size {w}x{h} is out of range (2x2 ..= 7680x4320, even)"),
                    });
                }
                Ok(Some((w, h)))
            }
            _ => Err(CaptureError::InvalidOptions {
                source_name: source_name.to_string(),
                reason: "give both width and height, or neither".to_string(),
            }),
        }
    }

    /// The requested frame rate, if given; validated.
    pub(crate) fn requested_fps(&self, source_name: &str) -> Result<Option<f32>, CaptureError> {
        match self.fps {
            None => Ok(None),
            Some(f) if f.is_finite() && f > 0.0 && f <= 1000.0 => Ok(Some(f)),
            Some(f) => Err(CaptureError::InvalidOptions {
                source_name: source_name.to_string(),
                reason: format!("frame rate {f} is out of range (0 < fps <= 1000)"),
            }),
        }
    }
}

/// A source of frames. Implementations block in [`next_frame`](FrameSource::next_frame) until
/// the next frame is due (cameras, real-time pacing) or ready.
pub trait FrameSource: Send {
    /// The next frame, `Ok(None)` at the end of the source, or the reason the source failed
    /// (after which it should not be polled again).
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;
    /// Human-readable description of the source (kind, path or device, size, rate).
    fn describe(&self) -> String;
    /// Nominal frame rate of the frames handed out.
    fn fps(&self) -> f32;
    /// Size `(width, height)` of the frames handed out.
    fn size(&self) -> (u32, u32);
    /// Connects the source to the session running it: when to stop waiting and where to record
    /// outages. Sources that never wait long (files, the test pattern) ignore it.
    fn link(&mut self, _link: SourceLink) {}
}

impl<T: FrameSource + ?Sized> FrameSource for Box<T> {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        (**self).next_frame()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn fps(&self) -> f32 {
        (**self).fps()
    }
    fn size(&self) -> (u32, u32) {
        (**self).size()
    }
    fn link(&mut self, link: SourceLink) {
        (**self).link(link)
    }
}

/// Which source to open, parsed from a spec string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `file:PATH`: a video file.
    File(PathBuf),
    /// `v4l2:/dev/videoN`: a V4L2 camera device.
    V4l2(PathBuf),
    /// `rpicam`: the Raspberry Pi camera through `rpicam-vid` (or `libcamera-vid`).
    Rpicam,
    /// `test`: a synthetic moving pattern.
    TestPattern,
    /// `rtsp://...`, `rtsps://...`, `http(s)://...`: a network camera or stream.
    Network(CameraUrl),
}

impl SourceSpec {
    /// Parses `file:PATH`, `v4l2:/dev/videoN`, `rpicam`, `test` or a camera URL.
    pub fn parse(spec: &str) -> Result<Self, CaptureError> {
        let invalid = |reason: &str| CaptureError::InvalidSpec {
            spec: crate::redact::redact_url(spec),
            reason: reason.to_string(),
        };
        let trimmed = spec.trim();
        if let Some(path) = trimmed.strip_prefix("file:") {
            if path.is_empty() {
                return Err(invalid("file: needs a path"));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        if let Some(dev) = trimmed.strip_prefix("v4l2:") {
            if dev.is_empty() {
                return Err(invalid("v4l2: needs a device path such as /dev/video0"));
            }
            return Ok(Self::V4l2(PathBuf::from(dev)));
        }
        if trimmed.contains("://") {
            return CameraUrl::parse(trimmed).map(Self::Network);
        }
        match trimmed {
            "rpicam" => Ok(Self::Rpicam),
            "test" => Ok(Self::TestPattern),
            "" => Err(invalid("empty")),
            _ => Err(invalid("unknown source kind")),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "file:{}", p.display()),
            Self::V4l2(p) => write!(f, "v4l2:{}", p.display()),
            Self::Rpicam => f.write_str("rpicam"),
            Self::TestPattern => f.write_str("test"),
            Self::Network(url) => url.fmt(f),
        }
    }
}

impl std::str::FromStr for SourceSpec {
    type Err = CaptureError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Opens the source a spec names, with the given options.
pub fn open_source(
    spec: &SourceSpec,
    options: &SourceOptions,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    let source: Box<dyn FrameSource> = match spec {
        SourceSpec::File(path) => Box::new(FileSource::open(path, options)?),
        SourceSpec::V4l2(device) => Box::new(V4l2Source::open(device, options)?),
        SourceSpec::Rpicam => Box::new(RpicamSource::open(options, &RpicamConfig::default())?),
        SourceSpec::TestPattern => Box::new(TestPatternSource::new(options)?),
        SourceSpec::Network(url) => Box::new(NetworkSource::open(url, options)?),
    };
    tracing::info!(source = %source.describe(), "opened frame source");
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            SourceSpec::parse("file:/a/b.mp4").unwrap(),
            SourceSpec::File("/a/b.mp4".into())
        );
        assert_eq!(
            SourceSpec::parse("v4l2:/dev/video0").unwrap(),
            SourceSpec::V4l2("/dev/video0".into())
        );
        assert_eq!(SourceSpec::parse("rpicam").unwrap(), SourceSpec::Rpicam);
        assert_eq!(
            SourceSpec::parse(" test ").unwrap(),
            SourceSpec::TestPattern
        );
        assert_eq!(
            SourceSpec::parse("rtsp://u:pw@cam:554/live").unwrap(),
            SourceSpec::Network(CameraUrl::parse("rtsp://u:pw@cam:554/live").unwrap())
        );
        assert_eq!(
            SourceSpec::parse("rtsp://u:pw@cam:554/live")
                .unwrap()
                .to_string(),
            "rtsp://u:***@cam:554/live"
        );
        let err = SourceSpec::parse("gopher://u:pw@cam/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("u:***@cam") && !err.contains("pw"), "{err}");
        for bad in ["", "file:", "v4l2:", "camera", "http://"] {
            let err = SourceSpec::parse(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(
            SourceSpec::parse("file:x.mp4").unwrap().to_string(),
            "file:x.mp4"
        );
    }

    #[test]
    fn options_validate() {
        let o = SourceOptions {
            width: Some(641),
            height: Some(481),
            ..Default::default()
        };
        assert_eq!(o.requested_size("t").unwrap(), Some((640, 480)));
        let o = SourceOptions {
            width: Some(640),
            ..Default::default()
        };
        assert!(o.requested_size("t").is_err());
        let o = SourceOptions {
            fps: Some(0.0),
            ..Default::default()
        };
        assert!(o.requested_fps("t").is_err());
        let o = SourceOptions {
            fps: Some(f32::NAN),
            ..Default::default()
        };
        assert!(o.requested_fps("t").is_err());
    }

    #[test]
    fn rgb_conversion() {
        // 2x2 mid-grey: Y=126, U=V=128 -> about 128 grey.
        let data = vec![126, 126, 126, 126, 128, 128];
        let rgb = i420_to_rgb(2, 2, &data).unwrap();
        assert_eq!(rgb.len(), 12);
        assert!(rgb.iter().all(|&c| (120..=135).contains(&c)), "{rgb:?}");
        assert!(i420_to_rgb(2, 2, &data[..5]).is_none());
        let f = Frame {
            index: 0,
            capture_ns: 0,
            width: 2,
            height: 2,
            data,
        };
        assert!(f.is_well_formed());
        assert_eq!(f.to_rgb().unwrap(), rgb);
        assert_eq!(Frame::i420_len(3, 3), 9 + 2 * 4);
    }
}
