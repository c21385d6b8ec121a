//! The run's debug bundle: one `bundle.tar.gz` in the artifacts directory holding every file the
//! run's cores map (executable, shared libraries) and the separate debug files found for them,
//! each once by build-id however many cores use it, laid out so gdb can use it as it is:
//!
//! ```text
//! root/<path the core names>           set sysroot .../root
//! debug/.build-id/xx/rest.debug        set debug-file-directory .../debug
//! objects/<build-id>/<file name>       a second build of a path root/ already holds
//! bundle.json                          (last) every file: path in the core, build-id, size, sha256
//! ```
//!
//! [`plan`] (which files, where, within `--bundle-max`) is pure; [`write`] streams each file
//! once through tar and the parallel gzip writer, and with recipients (`--encrypt-to`) the gzip
//! stream through age on its way to the file (`bundle.tar.gz.age`: no plaintext copy on disk);
//! [`unpack`] reads a bundle back (decrypted as it is read when it is one of those; regular
//! files only, at the paths its bundle.json names, each checked against its sha256) and adds
//! `debug/.build-id/xx/rest` links to the objects, gdb's and the symbolizer's by-build-id layout.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::artifacts::encrypt::{self, Encryptor, Identities, Recipient};
use crate::artifacts::pack::{self, HashingReader, HashingWriter};
use crate::artifacts::{publish, Artifact, LocalDir};

/// The `schema` of bundle.json.
pub const SCHEMA: &str = "corecatch.bundle.v1";
/// The bundle's own manifest, the archive's last entry.
pub const MANIFEST_NAME: &str = "bundle.json";
/// The stem of the archive in the artifacts directory (`bundle.tar.gz`, `bundle-2.tar.gz`, …).
pub const STEM: &str = "bundle";
/// Default `--bundle-max`.
pub const DEFAULT_MAX: u64 = 512 << 20;
/// Largest bundle.json read back.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Most bytes one bundle may unpack to (an archive is untrusted input).
const MAX_UNPACKED: u64 = 64 << 30;

/// `--bundle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Everything, unless that exceeds the size limit: then the program's own files only.
    #[default]
    Auto,
    Always,
    Never,
}

/// What bundle.json says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub schema: String,
    pub files: Vec<BundleFile>,
    /// Files the cores map that are not in the bundle, and why.
    pub left_out: Vec<LeftOut>,
}

/// One file in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// The object's path as the core names it (for a debug file: its object's).
    pub path: String,
    /// `object` or `debug`.
    pub kind: String,
    /// Hex build-id (the core's, checked against the file's).
    pub build_id: Option<String>,
    pub bytes: u64,
    pub sha256: String,
    /// Where it is in the archive (for a file in the build-id store: where it goes once
    /// fetched).
    pub stored: String,
    /// `s3://…` when the file is in the build-id store (`--bundle-store`) instead of the
    /// archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// A file the cores map that the bundle does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub path: String,
    pub build_id: Option<String>,
    pub why: String,
}

pub mod kind {
    pub const OBJECT: &str = "object";
    pub const DEBUG: &str = "debug";
}

/// A file the bundle could hold: a module a core maps, as its report describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The path the core names (the object's path, for a debug file).
    pub core_path: String,
    pub kind: &'static str,
    pub build_id: Option<String>,
    /// The file on this machine.
    pub source: PathBuf,
    pub bytes: u64,
}

impl Candidate {
    /// In the system's library directories (not the program's own).
    pub fn is_system(&self) -> bool {
        is_system_path(&self.core_path)
    }
}

/// The system's library directories: what `auto` leaves out first. A program's own files are
/// everywhere else (its build directory, /opt, /usr/local).
pub fn is_system_path(path: &str) -> bool {
    const DIRS: [&str; 9] = [
        "/lib/",
        "/lib32/",
        "/lib64/",
        "/libx32/",
        "/usr/lib/",
        "/usr/lib32/",
        "/usr/lib64/",
        "/usr/libx32/",
        "/usr/libexec/",
    ];
    DIRS.iter().any(|d| path.starts_with(d))
}

/// What goes in, where, and what is left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Each with its path in the archive.
    pub files: Vec<(Candidate, String)>,
    /// Files put in the build-id store instead, each with its path in the bundle and its
    /// `s3://` URL: listed in bundle.json, not in the archive.
    pub referenced: Vec<(Candidate, String, String)>,
    pub left_out: Vec<LeftOut>,
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(c, _)| c.bytes).sum()
    }
}

/// Choose the files: each (kind, build-id) once (by source path when there is no build-id);
/// with `Auto`, when they add up to more than `max` bytes, only the program's own (outside
/// [`is_system_path`]) and the rest named in `left_out`; `left_out` starts with `missing`.
pub fn plan(candidates: Vec<Candidate>, missing: Vec<LeftOut>, mode: Mode, max: u64) -> Plan {
    let mut unique: Vec<Candidate> = Vec::new();
    for c in candidates {
        let same = |u: &Candidate| {
            u.kind == c.kind
                && match (&u.build_id, &c.build_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => u.source == c.source,
                }
        };
        if !unique.iter().any(same) {
            unique.push(c);
        }
    }
    let mut left_out = missing;
    if mode == Mode::Never {
        return Plan {
            files: Vec::new(),
            referenced: Vec::new(),
            left_out,
        };
    }
    let total: u64 = unique.iter().map(|c| c.bytes).sum();
    if mode == Mode::Auto && total > max {
        let (own, system): (Vec<_>, Vec<_>) = unique.into_iter().partition(|c| !c.is_system());
        left_out.extend(system.into_iter().map(|c| LeftOut {
            why: format!(
                "a system file: the bundle's {} would exceed --bundle-max {}",
                human(total),
                human(max)
            ),
            path: c.source.display().to_string(),
            build_id: c.build_id,
        }));
        unique = own;
    }
    let mut files = Vec::new();
    let mut used: Vec<String> = Vec::new();
    for c in unique {
        let stored = stored_path(&c, &used);
        used.push(stored.clone());
        files.push((c, stored));
    }
    Plan {
        files,
        referenced: Vec::new(),
        left_out,
    }
}

/// Where a file goes in the archive: objects at `root/<path in the core>` (when that path is
/// absolute, plain and not taken by another build), else `objects/<build-id>/<name>`; debug
/// files at `debug/.build-id/xx/rest.debug`, else beside their object's path under `debug/`.
fn stored_path(c: &Candidate, used: &[String]) -> String {
    let plain = plain_relative(c.core_path.strip_prefix('/').unwrap_or(""));
    let name = Path::new(&c.core_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| plain_relative(n).is_some())
        .unwrap_or_else(|| "file".into());
    let id = c.build_id.as_deref().filter(|h| h.len() >= 2);
    let path = if c.kind == kind::DEBUG {
        match (id, &plain) {
            (Some(h), _) => format!("debug/.build-id/{}/{}.debug", &h[..2], &h[2..]),
            (None, Some(p)) => format!("debug/{p}.debug"),
            (None, None) => format!("debug/{name}.debug"),
        }
    } else {
        match (&plain, id) {
            (Some(p), _) if !used.contains(&format!("root/{p}")) => format!("root/{p}"),
            (_, Some(h)) => format!("objects/{h}/{name}"),
            _ => format!("objects/unknown/{name}"),
        }
    };
    // Unique however odd the input: a path already taken gets a numbered directory.
    if !used.contains(&path) {
        return path;
    }
    (2u32..)
        .map(|n| format!("objects/{n}/{name}"))
        .find(|p| !used.contains(p))
        .expect("an unused name exists")
}

/// `p` when it is a relative path of plain components (no `.`, `..`, empty parts or NUL).
fn plain_relative(p: &str) -> Option<String> {
    let ok = !p.is_empty()
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| p.to_string())
}

/// A plain relative path under one of the bundle's trees (`root/`, `debug/`, `objects/`).
fn inside_bundle(p: &str) -> bool {
    let top = p.split('/').next().unwrap_or("");
    matches!(top, "root" | "debug" | "objects") && p.contains('/') && plain_relative(p).is_some()
}

/// `n` bytes in words: `512 MiB`, `3.2 GiB`, `12 KiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot create the bundle in {dir}")]
    Create {
        dir: PathBuf,
        source: crate::artifacts::DirError,
    },
    #[error("cannot write the bundle {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}")]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("{path} changed while it was bundled ({expected} bytes, then {actual})")]
    Changed {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("cannot read the bundle {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the bundle {path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
    #[error("cannot unpack the bundle into {path}")]
    Unpack { path: PathBuf, source: io::Error },
    #[error("cannot encrypt the bundle {path}")]
    Encrypt {
        path: PathBuf,
        source: encrypt::EncryptError,
    },
    #[error("the bundle {path} is encrypted (age): give the identity that decrypts it with --identity FILE")]
    Encrypted { path: PathBuf },
    #[error(transparent)]
    Decrypt(encrypt::EncryptError),
}

/// Whether the archive at `path` is an encrypted bundle (`.tar.gz.age`), by its name.
pub fn is_encrypted(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".age")
}

/// Where the gzip stream goes: the file, or age on its way to the file.
enum Sink {
    Plain(io::BufWriter<std::fs::File>),
    Age(Box<Encryptor<HashingWriter<io::BufWriter<std::fs::File>>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

/// The written bundle.
#[derive(Debug)]
pub struct Written {
    pub artifact: Artifact,
    pub manifest: BundleManifest,
}

/// Write `plan` as `bundle.tar.gz` (or `bundle-N.tar.gz`) in `dir`: each file streamed once
/// (hashed on the way), bundle.json last, the whole published atomically. With `recipients`
/// the compressed stream is encrypted to them as it is written: `bundle.tar.gz.age`, which
/// `age -d` turns into the same kind of tar.gz; its artifact's size and sha256 are the
/// encrypted file's.
pub fn write(dir: &LocalDir, plan: Plan, recipients: &[Recipient]) -> Result<Written, BundleError> {
    let stem = dir
        .unique_stem(STEM)
        .map_err(|source| BundleError::Create {
            dir: dir.root().to_path_buf(),
            source,
        })?;
    let suffix = if recipients.is_empty() {
        ".tar.gz"
    } else {
        ".tar.gz.age"
    };
    let name = format!("{stem}{suffix}");
    let dest = dir.path_of(&name);
    let werr = |source| BundleError::Write {
        path: dest.clone(),
        source,
    };
    let tmp = publish::temp_in(dir.root(), suffix).map_err(werr)?;
    let out = io::BufWriter::new(tmp.as_file().try_clone().map_err(werr)?);
    let sink = if recipients.is_empty() {
        Sink::Plain(out)
    } else {
        let hashed = HashingWriter::new(out);
        Sink::Age(Box::new(Encryptor::new(recipients, hashed).map_err(
            |source| BundleError::Encrypt {
                path: dest.clone(),
                source,
            },
        )?))
    };
    let mut tar = tar::Builder::new(pack::GzipWriter::new(sink));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut files = Vec::new();
    for (c, stored) in plan.files {
        let file = std::fs::File::open(&c.source).map_err(|source| BundleError::ReadFile {
            path: c.source.clone(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| BundleError::ReadFile {
                path: c.source.clone(),
                source,
            })?
            .len();
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // tar copies through an 8 KiB buffer: read the file in 1 MiB pieces under it.
        let mut reader =
            HashingReader::new(io::BufReader::with_capacity(pack::BUF_SIZE, file).take(len));
        tar.append_data(&mut header, &stored, &mut reader)
            .map_err(werr)?;
        if reader.count() != len {
            return Err(BundleError::Changed {
                path: c.source.clone(),
                expected: len,
                actual: reader.count(),
            });
        }
        files.push(BundleFile {
            path: c.core_path,
            kind: c.kind.to_string(),
            build_id: c.build_id,
            bytes: len,
            sha256: reader.sha256(),
            stored,
            store: None,
        });
    }
    for (c, stored, url) in plan.referenced {
        let (bytes, sha256) = pack::sha256_file(&c.source).map_err(|e| BundleError::ReadFile {
            path: c.source.clone(),
            source: io::Error::other(e),
        })?;
        files.push(BundleFile {
            path: c.core_path,
            kind: c.kind.to_string(),
            build_id: c.build_id,
            bytes,
            sha256,
            stored,
            store: Some(url),
        });
    }
    let manifest = BundleManifest {
        schema: SCHEMA.to_string(),
        files,
        left_out: plan.left_out,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| werr(e.into()))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, MANIFEST_NAME, json.as_slice())
        .map_err(werr)?;
    let gz = tar.into_inner().map_err(werr)?;
    let (sink, gz_bytes, gz_sha256) = gz.finish().map_err(werr)?;
    let (mut buf, bytes, sha256) = match sink {
        Sink::Plain(buf) => (buf, gz_bytes, gz_sha256),
        Sink::Age(enc) => enc.finish().map_err(werr)?.finish(),
    };
    buf.flush().map_err(werr)?;
    drop(buf);
    publish::publish(tmp, &dest).map_err(|e| werr(io::Error::other(e)))?;
    Ok(Written {
        artifact: Artifact {
            name,
            bytes,
            sha256,
        },
        manifest,
    })
}

/// A bundle unpacked on this machine.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub dir: PathBuf,
    pub manifest: BundleManifest,
}

impl Unpacked {
    /// gdb's debug-file-directory, and the symbolizer's objects by build-id.
    pub fn debug_dir(&self) -> PathBuf {
        self.dir.join("debug")
    }

    /// The files the bundle lists in the build-id store that are not on this machine yet:
    /// (`s3://` URL, where it goes, its sha256).
    pub fn to_fetch(&self) -> Vec<(String, PathBuf, String)> {
        self.manifest
            .files
            .iter()
            .filter_map(|f| {
                let url = f.store.clone()?;
                if !inside_bundle(&f.stored) {
                    return None;
                }
                let dest = self.dir.join(&f.stored);
                (!dest.is_file()).then(|| (url, dest, f.sha256.clone()))
            })
            .collect()
    }

    /// The object the bundle holds for `build_id` (else for `path` when the core recorded no
    /// build-id), on this machine.
    pub fn object(&self, path: &str, build_id: Option<&str>) -> Option<PathBuf> {
        self.manifest
            .files
            .iter()
            .find(|f| {
                f.kind == kind::OBJECT
                    && match build_id {
                        Some(id) => f.build_id.as_deref() == Some(id),
                        None => f.path == path,
                    }
            })
            .map(|f| self.dir.join(&f.stored))
            .filter(|p| p.is_file())
    }
}

/// Unpack `archive` into `into` (a directory that must not exist yet; made through a temporary
/// sibling and renamed, so a half-unpacked bundle is never taken for a whole one). Only regular
/// files at plain relative paths under `root/`, `debug/` and `objects/` are written; every file
/// bundle.json lists must be there with its size and sha256. An encrypted bundle
/// ([`is_encrypted`]) is decrypted with `identities` as it is read (no decrypted archive is
/// written anywhere); without them it is refused.
pub fn unpack(
    archive: &Path,
    into: &Path,
    identities: Option<&Identities>,
) -> Result<Unpacked, BundleError> {
    let rerr = |source| BundleError::Read {
        path: archive.to_path_buf(),
        source,
    };
    let file = io::BufReader::new(std::fs::File::open(archive).map_err(rerr)?);
    let gz: Box<dyn Read> = match (is_encrypted(archive), identities) {
        (false, _) => Box::new(file),
        (true, None) => {
            return Err(BundleError::Encrypted {
                path: archive.to_path_buf(),
            })
        }
        (true, Some(ids)) => Box::new(io::BufReader::with_capacity(
            pack::BUF_SIZE,
            encrypt::decrypt_named(ids, file, archive).map_err(BundleError::Decrypt)?,
        )),
    };
    unpack_from(gz, archive, into)
}

/// [`unpack`] from the archive's gzip stream (`archive` names it in errors).
fn unpack_from(gz: Box<dyn Read>, archive: &Path, into: &Path) -> Result<Unpacked, BundleError> {
    let parent = publish::parent_dir(into);
    let uerr = |source| BundleError::Unpack {
        path: into.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(parent).map_err(uerr)?;
    let tmp = tempfile::Builder::new()
        .prefix(&publish::own_prefix())
        .tempdir_in(parent)
        .map_err(uerr)?;
    let damaged = |why: String| BundleError::Damaged {
        path: archive.to_path_buf(),
        why,
    };
    let rerr = |source| BundleError::Read {
        path: archive.to_path_buf(),
        source,
    };
    let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(gz));
    let mut seen: Vec<(String, u64, String)> = Vec::new();
    let mut manifest_bytes = None;
    let mut total = 0u64;
    for entry in tar.entries().map_err(rerr)? {
        let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| damaged(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if !entry.header().entry_type().is_file() {
            continue; // directories are made as needed; links and devices are never made
        }
        if path == MANIFEST_NAME {
            let mut v = Vec::new();
            (&mut entry)
                .take(MAX_MANIFEST_BYTES)
                .read_to_end(&mut v)
                .map_err(|e| damaged(e.to_string()))?;
            manifest_bytes = Some(v);
            continue;
        }
        if !inside_bundle(&path) {
            return Err(damaged(format!("unexpected entry {path:?}")));
        }
        let size = entry.header().size().map_err(|e| damaged(e.to_string()))?;
        total = total.saturating_add(size);
        if total > MAX_UNPACKED {
            return Err(damaged(format!(
                "more than {} of files",
                human(MAX_UNPACKED)
            )));
        }
        let dest = tmp.path().join(&path);
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d).map_err(uerr)?;
        }
        let mut out = io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dest)
                .map_err(|e| damaged(format!("{path:?} twice or unwritable: {e}")))?,
        );
        let mut reader = HashingReader::new(&mut entry);
        io::copy(&mut reader, &mut out).map_err(|e| damaged(e.to_string()))?;
        out.flush().map_err(uerr)?;
        seen.push((path, reader.count(), reader.sha256()));
    }
    let bytes = manifest_bytes.ok_or_else(|| damaged(format!("no {MANIFEST_NAME}")))?;
    let manifest: BundleManifest =
        serde_json::from_slice(&bytes).map_err(|e| damaged(format!("{MANIFEST_NAME}: {e}")))?;
    if manifest.schema != SCHEMA {
        return Err(damaged(format!("schema {:?}", manifest.schema)));
    }
    // Every place bundle.json names (also for files still in the build-id store) must be a
    // plain path inside the bundle: it is joined to the cache directory, linked to, opened.
    if let Some(f) = manifest.files.iter().find(|f| !inside_bundle(&f.stored)) {
        return Err(damaged(format!(
            "{:?} is not a path inside the bundle",
            f.stored
        )));
    }
    for f in manifest.files.iter().filter(|f| f.store.is_none()) {
        match seen.iter().find(|(p, _, _)| *p == f.stored) {
            Some((_, n, sha)) if *n == f.bytes && *sha == f.sha256 => {}
            Some(_) => return Err(damaged(format!("{} does not match its sha256", f.stored))),
            None => return Err(damaged(format!("{} is missing", f.stored))),
        }
    }
    // Objects by build-id, as gdb looks executables up in a debug-file-directory.
    for f in manifest.files.iter().filter(|f| f.kind == kind::OBJECT) {
        let Some(h) = f
            .build_id
            .as_deref()
            .filter(|h| h.len() >= 2 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            continue;
        };
        let link = tmp
            .path()
            .join("debug/.build-id")
            .join(&h[..2])
            .join(&h[2..]);
        if let Some(d) = link.parent() {
            std::fs::create_dir_all(d).map_err(uerr)?;
        }
        let target = into.join(&f.stored);
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(uerr(e)),
        }
    }
    std::fs::write(tmp.path().join(MANIFEST_NAME), &bytes).map_err(uerr)?;
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, into) {
        let _ = std::fs::remove_dir_all(&kept);
        // Another process unpacked the same bundle first: theirs is as good.
        if unpacked(into).is_none() {
            return Err(uerr(e));
        }
    }
    Ok(Unpacked {
        dir: into.to_path_buf(),
        manifest,
    })
}

/// A bundle unpacked earlier into `dir` (its bundle.json is written last, so its presence means
/// the unpacking finished).
pub fn unpacked(dir: &Path) -> Option<Unpacked> {
    let bytes = std::fs::read(dir.join(MANIFEST_NAME)).ok()?;
    let manifest: BundleManifest = serde_json::from_slice(&bytes).ok()?;
    (manifest.schema == SCHEMA).then(|| Unpacked {
        dir: dir.to_path_buf(),
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(path: &str, kind: &'static str, id: Option<&str>, bytes: u64) -> Candidate {
        Candidate {
            core_path: path.into(),
            kind,
            build_id: id.map(str::to_string),
            source: PathBuf::from(path),
            bytes,
        }
    }

    #[test]
    fn each_build_id_once_at_gdbs_paths() {
        let p = plan(
            vec![
                cand("/tmp/b/prog", kind::OBJECT, Some("aabbcc"), 10),
                cand(
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    kind::OBJECT,
                    Some("1234"),
                    20,
                ),
                cand(
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    kind::OBJECT,
                    Some("1234"),
                    20,
                ),
                cand(
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    kind::DEBUG,
                    Some("1234"),
                    30,
                ),
                // The same path, another build (a second core of a rebuilt program).
                cand("/tmp/b/prog", kind::OBJECT, Some("ddeeff"), 10),
                cand("../../etc/x", kind::OBJECT, None, 1),
            ],
            vec![],
            Mode::Auto,
            DEFAULT_MAX,
        );
        let stored: Vec<&str> = p.files.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            stored,
            [
                "root/tmp/b/prog",
                "root/usr/lib/x86_64-linux-gnu/libc.so.6",
                "debug/.build-id/12/34.debug",
                "objects/ddeeff/prog",
                "objects/unknown/x",
            ]
        );
        assert_eq!(p.bytes(), 71);
    }

    #[test]
    fn over_the_limit_auto_keeps_the_programs_own_files() {
        let files = vec![
            cand("/tmp/b/prog", kind::OBJECT, Some("aa11"), 10),
            cand(
                "/lib/x86_64-linux-gnu/libc.so.6",
                kind::OBJECT,
                Some("bb22"),
                100,
            ),
            cand("/opt/app/libown.so", kind::OBJECT, Some("cc33"), 10),
        ];
        let p = plan(files.clone(), vec![], Mode::Auto, 50);
        let kept: Vec<&str> = p.files.iter().map(|(c, _)| c.core_path.as_str()).collect();
        assert_eq!(kept, ["/tmp/b/prog", "/opt/app/libown.so"]);
        assert_eq!(p.left_out.len(), 1);
        assert_eq!(p.left_out[0].path, "/lib/x86_64-linux-gnu/libc.so.6");
        assert!(
            p.left_out[0].why.contains("--bundle-max 50 B"),
            "{:?}",
            p.left_out
        );
        assert_eq!(plan(files.clone(), vec![], Mode::Always, 50).files.len(), 3);
        assert!(plan(files, vec![], Mode::Never, 50).files.is_empty());
    }

    #[test]
    fn sizes_in_words() {
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(7), "7 B");
    }

    #[test]
    fn a_bundle_round_trips_and_damage_is_named() {
        let src = tempfile::tempdir().unwrap();
        let a = src.path().join("prog");
        let b = src.path().join("libc.so.6");
        std::fs::write(&a, b"exe bytes").unwrap();
        std::fs::write(&b, vec![7u8; 300_000]).unwrap();
        let c = |p: &Path, core: &str, id: &str| Candidate {
            core_path: core.into(),
            kind: kind::OBJECT,
            build_id: Some(id.into()),
            source: p.to_path_buf(),
            bytes: std::fs::metadata(p).unwrap().len(),
        };
        let p = plan(
            vec![
                c(&a, "/build/prog", "abcdef"),
                c(&b, "/lib/libc.so.6", "0102"),
            ],
            vec![LeftOut {
                path: "/lib/gone.so".into(),
                build_id: None,
                why: "not found".into(),
            }],
            Mode::Auto,
            DEFAULT_MAX,
        );
        let out = tempfile::tempdir().unwrap();
        let dir = LocalDir::open(out.path()).unwrap();
        let w = write(&dir, p, &[]).unwrap();
        assert_eq!(w.artifact.name, "bundle.tar.gz");
        let archive = dir.path_of(&w.artifact.name);
        let cache = tempfile::tempdir().unwrap();
        let u = unpack(&archive, &cache.path().join("b1"), None).unwrap();
        assert_eq!(u.manifest, w.manifest);
        assert_eq!(
            std::fs::read(u.dir.join("root/build/prog")).unwrap(),
            b"exe bytes"
        );
        let by_id = u.debug_dir().join(".build-id/ab/cdef");
        assert_eq!(std::fs::read(by_id).unwrap(), b"exe bytes");
        assert_eq!(
            u.object("/x", Some("0102")),
            Some(u.dir.join("root/lib/libc.so.6"))
        );
        assert_eq!(u.manifest.left_out[0].path, "/lib/gone.so");
        assert!(unpacked(&u.dir).is_some());

        // A bundle.json naming a place outside the bundle is refused.
        assert!(inside_bundle("root/lib/libc.so.6"));
        for bad in [
            "../x",
            "root/../../etc/passwd",
            "bundle.json",
            "root",
            "/root/x",
            "root//x",
        ] {
            assert!(!inside_bundle(bad), "{bad}");
        }

        // A truncated archive is named as damaged and leaves nothing behind.
        let bytes = std::fs::read(&archive).unwrap();
        let cut = cache.path().join("cut.tar.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = unpack(&cut, &cache.path().join("b2"), None).unwrap_err();
        assert!(
            matches!(e, BundleError::Damaged { .. } | BundleError::Read { .. }),
            "{e}"
        );
        assert!(!cache.path().join("b2").exists());
    }

    #[test]
    fn an_encrypted_bundle_round_trips_and_needs_its_identity() {
        let src = tempfile::tempdir().unwrap();
        let a = src.path().join("prog");
        std::fs::write(&a, vec![3u8; 700_000]).unwrap();
        let cand = Candidate {
            core_path: "/build/prog".into(),
            kind: kind::OBJECT,
            build_id: Some("abcdef".into()),
            source: a.clone(),
            bytes: 700_000,
        };
        let (sk, pk) = crate::artifacts::encrypt::tests::keypair();
        let (other, _) = crate::artifacts::encrypt::tests::keypair();
        let key = src.path().join("key.txt");
        std::fs::write(&key, format!("{sk}\n")).unwrap();
        let wrong = src.path().join("wrong.txt");
        std::fs::write(&wrong, format!("{other}\n")).unwrap();
        let r = [Recipient::parse(&pk).unwrap()];
        let out = tempfile::tempdir().unwrap();
        let dir = LocalDir::open(out.path()).unwrap();
        let p = plan(vec![cand], vec![], Mode::Auto, DEFAULT_MAX);
        let w = write(&dir, p, &r).unwrap();
        assert_eq!(w.artifact.name, "bundle.tar.gz.age");
        assert_eq!(
            crate::artifacts::names_in(out.path()),
            ["bundle.tar.gz.age"]
        );
        let archive = dir.path_of(&w.artifact.name);
        let bytes = std::fs::read(&archive).unwrap();
        assert!(encrypt::is_age(&bytes));
        assert_eq!(w.artifact.bytes, bytes.len() as u64);
        assert_eq!(w.artifact.sha256, pack::sha256_hex(&bytes));
        // A second bundle in the same directory gets a stem of its own.
        let p = plan(Vec::new(), vec![], Mode::Auto, DEFAULT_MAX);
        assert_eq!(
            write(&dir, p, &r).unwrap().artifact.name,
            "bundle-2.tar.gz.age"
        );

        let cache = tempfile::tempdir().unwrap();
        let e = unpack(&archive, &cache.path().join("none"), None).unwrap_err();
        assert!(matches!(e, BundleError::Encrypted { .. }), "{e}");
        assert!(e.to_string().contains("--identity"), "{e}");
        let ids = Identities::from_file(&wrong).unwrap();
        let e = unpack(&archive, &cache.path().join("wrong"), Some(&ids)).unwrap_err();
        assert!(e.to_string().contains("none of the identities"), "{e}");
        let ids = Identities::from_file(&key).unwrap();
        let u = unpack(&archive, &cache.path().join("b"), Some(&ids)).unwrap();
        assert_eq!(u.manifest, w.manifest);
        assert_eq!(
            std::fs::read(u.dir.join("root/build/prog")).unwrap(),
            vec![3u8; 700_000]
        );
        let names = crate::artifacts::names_in(cache.path());
        assert_eq!(names, ["b"], "nothing else left in the cache");

        // Cut short: damaged, nothing left behind.
        let cut = cache.path().join("cut.tar.gz.age");
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let e = unpack(&cut, &cache.path().join("b2"), Some(&ids)).unwrap_err();
        assert!(
            matches!(e, BundleError::Damaged { .. } | BundleError::Read { .. }),
            "{e}"
        );
        assert!(!cache.path().join("b2").exists());
    }
}
