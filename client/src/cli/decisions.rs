//! `keyshare watch --listen`: a local decision endpoint for processes on
//! the same host that cannot link the library (admission webhooks,
//! registry plugins), answered from the watcher's always-fresh state
//! (`docs/watch.md`).
//!
//! * `POST /v1/decide` with `{"artifact", "key_ids"?, "keys"?,
//!   "certificates"?, "signed_at"?}`: the answer of `keyshare decide
//!   --output json`, plus the `timestamp_version` it was decided from.
//!   `keys` are PEM public keys (SubjectPublicKeyInfo) or TUF key objects,
//!   `certificates` PEM chains (leaf first); a private key anywhere in the
//!   request is refused (400) and never logged or kept. 200 whether the
//!   signer is trusted or not; 400 for a bad request, 503 before the first
//!   state.
//! * `GET /v1/state`: `{"timestamp_version", "root_version", "url"}` of
//!   the state decisions use.
//! * `GET /healthz`: 200 once a state is held, else 503.
//!
//! No authentication: it listens on a Unix socket (`unix:PATH`, whose file
//! permissions decide who may connect) or on a loopback address only, and
//! answers what any verifier of the organization may learn. Bodies are at
//! most 64 KiB with at most 16 signers. Decisions for artifacts the
//! organization delegates to a peer follow the peer over the network
//! (`keyshare decide` does the same); all others are answered from memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_client::{TrustState, Verifier};
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::SignerRef;

use super::verify::{parse_cert_chain, parse_public_key, verdict_json};
use super::Error;

/// The state decisions are made from, replaced by the watcher after each
/// change.
pub(crate) type Shared = Arc<RwLock<Option<Arc<TrustState>>>>;

/// Largest request body.
const MAX_BODY: usize = 64 * 1024;
/// Most signers in one request.
const MAX_SIGNERS: usize = 16;

/// Where the endpoint listens.
#[derive(Debug, Clone)]
pub(crate) enum Listen {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A loopback address.
    Loopback(SocketAddr),
}

impl Listen {
    /// `unix:PATH` or a loopback `ADDRESS:PORT`; any other address is
    /// refused (the endpoint has no authentication).
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(Error::Input("--listen unix: needs a socket path".into()));
            }
            return Ok(Self::Unix(path.into()));
        }
        let addr: SocketAddr = text.parse().map_err(|_| {
            Error::Input(format!(
                "--listen `{text}`: give unix:PATH or a loopback address such as 127.0.0.1:8440"
            ))
        })?;
        if !addr.ip().is_loopback() {
            return Err(Error::Input(format!(
                "--listen `{text}`: the decision endpoint has no authentication, so it listens on a Unix socket or a loopback address only"
            )));
        }
        Ok(Self::Loopback(addr))
    }
}

/// The running endpoint; stopped when dropped.
pub(crate) struct Endpoint {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    socket: Option<PathBuf>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[derive(Clone)]
struct AppData {
    shared: Shared,
    verifier: Verifier,
}

/// Binds `listen` (errors now, before the watch starts) and serves the
/// endpoint on a thread of its own.
pub(crate) fn start(
    listen: &Listen,
    shared: Shared,
    verifier: Verifier,
) -> Result<Endpoint, Error> {
    let data = AppData { shared, verifier };
    let make = move || {
        App::new()
            .app_data(web::Data::new(data.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY)
                    .error_handler(|e, _| {
                        actix_web::error::InternalError::from_response(
                            "",
                            refusal(
                                StatusCode::BAD_REQUEST,
                                "invalid",
                                &format!("the request body: {e}"),
                            ),
                        )
                        .into()
                    }),
            )
            .route("/v1/decide", web::post().to(decide))
            .route("/v1/state", web::get().to(state))
            .route("/healthz", web::get().to(healthz))
            .default_service(web::to(|| async {
                refusal(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "POST /v1/decide, GET /v1/state or GET /healthz",
                )
            }))
    };
    let server = HttpServer::new(make)
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1);
    let (server, socket) = match listen {
        Listen::Unix(path) => {
            if std::fs::symlink_metadata(path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            {
                // A socket left by a watcher that was killed.
                let _ = std::fs::remove_file(path);
            }
            let listener = std::os::unix::net::UnixListener::bind(path)
                .map_err(|e| Error::Input(format!("--listen unix:{}: {e}", path.display())))?;
            let server = server
                .listen_uds(listener)
                .map_err(|e| Error::Input(format!("--listen unix:{}: {e}", path.display())))?;
            (server, Some(path.clone()))
        }
        Listen::Loopback(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|e| Error::Input(format!("--listen {addr}: {e}")))?;
            let server = server
                .listen(listener)
                .map_err(|e| Error::Input(format!("--listen {addr}: {e}")))?;
            (server, None)
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server.run();
    let thread = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let handle = server.handle();
            let mut server = std::pin::pin!(server);
            tokio::select! {
                _ = &mut server => {}
                _ = stopped => {
                    let ((), _) = tokio::join!(handle.stop(true), server);
                }
            }
        });
    });
    Ok(Endpoint {
        stop: Some(stop),
        thread: Some(thread),
        socket,
    })
}

/// A JSON error answer.
fn refusal(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}

fn current(data: &AppData) -> Option<Arc<TrustState>> {
    data.shared
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// A decision query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    artifact: String,
    #[serde(default)]
    key_ids: Vec<String>,
    #[serde(default)]
    keys: Vec<Value>,
    #[serde(default)]
    certificates: Vec<String>,
    signed_at: Option<String>,
}

/// The signers of `q`, or why not.
fn signers(q: &Query) -> Result<Vec<SignerRef>, String> {
    let count = q.key_ids.len() + q.keys.len() + q.certificates.len();
    if count == 0 {
        return Err("name a signer: `key_ids`, `keys` or `certificates`".into());
    }
    if count > MAX_SIGNERS {
        return Err(format!("at most {MAX_SIGNERS} signers"));
    }
    let mut out: Vec<SignerRef> = q
        .key_ids
        .iter()
        .map(|id| SignerRef::KeyId(KeyId::new(id.as_str())))
        .collect();
    for (i, key) in q.keys.iter().enumerate() {
        let text = match key {
            Value::String(pem) => pem.clone(),
            other => other.to_string(),
        };
        if let Some(found) = keyshare_client::admin::private_key_in(&text) {
            return Err(format!(
                "keys[{i}] holds {found}: send the public key only (a private key never leaves its holder)"
            ));
        }
        out.push(SignerRef::PublicKey(
            parse_public_key(&text).map_err(|e| format!("keys[{i}]: {e}"))?,
        ));
    }
    for (i, pem) in q.certificates.iter().enumerate() {
        if let Some(found) = keyshare_client::admin::private_key_in(pem) {
            return Err(format!(
                "certificates[{i}] holds {found}: send the certificates only"
            ));
        }
        out.push(SignerRef::CertChain(
            parse_cert_chain(pem).map_err(|e| format!("certificates[{i}]: {e}"))?,
        ));
    }
    Ok(out)
}

async fn decide(data: web::Data<AppData>, query: web::Json<Query>) -> HttpResponse {
    let Some(state) = current(&data) else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_state",
            "no trust state yet: the watcher has not refreshed",
        );
    };
    let signers = match signers(&query) {
        Ok(s) => s,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, "invalid", &e),
    };
    let signed_at = match &query.signed_at {
        None => OffsetDateTime::now_utc(),
        Some(t) => match super::parse_rfc3339(t) {
            Ok(t) => t,
            Err(e) => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!("signed_at `{t}`: {e}"),
                )
            }
        },
    };
    match data
        .verifier
        .decide_in(&state, &query.artifact, &signers, signed_at)
        .await
    {
        Ok(verdict) => {
            let mut answer = verdict_json(&query.artifact, &verdict);
            if let Some(obj) = answer.as_object_mut() {
                obj.insert("timestamp_version".into(), json!(state.timestamp_version));
            }
            HttpResponse::Ok().json(answer)
        }
        Err(e) => refusal(StatusCode::BAD_GATEWAY, "peer", &e.to_string()),
    }
}

async fn state(data: web::Data<AppData>) -> HttpResponse {
    match current(&data) {
        Some(s) => HttpResponse::Ok().json(json!({
            "timestamp_version": s.timestamp_version,
            "root_version": s.root_version,
            "url": s.url,
        })),
        None => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_state",
            "no trust state yet",
        ),
    }
}

async fn healthz(data: web::Data<AppData>) -> HttpResponse {
    match current(&data) {
        Some(_) => HttpResponse::Ok().json(json!({"status": "ok"})),
        None => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_state",
            "no trust state yet",
        ),
    }
}
