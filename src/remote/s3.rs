//! S3 (and S3-compatible stores): the only module that sees tokio and the AWS SDK. It builds and
//! owns its runtime and offers a synchronous interface: [`S3Store::connect`], then
//! [`S3Store::upload_dir`] for a whole artifacts directory, or [`S3Store::list`] and
//! [`S3Store::get`] for `fetch`.
//!
//! Uploads never hold a whole file in memory: a file up to the part size is read into one
//! buffer and PUT; a larger one goes up as a multipart upload whose parts are read from the file
//! at their offsets, at most `concurrency` parts in memory at once. Every body is an in-memory
//! buffer, so the SDK can resend it when it retries (throttling, 5xx, connection resets), and
//! each part carries its SHA-256 so the store rejects a part damaged in transit. A multipart
//! upload that fails is aborted, so no orphaned parts stay behind (and are billed).
//!
//! Progress (bytes confirmed by the store, over all files) goes through `progress`, as for
//! compression.
//!
//! Credentials come from the SDK's default chain and never leave it: nothing here prints,
//! formats or stores them, and errors carry the `s3://` URL of the object, not a request.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
    StorageClass,
};
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};

use super::target::{
    Connection, NotUploaded, S3Target, Sse, UploadOptions, UploadOutcome, Uploaded, MAX_PARTS,
    MIN_PART_SIZE,
};
use crate::artifacts::manifest::{self, Manifest};
use crate::progress::Progress;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an S3 operation failed. The source of a request failure is the SDK's error, boxed so its
/// types stay in this module.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("cannot start the S3 client runtime")]
    Runtime { source: io::Error },
    #[error("cannot list {dir}")]
    ReadDir { dir: PathBuf, source: io::Error },
    #[error("{path} is not valid UTF-8 and cannot be an object key")]
    NotUtf8 { path: PathBuf },
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot put {url}")]
    Put { url: String, source: BoxError },
    #[error("cannot start a multipart upload of {url}")]
    CreateMultipart { url: String, source: BoxError },
    #[error("cannot upload part {part} of {url}")]
    UploadPart {
        url: String,
        part: i32,
        source: BoxError,
    },
    #[error("cannot complete the multipart upload of {url}")]
    CompleteMultipart { url: String, source: BoxError },
    #[error("upload of part {part} of {url} stopped")]
    PartTask {
        url: String,
        part: i32,
        source: BoxError,
    },
    #[error("cannot confirm {url}")]
    Head { url: String, source: BoxError },
    #[error("{url} is {actual} bytes in the store, {expected} were uploaded")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url} has SHA-256 {actual} in the store, {expected} was uploaded")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cannot update the manifest")]
    Manifest(#[source] manifest::ManifestError),
    #[error("not tried after an earlier failure")]
    NotTried,
    #[error("cannot list {url}")]
    List { url: String, source: BoxError },
    #[error("cannot get {url}")]
    Get { url: String, source: BoxError },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
}

impl S3Error {
    /// Failures that every later request would repeat (endpoint unreachable, no such bucket,
    /// bad credentials): no point trying the remaining objects.
    fn is_fatal(&self) -> bool {
        match self {
            S3Error::Put { source, .. }
            | S3Error::CreateMultipart { source, .. }
            | S3Error::UploadPart { source, .. } => {
                source.downcast_ref::<Fatal>().is_some_and(|f| f.0)
            }
            _ => false,
        }
    }
}

/// Marker wrapped around an SDK error that no retry or other object can get past.
#[derive(Debug)]
struct Fatal(bool, BoxError);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.1, f)
    }
}

impl std::error::Error for Fatal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.source()
    }
}

/// Boxes an SDK error, marking the ones that no other object would get past.
fn sdk_err<E>(e: SdkError<E, HttpResponse>) -> BoxError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let fatal = match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => true,
        SdkError::ServiceError(s) => matches!(
            s.err().code(),
            Some(
                "NoSuchBucket"
                    | "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "PermanentRedirect"
            )
        ),
        _ => false,
    };
    Box::new(Fatal(fatal, Box::new(Remote(describe(&e)))))
}

/// What the store or the connection said, on one line: `NoSuchBucket: The specified bucket
/// does not exist`, or the connection error's chain. The SDK's own `Display` says only
/// "service error"; its `Debug` would show the raw response. Neither carries credentials, and
/// this keeps only codes and messages.
fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => match e.raw_response() {
                    Some(r) => format!("HTTP status {}", r.status().as_u16()),
                    None => "the store refused the request".to_string(),
                },
            }
        }
        _ => {
            let mut s = e.to_string();
            let mut cur = std::error::Error::source(e);
            while let Some(c) = cur {
                s += &format!(": {c}");
                cur = c.source();
            }
            s
        }
    }
}

/// The store's or the connection's side of a failure, as [`describe`] put it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Remote(String);

/// An S3 client with its own runtime.
pub struct S3Store {
    rt: tokio::runtime::Runtime,
    client: Client,
}

/// One object under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub bytes: u64,
}

impl S3Store {
    /// Builds the runtime and the client: default credential chain and region (us-east-1 when
    /// none is configured), the endpoint from `conn` or `AWS_ENDPOINT_URL` with path-style
    /// addressing, and the SDK's standard retry mode.
    pub fn connect(conn: &Connection) -> Result<S3Store, S3Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("corecatch-s3")
            .enable_all()
            .build()
            .map_err(|source| S3Error::Runtime { source })?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(conn.max_attempts.max(1))
            .with_initial_backoff(conn.initial_backoff)
            .with_max_backoff(Duration::from_secs(20));
        // A connect timeout makes an unreachable endpoint fail in seconds, not minutes; no
        // attempt timeout, since a big part on a slow link legitimately takes long.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .build();
        let region = aws_config::meta::region::RegionProviderChain::default_provider()
            .or_else(aws_config::Region::from_static("us-east-1"));
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .retry_config(retry)
            .timeout_config(timeouts)
            .region(region);
        if let Some(url) = &conn.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = rt.block_on(loader.load());
        let custom_endpoint = sdk.endpoint_url().is_some();
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            // S3-compatible stores rarely resolve bucket.host names.
            .force_path_style(custom_endpoint)
            .build();
        Ok(S3Store {
            rt,
            client: Client::from_conf(config),
        })
    }

    /// Uploads every file under `dir` (recursively, keeping the layout, temporary files
    /// skipped) to `target`, `manifest.json` last with each object's key recorded; confirms
    /// every object with HeadObject; removes the local files only when asked and everything was
    /// confirmed. Never fails as a whole: what did not make it is in the outcome.
    pub fn upload_dir(&self, dir: &Path, target: &S3Target, opts: &UploadOptions) -> UploadOutcome {
        let mut outcome = UploadOutcome::default();
        let files = match list_local(dir) {
            Ok(f) => f,
            Err(e) => {
                outcome.setup_error = Some(crate::error::chain(&e));
                return outcome;
            }
        };
        let manifest_rel = manifest::FILE_NAME;
        let has_manifest = files.iter().any(|(rel, _)| rel == manifest_rel);
        let known = Manifest::load(dir).ok().flatten();
        let total: u64 = files
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let mut progress = Progress::start(&format!("uploading to {target}"), !opts.progress);
        let mut sent_bytes = 0u64;
        let mut on_sent = |n: u64| {
            sent_bytes += n;
            progress.update(sent_bytes, total);
        };
        let opts = Arc::new(opts.clone());
        let mut done: Vec<(Uploaded, PathBuf)> = Vec::new();
        let mut stop = false;
        let fail = |outcome: &mut UploadOutcome, rel: &str, e: &S3Error| {
            outcome.failed.push(NotUploaded {
                path: rel.to_string(),
                key: target.key_for(rel),
                why: crate::error::chain(e),
            });
        };
        for (rel, path) in files.iter().filter(|(rel, _)| rel != manifest_rel) {
            if stop {
                fail(&mut outcome, rel, &S3Error::NotTried);
                continue;
            }
            let expected_sha = known.as_ref().and_then(|m| {
                m.artifacts
                    .iter()
                    .find(|e| &e.path == rel)
                    .map(|e| e.sha256.clone())
            });
            match self.put_and_confirm(path, target, rel, expected_sha, &opts, &mut on_sent) {
                Ok(u) => {
                    if opts.verbose {
                        eprintln!("corecatch: uploaded {} ({} bytes)", u.url, u.bytes);
                    }
                    done.push((u, path.clone()));
                }
                Err(e) => {
                    stop = e.is_fatal();
                    fail(&mut outcome, rel, &e);
                }
            }
        }
        if has_manifest {
            let keys: Vec<(String, String)> = done
                .iter()
                .map(|(u, _)| (u.path.clone(), u.key.clone()))
                .collect();
            let path = dir.join(manifest_rel);
            let recorded = manifest::record_keys(dir, &keys).map_err(S3Error::Manifest);
            let result = if stop {
                Err(S3Error::NotTried)
            } else {
                recorded.and_then(|_| {
                    self.put_and_confirm(&path, target, manifest_rel, None, &opts, &mut on_sent)
                })
            };
            match result {
                Ok(u) => {
                    if opts.verbose {
                        eprintln!("corecatch: uploaded {} ({} bytes)", u.url, u.bytes);
                    }
                    done.push((u, path));
                }
                Err(e) => fail(&mut outcome, manifest_rel, &e),
            }
        }
        progress.finish();
        if !opts.keep_local {
            if outcome.failed.is_empty() {
                let mut all = true;
                for (_, path) in &done {
                    if let Err(e) = std::fs::remove_file(path) {
                        all = false;
                        eprintln!("corecatch: cannot remove {}: {e}", path.display());
                    }
                }
                remove_empty_dirs(dir);
                outcome.local_removed = all;
            } else {
                outcome.kept_because = Some("some objects did not make it".into());
            }
        }
        outcome.uploaded = done.into_iter().map(|(u, _)| u).collect();
        outcome
    }

    /// Uploads one file and confirms it with HeadObject (size, and SHA-256 where the store
    /// returns one).
    fn put_and_confirm(
        &self,
        path: &Path,
        target: &S3Target,
        rel: &str,
        expected_sha256_hex: Option<String>,
        opts: &Arc<UploadOptions>,
        on_sent: &mut dyn FnMut(u64),
    ) -> Result<Uploaded, S3Error> {
        let key = target.key_for(rel);
        let url = target.url_of(&key);
        let sent = self.rt.block_on(put_file(
            self.client.clone(),
            target.bucket.clone(),
            key.clone(),
            url.clone(),
            path.to_path_buf(),
            Arc::clone(opts),
            on_sent,
        ))?;
        if let Some(want) = expected_sha256_hex {
            if sent.full_sha256.as_deref().is_some_and(|got| got != want) {
                // The file changed between the manifest and now; the manifest is the record.
                return Err(S3Error::ChecksumMismatch {
                    url,
                    expected: want,
                    actual: sent.full_sha256.unwrap_or_default(),
                });
            }
        }
        self.rt
            .block_on(confirm(&self.client, target, &key, &url, &sent))?;
        Ok(Uploaded {
            path: rel.to_string(),
            key,
            bytes: sent.bytes,
            url,
        })
    }

    /// Put each of `files` (`rel` under `target`, local path) into the store unless an object
    /// of the same size is already at its key (HeadObject first): the build-id store, where a
    /// file's key names its build. Per file: `true` uploaded (and confirmed), `false` already
    /// there.
    pub fn put_missing(
        &self,
        target: &S3Target,
        files: &[(String, PathBuf)],
        opts: &UploadOptions,
    ) -> Vec<Result<bool, S3Error>> {
        let opts = Arc::new(opts.clone());
        files
            .iter()
            .map(|(rel, path)| {
                let bytes = std::fs::metadata(path)
                    .map_err(|source| S3Error::Open {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                let key = target.key_for(rel);
                if self.has(&target.bucket, &key, bytes)? {
                    return Ok(false);
                }
                self.put_and_confirm(path, target, rel, None, &opts, &mut |_| {})
                    .map(|_| true)
            })
            .collect()
    }

    /// Whether `key` holds an object of `bytes` bytes (HeadObject; missing is `false`).
    fn has(&self, bucket: &str, key: &str, bytes: u64) -> Result<bool, S3Error> {
        let url = format!("s3://{bucket}/{key}");
        self.rt.block_on(async {
            match self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                Ok(h) => Ok(h.content_length() == Some(bytes as i64)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
                Err(e) => Err(S3Error::Head {
                    url,
                    source: sdk_err(e),
                }),
            }
        })
    }

    /// Every object under `prefix` (ListObjectsV2, all pages).
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, S3Error> {
        let url = format!("s3://{bucket}/{prefix}");
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_max_keys(list_page_size())
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| S3Error::List {
                        url: url.clone(),
                        source: sdk_err(e),
                    })?;
                for o in page.contents() {
                    if let Some(key) = o.key() {
                        out.push(Listed {
                            key: key.to_string(),
                            bytes: o.size().unwrap_or(0).max(0) as u64,
                        });
                    }
                }
                match page.next_continuation_token() {
                    Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok(out)
        })
    }

    /// Writes the object's bytes from `offset` on to `out` (positioned at `offset`); when the
    /// store ignores the range, truncates `out` and writes the whole object. Safe to call from
    /// many threads at once: each call blocks on the shared runtime.
    pub fn get(
        &self,
        bucket: &str,
        key: &str,
        offset: u64,
        out: &mut File,
        out_path: &Path,
    ) -> Result<(), S3Error> {
        let url = format!("s3://{bucket}/{key}");
        let write_err = |source| S3Error::Write {
            path: out_path.to_path_buf(),
            source,
        };
        self.rt.block_on(async {
            let mut req = self.client.get_object().bucket(bucket).key(key);
            if offset > 0 {
                req = req.range(format!("bytes={offset}-"));
            }
            let resp = req.send().await.map_err(|e| S3Error::Get {
                url: url.clone(),
                source: sdk_err(e),
            })?;
            if offset > 0 && resp.content_range().is_none() {
                out.set_len(0)
                    .and_then(|_| io::Seek::rewind(out))
                    .map_err(write_err)?;
            }
            let mut body = resp.body;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| S3Error::Get {
                    url: url.clone(),
                    source: Box::new(e),
                })?;
                // A blocking write inside the runtime: chunks are small and the destination is a
                // local file, so other transfers are not held up noticeably.
                out.write_all(&chunk).map_err(write_err)?;
            }
            Ok(())
        })
    }
}

/// Keys per ListObjectsV2 page: the store's default (1000 on S3) unless
/// `CORECATCH_S3_LIST_PAGE` asks for fewer, which the tests use to cross page boundaries.
fn list_page_size() -> Option<i32> {
    std::env::var("CORECATCH_S3_LIST_PAGE")
        .ok()?
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// Regular files under `dir`, as (`/`-separated relative path, path), sorted; symlinks and this
/// crate's temporary files are skipped.
fn list_local(dir: &Path) -> Result<Vec<(String, PathBuf)>, S3Error> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|source| S3Error::ReadDir {
            dir: d.clone(),
            source,
        })?;
        for entry in rd {
            let entry = entry.map_err(|source| S3Error::ReadDir {
                dir: d.clone(),
                source,
            })?;
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(crate::artifacts::publish::PREFIX)
            {
                continue;
            }
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|r| r.to_str())
                    .ok_or_else(|| S3Error::NotUtf8 { path: path.clone() })?;
                out.push((rel.to_string(), path.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the now empty sub-directories of `dir` and `dir` itself; non-empty ones stay.
fn remove_empty_dirs(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// What was sent for one object, for [`confirm`].
struct Sent {
    bytes: u64,
    /// SHA-256 of the whole file, hex (single PUT only; a multipart upload hashes per part).
    full_sha256: Option<String>,
    /// The checksum the store reports for the object, base64: the plain SHA-256 for a PUT,
    /// `base64(sha256(part digests…))-N` for a multipart upload.
    checksum: String,
}

fn b64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

async fn put_file(
    client: Client,
    bucket: String,
    key: String,
    url: String,
    path: PathBuf,
    opts: Arc<UploadOptions>,
    on_sent: &mut dyn FnMut(u64),
) -> Result<Sent, S3Error> {
    let file = File::open(&path).map_err(|source| S3Error::Open {
        path: path.clone(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| S3Error::Read {
            path: path.clone(),
            source,
        })?
        .len();
    let part_size = opts
        .part_size
        .max(MIN_PART_SIZE)
        .max(size.div_ceil(MAX_PARTS));
    if size <= part_size {
        let body = read_at(&file, &path, 0, size as usize)?;
        let digest = Sha256::digest(&body[..]);
        let mut req = client
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .content_length(size as i64)
            .checksum_sha256(b64(&digest))
            .body(ByteStream::new(bytes_of(body)));
        if let Some(sc) = &opts.storage_class {
            req = req.storage_class(StorageClass::from(sc.as_str()));
        }
        if let Some(sse) = opts.sse {
            req = req.server_side_encryption(sse_of(sse));
        }
        req.send().await.map_err(|e| S3Error::Put {
            url: url.clone(),
            source: sdk_err(e),
        })?;
        on_sent(size);
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        return Ok(Sent {
            bytes: size,
            full_sha256: Some(hex),
            checksum: b64(&digest),
        });
    }

    let mut req = client
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256);
    if let Some(sc) = &opts.storage_class {
        req = req.storage_class(StorageClass::from(sc.as_str()));
    }
    if let Some(sse) = opts.sse {
        req = req.server_side_encryption(sse_of(sse));
    }
    let created = req.send().await.map_err(|e| S3Error::CreateMultipart {
        url: url.clone(),
        source: sdk_err(e),
    })?;
    let Some(upload_id) = created.upload_id().map(str::to_string) else {
        return Err(S3Error::CreateMultipart {
            url,
            source: "the store returned no upload id".into(),
        });
    };
    let file = Arc::new(file);
    let parts = upload_parts(
        &client, &bucket, &key, &url, &upload_id, &file, &path, size, part_size, &opts, on_sent,
    )
    .await;
    let result = match parts {
        Ok(parts) => {
            let mut composite = Sha256::new();
            for (_, digest) in &parts {
                composite.update(digest);
            }
            let n = parts.len();
            let completed = CompletedMultipartUpload::builder()
                .set_parts(Some(parts.into_iter().map(|(p, _)| p).collect()))
                .build();
            client
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .multipart_upload(completed)
                .send()
                .await
                .map(|_| Sent {
                    bytes: size,
                    full_sha256: None,
                    checksum: format!("{}-{n}", b64(&composite.finalize())),
                })
                .map_err(|e| S3Error::CompleteMultipart {
                    url: url.clone(),
                    source: sdk_err(e),
                })
        }
        Err(e) => Err(e),
    };
    if result.is_err() {
        // No orphaned parts: the store keeps (and bills) them until the upload is aborted. The
        // SDK retries this call too; a failure here is reported but cannot be helped.
        if let Err(e) = client
            .abort_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&upload_id)
            .send()
            .await
        {
            eprintln!(
                "corecatch: cannot abort the multipart upload of {url}: {}",
                describe(&e)
            );
        }
    }
    result
}

/// Uploads the parts, at most `opts.concurrency` in memory at once, each read from the file at
/// its offset; returns them in order with their SHA-256 digests.
#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    url: &str,
    upload_id: &str,
    file: &Arc<File>,
    path: &Path,
    size: u64,
    part_size: u64,
    opts: &UploadOptions,
    on_sent: &mut dyn FnMut(u64),
) -> Result<Vec<(CompletedPart, Vec<u8>)>, S3Error> {
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let count = size.div_ceil(part_size);
    let mut first_error = None;
    let mut parts = Vec::new();
    for index in 0..count {
        // Taken before the part is read, so memory stays at concurrency × part size.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        // Stop queueing parts once one failed for good.
        while let Some(done) = tasks.try_join_next() {
            match flatten(done, url) {
                Ok(p) => {
                    on_sent(part_len(&p.0, size, part_size));
                    parts.push(p)
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            break;
        }
        let offset = index * part_size;
        let len = part_size.min(size - offset) as usize;
        let part_number = (index + 1) as i32;
        let (client, file, path) = (client.clone(), Arc::clone(file), path.to_path_buf());
        let (bucket, key, url, upload_id) = (
            bucket.to_string(),
            key.to_string(),
            url.to_string(),
            upload_id.to_string(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            let body = {
                let (file, path) = (Arc::clone(&file), path.clone());
                tokio::task::spawn_blocking(move || read_at(&file, &path, offset, len))
                    .await
                    .map_err(|e| S3Error::PartTask {
                        url: url.clone(),
                        part: part_number,
                        source: Box::new(e),
                    })??
            };
            let digest = Sha256::digest(&body[..]).to_vec();
            let body = bytes_of(body);
            // The SDK already retries each request; this outer loop covers a connection that
            // keeps dropping for longer than its attempts last.
            let mut attempt = 0;
            loop {
                attempt += 1;
                let sent = client
                    .upload_part()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .part_number(part_number)
                    .content_length(len as i64)
                    .checksum_sha256(b64(&digest))
                    .body(ByteStream::new(body.try_clone().unwrap_or_else(|| {
                        // In-memory bodies always clone; an empty one would be refused by the
                        // store for its wrong length, never stored.
                        aws_smithy_types::body::SdkBody::empty()
                    })))
                    .send()
                    .await;
                match sent {
                    Ok(out) => {
                        let part = CompletedPart::builder()
                            .part_number(part_number)
                            .set_e_tag(out.e_tag().map(str::to_string))
                            .checksum_sha256(b64(&digest))
                            .build();
                        return Ok((part, digest));
                    }
                    Err(e) => {
                        let transient = matches!(
                            e,
                            SdkError::DispatchFailure(_)
                                | SdkError::TimeoutError(_)
                                | SdkError::ResponseError(_)
                        ) || e
                            .raw_response()
                            .is_some_and(|r| r.status().is_server_error());
                        if !transient || attempt >= PART_ATTEMPTS {
                            return Err(S3Error::UploadPart {
                                url,
                                part: part_number,
                                source: sdk_err(e),
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        match flatten(done, url) {
            Ok(p) => {
                on_sent(part_len(&p.0, size, part_size));
                parts.push(p)
            }
            Err(e) => {
                first_error.get_or_insert(e);
                tasks.abort_all();
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    parts.sort_by_key(|(p, _)| p.part_number());
    // Completing with a part missing would store a short object: refuse before it happens.
    if parts.len() as u64 != count {
        return Err(S3Error::PartTask {
            url: url.to_string(),
            part: 0,
            source: format!("{} of {count} parts were uploaded", parts.len()).into(),
        });
    }
    Ok(parts)
}

/// Bytes in `part` (numbered from 1) of a `size`-byte file cut in `part_size` pieces.
fn part_len(part: &CompletedPart, size: u64, part_size: u64) -> u64 {
    let offset = (part.part_number().unwrap_or(1).max(1) as u64 - 1) * part_size;
    part_size.min(size.saturating_sub(offset))
}

/// Rounds of the outer per-part retry (each is a full set of the SDK's own attempts).
const PART_ATTEMPTS: u32 = 3;

type PartResult = Result<(CompletedPart, Vec<u8>), S3Error>;

fn flatten(done: Result<PartResult, tokio::task::JoinError>, url: &str) -> PartResult {
    done.map_err(|e| S3Error::PartTask {
        url: url.to_string(),
        part: 0,
        source: Box::new(e),
    })?
}

/// A part buffer as a body that is cloned without copying (shared bytes) for each attempt.
fn bytes_of(buf: PartBuf) -> aws_smithy_types::body::SdkBody {
    match buf {
        PartBuf::Empty => aws_smithy_types::body::SdkBody::empty(),
        PartBuf::Map(m) => aws_smithy_types::body::SdkBody::from(bytes::Bytes::from_owner(m)),
    }
}

/// A part's bytes in an anonymous mapping of their own. Not a `Vec`: glibc raises its mmap
/// threshold after the first big free and then serves later 16 MiB buffers from per-thread
/// arenas it keeps, which cost ~60 MiB of peak RSS on a 1 GiB upload; a mapping goes back to
/// the kernel the moment the store has the part.
enum PartBuf {
    Empty,
    Map(memmap2::MmapMut),
}

impl std::ops::Deref for PartBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            PartBuf::Empty => &[],
            PartBuf::Map(m) => m,
        }
    }
}

fn read_at(file: &File, path: &Path, offset: u64, len: usize) -> Result<PartBuf, S3Error> {
    let read_err = |source| S3Error::Read {
        path: path.to_path_buf(),
        source,
    };
    if len == 0 {
        return Ok(PartBuf::Empty);
    }
    let mut map = memmap2::MmapMut::map_anon(len).map_err(read_err)?;
    file.read_exact_at(&mut map, offset).map_err(read_err)?;
    Ok(PartBuf::Map(map))
}

fn sse_of(sse: Sse) -> ServerSideEncryption {
    match sse {
        Sse::Aes256 => ServerSideEncryption::Aes256,
        Sse::Kms => ServerSideEncryption::AwsKms,
    }
}

/// HeadObject: the size must match; the SHA-256 too when the store reports one.
async fn confirm(
    client: &Client,
    target: &S3Target,
    key: &str,
    url: &str,
    sent: &Sent,
) -> Result<(), S3Error> {
    let head = client
        .head_object()
        .bucket(&target.bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| S3Error::Head {
            url: url.to_string(),
            source: sdk_err(e),
        })?;
    let actual = head.content_length().unwrap_or(-1);
    if actual != sent.bytes as i64 {
        return Err(S3Error::SizeMismatch {
            url: url.to_string(),
            expected: sent.bytes,
            actual: actual.max(0) as u64,
        });
    }
    if let Some(got) = head.checksum_sha256() {
        // Stores differ in whether a multipart object reports the composite with its `-N`
        // part count; compare the digest part.
        let digest = |s: &str| s.split('-').next().unwrap_or("").to_string();
        if digest(got) != digest(&sent.checksum) {
            return Err(S3Error::ChecksumMismatch {
                url: url.to_string(),
                expected: sent.checksum.clone(),
                actual: got.to_string(),
            });
        }
    }
    Ok(())
}
