//! The blocking HTTP client CircleCI's API and debuginfod share (ureq over rustls): its TLS
//! roots. A CI image's own certificate store is trusted when it has one (a company proxy's CA
//! is usually only there), found where OpenSSL-based tools look (`SSL_CERT_FILE`, then the
//! distributions' bundle files); otherwise Mozilla's roots compiled into the binary, so the
//! static release binary also works in an image without a store (`scratch`, distroless).

use std::path::{Path, PathBuf};

/// The bundle files of the common distributions, in the order Go's crypto/x509 tries them.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
    "/etc/ssl/cert.pem",                  // Alpine, macOS
];

/// The certificates of the first bundle that holds any (`SSL_CERT_FILE` first when set), or
/// none: then the compiled-in roots are used.
fn system_roots() -> Option<(PathBuf, Vec<ureq::tls::Certificate<'static>>)> {
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    env.into_iter()
        .chain(BUNDLES.iter().map(PathBuf::from))
        .find_map(|path| {
            let certs = certificates_in(&path);
            (!certs.is_empty()).then_some((path, certs))
        })
}

/// The certificates of a PEM file (others items and unreadable files: none).
fn certificates_in(path: &Path) -> Vec<ureq::tls::Certificate<'static>> {
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

/// An agent configuration with the roots chosen as above.
pub fn config_builder() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let roots = match system_roots() {
        Some((_, certs)) => ureq::tls::RootCerts::new_with_certs(&certs),
        None => ureq::tls::RootCerts::WebPki,
    };
    let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
    ureq::Agent::config_builder().tls_config(tls)
}
