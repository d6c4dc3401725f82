//! The read API: the TUF repository, served from the publisher's cache.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use keyshare_policy::layout::{METADATA_DIR, TARGETS_DIR};

use super::error::ApiError;
use super::AppState;
use crate::publisher::CachedFile;

/// `Cache-Control` of every file but `timestamp.json`.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metadata/{file}")
            .route(web::get().to(metadata))
            .route(web::head().to(metadata))
            .default_service(web::to(super::error::method_not_allowed)),
    )
    .service(
        web::resource("/targets/{path:.*}")
            .route(web::get().to(target))
            .route(web::head().to(target))
            .default_service(web::to(super::error::method_not_allowed)),
    );
}

async fn metadata(
    state: web::Data<AppState>,
    req: HttpRequest,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve(&state, &req, METADATA_DIR, &file)
}

async fn target(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve(&state, &req, TARGETS_DIR, &path)
}

/// True for a relative path of plain segments: no empty segment, no `.`
/// or `..`, no backslash or control character.
pub(crate) fn is_clean_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn serve(
    state: &AppState,
    req: &HttpRequest,
    dir: &str,
    rest: &str,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found(format!("no published file at {dir}/{rest}"));
    if !is_clean_path(rest) {
        return Err(not_found());
    }
    let path = format!("{dir}/{rest}");
    let file = state.publisher.file(&path).ok_or_else(not_found)?;
    Ok(respond(req, &file))
}

pub(crate) fn respond(req: &HttpRequest, file: &CachedFile) -> HttpResponse {
    let cache = if file.immutable {
        IMMUTABLE
    } else {
        "no-cache"
    };
    if none_match(req, &file.etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, file.etag.clone()))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish();
    }
    let content_type = if file.path.ends_with(".json") {
        "application/json"
    } else if file.path.ends_with(".pem") {
        "application/x-pem-file"
    } else {
        "application/octet-stream"
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, file.etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache))
        .content_type(content_type);
    if req.method() == actix_web::http::Method::HEAD {
        // Headers only (the in-process test service does not strip bodies).
        return response.finish();
    }
    response.body(file.bytes.to_vec())
}

/// True when `If-None-Match` lists `etag` (weak comparison) or is `*`.
fn none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_empty_segments_are_not_clean() {
        for bad in [
            "", "..", "a/../b", "./a", "a//b", "a/", "/a", "a\\b", "a/..",
        ] {
            assert!(!is_clean_path(bad), "{bad}");
        }
        for ok in [
            "1.root.json",
            "namespaces/a/abc.trust.json",
            "org/roots/x.pem",
        ] {
            assert!(is_clean_path(ok), "{ok}");
        }
    }
}
