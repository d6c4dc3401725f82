//! Full verification of a repository with many delegated roles, side by
//! side with python-tuf verifying the same files.
//!
//! `cargo bench -p keyshare-policy --bench refresh [-- --roles N --rounds R]`
//! (or `bench/refresh`, which also sets up python-tuf). Generates a
//! consistent-snapshot repository whose top-level targets delegates to N
//! roles (default 10,000), each with its own Ed25519 key and one target,
//! writes it to a temporary directory, and times what a client's full
//! refresh does with every file already in memory: root, timestamp,
//! snapshot, targets, then every delegated role, each parsed and verified
//! (`TrustedSet`, the verifier the sans-IO updater drives), once on one
//! thread and once with the delegated roles verified on every core
//! (`update_delegated_targets_batch`). Then it runs
//! `bench/python_tuf_verify.py` on the same directory with python-tuf's
//! `TrustedMetadataSet` and prints both and the ratio. Median of the rounds.
//!
//! Python comes from `KEYSHARE_PYTHON` or `target/pyenv/bin/python`; if
//! neither has python-tuf the comparison is reported as missing and the
//! benchmark exits non-zero.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use keyshare_policy::client::{encode_role, TrustedSet};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{DelegatedRole, RoleName, Unrecognized};
use keyshare_policy::pattern::PathPattern;
use keyshare_policy::repo::{Options, Repository, SharedSigner};
use keyshare_policy::sign::InMemorySigner;
use time::OffsetDateTime;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn signer() -> SharedSigner {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap())
}

fn build(roles: usize, dir: &Path, now: OffsetDateTime) {
    let mut repo = Repository::create(
        &[signer()],
        1,
        [
            ("targets", vec![signer()]),
            ("snapshot", vec![signer()]),
            ("timestamp", vec![signer()]),
        ],
        Options::default(),
        now,
    )
    .unwrap();
    let mut files = Vec::new();
    for i in 0..roles {
        let name = format!("ns-{i:05}");
        let key = signer();
        repo.delegate(
            "targets",
            DelegatedRole {
                name: RoleName::new(name.as_str()),
                keyids: vec![key.key_id().clone()],
                threshold: NonZeroU32::MIN,
                terminating: true,
                paths: Some(vec![PathPattern::new(&format!("namespaces/{name}/*"))]),
                path_hash_prefixes: None,
                unrecognized: Unrecognized::new(),
            },
            vec![(key.key_id().clone(), key.public_key().clone())],
            vec![key],
            now,
        )
        .unwrap();
        let content = format!(r#"{{"namespace":"{name}"}}"#);
        files.push(
            repo.set_target(
                &name,
                &format!("namespaces/{name}/trust.json"),
                content.as_bytes(),
                None,
            )
            .unwrap(),
        );
    }
    files.extend(repo.commit(now).unwrap());
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.bytes).unwrap();
    }
}

/// Every file a refresh reads, in memory.
struct Files {
    root: Vec<u8>,
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    targets: Vec<u8>,
    delegated: Vec<(String, Vec<u8>)>,
}

fn load(dir: &Path, roles: usize) -> Files {
    let md = dir.join("metadata");
    let read = |name: &str| std::fs::read(md.join(name)).unwrap();
    Files {
        root: read("1.root.json"),
        timestamp: read("timestamp.json"),
        snapshot: read("1.snapshot.json"),
        targets: read("1.targets.json"),
        delegated: (0..roles)
            .map(|i| {
                let name = format!("ns-{i:05}");
                let bytes = read(&format!("1.{}.json", encode_role(&name)));
                (name, bytes)
            })
            .collect(),
    }
}

/// One full refresh; delegated roles verified on `threads` threads.
fn refresh(files: &Files, now: OffsetDateTime, threads: usize) {
    let mut set = TrustedSet::new(&files.root, now).unwrap();
    set.update_timestamp(&files.timestamp).unwrap();
    set.update_snapshot(&files.snapshot, false).unwrap();
    set.update_targets(&files.targets).unwrap();
    if threads == 1 {
        for (name, bytes) in &files.delegated {
            set.update_delegated_targets(bytes, name, "targets")
                .unwrap();
        }
    } else {
        let items: Vec<(&str, &str, &[u8])> = files
            .delegated
            .iter()
            .map(|(n, b)| (n.as_str(), "targets", b.as_slice()))
            .collect();
        for r in set.update_delegated_targets_batch(&items, threads) {
            r.unwrap();
        }
    }
}

fn time_refresh(files: &Files, now: OffsetDateTime, threads: usize, rounds: usize) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                refresh(files, now, threads);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn python() -> Option<PathBuf> {
    std::env::var_os("KEYSHARE_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
            p.exists().then_some(p)
        })
}

fn main() {
    let roles = arg("--roles", 10_000);
    let rounds = arg("--rounds", 5).max(1);
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();

    let start = Instant::now();
    build(roles, dir.path(), now);
    println!(
        "generated {roles} delegated roles in {:.2} s ({})",
        start.elapsed().as_secs_f64(),
        dir.path().display()
    );

    let files = load(dir.path(), roles);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let ours = time_refresh(&files, now, 1, rounds);
    let parallel = time_refresh(&files, now, cores, rounds);
    println!(
        r#"{{"impl":"keyshare","threads":1,"roles":{},"seconds_per_refresh":{ours:.4},"rounds":{rounds}}}"#,
        roles + 4
    );
    println!(
        r#"{{"impl":"keyshare","threads":{cores},"roles":{},"seconds_per_refresh":{parallel:.4},"rounds":{rounds}}}"#,
        roles + 4
    );

    let Some(python) = python() else {
        eprintln!("python-tuf not found: set KEYSHARE_PYTHON or run scripts/test once");
        std::process::exit(1);
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/python_tuf_verify.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir.path())
        .args(["--rounds", &rounds.min(3).to_string()])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "python-tuf failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::process::exit(1);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    print!("{line}");
    let theirs: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let theirs = theirs["seconds_per_refresh"].as_f64().unwrap();
    println!(
        "full refresh of {roles} delegated roles: python-tuf {:.1} ms; keyshare 1 thread {:.1} ms \
         (python-tuf/keyshare = {:.2}x), {cores} threads {:.1} ms ({:.2}x)",
        theirs * 1e3,
        ours * 1e3,
        theirs / ours,
        parallel * 1e3,
        theirs / parallel
    );
}
