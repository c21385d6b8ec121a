//! PT_NOTE decoding: NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO, NT_AUXV and NT_FILE. Floating-point and
//! xstate notes are recognised and skipped. Each note is decoded independently, so one corrupt
//! note costs only itself.

use super::bytes::{fixed_str, Reader};
use super::regs::{Machine, Registers};

use super::constants::{
    NT_AUXV, NT_FILE, NT_PRFPREG, NT_PRPSINFO, NT_PRSTATUS, NT_SIGINFO, NT_X86_XSTATE,
};

pub(crate) const AT_PHDR: u64 = 3;
pub(crate) const AT_EXECFN: u64 = 31;

/// One thread, from NT_PRSTATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStatus {
    pub tid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    /// `pr_cursig`: the signal this thread is handling (non-zero on the thread that crashed).
    pub cursig: u16,
    /// `None` when the architecture is not one whose register layout we know.
    pub registers: Option<Registers>,
}

/// The process, from NT_PRPSINFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    pub uid: u32,
    pub gid: u32,
    /// `pr_fname`: the command name (comm), at most 15 bytes.
    pub fname: String,
    /// `pr_psargs`: the command line, space-joined and cut at 80 bytes by the kernel.
    pub psargs: String,
}

/// NT_SIGINFO: the fatal signal's `siginfo_t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    /// `si_addr` for the fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP).
    pub addr: Option<u64>,
    /// `si_pid` / `si_uid` of the sender when `si_code <= 0` (sent by a process: SI_USER, SI_TKILL..).
    pub sender: Option<(i32, u32)>,
}

/// One file-backed mapping from NT_FILE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    pub start: u64,
    pub end: u64,
    /// Offset in the file, in bytes (the note stores pages).
    pub file_offset: u64,
    pub path: String,
}

/// The auxiliary vector, from NT_AUXV.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auxv(pub Vec<(u64, u64)>);

impl Auxv {
    pub fn get(&self, key: u64) -> Option<u64> {
        self.0.iter().find(|&&(k, _)| k == key).map(|&(_, v)| v)
    }
}

#[derive(Default)]
pub(crate) struct Notes {
    pub threads: Vec<ThreadStatus>,
    pub process: Option<ProcessInfo>,
    pub siginfo: Option<SigInfo>,
    pub auxv: Auxv,
    pub files: Vec<MappedFile>,
}

/// Decode every note in the PT_NOTE segment at `off..off+size` of the file.
pub(crate) fn parse_notes(
    file: &Reader<'_>,
    off: u64,
    size: u64,
    machine: Machine,
    out: &mut Notes,
    warnings: &mut Vec<String>,
) {
    let (Ok(off), Ok(size)) = (usize::try_from(off), usize::try_from(size)) else {
        warnings.push("note segment offset does not fit in memory".into());
        return;
    };
    if off.saturating_add(size) > file.data.len() {
        warnings.push(format!(
            "core is truncated: note segment at {off:#x} ({size} bytes) ends past the end of the file"
        ));
    }
    let r = file.sub(off, size);
    let mut pos = 0usize;
    while pos + 12 <= r.data.len() {
        let (Some(namesz), Some(descsz), Some(ntype)) =
            (r.u32(pos), r.u32(pos + 4), r.u32(pos + 8))
        else {
            break;
        };
        let name_off = pos + 12;
        let desc_off = name_off.saturating_add(align4(namesz as usize));
        let next = desc_off.saturating_add(align4(descsz as usize));
        let Some(desc) = r.bytes(desc_off, descsz as usize) else {
            warnings.push(format!(
                "note {} at {:#x} runs past its segment ({descsz} bytes); later notes are lost",
                note_name(ntype),
                off + pos
            ));
            break;
        };
        let d = Reader::new(desc, r.endian, r.is_64);
        let decoded = match ntype {
            NT_PRSTATUS => prstatus(&d, machine).map(|t| out.threads.push(t)),
            NT_PRPSINFO => prpsinfo(&d).map(|p| out.process = Some(p)),
            NT_SIGINFO => {
                // The first NT_SIGINFO belongs to the dumping thread; later ones to other threads.
                match siginfo(&d) {
                    Some(s) if out.siginfo.is_none() => {
                        out.siginfo = Some(s);
                        Some(())
                    }
                    Some(_) => Some(()),
                    None => None,
                }
            }
            NT_AUXV => {
                out.auxv = auxv(&d);
                Some(())
            }
            NT_FILE => nt_file(&d).map(|f| out.files = f),
            NT_PRFPREG => {
                // It follows its thread's NT_PRSTATUS.
                if let Some(r) = out.threads.last_mut().and_then(|t| t.registers.as_mut()) {
                    r.vector = fxsave_xmm(&d, machine);
                }
                Some(())
            }
            NT_X86_XSTATE => Some(()),
            _ => Some(()),
        };
        if decoded.is_none() {
            warnings.push(format!(
                "note {} at {:#x} ({descsz} bytes) could not be decoded",
                note_name(ntype),
                off + pos
            ));
        }
        pos = next;
    }
}

/// The low halves of xmm0..xmm15 from x86_64's `user_fpregs_struct` (the FXSAVE layout:
/// 32 bytes of control words, the x87 registers at 32..160, then 16 bytes per xmm register).
fn fxsave_xmm(d: &Reader<'_>, machine: Machine) -> Vec<u64> {
    let at = match machine {
        Machine::X86_64 => |i: usize| 160 + 16 * i,
        // s390's `s390_fp_regs`: fpc and a pad word, then f0..f15 (8 bytes each), where
        // leaf functions save r11 and r15.
        Machine::S390 | Machine::S390x => |i: usize| 8 + 8 * i,
        _ => return Vec::new(),
    };
    (0..16)
        .map(|i| d.u64(at(i)))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn note_name(t: u32) -> String {
    match t {
        NT_PRSTATUS => "NT_PRSTATUS".into(),
        NT_PRPSINFO => "NT_PRPSINFO".into(),
        NT_SIGINFO => "NT_SIGINFO".into(),
        NT_AUXV => "NT_AUXV".into(),
        NT_FILE => "NT_FILE".into(),
        other => format!("type {other:#x}"),
    }
}

/// `struct elf_prstatus` (64-bit): elf_siginfo (12) + cursig (2) + pad, sigpend, sighold (8 each),
/// pid, ppid, pgrp, sid at 32..48, four timevals, then `pr_reg` at 112 (72 in the 32-bit
/// layout); each register one word of the core's class.
fn prstatus(d: &Reader<'_>, machine: Machine) -> Option<ThreadStatus> {
    let registers = machine
        .pr_reg_layout(d.is_64)
        .and_then(|(names, at, size)| {
            let values = names
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let o = at + i * size;
                    let v = if size == 8 {
                        d.u64(o)
                    } else {
                        d.u32(o).map(u64::from)
                    };
                    v.map(|v| (n, v))
                })
                .collect::<Option<Vec<_>>>()?;
            let mut values = values;
            if machine == Machine::M68k {
                let (sr, pc) = super::regs::M68K_SR_PC;
                values.push(("sr", u64::from(d.u16(at + sr)?)));
                values.push(("pc", u64::from(d.u32(at + pc)?)));
            }
            Some(Registers {
                machine,
                values,
                vector: Vec::new(),
            })
        });
    if !d.is_64 {
        // 32-bit layout: cursig@12, pid@24, ppid@28, pgrp@32, sid@36; m68k's 2-byte alignment
        // leaves no padding after cursig, so its fields are 2 bytes earlier.
        let pid = if machine == Machine::M68k { 22 } else { 24 };
        return Some(ThreadStatus {
            cursig: d.u16(12)?,
            tid: d.i32(pid)?,
            ppid: d.i32(pid + 4)?,
            pgrp: d.i32(pid + 8)?,
            sid: d.i32(pid + 12)?,
            registers,
        });
    }
    Some(ThreadStatus {
        cursig: d.u16(12)?,
        tid: d.i32(32)?,
        ppid: d.i32(36)?,
        pgrp: d.i32(40)?,
        sid: d.i32(44)?,
        registers,
    })
}

/// `struct elf_prpsinfo`: state, sname, zomb, nice (1 byte each), flag (word), uid, gid, pid, ppid,
/// pgrp, sid, fname[16], psargs[80].
fn prpsinfo(d: &Reader<'_>) -> Option<ProcessInfo> {
    // 64-bit: flag at 8, uid at 16; 32-bit: flag at 4, uid at 8, 16 bits wide on i386, x32,
    // arm and sparc (a 124-byte note), 32 on ppc, s390 and mips (128 bytes).
    if !d.is_64 {
        let (uid, gid, at) = if d.data.len() >= 128 {
            (d.u32(8)?, d.u32(12)?, 16)
        } else {
            (u32::from(d.u16(8)?), u32::from(d.u16(10)?), 12)
        };
        return Some(ProcessInfo {
            uid,
            gid,
            pid: d.i32(at)?,
            ppid: d.i32(at + 4)?,
            pgrp: d.i32(at + 8)?,
            sid: d.i32(at + 12)?,
            fname: fixed_str(d.bytes(at + 16, 16)?),
            psargs: fixed_str(d.bytes(at + 32, 80)?).trim_end().to_string(),
        });
    }
    Some(ProcessInfo {
        uid: d.u32(16)?,
        gid: d.u32(20)?,
        pid: d.i32(24)?,
        ppid: d.i32(28)?,
        pgrp: d.i32(32)?,
        sid: d.i32(36)?,
        fname: fixed_str(d.bytes(40, 16)?),
        psargs: fixed_str(d.bytes(56, 80)?).trim_end().to_string(),
    })
}

/// `siginfo_t`: signo, errno, code, then (after alignment padding on 64-bit) the union.
fn siginfo(d: &Reader<'_>) -> Option<SigInfo> {
    let signo = d.i32(0)?;
    let errno = d.i32(4)?;
    let code = d.i32(8)?;
    let union = if d.is_64 { 16 } else { 12 };
    let fault = matches!(signo, 4 | 5 | 7 | 8 | 11); // SIGILL SIGTRAP SIGBUS SIGFPE SIGSEGV
    let addr = if fault && code > 0 {
        d.word(union)
    } else {
        None
    };
    let sender = if code <= 0 {
        Some((d.i32(union)?, d.u32(union + 4)?))
    } else {
        None
    };
    Some(SigInfo {
        signo,
        errno,
        code,
        addr,
        sender,
    })
}

fn auxv(d: &Reader<'_>) -> Auxv {
    let w = d.word_size();
    let mut v = Vec::new();
    let mut i = 0;
    while let (Some(k), Some(val)) = (d.word(i), d.word(i + w)) {
        if k == 0 {
            break; // AT_NULL
        }
        v.push((k, val));
        i += 2 * w;
    }
    Auxv(v)
}

/// NT_FILE: count, page_size, count × (start, end, pgoff), then count NUL-terminated paths.
fn nt_file(d: &Reader<'_>) -> Option<Vec<MappedFile>> {
    let w = d.word_size();
    let count = usize::try_from(d.word(0)?).ok()?;
    let page = d.word(w)?;
    // Each entry needs 3 words plus at least one byte of name: reject absurd counts up front.
    if count.checked_mul(3 * w + 1)? > d.data.len() {
        return None;
    }
    let names_at = 2 * w + count * 3 * w;
    let mut names = d.data.get(names_at..)?.split(|&c| c == 0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let e = 2 * w + i * 3 * w;
        let start = d.word(e)?;
        let end = d.word(e + w)?;
        let pgoff = d.word(e + 2 * w)?;
        let path = String::from_utf8_lossy(names.next()?).into_owned();
        out.push(MappedFile {
            start,
            end,
            file_offset: pgoff.saturating_mul(page),
            path,
        });
    }
    Some(out)
}
