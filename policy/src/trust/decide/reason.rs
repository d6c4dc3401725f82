//! What a trust decision says: [`Decision`], the [`TrustRule`] an artifact
//! was trusted by, or the [`Reason`] it was not, each with a `Display` that
//! says what to do about it.

use std::fmt;

use time::OffsetDateTime;

use crate::datetime::rfc3339;
use crate::hash::Sha256Hex;
use crate::keys::Key;
use crate::metadata::KeyId;
use crate::trust::namespace::{NamespaceName, Principal};
use crate::trust::peers::{PeerUrl, PinnedRoot};
use crate::trust::revocations::RevokedSubject;

/// Who signed, as the caller knows it after checking the signature itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerRef {
    /// A key named by its id, as listed in the namespace's document.
    KeyId(KeyId),
    /// A public key, matched against the listed keys by key material (DER
    /// SubjectPublicKeyInfo), whatever its id or encoding.
    PublicKey(Key),
    /// A certificate chain, DER, leaf first, then any intermediates.
    CertChain(Vec<Vec<u8>>),
}

/// A listed key or identity of a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Listed {
    /// A key, by its listed id.
    Key(KeyId),
    /// An X.509 identity, by its name.
    Identity(String),
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(id) => write!(f, "key {id}"),
            Self::Identity(name) => write!(f, "identity `{name}`"),
        }
    }
}

/// A presented key that is not listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRef {
    /// Presented by id.
    Id(KeyId),
    /// Presented as a public key: SHA-256 of its DER SubjectPublicKeyInfo.
    Spki {
        /// The fingerprint.
        sha256: Sha256Hex,
    },
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "key {id}"),
            Self::Spki { sha256 } => write!(f, "public key with SPKI SHA-256 {sha256}"),
        }
    }
}

/// One principal (holder of signing keys) that counted towards a threshold.
///
/// A threshold counts principals, not keys: all keys naming one principal
/// (every ephemeral key of one CI identity) count once, every leaf
/// certificate one X.509 identity rule matches counts once, and the same
/// key material counts once under whatever ids and encodings it is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Counted {
    /// A key that is its own principal.
    Key(KeyId),
    /// Several listings of one key's material (e.g. as a key and as a
    /// certificate's key), counted once.
    Keys(Vec<KeyId>),
    /// Keys sharing a named principal, counted once.
    Principal {
        /// The principal.
        principal: Principal,
        /// Its keys that signed.
        keys: Vec<KeyId>,
    },
    /// An X.509 identity: every leaf it matches counts once, together.
    Identity(String),
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(id) => write!(f, "key {id}"),
            Self::Keys(ids) => write!(f, "keys {} (one key)", join(ids)),
            Self::Principal { principal, keys } => {
                write!(f, "principal {principal} (keys {})", join(keys))
            }
            Self::Identity(name) => write!(f, "identity `{name}`"),
        }
    }
}

/// The rule that made an artifact trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustRule {
    /// The namespace's own keys and identities met its threshold.
    Namespace {
        /// Keys that counted, by listed id.
        keys: Vec<KeyId>,
        /// Identities that counted, by name.
        identities: Vec<String>,
        /// The distinct principals that met the threshold.
        principals: Vec<Counted>,
        /// The namespace's threshold (of principals).
        threshold: u32,
    },
    /// A sub-delegation covering the artifact met its threshold.
    SubDelegation {
        /// The sub-delegation's name.
        name: String,
        /// Keys that counted, by listed id.
        keys: Vec<KeyId>,
        /// The distinct principals that met the threshold.
        principals: Vec<Counted>,
        /// The sub-delegation's threshold (of principals).
        threshold: u32,
    },
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for TrustRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Namespace {
                principals,
                threshold,
                ..
            } => write!(
                f,
                "namespace threshold {threshold} met by {}",
                join(principals)
            ),
            Self::SubDelegation {
                name,
                principals,
                threshold,
                ..
            } => write!(
                f,
                "sub-delegation `{name}`, threshold {threshold} met by {}",
                join(principals)
            ),
        }
    }
}

/// Why an artifact is not trusted. Each `Display` says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// No namespace scope and no peer pattern matches the artifact name.
    NoNamespace {
        /// The artifact name.
        artifact: String,
    },
    /// The namespace that owns the artifact (by the namespace index) has
    /// published no trust document, so it trusts no signer yet.
    NoTrustDocument {
        /// The namespace that owns the artifact.
        namespace: NamespaceName,
        /// Its maintainers, as the namespace index lists them.
        maintainers: Vec<String>,
    },
    /// The namespace that owns the artifact published a trust document
    /// this verifier cannot read (a newer format, or one that breaks a rule
    /// of the format it names), so it trusts no signer for the namespace's
    /// artifacts; every other namespace's decisions stand.
    UnreadableTrustDocument {
        /// The namespace that owns the artifact.
        namespace: NamespaceName,
        /// Why the document cannot be read.
        why: String,
    },
    /// The signer is not listed by the namespace (nor by a sub-delegation covering the artifact).
    KeyNotListed {
        /// The namespace that owns the artifact.
        namespace: NamespaceName,
        /// The presented key.
        key: KeyRef,
    },
    /// A presented public key cannot be decoded.
    UnusableKey {
        /// What is wrong with it.
        detail: String,
    },
    /// The signature was made before the key's or identity's `not_before`.
    KeyNotYetValid {
        /// The namespace.
        namespace: NamespaceName,
        /// The listed key or identity.
        signer: Listed,
        /// Its `not_before`.
        not_before: OffsetDateTime,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// The signature was made at or after the key's or identity's `not_after`.
    KeyExpired {
        /// The namespace.
        namespace: NamespaceName,
        /// The listed key or identity.
        signer: Listed,
        /// Its `not_after`.
        not_after: OffsetDateTime,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// An ephemeral key's delegation has ended (`now >= not_after`), whenever it signed.
    EphemeralExpired {
        /// The namespace.
        namespace: NamespaceName,
        /// The ephemeral key.
        key: KeyId,
        /// Its `not_after`.
        not_after: OffsetDateTime,
        /// The time of the decision.
        now: OffsetDateTime,
    },
    /// The key or a certificate of the chain is revoked and the signature was
    /// made at or after the revocation.
    Revoked {
        /// What `org/revocations.json` names.
        subject: RevokedSubject,
        /// When trust in it ended.
        revoked_at: OffsetDateTime,
        /// Why.
        reason: String,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// The namespace that owns the artifact revoked the key (in its own
    /// trust document) and the signature was made at or after the
    /// revocation. Such a revocation counts in that namespace only.
    RevokedInNamespace {
        /// The namespace that revoked the key.
        namespace: NamespaceName,
        /// The key's fingerprint (SHA-256 of its material).
        key: Sha256Hex,
        /// When the namespace's trust in it ended.
        revoked_at: OffsetDateTime,
        /// Why.
        reason: String,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// The certificate chain does not verify to a CA certificate of the
    /// namespace's identities at `signed_at`.
    ChainNotTrusted {
        /// The namespace.
        namespace: NamespaceName,
        /// OpenSSL's reason, or what is wrong with the chain.
        detail: String,
    },
    /// The chain verifies but the leaf's subject is not the identity's.
    SubjectMismatch {
        /// The namespace.
        namespace: NamespaceName,
        /// The identity whose CA the chain verified to.
        identity: String,
        /// The subject the identity requires.
        expected: String,
        /// The leaf certificate's subject.
        found: String,
    },
    /// Too few distinct principals (holders of trusted keys or identities) signed.
    ThresholdNotMet {
        /// The namespace.
        namespace: NamespaceName,
        /// The sub-delegation that came closest, or `None` for the namespace's own keys.
        sub_delegation: Option<String>,
        /// Distinct principals whose trusted keys or identities signed.
        valid: u32,
        /// How many are needed.
        threshold: u32,
    },
    /// The artifact name belongs to a peer keyshare service: ask it.
    DelegatedToPeer {
        /// The peer's name.
        peer: String,
        /// Its base URL.
        url: PeerUrl,
        /// The root to verify it against.
        root: PinnedRoot,
    },
}

impl Reason {
    /// A short machine-readable name of the reason, the same wherever a
    /// decision is shown (`keyshare decide --output json`, the portal's
    /// simulator).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoNamespace { .. } => "no_namespace",
            Self::NoTrustDocument { .. } => "no_trust_document",
            Self::UnreadableTrustDocument { .. } => "unreadable_trust_document",
            Self::KeyNotListed { .. } => "key_not_listed",
            Self::UnusableKey { .. } => "unusable_key",
            Self::KeyNotYetValid { .. } => "key_not_yet_valid",
            Self::KeyExpired { .. } => "key_expired",
            Self::EphemeralExpired { .. } => "ephemeral_expired",
            Self::Revoked { .. } => "revoked",
            Self::RevokedInNamespace { .. } => "revoked_in_namespace",
            Self::ChainNotTrusted { .. } => "chain_not_trusted",
            Self::SubjectMismatch { .. } => "subject_mismatch",
            Self::ThresholdNotMet { .. } => "threshold_not_met",
            Self::DelegatedToPeer { .. } => "delegated_to_peer",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNamespace { artifact } => write!(
                f,
                "no namespace or peer covers `{artifact}`: check the name, or ask a security admin to grant a namespace a scope that matches it in the organization's namespace index"
            ),
            Self::NoTrustDocument {
                namespace,
                maintainers,
            } => {
                let who = if maintainers.is_empty() {
                    "its maintainers".to_owned()
                } else {
                    format!("its maintainers ({})", join(maintainers))
                };
                write!(
                    f,
                    "namespace `{namespace}` owns the artifact but has published no trust document, so no signer is trusted for it yet: {who} must publish {} listing the namespace's signing keys",
                    namespace.target_path()
                )
            }
            Self::UnreadableTrustDocument { namespace, why } => write!(
                f,
                "namespace `{namespace}` owns the artifact but this verifier cannot read its trust document {} ({why}), so no signer is trusted for it: a document of a newer format needs a newer keyshare",
                namespace.target_path()
            ),
            Self::KeyNotListed { namespace, key } => write!(
                f,
                "{key} is not trusted by namespace `{namespace}` for this artifact: sign with a listed key, or ask the namespace's maintainers to add it"
            ),
            Self::UnusableKey { detail } => write!(
                f,
                "the presented public key cannot be used ({detail}): present a supported key (Ed25519, ECDSA P-256, RSA of 2048 bits or more)"
            ),
            Self::KeyNotYetValid {
                namespace,
                signer,
                not_before,
                signed_at,
            } => write!(
                f,
                "{signer} of namespace `{namespace}` is trusted only for signatures made from {}, this one was made at {}: re-sign later, or ask the maintainers to correct not_before",
                rfc3339(*not_before),
                rfc3339(*signed_at)
            ),
            Self::KeyExpired {
                namespace,
                signer,
                not_after,
                signed_at,
            } => write!(
                f,
                "{signer} of namespace `{namespace}` is trusted only for signatures made before {}, this one was made at {}: re-sign with a current key",
                rfc3339(*not_after),
                rfc3339(*signed_at)
            ),
            Self::EphemeralExpired {
                namespace,
                key,
                not_after,
                now,
            } => write!(
                f,
                "ephemeral key {key} of namespace `{namespace}` expired at {} (now {}); ephemeral delegations end by themselves: re-run the CI job to sign with a fresh key, or sign with a long-lived key",
                rfc3339(*not_after),
                rfc3339(*now)
            ),
            Self::Revoked {
                subject,
                revoked_at,
                reason,
                signed_at,
            } => write!(
                f,
                "{subject} was revoked at {} ({reason}) and this signature was made at {}: re-sign with a key that is not revoked",
                rfc3339(*revoked_at),
                rfc3339(*signed_at)
            ),
            Self::RevokedInNamespace {
                namespace,
                key,
                revoked_at,
                reason,
                signed_at,
            } => write!(
                f,
                "key with SPKI SHA-256 {key} was revoked by namespace `{namespace}` at {} ({reason}) and this signature was made at {}: re-sign with a key that is not revoked",
                rfc3339(*revoked_at),
                rfc3339(*signed_at)
            ),
            Self::ChainNotTrusted { namespace, detail } => write!(
                f,
                "the certificate chain does not lead to a CA of namespace `{namespace}` ({detail}): sign with a certificate issued under one of the namespace's CAs, and include intermediates"
            ),
            Self::SubjectMismatch {
                namespace,
                identity,
                expected,
                found,
            } => write!(
                f,
                "the certificate subject `{found}` is not `{expected}` required by identity `{identity}` of namespace `{namespace}`: sign with that identity's certificate"
            ),
            Self::ThresholdNotMet {
                namespace,
                sub_delegation,
                valid,
                threshold,
            } => {
                let whose = match sub_delegation {
                    Some(name) => format!("sub-delegation `{name}` of namespace `{namespace}`"),
                    None => format!("namespace `{namespace}`"),
                };
                write!(
                    f,
                    "{whose} needs signatures by {threshold} distinct principals (holders of its trusted keys or identities), {valid} found: add signatures by other holders' keys (several keys of one holder, such as one CI identity's ephemeral keys or certificates matched by one identity, count once)"
                )
            }
            Self::DelegatedToPeer { peer, url, root } => write!(
                f,
                "the artifact belongs to peer `{peer}`: ask {url}, verifying it against {root}"
            ),
        }
    }
}

/// The outcome of [`TrustSet::decide`](super::TrustSet::decide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The signers are trusted for the artifact.
    Trusted {
        /// The namespace that owns the artifact.
        namespace: NamespaceName,
        /// What made it trusted.
        rule: TrustRule,
    },
    /// They are not.
    Untrusted {
        /// Why.
        reason: Reason,
    },
}

impl Decision {
    /// True for [`Decision::Trusted`].
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trusted { namespace, rule } => {
                write!(f, "trusted by namespace `{namespace}`: {rule}")
            }
            Self::Untrusted { reason } => write!(f, "untrusted: {reason}"),
        }
    }
}
