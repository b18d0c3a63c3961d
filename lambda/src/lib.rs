//! The rollcall recognition function on AWS Lambda: S3 "object created" events, direct or
//! through an SQS queue, run the same [`RecognitionHandler`] as every other deployment, with the
//! AWS backends ([`S3ClipStore`], [`DynamoDirectory`], [`SqsResultQueue`]).
//!
//! - [`FunctionConfig::from_env`]: resource names and recognition settings from the function's
//!   environment (see the table there); models from a `ROLLCALL_HOME`-style directory, by default
//!   the deployment package itself (`$LAMBDA_TASK_ROOT/models`, `$LAMBDA_TASK_ROOT/runtime`).
//! - [`build_handler`]: the cold start: ONNX Runtime, the face models and the gallery, loaded
//!   once per sandbox.
//! - [`classify`] + [`invoke`]: one invocation. Events are parsed leniently by
//!   [`rollcall_protocol::events::clip_records`] (moto-style records, URL-encoded keys,
//!   `s3:TestEvent` ignored), record by record. For an SQS-triggered invocation the answer is a
//!   partial batch response (`batchItemFailures`) naming the messages to deliver again; for a
//!   direct S3 invocation it lists the results, and a malformed event is a [`FunctionError`].
//!
//! Clips that cannot be processed, and refused keys whose device can be read, are answered with
//! an error result on that device's queue (the handler does that) and are never retried. Only a
//! result that could not be published, an SQS message that is not a storage notification, or a
//! record naming no device fails: an SQS message is then named in `batchItemFailures` (so it
//! reaches the dead-letter queue, as with `rollcall worker`), a direct invocation fails (Lambda
//! retries it, then sends it to the dead-letter queue).
//!
//! The binary (`src/main.rs`) wires this into `lambda_runtime`;
//! `docs/deploy-aws.md` describes packaging and deployment.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lambda_runtime::Diagnostic;
use rollcall_models::ModelCache;
use rollcall_protocol::aws::{Names, SdkConfig};
use rollcall_protocol::events::{self, ClipRecord, EventParseError};
use rollcall_protocol::results::ResultQueue;
use rollcall_protocol::store::{ClipStore, DEFAULT_MAX_CLIP_BYTES};
use rollcall_recognizer::aws_handler::{aws_handler, AwsHandlerConfig};
use rollcall_recognizer::clip::SamplePolicy;
use rollcall_recognizer::directory::PeopleDirectory;
use rollcall_recognizer::handler::{
    default_instance_id, ClipOutcome, HandlerConfig, RecognitionHandler,
};
use rollcall_recognizer::runtime::ConvLayout;
use rollcall_recognizer::vision::{FacePipeline, PipelineOptions};
use serde_json::{json, Value};

pub use rollcall_recognizer::aws_handler::AwsHandler;

/// A setting of the function's environment that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Why it cannot be used.
    pub reason: String,
}

/// How the function runs, from its environment:
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `ROLLCALL_AWS_PREFIX` | `rollcall` | prefix of every resource name (as `rollcall aws provision`) |
/// | `ROLLCALL_BUCKET` | `<prefix>-clips` | clips bucket |
/// | `ROLLCALL_TABLE` | `<prefix>-people` | people table |
/// | `ROLLCALL_HOME` | `$LAMBDA_TASK_ROOT` when it holds `models/`, else the user cache | models (`models/`) and ONNX Runtime (`runtime/`) |
/// | `ROLLCALL_THRESHOLD` | calibrated at enrolment | fixed cosine match threshold |
/// | `ROLLCALL_MAX_CLIP_BYTES` | 8 MiB | largest clip fetched |
/// | `ROLLCALL_SAMPLE` | `auto` | frames analysed per clip (`auto`, `auto:N`, `all`, `every:K`) |
/// | `ROLLCALL_THREADS` | 1 | ONNX Runtime threads per inference |
/// | `ROLLCALL_CONV_LAYOUT` | `auto` | ONNX Runtime's convolution layout (`auto`: the embedder timed both ways at start, `blocked`, `plain`); a fixed value saves the timing at cold start |
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionConfig {
    /// Resource names (prefix and bucket); result queues are `<prefix>-results-<device>`.
    pub names: Names,
    /// The people table.
    pub table: String,
    /// The `ROLLCALL_HOME`-style directory holding `models/` and `runtime/`.
    pub model_dir: PathBuf,
    /// Fixed match threshold instead of the calibrated one.
    pub threshold: Option<f32>,
    /// Largest clip fetched and analysed.
    pub max_clip_bytes: usize,
    /// Frames analysed per clip.
    pub sample: SamplePolicy,
    /// ONNX Runtime threads per inference call.
    pub threads: usize,
    /// ONNX Runtime's convolution layout.
    pub conv_layout: ConvLayout,
    /// Reported in every result: the Lambda sandbox (`<function>-<log stream id>`).
    pub instance_id: String,
}

impl FunctionConfig {
    /// Read the process environment; see the [type docs](FunctionConfig).
    pub fn from_env() -> Result<FunctionConfig, ConfigError> {
        FunctionConfig::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Build from a variable lookup (`None` for unset or empty).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<FunctionConfig, ConfigError> {
        let prefix = var("ROLLCALL_AWS_PREFIX").unwrap_or_else(|| "rollcall".to_string());
        let mut names = Names::new(&prefix);
        if let Some(bucket) = var("ROLLCALL_BUCKET") {
            names.bucket = bucket;
        }
        let table = var("ROLLCALL_TABLE").unwrap_or_else(|| names.table());
        let model_dir = match var("ROLLCALL_HOME") {
            Some(dir) => PathBuf::from(dir),
            None => default_model_dir(var("LAMBDA_TASK_ROOT").as_deref().map(Path::new)).map_err(
                |e| ConfigError {
                    name: "ROLLCALL_HOME",
                    value: String::new(),
                    reason: e.to_string(),
                },
            )?,
        };
        let threshold = parse(&var, "ROLLCALL_THRESHOLD", |t: &f32| {
            (-1.0..=1.0).contains(t)
        })?;
        let max_clip_bytes = parse(&var, "ROLLCALL_MAX_CLIP_BYTES", |b: &usize| *b > 0)?
            .unwrap_or(DEFAULT_MAX_CLIP_BYTES);
        let threads =
            parse(&var, "ROLLCALL_THREADS", |t: &usize| (1..=64).contains(t))?.unwrap_or(1);
        let conv_layout =
            parse(&var, "ROLLCALL_CONV_LAYOUT", |_: &ConvLayout| true)?.unwrap_or_default();
        let sample = match var("ROLLCALL_SAMPLE") {
            Some(text) => {
                text.parse()
                    .map_err(
                        |e: rollcall_recognizer::clip::ParsePolicyError| ConfigError {
                            name: "ROLLCALL_SAMPLE",
                            value: text.clone(),
                            reason: e.to_string(),
                        },
                    )?
            }
            None => SamplePolicy::default(),
        };
        Ok(FunctionConfig {
            names,
            table,
            model_dir,
            threshold,
            max_clip_bytes,
            sample,
            threads,
            conv_layout,
            instance_id: instance_id(
                var("AWS_LAMBDA_FUNCTION_NAME").as_deref(),
                var("AWS_LAMBDA_LOG_STREAM_NAME").as_deref(),
            ),
        })
    }
}

/// `$LAMBDA_TASK_ROOT` when the deployment package carries the models, else the user cache.
fn default_model_dir(task_root: Option<&Path>) -> Result<PathBuf, rollcall_models::ModelsError> {
    match task_root {
        Some(root) if root.join("models").is_dir() => Ok(root.to_path_buf()),
        _ => ModelCache::from_env().map(|cache| cache.root().to_path_buf()),
    }
}

fn parse<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    valid: impl Fn(&T) -> bool,
) -> Result<Option<T>, ConfigError> {
    let Some(text) = var(name) else {
        return Ok(None);
    };
    match text.trim().parse::<T>() {
        Ok(value) if valid(&value) => Ok(Some(value)),
        _ => Err(ConfigError {
            name,
            value: text,
            reason: "not a valid value".to_string(),
        }),
    }
}

/// The sandbox's name in results: the function and the id part of its log stream
/// (`2026/11/26/[$LATEST]0a1b...` -> `<function>-0a1b...`), which is unique per sandbox.
fn instance_id(function: Option<&str>, log_stream: Option<&str>) -> String {
    let stream_id = log_stream.map(|s| s.rsplit(']').next().unwrap_or(s));
    match (function, stream_id) {
        (Some(function), Some(id)) if !id.is_empty() => format!("{function}-{id}"),
        _ => default_instance_id(),
    }
}

/// Why the cold start failed.
#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    /// The models or ONNX Runtime could not be loaded from the model directory.
    #[error("cannot load the face models from {} (models/ and runtime/ of `rollcall models fetch`)", dir.display())]
    Models {
        /// The `ROLLCALL_HOME`-style directory.
        dir: PathBuf,
        /// What failed (boxed: the recognizer's error is large).
        #[source]
        source: Box<rollcall_recognizer::RecognizerError>,
    },
    /// The people table could not be opened.
    #[error("people table {table}")]
    Directory {
        /// The table.
        table: String,
        /// What failed.
        #[source]
        source: rollcall_recognizer::directory::DirectoryError,
    },
}

impl FunctionConfig {
    /// The shared AWS handler configuration these settings describe.
    pub fn handler_config(&self) -> AwsHandlerConfig {
        AwsHandlerConfig {
            names: self.names.clone(),
            table: self.table.clone(),
            sample: self.sample,
            handler: HandlerConfig {
                max_clip_bytes: self.max_clip_bytes,
                threshold: self.threshold,
                instance_id: self.instance_id.clone(),
                ..HandlerConfig::default()
            },
        }
    }
}

/// The cold start: load ONNX Runtime and the models from `config.model_dir`, open the AWS
/// backends ([`aws_handler`], shared with `rollcall worker`) and load the gallery. Blocking (call
/// it from a blocking thread).
///
/// A gallery that cannot be loaded yet (table missing or unreachable) is only logged: the
/// handler loads it again on the first clip, whose result then names the problem.
pub fn build_handler(
    config: &FunctionConfig,
    sdk: &SdkConfig,
) -> Result<Arc<AwsHandler>, ColdStartError> {
    let started = Instant::now();
    let cache = ModelCache::at(&config.model_dir);
    let mut options = PipelineOptions::default();
    options.runtime.intra_threads = config.threads;
    options.runtime.conv_layout = config.conv_layout;
    let pipeline =
        FacePipeline::load(&cache, options).map_err(|source| ColdStartError::Models {
            dir: config.model_dir.clone(),
            source: Box::new(source),
        })?;
    let models_ms = started.elapsed().as_secs_f64() * 1e3;
    let handler =
        aws_handler(sdk, Arc::new(pipeline), &config.handler_config()).map_err(|source| {
            ColdStartError::Directory {
                table: config.table.clone(),
                source,
            }
        })?;
    match handler.warm_up() {
        Ok(people) => tracing::info!(
            people,
            table = %config.table,
            models_ms,
            init_ms = started.elapsed().as_secs_f64() * 1e3,
            "cold start: models and gallery loaded"
        ),
        Err(e) => tracing::warn!(
            table = %config.table,
            error = %e,
            "cold start: gallery not loaded; retried on the first clip"
        ),
    }
    Ok(Arc::new(handler))
}

/// One SQS message of an SQS-triggered invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct SqsMessage {
    /// `messageId`: what `batchItemFailures` names.
    pub message_id: Option<String>,
    /// The records of its body (none for an `s3:TestEvent`), or why the body is unusable.
    pub events: Result<Vec<ClipRecord>, EventParseError>,
}

/// What an invocation carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// An SQS trigger: S3 notifications, one per message.
    Sqs(Vec<SqsMessage>),
    /// A direct S3 trigger (or any envelope `events` unwraps): its records.
    Direct(Vec<ClipRecord>),
}

/// Sort an invocation payload: SQS records (every record's `eventSource` is `aws:sqs`) are
/// parsed message by message, so one bad message fails alone; anything else is parsed whole.
pub fn classify(payload: &Value) -> Result<Invocation, EventParseError> {
    let records = payload.get("Records").and_then(Value::as_array);
    let from_sqs = records.is_some_and(|records| {
        !records.is_empty()
            && records
                .iter()
                .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
    });
    match records {
        Some(records) if from_sqs => Ok(Invocation::Sqs(
            records
                .iter()
                .map(|record| SqsMessage {
                    message_id: record
                        .get("messageId")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    events: match record.get("body").and_then(Value::as_str) {
                        Some(body) => events::clip_records(body),
                        None => Err(EventParseError("SQS record without a body".into())),
                    },
                })
                .collect(),
        )),
        _ => events::clip_records(&payload.to_string()).map(Invocation::Direct),
    }
}

/// Why an invocation failed as a whole (what Lambda reports as `errorType` / `errorMessage`).
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// A direct invocation whose payload is not a storage notification.
    #[error("{0}")]
    MalformedEvent(#[from] EventParseError),
    /// Results that could not be published (retryable: the redelivery republishes them).
    #[error("{count} result(s) not published, first: {first}")]
    NotPublished {
        /// How many results.
        count: usize,
        /// The first one's reason.
        first: String,
    },
    /// An SQS message failed but has no `messageId` to name in `batchItemFailures`.
    #[error("SQS message without a messageId failed: {0}")]
    UnnamedMessage(String),
    /// Records whose key names no device: nobody can be told (the other records were answered;
    /// Lambda retries the event, then sends it to the dead-letter queue).
    #[error("{count} record(s) naming no device, first: {first}")]
    Unroutable {
        /// How many records.
        count: usize,
        /// The first one's reason.
        first: String,
    },
}

impl From<FunctionError> for Diagnostic {
    fn from(error: FunctionError) -> Diagnostic {
        let error_type = match &error {
            FunctionError::MalformedEvent(_) => "MalformedEvent",
            FunctionError::NotPublished { .. } => "ResultNotPublished",
            FunctionError::UnnamedMessage(_) => "UnnamedMessage",
            FunctionError::Unroutable { .. } => "UnroutableKey",
        };
        Diagnostic {
            error_type: error_type.to_string(),
            error_message: error.to_string(),
        }
    }
}

/// Run one record through the shared retry-or-drop decision and log what was recognised.
async fn handle_clip<S, D, Q>(
    handler: &Arc<RecognitionHandler<S, D, Q>>,
    record: ClipRecord,
) -> ClipOutcome
where
    S: ClipStore + 'static,
    D: PeopleDirectory + ?Sized + 'static,
    Q: ResultQueue + 'static,
{
    let outcome = handler.run_record(record).await;
    if let ClipOutcome::Published(result) = &outcome {
        tracing::info!(
            clip_id = %result.clip_id,
            people = ?result.people.iter().map(|p| p.person_id.as_str()).collect::<Vec<_>>(),
            unknown_faces = result.unknown_faces,
            error = result.error.as_deref().unwrap_or(""),
            total_ms = result.timings.total_ms,
            cold_start = result.cold_start,
            "clip recognised"
        );
    }
    outcome
}

/// Handle one invocation payload; see the [crate docs](crate).
///
/// - SQS: `{"batchItemFailures": [{"itemIdentifier": "<messageId>"}]}` naming every message
///   with an unusable body, a record naming no device, or a result that could not be published
///   (retryably).
/// - Direct: `{"results": [RecognitionResult...], "unpublished": ["<reason>"...]}`; a malformed
///   payload, a retryable publishing failure or a record naming no device is an error (Lambda
///   retries asynchronous invocations, then sends them to the dead-letter queue).
pub async fn invoke<S, D, Q>(
    handler: &Arc<RecognitionHandler<S, D, Q>>,
    payload: &Value,
) -> Result<Value, FunctionError>
where
    S: ClipStore + 'static,
    D: PeopleDirectory + ?Sized + 'static,
    Q: ResultQueue + 'static,
{
    let invocation = match classify(payload) {
        Ok(invocation) => invocation,
        Err(e) => {
            tracing::error!(error = %e, "malformed event");
            return Err(e.into());
        }
    };
    match invocation {
        Invocation::Sqs(messages) => {
            let mut failures = Vec::new();
            for message in messages {
                let id = message.message_id.clone();
                let failed = match message.events {
                    Err(e) => {
                        // Left for redelivery so the redrive policy moves it to the DLQ.
                        tracing::error!(message_id = id.as_deref().unwrap_or("?"), error = %e, "unusable SQS message: reported as a batch item failure");
                        Some(e.to_string())
                    }
                    Ok(records) => {
                        // Each record on its own; the message fails if any record must be
                        // delivered again or can never be answered (-> the dead-letter queue).
                        let mut failed = None;
                        for record in records {
                            match handle_clip(handler, record).await {
                                ClipOutcome::Published(_) => {}
                                ClipOutcome::Retry(reason) => {
                                    failed.get_or_insert(reason);
                                }
                                ClipOutcome::Dropped(reason) => {
                                    tracing::error!(message_id = id.as_deref().unwrap_or("?"), %reason, "record can never be answered: reported as a batch item failure (-> dead-letter queue)");
                                    failed.get_or_insert(reason);
                                }
                            }
                        }
                        failed
                    }
                };
                if let Some(reason) = failed {
                    match id {
                        Some(id) => failures.push(json!({ "itemIdentifier": id })),
                        None => return Err(FunctionError::UnnamedMessage(reason)),
                    }
                }
            }
            Ok(json!({ "batchItemFailures": failures }))
        }
        Invocation::Direct(records) => {
            let mut results = Vec::new();
            let mut retry = Vec::new();
            let mut dropped = Vec::new();
            let mut unroutable = Vec::new();
            for record in records {
                let refused = matches!(&record, ClipRecord::Refused(r) if r.device_id.is_none());
                match handle_clip(handler, record).await {
                    ClipOutcome::Published(result) => results.push(result),
                    ClipOutcome::Retry(reason) => retry.push(reason),
                    ClipOutcome::Dropped(reason) if refused => unroutable.push(reason),
                    ClipOutcome::Dropped(reason) => dropped.push(reason),
                }
            }
            if let Some(first) = retry.first() {
                return Err(FunctionError::NotPublished {
                    count: retry.len(),
                    first: first.clone(),
                });
            }
            if let Some(first) = unroutable.first() {
                return Err(FunctionError::Unroutable {
                    count: unroutable.len(),
                    first: first.clone(),
                });
            }
            Ok(json!({ "results": results, "unpublished": dropped }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn fixtures_classify() {
        let clip = |record: &ClipRecord| match record {
            ClipRecord::Clip(event) => event.clone(),
            other => panic!("{other:?}"),
        };
        match classify(&fixture("s3-put.json")).unwrap() {
            Invocation::Direct(records) => {
                assert_eq!(records.len(), 1);
                assert_eq!(clip(&records[0]).meta.device_id, "cam-lambda");
            }
            other => panic!("{other:?}"),
        }
        match classify(&fixture("s3-put-encoded-key.json")).unwrap() {
            Invocation::Direct(records) => {
                assert_eq!(records[0].key(), "clips/cam-lambda/s1/00000001.h264")
            }
            other => panic!("{other:?}"),
        }
        match classify(&fixture("s3-put-moto.json")).unwrap() {
            Invocation::Direct(records) => assert_eq!(clip(&records[0]).meta.seq, 2),
            other => panic!("{other:?}"),
        }
        match classify(&fixture("sqs-s3-put.json")).unwrap() {
            Invocation::Sqs(messages) => {
                assert_eq!(messages.len(), 3);
                assert_eq!(messages[0].events.as_ref().unwrap().len(), 1);
                assert!(
                    messages[1].events.as_ref().unwrap().is_empty(),
                    "test event"
                );
                assert!(messages[2].events.is_err(), "poison message");
                assert_eq!(messages[2].message_id.as_deref(), Some("msg-poison"));
            }
            other => panic!("{other:?}"),
        }
        assert!(classify(&fixture("s3-test-event.json"))
            .is_ok_and(|i| i == Invocation::Direct(Vec::new())));
        let malformed = classify(&fixture("malformed.json")).unwrap_err();
        assert!(malformed
            .to_string()
            .contains("unusable storage notification"));
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn config_from_vars() {
        let config = FunctionConfig::from_vars(vars(&[
            ("ROLLCALL_AWS_PREFIX", "rc-test"),
            ("ROLLCALL_HOME", "/opt/models"),
            ("ROLLCALL_THRESHOLD", "0.4"),
            ("AWS_LAMBDA_FUNCTION_NAME", "rollcall-recognize"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/26/[$LATEST]0a1b2c"),
        ]))
        .unwrap();
        assert_eq!(config.names.bucket, "rc-test-clips");
        assert_eq!(config.table, "rc-test-people");
        assert_eq!(config.model_dir, PathBuf::from("/opt/models"));
        assert_eq!(config.threshold, Some(0.4));
        assert_eq!(config.threads, 1);
        assert_eq!(config.conv_layout, ConvLayout::Auto);
        assert_eq!(config.instance_id, "rollcall-recognize-0a1b2c");

        // The deployment package's models win over the user cache.
        let task_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(task_root.path().join("models")).unwrap();
        let config = FunctionConfig::from_vars(vars(&[
            ("LAMBDA_TASK_ROOT", task_root.path().to_str().unwrap()),
            ("ROLLCALL_BUCKET", "my-clips"),
        ]))
        .unwrap();
        assert_eq!(config.model_dir, task_root.path());
        assert_eq!(config.names.bucket, "my-clips");
        assert_eq!(config.table, "rollcall-people");
        let config = FunctionConfig::from_vars(vars(&[
            ("ROLLCALL_HOME", "/x"),
            ("ROLLCALL_CONV_LAYOUT", "plain"),
        ]))
        .unwrap();
        assert_eq!(config.conv_layout, ConvLayout::Plain);

        for bad in [
            ("ROLLCALL_THRESHOLD", "2"),
            ("ROLLCALL_THREADS", "0"),
            ("ROLLCALL_SAMPLE", "sometimes"),
            ("ROLLCALL_MAX_CLIP_BYTES", "lots"),
            ("ROLLCALL_CONV_LAYOUT", "sideways"),
        ] {
            let error =
                FunctionConfig::from_vars(vars(&[("ROLLCALL_HOME", "/x"), bad])).unwrap_err();
            assert_eq!(error.name, bad.0);
        }
    }
}
