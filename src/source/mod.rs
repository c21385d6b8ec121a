//! Where cores come from, up to the point where one is a plain ELF core file on disk:
//! - [`classify`]: what a file is (an ELF core, a systemd-coredump store entry, an apport report,
//!   or none of these), opened without blocking and refused unless it is a regular file;
//! - [`kernel`]: the cores the kernel wrote where core_pattern says, and which of them are this
//!   run's;
//! - [`systemd`]: systemd-coredump's store (its I/O here, its file format in `systemd::format`);
//! - [`apport`]: the core inside apport's `.crash` reports (the format in `apport::format`);
//! - [`ptrace`]: the snapshot of a traced process (its /proc side and the core it makes; the
//!   tracer itself is `sys::ptrace`);
//! - [`capture`]: which of these `run` uses, decided over gathered facts (pure);
//! - [`core_file`]: a core opened for the parser, as a read-only mapping.

pub mod apport;
pub mod capture;
pub mod core_file;
pub mod kernel;
pub mod ptrace;
pub mod systemd;

use crate::elf_core;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A core file on disk, ready to be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub modified: Option<SystemTime>,
    pub bytes: u64,
}

/// A file passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: String,
}

/// What a file is, as far as collecting cores goes.
#[derive(Debug, Clone)]
pub enum Classified {
    /// An ELF core.
    Core(Found),
    /// A file named as systemd-coredump names the cores in its store (compressed).
    SystemdEntry(systemd::Entry),
    /// An apport `.crash` report, which may hold a core.
    ApportReport(PathBuf),
    /// A regular file that is none of these.
    NotACore(Skipped),
    /// Missing, unreadable, or not a regular file (a FIFO, a device, a directory).
    Unreadable(Skipped),
}

impl Classified {
    pub fn path(&self) -> &Path {
        match self {
            Classified::Core(f) => &f.path,
            Classified::SystemdEntry(e) => &e.path,
            Classified::ApportReport(p) => p,
            Classified::NotACore(s) | Classified::Unreadable(s) => &s.path,
        }
    }
}

/// What `path` is. Opens it without blocking (a FIFO named as a core must not hang us), checks
/// that it is a regular file, then reads its first bytes.
pub fn classify(path: &Path) -> Classified {
    let skipped = |why: String| Skipped {
        path: path.to_path_buf(),
        why,
    };
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Classified::Unreadable(skipped("no such file".into()))
        }
        Err(e) => return Classified::Unreadable(skipped(format!("cannot open: {e}"))),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Classified::Unreadable(skipped(format!("cannot stat: {e}"))),
    };
    if !meta.is_file() {
        return Classified::Unreadable(skipped(format!(
            "not a regular file ({})",
            file_kind(&meta)
        )));
    }
    let mut head = [0u8; 32];
    let n = match (&file).take(head.len() as u64).read(&mut head) {
        Ok(n) => n,
        Err(e) => return Classified::Unreadable(skipped(format!("cannot read: {e}"))),
    };
    let head = &head[..n];
    if elf_core::looks_like_core(head) {
        return Classified::Core(Found {
            path: path.to_path_buf(),
            modified: meta.modified().ok(),
            bytes: meta.len(),
        });
    }
    let store_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(systemd::format::parse_store_name);
    if let Some(name) = store_name {
        return Classified::SystemdEntry(systemd::Entry {
            path: path.to_path_buf(),
            name,
        });
    }
    if apport::format::looks_like_report(head) {
        return Classified::ApportReport(path.to_path_buf());
    }
    Classified::NotACore(skipped("not an ELF core file".into()))
}

/// `path` as a core to process, or why it is not one.
pub fn check_file(path: &Path) -> Result<Found, String> {
    match classify(path) {
        Classified::Core(f) => Ok(f),
        Classified::NotACore(s) | Classified::Unreadable(s) => Err(s.why),
        Classified::SystemdEntry(_) | Classified::ApportReport(_) => {
            Err("not an ELF core file".into())
        }
    }
}

/// Whether a file's name says it is meant to be a core (`core`, `core.*`, `*.core`).
pub fn looks_like_core_name(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "core" || n.starts_with("core.") || n.ends_with(".core"))
}

fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_tells_the_kinds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let mut core = vec![0u8; 64];
        core[..4].copy_from_slice(b"\x7fELF");
        core[4] = 2;
        core[5] = 1;
        core[6] = 1;
        core[16] = 4; // ET_CORE, little endian
        fs::write(p("core"), &core).unwrap();
        fs::write(p("notes.txt"), "hello").unwrap();
        fs::write(p("x.crash"), "ProblemType: Crash\n").unwrap();
        fs::write(
            p("core.a.0.0123456789abcdef0123456789abcdef.42.1700000000000000.zst"),
            "zstd",
        )
        .unwrap();
        let made = std::process::Command::new("mkfifo").arg(p("fifo")).status();
        assert!(made.unwrap().success());
        assert!(matches!(classify(&p("core")), Classified::Core(_)));
        assert!(matches!(classify(&p("notes.txt")), Classified::NotACore(_)));
        assert!(matches!(
            classify(&p("x.crash")),
            Classified::ApportReport(_)
        ));
        assert!(matches!(
            classify(&p(
                "core.a.0.0123456789abcdef0123456789abcdef.42.1700000000000000.zst"
            )),
            Classified::SystemdEntry(_)
        ));
        match classify(&p("fifo")) {
            Classified::Unreadable(s) => assert!(s.why.contains("FIFO"), "{}", s.why),
            other => panic!("{other:?}"),
        }
        match classify(&p("missing")) {
            Classified::Unreadable(s) => assert_eq!(s.why, "no such file"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(dir.path()), Classified::Unreadable(_)));
    }
}
