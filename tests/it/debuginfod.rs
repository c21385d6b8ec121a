//! debuginfod with the real parts: Debian's `debuginfod` server on loopback (`debuginfod -F DIR`
//! indexing the unstripped build), a stripped copy of fixtures/debuginfod/main.c crashed by the
//! kernel, and `corecatch bt` with `DEBUGINFOD_URLS` pointing at the server: file and line come
//! from the server, the cache is elfutils' layout and is read without the server, an unreachable
//! server costs a warning and nothing else, and unset means nothing asked.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::skip_unless_kernel_cores;
use crate::util::{bin, compile, crash_for_core, fixture, free_port, require, tempdir, CrashLock};

/// The variables of elfutils' client: every run here starts without any of them.
const VARS: [&str; 6] = [
    "DEBUGINFOD_URLS",
    "DEBUGINFOD_CACHE_PATH",
    "DEBUGINFOD_TIMEOUT",
    "DEBUGINFOD_MAXSIZE",
    "XDG_CACHE_HOME",
    "DEBUGINFOD_PROGRESS",
];

/// A `debuginfod -F DIR` on a free loopback port with its own database; killed on drop.
struct Server {
    child: Child,
    port: u16,
    _db: tempfile::TempDir,
}

impl Server {
    /// Start one serving the ELF files in `dir`, and wait (bounded) until it serves
    /// `/buildid/ID/KIND`.
    fn start(dir: &Path, build_id: &str, kind: &str) -> Server {
        let exe = require("debuginfod");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let db = tempdir();
            let child = Command::new(&exe)
                .arg("-F")
                .arg(dir)
                .arg("-p")
                .arg(port.to_string())
                .arg("-d")
                .arg(db.path().join("db.sqlite"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("debuginfod starts");
            let mut s = Server {
                child,
                port,
                _db: db,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(st)) = s.child.try_wait() {
                    let mut err = String::new();
                    if let Some(e) = s.child.stderr.as_mut() {
                        let _ = e.read_to_string(&mut err);
                    }
                    last = format!("debuginfod exited ({st}): {err}");
                    break; // the port was taken meanwhile, say: another one
                }
                if http_status(port, &format!("/buildid/{build_id}/{kind}")) == Some(200) {
                    return s;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if last.is_empty() {
                panic!("debuginfod on port {port} did not serve {build_id}/{kind} within 30 s");
            }
        }
        panic!("debuginfod would not start: {last}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET path` on the loopback port, by hand (HTTP/1.0, one request).
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The hex build-id of the ELF file at `path`, as `readelf -n` prints it.
fn build_id(path: &Path) -> String {
    let o = Command::new(require("readelf"))
        .arg("-n")
        .arg(path)
        .output()
        .unwrap();
    let notes = String::from_utf8_lossy(&o.stdout);
    notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("no build-id in readelf -n {}: {notes}", path.display()))
        .to_string()
}

/// The program, built with `-g`, and a stripped copy at `dir/prog`. Returns the full build.
fn stripped_build(dir: &Path) -> PathBuf {
    let full = compile(
        &fixture("debuginfod/main.c"),
        "debuginfod-main",
        &["-g", "-O0"],
    );
    let st = Command::new(require("objcopy"))
        .arg("--strip-debug")
        .arg(&full)
        .arg(dir.join("prog"))
        .status()
        .unwrap();
    assert!(st.success(), "objcopy --strip-debug failed");
    full
}

/// [`stripped_build`], and the stripped copy's crash: `dir/prog` dumped core in `dir`.
/// Returns (full, core).
fn stripped_crash(dir: &Path) -> (PathBuf, PathBuf) {
    let full = stripped_build(dir);
    let core = crash_for_core(&dir.join("prog"), &[], dir);
    (full, core)
}

/// `corecatch bt --json CORE` with only the given debuginfod variables set (HOME pointed at
/// `home`, so no cache outside the test's directories is ever used).
fn bt(core: &Path, home: &Path, vars: &[(&str, &str)]) -> (Output, serde_json::Value) {
    bt_with(&[], core, home, vars)
}

/// [`bt`] with more arguments before the core.
fn bt_with(
    args: &[&str],
    core: &Path,
    home: &Path,
    vars: &[(&str, &str)],
) -> (Output, serde_json::Value) {
    let mut all = vec!["bt", "--json"];
    all.extend_from_slice(args);
    let o = corecatch_env(&all, core, home, vars);
    let json = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("bt --json: {e}: {}", String::from_utf8_lossy(&o.stdout));
    });
    (o, json)
}

/// `corecatch ARGS CORE [AFTER...]` with only the given debuginfod variables set (HOME pointed at
/// `home`); it must exit 0.
fn corecatch_env(args: &[&str], core: &Path, home: &Path, vars: &[(&str, &str)]) -> Output {
    corecatch_env_then(args, core, &[], home, vars)
}

fn corecatch_env_then(
    args: &[&str],
    core: &Path,
    after: &[&str],
    home: &Path,
    vars: &[(&str, &str)],
) -> Output {
    let _shared = CrashLock::shared();
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .arg(core)
        .args(after)
        .env_remove("CORECATCH_OUT")
        .env_remove("GITHUB_ACTIONS")
        .env("HOME", home)
        .env("CORECATCH_CACHE", home.join("corecatch-cache"))
        .stdin(Stdio::null());
    for v in VARS {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "corecatch {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// (function, file, line) of the crashed thread's frames in the module at `module` that are the
/// program's own functions ([`OWN`]) or have no name (`_start` has neither file nor line).
fn own_frames(
    report: &serde_json::Value,
    module: &Path,
) -> Vec<(String, Option<String>, Option<u64>)> {
    let module = module.display().to_string();
    report["threads"][0]["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .filter(|f| f["module"].as_str() == Some(module.as_str()))
        .filter(|f| f["function"].as_str().map_or(true, |n| OWN.contains(&n)))
        .map(|f| {
            (
                f["function"].as_str().unwrap_or("??").to_string(),
                f["file"].as_str().map(String::from),
                f["line"].as_u64(),
            )
        })
        .collect()
}

fn warnings(report: &serde_json::Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

/// The functions the program's own frames must name, innermost first.
const OWN: [&str; 3] = ["inner", "outer", "main"];

fn names(frames: &[(String, Option<String>, Option<u64>)]) -> Vec<&str> {
    frames
        .iter()
        .map(|(f, _, _)| f.as_str())
        .filter(|f| OWN.contains(f))
        .collect()
}

#[test]
fn debuginfod_gives_file_and_line_and_fills_the_cache_in_elfutils_layout() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (full, core) = stripped_crash(dir.path());
    let prog = dir.path().join("prog");
    let id = build_id(&full);
    assert_eq!(build_id(&prog), id);

    // The oracle: bt with the unstripped build where the core says the program is.
    let stripped = fs::read(&prog).unwrap();
    fs::copy(&full, &prog).unwrap();
    let (_, with_file) = bt(&core, dir.path(), &[]);
    let want = own_frames(&with_file, &prog);
    assert_eq!(names(&want), OWN, "{want:?}");
    assert!(
        want.iter().all(|(_, f, l)| f.is_some() && l.is_some()),
        "{want:?}"
    );
    fs::write(&prog, &stripped).unwrap();

    // Stripped, without a server: names from the symbol table only.
    let (_, before) = bt(&core, dir.path(), &[]);
    let bare = own_frames(&before, &prog);
    assert_eq!(names(&bare), OWN, "{bare:?}");
    assert!(
        bare.iter().all(|(_, f, l)| f.is_none() && l.is_none()),
        "{bare:?}"
    );

    // The unstripped build only in the server's directory.
    let srv = tempdir();
    fs::copy(&full, srv.path().join("prog.debug-build")).unwrap();
    let server = Server::start(srv.path(), &id, "debuginfo");
    let cache = dir.path().join("cache");
    let vars = [
        ("DEBUGINFOD_URLS", server.url()),
        ("DEBUGINFOD_CACHE_PATH", cache.display().to_string()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, fetched) = bt(&core, dir.path(), &vars);
    assert_eq!(
        own_frames(&fetched, &prog),
        want,
        "warnings: {:?}",
        warnings(&fetched)
    );
    assert!(
        !warnings(&fetched).iter().any(|w| w.contains(&id)),
        "{:?}",
        warnings(&fetched)
    );
    let cached = cache.join(&id).join("debuginfo");
    let module = fetched["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"].as_str() == prog.to_str())
        .expect("the program's module")
        .clone();
    assert_eq!(
        module["debug_file"].as_str(),
        cached.to_str(),
        "the debug file used is the cached one: {module}"
    );
    assert_eq!(
        fs::read(&cached).unwrap_or_else(|e| panic!("{}: {e}", cached.display())),
        fs::read(&full).unwrap(),
        "the cache holds the unstripped build's bytes"
    );
    let leftovers: Vec<_> = fs::read_dir(cache.join(&id))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "debuginfo")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The server gone: the cache still gives file and line.
    drop(server);
    let (_, again) = bt(&core, dir.path(), &vars);
    assert_eq!(
        own_frames(&again, &prog),
        want,
        "warnings: {:?}",
        warnings(&again)
    );
    assert!(
        !warnings(&again).iter().any(|w| w.contains(&id)),
        "the program's debug file came from the cache, not a request: {:?}",
        warnings(&again)
    );
}

#[test]
fn debuginfod_unreachable_is_a_warning_and_todays_frames() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (full, core) = stripped_crash(dir.path());
    let prog = dir.path().join("prog");
    let id = build_id(&full);
    let url = format!("http://127.0.0.1:{}", free_port());
    let cache = dir.path().join("cache");
    let cache_s = cache.display().to_string();
    let started = Instant::now();
    let (o, report) = bt(
        &core,
        dir.path(),
        &[
            ("DEBUGINFOD_URLS", &url),
            ("DEBUGINFOD_CACHE_PATH", &cache_s),
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let frames = own_frames(&report, &prog);
    assert_eq!(names(&frames), OWN, "{frames:?}");
    assert!(
        frames.iter().all(|(_, f, l)| f.is_none() && l.is_none()),
        "{frames:?}"
    );
    let w = warnings(&report);
    assert!(
        w.iter().any(|w| w.contains(&url) && w.contains(&id)),
        "a warning names the server and the program's build-id: {w:?}"
    );
    // The text form shows it too.
    let text = Command::new(bin())
        .args(["bt"])
        .arg(&core)
        .env("DEBUGINFOD_URLS", &url)
        .env("DEBUGINFOD_CACHE_PATH", &cache_s)
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&format!("warning: debuginfod: {url}")),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    assert!(o.stderr.is_empty() || !String::from_utf8_lossy(&o.stderr).contains("panicked"));
    assert!(
        fs::read_dir(&cache).map_or(true, |d| d
            .flatten()
            .all(|e| fs::read_dir(e.path()).map_or(true, |mut d| d.next().is_none()))),
        "nothing cached from a server that was not there"
    );
}

#[test]
fn debuginfod_unset_asks_nothing() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (_, core) = stripped_crash(dir.path());
    let cache = dir.path().join("cache");
    fs::create_dir(&cache).unwrap();
    let cache_s = cache.display().to_string();
    let xdg = dir.path().join("xdg");
    let xdg_s = xdg.display().to_string();
    for urls in [None, Some(""), Some("   ")] {
        let mut vars = vec![
            ("DEBUGINFOD_CACHE_PATH", cache_s.as_str()),
            ("XDG_CACHE_HOME", xdg_s.as_str()),
        ];
        if let Some(u) = urls {
            vars.push(("DEBUGINFOD_URLS", u));
        }
        let (_, report) = bt(&core, dir.path(), &vars);
        let w = warnings(&report);
        assert!(
            !w.iter().any(|w| w.contains("debuginfod")),
            "DEBUGINFOD_URLS={urls:?}: {w:?}"
        );
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 0, "{urls:?}");
        assert!(
            !xdg.exists() && !dir.path().join(".cache").exists(),
            "{urls:?}"
        );
    }
}

#[test]
fn debuginfod_gives_the_executable_that_was_deleted() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (_, core) = stripped_crash(dir.path());
    let prog = dir.path().join("prog");
    let id = build_id(&prog);
    // The server has the stripped build: symbols and CFI, no DWARF.
    let srv = tempdir();
    let stripped = fs::read(&prog).unwrap();
    fs::write(srv.path().join("prog"), &stripped).unwrap();
    fs::remove_file(&prog).unwrap();

    let (_, without) = bt(&core, dir.path(), &[]);
    assert!(
        names(&own_frames(&without, &prog)).is_empty(),
        "without the file, no names: {:?}",
        own_frames(&without, &prog)
    );

    let server = Server::start(srv.path(), &id, "executable");
    let cache = dir.path().join("cache");
    let (url, cache_s) = (server.url(), cache.display().to_string());
    let (_, report) = bt(
        &core,
        dir.path(),
        &[
            ("DEBUGINFOD_URLS", &url),
            ("DEBUGINFOD_CACHE_PATH", &cache_s),
        ],
    );
    let frames = own_frames(&report, &prog);
    assert_eq!(names(&frames), OWN, "{frames:?}; {:?}", warnings(&report));
    let w = warnings(&report);
    assert!(
        !w.iter()
            .any(|w| w.contains("cannot open") && w.contains("prog")),
        "the missing-file warning is taken back: {w:?}"
    );
    assert_eq!(
        fs::read(cache.join(&id).join("executable")).unwrap(),
        stripped,
        "the executable came from /buildid/ID/executable into the cache"
    );
    // The stripped build has no DWARF: its debug file was asked for too, and the server
    // had none (a 404, named).
    assert!(
        w.iter()
            .any(|w| w.contains(&format!("{url}/buildid/{id}/debuginfo")) && w.contains("404")),
        "{w:?}"
    );
}

#[test]
fn debuginfod_that_never_answers_leaves_the_walk_its_time() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (_, core) = stripped_crash(dir.path());
    let prog = dir.path().join("prog");
    // Connections complete in the kernel's backlog; nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let cache = dir.path().join("cache");
    let cache_s = cache.display().to_string();
    let started = Instant::now();
    // DEBUGINFOD_TIMEOUT unset: 90 s, but --timeout 3 bounds everything.
    let (_, report) = bt_with(
        &["--timeout", "3"],
        &core,
        dir.path(),
        &[
            ("DEBUGINFOD_URLS", &url),
            ("DEBUGINFOD_CACHE_PATH", &cache_s),
        ],
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "bt took {took:?}");
    let frames = own_frames(&report, &prog);
    assert_eq!(names(&frames), OWN, "{frames:?}");
    let w = warnings(&report);
    assert!(
        w.iter()
            .any(|w| w.contains(&url) && w.contains("--timeout")),
        "{w:?}"
    );
    assert!(
        !w.iter().any(|w| w.contains("deadline passed")),
        "the walk had its time: {w:?}"
    );
    let stop = &report["threads"][0]["stop_reason"];
    assert_eq!(stop, "end of stack", "the walk was not cut short");
    drop(silent);
}

#[test]
fn debuginfod_serves_run_too() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let full = stripped_build(dir.path());
    let prog = dir.path().join("prog");
    let id = build_id(&full);
    let srv = tempdir();
    fs::copy(&full, srv.path().join("prog.debug-build")).unwrap();
    let server = Server::start(srv.path(), &id, "debuginfo");
    let cache = dir.path().join("cache");
    let o = {
        let _shared = CrashLock::shared();
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--out", "out", "--", "./prog"])
            .current_dir(dir.path())
            .env_remove("CORECATCH_OUT")
            .env_remove("GITHUB_ACTIONS")
            .env("HOME", dir.path())
            .stdin(Stdio::null());
        for v in VARS {
            cmd.env_remove(v);
        }
        cmd.env("DEBUGINFOD_URLS", server.url())
            .env("DEBUGINFOD_CACHE_PATH", &cache)
            .output()
            .unwrap()
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(134), "{err}");
    let json = crate::util::artifacts(&dir.path().join("out"), ".json");
    let json: Vec<_> = json
        .iter()
        .filter(|p| !p.ends_with("manifest.json"))
        .collect();
    assert_eq!(json.len(), 1, "{json:?}; {err}");
    let report: serde_json::Value = serde_json::from_slice(&fs::read(json[0]).unwrap()).unwrap();
    let frames = own_frames(&report, &prog);
    assert_eq!(names(&frames), OWN, "{frames:?}; {err}");
    assert!(
        frames.iter().all(|(_, f, l)| f.is_some() && l.is_some()),
        "{frames:?}; {:?}",
        warnings(&report)
    );
    assert!(cache.join(&id).join("debuginfo").is_file());
}

/// `corecatch debug` with `DEBUGINFOD_URLS` set turns gdb's own debuginfod client on: a stripped
/// program's crash gets file and line in gdb from the server (and not without it).
#[test]
fn debug_lets_gdb_ask_debuginfod() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (full, core) = stripped_crash(dir.path());
    let id = build_id(&full);
    let srv = tempdir();
    fs::copy(&full, srv.path().join("prog.debug-build")).unwrap();
    let server = Server::start(srv.path(), &id, "debuginfo");
    let gdb_bt = |vars: &[(&str, &str)]| {
        let o = corecatch_env_then(
            &["debug"],
            &core,
            &["--batch", "-ex", "bt"],
            dir.path(),
            vars,
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let inner_at = |out: &str| {
        out.lines()
            .any(|l| l.contains(" inner ") && l.contains(" at ") && l.contains("main.c:"))
    };
    let without = gdb_bt(&[]);
    assert!(without.contains("inner"), "{without}");
    assert!(
        !inner_at(&without),
        "no file:line without the server: {without}"
    );
    let cache = dir.path().join("cache").display().to_string();
    let with = gdb_bt(&[
        ("DEBUGINFOD_URLS", server.url().as_str()),
        ("DEBUGINFOD_CACHE_PATH", cache.as_str()),
    ]);
    assert!(
        inner_at(&with),
        "gdb got main.c's lines from debuginfod: {with}"
    );
    assert!(dir
        .path()
        .join("cache")
        .join(&id)
        .join("debuginfo")
        .is_file());
}
