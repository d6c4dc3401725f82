//! `keyshare-server serve` with a `[ci]` section in `keyshare.toml`: the
//! CI endpoints answer; a bad section stops the server with one line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bin_common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use bin_common::{assert_one_line_error, keyshare, parse_init, run_within};

const DEADLINE: Duration = Duration::from_secs(60);

fn init(dir: &std::path::Path, ci: &str) {
    let data = dir.to_str().unwrap();
    parse_init(&run_within(
        keyshare(&["init", "--data-dir", data]),
        DEADLINE,
    ));
    let config = dir.join("keyshare.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(ci);
    std::fs::write(&config, text).unwrap();
}

#[test]
fn serve_with_a_ci_section_answers_the_ci_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    init(
        dir.path(),
        "\n[ci]\ndefault_ttl = \"5m\"\nsweep_interval = \"10s\"\n[[ci.issuers]]\nurl = \"https://token.actions.githubusercontent.com\"\naudience = \"https://keyshare.test\"\n[[ci.rules]]\nissuer = \"https://token.actions.githubusercontent.com\"\nnamespaces = [\"team-a\"]\nclaims = { repository = \"acme/*\" }\n",
    );
    let mut child = keyshare(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let answer = ureq::post(&format!("{base}/api/v1/ci/nonce")).call();
    let nonce: serde_json::Value = answer.unwrap().into_json().unwrap();
    assert!(
        nonce["nonce"].as_str().unwrap().starts_with("n1."),
        "{nonce}"
    );
    // A token from an issuer that is not configured.
    let refused = ureq::post(&format!("{base}/api/v1/ci/delegations"))
        .set(
            "Authorization",
            "Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V2aWwifQ.c2ln",
        )
        .send_json(serde_json::json!({}));
    match refused {
        Err(ureq::Error::Status(401, r)) => {
            let body: serde_json::Value = r.into_json().unwrap();
            assert_eq!(body["error"]["code"], "wrong_issuer");
        }
        other => panic!("{other:?}"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_ci_section_stops_serve_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), "\n[ci]\ndefault_ttl = \"2h\"\n");
    let out = run_within(
        keyshare(&["serve", "--data-dir", dir.path().to_str().unwrap()]),
        DEADLINE,
    );
    let line = assert_one_line_error(&out);
    assert!(line.contains("ci.default_ttl"), "{line}");
}

#[test]
fn outbound_requests_steered_inward_an_http_or_private_issuer_stops_serve_with_one_line() {
    for url in [
        "http://issuer.example",
        "https://10.0.0.5",
        "https://169.254.169.254",
    ] {
        let dir = tempfile::tempdir().unwrap();
        init(
            dir.path(),
            &format!("\n[ci]\n[[ci.issuers]]\nurl = \"{url}\"\naudience = \"a\"\n"),
        );
        let out = run_within(
            keyshare(&["serve", "--data-dir", dir.path().to_str().unwrap()]),
            DEADLINE,
        );
        let line = assert_one_line_error(&out);
        assert!(line.contains("ci.issuers[0].url"), "{url}: {line}");
        assert!(line.contains(url), "{url}: {line}");
        assert!(line.contains("ci.allow_private_addresses"), "{url}: {line}");
    }
}
