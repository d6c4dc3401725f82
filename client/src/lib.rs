//! keyshare-client: the verifier library and the `keyshare` CLI.
//!
//! * [`Verifier`] (async) and [`blocking::Verifier`] (the same, blocking):
//!   pin an organization's root (`init`), refresh its TUF repository over
//!   HTTP or from an air-gap bundle into a local cache (the sans-IO
//!   workflow and delegation walk of [`keyshare_policy::client`] driven
//!   through a [`fetch::Fetcher`]), load the verified
//!   trust state ([`Verifier::trust_state`] → [`TrustState`]: the
//!   [`keyshare_policy::trust::TrustSet`] and the raw verified documents),
//!   and decide ([`Verifier::decide`]), following peer redirects to other
//!   keyshare services verified against the root pinned in the signed peer
//!   map, with loop and depth limits, never to a peer on (or resolving to)
//!   a private or loopback address unless [`Options::allow_private_peers`].
//! * [`cache`]: the cache directory (content-addressed blobs and one
//!   manifest replaced atomically, so a failed refresh leaves the last good
//!   state). `docs/client-cache.md` describes the cache, peers and redirects.
//! * [`fetch`]: where files come from, the [`fetch::Fetcher`] trait (as
//!   tough's `Transport`, python-tuf's `FetcherInterface`): HTTP (reqwest,
//!   native-tls: size limits from the workflow's requests, timeouts,
//!   302/303/307 redirects only within the origin asked for; for peers, a
//!   resolver refusing private addresses), a verified air-gap bundle, or
//!   the cache only; and the HTTP settings (timeouts, CA loading, user
//!   agent) and blocking client every command shares.
//! * [`admin`]: a blocking client of the server's admin API, one method per
//!   endpoint, used by `keyshare admin ...` (`docs/cli.md`).
//! * [`tuf`]: `keyshare tuf ...`, a standard TUF client (metadata directory,
//!   target download) for the TUF conformance harness (`docs/cli.md`).
//! * [`export`]: the verified trust state as a notation trust store and
//!   trust policy, or as PEM keys (`docs/notation.md`); as Kyverno and
//!   policy-controller admission policies, or cosign key files
//!   (`docs/exports.md`).
//! * [`ci`]: a CI job's side of ephemeral delegations (`keyshare ci request`):
//!   the key is generated locally and never sent (`docs/ci.md`).
//! * [`blob`]: detached signatures over files (`keyshare sign-blob`) and
//!   their check plus trust decision against a
//!   [`keyshare_policy::trust::TrustSet`] (`keyshare verify-blob`), with
//!   the signing time from a timestamp token ([`timestamp`]: asking the
//!   server's TSA) and, for a swept CI key, its delegation evidence
//!   ([`evidence`]: asking the server for it).
//! * [`watch`]: keeping the state fresh (`keyshare watch`): the server's
//!   long poll, then a refresh that takes over what did not change, with
//!   what changed reported ([`watch::Changes`]).
//!
//! The library never re-implements a check of `keyshare-policy`: TUF
//! verification, target hashes and the trust decision are its calls.
//!
//! Tests: `cargo test -p keyshare-client`; the CLI is tested as a process
//! against real servers on loopback (`tests/cli/admin.rs`, `tests/cli/edges.rs`,
//! `tests/verifier/cli.rs`, `tests/verifier/peers.rs`,
//! `tests/verifier/attacks.rs`, `tests/verifier/layout.rs`); `cargo bench
//! -p keyshare-client --bench verify` compares a refresh with python-tuf's
//! (`bench/verify`).

pub mod admin;
pub mod blob;
pub mod blocking;
pub mod cache;
pub mod ci;
pub mod evidence;
pub mod export;
pub mod fetch;
pub mod timestamp;
pub mod tuf;
mod verifier;
pub mod watch;

pub use keyshare_policy::client;
pub use verifier::{
    default_cache_dir, Commit, Error, Hop, Options, Outcome, PeerProblem, Pinned, RootPin,
    TrustState, Verdict, Verifier, DEFAULT_CONCURRENCY, DEFAULT_MAX_PEER_DEPTH,
};
