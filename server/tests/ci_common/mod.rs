//! Shared fixture of the CI tests (and `http/bodies.rs`): a local OIDC
//! issuer on loopback (discovery document and JWKS over HTTP, keys made
//! with OpenSSL), a published repository with namespaces `team-a` and `team-b`, and a CI
//! service whose claim rule lets `acme/app` on `refs/heads/main` sign for
//! `team-a`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::keys::Scheme;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{NamespaceEntry, TrustSet};
use keyshare_server::ci::{proof_message, CiConfig, CiService};
use keyshare_server::config::ci::{ClaimRule, IssuerConfig};
use keyshare_server::publisher::{Change, Publisher};

use crate::http_common::{ns_name, Fixture, NOW};
pub use keyshare_testkit::TestClock;

pub const AUDIENCE: &str = "https://keyshare.test";

/// A local OIDC issuer: serves `/.well-known/openid-configuration` and
/// `/jwks.json` on 127.0.0.1, signs tokens with its RSA (`rsa-1`) and
/// P-256 (`ec-1`) keys.
pub struct Issuer {
    pub url: String,
    rsa_pem: Vec<u8>,
    ec_pem: Vec<u8>,
    /// JWKS fetches served.
    pub fetches: Arc<AtomicU64>,
    jti: AtomicU64,
}

pub fn base64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn rsa_jwk(pem: &[u8], kid: &str) -> Value {
    let rsa = PKey::private_key_from_pem(pem).unwrap().rsa().unwrap();
    json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": base64url(&rsa.n().to_vec()), "e": base64url(&rsa.e().to_vec()),
    })
}

fn ec_jwk(pem: &[u8], kid: &str) -> Value {
    let ec = PKey::private_key_from_pem(pem).unwrap().ec_key().unwrap();
    let mut x = openssl::bn::BigNum::new().unwrap();
    let mut y = openssl::bn::BigNum::new().unwrap();
    ec.public_key()
        .affine_coordinates(
            ec.group(),
            &mut x,
            &mut y,
            &mut BigNumContext::new().unwrap(),
        )
        .unwrap();
    json!({
        "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
        "x": base64url(&x.to_vec_padded(32).unwrap()),
        "y": base64url(&y.to_vec_padded(32).unwrap()),
    })
}

fn jwks(rsa_pem: &[u8], ec_pem: &[u8]) -> Value {
    json!({ "keys": [rsa_jwk(rsa_pem, "rsa-1"), ec_jwk(ec_pem, "ec-1")] })
}

pub fn rsa_pem() -> Vec<u8> {
    PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap())
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap()
}

pub fn ec_pem() -> Vec<u8> {
    PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap()
    .private_key_to_pem_pkcs8()
    .unwrap()
}

impl Issuer {
    pub fn start() -> Self {
        Self::start_with(|url| format!("{url}/jwks.json"))
    }

    /// An issuer whose discovery document names `jwks_uri(issuer URL)` as
    /// its key set.
    pub fn start_with(jwks_uri: impl FnOnce(&str) -> String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let rsa_pem = rsa_pem();
        let ec_pem = ec_pem();
        let discovery = json!({
            "issuer": url,
            "jwks_uri": jwks_uri(&url),
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        })
        .to_string();
        let jwks =
            json!({ "keys": [rsa_jwk(&rsa_pem, "rsa-1"), ec_jwk(&ec_pem, "ec-1")] }).to_string();
        let fetches = Arc::new(AtomicU64::new(0));
        let counter = fetches.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/.well-known/openid-configuration" => ("200 OK", discovery.as_str()),
                    "/jwks.json" => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", jwks.as_str())
                    }
                    _ => ("404 Not Found", "{}"),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            url,
            rsa_pem,
            ec_pem,
            fetches,
            jti: AtomicU64::new(0),
        }
    }

    /// The issuer's public keys as a JWKS document.
    pub fn jwks(&self) -> Value {
        jwks(&self.rsa_pem, &self.ec_pem)
    }

    /// Claims of a GitHub Actions job of `acme/app` on main, for this
    /// issuer and audience, valid around `NOW`, with a fresh `jti`.
    pub fn claims(&self) -> Value {
        let n = self.jti.fetch_add(1, Ordering::SeqCst);
        json!({
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app",
            "ref": "refs/heads/main",
            "job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
            "jti": format!("job-{n}"),
            "iat": NOW.unix_timestamp() - 60,
            "nbf": NOW.unix_timestamp() - 60,
            "exp": NOW.unix_timestamp() + 300,
        })
    }

    /// `claims` signed with `alg` (`RS256` or `ES256`) by this issuer's key.
    pub fn sign(&self, claims: &Value, alg: &str) -> String {
        match alg {
            "RS256" => sign_with(claims, "RS256", "rsa-1", &self.rsa_pem),
            "ES256" => sign_with(claims, "ES256", "ec-1", &self.ec_pem),
            other => panic!("no key for {other}"),
        }
    }

    /// A fresh RS256 token for the default claims.
    pub fn token(&self) -> String {
        self.sign(&self.claims(), "RS256")
    }
}

/// Signs `claims` with the private key `pem` under header `alg`/`kid`
/// (a compact JWS, as an issuer makes it).
pub fn sign_with(claims: &Value, alg: &str, kid: &str, pem: &[u8]) -> String {
    let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let key = PKey::private_key_from_pem(pem).unwrap();
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key).unwrap();
    signer.update(input.as_bytes()).unwrap();
    let der = signer.sign_to_vec().unwrap();
    let sig = match alg {
        "RS256" => der,
        "ES256" => {
            let sig = EcdsaSig::from_der(&der).unwrap();
            let mut raw = sig.r().to_vec_padded(32).unwrap();
            raw.extend(sig.s().to_vec_padded(32).unwrap());
            raw
        }
        other => panic!("cannot sign {other}"),
    };
    format!("{input}.{}", base64url(&sig))
}

pub struct CiFixture {
    pub f: Fixture,
    pub issuer: Issuer,
    pub service: Arc<CiService>,
    pub clock: TestClock,
}

/// The configuration of the fixture's issuer and rule (team-a for
/// `acme/app` on main).
pub fn config(issuer: &Issuer) -> CiConfig {
    CiConfig {
        // The issuer listens on loopback, over plain http.
        allow_private_addresses: true,
        issuers: vec![IssuerConfig {
            url: issuer.url.clone(),
            audience: AUDIENCE.into(),
            jwks_file: None,
            jwks_hosts: Vec::new(),
        }],
        rules: vec![ClaimRule {
            issuer: issuer.url.clone(),
            claims: [
                ("repository".to_owned(), "acme/*".to_owned()),
                ("ref".to_owned(), "refs/heads/main".to_owned()),
            ]
            .into(),
            namespaces: vec![ns_name("team-a")],
        }],
        ..CiConfig::default()
    }
}

pub fn create_namespaces(publisher: &Publisher, names: &[&str]) {
    for name in names {
        publisher
            .apply(
                "test",
                Change::CreateNamespace {
                    entry: NamespaceEntry {
                        name: ns_name(name),
                        scopes: vec![ArtifactPattern::parse(&format!(
                            "registry.acme.io/{name}/**"
                        ))
                        .unwrap()],
                        maintainers: vec![],
                    },
                    threshold: NonZeroU32::MIN,
                    allow_overlap: false,
                },
                NOW,
            )
            .unwrap();
    }
}

impl CiFixture {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A new CI token scoped to `team-a`.
    pub fn team_a_token(&self) -> keyshare_server::store::NewToken {
        self.f
            .publisher
            .create_token(
                "test",
                keyshare_server::store::TokenKind::Ci(vec![ns_name("team-a")]),
                None,
                NOW,
            )
            .unwrap()
    }

    /// A fixture whose CI configuration `edit` adjusts.
    pub fn with(edit: impl FnOnce(&mut CiConfig)) -> Self {
        Self::with_issuer(Issuer::start(), edit)
    }

    /// A fixture with this issuer, whose CI configuration `edit` adjusts.
    pub fn with_issuer(issuer: Issuer, edit: impl FnOnce(&mut CiConfig)) -> Self {
        let mut f = Fixture::new();
        create_namespaces(&f.publisher, &["team-a", "team-b"]);
        let clock = TestClock::at(NOW);
        let mut config = config(&issuer);
        edit(&mut config);
        let service = Arc::new(
            CiService::new(
                config,
                f.dir.path(),
                None,
                f.publisher.clone(),
                clock.clock(),
            )
            .unwrap(),
        );
        f.state.ci = Some(service.clone());
        f.state.clock = clock.clock();
        Self {
            f,
            issuer,
            service,
            clock,
        }
    }
}

/// A job's key.
pub fn job_key() -> InMemorySigner {
    InMemorySigner::generate(Scheme::Ed25519).unwrap()
}

pub fn public_pem(key: &InMemorySigner) -> String {
    let pkey = key.public_key().openssl_key(key.key_id()).unwrap();
    String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap()
}

/// The body of a delegation request for `ns` with a proof by `key` over `nonce`.
pub fn delegation_body(nonce: &str, ns: &str, key: &InMemorySigner) -> Value {
    let proof = key
        .sign(&proof_message(nonce, ns, key.key_id().as_str()))
        .unwrap();
    json!({
        "namespace": ns,
        "public_key_pem": public_pem(key),
        "nonce": nonce,
        "proof": hex::encode(proof),
    })
}

/// The trust documents the publisher serves, read as a TUF client reads
/// them (root pinned, every signature and hash checked) at `at`.
pub fn trust_set(publisher: &Publisher, at: OffsetDateTime, namespaces: &[&str]) -> TrustSet {
    let root = publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();
    let fetch = |path: &str| publisher.file(path).map(|f| f.bytes.to_vec());
    let set = keyshare_testkit::read_trust_set(&root, at, &fetch).unwrap();
    for ns in namespaces {
        assert!(
            set.namespaces().any(|d| d.namespace.as_str() == *ns),
            "{ns} has a published trust document"
        );
    }
    set
}

/// The app served over real HTTP on 127.0.0.1 (for concurrent requests
/// from many threads); stops when dropped.
pub struct Running {
    pub base: String,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(state: keyshare_server::http::AppState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    let _ = stop_rx.recv();
                    let _ = tx.send(());
                });
                keyshare_server::http::run(listener, state, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        Self {
            base,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Status and JSON body of a `ureq` answer, whatever the status.
pub fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) => {
            let status = r.status();
            let text = r.into_string().unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap();
            (
                code,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(e) => panic!("{e}"),
    }
}
