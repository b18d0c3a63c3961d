//! Which decoded frames of a clip are analysed.
//!
//! Detection and embedding are what cost time, so only some frames are converted to RGB and
//! analysed. A policy reduces to a *stride* `k` for a clip of `frames` frames at `fps`: frames
//! `0, k, 2k, ...` (in display order) are analysed. The first frame is always analysed.
//!
//! # The `auto` rule
//!
//! `auto` (at least `r` analysed frames per second, 4 by default) takes the clip's length into
//! account, not only its frame rate: a clip of `frames` frames lasts `frames / fps` seconds, so it
//! needs `n = ceil(r * frames / fps)` analysed frames (at least 1). Of the strides that give at
//! least `n` frames (`ceil(frames / k) >= n`), the largest gives the fewest analysed frames, `m`;
//! of the strides that give exactly `m`, the smallest, `ceil(frames / m)`, is used: the analysed
//! frames are spread as evenly as `m` allows across consecutive clips, and the last one comes as
//! early as possible, so decoding can stop sooner (see [`super::decode`]).
//!
//! A 0.5 s clip at 30 fps (15 frames) needs 2 frames: frames 0 and 8 (stride 8; 14 would also
//! give 2, but then the samples of consecutive clips are 14 and 1 frames apart and the whole
//! clip must be decoded). At 15 fps, 8 frames need 3: frames 0, 3, 6. A frame rate within 1 %
//! of the one the rule needs counts as that rate (29.97 fps clips are sampled like 30 fps ones:
//! 15 frames at 29.97 fps last 0.5005 s, which would otherwise need a third frame for 0.002 of
//! one).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Frame rate assumed when the clip's metadata does not give a usable one.
pub const DEFAULT_CLIP_FPS: f32 = 30.0;

/// Analysed frames per second that [`SamplePolicy::default`] guarantees at least.
pub const DEFAULT_MIN_PER_SECOND: f32 = 4.0;

/// Frame sampling policy.
///
/// Parsed from (and displayed as) the strings the CLI takes: `auto`, `auto:6` (at least 6 analysed
/// frames per second), `all`, `every:3`.
///
/// ```
/// use rollcall_recognizer::clip::SamplePolicy;
///
/// let policy: SamplePolicy = "auto".parse().unwrap();
/// // A 0.5 s clip at 29.97 fps (15 frames), at least 4 analysed frames per second: 2 frames.
/// assert_eq!(policy.stride(15, 29.97), 8);
/// let picked: Vec<usize> = (0..15).filter(|&i| policy.selects(i, 15, 29.97)).collect();
/// assert_eq!(picked, [0, 8]);
/// assert_eq!("every:3".parse::<SamplePolicy>().unwrap(), SamplePolicy::Every(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplePolicy {
    /// The fewest frames that keep at least `min_per_second` analysed frames per second of the
    /// clip, evenly spaced (see [the module documentation](self)).
    Auto {
        /// Least analysed frames per second of video.
        min_per_second: f32,
    },
    /// Every decoded frame.
    All,
    /// Frames `0, k, 2k, ...` whatever the frame rate (`Every(0)` behaves as `Every(1)`).
    Every(usize),
}

impl Default for SamplePolicy {
    fn default() -> Self {
        SamplePolicy::Auto {
            min_per_second: DEFAULT_MIN_PER_SECOND,
        }
    }
}

/// `fps` when it is a usable frame rate, else [`DEFAULT_CLIP_FPS`].
pub fn effective_fps(fps: Option<f32>) -> f32 {
    match fps {
        Some(f) if f.is_finite() && f > 0.0 => f,
        _ => DEFAULT_CLIP_FPS,
    }
}

/// Relative slack on the analysed-frames-per-second requirement, so that NTSC rates (1000/1001
/// of the nominal one, 0.1 % less) count as their nominal rate.
const RATE_TOLERANCE: f64 = 0.01;

impl SamplePolicy {
    /// Distance `k >= 1` between analysed frames for a clip of `frames` frames at `fps` frames
    /// per second (a non-finite or non-positive `fps` counts as [`DEFAULT_CLIP_FPS`]).
    pub fn stride(&self, frames: usize, fps: f32) -> usize {
        match *self {
            SamplePolicy::All => 1,
            SamplePolicy::Every(k) => k.max(1),
            SamplePolicy::Auto { min_per_second } => {
                if frames <= 1 {
                    return 1;
                }
                if !(min_per_second.is_finite() && min_per_second > 0.0) {
                    // Nonsense rate (only reachable by building the enum by hand): analyse all.
                    return 1;
                }
                let fps = f64::from(effective_fps(Some(fps)));
                let wanted = f64::from(min_per_second) * frames as f64 / fps;
                // Finite and positive; at most `frames`.
                let needed = ((wanted * (1.0 - RATE_TOLERANCE)).ceil() as usize).clamp(1, frames);
                // Largest stride with ceil(frames / k) >= needed, and the count it gives.
                let widest = if needed == 1 {
                    frames
                } else {
                    frames.div_ceil(needed - 1) - 1
                };
                let analysed = frames.div_ceil(widest);
                // Smallest stride giving that same count: evenly spread, ends early.
                frames.div_ceil(analysed)
            }
        }
    }

    /// Whether the frame at `index` (display order, from 0) of a clip of `frames` frames is
    /// analysed.
    pub fn selects(&self, index: usize, frames: usize, fps: f32) -> bool {
        index < frames && index % self.stride(frames, fps) == 0
    }

    /// How many of the `frames` frames of a clip are analysed.
    pub fn count(&self, frames: usize, fps: f32) -> usize {
        frames.div_ceil(self.stride(frames, fps))
    }
}

/// A sampling policy string that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid frame sampling policy {input:?}: {reason} (expected auto, auto:<frames per second>, all or every:<k>)")]
pub struct ParsePolicyError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for SamplePolicy {
    type Err = ParsePolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| ParsePolicyError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let text = s.trim().to_ascii_lowercase();
        let (name, argument) = match text.split_once(':') {
            Some((name, argument)) => (name.trim(), Some(argument.trim())),
            None => (text.as_str(), None),
        };
        match (name, argument) {
            ("auto", None) => Ok(SamplePolicy::default()),
            ("auto", Some(rate)) => {
                let rate: f32 = rate
                    .parse()
                    .map_err(|_| error("the rate after auto: is not a number"))?;
                if rate.is_finite() && rate > 0.0 {
                    Ok(SamplePolicy::Auto {
                        min_per_second: rate,
                    })
                } else {
                    Err(error("the rate after auto: must be a positive number"))
                }
            }
            ("all", None) => Ok(SamplePolicy::All),
            ("every", Some(k)) => match k.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(SamplePolicy::Every(k)),
                _ => Err(error("k after every: must be a whole number >= 1")),
            },
            ("every", None) => Err(error("every needs a stride, e.g. every:3")),
            ("all", Some(_)) => Err(error("all takes no argument")),
            _ => Err(error("unknown policy")),
        }
    }
}

impl fmt::Display for SamplePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplePolicy::Auto { min_per_second } if *min_per_second == DEFAULT_MIN_PER_SECOND => {
                f.write_str("auto")
            }
            SamplePolicy::Auto { min_per_second } => write!(f, "auto:{min_per_second}"),
            SamplePolicy::All => f.write_str("all"),
            SamplePolicy::Every(k) => write!(f, "every:{k}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picked(p: SamplePolicy, frames: usize, fps: f32) -> Vec<usize> {
        (0..frames).filter(|&i| p.selects(i, frames, fps)).collect()
    }

    #[test]
    fn auto_picks_the_fewest_evenly_spread_frames_for_the_clip_length() {
        let auto = SamplePolicy::default();
        // 0.5 s at 30 (or 29.97) fps: 2 frames, the second half-way.
        assert_eq!(picked(auto, 15, 30.0), [0, 8]);
        assert_eq!(picked(auto, 15, 29.97), [0, 8]);
        assert_eq!(auto.stride(15, 29.97), 8);
        // A frame more (0.533 s) needs a third frame.
        assert_eq!(picked(auto, 16, 30.0), [0, 6, 12]);
        // About 0.5 s at 25 fps: 12 frames (0.48 s) need 2, 13 (0.52 s) 3.
        assert_eq!(picked(auto, 12, 25.0), [0, 6]);
        assert_eq!(picked(auto, 13, 25.0), [0, 5, 10]);
        // 15 fps: 8 frames (0.533 s) need 3, 7 frames (0.467 s) 2.
        assert_eq!(picked(auto, 8, 15.0), [0, 3, 6]);
        assert_eq!(picked(auto, 7, 15.0), [0, 4]);
        // 60 fps, 0.5 s: 2 of 30.
        assert_eq!(picked(auto, 30, 60.0), [0, 15]);
        // One second at 30 fps: 4 frames.
        assert_eq!(picked(auto, 30, 30.0), [0, 8, 16, 24]);
        // Slower than the rate: every frame.
        assert_eq!(picked(auto, 3, 2.0), [0, 1, 2]);
        // Tiny and empty clips.
        assert_eq!(picked(auto, 1, 30.0), [0]);
        assert_eq!(picked(auto, 0, 30.0), Vec::<usize>::new());
        // Unknown or nonsense frame rates count as 30 fps.
        for fps in [0.0, -5.0, f32::NAN, f32::INFINITY] {
            assert_eq!(auto.stride(15, fps), 8, "{fps}");
        }
        let fast = SamplePolicy::Auto {
            min_per_second: 10.0,
        };
        assert_eq!(picked(fast, 15, 30.0), [0, 3, 6, 9, 12]);
        let broken = SamplePolicy::Auto {
            min_per_second: 0.0,
        };
        assert_eq!(broken.stride(15, 30.0), 1);
    }

    #[test]
    fn auto_keeps_at_least_the_minimum_rate_with_the_fewest_frames() {
        for fps in [
            5.0f32, 10.0, 12.5, 15.0, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0,
        ] {
            for rate in [1.0f32, 2.0, 4.0, 6.0] {
                for frames in 1..=120usize {
                    let policy = SamplePolicy::Auto {
                        min_per_second: rate,
                    };
                    let k = policy.stride(frames, fps);
                    let analysed = policy.count(frames, fps);
                    let seconds = frames as f64 / f64::from(fps);
                    let needed = (f64::from(rate) * seconds * (1.0 - RATE_TOLERANCE))
                        .ceil()
                        .clamp(1.0, frames as f64) as usize;
                    let case = format!("{frames} frames at {fps} fps, {rate}/s: k={k}");
                    assert!(analysed >= needed, "{case}: {analysed} < {needed}");
                    // No stride gives fewer frames that are still enough.
                    let fewest = (1..=frames)
                        .map(|k| frames.div_ceil(k))
                        .filter(|&n| n >= needed)
                        .min()
                        .unwrap();
                    assert_eq!(analysed, fewest, "{case}");
                    // And no smaller stride gives that count (earliest last frame).
                    assert!(k == 1 || frames.div_ceil(k - 1) > analysed, "{case}");
                }
            }
        }
    }

    #[test]
    fn fixed_policies_ignore_the_clip_length() {
        assert_eq!(picked(SamplePolicy::All, 4, 30.0), [0, 1, 2, 3]);
        assert_eq!(picked(SamplePolicy::Every(3), 8, 30.0), [0, 3, 6]);
        assert_eq!(picked(SamplePolicy::Every(0), 3, 30.0), [0, 1, 2]);
        assert_eq!(picked(SamplePolicy::Every(100), 15, 30.0), [0]);
        assert_eq!(SamplePolicy::Every(7).stride(15, 29.97), 7);
        assert_eq!(SamplePolicy::default().count(15, 30.0), 2);
        assert_eq!(SamplePolicy::default().count(16, 30.0), 3);
        assert_eq!(SamplePolicy::All.count(15, 30.0), 15);
        assert_eq!(SamplePolicy::Every(4).count(0, 30.0), 0);
        assert_eq!(SamplePolicy::Every(4).count(1, 30.0), 1);
        assert!(!SamplePolicy::All.selects(4, 4, 30.0), "past the end");
    }

    #[test]
    fn parses_cli_strings_and_round_trips() {
        assert_eq!("auto".parse(), Ok(SamplePolicy::default()));
        assert_eq!(" AUTO ".parse(), Ok(SamplePolicy::default()));
        assert_eq!(
            "auto:6".parse(),
            Ok(SamplePolicy::Auto {
                min_per_second: 6.0
            })
        );
        assert_eq!("all".parse(), Ok(SamplePolicy::All));
        assert_eq!("every:3".parse(), Ok(SamplePolicy::Every(3)));
        assert_eq!("every: 1".parse(), Ok(SamplePolicy::Every(1)));
        for bad in [
            "",
            "some",
            "every",
            "every:0",
            "every:-1",
            "every:x",
            "every:1.5",
            "all:2",
            "auto:0",
            "auto:-1",
            "auto:nan",
            "auto:inf",
            "auto:x",
        ] {
            let e = bad.parse::<SamplePolicy>().unwrap_err();
            assert_eq!(e.input, bad);
            assert!(e.to_string().contains("every:<k>"), "{e}");
        }
        for policy in [
            SamplePolicy::default(),
            SamplePolicy::Auto {
                min_per_second: 2.5,
            },
            SamplePolicy::All,
            SamplePolicy::Every(5),
        ] {
            assert_eq!(policy.to_string().parse(), Ok(policy), "{policy}");
        }
    }
}
