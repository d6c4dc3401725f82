#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! Metadata written by python-tuf, custom fields included, parses and
//! re-serialises to the exact canonical bytes its signatures cover.

use std::path::{Path, PathBuf};

use keyshare_policy::cjson::to_canonical;
use keyshare_policy::metadata::Signed;
use keyshare_policy::metadata::{Envelope, Role, Root, Snapshot, Targets, Timestamp};
use keyshare_policy::sign::to_bytes;
use keyshare_policy::verify::verify_root_self;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/python-tuf")
}

fn round_trip<T: Role>(name: &str, bytes: &[u8]) {
    let env = Envelope::<T>::parse(name, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = to_canonical(&env.signed, name).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&env.canonical),
        "{name}: typed re-serialisation differs from the signed bytes"
    );
    // And the file keyshare would write for it carries the same signed bytes.
    let written = to_bytes(&Signed {
        signatures: env.signatures.clone(),
        signed: env.signed.clone(),
        unrecognized: Default::default(),
    })
    .unwrap();
    let reparsed = Envelope::<T>::parse(name, &written).unwrap();
    assert_eq!(reparsed.canonical, env.canonical, "{name}");
}

fn round_trip_dir(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("metadata")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        match value["signed"]["_type"].as_str().unwrap() {
            "root" => {
                round_trip::<Root>(&name, &bytes);
                // Root is self-signed: python-tuf's signature must verify over
                // keyshare's canonical bytes (no Unicode normalisation).
                let env = Envelope::<Root>::parse(&name, &bytes).unwrap();
                if env.signed.version == 1 {
                    verify_root_self(env).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
            }
            "targets" => round_trip::<Targets>(&name, &bytes),
            "snapshot" => round_trip::<Snapshot>(&name, &bytes),
            "timestamp" => round_trip::<Timestamp>(&name, &bytes),
            other => panic!("{name}: unexpected _type {other}"),
        }
        n += 1;
    }
    n
}

#[test]
fn custom_fields_survive_a_round_trip() {
    let dir = fixtures().join("custom-fields");
    assert!(round_trip_dir(&dir) >= 4);
    // The fixture really has unknown fields where the test claims.
    let targets = std::fs::read(dir.join("metadata/1.targets.json")).unwrap();
    let env = Envelope::<Targets>::parse("targets", &targets).unwrap();
    assert!(
        !env.signed.unrecognized.is_empty(),
        "no top-level custom field"
    );
    let file = env.signed.targets.values().next().unwrap();
    assert!(
        !file.unrecognized.is_empty(),
        "no custom field in target file"
    );
    let roles = env
        .signed
        .delegations
        .as_ref()
        .unwrap()
        .roles
        .as_ref()
        .unwrap();
    assert!(
        !roles[0].unrecognized.is_empty(),
        "no custom field in delegated role"
    );
}

#[test]
fn every_python_tuf_fixture_round_trips() {
    let mut total = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.join("metadata").is_dir() {
            total += round_trip_dir(&path);
        }
    }
    assert!(total >= 30, "only {total} metadata files found");
}
