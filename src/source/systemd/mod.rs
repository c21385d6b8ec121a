//! systemd-coredump as a source of cores: the I/O around the pure [`format`]. Owns
//! deciding whether systemd-coredump's results will be there to read (its socket, its store,
//! `coredumpctl`), listing its store, waiting for a run's entries (it writes them after the
//! crashed process is gone), and bringing one entry back as a plain ELF core in the artifacts
//! directory: decoded from the store, or with `coredumpctl dump` when the store has no file.
//! The store's own files are never changed or removed.

use crate::artifacts::publish;
use crate::source::{self, Found};
use crate::sys;
pub mod format;

use format::{self as sc, Compression, DecodeError, StoreName};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Why an entry could not be brought back as a core. The store's file is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error(
        "{}: {compression} compression is not supported; decompress a copy (`{tool} {}`) and \
         run `corecatch collect` on the result",
        path.display(), path.display()
    )]
    Unsupported {
        path: PathBuf,
        compression: &'static str,
        tool: &'static str,
    },
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
    #[error("{}: what it holds is not an ELF core ({why})", path.display())]
    NotACore { path: PathBuf, why: String },
    #[error("`coredumpctl dump {pid}` gave no core: {message}")]
    Coredumpctl { pid: i32, message: String },
}

/// A file in the store whose name systemd-coredump gave it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub name: StoreName,
}

/// The store's entries, oldest first. A missing store is empty.
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut v: Vec<Entry> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = sc::parse_store_name(e.file_name().to_str()?)?;
            Some(Entry {
                path: e.path(),
                name,
            })
        })
        .collect();
    v.sort_by(|a, b| (a.name.usec, &a.path).cmp(&(b.name.usec, &b.path)));
    Ok(v)
}

/// Where [`extract`] puts the core of `entry` inside `out`.
fn temp_core_path(entry: &Path, out: &Path) -> PathBuf {
    let name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = [".zst", ".xz", ".lz4"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(&name);
    publish::path_in(out, &format!("systemd-{stem}"))
}

/// Decodes (or, uncompressed, copies) a store entry into a temporary core file in `out`, holes
/// kept sparse, and checks that the result is an ELF core. The caller removes the returned
/// file when done; on error nothing is left in `out`.
pub fn extract(
    entry: &Path,
    compression: &Compression,
    out: &Path,
) -> Result<Found, RetrieveError> {
    if matches!(compression, Compression::Xz | Compression::Lz4) {
        return Err(RetrieveError::Unsupported {
            path: entry.to_path_buf(),
            compression: compression.name(),
            tool: compression.tool(),
        });
    }
    let src = fs::File::open(entry).map_err(|source| RetrieveError::Open {
        path: entry.to_path_buf(),
        source,
    })?;
    fs::create_dir_all(out).map_err(|source| RetrieveError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    let dest = temp_core_path(entry, out);
    let result = fs::File::create(&dest)
        .map_err(|source| RetrieveError::Create {
            path: dest.clone(),
            source,
        })
        .and_then(|f| {
            let w = io::BufWriter::with_capacity(1 << 20, f);
            let r = io::BufReader::with_capacity(1 << 20, src);
            let decoded = match compression {
                Compression::None => sc::copy_sparse(r, w),
                _ => sc::decode_zstd(r, w),
            };
            decoded.map_err(|source| RetrieveError::Decode {
                path: entry.to_path_buf(),
                source,
            })
        })
        .and_then(|_| {
            source::check_file(&dest).map_err(|why| RetrieveError::NotACore {
                path: entry.to_path_buf(),
                why,
            })
        });
    if result.is_err() {
        let _ = fs::remove_file(&dest);
    }
    result
}

/// `coredumpctl dump PID` of a crash at or after `since` into a temporary core file in `out`.
pub fn coredumpctl_dump(pid: i32, since: SystemTime, out: &Path) -> Result<Found, RetrieveError> {
    fs::create_dir_all(out).map_err(|source| RetrieveError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    let dest = publish::path_in(out, &format!("coredumpctl-{pid}.core"));
    let secs = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let o = Command::new("coredumpctl")
        .args(["--no-pager", "--quiet", "dump"])
        .arg(format!("--since=@{secs}"))
        .arg("-o")
        .arg(&dest)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output();
    let result = match o {
        Err(e) => Err(RetrieveError::Coredumpctl {
            pid,
            message: format!("cannot run coredumpctl: {e}"),
        }),
        Ok(o) if !o.status.success() => Err(RetrieveError::Coredumpctl {
            pid,
            message: String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace('\n', "; "),
        }),
        Ok(_) => source::check_file(&dest).map_err(|why| RetrieveError::NotACore {
            path: dest.clone(),
            why,
        }),
    };
    if result.is_err() {
        let _ = fs::remove_file(&dest);
    }
    result
}

/// Whether `coredumpctl` is on PATH and has a journal to read. It exits 1 both without a
/// journal ("No journal files were found." then "No coredumps found.") and with a journal that
/// has no entry ("No coredumps found." alone), so its message tells them apart (`--quiet` would
/// hide it).
pub fn coredumpctl_usable() -> Result<(), String> {
    let o = Command::new("coredumpctl")
        .args(["--no-pager", "list", "-n", "1"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("coredumpctl cannot be run ({e})"))?;
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() || err.trim() == "No coredumps found." {
        Ok(())
    } else {
        Err(format!(
            "coredumpctl has no journal to read ({})",
            err.trim().lines().next().unwrap_or("no message")
        ))
    }
}

/// Configuration files systemd-coredump reads, main file first, then drop-ins by file name
/// (a name in an earlier directory hides the same name in later ones).
fn conf_texts() -> Vec<String> {
    let mut texts: Vec<String> = fs::read_to_string("/etc/systemd/coredump.conf")
        .into_iter()
        .collect();
    let mut dropins: std::collections::BTreeMap<std::ffi::OsString, PathBuf> = Default::default();
    for dir in [
        "/usr/lib/systemd/coredump.conf.d",
        "/usr/local/lib/systemd/coredump.conf.d",
        "/run/systemd/coredump.conf.d",
        "/etc/systemd/coredump.conf.d",
    ] {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "conf") {
                dropins.insert(e.file_name(), e.path());
            }
        }
    }
    texts.extend(dropins.values().filter_map(|p| fs::read_to_string(p).ok()));
    texts
}

pub use crate::source::capture::Reach;

/// Whether the cores systemd-coredump receives will be stored and readable from here: its
/// socket must exist (the kernel-side instance hands every core to systemd-coredump.socket and
/// drops it when nothing listens), `Storage=` must keep it, and the store or `coredumpctl` must
/// be readable.
pub fn reach() -> Result<Reach, String> {
    let texts = conf_texts();
    let journal_only =
        match sc::storage_setting(&texts.iter().map(String::as_str).collect::<Vec<_>>()) {
            sc::Storage::None => {
                return Err(
                    "coredump.conf says Storage=none: systemd-coredump keeps no core".into(),
                )
            }
            sc::Storage::Journal => true,
            sc::Storage::External => false,
        };
    use std::os::unix::fs::FileTypeExt;
    if !fs::metadata(sc::SOCKET).is_ok_and(|m| m.file_type().is_socket()) {
        return Err(format!(
            "{} does not exist, so systemd-coredump drops every core (systemd-coredump.socket \
             is not running: no systemd as PID 1, or this core_pattern is a container host's)",
            sc::SOCKET
        ));
    }
    let store = Path::new(sc::STORE_DIR);
    let store_readable = match fs::read_dir(store) {
        Ok(_) => Ok(()),
        // systemd-coredump creates it (0755) on its first core.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound && store.parent().is_some_and(Path::is_dir) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("{} cannot be read ({e})", store.display())),
    };
    match (journal_only, store_readable) {
        (false, Ok(())) => Ok(Reach::Store),
        (true, _) => coredumpctl_usable()
            .map(|_| Reach::Coredumpctl)
            .map_err(|e| format!("coredump.conf says Storage=journal and {e}")),
        (false, Err(why)) => coredumpctl_usable()
            .map(|_| Reach::Coredumpctl)
            .map_err(|e| format!("{why} and {e}")),
    }
}

/// How long `run` waits for systemd-coredump after the command ended, unless
/// `CORECATCH_HANDLER_WAIT=SECS` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

pub fn wait_limit() -> Duration {
    std::env::var("CORECATCH_HANDLER_WAIT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_WAIT, Duration::from_secs_f64)
}

/// What [`wait_for_run`] found.
#[derive(Debug, Default)]
pub struct Waited {
    /// The run's candidate entries (the core's run token decides later).
    pub entries: Vec<Entry>,
    /// Known crashed pids with no entry.
    pub missing: Vec<i32>,
    /// systemd-coredump was still at work when the wait ended.
    pub still_writing: bool,
    pub waited: Duration,
    /// The store could not be listed.
    pub error: Option<String>,
}

/// Polls the store for the entries of a run that started at `since`: every pid in `pids`
/// (processes known to have dumped core) and any other entry of `uid` in the time window, except
/// the files in `before` (the store when the run started: `%t` has one-second resolution, so
/// time alone cannot keep out a crash from just before the run).
/// systemd-coredump writes after the crashed process is gone, so this waits while a
/// systemd-coredump process runs, until every known pid has its entry, at most `limit`. With no
/// known crash it only waits for helpers already at work.
pub fn wait_for_run(
    pids: &[i32],
    uid: u32,
    since: SystemTime,
    before: &[PathBuf],
    limit: Duration,
) -> Waited {
    const POLL: Duration = Duration::from_millis(100);
    let start = Instant::now();
    let boot_id = sys::kernel::boot_id().unwrap_or_default();
    let usec = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64
    };
    // %t has one-second resolution and is truncated: a crash right after `since` may carry the
    // second before it.
    let since_usec = usec(since).saturating_sub(1_000_000);
    let mut quiet = 0u32;
    loop {
        let mut w = Waited::default();
        let until_usec = usec(SystemTime::now()) + 2_000_000;
        let sel = sc::Selection {
            boot_id: &boot_id,
            since_usec,
            until_usec,
            pids,
            uid: Some(uid),
        };
        match list(Path::new(sc::STORE_DIR)) {
            Ok(all) => {
                w.entries = all
                    .into_iter()
                    .filter(|e| sc::selected(&e.name, &sel) && !before.contains(&e.path))
                    .collect()
            }
            Err(e) => w.error = Some(format!("cannot list {}: {e}", sc::STORE_DIR)),
        }
        w.missing = pids
            .iter()
            .copied()
            .filter(|p| !w.entries.iter().any(|e| e.name.pid == *p))
            .collect();
        let helpers = sys::kernel::processes_named(sc::HELPER_COMM);
        quiet = if helpers == 0 { quiet + 1 } else { 0 };
        w.still_writing = helpers > 0;
        w.waited = start.elapsed();
        // After the last helper exits, a few polls bridge the hand-over from the kernel-side
        // instance to the socket-activated one; with a known crash still missing, a longer
        // quiet spell means nothing is coming.
        let settled = if pids.is_empty() {
            quiet >= 1
        } else if w.missing.is_empty() {
            quiet >= 3
        } else {
            quiet >= 10
        };
        if settled || w.error.is_some() || start.elapsed() >= limit {
            return w;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until no systemd-coredump process has been seen for 300 ms, at most `limit` (before
/// asking `coredumpctl`, whose journal entry is written last). Returns whether one was still
/// at work at the end.
pub fn wait_for_helpers(limit: Duration) -> bool {
    let start = Instant::now();
    let mut quiet = 0;
    loop {
        if sys::kernel::processes_named(sc::HELPER_COMM) == 0 {
            quiet += 1;
            if quiet >= 3 {
                return false;
            }
        } else {
            quiet = 0;
        }
        if start.elapsed() >= limit {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
