//! sha256 of files and streams.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::ModelsError;

/// The sha256 of a file, as 64 lowercase hex characters.
///
/// ```no_run
/// let hex = rollcall_models::sha256_file(std::path::Path::new("pnet.onnx"))?;
/// assert_eq!(hex.len(), 64);
/// # Ok::<(), rollcall_models::ModelsError>(())
/// ```
pub fn sha256_file(path: &Path) -> Result<String, ModelsError> {
    let file = File::open(path)
        .map_err(|e| ModelsError::io(format!("cannot open {}", path.display()), e))?;
    sha256_reader(file).map_err(|e| ModelsError::io(format!("cannot read {}", path.display()), e))
}

/// The sha256 of everything `reader` yields, as 64 lowercase hex characters.
pub fn sha256_reader(mut reader: impl Read) -> io::Result<String> {
    let mut writer = HashingWriter::new(io::sink());
    io::copy(&mut reader, &mut writer)?;
    Ok(writer.finish().1)
}

/// A writer that hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The inner writer and the hex sha256 of everything written.
    pub(crate) fn finish(self) -> (W, String) {
        (self.inner, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.txt");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            sha256_file(&empty).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_the_path() {
        let err = sha256_file(Path::new("/nonexistent/rollcall/file")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/rollcall/file"),
            "{err}"
        );
    }

    #[test]
    fn hashing_writer_passes_bytes_through() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (inner, hex) = w.finish();
        assert_eq!(inner, b"abc");
        assert!(hex.starts_with("ba7816bf"));
    }
}
