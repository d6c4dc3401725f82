//! A blocking client of the server's admin API (`/api/v1/`, see
//! `docs/server.md`).
//!
//! [`AdminClient`] has one method per admin endpoint. Answers are returned
//! as the server's JSON ([`serde_json::Value`]); requests are small typed
//! structs. Every failure is an [`Error`]: the server's own refusals are
//! [`Error::Api`] carrying an [`AdminError`] (`status`, `code`, `message`
//! from the server's `{"error": {"code", "message"}}` body); transport
//! failures name the URL they failed on.
//!
//! Limits: connect timeout 10 s, whole request 30 s, answers of at most
//! 8 MiB, no redirects (the bearer token is never sent anywhere but the
//! configured server). The token is never part of an error, a `Debug`
//! output or a log.
//!
//! No endpoint takes a private key: every request body is searched for
//! private key material ([`private_key_in`]: PEM private keys of any kind,
//! `keyval.private`) and one that holds some is refused with
//! [`Error::Input`], naming where, before anything is sent.
//!
//! [`AdminClient::check_audit_log`] does not take the server's word for
//! the audit log: it fetches every record and recomputes the hash chain
//! here, checking it against audit heads the caller holds (the one in a
//! verified timestamp, heads a verifier cache remembered, heads written
//! down earlier).
//!
//! HTTP is reqwest with `native-tls` (the system's OpenSSL), the verifier's
//! client, run to completion on a private single-threaded runtime
//! ([`crate::fetch::BlockingClient`]), with the verifier's timeouts and CA
//! loading ([`crate::fetch::HttpSettings`]); see `docs/cli.md`.

use std::fmt;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use keyshare_policy::api::admin as api;
use keyshare_policy::audit::{ChainCheck, ChainError, ChainSummary, Head, Record};
use keyshare_policy::metadata::KeyId;

use crate::fetch::http::load_ca;
use crate::fetch::{BlockingClient, HttpSettings};
/// Largest answer read, bytes.
pub const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
/// Audit records asked for at once by [`AdminClient::check_audit_log`]
/// (the server's cap).
pub const AUDIT_PAGE: u32 = 1000;
/// Largest `timestamp.json` read by [`AdminClient::published_timestamp`].
const TIMESTAMP_MAX_BYTES: u64 = 16_384;

/// A refusal by the server: an HTTP status with the `code` and `message`
/// of its JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// HTTP status (4xx or 5xx).
    pub status: u16,
    /// The server's machine-readable code (`forbidden`, `invalid`, ...).
    pub code: String,
    /// The server's message (names the field or the object at fault).
    pub message: String,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for AdminError {}

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request.
    #[error("{0}")]
    Api(AdminError),
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The answer was larger than [`MAX_RESPONSE_BYTES`].
    #[error("answer from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit, bytes.
        limit: u64,
    },
    /// The answer was not what the API answers (not JSON, unexpected status).
    #[error("unexpected answer from {url}: {message}")]
    BadAnswer {
        /// The URL requested.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// The client could not be set up.
    #[error("{0}")]
    Config(String),
    /// What the caller gave cannot be sent (e.g. a private key where a
    /// public key belongs): refused before anything leaves the machine.
    #[error("{0}")]
    Input(String),
}

/// `Result` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A bearer token; never shown by `Debug`.
#[derive(Clone)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A client of one keyshare server's admin API, with one token.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: Token,
    http: BlockingClient,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

// ---- requests ----

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

/// Characters left as they are in a path segment (RFC 3986 unreserved).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AdminClient {
    /// A client of the server at `base_url` (`http://` or `https://`, no
    /// path needed) authenticating with `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Self> {
        Self::build(base_url, token, Vec::new())
    }

    /// Like [`new`](Self::new), and HTTPS servers are also trusted when
    /// their certificate chains to one of the PEM certificates in
    /// `ca_pem` (for a server with a private CA or a self-signed
    /// certificate).
    pub fn with_server_ca(base_url: &str, token: &str, ca_pem: &[u8]) -> Result<Self> {
        let certs =
            load_ca(ca_pem).map_err(|e| Error::Config(format!("server CA certificates: {e}")))?;
        Self::build(base_url, token, certs)
    }

    fn build(base_url: &str, token: &str, ca: Vec<reqwest::Certificate>) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| {
                Error::Config(format!(
                    "server URL `{base_url}` must start with http:// or https://"
                ))
            })?;
        if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Config(format!(
                "server URL `{base_url}` has no host or contains spaces"
            )));
        }
        // Refused without echoing the token.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(
                "the token is empty or has characters a bearer token cannot have".into(),
            ));
        }
        let settings = HttpSettings {
            extra_ca: ca,
            ..HttpSettings::default()
        };
        // No redirects: the token goes to the configured server only.
        let builder = settings
            .builder()
            .redirect(reqwest::redirect::Policy::none());
        let http = BlockingClient::new(builder).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            base,
            token: Token(token.to_owned()),
            http,
        })
    }

    /// The server's base URL, as used.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{path}", self.base)
    }

    /// Sends one request; `Value::Null` for an empty (204) answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        self.call_with_bytes(method, path, query, body.as_deref())
    }

    /// [`call`](Self::call) with a JSON body sent as these exact bytes.
    fn call_with_bytes(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Value> {
        if let Some(value) = body.and_then(|b| serde_json::from_slice::<Value>(b).ok()) {
            refuse_private_material(&value)?;
        }
        let url = self.url(path);
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| Error::Config(format!("HTTP method `{method}`: {e}")))?;
        let mut req = self
            .http
            .client()
            .request(method, &url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token.0))
            .header(ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let (status, bytes) = self.http.block_on(async {
            let response = req.send().await.map_err(|e| transport(&url, e))?;
            let status = response.status().as_u16();
            Ok::<_, Error>((
                status,
                read_capped(response, &url, MAX_RESPONSE_BYTES).await?,
            ))
        })?;
        if (200..300).contains(&status) {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| Error::BadAnswer {
                url,
                message: format!("status {status}, body is not JSON ({e})"),
            });
        }
        if status < 400 {
            return Err(Error::BadAnswer {
                url,
                message: format!("status {status} (redirects are not followed)"),
            });
        }
        Err(Error::Api(api_error(status, &bytes)))
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, &[], None)
    }

    pub(crate) fn delete(&self, path: &str) -> Result<()> {
        self.call("DELETE", path, &[], None).map(drop)
    }

    pub(crate) fn send<T: Serialize>(&self, method: &str, path: &str, body: &T) -> Result<Value> {
        let body = serde_json::to_value(body)
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        self.call(method, path, &[], Some(&body))
    }

    // ---- namespaces ----

    /// `POST /api/v1/namespaces`: the new namespace.
    pub fn create_namespace(&self, ns: &NewNamespace) -> Result<Value> {
        self.send("POST", "namespaces", ns)
    }

    /// `GET /api/v1/namespaces`: `{"namespaces": [...]}`.
    pub fn namespaces(&self) -> Result<Value> {
        self.get("namespaces")
    }

    /// `GET /api/v1/namespaces/{ns}`: the namespace with its keys,
    /// identities and sub-delegations.
    pub fn namespace(&self, ns: &str) -> Result<Value> {
        self.get(&format!("namespaces/{}", encode_segment(ns)))
    }

    /// [`AdminClient::namespace`], with keys whose `not_after` is at most
    /// `expiring_within` ahead (`30d`, `12h`) flagged `expires_soon` (the
    /// server's default when `None`).
    pub fn namespace_expiring_within(
        &self,
        ns: &str,
        expiring_within: Option<&str>,
    ) -> Result<Value> {
        let query = api::NamespaceQuery {
            expiring_within: expiring_within.map(str::to_owned),
        }
        .pairs();
        self.call(
            "GET",
            &format!("namespaces/{}", encode_segment(ns)),
            &query,
            None,
        )
    }

    /// `POST /api/v1/namespaces/{ns}/scopes`: widens a namespace; the
    /// namespace (with `overlaps` when `allow_overlap` let some through).
    pub fn add_scopes(&self, ns: &str, scopes: &[String], allow_overlap: bool) -> Result<Value> {
        let body = api::AddScopes {
            scopes: scopes.to_vec(),
            allow_overlap,
        };
        self.send(
            "POST",
            &format!("namespaces/{}/scopes", encode_segment(ns)),
            &body,
        )
    }

    /// `POST /api/v1/namespaces/{ns}/revocations`: the namespace's
    /// revocation of one of its keys (in that namespace only).
    pub fn revoke_namespace_key(&self, ns: &str, r: &NewNamespaceRevocation) -> Result<Value> {
        let body = api::RevokeNamespaceKey {
            key_id: KeyId::new(r.key_id.as_str()),
            reason: r.reason.clone(),
            revoked_at: r.revoked_at.clone(),
        };
        self.send(
            "POST",
            &format!("namespaces/{}/revocations", encode_segment(ns)),
            &body,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/revocations/{spki_sha256}`: withdraws
    /// a namespace's revocation (org admins only).
    pub fn remove_namespace_revocation(&self, ns: &str, spki_sha256: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/revocations/{}",
            encode_segment(ns),
            encode_segment(spki_sha256)
        ))
    }

    /// `DELETE /api/v1/namespaces/{ns}`.
    pub fn delete_namespace(&self, ns: &str) -> Result<()> {
        self.delete(&format!("namespaces/{}", encode_segment(ns)))
    }

    /// `PUT /api/v1/namespaces/{ns}/threshold`: the namespace.
    pub fn set_threshold(&self, ns: &str, threshold: u32) -> Result<Value> {
        self.send(
            "PUT",
            &format!("namespaces/{}/threshold", encode_segment(ns)),
            &api::SetThreshold { threshold },
        )
    }

    // ---- keys, identities, sub-delegations ----

    /// `POST /api/v1/namespaces/{ns}/keys`: the key with its id.
    pub fn add_key(&self, ns: &str, key: &NewKey) -> Result<Value> {
        let (tuf, pem) = match &key.key {
            KeyMaterial::Tuf(v) => (Some(v), None),
            KeyMaterial::Pem(p) => (None, Some(p.as_str())),
        };
        let body = api::AddKey {
            key: tuf,
            public_key_pem: pem.map(str::to_owned),
            id: key.id.as_deref().map(KeyId::new),
            not_before: key.not_before.as_deref(),
            not_after: key.not_after.as_deref(),
            description: key.description.clone(),
        };
        self.send(
            "POST",
            &format!("namespaces/{}/keys", encode_segment(ns)),
            &body,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/keys/{key_id}`.
    pub fn remove_key(&self, ns: &str, key_id: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/keys/{}",
            encode_segment(ns),
            encode_segment(key_id)
        ))
    }

    /// `POST /api/v1/namespaces/{ns}/identities`: the identity.
    pub fn add_identity(&self, ns: &str, identity: &NewIdentity) -> Result<Value> {
        self.send(
            "POST",
            &format!("namespaces/{}/identities", encode_segment(ns)),
            identity,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/identities/{name}`.
    pub fn remove_identity(&self, ns: &str, name: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/identities/{}",
            encode_segment(ns),
            encode_segment(name)
        ))
    }

    /// `POST /api/v1/namespaces/{ns}/sub-delegations`: the sub-delegation.
    pub fn add_sub_delegation(&self, ns: &str, sub: &NewSubDelegation) -> Result<Value> {
        self.send(
            "POST",
            &format!("namespaces/{}/sub-delegations", encode_segment(ns)),
            sub,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/sub-delegations/{name}`.
    pub fn remove_sub_delegation(&self, ns: &str, name: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/sub-delegations/{}",
            encode_segment(ns),
            encode_segment(name)
        ))
    }

    // ---- organization documents ----

    /// `POST /api/v1/revocations`: the revocation.
    pub fn add_revocation(&self, r: &NewRevocation) -> Result<Value> {
        let mut body: api::AddRevocation<&str, &Value, &str, &str> = api::AddRevocation {
            key_id: None,
            namespace: None,
            key: None,
            public_key_pem: None,
            spki_sha256: None,
            certificate_sha256: None,
            certificate_pem: None,
            revoked_at: r.revoked_at.as_deref(),
            reason: r.reason.clone(),
        };
        match &r.subject {
            RevokedSubject::KeyId { namespace, id } => {
                body.key_id = Some(KeyId::new(id.as_str()));
                body.namespace = namespace.as_deref();
            }
            RevokedSubject::Key(KeyMaterial::Pem(p)) => body.public_key_pem = Some(p.clone()),
            RevokedSubject::Key(KeyMaterial::Tuf(v)) => body.key = Some(v),
            RevokedSubject::SpkiSha256(h) => body.spki_sha256 = Some(h),
            RevokedSubject::CertificateSha256(h) => body.certificate_sha256 = Some(h),
            RevokedSubject::CertificatePem(p) => body.certificate_pem = Some(p.clone()),
        }
        self.send("POST", "revocations", &body)
    }

    /// `GET /api/v1/revocations`: `{"revocations": [...]}`.
    pub fn revocations(&self) -> Result<Value> {
        self.get("revocations")
    }

    /// `PUT /api/v1/peers/{name}`: the peer.
    pub fn put_peer(&self, name: &str, peer: &PeerSpec) -> Result<Value> {
        let root = match &peer.root {
            PeerRoot::Sha256(h) => serde_json::json!({ "sha256": h }),
            PeerRoot::Keys { keyids, threshold } => {
                serde_json::json!({ "keyids": keyids, "threshold": threshold })
            }
        };
        let body = api::PutPeer {
            patterns: peer.patterns.clone(),
            url: peer.url.clone(),
            root,
            terminating: peer.terminating,
        };
        self.send("PUT", &format!("peers/{}", encode_segment(name)), &body)
    }

    /// `GET /api/v1/peers`: `{"peers": [...]}`.
    pub fn peers(&self) -> Result<Value> {
        self.get("peers")
    }

    /// `DELETE /api/v1/peers/{name}`.
    pub fn delete_peer(&self, name: &str) -> Result<()> {
        self.delete(&format!("peers/{}", encode_segment(name)))
    }

    /// `PUT /api/v1/roots/{name}`: the root certificate.
    pub fn put_root(&self, name: &str, pem: &str) -> Result<Value> {
        self.send(
            "PUT",
            &format!("roots/{}", encode_segment(name)),
            &api::PutRoot {
                pem: pem.to_owned(),
            },
        )
    }

    /// `POST /api/v1/root`: submits a signed TUF root file (the next
    /// version, signed by the old and new root thresholds) as it is, byte
    /// for byte: the server publishes these bytes. The server's answer.
    pub fn submit_tuf_root(&self, root: &[u8]) -> Result<Value> {
        self.call_with_bytes("POST", "root", &[], Some(root))
    }

    /// `GET /api/v1/roots`: `{"roots": [...]}`.
    pub fn roots(&self) -> Result<Value> {
        self.get("roots")
    }

    /// `DELETE /api/v1/roots/{name}`.
    pub fn delete_root(&self, name: &str) -> Result<()> {
        self.delete(&format!("roots/{}", encode_segment(name)))
    }

    // ---- tokens ----

    /// `POST /api/v1/tokens`: the token with its `secret` (shown once).
    pub fn create_token(&self, kind: &TokenKind, description: Option<&str>) -> Result<Value> {
        self.create_token_expiring(kind, description, None)
    }

    /// `POST /api/v1/tokens` with an expiry (`expires_in` or `expires_at`).
    pub fn create_token_expiring(
        &self,
        kind: &TokenKind,
        description: Option<&str>,
        expiry: Option<&TokenExpiry>,
    ) -> Result<Value> {
        let (kind, namespace, namespaces) = match kind {
            TokenKind::OrgAdmin => ("org-admin", None, None),
            TokenKind::Maintainer(ns) => ("maintainer", Some(ns.as_str()), None),
            TokenKind::Ci(list) => ("ci", None, Some(list.iter().map(String::as_str).collect())),
        };
        let (expires_in, expires_at) = match expiry {
            Some(TokenExpiry::In(secs)) => (Some(*secs), None),
            Some(TokenExpiry::At(t)) => (None, Some(t.as_str())),
            None => (None, None),
        };
        let body = api::CreateToken {
            kind: kind.to_owned(),
            namespace,
            namespaces,
            description: description.map(str::to_owned),
            expires_in,
            expires_at,
        };
        self.send("POST", "tokens", &body)
    }

    /// `GET /api/v1/tokens`: `{"tokens": [...]}` (never secrets).
    pub fn tokens(&self) -> Result<Value> {
        self.get("tokens")
    }

    /// `DELETE /api/v1/tokens/{id}`.
    pub fn revoke_token(&self, id: &str) -> Result<()> {
        self.delete(&format!("tokens/{}", encode_segment(id)))
    }

    // ---- audit, resolve ----

    /// `GET /api/v1/audit`: `{"records": [...]}` after sequence number
    /// `after`, at most `limit`.
    pub fn audit(&self, after: Option<i64>, limit: Option<u32>) -> Result<Value> {
        self.audit_query(&AuditQuery {
            after,
            limit,
            ..AuditQuery::default()
        })
    }

    /// `GET /api/v1/audit` with filters: `{"records": [...]}`.
    pub fn audit_query(&self, q: &AuditQuery) -> Result<Value> {
        let query = api::AuditQuery {
            after: q.after.unwrap_or(0),
            before: q.before,
            limit: q.limit,
            since: q.since.clone(),
            action: q.action.clone(),
            actor: q.actor.clone(),
            namespace: q.namespace.clone(),
            order: q.newest_first.then(|| "desc".to_owned()),
        };
        self.call("GET", "audit", &query.pairs(), None)
    }

    /// `GET /api/v1/audit/verify`: `{"ok": true, "records", "hash",
    /// "published_heads", "published_head"}` or `{"ok": false,
    /// "first_bad_seq", "reason", ...}` (the server's own check of its log
    /// against the heads it published).
    pub fn verify_audit(&self) -> Result<Value> {
        self.get("audit/verify")
    }

    /// Reads the whole audit log (`GET /api/v1/audit`, [`AUDIT_PAGE`]
    /// records at a time) and checks its hash chain and every head of
    /// `heads` (each with where it came from, for the message) with
    /// [`ChainCheck`]: the chain is recomputed here, record by record, so a
    /// server that rewrote its log cannot pass by answering "ok". Memory is
    /// one page plus the heads. The outer `Err` is a failure to read the
    /// log; the inner one is what the check found.
    pub fn check_audit_log(
        &self,
        heads: Vec<(Head, String)>,
    ) -> Result<std::result::Result<ChainSummary, ChainError>> {
        let mut check = ChainCheck::new(heads);
        let mut after: u64 = 0;
        loop {
            let after_i64 = i64::try_from(after).map_err(|_| Error::BadAnswer {
                url: self.url("audit"),
                message: format!("sequence number {after} is out of range"),
            })?;
            let page = self.audit(Some(after_i64), Some(AUDIT_PAGE))?;
            let page: api::AuditRecords =
                serde_json::from_value(page).map_err(|e| Error::BadAnswer {
                    url: self.url("audit"),
                    message: format!("records after {after}: {e}"),
                })?;
            if page.records.is_empty() {
                break;
            }
            for r in &page.records {
                let seq = u64::try_from(r.seq).map_err(|_| Error::BadAnswer {
                    url: self.url("audit"),
                    message: format!("record after {after}: `seq` {} is not positive", r.seq),
                })?;
                let record = Record {
                    seq,
                    time: &r.time,
                    actor: &r.actor,
                    action: &r.action,
                    subject: &r.subject,
                    details: &r.details,
                    prev_hash: &r.prev_hash,
                };
                if let Err(e) = check.push(&record, &r.hash) {
                    return Ok(Err(e));
                }
                after = seq;
            }
        }
        Ok(check.finish())
    }

    /// The server's current `metadata/timestamp.json`, as served, **not
    /// verified** (no token is sent; at most 16 KiB, python-tuf's limit for
    /// a timestamp). Verify it through the TUF workflow
    /// ([`crate::Verifier::refresh`]) where a root is pinned.
    pub fn published_timestamp(&self) -> Result<Vec<u8>> {
        let url = format!("{}/metadata/timestamp.json", self.base);
        let request = self.http.client().get(&url);
        self.http.block_on(async {
            let response = request.send().await.map_err(|e| transport(&url, e))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(Error::BadAnswer {
                    url: url.clone(),
                    message: format!("status {status}"),
                });
            }
            read_capped(response, &url, TIMESTAMP_MAX_BYTES).await
        })
    }

    /// `GET /api/v1/resolve?artifact=NAME`: who answers for an artifact.
    pub fn resolve(&self, artifact: &str) -> Result<Value> {
        let query = api::ResolveQuery {
            artifact: artifact.to_owned(),
        };
        self.call("GET", "resolve", &query.pairs(), None)
    }
}

/// Reads an answer of at most `limit` bytes ([`Error::TooLarge`] beyond).
async fn read_capped(mut response: reqwest::Response, url: &str, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| Error::Transport {
        url: url.to_owned(),
        message: format!("reading the answer: {}", one_line(e)),
    })? {
        bytes.extend_from_slice(&chunk);
        if u64::try_from(bytes.len()).map_or(true, |n| n > limit) {
            return Err(Error::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
    }
    Ok(bytes)
}

/// The server's JSON error, or a stand-in naming the status.
fn api_error(status: u16, body: &[u8]) -> AdminError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let e = v.get("error")?;
            Some((
                e.get("code")?.as_str()?.to_owned(),
                e.get("message")?.as_str()?.to_owned(),
            ))
        });
    match parsed {
        Some((code, message)) => AdminError {
            status,
            code,
            message,
        },
        None => {
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            AdminError {
                status,
                code: "http".into(),
                message: if text.trim().is_empty() {
                    "no error body".into()
                } else {
                    text.trim().to_owned()
                },
            }
        }
    }
}

/// The server could not be reached at `url`.
fn transport(url: &str, e: reqwest::Error) -> Error {
    Error::Transport {
        url: url.to_owned(),
        message: one_line(e),
    }
}

/// A one-line description of a transport error, without the URL (the
/// caller adds it).
fn one_line(e: reqwest::Error) -> String {
    keyshare_policy::error::one_line(&e.without_url()).replace(['\n', '\r'], " ")
}

/// The kind of private key `text` holds, if it holds one: a PEM private
/// key block of any kind (`PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`,
/// `RSA PRIVATE KEY`, `EC PRIVATE KEY`, `OPENSSH PRIVATE KEY`, ...), or a
/// JSON key object with `keyval.private` (as securesystemslib writes key
/// pairs).
pub fn private_key_in(text: &str) -> Option<&'static str> {
    let pem_private = text.match_indices("-----BEGIN ").any(|(at, begin)| {
        text.get(at + begin.len()..)
            .and_then(|rest| rest.split_once("-----"))
            .is_some_and(|(label, _)| label.trim_end().ends_with("PRIVATE KEY"))
    });
    if pem_private {
        return Some("a PEM private key");
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
            if private_path(&v, &mut String::new()).is_some() {
                return Some("a private key (`keyval.private`)");
            }
        }
    }
    None
}

/// The JSON path of the first private key material in `v`: a string with
/// a PEM private key block, or a `keyval` object with a `private` member.
fn private_path(v: &Value, path: &mut String) -> Option<String> {
    match v {
        Value::String(s) => private_key_in(s).map(|_| path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = private_path(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let found = if k == "keyval" && item.get("private").is_some() {
                Some(format!("{path}.private"))
            } else {
                private_path(item, path)
            };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Refuses a request body that holds private key material anywhere (see
/// [`private_key_in`]): no admin endpoint takes a private key, so one in a
/// body is a mistake (a key pair given where its public half belongs, a
/// certificate file with its key appended), and it is stopped here, before
/// anything leaves the machine. The message names where, never the key.
fn refuse_private_material(body: &Value) -> Result<()> {
    match private_path(body, &mut String::new()) {
        None => Ok(()),
        Some(at) => Err(Error::Input(format!(
            "the request holds a private key (at `{}`): give the public key, \
             e.g. `openssl pkey -in KEY -pubout`, or a certificate without its key; \
             nothing was sent: a private key never leaves this machine",
            if at.is_empty() { "." } else { at.as_str() }
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn private_key_material_is_found_in_every_form_and_public_material_is_not() {
        for private in [
            "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGb\n-----END ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----MC4CAQAwBQYDK2VwBCIEI-----END PRIVATE KEY-----",
            r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab","private":"cd"}}"#,
        ] {
            assert!(private_key_in(private).is_some(), "{private}");
        }
        for public in [
            "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab"}}"#,
            "a description that mentions a private key",
            "{not json",
        ] {
            assert!(private_key_in(public).is_none(), "{public}");
        }
    }

    #[test]
    fn a_request_body_with_private_material_is_refused_naming_where() {
        let body = serde_json::json!({
            "name": "x",
            "keys": [{"id": "a", "key": {"keyval": {"public": "ab"}}},
                     {"id": "b", "key": {"keyval": {"public": "ab", "private": "cd"}}}],
        });
        let e = refuse_private_material(&body).unwrap_err();
        assert!(
            e.to_string().contains("at `keys[1].key.keyval.private`"),
            "{e}"
        );
        assert!(!e.to_string().contains("cd\""), "{e}");
        let body = serde_json::json!({"ca_certs": ["-----BEGIN PRIVATE KEY-----\nX\n-----END PRIVATE KEY-----"]});
        let e = refuse_private_material(&body).unwrap_err();
        assert!(e.to_string().contains("at `ca_certs[0]`"), "{e}");
        assert!(refuse_private_material(
            &serde_json::json!({"pem": "-----BEGIN CERTIFICATE-----"})
        )
        .is_ok());
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("team-a"), "team-a");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn error_body_of_the_server_becomes_admin_error() {
        let e = api_error(403, br#"{"error":{"code":"forbidden","message":"no"}}"#);
        assert_eq!(e.to_string(), "403 forbidden: no");
        let e = api_error(502, b"<html>\nbad gateway</html>");
        assert_eq!(e.code, "http");
        assert_eq!(e.message, "<html>bad gateway</html>");
    }

    #[test]
    fn new_refuses_bad_urls_and_tokens_without_echoing_the_token() {
        assert!(matches!(
            AdminClient::new("ftp://x", "t"),
            Err(Error::Config(_))
        ));
        let e = AdminClient::new("http://x", "sec ret").unwrap_err();
        assert!(!e.to_string().contains("sec ret"));
        let c = AdminClient::new("http://x/", "secret").unwrap();
        assert_eq!(c.base_url(), "http://x");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
