//! Pure: the parts of an ELF object file (executable, shared library, separate debug file, vDSO
//! image) that unwinding and symbolization need, read from its bytes.
//!
//! Hand-written rather than goblin's `Elf::parse` because separate debug files have most sections
//! as `SHT_NOBITS` with meaningless offsets, and we want every damaged table to degrade to "absent"
//! instead of failing the whole file. Both classes (ELF32, ELF64) and both byte orders are read.

use std::borrow::Cow;

use crate::elf_core::bytes::Reader;
use crate::elf_core::headers::{self, Ehdr, Phdr, Shdr, Sym};
use crate::elf_core::Endian;

pub const SHT_SYMTAB: u32 = 2;
pub const SHT_STRTAB: u32 = 3;
const SHT_NOTE: u32 = 7;
const SHT_NOBITS: u32 = 8;
pub const SHT_DYNSYM: u32 = 11;
const SHF_COMPRESSED: u64 = 0x800;
const ELFCOMPRESS_ZLIB: u32 = 1;
use crate::elf_core::constants::PT_LOAD;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
/// Decompressed sections larger than this are refused (garbage `ch_size` must not allocate).
const MAX_DECOMPRESSED: u64 = 1 << 31;

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
}

/// A function symbol from `.symtab` or `.dynsym`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// SVMA of the symbol.
    pub addr: u64,
    pub size: u64,
    /// The raw (mangled) name, shared: the symbol lists of a module are merged by cloning.
    pub name: std::sync::Arc<str>,
}

/// What we know about one ELF file, owned.
#[derive(Debug, Clone)]
pub struct ElfInfo {
    pub endian: Endian,
    /// ELFCLASS64 (else ELFCLASS32): the size of an address in the file's tables.
    pub is_64: bool,
    pub sections: Vec<SectionHeader>,
    /// `p_vaddr` of the first PT_LOAD with file offset 0: AVMA of the header − bias.
    pub load_vaddr: Option<u64>,
    /// `e_entry`, the entry point's SVMA.
    pub entry: u64,
    /// The lowest and highest (exclusive) SVMA the PT_LOAD segments cover.
    pub load_span: Option<(u64, u64)>,
    pub build_id: Option<Vec<u8>>,
    pub debuglink: Option<String>,
    /// Function symbols, sorted by address (from `.symtab` and `.dynsym`). A 32-bit ARM
    /// file's Thumb functions are at their `st_value` without its Thumb bit (bit 0).
    pub symbols: Vec<Symbol>,
    /// A 32-bit ARM file's function `st_value`s as they are, Thumb bit included (it says
    /// which instruction set a prologue is in), sorted by address; empty for other machines.
    pub arm_functions: Vec<u64>,
    /// The data objects of [`DATA_SYMBOLS`] this file defines (name, SVMA).
    pub data_symbols: Vec<(String, u64)>,
    /// Data objects with a size (`STT_OBJECT`), for naming the addresses pointers hold.
    pub objects: Vec<Symbol>,
}

/// `e_machine` of 32-bit ARM.
const EM_ARM: u16 = 40;

/// Data objects the report reads from a crashed process: glibc's pointer to the message of a
/// failed `assert()` or `abort()` with a message (`struct abort_msg_s *`).
pub const DATA_SYMBOLS: &[&str] = &["__abort_msg"];

impl ElfInfo {
    pub fn section(&self, name: &str) -> Option<&SectionHeader> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Whether the file carries DWARF (a `.debug_info` with bytes).
    pub fn has_debug_info(&self) -> bool {
        self.section(".debug_info")
            .is_some_and(|s| s.sh_type != SHT_NOBITS && s.size > 0)
    }

    /// Where a section's bytes are: in the file as they are, or as a zlib stream (`SHF_COMPRESSED`,
    /// as Debian's debug packages use) to inflate to a known size. `None` when absent,
    /// `SHT_NOBITS`, out of bounds, of an unknown compression or of an absurd size.
    pub fn section_source<'d>(&self, data: &'d [u8], name: &str) -> Option<SectionSource<'d>> {
        let s = self.section(name)?;
        if s.sh_type == SHT_NOBITS {
            return None;
        }
        let raw = data.get(usize::try_from(s.offset).ok()?..)?;
        let raw = raw.get(..usize::try_from(s.size).ok()?)?;
        if s.flags & SHF_COMPRESSED == 0 {
            return Some(SectionSource::Plain(raw));
        }
        let (ch_type, size, header) = headers::chdr(&Reader::new(raw, self.endian, self.is_64))?;
        if ch_type != ELFCOMPRESS_ZLIB || size > MAX_DECOMPRESSED {
            return None;
        }
        Some(SectionSource::Zlib {
            stream: raw.get(header..)?,
            size: usize::try_from(size).ok()?,
        })
    }

    /// The contents of a section, inflated if compressed (see [`Self::section_source`]).
    pub fn section_data<'d>(&self, data: &'d [u8], name: &str) -> Option<Cow<'d, [u8]>> {
        match self.section_source(data, name)? {
            SectionSource::Plain(b) => Some(Cow::Borrowed(b)),
            SectionSource::Zlib { stream, size } => {
                let mut out = vec![0u8; size];
                inflate_into(stream, &mut out).then_some(Cow::Owned(out))
            }
        }
    }
}

/// A section's bytes as the file holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionSource<'d> {
    Plain(&'d [u8]),
    /// A zlib stream that inflates to exactly `size` bytes.
    Zlib {
        stream: &'d [u8],
        size: usize,
    },
}

/// Inflates the zlib `stream` into `out`, which must be exactly the inflated size. False when
/// the stream is damaged, ends early or holds more than `out`.
pub fn inflate_into(stream: &[u8], out: &mut [u8]) -> bool {
    let mut z = flate2::Decompress::new(true);
    matches!(
        z.decompress(stream, out, flate2::FlushDecompress::Finish),
        Ok(flate2::Status::StreamEnd)
    ) && z.total_out() == out.len() as u64
}

/// Parse an ELF file of either class and byte order. `None` when it is not one.
pub fn parse(data: &[u8]) -> Option<ElfInfo> {
    let (is_64, endian) = headers::ident(data)?;
    if data.len() < Ehdr::size(is_64) {
        return None;
    }
    let b = Reader::new(data, endian, is_64);
    let e = Ehdr::read(&b)?;
    let is_arm = e.machine == EM_ARM;

    let mut load_vaddr = None;
    let mut load_span: Option<(u64, u64)> = None;
    if usize::from(e.phentsize) >= Phdr::size(is_64) {
        for i in 0..u64::from(e.phnum) {
            let Some(p) = e
                .phoff
                .checked_add(i * u64::from(e.phentsize))
                .and_then(|o| Phdr::read(&b, o))
            else {
                break;
            };
            if p.p_type == PT_LOAD {
                if p.offset == 0 && load_vaddr.is_none() {
                    load_vaddr = Some(p.vaddr);
                }
                if let Some(end) = p.vaddr.checked_add(p.memsz) {
                    load_span = Some(match load_span {
                        Some((lo, hi)) => (lo.min(p.vaddr), hi.max(end)),
                        None => (p.vaddr, end),
                    });
                }
            }
        }
    }

    let mut raw = Vec::new();
    if usize::from(e.shentsize) >= Shdr::size(is_64) {
        for i in 0..u64::from(e.shnum) {
            let Some(h) = e
                .shoff
                .checked_add(i * u64::from(e.shentsize))
                .and_then(|o| Shdr::read(&b, o))
            else {
                break;
            };
            raw.push((
                h.name,
                SectionHeader {
                    name: String::new(),
                    sh_type: h.sh_type,
                    flags: h.flags,
                    addr: h.addr,
                    offset: h.offset,
                    size: h.size,
                },
                h.link,
            ));
        }
    }
    let shstrndx = e.shstrndx;
    let strtab_of = |idx: usize| -> Option<&[u8]> {
        let (_, h, _) = raw.get(idx)?;
        if h.sh_type == SHT_NOBITS {
            return None;
        }
        data.get(usize::try_from(h.offset).ok()?..)?
            .get(..usize::try_from(h.size).ok()?)
    };
    let shstr = strtab_of(usize::from(shstrndx));
    let sections: Vec<SectionHeader> = raw
        .iter()
        .map(|(name_off, h, _)| SectionHeader {
            name: shstr
                .and_then(|t| cstr_at(t, *name_off as usize))
                .unwrap_or_default(),
            ..h.clone()
        })
        .collect();

    let mut info = ElfInfo {
        endian,
        is_64,
        sections,
        load_vaddr,
        entry: e.entry,
        load_span,
        build_id: None,
        debuglink: None,
        symbols: Vec::new(),
        arm_functions: Vec::new(),
        data_symbols: Vec::new(),
        objects: Vec::new(),
    };
    for (i, s) in info.sections.iter().enumerate() {
        if s.sh_type == SHT_NOTE && info.build_id.is_none() {
            if let Some(d) = strtab_of(i) {
                info.build_id = crate::modules::find_build_id_note(d, endian);
            }
        }
    }
    if let Some(d) = info.section_data(data, ".gnu_debuglink") {
        let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
        let name = String::from_utf8_lossy(&d[..end]).into_owned();
        if !name.is_empty() {
            info.debuglink = Some(name);
        }
    }
    let mut symbols = Vec::new();
    let mut objects = Vec::new();
    for (i, (_, h, link)) in raw.iter().enumerate() {
        if h.sh_type != SHT_SYMTAB && h.sh_type != SHT_DYNSYM {
            continue;
        }
        let (Some(tab), Some(strs)) = (strtab_of(i), strtab_of(*link as usize)) else {
            continue;
        };
        for sym in tab.chunks_exact(Sym::size(is_64)) {
            let Some(Sym {
                name,
                info: st_info,
                shndx,
                value,
                size,
            }) = Sym::read(&Reader::new(sym, endian, is_64))
            else {
                continue;
            };
            let ty = st_info & 0xf;
            if ty == STT_OBJECT && shndx != 0 && value != 0 && size != 0 {
                if let Some(n) = cstr_bytes_at(strs, name as usize).filter(|n| !n.is_empty()) {
                    objects.push(Symbol {
                        addr: value,
                        size,
                        name: String::from_utf8_lossy(n).into(),
                    });
                }
            }
            if ty == STT_OBJECT && shndx != 0 && value != 0 {
                let wanted = cstr_bytes_at(strs, name as usize)
                    .is_some_and(|n| DATA_SYMBOLS.iter().any(|d| d.as_bytes() == n));
                if let Some(n) = cstr_at(strs, name as usize).filter(|_| wanted) {
                    if !info.data_symbols.iter().any(|(d, _)| *d == n) {
                        info.data_symbols.push((n, value));
                    }
                }
                continue;
            }
            if (ty != STT_FUNC && ty != STT_GNU_IFUNC) || shndx == 0 || value == 0 {
                continue;
            }
            if is_arm {
                info.arm_functions.push(value);
            }
            if let Some(n) = cstr_bytes_at(strs, name as usize).filter(|n| !n.is_empty()) {
                symbols.push(Symbol {
                    addr: if is_arm { value & !1 } else { value },
                    size,
                    name: String::from_utf8_lossy(n).into(),
                });
            }
        }
    }
    // Sort by address; among aliases at one address prefer global-looking names (no leading
    // underscore runs) deterministically by putting them first after dedup by name.
    symbols.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
    symbols.dedup_by(|a, b| a.addr == b.addr && a.name == b.name);
    info.symbols = symbols;
    info.arm_functions.sort_by_key(|&a| (a & !1, a));
    info.arm_functions.dedup_by_key(|a| *a & !1);
    objects.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
    objects.dedup_by(|a, b| a.addr == b.addr && a.name == b.name);
    info.objects = objects;
    Some(info)
}

/// The NUL-terminated bytes at `off` in a string table.
fn cstr_bytes_at(tab: &[u8], off: usize) -> Option<&[u8]> {
    let s = tab.get(off..)?;
    Some(&s[..s.iter().position(|&c| c == 0)?])
}

fn cstr_at(tab: &[u8], off: usize) -> Option<String> {
    cstr_bytes_at(tab, off).map(|b| String::from_utf8_lossy(b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflate_into_wants_the_exact_size_and_an_intact_stream() {
        use std::io::Write;
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        let stream = z.finish().unwrap();
        let mut out = vec![0u8; plain.len()];
        assert!(inflate_into(&stream, &mut out));
        assert_eq!(out, plain);
        // ch_size too small, too big, a cut stream, a flipped byte: refused, never a panic.
        assert!(!inflate_into(&stream, &mut vec![0u8; plain.len() - 1]));
        assert!(!inflate_into(&stream, &mut vec![0u8; plain.len() + 1]));
        assert!(!inflate_into(&stream[..stream.len() / 2], &mut out));
        let mut bad = stream.clone();
        bad[stream.len() / 2] ^= 0xff;
        assert!(!inflate_into(&bad, &mut out));
    }

    #[test]
    fn garbage_is_not_elf_and_never_panics() {
        assert!(parse(b"").is_none());
        for ident in [b"\x7fELF\x02\x01", b"\x7fELF\x01\x02", b"\x7fELF\x01\x01"] {
            let mut d = [0xffu8; 200];
            d[..6].copy_from_slice(ident);
            for n in 0..d.len() {
                let _ = parse(&d[..n]);
            }
        }
    }
}
