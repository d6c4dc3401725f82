//! The rough edges of the `keyshare` CLI, each run as a process: private
//! keys refused before any request, a closed stdout, token expiry and last
//! use, audit filters and `--follow`, and messages that say what is
//! expected instead of parser internals.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_server::store::TokenKind;

use common::{keyshare, keyshare_env, ns, Client, Run, Server};

/// A loopback listener that counts the connections made to it (and
/// answers none).
struct Listener {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl Listener {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { url, connections }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

/// Files holding private keys in the forms people have them.
struct PrivateFiles {
    /// PKCS#8 (`openssl genpkey`).
    pkcs8: PathBuf,
    /// Encrypted PKCS#8.
    encrypted: PathBuf,
    /// Traditional EC (`BEGIN EC PRIVATE KEY`).
    ec: PathBuf,
    /// A TUF key object with `keyval.private` (a securesystemslib key pair).
    tuf_pair: PathBuf,
    /// A CA certificate with its key appended.
    cert_and_key: PathBuf,
    /// A root whose key entry carries a private key.
    root_with_private: PathBuf,
    /// A line of base64 from inside each private key, that must never be
    /// printed or sent.
    secrets: Vec<String>,
}

fn private_files(dir: &Path) -> PrivateFiles {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    let ed = PKey::generate_ed25519().unwrap();
    let pkcs8 = String::from_utf8(ed.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let encrypted = String::from_utf8(
        ed.private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pass")
            .unwrap(),
    )
    .unwrap();
    let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
    let ec_pem = String::from_utf8(ec.private_key_to_pem().unwrap()).unwrap();
    assert!(ec_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let raw = ed.raw_private_key().unwrap();
    let public = ed.raw_public_key().unwrap();
    let tuf_pair = json!({
        "keytype": "ed25519",
        "scheme": "ed25519",
        "keyval": {"public": hex::encode(&public), "private": hex::encode(&raw)},
    });
    let cert_and_key = format!("{}{pkcs8}", keyshare_testkit::ca_pem("acme CA"));
    let root = json!({
        "signatures": [],
        "signed": {"_type": "root", "keys": {"k": {
            "keytype": "ed25519", "scheme": "ed25519",
            "keyval": {"public": hex::encode(&public), "private": hex::encode(&raw)}
        }}}
    });
    let inner = |pem: &str| pem.lines().nth(1).unwrap().to_owned();
    PrivateFiles {
        pkcs8: write(dir, "signer.pem", &pkcs8),
        encrypted: write(dir, "signer-encrypted.pem", &encrypted),
        ec: write(dir, "signer-ec.pem", &ec_pem),
        tuf_pair: write(dir, "signer.json", &tuf_pair.to_string()),
        cert_and_key: write(dir, "ca-with-key.pem", &cert_and_key),
        root_with_private: write(dir, "2.root.json", &root.to_string()),
        secrets: vec![
            inner(&pkcs8),
            inner(&encrypted),
            inner(&ec_pem),
            hex::encode(&raw),
        ],
    }
}

#[test]
fn a_private_key_is_refused_by_every_command_that_takes_a_public_key_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let listener = Listener::start();
    let f = private_files(dir.path());
    let p = |path: &PathBuf| path.to_str().unwrap().to_owned();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let token = "ks_0000000000000000000000000000000000000000000000000000000000000000";
    let admin = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["admin", "--server", &listener.url, "--token", token]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    // (command, exit status, what the message must say)
    let how_pub = "openssl pkey -in";
    let how_cert = "openssl x509 -in";
    let how_json = "without `keyval.private`";
    let mut cases: Vec<(Vec<String>, i32, &str)> = Vec::new();
    for key in [&f.pkcs8, &f.encrypted, &f.ec] {
        cases.push((
            admin(&["key", "add", "team-a", "--key-file", &p(key)]),
            1,
            how_pub,
        ));
        cases.push((
            admin(&[
                "sub-delegation",
                "add",
                "team-a",
                "releases",
                "--scope",
                "registry.acme.io/team-a/app",
                "--threshold",
                "1",
                "--key-file",
                &p(key),
            ]),
            1,
            how_pub,
        ));
        cases.push((
            admin(&[
                "revocation",
                "add",
                "--key-file",
                &p(key),
                "--reason",
                "lost",
            ]),
            1,
            how_pub,
        ));
        cases.push((
            [
                "decide",
                "registry.acme.io/team-a/app",
                "--key",
                &p(key),
                "--cache-dir",
                cache,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            2,
            how_pub,
        ));
    }
    cases.extend([
        (
            admin(&["key", "add", "team-a", "--key-json", &p(&f.tuf_pair)]),
            1,
            how_json,
        ),
        (
            admin(&[
                "sub-delegation",
                "add",
                "team-a",
                "releases",
                "--scope",
                "registry.acme.io/team-a/app",
                "--threshold",
                "1",
                "--key-file",
                &p(&f.tuf_pair),
            ]),
            1,
            how_json,
        ),
        (
            admin(&[
                "revocation",
                "add",
                "--key-json",
                &p(&f.tuf_pair),
                "--reason",
                "lost",
            ]),
            1,
            how_json,
        ),
        (
            admin(&[
                "identity",
                "add",
                "team-a",
                "release",
                "--ca-cert",
                &p(&f.cert_and_key),
                "--subject",
                "C=US, ST=WA, O=acme",
            ]),
            1,
            how_cert,
        ),
        (
            admin(&[
                "revocation",
                "add",
                "--certificate",
                &p(&f.cert_and_key),
                "--reason",
                "lost",
            ]),
            1,
            how_cert,
        ),
        (
            admin(&["root", "put", "acme", "--pem", &p(&f.cert_and_key)]),
            1,
            how_cert,
        ),
        (
            [
                "decide",
                "registry.acme.io/team-a/app",
                "--cert",
                &p(&f.cert_and_key),
                "--cache-dir",
                cache,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            2,
            how_cert,
        ),
        (
            [
                "root",
                "submit",
                &p(&f.root_with_private),
                "--server",
                &listener.url,
                "--token",
                token,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            1,
            "only public keys belong there",
        ),
    ]);
    for (args, code, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = keyshare(&args);
        let line = run.assert_error_line(*code);
        assert!(line.contains("holds "), "{args:?}: {line}");
        assert!(line.contains(says), "{args:?}: {line}");
        assert!(line.contains("nothing was sent"), "{args:?}: {line}");
        for secret in &f.secrets {
            assert!(
                !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
                "{args:?} printed the private key"
            );
        }
        assert_eq!(listener.count(), 0, "{args:?} made a request");
    }
    // The listener does see a request that is sent (so the count above
    // would have caught one).
    let run = keyshare(
        &admin(&["namespace", "list"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    run.assert_error_line(1);
    assert!(listener.count() >= 1);
}

#[test]
fn the_library_refuses_a_request_body_with_private_key_material_before_sending() {
    use keyshare_client::admin::{AdminClient, Error, NewIdentity, NewSubDelegation};
    let listener = Listener::start();
    let client = AdminClient::new(&listener.url, "ks_test-token-0123456789").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = private_files(dir.path());
    let cert_and_key = std::fs::read_to_string(&f.cert_and_key).unwrap();
    let pair: Value = serde_json::from_str(&std::fs::read_to_string(&f.tuf_pair).unwrap()).unwrap();
    let identity = client.add_identity(
        "team-a",
        &NewIdentity {
            name: "release".into(),
            ca_certs: vec![keyshare_testkit::ca_pem("ok CA"), cert_and_key.clone()],
            subject: "C=US, ST=WA, O=acme".into(),
            not_before: None,
            not_after: None,
        },
    );
    let sub = client.add_sub_delegation(
        "team-a",
        &NewSubDelegation {
            name: "releases".into(),
            scopes: vec!["registry.acme.io/team-a/app".into()],
            threshold: 1,
            keys: vec![json!({"id": "k", "key": pair})],
        },
    );
    let root = client.put_root("acme", &cert_and_key);
    for (what, result, at) in [
        ("identity", identity, "ca_certs[1]"),
        ("sub-delegation", sub, "keys[0].key.keyval.private"),
        ("root", root, "pem"),
    ] {
        match result {
            Err(Error::Input(message)) => {
                assert!(message.contains(&format!("at `{at}`")), "{what}: {message}");
                assert!(message.contains("nothing was sent"), "{what}: {message}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(listener.count(), 0);
}

/// Runs `keyshare ARGS` with its stdout a pipe whose reader is gone before
/// the command writes; returns the exit status and stderr.
fn run_with_closed_stdout(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyshare"));
    cmd.args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    (status, err)
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not end within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let server = Server::start();
    for i in 0..30 {
        server.create_namespace(
            &format!("team-{i}"),
            &[&format!("registry.acme.io/t{i}/**")],
            1,
        );
    }
    let token = server.admin_token();
    let env = [("KEYSHARE_TOKEN", token.as_str())];
    let url = server.url.as_str();
    let commands: [&[&str]; 5] = [
        &[
            "admin",
            "--server",
            url,
            "namespace",
            "list",
            "--output",
            "json",
        ],
        &["admin", "--server", url, "namespace", "list"],
        &[
            "admin", "--server", url, "audit", "list", "--output", "json",
        ],
        &[
            "admin",
            "--server",
            url,
            "audit",
            "list",
            "--follow",
            "--interval",
            "1",
        ],
        &["admin", "--server", url, "token", "list"],
    ];
    for args in commands {
        let (code, stderr) = run_with_closed_stdout(args, &env);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }

    // A decision keeps its exit status when nobody reads the verdict.
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let (key, pem) = common::new_key();
    server.add_key("team-1", "k", &key, None);
    client.run(&["refresh"]).assert_ok();
    let pem_file = client.write("k.pem", &pem);
    let cache = client.cache();
    let decide = |artifact: &str| {
        run_with_closed_stdout(
            &[
                "decide",
                artifact,
                "--key",
                pem_file.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            &[],
        )
    };
    assert_eq!(decide("registry.acme.io/t1/app"), (Some(0), String::new()));
    assert_eq!(decide("registry.acme.io/t2/app"), (Some(1), String::new()));
}

#[test]
fn tokens_expire_show_their_last_use_and_an_expired_one_is_refused_naming_the_expiry() {
    let server = Server::start();
    let admin = server.admin_token();
    let env = [("KEYSHARE_TOKEN", admin.as_str())];
    let run = |args: &[&str]| {
        let mut all = vec!["admin", "--server", server.url.as_str()];
        all.extend_from_slice(args);
        keyshare_env(&all, &env)
    };

    let created = run(&[
        "--output",
        "json",
        "token",
        "create",
        "--maintainer",
        "team-x",
    ]);
    // No such namespace: refused by the server, nothing to do with expiry.
    created.assert_error_line(1);
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let before = OffsetDateTime::now_utc();
    let created = run(&[
        "--output",
        "json",
        "token",
        "create",
        "--maintainer",
        "team-a",
        "--expires-in",
        "90d",
    ]);
    created.assert_ok();
    let v = created.json();
    let expires = OffsetDateTime::parse(
        v["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ninety = time::Duration::days(90);
    assert!(expires >= (before + ninety).replace_nanosecond(0).unwrap());
    assert!(expires <= OffsetDateTime::now_utc() + ninety);
    let maintainer_id = v["id"].as_str().unwrap().to_owned();

    let at = (OffsetDateTime::now_utc() + time::Duration::days(30))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let text = run(&["token", "create", "--org-admin", "--expires-at", &at]);
    text.assert_ok();
    assert!(
        text.stdout
            .contains(&format!(", expires {at}\nsecret: ks_")),
        "{text:?}"
    );

    // A token that expired a minute ago (made with a clock in the past).
    let past = OffsetDateTime::now_utc() - time::Duration::hours(2);
    let old = server
        .publisher
        .create_token_expiring(
            "test",
            TokenKind::OrgAdmin,
            Some("old".into()),
            Some(past + time::Duration::minutes(59)),
            past,
        )
        .unwrap();
    let refused = keyshare_env(
        &["admin", "--server", &server.url, "namespace", "list"],
        &[("KEYSHARE_TOKEN", old.secret.expose())],
    );
    let line = refused.assert_error_line(1);
    assert!(
        line.starts_with(&format!(
            "error: 401 unauthorized: token `{}` expired at ",
            old.token.id
        )),
        "{line}"
    );
    assert!(!line.contains(old.secret.expose()));

    // The listing: state, expiry and last use of each.
    let list = run(&["token", "list"]);
    list.assert_ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ID",
            "KIND",
            "NAMESPACES",
            "STATE",
            "CREATED",
            "EXPIRES",
            "LAST_USED",
            "DESCRIPTION"
        ]
    );
    let row = |id: &str| -> Vec<String> {
        lines
            .iter()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}: {list:?}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let admin_id = server
        .publisher
        .read(|s| s.tokens())
        .unwrap()
        .into_iter()
        .find(|t| {
            t.description.is_none() && t.kind == TokenKind::OrgAdmin && t.expires_at.is_none()
        })
        .unwrap()
        .id;
    let a = row(&admin_id);
    assert_eq!(a[3], "active");
    assert_eq!(a[5], "never");
    assert_ne!(a[6], "never", "the admin token was just used: {a:?}");
    let m = row(&maintainer_id);
    assert_eq!((m[2].as_str(), m[3].as_str()), ("team-a", "active"));
    assert_eq!(m[5], v["expires_at"].as_str().unwrap());
    assert_eq!(m[6], "never");
    let o = row(&old.token.id);
    assert_eq!(o[3], "expired");
    assert_eq!(o[6], "never");

    // Bad expiries are usage errors, before any request.
    for (args, says) in [
        (
            ["token", "create", "--org-admin", "--expires-in", "0"],
            "expected a duration",
        ),
        (
            ["token", "create", "--org-admin", "--expires-in", "5y"],
            "expected a duration",
        ),
        (
            [
                "token",
                "create",
                "--org-admin",
                "--expires-at",
                "2030-01-01",
            ],
            "expected an RFC 3339 time, e.g. 2030-01-01T00:00:00Z",
        ),
    ] {
        let r = run(&args);
        let line = r.assert_error_line(1);
        assert!(line.contains(says), "{args:?}: {line}");
    }
}

/// A `keyshare admin audit list --follow` process and its stdout lines.
struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follow {
    fn start(args: &[&str], token: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyshare"))
            .args(args)
            .env("KEYSHARE_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line, waiting at most 20 s.
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("no line from --follow")
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn audit_list_filters_newest_first_with_details_and_follow_prints_new_records() {
    let server = Server::start();
    let admin = server.admin_token();
    let env = [("KEYSHARE_TOKEN", admin.as_str())];
    let run = |args: &[&str]| {
        let mut all = vec!["admin", "--server", server.url.as_str(), "audit", "list"];
        all.extend_from_slice(args);
        keyshare_env(&all, &env)
    };
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    server.create_namespace("team-b", &["registry.acme.io/team-b/**"], 1);
    let (key, _) = common::new_key();
    server.add_key("team-a", "a-1", &key, None);

    // Newest first, every field, the details in full.
    let all = run(&[]);
    all.assert_ok();
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"]
    );
    let seqs: Vec<i64> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seqs, sorted, "newest first: {all:?}");
    assert!(lines[1].contains("key.add") && lines[1].contains("team-a/a-1"));
    assert!(
        lines[1].contains(&format!("\"public\":\"{}\"", key.keyval.public)),
        "the details, in full: {}",
        lines[1]
    );
    assert!(all
        .stdout
        .contains(r#"{"maintainers":["team-b@acme.io"],"scopes":["registry.acme.io/team-b/**"],"threshold":1}"#));

    let only = |args: &[&str]| -> Vec<(String, String)> {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let r = run(&all);
        r.assert_ok();
        r.json()["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_owned(),
                    r["subject"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pair = |a: &str, s: &str| (a.to_owned(), s.to_owned());
    assert_eq!(
        only(&["--namespace", "team-a"]),
        [
            pair("key.add", "team-a/a-1"),
            pair("namespace.create", "team-a")
        ]
    );
    assert_eq!(
        only(&["--namespace", "team-a", "--oldest-first"]),
        [
            pair("namespace.create", "team-a"),
            pair("key.add", "team-a/a-1")
        ]
    );
    assert_eq!(
        only(&["--action", "namespace.*"]),
        [
            pair("namespace.create", "team-b"),
            pair("namespace.create", "team-a")
        ]
    );
    assert_eq!(only(&["--actor", "test", "--action", "key.add"]).len(), 1);
    assert_eq!(only(&["--since", "1h", "--namespace", "team-b"]).len(), 1);
    assert!(only(&["--since", "2099-01-01T00:00:00Z"]).is_empty());
    assert_eq!(only(&["--limit", "2"]).len(), 2);
    for (args, says) in [
        (["--since", "yesterday"], "expected an RFC 3339 time"),
        (
            ["--namespace", "Team_A"],
            "namespace: `Team_A` is not a namespace name",
        ),
    ] {
        let r = run(&args);
        let line = r.assert_error_line(1);
        assert!(line.contains(says), "{args:?}: {line}");
    }

    // --follow: the newest records, then each new one as it is written.
    let follow = Follow::start(
        &[
            "admin",
            "--server",
            &server.url,
            "audit",
            "list",
            "--namespace",
            "team-c",
            "--follow",
            "--interval",
            "1",
        ],
        &admin,
    );
    assert_eq!(
        follow.next().split_whitespace().collect::<Vec<_>>(),
        ["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"]
    );
    server.create_namespace("team-c", &["registry.acme.io/team-c/**"], 1);
    let line = follow.next();
    assert!(
        line.contains("namespace.create") && line.contains("team-c"),
        "{line}"
    );
    server.create_namespace("team-d", &["registry.acme.io/team-d/**"], 1);
    let (key, _) = common::new_key();
    server.add_key("team-c", "c-1", &key, None);
    let line = follow.next();
    assert!(
        line.contains("key.add") && line.contains("team-c/c-1"),
        "team-d is filtered out: {line}"
    );

    // JSON Lines in JSON mode.
    let follow = Follow::start(
        &[
            "admin",
            "--server",
            &server.url,
            "--output",
            "json",
            "audit",
            "list",
            "--follow",
            "--limit",
            "2",
        ],
        &admin,
    );
    let first: Value = serde_json::from_str(&follow.next()).unwrap();
    let second: Value = serde_json::from_str(&follow.next()).unwrap();
    assert!(first["seq"].as_i64().unwrap() < second["seq"].as_i64().unwrap());
    assert_eq!(second["action"], "key.add");
    let _ = ns("team-a");
}

#[test]
fn times_and_names_get_messages_that_say_what_is_expected() {
    let server = Server::start();
    let admin = server.admin_token();
    let dir = tempfile::tempdir().unwrap();
    let (_, pem) = common::new_key();
    let pub_file = write(dir.path(), "k.pub", &pem);
    let env = [("KEYSHARE_TOKEN", admin.as_str())];
    let admin_run = |args: &[&str]| {
        let mut all = vec!["admin", "--server", server.url.as_str()];
        all.extend_from_slice(args);
        keyshare_env(&all, &env)
    };
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let cases: Vec<(Run, i32, &str)> = vec![
        (
            admin_run(&[
                "key",
                "add",
                "team-a",
                "--key-file",
                pub_file.to_str().unwrap(),
                "--not-after",
                "2030-01-01",
            ]),
            1,
            "expected an RFC 3339 time, e.g. 2030-01-01T00:00:00Z",
        ),
        (
            admin_run(&[
                "revocation",
                "add",
                "--key-id",
                "x",
                "--reason",
                "r",
                "--revoked-at",
                "now",
            ]),
            1,
            "expected an RFC 3339 time, e.g. 2030-01-01T00:00:00Z",
        ),
        (
            keyshare(&[
                "decide",
                "registry.acme.io/a",
                "--key-id",
                "k",
                "--signed-at",
                "2030",
            ]),
            2,
            "--signed-at `2030`: expected an RFC 3339 time, e.g. 2030-01-01T00:00:00Z",
        ),
        (
            admin_run(&[
                "namespace",
                "create",
                "Team_B",
                "--scope",
                "registry.acme.io/b/**",
            ]),
            1,
            "name: `Team_B` is not a namespace name",
        ),
    ];
    for (run, code, says) in &cases {
        let line = run.assert_error_line(*code);
        assert!(line.contains(says), "{line}");
        for internal in ["component", " at line ", "column"] {
            assert!(!line.contains(internal), "{line}");
        }
    }
}

#[test]
fn root_generate_key_help_shows_the_uri_form_that_parses() {
    let run = keyshare(&["root", "generate-key", "--help"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("pkcs11:token=NAME?module-path="),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(";module-path="), "{}", run.stdout);
    // The form the help used to show is refused with the right one.
    let run = keyshare(&[
        "root",
        "generate-key",
        "pkcs11:token=t;module-path=/usr/lib/softhsm/libsofthsm2.so",
        "--scheme",
        "ed25519",
        "--label",
        "k",
    ]);
    let line = run.assert_error_line(1);
    assert!(
        line.contains("`module-path` is a query attribute: write it after `?`"),
        "{line}"
    );
}

#[test]
fn a_bad_bundle_is_named_once_and_its_magic_as_text() {
    let server = Server::start();
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let junk = client.write("junk.bin", "hello, not a bundle\n");
    let mut bad_manifest = b"keyshare-bundle/v1\n".to_vec();
    bad_manifest.extend_from_slice(&8u64.to_be_bytes());
    bad_manifest.extend_from_slice(b"nonsense");
    let bad = client.dir.path().join("bad.bundle");
    std::fs::write(&bad, &bad_manifest).unwrap();
    for (file, says) in [
        (
            junk,
            "error: not a keyshare bundle (the file does not start with `keyshare-bundle/v1`)",
        ),
        (bad, "error: bundle manifest: "),
    ] {
        let run = client.run(&["refresh", "--from-bundle", file.to_str().unwrap()]);
        let line = run.assert_error_line(1);
        assert!(line.starts_with(says), "{line}");
        assert_eq!(
            line.matches("bundle").count(),
            1 + usize::from(says.contains("v1")),
            "{line}"
        );
        assert!(!line.contains("[107"), "{line}");
    }
}

#[test]
fn verify_blob_on_a_stale_cache_names_the_key_id_and_suggests_refresh() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    // A key listed after the cache was refreshed.
    let signer = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    server.add_key(
        "team-a",
        signer.key_id().as_str(),
        signer.public_key(),
        None,
    );
    let key = client.write(
        "signer.pem",
        std::str::from_utf8(&signer.to_pkcs8_pem().unwrap()).unwrap(),
    );
    let file = client.write("app.tar", "the artifact");
    let sig = client.dir.path().join("app.tar.sig");
    keyshare(&[
        "sign-blob",
        "--no-timestamp",
        "--key",
        key.to_str().unwrap(),
        "--signature",
        sig.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
    .assert_ok();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify-blob",
            "registry.acme.io/team-a/app",
            file.to_str().unwrap(),
            "--signature",
            sig.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        client.run(&args)
    };
    let stale = verify(&[]);
    let line = stale.assert_error_line(1);
    assert!(
        line.contains(&format!(
            "key {} (the signature's key) is not trusted by namespace `team-a`",
            signer.key_id()
        )),
        "{line}"
    );
    assert!(!line.contains("SPKI"), "{line}");
    assert!(line.contains("run again with --refresh"), "{line}");

    let fresh = verify(&["--refresh"]);
    fresh.assert_ok();
    assert!(
        fresh.stdout.starts_with("trusted by namespace `team-a`"),
        "{fresh:?}"
    );

    // Once refreshed, an unlisted key is not blamed on the cache.
    let other = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let other_key = client.write(
        "other.pem",
        std::str::from_utf8(&other.to_pkcs8_pem().unwrap()).unwrap(),
    );
    std::fs::remove_file(&sig).unwrap();
    keyshare(&[
        "sign-blob",
        "--no-timestamp",
        "--key",
        other_key.to_str().unwrap(),
        "--signature",
        sig.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
    .assert_ok();
    let line = verify(&["--refresh"]).assert_error_line(1).to_owned();
    assert!(line.contains(&format!("key {}", other.key_id())), "{line}");
    assert!(!line.contains("--refresh"), "{line}");
}

#[test]
fn a_command_option_before_the_command_says_where_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    for (args, code, says) in [
        (
            vec!["--cache-dir", cache, "refresh"],
            1,
            "--cache-dir is an option of the command, not of keyshare: put it after the command's name, e.g. `keyshare refresh --cache-dir ...`",
        ),
        (
            vec!["--output", "json", "list"],
            1,
            "e.g. `keyshare list --output ...`",
        ),
        (
            vec!["--cache-dir", cache, "decide", "registry.acme.io/a", "--key-id", "k"],
            2,
            "e.g. `keyshare decide --cache-dir ...`",
        ),
    ] {
        let run = keyshare(&args);
        let line = run.assert_error_line(code);
        assert!(line.contains(says), "{args:?}: {line}");
    }
    // After the command it works (an empty cache: not initialized).
    let run = keyshare(&["refresh", "--cache-dir", cache]);
    let line = run.assert_error_line(1);
    assert!(line.contains("keyshare init"), "{line}");
}
