//! Whether the edge reaches its object store and its result queue right now, since when it
//! does not, and how long it could not in total: what an operator needs to tell a network
//! outage from a slow function.
//!
//! The uploader reports every put attempt ([`LinkHealth::failed`] / [`LinkHealth::ok`] with
//! [`Link::Store`]), the result receiver every queue call ([`Link::Queue`]). The first failure
//! after a success starts an outage (logged once as a warning naming the error); the first
//! success ends it (logged with its length). Outage time counts while the store or the queue
//! (or both) is unreachable.
//!
//! ```
//! use std::time::Duration;
//! use rollcall_edge::link::{Link, LinkHealth};
//!
//! let health = LinkHealth::new();
//! health.failed(Link::Store, Duration::from_secs(10), "connection timed out");
//! health.retried();
//! let status = health.status();
//! assert!(status.store_down_since_ns.is_some() && status.retries == 1);
//! health.ok(Link::Store);
//! assert!(health.status().store_down_since_ns.is_none());
//! assert!(health.status().outage >= Duration::from_secs(10));
//! ```

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::source::now_ns;

/// A remote side of the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The object store the clips go to.
    Store,
    /// The result queue the answers come from.
    Queue,
}

impl Link {
    /// `store` or `queue`.
    pub fn name(self) -> &'static str {
        match self {
            Link::Store => "store",
            Link::Queue => "queue",
        }
    }
}

/// A point in time on both clocks: monotonic for lengths, wall clock for display.
#[derive(Clone, Copy, Debug)]
struct Since {
    at: Instant,
    wall_ns: u64,
}

impl Since {
    /// `ago` before now.
    fn ago(ago: Duration) -> Since {
        let now = Instant::now();
        Since {
            at: now.checked_sub(ago).unwrap_or(now),
            wall_ns: now_ns().saturating_sub(u64::try_from(ago.as_nanos()).unwrap_or(0)),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    store_down: Option<Since>,
    queue_down: Option<Since>,
    /// Start of the current outage (store or queue down).
    outage_start: Option<Instant>,
    /// Length of the outages that ended.
    outage_done: Duration,
    outages: u64,
    retries: u64,
    last_error: Option<String>,
}

impl State {
    fn slot(&mut self, link: Link) -> &mut Option<Since> {
        match link {
            Link::Store => &mut self.store_down,
            Link::Queue => &mut self.queue_down,
        }
    }
}

/// What [`LinkHealth::status`] says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStatus {
    /// Wall-clock ns since which the object store is unreachable (`None`: it is reachable).
    pub store_down_since_ns: Option<u64>,
    /// Wall-clock ns since which the result queue is unreachable.
    pub queue_down_since_ns: Option<u64>,
    /// The last error of the store or the queue, while one of them is down.
    pub last_error: Option<String>,
    /// Upload attempts that failed and were tried again.
    pub retries: u64,
    /// Total time the store or the queue was unreachable (the current outage included).
    pub outage: Duration,
    /// Outages so far (the current one included).
    pub outages: u64,
}

impl LinkStatus {
    /// Whether the store or the queue is unreachable now.
    pub fn is_down(&self) -> bool {
        self.store_down_since_ns.is_some() || self.queue_down_since_ns.is_some()
    }
}

/// Reachability of the store and the queue; see the [module docs](self). Shared by the
/// uploader's and the receiver's threads.
#[derive(Debug, Default)]
pub struct LinkHealth {
    state: Mutex<State>,
}

impl LinkHealth {
    /// Both sides reachable, nothing counted.
    pub fn new() -> LinkHealth {
        LinkHealth::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call to `link` failed with `error` after `took` (the link counts as down since the
    /// call started).
    pub fn failed(&self, link: Link, took: Duration, error: &str) {
        let mut s = self.lock();
        s.last_error = Some(error.to_string());
        if s.slot(link).is_some() {
            return;
        }
        let since = Since::ago(took);
        *s.slot(link) = Some(since);
        if s.outage_start.is_none() {
            s.outage_start = Some(since.at);
            s.outages += 1;
        }
        drop(s);
        tracing::warn!(link = link.name(), error, "{} unreachable", link.name());
    }

    /// A call to `link` succeeded.
    pub fn ok(&self, link: Link) {
        let mut s = self.lock();
        let Some(since) = s.slot(link).take() else {
            return;
        };
        let down_for = since.at.elapsed();
        if s.store_down.is_none() && s.queue_down.is_none() {
            if let Some(start) = s.outage_start.take() {
                let length = start.elapsed();
                s.outage_done += length;
            }
            s.last_error = None;
        }
        drop(s);
        tracing::info!(
            link = link.name(),
            down_s = down_for.as_secs_f64(),
            "{} reachable again",
            link.name()
        );
    }

    /// A failed upload is tried again.
    pub fn retried(&self) {
        self.lock().retries += 1;
    }

    /// The current state and totals.
    pub fn status(&self) -> LinkStatus {
        let s = self.lock();
        LinkStatus {
            store_down_since_ns: s.store_down.map(|d| d.wall_ns),
            queue_down_since_ns: s.queue_down.map(|d| d.wall_ns),
            last_error: s.last_error.clone(),
            retries: s.retries,
            outage: s.outage_done + s.outage_start.map_or(Duration::ZERO, |t| t.elapsed()),
            outages: s.outages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_store_and_queue_outages_count_once() {
        let health = LinkHealth::new();
        health.failed(Link::Store, Duration::from_millis(300), "timeout");
        health.failed(Link::Queue, Duration::ZERO, "timeout");
        health.failed(Link::Store, Duration::ZERO, "still down");
        let s = health.status();
        assert!(s.is_down());
        assert_eq!(s.outages, 1);
        assert_eq!(s.last_error.as_deref(), Some("still down"));
        let since = s.store_down_since_ns.unwrap();
        assert!(since <= s.queue_down_since_ns.unwrap());
        health.ok(Link::Store);
        assert!(health.status().is_down(), "the queue is still down");
        health.ok(Link::Queue);
        let s = health.status();
        assert!(!s.is_down() && s.last_error.is_none());
        assert!(s.outage >= Duration::from_millis(300), "{s:?}");
        let before = s.outage;
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(health.status().outage, before, "no outage, no time");
        health.failed(Link::Queue, Duration::ZERO, "again");
        assert_eq!(health.status().outages, 2);
    }
}
