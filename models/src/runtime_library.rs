//! Finding the ONNX Runtime shared library that `ort` (with `load-dynamic`) should load.
//!
//! The library comes from the PyPI `onnxruntime` wheel (see the manifest), so nothing is
//! downloaded at build time. `ORT_DYLIB_PATH` (the variable `ort` itself understands) overrides it.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::cache::ModelCache;
use crate::error::ModelsError;
use crate::manifest::{FileKind, ManifestFile};

/// Environment variable that points at an ONNX Runtime library to use instead of the cached one.
pub const ORT_DYLIB_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// Where the chosen ONNX Runtime library comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrtLibrarySource {
    /// `$ORT_DYLIB_PATH`.
    Environment,
    /// The model cache (`rollcall models fetch`).
    Cache,
}

impl fmt::Display for OrtLibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrtLibrarySource::Environment => ORT_DYLIB_PATH_ENV,
            OrtLibrarySource::Cache => "model cache",
        })
    }
}

/// The ONNX Runtime library that would be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrtLibrary {
    /// The shared library.
    pub path: PathBuf,
    /// Why this one.
    pub source: OrtLibrarySource,
}

impl ModelCache {
    /// The ONNX Runtime shared library to load: `$ORT_DYLIB_PATH` if set and existing, else the
    /// cached library for this machine's architecture.
    ///
    /// Fails with [`ModelsError::NotFetched`] when the cached library is missing and
    /// [`ModelsError::UnsupportedPlatform`] when the manifest has no library for this OS/CPU.
    pub fn onnxruntime_library(&self) -> Result<PathBuf, ModelsError> {
        self.locate_onnxruntime().map(|lib| lib.path)
    }

    /// Like [`ModelCache::onnxruntime_library`], also saying where the library comes from.
    pub fn locate_onnxruntime(&self) -> Result<OrtLibrary, ModelsError> {
        self.locate_onnxruntime_with(
            std::env::var_os(ORT_DYLIB_PATH_ENV),
            std::env::consts::OS,
            std::env::consts::ARCH,
        )
    }

    /// The manifest entry of the ONNX Runtime library for this machine.
    pub fn onnxruntime_file(&self) -> Result<&'static ManifestFile, ModelsError> {
        self.runtime_file_for(std::env::consts::OS, std::env::consts::ARCH)
    }

    fn runtime_file_for(&self, os: &str, arch: &str) -> Result<&'static ManifestFile, ModelsError> {
        let manifest = self.manifest();
        let found = manifest
            .files
            .iter()
            .find(|f| f.kind == FileKind::Runtime && f.is_for_arch(arch));
        match found {
            // The manifest's libraries are Linux shared objects (manylinux wheels).
            Some(file) if os == "linux" => Ok(file),
            _ => {
                let mut supported: Vec<String> = manifest
                    .files
                    .iter()
                    .filter(|f| f.kind == FileKind::Runtime)
                    .map(|f| format!("linux/{}", f.arch.as_deref().unwrap_or("any")))
                    .collect();
                supported.dedup();
                Err(ModelsError::UnsupportedPlatform {
                    os: os.to_owned(),
                    arch: arch.to_owned(),
                    supported: if supported.is_empty() {
                        "none".to_owned()
                    } else {
                        supported.join(", ")
                    },
                })
            }
        }
    }

    fn locate_onnxruntime_with(
        &self,
        env: Option<OsString>,
        os: &str,
        arch: &str,
    ) -> Result<OrtLibrary, ModelsError> {
        if let Some(path) = env.filter(|v| !v.is_empty()).map(PathBuf::from) {
            if path.is_file() {
                return Ok(OrtLibrary {
                    path,
                    source: OrtLibrarySource::Environment,
                });
            }
            tracing::warn!(
                path = %path.display(),
                "{ORT_DYLIB_PATH_ENV} does not name an existing file; using the model cache"
            );
        }
        let file = self.runtime_file_for(os, arch)?;
        Ok(OrtLibrary {
            path: self.present(file)?,
            source: OrtLibrarySource::Cache,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_wins_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so");
        std::fs::write(&lib, b"").unwrap();
        let cache = ModelCache::at(dir.path().join("cache"));
        let found = cache
            .locate_onnxruntime_with(Some(lib.clone().into()), "linux", "x86_64")
            .unwrap();
        assert_eq!(found.path, lib);
        assert_eq!(found.source, OrtLibrarySource::Environment);
        // Even on a platform the manifest does not cover.
        assert!(cache
            .locate_onnxruntime_with(Some(lib.into()), "macos", "aarch64")
            .is_ok());
    }

    #[test]
    fn falls_back_to_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::at(dir.path());
        let missing = Some(OsString::from("/nonexistent/libonnxruntime.so"));
        let err = cache
            .locate_onnxruntime_with(missing.clone(), "linux", "aarch64")
            .unwrap_err();
        assert!(matches!(err, ModelsError::NotFetched { .. }), "{err:?}");

        let rt = dir.path().join("runtime");
        std::fs::create_dir_all(&rt).unwrap();
        let name = &cache.runtime_file_for("linux", "aarch64").unwrap().name;
        std::fs::write(rt.join(name), b"").unwrap();
        let found = cache
            .locate_onnxruntime_with(missing, "linux", "aarch64")
            .unwrap();
        assert_eq!(found.path, rt.join(name));
        assert_eq!(found.source, OrtLibrarySource::Cache);
    }

    #[test]
    fn unsupported_platforms_are_named() {
        let cache = ModelCache::at("/nonexistent");
        for (os, arch) in [
            ("linux", "riscv64"),
            ("macos", "aarch64"),
            ("windows", "x86_64"),
        ] {
            let err = cache.locate_onnxruntime_with(None, os, arch).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, ModelsError::UnsupportedPlatform { .. }),
                "{err:?}"
            );
            assert!(text.contains(&format!("{os}/{arch}")), "{text}");
            assert!(
                text.contains("linux/x86_64") && text.contains("linux/aarch64"),
                "{text}"
            );
            assert!(text.contains(ORT_DYLIB_PATH_ENV), "{text}");
        }
    }
}
