//! systemd-coredump as the pipe handler, for real: core_pattern set to Debian's own line
//! (/usr/lib/sysctl.d/50-coredump.conf), the packaged /lib/systemd/systemd-coredump receiving the
//! kernel's core and handing it to a socket-activated instance of itself, as
//! systemd-coredump.socket would (here `systemd-socket-activate` stands in for systemd, which is
//! not PID 1 on this machine or in CI), and that instance writing the zstd-compressed core into
//! /var/lib/systemd/coredump. There is no journald, so `coredumpctl` finds nothing and corecatch
//! reads the store. Root only (core_pattern, the socket, the store); the tests skip with a printed
//! reason elsewhere (fail under CI, `CI` set), and fail when systemd-coredump is not installed.

use crate::capture::gdb_frames;
use crate::skip_or_fail;
use crate::util::*;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HELPER: &str = "/lib/systemd/systemd-coredump";
const SOCKET: &str = "/run/systemd/coredump";
const STORE: &str = "/var/lib/systemd/coredump";
/// Debian's line (/usr/lib/sysctl.d/50-coredump.conf): `%c` is replaced by a constant, so the
/// crashing process's RLIMIT_CORE does not matter to systemd-coredump.
const DEBIAN_PATTERN: &str =
    "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h %d";
const CORE_PIPE_LIMIT: &str = "/proc/sys/kernel/core_pipe_limit";

/// Why these tests cannot run here. systemd-coredump (and with it systemd's
/// systemd-socket-activate) is installed by `make deps`, so its absence fails the test.
fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (core_pattern, /run/systemd, the store)".into());
    }
    require(HELPER);
    require("/usr/bin/systemd-socket-activate");
    None
}

/// A listener on systemd-coredump's socket that starts one systemd-coredump per connection, as
/// systemd-coredump.socket (`Accept=yes`) does. Only started when nothing listens there; killed
/// on drop (and with the test process, through PR_SET_PDEATHSIG).
struct Activator {
    child: Option<Daemon>,
}

/// A daemon of the test's, killed on drop (and with the test process, through
/// PR_SET_PDEATHSIG).
struct Daemon(Child);

impl Daemon {
    /// Start `cmd` with no stdio and wait (up to 10 s) until it has created `ready`.
    fn start(mut cmd: Command, ready: &Path, what: &str) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let d = Daemon(cmd.spawn().unwrap_or_else(|e| panic!("{what} starts: {e}")));
        let t = Instant::now();
        while !ready.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{what}: {} never appeared",
                ready.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Activator {
    fn start() -> Activator {
        use std::os::unix::fs::FileTypeExt;
        let socket = Path::new(SOCKET);
        if fs::metadata(socket).is_ok_and(|m| m.file_type().is_socket()) {
            // A stream connect to a listening seqpacket socket fails with EPROTOTYPE without
            // connecting; ECONNREFUSED means a stale file nobody listens on.
            match std::os::unix::net::UnixStream::connect(socket) {
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    fs::remove_file(socket).unwrap();
                }
                _ => return Activator { child: None },
            }
        }
        fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.args(["--seqpacket", "-a", "-l", SOCKET, HELPER]);
        Activator {
            child: Some(Daemon::start(cmd, socket, "systemd-socket-activate")),
        }
    }
}

impl Drop for Activator {
    fn drop(&mut self) {
        if self.child.take().is_some() {
            let _ = fs::remove_file(SOCKET);
        }
    }
}

/// Sets kernel.core_pipe_limit as Debian does (the kernel keeps the crashed process until
/// systemd-coredump has read its /proc metadata); restores it on drop.
struct PipeLimit(String);

impl PipeLimit {
    fn set(v: &str) -> PipeLimit {
        let old = fs::read_to_string(CORE_PIPE_LIMIT).unwrap();
        fs::write(CORE_PIPE_LIMIT, v).unwrap();
        PipeLimit(old)
    }
}

impl Drop for PipeLimit {
    fn drop(&mut self) {
        let _ = fs::write(CORE_PIPE_LIMIT, self.0.trim());
    }
}

/// Removes on drop the store entries that appeared while it lived (the tests' own crashes).
struct StoreEntries(Vec<PathBuf>);

impl StoreEntries {
    fn now() -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(STORE)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    fn new_since(&self) -> Vec<PathBuf> {
        Self::now()
            .into_iter()
            .filter(|p| !self.0.contains(p))
            .collect()
    }
}

impl Drop for StoreEntries {
    fn drop(&mut self) {
        for p in self.new_since() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Everything a test needs, undone in reverse order on every exit path: the store's new
/// entries removed, the listener stopped, core_pipe_limit and core_pattern restored (the
/// pattern guard also holds the crash lock, so no other test crashes meanwhile).
struct Setup {
    entries: StoreEntries,
    _activator: Activator,
    _limit: PipeLimit,
    _pattern: PatternGuard,
}

fn setup() -> Option<Setup> {
    if let Some(why) = unavailable() {
        skip_or_fail!("{why}");
    }
    let pattern = PatternGuard::set(DEBIAN_PATTERN, false)?;
    let limit = PipeLimit::set("16");
    let activator = Activator::start();
    Some(Setup {
        entries: StoreEntries(StoreEntries::now()),
        _activator: activator,
        _limit: limit,
        _pattern: pattern,
    })
}

/// The store entry of `pid`, waited for (systemd-coredump writes it after the crash).
fn wait_for_entry(pid: i32) -> PathBuf {
    let t = Instant::now();
    loop {
        let hit = StoreEntries::now().into_iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                // core.COMM.UID.BOOT_ID.PID.TIME.zst (systemd escapes dots in every field)
                .and_then(|n| n.split('.').nth(4))
                .is_some_and(|p| p == pid.to_string())
        });
        if let Some(p) = hit {
            return p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "systemd-coredump stored no core of pid {pid}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The report JSON beside a `.core.gz`.
fn report_of(gz: &Path) -> serde_json::Value {
    let json = gz.to_string_lossy().replace(".core.gz", ".json");
    serde_json::from_slice(&fs::read(json).unwrap()).unwrap()
}

/// Function names of the crashed thread in a report, innermost first.
fn report_frames(v: &serde_json::Value) -> Vec<String> {
    let t = v["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["crashed"] == true)
        .unwrap();
    t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("??").to_string())
        .collect()
}

fn is_elf_core(bytes: &[u8]) -> bool {
    bytes.len() > 18 && corecatch::elf_core::looks_like_core(&bytes[..18])
}

#[test]
fn run_auto_reads_the_core_back_from_systemd_coredumps_store() {
    let Some(s) = setup() else { return };
    let dir = tempdir();
    let crash = crash_prog();
    let o = corecatch_locked(
        dir.path(),
        &[
            "run",
            "--keep-cores",
            "--out",
            "out",
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(134), "{err}");
    assert!(
        err.contains("core_pattern pipes cores to systemd-coredump")
            && err.contains("reads this run's cores back"),
        "auto says it chose the handler's store: {err}"
    );
    let out = dir.path().join("out");
    let gz = artifacts(&out, ".core.gz");
    assert_eq!(gz.len(), 1, "{err}");
    let core = gunzip(&gz[0]);
    assert!(is_elf_core(&core), "the artifact is an ELF core");
    let v = report_of(&gz[0]);
    assert_eq!(v["signal"]["name"], "SIGABRT", "{v}");
    assert_eq!(v["core"]["from"]["handler"], "systemd-coredump", "{v}");
    let from = v["core"]["from"]["path"].as_str().unwrap().to_string();
    assert!(from.starts_with(STORE), "{from}");
    assert!(
        err.contains(&format!("core from systemd-coredump: {from}")),
        "{err}"
    );
    let txt = fs::read_to_string(gz[0].to_string_lossy().replace(".core.gz", ".txt")).unwrap();
    assert!(
        txt.contains(&format!("core: {from} from systemd-coredump")),
        "{txt}"
    );
    // The store keeps its file; no temporary copy is left in the artifacts, even with
    // --keep-cores (the raw core is the store's).
    assert!(Path::new(&from).exists());
    assert_eq!(s.entries.new_since(), [PathBuf::from(&from)]);
    assert!(
        !artifacts(&out, "")
            .iter()
            .any(|p| p.to_string_lossy().contains(".corecatch-")),
        "{:?}",
        artifacts(&out, "")
    );
    assert!(
        cores_in(dir.path()).is_empty(),
        "no kernel core file either"
    );

    // The same crash through ptrace: the same frames in corecatch's report and in gdb.
    let o = corecatch_locked(
        dir.path(),
        &[
            "run",
            "--capture",
            "ptrace",
            "--keep-cores",
            "--out",
            "pt",
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let pgz = artifacts(&dir.path().join("pt"), ".core.gz");
    assert_eq!(pgz.len(), 1, "{}", stderr(&o));
    let ours = report_frames(&v);
    assert!(ours.iter().any(|f| f == "main"), "{ours:?}");
    assert_eq!(ours, report_frames(&report_of(&pgz[0])));
    let handler_core = dir.path().join("handler.core");
    fs::write(&handler_core, &core).unwrap();
    let ptrace_core = dir.path().join("ptrace.core");
    fs::write(&ptrace_core, gunzip(&pgz[0])).unwrap();
    let gdb = gdb_frames(&crash, &handler_core);
    assert!(gdb.iter().any(|f| f == "main"), "{gdb:?}");
    assert_eq!(gdb, gdb_frames(&crash, &ptrace_core));
}

#[test]
fn run_waits_for_a_grandchilds_entry_and_leaves_other_crashes_alone() {
    let Some(_s) = setup() else { return };
    let dir = tempdir();
    let crash = crash_prog();
    // A crash outside the run, just before it: same uid, same second, not the run's.
    let st = Command::new(&crash).arg("segv").status().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(11));
    // The grandchild's pid is unknown to corecatch (sh reaps it): taken by uid and time, kept
    // by the run token in its core.
    let script = format!("{} abort; echo after", crash.display());
    let o = corecatch_locked(
        dir.path(),
        &["run", "--out", "out", "--", "sh", "-c", &script],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "sh's status: {err}");
    let gz = artifacts(&dir.path().join("out"), ".core.gz");
    assert_eq!(gz.len(), 1, "only the run's crash: {err}");
    let v = report_of(&gz[0]);
    assert_eq!(v["signal"]["name"], "SIGABRT", "{v}");
    assert_eq!(v["core"]["from"]["handler"], "systemd-coredump");
}

#[test]
fn collect_reads_systemd_coredumps_store() {
    let Some(_s) = setup() else { return };
    let dir = tempdir();
    let crash = crash_prog();
    // Crashed outside corecatch, as an unwrapped CI step would.
    let child = Command::new(&crash).arg("segv").spawn().unwrap();
    let pid = child.id() as i32;
    let st = child.wait_with_output().unwrap().status;
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(11));
    let entry = wait_for_entry(pid);
    let before = fs::read(&entry).unwrap();
    let o = corecatch_locked(dir.path(), &["collect", "--out", "out"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "read the core of pid {pid} from systemd-coredump's {}",
            entry.display()
        )),
        "{err}"
    );
    // Other cores the store holds are collected too; ours is among them.
    let ours: Vec<PathBuf> = artifacts(&dir.path().join("out"), ".core.gz")
        .into_iter()
        .filter(|gz| report_of(gz)["process"]["pid"] == pid)
        .collect();
    assert_eq!(ours.len(), 1, "{err}");
    let v = report_of(&ours[0]);
    assert_eq!(v["signal"]["name"], "SIGSEGV");
    assert_eq!(v["core"]["from"]["path"], entry.to_str().unwrap());
    let core = gunzip(&ours[0]);
    assert!(is_elf_core(&core));
    // Byte for byte what zstd itself restores.
    let z = Command::new(require("zstd"))
        .arg("-dc")
        .arg(&entry)
        .output()
        .unwrap();
    assert!(
        z.status.success(),
        "zstd -dc {}: {}",
        entry.display(),
        String::from_utf8_lossy(&z.stderr)
    );
    assert!(z.stdout == core, "zstd -dc differs");
    assert!(
        fs::read(&entry).unwrap() == before,
        "the store entry is left as it was"
    );
}

#[test]
fn a_truncated_store_entry_is_named_kept_and_the_status_unchanged() {
    let Some(_s) = setup() else { return };
    let dir = tempdir();
    let crash = crash_prog();
    // The command crashes a child, waits for its store entry, cuts it in half and exits with
    // the child's status: corecatch finds a broken entry of its run.
    let script = format!(
        r#"{crash} abort & p=$!; wait $p; s=$?
for i in $(seq 400); do f=$(ls {STORE}/core.*.$p.* 2>/dev/null) && [ -n "$f" ] && break; sleep 0.05; done
[ -n "$f" ] || exit 99
truncate -s $(( $(stat -c %s "$f") / 2 )) "$f"
echo "$f" > entry
exit $s"#,
        crash = crash.display()
    );
    let o = corecatch_locked(
        dir.path(),
        &["run", "--out", "out", "--", "sh", "-c", &script],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(134), "{err}");
    let entry = PathBuf::from(fs::read_to_string(dir.path().join("entry")).unwrap().trim());
    assert!(
        err.contains(&entry.display().to_string()) && err.contains("truncated"),
        "{err}"
    );
    assert!(
        err.contains("the entry stays in systemd-coredump's store"),
        "{err}"
    );
    let cut = fs::read(&entry).unwrap();
    assert!(!cut.is_empty(), "the raw file is kept");
    assert!(artifacts(&dir.path().join("out"), ".core.gz").is_empty());
    assert!(
        !artifacts(&dir.path().join("out"), "")
            .iter()
            .any(|p| p.to_string_lossy().contains(".corecatch-")),
        "no partial core left behind"
    );

    // collect, naming the file: exit 1, the file named with the reason, left as it is.
    let o = corecatch_locked(
        dir.path(),
        &["collect", "--out", "c", entry.to_str().unwrap()],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("skipped {}", entry.display())) && err.contains("truncated"),
        "{err}"
    );
    assert!(fs::read(&entry).unwrap() == cut);
    assert!(artifacts(&dir.path().join("c"), ".core.gz").is_empty());
}

#[test]
fn doctor_reports_the_handler_canary() {
    let Some(_s) = setup() else { return };
    let dir = tempdir();
    let o = corecatch_locked(dir.path(), &["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("handler a crash's core reaches corecatch"),
        "{out}"
    );
    assert!(
        out.contains("auto:   uses systemd-coredump's store"),
        "{out}"
    );
    drop(_s);

    // Without the socket, systemd-coredump drops every core: doctor says so and auto uses
    // ptrace.
    let Some(_g) = PatternGuard::set(DEBIAN_PATTERN, false) else {
        return;
    };
    if Path::new(SOCKET).exists() {
        skip_or_fail!("the no-socket half: {SOCKET} is systemd's own");
    }
    let o = corecatch_locked(dir.path(), &["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "ptrace still captures: {out}");
    assert!(
        out.contains(&format!("handler no core: {SOCKET} does not exist")),
        "{out}"
    );
    assert!(out.contains("auto:   uses ptrace"), "{out}");
}

/// A journald of our own (systemd-journald runs without systemd as PID 1 when its runtime
/// directory exists), for the `coredumpctl` path. Only started when no journald is running;
/// killed on drop, and what it created in /run removed.
struct Journald {
    child: Option<Daemon>,
    made: Vec<PathBuf>,
}

impl Journald {
    fn start() -> Journald {
        let socket = Path::new("/run/systemd/journal/socket");
        if socket.exists() {
            return Journald {
                child: None,
                made: Vec::new(),
            };
        }
        let made: Vec<PathBuf> = ["/run/systemd/journal", "/run/log"]
            .into_iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        fs::create_dir_all("/run/systemd/journal").unwrap();
        let cmd = Command::new("/lib/systemd/systemd-journald");
        Journald {
            child: Some(Daemon::start(cmd, socket, "systemd-journald")),
            made,
        }
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        drop(self.child.take()); // stopped before its directories go
        for p in &self.made {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// A coredump.conf drop-in in /run, removed on drop.
struct DropIn(PathBuf, bool);

impl DropIn {
    fn write(text: &str) -> DropIn {
        let dir = Path::new("/run/systemd/coredump.conf.d");
        let made = !dir.exists();
        fs::create_dir_all(dir).unwrap();
        let f = dir.join("zz-corecatch-test.conf");
        fs::write(&f, text).unwrap();
        DropIn(f, made)
    }
}

impl Drop for DropIn {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
        if self.1 {
            let _ = fs::remove_dir(self.0.parent().unwrap());
        }
    }
}

#[test]
fn with_storage_journal_run_gets_the_core_from_coredumpctl() {
    let Some(_s) = setup() else { return };
    // systemd-coredump's dependency `systemd` brings it.
    require("/lib/systemd/systemd-journald");
    let _journald = Journald::start();
    let _conf = DropIn::write("[Coredump]\nStorage=journal\n");
    let dir = tempdir();
    let crash = crash_prog();
    let o = corecatch_locked(
        dir.path(),
        &["run", "--out", "out", "--", crash.to_str().unwrap(), "segv"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(139), "{err}");
    assert!(
        err.contains("which keeps them where `coredumpctl dump` reads them"),
        "{err}"
    );
    let gz = artifacts(&dir.path().join("out"), ".core.gz");
    assert_eq!(gz.len(), 1, "{err}");
    let v = report_of(&gz[0]);
    let pid = v["process"]["pid"].as_i64().unwrap();
    assert_eq!(v["core"]["from"]["handler"], "systemd-coredump");
    assert_eq!(
        v["core"]["from"]["path"],
        format!("coredumpctl dump {pid}"),
        "{v}"
    );
    assert_eq!(v["signal"]["name"], "SIGSEGV");
    assert!(report_frames(&v).iter().any(|f| f == "main"), "{v}");
    assert!(is_elf_core(&gunzip(&gz[0])));
}
