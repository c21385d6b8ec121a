//! `corecatch doctor`: crash canaries under each capture method and say which cores reach
//! corecatch, what `auto` would choose, and what to change where none would.

use crate::config::Capture;
use crate::core_pattern::CorePattern;
use crate::exit_code;
use crate::source::capture::{self, Method};
use crate::sys;

/// One canary crash under `corecatch run --capture METHOD`: whether its core came back.
fn canary(method: &str) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find corecatch itself: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("corecatch-doctor-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let out = dir.path().join("out");
    let o = std::process::Command::new(&exe)
        .args(["run", "--quiet", "--capture", method, "--out"])
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .arg("__canary")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the canary: {e}"))?;
    if o.status.code() != Some(128 + 6) {
        return Err(format!(
            "the canary should die of SIGABRT (134) but corecatch exited with {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let got = std::fs::read_dir(&out)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".core.gz"))
        })
        .unwrap_or(false);
    if !got {
        let err = String::from_utf8_lossy(&o.stderr);
        if method == "handler" {
            if let Some(line) = err.lines().find(|l| l.contains("systemd-coredump")) {
                return Err(line.trim_start_matches("corecatch: ").to_string());
            }
        }
        if method == "ptrace" && err.contains("cannot trace") {
            return Err(
                "ptrace is not permitted here (in a container: --cap-add=SYS_PTRACE or \
                        a seccomp profile that allows ptrace; kernel.yama.ptrace_scope <= 1)"
                    .into(),
            );
        }
    }
    Ok(got)
}

/// `corecatch doctor`: crash canaries under the current settings and say what happens.
pub(super) fn doctor() -> i32 {
    let raised = sys::rlimit::raise();
    let settings = sys::kernel::read_settings().ok();
    let facts = super::capture_facts(Capture::Auto, settings.as_ref(), &raised);
    let pattern = facts.pattern.as_ref();
    println!(
        "core_pattern:  {}",
        settings
            .as_ref()
            .map_or("(unreadable)".into(), |s| s.core_pattern.clone())
    );
    if let Some(p) = pattern {
        println!("meaning:       {}", p.describe());
    }
    println!(
        "RLIMIT_CORE:   soft {}, hard {} (corecatch raises it to soft {}, hard {})",
        sys::rlimit::CoreLimit::show(raised.before.soft),
        sys::rlimit::CoreLimit::show(raised.before.hard),
        sys::rlimit::CoreLimit::show(raised.after.soft),
        sys::rlimit::CoreLimit::show(raised.after.hard),
    );
    let auto = capture::choose(Capture::Auto, &facts);
    let mut lines = Vec::new();
    let mut ok = |method: &str, result: Result<bool, String>| match result {
        Ok(true) => {
            lines.push(format!("{method:7} a crash's core reaches corecatch"));
            true
        }
        Ok(false) => {
            lines.push(format!("{method:7} no core reached corecatch"));
            false
        }
        Err(why) => {
            lines.push(format!("{method:7} no core: {why}"));
            false
        }
    };
    let kernel = ok("kernel", canary("kernel"));
    // Under a systemd-coredump pipe, a canary goes through its store as `run` would take it.
    let handler = match facts.store.clone() {
        None => false,
        Some(reach) => ok("handler", reach.and_then(|_| canary("handler"))),
    };
    let ptrace = ok("ptrace", canary("ptrace"));
    for l in &lines {
        println!("{l}");
    }
    let auto_ok = match &auto.method {
        Method::Kernel => kernel,
        Method::Handler(_) => handler,
        Method::Ptrace => ptrace,
    };
    let why = auto.why.as_deref().unwrap_or("");
    match &auto.method {
        Method::Kernel => println!("auto:   uses kernel cores"),
        Method::Handler(_) => println!("auto:   uses systemd-coredump's store ({why})"),
        Method::Ptrace => println!("auto:   uses ptrace ({why})"),
    }
    if !kernel {
        println!("to get kernel cores:");
        for fix in kernel_fixes(pattern, &raised) {
            println!("  {fix}");
        }
    }
    if auto_ok {
        println!("cores will be captured");
        exit_code::OK
    } else {
        println!("cores will NOT be captured by `corecatch run`");
        exit_code::NO_CAPTURE
    }
}

/// What to change so the kernel's cores reach corecatch.
fn kernel_fixes(pattern: Option<&CorePattern>, raised: &sys::rlimit::Raised) -> Vec<String> {
    let mut v = Vec::new();
    if raised.before.hard == Some(0) || raised.after.soft == Some(0) {
        v.push(
            "the hard RLIMIT_CORE is 0: `ulimit -Hc unlimited` as root before corecatch, or \
             `docker run --ulimit core=-1`"
                .into(),
        );
    }
    match pattern.map(|p| (p, p.file())) {
        None => v.push("core_pattern is unreadable: is /proc mounted?".into()),
        Some((p, None)) => v.push(format!(
            "core_pattern does not write files ({}): `sysctl -w kernel.core_pattern=core` \
             (on the host: in a container core_pattern is the host's and read-only), or keep it \
             and let corecatch capture with ptrace",
            p.describe()
        )),
        Some((_, Some(f))) => {
            if let Some(d) = f.static_dir() {
                if !(d.is_dir() && sys::kernel::dir_writable(&d)) {
                    v.push(format!(
                        "{} must exist and be writable: `mkdir -p {0} && chmod 1777 {0}`",
                        d.display()
                    ));
                }
            }
        }
    }
    if v.is_empty() {
        v.push("fs.suid_dumpable, a seccomp or LSM policy, or a full disk may be the cause".into());
    }
    v
}
