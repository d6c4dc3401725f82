//! HTTP for air gaps: `POST /api/v1/export` on the origin, and the
//! replica's read-only application.

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use openssl::ssl::SslAcceptorBuilder;
use serde::Deserialize;
use serde_json::json;

use keyshare_policy::datetime::rfc3339;
use keyshare_policy::layout::{METADATA_DIR, TARGETS_DIR};

use super::read::{is_clean_path, respond};
use super::{authorize, ApiError, AppState, Body, Caller, Endpoint};
use crate::airgap::{export as export_bundle, ReplicaFiles};
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;

/// Body of `POST /api/v1/export` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    /// A duration such as `30d`; default `airgap.valid_for`.
    valid_for: Option<String>,
}

/// `POST /api/v1/export`: org-admin only; answers the bundle
/// (`application/octet-stream`), built in memory on a blocking thread.
#[utoipa::path(
    post,
    path = "/api/v1/export",
    tag = "export",
    summary = "Export an air-gap bundle",
    request_body = Option<ExportRequest>,
    responses(
        (status = 200, description = "The signed bundle.", content_type = "application/octet-stream", body = oa::Binary,
            headers(("X-Keyshare-Bundle-Expires" = String, description = "When the bundle expires (RFC 3339)."))),
        (status = 400, description = "`invalid`: `valid_for` does not parse or exceeds `airgap.max_valid_for`; `malformed_json`.", body = ErrorBody),
        (status = 413, response = oa::TooLarge),
        (status = 415, response = oa::UnsupportedMedia),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn export(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::Export.action(""))?;
    let body = body.bytes().await?;
    let request: ExportRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ExportRequest::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            ApiError::invalid(&path, e.inner())
        })?
    };
    let valid_for = state.export.window(request.valid_for.as_deref())?;
    let publisher = state.publisher.clone();
    let now = state.now();
    let actor = caller.actor();
    let (bytes, exported) = web::block(move || {
        let mut out = Vec::new();
        export_bundle(&publisher, &actor, valid_for, now, &mut out, &mut |_, _| {})
            .map(|e| (out, e))
    })
    .await??;
    tracing::info!(
        actor = caller.actor(),
        timestamp_version = exported.timestamp_version,
        bytes = exported.bytes,
        "bundle exported"
    );
    let expires = rfc3339(exported.expires);
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"keyshare-{}.bundle\"",
                exported.timestamp_version
            ),
        ))
        .insert_header(("X-Keyshare-Bundle-Expires", expires))
        .body(bytes))
}

/// The replica's application: the TUF repository from the imported
/// state, `/healthz`, and 403 for every admin call.
pub fn replica_app_config(files: Arc<ReplicaFiles>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(files))
            .service(
                web::resource("/metadata/{file}")
                    .route(web::get().to(metadata))
                    .route(web::head().to(metadata)),
            )
            .service(
                web::resource("/targets/{path:.*}")
                    .route(web::get().to(target))
                    .route(web::head().to(target)),
            )
            .service(web::resource("/healthz").route(web::get().to(healthz)))
            .service(web::scope("/api").default_service(web::to(read_only)))
            .default_service(web::to(no_route));
    }
}

async fn metadata(
    files: web::Data<Arc<ReplicaFiles>>,
    req: HttpRequest,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve_file(&files, &req, METADATA_DIR, &file).await
}

async fn target(
    files: web::Data<Arc<ReplicaFiles>>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve_file(&files, &req, TARGETS_DIR, &path).await
}

async fn serve_file(
    files: &Arc<ReplicaFiles>,
    req: &HttpRequest,
    dir: &str,
    rest: &str,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found(format!("no imported file at {dir}/{rest}"));
    if !is_clean_path(rest) {
        return Err(not_found());
    }
    let path = format!("{dir}/{rest}");
    let files = files.clone();
    // A new import is loaded (and verified) here: not on the async runtime.
    let file = web::block(move || files.file(&path)).await?;
    let file = file.ok_or_else(not_found)?;
    Ok(respond(req, &file))
}

/// `/healthz`: the state served from now on, so a new import shows here
/// at once (loaded and verified like for a metadata request; a bundle that
/// fails to load leaves the state before, and says so in the log).
async fn healthz(files: web::Data<Arc<ReplicaFiles>>) -> Result<HttpResponse, ApiError> {
    let files = files.get_ref().clone();
    let (version, expires) = web::block(move || {
        if let Err(e) = files.refresh() {
            tracing::error!(error = %e, "cannot load the replica's new state; serving the old one");
        }
        files.status()
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "ok",
        "mode": "replica",
        "timestamp_version": version,
        "expires": expires.map(rfc3339),
    })))
}

async fn read_only() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::FORBIDDEN,
        "replica",
        "this keyshare-server is a read-only replica: changes are made at the origin and arrive here by bundle import",
    ))
}

async fn no_route(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Serves the replica on `listener` (TLS when `tls` is given) until
/// `shutdown` resolves, then stops gracefully.
pub async fn run_replica(
    listener: TcpListener,
    tls: Option<SslAcceptorBuilder>,
    files: Arc<ReplicaFiles>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    super::serve_app(
        listener,
        tls,
        move || replica_app_config(files.clone()),
        shutdown,
    )
    .await
}
