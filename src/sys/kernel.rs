//! The kernel's core-dump settings from /proc/sys/kernel and /proc/sys/fs.

use serde::Serialize;
use std::fs;
use std::path::PathBuf;

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
const CORE_USES_PID: &str = "/proc/sys/kernel/core_uses_pid";
const SUID_DUMPABLE: &str = "/proc/sys/fs/suid_dumpable";

/// The settings that decide where (and whether) a core is written.
#[derive(Debug, Clone, Serialize)]
pub struct KernelSettings {
    /// `kernel.core_pattern`, without its trailing newline.
    pub core_pattern: String,
    pub core_uses_pid: bool,
    /// `fs.suid_dumpable`: 0 = setuid programs dump no core, 1 = debug, 2 = suidsafe.
    pub suid_dumpable: Option<u32>,
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
pub struct ReadSettingsError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn read(path: &str) -> Result<String, ReadSettingsError> {
    fs::read_to_string(path)
        .map(|s| s.trim_end_matches('\n').to_string())
        .map_err(|source| ReadSettingsError {
            path: path.into(),
            source,
        })
}

/// Read core_pattern (required) and the optional knobs beside it.
pub fn read_settings() -> Result<KernelSettings, ReadSettingsError> {
    Ok(KernelSettings {
        core_pattern: read(CORE_PATTERN)?,
        core_uses_pid: read(CORE_USES_PID).is_ok_and(|s| s.trim() == "1"),
        suid_dumpable: read(SUID_DUMPABLE).ok().and_then(|s| s.trim().parse().ok()),
    })
}

/// The host name, as `%h` would expand it.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the current user can create files in `dir` (access(2) with W_OK|X_OK).
pub fn dir_writable(dir: &std::path::Path) -> bool {
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok()
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`) as 32 hex digits without dashes, the form
/// systemd puts in file names.
pub fn boot_id() -> Option<String> {
    let s = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id: String = s.trim().chars().filter(|c| *c != '-').collect();
    (id.len() == 32).then_some(id)
}

/// How many processes have `comm` as their name (`/proc/PID/comm`, 15 characters at most).
pub fn processes_named(comm: &str) -> usize {
    let Ok(rd) = fs::read_dir("/proc") else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.trim_end_matches('\n') == comm)
        })
        .count()
}

/// The real user id of corecatch (and of the command it runs).
pub fn real_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}
