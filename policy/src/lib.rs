//! keyshare-policy: the pure trust core of keyshare.
//!
//! Everything that decides what is authentic and fresh lives here, and none
//! of it touches a socket, a file or a clock: bytes, parsed values and the
//! current time come in as parameters, decisions and typed errors go out.
//! The server, the client and the air-gap importer all share it.
//!
//! * [`ids`]: key ids and role names, the ground floor every other
//!   module names things by (it imports nothing from the crate).
//! * [`metadata`]: the TUF 1.0 metadata model (root, targets with
//!   delegations and succinct hashed bins, snapshot, timestamp), keeping
//!   unknown fields so signed bytes survive a round trip.
//! * [`cjson`]: OLPC canonical JSON, the form TUF signs.
//! * [`keys`] and [`verify`]: Ed25519, ECDSA P-256 and RSA-PSS keys,
//!   verified with OpenSSL; thresholds count distinct key ids.
//!   [`keys::Key::from_spki_pem`] is the workspace's one PEM → TUF key
//!   conversion.
//! * [`datetime`]: TUF `expires`, RFC 3339 text ([`datetime::rfc3339`],
//!   [`datetime::parse_rfc3339`]) and durations.
//! * [`layout`]: consistent-snapshot file names, for writers and readers.
//! * [`sign`]: the [`sign::Signer`] trait that key backends implement.
//! * [`client`]: the TUF client workflow as a sans-IO state machine.
//! * [`repo`]: the repository-side builder that creates and signs metadata.
//! * [`trust`]: the trust documents keyshare distributes and the trust
//!   decision; the documents' field rules as validating constructors
//!   ([`trust::Label`], [`trust::Scopes`], [`trust::Window`],
//!   [`trust::TrustedKeys`]) that the admin API applies too.
//! * [`pattern`]: glob matching for delegation paths and artifact names.
//! * [`api`]: the wire vocabulary of the server's HTTP API (`/api/v1/`):
//!   request and answer types the server and the client share, and the
//!   CI proof message ([`api::ci::proof_message`]).
//! * [`audit`]: the audit log's hash chain and the chain heads published in
//!   every timestamp, and the check of a log against them.
//! * [`timestamp`]: trusted time, RFC 3161 timestamp tokens over
//!   signatures verified against `org/tsas.json` ([`trust::Tsas`]).
//! * [`evidence`]: delegation evidence, a namespace's earlier trust
//!   document with the signed bin that listed it, so a swept CI key's
//!   timestamped signature still verifies.
//! * [`outbound`]: which URLs keyshare may send requests to on someone
//!   else's say-so (peers, OIDC issuers): https to public hosts.
//!
//! Not here: HTTP, storage, PKCS#11, bundles (the other crates of the workspace).
//!
//! Tests: `cargo test -p keyshare-policy`; the python-tuf interop tests need
//! `KEYSHARE_PYTHON` pointing at a Python with `tuf` installed, which the
//! workspace's `scripts/test` sets up.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod cjson;
pub mod client;
pub mod datetime;
pub mod error;
pub mod evidence;
pub mod hash;
pub mod ids;
pub mod keys;
pub mod layout;
pub mod metadata;
pub mod outbound;
pub mod pattern;
pub mod repo;
pub mod sign;
pub mod timestamp;
pub mod trust;
pub mod verify;

pub use error::{Error, Result};
