//! The publisher: every accepted change becomes one signed publish.
//!
//! [`Publisher::apply`] runs one SQLite transaction that applies the change
//! to the store, rebuilds the trust documents it affects, has the
//! in-memory [`Repository`] sign new versions of the changed roles plus
//! snapshot and timestamp, appends one audit record and records the new
//! files. Every publish appends its audit records just before the
//! timestamp is signed, and the timestamp carries the chain head including
//! them (`x-keyshare-audit`, see [`keyshare_policy::audit`]). If any step
//! fails the transaction rolls back, and the repository is rebuilt from
//! what the store last published ([`Repository::restore`]), so a failed
//! publish changes nothing.
//!
//! One job a file:
//!
//! * `mod.rs` (here): [`Publisher`], its public types and the public API
//!   that is not one of the jobs below (open, apply, read);
//! * `publish.rs`: the one publish skeleton every kind of publish goes
//!   through (transaction → the caller's work → audit and commit → record
//!   and prune → cache and metrics, or the repository restored on
//!   failure);
//! * `audit.rs`: a publish's audit records and `commit_audited`, the one
//!   place a publish's chain head is computed and signed into the
//!   timestamp;
//! * `change.rs`: [`Change`], how each change applies itself to the store
//!   and what it says in the audit log;
//! * `checks.rs`: the checks a change people make must pass, and a
//!   refused key said better (a key already listed under another id);
//! * `stage.rs`: what a change makes the repository rebuild and re-sign
//!   (the published layout below);
//! * `batch.rs`: [`Publisher::apply_batch`], several changes in one
//!   publish ([`Batched`]);
//! * `root.rs`: root rotation ([`Publisher::submit_root`]) and the checks a
//!   submitted root must pass, refused with a [`RootRefusal`];
//! * `system.rs`: the publishes the server makes by itself (re-signing,
//!   republishing, the expiry sweep);
//! * `durable.rs`: publishes committed before their sync, held from the
//!   read API until it (the CI thread's pipelined group commit);
//! * `bundle.rs`: the bundle edition of snapshot and timestamp an air-gap
//!   export carries ([`BundleEdition`]);
//! * `cache.rs`: the published files in memory for the read API
//!   ([`CachedFile`], [`Publisher::file`]);
//! * `evidence.rs`: the delegation evidence of an ephemeral key, read
//!   from the published files ([`Publisher::delegation_evidence`]);
//! * `metrics.rs`: counters for `/metrics` ([`PublisherMetrics`]);
//! * `tokens.rs`: API tokens (audited, not published).
//!
//! A new change kind goes in `change.rs`: a [`Change`] variant, its apply,
//! its audit.
//!
//! Layout of the published repository (see `docs/server.md`), built so
//! that one change re-signs a bounded number of files however many
//! namespaces there are:
//!
//! * top-level `targets` (online targets key) lists `org/revocations.json`,
//!   `org/peers.json`, `org/roots/<name>.pem` and the namespace index in
//!   256 shards `org/namespaces/<xx>.json` (only non-empty shards; shard
//!   `xx` holds the namespaces whose trust document path has `xx` as the
//!   first 8 bits of its SHA-256, whatever the bin count); it delegates,
//!   with TAP 15 succinct hashed bins (prefix `bins`), to 256, 1,024 or
//!   4,096 roles (`bins-00` … `bins-ff`, `bins-000` … `bins-3ff` or
//!   `bins-fff`; chosen at init, recorded as the published `bit_length`),
//!   which all exist from init and are signed with the online targets key;
//! * bin `bins-xx` lists `namespaces/<ns>/trust.json` of every namespace
//!   whose trust document path hashes into it. There are no namespace
//!   roles: the namespaces key the server holds signs nothing in a new
//!   repository (it is still loaded, for existing configurations).
//!
//! Creating or deleting a namespace re-signs its bin, top-level targets
//! (its index shard changed), snapshot and timestamp; changing a namespace
//! re-signs its bin, snapshot and timestamp. Snapshot lists targets, the
//! bins and nothing else in a new repository, so its size does not grow
//! with the number of namespaces.
//!
//! A repository published before (bins delegating to a role per
//! namespace, signed by the namespaces key) is migrated in one publish,
//! audited as `repository.migrate`: at open by the commands
//! ([`Publisher::migrate_layout`]), or else before the next publish. Its
//! namespace roles stay in snapshot at their last version, frozen, since
//! TUF clients refuse a snapshot that drops a role. A store holding the
//! layout before the bins (namespace roles delegated directly from
//! `targets`) is refused when the publisher opens it
//! ([`PublishError::Layout`]).
//!
//! Storage stays bounded: every publish marks the versions it supersedes,
//! and deletes, in the same transaction, superseded versions older than
//! the retention period ([`Publisher::set_retention`]), at most 256 per
//! publish ([`Publisher::prune`] deletes all of them); roots and current
//! files are never deleted.
//!
//! [`Publisher::apply_batch`] publishes several changes in one transaction
//! and one signing (CI delegations gathered by `crate::ci::batch`, which
//! commits them with [`Publisher::apply_batch_deferred`] and serves them
//! with [`Publisher::serve`] once the store's log is synced: `durable.rs`),
//! with one audit record per change; each change is checked alone (a SQLite
//! savepoint per change, documents rebuilt per namespace), so one bad
//! change fails alone and the others publish. The expiry sweep
//! ([`Publisher::sweep_ephemeral`]) goes namespace by namespace the same
//! way.
//!
//! A published namespace may have a threshold above the keys and
//! identities it lists (the sweep removed the CI keys that made it up;
//! verifiers then decide `ThresholdNotMet`). Only changes people make
//! through [`Publisher::apply`] are refused for leaving a namespace so.
//!
//! Writers are serialised by one mutex; published files are also kept in
//! an in-memory cache for the read API ([`Publisher::file`]).
//!
//! Several servers may share one PostgreSQL store (`docs/operations/ha.md`):
//! every publish first compares, under the store's write lock, the newest
//! recorded timestamp version with its repository and rebuilds the
//! repository from the store when another server published since
//! (`publish::catch_up`); [`Publisher::follow_store`] moves a server's
//! cache forward for reads. Neither ever goes back.

mod audit;
mod batch;
mod bundle;
mod cache;
mod change;
mod checks;
mod durable;
mod evidence;
mod metrics;
mod publish;
mod root;
mod stage;
mod system;
mod tokens;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::json;
use time::{Duration, OffsetDateTime};

use keyshare_policy::metadata::RoleName;
use keyshare_policy::repo::{File, Options, Repository, SharedSigner};
use keyshare_policy::trust::{shard_layout, BIN_BITS, NAMESPACE_BIN_BITS};

use crate::store::{self, SingleUseKind, Store};

use audit::{Audit, Audits};
use cache::Cache;
use durable::{Commit, Unsynced};
use metrics::Metrics;
use publish::{needs_migration, publish_in, restore, Staged};
use stage::{delegate_bins, stage, Affected};

pub use crate::config::DEFAULT_RETENTION;
pub use batch::{Batched, Results};
pub use bundle::BundleEdition;
pub use cache::{CachedFile, STORE_LOOKUPS_AT_ONCE};
pub use change::Change;
pub use durable::Held;
pub use evidence::MAX_EVIDENCE_NAMESPACES;
pub use metrics::PublisherMetrics;
pub use root::RootRefusal;

/// The server's online keys.
#[derive(Clone, Debug)]
pub struct OnlineKeys {
    /// Top-level targets.
    pub targets: SharedSigner,
    /// Snapshot.
    pub snapshot: SharedSigner,
    /// Timestamp.
    pub timestamp: SharedSigner,
    /// The key of the namespace roles of repositories published before
    /// trust documents were listed in the bins. Loaded when configured, so
    /// existing configurations keep working; it signs nothing (the
    /// migration undelegates those roles and never signs them again).
    pub namespaces: SharedSigner,
}

/// What one publish produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Paths of the files published (shared by every change of one
    /// publish).
    pub files: Arc<[String]>,
    /// The new timestamp version.
    pub timestamp_version: u64,
    /// Sequence number of the audit record.
    pub audit_seq: i64,
}

/// Why a change was not published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The store refused the change or failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Building or signing metadata failed.
    #[error("{0}")]
    Policy(#[from] keyshare_policy::Error),
    /// A submitted root was refused: not the next version, not chained
    /// (old or new threshold not met), malformed, expired, or listing
    /// online keys the server does not hold.
    #[error(transparent)]
    Root(RootRefusal),
    /// The store holds a repository in a layout this server does not
    /// publish (an earlier layout); initialise a new data directory.
    #[error("{0}")]
    Layout(String),
    /// The repository could not be rebuilt after a failed publish; the
    /// server must restart.
    #[error("publisher is unusable: {0}")]
    Broken(String),
    /// A CI nonce or ID token was already used for a delegation.
    #[error("{}", match .0 {
        SingleUseKind::Nonce => "the nonce was already used; ask POST /api/v1/ci/nonce for a new one",
        SingleUseKind::Token => "this ID token was already used for a delegation; each job token gets one",
    })]
    Used(SingleUseKind),
    /// The key is already listed in the namespace under another id.
    #[error("key `{key_id}`: the same key is already listed in namespace `{namespace}` as `{listed_as}`")]
    SameKey {
        /// The namespace.
        namespace: String,
        /// The id the key was to be listed under.
        key_id: String,
        /// The id it is listed under.
        listed_as: String,
    },
}

/// Refuses a bin count keyshare does not publish.
fn check_bin_bits(bin_bits: u32) -> Result<(), PublishError> {
    if BIN_BITS.contains(&bin_bits) {
        Ok(())
    } else {
        Err(PublishError::Layout(format!(
            "{} hashed bins: a repository has 256, 1024 or 4096",
            1u64 << bin_bits.min(63)
        )))
    }
}

impl From<RootRefusal> for PublishError {
    fn from(refusal: RootRefusal) -> Self {
        Self::Root(refusal)
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    repo: Repository,
    /// The bins still delegate to namespace roles: the next publish
    /// migrates first ([`Publisher::migrate_layout`]).
    legacy: bool,
    /// The repository may hold what the store did not keep (a publish
    /// failed and the store could not be read to rebuild it, or a publish
    /// panicked): it is rebuilt from the store before anything else.
    dirty: bool,
}

/// The publisher. `Send + Sync`; share it as `Arc<Publisher>`.
#[derive(Debug)]
pub struct Publisher {
    inner: Mutex<Inner>,
    keys: OnlineKeys,
    options: Options,
    /// How long superseded published files are kept (`None`: forever).
    retention: Option<Duration>,
    cache: Cache,
    /// The read API's store reads (files not in memory), a few at a time.
    lookups: cache::Lookups,
    metrics: Metrics,
    /// Publishes committed and not yet served (see [`durable`]).
    unsynced: Unsynced,
    /// The hashed bins top-level targets delegates to. Their count is
    /// chosen at init and never changes, so which bin lists a namespace's
    /// trust document is known without the lock.
    bins: keyshare_policy::metadata::SuccinctRoles,
    /// Checkpoints the store's WAL outside the publishes.
    _checkpointer: store::Checkpointer,
}

impl Publisher {
    /// Creates a new repository in an empty store: root v1 signed here by
    /// `root_signers` (the embedded default), the org documents, version 1
    /// of everything, published and audited; 256 hashed bins.
    pub fn init(
        store: Store,
        keys: OnlineKeys,
        root_signers: &[SharedSigner],
        root_threshold: u32,
        options: Options,
        now: OffsetDateTime,
    ) -> Result<Self, PublishError> {
        Self::init_with_bins(
            store,
            keys,
            root_signers,
            root_threshold,
            options,
            NAMESPACE_BIN_BITS,
            now,
        )
    }

    /// Like [`Publisher::init`], with `2^bin_bits` hashed bins (`bin_bits`
    /// one of [`BIN_BITS`]: 256, 1,024 or 4,096 bins). The published
    /// `succinct_roles.bit_length` of top-level targets records the choice;
    /// it cannot change afterwards.
    pub fn init_with_bins(
        store: Store,
        keys: OnlineKeys,
        root_signers: &[SharedSigner],
        root_threshold: u32,
        options: Options,
        bin_bits: u32,
        now: OffsetDateTime,
    ) -> Result<Self, PublishError> {
        check_bin_bits(bin_bits)?;
        let repo = Repository::create(
            root_signers,
            root_threshold,
            [
                (RoleName::TARGETS, vec![keys.targets.clone()]),
                (RoleName::SNAPSHOT, vec![keys.snapshot.clone()]),
                (RoleName::TIMESTAMP, vec![keys.timestamp.clone()]),
            ],
            options,
            now,
        )?;
        Self::publish_first(store, repo, keys, options, bin_bits, now)
    }

    /// Like [`Publisher::init_with_bins`], but starts from `root`, the bytes of a root
    /// version 1 made and signed in an offline ceremony (`keyshare root`),
    /// so no root key ever touches the server; those bytes are published
    /// as `metadata/1.root.json` unchanged. The root must meet its own
    /// threshold, not be expired, and list the server's online targets,
    /// snapshot and timestamp keys with threshold 1; otherwise
    /// [`PublishError::Root`] and nothing is stored.
    pub fn init_with_root(
        store: Store,
        keys: OnlineKeys,
        root: &[u8],
        options: Options,
        bin_bits: u32,
        now: OffsetDateTime,
    ) -> Result<Self, PublishError> {
        check_bin_bits(bin_bits)?;
        root::check_first(root, &keys, now)?;
        let signers = [
            (RoleName::TARGETS, &keys.targets),
            (RoleName::SNAPSHOT, &keys.snapshot),
            (RoleName::TIMESTAMP, &keys.timestamp),
        ]
        .into_iter()
        .map(|(role, key)| (RoleName::new(role), vec![key.clone()]))
        .collect();
        let repo = Repository::new(root, signers, options, now)?;
        Self::publish_first(store, repo, keys, options, bin_bits, now)
    }

    /// Publishes a new repository's first version: `repo`'s root, the bins,
    /// empty documents, snapshot and timestamp, in one transaction. This
    /// goes through the publish skeleton's transaction
    /// ([`publish_in`]) but not through [`Publisher::publish`]: there is no
    /// publisher yet, nor a published repository to restore on failure;
    /// the publisher made from it caches every file.
    fn publish_first(
        mut store: Store,
        mut repo: Repository,
        keys: OnlineKeys,
        options: Options,
        bin_bits: u32,
        now: OffsetDateTime,
    ) -> Result<Self, PublishError> {
        if store.last_published()?.is_some() {
            return Err(store::Error::AlreadyExists {
                kind: "published repository in",
                name: store.path().display().to_string(),
            }
            .into());
        }
        delegate_bins(&mut repo, &keys, bin_bits, now)?;
        publish_in(
            &mut store,
            &mut repo,
            now,
            None,
            Commit::Durable,
            |tx, repo| {
                let affected = Affected {
                    shards: (0..shard_layout().bin_count()).collect(),
                    revocations: true,
                    peers: true,
                    ..Affected::default()
                };
                let staged = stage(tx, repo, &affected)?;
                let audit = Audit::new(
                    "system",
                    "repository.init",
                    "repository",
                    json!({ "root_version": 1, "bins": 1u64 << bin_bits }),
                );
                // A new store has nothing superseded to prune.
                Ok(Staged::new(staged, Audits::Records(vec![audit]), ()).keeping_superseded())
            },
        )?;
        Self::with_repo(store, repo, keys, options)
    }

    /// Opens a store that holds a published repository, rebuilding the
    /// repository from what it last published (verified as a client would).
    /// A repository whose bins still delegate to namespace roles is
    /// migrated by its next publish, or at once by
    /// [`Publisher::migrate_layout`].
    pub fn open(store: Store, keys: OnlineKeys, options: Options) -> Result<Self, PublishError> {
        let repo = restore(&store, &keys, options)?;
        Self::with_repo(store, repo, keys, options)
    }

    fn with_repo(
        store: Store,
        repo: Repository,
        keys: OnlineKeys,
        options: Options,
    ) -> Result<Self, PublishError> {
        let legacy = needs_migration(&repo)?;
        let bins = stage::current_bins(&repo)?;
        let checkpointer = store.checkpoint_in_background()?;
        let unsynced = Unsynced::new(store.log_sync());
        let publisher = Self {
            _checkpointer: checkpointer,
            inner: Mutex::new(Inner {
                store,
                repo,
                legacy,
                dirty: false,
            }),
            keys,
            options,
            retention: Some(DEFAULT_RETENTION),
            cache: Cache::default(),
            lookups: cache::Lookups::default(),
            metrics: Metrics::default(),
            unsynced,
            bins,
        };
        {
            let inner = publisher.lock();
            publisher.cache.insert(&inner.repo.current_files()?);
            publisher.metrics.update_versions(&inner.repo);
        }
        Ok(publisher)
    }

    /// Sets how long a superseded published file (an older version of a
    /// role's metadata, snapshot, timestamp or target) stays in the store
    /// and is served, so a client in the middle of a refresh does not get
    /// 404s; `None` keeps every version forever. Default
    /// [`DEFAULT_RETENTION`]. Every publish deletes, in its own
    /// transaction, what was superseded longer ago than this.
    pub fn set_retention(&mut self, retention: Option<Duration>) {
        self.retention = retention;
    }

    /// Deletes superseded files older than the retention period (see
    /// [`set_retention`](Self::set_retention)) in one transaction; returns
    /// how many. Publishes prune too; this is for a server with no writes.
    pub fn prune(&self, now: OffsetDateTime) -> Result<usize, PublishError> {
        let Some(retention) = self.retention else {
            return Ok(0);
        };
        let mut guard = self.lock();
        Ok(guard
            .store
            .transaction_at(now, |tx| tx.prune_superseded(now - retention, None))?)
    }

    /// Makes the publish `held` durable and serves it (with every publish
    /// committed before it), once the store's log is synced; returns at
    /// once when it already is. Blocking: it may sync the log. Its changes
    /// may be reported to whoever asked only after this returns `Ok`.
    pub fn serve(&self, held: Held) -> Result<(), PublishError> {
        self.unsynced
            .serve_through(held, false, &self.cache, &self.metrics)
    }

    /// Syncs and serves every publish committed so far.
    fn serve_all(&self) -> Result<(), PublishError> {
        self.unsynced.serve_all(&self.cache, &self.metrics)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the repository possibly
        // ahead of the store: it is marked to be rebuilt from the store
        // before the next publish.
        self.inner.lock().unwrap_or_else(|poisoned| {
            self.inner.clear_poison();
            let mut inner = PoisonError::into_inner(poisoned);
            inner.dirty = true;
            inner
        })
    }

    /// Applies `change` on behalf of `actor` (for the audit log, e.g.
    /// `token:<id>`) and publishes it. This is the path of changes people
    /// make: setting a threshold above the distinct keys and identities a
    /// namespace lists, or removing a long-lived key or an identity so that
    /// it is left so, is refused (400 `threshold`). Blocking: call from a
    /// blocking thread.
    pub fn apply(
        &self,
        actor: &str,
        change: Change,
        now: OffsetDateTime,
    ) -> Result<Applied, PublishError> {
        let published = self.publish(self.writer(), now, |tx, repo| {
            let removes_long_lived = change.removes_long_lived(tx)?;
            let effect = change.apply(tx)?;
            change.check_reachable(tx, removes_long_lived)?;
            let staged = stage(tx, repo, &effect.affected)?;
            let audit = effect.entry.by(actor);
            Ok(Staged::new(staged, Audits::Records(vec![audit]), ()))
        })?;
        Ok(published.applied())
    }

    /// Migrates a repository published before trust documents were listed
    /// in the bins, in one publish audited as `system` doing
    /// `repository.migrate`: every namespace role is undelegated from its
    /// bin and every `namespaces/<ns>/trust.json` it listed is listed, as
    /// published, in the bin its path hashes to (re-signing those bins,
    /// snapshot and timestamp). The namespace roles stay in snapshot at
    /// their last version (TUF clients refuse a snapshot that drops a role
    /// they saw) and are never signed again. `None` when there is nothing
    /// to migrate. Every other publish does this first when it is due.
    pub fn migrate_layout(&self, now: OffsetDateTime) -> Result<Option<Applied>, PublishError> {
        let mut writer = self.writer();
        Ok(self
            .migrate_locked(&mut writer, now)?
            .map(|published| published.applied()))
    }

    /// How many hashed bins the repository delegates to (256, 1,024 or
    /// 4,096), as its top-level targets records.
    pub fn bin_count(&self) -> u64 {
        self.bins.bin_count()
    }

    /// The role that lists `namespaces/<ns>/trust.json`: the hashed bin
    /// its path hashes to.
    pub fn trust_role(&self, ns: &keyshare_policy::trust::NamespaceName) -> RoleName {
        self.bins.role_for_target(&ns.target_path())
    }

    /// Every file of the current repository state plus every target file
    /// it lists (for `publish --to`).
    pub fn current_files(&self) -> Result<Vec<File>, PublishError> {
        let guard = self.lock();
        self.serve_all()?;
        let mut files = guard.repo.current_files()?;
        let mut roles: Vec<RoleName> = vec![RoleName::targets()];
        roles.extend(guard.repo.delegated_roles().cloned());
        for role in roles {
            let Some(targets) = guard.repo.targets(role.as_str()) else {
                continue;
            };
            for (path, file) in &targets.signed.targets {
                let disk = format!(
                    "targets/{}",
                    keyshare_policy::layout::target_remote_name(path, file, true)
                );
                let stored = guard.store.published_file(&disk)?;
                files.push(File {
                    path: disk,
                    bytes: stored.bytes.into(),
                    immutable: true,
                });
            }
        }
        Ok(files)
    }

    /// Runs `f` with the store (reads; blocking).
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.lock().store)
    }

    /// Checks the audit chain and that it agrees with the chain heads of
    /// the published timestamps (the current one and the newest stored
    /// ones, each verified with the timestamp key), see
    /// [`crate::published_heads`]. Blocking.
    pub fn verify_audit(&self) -> Result<crate::published_heads::AuditVerified, PublishError> {
        let guard = self.lock();
        Ok(crate::published_heads::verify(&guard.store, &guard.repo)?)
    }

    /// Counters and versions for `/metrics`.
    pub fn metrics(&self) -> PublisherMetrics {
        self.metrics.get()
    }
}
