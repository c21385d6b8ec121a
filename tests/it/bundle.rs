//! The debug bundle, `corecatch debug` and `bt` on artifacts, as on another machine: a program
//! and its own shared library are built into a temporary directory, crash under `corecatch
//! run`, and the directory is deleted; gdb (through `corecatch debug`) and `corecatch bt` on the
//! artifacts must print what gdb printed on the original files. Also: what the bundle leaves
//! out (past `--bundle-max`, a rebuilt library, a deleted one) is named.

use crate::skip_unless_kernel_cores;
use crate::util::{self, corecatch, fixture, require, stderr, tempdir};
use crate::zoo::{parse_gdb, GdbFrame};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The program and its library, built with `-g` into `dir/build` (the library found through an
/// rpath to that directory).
pub(crate) struct Program {
    pub build: PathBuf,
    pub exe: PathBuf,
    pub lib: PathBuf,
}

pub(crate) fn build_program(dir: &Path, variant: u32) -> Program {
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    let lib = build.join("libbundled.so");
    let exe = build.join("prog");
    let gcc = |args: &[&str]| {
        let o = Command::new(require("gcc")).args(args).output().unwrap();
        assert!(o.status.success(), "gcc {args:?}: {}", stderr(&o));
    };
    gcc(&[
        "-g",
        "-O0",
        "-shared",
        "-fPIC",
        &format!("-DVARIANT={variant}"),
        "-o",
        lib.to_str().unwrap(),
        fixture("bundle/lib.c").to_str().unwrap(),
    ]);
    gcc(&[
        "-g",
        "-O0",
        "-o",
        exe.to_str().unwrap(),
        fixture("bundle/main.c").to_str().unwrap(),
        &format!("-L{}", build.display()),
        "-lbundled",
        &format!("-Wl,-rpath,{}", build.display()),
    ]);
    Program { build, exe, lib }
}

/// gdb's `thread apply all bt` of `core` on the original files.
pub(crate) fn gdb_on_originals(p: &Program, core: &Path) -> Vec<GdbFrame> {
    let o = Command::new(require("gdb"))
        .args(["-batch", "-nx", "-ex", "set debuginfod enabled off"])
        .args(["-ex", "thread apply all bt"])
        .arg(&p.exe)
        .arg(core)
        .output()
        .unwrap();
    let t = parse_gdb(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        t.len(),
        1,
        "one thread: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let frames = t.into_iter().next().unwrap().frames;
    assert!(
        frames
            .iter()
            .any(|f| f.function.as_deref() == Some("bundled_crash")),
        "gdb sees the library's frames on the originals: {:?}",
        frames.iter().map(|f| &f.function).collect::<Vec<_>>()
    );
    frames
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// (function, file name, line) of each frame.
fn key(f: &GdbFrame) -> (Option<String>, Option<String>, Option<u32>) {
    (
        f.function.clone(),
        f.file.as_deref().map(|f| basename(f).to_string()),
        f.line,
    )
}

/// `corecatch debug TARGET --batch -ex 'thread apply all bt'`, parsed, with its stderr.
pub(crate) fn debug_bt(
    cwd: &Path,
    target: &Path,
    env: &[(&str, &Path)],
) -> (Vec<GdbFrame>, String) {
    let mut cmd = Command::new(util::bin());
    cmd.current_dir(cwd)
        .arg("debug")
        .arg(target)
        .args(["--batch", "-ex", "thread apply all bt"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "debug: {out}\n{}", stderr(&o));
    let t = parse_gdb(&out);
    assert_eq!(t.len(), 1, "one thread from debug:\n{out}\n{}", stderr(&o));
    (t.into_iter().next().unwrap().frames, stderr(&o))
}

/// `corecatch bt --json TARGET`: the crashed thread's (function, file name, line).
pub(crate) fn bt_json(
    cwd: &Path,
    target: &Path,
    env: &[(&str, &Path)],
) -> Vec<(Option<String>, Option<String>, Option<u32>)> {
    let mut cmd = Command::new(util::bin());
    cmd.current_dir(cwd).args(["bt", "--json"]).arg(target);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "bt: {}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["crashed"] == true)
        .unwrap();
    t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["function"].as_str().map(str::to_string),
                f["file"].as_str().map(|p| basename(p).to_string()),
                f["line"].as_u64().map(|l| l as u32),
            )
        })
        .collect()
}

/// Both views of the crash agree with gdb on the originals: every gdb frame is there with
/// the same function, file and line (our walk may go on past gdb's last frame).
pub(crate) fn assert_matches_originals(
    want: &[GdbFrame],
    debug: &[GdbFrame],
    bt: &[(Option<String>, Option<String>, Option<u32>)],
) {
    let want: Vec<_> = want.iter().map(key).collect();
    let got: Vec<_> = debug.iter().map(key).collect();
    assert_eq!(
        got, want,
        "corecatch debug's gdb against gdb on the original files"
    );
    for (i, w) in want.iter().enumerate() {
        let b = bt
            .get(i)
            .unwrap_or_else(|| panic!("bt has fewer frames: {bt:?}"));
        assert_eq!(b.0, w.0, "bt frame {i} function; bt {bt:?}, gdb {want:?}");
        if w.1
            .as_deref()
            .is_some_and(|f| f == "lib.c" || f == "main.c")
        {
            assert_eq!(
                (&b.1, b.2),
                (&w.1, w.2),
                "bt frame {i} file:line; bt {bt:?}"
            );
        }
    }
}

/// The files bundle.json lists (by `tar`, the real one: the archive is an ordinary tar.gz).
pub(crate) fn bundle_listing(bundle: &Path) -> serde_json::Value {
    let o = Command::new(require("tar"))
        .arg("-xzOf")
        .arg(bundle)
        .arg("bundle.json")
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_crash_opens_on_another_machine_from_its_artifacts() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let p = build_program(dir.path(), 0);
    let cache = dir.path().join("cache");
    let o = corecatch(
        &p.build,
        &[
            "run",
            "--keep-cores",
            "--out",
            dir.path().join("art").to_str().unwrap(),
            "--",
            p.exe.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("debug bundle"), "{}", stderr(&o));
    let art = dir.path().join("art");
    let raw = util::cores_in(&p.build);
    assert_eq!(raw.len(), 1, "the kept raw core");
    let want = gdb_on_originals(&p, &raw[0]);

    // The bundle: an ordinary tar.gz holding the program and its library at their paths.
    let bundles = util::artifacts(&art, ".tar.gz");
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let gz = Command::new(require("gunzip"))
        .arg("-t")
        .arg(&bundles[0])
        .output()
        .unwrap();
    assert!(gz.status.success(), "gunzip -t: {}", stderr(&gz));
    let listing = bundle_listing(&bundles[0]);
    let stored: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["stored"].as_str().unwrap())
        .collect();
    let rel = |p: &Path| format!("root{}", p.display());
    assert!(stored.contains(&rel(&p.exe).as_str()), "{stored:?}");
    assert!(stored.contains(&rel(&p.lib).as_str()), "{stored:?}");
    let manifest = util::read_manifest(&art);
    assert!(
        manifest["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "bundle.tar.gz" && e["path"] == "bundle.tar.gz"),
        "{manifest}"
    );

    // Another machine: the build directory (executable, library, raw core) is gone.
    std::fs::remove_dir_all(&p.build).unwrap();
    let env = [("CORECATCH_CACHE", cache.as_path())];
    let (debug, err) = debug_bt(dir.path(), &art, &env);
    assert!(!err.contains("neither in the bundle"), "{err}");
    // The session's sysroot of links is gone with gdb.
    let left: Vec<_> = std::fs::read_dir(cache.join("sysroots")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let bt = bt_json(dir.path(), &art, &env);
    assert_matches_originals(&want, &debug, &bt);

    // A stored core named directly, and the cache reused (the bundle is not unpacked again).
    let core_gz = util::artifacts(&art, ".core.gz").remove(0);
    let unpacked: Vec<_> = std::fs::read_dir(cache.join("bundles")).unwrap().collect();
    assert_eq!(unpacked.len(), 1);
    let (debug, _) = debug_bt(dir.path(), &core_gz, &env);
    let bt = bt_json(dir.path(), &core_gz, &env);
    assert_matches_originals(&want, &debug, &bt);
    assert_eq!(std::fs::read_dir(cache.join("bundles")).unwrap().count(), 1);

    // --print-command shows what it would run.
    let o = Command::new(util::bin())
        .args(["debug", "--print-command"])
        .arg(&art)
        .env("CORECATCH_CACHE", &cache)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.starts_with("gdb -q "), "{line}");
    assert!(
        line.contains("set sysroot ") && line.contains("set debug-file-directory "),
        "{line}"
    );
}

/// `corecatch collect --out ART CORE` in the build directory: ART and the stderr.
fn collect(p: &Program, art: &Path, core: &Path) -> (PathBuf, String) {
    let o = corecatch(
        &p.build,
        &[
            "collect",
            "--out",
            art.to_str().unwrap(),
            core.to_str().unwrap(),
        ],
    );
    (art.to_path_buf(), stderr(&o))
}

#[test]
fn what_the_bundle_leaves_out_is_named() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let p = build_program(dir.path(), 0);
    // Past --bundle-max, only the program's own files.
    let art = dir.path().join("small");
    let o = corecatch(
        &p.build,
        &[
            "run",
            "--bundle-max",
            "1KiB",
            "--out",
            art.to_str().unwrap(),
            "--",
            p.exe.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("the debug bundle leaves out /")
            && err.contains("libc.so.6")
            && err.contains("would exceed --bundle-max 1 KiB"),
        "{err}"
    );
    let listing = bundle_listing(&util::artifacts(&art, ".tar.gz")[0]);
    let paths: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.iter().all(|p| !p.contains("libc.so")), "{paths:?}");
    assert!(paths.contains(&p.lib.to_str().unwrap()), "{paths:?}");
    assert!(
        listing["left_out"].as_array().unwrap().len() >= 2,
        "{listing}"
    );

    // A library rebuilt between the crash and collect: left out, with the reason.
    let core = util::crash_for_core(&p.exe, &[], &p.build);
    build_program(dir.path(), 1);
    let (_, err) = collect(&p, &dir.path().join("rebuilt"), &core);
    assert!(
        err.contains(&format!("the debug bundle leaves out {}", p.lib.display()))
            && err.contains("another build-id (rebuilt since the crash)"),
        "{err}"
    );

    // A library deleted: left out as not found, and `debug` says neither has it.
    let core = util::crash_for_core(&p.exe, &[], &p.build);
    std::fs::remove_file(&p.lib).unwrap();
    let (art, err) = collect(&p, &dir.path().join("deleted"), &core);
    assert!(
        err.contains(&format!("the debug bundle leaves out {}", p.lib.display()))
            && err.contains("not found on this machine"),
        "{err}"
    );
    let o = Command::new(util::bin())
        .args(["debug", "--print-command"])
        .arg(&art)
        .env("CORECATCH_CACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains(&format!("{}", p.lib.display()))
            && stderr(&o).contains("neither in the bundle nor on this machine"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_damaged_bundle_is_named_and_this_machines_files_are_used() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let p = build_program(dir.path(), 0);
    let art = dir.path().join("art");
    let o = corecatch(
        &p.build,
        &[
            "run",
            "--out",
            art.to_str().unwrap(),
            "--",
            p.exe.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let bundle = art.join("bundle.tar.gz");
    let bytes = std::fs::read(&bundle).unwrap();
    std::fs::write(&bundle, &bytes[..bytes.len() / 3]).unwrap();
    let cache = dir.path().join("cache");
    let o = Command::new(util::bin())
        .arg("bt")
        .arg(&art)
        .env("CORECATCH_CACHE", &cache)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("bundle.tar.gz is not used"), "{err}");
    // The files are still on this machine, so the frames are still named.
    assert!(String::from_utf8_lossy(&o.stdout).contains("bundled_crash"));
    assert!(
        !cache.join("bundles").exists()
            || std::fs::read_dir(cache.join("bundles")).unwrap().count() == 0
    );
}

/// Hostile targets: a FIFO named like a stored core is never read (no hang), and a manifest
/// naming a core outside its directory is not followed.
#[test]
fn bt_and_debug_refuse_a_fifo_and_paths_out_of_the_directory() {
    let dir = tempdir();
    let fifo = dir.path().join("core.1.x.core.gz");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for sub in ["bt", "debug"] {
        let o = Command::new(require("timeout"))
            .arg("20")
            .arg(util::bin())
            .arg(sub)
            .arg(&fifo)
            .env("CORECATCH_CACHE", dir.path().join("cache"))
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(124), "{sub} hung on a FIFO");
        assert_eq!(o.status.code(), Some(1), "{sub}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("not a regular file"),
            "{sub}: {}",
            stderr(&o)
        );
    }
    std::fs::remove_file(&fifo).unwrap();

    let art = dir.path().join("art");
    std::fs::create_dir_all(&art).unwrap();
    let outside = dir.path().join("outside.core.gz");
    std::fs::write(&outside, b"not gzip").unwrap();
    let manifest = serde_json::json!({
        "schema": "corecatch.manifest.v1", "command": [], "exit_status": null,
        "started": "2026-01-01T00:00:00Z", "ended": "2026-01-01T00:00:00Z", "host": "h",
        "core_pattern": "core",
        "artifacts": [{"path": "../outside.core.gz", "kind": "core.gz", "bytes": 8,
                       "sha256": "00", "pid": 1}]
    });
    std::fs::write(art.join("manifest.json"), manifest.to_string()).unwrap();
    let o = Command::new(util::bin())
        .arg("bt")
        .arg(&art)
        .env("CORECATCH_CACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("holds no stored core"),
        "{}",
        stderr(&o)
    );
}
