//! Remote stores of artifacts: uploading an artifacts directory to an S3 bucket
//! ([`upload_artifacts`], the one entry point; `s3.rs`, cargo feature `s3`, is the only module
//! that sees tokio and the AWS SDK) and bringing a build's artifacts back ([`fetch`]: from S3 or
//! a CircleCI build). The plain types and name checks both directions share are in [`target`].
//! Symbol servers: [`debuginfod_from_env`] (`debuginfod.rs`, cargo feature `debuginfod`) gives
//! the backtrace its [`crate::backtrace::Fetcher`] when `DEBUGINFOD_URLS` is set. Both HTTP clients
//! (CircleCI, debuginfod) take their TLS roots from `http`: the system's store, else bundled.

#[cfg(feature = "debuginfod")]
pub mod debuginfod;
pub mod fetch;
#[cfg(any(feature = "circleci", feature = "debuginfod"))]
pub mod http;
#[cfg(feature = "s3")]
pub mod s3;
pub mod target;

pub use target::{S3Target, UploadOptions, UploadOutcome};

use std::io::Write;
use std::path::Path;

/// The debuginfod client for the servers `DEBUGINFOD_URLS` names, read from the environment
/// now; `None` when it is unset or blank (nothing is ever asked), or in a build without the
/// `debuginfod` feature.
pub fn debuginfod_from_env() -> Option<std::sync::Arc<dyn crate::backtrace::Fetcher>> {
    #[cfg(feature = "debuginfod")]
    {
        debuginfod::from_env()
    }
    #[cfg(not(feature = "debuginfod"))]
    {
        None
    }
}

/// Uploads every artifact in `dir` to `target` (see `s3::S3Store::upload_dir`). Never fails as
/// a whole and never touches the local files unless asked to and everything was confirmed:
/// the outcome says what made it and what did not.
pub fn upload_artifacts(dir: &Path, target: &S3Target, opts: &UploadOptions) -> UploadOutcome {
    #[cfg(feature = "s3")]
    {
        match s3::S3Store::connect(&opts.connection) {
            Ok(store) => store.upload_dir(dir, target, opts),
            Err(e) => UploadOutcome {
                setup_error: Some(crate::error::chain(&e)),
                ..UploadOutcome::default()
            },
        }
    }
    #[cfg(not(feature = "s3"))]
    {
        let _ = (dir, target, opts);
        UploadOutcome {
            setup_error: Some(
                "this corecatch was built without S3 support (cargo feature `s3`)".into(),
            ),
            ..UploadOutcome::default()
        }
    }
}

/// The build-id store (`--bundle-store`): each of `files` (name under `target`, local path)
/// is put there unless an object of its size already is. Per file: uploaded (`true`) or
/// already there (`false`), else why not; `Err` when the store cannot be reached at all.
pub fn put_missing(
    target: &S3Target,
    files: &[(String, std::path::PathBuf)],
    opts: &UploadOptions,
) -> Result<Vec<Result<bool, String>>, String> {
    #[cfg(feature = "s3")]
    {
        let store = s3::S3Store::connect(&opts.connection).map_err(|e| crate::error::chain(&e))?;
        Ok(store
            .put_missing(target, files, opts)
            .into_iter()
            .map(|r| r.map_err(|e| crate::error::chain(&e)))
            .collect())
    }
    #[cfg(not(feature = "s3"))]
    {
        let _ = (target, files, opts);
        Err("this corecatch was built without S3 support (cargo feature `s3`)".into())
    }
}

/// Download `objects` (`s3://` URL, local destination) from the build-id store. Per object,
/// `Err` says why not; the destination is then left absent.
pub fn get_objects(
    objects: &[(String, std::path::PathBuf)],
    conn: &target::Connection,
) -> Vec<Result<(), String>> {
    #[cfg(feature = "s3")]
    {
        let store = match s3::S3Store::connect(conn) {
            Ok(s) => s,
            Err(e) => {
                let why = crate::error::chain(&e);
                return objects.iter().map(|_| Err(why.clone())).collect();
            }
        };
        objects
            .iter()
            .map(|(url, dest)| {
                let t = S3Target::parse(url).map_err(|e| e.to_string())?;
                let dir = crate::artifacts::publish::parent_dir(dest);
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let mut tmp = crate::artifacts::publish::temp_in(dir, ".part")
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                let tmp_path = tmp.path().to_path_buf();
                store
                    .get(&t.bucket, &t.prefix, 0, tmp.as_file_mut(), &tmp_path)
                    .map_err(|e| crate::error::chain(&e))?;
                crate::artifacts::publish::publish(tmp, dest).map_err(|e| crate::error::chain(&e))
            })
            .collect()
    }
    #[cfg(not(feature = "s3"))]
    {
        let _ = conn;
        objects
            .iter()
            .map(|_| Err("this corecatch was built without S3 support (cargo feature `s3`)".into()))
            .collect()
    }
}

/// The lines an upload leaves on stderr: one per object that did not make it (always), a total
/// (unless `quiet`), and whether the local copy was removed. URLs are `s3://` ones, never
/// presigned.
pub fn write_upload_summary(
    outcome: &UploadOutcome,
    target: &S3Target,
    dir: &Path,
    quiet: bool,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    if let Some(e) = &outcome.setup_error {
        writeln!(
            w,
            "corecatch: upload to {target} failed: {e}; the artifacts stay in {}",
            dir.display()
        )?;
        return Ok(());
    }
    for f in &outcome.failed {
        writeln!(
            w,
            "corecatch: not uploaded: {} -> {}: {}",
            f.path,
            target.url_of(&f.key),
            f.why
        )?;
    }
    if !outcome.failed.is_empty() {
        writeln!(
            w,
            "corecatch: {} of {} objects did not make it to {target}; the artifacts stay in {}",
            outcome.failed.len(),
            outcome.failed.len() + outcome.uploaded.len(),
            dir.display()
        )?;
    } else if !quiet {
        let bytes: u64 = outcome.uploaded.iter().map(|u| u.bytes).sum();
        writeln!(
            w,
            "corecatch: uploaded {} objects ({bytes} bytes) to {target}",
            outcome.uploaded.len()
        )?;
    }
    if let Some(why) = &outcome.kept_because {
        writeln!(w, "corecatch: kept {}: {why}", dir.display())?;
    } else if outcome.local_removed && !quiet {
        writeln!(w, "corecatch: removed the local copy in {}", dir.display())?;
    }
    Ok(())
}
