//! Helpers shared by the binary's integration tests: the data set, the models, running `rollcall`.
//!
//! Data: `$ROLLCALL_DATA`, default `../shared/data` from the workspace root. Without it (or the
//! fetched models) tests print why they are skipped, unless `ROLLCALL_REQUIRE_DATA=1` (CI).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A TCP proxy that black-holes its traffic on demand (network outages).
pub mod proxy;

/// Skip rules and the AWS endpoint, shared with the library's and the Lambda's tests.
#[path = "../../../recognizer-lib/tests/common/mod.rs"]
mod shared;

// Each test binary uses a different subset.
#[allow(unused_imports)]
pub use shared::{aws_endpoint, env_is, skip_aws, unique};

/// GStreamer's RTSP server on loopback, shared with the edge library's source tests.
#[path = "../../../edge-lib/tests/common/rtsp.rs"]
pub mod rtsp;

/// A mosquitto broker on loopback, shared with the edge library's publishing tests.
#[path = "../../../edge-lib/tests/common/mqtt_broker.rs"]
pub mod mqtt_broker;

/// A webhook receiver on loopback, shared with the edge library's publishing tests.
#[path = "../../../edge-lib/tests/common/webhook_receiver.rs"]
pub mod webhook_receiver;

/// The people of the real videos with their reference photo in `examples/`; Obama and Biden
/// are in, so the Hamilton video must name neither (and the Obama video never Biden).
pub const EXAMPLE_PEOPLE: [(&str, &str); 4] = [
    ("lin_manuel_miranda", "lin-manuel-miranda.png"),
    ("alex_lacamoire", "alex-lacamoire.png"),
    ("barack_obama", "obama.jpg"),
    ("joe_biden", "biden.jpg"),
];

/// The shared data folder (faces, examples and videos), if present.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ROLLCALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if ["faces", "examples", "videos"]
        .iter()
        .all(|sub| dir.join(sub).is_dir())
    {
        return Some(dir);
    }
    assert!(
        !env_is("ROLLCALL_REQUIRE_DATA"),
        "data folder {} missing",
        dir.display()
    );
    eprintln!("SKIPPED: data folder {} not found", dir.display());
    None
}

/// The `rollcall` binary under test, ready for arguments.
pub fn rollcall_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rollcall"))
}

/// Run `rollcall` with `args` and collect its output.
pub fn rollcall(args: &[&str]) -> Output {
    rollcall_command()
        .args(args)
        .output()
        .expect("run rollcall")
}

/// Standard output and standard error, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `<dir>/people.db` holding one academic record and no enrolled face, created if missing:
/// commands other than enroll and people import refuse a directory that does not exist, and a
/// session on it names nobody.
pub fn people_directory_without_faces(dir: &Path) -> PathBuf {
    let db = dir.join("people.db");
    if !db.exists() {
        let csv = dir.join("records.csv");
        std::fs::write(&csv, "person_id,name\nnobody,Nobody\n").unwrap();
        let out = rollcall(&[
            "people",
            "import",
            csv.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    db
}

/// Whether the models and ONNX Runtime are in the cache; skip (or fail in CI) without them.
pub fn models_present() -> bool {
    let out = rollcall(&["models", "list", "--json"]);
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let ok = listing["files"].as_array().is_some_and(|files| {
        files
            .iter()
            .filter(|f| f["kind"] == "model" || f["kind"] == "runtime")
            .all(|f| f["present"] == true)
    });
    assert!(
        ok || !env_is("ROLLCALL_REQUIRE_DATA"),
        "models missing: run `rollcall models fetch`"
    );
    if !ok {
        eprintln!("SKIPPED: models not fetched");
    }
    ok
}

/// Lay out `examples/<person>/<photo>` pairs as an enrolment folder `<parent>/enroll`; returns it.
pub fn example_photos(data: &Path, parent: &Path, people: &[(&str, &str)]) -> PathBuf {
    let dir = parent.join("enroll");
    for (person, photo) in people {
        std::fs::create_dir_all(dir.join(person)).unwrap();
        std::fs::copy(
            data.join("examples").join(person).join(photo),
            dir.join(person).join(photo),
        )
        .unwrap();
    }
    dir
}

/// Enrol the reference photos of `examples/` (one photo per person) into the SQLite `db`.
pub fn enroll_examples(data: &Path, db: &Path, people: &[(&str, &str)]) {
    let dir = example_photos(data, db.parent().expect("db in a folder"), people);
    let out = rollcall(&[
        "enroll",
        "--photos",
        dir.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Enrol the reference photos of `examples/` into the DynamoDB people table of `prefix`
/// (`rollcall enroll --backend aws`); returns the command's output.
pub fn enroll_examples_aws(
    data: &Path,
    scratch: &Path,
    prefix: &str,
    people: &[(&str, &str)],
) -> Output {
    let photos = example_photos(data, scratch, people);
    let out = rollcall_aws(
        &[
            "enroll",
            "--backend",
            "aws",
            "--photos",
            photos.to_str().expect("UTF-8 temporary path"),
        ],
        prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// Run `rollcall` with its AWS resource names under `prefix`.
pub fn rollcall_aws(args: &[&str], prefix: &str) -> Output {
    rollcall_command()
        .args(args)
        .env("ROLLCALL_AWS_PREFIX", prefix)
        .output()
        .expect("run rollcall")
}

/// A `rollcall worker` (S3 -> SQS recognition) for the resources of `prefix`, killed when
/// this is dropped, passed or not.
pub struct WorkerProcess(std::process::Child);

impl WorkerProcess {
    /// Starts the worker: long polls of 1 s, exits after 60 s without work.
    pub fn start(prefix: &str) -> WorkerProcess {
        WorkerProcess(
            rollcall_command()
                .args([
                    "worker",
                    "--prefix",
                    prefix,
                    "--wait",
                    "1s",
                    "--idle-exit",
                    "60s",
                ])
                .env("ROLLCALL_AWS_PREFIX", prefix)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start rollcall worker"),
        )
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tmux on its own socket, so a test never touches the user's sessions; the server is killed
/// when this is dropped. The session is named `console`.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server for the test called `name` (not started until the first `new-session`).
    pub fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("rollcall-{name}-{}", std::process::id()),
        }
    }

    /// Run a tmux command on this server.
    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Starts the `console` session, `width` x `height`, running `script` (sh); panics with
    /// tmux's message when it cannot.
    pub fn start(&self, width: u16, height: u16, script: &str) {
        let (width, height) = (width.to_string(), height.to_string());
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            &width,
            "-y",
            &height,
            script,
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }

    /// The visible screen of the `console` session.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    /// Wait until the screen contains every one of `needles`; returns the screen.
    pub fn wait_for(&self, needles: &[&str], timeout: std::time::Duration) -> String {
        let started = std::time::Instant::now();
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            assert!(
                started.elapsed() < timeout,
                "{needles:?} not on screen after {timeout:?}:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Whether tmux is installed; skip (or fail in CI) without it.
pub fn tmux_present() -> bool {
    let ok = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || !env_is("ROLLCALL_REQUIRE_DATA"),
        "tmux missing (scripts/setup installs it)"
    );
    if !ok {
        eprintln!("SKIPPED: tmux not installed");
    }
    ok
}

/// The one step of a `bench cameras --cameras 1 --duration 3s --json` report, after checking
/// that it is complete: every clip captured in 3 s answered, nothing lost, latency figures set.
pub fn one_complete_camera_step(report: &serde_json::Value) -> &serde_json::Value {
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "{report:#}");
    let step = &steps[0];
    assert_eq!(step["cameras"], 1);
    let clips = step["clips"].as_u64().expect("clips");
    // 3 s of capture at 0.5 s per clip.
    assert!((4..=8).contains(&clips), "{step:#}");
    assert_eq!(step["lost"], 0, "{step:#}");
    assert_eq!(step["errors"], 0, "{step:#}");
    assert_eq!(step["results"], clips, "{step:#}");
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            step["latency_ms"][key].as_f64().expect("latency figure") > 0.0,
            "{key}: {step:#}"
        );
    }
    step
}

/// Every clip metadata file (`<device>/<session>/<seq>.json`) in the spool under `root`.
pub fn spooled_clips(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(devices) = std::fs::read_dir(root) else {
        return found;
    };
    for device in devices.flatten() {
        for session in std::fs::read_dir(device.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for file in std::fs::read_dir(session.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.ends_with(".json") && !name.starts_with('.') {
                    found.push(file.path());
                }
            }
        }
    }
    found.sort();
    found
}

/// Sends `signal` (`TERM`, `INT`, `KILL`...) to process `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits up to `timeout` for `child` to exit; kills it and panics if it does not.
pub fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for rollcall") {
            return status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rollcall did not exit within {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A child process killed (and reaped) when the test ends, passed or not.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `rollcall worker` for the deployment `prefix` (moto), long polls of 1 s, exiting after
/// `idle_exit` without work; output discarded.
pub fn start_worker(prefix: &str, idle_exit: &str) -> KillOnDrop {
    KillOnDrop(
        rollcall_command()
            .args([
                "worker",
                "--prefix",
                prefix,
                "--wait",
                "1s",
                "--idle-exit",
                idle_exit,
            ])
            .env("ROLLCALL_AWS_PREFIX", prefix)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start rollcall worker"),
    )
}

/// `rollcall aws provision` of `prefix` with `device`'s result queue (moto); asserts success.
pub fn provision(prefix: &str, device: &str) {
    let out = rollcall_aws(
        &["aws", "provision", "--prefix", prefix, "--device", device],
        prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// A people directory in `dir` with Barack Obama enrolled from his `obama.jpg` of `examples/`
/// and an academic record (S-0044, Political Science, year 4); its path.
pub fn obama_with_record(data: &Path, dir: &Path) -> PathBuf {
    let photos = example_photos(data, dir, &[("barack_obama", "obama.jpg")]);
    let records = dir.join("records.csv");
    std::fs::write(
        &records,
        "person_id,name,student_id,programme,year\n\
         barack_obama,Barack Obama,S-0044,Political Science,4\n",
    )
    .expect("write the records");
    let db = dir.join("people.db");
    let out = rollcall(&[
        "enroll",
        "--photos",
        photos.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    db
}
