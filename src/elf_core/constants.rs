//! The ELF numbers of core files, defined once for the parser, the writer and the symbolizer:
//! `e_type`, program-header types and note types (`elf.h`, `linux/elf.h`).

/// `ET_CORE` in `e_type`.
pub const ET_CORE: u16 = 4;
pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;

pub const NT_PRSTATUS: u32 = 1;
pub const NT_PRFPREG: u32 = 2;
pub const NT_PRPSINFO: u32 = 3;
pub const NT_AUXV: u32 = 6;
/// x86 XSAVE area (AVX and later registers), in a note named "LINUX".
pub const NT_X86_XSTATE: u32 = 0x202;
/// `"SIGI"`: the fatal signal's siginfo_t.
pub const NT_SIGINFO: u32 = 0x5349_4749;
/// `"FILE"`: the mapped files.
pub const NT_FILE: u32 = 0x4649_4c45;
