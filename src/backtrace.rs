//! The entry point of unwinding and symbolization: a parsed core in, an owned backtrace of every
//! thread out (no gimli or goblin lifetimes), as gdb's `thread apply all bt` would show it.
//!
//! Order of work: modules from the core ([`crate::modules`]); per module, the file on disk and its
//! debug file ([`crate::symbolize::loader`], the only I/O), checked against the build-id in the
//! core; unwind every thread ([`crate::unwind`], CFI only); then the modules that frames land in
//! are symbolized side by side, shared out among one thread per CPU (`symbolize_in_parallel`),
//! a compressed `.debug_info` inflating ahead on a thread of its own; last, each
//! physical frame becomes its inlined frames ([`crate::symbolize`]) in thread order. DWARF is
//! decoded lazily, only for modules that frames land in.
//! Files missing on disk can be asked for by build-id through [`Options::fetcher`] (debuginfod,
//! `remote::debuginfod`): once, for every module at once, after the modules are prepared and
//! before any thread is unwound, so a fetched executable gives CFI too.
//! Nothing here fails: what could not be done becomes a warning or a [`StopReason`].

use std::cell::OnceCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::elf_core::Core;
use crate::link_map;
use crate::modules::{self, hex, Module, ModuleKind, SearchPaths};
use crate::symbolize::loader::{self, LoadedObject};
use crate::symbolize::{CallTarget, FastMap, ModuleSymbols, SymFrame};
use crate::unwind::{self, CfiSections, Limits, MemoryReader, Section, UnwindModule};

pub use crate::symbolize::Variable;
pub use crate::unwind::{FrameTrust, StopReason};

/// What to look for and how long to try.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directories used like `/usr/lib/debug` (searched before it).
    pub debug_dirs: Vec<PathBuf>,
    /// Prefixed to every path the core names, and to `/usr/lib/debug`.
    pub sysroot: Option<PathBuf>,
    /// Use this file for the main executable instead of the path in the core.
    pub exe_override: Option<PathBuf>,
    /// Objects by build-id ([`SearchPaths::object_dirs`]), searched first.
    pub object_dirs: Vec<PathBuf>,
    /// Physical frames per thread at most.
    pub max_frames: usize,
    /// Past this instant, stop walking (keeping what was found) with [`StopReason::Timeout`].
    pub deadline: Option<Instant>,
    /// Read every DWARF frame's arguments ([`Frame::args`]).
    pub args: bool,
    /// Whose frames' locals are read ([`Frame::locals`]).
    pub locals: Locals,
    /// Where files missing on disk are asked for by build-id (debuginfod); `None`: nowhere.
    pub fetcher: Option<Arc<dyn Fetcher>>,
}

/// What a [`Fetcher`] is asked for, as debuginfod's `/buildid/ID/debuginfo` and
/// `/buildid/ID/executable` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchKind {
    /// The separate debug file (DWARF, the full symbol table).
    Debuginfo,
    /// The executable or shared library itself (CFI, symbols, maybe DWARF).
    Executable,
}

impl FetchKind {
    /// The last part of the request path, and the file's name in the cache.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchKind::Debuginfo => "debuginfo",
            FetchKind::Executable => "executable",
        }
    }
}

/// One file asked for: the build-id (raw bytes) and which file of that build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub build_id: Vec<u8>,
    pub kind: FetchKind,
}

/// A [`Fetcher`]'s answer to a list of requests.
#[derive(Debug, Default)]
pub struct Fetched {
    /// One per request, in the requests' order: a local file holding it, else `None`.
    pub files: Vec<Option<PathBuf>>,
    /// One line per failure (a server, a build-id and why).
    pub warnings: Vec<String>,
}

/// Files by build-id from elsewhere than the search paths (debuginfod servers). One synchronous
/// call per core with everything it lacks, so the implementation can ask in parallel; it never
/// fails as a whole and must not run past `deadline`.
pub trait Fetcher: Send + Sync + std::fmt::Debug {
    fn fetch(&self, requests: &[FetchRequest], deadline: Option<Instant>) -> Fetched;
}

/// Whose frames' local variables are read (gdb's `bt full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locals {
    #[default]
    None,
    /// The crashed thread's frames only (what `run` and `collect` report by default).
    Crashed,
    /// Every thread's (`--full`).
    All,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            debug_dirs: Vec::new(),
            sysroot: None,
            exe_override: None,
            object_dirs: Vec::new(),
            max_frames: 1024,
            deadline: None,
            args: true,
            locals: Locals::None,
            fetcher: None,
        }
    }
}

/// Backtraces of every thread of a core.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backtraces {
    /// In the core's thread order (the crashed thread first, as the kernel writes it).
    pub threads: Vec<ThreadBacktrace>,
    /// glibc's message for a failed `assert()` (or `abort()` with a message), read through
    /// `__abort_msg` in the core's memory: "main.c:3: main: Assertion `x' failed."
    pub abort_message: Option<String>,
    pub modules: Vec<ModuleInfo>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreadBacktrace {
    pub tid: i32,
    /// This thread received the fatal signal ([`Core::crashed_thread`]).
    pub crashed: bool,
    /// Innermost first; inlined frames precede the physical frame they are inlined into.
    pub frames: Vec<Frame>,
    pub stop: StopReason,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    /// The frame's pc (for a caller, the return address; it is symbolized at pc − 1).
    pub pc: u64,
    /// Path of the module the pc lies in.
    pub module: Option<String>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// An inlined call, not a frame on the stack; shares `pc` with the physical frame after it.
    pub inlined: bool,
    pub trust: FrameTrust,
    /// Offset from the ELF symbol's start when the name came from the symbol table.
    pub symbol_offset: Option<u64>,
    /// A sigreturn trampoline (gdb prints `<signal handler called>`).
    pub signal_trampoline: bool,
    /// The function's parameters in declaration order, as gdb's `bt` and `info args` show
    /// them: `None` where the frame has no DWARF function (or they were not asked for).
    pub args: Option<Vec<Variable>>,
    /// Its local variables, innermost lexical block first, as `info locals` lists them:
    /// `None` where the frame has no DWARF function or they were not asked for.
    pub locals: Option<Vec<Variable>>,
}

/// How far a module's file could be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleStatus {
    /// File found and its build-id matches the core's (or one of them has none).
    Loaded,
    /// The file could not be opened or is not ELF: no CFI, no symbols.
    NotFound,
    /// The file on disk is a different build: its CFI and symbols are not used.
    BuildIdMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    /// The path the core names (`[vdso]` for the vDSO).
    pub path: String,
    pub start: u64,
    pub end: u64,
    /// Hex build-id from the core's memory, else from the file.
    pub build_id: Option<String>,
    /// The separate debug file used, if any.
    pub debug_file: Option<String>,
    /// The file read for it on this machine (not for the vDSO), when its build-id matched.
    pub file: Option<String>,
    pub status: ModuleStatus,
}

/// A module with its files and owned unwind data, symbols decoded on first use.
struct Prepared {
    module: Module,
    bias: u64,
    status: ModuleStatus,
    cfi: CfiSections,
    object: Option<LoadedObject>,
    debug: Option<LoadedObject>,
    symbols: OnceCell<(ModuleSymbols, Vec<String>)>,
    /// The warning that said this module's file is missing or a different build, taken back
    /// when a [`Fetcher`] supplies the right one.
    missing: Option<String>,
    /// Answers to the lookups of this module's frames, by SVMA, filled by [`Prepared::warm`].
    answers: FastMap<u64, Vec<SymFrame>>,
}

impl Prepared {
    fn symbols(&self) -> Option<&ModuleSymbols> {
        self.symbols_for(&[])
    }

    /// The module's symbols, decoded on first use; `probes` (SVMAs about to be looked up) let a
    /// compressed `.debug_info` start inflating as far as they need ([`ModuleSymbols::new`]).
    fn symbols_for(&self, probes: &[u64]) -> Option<&ModuleSymbols> {
        let obj = self.object.as_ref()?;
        let (s, _) = self.symbols.get_or_init(|| {
            let file = if obj.info.has_debug_info() {
                Some(obj)
            } else {
                self.debug.as_ref()
            };
            let bytes = file.map(|f| -> crate::symbolize::SharedBytes { f.data.clone() });
            let dwarf = file.zip(bytes.as_ref()).map(|(f, b)| (&f.info, b));
            let mut tabs = vec![&obj.info];
            if let Some(d) = &self.debug {
                tabs.push(&d.info);
            }
            ModuleSymbols::new(dwarf, &tabs, probes)
        });
        Some(s)
    }

    /// The frames at `svma`: the answer [`Prepared::warm`] found, else looked up now.
    fn lookup(&self, svma: u64) -> Option<Vec<SymFrame>> {
        match self.answers.get(&svma) {
            Some(a) => Some(a.clone()),
            None => Some(self.symbols()?.lookup(svma)),
        }
    }

    /// Decode this module's symbols, answer `lookups` (SVMAs) into [`Prepared::answers`] and
    /// index the call sites of the calls returning to `returns`: the module's share of the
    /// work, done on a thread of its own while other modules do theirs. Past `deadline` it
    /// stops; what is left is looked up (or skipped) when the frames are put together.
    fn warm(&mut self, work: ModuleWork, deadline: Option<Instant>) {
        let past = || deadline.is_some_and(|d| Instant::now() >= d);
        if past() {
            return;
        }
        let Some(syms) = self.symbols_for(&work.lookups) else {
            return;
        };
        let mut answers = FastMap::with_capacity_and_hasher(work.lookups.len(), Default::default());
        for svma in work.lookups {
            if past() {
                break;
            }
            answers.insert(svma, syms.lookup(svma));
        }
        for ret in work.returns {
            if past() {
                break;
            }
            let _ = syms.call_target(ret);
        }
        self.answers = answers;
    }
}

/// What one module is asked about: the SVMAs its frames are looked up at and the return
/// addresses (SVMAs) whose calls may hide a tail-call frame. Sorted, without repeats.
#[derive(Default, Clone)]
struct ModuleWork {
    lookups: Vec<u64>,
    returns: Vec<u64>,
}

impl ModuleWork {
    fn is_empty(&self) -> bool {
        self.lookups.is_empty() && self.returns.is_empty()
    }
}

/// Symbolize every module that frames land in, the modules shared out among one thread per CPU:
/// a Rust executable's DWARF and libc's compressed debug file are decoded side by side instead
/// of one after the other. Each module is owned (`&mut`) by the one thread that took it, so the
/// lazily built contexts stay single-threaded and only the list of modules is locked.
fn symbolize_in_parallel<'w>(
    prepared: &mut [Prepared],
    walks: impl Iterator<Item = &'w [unwind::RawFrame]>,
    deadline: Option<Instant>,
) {
    let mut work = vec![ModuleWork::default(); prepared.len()];
    for frames in walks {
        let mut after_callee = false;
        for raw in frames {
            let lookup = raw.address.lookup();
            if let Some(i) = index_at(prepared, lookup) {
                let bias = prepared[i].bias;
                work[i].lookups.push(lookup.wrapping_sub(bias));
                // A return address is looked up at `ret - 1`: same module as the lookup.
                if let (true, unwind::CodeAddress::ReturnAddress(ret)) = (after_callee, raw.address)
                {
                    work[i].returns.push(ret.wrapping_sub(bias));
                }
            }
            after_callee = !raw.signal_trampoline;
        }
    }
    let mut jobs: Vec<(&mut Prepared, ModuleWork)> = prepared
        .iter_mut()
        .zip(work)
        .filter(|(p, w)| p.object.is_some() && !w.is_empty())
        .map(|(p, mut w)| {
            for v in [&mut w.lookups, &mut w.returns] {
                v.sort_unstable();
                v.dedup();
            }
            (p, w)
        })
        .collect();
    let cost = |p: &Prepared| {
        let size =
            |o: &Option<LoadedObject>| o.as_ref().map_or(0, |o| o.data.as_ref().as_ref().len());
        size(&p.object) + size(&p.debug)
    };
    jobs.sort_by_key(|(p, _)| std::cmp::Reverse(cost(p)));
    // As many threads as CPUs (this one included), each taking the next module off the list,
    // biggest first: a program with twenty libraries on the stack does not get twenty threads
    // (and twenty malloc arenas).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let helpers = cpus.min(jobs.len()).saturating_sub(1);
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let work = || loop {
        let next = queue.lock().map(|mut q| q.next());
        let Ok(Some((p, w))) = next else {
            return;
        };
        p.warm(w, deadline);
    };
    std::thread::scope(|s| {
        for _ in 0..helpers {
            // A thread that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(s, work);
        }
        work();
    });
}

/// Unwind and symbolize every thread of `core`.
pub fn backtrace(core: &Core<'_>, opts: &Options) -> Backtraces {
    let mut warnings = Vec::new();
    let search = SearchPaths {
        debug_dirs: opts.debug_dirs.clone(),
        sysroot: opts.sysroot.clone(),
        object_dirs: opts.object_dirs.clone(),
    };
    let (mods, w) = modules::modules_from_core(core);
    warnings.extend(w);
    let exe = core.executable();
    let placed = placed_executable(core, &mods, exe.as_deref(), opts, &search);
    let mut prepared: Vec<Prepared> = mods
        .into_iter()
        .filter_map(|m| prepare(core, m, exe.as_deref(), opts, &search, &mut warnings))
        .collect();
    if let Some((m, o)) = placed {
        prepared.extend(prepare_loaded(m, Ok(o), &search, &mut warnings));
    }
    for (m, o) in linked_modules(
        core,
        &prepared,
        exe.as_deref(),
        opts,
        &search,
        &mut warnings,
    ) {
        prepared.extend(prepare_loaded(m, Ok(o), &search, &mut warnings));
    }
    if let Some(f) = &opts.fetcher {
        let until = opts.deadline.map(fetch_deadline);
        fetch_missing(f.as_ref(), &mut prepared, &search, until, &mut warnings);
    }
    prepared.sort_by_key(|p| p.module.start);

    let crashed_tid = core.crashed_thread().map(|t| t.tid);
    // Unwinding needs only CFI; every thread is walked before any symbol is decoded, so the
    // modules' symbolization can then run side by side.
    let mut timed_out = false;
    let walks: Vec<(ThreadBacktrace, Vec<unwind::RawFrame>)> = {
        let unwind_modules: Vec<UnwindModule<'_>> = prepared
            .iter()
            .map(|p| UnwindModule {
                start: p.module.start,
                end: p.module.end,
                bias: p.bias,
                cfi: &p.cfi,
            })
            .collect();
        let code = CodeReader {
            core,
            modules: &prepared,
        };
        core.threads
            .iter()
            .map(|t| {
                let mut tb = ThreadBacktrace {
                    tid: t.tid,
                    crashed: Some(t.tid) == crashed_tid,
                    frames: Vec::new(),
                    stop: StopReason::NoRegisters,
                };
                if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                    tb.stop = StopReason::Timeout;
                    return (tb, Vec::new());
                }
                let Some(regs) = &t.registers else {
                    return (tb, Vec::new());
                };
                let u = unwind::unwind_thread(
                    regs,
                    &unwind_modules,
                    &core.memory,
                    &code,
                    Limits {
                        max_frames: opts.max_frames.max(1),
                        deadline: opts.deadline,
                    },
                );
                tb.stop = u.stop;
                (tb, u.frames)
            })
            .collect()
    };
    symbolize_in_parallel(
        &mut prepared,
        walks.iter().map(|(_, f)| &f[..]),
        opts.deadline,
    );
    // Threads of one program share most return addresses; call-site DWARF is read once each.
    let mut tail_calls: FastMap<(u64, u64), Option<Frame>> = FastMap::default();
    let mut threads = Vec::new();
    let code = CodeReader {
        core,
        modules: &prepared,
    };
    let memo = EntryMemo::default();
    for (mut tb, raw_frames) in walks {
        timed_out |= tb.stop == StopReason::Timeout;
        let mut callee: Option<u64> = None;
        let locals = match opts.locals {
            Locals::None => false,
            Locals::Crashed => tb.crashed,
            Locals::All => true,
        };
        let mut jobs: Vec<VarJob> = Vec::new();
        for (i, raw) in raw_frames.iter().enumerate() {
            // Past the deadline, only modules whose symbols are already decoded are used:
            // decoding a large debug file is the slowest step.
            let late = opts.deadline.is_some_and(|d| Instant::now() >= d);
            timed_out |= late;
            if let (Some(c), unwind::CodeAddress::ReturnAddress(ret), false) =
                (callee, raw.address, late)
            {
                let f = tail_calls
                    .entry((c, ret))
                    .or_insert_with(|| tail_call_frame(&prepared, c, ret));
                if let Some(f) = f.clone() {
                    let gone = tail_raw(&f, raw);
                    tb.frames.push(f);
                    if opts.args {
                        // No registers survive a tail call; its arguments come from the
                        // entry values its caller (this frame) passed, as gdb reads them.
                        let at = tb.frames.len() - 1;
                        jobs.push(VarJob {
                            frames: at..at + 1,
                            raw: gone,
                            caller: Some(raw.clone()),
                            callers_from: i + 1,
                        });
                    }
                }
            }
            callee = (!raw.signal_trampoline).then(|| raw.address.lookup());
            let first = tb.frames.len();
            symbolize_frame(&prepared, raw, late, &mut tb.frames);
            if opts.args && !late {
                let mut caller = raw_frames.get(i + 1).cloned();
                // With a tail-call frame between, the real caller comes after it.
                let mut callers_from = (i + 2).min(raw_frames.len());
                // A tail-call frame will stand between this frame and its caller: the call
                // that reached this function is that frame's tail call, whose parameters say
                // what it passed (registers themselves are gone).
                if let Some(c) = &caller {
                    if let (false, unwind::CodeAddress::ReturnAddress(ret)) =
                        (raw.signal_trampoline, c.address)
                    {
                        let key = (raw.address.lookup(), ret);
                        let f = tail_calls
                            .entry(key)
                            .or_insert_with(|| tail_call_frame(&prepared, key.0, ret));
                        if let Some(f) = f {
                            caller = Some(tail_raw(f, c));
                            callers_from = i + 1;
                        }
                    }
                }
                jobs.push(VarJob {
                    frames: first..tb.frames.len(),
                    raw: raw.clone(),
                    caller,
                    callers_from,
                });
            }
        }
        // Outermost first: a frame's entry values come from its caller's, which are then
        // already known, so a value passed down a deep recursion is found once per frame
        // instead of a chain walk from every frame. Past the deadline the rest go without.
        for job in jobs.iter().rev() {
            if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
                break;
            }
            add_variables(
                &prepared,
                &code,
                (
                    &job.raw,
                    job.caller.as_ref(),
                    &raw_frames[job.callers_from..],
                ),
                locals,
                &memo,
                &mut tb.frames[job.frames.clone()],
            );
        }
        threads.push(tb);
    }
    if timed_out {
        warnings.push("deadline passed: some backtraces are incomplete".into());
    }
    for p in &prepared {
        if let Some((_, w)) = p.symbols.get() {
            warnings.extend(w.iter().map(|w| format!("{}: {w}", p.module.path)));
        }
    }
    let modules = prepared
        .iter()
        .map(|p| ModuleInfo {
            path: p.module.path.clone(),
            start: p.module.start,
            end: p.module.end,
            build_id: p
                .module
                .build_id
                .as_deref()
                .or(p.object.as_ref().and_then(|o| o.info.build_id.as_deref()))
                .map(hex),
            debug_file: p.debug.as_ref().map(|d| d.path.display().to_string()),
            file: p
                .object
                .as_ref()
                .filter(|_| p.module.kind == ModuleKind::File)
                .map(|o| o.path.display().to_string()),
            status: p.status,
        })
        .collect();
    let b = Backtraces {
        abort_message: abort_message(core, &prepared),
        threads,
        modules,
        warnings,
    };
    // Freeing a whole-file DWARF context is hundreds of thousands of small frees (9 ms of a
    // ripgrep release backtrace): a helper thread does it while the report is written. If no
    // thread can be started, the closure (and `prepared` with it) is dropped right here.
    let _ = std::thread::Builder::new().spawn(move || drop(prepared));
    b
}

/// `auxv`'s AT_ENTRY: the entry point's runtime address.
const AT_ENTRY: u64 = 9;

/// The executable placed where the core's auxv says it was loaded (`AT_ENTRY` − its `e_entry`
/// is the bias), when no NT_FILE mapping covers that place: cores of kernels before 3.7, QEMU's
/// and other dumpers' lack NT_FILE. The file is `--exe`, else the path in `AT_EXECFN` (as
/// given, then under the sysroot). A static executable then needs nothing else; a dynamic one's
/// libraries come from the link map ([`linked_modules`]).
fn placed_executable(
    core: &Core<'_>,
    mods: &[Module],
    exe: Option<&str>,
    opts: &Options,
    search: &SearchPaths,
) -> Option<(Module, LoadedObject)> {
    let entry = core.auxv.get(AT_ENTRY).filter(|&e| e != 0)?;
    if mods.iter().any(|m| m.contains(entry)) {
        return None;
    }
    let (path, obj) = match &opts.exe_override {
        Some(path) => (path.clone(), loader::load(path).ok()?),
        None => {
            let named = PathBuf::from(exe?);
            let mut candidates = vec![named.clone()];
            candidates.extend(search.candidates(exe?, None, None));
            candidates.dedup();
            (named, load_first(candidates).ok()?)
        }
    };
    let bias = entry.wrapping_sub(obj.info.entry);
    let (lo, hi) = obj.info.load_span?;
    let base = obj.info.load_vaddr.unwrap_or(lo).wrapping_add(bias);
    let module = Module {
        path: path.display().to_string(),
        kind: ModuleKind::File,
        start: lo.wrapping_add(bias),
        end: hi.wrapping_add(bias),
        base,
        bias: Some(bias),
        build_id: modules::build_id_at(core, base),
    };
    Some((module, obj))
}

/// The libraries the dynamic linker's list (`r_debug` / `link_map`, through the executable's
/// `DT_DEBUG`) names that no other module describes: a core without NT_FILE names none of them.
/// Each is placed at its `l_addr` and loaded from the path in the list (under the sysroot), else
/// from beside the executable; one that cannot be found is named in the warnings.
fn linked_modules(
    core: &Core<'_>,
    prepared: &[Prepared],
    exe: Option<&str>,
    opts: &Options,
    search: &SearchPaths,
    warnings: &mut Vec<String>,
) -> Vec<(Module, LoadedObject)> {
    let main = core
        .auxv
        .get(AT_ENTRY)
        .and_then(|entry| prepared.iter().find(|p| p.module.contains(entry)));
    let Some(dynamic) = main.and_then(|p| {
        let section = p.object.as_ref()?.info.section(".dynamic")?;
        Some(section.addr.wrapping_add(p.bias))
    }) else {
        return Vec::new(); // no executable, or a static one
    };
    let Some(r_debug) = link_map::r_debug(core, dynamic) else {
        return Vec::new();
    };
    let (list, error) = link_map::entries(core, r_debug);
    if let Some(e) = error {
        warnings.push(format!("the dynamic linker's list of libraries: {e}"));
    }
    let dir = exe_dir(exe, opts, search);
    let mut out: Vec<(Module, LoadedObject)> = Vec::new();
    for e in list {
        let known = |m: &Module| m.contains(e.dynamic) || m.path == e.name;
        if e.name.is_empty()
            || prepared.iter().any(|p| known(&p.module))
            || out.iter().any(|(m, _)| known(m))
            || core.files.iter().any(|f| f.path == e.name)
        {
            continue;
        }
        let object = match load_first(search.candidates(&e.name, None, dir.as_deref())) {
            Ok(o) => o,
            // The kernel's vDSO is in the list by its soname; it has no file.
            Err(_) if e.name.starts_with("linux-") && !e.name.contains('/') => continue,
            Err(err) => {
                warnings.push(format!(
                    "{}: named by the dynamic linker's list at bias {:#x}: {err}; it is left out",
                    e.name, e.bias
                ));
                continue;
            }
        };
        let Some((lo, hi)) = object.info.load_span else {
            continue;
        };
        let base = object.info.load_vaddr.unwrap_or(lo).wrapping_add(e.bias);
        let module = Module {
            path: e.name.clone(),
            kind: ModuleKind::File,
            start: lo.wrapping_add(e.bias),
            end: hi.wrapping_add(e.bias),
            base,
            bias: Some(e.bias),
            build_id: modules::build_id_at(core, base),
        };
        out.push((module, object));
    }
    out
}

/// Longest abort message read (glibc's are one line; the bound keeps garbage cheap).
const MAX_ABORT_MESSAGE: usize = 4096;

/// glibc's `__abort_msg`: a pointer, set just before `abort()` by `__assert_fail` and friends, to
/// `struct abort_msg_s { unsigned int size; char msg[]; }` in an anonymous mapping. Found through
/// the symbol in libc (or its debug file), read from the core's memory: SVMA + bias, then the
/// pointer, then the string. `None` when no module defines it, it is null, or memory is missing.
fn abort_message(core: &Core<'_>, prepared: &[Prepared]) -> Option<String> {
    prepared.iter().find_map(|p| {
        if p.status != ModuleStatus::Loaded {
            return None; // a different build's symbol addresses mean nothing in this core
        }
        let svma = [p.object.as_ref(), p.debug.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|o| {
                o.info
                    .data_symbols
                    .iter()
                    .find(|(n, _)| n == "__abort_msg")
                    .map(|&(_, a)| a)
            })?;
        let ptr = core.read_word(svma.wrapping_add(p.bias))?;
        if ptr == 0 {
            return None;
        }
        let msg = core
            .memory
            .read_cstr(ptr.checked_add(4)?, MAX_ABORT_MESSAGE)?;
        let msg = msg.trim_end().to_string();
        (!msg.is_empty()).then_some(msg)
    })
}

fn prepare(
    core: &Core<'_>,
    module: Module,
    exe: Option<&str>,
    opts: &Options,
    search: &SearchPaths,
    warnings: &mut Vec<String>,
) -> Option<Prepared> {
    let loaded = load_module(core, &module, exe, opts, search);
    prepare_loaded(module, loaded, search, warnings)
}

/// The file of `module`: the vDSO's image from the core, `--exe` for the executable, else the
/// path the core names, then the same file name beside the executable.
fn load_module(
    core: &Core<'_>,
    module: &Module,
    exe: Option<&str>,
    opts: &Options,
    search: &SearchPaths,
) -> Result<LoadedObject, String> {
    match module.kind {
        ModuleKind::Vdso => {
            let bytes = usize::try_from(module.end - module.start)
                .ok()
                .and_then(|len| core.memory.slice_at(module.start, len))
                .ok_or("vDSO image is not in the core")?;
            loader::from_bytes(&module.path, bytes.to_vec())
                .ok_or_else(|| "vDSO image is not ELF".into())
        }
        ModuleKind::File => match (&opts.exe_override, exe) {
            (Some(o), Some(e)) if e == module.path => loader::load(o).map_err(|e| e.to_string()),
            _ => load_first(search.candidates(
                &module.path,
                module.build_id.as_deref(),
                exe_dir(exe, opts, search).as_deref(),
            )),
        },
    }
}

/// The executable's directory on this machine, where a program's own libraries usually are.
fn exe_dir(exe: Option<&str>, opts: &Options, search: &SearchPaths) -> Option<PathBuf> {
    opts.exe_override
        .as_deref()
        .map(PathBuf::from)
        .or_else(|| exe.map(|e| search.host_path(&modules::normalize(e))))
        .and_then(|e| e.parent().map(PathBuf::from))
}

/// The first of `candidates` that loads, else the first one's error.
fn load_first(candidates: Vec<PathBuf>) -> Result<LoadedObject, String> {
    let mut first_error = None;
    for path in candidates {
        match loader::load(&path) {
            Ok(o) => return Ok(o),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "not found".into()))
}

/// A module with its file (or why there is none): the build-id check, its debug file, its CFI.
fn prepare_loaded(
    module: Module,
    loaded: Result<LoadedObject, String>,
    search: &SearchPaths,
    warnings: &mut Vec<String>,
) -> Option<Prepared> {
    let object = match loaded {
        Ok(o) => o,
        Err(e) => {
            // Without a header in the core and without the file we cannot even tell whether
            // this mapping was an ELF object; a mapping of a file that is not there at all
            // (no header in the core either) is still named: it may be the library a frame
            // is in.
            if module.bias.is_none() {
                if module.end.saturating_sub(module.start) > 0
                    && !search.host_path(&modules::normalize(&module.path)).exists()
                {
                    warnings.push(format!(
                        "{}: {e}, and its ELF header is not in the core; it is left out",
                        module.path
                    ));
                }
                return None;
            }
            let why = format!("{}: {e}; no unwind info or symbols", module.path);
            warnings.push(why.clone());
            return Some(Prepared {
                bias: module.bias.unwrap_or(module.base),
                module,
                status: ModuleStatus::NotFound,
                cfi: CfiSections::default(),
                object: None,
                debug: None,
                symbols: OnceCell::new(),
                missing: Some(why),
                answers: FastMap::default(),
            });
        }
    };
    let bias = module
        .bias
        .or_else(|| object.info.load_vaddr.map(|v| module.base.wrapping_sub(v)))
        .unwrap_or(module.base);
    if let (Some(c), Some(f)) = (&module.build_id, &object.info.build_id) {
        if c != f {
            let why = format!(
                "{}: the file on disk has build-id {} but the core's module has {}; its unwind \
                 info and symbols are not used",
                module.path,
                hex(f),
                hex(c)
            );
            warnings.push(why.clone());
            return Some(Prepared {
                bias,
                module,
                status: ModuleStatus::BuildIdMismatch,
                cfi: CfiSections::default(),
                object: None,
                debug: None,
                symbols: OnceCell::new(),
                missing: Some(why),
                answers: FastMap::default(),
            });
        }
    }
    let debug = if object.info.has_debug_info() {
        None
    } else {
        loader::find_debug_file(&object, search, warnings)
    };
    let cfi = CfiSections {
        eh_frame: cfi_section(&object, ".eh_frame"),
        eh_frame_hdr: cfi_section(&object, ".eh_frame_hdr"),
        debug_frame: cfi_section(&object, ".debug_frame")
            .or_else(|| debug.as_ref().and_then(|d| cfi_section(d, ".debug_frame"))),
        eh_frame_index: Default::default(),
        debug_frame_index: Default::default(),
        rows: Default::default(),
        arm_exidx: cfi_section(&object, ".ARM.exidx"),
        arm_extab: cfi_section(&object, ".ARM.extab"),
        arm_functions: object.info.arm_functions.clone(),
        text_svma: object.info.section(".text").map(|s| s.addr),
        got_svma: object.info.section(".got").map(|s| s.addr),
        big_endian: object.info.endian == crate::elf_core::Endian::Big,
        elf32: !object.info.is_64,
    };
    Some(Prepared {
        module,
        bias,
        status: ModuleStatus::Loaded,
        cfi,
        object: Some(object),
        debug,
        symbols: OnceCell::new(),
        missing: None,
        answers: FastMap::default(),
    })
}

/// A section of `o` as unwind data, read in place (or inflated).
fn cfi_section(o: &LoadedObject, name: &'static str) -> Option<Section> {
    let s = o.info.section(name)?;
    let file: crate::symbolize::SharedBytes = o.data.clone();
    let data = crate::symbolize::section_bytes(&o.info, &file, name)?;
    Some(Section {
        svma: s.addr,
        data: Arc::new(data),
    })
}

/// The build-id to ask for a debug file of: a loaded module without DWARF and without a
/// separate debug file found on disk.
fn wants_debuginfo(p: &Prepared) -> Option<Vec<u8>> {
    let obj = p.object.as_ref()?;
    if p.status != ModuleStatus::Loaded || p.debug.is_some() || obj.info.has_debug_info() {
        return None;
    }
    p.module
        .build_id
        .clone()
        .or_else(|| obj.info.build_id.clone())
}

/// The share of the time left before `deadline` that fetching may take: three quarters. A
/// server that never answers then still leaves the walk and the symbols their time, so the
/// frames that can be found without it are found, instead of a backtrace cut at the deadline.
fn fetch_deadline(deadline: Instant) -> Instant {
    let now = Instant::now();
    now + deadline.saturating_duration_since(now) * 3 / 4
}

/// Ask `fetcher` for what the prepared modules lack: the file of a module not found on disk or
/// found as a different build (by the core's build-id), and the debug file of a module without
/// DWARF. A fetched executable replaces the module's preparation (CFI, symbols, the search for
/// its debug file on disk); when it too lacks DWARF, its debug file is asked for in a second
/// round. What cannot be used is a warning; the modules stay as they were.
fn fetch_missing(
    fetcher: &dyn Fetcher,
    prepared: &mut [Prepared],
    search: &SearchPaths,
    deadline: Option<Instant>,
    warnings: &mut Vec<String>,
) {
    let mut requests = Vec::new();
    let mut whose = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        let missing = matches!(
            p.status,
            ModuleStatus::NotFound | ModuleStatus::BuildIdMismatch
        );
        let want = match (&p.module.build_id, p.module.kind) {
            (Some(id), ModuleKind::File) if missing => Some((id.clone(), FetchKind::Executable)),
            _ => wants_debuginfo(p).map(|id| (id, FetchKind::Debuginfo)),
        };
        if let Some((build_id, kind)) = want {
            requests.push(FetchRequest { build_id, kind });
            whose.push(i);
        }
    }
    let mut second = Vec::new();
    for (i, kind, path) in ask(fetcher, &requests, &whose, deadline, warnings) {
        match kind {
            FetchKind::Executable => {
                if use_fetched_object(&mut prepared[i], &path, search, warnings) {
                    if let Some(id) = wants_debuginfo(&prepared[i]) {
                        second.push((i, id));
                    }
                }
            }
            FetchKind::Debuginfo => use_fetched_debug(&mut prepared[i], &path, warnings),
        }
    }
    if second.is_empty() {
        return;
    }
    let (whose, requests): (Vec<usize>, Vec<FetchRequest>) = second
        .into_iter()
        .map(|(i, build_id)| {
            let kind = FetchKind::Debuginfo;
            (i, FetchRequest { build_id, kind })
        })
        .unzip();
    for (i, _, path) in ask(fetcher, &requests, &whose, deadline, warnings) {
        use_fetched_debug(&mut prepared[i], &path, warnings);
    }
}

/// One round of [`fetch_missing`]: the files that came, with the module index they are for.
fn ask(
    fetcher: &dyn Fetcher,
    requests: &[FetchRequest],
    whose: &[usize],
    deadline: Option<Instant>,
    warnings: &mut Vec<String>,
) -> Vec<(usize, FetchKind, PathBuf)> {
    if requests.is_empty() {
        return Vec::new();
    }
    let got = fetcher.fetch(requests, deadline);
    warnings.extend(got.warnings);
    whose
        .iter()
        .zip(requests)
        .zip(got.files)
        .filter_map(|((&i, r), f)| Some((i, r.kind, f?)))
        .collect()
}

/// Prepare `p`'s module again over the fetched file at `path`; true when it is now loaded.
fn use_fetched_object(
    p: &mut Prepared,
    path: &std::path::Path,
    search: &SearchPaths,
    warnings: &mut Vec<String>,
) -> bool {
    let mut w = Vec::new();
    let fresh = prepare_loaded(
        p.module.clone(),
        loader::load(path).map_err(|e| e.to_string()),
        search,
        &mut w,
    );
    match fresh {
        Some(fresh) if fresh.status == ModuleStatus::Loaded => {
            if let Some(old) = p.missing.take() {
                if let Some(at) = warnings.iter().position(|w| *w == old) {
                    warnings.remove(at);
                }
            }
            warnings.extend(w);
            *p = fresh;
            true
        }
        _ => {
            warnings.extend(
                w.into_iter()
                    .map(|w| format!("fetched file {}: {w}", path.display())),
            );
            false
        }
    }
}

/// Use the fetched debug file at `path` for `p` (its build-id checked again, as for one on disk).
fn use_fetched_debug(p: &mut Prepared, path: &std::path::Path, warnings: &mut Vec<String>) {
    let d = match loader::load(path) {
        Ok(d) => d,
        Err(e) => {
            warnings.push(format!("{}: fetched debug file: {e}", p.module.path));
            return;
        }
    };
    let want = p
        .module
        .build_id
        .as_ref()
        .or(p.object.as_ref().and_then(|o| o.info.build_id.as_ref()));
    if let (Some(a), Some(b)) = (want, &d.info.build_id) {
        if a != b {
            warnings.push(format!(
                "{}: fetched debug file {} has build-id {}, expected {}; ignored",
                p.module.path,
                path.display(),
                hex(b),
                hex(a)
            ));
            return;
        }
    }
    if p.cfi.debug_frame.is_none() {
        p.cfi.debug_frame = cfi_section(&d, ".debug_frame");
    }
    p.debug = Some(d);
}

fn prepared_at(prepared: &[Prepared], avma: u64) -> Option<&Prepared> {
    index_at(prepared, avma).map(|i| &prepared[i])
}

/// The index of the module containing `avma` (`prepared` is sorted by start).
fn index_at(prepared: &[Prepared], avma: u64) -> Option<usize> {
    let i = prepared
        .partition_point(|p| p.module.start <= avma)
        .checked_sub(1)?;
    prepared[i].module.contains(avma).then_some(i)
}

/// The entry AVMA of the function containing `avma`, from the module's symbol table.
fn function_entry(prepared: &[Prepared], avma: u64) -> Option<u64> {
    let p = prepared_at(prepared, avma)?;
    let svma = avma.wrapping_sub(p.bias);
    let (_, off) = p.symbols()?.symbol(svma)?;
    Some(avma - off)
}

/// Where a call target is, as an AVMA: an entry in `module`, or a name looked up in `module`'s
/// symbols first, then every other module's (a call through the PLT to another library).
fn resolve_target(prepared: &[Prepared], module: &Prepared, t: &CallTarget) -> Option<u64> {
    match t {
        CallTarget::Entry(svma) => Some(svma.wrapping_add(module.bias)),
        CallTarget::Name(n) => std::iter::once(module)
            .chain(prepared.iter())
            .find_map(|p| Some(p.symbols()?.symbol_entry(n)?.wrapping_add(p.bias))),
    }
}

/// gdb's tail-call frame: when the call at return address `ret` targets a function T other than
/// the one the callee frame (lookup address `callee`) is in, and T has exactly one tail-call
/// site that jumps to the callee's function, T is a frame of its own that left the stack by
/// `jmp`. Its pc is the tail-call site's return pc; it is named by the innermost function there
/// (gdb prints the innermost inlined name for such a frame). Ambiguous or missing call-site
/// information adds nothing, as in gdb.
fn tail_call_frame(prepared: &[Prepared], callee: u64, ret: u64) -> Option<Frame> {
    {
        let callee_entry = function_entry(prepared, callee)?;
        let caller = prepared_at(prepared, ret.checked_sub(1)?)?;
        let target = caller
            .symbols()?
            .call_target(ret.wrapping_sub(caller.bias))?;
        let t_entry = resolve_target(prepared, caller, &target)?;
        if t_entry == callee_entry {
            return None;
        }
        let t_mod = prepared_at(prepared, t_entry)?;
        let t_syms = t_mod.symbols()?;
        let sites: Vec<u64> = t_syms
            .tail_calls(t_entry.wrapping_sub(t_mod.bias))
            .into_iter()
            .filter(|(_, t)| resolve_target(prepared, t_mod, t) == Some(callee_entry))
            .map(|(r, _)| r.wrapping_add(t_mod.bias))
            .collect();
        let [pc] = sites[..] else {
            return None;
        };
        let s = t_syms
            .lookup(pc.wrapping_sub(1).wrapping_sub(t_mod.bias))
            .into_iter()
            .next()?;
        Some(Frame {
            pc,
            module: Some(t_mod.module.path.clone()),
            function: s.function,
            file: s.file,
            line: s.line,
            column: s.column,
            inlined: false,
            trust: FrameTrust::TailCall,
            symbol_offset: s.symbol_offset,
            signal_trampoline: false,
            args: None,
            locals: None,
        })
    }
}

/// The physical-frame view of a tail-call frame (whose caller is `caller`): its pc as a
/// return address, no registers.
fn tail_raw(f: &Frame, caller: &unwind::RawFrame) -> unwind::RawFrame {
    unwind::RawFrame {
        address: unwind::CodeAddress::ReturnAddress(f.pc),
        trust: FrameTrust::TailCall,
        sp: caller.sp,
        signal_trampoline: false,
        regs: unwind::KnownRegs::default(),
        cfa: None,
    }
}

/// Fill the arguments (and with `locals`, the locals) of `frames`, the inlined and physical
/// frames [`symbolize_frame`] made of `raw`; `caller`: the physical frame that called it, and
/// `callers` the ones above it, for `DW_OP_entry_value` ([`EntryMemo`]: what is known of
/// them so far). Frames without a DWARF function keep `None`.
fn add_variables(
    prepared: &[Prepared],
    process: &CodeReader<'_>,
    (raw, caller, callers): (
        &unwind::RawFrame,
        Option<&unwind::RawFrame>,
        &[unwind::RawFrame],
    ),
    locals: bool,
    memo: &EntryMemo,
    frames: &mut [Frame],
) {
    let lookup = raw.address.lookup();
    let Some(p) = prepared_at(prepared, lookup) else {
        return;
    };
    let Some(syms) = p.symbols() else {
        return;
    };
    let little_endian = !p.cfi.big_endian;
    // The value a register had on entry: what the caller's call site put there.
    // As gdb, only from a call site known to call this very function: an indirect call (or
    // one that reached it through tail calls) says nothing about its registers.
    let ctx = EntryValues {
        prepared,
        process,
        little_endian,
        memo,
    };
    let entry_value = |reg: u16| ctx.value(raw, caller, callers, reg, 0);
    let regs = raw.regs.to_vec();
    let state = crate::symbolize::FrameState {
        regs: &regs,
        cfa: raw.cfa,
        bias: p.bias,
        little_endian,
        entry_value: &entry_value,
    };
    let Some(vars) = syms.variables(lookup.wrapping_sub(p.bias), &state, process, locals) else {
        return;
    };
    let mut vars = vars;
    if raw.trust == FrameTrust::TailCall {
        vars.truncate(1); // a tail-call frame is named by its innermost function alone
    }
    if vars.len() != frames.len() {
        return; // the frames came from another answer (the symbol table): nothing to pair
    }
    for (f, v) in frames.iter_mut().zip(vars) {
        if let Some(v) = v {
            f.args = Some(v.args);
            f.locals = v.locals;
        }
    }
}

/// The variables of one physical frame (or tail-call frame) to read: the frames it became in
/// the thread's list, its raw frame, its caller and where the callers above that start.
struct VarJob {
    frames: std::ops::Range<usize>,
    raw: unwind::RawFrame,
    caller: Option<unwind::RawFrame>,
    callers_from: usize,
}

/// Entry values chain at most this many callers up (each link is remembered, so a chain costs
/// one evaluation per frame however many frames ask).
const MAX_ENTRY_CHAIN: usize = 64;

/// What `DW_OP_entry_value` needs: the frames' modules and memory.
struct EntryValues<'a> {
    prepared: &'a [Prepared],
    process: &'a CodeReader<'a>,
    little_endian: bool,
    memo: &'a EntryMemo,
}

/// (callee lookup address, callee stack pointer, return address, register).
type EntryKey = (u64, u64, u64, u16);

/// Entry values found so far, shared by every frame of every thread: a chain of callers
/// passing a value on (`f(n) { g(n); }`) is walked once, not once per frame of it.
#[derive(Default)]
struct EntryMemo {
    /// Whether the call returning to an address calls the function at a lookup address.
    direct_calls: std::cell::RefCell<FastMap<(u64, u64), bool>>,
    values: std::cell::RefCell<FastMap<EntryKey, Option<u64>>>,
    /// The chain being resolved hit [`MAX_ENTRY_CHAIN`]: its failures are not remembered
    /// (asked from nearer, the same value may be found).
    cut: std::cell::Cell<bool>,
}

impl EntryValues<'_> {
    /// The value register `reg` had on entry to `callee`'s function: what the call site in
    /// `caller` that called it passed, evaluated in `caller`'s frame, which may itself ask for
    /// its own entry values from `callers` (as gdb chains them). Only from a call site known to
    /// call this very function: an indirect call says nothing about the callee's registers.
    fn value(
        &self,
        callee: &unwind::RawFrame,
        caller: Option<&unwind::RawFrame>,
        callers: &[unwind::RawFrame],
        reg: u16,
        depth: usize,
    ) -> Option<u64> {
        if callee.signal_trampoline {
            return None;
        }
        let c = caller?;
        let unwind::CodeAddress::ReturnAddress(ret) = c.address else {
            return None;
        };
        let key = (callee.address.lookup(), callee.sp, ret, reg);
        if let Some(&known) = self.memo.values.borrow().get(&key) {
            return known;
        }
        if depth >= MAX_ENTRY_CHAIN {
            self.memo.cut.set(true);
            return None;
        }
        let outer_cut = self.memo.cut.replace(false);
        let found = self.resolve(callee, c, ret, callers, reg, depth);
        let cut = self.memo.cut.get();
        if found.is_some() || !cut {
            self.memo.values.borrow_mut().insert(key, found);
        }
        self.memo.cut.set(outer_cut || cut);
        found
    }

    /// [`EntryValues::value`] not known yet: `c`'s call returning to `ret` called `callee`.
    fn resolve(
        &self,
        callee: &unwind::RawFrame,
        c: &unwind::RawFrame,
        ret: u64,
        callers: &[unwind::RawFrame],
        reg: u16,
        depth: usize,
    ) -> Option<u64> {
        let lookup = callee.address.lookup();
        if !self.calls(c, ret, lookup) {
            return None;
        }
        let cp = prepared_at(self.prepared, c.address.lookup())?;
        let caller_regs = c.regs.to_vec();
        let (next, rest) = match callers.split_first() {
            Some((n, r)) => (Some(n), r),
            None => (None, callers),
        };
        let chain = |r: u16| self.value(c, next, rest, r, depth + 1);
        let state = crate::symbolize::FrameState {
            regs: &caller_regs,
            cfa: c.cfa,
            bias: cp.bias,
            little_endian: self.little_endian,
            entry_value: &chain,
        };
        cp.symbols()?
            .call_site_value(ret.wrapping_sub(cp.bias), reg, &state, self.process)
    }

    /// Whether the call in `c` returning to `ret` calls the function holding `lookup`.
    fn calls(&self, c: &unwind::RawFrame, ret: u64, lookup: u64) -> bool {
        if let Some(&known) = self.memo.direct_calls.borrow().get(&(ret, lookup)) {
            return known;
        }
        let found = (|| -> Option<bool> {
            let cp = prepared_at(self.prepared, c.address.lookup())?;
            let target = cp.symbols()?.call_target(ret.wrapping_sub(cp.bias))?;
            Some(
                resolve_target(self.prepared, cp, &target)?
                    == function_entry(self.prepared, lookup)?,
            )
        })()
        .unwrap_or(false);
        self.memo
            .direct_calls
            .borrow_mut()
            .insert((ret, lookup), found);
        found
    }
}

fn symbolize_frame(
    prepared: &[Prepared],
    raw: &unwind::RawFrame,
    only_loaded: bool,
    out: &mut Vec<Frame>,
) {
    let pc = raw.address.pc();
    let lookup = raw.address.lookup();
    let p = prepared_at(prepared, lookup);
    let sym: Vec<SymFrame> = p
        .filter(|p| !only_loaded || p.symbols.get().is_some())
        .and_then(|p| p.lookup(lookup.wrapping_sub(p.bias)))
        .unwrap_or_default();
    let module = p.map(|p| p.module.path.clone());
    let base = Frame {
        pc,
        module,
        function: None,
        file: None,
        line: None,
        column: None,
        inlined: false,
        trust: raw.trust,
        symbol_offset: None,
        signal_trampoline: raw.signal_trampoline,
        args: None,
        locals: None,
    };
    if sym.is_empty() {
        out.push(base);
        return;
    }
    let n = sym.len();
    for (i, s) in sym.into_iter().enumerate() {
        out.push(Frame {
            function: s.function,
            file: s.file,
            line: s.line,
            column: s.column,
            symbol_offset: s.symbol_offset,
            inlined: i + 1 < n,
            ..base.clone()
        });
    }
}

/// Code bytes for recognising trampolines: the core's memory, else the module's file (text is
/// usually not dumped).
struct CodeReader<'a> {
    core: &'a Core<'a>,
    modules: &'a [Prepared],
}

impl crate::symbolize::Process for CodeReader<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        MemoryReader::read(self, addr, buf)
    }

    fn symbol(&self, addr: u64, code: bool) -> Option<String> {
        let p = prepared_at(self.modules, addr)?;
        if p.status != ModuleStatus::Loaded {
            return None;
        }
        let syms = p.symbols()?;
        let svma = addr.wrapping_sub(p.bias);
        // A code pointer names its function; a data pointer only a data object that holds it
        // (a sizeless function symbol before it would claim any address).
        let (name, off) = if code {
            syms.symbol(svma)?
        } else {
            syms.object(svma)?
        };
        let name = crate::symbolize::demangle_full(name);
        Some(if off == 0 {
            name
        } else {
            format!("{name}+{off}")
        })
    }
}

impl MemoryReader for CodeReader<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if self.core.memory.read(addr, buf) {
            return true;
        }
        let Some(p) = prepared_at(self.modules, addr) else {
            return false;
        };
        let Some(obj) = &p.object else {
            return false;
        };
        let svma = addr.wrapping_sub(p.bias);
        let Some(s) = obj.info.sections.iter().find(|s| {
            s.sh_type != 8 && s.addr != 0 && s.addr <= svma && svma < s.addr.saturating_add(s.size)
        }) else {
            return false;
        };
        let off = s.offset + (svma - s.addr);
        let Some(src) = usize::try_from(off)
            .ok()
            .and_then(|o| obj.data.get(o..o.checked_add(buf.len())?))
        else {
            return false;
        };
        buf.copy_from_slice(src);
        true
    }

    fn big_endian(&self) -> bool {
        self.core.endian == crate::elf_core::Endian::Big
    }
}
