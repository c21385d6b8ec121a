//! The Debian package `make deb` builds: its control fields, the release binary as
//! /usr/bin/corecatch, a man page per subcommand that `man -l` renders with the current flags,
//! and shell completions that bash completes from (all generated from the clap definitions by
//! src/bin/gen.rs). The package is unpacked with `dpkg-deb -x`, not installed on this machine.

use crate::util::*;
use std::fs;
use std::process::Command;

fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_deb_holds_the_binary_man_pages_and_completions() {
    let d = dist();
    let deb = d.dir.join(format!("corecatch_{}_amd64.deb", d.version));
    assert!(
        deb.is_file(),
        "{} is missing: run `make deb` (`make test` does)",
        deb.display()
    );
    let dpkg = require("dpkg-deb");
    let fields = run_ok(Command::new(&dpkg).arg("--field").arg(&deb).args([
        "Package",
        "Version",
        "Architecture",
    ]));
    assert_eq!(
        fields,
        format!(
            "Package: corecatch\nVersion: {}\nArchitecture: amd64\n",
            d.version
        )
    );
    let root = tempdir();
    run_ok(Command::new(&dpkg).arg("-x").arg(&deb).arg(root.path()));
    let bin = root.path().join("usr/bin/corecatch");
    assert!(
        fs::read(&bin).unwrap() == fs::read(d.binary()).unwrap(),
        "/usr/bin/corecatch is not the release binary"
    );
    assert!(run_ok(Command::new(&bin).arg("--version")).starts_with("corecatch "));

    // A page per subcommand `--help` lists, rendered by man with the flags of today's CLI.
    let man1 = root.path().join("usr/share/man/man1");
    let help = run_ok(Command::new(&bin).arg("--help"));
    let subcommands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .collect();
    assert!(subcommands.len() >= 8, "{subcommands:?}");
    for sub in &subcommands {
        assert!(
            man1.join(format!("corecatch-{sub}.1.gz")).is_file(),
            "no man page for {sub}"
        );
    }
    let page = run_ok(
        Command::new(require("man"))
            .arg("-l")
            .arg(man1.join("corecatch-run.1.gz"))
            .env("MANWIDTH", "200")
            .env("MAN_KEEP_FORMATTING", ""),
    );
    for want in [
        "corecatch-run",
        "--max-artifact-size",
        "--compress",
        "--bundle",
    ] {
        assert!(page.contains(want), "the run page lacks {want}:\n{page}");
    }

    // bash completes subcommands and flags from the packaged script.
    let script = root
        .path()
        .join("usr/share/bash-completion/completions/corecatch");
    let complete = |words: &str, cword: usize, cur: &str, prev: &str| {
        run_ok(Command::new(require("bash")).arg("-c").arg(format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _corecatch corecatch {cur} {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        )))
    };
    let subs = complete("corecatch ru", 1, "ru", "corecatch");
    assert_eq!(subs.trim(), "run", "{subs}");
    let flags = complete("corecatch run --max-a", 2, "--max-a", "run");
    assert!(flags.lines().any(|l| l == "--max-artifact-size"), "{flags}");
    for f in [
        "usr/share/zsh/vendor-completions/_corecatch",
        "usr/share/fish/vendor_completions.d/corecatch.fish",
        "usr/share/doc/corecatch/copyright",
    ] {
        assert!(root.path().join(f).is_file(), "the package lacks /{f}");
    }
}
