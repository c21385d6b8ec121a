//! `corecatch pattern`: where a core of a process started here would go, and everything that
//! would stop it from appearing.

use crate::config::PatternConfig;
use crate::core_pattern::CorePattern;
use crate::error::{chain, warn};
use crate::exit_code;
use crate::sys;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `corecatch pattern` prints.
#[derive(serde::Serialize)]
struct PatternReport {
    core_pattern: String,
    core_uses_pid: bool,
    suid_dumpable: Option<u32>,
    explanation: crate::core_pattern::Explanation,
    /// Where a core of a process started in the current directory would be written.
    here: Option<String>,
    directory: Option<PathBuf>,
    directory_writable: Option<bool>,
    rlimit_core: sys::rlimit::CoreLimit,
    /// Everything that would stop a core from reaching corecatch.
    warnings: Vec<String>,
}

pub(super) fn pattern(cfg: PatternConfig) -> i32 {
    let settings = match sys::kernel::read_settings() {
        Ok(s) => s,
        Err(e) => {
            warn(chain(&e));
            return exit_code::INCOMPLETE;
        }
    };
    let p = CorePattern::parse(&settings.core_pattern, settings.core_uses_pid);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let explanation = p.explain();
    let mut warnings = explanation.warnings.clone();
    let limit = sys::rlimit::CoreLimit::current().unwrap_or(sys::rlimit::CoreLimit {
        soft: None,
        hard: None,
    });
    if limit.hard == Some(0) {
        warnings.push(
            "the hard RLIMIT_CORE is 0: no core is written, and only root can raise it \
             (`ulimit -Hc unlimited`, or the container's ulimit settings)"
                .into(),
        );
    } else if limit.soft == Some(0) {
        warnings.push(
            "the soft RLIMIT_CORE is 0: a process started directly from here writes no core; \
             `corecatch run` raises it to the hard limit"
                .into(),
        );
    }
    if settings.suid_dumpable == Some(0) {
        warnings.push(
            "fs.suid_dumpable is 0: setuid and setgid programs, and those that changed \
             credentials, dump no core"
                .into(),
        );
    }
    let (here, directory) = match p.file() {
        Some(f) => {
            let name = f.human_name();
            let full = if f.absolute {
                PathBuf::from(&name)
            } else {
                cwd.join(&name)
            };
            let dir = f.static_dir().or_else(|| {
                (!f.absolute)
                    .then(|| full.parent().map(Path::to_path_buf))
                    .flatten()
            });
            (Some(full.display().to_string()), dir)
        }
        None => (None, None),
    };
    let directory_writable = directory
        .as_deref()
        .map(|d| d.is_dir() && sys::kernel::dir_writable(d));
    if let (Some(d), Some(false)) = (&directory, directory_writable) {
        warnings.push(format!(
            "{} does not exist or is not writable: the kernel will write no core there",
            d.display()
        ));
    }
    let r = PatternReport {
        core_pattern: settings.core_pattern.clone(),
        core_uses_pid: settings.core_uses_pid,
        suid_dumpable: settings.suid_dumpable,
        here,
        directory,
        directory_writable,
        rlimit_core: limit,
        warnings,
        explanation,
    };
    let mut out = std::io::stdout().lock();
    let written = if cfg.json {
        serde_json::to_writer_pretty(&mut out, &r)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        write_pattern_text(&r, &mut out)
    };
    if let Err(e) = written {
        warn(format!("cannot write: {e}"));
        return exit_code::INCOMPLETE;
    }
    exit_code::OK
}

fn write_pattern_text(r: &PatternReport, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        w,
        "core_pattern:  {}   (core_uses_pid = {})",
        r.core_pattern, r.core_uses_pid as u8
    )?;
    writeln!(w, "meaning:       {}", r.explanation.description)?;
    if let Some(h) = &r.here {
        writeln!(
            w,
            "from here:     a process started in this directory dumps to {h}"
        )?;
    }
    writeln!(
        w,
        "RLIMIT_CORE:   soft {}, hard {}",
        sys::rlimit::CoreLimit::show(r.rlimit_core.soft),
        sys::rlimit::CoreLimit::show(r.rlimit_core.hard)
    )?;
    if let Some(s) = r.suid_dumpable {
        writeln!(w, "suid_dumpable: {s}")?;
    }
    if r.warnings.is_empty() {
        writeln!(w, "nothing stops a core from appearing")?;
    }
    for warning in &r.warnings {
        writeln!(w, "warning: {warning}")?;
    }
    Ok(())
}
