//! The portal: a self-service web page under `/ui/`, server-rendered HTML
//! (maud templates, which escape every interpolated value), one CSS and
//! one small script served from the binary under hashed names, nothing
//! from elsewhere (`docs/portal.md`).
//!
//! Security model, in the order a request meets it:
//!
//! * every answer under `/ui/` carries a strict Content-Security-Policy,
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//!   `X-Frame-Options: DENY` and (pages) `Cache-Control: no-store`;
//! * sign-in is a POST of an API token, exchanged for a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Path=/ui/`, `Secure` over TLS);
//!   failed sign-ins are rate-limited per client address; the token is
//!   never echoed, logged, put in a URL or kept (the session holds its id);
//! * every request looks the session's token up again (`signed_in`), so
//!   a revoked or expired token ends its sessions; sessions also end when
//!   idle, at an absolute limit ([`SessionLimits`]), and at sign-out
//!   (`session`);
//! * every change is a POST that must come from the portal's own origin
//!   (`Origin`, `Sec-Fetch-Site`) and carry the session's synchronizer
//!   token, compared in constant time (`form`), checked before the body
//!   is parsed;
//! * changes call the same functions as the admin API (`admin/`), with
//!   the same request types, checks and authorization; on top, the portal
//!   shows a maintainer their own namespace only (another one is "not
//!   found") and refuses organization pages and actions with 403.

mod assets;
mod form;
mod pages;
pub(crate) mod session;
mod simulate;
mod views;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Caller;
use super::AppState;
use crate::rate_limit::RateLimiter;
use crate::store::TokenKind;
pub use session::SessionLimits;
use session::{Session, Sessions};

/// Where the portal is served.
pub const PORTAL_PATH: &str = "/ui/";

/// The session cookie's name.
const COOKIE: &str = "ks_portal";

/// Failed sign-ins a client address may make per window.
const SIGN_IN_FAILURES: u32 = 10;
/// The window of [`SIGN_IN_FAILURES`].
const SIGN_IN_WINDOW: time::Duration = time::Duration::minutes(5);

/// Simulator decisions a session may ask for per window.
pub const SIMULATIONS: u32 = 30;
/// The window of [`SIMULATIONS`].
pub const SIMULATIONS_WINDOW: time::Duration = time::Duration::minutes(1);

/// The Content-Security-Policy of every answer under `/ui/`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                              img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                              base-uri 'none'";

/// The portal's state: its sessions and how its cookies are set.
#[derive(Debug)]
pub struct Portal {
    sessions: Sessions,
    /// `Secure` on the cookie: the server runs TLS.
    secure: bool,
    failures: RateLimiter,
    /// The simulator's trust set, shared by every decision.
    pub(crate) simulator: Arc<simulate::TrustCache>,
    /// Decisions per session ([`SIMULATIONS`] per [`SIMULATIONS_WINDOW`]).
    simulations: RateLimiter,
}

impl Portal {
    /// A portal with no session yet; `secure` when the server runs TLS.
    pub fn new(limits: SessionLimits, secure: bool) -> Self {
        Self {
            sessions: Sessions::new(limits),
            secure,
            failures: RateLimiter::new(SIGN_IN_FAILURES, SIGN_IN_WINDOW),
            simulator: Arc::default(),
            simulations: RateLimiter::new(SIMULATIONS, SIMULATIONS_WINDOW),
        }
    }

    /// How many times the simulator built its trust set from the
    /// published repository (once per published timestamp at most).
    pub fn simulator_builds(&self) -> u64 {
        self.simulator.builds()
    }
}

impl Default for Portal {
    fn default() -> Self {
        Self::new(SessionLimits::default(), false)
    }
}

/// A signed-in request: the session and the caller its token makes.
#[derive(Debug)]
pub(crate) struct Who {
    pub(crate) session_id: String,
    pub(crate) session: Session,
    pub(crate) caller: Caller,
}

impl Who {
    pub(crate) fn is_admin(&self) -> bool {
        matches!(self.caller.token.kind, TokenKind::OrgAdmin)
    }

    /// The one namespace a maintainer's token is for.
    pub(crate) fn own_namespace(&self) -> Option<&str> {
        match &self.caller.token.kind {
            TokenKind::Maintainer(ns) => Some(ns.as_str()),
            _ => None,
        }
    }

    /// Whether the portal shows namespace `ns` to this caller: an org
    /// admin sees every namespace, a maintainer their own.
    pub(crate) fn may_see(&self, ns: &str) -> bool {
        self.is_admin() || self.own_namespace() == Some(ns)
    }
}

/// The session id of the request's cookie, if any.
fn cookie_session(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && value.len() == 64)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value that opens session `id`.
fn session_cookie(portal: &Portal, id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path={PORTAL_PATH}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        portal.sessions.limits().absolute.whole_seconds(),
        if portal.secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the cookie.
fn cleared_cookie(portal: &Portal) -> String {
    format!(
        "{COOKIE}=; Path={PORTAL_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if portal.secure { "; Secure" } else { "" }
    )
}

/// A `303 See Other` to `to`.
pub(crate) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// The signed-in caller of a request, or the answer for one that is not:
/// a redirect to the sign-in page (with the cookie cleared when it named
/// a session that ended). The session's token is looked up again: a
/// revoked or expired token ends every session opened with it.
pub(crate) async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Who, Box<HttpResponse>> {
    let portal = &state.portal;
    let to_sign_in = |clear: bool| {
        let mut r = see_other("/ui/sign-in");
        if clear {
            if let Ok(v) = HeaderValue::from_str(&cleared_cookie(portal)) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        Box::new(r)
    };
    let Some(id) = cookie_session(req) else {
        return Err(to_sign_in(false));
    };
    let now = state.now();
    let Some(session) = portal.sessions.touch(&id, now) else {
        return Err(to_sign_in(true));
    };
    let publisher = state.publisher.clone();
    let token_id = session.token_id.clone();
    let token = web::block(move || publisher.read(|s| s.token(&token_id))).await;
    let token = match token {
        Ok(Ok(t)) => t,
        Ok(Err(crate::store::Error::NotFound { .. })) => {
            portal.sessions.end(&id);
            return Err(to_sign_in(true));
        }
        Ok(Err(e)) => return Err(Box::new(views::error_page(&super::ApiError::from(e)))),
        Err(e) => return Err(Box::new(views::error_page(&super::ApiError::internal(e)))),
    };
    if token.refusal(now).is_some() || matches!(token.kind, TokenKind::Ci(_)) {
        portal.sessions.end_token(&token.id);
        return Err(to_sign_in(true));
    }
    Ok(Who {
        session_id: id,
        session,
        caller: Caller { token },
    })
}

/// An HTML answer.
pub(crate) fn html(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// Registers `/ui` (a redirect) and everything under `/ui/`.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ui").to(|| async { see_other(PORTAL_PATH) }))
        .service(
            web::scope("/ui")
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add((header::CONTENT_SECURITY_POLICY, CSP))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::REFERRER_POLICY, "no-referrer"))
                        .add((header::X_FRAME_OPTIONS, "DENY"))
                        .add((header::CACHE_CONTROL, "no-store"))
                        .add(("Cross-Origin-Opener-Policy", "same-origin"))
                        .add(("Cross-Origin-Resource-Policy", "same-origin")),
                )
                .configure(assets::routes)
                .configure(pages::routes)
                .default_service(web::to(pages::not_found)),
        );
}
