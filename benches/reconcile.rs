//! `cargo bench --bench reconcile -- [--json] [--n N] [--d D1,D2,…]`
//!
//! Reconciliation against negentropy 0.5 (crates.io) in the same run, on the same
//! differences, with the node's default session configuration (`CoreConfig::default()`:
//! its sketch capacity and frame cap, and `NodeConfig::default()`'s shard count), so the
//! rows show what a node pays, split fallback included. Shapes, n items per side (32-byte
//! ids for negentropy; 32-byte keys with 100-byte values for bhsync):
//!
//! - "recent": d differences split between the sides among the most recent items
//!   (clustered at the end of negentropy's timestamp order, its favourable case);
//! - "spread": the same counts spread evenly over the order;
//! - "versions": d/2 keys held by both sides in different versions (d differing ids);
//! - "offline": 8 origins write in turn; the lagging node misses the last d writes, a
//!   third of which (every third write) overwrite a key it holds, chosen at random
//!   (seed [`OVERWRITE_SEED`]), the other two thirds create keys;
//! - "lossy": "offline", and the lagging node also lost 1% of the n older pushes, chosen
//!   at random (seed [`LOSS_SEED`]).
//!
//! In "offline" and "lossy" an item's version is its write (hlc = write number, origin
//! and counter from the writing origin), its value 100 pseudo-random bytes, and
//! negentropy gets the same item sets: id = BLAKE3(key ‖ write number), timestamp = write
//! time. The lagging node initiates (it comes back and syncs).
//!
//! Per row: bytes in both directions and round trips until both sides know the
//! difference, the wall and CPU time both sides spent (one process, no network), and
//! for bhsync the bytes and time including the entry transfer; for "offline" and "lossy"
//! also the overhead beyond the entries that had to travel. Sessions that exhaust the
//! sketch before the split fallback are counted (`reconcile::in_process` drops them).
//! Then prints the sketch memory a category costs, changes 1% of one side's keys and
//! times the update (sketch maintenance included) and the next session.
//! Run by `cargo test` as a smoke test with n = 20,000.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use bhsync::engine::shard_runner::{apply_routed, prepare_routed};
use bhsync::node::{CoreConfig, NodeConfig};
use bhsync::reconcile::message::{entry_wire_len, Message, HEADER_LEN};
use bhsync::reconcile::{CodedSymbol, Initiator, Outcome, Responder, SessionConfig, SessionError, SessionReport, SetSketch};
use bhsync::sansio::SeededRng;
use bhsync::state::{CategorySpec, CategoryState, Entry, NodeId, TreePath, Version};
use negentropy::{Id, Negentropy, NegentropyStorageVector};

const VALUE_LEN: usize = 100;
const CREATED_AT: u64 = 1_700_000_000;
/// Origins writing in turn in "offline" and "lossy".
const ORIGINS: u64 = 8;
/// Picks the keys the missed writes overwrite ("offline" and "lossy").
const OVERWRITE_SEED: u64 = 0x0FF1_13E5;
/// Picks the older pushes the lagging node lost ("lossy").
const LOSS_SEED: u64 = 0x1055_E5ED;
/// Of the n older pushes, the fraction the lagging node lost ("lossy").
const LOSS_RATE: f64 = 0.01;
/// Position bits added per split of the fallback (as `reconcile::in_process` and the node).
const SPLIT_BITS: u32 = 4;
/// Threads that hash the items when a state is built.
const BUILD_THREADS: usize = 2;

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
            "--d" => {
                let list = args.next().unwrap_or_default();
                options.differences = list.split(',').filter_map(|d| d.trim().parse().ok()).collect();
            }
            _ => {}
        }
    }
    options
}

/// The session configuration and shard count a node runs with when nothing is set.
fn node_defaults() -> (SessionConfig, usize) {
    let core = CoreConfig::default();
    // `Node` passes `NodeConfig::shards` (clamped to 1..=16) as the core's shard count.
    let shards = NodeConfig::default().shards.clamp(1, 16);
    (core.session, shards)
}

/// CPU time this process has used, in ms: both sides of a session run in it.
fn cpu_ms() -> f64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a pointer to a live local.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    now.tv_sec as f64 * 1e3 + now.tv_nsec as f64 / 1e6
}

/// Wall and CPU time since a start, in ms.
#[derive(Clone, Copy, Default)]
struct Elapsed {
    wall_ms: f64,
    cpu_ms: f64,
}

impl std::ops::AddAssign for Elapsed {
    fn add_assign(&mut self, other: Elapsed) {
        self.wall_ms += other.wall_ms;
        self.cpu_ms += other.cpu_ms;
    }
}

struct Stopwatch {
    wall: Instant,
    cpu_ms: f64,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch { wall: Instant::now(), cpu_ms: cpu_ms() }
    }

    fn elapsed(&self) -> Elapsed {
        Elapsed { wall_ms: self.wall.elapsed().as_secs_f64() * 1e3, cpu_ms: cpu_ms() - self.cpu_ms }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Recent,
    Spread,
    Versions,
    Offline,
    Lossy,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Recent => "recent",
            Shape::Spread => "spread",
            Shape::Versions => "versions",
            Shape::Offline => "offline",
            Shape::Lossy => "lossy",
        }
    }

    /// Whether items are writes of 8 origins (else the original shapes' encoding).
    fn is_written(self) -> bool {
        matches!(self, Shape::Offline | Shape::Lossy)
    }

    fn version(self, held: Held) -> Version {
        if self.is_written() {
            let origin = origin(held.write % ORIGINS);
            Version { hlc: 1 + held.write, origin, counter: 1 + held.write / ORIGINS, tombstone: false }
        } else {
            Version { hlc: 1 + held.write, origin: NodeId([1; 32]), counter: 1, tombstone: false }
        }
    }

    fn value(self, held: Held) -> [u8; VALUE_LEN] {
        let mut value = [held.write as u8; VALUE_LEN];
        if self.is_written() {
            // Pseudo-random bytes: values that compress no better than real payloads.
            let mut hasher = blake3::Hasher::new();
            hasher.update(&(held.key as u64).to_le_bytes()).update(&held.write.to_le_bytes());
            hasher.finalize_xof().fill(&mut value);
        } else {
            value[..8].copy_from_slice(&(held.key as u64).to_le_bytes());
        }
        value
    }

    /// Negentropy's (timestamp, id) for an item.
    fn negentropy_item(self, held: Held, n: usize) -> (u64, [u8; 32]) {
        if self.is_written() {
            let mut hasher = blake3::Hasher::new();
            hasher.update(&key(held.key)).update(&held.write.to_le_bytes());
            (CREATED_AT + held.write, *hasher.finalize().as_bytes())
        } else {
            let mut id = key(held.key);
            id[31] ^= held.write as u8;
            (timestamp(held.key, n, self == Shape::Spread), id)
        }
    }
}

/// The node id of origin `index` (of [`ORIGINS`]).
fn origin(index: u64) -> NodeId {
    NodeId(*blake3::hash(&index.to_le_bytes()).as_bytes())
}

/// The 32-byte key (and negentropy id in the original shapes) of item `i`.
fn key(i: usize) -> [u8; 32] {
    *blake3::hash(&(i as u64).to_le_bytes()).as_bytes()
}

/// One version a side holds: the key's index and the write that made the version (in
/// the original shapes, 0 or 1 for the version variant).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Held {
    key: usize,
    write: u64,
}

/// Which versions each side holds; `a` initiates.
struct Scenario {
    shape: Shape,
    d: usize,
    a: Vec<Held>,
    b: Vec<Held>,
    /// Older pushes the lagging node lost ("lossy").
    lost: usize,
}

fn original(shape: Shape, d: usize, a: Vec<(usize, u64)>, b: Vec<(usize, u64)>) -> Scenario {
    let held = |items: Vec<(usize, u64)>| items.into_iter().map(|(key, write)| Held { key, write }).collect();
    Scenario { shape, d, a: held(a), b: held(b), lost: 0 }
}

/// Differences among the most recent items: A's last d/2 items are missing from B,
/// which holds d/2 newer ones. In negentropy's (timestamp, id) order they cluster at
/// the end, its favourable case (and the shape of the reference figures in issue 3).
fn split_recent(n: usize, d: usize) -> Scenario {
    let common = n - d / 2;
    let a = (0..n).map(|i| (i, 0)).collect();
    let b = (0..common).chain(n..n + d / 2).map(|i| (i, 0)).collect();
    original(Shape::Recent, d, a, b)
}

/// The same numbers of differences spread evenly over the order: B lacks every
/// `stride`-th item and holds d/2 others placed between A's.
fn split_spread(n: usize, d: usize) -> Scenario {
    let half = d / 2;
    let stride = n.checked_div(half).unwrap_or(usize::MAX);
    let a = (0..n).map(|i| (i, 0)).collect();
    let b = (0..n).filter(|i| i % stride != 0 || i / stride >= half).chain(n..n + half).map(|i| (i, 0)).collect();
    original(Shape::Spread, d, a, b)
}

fn versions(n: usize, d: usize) -> Scenario {
    let a = (0..n).map(|i| (i, 0)).collect();
    let b = (0..n).map(|i| (i, u64::from(i < d / 2))).collect();
    original(Shape::Versions, d, a, b)
}

/// Writes 0..n create keys 0..n (origins in turn); the lagging node `a` holds them, the
/// up-to-date node `b` also holds writes n..n+d: every third overwrites a distinct key
/// chosen at random among the first n, the others create keys n, n+1, … With `lossy`,
/// `a` also lacks 1% of writes 0..n, chosen at random.
fn offline(n: usize, d: usize, lossy: bool) -> Scenario {
    assert!(d / 3 <= n / 2, "offline: {} overwrites cannot pick distinct keys among {n} fast", d / 3);
    let older: Vec<Held> = (0..n).map(|i| Held { key: i, write: i as u64 }).collect();
    let mut up_to_date = older.clone();
    let mut overwrite_rng = SeededRng::new(OVERWRITE_SEED);
    let mut overwritten = HashSet::with_capacity(d / 3);
    let mut next_key = n;
    for missed in 0..d {
        let write = (n + missed) as u64;
        if missed % 3 == 2 {
            let target = loop {
                let candidate = overwrite_rng.index(n);
                if overwritten.insert(candidate) {
                    break candidate;
                }
            };
            debug_assert_eq!(up_to_date[target].key, target, "the first n versions are indexed by key");
            up_to_date[target].write = write;
        } else {
            up_to_date.push(Held { key: next_key, write });
            next_key += 1;
        }
    }
    let mut loss_rng = SeededRng::new(LOSS_SEED);
    let lagging: Vec<Held> = if lossy { older.into_iter().filter(|_| !loss_rng.chance(LOSS_RATE)).collect() } else { older };
    let lost = n - lagging.len();
    let shape = if lossy { Shape::Lossy } else { Shape::Offline };
    Scenario { shape, d, a: lagging, b: up_to_date, lost }
}

fn bhsync_state(shape: Shape, items: &[Held], shards: usize, capacity: usize) -> CategoryState {
    let mut state = CategoryState::new("bench", CategorySpec::default(), shards).expect("valid category");
    state.enable_sync_sketch(capacity);
    let parts = prepare_routed(&state, items.len(), BUILD_THREADS, |index| {
        let held = items[index];
        state.prepare(&key(held.key), &shape.value(held), shape.version(held)).expect("within bounds")
    });
    apply_routed(&mut state, parts);
    assert_eq!(state.len(), items.len() as u64, "every held key is distinct");
    state
}

/// Resident bytes of a category's maintained sketches: per shard, the structure and its
/// coded symbols.
fn sketch_bytes(state: &CategoryState) -> usize {
    let per_sketch = |sketch: &SetSketch| std::mem::size_of::<SetSketch>() + sketch.capacity() * std::mem::size_of::<CodedSymbol>();
    state.shards().iter().filter_map(|shard| shard.sketch()).map(per_sketch).sum()
}

/// What one session (one scope) cost.
struct SessionRun {
    report: SessionReport,
    /// The sketch could not decode the difference: the scope was split.
    exhausted: bool,
    to_difference: Elapsed,
    total: Elapsed,
    /// Bytes of the `Items` frames (the entries, as the codec encodes them).
    item_bytes: u64,
    parts: Vec<SessionRun>,
}

impl SessionRun {
    fn round_trips_to_difference(&self) -> u32 {
        if self.exhausted {
            self.report.round_trips
        } else {
            self.report.round_trips_to_difference
        }
    }

    fn bytes_to_difference(&self) -> u64 {
        if self.exhausted {
            self.report.bytes_sent + self.report.bytes_received
        } else {
            self.report.bytes_to_difference
        }
    }

    /// Every session of the run, this one first.
    fn sessions(&self) -> Vec<&SessionRun> {
        let mut all = vec![self];
        all.extend(self.parts.iter().flat_map(SessionRun::sessions));
        all
    }
}

/// The kind byte (frame offset 1, see `message::KIND_ABORT`) of an `Items` frame.
fn items_kind() -> u8 {
    let mut frame = Vec::new();
    Message::Items { part: 0, entries: Vec::new() }.encode(0, 0, &mut frame);
    frame[1]
}

/// Runs one session over `scope`, counting it in full even when the sketch is
/// exhausted (the responder's `Abort` then reaches the initiator, as on a network).
fn run_session(a: &mut CategoryState, b: &mut CategoryState, config: &SessionConfig, scope: TreePath) -> SessionRun {
    let items_kind = items_kind();
    let stopwatch = Stopwatch::start();
    let mut initiator = Initiator::new_scoped(config.clone(), 1, a, scope, 0).expect("valid config");
    let mut responder = Responder::new(config.clone()).expect("valid config");
    let (mut to_difference, mut item_bytes) = (None, 0u64);
    while !initiator.is_done() {
        let mut moved = false;
        while let Some(frame) = initiator.poll_transmit() {
            item_bytes += if frame.get(1) == Some(&items_kind) { frame.len() as u64 } else { 0 };
            if let Err(error) = responder.handle_frame(&frame, b) {
                assert!(matches!(error, SessionError::SketchExhausted { .. }), "responder failed: {error}");
            }
            moved = true;
        }
        while let Some(frame) = responder.poll_transmit() {
            item_bytes += if frame.get(1) == Some(&items_kind) { frame.len() as u64 } else { 0 };
            // An error ends the initiator; which one is checked below.
            let _ = initiator.handle_frame(0, &frame, a);
            moved = true;
            // Both sides know the difference once the initiator has read `Decoded` (or
            // `Equal`); what follows is entry transfer.
            if to_difference.is_none() && initiator.report().round_trips_to_difference > 0 {
                to_difference = Some(stopwatch.elapsed());
            }
        }
        assert!(moved || initiator.is_done(), "session stalled: {:?}", initiator.error());
    }
    let total = stopwatch.elapsed();
    let exhausted = match initiator.error() {
        None => false,
        Some(SessionError::SketchExhausted { .. }) => true,
        Some(error) => panic!("session failed: {error}"),
    };
    let report = initiator.report().clone();
    SessionRun { report, exhausted, to_difference: to_difference.unwrap_or(total), total, item_bytes, parts: Vec::new() }
}

/// Reconciles `scope`, splitting it 16 ways (recursively) when its sketch is exhausted,
/// as `reconcile::in_process` and the node's split fallback do.
fn reconcile_scope(a: &mut CategoryState, b: &mut CategoryState, config: &SessionConfig, scope: TreePath) -> SessionRun {
    let mut run = run_session(a, b, config, scope);
    if run.exhausted {
        assert!(scope.len() + SPLIT_BITS <= TreePath::MAX_LEN, "split fallback ran out of path bits");
        for part in 0..(1u64 << SPLIT_BITS) {
            let bits = scope.bits() | (part << (64 - scope.len() - SPLIT_BITS));
            let child = TreePath::new(bits, scope.len() + SPLIT_BITS).expect("a valid child path");
            run.parts.push(reconcile_scope(a, b, config, child));
        }
    }
    run
}

/// Round trips until every part knows its difference when up to `slots` sessions run at
/// once and split parts queue first in, first out, as the node runs them
/// (`CoreConfig::max_parallel_scopes`, src/node/sync.rs `pump`).
fn round_trips_in_parallel(root: &SessionRun, slots: usize) -> u32 {
    let mut queue: VecDeque<&SessionRun> = VecDeque::from([root]);
    let mut running: Vec<(u32, &SessionRun)> = Vec::new(); // (end, session)
    let (mut now, mut known) = (0u32, 0u32);
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < slots {
            let Some(session) = queue.pop_front() else { break };
            known = known.max(now + session.round_trips_to_difference());
            running.push((now + session.report.round_trips.max(1), session));
        }
        now = running.iter().map(|&(end, _)| end).min().expect("a session runs");
        for (_, session) in running.iter().filter(|&&(end, _)| end == now) {
            queue.extend(session.parts.iter());
        }
        running.retain(|&(end, _)| end != now);
    }
    known
}

struct BhsyncRun {
    bytes_to_difference: u64,
    round_trips: u32,
    round_trips_node: u32,
    sessions: usize,
    to_difference: Elapsed,
    total: Elapsed,
    total_bytes: u64,
    item_bytes: u64,
    difference: u64,
    converged: bool,
}

fn run_bhsync(a: &mut CategoryState, b: &mut CategoryState, config: &SessionConfig, parallel_scopes: usize) -> BhsyncRun {
    let root = reconcile_scope(a, b, config, TreePath::ROOT);
    let sessions = root.sessions();
    let finished = sessions.iter().filter(|s| !s.exhausted);
    let still_different = finished.clone().any(|s| matches!(s.report.outcome, Some(Outcome::StillDifferent(_))));
    let mut run = BhsyncRun {
        bytes_to_difference: sessions.iter().map(|s| s.bytes_to_difference()).sum(),
        round_trips: sessions.iter().map(|s| s.round_trips_to_difference()).sum(),
        round_trips_node: round_trips_in_parallel(&root, parallel_scopes),
        sessions: sessions.len(),
        to_difference: Elapsed::default(),
        total: Elapsed::default(),
        total_bytes: sessions.iter().map(|s| s.report.bytes_sent + s.report.bytes_received).sum(),
        item_bytes: sessions.iter().map(|s| s.item_bytes).sum(),
        difference: finished.map(|s| s.report.difference).sum(),
        converged: !still_different && a.root() == b.root(),
    };
    for session in &sessions {
        run.to_difference += if session.exhausted { session.total } else { session.to_difference };
        run.total += session.total;
    }
    run
}

fn negentropy_storage(shape: Shape, items: &[Held], n: usize) -> NegentropyStorageVector {
    let mut storage = NegentropyStorageVector::with_capacity(items.len());
    for &held in items {
        let (timestamp, id) = shape.negentropy_item(held, n);
        storage.insert(timestamp, Id::from_byte_array(id)).expect("insert");
    }
    storage.seal().expect("seal");
    storage
}

struct NegentropyRun {
    bytes: u64,
    round_trips: u32,
    elapsed: Elapsed,
    difference: usize,
}

/// Negentropy without frame limit, client on `a`'s side.
fn run_negentropy(a: &NegentropyStorageVector, b: &NegentropyStorageVector) -> NegentropyRun {
    let stopwatch = Stopwatch::start();
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
    NegentropyRun { bytes, round_trips, elapsed: stopwatch.elapsed(), difference: have.len() + need.len() }
}

/// The versions `b` holds that `a` lacks: for "offline" and "lossy", exactly the entries
/// that had to travel (only the live version of an overwritten key).
fn entries_needed(scenario: &Scenario) -> Vec<Entry> {
    let held: HashSet<Held> = scenario.a.iter().copied().collect();
    let shape = scenario.shape;
    let entry = |h: Held| Entry { key: key(h.key).to_vec(), value: shape.value(h).to_vec(), version: shape.version(h) };
    scenario.b.iter().copied().filter(|h| !held.contains(h)).map(entry).collect()
}

/// The bytes `entries` take in `Items` frames cut at the frame cap (as the session cuts
/// them; zstd where it pays): what the entries themselves cost on the wire.
fn encoded_len(entries: &[Entry], config: &SessionConfig) -> u64 {
    let budget = config.max_frame_len - HEADER_LEN - 24;
    let (mut total, mut start) = (0u64, 0usize);
    while start < entries.len() {
        let (mut end, mut size) = (start, 0usize);
        while end < entries.len() && (end == start || size + entry_wire_len(&entries[end]) <= budget) {
            size += entry_wire_len(&entries[end]);
            end += 1;
        }
        let mut frame = Vec::with_capacity(size + HEADER_LEN + 24);
        Message::Items { part: 0, entries: entries[start..end].to_vec() }.encode(1, 1, &mut frame);
        total += frame.len() as u64;
        start = end;
    }
    total
}

/// What the entries that had to travel cost, and the bytes beyond them.
struct Transfer {
    entries: usize,
    entries_bytes: u64,
    overhead_bytes: i64,
}

struct Row {
    scenario: &'static str,
    n: usize,
    d: usize,
    lost: usize,
    bhsync: BhsyncRun,
    negentropy: NegentropyRun,
    transfer: Option<Transfer>,
}

fn print_header() {
    println!(
        "{:<8} {:>7} {:>6} {:>6} | {:>9} {:>3} {:>3} {:>3} {:>7} {:>7} | {:>9} {:>2} {:>7} {:>7} | {:>5} {:>10} {:>8} {:>2}",
        "shape", "n", "d", "diff", "bhs B", "rt", "rtN", "ses", "bhs ms", "bhs cpu", "neg B", "rt", "neg ms", "neg cpu", "ratio",
        "bhs+items", "overhead", "ok"
    );
}

fn print_row(row: &Row, json: bool) {
    let (b, neg) = (&row.bhsync, &row.negentropy);
    let ratio = b.bytes_to_difference as f64 / neg.bytes.max(1) as f64;
    let overhead = row.transfer.as_ref().map(|t| t.overhead_bytes);
    if json {
        let or_null = |value: Option<String>| value.unwrap_or_else(|| "null".into());
        println!(
            "{{\"bench\":\"reconcile\",\"scenario\":\"{s}\",\"shape\":\"{s}\",\"n\":{},\"d\":{},\"lost\":{},\"difference\":{},\"bhsync_bytes\":{},\"bhsync_round_trips\":{},\"bhsync_round_trips_node\":{},\"bhsync_sessions\":{},\"bhsync_ms\":{:.3},\"bhsync_cpu_ms\":{:.3},\"negentropy_bytes\":{},\"negentropy_round_trips\":{},\"negentropy_ms\":{:.3},\"negentropy_cpu_ms\":{:.3},\"negentropy_difference\":{},\"bytes_ratio\":{:.3},\"bhsync_total_bytes\":{},\"bhsync_total_ms\":{:.3},\"bhsync_total_cpu_ms\":{:.3},\"bhsync_item_bytes\":{},\"entries\":{},\"entries_bytes\":{},\"overhead_bytes\":{},\"converged\":{}}}",
            row.n, row.d, row.lost, b.difference, b.bytes_to_difference, b.round_trips, b.round_trips_node, b.sessions,
            b.to_difference.wall_ms, b.to_difference.cpu_ms, neg.bytes, neg.round_trips, neg.elapsed.wall_ms,
            neg.elapsed.cpu_ms, neg.difference, ratio, b.total_bytes, b.total.wall_ms, b.total.cpu_ms, b.item_bytes,
            or_null(row.transfer.as_ref().map(|t| t.entries.to_string())),
            or_null(row.transfer.as_ref().map(|t| t.entries_bytes.to_string())),
            or_null(overhead.map(|o| o.to_string())), b.converged,
            s = row.scenario,
        );
    } else {
        println!(
            "{:<8} {:>7} {:>6} {:>6} | {:>9} {:>3} {:>3} {:>3} {:>7.2} {:>7.2} | {:>9} {:>2} {:>7.2} {:>7.2} | {:>5.2} {:>10} {:>8} {:>2}",
            row.scenario, row.n, row.d, b.difference, b.bytes_to_difference, b.round_trips, b.round_trips_node, b.sessions,
            b.to_difference.wall_ms, b.to_difference.cpu_ms, neg.bytes, neg.round_trips, neg.elapsed.wall_ms,
            neg.elapsed.cpu_ms, ratio, b.total_bytes, overhead.map_or("-".into(), |o| o.to_string()),
            if b.converged { "ok" } else { "NO" }
        );
    }
}

fn scenarios(options: &Options) -> Vec<Scenario> {
    let (n, differences) = (options.n, &options.differences);
    let nonzero = || differences.iter().copied().filter(|&d| d > 0);
    let mut scenarios: Vec<Scenario> = differences.iter().map(|&d| split_recent(n, d)).collect();
    scenarios.extend(nonzero().map(|d| split_spread(n, d)));
    scenarios.extend(nonzero().map(|d| versions(n, d)));
    scenarios.extend(nonzero().map(|d| offline(n, d, false)));
    scenarios.extend(nonzero().map(|d| offline(n, d, true)));
    scenarios
}

fn run_row(scenario: &Scenario, options: &Options, config: &SessionConfig, shards: usize) -> Row {
    let shape = scenario.shape;
    let mut a = bhsync_state(shape, &scenario.a, shards, config.sketch_capacity);
    let mut b = bhsync_state(shape, &scenario.b, shards, config.sketch_capacity);
    let (na, nb) = (negentropy_storage(shape, &scenario.a, options.n), negentropy_storage(shape, &scenario.b, options.n));
    let negentropy = run_negentropy(&na, &nb);
    let bhsync = run_bhsync(&mut a, &mut b, config, CoreConfig::default().max_parallel_scopes);
    let transfer = shape.is_written().then(|| {
        let entries = entries_needed(scenario);
        let entries_bytes = encoded_len(&entries, config);
        Transfer { entries: entries.len(), entries_bytes, overhead_bytes: bhsync.total_bytes as i64 - entries_bytes as i64 }
    });
    let row = Row { scenario: shape.name(), n: options.n, d: scenario.d, lost: scenario.lost, bhsync, negentropy, transfer };
    assert!(row.bhsync.converged, "bhsync did not converge on {} d={}", row.scenario, row.d);
    row
}

fn main() {
    let options = options();
    let (config, shards) = node_defaults();
    if !options.json {
        print_header();
    }
    for scenario in scenarios(&options) {
        let row = run_row(&scenario, &options, &config, shards);
        print_row(&row, options.json);
    }
    sketch_memory(&options, &config, shards);
    after_one_percent_change(&options, &config, shards);
}

/// The memory the node's default configuration costs per category: the maintained
/// sketches (resident), and the sketches the split fallback builds per running part.
fn sketch_memory(options: &Options, config: &SessionConfig, shards: usize) {
    let items: Vec<Held> = (0..1_000).map(|i| Held { key: i, write: 0 }).collect();
    let state = bhsync_state(Shape::Recent, &items, shards, config.sketch_capacity);
    let resident = sketch_bytes(&state);
    assert_eq!(resident, shards * (std::mem::size_of::<SetSketch>() + config.sketch_capacity * std::mem::size_of::<CodedSymbol>()));
    // A split part's scope builds a sketch of the same capacity on each side while its
    // session runs; the node runs `max_parallel_scopes` parts at once.
    let per_part = std::mem::size_of::<SetSketch>() + config.sketch_capacity * std::mem::size_of::<CodedSymbol>();
    let parallel = CoreConfig::default().max_parallel_scopes;
    if options.json {
        println!(
            "{{\"bench\":\"reconcile\",\"scenario\":\"sketch_memory\",\"sketch_capacity\":{},\"shards\":{shards},\"symbol_bytes\":{},\"sketch_struct_bytes\":{},\"resident_bytes_per_category\":{resident},\"fallback_bytes_per_part_per_side\":{per_part},\"max_parallel_scopes\":{parallel}}}",
            config.sketch_capacity, std::mem::size_of::<CodedSymbol>(), std::mem::size_of::<SetSketch>()
        );
    } else {
        println!(
            "sketch memory per category (node defaults: {} symbols of {} B, {shards} shard(s)): {resident} B resident; the split fallback adds {per_part} B per running part on each side, up to {parallel} parts at once",
            config.sketch_capacity, std::mem::size_of::<CodedSymbol>()
        );
    }
}

/// Changes 1% of one side's keys and times the update and the next session: both grow
/// with the change, not with n, because the sketch is maintained, never rebuilt.
fn after_one_percent_change(options: &Options, config: &SessionConfig, shards: usize) {
    let items: Vec<Held> = (0..options.n).map(|i| Held { key: i, write: 0 }).collect();
    let (mut a, mut b) = (bhsync_state(Shape::Recent, &items, shards, config.sketch_capacity), bhsync_state(Shape::Recent, &items, shards, config.sketch_capacity));
    let changed = options.n / 100;
    let start = Instant::now();
    let parts = prepare_routed(&b, changed, BUILD_THREADS, |index| {
        let i = index * 100;
        let version = Version { hlc: 9, origin: NodeId([2; 32]), counter: 2, tombstone: false };
        b.prepare(&key(i), &Shape::Recent.value(Held { key: i, write: 7 }), version).expect("within bounds")
    });
    apply_routed(&mut b, parts);
    let update_ms = start.elapsed().as_secs_f64() * 1e3;
    let run = run_bhsync(&mut a, &mut b, config, CoreConfig::default().max_parallel_scopes);
    if options.json {
        println!(
            "{{\"bench\":\"reconcile\",\"scenario\":\"after_1pct_change\",\"n\":{},\"changed\":{},\"update_ms\":{:.3},\"bhsync_bytes\":{},\"bhsync_round_trips\":{},\"bhsync_ms\":{:.3},\"bhsync_total_ms\":{:.3},\"converged\":{}}}",
            options.n, changed, update_ms, run.bytes_to_difference, run.round_trips, run.to_difference.wall_ms, run.total.wall_ms, run.converged
        );
    } else {
        println!(
            "after changing {changed} of {} keys: update with sketch upkeep {update_ms:.1} ms; next session {} bytes, {} round trips, {:.1} ms to the difference, {:.1} ms with transfer",
            options.n, run.bytes_to_difference, run.round_trips, run.to_difference.wall_ms, run.total.wall_ms
        );
    }
    assert!(run.converged);
}
