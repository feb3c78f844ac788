//! The log's decoders on arbitrary bytes: a record, a whole segment scan and a
//! snapshot file never panic; an accepted record re-encodes to the same bytes, and a
//! scan's verified prefix never exceeds the input.
#![no_main]

use bhsync::storage::record::{decode_record, encode_record};
use bhsync::storage::scan::scan_segment;
use bhsync::storage::snapshot::{decode_snapshot, encode_snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode_record(data, 1 << 20) {
        let mut again = Vec::new();
        encode_record(&mut again, record.header.seq, &record.header.prev_hash, record.payload);
        assert_eq!(&again[..], &data[..record.encoded_len()]);
    }
    let scan = scan_segment(data, 1, None, 1 << 20);
    assert!(scan.valid_len as usize <= data.len());
    if let Ok(snapshot) = decode_snapshot(data) {
        assert_eq!(encode_snapshot(&snapshot), data);
    }
});
