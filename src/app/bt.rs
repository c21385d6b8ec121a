//! `corecatch bt TARGET`: the report of a core on stdout, as text or JSON. TARGET is a raw core,
//! a stored `.core.gz`, or an artifacts directory (every core in it), read with the
//! directory's debug bundles ([`super::open`]).

use super::process::build_report;
use crate::backtrace::Locals;
use crate::config::BtConfig;
use crate::error::{chain, warn};
use crate::exit_code;
use crate::report::text;
use crate::source::core_file::MappedCore;
use std::io::Write;

pub(super) fn bt(cfg: BtConfig) -> i32 {
    let Some(opened) = super::open::open_and_say(&cfg.core, cfg.identity.as_deref()) else {
        return exit_code::INCOMPLETE;
    };
    let mut symbols = cfg.symbols.clone();
    let dirs = opened.bundle_dirs();
    symbols.object_dirs.extend(dirs.iter().cloned());
    symbols.debug_dirs.splice(0..0, dirs);
    let mut status = exit_code::OK;
    for (i, (core, shown)) in opened.cores.iter().enumerate() {
        if opened.cores.len() > 1 && !cfg.json {
            if i > 0 {
                println!();
            }
            println!("==> core {} of {}", i + 1, opened.cores.len());
        }
        let s = bt_one(core, shown, &cfg, &symbols);
        if s != exit_code::OK {
            status = s;
        }
    }
    status
}

/// The report of the raw core at `path`, named `shown` (the stored core it came from).
fn bt_one(
    path: &std::path::Path,
    shown: &std::path::Path,
    cfg: &BtConfig,
    symbols: &crate::config::SymbolConfig,
) -> i32 {
    let mapped = match MappedCore::open(path) {
        Ok(m) => m,
        Err(e) => {
            warn(chain(&e));
            return exit_code::INCOMPLETE;
        }
    };
    let core = match crate::elf_core::parse(mapped.bytes()) {
        Ok(c) => c,
        Err(e) => {
            warn(format!("{}: {e}", path.display()));
            return exit_code::INCOMPLETE;
        }
    };
    let report = build_report(&core, shown, symbols, Locals::None);
    // Stdout is line-buffered: a report of 1600 frames would be 1600 writes.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let written = if cfg.json {
        report.write_json(&mut out)
    } else {
        text::write(&report, &mut out, text::Threads::All)
    };
    if let Err(e) = written.and_then(|_| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            warn(format!("cannot write the report: {e}"));
            return exit_code::INCOMPLETE;
        }
    }
    if report.threads.is_empty() {
        exit_code::INCOMPLETE
    } else {
        exit_code::OK
    }
}
