//! keyshare-server: the organization's keyshare service.
//!
//! What exists so far:
//! * [`store`]: the SQLite store — namespaces, keys, identities,
//!   sub-delegations, revocations, peers, X.509 roots, API tokens (hashed),
//!   every published metadata file, and a hash-chained audit log — with
//!   one-transaction writes and builders of the policy crate's trust
//!   documents.
//! * [`publisher`]: turns each change into one signed publish in one store
//!   transaction (a failed change publishes nothing), re-signs expiring
//!   metadata, sweeps expired ephemeral keys, and caches published files
//!   for the read API.
//! * [`repo`]: the repository-side metadata builder the publisher uses,
//!   re-exported from [`keyshare_policy::repo`].
//!
//! Not written yet: the `keyshare-server` binary and CI issuance.
//!
//! Tests: `cargo test -p keyshare-server`.

#![forbid(unsafe_code)]

pub mod publisher;
pub mod store;

pub use keyshare_policy::repo;
