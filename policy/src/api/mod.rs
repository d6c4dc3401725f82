//! The wire vocabulary of keyshare-server's HTTP API under `/api/v1/`:
//! the bodies and queries of requests and the answers, as serde types, so
//! the server (which parses them) and the client (which writes them) share
//! one definition and a change to the wire is a compile error on both
//! sides. Types only: no IO, no HTTP.
//!
//! * [`ci`]: CI issuance (`/api/v1/ci/...`) and [`ci::proof_message`],
//!   the bytes a job signs to prove it holds its key.
//! * [`admin`]: the admin API, by resource (namespaces, keys,
//!   revocations, peers, roots, tokens, audit).
//!
//! A request type takes its leaf values as type parameters whose defaults
//! are the strict types the server parses into ([`NamespaceName`],
//! [`ArtifactPattern`], [`Key`], [`Rfc3339Time`], ...); the client fills them
//! with the text a person typed (`String`, a JSON value) and leaves the
//! checks, and their messages, to the server. Requests refuse unknown
//! fields where the server always has.
//!
//! [`NamespaceName`]: crate::trust::NamespaceName
//! [`ArtifactPattern`]: crate::pattern::ArtifactPattern
//! [`Key`]: crate::keys::Key
//! [`Rfc3339Time`]: crate::datetime::Rfc3339Time

pub mod admin;
pub mod ci;
#[cfg(feature = "openapi")]
mod schema;

/// For `skip_serializing_if`: a flag that is off is left out.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
