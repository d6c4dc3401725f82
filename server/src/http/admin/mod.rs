//! The admin API under `/api/v1/`: one handler per [`Endpoint`].
//!
//! Every handler authenticates ([`Caller`]), authorizes ([`authorize`](super::auth::authorize) with
//! the endpoint's [`Action`]), and only then parses its body, so a caller
//! without the right learns nothing about what the route accepts. Writes
//! are one [`Publisher::apply`](crate::publisher::Publisher::apply) each,
//! on a blocking thread, audited as `token:<id>`.

pub(super) mod audit;
pub(super) mod identities;
pub(super) mod keys;
pub(super) mod namespaces;
pub(super) mod peers;
mod resolve;
pub(super) mod revocations;
pub(super) mod roots;
pub(super) mod sub_delegations;
pub(super) mod tokens;
pub(super) mod tsas;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse, Route};
use serde_json::Value;
use time::OffsetDateTime;

use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{Label, NamespaceName, Scopes, TrustedKey, TrustedKeys, Window};

use super::auth::{Action, Caller};
use super::error::ApiError;
use super::AppState;
use crate::publisher::{Applied, Change};
use crate::store::{self, Store};

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
    /// `PUT /api/v1/tsas/{name}`
    PutTsa,
    /// `GET /api/v1/tsas`
    ListTsas,
    /// `DELETE /api/v1/tsas/{name}`
    RemoveTsa,
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
    pub const ALL: [Self; 33] = [
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
        Self::PutTsa,
        Self::ListTsas,
        Self::RemoveTsa,
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
            Self::PutTsa => (M::PUT, "/api/v1/tsas/{name}"),
            Self::ListTsas => (M::GET, "/api/v1/tsas"),
            Self::RemoveTsa => (M::DELETE, "/api/v1/tsas/{name}"),
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

    /// What the endpoint does, for [`authorize`](super::auth::authorize); `ns` is the namespace of
    /// the path (ignored by endpoints without one).
    pub fn action(self, ns: &str) -> Action<'_> {
        match self {
            Self::ListNamespaces
            | Self::ShowNamespace
            | Self::ListRevocations
            | Self::ListPeers
            | Self::ListRoots
            | Self::ListTsas
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
            | Self::RemoveRoot
            | Self::PutTsa
            | Self::RemoveTsa => Action::WriteOrgDocuments,
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
            Self::CreateNamespace => route.to(namespaces::create_namespace),
            Self::ListNamespaces => route.to(namespaces::list_namespaces),
            Self::ShowNamespace => route.to(namespaces::show_namespace),
            Self::DeleteNamespace => route.to(namespaces::delete_namespace),
            Self::SetThreshold => route.to(namespaces::set_threshold),
            Self::AddScopes => route.to(namespaces::add_scopes),
            Self::AddKey => route.to(keys::add_key),
            Self::RemoveKey => route.to(keys::remove_key),
            Self::AddIdentity => route.to(identities::add_identity),
            Self::RemoveIdentity => route.to(identities::remove_identity),
            Self::AddSubDelegation => route.to(sub_delegations::add_sub_delegation),
            Self::RemoveSubDelegation => route.to(sub_delegations::remove_sub_delegation),
            Self::RevokeNamespaceKey => route.to(revocations::revoke_namespace_key),
            Self::RemoveNamespaceRevocation => route.to(revocations::remove_namespace_revocation),
            Self::AddRevocation => route.to(revocations::add_revocation),
            Self::ListRevocations => route.to(revocations::list_revocations),
            Self::PutPeer => route.to(peers::put_peer),
            Self::ListPeers => route.to(peers::list_peers),
            Self::RemovePeer => route.to(peers::remove_peer),
            Self::PutRoot => route.to(roots::put_root),
            Self::ListRoots => route.to(roots::list_roots),
            Self::RemoveRoot => route.to(roots::remove_root),
            Self::PutTsa => route.to(tsas::put_tsa),
            Self::ListTsas => route.to(tsas::list_tsas),
            Self::RemoveTsa => route.to(tsas::remove_tsa),
            Self::CreateToken => route.to(tokens::create_token),
            Self::ListTokens => route.to(tokens::list_tokens),
            Self::RevokeToken => route.to(tokens::revoke_token),
            Self::ListAudit => route.to(audit::list_audit),
            Self::VerifyAudit => route.to(audit::verify_audit),
            Self::Resolve => route.to(resolve::resolve),
            Self::SubmitRoot => route.to(roots::submit_root),
            Self::Export => route.to(super::airgap::export),
        }
    }
}

/// The OpenAPI paths of every endpoint of [`Endpoint::ALL`] (merged into
/// the document by `http/openapi.rs`; a test checks that every endpoint is
/// there with its method).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    namespaces::create_namespace,
    namespaces::list_namespaces,
    namespaces::show_namespace,
    namespaces::delete_namespace,
    namespaces::set_threshold,
    namespaces::add_scopes,
    keys::add_key,
    keys::remove_key,
    identities::add_identity,
    identities::remove_identity,
    sub_delegations::add_sub_delegation,
    sub_delegations::remove_sub_delegation,
    revocations::revoke_namespace_key,
    revocations::remove_namespace_revocation,
    revocations::add_revocation,
    revocations::list_revocations,
    peers::put_peer,
    peers::list_peers,
    peers::remove_peer,
    roots::put_root,
    roots::list_roots,
    roots::remove_root,
    tsas::put_tsa,
    tsas::list_tsas,
    tsas::remove_tsa,
    tokens::create_token,
    tokens::list_tokens,
    tokens::revoke_token,
    audit::list_audit,
    audit::verify_audit,
    resolve::resolve,
    roots::submit_root,
    super::airgap::export,
))]
pub(super) struct AdminApi;

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
        let endpoints = Endpoint::ALL.into_iter().filter(|e| e.route().1 == path);
        let allow: Vec<String> = endpoints.clone().map(|e| e.route().0.to_string()).collect();
        let mut resource =
            web::resource(path).default_service(super::error::method_not_allowed(allow.join(", ")));
        for e in endpoints {
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

/// A store read on a blocking thread, for the portal's pages.
pub(in crate::http) async fn read_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> store::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    read(state, f).await
}

/// Publishes one change on a blocking thread, as the caller.
async fn publish(state: &AppState, caller: &Caller, change: Change) -> Result<Applied, ApiError> {
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let now = state.now();
    Ok(web::block(move || publisher.apply(&actor, change, now)).await??)
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
pub(in crate::http) fn refuse_private_key(field: &str, text: &str) -> Result<(), ApiError> {
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

fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// A 400 for a value one of policy's validating constructors refused, at
/// `field` (the request's name of the value checked).
fn invalid(field: &str, e: &keyshare_policy::trust::Invalid) -> ApiError {
    ApiError::invalid(&e.field(field), e.message.clone())
}

/// A human-chosen name or label ([`Label::parse`]).
fn check_label(field: &str, value: &str) -> Result<(), ApiError> {
    Label::parse(value)
        .map(drop)
        .map_err(|e| invalid(field, &e))
}

/// At least one pattern, none twice ([`Scopes::new`]).
fn check_patterns(field: &str, patterns: &[ArtifactPattern]) -> Result<(), ApiError> {
    Scopes::new(patterns.to_vec())
        .map(drop)
        .map_err(|e| invalid(field, &e))
}

/// `not_before < not_after` when both are given ([`Window::new`]).
fn check_window(
    field: &str,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
) -> Result<(), ApiError> {
    Window::new(not_before, not_after)
        .map(drop)
        .map_err(|e| invalid(field, &e))
}

/// A TUF key object as the policy parser accepts it
/// ([`keyshare_policy::trust::check_key`]): no unknown fields, a supported
/// keytype/scheme, usable key material. Returns its DER SPKI.
fn check_key_object(field: &str, id: &KeyId, key: &Key) -> Result<Vec<u8>, ApiError> {
    keyshare_policy::trust::check_key(id, key).map_err(|e| invalid(field, &e))?;
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

/// A list of trusted keys as the policy parser accepts it
/// ([`TrustedKeys::new`]), whose ids are labels too.
fn check_keys(field: &str, keys: &[TrustedKey]) -> Result<(), ApiError> {
    for (i, k) in keys.iter().enumerate() {
        check_label(&format!("{field}[{i}].id"), k.id.as_str())?;
    }
    TrustedKeys::new(keys.to_vec())
        .map(drop)
        .map_err(|e| invalid(field, &e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

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
}
