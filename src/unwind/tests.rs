//! Synthetic stacks for the walk's hard parts: the rbp chain, the kernel's signal frame, CFI from
//! a hand-built `.eh_frame`, and every way a walk stops. The layouts are written from the ABI
//! documents here, not from the unwinder's own tables, so a wrong table is caught.

use super::*;
use crate::elf_core::{Machine, Registers};

/// Memory made of (address, bytes) blocks; everything else is unreadable.
struct Synth(Vec<(u64, Vec<u8>)>);

impl Synth {
    fn new() -> Self {
        Synth(Vec::new())
    }
    fn put_u64(&mut self, addr: u64, v: u64) {
        self.0.push((addr, v.to_le_bytes().to_vec()));
    }
    fn put(&mut self, addr: u64, b: &[u8]) {
        self.0.push((addr, b.to_vec()));
    }
}

impl MemoryReader for Synth {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        'byte: for (i, out) in buf.iter_mut().enumerate() {
            let a = addr + i as u64;
            for (base, bytes) in self.0.iter().rev() {
                if a >= *base && a < base + bytes.len() as u64 {
                    *out = bytes[(a - base) as usize];
                    continue 'byte;
                }
            }
            return false;
        }
        true
    }
}

fn regs(rip: u64, rsp: u64, rbp: u64) -> Registers {
    Registers {
        machine: Machine::X86_64,
        values: vec![("rip", rip), ("rsp", rsp), ("rbp", rbp)],
        vector: Vec::new(),
    }
}

fn limits(max: usize) -> Limits {
    Limits {
        max_frames: max,
        deadline: None,
    }
}

fn pcs(u: &Unwound) -> Vec<u64> {
    u.frames.iter().map(|f| f.address.pc()).collect()
}

/// An rbp chain of three frames ending with a zero return address.
fn fp_chain() -> Synth {
    let mut m = Synth::new();
    m.put_u64(0x7010, 0x7030); // saved rbp
    m.put_u64(0x7018, 0x2000); // return address
    m.put_u64(0x7030, 0x7050);
    m.put_u64(0x7038, 0x3000);
    m.put_u64(0x7050, 0);
    m.put_u64(0x7058, 0);
    m
}

#[test]
fn frame_pointer_chain_walks_to_the_end() {
    let m = fp_chain();
    let u = unwind_thread(&regs(0x1000, 0x7000, 0x7010), &[], &m, &m, limits(100));
    assert_eq!(pcs(&u), [0x1000, 0x2000, 0x3000]);
    assert_eq!(u.stop, StopReason::EndOfStack);
    assert_eq!(u.frames[0].trust, FrameTrust::Context);
    assert_eq!(u.frames[1].trust, FrameTrust::FramePointer);
    assert_eq!(u.frames[1].address, CodeAddress::ReturnAddress(0x2000));
    assert_eq!(u.frames[1].address.lookup(), 0x1fff);
    assert_eq!(u.frames[2].sp, 0x7040);
}

#[test]
fn frame_limit_stops_cleanly() {
    let m = fp_chain();
    let u = unwind_thread(&regs(0x1000, 0x7000, 0x7010), &[], &m, &m, limits(2));
    assert_eq!(pcs(&u), [0x1000, 0x2000]);
    assert_eq!(u.stop, StopReason::FrameLimit);
}

#[test]
fn unreadable_stack_and_bad_frame_pointers_stop_without_panicking() {
    let mut m = Synth::new();
    m.put_u64(0x7010, 0x9999_0000); // caller rbp points outside the core
    m.put_u64(0x7018, 0x2000);
    let u = unwind_thread(&regs(0x1000, 0x7000, 0x7010), &[], &m, &m, limits(100));
    assert_eq!(pcs(&u), [0x1000, 0x2000]);
    assert_eq!(u.stop, StopReason::UnreadableStack);

    // rbp below rsp is not a frame pointer.
    let u = unwind_thread(&regs(0x1000, 0x7000, 0x6000), &[], &m, &m, limits(100));
    assert_eq!(u.stop, StopReason::NoUnwindInfo);
    assert_eq!(u.frames.len(), 1);

    // No registers at all.
    let empty = Registers {
        machine: Machine::X86_64,
        values: vec![],
        vector: Vec::new(),
    };
    let u = unwind_thread(&empty, &[], &m, &m, limits(100));
    assert_eq!((u.frames.len(), u.stop), (0, StopReason::NoRegisters));
}

#[test]
fn a_deadline_in_the_past_times_out() {
    let m = fp_chain();
    let l = Limits {
        max_frames: 100,
        deadline: Some(Instant::now()),
    };
    let u = unwind_thread(&regs(0x1000, 0x7000, 0x7010), &[], &m, &m, l);
    assert_eq!(u.stop, StopReason::Timeout);
}

#[test]
fn signal_frame_restores_the_interrupted_registers() {
    // Frame 0 is the sigreturn trampoline (the handler returned into it): its stack pointer
    // points at the ucontext_t. uc_mcontext starts at 40 (uc_flags, uc_link, 24-byte stack_t);
    // struct sigcontext: r8..r15 (8 words), rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip.
    let mut m = Synth::new();
    let tramp = 0x5000;
    m.put(
        tramp,
        &[0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05],
    );
    let uc = 0x8000u64;
    let mcontext = uc + 40;
    m.put(uc, &[0u8; 40 + 8 * 23]);
    m.put_u64(mcontext + 8 * 10, 0x9010); // rbp
    m.put_u64(mcontext + 8 * 15, 0x9000); // rsp
    m.put_u64(mcontext + 8 * 16, 0x6000); // rip: the interrupted instruction
    m.put_u64(0x9010, 0x9030);
    m.put_u64(0x9018, 0x6100);
    m.put_u64(0x9030, 0);
    m.put_u64(0x9038, 0);
    let u = unwind_thread(&regs(tramp, uc, 0), &[], &m, &m, limits(100));
    assert_eq!(pcs(&u), [tramp, 0x6000, 0x6100]);
    assert!(u.frames[0].signal_trampoline);
    // The interrupted pc is not a return address: it is looked up as is.
    assert_eq!(u.frames[1].address, CodeAddress::InstructionPointer(0x6000));
    assert_eq!(u.frames[1].trust, FrameTrust::SignalContext);
    assert_eq!(u.frames[1].sp, 0x9000);
    assert_eq!(u.frames[2].address, CodeAddress::ReturnAddress(0x6100));
    assert_eq!(u.stop, StopReason::EndOfStack);
}

#[test]
fn signal_frame_with_unreadable_context_stops() {
    let mut m = Synth::new();
    m.put(
        0x5000,
        &[0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05],
    );
    let u = unwind_thread(&regs(0x5000, 0x8000, 0), &[], &m, &m, limits(100));
    assert_eq!(u.stop, StopReason::UnreadableStack);
    assert_eq!(u.frames.len(), 1);
}

/// A `.eh_frame` built with gimli's writer: one function at SVMA 0x1000..0x1100 whose body has
/// pushed rbp (CFA = rsp+16, rbp at CFA−16, return address at CFA−8), and an outermost function
/// at 0x2000..0x2100 whose return address is undefined (like `_start`).
fn synthetic_eh_frame() -> Vec<u8> {
    use gimli::write::{
        CallFrameInstruction, CommonInformationEntry, EhFrame, FrameDescriptionEntry, FrameTable,
    };
    use gimli::X86_64;
    let enc = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 1,
        address_size: 8,
    };
    let mut cie = CommonInformationEntry::new(enc, 1, -8, X86_64::RA);
    cie.add_instruction(CallFrameInstruction::Cfa(X86_64::RSP, 8));
    cie.add_instruction(CallFrameInstruction::Offset(X86_64::RA, -8));
    let mut table = FrameTable::default();
    let cie_id = table.add_cie(cie);
    let mut f = FrameDescriptionEntry::new(gimli::write::Address::Constant(0x1000), 0x100);
    f.add_instruction(1, CallFrameInstruction::CfaOffset(16));
    f.add_instruction(1, CallFrameInstruction::Offset(X86_64::RBP, -16));
    table.add_fde(cie_id, f);
    let mut f = FrameDescriptionEntry::new(gimli::write::Address::Constant(0x2000), 0x100);
    f.add_instruction(0, CallFrameInstruction::Undefined(X86_64::RA));
    table.add_fde(cie_id, f);
    let mut out = EhFrame(gimli::write::EndianVec::new(gimli::LittleEndian));
    table.write_eh_frame(&mut out).unwrap();
    out.0.into_vec()
}

#[test]
fn cfi_walk_uses_eh_frame_and_applies_the_bias() {
    let cfi = CfiSections {
        eh_frame: Some(Section {
            svma: 0x500,
            data: Arc::new(synthetic_eh_frame()),
        }),
        ..CfiSections::default()
    };
    let bias = 0x7f00_0000_0000;
    let modules = [UnwindModule {
        start: bias,
        end: bias + 0x10000,
        bias,
        cfi: &cfi,
    }];
    let mut m = Synth::new();
    // Frame 0 in the first function after its push: [rsp] = saved rbp, [rsp+8] = return.
    m.put_u64(0x7000, 0xdead_0000);
    m.put_u64(0x7008, bias + 0x2010);
    let u = unwind_thread(
        &regs(bias + 0x1050, 0x7000, 0x1234),
        &modules,
        &m,
        &m,
        limits(100),
    );
    assert_eq!(pcs(&u), [bias + 0x1050, bias + 0x2010]);
    assert_eq!(u.frames[1].trust, FrameTrust::Cfi);
    assert_eq!(u.frames[1].sp, 0x7010);
    // The outermost function's CFI says the return address is undefined.
    assert_eq!(u.stop, StopReason::EndOfStack);

    // Garbage CFI: the walk falls back to the frame pointer, never panics.
    let junk = CfiSections {
        eh_frame: Some(Section {
            svma: 0x500,
            data: Arc::new(vec![0xffu8; 64]),
        }),
        eh_frame_hdr: Some(Section {
            svma: 0x400,
            data: Arc::new(vec![1u8, 0x1b, 0x03, 0x3b, 0xff, 0xff, 0xff, 0xff]),
        }),
        ..CfiSections::default()
    };
    let modules = [UnwindModule {
        start: bias,
        end: bias + 0x10000,
        bias,
        cfi: &junk,
    }];
    let f = fp_chain();
    let u = unwind_thread(
        &regs(bias + 0x1050, 0x7000, 0x7010),
        &modules,
        &f,
        &f,
        limits(100),
    );
    assert_eq!(pcs(&u), [bias + 0x1050, 0x2000, 0x3000]);
}

#[test]
fn a_stack_pointer_that_does_not_grow_is_a_loop() {
    // The function at 0x3000 claims CFA = rsp + 0 (corrupt or hostile CFI): the caller's stack
    // pointer would equal the callee's, and the walk would never end.
    use gimli::write::{
        CallFrameInstruction, CommonInformationEntry, EhFrame, FrameDescriptionEntry, FrameTable,
    };
    use gimli::X86_64;
    let enc = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 1,
        address_size: 8,
    };
    let mut cie = CommonInformationEntry::new(enc, 1, -8, X86_64::RA);
    cie.add_instruction(CallFrameInstruction::Cfa(X86_64::RSP, 0));
    cie.add_instruction(CallFrameInstruction::Offset(X86_64::RA, -8));
    let mut table = FrameTable::default();
    let cie_id = table.add_cie(cie);
    table.add_fde(
        cie_id,
        FrameDescriptionEntry::new(gimli::write::Address::Constant(0x3000), 0x100),
    );
    let mut out = EhFrame(gimli::write::EndianVec::new(gimli::LittleEndian));
    table.write_eh_frame(&mut out).unwrap();
    let cfi = CfiSections {
        eh_frame: Some(Section {
            svma: 0x500,
            data: Arc::new(out.0.into_vec()),
        }),
        ..CfiSections::default()
    };
    let modules = [UnwindModule {
        start: 0,
        end: 0x10000,
        bias: 0,
        cfi: &cfi,
    }];
    let mut m = Synth::new();
    m.put_u64(0x6ff8, 0x3010);
    let u = unwind_thread(&regs(0x3008, 0x7000, 0), &modules, &m, &m, limits(100));
    assert_eq!(u.stop, StopReason::Loop);
    assert_eq!(pcs(&u), [0x3008]);
}

fn riscv_regs(pc: u64, sp: u64, s0: u64) -> Registers {
    Registers {
        machine: Machine::Riscv64,
        values: vec![("pc", pc), ("ra", 0x5555), ("sp", sp), ("s0", s0)],
        vector: Vec::new(),
    }
}

/// One module over the code addresses, without CFI: the walk falls back to frame pointers.
fn code_module(cfi: &CfiSections) -> [UnwindModule<'_>; 1] {
    [UnwindModule {
        start: 0,
        end: 0x10000,
        bias: 0,
        cfi,
    }]
}

/// RISC-V's frame pointer (psABI): s0 is the CFA, the return address at s0 − 8 and the
/// caller's s0 at s0 − 16; a zero return address ends the chain.
#[test]
fn riscv_frame_pointer_chain_walks_to_the_end() {
    let mut m = Synth::new();
    m.put_u64(0x7018, 0x2000); // ra
    m.put_u64(0x7010, 0x7040); // caller's s0
    m.put_u64(0x7038, 0x3000);
    m.put_u64(0x7030, 0x7060);
    m.put_u64(0x7058, 0);
    m.put_u64(0x7050, 0);
    let cfi = CfiSections::default();
    let modules = code_module(&cfi);
    let u = unwind_thread(
        &riscv_regs(0x1000, 0x7000, 0x7020),
        &modules,
        &m,
        &m,
        limits(100),
    );
    assert_eq!(pcs(&u), [0x1000, 0x2000, 0x3000]);
    assert_eq!(u.stop, StopReason::EndOfStack);
    assert_eq!(u.frames[1].trust, FrameTrust::FramePointer);
    assert_eq!(u.frames[1].sp, 0x7020);
    assert_eq!(u.frames[2].sp, 0x7040);
    // An s0 below sp or misaligned is no frame pointer.
    let u = unwind_thread(
        &riscv_regs(0x1000, 0x7000, 0x6ff0),
        &modules,
        &m,
        &m,
        limits(100),
    );
    assert_eq!((pcs(&u), u.stop), (vec![0x1000], StopReason::NoUnwindInfo));
}

/// `__vdso_rt_sigreturn` (`li a7, 139; ecall`): the registers come from the rt_sigframe's
/// ucontext, written here from the kernel's struct layout (siginfo 128, uc_flags 8, uc_link 8,
/// uc_stack 24, uc_sigmask 8 + 120 reserved, then sc_regs: pc, x1..x31).
#[test]
fn riscv_signal_frame_restores_the_interrupted_registers() {
    let mut m = Synth::new();
    m.put(0x4000, &[0x93, 0x08, 0xb0, 0x08, 0x73, 0x00, 0x00, 0x00]);
    let sc_regs = 0x9000 + 128 + 8 + 8 + 24 + 8 + 120;
    m.put_u64(sc_regs, 0x6000); // pc
    for x in 1..32u64 {
        let v = match x {
            2 => 0xa000, // sp
            8 => 0,      // s0: the interrupted frame has no frame pointer
            _ => 0x100 + x,
        };
        m.put_u64(sc_regs + 8 * x, v);
    }
    let cfi = CfiSections::default();
    let modules = code_module(&cfi);
    let u = unwind_thread(
        &riscv_regs(0x4000, 0x9000, 0),
        &modules,
        &m,
        &m,
        limits(100),
    );
    assert_eq!(pcs(&u)[..2], [0x4000, 0x6000]);
    assert!(u.frames[0].signal_trampoline);
    assert_eq!(u.frames[1].address, CodeAddress::InstructionPointer(0x6000));
    assert_eq!(u.frames[1].trust, FrameTrust::SignalContext);
    assert_eq!(u.frames[1].sp, 0xa000);
}
