//! `org/revocations.json`: keys and certificates whose signatures are untrusted from a time on.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::check::{parse_json, problem_to_error, to_json, Problem};
use super::format::{RevocationsFormat, TrustFormat};
use super::{Sha256Hex, REVOCATIONS_PATH};
use crate::error::{Error, Result};

/// What a revocation names: key material or a certificate, never a key
/// id. An id is only a label a namespace gives a key (any maintainer can
/// list any public key under any id), so a revocation by id could be
/// pointed at another team's key, or undone by listing the key again under
/// a new id.
///
/// JSON: exactly one of `{"spki_sha256": ...}` and `{"certificate_sha256": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSubject", into = "RawSubject")]
pub enum RevokedSubject {
    /// A key, by its fingerprint: the SHA-256 of its DER
    /// SubjectPublicKeyInfo with EC points uncompressed
    /// ([`crate::keys::Key::fingerprint`]). Refused wherever it appears:
    /// under any id, in any namespace or sub-delegation, and as the key of
    /// any certificate of a chain.
    Key(Sha256Hex),
    /// A certificate, by the SHA-256 of its DER encoding: a chain holding it is revoked.
    Certificate(Sha256Hex),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spki_sha256: Option<Sha256Hex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_sha256: Option<Sha256Hex>,
}

impl TryFrom<RawSubject> for RevokedSubject {
    type Error = &'static str;
    fn try_from(raw: RawSubject) -> std::result::Result<Self, Self::Error> {
        match (raw.spki_sha256, raw.certificate_sha256) {
            (Some(h), None) => Ok(Self::Key(h)),
            (None, Some(h)) => Ok(Self::Certificate(h)),
            _ => Err("must have exactly one of `spki_sha256` and `certificate_sha256`"),
        }
    }
}

impl From<RevokedSubject> for RawSubject {
    fn from(s: RevokedSubject) -> Self {
        match s {
            RevokedSubject::Key(h) => Self {
                spki_sha256: Some(h),
                certificate_sha256: None,
            },
            RevokedSubject::Certificate(h) => Self {
                spki_sha256: None,
                certificate_sha256: Some(h),
            },
        }
    }
}

impl fmt::Display for RevokedSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(h) => write!(f, "key with SPKI SHA-256 {h}"),
            Self::Certificate(h) => write!(f, "certificate with SHA-256 {h}"),
        }
    }
}

/// One revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The revoked key or certificate.
    pub subject: RevokedSubject,
    /// Signatures made at or after this time are untrusted; earlier ones keep
    /// their trust ("revoke trust, not keys").
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    /// Why, for people.
    pub reason: String,
}

/// `org/revocations.json`, format `keyshare.revocations/v2`.
///
/// Version 1 named keys by id; it is refused with a message saying so
/// (see [`RevokedSubject`] for why ids cannot be trusted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    /// Always `keyshare.revocations/v2`.
    pub format: RevocationsFormat,
    /// The revocations (each subject at most once).
    pub revocations: Vec<Revocation>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            format: RevocationsFormat,
            revocations: Vec::new(),
        }
    }
}

impl Revocations {
    /// Parses `org/revocations.json`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            format: Option<String>,
        }
        if let Ok(Probe {
            format: Some(format),
        }) = serde_json::from_slice::<Probe>(bytes)
        {
            if format == "keyshare.revocations/v1" {
                return Err(Error::Malformed {
                    what: REVOCATIONS_PATH.to_owned(),
                    path: "format".to_owned(),
                    message: "`keyshare.revocations/v1` names revoked keys by id, which this \
                              verifier no longer trusts: the server must be upgraded to publish \
                              `keyshare.revocations/v2` (keys by fingerprint)"
                        .to_owned(),
                });
            }
        }
        let doc: Self = parse_json(REVOCATIONS_PATH, bytes)?;
        doc.check()
            .map_err(|p| problem_to_error(REVOCATIONS_PATH, p))?;
        Ok(doc)
    }

    /// The document as JSON (parses back to an equal value).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        to_json(REVOCATIONS_PATH, self)
    }

    fn check(&self) -> std::result::Result<(), Problem> {
        let mut seen = BTreeSet::new();
        for (i, r) in self.revocations.iter().enumerate() {
            if !seen.insert(&r.subject) {
                return Err((
                    format!("revocations[{i}].subject"),
                    format!("{} is revoked twice", r.subject),
                ));
            }
            if r.reason.trim().is_empty() {
                return Err((
                    format!("revocations[{i}].reason"),
                    "must say why (not empty)".into(),
                ));
            }
        }
        Ok(())
    }
}

impl TrustFormat {
    /// The format a document with these namespace revocations is published
    /// in: `v1` without any (readable by every verifier), else `v2`.
    pub fn for_revocations(revocations: &[Revocation]) -> Self {
        if revocations.is_empty() {
            Self::V1
        } else {
            Self::V2
        }
    }

    /// The oldest format that can carry these revocations and keys: `v3`
    /// when a key is a layout-root key, else [`Self::for_revocations`], so
    /// that verifiers from before `v3` keep reading every document that
    /// does not use it.
    pub fn for_contents(revocations: &[Revocation], keys: &[super::TrustedKey]) -> Self {
        if keys.iter().any(|k| k.layout_root) {
            Self::V3
        } else {
            Self::for_revocations(revocations)
        }
    }
}
