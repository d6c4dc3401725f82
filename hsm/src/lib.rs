//! keyshare-hsm: signing backends for keyshare's governance keys.
//!
//! Every backend implements [`keyshare_policy::sign::Signer`], so whatever
//! signs TUF metadata takes `&dyn Signer` and does not care where the key is:
//!
//! - [`KeyFileSigner`]: a PKCS#8 PEM key file, optionally encrypted with a
//!   passphrase (Ed25519, ECDSA P-256, RSA signing RSASSA-PSS-SHA256).
//! - [`Pkcs11Signer`]: a private key that never leaves a PKCS#11 token
//!   (an HSM, a smart card, SoftHSM2 in tests), named by a [`Pkcs11Uri`]
//!   (RFC 7512). [`generate_key`] creates key pairs inside a token.
//! - [`PinSource`]: where a PIN or passphrase comes from (file,
//!   environment variable, terminal prompt). [`Pin`] zeroes its memory on
//!   drop and never prints itself.
//!
//! Left out: the root ceremony commands (they live in the `keyshare` CLI)
//! and server wiring; certificates held in tokens; PKCS#11 modules other
//! than by path.
//!
//! PKCS#11 modules are loaded once per process (see [`pkcs11::module`]) and
//! never finalised. Operations guide: `docs/operations/hsm.md`.
//!
//! Testing: `cargo test -p keyshare-hsm` runs the SoftHSM2 tests in
//! `tests/softhsm.rs`; they need `/usr/lib/softhsm/libsofthsm2.so`
//! (installed by `scripts/test`) and fail, rather than skip, without it.
//! `cargo bench -p keyshare-hsm` compares signing through SoftHSM with
//! in-process OpenSSL.

#![forbid(unsafe_code)]

pub mod error;
pub mod keyfile;
pub mod pin;
pub mod pkcs11;
pub mod uri;

pub use error::{Error, Result};
pub use keyfile::KeyFileSigner;
pub use keyshare_policy::sign::Signer;
pub use pin::{Pin, PinSource};
pub use pkcs11::{generate_key, Pkcs11Signer};
pub use uri::{ObjectType, Pkcs11Uri};
