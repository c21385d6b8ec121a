//! Command-line parsing (clap derive) and its translation into `config` types. The only module
//! that imports clap.

use crate::config::{
    ArtifactConfig, BtConfig, Capture, CollectConfig, Command, DebugConfig, FetchConfig,
    FetchSource, PatternConfig, RunConfig, SymbolConfig, UploadConfig, UploadDirConfig,
};
use crate::remote::target::{Connection, S3Target, Sse, UploadOptions, MIN_PART_SIZE};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Wrap a command, catch the core dumps of everything it starts, print a backtrace of every
/// thread, and store the compressed cores as CI artifacts.
#[derive(Debug, Parser)]
#[command(name = "corecatch", version = env!("CORECATCH_LONG_VERSION"), about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Run CMD with core dumps enabled; collect the cores of CMD and its descendants. Exits with
    /// CMD's status (128+N if it died of signal N).
    Run {
        #[command(flatten)]
        artifacts: ArtifactArgs,
        /// How cores are captured: kernel (core_pattern), handler (read back from the pipe
        /// handler's store: systemd-coredump), ptrace (corecatch traces CMD and writes the cores
        /// itself), or auto (kernel where its cores reach us, else the handler's store where it
        /// is readable, else ptrace).
        #[arg(long, value_enum, default_value_t = CaptureArg::Auto, value_name = "HOW")]
        capture: CaptureArg,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
        argv: Vec<OsString>,
    },
    /// Collect cores already on disk (e.g. in a CI `when: on_fail` step).
    Collect {
        #[command(flatten)]
        artifacts: ArtifactArgs,
        /// Core files or directories to scan [default: where core_pattern puts cores for the
        /// current directory].
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Explain where a core of a process started here would land, and what would stop it.
    Pattern {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Crash a canary process under the current settings and say whether its core reaches
    /// corecatch, how, and if not, what to change. Exits 0 when cores will be captured.
    Doctor,
    /// The canary doctor crashes (dies of SIGABRT).
    #[command(name = "__canary", hide = true)]
    Canary,
    /// Print the backtrace of every thread in a core: a raw core, a stored .core.gz, or an
    /// artifacts directory (every core in it), with the directory's debug bundle.
    Bt {
        /// The core, stored core or artifacts directory.
        core: PathBuf,
        /// Print the report JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The age identity file (age-keygen's, or an OpenSSH private key) that decrypts
        /// cores stored with --encrypt-to.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        symbols: SymbolArgs,
    },
    /// Open a stored crash in gdb: the core, its executable, libraries and debug files from the
    /// debug bundle (else this machine's, when their build-ids match), the crashed thread
    /// selected. Arguments after TARGET go to gdb (`--batch -ex bt`).
    Debug {
        /// Print the debugger's command line instead of running it.
        #[arg(long)]
        print_command: bool,
        /// The debugger to run (gdb's options) [default: gdb, or gdb-multiarch for a core of
        /// another architecture].
        #[arg(long, value_name = "PROGRAM")]
        debugger: Option<String>,
        /// The age identity file that decrypts cores stored with --encrypt-to.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// An artifacts directory (local or fetched), a .core.gz in one, or a raw core.
        #[arg(value_name = "TARGET")]
        target: PathBuf,
        /// Passed to the debugger as they are, after corecatch's own.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "GDB ARGS"
        )]
        args: Vec<String>,
    },
    /// Upload an artifacts directory made earlier (every file, manifest.json last).
    Upload {
        /// The artifacts directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Destination bucket and key prefix.
        #[arg(long, value_name = "s3://BUCKET/PREFIX", value_parser = parse_target)]
        to: S3Target,
        #[command(flatten)]
        upload: UploadFlags,
        /// Print only errors, no summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Download a build's artifacts: everything under an S3 prefix, or a CircleCI build's
    /// artifacts (token from CIRCLE_TOKEN), in parallel; verified against manifest.json.
    Fetch {
        /// s3://BUCKET/PREFIX or circleci://VCS/ORG/REPO/BUILD_NUM (VCS: gh or bb).
        #[arg(value_name = "SOURCE", value_parser = FetchSource::parse)]
        source: FetchSource,
        /// Destination directory (created if missing); nothing is written outside it.
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        /// Parallel transfers.
        #[arg(short = 'j', long, default_value_t = 4, value_name = "N")]
        jobs: usize,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// CircleCI's base URL.
        #[arg(
            long,
            env = "CIRCLECI_URL",
            default_value = "https://circleci.com",
            value_name = "URL"
        )]
        circleci_url: String,
        /// One line per file.
        #[arg(long, short)]
        verbose: bool,
        /// The age identity file that decrypts an encrypted debug bundle (--encrypt-to), so it
        /// is unpacked into the cache now, with the files it keeps in a build-id store.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
}

fn parse_target(s: &str) -> Result<S3Target, String> {
    S3Target::parse(s).map_err(|e| e.to_string())
}

/// `60`, `0.5`: a number of seconds, finite and not negative.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is not a finite, non-negative number of seconds"))
}

/// `16MiB`, `5M`, `8388608`: a byte count with an optional binary suffix.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too big"))
}

/// A multipart upload's part size: [`parse_bytes`], at least S3's 5 MiB.
fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = parse_bytes(s)?;
    if bytes < MIN_PART_SIZE {
        return Err(format!("{s:?} is below S3's 5 MiB part minimum"));
    }
    Ok(bytes)
}

#[derive(Debug, Clone, Args)]
struct ConnectionArgs {
    /// S3-compatible endpoint (path-style addressing) [default: AWS_ENDPOINT_URL, else AWS].
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Most attempts per request (throttling, 5xx and connection resets are retried).
    #[arg(long, default_value_t = 5, value_name = "N")]
    max_attempts: u32,
}

impl ConnectionArgs {
    fn into_config(self) -> Connection {
        Connection {
            endpoint_url: self.endpoint_url,
            max_attempts: self.max_attempts.max(1),
            initial_backoff: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone, Args)]
struct UploadFlags {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Storage class of the objects (STANDARD, STANDARD_IA, GLACIER_IR, ...).
    #[arg(long, value_name = "CLASS")]
    storage_class: Option<String>,
    /// Server-side encryption.
    #[arg(long, value_parser = ["AES256", "aws:kms"], value_name = "AES256|aws:kms")]
    sse: Option<String>,
    /// Files larger than this are uploaded in parts of this size (at least 5MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "SIZE")]
    part_size: u64,
    /// Parts uploaded at once (memory: about part size x this).
    #[arg(long, default_value_t = 4, value_name = "N")]
    upload_concurrency: usize,
    /// Remove the local artifacts once every object was uploaded and confirmed.
    #[arg(long)]
    no_keep_local: bool,
    /// One line per uploaded object.
    #[arg(long, short)]
    verbose: bool,
}

impl UploadFlags {
    fn into_config(self, target: S3Target) -> UploadConfig {
        UploadConfig {
            target,
            options: UploadOptions {
                connection: self.connection.into_config(),
                storage_class: self.storage_class,
                sse: self.sse.as_deref().and_then(Sse::parse),
                part_size: self.part_size,
                concurrency: self.upload_concurrency.max(1),
                keep_local: !self.no_keep_local,
                verbose: self.verbose,
                progress: true,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CaptureArg {
    Auto,
    Kernel,
    Handler,
    Ptrace,
}

impl From<CaptureArg> for Capture {
    fn from(c: CaptureArg) -> Capture {
        match c {
            CaptureArg::Auto => Capture::Auto,
            CaptureArg::Kernel => Capture::Kernel,
            CaptureArg::Handler => Capture::Handler,
            CaptureArg::Ptrace => Capture::Ptrace,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("recipients").multiple(true).args(["encrypt_to", "encrypt_to_file"])))]
struct ArtifactArgs {
    /// Directory for artifacts.
    #[arg(
        long,
        env = "CORECATCH_OUT",
        default_value = "corecatch-artifacts",
        value_name = "DIR"
    )]
    out: PathBuf,
    /// Keep the original core files after their compressed copies are verified.
    #[arg(long)]
    keep_cores: bool,
    /// Print only errors, no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Write JUnit XML here: one failed test case per crash (an empty suite when none).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// GitHub Actions annotations and job summary (on by itself when GITHUB_ACTIONS=true).
    #[arg(long, env = "GITHUB_ACTIONS")]
    github: bool,
    /// Before a core is reported and stored, replace in it the value of every variable of the
    /// crashed process's initial environment with `*` of the same length (names kept).
    #[arg(long)]
    scrub_env: bool,
    /// Keep the value of this variable under --scrub-env: a name or a glob (`*`, `?`);
    /// repeatable. PATH, LANG and CORECATCH_RUN are always kept.
    #[arg(long, value_name = "NAME_OR_GLOB", requires = "scrub_env")]
    keep_env: Vec<String>,
    /// The same for the arguments after argv[0] (the reports show each as `***`).
    #[arg(long)]
    scrub_args: bool,
    #[command(flatten)]
    symbols: SymbolArgs,
    /// Upload the artifacts to this bucket and key prefix once written.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", value_parser = parse_target)]
    to: Option<S3Target>,
    #[command(flatten)]
    upload: UploadFlags,
    /// A debug bundle (bundle.tar.gz; bundle.tar.gz.age, encrypted, under --encrypt-to) of
    /// every file the cores map and their debug files: auto (unless larger than --bundle-max:
    /// then only the program's own files), always, never.
    #[arg(long, value_enum, default_value_t = BundleArg::Auto, value_name = "WHEN")]
    bundle: BundleArg,
    /// A build-id store shared by many builds: each bundled file with a build-id goes once to
    /// PREFIX/<build-id>/<name> (not uploaded again when it is there) and the bundle lists
    /// references instead of holding it. Same connection flags as --to.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", value_parser = parse_target)]
    bundle_store: Option<S3Target>,
    /// Size above which --bundle auto leaves the system's libraries out [default: 512MiB].
    #[arg(long, default_value_t = crate::artifacts::bundle::DEFAULT_MAX, hide_default_value = true,
        value_parser = parse_bytes, value_name = "SIZE")]
    bundle_max: u64,
    /// How cores are compressed: gzip (every machine can gunzip them) or zstd[:LEVEL] (1-19,
    /// default 3; faster and smaller, `zstd -d` restores them).
    #[arg(long, default_value = "gzip", value_parser = parse_compress, value_name = "gzip|zstd[:LEVEL]")]
    compress: crate::artifacts::pack::Codec,
    /// Store a compressed core bigger than SIZE as parts <name>.000, .001, … of at most SIZE,
    /// each a valid file of its own [default: 3000MiB when CIRCLECI=true, else no limit].
    #[arg(long, value_parser = parse_part_size, value_name = "SIZE")]
    max_artifact_size: Option<u64>,
    /// Encrypt each stored core and the debug bundle with age to this recipient (repeatable):
    /// an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …). `age -d -i KEY` or
    /// `bt --identity KEY` read them.
    #[arg(long, value_parser = parse_recipient, value_name = "RECIPIENT")]
    encrypt_to: Vec<crate::artifacts::encrypt::Recipient>,
    /// Encrypt to every recipient in FILE (one per line, # comments; as `age -R`; repeatable).
    #[arg(long, value_parser = parse_recipients_file, value_name = "FILE")]
    encrypt_to_file: Vec<Vec<crate::artifacts::encrypt::Recipient>>,
    /// Encrypt the reports too (<stem>.json.age, <stem>.txt.age, index.html.age, the JUnit
    /// file's FILE.age) to the same recipients; the terminal, GitHub annotations and summary
    /// then name each crash without its backtrace. Needs --encrypt-to or --encrypt-to-file.
    #[arg(long, requires = "recipients")]
    encrypt_reports: bool,
}

fn parse_recipient(s: &str) -> Result<crate::artifacts::encrypt::Recipient, String> {
    crate::artifacts::encrypt::Recipient::parse(s).map_err(|e| crate::error::chain(&e))
}

/// A recipients file, read when the command line is parsed: an unreadable or empty file is a
/// usage error before anything runs.
fn parse_recipients_file(s: &str) -> Result<Vec<crate::artifacts::encrypt::Recipient>, String> {
    let path = std::path::Path::new(s);
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {s}: {e}"))?;
    crate::artifacts::encrypt::parse_recipients_file(&text, path)
        .map_err(|e| crate::error::chain(&e))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BundleArg {
    Auto,
    Always,
    Never,
}

impl From<BundleArg> for crate::artifacts::bundle::Mode {
    fn from(b: BundleArg) -> Self {
        use crate::artifacts::bundle::Mode;
        match b {
            BundleArg::Auto => Mode::Auto,
            BundleArg::Always => Mode::Always,
            BundleArg::Never => Mode::Never,
        }
    }
}

#[derive(Debug, Args)]
struct SymbolArgs {
    /// Extra directory searched like /usr/lib/debug (repeatable).
    #[arg(long = "debug-dir", value_name = "DIR")]
    debug_dirs: Vec<PathBuf>,
    /// Prefix for every path named in the core (a core from another machine).
    #[arg(long, value_name = "DIR")]
    sysroot: Option<PathBuf>,
    /// The executable, when it is not where the core says.
    #[arg(long, value_name = "PATH")]
    exe: Option<PathBuf>,
    /// Most frames per thread.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_frames: usize,
    /// Seconds to spend symbolizing one core before printing what was found.
    #[arg(long, default_value = "60", value_parser = parse_secs, value_name = "SECS")]
    timeout: Duration,
    /// Every thread's local variables under each frame, as gdb's `bt full` (run and collect
    /// report the crashed thread's without it; bt none).
    #[arg(long)]
    full: bool,
}

impl SymbolArgs {
    fn into_config(self) -> SymbolConfig {
        SymbolConfig {
            debug_dirs: self.debug_dirs,
            sysroot: self.sysroot,
            object_dirs: Vec::new(),
            exe: self.exe,
            max_frames: self.max_frames.max(1),
            timeout: self.timeout,
            full: self.full,
        }
    }
}

impl ArtifactArgs {
    fn into_config(self) -> ArtifactConfig {
        ArtifactConfig {
            out: self.out,
            keep_cores: self.keep_cores,
            quiet: self.quiet,
            junit: self.junit,
            github: self.github.then(|| crate::config::GithubConfig {
                workspace: std::env::var_os("GITHUB_WORKSPACE")
                    .map(PathBuf::from)
                    .or_else(|| std::env::current_dir().ok())
                    .unwrap_or_default(),
                summary: std::env::var_os("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            }),
            encrypt_reports: self.encrypt_reports,
            scrub: crate::config::ScrubConfig {
                env: self.scrub_env,
                args: self.scrub_args,
                keep_env: self.keep_env,
            },
            symbols: self.symbols.into_config(),
            bundle_store: self
                .bundle_store
                .map(|t| self.upload.clone().into_config(t)),
            upload: self.to.map(|t| self.upload.into_config(t)),
            // Under --encrypt-to the bundle is encrypted to the same recipients.
            bundle: self.bundle.into(),
            bundle_max: self.bundle_max,
            store: crate::artifacts::pack::StoreOptions {
                codec: self.compress,
                max_part: max_part(
                    self.max_artifact_size,
                    std::env::var("CIRCLECI").ok().as_deref(),
                ),
                recipients: self
                    .encrypt_to
                    .into_iter()
                    .chain(self.encrypt_to_file.into_iter().flatten())
                    .collect(),
            },
        }
    }
}

/// `--max-artifact-size`'s default under CircleCI (`CIRCLECI=true`).
const CIRCLECI_MAX_ARTIFACT: u64 = 3000 << 20;

/// The largest stored file: `--max-artifact-size`; else, when `circleci` (the value of
/// `CIRCLECI`) is `true`, CircleCI's cap (it keeps no artifact file over 3 GB); else none.
fn max_part(flag: Option<u64>, circleci: Option<&str>) -> Option<u64> {
    flag.or_else(|| (circleci == Some("true")).then_some(CIRCLECI_MAX_ARTIFACT))
}

/// `gzip`, `zstd` or `zstd:LEVEL` (1 to 19).
fn parse_compress(s: &str) -> Result<crate::artifacts::pack::Codec, String> {
    use crate::artifacts::pack::Codec;
    match s.split_once(':') {
        None if s == "gzip" => Ok(Codec::Gzip),
        None if s == "zstd" => Ok(Codec::Zstd {
            level: Codec::ZSTD_DEFAULT_LEVEL,
        }),
        Some(("zstd", level)) => match level.parse::<i32>() {
            Ok(level @ 1..=19) => Ok(Codec::Zstd { level }),
            _ => Err(format!("{level:?} is not a zstd level (1 to 19)")),
        },
        _ => Err(format!("{s:?}: expected gzip, zstd or zstd:LEVEL")),
    }
}

/// A `--max-artifact-size`: a size of at least [`MIN_PART_SIZE`](crate::artifacts::pack::MIN_PART_SIZE).
fn parse_part_size(s: &str) -> Result<u64, String> {
    let n = parse_bytes(s)?;
    if n < crate::artifacts::pack::MIN_PART_SIZE {
        return Err(format!("{s:?} is below the smallest part size, 1MiB"));
    }
    Ok(n)
}

/// The command-line definition itself (what `corecatch-gen` renders as man pages and shell
/// completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

impl Cli {
    /// Parse the process's arguments; on a usage error clap prints it and exits 2.
    /// Parse the process's arguments; on a usage error print it with the usage line and exit
    /// with `exit_code::USAGE` (2), as clap does, but naming the usage also where clap's
    /// message leaves it out (a bad value).
    pub fn parse_args() -> Command {
        match Cli::try_parse() {
            Ok(cli) => cli.into_config(),
            Err(e) if !e.use_stderr() => e.exit(), // --help, --version
            Err(e) => {
                let rendered = e.render().to_string();
                eprint!("{rendered}");
                if !rendered.contains("Usage:") {
                    let mut cmd = <Cli as clap::CommandFactory>::command();
                    cmd.build();
                    let sub = std::env::args().nth(1).unwrap_or_default();
                    let usage = match cmd.find_subcommand_mut(&sub) {
                        Some(s) => s.render_usage(),
                        None => cmd.render_usage(),
                    };
                    eprintln!("\n{usage}");
                }
                std::process::exit(crate::exit_code::USAGE)
            }
        }
    }

    /// Parse explicit arguments (for tests).
    pub fn try_parse_args<I, T>(args: I) -> Result<Command, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(args).map(Cli::into_config)
    }

    fn into_config(self) -> Command {
        match self.command {
            Sub::Run {
                artifacts,
                capture,
                argv,
            } => Command::Run(RunConfig {
                argv,
                artifacts: artifacts.into_config(),
                capture: capture.into(),
            }),
            Sub::Collect { artifacts, paths } => Command::Collect(CollectConfig {
                paths,
                artifacts: artifacts.into_config(),
            }),
            Sub::Pattern { json } => Command::Pattern(PatternConfig { json }),
            Sub::Doctor => Command::Doctor,
            Sub::Canary => Command::Canary,
            Sub::Bt {
                core,
                json,
                identity,
                symbols,
            } => Command::Bt(BtConfig {
                core,
                json,
                identity,
                symbols: symbols.into_config(),
            }),
            Sub::Debug {
                print_command,
                debugger,
                identity,
                target,
                args,
            } => Command::Debug(DebugConfig {
                target,
                debugger,
                identity,
                print_command,
                args,
            }),
            Sub::Upload {
                dir,
                to,
                upload,
                quiet,
            } => Command::Upload(UploadDirConfig {
                dir,
                upload: upload.into_config(to),
                quiet,
            }),
            Sub::Fetch {
                source,
                dest,
                jobs,
                connection,
                circleci_url,
                verbose,
                identity,
            } => Command::Fetch(FetchConfig {
                source,
                dest,
                jobs: jobs.max(1),
                connection: connection.into_config(),
                circleci_url,
                verbose,
                identity,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_passes_what_follows_the_target_to_gdb() {
        let c = Cli::try_parse_args([
            "corecatch",
            "debug",
            "--print-command",
            "art",
            "--batch",
            "-ex",
            "thread apply all bt",
        ])
        .unwrap();
        let Command::Debug(d) = c else { panic!() };
        assert!(d.print_command);
        assert_eq!(d.target, PathBuf::from("art"));
        assert_eq!(d.args, ["--batch", "-ex", "thread apply all bt"]);
        let Command::Run(r) = Cli::try_parse_args(["corecatch", "run", "--", "x"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            r.artifacts.bundle_max,
            crate::artifacts::bundle::DEFAULT_MAX
        );
        assert_eq!(r.artifacts.bundle, crate::artifacts::bundle::Mode::Auto);
    }

    #[test]
    fn run_takes_everything_after_dashdash() {
        let c = Cli::try_parse_args(["corecatch", "run", "--out", "x", "--", "make", "-k", "test"])
            .unwrap();
        let Command::Run(r) = c else { panic!() };
        assert_eq!(r.argv, ["make", "-k", "test"]);
        assert_eq!(r.artifacts.out, PathBuf::from("x"));
        assert_eq!(r.capture, Capture::Auto);
    }

    #[test]
    fn a_mistyped_flag_before_dashdash_is_a_usage_error() {
        for args in [
            &["corecatch", "run", "--keep-core", "--", "true"][..],
            &["corecatch", "run", "--keep-core", "true"],
        ] {
            let e = Cli::try_parse_args(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{args:?}"
            );
        }
        // After the first word of CMD, everything is CMD's, dashes or not.
        let c = Cli::try_parse_args(["corecatch", "run", "make", "-k", "--keep"]).unwrap();
        let Command::Run(r) = c else { panic!() };
        assert_eq!(r.argv, ["make", "-k", "--keep"]);
    }

    #[test]
    fn timeouts_must_be_finite_and_not_negative() {
        for sub in [&["run"][..], &["collect"], &["bt", "core"]] {
            for bad in [
                "--timeout=-5",
                "--timeout=NaN",
                "--timeout=inf",
                "--timeout=x",
            ] {
                let mut args = vec!["corecatch"];
                args.extend_from_slice(sub);
                args.push(bad);
                if sub[0] == "run" {
                    args.extend(["--", "true"]);
                }
                assert!(Cli::try_parse_args(&args).is_err(), "{args:?}");
            }
        }
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn capture_takes_a_method() {
        let c =
            Cli::try_parse_args(["corecatch", "run", "--capture", "ptrace", "--", "true"]).unwrap();
        let Command::Run(r) = c else { panic!() };
        assert_eq!(r.capture, Capture::Ptrace);
        let c = Cli::try_parse_args(["corecatch", "run", "--capture", "handler", "--", "true"])
            .unwrap();
        let Command::Run(r) = c else { panic!() };
        assert_eq!(r.capture, Capture::Handler);
        assert!(Cli::try_parse_args(["corecatch", "run", "--capture", "x", "--", "true"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        // Duplicate flags or shorts between flattened groups only show in clap's debug checks.
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn upload_flags_reach_the_config() {
        let c = Cli::try_parse_args([
            "corecatch",
            "run",
            "--to",
            "s3://bkt/a/b/",
            "--part-size",
            "8MiB",
            "--upload-concurrency",
            "3",
            "--sse",
            "aws:kms",
            "--storage-class",
            "STANDARD_IA",
            "--no-keep-local",
            "--max-attempts",
            "7",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--",
            "true",
        ])
        .unwrap();
        let Command::Run(r) = c else { panic!() };
        let up = r.artifacts.upload.expect("--to");
        assert_eq!(up.target.bucket, "bkt");
        assert_eq!(up.target.prefix, "a/b");
        assert_eq!(up.options.part_size, 8 << 20);
        assert_eq!(up.options.concurrency, 3);
        assert_eq!(up.options.sse, Some(Sse::Kms));
        assert_eq!(up.options.storage_class.as_deref(), Some("STANDARD_IA"));
        assert!(!up.options.keep_local);
        assert_eq!(up.options.connection.max_attempts, 7);
        assert_eq!(
            up.options.connection.endpoint_url.as_deref(),
            Some("http://127.0.0.1:9")
        );
        for bad in [
            ["--part-size", "4MiB"],
            ["--part-size", "5 parsecs"],
            ["--sse", "rot13"],
            ["--to", "s3://x"],
        ] {
            let mut args = vec!["corecatch", "collect", "--to", "s3://bkt/p"];
            args.extend(bad);
            assert!(Cli::try_parse_args(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fetch_sources() {
        let c =
            Cli::try_parse_args(["corecatch", "fetch", "circleci://gh/org/repo/42", "d"]).unwrap();
        let Command::Fetch(f) = c else { panic!() };
        assert_eq!(
            f.source,
            FetchSource::CircleCi {
                vcs: "github".into(),
                org: "org".into(),
                repo: "repo".into(),
                build: 42
            }
        );
        assert_eq!(f.jobs, 4);
        for bad in [
            "circleci://gh/org/repo",
            "circleci://svn/org/repo/1",
            "circleci://gh/../repo/1",
            "circleci://gh/org/repo/x",
            "http://example.com/x",
        ] {
            assert!(
                Cli::try_parse_args(["corecatch", "fetch", bad, "d"]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn max_artifact_size_defaults_to_circlecis_cap_only_under_circleci() {
        assert_eq!(max_part(None, Some("true")), Some(3000 << 20));
        assert_eq!(max_part(None, Some("false")), None);
        assert_eq!(max_part(None, None), None);
        assert_eq!(max_part(Some(1 << 20), Some("true")), Some(1 << 20));
        assert_eq!(max_part(Some(1 << 20), None), Some(1 << 20));
    }

    #[test]
    fn encrypt_reports_needs_a_recipient() {
        let key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let e = Cli::try_parse_args(["corecatch", "run", "--encrypt-reports", "--", "true"])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let shown = e.to_string();
        assert!(
            shown.contains("--encrypt-to") && shown.contains("--encrypt-to-file"),
            "{shown}"
        );
        assert!(Cli::try_parse_args(["corecatch", "collect", "--encrypt-reports"]).is_err());
        let Command::Run(r) = Cli::try_parse_args([
            "corecatch",
            "run",
            "--encrypt-reports",
            "--encrypt-to",
            key,
            "--",
            "true",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(r.artifacts.encrypt_reports);
        assert_eq!(r.artifacts.store.recipients.len(), 1);
        // Without --encrypt-reports the reports stay plain; both recipient flags together.
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("r.txt");
        std::fs::write(&file, format!("{key}\n")).unwrap();
        let Command::Run(r) = Cli::try_parse_args([
            "corecatch",
            "run",
            "--encrypt-to",
            key,
            "--encrypt-to-file",
            file.to_str().unwrap(),
            "--encrypt-reports",
            "--",
            "true",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.artifacts.store.recipients.len(), 2);
        let Command::Run(r) =
            Cli::try_parse_args(["corecatch", "run", "--encrypt-to", key, "--", "true"]).unwrap()
        else {
            panic!()
        };
        assert!(!r.artifacts.encrypt_reports);
    }

    #[test]
    fn run_without_command_is_a_usage_error() {
        assert!(Cli::try_parse_args(["corecatch", "run"]).is_err());
    }
}
