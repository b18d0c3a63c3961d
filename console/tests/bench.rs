//! `rollcall bench cameras` on real data: one simulated camera for a few seconds, checked
//! through the JSON (shape and completeness only: speed is never asserted in tests). Skipped
//! with the reason printed without the data set or the models, unless `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use common::{
    data_dir, enroll_examples, models_present, one_complete_camera_step, rollcall, text,
    EXAMPLE_PEOPLE,
};

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
    let step = one_complete_camera_step(&r);
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
    assert_eq!(camera["captured"], step["clips"]);
    assert_eq!(camera["failure"], serde_json::Value::Null);
    assert!(
        r["largest_realtime"].is_null() || r["largest_realtime"] == 1,
        "{r:#}"
    );
}
