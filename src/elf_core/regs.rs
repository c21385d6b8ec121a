//! CPU architectures and their general-purpose register sets as the kernel writes them in
//! NT_PRSTATUS (`pr_reg`, i.e. `struct user_regs_struct` / `user_pt_regs`).

/// The architecture of a core, from `e_machine` and the class (`EI_CLASS`): an ELF32 x86-64
/// core is x32, a 32-bit S/390 one s390.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    X32,
    Aarch64,
    I386,
    Arm,
    /// RV32 and RV64 share `e_machine`; the class tells them apart.
    Riscv32,
    Riscv64,
    /// 32-bit PowerPC.
    Ppc,
    /// 64-bit PowerPC, either byte order.
    Ppc64,
    /// 31-bit S/390.
    S390,
    S390x,
    Sparc64,
    /// Motorola 68000: its `elf_prstatus` aligns words to 2 bytes.
    M68k,
    Other(u16),
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_386: u16 = 3;
const EM_68K: u16 = 4;
const EM_ARM: u16 = 40;
const EM_RISCV: u16 = 243;
const EM_PPC: u16 = 20;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_SPARCV9: u16 = 43;

impl Machine {
    pub fn from_header(m: u16, is_64: bool) -> Machine {
        match (m, is_64) {
            (EM_X86_64, true) => Machine::X86_64,
            (EM_X86_64, false) => Machine::X32,
            (EM_AARCH64, _) => Machine::Aarch64,
            (EM_386, _) => Machine::I386,
            (EM_ARM, _) => Machine::Arm,
            (EM_RISCV, false) => Machine::Riscv32,
            (EM_RISCV, true) => Machine::Riscv64,
            (EM_PPC, _) => Machine::Ppc,
            (EM_PPC64, _) => Machine::Ppc64,
            (EM_S390, false) => Machine::S390,
            (EM_S390, true) => Machine::S390x,
            (EM_SPARCV9, _) => Machine::Sparc64,
            (EM_68K, _) => Machine::M68k,
            (other, _) => Machine::Other(other),
        }
    }

    /// The `e_machine` value this was read from.
    pub fn e_machine(self) -> u16 {
        match self {
            Machine::X86_64 | Machine::X32 => EM_X86_64,
            Machine::Aarch64 => EM_AARCH64,
            Machine::I386 => EM_386,
            Machine::Arm => EM_ARM,
            Machine::Riscv32 | Machine::Riscv64 => EM_RISCV,
            Machine::Ppc => EM_PPC,
            Machine::Ppc64 => EM_PPC64,
            Machine::S390 | Machine::S390x => EM_S390,
            Machine::Sparc64 => EM_SPARCV9,
            Machine::M68k => EM_68K,
            Machine::Other(m) => m,
        }
    }

    /// The architecture's name as `uname -m` and the toolchains spell it, from `e_machine`
    /// and the core's class and byte order: an ELF32 x86-64 core is `x32`, a little-endian
    /// PowerPC64 one `ppc64le`, a 64-bit S/390 one `s390x`. Never a bare number: an unknown
    /// machine is `unknown-e_machine-N`.
    pub fn name(self, is_64: bool, big_endian: bool) -> String {
        let name = match (self.e_machine(), is_64, big_endian) {
            (EM_X86_64, true, _) => "x86_64",
            (EM_X86_64, false, _) => "x32",
            (EM_386, _, _) => "i386",
            (6, _, _) => "i486",
            (EM_AARCH64, _, false) => "aarch64",
            (EM_AARCH64, _, true) => "aarch64_be",
            (40, _, false) => "arm",
            (40, _, true) => "armeb",
            (EM_RISCV, true, _) => "riscv64",
            (EM_RISCV, false, _) => "riscv32",
            (20, _, _) => "ppc",
            (21, _, true) => "ppc64",
            (21, _, false) => "ppc64le",
            (22, true, _) => "s390x",
            (22, false, _) => "s390",
            (2 | 18, _, _) => "sparc",
            (43, _, _) => "sparc64",
            (EM_68K, _, _) => "m68k",
            (8, true, true) => "mips64",
            (8, true, false) => "mips64el",
            (8, false, true) => "mips",
            (8, false, false) => "mipsel",
            (258, _, _) => "loongarch64",
            (42, _, _) => "sh",
            (15, _, _) => "parisc",
            (m, _, _) => return format!("unknown-e_machine-{m}"),
        };
        name.into()
    }

    /// Register names in `pr_reg` order, the offset of `pr_reg` in NT_PRSTATUS and the size
    /// of each register, for a core of this class (`is_64`). The 64-bit `elf_prstatus` puts
    /// `pr_reg` at 112, the 32-bit one at 72 (siginfo 12, cursig 2 + pad 2, sigpend 4, sighold
    /// 4, pid, ppid, pgrp, sid, four 8-byte timevals). x32's registers are x86_64's 8-byte
    /// ones in the 32-bit layout. Only the leading registers of a set are named where the rest
    /// differ in size (s390x's 4-byte access registers).
    pub(crate) fn pr_reg_layout(
        self,
        is_64: bool,
    ) -> Option<(&'static [&'static str], usize, usize)> {
        let at = match (self, is_64) {
            (_, true) => 112,
            // m68k aligns longs to 2 bytes: no padding after cursig, so every field after it
            // (pid at 22, pr_reg at 70) is 2 bytes earlier than in other 32-bit layouts.
            (Machine::M68k, false) => 70,
            (_, false) => 72,
        };
        let word = if is_64 { 8 } else { 4 };
        let names = match self {
            Machine::X86_64 | Machine::X32 => return Some((X86_64_NAMES, at, 8)),
            Machine::Aarch64 => AARCH64_NAMES,
            Machine::I386 => I386_NAMES,
            Machine::Arm => ARM_NAMES,
            Machine::Riscv32 | Machine::Riscv64 => RISCV_NAMES,
            Machine::Ppc | Machine::Ppc64 => PPC_NAMES,
            Machine::S390 | Machine::S390x => S390_NAMES,
            Machine::Sparc64 => SPARC64_NAMES,
            Machine::M68k => M68K_NAMES,
            Machine::Other(_) => return None,
        };
        Some((names, at, word))
    }
}

/// The 4-byte leading registers of m68k's `struct user_regs_struct` (`usp` named `sp`); `sr`
/// (2 bytes after a 2-byte `stkadj`) and `pc` follow them ([`M68K_SR_PC`]).
pub const M68K_NAMES: &[&str] = &[
    "d1", "d2", "d3", "d4", "d5", "d6", "d7", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "d0", "sp",
    "orig_d0",
];
/// Offsets of m68k's `sr` (u16) and `pc` (u32) from the start of `pr_reg`.
pub const M68K_SR_PC: (usize, usize) = (17 * 4 + 2, 17 * 4 + 4);

/// `struct pt_regs` of 32-bit ARM (`elf_gregset_t`): r0..r15, cpsr, orig_r0.
pub const ARM_NAMES: &[&str] = &[
    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "sp", "lr",
    "pc", "cpsr", "orig_r0",
];

/// PowerPC's `struct pt_regs` (both word sizes): gpr0..31, nip, msr, orig_gpr3, ctr, link,
/// xer, ccr, then softe/mq, trap, dar, dsisr, result.
pub const PPC_NAMES: &[&str] = &[
    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15", "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26", "r27",
    "r28", "r29", "r30", "r31", "pc", "msr", "orig_r3", "ctr", "lr", "xer", "cr", "softe", "trap",
    "dar", "dsisr", "result",
];

/// S/390's `s390_regs`: the PSW (mask, address), then r0..r15 (the access registers and
/// orig_gpr2 after them are not read).
pub const S390_NAMES: &[&str] = &[
    "pswm", "pswa", "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11",
    "r12", "r13", "r14", "r15",
];

/// sparc64's `elf_gregset_t`: the globals, outs, locals and ins (the last two read from the
/// register window), then tstate, tpc, tnpc, y.
pub const SPARC64_NAMES: &[&str] = &[
    "g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", "o0", "o1", "o2", "o3", "o4", "o5", "sp", "o7",
    "l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "i0", "i1", "i2", "i3", "i4", "i5", "fp", "i7",
    "tstate", "pc", "npc", "y",
];

/// `struct user_regs_struct` on x86_64, in order.
pub const X86_64_NAMES: &[&str] = &[
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];

/// `struct user_pt_regs` on aarch64: x0..x30, sp, pc, pstate.
pub const AARCH64_NAMES: &[&str] = &[
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30", "sp", "pc", "pstate",
];

/// A thread's general-purpose registers, named as gdb names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registers {
    pub machine: Machine,
    /// `(name, value)` in the kernel's order.
    pub values: Vec<(&'static str, u64)>,
    /// The low 64 bits of each vector register (x86_64: xmm0..xmm15 from NT_PRFPREG; s390:
    /// the floating-point registers f0..f15), where a
    /// `double` or `float` argument lives; empty when the core has none.
    pub vector: Vec<u64>,
}

impl Registers {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }

    /// Program counter.
    pub fn pc(&self) -> Option<u64> {
        match self.machine {
            Machine::X86_64 | Machine::X32 => self.get("rip"),
            Machine::I386 => self.get("eip"),
            // The PSW address; in 31-bit mode its top bit is the addressing-mode flag.
            Machine::S390 => self.get("pswa").map(|a| a & 0x7fff_ffff),
            Machine::S390x => self.get("pswa"),
            Machine::Other(_) => None,
            _ => self.get("pc"),
        }
    }

    /// Stack pointer.
    pub fn sp(&self) -> Option<u64> {
        match self.machine {
            Machine::X86_64 | Machine::X32 => self.get("rsp"),
            Machine::I386 => self.get("esp"),
            Machine::Ppc | Machine::Ppc64 => self.get("r1"),
            Machine::S390 | Machine::S390x => self.get("r15"),
            Machine::Other(_) => None,
            _ => self.get("sp"),
        }
    }

    /// Frame pointer.
    pub fn fp(&self) -> Option<u64> {
        match self.machine {
            Machine::X86_64 | Machine::X32 => self.get("rbp"),
            Machine::Aarch64 => self.get("x29"),
            Machine::I386 => self.get("ebp"),
            Machine::Arm => self.get("r11"),
            Machine::Riscv32 | Machine::Riscv64 => self.get("s0"),
            Machine::Ppc | Machine::Ppc64 => self.get("r1"),
            Machine::S390 | Machine::S390x => self.get("r11"),
            Machine::Sparc64 => self.get("fp"),
            // gcc's m68k frame pointer.
            Machine::M68k => self.get("a6"),
            Machine::Other(_) => None,
        }
    }
}

/// `struct user_regs_struct` on i386 (the kernel's `pr_reg`), in order.
pub const I386_NAMES: &[&str] = &[
    "ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs", "orig_eax", "eip",
    "cs", "eflags", "esp", "ss",
];

/// `struct user_regs_struct` on RISC-V: pc, then x1..x31 by their ABI names.
pub const RISCV_NAMES: &[&str] = &[
    "pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
    "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5",
    "t6",
];
