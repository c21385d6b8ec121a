//! Command-line parsing (clap derive) and its translation into `config` types. The only module
//! that imports clap.

use crate::config::{
    ArtifactConfig, BtConfig, Capture, CollectConfig, Command, PatternConfig, RunConfig,
    SymbolConfig,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Wrap a command, catch the core dumps of everything it starts, print a backtrace of every
/// thread, and store the compressed cores as CI artifacts.
#[derive(Debug, Parser)]
#[command(name = "corecatch", version, about, long_about = None)]
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
        /// How cores are captured: kernel (core_pattern), ptrace (corecatch traces CMD and writes
        /// the cores itself), or auto (kernel where its cores reach us, else ptrace).
        #[arg(long, value_enum, default_value_t = CaptureArg::Auto, value_name = "HOW")]
        capture: CaptureArg,
        /// The command and its arguments (after `--`).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
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
    /// Print the backtrace of every thread in a core.
    Bt {
        /// The core file.
        core: PathBuf,
        /// Print the report JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        symbols: SymbolArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CaptureArg {
    Auto,
    Kernel,
    Ptrace,
}

impl From<CaptureArg> for Capture {
    fn from(c: CaptureArg) -> Capture {
        match c {
            CaptureArg::Auto => Capture::Auto,
            CaptureArg::Kernel => Capture::Kernel,
            CaptureArg::Ptrace => Capture::Ptrace,
        }
    }
}

#[derive(Debug, Args)]
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
    #[command(flatten)]
    symbols: SymbolArgs,
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
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    timeout: f64,
}

impl SymbolArgs {
    fn into_config(self) -> SymbolConfig {
        SymbolConfig {
            debug_dirs: self.debug_dirs,
            sysroot: self.sysroot,
            exe: self.exe,
            max_frames: self.max_frames.max(1),
            timeout: Duration::try_from_secs_f64(self.timeout.max(0.0))
                .unwrap_or(Duration::from_secs(60)),
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
            symbols: self.symbols.into_config(),
        }
    }
}

impl Cli {
    /// Parse the process's arguments; on a usage error clap prints it and exits 2.
    pub fn parse_args() -> Command {
        Cli::parse().into_config()
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
                symbols,
            } => Command::Bt(BtConfig {
                core,
                json,
                symbols: symbols.into_config(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn capture_takes_a_method() {
        let c =
            Cli::try_parse_args(["corecatch", "run", "--capture", "ptrace", "--", "true"]).unwrap();
        let Command::Run(r) = c else { panic!() };
        assert_eq!(r.capture, Capture::Ptrace);
        assert!(Cli::try_parse_args(["corecatch", "run", "--capture", "x", "--", "true"]).is_err());
    }

    #[test]
    fn run_without_command_is_a_usage_error() {
        assert!(Cli::try_parse_args(["corecatch", "run"]).is_err());
    }
}
