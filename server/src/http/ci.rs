//! The CI endpoints: `POST /api/v1/ci/nonce`, `POST /api/v1/ci/delegations`
//! and `DELETE /api/v1/ci/delegations/{id}` (see `docs/ci.md`), and
//! `GET /api/v1/ci/evidence/{spki_sha256}`.
//!
//! The bearer credential is an OIDC ID token or a CI token; it is checked
//! before the body is read. The evidence of an ephemeral key takes none: it
//! is published data (the current bin and trust document that list the
//! key), answered with or without `[ci]`, from the published files. Every refusal is a JSON error whose code names
//! the reason (the status table in `http/error.rs`).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use keyshare_policy::api::ci::{EvidenceAnswer, Nonce};
use keyshare_policy::trust::Sha256Hex;

use keyshare_policy::datetime::rfc3339;

use super::auth::bearer;
use super::body::Body;
use super::error::ApiError;
use super::AppState;
use crate::ci::{CiIdentity, CiService, DelegationRequest};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let not_allowed = || web::to(super::error::method_not_allowed);
    cfg.service(
        web::resource("/api/v1/ci/nonce")
            .route(web::post().to(nonce))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/v1/ci/delegations")
            .route(web::post().to(delegate))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/v1/ci/delegations/{id}")
            .route(web::delete().to(end))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/v1/ci/evidence/{spki_sha256}")
            .route(web::get().to(evidence))
            .default_service(not_allowed()),
    );
}

fn service(state: &AppState) -> Result<Arc<CiService>, ApiError> {
    state.ci.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ci_not_configured",
            "CI delegations are not configured on this server (no [ci] section)",
        )
    })
}

/// The caller, from its bearer credential (on a blocking thread: store
/// reads and JWKS fetches).
async fn identify(
    state: &AppState,
    ci: &Arc<CiService>,
    req: &HttpRequest,
) -> Result<CiIdentity, ApiError> {
    let credential = bearer(req)?;
    let now = state.now();
    let ci = ci.clone();
    Ok(web::block(move || ci.authenticate(&credential, now)).await??)
}

async fn nonce(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ci = service(&state)?;
    let (nonce, expires) = ci.nonce(state.now())?;
    Ok(HttpResponse::Created().json(Nonce {
        expires_at: Some(rfc3339(expires)),
        nonce,
    }))
}

async fn delegate(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let ci = service(&state)?;
    let identity = identify(&state, &ci, &req).await?;
    let request: DelegationRequest = body.json().await?;
    let delegation = ci.delegate(&identity, request, state.now()).await?;
    tracing::info!(
        actor = %identity.actor,
        delegation = %delegation.id,
        not_after = %delegation.not_after,
        "granted a CI delegation"
    );
    Ok(HttpResponse::Created().json(delegation))
}

async fn end(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ci = service(&state)?;
    let identity = identify(&state, &ci, &req).await?;
    ci.end(&identity, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/ci/evidence/{spki_sha256}`: the delegation evidence of the
/// ephemeral key with that fingerprint (SHA-256 of its material, lowercase
/// hex), for `keyshare sign-blob` to keep with a signature. 404 when no
/// namespace lists the key as ephemeral now; 429 past
/// [`super::EVIDENCE_RATE_LIMIT`] a minute from one client address.
async fn evidence(
    state: web::Data<AppState>,
    req: HttpRequest,
    fingerprint: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .evidence_limit
        .admit(&super::client_address(&req), state.now())?;
    let fingerprint = Sha256Hex::parse(&fingerprint).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("the key fingerprint in the path: {e}"),
        )
    })?;
    let publisher = state.publisher.clone();
    let evidence = web::block(move || publisher.delegation_evidence(&fingerprint)).await??;
    if evidence.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no namespace lists this key as an ephemeral (CI) key",
        ));
    }
    Ok(HttpResponse::Ok().json(EvidenceAnswer { evidence }))
}
