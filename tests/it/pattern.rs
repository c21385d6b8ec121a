//! `corecatch pattern`, and `run` under core patterns other than the machine's: these rewrite the
//! global kernel.core_pattern, so they run one at a time (CrashLock exclusive, which also keeps
//! every crashing test out), restore the old settings on every exit path (a drop guard, which
//! also runs when an assertion panics), and skip with a printed reason where they cannot write it
//! (fail under CI: `util::skip_or_fail`).

use crate::util::*;
use std::fs;

#[test]
fn pattern_explains_the_current_settings() {
    let dir = tempdir();
    // Shared: no other test rewrites core_pattern between our reads of it.
    let _shared = CrashLock::shared();
    let o = corecatch_locked(dir.path(), &["pattern"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&core_pattern()), "{out}");
    assert!(out.contains("RLIMIT_CORE"), "{out}");

    let o = corecatch_locked(dir.path(), &["pattern", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["core_pattern"], core_pattern());
    assert!(v["warnings"].is_array());
    assert!(v["explanation"]["description"].is_string());
}

#[test]
fn pattern_warns_about_pipes_limits_and_missing_directories() {
    let dir = tempdir();
    let Some(_g) = PatternGuard::set("|/bin/false", false) else {
        return;
    };
    let o = corecatch_locked(dir.path(), &["pattern", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["explanation"]["pattern"]["kind"]["kind"], "pipe", "{v}");
    assert!(!v["warnings"].as_array().unwrap().is_empty(), "{v}");
    drop(_g);

    let Some(_g) = PatternGuard::set("/nonexistent-corecatch-dir/core.%p", false) else {
        return;
    };
    let o = corecatch_locked(dir.path(), &["pattern"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("/nonexistent-corecatch-dir") && out.contains("not writable"),
        "{out}"
    );
}

#[test]
fn run_finds_cores_named_by_the_seed_pattern() {
    let dir = tempdir();
    let crash = crash_prog();
    let Some(_g) = PatternGuard::set("core.%p.%E", false) else {
        return;
    };
    fs::create_dir(dir.path().join("sub")).unwrap();
    let script = format!("cd sub && {} segv", crash.display());
    let o = corecatch_locked(
        dir.path(),
        &["run", "--out", "out", "--", "sh", "-c", &script],
    );
    assert_eq!(
        o.status.code(),
        Some(139),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let names: Vec<String> = fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".core.gz")), "{names:?}");
    assert!(
        cores_in(&dir.path().join("sub")).is_empty(),
        "raw core removed"
    );
}

#[test]
fn run_finds_cores_in_an_absolute_pattern_directory() {
    let dir = tempdir();
    let cores = tempdir();
    let crash = crash_prog();
    let pattern = format!("{}/%e.%p.%t", cores.path().display());
    let Some(_g) = PatternGuard::set(&pattern, false) else {
        return;
    };
    let o = corecatch_locked(
        dir.path(),
        &[
            "run",
            "--out",
            "out",
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(134),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        dir.path().join("out/manifest.json").exists(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        cores_in(cores.path()).is_empty(),
        "raw core moved into the artifacts"
    );
}

#[test]
fn run_explains_a_pipe_handler_that_swallows_cores() {
    let dir = tempdir();
    let crash = crash_prog();
    let Some(_g) = PatternGuard::set("|/bin/false", false) else {
        return;
    };
    let o = corecatch_locked(
        dir.path(),
        &[
            "run",
            "--out",
            "out",
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(o.status.code(), Some(134));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/bin/false"), "{err}");
}
