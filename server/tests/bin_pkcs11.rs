#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! The `keyshare-server` binary with its online keys in a PKCS#11 token
//! (SoftHSM2): `init` and `serve` configured with four `pkcs11:` URIs in
//! `keyshare.toml`, an admin change over HTTP, and keyshare's own TUF
//! client (pinned to `1.root.json`) verifying what was published, down to
//! the key ids that signed each role; the timestamp authority's key in the
//! token too, its tokens verified by `openssl ts -verify`. Also: a wrong PIN, a missing key and
//! a missing module are one `error:` line that never shows the PIN.
//!
//! The token and its keys are made in this process with
//! `keyshare_hsm::generate_key` (the module is initialised once per
//! process); the server runs as child processes with the same
//! `SOFTHSM2_CONF`. Needs `/usr/lib/softhsm/libsofthsm2.so` and
//! `softhsm2-util` (installed by `scripts/test`): without them the tests
//! fail, they do not skip.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use keyshare_hsm::{generate_key, Pin, PinSource, Pkcs11Signer, Pkcs11Uri, Signer};
use keyshare_policy::client::{self, Config, Lookup, Request, Response, Updater};
use keyshare_policy::keys::Scheme;
use serde_json::{json, Value};

mod bin_common;

use bin_common::{keyshare, run_within};

/// Runs a command to completion, bounded by this file's deadline.
fn run(cmd: Command) -> Output {
    run_within(cmd, DEADLINE)
}

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of every test token; also the "wrong" PIN's prefix, so a
/// message that echoed either would be caught.
const PIN: &str = "735911";
const WRONG_PIN: &str = "735999";
const SO_PIN: &str = "12345678";
const TOKEN: &str = "keyshare-online";
const DEADLINE: Duration = Duration::from_secs(60);
/// The online roles, their key labels in the token and schemes.
const ROLES: [(&str, Scheme); 4] = [
    ("targets", Scheme::EcdsaP256Sha256),
    ("snapshot", Scheme::Ed25519),
    ("timestamp", Scheme::EcdsaP256Sha256),
    ("namespaces", Scheme::Ed25519),
];

/// The token with its four keys, shared by the tests of this binary.
struct Fixture {
    dir: tempfile::TempDir,
    /// Role → the key's URI (with `pin-source` = the right PIN file).
    uris: BTreeMap<&'static str, Pkcs11Uri>,
    /// Role → the key id the token's public key has in TUF metadata.
    key_ids: BTreeMap<&'static str, String>,
}

impl Fixture {
    fn pin_file(&self) -> PathBuf {
        self.dir.path().join("token.pin")
    }

    fn wrong_pin_file(&self) -> PathBuf {
        self.dir.path().join("wrong.pin")
    }

    /// `keyshare.toml` naming the four token keys and the TSA key in the
    /// token.
    fn config_file(&self, uris: &BTreeMap<&'static str, Pkcs11Uri>) -> String {
        let mut text = String::from("[keys]\n");
        for (role, _) in ROLES {
            text.push_str(&format!("{role} = \"{}\"\n", uris[role]));
        }
        text.push_str(&format!("[tsa]\nkey = \"{}\"\n", self.uris["tsa"]));
        text
    }
}

/// Serialises the tests: a failed login makes SoftHSM rewrite the token's
/// files, which another process reading the token at that moment may see
/// half-written.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        assert!(
            Path::new(MODULE).is_file(),
            "{MODULE} is missing: run scripts/test (it installs softhsm2) or \
             `apt-get install softhsm2`"
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN,
            ])
            .output()
            .expect("softhsm2-util is missing: run scripts/test or `apt-get install softhsm2`");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Before the first C_Initialize of this process, which reads it; the
        // server processes inherit it.
        std::env::set_var("SOFTHSM2_CONF", &conf);

        let write_pin = |path: PathBuf, pin: &str| {
            fs::write(&path, format!("{pin}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        };
        write_pin(dir.path().join("token.pin"), PIN);
        write_pin(dir.path().join("wrong.pin"), WRONG_PIN);

        let token_uri = Pkcs11Uri::parse(&format!(
            "pkcs11:token={TOKEN}?module-path={MODULE}&pin-source={}",
            dir.path().join("token.pin").display()
        ))
        .unwrap();
        let pin = PinSource::Value(Pin::new(PIN));
        let mut uris = BTreeMap::new();
        let mut key_ids = BTreeMap::new();
        // The online keys, and the timestamp authority's key ("tsa").
        for (role, scheme) in ROLES
            .into_iter()
            .chain([("tsa", Scheme::EcdsaP256Sha256)])
        {
            let uri = generate_key(&token_uri, &pin, scheme, role).unwrap();
            let signer = Pkcs11Signer::open(&uri, &pin, Some(scheme)).unwrap();
            key_ids.insert(role, signer.key_id().as_str().to_owned());
            uris.insert(role, uri);
        }
        Fixture { dir, uris, key_ids }
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a failed command: exit 1 and exactly one `error: ...` line that
/// shows neither PIN. Returns that line.
fn assert_one_line_error(out: &Output) -> String {
    let line = bin_common::assert_one_line_error(out);
    let err = text(&out.stderr);
    assert!(
        !err.contains(PIN) && !err.contains(WRONG_PIN),
        "the PIN leaked: {err}"
    );
    line
}

/// A data directory holding only `keyshare.toml`.
fn data_dir(parent: &Path, name: &str, config: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("keyshare.toml"), config).unwrap();
    dir
}

/// `init`; returns the org-admin token and the pinned root's sha256.
fn init(dir: &Path) -> (String, String) {
    let init = bin_common::parse_init(&run(keyshare(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
    ])));
    (init.token, init.root_sha256)
}

/// A running `serve`; killed on drop if still running.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let log = dir.with_extension("serve.log");
        let mut child = keyshare(&[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "serve printed no address; log: {}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, addr, log }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Vec<u8>) {
        http(&self.addr, method, path, token, body)
    }

    fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let (got, bytes) = self.request(method, path, token, body);
        assert_eq!(got, status, "{method} {path}: {}", text(&bytes));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// SIGTERM, then a bounded wait; asserts a clean exit.
    fn terminate(mut self) {
        let status =
            keyshare_testkit::fixture::sigterm_and_wait(&mut self.child, DEADLINE, "serve");
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "serve exited with {status}; log: {log}");
        assert!(!log.contains(PIN), "the PIN is in the log: {log}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client (one request per connection). The server
/// answers these small requests without chunking.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = text(&raw[..split]);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked answer to {path}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, raw[split + 4..].to_vec())
}

/// `POST path` with a binary body of `content_type` (one request per
/// connection); the status and the body.
fn post_bytes(addr: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let status = text(&raw[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, raw[split + 4..].to_vec())
}

fn fetch_metadata(server: &Server, request: &Request) -> Response {
    if request.is_local() {
        return Response::NotFound;
    }
    let path = format!("/metadata/{}", request.remote_name());
    match server.request("GET", &path, None, None) {
        (200, bytes) => Response::Bytes(bytes),
        (404, _) => Response::NotFound,
        (status, body) => panic!("GET {path}: {status} {}", text(&body)),
    }
}

fn signers_of(signatures: &[keyshare_policy::metadata::Signature]) -> Vec<String> {
    signatures
        .iter()
        .map(|s| s.keyid.as_str().to_owned())
        .collect()
}

#[test]
fn online_keys_in_a_token_sign_everything_the_server_publishes() {
    let _serial = one_at_a_time();
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(tmp.path(), "data", &fx.config_file(&fx.uris));

    let (token, root_hash) = init(&dir);
    // Only the root key (embedded default), the TSA CA key (it certified
    // the token's TSA key) and the CI secret (nonces and principals, not a
    // signing key) are local files.
    let mut files: Vec<String> = fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["ci-secret", "root.pem", "tsa-ca.pem"]);

    let server = Server::start(&dir);
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"], "maintainers": ["alice@acme.io"]})),
        201,
    );
    let added = openssl::pkey::PKey::generate_ed25519().unwrap();
    let added = json!({"keytype": "ed25519", "scheme": "ed25519",
        "keyval": {"public": hex::encode(added.raw_public_key().unwrap())}});
    server.json(
        "POST",
        "/api/v1/namespaces/team-a/keys",
        Some(&token),
        Some(&json!({"key": added, "description": "release signer"})),
        201,
    );

    // The pinned root is the one init printed the hash of.
    let (status, root) = server.request("GET", "/metadata/1.root.json", None, None);
    assert_eq!(status, 200);
    assert_eq!(hex::encode(openssl::sha::sha256(&root)), root_hash);

    let mut updater =
        Updater::new(&root, time::OffsetDateTime::now_utc(), Config::default()).unwrap();
    updater
        .refresh_with(|r| fetch_metadata(&server, r))
        .unwrap_or_else(|e| panic!("refresh failed: {e}"));
    let path = "namespaces/team-a/trust.json";
    let lookup = updater
        .find_target_with(path, |r| fetch_metadata(&server, r))
        .unwrap_or_else(|e| panic!("looking up {path}: {e}"));
    let Lookup::Found { role, target_file } = lookup else {
        panic!("{path} is not in the repository");
    };
    let remote = updater.target_remote_name(path, &target_file);
    let (status, trust) = server.request("GET", &format!("/targets/{remote}"), None, None);
    assert_eq!(status, 200, "GET /targets/{remote}");
    client::verify_target(&target_file, path, &trust).unwrap();
    assert!(text(&trust).contains(added["keyval"]["public"].as_str().unwrap()));

    // Root names exactly the token keys for targets, snapshot and timestamp.
    let trusted = updater.trusted();
    let ids = &fx.key_ids;
    for role in ["targets", "snapshot", "timestamp"] {
        let keys = &trusted
            .root()
            .roles
            .iter()
            .find(|(n, _)| n.as_str() == role)
            .unwrap()
            .1;
        let listed: Vec<&str> = keys.keyids.iter().map(|k| k.as_str()).collect();
        assert_eq!(listed, [ids[role].as_str()], "root's {role} keys");
    }
    // Top-level targets delegates to the 256 hashed bins, held by the
    // token's targets key; the bin of team-a lists its trust document
    // itself (no namespace role: the token's namespaces key signs nothing).
    let targets = trusted.targets("targets").unwrap();
    let delegations = targets.delegations.as_ref().expect("delegations");
    let bins = delegations.succinct_roles.as_ref().expect("hashed bins");
    assert_eq!((bins.bit_length, bins.name_prefix.as_str()), (8, "bins"));
    let listed: Vec<&str> = bins.keyids.iter().map(|k| k.as_str()).collect();
    assert_eq!(listed, [ids["targets"].as_str()], "bins' keys");
    let bin = bins.role_for_target(path);
    assert_eq!(role, bin, "the trust document is found in its bin");
    let bin_role = trusted.targets(bin.as_str()).expect("the bin was visited");
    assert!(bin_role.targets.contains_key(path));
    assert!(
        bin_role
            .delegations
            .as_ref()
            .is_none_or(|d| d.roles.iter().flatten().next().is_none()),
        "the bin delegates to no namespace role"
    );
    assert_eq!(signers_of(bin_role.signatures()), [ids["targets"].clone()]);

    // And each verified role was signed by exactly that key.
    assert_eq!(
        signers_of(trusted.timestamp().unwrap().signatures()),
        [ids["timestamp"].clone()]
    );
    assert_eq!(
        signers_of(trusted.snapshot().unwrap().signatures()),
        [ids["snapshot"].clone()]
    );
    assert_eq!(signers_of(targets.signatures()), [ids["targets"].clone()]);
    server.terminate();

    // A restart signs with the token again (a new namespace: new versions).
    let server = Server::start(&dir);
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-b", "scopes": ["registry.acme.io/team-b/**"], "maintainers": ["bob@acme.io"]})),
        201,
    );
    let mut updater =
        Updater::new(&root, time::OffsetDateTime::now_utc(), Config::default()).unwrap();
    updater
        .refresh_with(|r| fetch_metadata(&server, r))
        .unwrap_or_else(|e| panic!("refresh after restart failed: {e}"));
    assert_eq!(
        signers_of(updater.trusted().timestamp().unwrap().signatures()),
        [ids["timestamp"].clone()]
    );
    server.terminate();

    // serve with a wrong PIN (the first key opened, overridden by the
    // environment): one line, exit 1, no PIN. (A token logged in once stays
    // logged in for the whole process, so only the first login of a token
    // checks its PIN.)
    let mut wrong = fx.uris["targets"].clone();
    wrong.pin_source = Some(fx.wrong_pin_file());
    let mut cmd = keyshare(&[
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    cmd.env("KEYSHARE_KEY_TARGETS", wrong.to_string());
    let line = assert_one_line_error(&run(cmd));
    assert!(
        line.contains("keys.targets") && line.contains("wrong PIN"),
        "{line}"
    );
}

#[test]
fn token_problems_are_one_line_without_the_pin() {
    let _serial = one_at_a_time();
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let with = |role: &'static str, change: &dyn Fn(&mut Pkcs11Uri)| {
        let mut uris = fx.uris.clone();
        change(uris.get_mut(role).unwrap());
        fx.config_file(&uris)
    };
    let cases: [(&str, String, &[&str]); 4] = [
        (
            "wrong-pin",
            with("targets", &|u| u.pin_source = Some(fx.wrong_pin_file())),
            &["keys.targets", "wrong PIN", TOKEN],
        ),
        (
            "missing-key",
            with("timestamp", &|u| {
                u.object = Some("no-such-key".into());
                u.id = None;
            }),
            &["keys.timestamp", "no private key", "no-such-key"],
        ),
        (
            "missing-token",
            with("namespaces", &|u| u.token = Some("no-such-token".into())),
            &["keys.namespaces", "no-such-token"],
        ),
        (
            "missing-module",
            with("snapshot", &|u| {
                u.module_path = Some("/nonexistent/libpkcs11.so".into())
            }),
            &[
                "keys.snapshot",
                "/nonexistent/libpkcs11.so",
                "does not exist",
            ],
        ),
    ];
    for (name, config, expected) in cases {
        let dir = data_dir(tmp.path(), name, &config);
        let out = run(keyshare(&["init", "--data-dir", dir.to_str().unwrap()]));
        let line = assert_one_line_error(&out);
        for part in expected {
            assert!(line.contains(part), "{name}: {line:?} lacks {part:?}");
        }
        // init left nothing behind but the configuration it was given.
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["keyshare.toml"], "{name}");
    }

    // A URI without a PIN source, and no keys.pin_file: refused; with
    // KEYSHARE_PIN_FILE it works.
    let no_pin = with("targets", &|u| u.pin_source = None);
    let dir = data_dir(tmp.path(), "no-pin", &no_pin);
    let line = assert_one_line_error(&run(keyshare(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
    ])));
    assert!(
        line.contains("keys.targets") && line.contains("pin_file"),
        "{line}"
    );
    let mut cmd = keyshare(&["init", "--data-dir", dir.to_str().unwrap()]);
    cmd.env("KEYSHARE_PIN_FILE", fx.pin_file());
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A bad URI is refused when the configuration is read.
    let dir = data_dir(
        tmp.path(),
        "bad-uri",
        "[keys]\ntargets = \"pkcs11:token=x;object=y\"\n",
    );
    let line = assert_one_line_error(&run(keyshare(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
    ])));
    assert!(
        line.contains("keys.targets") && line.contains("module-path"),
        "{line}"
    );
}

/// The timestamp authority's key in the token: `init` has the TSA CA
/// certify the token's public key (no key file is made), `serve` signs
/// every token in the token, and `openssl ts -verify` accepts the reply
/// against the CA `init` made.
#[test]
fn a_tsa_key_in_a_token_signs_timestamp_tokens_that_openssl_verifies() {
    let _serial = one_at_a_time();
    let fx = fixture();
    let dir = data_dir(fx.dir.path(), "tsa-in-token", &fx.config_file(&fx.uris));
    init(&dir);
    assert!(
        !dir.join("keys/tsa.pem").exists(),
        "a TSA key file was made"
    );
    let tsa_pem = dir.join("tsa/tsa.pem");
    let ca_pem = dir.join("tsa/ca.pem");
    let data = dir.with_extension("artifact");
    fs::write(&data, b"signed in the HSM\n").unwrap();
    let query = dir.with_extension("tsq");
    let out = run({
        let mut c = Command::new("openssl");
        c.args(["ts", "-query", "-data"])
            .arg(&data)
            .args(["-sha256", "-cert", "-out"])
            .arg(&query);
        c
    });
    assert!(out.status.success(), "{}", text(&out.stderr));

    let server = Server::start(&dir);
    let (status, body) = post_bytes(
        &server.addr,
        "/api/v1/timestamp",
        "application/timestamp-query",
        &fs::read(&query).unwrap(),
    );
    assert_eq!(status, 200, "{}", text(&body));
    let reply = dir.with_extension("tsr");
    fs::write(&reply, &body).unwrap();
    for extra in [&["-untrusted"][..], &[]] {
        let mut c = Command::new("openssl");
        c.args(["ts", "-verify", "-data"])
            .arg(&data)
            .arg("-in")
            .arg(&reply)
            .arg("-CAfile")
            .arg(&ca_pem);
        if !extra.is_empty() {
            c.args(extra).arg(&tsa_pem);
        }
        let out = run(c);
        assert!(
            out.status.success(),
            "openssl ts -verify: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    server.terminate();
}
