//! Operations: `/healthz`, `/metrics` (Prometheus text format) and the
//! per-request observer (a tracing span and a counter per route and status).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, HttpResponse};
use serde_json::json;
use tracing::Instrument as _;

use super::error::ApiError;
use super::read::{RouteLabel, UNMATCHED_ROUTE};
use super::AppState;

/// Request counters by route pattern and status.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl HttpMetrics {
    /// Counts one request.
    pub fn record(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// The requests counted for `route` and `status`.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(route.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<((String, u16), u64)> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(super::error::method_not_allowed("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(super::error::method_not_allowed("GET")),
    );
}

/// 200 `{"status":"ok"}` when the store answers a query.
async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let publisher = state.publisher.clone();
    match web::block(move || publisher.read(|s| s.audit_head())).await {
        Ok(Ok(_)) => Ok(HttpResponse::Ok().json(json!({ "status": "ok" }))),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: store does not answer");
            Err(ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store does not answer",
            ))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(render(&state))
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the server's metrics.
pub(crate) fn render(state: &AppState) -> String {
    let p = state.publisher.metrics();
    let mut out = String::new();
    // Writing to a String cannot fail: the results are ignored.
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "keyshare_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
    );
    for ((route, status), n) in state.metrics.snapshot() {
        let _ = writeln!(
            out,
            "keyshare_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(&route)
        );
    }
    family(
        &mut out,
        "keyshare_publish_total",
        "counter",
        "Publishes since the server started.",
    );
    let _ = writeln!(out, "keyshare_publish_total {}", p.publishes);
    family(
        &mut out,
        "keyshare_publish_seconds_total",
        "counter",
        "Time spent publishing since the server started, seconds.",
    );
    let _ = writeln!(
        out,
        "keyshare_publish_seconds_total {}",
        p.publish_seconds_total
    );
    family(
        &mut out,
        "keyshare_publish_last_seconds",
        "gauge",
        "Duration of the last publish, seconds.",
    );
    let _ = writeln!(
        out,
        "keyshare_publish_last_seconds {}",
        p.last_publish_seconds
    );
    family(
        &mut out,
        "keyshare_metadata_version",
        "gauge",
        "Current version of each role's metadata.",
    );
    for (role, version) in &p.versions {
        let _ = writeln!(
            out,
            "keyshare_metadata_version{{role=\"{}\"}} {version}",
            label(role)
        );
    }
    family(
        &mut out,
        "keyshare_read_waiters",
        "gauge",
        "Readers waiting for the next publish (long polls of metadata/timestamp.json).",
    );
    let _ = writeln!(out, "keyshare_read_waiters {}", state.waiters.waiting());
    let (lookups, lookups_waiting) = state.publisher.store_lookups();
    family(
        &mut out,
        "keyshare_read_store_lookups",
        "gauge",
        "Read requests for files not in memory reading the store now (at most 2 at once).",
    );
    let _ = writeln!(out, "keyshare_read_store_lookups {lookups}");
    family(
        &mut out,
        "keyshare_read_store_lookups_waiting",
        "gauge",
        "Read requests for files not in memory waiting for a turn at the store.",
    );
    let _ = writeln!(out, "keyshare_read_store_lookups_waiting {lookups_waiting}");
    family(
        &mut out,
        "keyshare_read_waiters_max",
        "gauge",
        "limits.max_waiters: readers that may wait at once.",
    );
    let _ = writeln!(out, "keyshare_read_waiters_max {}", state.waiters.max());
    family(
        &mut out,
        "keyshare_read_waiters_refused_total",
        "counter",
        "Waits refused at limits.max_waiters (answered 503).",
    );
    let _ = writeln!(
        out,
        "keyshare_read_waiters_refused_total {}",
        state.waiters.refused()
    );
    if let Some(expiry) = p.earliest_expiry {
        family(
            &mut out,
            "keyshare_expiry_horizon_seconds",
            "gauge",
            "Seconds until the earliest metadata expiry (negative once expired).",
        );
        let horizon = (expiry - state.now()).as_seconds_f64();
        let _ = writeln!(out, "keyshare_expiry_horizon_seconds {horizon}");
    }
    out
}

/// Observes every request: one `request` span (method, route, status,
/// latency) with an event at the end (info for the admin API, debug for
/// repository reads, warn for server errors), and the request counter.
/// Only the route pattern is recorded, never the path, a query, a header or
/// a body, so no secret reaches the log.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let result = next.call(req).instrument(span.clone()).await;
    let (route, status) = match &result {
        Ok(res) => {
            // Handlers that route themselves (the repository reads) say
            // which route they are; the others are found in the router's
            // map.
            let label = res.request().extensions().get::<RouteLabel>().copied();
            let route = match label {
                Some(RouteLabel(label)) => Some(label.to_owned()),
                None => res.request().match_pattern(),
            };
            (route, res.response().status().as_u16())
        }
        Err(e) => (None, e.as_response_error().status_code().as_u16()),
    };
    let route = route.unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("route", route.as_str());
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    // The admin API is logged at info; reads of the repository, health and
    // metrics (the high-volume, cacheable traffic) only at debug, so the
    // default level does not cost the read path a log line per request.
    span.in_scope(|| {
        // A 503 is load shed on purpose (readers past limits.max_waiters):
        // not a server fault, and a crowd of them must not flood the log.
        if status >= 500 && status != 503 {
            tracing::warn!("request");
        } else if route.starts_with("/api/") {
            tracing::info!("request");
        } else {
            tracing::debug!("request");
        }
    });
    if let Some(m) = metrics {
        m.record(&route, status);
    }
    result
}
