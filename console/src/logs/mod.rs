//! Log lines of the recognition service, for operators: what the function (Lambda) and
//! `rollcall worker` wrote, and this process's own lines.
//!
//! - [`LogLine`], [`LogLevel`], [`LogFilter`]: one line, whatever wrote it.
//! - [`ring`]: this process's own lines (the embedded deployment's function is this process).
//! - [`cloudwatch`] (feature `aws`): [`cloudwatch::CloudWatchLogTail`] polls a CloudWatch Logs
//!   group, each line once (its overlapping reads are de-duplicated by event id with bounded
//!   memory); [`cloudwatch::CloudWatchLogShipper`] sends lines to one in batches from a background
//!   task; [`shipping`] is `rollcall worker`'s tracing layer in front of it.

use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(feature = "aws")]
pub mod cloudwatch;
#[cfg(all(test, feature = "aws"))]
mod cloudwatch_moto_tests;
pub mod ring;
#[cfg(feature = "aws")]
pub mod shipping;

/// The severity a line names, when it names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// Upper-case name, as tracing prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }

    /// A level name in any case (`warning` and `err` too).
    pub fn from_name(name: &str) -> Option<LogLevel> {
        match name.to_ascii_uppercase().as_str() {
            "ERROR" | "ERR" | "FATAL" => Some(LogLevel::Error),
            "WARN" | "WARNING" => Some(LogLevel::Warn),
            "INFO" => Some(LogLevel::Info),
            "DEBUG" => Some(LogLevel::Debug),
            "TRACE" => Some(LogLevel::Trace),
            _ => None,
        }
    }

    /// The level a log message names, if it names one: tracing's text format
    /// (`2026-01-01T00:00:00Z  INFO target: message`, `WARN target: message`), `[ERROR] ...`,
    /// `level=warn ...`, or a JSON object with a `level` field (tracing's JSON format, Lambda's
    /// JSON log format). Lambda's own `START`/`END`/`REPORT` lines name none.
    pub fn parse_from_message(message: &str) -> Option<LogLevel> {
        let trimmed = message.trim();
        if trimmed.starts_with('{') && trimmed.ends_with('}') {
            let value: serde_json::Value = serde_json::from_str(trimmed).ok()?;
            return value
                .get("level")
                .and_then(|l| l.as_str())
                .and_then(LogLevel::from_name);
        }
        // Only the first words: a level word later in a sentence is prose, not a level.
        for word in trimmed.split_whitespace().take(3) {
            if let Some(value) = word.strip_prefix("level=") {
                return LogLevel::from_name(value.trim_matches('"'));
            }
            let bare = word.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | ':'));
            // Bare words count in upper case only (`INFO`), so that `info` in prose does not.
            if bare.bytes().all(|b| b.is_ascii_uppercase()) {
                if let Some(level) = LogLevel::from_name(bare) {
                    return Some(level);
                }
            }
        }
        None
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One log line as read back from a backend.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// When it was logged, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Where it came from within the log: the CloudWatch log stream (a worker instance, a Lambda
    /// execution environment).
    pub source: String,
    /// The text, without a trailing newline.
    pub message: String,
    /// The level the message names, if it names one ([`LogLevel::parse_from_message`]).
    pub level: Option<LogLevel>,
    /// The backend's event id (de-duplication key), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl LogLine {
    /// A line with its level parsed from `message` and no id.
    pub fn new(timestamp_ms: i64, source: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        LogLine {
            timestamp_ms,
            source: source.into(),
            level: LogLevel::parse_from_message(&message),
            message,
            id: None,
        }
    }

    /// The message without what the console shows beside it: a leading timestamp and the level
    /// word (`2026-01-01T00:00:00Z  INFO rollcall::x: msg` -> `rollcall::x: msg`), so a line
    /// does not say `INFO  INFO`. Messages naming no bare level word are returned whole.
    pub fn text_without_level(&self) -> &str {
        let Some(level) = self.level else {
            return &self.message;
        };
        let mut rest = self.message.trim_start();
        for _ in 0..3 {
            let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..word_end];
            let bare = word.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | ':'));
            rest = rest[word_end..].trim_start();
            if bare == level.as_str() {
                return rest;
            }
        }
        &self.message
    }

    /// The timestamp as RFC 3339 UTC with milliseconds, e.g. `2026-11-26T21:00:00.123Z`.
    pub fn rfc3339(&self) -> String {
        crate::plan::durations::rfc3339_ns(
            (self.timestamp_ms.max(0) as u64).saturating_mul(1_000_000),
        )
    }
}

impl std::fmt::Display for LogLine {
    /// `<RFC 3339 time> <source> <message>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.rfc3339(), self.source, self.message)
    }
}

/// Which lines a tail returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFilter {
    /// Lines whose message contains this text (case-sensitive).
    Contains(String),
    /// A backend-native pattern, passed through as is (CloudWatch filter pattern syntax, e.g.
    /// `?ERROR ?WARN` or `{ $.level = "ERROR" }`).
    Pattern(String),
}

impl LogFilter {
    /// Whether a message passes the filter on this side (a [`LogFilter::Pattern`] is the
    /// backend's business: always true here).
    pub fn matches(&self, message: &str) -> bool {
        match self {
            LogFilter::Contains(text) => message.contains(text.as_str()),
            LogFilter::Pattern(_) => true,
        }
    }
}

/// Why reading or shipping log lines failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The log group does not exist (not provisioned, wrong prefix or region, or the Lambda
    /// function has not run yet).
    #[error("log group {group} does not exist")]
    GroupNotFound { group: String },
    /// A name or option the backend would refuse.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A retention period CloudWatch Logs does not offer.
    #[error("log group {group}: a log retention of {days} days is not offered (CloudWatch Logs accepts 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)")]
    Retention { group: String, days: i32 },
    /// The shipper's background task has stopped.
    #[cfg(test)]
    #[error("the log shipper for {group} has stopped")]
    Closed { group: String },
    /// The shipper was started outside a Tokio runtime.
    #[error("the log shipper needs a Tokio runtime: {0}")]
    NoRuntime(String),
    /// Any other backend failure (network, throttling, permissions...).
    #[error("{operation} on log group {group}: {message}")]
    Backend {
        group: String,
        operation: &'static str,
        message: String,
        retryable: bool,
    },
}

impl LogError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LogError::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parsed_from_common_formats() {
        let cases = [
            (
                "2026-11-26T21:00:00.123Z  INFO rollcall: worker started",
                Some(LogLevel::Info),
            ),
            (
                " WARN rollcall_recognizer::aws: receive failed",
                Some(LogLevel::Warn),
            ),
            ("[ERROR] boom", Some(LogLevel::Error)),
            ("level=debug msg=x", Some(LogLevel::Debug)),
            (
                r#"{"timestamp":"x","level":"TRACE","fields":{}}"#,
                Some(LogLevel::Trace),
            ),
            ("START RequestId: 1 Version: $LATEST", None),
            ("just some info about things", None),
            ("the clip was handled with an ERROR result", None),
            ("", None),
        ];
        for (message, level) in cases {
            assert_eq!(LogLevel::parse_from_message(message), level, "{message}");
        }
    }

    #[test]
    fn line_formatting() {
        let line = LogLine::new(1_764_190_800_123, "worker-1", " INFO x: hello");
        assert_eq!(line.level, Some(LogLevel::Info));
        assert_eq!(line.text_without_level(), "x: hello");
        let aws = LogLine::new(0, "w", "2026-01-01T00:00:00.1Z  WARN rollcall: slow");
        assert_eq!(aws.text_without_level(), "rollcall: slow");
        let plain = LogLine::new(0, "w", "START RequestId: 1");
        assert_eq!(plain.text_without_level(), "START RequestId: 1");
        assert_eq!(line.rfc3339(), "2025-11-26T21:00:00.123Z");
        assert_eq!(
            line.to_string(),
            "2025-11-26T21:00:00.123Z worker-1  INFO x: hello"
        );
    }

    #[test]
    fn filters() {
        assert!(LogFilter::Contains("clip".into()).matches("a clip event"));
        assert!(!LogFilter::Contains("Clip".into()).matches("a clip event"));
        assert!(LogFilter::Pattern("?ERROR".into()).matches("anything"));
    }
}
