//! Hostile input, end to end: the real binary on real crashes and real files that a CI machine,
//! a careless user or a malicious program name can produce. Concurrent runs sharing `--out`,
//! program names that carry GitHub workflow commands or terminal escapes, a FIFO where a core
//! should be, SIGTERM while packing, damaged or foreign manifests, bad flags, missing paths, a
//! process that lowers its own core limit, and DWARF line numbers at the top of u32.
//!
//! Every child process runs in its own process group under a deadline: on timeout the group is
//! killed and the test fails with what it printed so far. Nothing here asserts on timing.

use crate::skip_unless_kernel_cores;
use crate::util::*;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for one corecatch invocation on a small core (2 shared CPUs).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What a child process did: exit code or signal, and its output.
struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ran {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn ctx(&self) -> String {
        format!(
            "exit {:?} signal {:?}\n--- stderr:\n{}\n--- stdout:\n{}",
            self.code,
            self.signal,
            self.err(),
            self.out()
        )
    }
}

/// corecatch with `args` in `cwd`: stdin closed, stdout/stderr piped, its own process group (so
/// a timeout can kill it and anything it started), no CI environment leaking in.
fn cc_command<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .current_dir(cwd)
        .env_remove("CORECATCH_OUT")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    c
}

/// Reader threads for a spawned child's pipes.
struct Pipes {
    out: Option<std::thread::JoinHandle<Vec<u8>>>,
    err: Option<std::thread::JoinHandle<Vec<u8>>>,
}

fn drain(child: &mut Child) -> Pipes {
    fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    }
    Pipes {
        out: child.stdout.take().map(reader),
        err: child.stderr.take().map(reader),
    }
}

/// Kill the child's whole process group (it was started with `process_group(0)`).
fn kill_group(child: &Child) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Wait for `child` until `timeout`; on timeout kill its group and panic with its output.
fn finish(mut child: Child, pipes: Pipes, timeout: Duration, what: &str) -> Ran {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            kill_group(&child);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever it started that still holds the pipes goes with the group.
    if status.is_some() {
        kill_group(&child);
    }
    let stdout = pipes.out.map(|h| h.join().unwrap()).unwrap_or_default();
    let stderr = pipes.err.map(|h| h.join().unwrap()).unwrap_or_default();
    let Some(st) = status else {
        panic!(
            "{what}: still running after {timeout:?}, killed\n--- stderr:\n{}\n--- stdout:\n{}",
            String::from_utf8_lossy(&stderr),
            String::from_utf8_lossy(&stdout)
        );
    };
    Ran {
        code: st.code(),
        signal: st.signal(),
        stdout,
        stderr,
    }
}

fn run_cmd(mut cmd: Command, timeout: Duration, what: &str) -> Ran {
    let mut child = cmd.spawn().unwrap();
    let pipes = drain(&mut child);
    finish(child, pipes, timeout, what)
}

/// `corecatch ARGS` in `cwd` under the deadline.
fn cc(cwd: &Path, args: &[&str]) -> Ran {
    run_cmd(cc_command(cwd, args), RUN_TIMEOUT, &args.join(" "))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `core.<pid>.<name>` of every `.core.gz` in `out`.
fn stems(out: &Path) -> Vec<String> {
    names_in(out)
        .into_iter()
        .filter_map(|n| n.strip_suffix(".core.gz").map(str::to_string))
        .collect()
}

/// Compile C (or assembly) `source` written into `dir` as `file` with gcc, run in `dir` (so the
/// DWARF names `dir/file`). Returns the executable.
fn gcc_in(dir: &Path, file: &str, source: &str, exe: &str, flags: &[&str]) -> PathBuf {
    fs::write(dir.join(file), source).unwrap();
    let st = Command::new("gcc")
        .current_dir(dir)
        .args(flags)
        .arg("-o")
        .arg(exe)
        .arg(file)
        .status()
        .unwrap();
    assert!(st.success(), "gcc failed on {file}");
    dir.join(exe)
}

fn c0_controls_other_than_nl_tab(bytes: &[u8]) -> Vec<(usize, u8)> {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
        .map(|(i, &b)| (i, b))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Concurrent runs sharing one --out.

#[test]
fn hostile_1_concurrent_runs_share_one_out_dir() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let crash = crash_prog();
    let dir = tempdir();
    let out = dir.path().join("out");
    const ROUNDS: usize = 3;
    const AT_ONCE: usize = 3;
    let mut ran = 0;
    for round in 0..ROUNDS {
        // One working directory per run: with the plain `core` pattern a second crash in the
        // same directory would overwrite the first core. The directories are siblings, so no run
        // scans another's.
        let mut children = Vec::new();
        for k in 0..AT_ONCE {
            let cwd = dir.path().join(format!("r{round}-{k}"));
            fs::create_dir(&cwd).unwrap();
            let args = [
                OsStr::new("run"),
                OsStr::new("--out"),
                out.as_os_str(),
                OsStr::new("--"),
                crash.as_os_str(),
                OsStr::new("abort"),
            ];
            let mut child = cc_command(&cwd, &args).spawn().unwrap();
            let pipes = drain(&mut child);
            children.push((child, pipes));
        }
        for (child, pipes) in children {
            let r = finish(child, pipes, RUN_TIMEOUT, "concurrent run");
            assert_eq!(r.code, Some(134), "status passes through; {}", r.ctx());
            ran += 1;
        }
    }

    let crashes = stems(&out);
    assert_eq!(
        crashes.len(),
        ran,
        "every run stored its core: {:?}",
        names_in(&out)
    );
    let listed = verified_manifest_paths(&out);
    for stem in &crashes {
        for ext in ["core.gz", "json", "txt"] {
            let p = format!("{stem}.{ext}");
            assert!(
                listed.contains(&p),
                "manifest.json lacks {p} (a concurrent run's entries were lost); lists {listed:?}"
            );
        }
    }
    assert!(
        listed.iter().any(|p| p == "index.html"),
        "index.html is listed (and its sha256 matched above): {listed:?}"
    );
    let page = fs::read_to_string(out.join("index.html")).unwrap();
    for stem in &crashes {
        assert!(
            page.contains(&format!("{stem}.core.gz")),
            "index.html lacks the crash {stem} that manifest.json holds"
        );
    }
    let leftovers: Vec<_> = names_in(&out)
        .into_iter()
        .filter(|n| n.starts_with(".corecatch-") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. GitHub workflow-command injection through a program name.

#[test]
fn hostile_2_github_commands_cannot_be_injected_by_a_program_name() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let dir = tempdir();
    let exe = dir.path().join("x\n::warning title=INJ::injected");
    fs::copy(crash_prog(), &exe).unwrap();
    let summary = dir.path().join("summary.md");
    fs::write(&summary, "earlier step\n").unwrap();
    let mut cmd = cc_command(
        dir.path(),
        &[
            OsStr::new("run"),
            OsStr::new("--github"),
            OsStr::new("--out"),
            OsStr::new("out"),
            OsStr::new("--"),
            exe.as_os_str(),
            OsStr::new("abort"),
        ],
    );
    cmd.env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_WORKSPACE", dir.path());
    let r = run_cmd(cmd, RUN_TIMEOUT, "run --github");
    assert_eq!(r.code, Some(134), "{}", r.ctx());
    let out = r.out();
    let lines: Vec<&str> = out.lines().collect();

    assert!(
        !lines.iter().any(|l| l.starts_with("::warning")),
        "an injected workflow command on stdout: {out}"
    );
    // Folded backtrace: ::group:: .. ::stop-commands::TOKEN .. backtrace .. ::TOKEN:: ..
    // ::endgroup::
    let stop = lines
        .iter()
        .position(|l| l.starts_with("::stop-commands::"))
        .unwrap_or_else(|| panic!("no ::stop-commands:: around the backtrace: {out}"));
    let token = &lines[stop]["::stop-commands::".len()..];
    assert!(
        token.len() >= 16
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "the stop-commands token must be random-looking and at least 16 chars: {token:?}"
    );
    let resume_line = format!("::{token}::");
    let resume = lines
        .iter()
        .position(|l| *l == resume_line)
        .unwrap_or_else(|| panic!("no {resume_line} resuming commands: {out}"));
    assert!(stop < resume, "{out}");
    let inside = &lines[stop + 1..resume];
    assert!(
        inside.iter().any(|l| l.starts_with("Thread ")) && inside.iter().any(|l| l.contains("#0 ")),
        "the backtrace sits between stop-commands and the resume token: {out}"
    );
    assert!(
        !inside.iter().any(|l| l.contains(token)),
        "the token never appears inside the stopped region: {out}"
    );
    let group = lines
        .iter()
        .position(|l| l.starts_with("::group::"))
        .unwrap_or_else(|| panic!("{out}"));
    let endgroup = lines
        .iter()
        .position(|l| *l == "::endgroup::")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(group < stop && resume < endgroup, "{out}");
    // Outside the stopped region only the commands corecatch emits itself.
    for (i, l) in lines.iter().enumerate() {
        if (stop..=resume).contains(&i) {
            continue;
        }
        if l.starts_with("::") {
            assert!(
                l.starts_with("::error ") || l.starts_with("::group::") || *l == "::endgroup::",
                "unexpected workflow command {l:?} in {out}"
            );
        }
    }
    let md = fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("earlier step\n"), "appended: {md}");
    assert!(
        !md.lines()
            .any(|l| l.starts_with("::") || l.starts_with("::warning")),
        "a raw injected line in the step summary: {md}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Terminal escapes in a program name.

#[test]
fn hostile_3_control_bytes_in_a_program_name_are_shown_escaped() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let dir = tempdir();
    let name = "evil\x1b[31mred\x07";
    let exe = dir.path().join(name);
    fs::copy(crash_prog(), &exe).unwrap();
    let r = run_cmd(
        cc_command(
            dir.path(),
            &[
                OsStr::new("run"),
                OsStr::new("--out"),
                OsStr::new("out"),
                OsStr::new("--"),
                exe.as_os_str(),
                OsStr::new("abort"),
            ],
        ),
        RUN_TIMEOUT,
        "run on evil name",
    );
    assert_eq!(r.code, Some(134), "{}", r.ctx());
    let bad = c0_controls_other_than_nl_tab(&r.stderr);
    assert!(
        bad.is_empty(),
        "raw control bytes {bad:?} on stderr: {:?}",
        r.err()
    );
    let shown = r"evil\x1b[31mred\x07";
    assert!(
        r.err().contains(shown),
        "the name is shown escaped as {shown}: {}",
        r.err()
    );
    let out = dir.path().join("out");
    let txt = artifacts(&out, ".txt");
    assert_eq!(txt.len(), 1, "{}", r.ctx());
    let text = fs::read(&txt[0]).unwrap();
    let bad = c0_controls_other_than_nl_tab(&text);
    assert!(
        bad.is_empty(),
        "raw control bytes {bad:?} in {}: {:?}",
        txt[0].display(),
        String::from_utf8_lossy(&text)
    );
    assert!(
        String::from_utf8_lossy(&text).contains(shown),
        "{}",
        String::from_utf8_lossy(&text)
    );
    // The JSON report keeps the exact name (JSON-escaped, so no raw control bytes either).
    let json = txt[0].to_string_lossy().replace(".txt", ".json");
    let raw = fs::read(&json).unwrap();
    assert!(
        c0_controls_other_than_nl_tab(&raw).is_empty(),
        "JSON escapes controls"
    );
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        v["process"]["executable"].as_str(),
        exe.to_str(),
        "the exact name in the JSON"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. A FIFO named as a core.

#[test]
fn hostile_4_a_fifo_named_core_is_refused_not_opened() {
    let dir = tempdir();
    let fifo = dir.path().join("core");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Nobody ever opens the other end: a blocking open() would wait forever.
    let timeout = Duration::from_secs(20);
    for args in [
        &["collect", "--out", "out", "core"][..],
        &["bt", "core"][..],
    ] {
        let r = run_cmd(cc_command(dir.path(), args), timeout, &args.join(" "));
        assert_eq!(r.code, Some(1), "{}: {}", args.join(" "), r.ctx());
        assert!(
            r.err().contains("not a regular file"),
            "{}: the message says why: {}",
            args.join(" "),
            r.ctx()
        );
        assert!(!r.err().contains("panicked"), "{}", r.ctx());
    }
    assert!(
        fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO is left alone"
    );
}

/// A FIFO where the core says its executable was (the core names files of another machine,
/// or a hostile process planted one): the backtrace goes on without it, says why, never waits.
#[test]
fn hostile_4_a_fifo_where_the_core_names_a_file_is_not_opened() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let exe = dir.path().join("nested");
    fs::copy(crash_prog(), &exe).unwrap();
    let core = crash_for_core(&exe, &["segv"], dir.path());
    fs::remove_file(&exe).unwrap();
    nix::unistd::mkfifo(&exe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let core_arg = core.to_str().unwrap();
    let args = ["bt", core_arg];
    let r = run_cmd(cc_command(dir.path(), &args), Duration::from_secs(60), "bt");
    assert_eq!(r.code, Some(0), "{}", r.ctx());
    assert!(
        r.out().contains("not a regular file"),
        "the warning names the FIFO: {}",
        r.ctx()
    );
    assert!(!r.err().contains("panicked"), "{}", r.ctx());
}

// ---------------------------------------------------------------------------------------------
// 5. SIGTERM while packing; stale temporary files of a dead corecatch.

#[test]
fn hostile_5_sigterm_while_packing_leaves_no_partial_artifacts() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let dir = tempdir();
    let out = dir.path().join("out");
    // fixtures/crash/crash.c `big N`: N MiB of incompressible heap, then abort(): a ~1 GiB core
    // that takes seconds to compress.
    let mut child = cc_command(
        dir.path(),
        &[
            "run",
            "--out",
            "out",
            "--",
            crash_prog().to_str().unwrap(),
            "big",
            "1024",
        ],
    )
    .env("CORECATCH_PROGRESS_INTERVAL", "1")
    .spawn()
    .unwrap();
    let pipes = drain(&mut child);
    // Packing has started once the core's temp part exists (`.corecatch-<pid>-*.part.tmp`, named by
    // src/artifacts/publish.rs).
    let deadline = Instant::now() + Duration::from_secs(300);
    let packing = loop {
        if names_in(&out)
            .iter()
            .any(|n| n.starts_with(".corecatch-") && n.ends_with(".part.tmp"))
        {
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !packing {
        let r = finish(child, pipes, Duration::from_secs(1), "big run");
        panic!(
            "never saw packing start (no .corecatch-*.part.tmp in out/): {}",
            r.ctx()
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let r = finish(child, pipes, Duration::from_secs(300), "run after SIGTERM");
    assert_eq!(
        r.code,
        Some(134),
        "corecatch exits with the command's status after SIGTERM; {}",
        r.ctx()
    );
    let names = names_in(&out);
    let temps: Vec<_> = names
        .iter()
        .filter(|n| n.starts_with(".corecatch-") || n.ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert!(
        !cores_in(dir.path()).is_empty(),
        "the raw core is kept when packing was interrupted: {:?}",
        names_in(dir.path())
    );
    // Whatever was written is complete and listed; nothing half-written is.
    let others: Vec<&String> = names.iter().filter(|n| *n != "manifest.json").collect();
    if !others.is_empty() {
        let listed = verified_manifest_paths(&out);
        for n in others {
            assert!(
                listed.contains(n),
                "{n} in out/ is not in manifest.json ({listed:?})"
            );
        }
    }
}

#[test]
fn hostile_5_stale_temp_files_of_a_dead_corecatch_are_removed() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let dir = tempdir();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    // Temporary files are named `.corecatch-<pid>-<random>…` (src/artifacts/publish.rs), so a
    // later run can tell a dead writer's leftover (removed) from a live concurrent writer's file
    // (kept).
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    assert!(
        !Path::new(&format!("/proc/{dead}")).exists(),
        "pid {dead} is gone"
    );
    let stale = out.join(format!(".corecatch-{dead}-aB3xYz.gz.tmp"));
    fs::write(&stale, vec![0x1f; 4096]).unwrap();
    let live = out.join(format!(".corecatch-{}-qW7eRt.gz.tmp", std::process::id()));
    fs::write(&live, b"a live writer's file").unwrap();

    crash_for_core(&crash_prog(), &["abort"], dir.path());
    let r = cc(dir.path(), &["collect", "--out", "out"]);
    assert_eq!(r.code, Some(0), "{}", r.ctx());
    assert_eq!(stems(&out).len(), 1, "the core was collected: {}", r.ctx());
    assert!(
        !stale.exists(),
        "the dead writer's {} is removed: {:?}",
        stale.display(),
        names_in(&out)
    );
    assert!(
        live.exists(),
        "a live process's temp file {} is left alone",
        live.display()
    );
    // `run` sweeps too, before the command starts.
    fs::write(&stale, vec![0x1f; 4096]).unwrap();
    let r = cc(dir.path(), &["run", "--out", "out", "--", "true"]);
    assert_eq!(r.code, Some(0), "{}", r.ctx());
    assert!(!stale.exists(), "run removes {}", stale.display());
    assert!(live.exists(), "and leaves {} alone", live.display());
}

// ---------------------------------------------------------------------------------------------
// 6. A damaged or foreign manifest.json.

#[test]
fn hostile_6a_a_truncated_manifest_is_moved_aside_and_replaced() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let crash = crash_prog();
    let dir = tempdir();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let damaged = br#"{"schema": "corecatch.manifest.v1", "artifacts": [{"path": "core.1.x.co"#;
    fs::write(out.join("manifest.json"), damaged).unwrap();
    for d in ["a", "b"] {
        fs::create_dir(dir.path().join(d)).unwrap();
    }
    let first = cc(
        &dir.path().join("a"),
        &[
            "run",
            "--out",
            out.to_str().unwrap(),
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(first.code, Some(134), "{}", first.ctx());
    let aside: Vec<String> = names_in(&out)
        .into_iter()
        .filter(|n| n.starts_with("manifest.json.damaged-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged manifest is moved aside as manifest.json.damaged-*: {:?}",
        names_in(&out)
    );
    assert_eq!(
        fs::read(out.join(&aside[0])).unwrap(),
        damaged,
        "moved, not rewritten"
    );
    let err = first.err();
    assert!(
        err.contains("manifest.json") && err.contains(&aside[0]),
        "a warning names the damaged manifest and where it went: {err}"
    );
    let listed = verified_manifest_paths(&out);
    let crashes = stems(&out);
    assert_eq!(crashes.len(), 1, "{}", first.ctx());
    for ext in ["core.gz", "json", "txt"] {
        let p = format!("{}.{ext}", crashes[0]);
        assert!(listed.contains(&p), "{p} not in {listed:?}");
    }

    let second = cc(
        &dir.path().join("b"),
        &[
            "run",
            "--out",
            out.to_str().unwrap(),
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(second.code, Some(134), "{}", second.ctx());
    let listed = verified_manifest_paths(&out);
    let crashes = stems(&out);
    assert_eq!(crashes.len(), 2, "{}", second.ctx());
    for stem in &crashes {
        assert!(
            listed.contains(&format!("{stem}.core.gz")),
            "the second run adds to the new manifest: {listed:?}"
        );
    }
}

#[test]
fn hostile_6b_a_manifest_symlink_out_of_the_dir_is_never_written_through() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let dir = tempdir();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let target = dir.path().join("someone-elses-file");
    let original = b"not corecatch's: keep me as I am\n";
    fs::write(&target, original).unwrap();
    std::os::unix::fs::symlink(&target, out.join("manifest.json")).unwrap();
    let r = cc(
        dir.path(),
        &[
            "run",
            "--out",
            "out",
            "--",
            crash_prog().to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(r.code, Some(134), "{}", r.ctx());
    assert_eq!(
        fs::read(&target).unwrap(),
        original,
        "the symlink's target is untouched"
    );
    let meta = fs::symlink_metadata(out.join("manifest.json")).unwrap();
    assert!(
        meta.file_type().is_file(),
        "out/manifest.json ends as a regular file, not the symlink; {}",
        r.ctx()
    );
    let listed = verified_manifest_paths(&out);
    let crashes = stems(&out);
    assert_eq!(crashes.len(), 1, "{}", r.ctx());
    assert!(
        listed.contains(&format!("{}.core.gz", crashes[0])),
        "{listed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Usage errors.

#[test]
fn hostile_7_unknown_flags_and_bad_timeouts_are_usage_errors() {
    let dir = tempdir();
    // A control: hyphenated arguments after `--` still belong to the command.
    let r = cc(dir.path(), &["run", "--", "sh", "-c", "exit 3"]);
    assert_eq!(
        r.code,
        Some(3),
        "the command's status passes through; {}",
        r.ctx()
    );

    let marker = dir.path().join("ran");
    let m = marker.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        // `--keep-core` is not a flag (`--keep-cores` is): before `--` it is a usage error, not
        // the command to run.
        vec!["run", "--keep-core", "--", "touch", m],
        vec!["run", "--timeout", "-5", "--", "touch", m],
        vec!["run", "--timeout=-5", "--", "touch", m],
        vec!["run", "--timeout", "NaN", "--", "touch", m],
        vec!["collect", "--timeout", "-5", "--out", "out"],
        vec!["collect", "--timeout=-5", "--out", "out"],
        vec!["collect", "--timeout", "NaN", "--out", "out"],
        vec!["bt", "--timeout", "-5", "core"],
        vec!["bt", "--timeout=-5", "core"],
        vec!["bt", "--timeout", "NaN", "core"],
    ];
    for args in cases {
        let r = cc(dir.path(), &args);
        let what = args.join(" ");
        assert_eq!(r.code, Some(2), "`{what}` is a usage error; {}", r.ctx());
        assert!(
            r.err().contains("Usage") || r.err().contains("usage"),
            "`{what}`: a usage message; {}",
            r.ctx()
        );
        assert!(!marker.exists(), "`{what}` ran the command");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. collect on a missing path; collect on an empty default location.

#[test]
fn hostile_8_collect_names_a_missing_path_and_is_quiet_on_an_empty_dir() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let r = cc(
        dir.path(),
        &["collect", "--out", "out", "/nonexistent/path"],
    );
    assert_eq!(r.code, Some(1), "a named path that is missing; {}", r.ctx());
    assert!(r.err().contains("/nonexistent/path"), "{}", r.ctx());

    // core_pattern `core` (checked above: a relative file pattern): the default location is
    // the current directory, here empty.
    let empty = tempdir();
    let r = cc(empty.path(), &["collect", "--out", "out"]);
    assert_eq!(r.code, Some(0), "nothing to collect is fine; {}", r.ctx());
}

// ---------------------------------------------------------------------------------------------
// 9. A process that lowers its own RLIMIT_CORE.

#[test]
fn hostile_9_a_process_that_lowers_its_own_core_limit_is_explained() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let dir = tempdir();
    let exe = gcc_in(
        dir.path(),
        "nolimit.c",
        r#"#include <stdlib.h>
#include <sys/resource.h>
int main(void)
{
	struct rlimit r;
	getrlimit(RLIMIT_CORE, &r);
	r.rlim_cur = 0;
	setrlimit(RLIMIT_CORE, &r);
	abort();
}
"#,
        "nolimit",
        &["-g", "-O0"],
    );
    let r = cc(
        dir.path(),
        &["run", "--out", "out", "--", exe.to_str().unwrap()],
    );
    assert_eq!(r.code, Some(134), "{}", r.ctx());
    let err = r.err();
    let lower = err.to_lowercase();
    assert!(err.contains("SIGABRT"), "names the signal: {err}");
    assert!(lower.contains("no core"), "says no core was written: {err}");
    assert!(
        lower.contains("its own"),
        "says the process may have changed its own RLIMIT_CORE: {err}"
    );
    assert!(
        !err.contains("RLIMIT_CORE soft unlimited"),
        "corecatch's own limit is not the process's: {err}"
    );
    assert!(!dir.path().join("out").exists() || stems(&dir.path().join("out")).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 10. DWARF line numbers at the top of u32.

#[test]
fn hostile_10_line_numbers_near_u32_max_do_not_panic() {
    skip_unless_kernel_cores!();
    let _shared = CrashLock::shared();
    let dir = tempdir();
    // main (line 2) calls boom, whose store (line 5) the line table will put at u32::MAX. Both
    // frames are in hl.c, so the page's source context for the file spans line 2 to u32::MAX.
    let src = "static void __attribute__((noinline)) boom(int *p);
int main(void) { boom((int *)0); return 0; }
static void __attribute__((noinline)) boom(int *p)
{
\t*p = 42;
}
";
    fs::write(dir.path().join("hl.c"), src).unwrap();
    let st = Command::new("gcc")
        .current_dir(dir.path())
        .args(["-g", "-O0", "-S", "-o", "hl.s", "hl.c"])
        .status()
        .unwrap();
    assert!(st.success());
    // gcc's `#line` stops at 2147483647 and gas computes `.loc` deltas as a signed int, so
    // climb to u32::MAX in three steps, each with an instruction of its own (a `nop`): the
    // store in boom then sits at line 4294967295 of hl.c.
    let asm = fs::read_to_string(dir.path().join("hl.s")).unwrap();
    let store = asm
        .lines()
        .find(|l| l.trim_start().starts_with(".loc 1 5 "))
        .expect("a .loc for line 5 (the store)")
        .to_string();
    let col = store.trim_start()[".loc 1 5 ".len()..].to_string();
    let climb = format!(
        "\t.loc 1 1500000000 {col}\n\tnop\n\t.loc 1 3000000000 {col}\n\tnop\n\t.loc 1 4294967295 {col}"
    );
    let asm = asm.replacen(&store, &climb, 1);
    let exe = gcc_in(dir.path(), "hl2.s", &asm, "hl", &["-g"]);
    let r = cc(
        dir.path(),
        &[
            "run",
            "--keep-cores",
            "--out",
            "out",
            "--",
            exe.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(139), "status passes through; {}", r.ctx());
    let ctx = r.ctx();
    assert!(!ctx.contains("panicked"), "{ctx}");
    assert!(!ctx.contains("internal error"), "{ctx}");
    let frame = format!(
        "in boom (p=0x0) at {}:4294967295",
        dir.path().join("hl.c").display()
    );
    assert!(r.err().contains(&frame), "{frame} on stderr: {ctx}");
    let out = dir.path().join("out");
    let txt = artifacts(&out, ".txt");
    assert_eq!(txt.len(), 1, "{ctx}");
    assert!(fs::read_to_string(&txt[0]).unwrap().contains(&frame));
    // The page shows the frame, and main's source lines around its call as usual: lines 1 to 5
    // (CONTEXT = 3 after line 2), not cut short by arithmetic that wrapped at u32::MAX.
    let page = fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("hl.c:4294967295"), "{page}");
    assert!(
        page.contains("<span class=\"hit\">    2  int main(void) { boom((int *)0); return 0; }"),
        "main's line is highlighted: {page}"
    );
    for row in [
        "    3  static void __attribute__((noinline)) boom(int *p)\n",
        "    4  {\n",
        "    5  \t*p = 42;\n",
    ] {
        assert!(
            page.contains(row),
            "main's context lacks {row:?} (source lines after its call were cut off): {page}"
        );
    }
    verified_manifest_paths(&out);

    let core = cores_in(dir.path());
    assert_eq!(core.len(), 1, "--keep-cores");
    let r = cc(dir.path(), &["bt", core[0].to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.ctx());
    assert!(!r.ctx().contains("panicked"), "{}", r.ctx());
    assert!(r.out().contains(&frame), "{}", r.ctx());
}
