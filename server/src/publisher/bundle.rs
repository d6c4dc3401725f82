//! The bundle edition of snapshot and timestamp an air-gap export carries
//! (see `docs/airgap.md`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;

use keyshare_policy::datetime::Expires;
use keyshare_policy::metadata::MetaFile;
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::{sign, to_bytes};

use crate::store;

use super::audit::{commit_audited, Audit, Audits};
use super::{PublishError, Publisher, Staged};

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
    /// Superseded files are not pruned by this publish. Blocking.
    pub fn sign_bundle_edition(
        &self,
        actor: &str,
        valid_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<BundleEdition, PublishError> {
        let keys = &self.keys;
        let timestamp_period = self.options.expiries.timestamp;
        let published = self.publish(self.writer(), now, |tx, repo| {
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
            let nothing = || Audits::Records(Vec::new());
            let (mut files, _) = commit_audited(tx, repo, now, Vec::new(), nothing())?;
            let (Some(snapshot), Some(timestamp)) = (repo.snapshot(), repo.timestamp()) else {
                return Err(PublishError::Broken("nothing published yet".into()));
            };
            let expires = Expires::new(valid_until);
            let mut s = snapshot.signed.clone();
            s.version += 1;
            s.expires = expires;
            let s = sign(s, &[keys.snapshot.as_ref()])?;
            let s_bytes: Arc<[u8]> = to_bytes(&s)?.into();
            let mut t = timestamp.signed.clone();
            t.version += 1;
            t.expires = expires;
            t.meta = BTreeMap::from([(
                "snapshot.json".to_owned(),
                MetaFile::with_bytes(s.signed.version, &s_bytes),
            )]);
            let t = sign(t, &[keys.timestamp.as_ref()])?;
            let t_bytes: Arc<[u8]> = to_bytes(&t)?.into();
            // Use up the edition's versions online: a commit that is never
            // published, then the one that is (the skeleton's).
            repo.mark_expiring(now, timestamp_period);
            let (skipped, _) = commit_audited(tx, repo, now, Vec::new(), nothing())?;
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
            let audit = Audit::new(
                actor,
                "airgap.export",
                "repository",
                json!({
                    "edition": {"timestamp_version": t.signed.version, "snapshot_version": s.signed.version},
                    "expires": t.signed.expires.to_string(),
                }),
            );
            let edition = BundleEdition {
                snapshot_path: format!("metadata/{}.snapshot.json", s.signed.version),
                snapshot: s_bytes,
                timestamp: t_bytes,
                timestamp_signer: keys.timestamp.clone(),
            };
            Ok(Staged::new(files, Audits::ListingFiles(audit), edition).keeping_superseded())
        })?;
        Ok(published.value)
    }
}
