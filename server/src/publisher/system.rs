//! The publishes the server makes by itself: re-signing what expires,
//! republishing documents whose shape changed, and the expiry sweep of CI
//! keys. Each is audited as `system`, and only when it published.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use keyshare_policy::metadata::RoleName;
use keyshare_policy::repo::{File, Repository};
use keyshare_policy::trust::{NamespaceName, REVOCATIONS_PATH};

use crate::store::{self, Tx};

use super::audit::{Audit, Audits};
use super::stage::{stage, Affected};
use super::{PublishError, Publisher, Staged};

impl Publisher {
    /// Re-signs every role that expires within `horizon` (timestamp,
    /// snapshot, targets, the bins). Roles no longer delegated (the
    /// namespace roles a migration undelegated) are never re-signed: no
    /// client reads them, and their snapshot entries stay as they are.
    /// Returns the paths published.
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
        self.system_publish("documents.republish", now, |tx, repo| {
            let bytes = tx.revocations_document()?.to_vec()?;
            let published = repo
                .targets(RoleName::TARGETS)
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
            Ok((stage(tx, repo, &affected)?, serde_json::Map::new()))
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
            Ok((stage(tx, repo, &affected)?, details))
        })?;
        Ok(removed)
    }

    /// A publish the server makes by itself: `work` stages changes (or
    /// marks roles due) and returns the target files it staged and the
    /// audit details; then whatever is due is committed, audited as
    /// `system` doing `action` (the details get the paths published) only
    /// when something was published.
    fn system_publish(
        &self,
        action: &str,
        now: OffsetDateTime,
        work: impl FnOnce(
            &mut Tx<'_>,
            &mut Repository,
        ) -> Result<(Vec<File>, serde_json::Map<String, Value>), PublishError>,
    ) -> Result<Vec<String>, PublishError> {
        let published = self.publish(self.writer(), now, |tx, repo| {
            let (staged, details) = work(tx, repo)?;
            let audit = Audit::new("system", action, "repository", Value::Object(details));
            Ok(Staged::new(staged, Audits::ListingFiles(audit), ()))
        })?;
        Ok(published.paths())
    }
}
