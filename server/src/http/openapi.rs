//! The OpenAPI 3.1 document of the API under `/api/v1/`, served at
//! `GET /api/v1/openapi.json` (no credential: it describes nothing secret)
//! and committed as `docs/openapi.json` (see `docs/api.md`).
//!
//! It is generated, never written by hand: the schemas are the wire types
//! of `keyshare_policy::api` (and the documents they carry), which derive
//! `utoipa::ToSchema` under keyshare-policy's `openapi` feature, and every
//! handler carries a `#[utoipa::path]` with its method, path, parameters,
//! body and every answer it can give. Every error answer is one shared
//! schema, [`ErrorBody`]; the common ones are shared responses (below).
//! The admin handlers are collected in `admin/mod.rs` (`AdminApi`), the
//! others here.

use std::borrow::Cow;
use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;

/// The path the document is served at.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(OPENAPI_PATH)
            .route(web::get().to(openapi_json))
            .default_service(super::error::method_not_allowed("GET")),
    );
}

/// The document as utoipa builds it, flattened closed types opened
/// ([`document_json`] also corrects the formats of unsigned integers).
fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::admin::AdminApi::openapi());
    open_flattened(&mut doc);
    doc
}

/// An answer that flattens a closed type (`#[serde(flatten)]` of a
/// `deny_unknown_fields` struct: a revocation, a trusted key) is one object
/// with the fields of both, but utoipa describes it as `allOf` of the
/// closed type's schema (`additionalProperties: false`) and the rest, which
/// no answer can meet. The closed part is put inline without the closure;
/// the type's own schema (in requests and documents) stays closed.
fn open_flattened(doc: &mut utoipa::openapi::OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let closed: std::collections::BTreeMap<String, Schema> = components
        .schemas
        .iter()
        .filter_map(|(name, schema)| match schema {
            RefOr::T(Schema::Object(o))
                if matches!(
                    o.additional_properties.as_deref(),
                    Some(AdditionalProperties::FreeForm(false))
                ) =>
            {
                let mut open = o.clone();
                open.additional_properties = None;
                Some((format!("#/components/schemas/{name}"), Schema::Object(open)))
            }
            _ => None,
        })
        .collect();
    for schema in components.schemas.values_mut() {
        if let RefOr::T(Schema::AllOf(all_of)) = schema {
            for item in &mut all_of.items {
                if let RefOr::Ref(r) = item {
                    if let Some(open) = closed.get(&r.ref_location) {
                        *item = RefOr::T(open.clone());
                    }
                }
            }
        }
    }
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut value = serde_json::to_value(document()).unwrap_or_default();
        unsigned_formats(&mut value);
        let mut text = serde_json::to_string_pretty(&value)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    })
}

/// utoipa writes the formats of unsigned integers (`u32`: `uint32`) in
/// kebab case, `u-int32`: spelled as the OpenAPI format registry has them.
fn unsigned_formats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(text) if key == "format" => {
                        if let Some(bits) = text.strip_prefix("u-int") {
                            *text = format!("uint{bits}");
                        }
                    }
                    _ => unsigned_formats(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unsigned_formats),
        _ => {}
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "openapi",
    summary = "This document (no credential)",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of the API under `/api/v1/`.", body = Object),
    ),
)]
pub(super) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyshare API",
        description = "The admin and CI API of keyshare-server under `/api/v1/` (docs/server.md \
                       is the reference). Bodies are JSON, read only after the caller is \
                       authenticated and authorized; unknown fields are refused. Every error \
                       answer is an `ErrorBody`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        openapi_json,
        super::ci::nonce,
        super::ci::delegate,
        super::ci::end,
        super::ci::evidence,
        super::tsa::timestamp,
    ),
    components(
        // Leaf types of requests' type parameters are not collected
        // through them: listed here.
        schemas(ErrorBody, keyshare_policy::datetime::Rfc3339Time),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            TooLarge,
            UnsupportedMedia,
            RateLimited,
            Internal,
        ),
    ),
    modifiers(&BearerScheme),
)]
struct ApiDoc;

/// The `bearer` security scheme: an API token (`Authorization: Bearer
/// <secret>`), or on the CI endpoints an OIDC ID token or a CI token.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token's secret (`keyshare-server init` prints the first \
                         org-admin token; `POST /api/v1/tokens` makes more). On the CI \
                         endpoints: an OIDC ID token or a CI token.",
                    ))
                    .build(),
            ),
        );
    }
}

/// A shared error response: `name`, JSON [`ErrorBody`], `description`.
macro_rules! error_response {
    ($name:ident, $description:literal) => {
        #[doc = $description]
        #[derive(Debug)]
        pub(crate) struct $name;

        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (
                    stringify!($name),
                    ResponseBuilder::new()
                        .description($description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                                .build(),
                        )
                        .build()
                        .into(),
                )
            }
        }
    };
}

error_response!(
    BadRequest,
    "The request is refused: `invalid` (the message names the field by its JSON path, or the \
     parameter), `malformed_json` (the body is not JSON), `bad_body` (it could not be read)."
);
error_response!(
    Unauthorized,
    "`unauthorized`: no `Authorization: Bearer <token>` header, or an unknown, revoked or \
     expired token (with `WWW-Authenticate: Bearer`)."
);
error_response!(
    Forbidden,
    "`forbidden`: the token may not make this call (the authorization matrix of \
     docs/server.md)."
);
error_response!(
    TooLarge,
    "`body_too_large`: the body is larger than `limits.body_bytes`."
);
error_response!(
    UnsupportedMedia,
    "`unsupported_media_type`: a non-empty body that is not `application/json`; \
     `unsupported_encoding`: a `Content-Encoding` other than `identity`."
);
error_response!(
    RateLimited,
    "`rate_limited`: too many requests from this address (or identity)."
);
error_response!(
    Internal,
    "`internal`: the server failed; the cause is in its log, not in the answer."
);

/// The error answers a route shares with others, each a reference to its
/// response component: one `responses(...)` entry instead of one per
/// status.
macro_rules! error_responses {
    ($(#[$doc:meta])* $name:ident: $($status:literal => $response:ident),+) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
                std::collections::BTreeMap::from([
                    $((
                        $status.to_owned(),
                        RefOr::Ref(Ref::from_response_name(stringify!($response))),
                    )),+
                ])
            }
        }
    };
}

error_responses!(
    /// Every route that takes a token: 401, 403 and 500.
    AuthErrors: "401" => Unauthorized, "403" => Forbidden, "500" => Internal
);
error_responses!(
    /// Every route that reads a JSON body: 400, 413 and 415.
    BodyErrors: "400" => BadRequest, "413" => TooLarge, "415" => UnsupportedMedia
);

/// Binary content (a bundle, an RFC 3161 message).
#[derive(Debug)]
pub(crate) struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Binary")
    }
}

/// A signed TUF root file (`POST /api/v1/root`), taken byte for byte: the
/// server checks it as a TUF client would (version N+1, the old and the
/// new threshold, expiry, the online keys).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct SignedRoot {
    /// The signatures over the canonical JSON of `signed`.
    signatures: Vec<serde_json::Value>,
    /// The root metadata (`_type` `root`, `version` N+1, `keys`, `roles`, ...).
    signed: serde_json::Value,
}
