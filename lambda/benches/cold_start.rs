//! Lambda cold start: process start -> ready for the first event, and peak memory, with a
//! gallery of 1,000 and 30,000 people.
//!
//! `cargo bench -p rollcall-lambda --bench cold_start` (a moto server: `. scripts/moto`; the
//! models: `rollcall models fetch`). For each gallery size it fills a DynamoDB table with
//! synthetic people (3 enrolment embeddings each, as `rollcall enroll` stores them), publishes
//! the gallery snapshot to S3, then starts the real `bootstrap` (this package's release binary)
//! against the Lambda Runtime API served on loopback (`tests/runtime_api`). Ready = the
//! function's first `GET /runtime/invocation/next`, which it sends once the models and the
//! gallery are loaded; peak memory = its VmHWM at that moment. The same start without the
//! snapshot (the table scan it replaces) is measured for the smaller galleries.
//!
//! `ROLLCALL_BENCH_PEOPLE=1000,30000` chooses the sizes. Without `AWS_ENDPOINT_URL` or the
//! models it prints why and measures nothing.

#[path = "../tests/runtime_api/mod.rs"]
mod runtime_api;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_protocol::aws::{self, Names};
use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
use rollcall_recognizer::directory::synthetic::synthetic_enrollment;
use rollcall_recognizer::directory::{PeopleDirectory, SETTING_EMBEDDING_MODEL};
use rollcall_recognizer::enrollment::EMBEDDING_MODEL_ID;
use runtime_api::{lambda_environment, RuntimeApi};

/// Above this many people the scan comparison is skipped (moto scans a 30,000-item table for
/// minutes; the snapshot exists so that nobody has to).
const SCAN_COMPARISON_UP_TO: usize = 5_000;

struct Start {
    ready_ms: f64,
    peak_rss_mb: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that does not name this bench skips it.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    if !filter.is_empty() && !"cold_start".contains(&filter) {
        return;
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_none_or(|v| v.is_empty()) {
        println!("cold_start: skipped, AWS_ENDPOINT_URL is not set (`. scripts/moto` starts moto)");
        return;
    }
    let cache = match rollcall_models::ModelCache::from_env() {
        Ok(cache) if cache.file_path("fr_feature.onnx").is_ok_and(|p| p.exists()) => cache,
        _ => {
            println!("cold_start: skipped, models missing (`rollcall models fetch`)");
            return;
        }
    };
    let sizes: Vec<usize> = std::env::var("ROLLCALL_BENCH_PEOPLE")
        .unwrap_or_else(|_| "1000,30000".to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sdk = runtime.block_on(aws::load_config());
    println!(
        "{:>8}  {:>10}  {:>14}  {:>12}  {:>14}",
        "people", "gallery", "ready (ms)", "peak RSS", "ready w/o snapshot"
    );
    for people in sizes {
        let prefix = format!("rc-coldstart-{}-{people}", std::process::id());
        let names = Names::new(&prefix);
        runtime.block_on(async {
            let s3 = aws::s3_client(&sdk);
            s3.create_bucket()
                .bucket(&names.bucket)
                .send()
                .await
                .expect("create the bucket");
        });
        let directory = DynamoDirectory::new(&sdk, &names.table())
            .expect("directory")
            .with_gallery_snapshot(&sdk, &names.bucket);
        directory.ensure_table().expect("create the table");
        let filled = Instant::now();
        for first in (0..people).step_by(500) {
            let batch: Vec<_> = (first..(first + 500).min(people))
                .map(|i| synthetic_enrollment(i, 3, 512))
                .collect();
            directory.enroll_many(&batch).expect("store people");
        }
        directory
            .set_setting(SETTING_EMBEDDING_MODEL, EMBEDDING_MODEL_ID)
            .expect("setting");
        directory.publish_gallery().expect("publish the snapshot");
        eprintln!(
            "cold_start: {people} people stored and published in {:.0} s",
            filled.elapsed().as_secs_f64()
        );
        let with_snapshot = cold_start(&prefix, &cache, people);
        let without = (people <= SCAN_COMPARISON_UP_TO).then(|| {
            // Re-enrolling one person makes the snapshot stale: the function scans the table,
            // as every cold start did before snapshots (and writes a fresh snapshot before it
            // is ready, which is in the time).
            directory
                .enroll_many(&[synthetic_enrollment(0, 3, 512)])
                .expect("re-enrol one person");
            cold_start(&prefix, &cache, people)
        });
        println!(
            "{people:>8}  {:>7.1} MB  {:>14.0}  {:>9.0} MB  {:>14}",
            people as f64 * 512.0 * 4.0 / 1e6,
            with_snapshot.ready_ms,
            with_snapshot.peak_rss_mb,
            without.map_or_else(|| "-".to_string(), |s| format!("{:.0} ms", s.ready_ms))
        );
        if let Err(e) = directory.delete_table() {
            eprintln!("cold_start: cleaning up {prefix}: {e}");
        }
    }
}

/// Start the bootstrap against a fresh Runtime API and time it until it asks for an event.
fn cold_start(prefix: &str, cache: &rollcall_models::ModelCache, people: usize) -> Start {
    let api = RuntimeApi::start();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall-lambda"))
        .envs(lambda_environment(&api, 2048))
        .env("ROLLCALL_AWS_PREFIX", prefix)
        .env("ROLLCALL_HOME", cache.root())
        .env("RUST_LOG", "info,ort=error")
        .stdout(log.reopen().expect("log"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the bootstrap");
    let ready = api.wait_ready(Duration::from_secs(600));
    let peak = peak_rss_mb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(log.path()).unwrap_or_default();
    let ready = ready.unwrap_or_else(|| {
        panic!(
            "{people} people: the bootstrap never asked for an event (init error {:?}); its log:\n{log}",
            api.init_error()
        )
    });
    assert!(
        log.contains("cold start: models and gallery loaded")
            && log.contains(&format!("people={people}")),
        "{people} people: gallery not loaded at the cold start; log:\n{log}"
    );
    Start {
        ready_ms: ready.duration_since(started).as_secs_f64() * 1000.0,
        peak_rss_mb: peak.unwrap_or(f64::NAN),
    }
}

/// VmHWM of process `pid`, in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}
