//! The errors of every backend in this crate.

use std::path::PathBuf;

/// What went wrong while loading or using a signing key.
///
/// Every message is one line and never contains a PIN, a passphrase or key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PKCS#11 URI that cannot be parsed or lacks what the operation needs.
    #[error("bad PKCS#11 URI: {0}")]
    BadUri(String),
    /// The PKCS#11 module named by `module-path` does not exist.
    #[error("PKCS#11 module {} does not exist", path.display())]
    ModuleNotFound {
        /// The path that was looked at.
        path: PathBuf,
    },
    /// The PKCS#11 module exists but cannot be loaded or initialised.
    #[error("PKCS#11 module {} cannot be loaded: {message}", path.display())]
    ModuleLoad {
        /// The module's path.
        path: PathBuf,
        /// Why, as the loader or `C_Initialize` said.
        message: String,
    },
    /// No token with this label (or slot id) is present.
    #[error("no PKCS#11 token {token} is present")]
    TokenNotFound {
        /// `label "..."` or `slot-id N`.
        token: String,
    },
    /// The token refused the PIN.
    #[error("wrong PIN for PKCS#11 token {token}")]
    WrongPin {
        /// The token label.
        token: String,
    },
    /// The token's user PIN is locked after too many wrong attempts.
    #[error("the user PIN of PKCS#11 token {token} is locked")]
    PinLocked {
        /// The token label.
        token: String,
    },
    /// No private key matches the URI's `object`/`id` in the token.
    #[error("no private key {key} in PKCS#11 token {token}")]
    KeyNotFound {
        /// The token label.
        token: String,
        /// `label "..."` and/or `id ...`.
        key: String,
    },
    /// More than one private key matches the URI.
    #[error("{count} private keys match {key} in PKCS#11 token {token}; add an id")]
    AmbiguousKey {
        /// The token label.
        token: String,
        /// What was looked for.
        key: String,
        /// How many matched.
        count: usize,
    },
    /// A key with this label already exists (key generation refuses to shadow it).
    #[error("a key labelled {label:?} already exists in PKCS#11 token {token}")]
    KeyExists {
        /// The token label.
        token: String,
        /// The key label.
        label: String,
    },
    /// The key type, curve or mechanism is not one keyshare can sign with,
    /// or not the one that was asked for.
    #[error("unsupported key or mechanism: {0}")]
    Unsupported(String),
    /// A PIN or passphrase could not be read from its source.
    #[error("cannot read PIN: {0}")]
    PinSource(String),
    /// A key file cannot be read, written or parsed.
    #[error("key file {}: {message}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The key file is encrypted and no passphrase was given.
    #[error("key file {} is encrypted: a passphrase is needed", path.display())]
    PassphraseRequired {
        /// The key file.
        path: PathBuf,
    },
    /// The passphrase does not decrypt the key file.
    #[error("wrong passphrase for key file {}", path.display())]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// Any other PKCS#11 failure, naming the call and the return value.
    #[error("PKCS#11 {operation} failed: {rv}")]
    Pkcs11 {
        /// What keyshare was doing (and the PKCS#11 function).
        operation: String,
        /// The return value or cryptoki error.
        rv: String,
    },
    /// An OpenSSL or key-encoding failure.
    #[error("{0}")]
    Crypto(String),
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
