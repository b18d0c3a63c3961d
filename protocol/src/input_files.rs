//! Opening input files (photos, videos, records, configs, clips) without surprises: only regular
//! files are read. A FIFO would block the reader forever, a device could stream without end, a
//! directory or a dangling link only gives a confusing error later; each is refused up front with
//! a reason that says what the path is.
//!
//! ```
//! use rollcall_protocol::input_files::read_regular_file;
//!
//! let error = read_regular_file(std::path::Path::new("/"), None).unwrap_err();
//! assert_eq!(error.to_string(), "is a directory, not a regular file");
//! ```

use std::fs::{File, FileType, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// What a non-regular file is, in words (`"a FIFO (named pipe)"`, `"a directory"`, ...).
pub fn file_kind(kind: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn not_regular(kind: &FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {}, not a regular file", file_kind(kind)),
    )
}

/// `ELOOP`: too many levels of symbolic links.
#[cfg(target_os = "linux")]
const ELOOP: i32 = 40;
#[cfg(all(unix, not(target_os = "linux")))]
const ELOOP: i32 = 62;

/// Rephrase what `stat` says about links: a dangling link or a loop is named as such.
fn explain_stat_error(path: &Path, error: io::Error) -> io::Error {
    #[cfg(unix)]
    if error.raw_os_error() == Some(ELOOP) {
        return io::Error::new(
            error.kind(),
            "is a symbolic link loop (too many levels of links)",
        );
    }
    if error.kind() == io::ErrorKind::NotFound {
        if let Ok(link) = std::fs::symlink_metadata(path) {
            if link.file_type().is_symlink() {
                let target = std::fs::read_link(path)
                    .map(|t| format!(" (its target {} does not exist)", t.display()))
                    .unwrap_or_default();
                return io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("is a broken symbolic link{target}"),
                );
            }
        }
    }
    error
}

/// The metadata of `path` (links followed), with a dangling link or a link loop named as such.
pub fn entry_metadata(path: &Path) -> io::Result<Metadata> {
    std::fs::metadata(path).map_err(|e| explain_stat_error(path, e))
}

/// The metadata of `path` (links followed) if it is a regular file; otherwise an error whose
/// message says what it is: a directory, a FIFO, a device, a socket, a broken link, a link loop.
/// Reads nothing, so it never blocks.
pub fn regular_file_metadata(path: &Path) -> io::Result<Metadata> {
    let metadata = entry_metadata(path)?;
    if metadata.file_type().is_file() {
        Ok(metadata)
    } else {
        Err(not_regular(&metadata.file_type()))
    }
}

/// Open `path` for reading if it is a regular file ([`regular_file_metadata`] first, then the
/// opened file is checked again, so a file swapped in between is refused too). The open itself is
/// non-blocking, so even a FIFO put there at the last moment cannot hang the caller.
pub fn open_regular_file(path: &Path) -> io::Result<File> {
    regular_file_metadata(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Regular files ignore O_NONBLOCK; it only matters if a FIFO replaced the file.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| explain_stat_error(path, e))?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(&kind));
    }
    Ok(file)
}

/// Read the whole of `path` if it is a regular file of at most `max_bytes` (when given).
pub fn read_regular_file(path: &Path, max_bytes: Option<u64>) -> io::Result<Vec<u8>> {
    let file = open_regular_file(path)?;
    let len = file.metadata()?.len();
    if let Some(max) = max_bytes {
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("is {len} bytes, more than the {max} bytes accepted"),
            ));
        }
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // Bounded again while reading: the file may grow after the size check.
    let limit = max_bytes.map_or(u64::MAX, |m| m.saturating_add(1));
    file.take(limit).read_to_end(&mut bytes)?;
    if max_bytes.is_some_and(|m| bytes.len() as u64 > m) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "grew past the {} bytes accepted while being read",
                max_bytes.unwrap_or_default()
            ),
        ));
    }
    Ok(bytes)
}

/// [`read_regular_file`] as UTF-8 text.
pub fn read_regular_text_file(path: &Path, max_bytes: Option<u64>) -> io::Result<String> {
    let bytes = read_regular_file(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(read_regular_file(&path, None).unwrap(), b"hello");
        assert_eq!(read_regular_text_file(&path, Some(5)).unwrap(), "hello");
        let error = read_regular_file(&path, Some(4)).unwrap_err();
        assert!(error.to_string().contains("5 bytes"), "{error}");
        // A link to a regular file is fine.
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert_eq!(read_regular_file(&link, None).unwrap(), b"hello");
        }
    }

    #[test]
    fn directories_are_refused_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let error = open_regular_file(dir.path()).unwrap_err();
        assert_eq!(error.to_string(), "is a directory, not a regular file");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn fifos_devices_broken_links_and_loops_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let started = Instant::now();
        let error = read_regular_file(&fifo, None).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            error.to_string(),
            "is a FIFO (named pipe), not a regular file"
        );

        let error = read_regular_file(Path::new("/dev/zero"), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "is a character device, not a regular file"
        );

        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("gone.jpg"), &dangling).unwrap();
        let error = open_regular_file(&dangling).unwrap_err();
        assert!(
            error.to_string().starts_with("is a broken symbolic link"),
            "{error}"
        );
        assert!(error.to_string().contains("gone.jpg"), "{error}");

        let (a, b) = (dir.path().join("loop-a"), dir.path().join("loop-b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let error = regular_file_metadata(&a).unwrap_err();
        assert!(error.to_string().contains("symbolic link loop"), "{error}");

        let missing = open_regular_file(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
