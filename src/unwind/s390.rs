//! S/390 specifics (31-bit s390 and 64-bit s390x): DWARF register numbers (r0-r15, the
//! return address in r14), the CFA 96 (s390) or 160 (s390x) bytes above the caller's stack
//! pointer, the signal trampolines (`svc 119` / `svc 173`, on the stack or in the vDSO) with
//! the kernel's `sigframe` and `rt_sigframe` layouts, and 31-bit addresses' mode bit. No
//! back chain: GCC does not keep one unless built with `-mbackchain`.

use super::{
    cfi_step, clobber, module_at, Arch, CfiError, FrameTrust, MemoryReader, RawFrame, Regs, Step,
    StopReason, UnwindModule,
};
use crate::elf_core::Registers;

const R14: usize = 14;
const R15: usize = 15;
const NREGS: usize = 16;
/// The floating-point register numbered 16 + i in DWARF (the s390x ELF ABI): f0, f2, f4, f6,
/// f1, f3, f5, f7, f8, f10, f12, f14, f9, f11, f13, f15.
const FPR_DWARF_ORDER: [usize; 16] = [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15];
/// `svc 119` (sigreturn) and `svc 173` (rt_sigreturn).
const SIGRETURN_CODE: [u8; 2] = [0x0a, 0x77];
const RT_SIGRETURN_CODE: [u8; 2] = [0x0a, 0xad];

/// The S/390 rules for [`super::walk`].
pub(crate) struct S390 {
    pub is_64: bool,
}

impl S390 {
    fn word(&self) -> u8 {
        if self.is_64 {
            8
        } else {
            4
        }
    }

    /// `__SIGNAL_FRAMESIZE` / `STACK_FRAME_OVERHEAD`: the register save area every frame
    /// leaves for its callees, between a frame's stack pointer and its CFA.
    fn frame_size(&self) -> u64 {
        if self.is_64 {
            160
        } else {
            96
        }
    }

    /// An address without 31-bit mode's addressing-mode bit.
    fn address(&self, a: u64) -> u64 {
        if self.is_64 {
            a
        } else {
            a & 0x7fff_ffff
        }
    }

    /// The registers the kernel saved in a `_sigregs` at `at`: the PSW (mask, address) and
    /// r0-r15.
    fn sigregs(&self, at: u64, stack: &dyn MemoryReader) -> Option<(Regs, u64)> {
        let w = u64::from(self.word());
        let pc = self.address(stack.read_word(at.checked_add(w)?, self.word())?);
        let mut r: Regs = vec![None; NREGS];
        for (i, slot) in r.iter_mut().enumerate() {
            *slot = Some(stack.read_word(at.checked_add(w * (2 + i as u64))?, self.word())?);
        }
        Some((r, pc))
    }

    /// The registers a signal frame at the trampoline's stack pointer `sp` saved.
    fn signal_step(&self, sp: u64, rt: bool, stack: &dyn MemoryReader) -> Option<Step> {
        let base = sp.checked_add(self.frame_size())?;
        let sigregs = if rt {
            // rt_sigframe: the 2-byte svc, the siginfo (8-aligned, 128 bytes), then the
            // ucontext: uc_flags, uc_link and a stack_t before uc_mcontext.
            let uc_mcontext = if self.is_64 { 40 } else { 20 };
            base.checked_add(8 + 128 + uc_mcontext)?
        } else {
            // sigframe: a sigcontext of oldmask (8 bytes) and a pointer to the _sigregs.
            stack.read_word(base.checked_add(8)?, self.word())?
        };
        let (regs, pc) = self.sigregs(sigregs, stack)?;
        Some(Step {
            pc: Some(pc),
            sp: regs[R15],
            regs,
            trust: FrameTrust::SignalContext,
            next_is_ip: true,
            cfa: None,
        })
    }
}

fn sigreturn_kind(code: &dyn MemoryReader, pc: u64) -> Option<bool> {
    let mut b = [0u8; 2];
    if !code.read(pc, &mut b) {
        return None;
    }
    match b {
        RT_SIGRETURN_CODE => Some(true),
        SIGRETURN_CODE => Some(false),
        _ => None,
    }
}

impl Arch for S390 {
    // A leaf function need not allocate a frame.
    const SAME_SP: bool = true;

    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)> {
        let mut r: Regs = crate::elf_core::regs::S390_NAMES[2..]
            .iter()
            .map(|n| regs.get(n))
            .collect();
        // DWARF 16..31 are the floating-point registers in the psABI's order, when the core
        // has them (NT_FPREGSET): a leaf function may keep r11 and r15 there.
        if regs.vector.len() == 16 {
            r.extend(FPR_DWARF_ORDER.iter().map(|&f| Some(regs.vector[f])));
        }
        Some((r.clone(), regs.pc()?, r[R15]?))
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
        if frame.signal_trampoline {
            let rt = sigreturn_kind(code, frame.address.pc()).unwrap_or(true);
            return self
                .signal_step(frame.sp, rt, stack)
                .ok_or(StopReason::UnreadableStack);
        }
        let lookup = frame.address.lookup();
        if let Some(m) = module_at(modules, lookup) {
            match cfi_step(m, lookup, regs, self.word(), gimli::Vendor::Default, stack) {
                Ok(s) => {
                    if s.ra_undefined {
                        return Err(StopReason::EndOfStack);
                    }
                    let mut r = s.regs.clone();
                    r.resize(r.len().max(NREGS), None);
                    if !s.has_rule(R15) {
                        r[R15] = Some(s.cfa.wrapping_sub(self.frame_size()));
                    }
                    let trust = s.trust();
                    return Ok(Step {
                        pc: s.ra.map(|a| self.address(a)),
                        sp: r[R15],
                        regs: r,
                        trust,
                        next_is_ip: s.signal_frame,
                        cfa: Some(s.cfa),
                    });
                }
                Err(CfiError::MissingRegister) if first => {
                    // A leaf function keeps its stack pointer in a floating-point register
                    // the core lacks (QEMU's cores have none): its caller is where r14 points,
                    // and nothing else about it is known.
                    let ra = regs[R14].ok_or(StopReason::MissingRegisters)?;
                    return Ok(Step {
                        pc: Some(self.address(ra)),
                        sp: None,
                        regs: vec![None; NREGS],
                        trust: FrameTrust::Cfi,
                        next_is_ip: false,
                        cfa: None,
                    });
                }
                Err(CfiError::NoInfo) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if first {
            // No CFI for the pc (a call through a bad pointer, or code without tables):
            // nothing saved yet, the return address is in r14.
            if let Some(ra) = regs[R14]
                .map(|a| self.address(a))
                .filter(|&ra| module_at(modules, ra).is_some())
            {
                let mut r = regs.clone();
                r[R14] = None;
                return Ok(Step {
                    pc: Some(ra),
                    sp: r[R15],
                    regs: r,
                    trust: FrameTrust::FramePointer,
                    next_is_ip: false,
                    cfa: regs[R15],
                });
            }
        }
        Err(StopReason::NoUnwindInfo)
    }

    fn in_caller(&self, regs: &Regs) -> Regs {
        // r0-r5 and r14 are clobbered by a call; r6-r13 and r15 are preserved.
        let mut known = clobber(regs.clone(), (0..=5).chain([R14]));
        known.truncate(NREGS);
        known
    }
}
