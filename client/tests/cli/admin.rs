//! `keyshare admin ...` run as a process against a real server (the
//! shared fixture of `tests/common`: the server's `http::run` on a
//! loopback socket in a background thread with its own runtime, a
//! published repository in a temporary directory).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::io::Read;

use keyshare_client::fetch::BlockingClient;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use keyshare_policy::trust::NamespaceName;
use keyshare_server::store::TokenKind;

use common::{keyshare_env as keyshare, localhost_cert, Run};

/// A running server (the shared fixture) and an org-admin token.
struct Server {
    base: common::Server,
    /// Secret of an org-admin token.
    admin: String,
}

impl std::ops::Deref for Server {
    type Target = common::Server;

    fn deref(&self) -> &common::Server {
        &self.base
    }
}

impl Server {
    fn start() -> Self {
        let base = common::Server::start();
        let admin = base.admin_token();
        Self { base, admin }
    }

    fn token(&self, kind: TokenKind) -> String {
        let new = self
            .publisher
            .create_token("test", kind, None, OffsetDateTime::now_utc())
            .unwrap();
        new.secret.expose().to_owned()
    }

    fn maintainer(&self, ns: &str) -> String {
        self.token(TokenKind::Maintainer(NamespaceName::parse(ns).unwrap()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Runs `keyshare admin --server URL --token TOKEN ARGS...` (with an
    /// empty default verifier cache, which `audit verify` looks at).
    fn admin(&self, token: &str, args: &[&str]) -> Run {
        let mut all = vec!["admin", "--server", &self.url, "--token", token];
        all.extend_from_slice(args);
        let xdg = self.path("xdg-cache");
        keyshare(&all, &[("XDG_CACHE_HOME", xdg.to_str().unwrap())])
    }

    /// Runs an admin command as org admin and expects success.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.admin(&self.admin, args);
        run.assert_ok();
        assert!(
            !run.stdout.contains(&self.admin) && !run.stderr.contains(&self.admin),
            "{run:?}"
        );
        run
    }

    /// `ok` with `--output json`, parsed.
    fn ok_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        self.ok(&all).json()
    }

    /// The server's audit chain is intact.
    fn audit_intact(&self) -> bool {
        self.publisher.read(|s| s.verify_audit_chain()).is_ok()
    }
}

fn ed25519_public_pem() -> String {
    let pkey = openssl::pkey::PKey::generate_ed25519().unwrap();
    String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap()
}

fn p256_public_pem() -> String {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    let key = EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
    let pkey = openssl::pkey::PKey::from_ec_key(key).unwrap();
    String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap()
}

/// A self-signed CA certificate, PEM.
fn ca_pem(cn: &str) -> String {
    keyshare_testkit::ca_pem(cn)
}

fn create_team_a(server: &Server) {
    server.ok(&[
        "namespace",
        "create",
        "team-a",
        "--scope",
        "registry.acme.io/team-a/**",
        "--maintainer",
        "alice@acme.io",
    ]);
}

#[test]
fn walkthrough_create_add_key_revoke_list_resolve_and_verify_audit() {
    let server = Server::start();

    // Create: text summary, then the JSON of `show`.
    let run = server.ok(&[
        "namespace",
        "create",
        "team-a",
        "--scope",
        "registry.acme.io/team-a/**",
        "registry.acme.io/shared/team-a-*",
        "--maintainer",
        "alice@acme.io",
    ]);
    assert_eq!(
        run.stdout,
        "created namespace team-a (scopes: registry.acme.io/team-a/**, registry.acme.io/shared/team-a-*; threshold 1)\n"
    );
    let ns = server.ok_json(&["namespace", "show", "team-a"]);
    assert_eq!(ns["name"], "team-a");
    assert_eq!(ns["maintainers"][0], "alice@acme.io");
    assert_eq!(ns["keys"].as_array().unwrap().len(), 0);

    // Add a key from a PEM file: JSON answer has the computed id.
    let pem = server.write("signer.pub.pem", &ed25519_public_pem());
    let key = server.ok_json(&[
        "key",
        "add",
        "team-a",
        "--key-file",
        pem.to_str().unwrap(),
        "--description",
        "release signer",
        "--not-after",
        "2099-01-01T00:00:00Z",
    ]);
    let key_id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(key_id.len(), 64, "{key}");
    assert_eq!(key["key"]["keytype"], "ed25519");
    assert_eq!(key["description"], "release signer");

    // A second key with a chosen id, text output.
    let pem2 = server.write("p256.pub.pem", &p256_public_pem());
    let run = server.ok(&[
        "key",
        "add",
        "team-a",
        "--key-file",
        pem2.to_str().unwrap(),
        "--id",
        "ci-p256",
    ]);
    assert_eq!(run.stdout, "added key ci-p256 to namespace team-a\n");

    // Show lists both keys in the text table.
    let run = server.ok(&["namespace", "show", "team-a"]);
    assert!(run.stdout.starts_with("namespace:   team-a\n"), "{run:?}");
    assert!(run.stdout.contains(&key_id), "{run:?}");
    assert!(run.stdout.contains("ci-p256"), "{run:?}");
    assert!(run.stdout.contains("release signer"), "{run:?}");

    // Revoke the first key.
    let run = server.ok(&[
        "revocation",
        "add",
        "--key-id",
        &key_id,
        "--reason",
        "laptop lost",
        "--revoked-at",
        "2030-01-01T00:00:00Z",
    ]);
    // Revoked by its material: the answer names its fingerprint and where
    // the id pointed.
    let tuf_key: keyshare_policy::keys::Key = serde_json::from_value(key["key"].clone()).unwrap();
    let fingerprint = tuf_key
        .fingerprint(&keyshare_policy::metadata::KeyId::new(&key_id))
        .unwrap();
    assert_eq!(
        run.stdout,
        format!(
            "revoked key {fingerprint} (listed as team-a/{key_id}) from 2030-01-01T00:00:00Z: laptop lost\n"
        )
    );
    let list = server.ok_json(&["revocation", "list"]);
    assert_eq!(list["revocations"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["revocations"][0]["reason"], "laptop lost");
    let run = server.ok(&["revocation", "list"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert!(lines[0].starts_with("SUBJECT"), "{run:?}");
    assert!(lines[1].contains(fingerprint.as_str()) && lines[1].contains(&key_id));
    assert!(lines[1].contains("laptop lost"), "{run:?}");

    // Lists: text tables and JSON.
    let run = server.ok(&["namespace", "list"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert!(lines[0].starts_with("NAME"), "{run:?}");
    assert!(lines[1].starts_with("team-a "), "{run:?}");
    let list = server.ok_json(&["namespace", "list"]);
    assert_eq!(list["namespaces"][0]["name"], "team-a");

    // Resolve, both outputs.
    let run = server.ok(&["resolve", "registry.acme.io/team-a/app"]);
    assert_eq!(
        run.stdout,
        "registry.acme.io/team-a/app -> namespace team-a (scope registry.acme.io/team-a/**)\n"
    );
    let v = server.ok_json(&["resolve", "registry.acme.io/team-a/app"]);
    assert_eq!(v["kind"], "namespace");
    assert_eq!(v["namespace"], "team-a");
    let run = server.admin(&server.admin, &["resolve", "quay.io/nobody"]);
    assert_eq!(
        run.assert_error_line(1),
        "error: 404 no_match: no namespace or peer covers `quay.io/nobody`"
    );

    // Remove the second key; threshold.
    let run = server.ok(&["key", "remove", "team-a", "ci-p256"]);
    assert_eq!(run.stdout, "removed key ci-p256 from namespace team-a\n");
    let v = server.ok_json(&["namespace", "threshold", "team-a", "1"]);
    assert_eq!(v["threshold"], 1);

    // Audit: list and verify.
    let v = server.ok_json(&["audit", "list", "--limit", "1000"]);
    let records = v["records"].as_array().unwrap();
    assert!(records.len() >= 5, "{v}");
    let run = server.ok(&["audit", "list", "--after", "0", "--limit", "2"]);
    assert_eq!(run.stdout.lines().count(), 3, "{run:?}");
    let run = server.ok(&["audit", "verify"]);
    assert!(run.stdout.starts_with("audit chain ok: "), "{run:?}");
    let v = server.ok_json(&["audit", "verify"]);
    assert_eq!(v["ok"], true);
    assert!(server.audit_intact());
}

#[test]
fn identities_sub_delegations_peers_roots_and_tokens_round_trip() {
    let server = Server::start();
    create_team_a(&server);

    let ca = server.write("ca.pem", &ca_pem("Acme CI CA"));
    let v = server.ok_json(&[
        "identity",
        "add",
        "team-a",
        "ci",
        "--ca-cert",
        ca.to_str().unwrap(),
        "--subject",
        "CN=release",
    ]);
    assert_eq!(v["name"], "ci");
    server.ok(&["identity", "remove", "team-a", "ci"]);

    let k1 = server.write("k1.pem", &ed25519_public_pem());
    let k2 = server.write("k2.pem", &p256_public_pem());
    let run = server.ok(&[
        "sub-delegation",
        "add",
        "team-a",
        "apps",
        "--scope",
        "registry.acme.io/team-a/apps/**",
        "--threshold",
        "2",
        "--key-file",
        k1.to_str().unwrap(),
        k2.to_str().unwrap(),
    ]);
    assert_eq!(
        run.stdout,
        "added sub-delegation apps to namespace team-a (scopes: registry.acme.io/team-a/apps/**; 2 of 2 keys)\n"
    );
    let ns = server.ok_json(&["namespace", "show", "team-a"]);
    assert_eq!(
        ns["sub_delegations"][0]["keys"].as_array().unwrap().len(),
        2
    );
    server.ok(&["sub-delegation", "remove", "team-a", "apps"]);

    let v = server.ok_json(&[
        "peer",
        "put",
        "partner",
        "--pattern",
        "registry.partner.io/**",
        "--url",
        "https://keyshare.partner.io",
        "--root-sha256",
        &"ab".repeat(32),
        "--terminating",
    ]);
    assert_eq!(v["terminating"], true);
    server.ok(&[
        "peer",
        "put",
        "other",
        "--pattern",
        "docker.io/**",
        "--url",
        "https://keyshare.other.io",
        "--root-keyid",
        "k1",
        "k2",
        "--root-threshold",
        "1",
    ]);
    let run = server.ok(&["peer", "list"]);
    assert_eq!(run.stdout.lines().count(), 3, "{run:?}");
    assert!(run.stdout.contains("1 of k1, k2"), "{run:?}");
    let run = server.ok(&["resolve", "registry.partner.io/x"]);
    assert_eq!(
        run.stdout,
        "registry.partner.io/x -> peer partner (https://keyshare.partner.io)\n"
    );
    server.ok(&["peer", "delete", "other"]);

    let root = server.write("root.pem", &ca_pem("Acme Root"));
    let v = server.ok_json(&["root", "put", "acme", "--pem", root.to_str().unwrap()]);
    assert_eq!(v["name"], "acme");
    let v = server.ok_json(&["root", "list"]);
    assert_eq!(v["roots"].as_array().unwrap().len(), 1);
    let run = server.ok(&["root", "delete", "acme"]);
    assert_eq!(run.stdout, "deleted root acme\n");

    // Token create prints the secret once; it works; list never shows it.
    let run = server.ok(&[
        "token",
        "create",
        "--maintainer",
        "team-a",
        "--description",
        "team a",
    ]);
    let secret = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    assert!(run.stdout.contains("shown only this once"), "{run:?}");
    let id = run
        .stdout
        .lines()
        .next()
        .unwrap()
        .strip_prefix("created maintainer token ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    server
        .admin(&secret, &["namespace", "show", "team-a"])
        .assert_ok();
    let run = server.ok(&["token", "list"]);
    assert!(run.stdout.contains(&id), "{run:?}");
    assert!(!run.stdout.contains(&secret), "{run:?}");
    let v = server.ok_json(&["token", "create", "--ci", "team-a"]);
    assert_eq!(v["kind"], "ci");
    assert!(v["secret"].as_str().is_some());
    let run = server.ok(&["token", "revoke", &id]);
    assert_eq!(run.stdout, format!("revoked token {id}\n"));
    let run = server.admin(&secret, &["namespace", "list"]);
    assert!(
        run.assert_error_line(1).starts_with("error: 401 "),
        "{run:?}"
    );

    // Deleting the namespace; JSON mode prints nothing for a 204.
    let run = server.ok(&["--output", "json", "namespace", "delete", "team-a"]);
    assert_eq!(run.stdout, "");
    assert!(server.audit_intact());
}

#[test]
fn maintainer_of_another_namespace_gets_a_403_line() {
    let server = Server::start();
    create_team_a(&server);
    server.ok(&["namespace", "create", "team-b", "--scope", "r.io/team-b/**"]);
    let token = server.maintainer("team-b");
    let pem = server.write("k.pem", &ed25519_public_pem());
    let run = server.admin(
        &token,
        &["key", "add", "team-a", "--key-file", pem.to_str().unwrap()],
    );
    let line = run.assert_error_line(1);
    assert!(line.starts_with("error: 403 forbidden: "), "{run:?}");
    assert!(line.contains("team-a"), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(!run.stderr.contains(&token), "{run:?}");
    // Its own namespace works.
    server
        .admin(
            &token,
            &["key", "add", "team-b", "--key-file", pem.to_str().unwrap()],
        )
        .assert_ok();
}

#[test]
fn unknown_token_gets_a_401_line_without_the_token() {
    let server = Server::start();
    let token = "ks_this-token-does-not-exist-0123456789";
    let run = server.admin(token, &["namespace", "list"]);
    let line = run.assert_error_line(1);
    assert!(line.starts_with("error: 401 unauthorized: "), "{run:?}");
    assert!(!run.stdout.contains(token) && !run.stderr.contains(token));
    // Same through the environment and a token file.
    let run = keyshare(
        &["admin", "--server", &server.url, "namespace", "list"],
        &[("KEYSHARE_TOKEN", token)],
    );
    assert!(
        run.assert_error_line(1).starts_with("error: 401 "),
        "{run:?}"
    );
    assert!(!run.stderr.contains(token));
    let file = server.write("token", &format!("{token}\n"));
    let run = keyshare(
        &[
            "admin",
            "--server",
            &server.url,
            "--token-file",
            file.to_str().unwrap(),
            "namespace",
            "list",
        ],
        &[],
    );
    assert!(
        run.assert_error_line(1).starts_with("error: 401 "),
        "{run:?}"
    );
    assert!(!run.stderr.contains(token));
}

#[test]
fn bad_pattern_gets_the_servers_message() {
    let server = Server::start();
    let run = server.admin(
        &server.admin,
        &[
            "namespace",
            "create",
            "team-a",
            "--scope",
            "registry.acme.io/[oops",
        ],
    );
    let line = run.assert_error_line(1);
    assert!(line.starts_with("error: 400 invalid: scopes"), "{run:?}");
    assert!(!run.stderr.contains(&server.admin), "{run:?}");
    // Nothing was created.
    let v = server.ok_json(&["namespace", "list"]);
    assert_eq!(v["namespaces"].as_array().unwrap().len(), 0);
    // A duplicate is a 409 line.
    create_team_a(&server);
    let run = server.admin(
        &server.admin,
        &["namespace", "create", "team-a", "--scope", "x.io/**"],
    );
    assert!(
        run.assert_error_line(1).starts_with("error: 409 "),
        "{run:?}"
    );
}

#[test]
fn unreachable_server_is_one_line_naming_the_url() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let token = "secret-token-value-42";
    let run = keyshare(
        &[
            "admin",
            "--server",
            &url,
            "--token",
            token,
            "namespace",
            "list",
        ],
        &[],
    );
    let line = run.assert_error_line(1);
    assert!(
        line.starts_with(&format!("error: cannot reach {url}/api/v1/namespaces: ")),
        "{run:?}"
    );
    assert!(!run.stderr.contains(token) && !run.stdout.contains(token));
}

#[test]
fn local_input_errors_are_one_line_and_never_show_the_token() {
    let token = "-looks-like-a-flag-secret";
    let missing = Path::new("/nonexistent/keyshare-test/key.pem");
    let cases: Vec<Vec<&str>> = vec![
        // A missing file.
        vec![
            "admin",
            "--token",
            token,
            "key",
            "add",
            "team-a",
            "--key-file",
            missing.to_str().unwrap(),
        ],
        // A usage error.
        vec!["admin", "--token", token, "key", "add", "team-a"],
        vec!["admin", "--token", token, "namespace", "frobnicate"],
        // Two token sources.
        vec![
            "admin",
            "--token",
            token,
            "--token-file",
            "/nonexistent/token",
            "namespace",
            "list",
        ],
        // A bad server URL.
        vec![
            "admin",
            "--server",
            "localhost:1",
            "--token",
            token,
            "namespace",
            "list",
        ],
    ];
    for args in cases {
        let run = keyshare(&args, &[]);
        run.assert_error_line(1);
        assert!(
            !run.stderr.contains("secret") && !run.stdout.contains("secret"),
            "{args:?}: {run:?}"
        );
    }
    // No token at all.
    let run = keyshare(&["admin", "namespace", "list"], &[]);
    assert_eq!(
        run.assert_error_line(1),
        "error: no token: give --token-file FILE or --token TOKEN, or set KEYSHARE_TOKEN"
    );
    // Help is not an error.
    let run = keyshare(&["admin", "--help"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("namespace"), "{run:?}");
}

/// A self-signed certificate for `127.0.0.1` and its key, PEM.
/// Reads one request's head (to the blank line), at most 64 KiB.
fn read_head<R: Read + ?Sized>(stream: &mut R) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65_536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A canned server on loopback: answers up to `connections` connections
/// with `status` and `body`, over TLS when `tls` is given; sends each
/// request head it read on the returned channel.
fn canned_server(
    connections: usize,
    tls: Option<(String, String)>,
    status: &'static str,
    body: Vec<u8>,
) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let acceptor = tls.map(|(cert, key)| {
        use openssl::ssl::{SslAcceptor, SslMethod};
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        b.set_certificate(&openssl::x509::X509::from_pem(cert.as_bytes()).unwrap())
            .unwrap();
        b.set_private_key(&openssl::pkey::PKey::private_key_from_pem(key.as_bytes()).unwrap())
            .unwrap();
        b.build()
    });
    let (heads_tx, heads) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let answer = |s: &mut dyn ReadWrite| {
                let head = read_head(s);
                let _ = heads_tx.send(head);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
                let _ = s.flush();
            };
            match &acceptor {
                Some(acceptor) => {
                    if let Ok(mut s) = acceptor.accept(stream) {
                        answer(&mut s);
                        let _ = s.shutdown();
                    }
                }
                None => {
                    let mut s = stream;
                    answer(&mut s);
                }
            }
        }
    });
    (format!("{scheme}://{addr}"), heads)
}

trait ReadWrite: Read + std::io::Write {}
impl<T: Read + std::io::Write> ReadWrite for T {}

#[test]
fn https_server_is_verified_and_trusted_with_server_ca() {
    let (cert, key) = localhost_cert();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("server-ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    let token = "tls-test-token-123";
    let (url, heads) = canned_server(
        2,
        Some((cert, key)),
        "200 OK",
        br#"{"namespaces":[{"name":"team-a","scopes":["r.io/**"],"maintainers":[],"threshold":1,"created_at":"2030-01-01T00:00:00Z"}]}"#.to_vec(),
    );
    // Not in the system's trust store: refused, one line naming the URL.
    let run = keyshare(
        &[
            "admin",
            "--server",
            &url,
            "--token",
            token,
            "namespace",
            "list",
        ],
        &[],
    );
    let line = run.assert_error_line(1);
    assert!(
        line.starts_with(&format!("error: cannot reach {url}/api/v1/namespaces: ")),
        "{run:?}"
    );
    assert!(!run.stderr.contains(token));
    // Trusted with --server-ca: the request carries the token.
    let run = keyshare(
        &[
            "admin",
            "--server",
            &url,
            "--server-ca",
            ca.to_str().unwrap(),
            "--token",
            token,
            "namespace",
            "list",
        ],
        &[],
    );
    run.assert_ok();
    assert!(run.stdout.contains("team-a  r.io/**"), "{run:?}");
    let head = heads.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        head.starts_with("GET /api/v1/namespaces HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {token}"))),
        "{head}"
    );
}

#[test]
fn answers_over_8_mib_are_refused() {
    let body = vec![b' '; 8 * 1024 * 1024 + 10];
    let (url, _heads) = canned_server(1, None, "200 OK", body);
    let run = keyshare(
        &[
            "admin",
            "--server",
            &url,
            "--token",
            "canned-test-token",
            "namespace",
            "list",
        ],
        &[],
    );
    assert_eq!(
        run.assert_error_line(1),
        format!("error: answer from {url}/api/v1/namespaces is larger than 8388608 bytes")
    );
}

#[test]
fn non_json_error_answers_still_give_one_line() {
    let (url, _heads) = canned_server(
        1,
        None,
        "502 Bad Gateway",
        b"<html>\nupstream down\n</html>".to_vec(),
    );
    let run = keyshare(
        &[
            "admin",
            "--server",
            &url,
            "--token",
            "canned-test-token",
            "namespace",
            "list",
        ],
        &[],
    );
    assert_eq!(
        run.assert_error_line(1),
        "error: 502 http: <html>upstream down</html>"
    );
    assert!(!run.stderr.contains("canned-test-token"));
}

#[test]
fn a_break_the_server_reports_exits_1_with_its_first_bad_record() {
    // The server's log checks out here, record by record, but its own
    // check (which also covers the timestamps it stores) reports a break:
    // a proxy answers `audit/verify` for it and passes the rest through.
    let server = Server::start();
    let (upstream, admin) = (server.url.clone(), server.admin.clone());
    let proxy = common::Canned::start(std::sync::Arc::new(move |path: &str| {
        if path.starts_with("api/v1/audit/verify") {
            return common::Reply::Bytes(
                br#"{"ok":false,"first_bad_seq":3,"reason":"hash does not match"}"#.to_vec(),
            );
        }
        let http = BlockingClient::new(reqwest::Client::builder()).unwrap();
        let request = http
            .client()
            .get(format!("{upstream}/{path}"))
            .bearer_auth(&admin);
        let bytes = http.block_on(async { request.send().await.unwrap().bytes().await.unwrap() });
        common::Reply::Bytes(bytes.to_vec())
    }));
    let xdg = server.path("xdg-cache");
    let env = [("XDG_CACHE_HOME", xdg.to_str().unwrap())];
    let args = [
        "admin",
        "--server",
        &proxy.url,
        "--token",
        "canned-test-token",
        "audit",
        "verify",
    ];
    let run = keyshare(&args, &env);
    assert_eq!(
        run.assert_error_line(1),
        "error: audit chain broken at record 3: hash does not match"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
    let mut json_args = args.to_vec();
    json_args.extend(["--output", "json"]);
    let run = keyshare(&json_args, &env);
    run.assert_error_line(1);
    assert_eq!(run.json()["first_bad_seq"], 3);
}

#[test]
fn admin_tsa_add_list_remove_and_local_refusals_in_one_line() {
    let server = Server::start();
    let ca = server.write("tsa-ca.pem", &ca_pem("Acme TSA CA"));
    let v = server.ok_json(&[
        "tsa",
        "add",
        "acme-tsa",
        "--cert",
        ca.to_str().unwrap(),
        "--description",
        "the server's own",
    ]);
    assert_eq!(v["name"], "acme-tsa");
    assert!(
        v["subject"].as_str().unwrap().contains("Acme TSA CA"),
        "{v}"
    );
    let v = server.ok_json(&["tsa", "list"]);
    assert_eq!(v["tsas"].as_array().unwrap().len(), 1);
    let run = server.ok(&["tsa", "list"]);
    assert!(run.stdout.contains("acme-tsa"), "{run:?}");

    // Refused here, before anything is sent, in one line each.
    let leaf = keyshare_testkit::CertBuilder::new("not a TSA").build();
    let key = server.write("tsa.key", &leaf.key_pem());
    let plain = server.write("plain.pem", &leaf.pem());
    let garbage = server.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
    );
    for (file, says) in [
        (&key, "private key"),
        (&plain, "neither a CA certificate nor a TSA certificate"),
        (&garbage, "PEM certificate"),
    ] {
        let run = server.admin(
            &server.admin,
            &["tsa", "add", "t2", "--cert", file.to_str().unwrap()],
        );
        let line = run.assert_error_line(1);
        assert!(line.contains(says), "{line}");
    }
    assert_eq!(
        server.ok_json(&["tsa", "list"])["tsas"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let run = server.ok(&["tsa", "remove", "acme-tsa"]);
    assert_eq!(run.stdout, "removed tsa acme-tsa\n");
    assert!(server.audit_intact());
}
