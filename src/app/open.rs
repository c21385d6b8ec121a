//! A crash to read on this machine, from what `bt` and `debug` are given: an artifacts
//! directory (local or fetched), a stored `.core.gz` in one, or a raw core. A stored core is
//! decompressed into the cache once (checked against the manifest's sha256 when the directory
//! lists it), the directory's debug bundles are unpacked there once; later calls reuse both.
//! Encrypted ones (`.age`) are decrypted with `--identity` as they are read, and a cached copy
//! of one is served only to an identity that opens the stored file.
//! The cache is `$CORECATCH_CACHE`, else `$XDG_CACHE_HOME/corecatch`, else
//! `$HOME/.cache/corecatch`.

use crate::artifacts::bundle::{self, Unpacked};
use crate::artifacts::encrypt::Identities;
use crate::artifacts::manifest::{self, Manifest};
use crate::artifacts::pack;
use crate::error::chain;
use std::io;
use std::path::{Path, PathBuf};

/// What was opened.
pub(super) struct Opened {
    /// Raw cores on this machine, in the order the directory lists them, each with the path it
    /// was stored as (what reports name).
    pub cores: Vec<(PathBuf, PathBuf)>,
    /// The debug bundles of the directory, unpacked.
    pub bundles: Vec<Unpacked>,
    /// Said once: bundles that could not be used.
    pub notes: Vec<String>,
}

impl Opened {
    /// Where the symbolizer looks first: each bundle's objects by build-id and debug files.
    pub fn bundle_dirs(&self) -> Vec<PathBuf> {
        self.bundles.iter().map(Unpacked::debug_dir).collect()
    }
}

/// The cache directory.
pub(super) fn cache_root() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("CORECATCH_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("corecatch")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/corecatch")))
        .unwrap_or_else(|| std::env::temp_dir().join("corecatch-cache"))
}

/// A file name without directories (`core.1.x.core.gz`, not `../x` or `a/b`).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// A stored core as `bt` and `debug` read it: its files in order (the one file, or its parts
/// `.000`, `.001`, …), its codec, and the manifest's SHA-256 of the whole stored stream.
struct Stored {
    /// The stored core's name (what reports show): the file, or the parts' common name.
    name: PathBuf,
    files: Vec<PathBuf>,
    codec: pack::Codec,
    /// Stored with `--encrypt-to` (`.age`).
    encrypted: bool,
    sha256: Option<String>,
}

/// How a file name says it holds a stored core: `<x>.core.gz` or `<x>.core.zst`, whole or as
/// part `NNN` (`<x>.core.gz.000`): (the stored core's name, its codec, the part's number).
fn stored_name(name: &str) -> Option<(&str, pack::Codec, Option<usize>)> {
    let (whole, part) = match name.rsplit_once('.') {
        Some((w, n)) if n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
            (w, n.parse().ok())
        }
        _ => (name, None),
    };
    let compressed = whole.strip_suffix(".age").unwrap_or(whole);
    let codec = if compressed.ends_with(".core.gz") {
        pack::Codec::Gzip
    } else if compressed.ends_with(".core.zst") {
        pack::Codec::Zstd {
            level: pack::Codec::ZSTD_DEFAULT_LEVEL,
        }
    } else {
        return None;
    };
    Some((whole, codec, part))
}

/// The stored cores among the file `names` of `dir` (a listing, no manifest): whole files, and
/// parts grouped under their common name in order, a group only when its parts run from 000
/// without a gap.
fn stored_in(dir: &Path, names: &[String]) -> Vec<Stored> {
    // Per stored name: its codec and its files (part number, name; a whole file is usize::MAX).
    type Files<'a> = (pack::Codec, Vec<(usize, &'a str)>);
    let mut by_name: std::collections::BTreeMap<&str, Files<'_>> = Default::default();
    for n in names {
        if let Some((whole, codec, part)) = stored_name(n) {
            let e = by_name.entry(whole).or_insert((codec, Vec::new()));
            e.1.push((part.unwrap_or(usize::MAX), n.as_str()));
        }
    }
    let mut out = Vec::new();
    for (whole, (codec, mut files)) in by_name {
        files.sort();
        let whole_file = files.iter().find(|(i, _)| *i == usize::MAX);
        let files: Vec<&str> = match whole_file {
            Some((_, n)) => vec![n],
            None if files.iter().enumerate().all(|(k, (i, _))| k == *i) => {
                files.iter().map(|(_, n)| *n).collect()
            }
            None => continue,
        };
        out.push(Stored {
            name: dir.join(whole),
            files: files.iter().map(|n| dir.join(n)).collect(),
            codec,
            encrypted: whole.ends_with(".age"),
            sha256: None,
        });
    }
    out
}

/// The stored cores a manifest lists, each with its parts in the order recorded.
fn stored_listed(dir: &Path, entries: &[&manifest::ManifestEntry]) -> Vec<Stored> {
    let mut out: Vec<(Stored, Vec<(usize, PathBuf)>)> = Vec::new();
    for e in entries.iter().filter(|e| manifest::kind::is_core(&e.kind)) {
        let (name, index, sha) = match &e.core {
            Some(c) if plain_name(&c.name) => (c.name.clone(), c.index, c.sha256.clone()),
            _ => (e.path.clone(), 0, e.sha256.clone()),
        };
        let codec = stored_name(&name)
            .map(|(_, c, _)| c)
            .unwrap_or(pack::Codec::Gzip);
        let at = match out.iter().position(|(s, _)| s.name == dir.join(&name)) {
            Some(at) => at,
            None => {
                out.push((
                    Stored {
                        name: dir.join(&name),
                        files: Vec::new(),
                        codec,
                        encrypted: name.ends_with(".age"),
                        sha256: Some(sha),
                    },
                    Vec::new(),
                ));
                out.len() - 1
            }
        };
        out[at].1.push((index, dir.join(&e.path)));
    }
    out.into_iter()
        .map(|(mut s, mut files)| {
            files.sort();
            s.files = files.into_iter().map(|(_, p)| p).collect();
            s
        })
        .collect()
}

/// [`open`], its notes and any error said on stderr: what `bt` and `debug` start with.
pub(super) fn open_and_say(target: &Path, identity: Option<&Path>) -> Option<Opened> {
    match open(target, identity) {
        Ok(o) => {
            for n in &o.notes {
                crate::error::warn(n);
            }
            Some(o)
        }
        Err(e) => {
            crate::error::warn(e);
            None
        }
    }
}

/// The build-id store's connection when none is given: the endpoint and credentials from the
/// environment, as the SDK reads them.
fn env_connection() -> crate::remote::target::Connection {
    crate::remote::target::Connection {
        endpoint_url: None,
        max_attempts: 3,
        initial_backoff: std::time::Duration::from_millis(500),
    }
}

/// Open `target`: an artifacts directory (every core its manifest lists, else every
/// `*.core.gz` in it), a `.core.gz` (with its directory's bundles), or a raw core (no bundle).
pub(super) fn open(target: &Path, identity: Option<&Path>) -> Result<Opened, String> {
    open_with(target, &env_connection(), identity)
}

/// The bundles of the artifacts directory `dir` unpacked into the cache, with the files they
/// keep in the build-id store (`conn`) downloaded: what `fetch` does so that `bt` and `debug`
/// then need no network. An encrypted bundle is unpacked only with `identities` (else a note
/// says it was left for `bt`/`debug --identity`). Returns what could not be done.
pub(super) fn prefetch_bundles(
    dir: &Path,
    conn: &crate::remote::target::Connection,
    identities: Option<&Identities>,
) -> Vec<String> {
    let listed = match manifest::Manifest::load(dir) {
        Ok(Some(m)) => m,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![chain(&e)],
    };
    let cache = cache_root();
    let mut notes = Vec::new();
    for e in listed
        .artifacts
        .iter()
        .filter(|e| manifest::kind::is_bundle(&e.kind) && plain_name(&e.path))
    {
        let path = dir.join(&e.path);
        if bundle::is_encrypted(&path) && identities.is_none() {
            notes.push(format!(
                "the debug bundle {} is encrypted: not unpacked (`fetch --identity KEY` unpacks \
                 it now; `bt` and `debug --identity KEY` do when they first read it, fetching \
                 any files it keeps in a build-id store then)",
                path.display()
            ));
            continue;
        }
        let r = unpacked_bundle(&path, Some(&e.sha256), &cache, identities)
            .and_then(|u| fetch_referenced(&u, conn));
        if let Err(why) = r {
            notes.push(format!("the debug bundle {}: {why}", path.display()));
        }
    }
    notes
}

fn open_with(
    target: &Path,
    conn: &crate::remote::target::Connection,
    identity: Option<&Path>,
) -> Result<Opened, String> {
    let meta =
        std::fs::metadata(target).map_err(|e| format!("cannot read {}: {e}", target.display()))?;
    let given = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir: Option<&Path> = if meta.is_dir() {
        Some(target)
    } else if stored_name(&given).is_some() && meta.is_file() {
        target.parent().filter(|p| !p.as_os_str().is_empty())
    } else {
        return Ok(Opened {
            cores: vec![(target.to_path_buf(), target.to_path_buf())],
            bundles: Vec::new(),
            notes: Vec::new(),
        });
    };
    let dir = dir.unwrap_or(Path::new("."));
    let listed: Option<Manifest> = match manifest::Manifest::load(dir) {
        Ok(m) => m,
        Err(e) if meta.is_dir() => return Err(chain(&e)),
        Err(_) => None, // a lone .core.gz beside a damaged manifest is still read
    };
    // Artifacts are files directly in the directory: a (fetched, untrusted) manifest naming
    // anything else is not followed.
    let entries: Vec<&manifest::ManifestEntry> = listed
        .as_ref()
        .map(|m| m.artifacts.iter().filter(|e| plain_name(&e.path)).collect())
        .unwrap_or_default();
    let sha_of = |name: &str| {
        entries
            .iter()
            .find(|e| e.path == name)
            .map(|e| e.sha256.clone())
    };
    let mut stored = if listed.is_some() {
        stored_listed(dir, &entries)
    } else {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        stored_in(dir, &names)
    };
    if !meta.is_dir() {
        // The one core the file given is (part of).
        let (whole, _, _) = stored_name(&given).unwrap_or_default();
        stored.retain(|s| s.name == dir.join(whole));
        if stored.is_empty() {
            stored = stored_in(dir, std::slice::from_ref(&given));
        }
    }
    if stored.is_empty() {
        return Err(format!(
            "{} holds no stored core (*.core.gz, *.core.zst)",
            if meta.is_dir() { target } else { dir }.display()
        ));
    }
    let cache = cache_root();
    let identities = match (identity, stored.iter().find(|s| s.encrypted)) {
        (Some(path), _) => Some(Identities::from_file(path).map_err(|e| chain(&e))?),
        (None, Some(s)) => {
            return Err(format!(
                "{} is encrypted (age): give the identity that decrypts it with --identity FILE",
                s.name.display()
            ))
        }
        (None, None) => None,
    };
    let mut cores = Vec::new();
    for s in &stored {
        cores.push((
            decompressed(s, identities.as_ref(), &cache)?,
            s.name.clone(),
        ));
    }
    let mut bundles = Vec::new();
    let mut notes = Vec::new();
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| manifest::kind::is_bundle(&e.kind))
        .map(|e| e.path.clone())
        .collect();
    if listed.is_none() {
        if let Ok(rd) = std::fs::read_dir(dir) {
            names.extend(rd.filter_map(|e| e.ok()).filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let archive = n.ends_with(".tar.gz") || n.ends_with(".tar.gz.age");
                (n.starts_with(bundle::STEM) && archive).then_some(n)
            }));
            names.sort();
        }
    }
    for name in names {
        let path = dir.join(&name);
        match unpacked_bundle(&path, sha_of(&name).as_deref(), &cache, identities.as_ref()) {
            Ok(u) => {
                if let Err(e) = fetch_referenced(&u, conn) {
                    notes.push(format!("the debug bundle {}: {e}", path.display()));
                }
                bundles.push(u)
            }
            Err(e) => notes.push(format!(
                "the debug bundle {} is not used: {e}",
                path.display()
            )),
        }
    }
    if bundles.is_empty() && notes.is_empty() {
        notes.push(format!(
            "{} holds no debug bundle: the files of this machine are used where their \
             build-ids match",
            dir.display()
        ));
    }
    Ok(Opened {
        cores,
        bundles,
        notes,
    })
}

/// The sha256 of a file, when the manifest does not say it.
fn file_sha(path: &Path) -> Result<String, String> {
    pack::sha256_file(path)
        .map(|(_, s)| s)
        .map_err(|e| chain(&e))
}

/// The bundle at `path` unpacked in the cache (`bundles/<sha256>`), unpacked now if it is not;
/// an encrypted one only with `identities` that open it (also when it is cached: its header is
/// read to check that, the payload is not).
fn unpacked_bundle(
    path: &Path,
    sha: Option<&str>,
    cache: &Path,
    identities: Option<&Identities>,
) -> Result<Unpacked, String> {
    if bundle::is_encrypted(path) {
        let Some(ids) = identities else {
            return Err("it is encrypted (age): give its identity with --identity FILE".into());
        };
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        crate::artifacts::encrypt::decrypt_named(ids, file, path).map_err(|e| chain(&e))?;
    }
    let actual = || file_sha(path);
    // Without the manifest's word the file's own hash is the key: computed once.
    let (sha, checked) = match sha {
        Some(s) => (s.to_string(), false),
        None => (actual()?, true),
    };
    let into = cache.join("bundles").join(&sha);
    if let Some(u) = bundle::unpacked(&into) {
        return Ok(u);
    }
    if !checked {
        let a = actual()?;
        if a != sha {
            return Err(format!("its sha256 is {a}, the manifest says {sha}"));
        }
    }
    bundle::unpack(path, &into, identities).map_err(|e| chain(&e))
}

/// The files a bundle keeps in the build-id store (`--bundle-store`), downloaded into it once
/// through `conn`, each checked against bundle.json's sha256.
fn fetch_referenced(u: &Unpacked, conn: &crate::remote::target::Connection) -> Result<(), String> {
    let wanted = u.to_fetch();
    if wanted.is_empty() {
        return Ok(());
    }
    let objects: Vec<(String, PathBuf)> = wanted
        .iter()
        .map(|(url, dest, _)| (url.clone(), dest.clone()))
        .collect();
    let mut failed = Vec::new();
    for ((url, dest, sha), r) in wanted
        .iter()
        .zip(crate::remote::get_objects(&objects, conn))
    {
        let checked = r.and_then(|()| {
            let actual = file_sha(dest)?;
            if actual == *sha {
                Ok(())
            } else {
                let _ = std::fs::remove_file(dest);
                Err(format!("its sha256 is {actual}, the bundle says {sha}"))
            }
        });
        if let Err(e) = checked {
            failed.push(format!("{url}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of its files in the build-id store could not be fetched: {}",
            failed.len(),
            failed.join("; ")
        ))
    }
}

/// The raw core of a stored core, decompressed in the cache (`cores/<sha256>.core`, holes
/// kept sparse) if it is not there yet; the key is the manifest's SHA-256 of the whole stored
/// stream (else its own, computed), checked again as it is read.
fn decompressed(
    stored: &Stored,
    identities: Option<&Identities>,
    cache: &Path,
) -> Result<PathBuf, String> {
    let shown = stored.name.display();
    let sha = match &stored.sha256 {
        Some(s) => s.clone(),
        None => joined_sha(&stored.files)?,
    };
    let dir = cache.join("cores");
    let dest = dir.join(format!("{sha}.core"));
    if dest.is_file() {
        // A cached copy of an encrypted core is served only to an identity that opens it: its
        // header is read (the payload is not) to check that.
        if let (true, Some(ids)) = (stored.encrypted, identities) {
            crate::artifacts::encrypt::decrypt_named(ids, joined(&stored.files)?, &stored.name)
                .map_err(|e| chain(&e))?;
        }
        return Ok(dest);
    }
    let err = |e: io::Error| format!("cannot decompress {shown} into {}: {e}", dir.display());
    std::fs::create_dir_all(&dir).map_err(err)?;
    let mut hashing = pack::HashingReader::new(io::BufReader::new(joined(&stored.files)?));
    let mut tmp = crate::artifacts::publish::temp_in(&dir, ".core").map_err(err)?;
    let damaged = |e: &dyn std::error::Error| format!("{shown} is damaged: {}", chain(e));
    let compressed: Box<dyn io::Read + '_> = match (stored.encrypted, identities) {
        (false, _) => Box::new(&mut hashing),
        (true, Some(ids)) => Box::new(io::BufReader::new(
            crate::artifacts::encrypt::decrypt_named(ids, &mut hashing, &stored.name)
                .map_err(|e| chain(&e))?,
        )),
        (true, None) => return Err(format!("{shown} is encrypted: give --identity FILE")),
    };
    // Whole zero pages become holes, as the kernel leaves them in a core.
    match stored.codec {
        pack::Codec::Gzip => crate::source::systemd::format::copy_sparse(
            flate2::read::MultiGzDecoder::new(compressed),
            tmp.as_file_mut(),
        )
        .map_err(|e| damaged(&e))?,
        pack::Codec::Zstd { .. } => {
            let decoder = zstd::stream::read::Decoder::new(compressed).map_err(|e| damaged(&e))?;
            crate::source::systemd::format::copy_sparse(decoder, tmp.as_file_mut())
                .map_err(|e| damaged(&e))?
        }
    };
    // The decoder may stop at the end of the last frame before reading the file's end.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| damaged(&e))?;
    let actual = hashing.sha256();
    if actual != sha {
        return Err(format!(
            "{shown} has sha256 {actual}, the manifest says {sha}: it is damaged or was replaced"
        ));
    }
    crate::artifacts::publish::publish(tmp, &dest).map_err(|e| err(io::Error::other(e)))?;
    Ok(dest)
}

/// The files of a stored core, read one after the other.
fn joined(files: &[PathBuf]) -> Result<Box<dyn io::Read>, String> {
    let mut r: Box<dyn io::Read> = Box::new(io::empty());
    for f in files {
        let file =
            std::fs::File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        r = Box::new(io::Read::chain(r, file));
    }
    Ok(r)
}

/// SHA-256 of the files concatenated.
fn joined_sha(files: &[PathBuf]) -> Result<String, String> {
    let mut h = pack::HashingReader::new(joined(files)?);
    io::copy(&mut h, &mut io::sink()).map_err(|e| format!("cannot read a stored core: {e}"))?;
    Ok(h.sha256())
}
