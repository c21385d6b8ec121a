//! The ptrace capture's snapshot: the core of a traced process stopped at its fatal signal,
//! made from its registers (PTRACE_GETREGSET, PTRACE_GETSIGINFO) and its /proc files (stat,
//! status, cmdline, auxv, smaps, coredump_filter, mem). Memory is chosen by the kernel's rules
//! (`elf_core::writer::dump_size`) and the file written by `elf_core::writer::write`. The tracer
//! that stops the process and calls [`write_core`] is `sys::ptrace`.

use crate::elf_core::writer::{
    self, CoreDesc, FileDesc, ProcessDesc, SegmentDesc, ThreadDesc, VmaFacts,
};
use crate::sys::ptrace::{getregset, getsiginfo, status_field, status_mask, Captured, Stopped};
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Why a core could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {path} of pid {pid}")]
    ReadProc {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the registers of thread {tid}")]
    Registers {
        tid: i32,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the core of pid {pid} to {path}")]
    WriteCore {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ptrace capture does not support this CPU architecture")]
    Architecture,
}

#[cfg(target_arch = "x86_64")]
const E_MACHINE: Option<u16> = Some(62);
#[cfg(target_arch = "aarch64")]
const E_MACHINE: Option<u16> = Some(183);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const E_MACHINE: Option<u16> = None;

/// Register sets beyond NT_PRSTATUS/NT_PRFPREG that the kernel puts in its cores and gdb reads.
#[cfg(target_arch = "x86_64")]
const EXTRA_REGSETS: &[u32] = &[writer::NT_X86_XSTATE];
#[cfg(not(target_arch = "x86_64"))]
const EXTRA_REGSETS: &[u32] = &[];

fn read_proc(pid: i32, what: &str) -> Result<Vec<u8>, CaptureError> {
    let path = PathBuf::from(format!("/proc/{pid}/{what}"));
    fs::read(&path).map_err(|source| CaptureError::ReadProc { pid, path, source })
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(stat: &str) -> (String, Vec<&str>) {
    let open = stat.find('(').unwrap_or(0);
    let close = stat.rfind(')').unwrap_or(stat.len());
    let comm = stat.get(open + 1..close).unwrap_or("").to_string();
    let rest = stat.get(close + 1..).unwrap_or("");
    (comm, rest.split_whitespace().collect())
}

/// Writes the core of the stopped process `s` into `dir` (or, when `dir` cannot be created, the
/// temporary directory) as `core.<pid>.ptrace`, from its registers (ptrace) and its /proc files.
pub fn write_core(s: &Stopped, dir: &Path) -> Result<Captured, CaptureError> {
    let (tgid, crashed, sig, tids) = (s.tgid, s.crashed, s.signal, s.tids.as_slice());
    let machine = E_MACHINE.ok_or(CaptureError::Architecture)?;
    let mut warnings = Vec::new();
    let stat_raw = String::from_utf8_lossy(&read_proc(tgid, "stat")?).into_owned();
    let (comm, f) = stat_fields(&stat_raw);
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let status = String::from_utf8_lossy(&read_proc(tgid, "status")?).into_owned();
    let first_id =
        |k| status_field(&status, k).and_then(|v| v.split_whitespace().next()?.parse().ok());
    let mut cmdline = read_proc(tgid, "cmdline").unwrap_or_default();
    if cmdline.last() == Some(&0) {
        cmdline.pop();
    }
    for b in &mut cmdline {
        if *b == 0 {
            *b = b' ';
        }
    }
    let (ppid, pgrp, sid) = (num(1) as i32, num(2) as i32, num(3) as i32);
    let process = ProcessDesc {
        pid: tgid,
        ppid,
        pgrp,
        sid,
        uid: first_id("Uid").unwrap_or(0),
        gid: first_id("Gid").unwrap_or(0),
        state: f.first().and_then(|s| s.bytes().next()).unwrap_or(b'R'),
        nice: num(16) as i8,
        flags: num(6) as u64,
        fname: comm,
        psargs: String::from_utf8_lossy(&cmdline).into_owned(),
    };

    let mut threads = Vec::new();
    for &t in tids {
        let regs = match getregset(t, libc::NT_PRSTATUS as u32) {
            Ok(r) => r,
            Err(source) if t == crashed => return Err(CaptureError::Registers { tid: t, source }),
            Err(e) => {
                warnings.push(format!(
                    "thread {t} left out: cannot read its registers: {e}"
                ));
                continue;
            }
        };
        let tstatus =
            fs::read_to_string(format!("/proc/{tgid}/task/{t}/status")).unwrap_or_default();
        threads.push(ThreadDesc {
            tid: t,
            ppid,
            pgrp,
            sid,
            cursig: if t == crashed { sig as u16 } else { 0 },
            sigpend: status_mask(&tstatus, "SigPnd"),
            sighold: status_mask(&tstatus, "SigBlk"),
            regs,
            fpregs: getregset(t, libc::NT_PRFPREG as u32).ok(),
            extra: EXTRA_REGSETS
                .iter()
                .filter_map(|&nt| getregset(t, nt).ok().map(|b| (nt, b)))
                .collect(),
        });
    }
    let siginfo = getsiginfo(crashed).map_err(|source| CaptureError::Registers {
        tid: crashed,
        source,
    })?;
    let auxv = read_proc(tgid, "auxv")?;
    let smaps = String::from_utf8_lossy(&read_proc(tgid, "smaps")?).into_owned();
    let filter = read_proc(tgid, "coredump_filter")
        .ok()
        .and_then(|b| u64::from_str_radix(String::from_utf8_lossy(&b).trim(), 16).ok())
        .unwrap_or(writer::filter::DEFAULT);
    let page = crate::sys::page_size() as u64;
    let mem_path = PathBuf::from(format!("/proc/{tgid}/mem"));
    let mem = fs::File::open(&mem_path).map_err(|source| CaptureError::ReadProc {
        pid: tgid,
        path: mem_path,
        source,
    })?;
    let read_mem = |addr: u64, buf: &mut [u8]| -> usize {
        let mut n = 0;
        while n < buf.len() {
            match mem.read_at(&mut buf[n..], addr + n as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        n
    };
    let vmas = parse_smaps(&smaps);
    // [vsyscall] is dumped whole but is execute-only on current kernels: its page reads as
    // zeros in the kernel's core too, so it is not worth a warning.
    let expected_unreadable: u64 = vmas
        .iter()
        .filter(|v| v.path == "[vsyscall]")
        .map(|v| v.facts.end - v.facts.start)
        .sum();
    let mut segments = Vec::with_capacity(vmas.len());
    let mut files = Vec::new();
    for v in &vmas {
        let mut facts = v.facts.clone();
        if facts.file_backed && facts.maps_file_start && facts.readable {
            let mut magic = [0u8; 4];
            let executable = fs::metadata(&v.path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                .unwrap_or(false);
            facts.elf_or_executable =
                executable || (read_mem(facts.start, &mut magic) == 4 && &magic == b"\x7fELF");
        }
        segments.push(SegmentDesc {
            vaddr: facts.start,
            memsz: facts.end - facts.start,
            dump_size: writer::dump_size(&facts, filter, page),
            flags: v.flags,
        });
        if facts.file_backed {
            files.push(FileDesc {
                start: facts.start,
                end: facts.end,
                offset: v.offset,
                path: v.path.clone(),
            });
        }
    }
    let desc = CoreDesc {
        machine,
        page_size: page,
        threads,
        process,
        siginfo,
        auxv,
        files,
        segments,
    };
    let write_err = |path: &Path, source| CaptureError::WriteCore {
        pid: tgid,
        path: path.to_path_buf(),
        source,
    };
    // The artifacts directory, else the temporary directory (the core is moved into the
    // artifacts or reported where it is, as a kernel core would be).
    let tmp = std::env::temp_dir();
    let dir = match fs::create_dir_all(dir) {
        Ok(()) => dir,
        Err(_) => {
            fs::create_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
            tmp.as_path()
        }
    };
    let mut path = dir.join(format!("core.{tgid}.ptrace"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("core.{tgid}.ptrace.{n}"));
        n += 1;
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| write_err(&path, e))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    let mut reader = read_mem;
    let stats = writer::write(&desc, &mut reader, &mut out)
        .and_then(|s| io::Write::flush(&mut out).map(|_| s))
        .map_err(|e| write_err(&path, e))?;
    if stats.unreadable > expected_unreadable {
        warnings.push(format!(
            "{} bytes of memory could not be read and are zeros in the core",
            stats.unreadable
        ));
    }
    Ok(Captured {
        pid: tgid,
        path,
        warnings,
    })
}

struct Vma {
    facts: VmaFacts,
    flags: u32,
    offset: u64,
    path: String,
}

/// /proc/PID/smaps: a maps-style header line per region, then `Key: value` lines.
fn parse_smaps(text: &str) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(first) = it.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = it.next().unwrap_or("----").as_bytes().to_vec();
                let offset = it
                    .next()
                    .and_then(|o| u64::from_str_radix(o, 16).ok())
                    .unwrap_or(0);
                let _dev = it.next();
                let inode: u64 = it.next().and_then(|i| i.parse().ok()).unwrap_or(0);
                // The path is the rest of the line after the inode, spaces included.
                let path = line
                    .splitn(6, char::is_whitespace)
                    .nth(5)
                    .unwrap_or("")
                    .trim_start()
                    .to_string();
                let p = |i: usize, c: u8| perms.get(i) == Some(&c);
                let file_backed = inode != 0 && path.starts_with('/');
                out.push(Vma {
                    facts: VmaFacts {
                        start,
                        end,
                        readable: p(0, b'r'),
                        shared: p(3, b's'),
                        file_backed,
                        file_unlinked: path.ends_with(" (deleted)"),
                        maps_file_start: offset == 0,
                        always: path == "[vdso]" || path == "[vsyscall]",
                        ..VmaFacts::default()
                    },
                    flags: u32::from(p(0, b'r')) * 4
                        + u32::from(p(1, b'w')) * 2
                        + u32::from(p(2, b'x')),
                    offset,
                    path,
                });
                continue;
            }
        }
        let Some(v) = out.last_mut() else { continue };
        match first {
            "Anonymous:" => v.facts.anon_pages = it.next().is_some_and(|n| n != "0"),
            "VmFlags:" => {
                for flag in it {
                    match flag {
                        "dd" => v.facts.dont_dump = true,
                        "io" => v.facts.io = true,
                        "ht" => v.facts.hugetlb = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_regions_and_flags() {
        let text = "\
00400000-00401000 r--p 00000000 08:01 1234                               /usr/bin/a prog
Size:                  4 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
Anonymous:            12 kB
VmFlags: rd wr mr mw me ac sd
7f1000000000-7f1000001000 rw-s 00000000 00:01 99                         /dev/zero (deleted)
Anonymous:             0 kB
VmFlags: rd wr sh mr mw me ms sd dd
";
        let v = parse_smaps(text);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].path, "/usr/bin/a prog");
        assert!(v[0].facts.file_backed && v[0].facts.maps_file_start && !v[0].facts.anon_pages);
        assert_eq!(v[0].flags, 4);
        assert!(!v[1].facts.file_backed && v[1].facts.anon_pages);
        assert_eq!(v[1].flags, 6);
        assert!(v[2].facts.shared && v[2].facts.file_unlinked && v[2].facts.dont_dump);
    }

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let (comm, f) = stat_fields("42 (a (b) c) t 1 42 42 0 -1 4194560 0");
        assert_eq!(comm, "a (b) c");
        assert_eq!(f[0], "t");
        assert_eq!(f[1], "1");
    }
}
