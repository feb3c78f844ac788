//! The SWIM decoder on arbitrary bytes: never a panic; an accepted frame is the only
//! encoding of its value. Then the same bytes are fed to a SWIM member.
#![no_main]

use bhsync::membership::{Message, Swim, SwimConfig};
use bhsync::sansio::SeededRng;
use bhsync::state::NodeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        assert_eq!(message.to_bytes(), data);
    }
    let peer = NodeId([2; 32]);
    let mut swim = Swim::new(SwimConfig::default(), NodeId([1; 32]), 0, SeededRng::new(1), &[peer], 0);
    swim.handle_message(1, peer, data);
    swim.handle_timeout(1_000);
});
