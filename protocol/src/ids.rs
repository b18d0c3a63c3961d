//! Validation of every name that ends up in a file name, an object key or a queue name: device,
//! session and person ids ([`validate_id`]), object keys ([`validate_key`]) and the clip an
//! object key names ([`parse_clip_key`]).
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

/// Prefix segment of every clip key.
pub const CLIPS_SEGMENT: &str = "clips";

/// The clip an object key names: `clips/<device>/<session>/<seq, 8 or more digits>.h264`. The
/// key is authoritative: the function routes the result by it, whatever the object's metadata
/// says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipKey {
    /// The device segment (a valid id).
    pub device_id: String,
    /// The session segment (a valid id).
    pub session_id: String,
    /// The sequence number of the file name.
    pub seq: u64,
}

/// An object key that does not name a clip, with what is wrong and, when its device segment can
/// still be read, the device whose queue should hear about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refusing object key {key:?}: {reason}")]
pub struct RefusedKey {
    /// The key, as received (decoded from the notification).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
    /// `clips/<device>/...` with a valid device id: the device to answer with an error result.
    /// `None` when no device can be read: nobody can be told (the event goes to the dead-letter
    /// queue).
    pub device_id: Option<String>,
}

impl RefusedKey {
    /// A refusal of `key` for `reason`, answered to the device its key names when that can be
    /// read.
    pub fn new(key: &str, reason: impl Into<String>) -> RefusedKey {
        RefusedKey {
            key: key.to_string(),
            reason: reason.into(),
            device_id: readable_device(key),
        }
    }

    /// What the key names after `clips/`, without `.h264` (`<device>/<session>/<seq>` for a key
    /// of the right layout): the `clip_id` of the error result.
    pub fn clip_id(&self) -> String {
        let rest = self.key.strip_prefix("clips/").unwrap_or(&self.key);
        rest.strip_suffix(".h264").unwrap_or(rest).to_string()
    }

    /// The session segment, when the key has the clip layout (empty otherwise).
    pub fn session_id(&self) -> String {
        let parts: Vec<&str> = self.key.split('/').collect();
        match parts.as_slice() {
            [_, _, session, _] => session.to_string(),
            _ => String::new(),
        }
    }

    /// The sequence number of the file name, when it has one (0 otherwise).
    pub fn seq(&self) -> u64 {
        self.key
            .rsplit('/')
            .next()
            .and_then(|file| file.strip_suffix(".h264"))
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0)
    }
}

/// The device of `clips/<device>/...` when that segment is a valid id.
fn readable_device(key: &str) -> Option<String> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(CLIPS_SEGMENT), Some(device), Some(_))
            if validate_id("device id", device).is_ok() =>
        {
            Some(device.to_string())
        }
        _ => None,
    }
}

/// Reads the clip an object key names; see [`ClipKey`]. The key must pass [`validate_key`], have
/// exactly the four segments `clips/<device>/<session>/<file>`, valid device and session ids, and
/// a file name `<seq>.h264` with `seq` written as `{:08}` formats it (so one clip has one key).
pub fn parse_clip_key(key: &str) -> Result<ClipKey, RefusedKey> {
    const LAYOUT: &str = "not clips/<device>/<session>/<seq>.h264";
    let parts: Vec<&str> = key.split('/').collect();
    let [CLIPS_SEGMENT, device, session, file] = parts.as_slice() else {
        validate_key(key).map_err(|e| RefusedKey::new(key, e.reason))?;
        return Err(RefusedKey::new(key, LAYOUT));
    };
    // The ids first, so the reason names the part that is wrong.
    validate_id("device id", device).map_err(|e| RefusedKey::new(key, e.to_string()))?;
    validate_id("session id", session).map_err(|e| RefusedKey::new(key, e.to_string()))?;
    validate_key(key).map_err(|e| RefusedKey::new(key, e.reason))?;
    let seq = file
        .strip_suffix(".h264")
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok().map(|seq| (digits, seq)))
        .filter(|(digits, seq)| format!("{seq:08}") == *digits)
        .map(|(_, seq)| seq)
        .ok_or_else(|| {
            RefusedKey::new(
                key,
                format!("file name {file:?} is not <seq>.h264 with seq as 8 or more digits (00000042.h264)"),
            )
        })?;
    Ok(ClipKey {
        device_id: device.to_string(),
        session_id: session.to_string(),
        seq,
    })
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

    #[test]
    fn clip_keys() {
        assert_eq!(
            parse_clip_key("clips/pi-1/2026-11-26T21-00-00Z/00000042.h264"),
            Ok(ClipKey {
                device_id: "pi-1".into(),
                session_id: "2026-11-26T21-00-00Z".into(),
                seq: 42
            })
        );
        assert_eq!(
            parse_clip_key("clips/d/s/123456789.h264").unwrap().seq,
            123_456_789
        );
        // (key, reason contains, device readable)
        for (key, words, device) in [
            ("clips/deva/s 1/00000001.h264", "outside", Some("deva")),
            (
                "clips/deva/2026-11-26T21:00:00Z/00000001.h264",
                "outside",
                Some("deva"),
            ),
            (
                "clips/deva/sessi\u{f6}n/00000001.h264",
                "outside",
                Some("deva"),
            ),
            ("clips/deva/x.h264", "not clips/<device>", Some("deva")),
            (
                "clips/deva/s/t/00000001.h264",
                "not clips/<device>",
                Some("deva"),
            ),
            ("clips/deva/s/1.h264", "8 or more digits", Some("deva")),
            (
                "clips/deva/s/000000001.h264",
                "8 or more digits",
                Some("deva"),
            ),
            (
                "clips/deva/s/0000000a.h264",
                "8 or more digits",
                Some("deva"),
            ),
            (
                "clips/deva/s/00000001.mp4",
                "8 or more digits",
                Some("deva"),
            ),
            ("clips/deva/../00000001.h264", "relative", Some("deva")),
            ("clips/dev a/s/00000001.h264", "outside", None),
            ("clips/d\u{e9}v/s/00000001.h264", "outside", None),
            ("clips/deva", "not clips/<device>", None),
            ("other/deva/s/00000001.h264", "not clips/<device>", None),
            ("../x", "relative", None),
            ("", "empty", None),
        ] {
            let refused = parse_clip_key(key).unwrap_err();
            assert!(refused.reason.contains(words), "{key}: {refused}");
            assert_eq!(refused.device_id.as_deref(), device, "{key}");
            assert_eq!(refused.key, key);
            assert!(refused.to_string().contains("refusing object key"));
        }
        let refused = parse_clip_key("clips/deva/s 1/00000007.h264").unwrap_err();
        assert_eq!(
            (
                refused.clip_id().as_str(),
                refused.session_id().as_str(),
                refused.seq()
            ),
            ("deva/s 1/00000007", "s 1", 7)
        );
        let refused = parse_clip_key("clips/deva/x.h264").unwrap_err();
        assert_eq!(
            (
                refused.clip_id().as_str(),
                refused.session_id().as_str(),
                refused.seq()
            ),
            ("deva/x", "", 0)
        );
    }
}
