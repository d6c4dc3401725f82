//! The CI tests, in one binary: a local OIDC issuer, delegations over HTTP,
//! batches, token expiry, outbound checks, restarts and `serve` with CI.
//! The CI certificate tests are `ci_certificates.rs`, a binary of their own
//! (one of them sets `SOFTHSM2_CONF` for the whole process).
//!
//! Run one module with `cargo test -p keyshare-server --test ci attacks::`.

#[macro_use]
#[path = "../http_common/mod.rs"]
mod http_common;
#[path = "../bin_common/mod.rs"]
mod bin_common;
#[path = "../ci_common/mod.rs"]
mod ci_common;

mod attacks;
mod batch;
mod concurrency;
mod delegations;
mod outbound;
mod restart;
mod serve;
mod token_expiry;
