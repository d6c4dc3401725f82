//! A namespace's keys: add (a TUF key object or PEM) and remove.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use keyshare_policy::api::admin::AddKey;
use keyshare_policy::datetime::Rfc3339Time;
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::TrustedKey;

use super::{
    bad_key, check_key_object, check_label, check_window, no_content, path_namespace, publish,
    read, to_value, Endpoint,
};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::Change;

/// A TUF key entry from a PEM SubjectPublicKeyInfo; the scheme follows the
/// key type: Ed25519, ECDSA P-256, RSA-PSS-SHA256.
pub(super) fn key_from_pem(pem: &str) -> Result<Key, ApiError> {
    Key::from_spki_pem(pem).map_err(|e| bad_key("public_key_pem", e))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/keys",
    tag = "keys",
    summary = "List a key in a namespace",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace.")),
    request_body = keyshare_policy::api::admin::AddKey,
    responses(
        (status = 201, description = "The key as listed, with its id.", body = keyshare_policy::trust::TrustedKey),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "No such namespace.", body = ErrorBody),
        (status = 409, description = "`already_exists`: the id or the same key is already listed; `revoked`: the key is revoked.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_key(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddKey.action(&ns))?;
    // A path that cannot name a namespace is 404 before the body is read.
    path_namespace(&ns)?;
    let req: AddKey = body.json().await?;
    let view = add_key_as(&state, &caller, &ns, req).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// Lists a key in namespace `ns` as `caller`: the one implementation of
/// `POST /api/v1/namespaces/{ns}/keys` and of the portal's form.
pub(in crate::http) async fn add_key_as(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    req: AddKey,
) -> Result<TrustedKey, ApiError> {
    authorize(&caller.token, Endpoint::AddKey.action(ns))?;
    let namespace = path_namespace(ns)?;
    let (key, field) = match (req.key, req.public_key_pem) {
        (Some(key), None) => (key, "key"),
        (None, Some(pem)) => (key_from_pem(&pem)?, "public_key_pem"),
        _ => {
            return Err(ApiError::invalid(
                ".",
                "give exactly one of `key` (a TUF key object) and `public_key_pem`",
            ))
        }
    };
    let id = match req.id {
        Some(id) => id,
        None => key.key_id().map_err(|e| ApiError::invalid(field, e))?,
    };
    let trusted = TrustedKey {
        id,
        key,
        not_before: req.not_before.map(Rfc3339Time::time),
        not_after: req.not_after.map(Rfc3339Time::time),
        ephemeral: false,
        description: req.description,
        principal: None,
        layout_root: req.layout_root,
    };
    check_label("id", trusted.id.as_str())?;
    let spki = if field == "key" {
        check_key_object(field, &trusted.id, &trusted.key)?
    } else {
        trusted
            .key
            .spki_der(&trusted.id)
            .map_err(|e| bad_key(field, e))?
    };
    check_window("", trusted.not_before, trusted.not_after)?;
    if let Some(d) = &trusted.description {
        check_label("description", d)?;
    }
    let listed = {
        let ns = namespace.clone();
        read(state, move |s| s.keys(ns.as_str())).await?
    };
    for other in &listed {
        if other.key.id == trusted.id {
            return Err(ApiError::conflict(format!(
                "id: key `{}` is already listed in namespace `{namespace}`",
                trusted.id
            )));
        }
        if other.key.key.spki_der(&other.key.id).ok().as_ref() == Some(&spki) {
            return Err(ApiError::conflict(format!(
                "{field}: the same key is already listed in namespace `{namespace}` as `{}`",
                other.key.id
            )));
        }
    }
    publish(
        state,
        caller,
        Change::AddKey {
            namespace,
            key: trusted.clone(),
        },
    )
    .await?;
    Ok(trusted)
}

#[derive(Debug, Deserialize)]
pub(super) struct KeyPath {
    ns: String,
    key_id: String,
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/keys/{key_id}",
    tag = "keys",
    summary = "Remove a key from a namespace",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace."), ("key_id" = String, Path, description = "The id the key is listed under.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "`invalid`: removing it would leave fewer distinct keys and identities than the threshold.", body = ErrorBody),
        oa::AuthErrors,
        (status = 404, description = "No such namespace or key.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<KeyPath>,
) -> Result<HttpResponse, ApiError> {
    remove_key_as(&state, &caller, &path.ns, &path.key_id).await?;
    Ok(no_content())
}

/// Removes key `key_id` from namespace `ns` as `caller` (the API's
/// `DELETE` and the portal's form).
pub(in crate::http) async fn remove_key_as(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    key_id: &str,
) -> Result<(), ApiError> {
    authorize(&caller.token, Endpoint::RemoveKey.action(ns))?;
    let namespace = path_namespace(ns)?;
    let key_id = KeyId::new(key_id);
    publish(state, caller, Change::RemoveKey { namespace, key_id }).await?;
    Ok(())
}
