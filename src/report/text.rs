//! The human-readable report: a header naming the crash, then each thread's frames numbered as
//! gdb numbers them (`#0` innermost), the crashed thread first, with their arguments as gdb's
//! `bt` shows them and, where read, their locals as `bt full` lists them. Every line goes out
//! with its control characters escaped (`crate::escape`): names, paths and values come from the
//! crashed process.

use super::{Frame, Report, Thread};
use crate::backtrace::Variable;
use std::borrow::Cow;
use std::io::{self, Write};

/// Longest value shown on a line, in bytes before escaping: a longer one is cut (at a character
/// boundary) and ends in `...`, so a log never gets a megabyte line. gdb already stops at 200
/// elements of an array or string; the JSON holds the value as gdb printed it.
pub const MAX_VALUE_BYTES: usize = 4096;

/// What `bt full` prints for a frame without locals (at the start of the line, as gdb does).
pub const NO_LOCALS: &str = "No locals.";
/// What `bt full` prints for a frame without debug information.
pub const NO_SYMBOLS: &str = "No symbol table info available.";

/// Indent of each local under its frame, as in gdb's `bt full`.
const LOCALS_INDENT: &str = "        ";

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
        write_thread(t, r.core.address_size, w)?;
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
    write_summary_head(r, w, stored)?;
    if let Some(m) = &r.abort_message {
        line!(w, "abort message: {m}")?;
    }
    for t in r.threads.iter().filter(|t| t.crashed) {
        write_thread(t, r.core.address_size, w)?;
    }
    for warn in &r.warnings {
        line!(w, "warning: {warn}")?;
    }
    Ok(())
}

/// The first lines of both summaries: the crash, where its artifacts went, where the core came
/// from, what was scrubbed (names only).
fn write_summary_head(r: &Report, w: &mut dyn Write, stored: Option<&str>) -> io::Result<()> {
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
    if let Some(s) = &r.scrubbed {
        line!(w, "scrubbed: {}", scrub_words(s, false))?;
    }
    Ok(())
}

/// The stderr summary under `--encrypt-reports` (a CI log is as public as its artifacts): the
/// crash line, where its artifacts went, what was scrubbed (names only), and where the
/// backtrace is (`open`: how to read it); no frame, abort message or warning, which the
/// encrypted reports hold.
pub fn write_sealed_summary(
    r: &Report,
    w: &mut dyn Write,
    stored: Option<&str>,
    open: &str,
) -> io::Result<()> {
    write_summary_head(r, w, stored)?;
    line!(
        w,
        "backtrace: not shown, the reports are encrypted (--encrypt-reports); {open}"
    )
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
    if let Some(s) = &r.scrubbed {
        line!(w, "scrubbed: {}", scrub_words(s, true))?;
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
/// `address_size` is the process's (4 or 8 bytes): addresses get twice as many hex digits.
pub fn write_thread(t: &Thread, address_size: u8, w: &mut dyn Write) -> io::Result<()> {
    let digits = 2 + 2 * usize::from(address_size);
    let what = if t.crashed { " (crashed)" } else { "" };
    line!(w, "Thread {}{what}:", t.tid)?;
    // Locals were read for this thread (`bt full`): a frame without DWARF says so, as gdb.
    let full = t.frames.iter().any(|f| f.locals.is_some());
    for (i, f) in t.frames.iter().enumerate() {
        // As gdb: `#0  0x…`, `#10 0x…`, `#100 0x…` (always a space after the number).
        line!(w, "#{i:<2} {}", frame_line(f, address_size))?;
        match f.locals.as_deref() {
            None if full && f.args.is_none() && !f.inlined => line!(w, "{NO_SYMBOLS}")?,
            None => {}
            Some([]) => line!(w, "{NO_LOCALS}")?,
            Some(locals) => {
                for v in locals {
                    line!(w, "{LOCALS_INDENT}{}", local_line(v))?;
                }
            }
        }
    }
    if t.frames.is_empty() {
        let regs: Vec<String> = t
            .registers
            .iter()
            .filter(|(n, _)| matches!(n.as_str(), "rip" | "rsp" | "rbp" | "pc" | "sp" | "x29"))
            .map(|(n, v)| format!("{n} {v:#0digits$x}"))
            .collect();
        line!(w, "    no frames; registers: {}", regs.join("  "))?;
    }
    if let Some(s) = &t.stop_reason {
        line!(w, "    (walk stopped: {s})")?;
    }
    Ok(())
}

/// `0x00007f.. in func (a=1, p=...) at file:line` (inlined frames have no address, as in gdb).
/// The arguments are left out (no parentheses) when the frame has no DWARF for them, `()` when
/// it has none.
pub fn frame_line(f: &Frame, address_size: u8) -> String {
    use std::fmt::Write as _;
    let digits = 2 + 2 * usize::from(address_size);
    let mut s = String::with_capacity(128);
    if f.inlined {
        let _ = write!(s, "{:1$}", "", digits + 3);
    } else {
        let _ = write!(s, "{:#0digits$x} in ", f.pc);
    }
    s += f.function.as_deref().unwrap_or("??");
    if let Some(args) = &f.args {
        s += " (";
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                s += ", ";
            }
            // `name=value`, or `name=...` for a struct, union or array (gdb's default
            // `print frame-arguments scalars`).
            s += &a.name;
            if a.aggregate {
                s += "=...";
            } else {
                s += "=";
                s += &shown_value(&a.value);
            }
        }
        s += ")";
    }
    let _ = match (&f.file, f.line) {
        (Some(file), Some(line)) => write!(s, " at {file}:{line}"),
        (Some(file), None) => write!(s, " at {file}"),
        _ => match &f.module {
            Some(m) => write!(s, " from {m}"),
            None => Ok(()),
        },
    };
    if f.inlined {
        s += " [inlined]";
    }
    s
}

/// One local as `bt full` lists it, without the indent: `name = value`, aggregates in full.
pub fn local_line(v: &Variable) -> String {
    format!("{} = {}", v.name, shown_value(&v.value))
}

/// `value`, cut to [`MAX_VALUE_BYTES`] with a trailing `...` when longer.
pub fn shown_value(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_VALUE_BYTES {
        return Cow::Borrowed(value);
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", &value[..end]))
}

/// What was scrubbed, in words: `the values of 2 environment variables (AWS_SECRET_ACCESS_KEY,
/// GITHUB_TOKEN), 2 arguments`; the names only when `names`.
pub fn scrub_words(s: &super::Scrubbed, names: bool) -> String {
    let mut parts = Vec::new();
    if let Some(env) = &s.env {
        let n = env.len();
        let what = match n {
            1 => "the value of 1 environment variable".to_string(),
            _ => format!("the values of {n} environment variables"),
        };
        parts.push(match (n, names) {
            (0, _) => "no environment variable's value".to_string(),
            (_, true) => format!("{what} ({})", env.join(", ")),
            (_, false) => what,
        });
    }
    if let Some(n) = s.args {
        parts.push(format!("{n} argument{}", if n == 1 { "" } else { "s" }));
    }
    if s.fragments > 0 {
        parts.push(format!(
            "{} cop{} of their pieces in registers and stacks",
            s.fragments,
            if s.fragments == 1 { "y" } else { "ies" }
        ));
    }
    if !s.not_scrubbed.is_empty() {
        parts.push(format!("not scrubbed: {}", s.not_scrubbed.join("; ")));
    }
    parts.join(", ")
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
        write_thread(&t, 8, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "#0  0x0000000000000000 in f");
        assert_eq!(lines[11], "#10 0x000000000000000a in f");
        assert_eq!(lines[101], "#100 0x0000000000000064 in f");
    }

    fn var(name: &str, type_name: &str, value: &str, aggregate: bool) -> Variable {
        Variable {
            name: name.into(),
            type_name: type_name.into(),
            value: value.into(),
            aggregate,
        }
    }

    fn frame(pc: u64, function: &str, file: Option<(&str, u32)>) -> Frame {
        Frame {
            pc,
            module: Some("/t/t".into()),
            function: Some(function.into()),
            file: file.map(|(f, _)| f.into()),
            line: file.map(|(_, l)| l),
            column: None,
            inlined: false,
            trust: None,
            args: None,
            locals: None,
        }
    }

    fn thread_text(frames: Vec<Frame>) -> String {
        let t = Thread {
            tid: 7,
            crashed: true,
            frames,
            stop_reason: None,
            registers: Vec::new(),
        };
        let mut out = Vec::new();
        write_thread(&t, 8, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// gdb's `bt` and `bt full` forms: arguments on the frame line (aggregates as `...`),
    /// inlined frames' too, `()` for none, no parentheses without DWARF; locals indented by 8,
    /// aggregates in full, `No locals.` for none, nothing where they were not read, and in a
    /// thread whose locals were read, `No symbol table info available.` without DWARF.
    #[test]
    fn arguments_and_locals_as_gdb_prints_them() {
        let mut kill = frame(0x7f00_0000_1000, "__pthread_kill_implementation", None);
        kill.module = Some("/lib/libc.so.6".into());
        let mut inl = frame(0x5654_cc26_b1c2, "inl", Some(("t.c", 5)));
        inl.inlined = true;
        inl.args = Some(vec![var("n", "struct node *", "<optimized out>", false)]);
        inl.locals = Some(vec![]);
        let mut check = frame(0x5654_cc26_b1c2, "check", Some(("t.c", 8)));
        check.args = Some(vec![
            var("head", "struct node *", "0x7ffd180af4b0", false),
            var("p", "struct pair", "{a = 1, b = 2}", true),
            var("s", "const char *", "0x5654cc26c004 \"hi\"", false),
        ]);
        check.locals = Some(vec![
            var("total", "int", "42", false),
            var("b", "struct node", "{next = 0x0, v = 40}", true),
        ]);
        let mut main = frame(0x5654_cc26_b1ae, "main", Some(("t.c", 11)));
        main.args = Some(vec![]);
        let text = thread_text(vec![kill, inl, check, main]);
        assert_eq!(
            text,
            "Thread 7 (crashed):\n\
             #0  0x00007f0000001000 in __pthread_kill_implementation from /lib/libc.so.6\n\
             No symbol table info available.\n\
             #1                       inl (n=<optimized out>) at t.c:5 [inlined]\n\
             No locals.\n\
             #2  0x00005654cc26b1c2 in check (head=0x7ffd180af4b0, p=..., \
             s=0x5654cc26c004 \"hi\") at t.c:8\n        \
             total = 42\n        \
             b = {next = 0x0, v = 40}\n\
             #3  0x00005654cc26b1ae in main () at t.c:11\n"
        );
    }

    /// Values come from the crashed process's memory: control bytes and ANSI escapes are shown
    /// escaped, and a huge value is cut to one bounded line.
    #[test]
    fn values_are_escaped_and_bounded() {
        let mut f = frame(0x1000, "f", Some(("t.c", 1)));
        f.args = Some(vec![var(
            "s",
            "char *",
            "0x1 \"\x1b[31mred\\n\"\n#9 forged",
            false,
        )]);
        let long = "é".repeat(MAX_VALUE_BYTES); // two bytes each: the cut falls mid-character
        f.locals = Some(vec![
            var("buf", "char [8]", "\"ab\x1b[2J\u{9b}\"", true),
            var("big", "char [9000]", &long, true),
        ]);
        let text = thread_text(vec![f]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[1],
            "#0  0x0000000000001000 in f (s=0x1 \"\\x1b[31mred\\n\"\\x0a#9 forged) at t.c:1"
        );
        assert_eq!(lines[2], "        buf = \"ab\\x1b[2J\\u{9b}\"");
        let big = lines[3].strip_prefix("        big = ").unwrap();
        assert!(big.ends_with("..."), "{big}");
        let kept = big.strip_suffix("...").unwrap();
        assert!(kept.len() <= MAX_VALUE_BYTES && kept.len() > MAX_VALUE_BYTES - 4);
        assert!(kept.chars().all(|c| c == 'é'));
        assert!(!text.contains('\x1b'));
    }
}
