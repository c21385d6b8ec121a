//! Real crashes from fixtures/zoo (and the seed's abort demo), unwound and symbolized by the
//! library and compared with gdb's `thread apply all bt` on the same core: the crashed thread's
//! function names in order for every frame gdb shows, file basename + line for frames in the
//! program's own code, and every thread present.
//!
//! On purpose we differ from gdb in one way: gdb stops at `main` ("backtrace past-main" is off),
//! we go on to `__libc_start_call_main` and `_start`, so gdb's frames must be a prefix of ours.

use std::path::{Path, PathBuf};
use std::process::Command;

use corecatch::backtrace::{backtrace, Backtraces, Frame, Options, StopReason};

use crate::skip_unless_kernel_cores;
use crate::util;

/// One frame line of gdb's `bt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GdbFrame {
    pub(crate) addr: Option<u64>,
    /// `None` for `??`; `"<signal handler called>"` for a trampoline.
    pub(crate) function: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct GdbThread {
    pub(crate) lwp: i32,
    pub(crate) frames: Vec<GdbFrame>,
}

/// Parse `#N  [0xADDR in ]FUNC (ARGS) [at FILE:LINE | from LIB]` and `Thread N (... (LWP T)):`.
pub(crate) fn parse_gdb(out: &str) -> Vec<GdbThread> {
    let mut threads: Vec<GdbThread> = Vec::new();
    for line in out.lines() {
        if line.starts_with("Thread ") {
            let lwp = line
                .split("LWP ")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(-1);
            threads.push(GdbThread {
                lwp,
                frames: vec![],
            });
            continue;
        }
        let Some(t) = threads.last_mut() else {
            continue;
        };
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((_, rest)) = rest.split_once("  ") else {
            continue;
        };
        let (addr, rest) = match rest.strip_prefix("0x").and_then(|r| r.split_once(" in ")) {
            Some((hex, r)) => (u64::from_str_radix(hex, 16).ok(), r),
            None => (None, rest),
        };
        if rest.starts_with("<signal handler called>") {
            t.frames.push(GdbFrame {
                addr,
                function: Some("<signal handler called>".into()),
                file: None,
                line: None,
            });
            continue;
        }
        let func = rest.split(" (").next().unwrap_or("").trim().to_string();
        let (file, lineno) = match rest.rsplit_once(") at ") {
            Some((_, loc)) => match loc.rsplit_once(':') {
                Some((f, l)) => (Some(f.to_string()), l.trim().parse().ok()),
                None => (Some(loc.to_string()), None),
            },
            None => (None, None),
        };
        t.frames.push(GdbFrame {
            addr,
            function: (func != "??").then_some(func),
            file,
            line: lineno,
        });
    }
    threads
}

fn gdb_bt(exe: &Path, core: &Path) -> Vec<GdbThread> {
    gdb_bt_with("gdb", &[], exe, core)
}

/// `GDB -batch -nx [-ex SETTING]... -ex 'thread apply all bt' EXE CORE`, parsed (gdb-multiarch
/// with `set sysroot` for another architecture's core).
pub(crate) fn gdb_bt_with(gdb: &str, settings: &[&str], exe: &Path, core: &Path) -> Vec<GdbThread> {
    let mut cmd = Command::new(util::require(gdb));
    cmd.args(["-batch", "-nx", "-ex", "set debuginfod enabled off"]);
    for s in settings {
        cmd.args(["-ex", s]);
    }
    let out = cmd
        .args(["-ex", "thread apply all bt"])
        .arg(exe)
        .arg(core)
        .output()
        .expect("gdb runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let threads = parse_gdb(&text);
    assert!(!threads.is_empty(), "no threads in gdb's output:\n{text}");
    threads
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

struct Crash {
    exe: PathBuf,
    core: PathBuf,
    _dir: tempfile::TempDir,
}

fn crash(exe: PathBuf) -> Crash {
    let dir = util::tempdir();
    let core = util::crash_for_core(&exe, &[], dir.path());
    Crash {
        exe,
        core,
        _dir: dir,
    }
}

fn ours(c: &Crash, opts: &Options) -> Backtraces {
    let bytes = std::fs::read(&c.core).unwrap();
    let core = corecatch::elf_core::parse(&bytes).unwrap();
    backtrace(&core, opts)
}

pub(crate) fn render(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| {
            format!(
                "  {:#x}{} {} at {}:{}{}\n",
                f.pc,
                if f.inlined { " (inlined)" } else { "" },
                f.function.as_deref().unwrap_or("??"),
                f.file.as_deref().map(basename).unwrap_or("?"),
                f.line.unwrap_or(0),
                if f.signal_trampoline { " <signal>" } else { "" }
            )
        })
        .collect()
}

/// The longest prefix of `s` before a trailing balanced `(...)` (and a `const` after it).
fn strip_params(s: &str) -> &str {
    let t = s.trim_end().trim_end_matches(" const");
    if !t.ends_with(')') {
        return s;
    }
    let mut depth = 0;
    for (i, c) in t.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return t[..i].trim_end();
                }
            }
            _ => {}
        }
    }
    s
}

/// `s` without any `<...>` generic or template arguments.
fn strip_generics(s: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether our function name is the one gdb printed. Deliberate differences, allowed only
/// outside the program's own code and libc:
/// - gdb prints names that come from the ELF symbol table (no DWARF, e.g. libstdc++'s
///   `std::terminate()`) with the C++ parameter list; the report contract has no parameter
///   lists, so gdb's is stripped (everywhere).
/// - for Rust, gdb composes names from the DWARF DIE tree (`core::ptr::mut_ptr::{impl#0}::
///   write_volatile<i32>`, `std::rt::__rust_abort`); we demangle the linkage name
///   (`core::ptr::mut_ptr::<impl *mut T>::write_volatile`, `__rustc::__rust_abort`), which has
///   no generic arguments, and rustc exports some runtime symbols under `__rustc::`. Such frames
///   must still be at the same position with the same pc (checked by the caller).
fn same_name(gdb: &str, ours: &str, exact: bool) -> bool {
    let g = strip_params(gdb);
    if g == ours {
        return true;
    }
    if exact {
        return false;
    }
    strip_generics(g) == strip_generics(ours)
        || ours.starts_with("__rustc::")
        || g.contains("{impl#")
        || ours.contains("<impl ")
        || g.contains("{closure_env#")
}

/// Compare one thread: gdb's frames must be a prefix of ours, names
/// equal; own-code frames (file under fixtures/) must agree on file basename and line.
pub(crate) fn compare_thread(g: &GdbThread, frames: &[Frame], what: &str) {
    let ctx = || {
        format!(
            "{what}, thread {}:\ngdb: {:#?}\nours:\n{}",
            g.lwp,
            g.frames,
            render(frames)
        )
    };
    for (i, gf) in g.frames.iter().enumerate() {
        let of = frames
            .get(i)
            .unwrap_or_else(|| panic!("fewer frames than gdb; {}", ctx()));
        match gf.function.as_deref() {
            Some("<signal handler called>") => {
                assert!(
                    of.signal_trampoline,
                    "frame {i} is not a signal frame; {}",
                    ctx()
                )
            }
            Some(name) => {
                let own = gf.file.as_deref().is_some_and(|f| f.contains("fixtures/"));
                let libc = of
                    .module
                    .as_deref()
                    .is_some_and(|m| m.contains("/libc.so") || m.contains("/ld-linux"));
                assert!(
                    same_name(name, of.function.as_deref().unwrap_or("??"), own || libc),
                    "frame {i} function differs (gdb {name:?}, ours {:?}); {}",
                    of.function,
                    ctx()
                )
            }
            None => {}
        }
        if let Some(a) = gf.addr {
            assert_eq!(of.pc, a, "frame {i} pc differs; {}", ctx());
        }
        if let Some(file) = gf.file.as_deref().filter(|f| f.contains("fixtures/")) {
            assert_eq!(
                of.file.as_deref().map(basename),
                Some(basename(file)),
                "frame {i} file differs; {}",
                ctx()
            );
            assert_eq!(of.line, gf.line, "frame {i} line differs; {}", ctx());
        }
    }
}

/// Run gdb and the library on one crash and compare every thread gdb shows.
fn check_against_gdb(exe: PathBuf, what: &str) -> (Backtraces, Vec<GdbThread>) {
    check_against_gdb_with(crash(exe), what)
}

/// [`check_against_gdb`] on a crash made by the caller (arguments, a prepared directory).
fn check_against_gdb_with(c: Crash, what: &str) -> (Backtraces, Vec<GdbThread>) {
    let ours = ours(&c, &Options::default());
    let gdb = gdb_bt(&c.exe, &c.core);
    for g in &gdb {
        let t = ours
            .threads
            .iter()
            .find(|t| t.tid == g.lwp)
            .unwrap_or_else(|| panic!("{what}: thread {} missing from ours", g.lwp));
        compare_thread(g, &t.frames, what);
    }
    assert_eq!(ours.threads.len(), gdb.len(), "{what}: thread count");
    let crashed: Vec<_> = ours.threads.iter().filter(|t| t.crashed).collect();
    assert_eq!(crashed.len(), 1, "{what}: exactly one crashed thread");
    (ours, gdb)
}

fn zoo(src: &str, name: &str, flags: &[&str]) -> PathBuf {
    util::compile(&util::fixture(&format!("zoo/{src}")), name, flags)
}

pub(crate) fn crashed_frames(b: &Backtraces) -> &[Frame] {
    &b.threads.iter().find(|t| t.crashed).unwrap().frames
}

pub(crate) fn function_names(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f.function.as_deref().unwrap_or("??"))
        .collect()
}

#[test]
fn abort_demo_matches_gdb() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(util::abort_demo(), "abort demo");
    let names = function_names(crashed_frames(&b));
    // libc6-dbg is installed: libc frames have their DWARF names, including inlined ones.
    assert!(names.contains(&"__GI_abort"), "{names:?}");
    assert!(names.contains(&"main"), "{names:?}");
    let t = b.threads.iter().find(|t| t.crashed).unwrap();
    assert_eq!(t.stop, StopReason::EndOfStack, "{:?}", names);
    assert_eq!(
        names.last(),
        Some(&"_start"),
        "walk goes past main to _start"
    );
}

#[test]
fn nested_o0_segv_matches_gdb() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(zoo("nested.c", "zoo-nested", &["-g", "-O0"]), "nested");
    let names = function_names(crashed_frames(&b));
    assert_eq!(&names[..4], ["level3", "level2", "level1", "main"]);
}

#[test]
fn inlined_o2_matches_gdb() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(zoo("inlined.c", "zoo-inlined", &["-g", "-O2"]), "inlined");
    let f = crashed_frames(&b);
    assert_eq!(function_names(&f[..4]), ["inner", "middle", "work", "main"]);
    assert!(
        f[0].inlined && f[1].inlined && !f[2].inlined,
        "{}",
        render(f)
    );
}

#[test]
fn omit_frame_pointer_matches_gdb() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(
        zoo("nofp.c", "zoo-nofp", &["-g", "-O2", "-fomit-frame-pointer"]),
        "nofp",
    );
    let names = function_names(crashed_frames(&b));
    assert_eq!(&names[..4], ["crash", "mid", "outer", "main"]);
}

#[test]
fn no_debug_info_uses_symbol_table() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(zoo("nested.c", "zoo-nested-nosym", &["-O0"]), "nosym");
    let f = crashed_frames(&b);
    assert_eq!(
        function_names(&f[..4]),
        ["level3", "level2", "level1", "main"]
    );
    assert!(
        f[0].symbol_offset.is_some() && f[0].file.is_none(),
        "{}",
        render(f)
    );
}

#[test]
fn five_threads_all_present() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(
        zoo("threads.c", "zoo-threads", &["-g", "-O0", "-pthread"]),
        "threads",
    );
    assert_eq!(b.threads.len(), 5);
    let names = function_names(crashed_frames(&b));
    assert_eq!(&names[..2], ["crash_here", "worker"]);
}

#[test]
fn crash_in_signal_handler_unwinds_through_restore_rt() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(zoo("sighandler.c", "zoo-sighandler", &["-g", "-O0"]), "sig");
    let f = crashed_frames(&b);
    let names = function_names(f);
    let tramp = f
        .iter()
        .position(|f| f.signal_trampoline)
        .expect("a signal frame");
    assert_eq!(&names[..tramp], ["handler_crash", "handler"]);
    // Looked up at its own address, not pc − 1 (which is the padding nop before it).
    assert_eq!(names[tramp], "__restore_rt");
    assert!(names[tramp..].contains(&"interrupted"), "{names:?}");
}

#[test]
fn sigfpe_matches_gdb() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(zoo("fpe.c", "zoo-fpe", &["-g", "-O0"]), "fpe");
    assert_eq!(&function_names(crashed_frames(&b))[..2], ["divide", "main"]);
}

#[test]
fn stack_overflow_stops_at_frame_limit() {
    skip_unless_kernel_cores!();
    let c = crash(zoo("recursion.c", "zoo-recursion", &["-g", "-O0"]));
    let opts = Options {
        max_frames: 200,
        ..Options::default()
    };
    let b = ours(&c, &opts);
    let t = b.threads.iter().find(|t| t.crashed).unwrap();
    assert_eq!(t.stop, StopReason::FrameLimit);
    assert_eq!(t.frames.len(), 200);
    assert!(t
        .frames
        .iter()
        .all(|f| f.function.as_deref() == Some("recurse")));
    // gdb agrees on the innermost frames (its full bt would be ~30000 frames long, so ask for 5).
    let out = Command::new(util::require("gdb"))
        .args([
            "-batch",
            "-nx",
            "-ex",
            "set debuginfod enabled off",
            "-ex",
            "thread apply all bt 5",
        ])
        .arg(&c.exe)
        .arg(&c.core)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let g = parse_gdb(&text);
    assert_eq!(g[0].frames.len(), 5, "{text}");
    compare_thread(&g[0], &t.frames, "recursion");
}

#[test]
fn deadline_in_the_past_times_out_cleanly() {
    skip_unless_kernel_cores!();
    let c = crash(util::abort_demo());
    let opts = Options {
        deadline: Some(std::time::Instant::now()),
        ..Options::default()
    };
    let b = ours(&c, &opts);
    assert!(b.threads.iter().all(|t| t.stop == StopReason::Timeout));
    assert!(b.warnings.iter().any(|w| w.contains("deadline")));
}

#[test]
fn gdb_parser_reads_the_frame_forms() {
    let text = "Thread 2 (Thread 0x7f (LWP 42)):\n\
        #0  __pthread_kill_implementation (threadid=<optimized out>, signo=signo@entry=6) at ./nptl/pthread_kill.c:44\n\
        #1  0x00007fac62123f4f in __GI_raise (sig=sig@entry=6) at ../sysdeps/posix/raise.c:26\n\
        #2  <signal handler called>\n\
        #3  0x0000000000401136 in level3 ()\n\
        #4  0x00007f in ?? () from /lib/x.so\n";
    let t = parse_gdb(text);
    assert_eq!(t[0].lwp, 42);
    let f = &t[0].frames;
    assert_eq!(f.len(), 5);
    assert_eq!(
        f[0].function.as_deref(),
        Some("__pthread_kill_implementation")
    );
    assert_eq!((f[0].addr, f[0].line), (None, Some(44)));
    assert_eq!(f[1].addr, Some(0x7fac62123f4f));
    assert_eq!(f[1].file.as_deref(), Some("../sysdeps/posix/raise.c"));
    assert_eq!(f[2].function.as_deref(), Some("<signal handler called>"));
    assert_eq!(
        (f[3].function.as_deref(), f[3].file.as_deref()),
        (Some("level3"), None)
    );
    assert_eq!(f[4].function, None);
}

#[test]
fn build_id_mismatch_is_reported_and_the_file_not_trusted() {
    skip_unless_kernel_cores!();
    let c = crash(zoo("nested.c", "zoo-nested", &["-g", "-O0"]));
    // The same source built differently: another build-id.
    let other = zoo("nested.c", "zoo-nested-O1", &["-g", "-O1"]);
    let b = ours(
        &c,
        &Options {
            exe_override: Some(other),
            ..Options::default()
        },
    );
    let m = b
        .modules
        .iter()
        .find(|m| Path::new(&m.path) == c.exe)
        .unwrap();
    assert_eq!(
        m.status,
        corecatch::backtrace::ModuleStatus::BuildIdMismatch
    );
    let core_id = m.build_id.clone().unwrap();
    let w = b
        .warnings
        .iter()
        .find(|w| w.contains("build-id"))
        .unwrap_or_else(|| panic!("no build-id warning: {:?}", b.warnings));
    assert!(w.contains(&core_id), "{w}");
    // Frames in the executable are not named from the wrong file.
    let f = crashed_frames(&b);
    assert!(f
        .iter()
        .filter(|f| f.module.as_deref() == Some(m.path.as_str()))
        .all(|f| f.function.is_none()));
}

#[test]
fn separate_debug_file_in_debug_dir_is_found_by_build_id() {
    skip_unless_kernel_cores!();
    let full = zoo("nested.c", "zoo-nested", &["-g", "-O0"]);
    let dir = util::tempdir();
    // A stripped copy of the executable crashes; its DWARF lives in DEBUGDIR/.build-id/xx/rest.debug.
    let stripped = dir.path().join("stripped");
    let dbgdir = dir.path().join("dbg");
    let run = |args: &[&std::ffi::OsStr]| {
        let st = Command::new("objcopy").args(args).status().unwrap();
        assert!(st.success());
    };
    run(&[
        "--strip-debug".as_ref(),
        full.as_os_str(),
        stripped.as_os_str(),
    ]);
    let id = {
        // binutils' own reading of the build-id, not ours.
        let o = Command::new("readelf")
            .arg("-n")
            .arg(&stripped)
            .output()
            .unwrap();
        let notes = String::from_utf8_lossy(&o.stdout).into_owned();
        notes
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: "))
            .unwrap_or_else(|| panic!("no build-id in readelf -n: {notes}"))
            .trim()
            .to_string()
    };
    let dst = dbgdir.join(".build-id").join(&id[..2]);
    std::fs::create_dir_all(&dst).unwrap();
    let dbg = dst.join(format!("{}.debug", &id[2..]));
    run(&[
        "--only-keep-debug".as_ref(),
        full.as_os_str(),
        dbg.as_os_str(),
    ]);

    let core = util::crash_for_core(&stripped, &[], dir.path());
    let bytes = std::fs::read(&core).unwrap();
    let parsed = corecatch::elf_core::parse(&bytes).unwrap();
    let without = backtrace(&parsed, &Options::default());
    assert!(crashed_frames(&without)[0].file.is_none());
    let with = backtrace(
        &parsed,
        &Options {
            debug_dirs: vec![dbgdir.clone()],
            ..Options::default()
        },
    );
    let f = &crashed_frames(&with)[0];
    assert_eq!(f.function.as_deref(), Some("level3"));
    assert_eq!(f.file.as_deref().map(basename), Some("nested.c"));
    assert_eq!(f.line, Some(6));
    let m = with
        .modules
        .iter()
        .find(|m| m.path.ends_with("stripped"))
        .unwrap();
    assert_eq!(m.debug_file.as_deref(), Some(dbg.to_str().unwrap()));
}

/// Frames as the report JSON holds them, back into the library's type for `compare_thread`.
pub(crate) fn frames_from_json(v: &serde_json::Value) -> Vec<Frame> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let function = f["function"].as_str().map(str::to_string);
            Frame {
                pc: u64::from_str_radix(f["pc"].as_str().unwrap().trim_start_matches("0x"), 16)
                    .unwrap(),
                module: f["module"].as_str().map(str::to_string),
                signal_trampoline: function.as_deref() == Some("<signal handler called>"),
                function,
                file: f["file"].as_str().map(str::to_string),
                line: f["line"].as_u64().map(|l| l as u32),
                column: f["column"].as_u64().map(|c| c as u32),
                inlined: f["inlined"].as_bool().unwrap(),
                trust: corecatch::backtrace::FrameTrust::Cfi,
                symbol_offset: None,
                args: None,
                locals: None,
            }
        })
        .collect()
}

#[test]
fn run_report_and_bt_json_match_gdb() {
    skip_unless_kernel_cores!();
    let exe = zoo("inlined.c", "zoo-inlined-cli", &["-g", "-O2"]);
    let dir = util::tempdir();
    let o = util::corecatch(
        dir.path(),
        &[
            "run",
            "--keep-cores",
            "--out",
            "out",
            "--",
            exe.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(139), "{err}");
    assert!(
        err.contains("#0 "),
        "the crashed thread's frames are in the summary: {err}"
    );
    let core = util::cores_in(dir.path())
        .pop()
        .expect("--keep-cores keeps the core");
    let gdb = gdb_bt(&exe, &core);
    let json_path = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("manifest.json"))
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(report["threads"].as_array().unwrap().len(), gdb.len());
    let crashed = &report["threads"][0];
    assert_eq!(crashed["crashed"], true);
    assert_eq!(crashed["tid"], report["crashed_tid"]);
    let g = gdb
        .iter()
        .find(|g| g.lwp as i64 == crashed["tid"].as_i64().unwrap())
        .unwrap();
    compare_thread(
        g,
        &frames_from_json(&crashed["frames"]),
        "run's report.json",
    );
    assert!(
        crashed["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["inlined"] == true),
        "the -O2 build has inlined frames"
    );

    // `bt --full --json` on the same core gives the same frames (run reports the crashed
    // thread's locals, bt only with --full); `bt` text numbers them as gdb does.
    let bt = util::corecatch(
        dir.path(),
        &["bt", "--full", "--json", core.to_str().unwrap()],
    );
    assert_eq!(bt.status.code(), Some(0));
    let again: serde_json::Value = serde_json::from_slice(&bt.stdout).unwrap();
    assert_eq!(again["threads"][0]["frames"], crashed["frames"]);
    let text = util::corecatch(dir.path(), &["bt", core.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    let first_own = g
        .frames
        .iter()
        .find(|f| f.file.as_deref().is_some_and(|f| f.contains("fixtures/")))
        .unwrap();
    // `inner (v=4, p=0x0) at …/inlined.c:9`: the name, its arguments, the place.
    let name = format!(" {} (", first_own.function.as_deref().unwrap());
    let at = format!(
        ") at {}:{}",
        first_own.file.as_deref().unwrap(),
        first_own.line.unwrap()
    );
    assert!(
        text.lines().any(|l| l.contains(&name) && l.contains(&at)),
        "{name}…{at} not in:\n{text}"
    );
}

#[test]
fn failed_assert_message_is_read_from_the_core_as_gdb_reads_it() {
    skip_unless_kernel_cores!();
    let exe = zoo("assert.c", "zoo-assert", &["-g", "-O0"]);
    let c = crash(exe);
    let b = ours(&c, &Options::default());
    let msg = b.abort_message.clone().expect("an abort message");
    assert!(msg.ends_with("check: Assertion `x == 2' failed."), "{msg}");
    assert!(msg.contains("assert.c:7:"), "{msg}");
    // gdb, reading the same core with libc6-dbg, prints the same string.
    let o = Command::new(util::require("gdb"))
        .args(["-batch", "-nx", "-ex", "set debuginfod enabled off"])
        .args(["-ex", "print __abort_msg->msg"])
        .arg(&c.exe)
        .arg(&c.core)
        .output()
        .unwrap();
    let gdb = String::from_utf8_lossy(&o.stdout);
    assert!(gdb.contains(&msg), "gdb says: {gdb}\nours: {msg}");
    // And the CLI shows it under the headline.
    let text = util::corecatch(c._dir.path(), &["bt", c.core.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("abort message: {msg}")), "{text}");
    // A plain abort() leaves no message.
    let plain = crash(util::abort_demo());
    assert_eq!(ours(&plain, &Options::default()).abort_message, None);
}

#[test]
fn sigill_matches_gdb() {
    skip_unless_kernel_cores!();
    let (b, _) = check_against_gdb(zoo("ill.c", "zoo-ill", &["-g", "-O0"]), "sigill");
    assert_eq!(
        &function_names(crashed_frames(&b))[..2],
        ["bad_instruction", "main"]
    );
}

#[test]
fn static_executable_matches_gdb() {
    skip_unless_kernel_cores!();
    let exe = zoo("static.c", "zoo-static", &["-g", "-O0", "-static"]);
    let (b, _) = check_against_gdb(exe, "static");
    assert_eq!(
        &function_names(crashed_frames(&b))[..3],
        ["store", "outer", "main"]
    );
}

#[test]
fn stripped_with_gnu_debuglink_matches_gdb() {
    skip_unless_kernel_cores!();
    let full = zoo("nested.c", "zoo-nested", &["-g", "-O0"]);
    let dir = util::tempdir();
    let exe = dir.path().join("linked");
    let dbg = dir.path().join("linked.debug");
    let objcopy = |args: &[&std::ffi::OsStr]| {
        assert!(Command::new("objcopy")
            .args(args)
            .status()
            .unwrap()
            .success());
    };
    objcopy(&[
        "--only-keep-debug".as_ref(),
        full.as_os_str(),
        dbg.as_os_str(),
    ]);
    objcopy(&["--strip-debug".as_ref(), full.as_os_str(), exe.as_os_str()]);
    // The link is recorded by file name; objcopy must run where the debug file is.
    let st = Command::new("objcopy")
        .current_dir(dir.path())
        .args(["--add-gnu-debuglink=linked.debug", "linked"])
        .status()
        .unwrap();
    assert!(st.success());
    let core = util::crash_for_core(&exe, &[], dir.path());
    let c = Crash {
        exe,
        core,
        _dir: dir,
    };
    let (b, _) = check_against_gdb_with(c, "stripped + .gnu_debuglink");
    let f = &crashed_frames(&b)[0];
    assert_eq!(
        f.file.as_deref().map(basename),
        Some("nested.c"),
        "{}",
        render(crashed_frames(&b))
    );
    let m = b
        .modules
        .iter()
        .find(|m| m.path.ends_with("/linked"))
        .unwrap();
    assert!(
        m.debug_file
            .as_deref()
            .is_some_and(|d| d.ends_with("linked.debug")),
        "{m:?}"
    );
}

#[test]
fn crash_in_a_dlopened_library_matches_gdb() {
    skip_unless_kernel_cores!();
    let plugin = zoo(
        "plugin.c",
        "zoo-plugin.so",
        &["-g", "-O0", "-shared", "-fPIC"],
    );
    let exe = zoo("dlopen.c", "zoo-dlopen", &["-g", "-O0"]);
    let dir = util::tempdir();
    let core = util::crash_for_core(&exe, &[plugin.to_str().unwrap()], dir.path());
    let c = Crash {
        exe,
        core,
        _dir: dir,
    };
    let (b, _) = check_against_gdb_with(c, "dlopen");
    let frames = crashed_frames(&b);
    assert_eq!(
        &function_names(frames)[..3],
        ["plugin_inner", "plugin_crash", "main"]
    );
    assert_eq!(frames[0].module.as_deref(), plugin.to_str());
    assert_eq!(frames[0].file.as_deref().map(basename), Some("plugin.c"));
}

#[test]
fn uncaught_cpp_exception_matches_gdb() {
    skip_unless_kernel_cores!();
    let exe = zoo("exception.cpp", "zoo-exception", &["-g", "-O0"]);
    let (b, _) = check_against_gdb(exe, "c++ exception");
    let names = function_names(crashed_frames(&b));
    for want in [
        "std::terminate",
        "__cxa_throw",
        "shop::Cart::checkout",
        "process<shop::Cart>",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

/// Only mangled names are demangled: a C++ unit's `extern "C"` functions `f`, `i` and `d`
/// carry plain DWARF names, which a demangler would read as the types float, int, double.
#[test]
fn plain_cpp_names_are_not_demangled_into_types() {
    skip_unless_kernel_cores!();
    let exe = zoo("plain_names.cpp", "zoo-plain-names", &["-g", "-O0"]);
    let (b, _) = check_against_gdb(exe, "plain C++ names");
    let names = function_names(crashed_frames(&b));
    let own: Vec<&str> = names
        .iter()
        .copied()
        .skip_while(|n| *n != "f")
        .take(4)
        .collect();
    assert_eq!(own, ["f", "i", "d", "main"], "{names:?}");
    for typ in ["float", "int", "double"] {
        assert!(!names.contains(&typ), "{typ} in {names:?}");
    }
}

#[test]
fn rust_panic_abort_matches_gdb() {
    skip_unless_kernel_cores!();
    let exe = zoo(
        "panic_abort.rs",
        "zoo-panic-abort",
        &["-g", "-C", "panic=abort"],
    );
    let (b, _) = check_against_gdb(exe, "rust panic=abort");
    let names = function_names(crashed_frames(&b));
    for want in [
        "panic_abort::parse_config",
        "panic_abort::load",
        "panic_abort::main",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

#[test]
fn rust_null_write_matches_gdb() {
    skip_unless_kernel_cores!();
    let exe = zoo("null_write.rs", "zoo-null-write", &["-g"]);
    let (b, _) = check_against_gdb(exe, "rust null write");
    let names = function_names(crashed_frames(&b));
    assert!(
        names[0].starts_with("core::ptr::write_volatile") || names[0] == "null_write::store",
        "{names:?}"
    );
    for want in ["null_write::store", "null_write::run", "null_write::main"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}
