//! A request body, read only when the handler asks for it — after
//! authentication and authorization — so a caller without the right to a
//! route costs the server no read and learns nothing about what the route
//! accepts.
//!
//! Extracting a [`Body`] reads nothing: it keeps the connection's payload
//! stream and the headers that matter. [`Body::bytes`] (or [`Body::json`])
//! then, in this order:
//!
//! 1. refuses a `Content-Encoding` other than `identity` with 415
//!    (`unsupported_encoding`): bodies are never decompressed, so a small
//!    compressed body cannot inflate into a large one;
//! 2. refuses a `Content-Length` over the limit with 413, unread;
//! 3. reads the stream chunk by chunk and stops with 413 as soon as the
//!    bytes read pass the limit (a body without a length, or one longer
//!    than it said, is cut off the same way);
//! 4. refuses a non-empty body whose `Content-Type` is not JSON with 415.

use std::future::{ready, Ready};

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{dev, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::{self, ApiError};
use super::AppState;

/// The unread request body of a handler, with what is needed to check it
/// before and while reading (see the module documentation). Extraction
/// never fails.
pub(crate) struct Body {
    payload: dev::Payload,
    limit: usize,
    /// `Content-Encoding`, when it is other than `identity`.
    encoding: Option<String>,
    /// `Content-Length`, when given: `Err` when it is not a number.
    length: Option<Result<usize, ()>>,
    /// Whether `Content-Type` is JSON (or absent).
    json_content: bool,
    /// The media type of `Content-Type` (lowercase, without parameters).
    media_type: Option<String>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("limit", &self.limit)
            .field("encoding", &self.encoding)
            .field("length", &self.length)
            .field("json_content", &self.json_content)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// Reads the body, at most the limit, or says why it is unusable.
    pub(crate) async fn bytes(self) -> Result<web::Bytes, ApiError> {
        if let Some(encoding) = &self.encoding {
            return Err(unsupported_encoding(encoding));
        }
        match self.length {
            Some(Ok(n)) if n > self.limit => return Err(error::too_large(self.limit)),
            Some(Err(())) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "the Content-Length header is not a number",
                ))
            }
            _ => {}
        }
        // Chunk by chunk, stopping as soon as the limit is passed.
        let stream = actix_web::body::BodyStream::new(self.payload);
        let bytes = actix_web::body::to_bytes_limited(stream, self.limit)
            .await
            .map_err(|_| error::too_large(self.limit))?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("could not read the request body: {e}"),
                )
            })?;
        if !self.json_content && !bytes.is_empty() {
            return Err(error::unsupported_media_type());
        }
        Ok(bytes)
    }

    /// Reads a body that must be of media type `media` (refused with 415
    /// otherwise, unread) and at most `max` bytes (or the configured limit
    /// when it is lower); as [`Body::bytes`] otherwise. For the binary
    /// protocols (`application/timestamp-query`).
    pub(crate) async fn bytes_of(
        mut self,
        media: &str,
        max: usize,
    ) -> Result<web::Bytes, ApiError> {
        if self.media_type.as_deref() != Some(media) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the request body must be `Content-Type: {media}`"),
            ));
        }
        self.limit = self.limit.min(max);
        self.json_content = true;
        self.bytes().await
    }

    /// Reads the body and parses it as JSON into `T` (whose request structs
    /// refuse unknown fields); errors name the JSON path of the bad field.
    pub(crate) async fn json<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        parse_json(&self.bytes().await?)
    }
}

/// The 415 answer for a compressed (or otherwise encoded) body.
fn unsupported_encoding(encoding: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_encoding",
        format!(
            "Content-Encoding `{encoding}` is not accepted: send the request body uncompressed (no Content-Encoding, or `identity`)"
        ),
    )
}

/// Parses JSON strictly, naming the path of the problem.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        error::json_error(&path, e.inner())
    })?;
    de.end().map_err(|e| error::json_error(".", &e))?;
    Ok(value)
}

/// The `Content-Encoding` of a request unless it is absent or only
/// `identity` (the header's text, or `(not text)`).
fn encoding(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).peekable();
    values.peek()?;
    let mut all = Vec::new();
    let mut identity = true;
    for value in values {
        let Ok(text) = value.to_str() else {
            return Some("(not text)".to_owned());
        };
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            identity &= coding.eq_ignore_ascii_case("identity");
        }
        all.push(text.trim().to_owned());
    }
    (!identity).then(|| all.join(", ").chars().take(100).collect())
}

/// Whether the `Content-Type` is JSON (`application/json`, `*/*+json`) or absent.
fn json_content(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_none_or(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || m.ends_with("+json")
            })
    })
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(super::DEFAULT_BODY_LIMIT, |s| s.body_limit);
        let headers = req.headers();
        let length = headers.get(header::CONTENT_LENGTH).map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or(())
        });
        ready(Ok(Self {
            payload: payload.take(),
            limit,
            encoding: encoding(headers),
            length,
            json_content: json_content(headers),
            media_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.split(';').next())
                .map(|m| m.trim().to_ascii_lowercase()),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_identity_or_no_content_encoding_is_accepted() {
        let with = |values: &[&str]| {
            let mut req = TestRequest::default();
            for v in values {
                req = req.append_header((header::CONTENT_ENCODING, *v));
            }
            encoding(req.to_http_request().headers())
        };
        assert_eq!(with(&[]), None);
        assert_eq!(with(&["identity"]), None);
        assert_eq!(with(&["Identity, identity"]), None);
        assert_eq!(with(&["gzip"]).as_deref(), Some("gzip"));
        assert_eq!(with(&["identity, br"]).as_deref(), Some("identity, br"));
        assert_eq!(
            with(&["identity", "deflate"]).as_deref(),
            Some("identity, deflate")
        );
    }
}
