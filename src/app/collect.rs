//! `corecatch collect [PATH...]`: the cores already on disk (where core_pattern puts them, or
//! the files and directories named), systemd-coredump's store and apport's reports, through the
//! same per-core pipeline as `run`.

use super::process::{process_cores, write_ci_reports, RunContext};
use super::upload::upload_if_asked;
use crate::config::CollectConfig;
use crate::core_pattern::CorePattern;
use crate::error::{chain, warn};
use crate::exit_code;
use crate::source::capture::{is_apport, is_systemd_coredump};
use crate::source::{self, apport, kernel, systemd, Classified, Found};
use crate::sys;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What the search turned up, sorted by kind.
#[derive(Default)]
struct Gathered {
    cores: Vec<Found>,
    store_entries: Vec<systemd::Entry>,
    reports: Vec<PathBuf>,
    /// Passed over with a note; no failure.
    notes: Vec<source::Skipped>,
    /// Named by the user but missing or not a regular file: a failure.
    refused: Vec<source::Skipped>,
    failed: usize,
}

impl Gathered {
    fn add(&mut self, c: Classified, named: bool) {
        match c {
            Classified::Core(f) => self.cores.push(f),
            Classified::SystemdEntry(e) => self.store_entries.push(e),
            Classified::ApportReport(p) => self.reports.push(p),
            Classified::NotACore(s) => self.notes.push(s),
            Classified::Unreadable(s) if named => self.refused.push(s),
            Classified::Unreadable(s) => self.notes.push(s),
        }
    }
}

pub(super) fn collect(cfg: CollectConfig) -> i32 {
    let started = SystemTime::now();
    super::sweep_leftovers(&cfg.artifacts.out);
    let settings = sys::kernel::read_settings();
    let pattern_text = settings
        .as_ref()
        .map(|s| s.core_pattern.clone())
        .unwrap_or_default();
    let mut g = Gathered::default();
    let exclude = std::slice::from_ref(&cfg.artifacts.out);
    if cfg.paths.is_empty() {
        let Ok(settings) = settings else {
            warn("cannot read core_pattern; name the cores or directories to collect");
            return exit_code::INCOMPLETE;
        };
        let pattern = CorePattern::parse(&settings.core_pattern, settings.core_uses_pid);
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        match pattern.file().map(|f| f.search_plan(&cwd)) {
            Some(plan) => {
                for c in kernel::scan(
                    &plan.root,
                    plan.recursive,
                    &|rel| plan.matches(rel),
                    exclude,
                ) {
                    g.add(c, false);
                }
            }
            None if is_apport(&pattern) => {
                // apport keeps reports, with the core inside, in /var/crash.
                let dir = Path::new(apport::REPORT_DIR);
                for c in kernel::scan(dir, false, &|rel| apport::is_report_name(rel), exclude) {
                    g.add(c, false);
                }
            }
            None if is_systemd_coredump(&pattern) => {
                // systemd-coredump keeps every core it stored in its store, whatever its
                // compression; they are read from there (its files are left as they are).
                let dir = Path::new(systemd::format::STORE_DIR);
                match systemd::list(dir) {
                    Ok(entries) => g.store_entries.extend(entries),
                    Err(e) => {
                        warn(format!("cannot list {}: {e}", dir.display()));
                        g.failed += 1;
                    }
                }
            }
            None => {
                warn(format!(
                    "core_pattern does not write core files ({}); name the cores or directories \
                     to collect",
                    pattern.describe()
                ));
                write_ci_reports(&cfg.artifacts, &[]);
                return exit_code::OK;
            }
        }
    } else {
        for p in &cfg.paths {
            if p.is_dir() {
                for c in kernel::scan(p, true, &|_| true, exclude) {
                    // In a directory, only files that look like cores by name are worth a note.
                    let noted = match &c {
                        Classified::NotACore(s) | Classified::Unreadable(s) => {
                            source::looks_like_core_name(&s.path)
                        }
                        _ => true,
                    };
                    if noted {
                        g.add(c, false);
                    }
                }
            } else {
                g.add(source::classify(p), true);
            }
        }
    }
    for s in &g.notes {
        warn(format!("skipped {}: {}", s.path.display(), s.why));
    }
    for s in &g.refused {
        warn(format!("cannot collect {}: {}", s.path.display(), s.why));
    }
    let mut origins = Vec::new();
    for e in &g.store_entries {
        match systemd::extract(&e.path, &e.name.compression, &cfg.artifacts.out) {
            Ok(found) => {
                if !cfg.artifacts.quiet {
                    warn(format!(
                        "read the core of pid {} from systemd-coredump's {}",
                        e.name.pid,
                        e.path.display()
                    ));
                }
                origins.push((
                    found.path.clone(),
                    super::origin("systemd-coredump", &e.path),
                ));
                g.cores.push(found);
            }
            Err(err) => {
                warn(format!(
                    "skipped {}; the file is left as it is",
                    chain(&err)
                ));
                g.failed += 1;
            }
        }
    }
    // apport reports: their CoreDump becomes a core file to process.
    for report in &g.reports {
        match apport::extract_core(report, &cfg.artifacts.out) {
            Ok(found) => {
                if !cfg.artifacts.quiet {
                    warn(format!(
                        "took the core out of apport's report {}",
                        report.display()
                    ));
                }
                origins.push((found.path.clone(), super::origin("apport", report)));
                g.cores.push(found);
            }
            Err(why) => {
                warn(format!(
                    "skipped {}: apport report: {why}",
                    report.display()
                ));
                g.failed += 1;
            }
        }
    }
    let failed = g.failed + g.refused.len();
    if g.cores.is_empty() {
        if !cfg.artifacts.quiet && g.refused.is_empty() {
            warn("no core files found");
        }
        write_ci_reports(&cfg.artifacts, &[]);
        return if failed > 0 {
            exit_code::INCOMPLETE
        } else {
            exit_code::OK
        };
    }
    let ctx = RunContext {
        command: Vec::new(),
        exit_status: None,
        started,
        ended: SystemTime::now(),
        core_pattern: pattern_text,
    };
    let done = process_cores(&g.cores, &cfg.artifacts, &ctx, None, &origins);
    // The extracted cores are ours; the reports and store entries they came from stay as apport
    // and systemd-coredump left them.
    for (temp, _) in &origins {
        let _ = std::fs::remove_file(temp);
    }
    write_ci_reports(&cfg.artifacts, &done.reports);
    let uploaded = upload_if_asked(&cfg.artifacts, done.stored);
    if done.failed > 0 || failed > 0 || !uploaded || done.interrupted {
        exit_code::INCOMPLETE
    } else {
        exit_code::OK
    }
}
