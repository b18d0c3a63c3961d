//! The clip-events dead-letter queue (feature `aws`): what `rollcall aws dlq list|redrive` does.
//!
//! A message reaches the DLQ when no worker (or Lambda) could finish it within the queue's
//! maximum receive count: it is not a storage notification, a record's key names no device, or
//! its results could not be published. SQS keeps no reason with a dead letter, so
//! [`list_dead_letters`] works it out again from the body with the same parser the function uses
//! ([`diagnose`]) and, for messages whose records all name a device, checks whether those
//! devices' result queues exist. [`redrive`] sends chosen messages back to the events queue
//! (a new message, the same body) and deletes them from the DLQ.
//!
//! Listing does not consume: messages are received with a short visibility timeout, then made
//! visible again at once.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use rollcall_protocol::aws::{result_queue_name, sdk_message, AwsError};
use rollcall_protocol::events::{self, ClipRecord};
use serde_json::Value;

use crate::worker::release;

/// Most messages one listing or redrive looks at (by default).
pub const DEFAULT_MAX_MESSAGES: usize = 1000;

/// Visibility timeout while a listing holds the messages (they are released right after).
const HOLD: Duration = Duration::from_secs(30);

/// One message of the dead-letter queue and why it is there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The SQS message id (the same id it had on the events queue, so it matches the worker's
    /// log line).
    pub message_id: String,
    /// Why the message could not be finished.
    pub reason: String,
    /// The object keys its records name (decoded).
    pub keys: Vec<String>,
    /// Times it was received (on the events queue and here).
    pub receives: u32,
    /// When it was first sent, ms since the Unix epoch (0 when unknown).
    pub sent_ms: u64,
    /// The body, as it will be redriven.
    pub body: String,
}

/// What [`redrive`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Redriven {
    /// `(DLQ message id, new events-queue message id)` of every message sent back.
    pub sent: Vec<(String, String)>,
    /// Requested ids that are not in the dead-letter queue.
    pub not_found: Vec<String>,
}

/// Why a message body cannot be finished, judged like the function judges it, and the keys it
/// names. `Ok(devices)` when every record names a device: then only publishing can have failed,
/// and the caller checks those devices' queues.
pub fn diagnose(body: &str) -> (Result<BTreeSet<String>, String>, Vec<String>) {
    // A failed asynchronous Lambda invocation (on-failure destination) says why itself.
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        if let Some(response) = value.get("responsePayload") {
            let text = |name: &str| response.get(name).and_then(Value::as_str).unwrap_or("");
            let keys = match events::clip_records(body) {
                Ok(records) => records.iter().map(|r| r.key().to_string()).collect(),
                Err(_) => Vec::new(),
            };
            return (
                Err(format!(
                    "the function failed: {} {}",
                    text("errorType"),
                    text("errorMessage")
                )),
                keys,
            );
        }
    }
    let records = match events::clip_records(body) {
        Ok(records) => records,
        Err(e) => return (Err(e.to_string()), Vec::new()),
    };
    let keys = records.iter().map(|r| r.key().to_string()).collect();
    let mut devices = BTreeSet::new();
    for record in &records {
        match record {
            ClipRecord::Clip(event) => {
                devices.insert(event.meta.device_id.clone());
            }
            ClipRecord::Refused(refused) => match &refused.device_id {
                Some(device) => {
                    devices.insert(device.clone());
                }
                None => return (Err(format!("{refused}; it names no device")), keys),
            },
        }
    }
    if records.is_empty() {
        return (Err("no clip records (a test event)".into()), keys);
    }
    (Ok(devices), keys)
}

/// Receive up to `max` messages of `queue_url`, each once, holding them invisible for [`HOLD`].
async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: usize,
) -> Result<Vec<aws_sdk_sqs::types::Message>, AwsError> {
    let mut seen = HashMap::new();
    let mut order = Vec::new();
    while order.len() < max {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages((max - order.len()).clamp(1, 10) as i32)
            .wait_time_seconds(1)
            .visibility_timeout(HOLD.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| AwsError::new(format!("receive from {queue_url}"), sdk_message(&e)))?;
        let mut new = 0;
        for message in out.messages.unwrap_or_default() {
            let id = message.message_id().unwrap_or_default().to_string();
            if seen.insert(id.clone(), ()).is_none() {
                new += 1;
                order.push(message);
            }
        }
        if new == 0 {
            break;
        }
    }
    Ok(order)
}

fn attribute(message: &aws_sdk_sqs::types::Message, name: MessageSystemAttributeName) -> u64 {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// List the dead-letter queue (up to `max` messages) with each message's reason; see the
/// [module docs](self). `prefix` names the result queues (`<prefix>-results-<device>`) checked
/// for messages whose records all name a device.
pub async fn list_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    prefix: &str,
    max: usize,
) -> Result<Vec<DeadLetter>, AwsError> {
    let messages = receive_all(sqs, dlq_url, max).await?;
    let mut queue_exists: HashMap<String, bool> = HashMap::new();
    let mut letters = Vec::with_capacity(messages.len());
    for message in &messages {
        let body = message.body().unwrap_or_default().to_string();
        let (diagnosis, keys) = diagnose(&body);
        let reason = match diagnosis {
            Err(reason) => reason,
            Ok(devices) => {
                let mut missing = Vec::new();
                for device in devices {
                    let name = result_queue_name(prefix, &device);
                    if !*queue_exists
                        .entry(name.clone())
                        .or_insert(sqs.get_queue_url().queue_name(&name).send().await.is_ok())
                    {
                        missing.push(format!("{name} (rollcall aws provision --device {device})"));
                    }
                }
                if missing.is_empty() {
                    "every record names a device whose result queue exists: its results could not be published while it was retried (redrive it)".to_string()
                } else {
                    format!(
                        "results could not be published: no result queue {}",
                        missing.join(", ")
                    )
                }
            }
        };
        letters.push(DeadLetter {
            message_id: message.message_id().unwrap_or_default().to_string(),
            reason,
            keys,
            receives: attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
                .try_into()
                .unwrap_or(u32::MAX),
            sent_ms: attribute(message, MessageSystemAttributeName::SentTimestamp),
            body,
        });
    }
    for message in &messages {
        release(sqs, dlq_url, message).await?;
    }
    Ok(letters)
}

/// Send the dead letters named by `ids` (all of them for `None`) back to the events queue and
/// delete them from the dead-letter queue; the others are left as they were.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    events_url: &str,
    ids: Option<&[String]>,
    max: usize,
) -> Result<Redriven, AwsError> {
    let messages = receive_all(sqs, dlq_url, max).await?;
    let wanted = |id: &str| ids.is_none_or(|ids| ids.iter().any(|w| w == id));
    let mut out = Redriven::default();
    let mut failure = None;
    for message in &messages {
        let id = message.message_id().unwrap_or_default();
        if failure.is_some() || !wanted(id) {
            release(sqs, dlq_url, message).await?;
            continue;
        }
        let sent = sqs
            .send_message()
            .queue_url(events_url)
            .message_body(message.body().unwrap_or_default())
            .send()
            .await;
        match sent {
            Ok(sent) => {
                if let Some(receipt) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(dlq_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::new(
                                format!("delete redriven message {id} from {dlq_url}"),
                                sdk_message(&e),
                            )
                        })?;
                }
                out.sent.push((
                    id.to_string(),
                    sent.message_id().unwrap_or_default().to_string(),
                ));
            }
            Err(e) => {
                failure = Some(AwsError::new(
                    format!("send message {id} to {events_url}"),
                    sdk_message(&e),
                ));
                release(sqs, dlq_url, message).await?;
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if let Some(ids) = ids {
        let found: BTreeSet<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
        out.not_found = ids
            .iter()
            .filter(|id| !found.contains(id.as_str()))
            .cloned()
            .collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_the_body() {
        let (d, keys) = diagnose("this is not an S3 event");
        assert!(d.unwrap_err().contains("not JSON"));
        assert!(keys.is_empty());
        let unroutable = r#"{"Records":[{"s3":{"object":{"key":"clips/deva/s1/00000001.h264"}}},
            {"s3":{"object":{"key":"clips%2Fdev+a%2Fs%2F00000002.h264"}}}]}"#;
        let (d, keys) = diagnose(unroutable);
        let reason = d.unwrap_err();
        assert!(reason.contains("clips/dev a/s/00000002.h264"), "{reason}");
        assert!(reason.contains("names no device"), "{reason}");
        assert_eq!(keys.len(), 2);
        let routable = r#"{"Records":[{"s3":{"object":{"key":"clips/deva/s1/00000001.h264"}}},
            {"s3":{"object":{"key":"clips/devb/s 1/00000002.h264"}}}]}"#;
        let (d, _) = diagnose(routable);
        assert_eq!(
            d.unwrap(),
            BTreeSet::from(["deva".to_string(), "devb".to_string()])
        );
        let destination = serde_json::json!({
            "requestContext": {"condition": "RetriesExhausted"},
            "requestPayload": serde_json::from_str::<Value>(routable).unwrap(),
            "responsePayload": {"errorType": "ResultNotPublished", "errorMessage": "1 result(s) not published"},
        })
        .to_string();
        let (d, keys) = diagnose(&destination);
        assert!(d.unwrap_err().contains("ResultNotPublished"));
        assert_eq!(keys.len(), 2);
    }
}
