//! The orchestrator: runs the stages of each subcommand in order and owns the per-core failure
//! policy. A failure with one core (unreadable, corrupt, cannot be stored) is reported on stderr
//! and never stops the other cores, never deletes the raw core, and never changes the wrapped
//! command's exit status.

use crate::config::{
    ArtifactConfig, BtConfig, Capture, CollectConfig, Command, PatternConfig, RunConfig,
};
use crate::core_file::MappedCore;
use crate::core_pattern::CorePattern;
use crate::coredump_store;
use crate::exit_code;
use crate::locate::{self, Found};
use crate::manifest::{self, Manifest, ManifestEntry};
use crate::report::{text, Report};
use crate::sink::local::LocalDir;
use crate::sys;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Run a subcommand and return the process exit status.
pub fn run(command: Command) -> i32 {
    match command {
        Command::Run(c) => run_command(c),
        Command::Collect(c) => collect(c),
        Command::Pattern(c) => pattern(c),
        Command::Bt(c) => bt(c),
        Command::Doctor => doctor(),
        Command::Canary => std::process::abort(),
        Command::Upload(c) => upload_dir(c),
        Command::Fetch(c) => crate::fetch::run(c),
    }
}

/// `--to`: upload the artifacts directory once this run stored something. Returns false when
/// an object did not make it (already reported on stderr).
fn upload_if_asked(cfg: &ArtifactConfig, stored: usize) -> bool {
    match &cfg.upload {
        Some(up) if stored > 0 => upload(&cfg.out, up, cfg.quiet),
        _ => true,
    }
}

fn upload(dir: &Path, up: &crate::config::UploadConfig, quiet: bool) -> bool {
    let mut options = up.options.clone();
    options.progress = !quiet;
    let outcome = crate::sink::upload_artifacts(dir, &up.target, &options);
    let _ = crate::sink::write_upload_summary(
        &outcome,
        &up.target,
        dir,
        quiet,
        &mut std::io::stderr().lock(),
    );
    outcome.complete()
}

/// `corecatch upload DIR --to s3://…`.
fn upload_dir(cfg: crate::config::UploadDirConfig) -> i32 {
    if !cfg.dir.is_dir() {
        warn(format!("{} is not a directory", cfg.dir.display()));
        return exit_code::INCOMPLETE;
    }
    if upload(&cfg.dir, &cfg.upload, cfg.quiet) {
        exit_code::OK
    } else {
        exit_code::INCOMPLETE
    }
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("corecatch: {msg}");
}

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

/// Kernel file timestamps come from a coarse clock that can lag the precise one by a tick, so a
/// core written just after the start can carry an earlier time. Attribution by run token is what
/// keeps other processes' cores out; this only bounds the window.
/// Signals whose default action dumps core (signal(7)): QUIT ILL TRAP ABRT BUS FPE SEGV XCPU
/// XFSZ SYS.
const CORE_SIGNALS: [i32; 10] = [3, 4, 5, 6, 7, 8, 11, 24, 25, 31];

const CLOCK_SLACK: Duration = Duration::from_secs(1);

fn run_command(cfg: RunConfig) -> i32 {
    let started = SystemTime::now();
    let raised = sys::rlimit::raise();
    if let Some(p) = &raised.problem {
        warn(p);
    }
    let settings = sys::kernel::read_settings();
    let token = run_token();
    let env = [(locate::TOKEN_VAR.to_string(), token.clone())];
    let choice = choose_capture(cfg.capture, settings.as_ref().ok(), &raised);
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
        Method::Handler(_) => coredump_store::list(Path::new(crate::systemd_coredump::STORE_DIR))
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect(),
        _ => Vec::new(),
    };
    let spawned = match choice.method {
        Method::Ptrace => sys::ptrace::run(&cfg.argv, &env, &cfg.artifacts.out),
        _ => sys::spawn::run(&cfg.argv, &env).map(|outcome| sys::ptrace::TracedRun {
            outcome,
            captured: Vec::new(),
            traced: false,
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
    let dumped: Vec<i32> = std::iter::once((outcome.pid, outcome.ended))
        .chain(outcome.reaped.iter().copied())
        .filter(|(_, e)| match *e {
            // The core bit is not set when a pipe handler fails, so judge by the signal too.
            sys::spawn::Ended::Signaled {
                signal,
                core_dumped,
            } => core_dumped || CORE_SIGNALS.contains(&signal),
            sys::spawn::Ended::Exited(_) => false,
        })
        .map(|(p, _)| p)
        .collect();

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
            let (found, _) = locate::scan(
                &plan.root,
                plan.recursive,
                &|rel| plan.matches(rel),
                std::slice::from_ref(&cfg.artifacts.out),
            );
            cores.extend(
                found
                    .into_iter()
                    .filter(|f| locate::written_since(f, since)),
            );
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
    if done.stored == 0 && !dumped.is_empty() && done.failed == 0 {
        warn(format!(
            "pid {} dumped core but no core file of this run was found ({}); RLIMIT_CORE soft {}",
            dumped
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            describe(),
            sys::rlimit::CoreLimit::show(raised.after.soft),
        ));
    }
    status
}

/// How `run` gets the cores of crashing processes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Method {
    /// The kernel writes them where core_pattern says.
    Kernel,
    /// systemd-coredump stores them; corecatch reads them back when the command has ended.
    Handler(coredump_store::Reach),
    /// corecatch traces the command and writes them itself.
    Ptrace,
}

/// The capture method and why it was chosen (printed unless `--quiet`).
#[derive(Debug, Clone)]
struct Choice {
    method: Method,
    why: Option<String>,
}

fn is_systemd_coredump(pattern: &CorePattern) -> bool {
    matches!(&pattern.kind, crate::core_pattern::PatternKind::Pipe(p)
        if p.handler == crate::core_pattern::KnownHandler::SystemdCoredump)
}

/// How `run` should capture. Auto prefers kernel cores, then the cores systemd-coredump stores
/// where they will reach us, and picks ptrace only where neither would: programs that trace
/// themselves (sanitizers, gdb in a test) cannot run under a tracer.
fn choose_capture(
    capture: Capture,
    settings: Option<&sys::kernel::KernelSettings>,
    raised: &sys::rlimit::Raised,
) -> Choice {
    let ptrace = |why: String| Choice {
        method: Method::Ptrace,
        why: Some(why),
    };
    let pattern = settings.map(|s| CorePattern::parse(&s.core_pattern, s.core_uses_pid));
    match capture {
        Capture::Kernel => {
            return Choice {
                method: Method::Kernel,
                why: None,
            }
        }
        Capture::Ptrace => return ptrace("--capture ptrace".into()),
        Capture::Handler => {
            return match pattern.as_ref().filter(|p| is_systemd_coredump(p)) {
                Some(_) => match coredump_store::reach() {
                    Ok(reach) => Choice {
                        why: Some(format!("--capture handler: {}", handler_words(&reach))),
                        method: Method::Handler(reach),
                    },
                    Err(why) => Choice {
                        method: Method::Handler(coredump_store::Reach::Store),
                        why: Some(format!(
                            "--capture handler, although {why}; corecatch waits for \
                             systemd-coredump's store anyway"
                        )),
                    },
                },
                None => Choice {
                    method: Method::Kernel,
                    why: Some(format!(
                        "--capture handler: core_pattern does not pipe to systemd-coredump ({}); \
                         looking for kernel cores instead",
                        pattern
                            .as_ref()
                            .map_or("core_pattern unreadable".into(), CorePattern::describe)
                    )),
                },
            };
        }
        Capture::Auto => {}
    }
    let Some(pattern) = pattern else {
        return ptrace("core_pattern cannot be read".into());
    };
    if raised.before.hard == Some(0) || raised.after.soft == Some(0) {
        // A hard limit of 0 is how containers and CI images turn kernel cores off; corecatch
        // does not count on overriding it (and systemd-coredump drops a core whose %c is 0).
        return ptrace("the hard RLIMIT_CORE is 0".into());
    }
    let Some(file) = pattern.file() else {
        if is_systemd_coredump(&pattern) {
            return match coredump_store::reach() {
                Ok(reach) => Choice {
                    why: Some(format!(
                        "core_pattern pipes cores to systemd-coredump, {}",
                        handler_words(&reach)
                    )),
                    method: Method::Handler(reach),
                },
                Err(why) => ptrace(format!(
                    "core_pattern pipes cores to systemd-coredump, but {why}"
                )),
            };
        }
        return ptrace(format!(
            "kernel cores do not reach corecatch ({})",
            pattern.describe()
        ));
    };
    let dir = match file.static_dir() {
        Some(d) => d,
        None if file.absolute => {
            return Choice {
                method: Method::Kernel,
                why: None,
            }
        }
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    if !(dir.is_dir() && sys::kernel::dir_writable(&dir)) {
        return ptrace(format!(
            "core_pattern writes cores to {}, which does not exist or is not writable",
            dir.display()
        ));
    }
    Choice {
        method: Method::Kernel,
        why: None,
    }
}

fn handler_words(reach: &coredump_store::Reach) -> String {
    match reach {
        coredump_store::Reach::Store => format!(
            "which stores them in {}",
            crate::systemd_coredump::STORE_DIR
        ),
        coredump_store::Reach::Coredumpctl => {
            "which keeps them where `coredumpctl dump` reads them".into()
        }
    }
}

/// systemd-coredump's cores of this run as temporary core files in `out`, each with where it
/// came from. Waits (bounded) for the store: systemd-coredump writes after the process is gone.
/// Known crashed pids the store lacks are asked of `coredumpctl`. Problems are printed.
fn handler_cores(
    reach: &coredump_store::Reach,
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
    let limit = coredump_store::wait_limit();
    let mut waited = Duration::ZERO;
    if *reach == coredump_store::Reach::Store {
        let uid = sys::kernel::real_uid();
        let w = coredump_store::wait_for_run(dumped, uid, started, before, limit);
        waited = w.waited;
        if let Some(e) = &w.error {
            warn(e);
        }
        for e in &w.entries {
            match coredump_store::extract(&e.path, &e.name.compression, out) {
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
    if !missing.is_empty() && *reach == coredump_store::Reach::Coredumpctl {
        let t = std::time::Instant::now();
        if coredump_store::wait_for_helpers(limit) {
            warn(format!(
                "systemd-coredump was still at work after {:.1} s; CORECATCH_HANDLER_WAIT=SECS \
                 waits longer",
                limit.as_secs_f64()
            ));
        }
        waited = t.elapsed();
    }
    if !missing.is_empty()
        && (*reach == coredump_store::Reach::Coredumpctl
            || coredump_store::coredumpctl_usable().is_ok())
    {
        let since = started.checked_sub(CLOCK_SLACK).unwrap_or(started);
        for pid in missing.clone() {
            match coredump_store::coredumpctl_dump(pid, since, out) {
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
        match locate::check_file(&c.path) {
            Ok(f) => found.push(f),
            Err(why) => warn(format!("{}: {why}", c.path.display())),
        }
    }
    found
}

/// A random token naming this run, put in CMD's environment.
fn run_token() -> String {
    use std::hash::{BuildHasher, Hasher};
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

fn collect(cfg: CollectConfig) -> i32 {
    let started = SystemTime::now();
    let settings = sys::kernel::read_settings();
    let pattern_text = settings
        .as_ref()
        .map(|s| s.core_pattern.clone())
        .unwrap_or_default();
    let mut cores = Vec::new();
    let mut skipped = Vec::new();
    let mut store_entries = Vec::new();
    let mut store_failed = 0usize;
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
                let (f, s) = locate::scan(
                    &plan.root,
                    plan.recursive,
                    &|rel| plan.matches(rel),
                    exclude,
                );
                cores.extend(f);
                skipped.extend(s);
            }
            None if is_apport(&pattern) => {
                // apport keeps reports, with the core inside, in /var/crash.
                let dir = Path::new(APPORT_DIR);
                let (_, s) = locate::scan(dir, false, &|rel| is_crash_report_name(rel), exclude);
                skipped.extend(s);
            }
            None if is_systemd_coredump(&pattern) => {
                // systemd-coredump keeps every core it stored in its store, whatever its
                // compression; they are read from there (its files are left as they are).
                let dir = Path::new(crate::systemd_coredump::STORE_DIR);
                match coredump_store::list(dir) {
                    Ok(entries) => store_entries.extend(entries),
                    Err(e) => {
                        warn(format!("cannot list {}: {e}", dir.display()));
                        store_failed += 1;
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
                let (f, s) = locate::scan(p, true, &|_| true, exclude);
                cores.extend(f);
                // In a directory, only files that look like cores or apport reports by name
                // are worth a note.
                skipped
                    .extend(s.into_iter().filter(|s| {
                        looks_like_core_name(&s.path) || is_crash_report_name(&s.path)
                    }));
            } else {
                match locate::check_file(p) {
                    Ok(f) => cores.push(f),
                    Err(why) => skipped.push(locate::Skipped {
                        path: p.clone(),
                        why,
                    }),
                }
            }
        }
    }
    // Compressed systemd-coredump store entries among the non-cores (named, or in a directory).
    let (named_entries, skipped): (Vec<_>, Vec<_>) = skipped.into_iter().partition(|s| {
        s.path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(crate::systemd_coredump::parse_store_name)
            .is_some()
    });
    store_entries.extend(named_entries.into_iter().filter_map(|s| {
        let name = crate::systemd_coredump::parse_store_name(s.path.file_name()?.to_str()?)?;
        Some(coredump_store::Entry { path: s.path, name })
    }));
    let mut origins = Vec::new();
    for e in &store_entries {
        match coredump_store::extract(&e.path, &e.name.compression, &cfg.artifacts.out) {
            Ok(found) => {
                if !cfg.artifacts.quiet {
                    warn(format!(
                        "read the core of pid {} from systemd-coredump's {}",
                        e.name.pid,
                        e.path.display()
                    ));
                }
                origins.push((found.path.clone(), origin("systemd-coredump", &e.path)));
                cores.push(found);
            }
            Err(err) => {
                warn(format!(
                    "skipped {}; the file is left as it is",
                    chain(&err)
                ));
                store_failed += 1;
            }
        }
    }
    // apport reports among the non-cores: their CoreDump becomes a core file to process.
    let apport = extract_apport_cores(skipped, &cfg.artifacts.out);
    let (extracted, failed_reports) = (apport.extracted, apport.failed.len());
    for s in apport.not_reports.iter().chain(&apport.failed) {
        warn(format!("skipped {}: {}", s.path.display(), s.why));
    }
    for (found, report) in &extracted {
        if !cfg.artifacts.quiet {
            warn(format!(
                "took the core out of apport's report {}",
                report.display()
            ));
        }
        origins.push((found.path.clone(), origin("apport", report)));
        cores.push(found.clone());
    }
    let failed_reports = failed_reports + store_failed;
    if cores.is_empty() {
        if !cfg.artifacts.quiet {
            warn("no core files found");
        }
        write_ci_reports(&cfg.artifacts, &[]);
        return if failed_reports > 0 {
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
    let done = process_cores(&cores, &cfg.artifacts, &ctx, None, &origins);
    // The extracted cores are ours; the reports and store entries they came from stay as apport
    // and systemd-coredump left them.
    for (temp, _) in &origins {
        let _ = std::fs::remove_file(temp);
    }
    write_ci_reports(&cfg.artifacts, &done.reports);
    let uploaded = upload_if_asked(&cfg.artifacts, done.stored);
    if done.failed > 0 || failed_reports > 0 || !uploaded {
        exit_code::INCOMPLETE
    } else {
        exit_code::OK
    }
}

fn looks_like_core_name(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "core" || n.starts_with("core.") || n.ends_with(".core"))
}

/// Facts about the run recorded in the manifest.
struct RunContext {
    command: Vec<String>,
    exit_status: Option<i32>,
    started: SystemTime,
    ended: SystemTime,
    core_pattern: String,
}

struct Attribution<'a> {
    token: &'a str,
    known_pids: &'a [i32],
}

#[derive(Default)]
struct Done {
    stored: usize,
    failed: usize,
    /// Every crash reported, stored or not.
    reports: Vec<Report>,
}

/// The reports CI systems display, written after the cores are processed: JUnit XML (also with
/// no crash: an empty suite keeps CI's test-results step from failing for want of a file) and
/// GitHub Actions annotations and summary. A failure is reported and changes nothing else.
fn write_ci_reports(cfg: &ArtifactConfig, reports: &[Report]) {
    if let Some(path) = &cfg.junit {
        let mut xml = Vec::new();
        let written =
            crate::report::junit::write(reports, &mut xml).and_then(|_| std::fs::write(path, &xml));
        if let Err(e) = written {
            warn(format!("cannot write JUnit file {}: {e}", path.display()));
        }
    }
    if let (Some(gh), false) = (&cfg.github, reports.is_empty()) {
        let mut out = std::io::stdout().lock();
        let _ = crate::report::github::write_annotations(reports, &gh.workspace, &mut out);
        if let Some(path) = &gh.summary {
            let mut md = Vec::new();
            let written = crate::report::github::write_summary(reports, &mut md).and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?
                    .write_all(&md)
            });
            if let Err(e) = written {
                warn(format!("cannot append to {}: {e}", path.display()));
            }
        }
    }
}

/// Largest source file read for the HTML report's context lines.
const MAX_SOURCE_BYTES: u64 = 4 << 20;
/// Most source files read for one HTML report.
const MAX_SOURCE_FILES: usize = 64;

/// `index.html` in the artifacts directory, with source lines around each frame whose file is
/// on this machine.
fn write_html(
    dir: &LocalDir,
    crashes: &[(Report, Option<String>)],
) -> Result<ManifestEntry, String> {
    use crate::report::html;
    // Per file, the range of lines any frame needs.
    let mut wanted: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
    for (r, _) in crashes {
        for f in r.threads.iter().flat_map(|t| &t.frames) {
            if let (Some(file), Some(line)) = (&f.file, f.line) {
                let e = wanted.entry(file.clone()).or_insert((line, line));
                e.0 = e.0.min(line);
                e.1 = e.1.max(line);
            }
        }
    }
    let mut sources = html::Sources::new();
    for (file, (lo, hi)) in wanted.into_iter().take(MAX_SOURCE_FILES) {
        let fits =
            std::fs::metadata(&file).is_ok_and(|m| m.is_file() && m.len() <= MAX_SOURCE_BYTES);
        let Some(text) = fits.then(|| std::fs::read(&file).ok()).flatten() else {
            continue;
        };
        let first = lo.saturating_sub(html::CONTEXT).max(1);
        let lines: Vec<String> = String::from_utf8_lossy(&text)
            .lines()
            .skip(first as usize - 1)
            .take((hi + html::CONTEXT + 1 - first) as usize)
            .map(str::to_string)
            .collect();
        sources.insert(file, (first, lines));
    }
    let entries: Vec<html::Entry<'_>> = crashes
        .iter()
        .map(|(report, stem)| html::Entry {
            report,
            stem: stem.as_deref(),
        })
        .collect();
    let mut page = Vec::new();
    html::write(&entries, &sources, &mut page).map_err(|e| e.to_string())?;
    let a = dir
        .write_atomic("index.html", &page)
        .map_err(|e| chain(&e))?;
    Ok(ManifestEntry::new(&a, "report.html", None))
}

/// Where a core handed over by a pipe handler came from, for the report.
fn origin(handler: &str, path: &Path) -> crate::report::CoreOrigin {
    crate::report::CoreOrigin {
        handler: handler.into(),
        path: path.display().to_string(),
    }
}

/// Report, compress and store each core; then write the manifest and the summary. `origins`
/// names the handler file of cores that are temporary copies.
fn process_cores(
    cores: &[Found],
    cfg: &ArtifactConfig,
    ctx: &RunContext,
    attribution: Option<&Attribution<'_>>,
    origins: &[(PathBuf, crate::report::CoreOrigin)],
) -> Done {
    let mut done = Done::default();
    if cores.is_empty() {
        return done;
    }
    let mut summaries = Vec::new();
    let mut entries = Vec::new();
    let mut dir: Option<LocalDir> = None;
    for found in cores {
        let path = &found.path;
        let mapped = match MappedCore::open(path) {
            Ok(m) => m,
            Err(e) => {
                warn(chain(&e));
                done.failed += 1;
                continue;
            }
        };
        let core = match crate::elf_core::parse(mapped.bytes()) {
            Ok(c) => c,
            Err(e) => {
                warn(format!("skipped {}: {e}", path.display()));
                continue;
            }
        };
        let origin = origins.iter().find(|(p, _)| p == path).map(|(_, o)| o);
        if let Some(a) = attribution {
            if let Err(why) = locate::attribute(&core, a.token, a.known_pids) {
                match origin {
                    Some(o) => warn(format!("left {}'s {} alone: {why}", o.handler, o.path)),
                    None => warn(format!("left {} alone: {why}", path.display())),
                }
                continue;
            }
        }
        let mut report = build_report(&core, path, &cfg.symbols);
        report.core.from = origin.cloned();
        drop(core);
        drop(mapped);

        let d = match &dir {
            Some(d) => d,
            None => match LocalDir::open(&cfg.out) {
                Ok(d) => dir.insert(d),
                Err(e) => {
                    warn(format!(
                        "{}; the core stays at {}",
                        chain(&e),
                        path.display()
                    ));
                    print_report_to_stderr(&report, cfg.quiet, None);
                    done.failed += 1;
                    continue;
                }
            },
        };
        match store_core(d, path, &report, cfg.keep_cores, cfg.quiet) {
            Ok((stem, mut new_entries)) => {
                done.stored += 1;
                entries.append(&mut new_entries);
                summaries.push((report, Some(stem)));
            }
            Err(e) => {
                warn(format!("{e}; the core stays at {}", path.display()));
                done.failed += 1;
                summaries.push((report, None));
            }
        }
    }
    if let Some(d) = &dir {
        if !summaries.is_empty() {
            match write_html(d, &summaries) {
                Ok(e) => entries.push(e),
                Err(e) => warn(format!("cannot write the HTML report: {e}")),
            }
        }
        if !entries.is_empty() {
            let mut m = Manifest::new(
                ctx.command.clone(),
                ctx.started,
                ctx.ended,
                sys::kernel::hostname(),
                ctx.core_pattern.clone(),
            );
            m.exit_status = ctx.exit_status;
            m.artifacts = entries;
            if let Err(e) = manifest::write(d.root(), &m) {
                warn(chain(&e));
            }
        }
    }
    for (report, stem) in &summaries {
        let gz = stem.as_ref().map(|s| cfg.out.join(format!("{s}.core.gz")));
        print_report_to_stderr(report, cfg.quiet, gz.as_deref());
    }
    done.reports = summaries.into_iter().map(|(r, _)| r).collect();
    done
}

fn print_report_to_stderr(report: &Report, quiet: bool, gz: Option<&Path>) {
    if quiet {
        return;
    }
    let stored = gz.map(|p| {
        let s = p.display().to_string();
        format!("{}.{{core.gz,json,txt}}", s.trim_end_matches(".core.gz"))
    });
    let _ = text::write_summary(report, &mut std::io::stderr().lock(), stored.as_deref());
}

/// The report of one core: what its notes say, then every thread unwound and symbolized, within
/// the configured time limit.
fn build_report(
    core: &crate::elf_core::Core<'_>,
    path: &Path,
    symbols: &crate::config::SymbolConfig,
) -> Report {
    let mut report = Report::from_core(core, &path.display().to_string());
    let opts = crate::backtrace::Options {
        debug_dirs: symbols.debug_dirs.clone(),
        sysroot: symbols.sysroot.clone(),
        exe_override: symbols.exe.clone(),
        max_frames: symbols.max_frames,
        deadline: std::time::Instant::now().checked_add(symbols.timeout),
    };
    report.add_backtraces(crate::backtrace::backtrace(core, &opts));
    report
}

/// Write `<stem>.json`, `<stem>.txt`, then `<stem>.core.gz` (verified), then remove the raw core
/// unless asked to keep it.
fn store_core(
    dir: &LocalDir,
    core_path: &Path,
    report: &Report,
    keep: bool,
    quiet: bool,
) -> Result<(String, Vec<ManifestEntry>), String> {
    let stem = dir
        .unique_stem(&crate::sink::safe_stem(
            report.process.pid.unwrap_or(0),
            report.process.executable.as_deref().unwrap_or("unknown"),
        ))
        .map_err(|e| chain(&e))?;
    let pid = report.process.pid;
    let mut json = Vec::new();
    let mut txt = Vec::new();
    report
        .write_json(&mut json)
        .and_then(|_| text::write(report, &mut txt, text::Threads::All))
        .map_err(|e| format!("cannot render the report: {e}"))?;
    let mut entries = Vec::new();
    for (name, bytes, kind) in [
        (format!("{stem}.json"), &json, manifest::kind::REPORT_JSON),
        (format!("{stem}.txt"), &txt, manifest::kind::REPORT_TXT),
    ] {
        let a = dir.write_atomic(&name, bytes).map_err(|e| chain(&e))?;
        entries.push(ManifestEntry::new(&a, kind, pid));
    }
    let mut progress = crate::progress::Progress::start(&format!("compressing {stem}"), quiet);
    let packed = crate::pack::compress_with_progress(
        core_path,
        &dir.path_of(&format!("{stem}.core.gz")),
        &mut |done, total| progress.update(done, total),
    );
    progress.finish();
    let packed = packed.map_err(|e| chain(&e))?;
    let a = dir.register_packed(&packed).map_err(|e| chain(&e))?;
    entries.push(ManifestEntry::new(&a, manifest::kind::CORE_GZ, pid));
    if !keep {
        if let Err(e) = crate::pack::remove_original(core_path, &packed) {
            warn(chain(&e));
        }
    }
    Ok((stem, entries))
}

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

fn pattern(cfg: PatternConfig) -> i32 {
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

fn bt(cfg: BtConfig) -> i32 {
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
    let report = build_report(&core, &cfg.core, &cfg.symbols);
    let mut out = std::io::stdout().lock();
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

/// One canary crash under `corecatch run --capture METHOD`: whether its core came back.
fn canary(method: &str) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find corecatch itself: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("corecatch-doctor-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let out = dir.path().join("out");
    let o = std::process::Command::new(&exe)
        .args(["run", "--quiet", "--capture", method, "--out"])
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .arg("__canary")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the canary: {e}"))?;
    if o.status.code() != Some(128 + 6) {
        return Err(format!(
            "the canary should die of SIGABRT (134) but corecatch exited with {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let got = std::fs::read_dir(&out)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".core.gz"))
        })
        .unwrap_or(false);
    if !got {
        let err = String::from_utf8_lossy(&o.stderr);
        if method == "handler" {
            if let Some(line) = err.lines().find(|l| l.contains("systemd-coredump")) {
                return Err(line.trim_start_matches("corecatch: ").to_string());
            }
        }
        if method == "ptrace" && err.contains("cannot trace") {
            return Err(
                "ptrace is not permitted here (in a container: --cap-add=SYS_PTRACE or \
                        a seccomp profile that allows ptrace; kernel.yama.ptrace_scope <= 1)"
                    .into(),
            );
        }
    }
    Ok(got)
}

/// `corecatch doctor`: crash canaries under the current settings and say what happens.
fn doctor() -> i32 {
    let raised = sys::rlimit::raise();
    let settings = sys::kernel::read_settings().ok();
    let pattern = settings
        .as_ref()
        .map(|s| CorePattern::parse(&s.core_pattern, s.core_uses_pid));
    println!(
        "core_pattern:  {}",
        settings
            .as_ref()
            .map_or("(unreadable)".into(), |s| s.core_pattern.clone())
    );
    if let Some(p) = &pattern {
        println!("meaning:       {}", p.describe());
    }
    println!(
        "RLIMIT_CORE:   soft {}, hard {} (corecatch raises it to soft {}, hard {})",
        sys::rlimit::CoreLimit::show(raised.before.soft),
        sys::rlimit::CoreLimit::show(raised.before.hard),
        sys::rlimit::CoreLimit::show(raised.after.soft),
        sys::rlimit::CoreLimit::show(raised.after.hard),
    );
    let auto = choose_capture(Capture::Auto, settings.as_ref(), &raised);
    let mut lines = Vec::new();
    let mut ok = |method: &str, result: Result<bool, String>| match result {
        Ok(true) => {
            lines.push(format!("{method:7} a crash's core reaches corecatch"));
            true
        }
        Ok(false) => {
            lines.push(format!("{method:7} no core reached corecatch"));
            false
        }
        Err(why) => {
            lines.push(format!("{method:7} no core: {why}"));
            false
        }
    };
    let kernel = ok("kernel", canary("kernel"));
    // Under a systemd-coredump pipe, a canary goes through its store as `run` would take it.
    let handler = match pattern.as_ref().filter(|p| is_systemd_coredump(p)) {
        None => false,
        Some(_) => ok(
            "handler",
            coredump_store::reach().and_then(|_| canary("handler")),
        ),
    };
    let ptrace = ok("ptrace", canary("ptrace"));
    for l in &lines {
        println!("{l}");
    }
    let auto_ok = match &auto.method {
        Method::Kernel => kernel,
        Method::Handler(_) => handler,
        Method::Ptrace => ptrace,
    };
    let why = auto.why.as_deref().unwrap_or("");
    match &auto.method {
        Method::Kernel => println!("auto:   uses kernel cores"),
        Method::Handler(_) => println!("auto:   uses systemd-coredump's store ({why})"),
        Method::Ptrace => println!("auto:   uses ptrace ({why})"),
    }
    if !kernel {
        println!("to get kernel cores:");
        for fix in kernel_fixes(pattern.as_ref(), &raised) {
            println!("  {fix}");
        }
    }
    if auto_ok {
        println!("cores will be captured");
        exit_code::OK
    } else {
        println!("cores will NOT be captured by `corecatch run`");
        exit_code::NO_CAPTURE
    }
}

/// What to change so the kernel's cores reach corecatch.
fn kernel_fixes(pattern: Option<&CorePattern>, raised: &sys::rlimit::Raised) -> Vec<String> {
    let mut v = Vec::new();
    if raised.before.hard == Some(0) || raised.after.soft == Some(0) {
        v.push(
            "the hard RLIMIT_CORE is 0: `ulimit -Hc unlimited` as root before corecatch, or \
             `docker run --ulimit core=-1`"
                .into(),
        );
    }
    match pattern.map(|p| (p, p.file())) {
        None => v.push("core_pattern is unreadable: is /proc mounted?".into()),
        Some((p, None)) => v.push(format!(
            "core_pattern does not write files ({}): `sysctl -w kernel.core_pattern=core` \
             (on the host: in a container core_pattern is the host's and read-only), or keep it \
             and let corecatch capture with ptrace",
            p.describe()
        )),
        Some((_, Some(f))) => {
            if let Some(d) = f.static_dir() {
                if !(d.is_dir() && sys::kernel::dir_writable(&d)) {
                    v.push(format!(
                        "{} must exist and be writable: `mkdir -p {0} && chmod 1777 {0}`",
                        d.display()
                    ));
                }
            }
        }
    }
    if v.is_empty() {
        v.push("fs.suid_dumpable, a seccomp or LSM policy, or a full disk may be the cause".into());
    }
    v
}

/// Where apport writes its reports.
const APPORT_DIR: &str = "/var/crash";
fn is_apport(pattern: &CorePattern) -> bool {
    matches!(&pattern.kind, crate::core_pattern::PatternKind::Pipe(p)
        if p.handler == crate::core_pattern::KnownHandler::Apport)
}

fn is_crash_report_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "crash")
}

/// What [`extract_apport_cores`] made of the files that are not ELF cores.
struct ApportCores {
    /// Each extracted core (a temporary file in the artifacts dir) and the report it came from.
    extracted: Vec<(locate::Found, PathBuf)>,
    /// apport reports without a usable core, with the reason.
    failed: Vec<locate::Skipped>,
    /// Files that are not apport reports either, as they were skipped.
    not_reports: Vec<locate::Skipped>,
}

/// Takes the core out of every apport report among `skipped` (files that are not ELF cores)
/// into a temporary file in `out`.
fn extract_apport_cores(skipped: Vec<locate::Skipped>, out: &Path) -> ApportCores {
    let mut r = ApportCores {
        extracted: Vec::new(),
        failed: Vec::new(),
        not_reports: Vec::new(),
    };
    for s in skipped {
        let mut head = [0u8; 16];
        let is_report = std::fs::File::open(&s.path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .is_ok_and(|n| crate::apport::looks_like_report(&head[..n]));
        if !is_report {
            r.not_reports.push(s);
            continue;
        }
        match extract_one_apport_core(&s.path, out) {
            Ok(found) => r.extracted.push((found, s.path)),
            Err(why) => r.failed.push(locate::Skipped {
                path: s.path,
                why: format!("apport report: {why}"),
            }),
        }
    }
    r
}

fn extract_one_apport_core(report: &Path, out: &Path) -> Result<locate::Found, String> {
    let mapped = crate::core_file::MappedCore::open(report).map_err(|e| chain(&e))?;
    let bytes = mapped.bytes();
    if !crate::apport::report_fields(bytes).has_core {
        return Err("no CoreDump field (apport keeps cores only for some crashes)".into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let name = report
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = out.join(format!("{}apport-{name}.core", crate::pack::TEMP_PREFIX));
    let result = std::fs::File::create(&dest)
        .map_err(|e| format!("cannot create {}: {e}", dest.display()))
        .and_then(|f| {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let n = crate::apport::extract_core(bytes, &mut w).map_err(|e| chain(&e))?;
            std::io::Write::flush(&mut w)
                .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
            Ok(n)
        })
        .and_then(|_| locate::check_file(&dest).map_err(|e| format!("CoreDump: {e}")));
    if result.is_err() {
        let _ = std::fs::remove_file(&dest);
    }
    result
}
