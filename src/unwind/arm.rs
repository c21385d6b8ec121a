//! 32-bit ARM (EABI: armhf, armel) specifics: DWARF register numbers (r0-r15), the EHABI
//! unwind tables (`.ARM.exidx` searched by function start, the compact and GCC personality
//! entries of `.ARM.extab`, and the unwind-instruction interpreter of ARM IHI 0038 §10.3),
//! the Thumb/Thumb-2/ARM prologue reader for functions without tables, the
//! `sigframe`/`rt_sigframe` layouts as glibc's `__default_sa_restorer` /
//! `__default_rt_sa_restorer` and the kernel's sigpage trampolines (ARM, Thumb or Thumb-2)
//! find them, and the Thumb bit stripped from every code address. Order per step: a signal
//! trampoline, DWARF CFI (`.debug_frame` of `-g` builds), EHABI, then the prologue (from the
//! function's symbol). Parsing takes bytes and does no I/O.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
};
use crate::elf_core::Registers;

/// DWARF register numbers (the ARM DWARF ABI): r0..r15 are 0..15; the return address column
/// of GCC's CIEs is 14 (lr).
const DWARF_NAMES: [&str; 16] = [
    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "sp", "lr",
    "pc",
];
const SP: usize = 13;
const LR: usize = 14;
const PC: usize = 15;
/// r0-r3 and r12 (ip): a call clobbers them (AAPCS).
const CALLER_SAVED: [usize; 5] = [0, 1, 2, 3, 12];

/// A code address without the Thumb bit (bit 0 of an interworking address).
fn code_addr(a: u64) -> u64 {
    a & !1
}

fn from_core(regs: &Registers) -> Regs {
    DWARF_NAMES.iter().map(|n| regs.get(n)).collect()
}

// ---------------------------------------------------------------------------------------
// Signal frames.

/// `mov r7, #119` (sigreturn) / `mov r7, #173` (rt_sigreturn), ARM encoding; then any `svc`
/// (glibc's is `svc 0`, 0xef000000; the kernel's sigpage has the OABI-compatible 0xef9000nn).
const ARM_MOV_R7_SIGRETURN: u32 = 0xe3a0_7077;
const ARM_MOV_R7_RT_SIGRETURN: u32 = 0xe3a0_70ad;
/// `movs r7, #119` / `movs r7, #173` (16-bit Thumb, the kernel's sigpage), then `svc 0`.
const THUMB_MOVS_R7_SIGRETURN: u16 = 0x2777;
const THUMB_MOVS_R7_RT_SIGRETURN: u16 = 0x27ad;
/// `mov.w r7, #119` / `mov.w r7, #173` (32-bit Thumb-2: Debian's armhf glibc), then `svc 0`.
const THUMB2_MOV_R7: u16 = 0xf04f;
const THUMB2_SIGRETURN: u16 = 0x0777;
const THUMB2_RT_SIGRETURN: u16 = 0x07ad;
const THUMB_SVC_0: u16 = 0xdf00;

/// From the trampoline's stack pointer: a `sigframe` starts with its `ucontext` (uc_flags,
/// uc_link, the 12-byte uc_stack, then uc_mcontext, a `struct sigcontext` whose trap_no,
/// error_code and oldmask precede arm_r0..arm_pc); an `rt_sigframe` puts the 128-byte siginfo
/// before the same `sigframe`.
const SIGCONTEXT_R0: u64 = 20 + 12;
const RT_SIGCONTEXT_R0: u64 = 128 + SIGCONTEXT_R0;

/// Which trampoline (if any) is at `pc`: `Some(true)` for the rt one.
fn sigreturn_kind(code: &dyn MemoryReader, pc: u64) -> Option<bool> {
    let pc = code_addr(pc);
    let be = code.big_endian();
    let half = |i: u64| -> Option<u16> {
        let mut b = [0u8; 2];
        code.read(pc.checked_add(2 * i)?, &mut b).then_some(if be {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let (h0, h1) = (half(0)?, half(1)?);
    // 16-bit Thumb.
    match (h0, h1) {
        (THUMB_MOVS_R7_SIGRETURN, THUMB_SVC_0) => return Some(false),
        (THUMB_MOVS_R7_RT_SIGRETURN, THUMB_SVC_0) => return Some(true),
        _ => {}
    }
    // Thumb-2.
    if h0 == THUMB2_MOV_R7 && half(2) == Some(THUMB_SVC_0) {
        match h1 {
            THUMB2_SIGRETURN => return Some(false),
            THUMB2_RT_SIGRETURN => return Some(true),
            _ => {}
        }
    }
    // ARM: two words, the `svc` (cond AL) being 0xef000000 | imm24.
    let word = |lo: u16, hi: u16| {
        if be {
            (u32::from(lo) << 16) | u32::from(hi)
        } else {
            (u32::from(hi) << 16) | u32::from(lo)
        }
    };
    let w1 = word(half(2)?, half(3)?);
    if w1 >> 24 != 0xef {
        return None;
    }
    match word(h0, h1) {
        ARM_MOV_R7_SIGRETURN => Some(false),
        ARM_MOV_R7_RT_SIGRETURN => Some(true),
        _ => None,
    }
}

/// r0..r15 as the kernel saved them, from `arm_r0`'s address.
fn regs_from_sigcontext(r0: u64, stack: &dyn MemoryReader) -> Option<Regs> {
    (0..16u64)
        .map(|i| {
            stack
                .read_u32(r0.checked_add(4 * i)?)
                .map(u64::from)
                .map(Some)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// EHABI tables.

fn read_u32(data: &[u8], off: u64, big_endian: bool) -> Option<u32> {
    let off = usize::try_from(off).ok()?;
    let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// A prel31 offset (bits 0-30, sign-extended) from `place`.
fn prel31(place: u64, w: u32) -> u64 {
    let off = i64::from(((w << 1) as i32) >> 1);
    place.wrapping_add_signed(off) & 0xffff_ffff
}

/// What an `.ARM.exidx` entry says about its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExidxEntry {
    /// `EXIDX_CANTUNWIND`: the function cannot be unwound (the walk ends).
    CantUnwind,
    /// The compact model word itself (bit 31 set).
    Inline(u32),
    /// The SVMA of the function's `.ARM.extab` entry.
    Table(u64),
}

const EXIDX_CANTUNWIND: u32 = 1;

/// The entry of the function containing `svma`: the last of the sorted 8-byte entries whose
/// function starts at or below it. Returns the function's start SVMA too.
pub(crate) fn exidx_lookup(
    data: &[u8],
    exidx_svma: u64,
    svma: u64,
    big_endian: bool,
) -> Option<(u64, ExidxEntry)> {
    let n = data.len() / 8;
    let start = |i: usize| -> Option<u64> {
        let place = exidx_svma.wrapping_add(8 * i as u64);
        Some(prel31(place, read_u32(data, 8 * i as u64, big_endian)?))
    };
    // partition_point by hand: the entries are sorted by function start.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if start(mid)? <= svma {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let i = lo.checked_sub(1)?;
    let fn_start = start(i)?;
    let w1 = read_u32(data, 8 * i as u64 + 4, big_endian)?;
    let entry = if w1 == EXIDX_CANTUNWIND {
        ExidxEntry::CantUnwind
    } else if w1 & 0x8000_0000 != 0 {
        ExidxEntry::Inline(w1)
    } else {
        ExidxEntry::Table(prel31(exidx_svma.wrapping_add(8 * i as u64 + 4), w1))
    };
    Some((fn_start, entry))
}

/// Why EHABI cannot unwind a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EhabiError {
    /// `EXIDX_CANTUNWIND` or the "refuse to unwind" instruction: the outermost frame.
    CantUnwind,
    /// No entry, a malformed one, or a spare/reserved instruction.
    Bad,
    /// A register the instructions pop is not in the core.
    Unreadable,
}

/// The unwind instruction bytes of a compact-model word `w` (bit 31 set) whose extra words
/// (for personalities 1 and 2) follow at `more`.
fn compact_bytes(
    w: u32,
    more: impl Fn(u64) -> Option<u32>,
    inline: bool,
) -> Result<Vec<u8>, EhabiError> {
    let b = w.to_be_bytes();
    match (w >> 24) & 0x0f {
        0 => Ok(b[1..].to_vec()),
        1 | 2 if !inline => {
            let extra = u64::from(b[1]);
            let mut v = b[2..].to_vec();
            for k in 0..extra {
                v.extend_from_slice(&more(k).ok_or(EhabiError::Bad)?.to_be_bytes());
            }
            Ok(v)
        }
        _ => Err(EhabiError::Bad),
    }
}

/// The unwind instructions of `entry`, from the module's `.ARM.extab` for a table entry.
pub(crate) fn instructions(
    entry: ExidxEntry,
    extab: Option<(&[u8], u64)>,
    big_endian: bool,
) -> Result<Vec<u8>, EhabiError> {
    match entry {
        ExidxEntry::CantUnwind => Err(EhabiError::CantUnwind),
        ExidxEntry::Inline(w) => compact_bytes(w, |_| None, true),
        ExidxEntry::Table(svma) => {
            let (data, base) = extab.ok_or(EhabiError::Bad)?;
            let off = svma.checked_sub(base).ok_or(EhabiError::Bad)?;
            let word = |k: u64| read_u32(data, off.checked_add(4 * k)?, big_endian);
            let w0 = word(0).ok_or(EhabiError::Bad)?;
            if w0 & 0x8000_0000 != 0 {
                return compact_bytes(w0, |k| word(1 + k), false);
            }
            // A generic personality routine's prel31, then (GCC's __gcc/__gxx_personality_v0)
            // a word whose top byte counts the extra words and whose low 3 bytes are the
            // first instructions.
            let w1 = word(1).ok_or(EhabiError::Bad)?;
            let b = w1.to_be_bytes();
            let mut v = b[1..].to_vec();
            for k in 0..u64::from(b[0]) {
                v.extend_from_slice(&word(2 + k).ok_or(EhabiError::Bad)?.to_be_bytes());
            }
            Ok(v)
        }
    }
}

/// Run EHABI unwind instructions on `regs` (r0-r15; r13 is the starting vsp): the caller's
/// registers, with r13 the final vsp and r15 the popped pc, else lr. One pass over at most
/// the bytes given: garbage cannot loop.
pub(crate) fn execute(
    insns: &[u8],
    regs: &[Option<u64>],
    stack: &dyn MemoryReader,
) -> Result<Regs, EhabiError> {
    let mut r: Regs = regs.iter().copied().take(16).collect();
    r.resize(16, None);
    let mut vsp = r[SP].ok_or(EhabiError::Unreadable)?;
    let mut pc_popped = false;
    let mut it = insns.iter().copied();
    let pop = |vsp: &mut u64, r: &mut Regs, mask: u16, base: usize| -> Result<(), EhabiError> {
        let mut new_sp = None;
        for bit in 0..16 {
            if mask & (1 << bit) != 0 {
                let v = stack.read_u32(*vsp).ok_or(EhabiError::Unreadable)?;
                let reg = base + bit;
                if reg == SP {
                    new_sp = Some(u64::from(v));
                }
                r[reg] = Some(u64::from(v));
                *vsp = vsp.wrapping_add(4) & 0xffff_ffff;
            }
        }
        if let Some(s) = new_sp {
            *vsp = s;
        }
        Ok(())
    };
    while let Some(op) = it.next() {
        match op {
            0x00..=0x3f => vsp = vsp.wrapping_add((u64::from(op & 0x3f) << 2) + 4),
            0x40..=0x7f => vsp = vsp.wrapping_sub((u64::from(op & 0x3f) << 2) + 4),
            0x80..=0x8f => {
                let lo = it.next().ok_or(EhabiError::Bad)?;
                let mask = (u16::from(op & 0x0f) << 8) | u16::from(lo);
                if mask == 0 {
                    return Err(EhabiError::CantUnwind);
                }
                pop(&mut vsp, &mut r, mask, 4)?;
                pc_popped |= mask & (1 << (PC - 4)) != 0;
            }
            0x9d | 0x9f => return Err(EhabiError::Bad),
            0x90..=0x9f => vsp = r[usize::from(op & 0x0f)].ok_or(EhabiError::Unreadable)?,
            0xa0..=0xaf => {
                let n = op & 0x07;
                let mut mask = (1u16 << (n + 1)) - 1; // r4..r(4+n)
                if op & 0x08 != 0 {
                    mask |= 1 << (LR - 4);
                }
                pop(&mut vsp, &mut r, mask, 4)?;
            }
            0xb0 => break,
            0xb1 => {
                let m = it.next().ok_or(EhabiError::Bad)?;
                if m == 0 || m & 0xf0 != 0 {
                    return Err(EhabiError::Bad);
                }
                pop(&mut vsp, &mut r, u16::from(m), 0)?;
            }
            0xb2 => {
                let mut v: u64 = 0;
                let mut shift = 0;
                loop {
                    let b = it.next().ok_or(EhabiError::Bad)?;
                    if shift > 28 {
                        return Err(EhabiError::Bad);
                    }
                    v |= u64::from(b & 0x7f) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                vsp = vsp.wrapping_add(0x204 + (v << 2));
            }
            // FSTMFDX: d[ssss]..d[ssss+cccc], 8 bytes each plus a pad word.
            0xb3 => {
                let sc = it.next().ok_or(EhabiError::Bad)?;
                vsp = vsp.wrapping_add(8 * (u64::from(sc & 0x0f) + 1) + 4);
            }
            0xb4..=0xb7 => return Err(EhabiError::Bad),
            0xb8..=0xbf => vsp = vsp.wrapping_add(8 * (u64::from(op & 0x07) + 1) + 4),
            // iWMMX wR[10]..wR[10+nnn].
            0xc0..=0xc5 => vsp = vsp.wrapping_add(8 * (u64::from(op & 0x07) + 1)),
            // iWMMX wR[ssss]..wR[ssss+cccc]; VPUSH d[16+ssss].. and d[ssss]...
            0xc6 | 0xc8 | 0xc9 => {
                let sc = it.next().ok_or(EhabiError::Bad)?;
                vsp = vsp.wrapping_add(8 * (u64::from(sc & 0x0f) + 1));
            }
            // iWMMX wCGR registers under a mask.
            0xc7 => {
                let m = it.next().ok_or(EhabiError::Bad)?;
                if m == 0 || m & 0xf0 != 0 {
                    return Err(EhabiError::Bad);
                }
                vsp = vsp.wrapping_add(4 * u64::from(m.count_ones()));
            }
            // VPUSH d[8]..d[8+nnn].
            0xd0..=0xd7 => vsp = vsp.wrapping_add(8 * (u64::from(op & 0x07) + 1)),
            _ => return Err(EhabiError::Bad),
        }
        vsp &= 0xffff_ffff;
    }
    if !pc_popped {
        r[PC] = r[LR];
    }
    r[SP] = Some(vsp & 0xffff_ffff);
    Ok(r)
}

/// One EHABI step in `module` for the code at `lookup_avma`.
fn ehabi_step(
    module: &UnwindModule<'_>,
    lookup_avma: u64,
    regs: &Regs,
    stack: &dyn MemoryReader,
) -> Result<Regs, EhabiError> {
    let cfi = module.cfi;
    let exidx = cfi.arm_exidx.as_ref().ok_or(EhabiError::Bad)?;
    let svma = lookup_avma.wrapping_sub(module.bias) & 0xffff_ffff;
    let (_, entry) = exidx_lookup((*exidx.data).as_ref(), exidx.svma, svma, cfi.big_endian)
        .ok_or(EhabiError::Bad)?;
    let extab = cfi.arm_extab.as_ref().map(|s| ((*s.data).as_ref(), s.svma));
    let insns = instructions(entry, extab, cfi.big_endian)?;
    execute(&insns, regs, stack)
}

// ---------------------------------------------------------------------------------------
// Prologue analysis: functions without unwind tables (glibc's abort() has none).

/// What a prologue did to the stack: `off` bytes pushed or reserved below the entry sp,
/// where each saved register sits (bytes below the entry sp) and, when the frame pointer (r7
/// in Thumb code, r11 in ARM code) was set from sp, how far below the entry sp it points.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Prologue {
    pub off: u64,
    pub saved: [Option<u64>; 16],
    pub fp: Option<(usize, u64)>,
}

impl Prologue {
    /// A push of the registers in `mask` (lowest register at the lowest address).
    fn push(&mut self, mask: u16) {
        let n = u64::from(mask.count_ones());
        self.off += 4 * n;
        let mut slot = self.off;
        for reg in 0..16 {
            if mask & (1 << reg) != 0 {
                self.saved[reg] = Some(slot);
                slot -= 4;
            }
        }
    }
}

/// Instructions a prologue is read for, at most.
const PROLOGUE_INSNS: usize = 64;

/// `ThumbExpandImm` of a 12-bit modified immediate (i:imm3:imm8).
fn thumb_expand_imm(imm12: u32) -> u32 {
    let imm8 = imm12 & 0xff;
    if imm12 >> 10 == 0 {
        match (imm12 >> 8) & 3 {
            0 => imm8,
            1 => (imm8 << 16) | imm8,
            2 => (imm8 << 24) | (imm8 << 8),
            _ => imm8 * 0x0101_0101,
        }
    } else {
        (0x80 | (imm12 & 0x7f)).rotate_right(imm12 >> 7)
    }
}

/// Read the Thumb prologue from `start` up to `pc` (exclusive), stopping at the first branch
/// or return: pushes, `sub sp`, `vpush`, and r7 set from sp.
pub(crate) fn thumb_prologue(code: &dyn MemoryReader, start: u64, pc: u64) -> Prologue {
    let mut p = Prologue::default();
    let mut a = start;
    let half = |a: u64| code.read_uint(a, 2).map(|v| v as u16);
    for _ in 0..PROLOGUE_INSNS {
        if a >= pc {
            break;
        }
        let Some(h) = half(a) else { break };
        if h >> 11 >= 0b11101 {
            let Some(h2) = half(a + 2) else { break };
            let (h, h2) = (u32::from(h), u32::from(h2));
            let imm12 = ((h & 0x0400) << 1) | ((h2 & 0x7000) >> 4) | (h2 & 0xff);
            if h == 0xe92d && h2 & 0xa000 == 0 {
                p.push(h2 as u16); // push.w {rlist}
            } else if h == 0xf84d && h2 & 0x0fff == 0x0d04 {
                p.push(1 << (h2 >> 12)); // str.w rt, [sp, #-4]!
            } else if (h & 0xffbf == 0xed2d) && (h2 & 0x0e00 == 0x0a00) {
                p.off += 4 * u64::from(h2 & 0xff); // vpush
            } else if h & 0xfbef == 0xf1ad && h2 & 0x8f00 == 0x0d00 {
                p.off += u64::from(thumb_expand_imm(imm12)); // sub.w sp, sp, #c
            } else if h & 0xfbff == 0xf2ad && h2 & 0x8f00 == 0x0d00 {
                p.off += u64::from(imm12); // subw sp, sp, #imm12
            } else if h & 0xfbef == 0xf10d && h2 & 0x8f00 == 0x0700 {
                // add.w r7, sp, #c
                p.fp = Some((7, p.off.wrapping_sub(u64::from(thumb_expand_imm(imm12)))));
            } else if (0xf000..0xf800).contains(&h) && h2 & 0x8000 != 0 {
                break; // b.w, bl, blx
            } else if h == 0xe8bd || (h & 0xfff0 == 0xf8d0 && h2 >> 12 == 15) {
                break; // pop.w, ldr.w pc
            }
            a += 4;
            continue;
        }
        match h {
            0xb400..=0xb5ff => p.push((h & 0xff) | ((h & 0x100) << 6)), // push {rlist, lr}
            0xb080..=0xb0ff => p.off += 4 * u64::from(h & 0x7f),        // sub sp, #imm
            0x466f => p.fp = Some((7, p.off)),                          // mov r7, sp
            0xaf00..=0xafff => p.fp = Some((7, p.off.wrapping_sub(4 * u64::from(h & 0xff)))),
            // b<cond>, svc, b, bx/blx, cbz/cbnz, pop, add sp (an epilogue).
            0xd000..=0xe7ff | 0x4700..=0x47ff | 0xbc00..=0xbdff | 0xb000..=0xb07f => break,
            _ if h & 0xf500 == 0xb100 => break,
            _ => {}
        }
        a += 2;
    }
    p
}

/// Read the ARM-state prologue from `start` up to `pc` (exclusive), as [`thumb_prologue`]
/// does (the frame pointer is r11).
pub(crate) fn arm_prologue(code: &dyn MemoryReader, start: u64, pc: u64) -> Prologue {
    let mut p = Prologue::default();
    let mut a = start;
    for _ in 0..PROLOGUE_INSNS {
        if a >= pc {
            break;
        }
        let Some(w) = code.read_u32(a) else { break };
        let rot = |w: u32| (w & 0xff).rotate_right(2 * ((w >> 8) & 0xf));
        if w & 0xffff_0000 == 0xe92d_0000 {
            p.push(w as u16); // push {rlist}
        } else if w & 0xffff_0fff == 0xe52d_0004 {
            p.push(1 << ((w >> 12) & 0xf)); // str rt, [sp, #-4]!
        } else if w & 0xfff0_0000 == 0xe240_0000 && w & 0x000f_f000 == 0x000d_d000 {
            p.off += u64::from(rot(w)); // sub sp, sp, #imm
        } else if w & 0xffbf_0e00 == 0xed2d_0a00 {
            p.off += 4 * u64::from(w & 0xff); // vpush
        } else if w & 0xffff_f000 == 0xe28d_b000 {
            p.fp = Some((11, p.off.wrapping_sub(u64::from(rot(w))))); // add fp, sp, #imm
        } else if w == 0xe1a0_b00d {
            p.fp = Some((11, p.off)); // mov fp, sp
        } else if w & 0x0e00_0000 == 0x0a00_0000
            || w & 0x0fff_fff0 == 0x012f_ff10
            || w & 0x0fff_fff0 == 0x012f_ff30
            || (w & 0x0e10_0000 == 0x0810_0000 && w & 0x8000 != 0)
        {
            break; // b, bl, bx, blx, ldm with pc
        }
        a += 4;
    }
    p
}

/// The caller's registers from a prologue read at `func` (its start, Thumb bit included)
/// for a frame whose registers are `regs`. Without a saved lr only a leaf (frame 0) can be
/// unwound: its return address is still in lr.
fn prologue_step(
    regs: &Regs,
    func: u64,
    pc: u64,
    first: bool,
    code: &dyn MemoryReader,
    stack: &dyn MemoryReader,
) -> Option<Regs> {
    let start = code_addr(func);
    let p = if func & 1 != 0 {
        thumb_prologue(code, start, pc)
    } else {
        arm_prologue(code, start, pc)
    };
    if p.saved[LR].is_none() && !first {
        return None;
    }
    let entry_sp = match p.fp {
        Some((reg, below)) => regs[reg]?.wrapping_add(below),
        None => regs[SP]?.wrapping_add(p.off),
    } & 0xffff_ffff;
    let mut r = regs.clone();
    for (reg, below) in p.saved.iter().enumerate() {
        if let Some(b) = below {
            r[reg] = Some(u64::from(stack.read_u32(entry_sp.wrapping_sub(*b))?));
        }
    }
    r[SP] = Some(entry_sp);
    r[PC] = r[LR];
    Some(r)
}

/// The start (Thumb bit included) of the function holding `svma`, from the module's symbols.
fn function_start(functions: &[u64], svma: u64) -> Option<u64> {
    let i = functions.partition_point(|&f| code_addr(f) <= svma);
    functions.get(i.checked_sub(1)?).copied()
}

// ---------------------------------------------------------------------------------------
// The walk.

/// The ARM rules for [`super::walk`].
pub(crate) struct Arm;

impl Arch for Arm {
    /// A leaf function need not push anything: its caller's sp is its own.
    const SAME_SP: bool = true;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let mut r = from_core(regs);
        let pc = code_addr(r[PC]?);
        r[PC] = Some(pc);
        let sp = r[SP]?;
        Some((r, pc, sp))
    }

    fn is_sigreturn(&self, code: &dyn MemoryReader, pc: u64) -> bool {
        sigreturn_kind(code, pc).is_some()
    }

    fn step(
        &self,
        regs: &Regs,
        frame: &RawFrame,
        first: bool,
        modules: &[UnwindModule<'_>],
        stack: &dyn MemoryReader,
        code: &dyn MemoryReader,
    ) -> Result<Step, StopReason> {
        step(regs, frame, first, modules, stack, code)
    }

    fn in_caller(&self, regs: &Regs) -> Regs {
        let mut known = regs.clone();
        known.resize(DWARF_NAMES.len(), None);
        clobber(known, CALLER_SAVED)
    }
}

/// A step to the caller whose registers are `r`, its pc the Thumb-bit-less r15.
fn step_to(mut r: Regs, trust: FrameTrust, next_is_ip: bool, cfa: Option<u64>) -> Step {
    r.resize(DWARF_NAMES.len().max(r.len()), None);
    r[PC] = r[PC].map(code_addr);
    Step {
        pc: r[PC],
        sp: r[SP],
        regs: r,
        trust,
        next_is_ip,
        cfa,
    }
}

fn step(
    regs: &Regs,
    frame: &RawFrame,
    first: bool,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
    code: &dyn MemoryReader,
) -> Result<Step, StopReason> {
    if frame.signal_trampoline {
        let rt = sigreturn_kind(code, frame.address.pc()).unwrap_or(true);
        let r0 = frame.sp + if rt { RT_SIGCONTEXT_R0 } else { SIGCONTEXT_R0 };
        return regs_from_sigcontext(r0, stack)
            .map(|r| step_to(r, FrameTrust::SignalContext, true, None))
            .ok_or(StopReason::UnreadableStack);
    }
    let lookup = frame.address.lookup();
    let Some(m) = module_at(modules, lookup) else {
        if first {
            // The pc is outside every module (a call through a bad pointer): the return
            // address is still in lr.
            if let Some(lr) = regs[LR]
                .map(code_addr)
                .filter(|&lr| module_at(modules, lr).is_some())
            {
                let mut r = regs.clone();
                r[PC] = Some(lr);
                return Ok(step_to(r, FrameTrust::FramePointer, false, regs[SP]));
            }
        }
        return Err(StopReason::NoUnwindInfo);
    };
    match cfi_step(m, lookup, regs, 4, gimli::Vendor::Default, stack) {
        Ok(s) => {
            if s.ra_undefined {
                return Err(StopReason::EndOfStack);
            }
            let trust = s.trust();
            let mut r = s.regs;
            r.resize(DWARF_NAMES.len().max(r.len()), None);
            // The caller's sp is the CFA, its pc the return address (the lr column).
            r[SP] = Some(s.cfa);
            r[PC] = s.ra;
            return Ok(step_to(r, trust, s.signal_frame, Some(s.cfa)));
        }
        Err(CfiError::NoInfo) => {}
        Err(e) => return Err(e.into()),
    }
    let err = match ehabi_step(m, lookup, regs, stack) {
        Ok(r) => {
            let cfa = r[SP];
            return Ok(step_to(r, FrameTrust::Cfi, false, cfa));
        }
        Err(e) => e,
    };
    // No table, or the linker's EXIDX_CANTUNWIND filling a gap between tables: read the
    // prologue, as gdb does (a real outermost frame such as `_start` saves no lr, so it still
    // ends the walk).
    let svma = lookup.wrapping_sub(m.bias) & 0xffff_ffff;
    if let Some(func) = function_start(&m.cfi.arm_functions, svma) {
        let func_avma = func.wrapping_add(m.bias) & 0xffff_ffff;
        if let Some(r) = prologue_step(regs, func_avma, frame.address.pc(), first, code, stack) {
            let cfa = r[SP];
            return Ok(step_to(r, FrameTrust::FramePointer, false, cfa));
        }
    }
    match err {
        EhabiError::CantUnwind => Err(StopReason::EndOfStack),
        EhabiError::Unreadable => Err(StopReason::UnreadableStack),
        EhabiError::Bad => Err(StopReason::NoUnwindInfo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian stack of 32-bit words from `base`.
    struct Stack {
        base: u64,
        words: Vec<u32>,
    }

    impl MemoryReader for Stack {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let Some(off) = addr.checked_sub(self.base) else {
                return false;
            };
            let off = off as usize;
            match bytes.get(off..off + buf.len()) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
    }

    fn regs_with_sp(sp: u64, lr: u64) -> Regs {
        let mut r: Regs = (0..16).map(|i| Some(0x100 + i)).collect();
        r[SP] = Some(sp);
        r[LR] = Some(lr);
        r
    }

    /// An exidx entry at `place` for a function at `func` with word 1 `w1`.
    fn entry(place: u32, func: u32, w1: u32) -> [u8; 8] {
        let w0 = func.wrapping_sub(place) & 0x7fff_ffff;
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&w0.to_le_bytes());
        e[4..].copy_from_slice(&w1.to_le_bytes());
        e
    }

    #[test]
    fn exidx_finds_the_function_by_start() {
        let base = 0x2000u32;
        let mut data = Vec::new();
        data.extend(entry(base, 0x1000, 0x80a8_b0b0));
        data.extend(entry(base + 8, 0x1100, EXIDX_CANTUNWIND));
        // A table entry: prel31 from word 1's place (base+20) to 0x3000.
        data.extend(entry(base + 16, 0x1200, 0x3000 - (base + 20)));
        // A function below the exidx (negative prel31).
        let look = |a| exidx_lookup(&data, u64::from(base), a, false);
        assert_eq!(look(0xfff), None);
        assert_eq!(
            look(0x1000),
            Some((0x1000, ExidxEntry::Inline(0x80a8_b0b0)))
        );
        assert_eq!(
            look(0x10ff),
            Some((0x1000, ExidxEntry::Inline(0x80a8_b0b0)))
        );
        assert_eq!(look(0x1100), Some((0x1100, ExidxEntry::CantUnwind)));
        assert_eq!(look(0x1234), Some((0x1200, ExidxEntry::Table(0x3000))));
        assert_eq!(look(0xffff_0000), Some((0x1200, ExidxEntry::Table(0x3000))));
        // Truncated and empty tables answer without panicking.
        assert_eq!(exidx_lookup(&data[..7], 0x2000, 0x1000, false), None);
        assert_eq!(exidx_lookup(&[], 0x2000, 0x1000, false), None);
        assert!(exidx_lookup(&data[..12], 0x2000, 0x1050, false).is_some());
    }

    #[test]
    fn prel31_is_sign_extended() {
        assert_eq!(prel31(0x2000, 0x7fff_fff0), 0x1ff0);
        assert_eq!(prel31(0x2000, 0x10), 0x2010);
    }

    #[test]
    fn compact_and_gcc_table_entries_give_their_instructions() {
        assert_eq!(
            instructions(ExidxEntry::Inline(0x8097_84b0), None, false),
            Ok(vec![0x97, 0x84, 0xb0])
        );
        // Inline entries may only use personality 0.
        assert_eq!(
            instructions(ExidxEntry::Inline(0x8102_84b0), None, false),
            Err(EhabiError::Bad)
        );
        assert_eq!(
            instructions(ExidxEntry::CantUnwind, None, false),
            Err(EhabiError::CantUnwind)
        );
        // lu16 with one extra word, as GCC's `-funwind-tables` C functions have.
        let extab: Vec<u8> = [0x8101_b108u32, 0x8400_b0b0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(
            instructions(ExidxEntry::Table(0x500), Some((&extab, 0x500)), false),
            Ok(vec![0xb1, 0x08, 0x84, 0x00, 0xb0, 0xb0])
        );
        // The extra word is missing.
        assert_eq!(
            instructions(ExidxEntry::Table(0x500), Some((&extab[..4], 0x500)), false),
            Err(EhabiError::Bad)
        );
        // A generic personality (prel31) then GCC's data word: 0 extra words.
        let extab: Vec<u8> = [0x0000_1234u32, 0x00a8_b0b0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(
            instructions(ExidxEntry::Table(0x600), Some((&extab, 0x600)), false),
            Ok(vec![0xa8, 0xb0, 0xb0])
        );
        // Outside the extab, or no extab at all.
        assert_eq!(
            instructions(ExidxEntry::Table(0x5ff), Some((&extab, 0x600)), false),
            Err(EhabiError::Bad)
        );
        assert_eq!(
            instructions(ExidxEntry::Table(0x600), None, false),
            Err(EhabiError::Bad)
        );
    }

    #[test]
    fn pops_restore_registers_and_vsp() {
        // push {r4, r7, lr}; sub sp, #8 → unwind: vsp += 8; pop {r4, r7, lr}.
        let stack = Stack {
            base: 0x8000,
            words: vec![0, 0, 0x44, 0x77, 0x1235, 0xdead],
        };
        let r = regs_with_sp(0x8000, 0);
        // 0x01: vsp += 8; 0x84 0x09: pop {r4, r7, r14}.
        let out = execute(&[0x01, 0x84, 0x09, 0xb0], &r, &stack).unwrap();
        assert_eq!(out[4], Some(0x44));
        assert_eq!(out[7], Some(0x77));
        assert_eq!(out[LR], Some(0x1235));
        assert_eq!(out[PC], Some(0x1235), "pc = lr when pc is not popped");
        assert_eq!(out[SP], Some(0x8014));
        assert_eq!(out[5], Some(0x105), "untouched registers keep their values");

        // 0xa9: pop r4-r5, r14; then finish implied by the end.
        let out = execute(&[0xa9], &regs_with_sp(0x8008, 0), &stack).unwrap();
        assert_eq!(
            (out[4], out[5], out[LR]),
            (Some(0x44), Some(0x77), Some(0x1235))
        );
        assert_eq!(out[SP], Some(0x8014));

        // pop {r4, pc}: 0x88 0x01.
        let out = execute(&[0x88, 0x01], &regs_with_sp(0x8010, 0x999), &stack).unwrap();
        assert_eq!(out[4], Some(0x1235));
        assert_eq!(out[PC], Some(0xdead));
        assert_eq!(out[LR], Some(0x999));

        // vsp = r7 then pop r0-r3 under mask 0b0101.
        let mut r = regs_with_sp(0, 0x42);
        r[7] = Some(0x8008);
        let out = execute(&[0x97, 0xb1, 0x05], &r, &stack).unwrap();
        assert_eq!((out[0], out[2]), (Some(0x44), Some(0x77)));
        assert_eq!(out[SP], Some(0x8010));

        // Popping sp sets vsp to the loaded value.
        let out = execute(&[0x82, 0x00], &regs_with_sp(0x8008, 0), &stack).unwrap();
        assert_eq!(out[SP], Some(0x44));
    }

    #[test]
    fn vsp_adjustments() {
        let stack = Stack {
            base: 0,
            words: vec![],
        };
        let run = |ops: &[u8]| execute(ops, &regs_with_sp(0x10000, 0), &stack).map(|r| r[SP]);
        assert_eq!(run(&[0x3f]), Ok(Some(0x10000 + 0x100)));
        assert_eq!(run(&[0x40]), Ok(Some(0x10000 - 4)));
        assert_eq!(run(&[0xb2, 0x01]), Ok(Some(0x10000 + 0x204 + 4)));
        assert_eq!(
            run(&[0xb2, 0x81, 0x01]),
            Ok(Some(0x10000 + 0x204 + (129 << 2)))
        );
        assert_eq!(run(&[0xb3, 0x12]), Ok(Some(0x10000 + 3 * 8 + 4)));
        assert_eq!(run(&[0xb9]), Ok(Some(0x10000 + 2 * 8 + 4)));
        assert_eq!(run(&[0xc1]), Ok(Some(0x10000 + 2 * 8)));
        assert_eq!(run(&[0xc6, 0x01]), Ok(Some(0x10000 + 2 * 8)));
        assert_eq!(run(&[0xc7, 0x03]), Ok(Some(0x10000 + 8)));
        assert_eq!(run(&[0xc8, 0x03]), Ok(Some(0x10000 + 4 * 8)));
        assert_eq!(run(&[0xc9, 0x07]), Ok(Some(0x10000 + 8 * 8)));
        assert_eq!(run(&[0xd7]), Ok(Some(0x10000 + 8 * 8)));
        // Finish ends the instructions: the rest is not run.
        assert_eq!(run(&[0xb0, 0x3f]), Ok(Some(0x10000)));
    }

    #[test]
    fn refusals_spare_opcodes_and_truncation_are_errors() {
        let stack = Stack {
            base: 0x8000,
            words: vec![1, 2],
        };
        let run = |ops: &[u8]| execute(ops, &regs_with_sp(0x8000, 0), &stack).map(|_| ());
        assert_eq!(run(&[0x80, 0x00]), Err(EhabiError::CantUnwind));
        for bad in [
            &[0x9d][..],
            &[0x9f],
            &[0xb1, 0x00],
            &[0xb1, 0x10],
            &[0xb4],
            &[0xc7, 0x00],
            &[0xca],
            &[0xd8],
            &[0xff],
            &[0x80],
            &[0xb1],
            &[0xb2],
            &[0xb2, 0x80],
            &[0xb2, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0xc9],
        ] {
            assert_eq!(run(bad), Err(EhabiError::Bad), "{bad:x?}");
        }
        // Popping past the readable stack.
        assert_eq!(run(&[0xaf]), Err(EhabiError::Unreadable));
        // No sp at all.
        let mut r = regs_with_sp(0, 0);
        r[SP] = None;
        assert_eq!(execute(&[0xb0], &r, &stack), Err(EhabiError::Unreadable));
    }

    #[test]
    fn garbage_never_panics() {
        let stack = Stack {
            base: 0x8000,
            words: (0..64).collect(),
        };
        // A deterministic pseudo-random byte stream.
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..2000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = execute(&bytes, &regs_with_sp(0x8000, 0x10), &stack);
            let _ = exidx_lookup(&bytes, u64::from(next()), u64::from(next()), false);
            let w = next();
            let _ = instructions(
                ExidxEntry::Table(u64::from(next() % 32)),
                Some((&bytes, 0)),
                w & 1 != 0,
            );
            let _ = instructions(ExidxEntry::Inline(w | 0x8000_0000), None, false);
        }
    }

    #[test]
    fn trampolines_are_told_apart_by_their_code() {
        let code = |words: Vec<u32>| Stack {
            base: 0x4000,
            words,
        };
        assert_eq!(
            sigreturn_kind(&code(vec![0xe3a0_7077, 0xef00_0000]), 0x4000),
            Some(false)
        );
        assert_eq!(
            sigreturn_kind(&code(vec![0xe3a0_70ad, 0xef00_0000]), 0x4000),
            Some(true)
        );
        // The kernel's sigpage: `swi #0x900077`.
        assert_eq!(
            sigreturn_kind(&code(vec![0xe3a0_70ad, 0xef90_00ad]), 0x4000),
            Some(true)
        );
        // Thumb: movs r7, #119; svc 0 (little-endian halfwords), with the Thumb bit.
        assert_eq!(
            sigreturn_kind(&code(vec![0xdf00_2777]), 0x4001),
            Some(false)
        );
        assert_eq!(sigreturn_kind(&code(vec![0xdf00_27ad]), 0x4000), Some(true));
        // Thumb-2 (Debian's glibc): mov.w r7, #119 / #173; svc 0.
        assert_eq!(
            sigreturn_kind(&code(vec![0x0777_f04f, 0xbf00_df00]), 0x4001),
            Some(false)
        );
        assert_eq!(
            sigreturn_kind(&code(vec![0x07ad_f04f, 0xbf00_df00]), 0x4000),
            Some(true)
        );
        assert_eq!(sigreturn_kind(&code(vec![0x07ad_f04f]), 0x4000), None);
        assert_eq!(
            sigreturn_kind(&code(vec![0xe3a0_7077, 0xe120_0070]), 0x4000),
            None
        );
        assert_eq!(sigreturn_kind(&code(vec![]), 0x4000), None);
    }
    /// Little-endian halfwords from `base` as code.
    fn thumb(base: u64, halves: &[u16]) -> Stack {
        let mut words: Vec<u32> = halves
            .chunks(2)
            .map(|c| u32::from(c[0]) | (u32::from(*c.get(1).unwrap_or(&0)) << 16))
            .collect();
        words.push(0);
        Stack { base, words }
    }

    #[test]
    fn a_thumb_prologue_without_tables_is_read_up_to_the_first_branch() {
        // glibc 2.36's armhf abort(): loads, then push {r7, lr}; sub sp, #144; then a beq.
        let code = thumb(
            0x1e008,
            &[
                0x4a4e, 0xee1d, 0x4f70, 0x4b4e, 0xf5a4, 0x64a0, 0x447a, 0x484d, 0xb580, 0x4478,
                0x58d3, 0xb0a4, 0x681b, 0x9323, 0xf04f, 0x0300, 0x6883, 0x42a3, 0xd010, 0xb580,
            ],
        );
        let p = thumb_prologue(&code, 0x1e008, 0x1e0ac);
        assert_eq!(p.off, 8 + 144);
        assert_eq!(p.saved[7], Some(8));
        assert_eq!(p.saved[LR], Some(4));
        assert_eq!(p.fp, None);
        // Stopped at the pc: only the push was seen.
        let p = thumb_prologue(&code, 0x1e008, 0x1e01a);
        assert_eq!(p.off, 8);

        // The caller's registers: sp above the frame, r7 and pc from their slots.
        let sp = 0x9000u64;
        let mut words = vec![0u32; 36];
        words.extend([0x7777, 0x1_0455]);
        let stack = Stack { base: sp, words };
        let mut regs = regs_with_sp(sp, 0xbad);
        regs[PC] = Some(0x1e0ac);
        let r = prologue_step(&regs, 0x1e009, 0x1e0ac, false, &code, &stack).unwrap();
        assert_eq!(r[SP], Some(sp + 152));
        assert_eq!(r[7], Some(0x7777));
        assert_eq!(r[PC], Some(0x1_0455));
    }

    #[test]
    fn thumb2_and_arm_prologues_and_frame_pointers() {
        // push.w {r4-r8, lr}; vpush {d8-d9}; sub.w sp, sp, #256; add r7, sp, #8; bl.
        let code = thumb(
            0x2000,
            &[
                0xe92d, 0x41f0, 0xed2d, 0x8b04, 0xf5ad, 0x7d80, 0xaf02, 0xf000, 0xf800,
            ],
        );
        let p = thumb_prologue(&code, 0x2000, 0x3000);
        assert_eq!(p.off, 24 + 16 + 256);
        assert_eq!(p.saved[4], Some(24));
        assert_eq!(p.saved[LR], Some(4));
        assert_eq!(p.fp, Some((7, 24 + 16 + 256 - 8)));
        assert_eq!(thumb_expand_imm(0x0ff), 0xff);
        assert_eq!(thumb_expand_imm(0x1ab), 0x00ab_00ab);
        assert_eq!(thumb_expand_imm(0x380), 0x8080_8080);

        // ARM: push {r4, r11, lr}; add r11, sp, #4; sub sp, sp, #16; bl.
        let code = Stack {
            base: 0x4000,
            words: vec![0xe92d_4810, 0xe28d_b004, 0xe24d_d010, 0xeb00_0000],
        };
        let p = arm_prologue(&code, 0x4000, 0x5000);
        assert_eq!(p.off, 12 + 16);
        assert_eq!(p.saved[4], Some(12));
        assert_eq!(p.saved[11], Some(8));
        assert_eq!(p.saved[LR], Some(4));
        assert_eq!(p.fp, Some((11, 8)));
        // The frame pointer gives the entry sp even when sp moved (alloca).
        let stack = Stack {
            base: 0x8000,
            words: vec![0x44, 0xbbbb, 0x1235],
        };
        let mut regs = regs_with_sp(0x7000, 0);
        regs[11] = Some(0x8004);
        let r = prologue_step(&regs, 0x4000, 0x4010, false, &code, &stack).unwrap();
        assert_eq!(r[SP], Some(0x800c));
        assert_eq!(
            (r[4], r[11], r[PC]),
            (Some(0x44), Some(0xbbbb), Some(0x1235))
        );
    }

    #[test]
    fn a_prologue_without_a_saved_lr_unwinds_only_a_leaf() {
        let code = thumb(0x2000, &[0x2300, 0x4770]); // movs r3, #0; bx lr
        let stack = Stack {
            base: 0x8000,
            words: vec![],
        };
        let regs = regs_with_sp(0x8000, 0x1_2345);
        assert_eq!(
            prologue_step(&regs, 0x2001, 0x2002, false, &code, &stack),
            None
        );
        let r = prologue_step(&regs, 0x2001, 0x2002, true, &code, &stack).unwrap();
        assert_eq!((r[SP], r[PC]), (Some(0x8000), Some(0x1_2345)));
        // Unreadable code reads as an empty prologue; garbage never panics.
        let none = Stack {
            base: 0,
            words: vec![],
        };
        assert_eq!(thumb_prologue(&none, 0x2000, 0x3000), Prologue::default());
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..200 {
            let words: Vec<u32> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x
                })
                .collect();
            let code = Stack {
                base: 0x2000,
                words,
            };
            let _ = thumb_prologue(&code, 0x2000, 0x2100);
            let _ = arm_prologue(&code, 0x2000, 0x2100);
            let _ = prologue_step(&regs, 0x2001, 0x2100, false, &code, &code);
        }
    }

    #[test]
    fn function_starts_keep_their_thumb_bit() {
        let f = [0x1000, 0x1011, 0x1020];
        assert_eq!(function_start(&f, 0xfff), None);
        assert_eq!(function_start(&f, 0x1010), Some(0x1011));
        assert_eq!(function_start(&f, 0x101f), Some(0x1011));
        assert_eq!(function_start(&f, 0x5000), Some(0x1020));
    }
}
