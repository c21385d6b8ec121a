//! Advisory exclusive locks (flock(2)) on a lock file, so processes sharing a directory take
//! turns at a read-merge-write.
//!
//! The lock file is removed when the lock is released, so it does not linger next to the
//! artifacts. That is safe because [`exclusive`] checks, once it holds the lock, that the path
//! still names the file it locked: a waiter that locked a file its previous holder has already
//! unlinked sees a different (or no) file at the path and starts over.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Holds the lock until dropped; then removes the lock file and releases the lock.
#[derive(Debug)]
pub struct Guard {
    path: PathBuf,
    lock: Option<Flock<File>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Unlinked while still held, so no one can lock this file and believe it current.
        let _ = std::fs::remove_file(&self.path);
        drop(self.lock.take());
    }
}

/// Creates `path` when missing (mode 0600, never through a symlink) and waits until this
/// process holds an exclusive flock on it.
pub fn exclusive(path: &Path) -> io::Result<Guard> {
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(l) => break l,
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(e.into()),
            }
        };
        let held = lock.metadata()?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(Guard {
                    path: path.to_path_buf(),
                    lock: Some(lock),
                })
            }
            // Unlinked (or replaced) by the previous holder: lock the file now there.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn one_holder_at_a_time_and_no_file_left() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(".lock");
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (path, inside) = (path.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _g = exclusive(&path).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!path.exists(), "the lock file is removed on release");
    }

    #[test]
    fn never_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let path = d.path().join(".lock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(exclusive(&path).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
