//! keyshare-server: the organization's keyshare service.
//!
//! The `keyshare-server` binary (`init`, `serve`, `publish --to`, `export`,
//! `import`, `init --replica`, `serve --replica`) is a thin wrapper over
//! [`commands`]; `docs/server.md` is the reference for operators,
//! `docs/airgap.md` for air-gapped sites.
//!
//! The modules stand in floors; each imports only from its own floor and
//! the ones below (`docs/architecture.md`, checked by
//! `scripts/server-floors`):
//!
//! * ground:
//!   * [`clock`]: the one [`clock::Clock`], made once and handed to
//!     everything that asks the time;
//!   * [`data_dir`]: the data directory's layout (`keyshare.toml`,
//!     `keyshare.db`, `keys/`, `keyshare.lock`, `replica/`) and the one
//!     atomic file write;
//!   * [`config`]: `keyshare.toml`, overridden by `KEYSHARE_*` variables,
//!     overridden by flags; the `[ci]` table; durations;
//!   * [`lock`]: one writer per data directory (held by `serve` for its
//!     whole life and by every other command that writes);
//!   * [`rate_limit`]: a sliding-window limit per identity (CI principals,
//!     timestamp clients);
//!   * [`store`]: the SQLite store — namespaces, keys, identities,
//!     sub-delegations, revocations, peers, X.509 roots, API tokens
//!     (hashed), every published metadata file, and a hash-chained audit
//!     log — with one-transaction writes and builders of the policy
//!     crate's trust documents;
//! * [`published_heads`]: the audit chain heads every signed timestamp
//!   carries, and the check of the audit log against them
//!   (`GET /api/v1/audit/verify`);
//! * [`publisher`]: turns each change into one signed publish in one store
//!   transaction (a failed change publishes nothing), re-signs expiring
//!   metadata, sweeps expired ephemeral keys, and caches published files
//!   for the read API; [`publisher::Publisher::apply_batch`] publishes
//!   several changes at once (CI group commit);
//! * [`keys`]: the online keys in the data directory (PKCS#8 PEM, mode
//!   0600) or PKCS#11, and the CI secret;
//! * domain services:
//!   * [`ci`]: CI issuance — OIDC ID tokens (or CI tokens) and claim
//!     rules, nonces and proofs of possession, ephemeral delegations
//!     published in groups, short-lived certificates under the CI CA, and
//!     the expiry sweeper (`docs/ci.md`);
//!   * [`airgap`]: bundle export (a bundle edition of snapshot and
//!     timestamp signed by the publisher for the bundle's window), replica
//!     import with an atomic swap, and the replica's served files;
//!   * [`tsa`]: the RFC 3161 timestamp authority — its key, CA and
//!     certificate, the answer to a `TimeStampReq`, and the record of
//!     every token issued (`docs/tsa.md`);
//! * [`http`]: every route — the TUF repository (read API), the admin API
//!   with bearer tokens and its authorization matrix, the CI endpoints,
//!   export, the replica's read-only application, `/healthz`, `/metrics`,
//!   TLS — and the one table of HTTP statuses for every domain error;
//! * [`commands`]: every command of the binary and their shared start-up.
//!
//! [`repo`] is the repository-side metadata builder the publisher uses,
//! re-exported from [`keyshare_policy::repo`].
//!
//! Tests: `cargo test -p keyshare-server`.

#![forbid(unsafe_code)]

pub mod airgap;
pub mod ci;
pub mod clock;
pub mod commands;
pub mod config;
pub mod data_dir;
pub mod http;
pub mod keys;
pub mod lock;
pub mod published_heads;
pub mod publisher;
pub mod rate_limit;
pub mod store;
pub mod tsa;

pub use keyshare_policy::repo;
