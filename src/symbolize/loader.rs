//! The only file reader of unwinding and symbolization: maps object files and probes the disk
//! for separate debug files, in the order [`crate::modules::debug_file_candidates`] lists.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::elf::{self, ElfInfo};
use crate::modules::{debug_file_candidates, hex, SearchPaths};

/// The bytes of an object: a read-only file mapping (with where it came from, for reads that
/// should not fault pages in), or owned bytes (the vDSO from a core).
pub enum Data {
    Mapped(memmap2::Mmap, MappedFrom),
    Owned(Vec<u8>),
}

/// The file a mapping was made of: its path and identity, so it can be opened again for
/// `pread` (no descriptor is held: a core may list hundreds of objects).
pub struct MappedFrom {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl super::Backing for Data {
    fn reader(&self) -> super::ReadAt<'_> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let (map, from) = match self {
            Data::Mapped(m, from) => (m, from),
            Data::Owned(v) => return Box::new(move |o, b| super::copy_out(v, o, b)),
        };
        // The same file, not one renamed into its place since: else read the mapping.
        let file = File::open(&from.path).ok().filter(|f| {
            f.metadata()
                .is_ok_and(|m| m.dev() == from.dev && m.ino() == from.ino)
        });
        let Some(file) = file else {
            return Box::new(move |o, b| super::copy_out(map, o, b));
        };
        Box::new(move |offset, buf| {
            // The mapping is of the whole file, so file and mapping offsets agree.
            let want = buf.len().min(map.len().saturating_sub(offset));
            let mut done = 0;
            while done < want {
                match file.read_at(&mut buf[done..want], (offset + done) as u64) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => done += n,
                }
            }
            // A short read means the file shrank; the caller sees fewer bytes (reading the
            // mapping past the file's end would fault).
            done
        })
    }
}

impl AsRef<[u8]> for Data {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Mapped(m, _) => m,
            Data::Owned(v) => v,
        }
    }
}

/// Why an object file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot map {path}: {source}")]
    Map {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ELF file")]
    NotElf { path: PathBuf },
    /// A FIFO, a device or a directory: opening a FIFO would wait for a writer forever.
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
}

/// An object file, mapped and parsed.
pub struct LoadedObject {
    pub path: PathBuf,
    /// Shared with the DWARF readers, which read sections in place.
    pub data: Arc<Data>,
    pub info: ElfInfo,
}

/// Map and parse the ELF file at `path`.
pub fn load(path: &Path) -> Result<LoadedObject, LoadError> {
    // Paths come from the crashed process (NT_FILE, the link map): a FIFO there must not hang.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(LoadError::NotRegular {
                path: path.to_owned(),
            })
        }
        Ok(_) => {}
        Err(source) => {
            return Err(LoadError::Open {
                path: path.to_owned(),
                source,
            })
        }
    }
    let file = File::open(path).map_err(|source| LoadError::Open {
        path: path.to_owned(),
        source,
    })?;
    // SAFETY: the mapping is read-only and private. If another process truncates the file while
    // it is mapped, reads could fault; debug files and installed libraries are not rewritten in
    // place by package managers (they are replaced by rename), which is the accepted risk every
    // debugger and symbolizer (addr2line's loader, samply) takes.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| LoadError::Map {
        path: path.to_owned(),
        source,
    })?;
    let from = {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata().map_err(|source| LoadError::Map {
            path: path.to_owned(),
            source,
        })?;
        MappedFrom {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
        }
    };
    let info = elf::parse(&map).ok_or_else(|| LoadError::NotElf {
        path: path.to_owned(),
    })?;
    release_symbol_tables(&map, &info);
    let data = Arc::new(Data::Mapped(map, from));
    Ok(LoadedObject {
        path: path.to_owned(),
        data,
        info,
    })
}

/// Give back the pages of the symbol and string tables: `elf::parse` copied what it needs out
/// of them (2.6 of ripgrep's debug build's 50 MiB peak RSS is its `.strtab` alone). Only
/// pages wholly inside those sections are dropped; nothing breaks if a page is read again.
fn release_symbol_tables(map: &memmap2::Mmap, info: &elf::ElfInfo) {
    let page = crate::sys::page_size();
    for s in &info.sections {
        if !matches!(
            s.sh_type,
            elf::SHT_SYMTAB | elf::SHT_DYNSYM | elf::SHT_STRTAB
        ) {
            continue;
        }
        let (Ok(start), Ok(size)) = (usize::try_from(s.offset), usize::try_from(s.size)) else {
            continue;
        };
        let first = start.div_ceil(page) * page;
        let end = start.saturating_add(size).min(map.len()) / page * page;
        if end > first {
            // SAFETY: the mapping is private and read-only, so it holds no changes of ours to
            // lose: MADV_DONTNEED only drops the pages, and a later read faults them in again
            // from the file (the same file the mapping already trusts, see `load`).
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first)
            };
        }
    }
}

/// Wrap bytes already in memory (the vDSO image from a core).
pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Option<LoadedObject> {
    let info = elf::parse(&bytes)?;
    Some(LoadedObject {
        path: PathBuf::from(name),
        data: Arc::new(Data::Owned(bytes)),
        info,
    })
}

/// The separate debug file of `obj`, as gdb finds it: by build-id, then by `.gnu_debuglink`.
/// A candidate whose build-id differs from the object's is skipped with a warning.
pub fn find_debug_file(
    obj: &LoadedObject,
    search: &SearchPaths,
    warnings: &mut Vec<String>,
) -> Option<LoadedObject> {
    let cands = debug_file_candidates(
        &obj.path,
        obj.info.build_id.as_deref(),
        obj.info.debuglink.as_deref(),
        search,
    );
    for c in cands {
        if !c.is_file() {
            continue;
        }
        let Ok(d) = load(&c) else {
            continue;
        };
        if let (Some(a), Some(b)) = (&obj.info.build_id, &d.info.build_id) {
            if a != b {
                warnings.push(format!(
                    "{}: debug file {} has build-id {}, expected {}; ignored",
                    obj.path.display(),
                    c.display(),
                    hex(b),
                    hex(a)
                ));
                continue;
            }
        }
        if d.info.has_debug_info() || !d.info.symbols.is_empty() {
            return Some(d);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::Backing;

    #[test]
    fn reader_reads_the_mapped_file_and_not_one_renamed_into_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        // Any ELF file will do: this test binary.
        let original = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        std::fs::write(&path, &original).unwrap();
        let obj = load(&path).unwrap();
        let mut buf = [0u8; 16];
        let mut read = obj.data.reader();
        assert_eq!(read(4, &mut buf), 16);
        assert_eq!(buf, original[4..20]);
        // Reads stop at the end.
        assert_eq!(read(original.len() - 3, &mut buf), 3);
        assert_eq!(read(original.len() + 10, &mut buf), 0);
        drop(read);
        // A rebuilt file renamed over the path: the reader still gives the mapping's bytes.
        let other = dir.path().join("new");
        std::fs::write(&other, vec![0xAAu8; original.len()]).unwrap();
        std::fs::rename(&other, &path).unwrap();
        let mut read = obj.data.reader();
        assert_eq!(read(4, &mut buf), 16);
        assert_eq!(buf, original[4..20]);
    }

    /// Resident KiB of this process's mapping that holds `addr`, from /proc/self/smaps.
    fn mapping_rss_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or_default();
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && addr < b;
                    continue;
                }
            }
            if inside {
                if let Some(kib) = line.strip_prefix("Rss:") {
                    return kib.trim().trim_end_matches(" kB").parse().unwrap();
                }
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn symbol_tables_are_given_back_after_parsing_and_read_the_same_again() {
        // This test binary: its .symtab and .strtab run to megabytes.
        let path = std::env::current_exe().unwrap();
        let original = std::fs::read(&path).unwrap();
        let obj = load(&path).unwrap();
        let tables: u64 = obj
            .info
            .sections
            .iter()
            .filter(|s| matches!(s.sh_type, elf::SHT_SYMTAB | elf::SHT_STRTAB))
            .map(|s| s.size)
            .sum();
        assert!(
            tables > 512 << 10,
            "{tables} bytes of tables: the test lost its point"
        );
        assert!(obj.info.symbols.len() > 1000);
        let rss = mapping_rss_kib(obj.data.as_ptr() as usize) * 1024;
        assert!(
            rss < tables / 2,
            "{rss} bytes resident, {tables} in the tables"
        );
        // Read again, the pages come back from the file.
        let strtab = obj.info.section(".strtab").unwrap();
        let (start, end) = (
            strtab.offset as usize,
            (strtab.offset + strtab.size) as usize,
        );
        assert!(obj.data[start..end] == original[start..end]);
    }
}
