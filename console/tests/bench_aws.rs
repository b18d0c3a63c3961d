//! `rollcall bench cameras --backend aws` against a moto server: the bench provisions the
//! deployment, starts its own `rollcall worker` processes and runs one simulated camera through
//! S3 -> SQS -> worker -> the camera's result queue. Checked through the JSON (shape and
//! completeness only: speed is never asserted in tests). Skipped with the reason printed without
//! moto, the data set or the models, unless `ROLLCALL_REQUIRE_AWS=1` / `ROLLCALL_REQUIRE_DATA=1`.
#![cfg(feature = "aws")]

mod common;

use common::{
    aws_endpoint, data_dir, enroll_examples_aws, models_present, one_complete_camera_step,
    rollcall_aws, text, unique,
};

#[test]
fn aws_bench_provisions_runs_workers_and_gets_a_result_for_every_clip() {
    if aws_endpoint().is_none() {
        return;
    }
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique("rc-bench");
    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let bench = |duration: &str| {
        rollcall_aws(
            &[
                "bench",
                "cameras",
                "--backend",
                "aws",
                "--cameras",
                "1",
                "--duration",
                duration,
                "--video",
                video.to_str().unwrap(),
                "--json",
            ],
            &prefix,
        )
    };

    // A first, short run provisions the deployment (nothing exists under this prefix yet) and
    // warns that nobody is enrolled.
    let out = bench("1500ms");
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains(&format!(
            "nobody is enrolled in the DynamoDB table {prefix}-people"
        )),
        "{output}"
    );

    enroll_examples_aws(&data, tmp.path(), &prefix, &[("barack_obama", "obama.jpg")]);

    let out = bench("3s");
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    assert!(!output.contains("nobody is enrolled"), "{output}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {output}"));
    assert_eq!(r["backend"], "aws", "{r:#}");
    assert_eq!(r["worker_processes"], 1, "{r:#}");
    assert_eq!(r["clip_ms"], 500);
    assert!(r["criterion"]["p99_limit_ms"].as_f64().unwrap() > 500.0);
    assert!(
        r["criterion"]["backlog"]
            .as_str()
            .unwrap()
            .contains("ApproximateNumberOfMessages"),
        "{r:#}"
    );
    let step = one_complete_camera_step(&r);
    for stage in ["upload", "function_total"] {
        assert!(step["stages_ms"][stage].is_number(), "{stage}: {step:#}");
    }
    for key in [
        "peak_backlog",
        "last_third_peak_backlog",
        "backlog_trend_per_s",
        "peak_workers",
        "cpu_percent",
        "worker_cpu_percent",
        "machine_busy_percent",
        "wall_s",
    ] {
        assert!(step[key].is_number(), "{key}: {step:#}");
    }
    // The queue was read during capture.
    assert_eq!(step["backlog_sample_errors"], 0, "{step:#}");
    assert!(step["realtime"].is_boolean());
    assert!(step["failed"].is_array());
    let camera = &step["per_camera"][0];
    assert_eq!(camera["device_id"], "bench-cam-01");
    assert_eq!(camera["captured"], step["clips"]);
    assert_eq!(camera["results"], step["clips"]);
    assert_eq!(camera["failure"], serde_json::Value::Null);
}
