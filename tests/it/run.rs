//! `corecatch run` and `collect` end to end on real crashes: exit-status passthrough, signal
//! forwarding, stdin, finding this run's cores (and only those), artifacts that gunzip back to the
//! original core, and bad input that loses nothing.

use crate::util::*;
use crate::{skip_or_fail, skip_unless_kernel_cores};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn status(o: &std::process::Output) -> i32 {
    o.status
        .code()
        .expect("corecatch itself must exit, not die of a signal")
}

/// Every manifest entry's size and sha256 match the file on disk.
fn assert_manifest_matches(out: &Path) {
    assert!(!verified_manifest_paths(out).is_empty());
}

#[test]
fn exit_codes_pass_through() {
    let dir = tempdir();
    let crash = crash_prog();
    let c = crash.to_str().unwrap();
    for (code, args) in [(0, vec!["exit", "0"]), (3, vec!["exit", "3"])] {
        let mut argv = vec!["run", "--out", "out", "--", c];
        argv.extend(args);
        let o = corecatch(dir.path(), &argv);
        assert_eq!(status(&o), code, "{}", stderr(&o));
    }
    assert!(
        !dir.path().join("out").exists(),
        "no artifacts when nothing crashed"
    );
}

#[test]
fn abort_gives_134_and_artifacts_that_gunzip_to_the_core() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    let o = corecatch(
        dir.path(),
        &[
            "run",
            "--keep-cores",
            "--out",
            "out",
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(status(&o), 134, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("SIGABRT"), "{err}");
    let out = dir.path().join("out");
    let gz = artifacts(&out, ".core.gz");
    assert_eq!(gz.len(), 1, "{err}");
    let kept = cores_in(dir.path());
    assert_eq!(kept.len(), 1, "--keep-cores keeps the raw core");
    assert_eq!(
        gunzip(&gz[0]),
        fs::read(&kept[0]).unwrap(),
        "gunzip restores the core"
    );
    assert_eq!(artifacts(&out, ".json").len(), 2, "report + manifest");
    assert_eq!(artifacts(&out, ".txt").len(), 1);
    assert_manifest_matches(&out);

    let report: serde_json::Value = serde_json::from_slice(
        &fs::read(gz[0].to_string_lossy().replace(".core.gz", ".json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["schema"], "corecatch.report.v1");
    assert_eq!(report["signal"]["number"], 6);
    assert_eq!(report["signal"]["name"], "SIGABRT");
    assert_eq!(report["process"]["executable"], crash.to_str().unwrap());
    assert_eq!(
        report["process"]["cmdline"],
        serde_json::json!([crash.to_str().unwrap(), "abort"])
    );
    assert_eq!(report["threads"][0]["crashed"], true);
    assert!(report["threads"][0]["registers"]["rip"]
        .as_str()
        .unwrap()
        .starts_with("0x"));

    let m = read_manifest(&out);
    assert_eq!(m["exit_status"], 134);
    assert_eq!(m["command"][1], "abort");
    assert_eq!(m["core_pattern"], core_pattern());
}

#[test]
fn segv_gives_139_and_the_raw_core_is_removed_after_packing() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    let o = corecatch(
        dir.path(),
        &["run", "--out", "out", "--", crash.to_str().unwrap(), "segv"],
    );
    assert_eq!(status(&o), 139, "{}", stderr(&o));
    assert!(stderr(&o).contains("SIGSEGV"), "{}", stderr(&o));
    assert!(
        cores_in(dir.path()).is_empty(),
        "raw core removed once its .gz is verified"
    );
    let gz = artifacts(&dir.path().join("out"), ".core.gz");
    assert_eq!(gz.len(), 1);
    let restored = gunzip(&gz[0]);
    assert!(corecatch::elf_core::parse(&restored).is_ok());
    assert_manifest_matches(&dir.path().join("out"));
}

#[test]
fn grandchild_crash_in_a_subdirectory_and_two_crashes_in_one_run() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    for d in ["a", "b/deep"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let script = format!(
        "(cd a && {c} abort); (cd b/deep && {c} segv); exit 5",
        c = crash.display()
    );
    let o = corecatch(
        dir.path(),
        &["run", "--out", "out", "--", "sh", "-c", &script],
    );
    assert_eq!(status(&o), 5, "{}", stderr(&o));
    let out = dir.path().join("out");
    assert_eq!(artifacts(&out, ".core.gz").len(), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("SIGABRT") && err.contains("SIGSEGV"), "{err}");
    assert_manifest_matches(&out);
    // Per crash: .core.gz, .json, .txt; and the run's index.html and debug bundle (one for
    // both crashes: each file once).
    assert_eq!(
        read_manifest(&out)["artifacts"].as_array().unwrap().len(),
        8
    );
    assert_eq!(artifacts(&out, ".tar.gz").len(), 1);
}

#[test]
fn cores_from_before_the_run_or_from_other_processes_are_left_alone() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    // A core from before the run, in a sub-directory the walk will visit.
    let old_dir = dir.path().join("old");
    fs::create_dir(&old_dir).unwrap();
    let old = crash_for_core(&crash, &["abort"], &old_dir);
    let old_bytes = fs::read(&old).unwrap();
    // During the run, an unrelated process (started by this test, not by the command) crashes
    // in the run's directory tree.
    let other_dir = dir.path().join("other");
    fs::create_dir(&other_dir).unwrap();
    let _shared = CrashLock::shared();
    let child = Command::new(bin())
        .current_dir(dir.path())
        .args([
            "run",
            "--out",
            "out",
            "--",
            "sh",
            "-c",
            "while [ ! -f go ]; do sleep 0.02; done",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let other = crash_for_core(&crash, &["abort"], &other_dir);
    fs::write(dir.path().join("go"), "").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    assert!(!dir.path().join("out").exists(), "{}", stderr(&o));
    assert_eq!(fs::read(&old).unwrap(), old_bytes, "old core untouched");
    assert!(other.exists(), "the other process's core is left in place");
    assert!(
        stderr(&o).contains("not a process of this run"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn forwarded_signals_reach_the_command() {
    use nix::sys::signal::Signal::*;
    let dir = tempdir();
    let crash = crash_prog();
    // SIGQUIT's default action dumps core: that core is collected like any other.
    for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] {
        let _shared = CrashLock::shared();
        let mut child = Command::new(bin())
            .current_dir(dir.path())
            .args([
                "run",
                "--out",
                "out",
                "--",
                crash.to_str().unwrap(),
                "pause",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            status(&o),
            128 + sig as i32,
            "the command died of {sig}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_hard_core_limit_of_zero_is_reported_and_the_run_goes_on() {
    // Root may raise any limit, so lower the hard limit and drop to an unprivileged user first.
    if Command::new("setpriv").arg("--version").output().is_err() {
        skip_or_fail!("setpriv (util-linux) is not installed");
    }
    let script = format!(
        "ulimit -Hc 0 && exec setpriv --reuid=65534 --regid=65534 --clear-groups {} run -- sh -c 'exit 4'",
        bin().display()
    );
    let o = Command::new("sh")
        .args(["-c", &script])
        .current_dir("/")
        .output()
        .unwrap();
    let err = stderr(&o);
    if err.contains("setpriv:") {
        skip_or_fail!("cannot drop privileges here: {err}");
    }
    assert_eq!(status(&o), 4, "{err}");
    assert!(err.contains("hard RLIMIT_CORE is 0"), "{err}");
}

#[test]
fn collect_without_paths_looks_where_core_pattern_puts_cores() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    fs::create_dir(dir.path().join("sub")).unwrap();
    crash_for_core(&crash, &["abort"], &dir.path().join("sub"));
    let o = corecatch(dir.path(), &["collect", "--out", "out"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    assert_eq!(
        artifacts(&dir.path().join("out"), ".core.gz").len(),
        1,
        "{}",
        stderr(&o)
    );
    assert!(cores_in(&dir.path().join("sub")).is_empty());
}

#[test]
fn stdin_reaches_the_command() {
    let dir = tempdir();
    let crash = crash_prog();
    let mut child = Command::new(bin())
        .current_dir(dir.path())
        .args(["run", "--", crash.to_str().unwrap(), "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello through corecatch\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(status(&o), 0);
    assert_eq!(o.stdout, b"hello through corecatch\n");
}

#[test]
fn command_not_found_not_executable_and_empty() {
    let dir = tempdir();
    let o = corecatch(dir.path(), &["run", "--", "./no-such-command"]);
    assert_eq!(status(&o), 127);
    assert!(
        stderr(&o).contains("no-such-command: command not found"),
        "{}",
        stderr(&o)
    );

    fs::write(dir.path().join("script"), "#!/bin/sh\n").unwrap();
    let o = corecatch(dir.path(), &["run", "--", "./script"]);
    assert_eq!(
        status(&o),
        126,
        "mode 644 is not executable: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("cannot execute"), "{}", stderr(&o));

    let o = corecatch(dir.path(), &["run"]);
    assert_eq!(status(&o), 2, "{}", stderr(&o));
}

#[test]
fn unwritable_out_dir_keeps_the_core_and_the_status() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    // A path below a regular file can never be a directory, even for root.
    fs::write(dir.path().join("file"), "").unwrap();
    let o = corecatch(
        dir.path(),
        &[
            "run",
            "--out",
            "file/out",
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(status(&o), 134, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("file/out") && err.contains("the core stays at"),
        "{err}"
    );
    assert!(
        err.contains("SIGABRT"),
        "the crash is still reported: {err}"
    );
    assert_eq!(cores_in(dir.path()).len(), 1, "raw core kept");
}

#[test]
fn collect_stores_existing_cores_and_skips_what_is_not_a_core() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    let cores = dir.path().join("cores");
    fs::create_dir(&cores).unwrap();
    let core = crash_for_core(&crash, &["segv"], &cores);
    let original = fs::read(&core).unwrap();
    fs::write(cores.join("core.1"), "not a core at all").unwrap();
    let o = corecatch(dir.path(), &["collect", "--out", "out", "cores"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("core.1") && err.contains("not an ELF core"),
        "{err}"
    );
    assert!(err.contains("SIGSEGV"), "{err}");
    let gz = artifacts(&dir.path().join("out"), ".core.gz");
    assert_eq!(gz.len(), 1);
    assert_eq!(gunzip(&gz[0]), original);
    assert!(!core.exists(), "collected core removed after verification");
    assert!(cores.join("core.1").exists(), "the non-core is left alone");
    assert_manifest_matches(&dir.path().join("out"));
}

#[test]
fn collect_of_a_truncated_core_reports_what_it_can() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let crash = crash_prog();
    let core = crash_for_core(&crash, &["abort"], dir.path());
    let data = fs::read(&core).unwrap();
    let cut = dir.path().join("core.cut");
    fs::write(&cut, &data[..data.len() / 3]).unwrap();
    let o = corecatch(
        dir.path(),
        &["collect", "--keep-cores", "--out", "out", "core.cut"],
    );
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("truncated"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let gz = artifacts(&dir.path().join("out"), ".core.gz");
    assert_eq!(gunzip(&gz[0]), &data[..data.len() / 3]);
}
