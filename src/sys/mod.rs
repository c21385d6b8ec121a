//! Every syscall and /proc read corecatch makes (through nix and procfs live here and nowhere
//! else): the core-size rlimit, the kernel's core-dump settings, and spawning and supervising the
//! wrapped command, and the ptrace capture.

pub mod kernel;
pub mod ptrace;
pub mod rlimit;
pub mod sparse;
pub mod spawn;
