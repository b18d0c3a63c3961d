//! CloudWatch Logs (feature `aws`): [`CloudWatchLogTail`] reads a log group back,
//! [`CloudWatchLogShipper`] writes lines to a log stream, [`ensure_log_group`] provisions a group
//! with its retention.
//!
//! Tail: `FilterLogEvents` from a start time, following `nextToken`. Each poll asks again from a
//! little before the newest event seen (the lookback, default 10 s) because CloudWatch makes
//! events searchable seconds after they are logged, out of order across streams; the overlap is
//! removed by event id. Seen ids older than the window are forgotten and at most
//! [`MAX_SEEN_EVENTS`] are kept, so memory stays bounded on a busy group. An event that
//! becomes searchable later than the lookback after a newer one is missed.
//!
//! Shipper: a bounded channel in front of a background task, so logging never waits on the
//! network: when the channel is full the line is dropped and counted. The task sends
//! `PutLogEvents` batches (sorted by timestamp, at most [`MAX_BATCH_EVENTS`] events and
//! [`MAX_BATCH_BYTES`] bytes counting 26 bytes per event, within 24 h) at least every flush
//! interval, creates the stream if missing, retries what may succeed later, and keeps the
//! sequence token for services that still check it (moto ignores it, AWS no longer needs it).

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use tokio::sync::{mpsc, oneshot};

use crate::logs::{now_ms, LogError, LogFilter, LogLine};
use rollcall_protocol::aws::{sdk_message, sdk_retryable};

pub use aws_sdk_cloudwatchlogs::Client as LogsClient;

/// Largest `PutLogEvents` request: 1 MiB, counting [`EVENT_OVERHEAD_BYTES`] per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Most events in one `PutLogEvents` request.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// What CloudWatch adds to each message's UTF-8 length when counting a batch.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Longest message shipped, in bytes (256 KiB per event, overhead included); longer ones are cut.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 - EVENT_OVERHEAD_BYTES;
/// Longest time span of one batch.
const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Event ids a tail remembers at most.
pub const MAX_SEEN_EVENTS: usize = 50_000;
/// Pages one poll reads at most (the rest comes with the next poll).
const MAX_PAGES_PER_POLL: usize = 100;
/// Retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

type SdkError<E> =
    aws_sdk_cloudwatchlogs::error::SdkError<E, aws_sdk_cloudwatchlogs::config::http::HttpResponse>;

fn backend_error<E>(group: &str, operation: &'static str, e: &SdkError<E>) -> LogError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException") {
        return LogError::GroupNotFound {
            group: group.to_string(),
        };
    }
    LogError::Backend {
        group: group.to_string(),
        operation,
        message: sdk_message(e),
        retryable: sdk_retryable(e),
    }
}

/// Checks a log group name: 1-512 characters of `[A-Za-z0-9._/#-]`.
pub fn validate_group_name(name: &str) -> Result<(), LogError> {
    let invalid = |reason| LogError::Invalid {
        what: "log group name",
        value: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 512 {
        return Err(invalid("a log group name has 1 to 512 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._/#-".contains(&b))
    {
        return Err(invalid(
            "a log group name has only letters, digits and '.', '_', '/', '#', '-'",
        ));
    }
    Ok(())
}

/// Checks a log stream name: 1-512 characters, no `:` or `*`.
pub fn validate_stream_name(name: &str) -> Result<(), LogError> {
    let invalid = |reason| LogError::Invalid {
        what: "log stream name",
        value: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 512 {
        return Err(invalid("a log stream name has 1 to 512 characters"));
    }
    if name.contains([':', '*']) || name.chars().any(char::is_control) {
        return Err(invalid(
            "a log stream name has no ':', '*' or control characters",
        ));
    }
    Ok(())
}

/// `raw` made into a valid stream name: `:`, `*` and control characters become `-`, cut to 512
/// bytes; empty becomes `unnamed`.
pub fn sanitize_stream_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c == ':' || c == '*' || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect();
    truncate_at_char(&mut name, 512);
    if name.is_empty() {
        name.push_str("unnamed");
    }
    name
}

fn truncate_at_char(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Create the log group if it does not exist and set its retention (`None`: keep what it has).
/// Idempotent.
pub async fn ensure_log_group(
    client: &LogsClient,
    group: &str,
    retention_days: Option<i32>,
) -> Result<(), LogError> {
    validate_group_name(group)?;
    if let Some(days) = retention_days {
        if !RETENTION_DAYS.contains(&days) {
            return Err(LogError::Retention {
                group: group.to_string(),
                days,
            });
        }
    }
    match client.create_log_group().log_group_name(group).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) => {}
        Err(e) => return Err(backend_error(group, "CreateLogGroup", &e)),
    }
    if let Some(days) = retention_days {
        client
            .put_retention_policy()
            .log_group_name(group)
            .retention_in_days(days)
            .send()
            .await
            .map_err(|e| backend_error(group, "PutRetentionPolicy", &e))?;
    }
    Ok(())
}

/// The retention of a log group in days (`None`: never expires). What the tests read back.
#[cfg(test)]
pub async fn log_group_retention(
    client: &LogsClient,
    group: &str,
) -> Result<Option<i32>, LogError> {
    let out = client
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .map_err(|e| backend_error(group, "DescribeLogGroups", &e))?;
    out.log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .map(|g| g.retention_in_days())
        .ok_or_else(|| LogError::GroupNotFound {
            group: group.to_string(),
        })
}

/// Create the log stream if it does not exist ([`LogError::GroupNotFound`] when the group is
/// missing). Idempotent.
pub async fn ensure_log_stream(
    client: &LogsClient,
    group: &str,
    stream: &str,
) -> Result<(), LogError> {
    validate_stream_name(stream)?;
    match client
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(backend_error(group, "CreateLogStream", &e)),
    }
}

/// Event ids already returned, with their timestamps so old ones can be forgotten.
#[derive(Debug, Default)]
struct SeenEvents {
    ids: HashSet<String>,
    by_time: BTreeSet<(i64, String)>,
}

impl SeenEvents {
    /// Whether `id` is new (then it is remembered).
    fn insert(&mut self, timestamp_ms: i64, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        self.ids.insert(id.to_string());
        self.by_time.insert((timestamp_ms, id.to_string()));
        while self.ids.len() > MAX_SEEN_EVENTS {
            self.pop_oldest();
        }
        true
    }

    /// Forget ids older than `cutoff_ms`: a query from `cutoff_ms` cannot return them again.
    fn forget_before(&mut self, cutoff_ms: i64) {
        while self
            .by_time
            .first()
            .is_some_and(|(timestamp, _)| *timestamp < cutoff_ms)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, id)) = self.by_time.pop_first() {
            self.ids.remove(&id);
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// How far back a new tail starts by default.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(5 * 60);
/// How far before the newest event seen each poll asks again, by default.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(10);

/// Tails a CloudWatch Logs group; see the [module docs](self).
///
/// ```text
/// let mut tail = CloudWatchLogTail::new(LogsClient::new(config), "/rollcall/rollcall/worker")
///     .with_filter("WARN");
/// loop {
///     for line in tail.poll().await? {
///         println!("{line}");
///     }
///     tokio::time::sleep(std::time::Duration::from_secs(2)).await;
/// }
/// ```
#[derive(Debug)]
pub struct CloudWatchLogTail {
    client: LogsClient,
    group: String,
    filter: Option<LogFilter>,
    start_ms: i64,
    newest_ms: Option<i64>,
    lookback_ms: i64,
    page_size: Option<i32>,
    seen: SeenEvents,
}

impl CloudWatchLogTail {
    /// A tail of `group` starting [`DEFAULT_SINCE`] ago, no filter.
    pub fn new(client: LogsClient, group: impl Into<String>) -> Self {
        CloudWatchLogTail {
            client,
            group: group.into(),
            filter: None,
            start_ms: now_ms() - DEFAULT_SINCE.as_millis() as i64,
            newest_ms: None,
            lookback_ms: DEFAULT_LOOKBACK.as_millis() as i64,
            page_size: None,
            seen: SeenEvents::default(),
        }
    }

    /// Only lines containing `text` (case-sensitive). Empty: no filter.
    pub fn with_filter(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.filter = (!text.is_empty()).then_some(LogFilter::Contains(text));
        self
    }

    /// Only lines matching a CloudWatch filter pattern (passed through as is). Empty: no filter.
    pub fn with_filter_pattern(mut self, pattern: impl Into<String>) -> Self {
        let pattern = pattern.into();
        self.filter = (!pattern.trim().is_empty()).then_some(LogFilter::Pattern(pattern));
        self
    }

    /// Start `ago` before now.
    pub fn with_since(mut self, ago: Duration) -> Self {
        self.start_ms = now_ms() - ago.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Start at `timestamp_ms` (milliseconds since the Unix epoch).
    #[cfg(test)] // The binary never needs it; the moto tests steer with it.
    pub fn with_start_ms(mut self, timestamp_ms: i64) -> Self {
        self.start_ms = timestamp_ms;
        self
    }

    /// How far before the newest event seen each poll asks again (see the module docs).
    #[cfg(test)] // The binary never needs it; the moto tests steer with it.
    pub fn with_lookback(mut self, lookback: Duration) -> Self {
        self.lookback_ms = lookback.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Events per `FilterLogEvents` page (1-10,000; default: the service's, 10,000).
    #[cfg(test)] // The binary never needs it; the moto tests steer with it.
    pub fn with_page_size(mut self, events: i32) -> Self {
        self.page_size = Some(events.clamp(1, 10_000));
        self
    }

    /// Where the next query starts.
    fn window_start(&self) -> i64 {
        match self.newest_ms {
            Some(newest) => self.start_ms.max(newest - self.lookback_ms),
            None => self.start_ms,
        }
    }

    /// The filter pattern sent to CloudWatch: a substring is sent as a quoted term (the exact
    /// phrase) unless it has characters quoting cannot carry; it is checked here either way.
    fn server_pattern(&self) -> Option<String> {
        match &self.filter {
            Some(LogFilter::Pattern(pattern)) => Some(pattern.clone()),
            Some(LogFilter::Contains(text)) if !text.contains(['"', '\\']) => {
                Some(format!("\"{text}\""))
            }
            _ => None,
        }
    }

    /// The lines logged since the previous poll (the first: since the start), oldest first,
    /// each returned once.
    pub async fn poll(&mut self) -> Result<Vec<LogLine>, LogError> {
        let start = self.window_start();
        let pattern = self.server_pattern();
        let mut lines = Vec::new();
        let mut token: Option<String> = None;
        let mut newest = self.newest_ms;
        for _ in 0..MAX_PAGES_PER_POLL {
            let previous = token.take();
            let page = self
                .client
                .filter_log_events()
                .log_group_name(&self.group)
                .start_time(start)
                .set_filter_pattern(pattern.clone())
                .set_limit(self.page_size)
                .set_next_token(previous.clone())
                .send()
                .await
                .map_err(|e| backend_error(&self.group, "FilterLogEvents", &e))?;
            for event in page.events() {
                let timestamp = event.timestamp().unwrap_or(0);
                let source = event.log_stream_name().unwrap_or_default();
                let message = event.message().unwrap_or_default();
                newest = Some(newest.map_or(timestamp, |n| n.max(timestamp)));
                // moto and AWS always send ids; without one, the content is the identity.
                let id = match event.event_id() {
                    Some(id) => id.to_string(),
                    None => format!("{timestamp}/{source}/{message}"),
                };
                if !self.seen.insert(timestamp, &id) {
                    continue;
                }
                let message = message.strip_suffix('\n').unwrap_or(message);
                if self.filter.as_ref().is_some_and(|f| !f.matches(message)) {
                    continue;
                }
                let mut line = LogLine::new(timestamp, source, message);
                line.id = Some(id);
                lines.push(line);
            }
            match page.next_token() {
                // An unchanged token would loop forever.
                Some(next) if Some(next) != previous.as_deref() => token = Some(next.to_string()),
                _ => break,
            }
        }
        self.newest_ms = newest;
        self.seen.forget_before(self.window_start());
        lines.sort_by_key(|l| l.timestamp_ms);
        tracing::trace!(group = %self.group, new = lines.len(), remembered = self.seen.len(), "polled CloudWatch Logs");
        Ok(lines)
    }
}

/// How a [`CloudWatchLogShipper`] batches.
#[derive(Clone, Debug)]
pub struct ShipperOptions {
    /// Lines waiting at most; more are dropped (and counted). Default 10,000.
    pub capacity: usize,
    /// A batch waits at most this long. Default 1 s.
    pub flush_interval: Duration,
    /// Events per batch (at most [`MAX_BATCH_EVENTS`]).
    pub max_batch_events: usize,
    /// Bytes per batch, [`EVENT_OVERHEAD_BYTES`] per event included (at most
    /// [`MAX_BATCH_BYTES`]).
    pub max_batch_bytes: usize,
    /// Sends of one batch before its lines are given up (retryable failures only). Default 5.
    pub max_attempts: u32,
}

impl Default for ShipperOptions {
    fn default() -> Self {
        ShipperOptions {
            capacity: 10_000,
            flush_interval: Duration::from_secs(1),
            max_batch_events: MAX_BATCH_EVENTS,
            max_batch_bytes: MAX_BATCH_BYTES,
            max_attempts: 5,
        }
    }
}

/// Counters of a [`CloudWatchLogShipper`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShipperStats {
    /// Lines accepted by CloudWatch.
    pub shipped: u64,
    /// Lines dropped because the queue was full or the shipper had stopped.
    pub dropped: u64,
    /// Lines given up after a failed send, or rejected by CloudWatch (too old or too new).
    pub failed: u64,
    /// `PutLogEvents` requests that succeeded.
    pub batches: u64,
    /// The last send error, if the last send failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    shipped: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

enum Item {
    Line {
        timestamp_ms: i64,
        message: String,
    },
    #[cfg(test)]
    Flush(oneshot::Sender<Result<(), LogError>>),
    Shutdown(oneshot::Sender<()>),
}

/// Where lines go in: cheap to clone, never blocks; see [`CloudWatchLogShipper::sink`].
#[derive(Clone, Debug)]
pub struct LogSink {
    tx: mpsc::Sender<Item>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Line { timestamp_ms, .. } => write!(f, "Line({timestamp_ms})"),
            #[cfg(test)]
            Item::Flush(_) => f.write_str("Flush"),
            Item::Shutdown(_) => f.write_str("Shutdown"),
        }
    }
}

impl LogSink {
    /// Queue a line stamped now. False (and counted as dropped) when the queue is full or the
    /// shipper has stopped. Never blocks; callable from any thread, inside Tokio or not.
    pub fn send(&self, message: impl Into<String>) -> bool {
        self.send_at(now_ms(), message)
    }

    /// Queue a line with its own timestamp (milliseconds since the Unix epoch).
    pub fn send_at(&self, timestamp_ms: i64, message: impl Into<String>) -> bool {
        let mut message = message.into();
        // CloudWatch refuses empty messages; a trailing newline is the writer's, not the line's.
        if message.ends_with('\n') {
            message.pop();
        }
        if message.is_empty() {
            return true;
        }
        truncate_at_char(&mut message, MAX_MESSAGE_BYTES);
        match self.tx.try_send(Item::Line {
            timestamp_ms,
            message,
        }) {
            Ok(()) => true,
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Ships log lines to one CloudWatch Logs stream from a background task; see the
/// [module docs](self).
///
/// Call [`shutdown`](Self::shutdown) before the runtime stops to send what is queued.
#[derive(Debug)]
pub struct CloudWatchLogShipper {
    group: String,
    stream: String,
    sink: LogSink,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CloudWatchLogShipper {
    /// Start shipping to `group`/`stream` on the current Tokio runtime. The stream is created
    /// with the first batch if missing; the group must exist ([`ensure_log_group`]).
    pub fn spawn(
        client: LogsClient,
        group: impl Into<String>,
        stream: impl Into<String>,
        options: ShipperOptions,
    ) -> Result<CloudWatchLogShipper, LogError> {
        let group = group.into();
        let stream = stream.into();
        validate_group_name(&group)?;
        validate_stream_name(&stream)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| LogError::NoRuntime(e.to_string()))?;
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let shipping = Shipping {
            client,
            group: group.clone(),
            stream: stream.clone(),
            options: ShipperOptions {
                max_batch_events: options.max_batch_events.clamp(1, MAX_BATCH_EVENTS),
                max_batch_bytes: options
                    .max_batch_bytes
                    .clamp(MAX_MESSAGE_BYTES + EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES),
                flush_interval: options.flush_interval.max(Duration::from_millis(10)),
                max_attempts: options.max_attempts.max(1),
                ..options
            },
            counters: Arc::clone(&counters),
            stream_ready: false,
            sequence_token: None,
            failing: false,
        };
        let task = runtime.spawn(shipping.run(rx));
        Ok(CloudWatchLogShipper {
            group,
            stream,
            sink: LogSink { tx, counters },
            task: Some(task),
        })
    }

    /// The log group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The log stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// A handle to queue lines with (e.g. from a tracing writer).
    pub fn sink(&self) -> LogSink {
        self.sink.clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> ShipperStats {
        let c = &self.sink.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ShipperStats {
            shipped: l(&c.shipped),
            dropped: l(&c.dropped),
            failed: l(&c.failed),
            batches: l(&c.batches),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Send everything queued so far now; the error of the last batch if it failed.
    #[cfg(test)] // The binary never needs it; the moto tests steer with it.
    pub async fn flush(&self) -> Result<(), LogError> {
        let (reply, done) = oneshot::channel();
        let closed = || LogError::Closed {
            group: self.group.clone(),
        };
        self.sink
            .tx
            .send(Item::Flush(reply))
            .await
            .map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }

    /// Send what is queued (waiting at most `timeout`) and stop; later lines are dropped.
    pub async fn shutdown(mut self, timeout: Duration) -> ShipperStats {
        let (reply, done) = oneshot::channel();
        let stop = async {
            if self.sink.tx.send(Item::Shutdown(reply)).await.is_ok() {
                let _ = done.await;
            }
        };
        if tokio::time::timeout(timeout, stop).await.is_err() {
            tracing::debug!(group = %self.group, "log shipper: shutdown timed out");
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.stats()
    }
}

impl Drop for CloudWatchLogShipper {
    fn drop(&mut self) {
        // Without shutdown(): stop the task (a sink clone would keep it alive otherwise).
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Pending {
    timestamp_ms: i64,
    message: String,
}

/// The background task's state.
struct Shipping {
    client: LogsClient,
    group: String,
    stream: String,
    options: ShipperOptions,
    counters: Arc<Counters>,
    stream_ready: bool,
    sequence_token: Option<String>,
    /// Whether the last send failed (warn once per failure streak: a shipped warning about
    /// shipping would otherwise feed itself).
    failing: bool,
}

impl Shipping {
    async fn run(mut self, mut rx: mpsc::Receiver<Item>) {
        let mut batch: Vec<Pending> = Vec::new();
        let mut bytes = 0usize;
        let mut ticker = tokio::time::interval(self.options.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(Item::Line { timestamp_ms, message }) => {
                        let size = message.len() + EVENT_OVERHEAD_BYTES;
                        if batch.len() >= self.options.max_batch_events
                            || bytes + size > self.options.max_batch_bytes
                        {
                            let _ = self.ship(std::mem::take(&mut batch)).await;
                            bytes = 0;
                        }
                        batch.push(Pending { timestamp_ms, message });
                        bytes += size;
                    }
                    #[cfg(test)]
                    Some(Item::Flush(reply)) => {
                        let result = self.ship(std::mem::take(&mut batch)).await;
                        bytes = 0;
                        let _ = reply.send(result);
                    }
                    Some(Item::Shutdown(reply)) => {
                        let _ = self.ship(std::mem::take(&mut batch)).await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        let _ = self.ship(std::mem::take(&mut batch)).await;
                        return;
                    }
                },
                _ = ticker.tick() => {
                    if !batch.is_empty() {
                        let _ = self.ship(std::mem::take(&mut batch)).await;
                        bytes = 0;
                    }
                }
            }
        }
    }

    /// Send `lines` in as many requests as the limits need; the last error if any failed.
    async fn ship(&mut self, mut lines: Vec<Pending>) -> Result<(), LogError> {
        if lines.is_empty() {
            return Ok(());
        }
        // PutLogEvents wants chronological order; lines from several threads interleave.
        lines.sort_by_key(|l| l.timestamp_ms);
        let mut result = Ok(());
        let mut chunk: Vec<InputLogEvent> = Vec::new();
        let mut bytes = 0usize;
        let mut first_ms = 0i64;
        for line in lines {
            let size = line.message.len() + EVENT_OVERHEAD_BYTES;
            if !chunk.is_empty()
                && (chunk.len() >= self.options.max_batch_events
                    || bytes + size > self.options.max_batch_bytes
                    || line.timestamp_ms - first_ms > MAX_BATCH_SPAN_MS)
            {
                if let Err(e) = self.put(std::mem::take(&mut chunk)).await {
                    result = Err(e);
                }
                bytes = 0;
            }
            if chunk.is_empty() {
                first_ms = line.timestamp_ms;
            }
            match InputLogEvent::builder()
                .timestamp(line.timestamp_ms)
                .message(line.message)
                .build()
            {
                Ok(event) => {
                    chunk.push(event);
                    bytes += size;
                }
                Err(_) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !chunk.is_empty() {
            if let Err(e) = self.put(chunk).await {
                result = Err(e);
            }
        }
        result
    }

    /// One `PutLogEvents` request, retried while that may help.
    async fn put(&mut self, events: Vec<InputLogEvent>) -> Result<(), LogError> {
        let count = events.len() as u64;
        let outcome = self.put_with_retries(events).await;
        match &outcome {
            Ok(rejected) => {
                let rejected = (*rejected).min(count);
                self.counters
                    .shipped
                    .fetch_add(count - rejected, Ordering::Relaxed);
                self.counters.failed.fetch_add(rejected, Ordering::Relaxed);
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters.set_last_error(None);
                if self.failing {
                    self.failing = false;
                    tracing::info!(group = %self.group, stream = %self.stream, "shipping log lines to CloudWatch again");
                }
            }
            Err(e) => {
                self.counters.failed.fetch_add(count, Ordering::Relaxed);
                self.counters.set_last_error(Some(e.to_string()));
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(stream = %self.stream, error = %e, "cannot ship log lines to CloudWatch: dropping them until it works again");
                }
            }
        }
        outcome.map(|_| ())
    }

    /// Returns how many events CloudWatch rejected (too old or too new).
    async fn put_with_retries(&mut self, events: Vec<InputLogEvent>) -> Result<u64, LogError> {
        let mut attempt = 0u32;
        let mut recreated_stream = false;
        loop {
            attempt += 1;
            if !self.stream_ready {
                match ensure_log_stream(&self.client, &self.group, &self.stream).await {
                    Ok(()) => self.stream_ready = true,
                    Err(e) if e.is_retryable() && attempt < self.options.max_attempts => {
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let sent = self
                .client
                .put_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .set_log_events(Some(events.clone()))
                .set_sequence_token(self.sequence_token.clone())
                .send()
                .await;
            let e = match sent {
                Ok(out) => {
                    self.sequence_token = out.next_sequence_token().map(str::to_string);
                    return Ok(rejected_count(out.rejected_log_events_info(), events.len()));
                }
                Err(e) => e,
            };
            match e.as_service_error() {
                Some(PutLogEventsError::InvalidSequenceTokenException(s))
                    if attempt < self.options.max_attempts =>
                {
                    self.sequence_token = s.expected_sequence_token().map(str::to_string);
                    continue;
                }
                Some(PutLogEventsError::DataAlreadyAcceptedException(s)) => {
                    self.sequence_token = s.expected_sequence_token().map(str::to_string);
                    return Ok(0);
                }
                // The stream went away (deleted, or the group was re-created): once.
                Some(PutLogEventsError::ResourceNotFoundException(_)) if !recreated_stream => {
                    recreated_stream = true;
                    self.stream_ready = false;
                    self.sequence_token = None;
                    continue;
                }
                _ => {}
            }
            let error = backend_error(&self.group, "PutLogEvents", &e);
            if error.is_retryable() && attempt < self.options.max_attempts {
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return Err(error);
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// Events CloudWatch refused in an accepted request: those before `tooOldLogEventEndIndex`
/// (exclusive) or `expiredLogEventEndIndex`, and from `tooNewLogEventStartIndex` on.
fn rejected_count(
    info: Option<&aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo>,
    len: usize,
) -> u64 {
    let Some(info) = info else { return 0 };
    let len = len as i64;
    let old_end = info
        .too_old_log_event_end_index()
        .max(info.expired_log_event_end_index())
        .map_or(0, |i| i64::from(i).clamp(0, len));
    let new_start = info
        .too_new_log_event_start_index()
        .map_or(len, |i| i64::from(i).clamp(old_end, len));
    (old_end + (len - new_start)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_events_are_bounded_and_forgotten_by_time() {
        let mut seen = SeenEvents::default();
        assert!(seen.insert(10, "a"));
        assert!(!seen.insert(10, "a"));
        assert!(seen.insert(20, "b"));
        seen.forget_before(15);
        assert_eq!(seen.len(), 1);
        assert!(seen.insert(10, "a"), "forgotten");
        for i in 0..(MAX_SEEN_EVENTS + 10) {
            seen.insert(100 + i as i64, &i.to_string());
        }
        assert_eq!(seen.len(), MAX_SEEN_EVENTS);
        assert!(
            seen.insert(100, "0"),
            "the oldest went first, so it is new again"
        );
    }

    #[test]
    fn names() {
        assert!(validate_group_name("/rollcall/rollcall/worker").is_ok());
        assert!(validate_group_name("/aws/lambda/rollcall-recognizer").is_ok());
        assert!(validate_group_name("bad group").is_err());
        assert!(validate_group_name("").is_err());
        assert!(validate_stream_name("host-1234").is_ok());
        assert!(validate_stream_name("a:b").is_err());
        assert_eq!(sanitize_stream_name("host:1*2"), "host-1-2");
        assert_eq!(sanitize_stream_name(""), "unnamed");
        let long = "é".repeat(400);
        let cut = sanitize_stream_name(&long);
        assert!(cut.len() <= 512 && validate_stream_name(&cut).is_ok());
    }

    #[test]
    fn rejected_events_counted() {
        use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;
        assert_eq!(rejected_count(None, 5), 0);
        let info = RejectedLogEventsInfo::builder()
            .too_old_log_event_end_index(2)
            .too_new_log_event_start_index(4)
            .build();
        assert_eq!(rejected_count(Some(&info), 5), 3);
    }
}
