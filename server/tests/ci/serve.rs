//! `keyshare-server serve` with a `[ci]` section in `keyshare.toml`: the
//! CI endpoints answer; a bad section stops the server with one line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::bin_common::{assert_one_line_error, keyshare, parse_init, run_within};

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

/// The output of `serve` in this process, line by line.
struct Lines(std::sync::mpsc::Sender<String>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `serve` hands its one clock to the CI expiry sweeper (it used to make
/// a second, system clock for it): a delegation that the wall clock says
/// is good for ten more minutes is swept within a sweep interval once the
/// injected clock passes its `not_after`, with no real waiting for it.
#[test]
fn the_ci_sweeper_of_serve_follows_the_injected_clock() {
    use std::num::NonZeroU32;

    use keyshare_policy::keys::Scheme;
    use keyshare_policy::pattern::ArtifactPattern;
    use keyshare_policy::sign::{InMemorySigner, Signer};
    use keyshare_policy::trust::{NamespaceEntry, NamespaceName, Principal, TrustedKey};
    use keyshare_server::clock::Clock;
    use keyshare_server::config::{Config, Flags};
    use keyshare_server::data_dir::DataDir;
    use keyshare_server::publisher::{Change, Publisher};
    use keyshare_server::store::{CiOwner, Store};
    use time::OffsetDateTime;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    keyshare_server::commands::init(&dir, None, &mut Vec::new()).unwrap();
    let layout = DataDir::new(&dir);
    let mut text = std::fs::read_to_string(layout.config()).unwrap();
    text.push_str("\n[ci]\nsweep_interval = \"1s\"\n");
    std::fs::write(layout.config(), text).unwrap();
    let flags = Flags {
        listen: Some("127.0.0.1:0".into()),
        ..Flags::default()
    };
    let config = Config::load(&dir, &flags).unwrap();

    // A delegation good for ten minutes by the wall clock.
    let start = OffsetDateTime::now_utc();
    let team_a = NamespaceName::parse("team-a").unwrap();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    {
        let online = keyshare_server::keys::load_online(&config.keys, &dir).unwrap();
        let store = Store::open(layout.db()).unwrap();
        let publisher = Publisher::open(store, online, config.repo_options()).unwrap();
        let create = Change::CreateNamespace {
            entry: NamespaceEntry {
                name: team_a.clone(),
                scopes: vec![ArtifactPattern::parse("registry.acme.io/team-a/**").unwrap()],
                maintainers: vec![],
            },
            threshold: NonZeroU32::MIN,
            allow_overlap: false,
        };
        publisher.apply("test", create, start).unwrap();
        let delegate = Change::DelegateCi {
            namespace: team_a.clone(),
            key: TrustedKey {
                id: key.key_id().clone(),
                key: key.public_key().clone(),
                not_before: Some(start),
                not_after: Some(start + time::Duration::minutes(10)),
                ephemeral: true,
                description: Some("CI delegation".into()),
                principal: Some(Principal::parse("p1").unwrap()),
                layout_root: false,
            },
            owner: CiOwner::Token { id: "t1".into() },
            single_use: vec![],
        };
        publisher.apply("test", delegate, start).unwrap();
    }
    let listed = || {
        Store::open_existing(layout.db())
            .unwrap()
            .keys("team-a")
            .unwrap()
            .iter()
            .any(|k| k.key.id == *key.key_id())
    };
    assert!(listed());

    // serve in this process, with a settable clock that starts now.
    let now = keyshare_testkit::TestClock::at(start);
    let clock: Clock = now.clock();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let server = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let shutdown = move || {
                Ok(async move {
                    let _ = stop_rx.await;
                })
            };
            keyshare_server::commands::serve::run(
                &dir,
                &config,
                clock,
                shutdown,
                &mut Lines(lines_tx),
            )
        })
    };
    let mut line = String::new();
    while !line.ends_with('\n') {
        line.push_str(&lines_rx.recv_timeout(DEADLINE).unwrap());
    }
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    // The maintenance task's first round (at start) runs by the same
    // clock: still before not_after, so the key stays.
    std::thread::sleep(Duration::from_millis(500));
    assert!(listed(), "swept before its not_after by the injected clock");

    now.set(start + time::Duration::minutes(11));
    // The sweeper runs every second; maintenance not for another minute.
    let waited = std::time::Instant::now();
    while listed() && waited.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let swept = !listed();
    stop_tx.send(()).unwrap();
    server.join().unwrap().unwrap();
    assert!(swept, "the sweeper did not follow the injected clock");
}
