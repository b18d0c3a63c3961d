//! Text from outside (names and details of people records, file names, error messages that quote
//! them) made safe to print on a terminal or into a log line: control characters (line breaks,
//! escape sequences, NUL, DEL, C1) and the invisible bidirectional overrides are shown escaped
//! (`\n`, `\u{1b}`, `\u{202e}`), so a record cannot forge extra output lines, move the cursor or
//! reorder what is displayed. Every place that prints such text uses [`terminal_safe`].
//!
//! ```
//! use rollcall_protocol::terminal_text::terminal_safe;
//!
//! assert_eq!(terminal_safe("Ada Lovelace"), "Ada Lovelace");
//! assert_eq!(terminal_safe("Eve\nclip 00000001  Mallory 0.99"), "Eve\\nclip 00000001  Mallory 0.99");
//! assert_eq!(terminal_safe("\u{1b}[2J"), "\\u{1b}[2J");
//! ```

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        // Bidirectional embeddings, overrides and isolates: they reorder the rest of the line.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        // Line and paragraph separators: some terminals and log viewers break lines there.
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every control character, bidirectional override and line separator escaped
/// (`\n`, `\t`, `\u{1b}`, ...); borrowed unchanged when there is none.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in ["", "Zoë Ng", "Dupont, Jean", "李小龍", "a\\nb"] {
            assert!(matches!(terminal_safe(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn control_characters_are_escaped_on_one_line() {
        let forged = "Eve\r\n12:00:00 clip 00000002  Mallory 0.99\t\u{7}\u{0}\u{7f}\u{9b}";
        let safe = terminal_safe(forged);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert_eq!(
            safe,
            "Eve\\r\\n12:00:00 clip 00000002  Mallory 0.99\\t\\u{7}\\u{0}\\u{7f}\\u{9b}"
        );
        assert_eq!(terminal_safe("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(terminal_safe("a\u{2028}b"), "a\\u{2028}b");
    }
}
