//! CI issuance: `POST /api/v1/ci/nonce`, `POST /api/v1/ci/delegations`
//! (`DELETE /api/v1/ci/delegations/{id}` has no body), and the message a
//! job signs to prove it holds the key it asks a delegation for.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::KeyId;
use crate::trust::NamespaceName;

/// The message a job signs to prove it holds the key it asks a delegation
/// for: bound to the server's nonce, the namespace and the key id. The
/// job signs these bytes and the server checks the same bytes.
pub fn proof_message(nonce: &str, namespace: &str, key_id: &str) -> Vec<u8> {
    format!("keyshare-ci-delegation-v1\nnonce={nonce}\nnamespace={namespace}\nkey_id={key_id}\n")
        .into_bytes()
}

/// The answer to `POST /api/v1/ci/nonce`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Nonce {
    /// When the server stops accepting it (RFC 3339).
    pub expires_at: Option<String>,
    /// The nonce to sign into the proof.
    pub nonce: String,
}

/// A delegation request (`POST /api/v1/ci/delegations`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DelegationRequest<Name = NamespaceName> {
    /// The namespace to sign for.
    pub namespace: Name,
    /// The job's public key, SubjectPublicKeyInfo PEM (Ed25519, ECDSA
    /// P-256 or RSA of 2048 bits or more).
    pub public_key_pem: String,
    /// A nonce from `POST /api/v1/ci/nonce`.
    pub nonce: String,
    /// Hex signature by the key over [`proof_message`] (in the key's TUF
    /// scheme: Ed25519, ECDSA P-256 SHA-256 DER, RSA-PSS SHA-256).
    pub proof: String,
    /// Requested lifetime in seconds; at most `ci.max_ttl` (longer asks are cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A delegation granted: the answer to `POST /api/v1/ci/delegations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delegation {
    /// `<namespace>.<key id>`; ends it early with `DELETE`.
    pub id: String,
    /// The namespace.
    pub namespace: NamespaceName,
    /// The key's id in the trust document.
    pub key_id: KeyId,
    /// Start of the window (the grant time).
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The certificate and the CA chain, PEM, when `[ci.ca]` is configured.
    pub certificate_chain_pem: Option<String>,
    /// Timestamp version that first contains the key.
    pub timestamp_version: u64,
    /// Version of the role that lists the namespace's trust document (its
    /// hashed bin, `bins-xx`) that first contains the key.
    pub namespace_version: Option<u64>,
}

/// The answer to `GET /api/v1/ci/evidence/{spki_sha256}`: the delegation
/// evidence of an ephemeral key, one per namespace that lists it now
/// ([`crate::evidence`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvidenceAnswer {
    /// The evidence, by namespace name (at most 8).
    pub evidence: Vec<crate::evidence::DelegationEvidence>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_binds_nonce_namespace_and_key_id() {
        assert_eq!(
            proof_message("n1", "team-a", "k1"),
            b"keyshare-ci-delegation-v1\nnonce=n1\nnamespace=team-a\nkey_id=k1\n".to_vec()
        );
    }

    #[test]
    fn a_request_refuses_unknown_fields_and_leaves_out_no_ttl() {
        let req = DelegationRequest {
            namespace: "team-a".to_owned(),
            public_key_pem: "PEM".into(),
            nonce: "n".into(),
            proof: "00".into(),
            ttl_seconds: None,
        };
        let text = serde_json::to_string(&req).unwrap();
        assert!(!text.contains("ttl_seconds"), "{text}");
        let parsed: DelegationRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.namespace.as_str(), "team-a");
        let extra = text.replace('}', ",\"x\":1}");
        assert!(serde_json::from_str::<DelegationRequest>(&extra).is_err());
    }
}
