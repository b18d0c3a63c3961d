//! Secrets in URLs (camera passwords, broker credentials, webhook tokens) never reach logs,
//! reports or the console: every place that shows such a URL shows [`redact_url`] of it.
//!
//! URLs are split the way ffmpeg splits them (`scheme://[userinfo@]host[:port][/path][?query]`,
//! the authority ending at the first `/`, `?` or `#`), so what is hidden is exactly what a
//! client would send as credentials.

#![warn(missing_docs)]

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Query parameter names (lower case, substring match) whose values are secrets:
/// `?password=`, `?pwd=`, `?token=`, `?api_key=`, `?auth=`, `?sig=`...
const SECRET_QUERY_KEYS: [&str; 8] = [
    "pass", "pwd", "token", "secret", "key", "auth", "sig", "cred",
];

/// The parts of an absolute URL: `scheme://[userinfo@]host_port[rest]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// Lower-case or not, as written (`rtsp`, `https`, `mqtt`...).
    pub scheme: &'a str,
    /// `user`, `user:password` or `None`, still percent-encoded.
    pub userinfo: Option<&'a str>,
    /// `host`, `host:port`, `[::1]:port`.
    pub host_port: &'a str,
    /// Path, query and fragment (`/live?x=1`), possibly empty.
    pub rest: &'a str,
}

impl<'a> UrlParts<'a> {
    /// Splits `scheme://authority/rest`; `None` when `url` has no `://` or no host.
    pub fn split(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, after) = url.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return None;
        }
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(authority_end);
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        if host_port.is_empty() {
            return None;
        }
        Some(UrlParts {
            scheme,
            userinfo,
            host_port,
            rest,
        })
    }

    /// The user name and password of the userinfo, percent-decoded.
    pub fn credentials(&self) -> Option<(String, Option<String>)> {
        let info = self.userinfo?;
        Some(match info.split_once(':') {
            Some((user, password)) => (percent_decode(user), Some(percent_decode(password))),
            None => (percent_decode(info), None),
        })
    }

    /// The host without the port (brackets of an IPv6 literal removed).
    pub fn host(&self) -> &'a str {
        let hp = self.host_port;
        if let Some(inner) = hp.strip_prefix('[') {
            return inner.split(']').next().unwrap_or(inner);
        }
        hp.rsplit_once(':').map_or(hp, |(host, _)| host)
    }

    /// The port, when one is written (`None` also when it is not a number).
    pub fn port(&self) -> Option<u16> {
        let hp = self.host_port;
        let after_host = match hp.strip_prefix('[') {
            Some(inner) => inner.split_once(']').map(|(_, tail)| tail)?,
            None => hp,
        };
        after_host.rsplit_once(':')?.1.parse().ok()
    }

    /// The path (from `/`, without query and fragment), possibly empty.
    pub fn path(&self) -> &'a str {
        let end = self.rest.find(['?', '#']).unwrap_or(self.rest.len());
        &self.rest[..end]
    }
}

/// `url` as it may be shown: the password of the userinfo (or a lone userinfo, which may be a
/// token) and the values of secret-looking query parameters replaced with `***`:
/// `rtsp://admin:hunter2@cam/live?token=abc` -> `rtsp://admin:***@cam/live?token=***`.
/// Text that is not an absolute URL is returned with any `user:password@` masked as well.
pub fn redact_url(url: &str) -> String {
    let Some(parts) = UrlParts::split(url) else {
        // Not a URL we can split: hide anything that looks like userinfo all the same.
        return match url.rfind('@') {
            Some(at) => format!("{MASK}@{}", &url[at + 1..]),
            None => url.to_string(),
        };
    };
    if parts.path().contains('@') {
        // A password holding an unescaped '/': clients would misread the URL; hide everything
        // up to the last '@' before the query all the same.
        let after = &url[parts.scheme.len() + 3..];
        let end = after.find(['?', '#']).unwrap_or(after.len());
        if let Some(at) = after[..end].rfind('@') {
            let user = after[..at].split(':').next().unwrap_or_default();
            let user = if after[..at].contains(':') { user } else { "" };
            let shown = if user.is_empty() {
                MASK.to_string()
            } else {
                format!("{user}:{MASK}")
            };
            return format!(
                "{}://{shown}@{}",
                parts.scheme,
                redact_query(&after[at + 1..])
            );
        }
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(parts.scheme);
    out.push_str("://");
    if let Some(info) = parts.userinfo {
        match info.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            None => out.push_str(MASK),
        }
        out.push('@');
    }
    out.push_str(parts.host_port);
    out.push_str(&redact_query(parts.rest));
    out
}

/// `text` (a log line, an error message) with every URL in it redacted ([`redact_url`]): the
/// whitespace-separated words holding `://`, quotes and brackets around them kept.
pub fn redact_text(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.contains("://") {
            let open = word.len() - word.trim_start_matches(['\'', '"', '(', '[', '<']).len();
            let close = word.len()
                - word
                    .trim_end_matches(['\'', '"', ')', ']', '>', ',', ';', '.', ':'])
                    .len();
            if open + close < word.len() {
                out.push_str(&word[..open]);
                out.push_str(&redact_url(&word[open..word.len() - close]));
                out.push_str(&word[word.len() - close..]);
            } else {
                out.push_str(word);
            }
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Masks the values of secret-looking parameters in `path?query#fragment`.
fn redact_query(rest: &str) -> String {
    let Some((path, query)) = rest.split_once('?') else {
        return rest.to_string();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => format!("{key}={MASK}"),
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("{path}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn is_secret_key(key: &str) -> bool {
    let key = percent_decode(key).to_ascii_lowercase();
    SECRET_QUERY_KEYS.iter().any(|k| key.contains(k))
}

/// `url` with `user` and `password` as its userinfo, percent-encoded; `url` unchanged when it
/// already has a userinfo (credentials written in the URL win) or is not an absolute URL.
pub fn with_credentials(url: &str, user: &str, password: Option<&str>) -> String {
    let Some(parts) = UrlParts::split(url) else {
        return url.to_string();
    };
    if parts.userinfo.is_some() || user.is_empty() {
        return url.to_string();
    }
    let mut info = percent_encode_userinfo(user);
    if let Some(password) = password {
        info.push(':');
        info.push_str(&percent_encode_userinfo(password));
    }
    format!(
        "{}://{info}@{}{}",
        parts.scheme, parts.host_port, parts.rest
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters (safe inside a userinfo).
fn percent_encode_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (invalid escapes are kept as written; invalid UTF-8 is replaced).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_are_masked() {
        assert_eq!(
            redact_url("rtsp://admin:hunter2@10.0.0.5:554/Streaming/101"),
            "rtsp://admin:***@10.0.0.5:554/Streaming/101"
        );
        // A password holding an escaped '@' and '/'.
        assert_eq!(
            redact_url("rtsp://admin:p%40ss%2Fw@cam/live"),
            "rtsp://admin:***@cam/live"
        );
        // An unescaped '@' inside the password: everything before the last '@' is userinfo.
        assert_eq!(
            redact_url("rtsp://admin:p@ss@cam/live"),
            "rtsp://admin:***@cam/live"
        );
        assert_eq!(
            redact_url("https://tok3n@hooks.example/x"),
            "https://***@hooks.example/x"
        );
        // An unescaped '/' in the password.
        assert_eq!(
            redact_url("rtsp://admin:pa/ss@cam/live?pwd=1"),
            "rtsp://admin:***@cam/live?pwd=***"
        );
        assert_eq!(redact_url("rtsp://tok/en@cam/live"), "rtsp://***@cam/live");
        assert_eq!(
            redact_url("http://cam/video.cgi?user=admin&pwd=secret&res=hd#top"),
            "http://cam/video.cgi?user=admin&pwd=***&res=hd#top"
        );
        assert_eq!(
            redact_url("https://h/x?api_key=1&Token=2&sig=3"),
            "https://h/x?api_key=***&Token=***&sig=***"
        );
        assert_eq!(redact_url("rtsp://cam:8554/live"), "rtsp://cam:8554/live");
        assert_eq!(
            redact_url("mqtt://u:p@[::1]:1883/a"),
            "mqtt://u:***@[::1]:1883/a"
        );
        // Not a URL: userinfo-like text is still hidden.
        assert_eq!(redact_url("u:p@cam"), "***@cam");
        assert_eq!(redact_url("plain"), "plain");
    }

    #[test]
    fn urls_inside_text_are_masked() {
        assert_eq!(
            redact_text("[hls @ 0x1] Opening 'http://u:pw@cam/seg1.ts' for reading"),
            "[hls @ 0x1] Opening 'http://u:***@cam/seg1.ts' for reading"
        );
        assert_eq!(
            redact_text("  two: rtsp://a:b@h/x, (https://h/y?token=t).\n"),
            "  two: rtsp://a:***@h/x, (https://h/y?token=***).\n"
        );
        assert_eq!(redact_text("no urls here"), "no urls here");
        assert_eq!(redact_text("'://'"), "'://'");
    }

    #[test]
    fn splits_like_ffmpeg() {
        let p = UrlParts::split("rtsp://u:p%3A1@cam.local:8554/live/1?x=1").unwrap();
        assert_eq!(p.scheme, "rtsp");
        assert_eq!(p.userinfo, Some("u:p%3A1"));
        assert_eq!(p.host_port, "cam.local:8554");
        assert_eq!(p.host(), "cam.local");
        assert_eq!(p.port(), Some(8554));
        assert_eq!(p.path(), "/live/1");
        assert_eq!(
            p.credentials(),
            Some(("u".to_string(), Some("p:1".to_string())))
        );
        let p = UrlParts::split("mqtt://[::1]:1884").unwrap();
        assert_eq!((p.host(), p.port(), p.path()), ("::1", Some(1884), ""));
        let p = UrlParts::split("http://host?x").unwrap();
        assert_eq!((p.host(), p.port(), p.rest), ("host", None, "?x"));
        assert!(UrlParts::split("rtsp://").is_none());
        assert!(UrlParts::split("rtsp://u:p@/x").is_none());
        assert!(UrlParts::split("no-scheme").is_none());
        assert!(UrlParts::split("bad scheme://h").is_none());
    }

    #[test]
    fn credentials_from_elsewhere_are_encoded_into_the_url() {
        assert_eq!(
            with_credentials("rtsp://cam/live", "admin", Some("p@ss:w/rd")),
            "rtsp://admin:p%40ss%3Aw%2Frd@cam/live"
        );
        assert_eq!(
            with_credentials("rtsp://a:b@cam/live", "admin", Some("x")),
            "rtsp://a:b@cam/live",
            "credentials in the URL win"
        );
        assert_eq!(with_credentials("rtsp://cam", "u", None), "rtsp://u@cam");
        let url = with_credentials("rtsp://cam/live", "admin", Some("p@ss"));
        assert_eq!(
            UrlParts::split(&url).unwrap().credentials(),
            Some(("admin".to_string(), Some("p@ss".to_string())))
        );
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("a%zz%41"), "a%zzA");
    }
}
