//! The air-gap tests, in one binary: bundles, export over HTTP, import
//! under a memory limit, and replicas.
//!
//! Run one module with `cargo test -p keyshare-server --test airgap bundle::`.

#[macro_use]
#[path = "../http_common/mod.rs"]
mod http_common;
#[path = "../bin_common/mod.rs"]
mod bin_common;
mod common;

mod bundle;
mod http;
mod memory;
mod replica;
