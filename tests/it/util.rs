//! Helpers shared by the integration tests: building crash programs from fixtures/, making real
//! cores, running the corecatch binary, and the lock that keeps core_pattern changes away from
//! tests that crash processes.
#![allow(dead_code)]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture path that must exist (symbolic's `fixture()` habit).
pub fn fixture(rel: &str) -> PathBuf {
    let p = root().join("fixtures").join(rel);
    assert!(p.exists(), "fixture {} is missing", p.display());
    p
}

/// The corecatch binary under test: `CORECATCH_BIN` (the Makefile points it at the release build,
/// built once) or cargo's build of this crate.
pub fn bin() -> PathBuf {
    match std::env::var_os("CORECATCH_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_corecatch")),
    }
}

/// One release's assets, as `make dist` writes them: `CORECATCH_DIST` (the Makefile's `dist/`)
/// or `<repo>/dist`. Missing, the calling test fails (`make test` runs `make dist` first).
pub struct Dist {
    pub dir: PathBuf,
    pub version: String,
    /// `corecatch-<version>-x86_64-linux`
    pub asset: String,
}

pub fn dist() -> Dist {
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
    /// The static binary.
    pub fn binary(&self) -> PathBuf {
        self.dir.join(&self.asset)
    }
}

/// A directory for build products shared by all tests of this run (built once per process).
pub fn build_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = root().join("target").join("fixtures-build");
        fs::create_dir_all(&d).unwrap();
        d
    })
    .clone()
}

/// Compile a C, C++ or Rust source with the given flags into `build_dir()/name`, unless it is already
/// newer than its source. Returns the executable path.
pub fn compile(src: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let cc = match src.extension().and_then(|e| e.to_str()) {
        Some("cpp" | "cc") => "g++",
        Some("rs") => "rustc",
        _ => "gcc",
    };
    compile_with(cc, src, name, flags)
}

/// [`compile`] with the compiler `cc` (a cross compiler, `aarch64-linux-gnu-gcc`).
pub fn compile_with(cc: &str, src: &Path, name: &str, flags: &[&str]) -> PathBuf {
    // The cached product is keyed by source path and flags too, not only by name: the same name
    // built from another source or with other flags must not reuse a stale binary.
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (cc, src, flags).hash(&mut h);
        h.finish()
    };
    let out = build_dir().join(format!("{name}-{key:016x}"));
    let lock = build_dir().join(format!("{name}.lock"));
    let _guard = FileLock::exclusive(&lock);
    let fresh = match (fs::metadata(&out), fs::metadata(src)) {
        (Ok(o), Ok(s)) => o.modified().unwrap() >= s.modified().unwrap(),
        _ => false,
    };
    if !fresh {
        let tmp = out.with_extension("tmp");
        let st = Command::new(require(cc))
            .args(flags)
            .arg("-o")
            .arg(&tmp)
            .arg(src)
            .status()
            .unwrap();
        assert!(st.success(), "{cc} failed on {}", src.display());
        fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// The seed's abort demo, built from fixtures/abort/main.c.
pub fn abort_demo() -> PathBuf {
    compile(&fixture("abort/main.c"), "abort-demo", &["-g", "-O0"])
}

/// Run corecatch with `args` in `cwd`, stdin closed, and capture its output.
/// fixtures/crash/crash.c at -O0 with debug info: `crash MODE` crashes as MODE says.
pub fn crash_prog() -> PathBuf {
    compile(&fixture("crash/crash.c"), "crash", &["-g", "-O0"])
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn corecatch(cwd: &Path, args: &[&str]) -> Output {
    let _shared = CrashLock::shared();
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("CORECATCH_OUT")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The kernel's core_pattern now.
pub fn core_pattern() -> String {
    fs::read_to_string("/proc/sys/kernel/core_pattern")
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// `Some(reason)` when kernel cores cannot land in a process's working directory here, so a test
/// that needs one must skip (or fail, under CI: [`skip_or_fail`]).
pub fn kernel_cores_unavailable() -> Option<String> {
    // Under the shared lock: a test that rewrites core_pattern must not make us skip.
    let p = {
        let _shared = CrashLock::shared();
        core_pattern()
    };
    if p.starts_with('|') || p.starts_with('@') {
        return Some(format!("core_pattern is a handler ({p}), not a file"));
    }
    if p.starts_with('/') {
        return Some(format!("core_pattern is an absolute path ({p})"));
    }
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
    if hard == 0 {
        return Some("the hard RLIMIT_CORE is 0".into());
    }
    None
}

/// Whether this is a CI run (`CI` set to any non-empty value): there every test must run, so a
/// missing precondition is a failure, not a skip.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// A precondition of the calling test does not hold here (not root, no kernel cores, a tool
/// `make test` does not install). Under CI this panics with `why`; elsewhere it prints
/// `SKIP: why` and the caller returns. [`skip_or_fail!`] does both.
pub fn skip_or_fail(why: &str) {
    if under_ci() {
        panic!("precondition missing under CI (CI is set, so this test may not skip): {why}");
    }
    eprintln!("SKIP: {why}");
}

/// `skip_or_fail!("format", args...)`: [`skip_or_fail`] with the formatted reason, then return
/// from the calling function (with `Default::default()`, so `()` or `None`).
#[macro_export]
macro_rules! skip_or_fail {
    ($($why:tt)+) => {{
        $crate::util::skip_or_fail(&format!($($why)+));
        return Default::default();
    }};
}

/// A tool `make test` installs (`make deps`, `make venv`): its path, found on PATH unless `tool`
/// is a path. Missing, it fails the test, CI or not: such a tool is never a reason to skip.
pub fn require(tool: &str) -> PathBuf {
    let found = if tool.contains('/') {
        Some(PathBuf::from(tool)).filter(|p| p.is_file())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
    };
    found.unwrap_or_else(|| {
        panic!("{tool} is missing: this test requires it (`make deps` / `make venv` install it)")
    })
}

/// The venv's python (`make venv`) after checking it imports `modules`; panics when it does not.
pub fn venv_python(modules: &str) -> PathBuf {
    let py = require(root().join("target/venv/bin/python").to_str().unwrap());
    let o = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} cannot import {modules} (`make venv` installs them): {}",
        py.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    py
}

/// Skip (or fail, under CI) when kernel cores cannot land in the working directory here; use
/// as `skip_unless_kernel_cores!();`.
#[macro_export]
macro_rules! skip_unless_kernel_cores {
    () => {
        if let Some(why) = $crate::util::kernel_cores_unavailable() {
            $crate::skip_or_fail!("{why}");
        }
    };
}

/// Run `exe args` in `dir` with RLIMIT_CORE raised, let it crash, and return its core: the ELF
/// core file that appeared in `dir`. Panics when none appeared.
pub fn crash_for_core(exe: &Path, args: &[&str], dir: &Path) -> PathBuf {
    let _shared = CrashLock::shared();
    let before: Vec<_> = cores_in(dir);
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(dir);
    raise_core_limit(&mut cmd);
    let st = cmd.status().unwrap();
    assert!(
        std::os::unix::process::ExitStatusExt::core_dumped(&st),
        "{} did not dump core: {st:?}",
        exe.display()
    );
    let after = cores_in(dir);
    after
        .into_iter()
        .find(|p| !before.contains(p))
        .or_else(|| cores_in(dir).into_iter().next())
        .unwrap_or_else(|| panic!("no core appeared in {}", dir.display()))
}

/// Let `cmd`'s process dump core of any size: RLIMIT_CORE raised to infinity in the child.
pub fn raise_core_limit(cmd: &mut Command) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_CORE,
                nix::sys::resource::RLIM_INFINITY,
                nix::sys::resource::RLIM_INFINITY,
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// ELF core files directly inside `dir`.
pub fn cores_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| is_core(p));
    v.sort();
    v
}

pub fn is_core(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 18];
    fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| corecatch::elf_core::looks_like_core(&head))
        .unwrap_or(false)
}

/// An flock(2) held until drop.
pub struct FileLock(fs::File);

impl FileLock {
    fn take(path: &Path, op: nix::fcntl::FlockArg) -> FileLock {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap();
        #[allow(deprecated)]
        nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&f), op).unwrap();
        FileLock(f)
    }
    pub fn exclusive(path: &Path) -> FileLock {
        Self::take(path, nix::fcntl::FlockArg::LockExclusive)
    }
    pub fn shared(path: &Path) -> FileLock {
        Self::take(path, nix::fcntl::FlockArg::LockShared)
    }
}

/// Tests that crash processes hold this shared; tests that rewrite core_pattern hold it
/// exclusive, so no crash happens under a pattern it did not expect. Works across the separate
/// processes nextest starts.
pub struct CrashLock;

impl CrashLock {
    fn path() -> PathBuf {
        std::env::temp_dir().join("corecatch-tests-core-pattern.lock")
    }
    pub fn shared() -> FileLock {
        FileLock::shared(&Self::path())
    }
    pub fn exclusive() -> FileLock {
        FileLock::exclusive(&Self::path())
    }
}

/// A fresh temporary directory.
/// Files in `out` whose names end with `suffix` (`""` for all), sorted; none when `out` is
/// missing.
pub fn artifacts(out: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    v.sort();
    v
}

/// `gunzip -c FILE`: what the real gzip restores from an artifact.
pub fn gunzip(p: &Path) -> Vec<u8> {
    let o = Command::new(require("gunzip"))
        .arg("-c")
        .arg(p)
        .output()
        .unwrap();
    assert!(o.status.success(), "gunzip failed on {}", p.display());
    o.stdout
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("cc-it-").tempdir().unwrap()
}

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
const CORE_USES_PID: &str = "/proc/sys/kernel/core_uses_pid";

/// Sets core_pattern (as root, under CrashLock exclusive) and core_uses_pid while alive; restores both on drop.
pub struct PatternGuard {
    old_pattern: String,
    old_uses_pid: String,
    _lock: FileLock,
}

impl PatternGuard {
    /// `None` when the settings cannot be changed here, after [`skip_or_fail`] (which panics
    /// under CI).
    pub fn set(pattern: &str, uses_pid: bool) -> Option<PatternGuard> {
        let lock = CrashLock::exclusive();
        let old_pattern = match fs::read_to_string(CORE_PATTERN) {
            Ok(p) => p,
            Err(e) => crate::skip_or_fail!("cannot read {CORE_PATTERN} ({e})"),
        };
        let old_uses_pid = fs::read_to_string(CORE_USES_PID).unwrap_or_else(|_| "0\n".into());
        if let Err(e) = fs::write(CORE_PATTERN, pattern) {
            crate::skip_or_fail!(
                "cannot write {CORE_PATTERN} ({e}); needs root outside a container"
            );
        }
        let guard = PatternGuard {
            old_pattern,
            old_uses_pid,
            _lock: lock,
        };
        if let Err(e) = fs::write(CORE_USES_PID, if uses_pid { "1" } else { "0" }) {
            drop(guard); // puts core_pattern back
            crate::skip_or_fail!("cannot write {CORE_USES_PID} ({e})");
        }
        Some(guard)
    }
}

impl Drop for PatternGuard {
    fn drop(&mut self) {
        let _ = fs::write(CORE_PATTERN, self.old_pattern.trim_end());
        let _ = fs::write(CORE_USES_PID, self.old_uses_pid.trim_end());
    }
}

/// Run corecatch without taking the shared crash lock (the caller holds it exclusive).
pub fn corecatch_locked(cwd: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("CORECATCH_OUT")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The frame lines (`#N …`) of a text backtrace (bt's output, a `.txt` report).
pub fn frame_lines(t: &str) -> Vec<String> {
    t.lines()
        .filter(|l| l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `bt`'s stdout prints the frames of the run's own text report, `main` among them: the core
/// read back (fetched, split, decompressed, decrypted) is read as on the machine it crashed on.
pub fn assert_bt_shows_report(bt_stdout: &[u8], report: &str, what: &str) {
    let shown = frame_lines(&String::from_utf8_lossy(bt_stdout));
    assert!(
        shown.iter().any(|f| f.contains("in main () at ")),
        "{what}: {shown:?}"
    );
    assert_eq!(shown, frame_lines(report), "{what}");
}

/// A loopback port nothing listens on now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SHA-256 of `data`, lowercase hex (as manifest.json spells it).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `out/manifest.json`, parsed.
pub fn read_manifest(out: &Path) -> serde_json::Value {
    let bytes = fs::read(out.join("manifest.json"))
        .unwrap_or_else(|e| panic!("{}/manifest.json: {e}", out.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "manifest.json is not valid JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// The manifest's paths, after checking that each listed file exists with its size and sha256.
pub fn verified_manifest_paths(out: &Path) -> Vec<String> {
    let m = read_manifest(out);
    let entries = m["artifacts"].as_array().expect("an artifacts array");
    let mut paths = Vec::new();
    for e in entries {
        let p = e["path"].as_str().unwrap().to_string();
        let data =
            fs::read(out.join(&p)).unwrap_or_else(|err| panic!("listed {p} is missing: {err}"));
        assert_eq!(e["bytes"].as_u64(), Some(data.len() as u64), "size of {p}");
        assert_eq!(
            e["sha256"].as_str(),
            Some(sha256_hex(&data).as_str()),
            "sha256 of {p} (manifest entry {e})"
        );
        paths.push(p);
    }
    paths
}
