//! API tokens: create (the secret is shown once), list, revoke.

use std::collections::BTreeSet;

use actix_web::{web, HttpResponse};
use time::OffsetDateTime;

use keyshare_policy::api::admin::{CreateToken, TokenList, TokenView};
use keyshare_policy::datetime::{rfc3339, Rfc3339Time};
use keyshare_policy::trust::NamespaceName;

use super::{check_label, no_content, read, to_value, Endpoint};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::store::{self, Store, Token, TokenKind};

/// A token as the API shows it (never its secret), with its `state` at
/// `now`: `active`, `expired` or `revoked`.
fn token_view(t: &Token, now: OffsetDateTime) -> TokenView {
    let state = if !t.is_active() {
        "revoked"
    } else if t.is_expired(now) {
        "expired"
    } else {
        "active"
    };
    TokenView {
        id: t.id.clone(),
        kind: t.kind.name().to_owned(),
        namespaces: t.kind.namespaces().to_vec(),
        description: t.description.clone(),
        created_at: rfc3339(t.created_at),
        revoked_at: t.revoked_at.map(rfc3339),
        expires_at: t.expires_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
        state: state.to_owned(),
        secret: None,
    }
}

/// Longest token lifetime accepted (`expires_in`, `expires_at`): ten
/// years; a token that should outlive that has no expiry.
const TOKEN_MAX_LIFETIME: time::Duration = time::Duration::days(3650);

/// When a token asked for at `now` expires: from `expires_in` or
/// `expires_at` (not both), in the future, at most
/// [`TOKEN_MAX_LIFETIME`] away; `None` without either.
fn token_expiry(
    expires_in: Option<u64>,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ApiError> {
    let max = TOKEN_MAX_LIFETIME.whole_seconds();
    let at = match (expires_in, expires_at) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_in",
                "give expires_in or expires_at, not both",
            ))
        }
        (Some(secs), None) => {
            let secs = i64::try_from(secs).ok().filter(|s| (1..=max).contains(s));
            let Some(secs) = secs else {
                return Err(ApiError::invalid(
                    "expires_in",
                    format!("must be from 1 to {max} seconds (ten years)"),
                ));
            };
            now + time::Duration::seconds(secs)
        }
        (None, Some(at)) => {
            if at <= now {
                return Err(ApiError::invalid(
                    "expires_at",
                    format!("{} is not in the future", rfc3339(at)),
                ));
            }
            if at - now > TOKEN_MAX_LIFETIME {
                return Err(ApiError::invalid(
                    "expires_at",
                    "must be at most ten years from now",
                ));
            }
            at
        }
    };
    // Whole seconds, as every stored time.
    Ok(Some(at.replace_nanosecond(0).unwrap_or(at)))
}

fn token_kind(req: CreateToken) -> Result<(TokenKind, Option<String>), ApiError> {
    let kind = match (req.kind.as_str(), req.namespace, req.namespaces) {
        ("org-admin", None, None) => TokenKind::OrgAdmin,
        ("maintainer", Some(ns), None) => TokenKind::Maintainer(ns),
        ("ci", None, Some(list)) => {
            if list.is_empty() {
                return Err(ApiError::invalid(
                    "namespaces",
                    "must list at least one namespace",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, ns) in list.iter().enumerate() {
                if !seen.insert(ns) {
                    return Err(ApiError::invalid(
                        &format!("namespaces[{i}]"),
                        format!("`{ns}` is listed twice"),
                    ));
                }
            }
            TokenKind::Ci(list)
        }
        ("org-admin" | "maintainer" | "ci", _, _) => {
            return Err(ApiError::invalid(
                "kind",
                format!(
                    "kind `{}` takes {}",
                    req.kind,
                    match req.kind.as_str() {
                        "org-admin" => "neither `namespace` nor `namespaces`",
                        "maintainer" => "`namespace` (and not `namespaces`)",
                        _ => "`namespaces` (and not `namespace`)",
                    }
                ),
            ))
        }
        (other, _, _) => {
            return Err(ApiError::invalid(
                "kind",
                format!("unknown token kind `{other}` (org-admin, maintainer or ci)"),
            ))
        }
    };
    if let Some(d) = &req.description {
        check_label("description", d)?;
    }
    Ok((kind, req.description))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "Create a token",
    request_body = keyshare_policy::api::admin::CreateToken,
    responses(
        (status = 201, description = "The token, with its secret (shown once).", body = keyshare_policy::api::admin::TokenView),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 404, description = "A namespace the token is for does not exist.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::CreateToken.action(""))?;
    let req: CreateToken = body.json().await?;
    let view = create_token_as(&state, &caller, req).await?;
    Ok(HttpResponse::Created().json(to_value(&view)?))
}

/// Creates a token as `caller`; the answer carries its secret, the only
/// time it is shown (the API and the portal's form).
pub(in crate::http) async fn create_token_as(
    state: &AppState,
    caller: &Caller,
    req: CreateToken,
) -> Result<TokenView, ApiError> {
    authorize(&caller.token, Endpoint::CreateToken.action(""))?;
    let now = state.now();
    let expires_at = token_expiry(req.expires_in, req.expires_at.map(Rfc3339Time::time), now)?;
    let (kind, description) = token_kind(req)?;
    let wanted: Vec<NamespaceName> = kind.namespaces().to_vec();
    let missing = read(state, move |s| {
        for ns in &wanted {
            match s.namespace(ns.as_str()) {
                Ok(_) => {}
                Err(store::Error::NotFound { .. }) => return Ok(Some(ns.clone())),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    })
    .await?;
    if let Some(ns) = missing {
        return Err(ApiError::not_found(format!("namespace `{ns}` not found")));
    }
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let new = web::block(move || {
        publisher.create_token_expiring(&actor, kind, description, expires_at, now)
    })
    .await??;
    Ok(TokenView {
        secret: Some(new.secret.expose().to_owned()),
        ..token_view(&new.token, now)
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "List the tokens (never their secrets)",
    responses(
        (status = 200, description = "Every token, oldest first.", body = keyshare_policy::api::admin::TokenList),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_tokens(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let answer = list_tokens_as(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

/// Every token (never a secret), as `caller` may list them.
pub(in crate::http) async fn list_tokens_as(
    state: &AppState,
    caller: &Caller,
) -> Result<TokenList, ApiError> {
    authorize(&caller.token, Endpoint::ListTokens.action(""))?;
    let list = read(state, Store::tokens).await?;
    let now = state.now();
    Ok(TokenList {
        tokens: list.iter().map(|t| token_view(t, now)).collect(),
    })
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    summary = "Revoke a token",
    params(("id" = String, Path, description = "The token's id.")),
    responses(
        (status = 204, description = "Revoked."),
        oa::AuthErrors,
        (status = 404, description = "No such token.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revoke_token_as(&state, &caller, &id).await?;
    Ok(no_content())
}

/// Revokes token `id` as `caller` (the API and the portal's form).
pub(in crate::http) async fn revoke_token_as(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    authorize(&caller.token, Endpoint::RevokeToken.action(""))?;
    let publisher = state.publisher.clone();
    let actor = caller.actor();
    let now = state.now();
    let id = id.to_owned();
    web::block(move || publisher.revoke_token(&actor, &id, now)).await??;
    Ok(())
}
