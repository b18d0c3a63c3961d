//! A synthetic moving pattern, for running the pipeline without a camera.

use std::time::{Duration, Instant};

use super::{
    now_ns, CaptureError, Frame, FrameSource, Pace, SourceOptions, DEFAULT_CAMERA_FPS,
    DEFAULT_CAMERA_SIZE,
};

/// A moving synthetic picture: a diagonal luma gradient scrolling right, slowly cycling colours
/// and a bright square bouncing around, so that every frame differs (the encoder has real
/// motion to code) and frames can be told apart.
///
/// Size and rate default to [`DEFAULT_CAMERA_SIZE`] and [`DEFAULT_CAMERA_FPS`];
/// [`SourceOptions::max_frames`] ends it (otherwise it never ends). With [`Pace::RealTime`] frame
/// `n` is delivered `n / fps` seconds after the first; with [`Pace::Fast`] immediately.
pub struct TestPatternSource {
    width: u32,
    height: u32,
    fps: f32,
    pace: Pace,
    max_frames: Option<u64>,
    next_index: u64,
    started: Option<Instant>,
}

impl TestPatternSource {
    /// A pattern with the given options.
    pub fn new(options: &SourceOptions) -> Result<Self, CaptureError> {
        let (width, height) = options
            .requested_size("test")?
            .unwrap_or(DEFAULT_CAMERA_SIZE);
        let fps = options.requested_fps("test")?.unwrap_or(DEFAULT_CAMERA_FPS);
        Ok(Self {
            width,
            height,
            fps,
            pace: options.pace,
            max_frames: options.max_frames,
            next_index: 0,
            started: None,
        })
    }

    /// Renders frame `index` of a `width` x `height` pattern into I420 (deterministic).
    pub fn render(index: u64, width: u32, height: u32) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = vec![0u8; Frame::i420_len(width, height)];
        let shift = (index as usize).wrapping_mul(4);
        // Bouncing square, 1/6 of the smaller side.
        let side = (w.min(h) / 6).max(2);
        let bounce = |t: usize, span: usize| {
            if span == 0 {
                return 0;
            }
            let p = t % (2 * span);
            if p < span {
                p
            } else {
                2 * span - p
            }
        };
        let sx = bounce((index as usize).wrapping_mul(7), w.saturating_sub(side));
        let sy = bounce((index as usize).wrapping_mul(5), h.saturating_sub(side));
        let (y_plane, chroma) = data.split_at_mut(w * h);
        for row in 0..h {
            let line = &mut y_plane[row * w..(row + 1) * w];
            for (col, px) in line.iter_mut().enumerate() {
                let in_square = (sx..sx + side).contains(&col) && (sy..sy + side).contains(&row);
                *px = if in_square {
                    235
                } else {
                    (16 + ((col + row + shift) % 200)) as u8
                };
            }
        }
        let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
        let phase = (index % 256) as usize;
        for row in 0..ch {
            for col in 0..cw {
                let i = row * cw + col;
                u_plane[i] = (64 + ((col * 2 + phase) % 128)) as u8;
                v_plane[i] = (64 + ((row * 2 + 255 - phase) % 128)) as u8;
            }
        }
        data
    }
}

impl FrameSource for TestPatternSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.max_frames.is_some_and(|m| self.next_index >= m) {
            return Ok(None);
        }
        let index = self.next_index;
        let data = Self::render(index, self.width, self.height);
        if self.pace == Pace::RealTime {
            let start = *self.started.get_or_insert_with(Instant::now);
            let due = start + Duration::from_secs_f64(index as f64 / f64::from(self.fps));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        self.next_index += 1;
        Ok(Some(Frame {
            index,
            capture_ns: now_ns(),
            width: self.width,
            height: self.height,
            data,
        }))
    }

    fn describe(&self) -> String {
        let pace = match self.pace {
            Pace::RealTime => "real time",
            Pace::Fast => "fast",
        };
        let limit = self
            .max_frames
            .map(|m| format!(", {m} frames"))
            .unwrap_or_default();
        format!(
            "test pattern ({}x{} @ {} fps, {pace}{limit})",
            self.width, self.height, self.fps
        )
    }

    fn fps(&self) -> f32 {
        self.fps
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_move_and_end() {
        let opts = SourceOptions {
            width: Some(64),
            height: Some(48),
            fps: Some(30.0),
            pace: Pace::Fast,
            max_frames: Some(3),
            ..Default::default()
        };
        let mut src = TestPatternSource::new(&opts).unwrap();
        assert_eq!(src.size(), (64, 48));
        let a = src.next_frame().unwrap().unwrap();
        let b = src.next_frame().unwrap().unwrap();
        assert!(a.is_well_formed() && b.is_well_formed());
        assert_ne!(a.data, b.data);
        assert_eq!((a.index, b.index), (0, 1));
        assert!(src.next_frame().unwrap().is_some());
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn real_time_pacing() {
        let opts = SourceOptions {
            width: Some(32),
            height: Some(32),
            fps: Some(50.0),
            pace: Pace::RealTime,
            max_frames: Some(6),
            ..Default::default()
        };
        let mut src = TestPatternSource::new(&opts).unwrap();
        let start = Instant::now();
        while src.next_frame().unwrap().is_some() {}
        // Frames 0..=5 at 50 fps: the last is due 100 ms after the first.
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
    }
}
