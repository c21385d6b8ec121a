//! Pure parsing of Linux ELF core files over `&[u8]`: the ELF header, PT_LOAD segments (a memory
//! view) and the PT_NOTE notes (threads, process, signal, auxv, mapped files).
//!
//! Nothing here does I/O. Every field is read at an explicit offset in the core's own byte order
//! and word size (never `#[repr(C)]` host structs), and the CPU architecture comes from `e_machine`,
//! never from the host. A damaged core yields as much as can be read plus warnings: truncation,
//! an unknown note layout or a bad count never panics and never fails the parts that are intact.

pub(crate) mod bytes;
pub(crate) mod constants;
pub(crate) mod headers;
mod memory;
mod notes;
pub mod regs;
pub mod scrub;
mod start_info;
pub mod writer;

pub use bytes::Endian;
pub use memory::{Memory, Segment};
pub use notes::{Auxv, MappedFile, ProcessInfo, SigInfo, ThreadStatus};
pub use regs::{Machine, Registers};
pub use start_info::{StartInfo, StrAt};

use bytes::Reader;
use headers::Phdr;

use constants::{ET_CORE, PT_LOAD, PT_NOTE};

/// Why a file is not a core we can read at all. Anything less severe is a warning in
/// [`Core::warnings`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreParseError {
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    #[error("ELF file is not a core dump (e_type {0}, expected 4 = ET_CORE)")]
    NotCore(u16),
    #[error("unsupported ELF class {0} or data encoding {1}")]
    BadIdent(u8, u8),
    #[error("ELF header is truncated ({0} bytes)")]
    TruncatedHeader(usize),
}

/// A parsed core: borrowed bytes plus the decoded metadata.
#[derive(Debug)]
pub struct Core<'a> {
    /// The machine the core was made on, from `e_machine`.
    pub machine: Machine,
    /// Byte order of every multi-byte field in the core.
    pub endian: Endian,
    /// 64-bit (`ELFCLASS64`) or 32-bit core.
    pub is_64: bool,
    /// The process's memory as the core holds it.
    pub memory: Memory<'a>,
    /// One entry per NT_PRSTATUS note, in note order (the kernel puts the dumping thread first).
    pub threads: Vec<ThreadStatus>,
    /// NT_PRPSINFO, when present and readable.
    pub process: Option<ProcessInfo>,
    /// NT_SIGINFO of the first thread (the signal that killed the process).
    pub siginfo: Option<SigInfo>,
    /// NT_AUXV.
    pub auxv: Auxv,
    /// NT_FILE: every file-backed mapping.
    pub files: Vec<MappedFile>,
    /// Size of the core in bytes as given to [`parse`].
    pub size: u64,
    /// Everything that was odd but not fatal, as lowercase sentence fragments.
    pub warnings: Vec<String>,
}

impl Core<'_> {
    /// The thread that received the fatal signal: the first NT_PRSTATUS whose `pr_cursig` is set,
    /// else the first thread (the kernel writes the dumping thread first).
    pub fn crashed_thread(&self) -> Option<&ThreadStatus> {
        self.threads
            .iter()
            .find(|t| t.cursig != 0)
            .or_else(|| self.threads.first())
    }

    /// The signal number that killed the process: NT_SIGINFO, else the crashed thread's cursig.
    pub fn signal(&self) -> Option<i32> {
        self.siginfo
            .as_ref()
            .map(|s| s.signo)
            .or_else(|| self.crashed_thread().map(|t| t.cursig as i32))
            .filter(|&s| s > 0)
    }

    /// The executable path: the auxv's AT_EXECFN string read from the core's memory, else the
    /// NT_FILE mapping that contains AT_PHDR, else the first NT_FILE entry.
    pub fn executable(&self) -> Option<String> {
        if let Some(execfn) = self.auxv.get(notes::AT_EXECFN) {
            if let Some(s) = self.memory.read_cstr(execfn, 4096) {
                if !s.is_empty() {
                    // AT_EXECFN is the path as passed to execve (can be relative, "./dump");
                    // prefer the absolute NT_FILE path of the same file when there is one.
                    if let Some(abs) = self.main_mapping_path() {
                        return Some(abs);
                    }
                    return Some(s);
                }
            }
        }
        self.main_mapping_path()
            .or_else(|| self.files.first().map(|f| f.path.clone()))
    }

    /// A pointer-sized word of the process (4 bytes in an ELF32 core, 8 in an ELF64 one).
    pub fn read_word(&self, addr: u64) -> Option<u64> {
        if self.is_64 {
            self.memory.read_u64(addr)
        } else {
            self.memory.read_u32(addr).map(u64::from)
        }
    }

    fn main_mapping_path(&self) -> Option<String> {
        let phdr = self.auxv.get(notes::AT_PHDR)?;
        self.files
            .iter()
            .find(|f| f.start <= phdr && phdr < f.end)
            .map(|f| f.path.clone())
    }
}

/// Parse a core from its bytes. Only a missing ELF header or a non-core ELF is an error; damage
/// past the header becomes warnings.
pub fn parse(data: &[u8]) -> Result<Core<'_>, CoreParseError> {
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Err(CoreParseError::NotElf);
    }
    let (class, encoding) = (data[4], data[5]);
    let is_64 = match class {
        1 => false,
        2 => true,
        _ => return Err(CoreParseError::BadIdent(class, encoding)),
    };
    let endian = match encoding {
        1 => Endian::Little,
        2 => Endian::Big,
        _ => return Err(CoreParseError::BadIdent(class, encoding)),
    };
    let r = Reader::new(data, endian, is_64);
    let ehsize = if is_64 { 64 } else { 52 };
    if data.len() < ehsize {
        return Err(CoreParseError::TruncatedHeader(data.len()));
    }
    let e_type = r.u16(16).unwrap_or(0);
    if e_type != ET_CORE {
        return Err(CoreParseError::NotCore(e_type));
    }
    let machine = Machine::from_header(r.u16(18).unwrap_or(0), is_64);
    let (phoff, phentsize, phnum) = if is_64 {
        (r.u64(32), r.u16(54), r.u16(56))
    } else {
        (r.u32(28).map(u64::from), r.u16(42), r.u16(44))
    };
    let mut warnings = Vec::new();
    let phoff = phoff.unwrap_or(0);
    let phentsize = u64::from(phentsize.unwrap_or(0));
    let mut phnum = u64::from(phnum.unwrap_or(0));
    if phnum == 0xffff {
        // PN_XNUM: the real count is in section header 0's sh_info.
        match pn_xnum(&r, is_64) {
            Some(n) => phnum = n,
            None => {
                warnings.push(
                    "program header count is PN_XNUM but section header 0 is unreadable".into(),
                );
                phnum = 0;
            }
        }
    }
    let min_ent = if is_64 { 56 } else { 32 };
    if phentsize < min_ent {
        warnings.push(format!(
            "program header entry size {phentsize} is too small"
        ));
        phnum = 0;
    }

    let mut segments = Vec::new();
    let mut note_ranges = Vec::new();
    for i in 0..phnum {
        let Some(off) = phoff.checked_add(i.saturating_mul(phentsize)) else {
            break;
        };
        let Some(ph) = Phdr::read(&r, off) else {
            warnings.push(format!(
                "core is truncated: program header {i} of {phnum} lies past the end of the file"
            ));
            break;
        };
        match ph.p_type {
            PT_LOAD => segments.push(Segment {
                vaddr: ph.vaddr,
                memsz: ph.memsz,
                offset: ph.offset,
                filesz: ph.filesz,
                flags: ph.flags,
            }),
            PT_NOTE => note_ranges.push((ph.offset, ph.filesz)),
            _ => {}
        }
    }
    let memory = Memory::new(data, endian, segments);
    if let Some(missing) = memory.truncated_bytes() {
        warnings.push(format!(
            "core is truncated: {missing} bytes of dumped memory lie past its end ({} bytes)",
            data.len()
        ));
    }

    let mut parsed = notes::Notes::default();
    for (off, size) in note_ranges {
        notes::parse_notes(&r, off, size, machine, &mut parsed, &mut warnings);
    }
    if parsed.threads.is_empty() {
        warnings.push("core has no readable NT_PRSTATUS note: no thread registers".into());
    }
    Ok(Core {
        machine,
        endian,
        is_64,
        memory,
        threads: parsed.threads,
        process: parsed.process,
        siginfo: parsed.siginfo,
        auxv: parsed.auxv,
        files: parsed.files,
        size: data.len() as u64,
        warnings,
    })
}

fn pn_xnum(r: &Reader<'_>, is_64: bool) -> Option<u64> {
    let shoff = if is_64 { r.u64(40)? } else { r.u32(32)?.into() };
    let o = usize::try_from(shoff).ok()?;
    // sh_info is at offset 44 of a 64-bit section header, 28 of a 32-bit one.
    let info = if is_64 {
        r.u32(o + 44)?
    } else {
        r.u32(o + 28)?
    };
    Some(info.into())
}

/// Cheap check used by scanners: does this file start like an ELF core? Reads only the first
/// 18 bytes.
pub fn looks_like_core(head: &[u8]) -> bool {
    if head.len() < 18 || &head[..4] != b"\x7fELF" {
        return false;
    }
    let e_type = match head[5] {
        1 => u16::from_le_bytes([head[16], head[17]]),
        2 => u16::from_be_bytes([head[16], head[17]]),
        _ => return false,
    };
    e_type == ET_CORE
}

#[cfg(test)]
mod tests;
