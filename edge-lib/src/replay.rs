//! Clips encoded once and sent again at camera pace, under any device and session id.
//!
//! A load test of the recognition side (`rollcall bench cameras --replay`) wants many cameras
//! without spending the machine on them: a live session decodes its video and encodes every
//! frame, which on a 2-core machine took half the CPU that the cameras were meant to measure.
//! [`RecordedClips::record`] cuts a source into clips once, exactly as a session would; a
//! session with [`SessionConfig::replay`](crate::session::SessionConfig::replay) set then
//! sends those bytes again, each clip when a live camera would have closed it (one clip
//! length after the previous), with fresh metadata (its device, session, sequence number and
//! capture times), looping until the session's duration is over. Everything after the
//! segmenter (spool, upload, results, latency) is the live session's own code.

#![warn(missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rollcall_protocol::ids::validate_id;

use crate::segment::{ClipSegmenter, EncodedClip, SegmentConfig, SegmentError};
use crate::session::SessionError;
use crate::source::{now_ns, open_source, Pace, SourceOptions, SourceSpec};

/// Clips cut from a source once, for [`SessionConfig::replay`](crate::session::SessionConfig::replay).
#[derive(Clone)]
pub struct RecordedClips {
    clips: Vec<EncodedClip>,
    source: String,
}

/// The clips' count and source, not their bytes.
impl std::fmt::Debug for RecordedClips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedClips")
            .field("clips", &self.clips.len())
            .field("source", &self.source)
            .finish()
    }
}

impl RecordedClips {
    /// Cut `spec` (read as fast as it decodes, whatever `options.pace` says) into clips of
    /// `clip_ms`, at most `max_clips` of them. Fails when the source cannot be opened or
    /// yields no clip.
    pub fn record(
        spec: &SourceSpec,
        options: &SourceOptions,
        clip_ms: u32,
        max_clips: usize,
    ) -> Result<RecordedClips, SessionError> {
        let options = SourceOptions {
            pace: Pace::Fast,
            ..options.clone()
        };
        let mut source = open_source(spec, &options)?;
        let mut segment = SegmentConfig::new("recorded", "recorded", source.fps());
        segment.clip_ms = clip_ms;
        let mut segmenter = ClipSegmenter::new(segment)?;
        let mut clips = Vec::new();
        while clips.len() < max_clips {
            let Some(frame) = source.next_frame()? else {
                break;
            };
            // A frame the encoder cannot take is skipped, as a live session skips it.
            clips.extend(segmenter.push_skipping(frame)?);
        }
        if clips.len() < max_clips {
            clips.extend(segmenter.finish()?);
        }
        clips.truncate(max_clips);
        let source = source.describe();
        if clips.is_empty() {
            return Err(SegmentError::InvalidConfig {
                reason: format!("{source} gave no clip to record"),
            }
            .into());
        }
        Ok(RecordedClips { clips, source })
    }

    /// The clips as recorded (device and session `recorded`, numbered from 0): what a live
    /// session's segmenter would have sent from the source.
    pub fn clips(&self) -> &[EncodedClip] {
        &self.clips
    }

    /// Recorded clips.
    pub fn len(&self) -> usize {
        self.clips.len()
    }

    /// Whether nothing was recorded (never, from [`record`](Self::record)).
    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }

    /// Play time of all clips, from their frame counts and rates.
    pub fn play_time(&self) -> Duration {
        self.clips.iter().map(clip_length).sum()
    }

    /// What was recorded, for reports.
    pub fn describe(&self) -> String {
        format!(
            "{} clip(s) ({:.1} s) recorded from {}, replayed",
            self.clips.len(),
            self.play_time().as_secs_f64(),
            self.source
        )
    }

    /// The clips again, as device `device_id`'s session `session_id` (both validated like a
    /// live session's ids), starting now.
    pub(crate) fn replay(
        &self,
        device_id: &str,
        session_id: &str,
    ) -> Result<ClipReplay<'_>, SegmentError> {
        validate_id("device id", device_id)?;
        validate_id("session id", session_id)?;
        Ok(ClipReplay {
            recorded: self,
            device_id: device_id.to_string(),
            session_id: session_id.to_string(),
            seq: 0,
            due: Instant::now(),
        })
    }
}

/// How long a clip plays (its frames at its rate; the clip length of a 0-fps clip is unknown
/// and counts as one 30 fps frame per frame).
fn clip_length(clip: &EncodedClip) -> Duration {
    let fps = if clip.meta.fps.is_finite() && clip.meta.fps > 0.0 {
        f64::from(clip.meta.fps)
    } else {
        30.0
    };
    Duration::from_secs_f64(f64::from(clip.meta.frame_count.max(1)) / fps)
}

/// The recorded clips of one session, in a loop.
pub(crate) struct ClipReplay<'a> {
    recorded: &'a RecordedClips,
    device_id: String,
    session_id: String,
    seq: u64,
    /// When the next clip is closed: one clip length after the previous.
    due: Instant,
}

impl ClipReplay<'_> {
    /// What is replayed, for the session's report.
    pub(crate) fn describe(&self) -> String {
        self.recorded.describe()
    }

    /// The next clip, restamped, once a live camera would have closed it; `None` when `stop`
    /// was raised or `until` comes first.
    pub(crate) fn next_clip(
        &mut self,
        stop: &AtomicBool,
        until: Option<Instant>,
    ) -> Option<EncodedClip> {
        let index = usize::try_from(self.seq % self.recorded.clips.len() as u64).ok()?;
        let recorded = self.recorded.clips.get(index)?;
        let length = clip_length(recorded);
        self.due += length;
        if until.is_some_and(|until| self.due > until) {
            return None;
        }
        // Sleep in short steps so that a stop is seen promptly.
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let now = Instant::now();
            if now >= self.due {
                break;
            }
            std::thread::sleep((self.due - now).min(Duration::from_millis(50)));
        }
        let closed_ns = now_ns();
        let length_ns = u64::try_from(length.as_nanos()).unwrap_or(u64::MAX);
        let mut clip = recorded.clone();
        clip.meta.device_id.clone_from(&self.device_id);
        clip.meta.session_id.clone_from(&self.session_id);
        clip.meta.seq = self.seq;
        clip.meta.first_frame_ns = closed_ns.saturating_sub(length_ns);
        clip.meta.last_frame_ns = closed_ns;
        clip.meta.closed_ns = closed_ns;
        // Nothing was encoded for this clip.
        clip.encode = Duration::ZERO;
        self.seq += 1;
        Some(clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(clips: usize) -> RecordedClips {
        let options = SourceOptions {
            width: Some(64),
            height: Some(48),
            fps: Some(20.0),
            ..SourceOptions::default()
        };
        let spec = SourceSpec::TestPattern;
        // The test pattern never ends: `max_clips` bounds it.
        RecordedClips::record(&spec, &options, 100, clips).expect("record the test pattern")
    }

    #[test]
    fn records_whole_clips_and_replays_them_restamped_at_their_pace() {
        let recorded = recorded(3);
        assert_eq!(recorded.len(), 3);
        // 100 ms at 20 fps: 2 frames per clip.
        assert_eq!(recorded.play_time(), Duration::from_millis(300));
        let mut replay = recorded.replay("cam-7", "s-1").unwrap();
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let clips: Vec<EncodedClip> = (0..5)
            .map(|_| replay.next_clip(&stop, None).expect("a clip"))
            .collect();
        // Five clip lengths have passed: clips are not sent faster than a camera makes them.
        assert!(started.elapsed() >= Duration::from_millis(500));
        for (seq, clip) in clips.iter().enumerate() {
            assert_eq!(clip.meta.clip_id(), format!("cam-7/s-1/{seq:08}"));
            assert_eq!(clip.bytes, recorded.clips[seq % 3].bytes, "looped in order");
            assert_eq!(clip.meta.frame_count, 2);
            assert!(clip.meta.closed_ns > 0 && clip.meta.first_frame_ns < clip.meta.closed_ns);
            assert_eq!(clip.encode, Duration::ZERO);
        }
        assert!(clips[1].meta.closed_ns > clips[0].meta.closed_ns);
    }

    #[test]
    fn replay_ends_at_the_deadline_or_the_stop_flag() {
        let recorded = recorded(1);
        let stop = AtomicBool::new(false);
        let mut replay = recorded.replay("cam", "s").unwrap();
        let until = Instant::now() + Duration::from_millis(250);
        let mut sent = 0;
        while replay.next_clip(&stop, Some(until)).is_some() {
            sent += 1;
        }
        assert_eq!(sent, 2, "clips closing at 100 and 200 ms, not 300");
        stop.store(true, Ordering::Relaxed);
        let mut replay = recorded.replay("cam", "s").unwrap();
        assert!(replay.next_clip(&stop, None).is_none());
    }

    #[test]
    fn ids_with_path_tricks_are_refused() {
        let recorded = recorded(1);
        assert!(recorded.replay("../cam", "s").is_err());
        assert!(recorded.replay("cam", "a/b").is_err());
    }
}
