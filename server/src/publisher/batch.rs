//! Several changes in one publish ([`Publisher::apply_batch`]), each
//! checked alone so that one bad change fails alone.

use serde_json::Value;
use time::OffsetDateTime;

use keyshare_policy::trust::NamespaceName;

use crate::store::{self, Tx};

use super::audit::{Audits, Entry};
use super::durable::{Commit, Held};
use super::stage::{check_documents, stage, Affected};
use super::{Applied, Change, PublishError, Publisher, Staged};

/// Each change's own result, in the batch's order.
pub type Results = Vec<Result<Applied, PublishError>>;

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

impl Publisher {
    /// Applies several changes in one store transaction and one signed
    /// publish (group commit: a burst of CI delegations costs one
    /// re-signing, not one per change), with one audit record per change.
    ///
    /// Each change gets its own result, in order, and fails alone. The
    /// whole batch is first applied under one savepoint; if any change in
    /// it fails, that is rolled back and the batch applied again this way:
    /// the changes of one namespace are applied together inside a savepoint,
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
    ) -> Result<Results, PublishError> {
        Ok(self.apply_batch_as(batch, now, Commit::Durable)?.0)
    }

    /// [`Publisher::apply_batch`] committed without waiting for the disk:
    /// the publish is built, signed and committed, but held (not served)
    /// until [`Publisher::serve`] has synced the store's log past it, so
    /// the caller can build the next batch meanwhile (pipelined group
    /// commit, `crate::ci::batch`). The results must not be reported
    /// before [`Publisher::serve`] with the [`Held`] returned has returned
    /// `Ok` (`None` only when the publish failed before its commit).
    pub fn apply_batch_deferred(
        &self,
        batch: Vec<Batched>,
        now: OffsetDateTime,
    ) -> Result<(Results, Option<Held>), PublishError> {
        self.apply_batch_as(batch, now, Commit::Deferred)
    }

    fn apply_batch_as(
        &self,
        batch: Vec<Batched>,
        now: OffsetDateTime,
        commit: Commit,
    ) -> Result<(Results, Option<Held>), PublishError> {
        let writer = self.writer_with(commit);
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
            let namespace = b.change.namespace();
            match groups.iter_mut().find(|(n, _)| *n == namespace) {
                Some((_, members)) => members.push(i),
                None => groups.push((namespace, vec![i])),
            }
        }
        let mut refused: Vec<(usize, PublishError)> = Vec::new();
        let published = self.publish(writer, now, |tx, repo| {
            // Most batches hold no bad change: all of them are applied under
            // one savepoint, as below but without a savepoint per namespace
            // and per change (each costs statements, and SQLite copies every
            // page it changes first after a savepoint opens). Only when
            // something fails is that undone and the batch gone over as below.
            let together = tx.savepoint(|tx| -> Result<_, PublishError> {
                let mut all = Affected::default();
                let mut audits: Vec<(usize, Entry)> = Vec::with_capacity(batch.len());
                for (_, group) in &groups {
                    let mut affected = Affected::default();
                    for &i in group {
                        let Some(b) = batch.get(i) else { continue };
                        let effect = b.change.apply(tx)?;
                        affected.absorb(effect.affected);
                        audits.push((i, effect.entry.with_context(&b.context)));
                    }
                    check_documents(tx, &mut affected)?;
                    all.absorb(affected);
                }
                Ok((all, audits))
            });
            let (all, mut audits) = match together {
                Ok(applied) => applied,
                Err(_) => apply_one_by_one(tx, &batch, &groups, &mut refused),
            };
            audits.sort_by_key(|a| a.0);
            // With no change left this stages nothing and the publish
            // signs nothing.
            let staged = stage(tx, repo, &all)?;
            let order: Vec<usize> = audits.iter().map(|(i, _)| *i).collect();
            let records = audits
                .into_iter()
                .map(|(i, entry)| entry.by(batch.get(i).map_or("system", |b| b.actor.as_str())))
                .collect();
            Ok(Staged::new(staged, Audits::Records(records), order))
        })?;
        for (i, e) in refused {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(Err(e));
            }
        }
        let paths: std::sync::Arc<[String]> = published.paths().into();
        for (i, audit_seq) in published.value.into_iter().zip(published.audit_seqs) {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(Ok(Applied {
                    files: paths.clone(),
                    timestamp_version: published.timestamp_version,
                    audit_seq,
                }));
            }
        }
        let results = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(PublishError::Broken("change not applied".into()))))
            .collect();
        Ok((results, published.held))
    }
}

/// Applies the changes of `batch`, by `groups` (the changes of one
/// namespace together), each group in a savepoint and each change in one of
/// its own, so a change the store refuses, or that breaks its namespace's
/// document, is undone alone and put in `refused`. Returns what the others
/// affect and their audit entries, by position in `batch`.
fn apply_one_by_one(
    tx: &mut Tx<'_>,
    batch: &[Batched],
    groups: &[(Option<&NamespaceName>, Vec<usize>)],
    refused: &mut Vec<(usize, PublishError)>,
) -> (Affected, Vec<(usize, Entry)>) {
    let mut all = Affected::default();
    let mut audits: Vec<(usize, Entry)> = Vec::with_capacity(batch.len());
    for (_, group) in groups {
        let together = tx.savepoint(|tx| -> Result<_, PublishError> {
            let mut affected = Affected::default();
            let mut applied = Vec::with_capacity(group.len());
            let mut set_aside = Vec::new();
            for &i in group {
                let Some(b) = batch.get(i) else { continue };
                match tx.savepoint(|tx| b.change.apply(tx)) {
                    Ok(effect) => {
                        affected.absorb(effect.affected);
                        applied.push((i, effect.entry.with_context(&b.context)));
                    }
                    Err(e) => set_aside.push((i, e)),
                }
            }
            check_documents(tx, &mut affected)?;
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
                        let mut effect = b.change.apply(tx)?;
                        check_documents(tx, &mut effect.affected)?;
                        Ok(effect)
                    });
                    match one {
                        Ok(effect) => {
                            all.absorb(effect.affected);
                            audits.push((i, effect.entry.with_context(&b.context)));
                        }
                        Err(e) => refused.push((i, b.change.explain_refusal(tx, e))),
                    }
                }
            }
        }
    }
    (all, audits)
}
