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
use keyshare_policy::trust::{NamespaceEntry, NamespaceName};
use keyshare_server::ci::{CiConfig, CiService};
use keyshare_server::http::AppState;
use keyshare_server::publisher::{Change, Publisher};
use keyshare_server::store::{Store, TokenKind};

use keyshare_testkit::TestClock;

fn keyshare(args: &[&str]) -> Output {
    keyshare_with_server(args, None)
}

/// `keyshare ARGS` with `KEYSHARE_SERVER` set to `server` (as a CI job
/// sets it), or unset.
fn keyshare_with_server(args: &[&str], server: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyshare"));
    command.args(args).stdin(Stdio::null());
    match server {
        Some(url) => command.env("KEYSHARE_SERVER", url),
        None => command.env_remove("KEYSHARE_SERVER"),
    };
    command.output().unwrap()
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

/// A keyshare server with CI delegations (a CI token scoped to `team-a`
/// as the job's credential), namespaces `team-a` and `team-b`, its
/// repository created at `created` and its clock reading `clock`, on a
/// loopback socket; with `tsa`, its own timestamp authority as `init` sets
/// it up (the CA listed in `org/tsas.json`). Stopped when dropped.
struct CiServer {
    dir: tempfile::TempDir,
    publisher: Arc<Publisher>,
    url: String,
    ci_token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CiServer {
    fn start(created: OffsetDateTime, clock: &TestClock, tsa: bool) -> Self {
        let (dir, publisher, _) = crate::common::Server::init(created);
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
                    created,
                )
                .unwrap();
        }
        let ci_token = publisher
            .create_token(
                "test",
                TokenKind::Ci(vec![NamespaceName::parse("team-a").unwrap()]),
                None,
                created,
            )
            .unwrap()
            .secret
            .expose()
            .to_owned();
        let mut state = AppState::new(publisher.clone());
        state.clock = clock.clock();
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
        if tsa {
            let config = keyshare_server::config::TsaConfig::default();
            let (material, _) =
                keyshare_server::tsa::setup::prepare(&config, None, dir.path(), created, true)
                    .unwrap();
            keyshare_server::tsa::trust_own(&publisher, &material, created).unwrap();
            let store = Store::open(dir.path().join("keyshare.db")).unwrap();
            state.tsa = Some(Arc::new(
                keyshare_server::tsa::Tsa::new(material, &config, store).unwrap(),
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
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
        let server = Self {
            dir,
            publisher,
            url,
            ci_token,
            stop: Some(stop),
            thread: Some(thread),
        };
        std::fs::write(server.path("token"), format!("{}\n", server.ci_token)).unwrap();
        std::fs::write(
            server.path("root.json"),
            &server.publisher.file("metadata/1.root.json").unwrap().bytes[..],
        )
        .unwrap();
        server
    }

    /// A path in the server's scratch directory (the job's and the
    /// verifier's files live there too).
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Drop for CiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_job_gets_a_key_signs_a_file_and_a_verifier_trusts_it_for_its_namespace_only() {
    let now = OffsetDateTime::now_utc();
    let server = CiServer::start(now, &TestClock::at(now), false);
    let (url, ci_token) = (server.url.clone(), server.ci_token.clone());
    let path = |n: &str| server.path(n);
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

    // ci end --output json: nothing on stdout (the server answers 204, as
    // for the admin commands), exit 0; the delegation is gone.
    let second: Value = serde_json::from_str(&ok(&keyshare(&[
        "ci",
        "request",
        "--server",
        &url,
        "--namespace",
        "team-a",
        "--token-file",
        &path("token"),
        "--key-out",
        &path("job-2.pem"),
        "--output",
        "json",
    ])))
    .unwrap();
    let second_id = second["id"].as_str().unwrap();
    let ended = keyshare(&[
        "ci",
        "end",
        "--server",
        &url,
        "--token-file",
        &path("token"),
        "--output",
        "json",
        second_id,
    ]);
    assert_eq!(ok(&ended), "");
    assert!(ended.stderr.is_empty(), "{ended:?}");
    let delegations = server.publisher.read(|s| s.keys("team-a")).unwrap();
    assert!(
        delegations
            .iter()
            .all(|k| k.key.id.as_str() != second["key_id"].as_str().unwrap()),
        "the delegation ended"
    );
}

/// docs/ci.md's release example, run as written (with a CI token as the
/// job's credential instead of an OIDC ID token): `ci request`, then
/// `sign-blob --key ... dist/app.tar` with `KEYSHARE_SERVER` set. The
/// server's clock is injected: the job ran two hours ago, its delegation
/// (the default 10 minutes) ended and the sweep removed the key from `team-a`'s
/// document. Today's verifier still trusts the release, by the token's
/// time and the delegation evidence the signature carries, and nothing
/// else: without the evidence, with altered evidence, for another
/// namespace, or once the key is revoked from before it signed, refused.
#[test]
fn the_release_example_verifies_after_the_delegation_ended_and_was_swept() {
    let today = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let job_time = today - time::Duration::hours(2);
    let clock = TestClock::at(job_time);
    let server = CiServer::start(job_time - time::Duration::minutes(1), &clock, true);
    let path = |n: &str| server.path(n);
    std::fs::create_dir(path("dist")).unwrap();
    std::fs::write(path("dist/app.tar"), b"release 1.0").unwrap();

    // The job.
    ok(&keyshare_with_server(
        &[
            "ci",
            "request",
            "--namespace",
            "team-a",
            "--token-file",
            &path("token"),
            "--key-out",
            &path("ks.pem"),
        ],
        Some(&server.url),
    ));
    let signed = keyshare_with_server(
        &["sign-blob", "--key", &path("ks.pem"), &path("dist/app.tar")],
        Some(&server.url),
    );
    ok(&signed);
    let sig: Value =
        serde_json::from_slice(&std::fs::read(path("dist/app.tar.sig")).unwrap()).unwrap();
    assert!(sig["timestamp_token"].is_string(), "{sig}");
    assert_eq!(
        sig["delegation_evidence"][0]["namespace"], "team-a",
        "{sig}"
    );

    // Two hours later: the delegation ended long ago; the sweep runs.
    clock.set(today);
    assert_eq!(server.publisher.sweep_ephemeral(today).unwrap(), 1);
    let key_id = sig["key_id"].as_str().unwrap();
    let team_a = server.publisher.read(|s| s.keys("team-a")).unwrap();
    assert!(
        team_a.iter().all(|k| k.key.id.as_str() != key_id),
        "the sweep removed the key"
    );

    ok(&keyshare(&[
        "init",
        "--server",
        &server.url,
        "--root",
        &path("root.json"),
        "--cache-dir",
        &path("cache"),
    ]));
    let verify = |artifact: &str, sig: &str| {
        keyshare(&[
            "verify-blob",
            artifact,
            &path("dist/app.tar"),
            "--signature",
            &path(sig),
            "--refresh",
            "--cache-dir",
            &path("cache"),
        ])
    };
    let out = ok(&verify("registry.acme.io/team-a/app", "dist/app.tar.sig"));
    assert!(out.contains("trusted by namespace `team-a`"), "{out}");
    assert!(
        out.contains("delegation from the signature's evidence"),
        "{out}"
    );
    assert!(out.contains("timestamp token of TSA `keyshare`"), "{out}");

    // Not for another namespace's artifacts.
    let e = error_line(&verify("registry.acme.io/team-b/app", "dist/app.tar.sig"));
    assert!(e.contains("untrusted"), "{e}");

    // Without the evidence the swept key is not listed.
    let mut bare = sig.clone();
    bare.as_object_mut().unwrap().remove("delegation_evidence");
    std::fs::write(path("bare.sig"), bare.to_string()).unwrap();
    let e = error_line(&verify("registry.acme.io/team-a/app", "bare.sig"));
    assert!(e.contains("not trusted by namespace `team-a`"), "{e}");

    // Evidence whose document was widened: refused, naming the evidence.
    let mut altered = sig.clone();
    let document = openssl::base64::decode_block(
        altered["delegation_evidence"][0]["document"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut document: Value = serde_json::from_slice(&document).unwrap();
    for k in document["keys"].as_array_mut().unwrap() {
        k["not_after"] = "2099-01-01T00:00:00Z".into();
    }
    altered["delegation_evidence"][0]["document"] =
        openssl::base64::encode_block(document.to_string().as_bytes()).into();
    std::fs::write(path("altered.sig"), altered.to_string()).unwrap();
    let e = error_line(&verify("registry.acme.io/team-a/app", "altered.sig"));
    assert!(e.contains("delegation evidence"), "{e}");
    assert!(e.contains("does not list this trust document"), "{e}");

    // Revoked (today) from before the job signed: refused.
    let key: keyshare_policy::keys::Key = serde_json::from_value(sig["key"].clone()).unwrap();
    let fingerprint = key
        .fingerprint(&keyshare_policy::metadata::KeyId::new(key_id))
        .unwrap();
    server
        .publisher
        .apply(
            "test",
            Change::AddRevocation {
                revocation: keyshare_policy::trust::Revocation {
                    subject: keyshare_policy::trust::RevokedSubject::Key(fingerprint),
                    revoked_at: job_time - time::Duration::minutes(1),
                    reason: "runner compromised".into(),
                },
                listed_as: None,
            },
            today,
        )
        .unwrap();
    let e = error_line(&verify("registry.acme.io/team-a/app", "dist/app.tar.sig"));
    assert!(e.contains("revoked"), "{e}");
}
