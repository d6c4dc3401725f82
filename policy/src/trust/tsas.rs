//! `org/tsas.json`: the timestamp authorities (RFC 3161) the organization
//! trusts to say when a signature was made.
//!
//! Each entry is a trust anchor: the certificate of a TSA's CA, or of a TSA
//! itself (its leaf). A timestamp token counts only when its signer's
//! certificate chains to one of them ([`crate::timestamp`]).

use std::collections::BTreeSet;

use der::Decode;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
use x509_cert::Certificate;

use super::check::{check_label, parse_json, problem_to_error, to_json, Problem};
use super::format::TsasFormat;
use super::x509::CaCert;
use super::TSAS_PATH;
use crate::error::{Error, Result};

/// At most this many TSAs in the document.
pub const MAX_TSAS: usize = 64;
/// At most this many bytes of PEM for one TSA certificate.
pub const MAX_TSA_CERT_PEM: usize = 16 * 1024;
/// At most this many characters of description.
pub const MAX_TSA_DESCRIPTION: usize = 1024;
/// At most this many bytes for the whole document.
pub const MAX_TSAS_DOCUMENT: usize = 1024 * 1024;

/// `id-kp-timeStamping` (RFC 3161 §2.3).
pub const ID_KP_TIME_STAMPING: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const ID_CE_EXT_KEY_USAGE: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.37");
const ID_CE_BASIC_CONSTRAINTS: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.19");

/// One trusted timestamp authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedTsa {
    /// Name, unique in the document (1 to 200 characters, no control characters).
    pub name: String,
    /// The trust anchor, one PEM certificate: a CA that issues TSA
    /// certificates, or a TSA's own certificate (with the critical
    /// `id-kp-timeStamping` extended key usage).
    pub certificate: CaCert,
    /// Free text, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `org/tsas.json`, format `keyshare.tsas/v1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tsas {
    /// Always `keyshare.tsas/v1`.
    pub format: TsasFormat,
    /// The trusted TSAs.
    pub tsas: Vec<TrustedTsa>,
}

impl Default for Tsas {
    fn default() -> Self {
        Self {
            format: TsasFormat,
            tsas: Vec::new(),
        }
    }
}

impl Tsas {
    /// Parses `org/tsas.json`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_TSAS_DOCUMENT {
            return Err(Error::Malformed {
                what: TSAS_PATH.to_owned(),
                path: ".".to_owned(),
                message: format!("larger than {MAX_TSAS_DOCUMENT} bytes"),
            });
        }
        let doc: Self = parse_json(TSAS_PATH, bytes)?;
        doc.check().map_err(|p| problem_to_error(TSAS_PATH, p))?;
        Ok(doc)
    }

    /// The document as JSON (parses back to an equal value).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        to_json(TSAS_PATH, self)
    }

    /// The TSA listed with this anchor (by the SHA-256 of its DER).
    pub fn by_certificate(&self, sha256: &super::Sha256Hex) -> Option<&TrustedTsa> {
        self.tsas.iter().find(|t| t.certificate.sha256() == sha256)
    }

    pub(crate) fn check(&self) -> std::result::Result<(), Problem> {
        if self.tsas.len() > MAX_TSAS {
            return Err(("tsas".into(), format!("lists more than {MAX_TSAS} TSAs")));
        }
        let mut names = BTreeSet::new();
        let mut certs = BTreeSet::new();
        for (i, t) in self.tsas.iter().enumerate() {
            let at = |field: &str| format!("tsas[{i}].{field}");
            check_label(|| at("name"), &t.name)?;
            if !names.insert(t.name.as_str()) {
                return Err((at("name"), format!("TSA `{}` is listed twice", t.name)));
            }
            if !certs.insert(t.certificate.sha256()) {
                return Err((
                    at("certificate"),
                    "the same certificate is listed twice".into(),
                ));
            }
            check_anchor_pem(t.certificate.pem()).map_err(|m| (at("certificate"), m))?;
            if let Some(d) = &t.description {
                if d.chars().count() > MAX_TSA_DESCRIPTION {
                    return Err((
                        at("description"),
                        format!("must be at most {MAX_TSA_DESCRIPTION} characters"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks that `pem` is one certificate fit to be a TSA trust anchor: not
/// a private key, at most [`MAX_TSA_CERT_PEM`] bytes, one PEM certificate,
/// and either a CA (basic constraints `cA`) or a TSA certificate (extended
/// key usage `id-kp-timeStamping`). The message is one line, for people.
pub fn check_tsa_certificate(pem: &str) -> std::result::Result<CaCert, String> {
    if pem.contains("PRIVATE KEY-----") {
        return Err(
            "this is a private key, not a certificate: give the TSA's (or its CA's) certificate"
                .into(),
        );
    }
    let cert = CaCert::parse(pem)?;
    check_anchor_pem(pem)?;
    Ok(cert)
}

fn check_anchor_pem(pem: &str) -> std::result::Result<(), String> {
    if pem.len() > MAX_TSA_CERT_PEM {
        return Err(format!("certificate larger than {MAX_TSA_CERT_PEM} bytes"));
    }
    let der = CaCert::parse(pem)?
        .cert()
        .to_der()
        .map_err(|e| format!("certificate: {e}"))?;
    let cert = Certificate::from_der(&der).map_err(|e| format!("certificate: {e}"))?;
    let anchor = AnchorKind::of(&cert);
    if anchor.is_ca || anchor.time_stamping {
        Ok(())
    } else {
        Err("neither a CA certificate nor a TSA certificate (no extended key usage id-kp-timeStamping): list the TSA's certificate or the CA that issues it".into())
    }
}

/// What a certificate says about itself, for TSA checks.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AnchorKind {
    /// Basic constraints with `cA` true.
    pub(crate) is_ca: bool,
    /// Extended key usage lists `id-kp-timeStamping`.
    pub(crate) time_stamping: bool,
    /// That extended key usage is marked critical.
    pub(crate) eku_critical: bool,
    /// The certificate has an extended key usage extension at all.
    pub(crate) has_eku: bool,
}

impl AnchorKind {
    pub(crate) fn of(cert: &Certificate) -> Self {
        let mut kind = Self::default();
        for ext in cert.tbs_certificate.extensions.iter().flatten() {
            if ext.extn_id == ID_CE_BASIC_CONSTRAINTS {
                kind.is_ca = BasicConstraints::from_der(ext.extn_value.as_bytes())
                    .map(|b| b.ca)
                    .unwrap_or(false);
            } else if ext.extn_id == ID_CE_EXT_KEY_USAGE {
                kind.has_eku = true;
                kind.eku_critical = ext.critical;
                kind.time_stamping = ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
                    .map(|eku| eku.0.contains(&ID_KP_TIME_STAMPING))
                    .unwrap_or(false);
            }
        }
        kind
    }
}
