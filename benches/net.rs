//! `cargo bench --bench net -- [--json] [--entries N] [--updates N] [--runs R] [--only NAME]`
//!
//! Two real nodes over loopback (issue 6), each measured beside its floor in the same run:
//!
//! - **bulk**: N entries (32-byte keys, 100-byte values) on node A; node B starts empty
//!   and dials A; the clock runs until B's root equals A's. Floor: a plain loopback TCP
//!   copy of the same bytes plus one BLAKE3 pass over the entries on the receiver (plus
//!   one ChaCha20-Poly1305 pass when encryption is on). With encryption on and off,
//!   io_uring and mio, 1 and 2 shards.
//! - **propagation**: a writer puts on A at 10,000 updates/s; B's host sees each key's
//!   `Updated` event; p50/p99/p999 with hdrhistogram against half a raw TCP ping-pong.
//!
//! Run by `cargo test` as a smoke test on a small N. Quote medians and ratios.

#[path = "net/floor.rs"]
mod floor;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bhsync::engine::io::BackendChoice;
use bhsync::node::{Node, NodeConfig, NodeEvent};
use bhsync::state::CategorySpec;
use hdrhistogram::Histogram;

const KEY_LEN: usize = 32;
const VALUE_LEN: usize = 100;
const CATEGORY: &str = "bench";

struct Options {
    json: bool,
    entries: usize,
    updates: usize,
    runs: usize,
    only: Option<String>,
}

fn options() -> Options {
    // `cargo bench` passes --bench; `cargo test` does not, and then a small run keeps
    // the suite fast.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let mut options = if benching {
        Options { json: false, entries: 1_000_000, updates: 20_000, runs: 3, only: None }
    } else {
        Options { json: false, entries: 5_000, updates: 300, runs: 1, only: None }
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--entries" => options.entries = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.entries),
            "--updates" => options.updates = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.updates),
            "--runs" => options.runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.runs),
            "--only" => options.only = args.next(),
            _ => {}
        }
    }
    options
}

fn node_config(index: u8, backend: BackendChoice, encryption: bool, shards: usize) -> NodeConfig {
    let mut secret = [7u8; 32];
    secret[1] = index;
    NodeConfig {
        identity_secret: Some(secret),
        io_backend: backend,
        encryption,
        shards,
        categories: vec![(CATEGORY.into(), CategorySpec::default())],
        anti_entropy_interval: Duration::from_secs(3600),
        ..NodeConfig::default()
    }
}

/// Deterministic records: 32-byte keys and 100-byte values (xorshift64*).
fn records(count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut fill = |len: usize| (0..len).map(|_| next() as u8).collect::<Vec<u8>>();
    (0..count).map(|_| (fill(KEY_LEN), fill(VALUE_LEN))).collect()
}

fn load(node: &Node, entries: &[(Vec<u8>, Vec<u8>)]) {
    for chunk in entries.chunks(20_000) {
        node.put_many(CATEGORY, chunk.to_vec()).expect("bulk load");
    }
}

/// Time for an empty node to reach the root of a node holding `entries`.
fn bulk_once(entries: &[(Vec<u8>, Vec<u8>)], backend: BackendChoice, encryption: bool, shards: usize) -> Duration {
    let a = Node::open(node_config(1, backend, encryption, shards)).expect("node A");
    load(&a, entries);
    let target = a.category_root(CATEGORY).expect("root");
    let start = Instant::now();
    let mut config = node_config(2, backend, encryption, shards);
    config.peers = vec![a.local_addr()];
    let b = Node::open(config).expect("node B");
    while b.category_root(CATEGORY).expect("root") != target {
        std::thread::sleep(Duration::from_millis(2));
        assert!(start.elapsed() < Duration::from_secs(600), "bulk sync did not finish");
    }
    let took = start.elapsed();
    b.close().ok();
    a.close().ok();
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn backend_name(backend: BackendChoice) -> &'static str {
    match backend {
        BackendChoice::IoUring | BackendChoice::Auto => "io_uring",
        BackendChoice::Mio => "mio",
    }
}

fn bench_bulk(options: &Options, entries: &[(Vec<u8>, Vec<u8>)]) {
    let flat: Vec<u8> = entries.iter().flat_map(|(k, v)| k.iter().chain(v.iter()).copied()).collect();
    for encryption in [true, false] {
        let floor =
            median((0..options.runs).map(|_| floor::bulk_floor(&flat, KEY_LEN + VALUE_LEN, encryption)).collect());
        for backend in [BackendChoice::IoUring, BackendChoice::Mio] {
            for shards in [1, 2] {
                let runs: Vec<Duration> =
                    (0..options.runs).map(|_| bulk_once(entries, backend, encryption, shards)).collect();
                let took = median(runs);
                let ratio = took.as_secs_f64() / floor.as_secs_f64();
                let goal = if encryption { 2.0 } else { 1.5 };
                report_bulk(options, encryption, backend, shards, took, floor, ratio, goal);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report_bulk(
    options: &Options,
    encryption: bool,
    backend: BackendChoice,
    shards: usize,
    took: Duration,
    floor: Duration,
    ratio: f64,
    goal: f64,
) {
    let backend = backend_name(backend);
    let rate = options.entries as f64 / took.as_secs_f64();
    if options.json {
        println!(
            "{{\"scenario\":\"bulk\",\"entries\":{},\"encryption\":{encryption},\"backend\":\"{backend}\",\"shards\":{shards},\"median_ms\":{:.1},\"floor_ms\":{:.1},\"ratio\":{ratio:.2},\"goal\":{goal},\"entries_per_s\":{rate:.0}}}",
            options.entries,
            took.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3
        );
    } else {
        println!(
            "bulk {:>9} entries  enc {:<5} {backend:<8} {shards} shard(s): {:>8.1} ms  floor {:>7.1} ms  {ratio:>5.2}× (goal ≤ {goal}×)  {:>9.0} entries/s",
            options.entries,
            encryption,
            took.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3,
            rate
        );
    }
}

/// Latency from a put on A to its `Updated` event on B's host, in microseconds.
fn propagation_once(options: &Options, backend: BackendChoice) -> Histogram<u64> {
    let a = Node::open(node_config(1, backend, true, 1)).expect("node A");
    let mut config = node_config(2, backend, true, 1);
    config.peers = vec![a.local_addr()];
    let b = Node::open(config).expect("node B");
    while a.peers().expect("peers").is_empty() || b.peers().expect("peers").is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    while b.poll_event(Duration::from_millis(50)).is_some() {}
    let origin = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..options.updates).map(|_| AtomicU64::new(0)).collect());
    let writer = {
        let sent = sent.clone();
        let updates = options.updates;
        let interval = Duration::from_micros(100); // 10,000 updates per second
        std::thread::spawn(move || {
            for seq in 0..updates {
                let due = origin + interval * seq as u32;
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                let key = format!("update-{seq:08}");
                sent[seq].store(origin.elapsed().as_nanos() as u64, Ordering::Release);
                a.put(CATEGORY, key.as_bytes(), &[0u8; VALUE_LEN]).expect("put");
            }
            a
        })
    };
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < options.updates && Instant::now() < deadline {
        let Some(event) = b.poll_event(Duration::from_millis(100)) else { continue };
        if let NodeEvent::Updated { key, .. } = event {
            let now = origin.elapsed().as_nanos() as u64;
            let seq: usize = std::str::from_utf8(&key[7..]).ok().and_then(|s| s.parse().ok()).unwrap_or(usize::MAX);
            if let Some(at) = sent.get(seq) {
                let sent_at = at.load(Ordering::Acquire);
                histogram.record(((now.saturating_sub(sent_at)) / 1_000).max(1)).ok();
                seen += 1;
            }
        }
    }
    let a = writer.join().expect("writer");
    b.close().ok();
    a.close().ok();
    assert_eq!(seen, options.updates, "every update reached B");
    histogram
}

fn bench_propagation(options: &Options) {
    let floor = floor::one_way_floor(options.updates.max(1_000), 128);
    for backend in [BackendChoice::IoUring, BackendChoice::Mio] {
        let histogram = propagation_once(options, backend);
        let name = backend_name(backend);
        let p = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
        let (p50, p99, p999) = (p(&histogram, 0.5), p(&histogram, 0.99), p(&histogram, 0.999));
        let (f50, f99, f999) = (p(&floor, 0.5), p(&floor, 0.99), p(&floor, 0.999));
        let r50 = p50 as f64 / f50.max(1) as f64;
        let r99 = p99 as f64 / f99.max(1) as f64;
        if options.json {
            println!(
                "{{\"scenario\":\"propagation\",\"backend\":\"{name}\",\"updates\":{},\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999},\"floor_p50_us\":{f50},\"floor_p99_us\":{f99},\"floor_p999_us\":{f999},\"ratio_p50\":{r50:.2},\"ratio_p99\":{r99:.2},\"goal_p50\":2,\"goal_p99\":3}}",
                options.updates
            );
        } else {
            println!(
                "propagation {name:<8} {} updates at 10k/s: p50 {p50} µs p99 {p99} µs p999 {p999} µs | one-way floor p50 {f50} p99 {f99} p999 {f999} µs | {r50:.1}× / {r99:.1}× (goal ≤ 2× / 3×)",
                options.updates
            );
        }
    }
}

fn main() {
    let options = options();
    let wants = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    if wants("bulk") {
        let entries = records(options.entries);
        bench_bulk(&options, &entries);
    }
    if wants("propagation") {
        bench_propagation(&options);
    }
}
