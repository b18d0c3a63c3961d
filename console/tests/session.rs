//! `rollcall session`: edge + embedded recognition service in one process, on the real Hamilton
//! video, checked through the JSON report. Skipped (with the reason printed) without the data
//! set or the models, unless `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use common::{data_dir, enroll_examples, models_present, rollcall, text, EXAMPLE_PEOPLE};

#[test]
fn headless_session_on_the_hamilton_video_loses_nothing_and_names_lin_manuel_miranda() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    enroll_examples(&data, &db, &EXAMPLE_PEOPLE);
    let video = data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4");
    let report = tmp.path().join("r.json");
    let objects = tmp.path().join("objects");
    let source = format!("file:{}", video.display());
    let out = rollcall(&[
        "session",
        "--headless",
        "--source",
        &source,
        "--pace",
        "fast",
        "--device",
        "cam-1",
        "--report",
        report.to_str().unwrap(),
        "--objects",
        objects.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--grace",
        "60s",
        "--spool",
        tmp.path().join("spool").to_str().unwrap(),
    ]);
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).unwrap();
    let clips = &r["clips"];
    let captured = clips["captured"].as_u64().unwrap();
    assert!(captured >= 18, "{r:#}");
    assert_eq!(clips["uploaded"], captured, "{r:#}");
    assert_eq!(clips["results"], captured, "{r:#}");
    assert_eq!(clips["lost"], 0, "{r:#}");
    assert_eq!(clips["spooled"], 0, "{r:#}");
    assert_eq!(clips["errors"], 0, "{r:#}");
    assert_eq!(r["lost_clip_ids"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["retries"], 0, "{r:#}");
    assert_eq!(r["outage_s"], 0.0, "{r:#}");
    let people = r["people"].as_array().unwrap();
    let lin = people
        .iter()
        .find(|p| p["person_id"] == "lin_manuel_miranda")
        .unwrap_or_else(|| panic!("lin_manuel_miranda not reported: {r:#}"));
    assert_eq!(lin["name"], "Lin Manuel Miranda");
    assert!(lin["clips"].as_u64().unwrap() >= 1);
    assert!(lin["best_similarity"].as_f64().unwrap() > 0.3);
    for p in people {
        assert!(
            p["person_id"] == "lin_manuel_miranda" || p["person_id"] == "alex_lacamoire",
            "{p}"
        );
    }
    let latency = &r["latency_ms"];
    for key in ["p50", "p90", "p99", "max"] {
        assert!(latency[key].as_f64().unwrap() > 0.0, "{key}: {r:#}");
    }
    assert!(latency["p50"].as_f64() <= latency["p99"].as_f64());
    for stage in [
        "encode",
        "upload",
        "function_total",
        "decode",
        "detect",
        "embed",
        "delivery",
    ] {
        assert!(r["stages_ms"][stage].is_number(), "{stage}: {r:#}");
    }
    assert_eq!(r["device_id"], "cam-1");
    // One line per result, then the summary.
    let lines = output.lines().filter(|l| l.contains(" clip 0")).count();
    assert_eq!(lines as u64, captured, "{output}");
    assert!(output.contains("0 lost"), "{output}");
    // The clips were kept where asked, with their metadata, under the device's prefix.
    let session = r["session_id"].as_str().unwrap();
    let first = objects.join(format!("clips/cam-1/{session}/00000000.h264"));
    assert!(first.is_file(), "{}", first.display());
    assert!(first.with_extension("h264.json").is_file());
}

#[test]
fn bad_session_arguments_are_refused_clearly() {
    let out = rollcall(&["session", "--source", "webcam", "--headless"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("webcam"), "{}", text(&out));
    let out = rollcall(&["session", "--source", "test", "--duration", "5 parsecs"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("5 parsecs"), "{}", text(&out));
    let out = rollcall(&["session", "--source", "test", "--device", "../x"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("../x"), "{}", text(&out));
    let out = rollcall(&["session", "--help"]);
    assert!(text(&out).contains("headless"), "{}", text(&out));
}
