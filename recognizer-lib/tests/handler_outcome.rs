//! The one retry-or-drop decision of every deployment (`ClipOutcome`, used by the Lambda and the
//! SQS worker): each outcome reproduced with real backends.
//!
//! - published: a clip that cannot be read still gets its (error) result published;
//! - retry: the result queue is unreachable (SQS at a closed loopback port): deliver again;
//! - dropped: the device id cannot name an SQS queue: no delivery will ever succeed.
//!
//! Needs the fetched models (the handler's analyser loads them); skipped with the reason printed
//! without them, unless `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use std::sync::Arc;

use rollcall_protocol::results::{LocalResultQueue, ResultQueue};
use rollcall_protocol::store::LocalClipStore;
use rollcall_protocol::wire::{ClipEvent, ClipMeta, CLIP_CODEC_H264_ANNEXB};
use rollcall_recognizer::clip::ClipAnalyzer;
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::handler::{ClipOutcome, HandlerConfig, RecognitionHandler};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The event of a clip that was never stored, from `device`.
fn missing_clip(device: &str) -> ClipEvent {
    ClipEvent::for_clip(ClipMeta {
        device_id: device.into(),
        session_id: "s1".into(),
        seq: 7,
        first_frame_ns: 1,
        last_frame_ns: 2,
        closed_ns: 3,
        fps: 30.0,
        width: 640,
        height: 360,
        frame_count: 15,
        codec: CLIP_CODEC_H264_ANNEXB.into(),
    })
}

/// A handler over an empty local store and an empty directory, publishing to `results`.
fn handler<Q: ResultQueue>(
    results: Q,
    store: &tempfile::TempDir,
) -> Option<Arc<RecognitionHandler<LocalClipStore, SqliteDirectory, Q>>> {
    let pipeline = common::pipeline()?;
    Some(Arc::new(RecognitionHandler::new(
        LocalClipStore::new(store.path()),
        Arc::new(SqliteDirectory::open_in_memory().unwrap()),
        results,
        ClipAnalyzer::new(pipeline),
        HandlerConfig::default(),
    )))
}

#[test]
fn a_clip_that_cannot_be_read_is_published_as_an_error_result() {
    let store = tempfile::tempdir().unwrap();
    let queue = Arc::new(LocalResultQueue::new());
    let Some(handler) = handler(Arc::clone(&queue), &store) else {
        return;
    };
    let outcome = runtime().block_on(handler.run_event(missing_clip("pi-lab-1")));
    let ClipOutcome::Published(result) = &outcome else {
        panic!("expected a published result, got {outcome:?}");
    };
    let error = result.error.as_deref().unwrap_or_default();
    assert!(error.contains("clips/pi-lab-1/s1/00000007.h264"), "{error}");
    assert!(!outcome.is_retry());
    let delivered = queue.try_receive("pi-lab-1", 10).unwrap();
    assert_eq!(delivered.len(), 1, "the error result reached the device");
}

#[cfg(feature = "aws")]
mod sqs {
    use rollcall_protocol::results::sqs::SqsResultQueue;

    use super::*;

    /// An SQS client for `endpoint` with test credentials and no SDK retries (each call fails
    /// fast, so the test measures the decision, not the SDK's backoff).
    fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::config::Builder::new()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn an_unreachable_result_queue_means_deliver_again() {
        let store = tempfile::tempdir().unwrap();
        let endpoint = format!("http://127.0.0.1:{}", closed_port());
        let queue = SqsResultQueue::new(sqs_client(&endpoint), "rollcall");
        let Some(handler) = handler(queue, &store) else {
            return;
        };
        let outcome = runtime().block_on(handler.run_event(missing_clip("pi-lab-1")));
        assert!(
            matches!(&outcome, ClipOutcome::Retry(reason) if reason.contains("pi-lab-1")),
            "{outcome:?}"
        );
        assert!(outcome.is_retry());
    }

    #[test]
    fn a_device_that_cannot_name_a_queue_is_dropped() {
        let store = tempfile::tempdir().unwrap();
        // Never contacted: the queue name is refused before any call.
        let queue = SqsResultQueue::new(sqs_client("http://127.0.0.1:9"), "rollcall");
        let Some(handler) = handler(queue, &store) else {
            return;
        };
        // A valid id and key segment, but SQS queue names have no '.'.
        let outcome = runtime().block_on(handler.run_event(missing_clip("pi.lab.1")));
        assert!(
            matches!(&outcome, ClipOutcome::Dropped(reason) if reason.contains("pi.lab.1")),
            "{outcome:?}"
        );
        assert!(!outcome.is_retry());
    }
}
