//! The crash signature: a stable hash of the crashing thread's innermost symbolized frames, so
//! the same bug has the same signature across runs, machines and rebuilds.
//!
//! Only function names enter the hash (never addresses, offsets or line numbers, which change
//! with every rebuild), with the signal name. Frames that are the machinery of crashing rather
//! than the bug are skipped: the C library and loader (`abort`, `raise`, `pthread_kill`), C++
//! termination (`std::terminate`, `__cxa_throw`, `__gnu_cxx::`), and Rust's panic and abort
//! runtime (`core::panicking`, `std::panicking`, `std::process::abort`, `__rustc::`). When no
//! frame is left (a crash inside libc itself), the innermost named frames are used as they are.

use super::Report;
use sha2::{Digest, Sha256};

/// How many frames make the signature: enough to tell bugs apart, few enough that a change in
/// an outer caller does not split one bug into many.
pub const FRAMES: usize = 5;

/// Version prefix hashed in, so a future change of the rule changes every signature at once.
const VERSION: &str = "corecatch-signature-v1";

fn is_machinery(function: &str, module: Option<&str>) -> bool {
    let system_lib = module.is_some_and(|m| {
        let base = m.rsplit('/').next().unwrap_or(m);
        base.starts_with("libc.so")
            || base.starts_with("ld-linux")
            || base.starts_with("libstdc++.so")
            || base.starts_with("libgcc_s.so")
    });
    const PREFIXES: &[&str] = &[
        "std::terminate",
        "__cxa_",
        "__gnu_cxx::",
        "core::panicking::",
        "core::result::unwrap_failed",
        "core::option::expect_failed",
        "std::panicking::",
        "std::process::abort",
        "std::sys::",
        "std::rt::",
        "__rustc::",
        "rust_begin_unwind",
        "panic_abort::",
        "__assert_fail",
        "abort",
        "raise",
    ];
    system_lib || PREFIXES.iter().any(|p| function.starts_with(p))
}

/// The signature of `r`'s crash: 16 hex digits, or `None` when the crashed thread has no named
/// frame.
pub fn signature(r: &Report) -> Option<String> {
    let t = r.threads.iter().find(|t| t.crashed)?;
    let named: Vec<(&str, Option<&str>)> = t
        .frames
        .iter()
        .filter_map(|f| Some((f.function.as_deref()?, f.module.as_deref())))
        .filter(|(name, _)| *name != "<signal handler called>")
        .collect();
    let own: Vec<&str> = named
        .iter()
        .filter(|(n, m)| !is_machinery(n, *m))
        .map(|(n, _)| *n)
        .take(FRAMES)
        .collect();
    let names: Vec<&str> = if own.is_empty() {
        named.iter().map(|(n, _)| *n).take(FRAMES).collect()
    } else {
        own
    };
    if names.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(VERSION);
    h.update("\n");
    h.update(r.signal.as_ref().and_then(|s| s.name).unwrap_or("?"));
    for n in names {
        h.update("\n");
        h.update(n);
    }
    Some(
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
