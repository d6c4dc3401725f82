//! The audit log: a filtered page of records, and the server's own check
//! of the chain against the heads it published.

use actix_web::{web, HttpRequest, HttpResponse};

use keyshare_policy::api::admin::{
    AuditBroken, AuditHeadMismatch, AuditIntact, AuditPublishedHead, AuditQuery, AuditRecord,
    AuditRecords, AuditVerification,
};
use keyshare_policy::audit::ChainError;
use keyshare_policy::datetime::{parse_rfc3339, rfc3339};
use keyshare_policy::trust::NamespaceName;

use super::{query, read, to_value, Endpoint};
use crate::http::auth::{authorize, Caller};
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::PublishError;
use crate::store;

/// Most audit records answered at once.
const AUDIT_LIMIT_MAX: u32 = 1000;

/// The store's filter for an audit query; 400 naming the parameter at
/// fault.
fn audit_filter(q: AuditQuery) -> Result<store::AuditFilter, ApiError> {
    let limit = match q.limit {
        None => 100,
        Some(0) => return Err(ApiError::invalid("limit", "must be at least 1")),
        Some(n) => n.min(AUDIT_LIMIT_MAX),
    };
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            return Err(ApiError::invalid(
                "order",
                format!("`{shown}` is not `asc` (oldest first) or `desc` (newest first)"),
            ));
        }
    };
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid("before", "must be at least 1"));
    }
    let since = q
        .since
        .as_deref()
        .map(parse_rfc3339)
        .transpose()
        .map_err(|e| ApiError::invalid("since", e))?;
    if let Some(action) = &q.action {
        let well_formed = !action.is_empty()
            && action.len() <= 64
            && action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-*".contains(&b))
            && action
                .find('*')
                .is_none_or(|i| i + 1 == action.len() && action.ends_with(".*"));
        if !well_formed {
            return Err(ApiError::invalid(
                "action",
                "expected an action (`key.add`) or a prefix ending in `.*` (`key.*`)",
            ));
        }
    }
    if let Some(actor) = &q.actor {
        if actor.is_empty() || actor.len() > 512 || actor.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "actor",
                "expected an actor as records name it (`token:<id>`, `system`, `oidc:<issuer>#<subject>`)",
            ));
        }
    }
    if let Some(ns) = &q.namespace {
        NamespaceName::parse(ns).map_err(|e| ApiError::invalid("namespace", e))?;
    }
    Ok(store::AuditFilter {
        after: (q.after > 0).then_some(q.after),
        before: q.before,
        since,
        action: q.action,
        actor: q.actor,
        namespace: q.namespace,
        newest_first,
        limit,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    summary = "Read the audit log",
    params(keyshare_policy::api::admin::AuditQuery),
    responses(
        (status = 200, description = "The records, in the order asked.", body = keyshare_policy::api::admin::AuditRecords),
        (status = 400, description = "`invalid`: a query parameter does not parse, or is unknown.", body = ErrorBody),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_audit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListAudit.action(""))?;
    let answer = list_audit_as(&state, &caller, query(&req)?).await?;
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

/// A page of the audit log, as `caller` may read it (the API and the
/// portal).
pub(in crate::http) async fn list_audit_as(
    state: &AppState,
    caller: &Caller,
    q: AuditQuery,
) -> Result<AuditRecords, ApiError> {
    authorize(&caller.token, Endpoint::ListAudit.action(""))?;
    let filter = audit_filter(q)?;
    let records = read(state, move |s| s.audit_query(&filter)).await?;
    Ok(AuditRecords {
        records: records
            .into_iter()
            .map(|r| AuditRecord {
                seq: r.seq,
                time: rfc3339(r.time),
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                details: r.details,
                prev_hash: r.prev_hash,
                hash: r.hash,
            })
            .collect(),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    summary = "Check the audit log against the published heads",
    responses(
        (status = 200, description = "The chain is intact, or the first disagreement.", body = keyshare_policy::api::admin::AuditVerification),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn verify_audit(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let answer = verify_audit_as(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

/// The server's check of the audit chain against the published heads.
pub(in crate::http) async fn verify_audit_as(
    state: &AppState,
    caller: &Caller,
) -> Result<AuditVerification, ApiError> {
    authorize(&caller.token, Endpoint::VerifyAudit.action(""))?;
    let publisher = state.publisher.clone();
    let result = web::block(move || publisher.verify_audit()).await?;
    let answer = match result {
        Ok(v) => AuditVerification::Intact(AuditIntact {
            ok: true,
            records: v.head.records,
            hash: v.head.hash,
            published_heads: v.heads_checked,
            published_head: v.published.map(|p| AuditPublishedHead {
                seq: p.head.seq,
                hash: p.head.hash,
                timestamp_version: p.timestamp_version,
            }),
        }),
        Err(PublishError::Store(store::Error::AuditChain { seq, reason })) => {
            AuditVerification::Broken(AuditBroken {
                ok: false,
                first_bad_seq: seq,
                reason,
            })
        }
        Err(PublishError::Store(store::Error::AuditHead(e))) => {
            let (head_seq, published_in, expected, found) = match &e {
                ChainError::Contradicted {
                    seq,
                    published_in,
                    expected,
                    found,
                } => (*seq, published_in, expected, Some(found.clone())),
                ChainError::Truncated {
                    seq,
                    published_in,
                    expected,
                    ..
                } => (*seq, published_in, expected, None),
                _ => return Err(ApiError::internal(e)),
            };
            AuditVerification::HeadMismatch(AuditHeadMismatch {
                ok: false,
                first_bad_seq: e.first_bad_seq(),
                reason: e.to_string(),
                published_in: published_in.clone(),
                head_seq,
                expected: expected.clone(),
                found,
            })
        }
        Err(e) => return Err(e.into()),
    };
    Ok(answer)
}
