//! The store tests' helpers for PostgreSQL: the same names as
//! `support.rs`, with [`Scratch`] a fresh database on the test binary's
//! cluster (`keyshare_testkit::postgres::Cluster`). `Scratch::path` holds
//! the database's URL, so the helpers that take a path (`count`,
//! `open_at`) open it.
//!
//! Where PostgreSQL is not installed and `KEYSHARE_TEST_POSTGRES=skip`
//! allows it, a `Scratch` is a SQLite one (the tests then run on SQLite
//! twice; the cluster says it skipped).

#![allow(
    unreachable_pub,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};

pub use crate::support::*;
use keyshare_server::store::{PostgresUrl, Store};
use keyshare_testkit::postgres::Cluster;

/// A fresh database on the shared cluster.
pub struct Scratch {
    /// The database's URL (or, when skipped, the SQLite file).
    pub path: PathBuf,
    /// Its name on the cluster; `None` when skipped.
    pub name: Option<String>,
    sqlite: Option<crate::support::Scratch>,
}

impl Scratch {
    pub fn new() -> Self {
        match Cluster::shared() {
            Some(cluster) => {
                let (name, url) = cluster.database();
                Self {
                    path: PathBuf::from(url),
                    name: Some(name),
                    sqlite: None,
                }
            }
            None => {
                let sqlite = crate::support::Scratch::new();
                Self {
                    path: sqlite.path.clone(),
                    name: None,
                    sqlite: Some(sqlite),
                }
            }
        }
    }

    pub fn open(&self) -> Store {
        open_at(&self.path)
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// A plain client on the database (to look at rows, or to try what
    /// the store never does).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(self.url(), postgres::NoTls).unwrap()
    }
}

fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("postgres://"))
}

/// Opens the store at `path` (a URL, or a SQLite file when skipped).
pub fn open_at(path: &Path) -> Store {
    if is_url(path) {
        let url = PostgresUrl::parse(path.to_str().unwrap()).unwrap();
        Store::open_postgres(&url).unwrap()
    } else {
        crate::support::open_at(path)
    }
}

/// A raw connection to a [`Scratch`]'s database, behind the store's back
/// (as `Raw` of `support.rs`, with the statements' `?N` as `$N`).
pub enum Raw {
    Postgres(std::cell::RefCell<postgres::Client>),
    Sqlite(crate::support::Raw),
}

impl Raw {
    /// Runs one statement with text parameters (`?1`, ...).
    pub fn execute<const N: usize>(
        &self,
        sql: &str,
        params: [&String; N],
    ) -> Result<usize, String> {
        match self {
            Raw::Postgres(c) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| *p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                c.borrow_mut()
                    .execute(&sql.replace('?', "$"), &params)
                    .map(|n| usize::try_from(n).unwrap())
                    .map_err(|e| error_text(&e))
            }
            Raw::Sqlite(raw) => raw.execute(sql, params),
        }
    }

    /// Runs statements without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<(), String> {
        match self {
            Raw::Postgres(c) => c
                .borrow_mut()
                .batch_execute(sql)
                .map_err(|e| error_text(&e)),
            Raw::Sqlite(raw) => raw.execute_batch(sql),
        }
    }

    /// Takes away the triggers that keep the audit log append-only.
    pub fn allow_audit_log_changes(&self) {
        match self {
            Raw::Postgres(_) => self
                .execute_batch("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .unwrap(),
            Raw::Sqlite(raw) => raw.allow_audit_log_changes(),
        }
    }
}

/// The database's message (what a trigger raised), not just "db error".
fn error_text(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned())
}

/// A raw connection to `s`'s database.
pub fn raw(s: &Scratch) -> Raw {
    match &s.sqlite {
        Some(sqlite) => Raw::Sqlite(crate::support::raw(sqlite)),
        None => Raw::Postgres(std::cell::RefCell::new(s.client())),
    }
}

/// Row count of a table, through a separate connection.
pub fn count(path: &Path, table: &str) -> i64 {
    if !is_url(path) {
        return crate::support::count(path, table);
    }
    let mut client = postgres::Client::connect(path.to_str().unwrap(), postgres::NoTls).unwrap();
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

/// Everything the database holds, as `pg_dump` writes it.
pub fn database_bytes(s: &Scratch) -> Vec<u8> {
    match (&s.name, &s.sqlite) {
        (Some(name), _) => Cluster::shared().unwrap().dump(name),
        (None, Some(sqlite)) => crate::support::database_bytes(sqlite),
        (None, None) => unreachable!(),
    }
}
