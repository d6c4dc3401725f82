//! The errors of the trust core.
//!
//! Every variant names the role or target it is about, so a caller can print
//! one line a person can act on. Variants map one-to-one to the attacks and
//! malformations the TUF specification tells a client to detect.

use crate::ids::{KeyId, RoleName};

/// Everything that can go wrong while parsing, verifying or building metadata.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not the JSON document they should be; `path` is the
    /// JSON path of the offending field where one is known.
    #[error("{what}: malformed at `{path}`: {message}")]
    Malformed {
        /// Which document (role name, target path, …).
        what: String,
        /// JSON path of the offending field (`.` for the document itself).
        path: String,
        /// The parser's message.
        message: String,
    },

    /// The document's `_type` is not the role type it was fetched as.
    #[error("{role}: expected metadata of type `{expected}`, got `{found}`")]
    WrongType {
        /// Role the bytes were fetched for.
        role: RoleName,
        /// Expected `_type`.
        expected: &'static str,
        /// `_type` found.
        found: String,
    },

    /// More bytes than the configured limit for this document: refused before parsing.
    #[error("{what}: {length} bytes is over the {limit} byte limit")]
    Oversized {
        /// Which document.
        what: String,
        /// Bytes received (at least).
        length: u64,
        /// The limit in force.
        limit: u64,
    },

    /// A signature by a key authorised for the role does not verify.
    #[error("{role}: signature by key {keyid} does not verify")]
    BadSignature {
        /// Role whose metadata carries the signature.
        role: RoleName,
        /// Key id of the signature that failed.
        keyid: KeyId,
    },

    /// The metadata lists two signatures under one key id (python-tuf and
    /// go-tuf refuse this too): malformed, whatever the signatures are.
    #[error("{role}: key {keyid} has more than one signature")]
    DuplicateSignature {
        /// Role whose metadata carries the signatures.
        role: RoleName,
        /// The key id listed twice.
        keyid: KeyId,
    },

    /// Fewer distinct authorised keys signed than the role's threshold.
    #[error("{role}: {valid} valid signature(s) from distinct authorised keys, threshold is {threshold}")]
    ThresholdNotMet {
        /// Role whose metadata is under-signed.
        role: RoleName,
        /// Distinct authorised keys with a valid signature: distinct key
        /// material, however many ids list the same key.
        valid: u32,
        /// The role's threshold.
        threshold: u32,
    },

    /// A role's version went backwards (or, for a listed role, disappeared).
    #[error("{role}: rollback: trusted version {trusted}, received version {received}")]
    Rollback {
        /// The role.
        role: RoleName,
        /// Version already trusted.
        trusted: u64,
        /// Version received (0 when the role vanished from snapshot).
        received: u64,
    },

    /// A new root is not exactly the next version of the trusted one.
    #[error("root: expected version {expected}, received version {received}")]
    RootVersion {
        /// `trusted + 1`.
        expected: u64,
        /// What the file carries.
        received: u64,
    },

    /// The role's metadata has expired (freeze attack or stale repository).
    #[error("{role}: expired at {expires}")]
    Expired {
        /// The role.
        role: RoleName,
        /// Its `expires` value, RFC 3339.
        expires: String,
    },

    /// Mix-and-match: a role's version differs from what snapshot or timestamp lists.
    #[error("{role}: version {received} does not match version {expected} listed by {listed_by}")]
    VersionMismatch {
        /// The role.
        role: RoleName,
        /// Which role lists it (`snapshot` or `timestamp`).
        listed_by: &'static str,
        /// Version listed.
        expected: u64,
        /// Version received.
        received: u64,
    },

    /// Bytes whose hash differs from the one listed for them.
    #[error("{what}: {algorithm} hash does not match the one listed")]
    HashMismatch {
        /// Role or target path.
        what: String,
        /// Hash algorithm (`sha256`, `sha512`).
        algorithm: String,
    },

    /// Bytes whose length differs from the one listed for them.
    #[error("{what}: length {received} does not match listed length {expected}")]
    LengthMismatch {
        /// Role or target path.
        what: String,
        /// Length listed.
        expected: u64,
        /// Length received.
        received: u64,
    },

    /// None of the listed hash algorithms is one keyshare computes.
    #[error("{what}: no supported hash algorithm among {algorithms:?}")]
    NoSupportedHash {
        /// Role or target path.
        what: String,
        /// Algorithms listed.
        algorithms: Vec<String>,
    },

    /// A role is needed that the trusted metadata does not describe.
    #[error("{role}: {message}")]
    MissingRole {
        /// The role.
        role: RoleName,
        /// What is missing.
        message: String,
    },

    /// A key entry cannot be used (unknown type or scheme, bad key material).
    #[error("key {keyid}: {message}")]
    BadKey {
        /// Key id of the offending key.
        keyid: KeyId,
        /// What is wrong.
        message: String,
    },

    /// A workflow step was called out of the specification's order.
    #[error("out of order: {0}")]
    Order(String),

    /// Building or signing metadata failed.
    #[error("signing failed: {0}")]
    Sign(String),

    /// A metadata file the client workflow needs is not in the repository:
    /// the transport answered "not found" for a remote fetch that has no
    /// fallback (anything but the next root version).
    #[error("{role}: `{file}` is not available from the repository")]
    Unavailable {
        /// The role the file holds.
        role: RoleName,
        /// The remote file name that was asked for (e.g. `7.snapshot.json`).
        file: String,
    },
}

/// Result alias for the trust core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources on one line (`outer: cause: root cause`), each
/// source left out when the line already says it: for messages that end up
/// as one readable line (CLI errors, logs).
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Outer(String, #[source] std::io::Error);

    #[test]
    fn one_line_names_each_source_once() {
        let root = || std::io::Error::other("connection refused");
        assert_eq!(
            one_line(&Outer("GET https://issuer/jwks".into(), root())),
            "GET https://issuer/jwks: connection refused"
        );
        // A source the message already quotes is not repeated.
        assert_eq!(
            one_line(&Outer("cannot connect: connection refused".into(), root())),
            "cannot connect: connection refused"
        );
    }
}
