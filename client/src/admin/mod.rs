//! A blocking client of the server's admin API (`/api/v1/`, see
//! `docs/server.md`).
//!
//! [`AdminClient`] has one method per admin endpoint, in a file per
//! resource (`namespaces`, `documents`, `tokens`, `audit`); the request
//! structs callers fill are in `requests`, and are sent as the wire types
//! of `keyshare_policy::api`. Answers are returned as the server's JSON
//! ([`serde_json::Value`]). Every failure is an [`Error`]: the server's own refusals are
//! [`Error::Api`] carrying an [`AdminError`] (`status`, `code`, `message`
//! from the server's `{"error": {"code", "message"}}` body); transport
//! failures name the URL they failed on.
//!
//! Limits: connect timeout 10 s, whole request 30 s, answers of at most
//! 8 MiB, no redirects (the bearer token is never sent anywhere but the
//! configured server). The token is never part of an error, a `Debug`
//! output or a log.
//!
//! No endpoint takes a private key: every request body is searched for
//! private key material ([`private_key_in`]: PEM private keys of any kind,
//! `keyval.private`) and one that holds some is refused with
//! [`Error::Input`], naming where, before anything is sent.
//!
//! [`AdminClient::check_audit_log`] does not take the server's word for
//! the audit log: it fetches every record and recomputes the hash chain
//! here, checking it against audit heads the caller holds (the one in a
//! verified timestamp, heads a verifier cache remembered, heads written
//! down earlier).
//!
//! HTTP is reqwest with `native-tls` (the system's OpenSSL), the verifier's
//! client, run to completion on a private single-threaded runtime
//! ([`crate::fetch::BlockingClient`]), with the verifier's timeouts and CA
//! loading ([`crate::fetch::HttpSettings`]); see `docs/cli.md`.

mod audit;
mod documents;
mod namespaces;
mod private;
mod requests;
mod tokens;

use std::fmt;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

pub use private::private_key_in;
use private::refuse_private_material;
pub use requests::{
    AuditQuery, KeyMaterial, NewIdentity, NewKey, NewNamespace, NewNamespaceRevocation,
    NewRevocation, NewSubDelegation, PeerRoot, PeerSpec, RevokedSubject, TokenExpiry, TokenKind,
};

use crate::fetch::http::load_ca;
use crate::fetch::{BlockingClient, HttpSettings};

/// Largest answer read, bytes.
pub const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
/// Audit records asked for at once by [`AdminClient::check_audit_log`]
/// (the server's cap).
pub const AUDIT_PAGE: u32 = 1000;
/// Largest `timestamp.json` read by [`AdminClient::published_timestamp`].
const TIMESTAMP_MAX_BYTES: u64 = 16_384;

/// A refusal by the server: an HTTP status with the `code` and `message`
/// of its JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// HTTP status (4xx or 5xx).
    pub status: u16,
    /// The server's machine-readable code (`forbidden`, `invalid`, ...).
    pub code: String,
    /// The server's message (names the field or the object at fault).
    pub message: String,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for AdminError {}

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request.
    #[error("{0}")]
    Api(AdminError),
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The answer was larger than [`MAX_RESPONSE_BYTES`].
    #[error("answer from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit, bytes.
        limit: u64,
    },
    /// The answer was not what the API answers (not JSON, unexpected status).
    #[error("unexpected answer from {url}: {message}")]
    BadAnswer {
        /// The URL requested.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// The client could not be set up.
    #[error("{0}")]
    Config(String),
    /// What the caller gave cannot be sent (e.g. a private key where a
    /// public key belongs): refused before anything leaves the machine.
    #[error("{0}")]
    Input(String),
}

/// `Result` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A bearer token; never shown by `Debug`.
#[derive(Clone)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A client of one keyshare server's admin API, with one token.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: Token,
    http: BlockingClient,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// A path segment, percent-encoded but for RFC 3986's unreserved
/// characters ([`keyshare_policy::layout::percent_encode`]).
fn encode_segment(s: &str) -> String {
    keyshare_policy::layout::percent_encode(s)
}

impl AdminClient {
    /// A client of the server at `base_url` (`http://` or `https://`, no
    /// path needed) authenticating with `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Self> {
        Self::build(base_url, token, Vec::new())
    }

    /// Like [`new`](Self::new), and HTTPS servers are also trusted when
    /// their certificate chains to one of the PEM certificates in
    /// `ca_pem` (for a server with a private CA or a self-signed
    /// certificate).
    pub fn with_server_ca(base_url: &str, token: &str, ca_pem: &[u8]) -> Result<Self> {
        let certs =
            load_ca(ca_pem).map_err(|e| Error::Config(format!("server CA certificates: {e}")))?;
        Self::build(base_url, token, certs)
    }

    fn build(base_url: &str, token: &str, ca: Vec<reqwest::Certificate>) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| {
                Error::Config(format!(
                    "server URL `{base_url}` must start with http:// or https://"
                ))
            })?;
        if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Config(format!(
                "server URL `{base_url}` has no host or contains spaces"
            )));
        }
        // Refused without echoing the token.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(
                "the token is empty or has characters a bearer token cannot have".into(),
            ));
        }
        let settings = HttpSettings {
            extra_ca: ca,
            ..HttpSettings::default()
        };
        // No redirects: the token goes to the configured server only.
        let builder = settings
            .builder()
            .redirect(reqwest::redirect::Policy::none());
        let http = BlockingClient::new(builder).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            base,
            token: Token(token.to_owned()),
            http,
        })
    }

    /// The server's base URL, as used.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{path}", self.base)
    }

    /// Sends one request; `Value::Null` for an empty (204) answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        self.call_with_bytes(method, path, query, body.as_deref())
    }

    /// [`call`](Self::call) with a JSON body sent as these exact bytes.
    fn call_with_bytes(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Value> {
        if let Some(value) = body.and_then(|b| serde_json::from_slice::<Value>(b).ok()) {
            refuse_private_material(&value)?;
        }
        let url = self.url(path);
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| Error::Config(format!("HTTP method `{method}`: {e}")))?;
        let mut req = self
            .http
            .client()
            .request(method, &url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token.0))
            .header(ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let (status, bytes) = self.http.block_on(async {
            let response = req.send().await.map_err(|e| transport(&url, e))?;
            let status = response.status().as_u16();
            Ok::<_, Error>((
                status,
                read_capped(response, &url, MAX_RESPONSE_BYTES).await?,
            ))
        })?;
        if (200..300).contains(&status) {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| Error::BadAnswer {
                url,
                message: format!("status {status}, body is not JSON ({e})"),
            });
        }
        if status < 400 {
            return Err(Error::BadAnswer {
                url,
                message: format!("status {status} (redirects are not followed)"),
            });
        }
        Err(Error::Api(api_error(status, &bytes)))
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, &[], None)
    }

    pub(crate) fn delete(&self, path: &str) -> Result<()> {
        self.call("DELETE", path, &[], None).map(drop)
    }

    pub(crate) fn send<T: Serialize>(&self, method: &str, path: &str, body: &T) -> Result<Value> {
        let body = serde_json::to_value(body)
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        self.call(method, path, &[], Some(&body))
    }
}

/// Reads an answer of at most `limit` bytes ([`Error::TooLarge`] beyond).
async fn read_capped(mut response: reqwest::Response, url: &str, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| Error::Transport {
        url: url.to_owned(),
        message: format!("reading the answer: {}", one_line(e)),
    })? {
        bytes.extend_from_slice(&chunk);
        if u64::try_from(bytes.len()).map_or(true, |n| n > limit) {
            return Err(Error::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
    }
    Ok(bytes)
}

/// The server's JSON error, or a stand-in naming the status.
fn api_error(status: u16, body: &[u8]) -> AdminError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let e = v.get("error")?;
            Some((
                e.get("code")?.as_str()?.to_owned(),
                e.get("message")?.as_str()?.to_owned(),
            ))
        });
    match parsed {
        Some((code, message)) => AdminError {
            status,
            code,
            message,
        },
        None => {
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            AdminError {
                status,
                code: "http".into(),
                message: if text.trim().is_empty() {
                    "no error body".into()
                } else {
                    text.trim().to_owned()
                },
            }
        }
    }
}

/// The server could not be reached at `url`.
fn transport(url: &str, e: reqwest::Error) -> Error {
    Error::Transport {
        url: url.to_owned(),
        message: one_line(e),
    }
}

/// A one-line description of a transport error, without the URL (the
/// caller adds it).
fn one_line(e: reqwest::Error) -> String {
    keyshare_policy::error::one_line(&e.without_url()).replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn private_key_material_is_found_in_every_form_and_public_material_is_not() {
        for private in [
            "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGb\n-----END ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----MC4CAQAwBQYDK2VwBCIEI-----END PRIVATE KEY-----",
            r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab","private":"cd"}}"#,
        ] {
            assert!(private_key_in(private).is_some(), "{private}");
        }
        for public in [
            "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab"}}"#,
            "a description that mentions a private key",
            "{not json",
        ] {
            assert!(private_key_in(public).is_none(), "{public}");
        }
    }

    #[test]
    fn a_request_body_with_private_material_is_refused_naming_where() {
        let body = serde_json::json!({
            "name": "x",
            "keys": [{"id": "a", "key": {"keyval": {"public": "ab"}}},
                     {"id": "b", "key": {"keyval": {"public": "ab", "private": "cd"}}}],
        });
        let e = refuse_private_material(&body).unwrap_err();
        assert!(
            e.to_string().contains("at `keys[1].key.keyval.private`"),
            "{e}"
        );
        assert!(!e.to_string().contains("cd\""), "{e}");
        let body = serde_json::json!({"ca_certs": ["-----BEGIN PRIVATE KEY-----\nX\n-----END PRIVATE KEY-----"]});
        let e = refuse_private_material(&body).unwrap_err();
        assert!(e.to_string().contains("at `ca_certs[0]`"), "{e}");
        assert!(refuse_private_material(
            &serde_json::json!({"pem": "-----BEGIN CERTIFICATE-----"})
        )
        .is_ok());
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("team-a"), "team-a");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn error_body_of_the_server_becomes_admin_error() {
        let e = api_error(403, br#"{"error":{"code":"forbidden","message":"no"}}"#);
        assert_eq!(e.to_string(), "403 forbidden: no");
        let e = api_error(502, b"<html>\nbad gateway</html>");
        assert_eq!(e.code, "http");
        assert_eq!(e.message, "<html>bad gateway</html>");
    }

    #[test]
    fn new_refuses_bad_urls_and_tokens_without_echoing_the_token() {
        assert!(matches!(
            AdminClient::new("ftp://x", "t"),
            Err(Error::Config(_))
        ));
        let e = AdminClient::new("http://x", "sec ret").unwrap_err();
        assert!(!e.to_string().contains("sec ret"));
        let c = AdminClient::new("http://x/", "secret").unwrap();
        assert_eq!(c.base_url(), "http://x");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
