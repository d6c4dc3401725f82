//! The portal's pages and the form posts behind them. Every change calls
//! the admin API's own function for it (`admin::*::*_as`), with the API's
//! request type built from the form (`form::request`).

use std::collections::BTreeMap;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;

use keyshare_policy::api::admin::{
    AddKey, AddRevocation, AddScopes, AuditQuery, AuditVerification, CreateNamespace, CreateToken,
    NamespaceDetail, PutPeer, PutRoot, PutTsa, RevokeNamespaceKey, SetThreshold, TokenView,
};
use keyshare_policy::datetime::rfc3339;
use keyshare_policy::keys::Key;
use keyshare_policy::layout::percent_encode;
use keyshare_policy::trust::{NamespaceName, SubDelegation, X509Identity};

use super::form::{self, As};
use super::views::{self, csrf, general_error, input, page, select, textarea, FormState};
use super::{html as respond, see_other, signed_in, Who};
use crate::http::admin::{
    audit, identities, keys, namespaces, peers, refuse_private_key, revocations, roots,
    sub_delegations, tokens, tsas,
};
use crate::http::auth::{authorize, Action, Caller};
use crate::http::body::Body;
use crate::http::{client_address, ApiError, AppState};
use crate::store::{Store, TokenKind};

/// Namespaces a page of "who can sign what" shows (`?after=NAME` for
/// the next).
const SCAN_PAGE: usize = 100;
/// Rows a page of the CI delegations shows.
const CI_PAGE: usize = 200;
/// Keys the overview's expiries list (the soonest; the count says how
/// many there are in all).
const EXPIRING_SHOWN: usize = 100;

type Data = web::Data<AppState>;

macro_rules! who {
    ($req:expr, $state:expr) => {
        match signed_in(&$req, &$state).await {
            Ok(w) => w,
            Err(answer) => return *answer,
        }
    };
}

macro_rules! posted {
    ($req:expr, $state:expr, $body:expr, $who:expr) => {
        match form::read(&$req, &$state, $body, Some(&$who.session.csrf)).await {
            Ok(f) => f,
            Err(e) => return views::error_page(&e),
        }
    };
}

/// 403 for a page or action of the organization's.
fn org_only(who: &Who) -> Result<(), Box<HttpResponse>> {
    if who.is_admin() {
        return Ok(());
    }
    Err(Box::new(views::error_page(&ApiError::forbidden(format!(
        "token `{}` is a maintainer's: this page and its actions are for org admins",
        who.caller.token.id
    )))))
}

/// 404 for a namespace the caller may not see (whether or not it
/// exists: a maintainer learns nothing of other namespaces).
fn visible(who: &Who, ns: &str) -> Result<NamespaceName, Box<HttpResponse>> {
    let not_found = || {
        Box::new(views::error_page(&ApiError::not_found(format!(
            "namespace `{ns}` not found"
        ))))
    };
    if !who.may_see(ns) {
        return Err(not_found());
    }
    NamespaceName::parse(ns).map_err(|_| not_found())
}

pub(super) fn not_found_page() -> HttpResponse {
    views::error_page(&ApiError::not_found("no such page"))
}

pub(super) async fn not_found() -> HttpResponse {
    not_found_page()
}

fn ns_path(ns: &str) -> String {
    format!("/ui/namespaces/{}", percent_encode(ns))
}

fn fmt_time(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "—".to_owned(), rfc3339)
}

/// What a `?done=` after a change says (a fixed table: nothing of the
/// query string is shown).
fn done_notice(done: Option<&str>) -> Markup {
    let text = match done {
        Some("namespace-created") => "Namespace created.",
        Some("key-added") => "Key added.",
        Some("key-removed") => "Key removed.",
        Some("key-revoked") => "Key revoked.",
        Some("threshold-set") => "Threshold set.",
        Some("scopes-added") => "Scopes added.",
        Some("token-revoked") => "Token revoked.",
        Some("revoked") => "Revocation recorded.",
        Some("identity-added") => "Identity added.",
        Some("identity-removed") => "Identity removed.",
        Some("sub-delegation-added") => "Sub-delegation added.",
        Some("sub-delegation-removed") => "Sub-delegation removed.",
        Some("peer-saved") => "Peer saved.",
        Some("peer-removed") => "Peer removed.",
        Some("root-saved") => "Root certificate saved.",
        Some("root-removed") => "Root certificate removed.",
        Some("tsa-saved") => "Timestamp authority saved.",
        Some("tsa-removed") => "Timestamp authority removed.",
        _ => return html! {},
    };
    html! { div.notice.ok role="status" { (text) } }
}

#[derive(Debug, Deserialize)]
struct Done {
    done: Option<String>,
}

fn done_of(req: &HttpRequest) -> Option<String> {
    web::Query::<Done>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().done)
}

// ---- sign-in / sign-out ----

fn sign_in_page(status: StatusCode, message: Option<&str>) -> HttpResponse {
    let state = FormState {
        form: "sign-in",
        ..FormState::default()
    };
    respond(
        status,
        page(
            None,
            "",
            "Sign in",
            html! {
                @if let Some(m) = message { div.notice.bad role="alert" { (m) } }
                form.card method="post" action="/ui/sign-in" {
                    (input(&state, "token", "API token", Some("An org-admin or maintainer token (ks_…). It is exchanged for a session and not kept."), "password", true))
                    button type="submit" { "Sign in" }
                }
            },
        ),
    )
}

async fn get_sign_in(req: HttpRequest, state: Data) -> HttpResponse {
    if signed_in(&req, &state).await.is_ok() {
        return see_other("/ui/");
    }
    sign_in_page(StatusCode::OK, None)
}

async fn post_sign_in(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    let form = match form::read(&req, &state, body, None).await {
        Ok(f) => f,
        Err(e) => return views::error_page(&e),
    };
    let now = state.now();
    let address = client_address(&req);
    let portal = &state.portal;
    if let Err(limited) = portal.failures.would_admit(&address, now) {
        return views::error_page(&ApiError::from(limited));
    }
    let refused = |why: &str| {
        // Counted: failed sign-ins are what the limit is for.
        let _ = portal.failures.admit(&address, now);
        sign_in_page(StatusCode::UNAUTHORIZED, Some(why))
    };
    let Some(secret) = form.get("token").map(|t| t.trim().to_owned()) else {
        return refused("Give an API token.");
    };
    if secret.len() > 16 * 1024 || secret.contains(char::is_whitespace) {
        return refused("That is not a valid token.");
    }
    let publisher = state.publisher.clone();
    let token = match web::block(move || publisher.authenticate(&secret, now)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return views::error_page(&ApiError::from(e)),
        Err(e) => return views::error_page(&ApiError::internal(e)),
    };
    let Some(token) = token else {
        return refused("Unknown or revoked token.");
    };
    if token.refusal(now).is_some() {
        return refused("That token is revoked or expired.");
    }
    if matches!(token.kind, TokenKind::Ci(_)) {
        return refused("CI tokens cannot sign in to the portal.");
    }
    let (id, _) = match portal.sessions.open(&token.id, now) {
        Ok(s) => s,
        Err(e) => return views::error_page(&ApiError::internal(e)),
    };
    tracing::info!(token = %token.id, "portal sign-in");
    let mut answer = see_other("/ui/");
    if let Ok(v) = HeaderValue::from_str(&super::session_cookie(portal, &id)) {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
    answer
}

async fn post_sign_out(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    let who = who!(req, state);
    let _ = posted!(req, state, body, who);
    state.portal.sessions.end(&who.session_id);
    let mut answer = see_other("/ui/sign-in");
    if let Ok(v) = HeaderValue::from_str(&super::cleared_cookie(&state.portal)) {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
    answer
}

// ---- overview ----

/// `version` and `expires` of a published role, from its JSON.
fn role_facts(bytes: &[u8]) -> Option<(u64, String)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let signed = v.get("signed")?;
    Some((
        signed.get("version")?.as_u64()?,
        signed.get("expires")?.as_str()?.to_owned(),
    ))
}

/// The repository's top-level roles: (role, version, expires).
fn repository_versions(state: &AppState) -> Vec<(&'static str, u64, String)> {
    let mut out = Vec::new();
    let mut n = 1;
    while state
        .publisher
        .file(&format!("metadata/{}.root.json", n + 1))
        .is_some()
    {
        n += 1;
    }
    if let Some((v, e)) = state
        .publisher
        .file(&format!("metadata/{n}.root.json"))
        .and_then(|f| role_facts(&f.bytes))
    {
        out.push(("root", v, e));
    }
    let Some(ts) = state.publisher.file("metadata/timestamp.json") else {
        return out;
    };
    let snapshot_version = serde_json::from_slice::<serde_json::Value>(&ts.bytes)
        .ok()
        .and_then(|v| {
            v.pointer("/signed/meta/snapshot.json/version")
                .and_then(serde_json::Value::as_u64)
        });
    let mut targets_version = None;
    if let Some(sv) = snapshot_version {
        if let Some(f) = state
            .publisher
            .file(&format!("metadata/{sv}.snapshot.json"))
        {
            targets_version = serde_json::from_slice::<serde_json::Value>(&f.bytes)
                .ok()
                .and_then(|v| {
                    v.pointer("/signed/meta/targets.json/version")
                        .and_then(serde_json::Value::as_u64)
                });
            if let Some((v, e)) = role_facts(&f.bytes) {
                out.push(("snapshot", v, e));
            }
        }
    }
    if let Some(tv) = targets_version {
        if let Some((v, e)) = state
            .publisher
            .file(&format!("metadata/{tv}.targets.json"))
            .and_then(|f| role_facts(&f.bytes))
        {
            out.push(("targets", v, e));
        }
    }
    if let Some((v, e)) = role_facts(&ts.bytes) {
        out.push(("timestamp", v, e));
    }
    out
}

/// The namespaces the caller sees, by name (all of them).
async fn visible_namespaces(
    state: &AppState,
    who: &Who,
) -> Result<Vec<keyshare_policy::api::admin::NamespaceSummary>, ApiError> {
    authorize(&who.caller.token, Action::Read)?;
    let list = namespaces::list_records(state).await?;
    Ok(list
        .iter()
        .filter(|r| who.may_see(r.entry.name.as_str()))
        .map(namespaces::namespace_view)
        .collect())
}

/// The `?after=` of a paged view.
#[derive(Debug, Deserialize)]
struct AfterName {
    after: Option<String>,
}

fn after_of(req: &HttpRequest) -> Option<String> {
    web::Query::<AfterName>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().after)
}

/// The links of a paged view: to the first page (when not on it) and to
/// the next (when there is one).
fn pager(base: &str, label: &str, on_first: bool, next: Option<&str>) -> Markup {
    html! {
        nav.pager aria-label=(label) {
            @if !on_first { a href=(base) { "First page" } }
            @if let Some(n) = next { a href=(format!("{base}?after={}", percent_encode(n))) { "Next page" } }
        }
    }
}

/// The details of a page of the visible namespaces: at most
/// [`SCAN_PAGE`] after `after` by name, and the last one's name when
/// more follow.
async fn visible_details_page(
    state: &AppState,
    who: &Who,
    after: Option<&str>,
) -> Result<(Vec<NamespaceDetail>, Option<String>), ApiError> {
    let list = visible_namespaces(state, who).await?;
    let mut rest = list
        .into_iter()
        .filter(|n| after.is_none_or(|a| n.name.as_str() > a));
    let page: Vec<_> = rest.by_ref().take(SCAN_PAGE).collect();
    let next = rest.next().and(page.last().map(|n| n.name.to_string()));
    let mut out = Vec::new();
    for ns in page {
        out.push(
            namespaces::namespace_detail(state, ns.name, namespaces::DEFAULT_EXPIRING_WITHIN)
                .await?,
        );
    }
    Ok((out, next))
}

/// What the overview counts over every visible namespace, in one read of
/// the store: the keys, and those whose `not_after` is within
/// `horizon` (or past), soonest first.
async fn key_counts(
    state: &AppState,
    names: Vec<String>,
    horizon: time::Duration,
) -> Result<(usize, Vec<(String, keyshare_policy::trust::TrustedKey)>), ApiError> {
    let until = state.now() + horizon;
    crate::http::admin::read_store(state, move |s| {
        let mut count = 0;
        let mut expiring = Vec::new();
        for ns in names {
            for k in s.keys(&ns)? {
                count += 1;
                if k.key.not_after.is_some_and(|t| t <= until) {
                    expiring.push((ns.clone(), k.key));
                }
            }
        }
        expiring.sort_by_key(|(_, k)| k.not_after);
        Ok((count, expiring))
    })
    .await
}

async fn overview(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    let names: Vec<String> = match visible_namespaces(&state, &who).await {
        Ok(l) => l.into_iter().map(|n| n.name.to_string()).collect(),
        Err(e) => return views::error_page(&e),
    };
    let namespace_count = names.len();
    let (keys, expiring) =
        match key_counts(&state, names, namespaces::DEFAULT_EXPIRING_WITHIN).await {
            Ok(k) => k,
            Err(e) => return views::error_page(&e),
        };
    let now = state.now();
    // A file the cache does not hold comes from the store: not on this
    // async worker.
    let versions = {
        let state = state.clone();
        web::block(move || repository_versions(&state))
            .await
            .unwrap_or_default()
    };
    let (tokens, revocations, recent) = if who.is_admin() {
        let tokens = tokens::list_tokens_as(&state, &who.caller).await;
        let revocations = revocations::list_revocations_as(&state, &who.caller).await;
        let recent = audit::list_audit_as(
            &state,
            &who.caller,
            AuditQuery {
                after: 0,
                before: None,
                limit: Some(10),
                since: None,
                action: None,
                actor: None,
                namespace: None,
                order: Some("desc".into()),
            },
        )
        .await;
        match (tokens, revocations, recent) {
            (Ok(t), Ok(r), Ok(a)) => (Some(t), Some(r), Some(a)),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return views::error_page(&e),
        }
    } else {
        (None, None, None)
    };
    let content = html! {
        ul.counts {
            li { strong { (namespace_count) } "namespaces" }
            li { strong { (keys) } "keys" }
            @if let Some(t) = &tokens { li { strong { (t.tokens.iter().filter(|t| t.state == "active").count()) } "active tokens" } }
            @if let Some(r) = &revocations { li { strong { (r.revocations.len()) } "organization revocations" } }
        }
        h2 { "Repository versions" }
        table {
            thead { tr { th scope="col" { "Role" } th scope="col" { "Version" } th scope="col" { "Expires" } } }
            tbody {
                @for (role, v, e) in &versions { tr { td { (role) } td { (v) } td { (e) } } }
            }
        }
        h2 { "Expiries coming up (30 days)" }
        @if expiring.is_empty() { p { "No key expires in the next 30 days." } } @else {
            @if expiring.len() > EXPIRING_SHOWN {
                p { "The " (EXPIRING_SHOWN) " soonest of " (expiring.len()) " keys expired or expiring within 30 days; each namespace's page lists its own." }
            }
            table {
                thead { tr { th scope="col" { "Namespace" } th scope="col" { "Key" } th scope="col" { "Not after" } th scope="col" { "State" } } }
                tbody {
                    @for (ns, k) in expiring.iter().take(EXPIRING_SHOWN) {
                        @let state = if k.not_after.is_some_and(|t| t <= now) { "expired" } else { "expires_soon" };
                        tr { td { a href=(ns_path(ns)) { (ns) } } td { code { (k.id) } } td { (fmt_time(k.not_after)) } td class=(format!("state-{state}")) { (state) } }
                    }
                }
            }
        }
        @if let Some(a) = &recent {
            h2 { "Last publishes" }
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Subject" } } }
                tbody {
                    @for r in &a.records { tr { td { (r.seq) } td { (r.time) } td { code { (r.actor) } } td { (r.action) } td { (r.subject) } } }
                }
            }
            p { a href="/ui/audit" { "The whole audit log" } }
        }
    };
    respond(
        StatusCode::OK,
        page(Some(&who), "/ui/", "Overview", content),
    )
}

// ---- namespaces ----

const CREATE_NAMESPACE: [(&str, As); 4] = [
    ("name", As::Text),
    ("scopes", As::Lines),
    ("maintainers", As::Lines),
    ("allow_overlap", As::Flag),
];

/// Namespaces a page of the list shows.
const NAMESPACES_PAGE: usize = 200;

#[derive(Debug, Deserialize)]
struct NamespacesPage {
    after: Option<String>,
}

async fn namespaces_page(
    who: &Who,
    state: &AppState,
    form_state: Option<&FormState>,
    status: StatusCode,
    (done, after): (Option<&str>, Option<&str>),
) -> HttpResponse {
    let all = match visible_namespaces(state, who).await {
        Ok(l) => l,
        Err(e) => return views::error_page(&e),
    };
    // By name, a page after `after`.
    let list: Vec<_> = all
        .iter()
        .filter(|n| after.is_none_or(|a| n.name.as_str() > a))
        .take(NAMESPACES_PAGE)
        .collect();
    let next = (list.len() == NAMESPACES_PAGE)
        .then(|| list.last().map(|n| n.name.to_string()))
        .flatten()
        .filter(|last| all.iter().any(|n| n.name.as_str() > last.as_str()));
    let f = FormState::of(form_state, "create-namespace");
    let content = html! {
        (done_notice(done))
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Scopes" } th scope="col" { "Threshold" } th scope="col" { "Maintainers" } th scope="col" { "Created" } } }
            tbody {
                @for ns in &list {
                    tr {
                        td { a href=(ns_path(ns.name.as_str())) { (ns.name) } }
                        td { @for s in &ns.scopes { code { (s) } br; } }
                        td { (ns.threshold) }
                        td { (ns.maintainers.join(", ")) }
                        td { (ns.created_at) }
                    }
                }
            }
        }
        nav.pager aria-label="Namespace pages" {
            @if after.is_some() { a href="/ui/namespaces" { "First page" } }
            @if let Some(n) = &next { a href=(format!("/ui/namespaces?after={}", percent_encode(n))) { "Next page" } }
        }
        @if who.is_admin() {
            h2 { "Create a namespace" }
            form.card method="post" action="/ui/namespaces" {
                (csrf(who))
                (general_error(&f))
                (input(&f, "name", "Name", Some("Lowercase letters, digits and dashes."), "text", true))
                (textarea(&f, "scopes", "Scopes", Some("Artifact patterns, one a line (registry.example/team-a/**)."), true))
                (textarea(&f, "maintainers", "Maintainers", Some("Who answers for it, one a line (optional)."), false))
                div.field {
                    label for="create-namespace-allow_overlap" {
                        input type="checkbox" id="create-namespace-allow_overlap" name="allow_overlap" value="true" checked[f.values.contains_key("allow_overlap")];
                        " Allow scopes that overlap another namespace's"
                    }
                }
                button type="submit" { "Create namespace" }
            }
        }
    };
    respond(
        status,
        page(Some(who), "/ui/namespaces", "Namespaces", content),
    )
}

async fn get_namespaces(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    let after = web::Query::<NamespacesPage>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().after);
    namespaces_page(
        &who,
        &state,
        None,
        StatusCode::OK,
        (done_of(&req).as_deref(), after.as_deref()),
    )
    .await
}

async fn post_namespaces(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    let who = who!(req, state);
    let form = posted!(req, state, body, who);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    let result = async {
        let r: CreateNamespace = form::request(&form, &CREATE_NAMESPACE)?;
        namespaces::create_namespace_as(&state, &who.caller, r).await
    }
    .await;
    match result {
        Ok(view) => see_other(&format!(
            "{}?done=namespace-created",
            ns_path(view.namespace.name.as_str())
        )),
        Err(e) => {
            let names: Vec<&str> = CREATE_NAMESPACE.iter().map(|(n, _)| *n).collect();
            let f = FormState::refused("create-namespace", form.values(), &e, &names);
            namespaces_page(&who, &state, Some(&f), e.status(), (None, None)).await
        }
    }
}

const ADD_KEY: [(&str, As); 5] = [
    ("public_key_pem", As::Text),
    ("id", As::Text),
    ("description", As::Text),
    ("not_before", As::Text),
    ("not_after", As::Text),
];

const SET_THRESHOLD: [(&str, As); 1] = [("threshold", As::Number)];

const ADD_SCOPES: [(&str, As); 2] = [("scopes", As::Lines), ("allow_overlap", As::Flag)];

const REVOKE_KEY: [(&str, As); 2] = [("key_id", As::Text), ("reason", As::Text)];

fn key_rows(
    who: &Who,
    ns: &str,
    keys: &[keyshare_policy::api::admin::KeyView],
    removable: bool,
) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "State" } th scope="col" { "Description" }
                th scope="col" { "Valid from" } th scope="col" { "Valid until" } th scope="col" { "SPKI SHA-256" }
                @if removable { th scope="col" { "Actions" } }
            } }
            tbody {
                @for k in keys {
                    tr {
                        td { code { (k.key.id) } @if k.key.ephemeral { " (CI)" } }
                        td class=(format!("state-{}", k.state)) {
                            (k.state)
                            @if let Some(r) = &k.revocation { br; span.hint { "revoked by " (r.by) " at " (r.revoked_at) ": " (r.reason) } }
                        }
                        td { (k.key.description.as_deref().unwrap_or("")) }
                        td { (fmt_time(k.key.not_before)) }
                        td { (fmt_time(k.key.not_after)) }
                        td { code { (k.spki_sha256.as_ref().map_or("", |h| h.as_str())) } }
                        @if removable {
                            td {
                                form.inline method="post" action=(format!("{}/keys/remove", ns_path(ns))) {
                                    (csrf(who))
                                    input type="hidden" name="key_id" value=(k.key.id);
                                    button.danger type="submit" aria-label=(format!("Remove key {}", k.key.id)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn namespace_page(
    who: &Who,
    state: &AppState,
    ns: NamespaceName,
    form_state: Option<&FormState>,
    status: StatusCode,
    done: Option<&str>,
) -> HttpResponse {
    if let Err(e) = authorize(&who.caller.token, Action::Read) {
        return views::error_page(&e);
    }
    let name = ns.to_string();
    let d = match namespaces::namespace_detail(state, ns, namespaces::DEFAULT_EXPIRING_WITHIN).await
    {
        Ok(d) => d,
        Err(e) => return views::error_page(&e),
    };
    let writable = authorize(&who.caller.token, Action::WriteNamespace(&name)).is_ok();
    let add = FormState::of(form_state, "add-key");
    let revoke = FormState::of(form_state, "revoke-key");
    let threshold = FormState::of(form_state, "set-threshold");
    let scopes = FormState::of(form_state, "add-scopes");
    let identity = FormState::of(form_state, "add-identity");
    let sub = FormState::of(form_state, "add-sub-delegation");
    // Which names a namespace owns is the organization's call (the API's
    // matrix): a maintainer gets no form for it.
    let widenable = authorize(&who.caller.token, Action::ManageNamespaces).is_ok();
    let content = html! {
        (done_notice(done))
        section.card aria-labelledby="ns-summary" {
            h2 id="ns-summary" { "Summary" }
            dl {
                dt { "Scopes" } dd { @for s in &d.namespace.scopes { code { (s) } " " } }
                dt { "Threshold" } dd { (d.namespace.threshold) }
                dt { "Maintainers" } dd { (d.namespace.maintainers.join(", ")) }
                dt { "Created" } dd { (d.namespace.created_at) }
            }
        }
        h2 { "Keys" }
        @if d.keys.is_empty() { p { "No key is listed." } } @else { (key_rows(who, &name, &d.keys, writable)) }
        h2 { "Identities" }
        @if d.identities.is_empty() { p { "No X.509 identity." } } @else {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Identity" }
                    @if writable { th scope="col" { "Actions" } }
                } }
                tbody { @for i in &d.identities { tr {
                    td { (i.name) }
                    td { code { (serde_json::to_string(i).unwrap_or_default()) } }
                    @if writable { td {
                        (name_button(who, &format!("{}/identities/remove", ns_path(&name)), &i.name, &format!("Remove identity {}", i.name), "Remove"))
                    } }
                } } }
            }
        }
        h2 { "Sub-delegations" }
        @if d.sub_delegations.is_empty() { p { "None." } } @else {
            @for s in &d.sub_delegations {
                h3 { (s.name) " — threshold " (s.threshold) }
                p { "Scopes: " @for p in &s.scopes { code { (p) } " " } }
                (key_rows(who, &name, &s.keys, false))
                @if writable {
                    (name_button(who, &format!("{}/sub-delegations/remove", ns_path(&name)), &s.name, &format!("Remove sub-delegation {}", s.name), "Remove sub-delegation"))
                }
            }
        }
        h2 { "The namespace's own revocations" }
        @if d.revocations.is_empty() { p { "None." } } @else {
            table {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Subject" } th scope="col" { "Revoked at" } th scope="col" { "Reason" } } }
                tbody { @for r in &d.revocations { tr {
                    td { code { (r.key_id.as_deref().unwrap_or("")) } }
                    td { code { (r.revocation.subject) } }
                    td { (rfc3339(r.revocation.revoked_at)) }
                    td { (r.revocation.reason) }
                } } }
            }
        }
        @if widenable {
            h2 { "Add scopes" }
            form.card method="post" action=(format!("{}/scopes", ns_path(&name))) {
                (csrf(who))
                (general_error(&scopes))
                (textarea(&scopes, "scopes", "Scopes to add", Some("Artifact patterns, one a line (registry.example/team-a/**)."), true))
                div.field {
                    label for="add-scopes-allow_overlap" {
                        input type="checkbox" id="add-scopes-allow_overlap" name="allow_overlap" value="true" checked[scopes.values.contains_key("allow_overlap")];
                        " Allow scopes that overlap another namespace's"
                    }
                }
                button type="submit" { "Add scopes" }
            }
        }
        @if writable {
            h2 { "Add a key" }
            form.card method="post" action=(format!("{}/keys", ns_path(&name))) {
                (csrf(who))
                (general_error(&add))
                (textarea(&add, "public_key_pem", "Public key (PEM)", Some("-----BEGIN PUBLIC KEY----- … (Ed25519, ECDSA P-256 or RSA)."), true))
                (input(&add, "id", "Key id", Some("Optional: defaults to the key's TUF key id."), "text", false))
                (input(&add, "description", "Description", None, "text", false))
                (input(&add, "not_before", "Valid from", Some("Optional, RFC 3339 (2030-01-01T00:00:00Z)."), "text", false))
                (input(&add, "not_after", "Valid until", Some("Optional, RFC 3339."), "text", false))
                button type="submit" { "Add key" }
            }
            h2 { "Threshold" }
            form.card method="post" action=(format!("{}/threshold", ns_path(&name))) {
                (csrf(who))
                (general_error(&threshold))
                (input(&threshold, "threshold", "Threshold", Some("How many of the namespace's keys and identities must sign an artifact (1 or more)."), "text", true))
                button type="submit" { "Set threshold" }
            }
            h2 { "Revoke a key" }
            form.card method="post" action=(format!("{}/revocations", ns_path(&name))) {
                (csrf(who))
                (general_error(&revoke))
                (input(&revoke, "key_id", "Key id", Some("The id the key is listed under in this namespace."), "text", true))
                (input(&revoke, "reason", "Reason", None, "text", true))
                button.danger type="submit" { "Revoke key" }
            }
            h2 { "Add an X.509 identity" }
            form.card method="post" action=(format!("{}/identities", ns_path(&name))) {
                (csrf(who))
                (general_error(&identity))
                (input(&identity, "name", "Name", Some("Unique within the namespace."), "text", true))
                (textarea(&identity, "ca_certs", "CA certificates (PEM)", Some("One or more -----BEGIN CERTIFICATE----- blocks: roots or intermediates. Certificates only: a private key is refused."), true))
                (input(&identity, "subject", "Required leaf subject", Some("C=US, O=acme, CN=team-a: the leaf must hold every pair."), "text", true))
                (input(&identity, "not_before", "Valid from", Some("Optional, RFC 3339."), "text", false))
                (input(&identity, "not_after", "Valid until", Some("Optional, RFC 3339."), "text", false))
                button type="submit" { "Add identity" }
            }
            h2 { "Add a sub-delegation" }
            form.card method="post" action=(format!("{}/sub-delegations", ns_path(&name))) {
                (csrf(who))
                (general_error(&sub))
                (input(&sub, "name", "Name", Some("Unique within the namespace."), "text", true))
                (textarea(&sub, "scopes", "Scopes", Some("Artifact patterns inside the namespace's own, one a line."), true))
                (textarea(&sub, "keys", "Public keys (PEM)", Some("One or more -----BEGIN PUBLIC KEY----- blocks; each is listed under its TUF key id."), true))
                (input(&sub, "threshold", "Threshold", Some("How many of these keys must sign."), "number", true))
                button type="submit" { "Add sub-delegation" }
            }
        }
    };
    respond(
        status,
        page(
            Some(who),
            "/ui/namespaces",
            &format!("Namespace {name}"),
            content,
        ),
    )
}

async fn get_namespace(req: HttpRequest, state: Data, ns: web::Path<String>) -> HttpResponse {
    let who = who!(req, state);
    let name = match visible(&who, &ns) {
        Ok(n) => n,
        Err(answer) => return *answer,
    };
    namespace_page(
        &who,
        &state,
        name,
        None,
        StatusCode::OK,
        done_of(&req).as_deref(),
    )
    .await
}

/// A form of a page: its name, its fields (where a refusal's error may
/// be shown), the `?done=` of its success.
struct PostedForm {
    name: &'static str,
    fields: &'static [(&'static str, As)],
    done: &'static str,
}

/// A namespace form post: session, CSRF, visibility, then `act`; on a
/// refusal the namespace page again with the error at its field.
async fn namespace_post<F, Fut>(
    (req, state, ns, body): (HttpRequest, Data, web::Path<String>, Body),
    which: PostedForm,
    act: F,
) -> HttpResponse
where
    F: FnOnce(AppState, Caller, String, form::Form) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    let who = who!(req, state);
    let form = posted!(req, state, body, who);
    let name = match visible(&who, &ns) {
        Ok(n) => n,
        Err(answer) => return *answer,
    };
    let values = form.values();
    let caller = who.caller.clone();
    let result = act(state.get_ref().clone(), caller, ns.into_inner(), form).await;
    match result {
        Ok(()) => see_other(&format!("{}?done={}", ns_path(name.as_str()), which.done)),
        Err(e) => {
            let names: Vec<&str> = which.fields.iter().map(|(n, _)| *n).collect();
            let f = FormState::refused(which.name, values, &e, &names);
            namespace_page(&who, &state, name, Some(&f), e.status(), None).await
        }
    }
}

async fn post_add_key(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "add-key",
            fields: &ADD_KEY,
            done: "key-added",
        },
        |state, caller, ns, form| async move {
            let r: AddKey = form::request(&form, &ADD_KEY)?;
            keys::add_key_as(&state, &caller, &ns, r).await.map(drop)
        },
    )
    .await
}

async fn post_set_threshold(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "set-threshold",
            fields: &SET_THRESHOLD,
            done: "threshold-set",
        },
        |state, caller, ns, form| async move {
            let r: SetThreshold = form::request(&form, &SET_THRESHOLD)?;
            namespaces::set_threshold_as(&state, &caller, &ns, r)
                .await
                .map(drop)
        },
    )
    .await
}

async fn post_add_scopes(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "add-scopes",
            fields: &ADD_SCOPES,
            done: "scopes-added",
        },
        |state, caller, ns, form| async move {
            let r: AddScopes = form::request(&form, &ADD_SCOPES)?;
            namespaces::add_scopes_as(&state, &caller, &ns, r)
                .await
                .map(drop)
        },
    )
    .await
}

async fn post_remove_key(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "remove-key",
            fields: &[("key_id", As::Text)],
            done: "key-removed",
        },
        |state, caller, ns, form| async move {
            match form.get("key_id") {
                Some(id) => keys::remove_key_as(&state, &caller, &ns, id).await,
                None => Err(ApiError::invalid("key_id", "name the key to remove")),
            }
        },
    )
    .await
}

async fn post_revoke_key(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "revoke-key",
            fields: &REVOKE_KEY,
            done: "key-revoked",
        },
        |state, caller, ns, form| async move {
            let r: RevokeNamespaceKey = form::request(&form, &REVOKE_KEY)?;
            revocations::revoke_namespace_key_as(&state, &caller, &ns, r)
                .await
                .map(drop)
        },
    )
    .await
}

const ADD_IDENTITY: [(&str, As); 5] = [
    ("name", As::Text),
    ("ca_certs", As::PemBlocks),
    ("subject", As::Text),
    ("not_before", As::Text),
    ("not_after", As::Text),
];

/// The sub-delegation form's fields; `keys` (public keys, PEM) become the
/// API's key objects in [`post_add_sub_delegation`].
const ADD_SUB_DELEGATION: [(&str, As); 4] = [
    ("name", As::Text),
    ("scopes", As::Lines),
    ("keys", As::PemBlocks),
    ("threshold", As::Number),
];

/// The namespace a form was posted to, as the API's functions take it
/// (`namespace_post` has shown it is one the caller may see).
fn namespace_of(ns: &str) -> Result<NamespaceName, ApiError> {
    NamespaceName::parse(ns).map_err(|_| ApiError::not_found(format!("namespace `{ns}` not found")))
}

async fn post_add_identity(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "add-identity",
            fields: &ADD_IDENTITY,
            done: "identity-added",
        },
        |state, caller, ns, form| async move {
            refuse_private_key("ca_certs", form.get("ca_certs").unwrap_or(""))?;
            let identity: X509Identity = form::request(&form, &ADD_IDENTITY)?;
            identities::add_identity_as(&state, &caller, namespace_of(&ns)?, identity)
                .await
                .map(drop)
        },
    )
    .await
}

async fn post_add_sub_delegation(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "add-sub-delegation",
            fields: &ADD_SUB_DELEGATION,
            done: "sub-delegation-added",
        },
        |state, caller, ns, form| async move {
            let pems = form.get("keys").unwrap_or("");
            refuse_private_key("keys", pems)?;
            let mut keys = Vec::new();
            for (i, pem) in form::pem_blocks(pems).iter().enumerate() {
                let field = format!("keys[{i}]");
                let key = Key::from_spki_pem(pem).map_err(|e| ApiError::invalid(&field, e))?;
                let id = key.key_id().map_err(|e| ApiError::invalid(&field, e))?;
                keys.push(serde_json::json!({ "id": id, "key": key }));
            }
            let fields: Vec<(&str, As)> = ADD_SUB_DELEGATION
                .into_iter()
                .filter(|(name, _)| *name != "keys")
                .collect();
            let mut object = form::object(&form, &fields)?;
            object.insert("keys".to_owned(), serde_json::Value::Array(keys));
            let sub: SubDelegation = form::parse(object)?;
            sub_delegations::add_sub_delegation_as(&state, &caller, namespace_of(&ns)?, sub)
                .await
                .map(drop)
        },
    )
    .await
}

async fn post_remove_identity(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "remove-identity",
            fields: &[("name", As::Text)],
            done: "identity-removed",
        },
        |state, caller, ns, form| async move {
            let name = name_field(&form)?;
            identities::remove_identity_as(&state, &caller, namespace_of(&ns)?, name).await
        },
    )
    .await
}

async fn post_remove_sub_delegation(
    req: HttpRequest,
    state: Data,
    ns: web::Path<String>,
    body: Body,
) -> HttpResponse {
    namespace_post(
        (req, state, ns, body),
        PostedForm {
            name: "remove-sub-delegation",
            fields: &[("name", As::Text)],
            done: "sub-delegation-removed",
        },
        |state, caller, ns, form| async move {
            let name = name_field(&form)?;
            sub_delegations::remove_sub_delegation_as(&state, &caller, namespace_of(&ns)?, name)
                .await
        },
    )
    .await
}

// ---- tokens ----

const CREATE_TOKEN: [(&str, As); 4] = [
    ("kind", As::Text),
    ("namespace", As::Text),
    ("description", As::Text),
    ("expires_in", As::Number),
];

async fn tokens_page(
    who: &Who,
    state: &AppState,
    form_state: Option<&FormState>,
    created: Option<&TokenView>,
    status: StatusCode,
    done: Option<&str>,
) -> HttpResponse {
    let list = match tokens::list_tokens_as(state, &who.caller).await {
        Ok(l) => l,
        Err(e) => return views::error_page(&e),
    };
    let f = FormState::of(form_state, "create-token");
    let content = html! {
        (done_notice(done))
        @if let Some(t) = created {
            section.notice.ok role="status" aria-labelledby="new-token" {
                h2 id="new-token" { "Token " code { (t.id) } " created" }
                p { "Copy its secret now: it is shown this once and kept nowhere." }
                div.field {
                    label for="new-secret" { "Secret" }
                    input type="text" id="new-secret" readonly value=(t.secret.as_deref().unwrap_or("")) autocomplete="off";
                }
            }
        }
        table {
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "Kind" } th scope="col" { "Namespaces" } th scope="col" { "Description" }
                th scope="col" { "State" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { "Actions" }
            } }
            tbody {
                @for t in &list.tokens {
                    tr {
                        td { code { (t.id) } }
                        td { (t.kind) }
                        td { (t.namespaces.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                        td { (t.description.as_deref().unwrap_or("")) }
                        td class=(format!("state-{}", t.state)) { (t.state) }
                        td { (t.created_at) }
                        td { (t.expires_at.as_deref().unwrap_or("never")) }
                        td { (t.last_used_at.as_deref().unwrap_or("never")) }
                        td {
                            @if t.state == "active" {
                                form.inline method="post" action="/ui/tokens/revoke" {
                                    (csrf(who))
                                    input type="hidden" name="id" value=(t.id);
                                    button.danger type="submit" aria-label=(format!("Revoke token {}", t.id)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create a token" }
        form.card method="post" action="/ui/tokens" {
            (csrf(who))
            (general_error(&f))
            (select(&f, "kind", "Kind", &[("maintainer", "Maintainer of one namespace"), ("org-admin", "Org admin")]))
            (input(&f, "namespace", "Namespace", Some("For a maintainer token: the namespace it may change."), "text", false))
            (input(&f, "description", "Description", None, "text", false))
            (input(&f, "expires_in", "Expires in (seconds)", Some("Optional; empty: no expiry."), "number", false))
            button type="submit" { "Create token" }
        }
    };
    respond(status, page(Some(who), "/ui/tokens", "Tokens", content))
}

async fn get_tokens(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    tokens_page(
        &who,
        &state,
        None,
        None,
        StatusCode::OK,
        done_of(&req).as_deref(),
    )
    .await
}

async fn post_tokens(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    let who = who!(req, state);
    let form = posted!(req, state, body, who);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    let result = async {
        let r: CreateToken = form::request(&form, &CREATE_TOKEN)?;
        tokens::create_token_as(&state, &who.caller, r).await
    }
    .await;
    match result {
        Ok(view) => tokens_page(&who, &state, None, Some(&view), StatusCode::CREATED, None).await,
        Err(e) => {
            let names: Vec<&str> = CREATE_TOKEN.iter().map(|(n, _)| *n).collect();
            let f = FormState::refused("create-token", form.values(), &e, &names);
            tokens_page(&who, &state, Some(&f), None, e.status(), None).await
        }
    }
}

async fn post_revoke_token(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    let who = who!(req, state);
    let form = posted!(req, state, body, who);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    let Some(id) = form.get("id") else {
        return views::error_page(&ApiError::invalid("id", "name the token to revoke"));
    };
    match tokens::revoke_token_as(&state, &who.caller, id).await {
        Ok(()) => {
            state.portal.sessions.end_token(id);
            see_other("/ui/tokens?done=token-revoked")
        }
        Err(e) => views::error_page(&e),
    }
}

// ---- revocations ----

const ADD_REVOCATION: [(&str, As); 5] = [
    ("spki_sha256", As::Text),
    ("public_key_pem", As::Text),
    ("certificate_pem", As::Text),
    ("certificate_sha256", As::Text),
    ("reason", As::Text),
];

async fn revocations_page(
    who: &Who,
    state: &AppState,
    form_state: Option<&FormState>,
    status: StatusCode,
    done: Option<&str>,
) -> HttpResponse {
    let list = match revocations::list_revocations_as(state, &who.caller).await {
        Ok(l) => l,
        Err(e) => return views::error_page(&e),
    };
    let f = FormState::of(form_state, "revoke");
    let content = html! {
        (done_notice(done))
        p { "Organization-wide revocations: a revoked key or certificate is trusted for nothing, in every namespace. A namespace's own revocations are on its page." }
        table {
            thead { tr { th scope="col" { "Subject" } th scope="col" { "Revoked at" } th scope="col" { "Reason" } th scope="col" { "Named as" } th scope="col" { "Recorded" } } }
            tbody {
                @for r in &list.revocations {
                    tr {
                        td { code { (r.revocation.subject) } }
                        td { (rfc3339(r.revocation.revoked_at)) }
                        td { (r.revocation.reason) }
                        td { @if let Some(l) = &r.named_as { (l.namespace) " / " code { (l.key_id) } } }
                        td { (r.recorded_at) }
                    }
                }
            }
        }
        h2 { "Revoke a key or certificate" }
        form.card method="post" action="/ui/revocations" {
            (csrf(who))
            (general_error(&f))
            p.hint { "Give exactly one of the key's fingerprint, the public key, the certificate or its fingerprint." }
            (input(&f, "spki_sha256", "Key fingerprint (SPKI SHA-256)", None, "text", false))
            (textarea(&f, "public_key_pem", "Public key (PEM)", None, false))
            (textarea(&f, "certificate_pem", "Certificate (PEM)", None, false))
            (input(&f, "certificate_sha256", "Certificate fingerprint (SHA-256)", None, "text", false))
            (input(&f, "reason", "Reason", None, "text", true))
            button.danger type="submit" { "Revoke" }
        }
    };
    respond(
        status,
        page(Some(who), "/ui/revocations", "Revocations", content),
    )
}

async fn get_revocations(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    revocations_page(&who, &state, None, StatusCode::OK, done_of(&req).as_deref()).await
}

async fn post_revocations(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    let who = who!(req, state);
    let form = posted!(req, state, body, who);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    let result = async {
        let r: AddRevocation = form::request(&form, &ADD_REVOCATION)?;
        revocations::add_revocation_as(&state, &who.caller, r).await
    }
    .await;
    match result {
        Ok(_) => see_other("/ui/revocations?done=revoked"),
        Err(e) => {
            let names: Vec<&str> = ADD_REVOCATION.iter().map(|(n, _)| *n).collect();
            let f = FormState::refused("revoke", form.values(), &e, &names);
            revocations_page(&who, &state, Some(&f), e.status(), None).await
        }
    }
}

// ---- audit ----

/// Records a page of the audit log shows.
const AUDIT_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
struct AuditPage {
    after: Option<i64>,
}

async fn get_audit(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    let after = web::Query::<AuditPage>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.after)
        .unwrap_or(0)
        .max(0);
    let q = AuditQuery {
        after,
        before: None,
        limit: Some(AUDIT_PAGE),
        since: None,
        action: None,
        actor: None,
        namespace: None,
        order: None,
    };
    let (records, verification) = match (
        audit::list_audit_as(&state, &who.caller, q).await,
        audit::verify_audit_as(&state, &who.caller).await,
    ) {
        (Ok(r), Ok(v)) => (r, v),
        (Err(e), _) | (_, Err(e)) => return views::error_page(&e),
    };
    let last = records.records.last().map(|r| r.seq);
    let content = html! {
        @match &verification {
            AuditVerification::Intact(v) => div.notice.ok role="status" {
                "The audit chain verifies: " (v.records) " records, head " code { (v.hash) } ", checked against " (v.published_heads) " published heads."
            },
            AuditVerification::HeadMismatch(v) => div.notice.bad role="alert" {
                "The audit log contradicts a published head from record " (v.first_bad_seq) ": " (v.reason)
            },
            AuditVerification::Broken(v) => div.notice.bad role="alert" {
                "The audit chain is broken at record " (v.first_bad_seq) ": " (v.reason)
            },
        }
        table {
            thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Subject" } th scope="col" { "Details" } } }
            tbody {
                @for r in &records.records {
                    @let details = r.details.to_string();
                    tr {
                        td { (r.seq) } td { (r.time) } td { code { (r.actor) } } td { (r.action) } td { (r.subject) }
                        td { code { (details.chars().take(300).collect::<String>()) @if details.len() > 300 { "…" } } }
                    }
                }
            }
        }
        nav.pager aria-label="Audit pages" {
            @if after > 0 { a href=(format!("/ui/audit?after={}", (after - i64::from(AUDIT_PAGE)).max(0))) { "Earlier" } }
            @if let (Some(l), true) = (last, records.records.len() == AUDIT_PAGE as usize) { a href=(format!("/ui/audit?after={l}")) { "Later" } }
        }
    };
    respond(
        StatusCode::OK,
        page(Some(&who), "/ui/audit", "Audit log", content),
    )
}

// ---- who can sign what, CI delegations, peers ----

async fn get_who_can_sign(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    let after = after_of(&req);
    let (details, next) = match visible_details_page(&state, &who, after.as_deref()).await {
        Ok(d) => d,
        Err(e) => return views::error_page(&e),
    };
    // The peers once, on the first page.
    let peers = if who.is_admin() && after.is_none() {
        match crate::http::admin::read_store(&state, Store::peers).await {
            Ok(p) => p,
            Err(e) => return views::error_page(&e),
        }
    } else {
        Vec::new()
    };
    let usable = |k: &&keyshare_policy::api::admin::KeyView| {
        k.state == "active" || k.state == "expires_soon"
    };
    let content = html! {
        p { "Which principals a verifier trusts for which artifact names, as published now. A namespace needs as many of its keys and identities as its threshold." }
        table {
            thead { tr { th scope="col" { "Artifact pattern" } th scope="col" { "Owner" } th scope="col" { "Principals" } th scope="col" { "Threshold" } } }
            tbody {
                @for d in &details {
                    @for s in &d.namespace.scopes {
                        tr {
                            td { code { (s) } }
                            td { "namespace " a href=(ns_path(d.namespace.name.as_str())) { (d.namespace.name) } }
                            td {
                                @for k in d.keys.iter().filter(usable) { "key " code { (k.key.id) } br; }
                                @for i in &d.identities { "identity " (i.name) br; }
                            }
                            td { (d.namespace.threshold) }
                        }
                    }
                    @for sd in &d.sub_delegations {
                        @for s in &sd.scopes {
                            tr {
                                td { code { (s) } }
                                td { "sub-delegation " (sd.name) " of " (d.namespace.name) }
                                td { @for k in sd.keys.iter().filter(usable) { "key " code { (k.key.id) } br; } }
                                td { (sd.threshold) }
                            }
                        }
                    }
                }
                @for p in &peers {
                    @for pat in &p.peer.patterns {
                        tr {
                            td { code { (pat) } }
                            td { "peer " (p.peer.name) @if p.peer.terminating { " (terminating)" } }
                            td { "whatever " code { (p.peer.url) } " says" }
                            td { "—" }
                        }
                    }
                }
            }
        }
        (pager("/ui/who-can-sign", "Pages of namespaces", after.is_none(), next.as_deref()))
    };
    respond(
        StatusCode::OK,
        page(Some(&who), "/ui/who-can-sign", "Who can sign what", content),
    )
}

async fn get_ci(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    let names: Vec<String> = match visible_namespaces(&state, &who).await {
        Ok(l) => l.into_iter().map(|n| n.name.to_string()).collect(),
        Err(e) => return views::error_page(&e),
    };
    let now = state.now();
    // `after`: `namespace/key id` of the last row of the previous page.
    let after = after_of(&req);
    // Namespace names have no `/`; rows go by (namespace, key id).
    let from = after
        .as_deref()
        .map(|a| a.split_once('/').unwrap_or((a, "")))
        .map(|(ns, id)| (ns.to_owned(), id.to_owned()));
    let live = crate::http::admin::read_store(&state, move |s| {
        let mut out = Vec::new();
        for ns in names {
            if from.as_ref().is_some_and(|(a, _)| ns.as_str() < a.as_str()) {
                continue;
            }
            for k in s.keys(&ns)? {
                let past = from.as_ref().is_none_or(|(a, id)| {
                    (ns.as_str(), k.key.id.as_str()) > (a.as_str(), id.as_str())
                });
                if past && k.key.ephemeral && k.key.not_after.is_some_and(|t| t > now) {
                    out.push((ns.clone(), k.key));
                }
            }
        }
        out.sort_by(|(a, k), (b, l)| (a, k.id.as_str()).cmp(&(b, l.id.as_str())));
        Ok(out)
    })
    .await;
    let live = match live {
        Ok(l) => l,
        Err(e) => return views::error_page(&e),
    };
    let next = (live.len() > CI_PAGE)
        .then(|| {
            live.get(CI_PAGE - 1)
                .map(|(ns, k)| format!("{ns}/{}", k.id))
        })
        .flatten();
    let content = html! {
        p { "Short-lived keys issued to CI jobs, still in force (they leave the trust documents when they expire)." }
        table {
            thead { tr { th scope="col" { "Namespace" } th scope="col" { "Key" } th scope="col" { "Principal" } th scope="col" { "Until" } th scope="col" { "Time left" } } }
            tbody {
                @for (ns, k) in live.iter().take(CI_PAGE) {
                    tr {
                        td { (ns) }
                        td { code { (k.id) } }
                        td { (k.principal.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default()).unwrap_or_default()) }
                        td { (fmt_time(k.not_after)) }
                        td { (k.not_after.map(|t| { let s = (t - now).whole_seconds(); format!("{}m {}s", s / 60, s % 60) }).unwrap_or_default()) }
                    }
                }
            }
        }
        (pager("/ui/ci", "Pages of CI delegations", after.is_none(), next.as_deref()))
    };
    respond(
        StatusCode::OK,
        page(Some(&who), "/ui/ci", "CI delegations", content),
    )
}

/// The fields of the peers page's forms: `name` (the API's path), then
/// those that make the API's request (`PutPeer`, `PutRoot`, `PutTsa`).
const PEER_FORM: [(&str, As); 7] = [
    ("name", As::Text),
    ("patterns", As::Lines),
    ("url", As::Text),
    ("root.sha256", As::Text),
    ("root.keyids", As::Lines),
    ("root.threshold", As::Number),
    ("terminating", As::Flag),
];
const ROOT_FORM: [(&str, As); 2] = [("name", As::Text), ("pem", As::Text)];
const TSA_FORM: [(&str, As); 3] = [
    ("name", As::Text),
    ("certificate", As::Text),
    ("description", As::Text),
];

async fn peers_page(
    who: &Who,
    state: &AppState,
    refused: Option<&FormState>,
    status: StatusCode,
    done: Option<&str>,
) -> HttpResponse {
    let read =
        crate::http::admin::read_store(state, |s| Ok((s.peers()?, s.org_roots()?, s.tsas()?)))
            .await;
    let (peers, roots, tsas) = match read {
        Ok(r) => r,
        Err(e) => return views::error_page(&e),
    };
    let p = FormState::of(refused, "put-peer");
    let r = FormState::of(refused, "put-root");
    let t = FormState::of(refused, "put-tsa");
    let removal = FormState::of(refused, "remove");
    let content = html! {
        (done_notice(done))
        (general_error(&removal))
        h2 { "Peers" }
        p { "Peer keyshare services answer for the artifact names their patterns match; verifiers follow them with the root pinned here." }
        @if peers.is_empty() { p { "No peer." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Patterns" } th scope="col" { "URL" } th scope="col" { "Pinned root" } th scope="col" { "Terminating" } th scope="col" { "Actions" } } }
                tbody {
                    @for peer in &peers {
                        tr {
                            td { (peer.peer.name) }
                            td { @for pat in &peer.peer.patterns { code { (pat) } br; } }
                            td { code { (peer.peer.url) } }
                            td { (peer.peer.root.to_string()) }
                            td { (if peer.peer.terminating { "yes" } else { "no" }) }
                            td {
                                (name_button(who, "/ui/peers/remove", &peer.peer.name, &format!("Remove peer {}", peer.peer.name), "Remove"))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add or replace a peer" }
        form.card method="post" action="/ui/peers" {
            (csrf(who))
            (general_error(&p))
            (input(&p, "name", "Name", Some("A peer of that name is replaced."), "text", true))
            (input(&p, "url", "URL", Some("The peer's https:// base URL."), "text", true))
            (textarea(&p, "patterns", "Artifact patterns", Some("One a line, e.g. registry.partner.example/**"), true))
            p.hint { "Pin the peer's root by the SHA-256 of its root file, or by its root key ids and threshold." }
            (input(&p, "root.sha256", "Root file SHA-256", None, "text", false))
            (textarea(&p, "root.keyids", "Root key ids", Some("One a line."), false))
            (input(&p, "root.threshold", "Root threshold", None, "number", false))
            div.field {
                label for="put-peer-terminating" {
                    input type="checkbox" id="put-peer-terminating" name="terminating" value="on" checked[p.values.contains_key("terminating")];
                    " Terminating: the peer owns its patterns before any namespace"
                }
            }
            button type="submit" { "Save peer" }
        }
        h2 { "Organization X.509 roots" }
        p { "The organization's root certificates, published as " code { "org/roots/<name>.pem" } " for verifiers to fetch with the rest of the repository." }
        @if roots.is_empty() { p { "No root certificate." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "SHA-256" } th scope="col" { "Added" } th scope="col" { "Actions" } } }
                tbody {
                    @for root in &roots {
                        tr {
                            td { (root.name) }
                            td { code { (root.sha256) } }
                            td { (rfc3339(root.added_at)) }
                            td {
                                (name_button(who, "/ui/roots/remove", &root.name, &format!("Remove root {}", root.name), "Remove"))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add or replace a root certificate" }
        form.card method="post" action="/ui/roots" {
            (csrf(who))
            (general_error(&r))
            (input(&r, "name", "Name", Some("A root of that name is replaced."), "text", true))
            (textarea(&r, "pem", "CA certificate (PEM)", Some("The certificate only: a private key is refused."), true))
            button type="submit" { "Save root" }
        }
        h2 { "Trusted timestamp authorities" }
        p { "RFC 3161 timestamps from these authorities give verifiers a signing time they need not take from the signer." }
        @if tsas.is_empty() { p { "No trusted timestamp authority." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "SHA-256" } th scope="col" { "Description" } th scope="col" { "Actions" } } }
                tbody {
                    @for tsa in &tsas {
                        tr {
                            td { (tsa.tsa.name) }
                            td { code { (tsa.tsa.certificate.sha256()) } }
                            td { (tsa.tsa.description.as_deref().unwrap_or("")) }
                            td {
                                (name_button(who, "/ui/tsas/remove", &tsa.tsa.name, &format!("Stop trusting TSA {}", tsa.tsa.name), "Remove"))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Trust a timestamp authority" }
        form.card method="post" action="/ui/tsas" {
            (csrf(who))
            (general_error(&t))
            (input(&t, "name", "Name", Some("A TSA of that name is replaced."), "text", true))
            (textarea(&t, "certificate", "Certificate (PEM)", Some("The TSA's CA, or the TSA's own certificate (extended key usage timeStamping). A private key is refused."), true))
            (input(&t, "description", "Description", None, "text", false))
            button type="submit" { "Save TSA" }
        }
    };
    respond(
        status,
        page(Some(who), "/ui/peers", "Peers, roots and TSAs", content),
    )
}

async fn get_peers(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    peers_page(&who, &state, None, StatusCode::OK, done_of(&req).as_deref()).await
}

/// A one-button form in a table row posting `name` to `action` (a
/// removal); `label` names the row for assistive technology.
fn name_button(who: &Who, action: &str, name: &str, label: &str, text: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(who))
            input type="hidden" name="name" value=(name);
            button.danger type="submit" aria-label=(label) { (text) }
        }
    }
}

/// The form's `name` (the API's path parameter): required.
fn name_field(form: &form::Form) -> Result<String, ApiError> {
    form.get("name")
        .map(|n| n.trim().to_owned())
        .ok_or_else(|| ApiError::invalid("name", "must be given"))
}

/// A form of the peers page (org admins only): `act` makes the change;
/// a refusal shows the page again with the error at its field (removals
/// name no field: their error shows above the page).
async fn peers_post<F, Fut>(
    (req, state, body): (HttpRequest, Data, Body),
    which: PostedForm,
    act: F,
) -> HttpResponse
where
    F: FnOnce(AppState, Caller, form::Form) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    let who = who!(req, state);
    let form = posted!(req, state, body, who);
    if let Err(answer) = org_only(&who) {
        return *answer;
    }
    let values = form.values();
    let result = act(state.get_ref().clone(), who.caller.clone(), form).await;
    match result {
        Ok(()) => see_other(&format!("/ui/peers?done={}", which.done)),
        Err(e) => {
            let names: Vec<&str> = which.fields.iter().map(|(n, _)| *n).collect();
            let f = FormState::refused(which.name, values, &e, &names);
            peers_page(&who, &state, Some(&f), e.status(), None).await
        }
    }
}

async fn post_peer(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    peers_post(
        (req, state, body),
        PostedForm {
            name: "put-peer",
            fields: &PEER_FORM,
            done: "peer-saved",
        },
        |state, caller, form| async move {
            let name = name_field(&form)?;
            let put: PutPeer = form::request(&form, &PEER_FORM[1..])?;
            peers::put_peer_as(&state, &caller, name, put)
                .await
                .map(drop)
        },
    )
    .await
}

async fn post_root(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    peers_post(
        (req, state, body),
        PostedForm {
            name: "put-root",
            fields: &ROOT_FORM,
            done: "root-saved",
        },
        |state, caller, form| async move {
            let name = name_field(&form)?;
            let put: PutRoot = form::request(&form, &ROOT_FORM[1..])?;
            roots::put_root_as(&state, &caller, name, put)
                .await
                .map(drop)
        },
    )
    .await
}

async fn post_tsa(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    peers_post(
        (req, state, body),
        PostedForm {
            name: "put-tsa",
            fields: &TSA_FORM,
            done: "tsa-saved",
        },
        |state, caller, form| async move {
            let name = name_field(&form)?;
            let put: PutTsa = form::request(&form, &TSA_FORM[1..])?;
            tsas::put_tsa_as(&state, &caller, name, put).await.map(drop)
        },
    )
    .await
}

/// What a removal on the peers page removes.
#[derive(Clone, Copy)]
enum Anchor {
    Peer,
    Root,
    Tsa,
}

/// Removes the peer, root certificate or TSA the form names.
async fn remove_anchor(req: HttpRequest, state: Data, body: Body, what: Anchor) -> HttpResponse {
    let done = match what {
        Anchor::Peer => "peer-removed",
        Anchor::Root => "root-removed",
        Anchor::Tsa => "tsa-removed",
    };
    peers_post(
        (req, state, body),
        PostedForm {
            name: "remove",
            fields: &[],
            done,
        },
        |state, caller, form| async move {
            let name = name_field(&form)?;
            match what {
                Anchor::Peer => peers::remove_peer_as(&state, &caller, name).await,
                Anchor::Root => roots::remove_root_as(&state, &caller, name).await,
                Anchor::Tsa => tsas::remove_tsa_as(&state, &caller, name).await,
            }
        },
    )
    .await
}

async fn post_remove_peer(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    remove_anchor(req, state, body, Anchor::Peer).await
}

async fn post_remove_root(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    remove_anchor(req, state, body, Anchor::Root).await
}

async fn post_remove_tsa(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    remove_anchor(req, state, body, Anchor::Tsa).await
}

// ---- the decision simulator ----

const SIMULATE: [&str; 4] = ["artifact", "signer", "key_id", "signed_at"];

fn simulate_page(
    who: &Who,
    f: &FormState,
    outcome: Option<&super::simulate::Outcome>,
    status: StatusCode,
) -> HttpResponse {
    let content = html! {
        p { "What a verifier decides for an artifact signed by a key or certificate, from what this server has published (the same decision as " code { "keyshare decide" } ")." }
        @if let Some(o) = outcome {
            section.card aria-live="polite" id="decision" {
                h2 { "Decision" }
                p class=(if o.trusted { "trusted" } else { "untrusted" }) id="decision-line" { (o.line) }
                @if let Some(code) = &o.reason { p.hint { "Reason code: " code { (code) } } }
            }
        }
        form.card method="post" action="/ui/simulate" {
            (csrf(who))
            (general_error(f))
            (input(f, "artifact", "Artifact name", Some("registry.example/team-a/app"), "text", true))
            (textarea(f, "signer", "Signer: public key or certificate chain (PEM) or TUF key object", Some("Leave empty to name a key by its id below."), false))
            (input(f, "key_id", "Signer key id", Some("Optional: a key by the id its namespace lists it under."), "text", false))
            (input(f, "signed_at", "Signed at", Some("RFC 3339; empty: now."), "text", false))
            button type="submit" { "Decide" }
        }
    };
    respond(
        status,
        page(Some(who), "/ui/simulate", "Decision simulator", content),
    )
}

async fn get_simulate(req: HttpRequest, state: Data) -> HttpResponse {
    let who = who!(req, state);
    let f = FormState {
        form: "simulate",
        ..FormState::default()
    };
    simulate_page(&who, &f, None, StatusCode::OK)
}

async fn post_simulate(req: HttpRequest, state: Data, body: Body) -> HttpResponse {
    let who = who!(req, state);
    let form = posted!(req, state, body, who);
    let values: BTreeMap<String, String> = form.values();
    match super::simulate::decide(&state, &who.session_id, &form).await {
        Ok(outcome) => {
            let f = FormState {
                form: "simulate",
                values,
                ..FormState::default()
            };
            simulate_page(&who, &f, Some(&outcome), StatusCode::OK)
        }
        Err(e) => {
            let f = FormState::refused("simulate", values, &e, &SIMULATE);
            simulate_page(&who, &f, None, e.status())
        }
    }
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/sign-in", web::get().to(get_sign_in))
        .route("/sign-in", web::post().to(post_sign_in))
        .route("/sign-out", web::post().to(post_sign_out))
        .route("/namespaces", web::get().to(get_namespaces))
        .route("/namespaces", web::post().to(post_namespaces))
        .route("/namespaces/{ns}", web::get().to(get_namespace))
        .route("/namespaces/{ns}/keys", web::post().to(post_add_key))
        .route(
            "/namespaces/{ns}/threshold",
            web::post().to(post_set_threshold),
        )
        .route("/namespaces/{ns}/scopes", web::post().to(post_add_scopes))
        .route(
            "/namespaces/{ns}/keys/remove",
            web::post().to(post_remove_key),
        )
        .route(
            "/namespaces/{ns}/revocations",
            web::post().to(post_revoke_key),
        )
        .route(
            "/namespaces/{ns}/identities",
            web::post().to(post_add_identity),
        )
        .route(
            "/namespaces/{ns}/identities/remove",
            web::post().to(post_remove_identity),
        )
        .route(
            "/namespaces/{ns}/sub-delegations",
            web::post().to(post_add_sub_delegation),
        )
        .route(
            "/namespaces/{ns}/sub-delegations/remove",
            web::post().to(post_remove_sub_delegation),
        )
        .route("/tokens", web::get().to(get_tokens))
        .route("/tokens", web::post().to(post_tokens))
        .route("/tokens/revoke", web::post().to(post_revoke_token))
        .route("/revocations", web::get().to(get_revocations))
        .route("/revocations", web::post().to(post_revocations))
        .route("/audit", web::get().to(get_audit))
        .route("/who-can-sign", web::get().to(get_who_can_sign))
        .route("/ci", web::get().to(get_ci))
        .route("/peers", web::get().to(get_peers))
        .route("/peers", web::post().to(post_peer))
        .route("/peers/remove", web::post().to(post_remove_peer))
        .route("/roots", web::post().to(post_root))
        .route("/roots/remove", web::post().to(post_remove_root))
        .route("/tsas", web::post().to(post_tsa))
        .route("/tsas/remove", web::post().to(post_remove_tsa))
        .route("/simulate", web::get().to(get_simulate))
        .route("/simulate", web::post().to(post_simulate));
}
