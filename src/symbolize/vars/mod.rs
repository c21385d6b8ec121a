//! Arguments and locals of a frame, as gdb's `bt`, `info args` and `info locals` show them.
//!
//! For the DIE addr2line found for each (inlined) frame at a pc: its `DW_TAG_formal_parameter`
//! children are the arguments; its `DW_TAG_variable` children and those of the lexical blocks
//! that hold the pc are the locals, the innermost block first. Each variable's location (an
//! expression, or the location-list entry covering the pc) is evaluated by gimli's
//! [`gimli::Evaluation`] against the frame's unwound registers, its CFA (for
//! `DW_OP_call_frame_cfa` frame bases), the process's memory, and for `DW_OP_entry_value` the
//! caller's `DW_TAG_call_site_parameter`. Its type ([`types`]) then says how to print the
//! bytes ([`value`]).
//!
//! Pure: memory, symbols and the caller's registers come in through [`Process`] and
//! [`FrameState`]. Bounded: a value reads at most [`value::READ_BUDGET`] bytes; damaged DWARF or
//! memory the core lacks becomes an `<error: ...>` or `<optimized out>` value, never a failure.

mod types;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

use gimli::{AttributeValue, EvaluationResult, Location, Reader as _};

use super::{LocationSections, ModuleSymbols, Reader};
use types::{type_ref, Kind, Lang, Off, Types, UnitRef};
use value::{Missing, Printer, Storage};

/// Children of one DIE read at most (members, enumerators, a function's variables).
const MAX_CHILDREN: usize = 4096;
/// DIEs walked at most in one unit scan.
const MAX_DIES: usize = 1 << 20;
/// Evaluation steps (resumptions) of one expression at most.
const MAX_STEPS: usize = 256;
/// How far past a location list's start its sections are first inflated (then 16 times
/// further each time its entries run past that).
const LIST_REACH: usize = 16 << 10;
/// Variables per frame at most.
const MAX_VARIABLES: usize = 512;

/// One argument or local variable, its value printed as gdb's `print` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Variable {
    pub name: String,
    /// gdb's short type name (`struct node *`, `const char *`, `int [3]`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// `42`, `0x0`, `{next = 0x0, v = 40}`, `<optimized out>`,
    /// `<error: Cannot access memory at address 0x10>`.
    pub value: String,
    /// A struct, union, class or array (or a reference to one): gdb's `bt` line shows it as
    /// `...` (`print frame-arguments scalars`); `print` and `bt full` show the value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aggregate: bool,
}

/// The crashed process, as variables need it.
pub trait Process {
    /// Fill `buf` from the runtime address `addr`; false when any byte is unreadable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
    /// `name` or `name+offset` of the symbol holding `addr` (functions only when `code`), as
    /// gdb prints it after a pointer: `0x401136 <fn>`, `0x4010 <table+4>`.
    fn symbol(&self, addr: u64, code: bool) -> Option<String>;
}

/// One physical frame's machine state.
pub struct FrameState<'a> {
    /// Registers by DWARF number; `None`: not recovered (caller-saved in an outer frame).
    pub regs: &'a [Option<u64>],
    /// The canonical frame address (the value of `DW_OP_call_frame_cfa`).
    pub cfa: Option<u64>,
    /// The module's load bias (runtime address − link-time address).
    pub bias: u64,
    pub little_endian: bool,
    /// A register's value on entry to the function, from the caller's call site
    /// (`DW_OP_entry_value`); `None` when it cannot be resolved.
    pub entry_value: &'a dyn Fn(u16) -> Option<u64>,
}

/// What one (inlined or physical) frame holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameVars {
    pub args: Vec<Variable>,
    /// `None` when locals were not asked for.
    pub locals: Option<Vec<Variable>>,
}

impl ModuleSymbols {
    /// The arguments (and with `locals`, the local variables) of each frame at `svma`,
    /// innermost inlined first as [`ModuleSymbols::lookup`] gives them (`None` for a frame
    /// without a DWARF function); `None` without DWARF for the address.
    ///
    /// What the DIEs say at `svma` (names, types, the location expression covering it) is
    /// worked out once and kept ([`Plan`]): threads of one program stop at the same pcs, and
    /// only the evaluation against each frame's registers differs.
    pub fn variables(
        &self,
        svma: u64,
        frame: &FrameState<'_>,
        process: &dyn Process,
        locals: bool,
    ) -> Option<Vec<Option<FrameVars>>> {
        let locs = self.location_lists();
        let cached = self.plans.borrow().get(&(svma, locals)).cloned();
        let plan = self.dwarf.as_ref()?.answer(svma, |ctx| {
            let Some(unit) = ctx.find_dwarf_and_unit(svma).skip_all_loads() else {
                return Ok(None);
            };
            let plan = match &cached {
                Some(p) => Arc::clone(p),
                None => {
                    let mut dies = Vec::new();
                    let mut it = ctx.find_frames(svma).skip_all_loads()?;
                    while let Ok(Some(f)) = it.next() {
                        if dies.len() >= 256 {
                            break;
                        }
                        dies.push(f.dw_die_offset);
                    }
                    if dies.is_empty() {
                        return Ok(None);
                    }
                    let types = TypeCache::default();
                    let scope = Scope::new(&unit, locs, svma, frame, process, &types, None);
                    let function = dies.last().copied().flatten();
                    Arc::new(Plan {
                        frames: dies
                            .iter()
                            .map(|d| d.map(|d| scope.plan_frame(d, function, locals)))
                            .collect(),
                        lang: scope.types.lang,
                        types,
                    })
                }
            };
            let scope = Scope::new(
                &unit,
                locs,
                svma,
                frame,
                process,
                &plan.types,
                Some(plan.lang),
            );
            let vars = plan
                .frames
                .iter()
                .map(|f| f.as_ref().map(|f| scope.run(f)))
                .collect();
            Ok(Some((plan, vars)))
        });
        let (plan, vars) = plan?;
        if cached.is_none() {
            self.plans.borrow_mut().insert((svma, locals), plan);
        }
        Some(vars)
    }

    /// The value register `reg` had when the call returning to `ret_svma` was made, from that
    /// call site's `DW_TAG_call_site_parameter` evaluated in the caller's frame (`caller`):
    /// what a callee's `DW_OP_entry_value(DW_OP_regN)` asks.
    pub fn call_site_value(
        &self,
        ret_svma: u64,
        reg: u16,
        caller: &FrameState<'_>,
        process: &dyn Process,
    ) -> Option<u64> {
        let probe = ret_svma.checked_sub(1)?;
        let (sites, _) = self.call_sites(probe)?;
        let site = *sites.site_by_return.get(&ret_svma)?;
        let locs = self.location_lists();
        let cached = self.site_plans.borrow().get(&(ret_svma, reg)).cloned();
        if let Some(None) = cached {
            return None; // known to have no usable value
        }
        let (plan, value) = self.dwarf.as_ref()?.answer(probe, |ctx| {
            let Some(unit) = ctx.find_dwarf_and_unit(probe).skip_all_loads() else {
                return Ok(None);
            };
            let types = TypeCache::default();
            let scope = Scope::new(&unit, locs, probe, caller, process, &types, Some(Lang::C));
            let plan = match &cached {
                Some(p) => p.clone(),
                None => {
                    let mut function = None;
                    let mut it = ctx.find_frames(probe).skip_all_loads()?;
                    while let Ok(Some(f)) = it.next() {
                        function = f.dw_die_offset;
                    }
                    scope.plan_call_site_value(site, reg, function)
                }
            };
            let value = plan
                .as_ref()
                .and_then(|(x, fb)| scope.call_site_value(x.clone(), fb.as_ref()));
            Ok(Some((plan, value)))
        })?;
        if cached.is_none() {
            self.site_plans.borrow_mut().insert((ret_svma, reg), plan);
        }
        value
    }
}

/// The type DIEs of one unit already read, shared by the plans made in it.
#[derive(Default, Clone)]
pub(super) struct TypeCache {
    kinds: Arc<std::sync::Mutex<super::FastMap<Off, Arc<Kind>>>>,
    scopes: Arc<std::sync::OnceLock<HashMap<Off, String>>>,
}

/// What the DIEs say about the frames at one pc, before any register is read.
pub(crate) struct Plan {
    frames: Vec<Option<FramePlan>>,
    lang: Lang,
    types: TypeCache,
}

/// A `DW_AT_call_value` expression and the frame base of the function it is evaluated in.
pub(crate) type SitePlan = Option<(gimli::Expression<Reader>, Option<gimli::Expression<Reader>>)>;

struct FramePlan {
    frame_base: Option<gimli::Expression<Reader>>,
    args: Vec<VarPlan>,
    locals: Option<Vec<VarPlan>>,
}

struct VarPlan {
    name: String,
    type_name: String,
    aggregate: bool,
    ty: Option<Off>,
    /// The size of the type, for values assembled from registers and pieces.
    size: Option<u64>,
    place: Place,
}

/// Where a variable is at the plan's pc.
enum Place {
    /// `DW_AT_const_value`.
    Const(Arc<Vec<Option<u8>>>),
    /// The location expression covering the pc.
    Expr(gimli::Expression<Reader>),
    /// No location covers the pc.
    OptimizedOut,
}

/// Everything needed to read variables at one pc of one unit.
struct Scope<'u, 'a, 'f> {
    unit: &'u UnitRef<'a>,
    types: Types<'u, 'a>,
    locs: Option<&'f LocationSections>,
    pc: u64,
    frame: &'f FrameState<'f>,
    process: &'f dyn Process,
}

/// How far an evaluation went.
enum Located {
    Storage(Storage),
    Missing(Missing),
    /// `DW_OP_implicit_pointer`: gdb's `<synthetic pointer>`.
    Synthetic,
}

impl<'u, 'a, 'f> Scope<'u, 'a, 'f> {
    /// `lang`: the unit's language when known (else read from its root DIE).
    fn new(
        unit: &'u UnitRef<'a>,
        locs: Option<&'f LocationSections>,
        pc: u64,
        frame: &'f FrameState<'f>,
        process: &'f dyn Process,
        types: &TypeCache,
        lang: Option<Lang>,
    ) -> Self {
        let lang = lang.unwrap_or_else(|| {
            let l = unit.entries_tree(None).ok().and_then(|mut t| {
                let root = t.root().ok()?;
                match root.entry().attr_value(gimli::DW_AT_language) {
                    Some(AttributeValue::Language(l)) => Some(l),
                    _ => None,
                }
            });
            Lang::of(l)
        });
        Scope {
            unit,
            types: Types::new(unit, lang, types.clone()),
            locs,
            pc,
            frame,
            process,
        }
    }

    /// The values of a planned frame's variables in this frame.
    fn run(&self, plan: &FramePlan) -> FrameVars {
        let fb = plan.frame_base.as_ref();
        FrameVars {
            args: plan.args.iter().map(|v| self.value_of(v, fb)).collect(),
            locals: plan
                .locals
                .as_ref()
                .map(|l| l.iter().map(|v| self.value_of(v, fb)).collect()),
        }
    }

    fn value_of(&self, v: &VarPlan, frame_base: Option<&gimli::Expression<Reader>>) -> Variable {
        let located = match &v.place {
            Place::Const(b) => Located::Storage(Storage::Bytes(Arc::clone(b))),
            Place::OptimizedOut => Located::Missing(Missing::OptimizedOut),
            Place::Expr(x) => match self.evaluate(x.clone(), frame_base, 0) {
                Ok(pieces) => self.storage(pieces, v.size),
                Err(m) => Located::Missing(m),
            },
        };
        let printer = Printer {
            types: &self.types,
            process: self.process,
            little_endian: self.frame.little_endian,
            read: std::cell::Cell::new(0),
        };
        let value = match located {
            Located::Storage(st) => printer.value(v.ty, &st, 0, 0),
            Located::Missing(m) => m.text(),
            Located::Synthetic => "<synthetic pointer>".into(),
        };
        Variable {
            name: v.name.clone(),
            type_name: v.type_name.clone(),
            value,
            aggregate: v.aggregate,
        }
    }

    /// The arguments and locals of the frame whose DIE is `die`; `function`: the physical
    /// frame's subprogram (whose frame base every inlined frame in it shares).
    fn plan_frame(&self, die: Off, function: Option<Off>, locals: bool) -> FramePlan {
        let frame_base = function.and_then(|f| self.frame_base(f));
        let mut args = Vec::new();
        let mut own = Vec::new();
        let children = self.children(die);
        for c in &children {
            if c.tag() == gimli::DW_TAG_formal_parameter && args.len() < MAX_VARIABLES {
                args.push(self.variable(c));
            }
        }
        if args.is_empty() {
            // A concrete instance with no parameter DIEs of its own: its abstract origin's,
            // all of them optimized out.
            if let Some(origin) = self.origin(die) {
                for c in self.children(origin) {
                    if c.tag() == gimli::DW_TAG_formal_parameter && args.len() < MAX_VARIABLES {
                        args.push(self.named(&c, Place::OptimizedOut));
                    }
                }
            }
        }
        let locals = locals.then(|| {
            self.block_locals(&children, &mut own, 0);
            own
        });
        FramePlan {
            frame_base,
            args,
            locals,
        }
    }

    /// The locals of a scope whose children are `children`, innermost block first, into `out`.
    fn block_locals(&self, children: &[Die], out: &mut Vec<VarPlan>, depth: usize) {
        let mut here = Vec::new();
        let mut inner = Vec::new();
        self.collect_level(children, &mut here, &mut inner, depth);
        out.extend(inner);
        out.extend(here);
        out.truncate(MAX_VARIABLES);
    }

    fn collect_level(
        &self,
        children: &[Die],
        here: &mut Vec<VarPlan>,
        inner: &mut Vec<VarPlan>,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        for c in children {
            match c.tag() {
                gimli::DW_TAG_variable if here.len() < MAX_VARIABLES => {
                    if flag(c, gimli::DW_AT_declaration) {
                        continue; // an `extern` declaration inside the function
                    }
                    here.push(self.variable(c));
                }
                gimli::DW_TAG_lexical_block => {
                    let grand = self.children(c.offset());
                    match self.contains_pc(c) {
                        // A block without addresses: its variables belong to the enclosing
                        // scope, as gdb reads them.
                        None => self.collect_level(&grand, here, inner, depth + 1),
                        Some(true) => self.block_locals(&grand, inner, depth + 1),
                        Some(false) => {}
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the DIE's address ranges hold the pc; `None` when it has none.
    fn contains_pc(&self, e: &Die) -> Option<bool> {
        if e.attr_value(gimli::DW_AT_low_pc).is_none()
            && e.attr_value(gimli::DW_AT_ranges).is_none()
        {
            return None;
        }
        let mut ranges = self.unit.die_ranges(e).ok()?;
        let mut n = 0;
        while let Ok(Some(r)) = ranges.next() {
            if r.begin <= self.pc && self.pc < r.end {
                return Some(true);
            }
            n += 1;
            if n > 4096 {
                break;
            }
        }
        Some(false)
    }

    fn children(&self, off: Off) -> Vec<Die> {
        children(self.unit, off)
    }

    /// The DIE's abstract origin or specification, within the unit.
    fn origin(&self, off: Off) -> Option<Off> {
        let e = self.unit.entry(off).ok()?;
        origin_of(self.unit, &e)
    }

    /// An attribute of the DIE or, failing that, of its origins (an inlined or out-of-line
    /// instance names its abstract DIE; a definition its declaration).
    fn inherited(&self, e: &Die, at: gimli::DwAt) -> Option<(AttributeValue<Reader>, Die)> {
        let mut cur = e.clone();
        for _ in 0..4 {
            if let Some(v) = cur.attr_value(at) {
                return Some((v, cur));
            }
            let o = origin_of(self.unit, &cur)?;
            cur = self.unit.entry(o).ok()?;
        }
        None
    }

    fn frame_base(&self, function: Off) -> Option<gimli::Expression<Reader>> {
        let e = self.unit.entry(function).ok()?;
        match e.attr_value(gimli::DW_AT_frame_base)? {
            AttributeValue::Exprloc(x) => Some(x),
            other => self.list_entry(other),
        }
    }

    /// The variable's name, type and where it is at the pc.
    fn variable(&self, e: &Die) -> VarPlan {
        let place = self.place(e);
        self.named(e, place)
    }

    fn named(&self, e: &Die, place: Place) -> VarPlan {
        let name = self
            .inherited(e, gimli::DW_AT_name)
            .and_then(|(v, _)| self.types.string(v))
            .unwrap_or_else(|| "<anonymous>".into());
        let ty = self
            .inherited(e, gimli::DW_AT_type)
            .and_then(|(_, d)| type_ref(self.unit, &d));
        VarPlan {
            name,
            type_name: self.types.name(ty),
            aggregate: self.is_aggregate(ty),
            ty,
            size: self.types.size_of(ty),
            place,
        }
    }

    /// A struct, union, class or array, or a reference to one (gdb's non-scalars).
    fn is_aggregate(&self, ty: Option<Off>) -> bool {
        let k = self.types.strip(ty).map(|(_, k)| k);
        match k.as_deref() {
            Some(Kind::Aggregate { .. } | Kind::Array { .. }) => true,
            Some(Kind::Reference { target, .. }) if self.types.lang != Lang::Rust => matches!(
                self.types.strip(*target).map(|(_, k)| k).as_deref(),
                Some(Kind::Aggregate { .. } | Kind::Array { .. })
            ),
            _ => false,
        }
    }

    /// Where the variable's value is at the pc: a constant, or the expression to evaluate.
    fn place(&self, e: &Die) -> Place {
        if let Some((v, d)) = self.inherited(e, gimli::DW_AT_const_value) {
            let size = self
                .types
                .size_of(type_ref(self.unit, &d))
                .unwrap_or(8)
                .min(16) as usize;
            let bytes: Option<Vec<u8>> = match v {
                AttributeValue::Block(b) => b.to_slice().ok().map(|s| s.to_vec()),
                AttributeValue::String(s) => s.to_slice().ok().map(|s| s.to_vec()),
                AttributeValue::Sdata(s) => Some(self.int_bytes(s as u64, size)),
                other => other.udata_value().map(|u| self.int_bytes(u, size)),
            };
            return match bytes {
                Some(b) => Place::Const(Arc::new(b.into_iter().map(Some).collect())),
                None => Place::OptimizedOut,
            };
        }
        let expr = match e.attr_value(gimli::DW_AT_location) {
            Some(AttributeValue::Exprloc(x)) => Some(x),
            Some(other) => self.list_entry(other),
            None => None,
        };
        match expr {
            Some(x) => Place::Expr(x),
            None => Place::OptimizedOut,
        }
    }

    fn int_bytes(&self, v: u64, size: usize) -> Vec<u8> {
        let b = if self.frame.little_endian {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
        if self.frame.little_endian {
            b[..size.min(8)].to_vec()
        } else {
            b[8 - size.min(8)..].to_vec()
        }
    }

    /// The expression of the location-list entry at `attr` that covers the pc. The sections
    /// are inflated only as far as the list reaches: first a little past its start, then
    /// further when its entries run past that.
    fn list_entry(&self, attr: AttributeValue<Reader>) -> Option<gimli::Expression<Reader>> {
        let src = self.locs?;
        // Where the list (or, for DWARF 5's indexed form, its offset table entry) starts.
        let start = match attr {
            AttributeValue::LocationListsRef(o) => o.0,
            AttributeValue::SecOffset(o) => o,
            AttributeValue::DebugLocListsIndex(i) => self
                .unit
                .loclists_base
                .0
                .saturating_add(i.0.saturating_mul(8)),
            _ => return None,
        };
        let mut reach = LIST_REACH;
        loop {
            let end = start.saturating_add(reach);
            let last = end >= src.len();
            match self.list_entry_in(&src.upto(end), attr.clone()) {
                Ok(found) => return found,
                Err(gimli::Error::UnexpectedEof(_)) if !last => reach = reach.saturating_mul(16),
                Err(_) => return None,
            }
        }
    }

    fn list_entry_in(
        &self,
        locs: &gimli::LocationLists<Reader>,
        attr: AttributeValue<Reader>,
    ) -> gimli::Result<Option<gimli::Expression<Reader>>> {
        let offset = match attr {
            AttributeValue::LocationListsRef(o) => o,
            AttributeValue::SecOffset(o) => gimli::LocationListsOffset(o),
            AttributeValue::DebugLocListsIndex(i) => {
                locs.get_offset(self.unit.encoding(), self.unit.loclists_base, i)?
            }
            _ => return Ok(None),
        };
        let mut it = locs.locations(
            offset,
            self.unit.encoding(),
            self.unit.low_pc,
            &self.unit.dwarf.debug_addr,
            self.unit.addr_base,
        )?;
        let mut n = 0;
        while let Some(entry) = it.next()? {
            if entry.range.begin <= self.pc && self.pc < entry.range.end {
                return Ok(Some(entry.data));
            }
            n += 1;
            if n > 65536 {
                break;
            }
        }
        Ok(None)
    }

    /// Evaluate a location expression to its pieces.
    fn evaluate(
        &self,
        expr: gimli::Expression<Reader>,
        frame_base: Option<&gimli::Expression<Reader>>,
        depth: usize,
    ) -> Result<Vec<gimli::Piece<Reader>>, Missing> {
        if depth > 4 {
            return Err(Missing::OptimizedOut);
        }
        if let Some(location) = self.simple_location(&expr, frame_base) {
            return Ok(vec![gimli::Piece {
                size_in_bits: None,
                bit_offset: None,
                location: location?,
            }]);
        }
        let fs = self.frame;
        let mut eval = expr.evaluation(self.unit.encoding());
        let bad = |_| Missing::BadDwarf;
        let mut res = eval.evaluate().map_err(bad)?;
        for _ in 0..MAX_STEPS {
            res = match res {
                EvaluationResult::Complete => return Ok(eval.result()),
                EvaluationResult::RequiresMemory {
                    address,
                    size,
                    base_type,
                    ..
                } => {
                    let n = usize::from(size).min(8);
                    let mut b = [0u8; 8];
                    if !self.process.read(address, &mut b[..n]) {
                        return Err(Missing::Memory(address));
                    }
                    let raw = if fs.little_endian {
                        u64::from_le_bytes(b)
                    } else {
                        u64::from_be_bytes(b) >> (64 - 8 * n as u32).min(63)
                    };
                    let v = self.typed(raw, base_type);
                    eval.resume_with_memory(v).map_err(bad)?
                }
                EvaluationResult::RequiresRegister {
                    register,
                    base_type,
                } => {
                    let v = fs
                        .regs
                        .get(usize::from(register.0))
                        .copied()
                        .flatten()
                        .ok_or(Missing::OptimizedOut)?;
                    eval.resume_with_register(self.typed(v, base_type))
                        .map_err(bad)?
                }
                EvaluationResult::RequiresFrameBase => {
                    let fb = frame_base.ok_or(Missing::OptimizedOut)?;
                    let pieces = self.evaluate(fb.clone(), None, depth + 1)?;
                    let base = match pieces.first().map(|p| &p.location) {
                        Some(Location::Address { address }) => *address,
                        Some(Location::Register { register }) => fs
                            .regs
                            .get(usize::from(register.0))
                            .copied()
                            .flatten()
                            .ok_or(Missing::OptimizedOut)?,
                        Some(Location::Value { value }) => {
                            value.to_u64(!0).map_err(|_| Missing::OptimizedOut)?
                        }
                        _ => return Err(Missing::OptimizedOut),
                    };
                    eval.resume_with_frame_base(base).map_err(bad)?
                }
                EvaluationResult::RequiresCallFrameCfa => {
                    let cfa = fs.cfa.ok_or(Missing::OptimizedOut)?;
                    eval.resume_with_call_frame_cfa(cfa).map_err(bad)?
                }
                EvaluationResult::RequiresEntryValue(x) => {
                    let reg = single_register(x).ok_or(Missing::OptimizedOut)?;
                    let v = (fs.entry_value)(reg).ok_or(Missing::OptimizedOut)?;
                    eval.resume_with_entry_value(gimli::Value::Generic(v))
                        .map_err(bad)?
                }
                EvaluationResult::RequiresRelocatedAddress(a) => eval
                    .resume_with_relocated_address(a.wrapping_add(fs.bias))
                    .map_err(bad)?,
                EvaluationResult::RequiresIndexedAddress { index, relocate } => {
                    let a = self.unit.address(index).map_err(bad)?;
                    let a = if relocate { a.wrapping_add(fs.bias) } else { a };
                    eval.resume_with_indexed_address(a).map_err(bad)?
                }
                EvaluationResult::RequiresBaseType(o) => {
                    let vt = self.value_type(o);
                    eval.resume_with_base_type(vt).map_err(bad)?
                }
                // Thread-local storage, DW_OP_call*, parameter references: not resolved here.
                _ => return Err(Missing::OptimizedOut),
            };
        }
        Err(Missing::OptimizedOut)
    }

    /// The commonest locations, without an evaluation: `-O0`'s `DW_OP_fbreg N` over a
    /// `DW_OP_call_frame_cfa` frame base and `DW_OP_bregR N`, `-O2`'s `DW_OP_regR` and
    /// `DW_OP_entry_value(DW_OP_regR), DW_OP_stack_value`. `None` for anything else (or a
    /// register that is not known), which gimli then evaluates.
    fn simple_location(
        &self,
        expr: &gimli::Expression<Reader>,
        frame_base: Option<&gimli::Expression<Reader>>,
    ) -> Option<Result<Location<Reader>, Missing>> {
        let bytes = expr.0.to_slice().ok()?;
        match *bytes {
            [op @ 0x50..=0x6f] => {
                return Some(Ok(Location::Register {
                    register: gimli::Register(u16::from(op - 0x50)),
                }))
            }
            // DW_OP_entry_value (or GNU's), 1 byte: DW_OP_regR; DW_OP_stack_value
            [0xa3 | 0xf3, 1, op @ 0x50..=0x6f, 0x9f] => {
                let v = (self.frame.entry_value)(u16::from(op - 0x50));
                return Some(
                    v.map(|v| Location::Value {
                        value: gimli::Value::Generic(v),
                    })
                    .ok_or(Missing::OptimizedOut),
                );
            }
            _ => {}
        }
        self.simple_address(expr, frame_base)
            .map(|address| Ok(Location::Address { address }))
    }

    /// The address `-O0`'s `DW_OP_fbreg N` (over a `DW_OP_call_frame_cfa` frame base) or
    /// `DW_OP_bregR N` names.
    fn simple_address(
        &self,
        expr: &gimli::Expression<Reader>,
        frame_base: Option<&gimli::Expression<Reader>>,
    ) -> Option<u64> {
        let mut r = expr.0.clone();
        let op = r.read_u8().ok()?;
        let (base, offset) = match op {
            // DW_OP_fbreg
            0x91 => {
                let off = r.read_sleb128().ok()?;
                let mut fb = frame_base?.0.clone();
                // DW_OP_call_frame_cfa, alone
                if fb.read_u8().ok()? != 0x9c || !fb.is_empty() {
                    return None;
                }
                (self.frame.cfa?, off)
            }
            // DW_OP_breg0..31
            0x70..=0x8f => {
                let off = r.read_sleb128().ok()?;
                let reg = usize::from(op - 0x70);
                (self.frame.regs.get(reg).copied().flatten()?, off)
            }
            _ => return None,
        };
        r.is_empty().then(|| base.wrapping_add_signed(offset))
    }

    fn value_type(&self, o: Off) -> gimli::ValueType {
        match &*self.types.get(o) {
            Kind::Base { encoding, size, .. } => gimli::ValueType::from_encoding(*encoding, *size)
                .unwrap_or(gimli::ValueType::Generic),
            _ => gimli::ValueType::Generic,
        }
    }

    fn typed(&self, raw: u64, base_type: Off) -> gimli::Value {
        if base_type.0 == 0 {
            return gimli::Value::Generic(raw);
        }
        let vt = self.value_type(base_type);
        let bytes = raw.to_le_bytes();
        let r = gimli::EndianSlice::new(&bytes, gimli::LittleEndian);
        gimli::Value::parse(vt, r).unwrap_or(gimli::Value::Generic(raw))
    }

    /// The pieces as bytes to print from.
    fn storage(&self, pieces: Vec<gimli::Piece<Reader>>, size: Option<u64>) -> Located {
        let word = usize::from(self.unit.encoding().address_size).max(1);
        if let [p] = &pieces[..] {
            if p.size_in_bits.is_none() {
                return match &p.location {
                    Location::Address { address } => Located::Storage(Storage::Memory(*address)),
                    Location::Empty => Located::Missing(Missing::OptimizedOut),
                    Location::ImplicitPointer { .. } => Located::Synthetic,
                    other => match self.piece_bytes(other, size.map_or(word, |s| s as usize)) {
                        Some(b) => Located::Storage(Storage::Bytes(Arc::new(b))),
                        None => Located::Missing(Missing::OptimizedOut),
                    },
                };
            }
        }
        let mut out: Vec<Option<u8>> = Vec::new();
        for p in &pieces {
            let bits = p.size_in_bits.unwrap_or(8 * word as u64);
            let n = (bits.div_ceil(8) as usize).min(value::READ_BUDGET);
            if let Location::ImplicitPointer { .. } = p.location {
                return Located::Synthetic;
            }
            match self.piece_bytes(&p.location, n) {
                Some(b) => out.extend(b),
                None => out.extend(std::iter::repeat(None).take(n)),
            }
            if out.len() > value::READ_BUDGET {
                break;
            }
        }
        Located::Storage(Storage::Bytes(Arc::new(out)))
    }

    /// `n` bytes of one piece's location (`None` entries where unavailable).
    fn piece_bytes(&self, loc: &Location<Reader>, n: usize) -> Option<Vec<Option<u8>>> {
        let le = self.frame.little_endian;
        let from_u64 = |v: u64| -> Vec<Option<u8>> {
            let b = if le { v.to_le_bytes() } else { v.to_be_bytes() };
            let mut out: Vec<Option<u8>> = if le {
                b.iter().map(|&x| Some(x)).collect()
            } else {
                b[8usize.saturating_sub(n)..]
                    .iter()
                    .map(|&x| Some(x))
                    .collect()
            };
            out.resize(n, None);
            out
        };
        match loc {
            Location::Register { register } => {
                let v = self
                    .frame
                    .regs
                    .get(usize::from(register.0))
                    .copied()
                    .flatten()?;
                Some(from_u64(v))
            }
            Location::Value { value } => Some(match *value {
                gimli::Value::F32(f) => from_u64(u64::from(f.to_bits())),
                gimli::Value::F64(f) => from_u64(f.to_bits()),
                v => from_u64(v.to_u64(!0).ok()?),
            }),
            Location::Bytes { value } => {
                let s = value.to_slice().ok()?;
                let mut out: Vec<Option<u8>> = s.iter().map(|&b| Some(b)).collect();
                out.resize(n, None);
                Some(out)
            }
            Location::Address { address } => {
                let mut buf = vec![0u8; n];
                self.process
                    .read(*address, &mut buf)
                    .then(|| buf.into_iter().map(Some).collect())
            }
            _ => None,
        }
    }

    /// The `DW_AT_call_value` of the call site `site`'s parameter whose location is register
    /// `reg`, and the frame base of `function` (the caller) it may need.
    fn plan_call_site_value(&self, site: Off, reg: u16, function: Option<Off>) -> SitePlan {
        for c in self.children(site) {
            if c.tag() != gimli::DW_TAG_call_site_parameter
                && c.tag() != gimli::DW_TAG_GNU_call_site_parameter
            {
                continue;
            }
            let Some(AttributeValue::Exprloc(loc)) = c.attr_value(gimli::DW_AT_location) else {
                continue;
            };
            if single_register(loc) != Some(reg) {
                continue;
            }
            let value = c
                .attr_value(gimli::DW_AT_call_value)
                .or_else(|| c.attr_value(gimli::DW_AT_GNU_call_site_value));
            let Some(AttributeValue::Exprloc(x)) = value else {
                return None;
            };
            return Some((x, function.and_then(|f| self.frame_base(f))));
        }
        None
    }

    /// A `DW_AT_call_value` evaluated in this (the caller's) frame.
    fn call_site_value(
        &self,
        x: gimli::Expression<Reader>,
        frame_base: Option<&gimli::Expression<Reader>>,
    ) -> Option<u64> {
        let pieces = self.evaluate(x, frame_base, 1).ok()?;
        match pieces.first().map(|p| &p.location)? {
            Location::Address { address } => Some(*address),
            Location::Value { value } => value.to_u64(!0).ok(),
            Location::Register { register } => self
                .frame
                .regs
                .get(usize::from(register.0))
                .copied()
                .flatten(),
            _ => None,
        }
    }
}

type Die = gimli::DebuggingInformationEntry<Reader>;

/// The children of the DIE at `off`, at most [`MAX_CHILDREN`].
fn children(unit: &UnitRef<'_>, off: Off) -> Vec<Die> {
    let mut out = Vec::new();
    let Ok(mut tree) = unit.entries_tree(Some(off)) else {
        return out;
    };
    let Ok(root) = tree.root() else {
        return out;
    };
    let mut children = root.children();
    while let Ok(Some(c)) = children.next() {
        if out.len() >= MAX_CHILDREN {
            break;
        }
        out.push(c.entry().clone());
    }
    out
}

fn flag(e: &Die, at: gimli::DwAt) -> bool {
    matches!(e.attr_value(at), Some(AttributeValue::Flag(true)))
}

fn origin_of(unit: &UnitRef<'_>, e: &Die) -> Option<Off> {
    let v = e
        .attr_value(gimli::DW_AT_abstract_origin)
        .or_else(|| e.attr_value(gimli::DW_AT_specification))?;
    match v {
        AttributeValue::UnitRef(o) => Some(o),
        AttributeValue::DebugInfoRef(d) => d.to_unit_offset(&unit.header),
        _ => None,
    }
}

/// The register an expression that is exactly `DW_OP_regN` (or `DW_OP_regx N`) names.
fn single_register(x: gimli::Expression<Reader>) -> Option<u16> {
    let mut r = x.0;
    let op = r.read_u8().ok()?;
    let reg = match op {
        0x50..=0x6f => u16::from(op - 0x50),
        0x90 => u16::try_from(r.read_uleb128().ok()?).ok()?,
        _ => return None,
    };
    r.is_empty().then_some(reg)
}
