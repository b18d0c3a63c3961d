//! Result queues: [`RecognitionResult`]s from the function to the device that sent the clip.
//!
//! [`ResultQueue`] keeps devices apart: a result is published for the clip's `device_id` and
//! only a receiver for that device gets it. Delivery is at least once (SQS semantics): a
//! receiver acknowledges what it processed with [`ResultQueue::ack`] and must tolerate
//! duplicates (the edge drops them by clip id).
//!
//! Backends: [`local::LocalResultQueue`] (in-process, per-device channels; embedded deployment)
//! and [`sqs::SqsResultQueue`] (feature `aws`; one SQS queue per device, AWS deployment). The trait's futures are `Send`; waiting
//! ([`ResultQueue::receive`] with a non-zero `wait`) needs a Tokio runtime, as every network
//! backend does.

use std::future::Future;
use std::time::Duration;

use crate::wire::RecognitionResult;

pub mod local;
#[cfg(feature = "aws")]
pub mod sqs;

pub use local::LocalResultQueue;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The device id cannot name a queue.
    #[error("invalid device id {device_id:?} for a result queue: {reason}")]
    InvalidDevice {
        /// The device id.
        device_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The queue was closed (the process is shutting down).
    #[error("result queue for {device_id} is closed")]
    Closed {
        /// The device whose queue it was.
        device_id: String,
    },
    /// A result could not be serialised or parsed.
    #[error("result for {device_id}: {message}")]
    Format {
        /// The device.
        device_id: String,
        /// What is wrong.
        message: String,
    },
    /// Any other backend failure (network, service error, permissions...).
    #[error("{backend} result queue for {device_id}: {message}")]
    Backend {
        /// The device.
        device_id: String,
        /// The backend (`"sqs"`).
        backend: &'static str,
        /// The backend's message.
        message: String,
        /// Whether the same call may succeed later.
        retryable: bool,
    },
}

impl QueueError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// One received result and what acknowledges it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The result.
    pub result: RecognitionResult,
    /// Handle for [`ResultQueue::ack`] (an SQS receipt handle); `None` when the backend needs
    /// no acknowledgement.
    pub receipt: Option<String>,
}

/// The response channel from function to edge; see the [module docs](self).
pub trait ResultQueue: Send + Sync {
    /// Short backend name for messages (`"local"`, `"sqs"`).
    fn backend(&self) -> &'static str;

    /// Send `result` to the queue of `result.device_id`.
    fn publish(
        &self,
        result: &RecognitionResult,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Up to `max` results for `device_id`, oldest first; waits up to `wait` for the first one
    /// (long polling) and returns an empty list when none came.
    fn receive(
        &self,
        device_id: &str,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, QueueError>> + Send;

    /// Acknowledge received deliveries so they are not delivered again.
    fn ack(
        &self,
        device_id: &str,
        receipts: &[String],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl<T: ResultQueue> ResultQueue for std::sync::Arc<T> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn publish(
        &self,
        result: &RecognitionResult,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).publish(result)
    }
    fn receive(
        &self,
        device_id: &str,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, QueueError>> + Send {
        (**self).receive(device_id, max, wait)
    }
    fn ack(
        &self,
        device_id: &str,
        receipts: &[String],
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).ack(device_id, receipts)
    }
}
