//! Request bodies from the attacker's side: compressed bodies, oversized
//! bodies and bodies sent without the right to the route. Each body is a
//! watched stream, so the tests see how much of it the server pulled: a
//! request refused for its credential or its encoding is answered without
//! reading a byte, and an oversized body is cut off at the limit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::ci_common;
use crate::http_common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use actix_web::web::Bytes;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use ci_common::{delegation_body, job_key, CiFixture};
use http_common::{request, send, Answer, Fixture};
use keyshare_server::http::{Endpoint, DEFAULT_BODY_LIMIT};
use keyshare_server::store::TokenKind;

/// How far a gzip bomb inflates.
const BOMB_INFLATED: usize = 48 << 20;

/// A gzip member of [`BOMB_INFLATED`] zero bytes: about 48 KB on the wire,
/// under the body limit (made once; checked to inflate as claimed).
fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(BOMB_INFLATED >> 20) {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < DEFAULT_BODY_LIMIT, "{} bytes", bomb.len());
        let mut inflated = 0usize;
        let mut decoder = flate2::read::GzDecoder::new(&bomb[..]);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = decoder.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            inflated += n;
        }
        assert_eq!(inflated, BOMB_INFLATED);
        bomb
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// What [`Payload::Stream`] holds.
type BoxedStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>>;

/// A request body served in 4 KiB chunks, counting the bytes the server
/// pulled.
struct Watched {
    pulled: Arc<AtomicUsize>,
}

/// Sends `req` with `payload` as its body: `call!(&app, req, payload)`.
macro_rules! call {
    ($app:expr, $req:expr, $payload:expr) => {{
        let mut r = $req.to_request();
        *r.payload() = $payload;
        send($app, r).await
    }};
}

impl Watched {
    /// `req` with `bytes` as its body (`Content-Length` set when `sized`).
    fn body(req: TestRequest, bytes: &[u8], sized: bool) -> (Self, TestRequest, Payload) {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let chunks: Vec<Bytes> = bytes.chunks(4096).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(chunks).map(move |c| {
            counter.fetch_add(c.len(), Ordering::SeqCst);
            Ok::<_, PayloadError>(c)
        });
        let req = if sized {
            req.insert_header(("Content-Length", bytes.len().to_string()))
        } else {
            req
        };
        let payload = Payload::Stream {
            payload: Box::pin(stream) as BoxedStream,
        };
        (Self { pulled }, req, payload)
    }

    /// `req` with a body of `chunks` chunks of 64 KiB, sent without a
    /// `Content-Length` (chunked).
    fn endless(req: TestRequest, chunks: usize) -> (Self, TestRequest, Payload) {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let stream = futures_util::stream::repeat_with(|| Bytes::from(vec![b' '; 64 << 10]))
            .take(chunks)
            .map(move |c| {
                counter.fetch_add(c.len(), Ordering::SeqCst);
                Ok::<_, PayloadError>(c)
            });
        let payload = Payload::Stream {
            payload: Box::pin(stream) as BoxedStream,
        };
        (Self { pulled }, req, payload)
    }

    fn pulled(&self) -> usize {
        self.pulled.load(Ordering::SeqCst)
    }
}

/// A request with a JSON content type and `Content-Encoding: gzip`.
fn gzipped(method: Method, uri: &str, token: Option<&str>) -> TestRequest {
    request(method, uri, token, None)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Content-Encoding", "gzip"))
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str, mentions: &str, what: &str) {
    assert_eq!(
        answer.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let (got, message) = answer.error();
    assert_eq!(got, code, "{what}: {message}");
    assert!(
        message.contains(mentions),
        "{what}: `{message}` does not mention {mentions}"
    );
}

/// Every admin route that takes a body, with its path filled in (for
/// namespace `a`).
fn body_routes() -> Vec<(Endpoint, Method, String)> {
    Endpoint::ALL
        .into_iter()
        .filter_map(|e| {
            let (method, template) = e.route();
            (method == Method::POST || method == Method::PUT).then(|| {
                let path = template
                    .replace("{ns}", "a")
                    .replace("{name}", "x")
                    .replace("{id}", "x");
                (e, method, path)
            })
        })
        .collect()
}

#[actix_web::test]
async fn compressed_bodies_inflate_before_authentication_a_gzip_bomb_without_credential_is_refused_unread(
) {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let before = fx.f.published_state();
    let mut routes: Vec<(String, Method, String)> = body_routes()
        .into_iter()
        .map(|(e, m, p)| (format!("{e:?}"), m, p))
        .collect();
    routes.push((
        "CI delegation".into(),
        Method::POST,
        "/api/v1/ci/delegations".into(),
    ));
    assert!(routes.len() > 10, "{routes:?}");
    for (what, method, uri) in routes {
        let (body, req, payload) = Watched::body(gzipped(method, &uri, None), gzip_bomb(), true);
        let answer = call!(&app, req, payload);
        assert_error(
            &answer,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authorization",
            &what,
        );
        assert_eq!(body.pulled(), 0, "{what}: the body was read");
    }
    assert_eq!(fx.f.published_state(), before);
}

#[actix_web::test]
async fn compressed_bodies_inflate_before_authentication_a_gzip_bomb_with_a_credential_is_415_unread(
) {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let before = fx.f.published_state();
    let token = fx.issuer.token();
    let cases = [
        (
            "CI delegation with a valid ID token",
            "/api/v1/ci/delegations",
            token.as_str(),
        ),
        (
            "namespace creation by an org admin",
            "/api/v1/namespaces",
            fx.f.admin.as_str(),
        ),
        (
            "air-gap export by an org admin",
            "/api/v1/export",
            fx.f.admin.as_str(),
        ),
    ];
    for (what, uri, credential) in cases {
        let (body, req, payload) = Watched::body(
            gzipped(Method::POST, uri, Some(credential)),
            gzip_bomb(),
            true,
        );
        let answer = call!(&app, req, payload);
        assert_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "Content-Encoding",
            what,
        );
        assert_eq!(body.pulled(), 0, "{what}: the body was read");
    }
    assert_eq!(fx.f.published_state(), before);
}

#[actix_web::test]
async fn compressed_bodies_inflate_before_authentication_a_valid_request_compressed_is_refused_not_decoded(
) {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let before = fx.f.published_state();
    // The same requests uncompressed would succeed (201).
    let namespace = json!({"name": "zipped", "scopes": ["r.io/zipped/**"]});
    let nonce = {
        let a = send(
            &app,
            request(Method::POST, "/api/v1/ci/nonce", None, None).to_request(),
        )
        .await;
        a.json()["nonce"].as_str().unwrap().to_owned()
    };
    let delegation = delegation_body(&nonce, "team-a", &job_key());
    let token = fx.issuer.token();
    let cases: [(&str, &str, &str, &Value); 2] = [
        ("namespace", "/api/v1/namespaces", &fx.f.admin, &namespace),
        (
            "CI delegation",
            "/api/v1/ci/delegations",
            &token,
            &delegation,
        ),
    ];
    for (what, uri, credential, body) in cases {
        let plain = serde_json::to_vec(body).unwrap();
        for coding in ["gzip", "x-gzip", "deflate", "br", "identity, gzip", "GZIP"] {
            let bytes = if coding.contains("gzip") || coding == "GZIP" {
                gzip(&plain)
            } else {
                plain.clone()
            };
            let req = request(Method::POST, uri, Some(credential), None)
                .insert_header(("Content-Type", "application/json"))
                .insert_header(("Content-Encoding", coding))
                .set_payload(bytes);
            let answer = send(&app, req.to_request()).await;
            assert_error(
                &answer,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                "Content-Encoding",
                &format!("{what} with Content-Encoding {coding}"),
            );
            assert!(
                answer.error().1.contains(coding),
                "{what}: the message names the coding"
            );
        }
    }
    assert_eq!(fx.f.published_state(), before, "nothing was published");
    // `identity` is no encoding: the namespace request goes through.
    let req = request(Method::POST, "/api/v1/namespaces", Some(&fx.f.admin), None)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Content-Encoding", "identity"))
        .set_payload(serde_json::to_vec(&namespace).unwrap());
    let answer = send(&app, req.to_request()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.error());
}

#[actix_web::test]
async fn compressed_bodies_inflate_before_authentication_an_oversized_body_without_credential_is_401_not_413(
) {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let before = fx.f.published_state();
    let big = vec![b' '; 4 * DEFAULT_BODY_LIMIT];
    let mut routes: Vec<(String, Method, String)> = body_routes()
        .into_iter()
        .map(|(e, m, p)| (format!("{e:?}"), m, p))
        .collect();
    routes.push((
        "CI delegation".into(),
        Method::POST,
        "/api/v1/ci/delegations".into(),
    ));
    for (what, method, uri) in routes {
        for sized in [true, false] {
            let req = request(method.clone(), &uri, None, None)
                .insert_header(("Content-Type", "application/json"));
            let (body, req, payload) = Watched::body(req, &big, sized);
            let answer = call!(&app, req, payload);
            assert_error(
                &answer,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authorization",
                &format!("{what} (Content-Length given: {sized})"),
            );
            assert_eq!(body.pulled(), 0, "{what}: the body was read");
        }
    }
    assert_eq!(fx.f.published_state(), before);
}

#[actix_web::test]
async fn compressed_bodies_inflate_before_authentication_a_body_sent_without_the_right_to_the_route_is_403_unread(
) {
    let f = Fixture::new();
    ci_common::create_namespaces(&f.publisher, &["a", "b"]);
    let app = app!(f);
    // A maintainer of `b` may write none of these (they are org-admin
    // routes or routes of namespace `a`).
    let maintainer = f.token(TokenKind::Maintainer(http_common::ns_name("b")));
    for (e, method, uri) in body_routes() {
        let (body, req, payload) =
            Watched::body(gzipped(method, &uri, Some(&maintainer)), gzip_bomb(), true);
        let answer = call!(&app, req, payload);
        assert_error(
            &answer,
            StatusCode::FORBIDDEN,
            "forbidden",
            "may not",
            &format!("{e:?}"),
        );
        assert_eq!(body.pulled(), 0, "{e:?}: the body was read");
    }
}

#[actix_web::test]
async fn compressed_bodies_inflate_before_authentication_an_oversized_body_is_cut_off_at_the_limit()
{
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let before = fx.f.published_state();
    let token = fx.issuer.token();
    let limit = DEFAULT_BODY_LIMIT;
    for (what, uri, credential) in [
        ("namespace", "/api/v1/namespaces", fx.f.admin.as_str()),
        ("CI delegation", "/api/v1/ci/delegations", token.as_str()),
        ("root submission", "/api/v1/root", fx.f.admin.as_str()),
    ] {
        // A Content-Length over the limit: refused before reading.
        let req = request(Method::POST, uri, Some(credential), None)
            .insert_header(("Content-Type", "application/json"));
        let (body, req, payload) = Watched::body(req, &vec![b' '; limit + 1], true);
        let answer = call!(&app, req, payload);
        assert_error(
            &answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &limit.to_string(),
            what,
        );
        assert_eq!(body.pulled(), 0, "{what}: read despite its Content-Length");

        // No Content-Length, 128 MiB coming: cut off once past the limit.
        let req = request(Method::POST, uri, Some(credential), None)
            .insert_header(("Content-Type", "application/json"));
        let (body, req, payload) = Watched::endless(req, 2048);
        let answer = call!(&app, req, payload);
        assert_error(
            &answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &limit.to_string(),
            what,
        );
        assert!(
            body.pulled() <= limit + (64 << 10),
            "{what}: {} bytes read for a limit of {limit}",
            body.pulled()
        );
    }
    assert_eq!(fx.f.published_state(), before);
}
