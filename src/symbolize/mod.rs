//! Addresses to function names, files and lines: DWARF through addr2line (with inlined frames),
//! the ELF symbol tables as a fallback, and demangling as gdb's `bt` shows names.
//!
//! Everything here works on bytes already in memory: [`ModuleSymbols::new`] reads DWARF sections
//! in place from the mapped file ([`SectionBytes`], no copy) and inflates `SHF_COMPRESSED` ones,
//! in parallel, into buffers of their own; [`loader`] is the only part that reads files.

pub mod elf;
mod inflate;
mod lazy;
pub mod loader;
mod vars;

pub use vars::{FrameState, Process, Variable};

/// A hash map over small keys (addresses, offsets) with a fast, non-cryptographic hasher: the
/// keys come from the files being read, and nothing here is exposed to collisions an attacker
/// could exploit beyond a slower lookup.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use std::collections::HashMap;
use std::sync::Arc;

use gimli::RunTimeEndian;

use crate::elf_core::Endian;
use elf::{ElfInfo, SectionSource, Symbol};

/// Bytes that sections are read from in place: a mapped file, or an inflated section.
pub type SharedBytes = Arc<dyn Backing>;

/// Copies bytes from an offset into a buffer; how many it copied (fewer at the end).
pub type ReadAt<'a> = Box<dyn FnMut(usize, &mut [u8]) -> usize + 'a>;

/// What [`SharedBytes`] are: bytes in memory that can also be copied out without touching
/// them. A file mapping reads with `pread`, so a scan of scattered headers does not make every
/// header's page (and the kernel's 64 KiB fault-around window) resident.
pub trait Backing: AsRef<[u8]> + Send + Sync {
    /// A reader that copies bytes from an offset into a buffer and says how many it copied
    /// (fewer at the end). For many small reads: a file is opened once per reader.
    fn reader(&self) -> ReadAt<'_> {
        let bytes = self.as_ref();
        Box::new(move |offset, buf| copy_out(bytes, offset, buf))
    }
}

/// Copy `bytes[offset..]` into `buf` as far as both go; how many were copied.
pub(crate) fn copy_out(bytes: &[u8], offset: usize, buf: &mut [u8]) -> usize {
    let b = bytes.get(offset..).unwrap_or_default();
    let n = b.len().min(buf.len());
    buf[..n].copy_from_slice(&b[..n]);
    n
}

impl Backing for Vec<u8> {}

/// One DWARF section: a range of [`SharedBytes`]. Cloning (which gimli does for every unit and
/// attribute value) shares the bytes; nothing is copied out of the mapped file.
#[derive(Clone)]
pub struct SectionBytes {
    bytes: SharedBytes,
    start: usize,
    len: usize,
}

impl SectionBytes {
    fn inflated(i: inflate::Inflated) -> SectionBytes {
        SectionBytes {
            len: i.as_ref().len(),
            bytes: Arc::new(i),
            start: 0,
        }
    }

    /// A section over bytes of its own (a copy).
    fn from_vec(bytes: Vec<u8>) -> SectionBytes {
        SectionBytes {
            len: bytes.len(),
            bytes: Arc::new(bytes),
            start: 0,
        }
    }

    fn empty() -> SectionBytes {
        SectionBytes {
            bytes: Arc::new(Vec::new()),
            start: 0,
            len: 0,
        }
    }
}

impl SectionBytes {
    /// [`Backing::reader`] for this section: offsets are the section's own, and reads stop at
    /// its end.
    fn reader(&self) -> impl FnMut(usize, &mut [u8]) -> usize + '_ {
        let mut inner = self.bytes.reader();
        move |offset, buf| {
            let n = buf.len().min(self.len.saturating_sub(offset));
            inner(self.start + offset, &mut buf[..n])
        }
    }

    /// `len` bytes from `offset` within this section (clamped to it), sharing the bytes.
    fn sub(&self, offset: usize, len: usize) -> SectionBytes {
        let offset = offset.min(self.len);
        SectionBytes {
            bytes: Arc::clone(&self.bytes),
            start: self.start + offset,
            len: len.min(self.len - offset),
        }
    }
}

impl std::ops::Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &(*self.bytes).as_ref()[self.start..self.start + self.len]
    }
}

impl AsRef<[u8]> for SectionBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// The section `name` of the file `info` describes: read in place from `file`, or inflated
/// into a buffer of its own when compressed. `None` when absent or not inflatable.
pub fn section_bytes(
    info: &ElfInfo,
    file: &SharedBytes,
    name: &'static str,
) -> Option<SectionBytes> {
    let (mut found, pending) = load_sections(info, file, &[name]);
    join_into(&mut found, pending);
    found.remove(name)
}

impl std::fmt::Debug for SectionBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SectionBytes({} bytes)", self.len)
    }
}

// SAFETY: the slice points into the `Arc`'s pointee (a file mapping or a heap/anonymous buffer
// that never moves or changes while shared), so it stays valid and identical when a
// `SectionBytes` is moved or cloned.
unsafe impl stable_deref_trait::StableDeref for SectionBytes {}
unsafe impl stable_deref_trait::CloneStableDeref for SectionBytes {}

type Reader = gimli::EndianReader<RunTimeEndian, SectionBytes>;

/// Compressed sections at least this big are inflated on a thread of their own.
const THREAD_INFLATE_FROM: usize = 64 << 10;

/// A module's location-list sections, each read in place or inflated as far as asked.
pub(crate) struct LocationSections {
    loc: Option<InfoBytes>,
    loclists: Option<InfoBytes>,
    endian: RunTimeEndian,
}

impl LocationSections {
    /// The location lists of the first `end` bytes of each section (all of a shorter one).
    pub(crate) fn upto(&self, end: usize) -> gimli::LocationLists<Reader> {
        let part = |b: &Option<InfoBytes>| {
            let bytes = b
                .as_ref()
                .and_then(|b| b.sub(0, end.min(b.len())))
                .unwrap_or_else(SectionBytes::empty);
            gimli::EndianReader::new(bytes, self.endian)
        };
        gimli::LocationLists::new(
            gimli::DebugLoc::from(part(&self.loc)),
            gimli::DebugLocLists::from(part(&self.loclists)),
        )
    }

    /// The longer section's length: past it, [`LocationSections::upto`] holds everything.
    pub(crate) fn len(&self) -> usize {
        let len = |b: &Option<InfoBytes>| b.as_ref().map_or(0, InfoBytes::len);
        len(&self.loc).max(len(&self.loclists))
    }
}

/// A section being inflated on a thread of its own.
type Pending = (
    &'static str,
    std::thread::JoinHandle<Option<inflate::Inflated>>,
);

/// Where a section's bytes lie in the file: read in place, or a zlib stream and the size it
/// inflates to.
#[derive(Clone)]
enum Place {
    Plain(std::ops::Range<usize>),
    Zlib {
        stream: std::ops::Range<usize>,
        size: usize,
    },
}

/// Where the sections `names` lie in `file` (those present), without reading them.
fn places(
    info: &ElfInfo,
    file: &SharedBytes,
    names: &[&'static str],
) -> Vec<(&'static str, Place)> {
    let data: &[u8] = (**file).as_ref();
    let range = |b: &[u8]| {
        let start = b.as_ptr() as usize - data.as_ptr() as usize;
        start..start + b.len()
    };
    names
        .iter()
        .filter_map(|&name| {
            let place = match info.section_source(data, name)? {
                SectionSource::Plain(b) => Place::Plain(range(b)),
                SectionSource::Zlib { stream, size } => Place::Zlib {
                    stream: range(stream),
                    size,
                },
            };
            Some((name, place))
        })
        .collect()
}

/// The sections gimli asks for (`names`), read in place or inflated; the big compressed ones are
/// left inflating on threads of their own (joined when first needed, so the caller goes on
/// meanwhile). A section that is absent or cannot be inflated is left out.
fn load_sections(
    info: &ElfInfo,
    file: &SharedBytes,
    names: &[&'static str],
) -> (HashMap<&'static str, SectionBytes>, Vec<Pending>) {
    load_places(file, places(info, file, names))
}

/// [`load_sections`] for sections already found.
fn load_places(
    file: &SharedBytes,
    places: Vec<(&'static str, Place)>,
) -> (HashMap<&'static str, SectionBytes>, Vec<Pending>) {
    let data: &[u8] = (**file).as_ref();
    let mut out = HashMap::new();
    let mut pending = Vec::new();
    for (name, place) in places {
        let inflated = match place {
            Place::Plain(range) => {
                out.insert(
                    name,
                    SectionBytes {
                        bytes: Arc::clone(file),
                        start: range.start,
                        len: range.len(),
                    },
                );
                continue;
            }
            Place::Zlib { stream, size } if stream.len() >= THREAD_INFLATE_FROM => {
                let file = Arc::clone(file);
                let range = stream.clone();
                let spawned = std::thread::Builder::new()
                    .spawn(move || inflate::inflate(&(*file).as_ref()[range], size, true));
                match spawned {
                    Ok(h) => {
                        pending.push((name, h));
                        continue;
                    }
                    Err(_) => inflate::inflate(&data[stream], size, false),
                }
            }
            Place::Zlib { stream, size } => inflate::inflate(&data[stream], size, false),
        };
        if let Some(i) = inflated {
            out.insert(name, SectionBytes::inflated(i));
        }
    }
    (out, pending)
}

/// One source-level frame at an address: innermost inlined first, the physical function last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymFrame {
    /// Demangled, without parameters or hash (gdb's `bt` function column).
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Offset of the address from the start of the ELF symbol, when the name came from it.
    pub symbol_offset: Option<u64>,
}

/// The symbol information of one module, owned and ready for lookups at SVMAs.
pub struct ModuleSymbols {
    dwarf: Option<lazy::LazyDwarf>,
    symbols: Vec<Symbol>,
    /// Data objects (`STT_OBJECT`) with their sizes, for gdb's `<table+4>` after pointers.
    objects: Vec<Symbol>,
    /// Call-site indexes by unit (its `.debug_info` offset), built on first question.
    call_sites: std::cell::RefCell<FastMap<usize, std::sync::Arc<CallSites>>>,
    /// Where `.debug_loc` and `.debug_loclists` lie in the DWARF file: read (or inflated)
    /// only when a variable's location is first asked for, as `bt` without variables never
    /// needs them.
    loc_places: Vec<(&'static str, Place)>,
    loc_file: Option<SharedBytes>,
    endian: RunTimeEndian,
    location_lists: std::cell::OnceCell<Option<LocationSections>>,
    /// What the DIEs say about the variables at a pc (with or without locals), kept for the
    /// next thread stopped there.
    plans: std::cell::RefCell<FastMap<(u64, bool), Arc<vars::Plan>>>,
    /// The `DW_AT_call_value` planned for a (return address, register).
    site_plans: std::cell::RefCell<FastMap<(u64, u16), vars::SitePlan>>,
}

impl std::fmt::Debug for ModuleSymbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleSymbols")
            .field("dwarf", &self.dwarf.is_some())
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

/// DWARF sections addr2line never reads for line and function lookups; skipping them saves
/// decompressing megabytes of location lists.
const UNUSED_SECTIONS: &[&str] = &[
    ".debug_loc",
    ".debug_loclists",
    ".debug_macro",
    ".debug_macinfo",
];

/// `.debug_info`: read in place or inflated whole, or inflated only as far as lookups ask.
#[derive(Clone)]
enum InfoBytes {
    Whole(SectionBytes),
    Progressive(Arc<inflate::Progressive>),
}

impl InfoBytes {
    fn len(&self) -> usize {
        match self {
            InfoBytes::Whole(s) => s.len(),
            InfoBytes::Progressive(p) => p.len(),
        }
    }

    /// `len` bytes from `offset`, inflating as far as need be; `None` where the section does
    /// not hold them (or its stream breaks off before them).
    fn sub(&self, offset: usize, len: usize) -> Option<SectionBytes> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len())?;
        match self {
            InfoBytes::Whole(s) => Some(s.sub(offset, len)),
            InfoBytes::Progressive(p) => Some(p.prefix(end)?.sub(offset, len)),
        }
    }

    /// The whole section (inflating all of it).
    fn whole(&self) -> Option<SectionBytes> {
        self.sub(0, self.len())
    }
}

/// The DWARF sections symbolization reads, by ELF section name, with `.debug_info` apart, the
/// big compressed ones possibly still inflating and the others maybe not read yet.
struct DwarfBytes {
    sections: HashMap<&'static str, SectionBytes>,
    pending: Vec<Pending>,
    /// Sections found but not read yet ([`DwarfBytes::load_the_rest`]), in `file`.
    unloaded: Vec<(&'static str, Place)>,
    file: SharedBytes,
    info: Option<InfoBytes>,
    endian: RunTimeEndian,
}

impl DwarfBytes {
    /// Read, or start inflating, the sections found but not read yet.
    fn load_the_rest(&mut self) {
        if self.unloaded.is_empty() {
            return;
        }
        let (found, pending) = load_places(&self.file, std::mem::take(&mut self.unloaded));
        self.sections.extend(found);
        self.pending.extend(pending);
    }

    /// Wait for the `i`th section still inflating and add it (if it could be inflated); the
    /// others go on inflating.
    fn join_one(&mut self, i: usize) {
        let p = self.pending.swap_remove(i);
        join_into(&mut self.sections, [p]);
    }
}

/// Wait for `pending` sections and add those that could be inflated to `sections`.
fn join_into(
    sections: &mut HashMap<&'static str, SectionBytes>,
    pending: impl IntoIterator<Item = Pending>,
) {
    for (name, h) in pending {
        if let Ok(Some(i)) = h.join() {
            sections.insert(name, SectionBytes::inflated(i));
        }
    }
}

/// The DWARF sections of `info` that symbolization reads: in place, inflated whole, or for a
/// compressed `.debug_info`, inflated as far as lookups ask (see [`inflate`]).
fn dwarf_sections(info: &ElfInfo, file: &SharedBytes) -> DwarfBytes {
    let endian = match info.endian {
        Endian::Little => RunTimeEndian::Little,
        Endian::Big => RunTimeEndian::Big,
    };
    let data: &[u8] = (**file).as_ref();
    let progressive = match info.section_source(data, ".debug_info") {
        Some(SectionSource::Zlib { stream, size }) => {
            inflate::Progressive::new(Arc::clone(file), stream, size)
        }
        _ => None,
    };
    // Which sections gimli wants, so they can be inflated at once, in parallel.
    let mut names = Vec::new();
    let _ = gimli::Dwarf::load(|id| {
        let skip = UNUSED_SECTIONS.contains(&id.name())
            || (id == gimli::SectionId::DebugInfo && progressive.is_some());
        if !skip {
            names.push(id.name());
        }
        Ok::<_, gimli::Error>(gimli::EndianSlice::new(&[][..], endian))
    });
    // `.debug_info` (when read in place) and `.debug_aranges` now; the others when
    // `LazyDwarf::new` has read the table, so that a compressed `.debug_info` starts inflating
    // before they do (it is the longest inflating, and the one lookups wait for).
    let (now, later): (Vec<_>, Vec<_>) = places(info, file, &names)
        .into_iter()
        .partition(|(n, _)| *n == ".debug_aranges" || *n == ".debug_info");
    let (mut sections, pending) = load_places(file, now);
    let info = match progressive {
        Some(p) => Some(InfoBytes::Progressive(Arc::new(p))),
        None => sections.remove(".debug_info").map(InfoBytes::Whole),
    };
    DwarfBytes {
        sections,
        pending,
        unloaded: later,
        file: Arc::clone(file),
        info,
        endian,
    }
}

impl ModuleSymbols {
    /// Build from the file holding DWARF (`dwarf`: its parsed headers and its bytes, shared so
    /// sections are read in place) and the files whose symbol tables to use (typically the
    /// object and its debug file). `probes`: SVMAs that will be looked up, if known; a
    /// compressed `.debug_info` starts inflating as far as they need while the rest is built.
    pub fn new(
        dwarf: Option<(&ElfInfo, &SharedBytes)>,
        symtabs: &[&ElfInfo],
        probes: &[u64],
    ) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let ctx = dwarf
            .filter(|(i, _)| i.has_debug_info())
            .and_then(|(info, file)| {
                match lazy::LazyDwarf::new(dwarf_sections(info, file), probes) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        warnings.push(format!("unusable DWARF: {e}"));
                        None
                    }
                }
            });
        let mut symbols: Vec<Symbol> = symtabs.iter().flat_map(|i| i.symbols.clone()).collect();
        symbols.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
        symbols.dedup_by(|a, b| a.addr == b.addr && a.name == b.name);
        let mut objects: Vec<Symbol> = symtabs.iter().flat_map(|i| i.objects.clone()).collect();
        objects.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
        objects.dedup_by(|a, b| a.addr == b.addr && a.name == b.name);
        let (loc_places, loc_file, endian) = match (dwarf, &ctx) {
            (Some((info, file)), Some(_)) => (
                places(info, file, &[".debug_loc", ".debug_loclists"]),
                Some(Arc::clone(file)),
                match info.endian {
                    Endian::Little => RunTimeEndian::Little,
                    Endian::Big => RunTimeEndian::Big,
                },
            ),
            _ => (Vec::new(), None, RunTimeEndian::Little),
        };
        (
            ModuleSymbols {
                dwarf: ctx,
                symbols,
                objects,
                call_sites: Default::default(),
                loc_places,
                loc_file,
                endian,
                location_lists: Default::default(),
                plans: Default::default(),
                site_plans: Default::default(),
            },
            warnings,
        )
    }

    /// The frames at `svma`, innermost inlined first and the physical function last. Empty when
    /// nothing is known.
    pub fn lookup(&self, svma: u64) -> Vec<SymFrame> {
        // Lazily: a later context (the whole-file one) is built only if the earlier gave nothing.
        let mut out = self
            .dwarf
            .as_ref()
            .and_then(|d| d.answer(svma, |ctx| dwarf_frames(ctx, svma)))
            .unwrap_or_default();
        // No DWARF function for the physical frame: take the name from the symbol table.
        if out.last().map_or(true, |f| f.function.is_none()) {
            if let Some(s) = symbol_at(&self.symbols, svma) {
                let name = demangle(&s.name);
                match out.last_mut() {
                    Some(f) => {
                        f.function = Some(name);
                        f.symbol_offset = Some(svma - s.addr);
                    }
                    None => out.push(SymFrame {
                        function: Some(name),
                        symbol_offset: Some(svma - s.addr),
                        ..SymFrame::default()
                    }),
                }
            }
        }
        out
    }

    /// The ELF symbol covering `svma` and the offset into it.
    pub fn symbol(&self, svma: u64) -> Option<(&str, u64)> {
        symbol_at(&self.symbols, svma).map(|s| (&*s.name, svma - s.addr))
    }

    /// The data object symbol covering `svma` and the offset into it.
    pub fn object(&self, svma: u64) -> Option<(&str, u64)> {
        symbol_at(&self.objects, svma).map(|s| (&*s.name, svma - s.addr))
    }

    /// `.debug_loc` and `.debug_loclists`: found on first use, read in place or inflated only
    /// as far as the location lists asked for reach ([`LocationSections::upto`]).
    fn location_lists(&self) -> Option<&LocationSections> {
        self.location_lists
            .get_or_init(|| {
                let file = self.loc_file.as_ref()?;
                let data: &[u8] = (**file).as_ref();
                let mut out = LocationSections {
                    loc: None,
                    loclists: None,
                    endian: self.endian,
                };
                for (name, place) in &self.loc_places {
                    let bytes = match place {
                        Place::Plain(r) => InfoBytes::Whole(SectionBytes {
                            bytes: Arc::clone(file),
                            start: r.start,
                            len: r.len(),
                        }),
                        Place::Zlib { stream, size } => {
                            match inflate::Progressive::new(
                                Arc::clone(file),
                                &data[stream.clone()],
                                *size,
                            ) {
                                Some(p) => InfoBytes::Progressive(Arc::new(p)),
                                None => continue,
                            }
                        }
                    };
                    match *name {
                        ".debug_loc" => out.loc = Some(bytes),
                        _ => out.loclists = Some(bytes),
                    }
                }
                Some(out)
            })
            .as_ref()
    }

    /// The entry SVMA of the function symbol named `name`.
    pub fn symbol_entry(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| &*s.name == name)
            .map(|s| s.addr)
    }

    /// What the call whose return address is `ret_svma` calls, from its DW_TAG_call_site.
    pub fn call_target(&self, ret_svma: u64) -> Option<CallTarget> {
        let (sites, unit) = self.call_sites(ret_svma.checked_sub(1)?)?;
        let origin = (*sites.by_return.get(&ret_svma)?)?;
        call_origin(&unit, origin)
    }

    /// The tail-call sites (DW_AT_call_tail_call) in the function whose entry is `entry_svma`:
    /// each site's "return" pc (the address after its `jmp`) and target.
    pub fn tail_calls(&self, entry_svma: u64) -> Vec<(u64, CallTarget)> {
        let Some((sites, unit)) = self.call_sites(entry_svma) else {
            return Vec::new();
        };
        let Some(tail) = sites.tail_by_entry.get(&entry_svma) else {
            return Vec::new();
        };
        tail.iter()
            .filter_map(|&(ret, origin)| Some((ret, call_origin(&unit, origin)?)))
            .collect()
    }

    /// The call sites of the unit `probe` lies in, indexed on first use (one walk of the
    /// unit's DIEs instead of one per question), and the unit to resolve their targets in.
    fn call_sites(
        &self,
        probe: u64,
    ) -> Option<(std::sync::Arc<CallSites>, gimli::UnitRef<'_, Reader>)> {
        let (key, unit) = self.dwarf.as_ref()?.unit_at(probe)?;
        if let Some(s) = self.call_sites.borrow().get(&key) {
            return Some((s.clone(), unit));
        }
        let sites = std::sync::Arc::new(CallSites::index(&unit));
        self.call_sites.borrow_mut().insert(key, sites.clone());
        Some((sites, unit))
    }
}

/// The frames `ctx` gives at `svma`, innermost inlined first; `None` when it knows none, an
/// error when it cannot read the DWARF it needs for them.
fn dwarf_frames(
    ctx: &addr2line::Context<Reader>,
    svma: u64,
) -> Result<Option<Vec<SymFrame>>, gimli::Error> {
    let mut out = Vec::new();
    let mut it = ctx.find_frames(svma).skip_all_loads()?;
    // Bounded: garbage DWARF must not produce endless inline chains.
    loop {
        let f = match it.next() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break, // what was read before stands
        };
        if out.len() >= 256 {
            break;
        }
        let function = f.function.as_ref().and_then(|n| {
            let raw = n.raw_name().ok()?;
            Some(demangle_with(&raw, n.language))
        });
        let (file, line, column) = match &f.location {
            Some(l) => (l.file.map(str::to_string), l.line, l.column),
            None => (None, None, None),
        };
        out.push(SymFrame {
            function,
            file,
            line,
            column,
            symbol_offset: None,
        });
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The call sites of one unit, from one walk of its DIEs. Targets are kept as the offsets of
/// the DIEs they name and resolved when asked: a release build has hundreds of thousands of
/// call sites and a backtrace asks about a few.
#[derive(Default)]
struct CallSites {
    /// By return pc: the first call site's target DIE (`None` when it names none).
    by_return: FastMap<u64, Option<gimli::UnitOffset<usize>>>,
    /// By return pc: the first call site's own DIE (its parameters are its children).
    site_by_return: FastMap<u64, gimli::UnitOffset<usize>>,
    /// By the entry (DW_AT_low_pc) of a subprogram: the tail-call sites in its subtree, each
    /// with its return pc and target DIE, in DIE order. Only the first subprogram with an entry.
    tail_by_entry: FastMap<u64, Vec<(u64, gimli::UnitOffset<usize>)>>,
}

impl CallSites {
    /// One walk over the unit's raw entries: only subprograms' and call sites' attributes are
    /// decoded; every other DIE's are skipped by their forms.
    fn index(unit: &gimli::UnitRef<'_, Reader>) -> CallSites {
        let mut out = CallSites::default();
        let Ok(mut entries) = unit.entries_raw(None) else {
            return out;
        };
        // Enclosing subprograms with an entry first seen here: (depth, entry).
        let mut open: Vec<(isize, u64)> = Vec::new();
        let mut budget = MAX_DIES;
        while !entries.is_empty() {
            let Some(b) = budget.checked_sub(1) else {
                break;
            };
            budget = b;
            let offset = entries.next_offset();
            let depth = entries.next_depth();
            let abbrev = match entries.read_abbreviation() {
                Ok(Some(a)) => a,
                Ok(None) => continue, // the end of a list of siblings
                Err(_) => break,
            };
            while open.last().is_some_and(|&(d, _)| depth <= d) {
                open.pop(); // left that subprogram's subtree
            }
            let tag = abbrev.tag();
            if tag != gimli::DW_TAG_subprogram && !is_call_site(tag) {
                if entries.skip_attributes(abbrev.attributes()).is_err() {
                    break;
                }
                continue;
            }
            let mut site = RawSite::default();
            for spec in abbrev.attributes() {
                let Ok(attr) = entries.read_attribute(*spec) else {
                    return out;
                };
                site.take(unit, attr);
            }
            if tag == gimli::DW_TAG_subprogram {
                if let Some(entry) = site.low_pc {
                    if let std::collections::hash_map::Entry::Vacant(v) =
                        out.tail_by_entry.entry(entry)
                    {
                        v.insert(Vec::new());
                        open.push((depth, entry));
                    }
                }
                continue;
            }
            // DWARF 5 `DW_AT_call_return_pc`; the GNU extension puts it in `DW_AT_low_pc`.
            let Some(ret) = site.return_pc.or(site.low_pc) else {
                continue;
            };
            if let (true, Some(t)) = (site.tail, site.origin) {
                for &(_, entry) in &open {
                    if let Some(v) = out.tail_by_entry.get_mut(&entry) {
                        v.push((ret, t));
                    }
                }
            }
            out.by_return.entry(ret).or_insert(site.origin);
            out.site_by_return.entry(ret).or_insert(offset);
        }
        out
    }
}

/// The attributes of a subprogram or call site that [`CallSites::index`] needs.
#[derive(Default)]
struct RawSite {
    low_pc: Option<u64>,
    return_pc: Option<u64>,
    /// DW_AT_call_origin, else DW_AT_abstract_origin (GCC's older call sites).
    origin: Option<gimli::UnitOffset<usize>>,
    tail: bool,
}

impl RawSite {
    fn take(&mut self, unit: &gimli::UnitRef<'_, Reader>, attr: gimli::Attribute<Reader>) {
        let address = |v| match v {
            gimli::AttributeValue::Addr(a) => Some(a),
            gimli::AttributeValue::DebugAddrIndex(i) => unit.address(i).ok(),
            _ => None,
        };
        match (attr.name(), attr.value()) {
            (gimli::DW_AT_low_pc, v) => self.low_pc = address(v),
            (gimli::DW_AT_call_return_pc, v) => self.return_pc = address(v),
            (gimli::DW_AT_call_origin, gimli::AttributeValue::UnitRef(o)) => self.origin = Some(o),
            (gimli::DW_AT_abstract_origin, gimli::AttributeValue::UnitRef(o)) => {
                self.origin.get_or_insert(o);
            }
            (gimli::DW_AT_call_tail_call | gimli::DW_AT_GNU_tail_call, v) => {
                self.tail |= matches!(v, gimli::AttributeValue::Flag(true));
            }
            _ => {}
        }
    }
}

/// Most DIEs scanned for one call-site question: garbage DWARF must not cost unbounded time.
const MAX_DIES: usize = 1 << 20;

/// The callee of a call site: an entry in the same module, or a function known by name only
/// (a declaration; its definition is found through the symbol tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallTarget {
    Entry(u64),
    Name(String),
}

fn is_call_site(tag: gimli::DwTag) -> bool {
    tag == gimli::DW_TAG_call_site || tag == gimli::DW_TAG_GNU_call_site
}

fn address_attr(
    unit: &gimli::UnitRef<'_, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
    at: gimli::DwAt,
) -> Option<u64> {
    match e.attr_value(at)? {
        gimli::AttributeValue::Addr(a) => Some(a),
        gimli::AttributeValue::DebugAddrIndex(i) => unit.address(i).ok(),
        _ => None,
    }
}

/// The called function (the DIE at `origin`): its entry when it (or the DIE it specifies) has a
/// `DW_AT_low_pc`, else its linkage name or name.
fn call_origin(
    unit: &gimli::UnitRef<'_, Reader>,
    origin: gimli::UnitOffset<usize>,
) -> Option<CallTarget> {
    let mut target = unit.entry(origin).ok()?;
    for _ in 0..4 {
        if let Some(a) = address_attr(unit, &target, gimli::DW_AT_low_pc) {
            return Some(CallTarget::Entry(a));
        }
        match target.attr_value(gimli::DW_AT_specification) {
            Some(gimli::AttributeValue::UnitRef(o)) => target = unit.entry(o).ok()?,
            _ => break,
        }
    }
    let name = [gimli::DW_AT_linkage_name, gimli::DW_AT_name]
        .into_iter()
        .find_map(|a| target.attr_value(a))?;
    let name = unit.attr_string(name).ok()?;
    Some(CallTarget::Name(
        String::from_utf8_lossy(&name).into_owned(),
    ))
}

fn symbol_at(symbols: &[Symbol], svma: u64) -> Option<&Symbol> {
    let i = symbols.partition_point(|s| s.addr <= svma);
    let last = symbols.get(i.checked_sub(1)?)?;
    let group = symbols[..i]
        .iter()
        .rev()
        .take_while(|s| s.addr == last.addr);
    let mut sizeless = None;
    for s in group {
        if s.size == 0 {
            sizeless = Some(s);
        } else if svma < s.addr.saturating_add(s.size) {
            return Some(s);
        }
    }
    sizeless
}

/// A DWARF function name demangled by its unit's language. Only mangled names (`_Z…`, `_R…`)
/// are: a C++ unit's plain `f` is `f` (a demangler reads a bare `f` as the type `float`).
fn demangle_with(raw: &str, lang: Option<gimli::DwLang>) -> String {
    if !raw.starts_with("_Z") && !raw.starts_with("_R") {
        return raw.to_string();
    }
    match lang {
        Some(gimli::DW_LANG_Rust) => demangle_rust(raw).unwrap_or_else(|| raw.to_string()),
        Some(gimli::DW_LANG_C_plus_plus)
        | Some(gimli::DW_LANG_C_plus_plus_03)
        | Some(gimli::DW_LANG_C_plus_plus_11)
        | Some(gimli::DW_LANG_C_plus_plus_14) => {
            demangle_cpp(raw).unwrap_or_else(|| raw.to_string())
        }
        _ => demangle(raw),
    }
}

/// Demangle a Rust (legacy or v0) or C++ symbol name the way gdb's `bt` shows it: no Rust hash,
/// no C++ parameter list. Anything else is returned unchanged.
pub fn demangle(raw: &str) -> String {
    if raw.starts_with("_R") || is_rust_legacy(raw) {
        if let Some(s) = demangle_rust(raw) {
            return s;
        }
    }
    if raw.starts_with("_Z") {
        if let Some(s) = demangle_cpp(raw) {
            return s;
        }
    }
    raw.to_string()
}

/// A legacy Rust symbol ends in `17h<16 hex digits>E`.
fn is_rust_legacy(raw: &str) -> bool {
    let Some(body) = raw.strip_prefix("_ZN").and_then(|s| s.strip_suffix('E')) else {
        return false;
    };
    body.len() > 19
        && body.is_char_boundary(body.len() - 19)
        && body[body.len() - 19..].starts_with("17h")
        && body[body.len() - 16..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

fn demangle_rust(raw: &str) -> Option<String> {
    rustc_demangle::try_demangle(raw)
        .ok()
        .map(|d| format!("{d:#}"))
}

/// A C++ or Rust symbol demangled in full, as gdb names the symbol after a pointer's value:
/// `Foo::bar(int)`, `vtable for Foo`. Anything else is returned unchanged.
pub fn demangle_full(raw: &str) -> String {
    if raw.starts_with("_Z") && !is_rust_legacy(raw) {
        if let Some(s) = cpp_demangle::Symbol::new(raw)
            .ok()
            .and_then(|s| s.demangle().ok())
        {
            return s;
        }
    }
    demangle(raw)
}

fn demangle_cpp(raw: &str) -> Option<String> {
    let sym = cpp_demangle::Symbol::new(raw).ok()?;
    let opts = cpp_demangle::DemangleOptions::new()
        .no_params()
        .no_return_type();
    sym.demangle_with_options(&opts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_like_gdb_bt() {
        assert_eq!(
            demangle("_ZN4core9panicking5panic17h0123456789abcdefE"),
            "core::panicking::panic"
        );
        assert_eq!(demangle("_RNvCs1234_7mycrate3foo"), "mycrate::foo");
        assert_eq!(demangle("_ZN3foo3barEi"), "foo::bar");
        assert_eq!(demangle("_Z3bazv"), "baz");
        assert_eq!(demangle("main"), "main");
        assert_eq!(demangle("_Zgarbage"), "_Zgarbage");
    }

    #[test]
    fn only_mangled_names_are_demangled_whatever_the_language() {
        let cxx = Some(gimli::DW_LANG_C_plus_plus_14);
        assert_eq!(demangle_with("f", cxx), "f");
        assert_eq!(demangle_with("i", cxx), "i");
        assert_eq!(demangle_with("main", cxx), "main");
        assert_eq!(demangle_with("_Z1fv", cxx), "f");
        assert_eq!(
            demangle_with("_ZN4bank6Ledger5coverEv", cxx),
            "bank::Ledger::cover"
        );
        let rust = Some(gimli::DW_LANG_Rust);
        assert_eq!(demangle_with("d", rust), "d");
        assert_eq!(
            demangle_with("_ZN4core9panicking5panic17h0123456789abcdefE", rust),
            "core::panicking::panic"
        );
        assert_eq!(
            demangle_with("_RNvCs1234_7mycrate3foo", rust),
            "mycrate::foo"
        );
    }

    #[test]
    fn symbol_fallback_gives_name_and_offset() {
        let info = ElfInfo {
            endian: Endian::Little,
            is_64: true,
            sections: vec![],
            load_vaddr: None,
            entry: 0,
            load_span: None,
            build_id: None,
            debuglink: None,
            data_symbols: Vec::new(),
            objects: Vec::new(),
            arm_functions: Vec::new(),
            symbols: vec![Symbol {
                addr: 0x1000,
                size: 0x20,
                name: "_Z3bazv".into(),
            }],
        };
        let (s, _) = ModuleSymbols::new(None, &[&info], &[]);
        let f = s.lookup(0x1008);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].function.as_deref(), Some("baz"));
        assert_eq!(f[0].symbol_offset, Some(8));
        assert!(s.lookup(0x1020).is_empty());
    }
}
