//! The read API: the TUF repository, served from the publisher's cache.

use std::borrow::Cow;

use actix_web::http::{header, Method};
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};

use keyshare_policy::layout::{METADATA_DIR, TARGETS_DIR};

use super::error::ApiError;
use super::AppState;
use crate::publisher::CachedFile;

/// `Cache-Control` of every file but `timestamp.json`.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The route labels of the repository reads, as `/metrics` and the
/// request log name them.
pub(crate) const METADATA_ROUTE: &str = "/metadata/{file}";
/// See [`METADATA_ROUTE`].
pub(crate) const TARGETS_ROUTE: &str = "/targets/{path:.*}";
/// The label of a request no route matched.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The repository reads: `/metadata/{file}` (one path segment) and
/// `/targets/{path}` (any number of segments), GET and HEAD.
///
/// Each is a scope with a static prefix whose default service reads the
/// rest of the path once, rather than a resource pattern: actix-web matches
/// a tail pattern such as `/targets/{path:.*}` with a regular expression on
/// every request, which cost about a third of the CPU of a read. The rest
/// is percent-decoded exactly as actix's path extractor did (the router's
/// path keeps `%`, `/` and `+` encoded; everything is decoded once), then
/// checked by [`is_clean_path`] before the lookup, so `..`, `.`, empty
/// segments and their percent-encoded spellings are 404s and never reach
/// the store. The route label (`/metrics`, the request log) is the pattern
/// the resource had, recorded in the request's extensions ([`RouteLabel`]).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/metadata").default_service(web::to(metadata)))
        .service(web::scope("/targets").default_service(web::to(target)));
}

/// The route a request was answered by, for handlers that route
/// themselves (see [`routes`]); read by the request observer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteLabel(pub(crate) &'static str);

async fn metadata(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // `/metadata/{file}`: exactly one non-empty segment after the prefix.
    let rest = req.match_info().unprocessed();
    let file = match rest.strip_prefix('/') {
        Some(file) if !file.is_empty() && !file.contains('/') => file,
        _ => return Ok(unmatched(req.clone()).await),
    };
    let file = percent_decode(file);
    read(&state, &req, METADATA_DIR, METADATA_ROUTE, &file).await
}

async fn target(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // `/targets/{path:.*}`: anything after `/targets/` (empty is a 404).
    let rest = req.match_info().unprocessed();
    let Some(path) = rest.strip_prefix('/') else {
        return Ok(unmatched(req.clone()).await);
    };
    let path = percent_decode(path);
    read(&state, &req, TARGETS_DIR, TARGETS_ROUTE, &path).await
}

async fn read(
    state: &AppState,
    req: &HttpRequest,
    dir: &str,
    route: &'static str,
    rest: &str,
) -> Result<HttpResponse, ApiError> {
    req.extensions_mut().insert(RouteLabel(route));
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return Ok(super::error::method_not_allowed(req.clone()).await);
    }
    serve(state, req, dir, rest)
}

/// A path under a read prefix that is not of the route's shape: what the
/// router answered for a path no route matched.
async fn unmatched(req: HttpRequest) -> HttpResponse {
    req.extensions_mut().insert(RouteLabel(UNMATCHED_ROUTE));
    super::error::no_route(req).await
}

/// Decodes every `%XX` (two hex digits) of `s` once; anything else is kept
/// as it is, and bytes that are not UTF-8 become U+FFFD: what actix's path
/// extractor made of a path parameter (so such a name matches no file).
pub(crate) fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|&c| (c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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
