//! The repository over HTTP: [`HttpTransport`] (GET with a size limit,
//! timeouts, and a strict redirect policy, see `docs/client-cache.md`) and
//! [`HttpFetcher`], the [`Fetcher`] of one repository on it; and
//! [`HttpSettings`], the timeouts, extra CA certificates and user agent
//! every HTTP client of keyshare shares (the verifier, the admin client,
//! `keyshare tuf`).
//!
//! Redirects never leave the origin (scheme, host and port) of the URL
//! asked for. The transport for peer services ([`HttpTransport::for_peers`])
//! also refuses to connect to a private or loopback address, checking every
//! address a host name resolves to (a custom DNS resolver), unless private
//! peers are allowed: a peer map cannot steer verifiers at services inside
//! their own network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use reqwest::StatusCode;

use keyshare_policy::metadata::RoleName;
use keyshare_policy::outbound::private_kind;

use super::{Fetcher, Missing};
use crate::verifier::Error;

/// Connect timeout of every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for a whole request (connect, send, read the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("keyshare/", env!("CARGO_PKG_VERSION"));
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
    /// keyshare will not send the request: the host resolves to a private
    /// or loopback address, or a redirect leads to another origin.
    #[error("refused to fetch {url}: {message}")]
    Refused {
        /// The URL asked for.
        url: String,
        /// Why.
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

/// What a wait for the next publish came back with
/// ([`HttpTransport::wait_for_change`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitAnswer {
    /// 200: the file is not the one held any more (a publish); its bytes
    /// (at most the limit asked for, plus one) and `ETag`, unverified: a
    /// refresh may start from them ([`Prefetched`]).
    Changed(Prefetched),
    /// 304: still the one held. `waited`: the server held the request
    /// (`Preference-Applied: wait`); a server that did not (a static
    /// mirror) is to be polled.
    Unchanged {
        /// Whether the server waited.
        waited: bool,
    },
    /// 503: the server has too many waiters; poll, or wait again later.
    Busy,
}

/// A file already fetched, with its `ETag`: handed to the next refresh
/// so it is not fetched again. Nothing in it is trusted: the refresh
/// verifies it like any answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prefetched {
    /// The body.
    pub bytes: Vec<u8>,
    /// The entity tag, if the server sent one.
    pub etag: Option<String>,
}

/// Why PEM CA certificates could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The PEM text does not parse.
    #[error("{0}")]
    Bad(String),
    /// It holds no certificate.
    #[error("no PEM certificate found")]
    Empty,
}

/// Parses the PEM certificates of `pem` (at least one): the one CA loader
/// of every HTTP client.
pub fn load_ca(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, CaError> {
    let certs =
        reqwest::Certificate::from_pem_bundle(pem).map_err(|e| CaError::Bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(CaError::Empty);
    }
    Ok(certs)
}

/// What every HTTP client of keyshare is built with: connect and request
/// timeouts, CA certificates trusted in addition to the system's, and
/// [`USER_AGENT`].
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Limit for connecting ([`CONNECT_TIMEOUT`], or the request timeout
    /// if shorter).
    pub connect_timeout: Duration,
    /// Limit for a whole request ([`DEFAULT_TIMEOUT`] by default).
    pub timeout: Duration,
    /// Extra trusted CA certificates (see [`load_ca`]).
    pub extra_ca: Vec<reqwest::Certificate>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}

impl HttpSettings {
    /// `timeout` per request, the system's CA certificates only.
    pub fn new(timeout: Duration) -> Self {
        Self {
            connect_timeout: CONNECT_TIMEOUT.min(timeout),
            timeout,
            extra_ca: Vec::new(),
        }
    }

    /// An async client builder with these settings (the redirect policy
    /// is the caller's).
    pub fn builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(USER_AGENT);
        for cert in &self.extra_ca {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder
    }
}

/// An async HTTP client for TUF repositories (reqwest, native-tls).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A client with `timeout` per request and the PEM certificates of
    /// `extra_ca` trusted in addition to the system's: for the repository
    /// the user configured, on whatever address it is.
    pub fn new(timeout: Duration, extra_ca: Option<&[u8]>) -> Result<Self, TransportError> {
        Self::build(timeout, extra_ca, None)
    }

    /// Like [`HttpTransport::new`], for peer services: unless
    /// `allow_private`, every host name is resolved through a resolver that
    /// refuses private and loopback addresses (the hosts of the
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` variables excepted: the proxy
    /// then connects on the client's behalf).
    pub fn for_peers(
        timeout: Duration,
        extra_ca: Option<&[u8]>,
        allow_private: bool,
    ) -> Result<Self, TransportError> {
        let resolver = (!allow_private).then(|| Arc::new(PublicOnly::from_env()));
        Self::build(timeout, extra_ca, resolver)
    }

    fn build(
        timeout: Duration,
        extra_ca: Option<&[u8]>,
        resolver: Option<Arc<PublicOnly>>,
    ) -> Result<Self, TransportError> {
        let mut settings = HttpSettings::new(timeout);
        if let Some(pem) = extra_ca {
            settings.extra_ca = load_ca(pem).map_err(|e| match e {
                CaError::Bad(e) => TransportError::Setup(format!("bad CA certificate: {e}")),
                CaError::Empty => TransportError::Setup("no PEM certificate in --server-ca".into()),
            })?;
        }
        let mut builder = settings.builder().redirect(redirect_policy());
        if let Some(resolver) = resolver {
            builder = builder.dns_resolver(resolver);
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
        let unreachable = |e: reqwest::Error| {
            let message = keyshare_policy::error::one_line(&e);
            if refused(&e) {
                TransportError::Refused {
                    url: url.to_owned(),
                    message,
                }
            } else {
                TransportError::Unreachable {
                    url: url.to_owned(),
                    message,
                }
            }
        };
        let mut request = self.client.get(url);
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(unreachable)?;
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
        let (bytes, etag) = read_capped(response, max_length, unreachable).await?;
        Ok(Fetched::Bytes { bytes, etag })
    }
}

/// A 200 answer's `ETag` and at most `max_length + 1` bytes of its body
/// (the endless-data defence: the caller refuses anything over
/// `max_length`).
async fn read_capped(
    mut response: reqwest::Response,
    max_length: u64,
    unreachable: impl Fn(reqwest::Error) -> TransportError,
) -> Result<(Vec<u8>, Option<String>), TransportError> {
    let etag = response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cap = usize::try_from(max_length.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(&unreachable)? {
        let room = cap.saturating_sub(bytes.len());
        bytes.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if bytes.len() >= cap {
            break;
        }
    }
    Ok((bytes, etag))
}

impl HttpTransport {
    /// Asks for `url` (`metadata/timestamp.json`) with `If-None-Match:
    /// etag` and `Prefer: wait=<wait seconds>` (the server's long poll,
    /// `docs/server.md`), the request's time limit raised by the wait. A
    /// new file's body (at most `max_length + 1` bytes) comes back
    /// unverified: the caller's refresh verifies it through the TUF
    /// workflow ([`Prefetched`]).
    pub async fn wait_for_change(
        &self,
        url: &str,
        etag: &str,
        wait: Duration,
        max_length: u64,
    ) -> Result<WaitAnswer, TransportError> {
        let seconds = wait.as_secs().max(1);
        let unreachable = |e: reqwest::Error| TransportError::Unreachable {
            url: url.to_owned(),
            message: keyshare_policy::error::one_line(&e),
        };
        let response = self
            .client
            .get(url)
            .header(reqwest::header::IF_NONE_MATCH, etag)
            .header("prefer", format!("wait={seconds}"))
            .timeout(wait + DEFAULT_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => {
                let (bytes, etag) = read_capped(response, max_length, unreachable).await?;
                Ok(WaitAnswer::Changed(Prefetched { bytes, etag }))
            }
            StatusCode::NOT_MODIFIED => Ok(WaitAnswer::Unchanged {
                waited: response.headers().contains_key("preference-applied"),
            }),
            StatusCode::SERVICE_UNAVAILABLE => Ok(WaitAnswer::Busy),
            status => Err(TransportError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            }),
        }
    }
}

/// A blocking HTTP client: reqwest's async client run to completion on a
/// private single-threaded runtime (as [`crate::blocking`] runs the
/// verifier), for the admin client and `keyshare tuf`. Not for use from
/// inside an async runtime.
#[derive(Debug, Clone)]
pub struct BlockingClient {
    runtime: Arc<tokio::runtime::Runtime>,
    client: reqwest::Client,
}

impl BlockingClient {
    /// Builds the client of `builder` (see [`HttpSettings::builder`]).
    pub fn new(builder: reqwest::ClientBuilder) -> Result<Self, TransportError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TransportError::Setup(format!("cannot start the I/O runtime: {e}")))?;
        // reqwest's client must be built inside a runtime context.
        let client = {
            let _guard = runtime.enter();
            builder
                .build()
                .map_err(|e| TransportError::Setup(e.to_string()))?
        };
        Ok(Self {
            runtime: Arc::new(runtime),
            client,
        })
    }

    /// The async client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Runs `future` (a request made with [`Self::client`]) to completion.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A client for the keyshare server a user named (`sign-blob --server`):
    /// the default settings, the PEM certificates of `server_ca` trusted
    /// besides the system's, no redirects.
    pub fn for_server(server_ca: Option<&[u8]>) -> Result<Self, TransportError> {
        let settings = HttpSettings {
            extra_ca: match server_ca {
                Some(pem) => {
                    load_ca(pem).map_err(|e| TransportError::Setup(format!("server CA: {e}")))?
                }
                None => Vec::new(),
            },
            ..HttpSettings::default()
        };
        Self::new(
            settings
                .builder()
                .redirect(reqwest::redirect::Policy::none()),
        )
    }

    /// Sends `request` and reads the answer: its status and its body, of
    /// at most `max` bytes (a longer body is an error, and no more of it is
    /// read). The error is one line.
    pub fn send(
        &self,
        request: reqwest::RequestBuilder,
        max: usize,
    ) -> Result<(u16, Vec<u8>), String> {
        let line = |e: reqwest::Error| keyshare_policy::error::one_line(&e).replace('\n', " ");
        self.block_on(async {
            let mut response = request.send().await.map_err(line)?;
            let status = response.status().as_u16();
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(line)? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > max {
                    return Err(format!("answer larger than {max} bytes"));
                }
            }
            Ok((status, bytes))
        })
    }
}

/// The base URL of a keyshare server a user named: `server` without a
/// trailing `/`, which must start with `http://` or `https://`.
pub fn server_base(server: &str) -> Result<&str, String> {
    let base = server.trim_end_matches('/');
    if base.starts_with("https://") || base.starts_with("http://") {
        Ok(base)
    } else {
        Err(format!(
            "server URL `{server}` must start with http:// or https://"
        ))
    }
}

/// An error answer's text for a message: its first 300 characters,
/// control characters left out.
pub fn answer_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(300)
        .filter(|c| !c.is_control())
        .collect()
}

/// The [`Fetcher`] of the repository at `base` (its base URL, no
/// trailing `/`) over `transport`.
#[derive(Debug, Clone, Copy)]
pub struct HttpFetcher<'a> {
    /// The transport.
    pub transport: &'a HttpTransport,
    /// The repository's base URL.
    pub base: &'a str,
    /// `metadata/timestamp.json` as a wait for the next publish already
    /// fetched it: answered once from here instead of the network.
    pub timestamp: Option<&'a std::sync::Mutex<Option<Prefetched>>>,
}

impl Fetcher for HttpFetcher<'_> {
    async fn get(&self, path: &str, limit: u64, etag: Option<&str>) -> Result<Fetched, Error> {
        if path == "metadata/timestamp.json" {
            let held = self.timestamp.and_then(|t| {
                t.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
            });
            if let Some(Prefetched { bytes, etag }) = held {
                return Ok(Fetched::Bytes { bytes, etag });
            }
        }
        let url = format!("{}/{path}", self.base);
        Ok(self.transport.get(&url, limit, etag).await?)
    }

    fn missing(&self, file: Missing<'_>) -> Error {
        match file {
            Missing::Role { role, name } => Error::Tuf {
                url: self.base.to_owned(),
                source: keyshare_policy::Error::Unavailable {
                    role: RoleName::new(role),
                    file: name.to_owned(),
                },
            },
            Missing::Target { file, .. } => Error::Transport(TransportError::Status {
                url: format!("{}/{file}", self.base),
                status: 404,
            }),
        }
    }
}

/// Why the transport would not connect or follow: carried inside reqwest's
/// error, found again by [`refused`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refusal(String);

/// Whether `e` was caused by a [`Refusal`].
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<Refusal>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// Follows 302, 303 and 307 only (a moved file, never a permanent move a
/// client would remember), at most [`MAX_REDIRECTS`] times, and only within
/// the origin (scheme, host, port) of the URL first asked for.
fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let status = attempt.status().as_u16();
        if !matches!(status, 302 | 303 | 307) {
            return attempt.stop();
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same_origin {
            attempt.follow()
        } else {
            let to = attempt.url().to_string();
            attempt.error(Refusal(format!(
                "redirect to {to} refused: redirects are followed only within the same scheme, host and port"
            )))
        }
    })
}

/// A resolver that refuses a name any of whose addresses is private or
/// loopback (all of them are checked, so a name cannot mix a public
/// address with an inward one). Proxy hosts are resolved unchecked.
#[derive(Debug, Default)]
struct PublicOnly {
    /// Hosts of the proxy variables, lowercase.
    proxies: Vec<String>,
}

impl PublicOnly {
    fn from_env() -> Self {
        let proxies = [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .filter_map(|value| {
            let value = if value.contains("://") {
                value
            } else {
                format!("http://{value}")
            };
            reqwest::Url::parse(&value)
                .ok()?
                .host_str()
                .map(str::to_ascii_lowercase)
        })
        .collect();
        Self { proxies }
    }
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let proxy = self.proxies.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !proxy {
                for addr in &addrs {
                    if let Some(kind) = private_kind(addr.ip()) {
                        return Err(Box::new(Refusal(format!(
                            "{host} resolves to {}, {kind}; peers on private or loopback addresses are contacted only with --allow-private-peers",
                            addr.ip()
                        ))) as Box<dyn std::error::Error + Send + Sync>);
                    }
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn outbound_requests_steered_inward_names_resolving_to_loopback_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resolve = |resolver: PublicOnly, host: &str| {
            let name: Name = host.parse().unwrap();
            rt.block_on(resolver.resolve(name))
        };
        // Refused by what `localhost` resolves to, not by its spelling.
        let e = resolve(PublicOnly::default(), "localhost").err().unwrap();
        assert!(refused(e.as_ref()), "{e}");
        assert!(e.to_string().contains("a loopback address"), "{e}");
        // A proxy the environment names is resolved unchecked.
        let proxy = PublicOnly {
            proxies: vec!["localhost".into()],
        };
        assert!(resolve(proxy, "localhost").unwrap().next().is_some());
    }
}
