//! Delegation evidence: proof that a key was listed in a namespace's trust
//! document, kept with a signature so that it verifies after the listing
//! is gone.
//!
//! An ephemeral CI key is listed in its namespace's `trust.json` for minutes
//! and removed by the sweep some time after its window ends. A timestamp
//! token ([`crate::timestamp`]) proves *when* the key signed; what the
//! verifier then also needs is that the key *was* delegated then, which the
//! current documents no longer say. [`DelegationEvidence`] is that fact as
//! the repository published it: the namespace's `trust.json` that listed
//! the key, and the hashed bin's metadata that lists that document (its
//! length and hashes), signed by the bins' key.
//!
//! [`EvidenceAnchor::check`] verifies it against what the verifier trusts
//! now, never against the evidence's own claims:
//!
//! * the bin must be the one the current top-level `targets` delegates the
//!   document's path to, and its signatures must meet the threshold of the
//!   keys `targets` delegates the bins to *now*. The bin's own `expires` is
//!   not checked: expiry protects freshness, and evidence is a historic
//!   fact, bounded in time by the token and the key's window;
//! * its version must not be newer than the bin's version in the verifier's
//!   trusted snapshot (a verifier does not trust a future it has not seen:
//!   it refreshes first);
//! * the bin must list `namespaces/<ns>/trust.json` with exactly the
//!   evidence document's length and hashes, and the document must parse as
//!   that namespace's.
//!
//! What the document then proves is used by
//! [`crate::trust::TrustSet::decide_attested_with_history`]: only its
//! *ephemeral* keys, only in that namespace, with the signature time of a
//! verified timestamp token inside the key's window in that document, and
//! with the namespace's current threshold and every current revocation
//! applied. A key the namespace removed on purpose (not ephemeral) is not
//! brought back by an old document.
//!
//! Limits (docs/trust-model.md, "Ephemeral keys after the sweep"): evidence
//! is checked with the current bins key, so rotating the key that signs the
//! bins ends the evidence signed before the rotation; ending a delegation
//! early (`ci end`) removes the key from the current documents but does not
//! shorten the window an earlier document states, so a stolen CI key is
//! revoked, not just ended.
//!
//! No IO and no clock.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::RoleName;
use crate::metadata::{Delegations, Envelope, Snapshot, Targets};
use crate::trust::{NamespaceName, NamespaceTrust};
use crate::verify::{Authority, Verified};

/// Largest evidence document or bin accepted, bytes (each; the bins of a
/// 100,000-namespace repository are about 100 KB at 256 bins).
pub const MAX_EVIDENCE_FILE: usize = 4 << 20;

/// A namespace's trust document as published, with the signed hashed bin
/// that lists it. Serialised with both files as standard base64 of their
/// exact bytes (a target's hashes are over its bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DelegationEvidence {
    /// The namespace whose document it is.
    pub namespace: NamespaceName,
    /// The hashed bin that lists the document (`bins-3f`).
    pub role: RoleName,
    /// That bin's metadata file (`<version>.bins-3f.json`), base64.
    #[serde(with = "base64_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, content_encoding = "base64"))]
    pub metadata: Vec<u8>,
    /// `namespaces/<namespace>/trust.json` as the bin lists it, base64.
    #[serde(with = "base64_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, content_encoding = "base64"))]
    pub document: Vec<u8>,
}

/// What a verifier trusts now that evidence is checked against: the
/// delegations of its trusted top-level `targets` and the versions of the
/// delegated roles in its trusted snapshot.
#[derive(Clone, Debug, Default)]
pub struct EvidenceAnchor {
    delegations: Option<Delegations>,
    /// Where the snapshot versions of the delegated roles are read.
    versions: Versions,
}

/// The snapshot versions of the roles top-level `targets` delegates to.
#[derive(Clone, Debug, Default)]
enum Versions {
    /// None known.
    #[default]
    None,
    /// Copied out of a snapshot.
    Copied(HashMap<String, u64>),
    /// The verifier's trusted snapshot itself, shared (nothing copied for
    /// a state that may never check evidence).
    Shared(Arc<Verified<Snapshot>>),
}

impl Versions {
    fn of(&self, role: &str) -> Option<u64> {
        match self {
            Self::None => None,
            Self::Copied(map) => map.get(role).copied(),
            Self::Shared(snapshot) => snapshot.role_meta(role).map(|m| m.version),
        }
    }
}

/// Evidence that checked: the document, and the bin version that listed it.
#[derive(Clone, Debug)]
pub struct Evidenced {
    /// The namespace's trust document at the time.
    pub document: NamespaceTrust,
    /// The bin that listed it.
    pub role: RoleName,
    /// That bin's version.
    pub version: u64,
}

/// Why delegation evidence is refused. Each message starts by saying it is
/// about the evidence.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvidenceError {
    /// Not readable at all.
    #[error("malformed delegation evidence: {0}")]
    Malformed(String),
    /// The verifier's trust state delegates no bins.
    #[error(
        "delegation evidence cannot be checked: the trusted top-level targets delegates no roles"
    )]
    NoDelegations,
    /// The evidence names another role than the one the path is delegated to.
    #[error("delegation evidence names role `{role}`, but `{path}` is delegated to {expected} by the trusted targets")]
    WrongRole {
        /// The role the evidence names.
        role: RoleName,
        /// The document's path.
        path: String,
        /// The role(s) the trusted targets delegates the path to.
        expected: String,
    },
    /// The bin's signatures do not meet the current threshold.
    #[error("delegation evidence: `{role}` version {version} is not signed by the keys the trusted targets delegates it to now ({detail}): the evidence was altered, or the key that signs the bins was rotated since")]
    NotSigned {
        /// The bin.
        role: RoleName,
        /// Its version.
        version: u64,
        /// The signature check's error.
        detail: String,
    },
    /// The bin is newer than the verifier's snapshot lists.
    #[error("delegation evidence: `{role}` version {version} is newer than the trust state's version {held}: refresh the trust state and verify again")]
    Newer {
        /// The bin.
        role: RoleName,
        /// The evidence's version.
        version: u64,
        /// The version the verifier's snapshot lists (0: not listed).
        held: u64,
    },
    /// The bin does not list the document, or lists other bytes.
    #[error("delegation evidence: `{role}` version {version} does not list this trust document: {detail}")]
    NotListed {
        /// The bin.
        role: RoleName,
        /// Its version.
        version: u64,
        /// What does not match.
        detail: String,
    },
}

impl EvidenceAnchor {
    /// The anchor of a verifier whose trusted top-level targets is `targets`
    /// and trusted snapshot is `snapshot`.
    pub fn new(targets: &Targets, snapshot: &Snapshot) -> Self {
        let delegations = targets.delegations.clone();
        let versions = delegations
            .as_ref()
            .map(|d| {
                snapshot
                    .meta
                    .iter()
                    .filter_map(|(file, meta)| {
                        let role = file.strip_suffix(".json")?;
                        d.role_keys(role).map(|_| (role.to_owned(), meta.version))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            delegations,
            versions: Versions::Copied(versions),
        }
    }

    /// [`Self::new`] with the verifier's trusted snapshot shared rather
    /// than copied (checked evidence reads a version only for the role
    /// `targets` delegates the namespace to, as `new`'s copy holds).
    pub fn shared(targets: &Targets, snapshot: Arc<Verified<Snapshot>>) -> Self {
        Self {
            delegations: targets.delegations.clone(),
            versions: Versions::Shared(snapshot),
        }
    }

    /// Checks `evidence` (module docs) and returns the document it proves.
    pub fn check(&self, evidence: &DelegationEvidence) -> Result<Evidenced, EvidenceError> {
        if evidence.metadata.len() > MAX_EVIDENCE_FILE
            || evidence.document.len() > MAX_EVIDENCE_FILE
        {
            return Err(EvidenceError::Malformed(format!(
                "a file of it is larger than {MAX_EVIDENCE_FILE} bytes"
            )));
        }
        let delegations = self
            .delegations
            .as_ref()
            .ok_or(EvidenceError::NoDelegations)?;
        let path = evidence.namespace.target_path();
        let role = &evidence.role;
        let delegated = delegations.roles_for_target(&path);
        if !delegated.iter().any(|c| &c.name == role) {
            let expected = if delegated.is_empty() {
                "no role".to_owned()
            } else {
                delegated
                    .iter()
                    .map(|c| format!("`{}`", c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(EvidenceError::WrongRole {
                role: role.clone(),
                path,
                expected,
            });
        }
        let (keyids, threshold) = delegations
            .role_keys(role.as_str())
            .ok_or(EvidenceError::NoDelegations)?;
        let envelope = Envelope::<Targets>::parse(role.as_str(), &evidence.metadata)
            .map_err(|e| EvidenceError::Malformed(e.to_string()))?;
        let version = envelope.signed.version;
        Authority {
            keys: &delegations.keys,
            keyids,
            threshold,
        }
        .check(role.as_str(), &envelope)
        .map_err(|e| EvidenceError::NotSigned {
            role: role.clone(),
            version,
            detail: e.to_string(),
        })?;
        let held = self.versions.of(role.as_str()).unwrap_or(0);
        if version > held {
            return Err(EvidenceError::Newer {
                role: role.clone(),
                version,
                held,
            });
        }
        let not_listed = |detail: String| EvidenceError::NotListed {
            role: role.clone(),
            version,
            detail,
        };
        let listed = envelope
            .signed
            .targets
            .get(&path)
            .ok_or_else(|| not_listed(format!("it lists no `{path}`")))?;
        listed
            .check_bytes(&path, &evidence.document)
            .map_err(|e| not_listed(e.to_string()))?;
        let document = NamespaceTrust::from_target(&path, &evidence.document)
            .map_err(|e| not_listed(e.to_string()))?;
        Ok(Evidenced {
            document,
            role: role.clone(),
            version,
        })
    }
}

/// Serde of bytes as standard base64 (RFC 4648, padded).
mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&openssl::base64::encode_block(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() > super::MAX_EVIDENCE_FILE / 3 * 4 + 4 {
            return Err(serde::de::Error::custom(
                "longer than a file of evidence may be",
            ));
        }
        if text.is_empty() {
            return Ok(Vec::new());
        }
        openssl::base64::decode_block(&text)
            .map_err(|_| serde::de::Error::custom("not standard base64"))
    }
}
