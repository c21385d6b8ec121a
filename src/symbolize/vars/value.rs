//! A variable's bytes, wherever its location put them, printed as gdb's `print` prints them
//! with its default settings: `print elements 200`, `repeats 10`, `max-depth 20`, `pretty
//! off`, `symbol on` (`0x401136 <fn>`), `null-stop off`.
//!
//! Reading is bounded: one value reads at most [`READ_BUDGET`] bytes of the core's memory, and
//! what is past the budget prints as `...`.

use std::sync::Arc;

use gimli::DwAte;

use super::types::{Kind, Lang, Member, Off, Types};
use super::Process;

/// gdb's `print elements`: array elements and string characters printed at most.
const ELEMENTS: usize = 200;
/// gdb's `print repeats`: runs longer than this print as `<repeats N times>`.
const REPEATS: usize = 10;
/// gdb's `print max-depth`.
const MAX_DEPTH: usize = 20;
/// Bytes of memory one value may read.
pub(super) const READ_BUDGET: usize = 64 << 10;

/// Where a value's bytes are.
#[derive(Debug, Clone)]
pub(super) enum Storage {
    /// In the process's memory at this address.
    Memory(u64),
    /// Assembled from registers, pieces or constants; `None` bytes are unavailable (a piece
    /// that is optimized out).
    Bytes(Arc<Vec<Option<u8>>>),
}

/// Why bytes could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    OptimizedOut,
    /// The core does not hold this address.
    Memory(u64),
    Budget,
    /// The location expression cannot be evaluated (damaged, or an operation misused).
    BadDwarf,
}

impl Missing {
    pub(super) fn text(self) -> String {
        match self {
            Missing::OptimizedOut => "<optimized out>".into(),
            Missing::Memory(a) => format!("<error: Cannot access memory at address {a:#x}>"),
            Missing::Budget => "...".into(),
            Missing::BadDwarf => "<error: damaged DWARF location expression>".into(),
        }
    }
}

pub(super) struct Printer<'t, 'u, 'a> {
    pub types: &'t Types<'u, 'a>,
    pub process: &'t dyn Process,
    pub little_endian: bool,
    pub read: std::cell::Cell<usize>,
}

impl Printer<'_, '_, '_> {
    /// `len` bytes at `offset` into the storage.
    pub(super) fn bytes(&self, st: &Storage, offset: u64, len: u64) -> Result<Vec<u8>, Missing> {
        let n = usize::try_from(len).map_err(|_| Missing::Budget)?;
        match st {
            Storage::Memory(a) => {
                let spent = self.read.get().saturating_add(n);
                if spent > READ_BUDGET {
                    return Err(Missing::Budget);
                }
                self.read.set(spent);
                let addr = a.wrapping_add(offset);
                let mut buf = vec![0; n];
                if self.process.read(addr, &mut buf) {
                    Ok(buf)
                } else {
                    Err(Missing::Memory(self.first_unreadable(addr, n)))
                }
            }
            Storage::Bytes(b) => {
                let start = usize::try_from(offset).map_err(|_| Missing::OptimizedOut)?;
                let end = start.checked_add(n).ok_or(Missing::OptimizedOut)?;
                b.get(start..end)
                    .ok_or(Missing::OptimizedOut)?
                    .iter()
                    .map(|b| b.ok_or(Missing::OptimizedOut))
                    .collect()
            }
        }
    }

    /// The first address of `addr..addr+n` the core lacks (gdb names that one).
    fn first_unreadable(&self, addr: u64, n: usize) -> u64 {
        let mut b = [0u8; 1];
        (0..n as u64)
            .map(|i| addr.wrapping_add(i))
            .find(|&a| !self.process.read(a, &mut b))
            .unwrap_or(addr)
    }

    fn uint(&self, bytes: &[u8]) -> u128 {
        let mut v: u128 = 0;
        let it: Box<dyn Iterator<Item = &u8>> = if self.little_endian {
            Box::new(bytes.iter().rev())
        } else {
            Box::new(bytes.iter())
        };
        for &b in it.take(16) {
            v = (v << 8) | u128::from(b);
        }
        v
    }

    fn sint(&self, bytes: &[u8]) -> i128 {
        let v = self.uint(bytes);
        let bits = (bytes.len().min(16) * 8) as u32;
        if bits == 0 || bits >= 128 {
            return v as i128;
        }
        let shift = 128 - bits;
        ((v << shift) as i128) >> shift
    }

    /// The whole value of the type at `ty` in `st`, at `offset`.
    pub(super) fn value(&self, ty: Option<Off>, st: &Storage, offset: u64, depth: usize) -> String {
        match self.try_value(ty, st, offset, depth) {
            Ok(s) => s,
            Err(m) => m.text(),
        }
    }

    fn try_value(
        &self,
        ty: Option<Off>,
        st: &Storage,
        offset: u64,
        depth: usize,
    ) -> Result<String, Missing> {
        let Some((off, k)) = self.types.strip(ty) else {
            return Ok("<incomplete type>".into());
        };
        match &*k {
            Kind::Base {
                encoding,
                size,
                name,
            } => {
                let b = self.bytes(st, offset, *size)?;
                Ok(self.base(*encoding, &b, name))
            }
            Kind::Enum {
                values,
                signed,
                size,
                name,
                scoped,
            } => {
                let b = self.bytes(st, offset, *size)?;
                let v = if *signed {
                    self.sint(&b)
                } else {
                    self.uint(&b) as i128
                };
                let prefix = self.types.enumerator_prefix(off, name.as_deref(), *scoped);
                if prefix.is_empty() {
                    return Ok(enum_text(values, v));
                }
                let named: Vec<(String, i128)> = values
                    .iter()
                    .map(|(n, x)| (format!("{prefix}{n}"), *x))
                    .collect();
                Ok(enum_text(&named, v))
            }
            Kind::Pointer { target, size, .. } => {
                let b = self.bytes(st, offset, *size)?;
                let p = self.uint(&b) as u64;
                Ok(self.pointer(*target, p, off))
            }
            Kind::Reference { target, .. } => {
                let b = self.bytes(
                    st,
                    offset,
                    u64::from(self.types.unit.encoding().address_size),
                )?;
                let p = self.uint(&b) as u64;
                let inner = self.value(*target, &Storage::Memory(p), 0, depth + 1);
                if self.types.lang == Lang::Rust {
                    return Ok(format!("{p:#x}"));
                }
                Ok(format!("@{p:#x}: {inner}"))
            }
            Kind::Aggregate { .. } if depth >= MAX_DEPTH => Ok("{...}".into()),
            Kind::Aggregate {
                members,
                variants,
                name,
                ..
            } => {
                if self.types.lang == Lang::Rust {
                    return self.rust_aggregate(
                        off,
                        name.as_deref(),
                        members,
                        variants.as_ref(),
                        st,
                        offset,
                        depth,
                    );
                }
                let mut parts = Vec::new();
                for m in members {
                    parts.push(self.member(m, st, offset, depth));
                }
                if parts.is_empty() {
                    return Ok("{<No data fields>}".into());
                }
                Ok(format!("{{{}}}", parts.join(", ")))
            }
            Kind::Array {
                element, counts, ..
            } => self.array(*element, counts, st, offset, depth),
            Kind::Function { .. } => {
                let a = match st {
                    Storage::Memory(a) => a.wrapping_add(offset),
                    Storage::Bytes(_) => return Err(Missing::OptimizedOut),
                };
                Ok(self.with_symbol(a, true))
            }
            Kind::Unknown(_) | Kind::Typedef { .. } | Kind::Qualified { .. } => {
                Ok("<unknown type>".into())
            }
        }
    }

    fn member(&self, m: &Member, st: &Storage, offset: u64, depth: usize) -> String {
        let at = offset.saturating_add(m.offset);
        let v = match m.bits {
            Some((bit, width)) => self.bitfield(m.ty, st, at, bit, width),
            None => self.value(m.ty, st, at, depth + 1),
        };
        match (&m.name, m.base) {
            (_, true) => format!("<{}> = {v}", self.types.name(m.ty)),
            (Some(n), false) => format!("{n} = {v}"),
            (None, false) => v,
        }
    }

    fn bitfield(&self, ty: Option<Off>, st: &Storage, at: u64, bit: u64, width: u64) -> String {
        let nbytes = (bit + width).div_ceil(8).clamp(1, 16);
        let b = match self.bytes(st, at, nbytes) {
            Ok(b) => b,
            Err(m) => return m.text(),
        };
        let raw = self.uint(&b);
        let shifted = if self.little_endian {
            raw >> bit
        } else {
            raw >> (nbytes * 8 - bit - width)
        };
        let mask = if width >= 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        let v = shifted & mask;
        let signed = ty.is_some_and(|t| self.types.is_signed(t));
        let v = if signed && width > 0 && width < 128 && v >> (width - 1) & 1 == 1 {
            (v as i128) - (1i128 << width)
        } else {
            v as i128
        };
        match self.types.strip(ty).map(|(_, k)| k).as_deref() {
            Some(Kind::Enum { values, .. }) => enum_text(values, v),
            Some(Kind::Base { encoding, .. }) if *encoding == gimli::DW_ATE_boolean => {
                bool_text(v as u128)
            }
            _ => v.to_string(),
        }
    }

    fn base(&self, enc: DwAte, b: &[u8], name: &str) -> String {
        match enc {
            gimli::DW_ATE_boolean => bool_text(self.uint(b)),
            gimli::DW_ATE_float => match b.len() {
                4 => format_g(f64::from(f32::from_bits(self.uint(b) as u32)), 9),
                8 => format_g(f64::from_bits(self.uint(b) as u64), 17),
                10 | 12 | 16 => format_g(x87_to_f64(self.uint(&b[..10.min(b.len())])), 18),
                _ => self.uint(b).to_string(),
            },
            gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char if b.len() == 1 => {
                let v = if enc == gimli::DW_ATE_signed_char {
                    self.sint(b)
                } else {
                    self.uint(b) as i128
                };
                format!("{v} {}", char_literal(b[0]))
            }
            gimli::DW_ATE_UTF if self.types.lang == Lang::Rust || name == "char" => {
                let v = self.uint(b) as u32;
                match char::from_u32(v) {
                    Some(c) if v < 0x80 => format!("{v} {}", char_literal(c as u8)),
                    Some(c) if !c.is_control() => format!("{v} '{c}'"),
                    _ => format!("{v} '\\u{{{v:06x}}}'"),
                }
            }
            gimli::DW_ATE_signed | gimli::DW_ATE_signed_char => self.sint(b).to_string(),
            _ => self.uint(b).to_string(),
        }
    }

    /// A pointer's value: `0x0`, `0x1234`, `0x401136 <fn>`, `0x4010 "text"`.
    fn pointer(&self, target: Option<Off>, p: u64, _ptr_type: Off) -> String {
        let pointee = self.types.strip(target);
        if p == 0 {
            return "0x0".into();
        }
        match pointee.as_ref().map(|(_, k)| &**k) {
            Some(Kind::Function { .. }) => self.with_symbol(p, true),
            Some(Kind::Base {
                encoding, size: 1, ..
            }) if matches!(
                *encoding,
                gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char
            ) || (*encoding == gimli::DW_ATE_signed
                || *encoding == gimli::DW_ATE_unsigned)
                && self.types.lang != Lang::Rust
                && self.is_char_name(target) =>
            {
                format!("{p:#x} {}", self.c_string(p))
            }
            _ => self.with_symbol(p, false),
        }
    }

    fn is_char_name(&self, ty: Option<Off>) -> bool {
        let n = self.types.name(ty);
        let n = n
            .trim_start_matches("const ")
            .trim_start_matches("volatile ");
        matches!(n, "char" | "signed char" | "unsigned char")
    }

    /// `0x... <sym+off>` when the address is in a known symbol (gdb's `print symbol on`).
    fn with_symbol(&self, p: u64, code: bool) -> String {
        match self.process.symbol(p, code) {
            Some(s) => format!("{p:#x} <{s}>"),
            None => format!("{p:#x}"),
        }
    }

    /// A NUL-terminated string at `p`, at most [`ELEMENTS`] characters, quoted as gdb quotes.
    fn c_string(&self, p: u64) -> String {
        let mut bytes = Vec::new();
        let mut complete = false;
        let mut chunk = [0u8; 1];
        let mut unreadable = None;
        while bytes.len() < ELEMENTS {
            let a = p.wrapping_add(bytes.len() as u64);
            if !self.process.read(a, &mut chunk) {
                unreadable = Some(a);
                break;
            }
            if chunk[0] == 0 {
                complete = true;
                break;
            }
            bytes.push(chunk[0]);
        }
        self.read.set(self.read.get().saturating_add(bytes.len()));
        match unreadable {
            Some(a) if bytes.is_empty() => {
                format!("<error: Cannot access memory at address {a:#x}>")
            }
            Some(a) => format!(
                "{}<error: Cannot access memory at address {a:#x}>",
                quote_run(&bytes)
            ),
            None if complete || bytes.len() < ELEMENTS => quote_run(&bytes),
            None => format!("{}...", quote_run(&bytes)),
        }
    }

    fn array(
        &self,
        element: Option<Off>,
        counts: &[Option<u64>],
        st: &Storage,
        offset: u64,
        depth: usize,
    ) -> Result<String, Missing> {
        let Some((&first, rest)) = counts.split_first() else {
            return Ok("{}".into());
        };
        let Some(n) = first else {
            // A flexible array: gdb prints nothing of it.
            return Ok("0x0".into()).map(|_: String| String::from("{}"));
        };
        // The element type of this dimension: the remaining dimensions, or the element.
        let elem_size = {
            let mut s = self.types.size_of(element).unwrap_or(0);
            for c in rest {
                s = s.saturating_mul(c.unwrap_or(0));
            }
            s
        };
        if depth >= MAX_DEPTH {
            return Ok("{...}".into());
        }
        // Character arrays print as strings.
        if rest.is_empty() && elem_size == 1 && self.is_char_name(element) {
            let shown = n.min(ELEMENTS as u64);
            match self.bytes(st, offset, shown) {
                Ok(b) => return Ok(char_array(&b, n as usize > ELEMENTS)),
                // Partly available (some pieces optimized out): element by element, as gdb.
                Err(Missing::OptimizedOut) => {}
                Err(m) => return Err(m),
            }
        }
        let shown = n.min(ELEMENTS as u64) as usize;
        let mut items: Vec<String> = Vec::with_capacity(shown);
        for i in 0..shown {
            let at = offset.saturating_add(elem_size.saturating_mul(i as u64));
            let v = if rest.is_empty() {
                self.value(element, st, at, depth + 1)
            } else {
                self.array(element, rest, st, at, depth + 1)
                    .unwrap_or_else(|m| m.text())
            };
            let budget_hit = v == "...";
            items.push(v);
            if budget_hit {
                break;
            }
        }
        let mut out = fold_repeats(&items);
        // Rust arrays print as `[1, 2]`, C's as `{1, 2}`.
        let (open, close) = if self.types.lang == Lang::Rust {
            ('[', ']')
        } else {
            ('{', '}')
        };
        let budget_hit = items.last().is_some_and(|v| v == "...");
        if budget_hit {
            out.pop();
        }
        let more = if (n as usize) > shown || budget_hit {
            "..."
        } else {
            ""
        };
        Ok(format!("{open}{}{more}{close}", out.join(", ")))
    }

    #[allow(clippy::too_many_arguments)]
    fn rust_aggregate(
        &self,
        off: Off,
        name: Option<&str>,
        members: &[Member],
        variants: Option<&super::types::VariantPart>,
        st: &Storage,
        offset: u64,
        depth: usize,
    ) -> Result<String, Missing> {
        let name = name.unwrap_or("");
        if let Some(vp) = variants {
            // A Rust enum: the discriminant picks the variant, printed as `Name::Variant(..)`.
            let discr = match &vp.discr {
                Some(d) => {
                    let size = self.types.size_of(d.ty).unwrap_or(0);
                    let b = self.bytes(st, offset.saturating_add(d.offset), size)?;
                    Some(self.uint(&b) as u64)
                }
                None => None,
            };
            let chosen = vp
                .variants
                .iter()
                .find(|v| v.discr.is_some() && v.discr == discr)
                .or_else(|| vp.variants.iter().find(|v| v.discr.is_none()))
                .or_else(|| (vp.variants.len() == 1).then(|| &vp.variants[0]));
            let Some(v) = chosen else {
                return Ok(format!(
                    "{name}::<invalid discriminant {}>",
                    discr.unwrap_or(0)
                ));
            };
            let vname = v.member.name.clone().unwrap_or_default();
            let inner = self.rust_fields(
                v.member.ty,
                st,
                offset.saturating_add(v.member.offset),
                depth,
            )?;
            return Ok(format!(
                "{}::{vname}{inner}",
                self.types.qualified(off, name)
            ));
        }
        if name.starts_with("&str") || name.starts_with("&mut str") {
            return self.rust_str(members, st, offset);
        }
        if name.starts_with("&[") || name.starts_with("&mut [") {
            let items = self.rust_slice(members, st, offset, depth)?;
            return Ok(format!("{name} {items}"));
        }
        let fields = self.rust_field_list(members, st, offset, depth)?;
        if name.starts_with('(') {
            let vs: Vec<String> = fields.into_iter().map(|(_, v)| v).collect();
            return Ok(format!("({})", vs.join(", ")));
        }
        Ok(format!(
            "{}{}",
            self.types.qualified(off, name),
            rust_body(fields, true)
        ))
    }

    fn rust_fields(
        &self,
        ty: Option<Off>,
        st: &Storage,
        offset: u64,
        depth: usize,
    ) -> Result<String, Missing> {
        match self.types.strip(ty).map(|(_, k)| k).as_deref() {
            Some(Kind::Aggregate { members, .. }) => Ok(rust_body(
                self.rust_field_list(members, st, offset, depth)?,
                false,
            )),
            _ => Ok(String::new()),
        }
    }

    fn rust_field_list(
        &self,
        members: &[Member],
        st: &Storage,
        offset: u64,
        depth: usize,
    ) -> Result<Vec<(String, String)>, Missing> {
        Ok(members
            .iter()
            .map(|m| {
                let v = self.value(m.ty, st, offset.saturating_add(m.offset), depth + 1);
                (m.name.clone().unwrap_or_default(), v)
            })
            .collect())
    }

    fn rust_ptr_len(
        &self,
        members: &[Member],
        st: &Storage,
        offset: u64,
    ) -> Result<(u64, u64, Option<Off>), Missing> {
        let find = |n: &str| members.iter().find(|m| m.name.as_deref() == Some(n));
        let (Some(p), Some(l)) = (find("data_ptr"), find("length")) else {
            return Err(Missing::OptimizedOut);
        };
        let ps = self.types.size_of(p.ty).unwrap_or(8);
        let ls = self.types.size_of(l.ty).unwrap_or(8);
        let ptr = self.uint(&self.bytes(st, offset + p.offset, ps)?) as u64;
        let len = self.uint(&self.bytes(st, offset + l.offset, ls)?) as u64;
        let elem = match self.types.strip(p.ty).map(|(_, k)| k).as_deref() {
            Some(Kind::Pointer { target, .. }) => *target,
            _ => None,
        };
        Ok((ptr, len, elem))
    }

    fn rust_str(&self, members: &[Member], st: &Storage, offset: u64) -> Result<String, Missing> {
        let (ptr, len, _) = self.rust_ptr_len(members, st, offset)?;
        let shown = len.min(ELEMENTS as u64);
        let b = self.bytes(&Storage::Memory(ptr), 0, shown)?;
        let s = quote_run(&b);
        Ok(if len > shown { format!("{s}...") } else { s })
    }

    fn rust_slice(
        &self,
        members: &[Member],
        st: &Storage,
        offset: u64,
        depth: usize,
    ) -> Result<String, Missing> {
        let (ptr, len, elem) = self.rust_ptr_len(members, st, offset)?;
        let size = self.types.size_of(elem).unwrap_or(0);
        let shown = len.min(ELEMENTS as u64) as usize;
        let mem = Storage::Memory(ptr);
        let items: Vec<String> = (0..shown)
            .map(|i| self.value(elem, &mem, size.saturating_mul(i as u64), depth + 1))
            .collect();
        let more = if (len as usize) > shown { "..." } else { "" };
        Ok(format!("[{}{more}]", fold_repeats(&items).join(", ")))
    }
}

/// A Rust struct's or variant's fields: `{x: 1, y: 2}`, tuple-like `(1, 2)` when the fields
/// are named `__0`, `__1`, ..., nothing for a unit. gdb puts a space after a struct's name
/// (`Point {x: 1}`, `Wrapper (3)`) and none after a variant's (`Some(5)`, `Rect{w: 3}`).
fn rust_body(fields: Vec<(String, String)>, space: bool) -> String {
    if fields.is_empty() {
        return String::new();
    }
    let sp = if space { " " } else { "" };
    if fields.iter().all(|(n, _)| n.starts_with("__")) {
        let vs: Vec<String> = fields.into_iter().map(|(_, v)| v).collect();
        return format!("{sp}({})", vs.join(", "));
    }
    let fs: Vec<String> = fields
        .into_iter()
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    format!("{sp}{{{}}}", fs.join(", "))
}

fn bool_text(v: u128) -> String {
    match v {
        0 => "false".into(),
        1 => "true".into(),
        v => v.to_string(),
    }
}

/// An enum value by name; a flag enum's combination `(A | B)`, `(A | unknown: 0x8)`; the
/// number when neither applies, as gdb prints them.
pub(super) fn enum_text(values: &[(String, i128)], v: i128) -> String {
    if let Some((n, _)) = values.iter().find(|(_, x)| *x == v) {
        return n.clone();
    }
    // gdb's flag enum: every enumerator's value is non-negative and no two share a bit.
    let mut seen: u128 = 0;
    let mut flag = !values.is_empty();
    for (_, x) in values {
        if *x < 0 {
            flag = false;
            break;
        }
        let x = *x as u128;
        if x & seen != 0 {
            flag = false;
            break;
        }
        seen |= x;
    }
    if !flag || v <= 0 {
        return v.to_string();
    }
    let mut rest = v as u128;
    let mut parts = Vec::new();
    for (n, x) in values {
        let x = *x as u128;
        if x != 0 && rest & x == x {
            parts.push(n.clone());
            rest &= !x;
        }
    }
    if rest != 0 {
        parts.push(format!("unknown: {rest:#x}"));
    }
    format!("({})", parts.join(" | "))
}

/// gdb's character literal: `'a'`, `'\n'`, `'\000'`, `'\310'`.
pub(super) fn char_literal(c: u8) -> String {
    format!("'{}'", escape_char(c, b'\''))
}

fn escape_char(c: u8, quote: u8) -> String {
    match c {
        7 => "\\a".into(),
        8 => "\\b".into(),
        12 => "\\f".into(),
        b'\n' => "\\n".into(),
        b'\r' => "\\r".into(),
        b'\t' => "\\t".into(),
        11 => "\\v".into(),
        27 => "\\033".into(),
        b'\\' => "\\\\".into(),
        c if c == quote => format!("\\{}", c as char),
        0x20..=0x7e => (c as char).to_string(),
        c => format!("\\{c:03o}"),
    }
}

/// A run of bytes as one quoted string.
fn quote_run(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        s.push_str(&escape_char(c, b'"'));
    }
    s.push('"');
    s
}

/// A `char` array as gdb prints it (`print null-stop off`): quoted runs, runs of more than
/// [`REPEATS`] equal characters as `'c' <repeats N times>`, one trailing NUL dropped.
fn char_array(b: &[u8], cut: bool) -> String {
    let mut b = b;
    if !cut && b.last() == Some(&0) && !b.is_empty() {
        b = &b[..b.len() - 1];
        if b.is_empty() {
            return "\"\"".into();
        }
    }
    let mut parts = Vec::new();
    let mut run_start = 0;
    for (i, j) in runs(b) {
        if j - i > REPEATS {
            if run_start < i {
                parts.push(quote_run(&b[run_start..i]));
            }
            parts.push(format!("{} <repeats {} times>", char_literal(b[i]), j - i));
            run_start = j;
        }
    }
    if run_start < b.len() {
        parts.push(quote_run(&b[run_start..]));
    }
    let mut s = parts.join(", ");
    if cut {
        s.push_str("...");
    }
    s
}

/// Array elements with runs of more than [`REPEATS`] equal ones folded.
fn fold_repeats(items: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, j) in runs(items) {
        if j - i > REPEATS {
            out.push(format!("{} <repeats {} times>", items[i], j - i));
        } else {
            out.extend(items[i..j].iter().cloned());
        }
    }
    out
}

/// The runs of equal items, as `(start, end)` index ranges in order.
fn runs<T: PartialEq>(items: &[T]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = items.get(i)?;
        let start = i;
        while items.get(i) == Some(first) {
            i += 1;
        }
        Some((start, i))
    })
}

/// C's `%.<precision>g`, as gdb prints floating point (`%.9g` for float, `%.17g` for double).
pub(super) fn format_g(v: f64, precision: usize) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() {
            "-nan(0x8000000000000)"
        } else {
            "nan(0x8000000000000)"
        }
        .into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, v)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// An x87 80-bit extended value (the low 10 bytes, as an integer) as the nearest `f64`.
fn x87_to_f64(raw: u128) -> f64 {
    let mantissa = raw as u64;
    let se = (raw >> 64) as u16;
    let sign = if se & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from(se & 0x7fff);
    if exp == 0 && mantissa == 0 {
        return 0.0 * sign;
    }
    if exp == 0x7fff {
        return if mantissa << 1 == 0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    sign * (mantissa as f64) * 2f64.powi(exp - 16383 - 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_c_g_with_gdbs_precisions() {
        assert_eq!(format_g(2.71, 17), "2.71");
        assert_eq!(format_g(1e20, 17), "1e+20");
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
        assert_eq!(format_g(f64::from(0.1f32), 9), "0.100000001");
        assert_eq!(format_g(100.0, 17), "100");
        assert_eq!(format_g(1.0 / 3.0, 17), "0.33333333333333331");
        assert_eq!(format_g(3.25e-3, 17), "0.0032499999999999999");
        assert_eq!(format_g(1.1, 17), "1.1000000000000001");
        assert_eq!(format_g(1e-5, 17), "1.0000000000000001e-05");
        assert_eq!(format_g(1e16, 17), "10000000000000000");
        assert_eq!(format_g(-2.25, 9), "-2.25");
        assert_eq!(format_g(1.5, 18), "1.5");
        assert_eq!(x87_to_f64(0x3fff_c000_0000_0000_0000), 1.5);
    }

    #[test]
    fn chars_and_strings_escape_as_gdb_does() {
        assert_eq!(char_literal(b'a'), "'a'");
        assert_eq!(char_literal(7), "'\\a'");
        assert_eq!(char_literal(200), "'\\310'");
        assert_eq!(char_literal(0), "'\\000'");
        assert_eq!(char_literal(b'\''), "'\\''");
        assert_eq!(quote_run(b"hello\tworld\x1b"), "\"hello\\tworld\\033\"");
        let mut buf = b"abc".to_vec();
        buf.resize(16, 0);
        assert_eq!(
            char_array(&buf, false),
            "\"abc\", '\\000' <repeats 12 times>"
        );
        assert_eq!(char_array(b"ab\0", false), "\"ab\"");
    }

    #[test]
    fn enums_print_by_name_or_as_flags() {
        let v = |n: &str, x| (n.to_string(), x);
        let colors = [v("RED", 0), v("GREEN", 1), v("BLUE", 2)];
        assert_eq!(enum_text(&colors, 2), "BLUE");
        // {0, 1, 2} share no bit: gdb treats it as a flag enum too.
        assert_eq!(enum_text(&colors, 7), "(GREEN | BLUE | unknown: 0x4)");
        let counted = [v("ONE", 1), v("TWO", 2), v("THREE", 3)];
        assert_eq!(enum_text(&counted, 7), "7");
        let flags = [v("FA", 1), v("FB", 2), v("FC", 8)];
        assert_eq!(enum_text(&flags, 9), "(FA | FC)");
        assert_eq!(enum_text(&flags, 5), "(FA | unknown: 0x4)");
        assert_eq!(enum_text(&flags, 0), "0");
        assert_eq!(enum_text(&flags, 4), "(unknown: 0x4)");
    }

    #[test]
    fn runs_of_more_than_ten_fold() {
        let items: Vec<String> = std::iter::repeat("0".to_string()).take(14).collect();
        assert_eq!(fold_repeats(&items), vec!["0 <repeats 14 times>"]);
        let ten: Vec<String> = std::iter::repeat("1".to_string()).take(10).collect();
        assert_eq!(fold_repeats(&ten).len(), 10);
    }
}
