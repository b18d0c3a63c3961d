//! The publisher: a runtime of its own, one bounded queue and one task per target.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::event::{EventKind, PersonSeen, SessionSummary};
use super::{mqtt, tls, webhook, PublishError, PublishOptions, PublishStats, PublishTarget};
use crate::receive::ReceivedResult;

/// One event on its way: its kind, its id and its JSON.
#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    pub kind: EventKind,
    pub id: String,
    pub body: Bytes,
}

/// A target's counters, shared with its task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
}

impl Counters {
    /// Queued events that are neither sent nor failed yet.
    fn pending(&self) -> u64 {
        let settled = self.sent.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        self.queued.load(Ordering::Relaxed).saturating_sub(settled)
    }

    fn stats(&self, target: &str) -> PublishStats {
        PublishStats {
            target: target.to_string(),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

struct Sink {
    shown: String,
    queue: Option<mpsc::Sender<Outbound>>,
    counters: Arc<Counters>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Publishes events to every target without ever blocking the caller (see the
/// [module docs](super)). Create one per device (the MQTT availability topic and client id are
/// the device's), feed it [`publish_result`](Publisher::publish_result) for every received
/// result and [`publish_summary`](Publisher::publish_summary) at the end of each session, and
/// [`shutdown`](Publisher::shutdown) it to deliver what is queued.
pub struct Publisher {
    runtime: Option<tokio::runtime::Runtime>,
    sinks: Vec<Sink>,
}

impl Publisher {
    /// Starts one task per target for `device`. Fails only when the runtime cannot start or TLS
    /// has no trusted certificates; unreachable targets are retried in the background.
    pub fn start(
        targets: &[PublishTarget],
        device: &str,
        options: PublishOptions,
    ) -> Result<Publisher, PublishError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("publish")
            .enable_all()
            .build()
            .map_err(PublishError::Runtime)?;
        let tls = match targets.iter().find(|t| t.uses_tls()) {
            Some(target) => Some(tls::client_config().map_err(|reason| PublishError::Tls {
                target: target.to_string(),
                reason,
            })?),
            None => None,
        };
        let sinks = targets
            .iter()
            .map(|target| {
                let (queue, receiver) = mpsc::channel(options.queue.max(1));
                let counters = Arc::new(Counters::default());
                let task = match target {
                    PublishTarget::Mqtt(mqtt) => runtime.spawn(mqtt::run(
                        mqtt.clone(),
                        device.to_string(),
                        tls.clone(),
                        receiver,
                        Arc::clone(&counters),
                        options.clone(),
                    )),
                    PublishTarget::Webhook(hook) => runtime.spawn(webhook::run(
                        hook.clone(),
                        tls.clone(),
                        receiver,
                        Arc::clone(&counters),
                        options.clone(),
                    )),
                };
                tracing::info!(target = %target, "publishing recognition events");
                Sink {
                    shown: target.to_string(),
                    queue: Some(queue),
                    counters,
                    task: Some(task),
                }
            })
            .collect();
        Ok(Publisher {
            runtime: Some(runtime),
            sinks,
        })
    }

    /// Queues one [`PersonSeen`] per person of the result (none for an error result).
    pub fn publish_result(&self, got: &ReceivedResult) {
        for event in PersonSeen::from_result(got) {
            self.enqueue(EventKind::PersonSeen, &event.id, &event);
        }
    }

    /// Queues a session's summary.
    pub fn publish_summary(&self, summary: &SessionSummary) {
        self.enqueue(EventKind::SessionSummary, &summary.id, summary);
    }

    fn enqueue(&self, kind: EventKind, id: &str, event: &impl Serialize) {
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(event = %id, error = %e, "event not serialisable; not published");
                return;
            }
        };
        let outbound = Outbound {
            kind,
            id: id.to_string(),
            body,
        };
        for sink in &self.sinks {
            let Some(queue) = &sink.queue else { continue };
            match queue.try_send(outbound.clone()) {
                Ok(()) => {
                    sink.counters.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let dropped = sink.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    // The first drop says so; then one line per hundred.
                    if dropped == 1 || dropped % 100 == 0 {
                        tracing::warn!(target = %sink.shown, dropped, "publishing fell behind: events dropped");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    sink.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counters per target so far.
    pub fn stats(&self) -> Vec<PublishStats> {
        self.sinks
            .iter()
            .map(|s| s.counters.stats(&s.shown))
            .collect()
    }

    /// Waits until every queued event is sent or failed, up to `timeout`; `false` on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.sinks.iter().all(|s| s.counters.pending() == 0) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Delivers what is queued (up to `timeout`), says `offline` on MQTT, closes the
    /// connections and returns the final counters; events still unsent count as failed.
    pub fn shutdown(mut self, timeout: Duration) -> Vec<PublishStats> {
        let until = Instant::now() + timeout;
        self.flush(timeout);
        for sink in &mut self.sinks {
            sink.queue = None;
        }
        if let Some(runtime) = self.runtime.take() {
            let tasks: Vec<_> = self
                .sinks
                .iter_mut()
                .filter_map(|s| s.task.take())
                .collect();
            runtime.block_on(async {
                for task in tasks {
                    let left = until.saturating_duration_since(Instant::now());
                    // Past the time limit the offline message still gets a moment.
                    let left = left.max(Duration::from_secs(2));
                    if tokio::time::timeout(left, task).await.is_err() {
                        tracing::debug!("a publishing task did not finish in time");
                    }
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        for sink in &self.sinks {
            let unsent = sink.counters.pending();
            if unsent > 0 {
                tracing::warn!(target = %sink.shown, unsent, "events not delivered before shutdown");
                sink.counters.failed.fetch_add(unsent, Ordering::Relaxed);
            }
        }
        self.stats()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropped without shutdown (an error path): stop at once, never block.
            runtime.shutdown_background();
        }
    }
}
