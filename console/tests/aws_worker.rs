//! The AWS deployment end to end against a moto server (started by `scripts/test`):
//! `rollcall aws provision`, `rollcall enroll --backend aws` (DynamoDB), real clips cut from the
//! Hamilton video uploaded to S3 with their metadata, the S3 -> SQS notification, a
//! `rollcall worker` process, results on the device's queue with the right person, a duplicate
//! event, a corrupt clip (error result) and a malformed message (dead-letter queue after 3
//! receives).
//!
//! Skipped with the reason printed without `AWS_ENDPOINT_URL` (unless `ROLLCALL_REQUIRE_AWS=1`),
//! without the data set (unless `ROLLCALL_REQUIRE_DATA=1`) or the models.
#![cfg(feature = "aws")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{
    aws_endpoint as endpoint, data_dir, enroll_examples_aws, models_present,
    rollcall_aws as rollcall, text,
};
use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
use rollcall_edge::source::{open_source, Pace, SourceOptions, SourceSpec};
use rollcall_protocol::aws::{self, Names, SqsClient};
use rollcall_protocol::results::sqs::SqsResultQueue;
use rollcall_protocol::results::ResultQueue;
use rollcall_protocol::store::s3::S3ClipStore;
use rollcall_protocol::store::ClipStore;
use rollcall_protocol::wire::RecognitionResult;

#[test]
fn worker_recognises_s3_clips_and_routes_results_errors_and_poison_messages() {
    if endpoint().is_none() {
        return;
    }
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("rc-worker-{}", std::process::id());
    let device = "cam-aws";

    // Provision (short visibility timeout so the poison message reaches the DLQ quickly).
    let out = rollcall(
        &[
            "aws",
            "provision",
            "--prefix",
            &prefix,
            "--device",
            device,
            "--visibility-timeout",
            "2s",
        ],
        &prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    let provisioned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events_url = provisioned["events_queue_url"]
        .as_str()
        .unwrap()
        .to_string();
    let dlq_url = provisioned["dlq_url"].as_str().unwrap().to_string();

    // Enrol into DynamoDB.
    let out = enroll_examples_aws(
        &data,
        tmp.path(),
        &prefix,
        &[
            ("lin_manuel_miranda", "lin-manuel-miranda.png"),
            ("alex_lacamoire", "alex-lacamoire.png"),
            ("barack_obama", "obama.jpg"),
        ],
    );
    assert!(
        text(&out).contains(&format!("dynamodb:{prefix}-people")),
        "{}",
        text(&out)
    );

    // Cut real clips and upload them with their metadata.
    let video = data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4");
    let mut source = open_source(
        &SourceSpec::File(video.clone()),
        &SourceOptions {
            pace: Pace::Fast,
            ..SourceOptions::default()
        },
    )
    .unwrap();
    let mut segmenter = ClipSegmenter::new(SegmentConfig::new(device, "s1", source.fps())).unwrap();
    let mut clips = Vec::new();
    while let Some(frame) = source.next_frame().unwrap() {
        clips.extend(segmenter.push(frame).unwrap());
    }
    clips.extend(segmenter.finish().unwrap());
    assert!(clips.len() >= 10, "{} clips", clips.len());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime.block_on(aws::load_config());
    let names = Names::new(&prefix);
    let store = S3ClipStore::from_config(&config, &names.bucket);
    let sqs = SqsClient::new(&config);
    let mut put_ms = Vec::new();
    runtime.block_on(async {
        for clip in &clips {
            let started = Instant::now();
            store
                .put(&clip.meta.object_key(), &clip.meta, &clip.bytes)
                .await
                .unwrap();
            put_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        // A corrupt clip (valid key and metadata, garbage bytes).
        let mut corrupt = clips[0].meta.clone();
        corrupt.seq = 999;
        store
            .put(
                &corrupt.object_key(),
                &corrupt,
                b"\0\0\0\x01garbage, not H.264",
            )
            .await
            .unwrap();
        // A duplicate event for clip 0 (SQS-wrapped, URL-encoded key) and a poison message.
        let encoded = clips[0].meta.object_key().replace('/', "%2F");
        let record = serde_json::json!({"Records": [{"eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": names.bucket}, "object": {"key": encoded}}}]});
        let wrapped = serde_json::json!({"Records": [{"eventSource": "aws:sqs",
            "body": record.to_string()}]});
        for body in [wrapped.to_string(), "this is not an S3 event".to_string()] {
            sqs.send_message()
                .queue_url(&events_url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
    });
    put_ms.sort_by(f64::total_cmp);
    eprintln!(
        "moto: S3 put of {} clips, median {:.1} ms",
        put_ms.len(),
        put_ms[put_ms.len() / 2]
    );

    // The worker, as a process.
    let out = rollcall(
        &[
            "worker",
            "--prefix",
            &prefix,
            "--max-workers",
            "2",
            "--wait",
            "1s",
            "--idle-exit",
            "8s",
            "--json",
        ],
        &prefix,
    );
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("worker JSON");
    eprintln!("worker: {stats}");
    assert!(
        stats["worker"]["unparsable"].as_u64().unwrap() >= 3,
        "{stats}"
    );

    // Results on the device's queue.
    let queue = SqsResultQueue::new(sqs.clone(), &prefix);
    let mut results: BTreeMap<String, Vec<RecognitionResult>> = BTreeMap::new();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while results.len() < clips.len() + 1
            || results.values().map(Vec::len).sum::<usize>() < clips.len() + 2
        {
            assert!(
                Instant::now() < deadline,
                "results so far: {:?}",
                results.keys()
            );
            let got = queue
                .receive(device, 10, Duration::from_secs(1))
                .await
                .unwrap();
            let receipts: Vec<String> = got.iter().filter_map(|d| d.receipt.clone()).collect();
            for d in got {
                assert_eq!(d.result.device_id, device);
                results
                    .entry(d.result.clip_id.clone())
                    .or_default()
                    .push(d.result);
            }
            queue.ack(device, &receipts).await.unwrap();
        }
    });
    for clip in &clips {
        let got = results
            .get(&clip.meta.clip_id())
            .unwrap_or_else(|| panic!("no result for {}", clip.meta.clip_id()));
        assert!(got[0].error.is_none(), "{:?}", got[0].error);
        assert_eq!(
            got[0].closed_ns, clip.meta.closed_ns,
            "object metadata used"
        );
    }
    // The duplicate event: the same result again.
    let first = &results[&clips[0].meta.clip_id()];
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0].people, first[1].people);
    // The corrupt clip: an error result naming its key.
    let mut corrupt = clips[0].meta.clone();
    corrupt.seq = 999;
    let bad = &results[&corrupt.clip_id()][0];
    let error = bad.error.as_deref().expect("error result");
    assert!(error.contains(&corrupt.object_key()), "{error}");
    // The right person.
    let seen: Vec<&str> = results
        .values()
        .flat_map(|r| r[0].people.iter().map(|p| p.person_id.as_str()))
        .collect();
    assert!(seen.contains(&"lin_manuel_miranda"), "{seen:?}");
    assert!(!seen.contains(&"barack_obama"), "{seen:?}");
    let lin = results
        .values()
        .flat_map(|r| r[0].people.iter())
        .find(|p| p.person_id == "lin_manuel_miranda")
        .unwrap();
    assert_eq!(lin.name, "Lin Manuel Miranda");

    // The poison message is in the dead-letter queue; the events queue is empty.
    runtime.block_on(async {
        let dead = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let bodies: Vec<&str> = dead.messages().iter().filter_map(|m| m.body()).collect();
        assert_eq!(bodies, ["this is not an S3 event"]);
        let left = sqs
            .receive_message()
            .queue_url(&events_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        assert!(left.messages().is_empty(), "{:?}", left.messages());
    });
}
