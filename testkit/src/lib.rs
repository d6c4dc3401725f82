//! keyshare-testkit: what the tests of several keyshare crates need alike.
//!
//! Only ever a `[dev-dependencies]` entry, below the server and the client
//! (it may use `keyshare-policy`, never them). Today: X.509 certificates
//! made with OpenSSL ([`CertBuilder`]) — self-signed CAs for trust
//! documents and notation exports, CI CAs, loopback TLS certificates;
//! air-gap bundle files crafted as an attacker would ([`crafted`]);
//! [`read_trust_set`], the trust state a verifier gets from a published
//! repository; and the small builders of [`fixture`]: an in-memory signer
//! ([`signer`]), a namespace name ([`ns`]), a settable clock
//! ([`TestClock`]), the Python with python-tuf ([`python`]) and a man page
//! rendered as text ([`fixture::render_man_page`]); and
//! [`legacy`], a repository rewritten into the layout of earlier versions
//! (a role per namespace) for the migration's tests; [`memory`], the peak
//! resident memory of a child process, for the memory-bound tests.
//!
//! Test support panics on failure (a broken fixture is a broken test), so
//! the usual lints against `unwrap`/`expect` are lifted here.

#![forbid(unsafe_code)]
#![allow(clippy::expect_used)]

pub mod crafted;
pub mod fixture;
pub mod legacy;
pub mod memory;
pub mod postgres;

pub use fixture::{ns, python, signer, TestClock};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

/// A certificate and its private key.
#[derive(Debug, Clone)]
pub struct Cert {
    /// The certificate.
    pub cert: X509,
    /// Its private key.
    pub key: PKey<Private>,
}

impl Cert {
    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().expect("certificate PEM")).expect("PEM is ASCII")
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        String::from_utf8(self.key.private_key_to_pem_pkcs8().expect("key PEM"))
            .expect("PEM is ASCII")
    }
}

/// The kinds of key a certificate may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA over P-256 (the default).
    P256,
    /// Ed25519.
    Ed25519,
}

#[derive(Debug, Clone, Copy)]
enum Validity {
    /// From now for this many days.
    Days(u32),
    /// Between two Unix times.
    Unix(i64, i64),
}

/// Builds a certificate: self-signed unless [`CertBuilder::issued_by`].
///
/// Defaults: a P-256 key, serial 1, valid from now for 365 days, an end
/// entity (no extensions).
#[derive(Debug)]
pub struct CertBuilder<'a> {
    subject: Vec<(String, String)>,
    key: KeyKind,
    serial: u32,
    validity: Validity,
    ca: bool,
    san_ip: Option<String>,
    issuer: Option<&'a Cert>,
}

impl<'a> CertBuilder<'a> {
    /// A certificate whose subject is `CN=<cn>`.
    pub fn new(cn: &str) -> Self {
        Self {
            subject: vec![("CN".into(), cn.into())],
            key: KeyKind::P256,
            serial: 1,
            validity: Validity::Days(365),
            ca: false,
            san_ip: None,
            issuer: None,
        }
    }

    /// Puts `attr=value` (e.g. `O=Acme`) before the CN in the subject.
    pub fn subject_attr(mut self, attr: &str, value: &str) -> Self {
        let at = self.subject.len().saturating_sub(1);
        self.subject.insert(at, (attr.into(), value.into()));
        self
    }

    /// The key type.
    pub fn key(mut self, key: KeyKind) -> Self {
        self.key = key;
        self
    }

    /// The serial number.
    pub fn serial(mut self, serial: u32) -> Self {
        self.serial = serial;
        self
    }

    /// Valid from now for `days` days.
    pub fn days(mut self, days: u32) -> Self {
        self.validity = Validity::Days(days);
        self
    }

    /// Valid between two Unix times.
    pub fn valid_unix(mut self, not_before: i64, not_after: i64) -> Self {
        self.validity = Validity::Unix(not_before, not_after);
        self
    }

    /// A CA: basic constraints `CA:TRUE` (critical), key usage
    /// keyCertSign and cRLSign (critical), a subject key identifier.
    pub fn ca(mut self) -> Self {
        self.ca = true;
        self
    }

    /// A subject alternative name for an IP address (TLS on loopback).
    pub fn san_ip(mut self, ip: &str) -> Self {
        self.san_ip = Some(ip.into());
        self
    }

    /// Signed by `issuer` instead of by itself.
    pub fn issued_by(mut self, issuer: &'a Cert) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Makes the key and the certificate.
    pub fn build(self) -> Cert {
        let key = match self.key {
            KeyKind::P256 => PKey::ec_gen("prime256v1").expect("P-256 key"),
            KeyKind::Ed25519 => PKey::generate_ed25519().expect("Ed25519 key"),
        };
        self.build_with_key(key)
    }

    /// Makes the certificate for an existing key (whatever [`CertBuilder::key`] says).
    pub fn build_with_key(self, key: PKey<Private>) -> Cert {
        let mut name = X509NameBuilder::new().expect("name");
        for (attr, value) in &self.subject {
            name.append_entry_by_text(attr, value)
                .expect("subject attribute");
        }
        let name = name.build();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("version");
        let serial = BigNum::from_u32(self.serial)
            .and_then(|n| n.to_asn1_integer())
            .expect("serial");
        b.set_serial_number(&serial).expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(self.issuer.map_or(&name, |i| i.cert.subject_name()))
            .expect("issuer");
        b.set_pubkey(&key).expect("public key");
        let (not_before, not_after) = match self.validity {
            Validity::Days(days) => (Asn1Time::days_from_now(0), Asn1Time::days_from_now(days)),
            Validity::Unix(from, to) => (Asn1Time::from_unix(from), Asn1Time::from_unix(to)),
        };
        b.set_not_before(&not_before.expect("time"))
            .expect("not before");
        b.set_not_after(&not_after.expect("time"))
            .expect("not after");
        if self.ca {
            let bc = BasicConstraints::new().critical().ca().build();
            b.append_extension(bc.expect("basic constraints"))
                .expect("basic constraints");
            let ku = KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build();
            b.append_extension(ku.expect("key usage"))
                .expect("key usage");
            let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None));
            b.append_extension(ski.expect("subject key identifier"))
                .expect("subject key identifier");
        }
        if let Some(ip) = &self.san_ip {
            let san = SubjectAlternativeName::new()
                .ip(ip)
                .build(&b.x509v3_context(None, None));
            b.append_extension(san.expect("subject alternative name"))
                .expect("subject alternative name");
        }
        let signer = self.issuer.map_or(&key, |i| &i.key);
        let digest = if signer.id() == Id::ED25519 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        };
        b.sign(signer, digest).expect("signature");
        Cert {
            cert: b.build(),
            key,
        }
    }
}

/// Copies directory `from` to `to`, recursively: a data directory for a
/// second server (the same online keys and configuration).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("a directory");
    for entry in std::fs::read_dir(from).expect("a readable directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("a copied file");
        }
    }
}

/// A self-signed CA certificate for `CN=<cn>` (P-256, one year), PEM.
pub fn ca_pem(cn: &str) -> String {
    CertBuilder::new(cn).ca().build().pem()
}

/// The trust state a verifier gets from a published repository: policy's
/// TUF client pinned to `root` (`1.root.json`), at `at`, reading files by
/// repository path (`metadata/...`, `targets/...`) from `fetch`, every
/// signature and hash checked, every trust document downloaded.
pub fn read_trust_set(
    root: &[u8],
    at: time::OffsetDateTime,
    fetch: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> keyshare_policy::Result<keyshare_policy::trust::TrustSet> {
    use keyshare_policy::client::{Config, Request, Response, Updater};
    let mut updater = Updater::new(root, at, Config::default())?;
    let meta = |request: &Request| -> Response {
        if request.is_local() {
            Response::NotFound
        } else {
            fetch(&format!("metadata/{}", request.remote_name())).into()
        }
    };
    updater.refresh_with(meta)?;
    updater.trust_set_with(meta, |name, _| fetch(&format!("targets/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_verifies_what_it_issues_and_itself() {
        let ca = CertBuilder::new("Test CA")
            .subject_attr("O", "Acme")
            .ca()
            .build();
        let leaf = CertBuilder::new("leaf")
            .key(KeyKind::Ed25519)
            .issued_by(&ca)
            .build();
        let ca_key = ca.cert.public_key().expect("key");
        assert!(ca.cert.verify(&ca_key).expect("verify"));
        assert!(leaf.cert.verify(&ca_key).expect("verify"));
        let leaf_key = leaf.cert.public_key().expect("key");
        assert!(!matches!(ca.cert.verify(&leaf_key), Ok(true)));
        let subject: Vec<String> = ca
            .cert
            .subject_name()
            .entries()
            .map(|e| e.data().to_string().expect("utf8"))
            .collect();
        assert_eq!(subject, ["Acme", "Test CA"]);
        assert!(X509::from_pem(ca_pem("x").as_bytes()).is_ok());
    }
}
