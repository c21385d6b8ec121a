//! 32-bit ARM (armhf) cores, end to end: fixtures/cross/arm_*.c cross-built with
//! arm-linux-gnueabihf-gcc, crashed under qemu-arm (which writes its own core, without NT_FILE,
//! into its working directory), read by `corecatch bt --json --sysroot --exe` and by
//! gdb-multiarch. The crashed thread's frames up to `main` must be gdb's: function names in
//! order, and the pcs (return addresses without their Thumb bit). The builds cover each way
//! the ARM unwinder steps: `.debug_frame` CFI (-g), EHABI tables (-funwind-tables without -g,
//! and glibc's raise/pthread_kill, which have no CFI), prologue reading (glibc's abort, which
//! has no table, and a build with neither tables nor -g), and both sigreturn trampolines.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

const CC: &str = "arm-linux-gnueabihf-gcc";
const SYSROOT: &str = "/usr/arm-linux-gnueabihf";

/// `fixtures/cross/SRC` built with the ARM cross compiler and `flags`.
fn cross_compile(src: &str, name: &str, flags: &[&str]) -> PathBuf {
    util::compile_with(CC, &util::fixture(&format!("cross/{src}")), name, flags)
}

/// Run `exe args` under qemu-arm in `dir`; the core QEMU wrote.
fn qemu_core(exe: &Path, args: &[&str], dir: &Path) -> PathBuf {
    super::cross::qemu_core("arm", Path::new(SYSROOT), exe, args, dir)
}

/// One frame: its pc (gdb prints none for `<signal handler called>`) and function name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    pc: Option<u64>,
    name: String,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// gdb-multiarch's `thread apply all bt`: the first thread's frames, and them as text.
fn gdb_frames(exe: &Path, core: &Path) -> (Vec<Frame>, String) {
    let sysroot = format!("set sysroot {SYSROOT}");
    let threads = super::zoo::gdb_bt_with("gdb-multiarch", &[&sysroot], exe, core);
    let frames: Vec<Frame> = threads[0]
        .frames
        .iter()
        .map(|f| Frame {
            pc: f.addr,
            name: f.function.clone().unwrap_or_else(|| "??".into()),
        })
        .collect();
    let text = format!("{frames:#?}");
    (frames, text)
}

/// `corecatch bt --json --sysroot --exe EXE CORE`: the crashed thread's frames and its stop
/// reason.
fn our_frames(dir: &Path, exe: &Path, core: &Path) -> (Vec<Frame>, String, String) {
    let o = util::corecatch(
        dir,
        &[
            "bt",
            "--json",
            "--sysroot",
            SYSROOT,
            "--exe",
            exe.to_str().unwrap(),
            core.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", util::stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["core"]["machine"], "arm", "{}", r["core"]);
    let t = r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["crashed"] == true)
        .expect("a crashed thread")
        .clone();
    let frames = t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Frame {
            pc: f["pc"].as_str().and_then(hex),
            name: f["function"].as_str().unwrap_or("??").to_string(),
        })
        .collect();
    let stop = t["stop_reason"].as_str().unwrap_or("").to_string();
    (
        frames,
        stop,
        serde_json::to_string_pretty(&t["frames"]).unwrap(),
    )
}

/// Build `src` with `flags`, crash it under QEMU with `args`, and check our frames against
/// gdb's: the first `upto(gdb)` of gdb's frames (all up to `main`) by name and pc, then
/// `after` by name. Returns our frames and gdb's.
fn check(
    src: &str,
    name: &str,
    flags: &[&str],
    args: &[&str],
    upto: impl Fn(&[Frame]) -> usize,
    after: &[&str],
) -> (Vec<Frame>, Vec<Frame>) {
    let exe = cross_compile(src, name, flags);
    let dir = util::tempdir();
    let core = qemu_core(&exe, args, dir.path());
    let (gdb, gdb_text) = gdb_frames(&exe, &core);
    let (ours, stop, json) = our_frames(dir.path(), &exe, &core);
    let n = upto(&gdb);
    let ctx = || format!("{name}:\ngdb:\n{gdb_text}\nours: {ours:#?}\n{json}");
    assert!(n > 0 && n <= gdb.len(), "{}", ctx());
    assert!(
        ours.len() >= n + after.len(),
        "fewer frames than gdb; {}",
        ctx()
    );
    for (i, (g, o)) in gdb[..n].iter().zip(&ours).enumerate() {
        assert_eq!(g.name, o.name, "frame #{i}; {}", ctx());
        if g.pc.is_some() {
            assert_eq!(g.pc, o.pc, "frame #{i}'s pc; {}", ctx());
        }
    }
    let more: Vec<&str> = ours[n..n + after.len()]
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(more, after, "{}", ctx());
    // Past main (gdb stops there) the walk goes on to _start, where it ends.
    assert_eq!(
        ours.last().map(|f| f.name.as_str()),
        Some("_start"),
        "{}",
        ctx()
    );
    assert_eq!(stop, "end of stack", "{}", ctx());
    (ours, gdb)
}

/// All of gdb's frames through `main`.
fn through_main(gdb: &[Frame]) -> usize {
    gdb.iter()
        .position(|f| f.name == "main")
        .map_or(0, |i| i + 1)
}

const ABORT3: [&str; 8] = ["??", "??", "raise", "abort", "c", "b", "a", "main"];

fn check_abort3(name: &str, flags: &[&str]) {
    let (ours, _) = check("arm_abort3.c", name, flags, &[], through_main, &[]);
    let names: Vec<&str> = ours.iter().take(8).map(|f| f.name.as_str()).collect();
    // libc.so.6 names neither __pthread_kill_implementation nor the syscall stub (gdb shows
    // `??` too); the static libc's symbol table does.
    if flags.contains(&"-static") {
        assert_eq!(
            names[..2],
            [
                "__libc_do_syscall",
                "__pthread_kill_implementation.constprop.0"
            ]
        );
    } else {
        assert_eq!(names[..2], ABORT3[..2]);
    }
    assert_eq!(names[2..], ABORT3[2..], "{ours:#?}");
}

#[test]
fn arm_static_o0_debug_frame_matches_gdb() {
    check_abort3("arm_abort3-static-O0", &["-g", "-O0", "-static"]);
}

#[test]
fn arm_dynamic_o0_debug_frame_matches_gdb() {
    check_abort3("arm_abort3-O0", &["-g", "-O0", "-no-pie"]);
}

#[test]
fn arm_dynamic_o2_debug_frame_matches_gdb() {
    check_abort3("arm_abort3-O2", &["-g", "-O2", "-no-pie"]);
}

/// No `-g`: the executable has no `.debug_frame`, only its EHABI tables.
#[test]
fn arm_o2_ehabi_only_matches_gdb() {
    let flags = ["-O2", "-no-pie", "-funwind-tables"];
    let exe = cross_compile("arm_abort3.c", "arm_abort3-O2-ehabi", &flags);
    let o = Command::new(util::require("arm-linux-gnueabihf-readelf"))
        .arg("-S")
        .arg(&exe)
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&o.stdout);
    assert!(sections.contains(".ARM.exidx"), "{sections}");
    assert!(sections.contains(".ARM.extab"), "{sections}");
    assert!(!sections.contains(".debug_frame"), "{sections}");
    check_abort3("arm_abort3-O2-ehabi", &flags);
}

/// Neither `-g` nor unwind tables: every function of the executable is unwound from its
/// prologue, as gdb does.
#[test]
fn arm_o2_without_tables_reads_prologues_as_gdb() {
    check_abort3("arm_abort3-O2-bare", &["-O2", "-no-pie"]);
}

/// A NULL write in a handler installed with SA_SIGINFO: glibc's `__default_rt_sa_restorer`
/// and the rt_sigframe, then the frames the signal interrupted, up to main.
#[test]
fn arm_rt_signal_frame_matches_gdb() {
    let (ours, _) = check(
        "arm_sighandler.c",
        "arm_sighandler",
        &["-g", "-O0", "-no-pie"],
        &["info"],
        through_main,
        &[],
    );
    let names: Vec<&str> = ours.iter().take(8).map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "crash",
            "on_usr1_info",
            "<signal handler called>",
            "??",
            "??",
            "raise",
            "send",
            "main"
        ]
    );
}

/// A plain sa_handler: `__default_sa_restorer` and the sigframe. gdb reads QEMU's sigframe
/// wrong past the trampoline (it looks for the kernel's 0x5ac3c35a in uc_flags, which QEMU
/// leaves 0, and falls back to the pre-2.6.18 layout), so gdb is the oracle through
/// `<signal handler called>` and the interrupted frames are checked by name after it.
#[test]
fn arm_signal_frame_matches_gdb_through_the_trampoline() {
    let upto = |gdb: &[Frame]| {
        gdb.iter()
            .position(|f| f.name == "<signal handler called>")
            .map_or(0, |i| i + 1)
    };
    check(
        "arm_sighandler.c",
        "arm_sighandler",
        &["-g", "-O0", "-no-pie"],
        &[],
        upto,
        &["??", "??", "raise", "send", "main"],
    );
}

/// Handlers installed without SA_RESTORER return into the kernel's trampoline page (QEMU
/// maps one of its own, with the kernel's Thumb `movs r7, #119` / `#173; svc 0`), which is in
/// no module: gdb does not recognise it and stops there, so gdb is the oracle through the
/// handler and the trampoline's pc; the interrupted frames are checked by name.
#[test]
fn arm_kernel_trampolines_are_recognised_by_their_code() {
    for (mode, handler) in [("raw", "on_usr1"), ("rawinfo", "on_usr1_info")] {
        let upto = |gdb: &[Frame]| {
            gdb.iter()
                .position(|f| f.name == handler)
                .map_or(0, |i| i + 1)
        };
        let (ours, gdb) = check(
            "arm_sighandler.c",
            "arm_sighandler",
            &["-g", "-O0", "-no-pie"],
            &[mode],
            upto,
            &[
                "<signal handler called>",
                "??",
                "??",
                "raise",
                "send",
                "main",
            ],
        );
        let n = upto(&gdb);
        assert_eq!(gdb[n].name, "??", "{mode}: {gdb:#?}");
        assert_eq!(
            ours[n].pc, gdb[n].pc,
            "{mode}: the trampoline's pc: {ours:#?}"
        );
    }
}

/// A fault at a Thumb function's first instruction: frame 0 is at the function's start, which
/// its ELF symbol (no `-g`) gives with the Thumb bit set; it is named as gdb names it, not
/// after the function before it.
#[test]
fn arm_a_fault_at_a_thumb_functions_entry_is_named_by_its_symbol() {
    let (ours, _) = check(
        "arm_thumb_entry.c",
        "arm_thumb_entry",
        &["-O2", "-no-pie", "-mthumb"],
        &[],
        through_main,
        &[],
    );
    assert_eq!(ours[0].name, "load_at_entry", "{ours:#?}");
}
