//! `keyshare ci request`, `sign-blob` and `verify-blob` run as processes
//! against a real server with CI delegations configured (a scoped CI token
//! as the job's credential), on a loopback socket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::repo::Options;
use keyshare_policy::trust::{NamespaceEntry, NamespaceName};
use keyshare_server::ci::{CiConfig, CiService};
use keyshare_server::http::AppState;
use keyshare_server::publisher::{Change, OnlineKeys, Publisher};
use keyshare_server::store::{Store, TokenKind};

use keyshare_testkit::signer;

fn keyshare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyshare"))
        .args(args)
        .env_remove("KEYSHARE_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

#[test]
fn a_job_gets_a_key_signs_a_file_and_a_verifier_trusts_it_for_its_namespace_only() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let store = Store::open(dir.path().join("keyshare.db")).unwrap();
    let keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let publisher =
        Arc::new(Publisher::init(store, keys, &[signer()], 1, Options::default(), now).unwrap());
    for name in ["team-a", "team-b"] {
        publisher
            .apply(
                "test",
                Change::CreateNamespace {
                    entry: NamespaceEntry {
                        name: NamespaceName::parse(name).unwrap(),
                        scopes: vec![ArtifactPattern::parse(&format!(
                            "registry.acme.io/{name}/**"
                        ))
                        .unwrap()],
                        maintainers: vec![],
                    },
                    threshold: NonZeroU32::MIN,
                    allow_overlap: false,
                },
                now,
            )
            .unwrap();
    }
    let ci_token = publisher
        .create_token(
            "test",
            TokenKind::Ci(vec![NamespaceName::parse("team-a").unwrap()]),
            None,
            now,
        )
        .unwrap()
        .secret
        .expose()
        .to_owned();
    let mut state = AppState::new(publisher.clone());
    state.ci = Some(Arc::new(
        CiService::new(
            CiConfig::default(),
            dir.path(),
            None,
            publisher.clone(),
            state.clock.clone(),
        )
        .unwrap(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(keyshare_server::http::run(listener, state, async move {
            let _ = stop_rx.await;
        }))
        .unwrap();
    });

    let path = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(path("token"), format!("{ci_token}\n")).unwrap();
    std::fs::write(
        path("root.json"),
        &publisher.file("metadata/1.root.json").unwrap().bytes[..],
    )
    .unwrap();
    std::fs::write(path("artifact.tar"), b"the artifact").unwrap();

    // ci request: the key is written 0600, the answer names the delegation.
    let out = ok(&keyshare(&[
        "ci",
        "request",
        "--server",
        &url,
        "--namespace",
        "team-a",
        "--token-file",
        &path("token"),
        "--ttl",
        "5m",
        "--key-out",
        &path("job.pem"),
        "--output",
        "json",
    ]));
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["namespace"], "team-a");
    assert_eq!(d["key_file"], path("job.pem"));
    let mode = std::fs::metadata(path("job.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!out.contains("PRIVATE KEY") && !out.contains(&ci_token));
    // The same key file is never overwritten.
    let e = error_line(&keyshare(&[
        "ci",
        "request",
        "--server",
        &url,
        "--namespace",
        "team-a",
        "--token-file",
        &path("token"),
        "--key-out",
        &path("job.pem"),
    ]));
    assert!(e.contains("already exists"), "{e}");
    // A namespace the token does not cover: one error line naming the reason.
    let e = error_line(&keyshare(&[
        "ci",
        "request",
        "--server",
        &url,
        "--namespace",
        "team-b",
        "--token-file",
        &path("token"),
        "--key-out",
        &path("other.pem"),
    ]));
    assert!(e.contains("namespace_not_allowed"), "{e}");
    assert!(!e.contains(&ci_token));

    // sign-blob, then verify-blob against the published trust documents.
    // The server runs no timestamp authority: the job carries on without a
    // token and says so.
    let signed = keyshare(&[
        "sign-blob",
        "--server",
        &url,
        "--key",
        &path("job.pem"),
        &path("artifact.tar"),
    ]);
    let out = ok(&signed);
    assert!(out.contains("artifact.tar.sig"), "{out}");
    let warned = String::from_utf8(signed.stderr.clone()).unwrap();
    assert!(
        warned.contains("runs no timestamp authority (404)"),
        "{warned}"
    );
    ok(&keyshare(&[
        "init",
        "--server",
        &url,
        "--root",
        &path("root.json"),
        "--cache-dir",
        &path("cache"),
    ]));
    let verify = |artifact: &str| {
        keyshare(&[
            "verify-blob",
            artifact,
            &path("artifact.tar"),
            "--signature",
            &path("artifact.tar.sig"),
            "--refresh",
            "--cache-dir",
            &path("cache"),
        ])
    };
    let out = ok(&verify("registry.acme.io/team-a/app"));
    assert!(out.contains("trusted by namespace `team-a`"), "{out}");
    let e = error_line(&verify("registry.acme.io/team-b/app"));
    assert!(e.contains("untrusted"), "{e}");
    std::fs::write(path("artifact.tar"), b"another artifact").unwrap();
    let e = error_line(&verify("registry.acme.io/team-a/app"));
    assert!(e.contains("SHA-256"), "{e}");

    // ci end: the delegation is gone from the published documents.
    let id = d["id"].as_str().unwrap();
    ok(&keyshare(&[
        "ci",
        "end",
        "--server",
        &url,
        "--token-file",
        &path("token"),
        id,
    ]));
    std::fs::write(path("artifact.tar"), b"the artifact").unwrap();
    let e = error_line(&verify("registry.acme.io/team-a/app"));
    assert!(e.contains("untrusted"), "{e}");

    let _ = stop.send(());
    server.join().unwrap();
}
