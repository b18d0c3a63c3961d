//! The durable spool through the binary, embedded backend: a `kill -9` mid-session leaves the
//! unanswered clips on disk and `spool drain` answers every one of them; SIGTERM finishes the
//! session (answers awaited, report written) and exits 143; a second signal stops at once and
//! keeps the spool. Skipped (with the reason printed) without the models or the data set,
//! unless `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    data_dir, models_present, people_directory_without_faces, rollcall, rollcall_command,
    send_signal, spooled_clips, text, wait_with_timeout,
};

const HAMILTON: &str = "videos/short_hamilton_clip/short_hamilton_clip.mp4";

/// `rollcall session --headless` on `source` with the spool under `spool`, output to files in
/// `dir`.
fn start_session(dir: &Path, spool: &Path, device: &str, source: &str, extra: &[&str]) -> Child {
    let db = people_directory_without_faces(dir);
    rollcall_command()
        .args([
            "session",
            "--headless",
            "--device",
            device,
            "--source",
            source,
            "--spool",
            spool.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--objects",
            dir.join("objects").to_str().unwrap(),
        ])
        .args(extra)
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .expect("start rollcall session")
}

fn output(dir: &Path) -> String {
    let read = |name| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("{}{}", read("stdout.txt"), read("stderr.txt"))
}

/// Waits until at least `n` clips are in the spool; panics after `timeout`.
fn wait_for_spooled(spool: &Path, n: usize, timeout: Duration, dir: &Path) -> usize {
    let started = Instant::now();
    loop {
        let found = spooled_clips(spool).len();
        if found >= n {
            return found;
        }
        assert!(
            started.elapsed() < timeout,
            "fewer than {n} clips in the spool after {timeout:?}:\n{}",
            output(dir)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A session on the Hamilton video at full speed with one worker analysing every frame: it
/// falls behind, so unanswered clips pile up in the spool; returns once 4 are there.
fn start_backlogged_session(data: &Path, dir: &Path, spool: &Path, device: &str) -> Child {
    let video = format!("file:{}", data.join(HAMILTON).display());
    let session = start_session(
        dir,
        spool,
        device,
        &video,
        &["--pace", "fast", "--max-workers", "1", "--sample", "all"],
    );
    wait_for_spooled(spool, 4, Duration::from_secs(120), dir);
    session
}

fn status_json(spool: &Path) -> serde_json::Value {
    let out = rollcall(&[
        "spool",
        "status",
        "--json",
        "--spool",
        spool.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

#[test]
fn a_killed_session_leaves_its_clips_in_the_spool_and_drain_answers_every_one() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let mut session = start_backlogged_session(&data, dir.path(), &spool, "cam-kill");
    send_signal(session.id(), "KILL");
    let status = wait_with_timeout(&mut session, Duration::from_secs(10));
    assert!(!status.success());
    let on_disk = spooled_clips(&spool).len() as u64;
    println!(
        "{on_disk} clip(s) in the spool after kill -9:\n{}",
        output(dir.path())
    );
    assert!(on_disk >= 4);

    let before = status_json(&spool);
    println!("{before:#}");
    assert_eq!(before["pending"], on_disk, "{before:#}");
    let device = &before["devices"][0];
    assert_eq!(device["device_id"], "cam-kill");
    assert_eq!(device["in_use"], false, "the lock died with the process");
    assert_eq!(device["sessions"][0]["clips"], on_disk);
    assert!(device["oldest_age_s"].as_f64().unwrap() >= 0.0);

    let db = dir.path().join("people.db");
    let out = rollcall(&[
        "spool",
        "drain",
        "--json",
        "--spool",
        spool.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--max-workers",
        "2",
    ]);
    println!("{}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    let drained: serde_json::Value = serde_json::from_slice(&out.stdout).expect("drain JSON");
    assert_eq!(drained["uploaded"], on_disk, "{drained:#}");
    assert_eq!(drained["results"], on_disk, "{drained:#}");
    assert_eq!(drained["lost"], 0, "{drained:#}");
    assert_eq!(drained["pending"], 0, "{drained:#}");
    assert!(spooled_clips(&spool).is_empty());
    assert_eq!(status_json(&spool)["pending"], 0);

    // Nothing left: a second drain has nothing to do and starts nothing.
    let out = rollcall(&["spool", "drain", "--spool", spool.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing to drain"), "{}", text(&out));
}

#[test]
fn sigterm_finishes_the_session_writes_the_report_and_exits_143() {
    if !models_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let report = dir.path().join("report.json");
    let mut session = start_session(
        dir.path(),
        &spool,
        "cam-term",
        "test",
        &[
            "--duration",
            "60s",
            "--report",
            report.to_str().unwrap(),
            "--grace",
            "30s",
        ],
    );
    // A few clips answered, then the signal systemd, docker and `timeout` send.
    let started = Instant::now();
    while !output(dir.path()).contains(" clip 00000003") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no result yet:\n{}",
            output(dir.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    send_signal(session.id(), "TERM");
    let status = wait_with_timeout(&mut session, Duration::from_secs(60));
    let printed = output(dir.path());
    println!("{printed}");
    assert_eq!(status.code(), Some(143), "{printed}");
    assert!(printed.contains("interrupted by SIGTERM"), "{printed}");
    assert!(printed.contains("clips: "), "the summary: {printed}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).unwrap();
    assert_eq!(r["interrupted_by"], "SIGTERM", "{r:#}");
    assert_eq!(r["ended"], "interrupted", "{r:#}");
    let clips = &r["clips"];
    let captured = clips["captured"].as_u64().unwrap();
    assert!(captured >= 4, "{r:#}");
    assert!(
        r["capture_s"].as_f64().unwrap() < 50.0,
        "capture stopped early: {r:#}"
    );
    assert_eq!(clips["results"], captured, "drained: {r:#}");
    assert_eq!(clips["lost"], 0, "{r:#}");
    assert_eq!(clips["spooled"], 0, "{r:#}");
    assert!(spooled_clips(&spool).is_empty());
}

#[test]
fn a_second_signal_stops_at_once_and_keeps_the_spool() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let mut session = start_backlogged_session(&data, dir.path(), &spool, "cam-twice");
    send_signal(session.id(), "INT");
    std::thread::sleep(Duration::from_millis(300));
    send_signal(session.id(), "INT");
    let status = wait_with_timeout(&mut session, Duration::from_secs(20));
    let printed = output(dir.path());
    println!("{printed}");
    assert_eq!(status.code(), Some(130), "{printed}");
    assert!(printed.contains("SIGINT again: stopping now"), "{printed}");
    assert!(
        !spooled_clips(&spool).is_empty(),
        "unanswered clips stay on disk"
    );
    assert_eq!(status_json(&spool)["devices"][0]["in_use"], false);
}

#[test]
fn spool_commands_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none");
    let out = rollcall(&["spool", "status", "--spool", empty.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 clip(s) pending"), "{}", text(&out));
    let out = rollcall(&[
        "spool",
        "drain",
        "--spool",
        empty.to_str().unwrap(),
        "--device",
        "../x",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("../x"), "{}", text(&out));
    let out = rollcall(&["session", "--source", "test", "--spool-max", "lots"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("lots"), "{}", text(&out));
    // Something that is not a folder where the spool should be.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = rollcall(&["spool", "status", "--spool", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(file.to_str().unwrap()),
        "{}",
        text(&out)
    );
    // The env variable names the spool too.
    let out = rollcall_command()
        .args(["spool", "status", "--json"])
        .env("ROLLCALL_SPOOL", &empty)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["spool"], empty.to_str().unwrap());
}
