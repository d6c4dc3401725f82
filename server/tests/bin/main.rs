//! The tests that run the `keyshare-server` binary as a process (commands,
//! serve and signals, TLS, durability), in one binary. The PKCS#11 tests are
//! `bin_pkcs11.rs`, a binary of their own (they set `SOFTHSM2_CONF` for the
//! whole process).
//!
//! Run one module with `cargo test -p keyshare-server --test bin tls::`.

#[path = "../bin_common/mod.rs"]
mod bin_common;

mod durability;
mod output;
mod server;
mod tls;
mod two_servers;
