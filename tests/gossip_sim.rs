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
