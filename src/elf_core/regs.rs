//! CPU architectures and their general-purpose register sets as the kernel writes them in
//! NT_PRSTATUS (`pr_reg`, i.e. `struct user_regs_struct` / `user_pt_regs`).

/// The architecture of a core, from `e_machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
    I386,
    Riscv,
    Other(u16),
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_386: u16 = 3;
const EM_RISCV: u16 = 243;

impl Machine {
    pub fn from_e_machine(m: u16) -> Machine {
        match m {
            EM_X86_64 => Machine::X86_64,
            EM_AARCH64 => Machine::Aarch64,
            EM_386 => Machine::I386,
            EM_RISCV => Machine::Riscv,
            other => Machine::Other(other),
        }
    }

    /// The `e_machine` value this was read from.
    pub fn e_machine(self) -> u16 {
        match self {
            Machine::X86_64 => EM_X86_64,
            Machine::Aarch64 => EM_AARCH64,
            Machine::I386 => EM_386,
            Machine::Riscv => EM_RISCV,
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
            (4, _, _) => "m68k",
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

    /// Register names in `pr_reg` order and the offset of `pr_reg` in NT_PRSTATUS, for a core
    /// of this class (`is_64`); each register is one word of the class.
    pub(crate) fn pr_reg_layout(self, is_64: bool) -> Option<(&'static [&'static str], usize)> {
        match (self, is_64) {
            (Machine::X86_64, true) => Some((X86_64_NAMES, 112)),
            (Machine::Aarch64, true) => Some((AARCH64_NAMES, 112)),
            (Machine::Riscv, true) => Some((RISCV_NAMES, 112)),
            // elf_prstatus32: siginfo 12, cursig 2 + pad 2, sigpend 4, sighold 4, pid, ppid,
            // pgrp, sid, four 8-byte timevals: pr_reg at 72.
            (Machine::I386, false) => Some((I386_NAMES, 72)),
            _ => None,
        }
    }
}

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
    /// The low 64 bits of each vector register (x86_64: xmm0..xmm15 from NT_PRFPREG), where a
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
            Machine::X86_64 => self.get("rip"),
            Machine::Aarch64 | Machine::Riscv => self.get("pc"),
            Machine::I386 => self.get("eip"),
            Machine::Other(_) => None,
        }
    }

    /// Stack pointer.
    pub fn sp(&self) -> Option<u64> {
        match self.machine {
            Machine::X86_64 => self.get("rsp"),
            Machine::Aarch64 | Machine::Riscv => self.get("sp"),
            Machine::I386 => self.get("esp"),
            Machine::Other(_) => None,
        }
    }

    /// Frame pointer.
    pub fn fp(&self) -> Option<u64> {
        match self.machine {
            Machine::X86_64 => self.get("rbp"),
            Machine::Aarch64 => self.get("x29"),
            Machine::I386 => self.get("ebp"),
            Machine::Riscv => self.get("s0"),
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
