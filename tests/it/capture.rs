//! `run --capture ptrace` and `--capture auto` on real crashes: the core corecatch writes itself
//! must read in gdb as the kernel's core of the same crash does, parse without warnings, hold
//! every thread, and the command's exit status and signals must be as if untraced. The tests
//! that rewrite core_pattern (a swallowing pipe, a missing directory) and lower the hard
//! RLIMIT_CORE need root and skip with a printed reason elsewhere (fail under CI).

use crate::skip_or_fail;
use crate::util::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn threads_prog() -> PathBuf {
    compile(
        &fixture("zoo/threads.c"),
        "zoo-threads",
        &["-g", "-O0", "-pthread"],
    )
}

/// The raw cores corecatch wrote itself (kept with --keep-cores) in `out`.
fn ptrace_cores(out: &Path) -> Vec<PathBuf> {
    let mut v = artifacts(out, "");
    v.retain(|p| p.file_name().unwrap().to_string_lossy().contains(".ptrace"));
    v
}

/// `corecatch run --capture ptrace --out out -- CMD...` in `dir`.
fn ptrace_run(dir: &Path, cmd: &[&str]) -> std::process::Output {
    let mut argv = vec!["run", "--capture", "ptrace", "--out", "out", "--"];
    argv.extend(cmd);
    corecatch(dir, &argv)
}

fn count_suffix(out: &Path, suffix: &str) -> usize {
    artifacts(out, suffix).len()
}

/// Function names of gdb's backtrace of the crashed thread, innermost first.
pub(crate) fn gdb_frames(exe: &Path, core: &Path) -> Vec<String> {
    let o = Command::new(require("gdb"))
        .args([
            "-batch",
            "-nx",
            "-ex",
            "set debuginfod enabled off",
            "-ex",
            "bt",
        ])
        .arg(exe)
        .arg(core)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            // "#0  0x... in name (args) at ..." or "#1  name (args) at ..."
            let rest = l
                .split_once(" in ")
                .map_or_else(|| l.split_whitespace().nth(1).unwrap_or(""), |(_, r)| r);
            rest.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

fn gdb_thread_count(exe: &Path, core: &Path) -> usize {
    let o = Command::new(require("gdb"))
        .args([
            "-batch",
            "-nx",
            "-ex",
            "set debuginfod enabled off",
            "-ex",
            "info threads",
        ])
        .arg(exe)
        .arg(core)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("(LWP ") && !l.starts_with("[Current thread"))
        .count()
}

/// Run `exe args` under `corecatch run --capture ptrace --keep-cores` in `dir`; returns the
/// output and the one core corecatch wrote.
fn run_ptrace(
    dir: &Path,
    exe: &Path,
    args: &[&str],
    status: i32,
) -> (std::process::Output, PathBuf) {
    let mut argv = vec![
        "run",
        "--capture",
        "ptrace",
        "--keep-cores",
        "--out",
        "out",
        "--",
    ];
    argv.push(exe.to_str().unwrap());
    argv.extend(args);
    let o = corecatch(dir, &argv);
    assert_eq!(o.status.code(), Some(status), "{}", stderr(&o));
    let cores = ptrace_cores(&dir.join("out"));
    assert_eq!(cores.len(), 1, "{cores:?} {}", stderr(&o));
    (o, cores[0].clone())
}

/// The core's pid, signal and thread count, after checking it parses without warnings.
fn parse_core(core: &Path) -> (i32, i32, usize) {
    let data = fs::read(core).unwrap();
    let c = corecatch::elf_core::parse(&data).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let pid = c.process.as_ref().unwrap().pid;
    assert_eq!(c.crashed_thread().unwrap().tid, c.threads[0].tid);
    (pid, c.signal().unwrap(), c.threads.len())
}

fn compare_with_kernel_core(exe: &Path, mode: &[&str], status: i32, signal: i32) {
    let dir = tempdir();
    let (o, ours) = run_ptrace(dir.path(), exe, mode, status);
    let (pid, sig, threads) = parse_core(&ours);
    assert_eq!((sig, threads), (signal, 1));
    assert!(
        stderr(&o).contains(&format!("pid {pid} ")),
        "the summary names the crashed pid: {}",
        stderr(&o)
    );
    assert_eq!(count_suffix(&dir.path().join("out"), ".core.gz"), 1);
    assert!(
        cores_in(dir.path()).is_empty(),
        "no second, kernel-written core of the same crash"
    );
    let frames = gdb_frames(exe, &ours);
    assert!(frames.iter().any(|f| f == "main"), "{frames:?}");

    if let Some(why) = kernel_cores_unavailable() {
        skip_or_fail!("the kernel-core comparison: {why}");
    }
    let kdir = tempdir();
    let kernel = crash_for_core(exe, mode, kdir.path());
    assert_eq!(gdb_frames(exe, &kernel), frames);
}

#[test]
fn ptrace_core_of_a_segv_reads_in_gdb_like_the_kernels() {
    compare_with_kernel_core(&crash_prog(), &["segv"], 139, 11);
}

#[test]
fn ptrace_core_of_the_abort_demo_reads_in_gdb_like_the_kernels() {
    compare_with_kernel_core(&abort_demo(), &[], 134, 6);
}

#[test]
fn ptrace_core_of_a_multithreaded_crash_has_every_thread() {
    let exe = threads_prog();
    let dir = tempdir();
    let (_, core) = run_ptrace(dir.path(), &exe, &[], 139);
    let (_, sig, threads) = parse_core(&core);
    assert_eq!((sig, threads), (11, 5));
    assert_eq!(gdb_thread_count(&exe, &core), 5);
    let frames = gdb_frames(&exe, &core);
    assert_eq!(
        frames.first().map(String::as_str),
        Some("crash_here"),
        "{frames:?}"
    );
}

#[test]
fn ptrace_catches_a_grandchild_crash_in_a_subdirectory() {
    let dir = tempdir();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::copy(crash_prog(), dir.path().join("sub/crash")).unwrap();
    let o = ptrace_run(
        dir.path(),
        &["sh", "-c", "cd sub && ./crash segv; echo after"],
    );
    // sh goes on after its child's crash and exits 0: the status is sh's.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "after\n");
    assert_eq!(
        count_suffix(&dir.path().join("out"), ".core.gz"),
        1,
        "{}",
        stderr(&o)
    );
    assert!(cores_in(&dir.path().join("sub")).is_empty());
    assert!(stderr(&o).contains("SIGSEGV"), "{}", stderr(&o));
}

#[test]
fn ptrace_passes_exit_codes_and_handled_signals_through() {
    let dir = tempdir();
    let crash = crash_prog();
    let o = ptrace_run(dir.path(), &[crash.to_str().unwrap(), "exit", "3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // A shell that traps SIGQUIT (a core signal it handles) goes on; nothing is captured.
    let o = ptrace_run(
        dir.path(),
        &[
            "bash",
            "-c",
            "trap 'echo caught' QUIT; kill -QUIT $$; exit 5",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "caught\n");
    assert!(!dir.path().join("out").exists(), "{}", stderr(&o));
}

#[test]
fn ptrace_forwards_sigterm_and_keeps_stop_and_continue() {
    let dir = tempdir();
    let crash = crash_prog();
    let _shared = CrashLock::shared();
    let mut child = Command::new(bin())
        .args(["run", "--capture", "ptrace", "--out", "out", "--"])
        .arg(&crash)
        .arg("pause")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Stop and continue the command itself: a group-stop under the tracer must not lose it.
    let cmd_pid = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .trim()
        .parse::<i32>()
        .unwrap();
    let cmd = nix::unistd::Pid::from_raw(cmd_pid);
    nix::sys::signal::kill(cmd, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let state = fs::read_to_string(format!("/proc/{cmd_pid}/stat")).unwrap();
    let state = state.rsplit_once(") ").unwrap().1.chars().next().unwrap();
    assert!(state == 'T' || state == 't', "stopped: {state}");
    nix::sys::signal::kill(cmd, nix::sys::signal::Signal::SIGCONT).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
}

#[test]
fn a_command_that_traces_its_own_child_still_runs_under_ptrace() {
    let dir = tempdir();
    let crash = crash_prog();
    // gdb cannot trace its inferior while corecatch traces it (PTRACE_TRACEME fails with
    // EPERM); it says so and exits, and its status comes through unchanged.
    let o = ptrace_run(
        dir.path(),
        &[
            "gdb",
            "-batch",
            "-nx",
            "-ex",
            "run",
            "-ex",
            "bt",
            "--args",
            crash.to_str().unwrap(),
            "segv",
        ],
    );
    let bare = Command::new("sh").args(["-c", "exit 1"]).status().unwrap();
    let code = o.status.code().expect("corecatch exits");
    assert!(
        code == 0 || code == bare.code().unwrap(),
        "{code}: {}",
        stderr(&o)
    );
}

#[test]
fn when_corecatch_itself_is_traced_ptrace_falls_back_with_a_note() {
    let dir = tempdir();
    let crash = crash_prog();
    let _shared = CrashLock::shared();
    // strace -f attaches to corecatch's child first, so our PTRACE_SEIZE fails with EPERM.
    let o = Command::new(require("strace"))
        .args(["-f", "-o", "/dev/null"])
        .arg(bin())
        .args(["run", "--capture", "ptrace", "--out", "out", "--"])
        .arg(&crash)
        .arg("abort")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot trace"), "{}", stderr(&o));
}

/// Under a core_pattern that keeps kernel cores away, `--capture auto` still leaves the core,
/// the report and the status (caller holds the PatternGuard).
fn auto_captures_anyway(dir: &Path, wrapper: Option<&str>) {
    let crash = crash_prog();
    let o = match wrapper {
        None => corecatch_locked(
            dir,
            &[
                "run",
                "--out",
                "out",
                "--",
                crash.to_str().unwrap(),
                "abort",
            ],
        ),
        Some(w) => Command::new("sh")
            .args([
                "-c",
                &format!(
                    "{w}; exec {} run --out out -- {} abort",
                    bin().display(),
                    crash.display()
                ),
            ])
            .current_dir(dir)
            .env_remove("CORECATCH_OUT")
            .output()
            .unwrap(),
    };
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let out = dir.join("out");
    assert_eq!(count_suffix(&out, ".core.gz"), 1, "{}", stderr(&o));
    assert_eq!(
        count_suffix(&out, ".json"),
        2,
        "report and manifest: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("SIGABRT"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ptrace") || stderr(&o).contains("traces"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn auto_uses_ptrace_when_a_pipe_handler_swallows_cores() {
    let dir = tempdir();
    let Some(_g) = PatternGuard::set("|/bin/false", false) else {
        return;
    };
    auto_captures_anyway(dir.path(), None);
}

#[test]
fn auto_uses_ptrace_when_the_pattern_directory_is_missing() {
    let dir = tempdir();
    let Some(_g) = PatternGuard::set("/nonexistent-corecatch-dir/core.%p", false) else {
        return;
    };
    auto_captures_anyway(dir.path(), None);
}

#[test]
fn auto_uses_ptrace_under_a_hard_core_limit_of_zero() {
    let dir = tempdir();
    let Some(_g) = PatternGuard::set("core", false) else {
        return;
    };
    auto_captures_anyway(dir.path(), Some("ulimit -Hc 0"));
    assert!(cores_in(dir.path()).is_empty());
}

#[test]
fn doctor_crashes_a_canary_and_says_how_cores_arrive() {
    let dir = tempdir();
    let o = corecatch(dir.path(), &["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("ptrace  a crash's core reaches corecatch"),
        "{out}"
    );
    assert!(out.contains("cores will be captured"), "{out}");
}

#[test]
fn doctor_under_a_swallowing_pipe_says_what_to_change() {
    let dir = tempdir();
    let Some(_g) = PatternGuard::set("|/bin/false", false) else {
        return;
    };
    let o = corecatch_locked(dir.path(), &["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "ptrace still captures: {out}{}",
        stderr(&o)
    );
    assert!(out.contains("kernel  no core"), "{out}");
    assert!(out.contains("sysctl -w kernel.core_pattern=core"), "{out}");
    assert!(out.contains("auto:   uses ptrace"), "{out}");
}
