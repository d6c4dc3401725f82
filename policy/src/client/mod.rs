//! The TUF client workflow (specification §5, "Detailed client workflow") as
//! sans-IO state machines: the caller does every read, download and write,
//! the machines decide what to ask for and what to trust.
//!
//! * [`TrustedSet`] is the trusted metadata collection, like python-tuf's
//!   `TrustedMetadataSet`: root → timestamp → snapshot → targets → delegated
//!   targets, each `update_*` running the specification's checks in its
//!   order on bytes it is given, with typed [`Error`](crate::Error)s.
//! * [`Updater`] is the refresh (python-tuf's `Updater.refresh`): it emits
//!   [`Request`]s, takes [`Response`]s and tells the caller what to keep in
//!   its metadata cache ([`CacheOp`]).
//! * [`TargetSearch`] looks one target path up through the delegations
//!   (python-tuf's `get_targetinfo`), loading delegated roles as needed.
//! * [`Walk`] loads every delegated role, one level of the delegation
//!   graph at a time, for a client that needs them all (the verifier, an
//!   air-gap export or import); each role is walked once, and only if the
//!   snapshot lists it.
//! * [`verify_target`] and [`target_remote_name`] are for downloading the
//!   target itself.
//!
//! No clock either: `now`, the fixed update start time, is a parameter.
//!
//! # The refresh, request by request
//!
//! 1. **Root** (§5.3): `N.root.json` from the repository for N = trusted
//!    version + 1, + 2, … until the answer is [`Response::NotFound`] or
//!    [`Config::max_root_rotations`] roots were fetched. Each must be signed
//!    by a threshold of the trusted root's root keys and of its own, and be
//!    exactly version N. Then the final root must not have expired.
//! 2. **Timestamp** (§5.4): `timestamp.json` from the cache, then from the
//!    repository. The cached one (if it verifies, even expired) is what the
//!    new one is checked against for rollback. A new timestamp with the
//!    trusted version is not an error: the trusted one is kept (and must not
//!    have expired).
//! 3. **Snapshot** (§5.5): `snapshot.json` from the cache; if it is not the
//!    final snapshot (missing, invalid, expired, or not the version the
//!    timestamp lists), `V.snapshot.json` from the repository, checked against
//!    the timestamp's length and hashes and, for rollback, against the cached
//!    one if that verified.
//! 4. **Targets** (§5.6): `targets.json` from the cache; if it is not valid,
//!    `V.targets.json` from the repository.
//!
//! A [`TargetSearch`] then loads each delegated role it visits the same way:
//! `<role>.json` from the cache, else `V.<role>.json` from the repository;
//! a [`Walk`] loads every role, a level at a time, the same way.
//!
//! File names: [`Request::remote_name`] is `N.root.json`, `timestamp.json`,
//! `V.snapshot.json`, `V.targets.json` and `V.<role>.json`, or without the
//! `V.` prefix when the trusted root has `consistent_snapshot: false`;
//! [`Request::cache_name`] is `root.json`, `timestamp.json`,
//! `snapshot.json`, `targets.json`, `<role>.json`. Role names are
//! percent-encoded with no safe characters ([`encode_role`]), as python-tuf
//! does, so a role name never makes a path.
//!
//! # The cache: partial progress
//!
//! As in python-tuf, what was verified is kept even when a later step fails,
//! so the next refresh starts from it:
//!
//! * each new root is stored as `root.json` as soon as it is accepted
//!   (before the next root is even fetched);
//! * timestamp, snapshot, targets and delegated roles are stored when
//!   accepted from the repository (a timestamp with the trusted version is
//!   not rewritten; files read from the cache are not written back);
//! * when an accepted root changes the keys or threshold of the timestamp or
//!   snapshot role, `timestamp.json` and `snapshot.json` are deleted and not
//!   read in this refresh (§5.3.11, recovery from a fast-forward attack: a
//!   compromised key that pushed versions up cannot pin clients above the
//!   repository's real versions once the key is rotated).
//!
//! A cached file that is missing, unreadable or invalid is not an error: the
//! machine fetches from the repository instead. Answer a failed cache read
//! with [`Response::NotFound`].
//!
//! # Driving it
//!
//! [`Updater::poll`] says what to do: [`Step::Fetch`] (read or download the
//! file, then [`Updater::answer`]), [`Step::Cache`] (apply it), or
//! [`Step::Done`]. Errors come out of `poll`. An HTTP client maps 200 to
//! [`Response::Bytes`] (reading at most [`Request::max_length`] + 1 bytes)
//! and 403/404 to [`Response::NotFound`], and returns its own error for
//! anything else; a directory reader or an air-gap bundle reader answers
//! from files. Synchronous callers can hand a closure to
//! [`Updater::refresh_with`] and [`Updater::find_target_with`].
//!
//! # Where this differs from python-tuf
//!
//! The checks and their outcomes are python-tuf's (`tuf` 7), except:
//!
//! * cached timestamp and snapshot are deleted, and not read, once an
//!   accepted root changes the timestamp or snapshot keys (§5.3.11), as soon
//!   as that root is persisted; python-tuf relies on the cached files failing
//!   verification, which misses a rotation that keeps an old key;
//! * a new root meets both signature thresholds before its version is
//!   checked (the specification's order; python-tuf checks the version
//!   between the two);
//! * roots come from the repository only (python-tuf 7 first tries
//!   `root_history/N.root.json` in its cache): pass the newest trusted root
//!   to [`Updater::new`];
//! * the final root's expiry is checked before the cached timestamp is read,
//!   and a kept equal-version timestamp's expiry right away, instead of at
//!   the next step: same error, fewer requests;
//! * a role delegated but missing from the snapshot fails before its cached
//!   copy is read; cached files are held to the configured size limits too.
//!
//! ```
//! # use std::collections::BTreeMap;
//! # use keyshare_policy::datetime::Expires;
//! # use keyshare_policy::keys::Scheme;
//! # use keyshare_policy::metadata::*;
//! # use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, Signer};
//! # fn demo(now: time::OffsetDateTime)
//! #     -> keyshare_policy::Result<(Vec<u8>, BTreeMap<String, Vec<u8>>)> {
//! #     let key = InMemorySigner::generate(Scheme::Ed25519)?;
//! #     let id = key.key_id().clone();
//! #     let expires = Expires::new(now + time::Duration::days(30));
//! #     let role = || RoleKeys { keyids: vec![id.clone()], threshold: std::num::NonZeroU32::MIN,
//! #         unrecognized: Unrecognized::new() };
//! #     let root = Root { type_: "root".into(), spec_version: SPEC_VERSION.into(), version: 1,
//! #         expires, consistent_snapshot: Some(true),
//! #         keys: BTreeMap::from([(id.clone(), key.public_key().clone())]),
//! #         roles: TOP_LEVEL_ROLES.iter().map(|r| (RoleName::new(*r), role())).collect(),
//! #         unrecognized: Unrecognized::new() };
//! #     let targets = Targets { type_: "targets".into(), spec_version: SPEC_VERSION.into(),
//! #         version: 1, expires, delegations: None, unrecognized: Unrecognized::new(),
//! #         targets: BTreeMap::from([("docs/hello.txt".to_owned(), TargetFile::from_bytes(b"hello"))]) };
//! #     let root = to_bytes(&sign(root, &[&key])?)?;
//! #     let targets = to_bytes(&sign(targets, &[&key])?)?;
//! #     let snapshot = Snapshot { type_: "snapshot".into(), spec_version: SPEC_VERSION.into(),
//! #         version: 1, expires, unrecognized: Unrecognized::new(),
//! #         meta: BTreeMap::from([("targets.json".to_owned(), MetaFile::with_bytes(1, &targets))]) };
//! #     let snapshot = to_bytes(&sign(snapshot, &[&key])?)?;
//! #     let timestamp = Timestamp { type_: "timestamp".into(), spec_version: SPEC_VERSION.into(),
//! #         version: 1, expires, unrecognized: Unrecognized::new(),
//! #         meta: BTreeMap::from([("snapshot.json".to_owned(), MetaFile::with_bytes(1, &snapshot))]) };
//! #     let timestamp = to_bytes(&sign(timestamp, &[&key])?)?;
//! #     let sha = keyshare_policy::hash::sha256_hex(b"hello");
//! #     let files = BTreeMap::from([
//! #         ("metadata/1.root.json".to_owned(), root.clone()),
//! #         ("metadata/timestamp.json".to_owned(), timestamp),
//! #         ("metadata/1.snapshot.json".to_owned(), snapshot),
//! #         ("metadata/1.targets.json".to_owned(), targets),
//! #         (format!("targets/docs/{sha}.hello.txt"), b"hello".to_vec()),
//! #     ]);
//! #     Ok((root, files))
//! # }
//! # fn main() -> keyshare_policy::Result<()> {
//! use std::collections::BTreeMap;
//!
//! use keyshare_policy::client::{verify_target, CacheOp, Config, Lookup, Step, Updater};
//!
//! let now = time::OffsetDateTime::now_utc();
//! // `server` stands for the repository, `cache` for the client's metadata
//! // directory; `pinned_root` is the root trusted out of band.
//! let (pinned_root, server): (Vec<u8>, BTreeMap<String, Vec<u8>>) = demo(now)?;
//! let mut cache: BTreeMap<String, Vec<u8>> = BTreeMap::new();
//! cache.insert("root.json".into(), pinned_root);
//!
//! let mut updater = Updater::new(&cache["root.json"], now, Config::default())?;
//! loop {
//!     match updater.poll()? {
//!         Step::Fetch(request) => {
//!             let bytes = if request.is_local() {
//!                 cache.get(&request.cache_name())
//!             } else {
//!                 server.get(&format!("metadata/{}", request.remote_name()))
//!             };
//!             updater.answer(bytes.cloned().into());
//!         }
//!         Step::Cache(CacheOp::Store { name, bytes }) => {
//!             cache.insert(name, bytes);
//!         }
//!         Step::Cache(CacheOp::Delete { name }) => {
//!             cache.remove(&name);
//!         }
//!         Step::Done(()) => break,
//!     }
//! }
//! assert!(cache.contains_key("timestamp.json") && cache.contains_key("targets.json"));
//!
//! // Look a target up (the closure form; cache writes wait in take_cache_ops).
//! let path = "docs/hello.txt";
//! let lookup = updater.find_target_with(path, |request| {
//!     let name = format!("metadata/{}", request.remote_name());
//!     if request.is_local() { None } else { server.get(&name).cloned() }.into()
//! })?;
//! let Lookup::Found { role, target_file } = lookup else {
//!     panic!("{path} is not in the repository");
//! };
//! assert_eq!(role.as_str(), "targets");
//!
//! // Download it by its consistent-snapshot name and verify it.
//! let name = updater.target_remote_name(path, &target_file);
//! assert_eq!(name, format!("docs/{}.hello.txt", target_file.sha256().unwrap_or_default()));
//! let bytes = &server[&format!("targets/{name}")];
//! verify_target(&target_file, path, bytes)?;
//! # Ok(())
//! # }
//! ```

mod load;
mod request;
mod search;
mod trusted;
mod updater;
mod walk;

pub use crate::layout::{encode_role, target_remote_name};
pub use request::{CacheOp, MetadataFile, Request, Response, Source, Step};
pub use search::{Lookup, TargetSearch};
pub use trusted::{EarlierRoles, FileId, TimestampUpdate, TrustedSet};
pub use updater::Updater;
pub use walk::{Walk, DEFAULT_BATCH_BYTES};

use crate::error::Result;
use crate::metadata::TargetFile;

/// Limits of the client workflow; the defaults are python-tuf's
/// (`ngclient.UpdaterConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most new root versions fetched in one refresh (256).
    pub max_root_rotations: u32,
    /// Most bytes of a root file (512 000).
    pub root_max_length: u64,
    /// Most bytes of `timestamp.json` (16 384).
    pub timestamp_max_length: u64,
    /// Most bytes of a snapshot when the timestamp does not list its length,
    /// and of a cached snapshot (2 000 000).
    pub snapshot_max_length: u64,
    /// Most bytes of a targets role when the snapshot does not list its
    /// length, and of a cached one (5 000 000).
    pub targets_max_length: u64,
    /// Most roles a target search visits (32).
    pub max_delegations: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_root_rotations: 256,
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
            max_delegations: 32,
        }
    }
}

/// Verifies downloaded target bytes against their description: length
/// first ([`crate::Error::LengthMismatch`]), then every listed hash keyshare
/// computes ([`crate::Error::HashMismatch`]), at least one of them
/// ([`crate::Error::NoSupportedHash`]). Errors name `target_path`.
///
/// Download at most `target_file.length` + 1 bytes.
pub fn verify_target(target_file: &TargetFile, target_path: &str, bytes: &[u8]) -> Result<()> {
    target_file.check_bytes(target_path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_defaults_are_python_tufs() {
        let c = Config::default();
        assert_eq!(
            (
                c.max_root_rotations,
                c.root_max_length,
                c.timestamp_max_length,
                c.snapshot_max_length,
                c.targets_max_length,
                c.max_delegations
            ),
            (256, 512_000, 16_384, 2_000_000, 5_000_000, 32)
        );
    }

    #[test]
    fn client_verify_target_checks_length_then_hash() {
        let t = TargetFile::from_bytes(b"abc");
        assert!(verify_target(&t, "p", b"abc").is_ok());
        assert_eq!(
            verify_target(&t, "p", b"abcd"),
            Err(crate::Error::LengthMismatch {
                what: "p".into(),
                expected: 3,
                received: 4
            })
        );
        assert_eq!(
            verify_target(&t, "p", b"abd"),
            Err(crate::Error::HashMismatch {
                what: "p".into(),
                algorithm: "sha256".into()
            })
        );
    }
}
