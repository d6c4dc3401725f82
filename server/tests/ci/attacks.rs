//! CI delegations attacked from the inside: by CI jobs (and one careless
//! maintainer) of the same organization. Each test is named after the
//! attack it stops.
//!
//! * one tenant fails everybody's transaction: one bad entry of a batch or
//!   a sweep (a key already listed under another id, a namespace whose
//!   threshold can no longer be met) must fail alone;
//! * nonce exhaustion: flooding the nonce endpoint must not stop anybody
//!   else's delegation;
//! * CI identity labels collide and leak: ownership is the exact identity,
//!   and the published document names no repository or issuer.
//!
//! Replay after a restart is in `ci_restart.rs` (it restarts the binary).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use crate::http_common;

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};

use actix_web::http::{Method, StatusCode};
use openssl::bn::BigNumContext;
use openssl::ec::PointConversionForm;
use serde_json::{json, Value};
use time::Duration;

use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{Decision, Reason, SignerRef, TrustedKey};
use keyshare_server::ci::{key_from_pem, proof_message};
use keyshare_server::publisher::Change;

use crate::ci_common::{
    answer, create_namespaces, delegation_body, job_key, public_pem, trust_set, CiFixture, Running,
};
use http_common::{ns_name, request, send, NOW};

/// A fresh nonce from the app (the whole answer).
macro_rules! nonce {
    ($app:expr) => {
        send(
            $app,
            request(Method::POST, "/api/v1/ci/nonce", None, None).to_request(),
        )
        .await
    };
}

/// The text of a fresh nonce.
macro_rules! fresh_nonce {
    ($app:expr) => {{
        let a = nonce!($app);
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.json()["nonce"].as_str().unwrap().to_owned()
    }};
}

/// `POST /api/v1/ci/delegations` with `token` and `body`.
macro_rules! delegate_with {
    ($app:expr, $token:expr, $body:expr) => {
        send(
            $app,
            request(
                Method::POST,
                "/api/v1/ci/delegations",
                Some($token),
                Some($body),
            )
            .to_request(),
        )
        .await
    };
}

const NAMESPACES: [&str; 4] = ["team-a", "team-b", "team-c", "team-d"];

/// A fixture whose job identity may sign for `team-a` … `team-d`, with a
/// rate limit no burst reaches and batches that wait long enough for a
/// whole burst to share one publish.
fn tenants() -> CiFixture {
    let fx = CiFixture::with(|c| {
        c.rules[0].namespaces = NAMESPACES.iter().map(|n| ns_name(n)).collect();
        c.rate_limit = 10_000;
        c.batch_wait_ms = 300;
    });
    create_namespaces(&fx.f.publisher, &["team-c", "team-d"]);
    fx
}

/// An ID token of the fixture's issuer for the job with subject `sub`.
fn token_for(fx: &CiFixture, sub: &str) -> String {
    let mut claims = fx.issuer.claims();
    claims["sub"] = json!(sub);
    fx.issuer.sign(&claims, "RS256")
}

/// A long-lived key listed by a maintainer.
fn long_lived(id: &str, key: &InMemorySigner) -> TrustedKey {
    TrustedKey {
        id: keyshare_policy::metadata::KeyId::new(id),
        key: key.public_key().clone(),
        not_before: None,
        not_after: None,
        ephemeral: false,
        description: Some("release key".into()),
        principal: None,
        layout_root: false,
    }
}

fn add_long_lived(fx: &CiFixture, ns: &str, key: &TrustedKey) {
    fx.f.publisher
        .apply(
            "maintainer",
            Change::AddKey {
                namespace: ns_name(ns),
                key: key.clone(),
            },
            NOW,
        )
        .unwrap();
}

fn set_threshold(fx: &CiFixture, ns: &str, t: u32) {
    fx.f.publisher
        .apply(
            "maintainer",
            Change::SetThreshold {
                namespace: ns_name(ns),
                threshold: NonZeroU32::new(t).unwrap(),
            },
            NOW,
        )
        .unwrap();
}

/// The public key of a P-256 `key` as SubjectPublicKeyInfo PEM with the
/// point in compressed form: the same key, written differently.
fn compressed_pem(key: &InMemorySigner) -> String {
    let pkey = openssl::pkey::PKey::public_key_from_pem(public_pem(key).as_bytes()).unwrap();
    let ec = pkey.ec_key().unwrap();
    let point = ec
        .public_key()
        .to_bytes(
            ec.group(),
            PointConversionForm::COMPRESSED,
            &mut BigNumContext::new().unwrap(),
        )
        .unwrap();
    // SubjectPublicKeyInfo: id-ecPublicKey, prime256v1, BIT STRING of 33 bytes.
    let mut der = hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
    der.extend_from_slice(&point);
    let b64 = openssl::base64::encode_block(&der);
    format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
}

/// A delegation body for `pem` (held by `signer`) with the proof over the
/// key id the server computes for that PEM, as a job that wants the key
/// accepted would make it.
fn body_for_pem(nonce: &str, ns: &str, signer: &InMemorySigner, pem: &str) -> Value {
    let id = key_from_pem(pem).unwrap().key_id().unwrap();
    let proof = signer.sign(&proof_message(nonce, ns, id.as_str())).unwrap();
    json!({
        "namespace": ns,
        "public_key_pem": pem,
        "nonce": nonce,
        "proof": hex::encode(proof),
    })
}

/// One request of a burst.
enum Job {
    /// A delegation of `key` (as `pem` when given) in `ns`.
    Delegate {
        token: String,
        ns: &'static str,
        key: Arc<InMemorySigner>,
        pem: Option<String>,
    },
    /// A delegation request with this body as it is.
    Raw { token: String, body: Value },
    /// Ends delegation `id`.
    End { token: String, id: String },
}

/// Sends every job at once (each on its own thread, released together) to
/// the app served at `base`; returns each job's status and body, in order.
fn burst(base: &str, jobs: Vec<Job>) -> Vec<(u16, Value)> {
    let agent = ureq::AgentBuilder::new().max_idle_connections(0).build();
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let threads: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let (agent, base, barrier) = (agent.clone(), base.to_owned(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                match job {
                    Job::Delegate {
                        token,
                        ns,
                        key,
                        pem,
                    } => {
                        let (status, nonce) =
                            answer(agent.post(&format!("{base}/api/v1/ci/nonce")).call());
                        if status != 201 {
                            return (status, nonce);
                        }
                        let nonce = nonce["nonce"].as_str().unwrap();
                        let body = match &pem {
                            Some(pem) => body_for_pem(nonce, ns, &key, pem),
                            None => delegation_body(nonce, ns, &key),
                        };
                        answer(
                            agent
                                .post(&format!("{base}/api/v1/ci/delegations"))
                                .set("Authorization", &format!("Bearer {token}"))
                                .send_json(body),
                        )
                    }
                    Job::Raw { token, body } => answer(
                        agent
                            .post(&format!("{base}/api/v1/ci/delegations"))
                            .set("Authorization", &format!("Bearer {token}"))
                            .send_json(body),
                    ),
                    Job::End { token, id } => answer(
                        agent
                            .delete(&format!("{base}/api/v1/ci/delegations/{id}"))
                            .set("Authorization", &format!("Bearer {token}"))
                            .call(),
                    ),
                }
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// 49 delegations of fresh keys by the default job, spread over `spread`.
fn ordinary_jobs(fx: &CiFixture, spread: &[&'static str]) -> Vec<Job> {
    (0..49)
        .map(|i| Job::Delegate {
            token: fx.issuer.token(),
            ns: spread[i % spread.len()],
            key: Arc::new(job_key()),
            pem: None,
        })
        .collect()
}

/// Every ordinary delegation of `results` (all but `poisoned`) got 201 and
/// its key is trusted in its namespace, as a verifier reads the repository.
fn assert_ordinary_published(fx: &CiFixture, results: &[(u16, Value)], poisoned: usize) {
    let failed: Vec<String> = results
        .iter()
        .enumerate()
        .filter(|(i, (status, _))| *i != poisoned && *status != 201)
        .map(|(i, (status, body))| format!("#{i}: {status} {body}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} ordinary requests failed because of one tenant: {failed:?}",
        failed.len(),
        results.len() - 1
    );
    let set = trust_set(&fx.f.publisher, NOW, &NAMESPACES);
    for (i, (_, d)) in results.iter().enumerate() {
        if i == poisoned || d["key_id"].is_null() {
            continue;
        }
        let ns = d["namespace"].as_str().unwrap();
        let key_id = keyshare_policy::metadata::KeyId::new(d["key_id"].as_str().unwrap());
        let decision = set.decide(
            &format!("registry.acme.io/{ns}/app"),
            &[SignerRef::KeyId(key_id)],
            NOW,
            NOW,
        );
        assert!(decision.is_trusted(), "#{i} in {ns}: {decision}");
    }
}

// ---- one tenant fails everybody's transaction ----

#[test]
fn one_tenant_fails_everybodys_transaction_compressed_form_of_a_listed_ci_key() {
    let fx = tenants();
    // A job's P-256 key, delegated the usual way.
    let k = Arc::new(InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap());
    let server = Running::start(fx.f.state.clone());
    let first = burst(
        &server.base,
        vec![Job::Delegate {
            token: fx.issuer.token(),
            ns: "team-a",
            key: k.clone(),
            pem: None,
        }],
    );
    assert_eq!(first[0].0, 201, "{}", first[0].1);

    // The same key again, in compressed form, among 49 ordinary delegations
    // of three teams. Any job can send it: it holds the key.
    let mut jobs = ordinary_jobs(&fx, &["team-a", "team-b", "team-c"]);
    let poisoned = 17;
    jobs.insert(
        poisoned,
        Job::Delegate {
            token: fx.issuer.token(),
            ns: "team-a",
            key: k.clone(),
            pem: Some(compressed_pem(&k)),
        },
    );
    let results = burst(&server.base, jobs);
    drop(server);
    assert_ordinary_published(&fx, &results, poisoned);
    // The compressed form is the same key: refused alone, naming it.
    let (status, body) = &results[poisoned];
    assert_eq!(*status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_exists", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(k.key_id().as_str()), "{message}");
    // Listed once, under the id of its canonical form.
    let keys = fx.f.publisher.read(|s| s.keys("team-a")).unwrap();
    let same: Vec<_> = keys
        .iter()
        .filter(|r| r.key.key == *k.public_key())
        .collect();
    assert_eq!(same.len(), 1);
    assert_eq!(same[0].key.id, *k.key_id());
}

#[test]
fn one_tenant_fails_everybodys_transaction_key_listed_under_another_id() {
    let fx = tenants();
    // A maintainer listed a P-256 key under an id of their choosing.
    let k = Arc::new(InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap());
    add_long_lived(&fx, "team-a", &long_lived("release-key", &k));
    let server = Running::start(fx.f.state.clone());
    let mut jobs = ordinary_jobs(&fx, &["team-a", "team-b", "team-c"]);
    let poisoned = 30;
    jobs.insert(
        poisoned,
        Job::Delegate {
            token: fx.issuer.token(),
            ns: "team-a",
            key: k.clone(),
            pem: Some(compressed_pem(&k)),
        },
    );
    let results = burst(&server.base, jobs);
    drop(server);
    assert_ordinary_published(&fx, &results, poisoned);
    let (status, body) = &results[poisoned];
    assert_eq!(*status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_exists", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`release-key`"), "{message}");
    // Nothing of the refused entry was stored.
    let keys = fx.f.publisher.read(|s| s.keys("team-a")).unwrap();
    assert_eq!(
        keys.iter().filter(|r| r.key.key == *k.public_key()).count(),
        1
    );
}

#[test]
fn one_tenant_fails_everybodys_transaction_job_ending_its_delegation_leaves_a_threshold_unmet() {
    let fx = tenants();
    let app_state = fx.f.state.clone();
    let server = Running::start(app_state);
    // team-c: a release key and the keys of two jobs, threshold 3.
    let release = job_key();
    add_long_lived(&fx, "team-c", &long_lived("release", &release));
    let (e1, e2) = (Arc::new(job_key()), Arc::new(job_key()));
    let a = token_for(&fx, "repo:acme/app:ref:refs/heads/main:job-1");
    let b = token_for(&fx, "repo:acme/app:ref:refs/heads/main:job-2");
    let setup = burst(
        &server.base,
        vec![
            Job::Delegate {
                token: a.clone(),
                ns: "team-c",
                key: e1.clone(),
                pem: None,
            },
            Job::Delegate {
                token: b,
                ns: "team-c",
                key: e2.clone(),
                pem: None,
            },
        ],
    );
    assert!(setup.iter().all(|(s, _)| *s == 201), "{setup:?}");
    set_threshold(&fx, "team-c", 3);

    // Job 1 ends its own delegation while 49 jobs of other teams delegate:
    // team-c is left with two keys for a threshold of three.
    let mut jobs = ordinary_jobs(&fx, &["team-a", "team-b"]);
    let ending = 25;
    jobs.insert(
        ending,
        Job::End {
            token: a,
            id: format!("team-c.{}", e1.key_id()),
        },
    );
    let results = burst(&server.base, jobs);
    drop(server);
    assert_eq!(results[ending].0, 204, "{}", results[ending].1);
    assert_ordinary_published(&fx, &results, ending);
    // team-c is published as it is: a threshold nobody can meet any more,
    // which verifiers report as such.
    let set = trust_set(&fx.f.publisher, NOW, &NAMESPACES);
    let doc = set
        .namespaces()
        .find(|d| d.namespace.as_str() == "team-c")
        .unwrap();
    assert_eq!(doc.threshold.get(), 3);
    assert_eq!(doc.keys.len(), 2);
    let signers = [
        // Listed under the id its maintainer gave it.
        SignerRef::KeyId(keyshare_policy::metadata::KeyId::new("release")),
        SignerRef::KeyId(e2.key_id().clone()),
    ];
    match set.decide("registry.acme.io/team-c/app", &signers, NOW, NOW) {
        Decision::Untrusted {
            reason:
                Reason::ThresholdNotMet {
                    valid: 2,
                    threshold: 3,
                    ..
                },
        } => {}
        other => panic!("{other}"),
    }
}

#[actix_web::test]
async fn one_tenant_fails_everybodys_transaction_sweep_with_bad_namespaces() {
    let fx = tenants();
    let app = app!(fx.f);
    // A delegation for one minute.
    macro_rules! delegate {
        ($token:expr, $ns:expr, $key:expr) => {{
            let n = fresh_nonce!(&app);
            let mut body = delegation_body(&n, $ns, $key);
            body["ttl_seconds"] = json!(60);
            let a = delegate_with!(&app, &$token, &body);
            assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
        }};
    }
    // An expiring key in team-a and team-b.
    let (ea, eb) = (job_key(), job_key());
    delegate!(fx.issuer.token(), "team-a", &ea);
    delegate!(fx.issuer.token(), "team-b", &eb);
    // team-c: a release key and two jobs' expiring keys, threshold 3.
    let release_c = job_key();
    add_long_lived(&fx, "team-c", &long_lived("release", &release_c));
    let (e1, e2) = (job_key(), job_key());
    delegate!(token_for(&fx, "job-1"), "team-c", &e1);
    delegate!(token_for(&fx, "job-2"), "team-c", &e2);
    set_threshold(&fx, "team-c", 3);
    // team-d: a release key and an expiring key; then a row that no
    // document may hold (a control character in a description).
    let release_d = job_key();
    add_long_lived(&fx, "team-d", &long_lived("release", &release_d));
    let ed = job_key();
    delegate!(fx.issuer.token(), "team-d", &ed);
    let db = rusqlite::Connection::open(fx.f.dir.path().join("keyshare.db")).unwrap();
    let corrupt = |description: &str| {
        db.execute(
            "UPDATE keys SET description = ?1 WHERE namespace = 'team-d' AND ephemeral = 0",
            [description],
        )
        .unwrap();
    };
    corrupt("release\nkey");

    let later = NOW + Duration::minutes(5);
    let removed = fx.f.publisher.sweep_ephemeral(later).unwrap();
    assert_eq!(removed, 4, "team-a, team-b and both of team-c");
    let listed = |ns: &str| -> BTreeSet<String> {
        fx.f.publisher
            .read(|s| s.keys(ns))
            .unwrap()
            .into_iter()
            .map(|r| r.key.id.to_string())
            .collect()
    };
    assert!(listed("team-a").is_empty());
    assert!(listed("team-b").is_empty());
    assert_eq!(listed("team-c"), BTreeSet::from(["release".to_owned()]));
    // team-d cannot be published: its expired key stays until it can.
    assert!(listed("team-d").contains(ed.key_id().as_str()));

    let set = trust_set(&fx.f.publisher, later, &NAMESPACES);
    let doc = |ns: &str| {
        set.namespaces()
            .find(|d| d.namespace.as_str() == ns)
            .unwrap()
            .clone()
    };
    assert!(doc("team-a").keys.is_empty());
    assert!(doc("team-b").keys.is_empty());
    assert_eq!(doc("team-c").keys.len(), 1);
    match set.decide(
        "registry.acme.io/team-c/app",
        &[SignerRef::KeyId(keyshare_policy::metadata::KeyId::new(
            "release",
        ))],
        later,
        later,
    ) {
        Decision::Untrusted {
            reason:
                Reason::ThresholdNotMet {
                    valid: 1,
                    threshold: 3,
                    ..
                },
        } => {}
        other => panic!("{other}"),
    }

    // Once team-d is repaired, the next sweep removes its key too.
    corrupt("release key");
    assert_eq!(fx.f.publisher.sweep_ephemeral(later).unwrap(), 1);
    assert!(!listed("team-d").contains(ed.key_id().as_str()));
    let set = trust_set(&fx.f.publisher, later, &NAMESPACES);
    let d = set
        .namespaces()
        .find(|d| d.namespace.as_str() == "team-d")
        .unwrap();
    assert_eq!(d.keys.len(), 1);
}

#[actix_web::test]
async fn one_tenant_fails_everybodys_transaction_only_people_are_held_to_a_reachable_threshold() {
    // People may not make a threshold unreachable (400 naming it); a CI
    // key going away may (the sweep, a job ending its delegation, or an
    // admin removing an ephemeral key).
    let fx = CiFixture::with(|c| c.rules[0].namespaces = vec![ns_name("team-b")]);
    let app = app!(fx.f);
    let admin = fx.f.admin.clone();
    let call = |method: Method, path: &str, body: Option<Value>| {
        request(method, path, Some(&admin), body.as_ref()).to_request()
    };
    for id in ["k1", "k2"] {
        let a = send(
            &app,
            call(
                Method::POST,
                "/api/v1/namespaces/team-b/keys",
                Some(json!({"id": id, "key": http_common::ed25519_key()})),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    }
    let a = send(
        &app,
        call(
            Method::POST,
            "/api/v1/namespaces/team-b/identities",
            Some(
                json!({"name": "id1", "ca_certs": [http_common::ca_pem("ca")], "subject": "CN=b"}),
            ),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    let threshold = |t: u32| {
        call(
            Method::PUT,
            "/api/v1/namespaces/team-b/threshold",
            Some(json!({ "threshold": t })),
        )
    };
    assert_eq!(send(&app, threshold(3)).await.status, StatusCode::OK);
    let before = fx.f.published_state();
    let refused = [
        ("threshold above the keys", threshold(4), "threshold 4"),
        (
            "removing a long-lived key",
            call(Method::DELETE, "/api/v1/namespaces/team-b/keys/k1", None),
            "threshold 3",
        ),
        (
            "removing an identity",
            call(
                Method::DELETE,
                "/api/v1/namespaces/team-b/identities/id1",
                None,
            ),
            "threshold 3",
        ),
    ];
    for (what, req, names) in refused {
        let a = send(&app, req).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}");
        let (code, message) = a.error();
        assert_eq!(code, "invalid", "{what}");
        assert!(message.contains(names), "{what}: {message}");
    }
    assert_eq!(fx.f.published_state(), before, "a refused change published");

    // A CI key makes a fourth signer; the threshold may then be 4.
    let key = job_key();
    let n = fresh_nonce!(&app);
    let a = delegate_with!(
        &app,
        &fx.issuer.token(),
        &delegation_body(&n, "team-b", &key)
    );
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    assert_eq!(send(&app, threshold(4)).await.status, StatusCode::OK);
    // Removing that ephemeral key is a CI key going away: allowed.
    let a = send(
        &app,
        call(
            Method::DELETE,
            &format!("/api/v1/namespaces/team-b/keys/{}", key.key_id()),
            None,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let doc =
        fx.f.publisher
            .read(|s| s.namespace_document("team-b"))
            .unwrap();
    assert_eq!((doc.threshold.get(), doc.keys.len()), (4, 2));
}

// ---- nonce exhaustion ----

#[actix_web::test]
async fn nonce_exhaustion_a_flood_from_one_client_does_not_stop_another_clients_delegation() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    // One client asks for nonces as fast as it can and never uses them:
    // more than a table of outstanding nonces would hold.
    for _ in 0..110_000 {
        let _ = fx.service.nonce(NOW);
    }
    let mut refused = 0;
    for _ in 0..5_000 {
        if nonce!(&app).status != StatusCode::CREATED {
            refused += 1;
        }
    }
    assert_eq!(refused, 0, "nonces refused during the flood");
    // Another job still gets its nonce and its delegation.
    let a = nonce!(&app);
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let n = a.json()["nonce"].as_str().unwrap().to_owned();
    let a = delegate_with!(
        &app,
        &fx.issuer.token(),
        &delegation_body(&n, "team-a", &job_key())
    );
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
}

/// Unauthenticated clients flooding the CI endpoint with made-up CI tokens
/// (`ks_...`) take turns for the token look-ups (at most two at a time)
/// with the jobs that hold real credentials: every made-up one is refused
/// (401) and grants nothing, and the real CI token's and the OIDC job's
/// delegations, sent in the same burst, are published.
#[test]
fn nonce_exhaustion_a_flood_of_made_up_ci_tokens_does_not_stop_real_jobs() {
    let fx = CiFixture::with(|c| c.rate_limit = 10_000);
    let real = fx.team_a_token();
    let server = Running::start(fx.f.state.clone());
    let keys_before = fx.f.publisher.read(|s| s.keys("team-a")).unwrap().len();
    let (ci_key, oidc_key) = (Arc::new(job_key()), Arc::new(job_key()));
    let mut jobs: Vec<Job> = (0..150)
        .map(|i| Job::Raw {
            token: format!("ks_{i:064x}"),
            body: delegation_body("no-nonce-needed", "team-a", &job_key()),
        })
        .collect();
    jobs.insert(
        75,
        Job::Delegate {
            token: real.secret.expose().to_owned(),
            ns: "team-a",
            key: ci_key.clone(),
            pem: None,
        },
    );
    jobs.insert(
        100,
        Job::Delegate {
            token: fx.issuer.token(),
            ns: "team-a",
            key: oidc_key.clone(),
            pem: None,
        },
    );
    let results = burst(&server.base, jobs);
    drop(server);
    for (i, (status, body)) in results.iter().enumerate() {
        match i {
            75 | 100 => assert_eq!(*status, 201, "job {i}: {body}"),
            _ => {
                assert_eq!(*status, 401, "job {i}: {body}");
                assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            }
        }
    }
    let keys = fx.f.publisher.read(|s| s.keys("team-a")).unwrap();
    assert_eq!(keys.len(), keys_before + 2);
    for key in [&ci_key, &oidc_key] {
        assert!(keys.iter().any(|r| r.key.id == *key.key_id()));
    }
}

#[actix_web::test]
async fn nonce_exhaustion_forged_altered_and_expired_nonces_are_refused() {
    let fx = CiFixture::with(|c| c.rate_limit = 10_000);
    let app = app!(fx.f);
    let good = fresh_nonce!(&app);
    // Change one character at `at` (to another of the same kind).
    let flip = |at: usize| -> String {
        let mut chars: Vec<char> = good.chars().collect();
        chars[at] = match chars[at] {
            '0' => '1',
            '9' => '8',
            c if c.is_ascii_digit() => '0',
            'a' => 'b',
            _ => 'a',
        };
        chars.into_iter().collect()
    };
    let parts: Vec<&str> = good.split('.').collect();
    let mut cases: Vec<(&str, String)> = vec![
        ("made up", "00ff".into()),
        ("empty", String::new()),
        ("the right shape, no MAC of ours", {
            let mut p = parts.clone();
            let forged = "0".repeat(p.last().unwrap().len());
            *p.last_mut().unwrap() = &forged;
            p.join(".")
        }),
        ("truncated", good[..good.len() - 2].to_owned()),
        ("appended", format!("{good}00")),
        ("very long", "a".repeat(2_000)),
        ("last character", flip(good.len() - 1)),
        ("first character", flip(0)),
    ];
    // Every character position of every part, one at a time.
    for at in (0..good.len()).filter(|&i| good.as_bytes()[i] != b'.') {
        cases.push(("one character changed", flip(at)));
    }
    // Later expiry, same randomness and MAC.
    if parts.len() > 2 {
        let mut p: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
        for part in &mut p {
            if let Ok(t) = part.parse::<i64>() {
                *part = (t + 3600).to_string();
            }
        }
        cases.push(("expiry pushed back", p.join(".")));
    }
    for (what, n) in &cases {
        let key = job_key();
        let a = delegate_with!(
            &app,
            &fx.issuer.token(),
            &delegation_body(n, "team-a", &key)
        );
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {n}");
        assert_eq!(a.error().0, "bad_nonce", "{what}: {}", a.error().1);
    }
    // The untouched nonce still works: nothing above used it up.
    let a = delegate_with!(
        &app,
        &fx.issuer.token(),
        &delegation_body(&good, "team-a", &job_key())
    );
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());

    // A nonce past its lifetime (2 minutes by default).
    let old = fresh_nonce!(&app);
    fx.clock.set(NOW + Duration::minutes(2));
    let a = delegate_with!(
        &app,
        &fx.issuer.token(),
        &delegation_body(&old, "team-a", &job_key())
    );
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let (code, message) = a.error();
    assert_eq!(code, "bad_nonce");
    assert!(message.contains("expired"), "{message}");
}

#[actix_web::test]
async fn nonce_exhaustion_a_nonce_is_good_for_one_delegation_only() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let n = fresh_nonce!(&app);
    let a = delegate_with!(
        &app,
        &fx.issuer.token(),
        &delegation_body(&n, "team-a", &job_key())
    );
    assert_eq!(a.status, StatusCode::CREATED);
    // Again, with another token and another key: used up.
    let a = delegate_with!(
        &app,
        &fx.issuer.token(),
        &delegation_body(&n, "team-a", &job_key())
    );
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let (code, message) = a.error();
    assert_eq!(code, "bad_nonce");
    assert!(message.contains("used"), "{message}");
}

#[test]
fn nonce_exhaustion_one_nonce_sent_twice_at_once_grants_one_delegation() {
    let fx = CiFixture::with(|c| c.batch_wait_ms = 300);
    let server = Running::start(fx.f.state.clone());
    for _ in 0..3 {
        let (status, n) = answer(ureq::post(&format!("{}/api/v1/ci/nonce", server.base)).call());
        assert_eq!(status, 201);
        let n = n["nonce"].as_str().unwrap();
        let jobs = (0..2)
            .map(|_| Job::Raw {
                token: fx.issuer.token(),
                body: delegation_body(n, "team-a", &job_key()),
            })
            .collect();
        let results = burst(&server.base, jobs);
        let mut statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 400], "{results:?}");
        let refused = results.iter().find(|(s, _)| *s == 400).unwrap();
        assert_eq!(refused.1["error"]["code"], "bad_nonce");
    }
}

// ---- CI identity labels collide and leak ----

/// Job 1 (`first`) gets a delegation; job 2 (`second`), allowed in the same
/// namespace, tries to end it: 403, and the key stays listed.
async fn second_job_cannot_end_first_jobs_delegation(first: &str, second: &str) {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let key = job_key();
    let n = fresh_nonce!(&app);
    let a = delegate_with!(
        &app,
        &token_for(&fx, first),
        &delegation_body(&n, "team-a", &key)
    );
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    let id = a.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/ci/delegations/{id}");
    let a = send(
        &app,
        request(Method::DELETE, &path, Some(&token_for(&fx, second)), None).to_request(),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "the second job ended the first job's delegation"
    );
    assert_eq!(a.error().0, "forbidden");
    let keys = fx.f.publisher.read(|s| s.keys("team-a")).unwrap();
    assert!(keys.iter().any(|k| k.key.id == *key.key_id()));
    // The first job itself may.
    let a = send(
        &app,
        request(Method::DELETE, &path, Some(&token_for(&fx, first)), None).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn ci_identity_labels_collide_and_leak_subjects_sharing_a_long_prefix() {
    let prefix = format!("repo:acme/app:environment:{}", "x".repeat(200));
    second_job_cannot_end_first_jobs_delegation(&format!("{prefix}-one"), &format!("{prefix}-two"))
        .await;
}

#[actix_web::test]
async fn ci_identity_labels_collide_and_leak_subjects_differing_in_newline_and_carriage_return() {
    second_job_cannot_end_first_jobs_delegation(
        "repo:acme/app:ref:refs/heads/a\nb",
        "repo:acme/app:ref:refs/heads/a\rb",
    )
    .await;
}

#[actix_web::test]
async fn ci_identity_labels_collide_and_leak_a_token_without_sub_is_refused() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let before = fx.f.published_state();
    let mut no_sub = fx.issuer.claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut empty_sub = fx.issuer.claims();
    empty_sub["sub"] = json!("");
    let mut number_sub = fx.issuer.claims();
    number_sub["sub"] = json!(42);
    for (what, claims) in [
        ("no sub", no_sub),
        ("empty sub", empty_sub),
        ("sub not a string", number_sub),
    ] {
        let n = fresh_nonce!(&app);
        let a = delegate_with!(
            &app,
            &fx.issuer.sign(&claims, "RS256"),
            &delegation_body(&n, "team-a", &job_key())
        );
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}");
        let (code, message) = a.error();
        assert_eq!(code, "invalid_token", "{what}: {message}");
        assert!(message.contains("`sub`"), "{what}: {message}");
    }
    assert_eq!(fx.f.published_state(), before);
}

/// The bytes of `namespaces/<ns>/trust.json` as the TUF read API serves
/// them: timestamp → snapshot → the namespace's bin → the target.
macro_rules! published_trust_json {
    ($app:expr, $ns:expr) => {{
        let ns: &str = $ns;
        let get = |path: String| request(Method::GET, &path, None, None).to_request();
        let timestamp = send($app, get("/metadata/timestamp.json".into()))
            .await
            .json();
        let v = &timestamp["signed"]["meta"]["snapshot.json"]["version"];
        let snapshot = send($app, get(format!("/metadata/{v}.snapshot.json")))
            .await
            .json();
        let path = format!("namespaces/{ns}/trust.json");
        let bin = keyshare_policy::trust::namespace_bins(vec![], std::num::NonZeroU32::MIN)
            .role_for_target(&path);
        let v = &snapshot["signed"]["meta"][format!("{bin}.json")]["version"];
        let role = send($app, get(format!("/metadata/{v}.{bin}.json")))
            .await
            .json();
        let hash = role["signed"]["targets"][&path]["hashes"]["sha256"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = send(
            $app,
            get(format!("/targets/namespaces/{ns}/{hash}.trust.json")),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        a.body
    }};
}

#[actix_web::test]
async fn ci_identity_labels_collide_and_leak_published_document_names_no_identity() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let private_sub = "repo:acme/secret-project:ref:refs/heads/unreleased-feature";
    let other_sub = "repo:acme/app:ref:refs/heads/main";
    let ci_token = fx.f.ci("team-a");
    let mut keys: Vec<(&str, InMemorySigner)> = Vec::new();
    for (who, token) in [
        ("private", token_for(&fx, private_sub)),
        ("private", token_for(&fx, private_sub)),
        ("other", token_for(&fx, other_sub)),
        ("ci-token", ci_token.clone()),
        ("ci-token", ci_token.clone()),
    ] {
        let key = job_key();
        let n = fresh_nonce!(&app);
        let a = delegate_with!(&app, &token, &delegation_body(&n, "team-a", &key));
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
        keys.push((who, key));
    }

    let bytes = published_trust_json!(&app, "team-a");
    let text = String::from_utf8(bytes).unwrap();
    for leak in [
        "secret-project",
        "unreleased-feature",
        "acme/app",
        fx.issuer.url.as_str(),
        fx.issuer.url.trim_start_matches("http://"),
        "oidc:",
        "tok-",
    ] {
        assert!(!text.contains(leak), "trust.json contains `{leak}`: {text}");
    }

    // Each CI key names its holder by an opaque principal: the same for one
    // identity, different across identities.
    let set = trust_set(&fx.f.publisher, NOW, &["team-a"]);
    let doc = set.namespaces().next().unwrap();
    let principal = |key: &InMemorySigner| -> String {
        let listed = doc.keys.iter().find(|k| k.id == *key.key_id()).unwrap();
        assert_eq!(listed.description.as_deref(), Some("CI delegation"));
        listed
            .principal
            .as_ref()
            .expect("a CI key without a principal")
            .to_string()
    };
    let p: Vec<(&str, String)> = keys.iter().map(|(w, k)| (*w, principal(k))).collect();
    for (_, id) in &p {
        let hexpart = id.strip_prefix("ci:").unwrap();
        assert_eq!(hexpart.len(), 64, "{id}");
        assert!(hexpart
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    assert_eq!(p[0].1, p[1].1, "one identity, two principals");
    assert_eq!(p[3].1, p[4].1, "one CI token, two principals");
    let distinct: BTreeSet<&String> = [&p[0].1, &p[2].1, &p[3].1].into_iter().collect();
    assert_eq!(distinct.len(), 3, "{p:?}");
    // Not a plain hash of the subject anyone could compute.
    for sub in [private_sub, other_sub] {
        let guess = keyshare_policy::hash::sha256_hex(sub.as_bytes());
        assert!(p.iter().all(|(_, id)| !id.contains(&guess)));
    }

    // The audit log still tells who it was.
    let records = fx.f.publisher.read(|s| s.audit_records(0, 1000)).unwrap();
    assert!(records
        .iter()
        .any(|r| r.action == "key.add" && r.details["context"]["claims"]["sub"] == private_sub));
}

#[actix_web::test]
async fn threshold_met_by_one_principal_a_ci_job_delegated_twice_over_http_is_one_principal() {
    // "Human + CI": team-a needs two principals. One CI job asks for two
    // delegations and signs with both keys: still one principal.
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let (human, other_human) = (job_key(), job_key());
    add_long_lived(&fx, "team-a", &long_lived("alice", &human));
    add_long_lived(&fx, "team-a", &long_lived("bob", &other_human));
    set_threshold(&fx, "team-a", 2);
    let token = token_for(&fx, "repo:acme/app:ref:refs/heads/main");
    let mut ci_keys = Vec::new();
    for _ in 0..2 {
        let key = job_key();
        let n = fresh_nonce!(&app);
        // One ID token per delegation (each is single use): same identity.
        let token = if ci_keys.is_empty() {
            token.clone()
        } else {
            token_for(&fx, "repo:acme/app:ref:refs/heads/main")
        };
        let a = delegate_with!(&app, &token, &delegation_body(&n, "team-a", &key));
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
        ci_keys.push(key);
    }
    let set = trust_set(&fx.f.publisher, NOW, &["team-a"]);
    let by_id = |k: &InMemorySigner| SignerRef::KeyId(k.key_id().clone());
    let artifact = "registry.acme.io/team-a/app";
    match set.decide(
        artifact,
        &[by_id(&ci_keys[0]), by_id(&ci_keys[1])],
        NOW,
        NOW,
    ) {
        Decision::Untrusted {
            reason: Reason::ThresholdNotMet {
                valid, threshold, ..
            },
        } => assert_eq!((valid, threshold), (1, 2)),
        other => panic!("one CI job met a threshold of two: {other}"),
    }
    let by_key = |k: &InMemorySigner| SignerRef::PublicKey(k.public_key().clone());
    let d = set.decide(artifact, &[by_key(&human), by_id(&ci_keys[0])], NOW, NOW);
    assert!(d.is_trusted(), "{d}");
    let d = set.decide(artifact, &[by_key(&human), by_key(&other_human)], NOW, NOW);
    assert!(d.is_trusted(), "{d}");
}
