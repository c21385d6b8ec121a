//! The syscalls corecatch makes (nix is used here and nowhere else): the core-size rlimit, the
//! kernel's core-dump settings, spawning and supervising the wrapped command, the ptrace tracer,
//! sparse-file seeks, whether a process exists, and the static build's name-service modules.

pub mod kernel;
pub mod lock;
pub mod nss;
pub mod ptrace;
pub mod rlimit;
pub mod sparse;
pub mod spawn;
pub mod stop;

/// The machine's page size (4096 where it cannot be asked).
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

/// Whether a process with this pid exists (kill(pid, 0); EPERM means it exists but is not ours).
pub fn process_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}
