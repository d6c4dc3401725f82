//! Untrusted bundle bytes: reading never panics and never reserves memory
//! for what the bytes only claim; whatever reads holds exactly the entries
//! its manifest lists, each matching its length and SHA-256 when read back;
//! verification against a pinned root then refuses it without a panic (the
//! fuzzer cannot forge the signatures).
//!
//! Run: `cargo +nightly fuzz run bundle_read` from `fuzz/`.
#![no_main]

use std::sync::Arc;

use keyshare_airgap::format::Reader;
use keyshare_airgap::{open_bundle, Anchor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let mut sink = std::io::sink();
    let mut progress = |_, _| {};
    let Ok(reader) = Reader::open(&mut input, &mut sink, &mut progress) else {
        return;
    };
    let Ok((manifest, layout)) = reader.finish() else {
        return;
    };
    let source = data.to_vec();
    let mut root = None;
    for entry in &manifest.signed.entries {
        let bytes = layout
            .read(&manifest.signed, &source, &entry.path)
            .expect("an entry that streamed reads back")
            .expect("every listed entry is found");
        assert_eq!(bytes.len() as u64, entry.length);
        assert_eq!(keyshare_policy::hash::sha256_hex(&bytes), entry.sha256);
        if entry.path == "metadata/1.root.json" {
            root = Some(bytes);
        }
    }
    if let Some(root) = root {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let _ = open_bundle(
            Arc::new(source),
            Anchor {
                pinned_root: &root,
                previous: None,
            },
            now,
            &mut |_, _| {},
        );
    }
});
