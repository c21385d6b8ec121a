//! Pure: which capture method `run` uses, decided over a [`Facts`] the caller gathered (the
//! kernel's core_pattern, the core-size limits, whether systemd-coredump's results will be
//! readable, whether the pattern's directory is writable). No I/O here, so every branch is a
//! table test that needs no root.

use crate::core_pattern::{CorePattern, KnownHandler, PatternKind};
use crate::source::systemd::format::STORE_DIR;
use std::path::PathBuf;

/// The capture method the user asked for (`--capture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Capture {
    /// Kernel cores where core_pattern and RLIMIT_CORE let them reach us, else the handler's
    /// store where it will be filled and is readable, else ptrace.
    #[default]
    Auto,
    /// Only the cores the kernel writes.
    Kernel,
    /// The cores a pipe handler (systemd-coredump) stored, read back after the command ends.
    Handler,
    /// corecatch traces the command and writes the cores itself.
    Ptrace,
}

/// How `run` gets the cores of crashing processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// The kernel writes them where core_pattern says.
    Kernel,
    /// systemd-coredump stores them; corecatch reads them back when the command has ended.
    Handler(Reach),
    /// corecatch traces the command and writes them itself.
    Ptrace,
}

/// How systemd-coredump's cores will come back to corecatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Files in the store, which corecatch can read.
    Store,
    /// Only through `coredumpctl dump` (Storage=journal, or a store we cannot read).
    Coredumpctl,
}

/// The capture method and why it was chosen (printed unless `--quiet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub method: Method,
    pub why: Option<String>,
}

/// What the choice depends on, gathered at the I/O edge.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The parsed core_pattern; `None` when it cannot be read.
    pub pattern: Option<CorePattern>,
    /// The hard RLIMIT_CORE is 0 (or the soft one could not be raised above 0).
    pub limit_zero: bool,
    /// Under a systemd-coredump pipe: whether its results can be read back, or why not.
    pub store: Option<Result<Reach, String>>,
    /// Under a file pattern: the directory cores land in (for a relative pattern without a
    /// directory part, the current one) and whether it exists and is writable. `None` for an
    /// absolute pattern whose directory depends on the crash (`/cores/%e/core`).
    pub directory: Option<(PathBuf, bool)>,
}

/// Whether core_pattern pipes cores to systemd-coredump.
pub fn is_systemd_coredump(pattern: &CorePattern) -> bool {
    matches!(&pattern.kind, PatternKind::Pipe(p) if p.handler == KnownHandler::SystemdCoredump)
}

/// Whether core_pattern pipes cores to apport.
pub fn is_apport(pattern: &CorePattern) -> bool {
    matches!(&pattern.kind, PatternKind::Pipe(p) if p.handler == KnownHandler::Apport)
}

/// How systemd-coredump's cores come back, in words.
pub fn handler_words(reach: &Reach) -> String {
    match reach {
        Reach::Store => format!("which stores them in {STORE_DIR}"),
        Reach::Coredumpctl => "which keeps them where `coredumpctl dump` reads them".into(),
    }
}

fn kernel() -> Choice {
    Choice {
        method: Method::Kernel,
        why: None,
    }
}

fn ptrace(why: String) -> Choice {
    Choice {
        method: Method::Ptrace,
        why: Some(why),
    }
}

/// How `run` should capture. Auto prefers kernel cores, then the cores systemd-coredump stores
/// where they will reach us, and picks ptrace only where neither would: programs that trace
/// themselves (sanitizers, gdb in a test) cannot run under a tracer.
pub fn choose(capture: Capture, facts: &Facts) -> Choice {
    let pattern = facts.pattern.as_ref();
    let describe = || pattern.map_or("core_pattern unreadable".into(), CorePattern::describe);
    match capture {
        Capture::Kernel => return kernel(),
        Capture::Ptrace => return ptrace("--capture ptrace".into()),
        Capture::Handler => {
            return match (pattern.filter(|p| is_systemd_coredump(p)), &facts.store) {
                (Some(_), Some(Ok(reach))) => Choice {
                    why: Some(format!("--capture handler: {}", handler_words(reach))),
                    method: Method::Handler(reach.clone()),
                },
                (Some(_), Some(Err(why))) => Choice {
                    method: Method::Handler(Reach::Store),
                    why: Some(format!(
                        "--capture handler, although {why}; corecatch waits for \
                         systemd-coredump's store anyway"
                    )),
                },
                _ => Choice {
                    method: Method::Kernel,
                    why: Some(format!(
                        "--capture handler: core_pattern does not pipe to systemd-coredump ({}); \
                         looking for kernel cores instead",
                        describe()
                    )),
                },
            };
        }
        Capture::Auto => {}
    }
    let Some(pattern) = pattern else {
        return ptrace("core_pattern cannot be read".into());
    };
    if facts.limit_zero {
        // A hard limit of 0 is how containers and CI images turn kernel cores off; corecatch
        // does not count on overriding it (and systemd-coredump drops a core whose %c is 0).
        return ptrace("the hard RLIMIT_CORE is 0".into());
    }
    let Some(file) = pattern.file() else {
        if is_systemd_coredump(pattern) {
            return match &facts.store {
                Some(Ok(reach)) => Choice {
                    why: Some(format!(
                        "core_pattern pipes cores to systemd-coredump, {}",
                        handler_words(reach)
                    )),
                    method: Method::Handler(reach.clone()),
                },
                Some(Err(why)) => ptrace(format!(
                    "core_pattern pipes cores to systemd-coredump, but {why}"
                )),
                None => ptrace(
                    "core_pattern pipes cores to systemd-coredump, whose store was not checked"
                        .into(),
                ),
            };
        }
        return ptrace(format!(
            "kernel cores do not reach corecatch ({})",
            pattern.describe()
        ));
    };
    match &facts.directory {
        None if file.absolute => kernel(),
        Some((dir, false)) => ptrace(format!(
            "core_pattern writes cores to {}, which does not exist or is not writable",
            dir.display()
        )),
        _ => kernel(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEMD: &str = "|/lib/systemd/systemd-coredump %P %u %g %s %t %c %h";

    fn facts(pattern: Option<&str>) -> Facts {
        Facts {
            pattern: pattern.map(|p| CorePattern::parse(p, false)),
            limit_zero: false,
            store: None,
            directory: None,
        }
    }

    fn with(mut f: Facts, edit: impl FnOnce(&mut Facts)) -> Facts {
        edit(&mut f);
        f
    }

    #[test]
    fn the_choice_table() {
        let writable = |f: &mut Facts| f.directory = Some(("/w".into(), true));
        let unwritable = |f: &mut Facts| f.directory = Some(("/cores".into(), false));
        let store_ok = |f: &mut Facts| f.store = Some(Ok(Reach::Store));
        let store_gone = |f: &mut Facts| f.store = Some(Err("no socket".into()));
        let cases: Vec<(Capture, Facts, Method, Option<&str>)> = vec![
            (
                Capture::Auto,
                with(facts(Some("core")), writable),
                Method::Kernel,
                None,
            ),
            (
                Capture::Auto,
                with(facts(Some("core")), unwritable),
                Method::Ptrace,
                Some("not writable"),
            ),
            (
                Capture::Auto,
                facts(None),
                Method::Ptrace,
                Some("cannot be read"),
            ),
            (
                Capture::Auto,
                with(facts(Some("core")), |f| {
                    f.limit_zero = true;
                    f.directory = Some(("/w".into(), true));
                }),
                Method::Ptrace,
                Some("RLIMIT_CORE is 0"),
            ),
            (
                Capture::Auto,
                facts(Some("/cores/%e/core")),
                Method::Kernel,
                None,
            ),
            (
                Capture::Auto,
                facts(Some("|/usr/bin/false %p")),
                Method::Ptrace,
                Some("do not reach"),
            ),
            (
                Capture::Auto,
                with(facts(Some(SYSTEMD)), store_ok),
                Method::Handler(Reach::Store),
                Some("stores them"),
            ),
            (
                Capture::Auto,
                with(facts(Some(SYSTEMD)), store_gone),
                Method::Ptrace,
                Some("no socket"),
            ),
            (Capture::Kernel, facts(None), Method::Kernel, None),
            (
                Capture::Ptrace,
                with(facts(Some("core")), writable),
                Method::Ptrace,
                Some("--capture ptrace"),
            ),
            (
                Capture::Handler,
                facts(Some("core")),
                Method::Kernel,
                Some("does not pipe"),
            ),
            (
                Capture::Handler,
                with(facts(Some(SYSTEMD)), store_gone),
                Method::Handler(Reach::Store),
                Some("although no socket"),
            ),
            (
                Capture::Handler,
                with(facts(Some(SYSTEMD)), |f| {
                    f.store = Some(Ok(Reach::Coredumpctl))
                }),
                Method::Handler(Reach::Coredumpctl),
                Some("coredumpctl dump"),
            ),
        ];
        for (capture, facts, method, why) in cases {
            let c = choose(capture, &facts);
            assert_eq!(c.method, method, "{capture:?} {facts:?}");
            match why {
                None => assert_eq!(c.why, None, "{capture:?} {facts:?}"),
                Some(w) => assert!(
                    c.why.as_deref().is_some_and(|s| s.contains(w)),
                    "{capture:?} {facts:?}: {:?}",
                    c.why
                ),
            }
        }
    }
}
