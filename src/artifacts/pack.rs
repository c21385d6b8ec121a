//! Turning one core file into a verified `.gz` (or `.zst`, optionally age-encrypted, optionally
//! in parts) next to where it will be stored, and streaming SHA-256 of files.
//!
//! [`compress`] reads the core straight into [`CHUNK_SIZE`] buffers, hashing it on the way, and
//! compresses them as independent gzip members (libdeflate) or zstd frames on one worker per CPU
//! (a sequence of members is one valid file; `gunzip` and `zstd -d` restore the concatenation).
//! Each worker decompresses its member again and compares it with the chunk before it is
//! written, so the data is verified in parallel, without reading the core twice; the stored
//! stream is hashed as it is written, each temporary file fsynced and its size checked, and only
//! then renamed into place, and the directory fsynced. Zero chunks (holes, zero pages: most of a
//! typical core) reuse one precomputed member; holes in sparse cores (found with
//! `SEEK_DATA`/`SEEK_HOLE`) are neither read nor scanned. Nothing is read whole into memory: at
//! most two chunks per worker are in flight, and their buffers are reused.
//!
//! This module never touches the original. Deleting it is the caller's decision, made only after
//! [`compress`] returned `Ok`, through [`remove_original`].

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::artifacts::publish;
use crate::sys::sparse::{next_data, next_hole, Seek};
use sha2::{Digest, Sha256};

/// gzip level 6 (gzip's default), libdeflate's: smaller than zlib's level 6 on cores (7.0:1 vs
/// 6.3:1 on the bench core's data) in less time. Cores are mostly zero pages and repeated
/// heap/stack patterns: level 6 gets within a few percent of level 9's size at a fraction of its
/// time, while level 1 leaves noticeably bigger artifacts for CI to upload and keep.
pub const GZIP_LEVEL: u32 = 6;

/// Size of every read, write and decompression buffer (1 MiB).
pub const BUF_SIZE: usize = 1 << 20;

/// Fed to the encoder for the holes of sparse files.
static ZEROS: [u8; BUF_SIZE] = [0; BUF_SIZE];

/// How a stored core is compressed: gzip (every machine can `gunzip`) or zstd at a level.
/// Either way the core is cut into chunks compressed on every CPU, gzip members or zstd
/// frames, and a sequence of those is one valid file for `gunzip` and `zstd -d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    #[default]
    Gzip,
    Zstd {
        level: i32,
    },
}

impl Codec {
    /// `zstd` without a level: zstd's own default, fast and a better ratio than gzip -6.
    pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

    /// The file name's suffix after `.core.`.
    pub fn suffix(self) -> &'static str {
        match self {
            Codec::Gzip => "gz",
            Codec::Zstd { .. } => "zst",
        }
    }

    /// The name the manifest records.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd { .. } => "zstd",
        }
    }
}

/// How cores are stored: the codec, and the largest file (`--max-artifact-size`): a bigger
/// stored core is written as parts `<name>.000`, `.001`, … cut between members, so each part is
/// itself a valid gzip or zstd file and their concatenation is the whole.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub codec: Codec,
    pub max_part: Option<u64>,
    /// `--encrypt-to`: the compressed stream is encrypted with age to every one of these as it
    /// is written (`<name>.age`); then parts are cut at any byte, not between members.
    pub recipients: Vec<crate::artifacts::encrypt::Recipient>,
}

/// The smallest `--max-artifact-size`: parts hold whole members, and members are cut from
/// chunks of at most half of it.
pub const MIN_PART_SIZE: u64 = 1 << 20;

impl StoreOptions {
    /// Bytes of core per member: [`CHUNK_SIZE`], or less so that a member (at worst the chunk
    /// stored, plus a few bytes of framing) always fits in a part.
    fn chunk_size(&self) -> usize {
        match self.max_part {
            Some(max) => (max / 2).clamp(MIN_PART_SIZE / 2, CHUNK_SIZE as u64) as usize,
            None => CHUNK_SIZE,
        }
    }
}

/// One file of a stored core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// A core stored compressed and verified, in one file or in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The stored core's name (the `dest` given to [`compress`]): the file itself, or the name
    /// its parts add `.000`, `.001`, … to.
    pub path: PathBuf,
    /// The files written, in order: one whose path is `path`, or the parts.
    pub parts: Vec<Part>,
    /// Size of the whole stored stream (all parts).
    pub bytes: u64,
    /// SHA-256 of the whole stored stream, lowercase hex.
    pub sha256: String,
    /// Size of the original core (holes included).
    pub original_bytes: u64,
    /// SHA-256 of the original core, lowercase hex.
    pub original_sha256: String,
    pub codec: Codec,
    /// The public keys it is encrypted to (none: not encrypted).
    pub encrypted_to: Vec<String>,
}

/// Why a core could not be packed, hashed or removed. In every case the original is untouched
/// and no partial destination file is left behind.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot stat {path}")]
    Stat { path: PathBuf, source: io::Error },
    #[error("cannot create a temporary file in {dir}")]
    CreateTemp { dir: PathBuf, source: io::Error },
    #[error("{path} changed size while being packed ({before} bytes, then {after})")]
    SourceChanged {
        path: PathBuf,
        before: u64,
        after: u64,
    },
    #[error("{path} is the file being packed")]
    SameFile { path: PathBuf },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot sync {path}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("cannot verify {path}")]
    Verify { path: PathBuf, source: io::Error },
    #[error(
        "{path} was not stored as written ({actual_bytes} bytes on disk, {expected_bytes} written)"
    )]
    Torn {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },
    /// Found by the tests' full check (`verify_whole`); in use, every member is checked as it
    /// is made.
    #[cfg(test)]
    #[error(
        "{path} does not restore the original ({actual_bytes} bytes, sha256 {actual_sha256}; \
         expected {expected_bytes} bytes, sha256 {expected_sha256})"
    )]
    Mismatch {
        path: PathBuf,
        expected_bytes: u64,
        expected_sha256: String,
        actual_bytes: u64,
        actual_sha256: String,
    },
    #[error(transparent)]
    Publish(#[from] crate::artifacts::publish::PublishError),
    #[error(
        "{path} changed since it was packed ({expected} bytes then, {actual} now); not removed"
    )]
    OriginalChanged {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("cannot remove {path}")]
    Remove { path: PathBuf, source: io::Error },
    /// A stop was requested (SIGTERM, SIGINT, SIGHUP) while `path` was being packed.
    #[error("packing {path} was interrupted")]
    Interrupted { path: PathBuf },
}

/// Compresses `src` into `dest` (normally `<stem>.core.gz` in the artifacts directory), verified.
///
/// `dest`'s directory must exist. The temporary file is created there, so the final rename is
/// atomic; an existing `dest` is replaced (picking a fresh name is the sink's job). The `.gz`
/// keeps the temporary file's mode, 0600: cores hold process memory, secrets included.
///
/// On any error the temporary file is removed, `dest` is not created and `src` is untouched.
#[cfg(test)]
pub fn compress(src: &Path, dest: &Path) -> Result<Packed, PackError> {
    compress_with_progress(src, dest, &StoreOptions::default(), &mut |_, _| {}, &|| {
        false
    })
}

/// [`compress`], calling `progress(bytes_read, total_bytes)` as the core is read (once per
/// buffer, at most every [`BUF_SIZE`] bytes), and giving up with [`PackError::Interrupted`]
/// (temporary file removed, `dest` not created, `src` untouched) as soon as `stop()` says so:
/// it is asked before every buffer and once more before the file is renamed into place.
pub fn compress_with_progress(
    src: &Path,
    dest: &Path,
    opts: &StoreOptions,
    progress: &mut dyn FnMut(u64, u64),
    stop: &dyn Fn() -> bool,
) -> Result<Packed, PackError> {
    let input = File::open(src).map_err(|source| PackError::Open {
        path: src.to_path_buf(),
        source,
    })?;
    let src_meta = input.metadata().map_err(|source| PackError::Stat {
        path: src.to_path_buf(),
        source,
    })?;
    if let Ok(d) = std::fs::metadata(dest) {
        if d.dev() == src_meta.dev() && d.ino() == src_meta.ino() {
            return Err(PackError::SameFile {
                path: dest.to_path_buf(),
            });
        }
    }

    let write_err = |source: io::Error| PackError::Write {
        path: dest.to_path_buf(),
        source,
    };

    // Compress: source -> (sha256 of original) -> members on every CPU -> parts, each a
    // temporary file hashed as it is written.
    let mut sink = PartSink::new(dest, opts.max_part);
    // The first part now: a directory that takes no file fails before any work.
    sink.start_part().map_err(|source| PackError::CreateTemp {
        dir: publish::parent_dir(dest).to_path_buf(),
        source,
    })?;
    let sealed = if opts.recipients.is_empty() {
        Sealed::Plain(sink)
    } else {
        sink.cut_anywhere = true;
        let enc = crate::artifacts::encrypt::Encryptor::new(&opts.recipients, sink)
            .map_err(|e| write_err(io::Error::other(crate::error::chain(&e))))?;
        Sealed::Age(enc)
    };
    let mut feed = Feed {
        enc: ParallelGz::threaded(sealed, Style::Verified(opts.codec), opts.chunk_size()),
        hasher: Sha256::new(),
        bytes: 0,
        total: src_meta.len(),
        dest,
        progress,
        stop,
        src,
    };
    stream_source(&input, src, src_meta.len(), src_meta.is_file(), &mut feed)?;
    let original_bytes = feed.bytes;
    let original_sha256 = hex(&feed.hasher.finalize());
    let sink = feed
        .enc
        .finish()
        .and_then(Sealed::finish)
        .map_err(write_err)?;
    let (temps, mut packed) = sink.finish(original_bytes, original_sha256, opts.codec)?;
    packed.encrypted_to = opts
        .recipients
        .iter()
        .map(|r| r.public().to_string())
        .collect();
    for (tmp, part) in temps.iter().zip(&packed.parts) {
        verify_part(tmp.as_file(), part)?;
    }

    if stop() {
        return Err(PackError::Interrupted {
            path: src.to_path_buf(),
        });
    }
    for (tmp, part) in temps.into_iter().zip(&packed.parts) {
        publish::publish(tmp, &part.path)?;
    }
    Ok(packed)
}

/// The stored side of [`compress_with_progress`]: temporary files in the destination's
/// directory, one per part. Every write is one whole member ([`ParallelGz`] writes members
/// whole), so a part is cut only between members: a new one starts when the next member would
/// take the current one past `max`.
struct PartSink {
    dest: PathBuf,
    max: Option<u64>,
    /// Writes are not whole members (an encrypted stream): parts are filled to exactly `max`.
    cut_anywhere: bool,
    done: Vec<(tempfile::NamedTempFile, u64, String)>,
    current: Option<(tempfile::NamedTempFile, HashingWriter<BufWriter<File>>)>,
    /// The hash of all parts together, kept only when there may be more than one (without a
    /// `max` the one part's hash is the whole's: no second pass over the stream).
    whole: Option<Sha256>,
    whole_bytes: u64,
}

impl PartSink {
    fn new(dest: &Path, max: Option<u64>) -> Self {
        PartSink {
            dest: dest.to_path_buf(),
            max,
            cut_anywhere: false,
            done: Vec::new(),
            current: None,
            whole: max.map(|_| Sha256::new()),
            whole_bytes: 0,
        }
    }

    fn start_part(&mut self) -> io::Result<()> {
        self.close_part()?;
        let tmp = publish::temp_in(publish::parent_dir(&self.dest), ".part.tmp")?;
        let file = tmp.as_file().try_clone()?;
        let w = HashingWriter::new(BufWriter::with_capacity(BUF_SIZE, file));
        self.current = Some((tmp, w));
        Ok(())
    }

    /// Flush and fsync the current part.
    fn close_part(&mut self) -> io::Result<()> {
        if let Some((tmp, w)) = self.current.take() {
            let (bytes, sha) = (w.bytes, hex(&w.hasher.finalize()));
            w.inner.into_inner().map_err(|e| e.into_error())?;
            tmp.as_file().sync_all()?;
            self.done.push((tmp, bytes, sha));
        }
        Ok(())
    }

    /// The temporary files and what they will be once published (`dest`, or `dest.NNN` when
    /// there is more than one).
    fn finish(
        mut self,
        original_bytes: u64,
        original_sha256: String,
        codec: Codec,
    ) -> Result<(Vec<tempfile::NamedTempFile>, Packed), PackError> {
        let dest = self.dest.clone();
        self.close_part().map_err(|source| PackError::Sync {
            path: dest.to_path_buf(),
            source,
        })?;
        let n = self.done.len();
        let mut temps = Vec::with_capacity(n);
        let mut parts = Vec::with_capacity(n);
        for (i, (tmp, bytes, sha256)) in self.done.into_iter().enumerate() {
            let path = if n == 1 {
                dest.to_path_buf()
            } else {
                part_path(&dest, i)
            };
            temps.push(tmp);
            parts.push(Part {
                path,
                bytes,
                sha256,
            });
        }
        let sha256 = match self.whole {
            Some(h) => hex(&h.finalize()),
            None => parts.first().map(|p| p.sha256.clone()).unwrap_or_default(),
        };
        Ok((
            temps,
            Packed {
                path: dest.to_path_buf(),
                parts,
                bytes: self.whole_bytes,
                sha256,
                original_bytes,
                original_sha256,
                codec,
                encrypted_to: Vec::new(),
            },
        ))
    }
}

impl PartSink {
    /// An encrypted stream: fill each part to exactly `max`, cutting anywhere.
    fn write_anywhere(&mut self, mut data: &[u8]) -> io::Result<()> {
        let max = self.max.unwrap_or(u64::MAX);
        while !data.is_empty() {
            let used = self.current.as_ref().map_or(0, |(_, w)| w.bytes);
            if used >= max {
                self.start_part()?;
                continue;
            }
            let k = data.len().min((max - used).min(usize::MAX as u64) as usize);
            if let Some((_, w)) = self.current.as_mut() {
                w.write_all(&data[..k])?;
            }
            if let Some(h) = self.whole.as_mut() {
                h.update(&data[..k]);
            }
            self.whole_bytes += k as u64;
            data = &data[k..];
        }
        Ok(())
    }
}

/// The stream after the compressor: straight to the parts, or through age first.
enum Sealed {
    Plain(PartSink),
    Age(crate::artifacts::encrypt::Encryptor<PartSink>),
}

impl Sealed {
    fn finish(self) -> io::Result<PartSink> {
        match self {
            Sealed::Plain(s) => Ok(s),
            Sealed::Age(e) => e.finish(),
        }
    }
}

impl Write for Sealed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealed::Plain(s) => s.write(buf),
            Sealed::Age(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealed::Plain(s) => s.flush(),
            Sealed::Age(e) => e.flush(),
        }
    }
}

impl Write for PartSink {
    fn write(&mut self, member: &[u8]) -> io::Result<usize> {
        if self.cut_anywhere {
            self.write_anywhere(member)?;
            return Ok(member.len());
        }
        // The first part was started before any member; a new one when this member would
        // take the current past `max`.
        let full = match (&self.current, self.max) {
            (Some((_, w)), Some(max)) => w.bytes > 0 && w.bytes + member.len() as u64 > max,
            _ => false,
        };
        if full {
            self.start_part()?;
        }
        if let Some((_, w)) = self.current.as_mut() {
            w.write_all(member)?;
        }
        if let Some(h) = self.whole.as_mut() {
            h.update(member);
        }
        self.whole_bytes += member.len() as u64;
        Ok(member.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The name of part `i` of the stored core `dest`: `dest.000`, `dest.001`, …
pub fn part_path(dest: &Path, i: usize) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".{i:03}"));
    PathBuf::from(name)
}

/// Removes the original core after it was packed, but only if it still has the size it had when
/// packed (a core still being written, or replaced by another one, is kept) and is not the packed
/// file itself. Call it only with the [`Packed`] that [`compress`] returned for this `src`.
pub fn remove_original(src: &Path, packed: &Packed) -> Result<(), PackError> {
    let stat_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Stat { path, source }
    };
    let meta = std::fs::symlink_metadata(src).map_err(stat_err(src))?;
    if meta.len() != packed.original_bytes {
        return Err(PackError::OriginalChanged {
            path: src.to_path_buf(),
            expected: packed.original_bytes,
            actual: meta.len(),
        });
    }
    for part in &packed.parts {
        let gz = std::fs::metadata(&part.path).map_err(stat_err(&part.path))?;
        if gz.dev() == meta.dev() && gz.ino() == meta.ino() {
            return Err(PackError::SameFile {
                path: src.to_path_buf(),
            });
        }
    }
    std::fs::remove_file(src).map_err(|source| PackError::Remove {
        path: src.to_path_buf(),
        source,
    })
}

/// Size and SHA-256 (lowercase hex) of a file, read in [`BUF_SIZE`] chunks.
pub fn sha256_file(path: &Path) -> Result<(u64, String), PackError> {
    let file = File::open(path).map_err(|source| PackError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    sha256_reader(file).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// SHA-256 of bytes in memory, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn sha256_reader(mut r: impl Read) -> io::Result<(u64, String)> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    loop {
        let got = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..got]);
        n += got as u64;
    }
    Ok((n, hex(&hasher.finalize())))
}

/// The uncompressed side: reads the source straight into the encoder's chunk buffer, hashing
/// and counting on the way (each byte is copied once, from the page cache into the chunk).
struct Feed<'a, W: Write + Send> {
    enc: ParallelGz<W>,
    hasher: Sha256,
    bytes: u64,
    total: u64,
    dest: &'a Path,
    progress: &'a mut dyn FnMut(u64, u64),
    stop: &'a dyn Fn() -> bool,
    src: &'a Path,
}

impl<W: Write + Send> Feed<'_, W> {
    fn check_stop(&self) -> Result<(), PackError> {
        if (self.stop)() {
            return Err(PackError::Interrupted {
                path: self.src.to_path_buf(),
            });
        }
        Ok(())
    }

    fn write_err(&self, source: io::Error) -> PackError {
        PackError::Write {
            path: self.dest.to_path_buf(),
            source,
        }
    }

    /// One `read` of at most `limit` bytes into the current chunk; the bytes read (0 at the
    /// end of the source).
    fn read_with(
        &mut self,
        limit: u64,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> Result<usize, PackError> {
        self.check_stop()?;
        let spare = self.enc.spare();
        let k = spare.len().min(limit.min(usize::MAX as u64) as usize);
        let n = loop {
            match read(&mut spare[..k]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PackError::Read {
                        path: self.src.to_path_buf(),
                        source,
                    })
                }
            }
        };
        self.hasher.update(&spare[..n]);
        self.bytes += n as u64;
        (self.progress)(self.bytes, self.total);
        self.enc.advance(n).map_err(|e| self.write_err(e))?;
        Ok(n)
    }

    /// `n` zero bytes (a hole): hashed, but never copied or scanned.
    fn zeros(&mut self, mut n: u64) -> Result<(), PackError> {
        while n > 0 {
            self.check_stop()?;
            let k = n.min(BUF_SIZE as u64) as usize;
            self.hasher.update(&ZEROS[..k]);
            self.bytes += k as u64;
            (self.progress)(self.bytes, self.total);
            self.enc.zeros(k).map_err(|e| self.write_err(e))?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// Size of the independently compressed pieces of a core (each one gzip member).
pub const CHUNK_SIZE: usize = 4 << 20;

/// How members are made: a core's at [`GZIP_LEVEL`] or zstd's level, each checked by
/// decompressing it (the raw core is removed afterwards); or fast, for copies of files that
/// stay where they are (the debug bundle): gzip level 1, and stored as they are when they do not
/// compress (debug files whose sections are compressed already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Verified(Codec),
    Fast,
}

/// Members of the fast style: small, so a few files still spread over every CPU and the
/// compressible / incompressible choice follows the files' boundaries closely.
const FAST_CHUNK_SIZE: usize = 512 << 10;

/// Bytes of a chunk compressed first to see whether the rest is worth compressing.
const SAMPLE: usize = 32 << 10;

/// A member ready to be written: compressed by a worker into a buffer that is reused once it is
/// written, or the one shared member of a zero chunk.
enum Member {
    Owned(Vec<u8>, usize),
    Shared(std::sync::Arc<[u8]>),
}

impl Member {
    fn bytes(&self) -> &[u8] {
        match self {
            Member::Owned(buf, n) => &buf[..*n],
            Member::Shared(m) => m,
        }
    }
}

/// The member of `chunk`, compressed into `out`. A zero chunk (a zero page that was not a hole)
/// gets the shared zero member instead of a compression pass.
fn make_member(chunk: &[u8], style: Style, mut out: Vec<u8>) -> io::Result<Member> {
    if all_zero(chunk) {
        return zero_member(style, chunk.len()).map(Member::Shared);
    }
    let n = compress_checked(chunk, style, &mut out)?;
    Ok(Member::Owned(out, n))
}

/// Whether every byte is zero: an OR over 4 KiB blocks the compiler vectorises, stopping at
/// the first block with data.
fn all_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(4096)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The member of `len` zero bytes in `style`: made and checked once per process, then shared
/// by every zero chunk of that size (holes and zero pages, most of a typical core).
fn zero_member(style: Style, len: usize) -> io::Result<std::sync::Arc<[u8]>> {
    type Cache = Vec<(Style, usize, std::sync::Arc<[u8]>)>;
    static CACHE: std::sync::Mutex<Cache> = std::sync::Mutex::new(Vec::new());
    let lock = || CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, m)) = lock().iter().find(|(s, l, _)| *s == style && *l == len) {
        return Ok(m.clone());
    }
    let zeros = vec![0u8; len];
    let mut out = Vec::new();
    let n = compress_checked(&zeros, style, &mut out)?;
    let member: std::sync::Arc<[u8]> = out[..n].into();
    let mut cache = lock();
    // A few sizes at most: the chunk size, the last chunk's, the bundle's.
    if cache.len() < 16 {
        cache.push((style, len, member.clone()));
    }
    Ok(member)
}

/// Compress `chunk` into `out` (grown as needed, reused across calls) and, for the verified
/// styles, decompress the result again and compare it with the chunk, in memory. This is the
/// verification of the data; the stored files are then only checked to hold exactly the
/// members written. The number of bytes of `out` that are the member.
fn compress_checked(chunk: &[u8], style: Style, out: &mut Vec<u8>) -> io::Result<usize> {
    // One set of compressors and decompressors per worker thread, kept: a fresh context per
    // chunk allocates (and faults in) megabytes of tables each time.
    thread_local! {
        static WORKSPACE: std::cell::RefCell<Workspace> = std::cell::RefCell::new(Workspace::default());
    }
    WORKSPACE.with(|w| {
        let w = &mut *w.borrow_mut();
        match style {
            Style::Verified(Codec::Gzip) => {
                let n = w.gzip(GZIP_LEVEL as i32, chunk, out)?;
                w.check_gzip(&out[..n], chunk)?;
                Ok(n)
            }
            Style::Verified(Codec::Zstd { level }) => {
                let n = w.zstd(level, chunk, out)?;
                w.check_zstd(&out[..n], chunk)?;
                Ok(n)
            }
            Style::Fast => {
                let sample = &chunk[..chunk.len().min(SAMPLE)];
                // Less than a tenth saved on the sample: store the chunk (deflate's stored
                // blocks, level 0).
                let n = w.gzip(1, sample, out)?;
                let level = if n * 10 > sample.len() * 9 { 0 } else { 1 };
                w.gzip(level, chunk, out)
            }
        }
    })
}

/// A worker's compression state.
#[derive(Default)]
struct Workspace {
    /// libdeflate compressors by level (the fast style uses two).
    deflate: Vec<(i32, libdeflater::Compressor)>,
    inflate: Option<libdeflater::Decompressor>,
    zstd: Option<(i32, zstd::bulk::Compressor<'static>)>,
    unzstd: Option<zstd::bulk::Decompressor<'static>>,
    /// The decompressed member, compared with the chunk.
    back: Vec<u8>,
}

fn restore_mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a compressed chunk does not restore its input",
    )
}

impl Workspace {
    /// One gzip member of `data` at `level` into `out`; its length.
    fn gzip(&mut self, level: i32, data: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let at = match self.deflate.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                let lvl = libdeflater::CompressionLvl::new(level)
                    .map_err(|_| io::Error::other(format!("gzip level {level} is out of range")))?;
                self.deflate
                    .push((level, libdeflater::Compressor::new(lvl)));
                self.deflate.len() - 1
            }
        };
        let c = &mut self.deflate[at].1;
        let bound = c.gzip_compress_bound(data.len());
        if out.len() < bound {
            out.resize(bound, 0);
        }
        c.gzip_compress(data, out)
            .map_err(|_| io::Error::other("a gzip member outgrew its bound"))
    }

    /// Whether the single gzip `member` inflates (CRC-32 and length checked) to exactly `expect`.
    fn check_gzip(&mut self, member: &[u8], expect: &[u8]) -> io::Result<()> {
        let d = self
            .inflate
            .get_or_insert_with(libdeflater::Decompressor::new);
        if self.back.len() < expect.len() {
            self.back.resize(expect.len(), 0);
        }
        let back = &mut self.back[..expect.len()];
        match d.gzip_decompress(member, back) {
            Ok(n) if n == expect.len() && *back == *expect => Ok(()),
            _ => Err(restore_mismatch()),
        }
    }

    /// One zstd frame of `data` (with zstd's content checksum, as the `zstd` command writes
    /// it) into `out`; its length.
    fn zstd(&mut self, level: i32, data: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        if !matches!(&self.zstd, Some((l, _)) if *l == level) {
            let mut c = zstd::bulk::Compressor::new(level)?;
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
            self.zstd = Some((level, c));
        }
        let Some((_, c)) = self.zstd.as_mut() else {
            unreachable!("set above")
        };
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        c.compress_to_buffer(data, out)
    }

    /// Whether the zstd `frame` decompresses (checksum checked) to exactly `expect`.
    fn check_zstd(&mut self, frame: &[u8], expect: &[u8]) -> io::Result<()> {
        let d = match self.unzstd.as_mut() {
            Some(d) => d,
            None => self.unzstd.insert(zstd::bulk::Decompressor::new()?),
        };
        self.back.clear();
        self.back.reserve(expect.len());
        let n = d.decompress_to_buffer(frame, &mut self.back)?;
        if n != expect.len() || self.back != expect {
            return Err(restore_mismatch());
        }
        Ok(())
    }
}

/// A chunk for a worker: the buffer, how much of it is the chunk, and a buffer for the member.
struct Job {
    seq: u64,
    chunk: Vec<u8>,
    len: usize,
    out: Vec<u8>,
}

/// A worker's answer, with the chunk's buffer for reuse.
struct Done {
    seq: u64,
    member: io::Result<Member>,
    chunk: Vec<u8>,
}

/// A gzip (or zstd) writer that cuts its input into pieces ([`CHUNK_SIZE`] by default),
/// compresses them as separate members on worker threads, and writes the members in order. A
/// sequence of members is a valid gzip file: `gunzip` (and `MultiGzDecoder`) restores the
/// concatenation byte for byte; the same for zstd frames. The input is read straight into the
/// chunk buffers ([`ParallelGz::spare`]) and holes are only counted ([`ParallelGz::zeros`]): a
/// chunk made only of holes never reaches a worker. Memory is bounded: at most two chunks per
/// worker are in flight, and their buffers (input and member) are reused. Dropped without
/// `finish` (an error path), the job channel closes and the detached workers end after their
/// chunk.
struct ParallelGz<W: Write + Send> {
    out: Output<W>,
    style: Style,
    /// The chunk being filled: always `size` bytes long, `filled` of them the chunk's.
    chunk: Vec<u8>,
    filled: usize,
    /// Everything in the chunk so far came from [`ParallelGz::zeros`] and was not written to
    /// the buffer (which may hold an earlier chunk's bytes).
    known_zero: bool,
    /// Bytes per member: [`CHUNK_SIZE`], or [`FAST_CHUNK_SIZE`] in the fast style.
    size: usize,
    next_seq: u64,
    next_write: u64,
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    done: std::sync::mpsc::Receiver<Done>,
    /// Chunk buffers the workers are done with: reused, so a big core does not fault in a
    /// fresh buffer's pages for every chunk.
    free: Vec<Vec<u8>>,
    /// Member buffers already written, for the next jobs.
    free_out: Vec<Vec<u8>>,
    pending: std::collections::BTreeMap<u64, Member>,
    in_flight: usize,
    max_in_flight: usize,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl<W: Write + Send> ParallelGz<W> {
    /// Members of `size` bytes of input (the fast style uses [`FAST_CHUNK_SIZE`] whatever
    /// `size` says).
    fn with_style(out: W, style: Style, size: usize) -> Self {
        ParallelGz::new(Output::Inline(Some(out)), style, size)
    }

    fn new(out: Output<W>, style: Style, size: usize) -> Self {
        let size = match style {
            Style::Verified(_) => size,
            Style::Fast => FAST_CHUNK_SIZE,
        };
        let n = worker_count();
        let (jobs, job_rx) = std::sync::mpsc::sync_channel::<Job>(n);
        let (done_tx, done) = std::sync::mpsc::channel();
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let workers = (0..n)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = done_tx.clone();
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let member = make_member(&job.chunk[..job.len], style, job.out);
                    let done = Done {
                        seq: job.seq,
                        member,
                        chunk: job.chunk,
                    };
                    if tx.send(done).is_err() {
                        return;
                    }
                })
            })
            .collect();
        ParallelGz {
            out,
            style,
            chunk: vec![0; size],
            filled: 0,
            known_zero: true,
            size,
            next_seq: 0,
            next_write: 0,
            jobs: Some(jobs),
            done,
            pending: Default::default(),
            free: Vec::new(),
            free_out: Vec::new(),
            in_flight: 0,
            max_in_flight: 2 * n,
            workers,
        }
    }

    /// The rest of the current chunk, to read input into; [`ParallelGz::advance`] then says
    /// how much was.
    fn spare(&mut self) -> &mut [u8] {
        if self.known_zero {
            self.chunk[..self.filled].fill(0);
            self.known_zero = false;
        }
        &mut self.chunk[self.filled..]
    }

    /// `n` bytes were written into [`ParallelGz::spare`].
    fn advance(&mut self, n: usize) -> io::Result<()> {
        self.filled += n;
        if self.filled == self.size {
            self.submit()?;
        }
        Ok(())
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let spare = self.spare();
            let k = spare.len().min(data.len());
            spare[..k].copy_from_slice(&data[..k]);
            data = &data[k..];
            self.advance(k)?;
        }
        Ok(())
    }

    /// `n` zero bytes of input.
    fn zeros(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let k = (self.size - self.filled).min(n);
            if !self.known_zero {
                self.chunk[self.filled..self.filled + k].fill(0);
            }
            n -= k;
            self.advance(k)?;
        }
        Ok(())
    }

    /// Hand the current chunk on: to a worker, or, when it is only holes, straight to the
    /// queue as the zero member.
    fn submit(&mut self) -> io::Result<()> {
        let (seq, len) = (self.next_seq, self.filled);
        self.next_seq += 1;
        self.filled = 0;
        if std::mem::replace(&mut self.known_zero, true) {
            let member = zero_member(self.style, len)?;
            self.pending.insert(seq, Member::Shared(member));
            return self.write_ready();
        }
        let next = self.free.pop().unwrap_or_else(|| vec![0; self.size]);
        let chunk = std::mem::replace(&mut self.chunk, next);
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let out = match &self.out {
            Output::Thread { back, .. } => back.try_recv().ok(),
            Output::Inline(_) => None,
        };
        let out = out.or_else(|| self.free_out.pop()).unwrap_or_default();
        let jobs = self.jobs.as_ref().ok_or_else(worker_gone)?;
        jobs.send(Job {
            seq,
            chunk,
            len,
            out,
        })
        .map_err(|_| worker_gone())?;
        self.in_flight += 1;
        Ok(())
    }

    /// Wait for one member, then write every member that is next in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let done = self.done.recv().map_err(|_| worker_gone())?;
        self.in_flight -= 1;
        self.free.push(done.chunk);
        self.pending.insert(done.seq, done.member?);
        self.write_ready()
    }

    /// Write the members that are next in order, keeping their buffers for reuse.
    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(m) = self.pending.remove(&self.next_write) {
            self.next_write += 1;
            match &mut self.out {
                Output::Inline(w) => {
                    w.as_mut().ok_or_else(worker_gone)?.write_all(m.bytes())?;
                    if let Member::Owned(buf, _) = m {
                        self.free_out.push(buf);
                    }
                }
                Output::Thread { members, .. } => {
                    let sent = members.as_ref().map(|tx| tx.send(m).is_ok());
                    if sent != Some(true) {
                        return Err(self.out.writer_failed());
                    }
                }
            }
        }
        Ok(())
    }

    /// Compress what is left, write every member, and return the writer.
    fn finish(mut self) -> io::Result<W> {
        // An empty input still becomes a valid (empty) gzip file.
        if self.filled > 0 || self.next_seq == 0 {
            self.submit()?;
        }
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None; // workers see the channel close and exit
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.out.finish()
    }
}

impl<W: Write + Send + 'static> ParallelGz<W> {
    /// [`ParallelGz::with_style`], with the members written (and whatever `out` does with them:
    /// hashing, encryption, cutting parts) on a thread of their own, so the thread that reads
    /// and hashes the input never waits for the output.
    fn threaded(out: W, style: Style, size: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Member>(worker_count());
        let (back_tx, back) = std::sync::mpsc::channel();
        let mut out = out;
        let writer = std::thread::spawn(move || {
            for m in rx {
                out.write_all(m.bytes())?;
                if let Member::Owned(buf, _) = m {
                    // The compressor may be gone already (an error on its side): nothing to reuse.
                    let _ = back_tx.send(buf);
                }
            }
            Ok(out)
        });
        let out = Output::Thread {
            members: Some(tx),
            back,
            writer: Some(writer),
        };
        ParallelGz::new(out, style, size)
    }
}

/// Where [`ParallelGz`] writes members: itself, or through its writer thread.
enum Output<W> {
    Inline(Option<W>),
    Thread {
        members: Option<std::sync::mpsc::SyncSender<Member>>,
        /// Member buffers the writer is done with.
        back: std::sync::mpsc::Receiver<Vec<u8>>,
        writer: Option<std::thread::JoinHandle<io::Result<W>>>,
    },
}

impl<W> Output<W> {
    /// The writer thread stopped taking members: its error.
    fn writer_failed(&mut self) -> io::Error {
        match self {
            Output::Thread {
                members, writer, ..
            } => {
                *members = None;
                match writer.take().map(|w| w.join()) {
                    Some(Ok(Err(e))) => e,
                    Some(Err(_)) => io::Error::other("the writer thread panicked"),
                    _ => worker_gone(),
                }
            }
            Output::Inline(_) => worker_gone(),
        }
    }

    /// Every member written: the writer back.
    fn finish(&mut self) -> io::Result<W> {
        match self {
            Output::Inline(w) => w.take().ok_or_else(worker_gone),
            Output::Thread {
                members, writer, ..
            } => {
                *members = None; // the writer sees the channel close and returns
                match writer.take().map(|w| w.join()) {
                    Some(Ok(r)) => r,
                    Some(Err(_)) => Err(io::Error::other("the writer thread panicked")),
                    None => Err(worker_gone()),
                }
            }
        }
    }
}

impl<W> Drop for Output<W> {
    /// On an error path: let the writer thread end and drop what it holds (the parts'
    /// temporary files are removed) before the error is returned.
    fn drop(&mut self) {
        if let Output::Thread {
            members, writer, ..
        } = self
        {
            *members = None;
            if let Some(w) = writer.take() {
                let _ = w.join();
            }
        }
    }
}

/// A gzip stream of members compressed on every CPU ([`ParallelGz`]) in the fast style (level
/// 1, incompressible chunks stored), hashed and counted as it reaches `W`: for archives of
/// files that stay on disk, built on the fly (the debug bundle).
pub struct GzipWriter<W: Write + Send> {
    enc: ParallelGz<HashingWriter<W>>,
}

impl<W: Write + Send> GzipWriter<W> {
    pub fn new(out: W) -> Self {
        GzipWriter {
            enc: ParallelGz::with_style(HashingWriter::new(out), Style::Fast, FAST_CHUNK_SIZE),
        }
    }

    /// Compress what is left; the writer, the compressed size and its SHA-256 (hex).
    pub fn finish(self) -> io::Result<(W, u64, String)> {
        Ok(self.enc.finish()?.finish())
    }
}

impl<W: Write + Send> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.enc.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // members are written as they are done; `finish` writes the rest
    }
}

/// One compression worker per CPU, at most 8.
fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

fn worker_gone() -> io::Error {
    io::Error::other("a compression worker stopped")
}

/// Hashes and counts the bytes read through it: a file copied into an archive, an artifact
/// decompressed, each hashed on the way instead of read twice.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.bytes
    }

    /// The SHA-256 (lowercase hex) of what was read.
    pub fn sha256(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Hashes and counts the bytes that reach the inner writer: what is stored (the compressed or
/// encrypted side).
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the bytes written and their SHA-256 (lowercase hex).
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Feeds the whole source to `feed`: hole-aware for regular files where the filesystem answers
/// `SEEK_DATA`, plain sequential reads otherwise.
fn stream_source<W: Write + Send>(
    input: &File,
    path: &Path,
    len: u64,
    regular: bool,
    feed: &mut Feed<'_, W>,
) -> Result<(), PackError> {
    if regular && stream_sparse(input, path, len, feed)? {
        let after = input
            .metadata()
            .map_err(|source| PackError::Stat {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if after != len || feed.bytes != len {
            return Err(PackError::SourceChanged {
                path: path.to_path_buf(),
                before: len,
                after,
            });
        }
        return Ok(());
    }
    let mut reader = input;
    while feed.read_with(BUF_SIZE as u64, |buf| reader.read(buf))? > 0 {}
    Ok(())
}

/// The `SEEK_DATA`/`SEEK_HOLE` walk over `[0, len)`. `Ok(false)` when the filesystem does not
/// support it (nothing was fed yet, the caller falls back to plain reads).
fn stream_sparse<W: Write + Send>(
    input: &File,
    path: &Path,
    len: u64,
    feed: &mut Feed<'_, W>,
) -> Result<bool, PackError> {
    let read_err = |source: io::Error| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut pos = 0u64;
    while pos < len {
        let data = match next_data(input, pos).map_err(read_err)? {
            Seek::At(d) => d.clamp(pos, len),
            // No data at or after `pos`: the rest is a hole.
            Seek::End => len,
            Seek::Unsupported if pos == 0 => return Ok(false),
            // Supported a moment ago: never guess zeros for data we could not locate.
            Seek::Unsupported => {
                return Err(read_err(io::Error::other(
                    "the filesystem stopped reporting holes",
                )))
            }
        };
        feed.zeros(data - pos)?;
        pos = data;
        if pos >= len {
            break;
        }
        let hole = match next_hole(input, pos).map_err(read_err)? {
            Seek::At(h) if h > pos => h.min(len),
            // A racing writer or an odd filesystem: read the rest.
            _ => len,
        };
        while pos < hole {
            let limit = (hole - pos).min(BUF_SIZE as u64);
            match feed.read_with(limit, |buf| input.read_at(buf, pos))? {
                0 => return Ok(true), // truncated under us; the caller reports it
                n => pos += n as u64,
            }
        }
    }
    Ok(true)
}

/// Checks that a part on disk (flushed and fsynced) has exactly the size counted while writing
/// it. Every member was already decompressed and compared with its input before it was
/// written ([`compress_checked`]) and hashed on its way to the file, so the part restores its
/// share of the original. Reading it back would only read the page cache just written.
fn verify_part(file: &File, expect: &Part) -> Result<(), PackError> {
    let n = file
        .metadata()
        .map_err(|source| PackError::Verify {
            path: expect.path.clone(),
            source,
        })?
        .len();
    if n != expect.bytes {
        return Err(PackError::Torn {
            path: expect.path.clone(),
            expected_bytes: expect.bytes,
            actual_bytes: n,
        });
    }
    Ok(())
}

/// The tests' independent check: the published files, concatenated and decompressed, give
/// the original's size and SHA-256.
#[cfg(test)]
fn verify_whole(expect: &Packed) -> Result<(), PackError> {
    use flate2::read::MultiGzDecoder;
    use std::io::BufReader;
    let verify_err = |source| PackError::Verify {
        path: expect.path.clone(),
        source,
    };
    let mut files = Vec::new();
    for p in &expect.parts {
        files.push(File::open(&p.path).map_err(verify_err)?);
    }
    let joined = files
        .into_iter()
        .fold(Box::new(io::empty()) as Box<dyn Read>, |r, f| {
            Box::new(r.chain(f))
        });
    let joined = BufReader::with_capacity(BUF_SIZE, joined);
    let (n, sha) = match expect.codec {
        Codec::Gzip => sha256_reader(MultiGzDecoder::new(joined)),
        Codec::Zstd { .. } => {
            sha256_reader(zstd::stream::read::Decoder::new(joined).map_err(verify_err)?)
        }
    }
    .map_err(verify_err)?;
    if n != expect.original_bytes || sha != expect.original_sha256 {
        return Err(PackError::Mismatch {
            path: expect.path.clone(),
            expected_bytes: expect.original_bytes,
            expected_sha256: expect.original_sha256.clone(),
            actual_bytes: n,
            actual_sha256: sha,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::names_in as entries;
    use std::process::Command;

    /// Deterministic incompressible bytes (xorshift64).
    fn noise(n: usize, mut seed: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.extend_from_slice(&seed.to_le_bytes());
        }
        v.truncate(n);
        v
    }

    fn gunzip_in_process(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trip_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core.1");
        let data = [b"ELF core ".repeat(1000), noise(70_000, 7)].concat();
        std::fs::write(&src, &data).unwrap();
        let dest = dir.path().join("core.1.core.gz");

        let p = compress(&src, &dest).unwrap();
        assert_eq!(p.path, dest);
        assert_eq!(p.original_bytes, data.len() as u64);
        assert_eq!(p.original_sha256, sha256_hex(&data));
        assert_eq!(gunzip_in_process(&dest), data);
        assert_eq!(sha256_file(&dest).unwrap(), (p.bytes, p.sha256.clone()));
        assert_eq!(std::fs::read(&src).unwrap(), data, "original untouched");
        assert_eq!(
            entries(dir.path()),
            ["core.1", "core.1.core.gz"],
            "no temp left"
        );
    }

    #[test]
    fn empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("empty");
        std::fs::write(&src, b"").unwrap();
        let p = compress(&src, &dir.path().join("e.gz")).unwrap();
        assert_eq!(p.original_bytes, 0);
        assert_eq!(p.original_sha256, sha256_hex(b""));
        assert!(gunzip_in_process(&p.path).is_empty());
        // zstd too: an empty core is one empty frame, verified like any other.
        let opts = StoreOptions {
            codec: Codec::Zstd { level: 3 },
            ..StoreOptions::default()
        };
        let z = dir.path().join("e.zst");
        let p = compress_with_progress(&src, &z, &opts, &mut |_, _| {}, &|| false).unwrap();
        verify_whole(&p).unwrap();
        assert_eq!(
            zstd::decode_all(&std::fs::read(&z).unwrap()[..]).unwrap(),
            b""
        );
    }

    #[test]
    fn sparse_file_restored_exactly() {
        const LEN: u64 = 256 << 20;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("sparse.core");
        let f = File::create(&src).unwrap();
        f.set_len(LEN).unwrap();
        let chunks: [(u64, Vec<u8>); 4] = [
            (0, b"\x7fELF".repeat(512)),
            (4096 * 1000 + 17, noise(5000, 1)),
            (100 << 20, noise(3 * 4096, 2)),
            (LEN - 3000, noise(3000, 3)),
        ];
        for (off, bytes) in &chunks {
            f.write_all_at(bytes, *off).unwrap();
        }
        drop(f);
        let on_disk = std::fs::metadata(&src).unwrap().blocks() * 512;
        eprintln!("sparse source: {LEN} bytes, {on_disk} allocated");

        let dest = dir.path().join("sparse.core.gz");
        let p = compress(&src, &dest).unwrap();
        assert_eq!(p.original_bytes, LEN);
        assert_eq!(p.original_sha256, sha256_file(&src).unwrap().1);

        // The real gunzip binary, compared by hash (256 MiB is fine on disk, not in a Vec twice).
        let restored = dir.path().join("restored");
        let status = Command::new("gunzip")
            .arg("-c")
            .arg(&dest)
            .stdout(File::create(&restored).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            sha256_file(&restored).unwrap(),
            (LEN, p.original_sha256.clone())
        );
        // And in process: check the data chunks land at their offsets, zeros elsewhere.
        let mut bytes = gunzip_in_process(&dest);
        assert_eq!(bytes.len() as u64, LEN);
        for (off, data) in &chunks {
            let at = &mut bytes[*off as usize..*off as usize + data.len()];
            assert!(at == &data[..], "chunk at {off} differs");
            at.fill(0);
        }
        assert!(bytes.iter().all(|&b| b == 0), "holes must restore as zeros");
    }

    #[test]
    fn src_missing_or_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.gz");
        let e = compress(&dir.path().join("nope"), &dest).unwrap_err();
        assert!(matches!(e, PackError::Open { .. }), "{e:?}");
        // A directory opens but cannot be read (EISDIR).
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = compress(&sub, &dest).unwrap_err();
        assert!(matches!(e, PackError::Read { .. }), "{e:?}");
        assert_eq!(entries(dir.path()), ["sub"]);
    }

    #[test]
    fn dest_dir_unusable_leaves_original() {
        // Root ignores permission bits, so make the destination's "directory" a regular file.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        std::fs::write(&src, b"core bytes").unwrap();
        let blocker = dir.path().join("some_file");
        std::fs::write(&blocker, b"").unwrap();
        let e = compress(&src, &blocker.join("x.core.gz")).unwrap_err();
        assert!(matches!(e, PackError::CreateTemp { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("cannot create a temporary file in"));
        let e = compress(&src, Path::new("/proc/corecatch-test.gz")).unwrap_err();
        assert!(matches!(e, PackError::CreateTemp { .. }), "{e:?}");
        assert_eq!(std::fs::read(&src).unwrap(), b"core bytes");
        assert_eq!(entries(dir.path()), ["core", "some_file"]);
    }

    #[test]
    fn refuses_to_pack_onto_itself() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        std::fs::write(&src, b"abc").unwrap();
        let e = compress(&src, &src).unwrap_err();
        assert!(matches!(e, PackError::SameFile { .. }), "{e:?}");
        assert_eq!(std::fs::read(&src).unwrap(), b"abc");
    }

    #[test]
    fn a_member_that_does_not_restore_its_chunk_is_caught() {
        let chunk = noise(10_000, 3);
        for codec in [Codec::Gzip, Codec::Zstd { level: 3 }] {
            let style = Style::Verified(codec);
            let check = |w: &mut Workspace, m: &[u8], e: &[u8]| match codec {
                Codec::Gzip => w.check_gzip(m, e),
                Codec::Zstd { .. } => w.check_zstd(m, e),
            };
            let mut out = Vec::new();
            let n = compress_checked(&chunk, style, &mut out).unwrap();
            let member = out[..n].to_vec();
            let mut w = Workspace::default();
            check(&mut w, &member, &chunk).unwrap();
            let mut other = chunk.clone();
            other[5000] ^= 1;
            assert!(check(&mut w, &member, &other).is_err(), "{codec:?}");
            assert!(check(&mut w, &member, &chunk[..9_999]).is_err());
            let mut bad = member.clone();
            bad[n / 2] ^= 0x55;
            assert!(check(&mut w, &bad, &chunk).is_err(), "{codec:?}");
            // Zero chunks share one member, which restores them.
            let zeros = vec![0u8; CHUNK_SIZE];
            let z = zero_member(style, CHUNK_SIZE).unwrap();
            check(&mut w, &z, &zeros).unwrap();
            assert!(
                matches!(make_member(&zeros, style, Vec::new()).unwrap(), Member::Shared(m) if *m == *z)
            );
        }
    }

    #[test]
    fn verify_rejects_wrong_expectations() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        std::fs::write(&src, b"hello core").unwrap();
        let p = compress(&src, &dir.path().join("c.gz")).unwrap();
        let open = || File::open(&p.path).unwrap();
        verify_whole(&p).unwrap();
        let wrong = Packed {
            original_sha256: sha256_hex(b"other"),
            ..p.clone()
        };
        assert!(matches!(
            verify_whole(&wrong),
            Err(PackError::Mismatch { .. })
        ));
        let part = &p.parts[0];
        let torn = Part {
            bytes: part.bytes + 1,
            ..part.clone()
        };
        assert!(matches!(
            verify_part(&open(), &torn),
            Err(PackError::Torn { .. })
        ));
        verify_part(&open(), part).unwrap();
        // Corrupt the stored bytes: they no longer restore the core.
        let mut gz = std::fs::read(&p.path).unwrap();
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        std::fs::write(&p.path, &gz).unwrap();
        assert!(verify_whole(&p).is_err());
    }

    /// Half noise, half text: compressible, but not to nothing.
    fn mixed(n: usize) -> Vec<u8> {
        let mut v = noise(n / 2, 21);
        while v.len() < n {
            v.extend_from_slice(b"frame #3 in main () at main.c:6\n");
        }
        v.truncate(n);
        v
    }

    #[test]
    fn zstd_frames_restore_the_core_and_zstd_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        let mut data = mixed(3 * CHUNK_SIZE + 77);
        data.extend(std::iter::repeat_n(0u8, 2 * CHUNK_SIZE));
        std::fs::write(&src, &data).unwrap();
        let opts = StoreOptions {
            codec: Codec::Zstd { level: 3 },
            ..StoreOptions::default()
        };
        let dest = dir.path().join("core.zst");
        let p = compress_with_progress(&src, &dest, &opts, &mut |_, _| {}, &|| false).unwrap();
        assert_eq!((p.parts.len(), p.codec.name()), (1, "zstd"));
        verify_whole(&p).unwrap();
        let out = Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .arg(&dest)
            .output()
            .expect("zstd runs (make deps installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == data, "zstd -d does not restore the core");
    }

    #[test]
    fn split_parts_are_each_valid_and_join_to_the_core() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        let data = mixed(5 * MIN_PART_SIZE as usize + 999);
        std::fs::write(&src, &data).unwrap();
        let opts = StoreOptions {
            max_part: Some(MIN_PART_SIZE),
            ..StoreOptions::default()
        };
        let dest = dir.path().join("core.gz");
        let p = compress_with_progress(&src, &dest, &opts, &mut |_, _| {}, &|| false).unwrap();
        assert!(p.parts.len() >= 3, "{:?}", p.parts);
        assert!(
            !dest.exists(),
            "a split core has no file of the whole's name"
        );
        let mut joined = Vec::new();
        for (i, part) in p.parts.iter().enumerate() {
            assert_eq!(part.path, part_path(&dest, i));
            let bytes = std::fs::read(&part.path).unwrap();
            assert!(
                bytes.len() as u64 <= MIN_PART_SIZE,
                "part {i}: {}",
                bytes.len()
            );
            assert_eq!(
                (bytes.len() as u64, sha256_hex(&bytes)),
                (part.bytes, part.sha256.clone())
            );
            // Each part is a gzip file of its own.
            let out = Command::new("gunzip")
                .args(["-t"])
                .arg(&part.path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "part {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            joined.extend_from_slice(&bytes);
        }
        assert_eq!(
            (joined.len() as u64, sha256_hex(&joined)),
            (p.bytes, p.sha256.clone())
        );
        verify_whole(&p).unwrap();
        remove_original(&src, &p).unwrap();
    }

    #[test]
    fn remove_original_checks_size() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        std::fs::write(&src, b"0123456789").unwrap();
        let p = compress(&src, &dir.path().join("core.gz")).unwrap();

        std::fs::write(&src, b"0123456789 and more").unwrap();
        let e = remove_original(&src, &p).unwrap_err();
        assert!(matches!(e, PackError::OriginalChanged { .. }), "{e:?}");
        assert!(src.exists());

        std::fs::write(&src, b"0123456789").unwrap();
        remove_original(&src, &p).unwrap();
        assert!(!src.exists());
        assert!(p.path.exists());
        let e = remove_original(&src, &p).unwrap_err();
        assert!(matches!(e, PackError::Stat { .. }), "{e:?}");
    }

    #[test]
    fn remove_original_never_removes_the_gz() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        std::fs::write(&src, b"x").unwrap();
        let mut p = compress(&src, &dir.path().join("core.gz")).unwrap();
        p.original_bytes = p.bytes; // a caller mixing up its arguments
        let e = remove_original(&p.path.clone(), &p).unwrap_err();
        assert!(matches!(e, PackError::SameFile { .. }), "{e:?}");
        assert!(p.path.exists());
    }

    /// A stop requested while packing: a typed error, no temporary file, no dest, the source
    /// as it was; asked again before the rename, so a stop at the very end stops it too.
    #[test]
    fn a_stop_request_interrupts_packing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("core");
        let data = noise(3 * CHUNK_SIZE + 123, 9);
        std::fs::write(&src, &data).unwrap();
        let dest = dir.path().join("core.gz");
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let asked = AtomicUsize::new(0);
        let count = || {
            asked.fetch_add(1, SeqCst);
            false
        };
        let opts = StoreOptions::default();
        compress_with_progress(
            &src,
            &dir.path().join("probe.gz"),
            &opts,
            &mut |_, _| {},
            &count,
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("probe.gz")).unwrap();
        let questions = asked.load(SeqCst);
        assert!(
            questions > 3,
            "asked once per buffer and before the rename: {questions}"
        );
        // Stop at the first question, in the middle, and only at the last (before the rename).
        for after in [0, questions / 2, questions - 1] {
            asked.store(0, SeqCst);
            let stop = || asked.fetch_add(1, SeqCst) >= after;
            let e = compress_with_progress(&src, &dest, &opts, &mut |_, _| {}, &stop).unwrap_err();
            assert!(matches!(e, PackError::Interrupted { .. }), "{after}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("packing {} was interrupted", src.display())
            );
            assert_eq!(
                entries(dir.path()),
                ["core"],
                "{after}: nothing left behind"
            );
            assert_eq!(
                sha256_file(&src).unwrap().1,
                sha256_hex(&data),
                "source untouched"
            );
        }
        // Never asked to stop: packs.
        compress_with_progress(
            &src,
            &dest,
            &StoreOptions::default(),
            &mut |_, _| {},
            &|| false,
        )
        .unwrap();
        assert_eq!(gunzip_in_process(&dest), data);
    }

    /// ENOSPC on a 1 MiB tmpfs: an error, no temp file, no partial dest, original intact.
    /// Skipped (with a message) where mounting is not allowed.
    #[test]
    fn disk_full() {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("tiny");
        std::fs::create_dir(&mnt).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "corecatch-test"])
            .arg(&mnt)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !mounted {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty()),
                "disk_full: cannot mount a tmpfs (the test needs root)"
            );
            eprintln!("skipping disk_full: cannot mount a tmpfs here");
            return;
        }
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(self.0).status();
            }
        }
        let _guard = Unmount(&mnt);

        let src = dir.path().join("core");
        let data = noise(4 << 20, 42);
        std::fs::write(&src, &data).unwrap();
        let e = compress(&src, &mnt.join("core.gz")).unwrap_err();
        assert!(matches!(e, PackError::Write { .. }), "{e:?}");
        let source = std::error::Error::source(&e).unwrap();
        let io = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOSPC), "{io}");
        assert!(entries(&mnt).is_empty(), "left behind: {:?}", entries(&mnt));
        assert_eq!(sha256_file(&src).unwrap().1, sha256_hex(&data));
    }
}
