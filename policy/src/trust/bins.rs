//! The succinct hashed bins (TAP 15) that top-level `targets` delegates
//! the namespaces to: their size and their names. Namespace names may not
//! look like a bin's name ([`super::NamespaceName::parse`]), and the index
//! is sharded along the same bins ([`super::namespace_bin`]).

use std::num::NonZeroU32;

use crate::ids::KeyId;
use crate::metadata::{SuccinctRoles, Unrecognized};

/// Bits of SHA-256 that choose a namespace's bin: 256 bins.
pub const NAMESPACE_BIN_BITS: u32 = 8;
/// Name prefix of the bin roles: `bins-00` … `bins-ff`.
pub const NAMESPACE_BIN_PREFIX: &str = "bins";

/// The succinct hashed bins (TAP 15) a keyshare repository delegates to
/// from top-level `targets`: [`NAMESPACE_BIN_BITS`] bits, roles named
/// `bins-<xx>`, each signed by `threshold` of `keyids`.
pub fn namespace_bins(keyids: Vec<KeyId>, threshold: NonZeroU32) -> SuccinctRoles {
    SuccinctRoles {
        keyids,
        threshold,
        bit_length: NAMESPACE_BIN_BITS,
        name_prefix: NAMESPACE_BIN_PREFIX.into(),
        unrecognized: Unrecognized::new(),
    }
}
