//! Rebuilding a repository from the files it last published, checked as a
//! client would check them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::metadata::{RoleName, Root, Signed, Snapshot, Targets, Timestamp, Unrecognized};

use super::options::{Options, SharedSigner};
use super::{signed_root, Published, Repository, TargetsRole};

impl Repository {
    /// Rebuilds a repository from what it last published (for a server that
    /// restarts): every root (version 1 first), the timestamp, the snapshot it
    /// lists and the latest version of every targets role the snapshot lists,
    /// by role name.
    ///
    /// Everything is checked as a client would, except expiry (a server that
    /// was down may restart with expired metadata and then re-sign it): the
    /// root chain, each role's signatures by the keys its delegator gives it,
    /// and the versions, lengths and hashes timestamp and snapshot list. A
    /// role no one delegates any more is kept as published (clients never
    /// read it). Nothing is staged afterwards.
    pub fn restore(
        published: &Published<'_>,
        signers: BTreeMap<RoleName, Vec<SharedSigner>>,
        options: Options,
    ) -> Result<Self> {
        use crate::metadata::Envelope;
        use crate::verify::{verify_root_self, verify_root_successor, Authority};

        let (first, rest) = published
            .roots
            .split_first()
            .ok_or_else(|| Error::MissingRole {
                role: RoleName::new(RoleName::ROOT),
                message: "no published root to restore from".into(),
            })?;
        let mut root = verify_root_self(Envelope::<Root>::parse(RoleName::ROOT, first)?)?;
        if root.version != 1 {
            return Err(Error::RootVersion {
                expected: 1,
                received: root.version,
            });
        }
        for bytes in rest {
            let next =
                verify_root_successor(&root, Envelope::<Root>::parse(RoleName::ROOT, bytes)?)?;
            if next.version != root.version + 1 {
                return Err(Error::RootVersion {
                    expected: root.version + 1,
                    received: next.version,
                });
            }
            root = next;
        }
        let timestamp = Envelope::<Timestamp>::parse(RoleName::TIMESTAMP, published.timestamp)?;
        Authority::from_root(&root, RoleName::TIMESTAMP)?.check(RoleName::TIMESTAMP, &timestamp)?;
        let snapshot_meta = timestamp.signed.snapshot_meta();
        snapshot_meta.check_bytes(RoleName::SNAPSHOT, published.snapshot)?;
        let snapshot = Envelope::<Snapshot>::parse(RoleName::SNAPSHOT, published.snapshot)?;
        Authority::from_root(&root, RoleName::SNAPSHOT)?.check(RoleName::SNAPSHOT, &snapshot)?;
        if snapshot.signed.version != snapshot_meta.version {
            return Err(Error::VersionMismatch {
                role: RoleName::new(RoleName::SNAPSHOT),
                listed_by: RoleName::TIMESTAMP,
                expected: snapshot_meta.version,
                received: snapshot.signed.version,
            });
        }

        // Every role the snapshot lists, parsed and checked against its entry.
        let mut roles: BTreeMap<RoleName, Envelope<Targets>> = BTreeMap::new();
        for (file, meta) in &snapshot.signed.meta {
            let name = file.strip_suffix(".json").unwrap_or(file);
            let bytes = published
                .targets
                .get(name)
                .ok_or_else(|| Error::MissingRole {
                    role: RoleName::new(name),
                    message: "listed in snapshot but not among the published files".into(),
                })?;
            meta.check_bytes(name, bytes)?;
            let env = Envelope::<Targets>::parse(name, bytes)?;
            if env.signed.version != meta.version {
                return Err(Error::VersionMismatch {
                    role: RoleName::new(name),
                    listed_by: RoleName::SNAPSHOT,
                    expected: meta.version,
                    received: env.signed.version,
                });
            }
            roles.insert(RoleName::new(name), env);
        }
        let top = roles
            .get(RoleName::TARGETS)
            .ok_or_else(|| Error::MissingRole {
                role: RoleName::targets(),
                message: "snapshot does not list the top-level targets role".into(),
            })?;
        Authority::from_root(&root, RoleName::TARGETS)?.check(RoleName::TARGETS, top)?;
        // Who delegates whom, then each delegated role checked by its delegator.
        let mut delegator_of: BTreeMap<RoleName, RoleName> = BTreeMap::new();
        for (name, env) in &roles {
            let children = env
                .signed
                .delegations
                .iter()
                .flat_map(|d| d.roles.iter().flatten());
            let bins = env
                .signed
                .delegations
                .iter()
                .flat_map(|d| d.succinct_roles.iter())
                .flat_map(|s| s.bin_names());
            for child in children.map(|c| c.name.clone()).chain(bins) {
                if let Some(previous) = delegator_of.insert(child.clone(), name.clone()) {
                    return Err(Error::Sign(format!(
                        "`{child}` is delegated by both `{previous}` and `{name}`"
                    )));
                }
            }
        }
        for (child, parent) in &delegator_of {
            let (Some(parent_env), Some(child_env)) = (roles.get(parent), roles.get(child)) else {
                return Err(Error::MissingRole {
                    role: child.clone(),
                    message: format!("delegated by `{parent}` but not listed in snapshot"),
                });
            };
            Authority::from_delegator(&parent_env.signed, child.as_str())?
                .check(child.as_str(), child_env)?;
        }

        let mut targets = BTreeMap::new();
        for (name, env) in roles {
            let signed = Signed {
                signatures: env.signatures,
                signed: env.signed,
                unrecognized: Unrecognized::new(),
            };
            targets.insert(
                name.clone(),
                TargetsRole {
                    delegator: delegator_of.get(&name).cloned(),
                    ..TargetsRole::new(Some(signed.clone()), signed.signed, false)
                },
            );
        }
        let timestamp_signed = Signed {
            signatures: timestamp.signatures,
            signed: timestamp.signed,
            unrecognized: Unrecognized::new(),
        };
        let snapshot_signed = Signed {
            signatures: snapshot.signatures,
            signed: snapshot.signed,
            unrecognized: Unrecognized::new(),
        };
        Ok(Self {
            options,
            root: signed_root(&root),
            root_history: published.roots.iter().map(|b| Arc::from(*b)).collect(),
            published_roots: published.roots.len(),
            targets,
            snapshot: Some((snapshot_signed, Arc::from(published.snapshot))),
            timestamp: Some((timestamp_signed, Arc::from(published.timestamp))),
            signers,
            pending: false,
        })
    }
}
