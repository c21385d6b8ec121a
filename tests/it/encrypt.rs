//! Cores encrypted to recipients (`--encrypt-to`, `--encrypt-to-file`), read back with the real
//! `age` and `age-keygen` (Debian's) and `ssh-keygen`: `age -d -i KEY | gunzip` restores the
//! kept raw core byte for byte, with either of two recipients' keys; no plaintext core or
//! temporary file ever appears in `--out` or the temporary directory while corecatch runs (both
//! scanned throughout); `bt --identity` reads it, the wrong key and no key fail with clear
//! messages; the manifest records to whom it is encrypted. The debug bundle is encrypted to the
//! same recipients (`bundle.tar.gz.age`): `age -d` gives a tar.gz `tar` lists, and `debug
//! --identity` and `bt --identity` open the crash from it with the build directory gone, also
//! after `fetch --identity` from S3 with the bundle's files in a build-id store.
//! `--encrypt-reports`: no report, page or JUnit file in clear (watched while it runs), the
//! crash's function names in no artifact but as ciphertext, nor on the terminal or in GitHub's
//! output; `age -d` gives back what a run without it writes, byte for byte; `bt --identity`
//! reads the directory; without a recipient it is a usage error.

use crate::skip_unless_kernel_cores;
use crate::util::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A fresh age key: (identity file, public key).
pub(crate) fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let o = Command::new(require("age-keygen"))
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .expect("age-keygen writes the public key");
    (key, public)
}

/// `age -d -i identity file`: the plaintext, or the failed output.
fn age_decrypt(identity: &Path, file: &Path) -> Output {
    Command::new(require("age"))
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(require("gunzip"))
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(o.status.success(), "gunzip failed");
    o.stdout
}

/// Watches `dirs` until stopped: every file seen whose name is not a report, with its first
/// bytes (a plaintext core or compressed stream would start with ELF's or gzip's magic).
/// A file seen and its first bytes.
type Seen = Vec<(PathBuf, Vec<u8>)>;

struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(dirs: Vec<PathBuf>) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                for d in &dirs {
                    let Ok(rd) = fs::read_dir(d) else { continue };
                    for e in rd.flatten() {
                        let p = e.path();
                        let name = e.file_name().to_string_lossy().into_owned();
                        if [".json", ".txt", ".html", ".xml"]
                            .iter()
                            .any(|x| name.ends_with(x))
                            || name.starts_with(".corecatch.lock")
                        {
                            continue;
                        }
                        let mut head = vec![0u8; 32];
                        let n = fs::File::open(&p)
                            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                            .unwrap_or(0);
                        head.truncate(n);
                        if n > 0 {
                            v.lock().unwrap().push((p, head));
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        Watcher {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

#[test]
fn encrypted_cores_open_with_age_and_bt_and_never_touch_disk_in_clear() {
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (key1, pub1) = age_key(dir.path(), "key1.txt");
    let ssh = dir.path().join("id_ed25519");
    let o = Command::new(require("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&ssh)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recipients = dir.path().join("recipients.txt");
    fs::write(
        &recipients,
        format!(
            "# the team's laptop\n{}",
            fs::read_to_string(ssh.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();
    let tmp = dir.path().join("tmp");
    let out = dir.path().join("out");
    fs::create_dir_all(&tmp).unwrap();
    fs::create_dir_all(&out).unwrap();
    let watch = Watcher::start(vec![out.clone(), tmp.clone()]);
    let o = {
        let _shared = CrashLock::shared();
        Command::new(bin())
            .args(["run", "--keep-cores", "--out", "out", "--encrypt-to", &pub1])
            .arg("--encrypt-to-file")
            .arg(&recipients)
            .args(["--", abort_demo().to_str().unwrap()])
            .current_dir(dir.path())
            .env("TMPDIR", &tmp)
            .env_remove("CORECATCH_OUT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let seen = watch.finish();
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(
        seen.iter()
            .any(|(_, h)| h.starts_with(b"age-encryption.org/v1")),
        "the watcher never saw the encrypted core being written: {:?}",
        seen.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (p, head) in &seen {
        let name = p.file_name().unwrap().to_string_lossy();
        if name.starts_with("manifest") {
            continue;
        }
        // A core (ELF) or a compressed stream (gzip, zstd) in clear; reports are text.
        for magic in [
            &b"\x7fELF"[..],
            &[0x1f, 0x8b][..],
            &[0x28, 0xb5, 0x2f, 0xfd][..],
        ] {
            assert!(
                !head.starts_with(magic),
                "{} held {:02x?} in clear while corecatch ran",
                p.display(),
                &head[..head.len().min(8)]
            );
        }
    }

    let stored: Vec<PathBuf> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".core.gz.age"))
        .collect();
    assert_eq!(stored.len(), 1, "{:?}", fs::read_dir(&out).unwrap().count());
    // The bundle (of libc and its debug file here) is encrypted too, and only encrypted.
    assert!(out.join("bundle.tar.gz.age").is_file(), "{}", stderr(&o));
    assert!(artifacts(&out, ".tar.gz").is_empty());
    let raw = fs::read(
        fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("core"))
            .expect("the kept raw core"),
    )
    .unwrap();
    // Either recipient's key opens it.
    for identity in [&key1, &ssh] {
        let d = age_decrypt(identity, &stored[0]);
        assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
        assert!(gunzip(&d.stdout) == raw, "age -d | gunzip is not the core");
    }
    let (other, _) = age_key(dir.path(), "other.txt");
    assert!(!age_decrypt(&other, &stored[0]).status.success());

    // The manifest says to whom, and the stored file's hash.
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let e = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "core.gz.age")
        .unwrap_or_else(|| panic!("{m}"))
        .clone();
    assert_eq!(e["sha256"], sha256_hex(&fs::read(&stored[0]).unwrap()));
    let to: Vec<&str> = e["core"]["encrypted_to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(to.contains(&pub1.as_str()), "{to:?}");
    assert!(to.iter().any(|k| k.starts_with("ssh-ed25519 ")), "{to:?}");
    assert_eq!(e["core"]["core_sha256"], sha256_hex(&raw));

    // bt with the key; without one, and with the wrong one, a clear refusal.
    let bt = |args: &[&str]| {
        let _shared = CrashLock::shared();
        Command::new(bin())
            .args(args)
            .current_dir(dir.path())
            .env(
                "CORECATCH_CACHE",
                dir.path().join(format!("cache-{}", args.len())),
            )
            .output()
            .unwrap()
    };
    let ok = bt(&["bt", "--identity", key1.to_str().unwrap(), "out"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let report =
        fs::read_to_string(stored[0].to_string_lossy().replace(".core.gz.age", ".txt")).unwrap();
    assert_bt_shows_report(&ok.stdout, &report, "bt --identity");
    let none = bt(&["bt", "out"]);
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(stderr(&none).contains("--identity"), "{}", stderr(&none));
    // The decrypted core is cached now (same cache as `ok`): the wrong key still gets nothing.
    let cached = bt(&["bt", "--identity", other.to_str().unwrap(), "out"]);
    assert_eq!(cached.status.code(), Some(1), "{}", stderr(&cached));
    assert!(
        stderr(&cached).contains("none of the identities"),
        "{}",
        stderr(&cached)
    );
    let wrong = bt(&[
        "bt",
        "--identity",
        other.to_str().unwrap(),
        "out",
        "--max-frames",
        "9",
    ]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("none of the identities"),
        "{}",
        stderr(&wrong)
    );
}

/// `age -d -i identity -o out file`, which must succeed.
pub(crate) fn age_decrypt_to(identity: &Path, file: &Path, out: &Path) {
    let o = Command::new(require("age"))
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg("-o")
        .arg(out)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "age -d {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `tar -tzf archive`: the names it lists.
fn tar_list(archive: &Path) -> Vec<String> {
    let o = Command::new(require("tar"))
        .arg("-tzf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(o.status.success(), "tar -tzf: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `corecatch debug --identity KEY TARGET --batch -ex 'thread apply all bt'`: the one thread's
/// frames as gdb printed them, and the stderr.
fn debug_bt_with_identity(
    cwd: &Path,
    key: &Path,
    target: &Path,
    env: &[(&str, &Path)],
) -> (Vec<crate::zoo::GdbFrame>, String) {
    let mut cmd = Command::new(bin());
    cmd.current_dir(cwd)
        .arg("debug")
        .arg("--identity")
        .arg(key)
        .arg(target)
        .args(["--batch", "-ex", "thread apply all bt"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "debug: {out}\n{}", stderr(&o));
    let t = crate::zoo::parse_gdb(&out);
    assert_eq!(t.len(), 1, "one thread from debug:\n{out}\n{}", stderr(&o));
    (t.into_iter().next().unwrap().frames, stderr(&o))
}

/// A frame as `bt --json` shows it: (function, file name, line).
type BtFrame = (Option<String>, Option<String>, Option<u32>);

/// `corecatch bt --identity KEY --json TARGET`: the crashed thread's frames; and the text
/// report's frame lines (`bt --identity KEY TARGET`).
fn bt_with_identity(
    cwd: &Path,
    key: &Path,
    target: &Path,
    env: &[(&str, &Path)],
) -> (Vec<BtFrame>, Vec<String>) {
    let run = |json: bool| {
        let mut cmd = Command::new(bin());
        cmd.current_dir(cwd).arg("bt").arg("--identity").arg(key);
        if json {
            cmd.arg("--json");
        }
        cmd.arg(target);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "bt: {}", stderr(&o));
        assert!(!stderr(&o).contains("is not used"), "{}", stderr(&o));
        o.stdout
    };
    let r: serde_json::Value = serde_json::from_slice(&run(true)).unwrap();
    let t = r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["crashed"] == true)
        .unwrap();
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let frames = t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["function"].as_str().map(str::to_string),
                f["file"].as_str().map(base),
                f["line"].as_u64().map(|l| l as u32),
            )
        })
        .collect();
    (frames, frame_lines(&String::from_utf8_lossy(&run(false))))
}

/// The manifest entry of `path` in `out`.
fn entry_of(out: &Path, path: &str) -> serde_json::Value {
    let m = read_manifest(out);
    m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {m}"))
        .clone()
}

fn encrypted_to(e: &serde_json::Value) -> Vec<String> {
    e["encrypted_to"]
        .as_array()
        .unwrap_or_else(|| panic!("no encrypted_to: {e}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_encrypted_bundle_is_a_tar_gz_to_age_and_opens_the_crash_elsewhere() {
    use crate::bundle::{assert_matches_originals, build_program, gdb_on_originals};
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (key, public) = age_key(dir.path(), "key.txt");
    let p = build_program(dir.path(), 0);
    let art = dir.path().join("art");
    // --bundle auto (the default) bundles under encryption.
    let o = corecatch(
        &p.build,
        &[
            "run",
            "--keep-cores",
            "--out",
            art.to_str().unwrap(),
            "--encrypt-to",
            &public,
            "--",
            p.exe.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("bundle.tar.gz.age:") && err.contains("corecatch debug --identity KEY "),
        "{err}"
    );
    let bundle = art.join("bundle.tar.gz.age");
    let bytes = fs::read(&bundle).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(artifacts(&art, ".tar.gz").is_empty(), "no bundle in clear");

    // The real age makes an ordinary tar.gz of it: gunzip -t passes, tar lists the program and
    // its library at their paths, and bundle.json.
    let plain = dir.path().join("bundle.tar.gz");
    age_decrypt_to(&key, &bundle, &plain);
    let gz = Command::new(require("gunzip"))
        .arg("-t")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(gz.status.success(), "gunzip -t: {}", stderr(&gz));
    let names = tar_list(&plain);
    for want in [
        format!("root{}", p.exe.display()),
        format!("root{}", p.lib.display()),
        "bundle.json".to_string(),
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let listing = crate::bundle::bundle_listing(&plain);
    assert!(listing["files"].as_array().unwrap().len() >= 2, "{listing}");

    // The manifest: the bundle as stored, encrypted, to whom; the core's entry says it too.
    let e = entry_of(&art, "bundle.tar.gz.age");
    assert_eq!(e["kind"], "bundle.tar.gz.age");
    assert_eq!(e["bytes"], bytes.len() as u64);
    assert_eq!(e["sha256"], sha256_hex(&bytes));
    assert_eq!(encrypted_to(&e), std::slice::from_ref(&public));
    let core = artifacts(&art, ".core.gz.age").remove(0);
    let name = core.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        encrypted_to(&entry_of(&art, &name)),
        std::slice::from_ref(&public)
    );

    // Another machine: the build directory (program, library, raw core) is gone.
    let raw = crate::util::cores_in(&p.build);
    assert_eq!(raw.len(), 1, "the kept raw core");
    let want = gdb_on_originals(&p, &raw[0]);
    fs::remove_dir_all(&p.build).unwrap();
    let cache = dir.path().join("cache");
    let env = [("CORECATCH_CACHE", cache.as_path())];
    let (debug, err) = debug_bt_with_identity(dir.path(), &key, &art, &env);
    assert!(!err.contains("neither in the bundle"), "{err}");
    let (bt, lines) = bt_with_identity(dir.path(), &key, &art, &env);
    assert_matches_originals(&want, &debug, &bt);
    assert!(
        lines.iter().any(|l| l.contains("in bundled_crash (")),
        "{lines:?}"
    );
    // Unpacked once into the cache, from the stored core's directory too.
    assert_eq!(fs::read_dir(cache.join("bundles")).unwrap().count(), 1);
    let (bt, _) = bt_with_identity(dir.path(), &key, &core, &env);
    assert_matches_originals(&want, &debug, &bt);
    assert_eq!(fs::read_dir(cache.join("bundles")).unwrap().count(), 1);
}

#[test]
fn fetch_identity_unpacks_an_encrypted_bundle_and_its_build_id_store_files() {
    use crate::bundle::{assert_matches_originals, build_program, gdb_on_originals};
    use crate::s3::{corecatch_s3_env, listing, text, Moto, KEY_ID, SECRET};
    skip_unless_kernel_cores!();
    let moto = Moto::start();
    moto.bucket("ci-enc");
    let dir = tempdir();
    let (key, public) = age_key(dir.path(), "key.txt");
    let p = build_program(dir.path(), 0);
    let o = corecatch_s3_env(
        &p.build,
        &moto.url(),
        &[
            "run",
            "--keep-cores",
            "--out",
            dir.path().join("out").to_str().unwrap(),
            "--encrypt-to",
            &public,
            "--to",
            "s3://ci-enc/builds/1",
            "--bundle-store",
            "s3://ci-enc/store",
            "--",
            p.exe.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(134), "{}", text(&o));
    // The store holds the files by build-id (shared by every build, so as they are); the
    // build's own prefix holds the encrypted bundle of references.
    let store = listing(&moto, "ci-enc", "store/");
    assert!(
        store.iter().any(|(k, _)| k.ends_with("/libbundled.so")),
        "{store:?}"
    );
    let build = listing(&moto, "ci-enc", "builds/1/");
    assert!(
        build.iter().any(|(k, _)| k == "builds/1/bundle.tar.gz.age"),
        "{build:?}"
    );
    assert!(
        !build.iter().any(|(k, _)| k.ends_with(".tar.gz")),
        "{build:?}"
    );

    let raw = crate::util::cores_in(&p.build);
    let want = gdb_on_originals(&p, &raw[raw.len() - 1]);
    fs::remove_dir_all(&p.build).unwrap();

    // Without --identity fetch brings the files and says the bundle was left packed.
    let cache0 = dir.path().join("cache0");
    let o = corecatch_s3_env(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://ci-enc/builds/1", "first"],
        &[("CORECATCH_CACHE", cache0.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("bundle.tar.gz.age is encrypted: not unpacked"),
        "{}",
        text(&o)
    );
    assert!(!cache0.join("bundles").exists());
    // A bad identity file fails before anything is fetched.
    let o = corecatch_s3_env(
        dir.path(),
        &moto.url(),
        &[
            "fetch",
            "--identity",
            "/nonexistent/key",
            "s3://ci-enc/builds/1",
            "x",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent/key"), "{}", text(&o));
    assert!(!dir.path().join("x").exists());

    // With it, the bundle is unpacked into the cache and the store's files fetched into it.
    let cache = dir.path().join("cache");
    let o = corecatch_s3_env(
        dir.path(),
        &moto.url(),
        &[
            "fetch",
            "--identity",
            key.to_str().unwrap(),
            "s3://ci-enc/builds/1",
            "crash",
        ],
        &[("CORECATCH_CACHE", cache.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("not unpacked"), "{}", text(&o));
    let unpacked: Vec<PathBuf> = fs::read_dir(cache.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    let lib = unpacked[0].join(format!("root{}", p.lib.display()));
    assert!(lib.is_file(), "{} fetched from the store", lib.display());

    // The store gone: debug and bt --identity still open the crash from the cache.
    let endpoint = moto.url();
    drop(moto);
    let crash = dir.path().join("crash");
    let env = [
        ("CORECATCH_CACHE", cache.as_path()),
        ("AWS_ENDPOINT_URL", Path::new(&endpoint)),
        ("AWS_ACCESS_KEY_ID", Path::new(KEY_ID)),
        ("AWS_SECRET_ACCESS_KEY", Path::new(SECRET)),
        ("AWS_REGION", Path::new("us-east-1")),
        ("AWS_EC2_METADATA_DISABLED", Path::new("true")),
    ];
    let (debug, err) = debug_bt_with_identity(dir.path(), &key, &crash, &env);
    assert!(!err.contains("neither in the bundle"), "{err}");
    assert!(!err.contains("could not be fetched"), "{err}");
    let (bt, _) = bt_with_identity(dir.path(), &key, &crash, &env);
    assert_matches_originals(&want, &debug, &bt);
}

/// What a report, the page or a JUnit file starts with, or holds near its start, in clear.
fn plaintext_report(head: &[u8]) -> bool {
    let t = String::from_utf8_lossy(head);
    head.starts_with(b"pid ")
        || head.starts_with(b"<!DOCTYPE")
        || head.starts_with(b"<?xml")
        || t.contains("corecatch.report")
}

/// Every file under `dir` (recursively) whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(p);
            }
        }
    }
    hits
}

fn decrypted(key: &Path, file: &Path) -> Vec<u8> {
    let d = age_decrypt(key, file);
    assert!(
        d.status.success(),
        "age -d {}: {}",
        file.display(),
        String::from_utf8_lossy(&d.stderr)
    );
    d.stdout
}

#[test]
fn encrypt_reports_leaves_only_the_manifest_readable_and_age_restores_the_reports() {
    use crate::bundle::build_program;
    skip_unless_kernel_cores!();
    let dir = tempdir();
    let (key, public) = age_key(dir.path(), "key.txt");
    let p = build_program(dir.path(), 0);
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let summary = dir.path().join("summary.md");
    let watch = Watcher::start(vec![out.clone()]);
    let o = {
        let _shared = CrashLock::shared();
        Command::new(bin())
            .current_dir(&p.build)
            .args([
                "run",
                "--keep-cores",
                "--encrypt-reports",
                "--encrypt-to",
                &public,
            ])
            .arg("--out")
            .arg(&out)
            .arg("--junit")
            .arg(out.join("junit.xml"))
            .args(["--", p.exe.to_str().unwrap()])
            .env_remove("CORECATCH_OUT")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", dir.path())
            .env("GITHUB_STEP_SUMMARY", &summary)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let seen = watch.finish();
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(
        seen.iter()
            .any(|(p, h)| p.to_string_lossy().ends_with(".age")
                && h.starts_with(b"age-encryption.org/v1")),
        "the watcher saw no encrypted file being written: {:?}",
        seen.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (p, head) in &seen {
        assert!(
            !plaintext_report(head),
            "{} held a report in clear while corecatch ran: {:?}",
            p.display(),
            String::from_utf8_lossy(head)
        );
    }

    // The terminal and GitHub name the crash and where its backtrace is, not the backtrace.
    let (err, annotations) = (stderr(&o), String::from_utf8_lossy(&o.stdout).into_owned());
    let md = fs::read_to_string(&summary).unwrap();
    for (what, text) in [("stderr", &err), ("stdout", &annotations), ("summary", &md)] {
        assert!(!text.contains("bundled_crash"), "{what}: {text}");
        assert!(text.contains("--encrypt-reports"), "{what}: {text}");
        assert!(text.contains("SIGABRT"), "{what}: {text}");
    }
    assert!(
        err.contains(".{core.gz.age,json.age,txt.age}")
            && err.contains(&format!("corecatch bt --identity KEY {}", out.display())),
        "{err}"
    );
    assert!(
        annotations.starts_with("::error title=prog crashed with SIGABRT::"),
        "{annotations}"
    );
    assert!(!annotations.contains("::group::"), "{annotations}");

    // In --out: the reports, the page and JUnit only as .age; the function names in no file
    // but the ones age decrypts (the manifest has none either).
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in &names {
        for ext in [".json", ".txt", ".html", ".xml"] {
            assert!(
                !n.ends_with(ext) || n == "manifest.json",
                "{n} in clear: {names:?}"
            );
        }
    }
    let stem = names
        .iter()
        .find_map(|n| n.strip_suffix(".core.gz.age"))
        .unwrap_or_else(|| panic!("{names:?}"))
        .to_string();
    for want in [
        format!("{stem}.json.age"),
        format!("{stem}.txt.age"),
        "index.html.age".into(),
        "junit.xml.age".into(),
        "bundle.tar.gz.age".into(),
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let holding = files_holding(&out, b"bundled_crash");
    assert!(holding.is_empty(), "function names in clear in {holding:?}");

    // The manifest lists each encrypted file, as stored, with its recipients.
    for (name, kind) in [
        (format!("{stem}.json.age"), "report.json.age"),
        (format!("{stem}.txt.age"), "report.txt.age"),
        ("index.html.age".to_string(), "report.html.age"),
        ("bundle.tar.gz.age".to_string(), "bundle.tar.gz.age"),
        (format!("{stem}.core.gz.age"), "core.gz.age"),
    ] {
        let e = entry_of(&out, &name);
        assert_eq!(e["kind"], kind, "{e}");
        let bytes = fs::read(out.join(&name)).unwrap();
        assert_eq!(e["sha256"], sha256_hex(&bytes), "{e}");
        assert_eq!(e["bytes"], bytes.len() as u64, "{e}");
        assert_eq!(encrypted_to(&e), std::slice::from_ref(&public), "{e}");
    }

    // age -d restores them: the text report has the crash's frames, the JSON parses.
    let txt = String::from_utf8(decrypted(&key, &out.join(format!("{stem}.txt.age")))).unwrap();
    assert!(txt.contains("in bundled_crash ("), "{txt}");
    let json: serde_json::Value =
        serde_json::from_slice(&decrypted(&key, &out.join(format!("{stem}.json.age")))).unwrap();
    assert_eq!(json["schema"], "corecatch.report.v1");
    let page = String::from_utf8(decrypted(&key, &out.join("index.html.age"))).unwrap();
    assert!(
        page.contains("bundled_crash") && page.contains(&format!("href=\"{stem}.json.age\"")),
        "{page}"
    );
    let xml = String::from_utf8(decrypted(&key, &out.join("junit.xml.age"))).unwrap();
    assert!(
        xml.starts_with("<?xml") && xml.contains("bundled_crash"),
        "{xml}"
    );

    // The same core collected with and without --encrypt-reports: age -d gives back the very
    // bytes the plain reports hold (the page differs only in its links to the .age names).
    let raw = crate::util::cores_in(&p.build);
    assert_eq!(raw.len(), 1, "the kept raw core");
    let collect = |name: &str, extra: &[&str]| {
        let to = dir.path().join(name);
        let o = corecatch(
            &p.build,
            &[
                &[
                    "collect",
                    "--keep-cores",
                    "--bundle",
                    "never",
                    "--encrypt-to",
                    &public,
                ][..],
                extra,
                &[
                    "--out",
                    to.to_str().unwrap(),
                    "--junit",
                    to.join("junit.xml").to_str().unwrap(),
                    raw[0].to_str().unwrap(),
                ],
            ]
            .concat(),
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        to
    };
    let plain = collect("plain", &[]);
    let sealed = collect("sealed", &["--encrypt-reports"]);
    for (clear, enc) in [
        (format!("{stem}.json"), format!("{stem}.json.age")),
        (format!("{stem}.txt"), format!("{stem}.txt.age")),
        ("junit.xml".to_string(), "junit.xml.age".to_string()),
    ] {
        let want = fs::read(plain.join(&clear)).unwrap();
        assert!(
            decrypted(&key, &sealed.join(&enc)) == want,
            "age -d {enc} is not {clear}"
        );
        assert!(!sealed.join(&clear).exists());
    }
    let want = fs::read_to_string(plain.join("index.html")).unwrap();
    let got = String::from_utf8(decrypted(&key, &sealed.join("index.html.age"))).unwrap();
    assert_eq!(
        got.replace(".json.age\"", ".json\"")
            .replace(".txt.age\"", ".txt\"")
            .replace(".json.age<", ".json<")
            .replace(".txt.age<", ".txt<"),
        want
    );

    // Another machine: bt --identity reads the directory as any other.
    let report_frames = frame_lines(&txt);
    fs::remove_dir_all(&p.build).unwrap();
    let cache = dir.path().join("cache");
    let (_, shown) = bt_with_identity(
        dir.path(),
        &key,
        &out,
        &[("CORECATCH_CACHE", cache.as_path())],
    );
    assert!(
        shown.iter().any(|l| l.contains("in bundled_crash (")),
        "{shown:?}"
    );
    // Frame for frame as the (decrypted) report, but for the locals `bt` does not read.
    let strip = |l: &String| l.split(" (").next().unwrap().to_string();
    assert_eq!(
        shown.iter().map(strip).collect::<Vec<_>>(),
        report_frames.iter().map(strip).collect::<Vec<_>>()
    );
}

#[test]
fn encrypt_reports_without_a_recipient_is_a_usage_error() {
    let dir = tempdir();
    for args in [
        &["run", "--encrypt-reports", "--out", "out", "--", "true"][..],
        &["collect", "--encrypt-reports", "--out", "out", "core"],
    ] {
        let o = corecatch(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("--encrypt-reports")
                && err.contains("--encrypt-to")
                && err.contains("Usage:"),
            "{args:?}: {err}"
        );
        assert!(!dir.path().join("out").exists(), "{args:?} ran anyway");
    }
}
