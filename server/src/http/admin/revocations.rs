//! Revocations: a namespace's own (of its keys, for its artifacts) and
//! the organization's (keys and certificates, everywhere).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use keyshare_policy::api::admin::{
    AddRevocation, NamespaceKeyRevoked, RevocationAdded, RevocationList, RevocationListed,
    RevokeNamespaceKey,
};
use keyshare_policy::datetime::{rfc3339, Rfc3339Time};
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::{CaCert, NamespaceName, Revocation, RevokedSubject, Sha256Hex};

use super::keys::key_from_pem;
use super::{
    bad_key, check_key_object, check_label, no_content, path_namespace, publish, read, to_value,
    Endpoint,
};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::Change;
use crate::store::{Listing, Store};

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/revocations",
    tag = "revocations",
    summary = "Revoke a key for a namespace's own artifacts",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace.")),
    request_body = keyshare_policy::api::admin::RevokeNamespaceKey,
    responses(
        (status = 201, description = "The revocation, with where the key is listed in the namespace.", body = keyshare_policy::api::admin::NamespaceKeyRevoked),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "No such namespace, or no key listed there under `key_id`.", body = ErrorBody),
        (status = 409, description = "`already_exists`: the key is already revoked there, or the id names two different keys.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke_namespace_key(
    state: web::Data<AppState>,
    caller: Caller,
    ns: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::RevokeNamespaceKey.action(&ns))?;
    // A path that cannot name a namespace is 404 before the body is read.
    path_namespace(&ns)?;
    let req: RevokeNamespaceKey = body.json().await?;
    let view = revoke_namespace_key_as(&state, &caller, &ns, req).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// Namespace `ns` revokes one of its keys, as `caller` (the API and the
/// portal's form).
pub(in crate::http) async fn revoke_namespace_key_as(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    req: RevokeNamespaceKey,
) -> Result<NamespaceKeyRevoked, ApiError> {
    authorize(&caller.token, Endpoint::RevokeNamespaceKey.action(ns))?;
    let namespace = path_namespace(ns)?;
    check_label("key_id", req.key_id.as_str())?;
    check_label("reason", &req.reason)?;
    let found = {
        let (ns, id) = (namespace.clone(), req.key_id.clone());
        read(state, move |s| {
            s.namespace(ns.as_str())?;
            s.listed_under(Some(ns.as_str()), id.as_str())
        })
        .await?
    };
    let Some((fingerprint, _)) = found.first().cloned() else {
        return Err(ApiError::not_found(format!(
            "no key `{}` is listed in namespace `{namespace}` (its keys or sub-delegations)",
            req.key_id
        )));
    };
    if found.iter().any(|(other, _)| *other != fingerprint) {
        return Err(ApiError::conflict(format!(
            "key_id: `{}` names different keys in namespace `{namespace}` (its own keys and a \
             sub-delegation's); remove or rename one first",
            req.key_id
        )));
    }
    let existing = {
        let (ns, fp) = (namespace.clone(), fingerprint.clone());
        read(state, move |s| s.namespace_revocation(ns.as_str(), &fp)).await?
    };
    if let Some(r) = existing {
        return Err(ApiError::conflict(format!(
            "key `{}` (SPKI SHA-256 {fingerprint}) is already revoked in namespace `{namespace}` \
             (since {}: {})",
            req.key_id,
            rfc3339(r.revocation.revoked_at),
            r.revocation.reason
        )));
    }
    let revocation = Revocation {
        subject: RevokedSubject::Key(fingerprint),
        revoked_at: req
            .revoked_at
            .map_or_else(|| state.now(), Rfc3339Time::time),
        reason: req.reason,
    };
    let view = NamespaceKeyRevoked {
        revocation: revocation.clone(),
        namespace: namespace.clone(),
        key_id: req.key_id.clone(),
        listed_in: found.into_iter().map(|(_, l)| l).collect(),
    };
    publish(
        state,
        caller,
        Change::RevokeNamespaceKey {
            namespace,
            revocation,
            key_id: Some(req.key_id),
        },
    )
    .await?;
    Ok(view)
}

#[derive(Debug, Deserialize)]
pub(super) struct NamespaceRevocationPath {
    ns: String,
    spki_sha256: String,
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/revocations/{spki_sha256}",
    tag = "revocations",
    summary = "Withdraw a namespace's revocation of a key",
    params(("ns" = keyshare_policy::trust::NamespaceName, Path, description = "The namespace."), ("spki_sha256" = keyshare_policy::trust::Sha256Hex, Path, description = "The key's fingerprint, 64 lowercase hex digits.")),
    responses(
        (status = 204, description = "Withdrawn."),
        oa::AuthErrors,
        (status = 404, description = "No such namespace, a path segment that is not a fingerprint, or no such revocation.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_namespace_revocation(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<NamespaceRevocationPath>,
) -> Result<HttpResponse, ApiError> {
    authorize(
        &caller.token,
        Endpoint::RemoveNamespaceRevocation.action(&path.ns),
    )?;
    let namespace = path_namespace(&path.ns)?;
    let fingerprint = Sha256Hex::parse(&path.spki_sha256).map_err(|_| {
        ApiError::not_found(format!(
            "`{}` is not a key fingerprint (64 lowercase hex digits)",
            path.spki_sha256
        ))
    })?;
    publish(
        &state,
        &caller,
        Change::RemoveNamespaceRevocation {
            namespace,
            fingerprint,
        },
    )
    .await?;
    Ok(no_content())
}

// ---- revocations ----

/// What a revocation request names, resolved to key material or a
/// certificate hash, with where the admin named the key (by id).
async fn revocation_subject(
    state: &AppState,
    req: &AddRevocation,
) -> Result<(RevokedSubject, Option<Listing>), ApiError> {
    const ONE_OF: &str =
        "give exactly one of `key_id` (with `namespace` if the id is not unique), \
                          `key`, `public_key_pem`, `spki_sha256`, `certificate_sha256` and \
                          `certificate_pem`";
    let given = [
        req.key_id.is_some(),
        req.key.is_some(),
        req.public_key_pem.is_some(),
        req.spki_sha256.is_some(),
        req.certificate_sha256.is_some(),
        req.certificate_pem.is_some(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given != 1 {
        return Err(ApiError::invalid(".", ONE_OF));
    }
    if req.namespace.is_some() && req.key_id.is_none() {
        return Err(ApiError::invalid(
            "namespace",
            "`namespace` only goes with `key_id`",
        ));
    }
    let fingerprint = |field: &str, key: &Key| {
        key.fingerprint(&KeyId::new("(key to revoke)"))
            .map_err(|e| bad_key(field, e))
    };
    if let Some(id) = &req.key_id {
        check_label("key_id", id.as_str())?;
        let namespace = req.namespace.clone();
        let key_id = id.as_str().to_owned();
        let found = read(state, move |s| {
            s.listed_under(namespace.as_ref().map(NamespaceName::as_str), &key_id)
        })
        .await?;
        let where_ = match &req.namespace {
            Some(ns) => format!(" in namespace `{ns}`"),
            None => String::new(),
        };
        let Some((fp, listing)) = found.first().cloned() else {
            return Err(ApiError::not_found(format!(
                "no key `{id}` is listed{where_}; give the key itself (`key`, `public_key_pem` or `spki_sha256`) to revoke a key that is not listed"
            )));
        };
        if found.iter().any(|(other, _)| *other != fp) {
            let places: Vec<String> = found
                .iter()
                .map(|(_, l)| match &l.sub_delegation {
                    Some(sub) => format!("`{}` (sub-delegation `{sub}`)", l.namespace),
                    None => format!("`{}`", l.namespace),
                })
                .collect();
            return Err(ApiError::conflict(format!(
                "key id `{id}` names different keys{where_} (listed in {}): name the namespace (`namespace`) or give the key itself",
                places.join(", ")
            )));
        }
        return Ok((RevokedSubject::Key(fp), Some(listing)));
    }
    if let Some(key) = &req.key {
        check_key_object("key", &KeyId::new("(key to revoke)"), key)?;
        return Ok((RevokedSubject::Key(fingerprint("key", key)?), None));
    }
    if let Some(pem) = &req.public_key_pem {
        let key = key_from_pem(pem)?;
        return Ok((
            RevokedSubject::Key(fingerprint("public_key_pem", &key)?),
            None,
        ));
    }
    if let Some(h) = &req.spki_sha256 {
        return Ok((RevokedSubject::Key(h.clone()), None));
    }
    if let Some(h) = &req.certificate_sha256 {
        return Ok((RevokedSubject::Certificate(h.clone()), None));
    }
    if let Some(pem) = &req.certificate_pem {
        let cert = CaCert::parse(pem).map_err(|e| ApiError::invalid("certificate_pem", e))?;
        return Ok((RevokedSubject::Certificate(cert.sha256().clone()), None));
    }
    Err(ApiError::invalid(".", ONE_OF))
}

#[utoipa::path(
    post,
    path = "/api/v1/revocations",
    tag = "revocations",
    summary = "Revoke a key or certificate organization-wide",
    request_body = keyshare_policy::api::admin::AddRevocation,
    responses(
        (status = 201, description = "The revocation, where the request named the key and where it is listed now.", body = keyshare_policy::api::admin::RevocationAdded),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "`key_id` names no listed key.", body = ErrorBody),
        (status = 409, description = "`already_exists`: already revoked; the id names different keys.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_revocation(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::AddRevocation.action(""))?;
    let req: AddRevocation = body.json().await?;
    let view = add_revocation_as(&state, &caller, req).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// The organization revokes a key or certificate, as `caller` (the API
/// and the portal's form).
pub(in crate::http) async fn add_revocation_as(
    state: &AppState,
    caller: &Caller,
    req: AddRevocation,
) -> Result<RevocationAdded, ApiError> {
    authorize(&caller.token, Endpoint::AddRevocation.action(""))?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "must say why (not empty)"));
    }
    let (subject, listed_as) = revocation_subject(state, &req).await?;
    let revocation = Revocation {
        subject,
        revoked_at: req
            .revoked_at
            .map_or_else(|| state.now(), Rfc3339Time::time),
        reason: req.reason,
    };
    let subject = revocation.subject.clone();
    let existing = read(state, move |s| s.revocation(&subject)).await?;
    if existing.is_some() {
        return Err(ApiError::conflict(format!(
            "{} is already revoked",
            revocation.subject
        )));
    }
    let listed_in = match &revocation.subject {
        RevokedSubject::Key(h) => {
            let h = h.clone();
            read(state, move |s| s.listings(&h)).await?
        }
        RevokedSubject::Certificate(_) => Vec::new(),
    };
    let view = RevocationAdded {
        revocation: revocation.clone(),
        named_as: listed_as.clone(),
        listed_in,
    };
    publish(
        state,
        caller,
        Change::AddRevocation {
            revocation,
            listed_as,
        },
    )
    .await?;
    Ok(view)
}

#[utoipa::path(
    get,
    path = "/api/v1/revocations",
    tag = "revocations",
    summary = "List the organization's revocations",
    responses(
        (status = 200, description = "Every revocation.", body = keyshare_policy::api::admin::RevocationList),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_revocations(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let answer = list_revocations_as(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

/// The organization's revocations, as `caller` may read them.
pub(in crate::http) async fn list_revocations_as(
    state: &AppState,
    caller: &Caller,
) -> Result<RevocationList, ApiError> {
    authorize(&caller.token, Endpoint::ListRevocations.action(""))?;
    let list = read(state, Store::revocations).await?;
    Ok(RevocationList {
        revocations: list
            .into_iter()
            .map(|r| RevocationListed {
                revocation: r.revocation,
                recorded_at: rfc3339(r.recorded_at),
                named_as: r.listed_as,
            })
            .collect(),
    })
}
