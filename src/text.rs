//! Text from outside made safe to print: one escape for every place where input-derived text (a record's error,
//! a server's error body, a login a vendor API returned) is written to a terminal, a log line or a Kafka header.
//!
//! In: any `&str`. Out: the same text with every control character written as a visible escape, so that it stays
//! on one line and cannot drive a terminal (clear the screen, move the cursor) or forge a line of its own.
//! State: none.
//!
//! Escaped: `\n`, `\r` and `\t` as themselves (`\n`, ...); every other C0 control (U+0000 to U+001F, ESC among
//! them), DEL (U+007F) and every C1 control (U+0080 to U+009F) as `\u{..}` with the code in hex; likewise the
//! Unicode line and paragraph separators (U+2028, U+2029) and the bidirectional overrides and isolates (U+202A to
//! U+202E, U+2066 to U+2069), which can reorder what a reader sees. A backslash is left as it is: escaped text can
//! look like an escape, but it cannot become a control character again.

use std::borrow::Cow;

/// Whether `c` is written as an escape by [`escape_control`].
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with its control characters escaped (see the module doc); borrowed when there is none.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(needs_escape) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let s = "okta:12: missing field `actor` (café, \\n stays)";
        assert!(matches!(escape_control(s), Cow::Borrowed(t) if t == s));
    }

    #[test]
    fn a_terminal_escape_and_a_forged_line_stay_visible_on_one_line() {
        let s = "bad \x1b[2J\nfake.jsonl:1: forged\r\tx\u{7f}\u{9b}31m\u{202e}\0";
        let e = escape_control(s);
        assert_eq!(
            e,
            "bad \\u{1b}[2J\\nfake.jsonl:1: forged\\r\\tx\\u{7f}\\u{9b}31m\\u{202e}\\u{0}"
        );
        assert!(!e.chars().any(needs_escape), "{e}");
    }
}
