//! Types that cross process boundaries (edge -> store -> function -> queue -> edge), serialised
//! as JSON. `docs/protocol.md` documents the JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ClipKey, RefusedKey};

/// Codec tag of a rollcall clip: H.264 Annex-B elementary stream, SPS/PPS + IDR first, no B-frames.
pub const CLIP_CODEC_H264_ANNEXB: &str = "h264-annexb";

/// Everything known about one clip besides its bytes. Travels as object metadata and in events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipMeta {
    /// Camera / edge device that captured the clip.
    pub device_id: String,
    /// Capture session the clip belongs to.
    pub session_id: String,
    /// Position of the clip in its session, from 0, without gaps.
    pub seq: u64,
    /// Wall-clock capture time of the first frame, nanoseconds since the Unix epoch.
    pub first_frame_ns: u64,
    /// Wall-clock capture time of the last frame, nanoseconds since the Unix epoch.
    pub last_frame_ns: u64,
    /// Wall-clock time the clip was closed (encoded and ready to upload), ns since the epoch.
    pub closed_ns: u64,
    /// Nominal frame rate.
    pub fps: f32,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames in the clip.
    pub frame_count: u32,
    /// Always [`CLIP_CODEC_H264_ANNEXB`] for now.
    pub codec: String,
}

impl ClipMeta {
    /// Stable id of the clip: `device/session/seq`.
    pub fn clip_id(&self) -> String {
        format!("{}/{}/{:08}", self.device_id, self.session_id, self.seq)
    }

    /// Object-store key of the clip's bytes: `clips/<device>/<session>/<seq>.h264`.
    pub fn object_key(&self) -> String {
        format!("clips/{}.h264", self.clip_id())
    }

    /// What the key alone tells: device, session, seq and codec; times and sizes zero (unknown).
    pub fn for_key(key: &ClipKey) -> ClipMeta {
        ClipMeta {
            device_id: key.device_id.clone(),
            session_id: key.session_id.clone(),
            seq: key.seq,
            first_frame_ns: 0,
            last_frame_ns: 0,
            closed_ns: 0,
            fps: 0.0,
            width: 0,
            height: 0,
            frame_count: 0,
            codec: CLIP_CODEC_H264_ANNEXB.to_string(),
        }
    }
}

/// Object metadata as a client stored it: any subset of [`ClipMeta`]'s fields (unknown fields
/// are ignored). rollcall's edge sends them all; a foreign client may send some or none, and
/// [`resolve`](PartialClipMeta::resolve) fills the rest from the key and the object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialClipMeta {
    /// Must equal the key's device when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Must equal the key's session when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Must equal the key's sequence number when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Default: `last_frame_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_frame_ns: Option<u64>,
    /// Default: `closed_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame_ns: Option<u64>,
    /// Default: when the store received the object (S3 `LastModified`, the file's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ns: Option<u64>,
    /// Default 0: unknown (sampling assumes 30 fps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f32>,
    /// Default 0: unknown (the stream tells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Default 0: unknown (the stream tells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Default 0: unknown (the stream tells; no truncation check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_count: Option<u32>,
    /// Default [`CLIP_CODEC_H264_ANNEXB`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
}

impl From<ClipMeta> for PartialClipMeta {
    fn from(meta: ClipMeta) -> PartialClipMeta {
        PartialClipMeta {
            device_id: Some(meta.device_id),
            session_id: Some(meta.session_id),
            seq: Some(meta.seq),
            first_frame_ns: Some(meta.first_frame_ns),
            last_frame_ns: Some(meta.last_frame_ns),
            closed_ns: Some(meta.closed_ns),
            fps: Some(meta.fps),
            width: Some(meta.width),
            height: Some(meta.height),
            frame_count: Some(meta.frame_count),
            codec: Some(meta.codec),
        }
    }
}

/// Object metadata that names another clip than its object key: refused (the key routes the
/// result; metadata never does).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metadata {field} {metadata} disagrees with the object key ({key}): refused")]
pub struct MetaConflict {
    /// `device_id`, `session_id` or `seq`.
    pub field: &'static str,
    /// The metadata's value (as JSON text).
    pub metadata: String,
    /// The key's value (as JSON text).
    pub key: String,
}

impl PartialClipMeta {
    /// The full metadata of the clip under `key`: the key's device, session and seq (metadata
    /// naming others is a [`MetaConflict`]), the metadata's other fields, and the defaults listed
    /// on each field for the missing ones. `stored_ns`: when the store received the object.
    pub fn resolve(&self, key: &ClipKey, stored_ns: Option<u64>) -> Result<ClipMeta, MetaConflict> {
        fn agree<T: PartialEq + std::fmt::Debug>(
            field: &'static str,
            metadata: &Option<T>,
            key: &T,
        ) -> Result<(), MetaConflict> {
            match metadata {
                Some(value) if value != key => Err(MetaConflict {
                    field,
                    metadata: format!("{value:?}"),
                    key: format!("{key:?}"),
                }),
                _ => Ok(()),
            }
        }
        agree("device_id", &self.device_id, &key.device_id)?;
        agree("session_id", &self.session_id, &key.session_id)?;
        agree("seq", &self.seq, &key.seq)?;
        let closed_ns = self.closed_ns.or(stored_ns).unwrap_or(0);
        let last_frame_ns = self.last_frame_ns.unwrap_or(closed_ns);
        Ok(ClipMeta {
            first_frame_ns: self.first_frame_ns.unwrap_or(last_frame_ns),
            last_frame_ns,
            closed_ns,
            fps: self.fps.unwrap_or(0.0),
            width: self.width.unwrap_or(0),
            height: self.height.unwrap_or(0),
            frame_count: self.frame_count.unwrap_or(0),
            codec: self
                .codec
                .clone()
                .unwrap_or_else(|| CLIP_CODEC_H264_ANNEXB.to_string()),
            ..ClipMeta::for_key(key)
        })
    }
}

/// "Clip created": the object key of a stored clip and its metadata. What a storage notification
/// (S3 `ObjectCreated`, the local store's notifier) tells the recognizer function.
///
/// The function routes by `key` alone and reads the object's own metadata: `meta` is what the
/// notifier knew, never trusted for routing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipEvent {
    /// Object-store key of the clip's bytes (normally [`ClipMeta::object_key`]).
    pub key: String,
    /// The clip's metadata (only what the key tells, until the object is read).
    pub meta: ClipMeta,
    /// The object's version when the notifier knows it (S3: the entity tag; local store: a
    /// content hash): a redelivery of the same version reuses the result, an overwrite of the
    /// key is a new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl ClipEvent {
    /// The event for a clip stored under its standard key ([`ClipMeta::object_key`]), version
    /// unknown.
    pub fn for_clip(meta: ClipMeta) -> ClipEvent {
        ClipEvent {
            key: meta.object_key(),
            meta,
            version: None,
        }
    }
}

/// A face box in pixels of the clip's frames: top-left `(x1, y1)`, bottom-right `(x2, y2)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PixelBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

/// An enrolled person recognised in a clip, with their directory record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecognizedPerson {
    /// Their id in the people directory.
    pub person_id: String,
    /// Display name from the people directory.
    pub name: String,
    /// Academic details from the people directory (`student_id`, `programme`, `year`, ...).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// Best cosine similarity of their faces in the clip.
    pub similarity: f32,
    /// Box of that best face.
    #[serde(rename = "box")]
    pub bbox: PixelBox,
    /// Frame of the clip (display order, from 0) holding that face.
    pub frame: u32,
}

/// Where the function's time for one clip went, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionTimings {
    /// H.264 decoding (every frame) and RGB conversion (sampled frames). With a core to spare
    /// the function decodes beside detection and embedding, so the stages can add up to more
    /// than `total_ms`.
    pub decode_ms: f64,
    /// Face detection on the sampled frames.
    pub detect_ms: f64,
    /// Face alignment and embedding.
    pub embed_ms: f64,
    /// People-directory work: gallery freshness check and record look-ups.
    pub lookup_ms: f64,
    /// The whole invocation until the result was ready to publish (clip fetch included).
    pub total_ms: f64,
}

/// What the recognizer function reports for one clip; sent to the result queue of the clip's
/// device. One per clip, even when the clip could not be processed (`error` is then set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecognitionResult {
    /// `device/session/seq` ([`ClipMeta::clip_id`]); duplicates share it.
    pub clip_id: String,
    /// The device that sent the clip (whose queue gets the result).
    pub device_id: String,
    /// Its capture session.
    pub session_id: String,
    /// The clip's position in its session.
    pub seq: u64,
    /// Enrolled people seen in the clip, most similar first.
    #[serde(default)]
    pub people: Vec<RecognizedPerson>,
    /// Faces (summed over analysed frames) that matched nobody.
    #[serde(default)]
    pub unknown_faces: u32,
    /// Where the function's time went.
    #[serde(default)]
    pub timings: FunctionTimings,
    /// Why the clip could not be processed (names the object key); `None` on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which function instance (process, Lambda sandbox) produced the result.
    #[serde(default)]
    pub instance_id: String,
    /// True for the first clip an instance processed (models loaded just before).
    #[serde(default)]
    pub cold_start: bool,
    /// [`ClipMeta::closed_ns`], copied so the edge computes end-to-end latency from the result
    /// alone.
    #[serde(default)]
    pub closed_ns: u64,
    /// Wall clock when the result was ready to publish, ns since the Unix epoch.
    #[serde(default)]
    pub completed_ns: u64,
}

impl RecognitionResult {
    /// A result for `meta` with nobody seen, no timings and no error, completed at 0.
    pub fn empty_for(meta: &ClipMeta) -> RecognitionResult {
        RecognitionResult {
            clip_id: meta.clip_id(),
            device_id: meta.device_id.clone(),
            session_id: meta.session_id.clone(),
            seq: meta.seq,
            people: Vec::new(),
            unknown_faces: 0,
            timings: FunctionTimings::default(),
            error: None,
            instance_id: String::new(),
            cold_start: false,
            closed_ns: meta.closed_ns,
            completed_ns: 0,
        }
    }

    /// The error result for a refused object key, for the device its key names; `None` when no
    /// device can be read from the key (nobody to tell).
    pub fn refused(refused: &RefusedKey) -> Option<RecognitionResult> {
        let device_id = refused.device_id.clone()?;
        Some(RecognitionResult {
            clip_id: refused.clip_id(),
            device_id,
            session_id: refused.session_id(),
            seq: refused.seq(),
            people: Vec::new(),
            unknown_faces: 0,
            timings: FunctionTimings::default(),
            error: Some(refused.to_string()),
            instance_id: String::new(),
            cold_start: false,
            closed_ns: 0,
            completed_ns: 0,
        })
    }

    /// Whether the clip was processed (no `error`).
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Wall clock now, nanoseconds since the Unix epoch (0 before 1970).
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ClipMeta {
        ClipMeta {
            device_id: "pi-lab-1".into(),
            session_id: "s1".into(),
            seq: 42,
            first_frame_ns: 1,
            last_frame_ns: 2,
            closed_ns: 3,
            fps: 30.0,
            width: 640,
            height: 480,
            frame_count: 15,
            codec: CLIP_CODEC_H264_ANNEXB.into(),
        }
    }

    #[test]
    fn clip_event_uses_the_object_key() {
        let event = ClipEvent::for_clip(meta());
        assert_eq!(event.key, "clips/pi-lab-1/s1/00000042.h264");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["meta"]["seq"], 42);
        assert_eq!(serde_json::from_value::<ClipEvent>(json).unwrap(), event);
    }

    #[test]
    fn result_json_round_trip_and_field_names() {
        let mut result = RecognitionResult::empty_for(&meta());
        result.people.push(RecognizedPerson {
            person_id: "ada".into(),
            name: "Ada".into(),
            details: BTreeMap::from([("year".to_string(), "2".to_string())]),
            similarity: 0.61,
            bbox: PixelBox {
                x1: 1.0,
                y1: 2.0,
                x2: 3.0,
                y2: 4.0,
            },
            frame: 7,
        });
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["people"][0]["box"]["x2"], 3.0);
        assert_eq!(json["closed_ns"], 3);
        assert!(json.get("error").is_none(), "no error key on success");
        assert_eq!(
            serde_json::from_value::<RecognitionResult>(json).unwrap(),
            result
        );
        result.error = Some("clip x: corrupt".into());
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["error"], "clip x: corrupt");
        assert!(!serde_json::from_value::<RecognitionResult>(json)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn partial_metadata_is_completed_from_the_key_and_the_store() {
        let key = crate::ids::parse_clip_key("clips/pi-lab-1/s1/00000042.h264").unwrap();
        // Everything: kept as sent.
        let full = PartialClipMeta::from(meta());
        assert_eq!(full.resolve(&key, Some(99)), Ok(meta()));
        // Nothing: the key, the store's time, defaults.
        let none: PartialClipMeta = serde_json::from_str("{}").unwrap();
        let resolved = none.resolve(&key, Some(99)).unwrap();
        assert_eq!(resolved.clip_id(), "pi-lab-1/s1/00000042");
        assert_eq!(
            (
                resolved.first_frame_ns,
                resolved.last_frame_ns,
                resolved.closed_ns
            ),
            (99, 99, 99)
        );
        assert_eq!((resolved.fps, resolved.frame_count), (0.0, 0));
        assert_eq!(resolved.codec, CLIP_CODEC_H264_ANNEXB);
        assert_eq!(none.resolve(&key, None).unwrap().closed_ns, 0);
        // Some, with a field rollcall does not know.
        let some: PartialClipMeta =
            serde_json::from_str(r#"{"closed_ns": 5, "fps": 25.0, "camera": "x"}"#).unwrap();
        let resolved = some.resolve(&key, Some(99)).unwrap();
        assert_eq!(
            (resolved.closed_ns, resolved.fps, resolved.last_frame_ns),
            (5, 25.0, 5)
        );
        // Naming another clip: refused, whichever field.
        for (json, field) in [
            (r#"{"device_id": "pi-lab-2"}"#, "device_id"),
            (r#"{"session_id": "s2"}"#, "session_id"),
            (r#"{"seq": 43}"#, "seq"),
        ] {
            let other: PartialClipMeta = serde_json::from_str(json).unwrap();
            let conflict = other.resolve(&key, None).unwrap_err();
            assert_eq!(conflict.field, field);
            assert!(conflict
                .to_string()
                .contains("disagrees with the object key"));
        }
        assert!(serde_json::from_str::<PartialClipMeta>(r#"{"seq": "x"}"#).is_err());
    }

    #[test]
    fn refused_keys_are_answered_to_the_device_they_name() {
        let refused = crate::ids::parse_clip_key("clips/deva/s 1/00000003.h264").unwrap_err();
        let result = RecognitionResult::refused(&refused).unwrap();
        assert_eq!(
            (
                result.device_id.as_str(),
                result.clip_id.as_str(),
                result.seq
            ),
            ("deva", "deva/s 1/00000003", 3)
        );
        assert!(result
            .error
            .unwrap()
            .contains("clips/deva/s 1/00000003.h264"));
        let nobody = crate::ids::parse_clip_key("clips/dev a/s/00000003.h264").unwrap_err();
        assert_eq!(RecognitionResult::refused(&nobody), None);
    }
}
