//! Namespaces: `POST /api/v1/namespaces`, `GET /api/v1/namespaces/{ns}`,
//! `PUT .../threshold`, `POST .../scopes`, and `GET /api/v1/resolve`.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hash::Sha256Hex;
use crate::pattern::ArtifactPattern;
use crate::trust::{NamespaceName, Revocation, TrustedKey, X509Identity};

/// A namespace as `GET /api/v1/namespaces` lists it; the detail of one
/// (`GET /api/v1/namespaces/{ns}`) adds its keys, identities,
/// sub-delegations and revocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceSummary {
    /// Namespace name.
    pub name: NamespaceName,
    /// Artifact patterns the namespace owns.
    pub scopes: Vec<ArtifactPattern>,
    /// Maintainers (free-form labels).
    pub maintainers: Vec<String>,
    /// Distinct keys (or identities) that must sign.
    #[cfg_attr(feature = "openapi", schema(value_type = u32, minimum = 1))]
    pub threshold: NonZeroU32,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// The answer to `GET /api/v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceList {
    /// Every namespace, by name.
    pub namespaces: Vec<NamespaceSummary>,
}

/// `POST /api/v1/namespaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace<Name = NamespaceName, Pattern = ArtifactPattern> {
    /// Namespace name.
    pub name: Name,
    /// Artifact patterns the namespace owns.
    pub scopes: Vec<Pattern>,
    /// Maintainers (free-form labels).
    #[serde(default)]
    pub maintainers: Vec<String>,
    /// Create it even if a scope overlaps another namespace's (otherwise
    /// the server refuses with 409 `scope_overlap`, naming them).
    #[serde(default, skip_serializing_if = "super::super::is_false")]
    pub allow_overlap: bool,
}

/// The query of `GET /api/v1/namespaces/{ns}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema, utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct NamespaceQuery {
    /// Flag keys whose `not_after` is at most this far ahead (`30d`, `12h`).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub expiring_within: Option<String>,
}

impl NamespaceQuery {
    /// The query's parameters, as a client sends them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        self.expiring_within
            .iter()
            .map(|w| ("expiring_within", w.clone()))
            .collect()
    }
}

/// `PUT /api/v1/namespaces/{ns}/threshold`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(bound = ""))]
#[serde(deny_unknown_fields)]
pub struct SetThreshold<Threshold = NonZeroU32> {
    /// Distinct keys (or identities) that must sign.
    #[cfg_attr(feature = "openapi", schema(value_type = u32, minimum = 1))]
    pub threshold: Threshold,
}

/// `POST /api/v1/namespaces/{ns}/scopes`: more artifact patterns for a
/// namespace. A new scope that overlaps another namespace's is refused
/// (409 `scope_overlap`) unless `allow_overlap`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddScopes<Pattern = ArtifactPattern> {
    /// The patterns to add.
    pub scopes: Vec<Pattern>,
    /// Add them even if one overlaps another namespace's scope.
    #[serde(default, skip_serializing_if = "super::super::is_false")]
    pub allow_overlap: bool,
}

/// The query of `GET /api/v1/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema, utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct ResolveQuery {
    /// The artifact name whose owner is asked.
    pub artifact: String,
}

impl ResolveQuery {
    /// The query's parameters, as a client sends them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![("artifact", self.artifact.clone())]
    }
}

/// The answer to `GET /api/v1/resolve`: who answers for an artifact name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resolved {
    /// A namespace, by its most specific matching scope.
    Namespace {
        /// The namespace.
        namespace: String,
        /// Its scope that matched.
        scope: String,
    },
    /// A peer keyshare service.
    Peer {
        /// The peer's name.
        peer: String,
        /// Its URL.
        url: String,
    },
}

/// The answer to `GET /api/v1/namespaces/{ns}` (and to the writes that
/// change a namespace): the namespace with its keys (and how each stands),
/// identities, sub-delegations and its own revocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceDetail {
    /// Name, scopes, maintainers, threshold, creation time.
    #[serde(flatten)]
    pub namespace: NamespaceSummary,
    /// Its keys.
    pub keys: Vec<KeyView>,
    /// Its X.509 identities.
    pub identities: Vec<X509Identity>,
    /// Its sub-delegations.
    pub sub_delegations: Vec<SubDelegationView>,
    /// Its own revocations of its keys.
    pub revocations: Vec<NamespaceRevocationView>,
    /// How far ahead a key's `not_after` flags it `expires_soon`.
    pub expiring_within_seconds: i64,
    /// What a create or a widening let through with `allow_overlap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlaps: Option<Value>,
}

/// A listed key as the trust document has it, plus how it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    /// The key as listed.
    #[serde(flatten)]
    pub key: TrustedKey,
    /// Its fingerprint (null when it cannot be computed).
    pub spki_sha256: Option<Sha256Hex>,
    /// `active`, `expires_soon`, `not_yet_valid`, `expired` or `revoked`.
    pub state: String,
    /// Its window has ended.
    pub expired: bool,
    /// Its window ends within `expiring_within_seconds`.
    pub expires_soon: bool,
    /// The revocation that applies to it, if any.
    pub revocation: Option<KeyRevocationView>,
}

/// The revocation of a listed key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRevocationView {
    /// `organization` or `namespace`.
    pub by: String,
    /// From when (RFC 3339).
    pub revoked_at: String,
    /// Why.
    pub reason: String,
    /// Whether that time has come.
    pub in_effect: bool,
}

/// A sub-delegation with how each of its keys stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubDelegationView {
    /// Name, unique within the namespace.
    pub name: String,
    /// Artifacts it covers.
    pub scopes: Vec<ArtifactPattern>,
    /// Distinct keys that must have signed.
    #[cfg_attr(feature = "openapi", schema(value_type = u32, minimum = 1))]
    pub threshold: NonZeroU32,
    /// Its keys.
    pub keys: Vec<KeyView>,
}

/// A namespace's own revocation of one of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceRevocationView {
    /// The revocation as the namespace's trust document lists it.
    #[serde(flatten)]
    pub revocation: Revocation,
    /// The namespace.
    pub namespace: NamespaceName,
    /// The id the key was listed under when it was revoked.
    pub key_id: Option<String>,
    /// When the server recorded it (RFC 3339).
    pub recorded_at: String,
}
