//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading the manifest, looking up the cache or fetching.
///
/// Messages are written for the person at the terminal: they name the file, the package or the
/// command involved and, where there is one, the next step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelsError {
    /// The manifest text is not valid TOML or does not have the expected fields.
    #[error("the model manifest cannot be parsed: {0}")]
    ManifestSyntax(#[from] toml::de::Error),

    /// The manifest parses but is inconsistent (unknown package, bad checksum, unsafe path, ...).
    #[error("the model manifest is inconsistent: {0}")]
    ManifestInvalid(String),

    /// Neither `$ROLLCALL_HOME` nor a per-user data directory is available.
    #[error(
        "no model cache directory: set ROLLCALL_HOME (or HOME / XDG_DATA_HOME so that \
         $XDG_DATA_HOME/rollcall can be used)"
    )]
    NoCacheDir,

    /// A file of the manifest is not in the cache yet.
    #[error(
        "{name} is not in the model cache (expected at {}): run `rollcall models fetch` \
         (add `--all` for demo files)",
        path.display()
    )]
    NotFetched {
        /// File name from the manifest.
        name: String,
        /// Where it would be.
        path: PathBuf,
    },

    /// The name is not in the manifest (for this kind and this machine's architecture).
    #[error("{name:?} is not a {kind} listed in the model manifest for {arch}; known: {known}")]
    UnknownFile {
        /// The name asked for.
        name: String,
        /// What was asked for: `model file`, `runtime file`, `demo file` or `file`.
        kind: String,
        /// The host architecture.
        arch: String,
        /// Comma-separated names that do exist.
        known: String,
    },

    /// The operating system or CPU has no ONNX Runtime library in the manifest.
    #[error(
        "no ONNX Runtime library is listed for {os}/{arch} (supported: {supported}); \
         set ORT_DYLIB_PATH to a libonnxruntime of API version 1.31 or newer"
    )]
    UnsupportedPlatform {
        /// `std::env::consts::OS`.
        os: String,
        /// `std::env::consts::ARCH`.
        arch: String,
        /// What the manifest covers.
        supported: String,
    },

    /// The registry client (pip or npm) is not installed.
    #[error(
        "`{command}` is not available ({detail}); it is needed to download {package} from \
         {registry}: install it (Debian/Ubuntu: `apt-get install {apt_package}`) or point \
         {env_var} at it"
    )]
    ToolMissing {
        /// The command line that was tried.
        command: String,
        /// Why it is considered missing.
        detail: String,
        /// The Debian package that provides it.
        apt_package: &'static str,
        /// The environment variable that overrides the command.
        env_var: &'static str,
        /// The manifest package being downloaded.
        package: String,
        /// `PyPI` or `npm`.
        registry: &'static str,
    },

    /// The registry client ran but failed.
    #[error(
        "downloading {package} with `{command}` failed ({status}); the registry may be \
         unreachable or the package withdrawn. Last output:\n{output_tail}"
    )]
    ClientFailed {
        /// The manifest package being downloaded.
        package: String,
        /// The full command line.
        command: String,
        /// Exit status.
        status: String,
        /// The end of the client's stderr (or stdout when stderr is empty).
        output_tail: String,
    },

    /// The client succeeded but the expected archive file is not where it should be.
    #[error(
        "the download of {package} did not produce {archive} in {}; found: {found}",
        dir.display()
    )]
    ArchiveNotFound {
        /// Manifest package id.
        package: String,
        /// Expected archive file name.
        archive: String,
        /// Download directory.
        dir: PathBuf,
        /// What was there instead.
        found: String,
    },

    /// The downloaded archive's checksum differs from the manifest.
    #[error(
        "checksum mismatch for package {package} archive {archive}: expected sha256 {expected}, \
         got {actual}"
    )]
    ArchiveChecksum {
        /// Manifest package id.
        package: String,
        /// Archive file name.
        archive: String,
        /// sha256 from the manifest.
        expected: String,
        /// sha256 of the downloaded archive.
        actual: String,
    },

    /// An extracted file's checksum differs from the manifest.
    #[error("checksum mismatch for {file}: expected sha256 {expected}, got {actual}")]
    FileChecksum {
        /// File name from the manifest.
        file: String,
        /// sha256 from the manifest.
        expected: String,
        /// sha256 of the extracted bytes.
        actual: String,
    },

    /// A listed file is not (as a regular file) in the archive.
    #[error("{file}: {path} is not in the archive {archive} (package {package})")]
    FileMissingInArchive {
        /// File name from the manifest.
        file: String,
        /// Path inside the archive.
        path: String,
        /// Archive file name.
        archive: String,
        /// Manifest package id.
        package: String,
    },

    /// The archive is not a readable zip or tar.gz.
    #[error("cannot read archive {}: {message}", path.display())]
    BadArchive {
        /// The archive.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },

    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ModelsError {
    /// Wrap an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ModelsError {
        ModelsError::Io {
            context: context.into(),
            source,
        }
    }
}
