//! The publisher: every accepted change becomes one signed publish.
//!
//! [`Publisher::apply`] runs one SQLite transaction that applies the change
//! to the store, rebuilds the trust documents it affects, has the
//! in-memory [`Repository`] sign new versions of the changed roles plus
//! snapshot and timestamp, appends one audit record and records the new
//! files. Every publish appends its audit records just before the
//! timestamp is signed, and the timestamp carries the chain head including
//! them (`x-keyshare-audit`, see [`keyshare_policy::audit`]): one helper,
//! `commit_audited`, does that for every kind of publish. If any step
//! fails the transaction rolls back, and the repository
//! is rebuilt from what the store last published ([`Repository::restore`]),
//! so a failed publish changes nothing.
//!
//! Layout of the published repository (see `docs/server.md`), built so
//! that one change re-signs a bounded number of files however many
//! namespaces there are:
//!
//! * top-level `targets` (online targets key) lists `org/revocations.json`,
//!   `org/peers.json`, `org/roots/<name>.pem` and the namespace index in
//!   shards `org/namespaces/<xx>.json` (only non-empty shards; shard `xx`
//!   holds the namespaces of bin `xx`); it delegates, with TAP 15 succinct
//!   hashed bins (8 bits, prefix `bins`), to the 256 roles `bins-00` …
//!   `bins-ff`, which all exist from init and are signed with the online
//!   targets key (they decide which key signs which namespace, so they are
//!   governance and the namespaces key cannot sign them);
//! * bin `bins-xx` delegates to the role of each namespace whose trust
//!   document path `namespaces/<ns>/trust.json` hashes into bin `xx`,
//!   named like the namespace, with `paths: ["namespaces/<ns>/*"]`,
//!   terminating, signed with the server's namespaces key; that role holds
//!   `namespaces/<ns>/trust.json`.
//!
//! Creating or deleting a namespace re-signs its bin, its role (create),
//! top-level targets (its index shard changed), snapshot and timestamp;
//! changing a namespace re-signs its role, snapshot and timestamp. A store
//! holding the earlier layout (namespace roles delegated directly from
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
//! and one signing (CI delegations gathered by `crate::ci::batch`), with
//! one audit record per change; each change is checked alone (a SQLite
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use keyshare_policy::audit::Head as AuditChainHead;
use keyshare_policy::metadata::{
    DelegatedRole, Envelope, KeyId, RoleName, Root, SuccinctRoles, Unrecognized,
};
use keyshare_policy::pattern::{ArtifactPattern, PathPattern};
use keyshare_policy::repo::{File, Options, Repository, SharedSigner};
use keyshare_policy::trust::{
    namespace_bins, shard_path, NamespaceEntry, NamespaceName, Peer, Revocation, RevokedSubject,
    Sha256Hex, SubDelegation, TrustedKey, X509Identity, PEERS_PATH, REVOCATIONS_PATH,
};
use keyshare_policy::verify::{verify_root_self, Authority};

use crate::store::{
    self, lineage, CiOwner, Listing, NewToken, OverlapRule, SingleUse, SingleUseKind, Store, Token,
    TokenKind, Tx,
};

pub use crate::config::DEFAULT_RETENTION;

/// The server's online keys.
#[derive(Clone, Debug)]
pub struct OnlineKeys {
    /// Top-level targets.
    pub targets: SharedSigner,
    /// Snapshot.
    pub snapshot: SharedSigner,
    /// Timestamp.
    pub timestamp: SharedSigner,
    /// Every namespace role the server holds.
    pub namespaces: SharedSigner,
}

/// A published file as the read API serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedFile {
    /// `metadata/...` or `targets/...`.
    pub path: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// The HTTP entity tag, quoted: `"<sha256 hex>"`.
    pub etag: String,
    /// False only for `metadata/timestamp.json`.
    pub immutable: bool,
}

impl CachedFile {
    fn new(path: String, bytes: Arc<[u8]>, immutable: bool) -> Self {
        let etag = format!("\"{}\"", keyshare_policy::hash::sha256_hex(&bytes));
        Self {
            path,
            bytes,
            etag,
            immutable,
        }
    }
}

/// One change an admin, a maintainer or the system asks for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Change {
    /// A new namespace with its scopes and maintainers.
    CreateNamespace {
        /// Name, scopes, maintainers.
        entry: NamespaceEntry,
        /// Distinct signatures its artifacts need.
        threshold: NonZeroU32,
        /// Create it even if a scope overlaps another namespace's (an
        /// admin said so explicitly); otherwise such a create is refused
        /// with `store::Error::ScopeOverlap`. The audit record lists the
        /// overlaps either way.
        allow_overlap: bool,
    },
    /// Removes a namespace and everything in it.
    DeleteNamespace {
        /// The namespace.
        namespace: NamespaceName,
    },
    /// Changes a namespace's threshold.
    SetThreshold {
        /// The namespace.
        namespace: NamespaceName,
        /// The new threshold.
        threshold: NonZeroU32,
    },
    /// Widens a namespace: adds artifact patterns to its scopes.
    AddScopes {
        /// The namespace.
        namespace: NamespaceName,
        /// The patterns to add (none of them a scope of it already).
        scopes: Vec<ArtifactPattern>,
        /// Add them even if one overlaps another namespace's scope (an
        /// admin said so explicitly); otherwise refused with
        /// `store::Error::ScopeOverlap`. The audit record lists the
        /// overlaps either way.
        allow_overlap: bool,
    },
    /// Lists a signing key in a namespace.
    AddKey {
        /// The namespace.
        namespace: NamespaceName,
        /// The key.
        key: TrustedKey,
    },
    /// Lists a CI job's ephemeral key (a CI delegation): the key with its
    /// principal, who asked for it, and the nonce and ID token it was
    /// granted for, used up, all in one change.
    DelegateCi {
        /// The namespace.
        namespace: NamespaceName,
        /// The key: ephemeral, with `not_after` and a principal.
        key: TrustedKey,
        /// Who asked, exactly (decides who may end it early; not published).
        owner: CiOwner,
        /// Values that grant one delegation only; refused with
        /// [`PublishError::Used`] when one was used before.
        single_use: Vec<SingleUse>,
    },
    /// Removes a signing key from a namespace.
    RemoveKey {
        /// The namespace.
        namespace: NamespaceName,
        /// The key's id.
        key_id: KeyId,
    },
    /// Lists an X.509 identity in a namespace.
    AddIdentity {
        /// The namespace.
        namespace: NamespaceName,
        /// The identity.
        identity: X509Identity,
    },
    /// Removes an X.509 identity.
    RemoveIdentity {
        /// The namespace.
        namespace: NamespaceName,
        /// The identity's name.
        name: String,
    },
    /// Adds a sub-delegation to a namespace.
    AddSubDelegation {
        /// The namespace.
        namespace: NamespaceName,
        /// The sub-delegation.
        sub_delegation: SubDelegation,
    },
    /// Removes a sub-delegation.
    RemoveSubDelegation {
        /// The namespace.
        namespace: NamespaceName,
        /// Its name.
        name: String,
    },
    /// A namespace revokes one of its keys (by its material) for its own
    /// artifacts: published in the namespace's trust document, applied in
    /// that namespace only.
    RevokeNamespaceKey {
        /// The namespace.
        namespace: NamespaceName,
        /// What (a key, by fingerprint), when and why.
        revocation: Revocation,
        /// The id the key is listed under (a note, never published).
        key_id: Option<KeyId>,
    },
    /// Withdraws a namespace's own revocation of a key (an org admin's
    /// correction of a mistake).
    RemoveNamespaceRevocation {
        /// The namespace.
        namespace: NamespaceName,
        /// The key's fingerprint.
        fingerprint: Sha256Hex,
    },
    /// Revokes a key (by its material) or certificate organization-wide.
    AddRevocation {
        /// What, when and why.
        revocation: Revocation,
        /// Where the admin named the key (a note kept with the revocation,
        /// never published).
        listed_as: Option<Listing>,
    },
    /// Adds or replaces a peer service.
    PutPeer {
        /// The peer.
        peer: Peer,
    },
    /// Removes a peer service.
    RemovePeer {
        /// Its name.
        name: String,
    },
    /// Adds or replaces an organization X.509 root certificate.
    PutOrgRoot {
        /// Its name.
        name: String,
        /// The certificate, PEM.
        pem: String,
    },
    /// Removes an organization root certificate.
    RemoveOrgRoot {
        /// Its name.
        name: String,
    },
}

/// One change of a [`Publisher::apply_batch`].
#[derive(Clone, Debug)]
pub struct Batched {
    /// Who asked, for the audit log (e.g. `oidc:<issuer>#<subject>`).
    pub actor: String,
    /// The change.
    pub change: Change,
    /// Added to the change's audit details as `context` (e.g. the verified
    /// identity and claims of a CI job); `Null` adds nothing. No floats.
    pub context: Value,
}

/// What one publish produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Paths of the files published.
    pub files: Vec<String>,
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
    /// A submitted root was refused: not chained (old or new threshold not
    /// met), malformed, expired, or listing online keys the server does not
    /// hold.
    #[error("{0}")]
    RootRefused(String),
    /// A submitted root is not the next version of the current one.
    #[error("{0}")]
    RootVersion(String),
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

/// Counters for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublisherMetrics {
    /// Publishes since start.
    pub publishes: u64,
    /// Time spent publishing since start, seconds.
    pub publish_seconds_total: f64,
    /// Duration of the last publish, seconds.
    pub last_publish_seconds: f64,
    /// Current version of each top-level role.
    pub versions: BTreeMap<String, u64>,
    /// The earliest `expires` among root, targets, snapshot and timestamp.
    pub earliest_expiry: Option<OffsetDateTime>,
}

/// What a change touched, so the publisher knows what to rebuild.
#[derive(Debug, Default)]
struct Affected {
    /// Index shards (bin numbers) to rebuild.
    shards: BTreeSet<u64>,
    revocations: bool,
    peers: bool,
    created: BTreeSet<NamespaceName>,
    deleted: BTreeSet<NamespaceName>,
    namespaces: BTreeSet<NamespaceName>,
    roots_put: Vec<(String, String)>,
    roots_removed: Vec<String>,
}

impl Affected {
    /// Adds what `other` affects (several changes in one publish).
    fn absorb(&mut self, other: Affected) {
        self.shards.extend(other.shards);
        self.revocations |= other.revocations;
        self.peers |= other.peers;
        self.created.extend(other.created);
        self.deleted.extend(other.deleted);
        self.namespaces.extend(other.namespaces);
        self.roots_put.extend(other.roots_put);
        self.roots_removed.extend(other.roots_removed);
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    repo: Repository,
}

/// The publisher. `Send + Sync`; share it as `Arc<Publisher>`.
#[derive(Debug)]
pub struct Publisher {
    inner: Mutex<Inner>,
    keys: OnlineKeys,
    options: Options,
    /// How long superseded published files are kept (`None`: forever).
    retention: Option<Duration>,
    cache: RwLock<HashMap<String, Arc<CachedFile>>>,
    /// For each file lineage (a role's metadata, a target path), the path
    /// of its cached current version.
    current: Mutex<HashMap<String, String>>,
    metrics: Mutex<PublisherMetrics>,
}

impl Publisher {
    /// Creates a new repository in an empty store: root v1 signed here by
    /// `root_signers` (the embedded default), the org documents, version 1
    /// of everything, published and audited.
    pub fn init(
        store: Store,
        keys: OnlineKeys,
        root_signers: &[SharedSigner],
        root_threshold: u32,
        options: Options,
        now: OffsetDateTime,
    ) -> Result<Self, PublishError> {
        let repo = Repository::create(
            root_signers,
            root_threshold,
            [
                ("targets", vec![keys.targets.clone()]),
                ("snapshot", vec![keys.snapshot.clone()]),
                ("timestamp", vec![keys.timestamp.clone()]),
            ],
            options,
            now,
        )?;
        Self::publish_first(store, repo, keys, options, now)
    }

    /// Like [`Publisher::init`], but starts from `root`, the bytes of a root
    /// version 1 made and signed in an offline ceremony (`keyshare root`),
    /// so no root key ever touches the server; those bytes are published
    /// as `metadata/1.root.json` unchanged. The root must meet its own
    /// threshold, not be expired, and list the server's online targets,
    /// snapshot and timestamp keys with threshold 1; otherwise
    /// [`PublishError::RootRefused`] and nothing is stored.
    pub fn init_with_root(
        store: Store,
        keys: OnlineKeys,
        root: &[u8],
        options: Options,
        now: OffsetDateTime,
    ) -> Result<Self, PublishError> {
        let refused = |m: String| PublishError::RootRefused(m);
        let envelope = Envelope::<Root>::parse("root", root).map_err(|e| refused(e.to_string()))?;
        let version = envelope.signed.version;
        if version != 1 {
            return Err(refused(format!(
                "a new repository starts from root version 1; this is version {version} (start \
                 from 1.root.json; clients follow the later versions)"
            )));
        }
        check_root_fresh_and_online(&envelope.signed, &keys, now).map_err(refused)?;
        verify_root_self(envelope)
            .map_err(|e| refused(format!("root v1 does not meet its own threshold: {e}")))?;
        let signers = [
            ("targets", &keys.targets),
            ("snapshot", &keys.snapshot),
            ("timestamp", &keys.timestamp),
        ]
        .into_iter()
        .map(|(role, key)| (RoleName::new(role), vec![key.clone()]))
        .collect();
        let repo = Repository::new(root, signers, options, now)?;
        Self::publish_first(store, repo, keys, options, now)
    }

    /// Publishes a new repository's first version: `repo`'s root, the bins,
    /// empty documents, snapshot and timestamp, in one transaction.
    fn publish_first(
        mut store: Store,
        mut repo: Repository,
        keys: OnlineKeys,
        options: Options,
        now: OffsetDateTime,
    ) -> Result<Self, PublishError> {
        if store.last_published()?.is_some() {
            return Err(store::Error::AlreadyExists {
                kind: "published repository in",
                name: store.path().display().to_string(),
            }
            .into());
        }
        let bins = bins(&keys);
        repo.delegate_succinct(
            "targets",
            bins.clone(),
            vec![(
                keys.targets.key_id().clone(),
                keys.targets.public_key().clone(),
            )],
            vec![keys.targets.clone()],
            now,
        )?;
        store.transaction_at(now, |tx| -> Result<(), PublishError> {
            let affected = Affected {
                shards: (0..bins.bin_count()).collect(),
                revocations: true,
                peers: true,
                ..Affected::default()
            };
            let staged = stage(tx, &mut repo, &affected, &keys, now)?;
            let (files, _) = commit_audited(tx, &mut repo, now, staged, |_| {
                vec![Audit::new(
                    "system",
                    "repository.init",
                    "repository",
                    json!({ "root_version": 1 }),
                )]
            })?;
            tx.record_published(&files)?;
            Ok(())
        })?;
        Self::with_repo(store, repo, keys, options)
    }

    /// Opens a store that holds a published repository, rebuilding the
    /// repository from what it last published (verified as a client would).
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
        let publisher = Self {
            inner: Mutex::new(Inner { store, repo }),
            keys,
            options,
            retention: Some(DEFAULT_RETENTION),
            cache: RwLock::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
            metrics: Mutex::new(PublisherMetrics::default()),
        };
        {
            let inner = publisher.lock();
            publisher.cache_files(&inner.repo.current_files()?);
            publisher.update_versions(&inner.repo);
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

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the repository possibly
        // ahead of the store; `apply` restores it before the next change.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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
        let started = Instant::now();
        let mut guard = self.lock();
        let Inner { store, repo } = &mut *guard;
        let keys = &self.keys;
        let retention = self.retention;
        let result = store.transaction_at(now, |tx| -> Result<_, PublishError> {
            let removes_long_lived = removes_long_lived(tx, &change)?;
            let (action, subject, details, affected) = apply_change(tx, &change)?;
            check_reachable(tx, &change, removes_long_lived)?;
            let staged = stage(tx, repo, &affected, keys, now)?;
            let (files, seqs) = commit_audited(tx, repo, now, staged, |_| {
                vec![Audit::new(actor, action, subject, details)]
            })?;
            tx.record_published(&files)?;
            prune(tx, retention, now)?;
            Ok((files, seqs.first().copied().unwrap_or_default()))
        });
        match result {
            Ok((files, audit_seq)) => {
                self.cache_files(&files);
                self.update_versions(repo);
                self.count_publish(started);
                Ok(Applied {
                    files: files.iter().map(|f| f.path.clone()).collect(),
                    timestamp_version: repo.timestamp().map_or(0, |t| t.signed.version),
                    audit_seq,
                })
            }
            Err(e) => {
                // The repository may have staged or signed what the store
                // did not keep: rebuild it from the store.
                *repo = restore(store, keys, self.options)
                    .map_err(|r| PublishError::Broken(format!("{e}; then: {r}")))?;
                Err(e)
            }
        }
    }

    /// Applies several changes in one store transaction and one signed
    /// publish (group commit: a burst of CI delegations costs one
    /// re-signing, not one per change), with one audit record per change.
    ///
    /// Each change gets its own result, in order, and fails alone: the
    /// changes of one namespace are applied together inside a savepoint,
    /// each of them in its own, so a change the store refuses (a missing
    /// namespace, a duplicate key, a used nonce) is undone alone; then the
    /// namespace's documents are built and checked. If one cannot be built
    /// (a key already listed under another id, say), the namespace's
    /// changes are applied again one at a time, each checked with its
    /// document, and only the ones that break it are refused (4xx naming
    /// the problem). Other namespaces are not touched by any of this.
    ///
    /// Unlike [`Publisher::apply`], this does not check that a namespace can
    /// still meet its threshold: a CI job ending its delegation may leave it
    /// unable to (verifiers then decide `ThresholdNotMet`). Deleting a
    /// namespace is refused in a batch (use [`Publisher::apply`]): a batch
    /// that created and deleted one name would stage them out of order.
    /// Creating namespaces in a batch is fine (bulk loads). `Err` only when
    /// the publish itself failed; then nothing was published. Blocking: call
    /// from a blocking thread.
    pub fn apply_batch(
        &self,
        batch: Vec<Batched>,
        now: OffsetDateTime,
    ) -> Result<Vec<Result<Applied, PublishError>>, PublishError> {
        let started = Instant::now();
        let mut results: Vec<Option<Result<Applied, PublishError>>> =
            batch.iter().map(|_| None).collect();
        for (slot, b) in results.iter_mut().zip(&batch) {
            if matches!(b.change, Change::DeleteNamespace { .. }) {
                *slot = Some(Err(store::Error::invalid(
                    "change",
                    "namespaces are not deleted in a batch",
                )
                .into()));
            }
        }
        // The changes by the namespace they touch (org-wide ones together),
        // in the order each namespace first appears.
        let mut groups: Vec<(Option<&NamespaceName>, Vec<usize>)> = Vec::new();
        for (i, b) in batch.iter().enumerate() {
            if results.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let namespace = change_namespace(&b.change);
            match groups.iter_mut().find(|(n, _)| *n == namespace) {
                Some((_, members)) => members.push(i),
                None => groups.push((namespace, vec![i])),
            }
        }
        let mut guard = self.lock();
        let Inner { store, repo } = &mut *guard;
        let keys = &self.keys;
        let retention = self.retention;
        let mut refused: Vec<(usize, PublishError)> = Vec::new();
        let result = store.transaction_at(now, |tx| -> Result<_, PublishError> {
            let mut all = Affected::default();
            let mut audits = Vec::with_capacity(batch.len());
            for (_, group) in &groups {
                let together = tx.savepoint(|tx| -> Result<_, PublishError> {
                    let mut affected = Affected::default();
                    let mut applied = Vec::with_capacity(group.len());
                    let mut set_aside = Vec::new();
                    for &i in group {
                        let Some(b) = batch.get(i) else { continue };
                        match tx.savepoint(|tx| apply_change(tx, &b.change)) {
                            Ok((action, subject, details, a)) => {
                                affected.absorb(a);
                                applied.push((
                                    i,
                                    action,
                                    subject,
                                    with_context(details, &b.context),
                                ));
                            }
                            Err(e) => set_aside.push((i, e)),
                        }
                    }
                    check_documents(tx, &affected)?;
                    Ok((affected, applied, set_aside))
                });
                match together {
                    Ok((affected, applied, set_aside)) => {
                        all.absorb(affected);
                        audits.extend(applied);
                        refused.extend(set_aside);
                    }
                    Err(_) => {
                        // A document of this namespace cannot be built with
                        // all of its changes: find the ones that break it.
                        for &i in group {
                            let Some(b) = batch.get(i) else { continue };
                            let one = tx.savepoint(|tx| -> Result<_, PublishError> {
                                let applied = apply_change(tx, &b.change)?;
                                check_documents(tx, &applied.3)?;
                                Ok(applied)
                            });
                            match one {
                                Ok((action, subject, details, a)) => {
                                    all.absorb(a);
                                    audits.push((
                                        i,
                                        action,
                                        subject,
                                        with_context(details, &b.context),
                                    ));
                                }
                                Err(e) => refused.push((i, explain_refusal(tx, &b.change, e))),
                            }
                        }
                    }
                }
            }
            if audits.is_empty() {
                return Ok(None);
            }
            audits.sort_by_key(|a| a.0);
            let staged = stage(tx, repo, &all, keys, now)?;
            let order: Vec<usize> = audits.iter().map(|(i, ..)| *i).collect();
            let (files, appended) = commit_audited(tx, repo, now, staged, |_| {
                audits
                    .into_iter()
                    .map(|(i, action, subject, details)| {
                        let actor = batch.get(i).map_or("system", |b| b.actor.as_str());
                        Audit::new(actor, action, subject, details)
                    })
                    .collect()
            })?;
            tx.record_published(&files)?;
            prune(tx, retention, now)?;
            Ok(Some((
                files,
                order.into_iter().zip(appended).collect::<Vec<_>>(),
            )))
        });
        match result {
            Ok(published) => {
                for (i, e) in refused {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(Err(e));
                    }
                }
                if let Some((files, seqs)) = published {
                    self.cache_files(&files);
                    self.update_versions(repo);
                    self.count_publish(started);
                    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
                    let timestamp_version = repo.timestamp().map_or(0, |t| t.signed.version);
                    for (i, audit_seq) in seqs {
                        if let Some(slot) = results.get_mut(i) {
                            *slot = Some(Ok(Applied {
                                files: paths.clone(),
                                timestamp_version,
                                audit_seq,
                            }));
                        }
                    }
                }
            }
            Err(e) => {
                *repo = restore(store, keys, self.options)
                    .map_err(|r| PublishError::Broken(format!("{e}; then: {r}")))?;
                return Err(e);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(PublishError::Broken("change not applied".into()))))
            .collect())
    }

    /// Publishes a new root made in a ceremony (`keyshare root ...`) on
    /// behalf of `actor`, as `metadata/N+1.root.json` with exactly these
    /// bytes: `bytes` must be root version N+1 signed by the
    /// thresholds of root N and of itself, not expired, and must list the
    /// server's online keys for targets, snapshot and timestamp (threshold
    /// 1), since the server signs those roles. One store transaction
    /// publishes the root with a re-signed snapshot and timestamp and
    /// appends the audit record `root.rotate`. Refused roots change
    /// nothing. Blocking: call from a blocking thread.
    pub fn submit_root(
        &self,
        actor: &str,
        bytes: &[u8],
        now: OffsetDateTime,
    ) -> Result<Applied, PublishError> {
        let started = Instant::now();
        let refused = |m: String| PublishError::RootRefused(m);
        let envelope =
            Envelope::<Root>::parse("root", bytes).map_err(|e| refused(e.to_string()))?;
        let version = envelope.signed.version;
        check_root_fresh_and_online(&envelope.signed, &self.keys, now).map_err(refused)?;
        let mut guard = self.lock();
        let Inner { store, repo } = &mut *guard;
        let current = repo.root().signed.clone();
        if version != current.version + 1 {
            return Err(PublishError::RootVersion(format!(
                "root v{version} is not the next version: the current root is v{}, so v{} is \
                 expected",
                current.version,
                current.version + 1
            )));
        }
        Authority::from_root(&current, "root")
            .and_then(|a| a.check("root", &envelope))
            .map_err(|e| {
                refused(format!(
                    "root v{version} does not meet the threshold of the current root v{}: {e}",
                    current.version
                ))
            })?;
        let root = verify_root_self(envelope).map_err(|e| {
            refused(format!(
                "root v{version} does not meet its own threshold: {e}"
            ))
        })?;
        let previous_roles: BTreeMap<String, Vec<String>> = role_key_ids(&current);
        let new_roles = role_key_ids(root.signed());
        let changed: Vec<&String> = new_roles
            .iter()
            .filter(|(r, ids)| previous_roles.get(*r) != Some(*ids))
            .map(|(r, _)| r)
            .collect();
        let details = json!({
            "from_version": current.version,
            "root_version": version,
            "roles_changed": changed,
        });
        let result = store.transaction_at(now, |tx| -> Result<_, PublishError> {
            repo.add_root(bytes).map_err(|e| refused(e.to_string()))?;
            // The bins must be signed by the targets key the server holds:
            // after a targets key rotation, re-delegate and re-sign them.
            let bins_key = repo
                .targets("targets")
                .and_then(|t| t.signed.delegations.as_ref())
                .and_then(|d| d.succinct_roles.as_ref())
                .map(|s| s.keyids.clone());
            if bins_key.as_deref() != Some(std::slice::from_ref(self.keys.targets.key_id())) {
                repo.delegate_succinct(
                    "targets",
                    bins(&self.keys),
                    vec![(
                        self.keys.targets.key_id().clone(),
                        self.keys.targets.public_key().clone(),
                    )],
                    vec![self.keys.targets.clone()],
                    now,
                )?;
            }
            if let Some(horizon) = targets_resign_horizon(repo, now)? {
                // The published targets role was signed by a key the new
                // root no longer lists: re-sign it (and whatever expires
                // sooner) with the server's key, which the new root lists.
                repo.mark_expiring(now, horizon);
            }
            let (files, seqs) = commit_audited(tx, repo, now, Vec::new(), |_| {
                vec![Audit::new(
                    actor,
                    "root.rotate",
                    format!("root v{version}"),
                    details,
                )]
            })?;
            tx.record_published(&files)?;
            prune(tx, self.retention, now)?;
            Ok((files, seqs.first().copied().unwrap_or_default()))
        });
        match result {
            Ok((files, audit_seq)) => {
                self.cache_files(&files);
                self.update_versions(repo);
                self.count_publish(started);
                Ok(Applied {
                    files: files.iter().map(|f| f.path.clone()).collect(),
                    timestamp_version: repo.timestamp().map_or(0, |t| t.signed.version),
                    audit_seq,
                })
            }
            Err(e) => {
                *repo = restore(store, &self.keys, self.options)
                    .map_err(|r| PublishError::Broken(format!("{e}; then: {r}")))?;
                Err(e)
            }
        }
    }

    /// Re-signs every role that expires within `horizon` (timestamp,
    /// snapshot, targets, namespace roles). Returns the paths published.
    pub fn refresh_expiring(
        &self,
        horizon: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, PublishError> {
        self.system_publish("metadata.resign", now, |_tx, repo| {
            repo.mark_expiring(now, horizon);
            Ok((Vec::new(), serde_json::Map::new()))
        })
    }

    /// Publishes again the organization documents whose published bytes are
    /// not what the store builds now: after an upgrade that changed a
    /// document's shape (revocations by key material,
    /// `keyshare.revocations/v2`), so verifiers get the new shape at once.
    /// Nothing is published when everything is current. Returns the paths
    /// published.
    pub fn republish_outdated(&self, now: OffsetDateTime) -> Result<Vec<String>, PublishError> {
        let keys = self.keys.clone();
        self.system_publish("documents.republish", now, |tx, repo| {
            let bytes = tx.revocations_document()?.to_vec()?;
            let published = repo
                .targets("targets")
                .and_then(|t| t.signed.targets.get(REVOCATIONS_PATH))
                .and_then(|f| f.hashes.get("sha256"));
            if published.map(String::as_str)
                == Some(keyshare_policy::hash::sha256_hex(&bytes).as_str())
            {
                return Ok((Vec::new(), serde_json::Map::new()));
            }
            let affected = Affected {
                revocations: true,
                ..Affected::default()
            };
            Ok((
                stage(tx, repo, &affected, &keys, now)?,
                serde_json::Map::new(),
            ))
        })
    }

    /// Removes ephemeral keys whose `not_after` has passed and publishes the
    /// namespaces they were in; returns how many keys were removed. Also
    /// forgets the used CI nonces and ID tokens that expired.
    ///
    /// Every namespace is swept on its own: one whose document cannot be
    /// built (a row no document may hold) keeps its expired keys, which
    /// verifiers refuse anyway, is logged, and is tried again at the next
    /// sweep; the others are swept and published. A namespace left with
    /// fewer keys than its threshold is published so (verifiers decide
    /// `ThresholdNotMet`).
    ///
    /// The `ci.sweep` audit record names every key it removed:
    /// `details.removed` is a list of `{"namespace", "key_id"}`.
    pub fn sweep_ephemeral(&self, now: OffsetDateTime) -> Result<usize, PublishError> {
        let mut removed = 0;
        let keys = self.keys.clone();
        self.system_publish("ci.sweep", now, |tx, repo| {
            tx.prune_used(now)?;
            let mut expired: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (namespace, key_id) in tx.expired_ephemeral_keys(now)? {
                expired.entry(namespace).or_default().push(key_id);
            }
            let mut affected = Affected::default();
            let mut swept_keys = Vec::new();
            for (namespace, ids) in &expired {
                let swept = tx.savepoint(|tx| -> Result<NamespaceName, PublishError> {
                    let name = NamespaceName::parse(namespace)
                        .map_err(|e| store::Error::invalid("namespace", e))?;
                    for id in ids {
                        tx.remove_key(namespace, id)?;
                    }
                    tx.namespace_document(namespace)?;
                    Ok(name)
                });
                match swept {
                    Ok(name) => {
                        removed += ids.len();
                        swept_keys.extend(
                            ids.iter()
                                .map(|id| json!({ "namespace": namespace, "key_id": id })),
                        );
                        affected.namespaces.insert(name);
                    }
                    Err(e) => tracing::error!(
                        namespace = %namespace,
                        keys = ids.len(),
                        error = %e,
                        "cannot publish this namespace without its expired CI keys; they stay \
                         listed (verifiers refuse them) and the next sweep tries again"
                    ),
                }
            }
            let mut details = serde_json::Map::new();
            if !swept_keys.is_empty() {
                details.insert("removed".into(), Value::Array(swept_keys));
            }
            Ok((stage(tx, repo, &affected, &keys, now)?, details))
        })?;
        Ok(removed)
    }

    /// A publish the server makes by itself: `work` stages changes (or
    /// marks roles due) and returns the target files it staged; then
    /// whatever is due is committed. Audited only when it published.
    fn system_publish(
        &self,
        action: &str,
        now: OffsetDateTime,
        work: impl FnOnce(
            &mut Tx<'_>,
            &mut Repository,
        ) -> Result<(Vec<File>, serde_json::Map<String, Value>), PublishError>,
    ) -> Result<Vec<String>, PublishError> {
        let started = Instant::now();
        let mut guard = self.lock();
        let Inner { store, repo } = &mut *guard;
        let result = store.transaction_at(now, |tx| -> Result<_, PublishError> {
            let (staged, mut details) = work(tx, repo)?;
            let (files, _) = commit_audited(tx, repo, now, staged, |paths| {
                if paths.is_empty() {
                    return Vec::new();
                }
                details.insert("files".into(), json!(paths));
                vec![Audit::new(
                    "system",
                    action,
                    "repository",
                    Value::Object(details),
                )]
            })?;
            if !files.is_empty() {
                tx.record_published(&files)?;
                prune(tx, self.retention, now)?;
            }
            Ok(files)
        });
        match result {
            Ok(files) => {
                if !files.is_empty() {
                    self.cache_files(&files);
                    self.update_versions(repo);
                    self.count_publish(started);
                }
                Ok(files.into_iter().map(|f| f.path).collect())
            }
            Err(e) => {
                *repo = restore(store, &self.keys, self.options)
                    .map_err(|r| PublishError::Broken(format!("{e}; then: {r}")))?;
                Err(e)
            }
        }
    }

    /// A published file by path, from memory, or from the store for older
    /// versions (then kept in memory).
    pub fn file(&self, path: &str) -> Option<Arc<CachedFile>> {
        if let Some(f) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
        {
            return Some(f.clone());
        }
        if path == "metadata/timestamp.json" {
            return None;
        }
        // Older versions come from the store and are not kept in memory:
        // the cache holds the current version of each file only.
        let stored = self.read(|s| s.latest_published(path)).ok().flatten()?;
        Some(Arc::new(CachedFile::new(
            stored.path,
            stored.bytes.into(),
            true,
        )))
    }

    /// Every file of the current repository state plus every target file
    /// it lists (for `publish --to`).
    pub fn current_files(&self) -> Result<Vec<File>, PublishError> {
        let guard = self.lock();
        let mut files = guard.repo.current_files()?;
        let mut roles: Vec<RoleName> = vec![RoleName::new("targets")];
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

    /// Creates an API token (audited). The secret is in the result only.
    pub fn create_token(
        &self,
        actor: &str,
        kind: TokenKind,
        description: Option<String>,
        now: OffsetDateTime,
    ) -> Result<NewToken, PublishError> {
        self.create_token_expiring(actor, kind, description, None, now)
    }

    /// [`Publisher::create_token`] with an expiry (`None`: never expires).
    pub fn create_token_expiring(
        &self,
        actor: &str,
        kind: TokenKind,
        description: Option<String>,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<NewToken, PublishError> {
        let mut guard = self.lock();
        guard
            .store
            .transaction_at(now, |tx| -> Result<_, PublishError> {
                let token = tx.create_token_expiring(&kind, description.as_deref(), expires_at)?;
                let mut details = json!({ "kind": kind.name(), "namespaces": kind.namespaces() });
                if let (Some(t), Value::Object(map)) = (token.token.expires_at, &mut details) {
                    map.insert("expires_at".into(), rfc3339(Some(t)));
                }
                tx.append_audit(actor, "token.create", &token.token.id, &details)?;
                Ok(token)
            })
    }

    /// The token whose secret is `secret`, if one exists and is not
    /// revoked (whether it expired is the caller's check, with
    /// [`Token::refusal`], so it can say so). When it is accepted at `now`
    /// and its recorded last use is older than
    /// [`store::LAST_USED_RESOLUTION`], the use is recorded: at most one
    /// write per token per minute, however many requests it makes. A
    /// failure to record it is logged and does not refuse the request.
    /// Blocking.
    pub fn authenticate(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Token>, PublishError> {
        let mut guard = self.lock();
        let Some(mut token) = guard.store.token_by_secret(secret)? else {
            return Ok(None);
        };
        if token.refusal(now).is_none() && token.last_used_is_stale(now) {
            let id = token.id.clone();
            match guard.store.transaction_at(now, |tx| tx.touch_token(&id)) {
                Ok(_) => token.last_used_at = Some(now),
                Err(e) => tracing::warn!(
                    token = %token.id,
                    error = %e,
                    "cannot record the token's last use"
                ),
            }
        }
        Ok(Some(token))
    }

    /// Revokes an API token (audited).
    pub fn revoke_token(
        &self,
        actor: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<(), PublishError> {
        let mut guard = self.lock();
        guard
            .store
            .transaction_at(now, |tx| -> Result<_, PublishError> {
                tx.revoke_token(id)?;
                tx.append_audit(actor, "token.revoke", id, &Value::Null)?;
                Ok(())
            })
    }

    /// Counters and versions for `/metrics`.
    pub fn metrics(&self) -> PublisherMetrics {
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Caches newly published files, dropping the versions they supersede
    /// (so memory follows the repository's current size, not its history).
    fn cache_files(&self, files: &[File]) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        for f in files {
            if let Some(old) = current.insert(lineage(&f.path), f.path.clone()) {
                if old != f.path {
                    cache.remove(&old);
                }
            }
            cache.insert(
                f.path.clone(),
                Arc::new(CachedFile::new(
                    f.path.clone(),
                    f.bytes.clone(),
                    f.immutable,
                )),
            );
        }
    }

    fn update_versions(&self, repo: &Repository) {
        let mut m = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        let root = &repo.root().signed;
        let mut versions = BTreeMap::from([("root".to_owned(), root.version)]);
        let mut expiries = vec![root.expires.time()];
        if let Some(t) = repo.targets("targets") {
            versions.insert("targets".into(), t.signed.version);
            expiries.push(t.signed.expires.time());
        }
        if let Some(s) = repo.snapshot() {
            versions.insert("snapshot".into(), s.signed.version);
            expiries.push(s.signed.expires.time());
        }
        if let Some(t) = repo.timestamp() {
            versions.insert("timestamp".into(), t.signed.version);
            expiries.push(t.signed.expires.time());
        }
        m.versions = versions;
        m.earliest_expiry = expiries.into_iter().min();
    }

    fn count_publish(&self, started: Instant) {
        let mut m = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        let seconds = started.elapsed().as_secs_f64();
        m.publishes += 1;
        m.publish_seconds_total += seconds;
        m.last_publish_seconds = seconds;
    }
}

/// `Some(horizon)` reaching the published top-level targets' expiry when
/// that targets metadata does not verify under the repository's current
/// root (its key was replaced), `None` when it does.
fn targets_resign_horizon(
    repo: &Repository,
    now: OffsetDateTime,
) -> Result<Option<Duration>, PublishError> {
    let Some(targets) = repo.targets("targets") else {
        return Ok(None);
    };
    let bytes = keyshare_policy::sign::to_bytes(targets)?;
    let envelope = Envelope::<keyshare_policy::metadata::Targets>::parse("targets", &bytes)?;
    let verifies = Authority::from_root(&repo.root().signed, "targets")
        .and_then(|a| a.check("targets", &envelope))
        .is_ok();
    if verifies {
        return Ok(None);
    }
    let until = targets.signed.expires.time() - now;
    Ok(Some(until.max(Duration::ZERO) + Duration::seconds(1)))
}

/// Key ids of each role of a root, sorted.
fn role_key_ids(root: &Root) -> BTreeMap<String, Vec<String>> {
    root.roles
        .iter()
        .map(|(name, r)| {
            let mut ids: Vec<String> = r.keyids.iter().map(|k| k.to_string()).collect();
            ids.sort();
            (name.to_string(), ids)
        })
        .collect()
}

/// The repository as the store last published it.
fn restore(store: &Store, keys: &OnlineKeys, options: Options) -> Result<Repository, PublishError> {
    let last = store.last_published()?.ok_or_else(|| {
        PublishError::Broken("the store holds no published repository; run init".into())
    })?;
    let mut signers: BTreeMap<RoleName, Vec<SharedSigner>> = BTreeMap::from([
        (RoleName::new("targets"), vec![keys.targets.clone()]),
        (RoleName::new("snapshot"), vec![keys.snapshot.clone()]),
        (RoleName::new("timestamp"), vec![keys.timestamp.clone()]),
    ]);
    let layout = bins(keys);
    for bin in layout.bin_names() {
        signers.insert(bin, vec![keys.targets.clone()]);
    }
    for ns in store.namespaces()? {
        signers.insert(
            RoleName::new(ns.entry.name.as_str()),
            vec![keys.namespaces.clone()],
        );
    }
    let repo = Repository::restore(&last.as_published(), signers, options)?;
    let delegated = repo
        .targets("targets")
        .and_then(|t| t.signed.delegations.as_ref())
        .and_then(|d| d.succinct_roles.as_ref());
    let same_layout = delegated
        .is_some_and(|s| s.bit_length == layout.bit_length && s.name_prefix == layout.name_prefix);
    if !same_layout {
        return Err(PublishError::Layout(format!(
            "the store {} holds a repository in an earlier layout (namespace roles delegated \
             directly from targets, one org/namespaces.json); this server publishes namespaces \
             through 256 hashed bins and does not read or migrate that layout: initialise a new \
             data directory with `keyshare-server init` and create the namespaces again",
            store.path().display()
        )));
    }
    Ok(repo)
}

/// The hashed bins top-level targets delegates to, signed with the online
/// targets key.
fn bins(keys: &OnlineKeys) -> SuccinctRoles {
    namespace_bins(vec![keys.targets.key_id().clone()], NonZeroU32::MIN)
}

/// At most this many superseded files are deleted by one publish, so a
/// publish long after a burst of writes does not pay for deleting the whole
/// burst (a publish supersedes a handful of files; `Publisher::prune`, run
/// every minute by `serve`, deletes the rest).
const PRUNE_PER_PUBLISH: usize = 256;

/// Deletes superseded files older than `retention` (inside a publish).
fn prune(
    tx: &mut Tx<'_>,
    retention: Option<Duration>,
    now: OffsetDateTime,
) -> Result<(), PublishError> {
    if let Some(retention) = retention {
        tx.prune_superseded(now - retention, Some(PRUNE_PER_PUBLISH))?;
    }
    Ok(())
}

/// Applies one change to the store; returns the audit action, subject,
/// details and what to rebuild.
fn apply_change(
    tx: &mut Tx<'_>,
    change: &Change,
) -> Result<(&'static str, String, Value, Affected), PublishError> {
    let mut affected = Affected::default();
    let (action, subject, details) = match change {
        Change::CreateNamespace {
            entry,
            threshold,
            allow_overlap,
        } => {
            let rule = if *allow_overlap {
                OverlapRule::Allow
            } else {
                OverlapRule::Refuse
            };
            let overlaps = tx.create_namespace_with(entry, *threshold, rule)?;
            affected.shards.insert(store::namespace_bin(&entry.name));
            affected.created.insert(entry.name.clone());
            affected.namespaces.insert(entry.name.clone());
            let mut details = json!({ "scopes": entry.scopes, "maintainers": entry.maintainers, "threshold": threshold });
            note_overlaps(&mut details, *allow_overlap, &overlaps)?;
            ("namespace.create", entry.name.to_string(), details)
        }
        Change::DeleteNamespace { namespace } => {
            let revoked = tx.delete_namespace(namespace.as_str())?;
            affected.shards.insert(store::namespace_bin(namespace));
            affected.deleted.insert(namespace.clone());
            (
                "namespace.delete",
                namespace.to_string(),
                json!({ "tokens_revoked": revoked }),
            )
        }
        Change::SetThreshold {
            namespace,
            threshold,
        } => {
            tx.set_threshold(namespace.as_str(), *threshold)?;
            affected.namespaces.insert(namespace.clone());
            (
                "namespace.threshold",
                namespace.to_string(),
                json!({ "threshold": threshold }),
            )
        }
        Change::AddScopes {
            namespace,
            scopes,
            allow_overlap,
        } => {
            let current = tx.namespace(namespace.as_str())?;
            let mut entry = current.entry.clone();
            for scope in scopes {
                if entry.scopes.contains(scope) {
                    return Err(store::Error::invalid(
                        "scopes",
                        format!("`{scope}` is already a scope of namespace `{namespace}`"),
                    )
                    .into());
                }
                entry.scopes.push(scope.clone());
            }
            let rule = if *allow_overlap {
                OverlapRule::Allow
            } else {
                OverlapRule::Refuse
            };
            let overlaps = tx.update_namespace_with(&entry, current.threshold, rule)?;
            affected.shards.insert(store::namespace_bin(&entry.name));
            affected.namespaces.insert(namespace.clone());
            let mut details = json!({ "added": scopes, "scopes": entry.scopes });
            note_overlaps(&mut details, *allow_overlap, &overlaps)?;
            ("namespace.scopes", namespace.to_string(), details)
        }
        Change::AddKey { namespace, key } => {
            tx.add_key(namespace, key)?;
            affected.namespaces.insert(namespace.clone());
            (
                "key.add",
                format!("{namespace}/{}", key.id),
                json!({ "key": key.key, "not_before": rfc3339(key.not_before), "not_after": rfc3339(key.not_after), "ephemeral": key.ephemeral }),
            )
        }
        Change::DelegateCi {
            namespace,
            key,
            owner,
            single_use,
        } => {
            if !key.ephemeral || key.not_after.is_none() {
                return Err(store::Error::invalid(
                    "key",
                    "a CI delegation lists an ephemeral key with not_after",
                )
                .into());
            }
            for value in single_use {
                if !tx.use_once(value)? {
                    return Err(PublishError::Used(value.kind));
                }
            }
            tx.add_key(namespace, key)?;
            tx.set_ci_owner(namespace, key.id.as_str(), owner)?;
            affected.namespaces.insert(namespace.clone());
            (
                "key.add",
                format!("{namespace}/{}", key.id),
                json!({ "key": key.key, "not_before": rfc3339(key.not_before), "not_after": rfc3339(key.not_after), "ephemeral": key.ephemeral, "principal": key.principal }),
            )
        }
        Change::RemoveKey { namespace, key_id } => {
            tx.remove_key(namespace.as_str(), key_id.as_str())?;
            affected.namespaces.insert(namespace.clone());
            ("key.remove", format!("{namespace}/{key_id}"), Value::Null)
        }
        Change::AddIdentity {
            namespace,
            identity,
        } => {
            tx.add_identity(namespace, identity)?;
            affected.namespaces.insert(namespace.clone());
            (
                "identity.add",
                format!("{namespace}/{}", identity.name),
                json!({ "subject": identity.subject.to_string() }),
            )
        }
        Change::RemoveIdentity { namespace, name } => {
            tx.remove_identity(namespace.as_str(), name)?;
            affected.namespaces.insert(namespace.clone());
            (
                "identity.remove",
                format!("{namespace}/{name}"),
                Value::Null,
            )
        }
        Change::AddSubDelegation {
            namespace,
            sub_delegation,
        } => {
            tx.add_sub_delegation(namespace, sub_delegation)?;
            affected.namespaces.insert(namespace.clone());
            (
                "sub_delegation.add",
                format!("{namespace}/{}", sub_delegation.name),
                json!({ "scopes": sub_delegation.scopes, "threshold": sub_delegation.threshold }),
            )
        }
        Change::RemoveSubDelegation { namespace, name } => {
            tx.remove_sub_delegation(namespace.as_str(), name)?;
            affected.namespaces.insert(namespace.clone());
            (
                "sub_delegation.remove",
                format!("{namespace}/{name}"),
                Value::Null,
            )
        }
        Change::RevokeNamespaceKey {
            namespace,
            revocation,
            key_id,
        } => {
            tx.add_namespace_revocation(namespace, revocation, key_id.as_ref().map(KeyId::as_str))?;
            affected.namespaces.insert(namespace.clone());
            (
                "namespace_revocation.add",
                format!("{namespace}/{}", revocation.subject),
                json!({
                    "revoked_at": rfc3339(Some(revocation.revoked_at)),
                    "reason": revocation.reason,
                    "key_id": key_id,
                }),
            )
        }
        Change::RemoveNamespaceRevocation {
            namespace,
            fingerprint,
        } => {
            let existing = tx
                .namespace_revocation(namespace.as_str(), fingerprint)?
                .ok_or_else(|| store::Error::NotFound {
                    kind: "revocation",
                    name: format!("{namespace}/key with SPKI SHA-256 {fingerprint}"),
                })?;
            tx.remove_namespace_revocation(namespace.as_str(), fingerprint)?;
            affected.namespaces.insert(namespace.clone());
            (
                "namespace_revocation.remove",
                format!("{namespace}/{}", existing.revocation.subject),
                json!({
                    "revoked_at": rfc3339(Some(existing.revocation.revoked_at)),
                    "reason": existing.revocation.reason,
                    "key_id": existing.key_id,
                }),
            )
        }
        Change::AddRevocation {
            revocation,
            listed_as,
        } => {
            tx.add_revocation(revocation, listed_as.as_ref())?;
            affected.revocations = true;
            let (subject, listed_in) = match &revocation.subject {
                RevokedSubject::Key(h) => (format!("key {h}"), tx.listings(h)?),
                RevokedSubject::Certificate(h) => (format!("certificate {h}"), Vec::new()),
            };
            (
                "revocation.add",
                subject,
                json!({
                    "revoked_at": rfc3339(Some(revocation.revoked_at)),
                    "reason": revocation.reason,
                    "named_as": listed_as,
                    "listed_in": listed_in,
                }),
            )
        }
        Change::PutPeer { peer } => {
            let created = tx.put_peer(peer)?;
            affected.peers = true;
            (
                if created {
                    "peer.create"
                } else {
                    "peer.update"
                },
                peer.name.clone(),
                json!({ "patterns": peer.patterns, "url": peer.url, "terminating": peer.terminating }),
            )
        }
        Change::RemovePeer { name } => {
            tx.remove_peer(name)?;
            affected.peers = true;
            ("peer.remove", name.clone(), Value::Null)
        }
        Change::PutOrgRoot { name, pem } => {
            let created = tx.put_org_root(name, pem)?;
            affected.roots_put.push((name.clone(), pem.clone()));
            (
                if created {
                    "root_cert.create"
                } else {
                    "root_cert.update"
                },
                name.clone(),
                Value::Null,
            )
        }
        Change::RemoveOrgRoot { name } => {
            tx.remove_org_root(name)?;
            affected.roots_removed.push(name.clone());
            ("root_cert.remove", name.clone(), Value::Null)
        }
    };
    Ok((action, subject, details, affected))
}

/// The namespace a change touches, `None` for org-wide changes.
fn change_namespace(change: &Change) -> Option<&NamespaceName> {
    match change {
        Change::CreateNamespace { entry, .. } => Some(&entry.name),
        Change::DeleteNamespace { namespace }
        | Change::SetThreshold { namespace, .. }
        | Change::AddScopes { namespace, .. }
        | Change::AddKey { namespace, .. }
        | Change::DelegateCi { namespace, .. }
        | Change::RemoveKey { namespace, .. }
        | Change::AddIdentity { namespace, .. }
        | Change::RemoveIdentity { namespace, .. }
        | Change::AddSubDelegation { namespace, .. }
        | Change::RemoveSubDelegation { namespace, .. }
        | Change::RevokeNamespaceKey { namespace, .. }
        | Change::RemoveNamespaceRevocation { namespace, .. } => Some(namespace),
        Change::AddRevocation { .. }
        | Change::PutPeer { .. }
        | Change::RemovePeer { .. }
        | Change::PutOrgRoot { .. }
        | Change::RemoveOrgRoot { .. } => None,
    }
}

/// One audit record of a publish.
struct Audit {
    actor: String,
    action: String,
    subject: String,
    details: Value,
}

impl Audit {
    fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        details: Value,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            details,
        }
    }
}

/// Commits what `repo` has staged or marked due, with this publish's audit
/// records: `audits` gets the paths of every file of the publish (`staged`
/// first, then what the commit signs) and returns the records, which are
/// appended to the log just before the timestamp is signed, so the
/// timestamp carries the chain head including them (`x-keyshare-audit`,
/// see [`keyshare_policy::audit`]). This is the one place a publish's head
/// is computed. When nothing is due the records are appended all the same
/// (a change that left every document as it was) and no timestamp is
/// signed. Returns `staged` plus the signed files, and the records'
/// sequence numbers.
fn commit_audited(
    tx: &mut Tx<'_>,
    repo: &mut Repository,
    now: OffsetDateTime,
    staged: Vec<File>,
    audits: impl FnOnce(&[String]) -> Vec<Audit>,
) -> Result<(Vec<File>, Vec<i64>), PublishError> {
    fn append(tx: &mut Tx<'_>, audits: Vec<Audit>) -> Result<Vec<i64>, PublishError> {
        let mut seqs = Vec::with_capacity(audits.len());
        for a in audits {
            seqs.push(
                tx.append_audit(&a.actor, &a.action, &a.subject, &a.details)?
                    .seq,
            );
        }
        Ok(seqs)
    }
    let mut audits = Some(audits);
    let mut seqs = Vec::new();
    let staged_paths: Vec<String> = staged.iter().map(|f| f.path.clone()).collect();
    let signed = repo.commit_with(now, |paths| -> Result<_, PublishError> {
        if let Some(audits) = audits.take() {
            let all: Vec<String> = staged_paths.iter().chain(paths).cloned().collect();
            seqs = append(tx, audits(&all))?;
        }
        let head = tx.audit_head()?;
        let seq = u64::try_from(head.records)
            .map_err(|e| store::Error::corrupt("audit_log", e.to_string()))?;
        Ok(AuditChainHead::new(seq, &head.hash)?.timestamp_fields())
    })?;
    if let Some(audits) = audits.take() {
        seqs = append(tx, audits(&staged_paths))?;
    }
    let mut files = staged;
    files.extend(signed);
    Ok((files, seqs))
}

/// Builds, and so checks with the policy parser, every document `affected`
/// names, staging nothing.
fn check_documents(tx: &Tx<'_>, affected: &Affected) -> Result<(), PublishError> {
    for &bin in &affected.shards {
        tx.namespaces_shard(bin)?;
    }
    if affected.revocations {
        tx.revocations_document()?;
    }
    if affected.peers {
        tx.peers_document()?;
    }
    for ns in &affected.namespaces {
        if !affected.deleted.contains(ns) {
            tx.namespace_document(ns.as_str())?;
        }
    }
    Ok(())
}

/// Why `change` broke its namespace's document, when that can be said
/// better than the document check does: a key whose material is already
/// listed under another id is a conflict naming that id. `tx` no longer
/// holds the change.
fn explain_refusal(tx: &Tx<'_>, change: &Change, e: PublishError) -> PublishError {
    let (Change::AddKey { namespace, key } | Change::DelegateCi { namespace, key, .. }) = change
    else {
        return e;
    };
    let Some(material) = key_material(&key.key, &key.id) else {
        return e;
    };
    let Ok(listed) = tx.keys(namespace.as_str()) else {
        return e;
    };
    let same = listed.iter().find(|r| {
        r.key.id != key.id && key_material(&r.key.key, &r.key.id).as_ref() == Some(&material)
    });
    match same {
        Some(other) => PublishError::SameKey {
            namespace: namespace.to_string(),
            key_id: key.id.to_string(),
            listed_as: other.key.id.to_string(),
        },
        None => e,
    }
}

/// A key's material: its SubjectPublicKeyInfo DER, EC points uncompressed.
fn key_material(key: &keyshare_policy::keys::Key, id: &KeyId) -> Option<Vec<u8>> {
    key.material(id).ok().map(<[u8]>::to_vec)
}

/// For a change people make ([`Publisher::apply`]): true when it removes
/// a long-lived (not ephemeral) key or an identity. Read before the change.
fn removes_long_lived(tx: &Tx<'_>, change: &Change) -> Result<bool, PublishError> {
    Ok(match change {
        Change::RemoveKey { namespace, key_id } => {
            match tx.key(namespace.as_str(), key_id.as_str()) {
                Ok(k) => !k.key.ephemeral,
                // The change itself reports what is missing.
                Err(store::Error::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            }
        }
        Change::RemoveIdentity { .. } => true,
        _ => false,
    })
}

/// Refuses a change people make that leaves a namespace with a threshold
/// above the distinct keys and identities it lists (keys with one
/// principal count once): setting such a threshold, or removing a
/// long-lived key or an identity. A namespace listing nothing trusts no one
/// whatever its threshold. The expiry sweep and CI jobs ending their
/// delegations are not checked: they may leave a namespace so, and
/// verifiers then decide `ThresholdNotMet`.
fn check_reachable(
    tx: &Tx<'_>,
    change: &Change,
    removes_long_lived: bool,
) -> Result<(), PublishError> {
    let namespace = match change {
        Change::SetThreshold { namespace, .. } => namespace,
        Change::RemoveKey { namespace, .. } | Change::RemoveIdentity { namespace, .. }
            if removes_long_lived =>
        {
            namespace
        }
        _ => return Ok(()),
    };
    let threshold = tx.namespace(namespace.as_str())?.threshold;
    let mut principals = BTreeSet::new();
    let mut signers: u64 = 0;
    for k in tx.keys(namespace.as_str())? {
        if k.key.principal.is_none_or(|p| principals.insert(p)) {
            signers += 1;
        }
    }
    signers += u64::try_from(tx.identities(namespace.as_str())?.len()).unwrap_or(u64::MAX);
    if signers == 0 || u64::from(threshold.get()) <= signers {
        return Ok(());
    }
    let message = match change {
        Change::RemoveKey { key_id, .. } => format!(
            "removing key `{key_id}` would leave {signers} distinct keys and identities in \
             namespace `{namespace}`, fewer than its threshold {threshold}; lower the threshold first"
        ),
        Change::RemoveIdentity { name, .. } => format!(
            "removing identity `{name}` would leave {signers} distinct keys and identities in \
             namespace `{namespace}`, fewer than its threshold {threshold}; lower the threshold first"
        ),
        _ => format!(
            "threshold {threshold} is more than the {signers} distinct keys and identities \
             listed in namespace `{namespace}`; list more first"
        ),
    };
    Err(store::Error::invalid("threshold", message).into())
}

/// `details` with `context` added (see [`Batched::context`]).
fn with_context(details: Value, context: &Value) -> Value {
    match (details, context) {
        (details, Value::Null) => details,
        (Value::Object(mut map), context) => {
            map.insert("context".into(), context.clone());
            Value::Object(map)
        }
        (details, context) => json!({ "details": details, "context": context }),
    }
}

/// Adds to an audit record's details that overlaps were allowed, and which.
fn note_overlaps(
    details: &mut Value,
    allowed: bool,
    overlaps: &store::ScopeOverlaps,
) -> Result<(), store::Error> {
    if let Value::Object(map) = details {
        if allowed {
            map.insert("allow_overlap".into(), Value::Bool(true));
        }
        if !overlaps.is_empty() {
            map.insert(
                "overlaps".into(),
                serde_json::to_value(overlaps)
                    .map_err(|e| store::Error::invalid("overlaps", e.to_string()))?,
            );
        }
    }
    Ok(())
}

fn rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(Value::Null, Value::String)
}

/// The target path of an org root certificate.
fn org_root_path(name: &str) -> String {
    format!("org/roots/{name}.pem")
}

/// Rebuilds the documents `affected` names and stages them in `repo`;
/// returns the target files to publish.
/// A root the server can publish under: not expired, and listing the
/// server's online targets, snapshot and timestamp keys with threshold 1
/// (the server signs those roles). The message names what is wrong.
fn check_root_fresh_and_online(
    root: &Root,
    keys: &OnlineKeys,
    now: OffsetDateTime,
) -> Result<(), String> {
    let version = root.version;
    if root.expires.is_expired(now) {
        return Err(format!("root v{version} expired at {}", root.expires));
    }
    for (role, key) in [
        ("targets", &keys.targets),
        ("snapshot", &keys.snapshot),
        ("timestamp", &keys.timestamp),
    ] {
        let listed = root.roles.get(&RoleName::new(role));
        let ok = listed
            .is_some_and(|r| r.threshold.get() == 1 && r.keyids.iter().any(|k| k == key.key_id()));
        if !ok {
            return Err(format!(
                "role `{role}`: root v{version} does not list the server's online {role} key {} \
                 with threshold 1, so the server could not sign {role}; configure the server \
                 with the key the root lists first",
                key.key_id()
            ));
        }
    }
    Ok(())
}

fn stage(
    tx: &mut Tx<'_>,
    repo: &mut Repository,
    affected: &Affected,
    keys: &OnlineKeys,
    now: OffsetDateTime,
) -> Result<Vec<File>, PublishError> {
    let mut files = Vec::new();
    for ns in &affected.deleted {
        repo.undelegate(ns.as_str())?;
    }
    let layout = bins(keys);
    for ns in &affected.created {
        let key = &keys.namespaces;
        let bin = layout.bin_name(store::namespace_bin(ns));
        repo.delegate(
            bin.as_str(),
            DelegatedRole {
                name: RoleName::new(ns.as_str()),
                keyids: vec![key.key_id().clone()],
                threshold: NonZeroU32::MIN,
                terminating: true,
                paths: Some(vec![PathPattern::new(&format!("namespaces/{ns}/*"))]),
                path_hash_prefixes: None,
                unrecognized: Unrecognized::new(),
            },
            vec![(key.key_id().clone(), key.public_key().clone())],
            vec![key.clone()],
            now,
        )?;
    }
    for &bin in &affected.shards {
        let path = shard_path(&layout, bin);
        let shard = tx.namespaces_shard(bin)?;
        if shard.namespaces.is_empty() {
            repo.remove_target("targets", &path)?;
        } else {
            files.push(repo.set_target("targets", &path, &shard.to_vec()?, None)?);
        }
    }
    if affected.revocations {
        let bytes = tx.revocations_document()?.to_vec()?;
        files.push(repo.set_target("targets", REVOCATIONS_PATH, &bytes, None)?);
    }
    if affected.peers {
        let bytes = tx.peers_document()?.to_vec()?;
        files.push(repo.set_target("targets", PEERS_PATH, &bytes, None)?);
    }
    for (name, pem) in &affected.roots_put {
        files.push(repo.set_target("targets", &org_root_path(name), pem.as_bytes(), None)?);
    }
    for name in &affected.roots_removed {
        repo.remove_target("targets", &org_root_path(name))?;
    }
    for ns in &affected.namespaces {
        if affected.deleted.contains(ns) {
            continue;
        }
        let bytes = tx.namespace_document(ns.as_str())?.to_vec()?;
        files.push(repo.set_target(ns.as_str(), &ns.target_path(), &bytes, None)?);
    }
    Ok(files)
}

/// A bundle edition of snapshot and timestamp: what an air-gap bundle
/// carries instead of the online ones (see `docs/airgap.md`).
#[derive(Clone, Debug)]
pub struct BundleEdition {
    /// `metadata/<V>.snapshot.json` of the edition.
    pub snapshot_path: String,
    /// The edition's snapshot: the current one re-signed as version V with
    /// the bundle's window as expiry.
    pub snapshot: Arc<[u8]>,
    /// The edition's timestamp (listing that snapshot), same expiry.
    pub timestamp: Arc<[u8]>,
    /// The timestamp key, which also signs the bundle's manifest.
    pub timestamp_signer: SharedSigner,
}

impl Publisher {
    /// Signs a bundle edition of snapshot and timestamp valid until
    /// `valid_until`, as one publish audited for `actor` (`airgap.export`):
    ///
    /// 1. re-signs every role that would expire before `valid_until`
    ///    (published), so the whole state stays valid through the window;
    /// 2. signs the edition: snapshot and timestamp with the next versions
    ///    and `valid_until` as expiry (not published online);
    /// 3. publishes snapshot and timestamp two versions on, so the online
    ///    repository skips the edition's versions and every online client
    ///    moves past them.
    ///
    /// Refused (400) when the current root expires before `valid_until`.
    /// Blocking.
    pub fn sign_bundle_edition(
        &self,
        actor: &str,
        valid_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<BundleEdition, PublishError> {
        let keys = self.keys.clone();
        let timestamp_period = self.options.expiries.timestamp;
        let mut edition = None;
        let started = Instant::now();
        let mut guard = self.lock();
        let Inner { store, repo } = &mut *guard;
        let result = store.transaction_at(now, |tx| -> Result<_, PublishError> {
            let root_expires = repo.root().signed.expires.time();
            if root_expires <= valid_until {
                return Err(store::Error::invalid(
                    "valid_for",
                    format!(
                        "root version {} expires at {root_expires}, before the bundle would: rotate the root first or choose a shorter window",
                        repo.root().signed.version
                    ),
                )
                .into());
            }
            let horizon = (valid_until - now).max(timestamp_period);
            repo.mark_expiring(now, horizon);
            let (mut files, _) = commit_audited(tx, repo, now, Vec::new(), |_| Vec::new())?;
            let (Some(snapshot), Some(timestamp)) = (repo.snapshot(), repo.timestamp()) else {
                return Err(PublishError::Broken("nothing published yet".into()));
            };
            let expires = keyshare_policy::datetime::Expires::new(valid_until);
            let mut s = snapshot.signed.clone();
            s.version += 1;
            s.expires = expires;
            let s = keyshare_policy::sign::sign(s, &[keys.snapshot.as_ref()])?;
            let s_bytes: Arc<[u8]> = keyshare_policy::sign::to_bytes(&s)?.into();
            let mut t = timestamp.signed.clone();
            t.version += 1;
            t.expires = expires;
            t.meta = std::collections::BTreeMap::from([(
                "snapshot.json".to_owned(),
                keyshare_policy::metadata::MetaFile::with_bytes(s.signed.version, &s_bytes),
            )]);
            let t = keyshare_policy::sign::sign(t, &[keys.timestamp.as_ref()])?;
            let t_bytes: Arc<[u8]> = keyshare_policy::sign::to_bytes(&t)?.into();
            // Use up the edition's versions online: a commit that is never
            // published, then the one that is.
            repo.mark_expiring(now, timestamp_period);
            let (skipped, _) = commit_audited(tx, repo, now, Vec::new(), |_| Vec::new())?;
            if repo.timestamp().map(|x| x.signed.version) != Some(t.signed.version)
                || repo.snapshot().map(|x| x.signed.version) != Some(s.signed.version)
            {
                return Err(PublishError::Broken(
                    "the online repository did not skip the bundle edition's versions".into(),
                ));
            }
            files.extend(skipped.into_iter().filter(|f| {
                f.path != "metadata/timestamp.json" && !f.path.ends_with(".snapshot.json")
            }));
            repo.mark_expiring(now, timestamp_period);
            let (files, _) = commit_audited(tx, repo, now, files, |paths| {
                vec![Audit::new(
                    actor,
                    "airgap.export",
                    "repository",
                    json!({
                        "files": paths,
                        "edition": {"timestamp_version": t.signed.version, "snapshot_version": s.signed.version},
                        "expires": t.signed.expires.to_string(),
                    }),
                )]
            })?;
            tx.record_published(&files)?;
            edition = Some(BundleEdition {
                snapshot_path: format!("metadata/{}.snapshot.json", s.signed.version),
                snapshot: s_bytes,
                timestamp: t_bytes,
                timestamp_signer: keys.timestamp.clone(),
            });
            Ok(files)
        });
        match result {
            Ok(files) => {
                self.cache_files(&files);
                self.update_versions(repo);
                self.count_publish(started);
            }
            Err(e) => {
                *repo = restore(store, &self.keys, self.options)
                    .map_err(|r| PublishError::Broken(format!("{e}; then: {r}")))?;
                return Err(e);
            }
        }
        edition.ok_or_else(|| PublishError::Broken("no bundle edition was signed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::lineage;

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
