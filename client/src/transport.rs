//! HTTP transport of the verifier: GET with a size limit, timeouts, and a
//! strict redirect policy (see `docs/client-cache.md`).

use std::time::Duration;

use reqwest::redirect;
use reqwest::StatusCode;

/// Connect timeout of every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for a whole request (connect, send, read the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most HTTP redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No usable answer: connection refused, TLS failure, timeout, a
    /// refused redirect.
    #[error("cannot fetch {url}: {message}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// The cause.
        message: String,
    },
    /// The server answered with a status the workflow has no use for.
    #[error("unexpected answer from {url}: HTTP {status}")]
    Status {
        /// The URL asked for.
        url: String,
        /// The status.
        status: u16,
    },
    /// The client could not be built (a bad CA certificate).
    #[error("HTTP client: {0}")]
    Setup(String),
}

/// What a GET came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 200: at most `max_length + 1` bytes of the body, and its `ETag`.
    Bytes {
        /// The body (cut after `max_length + 1` bytes).
        bytes: Vec<u8>,
        /// The entity tag, if the server sent one.
        etag: Option<String>,
    },
    /// 404 or 403.
    NotFound,
    /// 304, for a request with `If-None-Match`.
    NotModified,
}

/// An async HTTP client for TUF repositories (reqwest, native-tls).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A client with `timeout` per request and the PEM certificates of
    /// `extra_ca` trusted in addition to the system's.
    pub fn new(timeout: Duration, extra_ca: Option<&[u8]>) -> Result<Self, TransportError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .redirect(redirect_policy())
            .user_agent(concat!("keyshare/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| TransportError::Setup(format!("bad CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(TransportError::Setup(
                    "no PEM certificate in --server-ca".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        Ok(Self { client })
    }

    /// GETs `url`, reading at most `max_length + 1` bytes of the body (the
    /// endless-data defence: the caller refuses anything over
    /// `max_length`). With `etag`, asks `If-None-Match` and may get
    /// [`Fetched::NotModified`].
    pub async fn get(
        &self,
        url: &str,
        max_length: u64,
        etag: Option<&str>,
    ) -> Result<Fetched, TransportError> {
        let unreachable = |e: reqwest::Error| TransportError::Unreachable {
            url: url.to_owned(),
            message: error_chain(&e),
        };
        let mut request = self.client.get(url);
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => return Ok(Fetched::NotFound),
            StatusCode::NOT_MODIFIED if etag.is_some() => return Ok(Fetched::NotModified),
            status => {
                return Err(TransportError::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                })
            }
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let cap = usize::try_from(max_length.saturating_add(1)).unwrap_or(usize::MAX);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            let room = cap.saturating_sub(bytes.len());
            bytes.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            if bytes.len() >= cap {
                break;
            }
        }
        Ok(Fetched::Bytes { bytes, etag })
    }
}

/// Follows 302, 303 and 307 only (a moved file, never a permanent move a
/// client would remember), at most [`MAX_REDIRECTS`] times, and only to
/// `https://` or to `http://` on a loopback host.
fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let status = attempt.status().as_u16();
        if !matches!(status, 302 | 303 | 307) {
            return attempt.stop();
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let url = attempt.url();
        let allowed = match url.scheme() {
            "https" => true,
            "http" => url.host_str().is_some_and(is_loopback),
            _ => false,
        };
        if allowed {
            attempt.follow()
        } else {
            let to = url.to_string();
            attempt.error(format!(
                "redirect to {to} refused: only https:// or loopback http:// is followed"
            ))
        }
    })
}

/// `localhost`, `127.x.y.z` or `[::1]`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}
