//! Getting corecatch into a CI job, with the real parts. `install.sh` runs under dash and under
//! busybox sh (with only busybox's tools) against a loopback HTTP server serving `make dist`'s
//! directory (`CORECATCH_DIST`, else `dist/`): it installs a binary that runs, with or without a
//! version, into the default directory or the one asked for, and puts it on PATH in a CI job; a
//! corrupted download, a wrong or garbled checksum file, a 404, an unreachable server and an
//! unknown `uname` each fail with a clear message and leave nothing installed. The GitHub Action
//! (`action.yml`) and the CircleCI orb (`orb/`) are read by PyYAML and checked for their schema's
//! keys; then their shell steps are executed in bash as the runners would (expressions and
//! parameters substituted, `env:`/`environment:` applied, the runner's variables set), on the
//! abort demo: exit status 134, the artifacts, the JUnit file and the step summary are there;
//! and their collect variants find a core an earlier step left.

use crate::skip_unless_kernel_cores;
use crate::util::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

trait DistSum {
    fn sha256(&self) -> String;
}

impl DistSum for Dist {
    fn sha256(&self) -> String {
        sha256_hex(&fs::read(self.binary()).unwrap())
    }
}

/// `python3 -m http.server` on a free loopback port, serving `dir`; killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = free_port();
        let child = Command::new(require("python3"))
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http_get_status(port).is_some() {
                return server;
            }
            if let Ok(Some(st)) = server.child.try_wait() {
                panic!("the HTTP server exited: {st}");
            }
            assert!(Instant::now() < deadline, "the HTTP server never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status line of `GET /` on the loopback port, when something answers.
fn http_get_status(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    head.starts_with("HTTP/").then_some(head)
}

/// Release directories to serve, each a subdirectory of one site: `good` (the dist's files),
/// `corrupt` (the binary with a byte changed, the true .sha256), `wrongsum` (the binary with
/// another file's sum), `garbled` (an HTML page as .sha256), `empty` (nothing: no VERSION).
fn site(d: &Dist) -> tempfile::TempDir {
    let site = tempdir();
    let mk = |name: &str| {
        let p = site.path().join(name);
        fs::create_dir(&p).unwrap();
        p
    };
    let good = mk("good");
    for e in fs::read_dir(&d.dir).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), good.join(e.file_name())).unwrap();
    }
    let sum_file = format!("{}.sha256", d.asset);
    let link = |dir: &Path, name: &str| {
        std::os::unix::fs::symlink(d.dir.join(name), dir.join(name)).unwrap();
    };
    let corrupt = mk("corrupt");
    let mut bytes = fs::read(d.binary()).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    fs::write(corrupt.join(&d.asset), &bytes).unwrap();
    link(&corrupt, &sum_file);
    link(&corrupt, "VERSION");
    let wrongsum = mk("wrongsum");
    link(&wrongsum, &d.asset);
    link(&wrongsum, "VERSION");
    fs::write(
        wrongsum.join(&sum_file),
        format!("{}  {}\n", sha256_hex(b"another file"), d.asset),
    )
    .unwrap();
    let garbled = mk("garbled");
    link(&garbled, &d.asset);
    link(&garbled, "VERSION");
    fs::write(
        garbled.join(&sum_file),
        "<html><body>Not Found</body></html>\n",
    )
    .unwrap();
    mk("empty");
    site
}

/// A directory of fake tools that come first on PATH: each `name` prints `out`.
fn fake_tools(tools: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempdir();
    for (name, script) in tools {
        let p = d.path().join(name);
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    d
}

/// A directory holding a link to busybox for each of its applets: a PATH of busybox only.
fn busybox_path() -> tempfile::TempDir {
    let bb = require("busybox");
    let o = Command::new(&bb).arg("--list").output().unwrap();
    assert!(o.status.success(), "busybox --list");
    let d = tempdir();
    for applet in String::from_utf8_lossy(&o.stdout).lines() {
        std::os::unix::fs::symlink(&bb, d.path().join(applet)).unwrap();
    }
    d
}

/// One run of install.sh: the shell and the environment it ran in, and what it left.
struct Install {
    out: Output,
    dir: PathBuf,
    /// TMPDIR of the run: must be empty again afterwards.
    tmp: tempfile::TempDir,
    _home: tempfile::TempDir,
}

impl Install {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn describe(&self) -> String {
        format!(
            "{}\nstdout: {}\nstderr: {}",
            self.out.status,
            self.stdout(),
            self.stderr()
        )
    }
    /// Nothing in the install directory (missing or empty) and no temporary directory left.
    fn assert_nothing_left(&self) {
        let left: Vec<_> = fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "left in the install dir: {left:?}; {}",
            self.describe()
        );
        self.assert_no_temp();
    }
    fn assert_no_temp(&self) {
        let left: Vec<_> = fs::read_dir(self.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}

/// Run `shell root()/install.sh` with `env` on top of a clean environment (no CI variables, no
/// CORECATCH_*), PATH = `path` or the test's, installing into a fresh directory unless `env`
/// says otherwise.
fn install(shell: &Path, path: Option<String>, env: &[(&str, String)]) -> Install {
    let tmp = tempdir();
    let home = tempdir();
    let dir = home.path().join("bin");
    let mut cmd = Command::new(shell);
    cmd.arg(root().join("install.sh"))
        .env_clear()
        .env(
            "PATH",
            path.unwrap_or_else(|| std::env::var("PATH").unwrap()),
        )
        .env("HOME", home.path())
        .env("TMPDIR", tmp.path())
        .env("CORECATCH_INSTALL_DIR", &dir)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Install {
        out,
        dir,
        tmp,
        _home: home,
    }
}

/// The installed binary is the dist's, mode 755, alone in its directory, and runs.
fn assert_installed(i: &Install, d: &Dist) {
    assert!(i.out.status.success(), "{}", i.describe());
    let bin = i.dir.join("corecatch");
    assert_eq!(
        sha256_hex(&fs::read(&bin).unwrap()),
        d.sha256(),
        "installed bytes"
    );
    assert_eq!(
        fs::metadata(&bin).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let names: Vec<_> = fs::read_dir(&i.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["corecatch"], "only the binary, no temporary name");
    i.assert_no_temp();
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(v.status.success());
    let says = String::from_utf8_lossy(&v.stdout).trim().to_string();
    assert!(
        says.starts_with(&format!("corecatch {}", d.version)),
        "{says}"
    );
    assert!(
        i.stdout()
            .contains(&format!("installed as {}", bin.display())),
        "says where it went: {}",
        i.describe()
    );
    assert!(
        i.stdout().contains(&says),
        "prints what --version says: {}",
        i.describe()
    );
}

#[test]
fn install_script_installs_the_release_under_dash_with_and_without_a_version() {
    let d = dist();
    let dash = require("dash");
    let site = site(&d);
    let server = Server::start(site.path());
    let base = format!("{}/good", server.url);
    for version in [
        None,
        Some(format!("v{}", d.version)),
        Some(d.version.clone()),
    ] {
        let mut env = vec![("CORECATCH_BASE_URL", base.clone())];
        if let Some(v) = &version {
            env.push(("CORECATCH_VERSION", v.clone()));
        }
        let i = install(&dash, None, &env);
        assert_installed(&i, &d);
        assert!(
            i.stderr()
                .contains(&format!("downloading {base}/{}", d.asset)),
            "{version:?}: {}",
            i.describe()
        );
        assert!(
            i.stderr().contains("is not on PATH"),
            "warns: {}",
            i.describe()
        );
    }
    // Installing again over an installed binary replaces it.
    let i = install(&dash, None, &[("CORECATCH_BASE_URL", base.clone())]);
    assert_installed(&i, &d);
    let again = Command::new(&dash)
        .arg(root().join("install.sh"))
        .env("CORECATCH_BASE_URL", &base)
        .env("CORECATCH_INSTALL_DIR", &i.dir)
        .env("TMPDIR", i.tmp.path())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("CIRCLECI")
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_installed(&i, &d);
}

#[test]
fn install_script_default_dir_and_the_ci_path() {
    let d = dist();
    let dash = require("dash");
    let server = Server::start(&d.dir);
    // Not root (a fake `id`): ~/.local/bin, the default.
    let user = fake_tools(&[("id", "echo 1000")]);
    let path = format!(
        "{}:{}",
        user.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut cmd_env = vec![("CORECATCH_BASE_URL", server.url.clone())];
    let home = tempdir();
    let ghpath = home.path().join("github_path");
    fs::write(&ghpath, "").unwrap();
    cmd_env.push(("GITHUB_ACTIONS", "true".into()));
    cmd_env.push(("GITHUB_PATH", ghpath.display().to_string()));
    let o = Command::new(&dash)
        .arg(root().join("install.sh"))
        .env_clear()
        .env("PATH", &path)
        .env("HOME", home.path())
        .envs(cmd_env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let local = home.path().join(".local/bin");
    assert!(local.join("corecatch").is_file(), "{}", stderr(&o));
    // In GitHub Actions the directory goes on PATH for the next steps.
    assert_eq!(
        fs::read_to_string(&ghpath).unwrap(),
        format!("{}\n", local.display())
    );
    // In CircleCI through BASH_ENV, which the next step's bash sources.
    let bash_env = home.path().join("bash_env");
    fs::write(&bash_env, "").unwrap();
    let i = install(
        &dash,
        None,
        &[
            ("CORECATCH_BASE_URL", server.url.clone()),
            ("CIRCLECI", "true".into()),
            ("BASH_ENV", bash_env.display().to_string()),
        ],
    );
    assert_installed(&i, &d);
    let next = Command::new(require("bash"))
        .args(["-c", "command -v corecatch"])
        .env("BASH_ENV", &bash_env)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&next.stdout).trim(),
        i.dir.join("corecatch").display().to_string(),
        "{}",
        fs::read_to_string(&bash_env).unwrap()
    );
}

/// Every way install.sh must fail, under `shell` with PATH `path`: each (environment, words its
/// message must hold). Each fails with status 1 and leaves nothing.
fn assert_failures(shell: &Path, path: Option<&str>, d: &Dist, url: &str, only: &[&str]) {
    let asset = &d.asset;
    let good = d.sha256();
    let corrupt_sum = {
        let mut b = fs::read(d.binary()).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x5a;
        sha256_hex(&b)
    };
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mips = fake_tools(&[(
        "uname",
        "case \"$1\" in -m) echo mips ;; *) echo Linux ;; esac",
    )]);
    let darwin = fake_tools(&[(
        "uname",
        "case \"$1\" in -m) echo x86_64 ;; *) echo Darwin ;; esac",
    )]);
    let base_path = path
        .map(str::to_string)
        .unwrap_or_else(|| std::env::var("PATH").unwrap());
    let with = |tools: &tempfile::TempDir| format!("{}:{base_path}", tools.path().display());
    type Case = (
        &'static str,
        Vec<(&'static str, String)>,
        Option<String>,
        Vec<String>,
    );
    let cases: Vec<Case> = vec![
        (
            "corrupt",
            vec![("CORECATCH_BASE_URL", format!("{url}/corrupt"))],
            None,
            vec![format!(
                "checksum mismatch for {url}/corrupt/{asset}: expected {good}, got {corrupt_sum}"
            )],
        ),
        (
            "wrongsum",
            vec![("CORECATCH_BASE_URL", format!("{url}/wrongsum"))],
            None,
            vec![format!(
                "checksum mismatch for {url}/wrongsum/{asset}: expected {}, got {good}",
                sha256_hex(b"another file")
            )],
        ),
        (
            "garbled",
            vec![("CORECATCH_BASE_URL", format!("{url}/garbled"))],
            None,
            vec![format!(
                "{url}/garbled/{asset}.sha256 is not a sha256 checksum file"
            )],
        ),
        (
            "404",
            vec![
                ("CORECATCH_BASE_URL", format!("{url}/good")),
                ("CORECATCH_VERSION", "v99.0.0".into()),
            ],
            None,
            vec![format!(
                "download failed: {url}/good/corecatch-99.0.0-x86_64-linux"
            )],
        ),
        (
            "no-VERSION",
            vec![("CORECATCH_BASE_URL", format!("{url}/empty"))],
            None,
            vec![format!("download failed: {url}/empty/VERSION")],
        ),
        (
            "unreachable",
            vec![("CORECATCH_BASE_URL", closed.clone())],
            None,
            vec![format!("download failed: {closed}/VERSION")],
        ),
        (
            "bad-version",
            vec![
                ("CORECATCH_BASE_URL", format!("{url}/good")),
                ("CORECATCH_VERSION", "1.0/../../x".into()),
            ],
            None,
            vec!["CORECATCH_VERSION does not name a version: '1.0/../../x'".into()],
        ),
        (
            "mips",
            vec![("CORECATCH_BASE_URL", format!("{url}/good"))],
            Some(with(&mips)),
            vec!["corecatch: no release for architecture 'mips'".into()],
        ),
        (
            "darwin",
            vec![("CORECATCH_BASE_URL", format!("{url}/good"))],
            Some(with(&darwin)),
            vec!["no release for operating system 'Darwin'".into()],
        ),
    ];
    let mut ran = 0;
    for (name, env, case_path, wants) in cases {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        ran += 1;
        let i = install(shell, case_path.or_else(|| path.map(str::to_string)), &env);
        assert_eq!(
            i.out.status.code(),
            Some(1),
            "{name} under {}: {}",
            shell.display(),
            i.describe()
        );
        for w in wants {
            assert!(
                i.stderr().contains(&w),
                "{name} under {}: wanted {w:?} in {}",
                shell.display(),
                i.describe()
            );
        }
        i.assert_nothing_left();
    }
    assert!(ran > 0);
}

#[test]
fn install_script_fails_clearly_and_installs_nothing_under_dash() {
    let d = dist();
    let site = site(&d);
    let server = Server::start(site.path());
    assert_failures(&require("dash"), None, &d, &server.url, &[]);
}

#[test]
fn install_script_under_busybox_sh_with_busybox_tools_only() {
    let d = dist();
    let bb = busybox_path();
    let path = bb.path().display().to_string();
    let sh = bb.path().join("sh");
    let site = site(&d);
    let server = Server::start(site.path());
    // No curl, no coreutils: busybox's wget, sha256sum, mktemp.
    for tool in ["curl", "sha256sum"] {
        let found = Command::new(&sh)
            .args(["-c", &format!("command -v {tool}")])
            .env_clear()
            .env("PATH", &path)
            .output()
            .unwrap();
        let at = String::from_utf8_lossy(&found.stdout).trim().to_string();
        assert!(
            at.is_empty() || at.starts_with(&path) || !at.contains('/'),
            "{tool} is busybox's here, not {at}"
        );
    }
    for version in [None, Some(d.version.clone())] {
        let mut env = vec![("CORECATCH_BASE_URL", format!("{}/good", server.url))];
        if let Some(v) = version {
            env.push(("CORECATCH_VERSION", v));
        }
        let i = install(&sh, Some(path.clone()), &env);
        assert_installed(&i, &d);
    }
    // Not the fake `uname` cases: Debian's busybox sh runs its own applets before PATH
    // (FEATURE_SH_STANDALONE), so no script can stand in for uname there; dash covers them.
    let all_but_uname = [
        "corrupt",
        "wrongsum",
        "garbled",
        "404",
        "no-VERSION",
        "unreachable",
        "bad-version",
    ];
    assert_failures(&sh, Some(&path), &d, &server.url, &all_but_uname);
}

/// `path` parsed by PyYAML, as JSON.
fn yaml(path: &Path) -> serde_json::Value {
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

fn action() -> serde_json::Value {
    yaml(&root().join("action.yml"))
}

/// The orb's files of one kind (`commands`, `jobs`, `examples`): name -> parsed.
fn orb_files(kind: &str) -> BTreeMap<String, serde_json::Value> {
    let dir = root().join("orb").join(kind);
    let mut m = BTreeMap::new();
    for e in fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "yml") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            m.insert(name, yaml(&p));
        }
    }
    m
}

fn str_of<'a>(v: &'a serde_json::Value, key: &str, what: &str) -> &'a str {
    v[key]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| panic!("{what}: no {key} string in {v}"))
}

/// Every `<< parameters.NAME >>` in `text`.
fn parameters_used(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<<") {
        let Some(end) = rest[at..].find(">>") else {
            break;
        };
        let inner = rest[at + 2..at + end].trim();
        if let Some(name) = inner.strip_prefix("parameters.") {
            v.push(name.trim().to_string());
        }
        rest = &rest[at + end + 2..];
    }
    v
}

#[test]
fn action_has_the_metadata_syntax_required_keys() {
    // GitHub's metadata syntax for a composite action.
    let a = action();
    str_of(&a, "name", "action.yml");
    str_of(&a, "description", "action.yml");
    let inputs = a["inputs"].as_object().expect("inputs");
    for want in ["run", "collect", "out", "upload", "version", "args"] {
        let i = inputs
            .get(want)
            .unwrap_or_else(|| panic!("no input {want}"));
        str_of(i, "description", want);
    }
    assert_eq!(
        inputs["out"]["default"],
        "${{ runner.temp }}/corecatch-artifacts"
    );
    assert_eq!(inputs["upload"]["default"], "true");
    assert_eq!(a["runs"]["using"], "composite");
    let steps = a["runs"]["steps"].as_array().expect("runs.steps");
    assert!(steps.len() >= 3, "{steps:?}");
    let mut uploads = 0;
    for s in steps {
        match (s.get("run"), s.get("uses")) {
            (Some(run), None) => {
                let run = run.as_str().expect("run is a script");
                assert_eq!(s["shell"], "bash", "run steps need a shell: {s}");
                // Script injection: inputs reach scripts through env, never as text.
                assert!(
                    !run.contains("${{"),
                    "an expression pasted into a script: {run}"
                );
            }
            (None, Some(uses)) => {
                assert_eq!(uses, "actions/upload-artifact@v4", "{s}");
                let cond = str_of(s, "if", "the upload step");
                assert!(
                    cond.starts_with("always()"),
                    "the upload runs when the command failed too: {cond}"
                );
                assert_eq!(s["with"]["path"], "${{ inputs.out }}");
                assert_eq!(s["with"]["name"], "${{ inputs.artifact-name }}");
                uploads += 1;
            }
            _ => panic!("a step is either run or uses: {s}"),
        }
    }
    assert_eq!(uploads, 1);
    assert_eq!(
        inputs["artifact-name"]["default"],
        "corecatch-${{ github.job }}-${{ github.run_attempt }}"
    );
}

#[test]
fn orb_has_the_layout_and_keys_circleci_packs() {
    // The layout `circleci orb pack` packs: @orb.yml, commands/, jobs/, examples/.
    let orb = yaml(&root().join("orb/@orb.yml"));
    assert_eq!(orb["version"], 2.1, "{orb}");
    str_of(&orb, "description", "@orb.yml");
    let commands = orb_files("commands");
    assert_eq!(
        commands.keys().map(String::as_str).collect::<Vec<_>>(),
        ["collect", "install", "run"]
    );
    let jobs = orb_files("jobs");
    let examples = orb_files("examples");
    assert!(!jobs.is_empty() && !examples.is_empty());
    for (kind, files) in [("commands", &commands), ("jobs", &jobs)] {
        for (name, c) in files.iter() {
            let what = format!("orb/{kind}/{name}.yml");
            str_of(c, "description", &what);
            let declared = c["parameters"].as_object().cloned().unwrap_or_default();
            for (p, spec) in &declared {
                str_of(spec, "type", &format!("{what} parameter {p}"));
                str_of(spec, "description", &format!("{what} parameter {p}"));
            }
            if kind == "jobs" {
                assert!(c["docker"].is_array(), "{what}: an executor");
            }
            let steps = c["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: steps"));
            assert!(!steps.is_empty());
            for p in parameters_used(&c.to_string()) {
                assert!(declared.contains_key(&p), "{what} uses undeclared {p}");
            }
            for s in steps {
                if let Some(run) = s.get("run").filter(|r| r.is_object()) {
                    let cmd = str_of(run, "command", &what);
                    assert!(
                        parameters_used(cmd).is_empty(),
                        "{what}: parameters reach scripts through environment: {cmd}"
                    );
                    if let Some(inc) = cmd.strip_prefix("<<include(") {
                        let inc = inc.strip_suffix(")>>").expect("the whole value");
                        assert!(root().join("orb").join(inc).is_file(), "{inc}");
                    }
                }
                for store in ["store_artifacts", "store_test_results"] {
                    if let Some(st) = s.get(store) {
                        // CircleCI's schema: path, destination, name; no `when` (they run
                        // whatever the earlier steps' status).
                        for k in st.as_object().unwrap().keys() {
                            assert!(
                                ["path", "destination", "name"].contains(&k.as_str()),
                                "{what}: {store} takes no {k}"
                            );
                        }
                    }
                }
            }
        }
    }
    for name in ["run", "collect"] {
        let steps = commands[name]["steps"].as_array().unwrap();
        for store in ["store_artifacts", "store_test_results"] {
            assert!(
                steps.iter().any(|s| s.get(store).is_some()),
                "{name} has {store}"
            );
        }
    }
    let collect_run = &commands["collect"]["steps"][0]["run"];
    assert_eq!(collect_run["when"], "<< parameters.when >>");
    assert_eq!(
        commands["collect"]["parameters"]["when"]["default"],
        "on_fail"
    );
    for (p, want) in [
        ("out", "/tmp/corecatch-artifacts"),
        ("junit-dir", "/tmp/test-results"),
    ] {
        assert_eq!(commands["run"]["parameters"][p]["default"], want);
    }
    // The job runs the run command's script (inside the orb `run:` is the built-in step).
    assert_eq!(
        jobs["test"]["steps"][2]["run"]["command"],
        commands["run"]["steps"][0]["run"]["command"]
    );
    for (name, e) in &examples {
        let what = format!("orb/examples/{name}.yml");
        str_of(e, "description", &what);
        assert_eq!(e["usage"]["version"], 2.1, "{what}");
        assert!(e["usage"]["orbs"]["corecatch"]
            .as_str()
            .is_some_and(|o| o.starts_with("corecatch/corecatch@")));
    }
    let demo = examples["abort-demo"].to_string();
    assert!(
        demo.contains("make -C fixtures/abort dump && cd fixtures/abort && ./dump"),
        "{demo}"
    );
    // The orb embeds the install script: the same bytes as install.sh.
    let embedded = fs::read(root().join("orb/scripts/install.sh")).unwrap();
    assert!(
        embedded == fs::read(root().join("install.sh")).unwrap(),
        "orb/scripts/install.sh must be a copy of install.sh (cp install.sh orb/scripts/)"
    );
}

/// `${{ expr }}` replaced from `table`; an expression the table lacks is a test failure.
fn gh_expand(text: &str, table: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${{") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("}}").expect("an unclosed expression") + at;
        let expr = rest[at + 3..end].trim();
        let v = table
            .get(expr)
            .unwrap_or_else(|| panic!("no value for the expression `{expr}` in {table:?}"));
        out.push_str(v);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// One executed shell step: its name and output.
struct Step {
    name: String,
    out: Output,
}

impl Step {
    fn describe(&self) -> String {
        format!(
            "step {:?}: {}\nstdout: {}\nstderr: {}",
            self.name,
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }
}

/// The runner's side of one job.
struct Runner {
    temp: tempfile::TempDir,
    workspace: PathBuf,
    files: PathBuf,
}

impl Runner {
    fn new(workspace: &Path) -> Runner {
        let temp = tempdir();
        let files = temp.path().join("_runner_files");
        fs::create_dir(&files).unwrap();
        for f in ["step_summary.md", "path", "output", "env", "bash_env"] {
            fs::write(files.join(f), "").unwrap();
        }
        Runner {
            temp,
            workspace: workspace.to_path_buf(),
            files,
        }
    }
    fn file(&self, name: &str) -> PathBuf {
        self.files.join(name)
    }
}

/// Run `script` as the runner runs a shell step: written to a file, `shell` on it, in the
/// workspace, with `env` over the test's environment less its CI variables.
fn run_step(
    name: &str,
    shell: &[&str],
    script: &str,
    env: &[(String, String)],
    cwd: &Path,
) -> Step {
    let dir = tempdir();
    let file = dir.path().join("step.sh");
    fs::write(&file, script).unwrap();
    let _shared = CrashLock::shared();
    let mut cmd = Command::new(shell[0]);
    cmd.args(&shell[1..])
        .arg(&file)
        .current_dir(cwd)
        .stdin(Stdio::null());
    for k in [
        "GITHUB_ACTIONS",
        "GITHUB_PATH",
        "GITHUB_ENV",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "CIRCLECI",
        "BASH_ENV",
        "CORECATCH_OUT",
        "CORECATCH_VERSION",
        "CORECATCH_INSTALL_DIR",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    Step {
        name: name.to_string(),
        out: cmd.output().unwrap(),
    }
}

/// Execute the action's steps with `with` as its inputs, as GitHub's runner would: each `run:`
/// step in bash, in order, until one fails; `uses:` steps are not run. Returns the run steps.
fn run_action(with: &[(&str, String)], r: &Runner, base_url: &str) -> Vec<Step> {
    let a = action();
    let temp = r.temp.path().display().to_string();
    let mut table: BTreeMap<String, String> = [
        ("github.action_path", root().display().to_string()),
        ("github.action_ref", "v0.1.0".to_string()),
        (
            "github.action_repository",
            "corecatch/corecatch".to_string(),
        ),
        ("github.job", "demo".to_string()),
        ("github.run_attempt", "1".to_string()),
        ("github.workspace", r.workspace.display().to_string()),
        ("runner.temp", temp.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (name, spec) in a["inputs"].as_object().unwrap() {
        let given = with.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let v = given.unwrap_or_else(|| gh_expand(spec["default"].as_str().unwrap_or(""), &table));
        table.insert(format!("inputs.{name}"), v);
    }
    for (k, _) in with {
        assert!(table.contains_key(&format!("inputs.{k}")), "no input {k}");
    }
    let mut env: Vec<(String, String)> = [
        ("CI", "true".to_string()),
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_WORKSPACE", r.workspace.display().to_string()),
        ("GITHUB_ACTION_PATH", root().display().to_string()),
        ("GITHUB_JOB", "demo".to_string()),
        ("GITHUB_RUN_ATTEMPT", "1".to_string()),
        ("RUNNER_TEMP", temp),
        ("CORECATCH_BASE_URL", base_url.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, f) in [
        ("GITHUB_STEP_SUMMARY", "step_summary.md"),
        ("GITHUB_PATH", "path"),
        ("GITHUB_OUTPUT", "output"),
        ("GITHUB_ENV", "env"),
    ] {
        env.push((k.into(), r.file(f).display().to_string()));
    }
    let mut done = Vec::new();
    for s in a["runs"]["steps"].as_array().unwrap() {
        let Some(script) = s["run"].as_str() else {
            continue; // uses: (the upload), checked by the schema test
        };
        assert!(s.get("if").is_none(), "the test does not evaluate if: {s}");
        assert_eq!(s["shell"], "bash");
        let mut step_env = env.clone();
        // PATH: what earlier steps wrote to GITHUB_PATH, the latest first.
        let mut path: Vec<String> = fs::read_to_string(r.file("path"))
            .unwrap()
            .lines()
            .rev()
            .map(str::to_string)
            .collect();
        path.push(std::env::var("PATH").unwrap());
        step_env.push(("PATH".into(), path.join(":")));
        for (k, v) in s["env"].as_object().cloned().unwrap_or_default() {
            step_env.push((k, gh_expand(v.as_str().unwrap(), &table)));
        }
        let name = s["name"].as_str().unwrap_or("run").to_string();
        let step = run_step(
            &name,
            &["bash", "--noprofile", "--norc", "-eo", "pipefail"],
            &gh_expand(script, &table),
            &step_env,
            &r.workspace,
        );
        let failed = !step.out.status.success();
        done.push(step);
        if failed {
            break;
        }
    }
    done
}

/// A workspace with the abort demo as `demo/dump`.
fn demo_workspace() -> tempfile::TempDir {
    let ws = tempdir();
    fs::create_dir(ws.path().join("demo")).unwrap();
    fs::copy(abort_demo(), ws.path().join("demo/dump")).unwrap();
    ws
}

/// The artifacts of one crash of the abort demo in `out`: a stored core, its reports, the
/// manifest listing them.
fn assert_demo_artifacts(out: &Path, context: &str) {
    let cores = artifacts(out, ".core.gz");
    assert_eq!(cores.len(), 1, "{}: {context}", out.display());
    assert!(is_core_bytes(&gunzip(&cores[0])), "a core inside");
    let listed = verified_manifest_paths(out);
    let name = cores[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(listed.contains(&name), "{listed:?}");
    assert!(!artifacts(out, ".json").is_empty());
}

fn is_core_bytes(b: &[u8]) -> bool {
    b.len() >= 18 && corecatch::elf_core::looks_like_core(&b[..18])
}

fn assert_junit_crash(file: &Path, context: &str) {
    let xml =
        fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}; {context}", file.display()));
    assert!(
        xml.contains("<failure") && xml.contains("SIGABRT"),
        "{}: {xml}",
        file.display()
    );
}

#[test]
fn action_steps_run_the_abort_demo_as_the_runner_would() {
    skip_unless_kernel_cores!();
    let d = dist();
    let server = Server::start(&d.dir);
    let ws = demo_workspace();
    let r = Runner::new(ws.path());
    let steps = run_action(&[("run", "cd demo && ./dump".into())], &r, &server.url);
    let all: String = steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 2, "{all}");
    assert!(steps[0].out.status.success(), "install: {all}");
    let bin_dir = r.temp.path().join("corecatch-bin");
    assert_eq!(
        fs::read_to_string(r.file("path")).unwrap().trim(),
        bin_dir.display().to_string(),
        "the install step puts corecatch on PATH"
    );
    assert_eq!(
        sha256_hex(&fs::read(bin_dir.join("corecatch")).unwrap()),
        d.sha256()
    );
    let run = &steps[1];
    assert_eq!(run.out.status.code(), Some(134), "{all}");
    let out = r.temp.path().join("corecatch-artifacts");
    assert_demo_artifacts(&out, &all);
    assert_junit_crash(&out.join("junit.xml"), &all);
    let summary = fs::read_to_string(r.file("step_summary.md")).unwrap();
    assert!(
        summary.contains("corecatch: 1 crash(es)") && summary.contains("SIGABRT"),
        "step summary: {summary:?}"
    );
    let stdout = String::from_utf8_lossy(&run.out.stdout);
    assert!(stdout.contains("::error "), "an annotation: {all}");

    // A command that succeeds: status 0, nothing crashed, an empty JUnit suite.
    let r2 = Runner::new(ws.path());
    let steps = run_action(&[("run", "true && echo fine".into())], &r2, &server.url);
    let all: String = steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 2, "{all}");
    assert_eq!(steps[1].out.status.code(), Some(0), "{all}");
    assert!(String::from_utf8_lossy(&steps[1].out.stdout).contains("fine"));
    // The command runs as a plain bash step does: -e stops at the first failing line.
    let steps = run_action(&[("run", "false\necho reached".into())], &r2, &server.url);
    let all: String = steps.iter().map(Step::describe).collect();
    assert_eq!(steps[1].out.status.code(), Some(1), "{all}");
    assert!(
        !String::from_utf8_lossy(&steps[1].out.stdout).contains("reached"),
        "{all}"
    );
}

#[test]
fn action_collect_finds_the_core_an_earlier_step_left() {
    skip_unless_kernel_cores!();
    let d = dist();
    let server = Server::start(&d.dir);
    let ws = demo_workspace();
    crash_for_core(&ws.path().join("demo/dump"), &[], &ws.path().join("demo"));
    let r = Runner::new(ws.path());
    let steps = run_action(&[("collect", "true".into())], &r, &server.url);
    let all: String = steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 2, "{all}");
    assert_eq!(steps[1].out.status.code(), Some(0), "{all}");
    let out = r.temp.path().join("corecatch-artifacts");
    assert_demo_artifacts(&out, &all);
    assert_junit_crash(&out.join("junit.xml"), &all);
    let summary = fs::read_to_string(r.file("step_summary.md")).unwrap();
    assert!(summary.contains("corecatch: 1 crash(es)"), "{summary:?}");
    assert!(
        cores_in(&ws.path().join("demo")).is_empty(),
        "the raw core went"
    );
}

/// `<< parameters.x >>` from `params` (else the declared default), `<<include(f)>>` from orb/.
fn orb_expand(text: &str, declared: &serde_json::Value, params: &[(&str, String)]) -> String {
    let t = text.trim();
    if let Some(inc) = t
        .strip_prefix("<<include(")
        .and_then(|s| s.strip_suffix(")>>"))
    {
        return fs::read_to_string(root().join("orb").join(inc)).unwrap();
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("<<") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(">>").expect("unclosed <<") + at;
        let inner = rest[at + 2..end].trim();
        let name = inner
            .strip_prefix("parameters.")
            .unwrap_or_else(|| panic!("the test substitutes parameters only: {inner}"))
            .trim();
        let v = match params.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => v.clone(),
            None => match &declared[name]["default"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => panic!("parameter {name} has no default: pass it"),
                other => other.to_string(),
            },
        };
        out.push_str(&v);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Execute the `run` steps of the orb command `name` with `params`, as CircleCI would in a job
/// that has `failed` or not: each in `bash -eo pipefail` with `environment:`, BASH_ENV and the
/// job's variables, skipping a step whose `when` excludes it (a failing step fails the job).
/// Returns the steps run and the directories the store steps upload (they run in any case).
fn run_orb_command(
    name: &str,
    params: &[(&str, String)],
    r: &Runner,
    base_url: &str,
    mut failed: bool,
) -> (Vec<Step>, Vec<(String, PathBuf)>) {
    let c = &orb_files("commands")[name];
    let declared = &c["parameters"];
    let env: Vec<(String, String)> = [
        ("CI", "true".to_string()),
        ("CIRCLECI", "true".to_string()),
        ("CIRCLE_BUILD_NUM", "42".to_string()),
        ("CIRCLE_JOB", "demo".to_string()),
        ("CIRCLE_NODE_INDEX", "0".to_string()),
        ("CIRCLE_PROJECT_REPONAME", "corecatch".to_string()),
        (
            "CIRCLE_WORKING_DIRECTORY",
            r.workspace.display().to_string(),
        ),
        ("BASH_ENV", r.file("bash_env").display().to_string()),
        ("CORECATCH_BASE_URL", base_url.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut steps = Vec::new();
    let mut stores = Vec::new();
    for s in c["steps"].as_array().unwrap() {
        for store in ["store_artifacts", "store_test_results"] {
            if let Some(st) = s.get(store) {
                let p = orb_expand(st["path"].as_str().unwrap(), declared, params);
                stores.push((store.to_string(), PathBuf::from(p)));
            }
        }
        let Some(run) = s.get("run") else { continue };
        let when = run["when"]
            .as_str()
            .map(|w| orb_expand(w, declared, params))
            .unwrap_or_else(|| "on_success".into());
        let runs = match when.as_str() {
            "always" => true,
            "on_success" => !failed,
            "on_fail" => failed,
            w => panic!("when: {w}"),
        };
        if !runs {
            continue;
        }
        let mut step_env = env.clone();
        for (k, v) in run["environment"].as_object().cloned().unwrap_or_default() {
            step_env.push((k, orb_expand(v.as_str().unwrap(), declared, params)));
        }
        let script = orb_expand(run["command"].as_str().unwrap(), declared, params);
        let step = run_step(
            &orb_expand(run["name"].as_str().unwrap_or("run"), declared, params),
            &["bash", "-eo", "pipefail"],
            &script,
            &step_env,
            &r.workspace,
        );
        // A failed step fails the job: later on_success steps are skipped, the rest run.
        failed |= !step.out.status.success();
        steps.push(step);
    }
    (steps, stores)
}

/// The orb's install command into the runner's temp dir; corecatch is on PATH through BASH_ENV.
fn orb_install(r: &Runner, d: &Dist, url: &str) {
    let bin = r.temp.path().join("bin");
    let (steps, _) = run_orb_command(
        "install",
        &[("install-dir", bin.display().to_string())],
        r,
        url,
        false,
    );
    let all: String = steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 1, "{all}");
    assert!(steps[0].out.status.success(), "{all}");
    assert_eq!(
        sha256_hex(&fs::read(bin.join("corecatch")).unwrap()),
        d.sha256()
    );
    assert!(
        fs::read_to_string(r.file("bash_env"))
            .unwrap()
            .contains(&bin.display().to_string()),
        "BASH_ENV puts it on PATH: {all}"
    );
}

#[test]
fn orb_install_and_run_commands_run_the_abort_demo_as_circleci_would() {
    skip_unless_kernel_cores!();
    let d = dist();
    let server = Server::start(&d.dir);
    let ws = demo_workspace();
    let r = Runner::new(ws.path());
    orb_install(&r, &d, &server.url);
    let out = r.temp.path().join("artifacts");
    let junit = r.temp.path().join("test-results");
    let (steps, stores) = run_orb_command(
        "run",
        &[
            ("command", "cd demo && ./dump".into()),
            ("out", out.display().to_string()),
            ("junit-dir", junit.display().to_string()),
        ],
        &r,
        &server.url,
        false,
    );
    let all: String = steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 1, "{all}");
    assert_eq!(steps[0].out.status.code(), Some(134), "{all}");
    assert_eq!(
        stores,
        [
            ("store_artifacts".to_string(), out.clone()),
            ("store_test_results".to_string(), junit.clone())
        ]
    );
    assert_demo_artifacts(&out, &all);
    assert_junit_crash(&junit.join("corecatch.xml"), &all);
    let err = String::from_utf8_lossy(&steps[0].out.stderr);
    assert!(err.contains("SIGABRT"), "the backtrace in the log: {all}");
}

#[test]
fn orb_collect_runs_on_fail_and_finds_the_core_an_earlier_step_left() {
    skip_unless_kernel_cores!();
    let d = dist();
    let server = Server::start(&d.dir);
    let ws = demo_workspace();
    let r = Runner::new(ws.path());
    orb_install(&r, &d, &server.url);
    crash_for_core(&ws.path().join("demo/dump"), &[], &ws.path().join("demo"));
    let out = r.temp.path().join("artifacts");
    let junit = r.temp.path().join("test-results");
    let params = [
        ("out", out.display().to_string()),
        ("junit-dir", junit.display().to_string()),
    ];
    // The job has not failed: `when: on_fail` skips it.
    let (steps, _) = run_orb_command("collect", &params, &r, &server.url, false);
    assert!(steps.is_empty());
    let (steps, stores) = run_orb_command("collect", &params, &r, &server.url, true);
    let all: String = steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 1, "{all}");
    assert_eq!(steps[0].out.status.code(), Some(0), "{all}");
    assert_eq!(stores.len(), 2);
    assert_demo_artifacts(&out, &all);
    assert_junit_crash(&junit.join("corecatch.xml"), &all);
}
