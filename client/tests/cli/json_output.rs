//! `--output json` on the commands that print a result and took only text
//! before: the root ceremony (`root create`, `sign`, `merge`, `rotate`,
//! `verify`), `keyshare tuf` (`init`, `refresh`, `download`), `sign-blob`
//! and `verify-blob`. Each prints one JSON document with the facts the
//! text said; errors stay one line on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use time::OffsetDateTime;

use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{Root, Signed};
use keyshare_policy::sign::{InMemorySigner, Signer};

use crate::common::{keyshare, Client, Run, Server};
use crate::tuf_common::{self, Fixture};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit 0, nothing on stderr; stdout parsed as one JSON document.
fn json(run: &Run) -> Value {
    run.assert_ok();
    run.json()
}

fn key_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let run = keyshare(&[
        "root",
        "generate-key-file",
        s(&path),
        "--scheme",
        "ed25519",
        "--no-passphrase",
    ]);
    let id = json(&run)["keyid"].as_str().unwrap().to_owned();
    (path, id)
}

fn read_root(path: &Path) -> Signed<Root> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_root_ceremony_commands_print_what_they_wrote_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root_a, id_a) = key_file(d, "root-a.pem");
    let (root_b, id_b) = key_file(d, "root-b.pem");
    let (targets, targets_id) = key_file(d, "targets.pem");
    let (snapshot, _) = key_file(d, "snapshot.pem");
    let (timestamp, _) = key_file(d, "timestamp.pem");

    let unsigned = d.join("unsigned.json");
    let created = json(&keyshare(&[
        "root",
        "create",
        "--out",
        s(&unsigned),
        "--root-key",
        s(&root_a),
        "--root-key",
        s(&root_b),
        "--root-threshold",
        "2",
        "--targets-key",
        s(&targets),
        "--snapshot-key",
        s(&snapshot),
        "--timestamp-key",
        s(&timestamp),
        "--output",
        "json",
    ]));
    assert_eq!(created["file"], s(&unsigned));
    assert_eq!(created["version"], 1);
    assert_eq!(created["signatures"], 0);
    assert_eq!(created["roles"]["root"]["threshold"], 2);
    let mut root_ids: Vec<&str> = created["roles"]["root"]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    root_ids.sort_unstable();
    let mut expected = vec![id_a.as_str(), id_b.as_str()];
    expected.sort_unstable();
    assert_eq!(root_ids, expected);
    assert_eq!(created["roles"]["targets"]["keyids"][0], targets_id);
    let expires = created["expires"].as_str().unwrap();
    assert_eq!(expires, read_root(&unsigned).signed.expires.to_string());

    // Each keyholder signs a copy; the copies are merged.
    let (copy_a, copy_b) = (d.join("a.json"), d.join("b.json"));
    for (key, id, copy) in [(&root_a, &id_a, &copy_a), (&root_b, &id_b, &copy_b)] {
        let signed = json(&keyshare(&[
            "root",
            "sign",
            s(&unsigned),
            "--key",
            s(key),
            "--out",
            s(copy),
            "--output",
            "json",
        ]));
        assert_eq!(signed["file"], s(copy));
        assert_eq!(signed["version"], 1);
        assert_eq!(signed["signatures"], 1);
        assert_eq!(signed["signed_with"][0]["keyid"], id.as_str());
        assert_eq!(signed["signed_with"][0]["root_key"], true);
    }
    let root1 = d.join("1.root.json");
    let merged = json(&keyshare(&[
        "root",
        "merge",
        s(&copy_a),
        s(&copy_b),
        "--out",
        s(&root1),
        "--output",
        "json",
    ]));
    assert_eq!(merged["file"], s(&root1));
    assert_eq!(merged["signatures"], 2);
    assert_eq!(merged["merged"][1], s(&copy_b));
    assert_eq!(read_root(&root1).signatures.len(), 2);

    // Rotation of the timestamp key: version 2, what changed.
    let (timestamp2, timestamp2_id) = key_file(d, "timestamp-2.pem");
    let unsigned2 = d.join("unsigned-2.json");
    let rotated = json(&keyshare(&[
        "root",
        "rotate",
        "--current",
        s(&root1),
        "--out",
        s(&unsigned2),
        "--timestamp-key",
        s(&timestamp2),
        "--output",
        "json",
    ]));
    assert_eq!(rotated["version"], 2);
    assert_eq!(rotated["previous_version"], 1);
    assert_eq!(rotated["changed"], serde_json::json!(["timestamp"]));
    assert_eq!(rotated["roles"]["timestamp"]["keyids"][0], timestamp2_id);
    assert_eq!(rotated["roles"]["root"]["threshold"], 2);

    let root2 = d.join("2.root.json");
    keyshare(&[
        "root",
        "sign",
        s(&unsigned2),
        "--key",
        s(&root_a),
        "--key",
        s(&root_b),
        "--out",
        s(&root2),
    ])
    .assert_ok();
    // `--output` is an option of `root`, so it may come first too.
    let verified = json(&keyshare(&[
        "root",
        "--output",
        "json",
        "verify",
        s(&root1),
        s(&root2),
    ]));
    assert_eq!(verified["verified"], true);
    let roots = verified["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0]["file"], s(&root1));
    assert_eq!(roots[1]["version"], 2);
    assert_eq!(roots[1]["root_threshold"], 2);
    assert_eq!(roots[1]["root_keys"], 2);
    assert_eq!(roots[1]["signatures"], 2);
    assert_eq!(roots[1]["expired"], false);

    // A chain that does not verify: one error line, nothing on stdout.
    let broken = keyshare(&["root", "verify", s(&unsigned), "--output", "json"]);
    let line = broken.assert_error_line(1);
    assert!(line.contains("threshold not met"), "{line}");
    assert!(broken.stdout.is_empty(), "{broken:?}");
}

#[test]
fn tuf_init_refresh_and_download_print_json() {
    let now = OffsetDateTime::now_utc();
    let mut f = Fixture::new(now);
    let file = f
        .repo
        .set_target("targets", "one.txt", b"one", None)
        .unwrap();
    f.publish(vec![file], now);
    let m = f.metadata_dir.to_str().unwrap().to_owned();
    let root = f.root_v1_file();

    let init = tuf_common::tuf(&["--metadata-dir", &m, "--output", "json", "init", s(&root)]);
    tuf_common::assert_success(&init);
    let init: Value = serde_json::from_slice(&init.stdout).unwrap();
    assert_eq!(init["metadata_dir"], m.as_str());
    assert_eq!(init["root"], s(&root));

    let url = f.server.metadata_url();
    let refreshed = tuf_common::tuf(&[
        "--metadata-url",
        &url,
        "--metadata-dir",
        &m,
        "--output",
        "json",
        "refresh",
    ]);
    tuf_common::assert_success(&refreshed);
    let refreshed: Value = serde_json::from_slice(&refreshed.stdout).unwrap();
    let served: Value = serde_json::from_slice(&f.served("metadata/timestamp.json")).unwrap();
    assert_eq!(refreshed["timestamp_version"], served["signed"]["version"]);
    assert_eq!(refreshed["root_version"], 1);
    assert!(refreshed["snapshot_version"].as_u64().unwrap() >= 1);
    assert!(refreshed["targets_version"].as_u64().unwrap() >= 1);

    let mut args = f.download_args(&["one.txt"]);
    args.extend(["--output".to_owned(), "json".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = tuf_common::tuf(&args);
    tuf_common::assert_success(&first);
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["target_dir"], s(&f.target_dir));
    assert_eq!(first["targets"][0]["name"], "one.txt");
    assert_eq!(first["targets"][0]["status"], "downloaded");
    let path = first["targets"][0]["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), b"one");
    let second = tuf_common::tuf(&args);
    tuf_common::assert_success(&second);
    let second: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second["targets"][0]["status"], "already_present");
}

#[test]
fn sign_blob_and_verify_blob_print_json_with_the_timestamp_and_the_decision() {
    let server = Server::start_with_tsa();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let signer = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    server.add_key(
        "team-a",
        signer.key_id().as_str(),
        signer.public_key(),
        None,
    );
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let key = client.write(
        "signer.pem",
        std::str::from_utf8(&signer.to_pkcs8_pem().unwrap()).unwrap(),
    );
    let file = client.write("app.tar", "the artifact");
    let sig = client.dir.path().join("app.tar.sig");

    let signed = json(&keyshare(&[
        "sign-blob",
        "--server",
        &server.url,
        "--key",
        s(&key),
        "--signature",
        s(&sig),
        "--output",
        "json",
        s(&file),
    ]));
    assert_eq!(signed["signature"], s(&sig));
    assert_eq!(signed["file"], s(&file));
    assert_eq!(signed["key_id"], signer.key_id().as_str());
    assert_eq!(
        signed["sha256"],
        keyshare_policy::hash::sha256_hex(b"the artifact").as_str()
    );
    assert_eq!(signed["timestamp_token"], true);
    assert_eq!(signed["delegation_evidence"], 0);
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    assert_eq!(on_disk["signed_at"], signed["signed_at"]);

    let verify = |artifact: &str| {
        client.run(&[
            "verify-blob",
            artifact,
            s(&file),
            "--signature",
            s(&sig),
            "--refresh",
            "--output",
            "json",
        ])
    };
    let trusted = json(&verify("registry.acme.io/team-a/app"));
    assert_eq!(trusted["trusted"], true);
    assert_eq!(trusted["namespace"], "team-a");
    assert_eq!(trusted["rule"]["kind"], "namespace");
    assert_eq!(trusted["rule"]["keys"][0], signer.key_id().as_str());
    assert_eq!(trusted["artifact"], "registry.acme.io/team-a/app");
    assert_eq!(trusted["key_id"], signer.key_id().as_str());
    assert_eq!(trusted["decided_for_source"], "timestamp_token");
    assert_eq!(trusted["timestamp"]["tsa"], "keyshare");
    assert_eq!(trusted["decided_for"], trusted["timestamp"]["gen_time"]);
    assert_eq!(trusted["claimed_signed_at"], signed["signed_at"]);
    assert_eq!(trusted["evidence"], Value::Null);
    assert!(trusted["timestamp_version"].as_u64().unwrap() >= 1);

    // Untrusted: the decision on stdout for scripts, the error line on
    // stderr, exit 1.
    let other = verify("registry.acme.io/team-b/app");
    let line = other.assert_error_line(1).to_owned();
    assert!(line.contains("untrusted"), "{line}");
    let v = other.json();
    assert_eq!(v["trusted"], false);
    assert_eq!(v["reason"], "no_namespace");
    assert_eq!(v["artifact"], "registry.acme.io/team-b/app");
    assert_eq!(
        format!("error: {}", v["message"].as_str().unwrap()),
        line,
        "the JSON message is the error line"
    );
}
