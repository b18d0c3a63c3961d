//! Hostile inputs through the `rollcall` binary, each with its documented result and exit status
//! (README, "Exit status" and "Bad and hostile inputs"): special files (FIFO, folder, broken
//! link, link loop), a mistyped people directory, absurd thread counts, phone photos stored
//! sideways, a 12000x12000 PNG, a crowd of 400 faces, a portrait phone video, records with
//! control characters, clips that all fail, an unwritable report. Every file is generated here.

mod common;
#[path = "../../recognizer-lib/tests/common/hostile.rs"]
mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{data_dir, enroll_examples, models_present, rollcall, rollcall_command, text};

/// The people enrolled for these tests (reference photos in `examples/`).
const PEOPLE: [(&str, &str); 2] = [("barack_obama", "obama.jpg"), ("joe_biden", "biden.jpg")];

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

/// Run `rollcall`, failing the test (instead of hanging it) when it takes longer than `limit`.
fn rollcall_within(args: &[&str], limit: Duration) -> Output {
    rollcall_env_within(args, &[], limit)
}

fn rollcall_env_within(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    // Each run spools its sessions' clips in a folder of its own: the tests of this file run in
    // parallel, and the default spool (one per device) admits one session at a time.
    let spool = tempfile::tempdir().expect("spool folder");
    let child = rollcall_command()
        .args(args)
        .env("ROLLCALL_SPOOL", spool.path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rollcall");
    let pid = child.id().to_string();
    // The output is collected on a thread (a full pipe must not stall the child), the wait is
    // bounded here.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output().expect("output"));
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            let out = rx.recv().expect("output after kill");
            panic!(
                "rollcall {args:?} still running after {limit:?} (blocked?): {}",
                text(&out)
            );
        }
    }
}

/// The `person_id`s of a JSON array of faces or people (unknown ones left out).
fn person_ids(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .expect("an array")
        .iter()
        .filter_map(|p| p["person_id"].as_str())
        .collect()
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

/// Data, models and a people directory with Obama and Biden enrolled; `None` (skip) without
/// the data or the models.
fn setup() -> Option<(PathBuf, tempfile::TempDir, PathBuf)> {
    let data = data_dir()?;
    if !models_present() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    enroll_examples(&data, &db, &PEOPLE);
    Some((data, tmp, db))
}

const QUICK: Duration = Duration::from_secs(120);

#[cfg(target_os = "linux")]
#[test]
fn special_files_are_refused_by_name_without_blocking() {
    let Some((data, tmp, db)) = setup() else {
        return;
    };
    let dir = tmp.path();
    let photo = data.join("examples/barack_obama/obama1.jpg");
    let fifo = dir.join("fifo.jpg");
    mkfifo(&fifo);

    // identify: the FIFO fails by name, the good photo is still identified; status 1.
    let out = rollcall_within(&["identify", "--db", s(&db), s(&fifo), s(&photo)], QUICK);
    let all = text(&out);
    assert_eq!(code(&out), 1, "{all}");
    assert!(all.contains("fifo.jpg: error: "), "{all}");
    assert!(
        all.contains("is a FIFO (named pipe), not a regular file"),
        "{all}"
    );
    assert!(all.contains("Barack Obama (barack_obama)"), "{all}");

    // people import: refused before the (new) directory is created.
    let fifo_csv = dir.join("records.csv");
    mkfifo(&fifo_csv);
    let new_db = dir.join("new").join("people.db");
    let out = rollcall_within(
        &["people", "import", s(&fifo_csv), "--db", s(&new_db)],
        QUICK,
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("records.csv"), "{}", text(&out));
    assert!(text(&out).contains("FIFO"), "{}", text(&out));
    assert!(!new_db.exists(), "nothing created for a bad records file");

    // A config file that is a FIFO: a usage error, at once.
    let fifo_config = dir.join("config.toml");
    mkfifo(&fifo_config);
    let out = rollcall_within(
        &[
            "--config",
            s(&fifo_config),
            "identify",
            "--db",
            s(&db),
            s(&photo),
        ],
        QUICK,
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("config.toml"), "{}", text(&out));

    // A FIFO as the video of scan and of a session.
    let fifo_video = dir.join("camera.mp4");
    mkfifo(&fifo_video);
    let out = rollcall_within(&["scan", s(&fifo_video), "--db", s(&db)], QUICK);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("camera.mp4"), "{}", text(&out));
    assert!(text(&out).contains("FIFO"), "{}", text(&out));
    let source = format!("file:{}", s(&fifo_video));
    let out = rollcall_within(
        &["session", "--headless", "--source", &source, "--db", s(&db)],
        QUICK,
    );
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("FIFO"), "{}", text(&out));

    // A probe folder with a FIFO, a folder named like a photo, a broken link and a link loop
    // next to real photos: each entry is reported with its reason and counted in --json.
    let probes = dir.join("probes");
    let person = probes.join("barack_obama");
    std::fs::create_dir_all(&person).unwrap();
    std::fs::copy(&photo, person.join("obama1.jpg")).unwrap();
    std::fs::copy(
        data.join("examples/barack_obama/obama2.jpg"),
        person.join("obama2.jpg"),
    )
    .unwrap();
    mkfifo(&person.join("fifo.jpg"));
    std::fs::create_dir(person.join("folder.jpg")).unwrap();
    std::os::unix::fs::symlink(person.join("gone.jpg"), person.join("dangling.jpg")).unwrap();
    std::os::unix::fs::symlink(person.join("b.jpg"), person.join("a.jpg")).unwrap();
    std::os::unix::fs::symlink(person.join("a.jpg"), person.join("b.jpg")).unwrap();
    let out = rollcall_within(
        &["eval", "--photos", s(&probes), "--db", s(&db), "--json"],
        QUICK,
    );
    assert_eq!(code(&out), 1, "something was skipped: {}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    assert_eq!(report["probes"], 2, "{report:#}");
    assert_eq!(report["skipped_count"], 5, "{report:#}");
    let reasons: Vec<String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["file"], s["reason"]))
        .collect();
    for (file, why) in [
        ("fifo.jpg", "is a FIFO"),
        ("folder.jpg", "is a directory"),
        ("dangling.jpg", "broken symbolic link"),
        ("a.jpg", "symbolic link loop"),
        ("b.jpg", "symbolic link loop"),
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(file) && r.contains(why)),
            "{file}: {why} not in {reasons:#?}"
        );
    }
    // enroll reports the same entries, one line each.
    let out = rollcall_within(&["enroll", "--photos", s(&probes), "--db", s(&db)], QUICK);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for file in ["fifo.jpg", "folder.jpg", "dangling.jpg", "a.jpg", "b.jpg"] {
        assert!(
            all.lines()
                .any(|l| l.starts_with("skipped ") && l.contains(file)),
            "{file}: {all}"
        );
    }
}

#[test]
fn a_mistyped_people_directory_is_refused_and_never_created() {
    let Some((data, tmp, db)) = setup() else {
        return;
    };
    let photo = data.join("examples/barack_obama/obama1.jpg");
    let typo = tmp.path().join("peple").join("people.db");
    for args in [
        vec!["identify", "--db", s(&typo), s(&photo)],
        vec!["people", "list", "--db", s(&typo)],
        vec!["people", "remove", "barack_obama", "--db", s(&typo)],
        vec!["scan", "video.mp4", "--db", s(&typo)],
    ] {
        let out = rollcall_within(&args, QUICK);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        assert!(text(&out).contains("does not exist"), "{}", text(&out));
        assert!(text(&out).contains("peple"), "{}", text(&out));
        assert!(
            !typo.parent().unwrap().exists(),
            "{args:?} created the folder"
        );
    }
    // Reading commands leave an existing directory as it was (read-only).
    let before = std::fs::read(&db).unwrap();
    let out = rollcall_within(&["identify", "--db", s(&db), s(&photo)], QUICK);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // people import creates one, and says so.
    let csv = tmp.path().join("records.csv");
    std::fs::write(&csv, "person_id,name\nada,Ada Lovelace\n").unwrap();
    let out = rollcall_within(&["people", "import", s(&csv), "--db", s(&typo)], QUICK);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("creating a new people directory"),
        "{}",
        text(&out)
    );
    assert!(typo.exists());
}

#[test]
fn exit_status_and_thread_settings_follow_the_table() {
    let Some((data, tmp, db)) = setup() else {
        return;
    };
    let photo = data.join("examples/barack_obama/obama1.jpg");
    let ok = rollcall_within(&["identify", "--db", s(&db), s(&photo)], QUICK);
    assert_eq!(code(&ok), 0, "{}", text(&ok));
    let missing = tmp.path().join("missing.jpg");
    let out = rollcall_within(&["identify", "--db", s(&db), s(&photo), s(&missing)], QUICK);
    assert_eq!(code(&out), 1, "one input failed: {}", text(&out));
    assert!(
        text(&out).contains("1 of 2 image(s) could not be read"),
        "{}",
        text(&out)
    );

    for (args, env, named) in [
        (vec!["--threads", "0"], vec![], "--threads"),
        (vec!["--threads", "99999999999"], vec![], "--threads"),
        (
            vec![],
            vec![("ROLLCALL_THREADS", "99999999999")],
            "ROLLCALL_THREADS",
        ),
    ] {
        let mut all = vec!["identify", "--db", s(&db), s(&photo)];
        all.extend(args);
        let out = rollcall_env_within(&all, &env, QUICK);
        assert_eq!(code(&out), 2, "{}", text(&out));
        assert!(text(&out).contains(named), "{}", text(&out));
    }
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "threads = 99999999999\n").unwrap();
    let out = rollcall_within(
        &[
            "--config",
            s(&config),
            "identify",
            "--db",
            s(&db),
            s(&photo),
        ],
        QUICK,
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("config file `threads`"),
        "{}",
        text(&out)
    );

    // More threads than cores: capped with a message, and the run goes on.
    let out = rollcall_env_within(
        &["identify", "--db", s(&db), s(&photo)],
        &[("ROLLCALL_THREADS", "1000")],
        QUICK,
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("more than the"), "{}", text(&out));
    assert!(text(&out).contains("Barack Obama"), "{}", text(&out));
}

#[test]
fn phone_photos_stored_sideways_are_named() {
    let Some((data, tmp, db)) = setup() else {
        return;
    };
    let upright = hostile::huge_photo_face(&data);
    let mut args = vec![
        "identify".to_string(),
        "--json".into(),
        "--db".into(),
        s(&db).into(),
    ];
    for orientation in [3u16, 6, 8] {
        let path = tmp.path().join(format!("phone-{orientation}.jpg"));
        std::fs::write(&path, hostile::sideways_jpeg(&upright, orientation)).unwrap();
        args.push(s(&path).to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rollcall_within(&args, QUICK);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (image, orientation) in report["images"].as_array().unwrap().iter().zip([3, 6, 8]) {
        assert_eq!(image["orientation"], orientation, "{image:#}");
        assert_eq!(person_ids(&image["faces"]), ["barack_obama"], "{image:#}");
    }
}

#[test]
fn a_huge_png_and_a_crowd_are_identified_within_the_budget() {
    let Some((data, tmp, db)) = setup() else {
        return;
    };
    let huge = tmp.path().join("huge.png");
    std::fs::write(&huge, hostile::png_bytes(&hostile::huge_photo(&data))).unwrap();
    let crowd = tmp.path().join("crowd.png");
    std::fs::write(&crowd, hostile::png_bytes(&hostile::crowd_photo(&data))).unwrap();

    let out = rollcall_within(
        &["identify", "--json", "--db", s(&db), s(&huge), s(&crowd)],
        Duration::from_secs(600),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faces = |i: usize| report["images"][i]["faces"].as_array().unwrap().clone();
    let huge_faces = faces(0);
    assert_eq!(huge_faces.len(), 1, "{report:#}");
    assert_eq!(huge_faces[0]["person_id"], "barack_obama");
    let crowd_faces = faces(1).len();
    assert!(
        crowd_faces >= 360,
        "{crowd_faces} faces in the crowd of 400"
    );

    // Over a smaller budget: refused from the header, naming the file and the budget; status 1.
    let out = rollcall_within(
        &[
            "identify",
            "--db",
            s(&db),
            "--max-megapixels",
            "100",
            s(&huge),
        ],
        QUICK,
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("huge.png"), "{}", text(&out));
    assert!(
        text(&out).contains("budget is 100 megapixels"),
        "{}",
        text(&out)
    );
    let out = rollcall_within(
        &[
            "identify",
            "--db",
            s(&db),
            "--max-megapixels",
            "0",
            s(&huge),
        ],
        QUICK,
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("--max-megapixels"), "{}", text(&out));
}

#[test]
fn records_with_control_characters_cannot_forge_output_lines() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    let csv = tmp.path().join("records.csv");
    std::fs::write(
        &csv,
        "person_id,name,programme\n\
         barack_obama,\"Barack\n12:00:00.000 clip 99999999  FORGED 0.99\",\"Law\u{1b}[2J\"\n\
         joe_biden,\"Joe\rBiden\",Law\n",
    )
    .unwrap();
    let photos = common::example_photos(&data, tmp.path(), &PEOPLE);
    let out = rollcall(&[
        "enroll",
        "--photos",
        s(&photos),
        "--records",
        s(&csv),
        "--db",
        s(&db),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let forged = |output: &str| {
        output
            .lines()
            .any(|l| l.starts_with("12:00:00.000 clip 99999999") || l.contains('\u{1b}'))
    };
    let photo = data.join("examples/barack_obama/obama1.jpg");
    let out = rollcall(&["identify", "--db", s(&db), s(&photo)]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!forged(&stdout), "{stdout}");
    assert!(
        stdout.contains("Barack\\n12:00:00.000 clip 99999999"),
        "{stdout}"
    );
    assert!(stdout.contains("Law\\u{1b}[2J"), "{stdout}");

    let out = rollcall(&["people", "list", "--db", s(&db)]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!forged(&stdout) && !stdout.contains('\r'), "{stdout}");

    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let source = format!("file:{}", s(&video));
    let out = rollcall_within(
        &[
            "session",
            "--headless",
            "--source",
            &source,
            "--pace",
            "fast",
            "--duration",
            "end",
            "--db",
            s(&db),
        ],
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!forged(&stdout), "{stdout}");
    assert!(stdout.contains("+ Barack\\n12:00:00.000"), "{stdout}");
}

#[test]
fn a_portrait_phone_video_is_scanned_upright() {
    let Some((data, tmp, db)) = setup() else {
        return;
    };
    let ffmpeg = |args: &[&str]| {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .status()
            .expect("run ffmpeg (scripts/setup installs it)");
        assert!(status.success(), "ffmpeg {args:?}");
    };
    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let turned = tmp.path().join("turned.mp4");
    let portrait = tmp.path().join("portrait.mp4");
    // The pixels turned 90 degrees clockwise plus a display matrix that turns them back: how
    // a phone stores a video filmed in portrait (ffmpeg 5.1 writes the matrix on stream copy).
    ffmpeg(&[
        "-i",
        s(&video),
        "-vf",
        "transpose=clock",
        "-an",
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        s(&turned),
    ]);
    ffmpeg(&[
        "-i",
        s(&turned),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        s(&portrait),
    ]);
    let out = rollcall_within(
        &["scan", s(&portrait), "--db", s(&db), "--json"],
        Duration::from_secs(300),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        person_ids(&report["people"]),
        ["barack_obama"],
        "{report:#}"
    );
}

#[test]
fn sessions_report_failed_clips_and_check_the_report_destination_first() {
    let Some((data, tmp, db)) = setup() else {
        return;
    };
    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let source = format!("file:{}", s(&video));
    let base = [
        "session",
        "--headless",
        "--source",
        &source,
        "--pace",
        "fast",
        "--duration",
        "end",
        "--db",
        s(&db),
    ];

    // A report in a folder that does not exist: refused before anything is captured.
    let missing = tmp.path().join("no-such-folder").join("r.json");
    let mut args = base.to_vec();
    args.extend(["--report", s(&missing)]);
    let out = rollcall_within(&args, QUICK);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("no-such-folder"), "{}", text(&out));
    assert!(
        !text(&out).contains("clips:"),
        "no session ran: {}",
        text(&out)
    );

    // Every clip refused by the function: status 1, and the report says why.
    let report = tmp.path().join("r.json");
    let mut args = base.to_vec();
    args.extend(["--max-clip-bytes", "0", "--report", s(&report)]);
    let out = rollcall_within(&args, Duration::from_secs(300));
    assert_eq!(code(&out), 1, "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let error = json["error"].as_str().unwrap_or_else(|| panic!("{json:#}"));
    assert!(
        error.contains("failed in the recognition function"),
        "{error}"
    );
    assert_eq!(
        json["clips"]["errors"], json["clips"]["captured"],
        "{json:#}"
    );
    assert!(text(&out).contains("session failed:"), "{}", text(&out));
}

#[test]
fn a_4096x2160_video_gives_one_warning_and_a_working_session() {
    let Some((_data, tmp, db)) = setup() else {
        return;
    };
    let video = tmp.path().join("4k.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .args(["testsrc=size=4096x2160:rate=10", "-frames:v", "10"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", s(&video)])
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let report = tmp.path().join("r.json");
    let source = format!("file:{}", s(&video));
    let out = rollcall_within(
        &[
            "session",
            "--headless",
            "--source",
            &source,
            "--pace",
            "fast",
            "--duration",
            "end",
            "--db",
            s(&db),
            "--report",
            s(&report),
        ],
        Duration::from_secs(300),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("4096x2160"), "{stderr}");
    assert!(warnings[0].contains("scaled to 3840x2024"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["error"], serde_json::Value::Null, "{json:#}");
    assert_eq!(json["clips"]["captured"], 2, "{json:#}");
}
