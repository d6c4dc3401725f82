//! The publisher tests, in one binary: `Publisher` changes and publishes,
//! `init` with a given root, root submission and the audit heads every
//! publish signs.
//!
//! Run one module with `cargo test -p keyshare-server --test publish publisher::`.

#[macro_use]
#[path = "../http_common/mod.rs"]
mod http_common;

mod audit_published_heads;
mod init_root;
mod publisher;
mod root_submit;
