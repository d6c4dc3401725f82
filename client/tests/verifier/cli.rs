//! `keyshare init`, `refresh`, `decide` and `list` as processes against a
//! real server on loopback: every reason of the decision, and a change
//! made through `keyshare admin` seen after a refresh.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use crate::common;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use common::{new_key, Client, Server};

fn t(offset: Duration) -> String {
    (OffsetDateTime::now_utc() + offset)
        .format(&Rfc3339)
        .unwrap()
}

#[test]
fn init_pins_the_root_by_hash_or_file_and_refuses_a_wrong_hash() {
    let server = Server::start();
    let client = Client::new();

    let wrong = "0".repeat(64);
    let run = client.run(&["init", "--server", &server.url, "--root-sha256", &wrong]);
    let line = run.assert_error_line(1);
    assert!(line.contains("root pin mismatch"), "{line}");
    assert!(client.snapshot().is_empty(), "nothing is written");

    let run = client.run(&["init", "--server", &server.url]);
    assert!(run.assert_error_line(1).contains("--root-sha256"));

    client.init(&server.url, &server.root1_sha256());
    // A second init is refused without --force.
    let run = client.run(&[
        "init",
        "--server",
        &server.url,
        "--root-sha256",
        &server.root1_sha256(),
    ]);
    assert!(run.assert_error_line(1).contains("--force"));

    let other = Client::new();
    let root = other.write("root.json", &String::from_utf8(server.root1()).unwrap());
    let run = other.run(&[
        "init",
        "--server",
        &server.url,
        "--root",
        root.to_str().unwrap(),
        "--output",
        "json",
    ]);
    run.assert_ok();
    assert_eq!(run.json()["root_version"], 1);
    assert_eq!(run.json()["root_sha256"], server.root1_sha256());

    let tofu = Client::new();
    let run = tofu.run(&[
        "init",
        "--server",
        &server.url,
        "--insecure-trust-on-first-use",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.starts_with("warning: "), "{run:?}");
}

#[test]
fn decide_gives_each_reason_and_follows_admin_changes_after_refresh() {
    let server = Server::start();
    let client = Client::new();

    // Before init: decide is an error, exit 2.
    let run = client.run(&["decide", "registry.acme.io/team-a/app", "--key-id", "k"]);
    assert!(run.assert_error_line(2).contains("keyshare init"));

    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    server.create_namespace("team-b", &["registry.acme.io/team-b/**"], 1);
    server.create_namespace("empty", &["registry.acme.io/empty/**"], 1);
    let (k1, k1_pem) = new_key();
    let (k2, _) = new_key();
    let (old, _) = new_key();
    server.add_key("team-a", "k1", &k1, None);
    server.add_key(
        "team-a",
        "old",
        &old,
        Some(OffsetDateTime::now_utc() - Duration::days(30)),
    );
    server.add_key("team-b", "b1", &k1, None);
    server.add_key("team-b", "b2", &k2, None);
    server.apply(keyshare_server::publisher::Change::SetThreshold {
        namespace: common::ns("team-b"),
        threshold: std::num::NonZeroU32::new(2).unwrap(),
    });
    // The namespace "empty" lists no key: its trust document trusts no one.
    client.init(&server.url, &server.root1_sha256());
    let run = client.run(&["decide", "registry.acme.io/team-a/app", "--key-id", "k1"]);
    assert!(run.assert_error_line(2).contains("run `keyshare refresh`"));

    let run = client.run(&["refresh", "--output", "json"]);
    run.assert_ok();
    let summary = run.json();
    assert_eq!(summary["namespaces"], 3);
    assert_eq!(summary["url"], server.url);

    let app = "registry.acme.io/team-a/app";
    let (code, v) = client.decide_json(app, &["--key-id", "k1"]);
    assert_eq!((code, v["trusted"].as_bool()), (0, Some(true)), "{v}");
    assert_eq!(v["namespace"], "team-a");

    // By public key, in text mode.
    let pem = client.write("k1.pem", &k1_pem);
    let run = client.run(&["decide", app, "--key", pem.to_str().unwrap()]);
    run.assert_ok();
    assert!(
        run.stdout.contains("trusted by namespace `team-a`"),
        "{run:?}"
    );

    let (code, v) = client.decide_json("registry.other.io/x", &["--key-id", "k1"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("no_namespace")),
        "{v}"
    );

    let (code, v) = client.decide_json(app, &["--key-id", "nobody"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("key_not_listed")),
        "{v}"
    );

    let (code, v) = client.decide_json(app, &["--key-id", "old"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("key_expired")),
        "{v}"
    );
    // Signed while it was valid: trusted.
    let (code, _) = client.decide_json(
        app,
        &["--key-id", "old", "--signed-at", &t(-Duration::days(60))],
    );
    assert_eq!(code, 0);

    let b = "registry.acme.io/team-b/app";
    let (code, v) = client.decide_json(b, &["--key-id", "b1"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("threshold_not_met")),
        "{v}"
    );
    let (code, _) = client.decide_json(b, &["--key-id", "b1", "--key-id", "b2"]);
    assert_eq!(code, 0);

    let (code, v) = client.decide_json("registry.acme.io/empty/x", &["--key-id", "k1"]);
    assert_eq!(code, 1);
    assert_eq!(v["reason"], "key_not_listed", "{v}");

    // An admin change through `keyshare admin`: revoke k1 an hour ago.
    let token = server.admin_token();
    let run = common::keyshare(&[
        "admin",
        "--server",
        &server.url,
        "--token",
        &token,
        "revocation",
        "add",
        "--key-id",
        "k1",
        "--reason",
        "laptop lost",
        "--revoked-at",
        &t(-Duration::hours(1)),
    ]);
    run.assert_ok();
    // Not seen before the refresh…
    assert_eq!(client.decide_json(app, &["--key-id", "k1"]).0, 0);
    client.run(&["refresh"]).assert_ok();
    // …then: revoked for signatures after the revocation, trusted before.
    let (code, v) = client.decide_json(app, &["--key-id", "k1"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("revoked")), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("laptop lost"),
        "{v}"
    );
    let (code, _) = client.decide_json(
        app,
        &["--key-id", "k1", "--signed-at", &t(-Duration::hours(2))],
    );
    assert_eq!(code, 0);
    // The same key material under another id in team-b is revoked too:
    // only b2 counts now, one short of the threshold.
    let (code, v) = client.decide_json(b, &["--key-id", "b1", "--key-id", "b2"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("threshold_not_met")),
        "{v}"
    );
    let (code, v) = client.decide_json(b, &["--key-id", "b1"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("revoked")), "{v}");

    // A namespace deleted: its artifacts belong to no one any more.
    server.apply(keyshare_server::publisher::Change::DeleteNamespace {
        namespace: common::ns("empty"),
    });
    client.run(&["refresh"]).assert_ok();
    let (code, v) = client.decide_json("registry.acme.io/empty/x", &["--key-id", "k1"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("no_namespace")),
        "{v}"
    );

    // Bad input: exit 2, one line.
    let run = client.run(&["decide", app]);
    assert!(run.assert_error_line(2).contains("--key-id"));
    let run = client.run(&["decide", app, "--key-id", "k1", "--signed-at", "yesterday"]);
    assert!(run.assert_error_line(2).contains("RFC 3339"));
    let run = client.run(&["decide", app, "--no-such-flag"]);
    assert!(run.assert_error_line(2).contains("--no-such-flag"));
    let key = client.write("not-a-key.pem", "hello");
    let run = client.run(&["decide", app, "--key", key.to_str().unwrap()]);
    assert!(run.assert_error_line(2).contains("not a PEM public key"));
}

#[test]
fn list_shows_namespaces_scopes_keys_and_maintainers() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    server.create_namespace("web", &["registry.acme.io/web/**"], 1);
    let (k, _) = new_key();
    server.add_key("team-a", "release-2030", &k, None);
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    let run = client.run(&["list"]);
    run.assert_ok();
    assert!(run.stdout.starts_with("NAME"), "{run:?}");
    assert!(run.stdout.contains("registry.acme.io/team-a/**"), "{run:?}");
    assert!(run.stdout.contains("team-a@acme.io"), "{run:?}");

    let run = client.run(&["list", "team-*", "--output", "json"]);
    run.assert_ok();
    let v = run.json();
    let list = v["namespaces"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["name"], "team-a");
    assert_eq!(list[0]["keys"][0]["id"], "release-2030");
    assert_eq!(list[0]["maintainers"][0], "team-a@acme.io");
}

#[test]
fn export_writes_the_verified_trust_state_for_notation_and_as_pem() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/app"], 1);
    let (k, _) = new_key();
    server.add_key("team-a", "release-2030", &k, None);
    let client = Client::new();
    let out = client.dir.path().join("export");
    let out_s = out.to_str().unwrap();

    // Nothing verified yet: nothing to export.
    client.init(&server.url, &server.root1_sha256());
    client
        .run(&["export", "pem", "--dir", out_s])
        .assert_error_line(1);
    assert!(!out.join("team-a").exists());

    client.run(&["refresh"]).assert_ok();
    let run = client.run(&["export", "pem", "--dir", out_s, "--output", "json"]);
    run.assert_ok();
    let v = run.json();
    assert_eq!(v["namespaces"][0], "team-a", "{v}");
    let pem = std::fs::read(out.join("team-a/release-2030.pem")).unwrap();
    let exported = openssl::pkey::PKey::public_key_from_pem(&pem).unwrap();
    let listed = k.openssl_key(&k.key_id().unwrap()).unwrap();
    assert!(
        exported.public_eq(listed),
        "the exported key is the listed key"
    );

    let run = client.run(&["export", "notation", "--dir", out_s, "--output", "json"]);
    run.assert_ok();
    let policy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("trustpolicy.oci.json")).unwrap()).unwrap();
    assert_eq!(policy["version"], "1.0", "{policy}");
    // A raw key cannot be expressed in notation: the namespace gets no
    // policy that would trust anything, and the command says so.
    let warnings = run.json()["warnings"].as_array().unwrap().len();
    assert!(warnings > 0, "{run:?}");
}

/// The image-policy and layout-key exports through the binary: a key
/// marked `--layout-root` with `keyshare admin key add`, a refresh, then
/// `keyshare export kyverno|policy-controller|cosign|layout-keys`.
#[test]
fn export_writes_kyverno_policy_controller_cosign_and_layout_keys_files() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (k, _) = new_key();
    server.add_key("team-a", "release-2030", &k, None);
    let (root, root_pem) = new_key();
    let client = Client::new();
    let pem_file = client.write("root.pub", &root_pem);
    let token = server.admin_token();
    common::keyshare(&[
        "admin",
        "--server",
        &server.url,
        "--token",
        &token,
        "key",
        "add",
        "team-a",
        "--key-file",
        pem_file.to_str().unwrap(),
        "--id",
        "layout-root",
        "--layout-root",
    ])
    .assert_ok();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let out = client.dir.path().join("export");
    let out_s = out.to_str().unwrap();
    let export = |format: &str| {
        let run = client.run(&["export", format, "--dir", out_s, "--output", "json"]);
        run.assert_ok();
        run.json()
    };

    let v = export("kyverno");
    assert_eq!(v["namespaces"], serde_json::json!(["team-a"]), "{v}");
    let ky: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kyverno.json")).unwrap()).unwrap();
    let iv = &ky["items"][0]["spec"]["rules"][0]["verifyImages"][0];
    assert_eq!(
        iv["imageReferences"],
        serde_json::json!(["registry.acme.io/team-a/*"])
    );
    assert_eq!(iv["attestors"][0]["count"], 1);
    assert_eq!(iv["attestors"][0]["entries"].as_array().unwrap().len(), 2);

    export("policy-controller");
    let pc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("policy-controller.json")).unwrap())
            .unwrap();
    assert_eq!(
        pc["items"][0]["spec"]["images"],
        serde_json::json!([{"glob": "registry.acme.io/team-a/**"}])
    );
    let names: Vec<&str> = pc["items"][0]["spec"]["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    // In the published document's order (the server lists keys by id).
    assert_eq!(names, ["layout-root", "release-2030"]);

    export("cosign");
    let map: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cosign.json")).unwrap()).unwrap();
    assert_eq!(map["registry.acme.io/team-a/**"]["threshold"], 1);
    let pem = std::fs::read(out.join("team-a/release-2030.pub")).unwrap();
    let exported = openssl::pkey::PKey::public_key_from_pem(&pem).unwrap();
    assert!(exported.public_eq(k.openssl_key(&k.key_id().unwrap()).unwrap()));

    let v = export("layout-keys");
    assert_eq!(v["namespaces"], serde_json::json!(["team-a"]), "{v}");
    let keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("layout-keys.json")).unwrap()).unwrap();
    let team_a = keys["team-a"].as_object().unwrap();
    assert_eq!(team_a.len(), 1, "only the marked key: {keys}");
    assert_eq!(
        team_a.get(root.key_id().unwrap().as_str()),
        Some(&serde_json::to_value(&root).unwrap())
    );
    assert!(out.join("team-a/layout-root.pem").exists());
}

#[test]
fn https_servers_are_verified_and_trusted_with_server_ca() {
    let (server, cert) = Server::start_tls();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (k, _) = new_key();
    server.add_key("team-a", "k", &k, None);
    let client = Client::new();
    let sha = server.root1_sha256();
    let run = client.run(&["init", "--server", &server.url, "--root-sha256", &sha]);
    let line = run.assert_error_line(1);
    assert!(line.contains("cannot fetch"), "{line}");
    let ca = client.write("ca.pem", &cert);
    let ca = ca.to_str().unwrap();
    client
        .run(&[
            "init",
            "--server",
            &server.url,
            "--root-sha256",
            &sha,
            "--server-ca",
            ca,
        ])
        .assert_ok();
    client.run(&["refresh", "--server-ca", ca]).assert_ok();
    let run = client.run(&["refresh"]);
    assert!(run.assert_error_line(1).contains("cannot fetch"), "{run:?}");
    let (code, _) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "k"]);
    assert_eq!(code, 0);
}

/// Writes a bundle of the server's current state, valid for `days`.
fn export_bundle(server: &Server, path: &std::path::Path, days: i64) {
    let mut out = std::fs::File::create(path).unwrap();
    keyshare_server::airgap::export(
        &server.publisher,
        "test",
        Duration::days(days),
        OffsetDateTime::now_utc(),
        &mut out,
        &mut |_, _| {},
    )
    .unwrap();
}

#[test]
fn a_lone_laptop_refreshes_from_a_bundle_without_the_server() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (k, _) = new_key();
    server.add_key("team-a", "k1", &k, None);
    let client = Client::new();
    // Pinned from a root file: nothing is fetched, and nothing will be.
    let root = client.write("root.json", &String::from_utf8(server.root1()).unwrap());
    let unreachable = "http://127.0.0.1:9";
    client
        .run(&[
            "init",
            "--server",
            unreachable,
            "--root",
            root.to_str().unwrap(),
        ])
        .assert_ok();

    let dir = client.dir.path();
    let old = dir.join("old.bundle");
    export_bundle(&server, &old, 30);
    server.revoke("k1", OffsetDateTime::now_utc() - Duration::hours(1));
    let new = dir.join("new.bundle");
    export_bundle(&server, &new, 30);

    client
        .run(&["refresh", "--from-bundle", new.to_str().unwrap()])
        .assert_ok();
    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "k1"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("revoked")), "{v}");

    // An older bundle is a rollback; the cache keeps the newer state.
    let before = client.snapshot();
    let run = client.run(&["refresh", "--from-bundle", old.to_str().unwrap()]);
    assert!(run.assert_error_line(1).contains("rollback"), "{run:?}");
    assert_eq!(client.snapshot(), before);

    // One altered byte anywhere is refused, and changes nothing.
    let mut bytes = std::fs::read(&new).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let bad = dir.join("bad.bundle");
    std::fs::write(&bad, &bytes).unwrap();
    let run = client.run(&["refresh", "--from-bundle", bad.to_str().unwrap()]);
    let line = run.assert_error_line(1);
    assert!(
        line.starts_with("error: bundle ") && !line.contains("bundle: bundle"),
        "{run:?}"
    );
    assert_eq!(client.snapshot(), before);
}

#[test]
fn back_dated_signatures_verify_blob_decides_at_now_not_at_the_signers_signed_at() {
    use keyshare_policy::keys::Scheme;
    use keyshare_policy::sign::{InMemorySigner, Signer};

    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let stolen = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    server.add_key("team-a", "release", stolen.public_key(), None);
    server.revoke("release", OffsetDateTime::now_utc() - Duration::hours(1));
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    // The thief signs now and writes a signed_at from 2024, long before
    // the revocation (as `faketime 2024-01-01 keyshare sign-blob` would).
    let claimed = time::macros::datetime!(2024-01-01 00:00 UTC);
    let sig = keyshare_client::blob::sign(&stolen, b"the artifact", claimed).unwrap();
    let file = client.write("app.tar", "the artifact");
    let sig_file = client.write("app.tar.sig", &serde_json::to_string(&sig).unwrap());
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify-blob",
            "registry.acme.io/team-a/app",
            file.to_str().unwrap(),
            "--signature",
            sig_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        client.run(&args)
    };
    let run = verify(&[]);
    let line = run.assert_error_line(1);
    assert!(line.contains("was revoked at"), "{line}");
    assert!(
        line.contains("claims signed_at 2024-01-01T00:00:00Z, which is not used"),
        "{line}"
    );
    // A caller holding its own evidence of the signing time says so, loudly.
    let run = verify(&["--at", "2024-01-01T00:00:00Z"]);
    run.assert_ok();
    assert!(run.stdout.contains("(--at)"), "{run:?}");
    let line = verify(&["--at", "yesterday"])
        .assert_error_line(1)
        .to_owned();
    assert!(line.contains("--at `yesterday`"), "{line}");
}

/// The roots `init` fetched through `canned`, in order.
fn root_requests(canned: &common::Canned) -> Vec<String> {
    canned
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(path, _)| path.clone())
        .filter(|p| p.ends_with(".root.json"))
        .collect()
}

#[test]
fn a_pin_may_name_any_root_version_and_updates_forward() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (key, _) = new_key();
    server.add_key("team-a", "release-1", &key, None);
    let (k2, k3, k4) = (common::signer(), common::signer(), common::signer());
    let v2 = server.rotate_root(&server.root_key, &k2);
    let v3 = server.rotate_root(&k2, &k3);
    let sha = keyshare_policy::hash::sha256_hex;
    let decide = |client: &Client| {
        let (code, v) =
            client.decide_json("registry.acme.io/team-a/app", &["--key-id", "release-1"]);
        assert_eq!((code, &v["trusted"]), (0, &serde_json::json!(true)), "{v}");
    };

    // `--root-sha256` of `2.root.json`: the client looks at 1.root.json,
    // then 2.root.json, whose hash is the pin, and stops there.
    let canned = common::proxy(&server);
    let client = Client::new();
    let run = client.run(&[
        "init",
        "--server",
        &canned.url,
        "--root-sha256",
        &sha(&v2),
        "--output",
        "json",
    ]);
    let pinned = run.assert_ok().json();
    assert_eq!(pinned["root_version"], 2, "{pinned}");
    assert_eq!(pinned["root_sha256"], sha(&v2).as_str());
    assert_eq!(
        root_requests(&canned),
        ["metadata/1.root.json", "metadata/2.root.json"]
    );
    assert!(
        client.snapshot().iter().any(|(_, bytes)| bytes == &v2),
        "the pinned file is cached as it was served"
    );

    // From the pinned root it follows the rotations after it, to v3 now
    // and to v4 later, and decides.
    let refreshed = client
        .run(&["refresh", "--output", "json"])
        .assert_ok()
        .json();
    assert_eq!(refreshed["root_version"], 3, "{refreshed}");
    decide(&client);
    server.rotate_root(&k3, &k4);
    let refreshed = client
        .run(&["refresh", "--output", "json"])
        .assert_ok()
        .json();
    assert_eq!(refreshed["root_version"], 4, "{refreshed}");
    decide(&client);

    // `--root-version 3` fetches 3.root.json only; older roots are never
    // needed (here the server does not even have them).
    let canned = common::proxy(&server);
    for n in [1, 2] {
        canned.set(
            &format!("metadata/{n}.root.json"),
            common::Reply::Status(404),
        );
    }
    let client = Client::new();
    let run = client.run(&[
        "init",
        "--server",
        &canned.url,
        "--root-sha256",
        &sha(&v3),
        "--root-version",
        "3",
    ]);
    assert!(
        run.assert_ok().stdout.contains("pinned root version 3"),
        "{run:?}"
    );
    assert_eq!(root_requests(&canned), ["metadata/3.root.json"]);
    let refreshed = client
        .run(&["refresh", "--output", "json"])
        .assert_ok()
        .json();
    assert_eq!(refreshed["root_version"], 4, "{refreshed}");
    assert!(
        !root_requests(&canned)
            .iter()
            .any(|p| p == "metadata/1.root.json" || p == "metadata/2.root.json"),
        "{:?}",
        root_requests(&canned)
    );
    decide(&client);
}
