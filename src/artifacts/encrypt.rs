//! age encryption of stored cores (<https://age-encryption.org/v1>): a streaming [`Encryptor`]
//! (`Write`) and [`decrypt`] (`Read`), so a core goes from the compressor to the artifact file
//! encrypted, a chunk at a time, and comes back the same way; never whole in memory and never as
//! a plaintext file on disk. What `age -e` writes this reads, and what this writes `age -d` reads.
//!
//! Recipients ([`Recipient::parse`], [`parse_recipients_file`]) are age X25519 keys (`age1…`) and
//! SSH public keys (`ssh-ed25519`, `ssh-rsa`); identities ([`Identities::from_file`]) are age
//! identity files (`AGE-SECRET-KEY-1…` lines, as `age-keygen` writes them) and unencrypted OpenSSH
//! private keys. Not here: passphrase (scrypt) recipients, plugins, ASCII armor, passphrase-
//! protected SSH keys and PEM (PKCS#1) keys; each is refused with a message saying so.
//!
//! The format, in short: a text header (the version line; one stanza per recipient, each wrapping
//! the random 16-byte file key; an HMAC-SHA-256 of the header under a key derived from the file
//! key), a 16-byte nonce, then the payload in 64 KiB ChaCha20-Poly1305 chunks (STREAM: an 11-byte
//! chunk counter and a last-chunk flag as the nonce), under a key derived from the file key and
//! the nonce. So a damaged or truncated file is detected chunk by chunk: the reader never returns
//! a byte of a chunk that did not authenticate, and fails at the end of a file cut short.
//!
//! Written on the primitives (x25519-dalek, curve25519-dalek, chacha20poly1305, hkdf, hmac, sha2,
//! bech32, rsa) rather than the `age` crate, whose i18n and post-quantum dependencies cost the
//! static binary 537 KB where this costs 337 KB (168 KB of it RSA, for ssh-rsa). It is checked
//! against the real `age` and `age-keygen` in both directions (the tests below).
//! Secret keys, file keys, payload keys and plaintext buffers are zeroized when dropped; no error
//! carries a secret (a secret key given as a recipient is refused without being repeated).
//! [`seal`] encrypts a small artifact made in memory (a report, the page) in one call.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// The first line of every age file (binary, not armored).
pub const MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Plaintext bytes per payload chunk.
const CHUNK: usize = 64 << 10;
/// ChaCha20-Poly1305's tag.
const TAG: usize = 16;
const FILE_KEY: usize = 16;
const PAYLOAD_NONCE: usize = 16;
/// Longest header read before giving up: a real one is a few hundred bytes per recipient.
const MAX_HEADER: usize = 1 << 20;
/// Longest identity file read: a key file is a few KiB; a core given by mistake is not read whole.
const MAX_IDENTITY_FILE: u64 = 1 << 20;
/// Base64 characters per line of a stanza body.
const BODY_COLUMNS: usize = 64;

const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const ED25519_LABEL: &[u8] = b"age-encryption.org/v1/ssh-ed25519";
const RSA_LABEL: &[u8] = b"age-encryption.org/v1/ssh-rsa";
/// RSA sizes age accepts for ssh-rsa recipients (its minimum; a generous maximum).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=16384;

/// SSH's base64: padded as ssh-keygen writes it, accepted without padding too.
const SSH_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why encryption could not start, a recipient or identity was refused, or an age header could
/// not be read. Each carries the file or the (public) input it is about, never a secret key.
/// Damage to the payload past the header is an `io::Error` of kind `InvalidData` from the reader.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error("invalid recipient `{input}`: {reason}")]
    InvalidRecipient { input: String, reason: &'static str },
    #[error(
        "a secret key was given as a recipient (not repeated here); give its public key \
         (`age-keygen -y FILE` prints it)"
    )]
    SecretKeyAsRecipient,
    #[error(
        "unsupported recipient type `{kind}`: corecatch encrypts to age1…, ssh-ed25519 and \
         ssh-rsa public keys"
    )]
    UnsupportedRecipient { kind: String },
    #[error("ssh-rsa recipient of {bits} bits: age needs 2048 to 16384")]
    RsaKeySize { bits: usize },
    #[error("{path} line {line}")]
    RecipientsFileLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: Box<EncryptError>,
    },
    #[error("{path} lists no recipients")]
    NoRecipientsInFile { path: PathBuf },
    #[error("no recipients to encrypt to")]
    NoRecipients,
    #[error("cannot encrypt")]
    Seal {
        #[source]
        source: io::Error,
    },
    #[error("cannot encrypt to {public}: it is a low-order point")]
    LowOrderRecipient { public: String },
    #[error("cannot encrypt to {public}")]
    RsaEncrypt {
        public: String,
        #[source]
        source: rsa::Error,
    },
    #[error("cannot get random bytes from the system")]
    Random {
        #[source]
        source: io::Error,
    },
    #[error("cannot read the identity file {path}")]
    ReadIdentities {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an identity file corecatch reads: {reason}")]
    NotIdentityFile { path: PathBuf, reason: &'static str },
    #[error("{path} line {line}: {reason}")]
    InvalidIdentity {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error(
        "{path} is a passphrase-protected SSH key: corecatch reads unencrypted keys only \
         (`age -d -i {path}` asks for the passphrase)"
    )]
    EncryptedSshKey { path: PathBuf },
    #[error("{path}: `{kind}` keys are not supported (ssh-ed25519 and ssh-rsa are)")]
    UnsupportedSshKey { path: PathBuf, kind: String },
    #[error("{path} is not a valid OpenSSH private key: {reason}")]
    InvalidSshKey { path: PathBuf, reason: &'static str },
    #[error("{path} holds no identities")]
    NoIdentities { path: PathBuf },
    #[error("cannot read the age header of {}", shown(.input))]
    ReadHeader {
        input: Option<PathBuf>,
        #[source]
        source: io::Error,
    },
    #[error("{} is not an age file (it does not start with `age-encryption.org/v1`)", shown(.input))]
    NotAge { input: Option<PathBuf> },
    #[error("{} is ASCII-armored (`age -a`); corecatch reads binary age files", shown(.input))]
    Armored { input: Option<PathBuf> },
    #[error("the age header of {} is invalid: {reason}", shown(.input))]
    InvalidHeader {
        input: Option<PathBuf>,
        reason: &'static str,
    },
    #[error("the age header of {} is damaged: its MAC does not match", shown(.input))]
    HeaderMac { input: Option<PathBuf> },
    #[error("none of the identities in {identities} can decrypt {}", shown(.input))]
    NoMatchingIdentity {
        identities: PathBuf,
        input: Option<PathBuf>,
    },
}

fn shown(input: &Option<PathBuf>) -> String {
    match input {
        Some(p) => p.display().to_string(),
        None => "the input".to_string(),
    }
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, EncryptError> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut *b).map_err(|e| EncryptError::Random { source: e.into() })?;
    Ok(b)
}

/// HKDF-SHA-256 to 32 bytes.
fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's 8160-byte limit: expand cannot fail.
    let _ = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut *out);
    out
}

fn aead(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&(*key).into())
}

/// ChaCha20-Poly1305 of a file key under a key used once (so the nonce is zero), as every
/// recipient type but ssh-rsa wraps it.
fn wrap_file_key(key: &[u8; 32], file_key: &[u8; FILE_KEY]) -> Vec<u8> {
    let mut body = file_key.to_vec();
    let tag = aead(key)
        .encrypt_inout_detached(&Default::default(), b"", body.as_mut_slice().into())
        .expect("16 bytes are far below ChaCha20-Poly1305's message limit");
    body.extend_from_slice(&tag);
    body
}

fn unwrap_file_key(key: &[u8; 32], body: &[u8]) -> Option<Zeroizing<[u8; FILE_KEY]>> {
    if body.len() != FILE_KEY + TAG {
        return None;
    }
    let mut file_key = Zeroizing::new([0u8; FILE_KEY]);
    file_key.copy_from_slice(&body[..FILE_KEY]);
    let tag = <[u8; TAG]>::try_from(&body[FILE_KEY..]).ok()?;
    aead(key)
        .decrypt_inout_detached(
            &Default::default(),
            b"",
            file_key.as_mut_slice().into(),
            &tag.into(),
        )
        .ok()?;
    Some(file_key)
}

/// The first four bytes of the SHA-256 of an SSH public key's wire form: which key a stanza is
/// for, so an identity tries only its own stanzas.
fn ssh_tag(ssh_key: &[u8]) -> [u8; 4] {
    let d = Sha256::digest(ssh_key);
    [d[0], d[1], d[2], d[3]]
}

/// Reads SSH's wire format (RFC 4251): big-endian u32 lengths before strings and mpints.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*n))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(s)
    }

    /// A non-negative mpint's magnitude, big-endian, without leading zeros.
    fn mpint(&mut self) -> Option<&'a [u8]> {
        let s = self.string()?;
        if s.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        let zeros = s.iter().take_while(|&&b| b == 0).count();
        Some(&s[zeros..])
    }
}

fn bigint(magnitude: &[u8], bits: u32) -> Option<rsa::BoxedUint> {
    rsa::BoxedUint::from_be_slice(magnitude, bits).ok()
}

/// Whom a file is encrypted to: one public key.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// An age X25519 key, `age1…`.
    X25519(X25519Recipient),
    /// An SSH Ed25519 key, `ssh-ed25519 AAAA…`: age converts it to X25519.
    SshEd25519(SshEd25519Recipient),
    /// An SSH RSA key, `ssh-rsa AAAA…`: the file key is encrypted with RSA-OAEP-SHA-256.
    SshRsa(SshRsaRecipient),
}

#[derive(Debug, Clone)]
pub struct X25519Recipient {
    public: String,
    key: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct SshEd25519Recipient {
    public: String,
    ssh_key: Vec<u8>,
    /// The Ed25519 point as an X25519 (Montgomery) public key.
    key: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct SshRsaRecipient {
    public: String,
    ssh_key: Vec<u8>,
    key: Box<rsa::PublicKey>,
}

/// `s` as shown in an error: control characters escaped, cut to 80 characters.
fn quoted(s: &str) -> String {
    let s = crate::escape::controls(s);
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// Whether `s` looks like a secret key, which must never be echoed back in an error.
fn looks_secret(s: &str) -> bool {
    let upper = s.trim_start().to_ascii_uppercase();
    upper.starts_with("AGE-SECRET-KEY-")
        || upper.starts_with("AGE-PLUGIN-")
        || upper.contains("PRIVATE KEY")
}

impl Recipient {
    /// One recipient as written on a command line: `age1…`, `ssh-ed25519 AAAA… [comment]`,
    /// `ssh-rsa AAAA… [comment]`. Surrounding white space is ignored.
    pub fn parse(s: &str) -> Result<Recipient, EncryptError> {
        let s = s.trim();
        if looks_secret(s) {
            return Err(EncryptError::SecretKeyAsRecipient);
        }
        let invalid = |reason| EncryptError::InvalidRecipient {
            input: quoted(s),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.starts_with("age1") {
            return Self::parse_age(s).map_err(|e| match e {
                Some(reason) => invalid(reason),
                None => EncryptError::UnsupportedRecipient {
                    kind: "age plugin".to_string(),
                },
            });
        }
        let mut words = s.split_ascii_whitespace();
        let kind = words.next().unwrap_or_default();
        let Some(b64) = words.next() else {
            return Err(match kind {
                "ssh-ed25519" | "ssh-rsa" => invalid("the key is missing after its type"),
                _ => invalid("not an age1… or ssh-ed25519/ssh-rsa public key"),
            });
        };
        let ssh_key = match SSH_BASE64.decode(b64) {
            Ok(k) => k,
            Err(_) if kind == "ssh-ed25519" || kind == "ssh-rsa" => {
                return Err(invalid("the key is not valid base64"))
            }
            Err(_) => return Err(invalid("not an age1… or ssh-ed25519/ssh-rsa public key")),
        };
        let mut w = Wire(&ssh_key);
        let inner = w.string();
        if kind != "ssh-ed25519" && kind != "ssh-rsa" {
            // A well-formed SSH key of another type (ecdsa, sk-…): say that it is unsupported.
            return Err(if inner == Some(kind.as_bytes()) {
                EncryptError::UnsupportedRecipient { kind: quoted(kind) }
            } else {
                invalid("not an age1… or ssh-ed25519/ssh-rsa public key")
            });
        }
        if inner != Some(kind.as_bytes()) {
            return Err(invalid("the key's type does not match the type before it"));
        }
        let public = format!("{kind} {b64}");
        if kind == "ssh-ed25519" {
            let point = w.string().filter(|p| p.len() == 32 && w.0.is_empty());
            let point = point.ok_or_else(|| invalid("not a 32-byte Ed25519 key"))?;
            let mut y = [0u8; 32];
            y.copy_from_slice(point);
            let edwards = curve25519_dalek::edwards::CompressedEdwardsY(y)
                .decompress()
                .ok_or_else(|| invalid("not a point on Ed25519"))?;
            return Ok(Recipient::SshEd25519(SshEd25519Recipient {
                public,
                key: edwards.to_montgomery().to_bytes(),
                ssh_key,
            }));
        }
        let (Some(e), Some(n), true) = (w.mpint(), w.mpint(), w.0.is_empty()) else {
            return Err(invalid("not an RSA public key"));
        };
        let bits = rsa_bits(n);
        if !RSA_BITS.contains(&bits) {
            return Err(EncryptError::RsaKeySize { bits });
        }
        let key = (|| {
            let n = bigint(n, (n.len() * 8) as u32)?;
            let e = bigint(e, (e.len().max(1) * 8) as u32)?;
            rsa::PublicKey::new_with_size_limits(n, e, RSA_BITS).ok()
        })()
        .ok_or_else(|| invalid("not a usable RSA public key"))?;
        Ok(Recipient::SshRsa(SshRsaRecipient {
            public,
            ssh_key,
            key: Box::new(key),
        }))
    }

    /// `Err(None)`: a plugin recipient (`age1NAME1…`).
    fn parse_age(s: &str) -> Result<Recipient, Option<&'static str>> {
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<bech32::Bech32>(s)
            .map_err(|_| {
                Some("not a valid bech32 age1… key (a character or the checksum is wrong)")
            })?;
        if checked.hrp().as_str() != "age" {
            return Err(if checked.hrp().as_str().starts_with("age1") {
                None
            } else {
                Some("not an age1… key")
            });
        }
        // 32 bytes are 52 five-bit groups, the last 4 bits zero padding.
        if checked.data_part_ascii_no_checksum().len() != 52
            || checked.validate_segwit_padding().is_err()
        {
            return Err(Some("not a 32-byte X25519 key"));
        }
        let mut key = [0u8; 32];
        for (k, b) in key.iter_mut().zip(checked.byte_iter()) {
            *k = b;
        }
        Ok(Recipient::X25519(X25519Recipient {
            public: s.to_string(),
            key,
        }))
    }

    /// The recipient's public key as given (for the manifest's record of whom it is for): the
    /// `age1…` string, or an SSH key's type and base64 without its comment.
    pub fn public(&self) -> &str {
        match self {
            Recipient::X25519(r) => &r.public,
            Recipient::SshEd25519(r) => &r.public,
            Recipient::SshRsa(r) => &r.public,
        }
    }

    /// This recipient's stanza for `file_key`.
    fn wrap(&self, file_key: &[u8; FILE_KEY]) -> Result<Stanza, EncryptError> {
        let low_order = || EncryptError::LowOrderRecipient {
            public: self.public().to_string(),
        };
        match self {
            Recipient::X25519(r) => {
                let esk = StaticSecret::from(*random::<32>()?);
                let epk = PublicKey::from(&esk);
                let shared = esk.diffie_hellman(&PublicKey::from(r.key));
                if !shared.was_contributory() {
                    return Err(low_order());
                }
                let key = hkdf(
                    &salt(epk.as_bytes(), &r.key),
                    shared.as_bytes(),
                    X25519_LABEL,
                );
                Ok(Stanza {
                    kind: "X25519".into(),
                    args: vec![STANDARD_NO_PAD.encode(epk.as_bytes())],
                    body: wrap_file_key(&key, file_key),
                })
            }
            Recipient::SshEd25519(r) => {
                let esk = StaticSecret::from(*random::<32>()?);
                let epk = PublicKey::from(&esk);
                let dh = esk.diffie_hellman(&PublicKey::from(r.key));
                if !dh.was_contributory() {
                    return Err(low_order());
                }
                let tweak = StaticSecret::from(*hkdf(&r.ssh_key, b"", ED25519_LABEL));
                let shared = tweak.diffie_hellman(&PublicKey::from(dh.to_bytes()));
                let key = hkdf(
                    &salt(epk.as_bytes(), &r.key),
                    shared.as_bytes(),
                    ED25519_LABEL,
                );
                Ok(Stanza {
                    kind: "ssh-ed25519".into(),
                    args: vec![
                        STANDARD_NO_PAD.encode(ssh_tag(&r.ssh_key)),
                        STANDARD_NO_PAD.encode(epk.as_bytes()),
                    ],
                    body: wrap_file_key(&key, file_key),
                })
            }
            Recipient::SshRsa(r) => {
                let body = r
                    .key
                    .encrypt(
                        &mut getrandom::SysRng,
                        rsa::Oaep::<Sha256>::new_with_label(RSA_LABEL),
                        file_key,
                    )
                    .map_err(|source| EncryptError::RsaEncrypt {
                        public: r.public.clone(),
                        source,
                    })?;
                Ok(Stanza {
                    kind: "ssh-rsa".into(),
                    args: vec![STANDARD_NO_PAD.encode(ssh_tag(&r.ssh_key))],
                    body,
                })
            }
        }
    }
}

fn rsa_bits(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&b) => n.len() * 8 - b.leading_zeros() as usize,
    }
}

/// The HKDF salt of X25519 and ssh-ed25519 stanzas: the ephemeral share, then the recipient.
fn salt(epk: &[u8; 32], pk: &[u8; 32]) -> [u8; 64] {
    let mut s = [0u8; 64];
    s[..32].copy_from_slice(epk);
    s[32..].copy_from_slice(pk);
    s
}

/// A recipients file as `age -R` reads it: one recipient per line, `#` comments and blank lines
/// skipped. An error names the line; a file without any recipient is an error too.
pub fn parse_recipients_file(text: &str, path: &Path) -> Result<Vec<Recipient>, EncryptError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = Recipient::parse(line).map_err(|e| EncryptError::RecipientsFileLine {
            path: path.to_path_buf(),
            line: i + 1,
            source: Box::new(e),
        })?;
        out.push(r);
    }
    if out.is_empty() {
        return Err(EncryptError::NoRecipientsInFile {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// One recipient stanza of a header: `-> KIND ARG…`, then the body in base64 lines.
struct Stanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

impl Stanza {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(self.kind.as_bytes());
        for a in &self.args {
            out.push(b' ');
            out.extend_from_slice(a.as_bytes());
        }
        out.push(b'\n');
        // Lines of 64 columns; the last is shorter, so empty when the rest fills whole lines.
        let b64 = STANDARD_NO_PAD.encode(&self.body);
        let mut rest = b64.as_bytes();
        loop {
            let n = rest.len().min(BODY_COLUMNS);
            out.extend_from_slice(&rest[..n]);
            out.push(b'\n');
            rest = &rest[n..];
            if n < BODY_COLUMNS {
                break;
            }
        }
    }
}

/// The nonce of payload chunk `counter`: the counter as 11 big-endian bytes, then 1 on the last.
fn chunk_nonce(counter: u64, last: bool) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n.into()
}

/// HMAC-SHA-256 of the header up to and including its `---`, keyed from the file key.
fn header_mac(file_key: &[u8; FILE_KEY], header: &[u8]) -> Hmac<Sha256> {
    let key = hkdf(b"", file_key, b"header");
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&*key)
        .expect("HMAC takes a key of any length");
    mac.update(header);
    mac
}

/// Streaming encryption to every recipient: the age header, then the payload in 64 KiB STREAM
/// chunks. Holds one chunk (64 KiB and its tag); writes through to `out` a chunk at a time.
/// Nothing is written before the first chunk is sealed (or [`Encryptor::finish`] or `flush`).
/// Dropped without `finish`, the output lacks its final chunk and no reader accepts it as whole.
pub struct Encryptor<W: Write> {
    out: Option<W>,
    aead: ChaCha20Poly1305,
    counter: u64,
    /// The header, until it is written.
    header: Vec<u8>,
    /// The plaintext of the chunk being filled; sealed in place.
    buf: Zeroizing<Vec<u8>>,
    /// A write to `out` failed: the output is unusable.
    failed: bool,
}

impl<W: Write> Encryptor<W> {
    /// Makes the file key and wraps it for every recipient (so a recipient that cannot be
    /// encrypted to fails here, before any output).
    pub fn new(recipients: &[Recipient], out: W) -> Result<Self, EncryptError> {
        if recipients.is_empty() {
            return Err(EncryptError::NoRecipients);
        }
        let file_key = random::<FILE_KEY>()?;
        let stanzas = recipients
            .iter()
            .map(|r| r.wrap(&file_key))
            .collect::<Result<Vec<_>, _>>()?;
        Self::with_stanzas(&file_key, &stanzas, out)
    }

    fn with_stanzas(
        file_key: &[u8; FILE_KEY],
        stanzas: &[Stanza],
        out: W,
    ) -> Result<Self, EncryptError> {
        let mut header = MAGIC.to_vec();
        for s in stanzas {
            s.write_to(&mut header);
        }
        header.extend_from_slice(b"---");
        let mac = header_mac(file_key, &header).finalize().into_bytes();
        header.push(b' ');
        header.extend_from_slice(STANDARD_NO_PAD.encode(mac).as_bytes());
        header.push(b'\n');
        let nonce = random::<PAYLOAD_NONCE>()?;
        header.extend_from_slice(&*nonce);
        let key = hkdf(&*nonce, file_key, b"payload");
        Ok(Encryptor {
            out: Some(out),
            aead: aead(&key),
            counter: 0,
            header,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
            failed: false,
        })
    }

    /// Writes the final chunk (and the header, if nothing was written yet); returns the inner
    /// writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        let mut out = self.out.take().ok_or_else(failed)?;
        out.flush()?;
        Ok(out)
    }

    fn out(&mut self) -> io::Result<&mut W> {
        if self.failed {
            return Err(failed());
        }
        let out = self.out.as_mut().ok_or_else(failed)?;
        Ok(out)
    }

    fn write_header(&mut self) -> io::Result<()> {
        if self.header.is_empty() {
            return Ok(());
        }
        let header = std::mem::take(&mut self.header);
        let r = self.out()?.write_all(&header);
        self.failed |= r.is_err();
        r
    }

    /// Encrypts the buffered chunk and writes it. Only the last chunk may be short, and it is
    /// empty only when the whole payload is.
    fn seal(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        self.out()?;
        let nonce = chunk_nonce(self.counter, last);
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, b"", self.buf.as_mut_slice().into())
            .map_err(|_| io::Error::other("a payload chunk could not be encrypted"))?;
        self.buf.extend_from_slice(&tag);
        let r = match self.out.as_mut() {
            Some(out) => out.write_all(&self.buf),
            None => Err(failed()),
        };
        self.buf.clear();
        self.failed |= r.is_err();
        r?;
        self.counter += 1;
        Ok(())
    }
}

fn failed() -> io::Error {
    io::Error::other("an earlier write of the encrypted output failed")
}

/// `plaintext` encrypted to every recipient: a whole age file, in memory (for artifacts that are
/// made in memory anyway, a report or the page; a core or a bundle streams through
/// [`Encryptor`]).
pub fn seal(recipients: &[Recipient], plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
    let chunks = plaintext.len() / CHUNK + 1;
    let out = Vec::with_capacity(plaintext.len() + chunks * TAG + 256 * recipients.len() + 64);
    let mut enc = Encryptor::new(recipients, out)?;
    enc.write_all(plaintext)
        .and_then(|_| enc.finish())
        .map_err(|source| EncryptError::Seal { source })
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(failed());
        }
        if data.is_empty() {
            return Ok(0);
        }
        // A full chunk is sealed only once more data comes: the last chunk must be flagged so.
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Writes the header if it is still pending and flushes the inner writer; a partial chunk
    /// stays buffered (STREAM seals whole chunks).
    fn flush(&mut self) -> io::Result<()> {
        self.write_header()?;
        self.out()?.flush()
    }
}

/// Identities from one file: an age identity file or an OpenSSH private key. Debug shows only
/// the path and how many there are.
pub struct Identities {
    path: PathBuf,
    keys: Vec<Identity>,
}

enum Identity {
    X25519 {
        secret: StaticSecret,
        public: [u8; 32],
    },
    SshEd25519 {
        ssh_key: Vec<u8>,
        secret: StaticSecret,
        /// The X25519 public key of `secret` (the Ed25519 key as Montgomery).
        public: [u8; 32],
    },
    SshRsa {
        ssh_key: Vec<u8>,
        key: Box<rsa::PrivateKey>,
    },
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("path", &self.path)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Identities {
    /// Identities from an age identity file (`AGE-SECRET-KEY-1…` lines, as age-keygen writes
    /// them; `#` comments and blank lines skipped) or an OpenSSH private key file (unencrypted
    /// ssh-ed25519 or ssh-rsa, as `ssh-keygen -N ''` writes it).
    pub fn from_file(path: &Path) -> Result<Identities, EncryptError> {
        let read_err = |source| EncryptError::ReadIdentities {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        // Sized up front: a Vec that grows would leave copies of the key in freed memory.
        let size = file
            .metadata()
            .map_err(read_err)?
            .len()
            .min(MAX_IDENTITY_FILE)
            + 1;
        let mut bytes = Zeroizing::new(Vec::with_capacity(size as usize));
        file.take(MAX_IDENTITY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        let not = |reason| EncryptError::NotIdentityFile {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() as u64 > MAX_IDENTITY_FILE {
            return Err(not("it is larger than 1 MiB"));
        }
        if bytes.starts_with(MAGIC) {
            return Err(not(
                "it is itself age-encrypted (a passphrase-protected identity file); decrypt it first",
            ));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| not("it is not text"))?;
        let keys = if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            vec![parse_openssh(text, path)?]
        } else if text.contains("PRIVATE KEY-----") {
            return Err(not(
                "it is a PEM private key; `ssh-keygen -p -f FILE` rewrites it in the OpenSSH format",
            ));
        } else {
            parse_age_identities(text, path)?
        };
        if keys.is_empty() {
            return Err(EncryptError::NoIdentities {
                path: path.to_path_buf(),
            });
        }
        Ok(Identities {
            path: path.to_path_buf(),
            keys,
        })
    }

    /// Each identity's public key as a recipient (one that can be encrypted to: an RSA key
    /// under 2048 bits can decrypt but is left out).
    #[cfg(test)]
    pub fn recipients(&self) -> Vec<Recipient> {
        self.keys
            .iter()
            .filter_map(|k| match k {
                Identity::X25519 { public, .. } => {
                    let hrp = bech32::Hrp::parse("age").ok()?;
                    let s = bech32::encode_lower::<bech32::Bech32>(hrp, public).ok()?;
                    Recipient::parse(&s).ok()
                }
                Identity::SshEd25519 { ssh_key, .. } => {
                    Recipient::parse(&format!("ssh-ed25519 {}", SSH_BASE64.encode(ssh_key))).ok()
                }
                Identity::SshRsa { ssh_key, .. } => {
                    Recipient::parse(&format!("ssh-rsa {}", SSH_BASE64.encode(ssh_key))).ok()
                }
            })
            .collect()
    }
}

fn parse_age_identities(text: &str, path: &Path) -> Result<Vec<Identity>, EncryptError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let invalid = |reason| EncryptError::InvalidIdentity {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        if line.starts_with("AGE-PLUGIN-") {
            return Err(invalid("age plugin identities are not supported"));
        }
        if line.starts_with("age1") || line.starts_with("ssh-") {
            return Err(invalid(
                "a public key, not a secret key (give the file that holds the secret key)",
            ));
        }
        if !line.starts_with("AGE-SECRET-KEY-1") {
            return Err(invalid("not an AGE-SECRET-KEY-1… line"));
        }
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<bech32::Bech32>(line)
            .map_err(|_| {
                invalid("not a valid AGE-SECRET-KEY-1… key (a character or the checksum is wrong)")
            })?;
        if checked.data_part_ascii_no_checksum().len() != 52
            || checked.validate_segwit_padding().is_err()
        {
            return Err(invalid("not a 32-byte X25519 secret key"));
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        for (k, b) in secret.iter_mut().zip(checked.byte_iter()) {
            *k = b;
        }
        let secret = StaticSecret::from(*secret);
        let public = PublicKey::from(&secret).to_bytes();
        keys.push(Identity::X25519 { secret, public });
    }
    Ok(keys)
}

/// An unencrypted OpenSSH private key (PROTOCOL.key): `openssh-key-v1`, cipher and KDF `none`,
/// one key; its private section holds the key type and fields, then a comment and padding.
fn parse_openssh(text: &str, path: &Path) -> Result<Identity, EncryptError> {
    let invalid = |reason| EncryptError::InvalidSshKey {
        path: path.to_path_buf(),
        reason,
    };
    let mut b64 = Zeroizing::new(String::new());
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN OPENSSH PRIVATE KEY-----" {
            inside = true;
        } else if line == "-----END OPENSSH PRIVATE KEY-----" {
            inside = false;
            break;
        } else if inside {
            b64.push_str(line);
        }
    }
    if inside {
        return Err(invalid("its END line is missing"));
    }
    let blob = Zeroizing::new(
        SSH_BASE64
            .decode(b64.as_bytes())
            .map_err(|_| invalid("its body is not valid base64"))?,
    );
    let rest = blob
        .strip_prefix(b"openssh-key-v1\0".as_slice())
        .ok_or_else(|| invalid("it does not start with openssh-key-v1"))?;
    let mut w = Wire(rest);
    let (Some(cipher), Some(_kdf), Some(_kdf_options), Some(count)) =
        (w.string(), w.string(), w.string(), w.u32())
    else {
        return Err(invalid("its header is cut short"));
    };
    if cipher != b"none" {
        return Err(EncryptError::EncryptedSshKey {
            path: path.to_path_buf(),
        });
    }
    if count != 1 {
        return Err(invalid("it does not hold exactly one key"));
    }
    let (Some(public), Some(private)) = (w.string(), w.string()) else {
        return Err(invalid("it is cut short"));
    };
    let mut p = Wire(private);
    let (Some(check1), Some(check2), Some(kind)) = (p.u32(), p.u32(), p.string()) else {
        return Err(invalid("its private section is cut short"));
    };
    if check1 != check2 {
        return Err(invalid("its check numbers differ (damaged)"));
    }
    let mut pw = Wire(public);
    if pw.string() != Some(kind) {
        return Err(invalid(
            "its public and private parts are of different types",
        ));
    }
    match kind {
        b"ssh-ed25519" => {
            let (Some(pk), Some(sk)) = (p.string(), p.string()) else {
                return Err(invalid("its Ed25519 key is cut short"));
            };
            // The private key is the 32-byte seed followed by the public key.
            if pk.len() != 32 || sk.len() != 64 || &sk[32..] != pk || pw.string() != Some(pk) {
                return Err(invalid("its Ed25519 key is malformed"));
            }
            let mut scalar = Zeroizing::new([0u8; 32]);
            let mut h = Sha512::digest(&sk[..32]);
            scalar.copy_from_slice(&h[..32]);
            h.as_mut_slice().zeroize();
            let secret = StaticSecret::from(*scalar);
            let public_x = PublicKey::from(&secret).to_bytes();
            Ok(Identity::SshEd25519 {
                ssh_key: public.to_vec(),
                secret,
                public: public_x,
            })
        }
        b"ssh-rsa" => {
            let fields = (
                p.mpint(),
                p.mpint(),
                p.mpint(),
                p.mpint(),
                p.mpint(),
                p.mpint(),
            );
            let (Some(n), Some(e), Some(d), Some(_iqmp), Some(pp), Some(q)) = fields else {
                return Err(invalid("its RSA key is cut short"));
            };
            let (Some(pe), Some(pn)) = (pw.mpint(), pw.mpint()) else {
                return Err(invalid("its RSA public key is malformed"));
            };
            if pe != e || pn != n {
                return Err(invalid("its public and private RSA keys differ"));
            }
            let bits = (n.len() * 8) as u32;
            let key = (|| {
                rsa::PrivateKey::from_components(
                    bigint(n, bits)?,
                    bigint(e, (e.len().max(1) * 8) as u32)?,
                    bigint(d, bits)?,
                    vec![bigint(pp, bits)?, bigint(q, bits)?],
                )
                .ok()
            })()
            .ok_or_else(|| invalid("its RSA key does not check out"))?;
            Ok(Identity::SshRsa {
                ssh_key: public.to_vec(),
                key: Box::new(key),
            })
        }
        other => Err(EncryptError::UnsupportedSshKey {
            path: path.to_path_buf(),
            kind: quoted(&String::from_utf8_lossy(other)),
        }),
    }
}

impl Identity {
    /// The file key, if `stanza` is for this identity. `Err` for a stanza of this identity's
    /// type that is malformed (the header is invalid, whoever it is for).
    fn unwrap(
        &self,
        stanza: &ParsedStanza,
    ) -> Result<Option<Zeroizing<[u8; FILE_KEY]>>, &'static str> {
        match (self, stanza.kind.as_str()) {
            (Identity::X25519 { secret, public }, "X25519") => {
                let [epk] = stanza.args.as_slice() else {
                    return Err("an X25519 stanza does not have exactly one argument");
                };
                let epk = decode_32(epk).ok_or("an X25519 stanza's share is not 32 bytes")?;
                if stanza.body.len() != FILE_KEY + TAG {
                    return Err("an X25519 stanza's body is not 32 bytes");
                }
                let shared = secret.diffie_hellman(&PublicKey::from(epk));
                if !shared.was_contributory() {
                    return Err("an X25519 stanza's share is a low-order point");
                }
                let key = hkdf(&salt(&epk, public), shared.as_bytes(), X25519_LABEL);
                Ok(unwrap_file_key(&key, &stanza.body))
            }
            (
                Identity::SshEd25519 {
                    ssh_key,
                    secret,
                    public,
                },
                "ssh-ed25519",
            ) => {
                let [tag, epk] = stanza.args.as_slice() else {
                    return Err("an ssh-ed25519 stanza does not have two arguments");
                };
                if STANDARD_NO_PAD.decode(tag).ok().as_deref() != Some(&ssh_tag(ssh_key)[..]) {
                    return Ok(None);
                }
                let epk = decode_32(epk).ok_or("an ssh-ed25519 stanza's share is not 32 bytes")?;
                if stanza.body.len() != FILE_KEY + TAG {
                    return Err("an ssh-ed25519 stanza's body is not 32 bytes");
                }
                let dh = secret.diffie_hellman(&PublicKey::from(epk));
                if !dh.was_contributory() {
                    return Err("an ssh-ed25519 stanza's share is a low-order point");
                }
                let tweak = StaticSecret::from(*hkdf(ssh_key, b"", ED25519_LABEL));
                let shared = tweak.diffie_hellman(&PublicKey::from(dh.to_bytes()));
                let key = hkdf(&salt(&epk, public), shared.as_bytes(), ED25519_LABEL);
                Ok(unwrap_file_key(&key, &stanza.body))
            }
            (Identity::SshRsa { ssh_key, key }, "ssh-rsa") => {
                let [tag] = stanza.args.as_slice() else {
                    return Err("an ssh-rsa stanza does not have exactly one argument");
                };
                if STANDARD_NO_PAD.decode(tag).ok().as_deref() != Some(&ssh_tag(ssh_key)[..]) {
                    return Ok(None);
                }
                let padding = rsa::Oaep::<Sha256>::new_with_label(RSA_LABEL);
                let Ok(plain) = key.decrypt_blinded(&mut getrandom::SysRng, padding, &stanza.body)
                else {
                    return Ok(None);
                };
                let plain = Zeroizing::new(plain);
                let file_key: Option<[u8; FILE_KEY]> = plain.as_slice().try_into().ok();
                Ok(file_key.map(Zeroizing::new))
            }
            _ => Ok(None),
        }
    }
}

fn decode_32(b64: &str) -> Option<[u8; 32]> {
    let v = STANDARD_NO_PAD.decode(b64).ok()?;
    v.try_into().ok()
}

/// Whether these bytes start an age file (`age-encryption.org/v1\n`, [`MAGIC`]: read at least
/// its 22 bytes).
pub fn is_age(first_bytes: &[u8]) -> bool {
    first_bytes.starts_with(MAGIC)
}

/// A reader of the plaintext of an age file. Fails with [`EncryptError::NoMatchingIdentity`] when
/// no identity opens it, and on reading with an `io::Error` of kind `InvalidData` for a damaged
/// or truncated payload (a chunk's bytes are returned only after the whole chunk authenticated,
/// so what was read before the error is an intact prefix; treat the error as failure). Errors
/// name the input as "the input"; [`decrypt_named`] names it.
#[cfg(test)]
pub fn decrypt<R: Read>(identities: &Identities, input: R) -> Result<Decrypted<R>, EncryptError> {
    open(identities, input, None)
}

/// [`decrypt`], with `name` (the file or the parts being read) in its errors.
pub fn decrypt_named<R: Read>(
    identities: &Identities,
    input: R,
    name: &Path,
) -> Result<Decrypted<R>, EncryptError> {
    open(identities, input, Some(name.to_path_buf()))
}

/// A stanza as read from a header.
struct ParsedStanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

/// Reads the header from `input` a block at a time; what was read past it starts the payload.
struct HeaderReader<'a, R: Read> {
    input: &'a mut R,
    buf: Vec<u8>,
    /// Start of the next line in `buf`.
    pos: usize,
    name: &'a Option<PathBuf>,
}

impl<R: Read> HeaderReader<'_, R> {
    /// The next line without its `\n`, as `(start, end)` in `buf`.
    fn line(&mut self) -> Result<(usize, usize), EncryptError> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let (start, end) = (self.pos, self.pos + i);
                self.pos = end + 1;
                return Ok((start, end));
            }
            if self.buf.len() > MAX_HEADER {
                return Err(self.invalid("it is longer than 1 MiB"));
            }
            if self.fill()? == 0 {
                return Err(self.invalid("the file ends inside it (truncated)"));
            }
        }
    }

    fn fill(&mut self) -> Result<usize, EncryptError> {
        let at = self.buf.len();
        self.buf.resize(at + 4096, 0);
        loop {
            match self.input.read(&mut self.buf[at..]) {
                Ok(n) => {
                    self.buf.truncate(at + n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    self.buf.truncate(at);
                    return Err(EncryptError::ReadHeader {
                        input: self.name.clone(),
                        source,
                    });
                }
            }
        }
    }

    fn invalid(&self, reason: &'static str) -> EncryptError {
        EncryptError::InvalidHeader {
            input: self.name.clone(),
            reason,
        }
    }
}

fn is_arg(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn open<R: Read>(
    identities: &Identities,
    mut input: R,
    name: Option<PathBuf>,
) -> Result<Decrypted<R>, EncryptError> {
    let mut h = HeaderReader {
        input: &mut input,
        buf: Vec::with_capacity(4096),
        pos: 0,
        name: &name,
    };
    // The version line: anything else is not age (or armored age) and is refused before a
    // long read.
    while h.buf.len() < MAGIC.len() && h.fill()? > 0 {}
    if !is_age(&h.buf) {
        if h.buf.trim_ascii_start().starts_with(b"-----BEGIN AGE") {
            return Err(EncryptError::Armored { input: name });
        }
        return Err(EncryptError::NotAge { input: name });
    }
    h.pos = MAGIC.len();

    let mut stanzas = Vec::new();
    let (mac_at, mac) = loop {
        let (start, end) = h.line()?;
        let line = std::str::from_utf8(&h.buf[start..end])
            .map_err(|_| h.invalid("a line is not ASCII"))?;
        if let Some(mac) = line.strip_prefix("--- ") {
            let mac = STANDARD_NO_PAD
                .decode(mac)
                .ok()
                .filter(|m| m.len() == 32)
                .ok_or_else(|| h.invalid("its MAC is not 32 bytes of base64"))?;
            break (start + 3, mac);
        }
        let Some(words) = line.strip_prefix("-> ") else {
            return Err(h.invalid("a line is neither a stanza (`-> `) nor the MAC (`--- `)"));
        };
        let mut words = words.split(' ');
        let kind = words.next().unwrap_or_default().to_string();
        let args: Vec<String> = words.map(str::to_string).collect();
        if !is_arg(&kind) || !args.iter().all(|a| is_arg(a)) {
            return Err(h.invalid("a stanza's type or arguments are malformed"));
        }
        let mut b64 = String::new();
        loop {
            let (start, end) = h.line()?;
            let line = &h.buf[start..end];
            if line.len() > BODY_COLUMNS {
                return Err(h.invalid("a stanza's body line is longer than 64 columns"));
            }
            b64.push_str(std::str::from_utf8(line).map_err(|_| h.invalid("a line is not ASCII"))?);
            if line.len() < BODY_COLUMNS {
                break;
            }
        }
        let body = STANDARD_NO_PAD
            .decode(&b64)
            .map_err(|_| h.invalid("a stanza's body is not canonical base64"))?;
        stanzas.push(ParsedStanza { kind, args, body });
    };
    if stanzas.is_empty() {
        return Err(h.invalid("it has no recipient stanza"));
    }
    let header_end = h.pos;
    let mut file_key = None;
    'found: for s in &stanzas {
        for id in &identities.keys {
            match id.unwrap(s) {
                Ok(Some(k)) => {
                    file_key = Some(k);
                    break 'found;
                }
                Ok(None) => {}
                Err(reason) => return Err(h.invalid(reason)),
            }
        }
    }
    let Some(file_key) = file_key else {
        return Err(EncryptError::NoMatchingIdentity {
            identities: identities.path.clone(),
            input: name,
        });
    };
    if header_mac(&file_key, &h.buf[..mac_at])
        .verify_slice(&mac)
        .is_err()
    {
        return Err(EncryptError::HeaderMac { input: name });
    }

    // What was read past the header starts the payload (at most one 4 KiB block).
    let mut buf = Zeroizing::new(vec![0u8; CHUNK + TAG + 1]);
    let ahead = h.buf.len() - header_end;
    buf[..ahead].copy_from_slice(&h.buf[header_end..]);
    Ok(Decrypted {
        input,
        file_key: Some(file_key),
        aead: None,
        counter: 0,
        buf,
        filled: ahead,
        chunk: 0,
        pos: 0,
        plain: 0,
        done: false,
        failed: None,
    })
}

/// The plaintext of an age file, a chunk at a time ([`decrypt`]).
pub struct Decrypted<R: Read> {
    input: R,
    /// Until the payload nonce is read and the payload key derived from both.
    file_key: Option<Zeroizing<[u8; FILE_KEY]>>,
    aead: Option<ChaCha20Poly1305>,
    /// The number of the next chunk to open.
    counter: u64,
    /// `CHUNK + TAG + 1` bytes: one whole chunk and one byte more, which tells a chunk that ends
    /// exactly at the end of the file (the last) from one that does not.
    buf: Zeroizing<Vec<u8>>,
    /// Bytes of `buf` read from the input.
    filled: usize,
    /// Ciphertext length of the opened chunk at the front of `buf` (0: none).
    chunk: usize,
    /// Plaintext of the opened chunk is `buf[pos..plain]`.
    pos: usize,
    plain: usize,
    /// The last chunk was opened.
    done: bool,
    /// Why the payload was refused; every later read fails the same way.
    failed: Option<String>,
}

impl<R: Read> Decrypted<R> {
    /// Reads until `buf` is full or the input ends.
    fn fill(&mut self) -> io::Result<()> {
        while self.filled < self.buf.len() {
            match self.input.read(&mut self.buf[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn fail(&mut self, why: String) -> io::Error {
        self.failed = Some(why.clone());
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    fn open_chunk(&mut self, len: usize, last: bool) -> bool {
        let Some(aead) = &self.aead else {
            return false;
        };
        let (ct, rest) = self.buf[..len].split_at_mut(len - TAG);
        let Ok(tag) = <[u8; TAG]>::try_from(&*rest) else {
            return false;
        };
        aead.decrypt_inout_detached(
            &chunk_nonce(self.counter, last),
            b"",
            ct.into(),
            &tag.into(),
        )
        .is_ok()
    }

    /// Drops the consumed chunk and opens the next.
    fn advance(&mut self) -> io::Result<()> {
        if self.chunk > 0 {
            self.buf.copy_within(self.chunk..self.filled, 0);
            self.filled -= self.chunk;
            self.chunk = 0;
        }
        if self.file_key.is_some() {
            self.fill()?;
            if self.filled < PAYLOAD_NONCE {
                return Err(
                    self.fail("the age file is truncated: it ends before its payload".into())
                );
            }
            let nonce = &self.buf[..PAYLOAD_NONCE];
            let key = self.file_key.take().map(|k| hkdf(nonce, &*k, b"payload"));
            self.aead = key.map(|k| aead(&k));
            self.buf.copy_within(PAYLOAD_NONCE..self.filled, 0);
            self.filled -= PAYLOAD_NONCE;
        }
        self.fill()?;
        let n = self.counter;
        let full = CHUNK + TAG;
        if self.filled > full {
            if !self.open_chunk(full, false) {
                return Err(self.fail(format!(
                    "the age payload is damaged: chunk {n} does not authenticate"
                )));
            }
            self.chunk = full;
        } else {
            // The input ended: this is the last chunk.
            let len = self.filled;
            if len < TAG {
                return Err(self.fail(format!("the age file is truncated inside chunk {n}")));
            }
            if len == TAG && n > 0 {
                return Err(self.fail(format!(
                    "the age payload is invalid: its last chunk ({n}) is empty"
                )));
            }
            if !self.open_chunk(len, true) {
                // A whole chunk that opens as a middle one: the file was cut after it.
                let why = if len == full && self.open_chunk(len, false) {
                    format!("the age file is truncated after chunk {n}")
                } else {
                    format!(
                        "the age payload is damaged or truncated: chunk {n} does not authenticate"
                    )
                };
                return Err(self.fail(why));
            }
            self.chunk = len;
            self.done = true;
        }
        self.pos = 0;
        self.plain = self.chunk - TAG;
        self.counter += 1;
        Ok(())
    }
}

impl<R: Read> Read for Decrypted<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(why) = &self.failed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, why.clone()));
            }
            if self.pos < self.plain {
                let n = out.len().min(self.plain - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.advance()?;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// Bytes that do not repeat within a chunk (xorshift), so a misplaced chunk cannot compare
    /// equal.
    fn data(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// A fresh X25519 identity: (its `AGE-SECRET-KEY-1…` line, its `age1…` recipient).
    pub(crate) fn keypair() -> (String, String) {
        let secret = StaticSecret::from(*random::<32>().unwrap());
        let public = PublicKey::from(&secret);
        let sk = bech32::encode_upper::<bech32::Bech32>(
            bech32::Hrp::parse("AGE-SECRET-KEY-").unwrap(),
            secret.as_bytes(),
        )
        .unwrap();
        let pk = bech32::encode_lower::<bech32::Bech32>(
            bech32::Hrp::parse("age").unwrap(),
            public.as_bytes(),
        )
        .unwrap();
        (sk, pk)
    }

    fn identities(dir: &Path, name: &str, text: &str) -> Identities {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Identities::from_file(&path).unwrap()
    }

    /// `plain` encrypted to `recipients`, written `piece` bytes at a time.
    fn encrypt(recipients: &[Recipient], plain: &[u8], piece: usize) -> Vec<u8> {
        let mut e = Encryptor::new(recipients, Vec::new()).unwrap();
        for p in plain.chunks(piece.max(1)) {
            e.write_all(p).unwrap();
        }
        e.finish().unwrap()
    }

    /// What a reader returns before it fails (or ends), read `piece` bytes at a time.
    fn read_until_error(r: &mut impl Read, piece: usize) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn decrypt_all(ids: &Identities, file: &[u8]) -> io::Result<Vec<u8>> {
        let mut r = decrypt(ids, file).map_err(io::Error::other)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Where the payload (its nonce) starts: after the MAC line.
    fn header_len(file: &[u8]) -> usize {
        let mac = file.windows(4).position(|w| w == b"--- ").unwrap();
        mac + file[mac..].iter().position(|&b| b == b'\n').unwrap() + 1
    }

    #[test]
    fn round_trips_at_chunk_boundaries_to_one_and_two_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let (sk1, pk1) = keypair();
        let (sk2, pk2) = keypair();
        let id1 = identities(dir.path(), "one", &format!("# created: now\n{sk1}\n"));
        let id2 = identities(dir.path(), "two", &format!("{sk2}\r\n\r\n"));
        let r1 = Recipient::parse(&pk1).unwrap();
        let r2 = Recipient::parse(&format!("  {pk2}\n")).unwrap();
        assert_eq!(r1.public(), pk1);
        assert_eq!(r2.public(), pk2);
        let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, (3 << 20) + 5];
        for n in sizes {
            let plain = data(n);
            // Written whole, in odd pieces and a byte at a time (small sizes only).
            for piece in [n, 1000, 1] {
                if piece == 1 && n > 2 * CHUNK {
                    continue;
                }
                let one = encrypt(std::slice::from_ref(&r1), &plain, piece);
                assert!(is_age(&one));
                let chunks = n.div_ceil(CHUNK).max(1);
                assert_eq!(
                    one.len(),
                    header_len(&one) + PAYLOAD_NONCE + n + chunks * TAG,
                    "{n}"
                );
                assert_eq!(decrypt_all(&id1, &one).unwrap(), plain, "{n} bytes");

                let two = encrypt(&[r1.clone(), r2.clone()], &plain, piece);
                assert_eq!(
                    decrypt_all(&id1, &two).unwrap(),
                    plain,
                    "{n} bytes, first key"
                );
                assert_eq!(
                    decrypt_all(&id2, &two).unwrap(),
                    plain,
                    "{n} bytes, second key"
                );
            }
        }
        // Read back in small, odd pieces too.
        let plain = data(2 * CHUNK + 3);
        let file = encrypt(&[r2], &plain, plain.len());
        let (got, err) = read_until_error(&mut decrypt(&id2, &file[..]).unwrap(), 7);
        assert!(err.is_none());
        assert_eq!(got, plain);
    }

    #[test]
    fn seal_is_the_streaming_encryption_in_one_call() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair();
        let ids = identities(dir.path(), "k", &format!("{sk}\n"));
        let r = [Recipient::parse(&pk).unwrap()];
        for n in [0, 5, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let plain = data(n);
            let sealed = seal(&r, &plain).unwrap();
            assert!(is_age(&sealed));
            assert_eq!(sealed.len(), encrypt(&r, &plain, 1000).len(), "{n}");
            assert_eq!(decrypt_all(&ids, &sealed).unwrap(), plain, "{n}");
        }
        assert!(matches!(seal(&[], b"x"), Err(EncryptError::NoRecipients)));
    }

    #[test]
    fn two_encryptions_of_the_same_bytes_differ() {
        let (_, pk) = keypair();
        let r = [Recipient::parse(&pk).unwrap()];
        let a = encrypt(&r, b"same", 4);
        let b = encrypt(&r, b"same", 4);
        assert_ne!(a, b, "file key and nonce are random");
    }

    /// Records what reaches the inner writer.
    #[derive(Default)]
    struct Record(Vec<usize>, Vec<u8>);
    impl Write for &mut Record {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.len());
            self.1.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn memory_is_one_chunk_and_output_follows_a_chunk_at_a_time() {
        let (_, pk) = keypair();
        let mut rec = Record::default();
        let mut e = Encryptor::new(&[Recipient::parse(&pk).unwrap()], &mut rec).unwrap();
        let block = data(CHUNK);
        e.write_all(&block).unwrap();
        // A full chunk waits for more data: only then is it known not to be the last.
        e.write_all(&block).unwrap();
        e.write_all(&block).unwrap();
        e.write_all(b"x").unwrap();
        assert!(e.buf.capacity() <= CHUNK + TAG, "{}", e.buf.capacity());
        drop(e);
        // The header, then the three whole chunks, each sealed as the next byte came; the last
        // byte waits in the buffer for more or for finish.
        assert_eq!(&rec.0[1..], [CHUNK + TAG; 3], "{:?}", rec.0);
        // Dropped without finish: no reader accepts the output as whole.
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair();
        let ids = identities(dir.path(), "k", &sk);
        let mut rec = Record::default();
        let mut e = Encryptor::new(&[Recipient::parse(&pk).unwrap()], &mut rec).unwrap();
        e.write_all(&data(3 * CHUNK)).unwrap();
        e.flush().unwrap();
        drop(e);
        let err = decrypt_all(&ids, &rec.1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("truncated after chunk 1"), "{err}");
    }

    /// Gives at most 3 bytes a read, with an `Interrupted` between reads.
    struct Trickle<'a>(&'a [u8], bool);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Takes `room` bytes, then fails.
    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = b.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_reads_and_failing_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair();
        let ids = identities(dir.path(), "k", &sk);
        let r = [Recipient::parse(&pk).unwrap()];
        let plain = data(CHUNK + 10);
        let file = encrypt(&r, &plain, 4096);
        let mut out = Vec::new();
        decrypt(&ids, Trickle(&file, false))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
        // The output fails inside the first chunk: that write and every later one fail.
        let mut e = Encryptor::new(&r, Full(1000)).unwrap();
        e.write_all(&plain[..CHUNK]).unwrap();
        assert!(e.write_all(&plain[CHUNK..]).is_err());
        assert!(e.write(b"more").is_err());
        assert!(e.finish().is_err());
    }

    #[test]
    fn a_wrong_identity_is_named_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, pk) = keypair();
        let (sk_other, _) = keypair();
        let other = identities(dir.path(), "other.txt", &sk_other);
        let file = encrypt(&[Recipient::parse(&pk).unwrap()], b"secret", 6);
        let err = decrypt_named(&other, &file[..], Path::new("core.1.x.core.gz.age"))
            .err()
            .unwrap();
        assert!(
            matches!(err, EncryptError::NoMatchingIdentity { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "none of the identities in {} can decrypt core.1.x.core.gz.age",
                dir.path().join("other.txt").display()
            )
        );
        let err = decrypt(&other, &file[..]).err().unwrap();
        assert!(err.to_string().ends_with("can decrypt the input"), "{err}");
    }

    #[test]
    fn truncation_anywhere_fails_and_only_whole_chunks_come_out() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair();
        let ids = identities(dir.path(), "k", &sk);
        let plain = data(2 * CHUNK + 100);
        let file = encrypt(&[Recipient::parse(&pk).unwrap()], &plain, plain.len());
        let h = header_len(&file);
        let c = CHUNK + TAG;
        let p = h + PAYLOAD_NONCE;
        // (cut at, plaintext that may come out before the error)
        let payload_cuts = [
            (h, 0),
            (h + 5, 0),
            (p, 0),
            (p + 10, 0),
            (p + c, 0),
            (p + c + 1, CHUNK),
            (p + 2 * c, CHUNK),
            (p + 2 * c + 1, 2 * CHUNK),
            (file.len() - TAG, 2 * CHUNK),
            (file.len() - 1, 2 * CHUNK),
        ];
        for (cut, prefix) in payload_cuts {
            let mut r = decrypt(&ids, &file[..cut]).unwrap();
            let (got, err) = read_until_error(&mut r, 1 << 20);
            let err = err.unwrap_or_else(|| panic!("cut at {cut}: accepted"));
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidData,
                "cut at {cut}: {err}"
            );
            assert_eq!(got.len(), prefix, "cut at {cut}");
            assert_eq!(got, plain[..prefix]);
            // And it stays failed.
            assert!(r.read(&mut [0u8; 16]).is_err());
        }
        for cut in [0, 10, MAGIC.len(), h - 5, h - 1] {
            let err = decrypt(&ids, &file[..cut]).err().unwrap();
            match err {
                EncryptError::InvalidHeader { .. } | EncryptError::NotAge { .. } => {}
                e => panic!("cut at {cut}: {e:?}"),
            }
        }
        // A byte more at the end is damage too.
        let mut longer = file.clone();
        longer.push(0);
        let (got, err) = read_until_error(&mut decrypt(&ids, &longer[..]).unwrap(), 1 << 20);
        assert_eq!(err.unwrap().kind(), io::ErrorKind::InvalidData);
        assert_eq!(got, plain[..2 * CHUNK]);
    }

    #[test]
    fn a_flipped_byte_fails_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair();
        let ids = identities(dir.path(), "k", &sk);
        let plain = data(3 * CHUNK);
        let file = encrypt(&[Recipient::parse(&pk).unwrap()], &plain, plain.len());
        let p = header_len(&file) + PAYLOAD_NONCE;
        let c = CHUNK + TAG;
        // In chunk 1 (data, then its tag): chunk 0 comes out, nothing of chunk 1 or after.
        for at in [p + c + 100, p + 2 * c - 1] {
            let mut bad = file.clone();
            bad[at] ^= 0x01;
            let mut r = decrypt(&ids, &bad[..]).unwrap();
            let (got, err) = read_until_error(&mut r, 4096);
            let err = err.unwrap();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains("chunk 1"), "{err}");
            assert_eq!(got, plain[..CHUNK]);
        }
        // In the payload nonce: the payload key is wrong, chunk 0 fails.
        let mut bad = file.clone();
        bad[p - 1] ^= 0x80;
        let (got, err) = read_until_error(&mut decrypt(&ids, &bad[..]).unwrap(), 4096);
        assert!(got.is_empty() && err.unwrap().kind() == io::ErrorKind::InvalidData);
        // In the MAC: the header is refused.
        let mac = file.windows(4).position(|w| w == b"--- ").unwrap() + 4;
        let mut bad = file.clone();
        bad[mac] = if bad[mac] == b'A' { b'B' } else { b'A' };
        let err = decrypt(&ids, &bad[..]).err().unwrap();
        assert!(matches!(err, EncryptError::HeaderMac { .. }), "{err:?}");
        // In the stanza's ephemeral share: the file key does not unwrap.
        let share = file.windows(10).position(|w| w == b"-> X25519 ").unwrap() + 10;
        let mut bad = file.clone();
        bad[share] = if bad[share] == b'A' { b'B' } else { b'A' };
        let err = decrypt(&ids, &bad[..]).err().unwrap();
        assert!(
            matches!(err, EncryptError::NoMatchingIdentity { .. }),
            "{err:?}"
        );
        // In the version line.
        let mut bad = file.clone();
        bad[4] ^= 0x20;
        let err = decrypt(&ids, &bad[..]).err().unwrap();
        assert!(matches!(err, EncryptError::NotAge { .. }), "{err:?}");
    }

    #[test]
    fn headers_from_elsewhere_are_read_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair();
        let ids = identities(dir.path(), "k", &sk);
        assert!(matches!(
            decrypt(&ids, &b""[..]).err().unwrap(),
            EncryptError::NotAge { .. }
        ));
        assert!(matches!(
            decrypt(&ids, &b"\x1f\x8b\x08\x00"[..]).err().unwrap(),
            EncryptError::NotAge { .. }
        ));
        let armored =
            b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n";
        assert!(matches!(
            decrypt(&ids, &armored[..]).err().unwrap(),
            EncryptError::Armored { .. }
        ));
        assert!(!is_age(b"age-encryption.org/v1"));
        assert!(!is_age(b"age-encryption.org/v2\n"));
        // Stanzas of other types (another tool's recipients, rage's grease) are skipped, before
        // and after ours; a body of exactly 64 columns is followed by an empty line.
        let file_key = random::<FILE_KEY>().unwrap();
        let grease = |body: usize| Stanza {
            kind: "grease-x".into(),
            args: vec!["a+b".into(), "!".into()],
            body: data(body),
        };
        let ours = Recipient::parse(&pk).unwrap().wrap(&file_key).unwrap();
        let stanzas = [grease(48), ours, grease(0), grease(100)];
        let mut e = Encryptor::with_stanzas(&file_key, &stanzas, Vec::new()).unwrap();
        e.write_all(b"payload").unwrap();
        let file = e.finish().unwrap();
        let h = header_len(&file);
        let header = std::str::from_utf8(&file[..h]).unwrap();
        assert!(header.contains(&format!(
            "-> grease-x a+b !\n{}\n\n->",
            STANDARD_NO_PAD.encode(data(48))
        )));
        assert_eq!(decrypt_all(&ids, &file).unwrap(), b"payload");

        let file = encrypt(&[Recipient::parse(&pk).unwrap()], b"payload", 7);
        let h = header_len(&file);
        let text = std::str::from_utf8(&file[..h]).unwrap();
        let (intro, rest) = text.split_at(MAGIC.len());
        let extra = format!("-> grease-x a+b !\n{}\n\n", "A".repeat(64));
        // The MAC covers the header, so the edited header no longer verifies: refused as damaged,
        // after the stanza parsed and the file key unwrapped.
        let edited = [
            intro.as_bytes(),
            extra.as_bytes(),
            rest.as_bytes(),
            &file[h..],
        ]
        .concat();
        assert!(matches!(
            decrypt(&ids, &edited[..]).err().unwrap(),
            EncryptError::HeaderMac { .. }
        ));
        for (bad, why) in [
            ("-> \nAAAA\n", "empty type"),
            ("-> X25519  a\nAAAA\n", "empty argument"),
            ("->X25519 a\nAAAA\n", "no space"),
            ("-> t\nA===\n", "padded body"),
            (&format!("-> t\n{}\n", "A".repeat(65)), "long body line"),
            ("-> X25519 AAAA\nAAAA\n", "short share"),
        ] {
            let edited = [
                intro.as_bytes(),
                bad.as_bytes(),
                rest.as_bytes(),
                &file[h..],
            ]
            .concat();
            match decrypt(&ids, &edited[..]).err().unwrap() {
                EncryptError::InvalidHeader { .. } => {}
                e => panic!("{why}: {e:?}"),
            }
        }
    }

    #[test]
    fn bad_recipients_are_refused_with_the_reason() {
        let (sk, pk) = keypair();
        let mut bad_checksum = pk.clone();
        let last = bad_checksum.pop().unwrap();
        bad_checksum.push(if last == 'q' { 'p' } else { 'q' });
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN";
        let rsa_as_ed = "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQDE7nIXTGNuaRBN9toI";
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHFliOyIZs1gxGF3fmDxFykQhE88wy6AKDGFBfn0R6ZuvRmENABZQa9+pj9hMki+LX0qDJbmHTiWDbYv/cmFt/Q=";
        assert!(matches!(Recipient::parse(ed), Ok(Recipient::SshEd25519(_))));
        assert_eq!(
            Recipient::parse(&format!("{ed} alice@rust"))
                .unwrap()
                .public(),
            ed
        );
        let invalid = [
            "",
            "   ",
            "age1",
            "age1qqqq",
            &bad_checksum,
            &pk.to_uppercase(),
            &pk[..pk.len() - 1],
            "ssh-ed25519",
            "ssh-ed25519 !!!!",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW",
            rsa_as_ed,
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN",
            "hello",
            "\x1b[31mred",
        ];
        for s in invalid {
            match Recipient::parse(s) {
                Err(EncryptError::InvalidRecipient { input, .. }) => {
                    assert!(!input.contains('\x1b'), "{input}")
                }
                other => panic!("{s:?}: {other:?}"),
            }
        }
        assert!(matches!(
            Recipient::parse(ecdsa),
            Err(EncryptError::UnsupportedRecipient { kind }) if kind == "ecdsa-sha2-nistp256"
        ));
        let plugin = bech32::encode_lower::<bech32::Bech32>(
            bech32::Hrp::parse("age1yubikey").unwrap(),
            &[7u8; 33],
        )
        .unwrap();
        assert!(matches!(
            Recipient::parse(&plugin),
            Err(EncryptError::UnsupportedRecipient { .. })
        ));
        // A secret key given as a recipient is refused without being repeated.
        for s in [sk.clone(), sk.to_lowercase(), format!(" {sk} ")] {
            let err = Recipient::parse(&s).unwrap_err();
            assert!(matches!(err, EncryptError::SecretKeyAsRecipient));
            assert!(!err.to_string().contains(&sk[16..]), "{err}");
        }
        // A low-order X25519 point parses but cannot be encrypted to.
        let zero =
            bech32::encode_lower::<bech32::Bech32>(bech32::Hrp::parse("age").unwrap(), &[0u8; 32])
                .unwrap();
        let r = Recipient::parse(&zero).unwrap();
        assert!(matches!(
            Encryptor::new(&[r], Vec::new()).err().unwrap(),
            EncryptError::LowOrderRecipient { .. }
        ));
        assert!(matches!(
            Encryptor::new(&[], Vec::new()).err().unwrap(),
            EncryptError::NoRecipients
        ));
    }

    #[test]
    fn recipients_files_skip_comments_and_name_the_bad_line() {
        let (_, pk1) = keypair();
        let (_, pk2) = keypair();
        let path = Path::new("team.txt");
        let text = format!("# the team\n\n{pk1}\r\n  # indented comment\n{pk2} \n");
        let rs = parse_recipients_file(&text, path).unwrap();
        assert_eq!(
            rs.iter().map(Recipient::public).collect::<Vec<_>>(),
            [pk1.as_str(), pk2.as_str()]
        );
        let err = parse_recipients_file(&format!("{pk1}\n\nage1nope\n"), path).unwrap_err();
        assert!(
            matches!(err, EncryptError::RecipientsFileLine { line: 3, .. }),
            "{err:?}"
        );
        assert_eq!(
            crate::error::chain(&err),
            "team.txt line 3: invalid recipient `age1nope`: not a valid bech32 age1… key \
             (a character or the checksum is wrong)"
        );
        for empty in ["", "# nobody\n\n"] {
            assert!(matches!(
                parse_recipients_file(empty, path).unwrap_err(),
                EncryptError::NoRecipientsInFile { .. }
            ));
        }
    }

    #[test]
    fn identity_files_refuse_what_they_cannot_use_without_echoing_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            Identities::from_file(&p)
        };
        let two = write("two", &format!("{sk}\n{}\n", keypair().0)).unwrap();
        assert_eq!(two.keys.len(), 2);
        assert_eq!(two.recipients()[0].public(), pk);
        assert!(!format!("{two:?}").contains(&sk[16..]));
        let mut bad = sk.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'Q' { 'P' } else { 'Q' });
        for (text, line) in [
            (format!("# k\n{bad}\n"), 2),
            (format!("{sk}\n{pk}\n"), 2),
            (format!("{sk}\nAGE-PLUGIN-YUBIKEY-1QQQQ\n"), 2),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN\n".to_string(), 1),
            ("hello\n".to_string(), 1),
        ] {
            let err = write("bad", &text).unwrap_err();
            assert!(
                matches!(err, EncryptError::InvalidIdentity { line: l, .. } if l == line),
                "{text}: {err:?}"
            );
            let shown = crate::error::chain(&err);
            assert!(!shown.contains(&bad[16..]) && !shown.contains(&sk[16..]), "{shown}");
        }
        assert!(matches!(
            write("empty", "# nothing\n").unwrap_err(),
            EncryptError::NoIdentities { .. }
        ));
        assert!(matches!(
            write(
                "pem",
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            )
            .unwrap_err(),
            EncryptError::NotIdentityFile { .. }
        ));
        let aged = [MAGIC, b"-> scrypt x 18\n"].concat();
        std::fs::write(dir.path().join("aged"), aged).unwrap();
        assert!(matches!(
            Identities::from_file(&dir.path().join("aged")).unwrap_err(),
            EncryptError::NotIdentityFile { .. }
        ));
        assert!(matches!(
            Identities::from_file(&dir.path().join("missing")).unwrap_err(),
            EncryptError::ReadIdentities { .. }
        ));
        // A whole core given as the identity file is not read whole.
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_IDENTITY_FILE * 64)
            .unwrap();
        assert!(matches!(
            Identities::from_file(&big).unwrap_err(),
            EncryptError::NotIdentityFile { .. }
        ));
    }

    // The real `age`, `age-keygen` (Debian's `age`) and `ssh-keygen` (openssh-client), in both
    // directions. A missing tool fails the test: these are what prove the format.

    fn tool(name: &str) -> Command {
        let probe = Command::new(name).arg("--version").output();
        if let Err(e) = probe {
            panic!("`{name}` cannot run ({e}): install Debian's `age` and `openssh-client`");
        }
        Command::new(name)
    }

    fn run(cmd: &mut Command) -> std::process::Output {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
        let key = dir.join(name);
        run(tool("age-keygen").arg("-o").arg(&key));
        let out = run(tool("age-keygen").arg("-y").arg(&key));
        (
            key,
            String::from_utf8(out.stdout).unwrap().trim().to_string(),
        )
    }

    fn ssh_keygen(dir: &Path, kind: &str, bits: Option<&str>, pass: &str) -> (PathBuf, String) {
        let key = dir.join(format!("id_{kind}_{}_{}", bits.unwrap_or(""), pass.len()));
        let mut cmd = tool("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", pass, "-C", "ci@example", "-f"])
            .arg(&key);
        if let Some(b) = bits {
            cmd.args(["-b", b]);
        }
        run(&mut cmd);
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        (key, public.trim().to_string())
    }

    /// Ours to `recipients`, then `age -d -i` with each identity gives the bytes back.
    fn ours_then_age(dir: &Path, recipients: &[&str], identities: &[&Path], plain: &[u8]) {
        let rs: Vec<Recipient> = recipients
            .iter()
            .map(|r| Recipient::parse(r).unwrap())
            .collect();
        let f = dir.join("ours.age");
        std::fs::write(&f, encrypt(&rs, plain, 10_000)).unwrap();
        for id in identities {
            let out = run(tool("age").arg("-d").arg("-i").arg(id).arg(&f));
            assert!(
                out.stdout == plain,
                "age -d -i {} of {} bytes",
                id.display(),
                plain.len()
            );
        }
    }

    /// `age` to `recipients` (given as -r or, for SSH keys, -R files), then ours with each
    /// identity file gives the bytes back.
    fn age_then_ours(dir: &Path, recipients: &[&str], identities: &[&Path], plain: &[u8]) {
        let input = dir.join("plain");
        std::fs::write(&input, plain).unwrap();
        let f = dir.join("theirs.age");
        let mut cmd = tool("age");
        for r in recipients {
            cmd.arg("-r").arg(r);
        }
        run(cmd.arg("-o").arg(&f).arg(&input));
        let file = std::fs::read(&f).unwrap();
        for id in identities {
            let ids = Identities::from_file(id).unwrap();
            assert!(
                decrypt_all(&ids, &file).unwrap() == plain,
                "ours with {}",
                id.display()
            );
        }
    }

    #[test]
    fn interop_x25519_with_age_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, p1) = age_keygen(dir.path(), "k1.txt");
        let (k2, p2) = age_keygen(dir.path(), "k2.txt");
        for n in [0, CHUNK, 3 * CHUNK + 17] {
            let plain = data(n);
            ours_then_age(dir.path(), &[&p1], &[&k1], &plain);
            age_then_ours(dir.path(), &[&p1], &[&k1], &plain);
        }
        let plain = data(CHUNK + 1);
        ours_then_age(dir.path(), &[&p1, &p2], &[&k1, &k2], &plain);
        age_then_ours(dir.path(), &[&p1, &p2], &[&k1, &k2], &plain);
        // The wrong key: age refuses ours, we refuse age's.
        let (k3, _) = age_keygen(dir.path(), "k3.txt");
        let f = dir.path().join("ours.age");
        let out = tool("age")
            .arg("-d")
            .arg("-i")
            .arg(&k3)
            .arg(&f)
            .output()
            .unwrap();
        assert!(!out.status.success() && out.stdout.is_empty());
        let theirs = std::fs::read(dir.path().join("theirs.age")).unwrap();
        let ids = Identities::from_file(&k3).unwrap();
        let err = decrypt_named(&ids, &theirs[..], Path::new("theirs.age"))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "none of the identities in {} can decrypt theirs.age",
                k3.display()
            )
        );
    }

    #[test]
    fn interop_ssh_ed25519_with_age_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = ssh_keygen(dir.path(), "ed25519", None, "");
        assert!(public.ends_with(" ci@example"));
        let r = Recipient::parse(&public).unwrap();
        assert!(matches!(r, Recipient::SshEd25519(_)));
        assert!(!r.public().contains("ci@example"));
        let ids = Identities::from_file(&key).unwrap();
        assert_eq!(ids.recipients()[0].public(), r.public());
        let plain = data(2 * CHUNK + 5);
        ours_then_age(dir.path(), &[&public], &[&key], &plain);
        age_then_ours(dir.path(), &[&public], &[&key], &plain);
        // Mixed with an X25519 recipient, each key opens it.
        let (k, p) = age_keygen(dir.path(), "k.txt");
        ours_then_age(dir.path(), &[&p, &public], &[&key, &k], &plain);
        age_then_ours(dir.path(), &[&public, &p], &[&key, &k], &plain);
    }

    #[test]
    fn interop_ssh_rsa_with_age_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        // ssh-keygen's default size (3072 bits), and 2048, age's minimum.
        for bits in [None, Some("2048")] {
            let (key, public) = ssh_keygen(dir.path(), "rsa", bits, "");
            let r = Recipient::parse(&public).unwrap();
            assert!(matches!(r, Recipient::SshRsa(_)));
            let ids = Identities::from_file(&key).unwrap();
            assert_eq!(ids.recipients()[0].public(), r.public());
            let plain = data(CHUNK + 3);
            ours_then_age(dir.path(), &[&public], &[&key], &plain);
            age_then_ours(dir.path(), &[&public], &[&key], &plain);
        }
        // Smaller keys are refused as recipients, as age refuses them.
        let (_, small) = ssh_keygen(dir.path(), "rsa", Some("1024"), "");
        assert!(matches!(
            Recipient::parse(&small),
            Err(EncryptError::RsaKeySize { bits: 1024 })
        ));
    }

    #[test]
    fn ssh_keys_corecatch_cannot_use_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = ssh_keygen(dir.path(), "ed25519", None, "a passphrase");
        let err = Identities::from_file(&key).unwrap_err();
        assert!(
            matches!(err, EncryptError::EncryptedSshKey { .. }),
            "{err:?}"
        );
        let (key, public) = ssh_keygen(dir.path(), "ecdsa", None, "");
        assert!(matches!(
            Recipient::parse(&public),
            Err(EncryptError::UnsupportedRecipient { kind }) if kind == "ecdsa-sha2-nistp256"
        ));
        let err = Identities::from_file(&key).unwrap_err();
        assert!(
            matches!(&err, EncryptError::UnsupportedSshKey { kind, .. } if kind == "ecdsa-sha2-nistp256"),
            "{err:?}"
        );
        // The public key file given as the identity.
        let err = Identities::from_file(&key.with_extension("pub")).unwrap_err();
        assert!(
            matches!(err, EncryptError::InvalidIdentity { line: 1, .. }),
            "{err:?}"
        );
        // An ssh-ed25519 key opens only its own stanzas: another ed25519 key gets no match.
        let (k1, p1) = ssh_keygen(dir.path(), "ed25519", None, "");
        let other_dir = tempfile::tempdir().unwrap();
        let (k2, _) = ssh_keygen(other_dir.path(), "ed25519", None, "");
        let file = encrypt(&[Recipient::parse(&p1).unwrap()], b"x", 1);
        assert!(decrypt_all(&Identities::from_file(&k1).unwrap(), &file).unwrap() == b"x");
        let err = decrypt(&Identities::from_file(&k2).unwrap(), &file[..])
            .err()
            .unwrap();
        assert!(matches!(err, EncryptError::NoMatchingIdentity { .. }));
    }
}
