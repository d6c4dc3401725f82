//! Untrusted trust-document bytes: parsing never panics, and whatever parses
//! writes back to bytes that parse to the same document.
//!
//! Run: `cargo +nightly fuzz run trust_parse` from `fuzz/`.
#![no_main]

use keyshare_policy::trust::{NamespaceTrust, Namespaces, Peers, Revocations};
use libfuzzer_sys::fuzz_target;

macro_rules! round_trip {
    ($ty:ty, $data:expr) => {
        if let Ok(doc) = <$ty>::from_slice($data) {
            let bytes = doc.to_vec().expect("a parsed document writes back");
            let again = <$ty>::from_slice(&bytes).expect("written document parses");
            assert_eq!(again, doc, "round trip changed the document");
        }
    };
}

fuzz_target!(|data: &[u8]| {
    round_trip!(NamespaceTrust, data);
    round_trip!(Namespaces, data);
    round_trip!(Revocations, data);
    round_trip!(Peers, data);
});
