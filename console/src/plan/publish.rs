//! `--publish mqtt://... | https://...`: the targets of a capture plan and the publisher that
//! the headless runner and the console feed with every received result and each session's
//! summary, whatever the backend (the edge publishes what it receives).
//!
//! Secrets come from the environment, never from a flag that `ps` would show:
//! `ROLLCALL_MQTT_USERNAME` / `ROLLCALL_MQTT_PASSWORD` for brokers whose URL has no
//! credentials, `ROLLCALL_WEBHOOK_SECRET` for the webhooks' HMAC-SHA256 signature.

#[cfg(feature = "publish")]
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rollcall_edge::publish::{PublishOptions, PublishStats, PublishTarget};
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::SessionReport;

/// Where events go and how: resolved from `--publish`, the config file and the environment.
#[derive(Clone, Debug, Default)]
pub struct PublishPlan {
    pub targets: Vec<PublishTarget>,
    pub options: PublishOptions,
}

impl PublishPlan {
    /// `targets` (flags win over the config file's `publish`) with the environment's broker
    /// credentials and webhook secret.
    ///
    /// Flags arrive as text, not parsed by clap: clap's error would echo the value, password
    /// and all, where [`PublishTarget::parse`]'s error shows it redacted.
    pub fn resolve(flags: &[String], config: Option<&[String]>) -> Result<PublishPlan> {
        let (texts, origin) = if flags.is_empty() {
            (config.unwrap_or_default(), "config file `publish`")
        } else {
            (flags, "--publish")
        };
        let mut targets = Vec::with_capacity(texts.len());
        for text in texts {
            targets.push(PublishTarget::parse(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?);
        }
        if let Ok(user) = std::env::var("ROLLCALL_MQTT_USERNAME") {
            let password = std::env::var("ROLLCALL_MQTT_PASSWORD").ok();
            targets = targets
                .iter()
                .map(|t| t.with_credentials(&user, password.as_deref()))
                .collect();
        }
        let options = PublishOptions {
            webhook_secret: std::env::var("ROLLCALL_WEBHOOK_SECRET")
                .ok()
                .filter(|s| !s.is_empty()),
            ..PublishOptions::default()
        };
        Ok(PublishPlan { targets, options })
    }
}

/// The running publisher of a headless run or a console (nothing without targets). Cloning
/// shares it.
#[derive(Clone, Default)]
pub struct Events {
    #[cfg(feature = "publish")]
    publisher: Option<Arc<rollcall_edge::publish::Publisher>>,
}

impl Events {
    /// Starts publishing to the plan's targets for `device`.
    pub fn start(plan: &PublishPlan, device: &str) -> Result<Events> {
        if plan.targets.is_empty() {
            return Ok(Events::default());
        }
        #[cfg(feature = "publish")]
        {
            let publisher = rollcall_edge::publish::Publisher::start(
                &plan.targets,
                device,
                plan.options.clone(),
            )?;
            Ok(Events {
                publisher: Some(Arc::new(publisher)),
            })
        }
        #[cfg(not(feature = "publish"))]
        {
            let _ = device;
            anyhow::bail!("this rollcall was built without the `publish` feature (--publish)")
        }
    }

    /// Queues the events of one received result (never blocks).
    pub fn on_result(&self, got: &ReceivedResult) {
        #[cfg(feature = "publish")]
        if let Some(p) = &self.publisher {
            p.publish_result(got);
        }
        #[cfg(not(feature = "publish"))]
        let _ = got;
    }

    /// Queues a finished session's summary.
    pub fn on_session_end(&self, report: &SessionReport, device: &str, session: &str) {
        #[cfg(feature = "publish")]
        if let Some(p) = &self.publisher {
            let summary = rollcall_edge::publish::event::SessionSummary::from_report(
                report,
                device,
                session,
                rollcall_edge::source::now_ns(),
            );
            p.publish_summary(&summary);
        }
        #[cfg(not(feature = "publish"))]
        let _ = (report, device, session);
    }

    /// Counters per target so far.
    pub fn stats(&self) -> Vec<PublishStats> {
        #[cfg(feature = "publish")]
        if let Some(p) = &self.publisher {
            return p.stats();
        }
        Vec::new()
    }

    /// Delivers what is queued (up to `timeout`), says `offline` and returns the final counters
    /// (the counters so far when a clone is still alive).
    pub fn shutdown(self, timeout: Duration) -> Vec<PublishStats> {
        #[cfg(feature = "publish")]
        if let Some(p) = self.publisher {
            return match Arc::try_unwrap(p) {
                Ok(publisher) => publisher.shutdown(timeout),
                Err(shared) => {
                    shared.flush(timeout);
                    shared.stats()
                }
            };
        }
        #[cfg(not(feature = "publish"))]
        let _ = timeout;
        Vec::new()
    }
}

/// `events: mqtt://broker/campus: 12 sent, 0 failed, 0 dropped (1 retried)`, one per target.
pub fn publish_lines(stats: &[PublishStats]) -> Vec<String> {
    stats
        .iter()
        .map(|s| {
            format!(
                "events: {}: {} sent, {} failed, {} dropped ({} retried)",
                s.target, s.sent, s.failed, s.dropped, s.retried
            )
        })
        .collect()
}

/// Counters of `now` minus those of `before` (the same targets, in order): one session's share.
pub fn stats_since(now: &[PublishStats], before: &[PublishStats]) -> Vec<PublishStats> {
    now.iter()
        .map(|n| match before.iter().find(|b| b.target == n.target) {
            Some(b) => PublishStats {
                target: n.target.clone(),
                sent: n.sent.saturating_sub(b.sent),
                failed: n.failed.saturating_sub(b.failed),
                dropped: n.dropped.saturating_sub(b.dropped),
                retried: n.retried.saturating_sub(b.retried),
            },
            None => n.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_targets_apply_when_no_flag_names_one() {
        let flag = "http://127.0.0.1:9/hook".to_string();
        let config = vec!["mqtt://broker/campus".to_string()];
        let plan = PublishPlan::resolve(std::slice::from_ref(&flag), Some(&config)).unwrap();
        assert_eq!(plan.targets, vec![PublishTarget::parse(&flag).unwrap()]);
        let plan = PublishPlan::resolve(&[], Some(&config)).unwrap();
        assert_eq!(plan.targets.len(), 1);
        assert!(plan.targets[0].to_string().starts_with("mqtt://"));
        let bad = vec!["gopher://x".to_string()];
        let err = PublishPlan::resolve(&[], Some(&bad)).unwrap_err();
        assert!(
            format!("{err:#}").contains("config file `publish`"),
            "{err:#}"
        );
    }

    #[test]
    fn a_sessions_share_of_the_counters() {
        let at = |sent, failed| PublishStats {
            target: "t".into(),
            sent,
            failed,
            dropped: 0,
            retried: 0,
        };
        assert_eq!(stats_since(&[at(10, 2)], &[at(4, 1)]), vec![at(6, 1)]);
        assert_eq!(
            publish_lines(&[at(6, 1)]),
            vec!["events: t: 6 sent, 1 failed, 0 dropped (0 retried)".to_string()]
        );
    }
}
