//! Other architectures' real crashes, compared with gdb: the zoo's programs built at test time
//! with Debian's cross compilers and run under QEMU's user mode (which writes the guest's core,
//! without NT_FILE: the libraries come from the link map), checked against `gdb-multiarch` with
//! `set sysroot` on the same core; and 32-bit x86 (`gcc -m32`) kernel cores against gdb.
//!
//! As in `zoo.rs`, gdb's frames (it stops at `main`) must be a prefix of ours, with the same pcs
//! and names, and the same file and line in the program's own code; every thread is compared.

use std::path::{Path, PathBuf};
use std::process::Command;

use corecatch::backtrace::{backtrace, Backtraces, Options};

use super::zoo::{compare_thread, crashed_frames, function_names, gdb_bt_with, render};
use crate::skip_unless_kernel_cores;
use crate::util;

/// One target: QEMU's name for it, the cross compiler's triple, and `core.machine`'s name.
#[derive(Clone, Copy)]
struct Target {
    qemu: &'static str,
    triple: &'static str,
    machine: &'static str,
    /// QEMU dumps the page its signal trampoline is in. QEMU 7.2 puts the trampoline of
    /// ppc64le and s390x in a page of its own that its cores leave out (a kernel's core holds
    /// the vDSO's, or s390's on the stack: elfutils' cores cover those in `peer_cores.rs`).
    sigtramp_dumped: bool,
}

const AARCH64: Target = Target {
    qemu: "aarch64",
    triple: "aarch64-linux-gnu",
    machine: "aarch64",
    sigtramp_dumped: true,
};
const ARM: Target = Target {
    qemu: "arm",
    triple: "arm-linux-gnueabihf",
    machine: "arm",
    sigtramp_dumped: true,
};
const PPC64LE: Target = Target {
    qemu: "ppc64le",
    triple: "powerpc64le-linux-gnu",
    machine: "ppc64le",
    sigtramp_dumped: false,
};
const S390X: Target = Target {
    qemu: "s390x",
    triple: "s390x-linux-gnu",
    machine: "s390x",
    sigtramp_dumped: false,
};

impl Target {
    /// Where Debian's `libc6-*-cross` puts the target's libraries (QEMU's `-L`, gdb's sysroot).
    fn sysroot(&self) -> PathBuf {
        PathBuf::from("/usr").join(self.triple)
    }

    /// `src` (under fixtures/) built with the target's gcc and `flags`.
    fn build(&self, src: &str, flags: &[&str]) -> PathBuf {
        let name = format!(
            "cross-{}-{}{}",
            self.qemu,
            Path::new(src).file_stem().unwrap().to_str().unwrap(),
            flags.concat()
        );
        util::compile_with(
            &format!("{}-gcc", self.triple),
            &util::fixture(src),
            &name,
            flags,
        )
    }
}

/// A crash under QEMU: the guest's core and the directory it is in.
struct Crash {
    exe: PathBuf,
    core: PathBuf,
    _dir: tempfile::TempDir,
}

/// Run `exe args` under `qemu-QEMU -L SYSROOT` in `dir` with RLIMIT_CORE raised, and return the
/// one core QEMU wrote there (`qemu_<prog>_<date>-<pid>.core`).
pub(crate) fn qemu_core(
    qemu: &str,
    sysroot: &Path,
    exe: &Path,
    args: &[&str],
    dir: &Path,
) -> PathBuf {
    let mut cmd = Command::new(util::require(&format!("qemu-{qemu}")));
    cmd.arg("-L")
        .arg(sysroot)
        .arg(exe)
        .args(args)
        .current_dir(dir);
    util::raise_core_limit(&mut cmd);
    // QEMU re-raises the guest's signal on itself: the host core it may leave (under the
    // machine's core_pattern) stays in this directory, deleted with it. The lock keeps
    // core_pattern changes of other tests away meanwhile.
    let _shared = util::CrashLock::shared();
    let o = cmd.output().unwrap();
    assert!(
        !o.status.success(),
        "{} did not crash under QEMU",
        exe.display()
    );
    let cores: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("qemu_") && name.ends_with(".core")
        })
        .collect();
    assert_eq!(
        cores.len(),
        1,
        "one qemu_*.core in {}: {cores:?} ({})",
        dir.display(),
        util::stderr(&o)
    );
    cores.into_iter().next().unwrap()
}

/// [`qemu_core`] of `exe` for target `t`, in a fresh directory.
fn crash_under_qemu(t: Target, exe: PathBuf) -> Crash {
    let dir = util::tempdir();
    let core = qemu_core(t.qemu, &t.sysroot(), &exe, &[], dir.path());
    Crash {
        exe,
        core,
        _dir: dir,
    }
}

/// Our backtrace of `c` (with `opts`) and gdb's (`gdb` with `settings`), every thread compared.
fn check(c: &Crash, opts: &Options, gdb: &str, settings: &[&str], what: &str) -> Backtraces {
    let bytes = std::fs::read(&c.core).unwrap();
    let core = corecatch::elf_core::parse(&bytes).unwrap();
    let ours = backtrace(&core, opts);
    let gdb = gdb_bt_with(gdb, settings, &c.exe, &c.core);
    for g in &gdb {
        // QEMU's cores number threads as the host does; gdb shows them in the same order.
        let t = ours
            .threads
            .iter()
            .find(|t| t.tid == g.lwp)
            .unwrap_or_else(|| {
                panic!(
                    "{what}: thread {} missing from ours ({:?})",
                    g.lwp,
                    ours.threads.iter().map(|t| t.tid).collect::<Vec<_>>()
                )
            });
        compare_thread(g, &t.frames, what);
    }
    assert_eq!(ours.threads.len(), gdb.len(), "{what}: thread count");
    ours
}

/// Build `src` for `t`, crash it under QEMU, and compare with gdb-multiarch.
fn qemu_check(t: Target, src: &str, flags: &[&str]) -> Backtraces {
    qemu_backtrace(t, src, flags, true)
}

/// [`qemu_check`] without gdb: our backtrace only.
fn qemu_ours(t: Target, src: &str, flags: &[&str]) -> Backtraces {
    qemu_backtrace(t, src, flags, false)
}

fn qemu_backtrace(t: Target, src: &str, flags: &[&str], with_gdb: bool) -> Backtraces {
    let c = crash_under_qemu(t, t.build(src, flags));
    let what = format!("{} {src} {}", t.machine, flags.join(" "));
    let bytes = std::fs::read(&c.core).unwrap();
    let core = corecatch::elf_core::parse(&bytes).unwrap();
    let big = core.endian == corecatch::elf_core::Endian::Big;
    assert_eq!(core.machine.name(core.is_64, big), t.machine, "{what}");
    assert!(
        core.files.is_empty(),
        "{what}: QEMU's cores have no NT_FILE"
    );
    let opts = Options {
        sysroot: Some(t.sysroot()),
        exe_override: Some(c.exe.clone()),
        ..Options::default()
    };
    let b = if with_gdb {
        let sysroot = format!("set sysroot {}", t.sysroot().display());
        check(&c, &opts, "gdb-multiarch", &[&sysroot], &what)
    } else {
        backtrace(&core, &opts)
    };
    assert!(
        !crashed_frames(&b).is_empty(),
        "{what}: no frames\n{:?}",
        b.warnings
    );
    b
}

/// `corecatch debug` on a QEMU core (no NT_FILE): gdb-multiarch is chosen for the foreign
/// architecture, the executable is found by AT_EXECFN, and its `thread apply all bt` is what
/// gdb-multiarch shows given the files itself.
#[test]
fn debug_opens_a_qemu_core_in_gdb_multiarch() {
    let t = AARCH64;
    let c = crash_under_qemu(
        t,
        t.build("zoo/threads.c", &["-g", "-O0", "-static", "-pthread"]),
    );
    let want = gdb_bt_with("gdb-multiarch", &[], &c.exe, &c.core);
    let o = Command::new(util::bin())
        .arg("debug")
        .arg(&c.core)
        .args(["--batch", "-ex", "thread apply all bt"])
        .env("CORECATCH_CACHE", c._dir.path().join("cache"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", util::stderr(&o));
    let got = crate::zoo::parse_gdb(&out);
    let key = |g: &[crate::zoo::GdbThread]| -> Vec<(i32, Vec<Option<String>>)> {
        g.iter()
            .map(|t| (t.lwp, t.frames.iter().map(|f| f.function.clone()).collect()))
            .collect()
    };
    assert_eq!(key(&got), key(&want), "{out}");
    assert!(
        want.iter().any(|t| t
            .frames
            .iter()
            .any(|f| f.function.as_deref() == Some("crash_here"))),
        "{out}"
    );
    let o = Command::new(util::bin())
        .args(["debug", "--print-command"])
        .arg(&c.core)
        .env("CORECATCH_CACHE", c._dir.path().join("cache"))
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.starts_with("gdb-multiarch "), "{line}");
    assert!(line.contains(c.exe.to_str().unwrap()), "{line}");
}

/// The names of the crashed thread's frames, `main` included, as a vector of owned names.
fn up_to_main(b: &Backtraces) -> Vec<String> {
    let f = crashed_frames(b);
    let names = function_names(f);
    let end = names
        .iter()
        .position(|n| *n == "main")
        .unwrap_or_else(|| panic!("no main in\n{}", render(f)));
    names[..=end].iter().map(|s| s.to_string()).collect()
}

/// Every target: the abort demo static and dynamic (non-PIE and PIE, libraries through the
/// link map), a NULL write three calls deep, five threads, a crash in a signal handler, -O2
/// with inlined frames.
fn every_program(t: Target) {
    // gdb-multiarch 13 does not relocate a PIE in a core without NT_FILE (frame 0 is `??` and
    // its walk ends): PIE builds are checked against the same program built without PIE.
    for flags in [&["-g", "-O0", "-static"][..], &["-g", "-O0", "-no-pie"]] {
        let b = qemu_check(t, "abort/main.c", flags);
        let names = up_to_main(&b);
        assert!(
            names.ends_with(&["abort".into(), "main".into()]),
            "{names:?}"
        );
        if !flags.contains(&"-static") {
            assert!(
                b.modules.iter().any(|m| m.path.ends_with("/libc.so.6")),
                "{} {flags:?}: libc from the link map: {:#?}",
                t.machine,
                b.modules
            );
        }
    }
    let b = qemu_check(t, "zoo/nested.c", &["-g", "-O0", "-no-pie"]);
    if t.machine == "s390x" {
        // s390x's -O0 leaf keeps its stack pointer in f0, which QEMU's cores do not hold:
        // like gdb, the walk gives the caller from r14 and ends.
        assert_eq!(function_names(crashed_frames(&b)), ["level3", "level2"]);
    } else {
        assert_eq!(up_to_main(&b), ["level3", "level2", "level1", "main"]);
    }
    let b = qemu_check(t, "zoo/threads.c", &["-g", "-O0", "-pthread", "-no-pie"]);
    assert_eq!(b.threads.len(), 5, "{}: five threads", t.machine);
    assert_eq!(
        &function_names(crashed_frames(&b))[..2],
        ["crash_here", "worker"]
    );
    if t.sigtramp_dumped {
        // gdb-multiarch 13 loops forever on QEMU's signal frames (it never finishes frame 1), so
        // the signal frame is checked against the program's own call chain instead.
        let b = qemu_ours(t, "zoo/sighandler.c", &["-g", "-O0", "-static"]);
        let f = crashed_frames(&b);
        let tramp = f
            .iter()
            .position(|f| f.signal_trampoline)
            .unwrap_or_else(|| panic!("{}: no signal frame\n{}", t.machine, render(f)));
        assert_eq!(
            function_names(&f[..tramp]),
            ["handler_crash", "handler"],
            "{}",
            render(f)
        );
        assert!(
            function_names(&f[tramp..]).contains(&"interrupted"),
            "{}",
            render(f)
        );
    }
    let b = qemu_check(t, "zoo/inlined.c", &["-g", "-O2", "-no-pie"]);
    let f = crashed_frames(&b);
    assert_eq!(
        function_names(&f[..4]),
        ["inner", "middle", "work", "main"],
        "{}",
        render(f)
    );
    assert!(
        f[0].inlined && f[1].inlined && !f[2].inlined,
        "{}",
        render(f)
    );
}

/// A PIE without NT_FILE, placed from auxv's `AT_ENTRY` (where gdb 13 gives up): the same frames
/// as the same program built without PIE, at the PIE's load address.
fn pie_without_nt_file_is_placed_from_auxv(t: Target) {
    let ours = |flags: &[&str]| {
        let c = crash_under_qemu(t, t.build("abort/main.c", flags));
        let bytes = std::fs::read(&c.core).unwrap();
        let core = corecatch::elf_core::parse(&bytes).unwrap();
        let opts = Options {
            sysroot: Some(t.sysroot()),
            exe_override: Some(c.exe.clone()),
            ..Options::default()
        };
        backtrace(&core, &opts)
    };
    let pie = ours(&["-g", "-O0", "-pie"]);
    let fixed = ours(&["-g", "-O0", "-no-pie"]);
    assert_eq!(up_to_main(&pie), up_to_main(&fixed), "{}", t.machine);
    let main = crashed_frames(&pie)
        .iter()
        .find(|f| f.function.as_deref() == Some("main"))
        .unwrap();
    assert_eq!(main.line, Some(6), "{}", render(crashed_frames(&pie)));
    assert!(
        pie.modules.iter().any(|m| m.path.ends_with("/libc.so.6")),
        "{:#?}",
        pie.modules
    );
}

#[test]
fn aarch64_crashes_under_qemu_match_gdb_multiarch() {
    every_program(AARCH64);
    pie_without_nt_file_is_placed_from_auxv(AARCH64);
}

#[test]
fn arm_crashes_under_qemu_match_gdb_multiarch() {
    every_program(ARM);
    pie_without_nt_file_is_placed_from_auxv(ARM);
}

#[test]
fn ppc64le_crashes_under_qemu_match_gdb_multiarch() {
    every_program(PPC64LE);
    pie_without_nt_file_is_placed_from_auxv(PPC64LE);
}

#[test]
fn s390x_crashes_under_qemu_match_gdb_multiarch() {
    every_program(S390X);
    pie_without_nt_file_is_placed_from_auxv(S390X);
}

/// `exe` run under QEMU's gdbstub until it crashes, and the core gdb-multiarch's `gcore` writes
/// of it then: unlike QEMU's own cores it holds the floating-point registers (NT_FPREGSET), as
/// a kernel's does.
fn gcore_under_qemu(t: Target, exe: PathBuf) -> Crash {
    let dir = util::tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut qemu = Command::new(util::require(&format!("qemu-{}", t.qemu)))
        .arg("-g")
        .arg(port.to_string())
        .arg("-L")
        .arg(t.sysroot())
        .arg(&exe)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let core = dir.path().join("gcore.core");
    // gdb retries the connection until QEMU listens, then kills QEMU when it exits.
    let o = Command::new(util::require("gdb-multiarch"))
        .args(["-batch", "-nx", "-ex", "set debuginfod enabled off"])
        .args(["-ex", "set tcp connect-timeout 30"])
        .arg("-ex")
        .arg(format!("target remote 127.0.0.1:{port}"))
        .args(["-ex", "continue"])
        .arg("-ex")
        .arg(format!("gcore {}", core.display()))
        .arg(&exe)
        .output()
        .unwrap();
    let _ = qemu.kill();
    let _ = qemu.wait();
    assert!(
        core.exists(),
        "gdb wrote no core of {}: {}",
        exe.display(),
        String::from_utf8_lossy(&o.stdout)
    );
    Crash {
        exe,
        core,
        _dir: dir,
    }
}

/// s390x leaf functions keep r11 and r15 in f2 and f0 at -O0: with the floating-point registers
/// a kernel core (here gdb's gcore) holds, the walk goes through them, as gdb's does.
#[test]
fn s390x_leaf_functions_unwind_through_floating_point_registers() {
    let t = S390X;
    let c = gcore_under_qemu(t, t.build("zoo/nested.c", &["-g", "-O0", "-static"]));
    let opts = Options {
        exe_override: Some(c.exe.clone()),
        ..Options::default()
    };
    let b = check(&c, &opts, "gdb-multiarch", &[], "s390x gcore nested");
    assert_eq!(up_to_main(&b), ["level3", "level2", "level1", "main"]);
}

/// A 32-bit x86 program (`gcc -m32`), crashed for a real kernel core, against gdb.
fn m32_check(src: &str, name: &str, flags: &[&str]) -> Backtraces {
    let mut all = vec!["-m32"];
    all.extend_from_slice(flags);
    let exe = util::compile(&util::fixture(src), name, &all);
    let dir = util::tempdir();
    let core = util::crash_for_core(&exe, &[], dir.path());
    let c = Crash {
        exe,
        core,
        _dir: dir,
    };
    let bytes = std::fs::read(&c.core).unwrap();
    let core = corecatch::elf_core::parse(&bytes).unwrap();
    assert_eq!(core.machine.name(core.is_64, false), "i386");
    check(
        &c,
        &Options::default(),
        "gdb",
        &[],
        &format!("i386 {src} {flags:?}"),
    )
}

#[test]
fn i386_crashes_match_gdb() {
    skip_unless_kernel_cores!();
    let b = m32_check("abort/main.c", "m32-abort", &["-g", "-O0"]);
    let names = up_to_main(&b);
    assert!(
        names.ends_with(&["abort".into(), "main".into()]),
        "{names:?}"
    );
    let b = m32_check("zoo/nested.c", "m32-nested", &["-g", "-O0"]);
    assert_eq!(up_to_main(&b), ["level3", "level2", "level1", "main"]);
    // The text report prints 32-bit addresses in 8 hex digits, as gdb does.
    let exe = util::compile(
        &util::fixture("zoo/nested.c"),
        "m32-nested",
        &["-m32", "-g", "-O0"],
    );
    let dir = util::tempdir();
    let core = util::crash_for_core(&exe, &[], dir.path());
    let o = util::corecatch(dir.path(), &["bt", core.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    let frames: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert!(frames.len() >= 4, "{text}");
    for l in frames {
        let addr = l.split_whitespace().nth(1).unwrap();
        assert!(addr.starts_with("0x") && addr.len() == 10, "{l}\n{text}");
    }
    let b = m32_check(
        "zoo/nofp.c",
        "m32-nofp",
        &["-g", "-O2", "-fomit-frame-pointer"],
    );
    assert_eq!(&up_to_main(&b)[..], ["crash", "mid", "outer", "main"]);
    let b = m32_check("zoo/threads.c", "m32-threads", &["-g", "-O0", "-pthread"]);
    assert_eq!(b.threads.len(), 5);
    for flags in [&["-g", "-O0"][..], &["-g", "-O0", "-static"]] {
        let b = m32_check("zoo/sighandler.c", "m32-sighandler", flags);
        let f = crashed_frames(&b);
        let tramp = f
            .iter()
            .position(|f| f.signal_trampoline)
            .unwrap_or_else(|| panic!("i386 {flags:?}: no signal frame\n{}", render(f)));
        assert_eq!(function_names(&f[..tramp]), ["handler_crash", "handler"]);
        assert!(
            function_names(&f[tramp..]).contains(&"interrupted"),
            "{}",
            render(f)
        );
    }
}
