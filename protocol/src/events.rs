//! Storage notifications -> clip records: lenient parsing of S3 event notifications, as they
//! arrive on an SQS queue (`rollcall worker`) or in a Lambda invocation.
//!
//! Accepted message bodies (see `docs/protocol.md`, "S3 notifications"):
//!
//! - an S3 notification `{"Records": [{"eventSource": "aws:s3", "eventName":
//!   "ObjectCreated:Put", "s3": {"bucket": {"name": ..}, "object": {"key": .., "size": ..,
//!   "eTag": ..}}}]}`. Only `s3.object.key` is required: moto's records lack `userIdentity`,
//!   `requestParameters` and others, so nothing else is. Records whose `eventName` is present and
//!   does not start with `ObjectCreated` are skipped.
//! - S3's `s3:TestEvent` (sent once when a notification is configured): no events.
//! - the same wrapped once more: SQS records (`{"Records": [{"eventSource": "aws:sqs", "body":
//!   "<S3 notification as a string>"}]}`, a Lambda SQS trigger), an SNS envelope
//!   (`{"Type": "Notification", "Message": "<...>"}`) or a Lambda on-failure destination record
//!   (`{"requestContext": .., "requestPayload": <the event>, "responsePayload": ..}`, what a
//!   failed asynchronous invocation leaves in the dead-letter queue).
//!
//! **Records are judged one by one.** A message that is not a notification at all (not JSON, no
//! `Records`) is an [`EventParseError`]; inside a notification every record becomes a
//! [`ClipRecord`]: a [`ClipEvent`] when its key names a clip, or a [`RefusedKey`] saying what is
//! wrong (and which device, if any, can be told), so one bad record never sinks a good one.
//!
//! Object keys arrive URL-encoded (`/` as `%2F`, space as `+`): they are decoded, then read with
//! [`parse_clip_key`] (`clips/<device>/<session>/<seq>.h264`), which routes the result before the
//! object is read. The record's `eTag` becomes the event's [`version`](ClipEvent::version).

use serde_json::Value;

pub use crate::ids::RefusedKey;
use crate::ids::{parse_clip_key, ClipKey};
use crate::wire::{ClipEvent, ClipMeta};

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
    /// The object's entity tag (without quotes), when the record has it: its version for
    /// idempotency (the same as `GetObject`'s `ETag`).
    pub etag: Option<String>,
    /// `sequencer`, when present (orders events of one key).
    pub sequencer: Option<String>,
    /// `eventName` (e.g. `ObjectCreated:Put`), when present.
    pub event_name: Option<String>,
}

/// What a notification message holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`: nothing to do (delete the message).
    Test,
    /// Object-created records (possibly none when every record was of another kind), each parsed
    /// on its own: an unusable record (no key, a key that cannot be decoded) is a [`RefusedKey`].
    Objects(Vec<Result<ObjectCreated, RefusedKey>>),
}

/// One record of a notification, judged on its own.
#[derive(Clone, Debug, PartialEq)]
pub enum ClipRecord {
    /// The key names a clip: run the function on it.
    Clip(ClipEvent),
    /// The key (or the record) is refused; see [`RefusedKey::device_id`] for who can be told.
    Refused(RefusedKey),
}

impl ClipRecord {
    /// The object key the record is about (as decoded; empty when the record had none).
    pub fn key(&self) -> &str {
        match self {
            ClipRecord::Clip(event) => &event.key,
            ClipRecord::Refused(refused) => &refused.key,
        }
    }
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
    // Lambda on-failure destination: the original event is the request payload.
    if let (Some(_), Some(payload)) = (object.get("requestContext"), object.get("requestPayload")) {
        return parse_value(payload, depth + 1);
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
        objects.push(object_created(i, record, event_name));
    }
    if only_tests {
        return Ok(Notification::Test);
    }
    Ok(Notification::Objects(objects))
}

/// One `ObjectCreated` record, or why it cannot be used (with the key when there is one, so its
/// device may still be told).
fn object_created(
    i: usize,
    record: &Value,
    event_name: Option<String>,
) -> Result<ObjectCreated, RefusedKey> {
    let unusable =
        |key: &str, reason: String| RefusedKey::new(key, format!("record {i}: {reason}"));
    let s3 = record
        .get("s3")
        .ok_or_else(|| unusable("", "no s3 field".into()))?;
    let raw_key = s3
        .pointer("/object/key")
        .and_then(Value::as_str)
        .ok_or_else(|| unusable("", "no s3.object.key".into()))?;
    let key = decode_key(raw_key)
        .ok_or_else(|| unusable(raw_key, format!("badly encoded key {raw_key:?}")))?;
    let text = |pointer: &str| {
        s3.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(ObjectCreated {
        bucket: text("/bucket/name"),
        key,
        size: s3.pointer("/object/size").and_then(Value::as_u64),
        etag: text("/object/eTag")
            .map(|tag| tag.trim_matches('"').to_string())
            .filter(|tag| !tag.is_empty()),
        sequencer: text("/object/sequencer"),
        event_name,
    })
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

/// The clip event for an object key `clips/<device>/<session>/<seq>.h264` (read with
/// [`parse_clip_key`]) at object version `version` (when known). Its metadata holds what the key
/// tells (device, session, seq, codec; times and sizes zero): the handler reads the object's own
/// metadata, and routes by the key whatever that says.
pub fn clip_event_from_key(key: &str, version: Option<String>) -> Result<ClipEvent, RefusedKey> {
    let clip: ClipKey = parse_clip_key(key)?;
    Ok(ClipEvent {
        key: key.to_string(),
        meta: ClipMeta::for_key(&clip),
        version,
    })
}

/// Parse a message body straight into clip records (see [`parse_notification`] and
/// [`clip_event_from_key`]); a test event gives none. Only a body that is not a notification at
/// all is an error: each record is judged on its own.
pub fn clip_records(body: &str) -> Result<Vec<ClipRecord>, EventParseError> {
    match parse_notification(body)? {
        Notification::Test => Ok(Vec::new()),
        Notification::Objects(objects) => Ok(objects
            .into_iter()
            .map(|object| match object {
                Ok(o) => match clip_event_from_key(&o.key, o.etag) {
                    Ok(event) => ClipRecord::Clip(event),
                    Err(refused) => ClipRecord::Refused(refused),
                },
                Err(refused) => ClipRecord::Refused(refused),
            })
            .collect()),
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

    fn clips(body: &str) -> Vec<ClipEvent> {
        clip_records(body)
            .unwrap()
            .into_iter()
            .map(|r| match r {
                ClipRecord::Clip(e) => e,
                ClipRecord::Refused(r) => panic!("{r}"),
            })
            .collect()
    }

    #[test]
    fn moto_style_record_with_encoded_key() {
        let events = clips(MOTO_RECORD);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].key,
            "clips/pi-lab-1/2026-11-26T21-00-00Z/00000042.h264"
        );
        assert_eq!(events[0].meta.device_id, "pi-lab-1");
        assert_eq!(events[0].meta.session_id, "2026-11-26T21-00-00Z");
        assert_eq!(events[0].meta.seq, 42);
        assert_eq!(events[0].version.as_deref(), Some("abc"));
        assert_eq!(
            events[0].meta.clip_id(),
            "pi-lab-1/2026-11-26T21-00-00Z/00000042"
        );
        match parse_notification(MOTO_RECORD).unwrap() {
            Notification::Objects(o) => {
                let o = o[0].as_ref().unwrap();
                assert_eq!(o.bucket.as_deref(), Some("rollcall-clips"));
                assert_eq!(o.size, Some(1234));
                assert_eq!(o.sequencer.as_deref(), Some("0"));
            }
            other => panic!("{other:?}"),
        }
        // Real S3 quotes nothing in notifications, but a quoted tag is read the same.
        let quoted = MOTO_RECORD.replace(r#""eTag": "abc""#, r#""eTag": "\"abc\"""#);
        assert_eq!(clips(&quoted)[0].version.as_deref(), Some("abc"));
    }

    #[test]
    fn test_event_and_wrappers() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-26T21:00:00Z","Bucket":"b","RequestId":"x","HostId":"y"}"#;
        assert_eq!(parse_notification(test).unwrap(), Notification::Test);
        assert!(clip_records(test).unwrap().is_empty());
        let sqs = serde_json::json!({"Records": [
            {"messageId": "1", "eventSource": "aws:sqs", "body": MOTO_RECORD},
            {"messageId": "2", "eventSource": "aws:sqs", "body": MOTO_RECORD},
        ]})
        .to_string();
        assert_eq!(clips(&sqs).len(), 2);
        let sqs_test =
            serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": test}]}).to_string();
        assert_eq!(parse_notification(&sqs_test).unwrap(), Notification::Test);
        let sns = serde_json::json!({"Type": "Notification", "Message": MOTO_RECORD}).to_string();
        assert_eq!(clips(&sns).len(), 1);
        // What a failed asynchronous Lambda invocation leaves in the dead-letter queue.
        let destination = serde_json::json!({
            "version": "1.0",
            "requestContext": {"requestId": "r", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": serde_json::from_str::<Value>(MOTO_RECORD).unwrap(),
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": "ResultNotPublished", "errorMessage": "x"},
        })
        .to_string();
        assert_eq!(clips(&destination)[0].meta.seq, 42);
    }

    #[test]
    fn minimal_and_other_records() {
        let minimal = r#"{"Records":[{"s3":{"object":{"key":"clips/d/s/00000001.h264"}}}]}"#;
        let event = &clips(minimal)[0];
        assert_eq!((event.meta.seq, event.version.as_deref()), (1, None));
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
            r#"{"Records":[{"eventSource":"aws:sqs","body":"nope"}]}"#,
        ] {
            assert!(clip_records(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_are_judged_one_by_one() {
        // (record, device that can be told)
        let bad = [
            (r#"{"eventName":"ObjectCreated:Put"}"#, None),
            (r#"{"s3":{"object":{"key":"clips%2"}}}"#, None),
            (r#"{"s3":{"object":{"key":"..%2Fetc%2Fpasswd"}}}"#, None),
            (r#"{"s3":{"object":{"key":"other/thing.txt"}}}"#, None),
            (r#"{"s3":{"object":{"key":"clips/d/s/x.h264"}}}"#, Some("d")),
            (
                r#"{"s3":{"object":{"key":"clips%2Fdeva%2Fs+1%2F00000001.h264"}}}"#,
                Some("deva"),
            ),
            (
                r#"{"s3":{"object":{"key":"clips%2Fdeva%2F2026-11-26T21%3A00%3A00Z%2F00000001.h264"}}}"#,
                Some("deva"),
            ),
            (
                r#"{"s3":{"object":{"key":"clips%2Fdev+a%2Fs%2F00000001.h264"}}}"#,
                None,
            ),
        ];
        let good = r#"{"s3":{"object":{"key":"clips/deva/s1/00000002.h264","eTag":"e1"}}}"#;
        for (record, device) in bad {
            let body = format!(r#"{{"Records":[{record},{good}]}}"#);
            let records = clip_records(&body).unwrap();
            assert_eq!(records.len(), 2, "{body}");
            match &records[0] {
                ClipRecord::Refused(refused) => {
                    assert_eq!(refused.device_id.as_deref(), device, "{record}: {refused}")
                }
                other => panic!("{record}: {other:?}"),
            }
            match &records[1] {
                ClipRecord::Clip(event) => {
                    assert_eq!(event.key, "clips/deva/s1/00000002.h264");
                    assert_eq!(event.version.as_deref(), Some("e1"));
                }
                other => panic!("{other:?}"),
            }
        }
        let refused = match &clip_records(&format!(r#"{{"Records":[{}]}}"#, bad[6].0)).unwrap()[0] {
            ClipRecord::Refused(r) => r.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(refused.key, "clips/deva/2026-11-26T21:00:00Z/00000001.h264");
        assert!(refused.reason.contains("session id"), "{refused}");
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
