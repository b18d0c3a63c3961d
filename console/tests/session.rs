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

/// Whether `text` reads as an RFC 3339 UTC time with milliseconds (`2026-12-06T18:38:30.123Z`).
fn is_rfc3339(text: &serde_json::Value) -> bool {
    let Some(text) = text.as_str() else {
        return false;
    };
    let bytes = text.as_bytes();
    text.len() == 24
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && text.ends_with('Z')
        && text.starts_with("20")
}

#[test]
fn sigterm_ends_a_headless_session_with_the_full_report_and_status_143() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = common::obama_with_record(&data, tmp.path());
    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let report = tmp.path().join("report.json");
    let stdout = tmp.path().join("stdout.txt");
    let stderr = tmp.path().join("stderr.txt");
    let mut session = common::rollcall_command()
        .args([
            "session",
            "--headless",
            "--source",
            &format!("file:{}", video.display()),
            "--device",
            "cam-term",
            "--report",
            report.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--objects",
            tmp.path().join("objects").to_str().unwrap(),
            "--spool",
            tmp.path().join("spool").to_str().unwrap(),
            "--grace",
            "30s",
        ])
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
    // The first result naming him, then the signal systemd, docker and `timeout` send.
    let started = std::time::Instant::now();
    while !printed().contains("Barack Obama 0.") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "nobody named yet:\n{}",
            printed()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::send_signal(session.id(), "TERM");
    let status = common::wait_with_timeout(&mut session, std::time::Duration::from_secs(60));
    let output = printed();
    println!("{output}");
    assert_eq!(status.code(), Some(143), "{output}");
    // Headless output is plain text: no colour codes in a file.
    assert!(!output.contains('\u{1b}'), "ANSI codes in a file: {output}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).unwrap();
    println!("{r:#}");
    assert!(is_rfc3339(&r["started_at"]), "{r:#}");
    assert!(is_rfc3339(&r["ended_at"]), "{r:#}");
    assert!(r["started_at"].as_str() < r["ended_at"].as_str(), "{r:#}");
    assert_eq!(r["ended"], "interrupted", "{r:#}");
    assert_eq!(r["interrupted_by"], "SIGTERM", "{r:#}");
    let obama = r["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["person_id"] == "barack_obama")
        .unwrap_or_else(|| panic!("Obama in the report: {r:#}"));
    assert!(is_rfc3339(&obama["first_seen"]), "{obama:#}");
    assert!(is_rfc3339(&obama["last_seen"]), "{obama:#}");
    assert!(obama["first_seen"].as_str() <= obama["last_seen"].as_str());
    assert!(obama["clips"].as_u64().unwrap() >= 1, "{obama:#}");
    assert!(
        obama["best_similarity"].as_f64().unwrap() > 0.3,
        "{obama:#}"
    );
    assert_eq!(obama["record"]["student_id"], "S-0044", "{obama:#}");
    assert_eq!(obama["record"]["programme"], "Political Science");
    for stage in ["end_to_end", "function_total", "upload"] {
        let s = &r["stage_percentiles_ms"][stage];
        for p in ["p50", "p90", "p99"] {
            assert!(s[p].as_f64().is_some(), "{stage} {p}: {r:#}");
        }
        assert!(s["p50"].as_f64() <= s["p99"].as_f64(), "{stage}: {r:#}");
    }
    assert_eq!(r["retries"], 0, "{r:#}");
    assert_eq!(r["outage_s"], 0.0, "{r:#}");
    assert!(r["peak_spooled"].as_u64().is_some(), "{r:#}");
    assert_eq!(r["lost_clip_ids"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["clips"]["lost"], 0, "{r:#}");
}

#[test]
fn a_session_that_cannot_start_still_writes_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let db = common::people_directory_without_faces(tmp.path());
    let report = tmp.path().join("report.json");
    let out = rollcall(&[
        "session",
        "--headless",
        "--source",
        "v4l2:/dev/video-none-here",
        "--db",
        db.to_str().unwrap(),
        "--spool",
        tmp.path().join("spool").to_str().unwrap(),
        "--objects",
        tmp.path().join("objects").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let output = text(&out);
    println!("{output}");
    assert_eq!(out.status.code(), Some(1), "{output}");
    let errors: Vec<&str> = output.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {output}");
    assert_eq!(
        errors[0].matches("session on").count(),
        1,
        "the error does not repeat its prefix: {output}"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).unwrap();
    println!("{r:#}");
    assert_eq!(r["ended"], "failed", "{r:#}");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("/dev/video-none-here")),
        "{r:#}"
    );
    assert!(is_rfc3339(&r["started_at"]), "{r:#}");
    assert_eq!(r["clips"]["captured"], 0, "{r:#}");
}

#[test]
fn json_lines_prints_one_object_per_result_and_ffmpeg_stays_quiet() {
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = common::people_directory_without_faces(tmp.path());
    let args = |source: &str| {
        vec![
            "session".to_string(),
            "--headless".to_string(),
            "--json-lines".to_string(),
            "--source".to_string(),
            source.to_string(),
            "--duration".to_string(),
            "3s".to_string(),
            "--db".to_string(),
            db.display().to_string(),
            "--spool".to_string(),
            tmp.path().join("spool").display().to_string(),
            "--objects".to_string(),
            tmp.path().join("objects").display().to_string(),
        ]
    };
    let out = common::rollcall_command()
        .args(args("test"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 4, "{}", text(&out));
    for line in &lines {
        let result: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(result["seq"].is_u64(), "{line}");
        assert!(result["received_at"].is_string(), "{line}");
        assert!(result["end_to_end_ms"].is_number(), "{line}");
    }
    // The header and summary went to standard error.
    assert!(String::from_utf8_lossy(&out.stderr).contains("clips: "));

    // A video whose index is missing: one error naming the file, no ffmpeg chatter.
    let broken = tmp.path().join("broken.mp4");
    std::fs::write(&broken, b"\0\0\0\x18ftypisom\0\0\0\0isommp41 and no moov").unwrap();
    let out = common::rollcall_command()
        .args(args(&format!("file:{}", broken.display())))
        .output()
        .unwrap();
    let output = text(&out);
    println!("{output}");
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert!(output.contains("broken.mp4"), "{output}");
    assert!(
        !output.contains("moov atom"),
        "ffmpeg's own line leaked: {output}"
    );
}
