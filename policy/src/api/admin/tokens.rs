//! Tokens: `POST /api/v1/tokens`.

use serde::{Deserialize, Serialize};

use crate::datetime::Rfc3339Time;
use crate::trust::NamespaceName;

/// `POST /api/v1/tokens`: `kind` `org-admin` (alone), `maintainer` (with
/// `namespace`) or `ci` (with `namespaces`); an expiry from `expires_in`
/// or `expires_at` (not both), or none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken<Name = NamespaceName, Time = Rfc3339Time> {
    /// `org-admin`, `maintainer` or `ci`.
    pub kind: String,
    /// A maintainer's namespace.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Name>,
    /// A CI token's namespaces.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<Name>>,
    /// Free text.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seconds from now until the token expires.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// When the token expires.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// A token as the API shows it: never its secret, except in the answer
/// to `POST /api/v1/tokens` (once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    /// Its id (`token:<id>` in the audit log).
    pub id: String,
    /// `org-admin`, `maintainer` or `ci`.
    pub kind: String,
    /// The namespaces it is for (none for an org admin).
    pub namespaces: Vec<NamespaceName>,
    /// Free text.
    pub description: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// When it expires.
    pub expires_at: Option<String>,
    /// When it was last used.
    pub last_used_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// The secret, in the answer that creates it only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The answer to `GET /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    /// Every token, oldest first.
    pub tokens: Vec<TokenView>,
}
