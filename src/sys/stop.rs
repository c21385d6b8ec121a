//! A request to stop: SIGTERM, SIGINT or SIGHUP after the wrapped command has ended sets a flag
//! that long work (packing a core) checks between pieces, so corecatch can finish what it may
//! and leave nothing half-written instead of dying mid-write.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals that request a stop.
pub const SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The first stop signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one atomic store.
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// Installs the handler for [`SIGNALS`] and unblocks them in the calling thread (the threads it
/// starts later inherit that mask). Call it once the command has ended: while it runs, these
/// signals are blocked and forwarded to it (`sys::spawn`).
pub fn install() -> io::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    let mut set = SigSet::empty();
    for s in SIGNALS {
        // SAFETY: the handler only stores into an atomic.
        unsafe { sigaction(s, &action) }?;
        set.add(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None)?;
    Ok(())
}

/// Whether a stop signal arrived since [`install`].
pub fn requested() -> bool {
    RECEIVED.load(Ordering::SeqCst) != 0
}

/// The number of the first stop signal received.
pub fn signal() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_sets_the_flag_instead_of_killing() {
        install().unwrap();
        nix::sys::signal::raise(Signal::SIGHUP).unwrap();
        assert!(requested());
        assert_eq!(signal(), Some(libc::SIGHUP));
    }
}
