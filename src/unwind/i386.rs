//! i386 specifics: DWARF register numbers, the kernel's two signal frame layouts (`sigframe`
//! for handlers without `SA_SIGINFO`, `rt_sigframe` for those with it) as the vDSO's
//! `__kernel_sigreturn` / `__kernel_rt_sigreturn` or glibc's `__restore` / `__restore_rt` find
//! them, and the frame-pointer (ebp chain) fallback. Every word is 4 bytes.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
};
use crate::elf_core::Registers;

/// DWARF register numbers (the i386 System V ABI): eax, ecx, edx, ebx, esp, ebp, esi, edi,
/// then the return address column 8 (eip).
const DWARF_NAMES: [&str; 9] = [
    "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip",
];
const ESP: usize = 4;
const EBP: usize = 5;
const EIP: usize = 8;
/// eax, ecx, edx: a call clobbers them.
const CALLER_SAVED: [usize; 3] = [0, 1, 2];

/// `mov $173,%eax` (rt_sigreturn); `int $0x80`.
const RT_SIGRETURN_CODE: [u8; 7] = [0xb8, 0xad, 0x00, 0x00, 0x00, 0xcd, 0x80];
/// `pop %eax`; `mov $119,%eax` (sigreturn); `int $0x80`.
const SIGRETURN_CODE: [u8; 8] = [0x58, 0xb8, 0x77, 0x00, 0x00, 0x00, 0xcd, 0x80];

/// `struct sigcontext_32`'s general registers (gs, fs, es, ds, then these), by DWARF number.
const SIGCONTEXT_ORDER: [(u64, usize); 8] = [
    (16, 7), // edi
    (20, 6), // esi
    (24, EBP),
    (28, ESP),
    (32, 3), // ebx
    (36, 2), // edx
    (40, 1), // ecx
    (44, 0), // eax
];
const SC_EIP: u64 = 56;
/// From the trampoline's stack pointer (the handler's return popped `pretcode`): an
/// `rt_sigframe` holds sig, pinfo, puc, a 128-byte siginfo, then the `ucontext` whose
/// `uc_mcontext` follows uc_flags, uc_link and the 12-byte uc_stack.
const RT_SIGCONTEXT: u64 = 4 + 4 + 4 + 128 + 20;
/// A `sigframe` holds sig, then the `sigcontext`.
const SIGCONTEXT: u64 = 4;

fn word(stack: &dyn MemoryReader, addr: u64) -> Option<u64> {
    stack.read_u32(addr).map(u64::from)
}

fn from_core(regs: &Registers) -> Regs {
    DWARF_NAMES.iter().map(|n| regs.get(n)).collect()
}

/// Which trampoline (if any) is at `pc`: `Some(true)` for the rt one.
fn sigreturn_kind(code: &dyn MemoryReader, pc: u64) -> Option<bool> {
    let mut b = [0u8; 8];
    if code.read(pc, &mut b[..7]) && b[..7] == RT_SIGRETURN_CODE {
        return Some(true);
    }
    (code.read(pc, &mut b) && b == SIGRETURN_CODE).then_some(false)
}

fn regs_from_sigcontext(sc: u64, stack: &dyn MemoryReader) -> Option<Regs> {
    let mut out: Regs = vec![None; DWARF_NAMES.len()];
    for (off, reg) in SIGCONTEXT_ORDER {
        out[reg] = Some(word(stack, sc.checked_add(off)?)?);
    }
    out[EIP] = Some(word(stack, sc.checked_add(SC_EIP)?)?);
    Some(out)
}

/// The i386 rules for [`super::walk`].
pub(crate) struct I386;

impl Arch for I386 {
    const SAME_SP: bool = false;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let r = from_core(regs);
        let (pc, sp) = (r[EIP]?, r[ESP]?);
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
        let mut known = clobber(regs.clone(), CALLER_SAVED);
        known.truncate(DWARF_NAMES.len());
        known
    }
}

fn step_to(regs: Regs, trust: FrameTrust, next_is_ip: bool, cfa: Option<u64>) -> Step {
    Step {
        pc: regs[EIP],
        sp: regs[ESP],
        regs,
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
    let sp = frame.sp;
    if frame.signal_trampoline {
        // The bytes were read once to set the flag (from the core, else the module file: a
        // static executable's text is not dumped); reading them again says which frame.
        let rt = sigreturn_kind(code, frame.address.pc()).unwrap_or(true);
        let sc = sp + if rt { RT_SIGCONTEXT } else { SIGCONTEXT };
        return regs_from_sigcontext(sc, stack)
            .map(|r| step_to(r, FrameTrust::SignalContext, true, None))
            .ok_or(StopReason::UnreadableStack);
    }
    let lookup = frame.address.lookup();
    if let Some(m) = module_at(modules, lookup) {
        match cfi_step(m, lookup, regs, 4, gimli::Vendor::Default, stack) {
            Ok(s) => {
                if s.ra_undefined {
                    return Err(StopReason::EndOfStack);
                }
                let trust = s.trust();
                let mut r = s.regs;
                r.resize(DWARF_NAMES.len().max(r.len()), None);
                // The caller's stack pointer is the CFA by definition.
                r[ESP] = Some(s.cfa);
                r[EIP] = s.ra;
                return Ok(step_to(r, trust, s.signal_frame, Some(s.cfa)));
            }
            Err(CfiError::NoInfo) => {}
            Err(e) => return Err(e.into()),
        }
    } else if first {
        // A call through a bad pointer: the return address is at [esp].
        if let Some(ra) = word(stack, sp).filter(|&ra| module_at(modules, ra).is_some()) {
            let mut r = regs.clone();
            r[EIP] = Some(ra);
            r[ESP] = Some(sp + 4);
            return Ok(step_to(r, FrameTrust::FramePointer, false, Some(sp + 4)));
        }
    }
    frame_pointer_step(regs, stack)
}

/// The ebp chain: [ebp] is the caller's ebp, [ebp+4] the return address, and the caller's
/// stack pointer is ebp+8.
fn frame_pointer_step(regs: &Regs, stack: &dyn MemoryReader) -> Result<Step, StopReason> {
    let (Some(bp), Some(sp)) = (regs[EBP], regs[ESP]) else {
        return Err(StopReason::NoUnwindInfo);
    };
    if bp < sp || bp % 4 != 0 {
        return Err(StopReason::NoUnwindInfo);
    }
    let caller_bp = word(stack, bp).ok_or(StopReason::UnreadableStack)?;
    let ra = word(stack, bp + 4).ok_or(StopReason::UnreadableStack)?;
    let mut r: Regs = vec![None; DWARF_NAMES.len()];
    r[EBP] = Some(caller_bp);
    r[ESP] = Some(bp + 8);
    r[EIP] = Some(ra);
    Ok(step_to(r, FrameTrust::FramePointer, false, Some(bp + 8)))
}
