//! Durations and sizes on the command line and in the config file (`90s`, `5m`, `end`, `200M`),
//! and short forms for people to read (`4m05s`, `21:00:00.123`).

use std::time::Duration;

/// A session's length unless told otherwise: the scripted run of the original design.
pub const DEFAULT_SESSION: Duration = Duration::from_secs(300);

/// How long a session captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionDuration {
    /// Until the source ends (or a stop).
    EndOfSource,
    /// At most this long.
    Limit(Duration),
}

impl SessionDuration {
    /// The limit, `None` until the end of the source.
    pub fn limit(self) -> Option<Duration> {
        match self {
            SessionDuration::EndOfSource => None,
            SessionDuration::Limit(d) => Some(d),
        }
    }
}

pub fn parse_session_duration(text: &str) -> Result<SessionDuration, String> {
    match text.trim() {
        "end" | "none" | "unlimited" => Ok(SessionDuration::EndOfSource),
        other => parse_duration(other).map(SessionDuration::Limit),
    }
}

pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    if matches!(text.trim(), "0" | "0s" | "never") {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// `"1.5GiB"` -> `(1.5, "GiB")`: the leading number and the (trimmed) unit after it.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// `300`, `300s`, `90s`, `5m`, `1h`, `7d`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text)
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 90s, 5m, 1h, 250ms)"))?;
    let seconds = match unit {
        "" | "s" | "sec" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" | "day" | "days" => value * 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m, h or d)"
            ))
        }
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A size in bytes: `1048576`, `512k`, `200M`, `2G` (powers of 1024; `B`, `KiB`, `MB`... also
/// accepted), at least 64 KiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (value, unit) = number_and_unit(text.trim())
        .ok_or_else(|| format!("{text:?} is not a size (e.g. 200M, 2G)"))?;
    let unit = unit.to_ascii_lowercase();
    let scale = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1u64,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("unknown size unit in {text:?} (use k, M, G)")),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 65_536.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?}: a spool size is at least 64k"));
    }
    Ok(bytes as u64)
}

/// `4m05s`, `12s`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// RFC 3339 UTC with milliseconds of a Unix time in ns, e.g. `2026-11-26T21:00:00.123Z`.
pub fn rfc3339_ns(ns: u64) -> String {
    let seconds = rollcall_recognizer::directory::rfc3339_utc(
        std::time::UNIX_EPOCH + Duration::from_secs(ns / 1_000_000_000),
    );
    let without_z = seconds.strip_suffix('Z').unwrap_or(&seconds);
    format!("{without_z}.{:03}Z", (ns / 1_000_000) % 1000)
}

/// `hh:mm:ss.mmm` (UTC) of a Unix time in ns.
pub fn clock(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        (ns / 1_000_000) % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_milliseconds() {
        assert_eq!(
            rfc3339_ns(1_764_190_800_123_456_789),
            "2025-11-26T21:00:00.123Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "x", "5 parsecs", "0", "-1s", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("200M"), Ok(200 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(" 64 kb "), Ok(64 << 10));
        for bad in ["", "big", "10", "12 parsecs", "-1G", "1e400G"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(bad.trim()) || bad.is_empty(), "{bad}: {err}");
        }
    }
}
