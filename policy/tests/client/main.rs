//! The TUF tests of `keyshare_policy`, in one binary: the sans-IO client
//! (`Updater`) against a generated repository (`common`), attacks,
//! delegations, python-tuf fixtures both ways, metadata round trips and
//! property tests of canonical JSON and globs.
//!
//! Run one module with `cargo test -p keyshare-policy --test client attacks::`.

mod common;

mod attacks;
mod delegations;
mod interop_python_tuf_reads_keyshare;
mod metadata_roundtrip;
mod prop_cjson_glob;
mod python_tuf_fixtures;
mod refresh;
mod trusted_set;
mod walk;
