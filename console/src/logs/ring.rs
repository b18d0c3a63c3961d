//! The process's own log lines kept in memory, for the console's log panel.
//!
//! In the embedded deployment the recognition function is this process's worker pool, so "the
//! function's log tail" is this process's tracing output. [`RingLayer`] records every event that
//! passes its filter into a bounded [`LogRing`]; the console reads new lines with
//! [`LogRing::after`]. While the console owns the terminal, [`mute_stderr`] keeps the usual
//! stderr log writer from drawing over the screen.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::logs::{LogLevel, LogLine};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// One captured log line: the same [`LogLine`] a CloudWatch tail gives, numbered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedLine {
    /// Increasing number, for "what is new since".
    pub seq: u64,
    /// The line; `source` is the tracing target (e.g. `rollcall_recognizer::handler`) and
    /// `message` the event's message and fields, `message key=value ...`.
    pub line: LogLine,
}

/// A bounded buffer of the latest log lines.
pub struct LogRing {
    lines: Mutex<VecDeque<CapturedLine>>,
    capacity: usize,
    next_seq: AtomicU64,
}

impl LogRing {
    /// A ring keeping the last `capacity` lines.
    pub fn new(capacity: usize) -> LogRing {
        LogRing {
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
            next_seq: AtomicU64::new(1),
        }
    }

    /// Append a line (the oldest one goes when full).
    pub fn push(&self, level: Level, target: &str, text: String) {
        let now_ms = (rollcall_edge::source::now_ns() / 1_000_000) as i64;
        let line = CapturedLine {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            line: LogLine {
                timestamp_ms: now_ms,
                source: target.to_string(),
                message: text,
                level: Some(log_level(level)),
                id: None,
            },
        };
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The number of the latest line (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed) - 1
    }

    /// Lines with `seq > after`, oldest first.
    pub fn after(&self, after: u64) -> Vec<CapturedLine> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().filter(|l| l.seq > after).cloned().collect()
    }
}

fn log_level(level: Level) -> LogLevel {
    match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

/// The process-wide ring the console reads (installed by `main`).
pub fn global() -> &'static Arc<LogRing> {
    static RING: OnceLock<Arc<LogRing>> = OnceLock::new();
    RING.get_or_init(|| Arc::new(LogRing::new(2000)))
}

/// A tracing layer recording events into a [`LogRing`].
pub struct RingLayer {
    ring: Arc<LogRing>,
}

impl RingLayer {
    /// A layer writing into `ring`.
    pub fn new(ring: Arc<LogRing>) -> RingLayer {
        RingLayer { ring }
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        self.ring
            .push(*metadata.level(), metadata.target(), visitor.finish());
    }
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl LineVisitor {
    fn finish(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{} {}", self.message, self.fields),
        }
    }
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

static STDERR_MUTED: AtomicBool = AtomicBool::new(false);

/// Stop (or resume) writing log lines to stderr: the console's screen is on it.
pub fn mute_stderr(muted: bool) {
    STDERR_MUTED.store(muted, Ordering::Relaxed);
}

/// The stderr writer of the usual log output, silent while [`mute_stderr`] is on.
#[derive(Clone, Copy, Default)]
pub struct StderrUnlessMuted;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrUnlessMuted {
    type Writer = Box<dyn io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        if STDERR_MUTED.load(Ordering::Relaxed) {
            Box::new(io::sink())
        } else {
            Box::new(io::stderr())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn ring_keeps_the_latest_lines_in_order() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(Level::INFO, "t", format!("line {i}"));
        }
        let lines = ring.after(0);
        let texts: Vec<&str> = lines.iter().map(|l| l.line.message.as_str()).collect();
        assert_eq!(texts, ["line 2", "line 3", "line 4"]);
        let last = lines[1].seq;
        assert_eq!(ring.after(last).len(), 1);
    }

    #[test]
    fn layer_records_message_and_fields() {
        let ring = Arc::new(LogRing::new(10));
        let subscriber = tracing_subscriber::registry().with(RingLayer::new(Arc::clone(&ring)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                clip = "cam-1/s/00000001",
                total_ms = 41.5,
                "clip recognised"
            );
        });
        let lines = ring.after(0);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].line.level, Some(LogLevel::Warn));
        assert_eq!(
            lines[0].line.message,
            "clip recognised clip=cam-1/s/00000001 total_ms=41.5"
        );
    }
}
