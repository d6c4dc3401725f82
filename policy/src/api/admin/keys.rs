//! A namespace's keys: `POST /api/v1/namespaces/{ns}/keys`.

use serde::{Deserialize, Serialize};

use crate::datetime::Rfc3339Time;
use crate::ids::KeyId;
use crate::keys::Key;

/// `POST /api/v1/namespaces/{ns}/keys`: exactly one of `key` and
/// `public_key_pem`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddKey<TufKey = Key, Time = Rfc3339Time> {
    /// The key as a TUF key object.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub key: Option<TufKey>,
    /// The key as PEM SubjectPublicKeyInfo.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// Key id; the server computes the TUF key id when absent.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub id: Option<KeyId>,
    /// Signatures before it are untrusted.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    /// Signatures at or after it are untrusted.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// Free text.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A layout-root key: also trusted to sign the namespace's in-toto
    /// layouts (`TrustedKey::layout_root`). The namespace's document is
    /// then published as `keyshare.trust/v3`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layout_root: bool,
}
