//! A node that lost its storage but kept its identity rejoins without its new counter
//! increments being absorbed by the slot its previous life filled (issue 16 item 7;
//! ADR 080's hazard): a node in memory is such a node at every start. It writes under a
//! slot of its new storage epoch (`node::epoch`), so the counter counts both lives.
//!
//! Reproduce with `cargo test --test engine_rejoin -- --nocapture`.

use std::time::{Duration, Instant};

use bhsync::node::{Node, NodeConfig};
use bhsync::state::{CategorySpec, MergeRule};

fn config(index: u8, peers: Vec<std::net::SocketAddr>) -> NodeConfig {
    let mut secret = [0u8; 32];
    secret[1] = index + 1; // not byte 0: X25519 clamps its low bits
    secret[31] = 0x7E;
    NodeConfig {
        identity_secret: Some(secret),
        peers,
        anti_entropy_interval: Duration::from_millis(200),
        categories: vec![("counters".into(), CategorySpec { merge: MergeRule::Crdt, ..CategorySpec::default() })],
        ..NodeConfig::default()
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_node_that_lost_its_state_counts_its_new_increments_beside_its_old_ones() {
    let keeper = Node::open(config(0, Vec::new())).expect("keeper opens");
    let first_life = Node::open(config(1, vec![keeper.local_addr()])).expect("opens");
    first_life.counter_add("counters", b"visits", 5).expect("add");
    wait_for("the keeper holds the first life's 5", || keeper.counter_get("counters", b"visits").expect("get") == 5);
    let id = first_life.id();
    first_life.close().expect("close");

    // Same identity, no state: a new life.
    let second_life = Node::open(config(1, vec![keeper.local_addr()])).expect("reopens");
    assert_eq!(second_life.id(), id, "the identity is kept");
    second_life.counter_add("counters", b"visits", 1).expect("add");
    wait_for("both count both lives: 5 + 1", || {
        keeper.counter_get("counters", b"visits").expect("get") == 6
            && second_life.counter_get("counters", b"visits").expect("get") == 6
    });
}
