//! `GET /api/v1/resolve`: who answers for an artifact name.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use keyshare_policy::api::admin::{ResolveQuery, Resolved};
use keyshare_policy::trust::{Namespaces, Owner, Peers, Revocations, TrustSet};

use super::{query, read, to_value, Endpoint};
use crate::http::auth::{authorize, Caller};
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;

/// The owner of `artifact`, by the policy crate's own rule
/// ([`TrustSet::owner`]: terminating peers first, then namespace scopes,
/// then non-terminating peers; the most specific pattern wins).
fn resolve_artifact(index: &Namespaces, peers: &Peers, artifact: &str) -> Option<Resolved> {
    let set = TrustSet::new(
        index.clone(),
        Vec::new(),
        Revocations::default(),
        peers.clone(),
    )
    .ok()?;
    match set.owner(artifact)? {
        Owner::Namespace { entry, scope } => Some(Resolved::Namespace {
            namespace: entry.name.to_string(),
            scope: scope.to_string(),
        }),
        Owner::Peer(p) => Some(Resolved::Peer {
            peer: p.name.clone(),
            url: p.url.to_string(),
        }),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/resolve",
    tag = "resolve",
    summary = "Who answers for an artifact name",
    params(keyshare_policy::api::admin::ResolveQuery),
    responses(
        (status = 200, description = "A namespace or a peer.", body = keyshare_policy::api::admin::Resolved),
        (status = 400, description = "`invalid`: `artifact` is missing or empty, or an unknown query parameter.", body = ErrorBody),
        oa::AuthErrors,
        (status = 404, description = "`no_match`: no namespace or peer covers the name.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn resolve(
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
        Some(resolved) => Ok(HttpResponse::Ok().json(to_value(&resolved)?)),
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

    use serde_json::json;

    use super::*;

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
            Some(Resolved::Namespace {
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
            Some(Resolved::Peer {
                peer: "partner".into(),
                url: "https://p.example".into()
            })
        );
        assert_eq!(
            resolve_artifact(&index, &peers, "docker.io/library/x"),
            Some(Resolved::Peer {
                peer: "fallback".into(),
                url: "https://f.example".into()
            })
        );
        assert_eq!(resolve_artifact(&index, &peers, "quay.io/x"), None);
    }
}
