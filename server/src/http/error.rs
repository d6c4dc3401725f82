//! The API's one error type and the handlers that turn actix's own
//! extractor errors into it, so every error answer is
//! `{"error": {"code": "...", "message": "..."}}` (with `details` added
//! where a refusal has structured detail, e.g. a scope overlap).

use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::publisher::PublishError;
use crate::store;

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
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
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
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            if field.is_empty() || field == "." {
                message.to_string()
            } else {
                format!("{field}: {message}")
            },
        )
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
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some(details), Some(map)) = (&self.details, error.as_object_mut()) {
            map.insert("details".into(), details.clone());
        }
        response.json(json!({ "error": error }))
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            Self::internal(e)
        } else {
            let details = match &e {
                PublishError::Store(store) => store_details(store),
                _ => None,
            };
            let error = Self::new(status, e.code(), e.to_string());
            match details {
                Some(d) => error.with_details(d),
                None => error,
            }
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

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound { .. } => Self::not_found(e.to_string()),
            store::Error::AlreadyExists { .. } => Self::conflict(e.to_string()),
            store::Error::Revoked { .. } | store::Error::RevokedInNamespace { .. } => {
                Self::new(StatusCode::CONFLICT, "revoked", e.to_string())
            }
            store::Error::ScopeOverlap { .. } => {
                let error = Self::new(StatusCode::CONFLICT, "scope_overlap", e.to_string());
                match store_details(&e) {
                    Some(d) => error.with_details(d),
                    None => error,
                }
            }
            store::Error::Invalid { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid", e.to_string())
            }
            other => Self::internal(other),
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

/// A known path with a method it does not offer.
pub(crate) async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not offered on {}", req.method(), req.path()),
    )
    .error_response()
}
