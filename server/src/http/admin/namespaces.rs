//! Namespaces: create, list, show (with the standing of every key), delete,
//! threshold and scopes; the namespace views other resources answer with.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use actix_web::{web, HttpRequest, HttpResponse};
use time::{Duration, OffsetDateTime};

use keyshare_policy::api::admin::{
    AddScopes, CreateNamespace, KeyRevocationView, KeyView, NamespaceDetail, NamespaceList,
    NamespaceQuery, NamespaceRevocationView, NamespaceSummary, SetThreshold, SubDelegationView,
};
use keyshare_policy::datetime::{parse_duration, rfc3339};
use keyshare_policy::trust::{
    KeyRevocation, KeyStanding, NamespaceEntry, NamespaceName, Revocation, RevokedSubject,
    Sha256Hex, TrustedKey,
};

use super::{
    check_label, check_patterns, no_content, path_namespace, publish, query, read, to_value,
    Endpoint,
};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::Change;
use crate::store::{self, NamespaceRecord, NamespaceRevocationRecord, Store};

pub(in crate::http) fn namespace_view(r: &NamespaceRecord) -> NamespaceSummary {
    NamespaceSummary {
        name: r.entry.name.clone(),
        scopes: r.entry.scopes.clone(),
        maintainers: r.entry.maintainers.clone(),
        threshold: r.threshold,
        created_at: rfc3339(r.created_at),
    }
}

/// How far ahead a key's `not_after` flags it as expiring soon, unless
/// the request says (`?expiring_within=`).
pub(in crate::http) const DEFAULT_EXPIRING_WITHIN: Duration = Duration::days(30);

/// A listed key as the trust document has it, plus how it stands at `now`:
/// `spki_sha256`, `state` (`active`, `expires_soon`, `not_yet_valid`,
/// `expired`, `revoked`), `expired`, `expires_soon` and `revocation`
/// (`{"by": "organization"|"namespace", "revoked_at", "reason",
/// "in_effect"}`, or null).
fn key_view(
    key: &TrustedKey,
    fingerprint: Option<&Sha256Hex>,
    revocation: Option<KeyRevocation<'_>>,
    now: OffsetDateTime,
    horizon: Duration,
) -> KeyView {
    let standing = KeyStanding::of(key, revocation, now, horizon);
    KeyView {
        key: key.clone(),
        spki_sha256: fingerprint.cloned(),
        state: standing.state.as_str().to_owned(),
        expired: standing.expired,
        expires_soon: standing.expires_soon,
        revocation: standing.revocation.map(|r| KeyRevocationView {
            by: r.by.as_str().to_owned(),
            revoked_at: rfc3339(r.revocation.revoked_at),
            reason: r.revocation.reason.clone(),
            in_effect: now >= r.revocation.revoked_at,
        }),
    }
}

/// Keys with the revocations that apply to them, read in one go.
struct KeysWithRevocations {
    keys: Vec<TrustedKey>,
    /// Per key: its fingerprint (`None` if it cannot be computed), the
    /// organization's revocation of it.
    organization: Vec<(Option<Sha256Hex>, Option<Revocation>)>,
}

fn with_revocations(s: &Store, keys: Vec<TrustedKey>) -> store::Result<KeysWithRevocations> {
    let mut organization = Vec::with_capacity(keys.len());
    for k in &keys {
        let fp = k.key.fingerprint(&k.id).ok();
        let revocation = match &fp {
            Some(fp) => s
                .revocation(&RevokedSubject::Key(fp.clone()))?
                .map(|r| r.revocation),
            None => None,
        };
        organization.push((fp, revocation));
    }
    Ok(KeysWithRevocations { keys, organization })
}

impl KeysWithRevocations {
    fn views(
        &self,
        own: &[NamespaceRevocationRecord],
        now: OffsetDateTime,
        horizon: Duration,
    ) -> Vec<KeyView> {
        self.keys
            .iter()
            .zip(&self.organization)
            .map(|(k, (fp, org))| {
                let ns = fp.as_ref().and_then(|fp| {
                    own.iter()
                        .find(|r| r.revocation.subject == RevokedSubject::Key(fp.clone()))
                        .map(|r| &r.revocation)
                });
                let revocation = KeyRevocation::earliest(org.as_ref(), ns);
                key_view(k, fp.as_ref(), revocation, now, horizon)
            })
            .collect()
    }
}

fn namespace_revocation_view(r: &NamespaceRevocationRecord) -> NamespaceRevocationView {
    NamespaceRevocationView {
        revocation: r.revocation.clone(),
        namespace: r.namespace.clone(),
        key_id: r.key_id.clone(),
        recorded_at: rfc3339(r.recorded_at),
    }
}

/// The namespace with its keys (and how each stands at `now`, keys
/// expiring within `horizon` flagged), identities, sub-delegations and its
/// own revocations.
pub(in crate::http) async fn namespace_detail(
    state: &AppState,
    ns: NamespaceName,
    horizon: Duration,
) -> Result<NamespaceDetail, ApiError> {
    let (record, keys, identities, subs, own) = read(state, move |s| {
        let keys = s.keys(ns.as_str())?.into_iter().map(|k| k.key).collect();
        let subs = s
            .sub_delegations(ns.as_str())?
            .into_iter()
            .map(|d| {
                let keys = with_revocations(s, d.sub_delegation.keys.clone())?;
                Ok((d.sub_delegation, keys))
            })
            .collect::<store::Result<Vec<_>>>()?;
        Ok((
            s.namespace(ns.as_str())?,
            with_revocations(s, keys)?,
            s.identities(ns.as_str())?,
            subs,
            s.namespace_revocations(ns.as_str())?,
        ))
    })
    .await?;
    let now = state.now();
    Ok(NamespaceDetail {
        namespace: namespace_view(&record),
        keys: keys.views(&own, now, horizon),
        identities: identities.into_iter().map(|i| i.identity).collect(),
        sub_delegations: subs
            .into_iter()
            .map(|(sub, keys)| SubDelegationView {
                name: sub.name,
                scopes: sub.scopes,
                threshold: sub.threshold,
                keys: keys.views(&own, now, horizon),
            })
            .collect(),
        revocations: own.iter().map(namespace_revocation_view).collect(),
        expiring_within_seconds: horizon.whole_seconds(),
        overlaps: None,
    })
}

/// Every namespace record, by name (after the caller was authorized to read).
pub(in crate::http) async fn list_records(
    state: &AppState,
) -> Result<Vec<NamespaceRecord>, ApiError> {
    read(state, Store::namespaces).await
}

// ---- namespaces ----

#[utoipa::path(
    post,
    path = "/api/v1/namespaces",
    tag = "namespaces",
    summary = "Create a namespace",
    request_body = keyshare_policy::api::admin::CreateNamespace,
    responses(
        (status = 201, description = "The namespace (with `overlaps` when `allow_overlap` let some through).", body = keyshare_policy::api::admin::NamespaceDetail),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 409, description = "`already_exists`: a namespace of that name exists; `scope_overlap`: a scope overlaps another namespace's (`details` names them).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_namespace(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::CreateNamespace.action(""))?;
    // `NamespaceName` refuses the names of the repository's own roles
    // (top-level and hashed bins) as the body is parsed.
    let req: CreateNamespace = body.json().await?;
    let view = create_namespace_as(&state, &caller, req).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// Creates a namespace as `caller` (the API and the portal's form).
pub(in crate::http) async fn create_namespace_as(
    state: &AppState,
    caller: &Caller,
    req: CreateNamespace,
) -> Result<NamespaceDetail, ApiError> {
    authorize(&caller.token, Endpoint::CreateNamespace.action(""))?;
    check_patterns("scopes", &req.scopes)?;
    let mut seen = BTreeSet::new();
    for (i, m) in req.maintainers.iter().enumerate() {
        let field = format!("maintainers[{i}]");
        check_label(&field, m)?;
        if !seen.insert(m.as_str()) {
            return Err(ApiError::invalid(&field, format!("`{m}` is listed twice")));
        }
    }
    let name = req.name.clone();
    let entry = NamespaceEntry {
        name: req.name,
        scopes: req.scopes,
        maintainers: req.maintainers,
    };
    let change = Change::CreateNamespace {
        entry: entry.clone(),
        threshold: NonZeroU32::MIN,
        allow_overlap: req.allow_overlap,
    };
    publish(state, caller, change).await?;
    let mut view = namespace_detail(state, name, DEFAULT_EXPIRING_WITHIN).await?;
    if req.allow_overlap {
        // What the namespace overlaps (the audit record of the create has it too).
        let overlaps = read(state, move |s| s.scope_overlaps(&entry, &[])).await?;
        view.overlaps = Some(to_value(&overlaps)?);
    }
    Ok(view)
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces",
    tag = "namespaces",
    summary = "List the namespaces",
    responses(
        (status = 200, description = "Every namespace, by name.", body = keyshare_policy::api::admin::NamespaceList),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_namespaces(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListNamespaces.action(""))?;
    let list = read(&state, Store::namespaces).await?;
    let answer = NamespaceList {
        namespaces: list.iter().map(namespace_view).collect(),
    };
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}",
    tag = "namespaces",
    summary = "A namespace with its keys and how each stands",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace."), keyshare_policy::api::admin::NamespaceQuery),
    responses(
        (status = 200, description = "The namespace with its keys, identities, sub-delegations and own revocations.", body = keyshare_policy::api::admin::NamespaceDetail),
        (status = 400, description = "`invalid`: `expiring_within` does not parse, or an unknown query parameter.", body = ErrorBody),
        oa::AuthErrors,
        (status = 404, description = "No such namespace.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn show_namespace(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ShowNamespace.action(&ns))?;
    let ns = path_namespace(&ns)?;
    let query: NamespaceQuery = query(&req)?;
    let horizon = match &query.expiring_within {
        None => DEFAULT_EXPIRING_WITHIN,
        Some(text) => parse_duration(text)
            .map_err(|e| ApiError::invalid("expiring_within", format!("`{text}`: {e}")))?,
    };
    let view = namespace_detail(&state, ns, horizon).await?;
    Ok(HttpResponse::Ok().json(to_value(&view)?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}",
    tag = "namespaces",
    summary = "Delete a namespace",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace.")),
    responses(
        (status = 204, description = "Deleted."),
        oa::AuthErrors,
        (status = 404, description = "No such namespace.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_namespace(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::DeleteNamespace.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    publish(&state, &caller, Change::DeleteNamespace { namespace }).await?;
    Ok(no_content())
}

#[utoipa::path(
    put,
    path = "/api/v1/namespaces/{ns}/threshold",
    tag = "namespaces",
    summary = "Set the threshold of a namespace",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace.")),
    request_body = keyshare_policy::api::admin::SetThreshold,
    responses(
        (status = 200, description = "The namespace.", body = keyshare_policy::api::admin::NamespaceDetail),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "No such namespace.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn set_threshold(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::SetThreshold.action(&ns))?;
    let req: SetThreshold = body.json().await?;
    let detail = set_threshold_as(&state, &caller, &ns, req).await?;
    Ok(HttpResponse::Ok().json(to_value(&detail)?))
}

/// Sets the threshold of namespace `ns` as `caller`: the one
/// implementation of `PUT /api/v1/namespaces/{ns}/threshold` and of the
/// portal's form.
pub(in crate::http) async fn set_threshold_as(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    req: SetThreshold,
) -> Result<NamespaceDetail, ApiError> {
    authorize(&caller.token, Endpoint::SetThreshold.action(ns))?;
    let namespace = path_namespace(ns)?;
    publish(
        state,
        caller,
        Change::SetThreshold {
            namespace: namespace.clone(),
            threshold: req.threshold,
        },
    )
    .await?;
    namespace_detail(state, namespace, DEFAULT_EXPIRING_WITHIN).await
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/scopes",
    tag = "namespaces",
    summary = "Widen a namespace (add scopes)",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace.")),
    request_body = keyshare_policy::api::admin::AddScopes,
    responses(
        (status = 201, description = "The namespace (with `overlaps` when `allow_overlap` let some through).", body = keyshare_policy::api::admin::NamespaceDetail),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "No such namespace.", body = ErrorBody),
        (status = 409, description = "`scope_overlap`: a new scope overlaps another namespace's (`details` names them).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_scopes(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddScopes.action(&ns))?;
    let req: AddScopes = body.json().await?;
    let view = add_scopes_as(&state, &caller, &ns, req).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// Adds scopes to namespace `ns` as `caller`: the one implementation of
/// `POST /api/v1/namespaces/{ns}/scopes` and of the portal's form.
pub(in crate::http) async fn add_scopes_as(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    req: AddScopes,
) -> Result<NamespaceDetail, ApiError> {
    authorize(&caller.token, Endpoint::AddScopes.action(ns))?;
    let namespace = path_namespace(ns)?;
    if req.scopes.is_empty() {
        return Err(ApiError::invalid(
            "scopes",
            "give at least one scope to add",
        ));
    }
    let current = {
        let ns = namespace.clone();
        read(state, move |s| s.namespace(ns.as_str())).await?
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, scope) in req.scopes.iter().enumerate() {
        if current.entry.scopes.contains(scope) {
            return Err(ApiError::invalid(
                &format!("scopes[{i}]"),
                format!("`{scope}` is already a scope of namespace `{namespace}`"),
            ));
        }
        if !seen.insert(scope.as_str()) {
            return Err(ApiError::invalid(
                &format!("scopes[{i}]"),
                format!("`{scope}` is given twice"),
            ));
        }
    }
    publish(
        state,
        caller,
        Change::AddScopes {
            namespace: namespace.clone(),
            scopes: req.scopes,
            allow_overlap: req.allow_overlap,
        },
    )
    .await?;
    let mut view = namespace_detail(state, namespace.clone(), DEFAULT_EXPIRING_WITHIN).await?;
    if req.allow_overlap {
        // What the added scopes overlap (the audit record has it too).
        let overlaps = read(state, move |s| {
            let now = s.namespace(namespace.as_str())?;
            s.scope_overlaps(&now.entry, &current.entry.scopes)
        })
        .await?;
        view.overlaps = Some(to_value(&overlaps)?);
    }
    Ok(view)
}
