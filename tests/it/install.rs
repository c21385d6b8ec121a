//! Getting corecatch into a CI job, with the real parts: `install.sh` runs under dash and under
//! busybox sh (with only busybox's tools) against a loopback HTTP server serving `make dist`'s
//! directory (`CORECATCH_DIST`, else `dist/`). It installs a binary that runs, with or without a
//! version, into the default directory or the one asked for, and puts it on PATH in a CI job;
//! a corrupted download, a wrong or garbled checksum file, a 404, an unreachable server and an
//! unknown `uname` each fail with a clear message and leave nothing installed.

use crate::util::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One release's assets, as `make dist` writes them.
struct Dist {
    dir: PathBuf,
    version: String,
    /// `corecatch-<version>-x86_64-linux`
    asset: String,
}

fn dist() -> Dist {
    let dir = std::env::var_os("CORECATCH_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("dist"));
    let version = fs::read_to_string(dir.join("VERSION"))
        .unwrap_or_else(|e| {
            panic!(
                "{}/VERSION: {e}; run `make dist` (or set CORECATCH_DIST)",
                dir.display()
            )
        })
        .trim()
        .to_string();
    let asset = format!("corecatch-{version}-x86_64-linux");
    for f in [asset.clone(), format!("{asset}.sha256")] {
        assert!(
            dir.join(&f).is_file(),
            "{}/{f} is missing: run `make dist`",
            dir.display()
        );
    }
    Dist {
        dir,
        version,
        asset,
    }
}

impl Dist {
    fn binary(&self) -> PathBuf {
        self.dir.join(&self.asset)
    }
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

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
