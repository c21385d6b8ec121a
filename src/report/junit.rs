//! JUnit XML: one failed test case per crash, so CI systems that show test results (CircleCI's
//! `store_test_results`, GitLab, Jenkins) show crashes like failing tests. With no crash the file
//! still holds an empty test suite, so a results step never fails for want of a file.

use super::{text, Report};
use std::io::{self, Write};

/// Write the test suites for `reports`.
pub fn write(reports: &[Report], w: &mut dyn Write) -> io::Result<()> {
    let n = reports.len();
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<testsuites name="corecatch" tests="{n}" failures="{n}" errors="0">"#
    )?;
    writeln!(
        w,
        r#"  <testsuite name="corecatch" tests="{n}" failures="{n}" errors="0" skipped="0">"#
    )?;
    for r in reports {
        let signal = r
            .signal
            .as_ref()
            .and_then(|s| s.name)
            .unwrap_or("no signal");
        let exe = r
            .process
            .executable
            .as_deref()
            .map(|e| e.rsplit('/').next().unwrap_or(e))
            .unwrap_or("unknown");
        let name = match &r.signature {
            Some(s) => format!("{exe} {signal} {s}"),
            None => format!("{exe} {signal}"),
        };
        writeln!(
            w,
            r#"    <testcase classname="corecatch" name="{}">"#,
            escape(&name)
        )?;
        writeln!(
            w,
            r#"      <failure type="{}" message="{}">"#,
            escape(signal),
            escape(&message(r))
        )?;
        let mut body = Vec::new();
        text::write(r, &mut body, text::Threads::CrashedOnly)?;
        write!(w, "{}", escape(&String::from_utf8_lossy(&body)))?;
        writeln!(w, "      </failure>")?;
        writeln!(w, "    </testcase>")?;
    }
    writeln!(w, "  </testsuite>")?;
    writeln!(w, "</testsuites>")
}

/// `SIGSEGV (SEGV_MAPERR at 0x0) in store at static.c:5`: the signal, its code and address,
/// the abort message if any, and the innermost frame of the program's own code (else the
/// innermost named frame).
pub fn message(r: &Report) -> String {
    let mut m = signal_words(r);
    if let Some(a) = &r.abort_message {
        m += &format!(": {a}");
    }
    let frames = r
        .threads
        .iter()
        .find(|t| t.crashed)
        .map(|t| &t.frames[..])
        .unwrap_or(&[]);
    let own = frames
        .iter()
        .find(|f| f.function.is_some() && f.file.as_deref().is_some_and(|f| !is_system(f)))
        .or_else(|| frames.iter().find(|f| f.function.is_some()));
    if let Some(f) = own {
        m += &format!(" in {}", f.function.as_deref().unwrap_or("??"));
        if let (Some(file), Some(line)) = (&f.file, f.line) {
            m += &format!(" at {}:{line}", file.rsplit('/').next().unwrap_or(file));
        }
    }
    m
}

/// `SIGSEGV (SEGV_MAPERR at 0x0)`: the signal, its code and address; nothing from the
/// process's memory or its code (what `--encrypt-reports` still shows).
pub fn signal_words(r: &Report) -> String {
    match &r.signal {
        Some(s) => {
            let mut m = s.name.unwrap_or("signal").to_string();
            let detail: Vec<String> = s
                .code_name
                .map(str::to_string)
                .into_iter()
                .chain(s.address.map(|a| format!("at {a:#x}")))
                .collect();
            if !detail.is_empty() {
                m += &format!(" ({})", detail.join(" "));
            }
            m
        }
        None => "crash".to_string(),
    }
}

/// Source paths of the C library and toolchain runtimes (relative build paths like
/// `./nptl/pthread_kill.c`, or Rust's and C++'s library sources).
fn is_system(file: &str) -> bool {
    file.starts_with("./")
        || file.starts_with("../")
        || file.starts_with("/rustc/")
        || file.contains("/.cargo/registry/")
        || file.starts_with("/usr/include/")
        || file.contains("/libstdc++")
}

/// XML-escape, and drop characters XML 1.0 cannot hold at all (control characters other than
/// tab, newline and carriage return), which a crashing program's name or arguments may contain.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_hold() {
        assert_eq!(
            escape("<script>&\"'\u{1}\tok"),
            "&lt;script&gt;&amp;&quot;&apos;\tok"
        );
    }

    /// The failure body is the text report's crashed thread: frame lines with their arguments
    /// and the locals under them, XML-escaped.
    #[test]
    fn the_body_shows_arguments_and_locals() {
        use crate::backtrace::Variable;
        use crate::report::{CoreFile, Frame, Process, Thread};
        let var = |name: &str, value: &str| Variable {
            name: name.into(),
            type_name: "char *".into(),
            value: value.into(),
            aggregate: false,
        };
        let frame = Frame {
            pc: 0x1000,
            module: None,
            function: Some("check".into()),
            file: Some("t.c".into()),
            line: Some(8),
            column: None,
            inlined: false,
            trust: None,
            args: Some(vec![var("s", "0x1 \"<b>&\"")]),
            locals: Some(vec![var("n", "<optimized out>")]),
        };
        let r = Report {
            schema: "test",
            core: CoreFile {
                path: "/t/core".into(),
                bytes: 1,
                machine: "x86_64".into(),
                address_size: 8,
                from: None,
            },
            process: Process {
                pid: Some(1),
                executable: Some("/t/x".into()),
                cmdline: Vec::new(),
                ppid: None,
                uid: None,
            },
            scrubbed: None,
            signal: None,
            abort_message: None,
            signature: None,
            crashed_tid: Some(1),
            threads: vec![Thread {
                tid: 1,
                crashed: true,
                frames: vec![frame],
                stop_reason: None,
                registers: Vec::new(),
            }],
            modules: Vec::new(),
            warnings: Vec::new(),
        };
        let mut out = Vec::new();
        write(&[r], &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(
                "#0  0x0000000000001000 in check (s=0x1 &quot;&lt;b&gt;&amp;&quot;) at t.c:8\n\
                 \x20       n = &lt;optimized out&gt;\n"
            ),
            "{xml}"
        );
    }
}
