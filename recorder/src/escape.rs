//! Text from containers and runtimes made safe for a terminal, a log line
//! or a metric label: names, labels, annotations and paths are hostile,
//! and a raw ESC, BEL or OSC sequence would move an admin's cursor, set
//! the window title or fake a line.

use std::borrow::Cow;

/// `s` with every character but printable ASCII escaped (`\n`, `\u{1b}`,
/// `\\`), so that a container's name cannot move the cursor or fake a
/// line: what recorderctl's text output shows. What recorderd stores is
/// mostly sanitised already; this holds for what is not (a seccomp
/// profile's path from an annotation) and for what an older index or a
/// hostile peer may hold.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// Whether `c` is acted on rather than shown: the C0 and C1 controls
/// (ESC, BEL, newline, CSI...), DEL, and the invisible format characters
/// that reorder or hide text (bidi overrides, zero widths).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `s` with only what a terminal or a line-based reader would act on
/// escaped (as `\u{1b}`; a newline as `\n`), printable text (UTF-8
/// included) kept as it is: for log lines and metric labels, which stay
/// one line each and readable.
pub fn controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(escape("web-1 a/b:c"), "web-1 a/b:c");
        assert_eq!(escape("a\nb\x1b[2Jc\\"), "a\\nb\\u{1b}[2Jc\\\\");
        assert_eq!(escape("ü\u{202e}"), "\\u{fc}\\u{202e}");
    }

    #[test]
    fn controls_only_escapes_what_acts() {
        assert!(matches!(controls("web ü/b:c \\x"), Cow::Borrowed(_)));
        let osc = "/x\x1b[31mRED\x1b]0;pwned-title\x07\x1b[2J\u{9b}1m\u{202e}\n";
        let shown = controls(osc);
        assert_eq!(
            shown,
            "/x\\u{1b}[31mRED\\u{1b}]0;pwned-title\\u{7}\\u{1b}[2J\\u{9b}1m\\u{202e}\\n"
        );
        assert!(!shown.bytes().any(|b| b == 0x1b || b == 0x07 || b == b'\n'));
    }
}
