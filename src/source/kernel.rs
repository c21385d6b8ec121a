//! The kernel's cores: which files on disk are this run's cores.
//!
//! Two steps. `scan` walks a directory (recursively for relative core patterns, because a core
//! lands in the crashing process's own working directory, which may be any sub-directory) and
//! keeps regular files whose path matches the pattern and that start like an ELF core. `attribute`
//! then decides, from the core's own contents, whether it belongs to this run:
//!
//! 1. the file was written after the run started (never a core that existed before), and
//! 2. the process started with this run's token in its environment (`CORECATCH_RUN=<token>`,
//!    which corecatch puts in CMD's environment and every descendant inherits), or, for processes
//!    that cleared their environment, its pid or parent pid is one corecatch saw in the run.
//!
//! A core another process left in the same directory during the run fails (2) and is left alone.

use crate::elf_core::Core;
use crate::source::{classify, Classified};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The environment variable that marks this run's processes.
pub const TOKEN_VAR: &str = "CORECATCH_RUN";

/// Directory names never descended into: version-control metadata is never a crash's cwd.
const SKIP_DIRS: &[&str] = &[".git", ".hg", ".svn"];
/// Deepest sub-directory level walked below a search root.
const MAX_DEPTH: usize = 32;

/// Walk `root` for files whose path relative to `root` satisfies `matches`. Directories in
/// `exclude` (e.g. the artifacts directory) are not entered. Every regular file that matches
/// is [`classify`]d, sorted by path.
pub fn scan(
    root: &Path,
    recursive: bool,
    matches: &dyn Fn(&Path) -> bool,
    exclude: &[PathBuf],
) -> Vec<Classified> {
    let mut found = Vec::new();
    let exclude: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            if ft.is_dir() {
                let name = entry.file_name();
                if recursive
                    && depth < MAX_DEPTH
                    && !SKIP_DIRS.iter().any(|s| name == *s)
                    && !exclude
                        .iter()
                        .any(|e| path.canonicalize().is_ok_and(|c| &c == e))
                {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            if !ft.is_file() {
                continue; // never follow symlinks: a core is a regular file the kernel wrote
            }
            let rel = path.strip_prefix(root).unwrap_or(&path);
            if !matches(rel) {
                continue;
            }
            found.push(classify(&path));
        }
    }
    found.sort_by(|a, b| a.path().cmp(b.path()));
    found
}

/// Whether a core found after the run was left by this run. Returns the reason it was not.
pub fn attribute(core: &Core<'_>, token: &str, known_pids: &[i32]) -> Result<(), String> {
    if core.started_with_env(&format!("{TOKEN_VAR}={token}")) {
        return Ok(());
    }
    let pid = core
        .process
        .as_ref()
        .map(|p| p.pid)
        .or_else(|| core.crashed_thread().map(|t| t.tid));
    let ppid = core.process.as_ref().map(|p| p.ppid);
    if pid.is_some_and(|p| known_pids.contains(&p)) || ppid.is_some_and(|p| known_pids.contains(&p))
    {
        return Ok(());
    }
    Err(format!(
        "made during the run by pid {}, which is not a process of this run (no {TOKEN_VAR} token)",
        pid.map_or("?".into(), |p| p.to_string())
    ))
}

/// Whether a file was written at or after `start` (its modification time).
pub fn written_since(f: &crate::source::Found, start: SystemTime) -> bool {
    f.modified.is_some_and(|m| m >= start)
}
