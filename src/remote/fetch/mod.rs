//! A build's artifacts back onto this machine (the engine behind `corecatch fetch`). Owns the parts that
//! do not depend on where they come from: refusing names that would land outside DEST, the
//! worker pool of `-j N` transfers, resuming from `.part` files, skipping files already
//! complete, and checking sizes and (when `manifest.json` is among the artifacts) SHA-256.
//!
//! Sources implement [`Remote`]: an S3 prefix (through `remote::s3`, feature `s3`) or a CircleCI
//! build's artifact list ([`circleci`], feature `circleci`).

#[cfg(feature = "circleci")]
pub mod circleci;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::artifacts::manifest::{self, Manifest};
use crate::artifacts::{pack, publish};
use crate::remote::target::{redact_url, safe_relative_path, Connection, FetchSource, UnsafeName};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One file a source offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path relative to DEST as the source names it (checked before use).
    pub name: String,
    /// Size the source announces, when it does.
    pub bytes: Option<u64>,
    /// What the source needs to get it: an object key or a URL.
    pub locator: String,
    /// How to show it: `s3://bucket/key` or a URL without query string.
    pub display: String,
}

/// A place artifacts are fetched from.
pub trait Remote: Sync {
    /// Every file, all pages.
    fn list(&self) -> Result<Vec<RemoteFile>, FetchError>;
    /// Writes the file's bytes from `offset` on to `out` (positioned at `offset`). When the
    /// source ignores the range, truncates `out` and writes the whole file from byte 0.
    fn get(
        &self,
        file: &RemoteFile,
        offset: u64,
        out: &mut File,
        out_path: &Path,
    ) -> Result<(), FetchError>;
}

/// Why a fetch, or one file of it, failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot create {path}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("refused {name:?}: {reason}")]
    Unsafe { name: String, reason: UnsafeName },
    #[error("refused {name:?}: {path} leads outside {dest}")]
    Escapes {
        name: String,
        path: PathBuf,
        dest: PathBuf,
    },
    #[error("cannot list {url}")]
    #[cfg_attr(not(any(feature = "s3", feature = "circleci")), allow(dead_code))]
    List { url: String, source: BoxError },
    #[error("cannot download {url}")]
    #[cfg_attr(not(any(feature = "s3", feature = "circleci")), allow(dead_code))]
    Download { url: String, source: BoxError },
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is {actual} bytes, {expected} expected")]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path} has SHA-256 {actual}, manifest.json says {expected}")]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot hash {path}")]
    Hash {
        path: PathBuf,
        source: pack::PackError,
    },
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
    #[error("cannot read the fetched manifest")]
    Manifest(#[source] manifest::ManifestError),
    #[error("{path} is listed in manifest.json but not among the artifacts")]
    Missing { path: String },
    #[error("this corecatch was built without {what} support (cargo feature `{feature}`)")]
    #[cfg(any(not(feature = "s3"), not(feature = "circleci")))]
    NotBuilt {
        what: &'static str,
        feature: &'static str,
    },
}

/// Whole tries per file; each resumes from what the previous one wrote.
const FILE_ATTEMPTS: u32 = 3;

/// The [`Remote`] for `source`: an S3 prefix reached through `connection`, or a CircleCI build
/// through the API at `circleci_url` (with `CIRCLE_TOKEN` when set).
pub fn open_remote(
    source: &FetchSource,
    connection: &Connection,
    circleci_url: &str,
) -> Result<Box<dyn Remote>, FetchError> {
    match source {
        FetchSource::S3(target) => {
            #[cfg(feature = "s3")]
            {
                s3_remote::S3Remote::connect(target, connection)
                    .map(|r| Box::new(r) as Box<dyn Remote>)
            }
            #[cfg(not(feature = "s3"))]
            {
                let _ = (target, connection);
                Err(FetchError::NotBuilt {
                    what: "S3",
                    feature: "s3",
                })
            }
        }
        FetchSource::CircleCi {
            vcs,
            org,
            repo,
            build,
        } => {
            #[cfg(feature = "circleci")]
            {
                Ok(Box::new(circleci::CircleCi::new(
                    circleci_url,
                    vcs,
                    org,
                    repo,
                    *build,
                    std::env::var("CIRCLE_TOKEN").ok(),
                )))
            }
            #[cfg(not(feature = "circleci"))]
            {
                let _ = (vcs, org, repo, build, circleci_url);
                Err(FetchError::NotBuilt {
                    what: "CircleCI",
                    feature: "circleci",
                })
            }
        }
    }
}

#[cfg(feature = "s3")]
mod s3_remote {
    //! [`Remote`] over `remote::s3`: keys below the prefix become paths below DEST.

    use super::*;
    use crate::remote::s3::S3Store;
    use crate::remote::target::{Connection, S3Target};

    pub struct S3Remote {
        store: S3Store,
        target: S3Target,
    }

    impl S3Remote {
        pub fn connect(target: &S3Target, conn: &Connection) -> Result<S3Remote, FetchError> {
            let store = S3Store::connect(conn).map_err(|e| FetchError::List {
                url: target.to_string(),
                source: Box::new(e),
            })?;
            Ok(S3Remote {
                store,
                target: target.clone(),
            })
        }
    }

    impl Remote for S3Remote {
        fn list(&self) -> Result<Vec<RemoteFile>, FetchError> {
            // "a/b" must not match "a/bc/…": list "a/b/".
            let prefix = if self.target.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", self.target.prefix)
            };
            let listed =
                self.store
                    .list(&self.target.bucket, &prefix)
                    .map_err(|e| FetchError::List {
                        url: self.target.to_string(),
                        source: Box::new(e),
                    })?;
            Ok(listed
                .into_iter()
                .map(|o| RemoteFile {
                    name: o.key[prefix.len()..].to_string(),
                    bytes: Some(o.bytes),
                    display: self.target.url_of(&o.key),
                    locator: o.key,
                })
                .collect())
        }

        fn get(
            &self,
            file: &RemoteFile,
            offset: u64,
            out: &mut File,
            out_path: &Path,
        ) -> Result<(), FetchError> {
            self.store
                .get(&self.target.bucket, &file.locator, offset, out, out_path)
                .map_err(|e| FetchError::Download {
                    url: file.display.clone(),
                    source: Box::new(e),
                })
        }
    }
}

/// What [`fetch_all`] did.
#[derive(Debug, Default)]
pub struct FetchSummary {
    pub fetched: usize,
    pub skipped: usize,
    pub bytes: u64,
    /// Each failure on one line.
    pub errors: Vec<String>,
}

/// A file to fetch, its name checked.
struct Job {
    file: RemoteFile,
    rel: PathBuf,
    /// From the listing or the manifest.
    bytes: Option<u64>,
    sha256: Option<String>,
}

enum Done {
    Fetched(u64),
    Skipped,
}

/// Lists `remote`, fetches `manifest.json` first when there is one, then everything else with
/// `jobs` workers.
pub fn fetch_all(remote: &dyn Remote, dest: &Path, jobs: usize, verbose: bool) -> FetchSummary {
    let mut summary = FetchSummary::default();
    let fail = |e: &dyn std::error::Error| crate::error::chain(e);
    if let Err(source) = fs::create_dir_all(dest) {
        summary.errors.push(fail(&FetchError::CreateDir {
            path: dest.to_path_buf(),
            source,
        }));
        return summary;
    }
    let files = match remote.list() {
        Ok(f) => f,
        Err(e) => {
            summary.errors.push(fail(&e));
            return summary;
        }
    };
    let mut todo = Vec::new();
    let mut manifest_job = None;
    for file in files {
        match safe_relative_path(&file.name) {
            Ok(rel) => {
                let job = Job {
                    bytes: file.bytes,
                    file,
                    rel,
                    sha256: None,
                };
                if job.rel == Path::new(manifest::FILE_NAME) {
                    manifest_job = Some(job);
                } else {
                    todo.push(job);
                }
            }
            Err(reason) => summary.errors.push(fail(&FetchError::Unsafe {
                name: file.name.clone(),
                reason,
            })),
        }
    }
    if let Some(job) = manifest_job {
        // Always fetched again: it is small and says what everything else must be.
        let _ = fs::remove_file(dest.join(&job.rel));
        match fetch_one(remote, dest, &job, verbose) {
            Ok(done) => count(&mut summary, done),
            Err(e) => summary.errors.push(fail(&e)),
        }
        match Manifest::load(dest) {
            Ok(Some(m)) => {
                let by_path: HashMap<&str, &manifest::ManifestEntry> =
                    m.artifacts.iter().map(|e| (e.path.as_str(), e)).collect();
                for job in &mut todo {
                    if let Some(e) = job.rel.to_str().and_then(|p| by_path.get(p)) {
                        job.bytes = Some(e.bytes);
                        job.sha256 = Some(e.sha256.clone());
                    }
                }
                for e in &m.artifacts {
                    if !todo.iter().any(|j| j.rel == Path::new(&e.path)) {
                        summary.errors.push(fail(&FetchError::Missing {
                            path: e.path.clone(),
                        }));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => summary.errors.push(fail(&FetchError::Manifest(e))),
        }
    }

    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(todo.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = todo.get(i) else { break };
                let r = fetch_one(remote, dest, job, verbose);
                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
            });
        }
    });
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match r {
            Ok(done) => count(&mut summary, done),
            Err(e) => summary.errors.push(fail(&e)),
        }
    }
    summary
}

fn count(summary: &mut FetchSummary, done: Done) {
    match done {
        Done::Fetched(b) => {
            summary.fetched += 1;
            summary.bytes += b;
        }
        Done::Skipped => summary.skipped += 1,
    }
}

/// Fetches one file into `dest/rel` through `.corecatch-NAME.part`, resuming a partial one,
/// verifying size and SHA-256 (when known) before the rename.
fn fetch_one(
    remote: &dyn Remote,
    dest: &Path,
    job: &Job,
    verbose: bool,
) -> Result<Done, FetchError> {
    let final_path = dest.join(&job.rel);
    let parent = publish::parent_dir(&final_path).to_path_buf();
    fs::create_dir_all(&parent).map_err(|source| FetchError::CreateDir {
        path: parent.clone(),
        source,
    })?;
    // A symlink already in DEST must not carry the write elsewhere.
    let inside = match (parent.canonicalize(), dest.canonicalize()) {
        (Ok(p), Ok(d)) => p.starts_with(&d),
        _ => false,
    };
    let is_link = fs::symlink_metadata(&final_path).is_ok_and(|m| m.file_type().is_symlink());
    if !inside || is_link {
        return Err(FetchError::Escapes {
            name: job.file.name.clone(),
            path: final_path,
            dest: dest.to_path_buf(),
        });
    }
    if let (Some(bytes), Ok(meta)) = (job.bytes, fs::metadata(&final_path)) {
        if meta.len() == bytes && verify(&final_path, job).is_ok() {
            if verbose {
                eprintln!("corecatch: already complete: {}", final_path.display());
            }
            return Ok(Done::Skipped);
        }
    }
    let file_name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = parent.join(format!("{}{file_name}.part", publish::PREFIX));
    let mut last = None;
    for _ in 0..FILE_ATTEMPTS {
        let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let offset = match job.bytes {
            Some(b) if have <= b => have,
            _ => 0,
        };
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&part)
            .map_err(|source| FetchError::Open {
                path: part.clone(),
                source,
            })?;
        let positioned = out
            .set_len(offset)
            .and_then(|_| io::Seek::seek(&mut out, io::SeekFrom::Start(offset)));
        positioned.map_err(|source| FetchError::Write {
            path: part.clone(),
            source,
        })?;
        let complete = job.bytes.is_some_and(|b| b == offset && b > 0);
        if !complete {
            if let Err(e) = remote.get(&job.file, offset, &mut out, &part) {
                last = Some(e);
                continue;
            }
        }
        // Synced by the publish below, once the bytes are known to be right.
        drop(out);
        let got = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if let Some(expected) = job.bytes {
            if got != expected {
                let e = FetchError::SizeMismatch {
                    path: final_path.clone(),
                    expected,
                    actual: got,
                };
                if got > expected {
                    let _ = fs::remove_file(&part);
                }
                last = Some(e);
                continue;
            }
        }
        if let Err(e) = verify(&part, job) {
            // Bytes on disk are wrong: start over rather than resume onto them.
            let _ = fs::remove_file(&part);
            last = Some(match e {
                FetchError::ChecksumMismatch {
                    expected, actual, ..
                } => FetchError::ChecksumMismatch {
                    path: final_path.clone(),
                    expected,
                    actual,
                },
                e => e,
            });
            continue;
        }
        publish::publish_path(&part, &final_path)?;
        if verbose {
            eprintln!(
                "corecatch: fetched {} -> {} ({got} bytes)",
                redact_url(&job.file.display),
                final_path.display()
            );
        }
        return Ok(Done::Fetched(got));
    }
    Err(last.unwrap_or(FetchError::SizeMismatch {
        path: final_path,
        expected: job.bytes.unwrap_or(0),
        actual: 0,
    }))
}

/// The SHA-256 check against the manifest, when it names the file.
fn verify(path: &Path, job: &Job) -> Result<(), FetchError> {
    let Some(want) = &job.sha256 else {
        return Ok(());
    };
    let (_, got) = pack::sha256_file(path).map_err(|source| FetchError::Hash {
        path: path.to_path_buf(),
        source,
    })?;
    if &got != want {
        return Err(FetchError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: want.clone(),
            actual: got,
        });
    }
    Ok(())
}
