//! The store tests, in one binary: `Store` on a scratch SQLite database
//! (CRUD, transactions, audit log, schema and migrations, published state,
//! CI state, tokens, scope overlaps).
//!
//! Run one module with `cargo test -p keyshare-server --test store crud::`.

mod support;

mod audit;
mod ci_state;
mod crud;
mod documents;
mod migrate_revocations;
mod published;
mod schema;
mod scope_overlaps;
mod tokens;
mod transactions;
