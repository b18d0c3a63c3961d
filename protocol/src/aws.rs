//! What every AWS-side process shares (feature `aws`): SDK configuration and clients, resource
//! names, SDK error helpers, and the checks an edge makes before it uploads (bucket, queue).
//!
//! Every client uses the standard credential chain and region resolution of `aws-config` and
//! honours `AWS_ENDPOINT_URL` (e.g. a moto server); when an endpoint URL is set, S3 uses
//! path-style addressing (`http://host:port/bucket/key`).
//!
//! Backends here: [`crate::store::s3::S3ClipStore`], [`crate::results::sqs::SqsResultQueue`].
//! Event parsing: [`crate::events`]. Provisioning, the DynamoDB directory and the SQS worker loop
//! live in `rollcall-recognizer` (feature `aws`); CloudWatch log tails in the console.

pub use aws_config::SdkConfig;
pub use aws_sdk_s3::Client as S3Client;
pub use aws_sdk_sqs::Client as SqsClient;

use std::time::Duration;

/// Connect and request timeouts of every AWS call, and how often the SDK itself tries a call.
/// A black-holed link (packets dropped, nothing refused) then fails a call after
/// `connect` or `attempt` instead of hanging on the operating system's TCP timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP + TLS).
    pub connect: Duration,
    /// One attempt of a call, request upload and response included.
    pub attempt: Duration,
    /// A whole call, the SDK's own retries included.
    pub operation: Duration,
    /// Attempts per call by the SDK (1: no SDK retry; the caller retries and counts).
    pub max_attempts: u32,
}

impl Timeouts {
    /// Processes of the function side (worker, Lambda, provisioning, log tails): connect 3 s,
    /// attempt 30 s (an SQS long poll of 20 s fits), operation 90 s, the SDK's 3 attempts.
    pub const SERVICE: Timeouts = Timeouts {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(30),
        operation: Duration::from_secs(90),
        max_attempts: 3,
    };

    /// An edge device (clip uploads, short result polls): connect 3 s, attempt 10 s (a clip
    /// of a few hundred kB on a slow uplink), one attempt per call: the uploader retries with
    /// its own backoff for as long as it runs, and reports the outage while it lasts.
    pub const EDGE: Timeouts = Timeouts {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(10),
        operation: Duration::from_secs(10),
        max_attempts: 1,
    };
}

/// Load the SDK configuration: standard credential chain, region (default `us-east-1` when none
/// is configured), `AWS_ENDPOINT_URL`, [`Timeouts::SERVICE`].
pub async fn load_config() -> SdkConfig {
    load_config_with(Timeouts::SERVICE).await
}

/// [`load_config`] with other timeouts (an edge uses [`Timeouts::EDGE`]).
pub async fn load_config_with(timeouts: Timeouts) -> SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .operation_attempt_timeout(timeouts.attempt)
                .operation_timeout(timeouts.operation)
                .build(),
        )
        .retry_config(
            aws_config::retry::RetryConfig::standard().with_max_attempts(timeouts.max_attempts),
        )
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
    /// Prefix of every resource name.
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
        result_queue_name(&self.prefix, device_id)
    }
    /// The Lambda function's log group: `/aws/lambda/<prefix>-recognizer` (Lambda names it after
    /// the function, `<prefix>-recognizer`; the function's stdout lands there).
    pub fn lambda_log_group(&self) -> String {
        format!("/aws/lambda/{}-recognizer", self.prefix)
    }
    /// The log group `rollcall worker` ships its own logs to, one stream per worker instance:
    /// `/rollcall/<prefix>/worker` (created by `rollcall aws provision`).
    pub fn worker_log_group(&self) -> String {
        format!("/rollcall/{}/worker", self.prefix)
    }
}

/// The result queue name of a device: `<prefix>-results-<device_id>`.
pub fn result_queue_name(prefix: &str, device_id: &str) -> String {
    format!("{prefix}-results-{device_id}")
}

/// Checks an SQS standard queue name: 1-80 characters of `[A-Za-z0-9_-]`.
pub fn validate_queue_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 80 {
        return Err("an SQS queue name has 1 to 80 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("an SQS queue name has only letters, digits, '-' and '_'");
    }
    Ok(())
}

/// Prefix of clip object keys, the notification filter.
pub const CLIPS_PREFIX: &str = "clips/";

/// An AWS operation that failed: what was being done and the SDK's full message.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct AwsError {
    /// What was being done (`create queue rollcall-clip-events`, `bucket rollcall-clips`...).
    pub what: String,
    /// The service's or the SDK's message, with its context.
    pub message: String,
}

impl AwsError {
    /// An error about `what`.
    pub fn new(what: impl Into<String>, message: impl Into<String>) -> AwsError {
        AwsError {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// The message of an SDK error in one line, causes included: `dispatch failure: io error:
/// ... Connection refused (os error 111)`. The SDK's own `DisplayErrorContext` ends with a
/// `Debug` dump of the whole error (`(DispatchFailure(DispatchFailure { source: ...`), hundreds of
/// characters an operator cannot use: that goes to the debug log instead.
pub fn sdk_message<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    tracing::debug!(error = ?e, "AWS SDK error in full");
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some errors repeat their cause in their own message.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Whether an SDK error is worth retrying (network, timeout, 5xx, throttling).
pub fn sdk_retryable<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            // Some services throttle with a 400 and a code (SQS, DynamoDB).
            status >= 500 || status == 429 || s.err().code().is_some_and(is_throttling_code)
        }
        _ => false,
    }
}

/// AWS error codes that mean "slow down", whatever the HTTP status.
fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "SlowDown"
            | "RequestTimeout"
            | "RequestTimeoutException"
    )
}

fn err(what: impl Into<String>) -> impl FnOnce(String) -> AwsError {
    let what = what.into();
    move |message| AwsError::new(what, message)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        assert_eq!(
            result_queue_name("rollcall", "pi-lab-1"),
            "rollcall-results-pi-lab-1"
        );
        assert!(validate_queue_name("rollcall-results-pi_lab-1").is_ok());
        assert!(validate_queue_name("rollcall-results-pi.lab").is_err());
        assert!(validate_queue_name(&"x".repeat(81)).is_err());
        assert!(validate_queue_name("").is_err());
    }

    fn service_error(
        status: u16,
        code: &str,
    ) -> aws_sdk_s3::error::SdkError<
        aws_sdk_sqs::operation::send_message::SendMessageError,
        aws_sdk_s3::config::http::HttpResponse,
    > {
        let meta = aws_sdk_sqs::error::ErrorMetadata::builder()
            .code(code)
            .build();
        let raw = aws_sdk_s3::config::http::HttpResponse::new(
            status.try_into().expect("a valid status"),
            aws_sdk_s3::primitives::SdkBody::empty(),
        );
        aws_sdk_s3::error::SdkError::service_error(
            aws_sdk_sqs::operation::send_message::SendMessageError::generic(meta),
            raw,
        )
    }

    #[test]
    fn throttling_is_retried_whatever_its_status() {
        assert!(sdk_retryable(&service_error(503, "ServiceUnavailable")));
        assert!(sdk_retryable(&service_error(
            429,
            "TooManyRequestsException"
        )));
        assert!(sdk_retryable(&service_error(400, "ThrottlingException")));
        assert!(sdk_retryable(&service_error(400, "RequestThrottled")));
        assert!(!sdk_retryable(&service_error(403, "AccessDenied")));
        assert!(!sdk_retryable(&service_error(400, "InvalidParameterValue")));
    }
}
