//! `rollcall aws provision` (feature `aws`): create, idempotently, the bucket (public access
//! blocked, default encryption, clips expiring after a retention), the clip-events queue and its
//! dead-letter queue (kept 14 days), the per-device result queues, the people table and the
//! bucket notification. (The worker's CloudWatch log group is the console's: it ships those
//! logs.)

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use rollcall_protocol::aws::{s3_client, sdk_message, AwsError, Names, SdkConfig, CLIPS_PREFIX};
use rollcall_protocol::store::ANSWERS_PREFIX;

/// Receives of one event message before SQS moves it to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 3;

/// How long the dead-letter queue keeps a message (14 days, the SQS maximum), in seconds.
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// Default days a clip stays in the bucket before the lifecycle rule deletes it.
pub const DEFAULT_CLIP_RETENTION_DAYS: u32 = 7;

/// Id of the bucket's lifecycle rule expiring clips.
pub const CLIP_EXPIRY_RULE: &str = "rollcall-expire-clips";

/// Id of the bucket's lifecycle rule expiring the answer ledger (`answers/`).
pub const ANSWER_EXPIRY_RULE: &str = "rollcall-expire-answers";

/// Days an answer-ledger entry (a clip version's claim and published result) is kept: long
/// enough for any redelivery of its event, short because results name people.
pub const ANSWER_RETENTION_DAYS: u32 = 1;

fn err(what: impl Into<String>) -> impl FnOnce(String) -> AwsError {
    let what = what.into();
    move |message| AwsError::new(what, message)
}

/// What [`provision`] created or found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Provisioned {
    /// The clips bucket.
    pub bucket: String,
    /// The clip-events queue.
    pub events_queue_url: String,
    /// Its ARN (what the bucket notification names).
    pub events_queue_arn: String,
    /// Its dead-letter queue.
    pub dlq_url: String,
    /// The people table.
    pub table: String,
    /// `(device, queue URL)`.
    pub result_queues: Vec<(String, String)>,
    /// Days after which clips expire from the bucket.
    pub clip_retention_days: u32,
}

/// Options of [`provision`].
#[derive(Clone, Debug)]
pub struct ProvisionOptions {
    /// Visibility timeout of the events queue (default 10 s, the worker's: `rollcall worker`
    /// extends it while a clip is in hand, so a dead worker's clips come back within seconds).
    pub visibility_timeout: Duration,
    /// Receives before a message goes to the DLQ (default [`MAX_RECEIVE_COUNT`]).
    pub max_receive_count: u32,
    /// Devices whose result queues are created.
    pub devices: Vec<String>,
    /// Days after which clips expire from the bucket (at least 1; default
    /// [`DEFAULT_CLIP_RETENTION_DAYS`]).
    pub clip_retention_days: u32,
    /// Seconds an unreceived result waits in a device's results queue before SQS deletes it
    /// (60 s to 14 days; default [`DEFAULT_RESULTS_RETENTION_SECS`]).
    pub results_retention_secs: u32,
}

/// Default of [`ProvisionOptions::results_retention_secs`]: SQS's own default, 4 days.
pub const DEFAULT_RESULTS_RETENTION_SECS: u32 = 4 * 24 * 3600;

impl Default for ProvisionOptions {
    fn default() -> Self {
        ProvisionOptions {
            visibility_timeout: crate::worker::DEFAULT_VISIBILITY,
            max_receive_count: MAX_RECEIVE_COUNT,
            devices: Vec::new(),
            clip_retention_days: DEFAULT_CLIP_RETENTION_DAYS,
            results_retention_secs: DEFAULT_RESULTS_RETENTION_SECS,
        }
    }
}

/// Create (idempotently) the bucket (public access blocked, SSE-S3 default encryption, clips
/// expiring after `clip_retention_days`), the clip-events queue + DLQ (redrive after
/// `max_receive_count` receives; the DLQ keeps messages 14 days), the per-device result queues,
/// the people table and the bucket notification (`ObjectCreated` under `clips/` -> events queue).
/// Queues use SQS-managed encryption.
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
        clip_retention_days: options.clip_retention_days.max(1),
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

    harden_bucket(&s3, &names.bucket, out.clip_retention_days).await?;

    // Queues.
    let encrypted = (QueueAttributeName::SqsManagedSseEnabled, "true".to_string());
    out.dlq_url = ensure_queue(
        &sqs,
        &names.events_dlq(),
        &[
            (
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            ),
            encrypted.clone(),
        ],
    )
    .await?;
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
            encrypted.clone(),
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
        rollcall_protocol::aws::validate_queue_name(&name).map_err(|reason| AwsError {
            what: format!("result queue for device {device:?}"),
            message: reason.to_string(),
        })?;
        // Results name people: an unreceived one is kept no longer than the retention.
        let retention = (
            QueueAttributeName::MessageRetentionPeriod,
            options
                .results_retention_secs
                .clamp(60, 14 * 24 * 3600)
                .to_string(),
        );
        let url = ensure_queue(&sqs, &name, &[encrypted.clone(), retention]).await?;
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

    Ok(out)
}

/// Block public access, encrypt by default (SSE-S3), expire clips after `retention_days` and the
/// answer ledger after [`ANSWER_RETENTION_DAYS`].
async fn harden_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    retention_days: u32,
) -> Result<(), AwsError> {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption,
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    let build = |what: &str| {
        let what = format!("{what} of bucket {bucket}");
        move |e: aws_sdk_s3::error::BuildError| AwsError::new(what, e.to_string())
    };
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| err(format!("block public access to bucket {bucket}"))(sdk_message(&e)))?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(build("default encryption"))?,
                )
                .build(),
        )
        .build()
        .map_err(build("default encryption"))?;
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .map_err(|e| err(format!("default encryption of bucket {bucket}"))(sdk_message(&e)))?;
    let expire = |id: &str, prefix: &str, days: u32| {
        LifecycleRule::builder()
            .id(id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .expiration(
                LifecycleExpiration::builder()
                    .days(i32::try_from(days).unwrap_or(i32::MAX))
                    .build(),
            )
            .build()
            .map_err(build("lifecycle rule"))
    };
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(expire(CLIP_EXPIRY_RULE, CLIPS_PREFIX, retention_days)?)
        .rules(expire(
            ANSWER_EXPIRY_RULE,
            ANSWERS_PREFIX,
            ANSWER_RETENTION_DAYS,
        )?)
        .build()
        .map_err(build("lifecycle rule"))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .map_err(|e| err(format!("lifecycle rule of bucket {bucket}"))(sdk_message(&e)))?;
    Ok(())
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
