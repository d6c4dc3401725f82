#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

//! `keyshare tuf ...` as a process against a repository built with
//! `keyshare_policy::repo::Repository` and served over loopback: the
//! tuf-conformance client-under-test protocol (init, refresh, download),
//! the files it leaves in the metadata and target directories, and the
//! exact requests it makes.

use crate::tuf_common;

use std::collections::BTreeSet;

use time::{Duration, OffsetDateTime};

use keyshare_policy::client::encode_role;
use keyshare_policy::hash::sha256_hex;
use keyshare_policy::repo::{Options, RoleSpec};
use tuf_common::{assert_failure, assert_success, list, signer, tuf, Fixture};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn tuf_init_makes_no_request_and_stores_the_root_byte_identical() {
    let f = Fixture::new(now());
    f.init();
    assert!(f.server.take_requests().is_empty());
    assert_eq!(f.metadata_files(), set(&["root.json"]));
    assert_eq!(
        std::fs::read(f.metadata_dir.join("root.json")).unwrap(),
        f.served("metadata/1.root.json")
    );
}

#[test]
fn tuf_init_refuses_a_file_that_is_not_a_self_signed_root() {
    let f = Fixture::new(now());
    let not_root = f.dir.path().join("timestamp.json");
    std::fs::write(&not_root, f.served("metadata/timestamp.json")).unwrap();
    let out = tuf(&[
        "--metadata-dir",
        f.metadata_dir.to_str().unwrap(),
        "init",
        not_root.to_str().unwrap(),
    ]);
    assert_failure(&out, "root");
    assert!(f.metadata_files().is_empty());
}

#[test]
fn tuf_refresh_writes_exactly_the_top_level_files_byte_identical() {
    let f = Fixture::new(now());
    f.init();
    assert_success(&f.refresh());
    assert_eq!(
        f.server.take_requests(),
        [
            "/metadata/2.root.json",
            "/metadata/timestamp.json",
            "/metadata/1.snapshot.json",
            "/metadata/1.targets.json"
        ]
    );
    assert_eq!(
        f.metadata_files(),
        set(&[
            "root.json",
            "timestamp.json",
            "snapshot.json",
            "targets.json"
        ])
    );
    for (local, served) in [
        ("root.json", "metadata/1.root.json"),
        ("timestamp.json", "metadata/timestamp.json"),
        ("snapshot.json", "metadata/1.snapshot.json"),
        ("targets.json", "metadata/1.targets.json"),
    ] {
        assert_eq!(
            std::fs::read(f.metadata_dir.join(local)).unwrap(),
            f.served(served),
            "{local}"
        );
    }

    // Still-valid snapshot and targets are read from the cache, not fetched.
    assert_success(&f.refresh());
    assert_eq!(
        f.server.take_requests(),
        ["/metadata/2.root.json", "/metadata/timestamp.json"]
    );
}

#[test]
fn tuf_refresh_counts_root_versions_up_until_404() {
    let t = now();
    let mut f = Fixture::new(t);
    f.init();
    // Two rotations of the root key: v2 and v3.
    let mut old = f.root_key.clone();
    for _ in 0..2 {
        let new = signer();
        let spec = RoleSpec::from_signers(std::slice::from_ref(&new), 1).unwrap();
        f.repo
            .rotate_root(
                |r| {
                    let (id, key) = spec.keys[0].clone();
                    r.keys.insert(id.clone(), key);
                    r.roles.get_mut("root").unwrap().keyids = vec![id];
                },
                &[old],
                std::slice::from_ref(&new),
                t,
            )
            .unwrap();
        old = new;
    }
    f.publish(Vec::new(), t);
    assert_success(&f.refresh());
    let requests = f.server.take_requests();
    assert_eq!(
        requests[..4],
        [
            "/metadata/2.root.json",
            "/metadata/3.root.json",
            "/metadata/4.root.json",
            "/metadata/timestamp.json"
        ]
    );
    assert_eq!(
        std::fs::read(f.metadata_dir.join("root.json")).unwrap(),
        f.served("metadata/3.root.json")
    );
}

#[test]
fn tuf_download_visits_delegated_roles_in_preorder_and_leaves_only_role_files() {
    let t = now();
    let mut f = Fixture::new(t);
    // targets -> a (-> a/1), b; the target is in b, so a and a/1 are
    // visited first (pre-order, depth first), then b.
    f.delegate("targets", "a", &["dir/*"], t);
    f.delegate("a", "a/1", &["dir/*"], t);
    f.delegate("targets", "b", &["dir/*"], t);
    let file = f
        .repo
        .set_target("b", "dir/file.txt", b"in b", None)
        .unwrap();
    f.publish(vec![file], t);
    f.init();
    assert_success(&f.download(&["dir/file.txt"]));
    let requests = f.server.take_requests();
    let sha = sha256_hex(b"in b");
    assert_eq!(
        requests[3..],
        [
            "/metadata/2.targets.json".to_owned(),
            "/metadata/1.a.json".to_owned(),
            "/metadata/1.a%2F1.json".to_owned(),
            "/metadata/1.b.json".to_owned(),
            format!("/targets/dir/{sha}.file.txt"),
        ]
    );
    assert_eq!(
        f.metadata_files(),
        set(&[
            "root.json",
            "timestamp.json",
            "snapshot.json",
            "targets.json",
            "a.json",
            "a%2F1.json",
            "b.json"
        ])
    );
    assert_eq!(
        std::fs::read(f.metadata_dir.join("a%2F1.json")).unwrap(),
        f.served("metadata/1.a%2F1.json")
    );
    // The target is written under its percent-encoded path, and only it.
    assert_eq!(list(&f.target_dir), set(&["dir%2Ffile.txt"]));
    assert_eq!(
        std::fs::read(f.target_dir.join(encode_role("dir/file.txt"))).unwrap(),
        b"in b"
    );
}

#[test]
fn tuf_download_writes_only_verified_bytes_and_skips_a_matching_local_file() {
    let t = now();
    let mut f = Fixture::new(t);
    let one = f
        .repo
        .set_target("targets", "one.txt", b"one", None)
        .unwrap();
    let two = f
        .repo
        .set_target("targets", "two.txt", b"two", None)
        .unwrap();
    f.publish(vec![one.clone(), two.clone()], t);
    f.init();

    assert_success(&f.download(&["one.txt"]));
    assert_eq!(std::fs::read(f.target_dir.join("one.txt")).unwrap(), b"one");
    assert!(f
        .server
        .take_requests()
        .contains(&format!("/targets/{}.one.txt", sha256_hex(b"one"))));

    // The repository now serves other bytes under both target names.
    for file in [&one, &two] {
        std::fs::write(f.server.root.join(&file.path), b"evil").unwrap();
    }
    // one.txt is present and matches: nothing is fetched.
    assert_success(&f.download(&["one.txt"]));
    assert!(!f
        .server
        .take_requests()
        .iter()
        .any(|r| r.starts_with("/targets/")));
    // two.txt fails verification and is not written.
    assert_failure(&f.download(&["two.txt"]), "two.txt");
    assert_eq!(list(&f.target_dir), set(&["one.txt"]));

    // A damaged local copy is fetched again and replaced.
    std::fs::write(f.server.root.join(&one.path), b"one").unwrap();
    std::fs::write(f.target_dir.join("one.txt"), b"on").unwrap();
    assert_success(&f.download(&["one.txt"]));
    assert_eq!(std::fs::read(f.target_dir.join("one.txt")).unwrap(), b"one");

    // Unknown target: exit 1, nothing written.
    assert_failure(
        &f.download(&["nonexistent target"]),
        "not in the repository",
    );
    assert_eq!(list(&f.target_dir), set(&["one.txt"]));
}

#[test]
fn tuf_refresh_fails_on_an_expired_timestamp() {
    // Published ten days ago: timestamp (1 day) and snapshot (7 days) expired.
    let f = Fixture::new(now() - Duration::days(10));
    f.init();
    assert_failure(&f.refresh(), "timestamp: expired");
    assert!(!f.metadata_files().contains("snapshot.json"));
}

#[test]
fn tuf_refresh_stops_reading_an_endless_timestamp() {
    let f = Fixture::new(now());
    f.init();
    // 1 MiB where at most 16 384 bytes may be: read up to the limit + 1, refused.
    std::fs::write(
        f.server.root.join("metadata/timestamp.json"),
        vec![b' '; 1 << 20],
    )
    .unwrap();
    assert_failure(&f.refresh(), "16385 bytes is over the 16384 byte limit");
    assert_eq!(f.metadata_files(), set(&["root.json"]));
}

#[test]
fn tuf_refresh_fails_on_a_timestamp_rollback() {
    let t = now();
    let mut f = Fixture::new(t);
    let old_timestamp = f.served("metadata/timestamp.json");
    let file = f.repo.set_target("targets", "x", b"x", None).unwrap();
    f.publish(vec![file], t);
    f.init();
    assert_success(&f.refresh());
    let trusted = std::fs::read(f.metadata_dir.join("timestamp.json")).unwrap();
    assert_eq!(trusted, f.served("metadata/timestamp.json"));

    std::fs::write(
        f.server.root.join("metadata/timestamp.json"),
        &old_timestamp,
    )
    .unwrap();
    assert_failure(&f.refresh(), "rollback");
    // The trusted timestamp is kept.
    assert_eq!(
        std::fs::read(f.metadata_dir.join("timestamp.json")).unwrap(),
        trusted
    );
}

#[test]
fn tuf_usage_errors_exit_1() {
    let f = Fixture::new(now());
    let dir = f.metadata_dir.to_str().unwrap();
    for args in [
        vec!["--metadata-dir", dir, "--no-such-flag", "refresh"],
        vec!["--metadata-dir", dir],
        vec!["--metadata-dir", dir, "frobnicate"],
        vec!["refresh"],
        vec!["--metadata-dir", dir, "refresh"],
        vec![
            "--metadata-dir",
            dir,
            "--metadata-url",
            "ftp://x",
            "refresh",
        ],
    ] {
        let out = tuf(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            tuf_common::stderr(&out)
        );
        assert!(tuf_common::stderr(&out).contains("error"), "{args:?}");
    }
    // refresh before init: no root.json.
    assert_failure(&f.refresh(), "root.json");
    assert!(f.server.take_requests().is_empty());
}

#[test]
fn tuf_refresh_follows_the_system_clock_under_faketime() {
    if std::process::Command::new("faketime")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED tuf_refresh_follows_the_system_clock_under_faketime: `faketime` is not installed (apt-get install faketime)");
        return;
    }
    let t = now();
    let f = Fixture::with_options(t, Options::default());
    f.init();
    assert_success(&f.refresh());
    // Thirty days on, the timestamp (1 day) has expired.
    let out = std::process::Command::new("faketime")
        .args(["-f", "+30d", env!("CARGO_BIN_EXE_keyshare"), "tuf"])
        .args(["--metadata-url", &f.server.metadata_url()])
        .args([
            "--metadata-dir",
            f.metadata_dir.to_str().unwrap(),
            "refresh",
        ])
        .output()
        .unwrap();
    assert_failure(&out, "timestamp: expired");
    // And the repository is still fine today.
    assert_success(&f.refresh());
}
