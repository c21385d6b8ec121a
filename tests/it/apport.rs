//! Cores inside apport's `.crash` reports: `collect` takes the core out of the `CoreDump` field and
//! treats it as any other core. apport itself cannot be installed on this Debian machine, so the
//! reports are written here in apport's documented format (base64 lines that together are a gzip
//! stream: a header naming the field, raw deflate blocks, CRC-32 and size; or, as old apport
//! versions wrote, a zlib stream) by Python's own zlib, gzip and base64 modules, around the core
//! of a real crash.

use crate::util::*;
use crate::{skip_or_fail, skip_unless_kernel_cores};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Writes `report` holding `core` as apport would: `legacy` for the zlib form.
fn write_report(core: &Path, exe: &Path, pid: i32, report: &Path, legacy: bool) {
    let script = r#"
import base64, struct, sys, zlib
core, exe, pid, out, legacy = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
data = open(core, "rb").read()
w = open(out, "wb")
w.write(b"ProblemType: Crash\nArchitecture: amd64\nDate: Wed Nov 25 09:00:00 2026\n")
w.write(b"ExecutablePath: " + exe.encode() + b"\n")
w.write(b"ProcStatus:\n Name:\tcrash\n Umask:\t0022\n Pid:\t" + pid.encode() + b"\n PPid:\t1\n")
w.write(b"Signal: 11\n")
w.write(b"CoreDump: base64\n")
if legacy:
    z = zlib.compressobj()
    chunks = [z.compress(data[i:i + 65536]) for i in range(0, len(data), 65536)] + [z.flush()]
else:
    # gzip header with FNAME = the field's name, then raw deflate, then CRC-32 and size.
    chunks = [b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x02\xff" + b"CoreDump\x00"]
    z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks += [z.compress(data[i:i + 65536]) for i in range(0, len(data), 65536)]
    chunks.append(z.flush() + struct.pack("<LL", zlib.crc32(data), len(data) & 0xFFFFFFFF))
for c in chunks:
    if c:
        w.write(b" " + base64.b64encode(c) + b"\n")
w.write(b"ProcMaps:\n 55d0-55d1 r-xp 00000000 08:01 1 /tmp/crash\n")
"#;
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(core)
        .arg(exe)
        .arg(pid.to_string())
        .arg(report)
        .arg(if legacy { "1" } else { "0" })
        .status()
        .unwrap();
    assert!(st.success());
}

/// The pid `corecatch bt` reads from the core's notes: the one written into the report's
/// ProcStatus, and the one `collect` must still report after the core went through the report.
fn pid_in_core(core: &Path) -> i32 {
    let o = corecatch(Path::new("."), &["bt", "--json", core.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["process"]["pid"].as_i64().unwrap() as i32
}

#[test]
fn collect_takes_the_core_out_of_apport_reports() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let exe = compile(&fixture("crash/crash.c"), "crash", &["-g", "-O0"]);
    let core = crash_for_core(&exe, &["segv"], dir.path());
    let original = fs::read(&core).unwrap();
    let pid = pid_in_core(&core);

    for legacy in [false, true] {
        let reports = dir.path().join(format!("reports-{legacy}"));
        fs::create_dir_all(&reports).unwrap();
        let report = reports.join("_tmp_crash.0.crash");
        write_report(&core, &exe, pid, &report, legacy);
        let before = fs::read(&report).unwrap();
        let out = dir.path().join(format!("out-{legacy}"));
        // Named directly, and found in a directory.
        for arg in [&report, &reports] {
            let _ = fs::remove_dir_all(&out);
            let o = corecatch(
                dir.path(),
                &[
                    "collect",
                    "--out",
                    out.to_str().unwrap(),
                    arg.to_str().unwrap(),
                ],
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "legacy={legacy}: {err}");
            assert!(
                err.contains("took the core out of apport's report"),
                "{err}"
            );
            assert!(err.contains("SIGSEGV"), "{err}");
            let gz = artifacts(&out, ".core.gz");
            assert_eq!(gz.len(), 1, "{err}");
            assert!(
                gunzip(&gz[0]) == original,
                "the core comes back byte for byte"
            );
            let json = gz[0].to_string_lossy().replace(".core.gz", ".json");
            let v: serde_json::Value = serde_json::from_slice(&fs::read(json).unwrap()).unwrap();
            assert_eq!(v["process"]["pid"], pid);
            assert_eq!(v["signal"]["name"], "SIGSEGV");
            // Nothing of ours is left behind, and apport's report is as it was.
            assert!(
                !artifacts(&out, "")
                    .iter()
                    .any(|p| p.to_string_lossy().contains(".corecatch-")),
                "{:?}",
                artifacts(&out, "")
            );
            assert!(fs::read(&report).unwrap() == before);
        }
    }
}

#[test]
fn a_damaged_report_is_named_and_kept() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let exe = compile(&fixture("crash/crash.c"), "crash", &["-g", "-O0"]);
    let core = crash_for_core(&exe, &["abort"], dir.path());
    let pid = pid_in_core(&core);
    let good = dir.path().join("good.crash");
    write_report(&core, &exe, pid, &good, false);
    let text = fs::read(&good).unwrap();
    // Cut before the last CoreDump line (the end of the stream never arrives), and break a
    // base64 line.
    let start = text.windows(9).position(|w| w == b"CoreDump:").unwrap();
    let cut = dir.path().join("cut.crash");
    // The CoreDump lines are the ones starting with a space after the field; drop the last.
    let mut line_starts = vec![];
    let mut at = start + text[start..].iter().position(|&b| b == b'\n').unwrap() + 1;
    while text.get(at) == Some(&b' ') {
        line_starts.push(at);
        at += text[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    }
    assert!(line_starts.len() >= 2, "a header line and deflate lines");
    fs::write(&cut, &text[..*line_starts.last().unwrap()]).unwrap();
    let mut garbled = text.clone();
    garbled[start + 40] = b'!';
    let bad = dir.path().join("bad64.crash");
    fs::write(&bad, &garbled).unwrap();
    let no_core = dir.path().join("nocore.crash");
    fs::write(&no_core, &text[..start]).unwrap();
    for (report, why) in [
        (&cut, "does not inflate"),
        (&bad, "not valid base64"),
        (&no_core, "no CoreDump field"),
    ] {
        let before = fs::read(report).unwrap();
        let out = dir.path().join("out");
        let o = corecatch(
            dir.path(),
            &[
                "collect",
                "--out",
                out.to_str().unwrap(),
                report.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("apport report: "), "{err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(
            fs::read(report).unwrap() == before,
            "the report is kept as it was"
        );
        assert!(
            !artifacts(&out, "").iter().any(|p| {
                let s = p.to_string_lossy();
                s.ends_with(".core.gz") || s.contains(".corecatch-")
            }),
            "{:?}",
            artifacts(&out, "")
        );
    }
}

/// Removes what the test put in /var/crash (and the directory, when the test made it).
struct VarCrashEntry {
    file: std::path::PathBuf,
    made_dir: bool,
}

impl Drop for VarCrashEntry {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
        if self.made_dir {
            let _ = fs::remove_dir(VAR_CRASH);
        }
    }
}

const VAR_CRASH: &str = "/var/crash";

#[test]
fn collect_reads_var_crash_when_core_pattern_pipes_to_apport() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let exe = compile(&fixture("crash/crash.c"), "crash", &["-g", "-O0"]);
    let core = crash_for_core(&exe, &["segv"], dir.path());
    let original = fs::read(&core).unwrap();
    let pid = pid_in_core(&core);
    // Ubuntu's pattern; the handler does not exist here, which only matters to crashes that
    // happen meanwhile (the guard holds every other crashing test off).
    let Some(_g) = PatternGuard::set(
        "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E",
        false,
    ) else {
        return;
    };
    let made_dir = !Path::new(VAR_CRASH).exists();
    if let Err(e) = fs::create_dir_all(VAR_CRASH) {
        skip_or_fail!("cannot create {VAR_CRASH} ({e})");
    }
    let entry = VarCrashEntry {
        file: Path::new(VAR_CRASH).join(format!("_tmp_corecatch-test.{pid}.crash")),
        made_dir,
    };
    write_report(&core, &exe, pid, &entry.file, false);
    let out = dir.path().join("out");
    let o = corecatch_locked(dir.path(), &["collect", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "took the core out of apport's report {}",
            entry.file.display()
        )),
        "{err}"
    );
    // Other reports a machine keeps in /var/crash are collected too; ours is among them.
    let ours: Vec<_> = artifacts(&out, ".json")
        .into_iter()
        .filter(|p| !p.ends_with("manifest.json"))
        .filter(|p| {
            let v: serde_json::Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
            v["process"]["pid"] == pid
        })
        .collect();
    assert_eq!(ours.len(), 1, "{err}");
    let gz = ours[0].to_string_lossy().replace(".json", ".core.gz");
    assert!(
        gunzip(Path::new(&gz)) == original,
        "the core comes back byte for byte"
    );
    assert!(entry.file.exists(), "apport's report is left in place");
}
