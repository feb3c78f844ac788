//! The chain as a category mode of the running node (issue 16, ADR 081): three nodes
//! each append blocks to one chain category at once; the chain's sync (announces,
//! headers-first by block locator) and fork choice end them in one agreed head, whose
//! blocks decode and verify on every node; a node reopened on its data directory
//! recovers its chain; a put into the chain category is refused with `WrongMode`.
//!
//! Reproduce with `cargo test --test engine_chain -- --nocapture`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bhsync::chain::{Block, BlockLimits};
use bhsync::node::{Node, NodeConfig, NodeError};
use bhsync::state::{CategorySpec, Mode};

const LIMIT: Duration = Duration::from_secs(40);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bhsync-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(index: u8, dir: &Path, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut secret = [0u8; 32];
    secret[1] = index + 1; // not byte 0: X25519 clamps its low bits
    secret[31] = 0xC4;
    NodeConfig {
        identity_secret: Some(secret),
        data_dir: Some(dir.to_path_buf()),
        peers,
        categories: vec![
            ("default".into(), CategorySpec::default()),
            ("ledger".into(), CategorySpec { mode: Mode::Chain, ..CategorySpec::default() }),
        ],
        ..NodeConfig::default()
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn blocks_appended_on_several_nodes_end_in_one_agreed_head_and_survive_a_reopen() {
    let dirs: Vec<PathBuf> = (0..3).map(|i| temp_dir(&format!("n{i}"))).collect();
    let a = Node::open(config(0, &dirs[0], Vec::new())).expect("a opens");
    let b = Node::open(config(1, &dirs[1], vec![a.local_addr()])).expect("b opens");
    let c = Node::open(config(2, &dirs[2], vec![a.local_addr()])).expect("c opens");
    let genesis = a.chain_block("ledger", 0).expect("block").expect("genesis");
    for node in [&b, &c] {
        assert_eq!(node.chain_block("ledger", 0).expect("block"), Some(genesis.clone()), "one genesis for all");
    }
    let refused = a.put("ledger", b"k", b"v").expect_err("not a key-value category");
    assert!(matches!(refused, NodeError::WrongMode(_)), "{refused:?}");

    for round in 0..5u8 {
        for (index, node) in [&a, &b, &c].into_iter().enumerate() {
            let tx = format!("tx {round} from node {index}").into_bytes();
            let (height, _) = node.chain_append("ledger", vec![tx]).expect("append");
            assert!(height >= 1);
        }
    }
    let heads = || [&a, &b, &c].map(|node| node.chain_head("ledger").expect("head"));
    let took = wait_for("every node agrees on one head", || {
        let [x, y, z] = heads();
        x == y && y == z
    });
    let (height, head) = heads()[0];
    eprintln!("agreed on height {height} after {took:?}");
    assert!(height >= 5, "the agreed chain holds at least one round of blocks (height {height})");
    for node in [&a, &b, &c] {
        let mut parent = Block::decode(&genesis, &BlockLimits::default()).expect("genesis decodes");
        for at in 1..=height {
            let bytes = node.chain_block("ledger", at).expect("block").expect("present up to the head");
            let block = Block::decode(&bytes, &BlockLimits::default()).expect("decodes");
            assert!(block.header.signature_valid(), "block {at} is signed");
            assert_eq!(block.header.prev_id, parent.id(), "block {at} links to its parent");
            parent = block;
        }
        assert_eq!(parent.id(), head);
    }

    c.close().expect("c closes");
    let c = Node::open(config(2, &dirs[2], vec![a.local_addr()])).expect("c reopens");
    let (recovered, _) = c.chain_head("ledger").expect("head");
    assert!(recovered >= height, "the chain survives a reopen: {recovered} < {height}");
    drop((a, b, c));
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_chain_without_a_data_directory_or_two_chains_are_refused() {
    let chain = CategorySpec { mode: Mode::Chain, ..CategorySpec::default() };
    let in_memory = NodeConfig { categories: vec![("ledger".into(), chain.clone())], ..NodeConfig::default() };
    let error = Node::open(in_memory).err().expect("refused");
    assert!(error.to_string().contains("data directory"), "{error}");
    let dir = temp_dir("two");
    let two = NodeConfig {
        data_dir: Some(dir.clone()),
        categories: vec![("one".into(), chain.clone()), ("two".into(), chain)],
        ..NodeConfig::default()
    };
    let error = Node::open(two).err().expect("refused");
    assert!(error.to_string().contains("one chain"), "{error}");
    let _ = std::fs::remove_dir_all(dir);
}
