//! Synthetic cores written from the kernel's struct definitions (not from the parser's own
//! offsets), so a wrong offset table in the parser is caught.

use super::*;

fn note(out: &mut Vec<u8>, name: &[u8], ntype: u32, desc: &[u8]) {
    out.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ntype.to_le_bytes());
    out.extend_from_slice(name);
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(desc);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// `struct elf_prstatus` for x86_64, field by field.
fn prstatus(tid: i32, cursig: u16, rip: u64, rsp: u64) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&0i32.to_le_bytes()); // si_signo
    d.extend_from_slice(&0i32.to_le_bytes()); // si_code
    d.extend_from_slice(&0i32.to_le_bytes()); // si_errno
    d.extend_from_slice(&cursig.to_le_bytes()); // pr_cursig
    d.extend_from_slice(&[0, 0]); // padding to 8
    d.extend_from_slice(&0u64.to_le_bytes()); // pr_sigpend
    d.extend_from_slice(&0u64.to_le_bytes()); // pr_sighold
    for v in [tid, 1, tid, tid] {
        d.extend_from_slice(&v.to_le_bytes()); // pid ppid pgrp sid
    }
    d.extend_from_slice(&[0u8; 64]); // 4 × struct timeval
    let mut regs = [0u64; 27];
    regs[4] = 0x7ffd_0000_1000; // rbp
    regs[16] = rip;
    regs[19] = rsp;
    for r in regs {
        d.extend_from_slice(&r.to_le_bytes());
    }
    d.extend_from_slice(&1i32.to_le_bytes()); // pr_fpvalid
    d.extend_from_slice(&[0u8; 4]);
    assert_eq!(d.len(), 336, "sizeof(struct elf_prstatus) on x86_64");
    d
}

fn prpsinfo(pid: i32, fname: &str, args: &str) -> Vec<u8> {
    let mut d = vec![b'R', b'R', 0, 0, 0, 0, 0, 0]; // state sname zomb nice + pad
    d.extend_from_slice(&0x40_0000u64.to_le_bytes()); // pr_flag
    d.extend_from_slice(&1000u32.to_le_bytes()); // uid
    d.extend_from_slice(&1001u32.to_le_bytes()); // gid
    for v in [pid, 1, pid, pid] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    let mut f = [0u8; 16];
    f[..fname.len()].copy_from_slice(fname.as_bytes());
    d.extend_from_slice(&f);
    let mut a = [0u8; 80];
    a[..args.len()].copy_from_slice(args.as_bytes());
    d.extend_from_slice(&a);
    assert_eq!(d.len(), 136, "sizeof(struct elf_prpsinfo) on x86_64");
    d
}

const STACK: u64 = 0x7ffd_0000_0000;
const EXECFN: u64 = STACK + 0x800;

fn synth_core() -> Vec<u8> {
    let mut notes = Vec::new();
    note(
        &mut notes,
        b"CORE",
        1,
        &prstatus(4242, 11, 0x40_1136, STACK + 0x100),
    );
    note(
        &mut notes,
        b"CORE",
        3,
        &prpsinfo(4242, "crash", "./crash --flag "),
    );
    let mut si = vec![0u8; 128];
    si[0..4].copy_from_slice(&11i32.to_le_bytes());
    si[8..12].copy_from_slice(&1i32.to_le_bytes()); // SEGV_MAPERR
    si[16..24].copy_from_slice(&0xdeadu64.to_le_bytes());
    note(&mut notes, b"CORE", 0x5349_4749, &si);
    let mut av = Vec::new();
    for (k, v) in [(3u64, 0x40_0040u64), (31, EXECFN), (0, 0)] {
        av.extend_from_slice(&k.to_le_bytes());
        av.extend_from_slice(&v.to_le_bytes());
    }
    note(&mut notes, b"CORE", 6, &av);
    let mut nf = Vec::new();
    for v in [
        2u64,
        4096,
        0x40_0000,
        0x40_1000,
        0,
        0x7f00_0000_0000,
        0x7f00_0000_2000,
        3,
    ] {
        nf.extend_from_slice(&v.to_le_bytes());
    }
    nf.extend_from_slice(b"/tmp/crash\0/usr/lib/libc.so.6\0");
    note(&mut notes, b"CORE", 0x4649_4c45, &nf);
    note(&mut notes, b"CORE", 2, &[0u8; 512]); // NT_PRFPREG, skipped
    note(
        &mut notes,
        b"CORE",
        1,
        &prstatus(4243, 0, 0x40_2000, STACK + 0x200),
    );

    let phnum = 2u16;
    let notes_off = 64 + 56 * phnum as u64;
    let load_off = (notes_off + notes.len() as u64 + 4095) & !4095;
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // ELFDATA2LSB
    f[6] = 1;
    f[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&phnum.to_le_bytes());
    let phdr = |t: u32, flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
        let mut p = Vec::new();
        p.extend_from_slice(&t.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        for v in [off, vaddr, 0, filesz, memsz, 4096] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    };
    f.extend(phdr(4, 0, notes_off, 0, notes.len() as u64, 0));
    // 4 KiB of stack in the file, 8 KiB in memory: the second page is not in the core.
    f.extend(phdr(1, 6, load_off, STACK, 4096, 8192));
    f.extend_from_slice(&notes);
    f.resize(load_off as usize, 0);
    let mut stack = vec![0u8; 4096];
    stack[0x100..0x108].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    stack[0x800..0x80b].copy_from_slice(b"/tmp/crash\0");
    f.extend_from_slice(&stack);
    f
}

#[test]
fn parses_every_note_of_a_synthetic_core() {
    let data = synth_core();
    let core = parse(&data).unwrap();
    assert_eq!(core.machine, Machine::X86_64);
    assert!(core.warnings.is_empty(), "{:?}", core.warnings);
    assert_eq!(core.threads.len(), 2);
    let t = core.crashed_thread().unwrap();
    assert_eq!(t.tid, 4242);
    assert_eq!(t.cursig, 11);
    let regs = t.registers.as_ref().unwrap();
    assert_eq!(regs.pc(), Some(0x40_1136));
    assert_eq!(regs.sp(), Some(STACK + 0x100));
    assert_eq!(regs.fp(), Some(0x7ffd_0000_1000));
    let p = core.process.as_ref().unwrap();
    assert_eq!((p.pid, p.uid, p.gid), (4242, 1000, 1001));
    assert_eq!(p.fname, "crash");
    assert_eq!(p.psargs, "./crash --flag");
    let si = core.siginfo.as_ref().unwrap();
    assert_eq!((si.signo, si.code, si.addr), (11, 1, Some(0xdead)));
    assert_eq!(core.signal(), Some(11));
    assert_eq!(core.files.len(), 2);
    assert_eq!(core.files[1].path, "/usr/lib/libc.so.6");
    assert_eq!(core.files[1].file_offset, 3 * 4096);
    assert_eq!(core.executable().as_deref(), Some("/tmp/crash"));
    assert_eq!(core.threads[1].tid, 4243);
}

#[test]
fn memory_past_filesz_is_unreadable_not_zero() {
    let data = synth_core();
    let core = parse(&data).unwrap();
    assert_eq!(
        core.memory.read_u64(STACK + 0x100),
        Some(0x1122_3344_5566_7788)
    );
    assert_eq!(
        core.memory.read_u64(STACK + 4096),
        None,
        "second page is not dumped"
    );
    assert_eq!(
        core.memory.read_u64(STACK + 4092),
        None,
        "straddles the dumped end"
    );
    assert_eq!(core.memory.read_u64(STACK - 8), None);
    assert!(core.memory.segment_at(STACK + 5000).is_some());
}

#[test]
fn truncation_at_every_offset_never_panics() {
    let data = synth_core();
    for cut in 0..data.len() {
        match parse(&data[..cut]) {
            Ok(core) => {
                if cut < data.len() {
                    assert!(
                        !core.warnings.is_empty(),
                        "cut at {cut} produced no warning"
                    );
                }
                let _ = core.crashed_thread();
                let _ = core.executable();
                let _ = core.memory.read_u64(STACK + 0x100);
            }
            Err(e) => assert!(
                cut < 64 || matches!(e, CoreParseError::TruncatedHeader(_)),
                "{e}"
            ),
        }
    }
}

#[test]
fn corrupt_note_sizes_lose_only_that_note() {
    let mut data = synth_core();
    // Corrupt the NT_FILE note's count to a huge value.
    let nf_type = 0x4649_4c45u32.to_le_bytes();
    let at = data.windows(4).position(|w| w == nf_type).unwrap();
    let desc = at + 4 + 8; // type, then "CORE\0" padded to 8
    data[desc..desc + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let core = parse(&data).unwrap();
    assert!(core.files.is_empty());
    assert!(
        core.warnings.iter().any(|w| w.contains("NT_FILE")),
        "{:?}",
        core.warnings
    );
    assert_eq!(core.threads.len(), 2, "later notes still decoded");
}

#[test]
fn rejects_non_cores() {
    assert_eq!(
        parse(b"hello world, not elf").unwrap_err(),
        CoreParseError::NotElf
    );
    let mut exe = synth_core();
    exe[16] = 2; // ET_EXEC
    assert_eq!(parse(&exe).unwrap_err(), CoreParseError::NotCore(2));
    assert!(looks_like_core(&synth_core()[..18]));
    assert!(!looks_like_core(&exe[..18]));
}

#[test]
fn reads_argv_and_envp_from_a_real_layout() {
    // A stack laid out as execve does: argc, argv, NULL, envp, NULL, auxv, then the strings.
    let mut data = synth_core();
    let base = data.len() - 4096; // file offset of STACK
    let words: [u64; 10] = [
        2,             // argc
        STACK + 0x900, // argv[0]
        STACK + 0x908, // argv[1]
        0,             // end of argv
        STACK + 0x910, // envp[0]
        0,             // end of envp
        3,             // AT_PHDR (same pairs as NT_AUXV)
        0x40_0040,
        31, // AT_EXECFN
        EXECFN,
    ];
    for (i, w) in words.iter().enumerate() {
        let o = base + 0x400 + i * 8;
        data[o..o + 8].copy_from_slice(&w.to_le_bytes());
    }
    data[base + 0x900..base + 0x907].copy_from_slice(b"./prog\0");
    data[base + 0x908..base + 0x90d].copy_from_slice(b"-v x\0");
    data[base + 0x910..base + 0x91d].copy_from_slice(b"CORECATCH=ab\0");
    let core = parse(&data).unwrap();
    let info = core.start_info().unwrap();
    assert_eq!(info.argv, ["./prog", "-v x"]);
    assert_eq!(info.envp, ["CORECATCH=ab"]);
    assert!(core.started_with_env("CORECATCH=ab"));
    assert!(!core.started_with_env("CORECATCH=a"));
}

/// m68k's `struct elf_prstatus`, written field by field as its 2-byte alignment lays it out:
/// no padding after `pr_cursig`, so `pr_pid` is at 22 and `pr_reg` at 70 (big-endian).
#[test]
fn m68k_prstatus_is_read_with_two_byte_alignment() {
    let mut d = Vec::new();
    d.extend_from_slice(&6i32.to_be_bytes()); // si_signo
    d.extend_from_slice(&0i32.to_be_bytes()); // si_code
    d.extend_from_slice(&0i32.to_be_bytes()); // si_errno
    d.extend_from_slice(&6u16.to_be_bytes()); // pr_cursig, then at once:
    d.extend_from_slice(&0u32.to_be_bytes()); // pr_sigpend
    d.extend_from_slice(&0u32.to_be_bytes()); // pr_sighold
    assert_eq!(d.len(), 22);
    for v in [777i32, 1, 777, 777] {
        d.extend_from_slice(&v.to_be_bytes()); // pid, ppid, pgrp, sid
    }
    d.extend_from_slice(&[0u8; 32]); // four timevals
    assert_eq!(d.len(), 70);
    for i in 0..17u32 {
        // d1..d7, a0..a6, d0, usp, orig_d0
        let v = if i == 15 { 0xefff_f000 } else { i };
        d.extend_from_slice(&v.to_be_bytes());
    }
    d.extend_from_slice(&0u16.to_be_bytes()); // stkadj
    d.extend_from_slice(&0x2700u16.to_be_bytes()); // sr
    d.extend_from_slice(&0x8000_0454u32.to_be_bytes()); // pc
    d.extend_from_slice(&[0u8; 4]); // fmtvec, __fill
    d.extend_from_slice(&0u32.to_be_bytes()); // pr_fpvalid
    assert_eq!(d.len(), 154);
    let mut notes = Vec::new();
    let be_note = |out: &mut Vec<u8>, ntype: u32, desc: &[u8]| {
        out.extend_from_slice(&5u32.to_be_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_be_bytes());
        out.extend_from_slice(&ntype.to_be_bytes());
        out.extend_from_slice(b"CORE\0\0\0\0");
        out.extend_from_slice(desc);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    be_note(&mut notes, 1, &d);
    let mut f = vec![0u8; 52];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 1; // ELFCLASS32
    f[5] = 2; // ELFDATA2MSB
    f[6] = 1;
    f[16..18].copy_from_slice(&4u16.to_be_bytes()); // ET_CORE
    f[18..20].copy_from_slice(&4u16.to_be_bytes()); // EM_68K
    f[28..32].copy_from_slice(&52u32.to_be_bytes()); // e_phoff
    f[40..42].copy_from_slice(&52u16.to_be_bytes());
    f[42..44].copy_from_slice(&32u16.to_be_bytes());
    f[44..46].copy_from_slice(&1u16.to_be_bytes());
    for v in [4u32, 84, 0, 0, notes.len() as u32, 0, 0, 4] {
        f.extend_from_slice(&v.to_be_bytes()); // PT_NOTE
    }
    f.extend_from_slice(&notes);
    let core = parse(&f).unwrap();
    assert_eq!(core.machine, Machine::M68k);
    assert_eq!(core.machine.name(core.is_64, true), "m68k");
    let t = &core.threads[0];
    assert_eq!((t.tid, t.ppid, t.cursig), (777, 1, 6));
    let r = t.registers.as_ref().unwrap();
    assert_eq!(r.pc(), Some(0x8000_0454));
    assert_eq!(r.sp(), Some(0xefff_f000));
    assert_eq!(r.get("d1"), Some(0));
    assert_eq!(r.get("sr"), Some(0x2700));
}
