//! A network outage in the middle of an AWS session (moto): the edge talks to S3 and SQS
//! through a proxy in this test that stops forwarding for 60 s (a black hole: connections are
//! accepted, nothing comes back), while `rollcall worker` keeps its own direct link. Every call
//! has a timeout, uploads are retried for as long as the outage lasts, the progress lines say
//! the store is unreachable, and the session ends with every clip answered: nothing lost.
#![cfg(feature = "aws")]

mod common;

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use common::proxy::BlackholeProxy;
use common::{
    aws_endpoint, models_present, provision, rollcall_command, start_worker, wait_with_timeout,
};

#[test]
fn a_60_s_outage_mid_session_loses_nothing_and_shows_in_the_output() {
    let Some(endpoint) = aws_endpoint() else {
        return;
    };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("rc-outage-{}", std::process::id());
    let device = "cam-outage";
    provision(&prefix, device);
    let _worker = start_worker(&prefix, "300s");

    let upstream = endpoint
        .trim_start_matches("http://")
        .to_socket_addrs()
        .expect("moto address")
        .next()
        .unwrap();
    let proxy = BlackholeProxy::start(upstream);
    let report = tmp.path().join("report.json");
    let stdout = tmp.path().join("stdout.txt");
    let stderr = tmp.path().join("stderr.txt");
    let mut session = rollcall_command()
        .args([
            "session",
            "--headless",
            "--backend",
            "aws",
            "--device",
            device,
            "--source",
            "test",
            "--duration",
            "85s",
            "--grace",
            "60s",
            "--progress",
            "2s",
            "--report",
            report.to_str().unwrap(),
            "--spool",
            tmp.path().join("spool").to_str().unwrap(),
        ])
        .env("ROLLCALL_AWS_PREFIX", &prefix)
        .env("AWS_ENDPOINT_URL", proxy.url())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start rollcall session");
    let printed = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&stdout).unwrap_or_default(),
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    };

    // Results flow first; then the link goes dark for 60 s.
    let started = Instant::now();
    while !printed().contains(" clip 00000003") {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no result before the outage:\n{}",
            printed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.cut();
    let cut_at = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    proxy.restore();
    println!("link restored after {:?}", cut_at.elapsed());

    let status = wait_with_timeout(&mut session, Duration::from_secs(240));
    let output = printed();
    println!("{output}");
    assert!(status.success(), "{output}");
    assert!(
        output.contains("store unreachable since "),
        "the outage shows in the progress lines: {output}"
    );
    assert!(output.contains("spooled, retrying"), "{output}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).unwrap();
    println!("{r:#}");
    let clips = &r["clips"];
    let captured = clips["captured"].as_u64().unwrap();
    // 85 s of 0.5 s clips, the outage included: capture never stopped.
    assert!(captured >= 160, "{r:#}");
    assert_eq!(clips["lost"], 0, "{r:#}");
    assert_eq!(clips["spooled"], 0, "{r:#}");
    assert_eq!(clips["uploaded"], captured, "{r:#}");
    assert_eq!(clips["results"], captured, "{r:#}");
    assert_eq!(r["lost_clip_ids"], serde_json::json!([]), "{r:#}");
    let outage = r["outage_s"].as_f64().unwrap();
    assert!((50.0..120.0).contains(&outage), "outage_s {outage}: {r:#}");
    assert!(r["retries"].as_u64().unwrap() >= 2, "{r:#}");
    // About 2 clips a second piled up while the store was away.
    assert!(r["peak_spooled"].as_u64().unwrap() >= 80, "{r:#}");
}
