//! A test-only TUF repository generator and an in-memory client around the
//! sans-IO [`Updater`], for the client tests.
//!
//! [`Repo`] keeps every role as a typed value plus its signers; `publish`
//! signs them into `files` (metadata, keyed by remote file name with
//! consistent snapshots) and `target_files`. Tests change the typed values
//! (versions, expiry, keys) or overwrite files directly to stage an attack.
//! [`Client`] keeps a metadata cache and a log of requests.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use keyshare_policy::client::{
    encode_role, target_remote_name, verify_target, CacheOp, Config, Lookup, Request, Response,
    Source, Updater,
};
use keyshare_policy::datetime::Expires;
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{
    DelegatedRole, Delegations, MetaFile, Role, RoleKeys, RoleName, Root, Snapshot, SuccinctRoles,
    TargetFile, Targets, Timestamp, Unrecognized, SPEC_VERSION, TOP_LEVEL_ROLES,
};
use keyshare_policy::pattern::PathPattern;
use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, Signer};
use keyshare_policy::Error;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A key shared between roles and versions.
pub type Key = Arc<InMemorySigner>;

/// The fixed "now" of every test repository.
pub const NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

/// `NOW` + `days` as an `expires` value (negative: in the past).
pub fn expires_in_days(days: i64) -> Expires {
    Expires::new(NOW + Duration::days(days))
}

/// A TUF repository held in memory.
#[derive(Debug)]
pub struct Repo {
    pub scheme: Scheme,
    /// The current root (publish it with [`Repo::publish_root`]).
    pub root: Root,
    /// Keys signing new roots by default (the current root role's keys).
    pub root_keys: Vec<Key>,
    /// Signers of every other role, top-level and delegated, by role name.
    pub signers: BTreeMap<String, Vec<Key>>,
    /// Every targets role, top-level (`targets`) and delegated.
    pub targets: BTreeMap<String, Targets>,
    pub snapshot: Snapshot,
    pub timestamp: Timestamp,
    /// Whether snapshot and timestamp list length and hashes (else versions only).
    pub meta_hashes: bool,
    /// Metadata files by remote name (`1.root.json`, `timestamp.json`, …).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Target files by remote name (`dir/<sha256>.<basename>`).
    pub target_files: BTreeMap<String, Vec<u8>>,
}

fn role_keys(keys: &[Key], threshold: u32) -> RoleKeys {
    RoleKeys {
        keyids: keys.iter().map(|k| k.key_id().clone()).collect(),
        threshold: NonZeroU32::new(threshold).unwrap(),
        unrecognized: Unrecognized::new(),
    }
}

/// Signs `value` with `signers` and returns the canonical bytes.
pub fn signed_bytes<T: Role>(value: &T, signers: &[&InMemorySigner]) -> Vec<u8> {
    let signers: Vec<&dyn Signer> = signers.iter().map(|s| *s as &dyn Signer).collect();
    to_bytes(&sign(value.clone(), &signers).unwrap()).unwrap()
}

fn refs(keys: &[Key]) -> Vec<&InMemorySigner> {
    keys.iter().map(AsRef::as_ref).collect()
}

/// Flips one hex digit of the first signature: same length, bad signature.
pub fn corrupt_signature(bytes: &[u8]) -> Vec<u8> {
    let marker = b"\"sig\":\"";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("a signature")
        + marker.len();
    let mut out = bytes.to_vec();
    out[at] = if out[at] == b'0' { b'1' } else { b'0' };
    out
}

impl Repo {
    /// Root, targets, snapshot and timestamp version 1, one `scheme` key
    /// per role, threshold 1, consistent snapshots, expiring in a year;
    /// published.
    pub fn new(scheme: Scheme) -> Self {
        let key = || Arc::new(InMemorySigner::generate(scheme).unwrap());
        let root_keys = vec![key()];
        let mut signers = BTreeMap::new();
        for role in ["targets", "snapshot", "timestamp"] {
            signers.insert(role.to_owned(), vec![key()]);
        }
        let mut keys = BTreeMap::new();
        let mut roles = BTreeMap::new();
        for role in TOP_LEVEL_ROLES {
            let role_signers = if role == "root" {
                &root_keys
            } else {
                &signers[role]
            };
            for k in role_signers {
                keys.insert(k.key_id().clone(), k.public_key().clone());
            }
            roles.insert(RoleName::new(role), role_keys(role_signers, 1));
        }
        let expires = expires_in_days(365);
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires,
            consistent_snapshot: Some(true),
            keys,
            roles,
            unrecognized: Unrecognized::new(),
        };
        let targets = Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: Unrecognized::new(),
        };
        let mut repo = Self {
            scheme,
            root,
            root_keys,
            signers,
            targets: BTreeMap::from([("targets".to_owned(), targets)]),
            snapshot: Snapshot {
                type_: "snapshot".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires,
                meta: BTreeMap::new(),
                unrecognized: Unrecognized::new(),
            },
            timestamp: Timestamp {
                type_: "timestamp".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires,
                meta: BTreeMap::new(),
                unrecognized: Unrecognized::new(),
            },
            meta_hashes: true,
            files: BTreeMap::new(),
            target_files: BTreeMap::new(),
        };
        repo.publish();
        repo
    }

    /// A new key of the repository's scheme.
    pub fn key(&self) -> Key {
        Arc::new(InMemorySigner::generate(self.scheme).unwrap())
    }

    fn consistent(&self) -> bool {
        self.root.consistent_snapshot.unwrap_or(false)
    }

    /// Remote name of a snapshot or targets role file of `version`.
    pub fn meta_name(&self, role: &str, version: u64) -> String {
        if self.consistent() {
            format!("{version}.{}.json", encode_role(role))
        } else {
            format!("{}.json", encode_role(role))
        }
    }

    /// The published bytes of root `version`.
    pub fn root_bytes(&self, version: u64) -> Vec<u8> {
        self.files[&format!("{version}.root.json")].clone()
    }

    /// Publishes the current root as `N.root.json`, signed by `signers`.
    pub fn publish_root_signed_by(&mut self, signers: &[&InMemorySigner]) {
        let bytes = signed_bytes(&self.root, signers);
        self.files
            .insert(format!("{}.root.json", self.root.version), bytes);
    }

    /// Publishes the current root signed by [`Repo::root_keys`].
    pub fn publish_root(&mut self) {
        let keys = self.root_keys.clone();
        self.publish_root_signed_by(&refs(&keys));
    }

    /// Gives top-level role `role` the keys `keys` with `threshold` in the
    /// current root (unpublished); other roles' keys are kept.
    pub fn set_role_keys(&mut self, role: &str, keys: Vec<Key>, threshold: u32) {
        for k in &keys {
            self.root
                .keys
                .insert(k.key_id().clone(), k.public_key().clone());
        }
        self.root
            .roles
            .insert(RoleName::new(role), role_keys(&keys, threshold));
        let used: Vec<_> = self
            .root
            .roles
            .values()
            .flat_map(|r| r.keyids.clone())
            .collect();
        self.root.keys.retain(|id, _| used.contains(id));
        if role == "root" {
            self.root_keys = keys;
        } else {
            self.signers.insert(role.to_owned(), keys);
        }
    }

    /// Adds target `path` with `content` to targets role `role`.
    pub fn add_target(&mut self, role: &str, path: &str, content: &[u8]) {
        let file = TargetFile::from_bytes(content);
        let name = target_remote_name(path, &file, true);
        self.targets
            .get_mut(role)
            .unwrap()
            .targets
            .insert(path.to_owned(), file);
        self.target_files.insert(name, content.to_vec());
    }

    fn new_targets_role(&mut self, name: &str, keys: Vec<Key>) {
        let expires = self.targets["targets"].expires;
        self.targets.insert(
            name.to_owned(),
            Targets {
                type_: "targets".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires,
                targets: BTreeMap::new(),
                delegations: None,
                unrecognized: Unrecognized::new(),
            },
        );
        self.signers.insert(name.to_owned(), keys);
    }

    /// `delegator`'s delegations (made empty when it has none).
    pub fn delegations_of(&mut self, delegator: &str) -> &mut Delegations {
        self.targets
            .get_mut(delegator)
            .unwrap()
            .delegations
            .get_or_insert_with(|| Delegations::new(BTreeMap::new(), Vec::new()))
    }

    /// `delegator` delegates `paths` (or hash prefixes) to a role `name`
    /// with a new key; creates the role if it does not exist yet.
    fn delegate_with(
        &mut self,
        delegator: &str,
        name: &str,
        paths: Option<Vec<PathPattern>>,
        path_hash_prefixes: Option<Vec<String>>,
        terminating: bool,
    ) {
        let keys = match self.signers.get(name) {
            Some(keys) => keys.clone(),
            None => {
                let keys = vec![self.key()];
                self.new_targets_role(name, keys.clone());
                keys
            }
        };
        let role = DelegatedRole {
            name: RoleName::new(name),
            keyids: keys.iter().map(|k| k.key_id().clone()).collect(),
            threshold: NonZeroU32::MIN,
            terminating,
            paths,
            path_hash_prefixes,
            unrecognized: Unrecognized::new(),
        };
        let d = self.delegations_of(delegator);
        for k in &keys {
            d.keys.insert(k.key_id().clone(), k.public_key().clone());
        }
        d.roles.get_or_insert_with(Vec::new).push(role);
    }

    /// `delegator` delegates path patterns `paths` to role `name`.
    pub fn delegate(&mut self, delegator: &str, name: &str, paths: &[&str], terminating: bool) {
        let paths = paths.iter().map(|p| PathPattern::new(p)).collect();
        self.delegate_with(delegator, name, Some(paths), None, terminating);
    }

    /// `delegator` delegates SHA-256 path hash prefixes to role `name`.
    pub fn delegate_hash_prefixes(&mut self, delegator: &str, name: &str, prefixes: &[&str]) {
        let prefixes = prefixes.iter().map(|p| (*p).to_owned()).collect();
        self.delegate_with(delegator, name, None, Some(prefixes), false);
    }

    /// `delegator` delegates to `2^bit_length` hashed bins `<prefix>-<hex>`
    /// sharing one new key; returns the succinct description.
    pub fn delegate_succinct(
        &mut self,
        delegator: &str,
        bit_length: u32,
        prefix: &str,
    ) -> SuccinctRoles {
        let key = self.key();
        let succinct = SuccinctRoles {
            keyids: vec![key.key_id().clone()],
            threshold: NonZeroU32::MIN,
            bit_length,
            name_prefix: prefix.to_owned(),
            unrecognized: Unrecognized::new(),
        };
        for bin in succinct.bin_names() {
            self.new_targets_role(bin.as_str(), vec![key.clone()]);
        }
        let d = self.delegations_of(delegator);
        d.keys
            .insert(key.key_id().clone(), key.public_key().clone());
        d.roles = None;
        d.succinct_roles = Some(succinct.clone());
        succinct
    }

    /// Signs every targets role into `files` and lists them in the snapshot.
    pub fn publish_targets(&mut self) {
        let mut meta = BTreeMap::new();
        for (role, targets) in &self.targets {
            let bytes = signed_bytes(targets, &refs(&self.signers[role]));
            let listing = if self.meta_hashes {
                MetaFile::with_bytes(targets.version, &bytes)
            } else {
                MetaFile::new(targets.version)
            };
            meta.insert(format!("{role}.json"), listing);
            self.files
                .insert(self.meta_name(role, targets.version), bytes);
        }
        self.snapshot.meta = meta;
    }

    /// Signs the snapshot as it is into `files` and lists it in the timestamp.
    pub fn sign_snapshot(&mut self) {
        let bytes = signed_bytes(&self.snapshot, &refs(&self.signers["snapshot"]));
        let listing = if self.meta_hashes {
            MetaFile::with_bytes(self.snapshot.version, &bytes)
        } else {
            MetaFile::new(self.snapshot.version)
        };
        self.timestamp.meta = BTreeMap::from([("snapshot.json".to_owned(), listing)]);
        self.files
            .insert(self.meta_name("snapshot", self.snapshot.version), bytes);
    }

    /// Signs the timestamp as it is into `timestamp.json`.
    pub fn sign_timestamp(&mut self) {
        let bytes = signed_bytes(&self.timestamp, &refs(&self.signers["timestamp"]));
        self.files.insert("timestamp.json".into(), bytes);
    }

    /// Publishes everything: the current root if not yet published, every
    /// targets role, snapshot and timestamp.
    pub fn publish(&mut self) {
        if !self
            .files
            .contains_key(&format!("{}.root.json", self.root.version))
        {
            self.publish_root();
        }
        self.publish_targets();
        self.sign_snapshot();
        self.sign_timestamp();
    }

    /// Bumps snapshot and timestamp versions and publishes.
    pub fn bump(&mut self) {
        self.snapshot.version += 1;
        self.timestamp.version += 1;
        self.publish();
    }

    /// Bumps targets role `role`, snapshot and timestamp, and publishes.
    pub fn bump_role(&mut self, role: &str) {
        self.targets.get_mut(role).unwrap().version += 1;
        self.bump();
    }

    /// The published bytes of the current version of `role`.
    pub fn current(&self, role: &str) -> Vec<u8> {
        let name = match role {
            "timestamp" => "timestamp.json".to_owned(),
            "snapshot" => self.meta_name("snapshot", self.snapshot.version),
            "root" => format!("{}.root.json", self.root.version),
            _ => self.meta_name(role, self.targets[role].version),
        };
        self.files[&name].clone()
    }
}

/// A client with an in-memory metadata cache.
#[derive(Debug)]
pub struct Client {
    pub now: OffsetDateTime,
    pub config: Config,
    /// Cached metadata by cache name.
    pub cache: BTreeMap<String, Vec<u8>>,
    /// Every request: `(source, file name)`.
    pub requests: Vec<(Source, String)>,
    /// Every cache operation applied, in order.
    pub ops: Vec<CacheOp>,
}

fn serve(
    cache: &BTreeMap<String, Vec<u8>>,
    files: &BTreeMap<String, Vec<u8>>,
    requests: &mut Vec<(Source, String)>,
    request: &Request,
) -> Response {
    let name = request.file_name();
    requests.push((request.source(), name.clone()));
    let from = if request.is_local() { cache } else { files };
    from.get(&name).cloned().into()
}

impl Client {
    /// A client that pinned `repo`'s root version 1.
    pub fn new(repo: &Repo) -> Self {
        Self {
            now: NOW,
            config: Config::default(),
            cache: BTreeMap::from([("root.json".to_owned(), repo.root_bytes(1))]),
            requests: Vec::new(),
            ops: Vec::new(),
        }
    }

    fn apply(&mut self, ops: Vec<CacheOp>) {
        for op in ops {
            match &op {
                CacheOp::Store { name, bytes } => {
                    self.cache.insert(name.clone(), bytes.clone());
                }
                CacheOp::Delete { name } => {
                    self.cache.remove(name);
                }
            }
            self.ops.push(op);
        }
    }

    /// A fresh updater from the cached root.
    pub fn updater(&self) -> Updater {
        Updater::new(&self.cache["root.json"], self.now, self.config.clone()).unwrap()
    }

    /// Refreshes against `repo`, applying cache operations (also on failure).
    pub fn refresh(&mut self, repo: &Repo) -> (Updater, Result<(), Error>) {
        self.requests.clear();
        self.ops.clear();
        let mut updater = self.updater();
        let result =
            updater.refresh_with(|r| serve(&self.cache, &repo.files, &mut self.requests, r));
        let ops = updater.take_cache_ops();
        self.apply(ops);
        (updater, result)
    }

    /// Refreshes and expects success.
    pub fn refresh_ok(&mut self, repo: &Repo) -> Updater {
        let (updater, result) = self.refresh(repo);
        result.unwrap();
        updater
    }

    /// Refreshes and expects an error.
    pub fn refresh_err(&mut self, repo: &Repo) -> Error {
        self.refresh(repo).1.unwrap_err()
    }

    /// Looks `path` up, applying cache operations.
    pub fn find(
        &mut self,
        updater: &mut Updater,
        repo: &Repo,
        path: &str,
    ) -> Result<Lookup, Error> {
        let result = updater.find_target_with(path, |r| {
            serve(&self.cache, &repo.files, &mut self.requests, r)
        });
        let ops = updater.take_cache_ops();
        self.apply(ops);
        result
    }

    /// Refreshes, looks `path` up and verifies the downloaded target;
    /// returns the role that holds it.
    pub fn fetch_target(&mut self, repo: &Repo, path: &str) -> String {
        let mut updater = self.refresh_ok(repo);
        match self.find(&mut updater, repo, path).unwrap() {
            Lookup::Found { role, target_file } => {
                let name = updater.target_remote_name(path, &target_file);
                verify_target(&target_file, path, &repo.target_files[&name]).unwrap();
                role.as_str().to_owned()
            }
            Lookup::NotFound => panic!("{path} not found"),
        }
    }

    /// Remote file names requested since the last refresh.
    pub fn remote_requests(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter(|(s, _)| *s == Source::Remote)
            .map(|(_, n)| n.clone())
            .collect()
    }
}
