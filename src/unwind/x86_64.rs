//! x86_64 specifics: DWARF register numbers, the kernel's signal frame layout, the sigreturn
//! trampoline's code bytes, and the frame-pointer (rbp chain) fallback.

use super::{
    cfi_step, module_at, CfiError, CodeAddress, FrameTrust, KnownRegs, Limits, MemoryReader,
    RawFrame, Seen, StopReason, UnwindModule, Unwound,
};
use crate::elf_core::Registers;

/// DWARF register numbers (System V AMD64 ABI, figure 3.36): rax, rdx, rcx, rbx, rsi, rdi, rbp,
/// rsp, r8..r15, then the return address column 16 (rip).
const DWARF_NAMES: [&str; 17] = [
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip",
];
const RBP: usize = 6;
/// rax, rdx, rcx, rsi, rdi, r8-r11: a call clobbers them (the ABI's caller-saved registers).
const CALLER_SAVED: [usize; 9] = [0, 1, 2, 4, 5, 8, 9, 10, 11];
const RSP: usize = 7;
const RIP: usize = 16;

/// `__restore_rt` in glibc (and musl's equivalent): `mov $15,%rax` (rt_sigreturn); `syscall`.
pub(crate) const SIGRETURN_CODE: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

/// Offset of `uc_mcontext` in `ucontext_t`: uc_flags (8), uc_link (8), uc_stack (24).
const UC_MCONTEXT: u64 = 40;
/// `struct sigcontext` (arch/x86/include/uapi/asm/sigcontext.h) general registers in order,
/// 8 bytes each, from the start of `uc_mcontext`.
const SIGCONTEXT_ORDER: [&str; 17] = [
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
    "rcx", "rsp", "rip",
];

type Regs = Vec<Option<u64>>;

/// The core's registers by DWARF number: the general ones, then xmm0..15 (17..32) when the
/// core holds them.
fn from_core(regs: &Registers) -> Regs {
    let mut out: Regs = DWARF_NAMES.iter().map(|n| regs.get(n)).collect();
    out.extend(regs.vector.iter().map(|&v| Some(v)));
    out
}

/// Registers saved by the kernel in the `ucontext_t` at `uc`. When a handler returns into the
/// trampoline, the trampoline's stack pointer points at `rt_sigframe.uc` (the return address,
/// `pretcode`, has been popped).
pub(crate) fn regs_from_ucontext(uc: u64, stack: &dyn MemoryReader) -> Option<Regs> {
    let mut out: Regs = vec![None; 17];
    for (i, name) in SIGCONTEXT_ORDER.iter().enumerate() {
        let v = stack.read_u64(uc.checked_add(UC_MCONTEXT + 8 * i as u64)?)?;
        let dw = DWARF_NAMES.iter().position(|n| n == name)?;
        out[dw] = Some(v);
    }
    Some(out)
}

fn is_sigreturn(code: &dyn MemoryReader, pc: u64) -> bool {
    let mut b = [0u8; 9];
    code.read(pc, &mut b) && b == SIGRETURN_CODE
}

pub(crate) fn unwind(
    core_regs: &Registers,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
    code: &dyn MemoryReader,
    limits: Limits,
) -> Unwound {
    let mut regs = from_core(core_regs);
    let (Some(pc), Some(sp)) = (regs[RIP], regs[RSP]) else {
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
            // The handler "returned" into the trampoline's first instruction; no call precedes
            // it (glibc pads a nop there), so it is looked up at its own address.
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
        let Step {
            regs: new_regs,
            trust,
            next_is_ip,
            ..
        } = match stepped {
            Ok(s) => s,
            Err(stop) => break stop,
        };
        let (Some(npc), Some(nsp)) = (new_regs[RIP], new_regs[RSP]) else {
            break StopReason::UnreadableStack;
        };
        if npc == 0 {
            break StopReason::EndOfStack;
        }
        // The stack grows down: a caller's frame is above its callee's. A signal frame may
        // switch stacks (sigaltstack), so it is exempt.
        if trust != FrameTrust::SignalContext && nsp <= sp {
            break StopReason::Loop;
        }
        if seen.repeat(npc, nsp) {
            break StopReason::Loop;
        }
        let mut known = new_regs.clone();
        if trust != FrameTrust::SignalContext {
            for r in CALLER_SAVED {
                known[r] = None;
            }
            // Every vector register is caller-saved too.
            known.truncate(DWARF_NAMES.len());
        }
        regs = new_regs;
        frame = RawFrame {
            address: if next_is_ip {
                CodeAddress::InstructionPointer(npc)
            } else {
                CodeAddress::ReturnAddress(npc)
            },
            trust,
            sp: nsp,
            signal_trampoline: false,
            regs: KnownRegs::new(&known),
            cfa: None,
        };
    };
    Unwound { frames, stop }
}

/// One step to the caller.
pub(crate) struct Step {
    /// The caller's registers.
    pub regs: Regs,
    pub trust: FrameTrust,
    /// The caller's pc is an instruction pointer (it was interrupted), not a return address.
    pub next_is_ip: bool,
    /// The stepped-from frame's CFA, when the step computed one.
    pub cfa: Option<u64>,
}

/// Compute the caller's registers.
fn step(
    regs: &Regs,
    frame: &RawFrame,
    first: bool,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
) -> Result<Step, StopReason> {
    let sp = frame.sp;
    if frame.signal_trampoline {
        // Recognised by code bytes; its CFI (if any) says the same thing in DWARF expressions.
        return regs_from_ucontext(sp, stack)
            .map(|r| Step {
                regs: r,
                trust: FrameTrust::SignalContext,
                next_is_ip: true,
                cfa: None,
            })
            .ok_or(StopReason::UnreadableStack);
    }
    let lookup = frame.address.lookup();
    if let Some(m) = module_at(modules, lookup) {
        match cfi_step(m, lookup, regs, RIP as u16, stack) {
            Ok(s) => {
                if s.ra_undefined {
                    return Err(StopReason::EndOfStack);
                }
                let mut r = s.regs;
                // On x86_64 the caller's stack pointer is the CFA by definition.
                r[RSP] = Some(s.cfa);
                let trust = if s.signal_frame {
                    FrameTrust::SignalContext
                } else {
                    FrameTrust::Cfi
                };
                return Ok(Step {
                    regs: r,
                    trust,
                    next_is_ip: s.signal_frame,
                    cfa: Some(s.cfa),
                });
            }
            Err(CfiError::Unreadable) => return Err(StopReason::UnreadableStack),
            Err(CfiError::NoInfo) => {}
        }
    } else if first {
        // The pc is outside every module: most likely a call through a bad function pointer.
        // The call pushed the return address and nothing else ran, so it is at [rsp].
        // Only trusted when it lands in a module; otherwise the rbp chain below decides.
        if let Some(ra) = stack
            .read_u64(sp)
            .filter(|&ra| module_at(modules, ra).is_some())
        {
            let mut r = regs.clone();
            r[RIP] = Some(ra);
            r[RSP] = Some(sp + 8);
            return Ok(Step {
                regs: r,
                trust: FrameTrust::FramePointer,
                next_is_ip: false,
                cfa: Some(sp + 8),
            });
        }
    }
    frame_pointer_step(regs, stack)
}

/// The classic rbp chain: [rbp] is the caller's rbp, [rbp+8] the return address, and the
/// caller's stack pointer is rbp+16.
pub(crate) fn frame_pointer_step(
    regs: &Regs,
    stack: &dyn MemoryReader,
) -> Result<Step, StopReason> {
    let (Some(bp), Some(sp)) = (regs[RBP], regs[RSP]) else {
        return Err(StopReason::NoUnwindInfo);
    };
    // A frame pointer below the stack pointer or misaligned is not a frame pointer.
    if bp < sp || bp % 8 != 0 {
        return Err(StopReason::NoUnwindInfo);
    }
    let caller_bp = stack.read_u64(bp).ok_or(StopReason::UnreadableStack)?;
    let ra = stack
        .read_u64(bp.checked_add(8).ok_or(StopReason::UnreadableStack)?)
        .ok_or(StopReason::UnreadableStack)?;
    let mut r: Regs = vec![None; 17];
    // Only callee-saved registers survive a call; rbx, r12-r15 are unknown without CFI.
    r[RBP] = Some(caller_bp);
    r[RSP] = Some(bp + 16);
    r[RIP] = Some(ra);
    Ok(Step {
        regs: r,
        trust: FrameTrust::FramePointer,
        next_is_ip: false,
        cfa: Some(bp + 16),
    })
}
