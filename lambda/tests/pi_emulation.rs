//! The Raspberry Pi build, proven by emulation: `rollcall` and the Lambda `bootstrap`
//! cross-built for aarch64 (`scripts/cross-aarch64 home`) run under qemu user-mode emulation with
//! the aarch64 ONNX Runtime library.
//!
//! - `rollcall scan` (aarch64) of a 1.5 s clip of the Obama video names Barack Obama and not Joe
//!   Biden, against a people directory enrolled by this machine's `rollcall` (so templates made
//!   on x86-64 match embeddings made on aarch64).
//! - The aarch64 `bootstrap` answers one S3 event served by the Lambda Runtime API on loopback
//!   (`runtime_api`), with moto behind it, naming Barack Obama.
//!
//! The test does not build: `scripts/cross-aarch64 home` does (it installs what is missing:
//! Debian's qemu-user-static, the aarch64 GCC, rustc-web with its aarch64 standard library, arm64
//! ffmpeg libraries; builds both binaries into a target dir outside the clone, kept between runs;
//! fetches ONNX Runtime for aarch64). Without its binaries or qemu the test prints why and passes
//! (missing tools are a property of the machine), unless `ROLLCALL_REQUIRE_AARCH64=1`. Run the
//! script again after changing the code: the test runs whatever binaries it finds. The bootstrap
//! part needs moto (`AWS_ENDPOINT_URL`, see `scripts/moto`) and skips without it like the other
//! AWS tests.

#[path = "../../recognizer-lib/tests/common/mod.rs"]
mod common;
mod runtime_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{aws_endpoint, env_is};
use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
use rollcall_edge::source::{open_source, Pace, SourceOptions, SourceSpec};
use rollcall_protocol::aws::{self, Names};
use rollcall_protocol::store::s3::S3ClipStore;
use rollcall_protocol::store::ClipStore;
use runtime_api::{lambda_environment, Answer, RuntimeApi};

const TARGET: &str = "aarch64-unknown-linux-gnu";
/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lambda/ is inside the workspace")
        .to_path_buf()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Print why the emulation test is skipped; fail instead with `ROLLCALL_REQUIRE_AARCH64=1`.
fn skip<T>(why: &str) -> Option<T> {
    assert!(
        !env_is("ROLLCALL_REQUIRE_AARCH64"),
        "{why} (ROLLCALL_REQUIRE_AARCH64=1)"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// The ELF machine of `path`, if it is an ELF file.
fn elf_machine(path: &Path) -> Option<u16> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.get(..4)? == b"\x7fELF").then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

struct Cross {
    rollcall: PathBuf,
    bootstrap: PathBuf,
    home: PathBuf,
}

/// The aarch64 binaries and model cache that `scripts/cross-aarch64 home` made.
fn cross_binaries() -> Option<Cross> {
    let qemu_runs = Command::new("qemu-aarch64-static")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !qemu_runs {
        return skip("qemu-aarch64-static not found (`scripts/cross-aarch64 install`)");
    }
    let home_dir = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let target_dir = std::env::var_os("ROLLCALL_AARCH64_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir.join(".cache/rollcall/target-aarch64"));
    let release = target_dir.join(TARGET).join("release");
    let cross = Cross {
        rollcall: release.join("rollcall"),
        bootstrap: release.join("rollcall-lambda"),
        home: std::env::var_os("ROLLCALL_AARCH64_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home_dir.join(".cache/rollcall/aarch64-home")),
    };
    for binary in [&cross.rollcall, &cross.bootstrap] {
        if !binary.exists() {
            return skip(&format!(
                "{} not built (`scripts/cross-aarch64 home`)",
                binary.display()
            ));
        }
        assert_eq!(
            elf_machine(binary),
            Some(EM_AARCH64),
            "{} is not an aarch64 executable",
            binary.display()
        );
    }
    Some(cross)
}

/// This machine's `rollcall`, built through cargo (a no-op when fresh).
fn host_rollcall() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "rollcall-console",
            "--bin",
            "rollcall",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "building rollcall failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "rollcall")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no rollcall executable")
}

fn run(command: &mut Command, what: &str) -> Output {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", text(&out));
    out
}

/// Obama and Biden (the distractor) as photo folders.
fn photos(data: &Path, dir: &Path) -> PathBuf {
    let photos = dir.join("enroll");
    for (person, photo) in [("barack_obama", "obama.jpg"), ("joe_biden", "biden.jpg")] {
        std::fs::create_dir_all(photos.join(person)).unwrap();
        std::fs::copy(
            data.join("examples").join(person).join(photo),
            photos.join(person).join(photo),
        )
        .unwrap();
    }
    photos
}

#[test]
fn aarch64_build_scans_a_clip_and_answers_a_lambda_event_under_qemu() {
    let Some(data) = common::data_dir() else {
        return;
    };
    if common::pipeline().is_none() {
        return;
    }
    let Some(cross) = cross_binaries() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = host_rollcall();
    let video = data.join("videos/armbiantest_obama/obama.mp4");

    // The aarch64 rollcall finds the aarch64 ONNX Runtime in its cache.
    let out = run(
        Command::new("qemu-aarch64-static")
            .arg(&cross.rollcall)
            .args(["models", "path", "onnxruntime"])
            .env("ROLLCALL_HOME", &cross.home),
        "aarch64 rollcall models path onnxruntime",
    );
    let runtime_library = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !runtime_library.exists() {
        skip::<()>(&format!(
            "{} not fetched (`scripts/cross-aarch64 home`)",
            runtime_library.display()
        ));
        return;
    }
    assert_eq!(
        elf_machine(&runtime_library),
        Some(EM_AARCH64),
        "{} is not the aarch64 ONNX Runtime",
        runtime_library.display()
    );

    // Enrolled on this machine, scanned on (emulated) aarch64.
    let db = tmp.path().join("people.db");
    let photos = photos(&data, tmp.path());
    run(
        Command::new(&host)
            .args(["enroll", "--photos"])
            .arg(&photos)
            .arg("--db")
            .arg(&db),
        "host rollcall enroll",
    );
    let clip = tmp.path().join("obama-1.5s.mp4");
    run(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&video)
            .args(["-t", "1.5", "-an", "-c", "copy"])
            .arg(&clip),
        "ffmpeg cuts a 1.5 s clip",
    );
    let started = Instant::now();
    let out = run(
        Command::new("qemu-aarch64-static")
            .arg(&cross.rollcall)
            .arg("scan")
            .arg(&clip)
            .arg("--db")
            .arg(&db)
            .arg("--json")
            .env("ROLLCALL_HOME", &cross.home),
        "aarch64 rollcall scan",
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scan --json is not JSON ({e}): {}", text(&out)));
    let people: Vec<&str> = report["people"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["person_id"].as_str()).collect())
        .unwrap_or_default();
    eprintln!(
        "aarch64 scan under qemu: {:.1} s, {report}",
        started.elapsed().as_secs_f64()
    );
    assert!(report["clips"].as_u64().unwrap_or(0) >= 2, "{report}");
    assert!(people.contains(&"barack_obama"), "{report}");
    assert!(!people.contains(&"joe_biden"), "{report}");

    lambda_bootstrap_answers_one_event(&cross, &host, &photos, &video);
}

/// The aarch64 bootstrap under qemu, fed one S3 event by the Runtime API on loopback.
fn lambda_bootstrap_answers_one_event(cross: &Cross, host: &Path, photos: &Path, video: &Path) {
    if aws_endpoint().is_none() {
        return;
    }
    let prefix = format!("rc-pi-{}", std::process::id());
    let device = "cam-pi";
    run(
        Command::new(host)
            .args(["aws", "provision", "--prefix", &prefix, "--device", device])
            .env("ROLLCALL_AWS_PREFIX", &prefix),
        "rollcall aws provision",
    );
    run(
        Command::new(host)
            .args(["enroll", "--backend", "aws", "--photos"])
            .arg(photos)
            .env("ROLLCALL_AWS_PREFIX", &prefix),
        "rollcall enroll --backend aws",
    );

    // The first 0.5 s clip of the video, uploaded as an edge device would.
    let mut source = open_source(
        &SourceSpec::File(video.to_path_buf()),
        &SourceOptions {
            pace: Pace::Fast,
            ..SourceOptions::default()
        },
    )
    .expect("open the Obama video");
    let mut segmenter = ClipSegmenter::new(SegmentConfig::new(device, "s1", source.fps())).unwrap();
    let clip = loop {
        match source.next_frame().unwrap() {
            Some(frame) => {
                if let Some(clip) = segmenter.push(frame).unwrap().into_iter().next() {
                    break clip;
                }
            }
            None => panic!("the video gave no clip"),
        }
    };
    let key = clip.meta.object_key();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = aws::load_config().await;
        S3ClipStore::from_config(&config, &Names::new(&prefix).bucket)
            .put(&key, &clip.meta, &clip.bytes)
            .await
            .unwrap();
    });

    let api = RuntimeApi::start();
    let event = serde_json::json!({"Records": [{
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": Names::new(&prefix).bucket}, "object": {"key": key}}
    }]});
    let request = api.push_event(&event.to_string());
    let log_path =
        std::env::temp_dir().join(format!("rollcall-pi-bootstrap-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut child = Command::new("qemu-aarch64-static")
        .arg(&cross.bootstrap)
        .envs(lambda_environment(&api, 1024))
        .env("ROLLCALL_AWS_PREFIX", &prefix)
        .env("ROLLCALL_HOME", &cross.home)
        .env("RUST_LOG", "info,ort=error")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start the aarch64 bootstrap under qemu");
    let answer = api.wait_answer(&request, Duration::from_secs(600));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let Some(Answer::Response(body)) = answer else {
        panic!(
            "no response from the aarch64 bootstrap: {answer:?}; init error {:?}; requests {:?}; log:\n{log}",
            api.init_error(),
            api.log()
        );
    };
    eprintln!(
        "aarch64 bootstrap under qemu answered in {:.1} s: {body}",
        started.elapsed().as_secs_f64()
    );
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = &reply["results"][0];
    assert!(result["error"].is_null(), "{reply}");
    let people: Vec<&str> = result["people"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["person_id"].as_str()).collect())
        .unwrap_or_default();
    assert!(people.contains(&"barack_obama"), "{reply}\n{log}");
    assert!(!people.contains(&"joe_biden"), "{reply}");
    assert!(
        log.contains("cold start: models and gallery loaded"),
        "{log}"
    );
}
