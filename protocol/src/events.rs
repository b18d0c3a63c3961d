//! Storage notifications -> [`ClipEvent`]s: lenient parsing of S3 event notifications, as they
//! arrive on an SQS queue (`rollcall worker`) or in a Lambda invocation.
//!
//! Accepted message bodies (see `docs/protocol.md`, "S3 notifications"):
//!
//! - an S3 notification `{"Records": [{"eventSource": "aws:s3", "eventName":
//!   "ObjectCreated:Put", "s3": {"bucket": {"name": ..}, "object": {"key": .., "size": ..}}}]}`.
//!   Only `s3.object.key` is required: moto's records lack `userIdentity`, `requestParameters`
//!   and others, so nothing else is. Records whose `eventName` is present and does not start
//!   with `ObjectCreated` are skipped.
//! - S3's `s3:TestEvent` (sent once when a notification is configured): no events.
//! - the same wrapped once more: SQS records (`{"Records": [{"eventSource": "aws:sqs", "body":
//!   "<S3 notification as a string>"}]}`, a Lambda SQS trigger) or an SNS envelope
//!   (`{"Type": "Notification", "Message": "<...>"}`).
//!
//! Object keys arrive URL-encoded (`/` as `%2F`, space as `+`): they are decoded, then checked
//! with [`validate_key`] and mapped to the clip they name (`clips/<device>/<session>/<seq>.h264`),
//! which gives the result's routing even before the object's metadata is read.

use serde_json::Value;

use crate::store::validate_key;
use crate::wire::{ClipEvent, ClipMeta, CLIP_CODEC_H264_ANNEXB};

/// Deepest nesting of envelopes (SNS in SQS in ...) followed.
const MAX_DEPTH: usize = 4;

/// A message that is not a usable storage notification. Such a message is not deleted by the
/// worker: the queue's redrive policy moves it to the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unusable storage notification: {0}")]
pub struct EventParseError(pub String);

/// One "object created" record of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectCreated {
    /// The bucket, when the record names it.
    pub bucket: Option<String>,
    /// The decoded object key.
    pub key: String,
    /// The object size, when the record has it.
    pub size: Option<u64>,
    /// `eventName` (e.g. `ObjectCreated:Put`), when present.
    pub event_name: Option<String>,
}

/// What a notification message holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`: nothing to do (delete the message).
    Test,
    /// Object-created records (possibly none when every record was of another kind).
    Objects(Vec<ObjectCreated>),
}

/// Parse a notification message body; see the [module docs](self).
pub fn parse_notification(body: &str) -> Result<Notification, EventParseError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| EventParseError(format!("not JSON ({e})")))?;
    parse_value(&value, 0)
}

fn parse_value(value: &Value, depth: usize) -> Result<Notification, EventParseError> {
    if depth > MAX_DEPTH {
        return Err(EventParseError("envelopes nested too deeply".into()));
    }
    let Some(object) = value.as_object() else {
        return Err(EventParseError("not a JSON object".into()));
    };
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    // SNS envelope.
    if let Some(message) = object.get("Message").and_then(Value::as_str) {
        let inner: Value = serde_json::from_str(message)
            .map_err(|e| EventParseError(format!("SNS Message is not JSON ({e})")))?;
        return parse_value(&inner, depth + 1);
    }
    let Some(records) = object.get("Records").and_then(Value::as_array) else {
        return Err(EventParseError(
            "no Records array and not an s3:TestEvent".into(),
        ));
    };
    let mut objects = Vec::new();
    let mut only_tests = !records.is_empty();
    for (i, record) in records.iter().enumerate() {
        let source = record.get("eventSource").and_then(Value::as_str);
        // SQS-wrapped (Lambda SQS trigger): the body is the S3 notification.
        if let Some(body) = record.get("body").and_then(Value::as_str) {
            if source.is_none_or(|s| s == "aws:sqs") {
                let inner: Value = serde_json::from_str(body).map_err(|e| {
                    EventParseError(format!("record {i}: SQS body is not JSON ({e})"))
                })?;
                match parse_value(&inner, depth + 1)? {
                    Notification::Test => {}
                    Notification::Objects(more) => {
                        only_tests = false;
                        objects.extend(more);
                    }
                }
                continue;
            }
        }
        only_tests = false;
        let event_name = record
            .get("eventName")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(name) = &event_name {
            if !name.starts_with("ObjectCreated") {
                continue;
            }
        }
        let s3 = record
            .get("s3")
            .ok_or_else(|| EventParseError(format!("record {i}: no s3 field")))?;
        let raw_key = s3
            .pointer("/object/key")
            .and_then(Value::as_str)
            .ok_or_else(|| EventParseError(format!("record {i}: no s3.object.key")))?;
        let key = decode_key(raw_key)
            .ok_or_else(|| EventParseError(format!("record {i}: badly encoded key {raw_key:?}")))?;
        objects.push(ObjectCreated {
            bucket: s3
                .pointer("/bucket/name")
                .and_then(Value::as_str)
                .map(str::to_string),
            key,
            size: s3.pointer("/object/size").and_then(Value::as_u64),
            event_name,
        });
    }
    if only_tests {
        return Ok(Notification::Test);
    }
    Ok(Notification::Objects(objects))
}

/// Decode an S3 notification key: `%XX` escapes and `+` for space (form encoding). `None` for a
/// broken escape or a result that is not UTF-8.
pub fn decode_key(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The clip event for an object key `clips/<device>/<session>/<seq>.h264`: the key is checked
/// with [`validate_key`], and the metadata holds what the key tells (device, session, seq, codec;
/// times and sizes zero). The handler replaces it with the object's own metadata when it reads
/// the clip; the key's part is what routes an error result when the object cannot be read.
pub fn clip_event_from_key(key: &str) -> Result<ClipEvent, EventParseError> {
    validate_key(key).map_err(|e| EventParseError(e.to_string()))?;
    let parts: Vec<&str> = key.split('/').collect();
    let [prefix, device, session, file] = parts.as_slice() else {
        return Err(EventParseError(format!(
            "key {key:?} is not clips/<device>/<session>/<seq>.h264"
        )));
    };
    let seq = file
        .strip_suffix(".h264")
        .and_then(|s| s.parse::<u64>().ok());
    let (true, Some(seq)) = (*prefix == "clips", seq) else {
        return Err(EventParseError(format!(
            "key {key:?} is not clips/<device>/<session>/<seq>.h264"
        )));
    };
    Ok(ClipEvent {
        key: key.to_string(),
        meta: ClipMeta {
            device_id: device.to_string(),
            session_id: session.to_string(),
            seq,
            first_frame_ns: 0,
            last_frame_ns: 0,
            closed_ns: 0,
            fps: 0.0,
            width: 0,
            height: 0,
            frame_count: 0,
            codec: CLIP_CODEC_H264_ANNEXB.to_string(),
        },
    })
}

/// Parse a message body straight into clip events (see [`parse_notification`] and
/// [`clip_event_from_key`]); a test event gives none. Any unusable record fails the whole message.
pub fn clip_events(body: &str) -> Result<Vec<ClipEvent>, EventParseError> {
    match parse_notification(body)? {
        Notification::Test => Ok(Vec::new()),
        Notification::Objects(objects) => objects
            .iter()
            .map(|o| clip_event_from_key(&o.key))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOTO_RECORD: &str = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
        "awsRegion": "us-east-1", "eventTime": "2026-11-26T21:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "clips",
        "bucket": {"name": "rollcall-clips", "arn": "arn:aws:s3:::rollcall-clips"},
        "object": {"key": "clips%2Fpi-lab-1%2F2026-11-26T21-00-00Z%2F00000042.h264",
        "size": 1234, "eTag": "abc", "versionId": null, "sequencer": "0"}}}]}"#;

    #[test]
    fn moto_style_record_with_encoded_key() {
        let events = clip_events(MOTO_RECORD).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].key,
            "clips/pi-lab-1/2026-11-26T21-00-00Z/00000042.h264"
        );
        assert_eq!(events[0].meta.device_id, "pi-lab-1");
        assert_eq!(events[0].meta.session_id, "2026-11-26T21-00-00Z");
        assert_eq!(events[0].meta.seq, 42);
        assert_eq!(
            events[0].meta.clip_id(),
            "pi-lab-1/2026-11-26T21-00-00Z/00000042"
        );
        match parse_notification(MOTO_RECORD).unwrap() {
            Notification::Objects(o) => {
                assert_eq!(o[0].bucket.as_deref(), Some("rollcall-clips"));
                assert_eq!(o[0].size, Some(1234));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_event_and_wrappers() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-26T21:00:00Z","Bucket":"b","RequestId":"x","HostId":"y"}"#;
        assert_eq!(parse_notification(test).unwrap(), Notification::Test);
        assert!(clip_events(test).unwrap().is_empty());
        let sqs = serde_json::json!({"Records": [
            {"messageId": "1", "eventSource": "aws:sqs", "body": MOTO_RECORD},
            {"messageId": "2", "eventSource": "aws:sqs", "body": MOTO_RECORD},
        ]})
        .to_string();
        assert_eq!(clip_events(&sqs).unwrap().len(), 2);
        let sqs_test =
            serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": test}]}).to_string();
        assert_eq!(parse_notification(&sqs_test).unwrap(), Notification::Test);
        let sns = serde_json::json!({"Type": "Notification", "Message": MOTO_RECORD}).to_string();
        assert_eq!(clip_events(&sns).unwrap().len(), 1);
    }

    #[test]
    fn minimal_and_other_records() {
        let minimal = r#"{"Records":[{"s3":{"object":{"key":"clips/d/s/00000001.h264"}}}]}"#;
        assert_eq!(clip_events(minimal).unwrap()[0].meta.seq, 1);
        let removed =
            r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"object":{"key":"x"}}}]}"#;
        assert_eq!(
            parse_notification(removed).unwrap(),
            Notification::Objects(vec![])
        );
    }

    #[test]
    fn malformed_messages() {
        for bad in [
            "not json",
            "[]",
            "{}",
            r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
            r#"{"Records":[{"s3":{"object":{"key":"clips%2"}}}]}"#,
            r#"{"Records":[{"s3":{"object":{"key":"..%2Fetc%2Fpasswd"}}}]}"#,
            r#"{"Records":[{"s3":{"object":{"key":"other/thing.txt"}}}]}"#,
            r#"{"Records":[{"s3":{"object":{"key":"clips/d/s/x.h264"}}}]}"#,
            r#"{"Records":[{"eventSource":"aws:sqs","body":"nope"}]}"#,
        ] {
            assert!(clip_events(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_decoding() {
        assert_eq!(decode_key("a%2Fb+c%20d").as_deref(), Some("a/b c d"));
        assert_eq!(decode_key("plain").as_deref(), Some("plain"));
        assert_eq!(decode_key("%zz"), None);
        assert_eq!(decode_key("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode_key("%FF"), None);
    }
}
