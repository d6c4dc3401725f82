//! Revocations: the organization's (`POST /api/v1/revocations`) and a
//! namespace's own (`POST /api/v1/namespaces/{ns}/revocations`).

use serde::{Deserialize, Serialize};

use crate::datetime::Rfc3339Time;
use crate::hash::Sha256Hex;
use crate::ids::KeyId;
use crate::keys::Key;
use crate::trust::{NamespaceName, Revocation};

/// `POST /api/v1/revocations`: what to revoke, given exactly one way, and
/// why. A key is always revoked by its material: an id is resolved to the
/// key listed under it now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddRevocation<Name = NamespaceName, TufKey = Key, Hash = Sha256Hex, Time = Rfc3339Time> {
    /// A key by the id it is listed under (with `namespace`, or unique
    /// across namespaces).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// The namespace whose `key_id` is meant.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Name>,
    /// A key as a TUF key object.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub key: Option<TufKey>,
    /// A key as PEM SubjectPublicKeyInfo.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A key by its fingerprint (SHA-256 of its material).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<Hash>,
    /// A certificate by the SHA-256 of its DER.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<Hash>,
    /// A certificate as PEM.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// From when; the server's now when absent.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
    /// Why.
    pub reason: String,
}

/// `POST /api/v1/namespaces/{ns}/revocations`: the namespace revokes the
/// key listed under `key_id` (its own keys or its sub-delegations'), by
/// its material, for its own artifacts only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeNamespaceKey<Time = Rfc3339Time> {
    /// The id the key is listed under in the namespace.
    pub key_id: KeyId,
    /// Why.
    pub reason: String,
    /// From when; the server's now when absent.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
}

/// Where a key is listed: a namespace's own keys or one of its
/// sub-delegations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing {
    /// The namespace.
    pub namespace: String,
    /// The sub-delegation, when the key is listed by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_delegation: Option<String>,
    /// The id the key is listed under.
    pub key_id: String,
}

/// The answer to `POST /api/v1/revocations`: the revocation, where the
/// request named the key (by id) and where the key is listed now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevocationAdded {
    /// The revocation as `org/revocations.json` lists it.
    #[serde(flatten)]
    pub revocation: Revocation,
    /// The listing the request named the key by (`key_id`), if it did.
    pub named_as: Option<Listing>,
    /// Every listing of the key now.
    pub listed_in: Vec<Listing>,
}

/// One revocation of `GET /api/v1/revocations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevocationListed {
    /// The revocation as `org/revocations.json` lists it.
    #[serde(flatten)]
    pub revocation: Revocation,
    /// When the server recorded it (RFC 3339).
    pub recorded_at: String,
    /// The listing the request named the key by, if it did.
    pub named_as: Option<Listing>,
}

/// The answer to `GET /api/v1/revocations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevocationList {
    /// Every revocation of the organization.
    pub revocations: Vec<RevocationListed>,
}

/// The answer to `POST /api/v1/namespaces/{ns}/revocations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceKeyRevoked {
    /// The revocation as the namespace's trust document lists it.
    #[serde(flatten)]
    pub revocation: Revocation,
    /// The namespace.
    pub namespace: NamespaceName,
    /// The id the request named the key by.
    pub key_id: KeyId,
    /// Where the key is listed in the namespace.
    pub listed_in: Vec<Listing>,
}
