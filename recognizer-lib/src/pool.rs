//! An autoscaling pool of worker threads with an unbounded backlog: what runs the recognition
//! function in-process (embedded deployment) and in `rollcall worker` processes.
//!
//! - **Grows with the backlog**: a submitted job that finds more jobs waiting than idle workers
//!   starts a new worker, up to [`PoolConfig::max_workers`].
//! - **Shrinks when idle**: a worker that found nothing to do for [`PoolConfig::idle_timeout`]
//!   exits, down to [`PoolConfig::min_workers`].
//! - **Loses nothing**: jobs wait in the backlog however many there are; [`WorkerPool::shutdown`]
//!   runs every job submitted before it. A panicking job is counted and the worker goes on.
//! - **Observable**: [`WorkerPool::stats`] gives size, busy workers, backlog and peaks.
//!
//! The pool knows nothing about clips: it calls one `Fn(J)` per job on its threads.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rollcall_recognizer::pool::{PoolConfig, WorkerPool};
//!
//! let done = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&done);
//! let pool = WorkerPool::start(PoolConfig::with_max_workers(2), move |n: usize| {
//!     counter.fetch_add(n, Ordering::Relaxed);
//! });
//! for n in 1..=10 {
//!     pool.submit(n);
//! }
//! assert!(pool.wait_idle(Duration::from_secs(10)));
//! assert_eq!(done.load(Ordering::Relaxed), 55);
//! assert!(pool.stats().peak_workers <= 2);
//! pool.shutdown();
//! ```

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a [`WorkerPool`] scales.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Workers kept even when idle (default 1).
    pub min_workers: usize,
    /// Most workers at once (at least 1; default: the machine's core count).
    pub max_workers: usize,
    /// How long a worker above `min_workers` waits for work before it exits (default 5 s).
    pub idle_timeout: Duration,
    /// Thread name prefix (default `"worker"`).
    pub name: String,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_workers: 1,
            max_workers: default_max_workers(),
            idle_timeout: Duration::from_secs(5),
            name: "worker".to_string(),
        }
    }
}

impl PoolConfig {
    /// The defaults with another `max_workers`.
    pub fn with_max_workers(max_workers: usize) -> PoolConfig {
        PoolConfig {
            max_workers,
            ..PoolConfig::default()
        }
    }
}

/// The machine's core count (1 if unknown).
pub fn default_max_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A snapshot of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Worker threads alive.
    pub workers: usize,
    /// Workers running a job.
    pub busy: usize,
    /// Jobs waiting for a worker.
    pub backlog: usize,
    /// Most workers alive at once so far.
    pub peak_workers: usize,
    /// Longest backlog so far.
    pub peak_backlog: usize,
    /// Jobs submitted so far.
    pub submitted: u64,
    /// Jobs finished (panicked ones included).
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Workers started so far.
    pub started: u64,
    /// Workers that exited because they were idle.
    pub retired: u64,
}

struct State<J> {
    queue: VecDeque<J>,
    idle: usize,
    closing: bool,
    stats: PoolStats,
}

struct Shared<J> {
    config: PoolConfig,
    state: Mutex<State<J>>,
    work: Condvar,
    done: Condvar,
    job: Box<dyn Fn(J) + Send + Sync>,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pool; see the [module docs](self). Dropping it is [`WorkerPool::shutdown`].
pub struct WorkerPool<J: Send + 'static> {
    shared: Arc<Shared<J>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl<J: Send + 'static> std::fmt::Debug for WorkerPool<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<J: Send + 'static> WorkerPool<J> {
    /// Start `config.min_workers` workers running `job` on each submitted job.
    pub fn start(config: PoolConfig, job: impl Fn(J) + Send + Sync + 'static) -> WorkerPool<J> {
        let mut config = config;
        config.max_workers = config.max_workers.max(1);
        config.min_workers = config.min_workers.min(config.max_workers);
        let pool = WorkerPool {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    closing: false,
                    stats: PoolStats::default(),
                }),
                work: Condvar::new(),
                done: Condvar::new(),
                job: Box::new(job),
            }),
            threads: Mutex::new(Vec::new()),
        };
        {
            let mut state = pool.shared.lock();
            for _ in 0..pool.shared.config.min_workers {
                pool.spawn(&mut state);
            }
        }
        pool
    }

    /// The configuration in use.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Queue a job; starts a worker when the backlog outgrows the idle workers. Never blocks on
    /// the backlog and never drops a job (after [`shutdown`](Self::shutdown) began, the job is
    /// run by the remaining workers before they exit).
    pub fn submit(&self, job: J) {
        let mut state = self.shared.lock();
        state.queue.push_back(job);
        state.stats.submitted += 1;
        state.stats.peak_backlog = state.stats.peak_backlog.max(state.queue.len());
        let short_of_workers = state.queue.len() > state.idle;
        if (short_of_workers || state.stats.workers == 0)
            && state.stats.workers < self.shared.config.max_workers
        {
            self.spawn(&mut state);
        }
        drop(state);
        self.shared.work.notify_one();
    }

    /// Size, backlog and counters now.
    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        PoolStats {
            backlog: state.queue.len(),
            ..state.stats
        }
    }

    /// Wait until no job is queued or running, or `timeout` passes; returns whether idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.queue.is_empty() && state.stats.busy == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .done
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Run every queued job, then stop and join the workers.
    pub fn shutdown(self) {
        drop(self);
    }

    fn close(&self) {
        let mut state = self.shared.lock();
        state.closing = true;
        if !state.queue.is_empty() && state.stats.workers == 0 {
            self.spawn(&mut state);
        }
        drop(state);
        self.shared.work.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a pool worker thread panicked");
            }
        }
    }

    fn spawn(&self, state: &mut State<J>) {
        let shared = Arc::clone(&self.shared);
        let n = state.stats.started;
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{n}", self.shared.config.name))
            .spawn(move || worker(&shared));
        match spawned {
            Ok(handle) => {
                state.stats.workers += 1;
                state.stats.started += 1;
                state.stats.peak_workers = state.stats.peak_workers.max(state.stats.workers);
                let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
                tracing::debug!(
                    workers = state.stats.workers,
                    backlog = state.queue.len(),
                    "pool grew"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot start a pool worker"),
        }
    }
}

impl<J: Send + 'static> Drop for WorkerPool<J> {
    fn drop(&mut self) {
        self.close();
    }
}

fn worker<J>(shared: &Shared<J>) {
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            state.stats.busy += 1;
            drop(state);
            let panicked = catch_unwind(AssertUnwindSafe(|| (shared.job)(job))).is_err();
            if panicked {
                tracing::error!("a pool job panicked; the worker goes on");
            }
            state = shared.lock();
            state.stats.busy -= 1;
            state.stats.completed += 1;
            state.stats.panicked += u64::from(panicked);
            if state.queue.is_empty() && state.stats.busy == 0 {
                shared.done.notify_all();
            }
            continue;
        }
        if state.closing {
            break;
        }
        state.idle += 1;
        let (next, timeout) = shared
            .work
            .wait_timeout(state, shared.config.idle_timeout)
            .unwrap_or_else(|p| p.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out()
            && state.queue.is_empty()
            && !state.closing
            && state.stats.workers > shared.config.min_workers
        {
            state.stats.retired += 1;
            tracing::debug!(
                workers = state.stats.workers - 1,
                "idle pool worker retired"
            );
            break;
        }
    }
    state.stats.workers -= 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn panics_are_counted_and_the_pool_goes_on() {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        let pool = WorkerPool::start(PoolConfig::with_max_workers(1), move |n: u32| {
            if n == 2 {
                panic!("job {n}");
            }
            r.fetch_add(1, Ordering::Relaxed);
        });
        for n in 0..5 {
            pool.submit(n);
        }
        assert!(pool.wait_idle(Duration::from_secs(5)));
        let stats = pool.stats();
        assert_eq!((stats.completed, stats.panicked), (5, 1));
        assert_eq!(ran.load(Ordering::Relaxed), 4);
    }

    /// Jobs that block until released, to hold workers busy.
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
    }

    impl Gate {
        fn new() -> Arc<Gate> {
            Arc::new(Gate {
                open: Mutex::new(false),
                cv: Condvar::new(),
            })
        }
        fn wait(&self) {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
        }
        fn release(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn grows_under_backlog_up_to_the_limit_and_shrinks_when_idle() {
        let gate = Gate::new();
        let g = Arc::clone(&gate);
        let pool = WorkerPool::start(
            PoolConfig {
                min_workers: 1,
                max_workers: 4,
                idle_timeout: Duration::from_millis(100),
                name: "test".into(),
            },
            move |_: u32| g.wait(),
        );
        assert_eq!(pool.stats().workers, 1);
        for n in 0..10 {
            pool.submit(n);
        }
        wait_for("4 busy workers", Duration::from_secs(5), || {
            pool.stats().busy == 4
        });
        let busy = pool.stats();
        assert_eq!(busy.workers, 4, "{busy:?}");
        assert_eq!(busy.backlog, 6, "{busy:?}");
        assert_eq!(busy.peak_workers, 4);
        assert!(busy.peak_backlog >= 6, "{busy:?}");
        gate.release();
        assert!(pool.wait_idle(Duration::from_secs(5)));
        assert_eq!(pool.stats().completed, 10);
        // Idle for longer than the timeout: back to the minimum.
        wait_for("shrinking to 1 worker", Duration::from_secs(5), || {
            pool.stats().workers == 1
        });
        let idle = pool.stats();
        assert_eq!(idle.retired, 3, "{idle:?}");
        assert_eq!((idle.busy, idle.backlog), (0, 0));
        // And works again (the gate stays open).
        pool.submit(11);
        assert!(pool.wait_idle(Duration::from_secs(5)));
        assert_eq!(pool.stats().completed, 11);
    }

    #[test]
    fn a_saturated_pool_loses_nothing() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let d = Arc::clone(&done);
        let pool = WorkerPool::start(PoolConfig::with_max_workers(1), move |n: u32| {
            std::thread::sleep(Duration::from_micros(200));
            d.lock().unwrap().push(n);
        });
        for n in 0..500 {
            pool.submit(n);
        }
        let stats = pool.stats();
        assert_eq!(stats.workers, 1);
        assert!(stats.backlog > 100, "{stats:?}");
        assert!(pool.wait_idle(Duration::from_secs(30)));
        assert_eq!(pool.stats().peak_workers, 1);
        let done = done.lock().unwrap().clone();
        assert_eq!(done, (0..500).collect::<Vec<_>>(), "all, in order, once");
    }

    #[test]
    fn shutdown_runs_the_backlog() {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        let pool = WorkerPool::start(
            PoolConfig {
                min_workers: 0,
                ..PoolConfig::with_max_workers(1)
            },
            move |_: u32| {
                std::thread::sleep(Duration::from_millis(2));
                r.fetch_add(1, Ordering::Relaxed);
            },
        );
        for n in 0..20 {
            pool.submit(n);
        }
        pool.shutdown();
        assert_eq!(ran.load(Ordering::Relaxed), 20);
    }
}
