//! Signatures per second through PKCS#11 (SoftHSM2) beside the same
//! mechanism in-process with OpenSSL (`InMemorySigner`), with 1 and 4
//! concurrent signers.
//!
//! `cargo bench -p keyshare-hsm --bench sign`; each cell runs
//! `KEYSHARE_BENCH_SECS` seconds (default 2). Needs SoftHSM2
//! (`scripts/test` installs it). Tokens live in a temporary directory.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyshare_hsm::{generate_key, Pin, PinSource, Pkcs11Signer, Pkcs11Uri, Signer};
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::InMemorySigner;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Signs a 1 KiB message (about the canonical size of a small root) from
/// `threads` threads for `duration`; returns signatures per second.
fn rate(signer: &Arc<dyn Signer>, threads: usize, duration: Duration) -> f64 {
    let message = Arc::new(vec![0x5au8; 1024]);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (signer, message, stop, count) = (
                Arc::clone(signer),
                Arc::clone(&message),
                Arc::clone(&stop),
                Arc::clone(&count),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    signer.sign(&message).expect("signing failed");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if !Path::new(MODULE).is_file() {
        eprintln!("{MODULE} is missing: run scripts/test (it installs softhsm2)");
        std::process::exit(1);
    }
    let secs: f64 = std::env::var("KEYSHARE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let duration = Duration::from_secs_f64(secs);

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    let status = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "123456",
            "--so-pin",
            "12345678",
        ])
        .output()
        .expect("softhsm2-util is missing: run scripts/test")
        .status;
    assert!(status.success(), "softhsm2-util --init-token failed");
    std::env::set_var("SOFTHSM2_CONF", &conf);

    let uri = Pkcs11Uri::parse(&format!("pkcs11:token=bench?module-path={MODULE}")).unwrap();
    let pin = PinSource::Value(Pin::new("123456"));

    println!("signatures/s, 1 KiB message, {secs} s per cell");
    println!(
        "{:<14} {:>8} {:>14} {:>14} {:>10}",
        "mechanism", "signers", "pkcs11/softhsm", "openssl", "openssl/p11"
    );
    for (scheme, name) in [
        (Scheme::EcdsaP256Sha256, "ecdsa-p256"),
        (Scheme::Ed25519, "ed25519"),
        (Scheme::RsaPssSha256, "rsa-pss-3072"),
    ] {
        let key_uri = generate_key(&uri, &pin, scheme, name).unwrap();
        let hsm: Arc<dyn Signer> =
            Arc::new(Pkcs11Signer::open(&key_uri, &pin, Some(scheme)).unwrap());
        let mem: Arc<dyn Signer> = Arc::new(InMemorySigner::generate(scheme).unwrap());
        for threads in [1, 4] {
            let p11 = rate(&hsm, threads, duration);
            let ossl = rate(&mem, threads, duration);
            println!(
                "{name:<14} {threads:>8} {p11:>14.0} {ossl:>14.0} {:>9.1}x",
                ossl / p11
            );
        }
    }
}
