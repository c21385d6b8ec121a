//! The static release binary `make dist` builds: linked with nothing, stripped with its debug
//! file beside it (found by gdb through `.gnu_debuglink`), under 12 MB, saying its version,
//! commit and features; its checksums and tarball. Then that binary alone in an empty root (a
//! statically linked busybox for `sh`, a static crash program, `/proc`, `/etc`): it catches the
//! crash with each capture method, collects a core left behind, uploads to the S3-compatible
//! server by a name from /etc/hosts and fetches back by a name only a DNS server on loopback
//! knows, with an /etc/nsswitch.conf that names no module a static binary can load; and fetches
//! a CircleCI build over TLS, trusting the root's certificate store when it has one.

use crate::s3::Moto;
use crate::skip_unless_kernel_cores;
use crate::util::*;
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The static binary; its absence fails the test (`make test` runs `make dist` first).
fn dist_binary() -> PathBuf {
    dist().binary()
}

fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn build_id(file: &Path) -> String {
    let notes = run_ok(Command::new(require("readelf")).arg("-nW").arg(file));
    notes
        .lines()
        .find_map(|l| l.split("Build ID: ").nth(1))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{} has no build-id: {notes}", file.display()))
        .to_string()
}

#[test]
fn dist_binary_is_static_stripped_small_and_says_what_it_is() {
    let bin = dist_binary();
    let ldd = Command::new(require("ldd")).arg(&bin).output().unwrap();
    assert!(
        text(&ldd).contains("not a dynamic executable"),
        "ldd: {}",
        text(&ldd)
    );
    let segments = run_ok(Command::new(require("readelf")).arg("-lW").arg(&bin));
    for needless in ["INTERP", "DYNAMIC"] {
        assert!(
            !segments.contains(needless),
            "{needless} segment: {segments}"
        );
    }
    let sections = run_ok(Command::new("readelf").arg("-SW").arg(&bin));
    for gone in [".symtab", ".debug_info", ".debug_line"] {
        assert!(
            !sections.contains(gone),
            "not stripped ({gone}): {sections}"
        );
    }
    assert!(sections.contains(".gnu_debuglink"), "{sections}");
    let size = fs::metadata(&bin).unwrap().len();
    assert!(size <= 12_000_000, "{} is {size} bytes", bin.display());

    // The debug file beside it is the same build, and gdb finds it through the debuglink: the
    // source line of a function's address in the stripped binary (the address from the debug
    // file's symbol table; line tables only, so gdb knows lines, not Rust paths).
    let debug = dist().dir.join("corecatch.debug");
    assert_eq!(build_id(&bin), build_id(&debug));
    let symbols = run_ok(Command::new(require("nm")).arg("-C").arg(&debug));
    let addr = symbols
        .lines()
        .find_map(|l| l.strip_suffix(" t corecatch::app::run::run"))
        .or_else(|| {
            symbols
                .lines()
                .find_map(|l| l.strip_suffix(" T corecatch::app::run::run"))
        })
        .unwrap_or_else(|| panic!("no corecatch::app::run::run in {}", debug.display()))
        .to_string();
    let gdb = run_ok(
        Command::new(require("gdb"))
            .args(["-nx", "-batch", "-ex", &format!("info line *0x{addr}")])
            .arg(&bin),
    );
    assert!(gdb.contains("\"src/app/run.rs\""), "gdb: {gdb}");

    let version = run_ok(Command::new(&bin).arg("--version"));
    assert!(
        version.starts_with(&format!("corecatch {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(
        version.contains("features circleci,debuginfod,s3"),
        "{version}"
    );
    assert!(version.contains("static"), "{version}");
    if root().join(".git").exists() {
        let head = run_ok(
            Command::new(require("git"))
                .args(["rev-parse", "--short=12", "HEAD"])
                .current_dir(root()),
        );
        assert!(
            version.contains(&format!("commit {}", head.trim())),
            "{version} is not HEAD {head} (rebuild with `make dist`)"
        );
    }

    // Checksums in sha256sum's format, and the tarball holds the same binary and the notices.
    let Dist {
        dir, asset: name, ..
    } = dist();
    for asset in [name.clone(), format!("{name}.tar.gz")] {
        run_ok(
            Command::new(require("sha256sum"))
                .args(["--check", "--strict", &format!("{asset}.sha256")])
                .current_dir(&dir),
        );
    }
    assert_eq!(
        fs::read_to_string(dir.join("VERSION")).unwrap().trim(),
        env!("CARGO_PKG_VERSION")
    );
    let unpacked = tempdir();
    run_ok(
        Command::new(require("tar"))
            .arg("-xzf")
            .arg(dir.join(format!("{name}.tar.gz")))
            .arg("-C")
            .arg(unpacked.path()),
    );
    let top = unpacked.path().join(&name);
    for f in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        assert!(top.join(f).is_file(), "the tarball lacks {f}");
    }
    assert!(
        fs::read(top.join("corecatch")).unwrap() == fs::read(&bin).unwrap(),
        "the tarball's binary is not the release binary"
    );
}

/// A DNS server on `addr`:53 that answers A queries for `name` with 127.0.0.1 and every other
/// query with no address; counts the queries for `name`. Stops with the test process.
fn dns_server(addr: &str, name: &'static str) -> Arc<AtomicUsize> {
    let sock = UdpSocket::bind((addr, 53)).expect("bind the test's DNS server");
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            if n < 17 {
                continue;
            }
            // The question: labels from offset 12, then type and class.
            let (mut i, mut labels) = (12, Vec::new());
            while i < n && q[i] != 0 {
                let len = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..(i + 1 + len).min(n)]).into_owned());
                i += 1 + len;
            }
            if i + 5 > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let hit = labels.join(".").eq_ignore_ascii_case(name);
            if hit {
                count.fetch_add(1, Ordering::SeqCst);
            }
            let answer = hit && qtype == 1;
            let mut r = Vec::new();
            r.extend_from_slice(&q[..2]);
            r.extend_from_slice(&(0x8180u16 | if hit { 0 } else { 3 }).to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, answer as u8, 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..i + 5]);
            if answer {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    asked
}

/// `/proc` mounted at `dir` while alive.
struct ProcMount(PathBuf);

impl ProcMount {
    fn new(dir: PathBuf) -> ProcMount {
        run_ok(
            Command::new(require("mount"))
                .args(["-t", "proc", "proc"])
                .arg(&dir),
        );
        ProcMount(dir)
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `script` run by the root's busybox sh inside `root`, with only `env` in the environment.
fn in_root(root: &Path, script: &str, env: &[(&str, String)]) -> Output {
    let _shared = CrashLock::shared();
    Command::new(require("chroot"))
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env_clear()
        .env("PATH", "/bin")
        .env("HOME", "/tmp")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn static_binary_catches_uploads_and_fetches_in_an_empty_root() {
    if !nix::unistd::geteuid().is_root() {
        crate::skip_or_fail!("needs root (chroot, mounting /proc)");
    }
    skip_unless_kernel_cores!();
    let bin = dist_binary();
    let dump = compile(
        &fixture("abort/main.c"),
        "abort-static",
        &["-g", "-O0", "-static"],
    );
    let dir = tempdir();
    let root = dir.path().join("root");
    for d in ["bin", "etc", "proc", "tmp", "work/left"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(&bin, root.join("corecatch")).unwrap();
    let busybox = require("busybox");
    let ldd = Command::new("ldd").arg(&busybox).output().unwrap();
    assert!(
        text(&ldd).contains("not a dynamic executable"),
        "busybox is not static (install busybox-static): {}",
        text(&ldd)
    );
    fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    fs::copy(&dump, root.join("work/dump")).unwrap();
    // A loopback address of its own for the DNS server (port 53 there is free).
    let dns_addr = format!("127.0.{}.{}", 100 + std::process::id() % 100, 53);
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(
        root.join("etc/resolv.conf"),
        format!("nameserver {dns_addr}\n"),
    )
    .unwrap();
    // Modules that exist nowhere: a static glibc that obeyed this would resolve nothing.
    fs::write(
        root.join("etc/nsswitch.conf"),
        "hosts: mdns4_minimal [NOTFOUND=return] resolve\npasswd: systemd\n",
    )
    .unwrap();
    let _proc = ProcMount::new(root.join("proc"));
    let asked = dns_server(&dns_addr, "s3box");
    let moto = Moto::start();
    moto.bucket("dist");
    let env = |endpoint: String| {
        vec![
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "AKIDDIST".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "dist-secret".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    };

    // run, kernel capture, upload by the name /etc/hosts gives.
    let o = in_root(
        &root,
        "cd /work && /corecatch run --out /work/out --to s3://dist/run -- ./dump",
        &env(format!("http://localhost:{}", moto.port)),
    );
    assert_eq!(o.status.code(), Some(134), "{}", text(&o));
    assert!(text(&o).contains("uploaded"), "{}", text(&o));
    let out = root.join("work/out");
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for ext in [".core.gz", ".json", ".txt"] {
        assert!(
            names.iter().any(|n| n.ends_with(ext)),
            "no {ext} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    let stem = names
        .iter()
        .find_map(|n| n.strip_suffix(".core.gz"))
        .unwrap()
        .to_string();
    let inside = fs::read_to_string(out.join(format!("{stem}.txt"))).unwrap();
    let inside_frames = frame_lines(&inside);
    assert!(
        inside_frames
            .iter()
            .any(|f| f.contains("in main () at ") && f.contains("abort/main.c:6")),
        "{inside}"
    );

    // The backtrace made outside, from the same stored core and the root's files, is the same.
    let outside = run_ok(
        Command::new(&bin)
            .arg("bt")
            .arg("--sysroot")
            .arg(&root)
            .arg(out.join(format!("{stem}.core.gz"))),
    );
    assert_eq!(
        frame_lines(&outside),
        inside_frames,
        "outside:\n{outside}\ninside:\n{inside}"
    );

    // fetch by a name only the DNS server knows, despite nsswitch.conf.
    let o = in_root(
        &root,
        "/corecatch fetch s3://dist/run /work/back",
        &env(format!("http://s3box:{}", moto.port)),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        asked.load(Ordering::SeqCst) > 0,
        "the DNS server was never asked"
    );
    for n in &names {
        assert_eq!(
            fs::read(out.join(n)).unwrap(),
            fs::read(root.join("work/back").join(n)).unwrap(),
            "{n} came back different"
        );
    }

    // The tracer capture, and collect of a core a crash left behind.
    let o = in_root(
        &root,
        "cd /work && /corecatch run --capture ptrace --out /work/out-ptrace -- ./dump",
        &[],
    );
    assert_eq!(o.status.code(), Some(134), "{}", text(&o));
    assert!(
        frame_lines(&text(&o))
            .iter()
            .any(|f| f.contains("in main () at ")),
        "{}",
        text(&o)
    );
    let o = in_root(
        &root,
        "cd /work/left && ulimit -c unlimited && (./../dump; true) && \
         /corecatch collect --out /work/out-collect /work/left",
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let collected: Vec<_> = fs::read_dir(root.join("work/out-collect"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        collected.iter().any(|n| n.ends_with(".core.gz")),
        "{collected:?}: {}",
        text(&o)
    );

    // CircleCI's API over TLS, by a name from /etc/hosts: trusted through the root's own
    // certificate store when it has one; without a store, the bundled roots (which do not know
    // this test's CA) are used and the certificate is refused.
    let tls = TlsCircle::start(dir.path());
    fs::write(
        root.join("etc/hosts"),
        "127.0.0.1 localhost\n127.0.0.1 circle.test\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("etc/ssl/certs")).unwrap();
    fs::copy(&tls.ca, root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let fetch = format!(
        "/corecatch fetch circleci://gh/org/repo/7 /work/circle --circleci-url https://circle.test:{}",
        tls.port
    );
    let o = in_root(&root, &fetch, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        fs::read_to_string(root.join("work/circle/hello.txt")).unwrap(),
        "hello over tls\n"
    );
    fs::remove_file(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    fs::remove_dir_all(root.join("work/circle")).unwrap();
    let o = in_root(&root, &fetch, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).to_lowercase().contains("certificate") || text(&o).contains("UnknownIssuer"),
        "{}",
        text(&o)
    );
}

/// A CircleCI API over HTTPS on loopback (Python's http.server behind ssl), with a CA of its
/// own made by openssl: the build `gh/org/repo/7` lists one artifact, `hello.txt`, served by
/// the same server under the name `circle.test`. Killed on drop.
struct TlsCircle {
    child: std::process::Child,
    port: u16,
    /// The CA's certificate (PEM), to put in a certificate store.
    ca: PathBuf,
}

impl TlsCircle {
    fn start(work: &Path) -> TlsCircle {
        let d = work.join("tls");
        fs::create_dir_all(&d).unwrap();
        let openssl = require("openssl");
        let run = |args: &[&str]| {
            run_ok(Command::new(&openssl).args(args).current_dir(&d));
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=corecatch test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=circle.test",
        ]);
        fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:circle.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let port = free_port();
        fs::write(
            d.join("server.py"),
            r#"
import http.server, json, ssl, sys
port = int(sys.argv[1])
listing = json.dumps([{"path": "hello.txt", "pretty_path": "hello.txt", "node_index": 0,
                       "url": "https://circle.test:%d/files/hello.txt" % port}]).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"/api/v1.1/project/github/org/repo/7/artifacts": listing,
                "/files/hello.txt": b"hello over tls\n"}.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("srv.pem", "srv.key")
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#,
        )
        .unwrap();
        let child = Command::new(require("python3"))
            .arg("server.py")
            .arg(port.to_string())
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the TLS server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        TlsCircle {
            child,
            port,
            ca: d.join("ca.pem"),
        }
    }
}

impl Drop for TlsCircle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
