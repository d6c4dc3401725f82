#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

//! Air-gap bundles end to end, in process: an origin exports, a replica
//! imports and serves; verifiers running policy's TUF client decide the
//! same from either. Every kind of damage to a bundle is refused with a
//! message naming it, and the replica keeps serving its previous state.

use crate::common;

use common::{decisions, signer, trust_set, Origin};
use keyshare_airgap::{read_manifest, Anchor, Manifest, MAGIC};
use keyshare_policy::metadata::Signed;
use keyshare_policy::sign::{sign, to_bytes};
use keyshare_server::airgap::{AirgapError, Replica, ReplicaFiles};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

/// A replica pinned to the origin's root, holding `first` already.
fn replica_with(origin: &Origin, first: &[u8]) -> (tempfile::TempDir, Replica) {
    let dir = tempfile::tempdir().unwrap();
    Replica::init(dir.path(), &origin.pinned_root).unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica.import(first, now()).unwrap();
    (dir, replica)
}

fn current_version(replica: &Replica) -> u64 {
    replica
        .current()
        .unwrap()
        .expect("a current state")
        .manifest()
        .timestamp_version
}

/// The parts of a bundle: manifest bytes and the entries, in order.
fn split(bundle: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let len_at = MAGIC.len();
    let len = u64::from_be_bytes(bundle[len_at..len_at + 8].try_into().unwrap()) as usize;
    let manifest = bundle[len_at + 8..len_at + 8 + len].to_vec();
    let parsed = read_manifest(&mut &bundle[..]).unwrap();
    let mut at = len_at + 8 + len;
    let entries = parsed
        .signed
        .entries
        .iter()
        .map(|e| {
            let bytes = bundle[at..at + e.length as usize].to_vec();
            at += bytes.len();
            (e.path.clone(), bytes)
        })
        .collect();
    assert_eq!(at, bundle.len());
    (manifest, entries)
}

fn join(manifest: &[u8], entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(manifest.len() as u64).to_be_bytes());
    out.extend_from_slice(manifest);
    for (_, bytes) in entries {
        out.extend_from_slice(bytes);
    }
    out
}

fn refused(replica: &Replica, bundle: &[u8], at: OffsetDateTime) -> String {
    let before = current_version(replica);
    let err = replica
        .import(bundle, at)
        .expect_err("the bundle must be refused");
    assert_eq!(current_version(replica), before, "the state changed: {err}");
    err.to_string()
}

#[test]
fn replica_decides_like_the_origin_and_outlives_the_online_timestamp() {
    let origin = Origin::new(now());
    let bundle = origin.export(Duration::days(7), now());
    let dir = tempfile::tempdir().unwrap();
    let (version, _) = Replica::init(dir.path(), &origin.pinned_root).unwrap();
    assert_eq!(version, 1);
    let replica = Replica::open(dir.path()).unwrap();
    let imported = replica.import(&bundle, now()).unwrap();
    assert_eq!(imported.previous, None);

    let served = ReplicaFiles::open(Replica::open(dir.path()).unwrap()).unwrap();
    let from_replica = |path: &str| served.file(path).map(|f| f.bytes.to_vec());
    let at = now() + Duration::hours(1);
    let replica_set = trust_set(&origin.pinned_root, at, &from_replica).unwrap();
    let origin_set = trust_set(&origin.pinned_root, at, &origin.fetch()).unwrap();
    let expected = decisions(&origin, &origin_set, at);
    assert!(expected[0].is_trusted(), "{:?}", expected[0]);
    assert!(!expected[1].is_trusted(), "{:?}", expected[1]);
    assert_eq!(decisions(&origin, &replica_set, at), expected);

    // Three days on, the online timestamp (1 day) has expired, the
    // bundle edition (7 days) has not: a plain TUF client still refreshes
    // from the replica, and decides the same.
    let later = now() + Duration::days(3);
    let err = trust_set(&origin.pinned_root, later, &origin.fetch()).err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("expired")),
        "{err:?}"
    );
    let replica_set = trust_set(&origin.pinned_root, later, &from_replica).unwrap();
    assert_eq!(
        decisions(&origin, &replica_set, later),
        decisions(&origin, &origin_set, later)
    );
    // Past the window, the replica's metadata is expired for clients too.
    let past = now() + Duration::days(7);
    assert!(trust_set(&origin.pinned_root, past, &from_replica).is_err());
}

#[test]
fn a_repository_with_namespace_roles_exports_migrated_and_the_replica_decides_alike() {
    // Before the export the origin is in the earlier layout (a role per
    // namespace); the export's publish migrates it first, and the bundle
    // carries the migrated repository, whose snapshot still lists the
    // frozen namespace roles. The replica (policy's TUF client) accepts it.
    let origin = Origin::new(now()).into_legacy();
    let at = now() + Duration::hours(1);
    let before = trust_set(&origin.pinned_root, at, &origin.fetch()).unwrap();
    let expected = decisions(&origin, &before, at);
    assert!(expected[0].is_trusted(), "{:?}", expected[0]);

    let bundle = origin.export(Duration::days(7), now());
    let records = origin.publisher.read(|s| s.audit_records(0, 1000)).unwrap();
    assert!(records.iter().any(|r| r.action == "repository.migrate"));
    let dir = tempfile::tempdir().unwrap();
    Replica::init(dir.path(), &origin.pinned_root).unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica.import(&bundle, now()).unwrap();
    let served = ReplicaFiles::open(Replica::open(dir.path()).unwrap()).unwrap();
    let from_replica = |path: &str| served.file(path).map(|f| f.bytes.to_vec());
    let replica_set = trust_set(&origin.pinned_root, at, &from_replica).unwrap();
    assert_eq!(decisions(&origin, &replica_set, at), expected);
    let origin_set = trust_set(&origin.pinned_root, at, &origin.fetch()).unwrap();
    assert_eq!(decisions(&origin, &origin_set, at), expected);
}

#[test]
fn online_repository_skips_the_bundle_editions_versions() {
    let origin = Origin::new(now());
    let before = origin
        .publisher
        .read(|s| s.last_published())
        .unwrap()
        .is_some();
    assert!(before);
    let bundle = origin.export(Duration::days(7), now());
    let manifest = read_manifest(&mut &bundle[..]).unwrap().signed;
    let (_, entries) = split(&bundle);
    let edition = manifest.timestamp_version;
    let online = origin.publisher.file("metadata/timestamp.json").unwrap();
    let online: serde_json::Value = serde_json::from_slice(&online.bytes).unwrap();
    assert_eq!(online["signed"]["version"], edition + 1);
    // The edition's snapshot is not published online.
    let snapshot = format!("metadata/{}.snapshot.json", manifest.snapshot_version);
    let in_bundle = entries.iter().find(|(p, _)| *p == snapshot).unwrap();
    assert_ne!(
        origin.publisher.file(&snapshot).map(|f| f.bytes.to_vec()),
        Some(in_bundle.1.clone())
    );
}

#[test]
fn a_laptop_verifies_a_bundle_and_gets_the_trust_documents() {
    let origin = Origin::new(now());
    let bundle = origin.export(Duration::days(7), now());
    let verified = keyshare_airgap::open_bundle(
        std::sync::Arc::new(bundle),
        Anchor {
            pinned_root: &origin.pinned_root,
            previous: None,
        },
        now(),
        &mut |_, _| {},
    )
    .unwrap();
    for path in [
        "org/revocations.json",
        "org/peers.json",
        "namespaces/team-a/trust.json",
        "namespaces/team-b/trust.json",
    ] {
        assert!(verified.targets().contains_key(path), "{path}");
        assert!(verified.target(path).unwrap().is_some(), "{path}");
    }
}

#[test]
fn every_flipped_byte_is_refused_and_the_previous_state_stays() {
    let origin = Origin::new(now());
    let first = origin.export(Duration::days(7), now());
    let (_dir, replica) = replica_with(&origin, &first);
    origin.apply(common::create("team-c", "registry.acme.io/team-c/**"));
    let bundle = origin.export(Duration::days(7), now());
    let (manifest, entries) = split(&bundle);
    let header = MAGIC.len() + 8 + manifest.len();
    // Where each entry starts, to name the one a flip lands in.
    let mut starts = Vec::new();
    let mut at = header;
    for (path, bytes) in &entries {
        starts.push((at, path.clone()));
        at += bytes.len();
    }
    let step = (bundle.len() / 97).max(1);
    let offsets = (0..bundle.len()).step_by(step).chain([
        0,
        MAGIC.len(),
        MAGIC.len() + 7,
        header - 1,
        header,
        bundle.len() - 1,
    ]);
    for offset in offsets {
        let mut bad = bundle.clone();
        bad[offset] ^= 0x01;
        let message = refused(&replica, &bad, now());
        if offset < MAGIC.len() {
            assert!(
                message.contains("not a keyshare bundle"),
                "{offset}: {message}"
            );
        } else if offset < header {
            // A flip in the manifest breaks its JSON, its signature, or
            // what it says an entry is (a name, a length, a hash).
            assert!(
                message.starts_with("bundle manifest")
                    || message.starts_with("bundle container")
                    || message.starts_with("bundle entry"),
                "{offset}: {message}"
            );
        } else {
            let (_, path) = starts.iter().rev().find(|(s, _)| *s <= offset).unwrap();
            assert!(message.contains(path.as_str()), "{offset}: {message}");
            assert!(message.contains("SHA-256 differs"), "{offset}: {message}");
        }
    }
    // The good bundle still imports afterwards.
    replica.import(&bundle, now()).unwrap();
}

#[test]
fn truncated_appended_and_reordered_bundles_are_refused() {
    let origin = Origin::new(now());
    let first = origin.export(Duration::days(7), now());
    let (_dir, replica) = replica_with(&origin, &first);
    origin.apply(common::create("team-c", "registry.acme.io/team-c/**"));
    let bundle = origin.export(Duration::days(7), now());
    for len in [
        0,
        5,
        MAGIC.len() + 3,
        MAGIC.len() + 20,
        bundle.len() / 2,
        bundle.len() - 1,
    ] {
        let message = refused(&replica, &bundle[..len], now());
        assert!(message.contains("truncated"), "{len}: {message}");
    }
    let mut appended = bundle.clone();
    appended.push(b'\n');
    let message = refused(&replica, &appended, now());
    assert!(message.contains("appended"), "{message}");

    let (manifest, mut entries) = split(&bundle);
    entries.swap(1, 2);
    let message = refused(&replica, &join(&manifest, &entries), now());
    assert!(message.contains("out of order"), "{message}");
    assert!(message.contains(&entries[2].0), "{message}");
}

#[test]
fn replaced_manifests_are_refused() {
    let origin = Origin::new(now());
    let first = origin.export(Duration::days(7), now());
    let (_dir, replica) = replica_with(&origin, &first);
    origin.apply(common::create("team-c", "registry.acme.io/team-c/**"));
    let bundle = origin.export(Duration::days(7), now());
    let parsed = read_manifest(&mut &bundle[..]).unwrap();
    let (manifest_bytes, entries) = split(&bundle);
    let original: Signed<Manifest> = Signed {
        signatures: parsed.signatures.clone(),
        signed: parsed.signed.clone(),
        unrecognized: Default::default(),
    };

    // A longer window under the original signature.
    let mut longer = original.clone();
    longer.signed.expires = keyshare_policy::datetime::Expires::new(now() + Duration::days(300));
    let message = refused(
        &replica,
        &join(&to_bytes(&longer).unwrap(), &entries),
        now(),
    );
    assert!(message.contains("manifest signature"), "{message}");

    // Signed by a key that is not the timestamp role's.
    let forged = sign(original.signed.clone(), &[signer().as_ref()]).unwrap();
    let message = refused(
        &replica,
        &join(&to_bytes(&forged).unwrap(), &entries),
        now(),
    );
    assert!(message.contains("manifest signature"), "{message}");

    // An entry dropped from the manifest (and from the container).
    let mut fewer = original.clone();
    let dropped = fewer.signed.entries.remove(fewer.signed.entries.len() - 1);
    let kept: Vec<(String, Vec<u8>)> = entries
        .iter()
        .filter(|(p, _)| *p != dropped.path)
        .cloned()
        .collect();
    // The manifest no longer matches its signature, which is checked as
    // soon as the root chain at the front has been read.
    let message = refused(&replica, &join(&to_bytes(&fewer).unwrap(), &kept), now());
    assert!(message.contains("manifest signature"), "{message}");
    // Dropped from the container only: the manifest still lists it.
    let message = refused(&replica, &join(&manifest_bytes, &kept), now());
    assert!(message.contains(&dropped.path), "{message}");
    assert!(message.contains("truncated"), "{message}");

    // The previous bundle's manifest, validly signed, with this bundle's entries.
    let (old_manifest, _) = split(&first);
    let message = refused(&replica, &join(&old_manifest, &entries), now());
    assert!(
        message.contains("SHA-256 differs") || message.contains("bundle"),
        "{message}"
    );
}

#[test]
fn an_older_bundle_is_refused_as_a_rollback() {
    let origin = Origin::new(now());
    let old = origin.export(Duration::days(7), now());
    let new = origin.export(Duration::days(7), now());
    let (_dir, replica) = replica_with(&origin, &new);
    let message = refused(&replica, &old, now());
    assert!(message.contains("rollback"), "{message}");
    // Importing the same bundle again is not a rollback.
    replica.import(&new, now()).unwrap();
}

#[test]
fn a_bundle_past_its_window_is_refused() {
    let origin = Origin::new(now());
    let first = origin.export(Duration::days(7), now());
    let (_dir, replica) = replica_with(&origin, &first);
    let bundle = origin.export(Duration::days(2), now());
    let message = refused(&replica, &bundle, now() + Duration::days(2));
    assert!(message.contains("expired"), "{message}");
    replica.import(&bundle, now() + Duration::days(1)).unwrap();
}

#[test]
fn a_bundle_of_another_organization_is_refused() {
    let origin = Origin::new(now());
    let other = Origin::new(now());
    let first = origin.export(Duration::days(7), now());
    let (_dir, replica) = replica_with(&origin, &first);
    let message = refused(&replica, &other.export(Duration::days(7), now()), now());
    assert!(message.contains("pinned root"), "{message}");
}

#[test]
fn export_refuses_a_window_over_the_configured_cap() {
    let limits = keyshare_server::airgap::ExportLimits::default();
    assert_eq!(limits.window(None).unwrap(), Duration::days(7));
    assert_eq!(limits.window(Some("30d")).unwrap(), Duration::days(30));
    for bad in ["31d", "0s", "soon"] {
        let err = limits.window(Some(bad)).unwrap_err();
        assert!(matches!(err, AirgapError::Invalid(_)), "{bad}: {err}");
        assert!(err.to_string().contains("valid_for"), "{err}");
    }
}

/// The timestamp authorities the organization trusts travel with the
/// bundle like its other documents, so an air-gapped verifier can check
/// tokens.
#[test]
fn the_trusted_timestamp_authorities_travel_in_the_bundle() {
    let origin = Origin::new(now());
    let ca = keyshare_testkit::ca_pem("acme TSA CA");
    origin.apply(keyshare_server::publisher::Change::PutTsa {
        tsa: keyshare_policy::trust::TrustedTsa {
            name: "acme-tsa".into(),
            certificate: keyshare_policy::trust::check_tsa_certificate(&ca).unwrap(),
            description: None,
        },
    });
    let bundle = origin.export(Duration::days(7), now());
    let verified = keyshare_airgap::open_bundle(
        std::sync::Arc::new(bundle.clone()),
        Anchor {
            pinned_root: &origin.pinned_root,
            previous: None,
        },
        now(),
        &mut |_, _| {},
    )
    .unwrap();
    let bytes = verified
        .target(keyshare_policy::trust::TSAS_PATH)
        .unwrap()
        .expect("org/tsas.json is in the bundle");
    let tsas = keyshare_policy::trust::Tsas::from_slice(&bytes).unwrap();
    assert_eq!(tsas.tsas.len(), 1);
    assert_eq!(tsas.tsas[0].name, "acme-tsa");
    assert_eq!(
        tsas.tsas[0].certificate.cert().to_pem().unwrap(),
        openssl::x509::X509::from_pem(ca.as_bytes())
            .unwrap()
            .to_pem()
            .unwrap()
    );
    // And a replica takes it.
    let (_dir, replica) = replica_with(&origin, &bundle);
    assert!(current_version(&replica) > 0);
}
