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

    // Nothing crashed: an empty suite, still a valid file, in a directory nothing else made.
    let o = corecatch(
        dir.path(),
        &["run", "--junit", "results/none/empty.xml", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = parse_junit(&py, &dir.path().join("results/none/empty.xml"));
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

/// The shell scripts of a CI file: each `run:` string (GitHub steps, the action's `with: run:`)
/// and the `command` of each `run:` mapping (CircleCI steps). An orb's `<<include(file)>>` is
/// left out (install.sh has no corecatch command line).
fn scripts(v: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "run" {
                    let script = match x {
                        Value::String(s) => Some(s.as_str()),
                        Value::Object(m) => m.get("command").and_then(Value::as_str),
                        _ => None,
                    };
                    if let Some(s) = script.filter(|s| !s.trim_start().starts_with("<<include(")) {
                        out.push(s.to_string());
                    }
                }
                scripts(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| scripts(x, out)),
        _ => {}
    }
}

/// What a variable, `${{ expression }}` or `<< parameters.x >>` stands for here: a path.
const PLACEHOLDER: &str = "/ci/placeholder";

/// A `$NAME`, `${NAME}` or `$(...)` after its `$`: consumed.
fn skip_expansion(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek() {
        Some('{') | Some('(') => {
            let close = if chars.next() == Some('{') { '}' } else { ')' };
            for c in chars.by_ref() {
                if c == close {
                    break;
                }
            }
        }
        Some(c) if !(c.is_ascii_alphanumeric() || *c == '_') => {
            chars.next(); // $? $@ $1 ...
        }
        _ => {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
        }
    }
}

/// One line of shell split as the shell would, words and operators (`None` for `&&`, `||`,
/// `;`, `|`, `&`). A quoted expansion is [`PLACEHOLDER`]; an unquoted one expands to nothing
/// (so `$EXTRA_ARGS` alone is no word); a comment ends the line.
fn shell_words(line: &str) -> Vec<Option<String>> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, in_word: &mut bool, toks: &mut Vec<Option<String>>| {
        if *in_word {
            toks.push(Some(std::mem::take(cur)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => flush(&mut cur, &mut in_word, &mut toks),
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        '$' => {
                            skip_expansion(&mut chars);
                            cur.push_str(PLACEHOLDER);
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            '$' => skip_expansion(&mut chars),
            ';' | '|' | '&' => {
                flush(&mut cur, &mut in_word, &mut toks);
                while chars.peek() == Some(&c) {
                    chars.next();
                }
                toks.push(None);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut in_word, &mut toks);
    toks
}

/// The corecatch command lines of `script`, as argument vectors: each command whose program
/// is `corecatch` (or a path to it), up to the next operator. CI expressions and orb
/// parameters are placeholders; continuation lines are joined.
fn corecatch_commands(script: &str) -> Vec<Vec<String>> {
    let mut text = script.replace("\\\n", " ");
    for (open, close) in [("${{", "}}"), ("<<", ">>")] {
        while let Some(at) = text.find(open) {
            let end = text[at..]
                .find(close)
                .unwrap_or_else(|| panic!("unclosed {open} in {script}"));
            text.replace_range(at..at + end + close.len(), PLACEHOLDER);
        }
    }
    let mut commands = Vec::new();
    for line in text.lines() {
        let toks = shell_words(line);
        let mut at_command = true;
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                None => at_command = true,
                Some(w)
                    if at_command
                        && ["exec", "then", "else", "do", "!", "time"].contains(&w.as_str()) => {}
                Some(w)
                    if at_command && Path::new(w).file_name().is_some_and(|f| f == "corecatch") =>
                {
                    let mut words = vec!["corecatch".to_string()];
                    while let Some(Some(w)) = toks.get(i + 1) {
                        words.push(w.clone());
                        i += 1;
                    }
                    commands.push(words);
                    at_command = false;
                }
                Some(_) => at_command = false,
            }
            i += 1;
        }
    }
    commands
}

#[test]
fn shell_words_split_as_the_shell_does() {
    let w = |l: &str| -> Vec<String> {
        shell_words(l)
            .into_iter()
            .map(|t| t.unwrap_or_else(|| "<op>".into()))
            .collect()
    };
    assert_eq!(
        w(r#"exec corecatch run --out "$OUT" $EXTRA -- bash -c "$CMD" # note"#),
        [
            "exec",
            "corecatch",
            "run",
            "--out",
            PLACEHOLDER,
            "--",
            "bash",
            "-c",
            PLACEHOLDER
        ]
    );
    assert_eq!(
        w(r#"a 'b c'&&d\ e "f\"g${H}/x" || i;j"#),
        [
            "a",
            "b c",
            "<op>",
            "d e",
            &format!("f\"g{PLACEHOLDER}/x"),
            "<op>",
            "i",
            "<op>",
            "j"
        ]
    );
    assert_eq!(
        corecatch_commands(
            "cd x && ./corecatch bt \\\n  --json ${{ runner.temp }}/c | tee\necho corecatch run"
        ),
        [["corecatch", "bt", "--json", &format!("{PLACEHOLDER}/c")]]
    );
}

#[test]
fn ci_examples_are_valid_yaml_and_their_commands_parse() {
    // (file, words its YAML must hold, fewest corecatch command lines in its scripts)
    let mut files: Vec<(String, Vec<&str>, usize)> = vec![
        (
            "examples/circleci/config.yml".into(),
            vec![
                "on_fail",
                "store_test_results",
                "store_artifacts",
                "corecatch/run",
                "install.sh",
            ],
            1,
        ),
        (
            "examples/github/crash.yml".into(),
            vec![
                "upload-artifact",
                "corecatch/corecatch@v",
                "failure()",
                "install.sh",
            ],
            1,
        ),
        ("action.yml".into(), vec!["upload-artifact", "composite"], 2),
    ];
    // Every file of the orb: its commands and job run corecatch; the rest need not.
    let orb = root().join("orb");
    let mut orb_files = Vec::new();
    for kind in ["", "commands", "jobs", "examples", "executors"] {
        let Ok(rd) = fs::read_dir(orb.join(kind)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yml") {
                orb_files.push(p.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    orb_files.sort();
    assert!(orb_files.len() >= 6, "{orb_files:?}");
    let mut orb_commands = 0;
    for f in orb_files {
        let min = match f.as_str() {
            "orb/commands/run.yml" | "orb/commands/collect.yml" | "orb/jobs/test.yml" => 1,
            _ => 0,
        };
        files.push((f, vec![], min));
    }
    for (file, needles, min) in files {
        let path = root().join(&file);
        let doc = yaml_as_json(&path);
        let text = doc.to_string();
        for n in needles {
            assert!(text.contains(n), "{file} lacks {n}");
        }
        let mut all = Vec::new();
        scripts(&doc, &mut all);
        let commands: Vec<Vec<String>> = all.iter().flat_map(|s| corecatch_commands(s)).collect();
        assert!(commands.len() >= min, "{file}: {commands:?} in {all:?}");
        if file.starts_with("orb/") {
            orb_commands += commands.len();
        }
        for words in commands {
            if let Err(e) = corecatch::cli::Cli::try_parse_args(&words) {
                panic!("{file}: `{}` does not parse: {e}", words.join(" "));
            }
        }
    }
    assert!(orb_commands >= 3, "the orb's run, collect and job");
}

#[test]
fn readme_command_lines_parse() {
    // Every corecatch command in the README's shell blocks (`+ ` is make's echo of one).
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let mut commands = Vec::new();
    for block in readme.split("```").skip(1).step_by(2) {
        let (lang, body) = block.split_once('\n').unwrap_or((block, ""));
        match lang.trim() {
            "" | "sh" | "console" => {
                let body: String = body
                    .lines()
                    .map(|l| l.strip_prefix("+ ").unwrap_or(l))
                    .collect::<Vec<_>>()
                    .join("\n");
                commands.extend(corecatch_commands(&body));
            }
            _ => {}
        }
    }
    assert!(commands.len() >= 15, "{commands:?}");
    for words in commands {
        if let Err(e) = corecatch::cli::Cli::try_parse_args(&words) {
            panic!("README: `{}` does not parse: {e}", words.join(" "));
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
