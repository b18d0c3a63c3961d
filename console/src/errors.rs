//! Errors said in one line: the causes joined with `: `, a cause that only repeats what an
//! outer message already says dropped, and `Debug` dumps of library errors
//! (`(DispatchFailure(DispatchFailure { source: ...`) cut off. The full chain goes to the debug
//! log (`ROLLCALL_LOG=debug`).

use rollcall_protocol::terminal_text::terminal_safe;

/// `error` and its causes in one line, safe to print on a terminal.
pub fn one_line(error: &anyhow::Error) -> String {
    tracing::debug!("error in full: {error:?}");
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = without_debug_dump(&cause.to_string());
        if text.is_empty() || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    terminal_safe(&parts.join(": ")).into_owned()
}

/// The first line of `text`, cut before a `Debug` dump in parentheses: ` (SomeType(` or
/// ` (SomeType {`.
fn without_debug_dump(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut cut = line.len();
    for (at, _) in line.match_indices(" (") {
        let rest = &line[at + 2..];
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let starts_upper = rest.starts_with(|c: char| c.is_ascii_uppercase());
        let opens = rest[name_len..].starts_with('(') || rest[name_len..].starts_with(" {");
        if starts_upper && name_len > 0 && opens {
            cut = at;
            break;
        }
    }
    line[..cut].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_join_without_repeats_or_dumps() {
        let sdk = "dispatch failure: io error: Connection refused (os error 111) \
                   (DispatchFailure(DispatchFailure { source: ConnectorError { kind: Io } }))";
        let error = Err::<(), _>(anyhow::anyhow!(sdk.to_string()))
            .context("cannot reach the store s3://bucket/")
            .context("cannot reach the store s3://bucket/")
            .unwrap_err();
        assert_eq!(
            one_line(&error),
            "cannot reach the store s3://bucket/: dispatch failure: io error: \
             Connection refused (os error 111)"
        );
        // Parentheses in prose stay.
        assert_eq!(
            without_debug_dump("camera busy (another program uses it)"),
            "camera busy (another program uses it)"
        );
        assert_eq!(without_debug_dump("first\nsecond"), "first");
    }
}
