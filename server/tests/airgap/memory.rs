#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

//! Air-gap import memory, from the attacker's side: crafted bundle files,
//! sparse (no disk used) and claiming far more than a bundle may hold,
//! given to the real `keyshare-server import`, whose peak resident memory
//! is measured (testkit's [`Measured`], under a generous address-space
//! cap). Each is refused with exit 1 and one line naming the problem,
//! within the bound, and the replica's files stay exactly as they were. A
//! genuine bundle larger than the bound still imports within it: import
//! streams.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use crate::bin_common::{assert_one_line_error, run_within, BIN};
use crate::common::Origin;
use keyshare_server::airgap::Replica;
use keyshare_server::publisher::Change;
use keyshare_testkit::crafted::crafted_bundles;
use keyshare_testkit::memory::Measured;
use time::{Duration, OffsetDateTime};

/// The bound on the peak resident memory of every `import` here, in KiB:
/// the binary's own baseline (about 35 MiB for a small import) plus the
/// import's bound (a manifest of up to 16 MiB, twice, and one entry of up
/// to 16 MiB) with room to spare; far below the 1 GiB and more the crafted
/// files claim, and below the valid bundle imported here.
const LIMIT_KIB: u64 = 128 * 1024;

const DEADLINE: StdDuration = StdDuration::from_secs(60);

/// `keyshare-server import --data-dir DATA BUNDLE`, at most [`DEADLINE`];
/// asserts its peak resident memory stayed within [`LIMIT_KIB`].
fn import(data: &Path, bundle: &Path) -> std::process::Output {
    let measured = Measured::new();
    let mut cmd = measured.bash(r#""$0" "$@""#);
    cmd.arg(BIN).args([
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYSHARE_") {
            cmd.env_remove(&name);
        }
    }
    let out = run_within(cmd, DEADLINE);
    let peak = measured.peak_rss_kib();
    eprintln!(
        "import {}: peak resident memory {peak} KiB",
        bundle.display()
    );
    assert!(
        peak <= LIMIT_KIB,
        "import of {} used {peak} KiB, more than {LIMIT_KIB} KiB: {}",
        bundle.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir` with its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn air_gap_import_memory_a_sparse_bundle_is_refused_within_bounded_memory() {
    let now = OffsetDateTime::now_utc();
    let origin = Origin::new(now);
    let first = origin.export(Duration::days(7), now);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("replica");
    Replica::init(&data, &origin.pinned_root).unwrap();
    Replica::open(&data).unwrap().import(&first, now).unwrap();
    let before = files_under(&data);

    for crafted in crafted_bundles(tmp.path(), &origin.pinned_root) {
        let (what, path) = (crafted.what, &crafted.path);
        let out = import(&data, path);
        let line = assert_one_line_error(&out);
        assert!(line.contains(path.to_str().unwrap()), "{what}: {line}");
        for name in crafted.says {
            assert!(line.contains(name), "{what}: {line} (expected {name:?})");
        }
        assert_eq!(files_under(&data), before, "{what}: the replica changed");
        std::fs::remove_file(path).unwrap();
    }
}

/// A genuine bundle of about 135 MB: 16 organization root certificates,
/// each carrying 8 MiB of explanatory text before its PEM block (which
/// PEM allows), and 20 namespaces.
fn large_origin(now: OffsetDateTime) -> Origin {
    let origin = Origin::new(now);
    origin.add_bulk(20);
    let padding: String = (0..(8 << 20) / 64)
        .map(|i| format!("{:<63}\n", format!("explanatory text, line {i}")))
        .collect();
    for i in 0..16 {
        let pem = keyshare_testkit::ca_pem(&format!("Acme Root {i}"));
        origin.apply(Change::PutOrgRoot {
            name: format!("root-{i}"),
            pem: format!("{padding}{pem}"),
        });
    }
    origin
}

#[test]
fn air_gap_import_memory_a_valid_large_bundle_imports_within_the_same_bound() {
    let now = OffsetDateTime::now_utc();
    let origin = large_origin(now);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("replica");
    Replica::init(&data, &origin.pinned_root).unwrap();
    for round in 0..2 {
        // The second import also verifies the first again (the state it
        // replaces), under the same limit.
        let bundle = origin.export(Duration::days(7), now);
        assert!(bundle.len() > 130_000_000, "{}", bundle.len());
        let path = tmp.path().join(format!("site-{round}.bundle"));
        std::fs::write(&path, &bundle).unwrap();
        drop(bundle);
        let out = import(&data, &path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("imported "), "{stdout}");
        assert_eq!(
            std::fs::read(data.join("replica/current.bundle")).unwrap(),
            std::fs::read(&path).unwrap()
        );
    }
}
