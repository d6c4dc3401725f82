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
use super::error::{ApiError, ErrorBody};
use super::openapi as oa;
use super::AppState;
use crate::ci::{CiIdentity, CiService, DelegationRequest};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let not_allowed = super::error::method_not_allowed;
    cfg.service(
        web::resource("/api/v1/ci/nonce")
            .route(web::post().to(nonce))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/ci/delegations")
            .route(web::post().to(delegate))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/ci/delegations/{id}")
            .route(web::delete().to(end))
            .default_service(not_allowed("DELETE")),
    )
    .service(
        web::resource("/api/v1/ci/evidence/{spki_sha256}")
            .route(web::get().to(evidence))
            .default_service(not_allowed("GET")),
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
    Ok(ci.identify(credential, state.now()).await?)
}

#[utoipa::path(
    post,
    path = "/api/v1/ci/nonce",
    tag = "ci",
    summary = "A nonce to sign into a delegation request (no credential)",
    responses(
        (status = 201, description = "A nonce, good for one delegation until `expires_at`.", body = Nonce),
        (status = 404, description = "`ci_not_configured`: no `[ci]` section.", body = ErrorBody),
        (status = 500, response = oa::Internal),
    ),
)]
pub(super) async fn nonce(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ci = service(&state)?;
    let (nonce, expires) = ci.nonce(state.now())?;
    Ok(HttpResponse::Created().json(Nonce {
        expires_at: Some(rfc3339(expires)),
        nonce,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/ci/delegations",
    tag = "ci",
    summary = "A CI delegation: an ephemeral key listed in a namespace",
    request_body = keyshare_policy::api::ci::DelegationRequest,
    responses(
        (status = 201, description = "The delegation granted.", body = keyshare_policy::api::ci::Delegation),
        (status = 400, description = "`invalid`, `malformed_json`, `bad_body`, `bad_nonce`, `bad_proof_of_possession`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `wrong_issuer`, `wrong_audience`, `expired_token`, `bad_signature`, `replay`.", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a CI credential), `unmatched_claims`, `namespace_not_allowed`.", body = ErrorBody),
        (status = 404, description = "`ci_not_configured`, or no such namespace.", body = ErrorBody),
        (status = 409, description = "`already_exists`: the key is already listed; `revoked`.", body = ErrorBody),
        (status = 413, response = oa::TooLarge),
        (status = 415, response = oa::UnsupportedMedia),
        (status = 429, response = oa::RateLimited),
        (status = 503, description = "`issuer_unavailable`: the OIDC issuer's keys could not be fetched.", body = ErrorBody),
        (status = 500, response = oa::Internal),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delegate(
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

#[utoipa::path(
    delete,
    path = "/api/v1/ci/delegations/{id}",
    tag = "ci",
    operation_id = "end_delegation",
    summary = "End a CI delegation early",
    params(("id" = String, Path, description = "The delegation's id, `<namespace>.<key id>`.")),
    responses(
        (status = 204, description = "Ended."),
        (status = 400, description = "`invalid`: the id does not parse.", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `wrong_issuer`, `wrong_audience`, `expired_token`, `bad_signature`, `replay`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: not the identity that made the delegation, or not a CI credential.", body = ErrorBody),
        (status = 404, description = "`ci_not_configured`, or no such delegation.", body = ErrorBody),
        (status = 429, response = oa::RateLimited),
        (status = 503, description = "`issuer_unavailable`.", body = ErrorBody),
        (status = 500, response = oa::Internal),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn end(
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
#[utoipa::path(
    get,
    path = "/api/v1/ci/evidence/{spki_sha256}",
    tag = "ci",
    summary = "The delegation evidence of an ephemeral key (no credential: published data)",
    params(("spki_sha256" = keyshare_policy::trust::Sha256Hex, Path, description = "The key's fingerprint (SHA-256 of its material), 64 lowercase hex digits.")),
    responses(
        (status = 200, description = "The evidence, one per namespace that lists the key as ephemeral now.", body = EvidenceAnswer),
        (status = 400, description = "`invalid`: a malformed fingerprint.", body = ErrorBody),
        (status = 404, description = "`not_found`: no namespace lists the key as ephemeral.", body = ErrorBody),
        (status = 429, response = oa::RateLimited),
        (status = 500, response = oa::Internal),
    ),
)]
pub(super) async fn evidence(
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
