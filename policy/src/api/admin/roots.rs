//! The organization's X.509 roots (`PUT /api/v1/roots/{name}`) and the
//! TUF root (`POST /api/v1/root`, whose body is the signed root file).

use serde::{Deserialize, Serialize};

/// An organization root as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgRootView {
    /// Its name.
    pub name: String,
    /// The certificate, PEM, as given.
    pub pem: String,
    /// SHA-256 of the certificate's DER.
    pub sha256: String,
    /// Where it is published (`org/roots/<name>.pem`).
    pub target: String,
    /// When it was added (RFC 3339).
    pub added_at: String,
}

/// The answer to `GET /api/v1/roots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgRootList {
    /// Every root, by name.
    pub roots: Vec<OrgRootView>,
}

/// `PUT /api/v1/roots/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutRoot {
    /// The root certificate, PEM.
    pub pem: String,
}

/// The answer to `POST /api/v1/root`: what the new root's publish made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootSubmitted {
    /// The new root's version.
    pub root_version: Option<u64>,
    /// The files published.
    pub files: Vec<String>,
    /// The new timestamp's version.
    pub timestamp_version: u64,
    /// The audit record of the change.
    pub audit_seq: i64,
}
