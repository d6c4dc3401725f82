//! `POST /api/v1/timestamp`: the RFC 3161 timestamp authority over HTTP
//! (RFC 3161 §3.4): `Content-Type: application/timestamp-query` in,
//! `application/timestamp-reply` out (see `docs/tsa.md`).
//!
//! Unauthenticated, so it is limited per client address (`tsa.rate_limit`
//! per `tsa.rate_window`; an IPv6 client by its /64) before the body is
//! read: 429. Behind a reverse proxy every client has the proxy's address:
//! limit there instead (or raise the limit). What never reaches the
//! protocol is a JSON error: 404 `tsa_not_configured` when `tsa.enabled`
//! is off, 415 for another media type or a `Content-Encoding`, 413 for a
//! body over 4 KiB. Everything else is a DER `TimeStampResp`: granted or
//! rejected (HTTP 200, the `PKIStatusInfo` says why), or `systemFailure`
//! (HTTP 500).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::body::Body;
use super::error::{ApiError, ErrorBody};
use super::openapi as oa;
use super::AppState;
use crate::tsa::{Outcome, MAX_REQUEST_BYTES, QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/timestamp")
            .route(web::post().to(timestamp))
            .default_service(super::error::method_not_allowed("POST")),
    );
}

#[utoipa::path(
    post,
    path = "/api/v1/timestamp",
    tag = "timestamp",
    summary = "RFC 3161 timestamp (no credential)",
    request_body(content = oa::Binary, content_type = "application/timestamp-query", description = "A DER `TimeStampReq`, at most 4 KiB."),
    responses(
        (status = 200, description = "A DER `TimeStampResp`: granted with the token, or a rejection with a failInfo.", content_type = "application/timestamp-reply", body = oa::Binary),
        (status = 404, description = "`tsa_not_configured`: `tsa.enabled = false`.", body = ErrorBody),
        (status = 413, response = oa::TooLarge),
        (status = 415, description = "`unsupported_media_type` (another media type), `unsupported_encoding`.", body = ErrorBody),
        (status = 429, response = oa::RateLimited),
        (status = 500, description = "A DER `TimeStampResp` with `systemFailure`, or a JSON error.", content(
            (oa::Binary = "application/timestamp-reply"),
            (ErrorBody = "application/json"),
        )),
    ),
)]
pub(super) async fn timestamp(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let tsa = state.tsa.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "tsa_not_configured",
            "the timestamp authority is off on this server (tsa.enabled = false)",
        )
    })?;
    let now = state.now();
    tsa.admit(&super::client_address(&req), now)?;
    let request = body.bytes_of(QUERY_MEDIA_TYPE, MAX_REQUEST_BYTES).await?;
    let answer = web::block(move || tsa.answer(&request, now))
        .await
        .map_err(ApiError::internal)?;
    let status = match &answer.outcome {
        Outcome::Granted { serial } => {
            tracing::debug!(serial = %serial, "issued a timestamp token");
            StatusCode::OK
        }
        Outcome::Rejected { fail, reason } => {
            tracing::info!(fail = ?fail, reason = %reason, "refused a timestamp request");
            StatusCode::OK
        }
        Outcome::Failed(cause) => {
            tracing::error!(error = %cause, "timestamp authority failure");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    Ok(HttpResponse::build(status)
        .content_type(REPLY_MEDIA_TYPE)
        .body(answer.der))
}
