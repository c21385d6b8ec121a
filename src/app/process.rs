//! The per-core pipeline `run` and `collect` share: map and parse each core, check it is this
//! run's, scrub it when asked (`super::scrub`), build its report (registers, signal, process,
//! every thread unwound and symbolized), write `<stem>.json` and `<stem>.txt`, compress the core
//! into `<stem>.core.gz` (verified before the raw core goes), then the HTML page and the
//! manifest of the artifacts directory, the summary on stderr, and the reports CI systems
//! display (JUnit, GitHub). Under `--encrypt-reports` the reports, the page and the JUnit file
//! are written encrypted (`.age`) and the summary and GitHub's output name each crash without
//! its backtrace.

use crate::artifacts::encrypt::Recipient;
use crate::artifacts::manifest::{self, Manifest, ManifestEntry};
use crate::artifacts::pack::Codec;
use crate::artifacts::{Artifact, LocalDir};
use crate::backtrace::Locals;
use crate::config::ArtifactConfig;
use crate::error::{chain, warn};
use crate::report::{text, Report};
use crate::source::core_file::MappedCore;
use crate::source::{kernel, Found};
use crate::sys;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Facts about the run recorded in the manifest.
pub(super) struct RunContext {
    pub command: Vec<String>,
    pub exit_status: Option<i32>,
    pub started: SystemTime,
    pub ended: SystemTime,
    pub core_pattern: String,
}

pub(super) struct Attribution<'a> {
    pub token: &'a str,
    pub known_pids: &'a [i32],
}

#[derive(Default)]
pub(super) struct Done {
    pub stored: usize,
    pub failed: usize,
    /// Every crash reported, stored or not.
    pub reports: Vec<Report>,
    /// A SIGTERM, SIGINT or SIGHUP stopped the work before every core was stored.
    pub interrupted: bool,
}

/// The recipients the reports are encrypted to: `--encrypt-to`'s under `--encrypt-reports`,
/// else none (the reports stay plain).
fn report_recipients(cfg: &ArtifactConfig) -> &[Recipient] {
    if cfg.encrypt_reports {
        &cfg.store.recipients
    } else {
        &[]
    }
}

/// `bytes` as they are stored: encrypted to `to` (a whole age file), or as they are when `to`
/// is empty.
fn sealed<'a>(to: &[Recipient], bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    if to.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    crate::artifacts::encrypt::seal(to, bytes)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| chain(&e))
}

/// Writes the report `name` into `dir` (encrypted to `to` when there are recipients, `.age`
/// added to the name by the caller) and its manifest entry.
fn write_report(
    dir: &LocalDir,
    name: &str,
    bytes: &[u8],
    kind: &str,
    pid: Option<i32>,
    to: &[Recipient],
) -> Result<ManifestEntry, String> {
    let stored = sealed(to, bytes).map_err(|e| format!("{name}: {e}"))?;
    let a: Artifact = dir.write_atomic(name, &stored).map_err(|e| chain(&e))?;
    Ok(ManifestEntry::new(&a, kind, pid).encrypted(to))
}

/// The reports CI systems display, written after the cores are processed: JUnit XML (also with
/// no crash: an empty suite keeps CI's test-results step from failing for want of a file) and
/// GitHub Actions annotations and summary. A failure is reported and changes nothing else.
/// Under `--encrypt-reports` the JUnit file is `FILE.age`, encrypted, and GitHub gets each crash
/// named without its backtrace.
pub(super) fn write_ci_reports(cfg: &ArtifactConfig, reports: &[Report]) {
    let to = report_recipients(cfg);
    if let Some(path) = &cfg.junit {
        let path = match to.is_empty() {
            true => path.clone(),
            false => {
                let mut p = path.as_os_str().to_owned();
                p.push(".age");
                PathBuf::from(p)
            }
        };
        let mut xml = Vec::new();
        // Its directory may not exist yet (`--junit test-results/corecatch.xml` in a job that
        // had no crash, so nothing else made it): made here, as CI's test-results step wants it.
        let written = crate::report::junit::write(reports, &mut xml)
            .map_err(|e| e.to_string())
            .and_then(|_| sealed(to, &xml))
            .and_then(|stored| {
                match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
                    _ => Ok(()),
                }
                .and_then(|_| std::fs::write(&path, &stored))
                .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            warn(format!("cannot write JUnit file {}: {e}", path.display()));
        }
    }
    if let (Some(gh), false) = (&cfg.github, reports.is_empty()) {
        let mut out = std::io::stdout().lock();
        if !to.is_empty() {
            let _ = crate::report::github::write_sealed_annotations(reports, &cfg.out, &mut out);
        } else {
            let stop_token = format!("{}{}", super::random_token(), super::random_token());
            let _ = crate::report::github::write_annotations(
                reports,
                &gh.workspace,
                &stop_token,
                &mut out,
            );
        }
        if let Some(path) = &gh.summary {
            let mut md = Vec::new();
            let summary = match to.is_empty() {
                true => crate::report::github::write_summary(reports, &mut md),
                false => crate::report::github::write_sealed_summary(reports, &cfg.out, &mut md),
            };
            let written = summary.and_then(|_| {
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

/// Largest `<stem>.json` read back for the page.
const MAX_REPORT_BYTES: u64 = 64 << 20;

/// A report this or an earlier run stored as `path` (`<stem>.json`), read back without following
/// a symlink.
fn read_report(path: &Path) -> Result<Report, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() || meta.len() > MAX_REPORT_BYTES {
        return Err("not a regular file of at most 64 MiB".into());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("cannot parse: {e}"))
}

/// `index.html` in the artifacts directory: every crash `manifest` lists (each `<stem>.json` it
/// names: this run's from memory, earlier or concurrent runs' read back from the directory; an
/// earlier `<stem>.json.age` cannot be, and is named on stderr), then this run's crashes that
/// could not be stored, with source lines around each frame whose file is on this machine.
/// Encrypted to `to` as `index.html.age` when there are recipients (`--encrypt-reports`).
/// Called under the directory's lock with the merged manifest.
fn write_html(
    dir: &LocalDir,
    manifest: &Manifest,
    this_run: &[(Report, Option<String>)],
    to: &[Recipient],
) -> Result<ManifestEntry, String> {
    use crate::report::html;
    use std::borrow::Cow;
    // Each crash, its stem, and whether its reports are stored encrypted.
    let mut crashes: Vec<(Cow<'_, Report>, Option<&str>, bool)> = Vec::new();
    for e in &manifest.artifacts {
        let sealed = e.kind == manifest::kind::REPORT_JSON_AGE;
        let stem = match e.kind.as_str() {
            manifest::kind::REPORT_JSON => e.path.strip_suffix(".json"),
            manifest::kind::REPORT_JSON_AGE => e.path.strip_suffix(".json.age"),
            _ => None,
        };
        let Some(stem) = stem else {
            continue;
        };
        match this_run.iter().find(|(_, s)| s.as_deref() == Some(stem)) {
            Some((r, _)) => crashes.push((Cow::Borrowed(r), Some(stem), sealed)),
            None if sealed => warn(format!(
                "index.html leaves out {}: it is encrypted",
                dir.path_of(&e.path).display()
            )),
            None => {
                let path = dir.path_of(&e.path);
                match read_report(&path) {
                    Ok(r) => crashes.push((Cow::Owned(r), Some(stem), false)),
                    Err(why) => warn(format!("index.html leaves out {}: {why}", path.display())),
                }
            }
        }
    }
    crashes.extend(
        this_run
            .iter()
            .filter(|(_, s)| s.is_none())
            .map(|(r, _)| (Cow::Borrowed(r), None, false)),
    );
    // Per file, the range of lines any frame needs.
    let mut wanted: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
    for (r, _, _) in &crashes {
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
        // Lines `first..=hi + CONTEXT`, counted in u64: DWARF line numbers go up to u32::MAX.
        let first = lo.saturating_sub(html::CONTEXT).max(1);
        let count = u64::from(hi) + u64::from(html::CONTEXT) + 1 - u64::from(first);
        let lines: Vec<String> = String::from_utf8_lossy(&text)
            .lines()
            .skip(first as usize - 1)
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(str::to_string)
            .collect();
        sources.insert(file, (first, lines));
    }
    let cores_of = |stem: &str| -> Vec<&str> {
        manifest
            .artifacts
            .iter()
            .filter(|e| manifest::kind::is_core(&e.kind))
            .filter(|e| {
                e.path
                    .strip_prefix(stem)
                    .is_some_and(|r| r.starts_with(".core."))
            })
            .map(|e| e.path.as_str())
            .collect()
    };
    let entries: Vec<html::Entry<'_>> = crashes
        .iter()
        .map(|(report, stem, sealed)| html::Entry {
            report,
            stem: *stem,
            cores: stem.map(cores_of).unwrap_or_default(),
            sealed: *sealed,
        })
        .collect();
    let mut page = Vec::new();
    html::write(&entries, &sources, &mut page).map_err(|e| e.to_string())?;
    let (name, kind) = match to.is_empty() {
        true => ("index.html", manifest::kind::REPORT_HTML),
        false => ("index.html.age", manifest::kind::REPORT_HTML_AGE),
    };
    write_report(dir, name, &page, kind, None, to)
}

/// Report, compress and store each core; then write the manifest and the summary. `origins`
/// names the handler file of cores that are temporary copies.
pub(super) fn process_cores(
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
    // The command has ended: from here a SIGTERM, SIGINT or SIGHUP asks corecatch to stop
    // after what it can finish cleanly (see `interrupted` below) instead of killing it mid-write.
    if let Err(e) = sys::stop::install() {
        warn(format!("cannot handle SIGTERM, SIGINT and SIGHUP: {e}"));
    }
    let mut summaries = Vec::new();
    let mut stored_parts = std::collections::HashMap::new();
    let mut entries = Vec::new();
    let mut dir: Option<LocalDir> = None;
    // Cores left as they are because of a stop request: the one being packed, then the rest.
    let mut left: Vec<&Path> = Vec::new();
    for (i, found) in cores.iter().enumerate() {
        let path = &found.path;
        if sys::stop::requested() {
            done.interrupted = true;
            left.extend(cores[i..].iter().map(|f| f.path.as_path()));
            break;
        }
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
            if let Err(why) = kernel::attribute(&core, a.token, a.known_pids) {
                match origin {
                    Some(o) => warn(format!("left {}'s {} alone: {why}", o.handler, o.path)),
                    None => warn(format!("left {} alone: {why}", path.display())),
                }
                continue;
            }
        }
        // With --scrub-env/--scrub-args the core is scrubbed in place here, after attribution
        // (the run token is kept) and before anything reads a value from it.
        let make = |core: &crate::elf_core::Core<'_>| {
            build_report(core, path, &cfg.symbols, Locals::Crashed)
        };
        let report = if cfg.scrub.any() {
            let plan = super::scrub::plan(path, &core, mapped.bytes(), &cfg.scrub);
            drop(core);
            drop(mapped);
            super::scrub::scrub_and_report(path, &cfg.scrub, &plan, make)
        } else {
            let report = make(&core);
            drop(core);
            drop(mapped);
            Ok(report)
        };
        let mut report = match report {
            Ok(r) => r,
            Err(e) => {
                warn(format!(
                    "{e}; not stored, the core stays at {}",
                    path.display()
                ));
                done.failed += 1;
                continue;
            }
        };
        report.core.from = origin.cloned();

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
                    print_report_to_stderr(&report, cfg, None);
                    done.failed += 1;
                    continue;
                }
            },
        };
        match store_core(d, path, &report, cfg) {
            Ok((stem, mut new_entries)) => {
                done.stored += 1;
                let parts = new_entries
                    .iter()
                    .filter(|e| manifest::kind::is_core(&e.kind))
                    .count();
                stored_parts.insert(stem.clone(), parts);
                entries.append(&mut new_entries);
                summaries.push((report, Some(stem)));
            }
            Err(StoreError::Interrupted) => {
                done.interrupted = true;
                summaries.push((report, None));
                left.extend(cores[i..].iter().map(|f| f.path.as_path()));
                break;
            }
            Err(StoreError::Failed(e)) => {
                warn(format!("{e}; the core stays at {}", path.display()));
                done.failed += 1;
                summaries.push((report, None));
            }
        }
    }
    if let Some(d) = &dir {
        let stored: Vec<&Report> = summaries
            .iter()
            .filter(|(_, stem)| stem.is_some())
            .map(|(r, _)| r)
            .collect();
        if !done.interrupted {
            entries.extend(super::bundle::bundle_run(d, cfg, &stored));
        }
        if !summaries.is_empty() || !entries.is_empty() {
            let mut m = Manifest::new(
                super::scrub::command(&ctx.command, &cfg.scrub),
                ctx.started,
                ctx.ended,
                sys::kernel::hostname(),
                ctx.core_pattern.clone(),
            );
            m.exit_status = ctx.exit_status;
            m.artifacts = entries;
            // The page is rebuilt from the merged manifest, under the same lock.
            let page =
                |merged: &Manifest| match write_html(d, merged, &summaries, report_recipients(cfg))
                {
                    Ok(e) => Some(e),
                    Err(e) => {
                        warn(format!("cannot write the HTML report: {e}"));
                        None
                    }
                };
            if let Err(e) = manifest::write_with(d.root(), &m, page) {
                warn(chain(&e));
            }
        }
    }
    let age = if cfg.encrypt_reports { ".age" } else { "" };
    for (report, stem) in &summaries {
        let stored = stem.as_ref().map(|s| {
            let parts = stored_parts.get(s).copied().unwrap_or(1);
            let core = match parts {
                1 => stored_suffix(&cfg.store),
                n => format!("{}.000-{:03}", stored_suffix(&cfg.store), n - 1),
            };
            format!(
                "{}.{{{core},json{age},txt{age}}}",
                cfg.out.join(s).display()
            )
        });
        print_report_to_stderr(report, cfg, stored.as_deref());
    }
    if done.interrupted {
        let by = sys::stop::signal()
            .and_then(crate::report::signals::name)
            .unwrap_or("a signal");
        let kept: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        let stored = match done.stored {
            0 => "no core stored".to_string(),
            n => format!(
                "{n} core(s) stored in {} and listed in its manifest.json",
                cfg.out.display()
            ),
        };
        warn(format!(
            "interrupted by {by}: {stored}; not packed, left as they are: {}",
            kept.join(", ")
        ));
    }
    done.reports = summaries.into_iter().map(|(r, _)| r).collect();
    done
}

/// What a stored core's name adds to its stem: `core.gz`, `core.zst`, `core.gz.age`, …
fn stored_suffix(store: &crate::artifacts::pack::StoreOptions) -> String {
    let age = if store.recipients.is_empty() {
        ""
    } else {
        ".age"
    };
    format!("core.{}{age}", store.codec.suffix())
}

/// `stored`: where its files went (`out/core.1.x.{core.gz,json,txt}`). Under
/// `--encrypt-reports` the crash is named without its backtrace.
fn print_report_to_stderr(report: &Report, cfg: &ArtifactConfig, stored: Option<&str>) {
    if cfg.quiet {
        return;
    }
    // Stderr is unbuffered: one write per line would be thousands of writes for a deep stack.
    let mut err = std::io::BufWriter::with_capacity(64 << 10, std::io::stderr().lock());
    let written = if cfg.encrypt_reports {
        let open = match stored {
            Some(_) => format!("corecatch bt --identity KEY {}", cfg.out.display()),
            None => "the core was not stored".to_string(),
        };
        text::write_sealed_summary(report, &mut err, stored, &open)
    } else {
        text::write_summary(report, &mut err, stored)
    };
    let _ = written.and_then(|_| err.flush());
}

/// The report of one core: what its notes say, then every thread unwound and symbolized, within
/// the configured time limit; `locals`: whose locals are read without `--full`.
pub(super) fn build_report(
    core: &crate::elf_core::Core<'_>,
    path: &Path,
    symbols: &crate::config::SymbolConfig,
    locals: Locals,
) -> Report {
    let mut report = Report::from_core(core, &path.display().to_string());
    let opts = crate::backtrace::Options {
        debug_dirs: symbols.debug_dirs.clone(),
        sysroot: symbols.sysroot.clone(),
        object_dirs: symbols.object_dirs.clone(),
        exe_override: symbols.exe.clone(),
        max_frames: symbols.max_frames,
        deadline: std::time::Instant::now().checked_add(symbols.timeout),
        args: true,
        locals: if symbols.full { Locals::All } else { locals },
        fetcher: crate::remote::debuginfod_from_env(),
    };
    report.add_backtraces(crate::backtrace::backtrace(core, &opts));
    report
}

/// Why a core was not stored.
enum StoreError {
    /// A stop was requested while packing: the core's `.json` and `.txt` are removed again, the
    /// raw core is kept.
    Interrupted,
    /// Anything else, in words.
    Failed(String),
}

impl From<String> for StoreError {
    fn from(s: String) -> StoreError {
        StoreError::Failed(s)
    }
}

/// Write `<stem>.json`, `<stem>.txt` (`.json.age`, `.txt.age` under `--encrypt-reports`), then
/// `<stem>.core.gz` (verified), then remove the raw core unless asked to keep it.
fn store_core(
    dir: &LocalDir,
    core_path: &Path,
    report: &Report,
    cfg: &ArtifactConfig,
) -> Result<(String, Vec<ManifestEntry>), StoreError> {
    let (keep, quiet, store) = (cfg.keep_cores, cfg.quiet, &cfg.store);
    let stem = dir
        .unique_stem(&crate::artifacts::safe_stem(
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
    let to = report_recipients(cfg);
    let reports = match to.is_empty() {
        true => [
            (format!("{stem}.json"), &json, manifest::kind::REPORT_JSON),
            (format!("{stem}.txt"), &txt, manifest::kind::REPORT_TXT),
        ],
        false => [
            (
                format!("{stem}.json.age"),
                &json,
                manifest::kind::REPORT_JSON_AGE,
            ),
            (
                format!("{stem}.txt.age"),
                &txt,
                manifest::kind::REPORT_TXT_AGE,
            ),
        ],
    };
    for (name, bytes, kind) in reports {
        entries.push(write_report(dir, &name, bytes, kind, pid, to)?);
    }
    let mut progress = crate::progress::Progress::start(&format!("compressing {stem}"), quiet);
    let packed = crate::artifacts::pack::compress_with_progress(
        core_path,
        &dir.path_of(&format!("{stem}.{}", stored_suffix(store))),
        store,
        &mut |done, total| progress.update(done, total),
        &sys::stop::requested,
    );
    progress.finish();
    let packed = match packed {
        Ok(p) => p,
        Err(crate::artifacts::pack::PackError::Interrupted { .. }) => {
            // Not in any manifest: remove them rather than leave a crash half stored.
            for e in &entries {
                if let Err(err) = std::fs::remove_file(dir.path_of(&e.path)) {
                    warn(format!(
                        "cannot remove {}: {err}",
                        dir.path_of(&e.path).display()
                    ));
                }
            }
            return Err(StoreError::Interrupted);
        }
        Err(e) => return Err(chain(&e).into()),
    };
    let kind = match (packed.codec, packed.encrypted_to.is_empty()) {
        (Codec::Gzip, true) => manifest::kind::CORE_GZ,
        (Codec::Zstd { .. }, true) => manifest::kind::CORE_ZST,
        (Codec::Gzip, false) => manifest::kind::CORE_GZ_AGE,
        (Codec::Zstd { .. }, false) => manifest::kind::CORE_ZST_AGE,
    };
    for (i, a) in dir
        .register_packed(&packed)
        .map_err(|e| chain(&e))?
        .iter()
        .enumerate()
    {
        let mut e = ManifestEntry::new(a, kind, pid);
        e.core = Some(manifest::StoredCore::of(&packed, i));
        e.encrypted_to = packed.encrypted_to.clone();
        entries.push(e);
    }
    if !keep {
        if let Err(e) = crate::artifacts::pack::remove_original(core_path, &packed) {
            warn(chain(&e));
        }
    }
    Ok((stem, entries))
}
