//! The Lambda binary under `cargo lambda watch` (the Lambda Runtime API emulator) against a moto
//! server: `rollcall aws provision`, `rollcall enroll --backend aws`, real clips cut from the
//! Hamilton video uploaded to S3, then `cargo lambda invoke --data-file lambda/events/...` with
//! every fixture: direct S3 events (full, moto-style, URL-encoded key), an SQS-wrapped batch
//! (clip + `s3:TestEvent` + poison message -> `batchItemFailures` names only the poison), a
//! missing clip (error result, not retried) and a malformed event (a clear `MalformedEvent`
//! error). Results must arrive on the device's SQS queue with the right person.
//!
//! Needs `cargo-lambda` (`scripts/cargo-lambda`, sourced by `scripts/test`: `ROLLCALL_CARGO_LAMBDA`
//! or `cargo-lambda` on PATH), `AWS_ENDPOINT_URL` (`scripts/moto`), the data set and the models.
//! Each missing piece skips with the reason printed, unless `ROLLCALL_REQUIRE_AWS=1` (tools,
//! moto) or `ROLLCALL_REQUIRE_DATA=1` (data, models). Nothing is written inside `lambda/` (the
//! watched folder): logs and photos go to a temporary directory.

#[path = "../../recognizer-lib/tests/common/mod.rs"]
mod common;

use common::{aws_endpoint as endpoint, skip_aws};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
use rollcall_edge::source::{open_source, Pace, SourceOptions, SourceSpec};
use rollcall_protocol::aws::{self, Names, SqsClient};
use rollcall_protocol::results::sqs::SqsResultQueue;
use rollcall_protocol::results::ResultQueue;
use rollcall_protocol::store::s3::S3ClipStore;
use rollcall_protocol::store::ClipStore;
use rollcall_protocol::wire::{ClipMeta, RecognitionResult};

/// The device and session the fixtures in `lambda/events/` name.
const DEVICE: &str = "cam-lambda";
const SESSION: &str = "s1";

/// The cargo-lambda executable: `$ROLLCALL_CARGO_LAMBDA`, else `cargo-lambda` on PATH.
fn cargo_lambda() -> Option<PathBuf> {
    let candidate = std::env::var_os("ROLLCALL_CARGO_LAMBDA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo-lambda"));
    let works = Command::new(&candidate)
        .args(["lambda", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        Some(candidate)
    } else {
        skip_aws("cargo-lambda not found (`. scripts/cargo-lambda` installs it)")
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lambda/ is inside the workspace")
        .to_path_buf()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The console binary (`rollcall`), built through cargo like any other target of the workspace
/// (a no-op when it is fresh).
fn rollcall_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "rollcall-console",
            "--bin",
            "rollcall",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "building rollcall failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "rollcall")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no rollcall executable")
}

/// `rollcall` with the AWS resources under `prefix`.
fn rollcall(binary: &Path, args: &[&str], prefix: &str) -> Output {
    let out = Command::new(binary)
        .args(args)
        .env("ROLLCALL_AWS_PREFIX", prefix)
        .output()
        .expect("run rollcall");
    assert!(out.status.success(), "rollcall {args:?}: {}", text(&out));
    out
}

/// `cargo lambda watch`, stopped (with its `cargo run` and the function) when dropped.
struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The watcher leads its own process group (see `start_watch`): end the whole group.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start_watch(cargo_lambda: &Path, port: u16, prefix: &str, log: PathBuf) -> Watch {
    use std::os::unix::process::CommandExt;
    let log_file = std::fs::File::create(&log).expect("watch log");
    let child = Command::new(cargo_lambda)
        .current_dir(workspace_root())
        .args([
            "lambda",
            "watch",
            // The working tree is shared and edited while tests run: no reloads.
            "--ignore-changes",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "--package",
            "rollcall-lambda",
            "--bin",
            "rollcall-lambda",
        ])
        .env("ROLLCALL_AWS_PREFIX", prefix)
        .env("RUST_LOG", "info,ort=warn")
        .stdout(log_file.try_clone().expect("watch log"))
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .expect("start cargo lambda watch");
    let mut watch = Watch { child, log };
    // The emulator listens before the function is built; the first invoke waits for the build.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = watch.child.try_wait() {
            panic!("cargo lambda watch exited ({status}): {}", watch.log());
        }
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch not listening on {port} after 120 s: {}",
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    watch
}

/// `cargo lambda invoke` with a fixture (`--data-file`) or inline JSON (`--data-ascii`).
fn invoke(cargo_lambda: &Path, port: u16, data: Data<'_>) -> Output {
    let (flag, value) = match data {
        Data::Fixture(name) => (
            "--data-file",
            workspace_root()
                .join("lambda/events")
                .join(name)
                .to_string_lossy()
                .into_owned(),
        ),
        Data::Inline(json) => ("--data-ascii", json.to_string()),
    };
    Command::new(cargo_lambda)
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            flag,
            &value,
            "rollcall-lambda",
        ])
        .output()
        .expect("run cargo lambda invoke")
}

enum Data<'a> {
    Fixture(&'a str),
    Inline(&'a str),
}

/// A successful invocation's response.
fn response(out: &Output, what: &str) -> serde_json::Value {
    assert!(out.status.success(), "{what}: {}", text(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: response is not JSON ({e}): {}", text(out)))
}

/// The first clips of the Hamilton video as `DEVICE`/`SESSION`, with their metadata.
fn hamilton_clips(data: &Path, count: usize) -> Vec<(ClipMeta, Vec<u8>)> {
    let video = data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4");
    let mut source = open_source(
        &SourceSpec::File(video),
        &SourceOptions {
            pace: Pace::Fast,
            ..SourceOptions::default()
        },
    )
    .expect("open the Hamilton video");
    let mut segmenter =
        ClipSegmenter::new(SegmentConfig::new(DEVICE, SESSION, source.fps())).unwrap();
    let mut clips = Vec::new();
    while clips.len() < count {
        match source.next_frame().unwrap() {
            Some(frame) => clips.extend(segmenter.push(frame).unwrap()),
            None => {
                clips.extend(segmenter.finish().unwrap());
                break;
            }
        }
    }
    clips.truncate(count);
    assert_eq!(clips.len(), count, "the video is too short");
    clips.into_iter().map(|c| (c.meta, c.bytes)).collect()
}

#[test]
fn lambda_under_cargo_lambda_watch_recognises_clips_from_every_event_shape() {
    let (Some(_), Some(cargo_lambda)) = (endpoint(), cargo_lambda()) else {
        return;
    };
    let Some(data) = common::data_dir() else {
        return;
    };
    if common::pipeline().is_none() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("rc-lambda-{}", std::process::id());

    // Provision and enrol with the console, as an operator would.
    let rollcall_bin = rollcall_binary();
    rollcall(
        &rollcall_bin,
        &["aws", "provision", "--prefix", &prefix, "--device", DEVICE],
        &prefix,
    );
    let photos = tmp.path().join("enroll");
    for (person, photo) in [
        ("lin_manuel_miranda", "lin-manuel-miranda.png"),
        ("alex_lacamoire", "alex-lacamoire.png"),
        ("barack_obama", "obama.jpg"),
    ] {
        std::fs::create_dir_all(photos.join(person)).unwrap();
        std::fs::copy(
            data.join("examples").join(person).join(photo),
            photos.join(person).join(photo),
        )
        .unwrap();
    }
    let out = rollcall(
        &rollcall_bin,
        &[
            "enroll",
            "--backend",
            "aws",
            "--photos",
            photos.to_str().unwrap(),
        ],
        &prefix,
    );
    assert!(
        text(&out).contains(&format!("dynamodb:{prefix}-people")),
        "{}",
        text(&out)
    );

    // The clips the fixtures name (seq 0-3), uploaded with their metadata.
    let clips = hamilton_clips(&data, 4);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime.block_on(aws::load_config());
    let names = Names::new(&prefix);
    let store = S3ClipStore::from_config(&config, &names.bucket);
    runtime.block_on(async {
        for (meta, bytes) in &clips {
            store.put(&meta.object_key(), meta, bytes).await.unwrap();
        }
    });
    let prepared = started.elapsed();

    // The function under the emulator (built by cargo run; the target dir is shared).
    let port = free_port();
    let watch = start_watch(&cargo_lambda, port, &prefix, tmp.path().join("watch.log"));

    let invoked = Instant::now();
    let mut direct_results = Vec::new();
    for fixture in ["s3-put.json", "s3-put-encoded-key.json", "s3-put-moto.json"] {
        let out = invoke(&cargo_lambda, port, Data::Fixture(fixture));
        let reply = response(&out, fixture);
        let results: Vec<RecognitionResult> =
            serde_json::from_value(reply["results"].clone()).unwrap();
        assert_eq!(results.len(), 1, "{fixture}: {reply}");
        assert!(
            results[0].error.is_none(),
            "{fixture}: {:?}",
            results[0].error
        );
        direct_results.push(results[0].clone());
        if fixture == "s3-put.json" {
            eprintln!(
                "first invoke (build + cold start + clip): {:.1} s",
                invoked.elapsed().as_secs_f64()
            );
        }
    }
    let warm = Instant::now();
    // SQS batch: the clip and the test event succeed, only the poison message is retried.
    let reply = response(
        &invoke(&cargo_lambda, port, Data::Fixture("sqs-s3-put.json")),
        "sqs-s3-put.json",
    );
    assert_eq!(
        reply,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "msg-poison"}]}),
        "{}",
        watch.log()
    );
    eprintln!(
        "warm SQS invoke: {:.0} ms",
        warm.elapsed().as_secs_f64() * 1e3
    );
    // A test event alone: nothing to do.
    let reply = response(
        &invoke(&cargo_lambda, port, Data::Fixture("s3-test-event.json")),
        "s3-test-event.json",
    );
    assert_eq!(reply["results"], serde_json::json!([]));
    // A clip that is not in the bucket: an error result, published, not retried.
    let missing_key = format!("clips/{DEVICE}/{SESSION}/00000999.h264");
    let missing = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"object": {"key": missing_key.replace('/', "%2F")}}}]})
    .to_string();
    let reply = response(
        &invoke(&cargo_lambda, port, Data::Inline(&missing)),
        "missing clip",
    );
    let error = reply["results"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&missing_key), "{reply}");
    // A malformed event: a clear error, no result.
    let out = invoke(&cargo_lambda, port, Data::Fixture("malformed.json"));
    assert!(
        !out.status.success(),
        "malformed event accepted: {}",
        text(&out)
    );
    let message = text(&out);
    assert!(
        message.contains("MalformedEvent")
            && message.contains("unusable storage notification: no Records array"),
        "{message}"
    );

    // Every result reached the device's queue: clips 0-3 and the missing clip's error.
    let sqs = SqsClient::new(&config);
    let queue = SqsResultQueue::new(sqs, &prefix);
    let mut results: BTreeMap<String, RecognitionResult> = BTreeMap::new();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while results.len() < clips.len() + 1 {
            assert!(
                Instant::now() < deadline,
                "results so far: {:?}",
                results.keys()
            );
            let got = queue
                .receive(DEVICE, 10, Duration::from_secs(1))
                .await
                .unwrap();
            let receipts: Vec<String> = got.iter().filter_map(|d| d.receipt.clone()).collect();
            for delivery in got {
                assert_eq!(delivery.result.device_id, DEVICE);
                results.insert(delivery.result.clip_id.clone(), delivery.result);
            }
            queue.ack(DEVICE, &receipts).await.unwrap();
        }
    });
    for (meta, _) in &clips {
        let result = results
            .get(&meta.clip_id())
            .unwrap_or_else(|| panic!("no result for {}", meta.clip_id()));
        assert!(result.error.is_none(), "{:?}", result.error);
        assert_eq!(result.closed_ns, meta.closed_ns, "object metadata used");
        // One sandbox (the emulator sets no log stream name: the `<host>-<pid>` fallback).
        assert!(!result.instance_id.is_empty());
        assert_eq!(result.instance_id, direct_results[0].instance_id);
    }
    assert_eq!(
        results.values().filter(|r| r.cold_start).count(),
        1,
        "exactly the first clip of the sandbox is a cold start"
    );
    assert!(direct_results[0].cold_start, "{:?}", direct_results[0]);
    let missing_result = &results[&format!("{DEVICE}/{SESSION}/00000999")];
    assert!(missing_result.error.is_some());
    // The right person, by name, and no one else enrolled.
    let seen: Vec<&RecognitionResult> = results
        .values()
        .filter(|r| r.people.iter().any(|p| p.person_id == "lin_manuel_miranda"))
        .collect();
    assert!(
        !seen.is_empty(),
        "Lin-Manuel Miranda in none of {results:?}"
    );
    assert_eq!(seen[0].people[0].name, "Lin Manuel Miranda");
    assert!(
        results
            .values()
            .all(|r| r.people.iter().all(|p| p.person_id != "barack_obama")),
        "{results:?}"
    );
    let log = watch.log();
    assert!(
        log.contains("cold start: models and gallery loaded"),
        "{log}"
    );
    eprintln!(
        "prepared in {:.1} s, invocations in {:.1} s, {} clips recognised: {:?}",
        prepared.as_secs_f64(),
        invoked.elapsed().as_secs_f64(),
        results.len(),
        results
            .values()
            .map(|r| (
                r.clip_id.as_str(),
                r.people
                    .iter()
                    .map(|p| p.person_id.as_str())
                    .collect::<Vec<_>>(),
                r.timings.total_ms.round()
            ))
            .collect::<Vec<_>>()
    );
}
