//! What the caller gives the admin client's methods: small request
//! structs, turned into the wire types of `keyshare_policy::api`.

use serde::Serialize;
use serde_json::Value;

use keyshare_policy::api::admin as api;

/// `POST /api/v1/namespaces`: the wire type, with the name and scopes as
/// given (the server checks them).
pub type NewNamespace = api::CreateNamespace<String, String>;

/// The key material of [`NewKey`].
#[derive(Debug, Clone)]
pub enum KeyMaterial {
    /// A PEM SubjectPublicKeyInfo (`public_key_pem`).
    Pem(String),
    /// A TUF key object (`key`).
    Tuf(Value),
}

/// `POST /api/v1/namespaces/{ns}/keys`.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The public key.
    pub key: KeyMaterial,
    /// Key id; the server computes the TUF key id when absent.
    pub id: Option<String>,
    /// RFC 3339 time; signatures before it are untrusted.
    pub not_before: Option<String>,
    /// RFC 3339 time; signatures at or after it are untrusted.
    pub not_after: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Also trusted to sign the namespace's in-toto layouts.
    pub layout_root: bool,
}

/// `POST /api/v1/namespaces/{ns}/identities`.
#[derive(Debug, Clone, Serialize)]
pub struct NewIdentity {
    /// Name, unique in the namespace.
    pub name: String,
    /// CA certificates, PEM.
    pub ca_certs: Vec<String>,
    /// Required leaf subject.
    pub subject: String,
    /// RFC 3339 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// RFC 3339 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// `POST /api/v1/namespaces/{ns}/sub-delegations`.
#[derive(Debug, Clone, Serialize)]
pub struct NewSubDelegation {
    /// Name, unique in the namespace.
    pub name: String,
    /// Artifact patterns (inside the namespace's scopes).
    pub scopes: Vec<String>,
    /// Distinct keys that must sign.
    pub threshold: u32,
    /// Trusted keys: `{"id", "key": <TUF key object>, ...}`.
    pub keys: Vec<Value>,
}

/// What a revocation revokes. A key is always revoked by its material:
/// the server resolves an id to the key listed under it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RevokedSubject {
    /// The key listed under `id` (in `namespace`, or the one key listed
    /// under that id in any namespace).
    KeyId {
        /// The namespace, when the id alone is ambiguous.
        namespace: Option<String>,
        /// The id.
        id: String,
    },
    /// A key given by its public key.
    Key(KeyMaterial),
    /// A key by its fingerprint (SHA-256 hex of its material).
    SpkiSha256(String),
    /// A certificate, by the SHA-256 (hex) of its DER encoding.
    CertificateSha256(String),
    /// A certificate, PEM.
    CertificatePem(String),
}

/// `POST /api/v1/revocations`.
#[derive(Debug, Clone)]
pub struct NewRevocation {
    /// The key or certificate.
    pub subject: RevokedSubject,
    /// Why.
    pub reason: String,
    /// RFC 3339 time; the server's now when absent.
    pub revoked_at: Option<String>,
}

/// `POST /api/v1/namespaces/{ns}/revocations`: a namespace revokes one of
/// its keys, for its own artifacts only.
#[derive(Debug, Clone, Serialize)]
pub struct NewNamespaceRevocation {
    /// The id the key is listed under in the namespace (its own keys or a
    /// sub-delegation's).
    pub key_id: String,
    /// Why.
    pub reason: String,
    /// RFC 3339 time; the server's now when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// The root a peer is pinned to.
#[derive(Debug, Clone)]
pub enum PeerRoot {
    /// SHA-256 (hex) of the peer's root metadata file.
    Sha256(String),
    /// Root key ids and how many must sign.
    Keys {
        /// Key ids.
        keyids: Vec<String>,
        /// Threshold.
        threshold: u32,
    },
}

/// `PUT /api/v1/peers/{name}`.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Artifact patterns the peer answers for.
    pub patterns: Vec<String>,
    /// The peer's base URL.
    pub url: String,
    /// Its pinned root.
    pub root: PeerRoot,
    /// Whether the peer owns its patterns before any namespace.
    pub terminating: bool,
}

/// What a new token may do.
#[derive(Debug, Clone)]
pub enum TokenKind {
    /// Everything.
    OrgAdmin,
    /// One namespace's keys, identities, sub-delegations and threshold.
    Maintainer(String),
    /// The CI delegation endpoints of these namespaces.
    Ci(Vec<String>),
}

/// When a new token expires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenExpiry {
    /// This many seconds after the server creates it (`expires_in`).
    In(u64),
    /// At this RFC 3339 time (`expires_at`).
    At(String),
}

/// `GET /api/v1/audit` query: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records with a larger sequence number.
    pub after: Option<i64>,
    /// Only records with a smaller sequence number (paging newest first).
    pub before: Option<i64>,
    /// Only records written at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only this action (`key.add`), or a prefix ending in `.*` (`key.*`).
    pub action: Option<String>,
    /// Only this actor (`token:<id>`, `system`, ...).
    pub actor: Option<String>,
    /// Only records about this namespace.
    pub namespace: Option<String>,
    /// Newest first (else oldest first).
    pub newest_first: bool,
    /// At most this many (the server's default 100, cap 1000).
    pub limit: Option<u32>,
}
