//! Air-gap bundle export and import time, and bundle size, for N
//! namespaces holding K keys each.
//!
//! `cargo bench -p keyshare-server --bench airgap [-- --namespaces 1000
//! --keys 10 --valid-for 7d]` (or `bench/airgap`). It:
//!
//! 1. seeds a fresh repository in a temporary directory in process, through
//!    `Publisher::apply_batch` (100 namespaces with their keys per publish;
//!    timed but not the point);
//! 2. exports a bundle to a file (`keyshare_server::airgap::export`: the
//!    bundle edition, the walk with policy's TUF checks, the manifest, the
//!    write) and reports the time, the size and the number of entries;
//! 3. imports it into a fresh replica (`Replica::import_from` on the file:
//!    streamed into the replica's directory with the root chain and the
//!    manifest's signature checked first, full verification against the
//!    pinned root, atomic swap) and reports the
//!    time; then imports a second export on top (verification of the
//!    previous state included) and reports that too.
//!
//! Output: a table, then one JSON line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::panic,
    unreachable_pub
)]

mod common;

use std::num::NonZeroU32;
use std::time::Instant;

use common::{arg, publisher};
use keyshare_policy::keys::Scheme;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{NamespaceEntry, NamespaceName, TrustedKey};
use keyshare_server::airgap::{export, Replica};
use keyshare_server::publisher::{Batched, Change};
use time::OffsetDateTime;

fn main() {
    // `cargo bench` passes `--bench`; only our flags matter.
    let namespaces: usize = arg("--namespaces").map_or(1000, |v| v.parse().unwrap());
    let keys: usize = arg("--keys").map_or(10, |v| v.parse().unwrap());
    let valid_for =
        keyshare_server::config::parse_duration(&arg("--valid-for").unwrap_or_else(|| "7d".into()))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let publisher = publisher(dir.path(), now);
    let pinned_root = publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();

    eprintln!("seeding {namespaces} namespaces with {keys} keys each...");
    let started = Instant::now();
    // Loaded in batches of 100 namespaces with their keys (one publish
    // each, `Publisher::apply_batch`): the same published layout as one
    // publish per change, in a fraction of the time.
    let mut batch = Vec::new();
    let flush = |batch: &mut Vec<Batched>| {
        for result in publisher.apply_batch(std::mem::take(batch), now).unwrap() {
            result.unwrap();
        }
    };
    for i in 0..namespaces {
        let name = NamespaceName::parse(&format!("ns-{i:05}")).unwrap();
        batch.push(Batched {
            actor: "bench".into(),
            change: Change::CreateNamespace {
                entry: NamespaceEntry {
                    name: name.clone(),
                    scopes: vec![ArtifactPattern::parse(&format!(
                        "registry.acme.io/{}/**",
                        name.as_str()
                    ))
                    .unwrap()],
                    maintainers: vec!["bench@acme.example".into()],
                },
                threshold: NonZeroU32::MIN,
                allow_overlap: false,
            },
            context: serde_json::Value::Null,
        });
        for _ in 0..keys {
            let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
            batch.push(Batched {
                actor: "bench".into(),
                change: Change::AddKey {
                    namespace: name.clone(),
                    key: TrustedKey {
                        id: key.key_id().clone(),
                        key: key.public_key().clone(),
                        not_before: None,
                        not_after: None,
                        ephemeral: false,
                        description: None,
                        principal: None,
                        layout_root: false,
                    },
                },
                context: serde_json::Value::Null,
            });
        }
        if (i + 1) % 100 == 0 {
            flush(&mut batch);
            eprintln!(
                "  {} namespaces, {:.0} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    flush(&mut batch);
    let seed_s = started.elapsed().as_secs_f64();

    let bundle_path = dir.path().join("site.bundle");
    let export_to = |path: &std::path::Path| {
        let started = Instant::now();
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let exported = export(
            &publisher,
            "bench",
            valid_for,
            now,
            &mut file,
            &mut |_, _| {},
        )
        .unwrap();
        drop(file);
        (started.elapsed().as_secs_f64(), exported)
    };
    let (export_s, exported) = export_to(&bundle_path);

    let replica_dir = dir.path().join("replica");
    Replica::init(&replica_dir, &pinned_root).unwrap();
    let replica = Replica::open(&replica_dir).unwrap();
    let import = |path: &std::path::Path| {
        let started = Instant::now();
        let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        replica.import_from(&mut file, now, &mut |_, _| {}).unwrap();
        started.elapsed().as_secs_f64()
    };
    let import_s = import(&bundle_path);

    let second = dir.path().join("site2.bundle");
    let _ = export_to(&second);
    let reimport_s = import(&second);

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("| namespaces | keys each | bundle bytes | entries | export s | import s | import over a previous state s | seed s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {namespaces} | {keys} | {} | {} | {export_s:.2} | {import_s:.2} | {reimport_s:.2} | {seed_s:.0} |",
        exported.bytes, exported.entries
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "airgap",
            "namespaces": namespaces,
            "keys_per_namespace": keys,
            "bundle_bytes": exported.bytes,
            "entries": exported.entries,
            "export_s": export_s,
            "import_s": import_s,
            "reimport_s": reimport_s,
            "seed_s": seed_s,
            "threads": threads,
        })
    );
}
