//! The address book's message decoder on arbitrary bytes: never a panic, never more
//! than `SAMPLE_MAX` entries, and canonical (an accepted encoding is the only encoding
//! of its entries).
#![no_main]

use bhsync::node::roles::addresses::{decode, encode, SAMPLE_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode(data) {
        assert!(entries.len() <= SAMPLE_MAX);
        assert_eq!(encode(&entries), data);
    }
});
