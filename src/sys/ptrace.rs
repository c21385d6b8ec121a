//! The ptrace capture: run the command traced (it and every descendant, via PTRACE_SEIZE with
//! fork/vfork/clone/exec tracing; no syscall tracing), and when a traced process is about to die
//! of a core-dumping signal it does not handle, write its core ourselves before letting the signal
//! proceed. This works whatever core_pattern says and whatever the RLIMIT_CORE hard limit is.
//!
//! The tracer sees every signal and stop of every tracee, so this module also keeps the command's
//! behaviour as if untraced: signals are re-injected (PTRACE_CONT with the signal), group-stops
//! are left in place with PTRACE_LISTEN (so SIGSTOP/SIGCONT work), and when the command ends any
//! descendant still running is detached, not killed.
//!
//! The capture itself: stop every other thread (PTRACE_INTERRUPT, each is traced through
//! PTRACE_O_TRACECLONE), read each thread's registers with PTRACE_GETREGSET (NT_PRSTATUS,
//! NT_PRFPREG), the fatal siginfo with PTRACE_GETSIGINFO, and /proc/PID/{stat,status,cmdline,
//! auxv,smaps,coredump_filter,mem}; choose memory by `core_writer::dump_size` and write through
//! `core_writer::write`. Then the process's soft RLIMIT_CORE is set to 0 (so a file pattern does
//! not leave a second, kernel-written core of the same crash) and the signal is delivered.
//!
//! A process or thread that vanishes mid-capture costs a warning, never the run.

use super::spawn::{self, Ended, Outcome, SpawnError};
use crate::core_writer::{
    self, CoreDesc, FileDesc, ProcessDesc, SegmentDesc, ThreadDesc, VmaFacts,
};
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Signals whose default action dumps core (signal(7)): QUIT ILL TRAP ABRT BUS FPE SEGV XCPU
/// XFSZ SYS.
pub const CORE_SIGNALS: [i32; 10] = [3, 4, 5, 6, 7, 8, 11, 24, 25, 31];
/// Signals whose default action stops the process; their delivery leads to a group-stop.
const STOP_SIGNALS: [i32; 4] = [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];
/// How long to wait for a thread to stop after PTRACE_INTERRUPT before leaving it out.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// A core corecatch wrote itself.
#[derive(Debug, Clone)]
pub struct Captured {
    pub pid: i32,
    pub signal: i32,
    pub path: PathBuf,
    /// Threads left out, memory that could not be read: lowercase fragments.
    pub warnings: Vec<String>,
}

/// What a traced run produced besides the command's outcome.
#[derive(Debug, Clone)]
pub struct TracedRun {
    pub outcome: Outcome,
    pub captured: Vec<Captured>,
    /// False when the command could not be traced (PTRACE_SEIZE failed) and ran untraced.
    pub traced: bool,
    /// Everything worth a line on stderr: the fallback, captures that failed.
    pub notes: Vec<String>,
}

/// Why a core could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {path} of pid {pid}")]
    ReadProc {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the registers of thread {tid}")]
    Registers {
        tid: i32,
        #[source]
        source: Errno,
    },
    #[error("cannot write the core of pid {pid} to {path}")]
    WriteCore {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ptrace capture does not support this CPU architecture")]
    Architecture,
}

/// One ptrace request with integer arguments (the raw call, because nix takes `Option<Signal>`,
/// which cannot express real-time signals, and has no PTRACE_LISTEN).
fn ptrace_raw(
    req: libc::c_uint,
    pid: i32,
    addr: usize,
    data: usize,
) -> Result<libc::c_long, Errno> {
    // SAFETY: every caller passes a request whose addr/data are integers or point to storage
    // it owns for the duration of the call (see each caller).
    let r = unsafe {
        libc::ptrace(
            req,
            pid as libc::pid_t,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    Errno::result(r)
}

fn cont(pid: i32, sig: i32) {
    let _ = ptrace_raw(libc::PTRACE_CONT, pid, 0, sig as usize);
}

fn listen(pid: i32) {
    let _ = ptrace_raw(libc::PTRACE_LISTEN, pid, 0, 0);
}

/// How a waited-for task changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Exited(i32),
    Signaled(i32, bool),
    /// Signal-delivery-stop with this signal.
    SignalStop(i32),
    /// PTRACE_EVENT_* stop: (signal, event).
    Event(i32, i32),
}

/// waitpid(2) with __WALL (threads too), decoding the status ourselves: nix's decoder rejects
/// real-time signal numbers, and a stop we failed to decode would leave the tracee stopped.
fn wait_task(pid: i32, nohang: bool) -> Result<Option<(i32, Wait)>, Errno> {
    let mut status: libc::c_int = 0;
    let flags = libc::__WALL | if nohang { libc::WNOHANG } else { 0 };
    // SAFETY: `status` is a valid out pointer for the duration of the call.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    let p = Errno::result(r)?;
    if p == 0 {
        return Ok(None);
    }
    let w = if libc::WIFEXITED(status) {
        Wait::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Wait::Signaled(libc::WTERMSIG(status), libc::WCOREDUMP(status))
    } else if libc::WIFSTOPPED(status) {
        let event = (status >> 16) & 0xffff;
        if event != 0 {
            Wait::Event(libc::WSTOPSIG(status), event)
        } else {
            Wait::SignalStop(libc::WSTOPSIG(status))
        }
    } else {
        return Ok(None); // WIFCONTINUED: nothing to do
    };
    Ok(Some((p, w)))
}

/// Spawn `argv` traced, forward signals, capture the cores of crashing descendants into
/// `core_dir`, and wait for the command to end.
pub fn run(
    argv: &[OsString],
    extra_env: &[(String, String)],
    core_dir: &Path,
) -> Result<TracedRun, SpawnError> {
    let (program, args) = argv.split_first().ok_or(SpawnError::Empty)?;
    let name = program.to_string_lossy().into_owned();
    let start_err = |source: io::Error| SpawnError::Start {
        program: name.clone(),
        source,
    };
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let mut waited = spawn::forwarded_set();
    waited.add(Signal::SIGCHLD);
    let mut old_mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&waited), Some(&mut old_mask))
        .map_err(|e| start_err(e.into()))?;
    let restore = |r| {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
        r
    };

    // The child tells us its pid and waits until we have seized it: std's spawn() returns only
    // after exec, so it runs on a helper thread while this thread (the tracer: ptrace requests
    // must come from the thread that attached) seizes the child.
    let (pid_r, pid_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return restore(Err(start_err(e.into()))),
    };
    let (go_r, go_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return restore(Err(start_err(e.into()))),
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child_mask = old_mask;
    let (pid_w_raw, go_r_raw, go_w_raw) = {
        use std::os::fd::AsRawFd;
        (pid_w.as_raw_fd(), go_r.as_raw_fd(), go_w.as_raw_fd())
    };
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (pthread_sigmask, close, getpid, write, read) on fds that stay open until exec (the
    // Command owns `pid_w` and `go_r` through the closure).
    unsafe {
        let keep = (pid_w, go_r);
        cmd.pre_exec(move || {
            let _ = &keep;
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&child_mask), None)?;
            // Our copy of the write end would keep the read below from ever seeing EOF.
            libc::close(go_w_raw);
            let me = libc::getpid().to_ne_bytes();
            libc::write(pid_w_raw, me.as_ptr().cast(), me.len());
            let mut b = [0u8; 1];
            // EOF (the tracer gave up) also lets the command run, untraced.
            libc::read(go_r_raw, b.as_mut_ptr().cast(), 1);
            Ok(())
        });
    }
    let spawner = std::thread::spawn(move || cmd.spawn());
    let mut buf = [0u8; 4];
    let got = read_full(&pid_r, &mut buf);
    let mut notes = Vec::new();
    let mut traced = false;
    let child_pid = i32::from_ne_bytes(buf);
    if got == buf.len() {
        let opts = nix::sys::ptrace::Options::PTRACE_O_TRACEFORK
            | nix::sys::ptrace::Options::PTRACE_O_TRACEVFORK
            | nix::sys::ptrace::Options::PTRACE_O_TRACECLONE
            | nix::sys::ptrace::Options::PTRACE_O_TRACEEXEC
            | nix::sys::ptrace::Options::PTRACE_O_EXITKILL;
        match nix::sys::ptrace::seize(Pid::from_raw(child_pid), opts) {
            Ok(()) => traced = true,
            Err(e) => notes.push(format!(
                "cannot trace {name} (PTRACE_SEIZE of pid {child_pid}: {e}; is corecatch itself \
                 traced, or ptrace forbidden here?): ptrace capture is off for this run, cores \
                 the kernel writes are still collected"
            )),
        }
    }
    let _ = nix::unistd::write(&go_w, &[1]);
    drop(go_w);
    let child = match spawner.join() {
        Ok(Ok(c)) => c,
        Ok(Err(source)) => return restore(Err(spawn::classify_spawn_error(name, source))),
        Err(_) => return restore(Err(start_err(io::Error::other("spawn thread panicked")))),
    };
    let pid = child.id() as i32;
    let result = if traced {
        let mut t = Tracer {
            root: pid,
            core_dir: core_dir.to_path_buf(),
            live: HashSet::from([pid]),
            threads: HashSet::new(),
            root_ended: None,
            reaped: Vec::new(),
            captured: Vec::new(),
            notes,
        };
        t.supervise(&waited, &name).map(|outcome| TracedRun {
            outcome,
            captured: t.captured,
            traced: true,
            notes: t.notes,
        })
    } else {
        spawn::supervise(pid, &waited, &name).map(|outcome| TracedRun {
            outcome,
            captured: Vec::new(),
            traced: false,
            notes,
        })
    };
    restore(result)
}

fn read_full(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match nix::unistd::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    n
}

/// What to do with a thread stopped for a capture once the core is written.
#[derive(Debug, Clone, Copy)]
enum Resume {
    Cont(i32),
    Listen,
}

struct Tracer {
    root: i32,
    core_dir: PathBuf,
    /// Tasks we trace that have not exited.
    live: HashSet<i32>,
    /// Tasks created by PTRACE_EVENT_CLONE (threads): their exits are not process exits.
    threads: HashSet<i32>,
    /// How the command ended, once it has (possibly seen while stopping threads for a capture).
    root_ended: Option<Ended>,
    reaped: Vec<(i32, Ended)>,
    captured: Vec<Captured>,
    notes: Vec<String>,
}

impl Tracer {
    fn supervise(&mut self, waited: &SigSet, name: &str) -> Result<Outcome, SpawnError> {
        loop {
            if let Some(ended) = self.drain().map_err(|source| SpawnError::Wait {
                program: name.to_string(),
                pid: self.root,
                source,
            })? {
                self.detach_all();
                return Ok(Outcome {
                    pid: self.root,
                    ended,
                    reaped: std::mem::take(&mut self.reaped),
                });
            }
            if let Some(signal) = spawn::next_forward(waited) {
                // The tracee's signal-delivery-stop for it comes back through drain().
                let _ = kill(Pid::from_raw(self.root), signal);
            }
        }
    }

    /// Handle every pending state change; `Some` once the command itself has ended.
    fn drain(&mut self) -> Result<Option<Ended>, Errno> {
        loop {
            match wait_task(-1, true) {
                Ok(None) => return Ok(self.root_ended),
                Ok(Some((p, w))) => {
                    if let Some(e) = self.handle(p, w) {
                        self.record(p, e);
                    }
                }
                Err(Errno::ECHILD) => return Ok(self.root_ended),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Act on one state change; returns how a process (not a thread) ended.
    fn handle(&mut self, p: i32, w: Wait) -> Option<Ended> {
        match w {
            Wait::Exited(code) => self.ended(p, Ended::Exited(code)),
            Wait::Signaled(signal, core_dumped) => self.ended(
                p,
                Ended::Signaled {
                    signal,
                    core_dumped,
                },
            ),
            Wait::SignalStop(sig) => {
                self.live.insert(p);
                if CORE_SIGNALS.contains(&sig) && !handles_signal(p, sig) {
                    self.capture(p, sig);
                }
                cont(p, sig);
                None
            }
            Wait::Event(sig, event) => {
                self.live.insert(p);
                self.event(p, sig, event);
                None
            }
        }
    }

    fn record(&mut self, p: i32, e: Ended) {
        if p == self.root {
            self.root_ended = Some(e);
        } else {
            self.reaped.push((p, e));
        }
    }

    fn ended(&mut self, p: i32, e: Ended) -> Option<Ended> {
        self.live.remove(&p);
        if self.threads.remove(&p) {
            return None;
        }
        Some(e)
    }

    fn event(&mut self, p: i32, sig: i32, event: i32) {
        match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                let mut msg: libc::c_ulong = 0;
                // PTRACE_GETEVENTMSG writes one unsigned long to `data`, which is `msg`.
                if ptrace_raw(
                    libc::PTRACE_GETEVENTMSG,
                    p,
                    0,
                    &mut msg as *mut libc::c_ulong as usize,
                )
                .is_ok()
                {
                    let child = msg as i32;
                    self.live.insert(child);
                    if event == libc::PTRACE_EVENT_CLONE {
                        self.threads.insert(child);
                    }
                }
                cont(p, 0);
            }
            libc::PTRACE_EVENT_STOP if STOP_SIGNALS.contains(&sig) => {
                // Group-stop: stay stopped as an untraced process would, until SIGCONT.
                listen(p);
            }
            // PTRACE_EVENT_STOP of a new task or of PTRACE_INTERRUPT, PTRACE_EVENT_EXEC.
            _ => cont(p, 0),
        }
    }

    /// Stop `tid` with PTRACE_INTERRUPT and wait for it; how to resume it afterwards, or `None`
    /// when it is gone or would not stop.
    fn stop_task(&mut self, tid: i32) -> Option<Resume> {
        if ptrace_raw(libc::PTRACE_INTERRUPT, tid, 0, 0).is_err() {
            return None;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match wait_task(tid, true) {
                Ok(Some((_, Wait::SignalStop(s)))) => return Some(Resume::Cont(s)),
                Ok(Some((_, Wait::Event(s, libc::PTRACE_EVENT_STOP)))) => {
                    return Some(if STOP_SIGNALS.contains(&s) {
                        Resume::Listen
                    } else {
                        Resume::Cont(0)
                    })
                }
                Ok(Some((p, Wait::Event(s, e)))) => {
                    // A fork/clone/exec event: note the new task, then it stays stopped here.
                    if matches!(
                        e,
                        libc::PTRACE_EVENT_FORK
                            | libc::PTRACE_EVENT_VFORK
                            | libc::PTRACE_EVENT_CLONE
                    ) {
                        let mut msg: libc::c_ulong = 0;
                        if ptrace_raw(
                            libc::PTRACE_GETEVENTMSG,
                            p,
                            0,
                            &mut msg as *mut libc::c_ulong as usize,
                        )
                        .is_ok()
                        {
                            self.live.insert(msg as i32);
                            if e == libc::PTRACE_EVENT_CLONE {
                                self.threads.insert(msg as i32);
                            }
                        }
                    }
                    let _ = s;
                    return Some(Resume::Cont(0));
                }
                Ok(Some((p, w @ (Wait::Exited(_) | Wait::Signaled(..))))) => {
                    if let Some(e) = self.handle(p, w) {
                        self.record(p, e);
                    }
                    return None;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    fn resume(tid: i32, r: Resume) {
        match r {
            Resume::Cont(s) => cont(tid, s),
            Resume::Listen => listen(tid),
        }
    }

    /// Write the core of the process whose thread `tid` is in a signal-delivery-stop for the
    /// core-dumping `sig`; leave every thread as it was (the caller delivers the signal).
    fn capture(&mut self, tid: i32, sig: i32) {
        let tgid = proc_status(tid)
            .ok()
            .and_then(|s| status_field(&s, "Tgid").and_then(|v| v.parse().ok()))
            .unwrap_or(tid);
        let mut others = Vec::new();
        if let Ok(rd) = fs::read_dir(format!("/proc/{tgid}/task")) {
            for e in rd.flatten() {
                let Some(t) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if t == tid {
                    continue;
                }
                match self.stop_task(t) {
                    Some(r) => others.push((t, r)),
                    None => self.notes.push(format!(
                        "thread {t} of pid {tgid} did not stop; it is not in the core"
                    )),
                }
            }
        }
        let mut tids = vec![tid];
        tids.extend(others.iter().map(|&(t, _)| t));
        match write_core(tgid, tid, sig, &tids, &self.core_dir) {
            Ok(c) => self.captured.push(c),
            Err(e) => self.notes.push(format!(
                "no core of pid {tgid} (signal {sig}): {}",
                crate::app::chain(&e)
            )),
        }
        for (t, r) in others {
            Self::resume(t, r);
        }
        // Ours is the core of this crash: keep the kernel from writing a second one to a file.
        // (A pipe handler still gets its copy; the exit status is the same either way.)
        disable_kernel_core(tgid);
    }

    /// Detach from every task still traced when the command has ended, so descendants that
    /// outlive it keep running (PTRACE_O_EXITKILL would otherwise kill them when we exit).
    fn detach_all(&mut self) {
        while let Some(&t) = self.live.iter().next() {
            self.live.remove(&t);
            if let Some(r) = self.stop_task(t) {
                let sig = match r {
                    Resume::Cont(s) => s,
                    Resume::Listen => 0,
                };
                let _ = ptrace_raw(libc::PTRACE_DETACH, t, 0, sig as usize);
            }
        }
    }
}

fn proc_status(pid: i32) -> io::Result<String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

fn status_mask(status: &str, key: &str) -> u64 {
    status_field(status, key)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0)
}

/// Whether the process has a handler for `sig` (SigCgt). A signal it handles is only injected:
/// the program goes on. Ignored core signals never reach a delivery-stop (a fault that cannot be
/// delivered is forced back to the default action, which clears SigIgn/SigCgt).
fn handles_signal(tid: i32, sig: i32) -> bool {
    let Ok(s) = proc_status(tid) else {
        return false;
    };
    let bit = 1u64 << (sig - 1);
    (status_mask(&s, "SigCgt") | status_mask(&s, "SigIgn")) & bit != 0
}

/// Set the soft RLIMIT_CORE of `pid` to 0, keeping its hard limit.
fn disable_kernel_core(pid: i32) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new-limit pointer only reads; `old` is valid storage for the result.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_CORE, std::ptr::null(), &mut old) } != 0 {
        return;
    }
    let new = libc::rlimit {
        rlim_cur: 0,
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit; no old value is requested.
    unsafe { libc::prlimit(pid, libc::RLIMIT_CORE, &new, std::ptr::null_mut()) };
}

#[cfg(target_arch = "x86_64")]
const E_MACHINE: Option<u16> = Some(62);
#[cfg(target_arch = "aarch64")]
const E_MACHINE: Option<u16> = Some(183);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const E_MACHINE: Option<u16> = None;

/// Register sets beyond NT_PRSTATUS/NT_PRFPREG that the kernel puts in its cores and gdb reads.
#[cfg(target_arch = "x86_64")]
const EXTRA_REGSETS: &[u32] = &[core_writer::NT_X86_XSTATE];
#[cfg(not(target_arch = "x86_64"))]
const EXTRA_REGSETS: &[u32] = &[];

/// PTRACE_GETREGSET of one register set; `None` when the kernel has none for this thread.
fn getregset(tid: i32, nt: u32) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // GETREGSET fills `buf` through `iov` (both live across the call) and shrinks iov_len to
    // the size of the set.
    ptrace_raw(
        libc::PTRACE_GETREGSET,
        tid,
        nt as usize,
        &mut iov as *mut libc::iovec as usize,
    )?;
    let n = iov.iov_len.min(buf.len());
    buf.truncate(n);
    Ok(buf)
}

fn getsiginfo(tid: i32) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; core_writer::SIGINFO_SIZE];
    // GETSIGINFO copies one siginfo_t (128 bytes) into `data`, which is `buf`.
    ptrace_raw(libc::PTRACE_GETSIGINFO, tid, 0, buf.as_mut_ptr() as usize)?;
    Ok(buf)
}

fn read_proc(pid: i32, what: &str) -> Result<Vec<u8>, CaptureError> {
    let path = PathBuf::from(format!("/proc/{pid}/{what}"));
    fs::read(&path).map_err(|source| CaptureError::ReadProc { pid, path, source })
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(stat: &str) -> (String, Vec<&str>) {
    let open = stat.find('(').unwrap_or(0);
    let close = stat.rfind(')').unwrap_or(stat.len());
    let comm = stat.get(open + 1..close).unwrap_or("").to_string();
    let rest = stat.get(close + 1..).unwrap_or("");
    (comm, rest.split_whitespace().collect())
}

fn write_core(
    tgid: i32,
    crashed: i32,
    sig: i32,
    tids: &[i32],
    dir: &Path,
) -> Result<Captured, CaptureError> {
    let machine = E_MACHINE.ok_or(CaptureError::Architecture)?;
    let mut warnings = Vec::new();
    let stat_raw = String::from_utf8_lossy(&read_proc(tgid, "stat")?).into_owned();
    let (comm, f) = stat_fields(&stat_raw);
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let status = String::from_utf8_lossy(&read_proc(tgid, "status")?).into_owned();
    let first_id =
        |k| status_field(&status, k).and_then(|v| v.split_whitespace().next()?.parse().ok());
    let mut cmdline = read_proc(tgid, "cmdline").unwrap_or_default();
    if cmdline.last() == Some(&0) {
        cmdline.pop();
    }
    for b in &mut cmdline {
        if *b == 0 {
            *b = b' ';
        }
    }
    let (ppid, pgrp, sid) = (num(1) as i32, num(2) as i32, num(3) as i32);
    let process = ProcessDesc {
        pid: tgid,
        ppid,
        pgrp,
        sid,
        uid: first_id("Uid").unwrap_or(0),
        gid: first_id("Gid").unwrap_or(0),
        state: f.first().and_then(|s| s.bytes().next()).unwrap_or(b'R'),
        nice: num(16) as i8,
        flags: num(6) as u64,
        fname: comm,
        psargs: String::from_utf8_lossy(&cmdline).into_owned(),
    };

    let mut threads = Vec::new();
    for &t in tids {
        let regs = match getregset(t, libc::NT_PRSTATUS as u32) {
            Ok(r) => r,
            Err(source) if t == crashed => return Err(CaptureError::Registers { tid: t, source }),
            Err(e) => {
                warnings.push(format!(
                    "thread {t} left out: cannot read its registers: {e}"
                ));
                continue;
            }
        };
        let tstatus =
            fs::read_to_string(format!("/proc/{tgid}/task/{t}/status")).unwrap_or_default();
        threads.push(ThreadDesc {
            tid: t,
            ppid,
            pgrp,
            sid,
            cursig: if t == crashed { sig as u16 } else { 0 },
            sigpend: status_mask(&tstatus, "SigPnd"),
            sighold: status_mask(&tstatus, "SigBlk"),
            regs,
            fpregs: getregset(t, libc::NT_PRFPREG as u32).ok(),
            extra: EXTRA_REGSETS
                .iter()
                .filter_map(|&nt| getregset(t, nt).ok().map(|b| (nt, b)))
                .collect(),
        });
    }
    let siginfo = getsiginfo(crashed).map_err(|source| CaptureError::Registers {
        tid: crashed,
        source,
    })?;
    let auxv = read_proc(tgid, "auxv")?;
    let smaps = String::from_utf8_lossy(&read_proc(tgid, "smaps")?).into_owned();
    let filter = read_proc(tgid, "coredump_filter")
        .ok()
        .and_then(|b| u64::from_str_radix(String::from_utf8_lossy(&b).trim(), 16).ok())
        .unwrap_or(core_writer::filter::DEFAULT);
    let page = super::page_size() as u64;
    let mem_path = PathBuf::from(format!("/proc/{tgid}/mem"));
    let mem = fs::File::open(&mem_path).map_err(|source| CaptureError::ReadProc {
        pid: tgid,
        path: mem_path,
        source,
    })?;
    let read_mem = |addr: u64, buf: &mut [u8]| -> usize {
        let mut n = 0;
        while n < buf.len() {
            match mem.read_at(&mut buf[n..], addr + n as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        n
    };
    let vmas = parse_smaps(&smaps);
    // [vsyscall] is dumped whole but is execute-only on current kernels: its page reads as
    // zeros in the kernel's core too, so it is not worth a warning.
    let expected_unreadable: u64 = vmas
        .iter()
        .filter(|v| v.path == "[vsyscall]")
        .map(|v| v.facts.end - v.facts.start)
        .sum();
    let mut segments = Vec::with_capacity(vmas.len());
    let mut files = Vec::new();
    for v in &vmas {
        let mut facts = v.facts.clone();
        if facts.file_backed && facts.maps_file_start && facts.readable {
            let mut magic = [0u8; 4];
            let executable = fs::metadata(&v.path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                .unwrap_or(false);
            facts.elf_or_executable =
                executable || (read_mem(facts.start, &mut magic) == 4 && &magic == b"\x7fELF");
        }
        segments.push(SegmentDesc {
            vaddr: facts.start,
            memsz: facts.end - facts.start,
            dump_size: core_writer::dump_size(&facts, filter, page),
            flags: v.flags,
        });
        if facts.file_backed {
            files.push(FileDesc {
                start: facts.start,
                end: facts.end,
                offset: v.offset,
                path: v.path.clone(),
            });
        }
    }
    let desc = CoreDesc {
        machine,
        page_size: page,
        threads,
        process,
        siginfo,
        auxv,
        files,
        segments,
    };
    let write_err = |path: &Path, source| CaptureError::WriteCore {
        pid: tgid,
        path: path.to_path_buf(),
        source,
    };
    // The artifacts directory, else the temporary directory (the core is moved into the
    // artifacts or reported where it is, as a kernel core would be).
    let tmp = std::env::temp_dir();
    let dir = match fs::create_dir_all(dir) {
        Ok(()) => dir,
        Err(_) => {
            fs::create_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
            tmp.as_path()
        }
    };
    let mut path = dir.join(format!("core.{tgid}.ptrace"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("core.{tgid}.ptrace.{n}"));
        n += 1;
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| write_err(&path, e))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    let mut reader = read_mem;
    let stats = core_writer::write(&desc, &mut reader, &mut out)
        .and_then(|s| io::Write::flush(&mut out).map(|_| s))
        .map_err(|e| write_err(&path, e))?;
    if stats.unreadable > expected_unreadable {
        warnings.push(format!(
            "{} bytes of memory could not be read and are zeros in the core",
            stats.unreadable
        ));
    }
    Ok(Captured {
        pid: tgid,
        signal: sig,
        path,
        warnings,
    })
}

struct Vma {
    facts: VmaFacts,
    flags: u32,
    offset: u64,
    path: String,
}

/// /proc/PID/smaps: a maps-style header line per region, then `Key: value` lines.
fn parse_smaps(text: &str) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(first) = it.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = it.next().unwrap_or("----").as_bytes().to_vec();
                let offset = it
                    .next()
                    .and_then(|o| u64::from_str_radix(o, 16).ok())
                    .unwrap_or(0);
                let _dev = it.next();
                let inode: u64 = it.next().and_then(|i| i.parse().ok()).unwrap_or(0);
                // The path is the rest of the line after the inode, spaces included.
                let path = line
                    .splitn(6, char::is_whitespace)
                    .nth(5)
                    .unwrap_or("")
                    .trim_start()
                    .to_string();
                let p = |i: usize, c: u8| perms.get(i) == Some(&c);
                let file_backed = inode != 0 && path.starts_with('/');
                out.push(Vma {
                    facts: VmaFacts {
                        start,
                        end,
                        readable: p(0, b'r'),
                        shared: p(3, b's'),
                        file_backed,
                        file_unlinked: path.ends_with(" (deleted)"),
                        maps_file_start: offset == 0,
                        always: path == "[vdso]" || path == "[vsyscall]",
                        ..VmaFacts::default()
                    },
                    flags: u32::from(p(0, b'r')) * 4
                        + u32::from(p(1, b'w')) * 2
                        + u32::from(p(2, b'x')),
                    offset,
                    path,
                });
                continue;
            }
        }
        let Some(v) = out.last_mut() else { continue };
        match first {
            "Anonymous:" => v.facts.anon_pages = it.next().is_some_and(|n| n != "0"),
            "VmFlags:" => {
                for flag in it {
                    match flag {
                        "dd" => v.facts.dont_dump = true,
                        "io" => v.facts.io = true,
                        "ht" => v.facts.hugetlb = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_regions_and_flags() {
        let text = "\
00400000-00401000 r--p 00000000 08:01 1234                               /usr/bin/a prog
Size:                  4 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
Anonymous:            12 kB
VmFlags: rd wr mr mw me ac sd
7f1000000000-7f1000001000 rw-s 00000000 00:01 99                         /dev/zero (deleted)
Anonymous:             0 kB
VmFlags: rd wr sh mr mw me ms sd dd
";
        let v = parse_smaps(text);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].path, "/usr/bin/a prog");
        assert!(v[0].facts.file_backed && v[0].facts.maps_file_start && !v[0].facts.anon_pages);
        assert_eq!(v[0].flags, 4);
        assert!(!v[1].facts.file_backed && v[1].facts.anon_pages);
        assert_eq!(v[1].flags, 6);
        assert!(v[2].facts.shared && v[2].facts.file_unlinked && v[2].facts.dont_dump);
    }

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let (comm, f) = stat_fields("42 (a (b) c) t 1 42 42 0 -1 4194560 0");
        assert_eq!(comm, "a (b) c");
        assert_eq!(f[0], "t");
        assert_eq!(f[1], "1");
    }
}
