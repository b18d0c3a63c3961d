//! Which decoded frames of a clip are analysed.
//!
//! Every frame of a clip must be decoded (H.264 frames depend on each other), but detection and
//! embedding are what cost time, so only some frames are converted to RGB and analysed. A policy
//! reduces to a *stride* `k`: frames `0, k, 2k, ...` (in display order) are analysed. The first
//! frame is always analysed.

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
/// // 29.97 fps, at least 4 analysed frames per second: every 7th frame.
/// assert_eq!(policy.stride(29.97), 7);
/// let picked: Vec<usize> = (0..15).filter(|&i| policy.selects(i, 29.97)).collect();
/// assert_eq!(picked, [0, 7, 14]);
/// assert_eq!("every:3".parse::<SamplePolicy>().unwrap(), SamplePolicy::Every(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplePolicy {
    /// The first frame plus every `k`-th, `k = max(1, floor(fps / min_per_second))`, so that at
    /// least `min_per_second` frames of every second of video are analysed.
    Auto { min_per_second: f32 },
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

impl SamplePolicy {
    /// Distance `k >= 1` between analysed frames for a clip at `fps` frames per second
    /// (a non-finite or non-positive `fps` counts as [`DEFAULT_CLIP_FPS`]).
    pub fn stride(&self, fps: f32) -> usize {
        match *self {
            SamplePolicy::All => 1,
            SamplePolicy::Every(k) => k.max(1),
            SamplePolicy::Auto { min_per_second } => {
                let fps = effective_fps(Some(fps));
                if !(min_per_second.is_finite() && min_per_second > 0.0) {
                    // Nonsense rate (only reachable by building the enum by hand): analyse all.
                    return 1;
                }
                let k = (fps / min_per_second).floor();
                if k >= 1.0 {
                    // Bounded: fps is finite and min_per_second is positive.
                    k.min(usize::MAX as f32) as usize
                } else {
                    1
                }
            }
        }
    }

    /// Whether the frame at `index` (display order, from 0) is analysed.
    pub fn selects(&self, index: usize, fps: f32) -> bool {
        index % self.stride(fps) == 0
    }

    /// How many of `frames` frames are analysed.
    pub fn count(&self, frames: usize, fps: f32) -> usize {
        frames.div_ceil(self.stride(fps))
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

    #[test]
    fn auto_stride_is_floor_of_fps_over_rate() {
        let auto = SamplePolicy::default();
        assert_eq!(auto.stride(30.0), 7);
        assert_eq!(auto.stride(29.97), 7);
        assert_eq!(auto.stride(25.0), 6);
        assert_eq!(auto.stride(15.0), 3);
        assert_eq!(auto.stride(8.0), 2);
        assert_eq!(auto.stride(7.9), 1);
        assert_eq!(auto.stride(4.0), 1);
        assert_eq!(auto.stride(2.0), 1, "slower than the rate: every frame");
        assert_eq!(auto.stride(60.0), 15);
        // Unknown or nonsense frame rates fall back to 30 fps.
        for fps in [0.0, -5.0, f32::NAN, f32::INFINITY] {
            assert_eq!(auto.stride(fps), 7, "{fps}");
        }
        let fast = SamplePolicy::Auto {
            min_per_second: 10.0,
        };
        assert_eq!(fast.stride(30.0), 3);
        let broken = SamplePolicy::Auto {
            min_per_second: 0.0,
        };
        assert_eq!(broken.stride(30.0), 1);
    }

    #[test]
    fn auto_keeps_at_least_the_minimum_rate() {
        for fps in [
            5.0f32, 10.0, 12.5, 15.0, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0,
        ] {
            for rate in [1.0f32, 2.0, 4.0, 6.0] {
                let k = SamplePolicy::Auto {
                    min_per_second: rate,
                }
                .stride(fps);
                assert!(
                    fps / k as f32 >= rate.min(fps) - 1e-4,
                    "{fps} fps, {rate}/s: k={k}"
                );
            }
        }
    }

    #[test]
    fn selection_starts_at_the_first_frame() {
        let picked = |p: SamplePolicy, n: usize, fps: f32| -> Vec<usize> {
            (0..n).filter(|&i| p.selects(i, fps)).collect()
        };
        assert_eq!(picked(SamplePolicy::default(), 15, 30.0), [0, 7, 14]);
        assert_eq!(picked(SamplePolicy::default(), 15, 25.0), [0, 6, 12]);
        assert_eq!(picked(SamplePolicy::All, 4, 30.0), [0, 1, 2, 3]);
        assert_eq!(picked(SamplePolicy::Every(3), 8, 30.0), [0, 3, 6]);
        assert_eq!(picked(SamplePolicy::Every(0), 3, 30.0), [0, 1, 2]);
        assert_eq!(picked(SamplePolicy::Every(100), 15, 30.0), [0]);
        assert_eq!(SamplePolicy::default().count(15, 30.0), 3);
        assert_eq!(SamplePolicy::default().count(14, 30.0), 2);
        assert_eq!(SamplePolicy::All.count(15, 30.0), 15);
        assert_eq!(SamplePolicy::Every(4).count(0, 30.0), 0);
        assert_eq!(SamplePolicy::Every(4).count(1, 30.0), 1);
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
