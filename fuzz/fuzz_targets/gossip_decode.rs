//! The gossip (HyParView and Plumtree) decoder on arbitrary bytes: never a panic; an
//! accepted frame is the only encoding of its value. Then the same bytes are fed to a
//! gossip node, which must not panic either.
#![no_main]

use bhsync::gossip::{Gossip, GossipConfig, GossipMessage};
use bhsync::sansio::SeededRng;
use bhsync::state::NodeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = GossipMessage::decode(data) {
        assert_eq!(message.to_bytes(), data);
    }
    let mut node = Gossip::new(GossipConfig::for_size(100), NodeId([1; 32]), SeededRng::new(1), 0);
    node.handle_message(1, NodeId([2; 32]), data);
    node.handle_timeout(1_000);
});
