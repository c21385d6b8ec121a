//! The human-readable report: a header naming the crash, then each thread's frames numbered as
//! gdb numbers them (`#0` innermost), the crashed thread first. Every line goes out with its
//! control characters escaped (`crate::escape`): names and paths come from the crashed process.

use super::{Frame, Report, Thread};
use std::io::{self, Write};

/// One line of output: its text with control characters escaped (names and paths come from the
/// crashed process), then the newline.
macro_rules! line {
    ($w:expr) => {
        $w.write_all(b"\n")
    };
    ($w:expr, $($arg:tt)*) => {
        $w.write_all(crate::escape::controls(&format!($($arg)*)).as_bytes())
            .and_then(|_| $w.write_all(b"\n"))
    };
}

/// Part of a line, escaped as [`line!`] escapes.
macro_rules! part {
    ($w:expr, $($arg:tt)*) => {
        $w.write_all(crate::escape::controls(&format!($($arg)*)).as_bytes())
    };
}

/// Which threads to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    All,
    CrashedOnly,
}

/// Write the whole report.
pub fn write(r: &Report, w: &mut dyn Write, which: Threads) -> io::Result<()> {
    write_header(r, w)?;
    for t in &r.threads {
        if which == Threads::CrashedOnly && !t.crashed {
            continue;
        }
        line!(w)?;
        write_thread(t, w)?;
    }
    if which == Threads::CrashedOnly && r.threads.len() > 1 {
        line!(
            w,
            "({} other threads in the full report)",
            r.threads.len() - 1
        )?;
    }
    if !r.warnings.is_empty() {
        line!(w)?;
        for warn in &r.warnings {
            line!(w, "warning: {warn}")?;
        }
    }
    Ok(())
}

/// The stderr summary after `run`/`collect`: one line naming the crash and where its artifacts
/// went, then the crashed thread.
pub fn write_summary(r: &Report, w: &mut dyn Write, stored: Option<&str>) -> io::Result<()> {
    part!(w, "corecatch: ")?;
    write_crash_line(r, w)?;
    if let Some(sig) = &r.signature {
        part!(w, " [signature {sig}]")?;
    }
    match stored {
        Some(s) => line!(w, " -> {s}")?,
        None => line!(w, " (artifacts not stored)")?,
    }
    if let Some(from) = &r.core.from {
        line!(w, "core from {}: {}", from.handler, from.path)?;
    }
    if let Some(m) = &r.abort_message {
        line!(w, "abort message: {m}")?;
    }
    for t in r.threads.iter().filter(|t| t.crashed) {
        write_thread(t, w)?;
    }
    for warn in &r.warnings {
        line!(w, "warning: {warn}")?;
    }
    Ok(())
}

fn write_header(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    write_crash_line(r, w)?;
    line!(w)?;
    if let Some(m) = &r.abort_message {
        line!(w, "abort message: {m}")?;
    }
    if let Some(sig) = &r.signature {
        line!(w, "signature: {sig}")?;
    }
    if !r.process.cmdline.is_empty() {
        line!(w, "command: {}", shell_words(&r.process.cmdline))?;
    }
    match &r.core.from {
        Some(from) => line!(
            w,
            "core: {} from {} ({} bytes, {})",
            from.path,
            from.handler,
            r.core.bytes,
            r.core.machine
        ),
        None => line!(
            w,
            "core: {} ({} bytes, {})",
            r.core.path,
            r.core.bytes,
            r.core.machine
        ),
    }
}

/// `pid 1907 (/tmp/dump) killed by SIGSEGV (11), SEGV_MAPERR at 0x0`, without a newline.
fn write_crash_line(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    part!(w, "{}", r.headline())?;
    if let Some(s) = &r.signal {
        if let Some(c) = s.code_name {
            part!(w, ", {c}")?;
        }
        if let Some(a) = s.address {
            part!(w, " at {a:#x}")?;
        }
        if let Some(p) = s.sender_pid {
            if Some(p) != r.process.pid {
                part!(w, ", sent by pid {p}")?;
            }
        }
    }
    Ok(())
}

/// One thread: its frames, or its registers when no frames could be produced.
pub fn write_thread(t: &Thread, w: &mut dyn Write) -> io::Result<()> {
    let what = if t.crashed { " (crashed)" } else { "" };
    line!(w, "Thread {}{what}:", t.tid)?;
    for (i, f) in t.frames.iter().enumerate() {
        // As gdb: `#0  0x…`, `#10 0x…`, `#100 0x…` (always a space after the number).
        line!(w, "#{i:<2} {}", frame_line(f))?;
    }
    if t.frames.is_empty() {
        let regs: Vec<String> = t
            .registers
            .iter()
            .filter(|(n, _)| matches!(n.as_str(), "rip" | "rsp" | "rbp" | "pc" | "sp" | "x29"))
            .map(|(n, v)| format!("{n} {v:#018x}"))
            .collect();
        line!(w, "    no frames; registers: {}", regs.join("  "))?;
    }
    if let Some(s) = &t.stop_reason {
        line!(w, "    (walk stopped: {s})")?;
    }
    Ok(())
}

/// `0x00007f.. in func at file:line` (inlined frames have no address, as in gdb).
pub fn frame_line(f: &Frame) -> String {
    let mut s = if f.inlined {
        " ".repeat(18) + "   "
    } else {
        format!("{:#018x} in ", f.pc)
    };
    s += f.function.as_deref().unwrap_or("??");
    match (&f.file, f.line) {
        (Some(file), Some(line)) => s += &format!(" at {file}:{line}"),
        (Some(file), None) => s += &format!(" at {file}"),
        _ => {
            if let Some(m) = &f.module {
                s += &format!(" from {m}");
            }
        }
    }
    if f.inlined {
        s += " [inlined]";
    }
    s
}

/// Arguments joined for display, quoted where a shell would need it.
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Frame, Thread};

    #[test]
    fn frame_numbers_are_followed_by_a_space_as_in_gdb() {
        let frame = |pc| Frame {
            pc,
            module: None,
            function: Some("f".into()),
            file: None,
            line: None,
            column: None,
            inlined: false,
            trust: None,
            args: None,
            locals: None,
        };
        let t = Thread {
            tid: 7,
            crashed: true,
            frames: (0..101).map(frame).collect(),
            stop_reason: None,
            registers: Vec::new(),
        };
        let mut out = Vec::new();
        write_thread(&t, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "#0  0x0000000000000000 in f");
        assert_eq!(lines[11], "#10 0x000000000000000a in f");
        assert_eq!(lines[101], "#100 0x0000000000000064 in f");
    }
}
