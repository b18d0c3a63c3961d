//! Shared helpers for tests that need the real data set or the fetched models.
//!
//! Data: `$ROLLCALL_DATA`, default `../shared/data` from the workspace root. Models:
//! `$ROLLCALL_HOME` (see `rollcall models fetch`). Without them the tests print why they are
//! skipped and pass, unless `ROLLCALL_REQUIRE_DATA=1` (CI), where a missing piece fails.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rollcall_models::ModelCache;
use rollcall_recognizer::vision::{FacePipeline, PipelineOptions};

fn required() -> bool {
    std::env::var("ROLLCALL_REQUIRE_DATA").is_ok_and(|v| v == "1")
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
