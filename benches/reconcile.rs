//! `cargo bench --bench reconcile -- [--json] [--n N]`
//!
//! Reconciliation against negentropy 0.5 (crates.io) in the same run, on the same
//! differences: n items per side (32-byte ids for negentropy; 32-byte keys with 100-byte
//! values for bhsync), d differences split between the sides, either among the most
//! recent items ("recent": clustered at the end of negentropy's timestamp order, its
//! favourable case) or spread evenly ("spread"), and d/2 keys held by both sides in
//! different versions ("versions", d differing ids for negentropy).
//! Reports bytes in both directions and round trips until both sides know the
//! difference, the time both sides spent (one process, no network), and for bhsync also
//! the bytes and time including the entry transfer. Then changes 1% of one side's keys
//! and times the update (sketch maintenance included) and the next session.
//! Run by `cargo test` as a smoke test with n = 20,000.

use std::time::Instant;

use bhsync::engine::shard_runner::{apply_routed, prepare_routed};
use bhsync::reconcile::{Initiator, Outcome, Responder, SessionConfig};
use bhsync::state::{CategorySpec, CategoryState, NodeId, Version};
use negentropy::{Id, Negentropy, NegentropyStorageVector};

const VALUE_LEN: usize = 100;
const CREATED_AT: u64 = 1_700_000_000;

/// Negentropy orders items by (timestamp, id). Item i gets timestamp 2i, except in the
/// spread scenario, whose extra items (i ≥ n) fall evenly between A's.
fn timestamp(i: usize, n: usize, spread: bool) -> u64 {
    if i < n || !spread {
        CREATED_AT + 2 * i as u64
    } else {
        CREATED_AT + (2 * ((i - n) * 7_919 % n) + 1) as u64
    }
}

struct Options {
    json: bool,
    n: usize,
    differences: Vec<usize>,
}

fn options() -> Options {
    let benching = std::env::args().any(|arg| arg == "--bench");
    let mut options = if benching {
        Options { json: false, n: 1_000_000, differences: vec![0, 10, 100, 1_000, 10_000, 100_000] }
    } else {
        Options { json: false, n: 20_000, differences: vec![0, 10, 100, 1_000] }
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--n" => options.n = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.n),
            _ => {}
        }
    }
    options
}

/// The 32-byte key (and negentropy id) of item `i`; `variant` makes another version.
fn key(i: usize) -> [u8; 32] {
    *blake3::hash(&(i as u64).to_le_bytes()).as_bytes()
}

fn value(i: usize, variant: u8) -> [u8; VALUE_LEN] {
    let mut value = [variant; VALUE_LEN];
    value[..8].copy_from_slice(&(i as u64).to_le_bytes());
    value
}

/// Which items each side holds: (item, version) pairs.
struct Scenario {
    name: &'static str,
    d: usize,
    a: Vec<(usize, u8)>,
    b: Vec<(usize, u8)>,
}

/// Differences among the most recent items: A's last d/2 items are missing from B,
/// which holds d/2 newer ones. In negentropy's (timestamp, id) order they cluster at
/// the end, its favourable case (and the shape of the reference figures in issue 3).
fn split_recent(n: usize, d: usize) -> Scenario {
    let common = n - d / 2;
    let a = (0..n).map(|i| (i, 0)).collect();
    let b = (0..common).chain(n..n + d / 2).map(|i| (i, 0)).collect();
    Scenario { name: "recent", d, a, b }
}

/// The same numbers of differences spread evenly over the order: B lacks every
/// `stride`-th item and holds d/2 others placed between A's.
fn split_spread(n: usize, d: usize) -> Scenario {
    let half = d / 2;
    let stride = n.checked_div(half).unwrap_or(usize::MAX);
    let a = (0..n).map(|i| (i, 0)).collect();
    let b = (0..n).filter(|i| i % stride != 0 || i / stride >= half).chain(n..n + half).map(|i| (i, 0)).collect();
    Scenario { name: "spread", d, a, b }
}

fn versions(n: usize, d: usize) -> Scenario {
    let a = (0..n).map(|i| (i, 0)).collect();
    let b = (0..n).map(|i| (i, u8::from(i < d / 2))).collect();
    Scenario { name: "versions", d, a, b }
}

fn bhsync_state(items: &[(usize, u8)], shards: usize, capacity: usize) -> CategoryState {
    let mut state = CategoryState::new("bench", CategorySpec::default(), shards).expect("valid category");
    state.enable_sync_sketch(capacity);
    let parts = prepare_routed(&state, items.len(), shards, |index| {
        let (i, variant) = items[index];
        let version = Version { hlc: 1 + variant as u64, origin: NodeId([1; 32]), counter: 1, tombstone: false };
        state.prepare(&key(i), &value(i, variant), version).expect("within bounds")
    });
    apply_routed(&mut state, parts);
    state
}

struct BhsyncRun {
    bytes_to_difference: u64,
    round_trips: u32,
    ms_to_difference: f64,
    total_bytes: u64,
    total_ms: f64,
    converged: bool,
}

fn run_bhsync(a: &mut CategoryState, b: &mut CategoryState, config: &SessionConfig) -> BhsyncRun {
    let start = Instant::now();
    let mut initiator = Initiator::new(config.clone(), 1, a, 0).expect("valid config");
    let mut responder = Responder::new(config.clone()).expect("valid config");
    let mut ms_to_difference = None;
    while !initiator.is_done() {
        let mut moved = false;
        while let Some(frame) = initiator.poll_transmit() {
            responder.handle_frame(&frame, b).expect("honest responder");
            moved = true;
        }
        while let Some(frame) = responder.poll_transmit() {
            initiator.handle_frame(0, &frame, a).expect("honest initiator");
            moved = true;
            // Both sides know the difference once the initiator has read `Decoded` (or
            // `Equal`); what follows is entry transfer.
            if ms_to_difference.is_none() && initiator.report().round_trips_to_difference > 0 {
                ms_to_difference = Some(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        assert!(moved || initiator.is_done(), "session stalled: {:?}", initiator.error());
    }
    let total_ms = start.elapsed().as_secs_f64() * 1e3;
    let report = initiator.report();
    BhsyncRun {
        bytes_to_difference: report.bytes_to_difference,
        round_trips: report.round_trips_to_difference,
        ms_to_difference: ms_to_difference.unwrap_or(total_ms),
        total_bytes: report.bytes_sent + report.bytes_received,
        total_ms,
        converged: matches!(report.outcome, Some(Outcome::Converged | Outcome::Equal)) && a.root() == b.root(),
    }
}

fn negentropy_storage(items: &[(usize, u8)], n: usize, spread: bool) -> NegentropyStorageVector {
    let mut storage = NegentropyStorageVector::with_capacity(items.len());
    for &(i, variant) in items {
        let mut id = key(i);
        id[31] ^= variant;
        storage.insert(timestamp(i, n, spread), Id::from_byte_array(id)).expect("insert");
    }
    storage.seal().expect("seal");
    storage
}

/// (bytes both ways, round trips, ms, differences found) for negentropy without frame limit.
fn run_negentropy(a: &NegentropyStorageVector, b: &NegentropyStorageVector) -> (u64, u32, f64, usize) {
    let start = Instant::now();
    let mut client = Negentropy::borrowed(a, 0).expect("client");
    let mut relay = Negentropy::borrowed(b, 0).expect("relay");
    let mut query = client.initiate().expect("initiate");
    let (mut bytes, mut round_trips) = (0u64, 0u32);
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        bytes += query.len() as u64;
        round_trips += 1;
        let answer = relay.reconcile(&query).expect("reconcile");
        bytes += answer.len() as u64;
        match client.reconcile_with_ids(&answer, &mut have, &mut need).expect("reconcile_with_ids") {
            Some(next) => query = next,
            None => break,
        }
    }
    (bytes, round_trips, start.elapsed().as_secs_f64() * 1e3, have.len() + need.len())
}

struct Row {
    scenario: &'static str,
    n: usize,
    d: usize,
    bhsync: BhsyncRun,
    negentropy: (u64, u32, f64, usize),
}

fn print_row(row: &Row, json: bool) {
    let (nb, nrt, nms, _) = row.negentropy;
    let b = &row.bhsync;
    if json {
        println!(
            "{{\"bench\":\"reconcile\",\"scenario\":\"{}\",\"n\":{},\"d\":{},\"bhsync_bytes\":{},\"bhsync_round_trips\":{},\"bhsync_ms\":{:.3},\"negentropy_bytes\":{},\"negentropy_round_trips\":{},\"negentropy_ms\":{:.3},\"bytes_ratio\":{:.3},\"bhsync_total_bytes\":{},\"bhsync_total_ms\":{:.3},\"converged\":{}}}",
            row.scenario, row.n, row.d, b.bytes_to_difference, b.round_trips, b.ms_to_difference, nb, nrt, nms,
            b.bytes_to_difference as f64 / nb.max(1) as f64, b.total_bytes, b.total_ms, b.converged
        );
    } else {
        println!(
            "{:<9} {:>8} {:>8} {:>11} {:>4} {:>9.2} {:>11} {:>4} {:>9.2} {:>7.3} {:>12} {:>9.2} {:>5}",
            row.scenario, row.n, row.d, b.bytes_to_difference, b.round_trips, b.ms_to_difference, nb, nrt, nms,
            b.bytes_to_difference as f64 / nb.max(1) as f64, b.total_bytes, b.total_ms, b.converged
        );
    }
}

fn main() {
    let options = options();
    let config = SessionConfig { sketch_capacity: 1 << 18, ..SessionConfig::default() };
    if !options.json {
        println!(
            "{:<9} {:>8} {:>8} {:>11} {:>4} {:>9} {:>11} {:>4} {:>9} {:>7} {:>12} {:>9} {:>5}",
            "scenario", "n", "d", "bhs bytes", "rt", "bhs ms", "neg bytes", "rt", "neg ms", "ratio", "bhs+items B", "bhs+it ms", "ok"
        );
    }
    let mut scenarios: Vec<Scenario> = options.differences.iter().map(|&d| split_recent(options.n, d)).collect();
    scenarios.extend(options.differences.iter().filter(|&&d| d > 0).map(|&d| split_spread(options.n, d)));
    scenarios.extend(options.differences.iter().filter(|&&d| d > 0).map(|&d| versions(options.n, d)));
    for scenario in scenarios {
        let (mut a, mut b) = (bhsync_state(&scenario.a, 2, config.sketch_capacity), bhsync_state(&scenario.b, 2, config.sketch_capacity));
        let spread = scenario.name == "spread";
        let (na, nb) = (negentropy_storage(&scenario.a, options.n, spread), negentropy_storage(&scenario.b, options.n, spread));
        let negentropy = run_negentropy(&na, &nb);
        let bhsync = run_bhsync(&mut a, &mut b, &config);
        let row = Row { scenario: scenario.name, n: options.n, d: scenario.d, bhsync, negentropy };
        print_row(&row, options.json);
        assert!(row.bhsync.converged, "bhsync did not converge on {} d={}", scenario.name, scenario.d);
    }
    after_one_percent_change(&options, &config);
}

/// Changes 1% of one side's keys and times the update and the next session: both grow
/// with the change, not with n, because the sketch is maintained, never rebuilt.
fn after_one_percent_change(options: &Options, config: &SessionConfig) {
    let items: Vec<(usize, u8)> = (0..options.n).map(|i| (i, 0)).collect();
    let (mut a, mut b) = (bhsync_state(&items, 2, config.sketch_capacity), bhsync_state(&items, 2, config.sketch_capacity));
    let changed = options.n / 100;
    let start = Instant::now();
    let parts = prepare_routed(&b, changed, 2, |index| {
        let i = index * 100;
        let version = Version { hlc: 9, origin: NodeId([2; 32]), counter: 2, tombstone: false };
        b.prepare(&key(i), &value(i, 7), version).expect("within bounds")
    });
    apply_routed(&mut b, parts);
    let update_ms = start.elapsed().as_secs_f64() * 1e3;
    let run = run_bhsync(&mut a, &mut b, config);
    if options.json {
        println!(
            "{{\"bench\":\"reconcile\",\"scenario\":\"after_1pct_change\",\"n\":{},\"changed\":{},\"update_ms\":{:.3},\"bhsync_bytes\":{},\"bhsync_round_trips\":{},\"bhsync_ms\":{:.3},\"bhsync_total_ms\":{:.3},\"converged\":{}}}",
            options.n, changed, update_ms, run.bytes_to_difference, run.round_trips, run.ms_to_difference, run.total_ms, run.converged
        );
    } else {
        println!(
            "after changing {changed} of {} keys: update with sketch upkeep {update_ms:.1} ms; next session {} bytes, {} round trips, {:.1} ms to the difference, {:.1} ms with transfer",
            options.n, run.bytes_to_difference, run.round_trips, run.ms_to_difference, run.total_ms
        );
    }
    assert!(run.converged);
}
