//! The run's debug bundle, made after its cores are stored: the files their reports say were
//! read on this machine (objects whose build-id matched, their debug files) go into
//! `bundle.tar.gz` ([`crate::artifacts::bundle`]); what could not go in is named on stderr and
//! in the bundle's own manifest.

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
    let plan = bundle::plan(files, missing, cfg.bundle, cfg.bundle_max);
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
    if plan.files.is_empty() {
        return None;
    }
    let bytes = plan.bytes();
    match bundle::write(dir, plan) {
        Ok(w) => {
            if !cfg.quiet {
                // `warn` is the one stderr helper (escaped, prefixed); this line is no warning.
                warn(format!(
                    "debug bundle {}: {} files, {} ({} compressed); open the crash with \
                     `corecatch debug {}`",
                    dir.path_of(&w.artifact.name).display(),
                    w.manifest.files.len(),
                    bundle::human(bytes),
                    bundle::human(w.artifact.bytes),
                    dir.root().display(),
                ));
            }
            Some(ManifestEntry::new(
                &w.artifact,
                manifest::kind::BUNDLE,
                None,
            ))
        }
        Err(e) => {
            warn(format!("no debug bundle: {}", chain(&e)));
            None
        }
    }
}
