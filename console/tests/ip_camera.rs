//! `rollcall session --source rtsp://...`: the Hamilton video served by a real RTSP server on
//! loopback (GStreamer's, asking for a password), recognised end to end while the server is
//! killed and restarted mid-session. Skipped (with the reason printed) without the data set, the
//! models or the RTSP server, unless `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::rtsp::{rtsp_ready_video, RtspServer};
use common::{data_dir, enroll_examples, models_present, rollcall_command, EXAMPLE_PEOPLE};

const PASSWORD: &str = "Hamilton-1776";

#[test]
fn rtsp_session_names_lin_manuel_miranda_and_survives_the_server_restarting() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 30 s of the Hamilton video (10 s, looped): enough for the whole session.
    let Some(video) = rtsp_ready_video(
        &data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4"),
        &tmp.path().join("hamilton-30s.mp4"),
        2,
    ) else {
        return;
    };
    let Some(mut server) = RtspServer::start(&video, Some(&format!("lecturer:{PASSWORD}"))) else {
        return;
    };
    let db = tmp.path().join("people.db");
    enroll_examples(&data, &db, &EXAMPLE_PEOPLE);
    let report = tmp.path().join("r.json");

    // Credentials from the environment, not the URL; debug logs on, to show none leaks.
    let mut child = rollcall_command()
        .args([
            "--log",
            "debug,ort=warn",
            "session",
            "--headless",
            "--source",
            &server.url(None),
            "--duration",
            "25s",
            "--camera-timeout",
            "3s",
            "--device",
            "hall-cam",
            "--progress",
            "2s",
            "--report",
            report.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--grace",
            "60s",
        ])
        .env("ROLLCALL_CAMERA_USERNAME", "lecturer")
        .env("ROLLCALL_CAMERA_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rollcall");
    let (lines, received) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        })
    })
    .collect();
    drop(lines);

    // Once results flow, the server dies for ~4 s, then comes back on the same port.
    let mut output = Vec::new();
    let started = Instant::now();
    let mut phase = 0;
    let mut killed_at = None;
    loop {
        match received.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                println!("{line}");
                output.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let results = output.iter().filter(|l| l.contains(" clip 0")).count();
        if phase == 0 && results >= 6 {
            server.kill();
            killed_at = Some(Instant::now());
            phase = 1;
        }
        if phase == 1 && killed_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(4)) {
            server.restart();
            phase = 2;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the session did not end:\n{}",
            output.join("\n")
        );
    }
    let status = child.wait().unwrap();
    readers.into_iter().for_each(|r| r.join().unwrap());
    let output = output.join("\n");
    assert_eq!(phase, 2, "results never flowed:\n{output}");
    assert!(status.success(), "{output}");

    let text = std::fs::read_to_string(&report).expect("report written");
    assert!(!output.contains(PASSWORD), "password in the output");
    assert!(!text.contains(PASSWORD), "password in the report");
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    println!("{r:#}");
    assert_eq!(r["ended"], "duration", "{r:#}");
    assert!(
        r["source"]
            .as_str()
            .unwrap()
            .starts_with("rtsp://lecturer:***@127.0.0.1:"),
        "{r:#}"
    );
    // The right person, nobody who is not in the video.
    let people = r["people"].as_array().unwrap();
    assert!(
        people
            .iter()
            .any(|p| p["person_id"] == "lin_manuel_miranda"),
        "{r:#}"
    );
    for p in people {
        assert!(
            p["person_id"] == "lin_manuel_miranda" || p["person_id"] == "alex_lacamoire",
            "{p}"
        );
    }
    // Every clip captured got its result, before and after the outage.
    let clips = &r["clips"];
    assert!(clips["captured"].as_u64().unwrap() >= 20, "{r:#}");
    assert_eq!(clips["results"], clips["captured"], "{r:#}");
    assert_eq!(clips["lost"], 0, "{r:#}");
    assert_eq!(clips["errors"], 0, "{r:#}");
    // The outage, in the report and on the console.
    let outages = r["camera_offline"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{r:#}");
    let seconds = outages[0]["seconds"].as_f64().unwrap();
    assert!((3.5..15.0).contains(&seconds), "{r:#}");
    assert!(outages[0]["end_ns"].as_u64().is_some(), "{r:#}");
    assert!(
        outages[0]["failed_attempts"].as_u64().unwrap() >= 1,
        "{r:#}"
    );
    let live = output
        .lines()
        .filter(|l| l.starts_with("camera offline since"))
        .count();
    assert!(live >= 1, "no live outage line:\n{output}");
    let over = output
        .lines()
        .filter(|l| l.starts_with("camera offline ") && !l.starts_with("camera offline since"))
        .collect::<Vec<_>>();
    // Once when it ended, once in the summary.
    assert_eq!(over.len(), 2, "{output}");
    assert!(
        over[0].contains('-') && over[0].contains(" s"),
        "{}",
        over[0]
    );
}
