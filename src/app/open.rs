//! A crash to read on this machine, from what `bt` and `debug` are given: an artifacts
//! directory (local or fetched), a stored `.core.gz` in one, or a raw core. A stored core is
//! decompressed into the cache once (checked against the manifest's sha256 when the directory
//! lists it), the directory's debug bundles are unpacked there once; later calls reuse both.
//! The cache is `$CORECATCH_CACHE`, else `$XDG_CACHE_HOME/corecatch`, else
//! `$HOME/.cache/corecatch`.

use crate::artifacts::bundle::{self, Unpacked};
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

fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// [`open`], its notes and any error said on stderr: what `bt` and `debug` start with.
pub(super) fn open_and_say(target: &Path) -> Option<Opened> {
    match open(target) {
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
pub(super) fn open(target: &Path) -> Result<Opened, String> {
    open_with(target, &env_connection())
}

/// The bundles of the artifacts directory `dir` unpacked into the cache, with the files they
/// keep in the build-id store (`conn`) downloaded: what `fetch` does so that `bt` and `debug`
/// then need no network. Returns what could not be done.
pub(super) fn prefetch_bundles(
    dir: &Path,
    conn: &crate::remote::target::Connection,
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
        .filter(|e| e.kind == manifest::kind::BUNDLE)
    {
        let path = dir.join(&e.path);
        let r = unpacked_bundle(&path, Some(&e.sha256), &cache)
            .and_then(|u| fetch_referenced(&u, conn));
        if let Err(why) = r {
            notes.push(format!("the debug bundle {}: {why}", path.display()));
        }
    }
    notes
}

fn open_with(target: &Path, conn: &crate::remote::target::Connection) -> Result<Opened, String> {
    let meta =
        std::fs::metadata(target).map_err(|e| format!("cannot read {}: {e}", target.display()))?;
    let (dir, gz): (Option<&Path>, Vec<PathBuf>) = if meta.is_dir() {
        (Some(target), Vec::new())
    } else if is_gz(target) && meta.is_file() {
        (
            target.parent().filter(|p| !p.as_os_str().is_empty()),
            vec![target.to_path_buf()],
        )
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
    let mut gz = gz;
    if meta.is_dir() {
        gz = if listed.is_some() {
            entries
                .iter()
                .filter(|e| e.kind == manifest::kind::CORE_GZ)
                .map(|e| dir.join(&e.path))
                .collect()
        } else {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".core.gz"))
                .collect();
            v.sort();
            v
        };
        if gz.is_empty() {
            return Err(format!(
                "{} holds no stored core (*.core.gz)",
                dir.display()
            ));
        }
    }
    let cache = cache_root();
    let mut cores = Vec::new();
    for g in &gz {
        let name = g
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        cores.push((
            decompressed(g, sha_of(&name).as_deref(), &cache)?,
            g.clone(),
        ));
    }
    let mut bundles = Vec::new();
    let mut notes = Vec::new();
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == manifest::kind::BUNDLE)
        .map(|e| e.path.clone())
        .collect();
    if listed.is_none() {
        if let Ok(rd) = std::fs::read_dir(dir) {
            names.extend(rd.filter_map(|e| e.ok()).filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n.starts_with(bundle::STEM) && n.ends_with(".tar.gz")).then_some(n)
            }));
            names.sort();
        }
    }
    for name in names {
        let path = dir.join(&name);
        match unpacked_bundle(&path, sha_of(&name).as_deref(), &cache) {
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

/// The bundle at `path` unpacked in the cache (`bundles/<sha256>`), unpacked now if it is not.
fn unpacked_bundle(path: &Path, sha: Option<&str>, cache: &Path) -> Result<Unpacked, String> {
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
    bundle::unpack(path, &into).map_err(|e| chain(&e))
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

/// The raw core of the stored core `gz`, decompressed in the cache (`cores/<sha256>.core`,
/// holes kept sparse) if it is not there yet; `sha`: the manifest's sha256 of `gz`.
fn decompressed(gz: &Path, sha: Option<&str>, cache: &Path) -> Result<PathBuf, String> {
    let sha = match sha {
        Some(s) => s.to_string(),
        None => file_sha(gz)?,
    };
    let dir = cache.join("cores");
    let dest = dir.join(format!("{sha}.core"));
    if dest.is_file() {
        return Ok(dest);
    }
    let err = |e: io::Error| {
        format!(
            "cannot decompress {} into {}: {e}",
            gz.display(),
            dir.display()
        )
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let file = std::fs::File::open(gz).map_err(|e| format!("cannot read {}: {e}", gz.display()))?;
    let mut hashing = pack::HashingReader::new(io::BufReader::new(file));
    let mut tmp = crate::artifacts::publish::temp_in(&dir, ".core").map_err(err)?;
    // Whole zero pages become holes, as the kernel leaves them in a core.
    crate::source::systemd::format::copy_sparse(
        flate2::read::MultiGzDecoder::new(&mut hashing),
        tmp.as_file_mut(),
    )
    .map_err(|e| format!("{} is damaged: {}", gz.display(), chain(&e)))?;
    let actual = hashing.sha256();
    if actual != sha {
        return Err(format!(
            "{} has sha256 {actual}, the manifest says {sha}: it is damaged or was replaced",
            gz.display()
        ));
    }
    crate::artifacts::publish::publish(tmp, &dest).map_err(|e| err(io::Error::other(e)))?;
    Ok(dest)
}
