//! Pure: walk a thread's stack from its registers to the list of physical frames.
//!
//! Inputs are the thread's registers from the core, the modules' call frame information (already
//! read into memory; `.eh_frame` with its `.eh_frame_hdr` search table, `.debug_frame`) and two
//! memory readers: the stack (the core's memory; bytes not in the core are unreadable) and code
//! (core memory, else the module file's bytes, for recognising signal trampolines). Output is the
//! frames plus why the walk stopped, which is data, never an error: a bad thread never fails a core.
//!
//! Per step, in order: a sigreturn trampoline (registers come from the `ucontext_t` the kernel
//! pushed), then CFI (gimli's unwind tables, with a small DWARF expression evaluator for the
//! `DW_CFA_*_expression` rules PLT stubs and glibc use), then the frame-pointer chain.

mod aarch64;
mod arm;
mod i386;
mod ppc;
mod riscv;
mod s390;
mod sparc64;
mod x86_64;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, EhFrame, EhFrameHdr, EndianSlice, RegisterRule,
    RunTimeEndian, UnwindContext, UnwindSection, UnwindTableRow,
};

use crate::elf_core::{Machine, Registers};

/// A code address with its meaning (framehop's `code_address.rs` idea): the pc of the innermost
/// frame or of a frame interrupted by a signal is the instruction itself; every other frame's pc
/// is a return address, which is looked up (CFI row, line table) at `pc − 1`, inside the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeAddress {
    InstructionPointer(u64),
    ReturnAddress(u64),
}

impl CodeAddress {
    pub fn pc(self) -> u64 {
        match self {
            CodeAddress::InstructionPointer(a) | CodeAddress::ReturnAddress(a) => a,
        }
    }

    /// The address to look up unwind and debug information at.
    pub fn lookup(self) -> u64 {
        match self {
            CodeAddress::InstructionPointer(a) => a,
            CodeAddress::ReturnAddress(a) => a.saturating_sub(1),
        }
    }
}

/// How a frame's registers were obtained (rust-minidump's `FrameTrust`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameTrust {
    /// The thread's registers in the core (frame 0).
    Context,
    /// Call frame information: DWARF CFI, or ARM's EHABI unwind tables.
    Cfi,
    /// The saved frame-pointer chain.
    FramePointer,
    /// The register context the kernel saved on the stack when delivering a signal.
    SignalContext,
    /// No frame on the stack: a function that left by a tail call (`jmp`), reconstructed from
    /// DWARF call-site records as gdb does.
    TailCall,
}

/// Why a stack walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The outermost frame: CFI says the return address is undefined, or it is 0.
    EndOfStack,
    /// The same (pc, stack pointer) came back, or the stack pointer did not grow.
    Loop,
    /// `max_frames` frames were produced.
    FrameLimit,
    /// The caller's registers lie in memory the core does not hold.
    UnreadableStack,
    /// The caller's frame is found from registers the core does not hold.
    MissingRegisters,
    /// No CFI for the pc and no usable frame pointer.
    NoUnwindInfo,
    /// The options' deadline passed.
    Timeout,
    /// The thread has no registers in the core.
    NoRegisters,
    /// The core's architecture has no unwinder here (only frame 0 is given).
    UnsupportedArch,
}

/// A section's bytes, shared: a range of a mapped file (read in place, so only the pages the
/// lookups touch are resident) or a buffer of its own.
pub type SectionData = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One unwind section and the SVMA it is loaded at.
#[derive(Clone)]
pub struct Section {
    pub svma: u64,
    pub data: SectionData,
}

impl std::fmt::Debug for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("svma", &self.svma)
            .field("len", &(*self.data).as_ref().len())
            .finish()
    }
}

/// A module's call frame information, owned.
#[derive(Debug, Clone, Default)]
pub struct CfiSections {
    pub eh_frame: Option<Section>,
    pub eh_frame_hdr: Option<Section>,
    pub debug_frame: Option<Section>,
    /// The FDEs' address ranges of `.eh_frame` (when there is no `.eh_frame_hdr`: static
    /// executables) and of `.debug_frame`, sorted, built on the first lookup: without them
    /// every lookup would scan the whole section.
    pub eh_frame_index: FdeIndex,
    pub debug_frame_index: FdeIndex,
    /// The rows found so far, by SVMA: the threads of one program return to the same few
    /// addresses (a recursion 200 deep is one), and finding a row means parsing its CIE and FDE
    /// and running the FDE's program up to the address.
    pub rows: RowCache,
    /// ARM's EHABI index (`.ARM.exidx`) and its table (`.ARM.extab`).
    pub arm_exidx: Option<Section>,
    pub arm_extab: Option<Section>,
    /// An ARM module's function starts (SVMAs from its symbol tables, bit 0 set for Thumb
    /// code), sorted: where a prologue is read when a function has no unwind table.
    pub arm_functions: Vec<u64>,
    pub text_svma: Option<u64>,
    pub got_svma: Option<u64>,
    pub big_endian: bool,
    /// The module is ELF32: its addresses, and the words its CFI saves registers in, are 4
    /// bytes.
    pub elf32: bool,
}

impl CfiSections {
    /// The size of an address (and of a saved register) in bytes.
    pub fn address_size(&self) -> u8 {
        if self.elf32 {
            4
        } else {
            8
        }
    }
}

/// The CFI rows of one module already looked up, by SVMA; `None`: the module has none there.
#[derive(Default)]
pub struct RowCache(std::sync::Mutex<std::collections::HashMap<u64, Option<Arc<FoundRow>>>>);

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowCache")
    }
}

impl Clone for RowCache {
    /// A copy starts empty: rows are only ever a shortcut.
    fn clone(&self) -> Self {
        RowCache::default()
    }
}

/// A row and what applying it needs of its FDE. Its expressions are offsets into the section
/// the row came from.
#[derive(Debug)]
pub struct FoundRow {
    row: UnwindTableRow<usize>,
    from_debug_frame: bool,
    ra_reg: gimli::Register,
    signal_frame: bool,
}

/// (first SVMA, end SVMA, section offset) of every FDE of a section, sorted by address.
pub type FdeIndex = std::sync::OnceLock<Vec<(u64, u64, usize)>>;

/// The FDE covering `svma` in a section without a search table, through its [`FdeIndex`]
/// (built here on first use). Entries past a damaged one are not indexed.
fn indexed_fde<'a, S: UnwindSection<R<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    index: &FdeIndex,
    svma: u64,
) -> Option<gimli::FrameDescriptionEntry<R<'a>>> {
    let table = index.get_or_init(|| {
        let mut v = Vec::new();
        let mut entries = section.entries(bases);
        while let Ok(Some(entry)) = entries.next() {
            if let gimli::CieOrFde::Fde(partial) = entry {
                if let Ok(fde) = partial.parse(S::cie_from_offset) {
                    v.push((fde.initial_address(), fde.end_address(), fde.offset()));
                }
            }
        }
        v.sort_unstable();
        v
    });
    let i = table.partition_point(|e| e.0 <= svma).checked_sub(1)?;
    let (_, end, offset) = table[i];
    if svma >= end {
        return None;
    }
    section
        .fde_from_offset(bases, S::Offset::from(offset), S::cie_from_offset)
        .ok()
}

impl From<CfiError> for StopReason {
    /// Why a walk ends when CFI could not step and no fallback applies.
    fn from(e: CfiError) -> StopReason {
        match e {
            CfiError::NoInfo => StopReason::NoUnwindInfo,
            CfiError::Unreadable => StopReason::UnreadableStack,
            CfiError::MissingRegister => StopReason::MissingRegisters,
        }
    }
}

/// A module as the unwinder sees it: an AVMA range, its bias and its CFI.
#[derive(Debug, Clone, Copy)]
pub struct UnwindModule<'a> {
    pub start: u64,
    pub end: u64,
    /// AVMA − SVMA.
    pub bias: u64,
    pub cfi: &'a CfiSections,
}

/// Random access to the crashed process's memory.
pub trait MemoryReader {
    /// Fill `buf` from `addr`; false when any byte is unreadable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;

    /// The process's byte order is big endian.
    fn big_endian(&self) -> bool {
        false
    }

    /// An unsigned integer of `size` bytes (at most 8) in the process's byte order.
    fn read_uint(&self, addr: u64, size: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        let b = b.get_mut(..size)?;
        if !self.read(addr, b) {
            return None;
        }
        let fold = |v: u64, &x: &u8| (v << 8) | u64::from(x);
        Some(if self.big_endian() {
            b.iter().fold(0, fold)
        } else {
            b.iter().rev().fold(0, fold)
        })
    }

    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.read_uint(addr, 8)
    }

    fn read_u32(&self, addr: u64) -> Option<u32> {
        self.read_uint(addr, 4).map(|v| v as u32)
    }

    /// A word of `size` bytes (4 or 8).
    fn read_word(&self, addr: u64, size: u8) -> Option<u64> {
        self.read_uint(addr, if size == 4 { 4 } else { 8 })
    }
}

/// A memory reader for one CFI row: saved registers are `size` bytes, addresses in DWARF
/// expressions `address_size`.
pub(crate) struct Words<'a> {
    pub mem: &'a dyn MemoryReader,
    pub size: u8,
    pub address_size: u8,
}

impl Words<'_> {
    /// One saved register at `addr`.
    pub fn word(&self, addr: u64) -> Option<u64> {
        self.mem.read_word(addr, self.size)
    }
}

impl MemoryReader for crate::elf_core::Memory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        crate::elf_core::Memory::read(self, addr, buf)
    }
    fn read_u64(&self, addr: u64) -> Option<u64> {
        crate::elf_core::Memory::read_u64(self, addr)
    }
    fn read_u32(&self, addr: u64) -> Option<u32> {
        crate::elf_core::Memory::read_u32(self, addr)
    }
    fn big_endian(&self) -> bool {
        self.endian() == crate::elf_core::Endian::Big
    }
}

/// One physical frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub address: CodeAddress,
    pub trust: FrameTrust,
    /// The frame's stack pointer.
    pub sp: u64,
    /// This frame is a sigreturn trampoline (gdb's `<signal handler called>`).
    pub signal_trampoline: bool,
    /// The frame's registers by DWARF number, as far as they are known in it: all of them in
    /// frame 0 and in a frame the kernel saved for a signal; in a caller, those the CFI (or the
    /// frame-pointer chain) recovers and the callee-saved ones, never the caller-saved ones
    /// (a call clobbers them; gdb prints variables living there as `<optimized out>`).
    pub regs: KnownRegs,
    /// The canonical frame address (the caller's stack pointer before the call), when the
    /// step to the caller computed one.
    pub cfa: Option<u64>,
}

/// Registers by DWARF number, only the known ones stored: a thread of a deep stack keeps one
/// set per frame until its variables are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownRegs {
    /// Bit `n`: register `n` is known (registers 64 and up are never kept).
    known: u64,
    /// The known registers' values, lowest number first.
    values: Box<[u64]>,
}

impl KnownRegs {
    pub fn new(regs: &[Option<u64>]) -> KnownRegs {
        let mut known = 0u64;
        let mut values = Vec::new();
        for (i, r) in regs.iter().enumerate().take(64) {
            if let Some(v) = r {
                known |= 1 << i;
                values.push(*v);
            }
        }
        KnownRegs {
            known,
            values: values.into_boxed_slice(),
        }
    }

    /// Every register up to the highest known one, `None` where unknown.
    pub fn to_vec(&self) -> Vec<Option<u64>> {
        let n = 64 - self.known.leading_zeros() as usize;
        let mut it = self.values.iter();
        (0..n)
            .map(|i| {
                if self.known & (1 << i) != 0 {
                    it.next().copied()
                } else {
                    None
                }
            })
            .collect()
    }
}

/// The result of walking one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwound {
    pub frames: Vec<RawFrame>,
    pub stop: StopReason,
}

/// Limits for one walk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_frames: usize,
    pub deadline: Option<Instant>,
}

/// Walk one thread. `modules` must be sorted by `start`.
pub fn unwind_thread(
    regs: &Registers,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
    code: &dyn MemoryReader,
    limits: Limits,
) -> Unwound {
    match regs.machine {
        Machine::X86_64 | Machine::X32 => {
            let arch = x86_64::X86_64 {
                x32: regs.machine == Machine::X32,
            };
            walk(&arch, regs, modules, stack, code, limits)
        }
        Machine::I386 => walk(&i386::I386, regs, modules, stack, code, limits),
        Machine::Ppc | Machine::Ppc64 => {
            let arch = ppc::Ppc {
                is_64: regs.machine == Machine::Ppc64,
            };
            walk(&arch, regs, modules, stack, code, limits)
        }
        Machine::Sparc64 => walk(&sparc64::Sparc64, regs, modules, stack, code, limits),
        Machine::S390 | Machine::S390x => {
            let arch = s390::S390 {
                is_64: regs.machine == Machine::S390x,
            };
            walk(&arch, regs, modules, stack, code, limits)
        }
        Machine::Aarch64 => walk(&aarch64::Aarch64, regs, modules, stack, code, limits),
        Machine::Riscv32 | Machine::Riscv64 => {
            let word = if regs.machine == Machine::Riscv64 {
                8
            } else {
                4
            };
            walk(&riscv::Riscv { word }, regs, modules, stack, code, limits)
        }
        Machine::Arm => walk(&arm::Arm, regs, modules, stack, code, limits),
        _ => {
            let frames = regs
                .pc()
                .map(|pc| RawFrame {
                    address: CodeAddress::InstructionPointer(pc),
                    trust: FrameTrust::Context,
                    sp: regs.sp().unwrap_or(0),
                    signal_trampoline: false,
                    regs: KnownRegs::default(),
                    cfa: None,
                })
                .into_iter()
                .collect();
            Unwound {
                frames,
                stop: StopReason::UnsupportedArch,
            }
        }
    }
}

type Regs = Vec<Option<u64>>;

/// One step of a walk to the caller.
pub(crate) struct Step {
    /// The caller's registers by DWARF number.
    pub regs: Regs,
    /// The caller's pc and stack pointer (`None`: not recovered).
    pub pc: Option<u64>,
    pub sp: Option<u64>,
    pub trust: FrameTrust,
    /// The caller's pc is an instruction pointer (it was interrupted), not a return address.
    pub next_is_ip: bool,
    /// The stepped-from frame's CFA, when the step computed one.
    pub cfa: Option<u64>,
}

/// What a stack walk needs of one architecture; [`walk`] is the same for all.
pub(crate) trait Arch {
    /// A caller's stack pointer may equal its callee's (aarch64's frameless leaf functions);
    /// on x86_64 every call pushes, so a caller's is strictly above.
    const SAME_SP: bool;
    /// Frame 0's registers by DWARF number, its pc and its stack pointer.
    fn start(&self, regs: &Registers) -> Option<(Regs, u64, u64)>;
    /// The code at `pc` is the kernel's signal-return trampoline.
    fn is_sigreturn(&self, code: &dyn MemoryReader, pc: u64) -> bool;
    /// One step to the caller; `code` reads instructions (the core, else the module file),
    /// for telling one kind of signal trampoline from another.
    fn step(
        &self,
        regs: &Regs,
        frame: &RawFrame,
        first: bool,
        modules: &[UnwindModule<'_>],
        stack: &dyn MemoryReader,
        code: &dyn MemoryReader,
    ) -> Result<Step, StopReason>;
    /// Of a caller's registers, those its variables may use: a call clobbers the rest.
    fn in_caller(&self, regs: &Regs) -> Regs;
}

/// `regs` with the registers a call clobbers (`clobbered`) unknown: what [`Arch::in_caller`]
/// keeps of a caller's registers.
pub(crate) fn clobber(mut regs: Regs, clobbered: impl IntoIterator<Item = usize>) -> Regs {
    for r in clobbered {
        if let Some(slot) = regs.get_mut(r) {
            *slot = None;
        }
    }
    regs
}

/// Walk one thread with `arch`'s rules: trampoline check, one step per frame, loop and limit
/// checks, each frame's registers and CFA recorded for its variables.
pub(crate) fn walk<A: Arch>(
    arch: &A,
    core_regs: &Registers,
    modules: &[UnwindModule<'_>],
    stack: &dyn MemoryReader,
    code: &dyn MemoryReader,
    limits: Limits,
) -> Unwound {
    let Some((mut regs, pc, sp)) = arch.start(core_regs) else {
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
        frame.signal_trampoline = arch.is_sigreturn(code, pc);
        if frame.signal_trampoline {
            // The handler "returned" into the trampoline's first instruction; no call precedes
            // it, so it is looked up at its own address.
            frame.address = CodeAddress::InstructionPointer(pc);
        }
        let first = frames.is_empty();
        let stepped = arch.step(&regs, &frame, first, modules, stack, code);
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
        let Some(npc) = s.pc else {
            break StopReason::UnreadableStack;
        };
        if npc == 0 {
            break StopReason::EndOfStack;
        }
        let Some(nsp) = s.sp else {
            // The caller's pc is known but not its stack pointer: it is shown, as gdb shows
            // it, and the walk ends there.
            frames.push(RawFrame {
                address: CodeAddress::ReturnAddress(npc),
                trust: s.trust,
                sp,
                signal_trampoline: false,
                regs: KnownRegs::new(&[]),
                cfa: None,
            });
            break StopReason::MissingRegisters;
        };
        // The stack grows down: a caller's frame is above its callee's. A signal frame may
        // switch stacks (sigaltstack), so it is exempt.
        let below = if A::SAME_SP { nsp < sp } else { nsp <= sp };
        if s.trust != FrameTrust::SignalContext && below {
            break StopReason::Loop;
        }
        if seen.repeat(npc, nsp) {
            break StopReason::Loop;
        }
        let known = if s.trust == FrameTrust::SignalContext {
            s.regs.clone()
        } else {
            arch.in_caller(&s.regs)
        };
        regs = s.regs;
        frame = RawFrame {
            address: if s.next_is_ip {
                CodeAddress::InstructionPointer(npc)
            } else {
                CodeAddress::ReturnAddress(npc)
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

fn module_at<'m, 'a>(modules: &'m [UnwindModule<'a>], avma: u64) -> Option<&'m UnwindModule<'a>> {
    let i = modules.partition_point(|m| m.start <= avma);
    let m = modules.get(i.checked_sub(1)?)?;
    (avma < m.end).then_some(m)
}

/// What CFI says about one frame: the caller's register values by DWARF number.
pub(crate) struct CfiStep {
    /// Caller registers (DWARF numbering); `None` = unknown.
    pub regs: Vec<Option<u64>>,
    pub cfa: u64,
    /// The return address: the value of the CIE's return-address column (which is not always
    /// a real register: the ppc vDSO's signal trampoline names a column of its own).
    pub ra: Option<u64>,
    /// The return-address column was explicitly undefined: the outermost frame.
    pub ra_undefined: bool,
    /// The FDE's CIE has the 'S' augmentation: the caller's pc is not a return address.
    pub signal_frame: bool,
    /// The registers the row has a rule for (the others kept their values).
    pub ruled: Vec<u16>,
}

impl CfiStep {
    /// How the caller's registers were found: a signal frame's CFI describes the context the
    /// kernel saved.
    pub fn trust(&self) -> FrameTrust {
        if self.signal_frame {
            FrameTrust::SignalContext
        } else {
            FrameTrust::Cfi
        }
    }

    pub fn has_rule(&self, reg: usize) -> bool {
        self.ruled.iter().any(|&r| usize::from(r) == reg)
    }
}

pub(crate) enum CfiError {
    /// No FDE covers the address.
    NoInfo,
    /// The rules needed memory the core does not hold.
    Unreadable,
    /// The CFA is computed from a register whose value is not known (QEMU's cores hold no
    /// floating-point registers, where s390 leaf functions keep their stack pointer).
    MissingRegister,
}

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// Find the CFI row for `lookup_avma` in `module` and apply it to `regs` (DWARF numbering).
/// Registers saved on the stack are `slot` bytes (the architecture's register size, which is
/// not always the module's address size: x32 saves 8-byte registers).
pub(crate) fn cfi_step(
    module: &UnwindModule<'_>,
    lookup_avma: u64,
    regs: &[Option<u64>],
    slot: u8,
    vendor: gimli::Vendor,
    stack: &dyn MemoryReader,
) -> Result<CfiStep, CfiError> {
    let cfi = module.cfi;
    let endian = if cfi.big_endian {
        RunTimeEndian::Big
    } else {
        RunTimeEndian::Little
    };
    let words = Words {
        mem: stack,
        size: slot,
        address_size: cfi.address_size(),
    };
    let svma = lookup_avma.wrapping_sub(module.bias);
    let cached = cfi.rows.0.lock().ok().and_then(|m| m.get(&svma).cloned());
    let found = match cached {
        Some(f) => f,
        None => {
            let f = find_row(cfi, endian, vendor, svma).map(Arc::new);
            if let Ok(mut m) = cfi.rows.0.lock() {
                m.insert(svma, f.clone());
            }
            f
        }
    };
    let found = found.ok_or(CfiError::NoInfo)?;
    if found.from_debug_frame {
        let data = cfi.debug_frame.as_ref().ok_or(CfiError::NoInfo)?;
        let mut section = DebugFrame::from(EndianSlice::new((*data.data).as_ref(), endian));
        section.set_address_size(cfi.address_size());
        apply_row(&section, &found, regs, &words)
    } else {
        let data = cfi.eh_frame.as_ref().ok_or(CfiError::NoInfo)?;
        let mut section = EhFrame::from(EndianSlice::new((*data.data).as_ref(), endian));
        section.set_address_size(cfi.address_size());
        apply_row(&section, &found, regs, &words)
    }
}

/// The row of `cfi` for `svma`: `.eh_frame` first (through `.eh_frame_hdr`'s search table when
/// there is one), then `.debug_frame`.
fn find_row(
    cfi: &CfiSections,
    endian: RunTimeEndian,
    vendor: gimli::Vendor,
    svma: u64,
) -> Option<FoundRow> {
    let mut bases = BaseAddresses::default();
    if let Some(t) = cfi.text_svma {
        bases = bases.set_text(t);
    }
    if let Some(g) = cfi.got_svma {
        bases = bases.set_got(g);
    }
    let mut ctx = UnwindContext::new();
    if let Some(eh) = &cfi.eh_frame {
        bases = bases.set_eh_frame(eh.svma);
        let mut section = EhFrame::from(EndianSlice::new((*eh.data).as_ref(), endian));
        section.set_address_size(cfi.address_size());
        section.set_vendor(vendor);
        // The binary search table of .eh_frame_hdr when there is one; a linear scan otherwise.
        let mut fde = None;
        if let Some(hdr) = &cfi.eh_frame_hdr {
            let b = bases.clone().set_eh_frame_hdr(hdr.svma);
            let parsed = EhFrameHdr::from(EndianSlice::new((*hdr.data).as_ref(), endian))
                .parse(&b, cfi.address_size());
            if let Some(table) = parsed.as_ref().ok().and_then(|p| p.table()) {
                fde = Some(table.fde_for_address(&section, &b, svma, EhFrame::cie_from_offset));
                bases = b;
            }
        }
        let fde = match fde {
            Some(f) => f.ok(),
            None => indexed_fde(&section, &bases, &cfi.eh_frame_index, svma),
        };
        if let Some(fde) = fde {
            if let Ok(row) = fde.unwind_info_for_address(&section, &bases, &mut ctx, svma) {
                return Some(FoundRow {
                    row: row.clone(),
                    from_debug_frame: false,
                    ra_reg: fde.cie().return_address_register(),
                    signal_frame: fde.is_signal_trampoline(),
                });
            }
        }
    }
    if let Some(df) = &cfi.debug_frame {
        let mut section = DebugFrame::from(EndianSlice::new((*df.data).as_ref(), endian));
        section.set_address_size(cfi.address_size());
        section.set_vendor(vendor);
        if let Some(fde) = indexed_fde(&section, &bases, &cfi.debug_frame_index, svma) {
            if let Ok(row) = fde.unwind_info_for_address(&section, &bases, &mut ctx, svma) {
                return Some(FoundRow {
                    row: row.clone(),
                    from_debug_frame: true,
                    ra_reg: fde.cie().return_address_register(),
                    signal_frame: fde.is_signal_trampoline(),
                });
            }
        }
    }
    None
}

fn apply_row<'a, S: UnwindSection<R<'a>>>(
    section: &S,
    found: &FoundRow,
    regs: &[Option<u64>],
    stack: &Words<'_>,
) -> Result<CfiStep, CfiError> {
    let row = &found.row;
    let ra_reg = found.ra_reg;
    let get = |r: gimli::Register| regs.get(usize::from(r.0)).copied().flatten();
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => get(*register)
            .ok_or(CfiError::MissingRegister)?
            .wrapping_add_signed(*offset),
        CfaRule::Expression(e) => {
            let expr = e.get(section).map_err(|_| CfiError::NoInfo)?;
            eval_expr(expr, regs, stack, None).ok_or(CfiError::Unreadable)?
        }
    };
    // Registers without a rule keep their value (callee-saved and untouched); this matches
    // what gdb and framehop assume for x86_64.
    let mut out: Vec<Option<u64>> = regs.to_vec();
    let mut ra_undefined = false;
    let mut ruled = Vec::new();
    for (reg, rule) in row.registers() {
        let i = usize::from(reg.0);
        if i >= MAX_CFI_REGISTER {
            continue; // a garbage column number must not allocate
        }
        let v = match rule {
            RegisterRule::Undefined => {
                if *reg == ra_reg {
                    ra_undefined = true;
                }
                None
            }
            RegisterRule::SameValue => get(*reg),
            RegisterRule::Offset(o) => stack.word(cfa.wrapping_add_signed(*o)),
            RegisterRule::ValOffset(o) => Some(cfa.wrapping_add_signed(*o)),
            RegisterRule::Register(r) => get(*r),
            RegisterRule::Expression(e) => e
                .get(section)
                .ok()
                .and_then(|x| eval_expr(x, regs, stack, Some(cfa)))
                .and_then(|a| stack.word(a)),
            RegisterRule::ValExpression(e) => e
                .get(section)
                .ok()
                .and_then(|x| eval_expr(x, regs, stack, Some(cfa))),
            RegisterRule::Architectural => None,
            RegisterRule::Constant(c) => Some(*c),
        };
        if out.len() <= i {
            out.resize(i + 1, None);
        }
        out[i] = v;
        ruled.push(reg.0);
    }
    let ra = out.get(usize::from(ra_reg.0)).copied().flatten();
    if !ra_undefined && ra.is_none() {
        // The return address could not be read (its slot is outside the core).
        return Err(CfiError::Unreadable);
    }
    Ok(CfiStep {
        regs: out,
        cfa,
        ra,
        ra_undefined,
        signal_frame: found.signal_frame,
        ruled,
    })
}

/// Columns past this are ignored (the highest real one, ppc's vector registers, is 1200-odd;
/// none we unwind with is above 110).
const MAX_CFI_REGISTER: usize = 128;

/// Evaluate a CFI DWARF expression to a value (an address for `DW_CFA_expression`).
fn eval_expr(
    expr: gimli::Expression<R<'_>>,
    regs: &[Option<u64>],
    stack: &Words<'_>,
    initial: Option<u64>,
) -> Option<u64> {
    let encoding = gimli::Encoding {
        address_size: stack.address_size,
        format: gimli::Format::Dwarf32,
        version: 4,
    };
    let mut eval = expr.evaluation(encoding);
    if let Some(v) = initial {
        eval.set_initial_value(v);
    }
    let mut res = eval.evaluate().ok()?;
    // A bound on resumptions: garbage expressions must not loop.
    for _ in 0..64 {
        res = match res {
            gimli::EvaluationResult::Complete => {
                let pieces = eval.result();
                return match pieces.first()?.location {
                    gimli::Location::Address { address } => Some(address),
                    gimli::Location::Value { value } => value.to_u64(!0).ok(),
                    _ => None,
                };
            }
            gimli::EvaluationResult::RequiresMemory { address, size, .. } => {
                let v = stack.mem.read_uint(address, usize::from(size).min(8))?;
                eval.resume_with_memory(gimli::Value::Generic(v)).ok()?
            }
            gimli::EvaluationResult::RequiresRegister { register, .. } => {
                let v = regs.get(usize::from(register.0)).copied().flatten()?;
                eval.resume_with_register(gimli::Value::Generic(v)).ok()?
            }
            _ => return None,
        };
    }
    None
}

/// Tracks (pc, sp) pairs to detect loops.
pub(crate) struct Seen(HashSet<(u64, u64)>);

impl Seen {
    pub fn new() -> Self {
        Seen(HashSet::new())
    }
    /// True when this pair was seen before.
    pub fn repeat(&mut self, pc: u64, sp: u64) -> bool {
        !self.0.insert((pc, sp))
    }
}

#[cfg(test)]
mod tests;
