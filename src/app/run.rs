//! `corecatch run -- CMD`: raise RLIMIT_CORE, choose how cores are captured, run CMD with this
//! run's token in its environment, then find the cores of this run (the kernel's, the ones
//! corecatch wrote under ptrace, or systemd-coredump's), process them, and exit with CMD's
//! status whatever happened to the cores.

use super::process::{process_cores, write_ci_reports, Attribution, RunContext};
use super::upload::upload_if_asked;
use crate::config::RunConfig;
use crate::core_pattern::CorePattern;
use crate::error::{chain, warn};
use crate::source::capture::{self, Method, Reach};
use crate::source::{self, kernel, systemd, Found};
use crate::sys;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Kernel file timestamps come from a coarse clock that can lag the precise one by a tick, so a
/// core written just after the start can carry an earlier time. Attribution by run token is what
/// keeps other processes' cores out; this only bounds the window.
const CLOCK_SLACK: Duration = Duration::from_secs(1);

pub(super) fn run(cfg: RunConfig) -> i32 {
    let started = SystemTime::now();
    super::sweep_leftovers(&cfg.artifacts.out);
    let raised = sys::rlimit::raise();
    if let Some(p) = &raised.problem {
        warn(p);
    }
    let settings = sys::kernel::read_settings();
    let token = super::random_token();
    let env = [(kernel::TOKEN_VAR.to_string(), token.clone())];
    let choice = capture::choose(
        cfg.capture,
        &super::capture_facts(cfg.capture, settings.as_ref().ok(), &raised),
    );
    if let (Some(why), false) = (&choice.why, cfg.artifacts.quiet) {
        match choice.method {
            Method::Ptrace => warn(format!(
                "{why}; corecatch traces the command and writes its cores itself"
            )),
            Method::Handler(_) => warn(format!(
                "{why}; corecatch reads this run's cores back from it when the command has ended"
            )),
            Method::Kernel => warn(why),
        }
    }
    // The store's entries before the command starts are not this run's.
    let store_before: Vec<PathBuf> = match choice.method {
        Method::Handler(_) => systemd::list(Path::new(systemd::format::STORE_DIR))
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect(),
        _ => Vec::new(),
    };
    let spawned = match choice.method {
        Method::Ptrace => sys::ptrace::run(&cfg.argv, &env, &mut |stopped| {
            source::ptrace::write_core(stopped, &cfg.artifacts.out).map_err(|e| chain(&e))
        }),
        _ => sys::spawn::run(&cfg.argv, &env).map(|outcome| sys::ptrace::TracedRun {
            outcome,
            captured: Vec::new(),
            notes: Vec::new(),
        }),
    };
    let traced = match spawned {
        Ok(t) => t,
        Err(e) => {
            warn(chain(&e));
            return e.exit_status();
        }
    };
    for n in &traced.notes {
        warn(n);
    }
    let outcome = traced.outcome.clone();
    let status = outcome.ended.shell_status();
    let ended = SystemTime::now();

    // Without core_pattern no kernel core can be looked for, but cores corecatch captured itself
    // are still processed.
    let settings = match settings {
        Ok(s) => Some(s),
        Err(e) => {
            warn(format!("{}; cannot look for kernel cores", chain(&e)));
            None
        }
    };
    let pattern = settings
        .as_ref()
        .map(|s| CorePattern::parse(&s.core_pattern, s.core_uses_pid));
    let describe = || {
        pattern
            .as_ref()
            .map_or("core_pattern unreadable".into(), CorePattern::describe)
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    // Processes that died of a core-dumping signal: if no core of theirs turns up, say why.
    // (pid, signal, whether the kernel says it wrote a core)
    let deaths: Vec<(i32, i32, bool)> = std::iter::once((outcome.pid, outcome.ended))
        .chain(outcome.reaped.iter().copied())
        .filter_map(|(p, e)| match e {
            // The core bit is not set when a pipe handler fails, so judge by the signal too.
            sys::spawn::Ended::Signaled {
                signal,
                core_dumped,
            } if core_dumped || sys::ptrace::CORE_SIGNALS.contains(&signal) => {
                Some((p, signal, core_dumped))
            }
            _ => None,
        })
        .collect();
    let dumped: Vec<i32> = deaths.iter().map(|d| d.0).collect();

    let mut known_pids = vec![outcome.pid];
    known_pids.extend(outcome.reaped.iter().map(|(p, _)| *p));
    let mut cores = captured_cores(&traced, &mut known_pids);
    let since = started.checked_sub(CLOCK_SLACK).unwrap_or(started);
    match pattern
        .as_ref()
        .and_then(CorePattern::file)
        .map(|f| f.search_plan(&cwd))
    {
        Some(plan) => {
            let found = kernel::scan(
                &plan.root,
                plan.recursive,
                &|rel| plan.matches(rel),
                std::slice::from_ref(&cfg.artifacts.out),
            );
            cores.extend(found.into_iter().filter_map(|c| match c {
                source::Classified::Core(f) if kernel::written_since(&f, since) => Some(f),
                _ => None,
            }));
        }
        None if matches!(choice.method, Method::Handler(_)) => {}
        None => {
            if !dumped.is_empty() && traced.captured.is_empty() && pattern.is_some() {
                warn(format!(
                    "a process dumped core, but core_pattern sends cores elsewhere: {}",
                    describe()
                ));
            }
        }
    }

    // Cores read back from systemd-coredump: temporary copies in the artifacts directory,
    // removed once processed (the store's files stay as systemd-coredump wrote them).
    let mut origins = Vec::new();
    if let Method::Handler(reach) = &choice.method {
        let found = handler_cores(reach, &dumped, started, &store_before, &cfg.artifacts.out);
        for (found, origin) in found {
            origins.push((found.path.clone(), origin));
            cores.push(found);
        }
    }

    let ctx = RunContext {
        command: cfg
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exit_status: Some(status),
        started,
        ended,
        core_pattern: settings.map(|s| s.core_pattern).unwrap_or_default(),
    };
    let attribution = Attribution {
        token: &token,
        known_pids: &known_pids,
    };
    // A bug in corecatch must never change the command's status: a panic while processing
    // cores is reported (the panic hook has printed it) and the status is still passed through.
    let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        process_cores(&cores, &cfg.artifacts, &ctx, Some(&attribution), &origins)
    }));
    for (temp, _) in &origins {
        let _ = std::fs::remove_file(temp);
    }
    let Ok(done) = processed else {
        warn(format!(
            "internal error while processing cores; cores not yet stored are left in place; exiting with \
             the command's status {status}"
        ));
        return status;
    };
    write_ci_reports(&cfg.artifacts, &done.reports);
    // Whatever the upload does, even a panic in the SDK, the status stays CMD's.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        upload_if_asked(&cfg.artifacts, done.stored)
    }))
    .is_err()
    {
        warn(format!(
            "internal error while uploading; the artifacts stay in {}",
            cfg.artifacts.out.display()
        ));
    }
    if done.stored == 0 && done.failed == 0 && !done.interrupted {
        let limit = sys::rlimit::CoreLimit::show(raised.after.soft);
        for &(pid, signal, core_dumped) in &deaths {
            let sig = crate::report::signals::name(signal)
                .map_or(format!("signal {signal}"), |n| format!("{n} ({signal})"));
            if core_dumped {
                warn(format!(
                    "pid {pid} was killed by {sig} and dumped core, but no core file of this \
                     run was found ({})",
                    describe()
                ));
            } else if choice.method == Method::Kernel {
                // The kernel says it wrote nothing although the command started with the
                // raised limit: something about the process itself stopped the dump.
                warn(format!(
                    "pid {pid} was killed by {sig}, and no core was written: the command started \
                     with a core size limit of {limit}, so the process may have lowered its own \
                     (setrlimit, `ulimit -c 0`), be setuid or changed credentials \
                     (fs.suid_dumpable), or have had no writable directory for {}",
                    describe()
                ));
            } else {
                warn(format!(
                    "pid {pid} was killed by {sig}, and no core of it reached corecatch"
                ));
            }
        }
    }
    status
}

/// systemd-coredump's cores of this run as temporary core files in `out`, each with where it
/// came from. Waits (bounded) for the store: systemd-coredump writes after the process is gone.
/// Known crashed pids the store lacks are asked of `coredumpctl`. Problems are printed.
fn handler_cores(
    reach: &Reach,
    dumped: &[i32],
    started: SystemTime,
    before: &[PathBuf],
    out: &Path,
) -> Vec<(Found, crate::report::CoreOrigin)> {
    let origin = |path: String| crate::report::CoreOrigin {
        handler: "systemd-coredump".into(),
        path,
    };
    let mut got = Vec::new();
    let mut missing = dumped.to_vec();
    let limit = systemd::wait_limit();
    let mut waited = Duration::ZERO;
    if *reach == Reach::Store {
        let uid = sys::kernel::real_uid();
        let w = systemd::wait_for_run(dumped, uid, started, before, limit);
        waited = w.waited;
        if let Some(e) = &w.error {
            warn(e);
        }
        for e in &w.entries {
            match systemd::extract(&e.path, &e.name.compression, out) {
                Ok(f) => got.push((f, origin(e.path.display().to_string()))),
                Err(err) => warn(format!(
                    "{}; the entry stays in systemd-coredump's store",
                    chain(&err)
                )),
            }
        }
        missing = w.missing;
        if !missing.is_empty() && w.still_writing {
            warn(format!(
                "systemd-coredump was still at work after {:.1} s; `corecatch collect` reads \
                 its store later, CORECATCH_HANDLER_WAIT=SECS waits longer",
                w.waited.as_secs_f64()
            ));
        }
    }
    if !missing.is_empty() && *reach == Reach::Coredumpctl {
        let t = std::time::Instant::now();
        if systemd::wait_for_helpers(limit) {
            warn(format!(
                "systemd-coredump was still at work after {:.1} s; CORECATCH_HANDLER_WAIT=SECS \
                 waits longer",
                limit.as_secs_f64()
            ));
        }
        waited = t.elapsed();
    }
    if !missing.is_empty()
        && (*reach == Reach::Coredumpctl || systemd::coredumpctl_usable().is_ok())
    {
        let since = started.checked_sub(CLOCK_SLACK).unwrap_or(started);
        for pid in missing.clone() {
            match systemd::coredumpctl_dump(pid, since, out) {
                Ok(f) => {
                    got.push((f, origin(format!("coredumpctl dump {pid}"))));
                    missing.retain(|p| *p != pid);
                }
                Err(e) => warn(chain(&e)),
            }
        }
    }
    if !missing.is_empty() {
        warn(format!(
            "systemd-coredump stored nothing for pid {} within {:.1} s (is \
             systemd-coredump.socket running? does coredump.conf keep cores: Storage=, \
             ProcessSizeMax=?)",
            missing
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            waited.as_secs_f64()
        ));
    }
    got
}

/// The cores corecatch wrote itself during the run, ready for `process_cores`; their pids join
/// `known_pids`.
fn captured_cores(traced: &sys::ptrace::TracedRun, known_pids: &mut Vec<i32>) -> Vec<Found> {
    let mut found = Vec::new();
    for c in &traced.captured {
        for w in &c.warnings {
            warn(format!("core of pid {}: {w}", c.pid));
        }
        known_pids.push(c.pid);
        match source::check_file(&c.path) {
            Ok(f) => found.push(f),
            Err(why) => warn(format!("{}: {why}", c.path.display())),
        }
    }
    found
}
