//! The read API: the TUF repository, served from the publisher's cache.
//!
//! **Waiting for the next publish.** `GET /metadata/timestamp.json` with
//! `If-None-Match: <the ETag the client holds>` and `Prefer: wait=N`
//! (RFC 7240, seconds, at most [`MAX_WAIT_SECONDS`]) is a long poll: when
//! the client's copy is current the answer is held until a publish
//! replaces the timestamp (200 with the new one, at once) or the wait ends
//! (304), and says `Preference-Applied: wait=N`. A client whose copy is
//! already old gets the current one at once. The waiters are futures on
//! the server's workers, no thread each, counted against
//! `limits.max_waiters` ([`Waiters`]): past it the answer is 503
//! `too_many_waiters` with `Retry-After: 1`, and `/metrics` reports them.
//! The answer carries nothing a client must trust beyond what the file
//! itself proves: it is the same signed timestamp a poll would get. A
//! static mirror ignores `Prefer` and answers at once, so the same client
//! code polls it (`docs/server.md`, "Waiting for changes").

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// The longest a reader may wait for the next publish, seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// Readers waiting for the next publish, counted against a cap.
#[derive(Debug)]
pub struct Waiters {
    waiting: AtomicUsize,
    max: usize,
    refused: AtomicU64,
}

impl Waiters {
    /// At most `max` waiting at once (0: waiting is off, and every answer
    /// is immediate, as a static mirror's).
    pub fn new(max: usize) -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            max,
            refused: AtomicU64::new(0),
        }
    }

    /// Readers waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits refused at the cap since the server started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A place among the waiters, given back when dropped; `None` at the cap.
    fn enter(self: &Arc<Self>) -> Option<Waiting> {
        let entered = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if entered {
            Some(Waiting(self.clone()))
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// One waiter's place ([`Waiters::enter`]).
struct Waiting(Arc<Waiters>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

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
        return Ok(super::error::method_not_allowed_answer(req, "GET, HEAD"));
    }
    if method == Method::GET
        && dir == METADATA_DIR
        && rest == "timestamp.json"
        && state.waiters.max() > 0
    {
        if let Some(wait) = prefer_wait(req) {
            return long_poll(state, req, wait).await;
        }
    }
    serve(state, req, dir, rest).await
}

/// The wait a request asks for with `Prefer: wait=N` (RFC 7240), capped at
/// [`MAX_WAIT_SECONDS`]; `None` without one (or `wait=0`, or a value that
/// is not a number of seconds: ignored, as RFC 7240 says).
fn prefer_wait(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .next()
        .filter(|w| *w > 0)
        .map(|w| w.min(MAX_WAIT_SECONDS))
}

/// The long poll of the module docs.
async fn long_poll(
    state: &AppState,
    req: &HttpRequest,
    wait: u64,
) -> Result<HttpResponse, ApiError> {
    let mut changes = state.publisher.timestamp_watch();
    let held = changes.borrow_and_update().clone();
    let Some(current) = held else {
        return serve(state, req, METADATA_DIR, "timestamp.json").await;
    };
    if !none_match(req, &current.etag) {
        return Ok(respond(req, &current));
    }
    let Some(_waiting) = state.waiters.enter() else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_waiters",
            format!(
                "{} readers are waiting for the next publish already (limits.max_waiters): poll again, or retry the wait in a moment",
                state.waiters.max()
            ),
        ));
    };
    let file = match tokio::time::timeout(Duration::from_secs(wait), changes.changed()).await {
        Ok(Ok(())) => changes.borrow_and_update().clone().unwrap_or(current),
        // The wait ended, or the publisher is gone (shutting down).
        Ok(Err(_)) | Err(_) => current,
    };
    let mut response = respond(req, &file);
    if let Ok(applied) = header::HeaderValue::from_str(&format!("wait={wait}")) {
        response.headers_mut().insert(
            header::HeaderName::from_static("preference-applied"),
            applied,
        );
    }
    Ok(response)
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

/// Serves a published file: from memory, or (an older version, or a file
/// that does not exist) from the store on a blocking thread, since the
/// store blocks (PostgreSQL's client must not run on the async workers)
/// and waits for the publisher's lock during a publish.
async fn serve(
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
    let file = state
        .publisher
        .file_from_store(path)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
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
