//! Every exit status corecatch can return, in one place. The README's table is generated from
//! these docs by hand; keep them in step.
//!
//! `run` is special: its exit status is the wrapped command's, exactly as bash reports it
//! (the exit code, or 128+N after signal N). The constants here cover what happens when there is
//! no such status, and the other subcommands.

/// Success: the subcommand did what it was asked (for `collect`, also when there was no core).
pub const OK: i32 = 0;
/// `collect`/`bt`: at least one core was found but could not be fully processed or stored;
/// `pattern --check`-style failures. Details are on stderr.
pub const INCOMPLETE: i32 = 1;
/// `doctor`: a crash under the current settings would not reach corecatch by any method.
pub const NO_CAPTURE: i32 = 3;
/// Usage error: bad flags or arguments (clap's convention), `--encrypt-reports` without a
/// recipient; `debug` given a directory of several cores.
pub const USAGE: i32 = 2;
/// corecatch itself failed before the command could run (as `env`, `nice` and `timeout` do).
pub const INTERNAL: i32 = 125;
/// `run`: the command was found but could not be executed (permission, not a program).
pub const CANNOT_EXECUTE: i32 = 126;
/// `run`: the command was not found.
pub const NOT_FOUND: i32 = 127;

/// The status a shell reports for a process that exited with `code` or died of `signal`.
pub fn from_wait(code: Option<i32>, signal: Option<i32>) -> i32 {
    match (code, signal) {
        (Some(c), _) => c & 0xff,
        (None, Some(s)) => 128 + s,
        (None, None) => INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_convention() {
        assert_eq!(from_wait(Some(0), None), 0);
        assert_eq!(from_wait(Some(3), None), 3);
        assert_eq!(from_wait(None, Some(6)), 134);
        assert_eq!(from_wait(None, Some(11)), 139);
    }
}
