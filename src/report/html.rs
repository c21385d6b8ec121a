//! The self-contained HTML page (`index.html` in the artifacts directory): every crash with its
//! signal, abort message and signature, the crashed thread open and the others folded
//! (`<details>`), each frame with its arguments (as the text report's frame line) and its locals
//! folded under it where they were read, source lines around each frame when the caller
//! supplies them, and relative links to each crash's `.core.gz`, `.json` and `.txt`. Inline CSS,
//! no script, no network. Everything from the crashed program (names, arguments, values, paths,
//! source) is escaped; control characters in frame lines and values are shown as the text
//! report shows them (`\x1b`).

use super::{junit, text, Frame, Report, Thread};
use crate::escape::controls;
use std::collections::HashMap;
use std::io::{self, Write};

/// One crash on the page: its report and the artifact stem its files share (`None` when the
/// artifacts could not be stored).
pub struct Entry<'a> {
    pub report: &'a Report,
    pub stem: Option<&'a str>,
    /// The stored core's files (`<stem>.core.gz`, or its parts), linked before the reports.
    pub cores: Vec<&'a str>,
    /// Its reports are stored encrypted (`--encrypt-reports`): `<stem>.json.age`,
    /// `<stem>.txt.age`.
    pub sealed: bool,
}

/// Source lines around frames: file path -> (first line number, lines).
pub type Sources = HashMap<String, (u32, Vec<String>)>;

/// Lines of context shown on each side of a frame's line.
pub const CONTEXT: u32 = 3;

fn esc(s: &str) -> String {
    junit::escape(s)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}\
h2{margin-top:2em}code,pre{font-family:ui-monospace,monospace}\
.frame{margin:.2em 0}.inl{color:#666}.sig{color:#b00;font-weight:bold}\
pre.src{background:#f6f6f6;margin:.2em 0 .6em 2em;padding:.4em}\
.hit{background:#ffe08a;display:inline-block;width:100%}\
.locals{margin:0 0 .4em 2em;color:#333}.locals pre{margin:.2em 0;white-space:pre-wrap}";

/// Write the page.
pub fn write(entries: &[Entry<'_>], sources: &Sources, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "<!DOCTYPE html>")?;
    writeln!(
        w,
        "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>corecatch: {} crash(es)</title>",
        entries.len()
    )?;
    writeln!(w, "<style>{STYLE}</style></head><body>")?;
    writeln!(w, "<h1>corecatch: {} crash(es)</h1>", entries.len())?;
    for (i, e) in entries.iter().enumerate() {
        let r = e.report;
        writeln!(w, "<section class=\"crash\" id=\"crash-{i}\">")?;
        writeln!(w, "<h2>{}</h2>", esc(&r.headline()))?;
        writeln!(w, "<p class=\"sig\">{}</p>", esc(&junit::message(r)))?;
        if let Some(m) = &r.abort_message {
            writeln!(
                w,
                "<p class=\"abort\">abort message: <code>{}</code></p>",
                esc(m)
            )?;
        }
        if let Some(s) = &r.signature {
            writeln!(
                w,
                "<p>signature <code class=\"signature\">{}</code></p>",
                esc(s)
            )?;
        }
        if !r.process.cmdline.is_empty() {
            writeln!(
                w,
                "<p>command: <code>{}</code></p>",
                esc(&super::text::shell_words(&r.process.cmdline))
            )?;
        }
        if let Some(s) = &r.scrubbed {
            writeln!(
                w,
                "<p class=\"scrubbed\">scrubbed: {}</p>",
                esc(&super::text::scrub_words(s, true))
            )?;
        }
        match e.stem {
            Some(stem) => {
                let age = if e.sealed { ".age" } else { "" };
                let names = e.cores.iter().map(|c| c.to_string()).chain(
                    ["json", "txt"]
                        .iter()
                        .map(|ext| format!("{stem}.{ext}{age}")),
                );
                let links: Vec<String> = names
                    .map(|name| {
                        let href = esc(&name);
                        format!("<a href=\"{href}\">{href}</a>")
                    })
                    .collect();
                writeln!(w, "<p>artifacts: {}</p>", links.join(" · "))?;
            }
            None => writeln!(w, "<p>artifacts: not stored</p>")?,
        }
        for t in &r.threads {
            write_thread(t, r.core.address_size, sources, w)?;
        }
        for warn in &r.warnings {
            writeln!(w, "<p class=\"warning\">warning: {}</p>", esc(warn))?;
        }
        writeln!(w, "</section>")?;
    }
    writeln!(w, "</body></html>")
}

fn write_thread(
    t: &Thread,
    address_size: u8,
    sources: &Sources,
    w: &mut dyn Write,
) -> io::Result<()> {
    let open = if t.crashed { " open" } else { "" };
    let what = if t.crashed { " (crashed)" } else { "" };
    writeln!(
        w,
        "<details class=\"thread\"{open}><summary>Thread {}{what}: {} frames</summary>",
        t.tid,
        t.frames.len()
    )?;
    for (i, f) in t.frames.iter().enumerate() {
        write_frame(i, f, address_size, sources, w)?;
    }
    writeln!(w, "</details>")
}

fn write_frame(
    i: usize,
    f: &Frame,
    address_size: u8,
    sources: &Sources,
    w: &mut dyn Write,
) -> io::Result<()> {
    let class = if f.inlined { "frame inl" } else { "frame" };
    writeln!(
        w,
        "<div class=\"{class}\"><code>#{i} {}</code></div>",
        esc(&controls(&text::frame_line(f, address_size)))
    )?;
    match f.locals.as_deref() {
        None => {}
        Some([]) => writeln!(w, "<div class=\"locals\">{}</div>", text::NO_LOCALS)?,
        Some(locals) => {
            let rows: Vec<String> = locals
                .iter()
                .map(|v| esc(&controls(&text::local_line(v))))
                .collect();
            writeln!(
                w,
                "<details class=\"locals\"><summary>{} local{}</summary><pre>{}</pre></details>",
                locals.len(),
                if locals.len() == 1 { "" } else { "s" },
                rows.join("\n")
            )?;
        }
    }
    let (Some(file), Some(line)) = (&f.file, f.line) else {
        return Ok(());
    };
    let Some((first, lines)) = sources.get(file) else {
        return Ok(());
    };
    let from = line.saturating_sub(CONTEXT).max(*first);
    // Saturating: a line number near u32::MAX is valid DWARF.
    let to = line.saturating_add(CONTEXT);
    let mut shown = String::new();
    for n in from..=to {
        let Some(text) = n.checked_sub(*first).and_then(|k| lines.get(k as usize)) else {
            continue;
        };
        let row = format!("{n:>5}  {}", esc(text));
        if n == line {
            shown += &format!("<span class=\"hit\">{row}</span>\n");
        } else {
            shown += &format!("{row}\n");
        }
    }
    if !shown.is_empty() {
        writeln!(w, "<pre class=\"src\">{shown}</pre>")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CoreFile, Process, SCHEMA};

    fn frame(file: &str, line: u32) -> Frame {
        Frame {
            pc: 0x1000,
            module: None,
            function: Some("f".into()),
            file: Some(file.into()),
            line: Some(line),
            column: None,
            inlined: false,
            trust: None,
            args: None,
            locals: None,
        }
    }

    fn page(frames: Vec<Frame>, sources: &Sources) -> String {
        let report = Report {
            schema: SCHEMA,
            core: CoreFile {
                path: "core".into(),
                bytes: 0,
                machine: "x86_64".into(),
                address_size: 8,
                from: None,
            },
            process: Process {
                pid: Some(1),
                executable: Some("/x".into()),
                cmdline: vec![],
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
                frames,
                stop_reason: None,
                registers: vec![],
            }],
            modules: vec![],
            warnings: vec![],
        };
        let mut out = Vec::new();
        let entries = [Entry {
            report: &report,
            stem: Some("core.1.x"),
            cores: vec!["core.1.x.core.gz"],
            sealed: false,
        }];
        write(&entries, sources, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn context_rows_at_the_top_of_u32() {
        let top = u32::MAX;
        let mut sources = Sources::new();
        // The last lines of a (pretend) file that long, and a short file's lines 1 to 5.
        let tail: Vec<String> = (top - 4..=top).map(|n| format!("line {n}")).collect();
        sources.insert("big.c".into(), (top - 4, tail));
        let short: Vec<String> = (1..=5).map(|n| format!("line {n}")).collect();
        sources.insert("a.c".into(), (1, short));

        let html = page(vec![frame("big.c", top), frame("a.c", 2)], &sources);
        for n in top - 3..top {
            assert!(html.contains(&format!("{n:>5}  line {n}\n")), "{n}: {html}");
        }
        assert!(html.contains(&format!("<span class=\"hit\">{top:>5}  line {top}</span>")));
        assert!(!html.contains(&format!("line {}", top - 4)), "{html}");
        assert!(
            html.contains("<span class=\"hit\">    2  line 2</span>"),
            "{html}"
        );
        for n in [1, 3, 4, 5] {
            assert!(html.contains(&format!("{n:>5}  line {n}\n")), "{n}: {html}");
        }

        // A frame one below the top: the rows after it stop at u32::MAX, without wrapping.
        let html = page(vec![frame("big.c", top - 1)], &sources);
        assert!(html.contains(&format!("{top:>5}  line {top}\n")), "{html}");
        assert!(!html.contains("    0  "), "{html}");
    }

    /// Arguments on the frame line, locals folded under their frame, `No locals.` for none,
    /// nothing where they were not read; every value escaped.
    #[test]
    fn arguments_and_locals_are_shown_escaped() {
        use crate::backtrace::Variable;
        let var = |name: &str, value: &str, aggregate| Variable {
            name: name.into(),
            type_name: "char *".into(),
            value: value.into(),
            aggregate,
        };
        let mut f = frame("t.c", 8);
        f.args = Some(vec![
            var("s", "0x1 \"</code><script>x\x1b[31m\"", false),
            var("p", "{a = 1}", true),
        ]);
        f.locals = Some(vec![
            var("n", "<optimized out>", false),
            var("b", "{v = 40}", true),
        ]);
        let mut main = frame("t.c", 11);
        main.args = Some(vec![]);
        main.locals = Some(vec![]);
        let html = page(vec![f, main, frame("t.c", 12)], &Sources::new());
        assert!(
            html.contains(
                "<code>#0 0x0000000000001000 in f (s=0x1 &quot;&lt;/code&gt;&lt;script&gt;\
                 x\\x1b[31m&quot;, p=...) at t.c:8</code>"
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "<details class=\"locals\"><summary>2 locals</summary>\
                 <pre>n = &lt;optimized out&gt;\nb = {v = 40}</pre></details>"
            ),
            "{html}"
        );
        assert!(html.contains("<code>#1 0x0000000000001000 in f () at t.c:11</code></div>\n<div class=\"locals\">No locals.</div>"), "{html}");
        assert!(
            html.contains("<code>#2 0x0000000000001000 in f at t.c:12</code></div>\n</details>"),
            "{html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains('\x1b'),
            "{html}"
        );
    }
}
