//! A publish's audit records and the commit that signs their chain head
//! into the timestamp.

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::audit::Head as AuditChainHead;
use keyshare_policy::repo::{File, Repository};

use crate::store::{self, Tx};

use super::PublishError;

/// One audit record of a publish.
#[derive(Debug)]
pub(super) struct Audit {
    actor: String,
    action: String,
    subject: String,
    details: Value,
}

impl Audit {
    pub(super) fn new(
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

/// What a change says about itself in the audit log: the record without
/// its actor (see [`Change::apply`](super::Change::apply)).
#[derive(Debug)]
pub(super) struct Entry {
    /// E.g. `namespace.create`.
    pub(super) action: &'static str,
    /// What it changed, e.g. `team-a/key-1`.
    pub(super) subject: String,
    /// The rest, a JSON object or `Null`.
    pub(super) details: Value,
}

impl Entry {
    /// The record, made by `actor`.
    pub(super) fn by(self, actor: &str) -> Audit {
        Audit::new(actor, self.action, self.subject, self.details)
    }

    /// The entry with `context` added to its details (see
    /// [`Batched::context`](super::Batched::context)).
    pub(super) fn with_context(mut self, context: &Value) -> Self {
        self.details = match (self.details, context) {
            (details, Value::Null) => details,
            (Value::Object(mut map), context) => {
                map.insert("context".into(), context.clone());
                Value::Object(map)
            }
            (details, context) => json!({ "details": details, "context": context }),
        };
        self
    }
}

/// The audit records of one publish.
#[derive(Debug)]
pub(super) enum Audits {
    /// These records, whatever the publish signs.
    Records(Vec<Audit>),
    /// One record whose details (an object) get `files`, the paths of
    /// every file of the publish; no record when the publish has none.
    ListingFiles(Audit),
}

impl Audits {
    /// The records of a publish of the files at `paths`.
    fn records(self, paths: &[String]) -> Vec<Audit> {
        match self {
            Audits::Records(records) => records,
            Audits::ListingFiles(mut audit) => {
                if paths.is_empty() {
                    return Vec::new();
                }
                if let Value::Object(details) = &mut audit.details {
                    details.insert("files".into(), json!(paths));
                }
                vec![audit]
            }
        }
    }
}

/// Commits what `repo` has staged or marked due, with this publish's audit
/// records, which get the paths of every file of the publish (`staged`
/// first, then what the commit signs) and are appended to the log just
/// before the timestamp is signed, so the timestamp carries the chain head
/// including them (`x-keyshare-audit`, see [`keyshare_policy::audit`]).
/// This is the one place a publish's head is computed. When nothing is due
/// the records are appended all the same (a change that left every
/// document as it was) and no timestamp is signed. Returns `staged` plus
/// the signed files, and the records' sequence numbers.
pub(super) fn commit_audited(
    tx: &mut Tx<'_>,
    repo: &mut Repository,
    now: OffsetDateTime,
    staged: Vec<File>,
    audits: Audits,
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
            seqs = append(tx, audits.records(&all))?;
        }
        let head = tx.audit_head()?;
        let seq = u64::try_from(head.records)
            .map_err(|e| store::Error::corrupt("audit_log", e.to_string()))?;
        Ok(AuditChainHead::new(seq, &head.hash)?.timestamp_fields())
    })?;
    if let Some(audits) = audits.take() {
        seqs = append(tx, audits.records(&staged_paths))?;
    }
    let mut files = staged;
    files.extend(signed);
    Ok((files, seqs))
}
