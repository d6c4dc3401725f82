//! The HTTP API: the read API (the TUF repository), the admin API under
//! `/api/v1/`, `/healthz` and `/metrics`, as one actix-web application;
//! and the air-gap replica's read-only application ([`replica_app_config`]).
//! Every route the server answers is registered from this folder.
//!
//! `docs/server.md` is the reference for every route, the authorization
//! matrix and the error shape. This module maps requests to the
//! [`Publisher`]: reads come from its in-memory file cache or from the store
//! (on a blocking thread), every write is one [`Publisher::apply`].
//!
//! * [`app_config`] registers everything on an actix [`web::ServiceConfig`]
//!   (tests use it with `actix_web::test`, no sockets);
//! * [`run`] serves it on a bound listener until a shutdown future resolves,
//!   then stops gracefully; [`run_tls`] does the same over TLS (OpenSSL);
//! * [`authorize`] is the authorization matrix, one function over
//!   [`Action`]s.
//!
//! Errors are always JSON, `{"error": {"code", "message"}}`, including
//! actix's own extractor errors (bad query strings) and unknown routes.
//! Request bodies are read only after the caller is authenticated and
//! authorized, never decompressed (a `Content-Encoding` other than
//! `identity` is refused with 415), and cut off at `limits.body_bytes`
//! while streaming (`body`); they are parsed strictly (unknown fields are
//! refused) into the policy crate's types — the request types of
//! `keyshare_policy::api`, which the client writes with, so both sides
//! share one wire vocabulary; answers are built from that module's types
//! too — and the error names the JSON path of the offending field. Tokens
//! and bodies are never logged. The admin API is `admin/`: the
//! [`Endpoint`] table and the request checks in its `mod.rs`, a file per
//! resource.
//!
//! The CI endpoints (`/api/v1/ci/...`) take an OIDC ID token or a CI token
//! as the bearer credential and hand the work to [`crate::ci::CiService`].
//!
//! `POST /api/v1/timestamp` (`tsa.rs`) is unauthenticated and binary: a
//! DER `TimeStampReq` in, a DER `TimeStampResp` out ([`crate::tsa::Tsa`]),
//! rate-limited per client address.
//!
//! Responses are not compressed either: actix-web is built without its
//! compression features.
//!
//! Tests: `cargo test -p keyshare-server --lib http` and
//! `cargo test -p keyshare-server --test 'http_*'`.

mod admin;
mod airgap;
mod auth;
mod body;
mod ci;
mod error;
mod openapi;
mod ops;
pub mod portal;
pub mod read;
pub mod tls;
mod tsa;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use openssl::ssl::SslAcceptorBuilder;
use time::OffsetDateTime;

use crate::clock::{self, Clock};
use crate::publisher::Publisher;

pub use admin::Endpoint;
pub use airgap::{replica_app_config, run_replica};
pub use auth::{authorize, Action, Caller};
pub(crate) use body::Body;
pub use error::ApiError;
pub use openapi::{document_json as openapi_json, OPENAPI_PATH};
pub use ops::HttpMetrics;

/// Default largest accepted request body (`limits.body_bytes`).
pub const DEFAULT_BODY_LIMIT: usize = 65_536;

/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The publisher (store, repository, file cache).
    pub publisher: Arc<Publisher>,
    /// The current time (injectable for tests).
    pub clock: Clock,
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// Request counters for `/metrics`.
    pub metrics: Arc<HttpMetrics>,
    /// Bundle windows for `POST /api/v1/export`.
    pub export: crate::airgap::ExportLimits,
    /// CI delegations (`[ci]`); `None` answers the CI endpoints with 404.
    pub ci: Option<Arc<crate::ci::CiService>>,
    /// `peers.allow_private_addresses`: `PUT /api/v1/peers/{name}` accepts
    /// URLs on private or loopback addresses (tests, local sidecars). Off
    /// by default: a peer must be `https://` to a public host.
    pub allow_private_peers: bool,
    /// The RFC 3161 timestamp authority (`[tsa]`); `None` answers
    /// `POST /api/v1/timestamp` with 404.
    pub tsa: Option<Arc<crate::tsa::Tsa>>,
    /// `GET /api/v1/ci/evidence/...` per client address
    /// ([`EVIDENCE_RATE_LIMIT`] a minute): unauthenticated, and each answer
    /// parses published metadata.
    pub evidence_limit: Arc<crate::rate_limit::RateLimiter>,
    /// Readers waiting for the next publish (`limits.max_waiters`).
    pub waiters: Arc<read::Waiters>,
    /// The portal's sessions (`/ui/`).
    pub portal: Arc<portal::Portal>,
}

pub use crate::config::DEFAULT_MAX_WAITERS;

/// Delegation evidence requests a client address may make per minute
/// (a signing job makes one per signature).
pub const EVIDENCE_RATE_LIMIT: u32 = 600;

impl AppState {
    /// State with the system clock, the default body limit and fresh metrics.
    pub fn new(publisher: Arc<Publisher>) -> Self {
        Self {
            publisher,
            clock: clock::system(),
            body_limit: DEFAULT_BODY_LIMIT,
            metrics: Arc::new(HttpMetrics::default()),
            export: crate::airgap::ExportLimits::default(),
            ci: None,
            allow_private_peers: false,
            tsa: None,
            evidence_limit: Arc::new(crate::rate_limit::RateLimiter::new(
                EVIDENCE_RATE_LIMIT,
                time::Duration::minutes(1),
            )),
            waiters: Arc::new(read::Waiters::new(DEFAULT_MAX_WAITERS)),
            portal: Arc::new(portal::Portal::default()),
        }
    }

    /// Now, by the state's clock.
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }
}

/// The rate-limit identity of a client: its IPv4 address, or the /64 of
/// its IPv6 address (one host usually holds a whole /64).
pub(crate) fn client_address(req: &actix_web::HttpRequest) -> String {
    match req.peer_addr().map(|a| a.ip()) {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = ip.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_owned(),
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// Registers the whole application: use as
/// `App::new().configure(http::app_config(state))`.
///
/// Every route sits in one scope wrapped by the request logger/counter, and
/// anything unmatched is a 404 JSON error.
pub fn app_config(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let limit = state.body_limit;
        cfg.app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(|e, _| error::from_json_error(&e).into()),
            )
            .app_data(
                web::PathConfig::default().error_handler(|e, _| error::from_path_error(&e).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| error::from_query_error(&e).into()),
            )
            .service(
                web::scope("")
                    .wrap(actix_web::middleware::from_fn(ops::observe))
                    .configure(read::routes)
                    .configure(ops::routes)
                    // Before the admin routes, whose patterns a CI request
                    // would otherwise be matched against one by one.
                    .configure(ci::routes)
                    .configure(tsa::routes)
                    .configure(openapi::routes)
                    .configure(admin::routes)
                    .configure(portal::routes)
                    .default_service(web::to(error::no_route)),
            );
    }
}

/// Serves the application on `listener` until `shutdown` resolves, then
/// stops accepting connections and lets requests in flight finish (up to
/// 10 seconds).
///
/// Signals are not handled here: `main` turns them into `shutdown`.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve(listener, None, state, shutdown).await
}

/// Like [`run`], but every connection on `listener` is TLS, terminated with
/// `tls` (certificate, key and protocol limits already set; actix adds the
/// `http/1.1` ALPN protocol). Plain HTTP on the listener fails the handshake.
pub async fn run_tls(
    listener: TcpListener,
    tls: SslAcceptorBuilder,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve(listener, Some(tls), state, shutdown).await
}

async fn serve(
    listener: TcpListener,
    tls: Option<SslAcceptorBuilder>,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_app(listener, tls, move || app_config(state.clone()), shutdown).await
}

/// Serves the application `configure()` builds (once per worker) on
/// `listener`, TLS when `tls` is given, until `shutdown` resolves; then
/// stops gracefully (in-flight requests finish, up to the shutdown timeout).
pub(crate) async fn serve_app<F, C>(
    listener: TcpListener,
    tls: Option<SslAcceptorBuilder>,
    configure: F,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    F: Fn() -> C + Send + Clone + 'static,
    C: FnOnce(&mut web::ServiceConfig),
{
    let server = HttpServer::new(move || App::new().configure(configure()))
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs());
    let server = match tls {
        Some(tls) => server.listen_openssl(listener, tls)?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            tracing::info!("shutting down");
            // The server future runs the command loop that carries out the
            // stop: poll both.
            let ((), result) = tokio::join!(handle.stop(true), server);
            result
        }
    }
}
