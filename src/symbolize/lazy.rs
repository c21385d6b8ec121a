//! A DWARF index that builds addr2line's state only for the compilation units that looked-up
//! addresses fall in.
//!
//! `addr2line::Context::from_dwarf` parses every unit's abbreviations and line-program header
//! up front: for libc6-dbg's 4,126 units that is most of the time and allocations of a `bt`
//! that needs a handful of them. Here `.debug_aranges` maps an address to its unit, and that
//! unit alone is handed to addr2line as a one-unit view of `.debug_info` (every other section
//! whole, so offsets into them stay valid). Only the header of a unit asked about is read, so a
//! compressed `.debug_info` is inflated only as far as the last unit asked about
//! ([`super::inflate::Progressive`]). Compilation units the table leaves out are found by a scan
//! of every unit header, made (and the whole section inflated) only when an address is in no
//! set; they are asked by the ranges their root DIE or line program gives (up to 16 of them;
//! more, as in rustc's line-tables-only builds, go to the whole-file context).
//! The whole-file context, built on first need, also answers where a view would be wrong:
//! - the unit's abbreviations use a form that refers by `.debug_info` offset
//!   (`DW_FORM_ref_addr`, dwz's `DW_FORM_GNU_ref_alt`, or `DW_FORM_indirect`, which may be
//!   either), which a one-unit view cannot resolve;
//! - a set names an offset where no unit starts, or `.debug_aranges` cannot be read to its end
//!   (addr2line's whole-file context then fails too, so the units the readable sets place are
//!   all that answers; before, nothing did).
//!
//! Pure code over sections already in memory; the one exception is the unit-header scan,
//! which copies a few bytes per unit through [`super::Backing::reader`] (the loader backs a
//! mapped file with `pread`, so the scan does not fault the mapping in).

use std::cell::{OnceCell, RefCell};

use gimli::{Reader as _, RunTimeEndian, Section as _, SectionId};

use super::{DwarfBytes, InfoBytes, Reader, SectionBytes};

type Context = addr2line::Context<Reader>;

/// More compilation units than this without a `.debug_aranges` set (a toolchain that writes
/// none) are searched through the whole-file context, which indexes them all at once.
const MAX_UNCOVERED: usize = 16;

/// One compilation unit: where it starts in `.debug_info` and, each read when first needed,
/// its length and its context (`None` inside when it cannot be used on its own).
struct Unit {
    offset: usize,
    len: OnceCell<Option<usize>>,
    ctx: OnceCell<Option<Context>>,
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
    max_uncovered: usize,
    /// Compilation units without a `.debug_aranges` set, asked (each on its own) about an
    /// address no set covers. Found by the header scan on first need; `None` when there are
    /// too many for that, or the table or the headers could not be read, and the whole-file
    /// context is asked instead.
    uncovered: OnceCell<Option<Vec<Unit>>>,
    full: OnceCell<Option<Context>>,
}

impl LazyDwarf {
    /// Index the sections. An error when `.debug_info`'s first unit header cannot be read, as
    /// addr2line would fail on it too.
    pub(super) fn new(bytes: DwarfBytes) -> Result<LazyDwarf, gimli::Error> {
        Self::with_uncovered_limit(bytes, MAX_UNCOVERED)
    }

    /// [`LazyDwarf::new`], asking at most `max_uncovered` units without a `.debug_aranges` set
    /// one by one before the whole-file context takes over.
    fn with_uncovered_limit(
        bytes: DwarfBytes,
        max_uncovered: usize,
    ) -> Result<LazyDwarf, gimli::Error> {
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
        Ok(LazyDwarf {
            sections: RefCell::new(sections),
            info,
            endian,
            listed: named.into_iter().map(|o| Unit::new(o, None)).collect(),
            ranges,
            aranges_ok,
            max_uncovered,
            uncovered: OnceCell::new(),
            full: OnceCell::new(),
        })
    }

    /// The sections as gimli wants them; with `unit` (offset, length), a view in which
    /// `.debug_info` holds that unit alone and `.debug_aranges` (whose offsets would point
    /// outside it) and `.debug_types` are empty. An error when `.debug_info` does not hold
    /// those bytes (or could not be inflated as far).
    fn dwarf(&self, unit: Option<(usize, usize)>) -> Result<gimli::Dwarf<Reader>, gimli::Error> {
        let info = match (&self.info, unit) {
            (None, _) => SectionBytes::empty(),
            (Some(i), Some((offset, len))) => i.sub(offset, len).ok_or_else(|| eof(offset))?,
            (Some(i), None) => i.whole().ok_or_else(|| eof(0))?,
        };
        gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
            let bytes = match (id, unit) {
                (SectionId::DebugInfo, _) => info.clone(),
                (SectionId::DebugAranges | SectionId::DebugTypes, Some(_)) => SectionBytes::empty(),
                _ => section(&mut self.sections.borrow_mut(), id.name()),
            };
            Ok(gimli::EndianReader::new(bytes, self.endian))
        })
    }

    /// The contexts to ask about `probe`, in order: the units `.debug_aranges` places it in,
    /// then the units the table does not cover (or the whole-file context when they are too
    /// many). The whole-file context also stands in, once, for a unit that cannot be used on
    /// its own. Each is built only when the iterator reaches it.
    pub(super) fn contexts(&self, probe: u64) -> impl Iterator<Item = &Context> {
        self.contexts_with_base(probe).map(|(_, c)| c)
    }

    /// The unit `probe` lies in and a key unique to it within this object (its offset in
    /// `.debug_info`), as the first context that knows the address answers.
    pub(super) fn unit_at(&self, probe: u64) -> Option<(usize, gimli::UnitRef<'_, Reader>)> {
        self.contexts_with_base(probe).find_map(|(base, c)| {
            let unit = c.find_dwarf_and_unit(probe).skip_all_loads()?;
            let offset = unit.header.offset().to_debug_info_offset(&unit.header)?;
            Some((base + offset.0, unit))
        })
    }

    /// [`LazyDwarf::contexts`], each with the `.debug_info` offset its view starts at.
    fn contexts_with_base(&self, probe: u64) -> impl Iterator<Item = (usize, &Context)> {
        let start = self.ranges.partition_point(|r| r.end <= probe);
        let listed = self.ranges[start..]
            .iter()
            .take_while(move |r| r.min_begin <= probe)
            .filter(move |r| r.begin <= probe)
            .map(|r| self.listed.get(r.unit));
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
        let mut full_given = false;
        listed.chain(rest).filter_map(move |u| {
            match u.and_then(|u| Some((u.offset, self.unit_context(u)?))) {
                Some(c) => Some(c),
                None if !full_given => {
                    full_given = true;
                    self.full().map(|c| (0, c))
                }
                None => None,
            }
        })
    }

    /// The compilation units without a `.debug_aranges` set, when few enough to ask one by one
    /// (see [`LazyDwarf::uncovered`]). The first call reads every unit header.
    fn uncovered(&self) -> Option<&[Unit]> {
        self.uncovered
            .get_or_init(|| {
                if !self.aranges_ok {
                    return None;
                }
                let info = self.info.as_ref()?.whole()?;
                let spans = scan_unit_headers(Some(&info), self.endian).ok()?;
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
                (units.len() <= self.max_uncovered).then_some(units)
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
            let dwarf = self.dwarf(Some((unit.offset, self.unit_len(unit)?))).ok()?;
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
                    let (_, sequences) = program.sequences().ok()?;
                    out.extend(
                        sequences
                            .iter()
                            .filter(|s| s.start < s.end)
                            .map(|s| (s.start, s.end)),
                    );
                }
            }
            Some(out)
        });
        match ranges {
            Some(rs) => rs.iter().any(|&(b, e)| b <= probe && probe < e),
            None => true,
        }
    }

    fn full(&self) -> Option<&Context> {
        self.full
            .get_or_init(|| Context::from_dwarf(self.dwarf(None).ok()?).ok())
            .as_ref()
    }

    fn unit_context<'a>(&'a self, unit: &'a Unit) -> Option<&'a Context> {
        unit.ctx
            .get_or_init(|| {
                let dwarf = self.dwarf(Some((unit.offset, self.unit_len(unit)?))).ok()?;
                let header = dwarf.units().next().ok()??;
                if !self_contained(&dwarf, &header) {
                    return None;
                }
                Context::from_dwarf(dwarf).ok()
            })
            .as_ref()
    }
}

/// A section of `bytes` (empty when absent), waiting for it if it is still inflating.
fn section(bytes: &mut DwarfBytes, name: &str) -> SectionBytes {
    if !bytes.sections.contains_key(name) && !bytes.pending.is_empty() {
        bytes.join();
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
    let length = h.get(..4).map(|b| endian.read_u32(b)).ok_or_else(eof)?;
    let (length, field) = match length {
        0xffff_ffff => (
            h.get(4..12).map(|b| endian.read_u64(b)).ok_or_else(eof)?,
            12,
        ),
        l if l >= 0xffff_fff0 => return Err(gimli::Error::UnknownReservedLength(l)),
        l => (u64::from(l), 4),
    };
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

    fn frames(ctx: &Context, probe: u64) -> Frames {
        let mut out = Vec::new();
        if let Ok(mut it) = ctx.find_frames(probe).skip_all_loads() {
            while let Ok(Some(f)) = it.next() {
                out.push((
                    f.function
                        .as_ref()
                        .and_then(|n| n.raw_name().ok().map(|s| s.into_owned())),
                    f.location.as_ref().and_then(|l| l.file.map(str::to_string)),
                    f.location.as_ref().and_then(|l| l.line),
                    f.location.as_ref().and_then(|l| l.column),
                ));
            }
        }
        out
    }

    /// For addresses inside (and just past the start of) a spread of the object's function
    /// symbols, the lazy index gives exactly the frames of addr2line's whole-file context.
    /// Returns how many addresses had frames, so a test can insist it looked at real DWARF.
    fn agrees_with_whole_file_context(path: &Path, max_uncovered: usize) -> usize {
        let obj = loader::load(path).unwrap();
        let file: SharedBytes = obj.data.clone();
        let lazy = LazyDwarf::with_uncovered_limit(dwarf_sections(&obj.info, &file), max_uncovered)
            .unwrap();
        let mut funcs: Vec<_> = obj.info.symbols.iter().filter(|s| s.size > 1).collect();
        funcs.sort_by_key(|s| s.addr);
        funcs.dedup_by_key(|s| s.addr);
        let mut with_frames = 0;
        for s in funcs {
            for probe in [s.addr, s.addr + 1, s.addr + s.size / 2, s.addr + s.size - 1] {
                let got = lazy
                    .contexts(probe)
                    .map(|c| frames(c, probe))
                    .find(|f| !f.is_empty())
                    .unwrap_or_default();
                let want = frames(lazy.full().unwrap(), probe);
                assert_eq!(got, want, "{} at {probe:#x} ({})", path.display(), s.name);
                with_frames += usize::from(!want.is_empty());
            }
        }
        with_frames
    }

    /// libc6-dbg's debug file for this machine's libc (compressed sections, every unit listed
    /// in `.debug_aranges`), or `None` with a printed reason where it is not installed.
    fn libc_debug_file() -> Option<std::path::PathBuf> {
        let Ok(libc) = loader::load(Path::new("/lib/x86_64-linux-gnu/libc.so.6")) else {
            eprintln!("skipped: no /lib/x86_64-linux-gnu/libc.so.6");
            return None;
        };
        let id = crate::modules::hex(libc.info.build_id.as_deref().unwrap_or_default());
        let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        if !Path::new(&debug).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
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
        assert!(agrees_with_whole_file_context(&debug, MAX_UNCOVERED) > 5000);
        // Without .debug_aranges every unit is found by its own ranges.
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("libc-no-aranges.debug");
        let status = std::process::Command::new("objcopy")
            .arg("--remove-section=.debug_aranges")
            .args([&debug, &bare])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(agrees_with_whole_file_context(&bare, usize::MAX) > 5000);
    }

    #[test]
    fn a_compressed_debug_info_is_inflated_only_as_far_as_the_units_asked() {
        let Some(debug) = libc_debug_file() else {
            return;
        };
        let obj = loader::load(&debug).unwrap();
        let file: SharedBytes = obj.data.clone();
        let lazy = LazyDwarf::new(dwarf_sections(&obj.info, &file)).unwrap();
        let Some(InfoBytes::Progressive(info)) = lazy.info.clone() else {
            panic!("libc6-dbg's .debug_info is compressed: not inflated as asked");
        };
        let inflated = || AsRef::<[u8]>::as_ref(&*info).len();
        // An address in the first unit `.debug_aranges` gives an address range.
        let probe = lazy.ranges.iter().min_by_key(|r| r.unit).unwrap().begin;
        let got = lazy
            .contexts(probe)
            .map(|c| frames(c, probe))
            .find(|f| !f.is_empty())
            .unwrap();
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
        let intact = LazyDwarf::new(whole).unwrap();
        let cut = LazyDwarf::new(cut).unwrap();
        assert!(
            cut.full().is_none(),
            "addr2line now reads a cut table: update this test"
        );
        let (mut same, mut none) = (0, 0);
        for s in obj.info.symbols.iter().filter(|s| s.size > 1) {
            let probe = s.addr + s.size / 2;
            let want = frames(intact.full().unwrap(), probe);
            let got = cut
                .contexts(probe)
                .map(|c| frames(c, probe))
                .find(|f| !f.is_empty())
                .unwrap_or_default();
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
        // set, more than MAX_UNCOVERED, so the whole-file context answers for them.
        let exe = std::env::current_exe().unwrap();
        assert!(agrees_with_whole_file_context(&exe, MAX_UNCOVERED) > 5000);
        // Fat LTO: units that refer into each other (DW_FORM_ref_addr), which only the
        // whole-file context can resolve.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("lto.rs");
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
        let exe = dir.path().join("lto");
        let status = std::process::Command::new("rustc")
            .args(["-g", "-C", "opt-level=2", "-C", "lto=fat", "-o"])
            .args([&exe, &src])
            .status()
            .unwrap();
        assert!(status.success());
        let obj = loader::load(&exe).unwrap();
        let file: SharedBytes = obj.data.clone();
        let lazy = LazyDwarf::new(dwarf_sections(&obj.info, &file)).unwrap();
        let dwarf = lazy.dwarf(None).unwrap();
        let mut headers = dwarf.units();
        let mut referring = 0;
        while let Some(h) = headers.next().unwrap() {
            referring += usize::from(!self_contained(&dwarf, &h));
        }
        assert!(
            referring > 0,
            "no unit with DW_FORM_ref_addr: the test lost its point"
        );
        assert!(agrees_with_whole_file_context(&exe, MAX_UNCOVERED) > 1000);
    }

    fn section(bytes: Vec<u8>) -> SectionBytes {
        SectionBytes {
            len: bytes.len(),
            bytes: std::sync::Arc::new(bytes),
            start: 0,
        }
    }

    #[test]
    fn unit_headers_are_scanned_as_gimli_reads_them() {
        let exe = std::env::current_exe().unwrap();
        let mut files = vec![exe];
        files.extend(libc_debug_file());
        for path in files {
            let obj = loader::load(&path).unwrap();
            let file: SharedBytes = obj.data.clone();
            let lazy = LazyDwarf::new(dwarf_sections(&obj.info, &file)).unwrap();
            let dwarf = lazy.dwarf(None).unwrap();
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
            let lazy = LazyDwarf::new(DwarfBytes {
                sections: HashMap::from([(".debug_abbrev", section(table(forms)))]),
                pending: Vec::new(),
                info: Some(InfoBytes::Whole(section(info))),
                endian: RunTimeEndian::Little,
            })
            .unwrap();
            let dwarf = lazy.dwarf(None).unwrap();
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
