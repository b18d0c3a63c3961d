//! The layering rule the edge library lives by: it builds on `rollcall-protocol` (wire types,
//! store and queue traits and backends) and never on the recognizer, so a Pi that only captures
//! and uploads does not build ONNX Runtime bindings, SQLite, image codecs or the model fetcher.
//! Checked on the resolved dependency graph (`cargo tree`, normal dependencies, every feature),
//! so a new dependency that drags them in fails here, not on a Pi.

use std::process::Command;

/// Packages that only recognition needs.
const RECOGNITION_ONLY: [&str; 9] = [
    "rollcall-recognizer",
    "rollcall-models",
    "ort",
    "ort-sys",
    "rusqlite",
    "libsqlite3-sys",
    "image",
    "ndarray",
    "zip",
];

/// The package names in `cargo tree -p PACKAGE -e normal` (with every feature of PACKAGE).
fn normal_dependencies(package: &str) -> Vec<String> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["tree", "--locked", "--offline", "-p", package])
        .args(["-e", "normal", "--all-features", "--prefix", "none"])
        .args(["--format", "{p}"])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        // `name v1.2.3 (path)` or `name v1.2.3 (*)`.
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_edge_library_does_not_build_the_recognizer() {
    let deps = normal_dependencies("rollcall-edge");
    assert!(
        deps.iter().any(|d| d == "rollcall-protocol"),
        "the edge builds on rollcall-protocol: {deps:?}"
    );
    let offending: Vec<&str> = RECOGNITION_ONLY
        .iter()
        .copied()
        .filter(|forbidden| deps.iter().any(|d| d == forbidden))
        .collect();
    assert!(
        offending.is_empty(),
        "rollcall-edge depends (normally) on {offending:?}: recognition code belongs in rollcall-recognizer, which the edge must not need"
    );
}

#[test]
fn the_protocol_crate_needs_no_codec_or_model() {
    let deps = normal_dependencies("rollcall-protocol");
    let heavy: Vec<&str> = RECOGNITION_ONLY
        .iter()
        .copied()
        .chain(["rollcall-edge", "ffmpeg-next", "openh264", "hdrhistogram"])
        .filter(|forbidden| deps.iter().any(|d| d == forbidden))
        .collect();
    assert!(
        heavy.is_empty(),
        "rollcall-protocol is the cheap bottom layer but depends on {heavy:?}"
    );
}
