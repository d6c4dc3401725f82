//! The HTTP API tests, in one binary: the actix app called in-process (no
//! sockets, except `server`), through the shared fixture of `http_common`.
//!
//! Run one module with `cargo test -p keyshare-server --test http auth::`.

#[macro_use]
#[path = "../http_common/mod.rs"]
mod http_common;
#[path = "../ci_common/mod.rs"]
mod ci_common;

mod auth;
mod bodies;
mod input;
mod key_standing;
mod layout_keys;
mod names;
mod namespace_revocations;
mod openapi;
mod outbound;
mod portal;
mod read;
mod revocations;
mod scope_overlaps;
mod server;
mod timestamps;
mod tokens_audit;
mod tsas;
mod waiting;
