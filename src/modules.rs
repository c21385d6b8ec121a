//! Pure: the modules (executable, shared libraries, vDSO) loaded in a crashed process, as the core
//! describes them, and where their debug files may be.
//!
//! A module is one mapped ELF file: the NT_FILE mappings of one path, grouped. Its ELF header
//! lies at the mapping with file offset 0 (the kernel dumps that first page of every ELF mapping),
//! so the load bias and the GNU build-id come from the core's own memory. The vDSO has no file: it
//! is found through auxv `AT_SYSINFO_EHDR` and its whole image is in the core.
//!
//! Nothing here touches the disk; [`debug_file_candidates`] only lists paths for the loader to
//! probe, in gdb's order.

use crate::elf_core::bytes::Reader;
use crate::elf_core::headers::{self, Ehdr, Phdr};
use std::path::{Path, PathBuf};

use crate::elf_core::{Core, Endian, Memory};

/// `AT_SYSINFO_EHDR` in the auxiliary vector: the vDSO's ELF header.
pub const AT_SYSINFO_EHDR: u64 = 33;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;
/// Path given to the vDSO module (the name /proc/PID/maps uses).
pub const VDSO_PATH: &str = "[vdso]";

/// What kind of object a module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// A file on disk (executable or shared library), from NT_FILE.
    File,
    /// The kernel's vDSO: its image is only in the core's memory.
    Vdso,
}

/// One loaded module, as the core describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The path the core names (`[vdso]` for the vDSO).
    pub path: String,
    pub kind: ModuleKind,
    /// Lowest mapped address (AVMA).
    pub start: u64,
    /// End of the highest mapping (AVMA, exclusive).
    pub end: u64,
    /// AVMA of the ELF header: the mapping with file offset 0.
    pub base: u64,
    /// AVMA − SVMA, when the program headers in the core could be read.
    pub bias: Option<u64>,
    /// The GNU build-id from the ELF notes in the core's memory.
    pub build_id: Option<Vec<u8>>,
}

impl Module {
    pub fn contains(&self, avma: u64) -> bool {
        self.start <= avma && avma < self.end
    }
}

/// The modules of a core, sorted by start address, plus warnings about what could not be read.
pub fn modules_from_core(core: &Core<'_>) -> (Vec<Module>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut by_path: Vec<(String, Vec<&crate::elf_core::MappedFile>)> = Vec::new();
    for f in &core.files {
        match by_path.iter_mut().find(|(p, _)| *p == f.path) {
            Some((_, v)) => v.push(f),
            None => by_path.push((f.path.clone(), vec![f])),
        }
    }
    let mut modules = Vec::new();
    for (path, maps) in by_path {
        let start = maps.iter().map(|m| m.start).min().unwrap_or(0);
        let end = maps.iter().map(|m| m.end).max().unwrap_or(0);
        // The ELF header is where file offset 0 is mapped; a file mapped without it (a data file
        // mapped at an offset) is not an ELF module we can use.
        let Some(base) = maps
            .iter()
            .filter(|m| m.file_offset == 0)
            .map(|m| m.start)
            .min()
        else {
            continue;
        };
        if core.memory.slice_at(base, 4).is_some() && !is_elf_at(&core.memory, base) {
            // A mapped data file (locale archive, font...), not an ELF object.
            continue;
        }
        // When the first page was not dumped the header is unreadable: the bias and build-id
        // then come from the file on disk (the loader decides whether it is ELF at all).
        let header = read_elf_header(&core.memory, base, core.endian, core.is_64);
        modules.push(Module {
            path,
            kind: ModuleKind::File,
            start,
            end,
            base,
            bias: header.as_ref().and_then(|h| h.bias),
            build_id: header.and_then(|h| h.build_id),
        });
    }
    if let Some(vdso) = core.auxv.get(AT_SYSINFO_EHDR).filter(|&a| a != 0) {
        match core.memory.segment_at(vdso) {
            Some(seg) if is_elf_at(&core.memory, vdso) => {
                let h = read_elf_header(&core.memory, vdso, core.endian, core.is_64);
                modules.push(Module {
                    path: VDSO_PATH.into(),
                    kind: ModuleKind::Vdso,
                    start: vdso,
                    end: seg.end(),
                    base: vdso,
                    bias: h.as_ref().and_then(|h| h.bias),
                    build_id: h.and_then(|h| h.build_id),
                });
            }
            _ => warnings.push(format!("vDSO at {vdso:#x} is not in the core")),
        }
    }
    modules.sort_by_key(|m| m.start);
    (modules, warnings)
}

/// Lowercase hex, as build-ids are spelled in paths and messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_elf_at(mem: &Memory<'_>, addr: u64) -> bool {
    let mut magic = [0u8; 4];
    mem.read(addr, &mut magic) && &magic == b"\x7fELF"
}

/// The GNU build-id of the ELF object whose header is at `base` in the core's memory, when
/// that header page was dumped.
pub fn build_id_at(core: &Core<'_>, base: u64) -> Option<Vec<u8>> {
    read_elf_header(&core.memory, base, core.endian, core.is_64)?.build_id
}

struct HeaderInfo {
    bias: Option<u64>,
    build_id: Option<Vec<u8>>,
}

/// Read an ELF header (of the core's class and byte order) and its program headers from
/// process memory at `base`.
fn read_elf_header(mem: &Memory<'_>, base: u64, endian: Endian, is_64: bool) -> Option<HeaderInfo> {
    let mut ehdr = [0u8; 64];
    let ehdr = &mut ehdr[..Ehdr::size(is_64)];
    if !mem.read(base, ehdr) || headers::ident(ehdr) != Some((is_64, endian)) {
        // A module of another class or byte order than its core does not happen on Linux.
        return None;
    }
    let e = Ehdr::read(&Reader::new(ehdr, endian, is_64))?;
    let phentsize = u64::from(e.phentsize);
    let phnum = u64::from(e.phnum).min(256);
    if phentsize < Phdr::size(is_64) as u64 {
        return None;
    }
    let mut bias = None;
    let mut notes = Vec::new();
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        let ph = &mut ph[..Phdr::size(is_64)];
        let at = base.checked_add(e.phoff)?.checked_add(i * phentsize)?;
        if !mem.read(at, ph) {
            break;
        }
        let p = Phdr::read(&Reader::new(ph, endian, is_64), 0)?;
        match p.p_type {
            PT_LOAD if p.offset == 0 && bias.is_none() => bias = Some(base.wrapping_sub(p.vaddr)),
            PT_NOTE => notes.push((p.vaddr, p.filesz)),
            _ => {}
        }
    }
    let build_id = bias.and_then(|b| {
        notes.iter().find_map(|&(vaddr, size)| {
            let data = mem.slice_at(vaddr.wrapping_add(b), size.min(4096) as usize)?;
            find_build_id_note(data, endian)
        })
    });
    Some(HeaderInfo { bias, build_id })
}

/// The `NT_GNU_BUILD_ID` descriptor in a block of ELF notes (4-byte aligned, as on Linux).
pub fn find_build_id_note(mut data: &[u8], endian: Endian) -> Option<Vec<u8>> {
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while data.len() >= 12 {
        let b = Reader::new(data, endian, true);
        let namesz = b.u32(0)? as usize;
        let descsz = b.u32(4)? as usize;
        let ntype = b.u32(8)?;
        let name_end = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = name_end.checked_add(align4(descsz)?)?;
        let name = data.get(12..12 + namesz)?;
        let desc = data.get(name_end..name_end.checked_add(descsz)?)?;
        if ntype == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        data = data.get(desc_end..)?;
    }
    None
}

/// Where to look for files and their separate debug files.
#[derive(Debug, Clone, Default)]
pub struct SearchPaths {
    /// Extra directories used like `/usr/lib/debug`, searched first.
    pub debug_dirs: Vec<PathBuf>,
    /// Prefixed to every path the core names (and to `/usr/lib/debug`).
    pub sysroot: Option<PathBuf>,
    /// Directories holding objects by build-id (`DIR/.build-id/xx/rest`, gdb's layout for
    /// executables, beside the `.debug` files): an unpacked debug bundle. Searched before the
    /// path the core names.
    pub object_dirs: Vec<PathBuf>,
}

/// A path as the dynamic linker may record it (`.////dir//lib.so`) with its empty and `.`
/// components dropped: `./dir/lib.so`, `/usr/lib/x.so` unchanged.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    match (absolute, parts.is_empty()) {
        (true, _) => format!("/{}", parts.join("/")),
        (false, true) => ".".into(),
        (false, false) if path.starts_with('.') && !path.starts_with("..") => {
            format!("./{}", parts.join("/"))
        }
        (false, false) => parts.join("/"),
    }
}

impl SearchPaths {
    /// A path named by the core, under the sysroot if there is one.
    pub fn host_path(&self, core_path: &str) -> PathBuf {
        match &self.sysroot {
            Some(root) => root.join(core_path.trim_start_matches('/')),
            None => PathBuf::from(core_path),
        }
    }

    /// Where to look for a file the core names, in order: `.build-id/xx/rest` in each object
    /// directory when the core recorded the build-id, the path itself (its `.//` and `//` runs
    /// collapsed, under the sysroot if there is one), then a file of the same name beside the
    /// executable (`exe_dir`), where a program's own libraries usually are.
    pub fn candidates(
        &self,
        core_path: &str,
        build_id: Option<&[u8]>,
        exe_dir: Option<&Path>,
    ) -> Vec<PathBuf> {
        let clean = normalize(core_path);
        let mut out: Vec<PathBuf> = match build_id.filter(|id| id.len() >= 2) {
            Some(id) => {
                let h = hex(id);
                self.object_dirs
                    .iter()
                    .map(|d| d.join(".build-id").join(&h[..2]).join(&h[2..]))
                    .collect()
            }
            None => Vec::new(),
        };
        out.push(self.host_path(&clean));
        if let (Some(dir), Some(name)) = (exe_dir, Path::new(&clean).file_name()) {
            let beside = dir.join(name);
            if !out.contains(&beside) {
                out.push(beside);
            }
        }
        out
    }

    /// The debug directories in search order: `--debug-dir`s, then `/usr/lib/debug` (under the
    /// sysroot when one is given).
    pub fn debug_roots(&self) -> Vec<PathBuf> {
        let mut v = self.debug_dirs.clone();
        let global = self.host_path("/usr/lib/debug");
        if !v.contains(&global) {
            v.push(global);
        }
        v
    }
}

/// Candidate separate debug files for the object at `file` (its host path), in gdb's order:
/// `DEBUGDIR/.build-id/xx/rest.debug` for each debug dir, then the `.gnu_debuglink` name beside
/// the file, in its `.debug/` subdirectory, and under each debug dir followed by the file's
/// directory.
pub fn debug_file_candidates(
    file: &Path,
    build_id: Option<&[u8]>,
    debuglink: Option<&str>,
    search: &SearchPaths,
) -> Vec<PathBuf> {
    let roots = search.debug_roots();
    let mut out = Vec::new();
    if let Some(id) = build_id.filter(|id| id.len() >= 2) {
        let h = hex(id);
        for r in &roots {
            out.push(
                r.join(".build-id")
                    .join(&h[..2])
                    .join(format!("{}.debug", &h[2..])),
            );
        }
    }
    if let Some(link) = debuglink.filter(|l| !l.is_empty() && !l.contains('/')) {
        let dir = file.parent().unwrap_or(Path::new("/"));
        out.push(dir.join(link));
        out.push(dir.join(".debug").join(link));
        // The file's directory relative to the sysroot, so that SYSROOT/usr/lib/x.so looks in
        // DEBUGDIR/usr/lib/.
        let rel_dir = match &search.sysroot {
            Some(root) => dir.strip_prefix(root).unwrap_or(dir),
            None => dir,
        };
        let rel = rel_dir.strip_prefix("/").unwrap_or(rel_dir);
        for r in &roots {
            out.push(r.join(rel).join(link));
        }
    }
    out.retain(|p| p != file);
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn odd_linker_paths_are_normalized() {
        assert_eq!(
            normalize(".////////linkmap-cut-lib.so"),
            "./linkmap-cut-lib.so"
        );
        assert_eq!(normalize("/usr//lib/./x.so"), "/usr/lib/x.so");
        assert_eq!(normalize("/usr/lib/x.so"), "/usr/lib/x.so");
        assert_eq!(normalize("lib/x.so"), "lib/x.so");
        assert_eq!(normalize("../x.so"), "../x.so");
    }

    use super::*;

    #[test]
    fn build_id_note_is_found_after_other_notes() {
        let mut d = Vec::new();
        // An ABI tag note first (type 1, "GNU"), then the build-id.
        for (ty, desc) in [
            (1u32, vec![0u8; 16]),
            (3, vec![0xab, 0xcd, 0xef, 0x01, 0x02]),
        ] {
            d.extend_from_slice(&4u32.to_le_bytes());
            d.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            d.extend_from_slice(&ty.to_le_bytes());
            d.extend_from_slice(b"GNU\0");
            d.extend_from_slice(&desc);
            while d.len() % 4 != 0 {
                d.push(0);
            }
        }
        assert_eq!(
            find_build_id_note(&d, Endian::Little),
            Some(vec![0xab, 0xcd, 0xef, 0x01, 0x02])
        );
        // Truncated garbage never panics.
        for n in 0..d.len() {
            let _ = find_build_id_note(&d[..n], Endian::Little);
        }
        assert_eq!(find_build_id_note(&[0xff; 40], Endian::Big), None);
    }

    #[test]
    fn candidates_follow_gdbs_order() {
        let s = SearchPaths {
            debug_dirs: vec![PathBuf::from("/dbg")],
            sysroot: None,
            object_dirs: vec![PathBuf::from("/bundle")],
        };
        let c = debug_file_candidates(
            Path::new("/usr/lib/libx.so.1"),
            Some(&[0x12, 0x34, 0x56]),
            Some("libx.so.1.debug"),
            &s,
        );
        let c: Vec<_> = c.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            c,
            [
                "/dbg/.build-id/12/3456.debug",
                "/usr/lib/debug/.build-id/12/3456.debug",
                "/usr/lib/libx.so.1.debug",
                "/usr/lib/.debug/libx.so.1.debug",
                "/dbg/usr/lib/libx.so.1.debug",
                "/usr/lib/debug/usr/lib/libx.so.1.debug",
            ]
        );
    }

    #[test]
    fn objects_by_build_id_come_before_the_core_path() {
        let s = SearchPaths {
            object_dirs: vec![PathBuf::from("/b1"), PathBuf::from("/b2")],
            ..SearchPaths::default()
        };
        let c = s.candidates(
            ".//opt//x/libx.so",
            Some(&[0xab, 0xcd, 0xef]),
            Some(Path::new("/e")),
        );
        let c: Vec<_> = c.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            c,
            [
                "/b1/.build-id/ab/cdef",
                "/b2/.build-id/ab/cdef",
                "./opt/x/libx.so",
                "/e/libx.so"
            ]
        );
        assert_eq!(s.candidates("/l.so", None, None), [PathBuf::from("/l.so")]);
    }

    #[test]
    fn sysroot_prefixes_core_paths_and_debug_dir() {
        let s = SearchPaths {
            debug_dirs: vec![],
            sysroot: Some(PathBuf::from("/sr")),
            object_dirs: vec![],
        };
        assert_eq!(
            s.host_path("/lib/libc.so.6"),
            PathBuf::from("/sr/lib/libc.so.6")
        );
        let c = debug_file_candidates(Path::new("/sr/lib/libc.so.6"), None, Some("l.debug"), &s);
        assert!(c.contains(&PathBuf::from("/sr/usr/lib/debug/lib/l.debug")));
    }
}
