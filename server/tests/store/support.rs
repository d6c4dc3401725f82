//! Helpers shared by the store tests (`mod support;` of `main.rs`).

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::repo::{Options, Repository, SharedSigner};
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    NamespaceEntry, Peer, PeerUrl, PinnedRoot, Revocation, RevokedSubject, TrustedKey,
};
use keyshare_server::store::{Error, Store};
pub use keyshare_testkit::ns;
use time::macros::datetime;
use time::OffsetDateTime;

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyshare.db");
        Self { dir, path }
    }

    pub fn open(&self) -> Store {
        Store::open(&self.path).unwrap()
    }
}

/// Opens the store at `path` (another connection to a [`Scratch`]'s).
pub fn open_at(path: &std::path::Path) -> Store {
    Store::open(path).unwrap()
}

/// Every byte SQLite keeps for the database: the main file, the WAL and the shared memory.
pub fn database_bytes(s: &Scratch) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = s.path.clone().into_os_string();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(&p) {
            all.extend(bytes);
        }
    }
    all
}

/// A fixed transaction time.
pub const T0: OffsetDateTime = datetime!(2026-01-02 03:04:05 UTC);

pub fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

pub fn pattern(p: &str) -> ArtifactPattern {
    ArtifactPattern::parse(p).unwrap()
}

pub fn entry(name: &str, scopes: &[&str]) -> NamespaceEntry {
    NamespaceEntry {
        name: ns(name),
        scopes: scopes.iter().map(|s| pattern(s)).collect(),
        maintainers: vec![format!("{name}-owners@acme.example")],
    }
}

/// A fresh Ed25519 key listed under its conventional id.
pub fn trusted_key() -> TrustedKey {
    let s = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    TrustedKey {
        id: s.key_id().clone(),
        key: s.public_key().clone(),
        not_before: None,
        not_after: None,
        ephemeral: false,
        description: None,
        principal: None,
        layout_root: false,
    }
}

pub fn peer(name: &str, pattern_: &str) -> Peer {
    Peer {
        name: name.into(),
        patterns: vec![pattern(pattern_)],
        url: PeerUrl::parse("https://keyshare.partner.example").unwrap(),
        root: PinnedRoot::Keys {
            keyids: vec![KeyId::new("a".repeat(64))],
            threshold: nz(1),
        },
        terminating: true,
    }
}

/// A revocation of `key`'s material.
pub fn key_revocation(key: &keyshare_policy::trust::TrustedKey, reason: &str) -> Revocation {
    Revocation {
        subject: RevokedSubject::Key(key.key.fingerprint(&key.id).unwrap()),
        revoked_at: datetime!(2025-12-01 00:00:00 UTC),
        reason: reason.into(),
    }
}

/// A self-signed CA certificate, PEM.
pub fn ca_pem(cn: &str) -> String {
    keyshare_testkit::CertBuilder::new(cn)
        .key(keyshare_testkit::KeyKind::Ed25519)
        .ca()
        .build()
        .pem()
}

/// A small signed repository, for files to publish.
pub fn repository() -> Repository {
    let signer =
        || -> SharedSigner { Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap()) };
    Repository::create(
        &[signer()],
        1,
        [
            ("targets", vec![signer()]),
            ("snapshot", vec![signer()]),
            ("timestamp", vec![signer()]),
        ],
        Options::default(),
        T0,
    )
    .unwrap()
}

/// A raw connection to a [`Scratch`]'s database, behind the store's back
/// (what someone with write access to the database could do). The same
/// calls on PostgreSQL (`postgres/support.rs`).
pub struct Raw(rusqlite::Connection);

impl Raw {
    /// Runs one statement with text parameters (`?1`, ...).
    pub fn execute<const N: usize>(
        &self,
        sql: &str,
        params: [&String; N],
    ) -> Result<usize, String> {
        self.0
            .execute(sql, rusqlite::params_from_iter(params))
            .map_err(|e| e.to_string())
    }

    /// Runs statements without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<(), String> {
        self.0.execute_batch(sql).map_err(|e| e.to_string())
    }

    /// Takes away the triggers that keep the audit log append-only.
    pub fn allow_audit_log_changes(&self) {
        self.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
            .unwrap();
    }
}

/// A raw connection to `s`'s database.
pub fn raw(s: &Scratch) -> Raw {
    Raw(rusqlite::Connection::open(&s.path).unwrap())
}

/// Row count of a table, through a separate raw connection.
pub fn count(path: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Asserts a `NotFound` of `kind`.
pub fn assert_not_found<T: std::fmt::Debug>(r: Result<T, Error>, kind: &str) {
    match r {
        Err(Error::NotFound { kind: k, .. }) if k == kind => {}
        other => panic!("expected NotFound {kind}, got {other:?}"),
    }
}

/// Asserts an `AlreadyExists` of `kind`.
pub fn assert_exists<T: std::fmt::Debug>(r: Result<T, Error>, kind: &str) {
    match r {
        Err(Error::AlreadyExists { kind: k, .. }) if k == kind => {}
        other => panic!("expected AlreadyExists {kind}, got {other:?}"),
    }
}

/// Undoes schema version 11 in the store at `path`
/// ([`keyshare_testkit::legacy::UNDO_SCHEMA_11`]).
pub fn downgrade_published_files_to_schema_10(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(keyshare_testkit::legacy::UNDO_SCHEMA_11)
        .unwrap();
}
