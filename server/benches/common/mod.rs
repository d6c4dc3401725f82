//! What the server's benchmarks share: their command line, a signer and
//! percentiles.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use keyshare_policy::keys::Scheme;
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::InMemorySigner;

/// The value after `name` on the command line, if any.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A new in-memory Ed25519 signer.
pub fn signer() -> SharedSigner {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).expect("an Ed25519 key"))
}

/// The `p` quantile (0–1) of `sorted`, nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i.min(sorted.len() - 1))
        .copied()
        .unwrap_or_default()
}
