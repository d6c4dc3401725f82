//! keyshare-hsm: signing backends for keyshare's governance keys.
//!
//! This crate will hold the key-file and PKCS#11 (cryptoki) backends of the
//! [`keyshare_policy::sign::Signer`] trait, with keys named by RFC 7512 URIs.
//! Today it re-exports the trait so dependants can name it from here; the
//! in-memory signer used by tests lives in `keyshare-policy`.

pub use keyshare_policy::sign::Signer;
