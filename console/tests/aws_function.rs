//! The recognition function's hardening, end to end against a moto server with `rollcall worker`
//! processes and real clips cut from the Hamilton video:
//!
//! - the object key routes every result: metadata naming another device gets an error result on
//!   the key's device and nothing on the other; partial or missing metadata is filled in;
//! - an overwrite of a key (a new object version) gets a new result, a redelivery of the old
//!   version the old one;
//! - refused keys (space, `:` in an ISO session id, non-ASCII, wrong layout) get an error result
//!   on the device they name; a message with a bad record and a good one answers the good one;
//! - a worker killed (SIGKILL) with clips in hand: after a restart every clip is answered within
//!   15 s; SIGTERM and SIGHUP drain the clips in hand;
//! - the dead-letter queue: `rollcall aws dlq list` gives each message's reason,
//!   `rollcall aws dlq redrive` sends chosen ones back.
//!
//! Skipped with the reason printed without `AWS_ENDPOINT_URL` (unless `ROLLCALL_REQUIRE_AWS=1`),
//! the data set (unless `ROLLCALL_REQUIRE_DATA=1`) or the models.
#![cfg(feature = "aws")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{aws_endpoint, data_dir, models_present, rollcall_aws, rollcall_command, text};
use rollcall_edge::segment::{ClipSegmenter, EncodedClip, SegmentConfig};
use rollcall_edge::source::{open_source, Pace, SourceOptions, SourceSpec};
use rollcall_protocol::aws::{self, Names, S3Client, SqsClient};
use rollcall_protocol::results::sqs::SqsResultQueue;
use rollcall_protocol::results::ResultQueue;
use rollcall_protocol::store::s3::META_FIELD;
use rollcall_protocol::wire::{ClipMeta, RecognitionResult};
use serde_json::Value;

/// A provisioned deployment of its own (unique prefix) and clients for it.
struct Deployment {
    prefix: String,
    names: Names,
    runtime: tokio::runtime::Runtime,
    s3: S3Client,
    sqs: SqsClient,
    events_url: String,
    dlq_url: String,
}

/// Provision `<name>-<pid>` with result queues for `devices` (and extra provision flags).
fn deploy(name: &str, devices: &[&str], extra: &[&str]) -> Deployment {
    let prefix = format!("rc-{name}-{}", std::process::id());
    let mut args = vec!["aws", "provision", "--prefix", &prefix];
    for device in devices {
        args.extend(["--device", device]);
    }
    args.extend(extra);
    let out = rollcall_aws(&args, &prefix);
    assert!(out.status.success(), "{}", text(&out));
    let provisioned: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime.block_on(aws::load_config());
    Deployment {
        names: Names::new(&prefix),
        prefix,
        s3: aws::s3_client(&config),
        sqs: SqsClient::new(&config),
        runtime,
        events_url: provisioned["events_queue_url"]
            .as_str()
            .unwrap()
            .to_string(),
        dlq_url: provisioned["dlq_url"].as_str().unwrap().to_string(),
    }
}

impl Deployment {
    /// Put `bytes` under `key` as it is, with `meta` (a JSON text) as rollcall metadata if given:
    /// what a foreign client (or a spoofing one) can do, bypassing rollcall's key checks.
    fn put(&self, key: &str, bytes: &[u8], meta: Option<String>) {
        self.runtime.block_on(async {
            let mut put = self
                .s3
                .put_object()
                .bucket(&self.names.bucket)
                .key(key)
                .body(bytes.to_vec().into());
            if let Some(meta) = meta {
                put = put.metadata(META_FIELD, meta);
            }
            put.send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e}"));
        });
    }

    /// Send a message body to the events queue.
    fn send_event(&self, body: &str) {
        self.runtime.block_on(async {
            self.sqs
                .send_message()
                .queue_url(&self.events_url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        });
    }

    /// Receive and delete every message of the events queue (none may be in flight): the S3
    /// notification record of each object key.
    fn drain_notifications(&self) -> BTreeMap<String, Value> {
        let mut records = BTreeMap::new();
        self.runtime.block_on(async {
            loop {
                let out = self
                    .sqs
                    .receive_message()
                    .queue_url(&self.events_url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .unwrap();
                if out.messages().is_empty() {
                    break;
                }
                for message in out.messages() {
                    let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
                    for record in body["Records"].as_array().into_iter().flatten() {
                        let raw = record["s3"]["object"]["key"].as_str().unwrap();
                        let key = rollcall_protocol::events::decode_key(raw).unwrap();
                        records.insert(key, record.clone());
                    }
                    self.sqs
                        .delete_message()
                        .queue_url(&self.events_url)
                        .receipt_handle(message.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        });
        records
    }

    /// Results on `device`'s queue until `done` says so (or `timeout`: fails), acknowledged.
    fn results_until(
        &self,
        device: &str,
        results: &mut BTreeMap<String, Vec<RecognitionResult>>,
        timeout: Duration,
        done: impl Fn(&BTreeMap<String, Vec<RecognitionResult>>) -> bool,
    ) {
        let queue = SqsResultQueue::new(self.sqs.clone(), &self.prefix);
        let deadline = Instant::now() + timeout;
        self.runtime.block_on(async {
            while !done(results) {
                assert!(
                    Instant::now() < deadline,
                    "{device}: results so far {:#?}",
                    results
                        .iter()
                        .map(|(id, r)| (id, r.iter().map(|r| r.error.clone()).collect::<Vec<_>>()))
                        .collect::<Vec<_>>()
                );
                let got = queue
                    .receive(device, 10, Duration::from_secs(1))
                    .await
                    .unwrap();
                let receipts: Vec<String> = got.iter().filter_map(|d| d.receipt.clone()).collect();
                for d in got {
                    assert_eq!(d.result.device_id, device, "{:?}", d.result);
                    results
                        .entry(d.result.clip_id.clone())
                        .or_default()
                        .push(d.result);
                }
                queue.ack(device, &receipts).await.unwrap();
            }
        });
    }

    /// Everything on `device`'s queue now (waiting `wait` for the first result).
    fn results_now(&self, device: &str, wait: Duration) -> Vec<RecognitionResult> {
        let queue = SqsResultQueue::new(self.sqs.clone(), &self.prefix);
        self.runtime.block_on(async {
            queue
                .receive(device, 10, wait)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.result)
                .collect()
        })
    }

    /// An attribute of a queue, as a number.
    fn queue_number(&self, url: &str, name: &str) -> u64 {
        self.runtime.block_on(async {
            let out = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(name.into())
                .send()
                .await
                .unwrap();
            out.attributes()
                .into_iter()
                .flatten()
                .find(|(k, _)| k.as_str() == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} on {url}"))
        })
    }

    /// Start a `rollcall worker` process (stderr to `log`).
    fn worker(&self, log: &Path, extra: &[&str]) -> Worker {
        let log_file = std::fs::File::create(log).unwrap();
        Worker(
            rollcall_command()
                .args([
                    "worker",
                    "--prefix",
                    &self.prefix,
                    "--wait",
                    "1s",
                    "--no-cloudwatch-logs",
                    "--json",
                ])
                .args(extra)
                .env("ROLLCALL_AWS_PREFIX", &self.prefix)
                .stdout(Stdio::piped())
                .stderr(log_file)
                .spawn()
                .expect("start rollcall worker"),
        )
    }
}

/// A `rollcall worker` process, killed when dropped.
struct Worker(Child);

impl Worker {
    /// Wait for the worker to exit (at most `timeout`); its JSON summary.
    fn finish(mut self, timeout: Duration, log: &Path) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut stdout = String::new();
                use std::io::Read as _;
                self.0
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut stdout)
                    .unwrap();
                let log = std::fs::read_to_string(log).unwrap_or_default();
                assert!(status.success(), "worker {status}:\n{log}");
                return serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("worker JSON ({e}): {stdout:?}\n{log}"));
            }
            assert!(
                Instant::now() < deadline,
                "worker still running:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Send a signal to the worker.
    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Up to `max` 0.5 s clips of the Hamilton video for `device`/`session`.
fn hamilton_clips(data: &Path, device: &str, session: &str, max: usize) -> Vec<EncodedClip> {
    let video = data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4");
    let mut source = open_source(
        &SourceSpec::File(video),
        &SourceOptions {
            pace: Pace::Fast,
            ..SourceOptions::default()
        },
    )
    .unwrap();
    let mut segmenter =
        ClipSegmenter::new(SegmentConfig::new(device, session, source.fps())).unwrap();
    let mut clips = Vec::new();
    while clips.len() < max {
        match source.next_frame().unwrap() {
            Some(frame) => clips.extend(segmenter.push(frame).unwrap()),
            None => {
                clips.extend(segmenter.finish().unwrap());
                break;
            }
        }
    }
    clips.truncate(max);
    clips
}

fn meta_json(meta: &ClipMeta) -> Option<String> {
    Some(serde_json::to_string(meta).unwrap())
}

/// The prerequisites of every test here: moto, the data set, the models.
fn ready() -> Option<std::path::PathBuf> {
    aws_endpoint()?;
    let data = data_dir()?;
    models_present().then_some(data)
}

#[test]
fn the_object_key_routes_every_result_and_versions_are_answered_once_each() {
    let Some(data) = ready() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = deploy("routes", &["deva", "devb"], &[]);
    let clips = hamilton_clips(&data, "deva", "s1", 6);
    assert_eq!(clips.len(), 6);
    let key = |seq: u64| format!("clips/deva/s1/{seq:08}.h264");

    // Clip 0 as rollcall's edge sends it; clip 1 under deva's key with metadata naming devb;
    // clip 2 with only some metadata; clip 3 with none; clip 5 for a two-record message.
    d.put(&key(0), &clips[0].bytes, meta_json(&clips[0].meta));
    let mut spoof = clips[1].meta.clone();
    spoof.device_id = "devb".into();
    d.put(&key(1), &clips[1].bytes, meta_json(&spoof));
    d.put(&key(2), &clips[2].bytes, Some(r#"{"fps": 30.0}"#.into()));
    d.put(&key(3), &clips[3].bytes, None);
    d.put(&key(5), &clips[5].bytes, meta_json(&clips[5].meta));
    // Refused keys whose device can be read, and one whose device cannot.
    let refused = [
        ("clips/deva/s 1/00000001.h264", "outside [A-Za-z0-9._-]"),
        (
            "clips/deva/2026-11-26T21:00:00Z/00000001.h264",
            "session id",
        ),
        (
            "clips/deva/sessi\u{f6}n/00000001.h264",
            "outside [A-Za-z0-9._-]",
        ),
        (
            "clips/deva/00000001.h264",
            "not clips/<device>/<session>/<seq>.h264",
        ),
        ("clips/deva/s1/1.h264", "8 or more digits"),
    ];
    for (bad, _) in refused {
        d.put(bad, &clips[4].bytes, meta_json(&clips[4].meta));
    }
    let unroutable = "clips/dev a/s1/00000001.h264";
    d.put(unroutable, &clips[4].bytes, None);
    let started_ns = rollcall_protocol::wire::unix_now_ns();

    // The notifications as moto made them: one message each, except a message holding the
    // unroutable record and clip 5's.
    let records = d.drain_notifications();
    for (k, record) in &records {
        if k != unroutable && *k != key(5) {
            d.send_event(&serde_json::json!({ "Records": [record] }).to_string());
        }
    }
    d.send_event(
        &serde_json::json!({ "Records": [records[unroutable].clone(), records[&key(5)].clone()] })
            .to_string(),
    );

    let log = tmp.path().join("worker.log");
    // A short visibility: the message with the unroutable record reaches the DLQ in seconds.
    let worker = d.worker(
        &log,
        &[
            "--max-workers",
            "2",
            "--idle-exit",
            "8s",
            "--visibility",
            "3s",
        ],
    );
    let mut results = BTreeMap::new();
    let expected: Vec<String> = [0, 1, 2, 3, 5]
        .iter()
        .map(|seq| format!("deva/s1/{seq:08}"))
        .chain(refused.iter().map(|(k, _)| {
            k.trim_start_matches("clips/")
                .trim_end_matches(".h264")
                .to_string()
        }))
        .collect();
    d.results_until("deva", &mut results, Duration::from_secs(60), |r| {
        expected.iter().all(|id| r.contains_key(id))
    });
    let first = |id: &str| results[id][0].clone();

    // Rollcall's own clip: recognised, its metadata used.
    let zero = first("deva/s1/00000000");
    assert_eq!(zero.error, None);
    assert_eq!(zero.closed_ns, clips[0].meta.closed_ns);
    // The spoof: an error result on deva, nothing ever on devb.
    let spoofed = first("deva/s1/00000001");
    let error = spoofed.error.as_deref().expect("error result");
    assert!(
        error.contains("device_id") && error.contains("devb") && error.contains(&key(1)),
        "{error}"
    );
    // Partial and missing metadata: filled in (closed_ns from S3's LastModified, 1 s precision).
    for id in ["deva/s1/00000002", "deva/s1/00000003"] {
        let result = first(id);
        assert_eq!(result.error, None, "{id}");
        assert!(
            result.closed_ns + 2_000_000_000 >= started_ns
                && result.closed_ns <= result.completed_ns,
            "{id}: closed_ns {} from LastModified (test started {started_ns})",
            result.closed_ns
        );
    }
    // The good record next to an unroutable one is answered.
    assert_eq!(first("deva/s1/00000005").error, None);
    // Refused keys: an error result on deva naming the key and the problem.
    for (bad, words) in refused {
        let id = bad.trim_start_matches("clips/").trim_end_matches(".h264");
        let result = first(id);
        let error = result.error.as_deref().expect("error result");
        assert!(
            error.contains(bad) && error.contains(words),
            "{bad}: {error}"
        );
    }

    // An overwrite of clip 0's key with other bytes: a new version, a new result; then the old
    // version's notification delivered again: the old result again, from memory.
    d.put(&key(0), &clips[4].bytes, meta_json(&clips[0].meta));
    d.results_until("deva", &mut results, Duration::from_secs(30), |r| {
        r["deva/s1/00000000"].len() >= 2
    });
    let second = results["deva/s1/00000000"][1].clone();
    assert_ne!(second, zero, "an overwrite is analysed anew");
    assert_eq!(second.error, None);
    d.send_event(&serde_json::json!({ "Records": [records[&key(0)]] }).to_string());
    d.results_until("deva", &mut results, Duration::from_secs(30), |r| {
        r["deva/s1/00000000"].len() >= 3
    });
    assert_eq!(
        results["deva/s1/00000000"][2], zero,
        "a redelivery of the first version republishes its result"
    );

    let stats = worker.finish(Duration::from_secs(90), &log);
    eprintln!("worker: {stats}");
    // Metadata never routed anything to devb.
    assert!(d.results_now("devb", Duration::from_secs(1)).is_empty());
    assert_eq!(stats["handler"]["gallery_loads"], 1, "{stats}");
    assert!(stats["worker"]["dropped"].as_u64().unwrap() >= 1, "{stats}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("message left for the dead-letter queue") && log.contains("dev a"),
        "{log}"
    );
}

#[test]
fn a_killed_worker_s_clips_come_back_within_seconds_and_signals_drain() {
    let Some(data) = ready() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = deploy("kill", &["cam-k"], &[]);
    let clips = hamilton_clips(&data, "cam-k", "s1", 16);
    for clip in &clips {
        d.put(&clip.meta.object_key(), &clip.bytes, meta_json(&clip.meta));
    }
    let all = |r: &BTreeMap<String, Vec<RecognitionResult>>| {
        clips.iter().all(|c| r.contains_key(&c.meta.clip_id()))
    };

    // Every clip analysed (`--sample all`: slow enough to have clips in hand), two at a time;
    // killed once some are answered.
    let log = tmp.path().join("killed.log");
    let worker = d.worker(&log, &["--max-workers", "2", "--sample", "all"]);
    let mut results = BTreeMap::new();
    d.results_until("cam-k", &mut results, Duration::from_secs(120), |r| {
        r.len() >= 3
    });
    worker.signal("KILL");
    drop(worker);
    let in_flight = d.queue_number(&d.events_url, "ApproximateNumberOfMessagesNotVisible");
    assert!(in_flight >= 1, "clips were in hand when the worker died");
    let answered_before = results.len();
    assert!(answered_before < clips.len());

    // The restart: every clip answered within 15 s (model loading included).
    let restarted = Instant::now();
    let log = tmp.path().join("restarted.log");
    let worker = d.worker(&log, &["--max-workers", "2"]);
    d.results_until("cam-k", &mut results, Duration::from_secs(60), all);
    let took = restarted.elapsed();
    eprintln!(
        "{} clips, {answered_before} answered before SIGKILL, {in_flight} in hand; all answered {:.1} s after the restart",
        clips.len(),
        took.as_secs_f64()
    );
    assert!(took <= Duration::from_secs(15), "took {took:?}");
    // Once each: a clip may be answered twice only if its result was published in the instant
    // between publishing and deleting its message when the worker died (SQS cannot publish
    // and delete atomically; the edge drops such a duplicate by clip id).
    let twice: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.len() as u64 <= in_flight, "answered twice: {twice:?}");
    assert!(results.values().flatten().all(|r| r.error.is_none()));

    // A message whose result the killed worker published just before dying (before deleting
    // it) stays invisible until its visibility timeout runs out; the restarted worker then
    // receives it, republishes (a duplicate the edge drops) and deletes it. Wait for that, so
    // that what is in hand below is the draining worker's alone.
    let settling = Instant::now();
    while d.queue_number(&d.events_url, "ApproximateNumberOfMessagesNotVisible") > 0 {
        assert!(
            settling.elapsed() < Duration::from_secs(45),
            "the killed worker's message never came back"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // SIGTERM drains: no new messages, the clips in hand finished, exit 0 with the summary.
    let more = hamilton_clips(&data, "cam-k", "s2", 8);
    for clip in &more {
        d.put(&clip.meta.object_key(), &clip.bytes, meta_json(&clip.meta));
    }
    let mut drained = BTreeMap::new();
    d.results_until("cam-k", &mut drained, Duration::from_secs(60), |r| {
        r.keys().any(|id| id.starts_with("cam-k/s2/"))
    });
    worker.signal("TERM");
    let stats = worker.finish(Duration::from_secs(30), &log);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("SIGTERM: finishing the clips in hand"),
        "{log}"
    );
    assert_eq!(
        d.queue_number(&d.events_url, "ApproximateNumberOfMessagesNotVisible"),
        0,
        "nothing left in hand: {stats}"
    );
    assert!(stats["worker"]["extended"].as_u64().is_some(), "{stats}");

    // SIGHUP too.
    let log = tmp.path().join("hangup.log");
    let worker = d.worker(&log, &["--max-workers", "2"]);
    d.results_until("cam-k", &mut drained, Duration::from_secs(60), |r| {
        more.iter().all(|c| r.contains_key(&c.meta.clip_id()))
    });
    worker.signal("HUP");
    worker.finish(Duration::from_secs(30), &log);
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("SIGHUP: finishing the clips in hand"));
}

#[test]
fn dead_letters_are_listed_with_their_reason_and_redriven() {
    let Some(data) = ready() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = deploy("dlq", &["cam-d"], &["--visibility-timeout", "1s"]);
    let clips = hamilton_clips(&data, "cam-d", "s1", 2);
    for clip in &clips {
        d.put(&clip.meta.object_key(), &clip.bytes, meta_json(&clip.meta));
    }
    d.put("clips/cam d/s1/00000000.h264", &clips[0].bytes, None);
    let records = d.drain_notifications();
    // Poison, an unroutable record, a message with an unroutable record and a good one, a
    // good message.
    d.send_event("this is not an S3 event");
    d.send_event(
        &serde_json::json!({ "Records": [records["clips/cam d/s1/00000000.h264"]] }).to_string(),
    );
    d.send_event(
        &serde_json::json!({ "Records": [
            records["clips/cam d/s1/00000000.h264"],
            records[&clips[0].meta.object_key()],
        ] })
        .to_string(),
    );
    d.send_event(
        &serde_json::json!({ "Records": [records[&clips[1].meta.object_key()]] }).to_string(),
    );

    let log = tmp.path().join("worker.log");
    let worker = d.worker(&log, &["--visibility", "1s", "--idle-exit", "8s"]);
    let mut results = BTreeMap::new();
    d.results_until("cam-d", &mut results, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    let stats = worker.finish(Duration::from_secs(90), &log);
    eprintln!("worker: {stats}");
    assert_eq!(d.queue_number(&d.dlq_url, "ApproximateNumberOfMessages"), 3);

    // `dlq list`: each message with its reason (and nothing consumed).
    let list = |json: bool| {
        let mut args = vec!["aws", "dlq", "list", "--prefix", &d.prefix];
        if json {
            args.push("--json");
        }
        let out = rollcall_aws(&args, &d.prefix);
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let out = list(false);
    let human = text(&out);
    assert!(human.contains("3 message(s)"), "{human}");
    let letters: Vec<Value> = String::from_utf8(list(true).stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{letters:#?}");
    let reason = |needle: &str| {
        letters
            .iter()
            .find(|l| l["body"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no dead letter with {needle}: {letters:#?}"))
    };
    let poison = reason("this is not an S3 event");
    assert!(
        poison["reason"].as_str().unwrap().contains("not JSON"),
        "{poison}"
    );
    let two = letters
        .iter()
        .find(|l| l["keys"].as_array().unwrap().len() == 2)
        .unwrap();
    assert!(
        two["reason"]
            .as_str()
            .unwrap()
            .contains("clips/cam d/s1/00000000.h264")
            && two["reason"].as_str().unwrap().contains("names no device"),
        "{two}"
    );
    // Its good record was answered anyway (once per receive, the same result).
    let good = &results[&clips[0].meta.clip_id()];
    assert!(good.iter().all(|r| r == &good[0] && r.error.is_none()));
    assert!(
        human.contains(two["message_id"].as_str().unwrap()),
        "{human}"
    );

    // `dlq redrive ID`: that one goes back to the events queue, the others stay.
    let id = poison["message_id"].as_str().unwrap();
    let out = rollcall_aws(
        &["aws", "dlq", "redrive", "--prefix", &d.prefix, "--json", id],
        &d.prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    let redriven: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(redriven["sent"][0][0], id, "{redriven}");
    assert_eq!(d.queue_number(&d.dlq_url, "ApproximateNumberOfMessages"), 2);
    assert_eq!(
        d.queue_number(&d.events_url, "ApproximateNumberOfMessages"),
        1
    );
    let out = rollcall_aws(
        &["aws", "dlq", "redrive", "--prefix", &d.prefix, "no-such-id"],
        &d.prefix,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no-such-id is not in"),
        "{}",
        text(&out)
    );
    let out = rollcall_aws(
        &["aws", "dlq", "redrive", "--prefix", &d.prefix, "--all"],
        &d.prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.queue_number(&d.dlq_url, "ApproximateNumberOfMessages"), 0);
    assert_eq!(
        d.queue_number(&d.events_url, "ApproximateNumberOfMessages"),
        3
    );
}
