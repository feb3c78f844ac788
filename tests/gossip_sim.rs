//! Plumtree over HyParView in the deterministic simulator, with fixed seeds, and the
//! original design's push gossip as the reference. A failure prints its seed and the
//! command that replays it.

use bhsync::sim::gossip_scenarios::{self as scenario, BroadcastRun};
use bhsync::sim::SimFailure;

fn ok<T>(result: Result<T, SimFailure>) -> T {
    result.unwrap_or_else(|failure| panic!("{failure}"))
}

fn small_run() -> BroadcastRun {
    BroadcastRun {
        node_count: 120,
        loss: 0.01,
        crash_fraction: 0.1,
        broadcasts: 40,
        broadcast_spacing_ms: 100,
        payload_len: 32,
    }
}

#[test]
fn every_broadcast_reaches_every_live_node_under_one_percent_loss() {
    for seed in [1, 2] {
        let report = ok(scenario::bhsync_broadcasts(seed, &small_run()));
        println!("seed {seed}: {report:?}");
        assert_eq!(report.full_delivery_share, 1.0, "seed {seed}");
        assert!(report.payload_per_node_per_broadcast_steady <= 1.5, "seed {seed}");
    }
}

#[test]
fn same_seed_gives_the_same_broadcast_trace() {
    let run = BroadcastRun { node_count: 50, broadcasts: 10, ..small_run() };
    let first = ok(scenario::bhsync_broadcasts(9, &run));
    let second = ok(scenario::bhsync_broadcasts(9, &run));
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first, second);
}

#[test]
fn original_design_misses_nodes_the_tree_reaches() {
    let report = ok(scenario::original_broadcasts(1, &small_run()));
    println!("{report:?}");
    assert!(report.full_delivery_share < 1.0);
}

#[test]
fn split_overlay_re_links_after_the_heal() {
    let report = ok(scenario::gossip_split_and_heal(3, 80, 20_000, 30_000, 10));
    println!("{report:?}");
    assert_eq!(report.full_delivery_share, 1.0);
}

#[test]
fn an_ihave_flood_is_rate_limited_counted_and_cannot_grow_memory_or_grafts() {
    use bhsync::gossip::plumtree::Plumtree;
    use bhsync::gossip::{GossipConfig, GossipMessage, MessageId};
    use bhsync::state::NodeId;
    let config = GossipConfig::default();
    let rate = config.ihave_rate_per_s as u64;
    let mut tree = Plumtree::new(config, NodeId([1; 32]));
    let flooder = NodeId([9; 32]);
    tree.neighbor_up(flooder);
    tree.handle(0, flooder, GossipMessage::Prune, &mut Vec::new()); // The flooder is a lazy peer.
    let mut out = Vec::new();
    let mut announced = 0u64;
    for batch in 0..200u64 {
        let entries = (0..1_000u64).map(|i| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(batch * 1_000 + i).to_le_bytes());
            (MessageId(id), 1)
        });
        announced += 1_000;
        tree.handle(batch, flooder, GossipMessage::IHave { entries: entries.collect() }, &mut out);
    }
    // 200,000 announcements within 200 ms: only one second's budget is taken, the rest counted.
    assert_eq!(tree.stats().ihave_rate_limited, announced - rate);
    for now in (0..60_000).step_by(100) {
        tree.handle_timeout(now, &mut out);
    }
    let grafts: usize = out.iter().filter_map(|(_, m)| if let GossipMessage::Graft { ids } = m { Some(ids.len()) } else { None }).sum();
    assert!(grafts as u64 <= rate * 8, "grafts bounded by accepted announcements times attempts: {grafts}");
}
