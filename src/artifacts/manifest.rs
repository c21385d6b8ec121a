//! `manifest.json` in the artifacts directory: what ran, when, where, and every artifact with
//! its size and SHA-256. Written atomically; a second writer in the same directory (a `collect`
//! after a `run`, or runs at the same time) merges into what is there instead of replacing it,
//! see [`merge`], under the directory's lock (`.corecatch.lock`, see
//! [`crate::artifacts::local::lock_dir`]) so no writer's entries are lost.
//!
//! The manifest is never read or written through a symlink. One that cannot be parsed, or that
//! is not a regular file, is renamed to `manifest.json.damaged-<UTC time>` (the entry itself,
//! never a symlink's target) with a warning, and a new one is started.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::artifacts::{
    local::{lock_dir, write_atomic_in},
    Artifact, DirError,
};
use crate::error::{chain, warn};

/// The `schema` of every manifest this version writes.
pub const SCHEMA: &str = "corecatch.manifest.v1";
/// The manifest's file name inside the artifacts directory.
pub const FILE_NAME: &str = "manifest.json";

/// Values of [`ManifestEntry::kind`]; also the suffix after the stem in artifact file names.
pub mod kind {
    pub const CORE_GZ: &str = "core.gz";
    pub const CORE_ZST: &str = "core.zst";
    /// Encrypted with age (`--encrypt-to`), compressed first.
    pub const CORE_GZ_AGE: &str = "core.gz.age";
    pub const CORE_ZST_AGE: &str = "core.zst.age";

    /// Whether entries of this kind are (parts of) stored cores.
    pub fn is_core(kind: &str) -> bool {
        [CORE_GZ, CORE_ZST, CORE_GZ_AGE, CORE_ZST_AGE].contains(&kind)
    }
    pub const REPORT_JSON: &str = "report.json";
    pub const REPORT_TXT: &str = "report.txt";
    /// `index.html`.
    pub const REPORT_HTML: &str = "report.html";
    /// The reports and the page encrypted with age (`--encrypt-reports`): `<stem>.json.age`,
    /// `<stem>.txt.age`, `index.html.age`.
    pub const REPORT_JSON_AGE: &str = "report.json.age";
    pub const REPORT_TXT_AGE: &str = "report.txt.age";
    pub const REPORT_HTML_AGE: &str = "report.html.age";
    /// The run's debug bundle (`bundle.tar.gz`, see [`crate::artifacts::bundle`]).
    pub const BUNDLE: &str = "bundle.tar.gz";
    /// The debug bundle encrypted with age as it was written (`--encrypt-to`).
    pub const BUNDLE_AGE: &str = "bundle.tar.gz.age";

    /// Whether entries of this kind are debug bundles.
    pub fn is_bundle(kind: &str) -> bool {
        kind == BUNDLE || kind == BUNDLE_AGE
    }
}

/// The whole manifest. Field names are part of the artifact format: stable, snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The wrapped command's argv; empty when nothing was run (`collect`).
    pub command: Vec<String>,
    /// The command's shell-style exit status (see [`crate::exit_code::from_wait`]).
    pub exit_status: Option<i32>,
    /// RFC 3339 UTC, whole seconds (see [`timestamp`]).
    pub started: String,
    pub ended: String,
    pub host: String,
    /// `/proc/sys/kernel/core_pattern` as read at the start.
    pub core_pattern: String,
    pub artifacts: Vec<ManifestEntry>,
}

/// One artifact file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative to the artifacts directory.
    pub path: String,
    /// One of [`kind`].
    pub kind: String,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the file as stored.
    pub sha256: String,
    /// The crashed process, for per-core artifacts.
    pub pid: Option<i32>,
    /// The object key once uploaded (`corecatch upload`, `--to s3://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// On a stored core's files: the whole it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<StoredCore>,
    /// The age recipients (public keys) the file is encrypted to; absent when it is not. Every
    /// encrypted artifact carries it (a stored core also in `core.encrypted_to`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypted_to: Vec<String>,
}

/// A stored core as a whole, recorded on each of its files: a split core's parts are listed
/// in order (`index` of `parts`), and the whole stream and the core it restores are described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCore {
    /// The stored core's name: the file itself when whole, else the name its parts add
    /// `.000`, `.001`, … to.
    pub name: String,
    /// `gzip` or `zstd`.
    pub compression: String,
    pub index: usize,
    pub parts: usize,
    /// Size and SHA-256 of the whole stored stream (the parts concatenated).
    pub bytes: u64,
    pub sha256: String,
    /// Size and SHA-256 of the core it decompresses to.
    pub core_bytes: u64,
    pub core_sha256: String,
    /// The age recipients (public keys) it is encrypted to; empty when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypted_to: Vec<String>,
}

impl StoredCore {
    /// The record of `packed`'s part `index`.
    pub fn of(packed: &crate::artifacts::pack::Packed, index: usize) -> StoredCore {
        StoredCore {
            name: packed
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            compression: packed.codec.name().to_string(),
            index,
            parts: packed.parts.len(),
            bytes: packed.bytes,
            sha256: packed.sha256.clone(),
            core_bytes: packed.original_bytes,
            core_sha256: packed.original_sha256.clone(),
            encrypted_to: packed.encrypted_to.clone(),
        }
    }
}

impl ManifestEntry {
    pub fn new(artifact: &Artifact, kind: &str, pid: Option<i32>) -> ManifestEntry {
        ManifestEntry {
            path: artifact.name.clone(),
            kind: kind.to_string(),
            bytes: artifact.bytes,
            sha256: artifact.sha256.clone(),
            pid,
            key: None,
            core: None,
            encrypted_to: Vec::new(),
        }
    }

    /// The entry of a file encrypted to `recipients`.
    pub fn encrypted(mut self, recipients: &[crate::artifacts::encrypt::Recipient]) -> Self {
        self.encrypted_to = recipients.iter().map(|r| r.public().to_string()).collect();
        self
    }
}

/// Why the manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has schema {found:?}, expected {SCHEMA:?}")]
    Schema { path: PathBuf, found: String },
    #[error("cannot serialize the manifest for {path}")]
    Serialize {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the manifest")]
    Write(#[source] DirError),
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("cannot move {path} aside to {to}")]
    MoveAside {
        path: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
}

/// The longest manifest read back (a manifest lists a few entries per crash).
const MAX_BYTES: u64 = 64 << 20;

/// `t` as RFC 3339 UTC with whole seconds, e.g. `2024-05-01T12:00:00Z`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Manifest {
    /// A manifest with no artifacts yet.
    pub fn new(
        command: Vec<String>,
        started: SystemTime,
        ended: SystemTime,
        host: String,
        core_pattern: String,
    ) -> Manifest {
        Manifest {
            schema: SCHEMA.to_string(),
            command,
            exit_status: None,
            started: timestamp(started),
            ended: timestamp(ended),
            host,
            core_pattern,
            artifacts: Vec::new(),
        }
    }

    /// The manifest in `dir`, or `None` when there is none. An unreadable or unparseable file,
    /// anything but a regular file (a symlink is not followed) or another schema is an error (the
    /// caller decides; [`write`] moves a damaged or irregular one aside, keeps another schema).
    pub fn load(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(FILE_NAME);
        let read_err = |source| ManifestError::Read {
            path: path.clone(),
            source,
        };
        // O_NONBLOCK: a FIFO planted here must not hang the open; it is refused below.
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(ManifestError::NotRegular { path })
            }
            Err(source) => return Err(read_err(source)),
        };
        if !file.metadata().map_err(read_err)?.is_file() {
            return Err(ManifestError::NotRegular { path });
        }
        let mut text = Vec::new();
        file.take(MAX_BYTES)
            .read_to_end(&mut text)
            .map_err(read_err)?;
        let m: Manifest = serde_json::from_slice(&text).map_err(|source| ManifestError::Parse {
            path: path.clone(),
            source,
        })?;
        if m.schema != SCHEMA {
            return Err(ManifestError::Schema {
                path,
                found: m.schema,
            });
        }
        Ok(Some(m))
    }
}

/// Combines the manifest already in a directory (`earlier`) with the one being written
/// (`incoming`). The rule:
///
/// - **Artifacts**: `earlier`'s entries whose file still exists (`exists(path)`) and that
///   `incoming` does not list again, in their order, then all of `incoming`'s entries. So a file
///   rewritten under the same name appears once, with its new size and hash.
/// - **Header** (`command`, `exit_status`, `started`, `ended`, `host`, `core_pattern`): taken
///   whole from `incoming` when it started at or after `earlier` and either ran a command or
///   `earlier` did not; otherwise `earlier`'s is kept. A `collect` (no command) after a `run`
///   thus adds its artifacts without erasing which command produced the cores, and a manifest
///   with an unparseable `started` counts as the oldest.
pub fn merge(earlier: Manifest, incoming: Manifest, exists: impl Fn(&str) -> bool) -> Manifest {
    let time = |s: &str| humantime::parse_rfc3339(s).unwrap_or(UNIX_EPOCH);
    let incoming_wins = time(&incoming.started) >= time(&earlier.started)
        && (!incoming.command.is_empty() || earlier.command.is_empty());
    let mut artifacts: Vec<ManifestEntry> = earlier
        .artifacts
        .iter()
        .filter(|e| exists(&e.path) && !incoming.artifacts.iter().any(|n| n.path == e.path))
        .cloned()
        .collect();
    artifacts.extend(incoming.artifacts.iter().cloned());
    let header = if incoming_wins { incoming } else { earlier };
    Manifest {
        schema: SCHEMA.to_string(),
        artifacts,
        ..header
    }
}

/// Writes `manifest` to `dir/manifest.json` atomically, merged (see [`merge`]) with the
/// manifest already there, and returns what was written. `also(merged)` runs first: an artifact
/// made from the merged manifest (the page of every crash it lists) whose entry it returns is
/// listed too, replacing an entry of the same path. All of it happens under the directory's lock, so runs
/// sharing the directory take turns and none loses another's entries.
///
/// A manifest that cannot be parsed or is not a regular file is moved aside (see
/// [`move_aside`]) with a warning and replaced by one for `manifest`; one that cannot be read,
/// or has another schema, is left alone and is an error.
pub fn write_with(
    dir: &Path,
    manifest: &Manifest,
    also: impl FnOnce(&Manifest) -> Option<ManifestEntry>,
) -> Result<Manifest, ManifestError> {
    let _lock = lock_dir(dir);
    let earlier = match Manifest::load(dir) {
        Ok(m) => m,
        Err(e @ (ManifestError::Parse { .. } | ManifestError::NotRegular { .. })) => {
            let to = move_aside(dir)?;
            warn(format!(
                "{}; moved it aside to {} and started a new manifest",
                chain(&e),
                to.display()
            ));
            None
        }
        Err(e) => return Err(e),
    };
    let mut merged = match earlier {
        Some(earlier) => merge(earlier, manifest.clone(), |p| {
            dir.join(p).symlink_metadata().is_ok()
        }),
        None => Manifest {
            schema: SCHEMA.to_string(),
            ..manifest.clone()
        },
    };
    if let Some(entry) = also(&merged) {
        merged.artifacts.retain(|e| e.path != entry.path);
        merged.artifacts.push(entry);
    }
    let mut json =
        serde_json::to_vec_pretty(&merged).map_err(|source| ManifestError::Serialize {
            path: dir.join(FILE_NAME),
            source,
        })?;
    json.push(b'\n');
    write_atomic_in(dir, FILE_NAME, &json).map_err(ManifestError::Write)?;
    Ok(merged)
}

/// `20261202T041500Z`: `t` in UTC, for names.
fn compact_utc(t: SystemTime) -> String {
    timestamp(t).replace(['-', ':'], "")
}

/// Renames `dir/manifest.json` (whatever it is: the entry itself, never a symlink's target) to
/// `manifest.json.damaged-<UTC time>`, or that with `-2`, `-3`, … when the name is taken, and
/// returns the new path. Call it under the directory's lock.
pub fn move_aside(dir: &Path) -> Result<PathBuf, ManifestError> {
    let from = dir.join(FILE_NAME);
    let base = format!("{FILE_NAME}.damaged-{}", compact_utc(SystemTime::now()));
    let to = std::iter::once(base.clone())
        .chain((2u64..).map(|n| format!("{base}-{n}")))
        .map(|n| dir.join(n))
        .find(|p| p.symlink_metadata().is_err())
        .expect("an unused suffix exists");
    std::fs::rename(&from, &to).map_err(|source| ManifestError::MoveAside {
        path: from,
        to: to.clone(),
        source,
    })?;
    Ok(to)
}

/// Records the object key of each uploaded artifact (`(path, key)` pairs) in the manifest in
/// `dir` and rewrites it atomically; entries not named keep what they had. `None` when `dir`
/// has no manifest.
#[cfg(feature = "s3")]
pub fn record_keys(
    dir: &Path,
    keys: &[(String, String)],
) -> Result<Option<Manifest>, ManifestError> {
    let _lock = lock_dir(dir);
    let Some(mut m) = Manifest::load(dir)? else {
        return Ok(None);
    };
    for e in &mut m.artifacts {
        if let Some((_, key)) = keys.iter().find(|(p, _)| *p == e.path) {
            e.key = Some(key.clone());
        }
    }
    let mut json = serde_json::to_vec_pretty(&m).map_err(|source| ManifestError::Serialize {
        path: dir.join(FILE_NAME),
        source,
    })?;
    json.push(b'\n');
    write_atomic_in(dir, FILE_NAME, &json).map_err(ManifestError::Write)?;
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, manifest: &Manifest) -> Result<Manifest, ManifestError> {
        write_with(dir, manifest, |_| None)
    }
    use crate::artifacts::names_in as names;
    use crate::artifacts::pack;
    use crate::artifacts::LocalDir;
    use std::process::Command;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// sha256 of a file by the `sha256sum` binary, independent of our code.
    fn sha256sum(path: &Path) -> String {
        let out = Command::new("sha256sum").arg(path).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()[..64].to_string()
    }

    fn check_on_disk(dir: &Path, m: &Manifest) {
        for e in &m.artifacts {
            let p = dir.join(&e.path);
            assert_eq!(sha256sum(&p), e.sha256, "{}", e.path);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), e.bytes, "{}", e.path);
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(at(1_714_564_800)), "2024-05-01T12:00:00Z");
    }

    #[test]
    fn field_names_are_stable() {
        let m = Manifest::new(vec!["x".into()], at(0), at(1), "h".into(), "core".into());
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "artifacts",
                "command",
                "core_pattern",
                "ended",
                "exit_status",
                "host",
                "schema",
                "started"
            ]
        );
        assert_eq!(v["schema"], SCHEMA);
    }

    #[test]
    fn write_reload_merge() {
        let t = tempfile::tempdir().unwrap();
        let sink = LocalDir::open(t.path()).unwrap();
        assert!(Manifest::load(sink.root()).unwrap().is_none());

        // First run: a packed core and a report.
        let src = t.path().join("raw-core");
        std::fs::write(&src, b"core bytes ".repeat(500)).unwrap();
        let stem = sink
            .unique_stem(&crate::artifacts::safe_stem(10, "/bin/app"))
            .unwrap();
        let packed = pack::compress(&src, &sink.path_of(&format!("{stem}.core.gz"))).unwrap();
        let core = sink.register_packed(&packed).unwrap().remove(0);
        let report = sink
            .write_atomic(&format!("{stem}.report.txt"), b"SIGSEGV\n")
            .unwrap();
        let stale = sink.write_atomic("old.report.txt", b"gone soon").unwrap();
        let mut first = Manifest::new(
            vec!["./app".into(), "--flag".into()],
            at(1000),
            at(1010),
            "ci-1".into(),
            "core.%p".into(),
        );
        first.exit_status = Some(139);
        first.artifacts = vec![
            ManifestEntry::new(&core, kind::CORE_GZ, Some(10)),
            ManifestEntry::new(&report, kind::REPORT_TXT, Some(10)),
            ManifestEntry::new(&stale, kind::REPORT_TXT, None),
        ];
        let written = write(sink.root(), &first).unwrap();
        assert_eq!(written, first);
        assert_eq!(Manifest::load(sink.root()).unwrap().unwrap(), first);
        check_on_disk(sink.root(), &written);

        // Then a `collect` in the same dir: no command, one artifact deleted meanwhile, the
        // report rewritten under the same name, one new artifact.
        std::fs::remove_file(sink.path_of("old.report.txt")).unwrap();
        let report2 = sink
            .write_atomic(&format!("{stem}.report.txt"), b"SIGSEGV, again\n")
            .unwrap();
        let json = sink.write_atomic("core.11.b.report.json", b"{}").unwrap();
        let mut second = Manifest::new(vec![], at(2000), at(2001), "ci-2".into(), "x".into());
        second.artifacts = vec![
            ManifestEntry::new(&report2, kind::REPORT_TXT, Some(10)),
            ManifestEntry::new(&json, kind::REPORT_JSON, Some(11)),
        ];
        let merged = write(sink.root(), &second).unwrap();
        assert_eq!(Manifest::load(sink.root()).unwrap().unwrap(), merged);
        assert_eq!(
            merged.command, first.command,
            "collect keeps the run's header"
        );
        assert_eq!(merged.exit_status, Some(139));
        assert_eq!(merged.started, first.started);
        let paths: Vec<&str> = merged.artifacts.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "core.10.app.core.gz",
                "core.10.app.report.txt",
                "core.11.b.report.json"
            ]
        );
        check_on_disk(sink.root(), &merged);

        // A later run with a command takes over the header, keeps the artifacts.
        let third = Manifest::new(
            vec!["./app2".into()],
            at(3000),
            at(3005),
            "h".into(),
            "p".into(),
        );
        let merged = write(sink.root(), &third).unwrap();
        assert_eq!(merged.command, ["./app2"]);
        assert_eq!(merged.started, "1970-01-01T00:50:00Z");
        assert_eq!(merged.artifacts.len(), 3);
        check_on_disk(sink.root(), &merged);
        // An older one does not.
        let old = Manifest::new(vec!["./older".into()], at(5), at(6), "h".into(), "p".into());
        assert_eq!(write(sink.root(), &old).unwrap().command, ["./app2"]);
    }

    fn entry(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: kind::REPORT_TXT.into(),
            bytes: 1,
            sha256: "0".repeat(64),
            pid: None,
            key: None,
            core: None,
            encrypted_to: Vec::new(),
        }
    }

    /// The one `manifest.json.damaged-*` in `dir`, after checking its name's time format.
    fn aside(dir: &Path) -> PathBuf {
        let aside: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| n.starts_with("manifest.json.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "{:?}", names(dir));
        let stamp = &aside[0]["manifest.json.damaged-".len()..];
        assert_eq!(stamp.len(), "20261202T041500Z".len(), "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
            "{stamp}"
        );
        dir.join(&aside[0])
    }

    #[test]
    fn compact_utc_names() {
        assert_eq!(compact_utc(at(1_796_184_900)), "20261202T041500Z");
    }

    #[test]
    fn a_damaged_manifest_is_moved_aside_and_replaced() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(FILE_NAME);
        std::fs::write(t.path().join("a.txt"), b"x").unwrap();
        let mut m = Manifest::new(vec![], at(0), at(0), "h".into(), "p".into());
        m.artifacts = vec![entry("a.txt")];

        std::fs::write(&path, b"{ not json").unwrap();
        let e = Manifest::load(t.path()).unwrap_err();
        assert!(matches!(e, ManifestError::Parse { .. }), "{e:?}");
        assert_eq!(write(t.path(), &m).unwrap(), m);
        assert_eq!(std::fs::read(aside(t.path())).unwrap(), b"{ not json");
        assert_eq!(Manifest::load(t.path()).unwrap().unwrap(), m);

        // A second damaged one gets a name of its own, even within the same second.
        std::fs::write(&path, b"[").unwrap();
        write(t.path(), &m).unwrap();
        let damaged = names(t.path())
            .into_iter()
            .filter(|n| n.starts_with("manifest.json.damaged-"))
            .count();
        assert_eq!(damaged, 2, "{:?}", names(t.path()));

        // Another schema is a valid file of another version: kept, and an error.
        let mut other = m.clone();
        other.schema = "corecatch.manifest.v9".into();
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        let e = write(t.path(), &m).unwrap_err();
        assert!(matches!(e, ManifestError::Schema { .. }), "{e:?}");
    }

    #[test]
    fn a_manifest_symlink_is_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        let target = t.path().join("theirs.json");
        let m = Manifest::new(vec!["x".into()], at(0), at(0), "h".into(), "p".into());
        // Even a valid manifest is not read through a link.
        let theirs = serde_json::to_vec(&m).unwrap();
        std::fs::write(&target, &theirs).unwrap();
        std::os::unix::fs::symlink(&target, dir.join(FILE_NAME)).unwrap();
        let e = Manifest::load(&dir).unwrap_err();
        assert!(matches!(e, ManifestError::NotRegular { .. }), "{e:?}");

        write(&dir, &m).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), theirs, "target untouched");
        let moved = aside(&dir);
        assert!(moved.symlink_metadata().unwrap().file_type().is_symlink());
        assert!(std::fs::symlink_metadata(dir.join(FILE_NAME))
            .unwrap()
            .file_type()
            .is_file());

        // A directory in its place is moved aside too.
        let d2 = t.path().join("out2");
        std::fs::create_dir_all(d2.join(FILE_NAME)).unwrap();
        write(&d2, &m).unwrap();
        assert!(aside(&d2).is_dir());
        assert!(d2.join(FILE_NAME).is_file());
    }

    /// Writers in several threads, each merging its own entries (and a page made from the
    /// merged manifest) into one directory: under the lock, none is lost.
    #[test]
    fn concurrent_writers_lose_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let name = format!("w{w}-{i}.txt");
                        std::fs::write(dir.join(&name), b"x").unwrap();
                        let mut m = Manifest::new(vec![], at(i), at(i), "h".into(), "p".into());
                        m.artifacts = vec![entry(&name)];
                        write_with(&dir, &m, |merged| {
                            // The page lists what the merged manifest holds, this entry too.
                            assert!(merged.artifacts.iter().any(|e| e.path == name));
                            let n = merged.artifacts.iter().filter(|e| e.path != "page").count();
                            Some(entry("page")).map(|mut e| {
                                e.bytes = n as u64;
                                e
                            })
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let m = Manifest::load(&dir).unwrap().unwrap();
        for w in 0..4 {
            for i in 0..10 {
                let p = format!("w{w}-{i}.txt");
                assert!(m.artifacts.iter().any(|e| e.path == p), "{p} lost");
            }
        }
        let page: Vec<_> = m.artifacts.iter().filter(|e| e.path == "page").collect();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].bytes, 40, "the last page saw every entry");
        assert!(!dir.join(crate::artifacts::local::LOCK_NAME).exists());
    }

    #[test]
    fn write_fails_cleanly_where_dir_is_a_file() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("some_file");
        std::fs::write(&file, b"").unwrap();
        let m = Manifest::new(vec![], at(0), at(0), "h".into(), "p".into());
        let e = write(&file, &m).unwrap_err();
        // Reading some_file/manifest.json fails with ENOTDIR before any write is tried.
        assert!(matches!(e, ManifestError::Read { .. }), "{e:?}");
    }
}
