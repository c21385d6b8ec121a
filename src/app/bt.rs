//! `corecatch bt CORE`: the report of one core on stdout, as text or JSON.

use super::process::build_report;
use crate::backtrace::Locals;
use crate::config::BtConfig;
use crate::error::{chain, warn};
use crate::exit_code;
use crate::report::text;
use crate::source::core_file::MappedCore;
use std::io::Write;

pub(super) fn bt(cfg: BtConfig) -> i32 {
    let mapped = match MappedCore::open(&cfg.core) {
        Ok(m) => m,
        Err(e) => {
            warn(chain(&e));
            return exit_code::INCOMPLETE;
        }
    };
    let core = match crate::elf_core::parse(mapped.bytes()) {
        Ok(c) => c,
        Err(e) => {
            warn(format!("{}: {e}", cfg.core.display()));
            return exit_code::INCOMPLETE;
        }
    };
    let report = build_report(&core, &cfg.core, &cfg.symbols, Locals::None);
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
