//! Reports CI systems display: the crash signature and JUnit XML, on real crashes. The JUnit
//! file is read by a real JUnit consumer (junitparser from PyPI, installed by `make test`).

use crate::util::*;
use crate::{skip_or_fail, skip_unless_kernel_cores};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn crash_variant(name: &str, flags: &[&str]) -> PathBuf {
    compile(&fixture("crash/crash.c"), name, flags)
}

/// The signature from the report JSON of a `run` of `exe MODE` in a fresh directory.
fn signature_of(exe: &Path, mode: &str) -> String {
    let dir = tempdir();
    let o = corecatch(
        dir.path(),
        &["run", "--out", "out", "--", exe.to_str().unwrap(), mode],
    );
    let json = fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("manifest.json"))
        .unwrap_or_else(|| panic!("no report: {}", String::from_utf8_lossy(&o.stderr)));
    let v: serde_json::Value = serde_json::from_slice(&fs::read(json).unwrap()).unwrap();
    let sig = v["signature"].as_str().unwrap().to_string();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("[signature {sig}]")),
        "the summary line carries it"
    );
    sig
}

#[test]
fn same_bug_same_signature_across_runs_and_rebuilds() {
    skip_unless_kernel_cores!();
    let a = crash_variant("crash-sig-a", &["-g", "-O0"]);
    // The same code at other addresses: function alignment moves every function.
    let b = crash_variant("crash-sig-b", &["-g", "-O0", "-falign-functions=256"]);
    let first = signature_of(&a, "segv");
    assert_eq!(first.len(), 16);
    assert_eq!(signature_of(&a, "segv"), first, "a second run");
    assert_eq!(
        signature_of(&b, "segv"),
        first,
        "a rebuild with another layout"
    );
    assert_ne!(signature_of(&a, "abort"), first, "another bug");
}

/// The venv python with junitparser (`make venv` installs it; required).
fn junit_python() -> PathBuf {
    venv_python("junitparser")
}

/// junitparser's reading of a file: (tests, failures, [(name, message, text)]).
fn parse_junit(py: &Path, file: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure
xml = JUnitXml.fromfile(sys.argv[1])
cases = []
tests = failures = 0
for suite in xml:
    tests += suite.tests
    failures += suite.failures
    for case in suite:
        for r in case.result:
            if isinstance(r, Failure):
                cases.append({"name": case.name, "classname": case.classname,
                              "message": r.message, "type": r.type, "text": r.text})
print(json.dumps({"tests": tests, "failures": failures, "cases": cases}))
"#;
    let o = Command::new(py)
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn junit_has_one_failed_case_per_crash_read_by_junitparser() {
    skip_unless_kernel_cores!();
    let py = junit_python();
    let exe = crash_variant("crash-junit", &["-g", "-O0"]);
    let dir = tempdir();
    for d in ["a", "b"] {
        fs::create_dir(dir.path().join(d)).unwrap();
    }
    let script = format!(
        "(cd a && {e} segv); (cd b && {e} abort); exit 0",
        e = exe.display()
    );
    let o = corecatch(
        dir.path(),
        &[
            "run",
            "--junit",
            "junit.xml",
            "--out",
            "out",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = parse_junit(&py, &dir.path().join("junit.xml"));
    assert_eq!(
        (v["tests"].as_u64(), v["failures"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    let cases = v["cases"].as_array().unwrap();
    let segv = cases
        .iter()
        .find(|c| c["type"] == "SIGSEGV")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        segv["name"].as_str().unwrap().starts_with("crash-junit"),
        "{segv}"
    );
    assert!(
        segv["message"]
            .as_str()
            .unwrap()
            .starts_with("SIGSEGV (SEGV_MAPERR at 0x0) in write_null at crash.c:"),
        "{segv}"
    );
    assert!(
        segv["text"].as_str().unwrap().contains("#0 "),
        "the backtrace is the body"
    );
    assert!(cases.iter().any(|c| c["type"] == "SIGABRT"), "{v}");

    // Nothing crashed: an empty suite, still a valid file.
    let o = corecatch(dir.path(), &["run", "--junit", "empty.xml", "--", "true"]);
    assert_eq!(o.status.code(), Some(0));
    let v = parse_junit(&py, &dir.path().join("empty.xml"));
    assert_eq!(
        (v["tests"].as_u64(), v["failures"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
}

#[test]
fn github_actions_annotation_points_at_the_workspace_frame() {
    skip_unless_kernel_cores!();
    let exe = crash_variant("crash-github", &["-g", "-O0"]);
    let dir = tempdir();
    let summary = dir.path().join("summary.md");
    fs::write(&summary, "earlier step\n").unwrap();
    let _shared = CrashLock::shared();
    let o = Command::new(bin())
        .current_dir(dir.path())
        .args(["run", "--out", "out", "--", exe.to_str().unwrap(), "segv"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", root())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(139));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("{out}"));
    // write_null's store is the innermost frame in the workspace (fixtures/crash/crash.c).
    let src = fs::read_to_string(fixture("crash/crash.c")).unwrap();
    let want_line = src.lines().position(|l| l.contains("*p = 42;")).unwrap() + 1;
    assert!(
        line.starts_with(&format!(
            "::error file=fixtures/crash/crash.c,line={want_line},title=crash-github"
        )),
        "{line}"
    );
    assert!(
        line.contains("SIGSEGV (SEGV_MAPERR at 0x0) in write_null"),
        "{line}"
    );
    assert!(
        out.contains("::group::") && out.contains("::endgroup::"),
        "{out}"
    );
    let md = fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step\n## corecatch: 1 crash(es)"),
        "appended: {md}"
    );
    assert!(md.contains("write_null"), "{md}");
}

/// An example file as JSON, read by PyYAML (`make venv` installs it; required).
fn yaml_as_json(path: &Path) -> serde_json::Value {
    let py = venv_python("yaml");
    let o = Command::new(&py)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} is not valid YAML: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn ci_examples_are_valid_yaml_and_their_commands_parse() {
    for (file, needles) in [
        (
            "examples/circleci/config.yml",
            &["on_fail", "store_test_results", "store_artifacts"][..],
        ),
        ("examples/github/crash.yml", &["upload-artifact"][..]),
    ] {
        let path = root().join(file);
        let doc = yaml_as_json(&path);
        let text = doc.to_string();
        for n in needles {
            assert!(text.contains(n), "{file} lacks {n}");
        }
        let mut all = Vec::new();
        strings(&doc, &mut all);
        let commands: Vec<String> = all
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| {
                // Expressions the CI expands are placeholders here.
                let l = l.replace("${{ runner.temp }}", "/tmp/runner");
                let at = l.find("corecatch ")?;
                Some(l[at..].trim().to_string())
            })
            .collect();
        assert!(commands.len() >= 2, "{file}: {commands:?}");
        for c in commands {
            let words: Vec<&str> = c.split_whitespace().collect();
            assert!(
                corecatch::cli::Cli::try_parse_args(&words).is_ok(),
                "{file}: `{c}` does not parse"
            );
        }
    }
}

/// Run headless Chromium on `args` (the probe's flags: no sandbox as root, no background
/// networking on this closed network); its stdout. `make deps` installs it: required.
fn chromium(args: &[&str]) -> String {
    let profile = tempdir();
    let o = Command::new(require("chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn html_report_renders_in_chromium_with_every_crash_and_frame() {
    skip_unless_kernel_cores!();
    let threads = compile(
        &fixture("zoo/threads.c"),
        "zoo-threads-html",
        &["-g", "-O0", "-pthread"],
    );
    let dir = tempdir();
    // A hostile program name: it must show as text, never as markup.
    let hostile = dir.path().join("crash<script>x");
    fs::copy(crash_variant("crash-html", &["-g", "-O0"]), &hostile).unwrap();
    // Separate directories: with the plain `core` pattern a second crash in one directory
    // overwrites the first core.
    for d in ["a", "b"] {
        fs::create_dir(dir.path().join(d)).unwrap();
    }
    let script = format!(
        "(cd a && '{}' segv); (cd b && {}); exit 0",
        hostile.display(),
        threads.display()
    );
    let o = corecatch(
        dir.path(),
        &["run", "--out", "out", "--", "sh", "-c", &script],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = dir.path().join("out/index.html");
    let manifest = fs::read_to_string(dir.path().join("out/manifest.json")).unwrap();
    assert!(
        manifest.contains("\"index.html\""),
        "the page is an artifact: {manifest}"
    );
    let url = format!("file://{}", page.display());
    let dom = chromium(&["--dump-dom", &url]);
    assert!(dom.contains("corecatch: 2 crash(es)"), "{dom}");
    assert!(
        dom.contains("SIGSEGV (SEGV_MAPERR at 0x0) in write_null"),
        "{dom}"
    );
    assert!(
        dom.contains("crash_here"),
        "the threaded crash's frame: {dom}"
    );
    assert!(dom.contains("crash&lt;script&gt;x"), "escaped name: {dom}");
    assert!(!dom.contains("<script>"), "no markup from the program");
    // The crashing line's source is shown, highlighted.
    assert!(
        dom.contains("<span class=\"hit\">") && dom.contains("*p = 42;"),
        "{dom}"
    );
    // The crashed thread is open, the other four threads are folded.
    assert_eq!(
        dom.matches("<details class=\"thread\" open=\"\">").count(),
        2,
        "{dom}"
    );
    assert_eq!(
        dom.matches("<details class=\"thread\">").count(),
        4,
        "{dom}"
    );
    // Relative links to each crash's artifacts.
    assert!(dom.contains(".core.gz\">"), "{dom}");

    let shots = root().join("target/test-outputs");
    fs::create_dir_all(&shots).unwrap();
    let png = shots.join("index.png");
    let _ = fs::remove_file(&png);
    chromium(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1280,2000",
        &url,
    ]);
    let bytes = fs::read(&png).expect("chromium saved a screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
}

#[test]
fn progress_lines_in_logs_a_bar_on_a_terminal_and_nothing_when_quiet() {
    skip_unless_kernel_cores!();
    let exe = crash_variant("crash-progress", &["-g", "-O0"]);
    let dir = tempdir();
    let core = crash_for_core(&exe, &["big", "48"], dir.path());
    let _shared = CrashLock::shared();
    let collect = |extra: &[&str]| {
        let mut args = vec!["collect", "--keep-cores", "--out", "out"];
        args.extend_from_slice(extra);
        args.push(core.to_str().unwrap());
        Command::new(bin())
            .current_dir(dir.path())
            .args(&args)
            .env("CORECATCH_PROGRESS_INTERVAL", "0")
            .output()
            .unwrap()
    };
    // Not a terminal (a CI log): plain lines.
    let err = String::from_utf8_lossy(&collect(&[]).stderr).into_owned();
    assert!(
        err.lines()
            .any(|l| l.starts_with("corecatch: compressing core.") && l.ends_with("%)")),
        "{err}"
    );
    // --quiet: no progress at all.
    let err = String::from_utf8_lossy(&collect(&["-q"]).stderr).into_owned();
    assert!(!err.contains("compressing"), "{err}");
    // A terminal: script(1) gives corecatch a pty; indicatif draws its bar there.
    if Command::new("script").arg("--version").output().is_err() {
        skip_or_fail!("the terminal bar: script(1) (util-linux) is not installed");
    }
    let cmd = format!(
        "{} collect --keep-cores --out out2 {}",
        bin().display(),
        core.display()
    );
    let o = Command::new("script")
        .current_dir(dir.path())
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(
        tty.contains("compressing core.") && tty.contains("MiB"),
        "{tty}"
    );
    assert!(!tty.contains("%)"), "a bar, not log lines: {tty}");
}
