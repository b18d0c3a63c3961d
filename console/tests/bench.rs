//! `rollcall bench cameras` on real data: one simulated camera for a few seconds, checked
//! through the JSON (shape and completeness only: speed is never asserted in tests). Skipped
//! with the reason printed without the data set or the models, unless `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use common::{data_dir, enroll_examples, models_present, rollcall, text, EXAMPLE_PEOPLE};

#[test]
fn one_camera_for_three_seconds_loses_nothing_and_reports_every_field() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    enroll_examples(&data, &db, &EXAMPLE_PEOPLE);
    let video = data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4");
    let out = rollcall(&[
        "bench",
        "cameras",
        "--cameras",
        "1",
        "--duration",
        "3s",
        "--video",
        video.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]);
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {output}"));
    assert_eq!(r["backend"], "embedded");
    assert_eq!(r["size"], "640x360");
    assert_eq!(r["clip_ms"], 500);
    assert!(r["criterion"]["p99_limit_ms"].as_f64().unwrap() > 500.0);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{r:#}");
    let step = &steps[0];
    assert_eq!(step["cameras"], 1);
    let clips = step["clips"].as_u64().unwrap();
    // 3 s of capture at 0.5 s per clip.
    assert!((4..=8).contains(&clips), "{step:#}");
    assert_eq!(step["lost"], 0, "{step:#}");
    assert_eq!(step["errors"], 0, "{step:#}");
    assert_eq!(step["results"], clips, "{step:#}");
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            step["latency_ms"][key].as_f64().unwrap() > 0.0,
            "{key}: {step:#}"
        );
    }
    for key in [
        "peak_backlog",
        "last_third_peak_backlog",
        "backlog_trend_per_s",
        "cpu_percent",
        "machine_busy_percent",
        "wall_s",
    ] {
        assert!(step[key].is_number(), "{key}: {step:#}");
    }
    assert!(step["realtime"].is_boolean());
    assert!(step["failed"].is_array());
    let camera = &step["per_camera"][0];
    assert_eq!(camera["device_id"], "bench-cam-01");
    assert_eq!(camera["captured"], clips);
    assert_eq!(camera["failure"], serde_json::Value::Null);
    assert!(
        r["largest_realtime"].is_null() || r["largest_realtime"] == 1,
        "{r:#}"
    );
}
