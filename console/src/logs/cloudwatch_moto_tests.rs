//! CloudWatch Logs over HTTP against a moto server (`scripts/moto`, started by `scripts/test`):
//! the worker log group from `rollcall aws provision` (retention, idempotent), lines shipped by
//! `CloudWatchLogShipper` (batch limits, out-of-order timestamps, a full queue) and read back by
//! `CloudWatchLogTail` (filters, pagination, no duplicates across overlapping polls), and the
//! errors naming a missing group.
//!
//! Needs `AWS_ENDPOINT_URL` pointing at loopback; without it every test prints why it is skipped,
//! unless `ROLLCALL_REQUIRE_AWS=1` (then they fail). Each test uses log groups of its own.

#[path = "../../../recognizer-lib/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{aws_endpoint, unique};
use rollcall_protocol::aws::{self, Names};

use super::cloudwatch::{
    ensure_log_group, ensure_log_stream, log_group_retention, CloudWatchLogShipper,
    CloudWatchLogTail, LogsClient, ShipperOptions, MAX_MESSAGE_BYTES,
};
use super::shipping::ensure_worker_log_group;
use super::{now_ms, LogError, LogLevel, LogLine};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn client() -> LogsClient {
    LogsClient::new(&aws::load_config().await)
}

/// A fresh log group (1-day retention).
async fn group(client: &LogsClient, name: &str) -> String {
    let group = format!("/rollcall-test/{}", unique(name));
    ensure_log_group(client, &group, Some(1)).await.unwrap();
    group
}

/// Every line of `tail` until a poll returns none.
async fn drain(tail: &mut CloudWatchLogTail) -> Vec<LogLine> {
    let mut all = Vec::new();
    loop {
        let lines = tail.poll().await.unwrap();
        if lines.is_empty() {
            return all;
        }
        all.extend(lines);
    }
}

#[test]
fn the_worker_log_group_is_created_with_its_retention() {
    if aws_endpoint().is_none() {
        return;
    }
    runtime().block_on(async {
        let config = aws::load_config().await;
        let prefix = unique("rc-logs");
        let names = Names::new(&prefix);
        assert_eq!(
            names.worker_log_group(),
            format!("/rollcall/{prefix}/worker")
        );
        assert_eq!(
            names.lambda_log_group(),
            format!("/aws/lambda/{prefix}-recognizer")
        );
        let group = ensure_worker_log_group(&config, &names, 7).await.unwrap();
        assert_eq!(group, names.worker_log_group());
        let client = LogsClient::new(&config);
        assert_eq!(log_group_retention(&client, &group).await.unwrap(), Some(7));
        // Idempotent, and a new retention is applied to the existing group.
        ensure_worker_log_group(&config, &names, 30).await.unwrap();
        assert_eq!(
            log_group_retention(&client, &group).await.unwrap(),
            Some(30)
        );
        // A retention CloudWatch does not offer is refused before any call, naming the value.
        let bad = ensure_worker_log_group(&config, &names, 10)
            .await
            .unwrap_err()
            .to_string();
        assert!(bad.contains("log retention"), "{bad}");
        assert!(bad.contains(&names.worker_log_group()), "{bad}");
    });
}

#[test]
fn shipped_lines_tail_back_once_with_and_without_filters() {
    if aws_endpoint().is_none() {
        return;
    }
    runtime().block_on(async {
        let client = client().await;
        let group = group(&client, "ship").await;
        let shipper = CloudWatchLogShipper::spawn(
            client.clone(),
            &group,
            "worker-a",
            ShipperOptions::default(),
        )
        .unwrap();
        let now = now_ms();
        // Out of order on purpose: PutLogEvents wants a batch sorted by time.
        for i in 0..30 {
            let level = if i % 10 == 3 { "WARN" } else { "INFO" };
            assert!(shipper.sink().send_at(
                now - 1_000 + (i * 7919) % 1_000,
                format!(" {level} rollcall::worker: clip {i} handled\n"),
            ));
        }
        let started = Instant::now();
        shipper.flush().await.unwrap();
        eprintln!(
            "moto: shipped 30 lines in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        assert_eq!(shipper.stats().shipped, 30, "{:?}", shipper.stats());

        let mut tail = CloudWatchLogTail::new(client.clone(), &group)
            .with_since(Duration::from_secs(60))
            .with_lookback(Duration::from_secs(60));
        let started = Instant::now();
        let lines = tail.poll().await.unwrap();
        eprintln!(
            "moto: FilterLogEvents poll of 30 lines {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        assert_eq!(lines.len(), 30);
        assert!(lines
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
        assert!(lines.iter().all(|l| l.source == "worker-a"));
        assert!(lines.iter().all(|l| !l.message.ends_with('\n')));
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.level == Some(LogLevel::Warn))
                .count(),
            3
        );
        // The windows overlap (60 s lookback): nothing comes twice.
        for _ in 0..3 {
            assert_eq!(tail.poll().await.unwrap(), Vec::<LogLine>::new());
        }
        // New lines, from a second stream too: only they come.
        let other = CloudWatchLogShipper::spawn(
            client.clone(),
            &group,
            "worker-b",
            ShipperOptions::default(),
        )
        .unwrap();
        shipper
            .sink()
            .send(" INFO rollcall::worker: late line from a");
        other.sink().send(" WARN rollcall::worker: line from b");
        shipper.flush().await.unwrap();
        other.flush().await.unwrap();
        let mut new: Vec<(String, String)> = tail
            .poll()
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.source, l.message))
            .collect();
        new.sort();
        assert_eq!(
            new,
            [
                (
                    "worker-a".to_string(),
                    " INFO rollcall::worker: late line from a".to_string()
                ),
                (
                    "worker-b".to_string(),
                    " WARN rollcall::worker: line from b".to_string()
                ),
            ]
        );
        assert!(tail.poll().await.unwrap().is_empty());

        // A substring filter, and a CloudWatch pattern.
        let mut warnings = CloudWatchLogTail::new(client.clone(), &group)
            .with_since(Duration::from_secs(60))
            .with_filter("WARN rollcall");
        let warned = drain(&mut warnings).await;
        assert_eq!(warned.len(), 4, "{warned:?}");
        assert!(warned.iter().all(|l| l.message.contains("WARN rollcall")));
        let mut clip_13 = CloudWatchLogTail::new(client.clone(), &group)
            .with_since(Duration::from_secs(60))
            .with_filter_pattern("\"clip 13 \"");
        let got = drain(&mut clip_13).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].message, " WARN rollcall::worker: clip 13 handled");
        // A start after everything: nothing.
        let mut later =
            CloudWatchLogTail::new(client.clone(), &group).with_start_ms(now_ms() + 60_000);
        assert!(later.poll().await.unwrap().is_empty());

        let stats = shipper.shutdown(Duration::from_secs(5)).await;
        assert_eq!((stats.shipped, stats.dropped, stats.failed), (31, 0, 0));
        other.shutdown(Duration::from_secs(5)).await;
    });
}

#[test]
fn batches_split_at_the_limits_and_pages_are_followed() {
    if aws_endpoint().is_none() {
        return;
    }
    runtime().block_on(async {
        let client = client().await;
        let group = group(&client, "batches").await;
        let shipper = CloudWatchLogShipper::spawn(
            client.clone(),
            &group,
            "many",
            ShipperOptions {
                max_batch_events: 100,
                flush_interval: Duration::from_secs(60),
                ..ShipperOptions::default()
            },
        )
        .unwrap();
        for i in 0..1_050 {
            assert!(shipper.sink().send(format!("line {i:04}")));
        }
        // Five events of about 250 KiB: at most four fit in 1 MiB. One too long is cut.
        for i in 0..5 {
            assert!(shipper
                .sink()
                .send(format!("big {i} {}", "x".repeat(250 * 1024))));
        }
        assert!(shipper.sink().send("é".repeat(MAX_MESSAGE_BYTES)));
        shipper.flush().await.unwrap();
        let stats = shipper.stats();
        assert_eq!(stats.shipped, 1_056, "{stats:?}");
        assert!(stats.batches >= 12, "{stats:?}");

        let mut tail = CloudWatchLogTail::new(client.clone(), &group)
            .with_since(Duration::from_secs(60))
            .with_page_size(100);
        let lines = tail.poll().await.unwrap();
        assert_eq!(lines.len(), 1_056);
        let mut small: Vec<&str> = lines
            .iter()
            .filter(|l| l.message.starts_with("line "))
            .map(|l| l.message.as_str())
            .collect();
        small.sort();
        small.dedup();
        assert_eq!(small.len(), 1_050);
        let cut = lines
            .iter()
            .find(|l| l.message.starts_with('é'))
            .expect("the long line");
        assert!(
            cut.message.len() <= MAX_MESSAGE_BYTES,
            "{}",
            cut.message.len()
        );
        assert!(tail.poll().await.unwrap().is_empty());
        shipper.shutdown(Duration::from_secs(5)).await;
    });
}

#[test]
fn a_full_queue_drops_lines_without_blocking() {
    if aws_endpoint().is_none() {
        return;
    }
    // A current-thread runtime: its tasks run only inside block_on, so the queue cannot drain
    // while the lines go in.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, group) = runtime.block_on(async {
        let client = client().await;
        let group = group(&client, "full").await;
        (client, group)
    });
    let shipper = runtime
        .block_on(async {
            CloudWatchLogShipper::spawn(
                client.clone(),
                &group,
                "full",
                ShipperOptions {
                    capacity: 5,
                    ..ShipperOptions::default()
                },
            )
        })
        .unwrap();
    let sink = shipper.sink();
    let started = Instant::now();
    let accepted = (0..20).filter(|i| sink.send(format!("line {i}"))).count();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(accepted, 5);
    assert_eq!(shipper.stats().dropped, 15);
    runtime.block_on(async {
        shipper.flush().await.unwrap();
        assert_eq!(shipper.stats().shipped, 5);
        let stats = shipper.shutdown(Duration::from_secs(5)).await;
        assert_eq!((stats.shipped, stats.dropped), (5, 15));
        // Stopped: lines are dropped, not queued.
        assert!(!sink.send("after shutdown"));
        let lines = CloudWatchLogTail::new(client, &group)
            .with_since(Duration::from_secs(60))
            .poll()
            .await
            .unwrap();
        assert_eq!(lines.len(), 5);
    });
}

#[test]
fn a_missing_log_group_is_a_clear_error() {
    if aws_endpoint().is_none() {
        return;
    }
    runtime().block_on(async {
        let client = client().await;
        let missing = format!("/rollcall-test/{}", unique("missing"));
        let error = CloudWatchLogTail::new(client.clone(), &missing)
            .poll()
            .await
            .unwrap_err();
        assert!(
            matches!(&error, LogError::GroupNotFound { group } if *group == missing),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("log group {missing} does not exist")
        );
        assert!(matches!(
            ensure_log_stream(&client, &missing, "s").await,
            Err(LogError::GroupNotFound { .. })
        ));
        assert!(matches!(
            log_group_retention(&client, &missing).await,
            Err(LogError::GroupNotFound { .. })
        ));
        // The shipper reports it on flush and counts the lines as failed.
        let shipper =
            CloudWatchLogShipper::spawn(client.clone(), &missing, "s", ShipperOptions::default())
                .unwrap();
        shipper.sink().send("nowhere to go");
        let error = shipper.flush().await.unwrap_err();
        assert!(error.to_string().contains(&missing), "{error}");
        let stats = shipper.stats();
        assert_eq!((stats.shipped, stats.failed), (0, 1), "{stats:?}");
        assert!(stats.last_error.unwrap().contains(&missing));
        // Invalid names are refused before any call.
        assert!(matches!(
            CloudWatchLogShipper::spawn(client.clone(), &missing, "a:b", ShipperOptions::default()),
            Err(LogError::Invalid { .. })
        ));
        assert!(matches!(
            ensure_log_group(&client, "no spaces please", None).await,
            Err(LogError::Invalid { .. })
        ));
    });
}
