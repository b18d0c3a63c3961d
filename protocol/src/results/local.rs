//! The in-process result queue: one FIFO per device, with async long polling.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{Delivery, QueueError, ResultQueue};
use crate::wire::RecognitionResult;

/// Default number of results a device's queue keeps before dropping the oldest.
pub const DEFAULT_DEVICE_CAPACITY: usize = 10_000;

#[derive(Default)]
struct DeviceQueue {
    items: Mutex<VecDeque<RecognitionResult>>,
    arrived: Notify,
}

impl DeviceQueue {
    fn items(&self) -> MutexGuard<'_, VecDeque<RecognitionResult>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// In-process [`ResultQueue`]: per-device channels, nothing persisted. Results published for a
/// device nobody receives for are kept (up to a capacity per device, oldest dropped first with a
/// warning). Receiving removes the results, so [`ack`](ResultQueue::ack) has nothing to do.
///
/// ```
/// use std::time::Duration;
/// use rollcall_protocol::results::{LocalResultQueue, ResultQueue};
/// # use rollcall_protocol::wire::{ClipMeta, RecognitionResult};
/// # let meta: ClipMeta = serde_json::from_str(r#"{"device_id":"pi-1","session_id":"s1","seq":3,
/// #   "first_frame_ns":0,"last_frame_ns":0,"closed_ns":0,"fps":30.0,"width":640,"height":480,
/// #   "frame_count":15,"codec":"h264-annexb"}"#).unwrap();
/// let queue = LocalResultQueue::new();
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
/// runtime.block_on(async {
///     queue.publish(&RecognitionResult::empty_for(&meta)).await?;
///     let got = queue.receive("pi-1", 10, Duration::from_millis(100)).await?;
///     assert_eq!(got.len(), 1);
///     assert!(queue.receive("pi-2", 10, Duration::ZERO).await?.is_empty());
///     Ok::<_, rollcall_protocol::results::QueueError>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalResultQueue {
    devices: Mutex<HashMap<String, Arc<DeviceQueue>>>,
    capacity: usize,
}

impl Default for LocalResultQueue {
    fn default() -> Self {
        LocalResultQueue::with_capacity(DEFAULT_DEVICE_CAPACITY)
    }
}

impl std::fmt::Debug for LocalResultQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalResultQueue")
            .field("devices", &self.lock().len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl LocalResultQueue {
    /// An empty queue keeping up to [`DEFAULT_DEVICE_CAPACITY`] results per device.
    pub fn new() -> LocalResultQueue {
        LocalResultQueue::default()
    }

    /// An empty queue keeping up to `capacity` (at least 1) results per device.
    pub fn with_capacity(capacity: usize) -> LocalResultQueue {
        LocalResultQueue {
            devices: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<DeviceQueue>>> {
        self.devices.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn device(&self, device_id: &str) -> Result<Arc<DeviceQueue>, QueueError> {
        if device_id.is_empty() {
            return Err(QueueError::InvalidDevice {
                device_id: device_id.to_string(),
                reason: "empty",
            });
        }
        Ok(Arc::clone(
            self.lock().entry(device_id.to_string()).or_default(),
        ))
    }

    /// Results waiting for `device_id`.
    pub fn pending(&self, device_id: &str) -> usize {
        self.lock().get(device_id).map_or(0, |d| d.items().len())
    }

    /// Publish without an async context (the future of [`ResultQueue::publish`] never waits).
    pub fn publish_now(&self, result: &RecognitionResult) -> Result<(), QueueError> {
        let device = self.device(&result.device_id)?;
        {
            let mut items = device.items();
            if items.len() >= self.capacity {
                if let Some(dropped) = items.pop_front() {
                    tracing::warn!(device = %result.device_id, clip = %dropped.clip_id, capacity = self.capacity, "result queue full: oldest result dropped");
                }
            }
            items.push_back(result.clone());
        }
        device.arrived.notify_waiters();
        Ok(())
    }

    /// Take up to `max` waiting results for `device_id` without waiting.
    pub fn try_receive(&self, device_id: &str, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let device = self.device(device_id)?;
        Ok(take(&device, max))
    }
}

fn take(device: &DeviceQueue, max: usize) -> Vec<Delivery> {
    let mut items = device.items();
    let n = max.min(items.len());
    items
        .drain(..n)
        .map(|result| Delivery {
            result,
            receipt: None,
        })
        .collect()
}

impl ResultQueue for LocalResultQueue {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn publish(&self, result: &RecognitionResult) -> Result<(), QueueError> {
        self.publish_now(result)
    }

    async fn receive(
        &self,
        device_id: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let device = self.device(device_id)?;
        let max = max.max(1);
        let deadline = Instant::now() + wait;
        loop {
            // Register for the wake-up before looking, so a publish in between is not missed.
            let arrived = device.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let got = take(&device, max);
            if !got.is_empty() {
                return Ok(got);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            if tokio::time::timeout(deadline - now, arrived).await.is_err() {
                return Ok(take(&device, max));
            }
        }
    }

    async fn ack(&self, _device_id: &str, _receipts: &[String]) -> Result<(), QueueError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};

    fn result(device: &str, seq: u64) -> RecognitionResult {
        RecognitionResult::empty_for(&ClipMeta {
            device_id: device.into(),
            session_id: "s".into(),
            seq,
            first_frame_ns: 0,
            last_frame_ns: 0,
            closed_ns: 0,
            fps: 30.0,
            width: 1,
            height: 1,
            frame_count: 1,
            codec: CLIP_CODEC_H264_ANNEXB.into(),
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn devices_are_kept_apart_and_order_is_kept() {
        let queue = LocalResultQueue::new();
        for seq in 0..5 {
            queue.publish_now(&result("a", seq)).unwrap();
        }
        queue.publish_now(&result("b", 9)).unwrap();
        assert_eq!(queue.pending("a"), 5);
        let got = queue.try_receive("a", 3).unwrap();
        assert_eq!(
            got.iter().map(|d| d.result.seq).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let rt = runtime();
        let rest = rt.block_on(queue.receive("a", 10, Duration::ZERO)).unwrap();
        assert_eq!(rest.len(), 2);
        let b = rt.block_on(queue.receive("b", 10, Duration::ZERO)).unwrap();
        assert_eq!(b[0].result.seq, 9);
        assert!(queue.try_receive("", 1).is_err());
    }

    #[test]
    fn long_poll_wakes_on_publish_and_times_out() {
        let queue = Arc::new(LocalResultQueue::new());
        let rt = runtime();
        let started = Instant::now();
        let none = rt
            .block_on(queue.receive("a", 1, Duration::from_millis(50)))
            .unwrap();
        assert!(none.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(45));

        let publisher = Arc::clone(&queue);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            publisher.publish_now(&result("a", 1)).unwrap();
        });
        let started = Instant::now();
        let got = rt
            .block_on(queue.receive("a", 1, Duration::from_secs(5)))
            .unwrap();
        assert_eq!(got.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(2));
        t.join().unwrap();
    }

    #[test]
    fn capacity_drops_the_oldest() {
        let queue = LocalResultQueue::with_capacity(2);
        for seq in 0..3 {
            queue.publish_now(&result("a", seq)).unwrap();
        }
        let got = queue.try_receive("a", 10).unwrap();
        assert_eq!(got.iter().map(|d| d.result.seq).collect::<Vec<_>>(), [1, 2]);
    }
}
