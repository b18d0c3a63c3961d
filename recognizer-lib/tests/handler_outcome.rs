//! The one retry-or-drop decision of every deployment (`ClipOutcome`, used by the Lambda and the
//! SQS worker): each outcome reproduced with real backends.
//!
//! - published: a clip that cannot be read still gets its (error) result published;
//! - retry: the result queue is unreachable (SQS at a closed loopback port): deliver again;
//! - dropped: the device id cannot name an SQS queue: no delivery will ever succeed;
//! - duplicates of one clip version reaching two instances (two handlers sharing only the store,
//!   as two processes do) are analysed once; a dead instance's claim is taken over.
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

fn clip_meta(device: &str, seq: u64) -> ClipMeta {
    ClipMeta {
        device_id: device.into(),
        session_id: "s1".into(),
        seq,
        first_frame_ns: 1,
        last_frame_ns: 2,
        closed_ns: 3,
        fps: 30.0,
        width: 640,
        height: 360,
        frame_count: 15,
        codec: CLIP_CODEC_H264_ANNEXB.into(),
    }
}

/// The event of a clip that was never stored, from `device`.
fn missing_clip(device: &str) -> ClipEvent {
    ClipEvent::for_clip(clip_meta(device, 7))
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

#[test]
fn duplicates_reaching_two_instances_are_analysed_once() {
    use rollcall_protocol::store::Claim;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(LocalResultQueue::new());
    let Some(pipeline) = common::pipeline() else {
        return;
    };
    // Two handlers over one folder share nothing but the files: two processes, as far as the
    // clip is concerned.
    let instance = |id: &str, claim_timeout: Duration| {
        Arc::new(RecognitionHandler::new(
            LocalClipStore::new(dir.path()),
            Arc::new(SqliteDirectory::open_in_memory().unwrap()),
            Arc::clone(&queue),
            ClipAnalyzer::new(Arc::clone(&pipeline)),
            HandlerConfig {
                instance_id: id.into(),
                claim_timeout,
                ..HandlerConfig::default()
            },
        ))
    };
    let (a, b) = (
        instance("inst-a", Duration::from_secs(5)),
        instance("inst-b", Duration::from_secs(5)),
    );
    let store = LocalClipStore::new(dir.path());
    let meta = clip_meta("pi-lab-1", 1);
    let key = meta.object_key();
    store
        .put_blocking(&key, &meta, b"\0\0\0\x01 not an H.264 stream")
        .unwrap();
    let event = ClipEvent::for_clip(meta);
    let rt = runtime();

    let (oa, ob) =
        rt.block_on(async { tokio::join!(a.run_event(event.clone()), b.run_event(event.clone())) });
    assert_eq!(
        a.stats().processed + b.stats().processed,
        1,
        "one analysis for both deliveries: {oa:?} / {ob:?}"
    );
    for outcome in [&oa, &ob] {
        // The other delivery was handed back while the first held the claim, or republished
        // the answer it recorded.
        assert!(
            matches!(outcome, ClipOutcome::Published(_))
                || matches!(outcome, ClipOutcome::Retry(reason) if reason.contains("being answered by inst-")),
            "{outcome:?}"
        );
    }
    let (first, second) = if a.stats().processed == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // Delivered again to the instance that did not analyse it: the recorded answer.
    let again = rt.block_on(second.run_event(event.clone()));
    let ClipOutcome::Published(result) = &again else {
        panic!("expected the recorded answer, got {again:?}");
    };
    assert_eq!(second.stats().processed, 0);
    assert_eq!(result.instance_id, first.config().instance_id);

    // An overwrite of the key is a new version: analysed anew.
    store
        .put_blocking(
            &key,
            &clip_meta("pi-lab-1", 1),
            b"\0\0\0\x01 another stream",
        )
        .unwrap();
    let overwritten = rt.block_on(second.run_event(event));
    assert!(
        matches!(overwritten, ClipOutcome::Published(_)),
        "{overwritten:?}"
    );
    assert_eq!(second.stats().processed, 1);

    // An instance that died mid-clip left its claim: a delivery is handed back while the claim
    // is young, and the claim is taken over once it is older than the timeout.
    let meta = clip_meta("pi-lab-1", 2);
    store
        .put_blocking(&meta.object_key(), &meta, b"\0\0\0\x01 x")
        .unwrap();
    let version = store
        .get_blocking(&meta.object_key(), 1 << 20)
        .unwrap()
        .version
        .unwrap();
    assert_eq!(
        store
            .claim_blocking(&meta.object_key(), &version, "inst-dead")
            .unwrap(),
        Claim::Claimed
    );
    let event = ClipEvent::for_clip(meta);
    let held = rt.block_on(first.run_event(event.clone()));
    assert!(
        matches!(&held, ClipOutcome::Retry(reason) if reason.contains("inst-dead")),
        "{held:?}"
    );
    let eager = instance("inst-c", Duration::ZERO);
    let taken = rt.block_on(eager.run_event(event));
    assert!(matches!(taken, ClipOutcome::Published(_)), "{taken:?}");
    assert_eq!(eager.stats().processed, 1);
    // Every published result reached the device: two deliveries of version 1 (the analysis and
    // one republication, or two republications), the overwrite, the taken-over clip.
    let delivered = queue.try_receive("pi-lab-1", 100).unwrap();
    assert!(delivered.len() >= 4, "{} results", delivered.len());
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
