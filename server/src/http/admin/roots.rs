//! The organization's X.509 roots (put, list, remove) and the TUF root a
//! root ceremony submits.

use actix_web::{web, HttpResponse};
use serde_json::Value;

use keyshare_policy::api::admin::{OrgRootList, OrgRootView, PutRoot, RootSubmitted};
use keyshare_policy::datetime::rfc3339;
use keyshare_policy::trust::{CaCert, NamespaceName};

use super::{no_content, publish, read, refuse_private_key, to_value, Endpoint};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::Change;
use crate::store::{OrgRoot, Store};

fn root_view(r: &OrgRoot) -> OrgRootView {
    OrgRootView {
        name: r.name.clone(),
        pem: r.pem.clone(),
        sha256: r.sha256.clone(),
        target: r.target_path(),
        added_at: rfc3339(r.added_at),
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/roots/{name}",
    tag = "roots",
    summary = "Add or replace an organization root certificate",
    params(("name" = String, Path, description = "The root's name.")),
    request_body = keyshare_policy::api::admin::PutRoot,
    responses(
        (status = 200, description = "The root certificate.", body = keyshare_policy::api::admin::OrgRootView),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 409, description = "`already_exists`: the same certificate is listed under another name.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn put_root(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::PutRoot.action(""))?;
    let req: PutRoot = body.json().await?;
    let root = put_root_as(&state, &caller, name.into_inner(), req).await?;
    Ok(HttpResponse::Ok().json(to_value(&root)?))
}

/// Adds or replaces root certificate `name`, as `caller` (the API and the
/// portal's form).
pub(in crate::http) async fn put_root_as(
    state: &AppState,
    caller: &Caller,
    name: String,
    req: PutRoot,
) -> Result<OrgRootView, ApiError> {
    authorize(&caller.token, Endpoint::PutRoot.action(""))?;
    if !NamespaceName::is_well_formed(&name) {
        return Err(ApiError::invalid(
            "name",
            format!(
                "`{name}` is not a root name (1 to 63 of a-z, 0-9 and `-`, not starting with `-`)"
            ),
        ));
    }
    refuse_private_key("pem", &req.pem)?;
    CaCert::parse(&req.pem).map_err(|e| ApiError::invalid("pem", e))?;
    publish(
        state,
        caller,
        Change::PutOrgRoot {
            name: name.clone(),
            pem: req.pem,
        },
    )
    .await?;
    let root = read(state, move |s| s.org_root(&name)).await?;
    Ok(root_view(&root))
}

#[utoipa::path(
    get,
    path = "/api/v1/roots",
    tag = "roots",
    summary = "List the organization's root certificates",
    responses(
        (status = 200, description = "Every root, by name.", body = keyshare_policy::api::admin::OrgRootList),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_roots(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListRoots.action(""))?;
    let list = read(&state, Store::org_roots).await?;
    let answer = OrgRootList {
        roots: list.iter().map(root_view).collect(),
    };
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/roots/{name}",
    tag = "roots",
    summary = "Remove an organization root certificate",
    params(("name" = String, Path, description = "The root's name.")),
    responses(
        (status = 204, description = "Removed."),
        oa::AuthErrors,
        (status = 404, description = "No such root.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_root(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    remove_root_as(&state, &caller, name.into_inner()).await?;
    Ok(no_content())
}

/// Removes root certificate `name`, as `caller` (the API and the portal's
/// form).
pub(in crate::http) async fn remove_root_as(
    state: &AppState,
    caller: &Caller,
    name: String,
) -> Result<(), ApiError> {
    authorize(&caller.token, Endpoint::RemoveRoot.action(""))?;
    publish(state, caller, Change::RemoveOrgRoot { name }).await?;
    Ok(())
}

/// `POST /api/v1/root`: the body is the signed root (N+1) itself.
#[utoipa::path(
    post,
    path = "/api/v1/root",
    tag = "root",
    summary = "Submit the next TUF root (from a root ceremony)",
    request_body = oa::SignedRoot,
    responses(
        (status = 201, description = "What the new root's publish made.", body = keyshare_policy::api::admin::RootSubmitted),
        (status = 400, description = "`invalid`: a threshold is not met, the root has expired or does not list the online keys; `malformed_json`.", body = ErrorBody),
        (status = 413, response = oa::TooLarge),
        (status = 415, response = oa::UnsupportedMedia),
        oa::AuthErrors,
        (status = 409, description = "`root_version`: not the next version.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn submit_root(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::SubmitRoot.action(""))?;
    let bytes = body.bytes().await?;
    let value: Value = crate::http::body::parse_json(&bytes)?;
    let version = value
        .get("signed")
        .and_then(|s| s.get("version"))
        .and_then(Value::as_u64);
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let now = state.now();
    let applied = web::block(move || publisher.submit_root(&actor, &bytes, now)).await??;
    let answer = RootSubmitted {
        root_version: version,
        files: applied.files.to_vec(),
        timestamp_version: applied.timestamp_version,
        audit_seq: applied.audit_seq,
    };
    Ok(HttpResponse::Created().json(to_value(&answer)?))
}
