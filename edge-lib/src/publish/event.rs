//! The events an edge device publishes (JSON; `docs/protocol.md`, "Events out"): one
//! [`PersonSeen`] per recognised person per clip, one [`SessionSummary`] per session.
//!
//! [`PersonSeen`] has the shape of Frigate's `tracked_object_update` for faces (`type: "face"`,
//! `id`, `name`, `score`, `camera`, `timestamp` in seconds), so automations written for Frigate
//! (Home Assistant and the like) read it unchanged; rollcall's own fields follow.

use std::collections::BTreeMap;

use rollcall_protocol::wire::PixelBox;
use serde::{Deserialize, Serialize};

use crate::receive::ReceivedResult;
use crate::session::{ClipCounters, EndReason, PersonTally, SessionReport};

/// `type` of a [`PersonSeen`] (Frigate's value for a recognised face).
pub const PERSON_SEEN_TYPE: &str = "face";
/// `type` of a [`SessionSummary`].
pub const SESSION_SUMMARY_TYPE: &str = "session_summary";

/// Which kind of event: names the MQTT topic and the webhook's `X-Rollcall-Event` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A [`PersonSeen`]: MQTT topic `<prefix>/tracked_object_update`.
    PersonSeen,
    /// A [`SessionSummary`]: MQTT topic `<prefix>/session_summary`.
    SessionSummary,
}

impl EventKind {
    /// The last level of its MQTT topic, also the webhook's `X-Rollcall-Event` header.
    pub fn topic_name(self) -> &'static str {
        match self {
            EventKind::PersonSeen => "tracked_object_update",
            EventKind::SessionSummary => "session_summary",
        }
    }
}

/// An enrolled person recognised in one clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonSeen {
    /// Always [`PERSON_SEEN_TYPE`] (`face`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `<clip id>/<person id>`: the same for a redelivered result, so consumers can drop
    /// duplicates (delivery is at least once).
    pub id: String,
    /// The edge device (camera) whose clip it was.
    pub camera: String,
    /// Display name from the people directory.
    pub name: String,
    /// Best cosine similarity of their face in the clip (the match threshold is about 0.4).
    pub score: f32,
    /// When the clip closed at the edge, seconds since the Unix epoch (Frigate's unit).
    pub timestamp: f64,
    /// Their id in the people directory.
    pub person_id: String,
    /// The clip (`<device>/<session>/<seq, 8 digits>`).
    pub clip_id: String,
    /// The capture session.
    pub session_id: String,
    /// The clip's position in its session.
    pub seq: u64,
    /// Academic details from the people directory (`student_id`, `programme`, `year`, ...).
    pub details: BTreeMap<String, String>,
    /// Their best face, in pixels of the clip's frames.
    #[serde(rename = "box")]
    pub bbox: PixelBox,
    /// Frame of the clip holding that face (display order, from 0).
    pub frame: u32,
}

impl PersonSeen {
    /// One event per person of a received result (none for an error result).
    pub fn from_result(got: &ReceivedResult) -> Vec<PersonSeen> {
        let r = &got.result;
        if r.error.is_some() {
            return Vec::new();
        }
        r.people
            .iter()
            .map(|person| PersonSeen {
                kind: PERSON_SEEN_TYPE.to_string(),
                id: format!("{}/{}", r.clip_id, person.person_id),
                camera: r.device_id.clone(),
                name: person.name.clone(),
                score: person.similarity,
                timestamp: seconds(r.closed_ns),
                person_id: person.person_id.clone(),
                clip_id: r.clip_id.clone(),
                session_id: r.session_id.clone(),
                seq: r.seq,
                details: person.details.clone(),
                bbox: person.bbox,
                frame: person.frame,
            })
            .collect()
    }
}

/// A stretch of time the camera was offline, in a [`SessionSummary`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineSpan {
    /// When the last frame before the drop arrived, seconds since the Unix epoch.
    pub start_time: f64,
    /// When frames came again; `null` when capture ended first.
    pub end_time: Option<f64>,
    /// Why the stream was lost.
    pub reason: String,
}

/// One person in a [`SessionSummary`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryPerson {
    /// Directory id.
    pub person_id: String,
    /// Display name.
    pub name: String,
    /// Clips in which they were recognised.
    pub clips: u64,
    /// Highest similarity over those clips.
    pub best_similarity: f32,
    /// When the first clip they were seen in closed, seconds since the Unix epoch.
    pub first_seen: f64,
    /// When the last clip they were seen in closed, seconds since the Unix epoch.
    pub last_seen: f64,
}

impl From<&PersonTally> for SummaryPerson {
    fn from(tally: &PersonTally) -> SummaryPerson {
        SummaryPerson {
            person_id: tally.person_id.clone(),
            name: tally.name.clone(),
            clips: tally.clips,
            best_similarity: tally.best_similarity,
            first_seen: seconds(tally.first_seen_ns),
            last_seen: seconds(tally.last_seen_ns),
        }
    }
}

/// What a finished session saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// Always [`SESSION_SUMMARY_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// `<device>/<session>`.
    pub id: String,
    /// The edge device (camera).
    pub camera: String,
    /// The session.
    pub session_id: String,
    /// When the summary was made (the end of the session), seconds since the Unix epoch.
    pub timestamp: f64,
    /// When capture started, seconds since the Unix epoch.
    pub start_time: f64,
    /// When capture ended, seconds since the Unix epoch.
    pub end_time: f64,
    /// Why capture ended: `end_of_source`, `duration`, `stopped` or `failed`.
    pub ended: EndReason,
    /// The failure that ended capture, if any.
    pub error: Option<String>,
    /// Everyone recognised, most clips first.
    pub people: Vec<SummaryPerson>,
    /// Clip counters: `captured`, `uploaded`, `results`, `errors`, `lost`.
    pub clips: ClipCounters,
    /// Faces that matched nobody, summed over clips.
    pub unknown_faces: u64,
    /// When a network camera was offline.
    pub camera_offline: Vec<OfflineSpan>,
}

impl SessionSummary {
    /// The summary of `report` for `device` / `session`, made at `now_ns`.
    pub fn from_report(
        report: &SessionReport,
        device: &str,
        session: &str,
        now_ns: u64,
    ) -> SessionSummary {
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let start_ns = now_ns.saturating_sub(nanos(report.total_time));
        SessionSummary {
            kind: SESSION_SUMMARY_TYPE.to_string(),
            id: format!("{device}/{session}"),
            camera: device.to_string(),
            session_id: session.to_string(),
            timestamp: seconds(now_ns),
            start_time: seconds(start_ns),
            end_time: seconds(start_ns.saturating_add(nanos(report.capture_time))),
            ended: report.ended,
            error: report.error.clone(),
            people: report.people.iter().map(SummaryPerson::from).collect(),
            clips: report.clips,
            unknown_faces: report.unknown_faces,
            camera_offline: report
                .camera_offline
                .iter()
                .map(|o| OfflineSpan {
                    start_time: seconds(o.start_ns),
                    end_time: o.end_ns.map(seconds),
                    reason: o.reason.clone(),
                })
                .collect(),
        }
    }
}

/// Nanoseconds since the epoch as seconds with a fraction (millisecond precision kept).
fn seconds(ns: u64) -> f64 {
    (ns / 1_000_000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_protocol::wire::{ClipMeta, RecognitionResult, RecognizedPerson};

    fn received(error: Option<&str>) -> ReceivedResult {
        let meta = ClipMeta {
            device_id: "hall-cam".into(),
            session_id: "s1".into(),
            seq: 42,
            first_frame_ns: 1,
            last_frame_ns: 2,
            closed_ns: 1_795_726_800_512_000_000,
            fps: 30.0,
            width: 640,
            height: 480,
            frame_count: 15,
            codec: "h264-annexb".into(),
        };
        let mut result = RecognitionResult::empty_for(&meta);
        result.people.push(RecognizedPerson {
            person_id: "ada".into(),
            name: "Ada Lovelace".into(),
            details: BTreeMap::from([("year".to_string(), "2".to_string())]),
            similarity: 0.625,
            bbox: PixelBox {
                x1: 1.0,
                y1: 2.0,
                x2: 3.0,
                y2: 4.0,
            },
            frame: 7,
        });
        result.error = error.map(str::to_string);
        ReceivedResult {
            result,
            received_ns: 0,
            end_to_end: None,
        }
    }

    #[test]
    fn person_events_have_frigates_fields() {
        let events = PersonSeen::from_result(&received(None));
        assert_eq!(events.len(), 1);
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["type"], "face");
        assert_eq!(json["id"], "hall-cam/s1/00000042/ada");
        assert_eq!(json["camera"], "hall-cam");
        assert_eq!(json["name"], "Ada Lovelace");
        assert_eq!(json["score"], 0.625);
        assert_eq!(json["timestamp"], 1_795_726_800.512);
        assert_eq!(json["box"]["x2"], 3.0);
        assert_eq!(json["details"]["year"], "2");
        assert!(PersonSeen::from_result(&received(Some("corrupt"))).is_empty());
    }
}
