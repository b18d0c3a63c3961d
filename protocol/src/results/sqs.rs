//! [`SqsResultQueue`]: one SQS queue per device (feature `aws`).
//!
//! Routing: the result of a clip goes to the queue `<prefix>-results-<device_id>` (prefix
//! default `rollcall`), so a device only ever sees its own results and can be given an IAM policy
//! on its queue alone. A device id that cannot be part of a queue name (SQS allows
//! `[A-Za-z0-9_-]`, 80 characters) is refused ([`QueueError::InvalidDevice`]). The message body
//! is the RecognitionResult JSON. Queue URLs are looked up once per device and cached;
//! `rollcall aws provision --device ID` creates the queues (publishing to a missing queue fails,
//! retryably, so the result is sent again once the queue exists).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::aws::{result_queue_name, sdk_message, sdk_retryable, validate_queue_name};
use crate::results::{Delivery, QueueError, ResultQueue};
use crate::wire::RecognitionResult;

/// Result queues on SQS; see the [module docs](self).
#[derive(Debug)]
pub struct SqsResultQueue {
    client: aws_sdk_sqs::Client,
    prefix: String,
    urls: Mutex<HashMap<String, String>>,
}

impl SqsResultQueue {
    /// Queues `<prefix>-results-<device>` through `client`.
    pub fn new(client: aws_sdk_sqs::Client, prefix: impl Into<String>) -> SqsResultQueue {
        SqsResultQueue {
            client,
            prefix: prefix.into(),
            urls: Mutex::new(HashMap::new()),
        }
    }

    /// The queue name of `device_id`.
    pub fn queue_name(&self, device_id: &str) -> String {
        result_queue_name(&self.prefix, device_id)
    }

    /// The queue URL of `device_id` (looked up once).
    pub async fn queue_url(&self, device_id: &str) -> Result<String, QueueError> {
        if let Some(url) = self
            .urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device_id)
        {
            return Ok(url.clone());
        }
        let name = self.queue_name(device_id);
        validate_queue_name(&name).map_err(|reason| QueueError::InvalidDevice {
            device_id: device_id.to_string(),
            reason,
        })?;
        let out = self
            .client
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| QueueError::Backend {
                device_id: device_id.to_string(),
                backend: "sqs",
                message: format!("queue {name}: {}", sdk_message(&e)),
                // A missing queue may be provisioned later.
                retryable: true,
            })?;
        let url = out.queue_url.unwrap_or_default();
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device_id.to_string(), url.clone());
        Ok(url)
    }

    fn backend_error<E>(
        device_id: &str,
        e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
    ) -> QueueError
    where
        E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    {
        QueueError::Backend {
            device_id: device_id.to_string(),
            backend: "sqs",
            message: sdk_message(e),
            retryable: sdk_retryable(e),
        }
    }
}

impl ResultQueue for SqsResultQueue {
    fn backend(&self) -> &'static str {
        "sqs"
    }

    async fn publish(&self, result: &RecognitionResult) -> Result<(), QueueError> {
        let device_id = &result.device_id;
        let url = self.queue_url(device_id).await?;
        let body = serde_json::to_string(result).map_err(|e| QueueError::Format {
            device_id: device_id.clone(),
            message: e.to_string(),
        })?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| Self::backend_error(device_id, &e))?;
        Ok(())
    }

    async fn receive(
        &self,
        device_id: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let url = self.queue_url(device_id).await?;
        let out = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .send()
            .await
            .map_err(|e| Self::backend_error(device_id, &e))?;
        let mut deliveries = Vec::new();
        for message in out.messages.unwrap_or_default() {
            let body = message.body().unwrap_or("");
            match serde_json::from_str::<RecognitionResult>(body) {
                Ok(result) => deliveries.push(Delivery {
                    result,
                    receipt: message.receipt_handle().map(str::to_string),
                }),
                Err(e) => {
                    // Not a result: drop it so it does not come back forever.
                    tracing::warn!(device_id, error = %e, "dropping a malformed message from the result queue");
                    if let Some(receipt) = message.receipt_handle() {
                        let _ = self
                            .client
                            .delete_message()
                            .queue_url(&url)
                            .receipt_handle(receipt)
                            .send()
                            .await;
                    }
                }
            }
        }
        Ok(deliveries)
    }

    async fn ack(&self, device_id: &str, receipts: &[String]) -> Result<(), QueueError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let url = self.queue_url(device_id).await?;
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .map_err(|e| QueueError::Format {
                            device_id: device_id.to_string(),
                            message: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| Self::backend_error(device_id, &e))?;
            if let Some(failed) = out.failed().first() {
                return Err(QueueError::Backend {
                    device_id: device_id.to_string(),
                    backend: "sqs",
                    message: format!(
                        "delete failed: {} {}",
                        failed.code(),
                        failed.message().unwrap_or("")
                    ),
                    retryable: !failed.sender_fault(),
                });
            }
        }
        Ok(())
    }
}
