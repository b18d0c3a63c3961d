//! Shared ffmpeg-next plumbing: demux one video stream, decode it, scale it to tight I420 and
//! turn it upright when the stream carries a display matrix (phone videos filmed in portrait are
//! stored sideways with a "rotate 90 degrees" matrix; players turn them, and so does capture).

use std::sync::Once;
use std::time::Duration;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use super::MAX_FRAME_SIZE;

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
    /// Size of the frames delivered (upright).
    out_size: (u32, u32),
    /// Clockwise quarter turns (0..=3) that make the stored pictures upright.
    quarter_turns: u32,
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
        let quarter_turns = stream
            .side_data()
            .find(|d| d.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix)
            .and_then(|d| display_rotation(d.data()))
            .map_or(0, |degrees| degrees / 90);
        // The upright size of the pictures as stored.
        let native = if quarter_turns % 2 == 1 {
            (decoder.height(), decoder.width())
        } else {
            (decoder.width(), decoder.height())
        };
        if quarter_turns != 0 {
            tracing::info!(
                degrees = quarter_turns * 90,
                "the video's display matrix turns it; frames are delivered upright"
            );
        }
        let out_size = match requested {
            Some(size) => size,
            None => {
                let (w, h) = fit_frame_size(native);
                if w < 2 || h < 2 {
                    return Err(OpenError::Decoder(format!(
                        "video stream has no usable size ({}x{})",
                        decoder.width(),
                        decoder.height()
                    )));
                }
                if (w, h) != (native.0 & !1, native.1 & !1) {
                    let (max_long, max_short) = MAX_FRAME_SIZE;
                    tracing::warn!(
                        "the video is {}x{}, larger than the clip encoder takes \
                         ({max_long}x{max_short}); frames are scaled to {w}x{h}",
                        native.0,
                        native.1
                    );
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
            quarter_turns,
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
        // The scaler makes the stored orientation at the output's size; turning comes after.
        let (ow, oh) = if self.quarter_turns % 2 == 1 {
            (self.out_size.1, self.out_size.0)
        } else {
            self.out_size
        };
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
        let data = rotate_i420(&data, (ow, oh), self.quarter_turns);
        Ok(Picture { data, pts_secs })
    }
}

/// The clockwise rotation (0, 90, 180 or 270 degrees) a player applies to show a stream upright,
/// from its display matrix (nine native-endian 16.16 / 2.30 fixed-point `i32`s): the angle of
/// `av_display_rotation_get`, rounded to a quarter turn as the ffmpeg command line does. Mirroring
/// is ignored (as ffmpeg 5.1's command line does); `None` for a malformed matrix.
pub(crate) fn display_rotation(matrix: &[u8]) -> Option<u32> {
    if matrix.len() < 36 {
        return None;
    }
    let value = |i: usize| {
        let bytes = [
            matrix[i * 4],
            matrix[i * 4 + 1],
            matrix[i * 4 + 2],
            matrix[i * 4 + 3],
        ];
        f64::from(i32::from_ne_bytes(bytes)) / 65536.0
    };
    let scale0 = value(0).hypot(value(3));
    let scale1 = value(1).hypot(value(4));
    if scale0 == 0.0 || scale1 == 0.0 {
        return None;
    }
    // av_display_rotation_get is the counter-clockwise angle; players turn by its negation.
    let counter_clockwise = -(value(1) / scale1).atan2(value(0) / scale0).to_degrees();
    let clockwise = -counter_clockwise.round();
    let normalised = clockwise - 360.0 * (clockwise / 360.0 + 0.9 / 360.0).floor();
    let quarter = (normalised / 90.0).round();
    // Anything but a quarter turn is left alone, as the ffmpeg command line leaves it.
    if (normalised - quarter * 90.0).abs() >= 1.0 {
        return None;
    }
    Some((quarter as u32 % 4) * 90)
}

/// The largest even size within the clip encoder's limit ([`MAX_FRAME_SIZE`], either
/// orientation) with `size`'s aspect ratio; `size` itself (rounded down to even) when it fits.
pub(crate) fn fit_frame_size(size: (u32, u32)) -> (u32, u32) {
    let (w, h) = size;
    let (max_long, max_short) = MAX_FRAME_SIZE;
    let (long, short) = (w.max(h), w.min(h));
    if long <= max_long && short <= max_short {
        return (w & !1, h & !1);
    }
    let factor =
        (f64::from(max_long) / f64::from(long)).min(f64::from(max_short) / f64::from(short));
    let scale = |v: u32| ((f64::from(v) * factor).floor() as u32) & !1;
    (scale(w).max(2), scale(h).max(2))
}

/// Turns a tight I420 picture of `size` (even sides) clockwise by `quarter_turns` quarter turns.
pub(crate) fn rotate_i420(data: &[u8], size: (u32, u32), quarter_turns: u32) -> Vec<u8> {
    let turns = quarter_turns % 4;
    if turns == 0 {
        return data.to_vec();
    }
    let (w, h) = (size.0 as usize, size.1 as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(data.len());
    let (y, chroma) = data.split_at(w * h);
    let (u, v) = chroma.split_at(cw * ch);
    for (plane, pw, ph) in [(y, w, h), (u, cw, ch), (v, cw, ch)] {
        let start = out.len();
        out.resize(start + pw * ph, 0);
        let dst = &mut out[start..];
        for row in 0..ph {
            for col in 0..pw {
                let (x, y, stride) = match turns {
                    // Clockwise: the left column becomes the top row.
                    1 => (ph - 1 - row, col, ph),
                    2 => (pw - 1 - col, ph - 1 - row, pw),
                    _ => (row, pw - 1 - col, ph),
                };
                dst[y * stride + x] = plane[row * pw + col];
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix `av_display_rotation_set(matrix, angle)` writes (counter-clockwise `angle`).
    fn rotation_matrix(angle_ccw: f64) -> Vec<u8> {
        let (sin, cos) = angle_ccw.to_radians().sin_cos();
        let fixed = |v: f64| (v * 65536.0).round() as i32;
        let values = [
            fixed(cos),
            fixed(-sin),
            0,
            fixed(sin),
            fixed(cos),
            0,
            0,
            0,
            1 << 30,
        ];
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn display_matrices_give_the_clockwise_turn_players_apply() {
        // `-metadata:s:v:0 rotate=90` writes the matrix of a -90 degree (clockwise) rotation.
        assert_eq!(display_rotation(&rotation_matrix(-90.0)), Some(90));
        assert_eq!(display_rotation(&rotation_matrix(90.0)), Some(270));
        assert_eq!(display_rotation(&rotation_matrix(180.0)), Some(180));
        assert_eq!(display_rotation(&rotation_matrix(0.0)), Some(0));
        assert_eq!(display_rotation(&rotation_matrix(-89.7)), Some(90));
        assert_eq!(display_rotation(&rotation_matrix(45.0)), None);
        assert_eq!(display_rotation(&[0u8; 36]), None);
        assert_eq!(display_rotation(&[1, 2, 3]), None);
    }

    #[test]
    fn oversized_videos_fit_the_encoder_keeping_their_aspect() {
        assert_eq!(fit_frame_size((640, 360)), (640, 360));
        assert_eq!(fit_frame_size((641, 361)), (640, 360));
        assert_eq!(fit_frame_size((3840, 2160)), (3840, 2160));
        assert_eq!(fit_frame_size((2160, 3840)), (2160, 3840));
        assert_eq!(fit_frame_size((4096, 2160)), (3840, 2024));
        assert_eq!(fit_frame_size((2160, 4096)), (2024, 3840));
        assert_eq!(fit_frame_size((7680, 4320)), (3840, 2160));
        assert_eq!(fit_frame_size((4000, 4000)), (2160, 2160));
    }

    /// A 4x2 picture with distinct values everywhere: Y 0..8, U 100, 101, V 200, 201.
    fn picture() -> Vec<u8> {
        let mut data: Vec<u8> = (0..8).collect();
        data.extend([100, 101, 200, 201]);
        data
    }

    #[test]
    fn quarter_turns_rotate_every_plane() {
        // Y plane:  0 1 2 3      turned clockwise (2x4):  4 0
        //           4 5 6 7                               5 1
        //                                                 6 2
        //                                                 7 3
        let once = rotate_i420(&picture(), (4, 2), 1);
        assert_eq!(&once[..8], &[4, 0, 5, 1, 6, 2, 7, 3]);
        assert_eq!(&once[8..], &[100, 101, 200, 201]);
        let twice = rotate_i420(&picture(), (4, 2), 2);
        assert_eq!(&twice[..8], &[7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(&twice[8..], &[101, 100, 201, 200]);
        let thrice = rotate_i420(&picture(), (4, 2), 3);
        assert_eq!(&thrice[..8], &[3, 7, 2, 6, 1, 5, 0, 4]);
        // Four turns in steps come back to the start.
        let mut data = picture();
        let mut size = (4, 2);
        for _ in 0..4 {
            data = rotate_i420(&data, size, 1);
            size = (size.1, size.0);
        }
        assert_eq!(data, picture());
        assert_eq!(rotate_i420(&picture(), (4, 2), 0), picture());
    }
}
