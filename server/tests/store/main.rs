//! The store tests, in one binary: `Store` on a scratch SQLite database
//! (CRUD, transactions, audit log, schema and migrations, published state,
//! CI state, tokens, scope overlaps), and the same tests on a scratch
//! PostgreSQL database (module `postgres`: each test file compiled a second
//! time against `postgres/support.rs`, whose `Scratch` is a fresh database
//! on a throwaway cluster), with the PostgreSQL-only tests of
//! `postgres/backend.rs`.
//!
//! Run one module with `cargo test -p keyshare-server --test store crud::`
//! (both backends) or `... postgres::crud::` (PostgreSQL only).

// Each backend-neutral test file is compiled twice, on purpose.
#![allow(clippy::duplicate_mod)]

mod support;

mod audit;
mod ci_state;
mod crud;
mod documents;
mod migrate_revocations;
mod published;
mod published_sqlite;
mod schema;
mod scope_overlaps;
mod tokens;
mod transactions;

/// The same tests on PostgreSQL. Left out: what is about SQLite's file
/// and its migrations from older schemas (`schema`, `migrate_revocations`),
/// and `published_sqlite` (SQLite's rows); `postgres/backend.rs` tests the
/// same refusals there.
mod postgres {
    mod support;

    #[path = "../audit.rs"]
    mod audit;
    mod backend;
    #[path = "../ci_state.rs"]
    mod ci_state;
    #[path = "../crud.rs"]
    mod crud;
    #[path = "../documents.rs"]
    mod documents;
    #[path = "../published.rs"]
    mod published;
    #[path = "../scope_overlaps.rs"]
    mod scope_overlaps;
    #[path = "../tokens.rs"]
    mod tokens;
    #[path = "../transactions.rs"]
    mod transactions;
}
