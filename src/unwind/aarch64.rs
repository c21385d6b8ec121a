//! aarch64 specifics: DWARF register numbers (x0-x30, sp), the kernel's signal frame as
//! `__kernel_rt_sigreturn` in the vDSO finds it, the frame-record (x29/x30) chain as the
//! fallback, and return addresses with their pointer-authentication bits stripped.

use super::{
    cfi_step, module_at, CfiError, CodeAddress, FrameTrust, KnownRegs, Limits, MemoryReader,
    RawFrame, Seen, StopReason, UnwindModule, Unwound,
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

type Regs = Vec<Option<u64>>;

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

pub(crate) fn unwind(
    core_regs: &Registers,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
    code: &dyn MemoryReader,
    limits: Limits,
) -> Unwound {
    let mut regs = from_core(core_regs);
    let (Some(pc), Some(sp)) = (core_regs.pc(), regs[SP]) else {
        return Unwound {
            frames: vec![],
            stop: StopReason::NoRegisters,
        };
    };
    let mut frames = Vec::new();
    let mut frame = RawFrame {
        address: CodeAddress::InstructionPointer(pc),
        trust: FrameTrust::Context,
        sp,
        signal_trampoline: false,
        regs: KnownRegs::new(&regs),
        cfa: None,
    };
    let mut seen = Seen::new();
    seen.repeat(pc, sp);
    let stop = loop {
        if limits
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            break StopReason::Timeout;
        }
        let pc = frame.address.pc();
        let sp = frame.sp;
        frame.signal_trampoline = is_sigreturn(code, pc);
        if frame.signal_trampoline {
            frame.address = CodeAddress::InstructionPointer(pc);
        }
        let first = frames.is_empty();
        let stepped = step(&regs, &frame, first, modules, stack);
        if let Ok(s) = &stepped {
            frame.cfa = s.cfa;
        }
        frames.push(frame);
        if frames.len() >= limits.max_frames {
            break StopReason::FrameLimit;
        }
        let s = match stepped {
            Ok(s) => s,
            Err(stop) => break stop,
        };
        let Some(nsp) = s.regs[SP] else {
            break StopReason::UnreadableStack;
        };
        if s.pc == 0 {
            break StopReason::EndOfStack;
        }
        if s.trust != FrameTrust::SignalContext && nsp < sp {
            break StopReason::Loop;
        }
        if seen.repeat(s.pc, nsp) {
            break StopReason::Loop;
        }
        let mut known = s.regs.clone();
        if s.trust != FrameTrust::SignalContext {
            for r in CALLER_SAVED {
                known[r] = None;
            }
        }
        regs = s.regs;
        frame = RawFrame {
            address: if s.next_is_ip {
                CodeAddress::InstructionPointer(s.pc)
            } else {
                CodeAddress::ReturnAddress(s.pc)
            },
            trust: s.trust,
            sp: nsp,
            signal_trampoline: false,
            regs: KnownRegs::new(&known),
            cfa: None,
        };
    };
    Unwound { frames, stop }
}

/// One step to the caller.
struct Step {
    regs: Regs,
    pc: u64,
    trust: FrameTrust,
    next_is_ip: bool,
    cfa: Option<u64>,
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
            regs: r,
            pc,
            trust: FrameTrust::SignalContext,
            next_is_ip: true,
            cfa: None,
        });
    }
    let lookup = frame.address.lookup();
    if let Some(m) = module_at(modules, lookup) {
        match cfi_step(m, lookup, regs, LR as u16, stack) {
            Ok(s) => {
                if s.ra_undefined {
                    return Err(StopReason::EndOfStack);
                }
                let mut r = s.regs;
                // The caller's stack pointer is the CFA, and its pc the return address.
                r[SP] = Some(s.cfa);
                let pc = strip_pac(r[LR].ok_or(StopReason::UnreadableStack)?);
                let trust = if s.signal_frame {
                    FrameTrust::SignalContext
                } else {
                    FrameTrust::Cfi
                };
                return Ok(Step {
                    regs: r,
                    pc,
                    trust,
                    next_is_ip: s.signal_frame,
                    cfa: Some(s.cfa),
                });
            }
            Err(CfiError::Unreadable) => return Err(StopReason::UnreadableStack),
            Err(CfiError::NoInfo) => {}
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
                regs: r,
                pc: lr,
                trust: FrameTrust::FramePointer,
                next_is_ip: false,
                cfa: regs[SP],
            });
        }
    }
    // A frame record leading outside every module is the end of the chain (`_start`'s x29 is
    // whatever the kernel left there), not a frame.
    let s = frame_record_step(regs, stack)?;
    if module_at(modules, s.pc).is_none() {
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
        regs: r,
        pc: strip_pac(ra),
        trust: FrameTrust::FramePointer,
        next_is_ip: false,
        cfa: Some(fp + 16),
    })
}
