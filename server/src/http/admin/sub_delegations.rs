//! A namespace's sub-delegations: add and remove.

use actix_web::{web, HttpResponse};

use keyshare_policy::trust::{NamespaceName, SubDelegation};

use super::identities::NamedPath;
use super::{
    check_keys, check_label, check_patterns, no_content, path_namespace, publish, to_value,
    Endpoint,
};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::Change;

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/sub-delegations",
    tag = "sub-delegations",
    summary = "Add a sub-delegation to a namespace",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace.")),
    request_body = keyshare_policy::trust::SubDelegation,
    responses(
        (status = 201, description = "The sub-delegation as listed.", body = keyshare_policy::trust::SubDelegation),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "No such namespace.", body = ErrorBody),
        (status = 409, description = "`already_exists`: a sub-delegation of that name exists; `revoked`: a key is revoked.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_sub_delegation(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddSubDelegation.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    let sub: SubDelegation = body.json().await?;
    let view = add_sub_delegation_as(&state, &caller, namespace, sub).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// Adds a sub-delegation to `namespace`, as `caller` (the API and the
/// portal's form); returns it as listed.
pub(in crate::http) async fn add_sub_delegation_as(
    state: &AppState,
    caller: &Caller,
    namespace: NamespaceName,
    sub: SubDelegation,
) -> Result<SubDelegation, ApiError> {
    authorize(
        &caller.token,
        Endpoint::AddSubDelegation.action(namespace.as_str()),
    )?;
    check_label("name", &sub.name)?;
    check_patterns("scopes", &sub.scopes)?;
    check_keys("keys", &sub.keys)?;
    if let Some(i) = sub.keys.iter().position(|k| k.layout_root) {
        return Err(ApiError::invalid(
            &format!("keys[{i}].layout_root"),
            "layout-root keys are the namespace's own keys, not a sub-delegation's",
        ));
    }
    if usize::try_from(sub.threshold.get()).map_or(true, |t| t > sub.keys.len()) {
        return Err(ApiError::invalid(
            "threshold",
            format!(
                "threshold {} is more than the {} keys listed",
                sub.threshold,
                sub.keys.len()
            ),
        ));
    }
    publish(
        state,
        caller,
        Change::AddSubDelegation {
            namespace,
            sub_delegation: sub.clone(),
        },
    )
    .await?;
    Ok(sub)
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/sub-delegations/{name}",
    tag = "sub-delegations",
    summary = "Remove a sub-delegation",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace."), ("name" = String, Path, description = "The sub-delegation's name.")),
    responses(
        (status = 204, description = "Removed."),
        oa::AuthErrors,
        (status = 404, description = "No such namespace or sub-delegation.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_sub_delegation(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<NamedPath>,
) -> Result<HttpResponse, ApiError> {
    authorize(
        &caller.token,
        Endpoint::RemoveSubDelegation.action(&path.ns),
    )?;
    let namespace = path_namespace(&path.ns)?;
    remove_sub_delegation_as(&state, &caller, namespace, path.name.clone()).await?;
    Ok(no_content())
}

/// Removes sub-delegation `name` from `namespace`, as `caller` (the API
/// and the portal's form).
pub(in crate::http) async fn remove_sub_delegation_as(
    state: &AppState,
    caller: &Caller,
    namespace: NamespaceName,
    name: String,
) -> Result<(), ApiError> {
    authorize(
        &caller.token,
        Endpoint::RemoveSubDelegation.action(namespace.as_str()),
    )?;
    publish(
        state,
        caller,
        Change::RemoveSubDelegation { namespace, name },
    )
    .await?;
    Ok(())
}
