//! GitHub Actions output: an `::error` annotation at the innermost frame whose source lies in the
//! workspace (so the crash shows on the diff line), every backtrace folded in `::group::`, and a
//! Markdown summary for `$GITHUB_STEP_SUMMARY`. Workflow-command escaping follows GitHub's rules:
//! `%`, CR and LF in messages; also `:` and `,` in properties.

use super::{junit, text, Report};
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
pub fn write_annotations(
    reports: &[Report],
    workspace: &Path,
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
        text::write(r, w, text::Threads::All)?;
        writeln!(w, "::endgroup::")?;
    }
    Ok(())
}

/// The Markdown appended to the job summary.
pub fn write_summary(reports: &[Report], w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "## corecatch: {} crash(es)\n", reports.len())?;
    for r in reports {
        write!(w, "### {}", title(r))?;
        if let Some(s) = &r.signature {
            write!(w, " (signature `{s}`)")?;
        }
        writeln!(w, "\n\n{}\n", junit::message(r).replace('`', "'"))?;
        writeln!(w, "```")?;
        for t in r.threads.iter().filter(|t| t.crashed) {
            // Fences cannot be closed from inside: the frames hold no backtick runs of three.
            let mut body = Vec::new();
            text::write_thread(t, &mut body)?;
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
}
