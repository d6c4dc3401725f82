//! Trusted time end to end: `keyshare verify-blob` with a signature file
//! carrying an RFC 3161 token made by OpenSSL's own TSA (`openssl ts
//! -reply`, a CA listed in `org/tsas.json` through the admin change),
//! `keyshare sign-blob` against a server that runs no TSA, and the whole
//! flow against the server's own TSA as `init` sets it up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::TrustedKey;
use keyshare_server::publisher::Change;
use time::{Duration, OffsetDateTime};

use crate::common::{keyshare, Client, Server};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TSA CA and a TSA certificate (critical timeStamping EKU) made with
/// the openssl CLI in `dir`; returns the CA's PEM.
fn make_tsa(dir: &Path) -> String {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/O=acme/CN=acme TSA CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    let mut args = vec!["req", "-new"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "tsa.key",
        "-out",
        "tsa.csr",
        "-subj",
        "/O=acme/CN=acme TSA",
    ]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tsa.pem",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "ext.cnf",
        ],
    );
    std::fs::write(
        dir.join("ts.cnf"),
        format!(
            "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {}\nserial = $dir/tsaserial\n\
             crypto_device = builtin\nsigner_cert = $dir/tsa.pem\ncerts = $dir/ca.pem\n\
             signer_key = $dir/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\n\
             digests = sha256\ness_cert_id_alg = sha256\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
    std::fs::read_to_string(dir.join("ca.pem")).unwrap()
}

/// A token from OpenSSL's TSA over `data`.
fn stamp(dir: &Path, data: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("data.bin"), data).unwrap();
    openssl(
        dir,
        &[
            "ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "q.tsq",
        ],
    );
    openssl(
        dir,
        &[
            "ts",
            "-reply",
            "-config",
            "ts.cnf",
            "-queryfile",
            "q.tsq",
            "-out",
            "r.tsr",
        ],
    );
    openssl(
        dir,
        &[
            "ts",
            "-reply",
            "-in",
            "r.tsr",
            "-token_out",
            "-out",
            "token.der",
        ],
    );
    std::fs::read(dir.join("token.der")).unwrap()
}

/// Namespace `team-a` with one CI key whose window ends in 3 seconds.
fn ci_key_in_team_a(server: &Server) -> (InMemorySigner, OffsetDateTime) {
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let ci = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let not_after = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::seconds(3);
    server.apply(Change::AddKey {
        namespace: keyshare_testkit::ns("team-a"),
        key: TrustedKey {
            id: KeyId::new("ci-1"),
            key: ci.public_key().clone(),
            not_before: None,
            not_after: Some(not_after),
            ephemeral: true,
            description: None,
            principal: None,
            layout_root: false,
        },
    });
    (ci, not_after)
}

/// `keyshare sign-blob --server URL --key KEY FILE`.
fn sign_blob(url: &str, key: &Path, file: &Path) -> crate::common::Run {
    keyshare(&[
        "sign-blob",
        "--server",
        url,
        "--key",
        key.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
}

/// Waits until `at` has passed.
fn sleep_past(at: OffsetDateTime) {
    let wait = at - OffsetDateTime::now_utc() + Duration::milliseconds(300);
    if wait.is_positive() {
        std::thread::sleep(wait.unsigned_abs());
    }
}

#[test]
fn an_ephemeral_keys_stamped_signature_verifies_after_its_window_and_an_unstamped_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = make_tsa(tmp.path());
    let server = Server::start();
    let (ci, not_after) = ci_key_in_team_a(&server);
    // A cache from before the TSA was listed.
    let stale = Client::new();
    stale.init(&server.url, &server.root1_sha256());
    stale.run(&["refresh"]).assert_ok();
    server.apply(Change::PutTsa {
        tsa: serde_json::from_value(serde_json::json!({"name": "acme-tsa", "certificate": ca}))
            .unwrap(),
    });
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    // Signed and stamped inside the window.
    let mut sig =
        keyshare_client::blob::sign(&ci, b"the release", OffsetDateTime::now_utc()).unwrap();
    let plain = serde_json::to_string(&sig).unwrap();
    let token = stamp(tmp.path(), &sig.signature_bytes().unwrap());
    sig.timestamp_token = Some(hex::encode(&token));
    let stamped = serde_json::to_string(&sig).unwrap();
    let file = client.write("app.tar", "the release");
    let stamped_file = client.write("app.tar.sig", &stamped);
    let plain_file = client.write("plain.sig", &plain);
    let verify = |sig: &Path| {
        client.run(&[
            "verify-blob",
            "registry.acme.io/team-a/app",
            file.to_str().unwrap(),
            "--signature",
            sig.to_str().unwrap(),
        ])
    };
    verify(&stamped_file).assert_ok();

    // The same file against a cache that has no org/tsas.json yet: the
    // token is refused (untrusted TSA) and the line says to refresh.
    let stale_sig = stale.write("app.tar.sig", &stamped);
    let stale_file = stale.write("app.tar", "the release");
    let line = stale
        .run(&[
            "verify-blob",
            "registry.acme.io/team-a/app",
            stale_file.to_str().unwrap(),
            "--signature",
            stale_sig.to_str().unwrap(),
        ])
        .assert_error_line(1)
        .to_owned();
    assert!(line.contains("untrusted TSA"), "{line}");
    assert!(line.contains("--refresh"), "{line}");

    // After the delegation ended.
    sleep_past(not_after);
    let run = verify(&stamped_file);
    run.assert_ok();
    assert!(
        run.stdout.contains("timestamp token of TSA `acme-tsa`"),
        "{run:?}"
    );
    let line = verify(&plain_file).assert_error_line(1).to_owned();
    assert!(line.contains("expired"), "{line}");
    assert!(line.contains("no timestamp token"), "{line}");

    // A token over another signature is refused, naming why.
    let mut other =
        keyshare_client::blob::sign(&ci, b"the release", OffsetDateTime::now_utc()).unwrap();
    other.timestamp_token = Some(hex::encode(&token));
    let other_file = client.write("other.sig", &serde_json::to_string(&other).unwrap());
    let line = verify(&other_file).assert_error_line(1).to_owned();
    assert!(line.contains("message imprint mismatch"), "{line}");
}

#[test]
fn sign_blob_carries_on_without_a_token_when_the_server_runs_no_tsa() {
    let server = Server::start();
    let client = Client::new();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let key_file = client.write(
        "key.pem",
        &String::from_utf8(key.to_pkcs8_pem().unwrap()).unwrap(),
    );
    let file = client.write("app.tar", "the release");
    let run = sign_blob(&server.url, &key_file, &file);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains("runs no timestamp authority (404)"),
        "{run:?}"
    );
    let sig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(client.dir.path().join("app.tar.sig")).unwrap())
            .unwrap();
    assert!(sig.get("timestamp_token").is_none(), "{sig}");
    assert!(sig.get("signature").is_some(), "{sig}");
}

/// The whole flow against keyshare's own TSA as `init` sets it up (its CA
/// listed in `org/tsas.json`, nothing configured by hand): `sign-blob
/// --server` stamps the signature, and `verify-blob` trusts it at the
/// token's time, after the CI key's window has ended.
#[test]
fn a_signature_stamped_by_the_servers_own_tsa_verifies_after_the_keys_window() {
    let server = Server::start_with_tsa();
    let (ci, not_after) = ci_key_in_team_a(&server);
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let key_file = client.write(
        "ks.pem",
        &String::from_utf8(ci.to_pkcs8_pem().unwrap()).unwrap(),
    );
    let file = client.write("app.tar", "the release");
    let run = sign_blob(&server.url, &key_file, &file);
    assert_eq!(run.code, Some(0), "{run:?}");
    let sig_path = client.dir.path().join("app.tar.sig");
    let sig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sig_path).unwrap()).unwrap();
    assert!(sig["timestamp_token"].is_string(), "{sig}");

    // After the delegation ended.
    sleep_past(not_after);
    let run = client.run(&[
        "verify-blob",
        "registry.acme.io/team-a/app",
        file.to_str().unwrap(),
        "--signature",
        sig_path.to_str().unwrap(),
        "--refresh",
    ]);
    run.assert_ok();
    assert!(
        run.stdout.contains("timestamp token of TSA `keyshare`"),
        "{run:?}"
    );
}
