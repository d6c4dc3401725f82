//! Peer keyshare services: put, list, remove.

use actix_web::{web, HttpResponse};

use keyshare_policy::api::admin::{PeerList, PutPeer};
use keyshare_policy::trust::Peer;

use super::{check_label, check_patterns, no_content, publish, read, to_value, Endpoint};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::Change;
use crate::store::Store;

#[utoipa::path(
    put,
    path = "/api/v1/peers/{name}",
    tag = "peers",
    summary = "Add or replace a peer keyshare service",
    params(("name" = String, Path, description = "The peer's name.")),
    request_body = keyshare_policy::api::admin::PutPeer,
    responses(
        (status = 200, description = "The peer as published.", body = keyshare_policy::trust::Peer),
        oa::BodyErrors,
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn put_peer(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::PutPeer.action(""))?;
    let req: PutPeer = body.json().await?;
    let peer = put_peer_as(&state, &caller, name.into_inner(), req).await?;
    Ok(HttpResponse::Ok().json(to_value(&peer)?))
}

/// Adds or replaces peer `name`, as `caller` (the API and the portal's
/// form); returns the peer as published.
pub(in crate::http) async fn put_peer_as(
    state: &AppState,
    caller: &Caller,
    name: String,
    req: PutPeer,
) -> Result<Peer, ApiError> {
    authorize(&caller.token, Endpoint::PutPeer.action(""))?;
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
        name,
        patterns: req.patterns,
        url: req.url,
        root: req.root,
        terminating: req.terminating,
    };
    publish(state, caller, Change::PutPeer { peer: peer.clone() }).await?;
    Ok(peer)
}

#[utoipa::path(
    get,
    path = "/api/v1/peers",
    tag = "peers",
    summary = "List the peers",
    responses(
        (status = 200, description = "Every peer, by name.", body = keyshare_policy::api::admin::PeerList),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_peers(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListPeers.action(""))?;
    let list = read(&state, Store::peers).await?;
    let answer = PeerList {
        peers: list.into_iter().map(|p| p.peer).collect(),
    };
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/peers/{name}",
    tag = "peers",
    summary = "Remove a peer",
    params(("name" = String, Path, description = "The peer's name.")),
    responses(
        (status = 204, description = "Removed."),
        oa::AuthErrors,
        (status = 404, description = "No such peer.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_peer(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    remove_peer_as(&state, &caller, name.into_inner()).await?;
    Ok(no_content())
}

/// Removes peer `name`, as `caller` (the API and the portal's form).
pub(in crate::http) async fn remove_peer_as(
    state: &AppState,
    caller: &Caller,
    name: String,
) -> Result<(), ApiError> {
    authorize(&caller.token, Endpoint::RemovePeer.action(""))?;
    publish(state, caller, Change::RemovePeer { name }).await?;
    Ok(())
}
