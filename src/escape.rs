//! Text from the crashed process (names, paths, arguments, messages, symbol names) is untrusted:
//! it may hold ESC sequences that repaint a terminal, or a newline that forges a line of our
//! output. [`controls`] shows every control character escaped (`\x1b`, `\n`, `\u{9b}`) so what
//! reaches a terminal or a log is exactly one line of inert text. JSON has its own escaping;
//! GitHub's workflow commands and HTML are escaped by their renderers on top of this.

use std::borrow::Cow;

/// `s` with every control character but the tab escaped: C0 and DEL as `\xNN`, C1 as `\u{NN}`.
pub fn controls(s: &str) -> Cow<'_, str> {
    // Printable ASCII (the common case, checked a byte at a time) needs no escaping.
    let plain = |b: &u8| (0x20..0x7f).contains(b) || *b == b'\t';
    if s.as_bytes().iter().all(plain) || !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(controls("plain ü/path"), "plain ü/path");
        assert_eq!(controls("evil\x1b[31mred\x07"), "evil\\x1b[31mred\\x07");
        assert_eq!(controls("a\nb\r\x7f"), "a\\x0ab\\x0d\\x7f");
        assert_eq!(controls("c1\u{9b}2J"), "c1\\u{9b}2J");
        assert_eq!(controls("tab\tkept"), "tab\tkept");
    }
}
