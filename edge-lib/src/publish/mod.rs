//! Recognition events out: the edge publishes what it receives to the systems people already
//! run, an MQTT broker (`mqtt://`, `mqtts://`) or an HTTP webhook (`http://`, `https://`).
//!
//! - [`event`]: the JSON ([`PersonSeen`](event::PersonSeen) per recognised person per clip,
//!   [`SessionSummary`](event::SessionSummary) per session), shaped like Frigate's
//!   `tracked_object_update`.
//! - [`PublishTarget`]: where to, parsed from a URL; shows itself without secrets.
//! - `Publisher` (feature `publish`): one bounded queue and one task per target on a runtime of
//!   its own. Queuing never blocks: a full queue drops the event and counts it, so publishing
//!   never slows recognition down. MQTT: QoS 1 (each event acknowledged by the broker before the
//!   next), a retained `online`/`offline` availability topic with a last will, TLS and user name /
//!   password. Webhooks: POST JSON, retries with a doubling backoff, optional HMAC-SHA256
//!   signature. What was sent, failed or dropped is counted per target ([`PublishStats`]).

#![warn(missing_docs)]

pub mod event;
#[cfg(feature = "publish")]
mod mqtt;
#[cfg(feature = "publish")]
mod publisher;
#[cfg(feature = "publish")]
mod tls;
#[cfg(feature = "publish")]
mod webhook;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::redact::{percent_decode, redact_url, with_credentials, UrlParts};

#[cfg(feature = "publish")]
pub use publisher::Publisher;

/// MQTT topic prefix when the URL names none.
pub const DEFAULT_TOPIC_PREFIX: &str = "rollcall";

/// Where events go.
#[derive(Clone, PartialEq, Eq)]
pub enum PublishTarget {
    /// An MQTT broker.
    Mqtt(MqttTarget),
    /// An HTTP(S) endpoint receiving one POST per event.
    Webhook(WebhookTarget),
}

/// `mqtt://[user[:password]@]host[:port][/topic/prefix]` (`mqtts://` for TLS).
#[derive(Clone, PartialEq, Eq)]
pub struct MqttTarget {
    url: String,
    /// Broker host name or address.
    pub host: String,
    /// Broker port (default 1883, 8883 with TLS).
    pub port: u16,
    /// TLS (`mqtts://`), trusting the system's certificates.
    pub tls: bool,
    /// Topic prefix (default [`DEFAULT_TOPIC_PREFIX`]); events go to
    /// `<prefix>/tracked_object_update` and `<prefix>/session_summary`, availability to
    /// `<prefix>/<device>/available`.
    pub prefix: String,
    username: Option<String>,
    password: Option<String>,
}

/// `http(s)://[user:password@]host[:port]/path[?query]`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    url: String,
}

/// A publish target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The target URL is not one of the known forms.
    #[error("invalid publish target {target:?}: {reason} (expected mqtt://host[:port]/prefix, mqtts://..., http://... or https://...)")]
    InvalidTarget {
        /// The URL, redacted.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS cannot be set up (no usable trusted certificates).
    #[error("cannot set up TLS for {target}: {reason}")]
    Tls {
        /// The target, redacted.
        target: String,
        /// The underlying failure.
        reason: String,
    },
    /// The publisher's runtime could not start.
    #[error("cannot start the event publisher: {0}")]
    Runtime(#[source] std::io::Error),
}

impl PublishTarget {
    /// Parses `mqtt://`, `mqtts://`, `http://` or `https://` URLs.
    pub fn parse(text: &str) -> Result<PublishTarget, PublishError> {
        let text = text.trim();
        let invalid = |reason: &str| PublishError::InvalidTarget {
            target: redact_url(text),
            reason: reason.to_string(),
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("URLs cannot hold spaces or control characters"));
        }
        let parts = UrlParts::split(text).ok_or_else(|| invalid("not a URL with a host"))?;
        if parts.path().contains('@') {
            return Err(invalid(
                "'@' after the host: percent-encode '/' (%2F) and '@' (%40) in the password",
            ));
        }
        let host = parts.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let written_port = parts.host_port.rsplit_once(':').map(|(_, p)| p);
        if parts.port().is_none() && !parts.host_port.ends_with(']') && written_port.is_some() {
            return Err(invalid("the port is not a number from 1 to 65535"));
        }
        match parts.scheme.to_ascii_lowercase().as_str() {
            scheme @ ("mqtt" | "mqtts") => {
                let tls = scheme == "mqtts";
                if parts.rest.contains(['?', '#']) {
                    return Err(invalid("MQTT targets take no query or fragment"));
                }
                let prefix = parts.path().trim_matches('/');
                let prefix = if prefix.is_empty() {
                    DEFAULT_TOPIC_PREFIX.to_string()
                } else {
                    percent_decode(prefix)
                };
                if prefix.split('/').any(str::is_empty) || prefix.contains(['+', '#', '\0']) {
                    return Err(invalid(
                        "the topic prefix must be levels without '+', '#' or empty parts",
                    ));
                }
                let (username, password) = match parts.credentials() {
                    Some((user, password)) => (Some(user), password),
                    None => (None, None),
                };
                Ok(PublishTarget::Mqtt(MqttTarget {
                    url: text.to_string(),
                    host: host.to_string(),
                    port: parts
                        .port()
                        .filter(|p| *p != 0)
                        .unwrap_or(if tls { 8883 } else { 1883 }),
                    tls,
                    prefix,
                    username,
                    password,
                }))
            }
            "http" | "https" => Ok(PublishTarget::Webhook(WebhookTarget {
                url: text.to_string(),
            })),
            _ => Err(invalid("unknown scheme")),
        }
    }

    /// This target with `user` / `password` (from the environment, say) unless its URL has
    /// credentials of its own, which win.
    pub fn with_credentials(&self, user: &str, password: Option<&str>) -> PublishTarget {
        match self {
            PublishTarget::Mqtt(m) if m.username.is_none() && !user.is_empty() => {
                PublishTarget::Mqtt(MqttTarget {
                    url: with_credentials(&m.url, user, password),
                    username: Some(user.to_string()),
                    password: password.map(str::to_string),
                    ..m.clone()
                })
            }
            other => other.clone(),
        }
    }

    /// Whether the connection uses TLS.
    pub fn uses_tls(&self) -> bool {
        match self {
            PublishTarget::Mqtt(m) => m.tls,
            PublishTarget::Webhook(w) => w
                .url
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("https:")),
        }
    }
}

impl MqttTarget {
    /// User name and password for the broker, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.username
            .as_deref()
            .map(|user| (user, self.password.as_deref().unwrap_or("")))
    }

    /// `<prefix>/<device>/available`: retained `online` / `offline`.
    pub fn availability_topic(&self, device: &str) -> String {
        format!("{}/{device}/available", self.prefix)
    }

    /// `<prefix>/tracked_object_update` or `<prefix>/session_summary`.
    pub fn event_topic(&self, kind: event::EventKind) -> String {
        format!("{}/{}", self.prefix, kind.topic_name())
    }
}

impl WebhookTarget {
    /// The URL without its userinfo (for the request line) and the credentials for an
    /// `Authorization: Basic` header.
    #[cfg_attr(not(feature = "publish"), allow(dead_code))]
    fn request_parts(&self) -> (String, Option<(String, String)>) {
        match UrlParts::split(&self.url) {
            Some(parts) if parts.userinfo.is_some() => (
                format!("{}://{}{}", parts.scheme, parts.host_port, parts.rest),
                parts
                    .credentials()
                    .map(|(user, password)| (user, password.unwrap_or_default())),
            ),
            _ => (self.url.clone(), None),
        }
    }
}

impl fmt::Display for PublishTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishTarget::Mqtt(m) => f.write_str(&redact_url(&m.url)),
            // Webhook paths often are the secret (a Home Assistant webhook id): host only.
            PublishTarget::Webhook(w) => match UrlParts::split(&w.url) {
                Some(parts) => write!(f, "{}://{}/...", parts.scheme, parts.host_port),
                None => f.write_str("(webhook)"),
            },
        }
    }
}

impl fmt::Debug for PublishTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublishTarget({self})")
    }
}

impl std::str::FromStr for PublishTarget {
    type Err = PublishError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublishTarget::parse(s)
    }
}

/// How events are queued and retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOptions {
    /// Events waiting per target before new ones are dropped (default 256).
    pub queue: usize,
    /// Attempts per event before it counts as failed (default 5).
    pub attempts: u32,
    /// Wait after the first failed attempt, doubled after each (default 0.5 s)...
    pub retry_first: Duration,
    /// ...up to this (default 8 s).
    pub retry_max: Duration,
    /// Limit on one webhook request or one MQTT acknowledgement (default 10 s).
    pub timeout: Duration,
    /// Webhooks: the HMAC-SHA256 key of the `X-Rollcall-Signature` header (none: unsigned).
    pub webhook_secret: Option<String>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            queue: 256,
            attempts: 5,
            retry_first: Duration::from_millis(500),
            retry_max: Duration::from_secs(8),
            timeout: Duration::from_secs(10),
            webhook_secret: None,
        }
    }
}

impl PublishOptions {
    /// The wait after failed attempt `attempt` (from 0): doubling, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.retry_first
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.retry_max)
    }
}

/// What one target did with the events given to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishStats {
    /// The target, redacted.
    pub target: String,
    /// Events delivered (MQTT: acknowledged by the broker; webhook: a 2xx answer).
    pub sent: u64,
    /// Events given up on after their attempts, refused for good (a 4xx answer), or still
    /// unsent when the publisher shut down.
    pub failed: u64,
    /// Events not queued because the queue was full (the target fell behind).
    pub dropped: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_show_no_secrets() {
        let PublishTarget::Mqtt(m) =
            PublishTarget::parse("mqtt://ha:s3cret@broker.lan/campus/hall-a").unwrap()
        else {
            panic!("mqtt")
        };
        assert_eq!(
            (m.host.as_str(), m.port, m.tls),
            ("broker.lan", 1883, false)
        );
        assert_eq!(m.prefix, "campus/hall-a");
        assert_eq!(m.credentials(), Some(("ha", "s3cret")));
        assert_eq!(
            m.availability_topic("cam-1"),
            "campus/hall-a/cam-1/available"
        );
        assert_eq!(
            m.event_topic(event::EventKind::PersonSeen),
            "campus/hall-a/tracked_object_update"
        );
        let shown = PublishTarget::Mqtt(m).to_string();
        assert_eq!(shown, "mqtt://ha:***@broker.lan/campus/hall-a");

        let PublishTarget::Mqtt(m) = PublishTarget::parse("mqtts://[::1]:8884").unwrap() else {
            panic!("mqtts")
        };
        assert_eq!((m.host.as_str(), m.port, m.tls), ("::1", 8884, true));
        assert_eq!(m.prefix, DEFAULT_TOPIC_PREFIX);
        assert_eq!(m.credentials(), None);

        let hook =
            PublishTarget::parse("https://u:p@ha.local:8123/api/webhook/abc123?x=1").unwrap();
        assert!(hook.uses_tls());
        assert_eq!(hook.to_string(), "https://ha.local:8123/...");
        assert!(!format!("{hook:?}").contains("abc123"));
        let PublishTarget::Webhook(w) = &hook else {
            panic!("webhook")
        };
        assert_eq!(
            w.request_parts(),
            (
                "https://ha.local:8123/api/webhook/abc123?x=1".to_string(),
                Some(("u".to_string(), "p".to_string()))
            )
        );

        for bad in [
            "ftp://h/x",
            "mqtt://",
            "mqtt://h/a/+/b",
            "mqtt://h/a//b",
            "mqtt://h:99999/x",
            "mqtt://h/x?retain=1",
            "mqtt://u:pa/ss@h/x",
            "http://a b/",
        ] {
            let err = PublishTarget::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid publish target"), "{bad}: {err}");
            assert!(!err.contains("pa/ss"), "{err}");
        }
    }

    #[test]
    fn environment_credentials_only_fill_a_gap() {
        let bare = PublishTarget::parse("mqtt://broker/x").unwrap();
        let PublishTarget::Mqtt(m) = bare.with_credentials("ha", Some("pw@1")) else {
            panic!("mqtt")
        };
        assert_eq!(m.credentials(), Some(("ha", "pw@1")));
        assert_eq!(PublishTarget::Mqtt(m).to_string(), "mqtt://ha:***@broker/x");
        let own = PublishTarget::parse("mqtt://me:mine@broker/x").unwrap();
        assert_eq!(own.with_credentials("ha", Some("pw")), own);
    }

    #[test]
    fn retries_back_off_up_to_the_cap() {
        let o = PublishOptions::default();
        let waits: Vec<u128> = (0..6).map(|a| o.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 4000, 8000, 8000]);
    }
}
