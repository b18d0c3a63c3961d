//! Shared helpers for tests that need the real data set, the fetched models or an AWS endpoint
//! (moto). The console's and the Lambda's tests include this file too (`#[path]`), so every
//! crate skips and fails the same way.
//!
//! Data: `$ROLLCALL_DATA`, default `../shared/data` from the workspace root. Models:
//! `$ROLLCALL_HOME` (see `rollcall models fetch`). Without them the tests print why they are
//! skipped and pass, unless `ROLLCALL_REQUIRE_DATA=1` (CI), where a missing piece fails.
//! AWS: `AWS_ENDPOINT_URL` (loopback only); without it AWS tests are skipped, unless
//! `ROLLCALL_REQUIRE_AWS=1` (`scripts/test` sets it after starting moto).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rollcall_models::ModelCache;
use rollcall_recognizer::vision::{FacePipeline, PipelineOptions};

/// The real videos, relative to the data folder.
pub const HAMILTON: &str = "videos/short_hamilton_clip/short_hamilton_clip.mp4";
pub const OBAMA: &str = "videos/armbiantest_obama/obama.mp4";

/// The people of the real videos with one reference photo each (relative to the data folder).
/// Obama and Biden are in, so the Hamilton video must name neither, and the Obama video never
/// Biden.
pub const ENROLLED: [(&str, &str); 4] = [
    (
        "lin_manuel_miranda",
        "examples/lin_manuel_miranda/lin-manuel-miranda.png",
    ),
    (
        "alex_lacamoire",
        "examples/alex_lacamoire/alex-lacamoire.png",
    ),
    ("barack_obama", "examples/barack_obama/obama.jpg"),
    ("joe_biden", "examples/joe_biden/biden.jpg"),
];

/// Whether the environment variable `name` is `1`.
pub fn env_is(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn required() -> bool {
    env_is("ROLLCALL_REQUIRE_DATA")
}

/// Print why an AWS test is skipped and return `None`; under `ROLLCALL_REQUIRE_AWS=1`, fail.
pub fn skip_aws<T>(why: &str) -> Option<T> {
    assert!(
        !env_is("ROLLCALL_REQUIRE_AWS"),
        "{why} (ROLLCALL_REQUIRE_AWS=1)"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// The moto (or AWS) endpoint the AWS tests talk to, loopback only; `None` (skip) without it.
pub fn aws_endpoint() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => {
            assert!(
                url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
                "AWS tests talk to loopback only, not {url}"
            );
            Some(url)
        }
        _ => skip_aws("AWS_ENDPOINT_URL not set (run scripts/test, which starts moto)"),
    }
}

/// A resource name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Print why a test is skipped and return `None`; under `ROLLCALL_REQUIRE_DATA=1`, fail instead.
pub fn skip_or_fail<T>(what: &str) -> Option<T> {
    if required() {
        panic!("{what} (ROLLCALL_REQUIRE_DATA=1)");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// The shared data folder, if present.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ROLLCALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("..")
                .join("shared")
                .join("data")
        });
    if dir.join("faces").is_dir() {
        Some(dir)
    } else {
        skip_or_fail(&format!(
            "data folder {} not found (set ROLLCALL_DATA)",
            dir.display()
        ))
    }
}

/// The face pipeline on the fetched models, loaded once per test binary.
pub fn pipeline() -> Option<Arc<FacePipeline>> {
    static PIPELINE: OnceLock<Result<Arc<FacePipeline>, String>> = OnceLock::new();
    let loaded = PIPELINE.get_or_init(|| {
        let cache = ModelCache::from_env().map_err(|e| e.to_string())?;
        let mut options = PipelineOptions::default();
        options.runtime.sessions_per_model = 2;
        FacePipeline::load(&cache, options)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    });
    match loaded {
        Ok(p) => Some(p.clone()),
        Err(e) => skip_or_fail(&format!(
            "models not available ({e}); run `rollcall models fetch`"
        )),
    }
}
