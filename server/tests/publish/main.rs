//! The publisher tests, in one binary: `Publisher` changes and publishes,
//! `init` with a given root, root submission, the audit heads every
//! publish signs, and the layout (trust documents in the hashed bins, the
//! bin count, the migration of repositories with namespace roles).
//!
//! Run one module with `cargo test -p keyshare-server --test publish publisher::`.

#[macro_use]
#[path = "../http_common/mod.rs"]
mod http_common;

mod audit_published_heads;
mod init_root;
mod layout;
mod publisher;
mod root_submit;
mod shared_store;
