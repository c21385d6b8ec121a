//! How corecatch says what went wrong: an error and its chain of causes on one line, and the one
//! helper that prints a `corecatch: ` message on stderr. Which exit status an outcome maps to is
//! `exit_code`'s business, not this module's.

use std::fmt::Display;

/// An error and its chain of causes on one line: `cannot open x: No such file or directory`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

/// Print `corecatch: MSG` on stderr: every warning and error message goes through here. The
/// message is one line, its control characters escaped: it may name the crashed process's files.
pub fn warn(msg: impl Display) {
    eprintln!("corecatch: {}", crate::escape::controls(&msg.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open {0}")]
    struct Open(&'static str, #[source] std::io::Error);

    #[test]
    fn chain_joins_every_cause() {
        let e = Open("x", std::io::Error::from_raw_os_error(2));
        assert_eq!(
            chain(&e),
            "cannot open x: No such file or directory (os error 2)"
        );
    }
}
