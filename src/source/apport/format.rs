//! Pure: apport's `.crash` problem reports (Ubuntu's core_pattern handler writes them to
//! /var/crash). A report is RFC 822-like text, `Key: value` with continuation lines that start
//! with a space; a binary field reads `Key: base64` and each continuation line is a separate
//! base64 block. Concatenated, the blocks of `CoreDump` are a gzip stream (a header naming the
//! field, raw deflate blocks, the CRC-32 and size), or in reports of old apport versions a zlib
//! stream. [`extract_core`] decodes that stream into any writer, one line at a time: a core of
//! any size is never held in memory. No I/O here beyond the writer it is given.

use std::io::Write;

use base64::Engine;

/// What a report says about the crashed process (its text fields, not the core).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFields {
    /// `ExecutablePath`.
    pub executable: Option<String>,
    /// `Pid:` in `ProcStatus`.
    pub pid: Option<i32>,
    /// The report has a `CoreDump` field.
    pub has_core: bool,
}

/// Why the core could not be taken out of a report.
#[derive(Debug, thiserror::Error)]
pub enum ApportError {
    #[error("the report has no CoreDump field")]
    NoCoreDump,
    #[error("CoreDump is not base64-encoded")]
    NotBase64Field,
    #[error("CoreDump line {line} is not valid base64")]
    BadBase64 { line: usize },
    #[error("CoreDump does not inflate: {0}")]
    Inflate(std::io::Error),
    #[error("CoreDump is empty")]
    Empty,
    #[error("cannot write the extracted core")]
    Write(#[source] std::io::Error),
}

/// Whether `head` (the first bytes of a file) starts like an apport report.
pub fn looks_like_report(head: &[u8]) -> bool {
    head.starts_with(b"ProblemType: ")
}

/// Each top-level field: (key, first line of the value, the lines that continue it).
fn fields(report: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], Continuation<'_>)> {
    let mut lines = report.split(|&b| b == b'\n').enumerate().peekable();
    std::iter::from_fn(move || loop {
        let (i, line) = lines.next()?;
        if line.starts_with(b" ") || line.is_empty() {
            continue; // continuation of a field already handed out, or a blank line
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        // The continuation lines follow this one; the caller walks them lazily.
        let start = line.as_ptr() as usize - report.as_ptr() as usize + line.len();
        return Some((
            &line[..colon],
            value,
            Continuation {
                rest: report.get(start + 1..).unwrap_or(&[]),
                first_line: i + 2,
            },
        ));
    })
}

/// The continuation lines of one field (without their leading space).
#[derive(Clone, Copy)]
struct Continuation<'a> {
    rest: &'a [u8],
    /// 1-based line number of the first continuation line, for messages.
    first_line: usize,
}

impl<'a> Continuation<'a> {
    fn lines(self) -> impl Iterator<Item = (usize, &'a [u8])> {
        self.rest
            .split(|&b| b == b'\n')
            .take_while(|l| l.starts_with(b" "))
            .enumerate()
            .map(move |(i, l)| (self.first_line + i, l[1..].trim_ascii_end()))
    }
}

/// The text fields corecatch reports from a `.crash` file.
pub fn report_fields(report: &[u8]) -> ReportFields {
    let mut out = ReportFields::default();
    for (key, value, cont) in fields(report) {
        match key {
            b"ExecutablePath" => out.executable = Some(String::from_utf8_lossy(value).into()),
            b"CoreDump" => out.has_core = true,
            b"ProcStatus" => {
                out.pid = cont.lines().find_map(|(_, l)| {
                    let v = l.strip_prefix(b"Pid:")?;
                    std::str::from_utf8(v).ok()?.trim().parse().ok()
                })
            }
            _ => {}
        }
    }
    out
}

/// Writes the core held in the report's `CoreDump` field to `out`; returns its size. The field
/// is decoded line by line and inflated as it goes (gzip, or zlib for old reports). The stream
/// must end properly: a gzip stream with its CRC-32 and size matching, a zlib one with its
/// Adler-32; a report cut short is an error, not a short core.
pub fn extract_core(report: &[u8], out: &mut dyn Write) -> Result<u64, ApportError> {
    let (_, value, cont) = fields(report)
        .find(|(k, _, _)| *k == b"CoreDump")
        .ok_or(ApportError::NoCoreDump)?;
    if value != b"base64" {
        return Err(ApportError::NotBase64Field);
    }
    let mut stream = Stream::default();
    let mut block = Vec::new();
    for (line_no, line) in cont.lines() {
        block.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(line, &mut block)
            .map_err(|_| ApportError::BadBase64 { line: line_no })?;
        stream.feed(&block, out)?;
    }
    stream.finish()
}

fn corrupt(why: &str) -> ApportError {
    ApportError::Inflate(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        why.to_string(),
    ))
}

/// The decoding state of one `CoreDump` stream.
#[derive(Default)]
struct Stream {
    /// Bytes not yet consumed: the start, until the format and (for gzip) the header are known;
    /// after the deflate data, the gzip trailer.
    pending: Vec<u8>,
    inflater: Option<(flate2::Decompress, bool)>,
    ended: bool,
    crc: flate2::Crc,
    out_bytes: u64,
    /// Inflated bytes on their way to the writer.
    buf: Vec<u8>,
}

impl Stream {
    fn feed(&mut self, input: &[u8], out: &mut dyn Write) -> Result<(), ApportError> {
        if self.inflater.is_none() {
            self.pending.extend_from_slice(input);
            let Some((header_len, gzip)) = header_len(&self.pending)? else {
                return Ok(()); // the header is not complete yet
            };
            self.inflater = Some((flate2::Decompress::new(!gzip), gzip));
            let rest = self.pending.split_off(header_len);
            self.pending.clear();
            return self.inflate(&rest, out);
        }
        if self.ended {
            self.pending.extend_from_slice(input);
            return Ok(());
        }
        self.inflate(input, out)
    }

    fn inflate(&mut self, mut input: &[u8], out: &mut dyn Write) -> Result<(), ApportError> {
        let Some((z, _)) = self.inflater.as_mut() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            self.buf = vec![0u8; 256 << 10];
        }
        let buf = &mut self.buf;
        while !input.is_empty() && !self.ended {
            let (in0, out0) = (z.total_in(), z.total_out());
            let status = z
                .decompress(input, buf, flate2::FlushDecompress::None)
                .map_err(|e| corrupt(&e.to_string()))?;
            let used = (z.total_in() - in0) as usize;
            let made = (z.total_out() - out0) as usize;
            input = &input[used..];
            out.write_all(&buf[..made]).map_err(ApportError::Write)?;
            self.crc.update(&buf[..made]);
            self.out_bytes += made as u64;
            if status == flate2::Status::StreamEnd {
                self.ended = true;
            } else if used == 0 && made == 0 {
                return Err(corrupt("the deflate stream makes no progress"));
            }
        }
        // Whatever follows the deflate data is the gzip trailer.
        self.pending.extend_from_slice(input);
        Ok(())
    }

    fn finish(self) -> Result<u64, ApportError> {
        let Some((_, gzip)) = self.inflater else {
            return Err(if self.pending.is_empty() {
                ApportError::Empty
            } else {
                corrupt("the stream ends inside its header")
            });
        };
        if !self.ended {
            return Err(corrupt("the stream is cut short"));
        }
        if gzip {
            let t = &self.pending;
            if t.len() < 8 {
                return Err(corrupt("the gzip trailer is missing"));
            }
            let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
            let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
            if crc != self.crc.sum() {
                return Err(corrupt("the CRC-32 does not match"));
            }
            if size != self.out_bytes as u32 {
                return Err(corrupt("the size does not match"));
            }
        }
        Ok(self.out_bytes)
    }
}

/// The length of the stream's header and whether it is gzip (else zlib, whose two header bytes
/// the inflater reads itself); `None` while more bytes are needed.
fn header_len(b: &[u8]) -> Result<Option<(usize, bool)>, ApportError> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[..2] != [0x1f, 0x8b] {
        return Ok(Some((0, false)));
    }
    if b.len() < 10 {
        return Ok(None);
    }
    if b[2] != 8 {
        return Err(corrupt("gzip compression method is not deflate"));
    }
    let flags = b[3];
    let mut at = 10;
    if flags & 0x04 != 0 {
        // FEXTRA: a little-endian length, then that many bytes.
        let Some(len) = b.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [0x08, 0x10] {
        // FNAME, FCOMMENT: zero-terminated.
        if flags & flag != 0 {
            let Some(end) = b.get(at..).and_then(|r| r.iter().position(|&c| c == 0)) else {
                return Ok(None);
            };
            at += end + 1;
        }
    }
    if flags & 0x02 != 0 {
        at += 2; // FHCRC
    }
    Ok((b.len() >= at).then_some((at, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields() {
        let r = b"ProblemType: Crash\nExecutablePath: /usr/bin/x\nProcStatus:\n Name:\tx\n \
                  Pid:\t4242\n PPid:\t1\nCoreDump: base64\n H4sI\nSignal: 6\n";
        assert!(looks_like_report(r));
        assert!(!looks_like_report(b"\x7fELF"));
        let f = report_fields(r);
        assert_eq!(f.executable.as_deref(), Some("/usr/bin/x"));
        assert_eq!(f.pid, Some(4242));
        assert!(f.has_core);
        assert!(!report_fields(b"ProblemType: Crash\n").has_core);
    }

    #[test]
    fn gzip_headers() {
        let base = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        assert_eq!(header_len(&base).unwrap(), Some((10, true)));
        assert_eq!(header_len(&base[..5]).unwrap(), None);
        let mut named = base.to_vec();
        named[3] = 0x08;
        named.extend_from_slice(b"CoreDump");
        assert_eq!(header_len(&named).unwrap(), None, "name not terminated yet");
        named.push(0);
        assert_eq!(header_len(&named).unwrap(), Some((19, true)));
        let mut extra = base.to_vec();
        extra[3] = 0x04 | 0x02;
        extra.extend_from_slice(&[3, 0, 1, 2, 3, 0xaa, 0xbb]);
        assert_eq!(header_len(&extra).unwrap(), Some((17, true)));
        assert_eq!(header_len(&[0x78, 0x9c]).unwrap(), Some((0, false)));
        let mut bad = base.to_vec();
        bad[2] = 7;
        assert!(header_len(&bad).is_err());
    }
}
