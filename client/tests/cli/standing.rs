//! Key standing, namespace revocations and scope overlaps through the
//! `keyshare` binary, run as a process against a real server (the shared
//! fixture of `tests/common`):
//!
//! * a revoked key never looks active: `keyshare list` and
//!   `keyshare admin namespace show` say revoked, by whom, when and why, in
//!   text and JSON, and flag keys expiring within the horizon;
//! * `keyshare admin key revoke NS KEY_ID` revokes in that namespace only:
//!   a maintainer of team-a revoking a key team-b also lists changes
//!   nothing for team-b, cannot revoke in team-b nor organization-wide,
//!   and cannot withdraw the revocation;
//! * `namespace create` and `namespace add-scope` refuse a scope that
//!   overlaps another namespace's unless `--allow-overlap`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::{Revocation, RevokedSubject};
use keyshare_server::publisher::Change;
use keyshare_server::store::TokenKind;

use crate::common::{keyshare_env, new_key, ns, Client, Run, Server};

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// Now, to the second (so RFC 3339 texts compare exactly).
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn token(server: &Server, kind: TokenKind) -> String {
    server
        .publisher
        .create_token("test", kind, None, OffsetDateTime::now_utc())
        .unwrap()
        .secret
        .expose()
        .to_owned()
}

/// Runs `keyshare admin --server URL --token TOKEN ARGS...`.
fn admin(server: &Server, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["admin", "--server", &server.url, "--token", token];
    all.extend_from_slice(args);
    let xdg = server.dir.path().join("xdg-cache");
    keyshare_env(&all, &[("XDG_CACHE_HOME", xdg.to_str().unwrap())])
}

/// `admin` with `--output json`, expected to succeed, parsed.
fn admin_json(server: &Server, token: &str, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let run = admin(server, token, &all);
    run.assert_ok();
    run.json()
}

/// The key listed under `id` in a list of key views.
fn key<'a>(keys: &'a Value, id: &str) -> &'a Value {
    keys.as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key {id} in {keys}"))
}

/// The revocation a namespace makes of the key it lists under `id`.
fn revoke_in_namespace(server: &Server, namespace: &str, id: &str, at: OffsetDateTime) {
    let listed = server.publisher.read(|s| s.key(namespace, id)).unwrap().key;
    server.apply(Change::RevokeNamespaceKey {
        namespace: ns(namespace),
        revocation: Revocation {
            subject: RevokedSubject::Key(listed.key.fingerprint(&KeyId::new(id)).unwrap()),
            revoked_at: at,
            reason: "laptop stolen".into(),
        },
        key_id: Some(KeyId::new(id)),
    });
}

/// team-a lists `org-revoked` (revoked by the organization an hour ago),
/// `ns-revoked` (revoked by team-a half an hour ago), `expiring` (expires
/// in 5 days) and `release`; team-b lists `ns-revoked`'s key too, as
/// `shared`. Returns the two revocation times.
fn populated(server: &Server) -> (OffsetDateTime, OffsetDateTime) {
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    server.create_namespace("team-b", &["registry.acme.io/team-b/**"], 1);
    let (shared, _) = new_key();
    for (id, not_after) in [
        ("org-revoked", None),
        ("expiring", Some(now() + Duration::days(5))),
        ("release", None),
    ] {
        server.add_key("team-a", id, &new_key().0, not_after);
    }
    server.add_key("team-a", "ns-revoked", &shared, None);
    server.add_key("team-b", "shared", &shared, None);
    let org_at = now() - Duration::hours(1);
    server.revoke("org-revoked", org_at);
    let ns_at = now() - Duration::minutes(30);
    revoke_in_namespace(server, "team-a", "ns-revoked", ns_at);
    (org_at, ns_at)
}

#[test]
fn list_shows_a_revoked_key_as_revoked_with_when_and_why_in_text_and_json() {
    let server = Server::start();
    let (org_at, ns_at) = populated(&server);
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    let run = client.run(&["list"]);
    run.assert_ok();
    let out = &run.stdout;
    assert!(out.contains("org-revoked[revoked]"), "{out}");
    assert!(out.contains("ns-revoked[revoked]"), "{out}");
    assert!(out.contains("expiring[expires soon]"), "{out}");
    // Active keys carry no marker; team-b's copy of team-a's revoked key
    // is active in team-b.
    assert!(out.contains(" release "), "{out}");
    assert!(out.contains(" shared "), "{out}");
    assert!(!out.contains("shared["), "{out}");
    assert!(
        out.contains(&format!(
            "team-a/org-revoked: REVOKED by the organization at {}: laptop lost",
            rfc3339(org_at)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "team-a/ns-revoked: REVOKED by the namespace at {}: laptop stolen",
            rfc3339(ns_at)
        )),
        "{out}"
    );
    assert!(out.contains("team-a/expiring: expires soon, at "), "{out}");
    assert!(!out.contains("team-b/shared"), "{out}");

    let run = client.run(&["list", "--output", "json"]);
    run.assert_ok();
    let v = run.json();
    assert_eq!(v["expiring_within_seconds"], 30 * 86_400);
    let a = &v["namespaces"][0];
    assert_eq!(a["name"], "team-a");
    let k = key(&a["keys"], "org-revoked");
    assert_eq!(k["state"], "revoked", "{k}");
    assert_eq!(k["revocation"]["by"], "organization");
    assert_eq!(k["revocation"]["revoked_at"], rfc3339(org_at));
    assert_eq!(k["revocation"]["reason"], "laptop lost");
    assert_eq!(k["revocation"]["in_effect"], true);
    let k = key(&a["keys"], "ns-revoked");
    assert_eq!(k["state"], "revoked", "{k}");
    assert_eq!(k["revocation"]["by"], "namespace");
    assert_eq!(k["revocation"]["revoked_at"], rfc3339(ns_at));
    assert_eq!(k["revocation"]["reason"], "laptop stolen");
    let k = key(&a["keys"], "expiring");
    assert_eq!(k["state"], "expires_soon", "{k}");
    assert_eq!(k["expires_soon"], true);
    assert_eq!(k["revocation"], Value::Null);
    assert_eq!(key(&a["keys"], "release")["state"], "active");
    let b = &v["namespaces"][1];
    assert_eq!(b["name"], "team-b");
    let k = key(&b["keys"], "shared");
    assert_eq!(k["state"], "active", "{k}");
    assert_eq!(k["revocation"], Value::Null, "{k}");
    assert_eq!(
        k["spki_sha256"],
        key(&a["keys"], "ns-revoked")["spki_sha256"]
    );

    // A shorter horizon flags nothing; revoked stays revoked.
    let run = client.run(&["list", "--expiring-within", "1d", "--output", "json"]);
    run.assert_ok();
    let v = run.json();
    let keys = &v["namespaces"][0]["keys"];
    assert_eq!(key(keys, "expiring")["state"], "active");
    assert_eq!(key(keys, "org-revoked")["state"], "revoked");
    // A bad horizon is one error line naming the option.
    let run = client.run(&["list", "--expiring-within", "soon"]);
    assert!(
        run.assert_error_line(1)
            .contains("--expiring-within `soon`"),
        "{run:?}"
    );
}

#[test]
fn admin_namespace_show_displays_revocations_and_expiry_in_text_and_json() {
    let server = Server::start();
    let (org_at, ns_at) = populated(&server);
    let maintainer = token(&server, TokenKind::Maintainer(ns("team-a")));

    let run = admin(&server, &maintainer, &["namespace", "show", "team-a"]);
    run.assert_ok();
    let out = &run.stdout;
    assert!(out.contains("keys (expiring within 30d flagged):"), "{out}");
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {out}"))
            .to_owned()
    };
    let l = line("org-revoked");
    assert!(l.contains(" revoked "), "{l}");
    assert!(
        l.contains(&format!(
            "by organization at {}: laptop lost",
            rfc3339(org_at)
        )),
        "{l}"
    );
    let l = line("ns-revoked");
    assert!(l.contains(" revoked "), "{l}");
    assert!(
        l.contains(&format!(
            "by namespace at {}: laptop stolen",
            rfc3339(ns_at)
        )),
        "{l}"
    );
    assert!(line("expiring").contains(" expires soon "), "{out}");
    assert!(line("release").contains(" active "), "{out}");
    // The namespace's own revocations are listed.
    assert!(
        out.contains("revoked by this namespace (in it only):"),
        "{out}"
    );

    let v = admin_json(&server, &maintainer, &["namespace", "show", "team-a"]);
    let k = key(&v["keys"], "ns-revoked");
    assert_eq!(k["state"], "revoked", "{k}");
    assert_eq!(k["revocation"]["by"], "namespace");
    assert_eq!(k["revocation"]["reason"], "laptop stolen");
    assert_eq!(k["revocation"]["revoked_at"], rfc3339(ns_at));
    assert_eq!(
        key(&v["keys"], "org-revoked")["revocation"]["by"],
        "organization"
    );
    assert_eq!(key(&v["keys"], "expiring")["state"], "expires_soon");
    // team-b's copy of the key is not revoked in team-b.
    let v = admin_json(&server, &maintainer, &["namespace", "show", "team-b"]);
    assert_eq!(key(&v["keys"], "shared")["state"], "active");
    assert_eq!(key(&v["keys"], "shared")["revocation"], Value::Null);

    // --expiring-within goes to the server; a bad one is its 400.
    let v = admin_json(
        &server,
        &maintainer,
        &["namespace", "show", "team-a", "--expiring-within", "1d"],
    );
    assert_eq!(key(&v["keys"], "expiring")["state"], "active");
    let run = admin(
        &server,
        &maintainer,
        &["namespace", "show", "team-a", "--expiring-within", "soon"],
    );
    let line = run.assert_error_line(1);
    assert!(
        line.contains("400 invalid") && line.contains("expiring_within"),
        "{line}"
    );
}

#[test]
fn admin_key_revoke_by_a_maintainer_counts_in_their_namespace_only() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    server.create_namespace("team-b", &["registry.acme.io/team-b/**"], 1);
    // The same key material, listed by both teams.
    let (shared, _) = new_key();
    server.add_key("team-a", "shared", &shared, None);
    server.add_key("team-b", "shared", &shared, None);
    let maintainer_a = token(&server, TokenKind::Maintainer(ns("team-a")));
    let org_admin = server.admin_token();

    // team-a's maintainer sees team-b's key and tries to end it there:
    // refused in team-b, and organization-wide.
    let v = admin_json(&server, &maintainer_a, &["namespace", "show", "team-b"]);
    let fingerprint = key(&v["keys"], "shared")["spki_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = server.publisher.read(|s| s.audit_head()).unwrap();
    let run = admin(
        &server,
        &maintainer_a,
        &["key", "revoke", "team-b", "shared", "--reason", "mine now"],
    );
    assert!(
        run.assert_error_line(1).contains("403 forbidden"),
        "{run:?}"
    );
    let run = admin(
        &server,
        &maintainer_a,
        &[
            "revocation",
            "add",
            "--key-id",
            "shared",
            "--namespace",
            "team-b",
            "--reason",
            "x",
        ],
    );
    assert!(
        run.assert_error_line(1).contains("403 forbidden"),
        "{run:?}"
    );
    assert_eq!(server.publisher.read(|s| s.audit_head()).unwrap(), before);

    // Revoking it in team-a works, and counts in team-a only.
    let run = admin(
        &server,
        &maintainer_a,
        &[
            "key",
            "revoke",
            "team-a",
            "shared",
            "--reason",
            "laptop stolen",
        ],
    );
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!(
            "revoked key shared (SPKI SHA-256 {fingerprint}) in namespace team-a only"
        )),
        "{run:?}"
    );
    let v = admin_json(&server, &maintainer_a, &["namespace", "show", "team-a"]);
    assert_eq!(key(&v["keys"], "shared")["state"], "revoked");
    assert_eq!(v["revocations"][0]["reason"], "laptop stolen");
    let v = admin_json(&server, &maintainer_a, &["namespace", "show", "team-b"]);
    assert_eq!(key(&v["keys"], "shared")["state"], "active");
    assert_eq!(
        admin_json(&server, &org_admin, &["revocation", "list"])["revocations"],
        serde_json::json!([]),
        "a namespace revocation leaked into the organization's"
    );
    // What verifiers decide: untrusted in team-a, trusted in team-b.
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let later = rfc3339(now() + Duration::hours(1));
    let (code, v) = client.decide_json(
        "registry.acme.io/team-a/app",
        &["--key-id", "shared", "--signed-at", &later],
    );
    assert_eq!(code, 1, "{v}");
    let (code, v) = client.decide_json(
        "registry.acme.io/team-b/app",
        &["--key-id", "shared", "--signed-at", &later],
    );
    assert_eq!(code, 0, "{v}");

    // The maintainer cannot withdraw it; an org admin can.
    let run = admin(
        &server,
        &maintainer_a,
        &["key", "unrevoke", "team-a", &fingerprint],
    );
    assert!(
        run.assert_error_line(1).contains("403 forbidden"),
        "{run:?}"
    );
    let run = admin(
        &server,
        &org_admin,
        &["key", "unrevoke", "team-a", &fingerprint],
    );
    run.assert_ok();
    let v = admin_json(&server, &org_admin, &["namespace", "show", "team-a"]);
    assert_eq!(key(&v["keys"], "shared")["state"], "active");

    // Bad input: one line naming the problem.
    let run = admin(
        &server,
        &maintainer_a,
        &["key", "revoke", "team-a", "nobody", "--reason", "x"],
    );
    let line = run.assert_error_line(1);
    assert!(line.contains("404") && line.contains("nobody"), "{line}");
    let run = admin(
        &server,
        &maintainer_a,
        &["key", "revoke", "team-a", "shared"],
    );
    assert!(run.assert_error_line(1).contains("--reason"), "{run:?}");
}

#[test]
fn admin_namespace_create_and_add_scope_refuse_overlaps_unless_allow_overlap() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    server.create_namespace("team-b", &["registry.acme.io/team-b/**"], 1);
    let org_admin = server.admin_token();

    let run = admin(
        &server,
        &org_admin,
        &[
            "namespace",
            "create",
            "team-d",
            "--scope",
            "registry.acme.io/team-a/app",
        ],
    );
    let line = run.assert_error_line(1);
    assert!(line.contains("409 scope_overlap"), "{line}");
    assert!(line.contains("`team-a`"), "{line}");
    assert!(line.contains("which `team-d` would own"), "{line}");
    assert!(line.contains("allow the overlap explicitly"), "{line}");
    let run = admin(
        &server,
        &org_admin,
        &[
            "namespace",
            "create",
            "team-d",
            "--scope",
            "registry.acme.io/team-a/app",
            "--allow-overlap",
        ],
    );
    run.assert_ok();
    assert!(
        run.stdout
            .contains("overlap allowed with 1 namespace(s) (team-a)"),
        "{run:?}"
    );
    assert!(run.stdout.contains("team-d wins"), "{run:?}");

    // Widening: refused, then allowed explicitly.
    let widen = [
        "namespace",
        "add-scope",
        "team-b",
        "--scope",
        "registry.acme.io/team-a/lib",
    ];
    let run = admin(&server, &org_admin, &widen);
    let line = run.assert_error_line(1);
    assert!(line.contains("409 scope_overlap"), "{line}");
    assert!(line.contains("`team-a`"), "{line}");
    let resolve = |artifact: &str| {
        admin_json(&server, &org_admin, &["resolve", artifact])["namespace"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(resolve("registry.acme.io/team-a/lib"), "team-a");
    // A maintainer may not widen their own namespace at all.
    let maintainer_b = token(&server, TokenKind::Maintainer(ns("team-b")));
    let mut allowed = widen.to_vec();
    allowed.push("--allow-overlap");
    let run = admin(&server, &maintainer_b, &allowed);
    assert!(
        run.assert_error_line(1).contains("403 forbidden"),
        "{run:?}"
    );
    assert_eq!(resolve("registry.acme.io/team-a/lib"), "team-a");

    let v = admin_json(&server, &org_admin, &allowed);
    assert_eq!(
        v["scopes"],
        serde_json::json!(["registry.acme.io/team-b/**", "registry.acme.io/team-a/lib"])
    );
    assert_eq!(v["overlaps"]["namespaces"], serde_json::json!(["team-a"]));
    assert_eq!(resolve("registry.acme.io/team-a/lib"), "team-b");
    let audit = admin_json(&server, &org_admin, &["audit", "list", "--limit", "1000"]);
    let record = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|r| r["action"] == "namespace.scopes")
        .unwrap();
    assert_eq!(record["details"]["allow_overlap"], true, "{record}");
    assert_eq!(
        record["details"]["overlaps"]["namespaces"],
        serde_json::json!(["team-a"])
    );
}
