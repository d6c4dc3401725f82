//! Detached signatures over files ("blobs") and their verification.
//!
//! A signature file is one JSON object:
//!
//! ```json
//! {
//!   "format": "keyshare-blob-signature-v1",
//!   "key_id": "<the signer's key id>",
//!   "key": { "keytype": "ed25519", "scheme": "ed25519", "keyval": { "public": "..." } },
//!   "signed_at": "2030-01-01T12:00:00Z",
//!   "sha256": "<hex SHA-256 of the file>",
//!   "signature": "<hex signature>"
//! }
//! ```
//!
//! The signature is made, in the key's TUF scheme (Ed25519, ECDSA P-256
//! SHA-256 DER, RSA-PSS SHA-256), over the bytes of [`signed_message`]:
//! `keyshare-blob-signature-v1\nsha256=<hex>\nsigned_at=<RFC 3339>\n`,
//! so neither the digest nor the claimed signing time can be changed.
//! The embedded key only lets the signature be checked: whether it is
//! trusted is decided by [`verify`] against the trust documents, by key
//! material, as [`keyshare_policy::trust::TrustSet::decide`] does.
//!
//! `signed_at` is the signer's word: whoever holds a stolen key writes any
//! time they like, say one before the key was revoked. [`verify`] therefore
//! decides as of *now* ([`SigningTime::Now`]); an earlier time is used only
//! when the caller holds evidence of it that it trusts
//! ([`SigningTime::Trusted`]: its own record of when it received the
//! artifact, a timestamp token it verified). The claimed `signed_at` is
//! returned for display and never decides anything.
//!
//! **Trusted time.** A signature file may carry an RFC 3161 timestamp token
//! over the signature's bytes (`timestamp_token`, hex DER), obtained by
//! `keyshare sign-blob` from the server's timestamp authority. [`verify`]
//! checks it against the organization's trusted TSAs (`org/tsas.json`) and
//! revocations ([`keyshare_policy::timestamp::verify_token`]) and then
//! decides for a signature made at the token's `genTime`
//! ([`SigningTime::Now`] with a token), ephemeral keys included: a CI
//! key's signature stamped inside its window keeps verifying after the
//! delegation ends. A token that does not verify is an error
//! ([`BlobError::Timestamp`]), never a silent fallback to now. Files
//! without the field are read as before; verifiers older than the field
//! refuse files that carry it (unknown field `timestamp_token`).
//!
//! **Delegation evidence.** Once the sweep removed a CI key from its
//! namespace's document, the current documents no longer say the key was
//! ever trusted. A signature file may carry `delegation_evidence`
//! ([`keyshare_policy::evidence::DelegationEvidence`]: the namespace's
//! `trust.json` that listed the key and the signed bin that listed that
//! document), fetched by `keyshare sign-blob` from the server
//! ([`crate::evidence`]). When a stamped signature is otherwise untrusted,
//! [`verify`] checks the evidence of the namespace that owns the artifact
//! against the verifier's trust state ([`Against::evidence`]) and decides
//! again with the key's window from that document
//! ([`TrustSet::decide_attested_with_history`]); evidence that does not
//! check is an error ([`BlobError::Evidence`]). Without a token evidence
//! is never used: the window says nothing without a trusted time.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use keyshare_policy::evidence::{DelegationEvidence, EvidenceAnchor, EvidenceError};
use keyshare_policy::ids::RoleName;
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::Signer;
use keyshare_policy::timestamp::{verify_token, TokenError, TrustedTime};
use keyshare_policy::trust::{Decision, NamespaceName, Owner, SignerRef, TrustSet, Tsas};

/// The `format` of signature files.
pub const FORMAT: &str = "keyshare-blob-signature-v1";

/// A detached signature (the JSON file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobSignature {
    /// Always [`FORMAT`].
    pub format: String,
    /// The signer's key id.
    pub key_id: KeyId,
    /// The signer's public key.
    pub key: Key,
    /// When it was signed, by the signer's clock: shown, never trusted.
    #[serde(with = "time::serde::rfc3339")]
    pub signed_at: OffsetDateTime,
    /// SHA-256 of the signed file, hex.
    pub sha256: String,
    /// The signature, hex.
    pub signature: String,
    /// An RFC 3161 timestamp token over the signature's bytes (the
    /// hex-decoded `signature`), DER, hex: when a TSA saw the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_token: Option<String>,
    /// Evidence that the key was delegated (an ephemeral CI key), at most
    /// [`MAX_EVIDENCE`]: for verifiers after the key was swept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegation_evidence: Vec<DelegationEvidence>,
}

/// Most delegation evidence one signature file may carry.
pub const MAX_EVIDENCE: usize = 8;

impl BlobSignature {
    /// The signature's bytes (what a timestamp token stamps).
    pub fn signature_bytes(&self) -> Result<Vec<u8>, BlobError> {
        hex::decode(&self.signature)
            .map_err(|_| BlobError::Malformed("`signature` is not hex".into()))
    }
}

/// Why a signature could not be checked (before any trust decision).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The signature file is not a keyshare blob signature.
    #[error("not a keyshare blob signature: {0}")]
    Malformed(String),
    /// The file is not the one that was signed.
    #[error("the file's SHA-256 {actual} is not the signed {signed}")]
    DigestMismatch {
        /// In the signature.
        signed: String,
        /// Of the file.
        actual: String,
    },
    /// The signature does not verify with the key it names.
    #[error("the signature does not verify with key {0}")]
    BadSignature(KeyId),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The signature's timestamp token is refused.
    #[error("{0}")]
    Timestamp(#[from] TokenError),
    /// The signature's delegation evidence is refused.
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
}

/// The bytes a blob signature signs.
pub fn signed_message(sha256_hex: &str, signed_at: OffsetDateTime) -> Result<Vec<u8>, BlobError> {
    let at = keyshare_policy::datetime::rfc3339(signed_at);
    Ok(format!("{FORMAT}\nsha256={sha256_hex}\nsigned_at={at}\n").into_bytes())
}

/// Signs `bytes` with `signer` at `now` (whole seconds).
pub fn sign(
    signer: &dyn Signer,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<BlobSignature, BlobError> {
    let signed_at = now.replace_nanosecond(0).unwrap_or(now);
    let sha256 = keyshare_policy::hash::sha256_hex(bytes);
    let signature = signer
        .sign(&signed_message(&sha256, signed_at)?)
        .map_err(|e| BlobError::Sign(e.to_string()))?;
    Ok(BlobSignature {
        format: FORMAT.to_owned(),
        key_id: signer.key_id().clone(),
        key: signer.public_key().clone(),
        signed_at,
        sha256,
        signature: hex::encode(signature),
        timestamp_token: None,
        delegation_evidence: Vec::new(),
    })
}

/// Parses a signature file.
pub fn parse(sig: &[u8]) -> Result<BlobSignature, BlobError> {
    let parsed: BlobSignature =
        serde_json::from_slice(sig).map_err(|e| BlobError::Malformed(e.to_string()))?;
    if parsed.format != FORMAT {
        return Err(BlobError::Malformed(format!(
            "format `{}` is not `{FORMAT}`",
            parsed.format
        )));
    }
    if parsed.delegation_evidence.len() > MAX_EVIDENCE {
        return Err(BlobError::Malformed(format!(
            "more than {MAX_EVIDENCE} delegation evidence entries"
        )));
    }
    Ok(parsed)
}

/// When a signature was made, as far as the verifier knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningTime {
    /// No evidence of the verifier's own: the signature's timestamp token,
    /// verified against the trusted TSAs, gives the signing time; without
    /// a token, decide as if the signature were made now (the only safe
    /// time for a signature alone).
    Now,
    /// Known from evidence the verifier trusts (its own timestamp, a
    /// verified timestamp token): decide for a signature made then.
    Trusted(OffsetDateTime),
}

/// The outcome of [`verify`].
#[derive(Clone, Debug)]
pub struct Verified {
    /// Trusted or not, with the reason.
    pub decision: Decision,
    /// The signing time the decision was made for.
    pub decided_for: OffsetDateTime,
    /// The signer's own claim of when it signed (shown, not used).
    pub claimed_signed_at: OffsetDateTime,
    /// The signer's key id, as the signature names it.
    pub key_id: KeyId,
    /// The verified timestamp token the signing time came from, if any.
    pub timestamp: Option<TrustedTime>,
    /// The delegation evidence the decision used, if it took any.
    pub evidence: Option<EvidenceUsed>,
}

/// Delegation evidence a decision used: which published bin version
/// listed the namespace document that listed the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceUsed {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The hashed bin.
    pub role: RoleName,
    /// Its version.
    pub version: u64,
}

impl<'a> From<&'a crate::TrustState> for Against<'a> {
    fn from(state: &'a crate::TrustState) -> Self {
        Self {
            set: &state.trust_set,
            tsas: &state.tsas,
            evidence: &state.evidence,
        }
    }
}

/// What a signature is verified against: the parts of the verifier's
/// trust state a decision needs.
#[derive(Clone, Copy, Debug)]
pub struct Against<'a> {
    /// The trust documents, indexed.
    pub set: &'a TrustSet,
    /// The timestamp authorities the organization trusts.
    pub tsas: &'a Tsas,
    /// What delegation evidence is checked against.
    pub evidence: &'a EvidenceAnchor,
}

/// Checks `sig` over `bytes` cryptographically, then decides, with the
/// trust state `against` as of `now`, whether its key is trusted for
/// `artifact`, for a signature made at `time`: the caller's trusted time
/// if it gives one, else the `genTime` of the signature's timestamp token
/// (verified against the trusted TSAs and the revocations), else now;
/// never the signature's own `signed_at`. A stamped signature the current
/// documents do not trust is decided again with its delegation evidence
/// for the artifact's namespace, if it carries any (module docs). `Err`
/// when the signature, its token or the evidence used does not hold;
/// otherwise the decision, trusted or not, with its reason.
pub fn verify(
    against: Against<'_>,
    artifact: &str,
    bytes: &[u8],
    sig: &[u8],
    time: SigningTime,
    now: OffsetDateTime,
) -> Result<Verified, BlobError> {
    let sig = parse(sig)?;
    let actual = keyshare_policy::hash::sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(&sig.sha256) {
        return Err(BlobError::DigestMismatch {
            signed: sig.sha256,
            actual,
        });
    }
    let raw = sig.signature_bytes()?;
    let message = signed_message(&actual, sig.signed_at)?;
    if !sig.key.verify(&sig.key_id, &message, &raw).unwrap_or(false) {
        return Err(BlobError::BadSignature(sig.key_id));
    }
    let timestamp = match &sig.timestamp_token {
        None => None,
        Some(token) => {
            let der = hex::decode(token)
                .map_err(|_| BlobError::Malformed("`timestamp_token` is not hex".into()))?;
            Some(verify_token(
                &der,
                &raw,
                against.tsas,
                against.set.revocations(),
                now,
            )?)
        }
    };
    let set = against.set;
    let signers = [SignerRef::PublicKey(sig.key)];
    let mut evidence = None;
    let (decided_for, decision) = match (time, &timestamp) {
        (SigningTime::Trusted(at), _) => (at, set.decide(artifact, &signers, at, now)),
        (SigningTime::Now, Some(t)) => {
            let decision = set.decide_attested(artifact, &signers, t.gen_time, now);
            if decision.is_trusted() {
                (t.gen_time, decision)
            } else {
                match with_evidence(
                    against,
                    artifact,
                    &signers,
                    t.gen_time,
                    now,
                    &sig.delegation_evidence,
                )? {
                    Some((decision, used)) => {
                        evidence = Some(used);
                        (t.gen_time, decision)
                    }
                    None => (t.gen_time, decision),
                }
            }
        }
        (SigningTime::Now, None) => (now, set.decide(artifact, &signers, now, now)),
    };
    Ok(Verified {
        decision,
        decided_for,
        claimed_signed_at: sig.signed_at,
        key_id: sig.key_id,
        timestamp,
        evidence,
    })
}

/// The decision with the signature's delegation evidence for the
/// namespace that owns `artifact`, if it carries some: `Err` if that
/// evidence does not check, `None` without any. Evidence for other
/// namespaces is left alone (it proves nothing about this artifact).
fn with_evidence(
    against: Against<'_>,
    artifact: &str,
    signers: &[SignerRef],
    signed_at: OffsetDateTime,
    now: OffsetDateTime,
    evidence: &[DelegationEvidence],
) -> Result<Option<(Decision, EvidenceUsed)>, BlobError> {
    let Some(Owner::Namespace { entry, .. }) = against.set.owner(artifact) else {
        return Ok(None);
    };
    let Some(ours) = evidence.iter().find(|e| e.namespace == entry.name) else {
        return Ok(None);
    };
    let checked = against.evidence.check(ours)?;
    let decision = against.set.decide_attested_with_history(
        artifact,
        signers,
        signed_at,
        now,
        &checked.document,
    );
    Ok(Some((
        decision,
        EvidenceUsed {
            namespace: entry.name.clone(),
            role: checked.role,
            version: checked.version,
        },
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::num::NonZeroU32;

    use keyshare_policy::keys::Scheme;
    use keyshare_policy::pattern::ArtifactPattern;
    use keyshare_policy::sign::InMemorySigner;
    use keyshare_policy::trust::{
        NamespaceEntry, NamespaceName, NamespaceTrust, Namespaces, Peers, Reason, Revocations,
        TrustFormat, TrustedKey,
    };
    use time::macros::datetime;
    use time::Duration;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

    fn against(set: &TrustSet) -> Against<'_> {
        static NO_TSAS: std::sync::OnceLock<Tsas> = std::sync::OnceLock::new();
        static NO_EVIDENCE: std::sync::OnceLock<EvidenceAnchor> = std::sync::OnceLock::new();
        Against {
            set,
            tsas: NO_TSAS.get_or_init(Tsas::default),
            evidence: NO_EVIDENCE.get_or_init(EvidenceAnchor::default),
        }
    }

    fn set_with(key: &InMemorySigner, ephemeral_until: Option<OffsetDateTime>) -> TrustSet {
        set_revoking(key, ephemeral_until, Revocations::default())
    }

    fn set_revoking(
        key: &InMemorySigner,
        ephemeral_until: Option<OffsetDateTime>,
        revocations: Revocations,
    ) -> TrustSet {
        let name = NamespaceName::parse("team-a").unwrap();
        let index = Namespaces {
            namespaces: vec![NamespaceEntry {
                name: name.clone(),
                scopes: vec![ArtifactPattern::parse("registry.acme.io/team-a/**").unwrap()],
                maintainers: vec![],
            }],
            ..Namespaces::default()
        };
        let doc = NamespaceTrust {
            format: TrustFormat::V1,
            revocations: vec![],
            namespace: name,
            threshold: NonZeroU32::MIN,
            keys: vec![TrustedKey {
                id: key.key_id().clone(),
                key: key.public_key().clone(),
                not_before: None,
                not_after: ephemeral_until,
                ephemeral: ephemeral_until.is_some(),
                description: None,
                principal: None,
                layout_root: false,
            }],
            identities: vec![],
            sub_delegations: vec![],
        };
        TrustSet::new(index, vec![doc], revocations, Peers::default()).unwrap()
    }

    #[test]
    fn a_signature_by_a_listed_key_is_trusted_for_its_namespace_only() {
        let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let set = set_with(&key, None);
        let sig = serde_json::to_vec(&sign(&key, b"artifact", NOW).unwrap()).unwrap();
        let d = verify(
            against(&set),
            "registry.acme.io/team-a/app",
            b"artifact",
            &sig,
            SigningTime::Now,
            NOW,
        )
        .unwrap()
        .decision;
        assert!(d.is_trusted(), "{d}");
        let d = verify(
            against(&set),
            "registry.acme.io/team-b/app",
            b"artifact",
            &sig,
            SigningTime::Now,
            NOW,
        )
        .unwrap()
        .decision;
        assert!(!d.is_trusted(), "{d}");
    }

    #[test]
    fn tampering_is_an_error_not_a_decision() {
        let key = InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
        let set = set_with(&key, None);
        let good = sign(&key, b"artifact", NOW).unwrap();
        let sig = serde_json::to_vec(&good).unwrap();
        assert!(matches!(
            verify(
                against(&set),
                "registry.acme.io/team-a/app",
                b"other",
                &sig,
                SigningTime::Now,
                NOW
            ),
            Err(BlobError::DigestMismatch { .. })
        ));
        let mut moved = good.clone();
        moved.signed_at = NOW - Duration::days(1);
        let sig = serde_json::to_vec(&moved).unwrap();
        assert!(matches!(
            verify(
                against(&set),
                "registry.acme.io/team-a/app",
                b"artifact",
                &sig,
                SigningTime::Now,
                NOW
            ),
            Err(BlobError::BadSignature(_))
        ));
        assert!(matches!(
            verify(
                against(&set),
                "a",
                b"artifact",
                b"{}",
                SigningTime::Now,
                NOW
            ),
            Err(BlobError::Malformed(_))
        ));
    }

    #[test]
    fn an_unlisted_key_claiming_a_listed_id_is_not_trusted() {
        let listed = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let other = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let set = set_with(&listed, None);
        let mut sig = sign(&other, b"x", NOW).unwrap();
        sig.key_id = listed.key_id().clone();
        let bytes = serde_json::to_vec(&sig).unwrap();
        let d = verify(
            against(&set),
            "registry.acme.io/team-a/app",
            b"x",
            &bytes,
            SigningTime::Now,
            NOW,
        )
        .unwrap()
        .decision;
        assert!(!d.is_trusted(), "{d}");
    }

    #[test]
    fn an_ephemeral_key_is_untrusted_once_it_expires() {
        let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let until = NOW + Duration::minutes(10);
        let set = set_with(&key, Some(until));
        let sig = serde_json::to_vec(&sign(&key, b"a", NOW).unwrap()).unwrap();
        let artifact = "registry.acme.io/team-a/app";
        assert!(
            verify(against(&set), artifact, b"a", &sig, SigningTime::Now, NOW)
                .unwrap()
                .decision
                .is_trusted()
        );
        match verify(against(&set), artifact, b"a", &sig, SigningTime::Now, until)
            .unwrap()
            .decision
        {
            Decision::Untrusted {
                reason: Reason::EphemeralExpired { .. },
            } => {}
            other => panic!("{other}"),
        }
    }

    #[test]
    fn back_dated_signatures_a_revoked_key_claiming_an_earlier_time_is_refused() {
        // A thief of a key revoked yesterday signs today, writing a
        // signed_at from a year ago (the signer chooses it).
        let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let revoked_at = NOW - Duration::days(1);
        let revocations = Revocations {
            revocations: vec![keyshare_policy::trust::Revocation {
                subject: keyshare_policy::trust::RevokedSubject::Key(
                    key.public_key().fingerprint(key.key_id()).unwrap(),
                ),
                revoked_at,
                reason: "stolen".into(),
            }],
            ..Revocations::default()
        };
        let set = set_revoking(&key, None, revocations);
        let claimed = NOW - Duration::days(365);
        let sig = serde_json::to_vec(&sign(&key, b"a", claimed).unwrap()).unwrap();
        let artifact = "registry.acme.io/team-a/app";
        let v = verify(against(&set), artifact, b"a", &sig, SigningTime::Now, NOW).unwrap();
        assert_eq!(v.claimed_signed_at, claimed);
        assert_eq!(v.decided_for, NOW);
        match v.decision {
            Decision::Untrusted {
                reason: Reason::Revoked { signed_at, .. },
            } => assert_eq!(signed_at, NOW),
            other => panic!("{other}"),
        }
        // Only a time the verifier itself trusts moves the decision.
        let v = verify(
            against(&set),
            artifact,
            b"a",
            &sig,
            SigningTime::Trusted(claimed),
            NOW,
        )
        .unwrap();
        assert!(v.decision.is_trusted(), "{}", v.decision);
    }

    #[test]
    fn back_dated_signatures_an_expired_key_claiming_an_earlier_time_is_refused() {
        let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let mut set = set_with(&key, None);
        let expired = NOW - Duration::days(30);
        // The same key with a validity window that ended a month ago.
        let name = NamespaceName::parse("team-a").unwrap();
        let mut doc = set.document("team-a").unwrap().clone();
        doc.keys[0].not_after = Some(expired);
        set = TrustSet::new(
            set.index().clone(),
            vec![doc],
            Revocations::default(),
            Peers::default(),
        )
        .unwrap();
        let sig =
            serde_json::to_vec(&sign(&key, b"a", expired - Duration::days(1)).unwrap()).unwrap();
        let v = verify(
            against(&set),
            "registry.acme.io/team-a/app",
            b"a",
            &sig,
            SigningTime::Now,
            NOW,
        )
        .unwrap();
        match v.decision {
            Decision::Untrusted {
                reason: Reason::KeyExpired { namespace, .. },
            } => assert_eq!(namespace, name),
            other => panic!("{other}"),
        }
    }
}
