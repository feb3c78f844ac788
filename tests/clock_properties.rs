//! Clock properties (issue 4): the HLC stays monotonic under ±250 ms of skew and a
//! +1 h jump of one node, and never lets that node drag the others into the future;
//! 70,000 events within one millisecond keep a strict order; Lamport clocks respect
//! happened-before; version vectors merge to the least upper bound; network time
//! stays within the honest peers' error bounds when a minority lies; decoding
//! arbitrary bytes never panics.

use bhsync::state::NodeId;
use bhsync::time::hlc::LOGICAL_MAX;
use bhsync::time::{
    Causality, Exchange, Hlc, HlcConfig, HlcError, HlcTimestamp, LamportClock, LamportTimestamp, NetworkTime,
    NetworkTimeConfig, VersionVector,
};
use proptest::prelude::*;

const NODES: usize = 5;
const HOUR_MS: u64 = 3_600_000;
const MAX_OFFSET_MS: u64 = 1_000;

/// One event of a skewed cluster: `node` stamps a local event and sends it to
/// `target`, and `target` receives whatever is in flight to it.
#[derive(Clone, Debug)]
struct Event {
    node: usize,
    target: usize,
    elapsed_ms: u64,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let event =
        (0..NODES, 0..NODES, 0u64..40).prop_map(|(node, target, elapsed_ms)| Event { node, target, elapsed_ms });
    prop::collection::vec(event, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hlc_is_monotonic_under_skew_and_a_one_hour_jump(
        skews in prop::collection::vec(-250i64..=250, NODES),
        events in events(),
        jump_at in 0usize..60,
    ) {
        let config = HlcConfig { max_offset_ms: MAX_OFFSET_MS };
        let mut clocks: Vec<Hlc> = (0..NODES).map(|_| Hlc::new(config)).collect();
        let mut last = [HlcTimestamp(0); NODES];
        // What is in flight to each node: the timestamp and whether it came from the
        // jumped node after its jump.
        let mut in_flight: Vec<Option<(HlcTimestamp, bool)>> = vec![None; NODES];
        let mut true_ms: u64 = 1_700_000_000_000;
        let mut refusals = 0;
        for (index, event) in events.iter().enumerate() {
            true_ms += event.elapsed_ms;
            // Node 0's clock jumps one hour ahead at `jump_at` and stays there.
            let jumped = |node: usize| node == 0 && index >= jump_at;
            let local_ms = |node: usize| (true_ms as i64 + skews[node]) as u64 + if jumped(node) { HOUR_MS } else { 0 };
            let sent = clocks[event.node].now(local_ms(event.node)).expect("in range");
            prop_assert!(sent > last[event.node], "local events strictly increase");
            last[event.node] = sent;
            let receiver = event.target;
            if let Some((remote, from_the_future)) = in_flight[receiver].take() {
                match clocks[receiver].observe(remote, local_ms(receiver)) {
                    Ok(received) => {
                        prop_assert!(!from_the_future || jumped(receiver), "a one-hour-ahead timestamp was accepted");
                        prop_assert!(received > remote && received > last[receiver]);
                        last[receiver] = received;
                    }
                    Err(HlcError::RemoteTooFarAhead { .. }) => {
                        prop_assert!(from_the_future, "an honest timestamp was refused");
                        refusals += 1;
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                }
            }
            in_flight[receiver] = Some((sent, jumped(event.node)));
            // Nodes whose clocks did not jump never run ahead of their own physical
            // time by more than the offset bound: the jumped node cannot drag them.
            for (node, stamp) in last.iter().enumerate().skip(1) {
                let ahead = stamp.physical_ms().saturating_sub(local_ms(node));
                prop_assert!(ahead <= MAX_OFFSET_MS, "node {node} is {ahead} ms ahead");
            }
        }
        let refused: u64 = clocks.iter().map(Hlc::refused_count).sum();
        prop_assert_eq!(refused, refusals);
    }

    #[test]
    fn lamport_order_respects_happened_before(pairs in prop::collection::vec((0usize..3, 0usize..3), 1..40)) {
        let mut clocks: Vec<LamportClock> = (0..3).map(|n| LamportClock::new(NodeId([n as u8; 32]))).collect();
        for (sender, receiver) in pairs {
            let sent = clocks[sender].tick().expect("small");
            let received = clocks[receiver].observe(sent).expect("small");
            prop_assert!(received > sent);
            let mut bytes = Vec::new();
            sent.encode(&mut bytes);
            prop_assert_eq!(LamportTimestamp::decode(&bytes), Ok(sent));
        }
    }

    #[test]
    fn version_vector_merge_is_the_least_upper_bound(
        left in prop::collection::vec((0u8..6, 0u64..5), 0..8),
        right in prop::collection::vec((0u8..6, 0u64..5), 0..8),
    ) {
        let build = |pairs: &[(u8, u64)]| {
            let mut vector = VersionVector::new();
            for (origin, counter) in pairs {
                vector.observe(NodeId([*origin; 32]), *counter);
            }
            vector
        };
        let (a, b) = (build(&left), build(&right));
        let mut merged = a.clone();
        merged.merge(&b);
        prop_assert!(merged.dominates(&a) && merged.dominates(&b));
        let expected = match (a.dominates(&b), b.dominates(&a)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (false, false) => Causality::Concurrent,
        };
        prop_assert_eq!(a.compare(&b), expected);
        let mut bytes = Vec::new();
        merged.encode(&mut bytes);
        prop_assert_eq!(VersionVector::decode(&bytes), Ok(merged));
    }

    #[test]
    fn clock_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(vector) = VersionVector::decode(&bytes) {
            let mut again = Vec::new();
            vector.encode(&mut again);
            prop_assert_eq!(again, bytes.clone());
        }
        let _ = LamportTimestamp::decode(&bytes);
        let _ = HlcTimestamp::decode(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Honest peers (true offset 0, paths of 0.5–20 ms each way, any asymmetry) plus a
    /// minority of liars at arbitrary offsets: every adjustment lands within the
    /// largest honest half-delay of the truth.
    #[test]
    fn network_time_stays_within_honest_bounds_with_a_lying_minority(
        paths in prop::collection::vec((500i64..20_000, 500i64..20_000), 4..9),
        lies in prop::collection::vec(-3_600_000_000i64..3_600_000_000, 0..4),
    ) {
        let liars = lies.len().min((paths.len() - 1) / 2);
        let mut time = NetworkTime::new(NetworkTimeConfig::default());
        let mut worst_half_delay = 0;
        for (index, (out_us, back_us)) in paths.iter().enumerate() {
            let lie = if index < liars { lies[index] } else { 0 };
            if index >= liars {
                worst_half_delay = worst_half_delay.max((out_us + back_us) / 2);
            }
            let t1 = 10_000_000;
            let t2 = t1 + out_us + lie;
            let exchange = Exchange { t1_us: t1, t2_us: t2, t3_us: t2 + 50, t4_us: t1 + out_us + 50 + back_us };
            time.handle_exchange(NodeId([index as u8; 32]), exchange).expect("valid exchange");
        }
        let adjustment = time.update(10_100_000).expect("an honest majority of at least 3");
        prop_assert!(adjustment.estimate_us.abs() <= worst_half_delay + 10, "estimate {}", adjustment.estimate_us);
    }
}

#[test]
fn seventy_thousand_events_in_one_millisecond_keep_a_strict_order() {
    let mut clock = Hlc::default();
    let mut peer = Hlc::default();
    let now_ms = 1_700_000_000_000;
    let mut previous = HlcTimestamp(0);
    for event in 0..70_000u32 {
        // Every tenth event is a receive from a peer in the same millisecond.
        let stamp = if event % 10 == 0 {
            let remote = peer.now(now_ms).expect("in range");
            clock.observe(remote, now_ms).expect("not ahead")
        } else {
            clock.now(now_ms).expect("in range")
        };
        assert!(stamp > previous, "event {event}: {stamp:?} after {previous:?}");
        previous = stamp;
    }
    // 70,000 > 65,536: the logical part overflowed once and borrowed a millisecond.
    assert_eq!(previous.physical_ms(), now_ms + 1);
    assert!(previous.logical() < LOGICAL_MAX);
    assert_eq!(clock.borrowed_ms_count(), 1);
}
