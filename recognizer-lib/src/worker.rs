//! The SQS worker loop behind `rollcall worker` (feature `aws`): long-poll the clip-events
//! queue (S3 notifications) and run the recognition function on every clip.
//!
//! - **Short visibility, extended while in hand.** Messages are received with a short
//!   visibility timeout ([`WorkerConfig::visibility`], default 10 s) that a heartbeat extends
//!   (`ChangeMessageVisibility`, every third of it) while the message's clips are being handled:
//!   a worker that dies mid-clip gives its messages back within seconds, not minutes.
//! - **Records one by one.** Every record of a message is handled on its own
//!   ([`RecognitionHandler::run_record`]): a refused key whose device can be read is answered
//!   with an error result there; a good record next to a bad one is answered as usual.
//! - **What is left for the dead-letter queue.** A message is deleted once every record has its
//!   result published. A message that is not a notification, or holding a record that can never
//!   be answered (a key naming no device), is logged with its message id and left alone: the
//!   queue's redrive policy moves it to the dead-letter queue after its maximum receive count
//!   (`rollcall aws dlq list` shows why). A record whose result could not be published
//!   (retryably) leaves the message for redelivery.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
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
    /// Visibility timeout of received messages (at least 1 s; default 10 s), extended every
    /// third of it while their clips are in hand.
    pub visibility: Duration,
}

/// Default [`WorkerConfig::visibility`]: a dead worker's clips come back within 10 s.
pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(10);

impl WorkerConfig {
    /// Defaults for `queue_url`: one clip at a time, 20 s long polls, no idle exit, 10 s
    /// visibility.
    pub fn new(queue_url: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            queue_url: queue_url.into(),
            max_workers: 1,
            wait: Duration::from_secs(20),
            idle_exit: None,
            visibility: DEFAULT_VISIBILITY,
        }
    }
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
    /// Records given up because their result can never be published (a key naming no device):
    /// their messages are left for the DLQ.
    pub dropped: u64,
    /// Messages deleted after success.
    pub deleted: u64,
    /// Visibility extensions sent while clips were in hand.
    pub extended: u64,
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
    extended: AtomicU64,
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
            extended: l(&self.extended),
        }
    }
}

/// Long-poll the clip-events queue and run `handler` on every clip, up to
/// `config.max_workers` at once, until `stop` is set (or `idle_exit`); see the
/// [module docs](self). A message is deleted once every record in it has its result published
/// (error results included: a corrupt clip is answered, not retried); a message that cannot be
/// parsed, or holds a record naming no device, is left alone, so the redrive policy moves it to
/// the dead-letter queue after its maximum receive count; a message whose result could not be
/// published is left for redelivery (the handler then republishes its remembered result). Once
/// `stop` is set no message is received any more (a long poll in progress is abandoned) and the
/// clips in hand are finished.
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
    let visibility = config.visibility.max(Duration::from_secs(1));
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
        let receive = sqs
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(batch)
            .wait_time_seconds(wait.as_secs() as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        // Stopping ends a long poll that is still waiting; one that is answering gets a moment
        // to finish, and what it received is given back at once.
        let mut receive = std::pin::pin!(receive);
        let received = tokio::select! {
            received = &mut receive => received,
            _ = stopped(&stop) => {
                if let Ok(Ok(out)) = tokio::time::timeout(STOP_GRACE, &mut receive).await {
                    for message in out.messages.unwrap_or_default() {
                        if let Err(e) = release(&sqs, &config.queue_url, &message).await {
                            tracing::warn!(error = %e, "a message received while stopping returns after the visibility timeout");
                        }
                    }
                }
                break;
            }
        };
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
                let heartbeat = keep_invisible(&sqs, &queue_url, &message, visibility, &stats);
                handle_message(&sqs, &queue_url, handler, &stats, message, heartbeat).await;
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(stats.snapshot())
}

/// The queue's own visibility timeout (what `rollcall aws provision --visibility-timeout` set),
/// for [`WorkerConfig::visibility`] when none is given.
pub async fn queue_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Duration, AwsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| err(format!("visibility timeout of {queue_url}"))(sdk_message(&e)))?;
    let seconds = out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            err(format!("visibility timeout of {queue_url}"))("attribute missing".into())
        })?;
    Ok(Duration::from_secs(seconds))
}

/// How long a receive in progress may still take once the worker stops.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// Make a received message visible again at once (received but not handled: a worker stopping,
/// a dead-letter listing).
pub(crate) async fn release(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &aws_sdk_sqs::types::Message,
) -> Result<(), AwsError> {
    let Some(receipt) = message.receipt_handle() else {
        return Ok(());
    };
    sqs.change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(0)
        .send()
        .await
        .map_err(|e| err(format!("give a message back to {queue_url}"))(sdk_message(&e)))?;
    Ok(())
}

/// Resolves once `stop` is set (checked every 100 ms).
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Extend `message`'s visibility to `visibility` every third of it until the returned task is
/// aborted: while its clips are in hand it stays invisible, and if this process dies it comes
/// back within `visibility`.
fn keep_invisible(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &aws_sdk_sqs::types::Message,
    visibility: Duration,
    stats: &Arc<AtomicStats>,
) -> Option<tokio::task::JoinHandle<()>> {
    let receipt = message.receipt_handle()?.to_string();
    let id = message.message_id().unwrap_or("?").to_string();
    let (sqs, queue_url, stats) = (sqs.clone(), queue_url.to_string(), Arc::clone(stats));
    let every = (visibility / 3).max(Duration::from_millis(300));
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match sqs
                .change_message_visibility()
                .queue_url(&queue_url)
                .receipt_handle(&receipt)
                .visibility_timeout(visibility.as_secs() as i32)
                .send()
                .await
            {
                Ok(_) => {
                    stats.extended.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(message = %id, error = %sdk_message(&e), "cannot extend the visibility of a message in hand: it may be delivered again (duplicate result)")
                }
            }
        }
    }))
}

async fn handle_message<S, D, Q>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handler: Arc<RecognitionHandler<S, D, Q>>,
    stats: &AtomicStats,
    message: aws_sdk_sqs::types::Message,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
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
    let leave = handle_records(
        &handler,
        stats,
        &id,
        &receives,
        message.body().unwrap_or(""),
    )
    .await;
    if let Some(heartbeat) = heartbeat {
        heartbeat.abort();
        let _ = heartbeat.await;
    }
    if leave {
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

/// Handle every record of a message body; returns whether the message must be left on the
/// queue (for redelivery, or for the dead-letter queue).
async fn handle_records<S, D, Q>(
    handler: &Arc<RecognitionHandler<S, D, Q>>,
    stats: &AtomicStats,
    id: &str,
    receives: &str,
    body: &str,
) -> bool
where
    S: ClipStore + 'static,
    D: PeopleDirectory + ?Sized + 'static,
    Q: ResultQueue + 'static,
{
    let records = match events::clip_records(body) {
        Ok(records) => records,
        Err(EventParseError(reason)) => {
            stats.unparsable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(message = %id, receives = %receives, %reason, "unusable clip-event message: left for the dead-letter queue");
            return true;
        }
    };
    if records.is_empty() {
        stats.empty.fetch_add(1, Ordering::Relaxed);
    }
    let (mut retry, mut dropped) = (false, false);
    for record in records {
        let key = record.key().to_string();
        match handler.run_record(record).await {
            ClipOutcome::Published(result) => {
                stats.clips.fetch_add(1, Ordering::Relaxed);
                if result.error.is_some() {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            ClipOutcome::Retry(_) => retry = true,
            ClipOutcome::Dropped(reason) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(message = %id, receives = %receives, %key, %reason, "record can never be answered: message left for the dead-letter queue");
                dropped = true;
            }
        }
    }
    if retry {
        stats.retried.fetch_add(1, Ordering::Relaxed);
    }
    retry || dropped
}
