//! keyshare-client: the verifier library and the `keyshare` CLI.
//!
//! Here so far:
//! * [`admin`]: a blocking client of the server's admin API, one method per
//!   endpoint, used by `keyshare admin ...` (`docs/cli.md`).
//! * [`ci`]: a CI job's side of ephemeral delegations (`keyshare ci request`):
//!   the key is generated locally and never sent (`docs/ci.md`).
//! * [`blob`]: detached signatures over files (`keyshare sign-blob`) and
//!   their check plus trust decision against a
//!   [`keyshare_policy::trust::TrustSet`] (`keyshare verify-blob`).
//!
//! Not written yet: the TUF transport, the local trust cache and the
//! verifier commands. The TUF client workflow they will drive is the
//! sans-IO state machine in [`keyshare_policy::client`].
//!
//! Tests: `cargo test -p keyshare-client` (the CLI is tested as a process
//! against an in-process server, `tests/admin_cli.rs`).

pub mod admin;
pub mod blob;
pub mod ci;

pub use keyshare_policy::client;
