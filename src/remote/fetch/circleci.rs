//! CircleCI as a fetch source: `GET {base}/api/v1.1/project/:vcs/:org/:repo/:build/artifacts`
//! lists a build's artifacts (a JSON array of `{path, pretty_path, node_index, url}`), and each
//! `url` is downloaded with a plain GET (a `Range` request to resume). The token, from
//! `CIRCLE_TOKEN`, travels only in the `Circle-Token` header, never in a URL, and is never
//! printed: messages show URLs through `redact_url`. It goes only to the API's own host and to
//! CircleCI's artifact hosts (`circleci.com`, `circle-artifacts.com` and their sub-domains): a
//! listing that points elsewhere does not get it.
//!
//! ureq is used rather than the SDK's hyper stack: it is blocking, so fetch's worker threads use
//! it directly, it shares rustls and ring with the SDK, and it needs no feature of `s3`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use super::{FetchError, Remote, RemoteFile};
use crate::remote::target::redact_url;

/// One build's artifacts on CircleCI.
pub struct CircleCi {
    list_url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for CircleCi {
    // By hand, so the token can never reach a `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircleCi")
            .field("list_url", &self.list_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct Artifact {
    path: String,
    url: String,
    #[serde(default)]
    node_index: Option<u64>,
}

impl CircleCi {
    pub fn new(
        base: &str,
        vcs: &str,
        org: &str,
        repo: &str,
        build: u64,
        token: Option<String>,
    ) -> CircleCi {
        let config = crate::remote::http::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            // A 4xx/5xx is an error we report with its status, not a body to save.
            .http_status_as_error(true)
            .build();
        CircleCi {
            list_url: format!(
                "{}/api/v1.1/project/{vcs}/{org}/{repo}/{build}/artifacts",
                base.trim_end_matches('/')
            ),
            token: token.filter(|t| !t.is_empty()),
            agent: config.into(),
        }
    }

    fn request(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut req = self.agent.get(url).header("Accept", "application/json");
        if let Some(t) = &self.token {
            if token_may_go_to(&self.list_url, url) {
                req = req.header("Circle-Token", t);
            }
        }
        req
    }
}

/// The host of an `http(s)://` URL, lower-cased, without user info or port.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let auth = rest.split(['/', '?', '#']).next()?;
    let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether the token may be sent with a request to `url`: the API's host, or CircleCI's.
fn token_may_go_to(api_url: &str, url: &str) -> bool {
    let Some(host) = host_of(url) else {
        return false;
    };
    let circle = ["circleci.com", "circle-artifacts.com"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")));
    circle || host_of(api_url).is_some_and(|api| api == host)
}

/// A ureq error with the URL (which may carry a query string) left out of its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

fn http_err(e: ureq::Error) -> super::BoxError {
    let msg = match e {
        ureq::Error::StatusCode(code) => format!("HTTP status {code}"),
        ureq::Error::Io(io) => format!("{io}"),
        other => redact_url(&other.to_string()),
    };
    Box::new(HttpError(msg))
}

impl Remote for CircleCi {
    fn list(&self) -> Result<Vec<RemoteFile>, FetchError> {
        let shown = redact_url(&self.list_url);
        let list_err = |source| FetchError::List {
            url: shown.clone(),
            source,
        };
        let mut resp = self
            .request(&self.list_url)
            .call()
            .map_err(|e| list_err(http_err(e)))?;
        let mut text = String::new();
        resp.body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .map_err(|e| list_err(Box::new(e)))?;
        let artifacts: Vec<Artifact> =
            serde_json::from_str(&text).map_err(|e| list_err(Box::new(e)))?;
        // Parallel jobs of one build (node_index) may each store the same path: keep them apart.
        let parallel = artifacts.iter().any(|a| a.node_index.unwrap_or(0) != 0);
        Ok(artifacts
            .into_iter()
            .map(|a| RemoteFile {
                name: match (parallel, a.node_index) {
                    (true, Some(n)) => format!("{n}/{}", a.path),
                    _ => a.path,
                },
                bytes: None,
                display: redact_url(&a.url),
                locator: a.url,
            })
            .collect())
    }

    fn get(
        &self,
        file: &RemoteFile,
        offset: u64,
        out: &mut File,
        out_path: &Path,
    ) -> Result<(), FetchError> {
        let dl_err = |source| FetchError::Download {
            url: file.display.clone(),
            source,
        };
        let write_err = |source| FetchError::Write {
            path: out_path.to_path_buf(),
            source,
        };
        let mut req = self.request(&file.locator);
        if offset > 0 {
            req = req.header("Range", &format!("bytes={offset}-"));
        }
        let mut resp = match req.call() {
            // Already complete: the server has nothing past the end.
            Err(ureq::Error::StatusCode(416)) => return Ok(()),
            r => r.map_err(|e| dl_err(http_err(e)))?,
        };
        if offset > 0 && resp.status().as_u16() != 206 {
            out.set_len(0)
                .and_then(|_| io::Seek::rewind(out))
                .map_err(write_err)?;
        }
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(dl_err(Box::new(e))),
            };
            out.write_all(&buf[..n]).map_err(write_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_to_circleci_hosts_only() {
        let api = "https://circleci.com/api/v1.1/project/github/o/r/1/artifacts";
        for ok in [
            "https://output.circle-artifacts.com/output/job/x/artifacts/0/a",
            "https://circleci.com/x",
            "https://CircleCI.com:443/x",
            "https://user@circle-artifacts.com/x",
        ] {
            assert!(token_may_go_to(api, ok), "{ok}");
        }
        for no in [
            "https://evil.example/x",
            "https://circleci.com.evil.example/x",
            "https://evilcircleci.com/x",
            "https://circleci.com@evil.example/x",
            "not a url",
        ] {
            assert!(!token_may_go_to(api, no), "{no}");
        }
        let local = "http://127.0.0.1:8080/api/v1.1/project/github/o/r/1/artifacts";
        assert!(token_may_go_to(local, "http://127.0.0.1:8080/files/0"));
        assert!(!token_may_go_to(local, "http://localhost:8080/files/0"));
        assert_eq!(host_of("http://[::1]:80/x").as_deref(), Some("::1"));
    }
}
