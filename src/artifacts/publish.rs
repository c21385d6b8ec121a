//! How a file appears in the artifacts directory: written under a temporary name, fsynced,
//! renamed into place, and the directory fsynced, so a reader (or a crash of the machine) sees
//! the old file or the whole new one, never a part. `pack`, `local` (reports, the page,
//! `manifest.json`) and `fetch` all publish through [`publish`] / [`publish_path`].
//!
//! Temporary names start with [`PREFIX`]. Those of a writing corecatch also carry its pid
//! (`.corecatch-<pid>-…`), so [`sweep`] can tell a leftover of a corecatch that was killed
//! (SIGKILL leaves no chance to clean up) from a file another live corecatch is writing.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Prefix of every temporary file corecatch creates, so a leftover is recognisable.
pub const PREFIX: &str = ".corecatch-";

/// This process's temporary-name prefix: `.corecatch-<pid>-`.
pub fn own_prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// `dir/.corecatch-<pid>-name`: a temporary path of this process for `name`.
pub fn path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}{name}", own_prefix()))
}

/// A new temporary file in `dir` named with this process's prefix and `suffix`; removed on
/// drop unless published.
pub fn temp_in(dir: &Path, suffix: &str) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&own_prefix())
        .suffix(suffix)
        .tempfile_in(dir)
}

/// Why a publish failed. The temporary file is gone (dropped) and `dest` is untouched.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot sync {path}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("cannot rename into {path}")]
    Rename { path: PathBuf, source: io::Error },
    #[error("cannot sync directory {path}")]
    SyncDir { path: PathBuf, source: io::Error },
}

/// fsync `tmp`, rename it to `dest` (same directory), fsync the directory.
pub fn publish(tmp: NamedTempFile, dest: &Path) -> Result<(), PublishError> {
    tmp.as_file()
        .sync_all()
        .map_err(|source| PublishError::Sync {
            path: dest.to_path_buf(),
            source,
        })?;
    tmp.persist(dest).map_err(|e| PublishError::Rename {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    sync_parent(dest)
}

/// [`publish`] for a temporary file known by its path (fetch's resumable `.part` files).
pub fn publish_path(tmp: &Path, dest: &Path) -> Result<(), PublishError> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|source| PublishError::Sync {
            path: tmp.to_path_buf(),
            source,
        })?;
    std::fs::rename(tmp, dest).map_err(|source| PublishError::Rename {
        path: dest.to_path_buf(),
        source,
    })?;
    sync_parent(dest)
}

fn sync_parent(dest: &Path) -> Result<(), PublishError> {
    let dir = parent_dir(dest);
    sync_dir(dir).map_err(|source| PublishError::SyncDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// fsync a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The pid in a temporary name `.corecatch-<pid>-…`, if it has one.
fn writer_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok().filter(|&p| p > 0)
}

/// Removes the temporary files in `dir` (not below it) left by corecatch processes that are no
/// longer running, and returns their paths. `alive(pid)` says whether a process exists.
/// Names without a pid (fetch's `.part` files, kept to resume a download) are left alone.
pub fn sweep(dir: &Path, alive: impl Fn(i32) -> bool) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(writer_pid) else {
            continue;
        };
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != std::process::id() as i32 && !alive(pid) {
            let p = e.path();
            if std::fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_pid_is_read_from_the_name() {
        assert_eq!(writer_pid(".corecatch-123-abc.gz.tmp"), Some(123));
        assert_eq!(writer_pid(".corecatch-x.part"), None);
        assert_eq!(writer_pid(".corecatch-abc-def"), None);
        assert_eq!(writer_pid("core.1.x"), None);
    }

    #[test]
    fn sweep_removes_only_dead_writers_files() {
        let d = tempfile::tempdir().unwrap();
        let write = |n: &str| std::fs::write(d.path().join(n), "x").unwrap();
        write(".corecatch-111-a.gz.tmp");
        write(".corecatch-222-b.tmp");
        write(".corecatch-resume.part");
        write("core.1.x.core.gz");
        write(&format!("{}mine.tmp", own_prefix()));
        let removed = sweep(d.path(), |pid| pid == 222);
        assert_eq!(removed, [d.path().join(".corecatch-111-a.gz.tmp")]);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 4, "{left:?}");
    }

    #[test]
    fn publish_replaces_atomically() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("f");
        std::fs::write(&dest, "old").unwrap();
        let mut t = temp_in(d.path(), ".tmp").unwrap();
        io::Write::write_all(&mut t, b"new").unwrap();
        publish(t, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
