//! The admin API under `/api/v1/`: one handler per [`Endpoint`].
//!
//! Every handler authenticates ([`Caller`]), authorizes ([`authorize`] with
//! the endpoint's [`Action`]), and only then parses its body, so a caller
//! without the right learns nothing about what the route accepts. Writes
//! are one [`Publisher::apply`](crate::publisher::Publisher::apply) each,
//! on a blocking thread, audited as `token:<id>`.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Route};
use serde::Deserialize;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use keyshare_policy::audit::ChainError;
use keyshare_policy::datetime::parse_duration;
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{
    CaCert, KeyRevocation, KeyStanding, NamespaceEntry, NamespaceName, Namespaces, Owner, Peer,
    PeerUrl, Peers, PinnedRoot, Revocation, Revocations, RevokedSubject, Sha256Hex, SubDelegation,
    TrustSet, TrustedKey, X509Identity,
};

use super::auth::{authorize, Action, Caller};
use super::body::Body;
use super::error::ApiError;
use super::AppState;
use crate::publisher::{Applied, Change, PublishError};
use crate::store::{
    self, Listing, NamespaceRecord, NamespaceRevocationRecord, OrgRoot, Store, Token, TokenKind,
};

/// Every admin endpoint. Routes are registered from [`Endpoint::ALL`], so
/// an endpoint is served exactly when it is listed there (and tests that
/// iterate the list cover it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /api/v1/namespaces`
    CreateNamespace,
    /// `GET /api/v1/namespaces`
    ListNamespaces,
    /// `GET /api/v1/namespaces/{ns}`
    ShowNamespace,
    /// `DELETE /api/v1/namespaces/{ns}`
    DeleteNamespace,
    /// `PUT /api/v1/namespaces/{ns}/threshold`
    SetThreshold,
    /// `POST /api/v1/namespaces/{ns}/keys`
    AddKey,
    /// `DELETE /api/v1/namespaces/{ns}/keys/{key_id}`
    RemoveKey,
    /// `POST /api/v1/namespaces/{ns}/identities`
    AddIdentity,
    /// `DELETE /api/v1/namespaces/{ns}/identities/{name}`
    RemoveIdentity,
    /// `POST /api/v1/namespaces/{ns}/sub-delegations`
    AddSubDelegation,
    /// `DELETE /api/v1/namespaces/{ns}/sub-delegations/{name}`
    RemoveSubDelegation,
    /// `POST /api/v1/namespaces/{ns}/scopes`: widens a namespace (adds
    /// scopes).
    AddScopes,
    /// `POST /api/v1/namespaces/{ns}/revocations`: the namespace revokes
    /// one of its keys, for its own artifacts.
    RevokeNamespaceKey,
    /// `DELETE /api/v1/namespaces/{ns}/revocations/{spki_sha256}`
    RemoveNamespaceRevocation,
    /// `POST /api/v1/revocations`
    AddRevocation,
    /// `GET /api/v1/revocations`
    ListRevocations,
    /// `PUT /api/v1/peers/{name}`
    PutPeer,
    /// `GET /api/v1/peers`
    ListPeers,
    /// `DELETE /api/v1/peers/{name}`
    RemovePeer,
    /// `PUT /api/v1/roots/{name}`
    PutRoot,
    /// `GET /api/v1/roots`
    ListRoots,
    /// `DELETE /api/v1/roots/{name}`
    RemoveRoot,
    /// `POST /api/v1/tokens`
    CreateToken,
    /// `GET /api/v1/tokens`
    ListTokens,
    /// `DELETE /api/v1/tokens/{id}`
    RevokeToken,
    /// `GET /api/v1/audit`
    ListAudit,
    /// `GET /api/v1/audit/verify`
    VerifyAudit,
    /// `GET /api/v1/resolve`
    Resolve,
    /// `POST /api/v1/root`: a new TUF root from a root ceremony.
    SubmitRoot,
    /// `POST /api/v1/export`: an air-gap bundle.
    Export,
}

impl Endpoint {
    /// Every endpoint, in the order of `docs/server.md`.
    pub const ALL: [Self; 30] = [
        Self::CreateNamespace,
        Self::ListNamespaces,
        Self::ShowNamespace,
        Self::DeleteNamespace,
        Self::SetThreshold,
        Self::AddScopes,
        Self::AddKey,
        Self::RemoveKey,
        Self::AddIdentity,
        Self::RemoveIdentity,
        Self::AddSubDelegation,
        Self::RemoveSubDelegation,
        Self::RevokeNamespaceKey,
        Self::RemoveNamespaceRevocation,
        Self::AddRevocation,
        Self::ListRevocations,
        Self::PutPeer,
        Self::ListPeers,
        Self::RemovePeer,
        Self::PutRoot,
        Self::ListRoots,
        Self::RemoveRoot,
        Self::CreateToken,
        Self::ListTokens,
        Self::RevokeToken,
        Self::ListAudit,
        Self::VerifyAudit,
        Self::Resolve,
        Self::SubmitRoot,
        Self::Export,
    ];

    /// The method and the path template (relative to the server root,
    /// placeholders `{ns}`, `{key_id}`, `{name}`, `{id}`, `{spki_sha256}`).
    pub fn route(self) -> (Method, &'static str) {
        use Method as M;
        match self {
            Self::CreateNamespace => (M::POST, "/api/v1/namespaces"),
            Self::ListNamespaces => (M::GET, "/api/v1/namespaces"),
            Self::ShowNamespace => (M::GET, "/api/v1/namespaces/{ns}"),
            Self::DeleteNamespace => (M::DELETE, "/api/v1/namespaces/{ns}"),
            Self::SetThreshold => (M::PUT, "/api/v1/namespaces/{ns}/threshold"),
            Self::AddScopes => (M::POST, "/api/v1/namespaces/{ns}/scopes"),
            Self::AddKey => (M::POST, "/api/v1/namespaces/{ns}/keys"),
            Self::RemoveKey => (M::DELETE, "/api/v1/namespaces/{ns}/keys/{key_id}"),
            Self::AddIdentity => (M::POST, "/api/v1/namespaces/{ns}/identities"),
            Self::RemoveIdentity => (M::DELETE, "/api/v1/namespaces/{ns}/identities/{name}"),
            Self::AddSubDelegation => (M::POST, "/api/v1/namespaces/{ns}/sub-delegations"),
            Self::RemoveSubDelegation => {
                (M::DELETE, "/api/v1/namespaces/{ns}/sub-delegations/{name}")
            }
            Self::RevokeNamespaceKey => (M::POST, "/api/v1/namespaces/{ns}/revocations"),
            Self::RemoveNamespaceRevocation => (
                M::DELETE,
                "/api/v1/namespaces/{ns}/revocations/{spki_sha256}",
            ),
            Self::AddRevocation => (M::POST, "/api/v1/revocations"),
            Self::ListRevocations => (M::GET, "/api/v1/revocations"),
            Self::PutPeer => (M::PUT, "/api/v1/peers/{name}"),
            Self::ListPeers => (M::GET, "/api/v1/peers"),
            Self::RemovePeer => (M::DELETE, "/api/v1/peers/{name}"),
            Self::PutRoot => (M::PUT, "/api/v1/roots/{name}"),
            Self::ListRoots => (M::GET, "/api/v1/roots"),
            Self::RemoveRoot => (M::DELETE, "/api/v1/roots/{name}"),
            Self::CreateToken => (M::POST, "/api/v1/tokens"),
            Self::ListTokens => (M::GET, "/api/v1/tokens"),
            Self::RevokeToken => (M::DELETE, "/api/v1/tokens/{id}"),
            Self::ListAudit => (M::GET, "/api/v1/audit"),
            Self::VerifyAudit => (M::GET, "/api/v1/audit/verify"),
            Self::Resolve => (M::GET, "/api/v1/resolve"),
            Self::SubmitRoot => (M::POST, "/api/v1/root"),
            Self::Export => (M::POST, "/api/v1/export"),
        }
    }

    /// What the endpoint does, for [`authorize`]; `ns` is the namespace of
    /// the path (ignored by endpoints without one).
    pub fn action(self, ns: &str) -> Action<'_> {
        match self {
            Self::ListNamespaces
            | Self::ShowNamespace
            | Self::ListRevocations
            | Self::ListPeers
            | Self::ListRoots
            | Self::Resolve => Action::Read,
            // Which names a namespace owns is the organization's call: a
            // maintainer cannot widen their own namespace.
            Self::CreateNamespace | Self::DeleteNamespace | Self::AddScopes => {
                Action::ManageNamespaces
            }
            Self::SetThreshold
            | Self::AddKey
            | Self::RemoveKey
            | Self::AddIdentity
            | Self::RemoveIdentity
            | Self::AddSubDelegation
            | Self::RemoveSubDelegation
            | Self::RevokeNamespaceKey => Action::WriteNamespace(ns),
            Self::RemoveNamespaceRevocation => Action::WithdrawNamespaceRevocation,
            Self::AddRevocation
            | Self::PutPeer
            | Self::RemovePeer
            | Self::PutRoot
            | Self::RemoveRoot => Action::WriteOrgDocuments,
            Self::CreateToken | Self::ListTokens | Self::RevokeToken => Action::Tokens,
            Self::ListAudit | Self::VerifyAudit => Action::Audit,
            Self::SubmitRoot => Action::RotateRoot,
            Self::Export => Action::Export,
        }
    }

    /// The actix route (method guard and handler).
    fn handler(self) -> Route {
        let route = web::method(self.route().0);
        match self {
            Self::CreateNamespace => route.to(create_namespace),
            Self::ListNamespaces => route.to(list_namespaces),
            Self::ShowNamespace => route.to(show_namespace),
            Self::DeleteNamespace => route.to(delete_namespace),
            Self::SetThreshold => route.to(set_threshold),
            Self::AddScopes => route.to(add_scopes),
            Self::AddKey => route.to(add_key),
            Self::RemoveKey => route.to(remove_key),
            Self::AddIdentity => route.to(add_identity),
            Self::RemoveIdentity => route.to(remove_identity),
            Self::AddSubDelegation => route.to(add_sub_delegation),
            Self::RemoveSubDelegation => route.to(remove_sub_delegation),
            Self::RevokeNamespaceKey => route.to(revoke_namespace_key),
            Self::RemoveNamespaceRevocation => route.to(remove_namespace_revocation),
            Self::AddRevocation => route.to(add_revocation),
            Self::ListRevocations => route.to(list_revocations),
            Self::PutPeer => route.to(put_peer),
            Self::ListPeers => route.to(list_peers),
            Self::RemovePeer => route.to(remove_peer),
            Self::PutRoot => route.to(put_root),
            Self::ListRoots => route.to(list_roots),
            Self::RemoveRoot => route.to(remove_root),
            Self::CreateToken => route.to(create_token),
            Self::ListTokens => route.to(list_tokens),
            Self::RevokeToken => route.to(revoke_token),
            Self::ListAudit => route.to(list_audit),
            Self::VerifyAudit => route.to(verify_audit),
            Self::Resolve => route.to(resolve),
            Self::SubmitRoot => route.to(submit_root),
            Self::Export => route.to(super::airgap::export),
        }
    }
}

/// Registers every endpoint of [`Endpoint::ALL`], one resource per path
/// (other methods on a known path are 405 JSON).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = Vec::new();
    for e in Endpoint::ALL {
        let path = e.route().1;
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    for path in paths {
        let mut resource =
            web::resource(path).default_service(web::to(super::error::method_not_allowed));
        for e in Endpoint::ALL.into_iter().filter(|e| e.route().1 == path) {
            resource = resource.route(e.handler());
        }
        cfg.service(resource);
    }
}

// ---- helpers ----

/// Runs a store read on a blocking thread.
async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> store::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let publisher = state.publisher.clone();
    Ok(web::block(move || publisher.read(f)).await??)
}

/// Publishes one change on a blocking thread, as the caller.
async fn publish(state: &AppState, caller: &Caller, change: Change) -> Result<Applied, ApiError> {
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let now = state.now();
    Ok(web::block(move || publisher.apply(&actor, change, now)).await??)
}

fn rfc3339(t: OffsetDateTime) -> String {
    keyshare_policy::datetime::rfc3339(t)
}

fn opt_rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// A namespace of a path: a name that cannot be a namespace is not found.
fn path_namespace(ns: &str) -> Result<NamespaceName, ApiError> {
    NamespaceName::parse(ns).map_err(|_| ApiError::not_found(format!("namespace `{ns}` not found")))
}

/// Parses the query string, after authorization (like bodies).
fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| super::error::from_query_error(&e))
}

/// 400 when `text` holds a PEM private key block next to a certificate
/// (a certificate file with its key appended): the PEM text of a
/// certificate is stored and published as given, and a private key must
/// never be. Nothing of it is echoed.
fn refuse_private_key(field: &str, text: &str) -> Result<(), ApiError> {
    let private = text.match_indices("-----BEGIN ").any(|(at, begin)| {
        text.get(at + begin.len()..)
            .and_then(|rest| rest.split_once("-----"))
            .is_some_and(|(label, _)| label.trim_end().ends_with("PRIVATE KEY"))
    });
    if private {
        return Err(ApiError::invalid(
            field,
            "holds a private key: send the certificate alone; nothing was stored",
        ));
    }
    Ok(())
}

/// An RFC 3339 time from a request, or a message that says what is
/// expected (not the parser's internals).
fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    keyshare_policy::datetime::parse_rfc3339(text)
}

/// `#[serde(deserialize_with)]` for an optional RFC 3339 time.
fn rfc3339_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| parse_rfc3339(&t).map_err(serde::de::Error::custom))
        .transpose()
}

fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// A human-chosen name or label: not empty, at most 200 characters, no
/// control characters (the policy crate's rule for names in documents).
fn check_label(field: &str, value: &str) -> Result<(), ApiError> {
    keyshare_policy::trust::Label::parse(value)
        .map(drop)
        .map_err(|e| ApiError::invalid(&e.field(field), e.message))
}

/// At least one pattern, none twice.
fn check_patterns(field: &str, patterns: &[ArtifactPattern]) -> Result<(), ApiError> {
    keyshare_policy::trust::Scopes::new(patterns.to_vec())
        .map(drop)
        .map_err(|e| ApiError::invalid(&e.field(field), e.message))
}

/// `not_before < not_after` when both are given.
fn check_window(
    field: &str,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
) -> Result<(), ApiError> {
    keyshare_policy::trust::Window::new(not_before, not_after)
        .map(drop)
        .map_err(|e| ApiError::invalid(&e.field(field), e.message))
}

/// A TUF key object as the policy parser accepts it: no unknown fields, a
/// supported keytype/scheme, usable key material. Returns its DER SPKI.
fn check_key_object(field: &str, id: &KeyId, key: &Key) -> Result<Vec<u8>, ApiError> {
    if let Some(name) = key.unrecognized.keys().next() {
        return Err(ApiError::invalid(
            &format!("{field}.{name}"),
            format!("unknown field `{name}`"),
        ));
    }
    if let Some(name) = key.keyval.unrecognized.keys().next() {
        return Err(ApiError::invalid(
            &format!("{field}.keyval.{name}"),
            format!("unknown field `{name}`"),
        ));
    }
    if key.scheme().is_none() {
        return Err(ApiError::invalid(
            &format!("{field}.keytype"),
            format!(
                "unsupported keytype/scheme `{}`/`{}` (supported: ed25519/ed25519, ecdsa/ecdsa-sha2-nistp256, rsa/rsassa-pss-sha256)",
                key.keytype, key.scheme
            ),
        ));
    }
    key.spki_der(id)
        .map_err(|e| bad_key(&format!("{field}.keyval.public"), e))
}

/// A 400 about unusable key material at `field`.
fn bad_key(field: &str, e: keyshare_policy::Error) -> ApiError {
    match e {
        keyshare_policy::Error::BadKey { message, .. } => ApiError::invalid(field, message),
        other => ApiError::invalid(field, other),
    }
}

/// A list of trusted keys as the policy parser accepts it.
fn check_keys(field: &str, keys: &[TrustedKey]) -> Result<(), ApiError> {
    let mut ids = BTreeSet::new();
    let mut material: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let at = format!("{field}[{i}].");
        check_label(&format!("{at}id"), k.id.as_str())?;
        if !ids.insert(k.id.as_str()) {
            return Err(ApiError::invalid(
                &format!("{at}id"),
                format!("key id `{}` is listed twice", k.id),
            ));
        }
        let spki = check_key_object(&format!("{at}key"), &k.id, &k.key)?;
        if let Some(j) = material.iter().position(|m| *m == spki) {
            let other = keys.get(j).map_or("", |o| o.id.as_str());
            return Err(ApiError::invalid(
                &format!("{at}key"),
                format!("the same key is already listed as `{other}`"),
            ));
        }
        material.push(spki);
        check_window(&at, k.not_before, k.not_after)?;
        if k.ephemeral && k.not_after.is_none() {
            return Err(ApiError::invalid(
                &format!("{at}not_after"),
                "an ephemeral key must have not_after",
            ));
        }
        if let Some(d) = &k.description {
            check_label(&format!("{at}description"), d)?;
        }
    }
    Ok(())
}

// ---- views ----

fn namespace_view(r: &NamespaceRecord) -> Value {
    json!({
        "name": r.entry.name,
        "scopes": r.entry.scopes,
        "maintainers": r.entry.maintainers,
        "threshold": r.threshold,
        "created_at": rfc3339(r.created_at),
    })
}

fn root_view(r: &OrgRoot) -> Value {
    json!({
        "name": r.name,
        "pem": r.pem,
        "sha256": r.sha256,
        "target": r.target_path(),
        "added_at": rfc3339(r.added_at),
    })
}

/// A token as the API shows it (never its secret), with its `state` at
/// `now`: `active`, `expired` or `revoked`.
fn token_view(t: &Token, now: OffsetDateTime) -> Value {
    let state = if !t.is_active() {
        "revoked"
    } else if t.is_expired(now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": t.id,
        "kind": t.kind.name(),
        "namespaces": t.kind.namespaces(),
        "description": t.description,
        "created_at": rfc3339(t.created_at),
        "revoked_at": opt_rfc3339(t.revoked_at),
        "expires_at": opt_rfc3339(t.expires_at),
        "last_used_at": opt_rfc3339(t.last_used_at),
        "state": state,
    })
}

/// How far ahead a key's `not_after` flags it as expiring soon, unless
/// the request says (`?expiring_within=`).
pub(crate) const DEFAULT_EXPIRING_WITHIN: Duration = Duration::days(30);

/// A listed key as the trust document has it, plus how it stands at `now`:
/// `spki_sha256`, `state` (`active`, `expires_soon`, `not_yet_valid`,
/// `expired`, `revoked`), `expired`, `expires_soon` and `revocation`
/// (`{"by": "organization"|"namespace", "revoked_at", "reason",
/// "in_effect"}`, or null).
fn key_view(
    key: &TrustedKey,
    fingerprint: Option<&Sha256Hex>,
    revocation: Option<KeyRevocation<'_>>,
    now: OffsetDateTime,
    horizon: Duration,
) -> Result<Value, ApiError> {
    let standing = KeyStanding::of(key, revocation, now, horizon);
    let mut v = to_value(key)?;
    if let Value::Object(map) = &mut v {
        map.insert("spki_sha256".into(), to_value(&fingerprint)?);
        map.insert("state".into(), json!(standing.state.as_str()));
        map.insert("expired".into(), json!(standing.expired));
        map.insert("expires_soon".into(), json!(standing.expires_soon));
        map.insert(
            "revocation".into(),
            standing.revocation.map_or(Value::Null, |r| {
                json!({
                    "by": r.by.as_str(),
                    "revoked_at": rfc3339(r.revocation.revoked_at),
                    "reason": r.revocation.reason,
                    "in_effect": now >= r.revocation.revoked_at,
                })
            }),
        );
    }
    Ok(v)
}

/// Keys with the revocations that apply to them, read in one go.
struct KeysWithRevocations {
    keys: Vec<TrustedKey>,
    /// Per key: its fingerprint (`None` if it cannot be computed), the
    /// organization's revocation of it.
    organization: Vec<(Option<Sha256Hex>, Option<Revocation>)>,
}

fn with_revocations(s: &Store, keys: Vec<TrustedKey>) -> store::Result<KeysWithRevocations> {
    let mut organization = Vec::with_capacity(keys.len());
    for k in &keys {
        let fp = k.key.fingerprint(&k.id).ok();
        let revocation = match &fp {
            Some(fp) => s
                .revocation(&RevokedSubject::Key(fp.clone()))?
                .map(|r| r.revocation),
            None => None,
        };
        organization.push((fp, revocation));
    }
    Ok(KeysWithRevocations { keys, organization })
}

impl KeysWithRevocations {
    fn views(
        &self,
        own: &[NamespaceRevocationRecord],
        now: OffsetDateTime,
        horizon: Duration,
    ) -> Result<Vec<Value>, ApiError> {
        self.keys
            .iter()
            .zip(&self.organization)
            .map(|(k, (fp, org))| {
                let ns = fp.as_ref().and_then(|fp| {
                    own.iter()
                        .find(|r| r.revocation.subject == RevokedSubject::Key(fp.clone()))
                        .map(|r| &r.revocation)
                });
                let revocation = KeyRevocation::earliest(org.as_ref(), ns);
                key_view(k, fp.as_ref(), revocation, now, horizon)
            })
            .collect()
    }
}

fn namespace_revocation_view(r: &NamespaceRevocationRecord) -> Result<Value, ApiError> {
    let mut v = to_value(&r.revocation)?;
    if let Value::Object(map) = &mut v {
        map.insert("namespace".into(), json!(r.namespace));
        map.insert("key_id".into(), json!(r.key_id));
        map.insert("recorded_at".into(), json!(rfc3339(r.recorded_at)));
    }
    Ok(v)
}

/// The namespace with its keys (and how each stands at `now`, keys
/// expiring within `horizon` flagged), identities, sub-delegations and its
/// own revocations.
async fn namespace_detail(
    state: &AppState,
    ns: NamespaceName,
    horizon: Duration,
) -> Result<Value, ApiError> {
    let (record, keys, identities, subs, own) = read(state, move |s| {
        let keys = s.keys(ns.as_str())?.into_iter().map(|k| k.key).collect();
        let subs = s
            .sub_delegations(ns.as_str())?
            .into_iter()
            .map(|d| {
                let keys = with_revocations(s, d.sub_delegation.keys.clone())?;
                Ok((d.sub_delegation, keys))
            })
            .collect::<store::Result<Vec<_>>>()?;
        Ok((
            s.namespace(ns.as_str())?,
            with_revocations(s, keys)?,
            s.identities(ns.as_str())?,
            subs,
            s.namespace_revocations(ns.as_str())?,
        ))
    })
    .await?;
    let now = state.now();
    let mut view = namespace_view(&record);
    if let Value::Object(map) = &mut view {
        map.insert("keys".into(), Value::Array(keys.views(&own, now, horizon)?));
        map.insert(
            "identities".into(),
            to_value(&identities.iter().map(|i| &i.identity).collect::<Vec<_>>())?,
        );
        let subs = subs
            .iter()
            .map(|(sub, keys)| {
                let mut v = to_value(sub)?;
                if let Value::Object(m) = &mut v {
                    m.insert("keys".into(), Value::Array(keys.views(&own, now, horizon)?));
                }
                Ok(v)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        map.insert("sub_delegations".into(), Value::Array(subs));
        map.insert(
            "revocations".into(),
            Value::Array(
                own.iter()
                    .map(namespace_revocation_view)
                    .collect::<Result<_, _>>()?,
            ),
        );
        map.insert(
            "expiring_within_seconds".into(),
            json!(horizon.whole_seconds()),
        );
    }
    Ok(view)
}

// ---- namespaces ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateNamespaceRequest {
    name: NamespaceName,
    scopes: Vec<ArtifactPattern>,
    #[serde(default)]
    maintainers: Vec<String>,
    /// Create the namespace even if a scope overlaps another namespace's.
    #[serde(default)]
    allow_overlap: bool,
}

async fn create_namespace(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::CreateNamespace.action(""))?;
    // `NamespaceName` refuses the names of the repository's own roles
    // (top-level and hashed bins) as the body is parsed.
    let req: CreateNamespaceRequest = body.json().await?;
    check_patterns("scopes", &req.scopes)?;
    let mut seen = BTreeSet::new();
    for (i, m) in req.maintainers.iter().enumerate() {
        let field = format!("maintainers[{i}]");
        check_label(&field, m)?;
        if !seen.insert(m.as_str()) {
            return Err(ApiError::invalid(&field, format!("`{m}` is listed twice")));
        }
    }
    let name = req.name.clone();
    let entry = NamespaceEntry {
        name: req.name,
        scopes: req.scopes,
        maintainers: req.maintainers,
    };
    let change = Change::CreateNamespace {
        entry: entry.clone(),
        threshold: NonZeroU32::MIN,
        allow_overlap: req.allow_overlap,
    };
    publish(&state, &caller, change).await?;
    let mut view = namespace_detail(&state, name, DEFAULT_EXPIRING_WITHIN).await?;
    if req.allow_overlap {
        // What the namespace overlaps (the audit record of the create has it too).
        let overlaps = read(&state, move |s| s.scope_overlaps(&entry, &[])).await?;
        if let Value::Object(map) = &mut view {
            map.insert("overlaps".into(), to_value(&overlaps)?);
        }
    }
    Ok(HttpResponse::Created().json(view))
}

async fn list_namespaces(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListNamespaces.action(""))?;
    let list = read(&state, Store::namespaces).await?;
    let views: Vec<Value> = list.iter().map(namespace_view).collect();
    Ok(HttpResponse::Ok().json(json!({ "namespaces": views })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowNamespaceQuery {
    /// Flag keys whose `not_after` is at most this far ahead (`30d`, `12h`).
    #[serde(default)]
    expiring_within: Option<String>,
}

async fn show_namespace(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ShowNamespace.action(&ns))?;
    let ns = path_namespace(&ns)?;
    let query: ShowNamespaceQuery = query(&req)?;
    let horizon = match &query.expiring_within {
        None => DEFAULT_EXPIRING_WITHIN,
        Some(text) => parse_duration(text)
            .map_err(|e| ApiError::invalid("expiring_within", format!("`{text}`: {e}")))?,
    };
    Ok(HttpResponse::Ok().json(namespace_detail(&state, ns, horizon).await?))
}

async fn delete_namespace(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::DeleteNamespace.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    publish(&state, &caller, Change::DeleteNamespace { namespace }).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdRequest {
    threshold: NonZeroU32,
}

async fn set_threshold(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::SetThreshold.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    let req: ThresholdRequest = body.json().await?;
    publish(
        &state,
        &caller,
        Change::SetThreshold {
            namespace: namespace.clone(),
            threshold: req.threshold,
        },
    )
    .await?;
    Ok(
        HttpResponse::Ok()
            .json(namespace_detail(&state, namespace, DEFAULT_EXPIRING_WITHIN).await?),
    )
}

/// `POST /api/v1/namespaces/{ns}/scopes`: more artifact patterns for a
/// namespace. A new scope that overlaps another namespace's is refused
/// (409 `scope_overlap`) unless `allow_overlap`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddScopesRequest {
    scopes: Vec<ArtifactPattern>,
    #[serde(default)]
    allow_overlap: bool,
}

async fn add_scopes(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddScopes.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    let req: AddScopesRequest = body.json().await?;
    if req.scopes.is_empty() {
        return Err(ApiError::invalid(
            "scopes",
            "give at least one scope to add",
        ));
    }
    let current = {
        let ns = namespace.clone();
        read(&state, move |s| s.namespace(ns.as_str())).await?
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, scope) in req.scopes.iter().enumerate() {
        if current.entry.scopes.contains(scope) {
            return Err(ApiError::invalid(
                &format!("scopes[{i}]"),
                format!("`{scope}` is already a scope of namespace `{namespace}`"),
            ));
        }
        if !seen.insert(scope.as_str()) {
            return Err(ApiError::invalid(
                &format!("scopes[{i}]"),
                format!("`{scope}` is given twice"),
            ));
        }
    }
    publish(
        &state,
        &caller,
        Change::AddScopes {
            namespace: namespace.clone(),
            scopes: req.scopes,
            allow_overlap: req.allow_overlap,
        },
    )
    .await?;
    let mut view = namespace_detail(&state, namespace.clone(), DEFAULT_EXPIRING_WITHIN).await?;
    if req.allow_overlap {
        // What the added scopes overlap (the audit record has it too).
        let overlaps = read(&state, move |s| {
            let now = s.namespace(namespace.as_str())?;
            s.scope_overlaps(&now.entry, &current.entry.scopes)
        })
        .await?;
        if let Value::Object(map) = &mut view {
            map.insert("overlaps".into(), to_value(&overlaps)?);
        }
    }
    Ok(HttpResponse::Created().json(view))
}

// ---- keys ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKeyRequest {
    #[serde(default)]
    key: Option<Key>,
    #[serde(default)]
    public_key_pem: Option<String>,
    #[serde(default)]
    id: Option<KeyId>,
    #[serde(default, deserialize_with = "rfc3339_opt")]
    not_before: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "rfc3339_opt")]
    not_after: Option<OffsetDateTime>,
    #[serde(default)]
    description: Option<String>,
}

/// A TUF key entry from a PEM SubjectPublicKeyInfo; the scheme follows the
/// key type: Ed25519, ECDSA P-256, RSA-PSS-SHA256.
fn key_from_pem(pem: &str) -> Result<Key, ApiError> {
    Key::from_spki_pem(pem).map_err(|e| bad_key("public_key_pem", e))
}

async fn add_key(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddKey.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    let req: AddKeyRequest = body.json().await?;
    let (key, field) = match (req.key, req.public_key_pem) {
        (Some(key), None) => (key, "key"),
        (None, Some(pem)) => (key_from_pem(&pem)?, "public_key_pem"),
        _ => {
            return Err(ApiError::invalid(
                ".",
                "give exactly one of `key` (a TUF key object) and `public_key_pem`",
            ))
        }
    };
    let id = match req.id {
        Some(id) => id,
        None => key.key_id().map_err(|e| ApiError::invalid(field, e))?,
    };
    let trusted = TrustedKey {
        id,
        key,
        not_before: req.not_before,
        not_after: req.not_after,
        ephemeral: false,
        description: req.description,
        principal: None,
    };
    check_label("id", trusted.id.as_str())?;
    let spki = if field == "key" {
        check_key_object(field, &trusted.id, &trusted.key)?
    } else {
        trusted
            .key
            .spki_der(&trusted.id)
            .map_err(|e| bad_key(field, e))?
    };
    check_window("", trusted.not_before, trusted.not_after)?;
    if let Some(d) = &trusted.description {
        check_label("description", d)?;
    }
    let listed = {
        let ns = namespace.clone();
        read(&state, move |s| s.keys(ns.as_str())).await?
    };
    for other in &listed {
        if other.key.id == trusted.id {
            return Err(ApiError::conflict(format!(
                "id: key `{}` is already listed in namespace `{namespace}`",
                trusted.id
            )));
        }
        if other.key.key.spki_der(&other.key.id).ok().as_ref() == Some(&spki) {
            return Err(ApiError::conflict(format!(
                "{field}: the same key is already listed in namespace `{namespace}` as `{}`",
                other.key.id
            )));
        }
    }
    let view = to_value(&trusted)?;
    publish(
        &state,
        &caller,
        Change::AddKey {
            namespace,
            key: trusted,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize)]
struct KeyPath {
    ns: String,
    key_id: String,
}

async fn remove_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<KeyPath>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RemoveKey.action(&path.ns))?;
    let namespace = path_namespace(&path.ns)?;
    let key_id = KeyId::new(path.key_id.clone());
    publish(&state, &caller, Change::RemoveKey { namespace, key_id }).await?;
    Ok(no_content())
}

// ---- identities ----

async fn add_identity(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddIdentity.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    // X509Identity refuses unknown fields, parses every CA certificate and the subject.
    let identity: X509Identity = body.json().await?;
    check_label("name", &identity.name)?;
    for (i, ca) in identity.ca_certs.iter().enumerate() {
        refuse_private_key(&format!("ca_certs[{i}]"), ca.pem())?;
    }
    if identity.ca_certs.is_empty() {
        return Err(ApiError::invalid(
            "ca_certs",
            "must list at least one CA certificate",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, ca) in identity.ca_certs.iter().enumerate() {
        if !seen.insert(ca.sha256().clone()) {
            return Err(ApiError::invalid(
                &format!("ca_certs[{i}]"),
                "certificate is listed twice",
            ));
        }
    }
    check_window("", identity.not_before, identity.not_after)?;
    let view = to_value(&identity)?;
    publish(
        &state,
        &caller,
        Change::AddIdentity {
            namespace,
            identity,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize)]
struct NamedPath {
    ns: String,
    name: String,
}

async fn remove_identity(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<NamedPath>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RemoveIdentity.action(&path.ns))?;
    let namespace = path_namespace(&path.ns)?;
    let name = path.name.clone();
    publish(&state, &caller, Change::RemoveIdentity { namespace, name }).await?;
    Ok(no_content())
}

// ---- sub-delegations ----

async fn add_sub_delegation(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddSubDelegation.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    let sub: SubDelegation = body.json().await?;
    check_label("name", &sub.name)?;
    check_patterns("scopes", &sub.scopes)?;
    check_keys("keys", &sub.keys)?;
    if usize::try_from(sub.threshold.get()).map_or(true, |t| t > sub.keys.len()) {
        return Err(ApiError::invalid(
            "threshold",
            format!(
                "threshold {} is more than the {} keys listed",
                sub.threshold,
                sub.keys.len()
            ),
        ));
    }
    let view = to_value(&sub)?;
    publish(
        &state,
        &caller,
        Change::AddSubDelegation {
            namespace,
            sub_delegation: sub,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

async fn remove_sub_delegation(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<NamedPath>,
) -> Result<HttpResponse, ApiError> {
    authorize(
        &caller.token,
        Endpoint::RemoveSubDelegation.action(&path.ns),
    )?;
    let namespace = path_namespace(&path.ns)?;
    let name = path.name.clone();
    publish(
        &state,
        &caller,
        Change::RemoveSubDelegation { namespace, name },
    )
    .await?;
    Ok(no_content())
}

// ---- a namespace's own revocations ----

/// `POST /api/v1/namespaces/{ns}/revocations`: the namespace revokes the
/// key listed under `key_id` (its own keys or its sub-delegations'), by
/// its material, for its own artifacts only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceRevocationRequest {
    key_id: KeyId,
    #[serde(default, with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    reason: String,
}

async fn revoke_namespace_key(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RevokeNamespaceKey.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    let req: NamespaceRevocationRequest = body.json().await?;
    check_label("key_id", req.key_id.as_str())?;
    check_label("reason", &req.reason)?;
    let found = {
        let (ns, id) = (namespace.clone(), req.key_id.clone());
        read(&state, move |s| {
            s.namespace(ns.as_str())?;
            s.listed_under(Some(ns.as_str()), id.as_str())
        })
        .await?
    };
    let Some((fingerprint, _)) = found.first().cloned() else {
        return Err(ApiError::not_found(format!(
            "no key `{}` is listed in namespace `{namespace}` (its keys or sub-delegations)",
            req.key_id
        )));
    };
    if found.iter().any(|(other, _)| *other != fingerprint) {
        return Err(ApiError::conflict(format!(
            "key_id: `{}` names different keys in namespace `{namespace}` (its own keys and a \
             sub-delegation's); remove or rename one first",
            req.key_id
        )));
    }
    let existing = {
        let (ns, fp) = (namespace.clone(), fingerprint.clone());
        read(&state, move |s| s.namespace_revocation(ns.as_str(), &fp)).await?
    };
    if let Some(r) = existing {
        return Err(ApiError::conflict(format!(
            "key `{}` (SPKI SHA-256 {fingerprint}) is already revoked in namespace `{namespace}` \
             (since {}: {})",
            req.key_id,
            rfc3339(r.revocation.revoked_at),
            r.revocation.reason
        )));
    }
    let revocation = Revocation {
        subject: RevokedSubject::Key(fingerprint),
        revoked_at: req.revoked_at.unwrap_or_else(|| state.now()),
        reason: req.reason,
    };
    let mut view = to_value(&revocation)?;
    if let Value::Object(map) = &mut view {
        map.insert("namespace".into(), json!(namespace));
        map.insert("key_id".into(), json!(req.key_id));
        map.insert(
            "listed_in".into(),
            to_value(&found.iter().map(|(_, l)| l).collect::<Vec<_>>())?,
        );
    }
    publish(
        &state,
        &caller,
        Change::RevokeNamespaceKey {
            namespace,
            revocation,
            key_id: Some(req.key_id),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize)]
struct NamespaceRevocationPath {
    ns: String,
    spki_sha256: String,
}

async fn remove_namespace_revocation(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<NamespaceRevocationPath>,
) -> Result<HttpResponse, ApiError> {
    authorize(
        &caller.token,
        Endpoint::RemoveNamespaceRevocation.action(&path.ns),
    )?;
    let namespace = path_namespace(&path.ns)?;
    let fingerprint = Sha256Hex::parse(&path.spki_sha256).map_err(|_| {
        ApiError::not_found(format!(
            "`{}` is not a key fingerprint (64 lowercase hex digits)",
            path.spki_sha256
        ))
    })?;
    publish(
        &state,
        &caller,
        Change::RemoveNamespaceRevocation {
            namespace,
            fingerprint,
        },
    )
    .await?;
    Ok(no_content())
}

// ---- revocations ----

/// `POST /api/v1/revocations`: what to revoke, given exactly one way.
/// A key is always revoked by its material: an id is resolved to the key
/// listed under it now.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationRequest {
    /// A key by the id it is listed under (with `namespace`, or unique
    /// across namespaces).
    #[serde(default)]
    key_id: Option<KeyId>,
    /// The namespace whose `key_id` is meant.
    #[serde(default)]
    namespace: Option<NamespaceName>,
    /// A key as a TUF key object.
    #[serde(default)]
    key: Option<Key>,
    /// A key as PEM SubjectPublicKeyInfo.
    #[serde(default)]
    public_key_pem: Option<String>,
    /// A key by its fingerprint (SHA-256 of its material).
    #[serde(default)]
    spki_sha256: Option<Sha256Hex>,
    /// A certificate by the SHA-256 of its DER.
    #[serde(default)]
    certificate_sha256: Option<Sha256Hex>,
    /// A certificate as PEM.
    #[serde(default)]
    certificate_pem: Option<String>,
    #[serde(default, deserialize_with = "rfc3339_opt")]
    revoked_at: Option<OffsetDateTime>,
    reason: String,
}

/// What a revocation request names, resolved to key material or a
/// certificate hash, with where the admin named the key (by id).
async fn revocation_subject(
    state: &AppState,
    req: &RevocationRequest,
) -> Result<(RevokedSubject, Option<Listing>), ApiError> {
    const ONE_OF: &str =
        "give exactly one of `key_id` (with `namespace` if the id is not unique), \
                          `key`, `public_key_pem`, `spki_sha256`, `certificate_sha256` and \
                          `certificate_pem`";
    let given = [
        req.key_id.is_some(),
        req.key.is_some(),
        req.public_key_pem.is_some(),
        req.spki_sha256.is_some(),
        req.certificate_sha256.is_some(),
        req.certificate_pem.is_some(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given != 1 {
        return Err(ApiError::invalid(".", ONE_OF));
    }
    if req.namespace.is_some() && req.key_id.is_none() {
        return Err(ApiError::invalid(
            "namespace",
            "`namespace` only goes with `key_id`",
        ));
    }
    let fingerprint = |field: &str, key: &Key| {
        key.fingerprint(&KeyId::new("(key to revoke)"))
            .map_err(|e| bad_key(field, e))
    };
    if let Some(id) = &req.key_id {
        check_label("key_id", id.as_str())?;
        let namespace = req.namespace.clone();
        let key_id = id.as_str().to_owned();
        let found = read(state, move |s| {
            s.listed_under(namespace.as_ref().map(NamespaceName::as_str), &key_id)
        })
        .await?;
        let where_ = match &req.namespace {
            Some(ns) => format!(" in namespace `{ns}`"),
            None => String::new(),
        };
        let Some((fp, listing)) = found.first().cloned() else {
            return Err(ApiError::not_found(format!(
                "no key `{id}` is listed{where_}; give the key itself (`key`, `public_key_pem` or `spki_sha256`) to revoke a key that is not listed"
            )));
        };
        if found.iter().any(|(other, _)| *other != fp) {
            let places: Vec<String> = found
                .iter()
                .map(|(_, l)| match &l.sub_delegation {
                    Some(sub) => format!("`{}` (sub-delegation `{sub}`)", l.namespace),
                    None => format!("`{}`", l.namespace),
                })
                .collect();
            return Err(ApiError::conflict(format!(
                "key id `{id}` names different keys{where_} (listed in {}): name the namespace (`namespace`) or give the key itself",
                places.join(", ")
            )));
        }
        return Ok((RevokedSubject::Key(fp), Some(listing)));
    }
    if let Some(key) = &req.key {
        check_key_object("key", &KeyId::new("(key to revoke)"), key)?;
        return Ok((RevokedSubject::Key(fingerprint("key", key)?), None));
    }
    if let Some(pem) = &req.public_key_pem {
        let key = key_from_pem(pem)?;
        return Ok((
            RevokedSubject::Key(fingerprint("public_key_pem", &key)?),
            None,
        ));
    }
    if let Some(h) = &req.spki_sha256 {
        return Ok((RevokedSubject::Key(h.clone()), None));
    }
    if let Some(h) = &req.certificate_sha256 {
        return Ok((RevokedSubject::Certificate(h.clone()), None));
    }
    if let Some(pem) = &req.certificate_pem {
        let cert = CaCert::parse(pem).map_err(|e| ApiError::invalid("certificate_pem", e))?;
        return Ok((RevokedSubject::Certificate(cert.sha256().clone()), None));
    }
    Err(ApiError::invalid(".", ONE_OF))
}

fn revocation_view(
    revocation: &Revocation,
    listed_as: Option<&Listing>,
    listed_in: &[Listing],
) -> Result<Value, ApiError> {
    let mut v = to_value(revocation)?;
    if let Value::Object(map) = &mut v {
        map.insert("named_as".into(), to_value(&listed_as)?);
        map.insert("listed_in".into(), to_value(&listed_in)?);
    }
    Ok(v)
}

async fn add_revocation(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddRevocation.action(""))?;
    let req: RevocationRequest = body.json().await?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "must say why (not empty)"));
    }
    let (subject, listed_as) = revocation_subject(&state, &req).await?;
    let revocation = Revocation {
        subject,
        revoked_at: req.revoked_at.unwrap_or_else(|| state.now()),
        reason: req.reason,
    };
    let subject = revocation.subject.clone();
    let existing = read(&state, move |s| s.revocation(&subject)).await?;
    if existing.is_some() {
        return Err(ApiError::conflict(format!(
            "{} is already revoked",
            revocation.subject
        )));
    }
    let listed_in = match &revocation.subject {
        RevokedSubject::Key(h) => {
            let h = h.clone();
            read(&state, move |s| s.listings(&h)).await?
        }
        RevokedSubject::Certificate(_) => Vec::new(),
    };
    let view = revocation_view(&revocation, listed_as.as_ref(), &listed_in)?;
    publish(
        &state,
        &caller,
        Change::AddRevocation {
            revocation,
            listed_as,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

async fn list_revocations(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListRevocations.action(""))?;
    let list = read(&state, Store::revocations).await?;
    let views = list
        .iter()
        .map(|r| {
            let mut v = to_value(&r.revocation)?;
            if let Value::Object(map) = &mut v {
                map.insert("recorded_at".into(), Value::String(rfc3339(r.recorded_at)));
                map.insert("named_as".into(), to_value(&r.listed_as)?);
            }
            Ok(v)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(HttpResponse::Ok().json(json!({ "revocations": views })))
}

// ---- peers ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerRequest {
    patterns: Vec<ArtifactPattern>,
    url: PeerUrl,
    root: PinnedRoot,
    #[serde(default)]
    terminating: bool,
}

async fn put_peer(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::PutPeer.action(""))?;
    let req: PeerRequest = body.json().await?;
    check_label("name", &name)?;
    // Every verifier will send requests to this URL: not inward.
    req.url
        .check_outbound(state.allow_private_peers)
        .map_err(|refusal| {
            ApiError::invalid(
                "url",
                format!(
                    "{refusal}; peers must be https:// services on public addresses (private and loopback addresses only where the server sets peers.allow_private_addresses)"
                ),
            )
        })?;
    check_patterns("patterns", &req.patterns)?;
    let peer = Peer {
        name: name.into_inner(),
        patterns: req.patterns,
        url: req.url,
        root: req.root,
        terminating: req.terminating,
    };
    let view = to_value(&peer)?;
    publish(&state, &caller, Change::PutPeer { peer }).await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn list_peers(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListPeers.action(""))?;
    let list = read(&state, Store::peers).await?;
    let peers: Vec<&Peer> = list.iter().map(|p| &p.peer).collect();
    Ok(HttpResponse::Ok().json(json!({ "peers": peers })))
}

async fn remove_peer(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RemovePeer.action(""))?;
    publish(
        &state,
        &caller,
        Change::RemovePeer {
            name: name.into_inner(),
        },
    )
    .await?;
    Ok(no_content())
}

// ---- organization roots ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootRequest {
    pem: String,
}

async fn put_root(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::PutRoot.action(""))?;
    let req: RootRequest = body.json().await?;
    let name = name.into_inner();
    if !NamespaceName::is_well_formed(&name) {
        return Err(ApiError::invalid(
            "name",
            format!(
                "`{name}` is not a root name (1 to 63 of a-z, 0-9 and `-`, not starting with `-`)"
            ),
        ));
    }
    refuse_private_key("pem", &req.pem)?;
    CaCert::parse(&req.pem).map_err(|e| ApiError::invalid("pem", e))?;
    publish(
        &state,
        &caller,
        Change::PutOrgRoot {
            name: name.clone(),
            pem: req.pem,
        },
    )
    .await?;
    let root = read(&state, move |s| s.org_root(&name)).await?;
    Ok(HttpResponse::Ok().json(root_view(&root)))
}

async fn list_roots(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListRoots.action(""))?;
    let list = read(&state, Store::org_roots).await?;
    let views: Vec<Value> = list.iter().map(root_view).collect();
    Ok(HttpResponse::Ok().json(json!({ "roots": views })))
}

async fn remove_root(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RemoveRoot.action(""))?;
    publish(
        &state,
        &caller,
        Change::RemoveOrgRoot {
            name: name.into_inner(),
        },
    )
    .await?;
    Ok(no_content())
}

// ---- TUF root ----

/// `POST /api/v1/root`: the body is the signed root (N+1) itself.
async fn submit_root(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::SubmitRoot.action(""))?;
    let bytes = body.bytes().await?;
    let value: Value = super::body::parse_json(&bytes)?;
    let version = value
        .get("signed")
        .and_then(|s| s.get("version"))
        .and_then(Value::as_u64);
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let now = state.now();
    let applied = web::block(move || publisher.submit_root(&actor, &bytes, now)).await??;
    Ok(HttpResponse::Created().json(json!({
        "root_version": version,
        "files": applied.files,
        "timestamp_version": applied.timestamp_version,
        "audit_seq": applied.audit_seq,
    })))
}

// ---- tokens ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    kind: String,
    #[serde(default)]
    namespace: Option<NamespaceName>,
    #[serde(default)]
    namespaces: Option<Vec<NamespaceName>>,
    #[serde(default)]
    description: Option<String>,
    /// Seconds from now until the token expires.
    #[serde(default)]
    expires_in: Option<u64>,
    /// When the token expires.
    #[serde(default, deserialize_with = "rfc3339_opt")]
    expires_at: Option<OffsetDateTime>,
}

/// Longest token lifetime accepted (`expires_in`, `expires_at`): ten
/// years; a token that should outlive that has no expiry.
const TOKEN_MAX_LIFETIME: time::Duration = time::Duration::days(3650);

/// When a token asked for at `now` expires: from `expires_in` or
/// `expires_at` (not both), in the future, at most
/// [`TOKEN_MAX_LIFETIME`] away; `None` without either.
fn token_expiry(
    expires_in: Option<u64>,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ApiError> {
    let max = TOKEN_MAX_LIFETIME.whole_seconds();
    let at = match (expires_in, expires_at) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_in",
                "give expires_in or expires_at, not both",
            ))
        }
        (Some(secs), None) => {
            let secs = i64::try_from(secs).ok().filter(|s| (1..=max).contains(s));
            let Some(secs) = secs else {
                return Err(ApiError::invalid(
                    "expires_in",
                    format!("must be from 1 to {max} seconds (ten years)"),
                ));
            };
            now + time::Duration::seconds(secs)
        }
        (None, Some(at)) => {
            if at <= now {
                return Err(ApiError::invalid(
                    "expires_at",
                    format!("{} is not in the future", rfc3339(at)),
                ));
            }
            if at - now > TOKEN_MAX_LIFETIME {
                return Err(ApiError::invalid(
                    "expires_at",
                    "must be at most ten years from now",
                ));
            }
            at
        }
    };
    // Whole seconds, as every stored time.
    Ok(Some(at.replace_nanosecond(0).unwrap_or(at)))
}

fn token_kind(req: TokenRequest) -> Result<(TokenKind, Option<String>), ApiError> {
    let kind = match (req.kind.as_str(), req.namespace, req.namespaces) {
        ("org-admin", None, None) => TokenKind::OrgAdmin,
        ("maintainer", Some(ns), None) => TokenKind::Maintainer(ns),
        ("ci", None, Some(list)) => {
            if list.is_empty() {
                return Err(ApiError::invalid(
                    "namespaces",
                    "must list at least one namespace",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, ns) in list.iter().enumerate() {
                if !seen.insert(ns) {
                    return Err(ApiError::invalid(
                        &format!("namespaces[{i}]"),
                        format!("`{ns}` is listed twice"),
                    ));
                }
            }
            TokenKind::Ci(list)
        }
        ("org-admin" | "maintainer" | "ci", _, _) => {
            return Err(ApiError::invalid(
                "kind",
                format!(
                    "kind `{}` takes {}",
                    req.kind,
                    match req.kind.as_str() {
                        "org-admin" => "neither `namespace` nor `namespaces`",
                        "maintainer" => "`namespace` (and not `namespaces`)",
                        _ => "`namespaces` (and not `namespace`)",
                    }
                ),
            ))
        }
        (other, _, _) => {
            return Err(ApiError::invalid(
                "kind",
                format!("unknown token kind `{other}` (org-admin, maintainer or ci)"),
            ))
        }
    };
    if let Some(d) = &req.description {
        check_label("description", d)?;
    }
    Ok((kind, req.description))
}

async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::CreateToken.action(""))?;
    let req: TokenRequest = body.json().await?;
    let now = state.now();
    let expires_at = token_expiry(req.expires_in, req.expires_at, now)?;
    let (kind, description) = token_kind(req)?;
    let wanted: Vec<NamespaceName> = kind.namespaces().to_vec();
    let missing = read(&state, move |s| {
        for ns in &wanted {
            match s.namespace(ns.as_str()) {
                Ok(_) => {}
                Err(store::Error::NotFound { .. }) => return Ok(Some(ns.clone())),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    })
    .await?;
    if let Some(ns) = missing {
        return Err(ApiError::not_found(format!("namespace `{ns}` not found")));
    }
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let new = web::block(move || {
        publisher.create_token_expiring(&actor, kind, description, expires_at, now)
    })
    .await??;
    let mut view = token_view(&new.token, now);
    if let Value::Object(map) = &mut view {
        map.insert(
            "secret".into(),
            Value::String(new.secret.expose().to_owned()),
        );
    }
    Ok(HttpResponse::Created().json(view))
}

async fn list_tokens(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListTokens.action(""))?;
    let list = read(&state, Store::tokens).await?;
    let now = state.now();
    let views: Vec<Value> = list.iter().map(|t| token_view(t, now)).collect();
    Ok(HttpResponse::Ok().json(json!({ "tokens": views })))
}

async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RevokeToken.action(""))?;
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let now = state.now();
    let id = id.into_inner();
    web::block(move || publisher.revoke_token(&actor, &id, now)).await??;
    Ok(no_content())
}

// ---- audit ----

/// Most audit records answered at once.
const AUDIT_LIMIT_MAX: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    order: Option<String>,
}

/// The store's filter for an audit query; 400 naming the parameter at
/// fault.
fn audit_filter(q: AuditQuery) -> Result<store::AuditFilter, ApiError> {
    let limit = match q.limit {
        None => 100,
        Some(0) => return Err(ApiError::invalid("limit", "must be at least 1")),
        Some(n) => n.min(AUDIT_LIMIT_MAX),
    };
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            return Err(ApiError::invalid(
                "order",
                format!("`{shown}` is not `asc` (oldest first) or `desc` (newest first)"),
            ));
        }
    };
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid("before", "must be at least 1"));
    }
    let since = q
        .since
        .as_deref()
        .map(parse_rfc3339)
        .transpose()
        .map_err(|e| ApiError::invalid("since", e))?;
    if let Some(action) = &q.action {
        let well_formed = !action.is_empty()
            && action.len() <= 64
            && action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-*".contains(&b))
            && action
                .find('*')
                .is_none_or(|i| i + 1 == action.len() && action.ends_with(".*"));
        if !well_formed {
            return Err(ApiError::invalid(
                "action",
                "expected an action (`key.add`) or a prefix ending in `.*` (`key.*`)",
            ));
        }
    }
    if let Some(actor) = &q.actor {
        if actor.is_empty() || actor.len() > 512 || actor.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "actor",
                "expected an actor as records name it (`token:<id>`, `system`, `oidc:<issuer>#<subject>`)",
            ));
        }
    }
    if let Some(ns) = &q.namespace {
        NamespaceName::parse(ns).map_err(|e| ApiError::invalid("namespace", e))?;
    }
    Ok(store::AuditFilter {
        after: (q.after > 0).then_some(q.after),
        before: q.before,
        since,
        action: q.action,
        actor: q.actor,
        namespace: q.namespace,
        newest_first,
        limit,
    })
}

async fn list_audit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListAudit.action(""))?;
    let filter = audit_filter(query(&req)?)?;
    let records = read(&state, move |s| s.audit_query(&filter)).await?;
    let views: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "time": rfc3339(r.time),
                "actor": r.actor,
                "action": r.action,
                "subject": r.subject,
                "details": r.details,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "records": views })))
}

async fn verify_audit(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::VerifyAudit.action(""))?;
    let publisher = state.publisher.clone();
    let result = web::block(move || publisher.verify_audit()).await?;
    match result {
        Ok(v) => Ok(HttpResponse::Ok().json(json!({
            "ok": true,
            "records": v.head.records,
            "hash": v.head.hash,
            "published_heads": v.heads_checked,
            "published_head": v.published.map(|p| json!({
                "seq": p.head.seq,
                "hash": p.head.hash,
                "timestamp_version": p.timestamp_version,
            })),
        }))),
        Err(PublishError::Store(store::Error::AuditChain { seq, reason })) => {
            Ok(HttpResponse::Ok().json(json!({
                "ok": false,
                "first_bad_seq": seq,
                "reason": reason,
            })))
        }
        Err(PublishError::Store(store::Error::AuditHead(e))) => {
            let (head_seq, published_in, expected, found) = match &e {
                ChainError::Contradicted {
                    seq,
                    published_in,
                    expected,
                    found,
                } => (*seq, published_in, expected, json!(found)),
                ChainError::Truncated {
                    seq,
                    published_in,
                    expected,
                    ..
                } => (*seq, published_in, expected, Value::Null),
                _ => return Err(ApiError::internal(e)),
            };
            Ok(HttpResponse::Ok().json(json!({
                "ok": false,
                "first_bad_seq": e.first_bad_seq(),
                "reason": e.to_string(),
                "published_in": published_in,
                "head_seq": head_seq,
                "expected": expected,
                "found": found,
            })))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- resolve ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveQuery {
    artifact: String,
}

/// Who answers for an artifact name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// A namespace, by its most specific matching scope.
    Namespace { namespace: String, scope: String },
    /// A peer keyshare service.
    Peer { peer: String, url: String },
}

/// The owner of `artifact`, by the policy crate's own rule
/// ([`TrustSet::owner`]: terminating peers first, then namespace scopes,
/// then non-terminating peers; the most specific pattern wins).
pub(crate) fn resolve_artifact(
    index: &Namespaces,
    peers: &Peers,
    artifact: &str,
) -> Option<Resolution> {
    let set = TrustSet::new(
        index.clone(),
        Vec::new(),
        Revocations::default(),
        peers.clone(),
    )
    .ok()?;
    match set.owner(artifact)? {
        Owner::Namespace { entry, scope } => Some(Resolution::Namespace {
            namespace: entry.name.to_string(),
            scope: scope.to_string(),
        }),
        Owner::Peer(p) => Some(Resolution::Peer {
            peer: p.name.clone(),
            url: p.url.to_string(),
        }),
    }
}

async fn resolve(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::Resolve.action(""))?;
    let artifact = query::<ResolveQuery>(&req)?.artifact;
    if artifact.is_empty() {
        return Err(ApiError::invalid("artifact", "must not be empty"));
    }
    let (index, peers) = read(&state, |s| Ok((s.namespaces_index()?, s.peers_document()?))).await?;
    match resolve_artifact(&index, &peers, &artifact) {
        Some(Resolution::Namespace { namespace, scope }) => Ok(HttpResponse::Ok().json(json!({
            "kind": "namespace",
            "namespace": namespace,
            "scope": scope,
        }))),
        Some(Resolution::Peer { peer, url }) => Ok(HttpResponse::Ok().json(json!({
            "kind": "peer",
            "peer": peer,
            "url": url,
        }))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_match",
            format!("no namespace or peer covers `{artifact}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_endpoint_is_listed_once_with_a_distinct_route() {
        let mut seen = BTreeSet::new();
        for e in Endpoint::ALL {
            let (m, p) = e.route();
            assert!(seen.insert((m.to_string(), p)), "{e:?} twice");
            assert!(p.starts_with("/api/v1/"));
        }
    }

    #[test]
    fn resolve_prefers_terminating_peers_then_most_specific_namespace_then_peers() {
        let index: Namespaces = serde_json::from_value(json!({
            "format": "keyshare.namespaces/v1",
            "namespaces": [
                {"name": "broad", "scopes": ["r.io/**"]},
                {"name": "team-a", "scopes": ["r.io/team-a/**"]},
                {"name": "zz", "scopes": ["r.io/team-a/app"]},
            ]
        }))
        .unwrap();
        let peers: Peers = serde_json::from_value(json!({
            "format": "keyshare.peers/v1",
            "peers": [
                {"name": "partner", "patterns": ["r.io/partner/**"], "url": "https://p.example",
                 "root": {"sha256": "0".repeat(64)}, "terminating": true},
                {"name": "fallback", "patterns": ["docker.io/**"], "url": "https://f.example",
                 "root": {"sha256": "1".repeat(64)}},
            ]
        }))
        .unwrap();
        let ns = |n: &str, s: &str| {
            Some(Resolution::Namespace {
                namespace: n.into(),
                scope: s.into(),
            })
        };
        assert_eq!(
            resolve_artifact(&index, &peers, "r.io/team-a/x"),
            ns("team-a", "r.io/team-a/**")
        );
        assert_eq!(
            resolve_artifact(&index, &peers, "r.io/team-a/app"),
            ns("zz", "r.io/team-a/app")
        );
        assert_eq!(
            resolve_artifact(&index, &peers, "r.io/other"),
            ns("broad", "r.io/**")
        );
        assert_eq!(
            resolve_artifact(&index, &peers, "r.io/partner/x"),
            Some(Resolution::Peer {
                peer: "partner".into(),
                url: "https://p.example".into()
            })
        );
        assert_eq!(
            resolve_artifact(&index, &peers, "docker.io/library/x"),
            Some(Resolution::Peer {
                peer: "fallback".into(),
                url: "https://f.example".into()
            })
        );
        assert_eq!(resolve_artifact(&index, &peers, "quay.io/x"), None);
    }
}
