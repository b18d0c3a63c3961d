//! The local cache that fetched files live in.
//!
//! Layout under the root (`$ROLLCALL_HOME`, else `$XDG_DATA_HOME/rollcall`, i.e. usually
//! `~/.local/share/rollcall`):
//!
//! ```text
//! models/<name>    ONNX models
//! runtime/<name>   the ONNX Runtime shared library for this machine
//! demo/<name>      demo photos and videos
//! downloads/       registry archives while a fetch runs (removed afterwards)
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checksum::sha256_file;
use crate::error::ModelsError;
use crate::manifest::{FileKind, Manifest, ManifestFile};

/// Environment variable naming the cache root.
pub const ROLLCALL_HOME_ENV: &str = "ROLLCALL_HOME";

/// A model cache directory, together with the manifest describing what belongs in it.
#[derive(Clone)]
pub struct ModelCache {
    root: PathBuf,
    manifest: &'static Manifest,
}

impl fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelCache")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// What the cache holds for one manifest file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    /// File name from the manifest.
    pub name: String,
    /// Its kind.
    pub kind: FileKind,
    /// Where it is (or would be) in the cache.
    pub path: PathBuf,
    /// Whether a file exists there.
    pub present: bool,
    /// Its size in bytes, when present.
    pub size: Option<u64>,
    /// Whether its sha256 matches the manifest; `None` unless verification was asked for and the
    /// file is present.
    pub verified: Option<bool>,
}

impl ModelCache {
    /// The cache named by `$ROLLCALL_HOME`, else `rollcall` under the per-user data directory
    /// (`$XDG_DATA_HOME`, else `~/.local/share`), using the embedded manifest.
    ///
    /// Fails with [`ModelsError::NoCacheDir`] when neither can be determined.
    pub fn from_env() -> Result<ModelCache, ModelsError> {
        if let Some(home) = std::env::var_os(ROLLCALL_HOME_ENV).filter(|v| !v.is_empty()) {
            return Ok(ModelCache::at(home));
        }
        dirs::data_dir()
            .map(|d| ModelCache::at(d.join("rollcall")))
            .ok_or(ModelsError::NoCacheDir)
    }

    /// A cache at `root`, using the embedded manifest. Nothing is created until a fetch.
    pub fn at(root: impl Into<PathBuf>) -> ModelCache {
        ModelCache {
            root: root.into(),
            manifest: Manifest::embedded(),
        }
    }

    /// The same cache described by another manifest (tests, custom model sets).
    pub fn with_manifest(mut self, manifest: &'static Manifest) -> ModelCache {
        self.manifest = manifest;
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest this cache follows.
    pub fn manifest(&self) -> &'static Manifest {
        self.manifest
    }

    /// Where `file` lives in the cache: `root/models/<name>`, `root/runtime/<name>` or
    /// `root/demo/<name>`.
    pub fn path_for(&self, file: &ManifestFile) -> PathBuf {
        self.kind_dir(file.kind).join(&file.name)
    }

    /// The directory holding files of `kind`.
    pub fn kind_dir(&self, kind: FileKind) -> PathBuf {
        self.root.join(kind.cache_dir())
    }

    /// The directory registry archives are downloaded into during a fetch.
    pub fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// Path of a fetched model, e.g. `model_path("fr_feature.onnx")`.
    ///
    /// Fails with [`ModelsError::NotFetched`] (whose message says to run `rollcall models fetch`)
    /// when the file is not in the cache, or [`ModelsError::UnknownFile`] when the manifest does
    /// not list it.
    pub fn model_path(&self, name: &str) -> Result<PathBuf, ModelsError> {
        self.existing(name, FileKind::Model)
    }

    /// Path of a fetched demo file, e.g. `demo_path("obama.jpg")`.
    pub fn demo_path(&self, name: &str) -> Result<PathBuf, ModelsError> {
        self.existing(name, FileKind::Demo)
    }

    /// Path of a fetched file of any kind (names are unique per machine).
    pub fn file_path(&self, name: &str) -> Result<PathBuf, ModelsError> {
        match self.manifest.file_any_kind(name) {
            Some(file) => self.present(file),
            None => Err(self.unknown(name, None)),
        }
    }

    fn existing(&self, name: &str, kind: FileKind) -> Result<PathBuf, ModelsError> {
        match self.manifest.file(name, kind) {
            Some(file) => self.present(file),
            None => Err(self.unknown(name, Some(kind))),
        }
    }

    pub(crate) fn present(&self, file: &ManifestFile) -> Result<PathBuf, ModelsError> {
        let path = self.path_for(file);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ModelsError::NotFetched {
                name: file.name.clone(),
                path,
            })
        }
    }

    fn unknown(&self, name: &str, kind: Option<FileKind>) -> ModelsError {
        ModelsError::UnknownFile {
            name: name.to_owned(),
            kind: kind.map_or_else(|| "file".to_owned(), |k| format!("{k} file")),
            arch: std::env::consts::ARCH.to_owned(),
            known: self.manifest.host_names(kind),
        }
    }

    /// The state of every manifest file for this machine, in manifest order.
    ///
    /// With `verify`, each present file is hashed and compared with the manifest (a few hundred
    /// milliseconds for everything).
    pub fn status(&self, verify: bool) -> Vec<FileStatus> {
        self.manifest
            .files_for_host()
            .map(|file| self.file_status(file, verify))
            .collect()
    }

    /// The state of one file.
    pub fn file_status(&self, file: &ManifestFile, verify: bool) -> FileStatus {
        let path = self.path_for(file);
        let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
        let verified = match (&meta, verify) {
            (Some(_), true) => Some(sha256_file(&path).is_ok_and(|sha| sha == file.sha256)),
            _ => None,
        };
        FileStatus {
            name: file.name.clone(),
            kind: file.kind,
            present: meta.is_some(),
            size: meta.map(|m| m.len()),
            verified,
            path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_by_kind() {
        let cache = ModelCache::at("/cache");
        let m = Manifest::embedded();
        let pnet = m.file("pnet.onnx", FileKind::Model).unwrap();
        assert_eq!(cache.path_for(pnet), Path::new("/cache/models/pnet.onnx"));
        let demo = m.file("obama.jpg", FileKind::Demo).unwrap();
        assert_eq!(cache.path_for(demo), Path::new("/cache/demo/obama.jpg"));
        if let Some(rt) = m.files_for_host().find(|f| f.kind == FileKind::Runtime) {
            assert_eq!(
                cache.path_for(rt),
                Path::new("/cache/runtime").join(&rt.name)
            );
        }
    }

    #[test]
    fn missing_model_says_to_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::at(dir.path());
        let err = cache.model_path("fr_feature.onnx").unwrap_err();
        assert!(matches!(err, ModelsError::NotFetched { .. }), "{err:?}");
        assert!(err.to_string().contains("rollcall models fetch"), "{err}");

        let err = cache.model_path("nope.onnx").unwrap_err();
        assert!(matches!(err, ModelsError::UnknownFile { .. }), "{err:?}");
        assert!(err.to_string().contains("pnet.onnx"), "{err}");
    }

    #[test]
    fn present_file_is_found_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::at(dir.path());
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::fs::write(dir.path().join("models/pnet.onnx"), b"not the model").unwrap();
        assert_eq!(
            cache.model_path("pnet.onnx").unwrap(),
            dir.path().join("models/pnet.onnx")
        );
        let status = cache.status(true);
        let pnet = status.iter().find(|s| s.name == "pnet.onnx").unwrap();
        assert!(pnet.present);
        assert_eq!(pnet.size, Some(13));
        assert_eq!(pnet.verified, Some(false));
        let rnet = status.iter().find(|s| s.name == "rnet.onnx").unwrap();
        assert!(!rnet.present);
        assert_eq!(rnet.verified, None);
        assert!(cache.status(false).iter().all(|s| s.verified.is_none()));
    }
}
