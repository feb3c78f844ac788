//! Reconciliation frames from untrusted bytes: decoding never panics, never allocates
//! past what the frame carries, and a decoded frame re-encodes to the same bytes.
#![no_main]

use bhsync::reconcile::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = message::decode(data, 1 << 20) {
        let mut again = Vec::new();
        frame.message.encode(frame.session, frame.seq, &mut again);
        let reread = message::decode(&again, 1 << 20).expect("an encoded frame decodes");
        assert_eq!(reread, frame);
    }
});
