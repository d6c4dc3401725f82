//! The server's store: one SQLite database holding everything the
//! organization manages (namespaces, keys, identities, sub-delegations,
//! revocations, peers, X.509 roots, API tokens), the files the publisher
//! has published (every root and the current version of every file, plus
//! superseded versions until they are pruned), and a hash-chained audit log.
//!
//! * [`Store::open`] opens (creating if needed) and migrates the database:
//!   WAL journal, `synchronous=FULL`, foreign keys on, a busy timeout. A
//!   database from a newer schema is refused ([`Error::SchemaTooNew`]).
//!   The database file (and so its `-wal` and `-shm` files, which SQLite
//!   creates with the database's mode) is readable by its owner only.
//!   [`Store::open_existing`] opens one without creating or migrating it,
//!   for a reader next to the process that writes it.
//! * Writes go through [`Store::transaction`]: the closure gets a [`Tx`],
//!   and everything it does is one SQLite transaction, committed only if the
//!   closure returns `Ok`. The publisher applies a change, records the
//!   files it signed and appends the audit record in one closure, so a
//!   failure anywhere leaves the store as it was.
//! * Reads are methods of [`Store`] (each in its own read transaction, so a
//!   multi-query read sees one consistent state) and, with the same names,
//!   of [`Tx`] (seeing the transaction's own writes).
//! * Document builders turn the store into the policy crate's trust
//!   documents ([`Store::namespace_document`], [`Store::namespaces_shard`]
//!   (one shard of the index: the namespaces of one shard,
//!   [`namespace_shard`]), [`Store::namespaces_index`] (all of it, for the
//!   admin API), [`Store::revocations_document`], [`Store::peers_document`]); every
//!   built document is serialised and parsed back with the policy parser,
//!   so what the publisher signs is what a verifier accepts.
//!
//! * Published files: every version is recorded with its lineage
//!   ([`lineage`]); recording a new version marks the previous one
//!   superseded, and [`Tx::prune_superseded`] deletes versions superseded
//!   before a cutoff. Schema triggers refuse deleting a root or a current
//!   file.
//!
//! Token secrets are generated here and returned once; only their SHA-256
//! is stored. `docs/operations/store.md` describes the schema, durability,
//! the audit chain and backups.
//!
//! A [`Store`] is one connection: `Send`, not `Sync`. Use one per thread
//! (several may open the same file; SQLite serialises writers, and the busy
//! timeout makes a writer wait instead of failing).

mod audit;
mod copy;
mod db;
mod error;
mod pg;
mod read;
mod records;
mod schema;
mod tx;

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::cell::RefCell;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use time::{OffsetDateTime, UtcOffset};

use keyshare_policy::layout::{METADATA_DIR, TARGETS_DIR};
use keyshare_policy::trust::{
    NamespaceEntry, NamespaceName, NamespaceTrust, Namespaces, Peers, Revocations, RevokedSubject,
    Sha256Hex,
};

pub use audit::{namespaces_of as audit_namespaces_of, AuditFilter};
pub use copy::CopyReport;
pub use error::{Error, Result};
pub use pg::{PostgresUrl, PublishListener, CONNECT_TIMEOUT, PUBLISHED_CHANNEL, PUBLISH_LOCK};
pub use records::{
    AuditHead, AuditRecord, CiOwner, IdentityRecord, KeyRecord, LastPublished, Listing,
    NamespaceRecord, NamespaceRevocationRecord, NewToken, OrgRoot, PeerRecord, PublishedFile,
    RevocationRecord, ScopeOverlap, ScopeOverlaps, SingleUse, SingleUseKind, SubDelegationRecord,
    TimestampRecord, Token, TokenKind, TokenSecret, TokenState, TsaRecord, LAST_USED_RESOLUTION,
};
pub use schema::CURRENT_VERSION as SCHEMA_VERSION;
pub use tx::{OverlapRule, Tx};

use db::{Db, PgConn};

/// How many prepared statements a connection keeps: more than the store
/// has, so every statement is compiled once per connection, not once per
/// use (rusqlite keeps 16 by default).
const STATEMENT_CACHE: usize = 256;

/// Keeps [`STATEMENT_CACHE`] prepared statements, and keeps each one's
/// plan: with SQLite's query planner stability guarantee (QPSG) a
/// statement is not compiled again when a new value is bound to it (without
/// it SQLite re-prepares a statement such as `... FROM keys WHERE namespace
/// = ?1` on every new value, in case the value would allow a better plan,
/// which made caching statements worth nothing).
fn cache_statements(conn: &Connection) -> Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// How often [`Store::checkpoint_in_background`] checkpoints while commits
/// keep coming.
///
/// The background checkpoint copies pages into the database but cannot
/// restart the log while commits keep coming; the writer's own checkpoint
/// at [`CHECKPOINT_BACKSTOP`] pages does, and it stalls that commit for
/// whatever the background one has not copied yet. At every 100 ms, under
/// CI bursts (about 120 MB of log a second), that was 100 ms of log: a
/// 20–30 ms publish every third of a second, which most of the slowest 1 %
/// of CI requests waited behind. At every 10 ms the writer's checkpoint
/// copies a few pages.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);

/// How often it checkpoints once the log has not grown since its last
/// checkpoint (a quiet server).
pub const CHECKPOINT_IDLE: Duration = Duration::from_millis(200);

/// WAL pages after which a connection whose checkpoints are done in the
/// background checkpoints by itself all the same (SQLite's default is
/// 1,000 pages, about 4 MB).
pub const CHECKPOINT_BACKSTOP: i64 = 10_000;

/// Makes the commits of [`Store::transaction_deferring_sync`] durable
/// ([`Store::log_sync`]).
#[derive(Clone, Debug)]
pub struct LogSync {
    /// SQLite's write-ahead log; `None` for PostgreSQL, whose commits are
    /// durable when they return.
    wal: Option<PathBuf>,
}

impl LogSync {
    /// A sync of the file at `path` (tests: a log that cannot be synced).
    #[cfg(test)]
    pub(crate) fn of_file(path: PathBuf) -> Self {
        Self { wal: Some(path) }
    }

    /// Syncs the write-ahead log to disk: every commit that returned before
    /// this call is durable when it returns `Ok`. The log is the same file
    /// (inode) for as long as the store has a connection open, and syncing
    /// any descriptor of a file syncs the file; a log that is gone (every
    /// connection closed) was checkpointed into the database, and SQLite
    /// synced that. Blocking.
    pub fn sync(&self) -> Result<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        not_on_an_async_worker();
        let synced = std::fs::File::open(wal).and_then(|file| file.sync_data());
        match synced {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::File {
                path: wal.clone(),
                source,
            }),
        }
    }
}

/// The thread of [`Store::checkpoint_in_background`]; stops it when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long a connection waits for another writer before giving up with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The keyshare database.
#[derive(Debug)]
pub struct Store {
    conn: Conn,
    path: PathBuf,
    /// Where a PostgreSQL store connects (for [`Store::open_alongside`]).
    url: Option<PostgresUrl>,
}

/// The store's one connection.
#[derive(Debug)]
enum Conn {
    Sqlite(Connection),
    Postgres(Box<RefCell<PgConn>>),
}

impl Conn {
    fn db(&self) -> Db<'_> {
        match self {
            Conn::Sqlite(c) => Db::Sqlite(c),
            Conn::Postgres(c) => Db::Postgres(c),
        }
    }
}

impl Store {
    /// Opens the database at `path`, creating it if it does not exist, and
    /// brings its schema up to date.
    ///
    /// Settings, on every connection:
    /// * `journal_mode=WAL`: readers do not block the writer and see a
    ///   consistent snapshot; a crash mid-write leaves the last commit intact.
    /// * `synchronous=FULL`: a commit returns only after the WAL is synced
    ///   to disk. With the WAL's default `NORMAL`, a power loss can undo
    ///   recent commits; here a commit is an acknowledged change (a revoked
    ///   key, a published version, an audit record) that clients may already
    ///   have fetched, and losing it would let the repository go back in
    ///   version or forget a revocation. Writes are rare; the sync is cheap
    ///   at this rate.
    /// * `foreign_keys=ON`: a key cannot outlive its namespace.
    /// * busy timeout [`BUSY_TIMEOUT`]: concurrent writers wait for each other.
    ///
    /// A new database file is created with mode 0600 (SQLite would use the
    /// umask, usually 0644), and group and other access to an existing one
    /// and its `-wal` and `-shm` files is taken away (with a warning).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        make_private(&path)?;
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Schema {
                message: format!("could not switch to WAL journal mode (got `{mode}`)"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Savepoints' statement journals and sorts in memory, not in
        // temporary files: transient data only; the database's own
        // durability (WAL, synchronous=FULL) is unchanged.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        cache_statements(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Conn::Sqlite(conn),
            path,
            url: None,
        })
    }

    /// Opens the existing database at `path` without creating, changing or
    /// migrating it: for a process that only reads, next to the process
    /// that writes it (`publish --to` while `serve` runs). A database at
    /// another schema version than this build's is refused (the writer
    /// migrates it).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        cache_statements(&conn)?;
        let found = schema::current(&Db::Sqlite(&conn))?;
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(Error::Schema {
                message: format!(
                    "version {found} is older than version {SCHEMA_VERSION}, which this \
                     keyshare-server uses; the process that writes the database migrates it"
                ),
            });
        }
        Ok(Self {
            conn: Conn::Sqlite(conn),
            path,
            url: None,
        })
    }

    /// Connects to the PostgreSQL database at `url` and creates the schema
    /// in it if it has none (directly at [`SCHEMA_VERSION`]); refuses a
    /// database at a newer schema version, as [`Store::open`] does. Several
    /// processes may open one database: each write transaction first takes
    /// the transaction-scoped advisory lock [`PUBLISH_LOCK`], so writes
    /// (a publish above all) are one at a time, as SQLite's are.
    pub fn open_postgres(url: &PostgresUrl) -> Result<Self> {
        let conn = Box::new(RefCell::new(PgConn::connect(url)?));
        schema::create_postgres(&conn)?;
        Ok(Self {
            conn: Conn::Postgres(conn),
            path: PathBuf::from(url.redacted()),
            url: Some(url.clone()),
        })
    }

    /// The PostgreSQL database's URL (for [`PublishListener::connect`]);
    /// `None` for SQLite, whose store one server holds alone.
    pub fn postgres_url(&self) -> Option<PostgresUrl> {
        self.url.clone()
    }

    /// Undoes a PostgreSQL `init` that failed after publishing: when the
    /// repository in the database is the one whose `metadata/1.root.json`
    /// has SHA-256 `root_sha256` (the one that `init` made, not another
    /// server's), every keyshare table and function is dropped, under the
    /// write lock, and `true` is returned. Anything else is left as it is.
    /// SQLite stores are files that `init` removes itself: `false`.
    pub fn forget_failed_init(&mut self, root_sha256: &str) -> Result<bool> {
        if !matches!(self.conn, Conn::Postgres(_)) {
            return Ok(false);
        }
        self.transaction(|tx| -> Result<bool> {
            let root = read::latest_published(&tx.db(), "metadata/1.root.json")?;
            if root.is_none_or(|r| r.sha256 != root_sha256) {
                return Ok(false);
            }
            schema::drop_postgres(&tx.db())?;
            Ok(true)
        })
    }

    /// Another connection to the same database, to read next to this one
    /// (as [`Store::open_existing`] for SQLite).
    pub fn open_alongside(&self) -> Result<Self> {
        match &self.url {
            Some(url) => Self::open_postgres(url),
            None => Self::open_existing(&self.path),
        }
    }

    /// The database file; for PostgreSQL, the database's URL without its
    /// password (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the store is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.conn, Conn::Postgres(_))
    }

    /// The SQLite connection (tests that look at the file's settings).
    #[cfg(test)]
    fn sqlite(&self) -> &Connection {
        match &self.conn {
            Conn::Sqlite(c) => c,
            Conn::Postgres(_) => panic!("not a SQLite store"),
        }
    }

    /// Moves WAL checkpoints off this connection: a thread with a
    /// connection of its own copies committed pages from the WAL into the
    /// database every [`CHECKPOINT_EVERY`] while the log grows, every
    /// [`CHECKPOINT_IDLE`] once it does not (SQLite's passive checkpoint,
    /// which waits for no reader or writer), so a publish no longer pays
    /// for a checkpoint (and its fsync of the database file) every few
    /// megabytes of WAL. This connection still checkpoints by itself when
    /// the WAL passes [`CHECKPOINT_BACKSTOP`] pages, which restarts the
    /// log (the passive checkpoint cannot while commits keep coming) and
    /// bounds its size; by then the thread has copied all but the last few
    /// milliseconds of it. The thread stops when the [`Checkpointer`] is
    /// dropped.
    ///
    /// PostgreSQL checkpoints by itself: there, the returned
    /// [`Checkpointer`] runs no thread.
    pub fn checkpoint_in_background(&self) -> Result<Checkpointer> {
        let own = match &self.conn {
            Conn::Sqlite(c) => c,
            Conn::Postgres(_) => {
                return Ok(Checkpointer {
                    stop: None,
                    thread: None,
                })
            }
        };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("keyshare-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                let mut wait = CHECKPOINT_IDLE;
                // The log's size in frames after the last checkpoint.
                let mut last = -1;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(wait)
                {
                    let result: rusqlite::Result<(i64, i64, i64)> =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        });
                    match result {
                        Ok((_, frames, _)) => {
                            failing = false;
                            wait = if frames == last {
                                CHECKPOINT_IDLE
                            } else {
                                CHECKPOINT_EVERY
                            };
                            last = frames;
                        }
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, "background WAL checkpoint failed");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|source| Error::File {
                path: self.path.clone(),
                source,
            })?;
        own.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_BACKSTOP)?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The schema version of the open database (always [`SCHEMA_VERSION`]
    /// after a successful [`Store::open`]).
    pub fn schema_version(&self) -> Result<i64> {
        schema::current(&self.conn.db())
    }

    /// Runs `f` as one transaction, timestamped now (whole seconds, UTC).
    ///
    /// Committed when `f` returns `Ok`; rolled back when it returns `Err`
    /// or panics. The transaction is `IMMEDIATE`: it takes the write lock at
    /// the start, so two writers never both read and then both write.
    ///
    /// `f` may fail with its own error type (a publisher's signing error,
    /// say) as long as store errors convert into it.
    pub fn transaction<T, E>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        self.transaction_at(now(), f)
    }

    /// [`Store::transaction`] with the transaction's time given (tests,
    /// imports, a sweeper that works on a fixed instant).
    pub fn transaction_at<T, E>(
        &mut self,
        now: OffsetDateTime,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        not_on_an_async_worker();
        let tx = match &mut self.conn {
            Conn::Sqlite(c) => tx::TxConn::Sqlite(
                c.transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(Error::from)?,
            ),
            Conn::Postgres(c) => tx::TxConn::Postgres(pg::PgTx::begin_write(c)?),
        };
        let mut tx = Tx::new(tx, now.to_offset(UtcOffset::UTC));
        let value = f(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// [`Store::transaction_at`] whose commit does not wait for the disk:
    /// on SQLite it is written to the write-ahead log with
    /// `synchronous=NORMAL` (consistent after a crash or a power loss, but
    /// a power loss may undo it), and is durable only once
    /// [`LogSync::sync`] returns after it. The caller must not report the
    /// commit to anyone before then (the publisher's pipelined group
    /// commit, `crate::publisher`). On PostgreSQL the commit is durable
    /// when it returns (the server's own `synchronous_commit`).
    pub fn transaction_deferring_sync<T, E>(
        &mut self,
        now: OffsetDateTime,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let Conn::Sqlite(conn) = &self.conn else {
            return self.transaction_at(now, f);
        };
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(Error::from)?;
        let result = self.transaction_at(now, f);
        // Every other transaction on this connection syncs at commit, as
        // before (a failure to switch back is the commit's error too).
        let back = match &self.conn {
            Conn::Sqlite(conn) => conn.pragma_update(None, "synchronous", "FULL"),
            Conn::Postgres(_) => Ok(()),
        };
        let value = result?;
        back.map_err(Error::from)?;
        Ok(value)
    }

    /// What makes this store's commits durable after
    /// [`Store::transaction_deferring_sync`]; usable without the store
    /// (another thread syncs while this one writes on).
    pub fn log_sync(&self) -> LogSync {
        LogSync {
            wal: match self.conn {
                Conn::Sqlite(_) => {
                    let mut wal = self.path.clone().into_os_string();
                    wal.push("-wal");
                    Some(PathBuf::from(wal))
                }
                Conn::Postgres(_) => None,
            },
        }
    }

    /// Writes a consistent copy of the database to `dest` (which must not
    /// exist) with `VACUUM INTO`, while the store stays usable.
    ///
    /// A PostgreSQL store is backed up with PostgreSQL's own tools
    /// (`pg_dump`): this fails with `Invalid` there.
    pub fn backup_into(&self, dest: impl AsRef<Path>) -> Result<()> {
        let Conn::Sqlite(conn) = &self.conn else {
            return Err(Error::invalid(
                "backup",
                "a PostgreSQL store is backed up with pg_dump, not keyshare-server",
            ));
        };
        let dest = dest.as_ref();
        let dest = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup path", "must be valid UTF-8"))?;
        conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    /// Runs `f` in a read transaction, so that several queries see one state.
    fn with_conn<T>(&self, f: impl FnOnce(&Db<'_>) -> Result<T>) -> Result<T> {
        not_on_an_async_worker();
        match &self.conn {
            Conn::Sqlite(c) => {
                let tx = c.unchecked_transaction()?;
                let value = f(&Db::Sqlite(&tx))?;
                tx.finish()?;
                Ok(value)
            }
            Conn::Postgres(c) => {
                let tx = pg::PgTx::begin_read(c)?;
                let value = f(&Db::Postgres(c))?;
                tx.commit()?;
                Ok(value)
            }
        }
    }
}

/// Creates the database file at `path` with mode 0600 if it does not
/// exist; otherwise takes group and other access away from it and from
/// its `-wal` and `-shm` files.
fn make_private(path: &Path) -> Result<()> {
    let file_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::File { path, source }
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(file_error(path)(e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        let mode = match fs::metadata(&file) {
            Ok(meta) => meta.permissions().mode(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(file_error(&file)(e)),
        };
        if mode & 0o077 != 0 {
            fs::set_permissions(&file, Permissions::from_mode(mode & 0o700))
                .map_err(file_error(&file))?;
            tracing::warn!(
                file = %file.display(),
                was = format!("{:o}", mode & 0o777),
                "the store was readable by others; it is now readable by its owner only"
            );
        }
    }
    Ok(())
}

/// Defines the read API on a type with `with_conn`.
macro_rules! read_api {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
                self.with_conn(|conn| read::$name(conn $(, $arg)*))
            }
        )*
    };
}

/// The read API, shared by [`Store`] and [`Tx`].
macro_rules! read_methods {
    () => {
        read_api! {
            /// Every namespace, by name.
            fn namespaces() -> Vec<NamespaceRecord>;
            /// One namespace.
            fn namespace(name: &str) -> NamespaceRecord;
            /// The scopes of other namespaces that the scopes of `entry`
            /// overlap (some artifact name matches both), leaving out the
            /// scopes in `already` (those it has now). Index range lookups
            /// find the candidates; each is compared exactly.
            fn scope_overlaps(entry: &NamespaceEntry, already: &[keyshare_policy::pattern::ArtifactPattern]) -> ScopeOverlaps;
            /// The keys of a namespace, by key id.
            fn keys(namespace: &str) -> Vec<KeyRecord>;
            /// One key of a namespace.
            fn key(namespace: &str, key_id: &str) -> KeyRecord;
            /// Who asked for CI key `key_id` of `namespace`; `None` for a
            /// key that is not a CI delegation (or was made before owners
            /// were recorded).
            fn ci_owner(namespace: &str, key_id: &str) -> Option<CiOwner>;
            /// `(namespace, key id)` of every ephemeral key whose
            /// `not_after` is at or before `at`.
            fn expired_ephemeral_keys(at: OffsetDateTime) -> Vec<(String, String)>;
            /// The X.509 identities of a namespace, by name.
            fn identities(namespace: &str) -> Vec<IdentityRecord>;
            /// The sub-delegations of a namespace, by name.
            fn sub_delegations(namespace: &str) -> Vec<SubDelegationRecord>;
            /// Every revocation, in the order recorded.
            fn revocations() -> Vec<RevocationRecord>;
            /// The revocation of `subject`, if it is revoked.
            fn revocation(subject: &RevokedSubject) -> Option<RevocationRecord>;
            /// The keys namespace `namespace` revoked itself, in the order recorded.
            fn namespace_revocations(namespace: &str) -> Vec<NamespaceRevocationRecord>;
            /// Namespace `namespace`'s own revocation of the key with
            /// fingerprint `fingerprint`, if it revoked it.
            fn namespace_revocation(namespace: &str, fingerprint: &Sha256Hex) -> Option<NamespaceRevocationRecord>;
            /// Where the key with fingerprint `fingerprint` is listed: in
            /// namespaces' keys and sub-delegations, under any id.
            fn listings(fingerprint: &Sha256Hex) -> Vec<Listing>;
            /// The namespaces that list the key with fingerprint
            /// `fingerprint` as an ephemeral key, by name, at most `limit`.
            fn ephemeral_namespaces(fingerprint: &Sha256Hex, limit: u32) -> Vec<String>;
            /// The fingerprints of the keys listed under `key_id`, in
            /// `namespace` or in every namespace, with where each is listed.
            fn listed_under(namespace: Option<&str>, key_id: &str) -> Vec<(Sha256Hex, Listing)>;
            /// Every peer, by name.
            fn peers() -> Vec<PeerRecord>;
            /// One peer.
            fn peer(name: &str) -> PeerRecord;
            /// Every organization X.509 root, by name.
            fn org_roots() -> Vec<OrgRoot>;
            /// One organization X.509 root.
            fn org_root(name: &str) -> OrgRoot;
            /// Every trusted timestamp authority, by name.
            fn tsas() -> Vec<TsaRecord>;
            /// One trusted timestamp authority.
            fn tsa(name: &str) -> TsaRecord;
            /// Every token (active and revoked), in creation order. No secrets.
            fn tokens() -> Vec<Token>;
            /// One token by id.
            fn token(id: &str) -> Token;
            /// The active (not revoked) token whose secret is `secret`, if
            /// any. The presented secret is hashed and looked up by its hash.
            fn token_by_secret(secret: &str) -> Option<Token>;
            /// The state of the active token whose secret is `secret`, if
            /// any, without its scope list (as [`Self::token_by_secret`]).
            fn token_state_by_secret(secret: &str) -> Option<TokenState>;
            /// Whether token `token_id` is scoped to `namespace` (one
            /// indexed lookup, however many namespaces it covers).
            fn token_covers(token_id: &str, namespace: &str) -> bool;
            /// The first `limit` namespaces token `token_id` is scoped to,
            /// by name, and how many there are in all (for an error that
            /// names them without growing with them).
            fn token_scope_sample(token_id: &str, limit: u32) -> (Vec<NamespaceName>, u64);
            /// The timestamp token with serial `serial` (lowercase hex), if
            /// the server issued one.
            fn timestamp_record(serial: &str) -> Option<TimestampRecord>;
            /// How many timestamp tokens the server has issued.
            fn timestamp_count() -> u64;
            /// The newest version recorded at `path`, if any.
            fn latest_published(path: &str) -> Option<PublishedFile>;
            /// The file at `path` if it is the current version of its
            /// lineage (none published in its place since).
            fn current_published(path: &str) -> Option<PublishedFile>;
            /// The file to serve at `path` (its newest version).
            fn published_file(path: &str) -> PublishedFile;
            /// Every version recorded at `path`, oldest first.
            fn published_history(path: &str) -> Vec<PublishedFile>;
            /// The newest `limit` versions recorded at `path`, newest first.
            fn published_newest(path: &str, limit: u32) -> Vec<PublishedFile>;
            /// The version of the newest `metadata/timestamp.json` recorded
            /// (one indexed row): how a server sees that another one sharing
            /// the database published. `None` before the first publish.
            fn timestamp_version() -> Option<u64>;
            /// What the repository last published (every root, the newest
            /// timestamp, the snapshot it lists and the role versions that
            /// snapshot lists), for `Repository::restore` after a restart;
            /// `None` before the first publish. Not verified here: restore
            /// verifies it.
            fn last_published() -> Option<LastPublished>;
            /// [`Self::last_published`] without the targets roles (every
            /// root, the newest timestamp and its snapshot), for a server
            /// that holds most of them already.
            fn last_published_head() -> Option<LastPublished>;
            /// Version `version` of targets role `role` as published, if
            /// recorded.
            fn published_role(role: &str, version: u64) -> Option<Vec<u8>>;
            /// Audit records after sequence number `after`, oldest first, at most `limit`.
            fn audit_records(after: i64, limit: u32) -> Vec<AuditRecord>;
            /// The audit records `filter` selects, in its order.
            fn audit_query(filter: &AuditFilter) -> Vec<AuditRecord>;
            /// The last audit record's sequence number and hash (not verified).
            fn audit_head() -> AuditHead;
            /// Checks the whole audit chain; names the first bad sequence
            /// number ([`Error::AuditChain`]) if a record was edited,
            /// deleted or moved.
            fn verify_audit_chain() -> AuditHead;
            /// Checks the whole audit chain and that it agrees with every
            /// head of `heads` (each with where it was published, for the
            /// message): [`Error::AuditChain`] for a broken link,
            /// [`Error::AuditHead`] for a head the log contradicts (a
            /// rewrite with recomputed hashes, or records cut off the end).
            fn verify_audit_against(heads: &[(keyshare_policy::audit::Head, String)]) -> AuditHead;
            /// `namespaces/<ns>/trust.json` as the store describes it,
            /// checked by the policy parser.
            fn namespace_document(namespace: &str) -> NamespaceTrust;
            /// The same document as published: its canonical bytes, checked
            /// with the policy parser as [`Self::namespace_document`] checks it.
            fn namespace_document_bytes(namespace: &str) -> Vec<u8>;
            /// The whole namespace index (every shard joined), checked by
            /// the policy parser.
            fn namespaces_index() -> Namespaces;
            /// Index shard `bin` (`org/namespaces/<xx>.json`): the
            /// namespaces whose shard ([`namespace_shard`], the first 8 bits
            /// of SHA-256 of the trust document's path) is `bin`, by name,
            /// checked by the policy parser. Empty for a shard without
            /// namespaces.
            fn namespaces_shard(bin: u64) -> Namespaces;
            /// `org/revocations.json`, checked by the policy parser.
            fn revocations_document() -> Revocations;
            /// `org/peers.json`, checked by the policy parser.
            fn peers_document() -> Peers;
            /// `org/tsas.json`, checked by the policy parser.
            fn tsas_document() -> keyshare_policy::trust::Tsas;
        }
    };
}

impl Store {
    read_methods!();
}

impl Tx<'_> {
    read_methods!();
}

/// The index shard (0–255) of namespace `name`: the first 8 bits of
/// SHA-256 of `namespaces/<name>/trust.json`
/// ([`keyshare_policy::trust::namespace_shard`]), whatever the
/// repository's bin count. Stored as the namespace's `bin` column.
pub fn namespace_shard(name: &NamespaceName) -> u64 {
    keyshare_policy::trust::namespace_shard(name)
}

/// What successive versions of one published file share:
/// `metadata/<V>.<role>.json` → `metadata/<role>.json`;
/// `targets/<dir>/<hash>.<name>` → `targets/<dir>/<name>`; the mutable
/// `metadata/timestamp.json` is its own lineage; each root version is its
/// own lineage (every root is kept).
pub fn lineage(path: &str) -> String {
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    let rest = match base.split_once('.') {
        Some((prefix, rest))
            if !base.ends_with(".root.json")
                && (dir == METADATA_DIR && prefix.bytes().all(|b| b.is_ascii_digit())
                    || dir.starts_with(TARGETS_DIR)) =>
        {
            rest
        }
        _ => base,
    };
    format!("{dir}/{rest}")
}

/// Now, UTC, whole seconds (the store's own timestamps need no more).
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// RFC 3339 text of a time, in UTC.
pub(crate) fn time_text(t: OffsetDateTime) -> String {
    keyshare_policy::datetime::rfc3339(t.to_offset(UtcOffset::UTC))
}

/// Parses a time column.
pub(crate) fn parse_time(table: &'static str, s: &str) -> Result<OffsetDateTime> {
    keyshare_policy::datetime::parse_rfc3339(s).map_err(|e| Error::corrupt(table, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn connection_settings_are_wal_full_foreign_keys_and_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let pragma = |name: &str| -> String {
            store
                .sqlite()
                .query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(pragma("synchronous"), "2"); // FULL
        assert_eq!(pragma("foreign_keys"), "1");
        assert_eq!(pragma("busy_timeout"), "5000");
        assert_eq!(pragma("temp_store"), "2"); // MEMORY
    }

    #[test]
    fn times_are_stored_as_utc_rfc3339() {
        let t = time::macros::datetime!(2026-01-02 04:04:05 +01:00);
        assert_eq!(time_text(t), "2026-01-02T03:04:05Z");
        assert_eq!(parse_time("x", "2026-01-02T03:04:05Z").unwrap(), t);
    }

    #[test]
    fn versions_of_one_file_share_a_lineage() {
        assert_eq!(
            lineage("metadata/3.snapshot.json"),
            "metadata/snapshot.json"
        );
        assert_eq!(lineage("metadata/12.team-a.json"), "metadata/team-a.json");
        assert_eq!(
            lineage("metadata/timestamp.json"),
            "metadata/timestamp.json"
        );
        assert_eq!(lineage("metadata/2.root.json"), "metadata/2.root.json");
        assert_eq!(
            lineage("targets/namespaces/team-a/abc123.trust.json"),
            "targets/namespaces/team-a/trust.json"
        );
        assert_eq!(
            lineage("targets/org/namespaces/ff01.3a.json"),
            "targets/org/namespaces/3a.json"
        );
    }
}

#[cfg(test)]
mod background_checkpoint {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    /// What a publish commits reaches the database file without the
    /// writer checkpointing: the checkpointer's thread copies it there.
    #[test]
    fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let store = super::Store::open(&path).unwrap();
        let checkpointer = store.checkpoint_in_background().unwrap();
        let autocheckpoint: i64 = store
            .sqlite()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, super::CHECKPOINT_BACKSTOP);
        // Far below the backstop, so the writer does not checkpoint.
        store
            .sqlite()
            .execute_batch("CREATE TABLE filler (b BLOB)")
            .unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        for _ in 0..64 {
            store
                .sqlite()
                .execute("INSERT INTO filler (b) VALUES (zeroblob(8192))", [])
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() < before + 64 * 8192 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            size() >= before + 64 * 8192,
            "the database file is {} bytes; {before} before 512 KiB were committed",
            size()
        );
        drop(checkpointer);
    }
}

#[cfg(test)]
mod statement_cache {
    #![allow(clippy::unwrap_used)]

    /// The store's statements are compiled once per connection: binding
    /// new values to a cached statement does not make SQLite compile it
    /// again (it did for these, before QPSG was set).
    #[test]
    fn a_cached_statement_is_not_compiled_again_for_each_new_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let writer = super::Store::open(&path).unwrap();
        let reader = super::Store::open_existing(&path).unwrap();
        for store in [&writer, &reader] {
            for sql in [
                "SELECT id, path FROM published_files WHERE path = ?1 ORDER BY id DESC LIMIT 1",
                "SELECT namespace, key_id FROM keys WHERE namespace = ?1 ORDER BY key_id",
                "SELECT 1 FROM token_namespaces WHERE token_id = ?1 AND namespace = ?2",
            ] {
                let params = sql.matches('?').count();
                for v in ["a", "b", "c", "d"] {
                    let mut s = store.sqlite().prepare_cached(sql).unwrap();
                    let values = vec![v; params];
                    let mut rows = s.query(rusqlite::params_from_iter(values)).unwrap();
                    assert!(rows.next().unwrap().is_none());
                }
                let s = store.sqlite().prepare_cached(sql).unwrap();
                assert_eq!(
                    s.get_status(rusqlite::StatementStatus::RePrepare),
                    0,
                    "{sql}"
                );
            }
        }
    }
}

/// In debug builds (the tests), fails a store call made on one of the
/// server's async workers (actix's threads, `actix-rt|...`, `actix-server
/// worker ...`), as PostgreSQL's synchronous client fails there on every
/// store: the tests that run the server on SQLite catch such a call too.
/// Store calls belong on blocking threads (`web::block`, `spawn_blocking`)
/// or threads of their own; on an async worker a call stalls every
/// request that worker carries.
fn not_on_an_async_worker() {
    #[cfg(debug_assertions)]
    if let Some(name) = std::thread::current().name() {
        assert!(
            !name.starts_with("actix-"),
            "a store call on the async worker `{name}`: move it to a blocking thread"
        );
    }
}
