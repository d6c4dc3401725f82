//! The audit log against the chain heads the server publishes in every
//! signed timestamp (`x-keyshare-audit`): a database writer who rewrites a
//! record and recomputes every later hash (so the bare chain verifies
//! again) still contradicts a head that was signed, fetched or remembered
//! before the rewrite. Checked from the attacker's side: the SQLite file of
//! a running server is edited directly, with the append-only triggers
//! dropped, and then `GET /api/v1/audit/verify` (over HTTP) and
//! `keyshare admin audit verify` (as a process) are asked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use keyshare_client::fetch::BlockingClient;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{Peer, PeerUrl, PinnedRoot, Sha256Hex};
use keyshare_server::publisher::Change;

use crate::common::{keyshare_env, new_key, Client, Run, Server};

/// A server with some history: a namespace, a key, the key's revocation,
/// and two changes after the revocation. Returns the server, an org-admin
/// token, the revocation record's sequence number and the version of the
/// timestamp published with it.
fn server_with_history() -> (Server, String, i64, u64) {
    let server = Server::start();
    let admin = server.admin_token();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (key, _) = new_key();
    server.add_key("team-a", "laptop", &key, None);
    server.revoke("laptop", OffsetDateTime::now_utc());
    let revocation = last_seq(&server);
    assert_eq!(record(&server, revocation)["action"], "revocation.add");
    let revocation_timestamp = timestamp_version(&server);
    let (key2, _) = new_key();
    server.add_key("team-a", "desktop", &key2, None);
    server.apply(Change::PutPeer {
        peer: Peer {
            name: "partner".into(),
            patterns: vec![ArtifactPattern::parse("registry.partner.io/**").unwrap()],
            url: PeerUrl::parse("https://keyshare.partner.io").unwrap(),
            root: PinnedRoot::Sha256(Sha256Hex::of(b"partner root")),
            terminating: true,
        },
    });
    (server, admin, revocation, revocation_timestamp)
}

fn timestamp_version(server: &Server) -> u64 {
    let bytes = server.file("metadata/timestamp.json").unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

fn db(server: &Server) -> PathBuf {
    server.dir.path().join("keyshare.db")
}

fn last_seq(server: &Server) -> i64 {
    server.publisher.read(|s| s.audit_head()).unwrap().records
}

fn record(server: &Server, seq: i64) -> Value {
    let r = server
        .publisher
        .read(|s| s.audit_records(seq - 1, 1))
        .unwrap();
    let r = &r[0];
    json!({"seq": r.seq, "action": r.action, "hash": r.hash, "details": r.details})
}

/// The hash of an audit record as `docs/operations/store.md` defines it,
/// computed here from the format alone, as an attacker would.
fn record_hash(row: &AuditRow, prev_hash: &str) -> String {
    let details: Value = serde_json::from_str(&row.details).unwrap();
    let tuple = json!([
        "keyshare.audit/v1",
        row.seq,
        row.time,
        row.actor,
        row.action,
        row.subject,
        details,
        prev_hash
    ]);
    let bytes = keyshare_policy::cjson::to_canonical(&tuple, "audit record").unwrap();
    keyshare_policy::hash::sha256_hex(&bytes)
}

struct AuditRow {
    seq: i64,
    time: String,
    actor: String,
    action: String,
    subject: String,
    details: String,
}

/// The attacker's full rewrite: drops the append-only triggers, replaces
/// the details of record `seq` with `details`, and recomputes `prev_hash`
/// and `hash` of that record and every later one, so the bare chain
/// verifies again.
fn rewrite(db: &Path, seq: i64, details: &Value) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
    )
    .unwrap();
    conn.execute(
        "UPDATE audit_log SET details = ?1 WHERE seq = ?2",
        (details.to_string(), seq),
    )
    .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT seq, time, actor, action, subject, details FROM audit_log WHERE seq >= ?1 \
             ORDER BY seq",
        )
        .unwrap();
    let rows: Vec<AuditRow> = stmt
        .query_map([seq], |r| {
            Ok(AuditRow {
                seq: r.get(0)?,
                time: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                details: r.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev: String = conn
        .query_row(
            "SELECT prev_hash FROM audit_log WHERE seq = ?1",
            [seq],
            |r| r.get(0),
        )
        .unwrap();
    for row in &rows {
        let hash = record_hash(row, &prev);
        conn.execute(
            "UPDATE audit_log SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            (&prev, &hash, row.seq),
        )
        .unwrap();
        prev = hash;
    }
}

/// The revocation's details made to say something else.
fn forged_details(server: &Server, seq: i64) -> Value {
    let mut details = record(server, seq)["details"].clone();
    details["reason"] = json!("routine rotation, nothing lost");
    details
}

/// `GET /api/v1/audit/verify` over HTTP.
fn verify_over_http(server: &Server, token: &str) -> Value {
    let http = BlockingClient::new(reqwest::Client::builder()).unwrap();
    let request = http
        .client()
        .get(format!("{}/api/v1/audit/verify", server.url))
        .bearer_auth(token);
    let bytes = http.block_on(async { request.send().await.unwrap().bytes().await.unwrap() });
    serde_json::from_slice(&bytes).unwrap()
}

/// `keyshare admin audit verify ARGS...` as a process, with an empty
/// default cache directory (`XDG_CACHE_HOME`) unless `--cache-dir` is given.
fn cli_verify(server: &Server, token: &str, args: &[&str]) -> Run {
    let xdg = server.dir.path().join("xdg-cache");
    let mut all = vec![
        "admin",
        "--server",
        &server.url,
        "--token",
        token,
        "audit",
        "verify",
    ];
    all.extend_from_slice(args);
    keyshare_env(&all, &[("XDG_CACHE_HOME", xdg.to_str().unwrap())])
}

/// The head (`seq`, `hash`) the server's current timestamp publishes.
fn published_head(server: &Server) -> (i64, String) {
    let bytes = server.file("metadata/timestamp.json").unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let head = &v["signed"]["x-keyshare-audit"];
    (
        head["seq"]
            .as_i64()
            .unwrap_or_else(|| panic!("no head in {v}")),
        head["hash"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn the_audit_chain_is_unkeyed_a_rewritten_database_contradicts_the_published_head() {
    let (server, admin, revocation, revocation_timestamp) = server_with_history();

    // Before the rewrite: both checks pass.
    let v = verify_over_http(&server, &admin);
    assert_eq!(v["ok"], true, "{v}");
    cli_verify(&server, &admin, &[]).assert_ok();

    let before = server.publisher.read(|s| s.verify_audit_chain()).unwrap();

    rewrite(
        &db(&server),
        revocation,
        &forged_details(&server, revocation),
    );
    // The attacker's rewrite is complete: the bare chain verifies again.
    let bare = server.publisher.read(|s| s.verify_audit_chain()).unwrap();
    assert_eq!(bare.records, before.records);
    assert_ne!(bare.hash, before.hash);
    assert_eq!(
        record(&server, revocation)["details"]["reason"],
        "routine rotation, nothing lost"
    );

    // The server names the revocation record: the timestamp published with
    // it (still in the store) signed the old hash.
    let v = verify_over_http(&server, &admin);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad_seq"], revocation, "{v}");
    assert_eq!(v["found"], record(&server, revocation)["hash"], "{v}");
    assert_ne!(v["expected"], v["found"], "{v}");
    assert_eq!(
        v["published_in"],
        format!("published in timestamp v{revocation_timestamp}"),
        "{v}"
    );
    assert_eq!(
        v["reason"],
        format!(
            "audit log contradicts the head published in timestamp v{revocation_timestamp} at \
             record {revocation}: published hash {}, the log has {}",
            v["expected"].as_str().unwrap(),
            v["found"].as_str().unwrap()
        )
    );

    // The CLI (no verifier cache) checks against the current timestamp,
    // which signed the head before the rewrite.
    let (head_seq, head_hash) = published_head(&server);
    assert_eq!(head_seq, last_seq(&server));
    assert_eq!(head_hash, before.hash);
    let run = cli_verify(&server, &admin, &[]);
    assert_eq!(
        run.assert_error_line(1),
        format!(
            "error: audit log contradicts the head published in timestamp v{} (unverified) at \
             record {head_seq}: published hash {head_hash}, the log has {}",
            timestamp_version(&server),
            bare.hash
        )
    );
    assert!(run.stdout.is_empty(), "{run:?}");
    // With --output json, the finding is printed first.
    let run = cli_verify(&server, &admin, &["--output", "json"]);
    run.assert_error_line(1);
    let v = run.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_seq"], head_seq);
}

#[test]
fn a_head_remembered_by_a_client_before_the_rewrite_catches_a_rewrite_done_after_it() {
    let (server, admin, revocation, _) = server_with_history();
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let (remembered_seq, remembered_hash) = published_head(&server);

    // The attacker rewrites the revocation, then waits for the next
    // publish, which signs a head over the rewritten chain, and deletes the
    // superseded timestamps that signed the old heads.
    rewrite(
        &db(&server),
        revocation,
        &forged_details(&server, revocation),
    );
    let (key3, _) = new_key();
    server.add_key("team-a", "build", &key3, None);
    let conn = rusqlite::Connection::open(db(&server)).unwrap();
    conn.execute(
        "DELETE FROM published_files WHERE path = 'metadata/timestamp.json' \
         AND id IN (SELECT id FROM published_superseded)",
        [],
    )
    .unwrap();
    drop(conn);

    // Everything the server still holds agrees with the rewritten log.
    let v = verify_over_http(&server, &admin);
    assert_eq!(v["ok"], true, "{v}");
    let bare = server.publisher.read(|s| s.audit_records(0, 1000)).unwrap();
    let now_at_remembered = &bare[usize::try_from(remembered_seq).unwrap() - 1].hash;
    assert_ne!(now_at_remembered, &remembered_hash);

    // The head the client remembered does not.
    let cache = client.cache();
    let run = cli_verify(&server, &admin, &["--cache-dir", cache.to_str().unwrap()]);
    assert_eq!(
        run.assert_error_line(1),
        format!(
            "error: audit log contradicts the head remembered in the verifier cache {} \
             (timestamp v{}) at record {remembered_seq}: published hash {remembered_hash}, the \
             log has {now_at_remembered}",
            cache.display(),
            remembered_timestamp_version(&cache, remembered_seq),
        )
    );

    // So does the same head written down by an auditor and given by hand.
    let given = format!("{remembered_seq}:{remembered_hash}");
    let run = cli_verify(&server, &admin, &["--head", &given]);
    assert_eq!(
        run.assert_error_line(1),
        format!(
            "error: audit log contradicts the head given with --head at record \
             {remembered_seq}: published hash {remembered_hash}, the log has {now_at_remembered}"
        )
    );
}

/// The timestamp version the client cache remembered a head of `seq` from.
fn remembered_timestamp_version(cache: &Path, seq: i64) -> u64 {
    let state: Value =
        serde_json::from_slice(&std::fs::read(cache.join("origin/state.json")).unwrap()).unwrap();
    state["audit_heads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["seq"] == seq)
        .unwrap_or_else(|| panic!("no head {seq} in {state}"))["timestamp_version"]
        .as_u64()
        .unwrap()
}

#[test]
fn an_intact_log_passes_and_says_against_which_heads() {
    let (server, admin, _, _) = server_with_history();
    let head = server.publisher.read(|s| s.verify_audit_chain()).unwrap();
    let (seq, hash) = published_head(&server);
    let version = timestamp_version(&server);
    assert_eq!((seq, &hash), (head.records, &head.hash));

    let v = verify_over_http(&server, &admin);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["records"], head.records);
    assert_eq!(
        v["published_head"],
        json!({"seq": seq, "hash": hash, "timestamp_version": version})
    );
    // The current timestamp and the superseded ones the store still holds.
    assert!(v["published_heads"].as_u64().unwrap() >= 5, "{v}");

    // Without a pinned root the published head is used, marked unverified.
    let run = cli_verify(&server, &admin, &[]);
    run.assert_ok();
    let xdg = server.dir.path().join("xdg-cache").join("keyshare");
    assert_eq!(
        run.stdout,
        format!(
            "audit chain ok: {seq} records, head {hash}\nagrees with: the head of timestamp \
             v{version} (record {seq}; unverified: no root pinned in {}; run `keyshare init` to \
             verify it); the server's own check agrees ({} published heads)\n",
            xdg.display(),
            v["published_heads"]
        )
    );

    // With a pinned root it is verified through the TUF workflow, and the
    // heads the cache remembered are checked too; so is a head given by hand.
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let (key, _) = new_key();
    server.add_key("team-a", "later", &key, None);
    let cache = client.cache();
    let first = format!("1:{}", record(&server, 1)["hash"].as_str().unwrap());
    let run = cli_verify(
        &server,
        &admin,
        &["--cache-dir", cache.to_str().unwrap(), "--head", &first],
    );
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[1],
        format!(
            "agrees with: the head of timestamp v{} (record {}; verified against the root pinned \
             in {}), 1 head(s) remembered by the verifier cache, 1 head(s) given with --head; \
             the server's own check agrees ({} published heads)",
            version + 1,
            seq + 1,
            cache.display(),
            v["published_heads"].as_u64().unwrap() + 1
        ),
        "{run:?}"
    );
    let json = cli_verify(
        &server,
        &admin,
        &["--cache-dir", cache.to_str().unwrap(), "--output", "json"],
    )
    .json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["published_head"]["verified"], true);
    assert_eq!(json["remembered_heads"], 1);
    // The refresh remembered the new head.
    let state: Value =
        serde_json::from_slice(&std::fs::read(cache.join("origin/state.json")).unwrap()).unwrap();
    let remembered: Vec<i64> = state["audit_heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(remembered, [seq, seq + 1]);
}

#[test]
fn records_cut_off_the_end_contradict_the_published_head() {
    let (server, admin, _, _) = server_with_history();
    let (seq, hash) = published_head(&server);
    let conn = rusqlite::Connection::open(db(&server)).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq = ?1", [seq])
        .unwrap();
    drop(conn);
    // The bare chain is intact, one record shorter.
    let bare = server.publisher.read(|s| s.verify_audit_chain()).unwrap();
    assert_eq!(bare.records, seq - 1);

    let v = verify_over_http(&server, &admin);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad_seq"], seq, "{v}");
    assert_eq!(v["expected"], hash, "{v}");
    assert_eq!(v["found"], Value::Null, "{v}");

    let run = cli_verify(&server, &admin, &[]);
    let line = run.assert_error_line(1);
    assert!(
        line.ends_with(&format!(
            " at record {seq}: published hash {hash}, the log ends at record {}",
            seq - 1
        )),
        "{line}"
    );
}

#[test]
fn a_bad_head_argument_is_one_line_naming_it() {
    let (server, admin, _, _) = server_with_history();
    let hash = "ab".repeat(32);
    for bad in [
        "".to_owned(),
        "5".to_owned(),
        hash.clone(),
        format!("-1:{hash}"),
        format!("x:{hash}"),
        format!("5:{}", &hash[1..]),
        format!("5:{}zz", &hash[2..]),
    ] {
        let run = cli_verify(&server, &admin, &["--head", &bad]);
        assert_eq!(
            run.assert_error_line(1),
            format!(
                "error: --head `{bad}`: expected SEQ:HASH (a sequence number and the 64 hex \
                 digits of that record's hash)"
            )
        );
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    // A well-formed head the log does not have: named, exit 1.
    let run = cli_verify(&server, &admin, &["--head", &format!("2:{hash}")]);
    let line = run.assert_error_line(1);
    assert!(
        line.starts_with("error: audit log contradicts the head given with --head at record 2: "),
        "{line}"
    );
    let run = cli_verify(&server, &admin, &["--head", &format!("900:{hash}")]);
    let line = run.assert_error_line(1);
    assert!(line.contains("at record 900: "), "{line}");
    assert!(line.contains("the log ends at record "), "{line}");
}

#[test]
fn a_verifier_cache_of_another_server_is_not_used() {
    let (server, admin, _, _) = server_with_history();
    let other = Server::start();
    let client = Client::new();
    client.init(&other.url, &other.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let cache = client.cache();
    let run = cli_verify(&server, &admin, &["--cache-dir", cache.to_str().unwrap()]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!(
            "unverified: the verifier cache {} pins {}, not this server",
            cache.display(),
            other.url
        )),
        "{run:?}"
    );
}

#[test]
fn a_rewrite_signed_over_by_a_later_publish_still_contradicts_the_timestamps_the_server_stores() {
    let (server, admin, revocation, revocation_timestamp) = server_with_history();
    rewrite(
        &db(&server),
        revocation,
        &forged_details(&server, revocation),
    );
    // The next publish signs a head over the rewritten log: the current
    // timestamp now agrees with it.
    let (key, _) = new_key();
    server.add_key("team-a", "build", &key, None);
    let bare = server.publisher.read(|s| s.verify_audit_chain()).unwrap();
    assert_eq!(published_head(&server), (bare.records, bare.hash));

    // The superseded timestamps the store keeps still contradict it.
    let v = verify_over_http(&server, &admin);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad_seq"], revocation, "{v}");
    assert_eq!(
        v["published_in"],
        format!("published in timestamp v{revocation_timestamp}")
    );

    // The CLI without a remembered head agrees with the current timestamp,
    // and fails on the server's own check.
    let run = cli_verify(&server, &admin, &[]);
    assert_eq!(
        run.assert_error_line(1),
        format!(
            "error: the server's check: {}",
            v["reason"].as_str().unwrap()
        )
    );
}
