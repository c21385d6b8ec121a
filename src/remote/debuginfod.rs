//! (feature `debuginfod`) The debuginfod client: files by build-id from the servers in
//! `DEBUGINFOD_URLS` (`GET URL/buildid/<hex>/debuginfo`, `.../executable`), behind
//! [`crate::backtrace::Fetcher`], with elfutils' client conventions: `DEBUGINFOD_TIMEOUT`,
//! `DEBUGINFOD_MAXSIZE`, and the cache elfutils' client and gdb share
//! (`DEBUGINFOD_CACHE_PATH`, else `$XDG_CACHE_HOME/debuginfod_client`, else
//! `$HOME/.cache/debuginfod_client`; files at `CACHE/<hex>/debuginfo` and
//! `CACHE/<hex>/executable`). The environment is read once, by [`from_env`]; what it says is
//! parsed by the pure functions here ([`Config::from_vars`]), which do no I/O.
//!
//! A cached file is used without a request. A download goes to a temporary file in its cache
//! directory, counted against `DEBUGINFOD_MAXSIZE` as it streams, is parsed as ELF and its
//! build-id compared with the one asked for, and only then renamed into place: a partial or
//! wrong file is never cached. Requests run in parallel, one thread each, at most
//! [`MAX_PARALLEL`] at once, and never past the caller's deadline. A server that cannot be
//! reached (refused, timed out, no such host) is not asked again for the rest of the batch.
//! Every failure is a warning naming the URL (server and build-id); none fails the caller.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backtrace::{FetchKind, FetchRequest, Fetched, Fetcher};
use crate::modules::hex;
use crate::symbolize::loader;

/// Requests in flight at once, at most.
pub const MAX_PARALLEL: usize = 8;
/// elfutils' default `DEBUGINFOD_TIMEOUT`, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 90;
/// elfutils' timeout is the time a server has to deliver this much (or the whole file).
const TIMEOUT_BYTES: u64 = 100 << 10;

/// The client's settings, as the environment gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Server URL prefixes, `http://` or `https://`, without a trailing `/`, in order.
    pub servers: Vec<String>,
    /// `DEBUGINFOD_TIMEOUT`: `None` is no timeout (zero or negative).
    pub timeout: Option<Duration>,
    /// `DEBUGINFOD_MAXSIZE`: `None` is no limit (unset or 0).
    pub max_size: Option<u64>,
    /// Where files are cached; `None` when no variable names a place.
    pub cache: Option<PathBuf>,
    /// What was wrong with the variables (ignored entries, unreadable numbers), as warnings.
    pub notes: Vec<String>,
}

impl Config {
    /// The settings from `var` (the environment's lookup); `None` when `DEBUGINFOD_URLS` is
    /// unset or blank: then nothing is ever asked.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Option<Config> {
        let text = |name: &str| var(name).map(|v| v.to_string_lossy().into_owned());
        let urls = text("DEBUGINFOD_URLS")?;
        if urls.trim().is_empty() {
            return None;
        }
        let (servers, mut notes) = parse_urls(&urls);
        let timeout = parse_timeout(text("DEBUGINFOD_TIMEOUT").as_deref()).unwrap_or_else(|n| {
            notes.push(n);
            Some(Duration::from_secs(DEFAULT_TIMEOUT_SECS))
        });
        let max_size = parse_max_size(text("DEBUGINFOD_MAXSIZE").as_deref()).unwrap_or_else(|n| {
            notes.push(n);
            None
        });
        let cache = cache_dir(
            var("DEBUGINFOD_CACHE_PATH"),
            var("XDG_CACHE_HOME"),
            var("HOME"),
        );
        Some(Config {
            servers,
            timeout,
            max_size,
            cache,
            notes,
        })
    }
}

/// `DEBUGINFOD_URLS`: space-separated URL prefixes. Only `http://` and `https://` ones are
/// kept (a trailing `/` dropped, repeats once); elfutils' `ima:` policy tags are skipped
/// silently, anything else with a note.
pub fn parse_urls(s: &str) -> (Vec<String>, Vec<String>) {
    let mut servers: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for word in s.split_ascii_whitespace() {
        if word.starts_with("ima:") {
            continue;
        }
        let lower = word.to_ascii_lowercase();
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|p| lower.starts_with(**p))
            .map(|p| p.len());
        match scheme_len {
            Some(n) if word.len() > n => {
                let url = word.trim_end_matches('/').to_string();
                if !servers.contains(&url) {
                    servers.push(url);
                }
            }
            _ => notes.push(format!(
                "DEBUGINFOD_URLS: {} is not an http:// or https:// URL; ignored",
                word
            )),
        }
    }
    (servers, notes)
}

/// `DEBUGINFOD_TIMEOUT` in seconds: unset or blank is 90, zero or negative is no timeout.
pub fn parse_timeout(s: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(Some(Duration::from_secs(DEFAULT_TIMEOUT_SECS)));
    };
    match s.parse::<i64>() {
        Ok(n) if n <= 0 => Ok(None),
        Ok(n) => Ok(Some(Duration::from_secs(n.unsigned_abs()))),
        Err(_) => Err(format!(
            "DEBUGINFOD_TIMEOUT: {} is not a number of seconds; using {DEFAULT_TIMEOUT_SECS}",
            s
        )),
    }
}

/// `DEBUGINFOD_MAXSIZE` in bytes: unset, blank or 0 is no limit.
pub fn parse_max_size(s: Option<&str>) -> Result<Option<u64>, String> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match s.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(format!(
            "DEBUGINFOD_MAXSIZE: {} is not a number of bytes; no limit",
            s
        )),
    }
}

/// The cache directory: `DEBUGINFOD_CACHE_PATH`, else `$XDG_CACHE_HOME/debuginfod_client`,
/// else `$HOME/.cache/debuginfod_client` (empty values count as unset).
pub fn cache_dir(
    cache_path: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(cache_path)
        .or_else(|| set(xdg_cache_home).map(|x| x.join("debuginfod_client")))
        .or_else(|| set(home).map(|h| h.join(".cache").join("debuginfod_client")))
}

/// Where the file for `build_id` of `kind` is cached: `CACHE/<hex>/<kind>`.
pub fn cache_file(cache: &Path, build_id: &[u8], kind: FetchKind) -> PathBuf {
    cache.join(hex(build_id)).join(kind.as_str())
}

/// The request's URL on `server` (a prefix without a trailing `/`).
pub fn request_url(server: &str, build_id: &[u8], kind: FetchKind) -> String {
    format!("{server}/buildid/{}/{}", hex(build_id), kind.as_str())
}

/// Why one request to one server gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum DebuginfodError {
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: HTTP status {code}")]
    Status { url: String, code: u16 },
    /// Refused, timed out, no such host: the server is not asked again in this batch.
    #[error("{url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url}: {why}")]
    Http { url: String, why: String },
    #[error("{url}: {size} bytes, over DEBUGINFOD_MAXSIZE ({max})")]
    TooLarge { url: String, size: u64, max: u64 },
    #[error("{url}: less than {TIMEOUT_BYTES} bytes within DEBUGINFOD_TIMEOUT ({secs} s)")]
    Slow { url: String, secs: u64 },
    #[error("{url}: not asked: corecatch's deadline (--timeout) has passed")]
    Deadline { url: String },
    #[error("{url}: reading the answer: {source}")]
    Read { url: String, source: io::Error },
    #[error("{url}: the answer is not an ELF file")]
    NotElf { url: String },
    #[error("{url}: the answer has build-id {got}, not the one asked for")]
    WrongBuildId { url: String, got: String },
    #[error("cache {path}: {source}")]
    Cache { path: PathBuf, source: io::Error },
}

impl DebuginfodError {
    fn unreachable(&self) -> bool {
        matches!(self, DebuginfodError::Unreachable { .. })
    }
}

/// The client, over one [`Config`].
#[derive(Debug)]
pub struct Client {
    config: Config,
    agent: ureq::Agent,
}

/// A client for the servers the environment names, or `None` (nothing asked, nothing started)
/// when `DEBUGINFOD_URLS` is unset or blank.
pub fn from_env() -> Option<Arc<dyn Fetcher>> {
    let config = Config::from_vars(|name| std::env::var_os(name))?;
    Some(Arc::new(Client::new(config)))
}

impl Client {
    pub fn new(config: Config) -> Client {
        let agent = super::http::config_builder()
            .http_status_as_error(true)
            .user_agent(concat!("corecatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { config, agent }
    }

    /// Ask each server in turn for `req` until one delivers: the file, the failures in order,
    /// and the servers (indices) passed over as unreachable.
    fn download(
        &self,
        cache: &Path,
        req: &FetchRequest,
        dead: &[AtomicBool],
        deadline: Option<Instant>,
    ) -> (Option<PathBuf>, Vec<DebuginfodError>, Vec<usize>) {
        let mut failures = Vec::new();
        let mut skipped = Vec::new();
        for (n, (server, dead)) in self.config.servers.iter().zip(dead).enumerate() {
            if dead.load(Ordering::Relaxed) {
                skipped.push(n);
                continue;
            }
            let url = request_url(server, &req.build_id, req.kind);
            match self.get_one(&url, cache, req, deadline) {
                Ok(path) => return (Some(path), failures, skipped),
                Err(e) => {
                    if e.unreachable() {
                        dead.store(true, Ordering::Relaxed);
                    }
                    failures.push(e);
                }
            }
        }
        (None, failures, skipped)
    }

    /// One GET of `url`, streamed into the cache: the cached file's path.
    fn get_one(
        &self,
        url: &str,
        cache: &Path,
        req: &FetchRequest,
        deadline: Option<Instant>,
    ) -> Result<PathBuf, DebuginfodError> {
        let started = Instant::now();
        let left = deadline.map(|d| d.saturating_duration_since(started));
        if left.is_some_and(|l| l.is_zero()) {
            return Err(DebuginfodError::Deadline { url: url.into() });
        }
        let (timeout, limit) = match (self.config.timeout, left) {
            (Some(t), Some(l)) if l < t => (Some(l), Limit::Deadline),
            (Some(t), _) => (Some(t), Limit::Timeout(t.as_secs())),
            (None, l) => (l, Limit::Deadline),
        };
        let mut resp = self
            .agent
            .get(url)
            .config()
            // The whole exchange ends by the deadline; connecting and the headers by the timeout.
            .timeout_global(left)
            .timeout_connect(timeout)
            .timeout_recv_response(timeout)
            .build()
            .call()
            .map_err(|e| http_error(url, e, limit))?;
        let max = self.config.max_size;
        let length = resp.body().content_length();
        if let (Some(size), Some(max)) = (length, max) {
            if size > max {
                let url = url.into();
                return Err(DebuginfodError::TooLarge { url, size, max });
            }
        }
        let dir = cache.join(hex(&req.build_id));
        let cache_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DebuginfodError::Cache { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(cache_err(&dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".corecatch-{}-", std::process::id()))
            .tempfile_in(&dir)
            .map_err(cache_err(&dir))?;
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 256 << 10];
        let mut got: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    let url = url.into();
                    return Err(match source.kind() {
                        io::ErrorKind::TimedOut => DebuginfodError::Unreachable {
                            url,
                            why: "the answer stopped before corecatch's --timeout".into(),
                        },
                        _ => DebuginfodError::Read { url, source },
                    });
                }
            };
            got += n as u64;
            if let Some(max) = max.filter(|&m| got > m) {
                let url = url.into();
                return Err(DebuginfodError::TooLarge {
                    url,
                    size: got,
                    max,
                });
            }
            if let Some(t) = self.config.timeout {
                if got < TIMEOUT_BYTES && started.elapsed() > t {
                    let url = url.into();
                    return Err(DebuginfodError::Slow {
                        url,
                        secs: t.as_secs(),
                    });
                }
            }
            tmp.write_all(&buf[..n]).map_err(cache_err(tmp.path()))?;
        }
        tmp.flush().map_err(cache_err(tmp.path()))?;
        let obj =
            loader::load(tmp.path()).map_err(|_| DebuginfodError::NotElf { url: url.into() })?;
        if obj.info.build_id.as_deref() != Some(&req.build_id[..]) {
            let got = obj.info.build_id.as_deref().map_or("none".into(), hex);
            return Err(DebuginfodError::WrongBuildId {
                url: url.into(),
                got,
            });
        }
        drop(obj);
        let path = cache_file(cache, &req.build_id, req.kind);
        tmp.persist(&path).map_err(|e| DebuginfodError::Cache {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(path)
    }
}

/// A ureq error in words, sorted into "the server cannot be reached" and the rest. `limit`
/// says which bound the connect and response timeouts had: DEBUGINFOD_TIMEOUT or the time
/// corecatch's own deadline left.
fn http_error(url: &str, e: ureq::Error, limit: Limit) -> DebuginfodError {
    let url = url.to_string();
    let unreachable = |why: String| DebuginfodError::Unreachable {
        url: url.clone(),
        why,
    };
    match e {
        ureq::Error::StatusCode(404) => DebuginfodError::NotFound { url },
        ureq::Error::StatusCode(code) => DebuginfodError::Status { url, code },
        ureq::Error::Timeout(ureq::Timeout::Global) => Limit::Deadline.timed_out(&unreachable),
        ureq::Error::Timeout(_) => limit.timed_out(&unreachable),
        ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
            unreachable(e.to_string())
        }
        other => DebuginfodError::Http {
            url,
            why: other.to_string(),
        },
    }
}

/// What bounded a request's connect and response timeouts.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// `DEBUGINFOD_TIMEOUT`, in seconds.
    Timeout(u64),
    /// The time corecatch's `--timeout` left.
    Deadline,
}

impl Limit {
    fn timed_out(self, e: &dyn Fn(String) -> DebuginfodError) -> DebuginfodError {
        e(match self {
            Limit::Timeout(s) => format!("no answer within DEBUGINFOD_TIMEOUT ({s} s)"),
            Limit::Deadline => "no answer in the time corecatch's --timeout leaves".into(),
        })
    }
}

/// A usable cached file: a regular file with bytes (elfutils marks a failed query with an
/// empty file, which is asked for again).
fn cached(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

impl Fetcher for Client {
    fn fetch(&self, requests: &[FetchRequest], deadline: Option<Instant>) -> Fetched {
        let mut out = Fetched {
            files: vec![None; requests.len()],
            warnings: self
                .config
                .notes
                .iter()
                .map(|n| format!("debuginfod: {n}"))
                .collect(),
        };
        if self.config.servers.is_empty() {
            return out;
        }
        let Some(cache) = self.config.cache.as_deref() else {
            out.warnings.push(
                "debuginfod: no cache directory (DEBUGINFOD_CACHE_PATH, XDG_CACHE_HOME and \
                 HOME are all unset); nothing asked"
                    .into(),
            );
            return out;
        };
        let mut misses = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let path = cache_file(cache, &r.build_id, r.kind);
            if cached(&path) {
                out.files[i] = Some(path);
            } else if !misses.iter().any(|&j: &usize| requests[j] == *r) {
                misses.push(i);
            }
        }
        if misses.is_empty() {
            return out;
        }
        let dead: Vec<AtomicBool> = self
            .config
            .servers
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let queue = Mutex::new(misses.clone().into_iter());
        let results = Mutex::new(Vec::new());
        let work = || loop {
            let next = queue.lock().ok().and_then(|mut q| q.next());
            let Some(i) = next else {
                return;
            };
            let r = self.download(cache, &requests[i], &dead, deadline);
            if let Ok(mut v) = results.lock() {
                v.push((i, r));
            }
        };
        std::thread::scope(|s| {
            let threads = misses.len().min(MAX_PARALLEL);
            let mut started = 0;
            for _ in 0..threads {
                if std::thread::Builder::new().spawn_scoped(s, work).is_ok() {
                    started += 1;
                }
            }
            if started == 0 {
                work(); // no thread could be started: one after the other, here
            }
        });
        let mut results = results.into_inner().unwrap_or_default();
        results.sort_by_key(|(i, _)| *i);
        let mut skipped: Vec<Vec<String>> = vec![Vec::new(); self.config.servers.len()];
        for (i, (file, failures, not_sent)) in results {
            let found = file.is_some();
            for n in not_sent {
                let r = &requests[i];
                skipped[n].push(format!("{}/{}", hex(&r.build_id), r.kind.as_str()));
            }
            // A server without the file is worth a line only when no other one had it.
            out.warnings.extend(
                failures
                    .iter()
                    .filter(|e| !found || !matches!(e, DebuginfodError::NotFound { .. }))
                    .map(|e| format!("debuginfod: {}", crate::error::chain(e))),
            );
            out.files[i] = file;
        }
        // Repeated requests in one batch share the first one's answer.
        for (i, r) in requests.iter().enumerate() {
            if out.files[i].is_none() && !misses.contains(&i) {
                let path = cache_file(cache, &r.build_id, r.kind);
                out.files[i] = cached(&path).then_some(path);
            }
        }
        for (server, files) in self.config.servers.iter().zip(skipped) {
            if !files.is_empty() {
                out.warnings.push(format!(
                    "debuginfod: {server}: not asked for {}: it could not be reached",
                    files.join(", ")
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, OsString)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn urls_are_space_separated_http_prefixes() {
        let (s, notes) = parse_urls(
            "  http://a.example/  https://b.example:8002/x\thttp://a.example ima:enforcing \
             ftp://c.example file:///srv http:// HTTPS://D.example",
        );
        assert_eq!(
            s,
            [
                "http://a.example",
                "https://b.example:8002/x",
                "HTTPS://D.example"
            ]
        );
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("ftp://c.example"), "{notes:?}");
        assert_eq!(parse_urls(""), (vec![], vec![]));
    }

    #[test]
    fn unset_or_blank_urls_mean_no_client() {
        assert_eq!(Config::from_vars(vars(&[])), None);
        assert_eq!(
            Config::from_vars(vars(&[("DEBUGINFOD_URLS", " \t ")])),
            None
        );
        let c =
            Config::from_vars(vars(&[("DEBUGINFOD_URLS", "http://x"), ("HOME", "/h")])).unwrap();
        assert_eq!(c.servers, ["http://x"]);
        assert_eq!(c.timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.max_size, None);
        assert_eq!(c.cache, Some(PathBuf::from("/h/.cache/debuginfod_client")));
        assert!(c.notes.is_empty());
    }

    #[test]
    fn timeout_follows_elfutils() {
        assert_eq!(parse_timeout(None), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout(Some(" ")), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout(Some("5")), Ok(Some(Duration::from_secs(5))));
        assert_eq!(parse_timeout(Some(" 7 ")), Ok(Some(Duration::from_secs(7))));
        assert_eq!(parse_timeout(Some("0")), Ok(None));
        assert_eq!(parse_timeout(Some("-3")), Ok(None));
        assert!(parse_timeout(Some("5s")).unwrap_err().contains("5s"));
        let c = Config::from_vars(vars(&[
            ("DEBUGINFOD_URLS", "http://x"),
            ("DEBUGINFOD_TIMEOUT", "soon"),
        ]))
        .unwrap();
        assert_eq!(c.timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.notes.len(), 1);
    }

    #[test]
    fn max_size_zero_or_unset_is_no_limit() {
        assert_eq!(parse_max_size(None), Ok(None));
        assert_eq!(parse_max_size(Some("0")), Ok(None));
        assert_eq!(parse_max_size(Some("1048576")), Ok(Some(1 << 20)));
        assert!(parse_max_size(Some("-1")).is_err());
        assert!(parse_max_size(Some("1M")).is_err());
        let c = Config::from_vars(vars(&[
            ("DEBUGINFOD_URLS", "http://x"),
            ("DEBUGINFOD_MAXSIZE", "4096"),
        ]))
        .unwrap();
        assert_eq!(c.max_size, Some(4096));
    }

    #[test]
    fn cache_dir_precedence() {
        let o = |s: &str| Some(OsString::from(s));
        assert_eq!(
            cache_dir(o("/c"), o("/x"), o("/h")),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            cache_dir(o(""), o("/x"), o("/h")),
            Some(PathBuf::from("/x/debuginfod_client"))
        );
        assert_eq!(
            cache_dir(None, o(""), o("/h")),
            Some(PathBuf::from("/h/.cache/debuginfod_client"))
        );
        assert_eq!(cache_dir(None, None, None), None);
    }

    #[test]
    fn cache_files_and_urls_in_elfutils_layout() {
        let id = [0xde, 0xad, 0x01, 0xbe, 0xef];
        assert_eq!(
            cache_file(Path::new("/c"), &id, FetchKind::Debuginfo),
            PathBuf::from("/c/dead01beef/debuginfo")
        );
        assert_eq!(
            cache_file(Path::new("/c"), &id, FetchKind::Executable),
            PathBuf::from("/c/dead01beef/executable")
        );
        assert_eq!(
            request_url("http://s:8002/p", &id, FetchKind::Executable),
            "http://s:8002/p/buildid/dead01beef/executable"
        );
    }

    #[test]
    fn a_cached_file_is_used_without_asking() {
        let dir = tempfile::tempdir().unwrap();
        let id = vec![1u8, 2, 3];
        let file = cache_file(dir.path(), &id, FetchKind::Debuginfo);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"\x7fELF").unwrap();
        // A closed port: asking would give a warning.
        let client = Client::new(Config {
            servers: vec!["http://127.0.0.1:9".into()],
            timeout: Some(Duration::from_secs(1)),
            max_size: None,
            cache: Some(dir.path().to_path_buf()),
            notes: vec![],
        });
        let req = FetchRequest {
            build_id: id,
            kind: FetchKind::Debuginfo,
        };
        let got = client.fetch(&[req.clone(), req], None);
        assert_eq!(got.files, vec![Some(file.clone()), Some(file)]);
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
    }

    #[test]
    fn a_refused_server_is_one_warning_and_no_file() {
        let dir = tempfile::tempdir().unwrap();
        // Bound and dropped: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = format!("http://127.0.0.1:{port}");
        let client = Client::new(Config {
            servers: vec![server.clone()],
            timeout: Some(Duration::from_secs(5)),
            max_size: None,
            cache: Some(dir.path().to_path_buf()),
            notes: vec![],
        });
        let reqs = [
            FetchRequest {
                build_id: vec![0xab; 20],
                kind: FetchKind::Debuginfo,
            },
            FetchRequest {
                build_id: vec![0xcd; 20],
                kind: FetchKind::Executable,
            },
        ];
        let got = client.fetch(&reqs, Some(Instant::now() + Duration::from_secs(10)));
        assert_eq!(got.files, vec![None, None]);
        assert!(!got.warnings.is_empty());
        assert!(
            got.warnings.iter().all(|w| w.contains(&server)),
            "{:?}",
            got.warnings
        );
        assert!(std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .all(|e| std::fs::read_dir(e.path()).unwrap().next().is_none()));
    }

    #[test]
    fn past_the_deadline_nothing_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(Config {
            servers: vec!["http://192.0.2.1".into()],
            timeout: None,
            max_size: None,
            cache: Some(dir.path().to_path_buf()),
            notes: vec![],
        });
        let req = FetchRequest {
            build_id: vec![7; 20],
            kind: FetchKind::Debuginfo,
        };
        let t = Instant::now();
        let got = client.fetch(&[req], Some(Instant::now()));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(got.files, vec![None]);
        assert!(got.warnings[0].contains("deadline"), "{:?}", got.warnings);
    }

    /// A loopback HTTP server answering each request (one per connection) with
    /// `answer(path)`, the raw response; it lives as long as the test process.
    fn serve(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> String {
        use std::io::BufRead;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = io::BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = first.split(' ').nth(1).unwrap_or("").to_string();
                let _ = s.write_all(&answer(&path));
            }
        });
        url
    }

    fn response(status: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn chunked(body: &[u8]) -> Vec<u8> {
        let mut r =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for c in body.chunks(4096) {
            r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    }

    /// This test binary: an ELF file with a build-id, and that build-id.
    fn an_elf() -> (Vec<u8>, Vec<u8>) {
        let path = std::env::current_exe().unwrap();
        let id = loader::load(&path).unwrap().info.build_id.unwrap();
        (std::fs::read(path).unwrap(), id)
    }

    fn client(servers: &[&str], max_size: Option<u64>, cache: &Path) -> Client {
        Client::new(Config {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            timeout: Some(Duration::from_secs(10)),
            max_size,
            cache: Some(cache.to_path_buf()),
            notes: vec![],
        })
    }

    /// Every file under `dir`, recursively.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(20))
    }

    #[test]
    fn a_served_file_is_checked_and_cached_under_its_name_only() {
        let (elf, id) = an_elf();
        let want = format!("/buildid/{}/executable", hex(&id));
        let body = elf.clone();
        let url = serve(move |p| match p == want {
            true => response("200 OK", &body),
            false => response("404 Not Found", b""),
        });
        let dir = tempfile::tempdir().unwrap();
        let req = FetchRequest {
            build_id: id.clone(),
            kind: FetchKind::Executable,
        };
        let got = client(&[&url], None, dir.path()).fetch(&[req], soon());
        let path = cache_file(dir.path(), &id, FetchKind::Executable);
        assert_eq!(got.files, vec![Some(path.clone())], "{:?}", got.warnings);
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert!(std::fs::read(&path).unwrap() == elf);
        assert_eq!(files_under(dir.path()), vec![path]);
    }

    #[test]
    fn a_file_of_another_build_is_refused_and_not_cached() {
        let (elf, _) = an_elf();
        let url = serve(move |_| response("200 OK", &elf));
        let dir = tempfile::tempdir().unwrap();
        let req = FetchRequest {
            build_id: vec![0x11; 20],
            kind: FetchKind::Debuginfo,
        };
        let got = client(&[&url], None, dir.path()).fetch(&[req], soon());
        assert_eq!(got.files, vec![None]);
        let w = &got.warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(&format!("{url}/buildid/{}/debuginfo", "11".repeat(20))),
            "{w:?}"
        );
        assert!(w[0].contains("has build-id"), "{w:?}");
        assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());
    }

    #[test]
    fn an_answer_over_maxsize_is_refused_by_its_length_and_while_streaming() {
        let (elf, id) = an_elf();
        let body = elf.clone();
        let by_length = serve(move |_| response("200 OK", &body));
        let streamed = serve(move |_| chunked(&elf));
        let dir = tempfile::tempdir().unwrap();
        let req = FetchRequest {
            build_id: id,
            kind: FetchKind::Executable,
        };
        for url in [by_length, streamed] {
            let got = client(&[&url], Some(100_000), dir.path())
                .fetch(std::slice::from_ref(&req), soon());
            assert_eq!(got.files, vec![None]);
            let w = &got.warnings;
            assert!(
                w.len() == 1 && w[0].contains(&url) && w[0].contains("DEBUGINFOD_MAXSIZE (100000)"),
                "{w:?}"
            );
            assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());
        }
    }

    #[test]
    fn a_failing_server_is_named_and_the_next_one_asked() {
        let (elf, id) = an_elf();
        let broken = serve(|_| response("503 Service Unavailable", b"busy"));
        let without = serve(|_| response("404 Not Found", b""));
        let good = serve(move |_| response("200 OK", &elf));
        let dir = tempfile::tempdir().unwrap();
        let req = FetchRequest {
            build_id: id,
            kind: FetchKind::Executable,
        };
        let got = client(&[&broken, &without, &good], None, dir.path())
            .fetch(std::slice::from_ref(&req), soon());
        assert!(got.files[0].is_some(), "{:?}", got.warnings);
        // The 503 is worth a line; the 404 is not, another server had the file.
        let w = &got.warnings;
        assert!(
            w.len() == 1 && w[0].contains(&broken) && w[0].contains("503"),
            "{w:?}"
        );
        // Cached now: no server is asked, not even the broken one.
        let got = client(&[&broken], None, dir.path()).fetch(&[req], soon());
        assert!(
            got.files[0].is_some() && got.warnings.is_empty(),
            "{:?}",
            got.warnings
        );
    }

    #[test]
    fn a_server_that_never_answers_is_left_at_the_deadline_or_the_timeout() {
        // Connections are accepted by the kernel (the backlog) but nothing ever answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let reqs: Vec<FetchRequest> = (0u8..3)
            .map(|i| FetchRequest {
                build_id: vec![i; 20],
                kind: FetchKind::Debuginfo,
            })
            .collect();
        let mut c = client(&[&url], None, dir.path());
        c.config.timeout = None;
        let t = Instant::now();
        let got = c.fetch(&reqs, Some(Instant::now() + Duration::from_millis(800)));
        let took = t.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(got.files, vec![None, None, None]);
        assert!(
            got.warnings.iter().all(|w| w.contains(&url)),
            "{:?}",
            got.warnings
        );
        // DEBUGINFOD_TIMEOUT bounds it without a deadline.
        c.config.timeout = Some(Duration::from_secs(1));
        let t = Instant::now();
        let got = c.fetch(&reqs[..1], None);
        let took = t.elapsed();
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert!(got.warnings[0].contains(&url), "{:?}", got.warnings);
    }
}
