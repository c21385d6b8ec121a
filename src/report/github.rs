//! GitHub Actions output: an `::error` annotation at the innermost frame whose source lies in the
//! workspace (so the crash shows on the diff line), every backtrace folded in `::group::`, and a
//! Markdown summary for `$GITHUB_STEP_SUMMARY`. Workflow-command escaping follows GitHub's rules:
//! `%`, CR and LF in messages; also `:` and `,` in properties. Everything else from the crashed
//! process reaches stdout inside the folded backtrace, which sits between `::stop-commands::TOKEN`
//! and `::TOKEN::` (GitHub's way to print untrusted text: no workflow command is read there), the
//! token chosen by the caller, random per run; and every line of it has its control characters
//! escaped, so no name can start a line of its own. Under `--encrypt-reports` only the
//! `write_sealed_*` forms are written: the crash named, its backtrace left to the encrypted
//! reports.

use super::{junit, text, Report};
use crate::escape::controls;
use std::io::{self, Write};
use std::path::Path;

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The innermost frame whose file is inside `workspace`: (path relative to it, line).
pub fn workspace_frame(r: &Report, workspace: &Path) -> Option<(String, u32)> {
    let t = r.threads.iter().find(|t| t.crashed)?;
    t.frames.iter().find_map(|f| {
        let rel = Path::new(f.file.as_deref()?).strip_prefix(workspace).ok()?;
        Some((rel.to_str()?.to_string(), f.line?))
    })
}

fn title(r: &Report) -> String {
    let exe = r
        .process
        .executable
        .as_deref()
        .map(|e| e.rsplit('/').next().unwrap_or(e))
        .unwrap_or("a process");
    let sig = r.signal.as_ref().and_then(|s| s.name).unwrap_or("a signal");
    format!("{exe} crashed with {sig}")
}

/// Annotations and folded backtraces, for stdout.
/// `stop_token` must not be guessable from the reports (a random string of at least 16 of
/// `[A-Za-z0-9]`).
pub fn write_annotations(
    reports: &[Report],
    workspace: &Path,
    stop_token: &str,
    w: &mut dyn Write,
) -> io::Result<()> {
    for r in reports {
        let mut props = vec![format!("title={}", escape_property(&title(r)))];
        if let Some((file, line)) = workspace_frame(r, workspace) {
            props.insert(0, format!("file={},line={line}", escape_property(&file)));
        }
        let mut msg = junit::message(r);
        if let Some(s) = &r.signature {
            msg += &format!(" [signature {s}]");
        }
        writeln!(w, "::error {}::{}", props.join(","), escape_data(&msg))?;
        writeln!(w, "::group::{}", escape_data(&r.headline()))?;
        writeln!(w, "::stop-commands::{stop_token}")?;
        text::write(r, w, text::Threads::All)?;
        writeln!(w, "::{stop_token}::")?;
        writeln!(w, "::endgroup::")?;
    }
    Ok(())
}

/// Where a crash's backtrace is under `--encrypt-reports`, in words: what GitHub shows instead.
fn sealed_note(out: &Path) -> String {
    format!(
        "the backtrace is in the encrypted reports (--encrypt-reports): corecatch bt --identity \
         KEY {}",
        out.display()
    )
}

/// The annotations under `--encrypt-reports`, for stdout: one `::error` per crash naming the
/// process, its signal and signature and where the encrypted reports are (`out`), without a
/// frame, a file or a line: a workflow's log and annotations are as public as its artifacts.
pub fn write_sealed_annotations(
    reports: &[Report],
    out: &Path,
    w: &mut dyn Write,
) -> io::Result<()> {
    for r in reports {
        let mut msg = junit::signal_words(r);
        if let Some(s) = &r.signature {
            msg += &format!(" [signature {s}]");
        }
        msg += &format!("; {}", sealed_note(out));
        writeln!(
            w,
            "::error title={}::{}",
            escape_property(&title(r)),
            escape_data(&msg)
        )?;
    }
    Ok(())
}

/// The job summary under `--encrypt-reports`: each crash's process, signal and signature, and
/// where its encrypted reports are; no backtrace.
pub fn write_sealed_summary(reports: &[Report], out: &Path, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "## corecatch: {} crash(es)\n", reports.len())?;
    for r in reports {
        write!(w, "### {}", controls(&title(r)))?;
        if let Some(s) = &r.signature {
            write!(w, " (signature `{s}`)")?;
        }
        writeln!(w, "\n\n{}\n", controls(&junit::signal_words(r)))?;
    }
    writeln!(w, "{}\n", controls(&sealed_note(out)).replace('`', "'"))
}

/// The Markdown appended to the job summary.
pub fn write_summary(reports: &[Report], w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "## corecatch: {} crash(es)\n", reports.len())?;
    for r in reports {
        write!(w, "### {}", controls(&title(r)))?;
        if let Some(s) = &r.signature {
            write!(w, " (signature `{s}`)")?;
        }
        writeln!(
            w,
            "\n\n{}\n",
            controls(&junit::message(r)).replace('`', "'")
        )?;
        writeln!(w, "```")?;
        for t in r.threads.iter().filter(|t| t.crashed) {
            // Fences cannot be closed from inside: the frames hold no backtick runs of three.
            let mut body = Vec::new();
            text::write_thread(t, r.core.address_size, &mut body)?;
            write!(
                w,
                "{}",
                String::from_utf8_lossy(&body).replace("```", "'''")
            )?;
        }
        writeln!(w, "```\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_the_workflow_command_rules() {
        assert_eq!(escape_data("50%\r\nx"), "50%25%0D%0Ax");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }

    #[test]
    fn a_name_cannot_start_a_workflow_command() {
        use crate::report::{CoreFile, Process, Thread};
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
                executable: Some("/t/x\n::warning title=INJ::injected".into()),
                cmdline: vec!["x\n::warning::argv".into()],
                ppid: None,
                uid: None,
            },
            scrubbed: None,
            signal: None,
            abort_message: Some("boom\n::warning::abort".into()),
            signature: None,
            crashed_tid: Some(1),
            threads: vec![Thread {
                tid: 1,
                crashed: true,
                frames: Vec::new(),
                stop_reason: None,
                registers: Vec::new(),
            }],
            modules: Vec::new(),
            warnings: Vec::new(),
        };
        let mut out = Vec::new();
        write_annotations(
            std::slice::from_ref(&r),
            Path::new("/w"),
            "t0ken0123456789abcdef",
            &mut out,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let stop = lines
            .iter()
            .position(|l| *l == "::stop-commands::t0ken0123456789abcdef");
        let resume = lines.iter().position(|l| *l == "::t0ken0123456789abcdef::");
        let (stop, resume) = (stop.unwrap(), resume.unwrap());
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("::") && !(stop..=resume).contains(&i) {
                assert!(
                    l.starts_with("::error ") || l.starts_with("::group::") || *l == "::endgroup::",
                    "{out}"
                );
            }
        }
        assert!(!lines.iter().any(|l| l.starts_with("::warning")), "{out}");
        let mut md = Vec::new();
        write_summary(std::slice::from_ref(&r), &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(!md.lines().any(|l| l.starts_with("::")), "{md}");

        // Under --encrypt-reports: one ::error line per crash, nothing else, no abort message.
        let mut out = Vec::new();
        write_sealed_annotations(std::slice::from_ref(&r), Path::new("/o/art"), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with("::error title="), "{out}");
        assert!(!out.contains("boom") && !out.contains("file="), "{out}");
        assert!(out.contains("corecatch bt --identity KEY /o/art"), "{out}");
        let mut md = Vec::new();
        write_sealed_summary(&[r], Path::new("/o/art"), &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(!md.lines().any(|l| l.starts_with("::")), "{md}");
        assert!(!md.contains("boom") && !md.contains("```"), "{md}");
        assert!(md.contains("--encrypt-reports"), "{md}");
    }
}
