//! Artifacts that leave the machine: `--to s3://…`, `upload` and `fetch` against a real
//! S3-compatible server (moto's server mode from the venv `make test` creates, one per test on a
//! free loopback port), a loopback proxy that drops connections, and a loopback CircleCI API.
//! A missing `target/venv/bin/moto_server` fails the tests (`make venv` installs it).

use crate::skip_unless_kernel_cores;
use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const SECRET: &str = "s3cr3t-Key-that-must-never-show";
pub(crate) const KEY_ID: &str = "AKIDTESTNEVERPRINTED";

fn moto_bin() -> PathBuf {
    root().join("target/venv/bin/moto_server")
}

/// A moto server on a free loopback port, killed on drop (and with the test process, through
/// PR_SET_PDEATHSIG, should the test die first).
pub(crate) struct Moto {
    child: Child,
    pub(crate) port: u16,
}

impl Moto {
    pub(crate) fn start() -> Moto {
        // The venv is part of `make test`: a missing server is a broken setup, CI or not.
        let mut cmd = Command::new(require(moto_bin().to_str().unwrap()));
        let port = free_port();
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("moto_server starts");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http(port, "GET", "/", b"").is_some() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on port {port}");
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn bucket(&self, name: &str) {
        let (status, _) = http(self.port, "PUT", &format!("/{name}"), b"").unwrap();
        assert_eq!(status, 200, "create bucket {name}");
    }

    /// Puts an object by raw HTTP (moto takes unsigned requests), for keys the SDK would
    /// normalise.
    fn put_raw(&self, bucket: &str, key: &str, body: &[u8]) {
        let (status, _) = http(self.port, "PUT", &format!("/{bucket}/{key}"), body).unwrap();
        assert_eq!(status, 200, "put {key}");
    }

    /// The response headers of a HEAD request, lower-cased. moto answers 403 to an anonymous
    /// HEAD of an encrypted object; it does not check signatures, so any SigV4-shaped
    /// Authorization header will do.
    fn head(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=00\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.to_ascii_lowercase()
    }

    fn get(&self, path: &str) -> String {
        let (_, body) = http(self.port, "GET", path, b"").unwrap();
        String::from_utf8_lossy(&body).into_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; (status, body).
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let start = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, resp[start..].to_vec()))
}

/// corecatch with the S3 environment pointing at `endpoint`.
fn corecatch_s3(cwd: &Path, endpoint: &str, args: &[&str]) -> Output {
    corecatch_s3_env(cwd, endpoint, args, &[])
}

pub(crate) fn corecatch_s3_env(
    cwd: &Path,
    endpoint: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let _shared = CrashLock::shared();
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .env_remove("CORECATCH_OUT")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        // No instance metadata lookups on a machine that is not EC2.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_no_secrets(o: &Output) {
    let t = text(o);
    for s in [SECRET, KEY_ID] {
        assert!(!t.contains(s), "{s} printed:\n{t}");
    }
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    let names = |t: &[(PathBuf, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ta), names(&tb));
    for ((p, x), (_, y)) in ta.iter().zip(&tb) {
        assert!(x == y, "{} differs", p.display());
    }
}

/// `fetch URL back` in `dir`: the fetched directory holds exactly what `out` holds.
fn fetch_back(dir: &Path, moto: &Moto, url: &str, out: &Path) {
    let o = corecatch_s3(dir, &moto.url(), &["fetch", url, "back"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_same_tree(out, &dir.join("back"));
}

/// The text report of the one crash in `out`.
fn text_report(out: &Path) -> String {
    let txt = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "txt"))
        .expect("a .txt report");
    fs::read_to_string(txt).unwrap()
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    // xorshift: incompressible enough, reproducible, no extra crate.
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn run_uploads_a_crash_and_fetch_brings_it_back() {
    skip_unless_kernel_cores!();
    let moto = Moto::start();
    moto.bucket("ci-artifacts");
    let dir = tempdir();
    let crash = crash_prog();
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &[
            "run",
            "--out",
            "out",
            "--to",
            "s3://ci-artifacts/repo/42",
            "-v",
            "--",
            crash.to_str().unwrap(),
            "abort",
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", text(&o));
    assert_no_secrets(&o);
    assert!(text(&o).contains("uploaded"), "{}", text(&o));
    let out = dir.path().join("out");
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for e in m["artifacts"].as_array().unwrap() {
        let path = e["path"].as_str().unwrap();
        assert_eq!(e["key"], format!("repo/42/{path}"), "{e}");
    }
    assert!(m.to_string().contains(".core.gz"));
    assert!(!m.to_string().contains(SECRET));

    let back = dir.path().join("back");
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &[
            "fetch",
            "s3://ci-artifacts/repo/42",
            "back",
            "-j",
            "4",
            "-v",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_no_secrets(&o);
    assert_same_tree(&out, &back);

    // Again: everything is already there and verified against the manifest.
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://ci-artifacts/repo/42", "back"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("fetched 1 files"), "{}", text(&o));
    assert!(text(&o).contains("already complete"), "{}", text(&o));
}

/// A core stored in parts (`--max-artifact-size`) goes up part by part and comes back whole:
/// every part fetched and checked against the manifest, and `bt` on the fetched directory
/// prints the frames of the report made at the crash.
#[test]
fn a_split_core_uploaded_and_fetched_is_read_by_bt() {
    skip_unless_kernel_cores!();
    let moto = Moto::start();
    moto.bucket("ci-artifacts");
    let dir = tempdir();
    let noise = crate::store::noise_prog();
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &[
            "run",
            "--out",
            "out",
            "--bundle",
            "never",
            "--max-artifact-size",
            "1MiB",
            "--to",
            "s3://ci-artifacts/split/7",
            "--",
            noise.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", text(&o));
    let out = dir.path().join("out");
    let parts: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".core.gz.0"))
        .collect();
    assert!(parts.len() >= 4, "{parts:?}");
    let keys: Vec<String> = listing(&moto, "ci-artifacts", "split/7/")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for p in &parts {
        assert!(
            keys.contains(&format!("split/7/{p}")),
            "{p} not in {keys:?}"
        );
    }
    fetch_back(dir.path(), &moto, "s3://ci-artifacts/split/7", &out);
    let bt = corecatch_s3(dir.path(), &moto.url(), &["bt", "back"]);
    assert_eq!(bt.status.code(), Some(0), "{}", text(&bt));
    assert_bt_shows_report(&bt.stdout, &text_report(&out), "bt on the fetched copy");
}

/// Everything at once: scrubbed, zstd, encrypted to a recipient, split at 1 MiB, uploaded;
/// then fetched into a new directory and read by `bt --identity`, as on the laptop of whoever
/// holds the key. The secrets in the crashed process's environment (a GitHub token, and the
/// AWS secret key corecatch itself is given) are in no artifact, uploaded or fetched, nor in the
/// core that `age -d | zstd -d` restores, nor in the bundle.
#[test]
fn zstd_encrypted_split_cores_go_up_and_come_back_readable() {
    const GH: &str = "ghp_s3TokenMUSTnotLEAKq8Rw2Zx5Vb7Nm4Kp1";
    skip_unless_kernel_cores!();
    let moto = Moto::start();
    moto.bucket("ci-artifacts");
    let dir = tempdir();
    let (key, public) = crate::encrypt::age_key(dir.path(), "key.txt");
    let noise = crate::store::noise_prog();
    let o = corecatch_s3_env(
        dir.path(),
        &moto.url(),
        &[
            "run",
            "--out",
            "out",
            "--scrub-env",
            "--compress",
            "zstd",
            "--encrypt-to",
            &public,
            "--max-artifact-size",
            "1MiB",
            "--to",
            "s3://ci-artifacts/all/9",
            "--",
            noise.to_str().unwrap(),
        ],
        &[("GITHUB_TOKEN", GH)],
    );
    assert_eq!(o.status.code(), Some(134), "{}", text(&o));
    assert_no_secrets(&o);
    assert!(!text(&o).contains(GH), "{}", text(&o));
    let out = dir.path().join("out");
    let mut parts: Vec<PathBuf> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".core.zst.age.0"))
        .collect();
    parts.sort();
    assert!(parts.len() >= 4, "{parts:?}");
    for p in &parts {
        assert!(fs::metadata(p).unwrap().len() <= 1 << 20, "{}", p.display());
    }
    // cat of the parts is one age file: age -d, then zstd -d.
    let mut joined = Vec::new();
    for p in &parts {
        joined.extend(fs::read(p).unwrap());
    }
    let whole = dir.path().join("joined.age");
    fs::write(&whole, &joined).unwrap();
    crate::encrypt::age_decrypt_to(&key, &whole, &dir.path().join("joined.zst"));
    let t = Command::new(require("zstd"))
        .args(["-t", "-q"])
        .arg(dir.path().join("joined.zst"))
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    // The core itself: the environment block is there, its values are `*`s.
    let d = Command::new(require("zstd"))
        .args(["-d", "-c", "-q"])
        .arg(dir.path().join("joined.zst"))
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let core = d.stdout;
    assert!(core.starts_with(b"\x7fELF"), "not a core");
    let has = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    let stars = |n: usize| "*".repeat(n);
    assert!(
        has(&core, &format!("GITHUB_TOKEN={}\0", stars(GH.len()))),
        "the scrubbed GITHUB_TOKEN is not in the core"
    );
    assert!(has(
        &core,
        &format!("AWS_SECRET_ACCESS_KEY={}\0", stars(SECRET.len()))
    ));
    for secret in [GH, SECRET] {
        assert!(!has(&core, secret), "{secret} in the restored core");
        // Nor any 8-byte piece of it (what registers and stacks would hold).
        for piece in secret.as_bytes().windows(8) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !has(&core, piece),
                "{piece:?} of {secret} in the restored core"
            );
        }
    }

    fetch_back(dir.path(), &moto, "s3://ci-artifacts/all/9", &out);
    // No artifact holds a secret, here or fetched back; nor the bundle once decrypted.
    let bundle = dir.path().join("bundle.tar.gz");
    crate::encrypt::age_decrypt_to(&key, &out.join("bundle.tar.gz.age"), &bundle);
    let bundle = gunzip(&bundle);
    for (p, bytes) in tree(&out)
        .into_iter()
        .chain(tree(&dir.path().join("back")))
        .chain([(PathBuf::from("bundle.tar"), bundle)])
    {
        for secret in [GH, SECRET] {
            assert!(!has(&bytes, secret), "{secret} in {}", p.display());
        }
    }
    let report = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("manifest.json"))
        .map(|p| fs::read_to_string(p).unwrap())
        .expect("the report");
    assert!(
        report.contains("\"GITHUB_TOKEN\""),
        "the report names what was scrubbed: {report}"
    );
    let bt = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["bt", "--identity", key.to_str().unwrap(), "back"],
    );
    assert_eq!(bt.status.code(), Some(0), "{}", text(&bt));
    assert_bt_shows_report(&bt.stdout, &text_report(&out), "bt on the fetched copy");
}

/// The debug bundle's round trip: a program and its own library crash under `run --to`, the
/// build directory is deleted, the artifacts are fetched into a new directory, and `debug`
/// and `bt` there print what gdb printed on the original files.
#[test]
fn a_fetched_crash_opens_with_its_bundle() {
    use crate::bundle::*;
    skip_unless_kernel_cores!();
    let moto = Moto::start();
    moto.bucket("ci-artifacts");
    let dir = tempdir();
    let p = build_program(dir.path(), 0);
    let o = corecatch_s3(
        &p.build,
        &moto.url(),
        &[
            "run",
            "--keep-cores",
            "--out",
            dir.path().join("out").to_str().unwrap(),
            "--to",
            "s3://ci-artifacts/repo/7",
            "--",
            p.exe.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(134), "{}", text(&o));
    let raw = cores_in(&p.build);
    let want = gdb_on_originals(&p, &raw[0]);
    fs::remove_dir_all(&p.build).unwrap();
    fs::remove_dir_all(dir.path().join("out")).unwrap();
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://ci-artifacts/repo/7", "crash"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let crash = dir.path().join("crash");
    assert!(crash.join("bundle.tar.gz").is_file());
    let cache = dir.path().join("cache");
    let env = [("CORECATCH_CACHE", cache.as_path())];
    let (debug, _) = debug_bt(dir.path(), &crash, &env);
    let bt = bt_json(dir.path(), &crash, &env);
    assert_matches_originals(&want, &debug, &bt);
}

/// (key, size) of every object under `prefix` in moto's bucket, by a plain ListObjectsV2.
pub(crate) fn listing(moto: &Moto, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
    let xml = moto.get(&format!(
        "/{bucket}?list-type=2&prefix={prefix}&max-keys=1000"
    ));
    xml.split("<Contents>")
        .skip(1)
        .map(|c| {
            let field = |tag: &str| {
                c.split(&format!("<{tag}>"))
                    .nth(1)
                    .and_then(|r| r.split(&format!("</{tag}>")).next())
                    .unwrap_or("")
                    .to_string()
            };
            (field("Key"), field("Size").parse().unwrap_or(0))
        })
        .collect()
}

/// `--bundle-store`: two runs of the same program put each library once; the second run's
/// upload holds only its core, reports and a bundle of references, and its crash still opens
/// on another machine (`fetch` pulls the files back from the store; `debug` and `bt` then work
/// with the store gone).
#[test]
fn the_build_id_store_takes_each_file_once() {
    use crate::bundle::*;
    skip_unless_kernel_cores!();
    let moto = Moto::start();
    moto.bucket("ci-store");
    let dir = tempdir();
    let p = build_program(dir.path(), 0);
    let run = |n: u32| {
        let o = corecatch_s3(
            &p.build,
            &moto.url(),
            &[
                "run",
                "--keep-cores",
                "--out",
                dir.path().join(format!("out{n}")).to_str().unwrap(),
                "--to",
                &format!("s3://ci-store/builds/{n}"),
                "--bundle-store",
                "s3://ci-store/store",
                "--",
                p.exe.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(134), "{}", text(&o));
        text(&o)
    };
    let first = run(1);
    let store1 = listing(&moto, "ci-store", "store/");
    assert!(
        first.contains(&format!("{} files uploaded, 0 already there", store1.len())),
        "{first}"
    );
    // The program, its library, libc, ld.so and their debug files, each under its build-id.
    assert!(store1.len() >= 4, "{store1:?}");
    assert!(
        store1.iter().any(|(k, _)| k.ends_with("/libbundled.so")),
        "{store1:?}"
    );
    let second = run(2);
    assert!(
        second.contains(&format!("0 files uploaded, {} already there", store1.len())),
        "{second}"
    );
    assert_eq!(
        listing(&moto, "ci-store", "store/"),
        store1,
        "no object added or replaced"
    );
    // The second build's upload: no library bytes, only its own files.
    let build2 = listing(&moto, "ci-store", "builds/2/");
    let library_bytes: u64 = store1.iter().map(|(_, n)| n).sum();
    let bundle = build2
        .iter()
        .find(|(k, _)| k.ends_with("bundle.tar.gz"))
        .unwrap();
    assert!(bundle.1 < 64 << 10, "a bundle of references: {build2:?}");
    let total: u64 = build2.iter().map(|(_, n)| n).sum();
    assert!(
        total < library_bytes,
        "{total} bytes uploaded vs {library_bytes} in the store"
    );
    // As good as the core and reports alone: the bundle of references is a few KiB beside them.
    let own = total - bundle.1;
    assert!(
        bundle.1 * 10 < own,
        "bundle {} bytes beside {own} of core and reports",
        bundle.1
    );

    // Another machine: build directory and local artifacts gone; fetch, then debug and bt pull
    // the referenced files from the store.
    let raw = cores_in(&p.build);
    let want = gdb_on_originals(&p, &raw[raw.len() - 1]);
    fs::remove_dir_all(&p.build).unwrap();
    let cache = dir.path().join("cache");
    let o = corecatch_s3_env(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://ci-store/builds/2", "crash"],
        &[("CORECATCH_CACHE", cache.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let crash = dir.path().join("crash");
    // fetch pulled the store's files too: with the store gone, debug and bt still have them.
    let endpoint = moto.url();
    drop(moto);
    let env = [
        ("CORECATCH_CACHE", cache.as_path()),
        ("AWS_ENDPOINT_URL", Path::new(&endpoint)),
        ("AWS_ACCESS_KEY_ID", Path::new(KEY_ID)),
        ("AWS_SECRET_ACCESS_KEY", Path::new(SECRET)),
        ("AWS_REGION", Path::new("us-east-1")),
        ("AWS_EC2_METADATA_DISABLED", Path::new("true")),
    ];
    let (debug, err) = debug_bt(dir.path(), &crash, &env);
    assert!(!err.contains("neither in the bundle"), "{err}");
    assert!(!err.contains("could not be fetched"), "{err}");
    let bt = bt_json(dir.path(), &crash, &env);
    assert_matches_originals(&want, &debug, &bt);
}

#[test]
fn multipart_upload_of_a_file_bigger_than_two_parts() {
    let moto = Moto::start();
    moto.bucket("big-bkt");
    let dir = tempdir();
    let art = dir.path().join("art");
    fs::create_dir_all(art.join("sub")).unwrap();
    fs::write(art.join("core.1.big.core.gz"), random_bytes(12 << 20, 7)).unwrap();
    fs::write(art.join("sub/notes.txt"), b"nested\n").unwrap();
    let o = corecatch_s3_env(
        dir.path(),
        &moto.url(),
        &[
            "upload",
            "art",
            "--to",
            "s3://big-bkt/p",
            "--part-size",
            "5MiB",
            "--upload-concurrency",
            "2",
            "--storage-class",
            "STANDARD_IA",
            "--sse",
            "AES256",
        ],
        // Progress lines at every step (a log, not a terminal).
        &[("CORECATCH_PROGRESS_INTERVAL", "0")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    let lines: Vec<_> = t
        .lines()
        .filter(|l| l.starts_with("corecatch: uploading to s3://big-bkt/p ("))
        .collect();
    assert!(lines.len() >= 3, "a line per part: {t}");
    assert!(lines.last().unwrap().ends_with("100%)"), "{t}");
    // Storage class and encryption reach both kinds of upload (multipart and a single PUT).
    for key in ["p/core.1.big.core.gz", "p/sub/notes.txt"] {
        let h = moto.head(&format!("/big-bkt/{key}"));
        assert!(h.starts_with("http/1.1 200"), "{key}: {h}");
        assert!(h.contains("x-amz-storage-class: standard_ia"), "{key}: {h}");
        assert!(
            h.contains("x-amz-server-side-encryption: aes256"),
            "{key}: {h}"
        );
    }
    let uploads = moto.get("/big-bkt?uploads");
    assert!(
        !uploads.contains("<Upload>"),
        "multipart left open: {uploads}"
    );

    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://big-bkt/p", "back"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_same_tree(&art, &dir.path().join("back"));

    // A partial download is resumed: cut the fetched file short, leave it as the .part.
    let back = dir.path().join("back");
    let full = fs::read(back.join("core.1.big.core.gz")).unwrap();
    fs::remove_file(back.join("core.1.big.core.gz")).unwrap();
    fs::write(
        back.join(".corecatch-core.1.big.core.gz.part"),
        &full[..3 << 20],
    )
    .unwrap();
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://big-bkt/p", "back"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_same_tree(&art, &back);
}

#[test]
fn no_keep_local_removes_only_after_everything_is_confirmed() {
    let moto = Moto::start();
    moto.bucket("keep-bkt");
    let dir = tempdir();
    let art = dir.path().join("art");
    fs::create_dir_all(&art).unwrap();
    fs::write(art.join("a.txt"), b"a").unwrap();
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &[
            "upload",
            "art",
            "--to",
            "s3://no-such-bkt/p",
            "--no-keep-local",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(art.join("a.txt").exists(), "kept after a failure");
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &[
            "upload",
            "art",
            "--to",
            "s3://keep-bkt/p",
            "--no-keep-local",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!art.join("a.txt").exists(), "removed after upload");
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://keep-bkt/p", "back"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fs::read(dir.path().join("back/a.txt")).unwrap(), b"a");
}

#[test]
fn fetch_50_objects_with_4_transfers() {
    let moto = Moto::start();
    moto.bucket("many-bkt");
    let dir = tempdir();
    let art = dir.path().join("art");
    for i in 0..50 {
        let d = art.join(format!("d{}", i % 5));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(format!("f{i}.bin")),
            random_bytes(1000 + i * 997, i as u64),
        )
        .unwrap();
    }
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["upload", "art", "--to", "s3://many-bkt/build/9", "--quiet"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(text(&o), "", "--quiet prints nothing on success");
    // A key that shares the prefix's text but not its directory is not part of it.
    moto.put_raw("many-bkt", "build/99/other", b"x");
    // Pages of 7 keys: the listing must follow continuation tokens to see all 50.
    let o = corecatch_s3_env(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://many-bkt/build/9", "back", "-j", "4"],
        &[("CORECATCH_S3_LIST_PAGE", "7")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("fetched 50 files"), "{}", text(&o));
    assert_same_tree(&art, &dir.path().join("back"));
}

#[test]
fn unreachable_endpoint_and_missing_bucket_keep_artifacts_and_status() {
    skip_unless_kernel_cores!();
    let moto = Moto::start();
    let crash = crash_prog();
    let dead = format!("http://127.0.0.1:{}", free_port());
    for (endpoint, to, why) in [
        (dead.as_str(), "s3://some-bkt/x", "dispatch failure"),
        (moto.url().as_str(), "s3://missing-bkt/x", "NoSuchBucket"),
    ] {
        let dir = tempdir();
        let o = corecatch_s3(
            dir.path(),
            endpoint,
            &[
                "run",
                "--out",
                "out",
                "--to",
                to,
                "--no-keep-local",
                "--max-attempts",
                "2",
                "--",
                crash.to_str().unwrap(),
                "abort",
            ],
        );
        let t = text(&o);
        assert_eq!(o.status.code(), Some(134), "{t}");
        assert!(t.contains("not uploaded"), "{t}");
        assert!(t.contains(why), "{why}: {t}");
        assert!(t.contains("the artifacts stay in out"), "{t}");
        assert_no_secrets(&o);
        let out = dir.path().join("out");
        let gz = artifacts(&out, ".core.gz");
        assert_eq!(gz.len(), 1, "{t}");
        assert!(out.join("manifest.json").exists());
    }
}

/// What a [`FaultyProxy`] does to every `nth` connection.
#[derive(Clone, Copy)]
enum Fault {
    /// Forward this many request bytes, then cut both sockets, the way a reset mid-upload looks
    /// to the client.
    Cut(usize),
    /// Read the request and answer S3's throttling error, `503 SlowDown`, without forwarding.
    SlowDown,
}

/// A loopback TCP proxy to `upstream` that does `fault` to every `nth` connection and forwards
/// the others.
struct FaultyProxy {
    port: u16,
    /// Connections the fault was done to.
    faults: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultyProxy {
    fn start(upstream: u16, nth: usize, fault: Fault) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (faults2, stop2) = (Arc::clone(&faults), Arc::clone(&stop));
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let mut n = 0usize;
            // Bounded: the proxy stops with the test or after a minute.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                n += 1;
                let faulty = n % nth == 0;
                let faults3 = Arc::clone(&faults2);
                std::thread::spawn(move || match (faulty, fault) {
                    (true, Fault::SlowDown) => {
                        slow_down(client);
                        faults3.fetch_add(1, Ordering::Relaxed);
                    }
                    (_, fault) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            return;
                        };
                        let limit = match fault {
                            Fault::Cut(bytes) if faulty => bytes,
                            _ => usize::MAX,
                        };
                        pipe_pair(client, server, limit, &faults3);
                    }
                });
            }
        });
        FaultyProxy { port, faults, stop }
    }
}

/// Reads one request (head and Content-Length body) and answers `503 SlowDown`, closing.
fn slow_down(mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let length = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<u64>().ok())?
        })
        .unwrap_or(0);
    let _ = std::io::copy(&mut (&client).take(length), &mut std::io::sink());
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate.</Message></Error>";
    let _ = write!(
        client,
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.shutdown(Shutdown::Both);
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Forwards both ways; after `limit` request bytes, shuts both sockets down.
fn pipe_pair(client: TcpStream, server: TcpStream, limit: usize, cut: &AtomicUsize) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Both);
    });
    let mut sent = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if sent + n > limit {
            cut.fetch_add(1, Ordering::Relaxed);
            let _ = c_read.shutdown(Shutdown::Both);
            let _ = s_write.shutdown(Shutdown::Both);
            break;
        }
        sent += n;
        if s_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// Uploads a 12 MiB artifact (three 5 MiB parts) and a small one through a proxy that injects
/// `fault` into every `nth` connection, then fetches them back from moto directly: the upload
/// must have met faults and still succeeded (retried), the fetched tree be byte-identical, and
/// no multipart upload be left open.
fn upload_is_retried_through(fault: Fault, nth: usize, bucket: &str, seed: u64) {
    let moto = Moto::start();
    moto.bucket(bucket);
    let proxy = FaultyProxy::start(moto.port, nth, fault);
    let dir = tempdir();
    let art = dir.path().join("art");
    fs::create_dir_all(&art).unwrap();
    fs::write(art.join("core.2.x.core.gz"), random_bytes(12 << 20, seed)).unwrap();
    fs::write(art.join("small.txt"), b"small").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let to = format!("s3://{bucket}/p");
    // Enough attempts that a request failing every one of them is not a plausible flake.
    let o = corecatch_s3(
        dir.path(),
        &endpoint,
        &[
            "upload",
            "art",
            "--to",
            &to,
            "--part-size",
            "5MiB",
            "--max-attempts",
            "10",
        ],
    );
    assert!(
        proxy.faults.load(Ordering::Relaxed) > 0,
        "the proxy injected nothing"
    );
    assert_eq!(o.status.code(), Some(0), "retried to success: {}", text(&o));
    drop(proxy);
    let o = corecatch_s3(dir.path(), &moto.url(), &["fetch", &to, "back"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_same_tree(&art, &dir.path().join("back"));
    let uploads = moto.get(&format!("/{bucket}?uploads"));
    assert!(
        !uploads.contains("<Upload>"),
        "multipart left open: {uploads}"
    );
}

#[test]
fn dropped_connections_mid_upload_are_retried_never_corrupt() {
    upload_is_retried_through(Fault::Cut(1 << 20), 3, "flaky-bkt", 3);
}

#[test]
fn throttling_is_retried_with_backoff_to_a_complete_upload() {
    upload_is_retried_through(Fault::SlowDown, 2, "slow-bkt", 5);
}

#[test]
fn fetch_refuses_keys_that_leave_dest() {
    let moto = Moto::start();
    moto.bucket("evil-bkt");
    moto.put_raw("evil-bkt", "p/ok.txt", b"ok");
    moto.put_raw("evil-bkt", "p/../escaped.txt", b"evil");
    moto.put_raw("evil-bkt", "p/a/../../escaped2.txt", b"evil");
    let dir = tempdir();
    let o = corecatch_s3(
        dir.path(),
        &moto.url(),
        &["fetch", "s3://evil-bkt/p", "dest/inner"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("refused \"../escaped.txt\": `..` segment"),
        "{t}"
    );
    assert!(t.contains("refused \"a/../../escaped2.txt\""), "{t}");
    assert_eq!(
        fs::read(dir.path().join("dest/inner/ok.txt")).unwrap(),
        b"ok"
    );
    assert!(!dir.path().join("dest/escaped.txt").exists());
    assert!(!dir.path().join("escaped2.txt").exists());
}

type SeenRequest = (String, Option<String>);

/// A loopback stand-in for CircleCI's API v1.1: the artifact list of one build, and the files
/// it names, on the same port. Records the `Circle-Token` header of every request.
struct FakeCircle {
    port: u16,
    /// (Host header, Circle-Token header) of every request.
    tokens: Arc<Mutex<Vec<SeenRequest>>>,
}

impl FakeCircle {
    /// `files`: (path, bytes, host the listing names for it).
    fn start(files: Vec<(&'static str, Vec<u8>, &'static str)>) -> FakeCircle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&tokens);
        std::thread::spawn(move || {
            let list: Vec<serde_json::Value> = files
                .iter()
                .enumerate()
                .map(|(i, (path, _, host))| {
                    serde_json::json!({
                        "path": path,
                        "pretty_path": path,
                        "node_index": 0,
                        "url": format!("http://{host}:{port}/files/{i}?sig=QUERYSECRET"),
                    })
                })
                .collect();
            let list = serde_json::to_vec(&list).unwrap();
            // Bounded: serves until the test process ends, one request per connection.
            for conn in listener.incoming().take(200) {
                let Ok(mut conn) = conn else { continue };
                let mut req = Vec::new();
                let mut b = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") && conn.read(&mut b).unwrap_or(0) == 1 {
                    req.push(b[0]);
                }
                let req = String::from_utf8_lossy(&req).into_owned();
                let header = |name: &str| {
                    req.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                seen.lock()
                    .unwrap()
                    .push((header("Host").unwrap_or_default(), header("Circle-Token")));
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let body: Option<Vec<u8>> =
                    if path == "/api/v1.1/project/github/org/repo/7/artifacts" {
                        Some(list.clone())
                    } else {
                        path.strip_prefix("/files/")
                            .and_then(|r| r.split('?').next())
                            .and_then(|i| i.parse::<usize>().ok())
                            .and_then(|i| files.get(i))
                            .map(|(_, b, _)| b.clone())
                    };
                let resp = match body {
                    Some(b) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        )
                        .into_bytes();
                        r.extend(b);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&resp);
            }
        });
        FakeCircle { port, tokens }
    }
}

#[test]
fn circleci_artifacts_are_listed_and_fetched_without_showing_the_token() {
    let big = random_bytes(300_000, 11);
    let circle = FakeCircle::start(vec![
        (
            "corecatch-artifacts/core.1.a.core.gz",
            big.clone(),
            "127.0.0.1",
        ),
        (
            "corecatch-artifacts/core.1.a.txt",
            b"report\n".to_vec(),
            "127.0.0.1",
        ),
        ("../outside.txt", b"evil".to_vec(), "127.0.0.1"),
        // Another host than the API's: fetched, but without the token.
        ("elsewhere.txt", b"x".to_vec(), "localhost"),
    ]);
    let dir = tempdir();
    let token = "circle-TOKEN-never-printed-123";
    let _shared = CrashLock::shared();
    let o = Command::new(bin())
        .args([
            "fetch",
            "circleci://gh/org/repo/7",
            "crash",
            "-j",
            "2",
            "-v",
            "--circleci-url",
            &format!("http://127.0.0.1:{}", circle.port),
        ])
        .current_dir(dir.path())
        .env("CIRCLE_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the ../ path fails the fetch: {t}"
    );
    assert!(!t.contains(token), "token printed:\n{t}");
    assert!(!t.contains("QUERYSECRET"), "query string printed:\n{t}");
    assert!(t.contains("refused \"../outside.txt\""), "{t}");
    let got = dir.path().join("crash/corecatch-artifacts");
    assert!(fs::read(got.join("core.1.a.core.gz")).unwrap() == big);
    assert_eq!(fs::read(got.join("core.1.a.txt")).unwrap(), b"report\n");
    assert!(!dir.path().join("outside.txt").exists());
    assert_eq!(
        fs::read(dir.path().join("crash/elsewhere.txt")).unwrap(),
        b"x"
    );
    let tokens = circle.tokens.lock().unwrap();
    assert!(tokens.len() >= 4, "{tokens:?}");
    for (host, sent) in tokens.iter() {
        let want = host.starts_with("127.0.0.1:").then_some(token);
        assert_eq!(sent.as_deref(), want, "{host}: {tokens:?}");
    }
}
