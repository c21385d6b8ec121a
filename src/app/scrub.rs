//! `--scrub-env` and `--scrub-args`: the patches `elf_core::scrub` plans for a parsed core,
//! written into the core file in place (same size, same layout), then the core mapped and
//! parsed again, so that its report and the stored (or kept) core hold only the scrubbed bytes.

use crate::config::ScrubConfig;
use crate::elf_core::scrub::{self, Plan};
use crate::elf_core::Core;
use crate::error::{chain, warn};
use crate::report::{Report, Scrubbed};
use crate::source::core_file::MappedCore;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The user's options plus the run token's name, always kept: it is no secret, and it is what
/// ties a core to its run.
fn options(cfg: &ScrubConfig) -> scrub::Options {
    let mut o = cfg.clone();
    o.keep_env
        .push(crate::source::kernel::TOKEN_VAR.to_string());
    o
}

/// What to scrub in `core`, mapped from the file at `path` as `data`: its holes (found with
/// SEEK_DATA/SEEK_HOLE) are not searched for copies, so a thread's untouched stack pages are
/// never read.
pub(super) fn plan(path: &Path, core: &Core<'_>, data: &[u8], cfg: &ScrubConfig) -> Plan {
    let file = std::fs::File::open(path).ok();
    let mut extents = |start: u64, end: u64| match &file {
        Some(f) => data_extents(f, start, end),
        None => vec![(start, end)],
    };
    scrub::plan(core, data, &options(cfg), &mut extents)
}

/// The data extents of `f` between `start` and `end`; all of it where holes are not reported.
fn data_extents(f: &std::fs::File, start: u64, end: u64) -> Vec<(u64, u64)> {
    use crate::sys::sparse::{next_data, next_hole, Seek};
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let data = match next_data(f, pos) {
            Ok(Seek::At(d)) => d,
            Ok(Seek::End) => break,
            Ok(Seek::Unsupported) | Err(_) => {
                out.push((pos, end));
                break;
            }
        };
        if data >= end {
            break;
        }
        let hole = match next_hole(f, data) {
            Ok(Seek::At(h)) => h.min(end),
            _ => end,
        };
        out.push((data, hole));
        pos = hole;
    }
    out
}

/// Apply `plan` to the core at `path`, then map and parse it again and return `make`'s report
/// of the scrubbed core, with what was scrubbed recorded. Problems finding what to scrub are
/// warnings (and in the report); a core that could not be written, or does not read back as
/// written, is an error: it must not be reported or stored as it is.
pub(super) fn scrub_and_report(
    path: &Path,
    cfg: &ScrubConfig,
    plan: &Plan,
    make: impl FnOnce(&Core<'_>) -> Report,
) -> Result<Report, String> {
    for m in &plan.missed {
        warn(format!("core {}: {m}: not scrubbed", path.display()));
    }
    write_patches(path, plan).map_err(|e| format!("cannot scrub core {}: {e}", path.display()))?;
    let mapped = MappedCore::open(path).map_err(|e| chain(&e))?;
    let core = crate::elf_core::parse(mapped.bytes())
        .map_err(|e| format!("cannot read core {} after scrubbing: {e}", path.display()))?;
    if !plan.applied(mapped.bytes()) {
        return Err(format!(
            "core {} does not read back as it was scrubbed",
            path.display()
        ));
    }
    let mut report = make(&core);
    report.record_scrub(Scrubbed {
        env: cfg.env.then(|| plan.env.clone()),
        args: cfg.args.then_some(plan.args),
        fragments: plan.fragments,
        not_scrubbed: plan.missed.clone(),
    });
    Ok(report)
}

/// Each patch written at its offset (nothing else changes, the size neither), then flushed: a
/// core kept with `--keep-cores` is the scrubbed one, also after a machine crash. The file keeps
/// its modification time, the time of the crash that scans go by.
fn write_patches(path: &Path, plan: &Plan) -> io::Result<()> {
    if plan.patches.is_empty() {
        return Ok(());
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    for p in &plan.patches {
        f.write_all_at(&p.bytes, p.offset)?;
    }
    if let Ok(t) = meta.modified() {
        f.set_modified(t)?;
    }
    f.sync_data()
}

/// The command line the manifest records: with `--scrub-args`, `***` for each argument after
/// the program, as in the reports.
pub(super) fn command(cmd: &[String], cfg: &ScrubConfig) -> Vec<String> {
    cmd.iter()
        .enumerate()
        .map(|(i, a)| {
            if cfg.args && i > 0 {
                "***".into()
            } else {
                a.clone()
            }
        })
        .collect()
}
