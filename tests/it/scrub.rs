//! `--scrub-env`, `--keep-env` and `--scrub-args` on real crashes: fixtures/scrub/secret.c keeps
//! `getenv("GITHUB_TOKEN")` in a local and a password among its arguments, crashes, and its core
//! and every artifact made of it are searched for the secrets (the real `gunzip` restores the
//! stored core); gdb reads the scrubbed core and prints the backtrace it prints for an unscrubbed
//! core of the same crash.

use crate::skip_unless_kernel_cores;
use crate::util::*;
use crate::zoo::{compare_thread, gdb_bt_with, GdbThread};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const AWS: &str = "AKsecretVALUEawsQ7rT9zWx2Lm5Np8K";
const GH: &str = "ghp_secretVALUEgithubR4nD0mT0k3nZqY8w";
const PW_ARG: &str = "--password=hunter2-SECRET-ARG";
/// The strings that must not be found; `PW_ARG` whole and its value.
const SECRETS: [&str; 4] = [AWS, GH, PW_ARG, "hunter2-SECRET-ARG"];
/// The flags of a fully scrubbed run.
const SCRUB: [&str; 4] = ["--scrub-env", "--scrub-args", "--keep-env", "KEEP*"];

fn secret_exe(flags: &[&str]) -> PathBuf {
    let name = if flags.contains(&"-m32") {
        "scrub-secret-m32"
    } else {
        "scrub-secret"
    };
    compile(&fixture("scrub/secret.c"), name, flags)
}

/// The program copied into `dir` as `./secret`, the name the command lines give it.
fn place(exe: &Path, dir: &Path) -> PathBuf {
    let to = dir.join("secret");
    fs::copy(exe, &to).unwrap();
    to
}

/// The secrets' environment, and `SECRET_MODE` when `mode` is given.
fn secret_env(cmd: &mut Command, mode: Option<&str>) {
    cmd.env("AWS_SECRET_ACCESS_KEY", AWS)
        .env("GITHUB_TOKEN", GH)
        .env("KEEPME", "visible")
        .env_remove("SECRET_MODE");
    if let Some(m) = mode {
        cmd.env("SECRET_MODE", m);
    }
}

/// `corecatch run FLAGS --keep-cores --out out -- ./secret --password=… other` in `dir`, with
/// the secrets in its environment.
fn run_secret(dir: &Path, flags: &[&str], mode: Option<&str>) -> Output {
    let _shared = CrashLock::shared();
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .args(flags)
        .args([
            "--keep-cores",
            "--out",
            "out",
            "--",
            "./secret",
            PW_ARG,
            "other",
        ])
        .current_dir(dir)
        .env_remove("CORECATCH_OUT")
        .env_remove("GITHUB_ACTIONS")
        .stdin(Stdio::null());
    secret_env(&mut cmd, mode);
    cmd.output().unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The secrets found in `bytes`, for a message: whole, and (`pieces`) any 8-byte piece of
/// them, the shortest copy the scrub looks for in registers and stacks.
fn secrets_in(bytes: &[u8], pieces: bool) -> Vec<String> {
    let mut found = Vec::new();
    for s in SECRETS {
        if contains(bytes, s.as_bytes()) {
            found.push(s.to_string());
        }
        if pieces {
            for w in s.as_bytes().windows(8) {
                if contains(bytes, w) {
                    found.push(format!("piece {:?} of {s}", String::from_utf8_lossy(w)));
                }
            }
        }
    }
    found
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `<stem>.json` of the one crash in `out`.
fn report_json(out: &Path) -> Value {
    let json: Vec<PathBuf> = artifacts(out, ".json")
        .into_iter()
        .filter(|p| !p.ends_with("manifest.json"))
        .collect();
    assert_eq!(json.len(), 1, "{json:?}");
    serde_json::from_slice(&fs::read(&json[0]).unwrap()).unwrap()
}

/// The value of local `name` of the frame of `function` in the crashed thread.
fn local<'a>(report: &'a Value, function: &str, name: &str) -> &'a str {
    report["threads"][0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == function)
        .and_then(|f| f["locals"].as_array())
        .and_then(|l| l.iter().find(|v| v["name"] == name))
        .and_then(|v| v["value"].as_str())
        .unwrap_or_else(|| panic!("no local {name} in {function}: {report}"))
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect()
}

/// The report of `./secret` run with two arguments under `--scrub-env --scrub-args`:
/// GITHUB_TOKEN among the scrubbed variables, both arguments masked in the command line it
/// shows.
fn assert_report_names_the_scrubbed(r: &Value, what: &str) {
    let env = names(&r["scrubbed"]["env"]);
    assert!(env.contains(&"GITHUB_TOKEN"), "{what}: {env:?}");
    assert_eq!(r["scrubbed"]["args"], 2, "{what}");
    assert_eq!(
        r["process"]["cmdline"],
        serde_json::json!(["./secret", "***", "***"]),
        "{what}"
    );
}

#[test]
fn scrubbed_run_leaves_no_secret_in_the_core_or_any_artifact() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    place(&secret_exe(&["-g", "-O0"]), dir.path());
    let o = run_secret(dir.path(), &SCRUB, None);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(134), "{err}");
    let out = dir.path().join("out");
    let gz = artifacts(&out, ".core.gz");
    assert_eq!(gz.len(), 1, "{err}");
    let kept = cores_in(dir.path());
    assert_eq!(kept.len(), 1, "--keep-cores keeps the raw core");

    // The stored core is the kept one, scrubbed, of the same size.
    let core = gunzip(&gz[0]);
    let raw = fs::read(&kept[0]).unwrap();
    assert_eq!(core.len(), raw.len());
    assert!(
        core == raw,
        "gunzip restores the kept (scrubbed) core byte for byte"
    );
    assert_eq!(secrets_in(&core, true), Vec::<String>::new(), "in the core");

    // Names stay, values are stars of their length; kept ones keep their values.
    let stars = |n: usize| "*".repeat(n);
    for entry in [
        format!("AWS_SECRET_ACCESS_KEY={}\0", stars(AWS.len())),
        format!("GITHUB_TOKEN={}\0", stars(GH.len())),
        format!("./secret\0{}\0*****\0", stars(PW_ARG.len())),
        "KEEPME=visible\0".to_string(),
        format!("PATH={}\0", std::env::var("PATH").unwrap()),
    ] {
        assert!(
            contains(&core, entry.as_bytes()),
            "{entry:?} not in the core"
        );
    }
    let token = core
        .windows(14)
        .position(|w| w == b"CORECATCH_RUN=")
        .expect("the run token's name");
    assert!(
        core[token + 14..token + 30]
            .iter()
            .all(u8::is_ascii_hexdigit),
        "the run token's value is kept"
    );

    // No file of the artifacts directory holds a secret, nor what gunzip makes of one.
    for f in files_below(&out) {
        let bytes = fs::read(&f).unwrap();
        assert_eq!(
            secrets_in(&bytes, false),
            Vec::<String>::new(),
            "in {}",
            f.display()
        );
        if f.to_string_lossy().ends_with(".gz") {
            let inflated = gunzip(&f);
            let found = secrets_in(&inflated, false);
            assert_eq!(found, Vec::<String>::new(), "in gunzip of {}", f.display());
        }
    }
    let stdout = o.stdout.clone();
    assert_eq!(secrets_in(&stdout, false), Vec::<String>::new(), "stdout");
    assert_eq!(secrets_in(&o.stderr, false), Vec::<String>::new(), "{err}");

    // The report names what was scrubbed, and shows the scrubbed bytes.
    let r = report_json(&out);
    let env = names(&r["scrubbed"]["env"]);
    for n in ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"] {
        assert!(env.contains(&n), "{n} not in {env:?}");
    }
    for n in ["KEEPME", "PATH", "LANG", "CORECATCH_RUN"] {
        assert!(!env.contains(&n), "{n} is kept, but in {env:?}");
    }
    assert_report_names_the_scrubbed(&r, "x86_64");
    assert_eq!(r["scrubbed"]["not_scrubbed"], serde_json::json!([]));
    assert!(r["scrubbed"]["fragments"].as_u64().is_some());
    let tok = local(&r, "check", "tok");
    assert!(
        tok.contains(&stars(GH.len())),
        "the local shows the scrubbed token: {tok}"
    );
    let txt = fs::read_to_string(gz[0].to_string_lossy().replace(".core.gz", ".txt")).unwrap();
    assert!(txt.contains("command: ./secret '***' '***'"), "{txt}");
    assert!(
        txt.lines()
            .any(|l| l.starts_with("scrubbed: the values of ") && l.contains("GITHUB_TOKEN")),
        "{txt}"
    );
    assert!(err.contains("scrubbed: the values of "), "{err}");
    assert_eq!(
        read_manifest(&out)["command"],
        serde_json::json!(["./secret", "***", "***"])
    );
    assert!(!verified_manifest_paths(&out).is_empty());
}

/// gdb's crashed thread: (function, source file, line) of each frame.
fn gdb_frames(exe: &Path, core: &Path) -> Vec<(Option<String>, Option<String>, Option<u32>)> {
    let threads: Vec<GdbThread> = gdb_bt_with("gdb", &[], exe, core);
    assert_eq!(threads.len(), 1);
    threads[0]
        .frames
        .iter()
        .map(|f| (f.function.clone(), f.file.clone(), f.line))
        .collect()
}

/// `gdb -batch -ex 'bt full' EXE CORE`'s output.
fn gdb_bt_full(exe: &Path, core: &Path) -> String {
    let o = Command::new(require("gdb"))
        .args([
            "-batch",
            "-nx",
            "-ex",
            "set debuginfod enabled off",
            "-ex",
            "bt full",
        ])
        .arg(exe)
        .arg(core)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn without_the_flags_the_secrets_stay_and_gdb_reads_both_cores_alike() {
    skip_unless_kernel_cores!();
    let exe = secret_exe(&["-g", "-O0"]);
    let (plain, scrubbed) = (tempdir(), tempdir());
    for mode in [None, Some("segv")] {
        let mut frames = Vec::new();
        for (dir, flags) in [(&plain, &[][..]), (&scrubbed, &SCRUB[..])] {
            let _ = fs::remove_dir_all(dir.path().join("out"));
            for c in cores_in(dir.path()) {
                fs::remove_file(c).unwrap();
            }
            let exe = place(&exe, dir.path());
            let o = run_secret(dir.path(), flags, mode);
            let want = if mode.is_some() { 139 } else { 134 };
            assert_eq!(o.status.code(), Some(want), "{}", stderr(&o));
            let core = cores_in(dir.path()).pop().expect("the kept core");
            let bytes = fs::read(&core).unwrap();
            let r = report_json(&dir.path().join("out"));
            let full = gdb_bt_full(&exe, &core);
            if flags.is_empty() {
                // So the checks on the scrubbed run can fail: the secrets are all there.
                for s in SECRETS {
                    assert!(contains(&bytes, s.as_bytes()), "{s} not in the plain core");
                }
                assert!(local(&r, "check", "tok").contains(GH));
                assert!(full.contains(GH) && full.contains(PW_ARG), "{full}");
                assert!(r.get("scrubbed").is_none(), "{r}");
            } else {
                assert_eq!(secrets_in(&bytes, true), Vec::<String>::new());
                assert_eq!(secrets_in(full.as_bytes(), false), Vec::<String>::new());
                // corecatch's own frames agree with gdb's on the scrubbed core.
                let g = gdb_bt_with("gdb", &[], &exe, &core);
                compare_thread(
                    &g[0],
                    &crate::zoo::frames_from_json(&r["threads"][0]["frames"]),
                    "scrubbed core",
                );
            }
            frames.push(gdb_frames(&exe, &core));
        }
        let functions: Vec<_> = frames[1].iter().filter_map(|f| f.0.as_deref()).collect();
        for f in ["use", "check", "main"] {
            assert!(functions.contains(&f), "{f} not in gdb's bt: {functions:?}");
        }
        assert_eq!(
            frames[0], frames[1],
            "gdb's backtrace of the plain and the scrubbed core ({mode:?})"
        );
    }
}

#[test]
fn collect_scrubs_a_core_left_on_disk() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    place(&secret_exe(&["-g", "-O0"]), dir.path());
    let core = {
        let _shared = CrashLock::shared();
        let mut cmd = Command::new(dir.path().join("secret"));
        std::os::unix::process::CommandExt::arg0(&mut cmd, "./secret");
        cmd.args([PW_ARG, "other"]).current_dir(dir.path());
        secret_env(&mut cmd, None);
        raise_core_limit(&mut cmd);
        let st = cmd.status().unwrap();
        assert!(std::os::unix::process::ExitStatusExt::core_dumped(&st));
        cores_in(dir.path()).pop().expect("a core in the directory")
    };
    assert!(contains(&fs::read(&core).unwrap(), GH.as_bytes()));
    let crashed_at = fs::metadata(&core).unwrap().modified().unwrap();
    let o = corecatch(
        dir.path(),
        &[
            "collect",
            "--scrub-env",
            "--keep-cores",
            "--out",
            "out",
            core.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    let stored = gunzip(&artifacts(&out, ".core.gz")[0]);
    assert!(
        stored == fs::read(&core).unwrap(),
        "the core on disk is scrubbed in place, and kept"
    );
    assert_eq!(
        fs::metadata(&core).unwrap().modified().unwrap(),
        crashed_at,
        "the scrubbed core keeps its modification time"
    );
    for s in [AWS, GH] {
        assert!(!contains(&stored, s.as_bytes()), "{s} in the stored core");
    }
    // --scrub-env alone: the arguments stay.
    assert!(contains(&stored, PW_ARG.as_bytes()));
    let r = report_json(&out);
    let env = names(&r["scrubbed"]["env"]);
    assert!(env.contains(&"AWS_SECRET_ACCESS_KEY") && env.contains(&"GITHUB_TOKEN"));
    assert!(!env.contains(&"PATH"));
    assert_eq!(r["scrubbed"]["args"], Value::Null);
    assert_eq!(
        r["process"]["cmdline"],
        serde_json::json!(["./secret", PW_ARG, "other"])
    );
}

#[test]
fn a_32_bit_process_is_scrubbed_too() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    place(&secret_exe(&["-g", "-O0", "-m32"]), dir.path());
    let o = run_secret(dir.path(), &SCRUB, None);
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let core = gunzip(&artifacts(&dir.path().join("out"), ".core.gz")[0]);
    assert_eq!(core[4], 1, "an ELF32 core");
    assert_eq!(secrets_in(&core, true), Vec::<String>::new());
    assert!(contains(&core, b"KEEPME=visible\0"));
    let r = report_json(&dir.path().join("out"));
    assert_eq!(r["core"]["machine"], "i386");
    assert_report_names_the_scrubbed(&r, "i386");
}

/// `collect --scrub-env --scrub-args` on QEMU's core of secret.c built for `triple` and run by
/// `qemu-QEMU`: 32-bit ARM (whose `_start` overwrites argc) and s390x (64-bit, big-endian).
#[test]
fn qemu_cores_of_arm_and_s390x_are_scrubbed_too() {
    for (qemu, triple, machine) in [
        ("arm", "arm-linux-gnueabihf", "arm"),
        ("s390x", "s390x-linux-gnu", "s390x"),
    ] {
        let exe = compile_with(
            &format!("{triple}-gcc"),
            &fixture("scrub/secret.c"),
            &format!("scrub-secret-{qemu}"),
            &["-g", "-O0"],
        );
        let dir = tempdir();
        place(&exe, dir.path());
        let sysroot = format!("/usr/{triple}");
        let mut cmd = Command::new(require(&format!("qemu-{qemu}")));
        cmd.args(["-L", &sysroot, "./secret", PW_ARG, "other"])
            .current_dir(dir.path());
        secret_env(&mut cmd, None);
        raise_core_limit(&mut cmd);
        {
            // QEMU re-raises the guest's signal: its own core may land here too.
            let _shared = CrashLock::shared();
            assert!(!cmd.output().unwrap().status.success());
        }
        let core = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".core"))
            .expect("QEMU's core of the guest");
        assert!(contains(&fs::read(&core).unwrap(), GH.as_bytes()));
        let o = corecatch(
            dir.path(),
            &[
                "collect",
                "--scrub-env",
                "--scrub-args",
                "--sysroot",
                &sysroot,
                "--out",
                "out",
                core.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = dir.path().join("out");
        let stored = gunzip(&artifacts(&out, ".core.gz")[0]);
        assert_eq!(secrets_in(&stored, true), Vec::<String>::new(), "{qemu}");
        let r = report_json(&out);
        assert_eq!(r["core"]["machine"], machine);
        assert_eq!(
            r["scrubbed"]["not_scrubbed"],
            serde_json::json!([]),
            "{qemu}"
        );
        assert_report_names_the_scrubbed(&r, qemu);
    }
}

#[test]
fn an_environment_that_cannot_be_found_is_said_not_scrubbed() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    place(&secret_exe(&["-g", "-O0"]), dir.path());
    // The program points argv[0] away from the stack and clears envp[]: the block's extent
    // cannot be known.
    let o = run_secret(dir.path(), &SCRUB, Some("moveargv"));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(134), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("corecatch: core ") && l.ends_with(": not scrubbed")),
        "{err}"
    );
    let r = report_json(&dir.path().join("out"));
    let missed = r["scrubbed"]["not_scrubbed"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "{r}");
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().ends_with(": not scrubbed")),
        "{r}"
    );
    // The arguments are still found through argv[].
    let core = gunzip(&artifacts(&dir.path().join("out"), ".core.gz")[0]);
    assert!(!contains(&core, PW_ARG.as_bytes()));
    assert_eq!(r["scrubbed"]["args"], 2);
}

#[test]
fn keep_env_without_scrub_env_is_a_usage_error() {
    let dir = tempdir();
    let o = corecatch(dir.path(), &["run", "--keep-env", "X", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
