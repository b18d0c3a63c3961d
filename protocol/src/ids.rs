//! Validation of every name that ends up in a file name, an object key or a queue name: device,
//! session and person ids ([`validate_id`]) and object keys ([`validate_key`]).
//!
//! Both rest on one rule for a single path segment ([`check_segment`]): bytes of
//! `[A-Za-z0-9._-]`, not `.` or `..`. So a valid id is one safe path component, and a valid key
//! is a safe relative path on every file system that needs no escaping anywhere (S3, URLs, SQS).

/// Longest accepted id.
pub const MAX_ID_LEN: usize = 64;
/// Longest accepted object key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest accepted segment (between two `/`) of an object key, in bytes.
pub const MAX_KEY_SEGMENT_LEN: usize = 255;

/// An id (device, session, key component) that is not safe to use in a path or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {id:?}: {reason} (allowed: 1..=64 of [A-Za-z0-9._-], not \".\" or \"..\")")]
pub struct InvalidId {
    /// What the id is (`"device id"`, `"session id"`...).
    pub kind: &'static str,
    /// The offending value.
    pub id: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// An object key that is not safe to use as a relative path (or as an S3 key of ours).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refusing object key {key:?}: {reason}")]
pub struct InvalidKey {
    /// The key.
    pub key: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks one path segment: 1..=`max_len` bytes of `[A-Za-z0-9._-]`, not `.` or `..`. The
/// reason names what is wrong; the callers add which value it was.
pub fn check_segment(segment: &str, max_len: usize) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("empty");
    }
    if segment.len() > max_len {
        return Err(if max_len == MAX_ID_LEN {
            "longer than 64 characters"
        } else {
            "path segment longer than 255 characters"
        });
    }
    if segment == "." || segment == ".." {
        return Err("a relative path component");
    }
    if segment.contains('\\') {
        return Err("contains a backslash");
    }
    if segment.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("contains a character outside [A-Za-z0-9._-]");
    }
    Ok(())
}

/// Checks that `id` is 1..=64 characters of `[A-Za-z0-9._-]` and not `.` or `..`, so that it
/// can be used as one path component or key segment without escaping or path tricks.
pub fn validate_id(kind: &'static str, id: &str) -> Result<(), InvalidId> {
    check_segment(id, MAX_ID_LEN).map_err(|reason| InvalidId {
        kind,
        id: id.to_string(),
        reason,
    })
}

/// Checks an object key: relative, `/`-separated segments accepted by [`check_segment`]
/// (1..=255 bytes each), at most [`MAX_KEY_LEN`] bytes. So absolute paths, `..`, backslashes,
/// spaces, control and non-ASCII characters are all refused.
pub fn validate_key(key: &str) -> Result<(), InvalidKey> {
    let invalid = |reason| InvalidKey {
        key: key.to_string(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid("longer than 1024 characters"));
    }
    if key.starts_with('/') {
        return Err(invalid("absolute"));
    }
    for segment in key.split('/') {
        check_segment(segment, MAX_KEY_SEGMENT_LEN).map_err(|reason| {
            invalid(match reason {
                "empty" => "empty path segment",
                "a relative path component" => "relative path segment",
                other => other,
            })
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["pi-1", "a", "Session_2024.01.02", &"x".repeat(64), "..."] {
            assert!(validate_id("device id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "/abs",
            "sp ace",
            "é",
            "a\0",
            &"x".repeat(65),
        ] {
            let err = validate_id("device id", bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid device id"), "{err}");
        }
    }

    #[test]
    fn keys() {
        for ok in [
            "clips/dev/s/00000001.h264",
            "a",
            "a.b/c-d_e",
            "x..y",
            &"k".repeat(255),
        ] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "/etc/passwd",
            "a/../b",
            "..",
            "../x",
            "a//b",
            "a/",
            "./a",
            "a b",
            "a\\b",
            "..\\x",
            "C:\\x",
            "a\nb",
            "a\0b",
            "a\tb",
            "ü",
            "a/.",
            "a%2Fb",
            &"x".repeat(256),
            &"x/".repeat(600),
        ] {
            let err = validate_key(bad).unwrap_err();
            assert!(err.to_string().contains("refusing object key"), "{err}");
            assert_eq!(err.key, bad);
        }
        assert_eq!(
            validate_key("a\\b").unwrap_err().reason,
            "contains a backslash"
        );
        assert_eq!(
            validate_key("a\u{7}b").unwrap_err().reason,
            "contains a control character"
        );
        assert_eq!(
            validate_key("a//b").unwrap_err().reason,
            "empty path segment"
        );
    }
}
