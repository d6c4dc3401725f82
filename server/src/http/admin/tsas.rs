//! Trusted timestamp authorities (`org/tsas.json`): put, list, remove.

use actix_web::{web, HttpResponse};

use keyshare_policy::api::admin::{PutTsa, TsaList, TsaView};
use keyshare_policy::datetime::rfc3339;
use keyshare_policy::trust::{check_tsa_certificate, TrustedTsa, MAX_TSA_DESCRIPTION};

use super::{check_label, no_content, publish, read, refuse_private_key, to_value, Endpoint};
use crate::http::auth::{authorize, Caller};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::openapi as oa;
use crate::http::AppState;
use crate::publisher::Change;
use crate::store::{Store, TsaRecord};

fn tsa_view(r: &TsaRecord) -> TsaView {
    TsaView {
        name: r.tsa.name.clone(),
        certificate: r.tsa.certificate.pem().to_owned(),
        sha256: r.tsa.certificate.sha256().to_string(),
        subject: subject_text(&r.tsa),
        description: r.tsa.description.clone(),
        added_at: rfc3339(r.added_at),
    }
}

fn subject_text(t: &TrustedTsa) -> String {
    t.certificate
        .cert()
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                e.data().to_string().unwrap_or_else(|_| "?".to_owned())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[utoipa::path(
    put,
    path = "/api/v1/tsas/{name}",
    tag = "tsas",
    summary = "Trust a timestamp authority",
    params(("name" = String, Path, description = "The TSA's name.")),
    request_body = keyshare_policy::api::admin::PutTsa,
    responses(
        (status = 200, description = "The TSA as listed.", body = keyshare_policy::api::admin::TsaView),
        oa::BodyErrors,
        oa::AuthErrors,
        (status = 409, description = "`already_exists`: the same certificate is listed under another name.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn put_tsa(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::PutTsa.action(""))?;
    let req: PutTsa = body.json().await?;
    let view = put_tsa_as(&state, &caller, name.into_inner(), req).await?;
    Ok(HttpResponse::Ok().json(to_value(&view)?))
}

/// Trusts timestamp authority `name`, as `caller` (the API and the
/// portal's form); returns it as listed.
pub(in crate::http) async fn put_tsa_as(
    state: &AppState,
    caller: &Caller,
    name: String,
    req: PutTsa,
) -> Result<TsaView, ApiError> {
    authorize(&caller.token, Endpoint::PutTsa.action(""))?;
    check_label("name", &name)?;
    refuse_private_key("certificate", &req.certificate)?;
    let certificate =
        check_tsa_certificate(&req.certificate).map_err(|e| ApiError::invalid("certificate", e))?;
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_TSA_DESCRIPTION)
    {
        return Err(ApiError::invalid(
            "description",
            format!("must be at most {MAX_TSA_DESCRIPTION} characters"),
        ));
    }
    let tsa = TrustedTsa {
        name: name.clone(),
        certificate,
        description: req.description,
    };
    publish(state, caller, Change::PutTsa { tsa }).await?;
    let record = read(state, move |s| s.tsa(&name)).await?;
    Ok(tsa_view(&record))
}

#[utoipa::path(
    get,
    path = "/api/v1/tsas",
    tag = "tsas",
    summary = "List the trusted timestamp authorities",
    responses(
        (status = 200, description = "Every trusted TSA, by name.", body = keyshare_policy::api::admin::TsaList),
        oa::AuthErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_tsas(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller.token, Endpoint::ListTsas.action(""))?;
    let list = read(&state, Store::tsas).await?;
    let answer = TsaList {
        tsas: list.iter().map(tsa_view).collect(),
    };
    Ok(HttpResponse::Ok().json(to_value(&answer)?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tsas/{name}",
    tag = "tsas",
    summary = "Stop trusting a timestamp authority",
    params(("name" = String, Path, description = "The TSA's name.")),
    responses(
        (status = 204, description = "Removed."),
        oa::AuthErrors,
        (status = 404, description = "No such TSA.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_tsa(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    remove_tsa_as(&state, &caller, name.into_inner()).await?;
    Ok(no_content())
}

/// Stops trusting timestamp authority `name`, as `caller` (the API and
/// the portal's form).
pub(in crate::http) async fn remove_tsa_as(
    state: &AppState,
    caller: &Caller,
    name: String,
) -> Result<(), ApiError> {
    authorize(&caller.token, Endpoint::RemoveTsa.action(""))?;
    publish(state, caller, Change::RemoveTsa { name }).await?;
    Ok(())
}
