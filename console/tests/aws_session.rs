//! `rollcall session --backend aws` against a moto server: the edge uploads 0.5 s clips to S3,
//! the S3 -> SQS notification feeds a `rollcall worker` process, and the results come back on
//! the device's SQS queue, with the same report as the embedded default.
#![cfg(feature = "aws")]

mod common;

use common::{
    aws_endpoint, data_dir, enroll_examples_aws, models_present, provision, rollcall_aws,
    start_worker, text, tmux_present, Tmux,
};

#[test]
fn aws_session_uploads_clips_and_gets_every_result_back_through_sqs() {
    if aws_endpoint().is_none() {
        return;
    }
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("rc-session-{}", std::process::id());
    let device = "cam-session";

    provision(&prefix, device);
    enroll_examples_aws(&data, tmp.path(), &prefix, &[("barack_obama", "obama.jpg")]);

    let _worker = start_worker(&prefix, "60s");

    // A device whose queue was not provisioned is refused at once, naming the queue.
    let out = rollcall_aws(
        &[
            "session",
            "--headless",
            "--backend",
            "aws",
            "--device",
            "cam-unknown",
            "--source",
            "test",
            "--duration",
            "1s",
            "--spool",
            tmp.path().join("spool").to_str().unwrap(),
        ],
        &prefix,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("{prefix}-results-cam-unknown")),
        "{}",
        text(&out)
    );

    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let report = tmp.path().join("report.json");
    let out = rollcall_aws(
        &[
            "session",
            "--headless",
            "--backend",
            "aws",
            "--device",
            device,
            "--source",
            &format!("file:{}", video.display()),
            "--duration",
            "4s",
            "--grace",
            "30s",
            "--report",
            report.to_str().unwrap(),
            "--spool",
            tmp.path().join("spool").to_str().unwrap(),
        ],
        &prefix,
    );
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["backend"], "aws", "{report}");
    let clips = &report["clips"];
    let captured = clips["captured"].as_u64().unwrap();
    assert!(captured >= 6, "{report}");
    assert_eq!(clips["uploaded"], captured, "{report}");
    assert_eq!(clips["results"], captured, "{report}");
    assert_eq!(clips["lost"], 0, "{report}");
    assert_eq!(clips["errors"], 0, "{report}");
    let people = report["people"].as_array().unwrap();
    assert!(
        people.iter().any(|p| p["person_id"] == "barack_obama"),
        "{report}"
    );
    assert!(
        report["latency_ms"]["p50"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["pool"].is_null(), "no local pool on AWS: {report}");

    // The operator console against the same deployment tails the worker's CloudWatch log
    // group: its per-clip lines show up in the log panel.
    if !tmux_present() {
        return;
    }
    let tmux = Tmux::new("aws-console");
    let script = format!(
        "ROLLCALL_AWS_PREFIX={prefix} {bin} console --gpio off --backend aws --device {device} \
         --log-group worker --source test --spool {spool}; sleep 60",
        bin = env!("CARGO_BIN_EXE_rollcall"),
        spool = tmp.path().join("spool").display(),
    );
    tmux.start(120, 30, &script);
    let screen = tmux.wait_for(
        &[
            &format!("CloudWatch /rollcall/{prefix}/worker"),
            "clip recognised",
            "backend aws",
        ],
        std::time::Duration::from_secs(30),
    );
    println!("{screen}");
    tmux.cmd(&["send-keys", "-t", "console", "q"]);
}
