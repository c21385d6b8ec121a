//! The types of variables, read from their DIEs on first use: what a value's bytes mean
//! ([`Type`]) and the name gdb's `whatis` gives it (`struct node *`, `const char *`,
//! `int (*)(int)`, `Foo * const`). Every walk over type DIEs is bounded: a damaged or cyclic
//! type chain ends in [`Kind::Unknown`], never in a loop.

use std::collections::HashMap;
use std::sync::Arc;

use gimli::{AttributeValue, DwAte};

use super::super::Reader;

pub(super) type Off = gimli::UnitOffset<usize>;
pub(super) type UnitRef<'a> = gimli::UnitRef<'a, Reader>;

/// How deep a chain of type DIEs is followed (pointers to pointers, typedefs of qualifiers).
const MAX_TYPE_DEPTH: usize = 24;

/// The source language, for names and formats that differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    C,
    Cxx,
    Rust,
}

impl Lang {
    pub(super) fn of(lang: Option<gimli::DwLang>) -> Lang {
        match lang {
            Some(gimli::DW_LANG_Rust) => Lang::Rust,
            Some(
                gimli::DW_LANG_C_plus_plus
                | gimli::DW_LANG_C_plus_plus_03
                | gimli::DW_LANG_C_plus_plus_11
                | gimli::DW_LANG_C_plus_plus_14
                | gimli::DW_LANG_C_plus_plus_17
                | gimli::DW_LANG_C_plus_plus_20,
            ) => Lang::Cxx,
            _ => Lang::C,
        }
    }
}

/// A field of a struct, class or union, or one of its base classes.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub name: Option<String>,
    pub ty: Option<Off>,
    /// Byte offset from the start of the aggregate.
    pub offset: u64,
    /// A bit field: (bit offset from `offset`'s byte, counting from the least significant bit
    /// on little-endian targets, width in bits).
    pub bits: Option<(u64, u64)>,
    /// A base class (`DW_TAG_inheritance`): gdb prints `<Base> = {...}`.
    pub base: bool,
}

/// One alternative of a Rust enum: the discriminant value selecting it (`None`: the default)
/// and its member (a struct named after the variant).
#[derive(Debug, Clone)]
pub(super) struct Variant {
    pub discr: Option<u64>,
    pub member: Member,
}

/// A Rust enum's `DW_TAG_variant_part`.
#[derive(Debug, Clone)]
pub(super) struct VariantPart {
    /// The member holding the discriminant (`None`: a single-variant enum).
    pub discr: Option<Member>,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Base {
        name: String,
        encoding: DwAte,
        size: u64,
    },
    Pointer {
        target: Option<Off>,
        size: u64,
    },
    Reference {
        target: Option<Off>,
        rvalue: bool,
    },
    /// `const`, `volatile`, `restrict`, `_Atomic` of `target` (`None`: `void`).
    Qualified {
        qualifier: &'static str,
        target: Option<Off>,
    },
    Typedef {
        name: String,
        target: Option<Off>,
    },
    Aggregate {
        /// `struct`, `class` or `union`.
        keyword: &'static str,
        name: Option<String>,
        size: u64,
        members: Vec<Member>,
        variants: Option<VariantPart>,
    },
    Array {
        element: Option<Off>,
        /// Element counts per dimension, outermost first (`None`: unknown, a flexible array).
        counts: Vec<Option<u64>>,
        name: Option<String>,
    },
    Enum {
        name: Option<String>,
        size: u64,
        signed: bool,
        values: Vec<(String, i128)>,
        /// C++'s `enum class`: its enumerators are named through it (`Kind::Debit`).
        scoped: bool,
    },
    Function {
        ret: Option<Off>,
        params: Vec<Option<Off>>,
        varargs: bool,
        prototyped: bool,
    },
    /// A type DIE this reader does not know, or a damaged chain: its name, if it has one.
    Unknown(Option<String>),
}

/// Types of one unit, each read once.
pub(super) struct Types<'u, 'a> {
    pub unit: &'u UnitRef<'a>,
    pub lang: Lang,
    /// Type DIEs already read, and (Rust only) the namespace path of every aggregate and enum
    /// type DIE, from one walk; shared with the plans made in the same unit.
    cache: super::TypeCache,
}

impl<'u, 'a> Types<'u, 'a> {
    pub(super) fn new(unit: &'u UnitRef<'a>, lang: Lang, cache: super::TypeCache) -> Self {
        Types { unit, lang, cache }
    }

    pub(super) fn get(&self, off: Off) -> Arc<Kind> {
        if let Some(k) = self
            .cache
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&off)
        {
            return Arc::clone(k);
        }
        let k = Arc::new(self.read(off).unwrap_or(Kind::Unknown(None)));
        self.cache
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(off, Arc::clone(&k));
        k
    }

    /// The string of a name-like attribute.
    pub(super) fn string(&self, v: AttributeValue<Reader>) -> Option<String> {
        let s = self.unit.attr_string(v).ok()?;
        Some(String::from_utf8_lossy(&s).into_owned())
    }

    fn read(&self, off: Off) -> Option<Kind> {
        let e = self.unit.entry(off).ok()?;
        let name = e.attr_value(gimli::DW_AT_name).and_then(|v| self.string(v));
        let target = type_ref(self.unit, &e);
        let size = e
            .attr_value(gimli::DW_AT_byte_size)
            .and_then(|v| v.udata_value());
        Some(match e.tag() {
            gimli::DW_TAG_base_type | gimli::DW_TAG_unspecified_type => {
                match e.attr_value(gimli::DW_AT_encoding) {
                    Some(AttributeValue::Encoding(encoding)) => Kind::Base {
                        name: match self.lang {
                            Lang::Rust => name.unwrap_or_default(),
                            _ => canonical_c_name(name.unwrap_or_default()),
                        },
                        encoding,
                        size: size.unwrap_or(0),
                    },
                    _ => Kind::Unknown(name),
                }
            }
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_ptr_to_member_type => Kind::Pointer {
                target,
                size: size.unwrap_or(u64::from(self.unit.encoding().address_size)),
            },
            gimli::DW_TAG_reference_type | gimli::DW_TAG_rvalue_reference_type => Kind::Reference {
                target,
                rvalue: e.tag() == gimli::DW_TAG_rvalue_reference_type,
            },
            tag @ (gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type) => Kind::Qualified {
                qualifier: match tag {
                    gimli::DW_TAG_const_type => "const",
                    gimli::DW_TAG_volatile_type => "volatile",
                    gimli::DW_TAG_restrict_type => "restrict",
                    _ => "_Atomic",
                },
                target,
            },
            gimli::DW_TAG_typedef => Kind::Typedef {
                name: name.unwrap_or_default(),
                target,
            },
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                let keyword = match e.tag() {
                    gimli::DW_TAG_class_type => "class",
                    gimli::DW_TAG_union_type => "union",
                    _ => "struct",
                };
                let (members, variants) = self.members(off);
                Kind::Aggregate {
                    keyword,
                    name,
                    size: size.unwrap_or(0),
                    members,
                    variants,
                }
            }
            gimli::DW_TAG_array_type => Kind::Array {
                element: target,
                counts: self.dimensions(off),
                name,
            },
            gimli::DW_TAG_enumeration_type => {
                let signed = target
                    .map(|t| self.is_signed(t))
                    .unwrap_or_else(|| self.enumerators_negative(off));
                Kind::Enum {
                    name,
                    size: size.unwrap_or(4),
                    signed,
                    values: self.enumerators(off, signed),
                    scoped: matches!(
                        e.attr_value(gimli::DW_AT_enum_class),
                        Some(AttributeValue::Flag(true))
                    ),
                }
            }
            gimli::DW_TAG_subroutine_type => {
                let (params, varargs) = self.parameters(off);
                Kind::Function {
                    ret: target,
                    params,
                    varargs,
                    prototyped: matches!(
                        e.attr_value(gimli::DW_AT_prototyped),
                        Some(AttributeValue::Flag(true))
                    ),
                }
            }
            _ => Kind::Unknown(name),
        })
    }

    fn children(&self, off: Off) -> Vec<gimli::DebuggingInformationEntry<Reader>> {
        super::children(self.unit, off)
    }

    fn member(&self, e: &gimli::DebuggingInformationEntry<Reader>) -> Member {
        let offset = match e.attr_value(gimli::DW_AT_data_member_location) {
            Some(v) => v.udata_value().unwrap_or(0),
            None => 0,
        };
        let bit_size = e
            .attr_value(gimli::DW_AT_bit_size)
            .and_then(|v| v.udata_value());
        let bits = bit_size.map(|width| {
            match e
                .attr_value(gimli::DW_AT_data_bit_offset)
                .and_then(|v| v.udata_value())
            {
                Some(b) => (b, width),
                // DWARF 2's DW_AT_bit_offset counts from the most significant bit of the
                // storage unit (DW_AT_byte_size) on little-endian targets.
                None => {
                    let storage = e
                        .attr_value(gimli::DW_AT_byte_size)
                        .and_then(|v| v.udata_value())
                        .unwrap_or(4);
                    let from_msb = e
                        .attr_value(gimli::DW_AT_bit_offset)
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0);
                    (
                        (storage * 8).saturating_sub(from_msb.saturating_add(width)),
                        width,
                    )
                }
            }
        });
        let (offset, bits) = match bits {
            // With DW_AT_data_bit_offset the offset is from the aggregate's start.
            Some((b, w)) if e.attr_value(gimli::DW_AT_data_member_location).is_none() => {
                (b / 8, Some((b % 8, w)))
            }
            other => (offset, other),
        };
        Member {
            name: e.attr_value(gimli::DW_AT_name).and_then(|v| self.string(v)),
            ty: type_ref(self.unit, e),
            offset,
            bits,
            base: e.tag() == gimli::DW_TAG_inheritance,
        }
    }

    fn members(&self, off: Off) -> (Vec<Member>, Option<VariantPart>) {
        let mut members = Vec::new();
        let mut variants = None;
        for c in self.children(off) {
            match c.tag() {
                gimli::DW_TAG_member => {
                    // Static members are declarations without a location in the object.
                    let is_static = matches!(
                        c.attr_value(gimli::DW_AT_external),
                        Some(AttributeValue::Flag(true))
                    ) || matches!(
                        c.attr_value(gimli::DW_AT_declaration),
                        Some(AttributeValue::Flag(true))
                    );
                    if !is_static {
                        members.push(self.member(&c));
                    }
                }
                gimli::DW_TAG_inheritance => members.push(self.member(&c)),
                gimli::DW_TAG_variant_part if variants.is_none() => {
                    variants = Some(self.variant_part(&c));
                }
                _ => {}
            }
        }
        (members, variants)
    }

    fn variant_part(&self, part: &gimli::DebuggingInformationEntry<Reader>) -> VariantPart {
        let discr_off = match part.attr_value(gimli::DW_AT_discr) {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            _ => None,
        };
        let mut out = VariantPart {
            discr: None,
            variants: Vec::new(),
        };
        for c in self.children(part.offset()) {
            match c.tag() {
                gimli::DW_TAG_member if Some(c.offset()) == discr_off => {
                    out.discr = Some(self.member(&c));
                }
                gimli::DW_TAG_variant => {
                    let discr = c.attr_value(gimli::DW_AT_discr_value).and_then(|v| {
                        v.udata_value()
                            .or_else(|| v.sdata_value().map(|s| s as u64))
                    });
                    if let Some(m) = self
                        .children(c.offset())
                        .into_iter()
                        .find(|m| m.tag() == gimli::DW_TAG_member)
                    {
                        out.variants.push(Variant {
                            discr,
                            member: self.member(&m),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn dimensions(&self, off: Off) -> Vec<Option<u64>> {
        self.children(off)
            .into_iter()
            .filter(|c| c.tag() == gimli::DW_TAG_subrange_type)
            .map(|c| {
                if let Some(n) = c
                    .attr_value(gimli::DW_AT_count)
                    .and_then(|v| v.udata_value())
                {
                    return Some(n);
                }
                let upper = c.attr_value(gimli::DW_AT_upper_bound)?;
                let upper = upper
                    .udata_value()
                    .or_else(|| upper.sdata_value().map(|s| s as u64))?;
                let lower = c
                    .attr_value(gimli::DW_AT_lower_bound)
                    .and_then(|v| v.udata_value())
                    .unwrap_or(0);
                // `-1` (all ones) is GCC's upper bound of a zero-length array.
                Some(upper.wrapping_sub(lower).wrapping_add(1)).filter(|&n| n < (1 << 40))
            })
            .collect()
    }

    fn enumerators(&self, off: Off, signed: bool) -> Vec<(String, i128)> {
        self.children(off)
            .into_iter()
            .filter(|c| c.tag() == gimli::DW_TAG_enumerator)
            .filter_map(|c| {
                let name = c
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| self.string(v))?;
                let v = c.attr_value(gimli::DW_AT_const_value)?;
                let value = match v {
                    AttributeValue::Sdata(s) => i128::from(s),
                    AttributeValue::Udata(u) => i128::from(u),
                    other if signed => i128::from(other.sdata_value()?),
                    other => i128::from(other.udata_value()?),
                };
                Some((name, value))
            })
            .collect()
    }

    fn enumerators_negative(&self, off: Off) -> bool {
        self.children(off)
            .into_iter()
            .any(|c| matches!(c.attr_value(gimli::DW_AT_const_value), Some(AttributeValue::Sdata(s)) if s < 0))
    }

    fn parameters(&self, off: Off) -> (Vec<Option<Off>>, bool) {
        let mut params = Vec::new();
        let mut varargs = false;
        for c in self.children(off) {
            match c.tag() {
                gimli::DW_TAG_formal_parameter => params.push(type_ref(self.unit, &c)),
                gimli::DW_TAG_unspecified_parameters => varargs = true,
                _ => {}
            }
        }
        (params, varargs)
    }

    /// Through typedefs and qualifiers to the type that says what the bytes are.
    pub(super) fn strip(&self, mut off: Option<Off>) -> Option<(Off, Arc<Kind>)> {
        for _ in 0..MAX_TYPE_DEPTH {
            let o = off?;
            let k = self.get(o);
            match &*k {
                Kind::Typedef { target, .. } | Kind::Qualified { target, .. } => off = *target,
                _ => return Some((o, k)),
            }
        }
        None
    }

    pub(super) fn is_signed(&self, off: Off) -> bool {
        match self.strip(Some(off)).as_deref_kind() {
            Some(Kind::Base { encoding, .. }) => {
                matches!(*encoding, gimli::DW_ATE_signed | gimli::DW_ATE_signed_char)
            }
            Some(Kind::Enum { signed, .. }) => *signed,
            _ => false,
        }
    }

    /// The size in bytes of a value of the type (`None` when unknown).
    pub(super) fn size_of(&self, off: Option<Off>) -> Option<u64> {
        self.size_depth(off, 0)
    }

    fn size_depth(&self, off: Option<Off>, depth: usize) -> Option<u64> {
        if depth > MAX_TYPE_DEPTH {
            return None;
        }
        let (_, k) = self.strip(off)?;
        match &*k {
            Kind::Base { size, .. } => Some(*size),
            Kind::Pointer { size, .. } => Some(*size),
            Kind::Reference { .. } => Some(u64::from(self.unit.encoding().address_size)),
            Kind::Aggregate { size, .. } => Some(*size),
            Kind::Enum { size, .. } => Some(*size),
            Kind::Array {
                element, counts, ..
            } => {
                let mut n = self.size_depth(*element, depth + 1)?;
                for c in counts {
                    n = n.checked_mul((*c)?)?;
                }
                Some(n)
            }
            _ => None,
        }
    }

    /// gdb's name for the type (`whatis`): `int`, `struct node *`, `char [16]`,
    /// `int (*)(int)`, `Foo * const`, `const char *`, `&str`.
    pub(super) fn name(&self, off: Option<Off>) -> String {
        let (base, decl) = self.declarator(off, String::new(), 0);
        if decl.is_empty() {
            base
        } else {
            format!("{base} {decl}")
        }
    }

    /// C's declarator algorithm: the base type's name and the declarator around `inner`.
    fn declarator(&self, off: Option<Off>, inner: String, depth: usize) -> (String, String) {
        if depth > MAX_TYPE_DEPTH {
            return ("<type too deep>".into(), inner);
        }
        let Some(o) = off else {
            return ("void".into(), inner);
        };
        let k = self.get(o);
        let join = |a: &str, b: &str| {
            if b.is_empty() {
                a.to_string()
            } else {
                format!("{a} {b}")
            }
        };
        match &*k {
            // gdb's Rust printer names every pointer and reference `*mut T` (`*const T`
            // for a const target), whatever name rustc gave it.
            Kind::Pointer { target, .. } | Kind::Reference { target, .. }
                if self.lang == Lang::Rust =>
            {
                let (mutability, pointee) = match target.map(|t| self.get(t)).as_deref() {
                    Some(Kind::Qualified {
                        qualifier: "const",
                        target: t,
                    }) => ("const", *t),
                    _ => ("mut", *target),
                };
                (format!("*{mutability} {}", self.name(pointee)), inner)
            }
            Kind::Array {
                element, counts, ..
            } if self.lang == Lang::Rust => {
                let mut name = self.name(*element);
                for c in counts.iter().rev() {
                    name = match c {
                        Some(n) => format!("[{name}; {n}]"),
                        None => format!("[{name}]"),
                    };
                }
                (name, inner)
            }
            Kind::Pointer { target, .. } => {
                let mut d = format!("*{inner}");
                if self.is_array_or_function(*target) {
                    d = format!("({d})");
                }
                self.declarator(*target, d, depth + 1)
            }
            Kind::Reference { target, rvalue, .. } => {
                let r = if *rvalue { "&&" } else { "&" };
                let mut d = format!("{r}{inner}");
                if self.is_array_or_function(*target) {
                    d = format!("({d})");
                }
                self.declarator(*target, d, depth + 1)
            }
            Kind::Qualified { qualifier, target } => {
                let target_is_pointer = matches!(
                    target.map(|t| self.get(t)).as_deref(),
                    Some(Kind::Pointer { .. } | Kind::Reference { .. })
                );
                if target_is_pointer {
                    // `T * const`: the qualifier follows the `*` it qualifies.
                    self.declarator(*target, format!(" {}", join(qualifier, &inner)), depth + 1)
                } else {
                    let (base, decl) = self.declarator(*target, inner, depth + 1);
                    (format!("{qualifier} {base}"), decl)
                }
            }
            Kind::Array {
                element, counts, ..
            } => {
                let mut d = inner;
                for c in counts {
                    match c {
                        Some(n) => d.push_str(&format!("[{n}]")),
                        None => d.push_str("[]"),
                    }
                }
                self.declarator(*element, d, depth + 1)
            }
            Kind::Function {
                ret,
                params,
                varargs,
                prototyped,
            } => {
                let mut ps: Vec<String> = params.iter().map(|p| self.name(*p)).collect();
                if *varargs {
                    ps.push("...".into());
                }
                if ps.is_empty() && (*prototyped || self.lang == Lang::Cxx) {
                    ps.push("void".into());
                }
                let d = format!("{inner}({})", ps.join(", "));
                self.declarator(*ret, d, depth + 1)
            }
            _ => (self.base_name(o, &k), inner),
        }
    }

    /// A C++ or Rust type's name with the namespaces and types it is declared in
    /// (`bank::Ledger`, `core::option::Option<u32>`), as gdb names it.
    pub(super) fn qualified(&self, off: Off, name: &str) -> String {
        if self.lang == Lang::C {
            return name.to_string();
        }
        let scopes = self.cache.scopes.get_or_init(|| namespaces(self.unit));
        match scopes.get(&off) {
            Some(path) if !path.is_empty() => format!("{path}::{name}"),
            _ => name.to_string(),
        }
    }

    /// What an enumerator of the enum at `off` is prefixed with, as gdb prints it: C++'s
    /// namespaces (and the enum itself for an `enum class`), Rust's path to the enum.
    pub(super) fn enumerator_prefix(&self, off: Off, name: Option<&str>, scoped: bool) -> String {
        let path = match self.lang {
            Lang::C => return String::new(),
            Lang::Rust => name.map(|n| self.qualified(off, n)),
            Lang::Cxx if scoped => name.map(|n| self.qualified(off, n)),
            Lang::Cxx => {
                let q = self.qualified(off, "");
                q.strip_suffix("::").map(str::to_string)
            }
        };
        match path {
            Some(p) if !p.is_empty() => format!("{p}::"),
            _ => String::new(),
        }
    }

    fn is_array_or_function(&self, off: Option<Off>) -> bool {
        matches!(
            off.map(|o| self.get(o)).as_deref(),
            Some(Kind::Array { .. } | Kind::Function { .. })
        )
    }

    fn base_name(&self, off: Off, k: &Kind) -> String {
        let tagged = |keyword: &str, name: &Option<String>| match (self.lang, name) {
            (Lang::Rust | Lang::Cxx, Some(n)) => self.qualified(off, n),
            (Lang::C, Some(n)) => format!("{keyword} {n}"),
            (Lang::C, None) => format!("{keyword} {{...}}"),
            (_, None) => "{...}".into(),
        };
        match k {
            Kind::Base { name, .. } => name.clone(),
            Kind::Typedef { name, .. } => self.qualified(off, name),
            Kind::Aggregate { keyword, name, .. } => tagged(keyword, name),
            Kind::Enum { name, .. } => tagged("enum", name),
            Kind::Array { name: Some(n), .. } => n.clone(),
            Kind::Unknown(Some(n)) => n.clone(),
            _ => "<unknown type>".into(),
        }
    }
}

trait KindOf {
    fn as_deref_kind(&self) -> Option<&Kind>;
}

impl KindOf for Option<(Off, Arc<Kind>)> {
    fn as_deref_kind(&self) -> Option<&Kind> {
        self.as_ref().map(|(_, k)| &**k)
    }
}

/// The DIE's `DW_AT_type` within its unit.
pub(super) fn type_ref(
    unit: &UnitRef<'_>,
    e: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<Off> {
    match e.attr_value(gimli::DW_AT_type)? {
        AttributeValue::UnitRef(o) => Some(o),
        AttributeValue::DebugInfoRef(d) => d.to_unit_offset(&unit.header),
        _ => None,
    }
}

/// The namespace path (`core::option`, `bank`) of each struct, class, union, enum and typedef
/// DIE of a C++ or Rust unit,
/// from one walk of its raw entries (only namespaces' names are decoded); bounded.
fn namespaces(unit: &UnitRef<'_>) -> HashMap<Off, String> {
    let mut out = HashMap::new();
    let Ok(mut entries) = unit.entries_raw(None) else {
        return out;
    };
    // Enclosing namespaces and types: (depth, name).
    let mut open: Vec<(isize, String)> = Vec::new();
    let mut budget = super::MAX_DIES;
    while !entries.is_empty() && budget > 0 {
        budget -= 1;
        let off = entries.next_offset();
        let depth = entries.next_depth();
        let abbrev = match entries.read_abbreviation() {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(_) => break,
        };
        while open.last().is_some_and(|&(d, _)| depth <= d) {
            open.pop();
        }
        let tag = abbrev.tag();
        let scope = matches!(
            tag,
            gimli::DW_TAG_namespace
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_typedef
        );
        if !scope {
            if entries.skip_attributes(abbrev.attributes()).is_err() {
                break;
            }
            continue;
        }
        let mut name = None;
        for spec in abbrev.attributes() {
            let Ok(attr) = entries.read_attribute(*spec) else {
                return out;
            };
            if attr.name() == gimli::DW_AT_name {
                name = unit
                    .attr_string(attr.value())
                    .ok()
                    .map(|s| String::from_utf8_lossy(&s).into_owned());
            }
        }
        if tag != gimli::DW_TAG_namespace {
            let path: Vec<&str> = open.iter().map(|(_, n)| n.as_str()).collect();
            out.insert(off, path.join("::"));
        }
        if abbrev.has_children() {
            let name = match name {
                Some(n) => n,
                None if tag == gimli::DW_TAG_namespace => "(anonymous namespace)".into(),
                None => String::new(),
            };
            open.push((depth, name));
        }
    }
    out
}

/// GCC's base type names as gdb canonicalizes them (`long int` is `long`).
fn canonical_c_name(name: String) -> String {
    let canonical = match name.as_str() {
        "long int" => "long",
        "long unsigned int" => "unsigned long",
        "short int" => "short",
        "short unsigned int" => "unsigned short",
        "long long int" => "long long",
        "long long unsigned int" => "unsigned long long",
        _ => return name,
    };
    canonical.to_string()
}
