//! A request body read as bytes and parsed only when the handler asks,
//! after authorization: a caller without the right to a route learns
//! nothing about what the route accepts.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::{self, ApiError};
use super::AppState;

/// The raw request body, at most `AppState::body_limit` bytes, or why it
/// could not be read. Extraction never fails, so that authentication and
/// authorization answer first; [`Body::json`] reports body problems.
#[derive(Debug)]
pub(crate) enum Body {
    /// The bytes, with a JSON (or no) content type.
    Bytes(web::Bytes),
    /// Over the limit (in bytes).
    TooLarge(usize),
    /// A content type other than JSON.
    NotJson,
    /// Reading failed.
    Unreadable(String),
}

impl Body {
    /// The raw bytes, or why the body is unusable (as [`Body::json`]).
    pub(crate) fn bytes(&self) -> Result<web::Bytes, ApiError> {
        match self {
            Self::Bytes(b) => Ok(b.clone()),
            Self::TooLarge(limit) => Err(error::too_large(*limit)),
            Self::NotJson => Err(error::unsupported_media_type()),
            Self::Unreadable(m) => Err(ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "bad_body",
                format!("could not read the request body: {m}"),
            )),
        }
    }

    /// Parses the body as JSON into `T` (whose request structs refuse
    /// unknown fields); errors name the JSON path of the bad field.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.bytes()?)
    }
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

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(super::DEFAULT_BODY_LIMIT, |s| s.body_limit);
        let json_content = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.split(';').next())
                    .is_some_and(|m| {
                        let m = m.trim().to_ascii_lowercase();
                        m == "application/json" || m.ends_with("+json")
                    })
            })
            .unwrap_or(true);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            Ok(match bytes.await {
                Ok(b) if b.len() > limit => Self::TooLarge(limit),
                Ok(b) if !json_content && !b.is_empty() => Self::NotJson,
                Ok(b) => Self::Bytes(b),
                Err(e) => match e.as_error::<actix_web::error::PayloadError>() {
                    Some(actix_web::error::PayloadError::Overflow) => Self::TooLarge(limit),
                    _ => Self::Unreadable(e.to_string()),
                },
            })
        })
    }
}
