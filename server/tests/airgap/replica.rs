#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

//! The replica as a process: `init --replica`, `import`, `serve --replica`.
//!
//! * a running replica serves each import from the next request on, answers
//!   every admin call with 403, a TUF client over HTTP decides as it would
//!   at the origin, and python-tuf's `ngclient.Updater` accepts it (needs a
//!   Python with `tuf` 7.x: `KEYSHARE_PYTHON` or `target/pyenv`);
//! * `import` killed with SIGKILL at many points leaves the old state or
//!   the new one, each fully verifiable, never a mix;
//! * bad input to the commands is one `error:` line and exit 1.

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration as StdDuration;

use crate::bin_common::{assert_one_line_error, keyshare, python, run_within};
use common::{decisions, trust_set, Origin};
use keyshare_airgap::read_manifest;
use keyshare_server::airgap::{Replica, ReplicaFiles};
use time::{Duration, OffsetDateTime};

const DEADLINE: StdDuration = StdDuration::from_secs(30);

fn timestamp_version(bundle: &[u8]) -> u64 {
    read_manifest(&mut &bundle[..])
        .unwrap()
        .signed
        .timestamp_version
}

fn run(args: &[&str]) -> std::process::Output {
    run_within(keyshare(args), DEADLINE)
}

fn init_replica(dir: &Path, origin: &Origin) {
    let root = dir.join("pinned-root.json");
    std::fs::write(&root, &origin.pinned_root).unwrap();
    let data = dir.join("replica");
    let out = run(&[
        "init",
        "--replica",
        "--data-dir",
        data.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("root sha256: "), "{text}");
}

fn import(dir: &Path, bundle: &Path) -> std::process::Output {
    run(&[
        "import",
        "--data-dir",
        dir.join("replica").to_str().unwrap(),
        bundle.to_str().unwrap(),
    ])
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_replica(dir: &Path) -> Server {
    let mut child = keyshare(&[
        "serve",
        "--replica",
        "--data-dir",
        dir.join("replica").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .stdin(Stdio::null())
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
        .unwrap_or_else(|| panic!("no address line: {line:?}"))
        .to_owned();
    Server { child, base }
}

/// GET (or another method) → (status, body).
fn call(method: &str, url: &str) -> (u16, Vec<u8>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(StdDuration::from_secs(10))
        .build();
    let response = match agent.request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    (status, body)
}

#[test]
fn running_replica_serves_each_import_and_refuses_admin_calls() {
    let now = OffsetDateTime::now_utc();
    let origin = Origin::new(now);
    let tmp = tempfile::tempdir().unwrap();
    let b1 = origin.export(Duration::days(7), now);
    origin.apply(common::create("team-c", "registry.acme.io/team-c/**"));
    let b2 = origin.export(Duration::days(7), now);
    let (p1, p2) = (tmp.path().join("b1.bundle"), tmp.path().join("b2.bundle"));
    std::fs::write(&p1, &b1).unwrap();
    std::fs::write(&p2, &b2).unwrap();
    init_replica(tmp.path(), &origin);

    // Before the first import there is nothing to serve, but the server runs.
    let server = serve_replica(tmp.path());
    let (status, _) = call("GET", &format!("{}/metadata/timestamp.json", server.base));
    assert_eq!(status, 404);

    let out = import(tmp.path(), &p1);
    assert!(out.status.success(), "{out:?}");
    let served_version = || {
        let (status, body) = call("GET", &format!("{}/metadata/timestamp.json", server.base));
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["signed"]["version"].as_u64().unwrap()
    };
    assert_eq!(served_version(), timestamp_version(&b1));
    let out = import(tmp.path(), &p2);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(served_version(), timestamp_version(&b2));

    // A plain TUF client over HTTP decides as at the origin.
    let fetch = |path: &str| {
        let (status, body) = call("GET", &format!("{}/{path}", server.base));
        (status == 200).then_some(body)
    };
    let at = now + Duration::minutes(1);
    let replica_set = trust_set(&origin.pinned_root, at, &fetch).unwrap();
    let origin_set = trust_set(&origin.pinned_root, at, &origin.fetch()).unwrap();
    assert_eq!(
        decisions(&origin, &replica_set, at),
        decisions(&origin, &origin_set, at)
    );

    // So does python-tuf, the reference client, with its own expiry checks.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/updater_against_server.py");
    let root = tmp.path().join("pinned-root.json");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(&script)
        .arg(&server.base)
        .arg(&root)
        .args(["org/revocations.json", "namespaces/team-c/trust.json"]);
    let out = run_within(cmd, DEADLINE);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("timestamp={}", timestamp_version(&b2))),
        "{text}"
    );

    // Admin calls, reads and writes alike: 403, JSON, saying why.
    for (method, path) in [
        ("POST", "/api/v1/namespaces"),
        ("GET", "/api/v1/namespaces"),
        ("DELETE", "/api/v1/namespaces/team-a"),
        ("PUT", "/api/v1/peers/x"),
        ("POST", "/api/v1/export"),
    ] {
        let (status, body) = call(method, &format!("{}{path}", server.base));
        assert_eq!(status, 403, "{method} {path}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "replica", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("replica"),
            "{v}"
        );
    }

    // A refused import changes nothing that is served.
    let out = import(tmp.path(), &p1);
    let line = assert_one_line_error(&out);
    assert!(line.contains("rollback"), "{line}");
    assert_eq!(served_version(), timestamp_version(&b2));
}

#[test]
fn import_killed_at_any_point_leaves_the_old_or_the_new_state() {
    let now = OffsetDateTime::now_utc();
    let origin = Origin::new(now);
    let old = origin.export(Duration::days(7), now);
    origin.add_bulk(60);
    let new = origin.export(Duration::days(7), now);
    let (v_old, v_new) = (timestamp_version(&old), timestamp_version(&new));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("new.bundle");
    std::fs::write(&path, &new).unwrap();
    let mut outcomes = (0, 0);
    for delay_ms in [0u64, 5, 20, 50, 100, 150, 200, 300, 500] {
        let round = tempfile::tempdir().unwrap();
        Replica::init(&round.path().join("replica"), &origin.pinned_root).unwrap();
        let replica = Replica::open(&round.path().join("replica")).unwrap();
        replica.import(&old, now).unwrap();
        let mut child = keyshare(&[
            "import",
            "--data-dir",
            round.path().join("replica").to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(StdDuration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // Verified again from disk: one whole state or the other.
        let current = replica.current().unwrap().expect("a state");
        let version = current.manifest().timestamp_version;
        assert!(
            version == v_old || version == v_new,
            "{delay_ms} ms: {version}"
        );
        if version == v_old {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
        // What a restarted server serves is that state, byte for byte.
        let served =
            ReplicaFiles::open(Replica::open(&round.path().join("replica")).unwrap()).unwrap();
        for p in current.paths() {
            let bytes = current.file(p).unwrap().unwrap();
            assert_eq!(&*served.file(p).unwrap().bytes, &bytes[..], "{p}");
        }
        // And the import can be finished.
        replica.import(&new, now).unwrap();
    }
    println!(
        "killed imports: {} left the old state, {} the new",
        outcomes.0, outcomes.1
    );
}

#[test]
fn bad_input_to_the_commands_is_one_error_line() {
    let now = OffsetDateTime::now_utc();
    let origin = Origin::new(now);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("replica");
    let data = data.to_str().unwrap();
    let garbage = tmp.path().join("garbage");
    std::fs::write(&garbage, b"{\"not\": \"a root\"}").unwrap();

    // Importing before init --replica.
    let line = assert_one_line_error(&run(&[
        "import",
        "--data-dir",
        data,
        garbage.to_str().unwrap(),
    ]));
    assert!(line.contains("not a replica"), "{line}");
    // A root that is not a root.
    let line = assert_one_line_error(&run(&[
        "init",
        "--replica",
        "--data-dir",
        data,
        "--root",
        garbage.to_str().unwrap(),
    ]));
    assert!(line.contains("root"), "{line}");
    init_replica(tmp.path(), &origin);
    // Twice.
    let root = tmp.path().join("pinned-root.json");
    let line = assert_one_line_error(&run(&[
        "init",
        "--replica",
        "--data-dir",
        data,
        "--root",
        root.to_str().unwrap(),
    ]));
    assert!(line.contains("already"), "{line}");
    // Not a bundle.
    let line = assert_one_line_error(&import(tmp.path(), &garbage));
    assert!(line.contains("not a keyshare bundle"), "{line}");

    // export: a window over the cap, and a data directory with no repository.
    let origin_dir = tmp.path().join("origin");
    let out = run(&["init", "--data-dir", origin_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let bundle = tmp.path().join("out.bundle");
    let line = assert_one_line_error(&run(&[
        "export",
        "--data-dir",
        origin_dir.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--valid-for",
        "31d",
    ]));
    assert!(line.contains("valid_for"), "{line}");
    assert!(!bundle.exists());
    let out = run(&[
        "export",
        "--data-dir",
        origin_dir.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--valid-for",
        "2d",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("exported "));
    // stderr is not a terminal here: no progress bar is drawn.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn healthz(server: &Server) -> serde_json::Value {
    let (status, body) = call("GET", &format!("{}/healthz", server.base));
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn the_replica_healthz_shows_each_import_before_any_metadata_request() {
    let now = OffsetDateTime::now_utc();
    let origin = Origin::new(now);
    let tmp = tempfile::tempdir().unwrap();
    let b1 = origin.export(Duration::days(7), now);
    let b2 = origin.export(Duration::days(3), now);
    let (p1, p2) = (tmp.path().join("b1.bundle"), tmp.path().join("b2.bundle"));
    std::fs::write(&p1, &b1).unwrap();
    std::fs::write(&p2, &b2).unwrap();
    init_replica(tmp.path(), &origin);
    let server = serve_replica(tmp.path());
    let health = healthz(&server);
    assert_eq!(health["mode"], "replica", "{health}");
    assert_eq!(
        health["timestamp_version"],
        serde_json::Value::Null,
        "{health}"
    );

    // Only /healthz is asked, never a metadata file: a monitor watching it
    // sees each import at once.
    for (path, bundle, days) in [(&p1, &b1, 7), (&p2, &b2, 3)] {
        let out = import(tmp.path(), path);
        assert!(out.status.success(), "{out:?}");
        let health = healthz(&server);
        assert_eq!(
            health["timestamp_version"],
            timestamp_version(bundle),
            "{health}"
        );
        let expires = time::OffsetDateTime::parse(
            health["expires"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(
            (expires - (now + Duration::days(days))).abs() < Duration::minutes(1),
            "{health}"
        );
    }
}

#[test]
fn a_second_import_while_one_holds_the_replica_refuses_naming_it() {
    let now = OffsetDateTime::now_utc();
    let origin = Origin::new(now);
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b.bundle");
    std::fs::write(&bundle, origin.export(Duration::days(7), now)).unwrap();
    init_replica(tmp.path(), &origin);
    let data = tmp.path().join("replica");
    // Another import (this process) holds the replica.
    let held = keyshare_server::lock::DataDirLock::acquire(&data, "import").unwrap();
    let line = assert_one_line_error(&import(tmp.path(), &bundle));
    assert_eq!(
        line,
        format!(
            "error: {} is in use by keyshare-server import (pid {}); one import at a time: wait for it to finish",
            data.display(),
            std::process::id()
        )
    );
    // So is init --replica on it.
    let root = tmp.path().join("pinned-root.json");
    let line = assert_one_line_error(&run(&[
        "init",
        "--replica",
        "--data-dir",
        data.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]));
    assert!(
        line.contains("is in use by keyshare-server import"),
        "{line}"
    );
    assert!(Replica::open(&data).unwrap().current().unwrap().is_none());
    drop(held);
    let out = import(tmp.path(), &bundle);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn export_refuses_to_overwrite_an_existing_file_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let o = origin.to_str().unwrap();
    let out = run(&["init", "--data-dir", o]);
    assert!(out.status.success(), "{out:?}");
    let first = tmp.path().join("first.bundle");
    let out = run(&["export", "--data-dir", o, "--out", first.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let first_version = timestamp_version(&std::fs::read(&first).unwrap());

    // A file that is not ours, and the bundle from before.
    let precious = tmp.path().join("notes.txt");
    std::fs::write(&precious, "not a bundle").unwrap();
    for existing in [&precious, &first] {
        let before = std::fs::read(existing).unwrap();
        let line = assert_one_line_error(&run(&[
            "export",
            "--data-dir",
            o,
            "--out",
            existing.to_str().unwrap(),
        ]));
        assert!(
            line.contains("exists") && line.contains("--force"),
            "{line}"
        );
        assert_eq!(std::fs::read(existing).unwrap(), before);
    }
    // The refusals signed nothing: the next export's edition follows the
    // first export's (re-signed roles, the edition, the online versions
    // after it) with no versions used up in between.
    let out = run(&[
        "export",
        "--data-dir",
        o,
        "--out",
        first.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.status.success(), "{out:?}");
    let second_version = timestamp_version(&std::fs::read(&first).unwrap());
    assert_eq!(second_version, first_version + 3);
}
