//! `bootstrap` of the rollcall Lambda function: cold start (models, backends, gallery) once per
//! sandbox, then `lambda_runtime` feeds it S3 or SQS-wrapped S3 events. See the library docs
//! ([`rollcall_lambda`]) for the environment and the responses.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use rollcall_lambda::{build_handler, invoke, FunctionConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = match cold_start().await {
        Ok(handler) => handler,
        Err(e) => {
            // Logged in full here: Lambda only reports that the runtime exited.
            tracing::error!(error = format!("{e:#}"), "cold start failed");
            return Err(e.into());
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = Arc::clone(&handler);
        async move {
            tracing::debug!(request_id = %event.context.request_id, "invocation");
            invoke(&handler, &event.payload).await
        }
    }))
    .await
}

/// Logs to stdout, which Lambda sends to CloudWatch Logs: JSON lines when the function's log
/// format is JSON (`AWS_LAMBDA_LOG_FORMAT`), else text; level from `RUST_LOG`, else
/// `AWS_LAMBDA_LOG_LEVEL`, else info. ONNX Runtime's own chatter (~20 "removing initializer"
/// warnings at every session load) is kept at error unless `RUST_LOG` asks for it.
fn init_logging() {
    use lambda_runtime::tracing::subscriber::{fmt, EnvFilter};
    let level = match std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "fatal" => "error".to_string(),
        "" => "info".to_string(),
        other => other.to_string(),
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},ort=error")))
        .unwrap_or_else(|_| EnvFilter::new("info,ort=error"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Lambda stamps every line itself.
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn cold_start() -> anyhow::Result<Arc<rollcall_lambda::AwsHandler>> {
    let config = FunctionConfig::from_env()?;
    tracing::info!(
        prefix = %config.names.prefix,
        bucket = %config.names.bucket,
        table = %config.table,
        models = %config.model_dir.display(),
        instance = %config.instance_id,
        "rollcall function starting"
    );
    let sdk = rollcall_protocol::aws::load_config().await;
    // Model loading and the directory's first calls block: keep them off the async threads.
    Ok(tokio::task::spawn_blocking(move || build_handler(&config, &sdk)).await??)
}
