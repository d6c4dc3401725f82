//! Trusted timestamp authorities: `PUT /api/v1/tsas/{name}`,
//! `GET /api/v1/tsas`, `DELETE /api/v1/tsas/{name}` (`org/tsas.json`).

use serde::{Deserialize, Serialize};

/// `PUT /api/v1/tsas/{name}`: a TSA the organization trusts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutTsa {
    /// The trust anchor, one PEM certificate: the TSA's CA, or the TSA's
    /// own certificate (extended key usage `id-kp-timeStamping`).
    pub certificate: String,
    /// Free text, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A trusted TSA as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TsaView {
    /// Its name.
    pub name: String,
    /// The certificate, PEM, as given.
    pub certificate: String,
    /// SHA-256 of the certificate's DER (as revocations name certificates).
    pub sha256: String,
    /// The certificate's subject.
    pub subject: String,
    /// The description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was added or last replaced (RFC 3339).
    pub added_at: String,
}

/// The answer to `GET /api/v1/tsas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TsaList {
    /// Every trusted TSA, by name.
    pub tsas: Vec<TsaView>,
}
