//! keyshare-client: the verifier library and the `keyshare` CLI.
//!
//! The HTTP transport, cache and CLI are not written yet. The TUF client
//! workflow they will drive is the sans-IO state machine in
//! [`keyshare_policy::client`].

pub use keyshare_policy::client;
