//! Arguments and locals (issue 14) against gdb's own answer on the same core.
//!
//! Each fixture (fixtures/zoo/vars.c, vars.cpp, vars_rs.rs, at -O0 and -O2) crashes with a
//! chain of frames holding every kind of value; `corecatch bt --json --full CORE` is compared
//! with what tests/it/gdb_vars.py reads through gdb's Python API from the same core (arguments
//! from the function's block in declaration order, locals from frame.block() up to the function
//! block, innermost block first; the value `info args` / `info locals` print, with `set print
//! entry-values no`, pretty printers off). For every thread both show, the frames in the
//! program's own code (file basename is the fixture) are matched by position and function name,
//! and their arguments and locals compared: names, order, types and values.
//!
//! Where the two differ on purpose, `normalize` says why. Frames outside the program's code
//! (libc, libstdc++, Rust's std) are not compared, but every frame must carry `args` and
//! `locals`, each `null` or an array.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::skip_unless_kernel_cores;
use crate::util;

/// What the gdb script reports for a value printing it would crash gdb 13.1 with (see
/// `gdb_bug` in gdb_vars.py): such a value is not compared, except against `KNOWN` below.
const GDB_BUG: &str = "<gdb internal error>";

/// One build of a fixture.
struct Build {
    src: &'static str,
    opt: &'static str,
    exe: PathBuf,
}

fn build(src: &'static str, opt: &'static str) -> Build {
    let path = util::fixture(&format!("zoo/{src}"));
    let name = format!("zoo-{}{}", src.replace('.', "-"), opt.replace(' ', ""));
    let exe = match src.rsplit('.').next() {
        Some("rs") => {
            let level = format!("opt-level={}", &opt[2..]);
            util::compile(
                &path,
                &name,
                &["-g", "-C", "panic=abort", "-C", &level, "--edition", "2021"],
            )
        }
        Some("c") => {
            let mut flags = vec!["-g", "-pthread"];
            flags.extend(opt.split(' '));
            util::compile(&path, &name, &flags)
        }
        _ => util::compile(&path, &name, &["-g", opt]),
    };
    Build { src, opt, exe }
}

struct Crash {
    build: Build,
    core: PathBuf,
    dir: tempfile::TempDir,
}

fn crash(build: Build) -> Crash {
    let dir = util::tempdir();
    let core = util::crash_for_core(&build.exe, &[], dir.path());
    Crash { build, core, dir }
}

/// gdb_vars.py's answer: `{"threads": [{"lwp", "crashed", "frames": [...]}]}`.
fn gdb_vars(exe: &Path, core: &Path) -> Value {
    let script = util::root().join("tests/it/gdb_vars.py");
    let o = Command::new(util::require("gdb"))
        .current_dir(core.parent().unwrap())
        .args(["-batch", "-nx", "-ex", "set debuginfod enabled off", "-x"])
        .arg(&script)
        .arg(exe)
        .arg(core)
        .output()
        .expect("gdb runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("GDBVARS: "))
        .unwrap_or_else(|| {
            panic!(
                "gdb_vars.py printed no answer ({:?}):\n{out}\n{}",
                o.status,
                util::stderr(&o)
            )
        });
    serde_json::from_str(line).expect("gdb_vars.py prints JSON")
}

/// `corecatch bt --json [--full] CORE`, parsed. Killed, and the test failed, past 60 s: a value
/// reader that loops on a cycle or a huge object must show up as a failure, not a hung test.
fn bt_json(c: &Crash, full: bool) -> Value {
    let core = c.core.to_str().unwrap();
    let args: &[&str] = if full {
        &["bt", "--json", "--full", core]
    } else {
        &["bt", "--json", core]
    };
    let _shared = util::CrashLock::shared();
    let out = tempfile::tempfile().unwrap();
    let mut child = Command::new(util::bin())
        .args(args)
        .current_dir(c.dir.path())
        .env_remove("CORECATCH_OUT")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corecatch {} hung (killed after 60 s)", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "corecatch {} failed",
        args.join(" ")
    );
    let mut stdout = Vec::new();
    use std::io::{Read, Seek};
    let mut out = out;
    out.rewind().unwrap();
    out.read_to_end(&mut stdout).unwrap();
    serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "bt --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    })
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn in_fixture<'a>(frames: &'a [Value], src: &str) -> Vec<&'a Value> {
    indexed_in_fixture(frames, src)
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

/// The frames whose source file is the fixture `src`, with their index in the thread.
fn indexed_in_fixture<'a>(frames: &'a [Value], src: &str) -> Vec<(usize, &'a Value)> {
    frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f["file"].as_str().map(basename) == Some(src))
        .collect()
}

/// One variable, as compared (`note` says how gdb's value was normalized; not compared).
#[derive(Debug, Clone)]
struct Var {
    name: String,
    ty: String,
    value: String,
    note: Option<String>,
}

impl PartialEq for Var {
    fn eq(&self, o: &Var) -> bool {
        (&self.name, &self.ty, &self.value) == (&o.name, &o.ty, &o.value)
    }
}

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} = {}", self.name, self.ty, self.value)?;
        match &self.note {
            Some(n) => write!(f, "   ({n})"),
            None => Ok(()),
        }
    }
}

fn vars(v: &Value) -> Option<Vec<Var>> {
    let a = v.as_array()?;
    Some(
        a.iter()
            .map(|x| {
                let mut var = Var {
                    name: x["name"].as_str().unwrap_or("<no name>").to_string(),
                    ty: x["type"].as_str().unwrap_or("<no type>").to_string(),
                    value: x["value"].as_str().unwrap_or("<no value>").to_string(),
                    note: None,
                };
                if let Some(r) = x["caller_saved"].as_str() {
                    var.note = Some(format!(
                        "caller-saved ${r} of a caller frame: gdb shows {}",
                        var.value
                    ));
                    var.value = OPTIMIZED_OUT.to_string();
                } else if x["implicit_pointer"] == false && var.value.contains(SYNTHETIC) {
                    var.note = Some(format!("no implicit pointer: gdb shows {}", var.value));
                    var.value = var.value.replace(SYNTHETIC, OPTIMIZED_OUT);
                }
                var
            })
            .collect(),
    )
}

/// Values gdb 13.1 cannot print (GDB_BUG) but the program fixes: (function, variable, value).
/// rustc -O2 passes `limit` (`Some(100)` from main) in two register pieces, and gdb aborts
/// printing such an enum; the -O0 build, where it lives in memory, shows gdb's form of it.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "vars_rs::check",
        "limit",
        "core::option::Option<u32>::Some(100)",
    ),
    (
        "vars_rs::process",
        "limit",
        "core::option::Option<u32>::Some(100)",
    ),
];

const OPTIMIZED_OUT: &str = "<optimized out>";
const SYNTHETIC: &str = "<synthetic pointer>";

/// gdb's variable made comparable with ours. Deliberate differences:
/// - a variable that lives, at a caller frame's pc, in a register a call does not preserve
///   (rax, rcx, rdx, rsi, rdi, r8-r11, xmm*: gdb_vars.py flags it `caller_saved`) is
///   `<optimized out>` for us. gdb's amd64 unwinder gives a caller the innermost frame's value
///   of such a register (the CFI does not mention it, and gdb takes "same value"), which is
///   whatever the register held when the process died, not the caller's variable: -O2's
///   `visit` keeps `color` in r11 across the call to peek_next, and gdb shows GREEN only
///   because peek_next happened not to touch r11. corecatch's unwinder drops those registers
///   in callers. The same holds for an entry value whose DW_TAG_call_site computes it from
///   such a register of the caller (g++ -O2's settle passes `index` to post as r11), followed
///   up chained entry values. (A composite with pieces is not flagged: compared as is.)
/// - `<synthetic pointer>` in gdb's value of a variable whose location has no implicit pointer
///   (gdb_vars.py records `implicit_pointer: false`) is `<optimized out>` for us: gdb 13 says
///   so of the bytes of a composite that no piece describes (rustc -O2 keeps only the first 8
///   bytes of `process`'s `iter` in r13; gdb shows `count: <synthetic pointer>` for a usize).
///   `vars` applies this one and the one above, as it reads gdb_vars.py's flags;
/// - a value gdb cannot print (GDB_BUG) takes ours, unless `KNOWN` says what it is;
/// - a local gdb's `info locals` skips because its DW_AT_const_value is a block
///   (LOC_CONST_BYTES, e.g. `double fee = 0.5` at g++ -O2) is expected, with the value gdb's
///   `print` shows (gdb_vars.py lists it, flagged `info_hides`): it is a local in scope;
/// - an inlined frame's phantom copies of abstract-origin variables are not (`gdb_locals`);
/// - the order inside one nested lexical block is not compared (`hashed_runs`);
/// - nothing else: with `set print entry-values no` gdb prints no `x@entry=` forms, the
///   pretty printers are off, and `max-value-size` is lifted so a big array is cut at 200
///   elements as we cut it, not refused.
fn normalize(function: &str, gdb: &Var, ours: Option<&Var>) -> Var {
    let mut g = gdb.clone();
    if g.value == GDB_BUG {
        g.value = match KNOWN
            .iter()
            .find(|(f, n, _)| *f == function && *n == g.name)
        {
            Some((_, _, v)) => v.to_string(),
            None => ours.map_or_else(|| GDB_BUG.to_string(), |o| o.value.clone()),
        };
    }
    g
}

/// The runs of gdb's locals that come from one nested lexical block (not the function's own
/// block): (start, length). gdb keeps such a block's symbols in a hash table, so `info locals`
/// lists them in hash order; within a run the order is not compared (both sides are sorted by
/// name), the order of the blocks and of the function block's locals is.
fn hashed_runs(gdb_locals: &Value) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut last = None;
    for (i, v) in gdb_locals.as_array().into_iter().flatten().enumerate() {
        if v["function_block"] == true {
            last = None;
            continue;
        }
        let block = v["block"].as_u64();
        match runs.last_mut() {
            Some((start, len)) if last == Some(block) && *start + *len == i => *len += 1,
            _ => runs.push((i, 1)),
        }
        last = Some(block);
    }
    runs.retain(|&(_, len)| len > 1);
    runs
}

fn sort_runs(v: &mut [Var], runs: &[(usize, usize)]) {
    for &(start, len) in runs {
        if let Some(run) = v.get_mut(start..start + len) {
            run.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
}

/// gdb's locals of frame `g`, without the phantoms of an inlined frame. For an inlined
/// subroutine gdb adds every variable of the abstract origin that no child of the concrete
/// DW_TAG_inlined_subroutine names (dwarf2/read.c `inherit_abstract_dies`), without looking
/// into the concrete instance's nested DW_TAG_lexical_block: gcc -O2 puts successor_value's
/// `offset` in such a block, so gdb lists `offset = 16` (the block's) and then a second,
/// `offset = <optimized out>` (the phantom) in the inlined function's block. corecatch lists
/// the variables the concrete instance has, so the phantom — an `<optimized out>` local of the
/// function block of an inlined frame, with the name and type of a local of an inner block —
/// is dropped from gdb's list.
fn gdb_locals(g: &Value) -> Value {
    let Some(all) = g["locals"].as_array() else {
        return g["locals"].clone();
    };
    if g["inlined"] != true {
        return g["locals"].clone();
    }
    let phantom = |v: &Value| {
        v["function_block"] == true
            && v["value"] == "<optimized out>"
            && all.iter().any(|w| {
                w["function_block"] != true && w["name"] == v["name"] && w["type"] == v["type"]
            })
    };
    Value::Array(all.iter().filter(|v| !phantom(v)).cloned().collect())
}

/// Side by side: `=` where equal, `!` where not.
fn side_by_side(out: &mut String, what: &str, ours: &[Var], gdb: &[Var]) {
    let _ = writeln!(out, "    {what}:");
    for i in 0..ours.len().max(gdb.len()) {
        let (o, g) = (ours.get(i), gdb.get(i));
        let mark = if o == g { '=' } else { '!' };
        let show = |v: Option<&Var>| v.map_or_else(|| "(none)".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "     {mark} ours {}\n     {mark} gdb  {}",
            show(o),
            show(g)
        );
    }
}

/// The arguments and locals of the own-code frames of one thread, ours against gdb's.
/// Appends a report of every difference to `diffs`; `locals` says whether ours must have them.
fn compare_thread(
    what: &str,
    src: &str,
    ours: &Value,
    gdb: &Value,
    locals: bool,
    diffs: &mut String,
) {
    let of = indexed_in_fixture(ours["frames"].as_array().unwrap(), src);
    let gf = indexed_in_fixture(gdb["frames"].as_array().unwrap(), src);
    let names = |fs: &[(usize, &Value)]| -> Vec<String> {
        fs.iter()
            .map(|(_, f)| f["function"].as_str().unwrap_or("??").to_string())
            .collect()
    };
    if names(&of) != names(&gf) {
        let _ = writeln!(
            diffs,
            "{what}: the frames in {src} differ\n  ours {:?}\n  gdb  {:?}",
            names(&of),
            names(&gf)
        );
        return;
    }
    for ((oi, o), (_, g)) in of.iter().zip(&gf) {
        let function = g["function"].as_str().unwrap_or("??");
        let mut report = String::new();
        let mut differ = false;
        for (key, wanted) in [("args", true), ("locals", locals)] {
            let gvars = if key == "locals" {
                gdb_locals(g)
            } else {
                g[key].clone()
            };
            let Some(gv) = vars(&gvars) else {
                continue; // gdb found no block for the frame either
            };
            let ov = match vars(&o[key]) {
                Some(v) => v,
                None if !wanted => continue,
                None => {
                    differ = true;
                    let _ = writeln!(report, "    {key}: ours null");
                    Vec::new()
                }
            };
            let mut ov = ov;
            let mut gv = gv;
            if key == "locals" {
                let runs = hashed_runs(&gvars);
                sort_runs(&mut ov, &runs);
                sort_runs(&mut gv, &runs);
            }
            let gv: Vec<Var> = gv
                .iter()
                .enumerate()
                .map(|(i, g)| normalize(function, g, ov.get(i)))
                .collect();
            if ov != gv {
                differ = true;
            }
            side_by_side(&mut report, key, &ov, &gv);
        }
        if differ {
            let _ = writeln!(
                diffs,
                "{what}: {function} at {src}:{} (gdb's #{}, our #{oi}):\n{report}",
                g["line"], g["level"],
            );
        }
    }
}

/// Every frame of every thread carries `args` and `locals`, each `null` or an array of
/// variables with a name, a type and a value.
fn check_shape(report: &Value) {
    for t in report["threads"].as_array().unwrap() {
        for f in t["frames"].as_array().unwrap() {
            let o = f.as_object().unwrap();
            for key in ["args", "locals"] {
                let v = o.get(key).unwrap_or_else(|| panic!("no {key:?} in {f}"));
                match v {
                    Value::Null => {}
                    Value::Array(a) => {
                        for x in a {
                            for k in ["name", "type", "value"] {
                                assert!(x[k].is_string(), "{key} entry without {k:?}: {x} in {f}");
                            }
                        }
                    }
                    _ => panic!("{key} is neither null nor an array in {f}"),
                }
            }
        }
    }
}

/// Crash `build`, compare `bt --json --full` with gdb for every thread both show, and return
/// gdb's answer and ours for further checks by the caller.
fn check_against_gdb(build: Build, own_functions: &[&str]) -> (Crash, Value, Value) {
    let c = crash(build);
    let what = format!("{} {}", c.build.src, c.build.opt);
    let started = Instant::now();
    let ours = bt_json(&c, true);
    let took = started.elapsed();
    let gdb = gdb_vars(&c.build.exe, &c.core);
    check_shape(&ours);

    let src = c.build.src;
    let crashed_gdb = &gdb["threads"][0];
    assert_eq!(crashed_gdb["crashed"], true);
    let gnames: Vec<&str> = in_fixture(crashed_gdb["frames"].as_array().unwrap(), src)
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert_eq!(
        gnames, own_functions,
        "{what}: the fixture's crashed frames in gdb are not the expected ones"
    );

    // The oracle agrees with itself: the Python API listed the variables `info args` and
    // `info locals` print, in the same order.
    for g in gdb["threads"].as_array().unwrap() {
        for f in in_fixture(g["frames"].as_array().unwrap(), src) {
            assert!(
                f.get("info_mismatch").is_none(),
                "{what}: gdb's Python API and info args/locals disagree: {f}"
            );
        }
    }

    let mut diffs = String::new();
    for g in gdb["threads"].as_array().unwrap() {
        let lwp = g["lwp"].as_i64().unwrap();
        let Some(o) = ours["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tid"].as_i64() == Some(lwp))
        else {
            let _ = writeln!(diffs, "{what}: thread {lwp} is missing from ours");
            continue;
        };
        let label = format!(
            "{what}, thread {lwp}{}",
            if g["crashed"] == true {
                " (crashed)"
            } else {
                ""
            }
        );
        compare_thread(&label, src, o, g, true, &mut diffs);
    }
    assert!(
        diffs.is_empty(),
        "arguments and locals differ from gdb's (bt --json --full {}):\n{diffs}",
        c.core.display()
    );
    assert!(
        took < Duration::from_secs(10),
        "{what}: bt --full took {took:?}"
    );
    (c, gdb, ours)
}

/// The variable `name` of the own frame `function` of the crashed thread in `report`.
fn var_of<'a>(report: &'a Value, function: &str, key: &str, name: &str) -> &'a Value {
    report["threads"][0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"].as_str() == Some(function))
        .and_then(|f| f[key].as_array())
        .and_then(|a| a.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no {key} {name} in {function}"))
}

const C_FRAMES: &[&str] = &["successor_value", "peek_next", "visit", "walk", "main"];

#[test]
fn c_o0_args_and_locals_match_gdb() {
    skip_unless_kernel_cores!();
    let (c, gdb, _) = check_against_gdb(build("vars.c", "-O0"), C_FRAMES);
    // The fixture holds what it claims (gdb's side, so a change to it is noticed here).
    for (f, k, n, want) in [
        ("visit", "args", "perm", "(PERM_R | PERM_W)"),
        ("visit", "args", "sep", "27 '\\033'"),
        ("peek_next", "args", "weight", "1e+20"),
        ("visit", "locals", "discount", "3.5"),
        (
            "main",
            "locals",
            "histogram",
            "{3, 0 <repeats 14 times>, 1}",
        ),
        ("walk", "locals", "tag", "\"item2\\000\\000\""),
    ] {
        assert_eq!(var_of(&gdb, f, k, n)["value"], want, "gdb's {f} {n}");
    }
    // Without --full, bt reads only the arguments.
    let plain = bt_json(&c, false);
    check_shape(&plain);
    for t in plain["threads"].as_array().unwrap() {
        for f in t["frames"].as_array().unwrap() {
            assert!(f["locals"].is_null(), "bt without --full has locals: {f}");
        }
        for f in in_fixture(t["frames"].as_array().unwrap(), "vars.c") {
            assert!(f["args"].is_array(), "an own frame without args: {f}");
        }
    }
}

/// DWARF 4: location lists in `.debug_loc` (and GNU entry values) instead of DWARF 5's
/// `.debug_loclists`.
#[test]
fn c_o2_dwarf4_args_and_locals_match_gdb() {
    skip_unless_kernel_cores!();
    check_against_gdb(build("vars.c", "-O2 -gdwarf-4"), C_FRAMES);
}

#[test]
fn c_o2_args_and_locals_match_gdb() {
    skip_unless_kernel_cores!();
    let (_, gdb, _) = check_against_gdb(build("vars.c", "-O2"), C_FRAMES);
    // -O2 keeps values in registers and location lists, some only through DW_OP_entry_value
    // (peek_next's `n` once successor_value has it), and some are gone.
    let n = var_of(&gdb, "peek_next", "args", "n");
    assert_eq!(n["entry_value"], true, "{n}");
    assert!(n["value"].as_str().unwrap().starts_with("0x7ff"), "{n}");
    assert_eq!(
        var_of(&gdb, "visit", "args", "color")["caller_saved"],
        "r11"
    );
    assert_eq!(
        var_of(&gdb, "main", "args", "argv")["value"],
        "<optimized out>"
    );
}

const CPP_FRAMES: &[&str] = &[
    "bank::Ledger::cover",
    "bank::Ledger::post",
    "settle",
    "main",
];

#[test]
fn cpp_o0_args_and_locals_match_gdb() {
    skip_unless_kernel_cores!();
    let (_, gdb, _) = check_against_gdb(build("vars.cpp", "-O0"), CPP_FRAMES);
    assert_eq!(
        var_of(&gdb, "bank::Ledger::cover", "args", "this")["type"],
        "bank::Ledger * const"
    );
    let acct = var_of(&gdb, "bank::Ledger::cover", "args", "acct")["value"]
        .as_str()
        .unwrap();
    assert!(
        acct.starts_with("@0x") && acct.contains("{<bank::Holder> = {id = 2"),
        "{acct}"
    );
}

#[test]
fn cpp_o2_args_and_locals_match_gdb() {
    skip_unless_kernel_cores!();
    check_against_gdb(build("vars.cpp", "-O2"), CPP_FRAMES);
}

const RUST_FRAMES: &[&str] = &[
    "vars_rs::report",
    "vars_rs::check",
    "vars_rs::process",
    "vars_rs::main",
];

#[test]
fn rust_o0_args_and_locals_match_gdb() {
    skip_unless_kernel_cores!();
    let (_, gdb, _) = check_against_gdb(build("vars_rs.rs", "-O0"), RUST_FRAMES);
    for (n, want) in [
        ("name", "\"widgets\""),
        ("limit", "core::option::Option<u32>::Some(100)"),
        ("items", "&[i32] [7, 3, 4]"),
        ("pair", "(1, 2.5)"),
        ("at", "vars_rs::Point {x: -4, y: 9}"),
    ] {
        assert_eq!(var_of(&gdb, "vars_rs::check", "args", n)["value"], want);
    }
}

#[test]
fn rust_o2_args_and_locals_match_gdb() {
    skip_unless_kernel_cores!();
    check_against_gdb(build("vars_rs.rs", "-O2"), RUST_FRAMES);
}

/// A 100,000-element array, a 1,000-byte string without a terminator, a struct pointing to
/// itself, a circular list and a pointer into unmapped memory: gdb's cuts (200 elements, then
/// `...`), nothing followed, and no time to speak of.
#[test]
fn huge_and_self_referential_values_are_cut_like_gdb() {
    skip_unless_kernel_cores!();
    let (_, gdb, ours) =
        check_against_gdb(build("vars_big.c", "-O0"), &["give_up", "scan", "main"]);
    let big = var_of(&ours, "scan", "locals", "big")["value"]
        .as_str()
        .unwrap();
    assert!(
        big.starts_with("{0, 1, 2, ") && big.ends_with("199...}"),
        "{big}"
    );
    assert!(big.len() < 2000, "{} bytes", big.len());
    let text = var_of(&gdb, "give_up", "args", "text")["value"]
        .as_str()
        .unwrap();
    assert!(text.ends_with("qr\"..."), "{text}");
    assert_eq!(
        var_of(&gdb, "scan", "locals", "unmapped")["value"],
        "0x10 <error: Cannot access memory at address 0x10>"
    );
}

/// `corecatch run`: the report has args on every own frame of every thread, locals on the
/// crashed thread's only, and the text shows gdb's frame line with the arguments.
#[test]
fn run_report_has_args_everywhere_and_locals_on_the_crashed_thread() {
    skip_unless_kernel_cores!();
    let b = build("vars.c", "-O0");
    let dir = util::tempdir();
    let o = util::corecatch(
        dir.path(),
        &["run", "--out", "out", "--", b.exe.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(139), "{}", util::stderr(&o));
    let out = dir.path().join("out");
    let json = util::artifacts(&out, ".json")
        .into_iter()
        .find(|p| !p.ends_with("manifest.json"))
        .expect("a report");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    check_shape(&report);
    let threads = report["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "main and the worker");
    for t in threads {
        let crashed = t["crashed"] == true;
        let own = in_fixture(t["frames"].as_array().unwrap(), "vars.c");
        assert!(!own.is_empty(), "no own frames in {t}");
        for f in own {
            assert!(f["args"].is_array(), "own frame without args: {f}");
            assert_eq!(
                f["locals"].is_array(),
                crashed,
                "locals (crashed {crashed}): {f}"
            );
        }
        if !crashed {
            for f in t["frames"].as_array().unwrap() {
                assert!(
                    f["locals"].is_null(),
                    "a locals array off the crashed thread: {f}"
                );
            }
        }
    }
    let depth = var_of(&report, "peek_next", "args", "depth");
    assert_eq!(depth["value"], "7");
    let txt = std::fs::read_to_string(json.with_extension("txt")).unwrap();
    for needle in ["peek_next (n=0x", "depth=7", "walk (head=0x"] {
        assert!(
            txt.contains(needle),
            "{needle:?} not in {}:\n{txt}",
            json.with_extension("txt").display()
        );
    }
}

/// The comparison is not vacuous: gdb's answer compared with itself has no difference, and one
/// changed value, a dropped local, locals in the wrong order or in the wrong block are each
/// reported; only an order within one nested block is not.
#[test]
fn comparison_reports_each_kind_of_difference() {
    skip_unless_kernel_cores!();
    let c = crash(build("vars.c", "-O0"));
    let gdb = gdb_vars(&c.build.exe, &c.core);
    let g = &gdb["threads"][0];
    let diff = |ours: &Value| {
        let mut d = String::new();
        compare_thread("self", "vars.c", ours, g, true, &mut d);
        d
    };
    assert_eq!(diff(g), "", "gdb against itself");
    let walk = g["frames"]
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f["function"] == "walk")
        .unwrap();
    let mut changed = g.clone();
    changed["frames"][walk]["args"][1]["value"] = "11".into();
    let d = diff(&changed);
    assert!(
        d.contains("! ours limit: size_t = 11") && d.contains("! gdb  limit: size_t = 10"),
        "{d}"
    );
    let mut dropped = g.clone();
    dropped["frames"][walk]["locals"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert!(diff(&dropped).contains("walk at vars.c"), "a dropped local");
    let mut reordered = g.clone();
    reordered["frames"][walk]["locals"]
        .as_array_mut()
        .unwrap()
        .reverse();
    assert!(
        diff(&reordered).contains("walk at vars.c"),
        "reversed locals"
    );
    // walk's innermost block (tag, ratio, last, num, step) is a hash table in gdb: any order
    // of it is accepted, but not a local moved out of its block.
    let locals = |v: &Value| v["frames"][walk]["locals"].as_array().unwrap().clone();
    let inner = locals(g).iter().take_while(|v| v["block"] == 0).count();
    assert_eq!(inner, 5, "walk's innermost block: {:?}", locals(g));
    let mut shuffled = g.clone();
    shuffled["frames"][walk]["locals"].as_array_mut().unwrap()[..inner].reverse();
    assert_eq!(diff(&shuffled), "", "an order within one nested block");
    let mut moved = g.clone();
    moved["frames"][walk]["locals"].as_array_mut().unwrap()[..=inner].rotate_left(1);
    assert!(
        diff(&moved).contains("walk at vars.c"),
        "a local moved out of its block"
    );
    // A variable gdb read from a caller-saved register of a caller frame is <optimized out>.
    let mut flagged = g.clone();
    flagged["frames"][walk]["args"][1]["caller_saved"] = "r11".into();
    let mut d = String::new();
    compare_thread("self", "vars.c", g, &flagged, true, &mut d);
    assert!(d.contains("gdb  limit: size_t = <optimized out>"), "{d}");
    let mut ours = g.clone();
    ours["frames"][walk]["args"][1]["value"] = OPTIMIZED_OUT.into();
    let mut d = String::new();
    compare_thread("self", "vars.c", &ours, &flagged, true, &mut d);
    assert_eq!(
        d, "",
        "a caller-saved register's variable, <optimized out> for us"
    );
    let mut missing = g.clone();
    missing["frames"][walk]["locals"] = Value::Null;
    assert!(diff(&missing).contains("locals: ours null"), "null locals");
}
