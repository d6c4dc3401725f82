//! Trust documents and the trust decision.
//!
//! keyshare distributes five kinds of trust documents as TUF targets; this
//! module parses them and answers, with no IO and no clock, "is this signer
//! trusted for this artifact, for a signature made at `signed_at`, as of
//! `now`?".
//!
//! * [`Namespaces`] (the namespace index, `org/namespaces/<shard>.json`
//!   joined with [`Namespaces::merge`], or one `org/namespaces.json`; signed by the organization's
//!   top-level `targets` role): the namespaces, the artifact-name scopes each
//!   one owns and who maintains it. This is the only place scopes come from.
//! * [`NamespaceTrust`] (`namespaces/<ns>/trust.json`, listed in the hashed
//!   bin its path hashes to and signed with the online targets key by
//!   keyshare-server, or by a role of its own delegated from that bin, which
//!   a team may hold offline): what the
//!   team controls, namely its signing keys and X.509 identities, its
//!   threshold and its sub-delegations. It has no scopes: a team cannot claim
//!   artifact names, and its sub-delegations only narrow what the
//!   organization granted it.
//! * [`Revocations`] (`org/revocations.json`, `targets`): keys (by the
//!   fingerprint of their material, never by id) and certificates whose
//!   signatures are untrusted from a point in time on, everywhere.
//! * [`Peers`] (`org/peers.json`, `targets`): artifact-name patterns that
//!   other keyshare services answer for, with the root each is pinned to.
//! * [`Tsas`] (`org/tsas.json`, `targets`): the RFC 3161 timestamp
//!   authorities whose tokens say when a signature was made
//!   ([`crate::timestamp`] verifies the tokens).
//!
//! A namespace may also revoke keys itself, in its own trust document
//! ([`NamespaceTrust::revocations`], format `keyshare.trust/v2`): such a
//! revocation counts for that namespace's artifacts only, so a maintainer
//! can end trust in a stolen key without an org admin, and cannot touch any
//! other namespace by it.
//!
//! Parsing refuses bad documents outright: unknown fields, a wrong `format`,
//! unusable keys, unparsable certificates, impossible thresholds or validity
//! windows, duplicates all fail with [`crate::Error::Malformed`] naming the document
//! and the JSON path of the offending field. A parsed document is therefore
//! one the decision can rely on. Which bytes to parse (the TUF targets,
//! verified against the repository's metadata) is the caller's business; a
//! namespace document read from a target goes through
//! [`NamespaceTrust::from_target`], which also refuses a document published
//! under another namespace's path.
//!
//! The rules of the documents' fields are also validating constructors
//! ([`Label::parse`], [`Scopes::new`], [`Window::new`], [`TrustedKeys::new`],
//! [`check_key`] for one key object)
//! so that the admin API refuses a value with the same message a published
//! document would get; a refusal is an [`Invalid`] naming the part refused.
//!
//! [`KeyStanding`] summarises how a listed key stands at a time (revoked,
//! expired, expiring soon) for listings.
//!
//! [`TrustSet`] indexes a set of documents once and then decides quickly with
//! [`TrustSet::decide`], returning a [`Decision`]: trusted by a namespace and
//! a [`TrustRule`], or untrusted for a [`Reason`] whose `Display` says what to
//! do about it. The namespace that owns an artifact is chosen from the scopes
//! of [`Namespaces`] alone; a namespace listed there without a trust document
//! owns its artifacts but trusts no one for them
//! ([`Reason::NoTrustDocument`]), and a trust document for a namespace not
//! listed there owns nothing ([`TrustSet::unlisted_documents`]).
//! `docs/trust-model.md` describes the documents and the decision for users.
//!
//! Not here: fetching the documents, verifying the signature over an
//! artifact (the caller does that with the key or the leaf certificate and
//! passes the signer in), and following peer redirects (the client does).
//!
//! Tests: `cargo test -p keyshare-policy --lib trust` and
//! `cargo test -p keyshare-policy --test 'trust_*'`.

mod bins;
mod check;
mod decide;
mod format;
mod namespace;
mod namespaces;
mod peers;
mod revocations;
mod standing;
mod tsas;
mod x509;

pub use crate::hash::Sha256Hex;

pub use bins::{
    bin_bits_for_count, namespace_bins, namespace_bins_of, shard_layout, BIN_BITS,
    NAMESPACE_BIN_BITS, NAMESPACE_BIN_PREFIX, SHARD_BITS,
};
pub use check::{Invalid, Label, Scopes, Window};
pub use decide::{
    Counted, Decision, KeyRef, Listed, Owner, Reason, SignerRef, TrustRule, TrustSet,
};
pub use format::{NamespacesFormat, PeersFormat, RevocationsFormat, TrustFormat, TsasFormat};
pub use namespace::{
    check_key, NamespaceName, NamespaceTrust, Principal, SubDelegation, TrustedKey, TrustedKeys,
};
pub use namespaces::{
    is_index_path, namespace_bin, namespace_shard, shard_path, NamespaceEntry, Namespaces,
};
pub use peers::{Peer, PeerUrl, Peers, PinnedRoot};
pub use revocations::{Revocation, Revocations, RevokedSubject};
pub use standing::{KeyRevocation, KeyStanding, KeyState, RevokedBy};
pub(crate) use tsas::AnchorKind;
pub use tsas::{
    check_tsa_certificate, TrustedTsa, Tsas, ID_KP_TIME_STAMPING, MAX_TSAS, MAX_TSAS_DOCUMENT,
    MAX_TSA_CERT_PEM, MAX_TSA_DESCRIPTION,
};
pub use x509::{CaCert, SubjectAttr, SubjectName, X509Identity};

/// Target path of the namespaces document (which namespaces exist, what each owns).
pub const NAMESPACES_PATH: &str = "org/namespaces.json";
/// Directory of the namespace index shards: `org/namespaces/<shard>.json`.
pub const NAMESPACES_SHARD_DIR: &str = "org/namespaces/";
/// Target path of the revocations document.
pub const REVOCATIONS_PATH: &str = "org/revocations.json";
/// Target path of the peers document.
pub const PEERS_PATH: &str = "org/peers.json";
/// Target path of the trusted timestamp authorities document.
pub const TSAS_PATH: &str = "org/tsas.json";
