//! The function log of the AWS deployment against a moto server (started by `scripts/test`):
//! `rollcall aws provision` creates the worker log group, a `rollcall worker` process ships its
//! own lines there (one stream per instance), and `rollcall aws logs` prints them: once, with a
//! filter, as JSON and following (`--follow`, started before the worker). A missing group is a
//! clear error; `--no-cloudwatch-logs` ships nothing.
//!
//! Skipped with the reason printed without `AWS_ENDPOINT_URL` (unless `ROLLCALL_REQUIRE_AWS=1`)
//! or without the models (the worker loads them; unless `ROLLCALL_REQUIRE_DATA=1`).
#![cfg(feature = "aws")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    aws_endpoint as endpoint, models_present, rollcall_aws as rollcall, rollcall_command, text,
};
use rollcall_protocol::aws::{self, Names, SqsClient};

/// The moto endpoint, or `None` (skip) when it is not configured.
/// Run a worker that stops after `idle` without messages; its `--json` counters.
fn worker(prefix: &str, instance: &str, idle: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "worker",
        "--max-workers",
        "1",
        "--wait",
        "1s",
        "--idle-exit",
        idle,
        "--json",
        "--instance-id",
        instance,
    ];
    args.extend_from_slice(extra);
    let out = rollcall(&args, prefix);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn worker_ships_its_log_lines_and_aws_logs_prints_them() {
    if endpoint().is_none() || !models_present() {
        return;
    }
    let prefix = format!("rc-logs-{}", std::process::id());
    let instance = format!("test-worker-{}", std::process::id());
    let group = format!("/rollcall/{prefix}/worker");

    // Before provisioning: the group is missing, and the error says what to do.
    let out = rollcall(&["aws", "logs"], &prefix);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("log group {group} does not exist")),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("rollcall aws provision"),
        "{}",
        text(&out)
    );

    let out = rollcall(&["aws", "provision", "--log-retention-days", "1"], &prefix);
    assert!(out.status.success(), "{}", text(&out));
    let provisioned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(provisioned["worker_log_group"], group.as_str());

    // A follower, started before the worker, prints lines as they come.
    let mut follower = rollcall_command()
        .args(["aws", "logs", "--follow", "--interval", "300ms"])
        .env("ROLLCALL_AWS_PREFIX", &prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rollcall aws logs --follow");
    let (lines_tx, followed) = mpsc::channel::<String>();
    let stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // A message the worker cannot parse: it logs a warning (and leaves it for the DLQ).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = aws::load_config().await;
        let sqs = SqsClient::new(&config);
        let url = aws::resolve_queue(&sqs, &Names::new(&prefix).events_queue())
            .await
            .unwrap();
        sqs.send_message()
            .queue_url(url)
            .message_body("not an S3 event")
            .send()
            .await
            .unwrap();
    });

    let started = Instant::now();
    let stats = worker(&prefix, &instance, "3s", &[]);
    eprintln!(
        "worker ran {:.1} s: {stats}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(stats["worker"]["unparsable"], 1, "{stats}");
    let shipped = &stats["cloudwatch_logs"];
    assert!(shipped["shipped"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(shipped["dropped"], 0, "{stats}");
    assert_eq!(shipped["failed"], 0, "{stats}");

    // Printed once: every line from this worker's stream, its start, the warning and its stop.
    let out = rollcall(&["aws", "logs", "--since", "5m"], &prefix);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines.len() >= 3, "{printed}");
    for line in &lines {
        let mut fields = line.splitn(3, ' ');
        let time = fields.next().unwrap();
        assert!(time.ends_with('Z') && time.len() == 24, "{line}");
        assert_eq!(fields.next(), Some(instance.as_str()), "{line}");
    }
    for expected in [
        "worker started",
        "unusable clip-event message",
        "worker stopped",
    ] {
        assert!(printed.contains(expected), "{expected:?} not in\n{printed}");
    }

    // Filtered, and as JSON.
    let out = rollcall(
        &[
            "aws", "logs", "--group", "worker", "--filter", "unusable", "--json",
        ],
        &prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    let filtered: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(filtered[0]["level"], "warn", "{filtered:?}");
    assert_eq!(filtered[0]["source"], instance.as_str());
    assert!(filtered[0]["message"]
        .as_str()
        .unwrap()
        .contains("unusable clip-event message"));
    // The group by name is the same group.
    let out = rollcall(&["aws", "logs", "--group", &group], &prefix);
    assert_eq!(String::from_utf8_lossy(&out.stdout), printed);

    // The follower printed the same lines, each once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("worker stopped")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match followed.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("the follower printed only {seen:#?}"),
        }
    }
    // One more poll or two: nothing new, nothing twice.
    std::thread::sleep(Duration::from_millis(800));
    seen.extend(followed.try_iter());
    follower.kill().unwrap();
    follower.wait().unwrap();
    reader.join().unwrap();
    // (Sorted: a line logged just before another may reach CloudWatch in the next batch.)
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    seen_sorted.dedup();
    assert_eq!(
        seen_sorted.len(),
        seen.len(),
        "a line came twice: {seen:#?}"
    );
    let mut once: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    once.sort();
    assert_eq!(seen_sorted, once, "follow printed what the single read did");

    // Without shipping: nothing more in the group.
    let quiet = worker(
        &prefix,
        &format!("{instance}-quiet"),
        "1s",
        &["--no-cloudwatch-logs"],
    );
    assert!(quiet["cloudwatch_logs"].is_null(), "{quiet}");
    let out = rollcall(&["aws", "logs", "--filter=-quiet"], &prefix);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}
