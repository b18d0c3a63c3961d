//! `rollcall bench cameras` on real data: one simulated camera for a few seconds, checked
//! through the JSON (shape and completeness only: speed is never asserted in tests). Skipped
//! with the reason printed without the data set or the models, unless `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use common::{
    data_dir, enroll_examples, models_present, one_complete_camera_step, rollcall, text,
    EXAMPLE_PEOPLE,
};

/// `rollcall bench cameras --cameras 1 --duration 3s --json` on the hamilton video with the
/// example people enrolled, plus `extra` flags; the JSON report (`None`: skipped).
fn one_camera_for_three_seconds(extra: &[&str]) -> Option<serde_json::Value> {
    let data = data_dir()?;
    if !models_present() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    enroll_examples(&data, &db, &EXAMPLE_PEOPLE);
    let video = data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4");
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    let out = rollcall(&args);
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    Some(
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {output}")),
    )
}

#[test]
fn one_camera_for_three_seconds_loses_nothing_and_reports_every_field() {
    let Some(r) = one_camera_for_three_seconds(&[]) else {
        return;
    };
    assert_eq!(r["backend"], "embedded");
    assert_eq!(r["replay"], false);
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

/// `--replay`: the camera sends clips recorded before the run instead of encoding live, and
/// every one of them is answered, with nothing counted as encoding time.
#[test]
fn a_camera_replaying_recorded_clips_is_answered_for_every_clip() {
    let Some(r) = one_camera_for_three_seconds(&["--replay"]) else {
        return;
    };
    assert_eq!(r["replay"], true);
    let step = one_complete_camera_step(&r);
    assert_eq!(step["stages_ms"]["encode"], 0.0, "{step:#}");
    assert!(
        step["stages_ms"]["function_total"].as_f64().unwrap() > 0.0,
        "{step:#}"
    );
    let camera = &step["per_camera"][0];
    assert_eq!(camera["failure"], serde_json::Value::Null);
    assert_eq!(camera["passes"], 1, "{step:#}");
}
