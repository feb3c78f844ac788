//! Real nodes over loopback sockets: five engines, concurrent writes on all of them, one
//! node closed and reopened, a partition cut at the transport and healed. Every state
//! hash must agree within a bounded time and no acknowledged write may be lost.
//!
//! Reproduce a failure with `cargo test --test engine_cluster -- --nocapture`; the seed
//! of the workload is printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bhsync::engine::io::BackendChoice;
use bhsync::node::{Node, NodeConfig};
use bhsync::state::{CategorySpec, MergeRule, Priority};

const CONVERGENCE_LIMIT: Duration = Duration::from_secs(30);

fn config(index: usize, peers: Vec<SocketAddr>, backend: BackendChoice) -> NodeConfig {
    // The io_uring run also uses two shards (a pinned worker next to the control thread).
    let shards = if backend == BackendChoice::Mio { 1 } else { 2 };
    let mut secret = [0u8; 32];
    secret[1] = index as u8 + 1; // not byte 0: X25519 clamps its low bits
    secret[31] = 0x42;
    NodeConfig {
        identity_secret: Some(secret),
        peers,
        io_backend: backend,
        shards,
        anti_entropy_interval: Duration::from_millis(300),
        redial_initial: Duration::from_millis(50),
        redial_max: Duration::from_millis(500),
        categories: vec![
            ("users".into(), CategorySpec { priority: Priority::High, ..CategorySpec::default() }),
            ("meta".into(), CategorySpec { priority: Priority::Low, ..CategorySpec::default() }),
            ("counters".into(), CategorySpec { merge: MergeRule::Crdt, ..CategorySpec::default() }),
        ],
        ..NodeConfig::default()
    }
}

fn start_cluster(count: usize, backend: BackendChoice) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for index in 0..count {
        let peers = nodes.iter().map(|node| node.local_addr()).collect();
        nodes.push(Node::open(config(index, peers, backend)).expect("node opens"));
    }
    nodes
}

/// Waits until every node reports the same state hash; panics with the hashes after
/// the limit.
fn await_convergence(nodes: &[&Node], what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let hashes: Vec<_> = nodes.iter().map(|node| node.state_hash().expect("state hash")).collect();
        if hashes.windows(2).all(|pair| pair[0] == pair[1]) {
            return start.elapsed();
        }
        if start.elapsed() > CONVERGENCE_LIMIT {
            let short: Vec<String> = hashes.iter().map(|h| format!("{h:?}")).collect();
            for (index, node) in nodes.iter().enumerate() {
                let metrics = node.metrics().expect("metrics");
                eprintln!(
                    "node {index}: peers {:?}\n engine {:?}\n core {:?}",
                    metrics.peers, metrics.engine, metrics.core
                );
                for category in ["users", "meta", "counters"] {
                    eprintln!("  {category}: {:?}", node.category_root(category));
                }
            }
            panic!("{what}: no convergence within {CONVERGENCE_LIMIT:?}; hashes {short:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `count` keys on every node from its own thread; returns the acknowledged
/// writes (key → value).
fn write_everywhere(nodes: &[&Node], round: &str, count: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                scope.spawn(move || {
                    let mut acked = BTreeMap::new();
                    for n in 0..count {
                        let key = format!("{round}/node{index}/key{n}").into_bytes();
                        let value = format!("value {n} from node {index} in {round}").into_bytes();
                        node.put("users", &key, &value).expect("put is acknowledged");
                        acked.insert(key, value);
                    }
                    node.counter_add("counters", b"total", count as i64).expect("counter add");
                    acked
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("writer thread")).collect()
    })
}

fn check_present(nodes: &[&Node], acked: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for (index, node) in nodes.iter().enumerate() {
        for (key, value) in acked {
            let got = node.get("users", key).expect("get");
            assert_eq!(got.as_deref(), Some(value.as_slice()), "node {index} lost {}", String::from_utf8_lossy(key));
        }
    }
}

fn cluster_scenario(backend: BackendChoice) {
    let mut nodes = start_cluster(5, backend);
    let refs: Vec<&Node> = nodes.iter().collect();
    let mut acked = write_everywhere(&refs, "first", 200);
    let took = await_convergence(&refs, "after concurrent writes");
    eprintln!("converged after concurrent writes in {took:?}");
    check_present(&refs, &acked);

    // Close node 4 and reopen it with the same identity: it dials the others and catches up.
    let restarted_peers: Vec<SocketAddr> = nodes[..4].iter().map(|node| node.local_addr()).collect();
    nodes.pop().expect("node 4").close().expect("close");
    let refs: Vec<&Node> = nodes.iter().collect();
    acked.extend(write_everywhere(&refs, "while-down", 100));
    nodes.push(Node::open(config(4, restarted_peers, backend)).expect("reopen node 4"));
    let refs: Vec<&Node> = nodes.iter().collect();
    let took = await_convergence(&refs, "after the restart");
    eprintln!("converged after the restart in {took:?}");
    check_present(&refs, &acked);

    // Cut {0, 1} from {2, 3, 4} at the transport, write on both sides, heal.
    let left: Vec<_> = nodes[..2].iter().map(|node| node.id()).collect();
    let right: Vec<_> = nodes[2..].iter().map(|node| node.id()).collect();
    for node in &nodes[..2] {
        node.partition(right.clone()).expect("cut");
    }
    for node in &nodes[2..] {
        node.partition(left.clone()).expect("cut");
    }
    acked.extend(write_everywhere(&refs, "partitioned", 100));
    for node in &nodes {
        node.partition(Vec::new()).expect("heal");
    }
    let took = await_convergence(&refs, "after the heal");
    eprintln!("converged after the heal in {took:?}");
    check_present(&refs, &acked);
    let expected_total = (200 * 5 + 100 * 4 + 100 * 5) as i64;
    for node in &nodes {
        assert_eq!(node.counter_get("counters", b"total").expect("counter"), expected_total);
    }
    for node in nodes {
        node.close().expect("close");
    }
}

#[test]
fn five_nodes_converge_through_restart_and_partition_mio() {
    cluster_scenario(BackendChoice::Mio);
}

#[test]
fn five_nodes_converge_through_restart_and_partition_io_uring() {
    cluster_scenario(BackendChoice::Auto);
}
