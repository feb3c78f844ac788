//! `cargo bench --bench time -- [--json] [--trials N] [--runs R]`
//!
//! Issue 4's benchmark, two parts in one run.
//!
//! **Network time.** A simulated exchange with 7 peers (deterministic: seeded
//! xorshift, no ambient randomness). True offset 0 for honest peers; each path has
//! its own base one-way delay, 1–10 ms uniformly, drawn independently for the two
//! directions (so paths are asymmetric), plus exponential jitter with a 1 ms mean in
//! each direction and 20–200 µs of processing at the peer. Liars: a clock at +1 h; a
//! *forger* of its processing time `t3 − t2`, either subtle (it claims 90 % of its
//! base round trip as processing, which makes its delay look tiny and shifts its
//! offset by ~0.45 RTT: the lie stays inside what the timestamps can disprove) or
//! gross (it claims 150 ms more processing). Each trial runs 8 rounds of exchanges
//! (filling the 8-sample filters), then one `NetworkTime::update`. Compared in the
//! same run with the original design's confidence-weighted mean:
//! `estimatedPeerTime = peerTime + rtt/2`, `offset = estimatedPeerTime − t4`,
//! weight `1/rtt`, with `peerTime = t3` and `rtt = t4 − t1`, over the last round.
//!
//! **CRDTs** against the `crdts` crate 7.x on the same workloads: full-state merge
//! throughput, delta (bhsync) versus op (crdts) apply throughput, and bytes per delta
//! (bhsync's own encoding; crdts serialized with bincode 1.3, both its default
//! fixed-width integers and its varint option). Actors are 32-byte ids on both sides.
//! Medians of R runs; ratios are bhsync / crdts for throughput, crdts / bhsync for
//! size (above 1 means bhsync is faster or smaller).

use std::hint::black_box;
use std::time::Instant;

use bhsync::crdt::{Crdt, GCounter, LwwRegister, MvRegister, OrSet, PnCounter};
use bhsync::state::NodeId;
use bhsync::time::{Exchange, HlcTimestamp, NetworkTime, NetworkTimeConfig, NetworkTimeError};
use bincode::Options as _;
use crdts::{CmRDT, CvRDT};

struct Options {
    json: bool,
    trials: usize,
    runs: usize,
}

fn options() -> Options {
    let mut options = Options { json: false, trials: 200, runs: 5 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--trials" => options.trials = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.trials),
            "--runs" => options.runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.runs),
            _ => {} // cargo bench passes --bench; ignore what is not ours.
        }
    }
    options
}

/// xorshift64* (Vigna 2016): deterministic, seeded, good enough for a simulation.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

// ───────────────────────────── network time ─────────────────────────────

#[derive(Clone, Copy)]
enum Peer {
    Honest,
    ClockOffset(i64),
    SubtleForger,
    GrossForger,
}

struct Path {
    out_us: f64,
    back_us: f64,
}

fn exchange(rng: &mut Rng, peer: Peer, path: &Path, t1_us: i64) -> Exchange {
    let out = path.out_us + rng.exponential(1_000.0);
    let back = path.back_us + rng.exponential(1_000.0);
    let processing = rng.uniform(20.0, 200.0);
    let clock_offset = if let Peer::ClockOffset(offset) = peer { offset } else { 0 };
    let t2 = t1_us + out as i64 + clock_offset;
    let mut t3 = t2 + processing as i64;
    let t4 = t1_us + (out + processing + back) as i64;
    match peer {
        Peer::SubtleForger => t3 += (0.9 * (path.out_us + path.back_us)) as i64,
        Peer::GrossForger => t3 += 150_000,
        Peer::Honest | Peer::ClockOffset(_) => {}
    }
    Exchange { t1_us, t2_us: t2, t3_us: t3, t4_us: t4 }
}

/// The original design's confidence-weighted mean.
fn naive_offset_us(exchanges: &[Exchange]) -> f64 {
    let (mut weighted, mut total) = (0.0, 0.0);
    for e in exchanges {
        let rtt = (e.t4_us - e.t1_us).max(1) as f64;
        let estimated_peer_time = e.t3_us as f64 + rtt / 2.0;
        let offset = estimated_peer_time - e.t4_us as f64;
        weighted += offset / rtt;
        total += 1.0 / rtt;
    }
    weighted / total
}

struct TimeRow {
    scenario: &'static str,
    liars: usize,
    trials: usize,
    adjusted: usize,
    refused: usize,
    refusal_reason: String,
    bhsync_error_ms_median: Option<f64>,
    bhsync_error_ms_max: Option<f64>,
    naive_error_ms_median: f64,
    naive_error_ms_max: f64,
}

fn time_scenario(scenario: &'static str, liars: &[Peer], trials: usize, seed: u64) -> TimeRow {
    const PEERS: usize = 7;
    const ROUNDS: i64 = 8;
    let mut rng = Rng::new(seed);
    let (mut bhsync_errors, mut naive_errors) = (Vec::new(), Vec::new());
    let mut refused = 0;
    let mut refusal_reason = String::new();
    for _ in 0..trials {
        let peers: Vec<Peer> = (0..PEERS).map(|index| liars.get(index).copied().unwrap_or(Peer::Honest)).collect();
        let paths: Vec<Path> = (0..PEERS)
            .map(|_| Path { out_us: rng.uniform(1_000.0, 10_000.0), back_us: rng.uniform(1_000.0, 10_000.0) })
            .collect();
        let mut time = NetworkTime::new(NetworkTimeConfig::default());
        let mut now_us = 1_700_000_000_000_000;
        for _ in 0..ROUNDS {
            let mut round = Vec::with_capacity(PEERS);
            for (index, (peer, path)) in peers.iter().zip(&paths).enumerate() {
                let sample = exchange(&mut rng, *peer, path, now_us);
                now_us = sample.t4_us + 1_000;
                round.push(sample);
                // Impossible exchanges are refused inside; that is part of the test.
                let _ = time.handle_exchange(NodeId([index as u8; 32]), sample);
            }
            naive_errors.push(naive_offset_us(&round).abs() / 1_000.0);
            now_us += 16_000_000;
        }
        match time.update(now_us) {
            // The error of the node's synchronized time after the update (the step clamp
            // included), not of the raw estimate.
            Ok(adjustment) => bhsync_errors.push(adjustment.correction_us.abs() as f64 / 1_000.0),
            Err(error) => {
                refused += 1;
                if refusal_reason.is_empty() {
                    refusal_reason = reason(&error);
                }
            }
        }
    }
    TimeRow {
        scenario,
        liars: liars.len(),
        trials,
        adjusted: bhsync_errors.len(),
        refused,
        refusal_reason,
        bhsync_error_ms_median: median(&mut bhsync_errors.clone()),
        bhsync_error_ms_max: bhsync_errors.iter().copied().reduce(f64::max),
        naive_error_ms_median: median(&mut naive_errors.clone()).unwrap_or(f64::NAN),
        naive_error_ms_max: naive_errors.iter().copied().reduce(f64::max).unwrap_or(f64::NAN),
    }
}

fn reason(error: &NetworkTimeError) -> String {
    match error {
        NetworkTimeError::NoMajority { .. } => "no_majority",
        NetworkTimeError::NotEnoughPeers { .. } => "not_enough_peers",
        NetworkTimeError::TooFewAgreeing { .. } => "too_few_agreeing",
        _ => "other",
    }
    .to_string()
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn time_rows(trials: usize) -> Vec<TimeRow> {
    const HOUR_US: i64 = 3_600_000_000;
    const MINUTE_US: i64 = 60_000_000;
    vec![
        time_scenario("honest", &[], trials, 1),
        time_scenario("2_liars", &[Peer::ClockOffset(HOUR_US), Peer::SubtleForger], trials, 2),
        time_scenario("2_liars_gross_forger", &[Peer::ClockOffset(HOUR_US), Peer::GrossForger], trials, 3),
        time_scenario(
            "4_liars",
            &[
                Peer::ClockOffset(HOUR_US),
                Peer::ClockOffset(-20 * MINUTE_US),
                Peer::ClockOffset(7 * MINUTE_US),
                Peer::GrossForger,
            ],
            trials,
            4,
        ),
        time_scenario(
            "4_liars_subtle_forger",
            &[
                Peer::ClockOffset(HOUR_US),
                Peer::ClockOffset(-20 * MINUTE_US),
                Peer::ClockOffset(7 * MINUTE_US),
                Peer::SubtleForger,
            ],
            trials,
            5,
        ),
        time_scenario("4_colluding_at_plus_1h", &[Peer::ClockOffset(HOUR_US); 4], trials, 6),
    ]
}

fn fmt_opt(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.3}"))
}

fn json_opt(value: Option<f64>) -> String {
    value.map_or("null".to_string(), |v| format!("{v:.4}"))
}

fn print_time(rows: &[TimeRow], json: bool) {
    if json {
        for r in rows {
            println!(
                "{{\"bench\":\"time\",\"scenario\":\"network_time/{}\",\"peers\":7,\"liars\":{},\"trials\":{},\"bhsync_adjusted\":{},\"bhsync_refused\":{},\"bhsync_refusal_reason\":\"{}\",\"bhsync_error_ms_median\":{},\"bhsync_error_ms_max\":{},\"naive_error_ms_median\":{:.4},\"naive_error_ms_max\":{:.4}}}",
                r.scenario, r.liars, r.trials, r.adjusted, r.refused, r.refusal_reason,
                json_opt(r.bhsync_error_ms_median), json_opt(r.bhsync_error_ms_max), r.naive_error_ms_median, r.naive_error_ms_max
            );
        }
        return;
    }
    println!("network time: 7 peers, true offset 0, |offset error| in ms (bhsync: correction after one update; naive: per round)");
    println!(
        "{:<24} {:>5} {:>9} {:>9} {:>12} {:>11} {:>13} {:>12}",
        "scenario", "liars", "adjusted", "refused", "bhsync p50", "bhsync max", "naive p50", "naive max"
    );
    for r in rows {
        println!(
            "{:<24} {:>5} {:>9} {:>9} {:>12} {:>11} {:>13.1} {:>12.1}",
            r.scenario,
            r.liars,
            r.adjusted,
            r.refused,
            fmt_opt(r.bhsync_error_ms_median),
            fmt_opt(r.bhsync_error_ms_max),
            r.naive_error_ms_median,
            r.naive_error_ms_max
        );
        if r.adjusted == 0 {
            println!("{:<24} → bhsync refuses to adjust ({}) in all {} trials", "", r.refusal_reason, r.trials);
        }
        if r.scenario.starts_with("4_colluding") {
            println!("{:<24} → 4 of 7 agreeing liars are a majority: no majority-based selection can tell; the step clamp limits the move to 1 s per update", "");
        }
    }
}

// ──────────────────────────────── CRDTs ────────────────────────────────

const ACTORS: usize = 16;
const OPS: usize = 10_000;

fn actor(index: usize) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(index as u64 + 1).to_be_bytes());
    id[8..].fill(0xa5);
    id
}

struct CrdtRow {
    scenario: &'static str,
    state_note: String,
    bhsync_merge_ops_s: f64,
    crdts_merge_ops_s: f64,
    bhsync_apply_ops_s: f64,
    crdts_apply_ops_s: f64,
    bhsync_bytes_per_delta: f64,
    crdts_bincode_bytes_per_delta: f64,
    crdts_bincode_varint_bytes_per_delta: f64,
    bhsync_state_bytes: usize,
    crdts_state_bincode_varint_bytes: usize,
}

fn fixint<T: serde::Serialize>(value: &T) -> usize {
    bincode::serialize(value).map(|bytes| bytes.len()).unwrap_or(0)
}

fn varint<T: serde::Serialize>(value: &T) -> usize {
    bincode::DefaultOptions::new().serialize(value).map(|bytes| bytes.len()).unwrap_or(0)
}

/// Median seconds of `runs` runs of `body` on a fresh `setup()`, which is not timed;
/// what `body` returns is dropped outside the timing too.
fn time_with_setup<S, O>(runs: usize, mut setup: impl FnMut() -> S, mut body: impl FnMut(S) -> O) -> f64 {
    let mut seconds = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let input = setup();
        let start = Instant::now();
        let output = black_box(body(input));
        seconds.push(start.elapsed().as_secs_f64());
        drop(output);
    }
    median(&mut seconds).unwrap_or(f64::NAN)
}

fn mean(values: impl Iterator<Item = usize>) -> f64 {
    let (sum, count) = values.fold((0usize, 0usize), |(s, c), v| (s + v, c + 1));
    sum as f64 / count.max(1) as f64
}

/// Pure merge throughput: `copies` merges of `right` into fresh clones of `left`
/// (clones made before the clock starts, for both libraries).
fn merge_rates<B: Crdt, C: CvRDT + Clone>(runs: usize, copies: usize, ours: (&B, &B), theirs: (&C, &C)) -> (f64, f64) {
    let bhsync = time_with_setup(
        runs,
        || vec![ours.0.clone(); copies],
        |mut targets| {
            for target in &mut targets {
                target.merge(ours.1);
            }
            targets
        },
    );
    // crdts' merge takes the other state by value, so it is cloned in setup as well.
    let crdts = time_with_setup(
        runs,
        || (vec![theirs.0.clone(); copies], vec![theirs.1.clone(); copies]),
        |(mut targets, others)| {
            for (target, other) in targets.iter_mut().zip(others) {
                target.merge(other);
            }
            targets
        },
    );
    (copies as f64 / bhsync, copies as f64 / crdts)
}

/// Delta (bhsync) and op (crdts) apply throughput into an empty replica.
fn apply_rates<B: Crdt, C: CmRDT + Default, Op: Clone>(
    runs: usize,
    deltas: &[B],
    ops: &[Op],
    apply: impl Fn(&mut C, Op),
) -> (f64, f64) {
    let bhsync = time_with_setup(
        runs,
        || (),
        |()| {
            let mut target = B::default();
            for delta in deltas {
                target.merge_delta(delta);
            }
            target
        },
    );
    let crdts = time_with_setup(
        runs,
        || ops.to_vec(),
        |ops| {
            let mut target = C::default();
            for op in ops {
                apply(&mut target, op);
            }
            target
        },
    );
    (deltas.len() as f64 / bhsync, ops.len() as f64 / crdts)
}

fn gcounter_row(runs: usize, rng: &mut Rng) -> CrdtRow {
    let (mut ours, mut theirs) = (GCounter::new(), crdts::GCounter::<[u8; 32]>::new());
    let (mut deltas, mut ops) = (Vec::with_capacity(OPS), Vec::with_capacity(OPS));
    for _ in 0..OPS {
        let who = rng.below(ACTORS as u64) as usize;
        deltas.push(ours.increment(NodeId(actor(who)), 1).expect("small"));
        let op = theirs.inc(actor(who));
        theirs.apply(op);
        ops.push(op);
    }
    let (mut ours_b, mut theirs_b) = (GCounter::new(), crdts::GCounter::<[u8; 32]>::new());
    for _ in 0..OPS {
        let who = rng.below(ACTORS as u64) as usize;
        ours_b.increment(NodeId(actor(who)), 1).expect("small");
        theirs_b.apply(theirs_b.inc(actor(who)));
    }
    let (bhsync_merge, crdts_merge) = merge_rates(runs, 20_000, (&ours, &ours_b), (&theirs, &theirs_b));
    let (bhsync_apply, crdts_apply) =
        apply_rates(runs, &deltas, &ops, |target: &mut crdts::GCounter<[u8; 32]>, op| target.apply(op));
    CrdtRow {
        scenario: "gcounter",
        state_note: format!("{ACTORS} actors"),
        bhsync_merge_ops_s: bhsync_merge,
        crdts_merge_ops_s: crdts_merge,
        bhsync_apply_ops_s: bhsync_apply,
        crdts_apply_ops_s: crdts_apply,
        bhsync_bytes_per_delta: mean(deltas.iter().map(|d| d.encode().len())),
        crdts_bincode_bytes_per_delta: mean(ops.iter().map(fixint)),
        crdts_bincode_varint_bytes_per_delta: mean(ops.iter().map(varint)),
        bhsync_state_bytes: ours.encode().len(),
        crdts_state_bincode_varint_bytes: varint(&theirs),
    }
}

fn pncounter_row(runs: usize, rng: &mut Rng) -> CrdtRow {
    let build = |rng: &mut Rng, record: bool| {
        let (mut ours, mut theirs) = (PnCounter::new(), crdts::PNCounter::<[u8; 32]>::new());
        let (mut deltas, mut ops) = (Vec::new(), Vec::new());
        for _ in 0..OPS {
            let who = NodeId(actor(rng.below(ACTORS as u64) as usize));
            let up = rng.below(2) == 0;
            let delta = if up { ours.increment(who, 1) } else { ours.decrement(who, 1) }.expect("small");
            let op = if up { theirs.inc(who.0) } else { theirs.dec(who.0) };
            theirs.apply(op.clone());
            if record {
                deltas.push(delta);
                ops.push(op);
            }
        }
        (ours, theirs, deltas, ops)
    };
    let (ours, theirs, deltas, ops) = build(rng, true);
    let (ours_b, theirs_b, _, _) = build(rng, false);
    let (bhsync_merge, crdts_merge) = merge_rates(runs, 20_000, (&ours, &ours_b), (&theirs, &theirs_b));
    let (bhsync_apply, crdts_apply) =
        apply_rates(runs, &deltas, &ops, |target: &mut crdts::PNCounter<[u8; 32]>, op| target.apply(op));
    CrdtRow {
        scenario: "pncounter",
        state_note: format!("{ACTORS} actors"),
        bhsync_merge_ops_s: bhsync_merge,
        crdts_merge_ops_s: crdts_merge,
        bhsync_apply_ops_s: bhsync_apply,
        crdts_apply_ops_s: crdts_apply,
        bhsync_bytes_per_delta: mean(deltas.iter().map(|d| d.encode().len())),
        crdts_bincode_bytes_per_delta: mean(ops.iter().map(fixint)),
        crdts_bincode_varint_bytes_per_delta: mean(ops.iter().map(varint)),
        bhsync_state_bytes: ours.encode().len(),
        crdts_state_bincode_varint_bytes: varint(&theirs),
    }
}

type CrdtsLww = crdts::LWWReg<Vec<u8>, (u64, [u8; 32])>;

fn lww_row(runs: usize, rng: &mut Rng) -> CrdtRow {
    let base_hlc = HlcTimestamp::new(1_700_000_000_000, 0).expect("in range").0;
    let (mut ours, mut theirs) = (LwwRegister::new(), CrdtsLww::default());
    let (mut deltas, mut ops) = (Vec::new(), Vec::new());
    for index in 0..OPS as u64 {
        let who = actor(rng.below(ACTORS as u64) as usize);
        let value = rng.next_u64().to_be_bytes().to_vec();
        let hlc = base_hlc + index * 7;
        deltas.push(ours.set(value.clone(), HlcTimestamp(hlc), NodeId(who)).expect("short"));
        let op = CrdtsLww { val: value, marker: (hlc, who) };
        theirs.apply(op.clone());
        ops.push(op);
    }
    let older = LwwRegister::new().set(vec![1; 8], HlcTimestamp(base_hlc), NodeId(actor(0))).expect("short");
    let older_theirs = CrdtsLww { val: vec![1; 8], marker: (base_hlc, actor(0)) };
    let (bhsync_merge, crdts_merge) = merge_rates(runs, 20_000, (&older, &ours), (&older_theirs, &theirs));
    let (bhsync_apply, crdts_apply) = apply_rates(runs, &deltas, &ops, |target: &mut CrdtsLww, op| target.apply(op));
    CrdtRow {
        scenario: "lww_register",
        state_note: "8-byte values, (hlc, 32-byte actor) marker".to_string(),
        bhsync_merge_ops_s: bhsync_merge,
        crdts_merge_ops_s: crdts_merge,
        bhsync_apply_ops_s: bhsync_apply,
        crdts_apply_ops_s: crdts_apply,
        bhsync_bytes_per_delta: mean(deltas.iter().map(|d| d.encode().len())),
        crdts_bincode_bytes_per_delta: mean(ops.iter().map(fixint)),
        crdts_bincode_varint_bytes_per_delta: mean(ops.iter().map(varint)),
        bhsync_state_bytes: ours.encode().len(),
        crdts_state_bincode_varint_bytes: varint(&theirs),
    }
}

type CrdtsMv = crdts::MVReg<Vec<u8>, [u8; 32]>;
type CrdtsMvOp = crdts::mvreg::Op<Vec<u8>, [u8; 32]>;

fn mv_write(ours: &mut MvRegister, theirs: &mut CrdtsMv, who: [u8; 32], value: Vec<u8>) -> (MvRegister, CrdtsMvOp) {
    let delta = ours.write(NodeId(who), value.clone()).expect("short");
    let op = theirs.write(value, theirs.read_ctx().derive_add_ctx(who));
    theirs.apply(op.clone());
    (delta, op)
}

fn mv_row(runs: usize, rng: &mut Rng) -> CrdtRow {
    let (mut ours, mut theirs) = (MvRegister::new(), CrdtsMv::new());
    let (mut deltas, mut ops) = (Vec::new(), Vec::new());
    for _ in 0..OPS {
        let who = actor(rng.below(ACTORS as u64) as usize);
        let (delta, op) = mv_write(&mut ours, &mut theirs, who, rng.next_u64().to_be_bytes().to_vec());
        deltas.push(delta);
        ops.push(op);
    }
    // Two replicas that diverge after the common history: half the actors on each.
    let (mut ours_a, mut theirs_a, mut ours_b, mut theirs_b) =
        (ours.clone(), theirs.clone(), ours.clone(), theirs.clone());
    for index in 0..100 {
        let who = rng.below(ACTORS as u64 / 2) as usize;
        let value = rng.next_u64().to_be_bytes().to_vec();
        if index % 2 == 0 {
            mv_write(&mut ours_a, &mut theirs_a, actor(who), value);
        } else {
            mv_write(&mut ours_b, &mut theirs_b, actor(who + ACTORS / 2), value);
        }
    }
    let (bhsync_merge, crdts_merge) = merge_rates(runs, 20_000, (&ours_a, &ours_b), (&theirs_a, &theirs_b));
    let (bhsync_apply, crdts_apply) = apply_rates(runs, &deltas, &ops, |target: &mut CrdtsMv, op| target.apply(op));
    CrdtRow {
        scenario: "mv_register",
        state_note: format!("{ACTORS} actors, 8-byte values, concurrent states"),
        bhsync_merge_ops_s: bhsync_merge,
        crdts_merge_ops_s: crdts_merge,
        bhsync_apply_ops_s: bhsync_apply,
        crdts_apply_ops_s: crdts_apply,
        bhsync_bytes_per_delta: mean(deltas.iter().map(|d| d.encode().len())),
        crdts_bincode_bytes_per_delta: mean(ops.iter().map(fixint)),
        crdts_bincode_varint_bytes_per_delta: mean(ops.iter().map(varint)),
        bhsync_state_bytes: ours_a.encode().len(),
        crdts_state_bincode_varint_bytes: varint(&theirs_a),
    }
}

type Orswot = crdts::Orswot<Vec<u8>, [u8; 32]>;
type OrswotOp = crdts::orswot::Op<Vec<u8>, [u8; 32]>;

const SET_UNIVERSE: u64 = 2_000;

/// One set operation on both libraries: 70 % add, 30 % remove of a present element.
fn set_op(rng: &mut Rng, ours: &mut OrSet, theirs: &mut Orswot, actors: (usize, usize)) -> (OrSet, OrswotOp) {
    let who = actor(actors.0 + rng.below((actors.1 - actors.0) as u64) as usize);
    let element = rng.below(SET_UNIVERSE).to_be_bytes().to_vec();
    let remove = rng.below(10) < 3 && ours.contains(&element);
    let (delta, op) = if remove {
        (ours.remove(&element), theirs.rm(element.clone(), theirs.contains(&element).derive_rm_ctx()))
    } else {
        let delta = ours.add(NodeId(who), &element).expect("short");
        (delta, theirs.add(element, theirs.read_ctx().derive_add_ctx(who)))
    };
    theirs.apply(op.clone());
    (delta, op)
}

fn orset_row(runs: usize, rng: &mut Rng) -> CrdtRow {
    let (mut ours, mut theirs) = (OrSet::new(), Orswot::new());
    let (mut deltas, mut ops) = (Vec::new(), Vec::new());
    for _ in 0..OPS {
        let (delta, op) = set_op(rng, &mut ours, &mut theirs, (0, ACTORS));
        deltas.push(delta);
        ops.push(op);
    }
    assert_eq!(ours.len(), theirs.read().val.len(), "both libraries hold the same set");
    let (mut ours_a, mut theirs_a, mut ours_b, mut theirs_b) =
        (ours.clone(), theirs.clone(), ours.clone(), theirs.clone());
    for _ in 0..500 {
        set_op(rng, &mut ours_a, &mut theirs_a, (0, ACTORS / 2));
        set_op(rng, &mut ours_b, &mut theirs_b, (ACTORS / 2, ACTORS));
    }
    let (bhsync_merge, crdts_merge) = merge_rates(runs, 200, (&ours_a, &ours_b), (&theirs_a, &theirs_b));
    let (bhsync_apply, crdts_apply) = apply_rates(runs, &deltas, &ops, |target: &mut Orswot, op| target.apply(op));
    CrdtRow {
        scenario: "orset",
        state_note: format!("{} elements, {ACTORS} actors, 8-byte elements, 500 concurrent ops per side", ours_a.len()),
        bhsync_merge_ops_s: bhsync_merge,
        crdts_merge_ops_s: crdts_merge,
        bhsync_apply_ops_s: bhsync_apply,
        crdts_apply_ops_s: crdts_apply,
        bhsync_bytes_per_delta: mean(deltas.iter().map(|d| d.encode().len())),
        crdts_bincode_bytes_per_delta: mean(ops.iter().map(fixint)),
        crdts_bincode_varint_bytes_per_delta: mean(ops.iter().map(varint)),
        bhsync_state_bytes: ours_a.encode().len(),
        crdts_state_bincode_varint_bytes: varint(&theirs_a),
    }
}

fn print_crdts(rows: &[CrdtRow], json: bool) {
    if json {
        for r in rows {
            println!(
                "{{\"bench\":\"time\",\"scenario\":\"crdt/{}\",\"state\":\"{}\",\"bhsync_merge_ops_s\":{:.0},\"crdts_merge_ops_s\":{:.0},\"merge_speed_ratio\":{:.3},\"bhsync_delta_apply_ops_s\":{:.0},\"crdts_op_apply_ops_s\":{:.0},\"apply_speed_ratio\":{:.3},\"bhsync_bytes_per_delta\":{:.1},\"crdts_bincode_fixint_bytes_per_op\":{:.1},\"crdts_bincode_varint_bytes_per_op\":{:.1},\"size_ratio_vs_varint\":{:.3},\"bhsync_state_bytes\":{},\"crdts_state_bincode_varint_bytes\":{}}}",
                r.scenario, r.state_note, r.bhsync_merge_ops_s, r.crdts_merge_ops_s, r.bhsync_merge_ops_s / r.crdts_merge_ops_s,
                r.bhsync_apply_ops_s, r.crdts_apply_ops_s, r.bhsync_apply_ops_s / r.crdts_apply_ops_s,
                r.bhsync_bytes_per_delta, r.crdts_bincode_bytes_per_delta, r.crdts_bincode_varint_bytes_per_delta,
                r.crdts_bincode_varint_bytes_per_delta / r.bhsync_bytes_per_delta, r.bhsync_state_bytes, r.crdts_state_bincode_varint_bytes
            );
        }
        return;
    }
    println!();
    println!("CRDTs vs crdts 7.x (median of runs; speed ratio = bhsync/crdts, size ratio = crdts varint/bhsync)");
    println!(
        "{:<13} {:>12} {:>12} {:>6} {:>12} {:>12} {:>6} {:>8} {:>8} {:>8} {:>6} {:>9} {:>9}",
        "type",
        "merge/s",
        "crdts",
        "x",
        "delta/s",
        "crdts op/s",
        "x",
        "B/delta",
        "fixint",
        "varint",
        "x",
        "state B",
        "crdts B"
    );
    for r in rows {
        println!(
            "{:<13} {:>12.0} {:>12.0} {:>6.2} {:>12.0} {:>12.0} {:>6.2} {:>8.1} {:>8.1} {:>8.1} {:>6.2} {:>9} {:>9}",
            r.scenario,
            r.bhsync_merge_ops_s,
            r.crdts_merge_ops_s,
            r.bhsync_merge_ops_s / r.crdts_merge_ops_s,
            r.bhsync_apply_ops_s,
            r.crdts_apply_ops_s,
            r.bhsync_apply_ops_s / r.crdts_apply_ops_s,
            r.bhsync_bytes_per_delta,
            r.crdts_bincode_bytes_per_delta,
            r.crdts_bincode_varint_bytes_per_delta,
            r.crdts_bincode_varint_bytes_per_delta / r.bhsync_bytes_per_delta,
            r.bhsync_state_bytes,
            r.crdts_state_bincode_varint_bytes
        );
    }
    println!("merge/s: full-state merges of two diverged replicas (clones made before timing, both sides).");
    println!("delta/s: bhsync deltas applied in any order tolerated; crdts ops need per-actor causal order.");
    println!("crdts bytes: bincode 1.3 of the op, default (fixint) and DefaultOptions (varint).");
}

fn main() {
    let options = options();
    let time = time_rows(options.trials);
    print_time(&time, options.json);
    let mut rng = Rng::new(0x0005_eedb_1ac4_b01e);
    let rows = vec![
        gcounter_row(options.runs, &mut rng),
        pncounter_row(options.runs, &mut rng),
        lww_row(options.runs, &mut rng),
        mv_row(options.runs, &mut rng),
        orset_row(options.runs, &mut rng),
    ];
    print_crdts(&rows, options.json);
}
