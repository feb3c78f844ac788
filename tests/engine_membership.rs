//! The running node runs the machine the swarm proves (issue 16, ADR 081): SWIM
//! membership and network time over the engine's links. Three nodes over loopback learn
//! each other as alive members, exchange time samples, and when one closes the others
//! declare it dead — with the events a host sees and the figures the metrics report —
//! while writes keep flowing between the two left.
//!
//! Reproduce with `cargo test --test engine_membership -- --nocapture`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bhsync::membership::MembershipEvent;
use bhsync::node::{Node, NodeConfig, NodeEvent};
use bhsync::state::NodeId;

/// Generous: SWIM's suspicion timeout is 2–12 s at this size (Lifeguard, ADR 020).
const LIMIT: Duration = Duration::from_secs(40);

fn config(index: u8, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut secret = [0u8; 32];
    secret[1] = index + 1; // not byte 0: X25519 clamps its low bits
    secret[31] = 0x51;
    NodeConfig {
        identity_secret: Some(secret),
        peers,
        anti_entropy_interval: Duration::from_millis(300),
        redial_initial: Duration::from_millis(50),
        redial_max: Duration::from_millis(500),
        ..NodeConfig::default()
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Drains `node`'s events; whether one says `peer` left.
fn saw_departure(node: &Node, peer: NodeId) -> bool {
    let mut seen = false;
    while let Some(event) = node.poll_event(Duration::ZERO) {
        seen |= event == NodeEvent::Membership(MembershipEvent::MemberLeft(peer));
    }
    seen
}

/// A node closed on purpose says goodbye (SWIM's `Left`): its peers report it left,
/// not dead after a suspicion (SIGKILLed nodes are declared dead:
/// `tests/cluster_processes.rs`).
#[test]
fn members_learn_each_other_and_a_closed_node_is_reported_left() {
    let a = Node::open(config(0, Vec::new())).expect("a opens");
    let b = Node::open(config(1, vec![a.local_addr()])).expect("b opens");
    let c = Node::open(config(2, vec![a.local_addr(), b.local_addr()])).expect("c opens");
    let alive = |node: &Node| node.metrics().expect("metrics").roles.members_alive;
    wait_for("every node counts the two others alive", || [&a, &b, &c].iter().all(|node| alive(node) == 2));
    wait_for("network time exchanges are accepted", || {
        [&a, &b].iter().all(|node| node.metrics().expect("metrics").roles.time.exchanges_accepted > 0)
    });

    let gone = c.id();
    c.close().expect("c closes");
    let (mut a_saw, mut b_saw) = (false, false);
    wait_for("a and b report the closed node left", || {
        a_saw |= saw_departure(&a, gone);
        b_saw |= saw_departure(&b, gone);
        a_saw && b_saw
    });
    for node in [&a, &b] {
        let roles = node.metrics().expect("metrics").roles;
        assert_eq!((roles.members_alive, roles.members_dead, roles.members_left), (1, 0, 1), "{roles:?}");
        assert!(!roles.partitioned, "a member that left does not count for the partition rule: {roles:?}");
        let health = node.health_json().expect("health");
        assert!(health.contains("\"membership\":{\"alive\":1,\"suspect\":0,\"dead\":0,\"left\":1"), "{health}");
        let prometheus = node.metrics_prometheus().expect("prometheus");
        assert!(prometheus.contains("bhsync_members{state=\"left\"} 1"), "{prometheus}");
    }

    a.put("default", b"after", b"the departure").expect("a writes");
    wait_for("the write reaches b", || b.get("default", b"after").expect("get").is_some());
}

/// The new user's case from issue 16: B and C are each given only seed A; they learn
/// each other's address through A, link, and keep syncing once A is gone.
#[test]
fn nodes_started_from_one_seed_keep_syncing_when_the_seed_leaves() {
    let a = Node::open(config(10, Vec::new())).expect("a opens");
    let b = Node::open(config(11, vec![a.local_addr()])).expect("b opens");
    let c = Node::open(config(12, vec![a.local_addr()])).expect("c opens");
    wait_for("b and c link to each other through what a told them", || {
        b.peers().expect("peers").contains(&c.id()) && c.peers().expect("peers").contains(&b.id())
    });
    a.close().expect("a closes");
    b.put("default", b"written on b", b"after the seed left").expect("b writes");
    wait_for("the write reaches c", || c.get("default", b"written on b").expect("get").is_some());
    assert_eq!(c.peers().expect("peers"), vec![b.id()], "c holds b, and a is gone");
    let metrics = c.metrics().expect("metrics");
    assert!(metrics.roles.members_alive >= 1, "{:?}", metrics.roles);
}

/// Issue 16, item 6: an eventual category with the `read_only_in_minority` policy
/// refuses writes on the minority side of a partition, with a typed error, while the
/// majority keeps writing; after the heal the minority writes again.
#[test]
fn a_read_only_in_minority_category_refuses_writes_on_the_minority_side() {
    use bhsync::node::NodeError;
    use bhsync::state::{CategorySpec, PartitionPolicy};
    let guarded = |index: u8, peers: Vec<SocketAddr>| NodeConfig {
        categories: vec![(
            "guarded".into(),
            CategorySpec { partition_policy: PartitionPolicy::ReadOnly, ..CategorySpec::default() },
        )],
        ..config(index, peers)
    };
    let a = Node::open(guarded(20, Vec::new())).expect("a opens");
    let b = Node::open(guarded(21, vec![a.local_addr()])).expect("b opens");
    let c = Node::open(guarded(22, vec![a.local_addr(), b.local_addr()])).expect("c opens");
    let alive = |node: &Node| node.metrics().expect("metrics").roles.members_alive;
    wait_for("every node counts the two others alive", || [&a, &b, &c].iter().all(|node| alive(node) == 2));
    c.put("guarded", b"before", b"the split").expect("c writes while in the majority");

    c.partition(vec![a.id(), b.id()]).expect("cut c off");
    a.partition(vec![c.id()]).expect("cut c off");
    b.partition(vec![c.id()]).expect("cut c off");
    wait_for("c finds itself on the minority side and refuses writes", || {
        matches!(c.put("guarded", b"during", b"the split"), Err(NodeError::ReadOnly))
    });
    assert!(c.metrics().expect("metrics").roles.partitioned);
    a.put("guarded", b"majority", b"keeps writing").expect("the majority side writes");

    for node in [&a, &b, &c] {
        node.partition(Vec::new()).expect("heal");
    }
    wait_for("c writes again after the heal", || c.put("guarded", b"after", b"the heal").is_ok());
    wait_for("c catches up with what the majority wrote", || c.get("guarded", b"majority").expect("get").is_some());
}

/// Issue 16, item 4: network time is read from the running node. On one machine the
/// peers share a clock, so the agreed offset stays small and the readings match the
/// system clock; readings never go backwards.
#[test]
fn network_time_reads_the_clock_the_peers_agree_on_and_never_goes_back() {
    let a = Node::open(config(20, Vec::new())).expect("a opens");
    let b = Node::open(config(21, vec![a.local_addr()])).expect("b opens");
    let c = Node::open(config(22, vec![a.local_addr()])).expect("c opens");
    wait_for("each node links to both others", || {
        [&a, &b, &c].iter().all(|node| node.peers().expect("peers").len() == 2)
    });
    let system_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut last = [0u64; 3];
    for _ in 0..20 {
        for (at, node) in [&a, &b, &c].iter().enumerate() {
            let time = node.network_time().expect("network time");
            assert!(time.unix_ms >= last[at], "node {at}: network time went back: {} then {}", last[at], time.unix_ms);
            last[at] = time.unix_ms;
            assert!(time.offset_ms.abs() < 1_000, "node {at}: one machine, one clock: offset {time:?}");
            assert!(time.unix_ms.abs_diff(system_ms()) < 2_000, "node {at}: {time:?} far from the system clock");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
