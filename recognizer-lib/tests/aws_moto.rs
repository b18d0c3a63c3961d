//! The AWS backends over HTTP against a moto server (`scripts/moto`, started by `scripts/test`):
//! provisioning, the S3 clip store, the SQS result queues, the DynamoDB people directory (called
//! from inside Tokio), and the S3 -> SQS notification with lenient event parsing.
//!
//! Needs `AWS_ENDPOINT_URL` pointing at loopback; without it every test prints why it is skipped,
//! unless `ROLLCALL_REQUIRE_AWS=1` (then they fail). Each test uses resources of its own
//! (a unique prefix), so they run in parallel on one server.
#![cfg(feature = "aws")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{aws_endpoint, unique};
use rollcall_protocol::aws::{self, Names, SdkConfig, SqsClient};
use rollcall_protocol::events;
use rollcall_protocol::results::sqs::SqsResultQueue;
use rollcall_protocol::results::ResultQueue;
use rollcall_protocol::store::s3::S3ClipStore;
use rollcall_protocol::store::{Claim, ClipStore, StoreError};
use rollcall_protocol::wire::{ClipMeta, RecognitionResult, CLIP_CODEC_H264_ANNEXB};
use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
use rollcall_recognizer::directory::{EnrollmentSample, PeopleDirectory, PersonRecord};
use rollcall_recognizer::provision::{self, ProvisionOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn meta(device: &str, seq: u64) -> ClipMeta {
    ClipMeta {
        device_id: device.into(),
        session_id: "2026-11-26T21-00-00Z".into(),
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

async fn provisioned(prefix: &str, devices: &[&str]) -> (SdkConfig, Names, provision::Provisioned) {
    let config = aws::load_config().await;
    let names = Names::new(prefix);
    let options = ProvisionOptions {
        visibility_timeout: Duration::from_secs(2),
        devices: devices.iter().map(|d| d.to_string()).collect(),
        ..ProvisionOptions::default()
    };
    let out = provision::provision(&config, &names, &options)
        .await
        .unwrap();
    // Idempotent.
    let again = provision::provision(&config, &names, &options)
        .await
        .unwrap();
    assert_eq!(out, again);
    (config, names, out)
}

#[test]
fn provision_store_and_notification() {
    if aws_endpoint().is_none() {
        return;
    }
    runtime().block_on(async {
        let prefix = unique("rc-store");
        let (config, names, out) = provisioned(&prefix, &["cam-1"]).await;
        assert_eq!(out.bucket, format!("{prefix}-clips"));
        assert_eq!(out.result_queues.len(), 1);
        assert_hardened(&config, &out).await;
        let store = S3ClipStore::from_config(&config, &names.bucket);
        let m = meta("cam-1", 7);
        let key = m.object_key();
        let started = Instant::now();
        store.put(&key, &m, b"\0\0\0\x01clip").await.unwrap();
        let put_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let got = store.get(&key, 1024).await.unwrap();
        let get_ms = started.elapsed().as_secs_f64() * 1e3;
        eprintln!("moto: S3 put {put_ms:.1} ms, get {get_ms:.1} ms");
        assert_eq!(got.bytes, b"\0\0\0\x01clip");
        assert_eq!(got.meta, Some(m.clone().into()));
        assert!(
            got.version.as_ref().is_some_and(|v| !v.contains('"')),
            "{got:?}"
        );
        assert!(got.stored_ns.is_some_and(|t| t > 0));
        // Size limit: refused before the body is read.
        match store.get(&key, 4).await {
            Err(StoreError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (8, 4)),
            other => panic!("{other:?}"),
        }
        match store.get("clips/cam-1/s/00000099.h264", 1024).await {
            Err(StoreError::NotFound { key }) => assert!(key.ends_with("00000099.h264")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.get("../etc/passwd", 1024).await,
            Err(StoreError::InvalidKey(_))
        ));

        // The answer ledger: a conditional put claims a version once; another instance sees
        // the holder, then the recorded answer; another version is claimed anew; a released
        // claim can be taken again. (moto's conditional put is not atomic under concurrent
        // requests, so concurrent claims are tested on the local store, whose exclusive create
        // is; S3's conditional writes are.)
        let version = got.version.clone().unwrap();
        assert_eq!(
            store.claim(&key, &version, "inst-a").await.unwrap(),
            Claim::Claimed
        );
        match store.claim(&key, &version, "inst-b").await.unwrap() {
            Claim::HeldBy { holder, since_ns } => {
                assert_eq!(holder, "inst-a");
                assert!(since_ns > 0);
            }
            other => panic!("{other:?}"),
        }
        let answer = RecognitionResult::empty_for(&m);
        store
            .record_answer(&key, &version, "inst-a", &answer)
            .await
            .unwrap();
        assert_eq!(
            store.claim(&key, &version, "inst-b").await.unwrap(),
            Claim::Answered(Box::new(answer))
        );
        assert_eq!(
            store.claim(&key, "another-etag", "inst-b").await.unwrap(),
            Claim::Claimed
        );
        store.release_claim(&key, "another-etag").await.unwrap();
        store.release_claim(&key, "another-etag").await.unwrap();
        assert_eq!(
            store.claim(&key, "another-etag", "inst-c").await.unwrap(),
            Claim::Claimed
        );

        // The notification: moto's s3:TestEvent first, then one record per object created
        // under clips/ (not for other prefixes), with URL-encoded keys.
        store.put("other/x.h264", &m, b"x").await.unwrap();
        let sqs = SqsClient::new(&config);
        let mut keys = Vec::new();
        let mut tests = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while keys.is_empty() && Instant::now() < deadline {
            let received = sqs
                .receive_message()
                .queue_url(&out.events_queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for message in received.messages() {
                match events::parse_notification(message.body().unwrap()).unwrap() {
                    events::Notification::Test => tests += 1,
                    events::Notification::Objects(_) => {
                        for record in events::clip_records(message.body().unwrap()).unwrap() {
                            let events::ClipRecord::Clip(e) = record else {
                                panic!("{record:?}")
                            };
                            keys.push(e.key.clone());
                            assert_eq!(e.meta.clip_id(), m.clip_id());
                            // The notification's entity tag is the object's version.
                            assert_eq!(e.version, got.version);
                        }
                    }
                }
                sqs.delete_message()
                    .queue_url(&out.events_queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        assert_eq!(keys, vec![key.clone()], "test events seen: {tests}");
    });
}

/// The bucket blocks public access, encrypts by default and expires clips after the default
/// retention; the dead-letter queue keeps messages 14 days; the events queue has the
/// provisioned visibility timeout.
async fn assert_hardened(config: &SdkConfig, out: &provision::Provisioned) {
    let s3 = aws::s3_client(config);
    let block = s3
        .get_public_access_block()
        .bucket(&out.bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let encryption = s3
        .get_bucket_encryption()
        .bucket(&out.bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&out.bucket)
        .send()
        .await
        .unwrap();
    let rule = &lifecycle.rules()[0];
    assert_eq!(rule.id(), Some(provision::CLIP_EXPIRY_RULE));
    assert_eq!(
        rule.expiration().and_then(|e| e.days()),
        Some(provision::DEFAULT_CLIP_RETENTION_DAYS as i32)
    );
    assert_eq!(
        out.clip_retention_days,
        provision::DEFAULT_CLIP_RETENTION_DAYS
    );
    let answers = &lifecycle.rules()[1];
    assert_eq!(answers.id(), Some(provision::ANSWER_EXPIRY_RULE));
    assert_eq!(
        answers.expiration().and_then(|e| e.days()),
        Some(provision::ANSWER_RETENTION_DAYS as i32)
    );
    let sqs = SqsClient::new(config);
    let attribute = |url: String, name: &'static str| {
        let sqs = sqs.clone();
        async move {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(name.into())
                .send()
                .await
                .unwrap();
            attributes
                .attributes()
                .into_iter()
                .flatten()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
    };
    assert_eq!(
        attribute(out.dlq_url.clone(), "MessageRetentionPeriod").await,
        provision::DLQ_RETENTION_SECS.to_string()
    );
    assert_eq!(
        attribute(out.events_queue_url.clone(), "VisibilityTimeout").await,
        "2"
    );
    // Results name people: they expire after the results retention.
    for (_, url) in &out.result_queues {
        assert_eq!(
            attribute(url.clone(), "MessageRetentionPeriod").await,
            provision::DEFAULT_RESULTS_RETENTION_SECS.to_string()
        );
    }
}

fn result(device: &str, seq: u64) -> RecognitionResult {
    RecognitionResult::empty_for(&meta(device, seq))
}

#[test]
fn sqs_result_queues_keep_devices_apart() {
    if aws_endpoint().is_none() {
        return;
    }
    runtime().block_on(async {
        let prefix = unique("rc-sqs");
        let (config, _names, _) = provisioned(&prefix, &["cam-a", "cam-b"]).await;
        let queue = SqsResultQueue::new(SqsClient::new(&config), &prefix);
        let started = Instant::now();
        queue.publish(&result("cam-a", 1)).await.unwrap();
        let publish_ms = started.elapsed().as_secs_f64() * 1e3;
        queue.publish(&result("cam-a", 2)).await.unwrap();
        queue.publish(&result("cam-b", 1)).await.unwrap();
        let mut a = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while a.len() < 2 && Instant::now() < deadline {
            let started = Instant::now();
            let got = queue
                .receive("cam-a", 10, Duration::from_secs(1))
                .await
                .unwrap();
            eprintln!(
                "moto: SQS publish {publish_ms:.1} ms, receive {:.1} ms ({} results)",
                started.elapsed().as_secs_f64() * 1e3,
                got.len()
            );
            a.extend(got);
        }
        let mut seqs: Vec<u64> = a.iter().map(|d| d.result.seq).collect();
        seqs.sort();
        assert_eq!(seqs, vec![1, 2]);
        assert!(a.iter().all(|d| d.result.device_id == "cam-a"));
        let receipts: Vec<String> = a.iter().filter_map(|d| d.receipt.clone()).collect();
        queue.ack("cam-a", &receipts).await.unwrap();
        let b = queue
            .receive("cam-b", 10, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].result.device_id, "cam-b");
        // Acknowledged: nothing comes back.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(queue
            .receive("cam-a", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty());
        // A device without a provisioned queue: a retryable backend error; an id that cannot name
        // a queue: refused.
        let err = queue.publish(&result("cam-none", 1)).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let err = queue.publish(&result("cam.dot", 1)).await.unwrap_err();
        assert!(
            !err.is_retryable() && err.to_string().contains("cam.dot"),
            "{err}"
        );
    });
}

fn sample(id: &str, image: &str, v: &[f32]) -> EnrollmentSample {
    EnrollmentSample {
        person_id: id.into(),
        image: image.into(),
        embedding: v.to_vec(),
    }
}

fn exercise_directory(dir: &DynamoDirectory) {
    let v0 = dir.gallery_version().unwrap();
    let mut alice = PersonRecord::new("alice_smith").unwrap();
    alice
        .details
        .insert("programme".into(), "BSc Physics".into());
    assert_eq!(dir.upsert_records(&[alice.clone()]).unwrap(), 1);
    assert!(!dir.person("alice_smith").unwrap().unwrap().is_enrolled());
    dir.enroll(
        "alice_smith",
        &[0.6, 0.8, 0.0],
        &[
            sample("alice_smith", "a.jpg", &[0.6, 0.8, 0.0]),
            sample("alice_smith", "b.jpg", &[0.6, 0.7, 0.1]),
        ],
    )
    .unwrap();
    dir.enroll(
        "bob",
        &[0.0, 0.0, 1.0],
        &[sample("bob", "b.png", &[0.0, 0.0, 1.0])],
    )
    .unwrap();
    assert_ne!(dir.gallery_version().unwrap(), v0);
    let stored = dir.person("alice_smith").unwrap().unwrap();
    assert_eq!(stored.name, "Alice Smith");
    assert_eq!(stored.details["programme"], "BSc Physics");
    assert_eq!(stored.image_count, 2);
    assert!(stored.is_enrolled());
    // Records upserted after enrolment keep the embedding.
    alice.name = "Alice B. Smith".into();
    dir.upsert_records(&[alice]).unwrap();
    let gallery = dir.gallery().unwrap();
    assert_eq!(gallery.len(), 2);
    assert_eq!(gallery[0].person_id, "alice_smith");
    assert_eq!(gallery[0].embedding, vec![0.6, 0.8, 0.0]);
    assert_eq!(
        dir.person("alice_smith").unwrap().unwrap().name,
        "Alice B. Smith"
    );
    assert_eq!(dir.samples().unwrap().len(), 3);
    let people: Vec<String> = dir
        .people()
        .unwrap()
        .into_iter()
        .map(|p| p.person_id)
        .collect();
    assert_eq!(people, ["alice_smith", "bob"]);
    assert!(matches!(
        dir.enroll("carol", &[1.0, 0.0], &[]),
        Err(
            rollcall_recognizer::directory::DirectoryError::DimensionMismatch {
                expected: 3,
                actual: 2,
                ..
            }
        )
    ));
    dir.set_setting("match_threshold", "0.41").unwrap();
    assert_eq!(
        dir.setting("match_threshold").unwrap().as_deref(),
        Some("0.41")
    );
    assert_eq!(dir.setting("nothing").unwrap(), None);
    let v1 = dir.gallery_version().unwrap();
    assert!(dir.remove("bob").unwrap());
    assert!(!dir.remove("bob").unwrap());
    assert_ne!(dir.gallery_version().unwrap(), v1);
    assert_eq!(dir.gallery().unwrap().len(), 1);
    assert!(dir.person("../x").is_err());
}

#[test]
fn dynamodb_directory_from_plain_threads_and_inside_tokio() {
    if aws_endpoint().is_none() {
        return;
    }
    let rt = runtime();
    let prefix = unique("rc-ddb");
    let (config, names, _) = rt.block_on(provisioned(&prefix, &[]));
    // A plain thread.
    let dir = Arc::new(DynamoDirectory::new(&config, &names.table()).unwrap());
    let started = Instant::now();
    exercise_directory(&dir);
    eprintln!(
        "moto: DynamoDB directory round (about 30 calls) {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    // Inside async tasks of a multi-thread runtime, and of a current-thread runtime (where a
    // nested block_on would panic or deadlock), concurrently; then dropped inside async code.
    let other = unique("rc-ddb2");
    let (config2, names2, _) = rt.block_on(provisioned(&other, &[]));
    let dir2 = Arc::new(DynamoDirectory::new(&config2, &names2.table()).unwrap());
    rt.block_on(async {
        let d = Arc::clone(&dir2);
        tokio::spawn(async move { exercise_directory(&d) })
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let d = Arc::clone(&dir);
                tokio::spawn(async move { d.gallery().unwrap().len() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
    });
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    current.block_on(async move {
        assert_eq!(dir.people().unwrap().len(), 1);
        drop(dir);
        drop(dir2);
    });
}

#[test]
fn dynamodb_one_person_template_and_samples() {
    if aws_endpoint().is_none() {
        return;
    }
    let rt = runtime();
    let prefix = unique("rc-ddb-one");
    let (config, names, _) = rt.block_on(provisioned(&prefix, &[]));
    let dir = DynamoDirectory::new(&config, &names.table()).unwrap();
    dir.upsert_records(&[PersonRecord::new("ann").unwrap()])
        .unwrap();
    assert_eq!(dir.gallery_entry("ann").unwrap(), None, "record only");
    assert!(dir.person_samples("ann").unwrap().is_empty());
    assert_eq!(dir.gallery_entry("nobody").unwrap(), None);
    assert!(dir.person_samples("nobody").unwrap().is_empty());
    assert!(dir.gallery_entry("../x").is_err());
    assert!(dir.person_samples("a/b").is_err());

    let ann = [
        sample("ann", "2.jpg", &[0.0, 1.0]),
        sample("ann", "1.jpg", &[1.0, 0.0]),
    ];
    dir.enroll("ann", &[0.5, 0.5], &ann).unwrap();
    dir.enroll("bob", &[0.0, 1.0], &[sample("bob", "b.jpg", &[0.0, 1.0])])
        .unwrap();
    let entry = dir.gallery_entry("ann").unwrap().unwrap();
    assert_eq!(
        (
            entry.person_id.as_str(),
            entry.embedding.as_slice(),
            entry.image_count
        ),
        ("ann", &[0.5f32, 0.5][..], 2)
    );
    assert_eq!(dir.person_samples("ann").unwrap(), ann.to_vec());
    assert!(dir.remove("ann").unwrap());
    assert_eq!(dir.gallery_entry("ann").unwrap(), None);
    assert!(dir.person_samples("ann").unwrap().is_empty());
    assert_eq!(dir.person_samples("bob").unwrap().len(), 1);
}

#[test]
fn dynamodb_gallery_snapshot_batched_enrolment_and_digests() {
    use rollcall_recognizer::directory::dynamodb::snapshot_key;
    use rollcall_recognizer::directory::snapshot;
    use rollcall_recognizer::directory::synthetic::synthetic_enrollment;
    use rollcall_recognizer::directory::DirectoryError;
    if aws_endpoint().is_none() {
        return;
    }
    let rt = runtime();
    let prefix = unique("rc-ddb-snap");
    let (config, names, _) = rt.block_on(provisioned(&prefix, &[]));
    let dir = DynamoDirectory::new(&config, &names.table())
        .unwrap()
        .with_gallery_snapshot(&config, &names.bucket);
    let key = snapshot_key(&names.table());
    assert_eq!(
        dir.snapshot_location().unwrap(),
        format!("s3://{}/{key}", names.bucket)
    );
    let s3 = aws::s3_client(&config);
    let get = || {
        rt.block_on(async {
            let out = s3
                .get_object()
                .bucket(&names.bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            out.body.collect().await.unwrap().into_bytes().to_vec()
        })
    };

    // 60 people in one call: more than one BatchWriteItem (25), names kept for those with records.
    let mut ann = PersonRecord::new("student-000001").unwrap();
    ann.name = "Ann Example".into();
    dir.upsert_records(&[ann]).unwrap();
    let mut batch: Vec<_> = (0..60).map(|i| synthetic_enrollment(i, 2, 16)).collect();
    batch[1].photos_digest = Some("digest-1".into());
    let v0 = dir.gallery_version().unwrap();
    dir.enroll_many(&batch).unwrap();
    assert_eq!(dir.gallery_version().unwrap(), v0 + 1, "one version change");
    assert_eq!(
        dir.person("student-000001").unwrap().unwrap().name,
        "Ann Example"
    );
    assert_eq!(dir.samples().unwrap().len(), 120);
    assert_eq!(
        dir.photos_digests()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [("student-000001".to_string(), "digest-1".to_string())]
    );
    // A batch is checked whole: a person twice, or of another dimension, writes nothing.
    let twice = [
        synthetic_enrollment(70, 1, 16),
        synthetic_enrollment(70, 1, 16),
    ];
    assert!(matches!(
        dir.enroll_many(&twice),
        Err(DirectoryError::InvalidEnrollment { .. })
    ));
    assert!(matches!(
        dir.enroll_many(&[synthetic_enrollment(71, 1, 8)]),
        Err(DirectoryError::DimensionMismatch {
            expected: 16,
            actual: 8,
            ..
        })
    ));
    assert!(dir.person("student-000070").unwrap().is_none());

    // No snapshot yet: the gallery comes from the scan, which writes one.
    let scanned = dir.gallery().unwrap();
    assert_eq!(scanned.len(), 60);
    let written = snapshot::decode(&get()).unwrap();
    assert_eq!(written.gallery_version, v0 + 1);
    assert_eq!(written.entries, scanned);

    // A current snapshot is what the gallery is read from: prove it with a marked copy.
    let mut marked = scanned.clone();
    marked[0].embedding[0] = 0.5;
    let body = snapshot::encode(v0 + 1, &marked).unwrap();
    rt.block_on(async {
        s3.put_object()
            .bucket(&names.bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    });
    assert_eq!(dir.gallery().unwrap(), marked);

    // After a change the snapshot is stale: the scan again, and the snapshot rewritten.
    dir.enroll_many(&[synthetic_enrollment(60, 2, 16)]).unwrap();
    let fresh = dir.gallery().unwrap();
    assert_eq!(fresh.len(), 61);
    assert_ne!(fresh[0], marked[0]);
    assert_eq!(
        snapshot::decode(&get()).unwrap().gallery_version,
        dir.gallery_version().unwrap()
    );
    // publish_gallery writes it explicitly; a damaged one is not used.
    dir.remove("student-000060").unwrap();
    dir.publish_gallery().unwrap();
    assert_eq!(snapshot::decode(&get()).unwrap().entries.len(), 60);
    rt.block_on(async {
        s3.put_object()
            .bucket(&names.bucket)
            .key(&key)
            .body(b"not a snapshot".to_vec().into())
            .send()
            .await
            .unwrap();
    });
    assert_eq!(dir.gallery().unwrap().len(), 60);
    // Removing everyone of a dimension frees it for another model's templates.
    let other = unique("rc-ddb-dim");
    let (config2, names2, _) = rt.block_on(provisioned(&other, &[]));
    let dir2 = DynamoDirectory::new(&config2, &names2.table()).unwrap();
    dir2.enroll_many(&[synthetic_enrollment(0, 1, 4)]).unwrap();
    dir2.remove("student-000000").unwrap();
    dir2.enroll_many(&[synthetic_enrollment(1, 1, 6)]).unwrap();
    assert_eq!(dir2.gallery().unwrap()[0].embedding.len(), 6);
}
