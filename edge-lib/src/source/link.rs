//! What a capture session shares with its source while it runs: when a source that can block
//! for long (a network camera reconnecting) should give up, and where it records the times it
//! was offline.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A stretch of time in which a source delivered no frames (a network camera that dropped and
/// was being reconnected).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// Wall clock of the last frame before the drop (or of the drop, without any frame), ns
    /// since the Unix epoch.
    pub start_ns: u64,
    /// Wall clock when frames came again; `None` while still offline (or when capture ended
    /// before the camera came back).
    pub end_ns: Option<u64>,
    /// Why the stream was lost (the first failure; never holds credentials).
    pub reason: String,
    /// Reconnection attempts that failed during the outage.
    pub failed_attempts: u32,
}

impl Outage {
    /// Length of the outage in seconds, up to `now_ns` while it lasts.
    pub fn seconds(&self, now_ns: u64) -> f64 {
        let end = self.end_ns.unwrap_or(now_ns);
        end.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// The outages of one session, shared between the source (which writes) and whoever shows the
/// session (which reads). Cloning shares the log.
#[derive(Clone, Default)]
pub struct OutageLog {
    outages: Arc<Mutex<Vec<Outage>>>,
}

impl fmt::Debug for OutageLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lock().iter()).finish()
    }
}

impl OutageLog {
    /// An empty log.
    pub fn new() -> OutageLog {
        OutageLog::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Outage>> {
        self.outages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the start of an outage (closing one still open, which should not happen).
    pub fn begin(&self, start_ns: u64, reason: impl Into<String>) {
        let mut outages = self.lock();
        if let Some(open) = outages.last_mut().filter(|o| o.end_ns.is_none()) {
            open.end_ns = Some(start_ns);
        }
        outages.push(Outage {
            start_ns,
            end_ns: None,
            reason: reason.into(),
            failed_attempts: 0,
        });
    }

    /// Counts a failed reconnection attempt of the open outage.
    pub fn attempt_failed(&self) {
        if let Some(open) = self.lock().last_mut().filter(|o| o.end_ns.is_none()) {
            open.failed_attempts += 1;
        }
    }

    /// Closes the open outage at `end_ns`; returns it.
    pub fn end(&self, end_ns: u64) -> Option<Outage> {
        let mut outages = self.lock();
        let open = outages.last_mut().filter(|o| o.end_ns.is_none())?;
        open.end_ns = Some(end_ns);
        Some(open.clone())
    }

    /// Every outage so far, oldest first.
    pub fn list(&self) -> Vec<Outage> {
        self.lock().clone()
    }

    /// How many outages there were so far (ended or not).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there was no outage so far.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Handed to a source by the session running it ([`FrameSource::link`](super::FrameSource::link)).
#[derive(Clone, Debug, Default)]
pub struct SourceLink {
    stop: Option<Arc<AtomicBool>>,
    deadline: Option<Instant>,
    outages: OutageLog,
}

impl SourceLink {
    /// A link that is interrupted when `stop` is raised or at `deadline`, recording into
    /// `outages`.
    pub fn new(stop: Arc<AtomicBool>, deadline: Option<Instant>, outages: OutageLog) -> SourceLink {
        SourceLink {
            stop: Some(stop),
            deadline,
            outages,
        }
    }

    /// Whether the session no longer wants frames (stop raised or deadline passed): a source
    /// waiting for a camera gives up and ends.
    pub fn interrupted(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Where the source records its outages.
    pub fn outages(&self) -> &OutageLog {
        &self.outages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn outages_open_and_close() {
        let log = OutageLog::new();
        assert!(log.is_empty());
        log.begin(1_000_000_000, "end of stream");
        log.attempt_failed();
        log.attempt_failed();
        assert_eq!(log.list()[0].end_ns, None);
        assert!((log.list()[0].seconds(3_500_000_000) - 2.5).abs() < 1e-9);
        let ended = log.end(36_000_000_000).unwrap();
        assert_eq!(ended.failed_attempts, 2);
        assert!((ended.seconds(0) - 35.0).abs() < 1e-9);
        assert!(log.end(40_000_000_000).is_none(), "nothing open");
        log.begin(50_000_000_000, "timeout");
        log.begin(60_000_000_000, "again");
        let list = log.list();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].end_ns, Some(60_000_000_000));
        assert_eq!(format!("{log:?}").matches("Outage").count(), 3);
    }

    #[test]
    fn link_is_interrupted_by_stop_or_deadline() {
        assert!(!SourceLink::default().interrupted());
        let stop = Arc::new(AtomicBool::new(false));
        let link = SourceLink::new(Arc::clone(&stop), None, OutageLog::new());
        assert!(!link.interrupted());
        stop.store(true, Ordering::Relaxed);
        assert!(link.interrupted());
        let past = Instant::now() - Duration::from_millis(1);
        let link = SourceLink::new(
            Arc::new(AtomicBool::new(false)),
            Some(past),
            OutageLog::new(),
        );
        assert!(link.interrupted());
    }
}
