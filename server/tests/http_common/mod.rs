//! Shared fixture of the HTTP tests (also used by the CI, air-gap and
//! publish tests): a published repository in a temporary directory, an
//! org-admin token, and helpers to call the app in-process (no sockets).

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use serde_json::Value;
use time::macros::datetime;
use time::OffsetDateTime;

use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{Root, Signed};
use keyshare_policy::repo::{Options, SharedSigner};
use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, Signer};
use keyshare_server::http::AppState;
use keyshare_server::publisher::{OnlineKeys, Publisher};
use keyshare_server::store::{AuditHead, Store, TokenKind};
pub use keyshare_testkit::ns as ns_name;
use keyshare_testkit::signer;

/// The fixed time of every test.
pub const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub publisher: Arc<Publisher>,
    pub state: AppState,
    /// Secret of an org-admin token.
    pub admin: String,
    /// The root key (threshold 1) of root v1.
    pub root_key: SharedSigner,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_body_limit(keyshare_server::http::DEFAULT_BODY_LIMIT)
    }

    pub fn with_body_limit(body_limit: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("keyshare.db")).unwrap();
        let keys = OnlineKeys {
            targets: signer(),
            snapshot: signer(),
            timestamp: signer(),
            namespaces: signer(),
        };
        let root_key = signer();
        let publisher = Arc::new(
            Publisher::init(
                store,
                keys,
                std::slice::from_ref(&root_key),
                1,
                Options::default(),
                NOW,
            )
            .unwrap(),
        );
        let mut state = AppState::new(publisher.clone());
        state.clock = Arc::new(|| NOW);
        state.body_limit = body_limit;
        let mut fixture = Self {
            dir,
            publisher,
            state,
            admin: String::new(),
            root_key,
        };
        fixture.admin = fixture.token(TokenKind::OrgAdmin);
        fixture
    }

    /// A new active token of `kind`; returns its secret.
    pub fn token(&self, kind: TokenKind) -> String {
        let new = self
            .publisher
            .create_token("test", kind, None, NOW)
            .unwrap();
        new.secret.expose().to_owned()
    }

    /// A token that was created and then revoked; returns its secret.
    pub fn revoked_token(&self) -> String {
        let new = self
            .publisher
            .create_token("test", TokenKind::OrgAdmin, None, NOW)
            .unwrap();
        self.publisher
            .revoke_token("test", &new.token.id, NOW)
            .unwrap();
        new.secret.expose().to_owned()
    }

    pub fn maintainer(&self, ns: &str) -> String {
        self.token(TokenKind::Maintainer(ns_name(ns)))
    }

    pub fn ci(&self, ns: &str) -> String {
        self.token(TokenKind::Ci(vec![ns_name(ns)]))
    }

    /// The audit head and the published timestamp version: what must not
    /// change when a request is refused.
    pub fn published_state(&self) -> (AuditHead, u64) {
        let head = self.publisher.read(|s| s.audit_head()).unwrap();
        (head, self.timestamp_version())
    }

    /// The current root (highest published version).
    pub fn current_root(&self) -> Signed<Root> {
        let mut n = 1;
        while self
            .publisher
            .file(&format!("metadata/{}.root.json", n + 1))
            .is_some()
        {
            n += 1;
        }
        let file = self
            .publisher
            .file(&format!("metadata/{n}.root.json"))
            .unwrap();
        serde_json::from_slice(&file.bytes).unwrap()
    }

    /// The next root version, edited by `edit`, signed by `signers`.
    pub fn next_root(&self, edit: impl FnOnce(&mut Root), signers: &[&dyn Signer]) -> Value {
        let mut root = self.current_root().signed;
        root.version += 1;
        edit(&mut root);
        let signed = sign(root, signers).unwrap();
        serde_json::from_slice(&to_bytes(&signed).unwrap()).unwrap()
    }

    /// The next root, unchanged but for its version, signed by the root key.
    pub fn next_root_signed(&self) -> Value {
        self.next_root(|_| {}, &[self.root_key.as_ref()])
    }

    pub fn timestamp_version(&self) -> u64 {
        let file = self.publisher.file("metadata/timestamp.json").unwrap();
        let v: Value = serde_json::from_slice(&file.bytes).unwrap();
        v["signed"]["version"].as_u64().unwrap()
    }
}

/// An answer, read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error code and message of a JSON error answer (panics otherwise).
    pub fn error(&self) -> (String, String) {
        let v = self.json();
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {v}"))
            .to_owned();
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.message in {v}"))
            .to_owned();
        (code, message)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to build.
pub fn request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> TestRequest {
    let mut req = TestRequest::default().method(method).uri(uri);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req
            .insert_header(("Content-Type", "application/json"))
            .set_payload(serde_json::to_vec(b).unwrap());
    }
    req
}

/// Sends a request to the in-process app and reads the whole answer.
pub async fn send<S, R, B>(app: &S, req: R) -> Answer
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await.to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// Builds the app of a fixture: `let app = app!(fixture);`.
#[macro_export]
macro_rules! app {
    ($fixture:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .configure(keyshare_server::http::app_config($fixture.state.clone())),
        )
        .await
    };
}

/// An Ed25519 TUF key object (fresh key).
pub fn ed25519_key() -> Value {
    let signer = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    use keyshare_policy::sign::Signer as _;
    serde_json::to_value(signer.public_key()).unwrap()
}

/// A fresh public key as PEM SubjectPublicKeyInfo.
pub fn public_pem(kind: &str) -> String {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    let pkey = match kind {
        "ed25519" => PKey::generate_ed25519().unwrap(),
        "p256" => PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap(),
        "p384" => PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::SECP384R1).unwrap()).unwrap(),
        )
        .unwrap(),
        "rsa1024" => PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap(),
        "rsa2048" => PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
        other => panic!("unknown key kind {other}"),
    };
    String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap()
}

/// A self-signed CA certificate, PEM.
pub fn ca_pem(cn: &str) -> String {
    keyshare_testkit::ca_pem(cn)
}

/// Status and JSON body (`null` when empty) of an answer.
pub fn status_and_json(answer: Answer) -> (StatusCode, Value) {
    let v = if answer.body.is_empty() {
        Value::Null
    } else {
        answer.json()
    };
    (answer.status, v)
}

/// `call!(app, METHOD, uri, token, body)`: sends and reads the answer
/// (status and JSON body; `body` `Value::Null` sends none).
#[allow(unused_macros)]
macro_rules! call {
    ($app:expr, $method:expr, $uri:expr, $token:expr, $body:expr) => {{
        let body: serde_json::Value = $body;
        let body = (!body.is_null()).then_some(body);
        $crate::http_common::status_and_json(
            $crate::http_common::send(
                &$app,
                $crate::http_common::request($method, $uri, Some($token), body.as_ref())
                    .to_request(),
            )
            .await,
        )
    }};
}
