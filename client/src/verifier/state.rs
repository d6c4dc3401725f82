//! The verified trust state of one repository.

use std::collections::BTreeMap;

use keyshare_policy::audit::Head;
use keyshare_policy::evidence::EvidenceAnchor;
use keyshare_policy::trust::{TrustSet, Tsas};

/// The verified trust state of one repository.
#[derive(Debug)]
pub struct TrustState {
    /// The repository's base URL.
    pub url: String,
    /// The trusted root's version.
    pub root_version: u64,
    /// The trusted timestamp's version.
    pub timestamp_version: u64,
    /// The audit chain head the trusted timestamp carries
    /// (`x-keyshare-audit`), if any: the server's audit log as of that
    /// publish. `None` also when the field is malformed (logged).
    pub audit_head: Option<Head>,
    /// The documents, indexed for decisions.
    pub trust_set: TrustSet,
    /// The timestamp authorities the organization trusts
    /// (`org/tsas.json`; empty when it publishes none).
    pub tsas: Tsas,
    /// What delegation evidence is checked against: the trusted top-level
    /// targets' delegations and the trusted snapshot's versions.
    pub evidence: EvidenceAnchor,
    /// Every verified target the state was built from, by target path:
    /// the namespace index, `org/revocations.json`, `org/peers.json`,
    /// `org/tsas.json`,
    /// `org/roots/<name>.pem`, and each `namespaces/<ns>/trust.json`.
    pub documents: BTreeMap<String, Vec<u8>>,
}
