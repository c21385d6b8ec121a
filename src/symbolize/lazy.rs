//! A DWARF index that builds addr2line's state only for the compilation units that looked-up
//! addresses fall in.
//!
//! `addr2line::Context::from_dwarf` parses every unit's abbreviations and line-program header
//! up front: for libc6-dbg's 4,126 units that is most of the time and allocations of a `bt`
//! that needs a handful of them. Here `.debug_aranges` maps an address to its unit, and that
//! unit alone is handed to addr2line as a one-unit view of `.debug_info` (every other section
//! whole, so offsets into them stay valid). Only the header of a unit asked about is read, so a
//! compressed `.debug_info` is inflated only as far as the last unit asked about
//! ([`super::inflate::Progressive`]). Compilation units the table leaves out (rustc leaves out
//! its code-less units, and the units of line-tables-only builds) are found by a scan of every
//! unit header, made (and the whole section inflated) only when an address is in no set; each
//! is asked when the ranges its root DIE or line program gives hold the address, read from
//! copies so the mapping is not faulted in unit by unit.
//!
//! A unit whose abbreviations use a form that refers by `.debug_info` offset
//! (`DW_FORM_ref_addr`: rustc's cross-codegen-unit inlining, fat LTO; or `DW_FORM_indirect`,
//! which may be one) cannot be read in a one-unit view. It gets a sparse view instead
//! ([`sparse_info`]): a section of the full length holding it and the units its DIEs refer to
//! at their own offsets, the gaps filled with units gimli steps over. Every offset then means
//! what it means in the file. A name that needs a unit the view left out (a reference from a
//! referred-to unit) makes the lookup fail, and the whole-file context answers instead.
//!
//! The whole-file context, built on first need, also answers where a view cannot be built
//! (unreadable headers, a sparse view of more than [`MAX_SPARSE_UNITS`] units), and where a set
//! names an offset where no unit starts or `.debug_aranges` cannot be read to its end
//! (addr2line's whole-file context then fails too, so the units the readable sets place are all
//! that answers; before, nothing did).
//!
//! Pure code over sections already in memory; the exceptions are the unit-header scan and the
//! root DIEs and line programs of units the table leaves out, which are copied out through
//! [`super::Backing::reader`] (the loader backs a mapped file with `pread`, so they do not
//! fault the mapping in).

use std::cell::{OnceCell, RefCell};

use gimli::{Reader as _, RunTimeEndian, Section as _, SectionId};

use super::{DwarfBytes, InfoBytes, Reader, SectionBytes};

type Context = addr2line::Context<Reader>;

/// One compilation unit: where it starts in `.debug_info` and, each read when first needed,
/// its length and its context (`None` inside when it cannot be used on its own).
struct Unit {
    offset: usize,
    len: OnceCell<Option<usize>>,
    ctx: OnceCell<Option<UnitContext>>,
    /// For a unit without a `.debug_aranges` set: the address ranges its root DIE or line
    /// program gives (`None` when unreadable, and the unit is always asked).
    ranges: OnceCell<Option<Vec<(u64, u64)>>>,
}

impl Unit {
    fn new(offset: usize, len: Option<usize>) -> Unit {
        Unit {
            offset,
            len: len.map_or_else(OnceCell::new, |l| OnceCell::from(Some(l))),
            ctx: OnceCell::new(),
            ranges: OnceCell::new(),
        }
    }
}

/// The context of one unit and the view it was built over.
struct UnitContext {
    ctx: Context,
    /// The `.debug_info` offset the view starts at (its unit offsets are relative to it).
    base: usize,
    /// Built over a [`sparse_info`] view: a lookup that fails may have needed a unit the view
    /// left out, and the whole-file context is asked instead.
    sparse: bool,
}

/// An address range of a unit from `.debug_aranges`; `min_begin` is the smallest `begin` of
/// this and every later entry (entries are sorted by `end`), which bounds the search.
struct Range {
    begin: u64,
    end: u64,
    min_begin: u64,
    /// Index into [`LazyDwarf::listed`].
    unit: usize,
}

/// The units of one object's DWARF, parsed on demand.
pub(super) struct LazyDwarf {
    /// Every section but `.debug_info`, by ELF section name (some maybe still inflating).
    sections: RefCell<DwarfBytes>,
    info: Option<InfoBytes>,
    endian: RunTimeEndian,
    /// The units `.debug_aranges` names, by offset.
    listed: Vec<Unit>,
    ranges: Vec<Range>,
    /// Whether `.debug_aranges` could be read to its end.
    aranges_ok: bool,
    /// Compilation units without a `.debug_aranges` set, asked (each on its own) about an
    /// address no set covers. Found by the header scan on first need; `None` when the table
    /// or the headers could not be read, and the whole-file context is asked instead.
    uncovered: OnceCell<Option<Vec<Unit>>>,
    /// Every unit's place in `.debug_info`, from one scan of the headers (`None` when they
    /// cannot all be read).
    spans: OnceCell<Option<Vec<UnitSpan>>>,
    full: OnceCell<Option<Context>>,
}

impl LazyDwarf {
    /// Index the sections. An error when `.debug_info`'s first unit header cannot be read, as
    /// addr2line would fail on it too. `probes`: SVMAs about to be looked up, if known; a
    /// compressed `.debug_info` starts inflating as far as they need ([`LazyDwarf::prefetch`]).
    pub(super) fn new(bytes: DwarfBytes, probes: &[u64]) -> Result<LazyDwarf, gimli::Error> {
        let mut sections = bytes;
        let (info, endian) = (sections.info.take(), sections.endian);
        if let Some(info) = info.as_ref().filter(|i| i.len() > 0) {
            let head = info
                .sub(0, HEADER_MAX.min(info.len()))
                .ok_or_else(|| eof(0))?;
            unit_span(&head, 0, info.len(), endian)?;
        }
        let aranges = section(&mut sections, ".debug_aranges");
        let aranges = gimli::DebugAranges::from(gimli::EndianReader::new(aranges, endian));
        // Each entry with the offset of its set's unit, until the units are numbered.
        let mut ranges = Vec::new();
        let mut named = Vec::new();
        let mut sets = aranges.headers();
        // A corrupt table only costs laziness: what could be read is used, the rest falls back.
        let mut aranges_ok = true;
        loop {
            match sets.next() {
                Ok(Some(set)) => {
                    let unit = set.debug_info_offset().0;
                    named.push(unit);
                    let mut entries = set.entries();
                    loop {
                        match entries.next() {
                            Ok(Some(e)) if e.length() > 0 => {
                                let r = e.range();
                                ranges.push(Range {
                                    begin: r.begin,
                                    end: r.end,
                                    min_begin: 0,
                                    unit,
                                });
                            }
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(_) => {
                                aranges_ok = false;
                                break;
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    aranges_ok = false;
                    break;
                }
            }
        }
        named.sort_unstable();
        named.dedup();
        for r in &mut ranges {
            r.unit = named.binary_search(&r.unit).unwrap_or_default();
        }
        ranges.sort_unstable_by_key(|r| (r.end, r.unit));
        let mut min = u64::MAX;
        for r in ranges.iter_mut().rev() {
            min = min.min(r.begin);
            r.min_begin = min;
        }
        let lazy = LazyDwarf {
            sections: RefCell::new(sections),
            info,
            endian,
            listed: named.into_iter().map(|o| Unit::new(o, None)).collect(),
            ranges,
            aranges_ok,
            uncovered: OnceCell::new(),
            spans: OnceCell::new(),
            full: OnceCell::new(),
        };
        drop(lazy.prefetch(probes));
        lazy.sections.borrow_mut().load_the_rest();
        Ok(lazy)
    }

    /// Start inflating a compressed `.debug_info`, on a thread of its own, as far as lookups at
    /// `probes` will read: to the end of the last unit `.debug_aranges` puts one of them in, or
    /// to the end of the section when one is in no set (the header scan then reads it all).
    /// Inflating that stream is the longest single step of a backtrace through libc6-dbg; begun
    /// here, it runs beside the other sections' inflating and the symbol tables' merge instead
    /// of after them, and the lookups parse early units while later ones still inflate (a
    /// reader is woken after each step of at most 256 KiB). Nothing to do for a section read in
    /// place, or when no thread can be started (the lookups then inflate as they go).
    fn prefetch(&self, probes: &[u64]) -> Option<std::thread::JoinHandle<()>> {
        let Some(InfoBytes::Progressive(p)) = &self.info else {
            return None;
        };
        let mut last: Option<usize> = None;
        let mut whole = false;
        for &probe in probes {
            let mut covered = false;
            for r in self.ranges_at(probe) {
                covered = true;
                last = last.max(self.listed.get(r.unit).map(|u| u.offset));
            }
            whole |= !covered;
        }
        if !whole && last.is_none() {
            return None;
        }
        let (p, endian) = (std::sync::Arc::clone(p), self.endian);
        std::thread::Builder::new()
            .spawn(move || {
                let len = p.len();
                let end = match last.filter(|_| !whole) {
                    None => len,
                    Some(offset) => {
                        // The last unit's length is in its header, inflated first.
                        let head_end = offset.saturating_add(HEADER_MAX).min(len);
                        let Some(head) = p.prefix(head_end) else {
                            return;
                        };
                        match unit_span(&head[offset.min(head.len())..], offset, len, endian) {
                            Ok(span) => offset + span.len,
                            Err(_) => return,
                        }
                    }
                };
                p.ensure(end);
            })
            .ok()
    }

    /// The sections as gimli wants them, with `.debug_info` as `view` says. In a one-unit view
    /// `.debug_aranges` (whose offsets would point outside it) is empty; a sparse view keeps
    /// every offset, so the table stays. `.debug_types` is left out of both. An error when
    /// `.debug_info` does not hold the unit's bytes (or could not be inflated as far).
    fn dwarf(&self, view: View) -> Result<gimli::Dwarf<Reader>, gimli::Error> {
        let (aranges, types) = match view {
            View::Whole => (true, true),
            View::Unit(..) => (false, false),
            View::Sparse(_) => (true, false),
        };
        let info = match (&self.info, view) {
            (None, _) => SectionBytes::empty(),
            (Some(i), View::Unit(offset, len)) => i.sub(offset, len).ok_or_else(|| eof(offset))?,
            (Some(i), View::Whole) => i.whole().ok_or_else(|| eof(0))?,
            (Some(_), View::Sparse(bytes)) => bytes,
        };
        gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
            let bytes = match id {
                SectionId::DebugInfo => info.clone(),
                SectionId::DebugAranges if !aranges => SectionBytes::empty(),
                SectionId::DebugTypes if !types => SectionBytes::empty(),
                _ => section(&mut self.sections.borrow_mut(), id.name()),
            };
            Ok(gimli::EndianReader::new(bytes, self.endian))
        })
    }

    /// The first answer `ask` gives about `probe` from the contexts that may know it, in
    /// order: the units `.debug_aranges` places it in, then the units the table does not cover
    /// (or the whole-file context when they cannot be found). The whole-file context also
    /// stands in, once, for a unit that cannot be used on its own, and for a sparse view that
    /// failed.
    /// Each context is built only when reached.
    pub(super) fn answer<T>(
        &self,
        probe: u64,
        mut ask: impl FnMut(&Context) -> Result<Option<T>, gimli::Error>,
    ) -> Option<T> {
        let mut full_asked = false;
        let mut sparse_failed = false;
        for c in self.candidates(probe) {
            let (ctx, sparse) = match c {
                Some(u) => (&u.ctx, u.sparse),
                None if full_asked => continue,
                None => {
                    full_asked = true;
                    match self.full() {
                        Some(f) => (f, false),
                        None => continue,
                    }
                }
            };
            match ask(ctx) {
                Ok(Some(t)) => return Some(t),
                Ok(None) => {}
                Err(_) => sparse_failed |= sparse,
            }
        }
        if sparse_failed && !full_asked {
            return ask(self.full()?).ok().flatten();
        }
        None
    }

    /// The unit `probe` lies in and a key unique to it within this object (its offset in
    /// `.debug_info`), as the first context that knows the address answers.
    pub(super) fn unit_at(&self, probe: u64) -> Option<(usize, gimli::UnitRef<'_, Reader>)> {
        self.candidates(probe).find_map(|c| {
            let (base, ctx) = match c {
                Some(u) => (u.base, &u.ctx),
                None => (0, self.full()?),
            };
            let unit = ctx.find_dwarf_and_unit(probe).skip_all_loads()?;
            let offset = unit.header.offset().to_debug_info_offset(&unit.header)?;
            Some((base + offset.0, unit))
        })
    }

    /// The unit contexts that may know `probe`, in the order [`LazyDwarf::answer`] asks them;
    /// `None` where the whole-file context is to be asked.
    fn candidates(&self, probe: u64) -> impl Iterator<Item = Option<&UnitContext>> {
        let listed = self.ranges_at(probe).map(|r| self.listed.get(r.unit));
        // Reached only when no listed unit answered; `None`: the whole-file context.
        let rest = std::iter::once(()).flat_map(move |()| {
            let rest: Box<dyn Iterator<Item = Option<&Unit>>> = match self.uncovered() {
                Some(units) => Box::new(
                    units
                        .iter()
                        .filter(move |u| self.may_contain(u, probe))
                        .map(Some),
                ),
                None => Box::new(std::iter::once(None)),
            };
            rest
        });
        listed
            .chain(rest)
            .map(move |u| u.and_then(|u| self.unit_context(u)))
    }

    /// The `.debug_aranges` entries holding `probe`.
    fn ranges_at(&self, probe: u64) -> impl Iterator<Item = &Range> {
        let start = self.ranges.partition_point(|r| r.end <= probe);
        self.ranges[start..]
            .iter()
            .take_while(move |r| r.min_begin <= probe)
            .filter(move |r| r.begin <= probe)
    }

    /// Every unit header, scanned once (the whole section inflated for it).
    fn spans(&self) -> Option<&[UnitSpan]> {
        self.spans
            .get_or_init(|| {
                let info = self.info.as_ref()?.whole()?;
                scan_unit_headers(Some(&info), self.endian).ok()
            })
            .as_deref()
    }

    /// The compilation units without a `.debug_aranges` set (see [`LazyDwarf::uncovered`]).
    /// The first call reads every unit header.
    fn uncovered(&self) -> Option<&[Unit]> {
        self.uncovered
            .get_or_init(|| {
                if !self.aranges_ok {
                    return None;
                }
                let spans = self.spans()?;
                let starts_unit = |o: &usize| spans.binary_search_by_key(o, |s| s.offset).is_ok();
                if !self.listed.iter().all(|u| starts_unit(&u.offset)) {
                    return None; // a set names no unit: the table cannot be trusted
                }
                let units: Vec<Unit> = spans
                    .iter()
                    .filter(|s| s.compile)
                    .filter(|s| {
                        self.listed
                            .binary_search_by_key(&s.offset, |u| u.offset)
                            .is_err()
                    })
                    .map(|s| Unit::new(s.offset, Some(s.len)))
                    .collect();
                Some(units)
            })
            .as_deref()
    }

    /// The unit's length from its header, read (and inflated) when first asked.
    fn unit_len(&self, unit: &Unit) -> Option<usize> {
        *unit.len.get_or_init(|| {
            let info = self.info.as_ref()?;
            let n = HEADER_MAX.min(info.len().checked_sub(unit.offset)?);
            let head = info.sub(unit.offset, n)?;
            unit_span(&head, unit.offset, info.len(), self.endian)
                .ok()
                .map(|s| s.len)
        })
    }

    /// Whether `probe` may lie in `unit` by the ranges its root DIE or line program gives, as
    /// addr2line finds a unit's ranges when `.debug_aranges` does not list it.
    fn may_contain(&self, unit: &Unit, probe: u64) -> bool {
        let ranges = unit.ranges.get_or_init(|| {
            self.ranges_from_copies(unit)
                .or_else(|| self.ranges_in_place(unit))
        });
        match ranges {
            Some(rs) => rs.iter().any(|&(b, e)| b <= probe && probe < e),
            None => true,
        }
    }

    /// A unit's ranges as [`LazyDwarf::may_contain`] wants them, read through the mappings.
    fn ranges_in_place(&self, unit: &Unit) -> Option<Vec<(u64, u64)>> {
        let dwarf = self
            .dwarf(View::Unit(unit.offset, self.unit_len(unit)?))
            .ok()?;
        let header = dwarf.units().next().ok()??;
        let u = dwarf.unit(header).ok()?;
        let mut out = Vec::new();
        let mut it = dwarf.unit_ranges(&u).ok()?;
        while let Ok(Some(r)) = it.next() {
            if r.begin < r.end {
                out.push((r.begin, r.end));
            }
        }
        if out.is_empty() {
            if let Some(program) = u.line_program.clone() {
                out = sequences(program)?;
            }
        }
        Some(out)
    }

    /// [`LazyDwarf::ranges_in_place`] from copies of the unit's first bytes and of its line
    /// program, taken with `pread`: rustc leaves hundreds of code-less units out of
    /// `.debug_aranges`, and reading each root DIE and line-program header through the mapping
    /// makes the kernel map 64 KiB around each (11 of 61 MiB on ripgrep's release build).
    /// `None` where this reading does not apply (a root DIE longer than the copy, DWARF 5
    /// index forms) or fails: the mappings are read then.
    fn ranges_from_copies(&self, unit: &Unit) -> Option<Vec<(u64, u64)>> {
        use gimli::{AttributeValue as V, Endianity};
        let endian = self.endian;
        let Some(InfoBytes::Whole(info)) = &self.info else {
            return None; // an inflated section is in memory already
        };
        let len = *unit.len.get()?.as_ref()?;
        let mut head = vec![0u8; len.min(ROOT_COPY)];
        if info.reader()(unit.offset, &mut head) != head.len() || head.len() < HEADER_MAX {
            return None;
        }
        // The copy is a unit of its own length.
        let n = head.len();
        match initial_length(&head, unit.offset, endian).ok()? {
            (_, 12) => endian.write_u64(&mut head[4..12], (n - 12) as u64),
            _ => endian.write_u32(&mut head[..4], u32::try_from(n - 4).ok()?),
        }
        let copy = |b: Vec<u8>| gimli::EndianReader::new(super::SectionBytes::from_vec(b), endian);
        let header = gimli::DebugInfo::from(copy(head.clone()))
            .units()
            .next()
            .ok()??;
        let sections = &mut self.sections.borrow_mut();
        let table = section(sections, ".debug_abbrev");
        // Only the root DIE is read, so only its abbreviation is parsed: copied out of the
        // unit's table (rustc's run to hundreds of entries; the root's is the first) into a
        // table of its own, the copy's header pointing at it.
        let code = gimli::EndianSlice::new(head.get(header.size_of_header()..)?, endian)
            .read_uleb128()
            .ok()?;
        let (header, abbrev) = match root_abbreviation(&table, header.debug_abbrev_offset().0, code)
        {
            Some(decl) => {
                let at = match (header.format(), header.version() >= 5) {
                    (gimli::Format::Dwarf32, false) => 6..10,
                    (gimli::Format::Dwarf32, true) => 8..12,
                    (gimli::Format::Dwarf64, false) => 14..22,
                    (gimli::Format::Dwarf64, true) => 16..24,
                };
                head.get_mut(at)?.fill(0);
                let header = gimli::DebugInfo::from(copy(head)).units().next().ok()??;
                (header, gimli::DebugAbbrev::from(copy(decl)))
            }
            None => (
                header,
                gimli::DebugAbbrev::from(gimli::EndianReader::new(table, endian)),
            ),
        };
        let abbrevs = header.abbreviations(&abbrev).ok()?;
        let mut cursor = header.entries(&abbrevs);
        let root = cursor.next_dfs().ok()??;
        let (mut low, mut high, mut size, mut list, mut line) = (None, None, None, None, None);
        for attr in root.attrs() {
            match (attr.name(), attr.value()) {
                (gimli::DW_AT_low_pc, V::Addr(a)) => low = Some(a),
                (gimli::DW_AT_high_pc, V::Addr(a)) => high = Some(a),
                (gimli::DW_AT_high_pc, v) => size = Some(v.udata_value()?),
                // DWARF 5 lists need the unit's DW_AT_rnglists_base: read in place.
                (gimli::DW_AT_ranges, V::RangeListsRef(r)) if header.version() < 5 => {
                    list = Some(gimli::RangeListsOffset(r.0));
                }
                (gimli::DW_AT_ranges, _) => return None,
                (gimli::DW_AT_low_pc, _) => return None,
                (gimli::DW_AT_stmt_list, V::DebugLineRef(o)) => line = Some(o.0),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Some(offset) = list {
            let ranges = gimli::RangeLists::new(
                gimli::DebugRanges::from(gimli::EndianReader::new(
                    section(sections, ".debug_ranges"),
                    endian,
                )),
                gimli::DebugRngLists::from(gimli::EndianReader::new(
                    section(sections, ".debug_rnglists"),
                    endian,
                )),
            );
            let no_addr = gimli::DebugAddr::from(gimli::EndianReader::new(
                super::SectionBytes::empty(),
                endian,
            ));
            let mut it = ranges
                .ranges(
                    offset,
                    header.encoding(),
                    low.unwrap_or(0),
                    &no_addr,
                    gimli::DebugAddrBase(0),
                )
                .ok()?;
            while let Ok(Some(r)) = it.next() {
                if r.begin < r.end {
                    out.push((r.begin, r.end));
                }
            }
        } else if let Some(begin) = low {
            if let Some(end) = size.and_then(|s| begin.checked_add(s)).or(high) {
                if begin < end {
                    out.push((begin, end));
                }
            }
        }
        if out.is_empty() {
            if let Some(offset) = line {
                let lines = section(sections, ".debug_line");
                let program = copy_unit(&lines, offset, endian)?;
                let program = gimli::DebugLine::from(copy(program))
                    .program(gimli::DebugLineOffset(0), header.address_size(), None, None)
                    .ok()?;
                out = sequences(program)?;
            }
        }
        Some(out)
    }

    fn full(&self) -> Option<&Context> {
        self.full
            .get_or_init(|| Context::from_dwarf(self.dwarf(View::Whole).ok()?).ok())
            .as_ref()
    }

    /// The unit's own context: over a one-unit view when its DIEs refer only within it, else
    /// over a sparse view holding it and the units it refers to. `None` (the whole-file
    /// context answers) when neither can be built.
    fn unit_context<'a>(&'a self, unit: &'a Unit) -> Option<&'a UnitContext> {
        unit.ctx
            .get_or_init(|| {
                let len = self.unit_len(unit)?;
                let dwarf = self.dwarf(View::Unit(unit.offset, len)).ok()?;
                let header = dwarf.units().next().ok()??;
                if self_contained(&dwarf, &header) {
                    return Some(UnitContext {
                        ctx: Context::from_dwarf(dwarf).ok()?,
                        base: unit.offset,
                        sparse: false,
                    });
                }
                let targets = referenced_offsets(&dwarf, &header)?;
                let needed = units_holding(self.spans()?, unit.offset, &targets)?;
                let info = self.info.as_ref()?;
                let abbrev_len = section(&mut self.sections.borrow_mut(), ".debug_abbrev").len();
                let view = sparse_info(info, &needed, abbrev_len, self.endian)?;
                Some(UnitContext {
                    ctx: Context::from_dwarf(self.dwarf(View::Sparse(view)).ok()?).ok()?,
                    base: 0,
                    sparse: true,
                })
            })
            .as_ref()
    }
}

/// What `.debug_info` holds in a [`gimli::Dwarf`] built by [`LazyDwarf::dwarf`].
enum View {
    /// The whole section.
    Whole,
    /// One unit (offset, length), at offset 0 of the view.
    Unit(usize, usize),
    /// A [`sparse_info`] section: some units at their own offsets.
    Sparse(SectionBytes),
}

/// More units than this in one sparse view: the whole-file context is cheaper to build once.
const MAX_SPARSE_UNITS: usize = 64;

/// The `.debug_info` offsets the unit's DIEs refer to by section offset (`DW_FORM_ref_addr`,
/// and `DW_FORM_indirect` where it turns out to be one), from one walk of its raw entries.
/// `None` when the entries cannot be read to the end.
fn referenced_offsets(
    dwarf: &gimli::Dwarf<Reader>,
    header: &gimli::UnitHeader<Reader>,
) -> Option<Vec<usize>> {
    let abbrevs = dwarf.abbreviations(header).ok()?;
    let mut entries = header.entries_raw(&abbrevs, None).ok()?;
    let mut out = Vec::new();
    // Bounded by the unit's length: every entry consumes at least one byte.
    while !entries.is_empty() {
        let Some(abbrev) = entries.read_abbreviation().ok()? else {
            continue;
        };
        let specs = abbrev.attributes();
        let refers = |s: &gimli::AttributeSpecification| {
            matches!(s.form(), gimli::DW_FORM_ref_addr | gimli::DW_FORM_indirect)
        };
        if !specs.iter().any(refers) {
            entries.skip_attributes(specs).ok()?;
            continue;
        }
        for spec in specs {
            if !refers(spec) {
                entries.skip_attributes(std::slice::from_ref(spec)).ok()?;
            } else if let gimli::AttributeValue::DebugInfoRef(o) =
                entries.read_attribute(*spec).ok()?.value()
            {
                out.push(o.0);
            }
        }
    }
    Some(out)
}

/// The spans of the unit at `offset` and of every unit holding one of `targets`, by offset;
/// `None` when a target lies in no unit or they are more than [`MAX_SPARSE_UNITS`].
fn units_holding(
    spans: &[UnitSpan],
    offset: usize,
    targets: &[usize],
) -> Option<Vec<(usize, usize)>> {
    let holding = |t: usize| {
        let i = spans.partition_point(|s| s.offset <= t).checked_sub(1)?;
        let s = &spans[i];
        (t < s.offset + s.len).then_some(i)
    };
    let mut units = vec![holding(offset)?];
    let mut last = units[0];
    for &t in targets {
        let s = &spans[last];
        if (s.offset..s.offset + s.len).contains(&t) {
            continue; // most refer into the unit they referred into before
        }
        last = holding(t)?;
        units.push(last);
    }
    units.sort_unstable();
    units.dedup();
    (units.len() <= MAX_SPARSE_UNITS).then(|| {
        units
            .iter()
            .map(|&i| (spans[i].offset, spans[i].len))
            .collect()
    })
}

/// Bytes that [`sparse_info`] writes into a gap: a DWARF 4 unit header (length, version,
/// abbreviation offset, address size) and the abbreviation code of its first entry.
const FILLER_HEADER: usize = 12;

/// A `.debug_info` of the full length in which `units` (offset, length; sorted, disjoint) are
/// copied to their own offsets, and every gap between them is one unit that gimli can step
/// over but not parse: its abbreviations start at the end of `.debug_abbrev` (`abbrev_len`)
/// and its first entry uses a code that table lacks, so addr2line drops it as it drops any
/// unit it cannot read. Offsets into the kept units,
/// `DW_FORM_ref_addr` and `.debug_aranges` among them, mean what they mean in the file; one
/// into a gap finds no unit. An anonymous mapping: gaps cost no memory. `None` when a gap
/// cannot hold such a header (or is too long for one) or the bytes cannot be had.
fn sparse_info(
    info: &InfoBytes,
    units: &[(usize, usize)],
    abbrev_len: usize,
    endian: RunTimeEndian,
) -> Option<SectionBytes> {
    use gimli::Endianity;
    let total = info.len();
    let mut map = memmap2::MmapMut::map_anon(total.max(1)).ok()?;
    let filler = |map: &mut [u8], start: usize, end: usize| -> Option<()> {
        let gap = end.checked_sub(start)?;
        if gap == 0 {
            return Some(());
        }
        if gap < FILLER_HEADER {
            return None;
        }
        let length = u32::try_from(gap - 4).ok().filter(|&l| l < 0xffff_fff0)?;
        let h = map.get_mut(start..start + FILLER_HEADER)?;
        endian.write_u32(&mut h[0..4], length);
        endian.write_u16(&mut h[4..6], 4);
        endian.write_u32(&mut h[6..10], u32::try_from(abbrev_len).unwrap_or(u32::MAX));
        h[10] = 8;
        // Code 1 in a table that has none: gimli stops at once. (Zeros would be null entries,
        // which it steps over one byte at a time to the end of the gap.)
        h[11] = 1;
        Some(())
    };
    let mut at = 0;
    for &(offset, len) in units {
        filler(&mut map, at, offset)?;
        let bytes = info.sub(offset, len)?;
        map.get_mut(offset..offset + len)?.copy_from_slice(&bytes);
        at = offset + len;
    }
    filler(&mut map, at, total)?;
    let map = map.make_read_only().ok()?;
    Some(SectionBytes::inflated(super::inflate::Inflated::Map(map)))
}

/// How many bytes of a unit [`LazyDwarf::ranges_from_copies`] copies to read its root DIE.
const ROOT_COPY: usize = 1024;

/// How many declarations [`root_abbreviation`] reads before it gives up.
const ROOT_ABBREV_SEARCH: usize = 8;

/// The declaration of abbreviation `code` in the table at `offset` of `.debug_abbrev`, copied
/// as a table of its own (the declaration, then the table's terminating 0); `None` when it is
/// not among the first [`ROOT_ABBREV_SEARCH`] or the table cannot be read.
fn root_abbreviation(abbrev: &[u8], offset: usize, code: u64) -> Option<Vec<u8>> {
    use gimli::Reader as _;
    let table = abbrev.get(offset..)?;
    let mut r = gimli::EndianSlice::new(table, gimli::LittleEndian);
    for _ in 0..ROOT_ABBREV_SEARCH {
        let start = table.len() - r.len();
        let this = r.read_uleb128().ok()?;
        if this == 0 {
            return None; // end of the table
        }
        r.read_uleb128().ok()?; // tag
        r.read_u8().ok()?; // children
        loop {
            let name = r.read_uleb128().ok()?;
            let form = r.read_uleb128().ok()?;
            if form == u64::from(gimli::DW_FORM_implicit_const.0) {
                r.read_sleb128().ok()?;
            }
            if name == 0 && form == 0 {
                break;
            }
        }
        if this == code {
            let mut decl = table[start..table.len() - r.len()].to_vec();
            decl.push(0);
            return Some(decl);
        }
    }
    None
}

/// The address ranges of a line program's sequences (empty ones left out).
fn sequences(program: gimli::IncompleteLineProgram<Reader>) -> Option<Vec<(u64, u64)>> {
    let (_, sequences) = program.sequences().ok()?;
    Some(
        sequences
            .iter()
            .filter(|s| s.start < s.end)
            .map(|s| (s.start, s.end))
            .collect(),
    )
}

/// A copy (through [`SectionBytes::reader`], not the mapping) of the length-prefixed unit at
/// `offset` in `section`, such as one line program; `None` when it does not fit there.
fn copy_unit(section: &SectionBytes, offset: usize, endian: RunTimeEndian) -> Option<Vec<u8>> {
    let mut read = section.reader();
    let mut h = [0u8; 12];
    let got = read(offset, &mut h);
    let (length, field) = initial_length(&h[..got], offset, endian).ok()?;
    let total = usize::try_from(length).ok()?.checked_add(field)?;
    if offset.checked_add(total)? > section.len() {
        return None;
    }
    let mut out = vec![0u8; total];
    (read(offset, &mut out) == total).then_some(out)
}

/// The initial length field at the start of `h` (a unit, line program or other table found
/// at `offset`): the length that follows the field, and the field's size (4, or 12 for 64-bit
/// DWARF). Errors where gimli's readers would fail.
fn initial_length(
    h: &[u8],
    offset: usize,
    endian: RunTimeEndian,
) -> Result<(u64, usize), gimli::Error> {
    use gimli::Endianity;
    let length = h
        .get(..4)
        .map(|b| endian.read_u32(b))
        .ok_or_else(|| eof(offset))?;
    match length {
        0xffff_ffff => Ok((
            h.get(4..12)
                .map(|b| endian.read_u64(b))
                .ok_or_else(|| eof(offset))?,
            12,
        )),
        l if l >= 0xffff_fff0 => Err(gimli::Error::UnknownReservedLength(l)),
        l => Ok((u64::from(l), 4)),
    }
}

/// A section of `bytes` (empty when absent), waiting for it if it is still inflating.
fn section(bytes: &mut DwarfBytes, name: &str) -> SectionBytes {
    if !bytes.sections.contains_key(name) {
        bytes.load_the_rest();
    }
    if let Some(i) = bytes.pending.iter().position(|(n, _)| *n == name) {
        bytes.join_one(i);
    }
    bytes
        .sections
        .get(name)
        .cloned()
        .unwrap_or_else(SectionBytes::empty)
}

fn eof(offset: usize) -> gimli::Error {
    gimli::Error::UnexpectedEof(gimli::ReaderOffsetId(offset as u64))
}

/// Where one unit lies in `.debug_info`, and whether it is a compilation (or skeleton) unit.
struct UnitSpan {
    offset: usize,
    len: usize,
    compile: bool,
}

/// The most bytes [`unit_span`] reads: a 64-bit unit length, the version and the unit type.
const HEADER_MAX: usize = 15;

/// The unit whose header starts `head` (up to [`HEADER_MAX`] bytes from `offset` in a
/// `.debug_info` of `section_len` bytes). Errors where gimli's unit iterator would fail.
fn unit_span(
    head: &[u8],
    offset: usize,
    section_len: usize,
    endian: RunTimeEndian,
) -> Result<UnitSpan, gimli::Error> {
    use gimli::Endianity;
    let eof = || eof(offset);
    // unit_length (4, or 12 for 64-bit DWARF), version, and for DWARF 5 the unit type.
    let h = head;
    let (length, field) = initial_length(h, offset, endian)?;
    let version = h
        .get(field..field + 2)
        .map(|b| endian.read_u16(b))
        .ok_or_else(eof)?;
    if !(2..=5).contains(&version) {
        return Err(gimli::Error::UnknownVersion(version.into()));
    }
    let compile = if version >= 5 {
        let ty = *h.get(field + 2).ok_or_else(eof)?;
        ty == gimli::DW_UT_compile.0 || ty == gimli::DW_UT_skeleton.0
    } else {
        true // DWARF 4's type units live in .debug_types
    };
    let len = usize::try_from(length)
        .ok()
        .and_then(|l| l.checked_add(field))
        .filter(|&l| l > field + 2 && offset.checked_add(l).is_some_and(|end| end <= section_len))
        .ok_or_else(eof)?;
    Ok(UnitSpan {
        offset,
        len,
        compile,
    })
}

/// Every unit header in `.debug_info`, read through [`super::Backing::reader`] (a few bytes each,
/// not through the mapping: touching one page per unit would make the kernel map 64 KiB
/// around each). Errors where gimli's unit iterator would fail.
fn scan_unit_headers(
    info: Option<&SectionBytes>,
    endian: RunTimeEndian,
) -> Result<Vec<UnitSpan>, gimli::Error> {
    let mut out = Vec::new();
    let Some(info) = info else {
        return Ok(out);
    };
    let mut read_at = info.reader();
    let mut offset = 0usize;
    while offset < info.len() {
        let mut h = [0u8; HEADER_MAX];
        let got = read_at(offset, &mut h);
        let span = unit_span(&h[..got], offset, info.len(), endian)?;
        offset += span.len;
        out.push(span);
    }
    Ok(out)
}

/// Whether the unit's DIEs can only refer within the unit: no abbreviation uses a form that
/// holds a `.debug_info` (or alternate file) offset. Unreadable abbreviations count as not.
fn self_contained(dwarf: &gimli::Dwarf<Reader>, header: &gimli::UnitHeader<Reader>) -> bool {
    let mut r = dwarf.debug_abbrev.reader().clone();
    if r.skip(header.debug_abbrev_offset().0).is_err() {
        return false;
    }
    let mut scan = || -> Result<bool, gimli::Error> {
        // Bounded by the section's length: every step consumes bytes.
        loop {
            if r.read_uleb128()? == 0 {
                return Ok(true); // end of this unit's table
            }
            let _tag = r.read_uleb128()?;
            let _children = r.read_u8()?;
            loop {
                let name = r.read_uleb128()?;
                let form = r.read_uleb128()?;
                if name == 0 && form == 0 {
                    break;
                }
                match gimli::DwForm(form as u16) {
                    gimli::DW_FORM_ref_addr
                    | gimli::DW_FORM_GNU_ref_alt
                    | gimli::DW_FORM_indirect => return Ok(false),
                    gimli::DW_FORM_implicit_const => {
                        r.read_sleb128()?;
                    }
                    _ => {}
                }
            }
        }
    };
    scan().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::{dwarf_sections, loader, SharedBytes};
    use std::collections::HashMap;
    use std::path::Path;

    /// Source frames as compared: function (raw), file, line, column.
    type Frames = Vec<(Option<String>, Option<String>, Option<u32>, Option<u32>)>;

    fn try_frames(ctx: &Context, probe: u64) -> Result<Option<Frames>, gimli::Error> {
        let mut out = Vec::new();
        let mut it = ctx.find_frames(probe).skip_all_loads()?;
        while let Some(f) = it.next()? {
            out.push((
                f.function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok().map(|s| s.into_owned())),
                f.location.as_ref().and_then(|l| l.file.map(str::to_string)),
                f.location.as_ref().and_then(|l| l.line),
                f.location.as_ref().and_then(|l| l.column),
            ));
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn frames(ctx: &Context, probe: u64) -> Frames {
        try_frames(ctx, probe).ok().flatten().unwrap_or_default()
    }

    /// The lazy index over `obj`'s DWARF, with no addresses announced.
    fn lazy_over(obj: &loader::LoadedObject) -> LazyDwarf {
        let file: SharedBytes = obj.data.clone();
        LazyDwarf::new(dwarf_sections(&obj.info, &file), &[]).unwrap()
    }

    /// The inflated-on-demand `.debug_info` of `lazy` (libc6-dbg's is compressed).
    fn progressive_info(lazy: &LazyDwarf) -> std::sync::Arc<super::super::inflate::Progressive> {
        match lazy.info.clone() {
            Some(InfoBytes::Progressive(info)) => info,
            _ => panic!("libc6-dbg's .debug_info is compressed: not inflated as asked"),
        }
    }

    /// What the lazy index answers, as [`ModuleSymbols::lookup`](super::super::ModuleSymbols)
    /// asks it.
    fn lazy_frames(lazy: &LazyDwarf, probe: u64) -> Frames {
        lazy.answer(probe, |c| try_frames(c, probe))
            .unwrap_or_default()
    }

    /// For addresses inside (and just past the start of) a spread of the object's function
    /// symbols, the lazy index gives exactly the frames of addr2line's whole-file context.
    /// Returns how many addresses had frames, so a test can insist it looked at real DWARF,
    /// and whether the lazy index had to build its own whole-file context to answer.
    fn agrees_with_whole_file_context(path: &Path) -> (usize, bool) {
        let obj = loader::load(path).unwrap();
        let lazy = lazy_over(&obj);
        let whole = lazy_over(&obj);
        let mut funcs: Vec<_> = obj.info.symbols.iter().filter(|s| s.size > 1).collect();
        funcs.sort_by_key(|s| s.addr);
        funcs.dedup_by_key(|s| s.addr);
        let mut with_frames = 0;
        for s in funcs {
            for probe in [s.addr, s.addr + 1, s.addr + s.size / 2, s.addr + s.size - 1] {
                let got = lazy_frames(&lazy, probe);
                let want = frames(whole.full().unwrap(), probe);
                assert_eq!(got, want, "{} at {probe:#x} ({})", path.display(), s.name);
                with_frames += usize::from(!want.is_empty());
            }
        }
        (with_frames, lazy.full.get().is_some_and(Option::is_some))
    }

    /// libc6-dbg's debug file for this machine's libc (compressed sections, every unit listed
    /// in `.debug_aranges`), or `None` with a printed reason where it is not installed.
    fn libc_debug_file() -> Option<std::path::PathBuf> {
        let Ok(libc) = loader::load(Path::new("/lib/x86_64-linux-gnu/libc.so.6")) else {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty()),
                "no /lib/x86_64-linux-gnu/libc.so.6 to test against"
            );
            eprintln!("skipped: no /lib/x86_64-linux-gnu/libc.so.6");
            return None;
        };
        let id = crate::modules::hex(libc.info.build_id.as_deref().unwrap_or_default());
        let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        if !Path::new(&debug).exists() {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty()),
                "{debug} missing: `make deps` installs libc6-dbg"
            );
            eprintln!("skipped: {debug} missing (libc6-dbg is not installed)");
            return None;
        }
        Some(debug.into())
    }

    #[test]
    fn lazy_units_match_whole_file_context_on_libc_debug_file() {
        let Some(debug) = libc_debug_file() else {
            return;
        };
        assert!(agrees_with_whole_file_context(&debug).0 > 5000);
        // Without .debug_aranges every unit is found by its own ranges.
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("libc-no-aranges.debug");
        let status = std::process::Command::new("objcopy")
            .arg("--remove-section=.debug_aranges")
            .args([&debug, &bare])
            .status()
            .unwrap();
        assert!(status.success());
        let (answered, full) = agrees_with_whole_file_context(&bare);
        assert!(answered > 5000);
        assert!(
            !full,
            "the whole-file context answered for units the table leaves out"
        );
    }

    #[test]
    fn a_compressed_debug_info_is_inflated_only_as_far_as_the_units_asked() {
        let Some(debug) = libc_debug_file() else {
            return;
        };
        let obj = loader::load(&debug).unwrap();
        let lazy = lazy_over(&obj);
        let info = progressive_info(&lazy);
        let inflated = || AsRef::<[u8]>::as_ref(&*info).len();
        // An address in the first unit `.debug_aranges` gives an address range.
        let probe = lazy.ranges.iter().min_by_key(|r| r.unit).unwrap().begin;
        let got = lazy_frames(&lazy, probe);
        assert!(!got.is_empty());
        assert!(
            inflated() < info.len() / 4,
            "{} of {} bytes inflated for one unit",
            inflated(),
            info.len()
        );
        assert_eq!(got, frames(lazy.full().unwrap(), probe));
        assert_eq!(inflated(), info.len());
    }

    #[test]
    fn prefetch_inflates_through_the_last_unit_the_probes_are_in_and_no_further() {
        let Some(debug) = libc_debug_file() else {
            return;
        };
        let obj = loader::load(&debug).unwrap();
        let lazy = lazy_over(&obj);
        let info = progressive_info(&lazy);
        let inflated = || AsRef::<[u8]>::as_ref(&*info).len();
        // Two addresses in units about a quarter and a third of the way in, the later first.
        let at = |frac: usize| {
            let unit = lazy.listed.len() * frac / 12;
            let r = lazy.ranges.iter().find(|r| r.unit == unit).unwrap();
            (r.begin, lazy.listed[unit].offset)
        };
        let ((early, _), (late, late_offset)) = (at(3), at(4));
        // Only the first unit's header (one 64 KiB step) is inflated before anything is asked.
        assert!(
            inflated() <= 64 << 10,
            "{} bytes inflated unasked",
            inflated()
        );
        lazy.prefetch(&[late, early]).unwrap().join().unwrap();
        let late_end = late_offset
            + lazy
                .unit_len(&lazy.listed[lazy.listed.len() * 4 / 12])
                .unwrap();
        assert!(
            (late_end..late_end + (64 << 10)).contains(&inflated()),
            "inflated {} bytes; the last unit asked about ends at {late_end}",
            inflated()
        );
        // The lookups find their bytes there and answer as the whole-file context does.
        let before = inflated();
        let got = [lazy_frames(&lazy, early), lazy_frames(&lazy, late)];
        assert!(got.iter().all(|f| !f.is_empty()));
        assert_eq!(
            inflated(),
            before,
            "a lookup inflated past what was fetched ahead"
        );
        let full = lazy.full().unwrap();
        assert_eq!(got, [frames(full, early), frames(full, late)]);
        // An address no set covers sends the lookups to the header scan, which reads it all.
        let lazy = lazy_over(&obj);
        let info = progressive_info(&lazy);
        lazy.prefetch(&[u64::MAX - 1]).unwrap().join().unwrap();
        assert_eq!(AsRef::<[u8]>::as_ref(&*info).len(), info.len());
        // Nothing asked, nothing fetched.
        assert!(lazy.prefetch(&[]).is_none());
    }

    #[test]
    fn a_cut_aranges_table_still_answers_for_the_sets_before_the_cut() {
        // addr2line's whole-file context fails on such a table (no DWARF at all); the lazy
        // index answers, exactly as the intact file does, for every address the readable
        // sets place, and nothing for the rest.
        let Some(debug) = libc_debug_file() else {
            return;
        };
        let obj = loader::load(&debug).unwrap();
        let file: SharedBytes = obj.data.clone();
        let whole = dwarf_sections(&obj.info, &file);
        let mut cut = dwarf_sections(&obj.info, &file);
        let a = super::section(&mut cut, ".debug_aranges");
        cut.sections
            .insert(".debug_aranges", a.sub(0, a.len() / 2 + 5));
        let intact = LazyDwarf::new(whole, &[]).unwrap();
        let cut = LazyDwarf::new(cut, &[]).unwrap();
        assert!(
            cut.full().is_none(),
            "addr2line now reads a cut table: update this test"
        );
        let (mut same, mut none) = (0, 0);
        for s in obj.info.symbols.iter().filter(|s| s.size > 1) {
            let probe = s.addr + s.size / 2;
            let want = frames(intact.full().unwrap(), probe);
            let got = lazy_frames(&cut, probe);
            if got.is_empty() {
                none += 1;
            } else {
                assert_eq!(got, want, "{probe:#x} ({})", s.name);
                same += 1;
            }
        }
        assert!(same > 1000 && none > 100, "answered {same}, not {none}");
    }

    #[test]
    fn lazy_units_match_whole_file_context_on_rust_binaries() {
        // This test binary: rustc's units (line tables only), most without a .debug_aranges
        // set, each asked by the ranges its root DIE gives.
        let exe = std::env::current_exe().unwrap();
        let (answered, full) = agrees_with_whole_file_context(&exe);
        assert!(answered > 5000);
        assert!(
            !full,
            "the whole-file context answered for units the table leaves out"
        );
        // Fat LTO: units that refer into each other (DW_FORM_ref_addr), answered over sparse
        // views holding each unit and the units it refers to, never the whole-file context.
        let dir = tempfile::tempdir().unwrap();
        let exe = fat_lto_exe(dir.path());
        let obj = loader::load(&exe).unwrap();
        let lazy = lazy_over(&obj);
        let dwarf = lazy.dwarf(View::Whole).unwrap();
        let mut headers = dwarf.units();
        let mut referring = 0;
        while let Some(h) = headers.next().unwrap() {
            referring += usize::from(!self_contained(&dwarf, &h));
        }
        assert!(
            referring > 0,
            "no unit with DW_FORM_ref_addr: the test lost its point"
        );
        let (answered, full) = agrees_with_whole_file_context(&exe);
        assert!(answered > 1000);
        assert!(!full, "a sparse view fell back to the whole-file context");
    }

    /// A fat-LTO Rust program built in `dir`: its units refer into each other.
    fn fat_lto_exe(dir: &Path) -> std::path::PathBuf {
        let src = dir.join("lto.rs");
        std::fs::write(
            &src,
            "#[inline(never)]\n\
             fn work(n: u64) -> std::collections::BTreeMap<u64, String> {\n\
                 (0..n).map(|i| (i, format!(\"{i}\"))).collect()\n\
             }\n\
             fn main() {\n\
                 println!(\"{}\", work(std::env::args().count() as u64).len());\n\
             }\n",
        )
        .unwrap();
        let exe = dir.join("lto");
        let status = std::process::Command::new("rustc")
            .args(["-g", "-C", "opt-level=2", "-C", "lto=fat", "-o"])
            .args([&exe, &src])
            .status()
            .unwrap();
        assert!(status.success());
        exe
    }

    #[test]
    fn a_sparse_view_lacking_a_referred_unit_hands_the_lookup_to_the_whole_file_context() {
        let dir = tempfile::tempdir().unwrap();
        let exe = fat_lto_exe(dir.path());
        let obj = loader::load(&exe).unwrap();
        let lazy = lazy_over(&obj);
        let whole = lazy_over(&obj);
        // Every referring unit gets a view of itself alone: its references find no unit.
        let abbrev_len = super::section(&mut lazy.sections.borrow_mut(), ".debug_abbrev").len();
        let mut cut = 0;
        for u in &lazy.listed {
            let len = lazy.unit_len(u).unwrap();
            let dwarf = lazy.dwarf(View::Unit(u.offset, len)).unwrap();
            let header = dwarf.units().next().unwrap().unwrap();
            if self_contained(&dwarf, &header) {
                continue;
            }
            let info = lazy.info.as_ref().unwrap();
            let view = sparse_info(info, &[(u.offset, len)], abbrev_len, lazy.endian).unwrap();
            let ctx = Context::from_dwarf(lazy.dwarf(View::Sparse(view)).unwrap()).unwrap();
            let unit_ctx = UnitContext {
                ctx,
                base: 0,
                sparse: true,
            };
            assert!(u.ctx.set(Some(unit_ctx)).is_ok());
            cut += 1;
        }
        assert!(
            cut > 0,
            "no unit with DW_FORM_ref_addr: the test lost its point"
        );
        let mut failed = 0;
        for s in obj.info.symbols.iter().filter(|s| s.size > 1) {
            let probe = s.addr + s.size / 2;
            let alone = lazy
                .candidates(probe)
                .flatten()
                .find(|c| c.sparse)
                .map(|c| try_frames(&c.ctx, probe));
            failed += usize::from(matches!(alone, Some(Err(_))));
            let want = frames(whole.full().unwrap(), probe);
            assert_eq!(lazy_frames(&lazy, probe), want, "{probe:#x} ({})", s.name);
        }
        assert!(failed > 0, "no lookup needed a unit the views left out");
        assert!(lazy.full.get().is_some_and(Option::is_some));
    }

    fn section(bytes: Vec<u8>) -> SectionBytes {
        SectionBytes::from_vec(bytes)
    }

    #[test]
    fn unit_headers_are_scanned_as_gimli_reads_them() {
        let exe = std::env::current_exe().unwrap();
        let mut files = vec![exe];
        files.extend(libc_debug_file());
        for path in files {
            let obj = loader::load(&path).unwrap();
            let lazy = lazy_over(&obj);
            let dwarf = lazy.dwarf(View::Whole).unwrap();
            let mut want = Vec::new();
            let mut headers = dwarf.units();
            while let Some(h) = headers.next().unwrap() {
                let compile = matches!(
                    h.type_(),
                    gimli::UnitType::Compilation | gimli::UnitType::Skeleton(_)
                );
                want.push((h.offset().0, h.length_including_self(), compile));
            }
            let info = lazy.info.as_ref().and_then(|i| i.whole());
            let got: Vec<_> = scan_unit_headers(info.as_ref(), lazy.endian)
                .unwrap()
                .into_iter()
                .map(|u| (u.offset, u.len, u.compile))
                .collect();
            assert!(want.len() > 100, "{}", path.display());
            assert_eq!(got, want, "{}", path.display());
        }
    }

    #[test]
    fn a_sparse_view_holds_the_kept_units_at_their_offsets_and_no_other() {
        let exe = std::env::current_exe().unwrap();
        let obj = loader::load(&exe).unwrap();
        let lazy = lazy_over(&obj);
        let spans = lazy.spans().unwrap();
        assert!(spans.len() > 100);
        // Every third unit, the first and the last among them, so the view starts and ends
        // with a kept unit as well as with gaps of one and of many units.
        let kept: Vec<(usize, usize)> = spans
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0 || *i == spans.len() - 1)
            .map(|(_, s)| (s.offset, s.len))
            .collect();
        let abbrev_len = super::section(&mut lazy.sections.borrow_mut(), ".debug_abbrev").len();
        let info = lazy.info.as_ref().unwrap();
        let view = sparse_info(info, &kept, abbrev_len, lazy.endian).unwrap();
        assert_eq!(view.len(), info.len());
        let dwarf = lazy.dwarf(View::Sparse(view.clone())).unwrap();
        let whole = info.whole().unwrap();
        let (mut parsed, mut headers) = (Vec::new(), 0);
        let mut units = dwarf.units();
        while let Some(h) = units.next().unwrap() {
            headers += 1;
            let offset = h.debug_info_offset().unwrap().0;
            if dwarf.unit(h).is_ok() {
                parsed.push(offset);
            }
        }
        let want: Vec<usize> = kept.iter().map(|k| k.0).collect();
        assert_eq!(parsed, want, "only the kept units parse");
        assert!(headers > kept.len() && headers <= 2 * kept.len() + 1);
        for &(o, l) in &kept {
            assert_eq!(&view[o..o + l], &whole[o..o + l]);
        }
        // A gap shorter than a filler's header cannot be made.
        let first = (spans[0].offset, spans[0].len);
        let short_gap = [first, (first.0 + first.1 + FILLER_HEADER - 1, 16)];
        assert!(sparse_info(info, &short_gap, abbrev_len, lazy.endian).is_none());
        let gap = [first, (first.0 + first.1 + FILLER_HEADER, 16)];
        assert!(sparse_info(info, &gap, abbrev_len, lazy.endian).is_some());
    }

    #[test]
    fn the_root_abbreviation_is_copied_out_as_a_table_of_its_own() {
        // Code 1: DW_TAG_compile_unit, children, DW_AT_name strp, DW_AT_language implicit_const
        // 28; code 2: DW_TAG_subprogram, no children, DW_AT_low_pc addr; end of table.
        let one = vec![1, 0x11, 1, 0x03, 0x0e, 0x13, 0x21, 28, 0, 0];
        let two = vec![2, 0x2e, 0, 0x11, 0x01, 0, 0];
        let mut table = vec![0xaa, 0xbb]; // another unit's table ends before this one
        table.extend(&one);
        table.extend(&two);
        table.push(0);
        let with_end = |mut d: Vec<u8>| {
            d.push(0);
            d
        };
        assert_eq!(root_abbreviation(&table, 2, 1), Some(with_end(one.clone())));
        assert_eq!(root_abbreviation(&table, 2, 2), Some(with_end(two.clone())));
        let parsed = gimli::DebugAbbrev::new(&with_end(one)[..], gimli::LittleEndian)
            .abbreviations(gimli::DebugAbbrevOffset(0))
            .unwrap();
        assert_eq!(parsed.get(1).unwrap().attributes().len(), 2);
        // Not in the table, a cut table, an offset past the end.
        assert_eq!(root_abbreviation(&table, 2, 3), None);
        assert_eq!(root_abbreviation(&table[..8], 2, 2), None);
        assert_eq!(root_abbreviation(&table, table.len() + 1, 1), None);
    }

    #[test]
    fn unit_header_scan_handles_64_bit_dwarf_5_and_rejects_bad_lengths() {
        let le = RunTimeEndian::Little;
        let scan = |b: Vec<u8>| {
            scan_unit_headers(Some(&section(b)), le).map(|v| {
                v.into_iter()
                    .map(|u| (u.offset, u.len, u.compile))
                    .collect::<Vec<_>>()
            })
        };
        // 32-bit DWARF 5 compile unit (8 bytes after the length), then a 64-bit partial one.
        let mut b = vec![8, 0, 0, 0, 5, 0, 1, 8, 0, 0, 0, 0];
        b.extend([0xff, 0xff, 0xff, 0xff, 12, 0, 0, 0, 0, 0, 0, 0]);
        b.extend([5, 0, 3, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(scan(b).unwrap(), vec![(0, 12, true), (12, 24, false)]);
        // A length running past the end, a reserved length, an unknown version.
        assert!(scan(vec![100, 0, 0, 0, 4, 0, 0, 0, 0, 0, 8]).is_err());
        assert!(scan(vec![0xf0, 0xff, 0xff, 0xff, 4, 0, 0, 0, 0, 0, 8]).is_err());
        assert!(scan(vec![7, 0, 0, 0, 9, 0, 0, 0, 0, 0, 8]).is_err());
        // Cut inside the length field.
        assert!(scan(vec![7, 0]).is_err());
        assert_eq!(scan(Vec::new()).unwrap(), vec![]);
    }

    #[test]
    fn abbreviations_with_section_offsets_are_not_self_contained() {
        fn table(forms: &[u16]) -> Vec<u8> {
            // One abbreviation: code 1, DW_TAG_subprogram, no children, one attribute per form
            // (DW_AT_name), then the ends of the attribute list and of the table.
            let mut t = vec![1, 0x2e, 0];
            for &form in forms {
                t.push(0x03);
                let mut f = form;
                loop {
                    let byte = (f & 0x7f) as u8;
                    f >>= 7;
                    if f == 0 {
                        t.push(byte);
                        break;
                    }
                    t.push(byte | 0x80);
                }
                if gimli::DwForm(form) == gimli::DW_FORM_implicit_const {
                    t.push(0x7f); // its value, SLEB128 -1
                }
            }
            t.extend([0, 0, 0]);
            t
        }
        let check = |forms: &[u16]| -> bool {
            // A minimal DWARF 4 compile unit whose abbreviations start at offset 0.
            let info: Vec<u8> = vec![7, 0, 0, 0, 4, 0, 0, 0, 0, 0, 8];
            let lazy = LazyDwarf::new(
                DwarfBytes {
                    sections: HashMap::from([(".debug_abbrev", section(table(forms)))]),
                    pending: Vec::new(),
                    unloaded: Vec::new(),
                    file: std::sync::Arc::new(Vec::new()),
                    info: Some(InfoBytes::Whole(section(info))),
                    endian: RunTimeEndian::Little,
                },
                &[],
            )
            .unwrap();
            let dwarf = lazy.dwarf(View::Whole).unwrap();
            let header = dwarf.units().next().unwrap().unwrap();
            self_contained(&dwarf, &header)
        };
        assert!(check(&[gimli::DW_FORM_strp.0, gimli::DW_FORM_ref4.0]));
        assert!(!check(&[gimli::DW_FORM_strp.0, gimli::DW_FORM_ref_addr.0]));
        assert!(!check(&[gimli::DW_FORM_GNU_ref_alt.0]));
        assert!(!check(&[gimli::DW_FORM_indirect.0]));
        assert!(check(&[gimli::DW_FORM_implicit_const.0]));
    }
}
