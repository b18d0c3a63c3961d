//! The SQS worker loop behind `rollcall worker` (feature `aws`): long-poll the clip-events
//! queue (S3 notifications) and run the recognition function on every clip.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use rollcall_protocol::aws::{sdk_message, AwsError};
use rollcall_protocol::events::{self, EventParseError};
use rollcall_protocol::results::ResultQueue;
use rollcall_protocol::store::ClipStore;

use crate::directory::PeopleDirectory;
use crate::handler::{ClipOutcome, RecognitionHandler};

fn err(what: impl Into<String>) -> impl FnOnce(String) -> AwsError {
    let what = what.into();
    move |message| AwsError::new(what, message)
}

/// How [`run_worker`] runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The clip-events queue URL.
    pub queue_url: String,
    /// Clips handled at once (each on a blocking thread).
    pub max_workers: usize,
    /// Long-poll wait per receive (at most 20 s).
    pub wait: Duration,
    /// Stop after this long without any message (`None`: run until `stop`).
    pub idle_exit: Option<Duration>,
}

/// Counters of [`run_worker`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerStats {
    /// Messages received (redeliveries included).
    pub messages: u64,
    /// Clip events handled (result published).
    pub clips: u64,
    /// Of those, error results.
    pub errors: u64,
    /// `s3:TestEvent` and other messages without clips, deleted.
    pub empty: u64,
    /// Messages that could not be parsed: left for the DLQ.
    pub unparsable: u64,
    /// Messages left for redelivery because a result could not be published (retryably).
    pub retried: u64,
    /// Clip events given up because their result can never be published.
    pub dropped: u64,
    /// Messages deleted after success.
    pub deleted: u64,
}

#[derive(Default)]
struct AtomicStats {
    messages: AtomicU64,
    clips: AtomicU64,
    errors: AtomicU64,
    empty: AtomicU64,
    unparsable: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    deleted: AtomicU64,
}

impl AtomicStats {
    fn snapshot(&self) -> WorkerStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerStats {
            messages: l(&self.messages),
            clips: l(&self.clips),
            errors: l(&self.errors),
            empty: l(&self.empty),
            unparsable: l(&self.unparsable),
            retried: l(&self.retried),
            dropped: l(&self.dropped),
            deleted: l(&self.deleted),
        }
    }
}

/// Long-poll the clip-events queue and run `handler` on every clip, up to
/// `config.max_workers` at once, until `stop` is set (or `idle_exit`). A message is deleted once
/// every clip in it has its result published (error results included: a corrupt clip is answered,
/// not retried); a message that cannot be parsed is left alone, so the redrive policy moves it to
/// the dead-letter queue after its maximum receive count; a message whose result could not be
/// published is left for redelivery (the handler then republishes its remembered result).
///
/// Must run on a multi-thread Tokio runtime (clips are handled on blocking threads).
pub async fn run_worker<S, D, Q>(
    sqs: aws_sdk_sqs::Client,
    handler: Arc<RecognitionHandler<S, D, Q>>,
    config: WorkerConfig,
    stop: Arc<AtomicBool>,
) -> Result<WorkerStats, AwsError>
where
    S: ClipStore + 'static,
    D: PeopleDirectory + ?Sized + 'static,
    Q: ResultQueue + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_workers.max(1)));
    let stats = Arc::new(AtomicStats::default());
    let mut tasks = tokio::task::JoinSet::new();
    let wait = config.wait.min(Duration::from_secs(20));
    let mut last_message = Instant::now();
    let mut failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if let Some(idle) = config.idle_exit {
            if last_message.elapsed() >= idle
                && slots.available_permits() >= config.max_workers.max(1)
            {
                break;
            }
        }
        while tasks.try_join_next().is_some() {}
        let first = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|e| err("worker")(e.to_string()))?;
        let batch = (slots.available_permits() + 1).clamp(1, 10) as i32;
        let received = sqs
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(batch)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let messages = match received {
            Ok(out) => {
                failures = 0;
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %sdk_message(&e), failures, "receive from the events queue failed");
                if failures >= 10 {
                    return Err(err("receive clip events")(sdk_message(&e)));
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                continue;
            }
        };
        if !messages.is_empty() {
            last_message = Instant::now();
        }
        let mut first = Some(first);
        for message in messages {
            stats.messages.fetch_add(1, Ordering::Relaxed);
            let permit = match first.take() {
                Some(p) => p,
                None => Arc::clone(&slots)
                    .acquire_owned()
                    .await
                    .map_err(|e| err("worker")(e.to_string()))?,
            };
            let sqs = sqs.clone();
            let handler = Arc::clone(&handler);
            let stats = Arc::clone(&stats);
            let queue_url = config.queue_url.clone();
            tasks.spawn(async move {
                let _permit = permit;
                handle_message(&sqs, &queue_url, handler, &stats, message).await;
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(stats.snapshot())
}

async fn handle_message<S, D, Q>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handler: Arc<RecognitionHandler<S, D, Q>>,
    stats: &AtomicStats,
    message: aws_sdk_sqs::types::Message,
) where
    S: ClipStore + 'static,
    D: PeopleDirectory + ?Sized + 'static,
    Q: ResultQueue + 'static,
{
    let id = message.message_id().unwrap_or("?").to_string();
    let receives = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned()
        .unwrap_or_default();
    let events = match events::clip_events(message.body().unwrap_or("")) {
        Ok(events) => events,
        Err(EventParseError(reason)) => {
            stats.unparsable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(message = %id, receives = %receives, %reason, "unusable clip-event message: left for the dead-letter queue");
            return;
        }
    };
    if events.is_empty() {
        stats.empty.fetch_add(1, Ordering::Relaxed);
    }
    // A clip whose result can never be published is dropped (logged by `run_event`): only a
    // retryable failure leaves the message for redelivery.
    let mut retry = false;
    for event in events {
        match handler.run_event(event).await {
            ClipOutcome::Published(result) => {
                stats.clips.fetch_add(1, Ordering::Relaxed);
                if result.error.is_some() {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            ClipOutcome::Retry(_) => retry = true,
            ClipOutcome::Dropped(_) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if retry {
        stats.retried.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if let Some(receipt) = message.receipt_handle() {
        match sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => {
                stats.deleted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(message = %id, error = %sdk_message(&e), "delete failed: the message will come again (duplicate result)")
            }
        }
    }
}
