//! The run's debug bundle, made after its cores are stored: the files their reports say were
//! read on this machine (objects whose build-id matched, their debug files) go into
//! `bundle.tar.gz` ([`crate::artifacts::bundle`]), encrypted as it is written to the cores'
//! recipients under `--encrypt-to` (`bundle.tar.gz.age`); what could not go in is named on
//! stderr and in the bundle's own manifest.

use crate::artifacts::bundle::{self, kind, Candidate, LeftOut};
use crate::artifacts::manifest::{self, ManifestEntry};
use crate::artifacts::LocalDir;
use crate::backtrace::ModuleStatus;
use crate::config::ArtifactConfig;
use crate::error::{chain, warn};
use crate::report::Report;
use std::path::PathBuf;

/// What the reports' modules offer: the files to bundle and those that cannot be.
fn candidates(reports: &[&Report]) -> (Vec<Candidate>, Vec<LeftOut>) {
    let mut files = Vec::new();
    let mut missing: Vec<LeftOut> = Vec::new();
    for m in reports.iter().flat_map(|r| &r.modules) {
        if m.path.starts_with('[') {
            continue; // [vdso]: in the core itself
        }
        let size = |p: &str| {
            std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        };
        let why = match (m.status, &m.file) {
            (Some(ModuleStatus::Loaded), Some(f)) => match size(f) {
                Some(bytes) => {
                    files.push(Candidate {
                        core_path: m.path.clone(),
                        kind: kind::OBJECT,
                        build_id: m.build_id.clone(),
                        source: PathBuf::from(f),
                        bytes,
                    });
                    None
                }
                None => Some(format!("{f} is gone")),
            },
            (Some(ModuleStatus::BuildIdMismatch), _) => Some(
                "the file on this machine has another build-id (rebuilt since the crash)".into(),
            ),
            (Some(ModuleStatus::NotFound), _) => Some("not found on this machine".into()),
            _ => None,
        };
        if let Some(why) = why {
            if !missing
                .iter()
                .any(|l| l.path == m.path && l.build_id == m.build_id)
            {
                missing.push(LeftOut {
                    path: m.path.clone(),
                    build_id: m.build_id.clone(),
                    why,
                });
            }
            continue;
        }
        if let Some(d) = &m.debug_file {
            if let Some(bytes) = size(d) {
                files.push(Candidate {
                    core_path: m.path.clone(),
                    kind: kind::DEBUG,
                    build_id: m.build_id.clone(),
                    source: PathBuf::from(d),
                    bytes,
                });
            }
        }
    }
    (files, missing)
}

/// Bundle the files of `reports` (the run's stored crashes) into `dir`, as `cfg` asks; the
/// manifest entry of the archive, or `None` (nothing to bundle, `--bundle never`, or a failure,
/// already reported: the cores and reports are stored either way).
pub(super) fn bundle_run(
    dir: &LocalDir,
    cfg: &ArtifactConfig,
    reports: &[&Report],
) -> Option<ManifestEntry> {
    if cfg.bundle == bundle::Mode::Never || reports.is_empty() {
        return None;
    }
    let (files, missing) = candidates(reports);
    let mut plan = bundle::plan(files, missing, cfg.bundle, cfg.bundle_max);
    for l in &plan.left_out {
        warn(format!(
            "the debug bundle leaves out {}{}: {}",
            l.path,
            l.build_id
                .as_deref()
                .map(|b| format!(" (build-id {b})"))
                .unwrap_or_default(),
            l.why
        ));
    }
    if let Some(store) = &cfg.bundle_store {
        into_store(&mut plan, store, cfg.quiet);
    }
    if plan.files.is_empty() && plan.referenced.is_empty() {
        return None;
    }
    let bytes = plan.bytes();
    let recipients = &cfg.store.recipients;
    match bundle::write(dir, plan, recipients) {
        Ok(w) => {
            let (kind, identity, what) = match recipients.is_empty() {
                true => (manifest::kind::BUNDLE, "", "compressed"),
                false => (
                    manifest::kind::BUNDLE_AGE,
                    "--identity KEY ",
                    "compressed and encrypted",
                ),
            };
            if !cfg.quiet {
                // `warn` is the one stderr helper (escaped, prefixed); this line is no warning.
                warn(format!(
                    "debug bundle {}: {} files, {} ({} {what}); open the crash with \
                     `corecatch debug {identity}{}`",
                    dir.path_of(&w.artifact.name).display(),
                    w.manifest.files.len(),
                    bundle::human(bytes),
                    bundle::human(w.artifact.bytes),
                    dir.root().display(),
                ));
            }
            Some(ManifestEntry::new(&w.artifact, kind, None).encrypted(recipients))
        }
        Err(e) => {
            warn(format!("no debug bundle: {}", chain(&e)));
            None
        }
    }
}

/// `--bundle-store`: move every planned file with a build-id into the store (uploaded unless
/// it is there already) and list it as a reference; a file the store did not take stays in the
/// archive, with a warning.
fn into_store(plan: &mut bundle::Plan, store: &crate::config::UploadConfig, quiet: bool) {
    let (with_id, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.files)
        .into_iter()
        .partition(|(c, _)| c.build_id.is_some());
    plan.files = rest;
    let names: Vec<(String, PathBuf)> = with_id
        .iter()
        .map(|(c, _)| (store_name(c), c.source.clone()))
        .collect();
    let results = match crate::remote::put_missing(&store.target, &names, &store.options) {
        Ok(r) => r,
        Err(e) => {
            warn(format!(
                "the build-id store {} cannot be used: {e}; the bundle holds the files itself",
                store.target
            ));
            plan.files.extend(with_id);
            return;
        }
    };
    let (mut uploaded, mut there) = (0, 0);
    for ((c, stored), ((name, _), r)) in with_id.into_iter().zip(names.iter().zip(results)) {
        match r {
            Ok(up) => {
                if up {
                    uploaded += 1;
                } else {
                    there += 1;
                }
                let url = store.target.url_of(&store.target.key_for(name));
                plan.referenced.push((c, stored, url));
            }
            Err(e) => {
                warn(format!(
                    "{} did not reach the build-id store: {e}; the bundle holds it",
                    c.source.display()
                ));
                plan.files.push((c, stored));
            }
        }
    }
    if uploaded + there > 0 && !quiet {
        warn(format!(
            "build-id store {}: {uploaded} files uploaded, {there} already there",
            store.target
        ));
    }
}

/// A file's name in the build-id store: `<build-id>/<file name>` (`.debug` added for a debug
/// file), the file name made safe as a key.
fn store_name(c: &Candidate) -> String {
    let base = std::path::Path::new(&c.core_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let safe: String = base
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | '+') {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    let name = if safe.is_empty() { "file" } else { safe };
    let id = c.build_id.as_deref().unwrap_or("none");
    match c.kind {
        kind::DEBUG => format!("{id}/{name}.debug"),
        _ => format!("{id}/{name}"),
    }
}
