#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! Air-gap import memory on a lone laptop, from the attacker's side:
//! crafted bundle files, sparse and claiming far more than a bundle may
//! hold, given to the real `keyshare refresh --from-bundle`, whose peak
//! resident memory is measured (testkit's [`Measured`], under a generous
//! address-space cap). Each is refused with exit 1 and one line naming the
//! problem, within the bound, and the cache keeps its last good state byte
//! for byte. A genuine bundle still refreshes within the same bound.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration as StdDuration, Instant};

use time::{Duration, OffsetDateTime};

use crate::common::{new_key, Client, Run, Server};
use keyshare_server::publisher::Change;
use keyshare_testkit::crafted::crafted_bundles;
use keyshare_testkit::memory::Measured;

/// The bound on the peak resident memory of every `keyshare` here, in
/// KiB: the binary's own baseline (about 30 MiB for a small refresh) plus
/// the reader's bound (a manifest of up to 16 MiB, twice, and one entry
/// of up to 16 MiB) and the trust documents a refresh holds, with room to
/// spare; far below the 1 GiB and more the crafted files claim.
const LIMIT_KIB: u64 = 256 * 1024;

const DEADLINE: StdDuration = StdDuration::from_secs(60);

/// `keyshare ARGS --cache-dir CACHE`, its memory measured.
fn limited(client: &Client, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    let cache = client.cache();
    all.extend(["--cache-dir", cache.to_str().unwrap()]);
    run_limited(r#""$0" "$@""#, &all)
}

/// `keyshare refresh --from-bundle <(cat FILE) --cache-dir CACHE`, its
/// memory measured: the bundle comes through a pipe.
fn limited_through_a_pipe(client: &Client, file: &std::path::Path) -> Run {
    let cache = client.cache();
    run_limited(
        r#""$0" refresh --from-bundle <(cat "$1") --cache-dir "$2""#,
        &[file.to_str().unwrap(), cache.to_str().unwrap()],
    )
}

/// Runs `command` with bash, `$0` being the `keyshare` binary and `$1`...
/// `args`, at most [`DEADLINE`]; asserts its peak resident memory stayed
/// within [`LIMIT_KIB`].
fn run_limited(command: &str, args: &[&str]) -> Run {
    let measured = Measured::new();
    let mut cmd = measured.bash(command);
    cmd.arg(env!("CARGO_BIN_EXE_keyshare")).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYSHARE_") {
            cmd.env_remove(&name);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keyshare {args:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(StdDuration::from_millis(20));
    };
    let run = Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    let peak = measured.peak_rss_kib();
    assert!(
        peak <= LIMIT_KIB,
        "keyshare {args:?} used {peak} KiB, more than {LIMIT_KIB} KiB: {run:?}"
    );
    run
}

/// Writes a bundle of the server's current state, valid for 30 days.
fn export_bundle(server: &Server, path: &std::path::Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    keyshare_server::airgap::export(
        &server.publisher,
        "test",
        Duration::days(30),
        OffsetDateTime::now_utc(),
        &mut out,
        &mut |_, _| {},
    )
    .unwrap();
}

/// A laptop pinned from a root file (nothing fetched, nothing reachable).
fn laptop(server: &Server) -> Client {
    let client = Client::new();
    let root = client.write("root.json", &String::from_utf8(server.root1()).unwrap());
    client
        .run(&[
            "init",
            "--server",
            "http://127.0.0.1:9",
            "--root",
            root.to_str().unwrap(),
        ])
        .assert_ok();
    client
}

#[test]
fn air_gap_import_memory_refresh_from_bundle_refuses_a_sparse_bundle_within_bounded_memory() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (k, _) = new_key();
    server.add_key("team-a", "k1", &k, None);
    let client = laptop(&server);
    let good = client.dir.path().join("good.bundle");
    export_bundle(&server, &good);
    client
        .run(&["refresh", "--from-bundle", good.to_str().unwrap()])
        .assert_ok();
    let before = client.snapshot();

    for crafted in crafted_bundles(client.dir.path(), &server.root1()) {
        let (what, path) = (crafted.what, &crafted.path);
        let run = limited(
            &client,
            &["refresh", "--from-bundle", path.to_str().unwrap()],
        );
        let line = run.assert_error_line(1);
        // One line about the bundle, named once (never "bundle: bundle ...").
        assert!(line.starts_with("error: "), "{what}: {line}");
        assert!(line.contains("bundle"), "{what}: {line}");
        assert!(!line.contains("bundle: bundle"), "{what}: {line}");
        for name in crafted.says {
            assert!(line.contains(name), "{what}: {line} (expected {name:?})");
        }
        assert_eq!(client.snapshot(), before, "{what}: the cache changed");
        std::fs::remove_file(path).unwrap();
    }
    // The laptop still decides from its last good state.
    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "k1"]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn air_gap_import_memory_refresh_from_bundle_of_a_valid_large_bundle_stays_within_the_bound() {
    let server = Server::start();
    for i in 0..40 {
        let name = format!("team-{i}");
        server.create_namespace(&name, &[&format!("registry.acme.io/{name}/**")], 1);
        let (k, _) = new_key();
        server.add_key(&name, "k1", &k, None);
    }
    // Organization root certificates carrying 4 MiB of explanatory text
    // each before their PEM block (which PEM allows): 24 MiB of trust
    // documents, each one entry.
    let padding: String = (0..(4 << 20) / 64)
        .map(|i| format!("{:<63}\n", format!("explanatory text, line {i}")))
        .collect();
    for i in 0..6 {
        let pem = keyshare_testkit::ca_pem(&format!("Acme Root {i}"));
        server.apply(Change::PutOrgRoot {
            name: format!("root-{i}"),
            pem: format!("{padding}{pem}"),
        });
    }
    let client = laptop(&server);
    let bundle = client.dir.path().join("site.bundle");
    export_bundle(&server, &bundle);
    assert!(std::fs::metadata(&bundle).unwrap().len() > 25_000_000);
    let run = limited(
        &client,
        &["refresh", "--from-bundle", bundle.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("40 namespaces"), "{run:?}");
    let (code, v) = client.decide_json("registry.acme.io/team-7/app", &["--key-id", "k1"]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn air_gap_import_memory_refresh_from_bundle_through_a_pipe_is_spooled_within_the_bound() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (k, _) = new_key();
    server.add_key("team-a", "k1", &k, None);
    let client = laptop(&server);
    let good = client.dir.path().join("good.bundle");
    export_bundle(&server, &good);

    // A pipe cannot be read twice: the bundle is spooled as it is checked.
    let run = limited_through_a_pipe(&client, &good);
    assert_eq!(run.code, Some(0), "{run:?}");
    let before = client.snapshot();
    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "k1"]);
    assert_eq!(code, 0, "{v}");

    // A crafted gigabyte through the pipe is refused after the root
    // chain: nothing is spooled past it, nothing is left behind.
    let crafted = crafted_bundles(client.dir.path(), &server.root1());
    let unsigned = crafted
        .iter()
        .find(|c| c.what == "1 GiB under an unsigned manifest")
        .unwrap();
    let run = limited_through_a_pipe(&client, &unsigned.path);
    let line = run.assert_error_line(1);
    for name in &unsigned.says {
        assert!(line.contains(name), "{line} (expected {name:?})");
    }
    assert_eq!(client.snapshot(), before);
}
