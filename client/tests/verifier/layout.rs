//! The verifier does not assume who delegates a trust document or where
//! the namespace index lives: a repository built with the policy crate's
//! builder, whose index is split into shards (`org/namespaces/<x>.json`)
//! and whose namespace roles sit one level down (targets → `bins-0` →
//! namespace role), is refreshed and decided on like the server's layout.
//! A trust document listed by a role not trusted for its path is ignored;
//! with the server's layout (documents listed in succinct hashed bins), one
//! listed in a bin other than its own is ignored and a bin signed by a key
//! its delegation does not list is refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;

use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::{DelegatedRole, RoleName, Unrecognized};
use keyshare_policy::pattern::PathPattern;
use keyshare_policy::repo::{Options, Repository, SharedSigner};
use keyshare_policy::sign::InMemorySigner;

use crate::common::{new_key, Canned, Client, Reply};

fn signer() -> SharedSigner {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap())
}

fn role(name: &str, paths: &[&str], s: &SharedSigner, terminating: bool) -> DelegatedRole {
    DelegatedRole {
        name: RoleName::new(name),
        keyids: vec![s.key_id().clone()],
        threshold: NonZeroU32::MIN,
        terminating,
        paths: Some(paths.iter().map(|p| PathPattern::new(p)).collect()),
        path_hash_prefixes: None,
        unrecognized: Unrecognized::new(),
    }
}

fn trust_doc(ns: &str, key_id: &str, key: &Key) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "format": "keyshare.trust/v1",
        "namespace": ns,
        "threshold": 1,
        "keys": [{"id": key_id, "key": key}],
    }))
    .unwrap()
}

fn shard(names: &[&str]) -> Vec<u8> {
    let entries: Vec<_> = names
        .iter()
        .map(|n| json!({"name": n, "scopes": [format!("registry.acme.io/{n}/**")]}))
        .collect();
    serde_json::to_vec(&json!({"format": "keyshare.namespaces/v1", "namespaces": entries})).unwrap()
}

#[test]
fn sharded_index_and_nested_delegations_are_found_through_the_graph() {
    let now = OffsetDateTime::now_utc();
    let mut repo = Repository::create(
        &[signer()],
        1,
        [
            ("targets", vec![signer()]),
            ("snapshot", vec![signer()]),
            ("timestamp", vec![signer()]),
        ],
        Options::default(),
        now,
    )
    .unwrap();
    let (ka, _) = new_key();
    let (kb, _) = new_key();
    let (kc, _) = new_key();
    let mut files = Vec::new();
    files.push(
        repo.set_target(
            "targets",
            "org/namespaces/0a.json",
            &shard(&["team-a"]),
            None,
        )
        .unwrap(),
    );
    files.push(
        repo.set_target(
            "targets",
            "org/namespaces/7f.json",
            &shard(&["team-b", "team-c"]),
            None,
        )
        .unwrap(),
    );
    let bins = signer();
    let ns_key = signer();
    let bin_key = (bins.key_id().clone(), bins.public_key().clone());
    let ns_keys = (ns_key.key_id().clone(), ns_key.public_key().clone());
    repo.delegate(
        "targets",
        role("bins-0", &["namespaces/*/*"], &bins, true),
        vec![bin_key],
        vec![bins.clone()],
        now,
    )
    .unwrap();
    for ns in ["team-a", "team-b"] {
        repo.delegate(
            "bins-0",
            role(ns, &[&format!("namespaces/{ns}/*")], &ns_key, true),
            vec![ns_keys.clone()],
            vec![ns_key.clone()],
            now,
        )
        .unwrap();
    }
    files.push(
        repo.set_target(
            "team-a",
            "namespaces/team-a/trust.json",
            &trust_doc("team-a", "ka", &ka),
            None,
        )
        .unwrap(),
    );
    files.push(
        repo.set_target(
            "team-b",
            "namespaces/team-b/trust.json",
            &trust_doc("team-b", "kb", &kb),
            None,
        )
        .unwrap(),
    );
    // team-b's role also lists a document for team-c, a path it is not
    // delegated: a TUF search does not accept it there.
    files.push(
        repo.set_target(
            "team-b",
            "namespaces/team-c/trust.json",
            &trust_doc("team-c", "kc", &kc),
            None,
        )
        .unwrap(),
    );
    files.extend(repo.commit(now).unwrap());
    files.extend(repo.current_files().unwrap());
    let served: HashMap<String, Vec<u8>> = files
        .into_iter()
        .map(|f| (f.path, f.bytes.to_vec()))
        .collect();
    let root = served["metadata/1.root.json"].clone();
    let canned = Canned::start(Arc::new(move |path| match served.get(path) {
        Some(b) => Reply::Bytes(b.clone()),
        None => Reply::Status(404),
    }));

    let client = Client::new();
    client.init(&canned.url, &keyshare_policy::hash::sha256_hex(&root));
    let run = client.run(&["refresh", "--output", "json"]);
    run.assert_ok();
    let summary = run.json();
    assert_eq!(summary["namespaces"], 3, "{summary}");
    assert_eq!(summary["trust_documents"], 2, "{summary}");

    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "ka"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = client.decide_json("registry.acme.io/team-b/app", &["--key-id", "kb"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = client.decide_json("registry.acme.io/team-c/app", &["--key-id", "kc"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("no_trust_document")),
        "{v}"
    );
}

/// The server's layout built with the policy crate's builder: targets →
/// 256 succinct hashed bins (targets key) → trust documents listed in the
/// bins (a namespace with an empty document is in the index only). `extra`
/// lists more documents in bins of the caller's choice.
/// Returns the files served and the targets key.
fn bins_repository(
    docs: &[(&str, Vec<u8>)],
    extra: &[(&str, &str, Vec<u8>)],
) -> (HashMap<String, Vec<u8>>, SharedSigner) {
    let now = OffsetDateTime::now_utc();
    let targets = signer();
    let mut repo = Repository::create(
        &[signer()],
        1,
        [
            ("targets", vec![targets.clone()]),
            ("snapshot", vec![signer()]),
            ("timestamp", vec![signer()]),
        ],
        Options::default(),
        now,
    )
    .unwrap();
    let bins =
        keyshare_policy::trust::namespace_bins(vec![targets.key_id().clone()], NonZeroU32::MIN);
    repo.delegate_succinct(
        "targets",
        bins.clone(),
        vec![(targets.key_id().clone(), targets.public_key().clone())],
        vec![targets.clone()],
        now,
    )
    .unwrap();
    let names: Vec<&str> = docs.iter().map(|(n, _)| *n).collect();
    let mut files = vec![repo
        .set_target("targets", "org/namespaces/00.json", &shard(&names), None)
        .unwrap()];
    for (ns, doc) in docs.iter().filter(|(_, d)| !d.is_empty()) {
        let path = format!("namespaces/{ns}/trust.json");
        let bin = bins.role_for_target(&path);
        files.push(repo.set_target(bin.as_str(), &path, doc, None).unwrap());
    }
    for (bin, path, doc) in extra {
        files.push(repo.set_target(bin, path, doc, None).unwrap());
    }
    files.extend(repo.commit(now).unwrap());
    files.extend(repo.current_files().unwrap());
    let served = files
        .into_iter()
        .map(|f| (f.path, f.bytes.to_vec()))
        .collect();
    (served, targets)
}

fn serve(served: HashMap<String, Vec<u8>>) -> (Canned, Client) {
    let root = served["metadata/1.root.json"].clone();
    let canned = Canned::start(Arc::new(move |path| match served.get(path) {
        Some(b) => Reply::Bytes(b.clone()),
        None => Reply::Status(404),
    }));
    let client = Client::new();
    client.init(&canned.url, &keyshare_policy::hash::sha256_hex(&root));
    (canned, client)
}

/// A bin other than the one its path hashes to, for `ns`.
fn wrong_bin(ns: &str) -> String {
    let bins = keyshare_policy::trust::namespace_bins(vec![], NonZeroU32::MIN);
    let right = bins.bin_for_target(&format!("namespaces/{ns}/trust.json"));
    bins.bin_name((right + 1) % bins.bin_count())
        .as_str()
        .to_owned()
}

#[test]
fn a_trust_document_listed_in_a_bin_other_than_its_own_is_not_used() {
    // An attacker who can get a document listed in the wrong bin (signed
    // by the targets key all the same) cannot make it count: TUF clients
    // look for a path only in the bin it hashes to.
    let (ka, _) = new_key();
    let (kx, _) = new_key();
    let (kc, _) = new_key();
    let (served, _) = bins_repository(
        &[
            ("team-a", trust_doc("team-a", "ka", &ka)),
            ("team-c", Vec::new()),
        ],
        &[
            (
                &wrong_bin("team-a"),
                "namespaces/team-a/trust.json",
                trust_doc("team-a", "kx", &kx),
            ),
            (
                &wrong_bin("team-c"),
                "namespaces/team-c/trust.json",
                trust_doc("team-c", "kc", &kc),
            ),
        ],
    );
    let (_canned, client) = serve(served);
    let run = client.run(&["refresh", "--output", "json"]);
    run.assert_ok();
    let summary = run.json();
    assert_eq!(summary["trust_documents"], 1, "{summary}");

    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "ka"]);
    assert_eq!(code, 0, "the document of team-a's own bin counts: {v}");
    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "kx"]);
    assert_eq!(code, 1, "the misplaced document does not: {v}");
    // team-c's only document is misplaced: team-c has none.
    let (code, v) = client.decide_json("registry.acme.io/team-c/app", &["--key-id", "kc"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("no_trust_document")),
        "{v}"
    );
}

#[test]
fn a_bin_signed_by_a_key_other_than_the_targets_key_is_refused() {
    // The namespaces key (or any key but the one the bins' delegation
    // lists) re-signs team-a's bin: the refresh fails and nothing changes.
    let (ka, _) = new_key();
    let (kx, _) = new_key();
    let (mut served, _) = bins_repository(&[("team-a", trust_doc("team-a", "ka", &ka))], &[]);
    let bins = keyshare_policy::trust::namespace_bins(vec![], NonZeroU32::MIN);
    let bin = bins.role_for_target("namespaces/team-a/trust.json");
    let name = served
        .keys()
        .find(|p| p.starts_with("metadata/") && p.ends_with(&format!(".{bin}.json")))
        .unwrap()
        .clone();
    let mut published: keyshare_policy::metadata::Signed<keyshare_policy::metadata::Targets> =
        serde_json::from_slice(&served[&name]).unwrap();
    let forged_doc = trust_doc("team-a", "kx", &kx);
    let forged_file = keyshare_policy::metadata::TargetFile::from_bytes(&forged_doc);
    let disk = format!(
        "targets/namespaces/team-a/{}.trust.json",
        forged_file.sha256().unwrap()
    );
    published
        .signed
        .targets
        .insert("namespaces/team-a/trust.json".into(), forged_file);
    let namespaces_key = signer();
    let forged =
        keyshare_policy::sign::sign(published.signed.clone(), &[namespaces_key.as_ref()]).unwrap();
    served.insert(name, keyshare_policy::sign::to_bytes(&forged).unwrap());
    served.insert(disk, forged_doc);
    let (_canned, client) = serve(served);
    let before = client.snapshot();
    let run = client.run(&["refresh"]);
    let line = run.assert_error_line(1);
    assert!(line.contains(bin.as_str()), "{line}");
    assert!(
        before == client.snapshot(),
        "a refused refresh keeps nothing"
    );
}

#[test]
fn a_trust_document_of_a_newer_format_fails_closed_for_its_namespace_only() {
    // team-b publishes a document of a format this verifier does not know
    // (as a server newer than the verifier would): the refresh goes
    // through, team-a's decisions stand, and nothing is trusted for team-b,
    // the decision naming why. Also a document that breaks its format's
    // rules (team-c: a threshold of zero).
    let (ka, _) = new_key();
    let (kb, _) = new_key();
    let (kc, _) = new_key();
    let mut newer: serde_json::Value =
        serde_json::from_slice(&trust_doc("team-b", "kb", &kb)).unwrap();
    newer["format"] = json!("keyshare.trust/v9");
    let mut broken: serde_json::Value =
        serde_json::from_slice(&trust_doc("team-c", "kc", &kc)).unwrap();
    broken["threshold"] = json!(0);
    let (served, _) = bins_repository(
        &[
            ("team-a", trust_doc("team-a", "ka", &ka)),
            ("team-b", serde_json::to_vec(&newer).unwrap()),
            ("team-c", serde_json::to_vec(&broken).unwrap()),
        ],
        &[],
    );
    let (_canned, client) = serve(served);
    let run = client.run(&["refresh", "--output", "json"]);
    run.assert_ok();
    let summary = run.json();
    assert_eq!(summary["namespaces"], 3, "{summary}");
    assert_eq!(summary["trust_documents"], 1, "{summary}");
    let unreadable = summary["unreadable_trust_documents"].as_array().unwrap();
    assert_eq!(unreadable.len(), 2, "{summary}");
    assert_eq!(unreadable[0]["namespace"], "team-b", "{summary}");
    assert!(
        unreadable[0]["error"]
            .as_str()
            .unwrap()
            .contains("a newer format needs a newer verifier"),
        "{summary}"
    );
    assert_eq!(unreadable[1]["namespace"], "team-c", "{summary}");
    let text = client.run(&["refresh"]);
    text.assert_ok();
    assert!(
        text.stdout
            .contains("cannot read the trust document of `team-b`, `team-c`"),
        "{}",
        text.stdout
    );

    // An export leaves them out, saying so.
    let dir = tempfile::tempdir().unwrap();
    let run = client.run(&[
        "export",
        "pem",
        "--dir",
        dir.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    run.assert_ok();
    let export = run.json();
    assert_eq!(export["namespaces"], json!(["team-a"]), "{export}");
    let warnings = export["warnings"].to_string();
    assert!(
        warnings.contains("namespace `team-b`: its trust document cannot be read"),
        "{export}"
    );

    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "ka"]);
    assert_eq!(code, 0, "team-a is decided as before: {v}");
    for (ns, key) in [("team-b", "kb"), ("team-c", "kc")] {
        let (code, v) =
            client.decide_json(&format!("registry.acme.io/{ns}/app"), &["--key-id", key]);
        assert_eq!(
            (code, v["reason"].as_str()),
            (1, Some("unreadable_trust_document")),
            "{v}"
        );
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("namespaces/{ns}/trust.json")),
            "{v}"
        );
    }
}
