//! Plain configuration for each subcommand, produced by `cli` and consumed by `app`. Nothing
//! below `cli` sees clap.

use crate::remote::target::{Connection, S3Target, UploadOptions};
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
    Debug(DebugConfig),
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

pub use crate::remote::target::FetchSource;

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
    /// `--identity`: decrypts an encrypted debug bundle, to unpack it into the cache.
    pub identity: Option<PathBuf>,
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
    /// `--scrub-env`, `--keep-env`, `--scrub-args`: what is replaced in each core before it is
    /// reported and stored.
    pub scrub: ScrubConfig,
    pub symbols: SymbolConfig,
    /// `--to s3://…`: upload the artifacts once they are written.
    pub upload: Option<UploadConfig>,
    /// `--bundle`: the debug bundle of the run's files.
    pub bundle: crate::artifacts::bundle::Mode,
    /// `--bundle-max`: above this many bytes, `auto` keeps only the program's own files.
    pub bundle_max: u64,
    /// `--bundle-store s3://…`: the build-id store the bundle's files go to (with `--to`'s
    /// connection options).
    pub bundle_store: Option<UploadConfig>,
    /// `--compress`, `--max-artifact-size`, `--encrypt-to`: how cores are stored.
    pub store: crate::artifacts::pack::StoreOptions,
    /// `--encrypt-reports`: the reports, the page and the JUnit file are encrypted to
    /// `store.recipients` too (never without recipients: cli refuses it), and what goes to the
    /// terminal and to GitHub names each crash without its backtrace.
    pub encrypt_reports: bool,
}

pub use crate::elf_core::scrub::Options as ScrubConfig;

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
    /// Objects by build-id (an unpacked debug bundle), searched first.
    pub object_dirs: Vec<PathBuf>,
    pub exe: Option<PathBuf>,
    pub max_frames: usize,
    pub timeout: Duration,
    /// `--full`: locals in every thread's frames (gdb's `bt full`), not only the crashed
    /// thread's (`run`, `collect`) or none (`bt`).
    pub full: bool,
}

/// `corecatch debug`.
#[derive(Debug, Clone)]
pub struct DebugConfig {
    /// An artifacts directory, a stored `.core.gz`, or a raw core.
    pub target: PathBuf,
    /// The debugger (gdb's command line); `None`: gdb, or gdb-multiarch for another
    /// architecture's core.
    pub debugger: Option<String>,
    /// `--identity`: decrypts encrypted stored cores.
    pub identity: Option<PathBuf>,
    /// Print the command line instead of running it.
    pub print_command: bool,
    /// Passed to the debugger after what corecatch gives it (`--batch -ex bt`).
    pub args: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub argv: Vec<OsString>,
    pub artifacts: ArtifactConfig,
    pub capture: Capture,
}

pub use crate::source::capture::Capture;

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
    /// `--identity`: decrypts encrypted stored cores.
    pub identity: Option<PathBuf>,
    pub symbols: SymbolConfig,
}
