//! The AWS deployment's shared pieces (feature `aws`): SDK configuration, resource names,
//! `provision` (bucket, queues, table, notification) and the SQS worker loop behind
//! `rollcall worker`.
//!
//! Every client uses the standard credential chain and region resolution of `aws-config` and
//! honours `AWS_ENDPOINT_URL` (e.g. a moto server); when an endpoint URL is set, S3 uses
//! path-style addressing (`http://host:port/bucket/key`).
//!
//! Backends: [`crate::store::s3::S3ClipStore`], [`crate::results::sqs::SqsResultQueue`],
//! [`crate::directory::dynamodb::DynamoDirectory`], CloudWatch Logs
//! ([`crate::logs::cloudwatch`]). Event parsing: [`crate::events`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use crate::directory::PeopleDirectory;
use crate::events::{self, EventParseError};
use crate::handler::RecognitionHandler;
use crate::results::ResultQueue;
use crate::store::ClipStore;

pub use aws_config::SdkConfig;
pub use aws_sdk_cloudwatchlogs::Client as LogsClient;
pub use aws_sdk_dynamodb::Client as DynamoClient;
pub use aws_sdk_s3::Client as S3Client;
pub use aws_sdk_sqs::Client as SqsClient;

/// Load the SDK configuration: standard credential chain, region (default `us-east-1` when none
/// is configured), `AWS_ENDPOINT_URL`.
pub async fn load_config() -> SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

/// Whether a custom endpoint is configured (then S3 needs path-style addressing).
pub fn custom_endpoint() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// An S3 client for `config` (path-style when [`custom_endpoint`]).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// The names of a deployment's resources, all derived from one prefix (default `rollcall`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
    /// Clips bucket: `<prefix>-clips` unless set (bucket names are global on real AWS: set
    /// `ROLLCALL_BUCKET` / `--bucket` there).
    pub bucket: String,
}

impl Names {
    /// Names for `prefix` with the default bucket `<prefix>-clips`.
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
            bucket: format!("{prefix}-clips"),
        }
    }
    /// The clip-events queue (S3 notifications): `<prefix>-clip-events`.
    pub fn events_queue(&self) -> String {
        format!("{}-clip-events", self.prefix)
    }
    /// Its dead-letter queue: `<prefix>-clip-events-dlq`.
    pub fn events_dlq(&self) -> String {
        format!("{}-clip-events-dlq", self.prefix)
    }
    /// The people directory table: `<prefix>-people`.
    pub fn table(&self) -> String {
        format!("{}-people", self.prefix)
    }
    /// The result queue of a device: `<prefix>-results-<device>`.
    pub fn result_queue(&self, device_id: &str) -> String {
        crate::results::sqs::result_queue_name(&self.prefix, device_id)
    }
    /// The Lambda function's log group: `/aws/lambda/<prefix>-recognizer` (Lambda names it after
    /// the function, `<prefix>-recognizer`; the function's stdout lands there).
    pub fn lambda_log_group(&self) -> String {
        format!("/aws/lambda/{}-recognizer", self.prefix)
    }
    /// The log group `rollcall worker` ships its own logs to, one stream per worker instance:
    /// `/rollcall/<prefix>/worker` (created by [`provision`]).
    pub fn worker_log_group(&self) -> String {
        format!("/rollcall/{}/worker", self.prefix)
    }
}

/// Prefix of clip object keys, the notification filter.
pub const CLIPS_PREFIX: &str = "clips/";
/// Receives of one event message before SQS moves it to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 3;

/// Error of provisioning or of the worker loop.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct AwsError {
    pub what: String,
    pub message: String,
}

pub(crate) fn sdk_message<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

/// Whether an SDK error is worth retrying (network, timeout, 5xx, throttling).
pub(crate) fn sdk_retryable<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status >= 500 || status == 429
        }
        _ => false,
    }
}

fn err(what: impl Into<String>) -> impl FnOnce(String) -> AwsError {
    let what = what.into();
    move |message| AwsError { what, message }
}

/// What [`provision`] created or found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Provisioned {
    pub bucket: String,
    pub events_queue_url: String,
    pub events_queue_arn: String,
    pub dlq_url: String,
    pub table: String,
    /// `(device, queue URL)`.
    pub result_queues: Vec<(String, String)>,
    /// The worker's log group ([`Names::worker_log_group`]).
    pub worker_log_group: String,
}

/// Options of [`provision`].
#[derive(Clone, Debug)]
pub struct ProvisionOptions {
    /// Visibility timeout of the events queue (default 60 s: several clips' work).
    pub visibility_timeout: Duration,
    /// Receives before a message goes to the DLQ (default [`MAX_RECEIVE_COUNT`]).
    pub max_receive_count: u32,
    /// Devices whose result queues are created.
    pub devices: Vec<String>,
    /// Retention of the worker's log group, in days (one of
    /// [`crate::logs::cloudwatch::RETENTION_DAYS`]; default 14).
    pub log_retention_days: i32,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        ProvisionOptions {
            visibility_timeout: Duration::from_secs(60),
            max_receive_count: MAX_RECEIVE_COUNT,
            devices: Vec::new(),
            log_retention_days: 14,
        }
    }
}

/// Create (idempotently) the bucket, the clip-events queue + DLQ (redrive after
/// `max_receive_count` receives), the per-device result queues, the people table and the bucket
/// notification (`ObjectCreated` under `clips/` -> events queue), and the worker's log group
/// with its retention.
pub async fn provision(
    config: &SdkConfig,
    names: &Names,
    options: &ProvisionOptions,
) -> Result<Provisioned, AwsError> {
    let s3 = s3_client(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut out = Provisioned {
        bucket: names.bucket.clone(),
        table: names.table(),
        worker_log_group: names.worker_log_group(),
        ..Provisioned::default()
    };

    // Bucket.
    match s3.create_bucket().bucket(&names.bucket).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) => {}
        Err(e) => {
            return Err(err(format!("create bucket {}", names.bucket))(sdk_message(
                &e,
            )))
        }
    }

    // Queues.
    out.dlq_url = ensure_queue(&sqs, &names.events_dlq(), &[]).await?;
    let dlq_arn = queue_arn(&sqs, &out.dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": options.max_receive_count.to_string(),
    })
    .to_string();
    let visibility = options.visibility_timeout.as_secs().to_string();
    out.events_queue_url = ensure_queue(
        &sqs,
        &names.events_queue(),
        &[
            (QueueAttributeName::VisibilityTimeout, visibility),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await?;
    out.events_queue_arn = queue_arn(&sqs, &out.events_queue_url).await?;
    // Let the bucket send to the events queue (needed on real AWS; moto ignores it).
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "rollcall-s3-notifications",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": out.events_queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{}", names.bucket)}},
        }],
    })
    .to_string();
    sqs.set_queue_attributes()
        .queue_url(&out.events_queue_url)
        .attributes(QueueAttributeName::Policy, policy)
        .send()
        .await
        .map_err(|e| err("set events queue policy")(sdk_message(&e)))?;
    for device in &options.devices {
        let name = names.result_queue(device);
        crate::results::sqs::validate_queue_name(&name).map_err(|reason| AwsError {
            what: format!("result queue for device {device:?}"),
            message: reason.to_string(),
        })?;
        let url = ensure_queue(&sqs, &name, &[]).await?;
        out.result_queues.push((device.clone(), url));
    }

    // Table.
    crate::directory::dynamodb::create_table(&aws_sdk_dynamodb::Client::new(config), &out.table)
        .await
        .map_err(|e| err(format!("create table {}", out.table))(e.to_string()))?;

    // Notification.
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    let queue_config = QueueConfiguration::builder()
        .id("rollcall-clips")
        .queue_arn(&out.events_queue_arn)
        .events(Event::S3ObjectCreated)
        .filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(
                            FilterRule::builder()
                                .name(FilterRuleName::Prefix)
                                .value(CLIPS_PREFIX)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
        .map_err(|e| err("notification configuration")(e.to_string()))?;
    s3.put_bucket_notification_configuration()
        .bucket(&names.bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue_config)
                .build(),
        )
        .send()
        .await
        .map_err(|e| err("put bucket notification")(sdk_message(&e)))?;

    // The worker's log group (the Lambda's is Lambda's or the template's to create).
    crate::logs::cloudwatch::ensure_log_group(
        &LogsClient::new(config),
        &out.worker_log_group,
        Some(options.log_retention_days),
    )
    .await
    .map_err(|e| err(format!("log group {}", out.worker_log_group))(e.to_string()))?;
    Ok(out)
}

/// Create a queue or update the attributes of the existing one; returns its URL.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, AwsError> {
    let mut create = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        create = create.attributes(k.clone(), v);
    }
    match create.send().await {
        Ok(out) => out
            .queue_url
            .ok_or_else(|| err(format!("create queue {name}"))("no queue URL".into())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_name_exists()) =>
        {
            let url = sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| err(format!("queue {name}"))(sdk_message(&e)))?
                .queue_url
                .unwrap_or_default();
            let mut set = sqs.set_queue_attributes().queue_url(&url);
            for (k, v) in attributes {
                set = set.attributes(k.clone(), v);
            }
            if !attributes.is_empty() {
                set.send()
                    .await
                    .map_err(|e| err(format!("update queue {name}"))(sdk_message(&e)))?;
            }
            Ok(url)
        }
        Err(e) => Err(err(format!("create queue {name}"))(sdk_message(&e))),
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, AwsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err(format!("queue {url}"))(sdk_message(&e)))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| err(format!("queue {url}"))("no QueueArn attribute".into()))
}

/// The URL of a queue given by URL (returned as is) or by name.
pub async fn resolve_queue(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<String, AwsError> {
    if queue.starts_with("http://") || queue.starts_with("https://") {
        return Ok(queue.to_string());
    }
    sqs.get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| err(format!("queue {queue}"))(sdk_message(&e)))?
        .queue_url
        .ok_or_else(|| err(format!("queue {queue}"))("no queue URL".into()))
}

/// Checks that `bucket` exists and these credentials may use it (what an edge does before its
/// first upload, so a wrong name fails at once instead of after upload retries).
pub async fn check_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), AwsError> {
    s3.head_bucket()
        .bucket(bucket)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err(format!("bucket {bucket}"))(sdk_message(&e)))
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
    /// Messages left for redelivery because a result could not be published.
    pub retried: u64,
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
    let mut all_published = true;
    for event in events {
        let handler = Arc::clone(&handler);
        let io = tokio::runtime::Handle::current();
        let key = event.key.clone();
        let outcome = tokio::task::spawn_blocking(move || io.block_on(handler.handle(event))).await;
        match outcome {
            Ok(Ok(result)) => {
                stats.clips.fetch_add(1, Ordering::Relaxed);
                if result.error.is_some() {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err(e)) => {
                all_published = false;
                tracing::warn!(%key, error = %e, "result not published: message left for redelivery");
            }
            Err(e) => {
                all_published = false;
                tracing::error!(%key, error = %e, "clip handler panicked");
            }
        }
    }
    if !all_published {
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
