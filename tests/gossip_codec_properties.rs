//! The membership and gossip codecs: every frame round-trips, and arbitrary bytes are
//! rejected with a typed error or decoded, never a panic; a decoded frame re-encodes
//! to the same bytes. The protocol state machines also take arbitrary frames.

use bhsync::gossip::{Gossip, GossipConfig, GossipMessage, MessageId};
use bhsync::membership::{MemberState, Message, Swim, SwimConfig, Update};
use bhsync::sansio::SeededRng;
use bhsync::state::NodeId;
use proptest::prelude::*;

fn node_id() -> impl Strategy<Value = NodeId> + Clone {
    any::<[u8; 32]>().prop_map(NodeId)
}

fn update() -> impl Strategy<Value = Update> + Clone {
    (node_id(), any::<u64>(), 0u8..4, proptest::option::of(node_id())).prop_map(|(node, incarnation, state, from)| {
        let state = [MemberState::Alive, MemberState::Suspect, MemberState::Dead, MemberState::Left][state as usize];
        Update { node, incarnation, state, from }
    })
}

fn swim_message() -> impl Strategy<Value = Message> {
    let updates = proptest::collection::vec(update(), 0..20);
    prop_oneof![
        (any::<u64>(), updates.clone()).prop_map(|(seq, updates)| Message::Ping { seq, updates }),
        (any::<u64>(), updates.clone()).prop_map(|(seq, updates)| Message::Ack { seq, updates }),
        (any::<u64>(), node_id(), updates.clone()).prop_map(|(seq, target, updates)| Message::PingReq {
            seq,
            target,
            updates
        }),
        (any::<bool>(), updates).prop_map(|(reply_wanted, updates)| Message::Sync { reply_wanted, updates }),
    ]
}

fn gossip_message() -> impl Strategy<Value = GossipMessage> {
    let id = any::<[u8; 32]>().prop_map(MessageId);
    let nodes = proptest::collection::vec(node_id(), 0..10);
    prop_oneof![
        Just(GossipMessage::Join),
        (node_id(), any::<u8>()).prop_map(|(joiner, ttl)| GossipMessage::ForwardJoin { joiner, ttl }),
        any::<bool>().prop_map(|high_priority| GossipMessage::Neighbor { high_priority }),
        any::<bool>().prop_map(|accepted| GossipMessage::NeighborReply { accepted }),
        Just(GossipMessage::Disconnect),
        (node_id(), any::<u8>(), nodes.clone()).prop_map(|(origin, ttl, nodes)| GossipMessage::Shuffle {
            origin,
            ttl,
            nodes
        }),
        nodes.prop_map(|nodes| GossipMessage::ShuffleReply { nodes }),
        Just(GossipMessage::KeepAlive),
        Just(GossipMessage::KeepAliveAck),
        (id.clone(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(id, hops, payload)| GossipMessage::Gossip { id, hops, payload }),
        proptest::collection::vec((id.clone(), any::<u32>()), 0..10)
            .prop_map(|entries| GossipMessage::IHave { entries }),
        proptest::collection::vec(id, 0..10).prop_map(|ids| GossipMessage::Graft { ids }),
        Just(GossipMessage::Prune),
    ]
}

proptest! {
    #[test]
    fn membership_frames_round_trip(message in swim_message()) {
        prop_assert_eq!(Message::decode(&message.to_bytes()), Ok(message));
    }

    #[test]
    fn gossip_frames_round_trip(message in gossip_message()) {
        prop_assert_eq!(GossipMessage::decode(&message.to_bytes()), Ok(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_frames_are_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(message) = Message::decode(&bytes) {
            prop_assert_eq!(message.to_bytes(), bytes.clone());
        }
        if let Ok(message) = GossipMessage::decode(&bytes) {
            prop_assert_eq!(message.to_bytes(), bytes.clone());
        }
    }

    #[test]
    fn state_machines_take_arbitrary_frames(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..20)) {
        let me = NodeId([1; 32]);
        let peer = NodeId([2; 32]);
        let mut swim = Swim::new(SwimConfig::default(), me, 0, SeededRng::new(1), &[peer], 0);
        let mut gossip = Gossip::new(GossipConfig::for_size(100), me, SeededRng::new(2), 0);
        for (i, frame) in frames.iter().enumerate() {
            let mut tagged = frame.clone();
            if let Some(first) = tagged.first_mut() { *first = 1; } // Mostly the right version, to reach the bodies.
            swim.handle_message(i as u64, peer, &tagged);
            gossip.handle_message(i as u64, peer, &tagged);
            swim.handle_timeout(i as u64 * 100);
            gossip.handle_timeout(i as u64 * 100);
        }
        while swim.poll_transmit().is_some() {}
        while gossip.poll_transmit().is_some() {}
    }
}
