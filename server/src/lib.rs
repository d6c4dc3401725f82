//! keyshare-server: the organization's keyshare service.
//!
//! What exists so far:
//! * [`store`]: the SQLite store — namespaces, keys, identities,
//!   sub-delegations, revocations, peers, X.509 roots, API tokens (hashed),
//!   every published metadata file, and a hash-chained audit log — with
//!   one-transaction writes and builders of the policy crate's trust
//!   documents.
//! * [`repo`]: the repository-side metadata builder the publisher will use,
//!   re-exported from [`keyshare_policy::repo`].
//!
//! Not written yet: the publisher, the HTTP API, CI issuance and the expiry
//! sweeper.
//!
//! Tests: `cargo test -p keyshare-server`.

#![forbid(unsafe_code)]

pub mod store;

pub use keyshare_policy::repo;
