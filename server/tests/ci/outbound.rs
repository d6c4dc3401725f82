//! Outbound requests steered inward, on the CI side: the server fetches an
//! OIDC issuer's discovery document and key set, so neither may lead it to
//! another host than the issuer's, nor to a private address by way of DNS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr
)]

use std::net::{TcpListener, ToSocketAddrs};
use std::sync::atomic::Ordering;

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use crate::ci_common::{delegation_body, job_key, CiFixture, Issuer};
use crate::http_common::{request, send, Answer};

/// A fresh nonce, then a delegation request for `team-a` with `token`.
macro_rules! delegate {
    ($app:expr, $token:expr) => {{
        let a = send(
            $app,
            request(Method::POST, "/api/v1/ci/nonce", None, None).to_request(),
        )
        .await;
        let nonce = a.json()["nonce"].as_str().unwrap().to_owned();
        let body = delegation_body(&nonce, "team-a", &job_key());
        send(
            $app,
            request(
                Method::POST,
                "/api/v1/ci/delegations",
                Some($token),
                Some(&body),
            )
            .to_request(),
        )
        .await
    }};
}

fn unavailable(a: &Answer) -> String {
    assert_eq!(
        a.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let (code, message) = a.error();
    assert_eq!(code, "issuer_unavailable", "{message}");
    message
}

/// A loopback listener that never accepts: whether anyone connected.
struct Silent(TcpListener);

impl Silent {
    fn bind() -> Self {
        Self(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn was_contacted(&self) -> bool {
        self.0.set_nonblocking(true).unwrap();
        match self.0.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("{e}"),
        }
    }
}

#[actix_web::test]
async fn outbound_requests_steered_inward_a_jwks_uri_on_another_host_or_port_is_not_fetched() {
    // Issuer A's discovery document sends the server to B's key set, on
    // another port. A token signed by B's key, in A's name.
    let b = Issuer::start();
    let b_url = b.url.clone();
    let a = Issuer::start_with(|_| format!("{b_url}/jwks.json"));
    let a_url = a.url.clone();
    let token = {
        let mut claims = a.claims();
        claims["iss"] = json!(a_url);
        b.sign(&claims, "RS256")
    };

    let fx = CiFixture::with_issuer(a, |_| {});
    let app = app!(fx.f);
    let before = fx.f.published_state();
    let message = unavailable(&delegate!(&app, &token));
    assert!(
        message.contains("another host than the issuer"),
        "{message}"
    );
    assert!(message.contains("jwks_hosts"), "{message}");
    assert_eq!(
        b.fetches.load(Ordering::SeqCst),
        0,
        "B's key set was fetched"
    );
    assert_eq!(fx.f.published_state(), before);

    // A silent listener elsewhere is not even connected to.
    let silent = Silent::bind();
    let port = silent.port();
    let c = Issuer::start_with(|_| format!("http://localhost:{port}/jwks.json"));
    let fx_c = CiFixture::with_issuer(c, |_| {});
    let app_c = app!(fx_c.f);
    let token_c = fx_c.issuer.token();
    let message = unavailable(&delegate!(&app_c, &token_c));
    assert!(message.contains("another host"), "{message}");
    assert!(!silent.was_contacted(), "the other host was contacted");

    // Listed in the issuer's jwks_hosts, B's key set is used.
    let a = Issuer::start_with(|_| format!("{b_url}/jwks.json"));
    let token = {
        let mut claims = a.claims();
        claims["iss"] = json!(a.url);
        b.sign(&claims, "RS256")
    };
    let fx = CiFixture::with_issuer(a, |c| c.issuers[0].jwks_hosts = vec!["127.0.0.1".into()]);
    let app = app!(fx.f);
    let answer = delegate!(&app, &token);
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.error());
    assert_eq!(b.fetches.load(Ordering::SeqCst), 1);
}

/// The machine's host name, if it resolves to loopback addresses only.
fn loopback_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
        return None;
    }
    let addrs: Vec<_> = (name.as_str(), 0).to_socket_addrs().ok()?.collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then_some(name)
}

#[actix_web::test]
async fn outbound_requests_steered_inward_an_issuer_name_resolving_to_loopback_is_not_fetched() {
    let Some(name) = loopback_host_name() else {
        eprintln!("skipped: the host name does not resolve to loopback only here");
        return;
    };
    let silent = Silent::bind();
    let url = format!("https://{name}:{}", silent.port());
    let fx = CiFixture::with(|c| {
        c.allow_private_addresses = false;
        c.issuers[0].url.clone_from(&url);
        c.rules[0].issuer.clone_from(&url);
    });
    let app = app!(fx.f);
    let mut claims = fx.issuer.claims();
    claims["iss"] = json!(url);
    let token = fx.issuer.sign(&claims, "RS256");
    let message = unavailable(&delegate!(&app, &token));
    assert!(message.contains(&format!("{name}:")), "{message}");
    assert!(message.contains("resolves to 127."), "{message}");
    assert!(message.contains("ci.allow_private_addresses"), "{message}");
    assert!(
        !silent.was_contacted(),
        "the loopback listener was contacted"
    );
}
