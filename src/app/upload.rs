//! `corecatch upload DIR --to s3://…`, and the `--to` step of `run` and `collect`.

use crate::config::{ArtifactConfig, UploadConfig, UploadDirConfig};
use crate::error::warn;
use crate::exit_code;
use std::path::Path;

/// `--to`: upload the artifacts directory once this run stored something. Returns false when
/// an object did not make it (already reported on stderr).
pub(super) fn upload_if_asked(cfg: &ArtifactConfig, stored: usize) -> bool {
    match &cfg.upload {
        Some(up) if stored > 0 => upload(&cfg.out, up, cfg.quiet),
        _ => true,
    }
}

fn upload(dir: &Path, up: &UploadConfig, quiet: bool) -> bool {
    let mut options = up.options.clone();
    options.progress = !quiet;
    let outcome = crate::remote::upload_artifacts(dir, &up.target, &options);
    let _ = crate::remote::write_upload_summary(
        &outcome,
        &up.target,
        dir,
        quiet,
        &mut std::io::stderr().lock(),
    );
    outcome.complete()
}

/// `corecatch upload DIR --to s3://…`.
pub(super) fn upload_dir(cfg: UploadDirConfig) -> i32 {
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
