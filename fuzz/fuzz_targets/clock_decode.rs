//! The clock decoders on arbitrary bytes: never a panic; version vectors are canonical
//! (an accepted encoding is the only encoding of its value).
#![no_main]

use bhsync::time::{HlcTimestamp, LamportTimestamp, VersionVector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(vector) = VersionVector::decode(data) {
        let mut encoded = Vec::new();
        vector.encode(&mut encoded);
        assert_eq!(encoded, data);
    }
    if let Ok(timestamp) = LamportTimestamp::decode(data) {
        let mut encoded = Vec::new();
        timestamp.encode(&mut encoded);
        assert_eq!(encoded, data);
    }
    if let Ok(timestamp) = HlcTimestamp::decode(data) {
        assert_eq!(timestamp.0.to_be_bytes(), data);
    }
});
