#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! `keyshare-server --output json` on the commands that print a result
//! (`init`, `init --replica`, `publish`, `export`, `import`, and the
//! address `serve` announces), and the shell completions and man pages
//! generated from the clap definitions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::bin_common::{assert_one_line_error, keyshare, run_within};

fn run(args: &[&str]) -> Output {
    run_within(keyshare(args), Duration::from_secs(120))
}

/// Exit 0, nothing on stderr, stdout one JSON document.
fn json(args: &[&str]) -> Value {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(bytes))
}

fn timestamp_version(site: &Path) -> u64 {
    let ts: Value =
        serde_json::from_slice(&std::fs::read(site.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    ts["signed"]["version"].as_u64().unwrap()
}

#[test]
fn init_publish_export_replica_and_import_print_json_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();

    let init = json(&[
        "init",
        "--data-dir",
        d,
        "--bins",
        "1024",
        "--output",
        "json",
    ]);
    assert_eq!(init["data_dir"], d);
    assert_eq!(init["root_version"], 1);
    assert_eq!(init["bins"], 1024);
    let secret = init["token"]["secret"].as_str().unwrap();
    assert!(secret.starts_with("ks_"), "{init}");
    assert!(
        init["token"]["id"].as_str().unwrap().starts_with("tok-"),
        "{init}"
    );
    let tsa = &init["timestamp_authority"];
    assert!(
        Path::new(tsa["ca_certificate"].as_str().unwrap()).is_file(),
        "{init}"
    );
    assert!(
        Path::new(tsa["certificate_chain"].as_str().unwrap()).is_file(),
        "{init}"
    );

    // publish: what it wrote, then nothing the second time.
    let site = tmp.path().join("site");
    let s = site.to_str().unwrap();
    let first = json(&["publish", "--data-dir", d, "--to", s, "--output", "json"]);
    assert_eq!(first["to"], s);
    let written = first["written"].as_u64().unwrap();
    assert!(written > 0, "{first}");
    assert_eq!(first["unchanged"], 0);
    let second = json(&["publish", "--data-dir", d, "--to", s, "--output", "json"]);
    assert_eq!(second["written"], 0, "{second}");
    assert_eq!(second["unchanged"], written, "{second}");
    // The pinned hash init printed is the published root's.
    let root = site.join("metadata/1.root.json");
    assert_eq!(
        init["root_sha256"].as_str().unwrap(),
        sha256_hex(&std::fs::read(&root).unwrap())
    );

    // export: the bundle's facts.
    let bundle = tmp.path().join("state.bundle");
    let b = bundle.to_str().unwrap();
    let exported = json(&["export", "--data-dir", d, "--out", b, "--output", "json"]);
    assert_eq!(exported["file"], b);
    assert_eq!(
        exported["bytes"].as_u64().unwrap(),
        std::fs::metadata(&bundle).unwrap().len()
    );
    assert!(
        exported["entries"].as_u64().unwrap() >= written,
        "{exported}"
    );
    let version = exported["timestamp_version"].as_u64().unwrap();
    assert!(version >= timestamp_version(&site), "{exported}");
    keyshare_policy::datetime::parse_rfc3339(exported["expires"].as_str().unwrap()).unwrap();

    // An error in JSON mode is still one line on stderr, nothing on stdout.
    let refused = run(&["export", "--data-dir", d, "--out", b, "--output", "json"]);
    let line = assert_one_line_error(&refused);
    assert!(line.contains("exists"), "{line}");
    assert!(refused.stdout.is_empty());

    // A replica pinned to that root, then the bundle imported into it.
    let replica = tmp.path().join("replica");
    let r = replica.to_str().unwrap();
    let pinned = json(&[
        "init",
        "--replica",
        "--root",
        root.to_str().unwrap(),
        "--data-dir",
        r,
        "--output",
        "json",
    ]);
    assert_eq!(pinned["replica"], true);
    assert_eq!(pinned["data_dir"], r);
    assert_eq!(pinned["root_version"], 1);
    assert_eq!(pinned["root_sha256"], init["root_sha256"]);

    let imported = json(&["import", b, "--data-dir", r, "--output", "json"]);
    assert_eq!(imported["file"], b);
    assert_eq!(imported["timestamp_version"], version);
    assert_eq!(imported["previous_timestamp_version"], Value::Null);
    assert_eq!(imported["expires"], exported["expires"]);
    assert!(imported["files"].as_u64().unwrap() > 0, "{imported}");
    // Again: the same state, now with a previous version.
    let again = json(&["import", b, "--data-dir", r, "--output", "json"]);
    assert_eq!(again["previous_timestamp_version"], version, "{again}");

    // The replica serves it, its address announced in JSON too.
    let serving = Serving::start(&[
        "serve",
        "--replica",
        "--data-dir",
        r,
        "--listen",
        "127.0.0.1:0",
        "--output",
        "json",
    ]);
    let address = serving.address();
    assert!(
        get(&address, "/metadata/timestamp.json").starts_with("HTTP/1.1 200"),
        "the replica serves its state"
    );
    serving.stop();
}

/// A `serve` started with `args`, its stdout lines, and the JSON line it
/// announced its address with.
struct Serving {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    announced: Value,
}

impl Serving {
    fn start(args: &[&str]) -> Self {
        let mut child = keyshare(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve printed no address: {e}");
            }
        };
        let announced: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON line ({e}): {line:?}"));
        Self {
            child,
            lines,
            announced,
        }
    }

    /// The address announced, checked against the URL beside it.
    fn address(&self) -> String {
        let a = &self.announced;
        let address = a["address"].as_str().unwrap().to_owned();
        assert!(address.starts_with("127.0.0.1:"), "{a}");
        assert_ne!(address, "127.0.0.1:0", "the real port: {a}");
        assert_eq!(a["listening"], format!("http://{address}"));
        assert_eq!(a["tls"], false);
        address
    }

    /// SIGTERM; exit 0 with nothing more on stdout.
    fn stop(mut self) {
        let status = keyshare_testkit::fixture::sigterm_and_wait(
            &mut self.child,
            Duration::from_secs(30),
            "serve",
        );
        assert!(status.success(), "{status:?}");
        assert!(self.lines.recv_timeout(Duration::from_secs(5)).is_err());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from `address`: the status line.
fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn serve_announces_its_address_as_one_json_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    json(&["init", "--data-dir", d, "--output", "json"]);
    let serving = Serving::start(&[
        "serve",
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--output",
        "json",
    ]);
    let address = serving.address();
    assert!(
        get(&address, "/metadata/1.root.json").starts_with("HTTP/1.1 200"),
        "it serves there"
    );
    serving.stop();
}

#[test]
fn an_unknown_output_mode_is_a_one_line_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let out = run(&[
        "init",
        "--data-dir",
        d.to_str().unwrap(),
        "--output",
        "yaml",
    ]);
    let line = assert_one_line_error(&out);
    assert!(line.contains("yaml") && line.contains("json"), "{line}");
    assert!(!d.exists(), "nothing is created on a usage error");
}

#[test]
fn bash_completion_names_the_commands_and_parses() {
    let out = run(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
    let script = String::from_utf8(out.stdout).unwrap();
    let registers = script.lines().map(str::trim).any(|l| {
        l.starts_with("complete -F _keyshare__server ") && l.ends_with(" keyshare-server")
    });
    assert!(registers, "no `complete -F ... keyshare-server` line");
    for sub in [
        "serve",
        "init",
        "publish",
        "export",
        "import",
        "--data-dir",
        "--replica",
    ] {
        assert!(script.contains(sub), "the script does not mention `{sub}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyshare-server.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("serve"),
            "{shell}"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_one_line_usage_error() {
    let out = run(&["completions", "tcsh"]);
    let line = assert_one_line_error(&out);
    assert!(line.contains("tcsh") && line.contains("bash"), "{line}");
    assert!(out.stdout.is_empty());
}

#[test]
fn man_writes_a_page_per_command_that_man_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let out = run(&["man", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "keyshare-server-completions.1",
            "keyshare-server-export.1",
            "keyshare-server-import.1",
            "keyshare-server-init.1",
            "keyshare-server-man.1",
            "keyshare-server-migrate-store.1",
            "keyshare-server-openapi.1",
            "keyshare-server-publish.1",
            "keyshare-server-serve.1",
            "keyshare-server.1",
        ]
    );
    let page = keyshare_testkit::fixture::render_man_page(&dir.join("keyshare-server-serve.1"));
    assert!(
        page.contains("Serve the TUF repository and the admin API until SIGINT or SIGTERM"),
        "{page}"
    );
    assert!(page.contains("--tls-cert"), "{page}");
    let top = keyshare_testkit::fixture::render_man_page(&dir.join("keyshare-server.1"));
    assert!(top.contains("The organization's keyshare service"), "{top}");
}
