//! Roots: the checks a root must pass before the server publishes under
//! it (the first root of a new repository, [`check_first`], and a rotation,
//! [`Publisher::submit_root`]), refused with a typed [`RootRefusal`], and
//! the rotation's publish.

use std::collections::BTreeMap;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use keyshare_policy::datetime::Expires;
use keyshare_policy::metadata::{Envelope, KeyId, RoleName, Root, Targets};
use keyshare_policy::repo::Repository;
use keyshare_policy::verify::{verify_root_self, Authority};

use super::audit::{Audit, Audits};
use super::stage::{current_bins, delegate_bins};
use super::{Applied, OnlineKeys, PublishError, Publisher, Staged};

/// Why a submitted root was refused. The messages name what is wrong and
/// what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootRefusal {
    /// The bytes are not a root metadata file.
    #[error("{0}")]
    Malformed(keyshare_policy::Error),
    /// A new repository starts from a root that is not version 1.
    #[error(
        "a new repository starts from root version 1; this is version {version} (start \
         from 1.root.json; clients follow the later versions)"
    )]
    NotVersionOne {
        /// The root's version.
        version: u64,
    },
    /// A rotation's root is not the next version of the current one.
    #[error(
        "root v{version} is not the next version: the current root is v{current}, so v{} is \
         expected",
        .current.saturating_add(1)
    )]
    NotNextVersion {
        /// The submitted root's version.
        version: u64,
        /// The current root's version.
        current: u64,
    },
    /// The root has expired.
    #[error("root v{version} expired at {expires}")]
    Expired {
        /// The root's version.
        version: u64,
        /// Its expiry.
        expires: Expires,
    },
    /// The root does not list the server's online key for a role it signs
    /// (with threshold 1).
    #[error(
        "role `{role}`: root v{version} does not list the server's online {role} key {key_id} \
         with threshold 1, so the server could not sign {role}; configure the server \
         with the key the root lists first"
    )]
    OnlineKeyNotListed {
        /// `targets`, `snapshot` or `timestamp`.
        role: &'static str,
        /// The root's version.
        version: u64,
        /// The server's key for that role.
        key_id: KeyId,
    },
    /// A rotation's root is not signed by the threshold of the current
    /// root.
    #[error("root v{version} does not meet the threshold of the current root v{current}: {error}")]
    OldThreshold {
        /// The submitted root's version.
        version: u64,
        /// The current root's version.
        current: u64,
        /// What the verification found.
        error: keyshare_policy::Error,
    },
    /// The root is not signed by its own threshold.
    #[error("root v{version} does not meet its own threshold: {error}")]
    OwnThreshold {
        /// The root's version.
        version: u64,
        /// What the verification found.
        error: keyshare_policy::Error,
    },
    /// The repository would not take the root as its next one.
    #[error("{0}")]
    NotAccepted(keyshare_policy::Error),
}

/// Checks `root`, the bytes of the root version 1 a new repository starts
/// from: version 1, fresh, listing the online keys, meeting its own
/// threshold.
pub(super) fn check_first(
    root: &[u8],
    keys: &OnlineKeys,
    now: OffsetDateTime,
) -> Result<(), RootRefusal> {
    let envelope = Envelope::<Root>::parse(RoleName::ROOT, root).map_err(RootRefusal::Malformed)?;
    let version = envelope.signed.version;
    if version != 1 {
        return Err(RootRefusal::NotVersionOne { version });
    }
    check_fresh_and_online(&envelope.signed, keys, now)?;
    verify_root_self(envelope).map_err(|error| RootRefusal::OwnThreshold { version, error })?;
    Ok(())
}

impl Publisher {
    /// Publishes a new root made in a ceremony (`keyshare root ...`) on
    /// behalf of `actor`, as `metadata/N+1.root.json` with exactly these
    /// bytes: `bytes` must be root version N+1 signed by the
    /// thresholds of root N and of itself, not expired, and must list the
    /// server's online keys for targets, snapshot and timestamp (threshold
    /// 1), since the server signs those roles. One store transaction
    /// publishes the root with a re-signed snapshot and timestamp and
    /// appends the audit record `root.rotate`. Refused roots
    /// ([`PublishError::Root`]) change nothing. Blocking: call from a
    /// blocking thread.
    pub fn submit_root(
        &self,
        actor: &str,
        bytes: &[u8],
        now: OffsetDateTime,
    ) -> Result<Applied, PublishError> {
        let envelope =
            Envelope::<Root>::parse(RoleName::ROOT, bytes).map_err(RootRefusal::Malformed)?;
        let version = envelope.signed.version;
        check_fresh_and_online(&envelope.signed, &self.keys, now)?;
        let keys = &self.keys;
        let published = self.publish(self.writer(), now, |_tx, repo| {
            // Checked inside the publish, against the root of the
            // repository as it is now: after catching up with what another
            // server sharing the store published, never a stale copy.
            let current = repo.root().signed.clone();
            if version != current.version + 1 {
                return Err(RootRefusal::NotNextVersion {
                    version,
                    current: current.version,
                }
                .into());
            }
            Authority::from_root(&current, RoleName::ROOT)
                .and_then(|a| a.check(RoleName::ROOT, &envelope))
                .map_err(|error| RootRefusal::OldThreshold {
                    version,
                    current: current.version,
                    error,
                })?;
            let root = verify_root_self(envelope)
                .map_err(|error| RootRefusal::OwnThreshold { version, error })?;
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
            repo.add_root(bytes).map_err(RootRefusal::NotAccepted)?;
            // The bins must be signed by the targets key the server holds:
            // after a targets key rotation, re-delegate and re-sign them.
            let bins_key = repo
                .targets(RoleName::TARGETS)
                .and_then(|t| t.signed.delegations.as_ref())
                .and_then(|d| d.succinct_roles.as_ref())
                .map(|s| s.keyids.clone());
            if bins_key.as_deref() != Some(std::slice::from_ref(keys.targets.key_id())) {
                let bit_length = current_bins(repo)?.bit_length;
                delegate_bins(repo, keys, bit_length, now)?;
            }
            if let Some(horizon) = targets_resign_horizon(repo, now)? {
                // The published targets role was signed by a key the new
                // root no longer lists: re-sign it (and whatever expires
                // sooner) with the server's key, which the new root lists.
                repo.mark_expiring(now, horizon);
            }
            let audit = Audit::new(actor, "root.rotate", format!("root v{version}"), details);
            Ok(Staged::new(Vec::new(), Audits::Records(vec![audit]), ()))
        })?;
        Ok(published.applied())
    }
}

/// A root the server can publish under: not expired, and listing the
/// server's online targets, snapshot and timestamp keys with threshold 1
/// (the server signs those roles). The refusal names what is wrong.
fn check_fresh_and_online(
    root: &Root,
    keys: &OnlineKeys,
    now: OffsetDateTime,
) -> Result<(), RootRefusal> {
    let version = root.version;
    if root.expires.is_expired(now) {
        return Err(RootRefusal::Expired {
            version,
            expires: root.expires,
        });
    }
    for (role, key) in [
        (RoleName::TARGETS, &keys.targets),
        (RoleName::SNAPSHOT, &keys.snapshot),
        (RoleName::TIMESTAMP, &keys.timestamp),
    ] {
        let listed = root.roles.get(&RoleName::new(role));
        let ok = listed
            .is_some_and(|r| r.threshold.get() == 1 && r.keyids.iter().any(|k| k == key.key_id()));
        if !ok {
            return Err(RootRefusal::OnlineKeyNotListed {
                role,
                version,
                key_id: key.key_id().clone(),
            });
        }
    }
    Ok(())
}

/// `Some(horizon)` reaching the published top-level targets' expiry when
/// that targets metadata does not verify under the repository's current
/// root (its key was replaced), `None` when it does.
fn targets_resign_horizon(
    repo: &Repository,
    now: OffsetDateTime,
) -> Result<Option<Duration>, PublishError> {
    let Some(targets) = repo.targets(RoleName::TARGETS) else {
        return Ok(None);
    };
    let bytes = keyshare_policy::sign::to_bytes(targets)?;
    let envelope = Envelope::<Targets>::parse(RoleName::TARGETS, &bytes)?;
    let verifies = Authority::from_root(&repo.root().signed, RoleName::TARGETS)
        .and_then(|a| a.check(RoleName::TARGETS, &envelope))
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
