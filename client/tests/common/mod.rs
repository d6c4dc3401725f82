//! Shared fixture of the client tests: a real server (the publisher and
//! `keyshare_server::http::run` on a loopback socket, in a background
//! thread), a canned HTTP server that serves the same files with
//! alterations, and a runner for the `keyshare` binary.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::{KeyId, Root, Signed};
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::repo::{Options, SharedSigner};
use keyshare_policy::sign::{sign, Signer};
use keyshare_policy::trust::{
    NamespaceEntry, Peer, PeerUrl, PinnedRoot, Revocation, RevokedSubject, Sha256Hex, TrustedKey,
};
use keyshare_server::http::AppState;
use keyshare_server::publisher::{Change, OnlineKeys, Publisher};
use keyshare_server::store::{Store, TokenKind};
pub use keyshare_testkit::{ns, signer};

/// Longest a `keyshare` process may run.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// A real keyshare server; stopped (bounded wait) when dropped.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub publisher: Arc<Publisher>,
    pub url: String,
    /// The key of root v1 (threshold 1), for root rotations.
    pub root_key: SharedSigner,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: mpsc::Receiver<()>,
}

impl Server {
    /// A server whose repository was created at `created` (its first
    /// metadata expires by the defaults from then on).
    pub fn start_at(created: OffsetDateTime) -> Self {
        Self::spawn(created, None)
    }

    /// A server speaking HTTPS with a self-signed certificate for
    /// 127.0.0.1; returns it and the certificate (PEM).
    pub fn start_tls() -> (Self, String) {
        use openssl::pkey::PKey;
        use openssl::ssl::{SslAcceptor, SslMethod};
        use openssl::x509::X509;
        let (cert, key) = localhost_cert();
        let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        tls.set_certificate(&X509::from_pem(cert.as_bytes()).unwrap())
            .unwrap();
        tls.set_private_key(&PKey::private_key_from_pem(key.as_bytes()).unwrap())
            .unwrap();
        let mut server = Self::spawn(OffsetDateTime::now_utc(), Some(tls));
        server.url = server.url.replacen("http://", "https://", 1);
        (server, cert)
    }

    /// A server that runs its timestamp authority as `init` sets it up:
    /// the TSA key and CA made in its data directory, the CA listed in
    /// `org/tsas.json` (`keyshare_server::tsa::trust_own`).
    pub fn start_with_tsa() -> Self {
        let created = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let (dir, publisher, root_key) = Self::init(created);
        let config = keyshare_server::config::TsaConfig::default();
        let (material, _) =
            keyshare_server::tsa::setup::prepare(&config, None, dir.path(), created, true).unwrap();
        keyshare_server::tsa::trust_own(&publisher, &material, created).unwrap();
        let store = Store::open(dir.path().join("keyshare.db")).unwrap();
        let tsa = keyshare_server::tsa::Tsa::new(material, &config, store).unwrap();
        Self::serve_with(dir, publisher, root_key, None, Some(Arc::new(tsa)))
    }

    fn spawn(created: OffsetDateTime, tls: Option<openssl::ssl::SslAcceptorBuilder>) -> Self {
        let (dir, publisher, root_key) = Self::init(created);
        Self::serve(dir, publisher, root_key, tls)
    }

    /// A new repository created at `created`, with its data directory.
    pub fn init(created: OffsetDateTime) -> (tempfile::TempDir, Arc<Publisher>, SharedSigner) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("keyshare.db")).unwrap();
        let keys = OnlineKeys {
            targets: signer(),
            snapshot: signer(),
            timestamp: signer(),
            namespaces: signer(),
        };
        let root_key = signer();
        let publisher = Arc::new(
            Publisher::init(
                store,
                keys,
                std::slice::from_ref(&root_key),
                1,
                Options::default(),
                created,
            )
            .unwrap(),
        );
        (dir, publisher, root_key)
    }

    /// A server whose repository is in the layout of earlier versions (a
    /// role per namespace, delegated from its bin, signed by the
    /// namespaces key): `namespaces` (name, key id, key) are created with
    /// one key each, then the repository is rewritten into that layout
    /// ([`keyshare_testkit::legacy`]) and the publisher opened on it
    /// without migrating (the next publish, or
    /// `publisher.migrate_layout`, migrates).
    pub fn start_legacy(namespaces: &[(&str, &str, &Key)]) -> Self {
        let created = OffsetDateTime::now_utc();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keyshare.db");
        let keys = OnlineKeys {
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
            created,
        )
        .unwrap();
        for (name, id, key) in namespaces {
            for change in [
                Change::CreateNamespace {
                    entry: NamespaceEntry {
                        name: ns(name),
                        scopes: vec![ArtifactPattern::parse(&format!(
                            "registry.acme.io/{name}/**"
                        ))
                        .unwrap()],
                        maintainers: vec![],
                    },
                    threshold: NonZeroU32::MIN,
                    allow_overlap: false,
                },
                Change::AddKey {
                    namespace: ns(name),
                    key: TrustedKey {
                        id: KeyId::new(*id),
                        key: (*key).clone(),
                        not_before: None,
                        not_after: None,
                        ephemeral: false,
                        description: None,
                        principal: None,
                        layout_root: false,
                    },
                },
            ] {
                publisher.apply("test", change, created).unwrap();
            }
        }
        drop(publisher);
        let mut store = Store::open(&db).unwrap();
        let last = store.last_published().unwrap().unwrap();
        let legacy = keyshare_testkit::legacy::LegacyKeys {
            targets: keys.targets.clone(),
            snapshot: keys.snapshot.clone(),
            timestamp: keys.timestamp.clone(),
            namespaces: keys.namespaces.clone(),
        };
        let files =
            keyshare_testkit::legacy::into_namespace_roles(&last.as_published(), &legacy, created);
        store
            .transaction_at(created, |tx| tx.record_published(&files))
            .unwrap();
        drop(store);
        let publisher =
            Publisher::open(Store::open(&db).unwrap(), keys, Options::default()).unwrap();
        Self::serve(dir, Arc::new(publisher), root_key, None)
    }

    fn serve(
        dir: tempfile::TempDir,
        publisher: Arc<Publisher>,
        root_key: SharedSigner,
        tls: Option<openssl::ssl::SslAcceptorBuilder>,
    ) -> Self {
        Self::serve_with(dir, publisher, root_key, tls, None)
    }

    fn serve_with(
        dir: tempfile::TempDir,
        publisher: Arc<Publisher>,
        root_key: SharedSigner,
        tls: Option<openssl::ssl::SslAcceptorBuilder>,
        tsa: Option<Arc<keyshare_server::tsa::Tsa>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (url, stop, stopped) = Self::spawn_http(listener, publisher.clone(), tls, tsa);
        Self {
            dir,
            publisher,
            url,
            root_key,
            stop: Some(stop),
            stopped,
        }
    }

    /// Stops serving, then serves the same repository on the same address
    /// again (plain HTTP, no TSA): a server restart as clients see it.
    /// The address is unreachable for `down`.
    pub fn restart(&mut self, down: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let _ = self.stopped.recv_timeout(Duration::from_secs(20));
        }
        thread::sleep(down);
        let addr = self.url.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind(&addr).unwrap();
        let (url, stop, stopped) = Self::spawn_http(listener, self.publisher.clone(), None, None);
        assert_eq!(url, self.url);
        self.stop = Some(stop);
        self.stopped = stopped;
    }

    /// Serves `publisher` on `listener` in a thread of its own; returns the
    /// URL, the stop sender and the stopped signal.
    fn spawn_http(
        listener: TcpListener,
        publisher: Arc<Publisher>,
        tls: Option<openssl::ssl::SslAcceptorBuilder>,
        tsa: Option<Arc<keyshare_server::tsa::Tsa>>,
    ) -> (String, tokio::sync::oneshot::Sender<()>, mpsc::Receiver<()>) {
        let mut state = AppState::new(publisher);
        state.tsa = tsa;
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stopped_tx, stopped) = mpsc::channel();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            let served = match tls {
                Some(tls) => rt.block_on(keyshare_server::http::run_tls(
                    listener, tls, state, shutdown,
                )),
                None => rt.block_on(keyshare_server::http::run(listener, state, shutdown)),
            };
            served.unwrap();
            let _ = stopped_tx.send(());
        });
        (url, stop, stopped)
    }

    pub fn start() -> Self {
        Self::start_at(OffsetDateTime::now_utc())
    }

    /// An org-admin token's secret.
    pub fn admin_token(&self) -> String {
        let new = self
            .publisher
            .create_token("test", TokenKind::OrgAdmin, None, OffsetDateTime::now_utc())
            .unwrap();
        new.secret.expose().to_owned()
    }

    /// Applies a change as the system and publishes it.
    pub fn apply(&self, change: Change) {
        self.publisher
            .apply("test", change, OffsetDateTime::now_utc())
            .unwrap();
    }

    pub fn create_namespace(&self, name: &str, scopes: &[&str], threshold: u32) {
        self.apply(Change::CreateNamespace {
            entry: NamespaceEntry {
                name: ns(name),
                scopes: scopes
                    .iter()
                    .map(|s| ArtifactPattern::parse(s).unwrap())
                    .collect(),
                maintainers: vec![format!("{name}@acme.io")],
            },
            threshold: NonZeroU32::new(threshold).unwrap(),
            allow_overlap: false,
        });
    }

    /// Lists `key` in `namespace` under `id`.
    pub fn add_key(&self, namespace: &str, id: &str, key: &Key, not_after: Option<OffsetDateTime>) {
        self.apply(Change::AddKey {
            namespace: ns(namespace),
            key: TrustedKey {
                id: KeyId::new(id),
                key: key.clone(),
                not_before: None,
                not_after,
                ephemeral: false,
                description: None,
                principal: None,
                layout_root: false,
            },
        });
    }

    /// Revokes the key listed under `id` (by its material, as the API does).
    pub fn revoke(&self, id: &str, at: OffsetDateTime) {
        let found = self.publisher.read(|s| s.listed_under(None, id)).unwrap();
        let (fingerprint, listing) = found.into_iter().next().expect("the key is listed");
        self.apply(Change::AddRevocation {
            revocation: Revocation {
                subject: RevokedSubject::Key(fingerprint),
                revoked_at: at,
                reason: "laptop lost".into(),
            },
            listed_as: Some(listing),
        });
    }

    /// Delegates `pattern` to the repository at `url` pinned by the hash of
    /// `root` (its `1.root.json`).
    pub fn put_peer(&self, name: &str, pattern: &str, url: &str, root: &[u8]) {
        self.apply(Change::PutPeer {
            peer: Peer {
                name: name.into(),
                patterns: vec![ArtifactPattern::parse(pattern).unwrap()],
                url: PeerUrl::parse(url).unwrap(),
                root: PinnedRoot::Sha256(Sha256Hex::of(root)),
                terminating: true,
            },
        });
    }

    /// Publishes root N+1 as a ceremony makes it: the current root with
    /// its root key `old` replaced by `new`, signed by both, written
    /// indented with a final newline (as `keyshare root merge` does).
    /// Returns the file's bytes.
    pub fn rotate_root(&self, old: &SharedSigner, new: &SharedSigner) -> Vec<u8> {
        let mut n = 1;
        while self
            .file(&format!("metadata/{}.root.json", n + 1))
            .is_some()
        {
            n += 1;
        }
        let current: Signed<Root> =
            serde_json::from_slice(&self.file(&format!("metadata/{n}.root.json")).unwrap())
                .unwrap();
        let mut root = current.signed;
        root.version += 1;
        root.keys.remove(old.key_id());
        root.keys
            .insert(new.key_id().clone(), new.public_key().clone());
        let role = root.roles.get_mut("root").unwrap();
        role.keyids = vec![new.key_id().clone()];
        let signed = sign(root, &[old.as_ref() as &dyn Signer, new.as_ref()]).unwrap();
        let mut bytes = serde_json::to_vec_pretty(&signed).unwrap();
        bytes.push(b'\n');
        self.publisher
            .submit_root("test", &bytes, OffsetDateTime::now_utc())
            .unwrap();
        bytes
    }

    /// A published file's bytes (`metadata/...`, `targets/...`).
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.publisher.file(path).map(|f| f.bytes.to_vec())
    }

    pub fn root1(&self) -> Vec<u8> {
        self.file("metadata/1.root.json").unwrap()
    }

    pub fn root1_sha256(&self) -> String {
        keyshare_policy::hash::sha256_hex(&self.root1())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let _ = self.stopped.recv_timeout(Duration::from_secs(20));
        }
    }
}

pub fn localhost_cert() -> (String, String) {
    let cert = keyshare_testkit::CertBuilder::new("127.0.0.1")
        .serial(7)
        .days(2)
        .san_ip("127.0.0.1")
        .build();
    (cert.pem(), cert.key_pem())
}

/// A new Ed25519 key: its TUF key and its public key as PEM.
pub fn new_key() -> (Key, String) {
    let pkey = openssl::pkey::PKey::generate_ed25519().unwrap();
    let public =
        openssl::pkey::PKey::public_key_from_der(&pkey.public_key_to_der().unwrap()).unwrap();
    let key = Key::from_public(Scheme::Ed25519, &public).unwrap();
    let pem = String::from_utf8(public.public_key_to_pem().unwrap()).unwrap();
    (key, pem)
}

/// What the canned server answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with these bytes.
    Bytes(Vec<u8>),
    /// 200 with these bytes and this `ETag`; 304 to a request whose
    /// `If-None-Match` is that tag.
    Tagged(Vec<u8>, String),
    /// This status, empty body.
    Status(u16),
    /// A redirect with this status to this URL.
    Redirect(u16, String),
    /// 200 with a body that never ends.
    Endless,
    /// 200 sending one byte every 200 ms, forever.
    Slow,
}

/// Requests a canned server saw: path and `If-None-Match`, if any.
pub type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A loopback HTTP/1.1 server answering each GET from `files` (by path
/// without the leading `/`), else from `fallback`.
pub struct Canned {
    pub url: String,
    pub overrides: Arc<Mutex<HashMap<String, Reply>>>,
    /// Every request: path and its `If-None-Match` header, if any.
    pub log: RequestLog,
}

impl Canned {
    pub fn start(fallback: Arc<dyn Fn(&str) -> Reply + Send + Sync>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let overrides: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let log: RequestLog = Arc::default();
        let (o, l) = (overrides.clone(), log.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (o, l) = (o.clone(), l.clone());
                let fallback = fallback.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &o, &l, &*fallback);
                });
            }
        });
        Self {
            url,
            overrides,
            log,
        }
    }

    /// Serves `reply` for `path` from now on.
    pub fn set(&self, path: &str, reply: Reply) {
        self.overrides
            .lock()
            .unwrap()
            .insert(path.to_owned(), reply);
    }

    pub fn clear(&self) {
        self.overrides.lock().unwrap().clear();
    }
}

/// A canned server in front of `server`'s published files.
pub fn proxy(server: &Server) -> Canned {
    let publisher = server.publisher.clone();
    Canned::start(Arc::new(move |path| match publisher.file(path) {
        Some(f) => Reply::Bytes(f.bytes.to_vec()),
        None => Reply::Status(404),
    }))
}

fn serve(
    stream: TcpStream,
    overrides: &Mutex<HashMap<String, Reply>>,
    log: &Mutex<Vec<(String, Option<String>)>>,
    fallback: &dyn Fn(&str) -> Reply,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    // Headers and body go in separate writes: without this, each answer
    // waits for a delayed ACK.
    stream.set_nodelay(true)?;
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .trim_start_matches('/')
            .to_owned();
        let mut if_none_match = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                if name.trim().eq_ignore_ascii_case("if-none-match") {
                    if_none_match = Some(value.trim().to_owned());
                }
            }
        }
        log.lock()
            .unwrap()
            .push((path.clone(), if_none_match.clone()));
        let reply = overrides
            .lock()
            .unwrap()
            .get(&path)
            .cloned()
            .unwrap_or_else(|| fallback(&path));
        match reply {
            Reply::Bytes(b) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                )?;
                out.write_all(&b)?;
            }
            Reply::Tagged(_, tag) if if_none_match.as_deref() == Some(tag.as_str()) => {
                write!(out, "HTTP/1.1 304 Not Modified\r\nETag: {tag}\r\n\r\n")?;
            }
            Reply::Tagged(b, tag) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nETag: {tag}\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                )?;
                out.write_all(&b)?;
            }
            Reply::Status(s) => {
                write!(out, "HTTP/1.1 {s} X\r\nContent-Length: 0\r\n\r\n")?;
            }
            Reply::Redirect(s, to) => {
                write!(
                    out,
                    "HTTP/1.1 {s} X\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
                )?;
            }
            Reply::Endless => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n"
                )?;
                let chunk = vec![b'x'; 64 * 1024];
                loop {
                    out.write_all(&chunk)?;
                }
            }
            Reply::Slow => {
                write!(out, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")?;
                loop {
                    out.write_all(b" ")?;
                    out.flush()?;
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
        out.flush()?;
    }
}

/// The outcome of one `keyshare` process.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit 0 and nothing on stderr.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        self
    }

    /// Exit `code` and exactly one `error: ...` line on stderr; returns it.
    pub fn assert_error_line(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        lines[0]
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// A client cache directory and a runner of `keyshare` against it.
pub struct Client {
    pub dir: tempfile::TempDir,
}

impl Client {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Runs `keyshare ARGS... --cache-dir DIR`.
    pub fn run(&self, args: &[&str]) -> Run {
        let cache = self.cache();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--cache-dir", cache.to_str().unwrap()]);
        keyshare(&all)
    }

    pub fn init(&self, url: &str, root_sha256: &str) {
        self.run(&["init", "--server", url, "--root-sha256", root_sha256])
            .assert_ok();
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Every file of the cache and its bytes.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.cache(), &mut out);
        out.sort();
        out
    }

    /// `decide --output json` for the artifact with these extra args.
    pub fn decide_json(&self, artifact: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["decide", artifact, "--output", "json"];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        let code = run.code.unwrap();
        assert!(code == 0 || code == 1, "{run:?}");
        (code, run.json())
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
}

/// Runs the `keyshare` binary with `args` (KEYSHARE_* of the test's own
/// environment removed), at most [`PROCESS_TIMEOUT`].
pub fn keyshare(args: &[&str]) -> Run {
    keyshare_env(args, &[])
}

/// [`keyshare`] with these environment variables set.
pub fn keyshare_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyshare"));
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYSHARE_") {
            cmd.env_remove(&name);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("RUST_BACKTRACE", "1");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > PROCESS_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keyshare {args:?} did not finish within {PROCESS_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
