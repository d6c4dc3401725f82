//! TLS for the server's listener: the OpenSSL acceptor built from
//! `tls.cert` and `tls.key` ([`tls_acceptor`]), and the warning for plain
//! HTTP off loopback. Used by `serve` and `serve --replica`.

use std::fs;
use std::path::Path;

use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod, SslVersion};

use crate::config;

/// Why the TLS settings cannot be used: one line naming the setting and
/// the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The TLS server context for `tls`: the certificate chain (the leaf
/// first, then any intermediates) and the private key from PEM files,
/// TLS 1.2 at least, Mozilla's "intermediate" cipher suites.
///
/// Every failure is one line naming the setting and the file: missing or
/// unreadable, no certificate in it, not a private key (or an encrypted
/// one), or a key that does not match the certificate.
pub fn tls_acceptor(tls: &config::Tls) -> Result<SslAcceptorBuilder, TlsError> {
    let result = build_tls_acceptor(tls);
    // OpenSSL leaves its reasons on the thread's error queue; the errors
    // built in `build_tls_acceptor` already say what went wrong.
    let _ = openssl::error::ErrorStack::get();
    result
}

fn build_tls_acceptor(tls: &config::Tls) -> Result<SslAcceptorBuilder, TlsError> {
    let cert_path = tls.cert.display();
    let key_path = tls.key.display();
    let read = |setting: &str, path: &Path| {
        fs::read(path)
            .map_err(|e| TlsError(format!("cannot read {setting} {}: {e}", path.display())))
    };
    let cert_pem = read("tls.cert", &tls.cert)?;
    let key_pem = read("tls.key", &tls.key)?;

    let chain = openssl::x509::X509::stack_from_pem(&cert_pem)
        .map_err(|_| TlsError(format!("tls.cert {cert_path}: not a PEM certificate chain")))?;
    let mut chain = chain.into_iter();
    let leaf = chain.next().ok_or_else(|| {
        TlsError(format!(
            "tls.cert {cert_path}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)"
        ))
    })?;
    if key_pem
        .windows(b"ENCRYPTED".len())
        .any(|w| w == b"ENCRYPTED")
    {
        return Err(TlsError(format!(
            "tls.key {key_path}: the private key is encrypted; give an unencrypted PEM key \
             (readable by the server's user only)"
        )));
    }
    // A callback that supplies no passphrase: OpenSSL must never prompt.
    let key =
        openssl::pkey::PKey::private_key_from_pem_callback(&key_pem, |_| Ok(0)).map_err(|_| {
            TlsError(format!(
                "tls.key {key_path}: not a PEM private key (expected -----BEGIN PRIVATE KEY-----)"
            ))
        })?;
    let setup = |e: openssl::error::ErrorStack| {
        TlsError(format!(
            "cannot set up TLS with tls.cert {cert_path} and tls.key {key_path}: {}",
            one_line(&e.to_string())
        ))
    };
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    builder.set_certificate(&leaf).map_err(|e| {
        TlsError(format!(
            "tls.cert {cert_path}: unusable certificate: {}",
            one_line(&e.to_string())
        ))
    })?;
    for intermediate in chain {
        builder.add_extra_chain_cert(intermediate).map_err(setup)?;
    }
    // OpenSSL checks here that the key belongs to the certificate.
    let mismatch = |_| {
        TlsError(format!(
            "tls.key {key_path} does not match the certificate in tls.cert {cert_path}"
        ))
    };
    builder.set_private_key(&key).map_err(mismatch)?;
    builder.check_private_key().map_err(mismatch)?;
    if let Ok(now) = openssl::asn1::Asn1Time::days_from_now(0) {
        if leaf.not_after() < now {
            tracing::warn!(cert = %cert_path, not_after = %leaf.not_after(), "the TLS certificate has expired");
        }
    }
    Ok(builder)
}

/// Warns, once at start, that plain HTTP on an address other hosts can
/// reach carries admin tokens and API requests in clear.
pub fn warn_if_plain_http_off_loopback(addr: std::net::SocketAddr) {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "serving plain HTTP on a non-loopback address: bearer tokens and admin requests \
             cross the network unencrypted; set tls.cert and tls.key, or listen on 127.0.0.1 \
             behind a TLS-terminating proxy"
        );
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
