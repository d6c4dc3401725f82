//! The `keyshare` command-line tests, in one binary: admin, CI, standing,
//! root ceremony, audit heads, exported files, `keyshare tuf` and edge cases,
//! run as processes against a real server (`common`) or a plain TUF
//! repository (`tuf_common`).
//!
//! Run one module with `cargo test -p keyshare-client --test cli admin::`.

#[path = "../common/mod.rs"]
mod common;
mod tuf_common;

mod admin;
mod audit_heads;
mod ci;
mod edges;
mod export_files;
mod export_images;
mod generated;
mod json_output;
mod root_ceremony;
mod standing;
mod tuf;
