//! RISC-V (RV64 and RV32) specifics: DWARF register numbers (x0-x31), the vDSO's
//! `__vdso_rt_sigreturn` signal frame, and the frame-pointer chain (s0 points at the CFA, the
//! return address and the caller's s0 just below it) as the fallback to CFI.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
};
use crate::elf_core::Registers;

/// DWARF register numbers (the RISC-V ELF psABI): x0..x31 are 0..31, by their ABI names; `pr_reg`
/// holds the pc where x0 (always zero) would be.
const DWARF_NAMES: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];
const RA: usize = 1;
const SP: usize = 2;
const FP: usize = 8;
/// ra, t0-t2, a0-a7, t3-t6: a call clobbers them (the psABI's caller-saved registers).
const CALLER_SAVED: [usize; 16] = [1, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 28, 29, 30, 31];

/// `__vdso_rt_sigreturn`: `li a7, 139` (rt_sigreturn); `ecall`, little-endian.
const SIGRETURN_CODE: [u8; 8] = [0x93, 0x08, 0xb0, 0x08, 0x73, 0x00, 0x00, 0x00];
/// Where the saved registers are from the stack pointer at the trampoline: the rt_sigframe's
/// siginfo (128 bytes), then in its ucontext uc_flags, uc_link, uc_stack (24), uc_sigmask (8)
/// and 120 bytes reserved for a larger sigset: uc_mcontext's `sc_regs` (pc, then x1..x31).
const SC_REGS: u64 = 128 + 8 + 8 + 24 + 8 + 120;

/// The RISC-V rules for [`super::walk`]; `word` is 8 (RV64) or 4 (RV32).
pub(crate) struct Riscv {
    pub word: u8,
}

impl Riscv {
    fn read(&self, stack: &dyn MemoryReader, addr: u64) -> Option<u64> {
        stack.read_word(addr, self.word)
    }

    /// The registers the kernel saved for a signal, from the trampoline's stack pointer.
    fn regs_from_sigframe(&self, sp: u64, stack: &dyn MemoryReader) -> Option<(Regs, u64)> {
        let w = u64::from(self.word);
        let base = sp.checked_add(SC_REGS)?;
        let pc = self.read(stack, base)?;
        let mut out: Regs = vec![None; DWARF_NAMES.len()];
        out[0] = Some(0);
        for (i, slot) in out.iter_mut().enumerate().skip(1) {
            *slot = Some(self.read(stack, base.checked_add(w * i as u64)?)?);
        }
        Some((out, pc))
    }

    /// The frame-pointer convention (`-fno-omit-frame-pointer`): s0 is the CFA, the return
    /// address is the word below it and the caller's s0 the one below that.
    fn frame_pointer_step(
        &self,
        regs: &Regs,
        stack: &dyn MemoryReader,
    ) -> Result<Step, StopReason> {
        let w = u64::from(self.word);
        let (Some(fp), Some(sp)) = (regs[FP], regs[SP]) else {
            return Err(StopReason::NoUnwindInfo);
        };
        if fp <= sp || fp % w != 0 {
            return Err(StopReason::NoUnwindInfo);
        }
        let ra = self
            .read(stack, fp.wrapping_sub(w))
            .ok_or(StopReason::UnreadableStack)?;
        let caller_fp = self
            .read(stack, fp.wrapping_sub(2 * w))
            .ok_or(StopReason::UnreadableStack)?;
        let mut r: Regs = vec![None; DWARF_NAMES.len()];
        r[FP] = Some(caller_fp);
        r[SP] = Some(fp);
        r[RA] = Some(ra);
        Ok(Step {
            pc: Some(ra),
            sp: Some(fp),
            regs: r,
            trust: FrameTrust::FramePointer,
            next_is_ip: false,
            cfa: Some(fp),
        })
    }
}

impl Arch for Riscv {
    // A leaf function need not allocate a frame.
    const SAME_SP: bool = true;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let mut r: Regs = DWARF_NAMES.iter().map(|n| regs.get(n)).collect();
        r[0] = Some(0);
        let (pc, sp) = (regs.pc()?, r[SP]?);
        Some((r, pc, sp))
    }

    fn is_sigreturn(&self, code: &dyn MemoryReader, pc: u64) -> bool {
        let mut b = [0u8; 8];
        code.read(pc, &mut b) && b == SIGRETURN_CODE
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
        if frame.signal_trampoline {
            let (r, pc) = self
                .regs_from_sigframe(frame.sp, stack)
                .ok_or(StopReason::UnreadableStack)?;
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
            match cfi_step(m, lookup, regs, self.word, gimli::Vendor::Default, stack) {
                Ok(s) => {
                    if s.ra_undefined {
                        return Err(StopReason::EndOfStack);
                    }
                    let trust = s.trust();
                    let mut r = s.regs;
                    r.resize(r.len().max(DWARF_NAMES.len()), None);
                    // The caller's stack pointer is the CFA, and its pc the return address.
                    r[SP] = Some(s.cfa);
                    return Ok(Step {
                        pc: s.ra,
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
            // return address in ra.
            if let Some(ra) = regs[RA].filter(|&ra| module_at(modules, ra).is_some()) {
                return Ok(Step {
                    pc: Some(ra),
                    sp: regs[SP],
                    regs: regs.clone(),
                    trust: FrameTrust::FramePointer,
                    next_is_ip: false,
                    cfa: regs[SP],
                });
            }
        }
        // A chain leading outside every module is its end (`_start` clears s0), not a frame.
        let s = self.frame_pointer_step(regs, stack)?;
        if s.pc == Some(0) {
            return Err(StopReason::EndOfStack);
        }
        if !s.pc.is_some_and(|pc| module_at(modules, pc).is_some()) {
            return Err(StopReason::NoUnwindInfo);
        }
        Ok(s)
    }

    fn in_caller(&self, regs: &Regs) -> Regs {
        clobber(regs.clone(), CALLER_SAVED)
    }
}
