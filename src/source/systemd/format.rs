//! Pure: what systemd-coredump leaves behind and how to read it back. Owns the store's file
//! names (`core.COMM.UID.BOOTID.PID.USEC[.zst|.xz|.lz4]` in /var/lib/systemd/coredump, as
//! systemd's `make_filename` writes them), the choice of this run's entries among them,
//! `coredump.conf`'s `Storage=`, and decoding a zstd-compressed entry into any `Write + Seek`
//! with bounded memory, zero runs left as holes. No file system access here; the store is
//! listed and opened by `source::systemd`.

use ruzstd::decoding::errors::FrameDecoderError;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

/// Where systemd-coredump stores cores (`Storage=external`, the default).
pub const STORE_DIR: &str = "/var/lib/systemd/coredump";
/// The socket the kernel-side systemd-coredump hands each core to
/// (systemd-coredump.socket); without a listener there, the core is dropped.
pub const SOCKET: &str = "/run/systemd/coredump";
/// The helper's `comm` as the kernel shows it (15 characters of `systemd-coredump`).
pub const HELPER_COMM: &str = "systemd-coredum";

/// How a stored core is compressed, from its file name's suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compression {
    /// `Compress=no`: the file is the core itself.
    None,
    Zstd,
    Xz,
    Lz4,
}

impl Compression {
    /// The command that decompresses such a file, for messages.
    pub fn tool(&self) -> &'static str {
        match self {
            Self::None => "cp",
            Self::Zstd => "zstd -d",
            Self::Xz => "xz -dk",
            Self::Lz4 => "lz4 -d",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zstd => "zstd",
            Self::Xz => "xz",
            Self::Lz4 => "lz4",
        }
    }
}

/// What a store file's name says about the crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreName {
    /// The process's `comm`, unescaped (systemd writes `.`, `/`, space, `\` and control
    /// characters as `\xNN`).
    pub comm: String,
    /// `%u`: the crashed process's uid (initial user namespace).
    pub uid: u32,
    /// The boot id, 32 lowercase hex digits.
    pub boot_id: String,
    /// `%P`: the pid in the initial pid namespace.
    pub pid: i32,
    /// `%t` in microseconds (systemd appends six zeros to the kernel's seconds).
    pub usec: u64,
    pub compression: Compression,
}

/// Parses a store file name; `None` for anything systemd-coredump did not name this way
/// (its own temporary files, other files), and for a suffix it never writes.
pub fn parse_store_name(name: &str) -> Option<StoreName> {
    let mut parts = name.split('.');
    if parts.next()? != "core" {
        return None;
    }
    let comm = unescape(parts.next()?)?;
    let uid = parts.next()?.parse().ok()?;
    let boot_id = parts.next()?;
    if boot_id.len() != 32
        || !boot_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let pid: i32 = parts.next()?.parse().ok().filter(|&p: &i32| p > 0)?;
    let usec_text = parts.next()?;
    if usec_text.is_empty() || !usec_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let usec = usec_text.parse().ok()?;
    let compression = match parts.next() {
        None => Compression::None,
        Some("zst") => Compression::Zstd,
        Some("xz") => Compression::Xz,
        Some("lz4") => Compression::Lz4,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(StoreName {
        comm,
        uid,
        boot_id: boot_id.to_string(),
        pid,
        usec,
        compression,
    })
}

/// Undoes systemd's `xescape`: `\xNN` back to the byte. `None` for a malformed escape.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let hex = s
                .get(i + 2..i + 4)
                .filter(|_| b.get(i + 1) == Some(&b'x'))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Which store entries belong to a run.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// This boot's id (pids and times of another boot mean nothing).
    pub boot_id: &'a str,
    /// Dump times, inclusive, in microseconds since the epoch; the kernel's `%t` has one-second
    /// resolution, so the caller widens the window by the clock slack.
    pub since_usec: u64,
    pub until_usec: u64,
    /// Processes known to have crashed in the run (CMD, orphans corecatch reaped).
    pub pids: &'a [i32],
    /// Descendants whose pid corecatch never saw are taken by uid (within the window); the
    /// core's own run token then decides.
    pub uid: Option<u32>,
}

/// Whether a store entry may be one of the run's cores.
pub fn selected(name: &StoreName, sel: &Selection<'_>) -> bool {
    name.boot_id == sel.boot_id
        && (sel.since_usec..=sel.until_usec).contains(&name.usec)
        && (sel.pids.contains(&name.pid) || sel.uid == Some(name.uid))
}

/// `Storage=` of coredump.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Files in [`STORE_DIR`] (the default).
    External,
    /// Only inside the journal entry: `coredumpctl dump` is the only way back.
    Journal,
    /// Nothing is kept.
    None,
}

/// `Storage=` after reading coredump.conf and its drop-ins in order (later ones win), as
/// systemd does; an unknown value is ignored as systemd ignores it (with a warning).
pub fn storage_setting(files: &[&str]) -> Storage {
    let mut storage = Storage::External;
    for text in files {
        let mut in_section = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_section = line == "[Coredump]";
                continue;
            }
            if !in_section || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.trim() == "Storage" {
                match value.trim() {
                    "external" => storage = Storage::External,
                    "journal" => storage = Storage::Journal,
                    "none" => storage = Storage::None,
                    _ => {}
                }
            }
        }
    }
    storage
}

/// Why a stored core could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the zstd stream ends after {read} bytes, before its last block (truncated)")]
    Truncated { read: u64 },
    #[error("not a valid zstd stream at compressed byte {at}")]
    Corrupt {
        at: u64,
        #[source]
        source: FrameDecoderError,
    },
    #[error(
        "the zstd content checksum does not match ({expected:08x} stored, {computed:08x} computed)"
    )]
    Checksum { expected: u32, computed: u32 },
    #[error("the zstd stream is empty")]
    Empty,
    #[error("cannot read the compressed file")]
    Read(#[source] io::Error),
    #[error("cannot write the core")]
    Write(#[source] io::Error),
}

/// Largest zstd window accepted (systemd's level-1..19 streams use at most 8 MiB; the format
/// allows more). The decoder's memory is about this plus one block.
pub const MAX_WINDOW: u64 = 128 << 20;

/// Counts what the decoder takes from the source and notes when the source ran dry.
struct Counting<R> {
    inner: R,
    read: u64,
    hit_end: bool,
    error: Option<io::ErrorKind>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.hit_end = true;
                Ok(0)
            }
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.error = Some(e.kind());
                Err(e)
            }
        }
    }
}

/// What a decoding failure means: the source's own read error, a stream that ran out
/// (truncated), or bytes that are not zstd.
fn failure<R>(src: &Counting<R>, frame_start: u64, e: Option<FrameDecoderError>) -> DecodeError {
    if let Some(kind) = src.error {
        return DecodeError::Read(kind.into());
    }
    match e {
        Some(source) if !src.hit_end => DecodeError::Corrupt {
            at: frame_start,
            source,
        },
        _ => DecodeError::Truncated { read: src.read },
    }
}

/// Decodes a zstd file (one frame or several, skippable frames skipped) from `src` into `out`,
/// each frame's content checksum checked when it has one; returns the decoded size. A stream
/// that stops early is [`DecodeError::Truncated`], never a short core reported as whole.
pub fn decode_zstd<R: BufRead, W: Write + Seek>(src: R, out: W) -> Result<u64, DecodeError> {
    let mut src = Counting {
        inner: src,
        read: 0,
        hit_end: false,
        error: None,
    };
    let mut out = SparseWriter::new(out);
    let mut frames = 0;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let at_end = src.inner.fill_buf().map_err(DecodeError::Read)?.is_empty();
        if at_end {
            break;
        }
        let frame_start = src.read;
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        decoder.set_max_window_size(MAX_WINDOW);
        let mut stream =
            match ruzstd::decoding::StreamingDecoder::new_with_decoder(&mut src, decoder) {
                Ok(s) => s,
                Err(FrameDecoderError::ReadFrameHeaderError(
                    ruzstd::decoding::errors::ReadFrameHeaderError::SkipFrame { length, .. },
                )) => {
                    let length = u64::from(length);
                    let skipped = io::copy(&mut (&mut src).take(length), &mut io::sink())
                        .map_err(DecodeError::Read)?;
                    if skipped < length {
                        return Err(DecodeError::Truncated { read: src.read });
                    }
                    continue;
                }
                Err(e) => return Err(failure(&src, frame_start, Some(e))),
            };
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.write_all(&buf[..n]).map_err(DecodeError::Write)?,
                Err(e) => {
                    let inner = e
                        .into_inner()
                        .and_then(|b| b.downcast::<FrameDecoderError>().ok())
                        .map(|b| *b);
                    drop(stream);
                    return Err(failure(&src, frame_start, inner));
                }
            }
        }
        let (_, decoder) = stream.into_parts();
        if let (Some(expected), Some(computed)) = (
            decoder.get_checksum_from_data(),
            decoder.get_calculated_checksum(),
        ) {
            if expected != computed {
                return Err(DecodeError::Checksum { expected, computed });
            }
        }
        frames += 1;
    }
    if frames == 0 {
        return Err(DecodeError::Empty);
    }
    out.finish().map_err(DecodeError::Write)
}

/// Copies `src` into `out`, zero blocks left as holes (an uncompressed store entry).
pub fn copy_sparse<R: Read, W: Write + Seek>(mut src: R, out: W) -> Result<u64, DecodeError> {
    let mut out = SparseWriter::new(out);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(DecodeError::Write)?;
    }
    out.finish().map_err(DecodeError::Write)
}

/// Size of the blocks checked for zeros: a file system's block, so a skipped block is a hole.
const BLOCK: u64 = 4096;

/// A writer that seeks over whole zero blocks instead of writing them, so a core's zero pages
/// become holes as in the kernel's own cores; [`SparseWriter::finish`] gives the file its full
/// length when it ends in a hole.
pub struct SparseWriter<W: Write + Seek> {
    inner: W,
    /// Logical position: bytes accepted so far.
    pos: u64,
    /// Where `inner` is positioned.
    at: u64,
}

impl<W: Write + Seek> SparseWriter<W> {
    pub fn new(inner: W) -> Self {
        SparseWriter {
            inner,
            pos: 0,
            at: 0,
        }
    }

    /// Flushes and returns the total size written.
    pub fn finish(mut self) -> io::Result<u64> {
        if self.at < self.pos {
            // Ends in a hole: one written zero byte gives the file its length.
            self.inner.seek(SeekFrom::Start(self.pos - 1))?;
            self.inner.write_all(&[0])?;
        }
        self.inner.flush()?;
        Ok(self.pos)
    }
}

impl<W: Write + Seek> Write for SparseWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            // Up to the next block boundary of the file, so holes are whole blocks.
            let room = (BLOCK - self.pos % BLOCK) as usize;
            let (piece, tail) = rest.split_at(room.min(rest.len()));
            let whole_block = piece.len() as u64 == BLOCK;
            if whole_block && piece.iter().all(|&b| b == 0) {
                self.pos += BLOCK;
            } else {
                if self.at != self.pos {
                    self.inner.seek(SeekFrom::Start(self.pos))?;
                    self.at = self.pos;
                }
                self.inner.write_all(piece)?;
                self.pos += piece.len() as u64;
                self.at = self.pos;
            }
            rest = tail;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const BOOT: &str = "888f0f51b43a4d95b1a33f57fbb9ec09";

    #[test]
    fn store_names_as_systemd_writes_them() {
        let n = parse_store_name(&format!("core.ab.0.{BOOT}.5469.1795600182000000.zst")).unwrap();
        assert_eq!(
            n,
            StoreName {
                comm: "ab".into(),
                uid: 0,
                boot_id: BOOT.into(),
                pid: 5469,
                usec: 1_795_600_182_000_000,
                compression: Compression::Zstd,
            }
        );
        let n = parse_store_name(&format!("core.a\\x2eout.1000.{BOOT}.7.1.lz4")).unwrap();
        assert_eq!((n.comm.as_str(), n.uid, n.pid), ("a.out", 1000, 7));
        assert_eq!(n.compression, Compression::Lz4);
        let n = parse_store_name(&format!("core.my\\x20prog.0.{BOOT}.7.1")).unwrap();
        assert_eq!(
            (n.comm.as_str(), n.compression),
            ("my prog", Compression::None)
        );
        assert_eq!(
            parse_store_name(&format!("core.x.0.{BOOT}.7.1.xz"))
                .unwrap()
                .compression,
            Compression::Xz
        );
    }

    #[test]
    fn other_names_are_not_store_entries() {
        for name in [
            "core".to_string(),
            "core.1234".into(),
            format!(".#core.ab.0.{BOOT}.5469.1795600182000000.zst1a2b3c"),
            format!("core.ab.0.{BOOT}.5469.1795600182000000.gz"),
            format!("core.ab.0.{BOOT}.5469.1795600182000000.zst.part"),
            format!("core.ab.x.{BOOT}.5469.1795600182000000"),
            format!("core.ab.0.{}.5469.1795600182000000", &BOOT[1..]),
            format!("core.ab.0.{}.5469.1795600182000000", BOOT.to_uppercase()),
            format!("core.ab.0.{BOOT}.0.1795600182000000"),
            format!("core.ab.0.{BOOT}.-3.1795600182000000"),
            format!("core.ab.0.{BOOT}.5469."),
            format!("core.ab.0.{BOOT}.5469.+1"),
            format!("core.a\\x2.0.{BOOT}.1.1"),
            format!("dump.ab.0.{BOOT}.5469.1"),
        ] {
            assert_eq!(parse_store_name(&name), None, "{name}");
        }
    }

    fn name(pid: i32, uid: u32, usec: u64, boot: &str) -> StoreName {
        StoreName {
            comm: "x".into(),
            uid,
            boot_id: boot.into(),
            pid,
            usec,
            compression: Compression::Zstd,
        }
    }

    #[test]
    fn selection_by_boot_window_pid_and_uid() {
        let sel = Selection {
            boot_id: BOOT,
            since_usec: 100,
            until_usec: 200,
            pids: &[42],
            uid: Some(1000),
        };
        assert!(
            selected(&name(42, 0, 150, BOOT), &sel),
            "known pid, any uid"
        );
        assert!(selected(&name(7, 1000, 100, BOOT), &sel), "our uid");
        assert!(
            selected(&name(7, 1000, 200, BOOT), &sel),
            "window inclusive"
        );
        assert!(!selected(&name(7, 0, 150, BOOT), &sel), "other uid");
        assert!(!selected(&name(42, 0, 99, BOOT), &sel), "before the run");
        assert!(!selected(&name(42, 0, 201, BOOT), &sel), "after it");
        let other = "0".repeat(32);
        assert!(!selected(&name(42, 1000, 150, &other), &sel), "other boot");
        let no_uid = Selection { uid: None, ..sel };
        assert!(!selected(&name(7, 1000, 150, BOOT), &no_uid));
    }

    #[test]
    fn storage_from_conf_and_dropins() {
        assert_eq!(storage_setting(&[]), Storage::External);
        let main = "[Coredump]\n#Storage=none\nStorage=journal\n";
        assert_eq!(storage_setting(&[main]), Storage::Journal);
        let dropin = "[Coredump]\n Storage = none \n";
        assert_eq!(storage_setting(&[main, dropin]), Storage::None);
        let other_section = "[Other]\nStorage=none\n[Coredump]\nStorage=bogus\n";
        assert_eq!(storage_setting(&[other_section]), Storage::External);
    }

    /// A zstd frame built by hand, without the decoder's tables: raw and RLE blocks, so the
    /// test does not depend on a compressor. `checksum`: the XXH64-based content checksum.
    fn frame(blocks: &[(bool, &[u8], usize)], checksum: Option<u32>) -> Vec<u8> {
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
        // Frame header descriptor: no content size, single segment off, checksum flag.
        f.push(if checksum.is_some() { 0x04 } else { 0x00 });
        f.push(0x58); // window descriptor: 2^(10+11) = 2 MiB
        for (i, (rle, data, count)) in blocks.iter().enumerate() {
            let last = i + 1 == blocks.len();
            let (ty, size) = if *rle {
                (1u32, *count)
            } else {
                (0u32, data.len())
            };
            let header = (size as u32) << 3 | ty << 1 | last as u32;
            f.extend_from_slice(&header.to_le_bytes()[..3]);
            f.extend_from_slice(data);
        }
        if let Some(c) = checksum {
            f.extend_from_slice(&c.to_le_bytes());
        }
        f
    }

    fn decode(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut out = Cursor::new(Vec::new());
        let n = decode_zstd(Cursor::new(data), &mut out)?;
        let v = out.into_inner();
        assert_eq!(n, v.len() as u64);
        Ok(v)
    }

    #[test]
    fn decodes_raw_and_rle_blocks_into_a_sparse_file_of_full_length() {
        // 8192 zeros (an RLE block: two whole holes), "core", then 5000 zeros at the end.
        let f = frame(
            &[(true, &[0], 8192), (false, b"core", 0), (true, &[0], 5000)],
            None,
        );
        let out = decode(&f).unwrap();
        assert_eq!(out.len(), 8192 + 4 + 5000);
        assert_eq!(&out[8192..8196], b"core");
        assert!(out[..8192].iter().chain(&out[8196..]).all(|&b| b == 0));
        // Two frames back to back decode to their concatenation.
        let two = [
            frame(&[(false, b"ab", 0)], None),
            frame(&[(false, b"cd", 0)], None),
        ]
        .concat();
        assert_eq!(decode(&two).unwrap(), b"abcd");
    }

    #[test]
    fn truncation_checksum_and_garbage_are_errors() {
        let data = b"0123456789abcdef";
        let whole = frame(&[(false, data, 0), (false, data, 0)], None);
        for cut in [7, 12, whole.len() - 1] {
            match decode(&whole[..cut]) {
                Err(DecodeError::Truncated { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let bad_sum = frame(&[(false, data, 0)], Some(0x1234_5678));
        assert!(
            matches!(
                decode(&bad_sum),
                Err(DecodeError::Checksum {
                    expected: 0x1234_5678,
                    ..
                })
            ),
            "{:?}",
            decode(&bad_sum)
        );
        assert!(matches!(
            decode(b"\x7fELF not zstd at all"),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(decode(b""), Err(DecodeError::Empty)));
    }

    #[test]
    fn sparse_writer_skips_only_whole_zero_blocks() {
        let mut out = Cursor::new(Vec::new());
        let mut w = SparseWriter::new(&mut out);
        w.write_all(&[0u8; 100]).unwrap(); // not a whole block: written
        w.write_all(&[0u8; 4096 - 100]).unwrap();
        w.write_all(&[0u8; 4096]).unwrap(); // a whole block: skipped
        w.write_all(b"x").unwrap();
        w.write_all(&[0u8; 4095 + 4096]).unwrap();
        assert_eq!(w.finish().unwrap(), 4 * 4096);
        let v = out.into_inner();
        assert_eq!(v.len(), 4 * 4096);
        assert_eq!(v[8192], b'x');
        assert_eq!(v.iter().filter(|&&b| b != 0).count(), 1);
    }
}
