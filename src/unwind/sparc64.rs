//! sparc64 specifics: register windows and the stack bias. DWARF numbers 0-31 are the
//! globals, outs, locals and ins; a function that executed `save` has a window of its own,
//! so its caller's outs are its ins, its caller's locals and ins are in the caller's window
//! save area at the caller's `%sp + 2047` (the kernel flushes every window to the stack
//! before it dumps), and it returns to `%i7 + 8` (past the call and its delay slot).
//!
//! gimli knows `DW_CFA_GNU_window_save` (0x2d) only under the number it shares with
//! AArch64's `DW_CFA_AARCH64_negate_ra_state`: parsed with the AArch64 vendor, a window save
//! shows as column 34 holding the constant 1, which is read here as "this frame saved its
//! window" (column 34 is `%f2`, which no CFI of ours otherwise names).
//!
//! Signal frames: glibc's `__rt_sigreturn_stub` (`mov 101, %g1; ta 0x6d`) with the kernel's
//! `rt_signal_frame` at the trampoline's `%sp + 2047`.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
};
use crate::elf_core::Registers;

const BIAS: u64 = 2047;
const SP: usize = 14;
const O7: usize = 15;
const FP: usize = 30;
const I7: usize = 31;
const NREGS: usize = 32;
/// The column gimli records a window save in (see the module header).
const WINDOW_SAVED: usize = 34;
/// `mov 101, %g1` (rt_sigreturn); `ta 0x6d`, big-endian.
const RT_SIGRETURN_CODE: [u8; 8] = [0x82, 0x10, 0x20, 0x65, 0x91, 0xd0, 0x20, 0x6d];
/// In `rt_signal_frame`: a `sparc_stackf` (24 words), the 128-byte siginfo, then `pt_regs`:
/// u_regs[16] (globals and outs), tstate, tpc.
const PT_REGS: u64 = 192 + 128;
const PT_TPC: u64 = PT_REGS + 17 * 8;

/// The sparc64 rules for [`super::walk`].
pub(crate) struct Sparc64;

fn from_core(regs: &Registers) -> Regs {
    crate::elf_core::regs::SPARC64_NAMES[..NREGS]
        .iter()
        .map(|n| regs.get(n))
        .collect()
}

/// The caller's registers when `regs`' frame saved its window and its caller's stack
/// pointer is `caller_sp`: globals kept, outs from the ins, locals and ins from the caller's
/// save area.
fn restore_window(regs: &Regs, caller_sp: u64, stack: &dyn MemoryReader) -> Regs {
    let get = |i: usize| regs.get(i).copied().flatten();
    let mut r: Regs = (0..8).map(get).chain((24..32).map(get)).collect();
    r.resize(NREGS, None);
    let area = caller_sp.wrapping_add(BIAS);
    for i in 0..16 {
        r[16 + i] = stack.read_u64(area.wrapping_add(8 * i as u64));
    }
    r
}

/// A caller's pc from a return column holding the call's own address.
fn return_pc(ra: Option<u64>) -> Result<Option<u64>, StopReason> {
    match ra {
        None => Err(StopReason::UnreadableStack),
        // The outermost frame's %i7 is 0.
        Some(0) => Err(StopReason::EndOfStack),
        Some(a) => Ok(Some(a.wrapping_add(8))),
    }
}

impl Arch for Sparc64 {
    const SAME_SP: bool = true;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let r = from_core(regs);
        Some((r.clone(), regs.pc()?, r[SP]?))
    }

    fn is_sigreturn(&self, code: &dyn MemoryReader, pc: u64) -> bool {
        let mut b = [0u8; 8];
        code.read(pc, &mut b) && b == RT_SIGRETURN_CODE
    }

    fn step(
        &self,
        regs: &Regs,
        frame: &RawFrame,
        _first: bool,
        modules: &[UnwindModule<'_>],
        stack: &dyn MemoryReader,
        _code: &dyn MemoryReader,
    ) -> Result<Step, StopReason> {
        if frame.signal_trampoline {
            let pt = frame.sp.wrapping_add(BIAS).wrapping_add(PT_REGS);
            let mut r: Regs = vec![None; NREGS];
            for (i, slot) in r.iter_mut().take(16).enumerate() {
                *slot = stack.read_u64(pt + 8 * i as u64);
            }
            let sp = r[SP].ok_or(StopReason::UnreadableStack)?;
            let area = sp.wrapping_add(BIAS);
            for i in 0..16 {
                r[16 + i] = stack.read_u64(area.wrapping_add(8 * i as u64));
            }
            let pc = stack
                .read_u64(frame.sp.wrapping_add(BIAS).wrapping_add(PT_TPC))
                .ok_or(StopReason::UnreadableStack)?;
            return Ok(Step {
                pc: Some(pc),
                sp: Some(sp),
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
                    let saved = s.has_rule(WINDOW_SAVED)
                        && s.regs.get(WINDOW_SAVED).copied().flatten() == Some(1);
                    let caller_sp = s.cfa.wrapping_sub(BIAS);
                    let r = if saved {
                        restore_window(regs, caller_sp, stack)
                    } else {
                        let mut r = regs.clone();
                        r[SP] = Some(caller_sp);
                        r
                    };
                    return Ok(Step {
                        pc: return_pc(s.ra)?,
                        sp: Some(caller_sp),
                        regs: r,
                        trust: s.trust(),
                        next_is_ip: s.signal_frame,
                        cfa: Some(s.cfa),
                    });
                }
                Err(CfiError::NoInfo) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Without CFI: the frame saved its window (every function that calls does).
        let caller_sp = regs[FP].ok_or(StopReason::NoUnwindInfo)?;
        if caller_sp == 0 {
            return Err(StopReason::EndOfStack);
        }
        let pc = return_pc(regs[I7])?;
        if !pc.is_some_and(|pc| module_at(modules, pc).is_some()) {
            return Err(StopReason::NoUnwindInfo);
        }
        Ok(Step {
            pc,
            sp: Some(caller_sp),
            regs: restore_window(regs, caller_sp, stack),
            trust: FrameTrust::FramePointer,
            next_is_ip: false,
            cfa: Some(caller_sp.wrapping_add(BIAS)),
        })
    }

    fn in_caller(&self, regs: &Regs) -> Regs {
        let mut known = regs.clone();
        known.truncate(NREGS);
        // %g1 and the outs but %sp are clobbered by a call.
        clobber(known, [1, 8, 9, 10, 11, 12, 13, O7])
    }
}
