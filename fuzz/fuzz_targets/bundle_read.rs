//! Untrusted bundle bytes: reading never panics, and whatever reads holds
//! exactly the entries its manifest lists, each matching its length and
//! SHA-256; verification against a pinned root then refuses it without a
//! panic (the fuzzer cannot forge the signatures).
//!
//! Run: `cargo +nightly fuzz run bundle_read` from `fuzz/`.
#![no_main]

use keyshare_airgap::{read_bundle, verify, Anchor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = read_bundle(&mut &data[..], &mut |_| {}) else {
        return;
    };
    assert_eq!(raw.files.len(), raw.manifest.signed.entries.len());
    for entry in &raw.manifest.signed.entries {
        let bytes = &raw.files[&entry.path];
        assert_eq!(bytes.len() as u64, entry.length);
        assert_eq!(keyshare_policy::hash::sha256_hex(bytes), entry.sha256);
    }
    let root = raw.files.get("metadata/1.root.json").cloned();
    if let Some(root) = root {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let _ = verify(
            raw,
            Anchor {
                pinned_root: &root,
                previous: None,
            },
            now,
        );
    }
});
