//! Group commit: a burst of concurrent delegation requests over real HTTP
//! all succeed, every key is published, and they share few publishes,
//! whether each job has an OIDC ID token of its own or all share one CI
//! token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::TcpListener;
use std::sync::{Arc, Barrier};

use serde_json::Value;

use keyshare_policy::sign::Signer;
use keyshare_policy::trust::SignerRef;

use crate::ci_common::{delegation_body, job_key, trust_set, CiFixture};
use crate::http_common::NOW;

const REQUESTS: usize = 200;

#[test]
fn two_hundred_concurrent_delegations_share_few_publishes() {
    let fx = CiFixture::with(|c| c.rate_limit = 10_000);
    let tokens = (0..REQUESTS).map(|_| fx.issuer.token()).collect();
    burst(&fx, tokens);
}

/// The same burst with one CI token, as a CI fleet sharing one: the
/// token's namespaces are not kept yet when the burst starts, and its
/// look-ups take turns (at most two at a time on blocking threads).
#[test]
fn two_hundred_concurrent_delegations_with_one_ci_token_share_few_publishes() {
    let fx = CiFixture::with(|c| c.rate_limit = 10_000);
    let token = fx.team_a_token();
    let secret = token.secret.expose().to_owned();
    burst(&fx, vec![secret; REQUESTS]);
}

/// One delegation in `team-a` per credential, all at once over real HTTP:
/// every one succeeds and is published, in few publishes.
fn burst(fx: &CiFixture, credentials: Vec<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = fx.f.state.clone();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
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

    let publishes_before = fx.f.publisher.metrics().publishes;
    // Credentials and keys are made before the burst, so the burst is
    // requests only.
    let jobs: Vec<(String, keyshare_policy::sign::InMemorySigner)> = credentials
        .into_iter()
        .map(|credential| (credential, job_key()))
        .collect();
    let agent = ureq::AgentBuilder::new().max_idle_connections(0).build();
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let threads: Vec<_> = jobs
        .into_iter()
        .map(|(token, key)| {
            let (agent, base, barrier) = (agent.clone(), base.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let nonce: Value = agent
                    .post(&format!("{base}/api/v1/ci/nonce"))
                    .call()
                    .unwrap()
                    .into_json()
                    .unwrap();
                let body = delegation_body(nonce["nonce"].as_str().unwrap(), "team-a", &key);
                let answer = agent
                    .post(&format!("{base}/api/v1/ci/delegations"))
                    .set("Authorization", &format!("Bearer {token}"))
                    .send_json(body);
                let d: Value = match answer {
                    Ok(r) => r.into_json().unwrap(),
                    Err(ureq::Error::Status(code, r)) => {
                        panic!("status {code}: {}", r.into_string().unwrap())
                    }
                    Err(e) => panic!("{e}"),
                };
                (key, d)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let _ = stop_tx.send(());
    server.join().unwrap();

    let publishes = fx.f.publisher.metrics().publishes - publishes_before;
    eprintln!("{REQUESTS} delegations in {publishes} publishes");
    assert_eq!(results.len(), REQUESTS);
    assert!(
        publishes <= 40,
        "{REQUESTS} concurrent delegations took {publishes} publishes"
    );
    let set = trust_set(&fx.f.publisher, NOW, &["team-a"]);
    let doc = set.namespaces().next().unwrap();
    assert_eq!(doc.keys.len(), REQUESTS);
    for (key, d) in &results {
        assert_eq!(d["key_id"], key.key_id().as_str());
        let decision = set.decide(
            "registry.acme.io/team-a/app",
            &[SignerRef::KeyId(key.key_id().clone())],
            NOW,
            NOW,
        );
        assert!(decision.is_trusted(), "{decision}");
        // The versions named in the answer contain the key.
        let v = d["namespace_version"].as_u64().unwrap();
        let bin =
            fx.f.publisher
                .trust_role(&keyshare_policy::trust::NamespaceName::parse("team-a").unwrap());
        let role =
            fx.f.publisher
                .file(&format!("metadata/{v}.{bin}.json"))
                .unwrap();
        assert!(!role.bytes.is_empty());
    }
}
