//! Plain types for artifacts that leave the machine, compiled with or without the `s3` feature:
//! where to (`s3://bucket/prefix`), how (upload options), what happened (the outcome), and the
//! pure checks on names that come back from a remote listing ([`safe_relative_path`]) and on
//! URLs before they are printed ([`redact_url`]). No I/O here.

use std::path::PathBuf;
use std::time::Duration;

/// An S3 bucket and a key prefix, from `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty (the bucket's root).
    pub prefix: String,
}

/// Why a `s3://` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{url:?} does not start with s3://")]
    Scheme { url: String },
    #[error("{url:?} has no bucket name")]
    NoBucket { url: String },
    #[error("bucket name {bucket:?} is not 3 to 63 lowercase letters, digits, dots and hyphens")]
    BadBucket { bucket: String },
    #[error("prefix of {url:?} has an empty, `.` or `..` segment or a control character")]
    BadPrefix { url: String },
}

impl S3Target {
    /// Parses `s3://bucket[/prefix[/]]`. The prefix is held to the same rules as fetched keys
    /// (see [`safe_relative_path`]) so an upload's keys can always be fetched back.
    pub fn parse(url: &str) -> Result<S3Target, TargetError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| TargetError::Scheme {
                url: url.to_string(),
            })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(TargetError::NoBucket {
                url: url.to_string(),
            });
        }
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(TargetError::BadBucket {
                bucket: bucket.to_string(),
            });
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() && safe_relative_path(prefix).is_err() {
            return Err(TargetError::BadPrefix {
                url: url.to_string(),
            });
        }
        Ok(S3Target {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The object key for `rel` (a `/`-separated path relative to the artifacts directory).
    pub fn key_for(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// `s3://bucket/key`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl std::fmt::Display for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Server-side encryption asked for with `--sse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sse {
    /// `AES256`: S3-managed keys.
    Aes256,
    /// `aws:kms`: KMS-managed keys (the bucket's default key).
    Kms,
}

impl Sse {
    pub fn parse(s: &str) -> Option<Sse> {
        match s {
            "AES256" => Some(Sse::Aes256),
            "aws:kms" => Some(Sse::Kms),
            _ => None,
        }
    }
}

/// How to reach the store; shared by upload and fetch. Credentials are never here: they come
/// from the SDK's default chain (environment, profile, instance role) and stay inside it.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `--endpoint-url` (else `AWS_ENDPOINT_URL`, read by the SDK). A custom endpoint means an
    /// S3-compatible store: path-style addressing is used then.
    pub endpoint_url: Option<String>,
    /// Most attempts per request (the SDK's standard retry mode: throttling, 5xx, resets).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt with jitter, up to 20 s.
    pub initial_backoff: Duration,
}

/// Smallest multipart part S3 accepts (except the last part).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's limit on parts per upload; the part size grows for files that would need more.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub const MAX_PARTS: u64 = 10_000;

/// What `--to` asks of an upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub connection: Connection,
    /// `--storage-class` (STANDARD, STANDARD_IA, GLACIER_IR, …), passed through.
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
    /// Files larger than this go up in parts of this size (at least [`MIN_PART_SIZE`]).
    pub part_size: u64,
    /// Parts in flight at once; memory use is about `part_size × concurrency`.
    pub concurrency: usize,
    /// Keep the local artifacts after upload (default). `--no-keep-local` removes each file
    /// only after every object was confirmed by HeadObject.
    pub keep_local: bool,
    /// One line per object.
    pub verbose: bool,
    /// Progress of the bytes sent (a bar on a terminal, periodic lines in logs); off with
    /// `--quiet`.
    pub progress: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            connection: Connection::default(),
            storage_class: None,
            sse: None,
            part_size: 16 << 20,
            concurrency: 4,
            keep_local: true,
            verbose: false,
            progress: true,
        }
    }
}

/// One object that made it, confirmed by HeadObject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Relative to the artifacts directory, `/`-separated.
    pub path: String,
    pub key: String,
    pub bytes: u64,
    /// `s3://bucket/key`: never a presigned URL.
    pub url: String,
}

/// One object that did not make it, and why (an error chain on one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUploaded {
    pub path: String,
    pub key: String,
    pub why: String,
}

/// What an upload did. The local directory is untouched unless `local_removed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOutcome {
    pub uploaded: Vec<Uploaded>,
    pub failed: Vec<NotUploaded>,
    /// A problem that stopped the upload before any object was tried (no S3 support in this
    /// build, no client configuration, an unreadable directory).
    pub setup_error: Option<String>,
    /// Why the local copy was kept although `--no-keep-local` was given.
    pub kept_because: Option<String>,
    pub local_removed: bool,
}

impl UploadOutcome {
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.setup_error.is_none()
    }
}

/// Why a name from a remote listing cannot become a path under the destination directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeName {
    #[error("empty name")]
    Empty,
    #[error("absolute path")]
    Absolute,
    #[error("`..` segment")]
    DotDot,
    #[error("empty or `.` segment")]
    EmptySegment,
    #[error("NUL or control character")]
    Control,
    #[error("backslash")]
    Backslash,
    #[error("longer than 1024 bytes")]
    TooLong,
}

/// `name` (an object key below the prefix, or a CircleCI artifact path) as a relative path that
/// stays inside the destination directory, or why not. Refused: empty names, absolute paths,
/// `..`, `.` or empty segments, NUL and other control characters, backslashes (a Windows
/// separator on the producer's side) and names longer than S3's 1024-byte key limit.
pub fn safe_relative_path(name: &str) -> Result<PathBuf, UnsafeName> {
    if name.is_empty() {
        return Err(UnsafeName::Empty);
    }
    if name.len() > 1024 {
        return Err(UnsafeName::TooLong);
    }
    if name.starts_with('/') {
        return Err(UnsafeName::Absolute);
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(UnsafeName::Control);
    }
    if name.contains('\\') {
        return Err(UnsafeName::Backslash);
    }
    let mut path = PathBuf::new();
    for seg in name.split('/') {
        match seg {
            ".." => return Err(UnsafeName::DotDot),
            "" | "." => return Err(UnsafeName::EmptySegment),
            s => path.push(s),
        }
    }
    Ok(path)
}

/// `url` without user info and without a query string or fragment, which is where presigned
/// URLs and some stores carry credentials. Only for printing.
pub fn redact_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..cut];
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Where `fetch` takes artifacts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchSource {
    S3(S3Target),
    /// `circleci://VCS/ORG/REPO/BUILD_NUM`.
    CircleCi {
        vcs: String,
        org: String,
        repo: String,
        build: u64,
    },
}

impl FetchSource {
    /// `s3://bucket/prefix` or `circleci://gh/ORG/REPO/BUILD_NUM` (`gh`, `github`, `bb`,
    /// `bitbucket`).
    pub fn parse(s: &str) -> Result<FetchSource, String> {
        if let Some(rest) = s.strip_prefix("circleci://") {
            let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
            let [vcs, org, repo, build] = parts[..] else {
                return Err(format!("{s:?} is not circleci://VCS/ORG/REPO/BUILD_NUM"));
            };
            let vcs = match vcs {
                "gh" | "github" => "github",
                "bb" | "bitbucket" => "bitbucket",
                _ => return Err(format!("{vcs:?} is not gh, github, bb or bitbucket")),
            };
            let name_ok = |n: &str| {
                !n.is_empty()
                    && n != "."
                    && n != ".."
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            };
            if !name_ok(org) || !name_ok(repo) {
                return Err(format!("{s:?}: bad organization or repository name"));
            }
            let build = build
                .parse()
                .map_err(|_| format!("{build:?} is not a build number"))?;
            return Ok(FetchSource::CircleCi {
                vcs: vcs.to_string(),
                org: org.to_string(),
                repo: repo.to_string(),
                build,
            });
        }
        S3Target::parse(s).map(FetchSource::S3).map_err(|e| {
            format!("{e} (expected s3://BUCKET/PREFIX or circleci://VCS/ORG/REPO/BUILD_NUM)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = S3Target::parse("s3://ci-artifacts/repo/123/").unwrap();
        assert_eq!(t.bucket, "ci-artifacts");
        assert_eq!(t.prefix, "repo/123");
        assert_eq!(t.key_for("core.1.x.core.gz"), "repo/123/core.1.x.core.gz");
        let t = S3Target::parse("s3://bkt").unwrap();
        assert_eq!(t.key_for("a/b"), "a/b");
        assert_eq!(t.url_of("a/b"), "s3://bkt/a/b");
        for bad in [
            "bkt/x",
            "s3://",
            "s3:///x",
            "s3://ab",
            "s3://Upper",
            "s3://b_k",
            "s3://bkt/../x",
            "s3://bkt/a//b",
            "s3://bkt/a\n",
        ] {
            assert!(S3Target::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            safe_relative_path("a/b.core.gz").unwrap(),
            PathBuf::from("a/b.core.gz")
        );
        assert_eq!(safe_relative_path("..x").unwrap(), PathBuf::from("..x"));
        let cases = [
            ("", UnsafeName::Empty),
            ("/etc/passwd", UnsafeName::Absolute),
            ("../x", UnsafeName::DotDot),
            ("a/../../x", UnsafeName::DotDot),
            ("a/..", UnsafeName::DotDot),
            ("a//b", UnsafeName::EmptySegment),
            ("./a", UnsafeName::EmptySegment),
            ("a/", UnsafeName::EmptySegment),
            ("a\0b", UnsafeName::Control),
            ("a\nb", UnsafeName::Control),
            ("a\u{7f}", UnsafeName::Control),
            ("..\\x", UnsafeName::Backslash),
        ];
        for (name, want) in cases {
            assert_eq!(safe_relative_path(name), Err(want), "{name:?}");
        }
        assert_eq!(
            safe_relative_path(&"x".repeat(1025)),
            Err(UnsafeName::TooLong)
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=AK"),
            "https://b.s3.amazonaws.com/k"
        );
        assert_eq!(
            redact_url("http://user:secret@127.0.0.1:9000/x#frag"),
            "http://127.0.0.1:9000/x"
        );
        assert_eq!(redact_url("http://h"), "http://h");
        assert_eq!(redact_url("s3://b/k"), "s3://b/k");
    }
}
