//! elfutils' own test cores (`../shared/peer-cores/elfutils/`, bzip2, decompressed here at test
//! time, never committed decompressed): cores of every class and byte order, written on other
//! machines: each is read without a failure, `core.machine` names its architecture from
//! `e_machine`, `EI_CLASS` and `EI_DATA`, never by a number (x32 is not x86_64), and each of
//! the twelve backtrace cores passes elfutils' own check, as eu-stack does.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

fn peer_dir() -> Option<PathBuf> {
    let d = util::root().join("../shared/peer-cores/elfutils");
    d.is_dir().then_some(d)
}

/// `name` (a `.bz2` file in the peer-core directory) decompressed into `dir`.
fn unpack(from: &Path, name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name.trim_end_matches(".bz2"));
    let o = Command::new(util::require("bzip2"))
        .arg("-dc")
        .arg(from.join(name))
        .output()
        .unwrap();
    assert!(o.status.success(), "bzip2 -dc {name}: {}", util::stderr(&o));
    std::fs::write(&out, &o.stdout).unwrap();
    out
}

#[test]
fn every_architectures_core_is_named_by_its_machine_class_and_byte_order() {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let cases = [
        ("backtrace.x86_64.core.bz2", "x86_64"),
        ("backtrace.x32.core.bz2", "x32"),
        ("backtrace.i386.core.bz2", "i386"),
        ("testfile_i686_core.bz2", "i386"),
        ("backtrace.aarch64.core.bz2", "aarch64"),
        ("testfile_aarch64_core.bz2", "aarch64"),
        ("backtrace.ppc.core.bz2", "ppc"),
        ("backtrace.ppc64le.fp.core.bz2", "ppc64le"),
        ("backtrace.s390.core.bz2", "s390"),
        ("backtrace.s390x.core.bz2", "s390x"),
        ("backtrace.sparc.core.bz2", "sparc64"),
        ("testfile-riscv64-core.bz2", "riscv64"),
    ];
    let mut wrong = Vec::new();
    for (name, machine) in cases {
        let core = unpack(&peers, name, dir.path());
        let o = util::corecatch(dir.path(), &["bt", "--json", core.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", util::stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{name}: bt --json is not JSON: {e}"));
        if r["core"]["machine"] != machine {
            wrong.push(format!("{name}: {} (want {machine})", r["core"]["machine"]));
        }
    }
    assert!(
        wrong.is_empty(),
        "machines named wrong:\n{}",
        wrong.join("\n")
    );
}

/// The crashed thread's function names, innermost first, from `bt --json`.
fn crashed_names(r: &serde_json::Value) -> Vec<String> {
    let t = r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["crashed"] == true)
        .expect("a crashed thread");
    t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("??").to_string())
        .collect()
}

/// `bt --json --exe EXE CORE` run in `cwd`: exit status 0, the report.
fn bt_json(cwd: &Path, exe: &Path, core: &Path) -> serde_json::Value {
    let o = util::corecatch(
        cwd,
        &[
            "bt",
            "--json",
            "--exe",
            exe.to_str().unwrap(),
            core.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", util::stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `bt --json --exe EXE CORE` on two peer files, decompressed into `dir`.
fn bt_peer(peers: &Path, dir: &Path, core: &str, exe: &str) -> serde_json::Value {
    let core = unpack(peers, core, dir);
    let exe = unpack(peers, exe, dir);
    bt_json(dir, &exe, &core)
}

/// elfutils' testfile-backtrace-demangle: `cxxfunc(int)`, then a function whose symbol is the
/// plain name `f` (a demangler would make it `float`), then `main`.
#[test]
fn a_plain_name_in_a_cpp_program_stays_as_it_is() {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let r = bt_peer(
        &peers,
        dir.path(),
        "testfile-backtrace-demangle.core.bz2",
        "testfile-backtrace-demangle.bz2",
    );
    let names = crashed_names(&r);
    assert_eq!(names[..3], ["cxxfunc", "f", "main"], "{names:?}");
}

/// Every thread's function names, innermost first.
fn all_names(r: &serde_json::Value) -> Vec<Vec<String>> {
    r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["function"].as_str().unwrap_or("??").to_string())
                .collect()
        })
        .collect()
}

/// elfutils' backtrace check on one of its backtrace.ARCH cores: the crashed thread reads
/// `raise`, `sigusr2`, `stdarg`, `backtracegen` in that order (other frames may stand between:
/// pthread_kill, a second sigusr2), some thread reaches `main`, and no frame is `gsignal`.
fn elfutils_backtrace_check(arch: &str) {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let r = bt_peer(
        &peers,
        dir.path(),
        &format!("backtrace.{arch}.core.bz2"),
        &format!("backtrace.{arch}.exec.bz2"),
    );
    let crashed = crashed_names(&r);
    let mut want = ["raise", "sigusr2", "stdarg", "backtracegen"]
        .into_iter()
        .peekable();
    for n in &crashed {
        if want.peek() == Some(&n.as_str()) {
            want.next();
        }
    }
    assert!(
        want.peek().is_none(),
        "{arch}: the crashed thread lacks {:?} in order: {crashed:?}",
        want.collect::<Vec<_>>()
    );
    let all = all_names(&r);
    assert!(
        all.iter().any(|t| t.iter().any(|n| n == "main")),
        "{arch}: no thread reaches main: {all:?}"
    );
    assert!(
        !all.iter().flatten().any(|n| n == "gsignal"),
        "{arch}: gsignal is raise's alias: {all:?}"
    );
}

#[test]
fn aarch64_cores_unwind_as_elfutils_expects() {
    elfutils_backtrace_check("aarch64");
    elfutils_backtrace_check("aarch64.fp");
}

#[test]
fn x86_64_cores_unwind_as_elfutils_expects() {
    elfutils_backtrace_check("x86_64");
    elfutils_backtrace_check("x86_64.fp");
}

#[test]
fn ppc_and_s390_cores_unwind_as_elfutils_expects() {
    elfutils_backtrace_check("ppc");
    elfutils_backtrace_check("ppc64le.fp");
    elfutils_backtrace_check("s390");
    elfutils_backtrace_check("s390x");
}

#[test]
fn sparc64_cores_unwind_through_register_windows_as_elfutils_expects() {
    elfutils_backtrace_check("sparc");
}

#[test]
fn i386_and_x32_cores_unwind_as_elfutils_expects() {
    elfutils_backtrace_check("i386");
    elfutils_backtrace_check("i386.fp");
    elfutils_backtrace_check("x32");
}

/// `bt --json --exe` on peer files unpacked into `dir/bin`, run from `dir`: the libraries are
/// found beside the executable, not where the core says or relative to the working directory.
fn bt_beside(peers: &Path, dir: &Path, core: &str, exe: &str, lib: &str) -> serde_json::Value {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let core = unpack(peers, core, &bin);
    let exe = unpack(peers, exe, &bin);
    unpack(peers, lib, &bin);
    bt_json(dir, &exe, &core)
}

/// elfutils' test-core: frame 0 is `libfunc` in test-core-lib.so, whose ELF header page is not
/// in the core; the library is recognized from NT_FILE and the file beside the executable.
/// A module that cannot be found and has no header in the core is named in the warnings.
#[test]
fn a_library_without_its_header_in_the_core_is_still_recognized() {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let r = bt_beside(
        &peers,
        dir.path(),
        "test-core.core.bz2",
        "test-core.exec.bz2",
        "test-core-lib.so.bz2",
    );
    let names = crashed_names(&r);
    assert_eq!(names[..2], ["libfunc", "main"], "{names:?}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("ld-2.16.so") && warnings.contains("left out"),
        "the dropped loader is named: {warnings}"
    );
}

/// elfutils' linkmap-cut: the library's path in the core is `.////…/linkmap-cut-lib.so`; it is
/// found beside the executable whatever the working directory.
#[test]
fn an_odd_library_path_is_normalized_and_found_beside_the_executable() {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let r = bt_beside(
        &peers,
        dir.path(),
        "linkmap-cut.core.bz2",
        "linkmap-cut.bz2",
        "linkmap-cut-lib.so.bz2",
    );
    let t = &r["threads"][0]["frames"];
    assert_eq!(t[0]["function"], "libfunc", "{t}");
    assert_eq!(t[0]["pc"], "0x7f08bc24d681", "{t}");
    assert_eq!(t[1]["function"], "main", "{t}");
    assert_eq!(t[1]["pc"], "0x4006b4", "{t}");
}

/// elfutils' testfile70: a core without NT_FILE. The executable given with `--exe` is placed
/// where the core's auxv says it was loaded (AT_ENTRY); frame 0 is `main`.
#[test]
fn a_core_without_nt_file_places_the_executable_from_auxv() {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let r = bt_peer(
        &peers,
        dir.path(),
        "testfile70.core.bz2",
        "testfile70.exec.bz2",
    );
    let names = crashed_names(&r);
    assert_eq!(names.first().map(String::as_str), Some("main"), "{names:?}");
}

/// elfutils' testfiledwarfinlines: fubar inlined into foobar into bar into foo into fu(int),
/// called from main, at lines 6, 14, 21, 27, 33, 39; frame 0's pc is 0x4006c8, main's 0x4004c5.
#[test]
fn inlined_frames_read_as_elfutils_expects() {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let r = bt_peer(
        &peers,
        dir.path(),
        "testfiledwarfinlines.core.bz2",
        "testfiledwarfinlines.bz2",
    );
    let frames = r["threads"][0]["frames"].as_array().unwrap();
    let got: Vec<(&str, u64)> = frames
        .iter()
        .take(6)
        .map(|f| (f["function"].as_str().unwrap(), f["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("fubar", 6),
            ("foobar", 14),
            ("bar", 21),
            ("foo", 27),
            ("fu", 33),
            ("main", 39)
        ]
    );
    assert_eq!(frames[0]["pc"], "0x4006c8");
    assert_eq!(frames[5]["pc"], "0x4004c5");
}

/// Cores of architectures without an unwinder yet still give each thread's registers in the
/// architecture's own names and frame 0 at its pc (the values eu-stack reads from them).
#[test]
fn i386_and_riscv64_registers_are_read() {
    let Some(peers) = peer_dir() else {
        crate::skip_or_fail!("../shared/peer-cores/elfutils is not beside the checkout");
    };
    let dir = util::tempdir();
    let cases = [
        ("testfile_i686_core.bz2", "eip", "esp", "0x8048408"),
        ("backtrace.i386.core.bz2", "eip", "esp", "0xf77f7430"),
        ("testfile-riscv64-core.bz2", "pc", "sp", "0x1049a"),
    ];
    for (name, pc, sp, first_pc) in cases {
        let core = unpack(&peers, name, dir.path());
        let o = util::corecatch(dir.path(), &["bt", "--json", core.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", util::stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for t in r["threads"].as_array().unwrap() {
            let regs = &t["registers"];
            assert!(
                regs[pc].is_string() && regs[sp].is_string(),
                "{name}: {regs}"
            );
            assert_eq!(
                t["frames"][0]["pc"], regs[pc],
                "{name}: frame 0 is at the pc"
            );
        }
        assert_eq!(r["threads"][0]["frames"][0]["pc"], first_pc, "{name}");
    }
}
