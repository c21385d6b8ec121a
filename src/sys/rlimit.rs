//! RLIMIT_CORE: read it, and raise it for the command corecatch is about to run (the limit is
//! inherited across fork and exec, so raising our own is how the child gets it).

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use serde::Serialize;

/// Soft and hard RLIMIT_CORE in bytes; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CoreLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

fn from_rlim(v: u64) -> Option<u64> {
    (v != RLIM_INFINITY).then_some(v)
}

impl CoreLimit {
    /// The limits now in force for this process.
    pub fn current() -> Result<CoreLimit, nix::Error> {
        let (soft, hard) = getrlimit(Resource::RLIMIT_CORE)?;
        Ok(CoreLimit {
            soft: from_rlim(soft),
            hard: from_rlim(hard),
        })
    }

    /// Format one limit as `ulimit -c` prints it.
    pub fn show(v: Option<u64>) -> String {
        v.map_or("unlimited".into(), |b| b.to_string())
    }
}

/// What [`raise`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Raised {
    pub before: CoreLimit,
    pub after: CoreLimit,
    /// A plain-words note when the limit could not be raised far enough for a core to appear.
    pub problem: Option<String>,
}

/// Raise RLIMIT_CORE: hard and soft to unlimited where permitted (root, or hard already
/// unlimited), else soft up to hard. Never fails: a limit that cannot be raised is reported in
/// [`Raised::problem`] and the run goes on.
pub fn raise() -> Raised {
    let before = match CoreLimit::current() {
        Ok(l) => l,
        Err(e) => {
            let unknown = CoreLimit {
                soft: Some(0),
                hard: Some(0),
            };
            return Raised {
                before: unknown,
                after: unknown,
                problem: Some(format!("cannot read RLIMIT_CORE: {e}")),
            };
        }
    };
    if setrlimit(Resource::RLIMIT_CORE, RLIM_INFINITY, RLIM_INFINITY).is_err() {
        // Not privileged: the soft limit may still go up to the hard one.
        let hard = before.hard.unwrap_or(RLIM_INFINITY);
        let _ = setrlimit(Resource::RLIMIT_CORE, hard, hard);
    }
    let after = CoreLimit::current().unwrap_or(before);
    let problem = match after.soft {
        Some(0) => Some(
            "the hard RLIMIT_CORE is 0 and cannot be raised (not privileged): the kernel will \
             write no core file; raise it with `ulimit -Hc unlimited` as root or in the container \
             settings"
                .to_string(),
        ),
        Some(n) if n < 64 << 20 => Some(format!(
            "RLIMIT_CORE is only {n} bytes (hard limit): larger cores will be cut short"
        )),
        _ => None,
    };
    Raised {
        before,
        after,
        problem,
    }
}
