//! Every syscall and /proc read corecatch makes (through nix and procfs live here and nowhere
//! else): the core-size rlimit, the kernel's core-dump settings, and spawning and supervising the
//! wrapped command.

pub mod kernel;
pub mod rlimit;
pub mod sparse;
pub mod spawn;
