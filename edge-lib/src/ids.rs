//! Validation of the ids that end up in file names and object keys.

#![warn(missing_docs)]

/// Longest accepted id.
pub const MAX_ID_LEN: usize = 64;

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

/// Checks that `id` is 1..=64 characters of `[A-Za-z0-9._-]` and not `.` or `..`, so that it
/// can be used as one path component or key segment without escaping or path tricks.
pub fn validate_id(kind: &'static str, id: &str) -> Result<(), InvalidId> {
    let fail = |reason| {
        Err(InvalidId {
            kind,
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return fail("empty");
    }
    if id.len() > MAX_ID_LEN {
        return fail("longer than 64 characters");
    }
    if id == "." || id == ".." {
        return fail("a relative path component");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return fail("contains a character outside [A-Za-z0-9._-]");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
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
}
