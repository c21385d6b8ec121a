//! `corecatch-gen`: the files `make deb` packages beside the binary, generated from the same
//! clap definitions the binary parses with (`corecatch::cli::command`), so they cannot drift:
//!
//!   corecatch-gen man DIR           corecatch.1 and one page per subcommand (corecatch-run.1, …)
//!   corecatch-gen completions DIR   bash (corecatch), zsh (_corecatch), fish (corecatch.fish)
//!
//! Not part of the release binary: a separate target, so clap_mangen and clap_complete stay out
//! of it.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[1..] {
        ["man", dir] => man(Path::new(dir)),
        ["completions", dir] => completions(Path::new(dir)),
        _ => {
            eprintln!("usage: corecatch-gen man DIR | corecatch-gen completions DIR");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corecatch-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The top page and a page per (visible) subcommand, named as git's are.
fn man(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = corecatch::cli::command();
    write_page(&cmd, "corecatch", dir)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap takes 'static names; this process ends right after.
        let name: &'static str =
            Box::leak(format!("corecatch-{}", sub.get_name()).into_boxed_str());
        let sub = sub
            .clone()
            .name(name)
            .version(env!("CORECATCH_LONG_VERSION"));
        write_page(&sub, name, dir)?;
    }
    Ok(())
}

fn write_page(cmd: &clap::Command, name: &str, dir: &Path) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)
}

fn completions(dir: &Path) -> std::io::Result<()> {
    use clap_complete::{generate_to, Shell};
    std::fs::create_dir_all(dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = corecatch::cli::command();
        generate_to(shell, &mut cmd, "corecatch", dir)?;
    }
    Ok(())
}
