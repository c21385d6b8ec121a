//! Plain configuration for each subcommand, produced by `cli` and consumed by `app`. Nothing
//! below `cli` sees clap.

use crate::sink::remote::{Connection, S3Target, UploadOptions};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// What the user asked for.
#[derive(Debug, Clone)]
pub enum Command {
    Run(RunConfig),
    Collect(CollectConfig),
    Pattern(PatternConfig),
    Bt(BtConfig),
    Doctor,
    /// Hidden: the process `doctor` crashes on purpose (dies of SIGABRT).
    Canary,
    Upload(UploadDirConfig),
    Fetch(FetchConfig),
}

/// `--to s3://…` and how to upload.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub target: S3Target,
    pub options: UploadOptions,
}

/// `corecatch upload DIR --to s3://…`.
#[derive(Debug, Clone)]
pub struct UploadDirConfig {
    pub dir: PathBuf,
    pub upload: UploadConfig,
    pub quiet: bool,
}

/// Where `fetch` takes artifacts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchSource {
    S3(S3Target),
    /// `circleci://VCS/ORG/REPO/BUILD_NUM`.
    CircleCi {
        vcs: String,
        org: String,
        repo: String,
        build: u64,
    },
}

impl FetchSource {
    /// `s3://bucket/prefix` or `circleci://gh/ORG/REPO/BUILD_NUM` (`gh`, `github`, `bb`,
    /// `bitbucket`).
    pub fn parse(s: &str) -> Result<FetchSource, String> {
        if let Some(rest) = s.strip_prefix("circleci://") {
            let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
            let [vcs, org, repo, build] = parts[..] else {
                return Err(format!("{s:?} is not circleci://VCS/ORG/REPO/BUILD_NUM"));
            };
            let vcs = match vcs {
                "gh" | "github" => "github",
                "bb" | "bitbucket" => "bitbucket",
                _ => return Err(format!("{vcs:?} is not gh, github, bb or bitbucket")),
            };
            let name_ok = |n: &str| {
                !n.is_empty()
                    && n != "."
                    && n != ".."
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            };
            if !name_ok(org) || !name_ok(repo) {
                return Err(format!("{s:?}: bad organization or repository name"));
            }
            let build = build
                .parse()
                .map_err(|_| format!("{build:?} is not a build number"))?;
            return Ok(FetchSource::CircleCi {
                vcs: vcs.to_string(),
                org: org.to_string(),
                repo: repo.to_string(),
                build,
            });
        }
        S3Target::parse(s).map(FetchSource::S3).map_err(|e| {
            format!("{e} (expected s3://BUCKET/PREFIX or circleci://VCS/ORG/REPO/BUILD_NUM)")
        })
    }
}

/// `corecatch fetch SOURCE DEST`.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub source: FetchSource,
    pub dest: PathBuf,
    /// Transfers at once (`-j`).
    pub jobs: usize,
    pub connection: Connection,
    /// CircleCI's base URL (`--circleci-url`, `CIRCLECI_URL`).
    pub circleci_url: String,
    pub verbose: bool,
}

/// Where artifacts go and how cores are treated once packed.
#[derive(Debug, Clone)]
pub struct ArtifactConfig {
    pub out: PathBuf,
    pub keep_cores: bool,
    pub quiet: bool,
    /// Write a JUnit XML file with one failed test case per crash.
    pub junit: Option<PathBuf>,
    /// GitHub Actions output: annotations on stdout, a summary appended to `summary`.
    pub github: Option<GithubConfig>,
    pub symbols: SymbolConfig,
    /// `--to s3://…`: upload the artifacts once they are written.
    pub upload: Option<UploadConfig>,
}

/// Where GitHub Actions output goes.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// `$GITHUB_WORKSPACE` (else the current directory): annotations point at files below it.
    pub workspace: PathBuf,
    /// `$GITHUB_STEP_SUMMARY`, when set.
    pub summary: Option<PathBuf>,
}

/// How backtraces are made.
#[derive(Debug, Clone)]
pub struct SymbolConfig {
    pub debug_dirs: Vec<PathBuf>,
    pub sysroot: Option<PathBuf>,
    pub exe: Option<PathBuf>,
    pub max_frames: usize,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub argv: Vec<OsString>,
    pub artifacts: ArtifactConfig,
    pub capture: Capture,
}

/// How `run` gets the cores of crashing processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Capture {
    /// Kernel cores where core_pattern and RLIMIT_CORE let them reach us, else the handler's
    /// store where it will be filled and is readable, else ptrace.
    #[default]
    Auto,
    /// Only the cores the kernel writes.
    Kernel,
    /// The cores a pipe handler (systemd-coredump) stored, read back after the command ends.
    Handler,
    /// corecatch traces the command and writes the cores itself.
    Ptrace,
}

#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// Core files or directories to scan; empty means where core_pattern puts cores for the
    /// current directory.
    pub paths: Vec<PathBuf>,
    pub artifacts: ArtifactConfig,
}

#[derive(Debug, Clone)]
pub struct PatternConfig {
    pub json: bool,
}

#[derive(Debug, Clone)]
pub struct BtConfig {
    pub core: PathBuf,
    pub json: bool,
    pub symbols: SymbolConfig,
}
