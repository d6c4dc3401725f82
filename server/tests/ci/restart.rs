//! CI state that must survive a restart of `keyshare-server serve`: used
//! ID tokens and nonces (replay after restart), and the secret nonces and
//! principals are made with (made by `init`, or on the first start of a
//! data directory made before; never in the database or the log).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::bin_common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::ci_common::{answer, delegation_body, job_key, Issuer, AUDIENCE};
use bin_common::{keyshare, parse_init, run_within};

const DEADLINE: Duration = Duration::from_secs(60);
const SECRET: &str = "keys/ci-secret";

/// `init` in `dir` with a `[ci]` section trusting `issuer` for `team-a`;
/// returns the org-admin token.
fn init(dir: &Path, issuer: &Issuer) -> String {
    let data = dir.to_str().unwrap();
    let init = parse_init(&run_within(
        keyshare(&["init", "--data-dir", data]),
        DEADLINE,
    ));
    let config = dir.join("keyshare.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[ci]\n# The test issuer listens on loopback.\nallow_private_addresses = true\n[[ci.issuers]]\nurl = \"{url}\"\naudience = \"{AUDIENCE}\"\n\
         [[ci.rules]]\nissuer = \"{url}\"\nnamespaces = [\"team-a\"]\nclaims = {{ repository = \"acme/*\" }}\n",
        url = issuer.url
    ));
    std::fs::write(&config, text).unwrap();
    init.token
}

/// A running server; killed (no clean shutdown) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(dir: &Path, log: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = keyshare(&[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no address: {line:?}"))
            .to_owned();
        Self { child, base }
    }

    fn nonce(&self) -> String {
        let (status, body) = answer(ureq::post(&format!("{}/api/v1/ci/nonce", self.base)).call());
        assert_eq!(status, 201, "{body}");
        body["nonce"].as_str().unwrap().to_owned()
    }

    fn delegate(&self, token: &str, nonce: &str) -> (u16, Value) {
        answer(
            ureq::post(&format!("{}/api/v1/ci/delegations", self.base))
                .set("Authorization", &format!("Bearer {token}"))
                .send_json(delegation_body(nonce, "team-a", &job_key())),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token of `issuer` valid now (real time), with a fresh `jti`.
fn token(issuer: &Issuer) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = issuer.claims();
    claims["iat"] = json!(now - 10);
    claims["nbf"] = json!(now - 10);
    claims["exp"] = json!(now + 600);
    issuer.sign(&claims, "RS256")
}

/// A data directory with `team-a`, served; returns the server.
fn serve_with_team_a(dir: &Path, issuer: &Issuer) -> Server {
    let admin = init(dir, issuer);
    let server = Server::start(dir, &dir.join("serve.log"));
    let (status, body) = answer(
        ureq::post(&format!("{}/api/v1/namespaces", server.base))
            .set("Authorization", &format!("Bearer {admin}"))
            .send_json(json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})),
    );
    assert_eq!(status, 201, "{body}");
    server
}

#[test]
fn replay_after_restart_the_same_id_token_is_refused() {
    let issuer = Issuer::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve_with_team_a(dir, &issuer);
    let used = token(&issuer);
    let (status, body) = server.delegate(&used, &server.nonce());
    assert_eq!(status, 201, "{body}");
    // The server stops without warning and starts again on the same data.
    drop(server);
    let server = Server::start(dir, &dir.join("serve.log"));
    let (status, body) = server.delegate(&used, &server.nonce());
    assert_eq!(
        status, 401,
        "the token was used again after a restart: {body}"
    );
    assert_eq!(body["error"]["code"], "replay", "{body}");
    // A fresh token of the same job is fine.
    let (status, body) = server.delegate(&token(&issuer), &server.nonce());
    assert_eq!(status, 201, "{body}");
}

#[test]
fn replay_after_restart_the_same_nonce_is_refused() {
    let issuer = Issuer::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve_with_team_a(dir, &issuer);
    let used = server.nonce();
    let unused = server.nonce();
    let (status, body) = server.delegate(&token(&issuer), &used);
    assert_eq!(status, 201, "{body}");
    drop(server);
    let server = Server::start(dir, &dir.join("serve.log"));
    let (status, body) = server.delegate(&token(&issuer), &used);
    assert_eq!(
        status, 400,
        "the nonce was used again after a restart: {body}"
    );
    assert_eq!(body["error"]["code"], "bad_nonce", "{body}");
    // A nonce issued before the restart and not used is still good.
    let (status, body) = server.delegate(&token(&issuer), &unused);
    assert_eq!(status, 201, "{body}");
}

/// The secret's bytes, hex and raw, must not be in `file`.
fn assert_secret_absent(file: &Path, secret_hex: &str) {
    let Ok(bytes) = std::fs::read(file) else {
        return;
    };
    let raw = hex::decode(secret_hex).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains(secret_hex),
        "{} holds the CI secret",
        file.display()
    );
    assert!(
        !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
        "{} holds the CI secret",
        file.display()
    );
}

fn read_secret(dir: &Path) -> String {
    let path = dir.join(SECRET);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
    let text = std::fs::read_to_string(&path).unwrap();
    let secret = text.trim().to_owned();
    assert_eq!(secret.len(), 64, "32 bytes, hex");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    secret
}

#[test]
fn ci_secret_is_made_by_init_and_on_first_start_for_older_data_directories() {
    let issuer = Issuer::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, &issuer);
    let made_by_init = read_secret(dir);
    // A data directory from before the secret existed: the first start makes it.
    std::fs::remove_file(dir.join(SECRET)).unwrap();
    let log = dir.join("serve.log");
    let server = Server::start(dir, &log);
    let made_at_start = read_secret(dir);
    assert_ne!(made_by_init, made_at_start);
    let n = server.nonce();
    drop(server);
    // The next start keeps it: a nonce from before the restart still verifies.
    let server = Server::start(dir, &log);
    assert_eq!(read_secret(dir), made_at_start);
    let (status, body) = server.delegate(&token(&issuer), &n);
    // team-a does not exist here: the nonce passed, the namespace did not.
    assert_ne!(body["error"]["code"], "bad_nonce", "{status} {body}");
    drop(server);
    // Never in the database or the log.
    for name in ["keyshare.db", "keyshare.db-wal", "serve.log"] {
        assert_secret_absent(&dir.join(name), &made_at_start);
    }
    // A secret readable by others is refused.
    std::fs::set_permissions(dir.join(SECRET), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_within(
        keyshare(&["serve", "--data-dir", dir.to_str().unwrap()]),
        DEADLINE,
    );
    let line = bin_common::assert_one_line_error(&out);
    assert!(
        line.contains("ci-secret") && line.contains("chmod 600"),
        "{line}"
    );
}
