//! The byte layout of an ELF core file, written from a plain description: the ELF header, one
//! PT_NOTE segment (NT_PRSTATUS per thread, NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE, NT_PRFPREG)
//! and one PT_LOAD per memory region, in the order and layout the Linux kernel uses
//! (`fs/binfmt_elf.c`: `write_note_info`, `fill_prstatus`, `fill_psinfo`, `fill_files_note`).
//!
//! No I/O of its own: memory comes through a reader callback and the core goes to any
//! `Write + Seek`. Pages the reader cannot supply, and pages that are all zeros, are skipped with
//! a seek instead of written, so on a file system with holes the core stays sparse (the kernel
//! does the same with `dump_skip`).
//!
//! Only 64-bit little-endian cores are written (x86_64 and aarch64, the machines whose register
//! sets `elf_core::regs` knows); register sets are passed as the raw bytes the kernel returns for
//! `PTRACE_GETREGSET`, so the writer needs no per-architecture table.

use std::io::{self, Seek, SeekFrom, Write};

pub use super::constants::NT_X86_XSTATE;
use super::constants::{
    ET_CORE, NT_AUXV, NT_FILE, NT_PRFPREG, NT_PRPSINFO, NT_PRSTATUS, NT_SIGINFO, PT_LOAD, PT_NOTE,
};
const PN_XNUM: usize = 0xffff;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;
/// `sizeof(siginfo_t)` on every Linux architecture.
pub const SIGINFO_SIZE: usize = 128;

/// One thread, as NT_PRSTATUS (and NT_PRFPREG) describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadDesc {
    pub tid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    /// `pr_cursig`: the signal being delivered (the fatal one on the crashing thread, else 0).
    pub cursig: u16,
    /// Pending and blocked signal masks (`SigPnd`, `SigBlk`).
    pub sigpend: u64,
    pub sighold: u64,
    /// `pr_reg`: the general-purpose registers as PTRACE_GETREGSET NT_PRSTATUS returns them.
    pub regs: Vec<u8>,
    /// NT_PRFPREG as PTRACE_GETREGSET returns it; `None` writes `pr_fpvalid = 0`.
    pub fpregs: Option<Vec<u8>>,
    /// Further register sets as `(note type, bytes)`, written in notes named "LINUX" as the
    /// kernel does (NT_X86_XSTATE).
    pub extra: Vec<(u32, Vec<u8>)>,
}

/// NT_PRPSINFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessDesc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    pub uid: u32,
    pub gid: u32,
    /// The state letter from /proc/PID/stat (`R`, `S`, `t`...).
    pub state: u8,
    pub nice: i8,
    pub flags: u64,
    /// comm; cut to 15 bytes.
    pub fname: String,
    /// The command line, arguments joined by spaces; cut to 79 bytes.
    pub psargs: String,
}

/// One file-backed mapping for NT_FILE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDesc {
    pub start: u64,
    pub end: u64,
    /// Offset in the file in bytes (a multiple of the page size).
    pub offset: u64,
    pub path: String,
}

/// One memory region: a PT_LOAD whose first `dump_size` bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentDesc {
    pub vaddr: u64,
    pub memsz: u64,
    /// How much of the region goes into the file (0, one page, or all of it).
    pub dump_size: u64,
    /// `PF_R` (4) | `PF_W` (2) | `PF_X` (1).
    pub flags: u32,
}

/// Everything a core holds except the memory contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreDesc {
    /// `e_machine` (62 x86_64, 183 aarch64).
    pub machine: u16,
    pub page_size: u64,
    /// The crashing thread first: debuggers take the first NT_PRSTATUS as the current thread.
    pub threads: Vec<ThreadDesc>,
    pub process: ProcessDesc,
    /// The fatal signal's `siginfo_t` as PTRACE_GETSIGINFO returns it (128 bytes).
    pub siginfo: Vec<u8>,
    /// /proc/PID/auxv as is.
    pub auxv: Vec<u8>,
    pub files: Vec<FileDesc>,
    pub segments: Vec<SegmentDesc>,
}

/// Counts from [`write`], for the caller's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Length of the core file.
    pub file_size: u64,
    /// Bytes of memory actually written (not holes).
    pub written: u64,
    /// Bytes the reader could not supply, left as zero-filled holes.
    pub unreadable: u64,
}

/// Reads process memory at an address into a buffer; returns how many leading bytes it filled
/// (0 when none are readable).
pub type ReadMemory<'a> = dyn FnMut(u64, &mut [u8]) -> usize + 'a;

/// What decides whether, and how much of, a memory region goes into a core: the facts the
/// kernel's `vma_dump_size` (fs/coredump.c) looks at, as /proc/PID/smaps shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmaFacts {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    /// `s` in the permissions (VM_SHARED).
    pub shared: bool,
    /// Backed by a file (a path starting with `/` and a non-zero inode).
    pub file_backed: bool,
    /// The backing file has no name left (` (deleted)`: a memfd, shm or anonymous shared
    /// mapping); the kernel's `i_nlink == 0` test.
    pub file_unlinked: bool,
    /// The region has anonymous (written, copied-on-write) pages: smaps `Anonymous:` above 0,
    /// which stands in for the kernel's `vma->anon_vma`.
    pub anon_pages: bool,
    /// `vm_pgoff == 0`: the mapping starts at the beginning of its file.
    pub maps_file_start: bool,
    /// The first page holds an ELF header, or the file is executable (`i_mode & 0111`).
    pub elf_or_executable: bool,
    /// VmFlags `dd` (VM_DONTDUMP, madvise(MADV_DONTDUMP)).
    pub dont_dump: bool,
    /// VmFlags `io` (VM_IO: device memory).
    pub io: bool,
    /// VmFlags `ht` (hugetlb).
    pub hugetlb: bool,
    /// `[vdso]` and `[vsyscall]`: always dumped whole.
    pub always: bool,
}

/// `/proc/PID/coredump_filter` bits (core(5)).
pub mod filter {
    pub const ANON_PRIVATE: u64 = 1 << 0;
    pub const ANON_SHARED: u64 = 1 << 1;
    pub const MAPPED_PRIVATE: u64 = 1 << 2;
    pub const MAPPED_SHARED: u64 = 1 << 3;
    pub const ELF_HEADERS: u64 = 1 << 4;
    pub const HUGETLB_PRIVATE: u64 = 1 << 5;
    pub const HUGETLB_SHARED: u64 = 1 << 6;
    /// The kernel's default, 0x33.
    pub const DEFAULT: u64 = ANON_PRIVATE | ANON_SHARED | ELF_HEADERS | HUGETLB_PRIVATE;
}

/// How many bytes from the start of a region the kernel would dump under `coredump_filter`
/// (the rules of `vma_dump_size`, DAX mappings aside): all, one page (the ELF header of a
/// file mapping), or none.
pub fn dump_size(v: &VmaFacts, coredump_filter: u64, page: u64) -> u64 {
    let whole = v.end.saturating_sub(v.start);
    let on = |bit: u64| coredump_filter & bit != 0;
    if v.always {
        return whole;
    }
    if v.dont_dump {
        return 0;
    }
    if v.hugetlb {
        let bit = if v.shared {
            filter::HUGETLB_SHARED
        } else {
            filter::HUGETLB_PRIVATE
        };
        return if on(bit) { whole } else { 0 };
    }
    if v.io {
        return 0;
    }
    if v.shared {
        let bit = if !v.file_backed || v.file_unlinked {
            filter::ANON_SHARED
        } else {
            filter::MAPPED_SHARED
        };
        return if on(bit) { whole } else { 0 };
    }
    if v.anon_pages && on(filter::ANON_PRIVATE) {
        return whole;
    }
    if !v.file_backed {
        return 0;
    }
    if on(filter::MAPPED_PRIVATE) {
        return whole;
    }
    if on(filter::ELF_HEADERS) && v.maps_file_start && v.readable && v.elf_or_executable {
        return page.min(whole);
    }
    0
}

fn note(out: &mut Vec<u8>, name: &str, ntype: u32, desc: &[u8]) {
    out.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ntype.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(desc);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn fixed(s: &str, n: usize) -> Vec<u8> {
    // Always NUL-terminated, as the kernel's strscpy leaves it.
    let mut b = s.as_bytes()[..s.len().min(n - 1)].to_vec();
    b.resize(n, 0);
    b
}

/// `struct elf_prstatus` (64-bit): `struct elf_siginfo` (signo, code, errno), cursig, sigpend,
/// sighold, pid, ppid, pgrp, sid, four timevals (left zero), `pr_reg`, `pr_fpvalid`.
fn prstatus(t: &ThreadDesc) -> Vec<u8> {
    let mut d = Vec::with_capacity(112 + t.regs.len() + 8);
    d.extend_from_slice(&i32::from(t.cursig).to_le_bytes()); // si_signo
    d.extend_from_slice(&0i32.to_le_bytes()); // si_code
    d.extend_from_slice(&0i32.to_le_bytes()); // si_errno
    d.extend_from_slice(&t.cursig.to_le_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(&t.sigpend.to_le_bytes());
    d.extend_from_slice(&t.sighold.to_le_bytes());
    for v in [t.tid, t.ppid, t.pgrp, t.sid] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    d.extend_from_slice(&[0u8; 64]);
    d.extend_from_slice(&t.regs);
    d.extend_from_slice(&u32::from(t.fpregs.is_some()).to_le_bytes());
    while d.len() % 8 != 0 {
        d.push(0);
    }
    d
}

/// `struct elf_prpsinfo` (64-bit).
fn prpsinfo(p: &ProcessDesc) -> Vec<u8> {
    let sname = if p.state.is_ascii_graphic() {
        p.state
    } else {
        b'.'
    };
    // pr_state is the index of the state letter in the kernel's "RSDTtXZPI" table.
    let state = b"RSDTtXZPI".iter().position(|&c| c == p.state).unwrap_or(0) as u8;
    let mut d = vec![
        state,
        sname,
        u8::from(p.state == b'Z'),
        p.nice as u8,
        0,
        0,
        0,
        0,
    ];
    d.extend_from_slice(&p.flags.to_le_bytes());
    d.extend_from_slice(&p.uid.to_le_bytes());
    d.extend_from_slice(&p.gid.to_le_bytes());
    for v in [p.pid, p.ppid, p.pgrp, p.sid] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    d.extend_from_slice(&fixed(&p.fname, 16));
    d.extend_from_slice(&fixed(&p.psargs, 80));
    d
}

/// NT_FILE: count, page size, (start, end, offset in pages) per mapping, then the paths.
fn nt_file(files: &[FileDesc], page: u64) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&(files.len() as u64).to_le_bytes());
    d.extend_from_slice(&page.to_le_bytes());
    for f in files {
        for v in [f.start, f.end, f.offset / page.max(1)] {
            d.extend_from_slice(&v.to_le_bytes());
        }
    }
    for f in files {
        d.extend_from_slice(f.path.as_bytes());
        d.push(0);
    }
    d
}

/// The PT_NOTE contents, in the kernel's order: the first thread's NT_PRSTATUS, then the
/// process-wide notes, then its NT_PRFPREG; then each other thread's NT_PRSTATUS and NT_PRFPREG.
pub fn notes(desc: &CoreDesc) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, t) in desc.threads.iter().enumerate() {
        note(&mut out, "CORE", NT_PRSTATUS, &prstatus(t));
        if i == 0 {
            note(&mut out, "CORE", NT_PRPSINFO, &prpsinfo(&desc.process));
            let mut si = desc.siginfo.clone();
            si.resize(SIGINFO_SIZE, 0);
            note(&mut out, "CORE", NT_SIGINFO, &si);
            note(&mut out, "CORE", NT_AUXV, &desc.auxv);
            if !desc.files.is_empty() {
                note(
                    &mut out,
                    "CORE",
                    NT_FILE,
                    &nt_file(&desc.files, desc.page_size),
                );
            }
        }
        if let Some(fp) = &t.fpregs {
            note(&mut out, "CORE", NT_PRFPREG, fp);
        }
        for (ntype, bytes) in &t.extra {
            note(&mut out, "LINUX", *ntype, bytes);
        }
    }
    out
}

fn phdr(out: &mut Vec<u8>, p_type: u32, flags: u32, offset: u64, seg: (u64, u64, u64), align: u64) {
    let (vaddr, filesz, memsz) = seg;
    out.extend_from_slice(&p_type.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    for v in [offset, vaddr, 0, filesz, memsz, align] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a.max(1)) * a.max(1)
}

/// Write the core described by `desc` to `out` (positioned at its start), reading memory through
/// `read`. Returns what was written; an `io::Error` comes only from `out`.
pub fn write<W: Write + Seek>(
    desc: &CoreDesc,
    read: &mut ReadMemory<'_>,
    out: &mut W,
) -> io::Result<WriteStats> {
    let page = desc.page_size.max(1);
    let notes = notes(desc);
    let phnum = desc.segments.len() + 1;
    let headers_end = EHDR_SIZE + phnum as u64 * PHDR_SIZE;
    let notes_off = headers_end;
    let mut data_off = align_up(notes_off + notes.len() as u64, page);
    let mut offsets = Vec::with_capacity(desc.segments.len());
    for s in &desc.segments {
        offsets.push(data_off);
        data_off = align_up(data_off + s.dump_size.min(s.memsz), page);
    }
    // More than 65534 segments: e_phnum says PN_XNUM and section header 0 holds the count.
    let xnum = phnum >= PN_XNUM;
    let shoff = if xnum { data_off } else { 0 };
    let file_end = if xnum { shoff + SHDR_SIZE } else { data_off };

    let mut head = Vec::with_capacity(headers_end as usize);
    head.extend_from_slice(b"\x7fELF");
    head.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE
    head.extend_from_slice(&[0u8; 8]);
    head.extend_from_slice(&ET_CORE.to_le_bytes());
    head.extend_from_slice(&desc.machine.to_le_bytes());
    head.extend_from_slice(&1u32.to_le_bytes()); // e_version
    head.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    head.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    head.extend_from_slice(&shoff.to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    head.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    head.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    head.extend_from_slice(&(phnum.min(PN_XNUM) as u16).to_le_bytes());
    head.extend_from_slice(&(if xnum { SHDR_SIZE as u16 } else { 0 }).to_le_bytes());
    head.extend_from_slice(&u16::from(xnum).to_le_bytes()); // e_shnum
    head.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    phdr(
        &mut head,
        PT_NOTE,
        0,
        notes_off,
        (0, notes.len() as u64, 0),
        0,
    );
    for (s, &off) in desc.segments.iter().zip(&offsets) {
        let filesz = s.dump_size.min(s.memsz);
        phdr(
            &mut head,
            PT_LOAD,
            s.flags,
            off,
            (s.vaddr, filesz, s.memsz),
            page,
        );
    }
    out.write_all(&head)?;
    out.write_all(&notes)?;

    let mut stats = WriteStats {
        file_size: file_end,
        ..WriteStats::default()
    };
    let mut buf = vec![0u8; page as usize];
    for (s, &off) in desc.segments.iter().zip(&offsets) {
        let filesz = s.dump_size.min(s.memsz);
        let mut done = 0;
        while done < filesz {
            let n = (filesz - done).min(page) as usize;
            let chunk = &mut buf[..n];
            chunk.fill(0);
            let got = read(s.vaddr + done, chunk).min(n);
            stats.unreadable += (n - got) as u64;
            if chunk[..got].iter().any(|&b| b != 0) {
                out.seek(SeekFrom::Start(off + done))?;
                out.write_all(&chunk[..got])?;
                stats.written += got as u64;
            }
            done += n as u64;
        }
    }
    if xnum {
        let mut sh = vec![0u8; SHDR_SIZE as usize];
        // sh_info of section header 0 is the real program header count.
        sh[44..48].copy_from_slice(&(phnum as u32).to_le_bytes());
        out.seek(SeekFrom::Start(shoff))?;
        out.write_all(&sh)?;
    } else if file_end > 0 {
        // Give the file its full length even when it ends in a hole.
        let end = out.seek(SeekFrom::End(0))?;
        if end < file_end {
            out.seek(SeekFrom::Start(file_end - 1))?;
            out.write_all(&[0])?;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf_core;
    use std::io::Cursor;

    fn regs(rip: u64, rsp: u64) -> Vec<u8> {
        let mut r = [0u64; 27];
        r[16] = rip;
        r[19] = rsp;
        r.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn desc() -> CoreDesc {
        let mut si = vec![0u8; 128];
        si[0..4].copy_from_slice(&11i32.to_le_bytes());
        si[8..12].copy_from_slice(&1i32.to_le_bytes()); // SEGV_MAPERR
        si[16..24].copy_from_slice(&0x10u64.to_le_bytes());
        let thread = |tid, cursig, rip| ThreadDesc {
            tid,
            ppid: 1,
            pgrp: 100,
            sid: 100,
            cursig,
            sigpend: 0,
            sighold: 0,
            regs: regs(rip, 0x7000_0000_1000),
            fpregs: Some(vec![0u8; 512]),
            extra: vec![(NT_X86_XSTATE, vec![0u8; 832])],
        };
        let mut auxv = Vec::new();
        for (k, v) in [(3u64, 0x40_0040u64), (6, 4096), (0, 0)] {
            auxv.extend_from_slice(&k.to_le_bytes());
            auxv.extend_from_slice(&v.to_le_bytes());
        }
        CoreDesc {
            machine: 62,
            page_size: 4096,
            threads: vec![thread(101, 11, 0x40_1000), thread(102, 0, 0x40_2000)],
            process: ProcessDesc {
                pid: 101,
                ppid: 1,
                pgrp: 100,
                sid: 100,
                uid: 1000,
                gid: 1000,
                state: b't',
                nice: 0,
                flags: 0x40_0000,
                fname: "a-very-long-command-name".into(),
                psargs: "./crash segv".into(),
            },
            siginfo: si,
            auxv,
            files: vec![FileDesc {
                start: 0x40_0000,
                end: 0x40_3000,
                offset: 0x1000,
                path: "/bin/crash".into(),
            }],
            segments: vec![
                SegmentDesc {
                    vaddr: 0x40_0000,
                    memsz: 0x3000,
                    dump_size: 0x1000,
                    flags: 5,
                },
                SegmentDesc {
                    vaddr: 0x7000_0000_0000,
                    memsz: 0x3000,
                    dump_size: 0x3000,
                    flags: 6,
                },
            ],
        }
    }

    /// Memory where page 0x7000_0000_1000 is unreadable and every other byte is its address's
    /// low byte plus one (never all zeros).
    fn reader(addr: u64, buf: &mut [u8]) -> usize {
        if (0x7000_0000_1000..0x7000_0000_2000).contains(&addr) {
            return 0;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = ((addr + i as u64) as u8).wrapping_add(1) | 1;
        }
        buf.len()
    }

    #[test]
    fn the_parser_reads_back_what_the_writer_wrote() {
        let d = desc();
        let mut out = Cursor::new(Vec::new());
        let stats = write(&d, &mut reader, &mut out).unwrap();
        let bytes = out.into_inner();
        assert_eq!(stats.file_size, bytes.len() as u64);
        assert_eq!(stats.unreadable, 0x1000);
        assert_eq!(stats.written, 0x3000);
        let core = elf_core::parse(&bytes).unwrap();
        assert!(core.warnings.is_empty(), "{:?}", core.warnings);
        assert_eq!(core.threads.len(), 2);
        assert_eq!(core.threads[0].tid, 101);
        assert_eq!(core.threads[0].cursig, 11);
        let r = core.threads[1].registers.as_ref().unwrap();
        assert_eq!(r.pc(), Some(0x40_2000));
        assert_eq!(r.sp(), Some(0x7000_0000_1000));
        let p = core.process.as_ref().unwrap();
        assert_eq!((p.pid, p.uid), (101, 1000));
        assert_eq!(p.fname, "a-very-long-com");
        assert_eq!(p.psargs, "./crash segv");
        let si = core.siginfo.as_ref().unwrap();
        assert_eq!((si.signo, si.code, si.addr), (11, 1, Some(0x10)));
        assert_eq!(core.auxv.get(6), Some(4096));
        assert_eq!(core.files.len(), 1);
        assert_eq!(core.files[0].file_offset, 0x1000);
        assert_eq!(core.files[0].path, "/bin/crash");
        // Dumped bytes read back; the unreadable page reads as zeros in the file.
        let mut b = [0u8; 4];
        assert!(core.memory.read(0x7000_0000_0010, &mut b));
        assert_eq!(b, [0x11, 0x13, 0x13, 0x15]);
        assert!(core.memory.read(0x7000_0000_1010, &mut b));
        assert_eq!(b, [0; 4]);
        // The file mapping's first page only: the rest is not in the core.
        assert!(core.memory.read(0x40_0000, &mut b));
        assert!(!core.memory.read(0x40_1000, &mut b));
    }

    #[test]
    fn a_core_ending_in_a_hole_has_its_full_length() {
        let mut d = desc();
        d.segments.truncate(1);
        d.segments.push(SegmentDesc {
            vaddr: 0x7000_0000_1000,
            memsz: 0x1000,
            dump_size: 0x1000,
            flags: 6,
        });
        let mut out = Cursor::new(Vec::new());
        let stats = write(&d, &mut reader, &mut out).unwrap();
        assert_eq!(out.get_ref().len() as u64, stats.file_size);
        assert!(elf_core::parse(out.get_ref()).unwrap().warnings.is_empty());
    }

    #[test]
    fn more_than_65534_segments_use_pn_xnum() {
        let mut d = desc();
        d.segments = (0..70_000u64)
            .map(|i| SegmentDesc {
                vaddr: 0x1000_0000 + i * 0x2000,
                memsz: 0x1000,
                dump_size: 0,
                flags: 4,
            })
            .collect();
        let mut out = Cursor::new(Vec::new());
        write(&d, &mut reader, &mut out).unwrap();
        let core = elf_core::parse(out.get_ref()).unwrap();
        assert!(core.warnings.is_empty(), "{:?}", core.warnings);
        assert_eq!(core.memory.segments().len(), 70_000);
    }
    #[test]
    fn dump_size_follows_the_kernels_rules_for_the_default_filter() {
        let base = VmaFacts {
            start: 0x1000,
            end: 0x5000,
            readable: true,
            ..VmaFacts::default()
        };
        let f = filter::DEFAULT;
        let written_anon = VmaFacts {
            anon_pages: true,
            ..base.clone()
        };
        assert_eq!(dump_size(&written_anon, f, 4096), 0x4000);
        // Anonymous but never written: no anon_vma, nothing to dump.
        assert_eq!(dump_size(&base, f, 4096), 0);
        let text = VmaFacts {
            file_backed: true,
            maps_file_start: true,
            elf_or_executable: true,
            ..base.clone()
        };
        assert_eq!(dump_size(&text, f, 4096), 4096);
        assert_eq!(dump_size(&text, f | filter::MAPPED_PRIVATE, 4096), 0x4000);
        let later_text = VmaFacts {
            maps_file_start: false,
            ..text.clone()
        };
        assert_eq!(dump_size(&later_text, f, 4096), 0);
        let data = VmaFacts {
            anon_pages: true,
            ..later_text
        };
        assert_eq!(dump_size(&data, f, 4096), 0x4000);
        let shm = VmaFacts {
            shared: true,
            file_backed: true,
            file_unlinked: true,
            ..base.clone()
        };
        assert_eq!(dump_size(&shm, f, 4096), 0x4000);
        let shared_file = VmaFacts {
            file_unlinked: false,
            ..shm
        };
        assert_eq!(dump_size(&shared_file, f, 4096), 0);
        let no_dump = VmaFacts {
            dont_dump: true,
            ..written_anon.clone()
        };
        assert_eq!(dump_size(&no_dump, f, 4096), 0);
        let vdso = VmaFacts {
            always: true,
            dont_dump: true,
            ..base
        };
        assert_eq!(dump_size(&vdso, 0, 4096), 0x4000);
        assert_eq!(dump_size(&written_anon, 0, 4096), 0);
    }
}
