//! `cargo bench --bench strong -- [--json] [--writes N] [--writers W] [--memory]`
//!
//! The cost of strong consistency (issue 8, ADR 070): three voters over loopback, each
//! a real node with its engine, a strong category and an eventual one. The same number
//! of writes, by the same number of concurrent writer threads, goes
//!
//! - to the strong category at the Raft leader: each `put` returns once the write is
//!   committed by a quorum and applied (journal fsync on the leader and a follower);
//! - to the eventual category on the same node: each `put` returns once the write is
//!   durable in the node's own log (the eventual acknowledgement).
//!
//! Reported per run: committed writes per second and commit latency p50/p99 (hdrhistogram)
//! for both, and the ratios strong/eventual. With `--memory` no data directory (no fsync
//! on either path). Run by `cargo test` as a smoke test on a small N.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bhsync::consensus::GroupConfig;
use bhsync::node::{Node, NodeConfig};
use bhsync::state::{CategorySpec, Mode, NodeId, Priority};
use bhsync::wire::Identity;
use hdrhistogram::Histogram;

const STRONG: &str = "strong";
const EVENTUAL: &str = "eventual";

struct Options {
    json: bool,
    writes: usize,
    writers: Vec<usize>,
    durable: bool,
}

fn options() -> Options {
    let benching = std::env::args().any(|arg| arg == "--bench");
    let mut options = Options {
        json: false,
        writes: if benching { 4_000 } else { 100 },
        writers: if benching { vec![1, 16] } else { vec![4] },
        durable: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--writes" => options.writes = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.writes),
            "--writers" => {
                if let Some(w) = args.next().and_then(|v| v.parse().ok()) {
                    options.writers = vec![w];
                }
            }
            "--memory" => options.durable = false,
            _ => {}
        }
    }
    options
}

fn secret(index: usize) -> [u8; 32] {
    let mut secret = [9u8; 32];
    secret[1] = index as u8 + 1;
    secret
}

fn config(index: usize, peers: Vec<std::net::SocketAddr>, dir: Option<&PathBuf>) -> NodeConfig {
    NodeConfig {
        identity_secret: Some(secret(index)),
        data_dir: dir.map(|d| d.join(format!("node{index}"))),
        peers,
        encryption: true,
        anti_entropy_interval: Duration::from_secs(3600),
        categories: vec![
            (
                STRONG.into(),
                CategorySpec { mode: Mode::Strong, priority: Priority::Critical, ..CategorySpec::default() },
            ),
            (EVENTUAL.into(), CategorySpec { priority: Priority::Critical, ..CategorySpec::default() }),
        ],
        strong_voters: (0..3).map(|i| Identity::from_secret(secret(i)).node_id()).collect(),
        strong_group: GroupConfig { tick_ms: 50, election_ticks: 10, ..GroupConfig::default() },
        ..NodeConfig::default()
    }
}

struct Figures {
    per_second: f64,
    p50_us: u64,
    p99_us: u64,
}

/// `writes` puts split over `writers` threads; keys are distinct per thread.
fn measure(node: &Arc<Node>, category: &'static str, writes: usize, writers: usize, round: usize) -> Figures {
    let per_writer = writes.div_ceil(writers);
    let start = Instant::now();
    let histograms: Vec<Histogram<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let node = node.clone();
                scope.spawn(move || {
                    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
                    for n in 0..per_writer {
                        let key = format!("r{round}/w{w}/k{n}");
                        let began = Instant::now();
                        node.put(category, key.as_bytes(), &[7u8; 100]).expect("put");
                        histogram.record(began.elapsed().as_micros() as u64).ok();
                    }
                    histogram
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("writer")).collect()
    });
    let took = start.elapsed();
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    histograms.iter().for_each(|h| all.add(h).expect("merge"));
    Figures {
        per_second: (per_writer * writers) as f64 / took.as_secs_f64(),
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
    }
}

fn await_leader(nodes: &[Arc<Node>]) -> usize {
    let ids: Vec<NodeId> = (0..3).map(|i| Identity::from_secret(secret(i)).node_id()).collect();
    let start = Instant::now();
    loop {
        let leaders: Vec<Option<NodeId>> = nodes.iter().map(|n| n.strong_leader(STRONG).expect("leader")).collect();
        if let Some(Some(leader)) = leaders.first() {
            if leaders.iter().all(|l| l == &Some(*leader)) {
                return ids.iter().position(|id| id == leader).expect("a voter leads");
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no leader: {leaders:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let options = options();
    let dir = std::env::temp_dir().join(format!("bhsync-bench-strong-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = options.durable.then_some(&dir);
    let mut nodes: Vec<Arc<Node>> = Vec::new();
    let mut addrs = Vec::new();
    for index in 0..3 {
        let node = Node::open(config(index, addrs.clone(), data)).expect("node opens");
        addrs.push(node.local_addr());
        nodes.push(Arc::new(node));
    }
    let leader = nodes[await_leader(&nodes)].clone();
    // Warm up both paths (connections, first fsyncs, the leader's first entry).
    measure(&leader, STRONG, 50, 1, 1_000);
    measure(&leader, EVENTUAL, 50, 1, 1_000);
    for (round, &writers) in options.writers.iter().enumerate() {
        let strong = measure(&leader, STRONG, options.writes, writers, round);
        let eventual = measure(&leader, EVENTUAL, options.writes, writers, round);
        report(&options, writers, &strong, &eventual);
    }
    drop(leader);
    for node in nodes {
        if let Ok(node) = Arc::try_unwrap(node) {
            node.close().ok();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn report(options: &Options, writers: usize, strong: &Figures, eventual: &Figures) {
    let throughput_ratio = strong.per_second / eventual.per_second;
    let p50_ratio = strong.p50_us as f64 / eventual.p50_us.max(1) as f64;
    let p99_ratio = strong.p99_us as f64 / eventual.p99_us.max(1) as f64;
    if options.json {
        println!(
            "{{\"scenario\":\"strong_vs_eventual\",\"voters\":3,\"writes\":{},\"writers\":{writers},\"durable\":{},\
             \"strong_writes_per_s\":{:.0},\"strong_p50_us\":{},\"strong_p99_us\":{},\
             \"eventual_writes_per_s\":{:.0},\"eventual_p50_us\":{},\"eventual_p99_us\":{},\
             \"throughput_ratio\":{throughput_ratio:.3},\"p50_ratio\":{p50_ratio:.2},\"p99_ratio\":{p99_ratio:.2}}}",
            options.writes,
            options.durable,
            strong.per_second,
            strong.p50_us,
            strong.p99_us,
            eventual.per_second,
            eventual.p50_us,
            eventual.p99_us,
        );
    } else {
        println!(
            "{} writes, {writers} writer(s), durable {}:\n  strong   {:>9.0} writes/s  p50 {:>6} µs  p99 {:>6} µs\n  \
             eventual {:>9.0} writes/s  p50 {:>6} µs  p99 {:>6} µs\n  strong/eventual: throughput {throughput_ratio:.3}×, \
             p50 {p50_ratio:.1}×, p99 {p99_ratio:.1}×",
            options.writes,
            options.durable,
            strong.per_second,
            strong.p50_us,
            strong.p99_us,
            eventual.per_second,
            eventual.p50_us,
            eventual.p99_us,
        );
    }
}
