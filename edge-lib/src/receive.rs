//! Results in: [`RecognitionResult`]s from the result queue, duplicates dropped by clip id,
//! latency recorded.
//!
//! Queues deliver at least once, so the same clip's result may arrive twice (a redelivered
//! event, an unacknowledged message). [`ResultReceiver`] remembers the clip ids it accepted and
//! drops repeats. For every accepted result it records into its [`LatencyRecorder`]:
//!
//! - [`Stage::EndToEnd`]: arrival here minus [`closed_ns`](RecognitionResult::closed_ns) (the
//!   clip's close at the edge), every result;
//! - [`Stage::Delivery`]: arrival minus [`completed_ns`](RecognitionResult::completed_ns);
//! - the function's stages ([`Stage::FunctionTotal`], [`Stage::Decode`], [`Stage::Detect`],
//!   [`Stage::Embed`], [`Stage::Lookup`]) from its timings, for results without error.
//!
//! Wall-clock differences between two machines are only as good as their clock sync; a negative
//! span is not recorded.
//!
//! [`ResultPump`] runs a receiver on its own thread: it polls the queue until stopped, removes
//! each answered clip from the spool, and acknowledges deliveries only after that, so a crash in
//! between gets the result delivered again instead of losing it.

#![warn(missing_docs)]

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rollcall_protocol::results::{QueueError, ResultQueue};
use rollcall_protocol::wire::RecognitionResult;

use crate::latency::{LatencyRecorder, Stage};
use crate::link::{Link, LinkHealth};
use crate::source::now_ns;
use crate::spool::ClipSpool;

/// Clip ids remembered for duplicate detection by default.
pub const DEFAULT_REMEMBERED: usize = 100_000;

/// A result accepted by a [`ResultReceiver`] (the first of its clip).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedResult {
    /// The result as the function sent it.
    pub result: RecognitionResult,
    /// When it arrived, ns since the Unix epoch.
    pub received_ns: u64,
    /// Clip closed at the edge -> result arrived; `None` when the clocks disagree.
    pub end_to_end: Option<Duration>,
}

/// Counters of a receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Distinct clips with a result.
    pub accepted: u64,
    /// Of those, results with `error` set.
    pub errors: u64,
    /// Repeated results dropped.
    pub duplicates: u64,
    /// Results for another device, dropped.
    pub foreign: u64,
}

/// Accepts results for one device; see the [module docs](self).
///
/// ```
/// use rollcall_edge::latency::Stage;
/// use rollcall_edge::receive::ResultReceiver;
/// # use rollcall_protocol::wire::{ClipMeta, RecognitionResult};
/// # let meta: ClipMeta = serde_json::from_str(r#"{"device_id":"pi-1","session_id":"s1","seq":3,
/// #   "first_frame_ns":0,"last_frame_ns":0,"closed_ns":1000000000,"fps":30.0,"width":640,
/// #   "height":480,"frame_count":15,"codec":"h264-annexb"}"#).unwrap();
/// let mut receiver = ResultReceiver::new("pi-1");
/// let mut result = RecognitionResult::empty_for(&meta);
/// result.completed_ns = 1_050_000_000;
/// let first = receiver.accept(result.clone(), 1_070_000_000).unwrap();
/// assert_eq!(first.end_to_end, Some(std::time::Duration::from_millis(70)));
/// assert!(receiver.accept(result, 1_090_000_000).is_none(), "duplicate dropped");
/// assert_eq!(receiver.stats().duplicates, 1);
/// assert_eq!(receiver.latency().count(Stage::EndToEnd), 1);
/// ```
#[derive(Debug)]
pub struct ResultReceiver {
    device_id: String,
    seen: HashSet<String>,
    order: VecDeque<String>,
    remembered: usize,
    latency: LatencyRecorder,
    stats: ReceiverStats,
}

impl ResultReceiver {
    /// A receiver for `device_id`'s results, remembering [`DEFAULT_REMEMBERED`] clip ids.
    pub fn new(device_id: impl Into<String>) -> ResultReceiver {
        ResultReceiver {
            device_id: device_id.into(),
            seen: HashSet::new(),
            order: VecDeque::new(),
            remembered: DEFAULT_REMEMBERED,
            latency: LatencyRecorder::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// The device whose results are accepted.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Latency of the accepted results.
    pub fn latency(&self) -> &LatencyRecorder {
        &self.latency
    }

    /// Counters so far.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Whether a result for `clip_id` was accepted (among the remembered ones).
    pub fn has_result(&self, clip_id: &str) -> bool {
        self.seen.contains(clip_id)
    }

    /// Take one result that arrived at `received_ns`: `None` for a duplicate or another device's
    /// result, else the accepted result with its end-to-end latency (recorded).
    pub fn accept(
        &mut self,
        result: RecognitionResult,
        received_ns: u64,
    ) -> Option<ReceivedResult> {
        if result.device_id != self.device_id {
            self.stats.foreign += 1;
            tracing::warn!(clip = %result.clip_id, device = %self.device_id, "result for another device dropped");
            return None;
        }
        if self.seen.contains(&result.clip_id) {
            self.stats.duplicates += 1;
            tracing::debug!(clip = %result.clip_id, "duplicate result dropped");
            return None;
        }
        self.seen.insert(result.clip_id.clone());
        self.order.push_back(result.clip_id.clone());
        while self.order.len() > self.remembered {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.stats.accepted += 1;
        if result.error.is_some() {
            self.stats.errors += 1;
        }
        let end_to_end = received_ns
            .checked_sub(result.closed_ns)
            .filter(|_| result.closed_ns > 0)
            .map(Duration::from_nanos);
        let got = ReceivedResult {
            result,
            received_ns,
            end_to_end,
        };
        record_result_latency(&mut self.latency, &got);
        Some(got)
    }

    /// Receive up to `max` results from `queue` (waiting up to `wait` for the first),
    /// acknowledge them and return the new ones.
    pub async fn poll<Q: ResultQueue>(
        &mut self,
        queue: &Q,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedResult>, QueueError> {
        let deliveries = queue.receive(&self.device_id, max, wait).await?;
        let received_ns = now_ns();
        let receipts: Vec<String> = deliveries
            .iter()
            .filter_map(|d| d.receipt.clone())
            .collect();
        let accepted = deliveries
            .into_iter()
            .filter_map(|d| self.accept(d.result, received_ns))
            .collect();
        if !receipts.is_empty() {
            queue.ack(&self.device_id, &receipts).await?;
        }
        Ok(accepted)
    }
}

/// Records an accepted result's stages into `latency` (see the [module docs](self)): end to end
/// and delivery always, the function's stages for results without error.
pub fn record_result_latency(latency: &mut LatencyRecorder, got: &ReceivedResult) {
    let result = &got.result;
    if let Some(e2e) = got.end_to_end {
        latency.record(Stage::EndToEnd, e2e);
    }
    if result.completed_ns > 0 {
        latency.record_between_ns(Stage::Delivery, result.completed_ns, got.received_ns);
    }
    if result.error.is_none() {
        let t = &result.timings;
        for (stage, ms) in [
            (Stage::FunctionTotal, t.total_ms),
            (Stage::Decode, t.decode_ms),
            (Stage::Detect, t.detect_ms),
            (Stage::Embed, t.embed_ms),
            (Stage::Lookup, t.lookup_ms),
        ] {
            if ms.is_finite() && ms >= 0.0 {
                latency.record(stage, Duration::from_secs_f64(ms / 1000.0));
            }
        }
    }
}

/// One accepted result, as a [`ResultPump`] hands it on.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// The result.
    pub got: &'a ReceivedResult,
    /// The receiver after accepting it (counters, latency so far).
    pub receiver: &'a ResultReceiver,
    /// Whether its clip was in the spool (and has now left it).
    pub was_spooled: bool,
}

/// Longest pause between two failed queue calls.
const MAX_QUEUE_BACKOFF: Duration = Duration::from_secs(2);

/// A [`ResultReceiver`] on its own thread; see the [module docs](self).
pub struct ResultPump {
    running: Arc<AtomicBool>,
    thread: Option<JoinHandle<ResultReceiver>>,
    device_id: String,
}

impl std::fmt::Debug for ResultPump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultPump")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl ResultPump {
    /// Starts polling `queue` for `receiver`'s device, `wait` per call, on `runtime`. Every
    /// accepted result completes its clip in `spool` (if given) and is passed to `on_result`;
    /// queue failures go into `health`.
    pub fn start<Q: ResultQueue + 'static>(
        queue: Arc<Q>,
        runtime: tokio::runtime::Handle,
        receiver: ResultReceiver,
        wait: Duration,
        spool: Option<Arc<ClipSpool>>,
        health: Arc<LinkHealth>,
        mut on_result: impl FnMut(Answer<'_>) + Send + 'static,
    ) -> std::io::Result<ResultPump> {
        let running = Arc::new(AtomicBool::new(true));
        let device_id = receiver.device_id().to_string();
        let thread = {
            let running = Arc::clone(&running);
            let device = device_id.clone();
            std::thread::Builder::new()
                .name("results".into())
                .spawn(move || {
                    let mut receiver = receiver;
                    let mut backoff = Duration::from_millis(200);
                    while running.load(Ordering::Acquire) {
                        let started = Instant::now();
                        let deliveries = match runtime.block_on(queue.receive(&device, 64, wait)) {
                            Ok(d) => {
                                health.ok(Link::Queue);
                                backoff = Duration::from_millis(200);
                                d
                            }
                            Err(e) => {
                                health.failed(Link::Queue, started.elapsed(), &e.to_string());
                                tracing::debug!(error = %e, "receiving results failed; retrying");
                                std::thread::sleep(backoff);
                                backoff = (backoff * 2).min(MAX_QUEUE_BACKOFF);
                                continue;
                            }
                        };
                        if deliveries.is_empty() {
                            continue;
                        }
                        let received_ns = now_ns();
                        let receipts: Vec<String> =
                            deliveries.iter().filter_map(|d| d.receipt.clone()).collect();
                        for delivery in deliveries {
                            let Some(got) = receiver.accept(delivery.result, received_ns) else {
                                continue;
                            };
                            let r = &got.result;
                            let was_spooled = match &spool {
                                None => false,
                                Some(spool) => spool.complete(&r.session_id, r.seq).unwrap_or_else(|e| {
                                    // Still on disk: sent again later, answered again (duplicate).
                                    tracing::error!(clip = %r.clip_id, error = %e, "answered clip could not be removed from the spool");
                                    true
                                }),
                            };
                            on_result(Answer {
                                got: &got,
                                receiver: &receiver,
                                was_spooled,
                            });
                        }
                        if !receipts.is_empty() {
                            if let Err(e) = runtime.block_on(queue.ack(&device, &receipts)) {
                                // Delivered again later and dropped then as a duplicate.
                                tracing::warn!(error = %e, "acknowledging results failed");
                            }
                        }
                    }
                    receiver
                })?
        };
        Ok(ResultPump {
            running,
            thread: Some(thread),
            device_id,
        })
    }

    /// Stops polling (after the call in progress) and returns the receiver.
    pub fn stop(mut self) -> ResultReceiver {
        self.running.store(false, Ordering::Release);
        let thread = self.thread.take();
        thread.and_then(|t| t.join().ok()).unwrap_or_else(|| {
            tracing::error!("the result thread panicked");
            ResultReceiver::new(self.device_id.clone())
        })
    }
}

impl Drop for ResultPump {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_protocol::results::LocalResultQueue;
    use rollcall_protocol::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};

    fn result(device: &str, seq: u64) -> RecognitionResult {
        let mut r = RecognitionResult::empty_for(&ClipMeta {
            device_id: device.into(),
            session_id: "s".into(),
            seq,
            first_frame_ns: 0,
            last_frame_ns: 0,
            closed_ns: 1_000_000_000,
            fps: 30.0,
            width: 1,
            height: 1,
            frame_count: 1,
            codec: CLIP_CODEC_H264_ANNEXB.into(),
        });
        r.completed_ns = 1_040_000_000;
        r.timings.total_ms = 35.0;
        r.timings.detect_ms = 20.0;
        r
    }

    #[test]
    fn stages_duplicates_errors_and_foreign_results() {
        let mut rx = ResultReceiver::new("cam");
        let got = rx.accept(result("cam", 1), 1_050_000_000).unwrap();
        assert_eq!(got.end_to_end, Some(Duration::from_millis(50)));
        assert!(rx.accept(result("cam", 1), 1_060_000_000).is_none());
        assert!(rx.accept(result("other", 2), 1_060_000_000).is_none());
        let mut failed = result("cam", 3);
        failed.error = Some("clips/x: corrupt".into());
        assert!(rx.accept(failed, 1_070_000_000).is_some());
        // A result from a clock ahead of ours: accepted, no end-to-end figure.
        let got = rx.accept(result("cam", 4), 900_000_000).unwrap();
        assert_eq!(got.end_to_end, None);
        let stats = rx.stats();
        assert_eq!(
            stats,
            ReceiverStats {
                accepted: 3,
                errors: 1,
                duplicates: 1,
                foreign: 1
            }
        );
        let latency = rx.latency();
        assert_eq!(latency.count(Stage::EndToEnd), 2);
        assert_eq!(latency.count(Stage::Detect), 2, "errors have no stages");
        let delivery = latency.summary(Stage::Delivery).unwrap();
        assert!((delivery.max_ms - 30.0).abs() < 0.1, "{delivery:?}");
        assert!(rx.has_result("cam/s/00000003"));
    }

    #[test]
    fn poll_drops_duplicates_from_the_queue() {
        let queue = LocalResultQueue::new();
        for seq in [1, 2, 1, 3, 2] {
            queue.publish_now(&result("cam", seq)).unwrap();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut rx = ResultReceiver::new("cam");
        let got = runtime
            .block_on(rx.poll(&queue, 10, Duration::from_millis(10)))
            .unwrap();
        assert_eq!(
            got.iter().map(|r| r.result.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(rx.stats().duplicates, 2);
    }
}
