//! `keyshare-server init --root FILE`: a repository started from a root
//! version 1 made in the offline ceremony. The root must meet its own
//! threshold and list the server's online keys, which must already exist;
//! no root key is ever written on the server, and a refused init leaves
//! the data directory as it found it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use keyshare_policy::client::{Config, Response, Source, Updater};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{Root, Signed};
use keyshare_policy::repo::{build_root, RoleSpec, SharedSigner};
use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, Signer};
use keyshare_server::config::{Config as ServerConfig, Flags};

fn signer() -> Arc<InMemorySigner> {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap())
}

/// A data directory whose `keyshare.toml` names three online key files made
/// beforehand (as an operator would for the ceremony); returns the keys.
fn prepared_dir() -> (tempfile::TempDir, PathBuf, [SharedSigner; 3]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(dir.join("online")).unwrap();
    let keys = [signer(), signer(), signer()];
    let mut toml = String::from("[keys]\n");
    for (role, key) in ["targets", "snapshot", "timestamp"].iter().zip(&keys) {
        let path = dir.join("online").join(format!("{role}.pem"));
        std::fs::write(&path, key.to_pkcs8_pem().unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        toml.push_str(&format!("{role} = \"file:online/{role}.pem\"\n"));
    }
    std::fs::write(dir.join("keyshare.toml"), toml).unwrap();
    let [a, b, c] = keys;
    (tmp, dir, [a, b, c])
}

/// Root v1 with a 2-of-3 root role and `online` for targets, snapshot and
/// timestamp, signed by `by` of the root keys.
fn ceremony_root(online: &[SharedSigner; 3], root_keys: &[SharedSigner], by: usize) -> Vec<u8> {
    let root_spec = RoleSpec::from_signers(root_keys, 2).unwrap();
    let specs: Vec<RoleSpec> = online
        .iter()
        .map(|k| RoleSpec::from_signers(std::slice::from_ref(k), 1).unwrap())
        .collect();
    let root = build_root(
        1,
        OffsetDateTime::now_utc() + Duration::days(365),
        [
            ("root", &root_spec),
            ("targets", &specs[0]),
            ("snapshot", &specs[1]),
            ("timestamp", &specs[2]),
        ],
    )
    .unwrap();
    let signers: Vec<&dyn Signer> = root_keys
        .iter()
        .take(by)
        .map(|k| k.as_ref() as &dyn Signer)
        .collect();
    to_bytes(&sign(root, &signers).unwrap()).unwrap()
}

fn init(dir: &Path, root: &Path) -> Result<String, String> {
    let mut out = Vec::new();
    keyshare_server::commands::init(dir, Some(root), &mut out)
        .map(|()| String::from_utf8(out).unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn a_ceremony_root_starts_the_repository_and_no_root_key_is_stored() {
    let (tmp, dir, online) = prepared_dir();
    let root_keys: Vec<SharedSigner> = (0..3).map(|_| signer() as SharedSigner).collect();
    let root = ceremony_root(&online, &root_keys, 2);
    let root_path = tmp.path().join("1.root.json");
    std::fs::write(&root_path, &root).unwrap();

    let out = init(&dir, &root_path).unwrap();
    let sha = keyshare_policy::hash::sha256_hex(&root);
    assert!(out.contains(&format!("root sha256: {sha}")), "{out}");
    assert!(
        !dir.join("keys/root.pem").exists(),
        "no root key on the server"
    );

    // The server publishes under the ceremony root: a client that pinned
    // that very file refreshes.
    let config = ServerConfig::load(&dir, &Flags::default()).unwrap();
    let online = keyshare_server::keys::load_online(&config.keys, &dir).unwrap();
    let store = keyshare_server::store::Store::open(dir.join("keyshare.db")).unwrap();
    let publisher =
        keyshare_server::publisher::Publisher::open(store, online, config.repo_options()).unwrap();
    assert_eq!(
        publisher
            .file("metadata/1.root.json")
            .unwrap()
            .bytes
            .as_ref(),
        &root[..]
    );
    let mut updater = Updater::new(&root, OffsetDateTime::now_utc(), Config::default()).unwrap();
    updater
        .refresh_with(|r| {
            if r.source() == Source::Local {
                return Response::NotFound;
            }
            Response::from(
                publisher
                    .file(&format!("metadata/{}", r.file_name()))
                    .map(|c| c.bytes.to_vec()),
            )
        })
        .unwrap();
    assert!(updater.trusted().targets("targets").is_some());
}

#[test]
fn roots_the_server_cannot_publish_under_are_refused_and_nothing_is_left() {
    let (tmp, dir, online) = prepared_dir();
    let root_keys: Vec<SharedSigner> = (0..3).map(|_| signer() as SharedSigner).collect();
    let write = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let before: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    // Signed by one key of a 2-of-3 root role.
    let e = init(
        &dir,
        &write("one.json", &ceremony_root(&online, &root_keys, 1)),
    )
    .unwrap_err();
    assert!(e.contains("does not meet its own threshold"), "{e}");

    // Lists another timestamp key than the server's.
    let other = [
        online[0].clone(),
        online[1].clone(),
        signer() as SharedSigner,
    ];
    let e = init(
        &dir,
        &write("other.json", &ceremony_root(&other, &root_keys, 2)),
    )
    .unwrap_err();
    assert!(
        e.contains("does not list the server's online timestamp key"),
        "{e}"
    );

    // Not a root at all.
    let e = init(&dir, &write("junk.json", b"{\"signed\": 1}")).unwrap_err();
    assert!(e.contains("root"), "{e}");

    let after: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "{after:?}");
    assert!(!dir.join("keyshare.db").exists());
    assert!(!dir.join("keys").exists());
}

#[test]
fn online_keys_must_exist_before_a_ceremony_root() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (_, _, online) = prepared_dir();
    let root_keys: Vec<SharedSigner> = (0..3).map(|_| signer() as SharedSigner).collect();
    let root_path = tmp.path().join("1.root.json");
    std::fs::write(&root_path, ceremony_root(&online, &root_keys, 2)).unwrap();
    let e = init(&dir, &root_path).unwrap_err();
    assert!(e.contains("keys.targets must name an existing key"), "{e}");
    assert!(!dir.join("keyshare.db").exists());
}

/// A signed root as `keyshare root sign` and `merge` write it: indented
/// JSON with a final newline, not the compact form the server signs its
/// own metadata in.
fn ceremony_file(root: &Signed<Root>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(root).unwrap();
    bytes.push(b'\n');
    bytes
}

#[test]
fn a_ceremony_root_and_a_submitted_root_keep_their_file_bytes_in_store_publish_and_bundle() {
    let (tmp, dir, online) = prepared_dir();
    let root_keys: Vec<SharedSigner> = (0..3).map(|_| signer() as SharedSigner).collect();
    let compact = ceremony_root(&online, &root_keys, 2);
    let signed_v1: Signed<Root> = serde_json::from_slice(&compact).unwrap();
    let v1 = ceremony_file(&signed_v1);
    assert_ne!(v1, compact, "the ceremony file is not in the server's form");
    let v1_path = tmp.path().join("1.root.json");
    std::fs::write(&v1_path, &v1).unwrap();

    // `init` prints the SHA-256 of the file itself.
    let out = init(&dir, &v1_path).unwrap();
    let sha = keyshare_policy::hash::sha256_hex(&v1);
    assert!(out.contains(&format!("root sha256: {sha}")), "{out}");

    // Root v2 from the same ceremony, submitted as the file's bytes.
    let mut next = signed_v1.signed.clone();
    next.version = 2;
    let refs: Vec<&dyn Signer> = root_keys
        .iter()
        .map(|k| k.as_ref() as &dyn Signer)
        .collect();
    let v2 = ceremony_file(&sign(next, &refs).unwrap());
    let open = || {
        let config = ServerConfig::load(&dir, &Flags::default()).unwrap();
        let online = keyshare_server::keys::load_online(&config.keys, &dir).unwrap();
        let store = keyshare_server::store::Store::open(dir.join("keyshare.db")).unwrap();
        keyshare_server::publisher::Publisher::open(store, online, config.repo_options()).unwrap()
    };
    let now = OffsetDateTime::now_utc();
    {
        let publisher = open();
        publisher.submit_root("test", &v2, now).unwrap();
        assert_eq!(
            &publisher.file("metadata/1.root.json").unwrap().bytes[..],
            &v1[..]
        );
        assert_eq!(
            &publisher.file("metadata/2.root.json").unwrap().bytes[..],
            &v2[..]
        );
    }

    // After a restart (the repository restored from the store), in the
    // read API's files, in `publish --to` and in an air-gap bundle.
    let publisher = open();
    for (path, bytes) in [("metadata/1.root.json", &v1), ("metadata/2.root.json", &v2)] {
        assert_eq!(
            &publisher.file(path).unwrap().bytes[..],
            &bytes[..],
            "{path}"
        );
        let file = publisher
            .current_files()
            .unwrap()
            .into_iter()
            .find(|f| f.path == path)
            .unwrap();
        assert_eq!(&file.bytes[..], &bytes[..], "{path} in current_files");
    }
    let mut bundle = Vec::new();
    keyshare_server::airgap::export(
        &publisher,
        "test",
        Duration::days(7),
        now,
        &mut bundle,
        &mut |_, _| {},
    )
    .unwrap();
    drop(publisher);
    let published = tmp.path().join("published");
    keyshare_server::commands::publish(&dir, &published).unwrap();
    assert_eq!(
        std::fs::read(published.join("metadata/1.root.json")).unwrap(),
        v1
    );
    assert_eq!(
        std::fs::read(published.join("metadata/2.root.json")).unwrap(),
        v2
    );

    // The bundle opens against the ceremony file as the pinned root, and
    // carries both files as they are.
    let opened = keyshare_airgap::open_bundle(
        Arc::new(bundle),
        keyshare_airgap::Anchor {
            pinned_root: &v1,
            previous: None,
        },
        now,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(opened.file("metadata/1.root.json").unwrap().unwrap(), v1);
    assert_eq!(opened.file("metadata/2.root.json").unwrap().unwrap(), v2);

    // A TUF client that pinned the ceremony's v1 file follows to v2, and so
    // does one that pinned the v2 file.
    let publisher = open();
    for pinned in [&v1, &v2] {
        let mut updater = Updater::new(pinned, now, Config::default()).unwrap();
        updater
            .refresh_with(|r| {
                if r.source() == Source::Local {
                    return Response::NotFound;
                }
                Response::from(
                    publisher
                        .file(&format!("metadata/{}", r.file_name()))
                        .map(|c| c.bytes.to_vec()),
                )
            })
            .unwrap();
        assert_eq!(updater.trusted().root().version, 2);
    }
}
