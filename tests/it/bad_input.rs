//! `corecatch bt` on real cores damaged in the ways CI machines damage them: cut short at many
//! offsets (a full disk, a killed upload), notes corrupted, the executable gone. Each case must
//! print what it can with warnings, exit 0 when any thread could be read (1 when none could),
//! never panic, and stay within bounded memory.

use crate::skip_unless_kernel_cores;
use crate::util::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Peak RSS we accept for `bt` on a damaged small core (it is ~40 MiB on an intact one, most of
/// it libc's inflated debug sections).
const MAX_RSS_KB: u64 = 200 * 1024;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_kb: u64,
}

/// Run `corecatch bt CORE` under /usr/bin/time -v for its peak RSS.
fn bt(core: &Path) -> Outcome {
    let report = core.with_extension("timev");
    let o = Command::new(require("/usr/bin/time"))
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(bin())
        .arg("bt")
        .arg(core)
        .output()
        .unwrap();
    let timev = fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("/usr/bin/time -v wrote no {} ({e})", report.display()));
    // Unparseable output must fail: a peak of 0 would pass the bound without measuring anything.
    let max_rss_kb = parse_max_rss_kb(&timev).unwrap_or_else(|| {
        panic!(
            "no peak RSS in /usr/bin/time -v's output (stderr {:?}):\n{timev}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    // time(1) exits with the command's status, or 128+N when it was killed by signal N.
    Outcome {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        max_rss_kb,
    }
}

/// The `Maximum resident set size (kbytes): N` line of `time -v`'s report, when it is there and
/// N is a positive number.
fn parse_max_rss_kb(timev: &str) -> Option<u64> {
    timev
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .filter(|&kb| kb > 0)
}

#[test]
fn time_v_reports_parse_or_fail() {
    let ok = "\tCommand being timed: \"x\"\n\tMaximum resident set size (kbytes): 41234\n";
    assert_eq!(parse_max_rss_kb(ok), Some(41234));
    assert_eq!(parse_max_rss_kb(""), None);
    assert_eq!(
        parse_max_rss_kb("\tMaximum resident set size (kbytes): lots\n"),
        None
    );
    assert_eq!(
        parse_max_rss_kb("\tMaximum resident set size (kbytes): 0\n"),
        None
    );
}

/// What the library can still read of `data`: `Some(threads)` when it parses.
fn readable_threads(data: &[u8]) -> Option<usize> {
    corecatch::elf_core::parse(data)
        .ok()
        .map(|c| c.threads.len())
}

/// Check one damaged core end to end.
fn check(core: &Path, what: &str) -> Outcome {
    let data = fs::read(core).unwrap();
    let o = bt(core);
    let ctx = format!(
        "{what}: exit {:?}\nstderr: {}\nstdout: {}",
        o.code, o.stderr, o.stdout
    );
    assert!(!o.stderr.contains("panicked"), "{ctx}");
    assert!(o.code.is_some_and(|c| c == 0 || c == 1), "{ctx}");
    match readable_threads(&data) {
        Some(n) if n > 0 => {
            assert_eq!(
                o.code,
                Some(0),
                "threads are readable, so bt succeeds; {ctx}"
            );
            assert!(o.stdout.contains("Thread "), "{ctx}");
        }
        _ => assert_eq!(o.code, Some(1), "nothing readable, so bt fails; {ctx}"),
    }
    assert!(
        o.max_rss_kb < MAX_RSS_KB,
        "{what}: peak RSS {} KiB is over the bound",
        o.max_rss_kb
    );
    o
}

fn threads_core(dir: &Path) -> (PathBuf, PathBuf) {
    let exe = compile(
        &fixture("zoo/threads.c"),
        "zoo-threads-bad-input",
        &["-g", "-O0", "-pthread"],
    );
    (exe.clone(), crash_for_core(&exe, &[], dir))
}

/// The PT_NOTE segment's file range (64-bit little-endian core).
fn note_range(data: &[u8]) -> (usize, usize) {
    let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&ph| u32::from_le_bytes(data[ph..ph + 4].try_into().unwrap()) == 4)
        .map(|ph| (u64_at(ph + 8), u64_at(ph + 32)))
        .expect("a core has a PT_NOTE segment")
}

#[test]
fn a_core_cut_anywhere_gives_partial_output_never_a_panic() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (_, core) = threads_core(dir.path());
    let data = fs::read(&core).unwrap();
    let (notes_at, notes_len) = note_range(&data);
    // 48 evenly spaced cuts, plus cuts around the header, the program headers and inside and
    // at the end of the note segment, where a parser is most likely to trip.
    let mut cuts: Vec<usize> = (1..=48).map(|i| data.len() * i / 49).collect();
    cuts.extend([
        0,
        10,
        63,
        64,
        120,
        notes_at,
        notes_at + 7,
        notes_at + notes_len / 2,
    ]);
    cuts.extend([
        notes_at + notes_len - 1,
        notes_at + notes_len,
        notes_at + notes_len + 1,
    ]);
    let mut partial_with_warning = 0;
    for cut in cuts {
        let path = dir.path().join(format!("cut.{cut}"));
        fs::write(&path, &data[..cut.min(data.len())]).unwrap();
        let o = check(&path, &format!("core cut at {cut} of {}", data.len()));
        if o.code == Some(0) && o.stdout.contains("warning: ") {
            partial_with_warning += 1;
        }
        fs::remove_file(&path).unwrap();
    }
    assert!(
        partial_with_warning > 10,
        "cut cores that still have threads say they are truncated"
    );
}

#[test]
fn corrupt_notes_lose_only_what_they_hold() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (_, core) = threads_core(dir.path());
    let data = fs::read(&core).unwrap();
    let (notes_at, notes_len) = note_range(&data);
    let threads = readable_threads(&data).unwrap();
    assert!(threads >= 5);

    // Flipped bytes at many places in the note segment.
    for i in 0..24 {
        let mut bad = data.clone();
        let at = notes_at + notes_len * i / 24;
        for b in &mut bad[at..(at + 16).min(notes_at + notes_len)] {
            *b ^= 0xa5;
        }
        let path = dir.path().join(format!("flip.{i}"));
        fs::write(&path, &bad).unwrap();
        check(&path, &format!("notes flipped at {at}"));
    }

    // An absurd NT_FILE count: the mapped-file list is lost, every thread is still there.
    let mut bad = data.clone();
    let nt_file = 0x4649_4c45u32.to_le_bytes();
    let at = notes_at
        + bad[notes_at..notes_at + notes_len]
            .windows(4)
            .position(|w| w == nt_file)
            .expect("NT_FILE note");
    let desc = at + 4 + 8; // n_type, then "CORE\0" padded to 8
    bad[desc..desc + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let path = dir.path().join("ntfile");
    fs::write(&path, &bad).unwrap();
    let o = check(&path, "NT_FILE count of u64::MAX");
    assert!(
        o.stdout.contains("NT_FILE"),
        "the warning names the note: {}",
        o.stdout
    );
    assert_eq!(o.stdout.matches("Thread ").count(), threads, "{}", o.stdout);

    // One thread's NT_PRSTATUS zeroed: its registers are lost, not the other threads.
    let mut bad = data.clone();
    let prstatus = [5u8, 0, 0, 0, 0x50, 0x01, 0, 0, 1, 0, 0, 0]; // namesz 5, descsz 336, type 1
    let first = notes_at
        + bad[notes_at..notes_at + notes_len]
            .windows(12)
            .position(|w| w == prstatus)
            .expect("NT_PRSTATUS note");
    let second = first
        + 1
        + bad[first + 1..notes_at + notes_len]
            .windows(12)
            .position(|w| w == prstatus)
            .expect("a second NT_PRSTATUS");
    bad[second + 20..second + 20 + 336].fill(0);
    let path = dir.path().join("prstatus");
    fs::write(&path, &bad).unwrap();
    let o = check(&path, "one NT_PRSTATUS zeroed");
    assert!(o.stdout.contains("(crashed)"), "{}", o.stdout);
}

#[test]
fn a_missing_executable_gives_partial_output_and_names_it() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let src = fixture("abort/main.c");
    let exe = dir.path().join("gone");
    let st = Command::new("gcc")
        .args(["-g", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let core = crash_for_core(&exe, &[], dir.path());
    fs::remove_file(&exe).unwrap();
    let o = check(&core, "executable deleted after the crash");
    assert!(
        o.stdout.contains("__GI_abort"),
        "libc frames still symbolized: {}",
        o.stdout
    );
    assert!(
        o.stdout.contains("warning: ") && o.stdout.contains(exe.to_str().unwrap()),
        "a warning names the missing file: {}",
        o.stdout
    );
}
