//! Pure: the ELF file header, program headers, section headers and symbols of either class
//! (ELF32, ELF64) in either byte order, read at their explicit offsets. Shared by the core
//! parser, the module scanner (headers in process memory) and the object-file reader.

use super::bytes::Reader;

/// The fields of `Elf32_Ehdr` / `Elf64_Ehdr` the readers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ehdr {
    /// `e_machine`.
    pub machine: u16,
    pub entry: u64,
    pub phoff: u64,
    pub shoff: u64,
    pub phentsize: u16,
    pub phnum: u16,
    pub shentsize: u16,
    pub shnum: u16,
    pub shstrndx: u16,
}

impl Ehdr {
    /// The size of the file header of a class.
    pub fn size(is_64: bool) -> usize {
        if is_64 {
            64
        } else {
            52
        }
    }

    /// The header at the start of `r` (whose class and byte order the caller took from
    /// `e_ident`).
    pub fn read(r: &Reader<'_>) -> Option<Ehdr> {
        if r.is_64 {
            Some(Ehdr {
                machine: r.u16(18)?,
                entry: r.u64(24)?,
                phoff: r.u64(32)?,
                shoff: r.u64(40)?,
                phentsize: r.u16(54)?,
                phnum: r.u16(56)?,
                shentsize: r.u16(58)?,
                shnum: r.u16(60)?,
                shstrndx: r.u16(62)?,
            })
        } else {
            Some(Ehdr {
                machine: r.u16(18)?,
                entry: r.u32(24)?.into(),
                phoff: r.u32(28)?.into(),
                shoff: r.u32(32)?.into(),
                phentsize: r.u16(42)?,
                phnum: r.u16(44)?,
                shentsize: r.u16(46)?,
                shnum: r.u16(48)?,
                shstrndx: r.u16(50)?,
            })
        }
    }
}

/// One program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

impl Phdr {
    /// The smallest valid `e_phentsize` of a class.
    pub fn size(is_64: bool) -> usize {
        if is_64 {
            56
        } else {
            32
        }
    }

    pub fn read(r: &Reader<'_>, off: u64) -> Option<Phdr> {
        let o = usize::try_from(off).ok()?;
        if r.is_64 {
            Some(Phdr {
                p_type: r.u32(o)?,
                flags: r.u32(o + 4)?,
                offset: r.u64(o + 8)?,
                vaddr: r.u64(o + 16)?,
                filesz: r.u64(o + 32)?,
                memsz: r.u64(o + 40)?,
            })
        } else {
            Some(Phdr {
                p_type: r.u32(o)?,
                offset: r.u32(o + 4)?.into(),
                vaddr: r.u32(o + 8)?.into(),
                filesz: r.u32(o + 16)?.into(),
                memsz: r.u32(o + 20)?.into(),
                flags: r.u32(o + 24)?,
            })
        }
    }
}

/// One section header, without its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shdr {
    pub name: u32,
    pub sh_type: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
}

impl Shdr {
    /// The smallest valid `e_shentsize` of a class.
    pub fn size(is_64: bool) -> usize {
        if is_64 {
            64
        } else {
            40
        }
    }

    pub fn read(r: &Reader<'_>, off: u64) -> Option<Shdr> {
        let o = usize::try_from(off).ok()?;
        if r.is_64 {
            Some(Shdr {
                name: r.u32(o)?,
                sh_type: r.u32(o + 4)?,
                flags: r.u64(o + 8)?,
                addr: r.u64(o + 16)?,
                offset: r.u64(o + 24)?,
                size: r.u64(o + 32)?,
                link: r.u32(o + 40)?,
                info: r.u32(o + 44)?,
            })
        } else {
            Some(Shdr {
                name: r.u32(o)?,
                sh_type: r.u32(o + 4)?,
                flags: r.u32(o + 8)?.into(),
                addr: r.u32(o + 12)?.into(),
                offset: r.u32(o + 16)?.into(),
                size: r.u32(o + 20)?.into(),
                link: r.u32(o + 24)?,
                info: r.u32(o + 28)?,
            })
        }
    }
}

/// One symbol-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sym {
    pub name: u32,
    pub info: u8,
    pub shndx: u16,
    pub value: u64,
    pub size: u64,
}

impl Sym {
    pub fn size(is_64: bool) -> usize {
        if is_64 {
            24
        } else {
            16
        }
    }

    /// The entry at the start of `r`.
    pub fn read(r: &Reader<'_>) -> Option<Sym> {
        if r.is_64 {
            Some(Sym {
                name: r.u32(0)?,
                info: *r.data.get(4)?,
                shndx: r.u16(6)?,
                value: r.u64(8)?,
                size: r.u64(16)?,
            })
        } else {
            Some(Sym {
                name: r.u32(0)?,
                value: r.u32(4)?.into(),
                size: r.u32(8)?.into(),
                info: *r.data.get(12)?,
                shndx: r.u16(14)?,
            })
        }
    }
}

/// `Elf32_Chdr` / `Elf64_Chdr` of a compressed section: its compression type, its inflated
/// size and the length of the header before the stream.
pub(crate) fn chdr(r: &Reader<'_>) -> Option<(u32, u64, usize)> {
    if r.is_64 {
        Some((r.u32(0)?, r.u64(8)?, 24))
    } else {
        Some((r.u32(0)?, r.u32(4)?.into(), 12))
    }
}

/// The class and byte order from `e_ident`, when it is an ELF file of a known kind.
pub(crate) fn ident(data: &[u8]) -> Option<(bool, super::Endian)> {
    if data.len() < 6 || &data[..4] != b"\x7fELF" {
        return None;
    }
    let is_64 = match data[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let endian = match data[5] {
        1 => super::Endian::Little,
        2 => super::Endian::Big,
        _ => return None,
    };
    Some((is_64, endian))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf_core::Endian;

    #[test]
    fn each_class_and_byte_order_reads_its_own_offsets() {
        // An Elf32 big-endian program header: PT_LOAD, offset 0x10, vaddr 0x1000, filesz 0x20,
        // memsz 0x30, flags 5.
        let mut ph = Vec::new();
        for v in [1u32, 0x10, 0x1000, 0x1000, 0x20, 0x30, 5, 0x1000] {
            ph.extend_from_slice(&v.to_be_bytes());
        }
        let p = Phdr::read(&Reader::new(&ph, Endian::Big, false), 0).unwrap();
        assert_eq!(
            (p.p_type, p.offset, p.vaddr, p.filesz, p.memsz, p.flags),
            (1, 0x10, 0x1000, 0x20, 0x30, 5)
        );
        // An Elf32 little-endian symbol: name 7, value 0x8048000, size 12, STT_FUNC, shndx 3.
        let mut s = Vec::new();
        for v in [7u32, 0x0804_8000, 12] {
            s.extend_from_slice(&v.to_le_bytes());
        }
        s.extend_from_slice(&[0x12, 0, 3, 0]);
        let sym = Sym::read(&Reader::new(&s, Endian::Little, false)).unwrap();
        assert_eq!(
            (sym.name, sym.value, sym.size, sym.info, sym.shndx),
            (7, 0x0804_8000, 12, 0x12, 3)
        );
        // Cut short: None, never a panic.
        assert!(Sym::read(&Reader::new(&s[..15], Endian::Little, false)).is_none());
        assert!(Ehdr::read(&Reader::new(&[0u8; 51], Endian::Big, false)).is_none());
        assert!(Shdr::read(&Reader::new(&[0u8; 47], Endian::Big, true), 0).is_none());
    }
}
