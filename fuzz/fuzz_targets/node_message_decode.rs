//! Node messages from untrusted bytes: decoding never panics, never allocates past the
//! cap, and a decoded message re-encodes to bytes that decode to the same message.
#![no_main]

use bhsync::node::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = message::decode(data, 1 << 20) {
        let again = message::encode(&decoded);
        let reread = message::decode(&again, 1 << 20).expect("an encoded message decodes");
        assert_eq!(message::encode(&reread), again);
        if let message::NodeMessage::Push { batch, .. } | message::NodeMessage::Bulk { batch, .. } = &reread {
            assert_eq!(batch.entries().count(), batch.count);
        }
    }
});
