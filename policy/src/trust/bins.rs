//! The succinct hashed bins (TAP 15) that top-level `targets` delegates
//! the namespaces' trust documents to: their size and their names, and the
//! index shards, which are always 256 whatever the bin count. Namespace
//! names may not look like a bin's name of any supported size
//! ([`super::NamespaceName::parse`]).
//!
//! keyshare-server lists `namespaces/<ns>/trust.json` directly in the bin
//! its path hashes to; a repository chooses its bin count at `init`
//! ([`BIN_BITS`]: 256, 1,024 or 4,096 bins) and records it as the
//! `bit_length` of the published `succinct_roles`.

use std::num::NonZeroU32;

use crate::ids::KeyId;
use crate::metadata::{SuccinctRoles, Unrecognized};

/// Bits of SHA-256 that choose a namespace's bin by default: 256 bins.
pub const NAMESPACE_BIN_BITS: u32 = 8;
/// The bin sizes a keyshare repository may use: 8, 10 or 12 bits (256,
/// 1,024 or 4,096 bins, named `bins-00` … `bins-ff`, `bins-000` …
/// `bins-3ff`, `bins-000` … `bins-fff`).
pub const BIN_BITS: [u32; 3] = [8, 10, 12];
/// Name prefix of the bin roles: `bins-00` … `bins-ff`.
pub const NAMESPACE_BIN_PREFIX: &str = "bins";
/// Bits of SHA-256 of a trust document's path that choose its index
/// shard: 256 shards `org/namespaces/00.json` … `ff.json`, whatever the
/// bin count, so top-level `targets` does not grow with more bins.
pub const SHARD_BITS: u32 = 8;

/// The succinct hashed bins (TAP 15) a keyshare repository delegates to
/// from top-level `targets` by default: [`NAMESPACE_BIN_BITS`] bits, roles
/// named `bins-<xx>`, each signed by `threshold` of `keyids`.
pub fn namespace_bins(keyids: Vec<KeyId>, threshold: NonZeroU32) -> SuccinctRoles {
    namespace_bins_of(NAMESPACE_BIN_BITS, keyids, threshold)
}

/// The same with `bit_length` bits (one of [`BIN_BITS`] for a keyshare
/// repository): `2^bit_length` roles named `bins-<hex>`, the hex
/// `ceil(bit_length / 4)` digits wide.
pub fn namespace_bins_of(
    bit_length: u32,
    keyids: Vec<KeyId>,
    threshold: NonZeroU32,
) -> SuccinctRoles {
    SuccinctRoles {
        keyids,
        threshold,
        bit_length,
        name_prefix: NAMESPACE_BIN_PREFIX.into(),
        unrecognized: Unrecognized::new(),
    }
}

/// The bin count, by `bit_length`, for people: `bins` 256 ↔ 8 bits.
/// `None` for a count keyshare does not publish.
pub fn bin_bits_for_count(count: u64) -> Option<u32> {
    BIN_BITS.into_iter().find(|bits| 1u64 << bits == count)
}

/// The layout of the index shards: [`SHARD_BITS`] bits of SHA-256 of the
/// trust document's path (the same numbers as 256 bins would give).
pub fn shard_layout() -> SuccinctRoles {
    namespace_bins_of(SHARD_BITS, Vec::new(), NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bin_names_are_as_wide_as_tap_15_says() {
        let wide = |bits| {
            let b = namespace_bins_of(bits, vec![], NonZeroU32::MIN);
            (
                b.bin_count(),
                b.bin_name(0).as_str().to_owned(),
                b.bin_name(b.bin_count() - 1).as_str().to_owned(),
            )
        };
        assert_eq!(wide(8), (256, "bins-00".into(), "bins-ff".into()));
        assert_eq!(wide(10), (1024, "bins-000".into(), "bins-3ff".into()));
        assert_eq!(wide(12), (4096, "bins-000".into(), "bins-fff".into()));
        assert_eq!(bin_bits_for_count(1024), Some(10));
        assert_eq!(bin_bits_for_count(512), None);
    }

    #[test]
    fn shards_are_the_first_eight_bits_whatever_the_bin_count() {
        let path = "namespaces/team-a/trust.json";
        let shard = shard_layout().bin_for_target(path);
        for bits in BIN_BITS {
            let bin = namespace_bins_of(bits, vec![], NonZeroU32::MIN).bin_for_target(path);
            assert_eq!(bin >> (bits - SHARD_BITS), shard, "{bits}");
        }
    }
}
