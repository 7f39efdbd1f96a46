//! Text that came from a request or a certificate, made safe to show on a terminal or to
//! end an OpenSSH line with.
//!
//! A key id, a principal, an option value or a key comment is chosen by whoever made the
//! request. Printed raw, a newline in it fakes another line (`Principals: root`) and an
//! escape sequence drives the operator's terminal; written raw at the end of a
//! `*-cert.pub` line, `;` or `$(…)` wait for a shell that sources the file.
//! [`escape_for_display`] writes every such character as a visible escape, and
//! [`sanitize_comment`] keeps a comment to characters no shell or parser reads as syntax.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` as it may be shown on a terminal: every control character (C0, DEL, C1) and
/// every invisible formatting character (bidirectional overrides and isolates, zero-width
/// characters, line and paragraph separators, the byte-order mark) written as an escape,
/// and `\` doubled so an escape cannot be faked: `\n`, `\r`, `\t`, `\\`, `\x1b` for the
/// other ASCII controls, `\u{202e}` beyond ASCII. Anything else is kept, non-ASCII
/// letters included; text with nothing to escape is returned borrowed.
#[must_use]
pub fn escape_for_display(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => shown.push_str("\\\\"),
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(shown, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
            }
            c => shown.push(c),
        }
    }
    Cow::Owned(shown)
}

/// Whether [`escape_for_display`] writes `c` as an escape.
fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_invisible_format(c)
}

/// Unicode characters that change how the text around them is laid out or hide
/// themselves: `Cf` format characters that matter for spoofing, and `Zl`/`Zp`.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// A comment as it may end an OpenSSH key or certificate line: letters and digits (any
/// script), space and `@ . _ - + : / = ,` are kept, every other character (shell syntax
/// such as `;`, `$`, `` ` ``, `(`, quotes, and every control character) becomes `_`, and
/// spaces at either end are dropped.
#[must_use]
pub fn sanitize_comment(comment: &str) -> String {
    let kept: String = comment
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || " @._-+:/=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    kept.trim_matches(' ').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert!(matches!(
            escape_for_display("alice@example.com"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_for_display("Jörg 名前"), "Jörg 名前");
        assert_eq!(
            escape_for_display("alice\n        Principals: root"),
            "alice\\n        Principals: root"
        );
        assert_eq!(
            escape_for_display("\x1b[2J\x1b]0;owned\x07"),
            "\\x1b[2J\\x1b]0;owned\\x07"
        );
        assert_eq!(escape_for_display("a\rb\tc\0d\x7f"), "a\\rb\\tc\\x00d\\x7f");
        assert_eq!(escape_for_display("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(
            escape_for_display("user\u{202e}gpj.exe"),
            "user\\u{202e}gpj.exe"
        );
        assert_eq!(
            escape_for_display("a\u{200b}b\u{2028}"),
            "a\\u{200b}b\\u{2028}"
        );
        assert_eq!(escape_for_display("\u{feff}x"), "\\u{feff}x");
        // A backslash is doubled, so the escapes above cannot be typed to fake one.
        assert_eq!(escape_for_display("a\\nb"), "a\\\\nb");
    }

    #[test]
    fn escaped_text_is_one_line_of_visible_characters() {
        let hostile: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let shown = escape_for_display(&hostile);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() || is_invisible_format(c))
        );
        assert_eq!(shown.lines().count(), 1);
    }

    #[test]
    fn comments_keep_only_inert_characters() {
        assert_eq!(
            sanitize_comment("alice@host.example.com"),
            "alice@host.example.com"
        );
        assert_eq!(
            sanitize_comment("ci-bot+deploy:prod/eu=1,2_3"),
            "ci-bot+deploy:prod/eu=1,2_3"
        );
        assert_eq!(sanitize_comment("Jörg Müller 名前"), "Jörg Müller 名前");
        assert_eq!(sanitize_comment("alice;$(id)`x`"), "alice___id__x_");
        assert_eq!(sanitize_comment("a\nb\rc\td\x1b"), "a_b_c_d_");
        assert_eq!(
            sanitize_comment("'quoted' \"x\" |&<>*?!#~\\"),
            "_quoted_ _x_ __________"
        );
        assert_eq!(sanitize_comment("  padded  "), "padded");
        assert_eq!(sanitize_comment(""), "");
        assert_eq!(sanitize_comment("\u{202e}evil"), "_evil");
    }
}
