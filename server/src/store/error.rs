//! The store's errors.
//!
//! Every variant names what it is about (a kind and a name, a field, a
//! table), so the HTTP layer can turn it into a 4xx that says what to fix.
//! No variant ever carries a token secret: secrets are hashed before any
//! query and never passed to an error.

/// What can go wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound {
        /// What kind of thing (`namespace`, `key`, `token`, ...).
        kind: &'static str,
        /// Its name or id.
        name: String,
    },

    /// The thing to create already exists.
    #[error("{kind} `{name}` already exists")]
    AlreadyExists {
        /// What kind of thing.
        kind: &'static str,
        /// Its name or id.
        name: String,
    },

    /// The key or certificate to list is revoked. Revoked material is
    /// never listed again, under any id, anywhere.
    #[error(
        "{what} is revoked (since {revoked_at}: {reason}); a revoked key or certificate \
         cannot be listed again, under any id, in any namespace"
    )]
    Revoked {
        /// What was to be listed (`key team-b/b-release-2 (SPKI SHA-256 …)`).
        what: String,
        /// When the revocation took effect, RFC 3339.
        revoked_at: String,
        /// Its reason.
        reason: String,
    },

    /// The key or certificate to list carries key material the namespace
    /// itself revoked. It may be listed in other namespaces, never again in
    /// this one.
    #[error(
        "{what} is revoked in namespace `{namespace}` (since {since}: {reason}); a key the \
         namespace revoked cannot be listed in it again, under any id",
        since = super::time_text(*.revoked_at)
    )]
    RevokedInNamespace {
        /// What was to be listed.
        what: String,
        /// The namespace that revoked it.
        namespace: String,
        /// When the revocation took effect.
        revoked_at: time::OffsetDateTime,
        /// Its reason.
        reason: String,
    },

    /// The namespace's new scopes overlap other namespaces' scopes, and the
    /// change did not allow that.
    #[error(
        "scopes of namespace `{namespace}` overlap scopes of {overlaps}; the more specific \
         scope owns the names both match, so this would move artifact names between \
         namespaces: to do it anyway, allow the overlap explicitly"
    )]
    ScopeOverlap {
        /// The namespace being created or changed.
        namespace: String,
        /// What it overlaps (boxed: it is large, and errors travel far).
        overlaps: Box<super::ScopeOverlaps>,
    },

    /// A value given to the store is not acceptable.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field (or argument) at fault.
        field: String,
        /// Why.
        message: String,
    },

    /// The database was written by a newer keyshare-server.
    #[error(
        "database schema version {found} is newer than version {supported}, the newest this \
         keyshare-server knows; run a keyshare-server at least as new as the one that wrote it"
    )]
    SchemaTooNew {
        /// Schema version recorded in the database.
        found: i64,
        /// Newest schema version this build can use.
        supported: i64,
    },

    /// The database cannot be used as a keyshare store (bad schema bookkeeping,
    /// a journal mode that could not be set, ...).
    #[error("database schema: {message}")]
    Schema {
        /// What is wrong.
        message: String,
    },

    /// A row holds something this build cannot read back (edited by hand,
    /// or written by a buggy build).
    #[error("corrupt row in table `{table}`: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What could not be read.
        message: String,
    },

    /// The audit log's hash chain is broken at record `seq`: that record, or
    /// one before it, was edited, deleted or moved.
    #[error("audit log broken at sequence number {seq}: {reason}")]
    AuditChain {
        /// The first sequence number that does not verify.
        seq: i64,
        /// What does not match.
        reason: String,
    },

    /// The audit log's chain verifies, but contradicts a head published
    /// elsewhere (in a signed timestamp): a record was rewritten and the
    /// later hashes recomputed, or records were cut off the end.
    #[error("{0}")]
    AuditHead(keyshare_policy::audit::ChainError),

    /// A trust document built from the store does not pass the policy
    /// parser (for example a key listed twice under two ids).
    #[error("document {path} built from the store is not valid: {source}")]
    Document {
        /// Target path of the document.
        path: String,
        /// The policy parser's error.
        source: keyshare_policy::Error,
    },

    /// The operating system's random generator failed.
    #[error("random generator: {0}")]
    Random(#[from] openssl::error::ErrorStack),

    /// The database file could not be created or its mode set.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The PostgreSQL database could not be reached (`database` is its URL
    /// without the password).
    #[error(
        "cannot connect to the PostgreSQL store {database}: {}",
        with_causes(source)
    )]
    Connect {
        /// The database's URL, without its password.
        database: String,
        /// Why.
        source: postgres::Error,
    },

    /// PostgreSQL failed (the database URL is never part of the message).
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
}

/// An error and its causes, on one line (`a: b: c`).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text.replace('\n', " ")
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub(crate) fn exists(kind: &'static str, name: impl Into<String>) -> Self {
        Self::AlreadyExists {
            kind,
            name: name.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True when the error is a uniqueness (primary key or UNIQUE) violation.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            Self::Sqlite(e) => {
                matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::ConstraintViolation)
                ) && matches!(
                    e,
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                )
            }
            Self::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// True when the database could not be reached or the connection was
    /// lost (PostgreSQL: not connected, connection exceptions, the server
    /// shutting down or not accepting connections, the database gone): the
    /// store is unavailable for now, the request itself was not at fault.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Postgres(e) => {
                e.is_closed()
                    || match e.code() {
                        Some(code) => {
                            let code = code.code();
                            code.starts_with("08")
                                || matches!(code, "57P01" | "57P02" | "57P03" | "3D000")
                        }
                        // No SQLSTATE: an IO error on the connection is
                        // one; a conversion error is not.
                        None => std::error::Error::source(e)
                            .is_some_and(|cause| cause.is::<std::io::Error>()),
                    }
            }
            _ => false,
        }
    }

    pub(crate) fn corrupt(table: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            table,
            message: message.to_string(),
        }
    }
}
