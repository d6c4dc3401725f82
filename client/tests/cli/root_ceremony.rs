//! The root ceremony with `keyshare root ...`, every command in its own
//! process: keys in SoftHSM2 tokens (one token per keyholder), an unsigned
//! root signed on "separate machines" and merged, rotation, and recovery
//! from a compromised timestamp key. And the ceremony's files on every
//! path after it, as processes (`keyshare-server init --root`, `serve`,
//! `export`, a replica's `import`, clients and a laptop pinned to the
//! files' SHA-256): published byte for byte.
//!
//! Needs `/usr/lib/softhsm/libsofthsm2.so` and `softhsm2-util` (installed by
//! `scripts/test`); without them the tests fail, they do not skip. The
//! `keyshare-server` binary is built by `cargo build -p keyshare-server`
//! from the test (a no-op when it is up to date), since cargo gives an
//! integration test only its own crate's binaries.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use keyshare_hsm::{KeyFileSigner, PinSource};
use keyshare_policy::client::{CacheOp, Response, Source, Updater};
use keyshare_policy::metadata::{Envelope, RoleName, Root, Signed, Timestamp};
use keyshare_policy::repo::{Options, Repository, SharedSigner};
use keyshare_policy::sign::{sign, to_bytes, Signer};
use keyshare_policy::verify::verify_root_self;
use keyshare_testkit::python;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";

/// A temporary SoftHSM2 configuration with one token per keyholder.
struct Hsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    pin_file: PathBuf,
}

impl Hsm {
    fn new(tokens: &[&str]) -> Self {
        assert!(
            Path::new(MODULE).is_file(),
            "{MODULE} is missing: run scripts/test (it installs softhsm2) or \
             `apt-get install softhsm2`"
        );
        let dir = tempfile::tempdir().unwrap();
        let token_dir = dir.path().join("tokens");
        std::fs::create_dir(&token_dir).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                token_dir.display()
            ),
        )
        .unwrap();
        for label in tokens {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--pin",
                    PIN,
                    "--so-pin",
                    SO_PIN,
                ])
                .output()
                .expect("softhsm2-util is missing: run scripts/test or `apt-get install softhsm2`");
            assert!(
                out.status.success(),
                "softhsm2-util --init-token {label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        Self {
            dir,
            conf,
            pin_file,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn token_uri(token: &str) -> String {
        format!("pkcs11:token={token}?module-path={MODULE}")
    }

    /// Runs `keyshare` with this HSM's configuration.
    fn keyshare(&self, args: &[&str]) -> Output {
        keyshare_with(args, &[("SOFTHSM2_CONF", self.conf.as_os_str())])
    }

    /// Generates a key in `token`; returns its URI and writes its public key
    /// entry to `<label>-<token>.pub.json`.
    fn generate(&self, token: &str, label: &str) -> (String, PathBuf) {
        let public = self.path(&format!("{label}-{token}.pub.json"));
        let out = self.keyshare(&[
            "root",
            "generate-key",
            &Self::token_uri(token),
            "--scheme",
            "ecdsa",
            "--label",
            label,
            "--pin-file",
            self.pin_file.to_str().unwrap(),
            "--public-out",
            public.to_str().unwrap(),
        ]);
        let v: Value = serde_json::from_slice(&ok(&out)).unwrap();
        assert!(v["keyid"].as_str().unwrap().len() == 64, "{v}");
        assert_eq!(v["key"]["scheme"], "ecdsa-sha2-nistp256");
        (v["uri"].as_str().unwrap().to_owned(), public)
    }

    /// `root sign` in its own process with the given key URIs.
    fn sign(&self, root: &Path, uris: &[&str], out: &Path) {
        let mut args = vec!["root", "sign", root.to_str().unwrap()];
        for u in uris {
            args.push("--key");
            args.push(u);
        }
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(["--pin-file", self.pin_file.to_str().unwrap()]);
        ok(&self.keyshare(&args));
    }
}

fn keyshare_with(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyshare"));
    cmd.args(args)
        .env_remove("KEYSHARE_PIN")
        .env_remove("KEYSHARE_PASSPHRASE")
        .env_remove("KEYSHARE_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn keyshare(args: &[&str]) -> Output {
    keyshare_with(args, &[])
}

fn ok(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "keyshare failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

fn fails(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one error line expected: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_root(path: &Path) -> Signed<Root> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Generates an unencrypted key file with the CLI.
fn key_file(dir: &Path, name: &str, scheme: &str) -> PathBuf {
    let path = dir.join(name);
    ok(&keyshare(&[
        "root",
        "generate-key-file",
        s(&path),
        "--scheme",
        scheme,
        "--no-passphrase",
    ]));
    path
}

/// Opens a key file; `passphrase.txt` next to it is used if it is encrypted.
fn open_key(path: &Path) -> SharedSigner {
    let pass = PinSource::File(path.parent().unwrap().join("passphrase.txt"));
    Arc::new(KeyFileSigner::open(path, Some(&pass)).unwrap())
}

fn online_repo(root: &Path, dir: &Path) -> Repository {
    let mut signers = BTreeMap::new();
    for role in ["targets", "snapshot", "timestamp"] {
        signers.insert(
            RoleName::new(role),
            vec![open_key(&dir.join(format!("{role}.pem")))],
        );
    }
    Repository::new(
        &std::fs::read(root).unwrap(),
        signers,
        Options::default(),
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}

#[test]
fn two_of_three_root_in_three_tokens_signed_merged_verified_and_rotated() {
    let hsm = Hsm::new(&["holder-1", "holder-2", "holder-3"]);
    let dir = hsm.dir.path();

    // Each keyholder generates a root key in their own token.
    let keys: Vec<(String, PathBuf)> = (1..=3)
        .map(|i| hsm.generate(&format!("holder-{i}"), "root-1"))
        .collect();
    // Online keys: key files (the targets one encrypted with a passphrase).
    let pass = hsm.path("passphrase.txt");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let targets = hsm.path("targets.pem");
    let out = keyshare(&[
        "root",
        "generate-key-file",
        s(&targets),
        "--scheme",
        "ed25519",
        "--passphrase-file",
        s(&pass),
        "--public-out",
        s(&hsm.path("targets.pub.json")),
    ]);
    ok(&out);
    assert!(std::fs::read_to_string(&targets)
        .unwrap()
        .contains("ENCRYPTED"));
    key_file(dir, "snapshot.pem", "ecdsa");
    key_file(dir, "timestamp.pem", "ed25519");

    // Create the unsigned root: root keys by public key files, online keys by
    // key file reference (the public key is read from the private key file).
    let unsigned = hsm.path("unsigned-1.json");
    let mut args = vec!["root", "create", "--out", s(&unsigned)];
    for (_, public) in &keys {
        args.extend(["--root-key", s(public)]);
    }
    let targets_ref = format!("file:{}", hsm.path("targets.pem").display());
    let snapshot_ref = hsm.path("snapshot.pem");
    let timestamp_ref = hsm.path("timestamp.pem");
    args.extend([
        "--root-threshold",
        "2",
        "--targets-key",
        &targets_ref,
        "--snapshot-key",
        s(&snapshot_ref),
        "--timestamp-key",
        s(&timestamp_ref),
        "--passphrase-file",
        s(&pass),
        "--expires",
        "365d",
    ]);
    ok(&keyshare(&args));
    let v: Value = serde_json::from_slice(&std::fs::read(&unsigned).unwrap()).unwrap();
    assert_eq!(v["signatures"], serde_json::json!([]));
    assert_eq!(v["signed"]["version"], 1);
    assert_eq!(v["signed"]["roles"]["root"]["threshold"], 2);

    // Three keyholders sign, each in a separate process with their own token.
    let signed: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let out = hsm.path(&format!("signed-1-by-{i}.json"));
            hsm.sign(&unsigned, &[&keys[i - 1].0], &out);
            assert_eq!(read_root(&out).signatures.len(), 1);
            out
        })
        .collect();

    // Merge, verify (CLI and library).
    let root1 = hsm.path("1.root.json");
    ok(&keyshare(&[
        "root",
        "merge",
        s(&signed[0]),
        s(&signed[1]),
        s(&signed[2]),
        s(&signed[0]),
        "--out",
        s(&root1),
    ]));
    assert_eq!(read_root(&root1).signatures.len(), 3);
    let out = String::from_utf8(ok(&keyshare(&["root", "verify", s(&root1)]))).unwrap();
    assert!(out.contains("v1 ok, root 2 of 3, 3 signature(s)"), "{out}");
    let bytes = std::fs::read(&root1).unwrap();
    verify_root_self(Envelope::<Root>::parse("root", &bytes).unwrap()).unwrap();

    // One signature is not enough.
    let err = fails(&keyshare(&["root", "verify", s(&signed[1])]));
    assert!(err.contains("signed-1-by-2.json"), "{err}");
    assert!(err.contains("threshold not met"), "{err}");
    assert!(verify_root_self(
        Envelope::<Root>::parse("root", &std::fs::read(&signed[1]).unwrap()).unwrap()
    )
    .is_err());

    // Two of three, merged from two files, is.
    let two = hsm.path("two.json");
    ok(&keyshare(&[
        "root",
        "merge",
        s(&signed[0]),
        s(&signed[2]),
        "--out",
        s(&two),
    ]));
    ok(&keyshare(&["root", "verify", s(&two)]));

    // Merging a different root is refused, naming the file.
    let other = hsm.path("other-unsigned.json");
    let mut other_args = args.clone();
    other_args[3] = s(&other);
    *other_args.last_mut().unwrap() = "30d";
    ok(&keyshare(&other_args));
    let err = fails(&keyshare(&[
        "root",
        "merge",
        s(&signed[0]),
        s(&other),
        "--out",
        s(&hsm.path("bad-merge.json")),
    ]));
    assert!(err.contains("other-unsigned.json"), "{err}");
    assert!(err.contains("differs"), "{err}");

    // Rotation: every keyholder makes a new key; v2 replaces the root keys.
    let new_keys: Vec<(String, PathBuf)> = (1..=3)
        .map(|i| hsm.generate(&format!("holder-{i}"), "root-2"))
        .collect();
    let unsigned2 = hsm.path("unsigned-2.json");
    let mut rot = vec![
        "root",
        "rotate",
        "--current",
        s(&root1),
        "--out",
        s(&unsigned2),
    ];
    for (_, public) in &new_keys {
        rot.extend(["--root-key", s(public)]);
    }
    rot.extend(["--root-threshold", "2"]);
    ok(&keyshare(&rot));
    let r2 = read_root(&unsigned2);
    assert_eq!(r2.signed.version, 2);
    assert!(r2.signatures.is_empty());
    assert_eq!(
        r2.signed.keys.len(),
        6,
        "old root keys dropped, 3 new + 3 online"
    );

    // Holders 1 and 2 sign with their old and new keys, in separate processes.
    let s1 = hsm.path("signed-2-by-1.json");
    let s2 = hsm.path("signed-2-by-2.json");
    hsm.sign(&unsigned2, &[&keys[0].0, &new_keys[0].0], &s1);
    hsm.sign(&unsigned2, &[&keys[1].0, &new_keys[1].0], &s2);
    let root2 = hsm.path("2.root.json");
    ok(&keyshare(&[
        "root",
        "merge",
        s(&s1),
        s(&s2),
        "--out",
        s(&root2),
    ]));
    let out = String::from_utf8(ok(&keyshare(&["root", "verify", s(&root1), s(&root2)]))).unwrap();
    assert!(out.contains("root chain of 2 file(s) verified"), "{out}");
    let mut repo = online_repo(&root1, dir);
    repo.add_root(&std::fs::read(&root2).unwrap()).unwrap();
    repo.commit(OffsetDateTime::now_utc()).unwrap();

    // Signed only by the new keys: refused by `root verify` and `add_root`.
    let only_new = hsm.path("only-new-2.json");
    let n1 = hsm.path("only-new-2-by-1.json");
    hsm.sign(&unsigned2, &[&new_keys[0].0], &n1);
    hsm.sign(&n1, &[&new_keys[1].0], &only_new);
    ok(&keyshare(&["root", "verify", s(&only_new)]));
    let err = fails(&keyshare(&["root", "verify", s(&root1), s(&only_new)]));
    assert!(err.contains("only-new-2.json"), "{err}");
    assert!(err.contains("old root (v1)"), "{err}");
    let mut repo = online_repo(&root1, dir);
    assert!(repo.add_root(&std::fs::read(&only_new).unwrap()).is_err());

    // Signed only by the old keys: the new threshold is not met.
    let only_old = hsm.path("only-old-2.json");
    hsm.sign(&unsigned2, &[&keys[0].0], &n1);
    hsm.sign(&n1, &[&keys[2].0], &only_old);
    let err = fails(&keyshare(&["root", "verify", s(&root1), s(&only_old)]));
    assert!(err.contains("new root (v2)"), "{err}");

    // Version gap.
    let err = fails(&keyshare(&["root", "verify", s(&root1), s(&root1)]));
    assert!(err.contains("does not follow version 1"), "{err}");
}

/// Serves `files` (repository paths without `metadata/`) and a local cache.
fn refresh(
    updater: &mut Updater,
    cache: &mut BTreeMap<String, Vec<u8>>,
    files: &BTreeMap<String, Vec<u8>>,
) -> keyshare_policy::error::Result<()> {
    let snapshot = cache.clone();
    let result = updater.refresh_with(|r| {
        let name = r.file_name();
        let from = if r.source() == Source::Local {
            &snapshot
        } else {
            files
        };
        Response::from(from.get(&name).cloned())
    });
    for op in updater.take_cache_ops() {
        match op {
            CacheOp::Store { name, bytes } => {
                cache.insert(name, bytes);
            }
            CacheOp::Delete { name } => {
                cache.remove(&name);
            }
        }
    }
    result
}

fn publish(files: &mut BTreeMap<String, Vec<u8>>, new: Vec<keyshare_policy::repo::File>) {
    for f in new {
        if let Some(name) = f.path.strip_prefix("metadata/") {
            files.insert(name.to_owned(), f.bytes.to_vec());
        }
    }
}

#[test]
fn compromised_timestamp_key_is_recovered_by_a_root_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pass = d.join("passphrase.txt");
    std::fs::write(&pass, "offline secret\n").unwrap();
    // Root keys: encrypted key files, made and used by the CLI.
    let root_keys: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let p = d.join(format!("root-{i}.pem"));
            ok(&keyshare(&[
                "root",
                "generate-key-file",
                s(&p),
                "--scheme",
                "ecdsa",
                "--passphrase-file",
                s(&pass),
            ]));
            p
        })
        .collect();
    key_file(d, "targets.pem", "ed25519");
    key_file(d, "snapshot.pem", "ed25519");
    key_file(d, "timestamp.pem", "ed25519");
    let unsigned = d.join("unsigned-1.json");
    ok(&keyshare(&[
        "root",
        "create",
        "--out",
        s(&unsigned),
        "--root-key",
        s(&root_keys[0]),
        "--root-key",
        s(&root_keys[1]),
        "--root-key",
        s(&root_keys[2]),
        "--root-threshold",
        "2",
        "--targets-key",
        s(&d.join("targets.pem")),
        "--snapshot-key",
        s(&d.join("snapshot.pem")),
        "--timestamp-key",
        s(&d.join("timestamp.pem")),
        "--passphrase-file",
        s(&pass),
    ]));
    let root1 = d.join("1.root.json");
    ok(&keyshare(&[
        "root",
        "sign",
        s(&unsigned),
        "--key",
        &format!("file:{}", root_keys[0].display()),
        "--key",
        s(&root_keys[1]),
        "--passphrase-file",
        s(&pass),
        "--out",
        s(&root1),
    ]));

    // The online repository and a client that pinned root v1.
    let now = OffsetDateTime::now_utc();
    let mut repo = online_repo(&root1, d);
    repo.set_target("targets", "org/revocations.json", b"{}", None)
        .unwrap();
    let mut files = BTreeMap::new();
    publish(&mut files, repo.commit(now).unwrap());
    let mut cache = BTreeMap::from([("root.json".to_owned(), std::fs::read(&root1).unwrap())]);
    let mut updater = Updater::new(&cache["root.json"], now, Default::default()).unwrap();
    refresh(&mut updater, &mut cache, &files).unwrap();

    // The attacker holds the timestamp key and fast-forwards the client to
    // timestamp version 1000.
    let old_ts = open_key(&d.join("timestamp.pem"));
    let mut evil: Timestamp = repo.timestamp().unwrap().signed.clone();
    evil.version = 1000;
    let evil = to_bytes(&sign(evil, &[old_ts.as_ref() as &dyn Signer]).unwrap()).unwrap();
    let mut attacked = files.clone();
    attacked.insert("timestamp.json".into(), evil.clone());
    let mut updater = Updater::new(&cache["root.json"], now, Default::default()).unwrap();
    refresh(&mut updater, &mut cache, &attacked).unwrap();
    assert_eq!(cache["timestamp.json"], evil);

    // The real repository, even re-signed, is now a "rollback" to the client.
    publish(&mut files, {
        repo.set_target("targets", "org/peers.json", b"{}", None)
            .unwrap();
        repo.commit(now).unwrap()
    });
    let mut updater = Updater::new(&cache["root.json"], now, Default::default()).unwrap();
    assert!(refresh(&mut updater, &mut cache, &files).is_err());

    // Recovery: the keyholders rotate the timestamp key in root v2.
    key_file(d, "timestamp-2.pem", "ed25519");
    let unsigned2 = d.join("unsigned-2.json");
    ok(&keyshare(&[
        "root",
        "rotate",
        "--current",
        s(&root1),
        "--out",
        s(&unsigned2),
        "--timestamp-key",
        s(&d.join("timestamp-2.pem")),
    ]));
    let root2 = d.join("2.root.json");
    ok(&keyshare(&[
        "root",
        "sign",
        s(&unsigned2),
        "--key",
        s(&root_keys[1]),
        "--key",
        s(&root_keys[2]),
        "--passphrase-file",
        s(&pass),
        "--out",
        s(&root2),
    ]));
    ok(&keyshare(&["root", "verify", s(&root1), s(&root2)]));
    repo.add_root(&std::fs::read(&root2).unwrap()).unwrap();
    repo.set_signers("timestamp", vec![open_key(&d.join("timestamp-2.pem"))]);
    publish(&mut files, repo.commit(now).unwrap());
    assert!(files.contains_key("2.root.json"));

    // The client follows root v2, drops the attacker's timestamp and
    // accepts the repository's (lower) version.
    let mut updater = Updater::new(&cache["root.json"], now, Default::default()).unwrap();
    refresh(&mut updater, &mut cache, &files).unwrap();
    let ts = updater.trusted().timestamp().unwrap();
    assert!(ts.version < 1000, "timestamp v{}", ts.version);
    assert_eq!(cache["root.json"], files["2.root.json"]);
    assert_eq!(cache["timestamp.json"], files["timestamp.json"]);
    assert_eq!(updater.trusted().root().version, 2);
}

/// A `keyshare-server` HTTP API on a loopback socket, stopped when dropped.
struct Server {
    publisher: Arc<keyshare_server::publisher::Publisher>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: std::sync::mpsc::Receiver<()>,
}

impl Server {
    fn start(
        db: &Path,
        keys: keyshare_server::publisher::OnlineKeys,
        root_keys: &[SharedSigner],
    ) -> Self {
        let store = keyshare_server::store::Store::open(db).unwrap();
        let publisher = Arc::new(
            keyshare_server::publisher::Publisher::init(
                store,
                keys,
                root_keys,
                2,
                Options::default(),
                OffsetDateTime::now_utc(),
            )
            .unwrap(),
        );
        let state = keyshare_server::http::AppState::new(publisher.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            rt.block_on(keyshare_server::http::run(listener, state, shutdown))
                .unwrap();
            let _ = stopped_tx.send(());
        });
        Self {
            publisher,
            url,
            stop: Some(stop),
            stopped,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let _ = self
                .stopped
                .recv_timeout(std::time::Duration::from_secs(20));
        }
    }
}

#[test]
fn rotated_root_is_submitted_to_the_server_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root_keys: Vec<PathBuf> = (1..=3)
        .map(|i| key_file(d, &format!("root-{i}.pem"), "ed25519"))
        .collect();
    let online = |name: &str| open_key(&key_file(d, name, "ed25519"));
    let keys = keyshare_server::publisher::OnlineKeys {
        targets: online("targets.pem"),
        snapshot: online("snapshot.pem"),
        timestamp: online("timestamp.pem"),
        namespaces: online("namespaces.pem"),
    };
    let signers: Vec<SharedSigner> = root_keys.iter().map(|p| open_key(p)).collect();
    let server = Server::start(&d.join("keyshare.db"), keys, &signers);
    let admin = server
        .publisher
        .create_token(
            "test",
            keyshare_server::store::TokenKind::OrgAdmin,
            None,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let token_file = d.join("token");
    std::fs::write(&token_file, admin.secret.expose()).unwrap();
    let root1 = d.join("1.root.json");
    std::fs::write(
        &root1,
        &server.publisher.file("metadata/1.root.json").unwrap().bytes[..],
    )
    .unwrap();
    ok(&keyshare(&["root", "verify", s(&root1)]));

    // Replace root key 3 (lost) with a new one; threshold stays 2.
    let new = key_file(d, "root-4.pem", "ed25519");
    let unsigned = d.join("unsigned-2.json");
    ok(&keyshare(&[
        "root",
        "rotate",
        "--current",
        s(&root1),
        "--out",
        s(&unsigned),
        "--root-key",
        s(&root_keys[0]),
        "--root-key",
        s(&root_keys[1]),
        "--root-key",
        s(&new),
    ]));
    let submit = |file: &Path| {
        keyshare(&[
            "root",
            "submit",
            s(file),
            "--server",
            &server.url,
            "--token-file",
            s(&token_file),
        ])
    };

    // Signed by one old key only: the server refuses it.
    let weak = d.join("weak-2.json");
    ok(&keyshare(&[
        "root",
        "sign",
        s(&unsigned),
        "--key",
        s(&root_keys[0]),
        "--out",
        s(&weak),
    ]));
    let err = fails(&submit(&weak));
    assert!(err.contains("threshold"), "{err}");
    assert!(!err.contains(admin.secret.expose()), "{err}");
    assert!(server.publisher.file("metadata/2.root.json").is_none());

    // Signed by two old keys (which are also two of the new ones): accepted.
    let root2 = d.join("2.root.json");
    ok(&keyshare(&[
        "root",
        "sign",
        s(&unsigned),
        "--key",
        s(&root_keys[0]),
        "--key",
        s(&root_keys[1]),
        "--out",
        s(&root2),
    ]));
    ok(&keyshare(&["root", "verify", s(&root1), s(&root2)]));
    let out: Value = serde_json::from_slice(&ok(&submit(&root2))).unwrap();
    assert_eq!(out["root_version"], 2, "{out}");
    let published = server.publisher.file("metadata/2.root.json").unwrap();
    assert_eq!(
        &published.bytes[..],
        &std::fs::read(&root2).unwrap()[..],
        "published byte for byte"
    );
    // Submitting it again is a version conflict.
    let err = fails(&submit(&root2));
    assert!(err.contains("not the next version"), "{err}");

    // python-tuf, bootstrapped from v1, follows the server to v2.
    let out = Command::new(python())
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../server/tests/interop/updater_against_server.py"),
        )
        .args([&server.url, s(&root1), "org/peers.json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python-tuf: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("versions: root=2 "), "{stdout}");
}

/// The `keyshare-server` binary of this workspace, built (or found up to
/// date) by cargo once per test run: the integration tests of this crate
/// get only its own binaries from cargo, and the path below runs the
/// server as an operator does.
fn server_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        // The same profile as this test's own binaries (target/<profile>/).
        let profile = Path::new(env!("CARGO_BIN_EXE_keyshare"))
            .parent()
            .and_then(Path::file_name)
            .and_then(|p| p.to_str())
            .unwrap()
            .to_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "--message-format=json",
            "-p",
            "keyshare-server",
            "--bin",
            "keyshare-server",
        ]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "cargo build -p keyshare-server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|m| {
                m["reason"] == "compiler-artifact" && m["target"]["name"] == "keyshare-server"
            })
            .and_then(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the keyshare-server executable")
    })
}

/// Runs `keyshare-server ARGS` (KEYSHARE_* of the test's environment removed).
fn keyshare_server(args: &[&str]) -> Output {
    let mut cmd = Command::new(server_bin());
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYSHARE_") {
            cmd.env_remove(&name);
        }
    }
    cmd.output().unwrap()
}

/// `keyshare-server serve` on a loopback port; killed when dropped.
struct Serve {
    child: std::process::Child,
    url: String,
}

impl Serve {
    /// Serves on a free loopback port.
    fn start(data_dir: &Path) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0")
    }

    /// Serves on `listen` (a restart on the same address: clients pinned
    /// the URL).
    fn start_on(data_dir: &Path, listen: &str) -> Self {
        use std::io::BufRead;
        let log = data_dir.with_extension("serve.log");
        let mut cmd = Command::new(server_bin());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KEYSHARE_") {
                cmd.env_remove(&name);
            }
        }
        let mut child = cmd
            .args(["serve", "--data-dir", s(data_dir), "--listen", listen])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Whatever else it prints is read and dropped.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "serve printed {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_owned();
        Self { child, url }
    }

    /// Stops the server as an operator does (SIGTERM, bounded wait), so
    /// the store is free for `export` and `publish`.
    fn stop(mut self) {
        keyshare_testkit::fixture::sigterm_and_wait(
            &mut self.child,
            std::time::Duration::from_secs(30),
            "serve",
        );
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_of(path: &Path) -> String {
    keyshare_policy::hash::sha256_hex(&std::fs::read(path).unwrap())
}

/// The body of `GET url`.
fn http_get(url: &str) -> Vec<u8> {
    let http = keyshare_client::fetch::BlockingClient::new(reqwest::Client::builder()).unwrap();
    let request = http.client().get(url);
    let bytes = http.block_on(async { request.send().await.unwrap().bytes().await.unwrap() });
    bytes.to_vec()
}

/// The one `root sha256: ...` line a `keyshare-server init` printed.
fn printed_root_sha256(out: &Output) -> String {
    String::from_utf8(ok(out))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("root sha256: "))
        .expect("a root sha256 line")
        .to_owned()
}

#[test]
fn a_ceremony_root_is_published_byte_for_byte_on_every_path() {
    let hsm = Hsm::new(&["holder-1", "holder-2", "holder-3"]);
    let dir = hsm.dir.path();

    // The server's online keys exist before the ceremony (key files).
    let data = dir.join("server");
    std::fs::create_dir_all(data.join("online")).unwrap();
    let mut toml = String::from("[keys]\n");
    for role in ["targets", "snapshot", "timestamp"] {
        key_file(&data.join("online"), &format!("{role}.pem"), "ed25519");
        toml.push_str(&format!("{role} = \"file:online/{role}.pem\"\n"));
    }
    std::fs::write(data.join("keyshare.toml"), toml).unwrap();

    // The ceremony: a 2-of-3 root, keys in three SoftHSM2 tokens.
    let keys: Vec<(String, PathBuf)> = (1..=3)
        .map(|i| hsm.generate(&format!("holder-{i}"), "root-1"))
        .collect();
    let unsigned = hsm.path("unsigned-1.json");
    let online = |role: &str| data.join("online").join(format!("{role}.pem"));
    let (t, sn, ts) = (online("targets"), online("snapshot"), online("timestamp"));
    let mut args = vec!["root", "create", "--out", s(&unsigned)];
    for (_, public) in &keys {
        args.extend(["--root-key", s(public)]);
    }
    args.extend([
        "--root-threshold",
        "2",
        "--targets-key",
        s(&t),
        "--snapshot-key",
        s(&sn),
        "--timestamp-key",
        s(&ts),
    ]);
    ok(&keyshare(&args));
    let (by1, by2) = (hsm.path("by-1.json"), hsm.path("by-2.json"));
    hsm.sign(&unsigned, &[&keys[0].0], &by1);
    hsm.sign(&unsigned, &[&keys[1].0], &by2);
    let root1 = hsm.path("1.root.json");
    ok(&keyshare(&[
        "root",
        "merge",
        s(&by1),
        s(&by2),
        "--out",
        s(&root1),
    ]));
    ok(&keyshare(&["root", "verify", s(&root1)]));
    let pin1 = sha256_of(&root1);

    // The server starts from the ceremony file and prints its own hash.
    let out = keyshare_server(&["init", "--data-dir", s(&data), "--root", s(&root1)]);
    assert_eq!(printed_root_sha256(&out), pin1);
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, &token).unwrap();
    let serve = Serve::start(&data);
    let url = serve.url.clone();
    assert_eq!(
        http_get(&format!("{}/metadata/1.root.json", serve.url)),
        std::fs::read(&root1).unwrap()
    );

    // Something to decide on: a namespace with one key.
    let admin = |url: &str, args: &[&str]| {
        let mut all = vec!["admin", "--server", url, "--token-file", s(&token_file)];
        all.extend_from_slice(args);
        ok(&keyshare(&all));
    };
    let release = openssl::pkey::PKey::generate_ed25519().unwrap();
    let release_pem = dir.join("release.pem");
    std::fs::write(&release_pem, release.public_key_to_pem().unwrap()).unwrap();
    admin(
        &serve.url,
        &[
            "namespace",
            "create",
            "team-a",
            "--scope",
            "registry.acme.io/team-a/**",
        ],
    );
    admin(
        &serve.url,
        &[
            "key",
            "add",
            "team-a",
            "--key-file",
            s(&release_pem),
            "--id",
            "release-1",
        ],
    );

    // A client pinned to the SHA-256 of the ceremony file refreshes and decides.
    let client = dir.join("client");
    let verifier = |cache: &Path, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--cache-dir", s(cache)]);
        keyshare(&all)
    };
    let decides = |cache: &Path| {
        let out = verifier(
            cache,
            &[
                "decide",
                "registry.acme.io/team-a/app",
                "--key-id",
                "release-1",
            ],
        );
        let text = String::from_utf8(ok(&out)).unwrap();
        assert!(text.contains("trusted by namespace `team-a`"), "{text}");
    };
    ok(&verifier(
        &client,
        &["init", "--server", &serve.url, "--root-sha256", &pin1],
    ));
    ok(&verifier(&client, &["refresh"]));
    decides(&client);

    // An air-gap bundle, exported with the server stopped.
    serve.stop();
    let bundle = dir.join("site-1.bundle");
    ok(&keyshare_server(&[
        "export",
        "--data-dir",
        s(&data),
        "--out",
        s(&bundle),
    ]));

    // A replica pinned to the ceremony file imports it.
    let replica = dir.join("replica");
    let out = keyshare_server(&[
        "init",
        "--replica",
        "--root",
        s(&root1),
        "--data-dir",
        s(&replica),
    ]);
    assert_eq!(printed_root_sha256(&out), pin1);
    ok(&keyshare_server(&[
        "import",
        s(&bundle),
        "--data-dir",
        s(&replica),
    ]));

    // A lone laptop pinned to the ceremony file refreshes from the bundle.
    let laptop = dir.join("laptop");
    let out = verifier(
        &laptop,
        &[
            "init",
            "--server",
            "https://keyshare.invalid",
            "--root",
            s(&root1),
            "--output",
            "json",
        ],
    );
    let pinned: Value = serde_json::from_slice(&ok(&out)).unwrap();
    assert_eq!(pinned["root_sha256"], pin1.as_str());
    ok(&verifier(
        &laptop,
        &["refresh", "--from-bundle", s(&bundle)],
    ));
    decides(&laptop);

    // The ceremony rotates to root v2 (new keys in the same tokens; holders
    // 1 and 2 sign with old and new), and submits it.
    let new_keys: Vec<(String, PathBuf)> = (1..=3)
        .map(|i| hsm.generate(&format!("holder-{i}"), "root-2"))
        .collect();
    let unsigned2 = hsm.path("unsigned-2.json");
    let mut rot = vec![
        "root",
        "rotate",
        "--current",
        s(&root1),
        "--out",
        s(&unsigned2),
    ];
    for (_, public) in &new_keys {
        rot.extend(["--root-key", s(public)]);
    }
    rot.extend(["--root-threshold", "2"]);
    ok(&keyshare(&rot));
    let (by1, by2) = (hsm.path("by-1-v2.json"), hsm.path("by-2-v2.json"));
    hsm.sign(&unsigned2, &[&keys[0].0, &new_keys[0].0], &by1);
    hsm.sign(&unsigned2, &[&keys[1].0, &new_keys[1].0], &by2);
    let root2 = hsm.path("2.root.json");
    ok(&keyshare(&[
        "root",
        "merge",
        s(&by1),
        s(&by2),
        "--out",
        s(&root2),
    ]));
    ok(&keyshare(&["root", "verify", s(&root1), s(&root2)]));
    let address = url.trim_start_matches("http://").to_owned();
    let serve = Serve::start_on(&data, &address);
    ok(&keyshare(&[
        "root",
        "submit",
        s(&root2),
        "--server",
        &serve.url,
        "--token-file",
        s(&token_file),
    ]));

    // A fresh client pins `sha256sum 2.root.json`, refreshes and decides;
    // the first client follows to v2.
    let fresh = dir.join("fresh");
    let out = verifier(
        &fresh,
        &[
            "init",
            "--server",
            &serve.url,
            "--root-sha256",
            &sha256_of(&root2),
        ],
    );
    assert!(String::from_utf8(ok(&out))
        .unwrap()
        .contains("pinned root version 2"));
    let out = verifier(&fresh, &["refresh"]);
    assert!(String::from_utf8(ok(&out)).unwrap().contains("root v2"));
    decides(&fresh);
    let out = verifier(&client, &["refresh"]);
    assert!(String::from_utf8(ok(&out)).unwrap().contains("root v2"));
    decides(&client);

    // Every published root is the ceremony's file: over HTTP, in
    // `publish --to`, and in a bundle the replica and the laptop follow.
    for (n, file) in [(1, &root1), (2, &root2)] {
        let ceremony = std::fs::read(file).unwrap();
        let served = http_get(&format!("{}/metadata/{n}.root.json", serve.url));
        assert_eq!(served, ceremony, "{n}.root.json over HTTP");
    }
    serve.stop();
    let static_dir = dir.join("static");
    ok(&keyshare_server(&[
        "publish",
        "--data-dir",
        s(&data),
        "--to",
        s(&static_dir),
    ]));
    let bundle2 = dir.join("site-2.bundle");
    ok(&keyshare_server(&[
        "export",
        "--data-dir",
        s(&data),
        "--out",
        s(&bundle2),
    ]));
    ok(&keyshare_server(&[
        "import",
        s(&bundle2),
        "--data-dir",
        s(&replica),
    ]));
    let out = verifier(&laptop, &["refresh", "--from-bundle", s(&bundle2)]);
    assert!(String::from_utf8(ok(&out)).unwrap().contains("root v2"));
    decides(&laptop);
    for (n, file) in [(1, &root1), (2, &root2)] {
        let ceremony = std::fs::read(file).unwrap();
        let path = format!("metadata/{n}.root.json");
        assert_eq!(
            std::fs::read(static_dir.join(&path)).unwrap(),
            ceremony,
            "{path} in publish --to"
        );
        let holding: &[&PathBuf] = if n == 1 {
            &[&bundle, &bundle2]
        } else {
            &[&bundle2]
        };
        for b in holding {
            let opened = keyshare_airgap::open_bundle(
                Arc::new(std::fs::read(b).unwrap()),
                keyshare_airgap::Anchor {
                    pinned_root: &ceremony,
                    previous: None,
                },
                OffsetDateTime::now_utc(),
                &mut |_, _| {},
            )
            .unwrap();
            assert_eq!(
                opened.file(&path).unwrap().unwrap(),
                ceremony,
                "{path} in {}",
                b.display()
            );
        }
    }
}
