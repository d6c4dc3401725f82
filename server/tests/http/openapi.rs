//! The OpenAPI document of `/api/v1/` (`GET /api/v1/openapi.json`): served
//! without a credential, the same as the committed `docs/openapi.json`,
//! describing every route with its security and error answers, and valid
//! OpenAPI 3.1 by `openapi-spec-validator` (from `target/pyenv`, see
//! `scripts/pyenv`) when fetched from a live server.
//!
//! `KEYSHARE_BLESS=1 cargo test -p keyshare-server --test http openapi::`
//! rewrites `docs/openapi.json` from the served document.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde_json::Value;

use keyshare_server::http::{Endpoint, OPENAPI_PATH};

use crate::http_common::{request, send, Fixture};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

/// The document as the app serves it, without a credential.
async fn served(f: &Fixture) -> String {
    let app = app!(f);
    let answer = send(
        &app,
        request(Method::GET, OPENAPI_PATH, None, None).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    String::from_utf8(answer.body).unwrap()
}

#[actix_web::test]
async fn the_served_document_is_the_committed_one() {
    let f = Fixture::new();
    let served = served(&f).await;
    let path = committed_path();
    if std::env::var_os("KEYSHARE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &served).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json is not the document the server serves (the API's types or \
         #[utoipa::path] annotations changed); regenerate it with\n  \
         KEYSHARE_BLESS=1 cargo test -p keyshare-server --test http openapi::\n\
         or `keyshare-server openapi > docs/openapi.json`, and commit it"
    );
    assert_eq!(served, keyshare_server::http::openapi_json());
}

fn document() -> Value {
    serde_json::from_str(keyshare_server::http::openapi_json()).unwrap()
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    op
}

/// Every route under `/api/v1/` with whether it takes a bearer credential
/// (the authorization matrix of docs/server.md).
fn routes() -> Vec<(String, &'static str, bool)> {
    let mut routes: Vec<(String, &'static str, bool)> = Endpoint::ALL
        .iter()
        .map(|e| {
            let (m, p) = e.route();
            (m.to_string(), p, true)
        })
        .collect();
    routes.extend([
        ("POST".to_owned(), "/api/v1/ci/nonce", false),
        ("POST".to_owned(), "/api/v1/ci/delegations", true),
        ("DELETE".to_owned(), "/api/v1/ci/delegations/{id}", true),
        ("GET".to_owned(), "/api/v1/ci/evidence/{spki_sha256}", false),
        ("POST".to_owned(), "/api/v1/timestamp", false),
        ("GET".to_owned(), "/api/v1/openapi.json", false),
    ]);
    routes
}

#[test]
fn every_route_is_described_with_its_security_and_errors() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let routes = routes();
    let described: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        described,
        routes.len(),
        "a route is described twice or not served"
    );
    let error_body = serde_json::json!({"$ref": "#/components/schemas/ErrorBody"});
    for (method, path, authenticated) in routes {
        let op = operation(&doc, &method, path);
        let security = op.get("security");
        if authenticated {
            assert_eq!(
                security,
                Some(&serde_json::json!([{"bearer": []}])),
                "{method} {path}"
            );
        } else {
            assert_eq!(security, None, "{method} {path} needs no credential");
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success answer"
        );
        // Only the document itself cannot fail.
        let mut expected = if path == OPENAPI_PATH {
            vec![]
        } else {
            vec!["500"]
        };
        if authenticated {
            expected.extend(["401", "403"]);
        }
        if op.get("requestBody").is_some() {
            expected.extend(["413", "415"]);
        }
        for status in expected {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status} answer"
            );
        }
        // Every error answer is the one error body (behind a shared
        // response, or inline).
        for (status, answer) in responses {
            if status.starts_with('2') {
                continue;
            }
            let answer = match answer.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    &doc["components"]["responses"][r.trim_start_matches("#/components/responses/")]
                }
                None => answer,
            };
            assert_eq!(
                answer["content"]["application/json"]["schema"], error_body,
                "{method} {path} {status}"
            );
        }
        for param in path.split('{').skip(1) {
            let name = param.split('}').next().unwrap();
            let listed = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true);
            assert!(
                listed,
                "{method} {path}: path parameter `{name}` not described"
            );
        }
    }
}

/// An answer that flattens a closed type (a revocation, a trusted key) is
/// one object: no member of an `allOf` may refuse the other members' fields.
#[test]
fn no_all_of_member_is_closed() {
    fn walk(doc: &Value, v: &Value, at: &str) {
        match v {
            Value::Object(map) => {
                if let Some(items) = map.get("allOf").and_then(Value::as_array) {
                    for item in items {
                        let item = match item.get("$ref").and_then(Value::as_str) {
                            Some(r) => {
                                &doc["components"]["schemas"]
                                    [r.trim_start_matches("#/components/schemas/")]
                            }
                            None => item,
                        };
                        assert_ne!(
                            item.get("additionalProperties"),
                            Some(&Value::Bool(false)),
                            "{at}: a closed allOf member"
                        );
                    }
                }
                for (k, v) in map {
                    walk(doc, v, &format!("{at}/{k}"));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v, at)),
            _ => {}
        }
    }
    let doc = document();
    walk(&doc, &doc, "");
}

/// Unsigned integers are `uint32` and `uint64` (what the server takes),
/// not the signed `int32` and `int64`, nor utoipa's `u-int32`.
#[test]
fn unsigned_integers_have_the_registry_formats() {
    let doc = document();
    let text = doc.to_string();
    assert!(
        !text.contains("\"u-int"),
        "utoipa's kebab-case formats are left"
    );
    let threshold = &doc["components"]["schemas"]["SetThreshold"]["properties"]["threshold"];
    assert_eq!(threshold["format"], "uint32");
    assert_eq!(threshold["minimum"], 1);
}

#[actix_web::test]
async fn an_error_answer_has_the_documented_shape() {
    let f = Fixture::new();
    let app = app!(f);
    let answer = send(
        &app,
        request(Method::GET, "/api/v1/namespaces", None, None).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let body = answer.json();
    let doc = document();
    let schema = &doc["components"]["schemas"]["ErrorObject"];
    let fields = body["error"].as_object().unwrap();
    for required in schema["required"].as_array().unwrap() {
        assert!(fields.contains_key(required.as_str().unwrap()), "{body}");
    }
    for key in fields.keys() {
        assert!(
            schema["properties"].get(key).is_some(),
            "{key} is not documented"
        );
    }
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["error"]
    );
}

/// Every documented path answers a method it does not offer with 405 and
/// an `Allow` header naming exactly the documented methods (RFC 9110
/// §15.5.6), whoever asks.
#[actix_web::test]
async fn an_undocumented_method_is_405_with_the_documented_methods_in_allow() {
    let f = Fixture::new();
    let app = app!(f);
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let mut documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        documented.sort();
        let uri = path
            .replace("{spki_sha256}", &"0".repeat(64))
            .replace(['{', '}'], "");
        for token in [None, Some(f.admin.as_str())] {
            let answer = send(&app, request(Method::PATCH, &uri, token, None).to_request()).await;
            assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "PATCH {uri}");
            assert_eq!(answer.error().0, "method_not_allowed");
            let mut allowed: Vec<String> = answer
                .header("allow")
                .unwrap_or_else(|| panic!("PATCH {uri}: no Allow header"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            allowed.sort();
            assert_eq!(allowed, documented, "PATCH {uri}");
        }
    }
    // The read API too.
    let answer = send(
        &app,
        request(Method::PUT, "/metadata/1.root.json", None, None).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
}

/// Serves the app on a loopback port while `f` runs (on a blocking thread).
async fn with_live_server<T: Send + 'static>(
    fixture: &Fixture,
    f: impl FnOnce(std::net::SocketAddr) -> T + Send + 'static,
) -> T {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let shutdown = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let server = actix_web::rt::spawn(keyshare_server::http::run(
        listener,
        fixture.state.clone(),
        shutdown,
    ));
    let result = actix_web::rt::task::spawn_blocking(move || f(addr))
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    actix_web::rt::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    result
}

#[actix_web::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let f = Fixture::new();
    let document = with_live_server(&f, |addr| {
        ureq::get(&format!("http://{addr}{OPENAPI_PATH}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    })
    .await;
    assert_eq!(document, keyshare_server::http::openapi_json());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &document).unwrap();
    let child = Command::new(keyshare_testkit::python())
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator prints the whole document with an error: keep the start.
    let shown: String = text.chars().take(4000).collect();
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the served document:\n{shown}"
    );
    assert!(text.contains(": OK"), "{shown}");
}
