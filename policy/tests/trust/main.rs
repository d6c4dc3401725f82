//! The trust-document tests of `keyshare_policy`, in one binary: decisions,
//! documents, round trips and X.509 identities.
//!
//! Run one module with `cargo test -p keyshare-policy --test trust decide::`.

mod support;

mod decide;
mod documents;
mod evidence;
mod roundtrip;
mod timestamp;
mod x509;
