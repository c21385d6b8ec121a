//! The subcommands, one file each, and the per-core pipeline they share ([`process`]). Each
//! subcommand calls the stages in order (sources of cores, the report, the artifacts, remote
//! stores) and owns its failure policy: a failure with one core (unreadable, corrupt, cannot be
//! stored) is reported on stderr and never stops the other cores, never deletes the raw core,
//! and never changes the wrapped command's exit status.

mod bt;
mod bundle;
mod collect;
mod debug;
mod doctor;
mod fetch;
mod open;
mod pattern;
mod process;
mod run;
mod scrub;
mod upload;

use crate::config::{Capture, Command};
use crate::core_pattern::CorePattern;
use crate::source::capture::{self, Facts};
use crate::source::systemd;
use crate::sys;
use std::path::PathBuf;

/// Run a subcommand and return the process exit status.
pub fn run(command: Command) -> i32 {
    // Before any thread starts (the S3 runtime, fetch workers): see sys::nss.
    sys::nss::use_builtin_modules();
    match command {
        Command::Run(c) => run::run(c),
        Command::Collect(c) => collect::collect(c),
        Command::Pattern(c) => pattern::pattern(c),
        Command::Bt(c) => bt::bt(c),
        Command::Debug(c) => debug::debug(c),
        Command::Doctor => doctor::doctor(),
        Command::Canary => std::process::abort(),
        Command::Upload(c) => upload::upload_dir(c),
        Command::Fetch(c) => fetch::fetch(c),
    }
}

/// What the choice of `capture` depends on, read from this machine: core_pattern, the limits
/// after raising them, systemd-coredump's store (only under its pipe, and only when `capture`
/// may choose it: asking can mean running `coredumpctl`), the pattern's directory.
fn capture_facts(
    capture: Capture,
    settings: Option<&sys::kernel::KernelSettings>,
    raised: &sys::rlimit::Raised,
) -> Facts {
    let pattern = settings.map(|s| CorePattern::parse(&s.core_pattern, s.core_uses_pid));
    let store = pattern
        .as_ref()
        .filter(|p| capture::is_systemd_coredump(p))
        .filter(|_| matches!(capture, Capture::Auto | Capture::Handler))
        .map(|_| systemd::reach());
    let directory = pattern.as_ref().and_then(|p| p.file()).and_then(|f| {
        let dir = match f.static_dir() {
            Some(d) => d,
            None if f.absolute => return None,
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        let ok = dir.is_dir() && sys::kernel::dir_writable(&dir);
        Some((dir, ok))
    });
    Facts {
        pattern,
        limit_zero: raised.before.hard == Some(0) || raised.after.soft == Some(0),
        store,
        directory,
    }
}

/// A random token (16 hex digits): this run's `CORECATCH_RUN`, GitHub's stop-commands token.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::time::SystemTime;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

/// Where a core handed over by a pipe handler came from, for the report.
fn origin(handler: &str, path: &std::path::Path) -> crate::report::CoreOrigin {
    crate::report::CoreOrigin {
        handler: handler.into(),
        path: path.display().to_string(),
    }
}

/// Removes what a corecatch that was killed left in the artifacts directory, with a note.
fn sweep_leftovers(out: &std::path::Path) {
    for p in crate::artifacts::publish::sweep(out, sys::process_alive) {
        crate::error::warn(format!(
            "removed {}, left by a corecatch that did not finish",
            p.display()
        ));
    }
}
