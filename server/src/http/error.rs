//! The API's one error type and the handlers that turn actix's own
//! extractor errors into it, so every error answer is
//! `{"error": {"code": "...", "message": "..."}}` (with `details` added
//! where a refusal has structured detail, e.g. a scope overlap).
//!
//! It is also the one status table: the `From` impls below give every
//! domain error (store, publisher, CI, air gap) its status and code; the
//! domain errors themselves know nothing of HTTP.

use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::airgap::AirgapError;
use crate::ci::CiError;
use crate::publisher::{PublishError, RootRefusal};
use crate::store::{self, SingleUseKind};

/// An error answer: status, a short machine-readable code and a message
/// that names what to fix (a field, a name). Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Structured detail added to the error object as `details`, when the
    /// refusal has more to say than its message (the overlaps of a
    /// refused scope).
    details: Option<serde_json::Value>,
    /// The JSON path of the request field at fault, when one is (the
    /// portal shows the message next to that field).
    field: Option<String>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            field: None,
        }
    }

    /// The JSON path of the request field the error is about (`scopes[0]`,
    /// `key.keyval.public`), if it names one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The same error with `details` in its body.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The structured details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }

    /// 400 about one field of the request (`field` is its JSON path, or `.`).
    pub fn invalid(field: &str, message: impl fmt::Display) -> Self {
        let named = !(field.is_empty() || field == ".");
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            if named {
                format!("{field}: {message}")
            } else {
                message.to_string()
            },
        );
        if named {
            e.field = Some(field.to_owned());
        }
        e
    }

    /// 401: no usable bearer token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "already_exists", message)
    }

    /// 500, logged; the client learns nothing about the cause.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<crate::rate_limit::RateLimited> for ApiError {
    fn from(e: crate::rate_limit::RateLimited) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "rate limited: more than {} requests in {} from this address",
                e.limit, e.window
            ),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        response.json(ErrorBody {
            error: ErrorObject {
                code: self.code.to_owned(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        })
    }
}

/// The body of every error answer of the server (the API, the read API,
/// unknown routes): `{"error": {"code", "message", "details"?}}`. One
/// component schema of the OpenAPI document (`ErrorBody`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: ErrorObject,
}

/// The error object of an [`ErrorBody`].
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorObject {
    /// A short machine-readable code (`invalid`, `not_found`,
    /// `scope_overlap`, ...): the same code always means the same refusal.
    pub(crate) code: String,
    /// What to fix, for people: names the offending field (its JSON path,
    /// `scopes[0]: ...`) or parameter. Never carries a secret.
    pub(crate) message: String,
    /// Structured detail, where a refusal has more to say than its message
    /// (the overlaps of a refused scope, `scope_overlap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) details: Option<serde_json::Value>,
}

// The status table: every domain error's HTTP answer is decided here and
// nowhere else. A 5xx is logged and answers nothing about its cause.

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        Self::from(&e)
    }
}

impl From<&store::Error> for ApiError {
    fn from(e: &store::Error) -> Self {
        let (status, code) = match e {
            store::Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            store::Error::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            store::Error::Revoked { .. } | store::Error::RevokedInNamespace { .. } => {
                (StatusCode::CONFLICT, "revoked")
            }
            store::Error::ScopeOverlap { .. } => (StatusCode::CONFLICT, "scope_overlap"),
            // A document the store builds is refused by the policy parser
            // because of what a request asked to store (a key listed
            // twice): the request's fault, whichever path reports it.
            store::Error::Invalid { .. } | store::Error::Document { .. } => {
                (StatusCode::BAD_REQUEST, "invalid")
            }
            // The database is unreachable (for now): nothing was changed,
            // try again (with `Retry-After`). Logged; the cause is not sent.
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the store is unavailable");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; nothing was changed, try again later",
                );
            }
            other => return Self::internal(other),
        };
        let error = Self::new(status, code, e.to_string());
        match store_details(e) {
            Some(d) => error.with_details(d),
            None => error,
        }
    }
}

/// The `details` of a store refusal that has them.
fn store_details(e: &store::Error) -> Option<serde_json::Value> {
    match e {
        store::Error::ScopeOverlap {
            namespace,
            overlaps,
        } => Some(json!({ "namespace": namespace, "overlaps": overlaps })),
        _ => None,
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        Self::from(&e)
    }
}

impl From<&PublishError> for ApiError {
    fn from(e: &PublishError) -> Self {
        let (status, code) = match e {
            PublishError::Store(store) => return store.into(),
            // A root that is not the next version conflicts with the
            // current one; every other refused root is the request's fault.
            PublishError::Root(RootRefusal::NotNextVersion { .. }) => {
                (StatusCode::CONFLICT, "root_version")
            }
            PublishError::Root(_)
            | PublishError::Policy(
                keyshare_policy::Error::Malformed { .. } | keyshare_policy::Error::BadKey { .. },
            ) => (StatusCode::BAD_REQUEST, "invalid"),
            PublishError::Used(SingleUseKind::Nonce) => (StatusCode::BAD_REQUEST, "bad_nonce"),
            PublishError::Used(SingleUseKind::Token) => (StatusCode::UNAUTHORIZED, "replay"),
            PublishError::SameKey { .. } => (StatusCode::CONFLICT, "already_exists"),
            other => return Self::internal(other),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<CiError> for ApiError {
    fn from(e: CiError) -> Self {
        Self::from(&e)
    }
}

impl From<&CiError> for ApiError {
    fn from(e: &CiError) -> Self {
        let (status, code) = match e {
            CiError::MalformedToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            CiError::WrongIssuer(_) => (StatusCode::UNAUTHORIZED, "wrong_issuer"),
            CiError::WrongAudience(_) => (StatusCode::UNAUTHORIZED, "wrong_audience"),
            CiError::ExpiredToken(_) => (StatusCode::UNAUTHORIZED, "expired_token"),
            CiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            CiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            CiError::Replay(_) => (StatusCode::UNAUTHORIZED, "replay"),
            CiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            CiError::UnmatchedClaims(_) => (StatusCode::FORBIDDEN, "unmatched_claims"),
            CiError::NamespaceNotAllowed(_) => (StatusCode::FORBIDDEN, "namespace_not_allowed"),
            CiError::BadNonce(_) => (StatusCode::BAD_REQUEST, "bad_nonce"),
            CiError::BadProof(_) => (StatusCode::BAD_REQUEST, "bad_proof_of_possession"),
            CiError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            CiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            CiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            CiError::IssuerUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "issuer_unavailable")
            }
            CiError::Publish(p) => return p.into(),
            other => return Self::internal(other),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<AirgapError> for ApiError {
    fn from(e: AirgapError) -> Self {
        match e {
            AirgapError::Publish(p) => p.into(),
            AirgapError::Invalid(m) => ApiError::invalid("valid_for", m),
            other => ApiError::internal(other),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::internal(e)
    }
}

/// The 413 answer for a body over the limit.
pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// Maps `web::Json` errors (used only if a handler takes `web::Json`).
pub(crate) fn from_json_error(e: &JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => too_large(*limit),
        JsonPayloadError::ContentType => unsupported_media_type(),
        JsonPayloadError::Deserialize(e) => json_error(".", e),
        JsonPayloadError::Payload(p) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("could not read the request body: {p}"),
        ),
        other => ApiError::invalid(".", other),
    }
}

/// The 415 answer.
pub(crate) fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "request body must be JSON (Content-Type: application/json)",
    )
}

/// Maps a serde_json error at `path`: syntax errors are `malformed_json`,
/// the rest (wrong type, unknown or missing field, bad value) `invalid`.
pub(crate) fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("request body is not valid JSON: {e}"),
        ),
        Category::Data => ApiError::invalid(path, data_message(e)),
    }
}

/// The message of a JSON data error without serde_json's position suffix
/// (` at line 1 column 25`): the field path already says where.
fn data_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

pub(crate) fn from_path_error(e: &PathError) -> ApiError {
    ApiError::not_found(format!("bad path: {e}"))
}

pub(crate) fn from_query_error(e: &QueryPayloadError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid",
        format!("bad query string: {e}"),
    )
}

/// Every unmatched route.
pub(crate) async fn no_route(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// The default service of a resource that offers the methods `allow`
/// (`"GET, HEAD"`): any other method is answered by
/// [`method_not_allowed_answer`].
pub(crate) fn method_not_allowed(allow: impl Into<String>) -> actix_web::Route {
    let allow: String = allow.into();
    actix_web::web::to(move |req: actix_web::HttpRequest| {
        let answer = method_not_allowed_answer(&req, &allow);
        async move { answer }
    })
}

/// 405 for a known path with a method it does not offer, with the `Allow`
/// header RFC 9110 (§15.5.6) requires: the methods it does offer.
pub(crate) fn method_not_allowed_answer(req: &actix_web::HttpRequest, allow: &str) -> HttpResponse {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not offered on {} (only {allow})",
            req.method(),
            req.path()
        ),
    )
    .error_response();
    if let Ok(value) = header::HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document_error() -> store::Error {
        store::Error::Document {
            path: "namespaces/team-a/trust.json".into(),
            source: keyshare_policy::Error::Malformed {
                what: "team-a".into(),
                path: ".keys".into(),
                message: "key listed twice".into(),
            },
        }
    }

    #[test]
    fn a_store_error_answers_the_same_through_a_read_and_through_a_publish() {
        let read = ApiError::from(document_error());
        let publish = ApiError::from(PublishError::Store(document_error()));
        assert_eq!(read.status(), StatusCode::BAD_REQUEST);
        assert_eq!(read.code(), "invalid");
        assert_eq!(read, publish);
        let ci = ApiError::from(CiError::Publish(PublishError::Store(document_error())));
        assert_eq!(read, ci);
    }

    #[test]
    fn a_root_that_is_not_the_next_version_conflicts_and_other_refused_roots_are_invalid() {
        let next = ApiError::from(PublishError::from(RootRefusal::NotNextVersion {
            version: 3,
            current: 1,
        }));
        assert_eq!(next.status(), StatusCode::CONFLICT);
        assert_eq!(next.code(), "root_version");
        assert_eq!(
            next.message(),
            "root v3 is not the next version: the current root is v1, so v2 is expected"
        );
        let first = ApiError::from(PublishError::from(RootRefusal::NotVersionOne {
            version: 2,
        }));
        assert_eq!(first.status(), StatusCode::BAD_REQUEST);
        assert_eq!(first.code(), "invalid");
        assert!(
            first.message().starts_with(
                "a new repository starts from root version 1; this is version 2 (start from"
            ),
            "{}",
            first.message()
        );
    }
}
