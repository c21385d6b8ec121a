//! PowerPC specifics (32-bit ppc, and ppc64 of either byte order, ELFv2): DWARF register
//! numbers (r0-r31, the link register as column 65), CFI first (the vDSO's
//! `__kernel_sigtramp_rt64` / `__kernel_sigtramp32` describe their signal frames in CFI of
//! their own, with a return-address column that is no real register), then the back chain:
//! every frame's first word points at its caller's frame, whose link-register save word (4
//! bytes in on ppc, 16 on ppc64) holds the return address into the caller.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
};
use crate::elf_core::Registers;

const R1: usize = 1;
/// The link register's DWARF column.
const LR: usize = 65;
const CTR: usize = 66;
const NREGS: usize = 67;
/// r0 and r3-r12, the link and count registers: a call clobbers them (r2, the TOC, and r13,
/// the thread pointer, are kept).
fn caller_saved() -> impl Iterator<Item = usize> {
    std::iter::once(0).chain(3..=12).chain([LR, CTR])
}

/// The PowerPC rules for [`super::walk`].
pub(crate) struct Ppc {
    pub is_64: bool,
}

impl Ppc {
    fn word(&self) -> u8 {
        if self.is_64 {
            8
        } else {
            4
        }
    }

    /// Where a frame keeps the return address of the function it called.
    fn lr_save(&self) -> u64 {
        if self.is_64 {
            16
        } else {
            4
        }
    }
}

fn from_core(regs: &Registers) -> Regs {
    let mut r: Regs = vec![None; NREGS];
    for (i, slot) in r.iter_mut().take(32).enumerate() {
        *slot = regs.get(crate::elf_core::regs::PPC_NAMES[i]);
    }
    r[LR] = regs.get("lr");
    r[CTR] = regs.get("ctr");
    r
}

impl Arch for Ppc {
    // A leaf function allocates no frame: its caller's stack pointer is its own.
    const SAME_SP: bool = true;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let r = from_core(regs);
        Some((r.clone(), regs.pc()?, r[R1]?))
    }

    fn is_sigreturn(&self, _code: &dyn MemoryReader, _pc: u64) -> bool {
        // The kernel's trampolines are in the vDSO, whose CFI marks them as signal frames.
        false
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
        let lookup = frame.address.lookup();
        if let Some(m) = module_at(modules, lookup) {
            match cfi_step(m, lookup, regs, self.word(), gimli::Vendor::Default, stack) {
                Ok(s) => {
                    if s.ra_undefined {
                        return Err(StopReason::EndOfStack);
                    }
                    let mut r = s.regs.clone();
                    r.resize(r.len().max(NREGS), None);
                    // The CFA is the caller's stack pointer, unless the row restores r1
                    // itself (a signal frame).
                    if !s.has_rule(R1) {
                        r[R1] = Some(s.cfa);
                    }
                    let trust = s.trust();
                    return Ok(Step {
                        pc: s.ra,
                        sp: r[R1],
                        regs: r,
                        trust,
                        next_is_ip: s.signal_frame,
                        cfa: Some(s.cfa),
                    });
                }
                Err(CfiError::NoInfo) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if first && module_at(modules, lookup).is_none() {
            // A call through a bad pointer: nothing ran, the return address is in lr.
            if let Some(lr) = regs[LR].filter(|&lr| module_at(modules, lr).is_some()) {
                let mut r = regs.clone();
                r[LR] = None;
                return Ok(Step {
                    pc: Some(lr),
                    sp: r[R1],
                    regs: r,
                    trust: FrameTrust::FramePointer,
                    next_is_ip: false,
                    cfa: regs[R1],
                });
            }
        }
        self.back_chain_step(regs, modules, stack)
    }

    fn in_caller(&self, regs: &Regs) -> Regs {
        clobber(regs.clone(), caller_saved())
    }
}

impl Ppc {
    /// One step up the back chain from the frame whose stack pointer is r1.
    fn back_chain_step(
        &self,
        regs: &Regs,
        modules: &[UnwindModule<'_>],
        stack: &dyn MemoryReader,
    ) -> Result<Step, StopReason> {
        let sp = regs[R1].ok_or(StopReason::NoUnwindInfo)?;
        let word = self.word();
        if sp % u64::from(word) != 0 {
            return Err(StopReason::NoUnwindInfo);
        }
        let caller_sp = stack
            .read_word(sp, word)
            .ok_or(StopReason::UnreadableStack)?;
        if caller_sp == 0 {
            return Err(StopReason::EndOfStack);
        }
        if caller_sp <= sp {
            return Err(StopReason::Loop);
        }
        let ra = stack
            .read_word(caller_sp + self.lr_save(), word)
            .ok_or(StopReason::UnreadableStack)?;
        // A chain leading outside every module is the end of the stack, not a frame.
        if module_at(modules, ra).is_none() {
            return Err(StopReason::NoUnwindInfo);
        }
        let mut r: Regs = vec![None; NREGS];
        r[R1] = Some(caller_sp);
        r[2] = regs[2];
        r[13] = regs[13];
        Ok(Step {
            pc: Some(ra),
            sp: Some(caller_sp),
            regs: r,
            trust: FrameTrust::FramePointer,
            next_is_ip: false,
            cfa: Some(caller_sp),
        })
    }
}
