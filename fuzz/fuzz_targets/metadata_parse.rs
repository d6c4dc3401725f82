//! Untrusted metadata bytes: parsing never panics, and whatever parses
//! re-serialises to the canonical bytes it was parsed from.
//!
//! Run: `cargo +nightly fuzz run metadata_parse` from `fuzz/`.
#![no_main]

use keyshare_policy::cjson::to_canonical;
use keyshare_policy::metadata::{Envelope, Role, Root, Snapshot, Targets, Timestamp};
use libfuzzer_sys::fuzz_target;

fn check<T: Role>(data: &[u8]) {
    if let Ok(env) = Envelope::<T>::parse(T::TYPE, data) {
        let again = to_canonical(&env.signed, T::TYPE).expect("parsed metadata re-serialises");
        assert_eq!(again, env.canonical, "round trip changed the signed bytes");
    }
}

fuzz_target!(|data: &[u8]| {
    check::<Root>(data);
    check::<Targets>(data);
    check::<Snapshot>(data);
    check::<Timestamp>(data);
});
