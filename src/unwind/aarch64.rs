//! aarch64 specifics: DWARF register numbers (x0-x30, sp), the kernel's signal frame as
//! `__kernel_rt_sigreturn` in the vDSO finds it, the frame-record (x29/x30) chain as the
//! fallback, and return addresses with their pointer-authentication bits stripped.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
};
use crate::elf_core::Registers;

/// DWARF register numbers (the AAPCS64 DWARF supplement): x0..x30 are 0..30, sp is 31; the
/// return address column is x30 (the link register).
const DWARF_NAMES: [&str; 32] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30", "sp",
];
const FP: usize = 29;
const LR: usize = 30;
const SP: usize = 31;
/// x0-x18: a call clobbers them (AAPCS64's caller-saved and temporary registers).
const CALLER_SAVED: std::ops::RangeInclusive<usize> = 0..=18;

/// `__kernel_rt_sigreturn`: `mov x8, #139` (rt_sigreturn); `svc #0`, little-endian.
const SIGRETURN_CODE: [u8; 8] = [0x68, 0x11, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4];
/// Where the saved registers are from the stack pointer at the trampoline: the
/// `rt_sigframe`'s `siginfo` (128 bytes), then in its `ucontext` the `uc_mcontext`
/// (`struct sigcontext`, 16-aligned: at 176), whose `regs[31]` follow `fault_address`.
const SIGCONTEXT: u64 = 128 + 176;
const SC_REGS: u64 = SIGCONTEXT + 8;
const SC_SP: u64 = SC_REGS + 31 * 8;
const SC_PC: u64 = SC_SP + 8;

fn from_core(regs: &Registers) -> Regs {
    DWARF_NAMES.iter().map(|n| regs.get(n)).collect()
}

/// A return address without the pointer-authentication code a signed `lr` carries in its top
/// bits (user addresses fit in 48 bits).
fn strip_pac(ra: u64) -> u64 {
    ra & 0x0000_ffff_ffff_ffff
}

fn is_sigreturn(code: &dyn MemoryReader, pc: u64) -> bool {
    let mut b = [0u8; 8];
    code.read(pc, &mut b) && b == SIGRETURN_CODE
}

/// The registers the kernel saved for a signal, from the trampoline's stack pointer.
fn regs_from_sigframe(sp: u64, stack: &dyn MemoryReader) -> Option<(Regs, u64)> {
    let mut out: Regs = vec![None; DWARF_NAMES.len()];
    for (i, slot) in out.iter_mut().take(31).enumerate() {
        *slot = Some(stack.read_u64(sp.checked_add(SC_REGS + 8 * i as u64)?)?);
    }
    out[SP] = Some(stack.read_u64(sp.checked_add(SC_SP)?)?);
    let pc = stack.read_u64(sp.checked_add(SC_PC)?)?;
    Some((out, pc))
}

/// The aarch64 rules for [`super::walk`].
pub(crate) struct Aarch64;

impl Arch for Aarch64 {
    const SAME_SP: bool = true;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let r = from_core(regs);
        let (pc, sp) = (regs.pc()?, r[SP]?);
        Some((r, pc, sp))
    }

    fn is_sigreturn(&self, code: &dyn MemoryReader, pc: u64) -> bool {
        is_sigreturn(code, pc)
    }

    fn step(
        &self,
        regs: &Regs,
        frame: &RawFrame,
        first: bool,
        modules: &[UnwindModule<'_>],
        stack: &dyn MemoryReader,
        _code: &dyn MemoryReader,
    ) -> Result<Step, StopReason> {
        step(regs, frame, first, modules, stack)
    }

    fn in_caller(&self, regs: &Regs) -> Regs {
        clobber(regs.clone(), CALLER_SAVED)
    }
}

fn step(
    regs: &Regs,
    frame: &RawFrame,
    first: bool,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
) -> Result<Step, StopReason> {
    if frame.signal_trampoline {
        let (r, pc) = regs_from_sigframe(frame.sp, stack).ok_or(StopReason::UnreadableStack)?;
        return Ok(Step {
            pc: Some(pc),
            sp: r[SP],
            regs: r,
            trust: FrameTrust::SignalContext,
            next_is_ip: true,
            cfa: None,
        });
    }
    let lookup = frame.address.lookup();
    if let Some(m) = module_at(modules, lookup) {
        match cfi_step(m, lookup, regs, 8, gimli::Vendor::AArch64, stack) {
            Ok(s) => {
                if s.ra_undefined {
                    return Err(StopReason::EndOfStack);
                }
                let trust = s.trust();
                let mut r = s.regs;
                // The caller's stack pointer is the CFA, and its pc the return address.
                r[SP] = Some(s.cfa);
                let pc = strip_pac(s.ra.ok_or(StopReason::UnreadableStack)?);
                return Ok(Step {
                    pc: Some(pc),
                    sp: r[SP],
                    regs: r,
                    trust,
                    next_is_ip: s.signal_frame,
                    cfa: Some(s.cfa),
                });
            }
            Err(CfiError::NoInfo) => {}
            Err(e) => return Err(e.into()),
        }
    } else if first {
        // The pc is outside every module (a call through a bad pointer): the call left the
        // return address in the link register.
        if let Some(lr) = regs[LR]
            .map(strip_pac)
            .filter(|&lr| module_at(modules, lr).is_some())
        {
            let mut r = regs.clone();
            r[LR] = Some(lr);
            return Ok(Step {
                pc: Some(lr),
                sp: r[SP],
                regs: r,
                trust: FrameTrust::FramePointer,
                next_is_ip: false,
                cfa: regs[SP],
            });
        }
    }
    // A frame record leading outside every module is the end of the chain (`_start`'s x29 is
    // whatever the kernel left there), not a frame.
    let s = frame_record_step(regs, stack)?;
    if !s.pc.is_some_and(|pc| module_at(modules, pc).is_some()) {
        return Err(StopReason::NoUnwindInfo);
    }
    Ok(s)
}

/// The AAPCS64 frame record: x29 points at {caller's x29, return address}; the caller's stack
/// pointer is just above it.
fn frame_record_step(regs: &Regs, stack: &dyn MemoryReader) -> Result<Step, StopReason> {
    let (Some(fp), Some(sp)) = (regs[FP], regs[SP]) else {
        return Err(StopReason::NoUnwindInfo);
    };
    if fp < sp || fp % 8 != 0 {
        return Err(StopReason::NoUnwindInfo);
    }
    let caller_fp = stack.read_u64(fp).ok_or(StopReason::UnreadableStack)?;
    let ra = stack
        .read_u64(fp.checked_add(8).ok_or(StopReason::UnreadableStack)?)
        .ok_or(StopReason::UnreadableStack)?;
    let mut r: Regs = vec![None; DWARF_NAMES.len()];
    r[FP] = Some(caller_fp);
    r[SP] = Some(fp + 16);
    r[LR] = Some(strip_pac(ra));
    Ok(Step {
        pc: Some(strip_pac(ra)),
        sp: r[SP],
        regs: r,
        trust: FrameTrust::FramePointer,
        next_is_ip: false,
        cfa: Some(fp + 16),
    })
}
