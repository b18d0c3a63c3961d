//! Network cameras: RTSP (`rtsp://`, `rtsps://`) and HTTP (`http://`, `https://`: MJPEG, HLS,
//! anything ffmpeg opens from a URL), with a read timeout and reconnection.
//!
//! The first connection must succeed (a wrong URL or password is reported at once). After that
//! a stream that ends, errs or stalls for longer than the read timeout is reconnected with a
//! doubling, capped backoff while the session keeps running; each gap is recorded in the
//! session's [`OutageLog`](super::OutageLog). The URL is shown only through
//! [`redact_url`](crate::redact::redact_url): passwords and tokens never reach logs, errors or
//! reports.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;

use super::ffmpeg_video::{self, FfmpegVideo, OpenError, ReadError};
use super::{now_ns, CaptureError, Frame, FrameSource, SourceLink, SourceOptions};
use crate::redact::{redact_url, with_credentials, UrlParts};

/// How long the arrival rate of a stream without a stated frame rate is measured at opening.
const FPS_MEASUREMENT: Duration = Duration::from_millis(1500);
/// Frames at the start of a stream that may arrive in a burst (ffmpeg's probing buffered them).
const FPS_BURST: Duration = Duration::from_millis(500);

/// URL schemes a network camera can use.
pub const NETWORK_SCHEMES: [&str; 4] = ["rtsp", "rtsps", "http", "https"];

/// The URL of a network camera, credentials included. It shows itself (`Display`, `Debug`)
/// only redacted; the full URL goes nowhere but to ffmpeg.
#[derive(Clone, PartialEq, Eq)]
pub struct CameraUrl {
    url: String,
}

impl CameraUrl {
    /// Checks `text` is an `rtsp://`, `rtsps://`, `http://` or `https://` URL with a host.
    pub fn parse(text: &str) -> Result<CameraUrl, CaptureError> {
        let text = text.trim();
        let invalid = |reason: &str| CaptureError::InvalidSpec {
            spec: redact_url(text),
            reason: reason.to_string(),
        };
        let parts = UrlParts::split(text).ok_or_else(|| invalid("not a URL with a host"))?;
        let scheme = parts.scheme.to_ascii_lowercase();
        if !NETWORK_SCHEMES.contains(&scheme.as_str()) {
            return Err(invalid(
                "network cameras use rtsp://, rtsps://, http:// or https://",
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "URLs cannot hold spaces or control characters (use %20)",
            ));
        }
        if parts.path().contains('@') {
            // ffmpeg would read the text before the '/' as the host and send the rest as a
            // path: the password would travel in the clear and show up in logs.
            return Err(invalid(
                "'@' after the host: percent-encode '/' (%2F) and '@' (%40) in the password",
            ));
        }
        if parts.port().is_none() && parts.host_port.ends_with(':') {
            return Err(invalid("empty port"));
        }
        Ok(CameraUrl {
            url: text.to_string(),
        })
    }

    /// The scheme in lower case (`rtsp`, `rtsps`, `http`, `https`).
    pub fn scheme(&self) -> String {
        UrlParts::split(&self.url)
            .map(|p| p.scheme.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// Whether the URL carries a user name.
    pub fn has_credentials(&self) -> bool {
        UrlParts::split(&self.url).is_some_and(|p| p.userinfo.is_some())
    }

    /// This URL with `user` / `password` as credentials, unless it has its own (which win).
    pub fn with_credentials(&self, user: &str, password: Option<&str>) -> CameraUrl {
        CameraUrl {
            url: with_credentials(&self.url, user, password),
        }
    }

    /// The URL as it may be shown: `rtsp://admin:***@cam/live`.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// The full URL, credentials included: for the client library only.
    fn secret(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for CameraUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for CameraUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CameraUrl({})", self.redacted())
    }
}

/// How RTSP carries the video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtspTransport {
    /// RTP interleaved in the RTSP TCP connection: passes NAT and firewalls, loses nothing (the
    /// default).
    #[default]
    Tcp,
    /// RTP over UDP: lower latency on a clean LAN, drops packets under load.
    Udp,
}

impl RtspTransport {
    fn option(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

/// Timeouts and reconnection of a network camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkOptions {
    /// RTSP transport (default TCP).
    pub rtsp_transport: RtspTransport,
    /// A stream that delivers no picture for this long counts as dropped (default 10 s); also
    /// the limit on connecting.
    pub read_timeout: Duration,
    /// Wait before the first reconnection attempt (default 0.5 s); doubled after each failure...
    pub reconnect_first: Duration,
    /// ...up to this (default 10 s).
    pub reconnect_max: Duration,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            rtsp_transport: RtspTransport::Tcp,
            read_timeout: Duration::from_secs(10),
            reconnect_first: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

impl NetworkOptions {
    /// The wait before reconnection attempt `attempt` (from 0): doubling, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.reconnect_first
            .saturating_mul(factor)
            .min(self.reconnect_max)
    }
}

/// When the stream last made progress, for ffmpeg's interrupt callback: a read that makes no
/// progress for the read timeout, or a session that no longer wants frames, aborts the blocking
/// call (ffmpeg returns `AVERROR_EXIT`).
struct Watchdog {
    origin: Instant,
    /// Milliseconds since `origin` of the last progress.
    last_progress_ms: AtomicU64,
    timeout: Duration,
    link: std::sync::Mutex<SourceLink>,
}

impl Watchdog {
    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_progress_ms.store(ms, Ordering::Relaxed);
    }

    fn stalled(&self) -> bool {
        let last = Duration::from_millis(self.last_progress_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last) > self.timeout
    }

    fn link(&self) -> SourceLink {
        self.link.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn interrupted(&self) -> bool {
        self.link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .interrupted()
    }
}

/// Frames from a network camera, re-timed to the wall clock on arrival (`capture_ns` is when
/// the picture was delivered, as for the other cameras), converted to I420 at the requested
/// size (default: the stream's size rounded down to even; kept across reconnections).
///
/// ffmpeg options: `rtsp_transport` (TCP by default), `timeout` (RTSP socket I/O) and
/// `rw_timeout` (HTTP and other protocols) set to the read timeout, plus an interrupt callback
/// that aborts any blocking call once no picture came for the read timeout or the session's
/// [`SourceLink`] is interrupted.
pub struct NetworkSource {
    url: CameraUrl,
    options: NetworkOptions,
    video: Option<FfmpegVideo>,
    out_size: (u32, u32),
    fps: f32,
    max_frames: Option<u64>,
    next_index: u64,
    last_frame_ns: Option<u64>,
    watchdog: Arc<Watchdog>,
    ended: bool,
    /// Pictures read while measuring the frame rate, with their arrival times: delivered first.
    measured: VecDeque<(Vec<u8>, u64)>,
}

impl NetworkSource {
    /// Connects to the camera (failing with the reason when it cannot) and opens its video.
    pub fn open(url: &CameraUrl, options: &SourceOptions) -> Result<Self, CaptureError> {
        let name = url.redacted();
        let requested = options.requested_size(&name)?;
        let network = options.network.clone();
        if network.read_timeout.is_zero() || network.reconnect_first.is_zero() {
            return Err(CaptureError::InvalidOptions {
                source_name: name,
                reason: "the read timeout and the reconnection wait must be above zero".into(),
            });
        }
        ffmpeg_video::init();
        let watchdog = Arc::new(Watchdog {
            origin: Instant::now(),
            last_progress_ms: AtomicU64::new(0),
            timeout: network.read_timeout,
            link: std::sync::Mutex::new(SourceLink::default()),
        });
        let mut video = connect(url, &network, &watchdog, requested)?;
        let (fps, measured) = if video.fps_declared() {
            (video.fps(), VecDeque::new())
        } else {
            measure_fps(&mut video, &watchdog)
        };
        let source = NetworkSource {
            url: url.clone(),
            out_size: video.out_size(),
            fps,
            measured,
            video: Some(video),
            options: network,
            max_frames: options.max_frames,
            next_index: 0,
            last_frame_ns: None,
            watchdog,
            ended: false,
        };
        tracing::info!(source = %source.describe(), "opened network camera");
        Ok(source)
    }

    /// The camera's URL (shows itself redacted).
    pub fn url(&self) -> &CameraUrl {
        &self.url
    }

    /// The next frame: `data` delivered at `capture_ns`.
    fn frame(&mut self, data: Vec<u8>, capture_ns: u64) -> Frame {
        self.last_frame_ns = Some(capture_ns);
        let frame = Frame {
            index: self.next_index,
            capture_ns,
            width: self.out_size.0,
            height: self.out_size.1,
            data,
        };
        self.next_index += 1;
        frame
    }

    /// The stream was lost: record the outage and drop the connection.
    fn lost(&mut self, reason: String) {
        self.video = None;
        let start = self.last_frame_ns.unwrap_or_else(now_ns);
        tracing::warn!(camera = %self.url, %reason, "camera offline; reconnecting");
        self.watchdog.link().outages().begin(start, reason);
    }

    /// Reconnects with backoff until it works (`true`) or the session is interrupted (`false`).
    fn reconnect(&mut self) -> bool {
        let mut attempt = 0u32;
        loop {
            let wait = self.options.backoff(attempt);
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if self.watchdog.interrupted() {
                    return false;
                }
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
            match connect(
                &self.url,
                &self.options,
                &self.watchdog,
                Some(self.out_size),
            ) {
                Ok(video) => {
                    self.video = Some(video);
                    let link = self.watchdog.link();
                    if let Some(outage) = link.outages().end(now_ns()) {
                        tracing::warn!(
                            camera = %self.url,
                            offline_s = format!("{:.1}", outage.seconds(0)),
                            failed_attempts = outage.failed_attempts,
                            "camera back online"
                        );
                    }
                    return true;
                }
                Err(e) => {
                    if self.watchdog.interrupted() {
                        return false;
                    }
                    self.watchdog.link().outages().attempt_failed();
                    // The first failures say why; later ones repeat it quietly.
                    if attempt < 3 {
                        tracing::warn!(camera = %self.url, error = %e, attempt, "reconnection failed");
                    } else {
                        tracing::debug!(camera = %self.url, error = %e, attempt, "reconnection failed");
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

/// A stream that states no frame rate (MJPEG over HTTP): the rate its pictures arrive at,
/// measured for [`FPS_MEASUREMENT`] after an initial burst, and the pictures read meanwhile.
/// Falls back to ffmpeg's guess when too few pictures came.
fn measure_fps(video: &mut FfmpegVideo, watchdog: &Watchdog) -> (f32, VecDeque<(Vec<u8>, u64)>) {
    let started = Instant::now();
    let mut pictures = VecDeque::new();
    while started.elapsed() < FPS_MEASUREMENT && pictures.len() < 200 {
        watchdog.touch();
        match video.next_picture() {
            Ok(Some(picture)) => pictures.push_back((picture.data, now_ns())),
            // The failure comes back at the next read, where it is handled.
            _ => break,
        }
    }
    let first = pictures.front().map_or(0, |(_, t)| *t);
    let burst_ns = u64::try_from(FPS_BURST.as_nanos()).unwrap_or(u64::MAX);
    let steady: Vec<u64> = pictures
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| *t >= first.saturating_add(burst_ns))
        .collect();
    let measured = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if steady.len() >= 5 && b > a => {
            Some(((steady.len() - 1) as f64 / ((b - a) as f64 / 1e9)) as f32)
        }
        _ => None,
    }
    .filter(|f| (0.5..=240.0).contains(f));
    match measured {
        Some(fps) => {
            tracing::info!(
                fps,
                guessed = video.fps(),
                "stream states no frame rate; measured the arrivals"
            );
            (fps, pictures)
        }
        None => {
            tracing::warn!(fps = video.fps(), "stream states no frame rate and too few pictures came to measure it; using ffmpeg's guess");
            (video.fps(), pictures)
        }
    }
}

/// Opens the URL with the timeouts and the interrupt callback; `requested` is the output size.
fn connect(
    url: &CameraUrl,
    options: &NetworkOptions,
    watchdog: &Arc<Watchdog>,
    requested: Option<(u32, u32)>,
) -> Result<FfmpegVideo, CaptureError> {
    let name = url.redacted();
    let timeout_us = options.read_timeout.as_micros().to_string();
    let mut dict = ffmpeg::Dictionary::new();
    if url.scheme().starts_with("rtsp") {
        dict.set("rtsp_transport", options.rtsp_transport.option());
        // RTSP's socket I/O timeout (ffmpeg 5: `timeout`, in microseconds).
        dict.set("timeout", &timeout_us);
    }
    dict.set("rw_timeout", &timeout_us);
    dict.set(
        "user_agent",
        concat!("rollcall/", env!("CARGO_PKG_VERSION")),
    );
    watchdog.touch();
    let interrupt = {
        let watchdog = Arc::clone(watchdog);
        move || watchdog.stalled() || watchdog.interrupted()
    };
    let input = ffmpeg::format::input_with_interrupt_and_dictionary(url.secret(), interrupt, dict)
        .map_err(|e| CaptureError::StreamOpen {
            url: name.clone(),
            reason: describe_stream_error(&e, watchdog),
        })?;
    let video = FfmpegVideo::new(input, requested).map_err(|e| match e {
        OpenError::NoVideoStream => CaptureError::NoVideoStream {
            input: name.clone(),
        },
        OpenError::Decoder(reason) => CaptureError::Decode {
            input: name.clone(),
            reason,
        },
    })?;
    watchdog.touch();
    Ok(video)
}

/// ffmpeg's error in words, with the interrupt's reason when the callback aborted the call.
fn describe_stream_error(e: &ffmpeg::Error, watchdog: &Watchdog) -> String {
    match e {
        ffmpeg::Error::Exit if watchdog.interrupted() => {
            "interrupted: the session is ending".into()
        }
        ffmpeg::Error::Exit => format!(
            "no data for {:.0} s (read timeout)",
            watchdog.timeout.as_secs_f64()
        ),
        ffmpeg::Error::Eof => "the server closed the stream".into(),
        ffmpeg::Error::Other { errno } if *errno == ffmpeg::error::ECONNREFUSED => {
            "connection refused (is the camera or server up?)".into()
        }
        ffmpeg::Error::HttpUnauthorized => {
            "401 Unauthorized (check the user name and password)".into()
        }
        ffmpeg::Error::HttpForbidden => "403 Forbidden".into(),
        ffmpeg::Error::HttpNotFound => "404 Not Found (check the path)".into(),
        other => other.to_string(),
    }
}

impl FrameSource for NetworkSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            if self.ended || self.max_frames.is_some_and(|m| self.next_index >= m) {
                return Ok(None);
            }
            if let Some((data, capture_ns)) = self.measured.pop_front() {
                return Ok(Some(self.frame(data, capture_ns)));
            }
            let Some(video) = self.video.as_mut() else {
                if !self.reconnect() {
                    tracing::info!(camera = %self.url, "capture ended while the camera was offline");
                    self.ended = true;
                }
                continue;
            };
            let reason = match video.next_picture() {
                Ok(Some(picture)) => {
                    self.watchdog.touch();
                    return Ok(Some(self.frame(picture.data, now_ns())));
                }
                Ok(None) => "the stream ended".to_string(),
                Err(ReadError::Demux(e)) => describe_stream_error(&e, &self.watchdog),
                Err(ReadError::Decode(reason)) => format!("undecodable video: {reason}"),
            };
            if self.watchdog.interrupted() {
                // The session is ending: no outage, no reconnection.
                self.ended = true;
                return Ok(None);
            }
            self.lost(reason);
        }
    }

    fn describe(&self) -> String {
        let (w, h) = self.out_size;
        format!("{} ({w}x{h} @ {:.2} fps)", self.url, self.fps)
    }

    fn fps(&self) -> f32 {
        self.fps
    }

    fn size(&self) -> (u32, u32) {
        self.out_size
    }

    fn link(&mut self, link: SourceLink) {
        *self.watchdog.link.lock().unwrap_or_else(|p| p.into_inner()) = link;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_urls_parse_and_show_redacted() {
        let url = CameraUrl::parse(" rtsp://admin:s3cret@10.1.2.3:554/Streaming/101 ").unwrap();
        assert_eq!(url.scheme(), "rtsp");
        assert!(url.has_credentials());
        assert_eq!(
            url.to_string(),
            "rtsp://admin:***@10.1.2.3:554/Streaming/101"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            url.secret(),
            "rtsp://admin:s3cret@10.1.2.3:554/Streaming/101"
        );
        for ok in [
            "RTSPS://cam/x",
            "http://cam:8080/video.mjpg",
            "https://cam/live.m3u8",
        ] {
            assert!(CameraUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://cam/x",
            "rtsp://",
            "rtsp://cam:/x",
            "rtsp://a b/x",
            "rtsp://admin:pa/ss@cam/live",
        ] {
            let err = CameraUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("pa/ss"), "{err}");
            assert!(err.contains("invalid source spec"), "{err}");
        }
        let with_env = CameraUrl::parse("rtsp://cam/live")
            .unwrap()
            .with_credentials("op", Some("pw@1"));
        assert_eq!(with_env.secret(), "rtsp://op:pw%401@cam/live");
        assert_eq!(with_env.to_string(), "rtsp://op:***@cam/live");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = NetworkOptions::default();
        let waits: Vec<u64> = (0..7).map(|a| o.backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(o.backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn a_refused_connection_names_the_redacted_url() {
        // A loopback port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = CameraUrl::parse(&format!("rtsp://u:topsecret@127.0.0.1:{port}/x")).unwrap();
        let options = SourceOptions {
            network: NetworkOptions {
                read_timeout: Duration::from_secs(2),
                ..NetworkOptions::default()
            },
            ..SourceOptions::default()
        };
        let started = Instant::now();
        let err = NetworkSource::open(&url, &options)
            .err()
            .unwrap()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        assert!(err.contains("rtsp://u:***@127.0.0.1"), "{err}");
        assert!(err.contains("refused"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
    }
}
