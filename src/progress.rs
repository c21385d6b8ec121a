//! Progress of long steps (compressing a big core): a bar when stderr is a terminal (indicatif),
//! a plain line every few seconds otherwise (CI logs), nothing with `--quiet`.
//!
//! The interval of the plain lines is 5 s; `CORECATCH_PROGRESS_INTERVAL` (seconds) changes it,
//! which the tests use to see lines for a small core.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Default time between two plain progress lines.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// One long step being reported.
pub enum Progress {
    Quiet,
    Bar(ProgressBar),
    Lines {
        what: String,
        every: Duration,
        next: Instant,
    },
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

impl Progress {
    /// Start reporting `what` (e.g. "compressing core.123.dump").
    pub fn start(what: &str, quiet: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "corecatch: {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what.to_string());
            return Progress::Bar(bar);
        }
        let every = std::env::var("CORECATCH_PROGRESS_INTERVAL")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(INTERVAL);
        Progress::Lines {
            what: what.to_string(),
            every,
            next: Instant::now() + every,
        }
    }

    /// `done` of `total` bytes are through.
    pub fn update(&mut self, done: u64, total: u64) {
        match self {
            Progress::Quiet => {}
            Progress::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Progress::Lines { what, every, next } => {
                let now = Instant::now();
                if now >= *next {
                    let pct = (done as f64 * 100.0 / total.max(1) as f64).min(100.0);
                    eprintln!(
                        "corecatch: {what} ({} of {}, {pct:.0}%)",
                        gib(done),
                        gib(total)
                    );
                    *next = now + *every;
                }
            }
        }
    }

    /// The step is over: the bar disappears; plain lines need no closing.
    pub fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
