//! The admin API under `/api/v1/`, by resource: what each route's request
//! body or query holds, and its answers.
//!
//! Bodies of identities and sub-delegations are the trust document's own
//! types ([`crate::trust::X509Identity`], [`crate::trust::SubDelegation`]);
//! `POST /api/v1/root` takes a signed root file as it is.

mod audit;
mod keys;
mod namespaces;
mod peers;
mod revocations;
mod roots;
mod tokens;
mod tsas;

pub use audit::{
    AuditBroken, AuditHeadMismatch, AuditIntact, AuditPublishedHead, AuditQuery, AuditRecord,
    AuditRecords, AuditVerification,
};
pub use keys::AddKey;
pub use namespaces::{
    AddScopes, CreateNamespace, KeyRevocationView, KeyView, NamespaceDetail, NamespaceList,
    NamespaceQuery, NamespaceRevocationView, NamespaceSummary, ResolveQuery, Resolved,
    SetThreshold, SubDelegationView,
};
pub use peers::{PeerList, PutPeer};
pub use revocations::{
    AddRevocation, Listing, NamespaceKeyRevoked, RevocationAdded, RevocationList, RevocationListed,
    RevokeNamespaceKey,
};
pub use roots::{OrgRootList, OrgRootView, PutRoot, RootSubmitted};
pub use tokens::{CreateToken, TokenList, TokenView};
pub use tsas::{PutTsa, TsaList, TsaView};

#[cfg(test)]
mod tests;
