//! A namespace's X.509 identities: add and remove.

use std::collections::BTreeSet;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use keyshare_policy::trust::{NamespaceName, X509Identity};

use super::{
    check_label, check_window, no_content, path_namespace, publish, refuse_private_key, to_value,
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
    path = "/api/v1/namespaces/{ns}/identities",
    tag = "identities",
    summary = "Add an X.509 identity to a namespace",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace.")),
    request_body = keyshare_policy::trust::X509Identity,
    responses(
        (status = 201, description = "The identity as listed.", body = keyshare_policy::trust::X509Identity),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "No such namespace.", body = ErrorBody),
        (status = 409, description = "`already_exists`: an identity of that name exists.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_identity(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddIdentity.action(&ns))?;
    let namespace = path_namespace(&ns)?;
    // X509Identity refuses unknown fields, parses every CA certificate and the subject.
    let identity: X509Identity = body.json().await?;
    let view = add_identity_as(&state, &caller, namespace, identity).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// Adds an X.509 identity to `namespace`, as `caller` (the API and the
/// portal's form); returns it as listed.
pub(in crate::http) async fn add_identity_as(
    state: &AppState,
    caller: &Caller,
    namespace: NamespaceName,
    identity: X509Identity,
) -> Result<X509Identity, ApiError> {
    authorize(
        &caller.token,
        Endpoint::AddIdentity.action(namespace.as_str()),
    )?;
    check_label("name", &identity.name)?;
    for (i, ca) in identity.ca_certs.iter().enumerate() {
        refuse_private_key(&format!("ca_certs[{i}]"), ca.pem())?;
    }
    if identity.ca_certs.is_empty() {
        return Err(ApiError::invalid(
            "ca_certs",
            "must list at least one CA certificate",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, ca) in identity.ca_certs.iter().enumerate() {
        if !seen.insert(ca.sha256().clone()) {
            return Err(ApiError::invalid(
                &format!("ca_certs[{i}]"),
                "certificate is listed twice",
            ));
        }
    }
    check_window("", identity.not_before, identity.not_after)?;
    publish(
        state,
        caller,
        Change::AddIdentity {
            namespace,
            identity: identity.clone(),
        },
    )
    .await?;
    Ok(identity)
}

#[derive(Debug, Deserialize)]
pub(super) struct NamedPath {
    pub(super) ns: String,
    pub(super) name: String,
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/identities/{name}",
    tag = "identities",
    summary = "Remove an X.509 identity",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace."), ("name" = String, Path, description = "The identity's name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "`invalid`: removing it would leave fewer distinct keys and identities than the threshold.", body = ErrorBody),
        oa::AuthErrors,
        (status = 404, description = "No such namespace or identity.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_identity(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<NamedPath>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RemoveIdentity.action(&path.ns))?;
    let namespace = path_namespace(&path.ns)?;
    remove_identity_as(&state, &caller, namespace, path.name.clone()).await?;
    Ok(no_content())
}

/// Removes identity `name` from `namespace`, as `caller` (the API and the
/// portal's form).
pub(in crate::http) async fn remove_identity_as(
    state: &AppState,
    caller: &Caller,
    namespace: NamespaceName,
    name: String,
) -> Result<(), ApiError> {
    authorize(
        &caller.token,
        Endpoint::RemoveIdentity.action(namespace.as_str()),
    )?;
    publish(state, caller, Change::RemoveIdentity { namespace, name }).await?;
    Ok(())
}
