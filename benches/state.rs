//! `cargo bench --bench state -- [--json] [--entries N] [--runs R]`
//!
//! Building and updating a category's Merkle state, against a raw baseline measured in
//! the same run: BLAKE3 over every entry (key ‖ value) once. Scenarios (issue 2):
//! build a state of N entries (32-byte keys, 100-byte values) with 1 and 2 shards, and
//! apply a batch of 10,000 updates to it and recompute the root. Reports the median of
//! R runs, the ratio to the baseline, and the heap bytes per entry beyond key and value
//! (counted by a wrapping global allocator: requested bytes, without malloc's own
//! headers). Run by `cargo test` as a smoke test on 20,000 entries.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use bhsync::engine::shard_runner::{apply_routed, prepare_routed};
use bhsync::state::{CategorySpec, CategoryState, NodeId, PreparedLeaf, Version};

struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const KEY_LEN: usize = 32;
const VALUE_LEN: usize = 100;
const RECORD_LEN: usize = KEY_LEN + VALUE_LEN;
const UPDATE_BATCH: usize = 10_000;

struct Options {
    json: bool,
    entries: usize,
    runs: usize,
}

fn options() -> Options {
    // `cargo bench` passes --bench; `cargo test` (which runs this as a smoke test) does
    // not, and then a small state keeps the test suite fast.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let mut options = if benching {
        Options { json: false, entries: 1_000_000, runs: 5 }
    } else {
        Options { json: false, entries: 20_000, runs: 1 }
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--entries" => options.entries = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.entries),
            "--runs" => options.runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.runs),
            _ => {} // cargo bench passes --bench; ignore what is not ours.
        }
    }
    options
}

/// Deterministic pseudo-random records (xorshift64*), so every run sees the same data.
fn records(count: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut data = vec![0u8; count * RECORD_LEN];
    for chunk in data.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    data
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn time_ms(run: impl FnOnce()) -> f64 {
    let start = Instant::now();
    run();
    start.elapsed().as_secs_f64() * 1e3
}

fn baseline_ms(data: &[u8], runs: usize) -> f64 {
    let samples = (0..runs)
        .map(|_| {
            time_ms(|| {
                for record in data.chunks_exact(RECORD_LEN) {
                    std::hint::black_box(blake3::hash(record));
                }
            })
        })
        .collect();
    median_ms(samples)
}

fn prepare(state: &CategoryState, data: &[u8], index: usize, hlc: u64) -> PreparedLeaf {
    let record = &data[index * RECORD_LEN..(index + 1) * RECORD_LEN];
    let version = Version { hlc, origin: NodeId([1; 32]), counter: hlc, tombstone: false };
    state.prepare(&record[..KEY_LEN], &record[KEY_LEN..], version).expect("records are within bounds")
}

/// Builds a state from `data` on `shards` shards (one pinned thread each).
fn build(data: &[u8], shards: usize) -> CategoryState {
    let mut state = CategoryState::new("bench", CategorySpec::default(), shards).expect("valid category");
    let count = data.len() / RECORD_LEN;
    let parts = prepare_routed(&state, count, shards, |i| prepare(&state, data, i, i as u64 + 1));
    apply_routed(&mut state, parts);
    state
}

/// New values for `UPDATE_BATCH` existing keys, spread over the keyspace.
fn update_records(data: &[u8], round: u64) -> Vec<u8> {
    let count = data.len() / RECORD_LEN;
    let fresh = records(UPDATE_BATCH, 0xfeed + round);
    let mut out = Vec::with_capacity(UPDATE_BATCH * RECORD_LEN);
    for i in 0..UPDATE_BATCH {
        let source = (i * (count / UPDATE_BATCH).max(1)) % count;
        out.extend_from_slice(&data[source * RECORD_LEN..source * RECORD_LEN + KEY_LEN]);
        out.extend_from_slice(&fresh[i * RECORD_LEN + KEY_LEN..(i + 1) * RECORD_LEN]);
    }
    out
}

struct Row {
    scenario: &'static str,
    shards: usize,
    entries: usize,
    ms_median: f64,
    baseline_ms: f64,
    overhead_bytes_per_entry: f64,
}

fn json_number(value: f64) -> String {
    if value.is_finite() { format!("{value:.1}") } else { "null".to_owned() }
}

fn print(rows: &[Row], json: bool) {
    if json {
        for r in rows {
            println!(
                "{{\"bench\":\"state\",\"scenario\":\"{}\",\"shards\":{},\"entries\":{},\"ms_median\":{:.3},\"baseline_ms_median\":{:.3},\"ratio_vs_blake3\":{:.3},\"overhead_bytes_per_entry\":{}}}",
                r.scenario, r.shards, r.entries, r.ms_median, r.baseline_ms, r.ms_median / r.baseline_ms, json_number(r.overhead_bytes_per_entry)
            );
        }
        return;
    }
    println!("{:<22} {:>6} {:>10} {:>11} {:>13} {:>9} {:>15}", "scenario", "shards", "entries", "ms median", "blake3 ms", "ratio", "overhead B/ent");
    for r in rows {
        println!(
            "{:<22} {:>6} {:>10} {:>11.2} {:>13.2} {:>8.2}x {:>15.1}",
            r.scenario, r.shards, r.entries, r.ms_median, r.baseline_ms, r.ms_median / r.baseline_ms, r.overhead_bytes_per_entry
        );
    }
}

fn main() {
    let options = options();
    let data = records(options.entries, 42);
    let build_baseline = baseline_ms(&data, options.runs);
    let mut rows = Vec::new();
    for shards in [1, 2] {
        let mut samples = Vec::new();
        let mut overhead = 0.0;
        let mut root = None;
        for _ in 0..options.runs {
            let before = LIVE_BYTES.load(Ordering::Relaxed);
            let start = Instant::now();
            let state = build(&data, shards);
            samples.push(start.elapsed().as_secs_f64() * 1e3);
            let grown = LIVE_BYTES.load(Ordering::Relaxed) - before;
            overhead = (grown as f64 - (options.entries * RECORD_LEN) as f64) / options.entries as f64;
            assert_eq!(*root.get_or_insert(state.root()), state.root(), "every build gives the same root");
            drop(state);
        }
        let row = Row { scenario: "build", shards, entries: options.entries, ms_median: median_ms(samples), baseline_ms: build_baseline, overhead_bytes_per_entry: overhead };
        rows.push(row);

        let mut state = build(&data, shards);
        let batches: Vec<Vec<u8>> = (0..options.runs as u64).map(|round| update_records(&data, round)).collect();
        let update_baseline = baseline_ms(&batches[0], options.runs);
        let samples = batches
            .iter()
            .enumerate()
            .map(|(round, batch)| {
                let hlc = (options.entries + 1 + round) as u64;
                time_ms(|| {
                    let parts = prepare_routed(&state, UPDATE_BATCH, shards, |i| prepare(&state, batch, i, hlc));
                    apply_routed(&mut state, parts);
                })
            })
            .collect();
        assert_eq!(state.len(), options.entries as u64, "updates replace, never add");
        rows.push(Row { scenario: "update_batch_10000", shards, entries: options.entries, ms_median: median_ms(samples), baseline_ms: update_baseline, overhead_bytes_per_entry: f64::NAN });
    }
    print(&rows, options.json);
    if !options.json {
        let speedup = rows[0].ms_median / rows[2].ms_median;
        println!("build speedup with 2 shards: {speedup:.2}x");
    }
}
