//! `rollcall worker`'s own log lines shipped to CloudWatch Logs (`/rollcall/<prefix>/worker`,
//! one stream per instance): a tracing layer that stays dormant until the worker starts its
//! shipper.

use std::sync::OnceLock;

use rollcall_protocol::aws::{Names, SdkConfig};

use super::cloudwatch::{
    ensure_log_group, ensure_log_stream, sanitize_stream_name, CloudWatchLogShipper, LogSink,
    LogsClient, ShipperOptions,
};
use super::LogError;

/// Where `rollcall worker`'s log lines go besides stderr, once it starts shipping.
struct CloudWatchTarget {
    sink: LogSink,
    targets: tracing_subscriber::filter::Targets,
}

static CLOUDWATCH_TARGET: OnceLock<CloudWatchTarget> = OnceLock::new();

/// The tracing layer that forwards log lines to CloudWatch Logs: dormant (filtering everything
/// out) until `rollcall worker` starts its shipper, then rollcall's own lines at the worker's
/// `--cloudwatch-log-level` and other crates' warnings, formatted like stderr without colours or
/// time (CloudWatch stamps each event). Never blocks: see [`LogSink::send`].
pub fn cloudwatch_log_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_writer(CloudWatchWriter)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            CLOUDWATCH_TARGET
                .get()
                .is_some_and(|t| t.targets.would_enable(meta.target(), meta.level()))
        }))
}

/// Makes one [`CloudWatchLine`] per event.
struct CloudWatchWriter;

/// Collects one formatted event; queued for shipping when dropped.
struct CloudWatchLine(Vec<u8>);

impl std::io::Write for CloudWatchLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for CloudWatchLine {
    fn drop(&mut self) {
        if let Some(target) = CLOUDWATCH_TARGET.get() {
            // Trimmed: the level's padding and the newline are stderr layout.
            let line = String::from_utf8_lossy(&self.0);
            target.sink.send(line.trim());
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CloudWatchWriter {
    type Writer = CloudWatchLine;

    fn make_writer(&'a self) -> Self::Writer {
        CloudWatchLine(Vec::new())
    }
}

/// Start shipping this process's log lines to `/rollcall/<prefix>/worker`, stream
/// `instance_id`. `None` (with the reason on stderr) when that cannot work, e.g. the group was
/// never provisioned: the worker runs on without.
pub async fn start_log_shipping(
    sdk: &SdkConfig,
    names: &Names,
    instance_id: &str,
    level: tracing::Level,
) -> Option<CloudWatchLogShipper> {
    let client = LogsClient::new(sdk);
    let group = names.worker_log_group();
    let stream = sanitize_stream_name(instance_id);
    let started = match ensure_log_stream(&client, &group, &stream).await {
        Ok(()) => CloudWatchLogShipper::spawn(client, &group, &stream, ShipperOptions::default()),
        Err(e) => Err(e),
    };
    match started {
        Ok(shipper) => {
            let targets = tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("rollcall", level);
            let _ = CLOUDWATCH_TARGET.set(CloudWatchTarget {
                sink: shipper.sink(),
                targets,
            });
            Some(shipper)
        }
        Err(e) => {
            let hint = match e {
                LogError::GroupNotFound { .. } => format!(
                    " (create it with `rollcall aws provision --prefix {}`)",
                    names.prefix
                ),
                _ => String::new(),
            };
            eprintln!("rollcall worker: not shipping logs to CloudWatch: {e}{hint}");
            None
        }
    }
}

/// Create the worker's log group ([`Names::worker_log_group`]) if missing and set its retention
/// (days, one CloudWatch Logs accepts); returns the group. Part of `rollcall aws provision`.
pub async fn ensure_worker_log_group(
    sdk: &SdkConfig,
    names: &Names,
    retention_days: i32,
) -> Result<String, LogError> {
    let group = names.worker_log_group();
    ensure_log_group(&LogsClient::new(sdk), &group, Some(retention_days)).await?;
    Ok(group)
}
