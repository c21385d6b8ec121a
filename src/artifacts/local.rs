//! The local artifacts directory: checked writable on open, atomic writes (temp file, fsync,
//! rename, fsync of the directory), names that never clobber an earlier run's artifacts.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::artifacts::pack::{self, Packed};
use crate::artifacts::publish;

/// One stored file, as the manifest needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// File name relative to the artifacts directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// Why the artifacts directory could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot create directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("directory {path} is not writable")]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("cannot list {path}")]
    ReadDir { path: PathBuf, source: io::Error },
    #[error("{name:?} is not a plain file name")]
    BadName { name: String },
    #[error("cannot create a temporary file in {dir}")]
    CreateTemp { dir: PathBuf, source: io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Publish(#[from] crate::artifacts::publish::PublishError),
    #[error("cannot stat {path}")]
    Stat { path: PathBuf, source: io::Error },
    #[error("{path} is not directly inside {dir}")]
    Outside { path: PathBuf, dir: PathBuf },
    #[error("{path} is {actual} bytes, {expected} were packed")]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
}

/// The artifacts directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Creates `dir` (and its parents) when missing and checks it is writable by creating and
    /// removing a probe file, so a bad `--artifacts` fails before the command runs.
    pub fn open(dir: impl AsRef<Path>) -> Result<LocalDir, DirError> {
        let root = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|source| DirError::CreateDir {
            path: root.clone(),
            source,
        })?;
        let not_writable = |source| DirError::NotWritable {
            path: root.clone(),
            source,
        };
        publish::temp_in(&root, ".probe")
            .map_err(not_writable)?
            .close()
            .map_err(not_writable)?;
        Ok(LocalDir { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the artifact `name` lives.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `stem`, or `stem-2`, `stem-3`, … : the first that no entry of the directory uses, either
    /// as its whole name or as the part before a `.` (`core.1.app.core.gz` uses `core.1.app`).
    /// A stem is not reserved until something is written under it.
    pub fn unique_stem(&self, stem: &str) -> Result<String, DirError> {
        let mut taken = Vec::new();
        let entries = std::fs::read_dir(&self.root).map_err(|source| DirError::ReadDir {
            path: self.root.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| DirError::ReadDir {
                path: self.root.clone(),
                source,
            })?;
            taken.push(entry.file_name().to_string_lossy().into_owned());
        }
        let used = |s: &str| {
            taken
                .iter()
                .any(|t| t == s || t.strip_prefix(s).is_some_and(|r| r.starts_with('.')))
        };
        if !used(stem) {
            return Ok(stem.to_string());
        }
        Ok((2u64..)
            .map(|n| format!("{stem}-{n}"))
            .find(|s| !used(s))
            .expect("an unused suffix exists"))
    }

    /// Writes `bytes` to `name` atomically: temporary file in the directory, fsync, rename over
    /// any existing `name`, fsync of the directory. `name` must be a plain file name.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<Artifact, DirError> {
        check_name(name)?;
        write_atomic_in(&self.root, name, bytes)
    }

    /// The [`Artifact`]s of a core [`pack::compress`] stored in this directory, one per file
    /// (the whole, or its parts in order), from the sizes and hashes computed while packing
    /// (the files are only stat'ed, not re-read).
    pub fn register_packed(&self, packed: &Packed) -> Result<Vec<Artifact>, DirError> {
        packed
            .parts
            .iter()
            .map(|part| self.register_file(&part.path, part.bytes, &part.sha256))
            .collect()
    }

    fn register_file(&self, path: &Path, bytes: u64, sha256: &str) -> Result<Artifact, DirError> {
        let outside = || DirError::Outside {
            path: path.to_path_buf(),
            dir: self.root.clone(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(outside)?;
        let same_dir = match (
            publish::parent_dir(path).canonicalize(),
            self.root.canonicalize(),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same_dir || check_name(name).is_err() {
            return Err(outside());
        }
        let meta = std::fs::metadata(path).map_err(|source| DirError::Stat {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.len() != bytes {
            return Err(DirError::SizeMismatch {
                path: path.to_path_buf(),
                expected: bytes,
                actual: meta.len(),
            });
        }
        Ok(Artifact {
            name: name.to_string(),
            bytes,
            sha256: sha256.to_string(),
        })
    }
}

fn check_name(name: &str) -> Result<(), DirError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(DirError::BadName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Name of the lock file in the artifacts directory (present only while a writer holds it).
pub const LOCK_NAME: &str = ".corecatch.lock";

/// Waits for the artifacts directory's lock (flock(2) on [`LOCK_NAME`]), held until the guard is
/// dropped: every read-merge-write of `manifest.json` and the page happens under it. When the
/// lock cannot be taken (a file system without flock, a symlink planted as the lock file) it
/// says so and returns `None`: the caller goes on unlocked, each file is still written
/// atomically.
pub fn lock_dir(dir: &Path) -> Option<crate::sys::lock::Guard> {
    let path = dir.join(LOCK_NAME);
    match crate::sys::lock::exclusive(&path) {
        Ok(g) => Some(g),
        Err(e) => {
            crate::error::warn(format!(
                "cannot lock {}: {e}; updating the manifest without the lock",
                path.display()
            ));
            None
        }
    }
}

/// The atomic write behind [`LocalDir::write_atomic`], also used for `manifest.json`.
pub(crate) fn write_atomic_in(dir: &Path, name: &str, bytes: &[u8]) -> Result<Artifact, DirError> {
    let path = dir.join(name);
    let mut tmp = publish::temp_in(dir, ".tmp").map_err(|source| DirError::CreateTemp {
        dir: dir.to_path_buf(),
        source,
    })?;
    let write_err = |source| DirError::Write {
        path: path.clone(),
        source,
    };
    tmp.write_all(bytes).map_err(write_err)?;
    publish::publish(tmp, &path)?;
    Ok(Artifact {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        sha256: pack::sha256_hex(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::names_in as names;

    #[test]
    fn open_creates_and_leaves_no_probe() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b/artifacts");
        let sink = LocalDir::open(&dir).unwrap();
        assert_eq!(sink.root(), dir);
        assert!(names(&dir).is_empty());
        LocalDir::open(&dir).unwrap(); // already there: fine
    }

    #[test]
    fn open_fails_under_a_file() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("some_file");
        std::fs::write(&file, b"").unwrap();
        let e = LocalDir::open(file.join("artifacts")).unwrap_err();
        assert!(matches!(e, DirError::CreateDir { .. }), "{e:?}");
        assert!(e.to_string().starts_with("cannot create directory"));
        let e = LocalDir::open("/proc/corecatch-artifacts").unwrap_err();
        assert!(matches!(e, DirError::CreateDir { .. }), "{e:?}");
    }

    #[test]
    fn write_atomic_replaces_and_hashes() {
        let t = tempfile::tempdir().unwrap();
        let sink = LocalDir::open(t.path()).unwrap();
        let a = sink.write_atomic("r.json", b"{}").unwrap();
        assert_eq!(a.name, "r.json");
        let a = sink.write_atomic("r.json", b"{\"x\":1}").unwrap();
        assert_eq!(std::fs::read(sink.path_of("r.json")).unwrap(), b"{\"x\":1}");
        assert_eq!(a.bytes, 7);
        assert_eq!(
            (a.bytes, a.sha256),
            pack::sha256_file(&sink.path_of("r.json")).unwrap()
        );
        assert_eq!(names(t.path()), ["r.json"], "no temp left");
    }

    #[test]
    fn write_atomic_rejects_paths() {
        let t = tempfile::tempdir().unwrap();
        let sink = LocalDir::open(t.path()).unwrap();
        for bad in ["", ".", "..", "../x", "a/b", "/etc/x", "a\0b"] {
            let e = sink.write_atomic(bad, b"x").unwrap_err();
            assert!(matches!(e, DirError::BadName { .. }), "{bad:?}: {e:?}");
        }
        assert!(names(t.path()).is_empty());
    }

    #[test]
    fn unique_stem_avoids_earlier_runs() {
        let t = tempfile::tempdir().unwrap();
        let sink = LocalDir::open(t.path()).unwrap();
        assert_eq!(sink.unique_stem("core.1.app").unwrap(), "core.1.app");
        sink.write_atomic("core.1.app.core.gz", b"x").unwrap();
        // A different stem that merely shares a prefix is not a clash.
        sink.write_atomic("core.1.application.core.gz", b"x")
            .unwrap();
        assert_eq!(sink.unique_stem("core.1.app").unwrap(), "core.1.app-2");
        sink.write_atomic("core.1.app-2.report.txt", b"x").unwrap();
        assert_eq!(sink.unique_stem("core.1.app").unwrap(), "core.1.app-3");
        assert_eq!(sink.unique_stem("core.2.app").unwrap(), "core.2.app");
        assert_eq!(sink.unique_stem("core.1").unwrap(), "core.1-2");
    }

    #[test]
    fn register_packed_uses_pack_hashes() {
        let t = tempfile::tempdir().unwrap();
        let sink = LocalDir::open(t.path().join("artifacts")).unwrap();
        let src = t.path().join("core");
        std::fs::write(&src, b"core contents ".repeat(100)).unwrap();
        let packed = pack::compress(&src, &sink.path_of("core.9.x.core.gz")).unwrap();
        let a = sink.register_packed(&packed).unwrap().remove(0);
        assert_eq!(a.name, "core.9.x.core.gz");
        assert_eq!(
            (a.bytes, a.sha256.clone()),
            pack::sha256_file(&packed.path).unwrap()
        );

        // Not in this directory.
        let elsewhere = pack::compress(&src, &t.path().join("core.gz")).unwrap();
        let e = sink.register_packed(&elsewhere).unwrap_err();
        assert!(matches!(e, DirError::Outside { .. }), "{e:?}");
        // Changed since packing.
        std::fs::write(&packed.path, b"truncated").unwrap();
        let e = sink.register_packed(&packed).unwrap_err();
        assert!(matches!(e, DirError::SizeMismatch { .. }), "{e:?}");
    }
}
