//! `POST /api/v1/root`: a root made in a ceremony is published when it
//! chains (old and new thresholds, next version) and names the server's
//! online keys; anything else is refused and changes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http_common::{request, send, Fixture, NOW};
use keyshare_policy::client::{Config, Lookup, Response, Source, Updater};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{RoleKeys, RoleName, Root, Unrecognized};
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::InMemorySigner;
use keyshare_server::http::ApiError;
use keyshare_server::publisher::Change;

use keyshare_testkit::signer;

/// Replaces the root role's keys with `keys` (threshold `threshold`).
pub(super) fn set_root_keys(root: &mut Root, keys: &[SharedSigner], threshold: u32) {
    let old: Vec<_> = root.roles[&RoleName::new("root")].keyids.clone();
    for id in old {
        root.keys.remove(&id);
    }
    for k in keys {
        root.keys.insert(k.key_id().clone(), k.public_key().clone());
    }
    root.roles.insert(
        RoleName::new("root"),
        RoleKeys {
            keyids: keys.iter().map(|k| k.key_id().clone()).collect(),
            threshold: NonZeroU32::new(threshold).unwrap(),
            unrecognized: Unrecognized::new(),
        },
    );
}

macro_rules! post_root {
    ($app:expr, $token:expr, $body:expr) => {
        send(
            &$app,
            request(Method::POST, "/api/v1/root", Some($token), Some($body)).to_request(),
        )
        .await
    };
}

/// A TUF client that pinned root v1 refreshes from the publisher's files.
fn client_refresh(f: &Fixture, root_v1: &[u8]) -> Updater {
    let mut updater = Updater::new(root_v1, NOW, Config::default()).unwrap();
    updater
        .refresh_with(|r| {
            if r.source() == Source::Local {
                return Response::NotFound;
            }
            let path = format!("metadata/{}", r.file_name());
            Response::from(f.publisher.file(&path).map(|c| c.bytes.to_vec()))
        })
        .unwrap();
    updater
}

#[actix_web::test]
async fn a_chained_root_is_published_and_clients_follow_it() {
    let f = Fixture::new();
    let app = app!(f);
    let root_v1 = f
        .publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();
    let (head, ts) = f.published_state();

    // v2: two new root keys, threshold 2, signed by the old key and both new ones.
    let (n1, n2) = (signer(), signer());
    let keys = [n1.clone(), n2.clone()];
    let body = f.next_root(
        |r| set_root_keys(r, &keys, 2),
        &[f.root_key.as_ref(), n1.as_ref(), n2.as_ref()],
    );
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let v = answer.json();
    assert_eq!(v["root_version"], 2);
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(files.contains(&"metadata/2.root.json"), "{files:?}");
    assert!(files.contains(&"metadata/timestamp.json"), "{files:?}");
    let (head_after, ts_after) = f.published_state();
    assert_eq!(head_after.records, head.records + 1);
    assert!(ts_after > ts);

    // The audit record.
    let audit = send(
        &app,
        request(
            Method::GET,
            "/api/v1/audit?after=0&limit=1000",
            Some(&f.admin),
            None,
        )
        .to_request(),
    )
    .await
    .json();
    let last = audit["records"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "root.rotate", "{last}");
    assert_eq!(last["details"]["roles_changed"], json!(["root"]), "{last}");

    // A client that pinned v1 follows to v2.
    let updater = client_refresh(&f, &root_v1);
    assert_eq!(updater.trusted().root().version, 2);
    assert_eq!(updater.trusted().timestamp().unwrap().version, ts_after);

    // And v3 needs 2 of the v2 keys: signed by n1 alone it is refused.
    let body = f.next_root(|_| {}, &[n1.as_ref()]);
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert!(answer.error().1.contains("current root v2"), "{answer:?}");
    let body = f.next_root(|_| {}, &[n1.as_ref(), n2.as_ref()]);
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(client_refresh(&f, &root_v1).trusted().root().version, 3);
}

#[actix_web::test]
async fn a_root_signed_only_by_the_new_keys_is_refused() {
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    let new = signer();
    let keys = [new.clone()];
    let body = f.next_root(|r| set_root_keys(r, &keys, 1), &[new.as_ref()]);
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    let (code, message) = answer.error();
    assert_eq!(code, "invalid");
    assert!(
        message.contains("threshold of the current root v1"),
        "{message}"
    );
    assert_eq!(f.published_state(), before);
    assert!(f.publisher.file("metadata/2.root.json").is_none());

    // Signed only by the old key, the new threshold is not met.
    let body = f.next_root(|r| set_root_keys(r, &keys, 1), &[f.root_key.as_ref()]);
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert!(answer.error().1.contains("its own threshold"), "{answer:?}");
    assert_eq!(f.published_state(), before);
}

#[actix_web::test]
async fn a_version_gap_or_a_replay_is_refused() {
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    let body = f.next_root(|r| r.version = 3, &[f.root_key.as_ref()]);
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::CONFLICT, "{answer:?}");
    let (code, message) = answer.error();
    assert_eq!(code, "root_version");
    assert!(message.contains("v2 is expected"), "{message}");
    // Root v1 again.
    let v1: Value =
        serde_json::from_slice(&f.publisher.file("metadata/1.root.json").unwrap().bytes).unwrap();
    let answer = post_root!(app, &f.admin, &v1);
    assert_eq!(answer.status, StatusCode::CONFLICT, "{answer:?}");
    assert_eq!(f.published_state(), before);
}

#[actix_web::test]
async fn a_root_naming_online_keys_the_server_lacks_is_refused_naming_the_role() {
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    let other = signer();
    let body = f.next_root(
        |r| {
            r.keys
                .insert(other.key_id().clone(), other.public_key().clone());
            let ts = r.roles.get_mut(&RoleName::new("timestamp")).unwrap();
            let old = std::mem::replace(&mut ts.keyids, vec![other.key_id().clone()]);
            for id in old {
                r.keys.remove(&id);
            }
        },
        &[f.root_key.as_ref()],
    );
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    let message = answer.error().1;
    assert!(message.contains("role `timestamp`"), "{message}");
    assert_eq!(f.published_state(), before);
}

#[actix_web::test]
async fn bad_bodies_and_non_admin_tokens_are_refused() {
    let f = Fixture::new();
    let app = app!(f);
    f.publisher
        .apply(
            "test",
            Change::CreateNamespace {
                entry: serde_json::from_value(json!({"name": "a", "scopes": ["r.io/a/**"]}))
                    .unwrap(),
                threshold: NonZeroU32::MIN,
                allow_overlap: false,
            },
            NOW,
        )
        .unwrap();
    let tokens = [f.maintainer("a"), f.ci("a")];
    let before = f.published_state();
    let body = f.next_root_signed();
    for token in tokens {
        let answer = post_root!(app, &token, &body);
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    }
    for bad in [
        json!({}),
        json!({"signatures": [], "signed": {"_type": "timestamp"}}),
        json!([1, 2]),
    ] {
        let answer = post_root!(app, &f.admin, &bad);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {answer:?}");
        let _ = answer.error();
    }
    // Expired.
    let body = f.next_root(
        |r| r.expires = keyshare_policy::datetime::Expires::new(NOW - time::Duration::days(1)),
        &[f.root_key.as_ref()],
    );
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert!(answer.error().1.contains("expired"), "{answer:?}");
    assert_eq!(f.published_state(), before);
}

#[test]
fn a_submitted_root_survives_a_restart_and_is_audited() {
    use keyshare_policy::repo::Options;
    use keyshare_policy::sign::{sign, to_bytes};
    use keyshare_server::publisher::{OnlineKeys, Publisher};
    use keyshare_server::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keyshare.db");
    let keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let old = signer();
    let publisher = Publisher::init(
        Store::open(&db).unwrap(),
        keys.clone(),
        std::slice::from_ref(&old),
        1,
        Options::default(),
        NOW,
    )
    .unwrap();
    let v1: keyshare_policy::metadata::Signed<Root> =
        serde_json::from_slice(&publisher.file("metadata/1.root.json").unwrap().bytes).unwrap();
    let new = signer();
    let mut root = v1.signed.clone();
    root.version = 2;
    set_root_keys(&mut root, std::slice::from_ref(&new), 1);
    let bytes = to_bytes(&sign(root, &[old.as_ref(), new.as_ref()]).unwrap()).unwrap();
    let applied = publisher.submit_root("token:test", &bytes, NOW).unwrap();
    assert!(applied.files.contains(&"metadata/2.root.json".to_owned()));
    // Submitting the same root twice is a version conflict.
    let again = publisher
        .submit_root("token:test", &bytes, NOW)
        .unwrap_err();
    assert_eq!(ApiError::from(again).status().as_u16(), 409);
    drop(publisher);

    let reopened = Publisher::open(Store::open(&db).unwrap(), keys, Options::default()).unwrap();
    let v2 = reopened.file("metadata/2.root.json").unwrap();
    assert_eq!(&*v2.bytes, &bytes[..]);
    let audit = reopened.read(|s| s.audit_records(0, 100)).unwrap();
    reopened.read(|s| s.verify_audit_chain()).unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action, "root.rotate");
    assert_eq!(last.actor, "token:test");
}

#[test]
fn a_replaced_online_targets_key_is_taken_into_use_by_the_new_root() {
    use keyshare_policy::repo::Options;
    use keyshare_policy::sign::{sign, to_bytes};
    use keyshare_server::publisher::{OnlineKeys, Publisher};
    use keyshare_server::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keyshare.db");
    let mut keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let root_key = signer();
    let publisher = Publisher::init(
        Store::open(&db).unwrap(),
        keys.clone(),
        std::slice::from_ref(&root_key),
        1,
        Options::default(),
        NOW,
    )
    .unwrap();
    let v1_bytes = publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();
    publisher
        .apply(
            "token:test",
            Change::CreateNamespace {
                entry: keyshare_policy::trust::NamespaceEntry {
                    name: keyshare_policy::trust::NamespaceName::parse("team-a").unwrap(),
                    scopes: vec![
                        keyshare_policy::pattern::ArtifactPattern::parse("r.io/a/**").unwrap(),
                    ],
                    maintainers: vec![],
                },
                threshold: NonZeroU32::MIN,
                allow_overlap: false,
            },
            NOW,
        )
        .unwrap();
    drop(publisher);

    // The targets key is compromised: the operator restarts the server with
    // a new one, and the keyholders list it in root v2.
    let old_targets = keys.targets.clone();
    keys.targets = signer();
    let publisher =
        Publisher::open(Store::open(&db).unwrap(), keys.clone(), Options::default()).unwrap();
    let v1: keyshare_policy::metadata::Signed<Root> = serde_json::from_slice(&v1_bytes).unwrap();
    let mut root = v1.signed.clone();
    root.version = 2;
    root.keys.remove(old_targets.key_id());
    root.keys.insert(
        keys.targets.key_id().clone(),
        keys.targets.public_key().clone(),
    );
    root.roles
        .get_mut(&RoleName::new("targets"))
        .unwrap()
        .keyids = vec![keys.targets.key_id().clone()];
    let bytes = to_bytes(&sign(root, &[root_key.as_ref()]).unwrap()).unwrap();
    let applied = publisher.submit_root("token:test", &bytes, NOW).unwrap();
    assert!(
        applied.files.iter().any(|f| f.ends_with(".targets.json")),
        "targets re-signed: {:?}",
        applied.files
    );
    assert_eq!(
        applied
            .files
            .iter()
            .filter(|f| f.contains(".bins-"))
            .count(),
        256,
        "every bin re-signed with the new key: {:?}",
        applied.files
    );

    // A client that pinned v1 follows and verifies the new targets.
    let mut updater = Updater::new(&v1_bytes, NOW, Config::default()).unwrap();
    updater
        .refresh_with(|r| {
            if r.source() == Source::Local {
                return Response::NotFound;
            }
            let path = format!("metadata/{}", r.file_name());
            Response::from(publisher.file(&path).map(|c| c.bytes.to_vec()))
        })
        .unwrap();
    assert_eq!(updater.trusted().root().version, 2);
    assert!(updater.trusted().targets("targets").is_some());
    // ... and through the re-signed bin to the namespace's document.
    let found = updater
        .find_target_with("namespaces/team-a/trust.json", |r| {
            let path = format!("metadata/{}", r.file_name());
            Response::from(publisher.file(&path).map(|c| c.bytes.to_vec()))
        })
        .unwrap();
    assert!(matches!(found, Lookup::Found { .. }), "{found:?}");
    drop(publisher);
    Publisher::open(Store::open(&db).unwrap(), keys, Options::default()).unwrap();
}

#[actix_web::test]
async fn tuf_thresholds_count_key_ids_a_root_listing_one_key_under_two_ids_is_refused() {
    // Root v2 lists one new key twice, under two ids, with threshold 2, and
    // carries a signature under each id: one key cannot meet a threshold of two.
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let twin = key.with_key_id(keyshare_policy::metadata::KeyId::new("the-same-key-again"));
    let keys: [SharedSigner; 2] = [Arc::new(key), Arc::new(twin)];
    let body = f.next_root(
        |r| set_root_keys(r, &keys, 2),
        &[f.root_key.as_ref(), keys[0].as_ref(), keys[1].as_ref()],
    );
    let answer = post_root!(app, &f.admin, &body);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    let message = answer.error().1;
    assert!(message.contains("its own threshold"), "{message}");
    assert!(message.contains("1 valid signature"), "{message}");
    assert_eq!(f.published_state(), before);
    assert!(f.publisher.file("metadata/2.root.json").is_none());
}

#[actix_web::test]
async fn a_submitted_root_is_served_as_the_bytes_that_were_posted() {
    let f = Fixture::new();
    let app = app!(f);
    // As `keyshare root merge` writes it: indented, with a final newline.
    let mut file = serde_json::to_vec_pretty(&f.next_root_signed()).unwrap();
    file.push(b'\n');
    let post = request(Method::POST, "/api/v1/root", Some(&f.admin), None)
        .insert_header(("Content-Type", "application/json"))
        .set_payload(file.clone())
        .to_request();
    let answer = send(&app, post).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let served = send(
        &app,
        request(Method::GET, "/metadata/2.root.json", None, None).to_request(),
    )
    .await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body, file);
    assert_eq!(
        &f.publisher.file("metadata/2.root.json").unwrap().bytes[..],
        &file[..]
    );
}
