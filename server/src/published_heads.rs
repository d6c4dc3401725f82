//! The audit chain heads the server has published, and the check of its
//! audit log against them (`GET /api/v1/audit/verify`).
//!
//! Every timestamp the publisher signs carries the chain head as of that
//! publish (`x-keyshare-audit`, see [`keyshare_policy::audit`]). A database
//! writer can rewrite a record and recompute every later hash, but cannot
//! sign a timestamp: the heads below are only those whose signature
//! verifies, so they pin the log as it was when they were signed.
//!
//! Heads checked: the current timestamp (the one the server serves, held
//! in memory: signed by this process, or verified against the root chain
//! when the repository was restored at start), and the newest
//! [`STORED_TIMESTAMPS_CHECKED`] timestamps the store still holds
//! (superseded ones stay for the retention period), each verified against
//! the timestamp role of the current root or, for timestamps signed before
//! a key rotation, of an earlier root of the verified chain. A stored
//! timestamp that verifies under none is not used (and logged): it is no
//! evidence of anything the server signed.
//!
//! Reads the store and the repository it is given; the publisher calls it
//! (it imports nothing above [`crate::store`]).

use keyshare_policy::audit::Head;
use keyshare_policy::metadata::{Envelope, Root, Timestamp};
use keyshare_policy::repo::Repository;
use keyshare_policy::verify::Authority;

use crate::store::{self, AuditHead, Store};

/// At most this many stored timestamps (the newest) are checked besides
/// the current one, so a store keeping every version (`keep_superseded =
/// forever`) does not make a check read all of them.
pub const STORED_TIMESTAMPS_CHECKED: u32 = 1024;

/// A head and the timestamp version that published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedHead {
    /// The head.
    pub head: Head,
    /// The version of the timestamp that carries it.
    pub timestamp_version: u64,
}

impl PublishedHead {
    /// Where it was published, for messages: `published in timestamp vN`.
    pub fn source(&self) -> String {
        format!("published in timestamp v{}", self.timestamp_version)
    }
}

/// An intact audit log that agrees with every published head checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditVerified {
    /// The log's head.
    pub head: AuditHead,
    /// The head of the current timestamp (`None`: it carries none).
    pub published: Option<PublishedHead>,
    /// How many published heads the log was checked against.
    pub heads_checked: usize,
}

/// The heads of the current timestamp and of the newest stored ones whose
/// signature verifies (see the module docs), current first.
pub fn published_heads(
    store: &Store,
    repo: &Repository,
) -> Result<Vec<PublishedHead>, store::Error> {
    let mut heads: Vec<PublishedHead> = Vec::new();
    if let Some(current) = repo.timestamp() {
        if let Some(head) = head_of(&current.signed) {
            heads.push(PublishedHead {
                head,
                timestamp_version: current.signed.version,
            });
        }
    }
    let mut roots: Vec<Root> = vec![repo.root().signed.clone()];
    for bytes in repo.root_history().collect::<Vec<_>>().into_iter().rev() {
        if let Ok(r) = Envelope::<Root>::parse("root", bytes) {
            if r.signed.version != repo.root().signed.version {
                roots.push(r.signed);
            }
        }
    }
    let current_version = repo.timestamp().map(|t| t.signed.version);
    for stored in store.published_newest("metadata/timestamp.json", STORED_TIMESTAMPS_CHECKED)? {
        let Ok(envelope) = Envelope::<Timestamp>::parse("timestamp", &stored.bytes) else {
            tracing::warn!(id = stored.id, "stored timestamp does not parse; not used");
            continue;
        };
        let version = envelope.signed.version;
        if Some(version) == current_version {
            continue;
        }
        let signed = roots.iter().any(|root| {
            Authority::from_root(root, "timestamp")
                .and_then(|a| a.check("timestamp", &envelope))
                .is_ok()
        });
        if !signed {
            tracing::warn!(
                version,
                "stored timestamp is not signed by the timestamp key of any root; not used"
            );
            continue;
        }
        if let Some(head) = head_of(&envelope.signed) {
            heads.push(PublishedHead {
                head,
                timestamp_version: version,
            });
        }
    }
    Ok(heads)
}

fn head_of(timestamp: &Timestamp) -> Option<Head> {
    match Head::from_timestamp(timestamp) {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(error = %e, "timestamp carries a malformed audit head; not used");
            None
        }
    }
}

/// Checks the whole audit chain and that it agrees with every published
/// head; [`crate::store::Error::AuditChain`] or
/// [`crate::store::Error::AuditHead`] name
/// the first sequence number that does not.
pub fn verify(store: &Store, repo: &Repository) -> Result<AuditVerified, store::Error> {
    let heads = published_heads(store, repo)?;
    let checked: Vec<(Head, String)> = heads.iter().map(|p| (p.head.clone(), p.source())).collect();
    let head = store.verify_audit_against(&checked)?;
    let current = repo.timestamp().map(|t| t.signed.version);
    Ok(AuditVerified {
        head,
        published: heads
            .into_iter()
            .find(|p| Some(p.timestamp_version) == current),
        heads_checked: checked.len(),
    })
}
