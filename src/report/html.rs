//! The self-contained HTML page (`index.html` in the artifacts directory): every crash with its
//! signal, abort message and signature, the crashed thread open and the others folded
//! (`<details>`), source lines around each frame when the caller supplies them, and relative
//! links to each crash's `.core.gz`, `.json` and `.txt`. Inline CSS, no script, no network.
//! Everything from the crashed program (names, arguments, paths, source) is escaped.

use super::{junit, Frame, Report, Thread};
use std::collections::HashMap;
use std::io::{self, Write};

/// One crash on the page: its report and the artifact stem its files share (`None` when the
/// artifacts could not be stored).
pub struct Entry<'a> {
    pub report: &'a Report,
    pub stem: Option<&'a str>,
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
.hit{background:#ffe08a;display:inline-block;width:100%}";

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
        match e.stem {
            Some(stem) => {
                let links: Vec<String> = ["core.gz", "json", "txt"]
                    .iter()
                    .map(|ext| {
                        let href = esc(&format!("{stem}.{ext}"));
                        format!("<a href=\"{href}\">{href}</a>")
                    })
                    .collect();
                writeln!(w, "<p>artifacts: {}</p>", links.join(" · "))?;
            }
            None => writeln!(w, "<p>artifacts: not stored</p>")?,
        }
        for t in &r.threads {
            write_thread(t, sources, w)?;
        }
        for warn in &r.warnings {
            writeln!(w, "<p class=\"warning\">warning: {}</p>", esc(warn))?;
        }
        writeln!(w, "</section>")?;
    }
    writeln!(w, "</body></html>")
}

fn write_thread(t: &Thread, sources: &Sources, w: &mut dyn Write) -> io::Result<()> {
    let open = if t.crashed { " open" } else { "" };
    let what = if t.crashed { " (crashed)" } else { "" };
    writeln!(
        w,
        "<details class=\"thread\"{open}><summary>Thread {}{what}: {} frames</summary>",
        t.tid,
        t.frames.len()
    )?;
    for (i, f) in t.frames.iter().enumerate() {
        write_frame(i, f, sources, w)?;
    }
    writeln!(w, "</details>")
}

fn write_frame(i: usize, f: &Frame, sources: &Sources, w: &mut dyn Write) -> io::Result<()> {
    let class = if f.inlined { "frame inl" } else { "frame" };
    writeln!(
        w,
        "<div class=\"{class}\"><code>#{i} {}</code></div>",
        esc(&super::text::frame_line(f))
    )?;
    let (Some(file), Some(line)) = (&f.file, f.line) else {
        return Ok(());
    };
    let Some((first, lines)) = sources.get(file) else {
        return Ok(());
    };
    let from = line.saturating_sub(CONTEXT).max(*first);
    let to = line + CONTEXT;
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
