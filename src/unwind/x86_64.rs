//! x86_64 and x32 specifics: DWARF register numbers, the kernel's signal frame layouts, the
//! sigreturn trampolines' code bytes, and the frame-pointer (rbp chain) fallback. x32 is the
//! same machine with 4-byte pointers: its registers, pushes and saved slots stay 8 bytes; only
//! its `ucontext_t` and `rt_sigreturn` number differ.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
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

/// x32's `__restore_rt`: `mov $0x40000201,%eax` (rt_sigreturn with `__X32_SYSCALL_BIT`);
/// `syscall`.
const X32_SIGRETURN_CODE: [u8; 7] = [0xb8, 0x01, 0x02, 0x00, 0x40, 0x0f, 0x05];

/// Offset of `uc_mcontext` in `ucontext_t`: uc_flags (8), uc_link (8), uc_stack (24).
const UC_MCONTEXT: u64 = 40;
/// In x32's `ucontext_x32`: uc_flags (4), uc_link (4), uc_stack (12), padding (4).
const X32_UC_MCONTEXT: u64 = 24;
/// `struct sigcontext` (arch/x86/include/uapi/asm/sigcontext.h) general registers in order,
/// 8 bytes each, from the start of `uc_mcontext`.
const SIGCONTEXT_ORDER: [&str; 17] = [
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
    "rcx", "rsp", "rip",
];

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
pub(crate) fn regs_from_ucontext(uc: u64, stack: &dyn MemoryReader, x32: bool) -> Option<Regs> {
    let mcontext = if x32 { X32_UC_MCONTEXT } else { UC_MCONTEXT };
    let mut out: Regs = vec![None; 17];
    for (i, name) in SIGCONTEXT_ORDER.iter().enumerate() {
        let v = stack.read_u64(uc.checked_add(mcontext + 8 * i as u64)?)?;
        let dw = DWARF_NAMES.iter().position(|n| n == name)?;
        out[dw] = Some(v);
    }
    Some(out)
}

fn is_sigreturn(code: &dyn MemoryReader, pc: u64, x32: bool) -> bool {
    if x32 {
        let mut b = [0u8; 7];
        return code.read(pc, &mut b) && b == X32_SIGRETURN_CODE;
    }
    let mut b = [0u8; 9];
    code.read(pc, &mut b) && b == SIGRETURN_CODE
}

/// The x86_64 (or, with `x32`, the x32) rules for [`super::walk`].
pub(crate) struct X86_64 {
    pub x32: bool,
}

impl Arch for X86_64 {
    const SAME_SP: bool = false;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let r = from_core(regs);
        let (pc, sp) = (r[RIP]?, r[RSP]?);
        Some((r, pc, sp))
    }

    fn is_sigreturn(&self, code: &dyn MemoryReader, pc: u64) -> bool {
        is_sigreturn(code, pc, self.x32)
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
        step(regs, frame, first, modules, stack, self.x32)
    }

    fn in_caller(&self, regs: &Regs) -> Regs {
        let mut known = clobber(regs.clone(), CALLER_SAVED);
        // Every vector register is caller-saved too.
        known.truncate(DWARF_NAMES.len());
        known
    }
}

/// A step whose caller pc and stack pointer are its rip and rsp.
fn step_to(regs: Regs, trust: FrameTrust, next_is_ip: bool, cfa: Option<u64>) -> Step {
    Step {
        pc: regs[RIP],
        sp: regs[RSP],
        regs,
        trust,
        next_is_ip,
        cfa,
    }
}

/// Compute the caller's registers.
fn step(
    regs: &Regs,
    frame: &RawFrame,
    first: bool,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
    x32: bool,
) -> Result<Step, StopReason> {
    let sp = frame.sp;
    if frame.signal_trampoline {
        // Recognised by code bytes; its CFI (if any) says the same thing in DWARF expressions.
        return regs_from_ucontext(sp, stack, x32)
            .map(|r| step_to(r, FrameTrust::SignalContext, true, None))
            .ok_or(StopReason::UnreadableStack);
    }
    let lookup = frame.address.lookup();
    if let Some(m) = module_at(modules, lookup) {
        match cfi_step(m, lookup, regs, 8, gimli::Vendor::Default, stack) {
            Ok(s) => {
                if s.ra_undefined {
                    return Err(StopReason::EndOfStack);
                }
                let trust = s.trust();
                let mut r = s.regs;
                // On x86_64 the caller's stack pointer is the CFA by definition.
                r[RSP] = Some(s.cfa);
                return Ok(step_to(r, trust, s.signal_frame, Some(s.cfa)));
            }
            Err(CfiError::NoInfo) => {}
            Err(e) => return Err(e.into()),
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
            return Ok(step_to(r, FrameTrust::FramePointer, false, Some(sp + 8)));
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
    Ok(step_to(r, FrameTrust::FramePointer, false, Some(bp + 16)))
}
