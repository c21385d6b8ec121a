//! Cores encrypted to recipients (`--encrypt-to`, `--encrypt-to-file`), read back with the real
//! `age` and `age-keygen` (Debian's) and `ssh-keygen`: `age -d -i KEY | gunzip` restores the
//! kept raw core byte for byte, with either of two recipients' keys; no plaintext core or
//! temporary file ever appears in `--out` or the temporary directory while corecatch runs (both
//! scanned throughout); `bt --identity` reads it, the wrong key and no key fail with clear
//! messages; the manifest records to whom it is encrypted.

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
        if name.starts_with("bundle") || name.starts_with("manifest") {
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
    let shown = frame_lines(&String::from_utf8_lossy(&ok.stdout));
    assert!(
        shown.iter().any(|f| f.contains("in main () at ")),
        "{shown:?}"
    );
    assert_eq!(shown, frame_lines(&report));
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
