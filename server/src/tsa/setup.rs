//! The TSA's key and certificates: made by `init` (and by `serve` for a
//! data directory made before the TSA existed), loaded and checked by
//! `serve`.
//!
//! ```text
//! keys/tsa.pem       the TSA key (tsa.key; ECDSA P-256, or a PKCS#11 key)
//! keys/tsa-ca.pem    the organization's TSA CA key (ECDSA P-256)
//! tsa/ca.pem         the TSA CA certificate: self-signed, CA, pathlen 0,
//!                    keyCertSign + cRLSign, valid CA_VALIDITY_DAYS
//! tsa/tsa.pem        the TSA certificate, issued by the CA: not a CA,
//!                    digitalSignature, extendedKeyUsage timeStamping
//!                    (critical), valid TSA_VALIDITY_DAYS
//! tsa/chain.pem      tsa.pem then ca.pem (tsa.cert_chain's default)
//! ```
//!
//! Certificates are built and signed with OpenSSL. The TSA certificate
//! needs only the TSA key's public half, so a key held in a PKCS#11 token
//! is certified the same way.

use std::fs;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use time::OffsetDateTime;

use keyshare_policy::repo::SharedSigner;

use super::TsaError;
use crate::config::{KeyRef, TsaConfig};
use crate::data_dir::{DataDir, TSA_CA_CERT, TSA_CERT, TSA_CHAIN};
use crate::keys;

/// How long the TSA CA certificate `init` makes is valid: 10 years.
pub const CA_VALIDITY_DAYS: u32 = 3653;
/// How long a TSA certificate is valid: 5 years. Tokens can be issued
/// while it is; verifiers check a token against the certificate's
/// validity at its genTime (or, as `openssl ts -verify` does, now).
pub const TSA_VALIDITY_DAYS: u32 = 1827;
/// The subject common name of the TSA CA.
pub const CA_NAME: &str = "keyshare TSA CA";
/// The subject common name of the TSA certificate.
pub const TSA_NAME: &str = "keyshare timestamp authority";

/// The TSA's signing key and its certificate chain.
#[derive(Debug)]
pub struct Material {
    /// The TSA key.
    pub signer: SharedSigner,
    /// DER certificates: the TSA certificate first, then its CA
    /// certificates as the chain file lists them.
    pub chain: Vec<Vec<u8>>,
    /// Whether the key lives in a PKCS#11 token.
    pub pkcs11: bool,
    /// The chain file it was read from (for messages).
    pub chain_path: PathBuf,
}

/// What [`prepare`] made (for the audit log and `init`'s output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Made {
    /// A new TSA key file (`keys/tsa.pem`).
    pub key: bool,
    /// A new TSA CA (`keys/tsa-ca.pem`, `tsa/ca.pem`).
    pub ca: bool,
    /// A new TSA certificate (`tsa/tsa.pem`, `tsa/chain.pem`).
    pub cert: bool,
}

impl Made {
    /// Whether anything was made.
    pub fn any(self) -> bool {
        self.key || self.ca || self.cert
    }
}

fn cert_error(path: &Path, reason: impl std::fmt::Display) -> TsaError {
    TsaError::Certificate {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TsaError + '_ {
    move |source| TsaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The chain file `tsa.cert_chain` names, relative to `data_dir`
/// (default `tsa/chain.pem`).
pub fn chain_path(config: &TsaConfig, data_dir: &Path) -> PathBuf {
    match &config.cert_chain {
        Some(path) => data_dir.join(path),
        None => DataDir::new(data_dir).tsa().join(TSA_CHAIN),
    }
}

/// The TSA's key and chain as `config` names them in `data_dir`.
///
/// With `create` (`init`, and `serve` for a data directory made before
/// the TSA existed), what is missing at its default place is made: the key
/// `keys/tsa.pem` (when `tsa.key` is the default), and, when
/// `tsa.cert_chain` is the default, the CA (`keys/tsa-ca.pem`,
/// `tsa/ca.pem`, unless both exist) and a TSA certificate for the key
/// (`tsa/tsa.pem`, `tsa/chain.pem`) — also when the chain there certifies
/// another key than `tsa.key` (the key was changed). A chain at a
/// configured path is never written. The chain's first certificate must
/// certify the TSA key.
pub fn prepare(
    config: &TsaConfig,
    pin_file: Option<&Path>,
    data_dir: &Path,
    now: OffsetDateTime,
    create: bool,
) -> Result<(Material, Made), TsaError> {
    let mut made = Made::default();
    let (signer, key_made) = keys::tsa_key(&config.key, pin_file, data_dir, create)?;
    made.key = key_made;
    let public = signer
        .public_key()
        .openssl_key(signer.key_id())
        .map_err(|e| TsaError::Signing(e.to_string()))?
        .clone();
    let path = chain_path(config, data_dir);
    let default_chain = config.cert_chain.is_none();
    let existing = match fs::read(&path) {
        Ok(pem) => Some(read_chain(&path, &pem)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&path)(e)),
    };
    let certifies_key = |chain: &[X509]| {
        chain
            .first()
            .and_then(|c| c.public_key().ok())
            .is_some_and(|k| k.public_eq(&public))
    };
    let chain = match existing {
        Some(chain) if certifies_key(&chain) => chain,
        found if create && default_chain => {
            let (chain, ca_made) = issue_default_chain(data_dir, &public, now)?;
            made.ca = ca_made;
            made.cert = true;
            if found.is_some() {
                tracing::warn!(
                    chain = %path.display(),
                    "the TSA certificate certified another key than tsa.key; issued a new one"
                );
            }
            chain
        }
        Some(_) => {
            return Err(cert_error(
                &path,
                "its first certificate does not certify the TSA key (tsa.key)",
            ))
        }
        None => {
            return Err(cert_error(
                &path,
                "missing: run `keyshare-server init` (or serve, which makes the TSA \
                 certificate at the default tsa.cert_chain), or set tsa.cert_chain",
            ))
        }
    };
    let chain = chain
        .iter()
        .map(|c| c.to_der().map_err(|e| cert_error(&path, e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        Material {
            signer,
            chain,
            pkcs11: matches!(config.key, KeyRef::Pkcs11(_)),
            chain_path: path,
        },
        made,
    ))
}

fn read_chain(path: &Path, pem: &[u8]) -> Result<Vec<X509>, TsaError> {
    let chain = X509::stack_from_pem(pem).map_err(|_| cert_error(path, "not PEM certificates"))?;
    if chain.is_empty() {
        return Err(cert_error(path, "holds no certificate"));
    }
    Ok(chain)
}

/// The CA of `data_dir` (made first when `keys/tsa-ca.pem` or
/// `tsa/ca.pem` is missing) issues a TSA certificate for `public`; writes
/// `tsa/tsa.pem` and `tsa/chain.pem`. Returns the chain and whether the
/// CA was made.
fn issue_default_chain(
    data_dir: &Path,
    public: &PKeyRef<Public>,
    now: OffsetDateTime,
) -> Result<(Vec<X509>, bool), TsaError> {
    let dir = DataDir::new(data_dir).tsa();
    fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let ca_path = dir.join(TSA_CA_CERT);
    let ca_key_exists = data_dir
        .join(crate::data_dir::KEYS_DIR)
        .join(keys::TSA_CA_KEY)
        .exists();
    let (ca_key, ca_cert, ca_made) = if ca_key_exists && ca_path.exists() {
        let (key, _) = keys::tsa_ca_key(data_dir, false)?;
        let pem = fs::read(&ca_path).map_err(io_error(&ca_path))?;
        let cert =
            X509::from_pem(&pem).map_err(|_| cert_error(&ca_path, "not a PEM certificate"))?;
        let cert_key = cert.public_key().map_err(|e| cert_error(&ca_path, e))?;
        if !cert_key.public_eq(&key) {
            return Err(cert_error(
                &ca_path,
                format!("does not certify the TSA CA key keys/{}", keys::TSA_CA_KEY),
            ));
        }
        (key, cert, false)
    } else if ca_key_exists || ca_path.exists() {
        return Err(cert_error(
            &ca_path,
            format!(
                "the TSA CA is half there: keys/{} and tsa/{TSA_CA_CERT} must both exist \
                 (or neither, and a new CA is made)",
                keys::TSA_CA_KEY
            ),
        ));
    } else {
        let (key, _) = keys::tsa_ca_key(data_dir, true)?;
        let cert = new_ca(&key, now).map_err(|e| cert_error(&ca_path, e))?;
        let pem = cert.to_pem().map_err(|e| cert_error(&ca_path, e))?;
        keyshare_fsio::write_new(&ca_path, &pem, 0o644).map_err(|e| TsaError::Io {
            path: e.path,
            source: e.source,
        })?;
        (key, cert, true)
    };
    let tsa_path = dir.join(TSA_CERT);
    let tsa = issue_tsa(&ca_key, &ca_cert, public, now).map_err(|e| cert_error(&tsa_path, e))?;
    let tsa_pem = tsa.to_pem().map_err(|e| cert_error(&tsa_path, e))?;
    let ca_pem = ca_cert.to_pem().map_err(|e| cert_error(&ca_path, e))?;
    let write = |path: &Path, bytes: &[u8]| {
        keyshare_fsio::write_atomically(path, bytes, 0o644).map_err(|e| TsaError::Io {
            path: e.path,
            source: e.source,
        })
    };
    write(&tsa_path, &tsa_pem)?;
    write(
        &dir.join(TSA_CHAIN),
        &[tsa_pem.as_slice(), &ca_pem].concat(),
    )?;
    Ok((vec![tsa, ca_cert], ca_made))
}

fn random_serial() -> Result<Asn1Integer, openssl::error::ErrorStack> {
    let mut n = BigNum::new()?;
    n.rand(127, MsbOption::ONE, false)?;
    n.to_asn1_integer()
}

fn name(common_name: &str) -> Result<openssl::x509::X509Name, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    Ok(name.build())
}

fn validity(
    builder: &mut X509Builder,
    now: OffsetDateTime,
    days: u32,
) -> Result<(), openssl::error::ErrorStack> {
    let start = now.unix_timestamp();
    let end = start + i64::from(days) * 86_400;
    let not_before = Asn1Time::from_unix(start)?;
    let not_after = Asn1Time::from_unix(end)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    Ok(())
}

/// A self-signed TSA CA certificate for `key`.
fn new_ca(key: &PKey<Private>, now: OffsetDateTime) -> Result<X509, openssl::error::ErrorStack> {
    let subject = name(CA_NAME)?;
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = random_serial()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&subject)?;
    b.set_issuer_name(&subject)?;
    b.set_pubkey(key)?;
    validity(&mut b, now, CA_VALIDITY_DAYS)?;
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}

/// A TSA certificate for `public`, issued by the CA.
fn issue_tsa(
    ca_key: &PKey<Private>,
    ca_cert: &X509,
    public: &PKeyRef<Public>,
    now: OffsetDateTime,
) -> Result<X509, openssl::error::ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = random_serial()?;
    let subject = name(TSA_NAME)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&subject)?;
    b.set_issuer_name(ca_cert.subject_name())?;
    b.set_pubkey(public)?;
    validity(&mut b, now, TSA_VALIDITY_DAYS)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.append_extension(ExtendedKeyUsage::new().critical().time_stamping().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca_cert), None))?;
    b.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(ca_cert), None))?;
    b.append_extension(aki)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::MetadataExt;

    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

    fn sha(der: &[u8]) -> Vec<u8> {
        openssl::sha::sha256(der).to_vec()
    }

    #[test]
    fn made_once_then_loaded_and_a_new_key_gets_a_new_certificate_from_the_same_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let config = TsaConfig::default();
        assert!(
            prepare(&config, None, dir, T, false).is_err(),
            "nothing to load"
        );
        let (first, made) = prepare(&config, None, dir, T, true).unwrap();
        assert_eq!(
            made,
            Made {
                key: true,
                ca: true,
                cert: true
            }
        );
        for key in ["keys/tsa.pem", "keys/tsa-ca.pem"] {
            assert_eq!(
                fs::metadata(dir.join(key)).unwrap().mode() & 0o777,
                0o600,
                "{key}"
            );
        }
        let ca = X509::from_pem(&fs::read(dir.join("tsa/ca.pem")).unwrap()).unwrap();
        let tsa = X509::from_pem(&fs::read(dir.join("tsa/tsa.pem")).unwrap()).unwrap();
        assert_eq!(first.chain, [tsa.to_der().unwrap(), ca.to_der().unwrap()]);
        assert!(
            tsa.verify(&ca.public_key().unwrap()).unwrap(),
            "issued by the CA"
        );
        assert!(ca.verify(&ca.public_key().unwrap()).unwrap(), "self-signed");
        assert_eq!(
            tsa.not_after()
                .compare(
                    &Asn1Time::from_unix(
                        T.unix_timestamp() + i64::from(TSA_VALIDITY_DAYS) * 86_400
                    )
                    .unwrap()
                )
                .unwrap(),
            std::cmp::Ordering::Equal
        );

        let (again, made) = prepare(&config, None, dir, T, true).unwrap();
        assert_eq!(made, Made::default(), "nothing made twice");
        assert_eq!(again.chain, first.chain);

        // The key changes (another file): a new certificate, the same CA.
        fs::rename(dir.join("keys/tsa.pem"), dir.join("keys/old-tsa.pem")).unwrap();
        let (third, made) = prepare(&config, None, dir, T, true).unwrap();
        assert_eq!(
            made,
            Made {
                key: true,
                ca: false,
                cert: true
            }
        );
        assert_ne!(sha(&third.chain[0]), sha(&first.chain[0]));
        assert_eq!(third.chain[1], first.chain[1]);
        // Without `create`, a chain for another key is refused.
        let config = TsaConfig {
            key: KeyRef::File("keys/old-tsa.pem".into()),
            ..TsaConfig::default()
        };
        let e = prepare(&config, None, dir, T, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not certify the TSA key"), "{e}");
    }

    #[test]
    fn a_half_present_ca_or_a_key_that_is_not_p256_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        prepare(&TsaConfig::default(), None, dir, T, true).unwrap();
        fs::remove_file(dir.join("tsa/chain.pem")).unwrap();
        fs::remove_file(dir.join("tsa/ca.pem")).unwrap();
        let e = prepare(&TsaConfig::default(), None, dir, T, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("half there"), "{e}");

        let ed = dir.join("ed25519.pem");
        let key =
            keyshare_policy::sign::InMemorySigner::generate(keyshare_policy::keys::Scheme::Ed25519)
                .unwrap();
        keyshare_fsio::write_new(&ed, &key.to_pkcs8_pem().unwrap(), 0o600).unwrap();
        let config = TsaConfig {
            key: KeyRef::File(ed),
            ..TsaConfig::default()
        };
        let e = prepare(&config, None, dir, T, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECDSA P-256"), "{e}");
    }
}
