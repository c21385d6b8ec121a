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
//! PTRACE_O_TRACECLONE) and hand the stopped process to the caller's snapshot callback
//! (`source::ptrace::write_core`, which reads registers through [`getregset`] and
//! [`getsiginfo`] and the process's /proc files). Then the process's soft RLIMIT_CORE is set to
//! 0 (so a file pattern does not leave a second, kernel-written core of the same crash) and the
//! signal is delivered.
//!
//! A process or thread that vanishes mid-capture costs a warning, never the run.

use super::spawn::{self, Ended, Outcome, SpawnError};
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
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
    pub path: PathBuf,
    /// Threads left out, memory that could not be read: lowercase fragments.
    pub warnings: Vec<String>,
}

/// A traced process stopped at the delivery of a core-dumping signal, every other thread of it
/// stopped too: what the snapshot callback of [`run`] gets.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The process (thread group) id.
    pub tgid: i32,
    /// The thread the signal is delivered to.
    pub crashed: i32,
    pub signal: i32,
    /// Every stopped thread, the crashed one first.
    pub tids: Vec<i32>,
}

/// Writes the core of a [`Stopped`] process, or says why it could not.
pub type Snapshot<'a> = dyn FnMut(&Stopped) -> Result<Captured, String> + 'a;

/// What a traced run produced besides the command's outcome.
#[derive(Debug, Clone)]
pub struct TracedRun {
    pub outcome: Outcome,
    pub captured: Vec<Captured>,
    /// Everything worth a line on stderr: the fallback, captures that failed.
    pub notes: Vec<String>,
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

/// Spawn `argv` traced, forward signals, hand each crashing descendant to `snapshot` before its
/// signal is delivered, and wait for the command to end.
pub fn run(
    argv: &[OsString],
    extra_env: &[(String, String)],
    snapshot: &mut Snapshot<'_>,
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
            snapshot,
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
            notes: t.notes,
        })
    } else {
        spawn::supervise(pid, &waited, &name).map(|outcome| TracedRun {
            outcome,
            captured: Vec::new(),
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

struct Tracer<'a> {
    root: i32,
    snapshot: &'a mut Snapshot<'a>,
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

impl Tracer<'_> {
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
        let stopped = Stopped {
            tgid,
            crashed: tid,
            signal: sig,
            tids,
        };
        match (self.snapshot)(&stopped) {
            Ok(c) => self.captured.push(c),
            Err(why) => self
                .notes
                .push(format!("no core of pid {tgid} (signal {sig}): {why}")),
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

pub(crate) fn proc_status(pid: i32) -> io::Result<String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
}

pub(crate) fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

pub(crate) fn status_mask(status: &str, key: &str) -> u64 {
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

/// PTRACE_GETREGSET of one register set; an error when the kernel has none for this thread.
pub fn getregset(tid: i32, nt: u32) -> io::Result<Vec<u8>> {
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

/// PTRACE_GETSIGINFO: the thread's pending siginfo_t (128 bytes on every Linux architecture).
pub fn getsiginfo(tid: i32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 128];
    // GETSIGINFO copies one siginfo_t (128 bytes) into `data`, which is `buf`.
    ptrace_raw(libc::PTRACE_GETSIGINFO, tid, 0, buf.as_mut_ptr() as usize)?;
    Ok(buf)
}
