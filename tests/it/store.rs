//! How cores are stored, read back with the real tools: `--compress zstd` (`zstd -t`, `zstd -d`
//! restore the kept raw core byte for byte) and `--max-artifact-size` (every part passes
//! `gunzip -t` or `zstd -t` on its own, `cat` of the parts restores the core, the manifest lists
//! the parts in order with the whole's size and SHA-256), and `bt` reading both, from the
//! directory and from one part.

use crate::skip_unless_kernel_cores;
use crate::util::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A core several MiB big once compressed (fixtures/store/noise.c).
pub(crate) fn noise_prog() -> PathBuf {
    compile(&fixture("store/noise.c"), "store-noise", &["-g", "-O0"])
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The raw core `--keep-cores` left in `dir` (its name is `core`, or `core.PID`).
fn kept_core(dir: &Path) -> PathBuf {
    names(dir)
        .into_iter()
        .find(|n| n == "core" || n.starts_with("core.") && !n.contains(".core."))
        .map(|n| dir.join(n))
        .unwrap_or_else(|| panic!("no raw core kept in {}: {:?}", dir.display(), names(dir)))
}

/// `tool args… < input` (a file or the concatenation of files): its stdout; fails the test
/// when the tool fails.
fn decompress(tool: &str, args: &[&str], inputs: &[PathBuf]) -> Vec<u8> {
    let mut child = Command::new(require(tool))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let files = inputs.to_vec();
    let feeder = std::thread::spawn(move || {
        for f in files {
            std::io::copy(&mut fs::File::open(f).unwrap(), &mut stdin).unwrap();
        }
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        o.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// `run STORE_FLAGS --keep-cores --bundle never --out out -- prog` in `dir`: the raw core is
/// kept beside the stored one, to compare them.
fn run_storing(dir: &Path, store_flags: &[&str], prog: &Path) -> Output {
    let mut args = vec!["run"];
    args.extend_from_slice(store_flags);
    args.extend(["--keep-cores", "--bundle", "never", "--out", "out", "--"]);
    args.push(prog.to_str().unwrap());
    corecatch(dir, &args)
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn zstd_cores_restore_with_zstd_and_bt_reads_them() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let o = run_storing(dir.path(), &["--compress", "zstd:5"], &abort_demo());
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let out = dir.path().join("out");
    let zst: Vec<String> = names(&out)
        .into_iter()
        .filter(|n| n.ends_with(".core.zst"))
        .collect();
    assert_eq!(zst.len(), 1, "{:?}", names(&out));
    assert!(
        stderr(&o).contains(".{core.zst,json,txt}"),
        "{}",
        stderr(&o)
    );
    let stored = out.join(&zst[0]);
    decompress("zstd", &["-t", "-q"], std::slice::from_ref(&stored));
    let raw = fs::read(kept_core(dir.path())).unwrap();
    let restored = decompress("zstd", &["-d", "-c", "-q"], &[stored]);
    assert!(
        restored == raw,
        "zstd -d does not restore the core byte for byte"
    );

    let m = manifest(&out);
    let e = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == zst[0].as_str())
        .unwrap()
        .clone();
    assert_eq!(e["kind"], "core.zst", "{e}");
    assert_eq!(e["core"]["compression"], "zstd", "{e}");
    assert_eq!(e["core"]["core_bytes"], raw.len() as u64, "{e}");
    assert_eq!(e["core"]["core_sha256"], sha256_hex(&raw), "{e}");

    let bt = corecatch(dir.path(), &["bt", "out"]);
    assert_eq!(bt.status.code(), Some(0), "{}", stderr(&bt));
    let report = fs::read_to_string(out.join(zst[0].replace(".core.zst", ".txt"))).unwrap();
    assert_bt_shows_report(&bt.stdout, &report, "bt out");
}

/// `--max-artifact-size 1MiB` on a core of several MiB, with `codec` (`gzip` or `zstd`) and the
/// tool that tests one file (`gunzip -t`, `zstd -t`) and restores a stream.
fn split_core_checked_with(codec: &str, tool: &str) {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let o = run_storing(
        dir.path(),
        &["--compress", codec, "--max-artifact-size", "1MiB"],
        &noise_prog(),
    );
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let out = dir.path().join("out");
    let suffix = if codec == "gzip" { "gz" } else { "zst" };
    let parts: Vec<String> = names(&out)
        .into_iter()
        .filter(|n| n.contains(&format!(".core.{suffix}.")))
        .collect();
    assert!(parts.len() >= 4, "{:?}", names(&out));
    let whole = parts[0].strip_suffix(".000").unwrap().to_string();
    assert!(!out.join(&whole).exists(), "a split core has no whole file");
    let raw = fs::read(kept_core(dir.path())).unwrap();

    // Each part is a complete file for the tool, and no part is over the size.
    let paths: Vec<PathBuf> = parts.iter().map(|p| out.join(p)).collect();
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(parts[i], format!("{whole}.{i:03}"));
        let bytes = fs::metadata(p).unwrap().len();
        assert!(bytes <= 1 << 20, "{} is {bytes} bytes", p.display());
        assert!(bytes > 0);
        decompress(tool, &["-t", "-q"], std::slice::from_ref(p));
    }
    let restored = decompress(tool, &["-d", "-c", "-q"], &paths);
    assert!(
        restored == raw,
        "cat of the parts | {tool} -d does not restore the core"
    );

    // The manifest: the parts in order, each with its size and SHA-256, and the whole.
    let m = manifest(&out);
    let listed: Vec<&serde_json::Value> = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["core"].is_object())
        .collect();
    assert_eq!(listed.len(), parts.len(), "{m}");
    let mut joined = Vec::new();
    for (i, (e, p)) in listed.iter().zip(&paths).enumerate() {
        let bytes = fs::read(p).unwrap();
        assert_eq!(e["path"], parts[i].as_str());
        assert_eq!(e["kind"], format!("core.{suffix}"));
        assert_eq!(e["bytes"], bytes.len() as u64);
        assert_eq!(e["sha256"], sha256_hex(&bytes));
        assert_eq!(e["core"]["index"], i as u64);
        assert_eq!(e["core"]["parts"], parts.len() as u64);
        assert_eq!(e["core"]["name"], whole.as_str());
        joined.extend_from_slice(&bytes);
    }
    let c = &listed[0]["core"];
    assert_eq!(c["bytes"], joined.len() as u64);
    assert_eq!(c["sha256"], sha256_hex(&joined));
    assert_eq!(c["core_bytes"], raw.len() as u64);
    assert_eq!(c["core_sha256"], sha256_hex(&raw));

    // bt reads the split core as one: from the directory and from any one part.
    let report =
        fs::read_to_string(out.join(whole.replace(&format!(".core.{suffix}"), ".txt"))).unwrap();
    for target in ["out".to_string(), format!("out/{}", parts[parts.len() / 2])] {
        let bt = corecatch(dir.path(), &["bt", &target]);
        assert_eq!(bt.status.code(), Some(0), "bt {target}: {}", stderr(&bt));
        assert_bt_shows_report(&bt.stdout, &report, &format!("bt {target}"));
    }

    // A missing part (and no decompressed copy cached yet): bt names it rather than reading
    // half of the core.
    fs::remove_file(&paths[1]).unwrap();
    let _shared = CrashLock::shared();
    let bt = Command::new(bin())
        .args(["bt", "out"])
        .current_dir(dir.path())
        .env("CORECATCH_CACHE", dir.path().join("fresh-cache"))
        .output()
        .unwrap();
    assert_ne!(bt.status.code(), Some(0), "{}", stderr(&bt));
    assert!(stderr(&bt).contains(&parts[1]), "{}", stderr(&bt));
}

#[test]
fn a_gzip_core_over_the_size_is_split_into_valid_parts() {
    split_core_checked_with("gzip", "gzip");
}

#[test]
fn a_zstd_core_over_the_size_is_split_into_valid_parts() {
    split_core_checked_with("zstd", "zstd");
}

#[test]
fn part_sizes_and_zstd_levels_are_checked() {
    let parse = |args: &[&str]| corecatch::cli::Cli::try_parse_args(args);
    assert!(parse(&[
        "corecatch",
        "run",
        "--max-artifact-size",
        "512KiB",
        "--",
        "true"
    ])
    .is_err());
    assert!(parse(&["corecatch", "run", "--compress", "zstd:30", "--", "true"]).is_err());
    assert!(parse(&["corecatch", "run", "--compress", "lz4", "--", "true"]).is_err());
    assert!(parse(&["corecatch", "run", "--compress", "zstd:19", "--", "true"]).is_ok());
    let o = Command::new(bin())
        .args(["run", "--max-artifact-size", "1KiB", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("smallest part size"), "{}", stderr(&o));
}
