//! The portal's stylesheet and script, compiled into the binary and
//! served under names that carry a hash of their content
//! (`portal.<12 hex digits>.css`), so they can be cached for good and a
//! new build never meets a stale copy.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const CSS: &str = include_str!("static/portal.css");
const JS: &str = include_str!("static/portal.js");

struct Names {
    css: String,
    js: String,
}

fn hashed(stem: &str, ext: &str, content: &str) -> String {
    let digest = openssl::sha::sha256(content.as_bytes());
    let hex = hex::encode(digest);
    format!("{stem}.{}.{ext}", hex.get(..12).unwrap_or(&hex))
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| Names {
        css: hashed("portal", "css", CSS),
        js: hashed("portal", "js", JS),
    })
}

/// The stylesheet's path.
pub(super) fn css_path() -> String {
    format!("/ui/assets/{}", names().css)
}

/// The script's path.
pub(super) fn js_path() -> String {
    format!("/ui/assets/{}", names().js)
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    let names = names();
    let (body, kind) = if *name == names.css {
        (CSS, "text/css; charset=utf-8")
    } else if *name == names.js {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return super::pages::not_found_page();
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(body)
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/assets/{name}", web::get().to(asset));
}
