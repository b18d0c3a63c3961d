//! Shared ffmpeg-next plumbing: demux one video stream, decode it and scale it to tight I420.

use std::sync::Once;
use std::time::Duration;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

/// Initialises ffmpeg once per process (formats, codecs, devices) and sends its log lines
/// (errors and warnings only) to `tracing` under the target `ffmpeg`, URLs redacted: nothing is
/// written to stderr behind the console's back, and no camera password reaches a log.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg::init() {
            tracing::warn!(error = %e, "ffmpeg initialisation reported an error");
        }
        ffmpeg::device::register_all();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
        // SAFETY: `log_to_tracing` has the callback signature ffmpeg declares for this target
        // and stays valid for the whole process.
        unsafe { ffmpeg::ffi::av_log_set_callback(Some(log_to_tracing)) };
    });
}

/// How this target passes a `va_list` to a function (x86-64: a pointer to the register save
/// area; aarch64, 32-bit ARM and i686: the `va_list` value itself).
#[cfg(target_arch = "x86_64")]
type VaList = *mut ffmpeg::ffi::__va_list_tag;
#[cfg(not(target_arch = "x86_64"))]
type VaList = ffmpeg::ffi::va_list;

/// ffmpeg's log callback: formats the line with ffmpeg's own formatter and hands it to
/// `tracing` (errors as warnings, warnings as debug). May run on any ffmpeg thread.
unsafe extern "C" fn log_to_tracing(
    avcl: *mut std::ffi::c_void,
    level: std::ffi::c_int,
    fmt: *const std::ffi::c_char,
    args: VaList,
) {
    use ffmpeg::ffi::{AV_LOG_ERROR, AV_LOG_WARNING};
    let wanted = if level <= AV_LOG_ERROR {
        tracing::enabled!(target: "ffmpeg", tracing::Level::WARN)
    } else if level <= AV_LOG_WARNING {
        tracing::enabled!(target: "ffmpeg", tracing::Level::DEBUG)
    } else {
        false
    };
    if !wanted || fmt.is_null() {
        return;
    }
    let mut line = [0 as std::ffi::c_char; 1024];
    let mut print_prefix: std::ffi::c_int = 1;
    // SAFETY: ffmpeg hands us a valid format string and its arguments; the buffer's length is
    // passed, and av_log_format_line2 always NUL-terminates it.
    let text = unsafe {
        ffmpeg::ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            args,
            line.as_mut_ptr(),
            line.len() as std::ffi::c_int,
            &mut print_prefix,
        );
        std::ffi::CStr::from_ptr(line.as_ptr())
    };
    let text = crate::redact::redact_text(text.to_string_lossy().trim_end());
    if text.is_empty() {
        return;
    }
    // Unwinding into C would abort the process: a panicking subscriber costs the line only.
    let _ = std::panic::catch_unwind(|| {
        if level <= AV_LOG_ERROR {
            tracing::warn!(target: "ffmpeg", "{text}");
        } else {
            tracing::debug!(target: "ffmpeg", "{text}");
        }
    });
}

/// One decoded picture, converted to tight I420 at the output size.
pub(crate) struct Picture {
    pub data: Vec<u8>,
    /// Presentation time in seconds from the stream's time base, when the stream has one.
    pub pts_secs: Option<f64>,
}

/// Why reading a picture failed.
pub(crate) enum ReadError {
    /// The demuxer (file, device, pipe) failed.
    Demux(ffmpeg::Error),
    /// The decoder or scaler failed.
    Decode(String),
}

/// A swscale context that may move between threads.
struct Scaler(scaling::Context);

// SAFETY: an SwsContext has no thread affinity (no thread-local state, no locks); it only must
// not be used from two threads at once, which `&mut` access through the owning source
// guarantees. ffmpeg-next leaves it !Send only because it wraps a raw pointer.
unsafe impl Send for Scaler {}

/// Consecutive corrupt packets tolerated before giving up on the input.
const MAX_CONSECUTIVE_BAD_PACKETS: u32 = 100;
/// Consecutive EAGAIN reads (non-blocking devices) tolerated before giving up (x 2 ms).
const MAX_CONSECUTIVE_EAGAIN: u32 = 5_000;

/// A demuxer + decoder + scaler for the best video stream of an opened input.
pub(crate) struct FfmpegVideo {
    input: ffmpeg::format::context::Input,
    stream_index: usize,
    decoder: ffmpeg::decoder::Video,
    scaler: Option<(Scaler, (Pixel, u32, u32))>,
    out_size: (u32, u32),
    time_base: f64,
    fps: f32,
    /// The stream states its average frame rate (else `fps` is a guess: MJPEG over HTTP).
    fps_declared: bool,
    eof_sent: bool,
    finished: bool,
}

/// Opening the video stream of an input failed.
pub(crate) enum OpenError {
    NoVideoStream,
    Decoder(String),
}

impl FfmpegVideo {
    /// Picks the best video stream and opens its decoder. `requested` is the output size
    /// (rounded to even by the caller); by default the native size rounded down to even.
    pub fn new(
        input: ffmpeg::format::context::Input,
        requested: Option<(u32, u32)>,
    ) -> Result<Self, OpenError> {
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or(OpenError::NoVideoStream)?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = if tb.denominator() != 0 && tb.numerator() > 0 {
            f64::from(tb.numerator()) / f64::from(tb.denominator())
        } else {
            0.0
        };
        let fps_declared = {
            let r = stream.avg_frame_rate();
            r.numerator() > 0 && r.denominator() > 0
        };
        let fps = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0)
            .map(|r| (f64::from(r.numerator()) / f64::from(r.denominator())) as f32)
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0);
        let params = stream.parameters();
        let context = ffmpeg::codec::context::Context::from_parameters(params)
            .map_err(|e| OpenError::Decoder(e.to_string()))?;
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| OpenError::Decoder(e.to_string()))?;
        let fps = fps.unwrap_or_else(|| {
            let r = decoder.frame_rate();
            r.filter(|r| r.numerator() > 0 && r.denominator() > 0)
                .map(|r| (f64::from(r.numerator()) / f64::from(r.denominator())) as f32)
                .unwrap_or_else(|| {
                    tracing::warn!("video stream declares no frame rate; assuming 30 fps");
                    30.0
                })
        });
        if decoder.width() == 0 || decoder.height() == 0 {
            return Err(OpenError::Decoder(
                "the video stream has no picture size (no video data?)".to_string(),
            ));
        }
        let out_size = match requested {
            Some(size) => size,
            None => {
                let (w, h) = (decoder.width() & !1, decoder.height() & !1);
                if w < 2 || h < 2 {
                    return Err(OpenError::Decoder(format!(
                        "video stream has no usable size ({}x{})",
                        decoder.width(),
                        decoder.height()
                    )));
                }
                (w, h)
            }
        };
        Ok(Self {
            input,
            stream_index,
            decoder,
            scaler: None,
            out_size,
            time_base,
            fps,
            fps_declared,
            eof_sent: false,
            finished: false,
        })
    }

    pub fn fps(&self) -> f32 {
        self.fps
    }

    /// Whether the stream states its average frame rate ([`fps`](Self::fps) is a guess otherwise).
    pub fn fps_declared(&self) -> bool {
        self.fps_declared
    }

    pub fn out_size(&self) -> (u32, u32) {
        self.out_size
    }

    /// The next decoded picture, `Ok(None)` at the end of the input.
    pub fn next_picture(&mut self) -> Result<Option<Picture>, ReadError> {
        if self.finished {
            return Ok(None);
        }
        let mut bad_packets = 0u32;
        let mut eagain = 0u32;
        loop {
            let mut decoded = ffmpeg::frame::Video::empty();
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => return self.convert(&decoded).map(Some),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {}
                Err(ffmpeg::Error::Eof) => {
                    self.finished = true;
                    return Ok(None);
                }
                Err(e) => return Err(ReadError::Decode(e.to_string())),
            }
            if self.eof_sent {
                // Drained without an explicit EOF from the decoder: nothing more will come.
                self.finished = true;
                return Ok(None);
            }
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    eagain = 0;
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => bad_packets = 0,
                        Err(ffmpeg::Error::InvalidData) => {
                            bad_packets += 1;
                            tracing::warn!(bad_packets, "skipping a corrupt video packet");
                            if bad_packets >= MAX_CONSECUTIVE_BAD_PACKETS {
                                return Err(ReadError::Decode(format!(
                                    "{bad_packets} consecutive corrupt packets"
                                )));
                            }
                        }
                        Err(e) => return Err(ReadError::Decode(e.to_string())),
                    }
                }
                Err(ffmpeg::Error::Eof) => {
                    if let Err(e) = self.decoder.send_eof() {
                        tracing::debug!(error = %e, "decoder refused end of stream");
                    }
                    self.eof_sent = true;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                    eagain += 1;
                    if eagain >= MAX_CONSECUTIVE_EAGAIN {
                        return Err(ReadError::Demux(ffmpeg::Error::Other { errno }));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(ffmpeg::Error::InvalidData) => {
                    bad_packets += 1;
                    if bad_packets >= MAX_CONSECUTIVE_BAD_PACKETS {
                        return Err(ReadError::Demux(ffmpeg::Error::InvalidData));
                    }
                }
                Err(e) => return Err(ReadError::Demux(e)),
            }
        }
    }

    fn convert(&mut self, decoded: &ffmpeg::frame::Video) -> Result<Picture, ReadError> {
        let pts_secs = decoded
            .timestamp()
            .or_else(|| decoded.pts())
            .filter(|_| self.time_base > 0.0)
            .map(|t| t as f64 * self.time_base);
        let (ow, oh) = self.out_size;
        let data = if decoded.format() == Pixel::YUV420P
            && decoded.width() == ow
            && decoded.height() == oh
        {
            copy_i420(decoded, ow, oh)
        } else {
            let key = (decoded.format(), decoded.width(), decoded.height());
            if self.scaler.as_ref().map(|(_, k)| *k) != Some(key) {
                let ctx = scaling::Context::get(
                    key.0,
                    key.1,
                    key.2,
                    Pixel::YUV420P,
                    ow,
                    oh,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| {
                    ReadError::Decode(format!(
                        "cannot convert {:?} {}x{} to I420 {ow}x{oh}: {e}",
                        key.0, key.1, key.2
                    ))
                })?;
                self.scaler = Some((Scaler(ctx), key));
            }
            let mut scaled = ffmpeg::frame::Video::empty();
            if let Some((Scaler(ctx), _)) = self.scaler.as_mut() {
                ctx.run(decoded, &mut scaled)
                    .map_err(|e| ReadError::Decode(format!("scaling to {ow}x{oh} failed: {e}")))?;
            }
            copy_i420(&scaled, ow, oh)
        };
        Ok(Picture { data, pts_secs })
    }
}

/// Copies a YUV420P frame into a tight buffer (no row padding).
fn copy_i420(frame: &ffmpeg::frame::Video, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    for (plane, pw, ph) in [(0usize, w, h), (1, cw, ch), (2, cw, ch)] {
        let stride = frame.stride(plane);
        let data = frame.data(plane);
        for row in 0..ph {
            let start = row * stride;
            match data.get(start..start + pw) {
                Some(bytes) => out.extend_from_slice(bytes),
                None => out.resize(out.len() + pw, if plane == 0 { 16 } else { 128 }),
            }
        }
    }
    out
}
