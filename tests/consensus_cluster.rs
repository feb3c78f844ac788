//! A strong category over real sockets (issue 8, ADR 070): three nodes on loopback,
//! each a voter; writes at the leader commit, a follower answers `NotLeader` with the
//! leader's id, the leader is killed, the other two elect a new leader and writes
//! resume; the killed node reopens from its data directory and catches up.
//!
//! Reproduce with `cargo test --test consensus_cluster -- --nocapture`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bhsync::consensus::GroupConfig;
use bhsync::node::{Node, NodeConfig, NodeError};
use bhsync::state::{CategorySpec, Mode, NodeId, Priority};
use bhsync::wire::identity::Identity;

const CATEGORY: &str = "ledger";

fn secret(index: usize) -> [u8; 32] {
    let mut secret = [0u8; 32];
    secret[1] = index as u8 + 1; // not byte 0: X25519 clamps its low bits
    secret[31] = 0x77;
    secret
}

fn voters() -> Vec<NodeId> {
    (0..3).map(|i| Identity::from_secret(secret(i)).node_id()).collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bhsync-consensus-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(index: usize, peers: Vec<SocketAddr>, dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        identity_secret: Some(secret(index)),
        data_dir: Some(dir.join(format!("node{index}"))),
        peers,
        redial_initial: Duration::from_millis(50),
        redial_max: Duration::from_millis(300),
        categories: vec![
            (
                CATEGORY.into(),
                CategorySpec { mode: Mode::Strong, priority: Priority::Critical, ..CategorySpec::default() },
            ),
            ("notes".into(), CategorySpec::default()),
        ],
        strong_voters: voters(),
        strong_group: GroupConfig {
            tick_ms: 50,
            election_ticks: 10,
            heartbeat_ticks: 2,
            request_timeout_ms: 3_000,
            snapshot_every: 64,
            ..GroupConfig::default()
        },
        ..NodeConfig::default()
    }
}

/// Waits until every node in `nodes` names the same leader; returns its index.
fn await_leader(nodes: &[Option<Node>], limit: Duration) -> usize {
    let start = Instant::now();
    let ids = voters();
    loop {
        let leaders: Vec<Option<NodeId>> =
            nodes.iter().flatten().map(|n| n.strong_leader(CATEGORY).expect("leader query")).collect();
        if let Some(Some(leader)) = leaders.first() {
            if leaders.iter().all(|l| *l == Some(*leader)) {
                if let Some(index) = ids.iter().position(|id| id == leader) {
                    if nodes[index].is_some() {
                        return index;
                    }
                }
            }
        }
        assert!(start.elapsed() < limit, "no agreed leader within {limit:?}: {leaders:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_voters_survive_the_loss_of_their_leader() {
    let dir = temp_dir("three");
    let mut nodes: Vec<Option<Node>> = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for index in 0..3 {
        let node = Node::open(config(index, addrs.clone(), &dir)).expect("node opens");
        addrs.push(node.local_addr());
        nodes.push(Some(node));
    }
    let leader = await_leader(&nodes, Duration::from_secs(15));
    let ids = voters();
    for n in 0..20u32 {
        let node = nodes[leader].as_ref().unwrap();
        node.put(CATEGORY, format!("k{n}").as_bytes(), format!("v{n}").as_bytes())
            .expect("write at the leader commits");
    }
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let refused = nodes[follower].as_ref().unwrap().put(CATEGORY, b"k0", b"x");
    assert_eq!(refused, Err(NodeError::NotLeader { leader: Some(ids[leader]) }));
    assert_eq!(nodes[leader].as_ref().unwrap().get(CATEGORY, b"k7").unwrap(), Some(b"v7".to_vec()));
    // Eventual categories are untouched by all this.
    nodes[follower].as_ref().unwrap().put("notes", b"n", b"1").expect("eventual write anywhere");

    // Kill the leader: the two others elect a new one and writes resume.
    let killed = nodes[leader].take().unwrap();
    killed.close().expect("close");
    drop(killed);
    let started = Instant::now();
    let new_leader = loop {
        let candidate = await_leader(&nodes, Duration::from_secs(15));
        if candidate != leader {
            break candidate;
        }
    };
    let node = nodes[new_leader].as_ref().unwrap();
    node.put(CATEGORY, b"k0", b"after").expect("writes resume after the leader is lost");
    eprintln!("writes resumed {:?} after the leader was killed", started.elapsed());
    assert_eq!(node.get(CATEGORY, b"k0").unwrap(), Some(b"after".to_vec()));
    assert_eq!(node.get(CATEGORY, b"k19").unwrap(), Some(b"v19".to_vec()), "no committed write lost");

    // The killed node reopens from its directory and catches up as a follower.
    let peers: Vec<SocketAddr> = (0..3).filter(|&i| i != leader).map(|i| addrs[i]).collect();
    let mut reopened = config(leader, peers, &dir);
    reopened.listen = addrs[leader];
    nodes[leader] = Some(Node::open(reopened).expect("reopens"));
    let start = Instant::now();
    loop {
        let got = nodes[leader].as_ref().unwrap().get_stale(CATEGORY, b"k0").unwrap();
        if got.as_deref() == Some(&b"after"[..]) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the reopened node did not catch up: {got:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_leader_cut_off_by_a_partition_answers_at_once_and_reports_it() {
    let dir = temp_dir("partition");
    let mut nodes: Vec<Option<Node>> = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for index in 0..3 {
        let mut config = config(index, addrs.clone(), &dir);
        config.data_dir = None; // in memory: this test is about answers, not durability
        let node = Node::open(config).expect("node opens");
        addrs.push(node.local_addr());
        nodes.push(Some(node));
    }
    let leader = await_leader(&nodes, Duration::from_secs(15));
    let ids = voters();
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    nodes[leader].as_ref().unwrap().put(CATEGORY, b"k", b"before").expect("write before the partition");
    // Cut the leader off from both others, at the transport, on every side.
    nodes[leader].as_ref().unwrap().partition(others.iter().map(|&i| ids[i]).collect()).unwrap();
    for &i in &others {
        nodes[i].as_ref().unwrap().partition(vec![ids[leader]]).unwrap();
    }
    // Within two election timeouts (1 s) the old leader knows it is cut off.
    let old = nodes[leader].as_ref().unwrap();
    let start = Instant::now();
    let mut reported = false;
    while start.elapsed() < Duration::from_secs(5) && !reported {
        if let Some(bhsync::node::NodeEvent::Partition { reachable: false, .. }) =
            old.poll_event(Duration::from_millis(50))
        {
            reported = true;
        }
    }
    assert!(reported, "no partition event from the cut-off leader");
    let asked = Instant::now();
    let answer = old.put(CATEGORY, b"k", b"minority");
    assert!(matches!(answer, Err(NodeError::ReadOnly) | Err(NodeError::NotLeader { .. })), "{answer:?}");
    assert!(old.get(CATEGORY, b"k").is_err(), "no linearizable read on the minority side");
    assert!(asked.elapsed() < Duration::from_millis(200), "answered at once, not after {:?}", asked.elapsed());
    assert_eq!(old.get_stale(CATEGORY, b"k").unwrap(), Some(b"before".to_vec()), "stale reads still work");
    // The majority side elects and commits; after the heal the old leader follows.
    let new = loop {
        let l = others
            .iter()
            .copied()
            .find(|&i| nodes[i].as_ref().unwrap().strong_leader(CATEGORY).unwrap() == Some(ids[i]));
        if let Some(l) = l {
            break l;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the majority elected no leader");
        std::thread::sleep(Duration::from_millis(20));
    };
    nodes[new].as_ref().unwrap().put(CATEGORY, b"k", b"majority").expect("the majority commits");
    for node in nodes.iter().flatten() {
        node.partition(Vec::new()).unwrap();
    }
    let healed = Instant::now();
    while nodes[leader].as_ref().unwrap().get_stale(CATEGORY, b"k").unwrap().as_deref() != Some(&b"majority"[..]) {
        assert!(healed.elapsed() < Duration::from_secs(15), "the old leader did not catch up after the heal");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_single_voter_serves_at_once_and_keeps_its_writes_across_a_restart() {
    let dir = temp_dir("single");
    let me = Identity::from_secret(secret(0)).node_id();
    let open = || {
        let mut config = config(0, Vec::new(), &dir);
        config.strong_voters = vec![me];
        Node::open(config).expect("node opens")
    };
    let node = open();
    let version = node.put(CATEGORY, b"k", b"v").expect("a lone voter leads at once");
    assert_eq!(version.origin, me);
    assert_eq!(node.get(CATEGORY, b"k").unwrap(), Some(b"v".to_vec()));
    assert!(matches!(node.delete(CATEGORY, b"k"), Err(NodeError::WrongMode(_))));
    node.close().unwrap();
    drop(node);
    let node = open();
    assert_eq!(node.get(CATEGORY, b"k").unwrap(), Some(b"v".to_vec()), "the write survived the restart");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
