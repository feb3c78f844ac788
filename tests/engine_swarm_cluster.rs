//! Twenty-four running nodes over loopback, each started with one seed address (issue
//! 16): they learn each other through the seed (addresses observed by handshakes and
//! told on), SWIM counts every other member alive, a write on any node reaches all, a
//! quarter closed is declared dead by the rest, which keep converging.
//!
//! One process with 24 engines (the multi-process, per-namespace version is still to
//! come; see ADR 081). Reproduce with `cargo test --test engine_swarm_cluster --
//! --nocapture`; each phase prints how long it took.

use std::time::{Duration, Instant};

use bhsync::node::{Node, NodeConfig};

const NODES: usize = 24;
/// Generous: two cores run 24 engines, and the debug build is slow.
const LIMIT: Duration = Duration::from_secs(90);

fn config(index: usize, seed: Option<std::net::SocketAddr>) -> NodeConfig {
    let mut secret = [0u8; 32];
    secret[1] = index as u8 + 1; // not byte 0: X25519 clamps its low bits
    secret[31] = 0x24;
    NodeConfig {
        identity_secret: Some(secret),
        peers: seed.into_iter().collect(),
        anti_entropy_interval: Duration::from_millis(500),
        redial_initial: Duration::from_millis(100),
        redial_max: Duration::from_secs(2),
        ..NodeConfig::default()
    }
}

fn phase(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{what}: {:?}", start.elapsed());
}

fn drain_events(nodes: &[Node]) {
    for node in nodes {
        while node.poll_event(Duration::ZERO).is_some() {}
    }
}

#[test]
fn twenty_four_nodes_from_one_seed_learn_each_other_converge_and_survive_a_quarter_closing() {
    let seed = Node::open(config(0, None)).expect("the seed opens");
    let seed_addr = seed.local_addr();
    let mut nodes = vec![seed];
    for index in 1..NODES {
        nodes.push(Node::open(config(index, Some(seed_addr))).expect("node opens"));
    }
    let alive = |node: &Node| node.metrics().expect("metrics").roles.members_alive;
    phase("every node counts every other alive", || {
        drain_events(&nodes);
        nodes.iter().all(|node| alive(node) == NODES - 1)
    });

    // Joining goes through the seed, so it briefly holds many links; once quiet, each
    // node keeps its active view (HyParView's, 5 by default) plus links a role needed in
    // the last second (a shuffle reply, a NEIGHBOR request).
    let active_max = nodes[0].metrics().expect("metrics").roles.overlay.active_max;
    let links =
        |nodes: &[Node]| -> Vec<usize> { nodes.iter().map(|node| node.peers().expect("peers").len()).collect() };
    phase("links settle within the active view", || {
        drain_events(&nodes);
        let now = links(&nodes);
        now.iter().all(|&count| count <= active_max + 2)
    });
    let settled = links(&nodes);
    eprintln!(
        "links per node: min {:?}, max {:?} (active view {active_max})",
        settled.iter().min(),
        settled.iter().max()
    );

    nodes[5].put("default", b"from five", b"to all").expect("write");
    phase("a write on one node reaches all", || {
        drain_events(&nodes);
        nodes.iter().all(|node| node.get("default", b"from five").expect("get").is_some())
    });

    // A quarter closes, the seed among them.
    let closed: Vec<Node> = nodes.drain(..NODES / 4).collect();
    for node in &closed {
        node.close().expect("close");
    }
    // Closed on purpose, they say goodbye: reported left (dead if the goodbye was lost).
    let gone = |node: &Node| {
        let roles = node.metrics().expect("metrics").roles;
        roles.members_dead + roles.members_left
    };
    phase("the rest count the closed quarter gone", || {
        drain_events(&nodes);
        nodes.iter().all(|node| gone(node) == NODES / 4 && alive(node) == NODES - NODES / 4 - 1)
    });

    let last = nodes.len() - 1;
    nodes[last].put("default", b"after", b"the quarter left").expect("write");
    phase("the rest keep converging", || {
        drain_events(&nodes);
        let hashes: Vec<_> = nodes.iter().map(|node| node.state_hash().expect("hash")).collect();
        nodes.iter().all(|node| node.get("default", b"after").expect("get").is_some())
            && hashes.windows(2).all(|pair| pair[0] == pair[1])
    });
}
