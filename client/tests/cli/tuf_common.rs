//! Shared fixture of the `keyshare tuf` tests (`tuf.rs`): a TUF repository built with
//! `keyshare_policy::repo::Repository`, written to a temporary directory
//! and served over loopback by a tiny std-only HTTP server that logs every
//! request path, and a runner for `keyshare tuf ...`.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use keyshare_policy::metadata::{DelegatedRole, RoleName, Unrecognized};
use keyshare_policy::pattern::PathPattern;
use keyshare_policy::repo::{File, Options, Repository, SharedSigner};
use time::OffsetDateTime;

pub use keyshare_testkit::signer;

/// Serves the files under a directory at `http://127.0.0.1:PORT/<path>`
/// (the raw request path, not decoded, so `1.a%2Fb.json` is that file
/// name), one request per connection, and logs each request path.
pub struct Server {
    pub root: PathBuf,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (root, log, stop) = (root.to_owned(), log.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve_one(stream, &root, &log);
                    }
                }
            })
        };
        Self {
            root: root.to_owned(),
            base,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Request paths since the last call (`/metadata/timestamp.json`, ...).
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    pub fn metadata_url(&self) -> String {
        format!("{}/metadata", self.base)
    }

    pub fn targets_url(&self) -> String {
        format!("{}/targets", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    log.lock().unwrap().push(path.clone());
    let file = (!path.split('/').any(|s| s == ".."))
        .then(|| std::fs::read(root.join(path.trim_start_matches('/'))).ok())
        .flatten();
    let mut out = &stream;
    let _ = match file {
        Some(bytes) => out
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                )
                .as_bytes(),
            )
            .and_then(|()| out.write_all(&bytes)),
        None => out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    let _ = out.flush();
}

/// Writes published files under `dir` (`metadata/...`, `targets/...`).
pub fn write_files(dir: &Path, files: &[File]) {
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.bytes).unwrap();
    }
}

/// A repository with its signers, published into `dir/repo`, served.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
    pub root_key: SharedSigner,
    pub server: Server,
    /// The client's metadata and target directories.
    pub metadata_dir: PathBuf,
    pub target_dir: PathBuf,
}

impl Fixture {
    /// A repository with root v1 and one commit of `now`, nothing in targets.
    pub fn new(now: OffsetDateTime) -> Self {
        Self::with_options(now, Options::default())
    }

    pub fn with_options(now: OffsetDateTime, options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root_key = signer();
        let mut repo = Repository::create(
            std::slice::from_ref(&root_key),
            1,
            [
                ("targets", vec![signer()]),
                ("snapshot", vec![signer()]),
                ("timestamp", vec![signer()]),
            ],
            options,
            now,
        )
        .unwrap();
        let files = repo.commit(now).unwrap();
        let served = dir.path().join("repo");
        write_files(&served, &files);
        let server = Server::start(&served);
        let metadata_dir = dir.path().join("metadata");
        let target_dir = dir.path().join("targets");
        std::fs::create_dir_all(&metadata_dir).unwrap();
        std::fs::create_dir_all(&target_dir).unwrap();
        Self {
            dir,
            repo,
            root_key,
            server,
            metadata_dir,
            target_dir,
        }
    }

    /// Publishes `files` (from `set_target`) and a commit at `now`.
    pub fn publish(&mut self, mut files: Vec<File>, now: OffsetDateTime) {
        files.extend(self.repo.commit(now).unwrap());
        write_files(&self.server.root, &files);
    }

    /// The bytes the server serves at `path` (`metadata/timestamp.json`).
    pub fn served(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.server.root.join(path)).unwrap()
    }

    /// The root v1 file, as an out-of-band pinned root.
    pub fn root_v1_file(&self) -> PathBuf {
        let p = self.dir.path().join("initial_root.json");
        std::fs::write(&p, self.served("metadata/1.root.json")).unwrap();
        p
    }

    /// Runs `keyshare tuf --metadata-dir M init <root v1>`.
    pub fn init(&self) -> Output {
        let root = self.root_v1_file();
        let out = tuf(&[
            "--metadata-dir",
            self.metadata_dir.to_str().unwrap(),
            "init",
            root.to_str().unwrap(),
        ]);
        assert_success(&out);
        out
    }

    /// Runs `keyshare tuf --metadata-url U --metadata-dir M refresh`.
    pub fn refresh(&self) -> Output {
        tuf(&[
            "--metadata-url",
            &self.server.metadata_url(),
            "--metadata-dir",
            self.metadata_dir.to_str().unwrap(),
            "refresh",
        ])
    }

    /// The `download` command line for `targets`.
    pub fn download_args(&self, targets: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--metadata-url".to_owned(),
            self.server.metadata_url(),
            "--metadata-dir".to_owned(),
            self.metadata_dir.to_str().unwrap().to_owned(),
        ];
        for t in targets {
            args.push("--target-name".into());
            args.push((*t).to_owned());
        }
        args.extend([
            "--target-dir".to_owned(),
            self.target_dir.to_str().unwrap().to_owned(),
            "--target-base-url".to_owned(),
            self.server.targets_url(),
            "download".to_owned(),
        ]);
        args
    }

    pub fn download(&self, targets: &[&str]) -> Output {
        let args = self.download_args(targets);
        tuf(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// File names in the metadata directory.
    pub fn metadata_files(&self) -> BTreeSet<String> {
        list(&self.metadata_dir)
    }

    /// Delegates `role` from `delegator` for `paths`, with a fresh key.
    pub fn delegate(&mut self, delegator: &str, role: &str, paths: &[&str], now: OffsetDateTime) {
        let key = signer();
        self.repo
            .delegate(
                delegator,
                DelegatedRole {
                    name: RoleName::new(role),
                    keyids: vec![key.key_id().clone()],
                    threshold: std::num::NonZeroU32::MIN,
                    terminating: false,
                    paths: Some(paths.iter().map(|p| PathPattern::new(p)).collect()),
                    path_hash_prefixes: None,
                    unrecognized: Unrecognized::new(),
                },
                vec![(key.key_id().clone(), key.public_key().clone())],
                vec![key],
                now,
            )
            .unwrap();
    }
}

/// File names in a directory.
pub fn list(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

pub fn keyshare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyshare"))
}

/// Runs `keyshare tuf ARGS...`.
pub fn tuf(args: &[&str]) -> Output {
    keyshare().arg("tuf").args(args).output().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// Exit status 1 with one `error: ...` line on stderr containing `needle`.
pub fn assert_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
}
