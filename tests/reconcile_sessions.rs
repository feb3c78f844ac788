//! Reconciliation sessions between two in-process replicas over a simulated channel
//! that loses, duplicates and reorders frames (virtual time, seeded). A failing case
//! prints its seed; rerun it with the same seed to replay it exactly.

use bhsync::reconcile::message::{self, Message};
use bhsync::reconcile::session::Outcome;
use bhsync::reconcile::{Initiator, Responder, SessionConfig, SessionError, ShortId};
use bhsync::sansio::SeededRng as Rng;
use bhsync::state::{CategorySpec, CategoryState, Digest, Entry, NodeId, Version};

/// One direction of a link: frames arrive after 1–20 ms, may be lost or duplicated.
struct Link {
    in_flight: Vec<(u64, Vec<u8>)>,
    loss: f64,
    duplication: f64,
}

impl Link {
    fn send(&mut self, rng: &mut Rng, now: u64, frame: Vec<u8>) {
        if rng.chance(self.loss) {
            return;
        }
        if rng.chance(self.duplication) {
            self.in_flight.push((now + 1 + rng.next_u64() % 20, frame.clone()));
        }
        self.in_flight.push((now + 1 + rng.next_u64() % 20, frame));
    }

    fn due(&mut self, now: u64) -> Vec<Vec<u8>> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight).into_iter().partition(|(at, _)| *at <= now);
        self.in_flight = later;
        due.into_iter().map(|(_, frame)| frame).collect()
    }

    fn next_arrival(&self) -> Option<u64> {
        self.in_flight.iter().map(|(at, _)| *at).min()
    }
}

fn state() -> CategoryState {
    CategoryState::new("docs", CategorySpec::default(), 2).unwrap()
}

fn put(state: &mut CategoryState, key: &str, value: &str, hlc: u64) {
    let version = Version { hlc, origin: NodeId([hlc as u8; 32]), counter: hlc, tombstone: false };
    let prepared = state.prepare(key.as_bytes(), value.as_bytes(), version).unwrap();
    state.upsert(prepared);
}

/// `common` shared entries, `only_a` and `only_b` entries on one side, and `updated`
/// keys that both hold but B rewrote later.
fn pair(common: usize, only_a: usize, only_b: usize, updated: usize) -> (CategoryState, CategoryState) {
    let (mut a, mut b) = (state(), state());
    let mut batch_a = Vec::new();
    let mut batch_b = Vec::new();
    let version = |hlc: u64| Version { hlc, origin: NodeId([1; 32]), counter: hlc, tombstone: false };
    for i in 0..common {
        let key = format!("common-{i}");
        batch_a.push(a.prepare(key.as_bytes(), b"v", version(1)).unwrap());
        batch_b.push(b.prepare(key.as_bytes(), b"v", version(1)).unwrap());
    }
    a.apply_batch(batch_a);
    b.apply_batch(batch_b);
    for i in 0..only_a {
        put(&mut a, &format!("a-{i}"), "from a", 2);
    }
    for i in 0..only_b {
        put(&mut b, &format!("b-{i}"), "from b", 3);
    }
    for i in 0..updated {
        put(&mut b, &format!("common-{i}"), "rewritten by b", 5);
    }
    (a, b)
}

struct Run {
    initiator: Initiator,
    responder_error: Option<SessionError>,
    responder_received: u64,
}

fn run(a: &mut CategoryState, b: &mut CategoryState, seed: u64, loss: f64, duplication: f64, config: SessionConfig) -> Run {
    let mut rng = Rng::new(seed);
    let (mut to_b, mut to_a) = (Link { in_flight: vec![], loss, duplication }, Link { in_flight: vec![], loss, duplication });
    let mut now = 0;
    let mut initiator = Initiator::new(config.clone(), 42, a, now).unwrap();
    let mut responder = Responder::new(config).unwrap();
    for _ in 0..100_000 {
        while let Some(frame) = initiator.poll_transmit() {
            to_b.send(&mut rng, now, frame);
        }
        while let Some(frame) = responder.poll_transmit() {
            to_a.send(&mut rng, now, frame);
        }
        if initiator.is_done() {
            break;
        }
        let next = [to_b.next_arrival(), to_a.next_arrival(), initiator.poll_timeout()].into_iter().flatten().min();
        now = next.expect("something is always pending until the session ends").max(now);
        for frame in to_b.due(now) {
            let _ = responder.handle_frame(&frame, b);
        }
        for frame in to_a.due(now) {
            let _ = initiator.handle_frame(now, &frame, a);
        }
        initiator.handle_timeout(now);
    }
    let responder_received = responder.report().items_received;
    Run { initiator, responder_error: responder.error().cloned(), responder_received }
}

fn converged(run: &Run) -> bool {
    run.initiator.report().outcome == Some(Outcome::Converged)
}

#[test]
fn equal_states_end_in_one_round_trip_under_100_bytes() {
    let (mut a, mut b) = pair(1_000, 0, 0, 0);
    let run = run(&mut a, &mut b, 1, 0.0, 0.0, SessionConfig::default());
    let report = run.initiator.report();
    assert_eq!(report.outcome, Some(Outcome::Equal));
    assert_eq!(report.round_trips, 1);
    assert!(report.bytes_sent + report.bytes_received < 100, "{report:?}");
}

#[test]
fn differences_of_every_kind_converge_and_both_know_them_after_two_round_trips() {
    for (only_a, only_b, updated) in [(1, 0, 0), (0, 1, 0), (5, 5, 0), (0, 0, 7), (40, 60, 25), (300, 200, 100)] {
        let (mut a, mut b) = pair(2_000, only_a, only_b, updated);
        let run = run(&mut a, &mut b, 7, 0.0, 0.0, SessionConfig::default());
        let report = run.initiator.report();
        assert!(converged(&run), "{only_a}/{only_b}/{updated}: {report:?} {:?}", run.initiator.error());
        assert_eq!(a.root(), b.root());
        assert_eq!(report.difference as usize, only_a + only_b + 2 * updated);
        assert!(report.round_trips_to_difference <= 3, "{report:?}");
        a.verify_integrity().unwrap();
        b.verify_integrity().unwrap();
    }
}

#[test]
fn an_updated_key_is_one_difference_and_only_its_newer_version_travels() {
    let (mut a, mut b) = pair(500, 0, 0, 30);
    let run = run(&mut a, &mut b, 3, 0.0, 0.0, SessionConfig::default());
    assert!(converged(&run));
    assert_eq!(run.initiator.report().items_received, 30, "the 30 newer versions came to a");
    assert_eq!(run.responder_received, 0, "a's 30 older versions never travelled");
    assert_eq!(a.get(b"common-0").unwrap().value, b"rewritten by b");
}

#[test]
fn sessions_converge_over_a_lossy_duplicating_reordering_channel() {
    for seed in 0..24 {
        let (mut a, mut b) = pair(1_000, 20 + seed as usize, 30, 10);
        let run = run(&mut a, &mut b, seed, 0.2, 0.3, SessionConfig { retransmit_after_ms: 60, max_retransmits: 30, ..SessionConfig::default() });
        assert!(
            converged(&run),
            "seed {seed}: {:?} error {:?} responder {:?}",
            run.initiator.report(),
            run.initiator.error(),
            run.responder_error
        );
        assert_eq!(a.root(), b.root(), "seed {seed}");
    }
}

#[test]
fn a_silent_peer_ends_the_session_with_a_typed_error() {
    let (mut a, _) = pair(10, 1, 0, 0);
    let config = SessionConfig { retransmit_after_ms: 10, max_retransmits: 3, ..SessionConfig::default() };
    let mut initiator = Initiator::new(config, 1, &mut a, 0).unwrap();
    let mut now = 0;
    while !initiator.is_done() {
        while initiator.poll_transmit().is_some() {}
        now = initiator.poll_timeout().unwrap();
        initiator.handle_timeout(now);
    }
    assert_eq!(initiator.error(), Some(&SessionError::PeerUnresponsive));
    assert_eq!(initiator.report().retransmits, 3);
    assert!(now >= 40);
}

#[test]
fn a_difference_beyond_the_sketch_capacity_aborts_with_a_typed_error_on_both_sides() {
    let (mut a, mut b) = pair(100, 400, 400, 0);
    let config = SessionConfig { sketch_capacity: 256, ..SessionConfig::default() };
    let run = run(&mut a, &mut b, 5, 0.0, 0.0, config);
    assert!(matches!(run.responder_error, Some(SessionError::SketchExhausted { .. })), "{:?}", run.responder_error);
    assert!(matches!(run.initiator.error(), Some(SessionError::SketchExhausted { .. })), "told at once, no time-out");
}

#[test]
fn the_fallback_splits_a_difference_too_large_for_the_sketch_and_converges() {
    let (mut a, mut b) = pair(2_000, 1_500, 1_500, 200);
    let config = SessionConfig { sketch_capacity: 512, ..SessionConfig::default() };
    let report = bhsync::reconcile::in_process::reconcile(&mut a, &mut b, &config, 1).unwrap();
    assert_eq!(report.outcome, Some(Outcome::Converged), "{report:?}");
    assert_eq!(a.root(), b.root());
    assert_eq!(report.difference, 1_500 + 1_500 + 2 * 200);
    a.verify_integrity().unwrap();
}

/// Drives an initiator to the point where it waits for `Decoded` (round trip 2).
fn initiator_awaiting_decoded(a: &mut CategoryState) -> Initiator {
    let mut initiator = Initiator::new(SessionConfig::default(), 9, a, 0).unwrap();
    while initiator.poll_transmit().is_some() {}
    let mut estimate = Vec::new();
    let counters = Box::new(a.estimator_counters());
    Message::Estimate { root: Digest([1; 32]), count: a.len(), capacity: 1 << 16, counters }.encode(9, 1, &mut estimate);
    initiator.handle_frame(0, &estimate, a).unwrap();
    while initiator.poll_transmit().is_some() {}
    initiator
}

fn entry(key: &str, value: &str) -> Entry {
    Entry { key: key.as_bytes().to_vec(), value: value.as_bytes().to_vec(), version: Version { hlc: 9, ..Version::default() } }
}

#[test]
fn an_item_nobody_advertised_is_refused_and_nothing_is_applied() {
    let (mut a, _) = pair(50, 0, 0, 0);
    let root = a.root();
    let mut initiator = initiator_awaiting_decoded(&mut a);
    let advertised = message::pack_ids([ShortId(12345)]);
    let mut decoded = Vec::new();
    Message::Decoded { you_send: &[], you_receive: &advertised, conflicts: vec![], item_frames: 1 }.encode(9, 2, &mut decoded);
    let mut items = Vec::new();
    Message::Items { part: 0, entries: vec![entry("intruder", "x")] }.encode(9, 2, &mut items);
    initiator.handle_frame(1, &items, &mut a).unwrap(); // Early: held until Decoded.
    let error = initiator.handle_frame(2, &decoded, &mut a).unwrap_err();
    assert_eq!(error, SessionError::UnadvertisedItem);
    assert_eq!(a.root(), root, "nothing was applied");
    assert!(initiator.is_done());
}

#[test]
fn malformed_and_oversized_frames_end_the_session_with_a_typed_error() {
    let (mut a, _) = pair(10, 0, 0, 0);
    let mut initiator = Initiator::new(SessionConfig::default(), 1, &mut a, 0).unwrap();
    let error = initiator.handle_frame(0, &[1, 2, 3], &mut a).unwrap_err();
    assert!(matches!(error, SessionError::Malformed(_)));
    let mut responder = Responder::new(SessionConfig::default()).unwrap();
    let huge = vec![0u8; (2 << 20) + 1];
    assert!(matches!(responder.handle_frame(&huge, &mut a), Err(SessionError::Malformed(_))));
}

#[test]
fn a_hello_for_another_category_is_refused() {
    let (mut a, _) = pair(10, 0, 0, 0);
    let mut other = CategoryState::new("other", CategorySpec::default(), 1).unwrap();
    let mut initiator = Initiator::new(SessionConfig::default(), 1, &mut other, 0).unwrap();
    let hello = initiator.poll_transmit().unwrap();
    let mut responder = Responder::new(SessionConfig::default()).unwrap();
    assert_eq!(responder.handle_frame(&hello, &mut a), Err(SessionError::CategoryMismatch));
}


#[test]
fn replicas_reconcile_every_category_either_side_holds() {
    use bhsync::state::Replica;
    let mut a = Replica::new(NodeId([1; 32]), 1).unwrap();
    let mut b = Replica::new(NodeId([2; 32]), 4).unwrap();
    for i in 0..300u64 {
        a.put("users", format!("a{i}").as_bytes(), b"x", i).unwrap();
        b.put("users", format!("b{i}").as_bytes(), b"y", i).unwrap();
    }
    a.put("users", b"shared", b"old", 1_000).unwrap();
    b.put("users", b"shared", b"new", 2_000).unwrap();
    b.put("audit", b"only-b", b"z", 5).unwrap();
    a.delete("users", b"a7", 3_000).unwrap();
    let reports = a.reconcile_with(&mut b, &SessionConfig::default()).unwrap();
    let names: Vec<&str> = reports.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["audit", "users"]);
    assert!(reports.iter().all(|(_, r)| r.as_ref().unwrap().outcome == Some(Outcome::Converged)), "{reports:?}");
    assert_eq!(a.state_hash(), b.state_hash());
    assert_eq!(b.get("users", b"shared").unwrap().value, b"new");
    assert!(b.get("users", b"a7").is_none(), "the deletion travelled");
    let again = a.reconcile_with(&mut b, &SessionConfig::default()).unwrap();
    assert!(again.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.outcome == Some(Outcome::Equal) && r.round_trips == 1)));
}

#[test]
fn categories_reconcile_in_priority_order() {
    use bhsync::state::{Priority, Replica};
    let mut a = Replica::new(NodeId([1; 32]), 1).unwrap();
    let mut b = Replica::new(NodeId([2; 32]), 1).unwrap();
    for (name, priority) in [("bulk", Priority::Low), ("alerts", Priority::Critical), ("profiles", Priority::High)] {
        a.add_category(name, CategorySpec { priority, ..CategorySpec::default() }).unwrap();
        a.put(name, b"k", b"v", 1).unwrap();
    }
    let reports = a.reconcile_with(&mut b, &SessionConfig::default()).unwrap();
    assert!(reports.iter().all(|(_, r)| r.is_ok()));
    let order: Vec<&str> = reports.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(order, ["alerts", "profiles", "bulk"]);
    assert_eq!(a.state_hash(), b.state_hash());
}

#[test]
fn a_session_survives_a_dropped_connection_without_starting_over() {
    let (mut a, mut b) = pair(2_000, 40, 40, 10);
    let config = SessionConfig { retransmit_after_ms: 100, max_retransmits: 50, ..SessionConfig::default() };
    let mut initiator = Initiator::new(config.clone(), 77, &mut a, 0).unwrap();
    let mut responder = Responder::new(config).unwrap();
    let mut now = 0;
    let mut hellos = 0;
    // The Hello round trip completes; then everything is dropped for 1.5 s (the symbols
    // included): the connection is gone. Afterwards frames flow again, as over a new one.
    for step in 0..10_000 {
        let connected = !(1..=15).contains(&step);
        while let Some(frame) = initiator.poll_transmit() {
            hellos += usize::from(frame[1] == 1);
            if connected {
                responder.handle_frame(&frame, &mut b).unwrap();
            }
        }
        while let Some(frame) = responder.poll_transmit() {
            if connected {
                initiator.handle_frame(now, &frame, &mut a).unwrap();
            }
        }
        if initiator.is_done() {
            break;
        }
        now += 100;
        initiator.handle_timeout(now);
    }
    assert_eq!(initiator.report().outcome, Some(Outcome::Converged), "{:?}", initiator.error());
    assert_eq!(a.root(), b.root());
    assert_eq!(hellos, 1, "the session resumed; it never started over");
    assert!(initiator.report().retransmits > 0);
}

#[test]
fn two_keys_in_one_position_group_where_the_initiator_receives_a_newer_version() {
    // A key updated by B whose 24-bit position group also holds another differing key:
    // not paired as a conflict, so A is asked for its old version and receives B's new one
    // in the same answer. (A regression found in review: A must fetch before applying.)
    // With 20,000 updated keys about a dozen position groups hold two of them.
    let (mut a, mut b) = pair(20_000, 0, 0, 0);
    let version = Version { hlc: 50, origin: NodeId([3; 32]), counter: 50, tombstone: false };
    let newer = (0..20_000).map(|i| b.prepare(format!("common-{i}").as_bytes(), b"newer", version).unwrap()).collect();
    b.apply_batch(newer);
    let report = bhsync::reconcile::in_process::reconcile(&mut a, &mut b, &SessionConfig::default(), 1).unwrap();
    assert_eq!(report.outcome, Some(Outcome::Converged), "{report:?}");
    assert_eq!(a.root(), b.root());
}

#[test]
fn versions_with_equal_times_settle_by_last_writer_wins_on_both_sides() {
    let (mut a, mut b) = (state(), state());
    let version = |origin: u8| Version { hlc: 7, origin: NodeId([origin; 32]), counter: 1, tombstone: false };
    a.upsert(a.prepare(b"k", b"from a", version(1)).unwrap());
    b.upsert(b.prepare(b"k", b"from b", version(2)).unwrap());
    let report = bhsync::reconcile::in_process::reconcile(&mut a, &mut b, &SessionConfig::default(), 1).unwrap();
    assert_eq!(report.outcome, Some(Outcome::Converged), "{report:?}");
    assert_eq!(a.get(b"k").unwrap().value, b"from b", "origin 2 wins the tie");
}

#[test]
fn estimator_counters_from_a_peer_cannot_overflow() {
    let mut huge = [0i64; bhsync::reconcile::ESTIMATOR_COUNTERS];
    huge[0] = i64::MAX;
    let mut low = [0i64; bhsync::reconcile::ESTIMATOR_COUNTERS];
    low[0] = i64::MIN;
    assert!(bhsync::reconcile::estimate_difference(&huge, &low).is_finite());
}
