//! Pure: the dynamic linker's list of loaded objects, read from a core's memory, as gdb's
//! `solib-svr4` and elfutils' `dwfl_link_map_report` read it.
//!
//! A core without NT_FILE (kernels before 3.7, QEMU's user-mode cores, some dumpers) does not
//! say which libraries were loaded or where. The dynamic linker keeps that list in the process:
//! the executable's `.dynamic` has a `DT_DEBUG` entry that `ld.so` points at its `struct
//! r_debug`, whose `r_map` heads a doubly linked list of `struct link_map` (`l_addr` the load
//! bias, `l_name` the path, `l_ld` the object's own `.dynamic`, `l_next`). Every field is a
//! pointer-sized word of the core's class and byte order.
//!
//! Everything here reads the core's memory and nothing else; finding and opening the files the
//! list names is the caller's.

use crate::elf_core::Core;

/// `DT_NULL`: the end of `.dynamic`.
const DT_NULL: u64 = 0;
/// `DT_DEBUG`: filled in by `ld.so` with the address of its `struct r_debug`.
const DT_DEBUG: u64 = 21;
/// `.dynamic` entries read at most (real ones have a few dozen).
const MAX_DYNAMIC: u64 = 1024;
/// `link_map` entries followed at most: a bound on a damaged or cyclic list.
pub const MAX_ENTRIES: usize = 4096;
/// Longest `l_name` read (`PATH_MAX`).
const MAX_NAME: usize = 4096;

/// One object of the dynamic linker's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `l_name`: the path the object was opened by (empty for the executable).
    pub name: String,
    /// `l_addr`: AVMA − SVMA of the object.
    pub bias: u64,
    /// `l_ld`: the AVMA of the object's own `.dynamic`.
    pub dynamic: u64,
}

/// Why the list could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkMapError {
    #[error("r_debug at {0:#x} is not in the core")]
    RDebugMissing(u64),
    #[error("link_map entry at {0:#x} is not in the core")]
    EntryMissing(u64),
    #[error("link_map list loops back to {0:#x}")]
    Cycle(u64),
    #[error("link_map list is longer than {MAX_ENTRIES} entries")]
    TooLong,
}

/// The address of `struct r_debug`: the `DT_DEBUG` entry of the `.dynamic` at `dynamic` (an
/// AVMA). `None` when that memory is not in the core, there is no `DT_DEBUG` (a static
/// executable) or `ld.so` had not filled it in yet.
pub fn r_debug(core: &Core<'_>, dynamic: u64) -> Option<u64> {
    let word = word_size(core);
    for i in 0..MAX_DYNAMIC {
        let at = dynamic.checked_add(i.checked_mul(2 * word)?)?;
        let tag = core.read_word(at)?;
        let value = core.read_word(at.checked_add(word)?)?;
        match tag {
            DT_NULL => return None,
            DT_DEBUG => return (value != 0).then_some(value),
            _ => {}
        }
    }
    None
}

/// Every entry of the list headed by `r_debug.r_map`, in list order (the executable first),
/// and why the walk stopped early if it did: the entries before a damaged one are kept.
pub fn entries(core: &Core<'_>, r_debug: u64) -> (Vec<Entry>, Option<LinkMapError>) {
    let word = word_size(core);
    // struct r_debug { int r_version; struct link_map *r_map; ... }: r_map is the next word.
    let Some(mut next) = r_debug.checked_add(word).and_then(|a| core.read_word(a)) else {
        return (Vec::new(), Some(LinkMapError::RDebugMissing(r_debug)));
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while next != 0 {
        if out.len() >= MAX_ENTRIES {
            return (out, Some(LinkMapError::TooLong));
        }
        if !seen.insert(next) {
            return (out, Some(LinkMapError::Cycle(next)));
        }
        // struct link_map { l_addr; char *l_name; l_ld; l_next; l_prev; ... }
        let field = |i: u64| next.checked_add(i * word).and_then(|a| core.read_word(a));
        let (Some(bias), Some(name), Some(dynamic), Some(following)) =
            (field(0), field(1), field(2), field(3))
        else {
            return (out, Some(LinkMapError::EntryMissing(next)));
        };
        let name = match name {
            0 => String::new(),
            p => core.memory.read_cstr(p, MAX_NAME).unwrap_or_default(),
        };
        out.push(Entry {
            name,
            bias,
            dynamic,
        });
        next = following;
    }
    (out, None)
}

fn word_size(core: &Core<'_>) -> u64 {
    if core.is_64 {
        8
    } else {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf_core::Endian;

    const BASE: u64 = 0x1_0000;

    /// A core of the given class and byte order with no notes and one PT_LOAD at [`BASE`]
    /// holding `memory` (built by `fill`, which gets a word writer).
    fn core_with(is_64: bool, endian: Endian, fill: impl Fn(&mut dyn FnMut(u64, u64))) -> Vec<u8> {
        let word = if is_64 { 8 } else { 4 };
        let mut memory = vec![0u8; 4096];
        let mut put = |addr: u64, v: u64| {
            let at = (addr - BASE) as usize;
            let b = match (is_64, endian) {
                (true, Endian::Little) => v.to_le_bytes().to_vec(),
                (true, Endian::Big) => v.to_be_bytes().to_vec(),
                (false, Endian::Little) => (v as u32).to_le_bytes().to_vec(),
                (false, Endian::Big) => (v as u32).to_be_bytes().to_vec(),
            };
            memory[at..at + word].copy_from_slice(&b);
        };
        fill(&mut put);
        memory[0x800..0x80e].copy_from_slice(b"/lib/libc.so\0\0");
        memory[0x900..0x90b].copy_from_slice(b"/lib/ld.so\0");
        let u16b = |v: u16| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let u32b = |v: u32| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let wb = |v: u64| match (is_64, endian) {
            (true, Endian::Little) => v.to_le_bytes().to_vec(),
            (true, Endian::Big) => v.to_be_bytes().to_vec(),
            (false, Endian::Little) => (v as u32).to_le_bytes().to_vec(),
            (false, Endian::Big) => (v as u32).to_be_bytes().to_vec(),
        };
        let (ehsize, phsize) = if is_64 { (64, 56) } else { (52, 32) };
        let mut f = vec![0u8; ehsize];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = if is_64 { 2 } else { 1 };
        f[5] = if endian == Endian::Little { 1 } else { 2 };
        f[6] = 1;
        f[16..18].copy_from_slice(&u16b(4)); // ET_CORE
        f[18..20].copy_from_slice(&u16b(if is_64 { 62 } else { 20 })); // x86_64 / ppc
        let (phoff, rest) = if is_64 { (32, 52) } else { (28, 40) };
        f[phoff..phoff + word].copy_from_slice(&wb(ehsize as u64));
        f[rest..rest + 2].copy_from_slice(&u16b(ehsize as u16));
        f[rest + 2..rest + 4].copy_from_slice(&u16b(phsize as u16));
        f[rest + 4..rest + 6].copy_from_slice(&u16b(1));
        let off = 4096u64;
        if is_64 {
            f.extend_from_slice(&u32b(1));
            f.extend_from_slice(&u32b(6));
            for v in [off, BASE, 0, 4096, 4096, 4096] {
                f.extend_from_slice(&wb(v));
            }
        } else {
            f.extend_from_slice(&u32b(1));
            for v in [off, BASE, 0, 4096, 4096] {
                f.extend_from_slice(&wb(v));
            }
            f.extend_from_slice(&u32b(6));
            f.extend_from_slice(&wb(4096));
        }
        f.resize(off as usize, 0);
        f.extend_from_slice(&memory);
        f
    }

    /// `.dynamic` at +0x100 (DT_NEEDED, DT_DEBUG, DT_NULL), r_debug at +0x200, two link_map
    /// entries at +0x300 and +0x380 (the executable, then libc), and a third named ld.so.
    fn fill(word: u64, looped: bool) -> impl Fn(&mut dyn FnMut(u64, u64)) {
        move |put| {
            let d = BASE + 0x100;
            put(d, 1); // DT_NEEDED
            put(d + word, 7);
            put(d + 2 * word, DT_DEBUG);
            put(d + 3 * word, BASE + 0x200);
            put(d + 4 * word, DT_NULL);
            put(BASE + 0x200, 1); // r_version
            put(BASE + 0x200 + word, BASE + 0x300);
            let entry = |put: &mut dyn FnMut(u64, u64), at: u64, bias, name, ld, next| {
                for (i, v) in [bias, name, ld, next].into_iter().enumerate() {
                    put(at + i as u64 * word, v);
                }
            };
            entry(put, BASE + 0x300, 0, 0, d, BASE + 0x380);
            entry(
                put,
                BASE + 0x380,
                0x7f00_0000,
                BASE + 0x800,
                0x7f00_4000,
                BASE + 0x400,
            );
            let last_next = if looped { BASE + 0x300 } else { 0 };
            entry(
                put,
                BASE + 0x400,
                0x7e00_0000,
                BASE + 0x900,
                0x7e00_2000,
                last_next,
            );
        }
    }

    #[test]
    fn the_list_is_read_in_every_class_and_byte_order() {
        for is_64 in [true, false] {
            for endian in [Endian::Little, Endian::Big] {
                let word = if is_64 { 8 } else { 4 };
                let bytes = core_with(is_64, endian, fill(word, false));
                let core = crate::elf_core::parse(&bytes).unwrap();
                let r = r_debug(&core, BASE + 0x100).unwrap();
                assert_eq!(r, BASE + 0x200);
                let (list, err) = entries(&core, r);
                assert_eq!(err, None, "{is_64} {endian:?}");
                let names: Vec<_> = list.iter().map(|e| e.name.as_str()).collect();
                assert_eq!(names, ["", "/lib/libc.so", "/lib/ld.so"]);
                assert_eq!(list[1].bias, 0x7f00_0000);
                assert_eq!(list[1].dynamic, 0x7f00_4000);
            }
        }
    }

    #[test]
    fn a_damaged_list_keeps_what_was_read_and_says_why() {
        let bytes = core_with(true, Endian::Little, fill(8, true));
        let core = crate::elf_core::parse(&bytes).unwrap();
        let (list, err) = entries(&core, BASE + 0x200);
        assert_eq!(list.len(), 3);
        assert_eq!(err, Some(LinkMapError::Cycle(BASE + 0x300)));
        // r_debug outside the core; a .dynamic without DT_DEBUG (read off its end).
        let (list, err) = entries(&core, 0x9000_0000);
        assert!(list.is_empty());
        assert_eq!(err, Some(LinkMapError::RDebugMissing(0x9000_0000)));
        assert_eq!(r_debug(&core, BASE + 0x200 + 8), None);
        assert_eq!(r_debug(&core, 0x9000_0000), None);
    }
}
