//! Golden tests of what users read: `bt` text (with and without `--full`) and JSON of a crash,
//! `pattern` (text and JSON), `doctor`, the stderr summary of `run` and the report and manifest
//! it writes. Each output is redacted of what varies between runs and machines (pids, addresses,
//! temporary directories, the repository root, sizes, hashes, times, the host name) and compared
//! with tests/golden/<name>.txt; a difference fails with a line diff. `CORECATCH_UPDATE_GOLDEN=1`
//! rewrites the files instead.
//!
//! JSON is redacted by walking the value (known unstable keys replaced, every string redacted as
//! text) and printed with sorted keys, so the golden shows the public contract: key names,
//! structure and the stable values.

use crate::util::*;
use crate::{skip_or_fail, skip_unless_kernel_cores};
use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Locals whose value differs on every run, whatever the program: glibc's `setjmp` buffer in
/// `__libc_start_call_main` holds stack addresses and mangled pointers in decimal, and stack
/// garbage: `abort()`'s `struct sigaction act` is not yet set when it raises SIGABRT, so it
/// holds what the dynamic linker left on the stack (which changes with `ld.so.cache`). Their
/// values are replaced by `<VALUE>` (text and JSON).
const UNSTABLE_LOCALS: &[&str] = &["unwind_buf", "act"];

/// What varies from run to run, replaced by placeholders.
#[derive(Default)]
struct Redactor {
    /// Literal strings (temporary directories, the repository root) and their placeholders,
    /// longest first.
    literals: Vec<(String, String)>,
    /// Decimal pids and tids of the crashed process.
    pids: Vec<String>,
}

impl Redactor {
    fn new(tmp: &Path) -> Redactor {
        let mut r = Redactor::default();
        r.literal(tmp, "<TMP>");
        r.literal(&root(), "<ROOT>");
        r
    }

    fn literal(&mut self, p: &Path, placeholder: &str) {
        let mut add = |s: String| {
            if !s.is_empty() && !self.literals.iter().any(|(l, _)| *l == s) {
                self.literals.push((s, placeholder.to_string()));
            }
        };
        add(p.to_string_lossy().into_owned());
        if let Ok(c) = p.canonicalize() {
            add(c.to_string_lossy().into_owned());
        }
        self.literals
            .sort_by_key(|(l, _)| std::cmp::Reverse(l.len()));
    }

    /// Learn the pids and tids a report names (`bt --json`, the `<stem>.json` of `run`).
    fn pids_of_report(&mut self, v: &Value) {
        let mut add = |x: &Value| {
            if let Some(n) = x.as_i64() {
                let s = n.to_string();
                if !self.pids.contains(&s) {
                    self.pids.push(s);
                }
            }
        };
        add(&v["process"]["pid"]);
        add(&v["process"]["ppid"]);
        add(&v["signal"]["sender_pid"]);
        add(&v["crashed_tid"]);
        for t in v["threads"].as_array().into_iter().flatten() {
            add(&t["tid"]);
        }
    }

    /// Redact text: locals whose value differs on every run, then literals, then word by word (`0x…` addresses, long hex hashes, known pids
    /// except after `:` where a number is a line, sizes before " bytes", sizes in B/KiB/MiB/GiB).
    fn text(&self, s: &str) -> String {
        let sized = |after: &str| {
            let unit = after.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
            [" B", " KiB", " MiB", " GiB"]
                .iter()
                .any(|u| unit.starts_with(u) && !unit[u.len()..].starts_with(char::is_alphanumeric))
        };
        let mut s: String = s
            .split_inclusive('\n')
            .map(|l| {
                let local = l.strip_prefix("        ").and_then(|v| v.split_once(" = "));
                match local {
                    Some((name, value)) if UNSTABLE_LOCALS.contains(&name) => {
                        let nl = if value.ends_with('\n') { "\n" } else { "" };
                        format!("        {name} = <VALUE>{nl}")
                    }
                    _ => l.to_string(),
                }
            })
            .collect();
        for (lit, ph) in &self.literals {
            s = s.replace(lit.as_str(), ph);
        }
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(c) = rest.chars().next() {
            if !is_word(c) {
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            let hex = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_hexdigit());
            let number = !word.is_empty() && word.chars().all(|c| c.is_ascii_digit());
            let after_colon = out.ends_with(':');
            if word.len() > 2 && word.starts_with("0x") && hex(&word[2..]) {
                out.push_str("0x<HEX>");
            } else if word.len() >= 32 && hex(word) {
                out.push_str("<HASH>");
            } else if number && after.starts_with(" bytes") {
                out.push_str("<N>");
            } else if number && sized(after) {
                // `6.6 MiB`: the size of this machine's libraries (the debug bundle).
                out.push_str("<SIZE>");
                rest = after.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
                continue;
            } else if number && !after_colon && self.pids.iter().any(|p| p == word) {
                out.push_str("<PID>");
            } else {
                out.push_str(word);
            }
            rest = after;
        }
        // Separate debug files: /usr/lib/debug/.build-id/XX/<HASH>.debug names the build-id too.
        let mut s = out;
        while let Some(at) = s.find(".build-id/") {
            let tail = &s[at + ".build-id/".len()..];
            let Some(len) = tail.find("<HASH>").filter(|&n| n <= 3) else {
                break;
            };
            let end = at + ".build-id/".len() + len + "<HASH>".len();
            s.replace_range(at..end, "<BUILD_ID_PATH>");
        }
        s
    }

    /// Redact a JSON value: values of unstable keys replaced, every string redacted as text.
    fn json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::Object(o)
                if o.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| UNSTABLE_LOCALS.contains(&n))
                    && o.contains_key("value") =>
            {
                let mut o = o.clone();
                o.insert("value".into(), Value::String("<VALUE>".into()));
                Value::Object(o)
            }
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let placeholder = match k.as_str() {
                            "pid" | "ppid" | "sender_pid" | "tid" | "crashed_tid" => "<PID>",
                            "bytes" | "core_bytes" => "<BYTES>",
                            "sha256" => "<SHA256>",
                            "build_id" => "<BUILD_ID>",
                            "started" | "ended" => "<TIME>",
                            "host" | "hostname" => "<HOST>",
                            "kernel" | "kernel_release" | "uname" => "<KERNEL>",
                            "token" => "<TOKEN>",
                            _ => "",
                        };
                        let x = if placeholder.is_empty() || x.is_null() {
                            self.json(x)
                        } else {
                            Value::String(placeholder.into())
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            _ => v.clone(),
        }
    }

    /// Pretty JSON with sorted keys, redacted.
    fn json_text(&self, bytes: &[u8]) -> String {
        let v: Value = serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(bytes)
                    .chars()
                    .take(2000)
                    .collect::<String>()
            )
        });
        let mut s = serde_json::to_string_pretty(&sorted(&self.json(&v))).unwrap();
        s.push('\n');
        s
    }
}

/// `v` with every object's keys in order (serde_json's Map keeps insertion order or sorts
/// depending on a feature; this does not depend on it).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut m = serde_json::Map::new();
            for k in keys {
                m.insert(k.clone(), sorted(&o[k]));
            }
            Value::Object(m)
        }
        _ => v.clone(),
    }
}

fn golden_path(name: &str) -> PathBuf {
    root().join("tests/golden").join(format!("{name}.txt"))
}

/// Compare `actual` with tests/golden/<name>.txt (or rewrite it under CORECATCH_UPDATE_GOLDEN).
fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    let update = std::env::var_os("CORECATCH_UPDATE_GOLDEN").is_some_and(|v| !v.is_empty());
    if update {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        eprintln!("updated {}", path.display());
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); CORECATCH_UPDATE_GOLDEN=1 writes it. Output:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{name}: output differs from {} (- golden, + now; CORECATCH_UPDATE_GOLDEN=1 \
             rewrites it after a deliberate change):\n{}",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// A unified-style line diff (longest common subsequence; the outputs are small).
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    if old.ends_with('\n') != new.ends_with('\n') {
        out += "(the final newline differs)\n";
    }
    out
}

#[test]
fn line_diff_marks_changed_lines() {
    let d = line_diff("a\nb\nc\n", "a\nB\nc\nd\n");
    assert_eq!(d, "  a\n- b\n+ B\n  c\n+ d\n");
    let r = Redactor {
        literals: vec![("/tmp/cc-it-x".into(), "<TMP>".into())],
        pids: vec!["4242".into()],
    };
    assert_eq!(
        r.text("pid 4242 (/tmp/cc-it-x/a) at f.c:4242 0x00007f12 core (315392 bytes) core.4242.a"),
        "pid <PID> (<TMP>/a) at f.c:4242 0x<HEX> core (<N> bytes) core.<PID>.a"
    );
    assert_eq!(
        r.text("        unwind_buf = {{jmp_buf = {1407, -1685}}}\n        n = 4242\n"),
        "        unwind_buf = <VALUE>\n        n = <PID>\n"
    );
    let id = "93ac61ec5a8eb1396f9fbd350e3169a558528a40";
    assert_eq!(
        r.text(&format!("/usr/lib/debug/.build-id/93/{}.debug", &id[2..])),
        "/usr/lib/debug/<BUILD_ID_PATH>.debug"
    );
}

/// corecatch with a fixed environment: RLIMIT_CORE soft 0, hard unlimited (a common default
/// that `pattern` and `doctor` print), no CI variables, no progress lines. `locked`: the caller
/// holds the crash lock (a PatternGuard); otherwise it is taken shared.
fn corecatch_fixed(cwd: &Path, args: &[&str], locked: bool) -> Output {
    let _shared = (!locked).then(CrashLock::shared);
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .env("CORECATCH_PROGRESS_INTERVAL", "100000");
    for v in [
        "CORECATCH_OUT",
        "GITHUB_ACTIONS",
        "GITHUB_WORKSPACE",
        "GITHUB_STEP_SUMMARY",
        "CIRCLECI_URL",
        "CIRCLE_TOKEN",
    ] {
        cmd.env_remove(v);
    }
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_CORE,
                0,
                nix::sys::resource::RLIM_INFINITY,
            )
            .map_err(std::io::Error::from)
        });
    }
    cmd.output().unwrap()
}

/// The machine's core settings made deterministic while alive: core_pattern `core`,
/// core_uses_pid 0 (the PatternGuard, which holds the crash lock exclusive) and
/// fs.suid_dumpable 0; all restored on drop.
struct FixedPattern {
    old_suid: String,
    _pattern: PatternGuard,
}

const SUID_DUMPABLE: &str = "/proc/sys/fs/suid_dumpable";

impl FixedPattern {
    fn set() -> Option<FixedPattern> {
        let pattern = PatternGuard::set("core", false)?;
        let old_suid = match fs::read_to_string(SUID_DUMPABLE) {
            Ok(s) => s,
            Err(e) => skip_or_fail!("cannot read {SUID_DUMPABLE} ({e})"),
        };
        if let Err(e) = fs::write(SUID_DUMPABLE, "0") {
            skip_or_fail!("cannot write {SUID_DUMPABLE} ({e})");
        }
        Some(FixedPattern {
            old_suid,
            _pattern: pattern,
        })
    }
}

impl Drop for FixedPattern {
    fn drop(&mut self) {
        let _ = fs::write(SUID_DUMPABLE, self.old_suid.trim_end());
    }
}

fn ok_stdout(o: &Output, what: &str) -> String {
    assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn golden_pattern_text_and_json() {
    let dir = tempdir();
    let Some(_fixed) = FixedPattern::set() else {
        return;
    };
    let r = Redactor::new(dir.path());
    let text = ok_stdout(&corecatch_fixed(dir.path(), &["pattern"], true), "pattern");
    let json = corecatch_fixed(dir.path(), &["pattern", "--json"], true);
    ok_stdout(&json, "pattern --json");
    drop(_fixed);
    check_golden("pattern", &r.text(&text));
    check_golden("pattern.json", &r.json_text(&json.stdout));
}

#[test]
fn golden_doctor() {
    let dir = tempdir();
    let Some(_fixed) = FixedPattern::set() else {
        return;
    };
    let r = Redactor::new(dir.path());
    let text = ok_stdout(&corecatch_fixed(dir.path(), &["doctor"], true), "doctor");
    drop(_fixed);
    check_golden("doctor", &r.text(&text));
}

/// A copy of `exe` named `name` in `dir`, so reports name a path free of the build cache's key.
fn copy_exe(exe: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    fs::copy(exe, &to).unwrap();
    to
}

#[test]
fn golden_bt_text_and_json_of_a_segv() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let exe = copy_exe(&crash_prog(), dir.path(), "crash");
    // Named `core` whatever core_uses_pid says, so the output names the same file each time.
    let core = crash_for_core(&exe, &["segv"], dir.path());
    if core != dir.path().join("core") {
        fs::rename(&core, dir.path().join("core")).unwrap();
    }
    let mut r = Redactor::new(dir.path());
    let json = corecatch_fixed(dir.path(), &["bt", "--json", "core"], false);
    ok_stdout(&json, "bt --json");
    r.pids_of_report(&serde_json::from_slice(&json.stdout).unwrap());
    let text = ok_stdout(
        &corecatch_fixed(dir.path(), &["bt", "core"], false),
        "bt core",
    );
    let full = ok_stdout(
        &corecatch_fixed(dir.path(), &["bt", "--full", "core"], false),
        "bt --full core",
    );
    check_golden("bt-segv", &r.text(&text));
    check_golden("bt-segv.full", &r.text(&full));
    check_golden("bt-segv.json", &r.json_text(&json.stdout));
}

/// `run` under the fixed settings (the raw core's name, which the report holds, follows
/// core_pattern and core_uses_pid).
#[test]
fn golden_run_of_the_abort_demo_summary_report_and_manifest() {
    let dir = tempdir();
    copy_exe(&abort_demo(), dir.path(), "abort-demo");
    let Some(fixed) = FixedPattern::set() else {
        return;
    };
    let o = corecatch_fixed(
        dir.path(),
        &["run", "--out", "out", "--", "./abort-demo"],
        true,
    );
    drop(fixed);
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let out = dir.path().join("out");
    let reports: Vec<PathBuf> = artifacts(&out, ".json")
        .into_iter()
        .filter(|p| !p.ends_with("manifest.json"))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}: {}", stderr(&o));
    let report = fs::read(&reports[0]).unwrap();
    let mut r = Redactor::new(dir.path());
    r.pids_of_report(&serde_json::from_slice(&report).unwrap());
    check_golden("run-abort-demo.stderr", &r.text(&stderr(&o)));
    check_golden("run-abort-demo.report.json", &r.json_text(&report));
    check_golden(
        "run-abort-demo.manifest.json",
        &r.json_text(&fs::read(out.join("manifest.json")).unwrap()),
    );
}
