//! The verifier tests, in one binary: `keyshare` refresh and decisions
//! against a real or canned server (`common`), attacks, the cache layout,
//! peers and bundles under a memory limit.
//!
//! Run one module with `cargo test -p keyshare-client --test verifier attacks::`.

#[path = "../common/mod.rs"]
mod common;

mod attacks;
mod bundle_memory;
mod cli;
mod incremental;
mod layout;
mod migration;
mod peers;
mod timestamps;
mod watch;
