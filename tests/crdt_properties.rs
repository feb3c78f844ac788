//! CRDT laws, checked with proptest at 10,000 cases per type (issue 4).
//!
//! Each case runs a short random history on three replicas: local mutations (each
//! returns a delta) interleaved with full-state merges between replicas, so the final
//! states are related in every way (equal, ordered, concurrent). Then:
//!
//! - the join is idempotent, commutative and associative on those states;
//! - an observer that receives the deltas through a network that loses 30 %,
//!   duplicates 50 % of the rest and reorders everything, and then receives the lost
//!   deltas as one joined delta group (the retransmission of Almeida et al. 2018,
//!   Algorithm 2: unacknowledged deltas are re-sent joined as an interval), ends in
//!   exactly the state that full-state merging of all replicas gives; before the
//!   retransmission its state is below that state in the lattice (never ahead of it,
//!   never beside it);
//! - encodings round-trip, and decoding arbitrary or corrupted bytes never panics.

use bhsync::crdt::{AnyCrdt, Crdt, GCounter, LwwMap, LwwRegister, MvRegister, OrSet, PnCounter};
use bhsync::state::NodeId;
use bhsync::time::{Hlc, HlcConfig};
use proptest::prelude::*;

const REPLICAS: usize = 3;
const CASES: u32 = 10_000;

/// One step of a history.
#[derive(Clone, Debug)]
struct Step {
    /// 0–1: full-state merge `from → to`; 2–9: a mutation at `to`.
    kind: u8,
    from: usize,
    to: usize,
    action: u8,
    argument: u8,
    elapsed_ms: u64,
}

/// What happens to one delta in the network.
#[derive(Clone, Copy, Debug)]
struct Fate {
    loss_roll: u8,
    duplicate_roll: u8,
    order_key: u32,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (0u8..10, 0..REPLICAS, 0..REPLICAS, any::<u8>(), any::<u8>(), 0u64..3).prop_map(
        |(kind, from, to, action, argument, elapsed_ms)| Step { kind, from, to, action, argument, elapsed_ms },
    );
    prop::collection::vec(step, 1..12)
}

fn fates() -> impl Strategy<Value = Vec<Fate>> {
    let fate = (0u8..100, 0u8..100, any::<u32>()).prop_map(|(loss_roll, duplicate_roll, order_key)| Fate {
        loss_roll,
        duplicate_roll,
        order_key,
    });
    prop::collection::vec(fate, 12)
}

fn node(replica: usize) -> NodeId {
    NodeId([replica as u8 + 1; 32])
}

/// A CRDT the histories can drive: one mutation chosen by `action`.
trait Model: Crdt {
    fn mutate(&mut self, replica: usize, action: u8, argument: u8, clock: &mut Hlc, now_ms: u64) -> Self;
}

impl Model for GCounter {
    fn mutate(&mut self, replica: usize, _: u8, argument: u8, _: &mut Hlc, _: u64) -> Self {
        self.increment(node(replica), u64::from(argument % 5) + 1).expect("small increments")
    }
}

impl Model for PnCounter {
    fn mutate(&mut self, replica: usize, action: u8, argument: u8, _: &mut Hlc, _: u64) -> Self {
        let amount = u64::from(argument % 5) + 1;
        let delta =
            if action % 2 == 0 { self.increment(node(replica), amount) } else { self.decrement(node(replica), amount) };
        delta.expect("small amounts")
    }
}

impl Model for LwwRegister {
    fn mutate(&mut self, replica: usize, _: u8, argument: u8, clock: &mut Hlc, now_ms: u64) -> Self {
        let hlc = clock.now(now_ms).expect("in range");
        self.set(vec![argument % 4], hlc, node(replica)).expect("short value")
    }
}

impl Model for MvRegister {
    fn mutate(&mut self, replica: usize, _: u8, argument: u8, _: &mut Hlc, _: u64) -> Self {
        self.write(node(replica), vec![argument % 4]).expect("short value")
    }
}

impl Model for OrSet {
    fn mutate(&mut self, replica: usize, action: u8, argument: u8, _: &mut Hlc, _: u64) -> Self {
        let element = [argument % 4];
        match action % 3 {
            0 | 1 => self.add(node(replica), &element).expect("short element"),
            _ => self.remove(&element),
        }
    }
}

impl Model for LwwMap {
    fn mutate(&mut self, replica: usize, action: u8, argument: u8, clock: &mut Hlc, now_ms: u64) -> Self {
        let key = [argument % 4];
        let hlc = clock.now(now_ms).expect("in range");
        match action % 3 {
            0 | 1 => self.insert(&key, vec![action % 4], hlc, node(replica)).expect("short key"),
            _ => self.remove(&key, hlc, node(replica)).expect("short key"),
        }
    }
}

/// Runs a history; returns the replicas' final states and every delta, in order.
fn run<C: Model>(steps: &[Step]) -> (Vec<C>, Vec<C>) {
    let mut replicas = vec![C::default(); REPLICAS];
    let mut clocks: Vec<Hlc> = (0..REPLICAS).map(|_| Hlc::new(HlcConfig::default())).collect();
    let mut deltas = Vec::new();
    let mut now_ms = 1_000;
    for step in steps {
        now_ms += step.elapsed_ms;
        if step.kind < 2 {
            let source = replicas[step.from].clone();
            replicas[step.to].merge(&source);
        } else {
            let delta = replicas[step.to].mutate(step.to, step.action, step.argument, &mut clocks[step.to], now_ms);
            deltas.push(delta);
        }
    }
    (replicas, deltas)
}

fn join_all<C: Crdt>(states: &[C]) -> C {
    let mut joined = C::default();
    for state in states {
        joined.merge(state);
    }
    joined
}

fn joined<C: Crdt>(left: &C, right: &C) -> C {
    let mut out = left.clone();
    out.merge(right);
    out
}

fn check_laws<C: Model>(steps: &[Step]) -> Result<(), TestCaseError> {
    let (replicas, deltas) = run::<C>(steps);
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    prop_assert_eq!(&joined(a, a), a, "idempotent");
    prop_assert_eq!(joined(a, b), joined(b, a), "commutative");
    prop_assert_eq!(joined(&joined(a, b), c), joined(a, &joined(b, c)), "associative");
    if let Some(delta) = deltas.last() {
        let once = joined(a, delta);
        prop_assert_eq!(joined(&once, delta), once, "a duplicated delta changes nothing");
    }
    for state in [a, b, c] {
        prop_assert_eq!(&C::decode(&state.encode()).expect("own encoding decodes"), state);
    }
    Ok(())
}

fn check_deltas<C: Model>(steps: &[Step], fates: &[Fate]) -> Result<(), TestCaseError> {
    let (replicas, deltas) = run::<C>(steps);
    let expected = join_all(&replicas);
    let mut deliveries: Vec<(u32, &C)> = Vec::new();
    let mut lost: Vec<&C> = Vec::new();
    for (delta, fate) in deltas.iter().zip(fates) {
        if fate.loss_roll < 30 {
            lost.push(delta);
            continue;
        }
        deliveries.push((fate.order_key, delta));
        if fate.duplicate_roll < 50 {
            deliveries.push((fate.order_key.rotate_left(16) ^ 0x5bd1_e995, delta));
        }
    }
    deliveries.sort_by_key(|(order_key, _)| *order_key);
    let mut observer = C::default();
    for (_, delta) in &deliveries {
        observer.merge_delta(delta);
    }
    prop_assert_eq!(joined(&observer, &expected), expected.clone(), "the observer is never ahead of the replicas");
    let mut group = C::default();
    for delta in lost {
        group.merge(delta);
    }
    observer.merge_delta(&group);
    prop_assert_eq!(observer, expected);
    Ok(())
}

macro_rules! crdt_properties {
    ($module:ident, $type:ty) => {
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

                #[test]
                fn merge_is_idempotent_commutative_and_associative(steps in steps()) {
                    check_laws::<$type>(&steps)?;
                }

                #[test]
                fn deltas_under_loss_duplication_and_reordering_converge(steps in steps(), fates in fates()) {
                    check_deltas::<$type>(&steps, &fates)?;
                }
            }
        }
    };
}

crdt_properties!(gcounter, GCounter);
crdt_properties!(pncounter, PnCounter);
crdt_properties!(lww_register, LwwRegister);
crdt_properties!(mv_register, MvRegister);
crdt_properties!(orset, OrSet);
crdt_properties!(lww_map, LwwMap);

/// Decoding must reject or accept, never panic; an accepted value re-encodes to a form
/// that decodes to the same value.
fn decode_is_total(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(value) = AnyCrdt::decode(bytes) {
        let again = AnyCrdt::decode(&value.encode());
        prop_assert_eq!(again, Ok(value));
    }
    let _ = GCounter::decode(bytes);
    let _ = PnCounter::decode(bytes);
    let _ = LwwRegister::decode(bytes);
    let _ = MvRegister::decode(bytes);
    let _ = OrSet::decode(bytes);
    let _ = LwwMap::decode(bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        decode_is_total(&bytes)?;
    }

    #[test]
    fn decoding_corrupted_encodings_never_panics(
        steps in steps(),
        kind in 0usize..6,
        edits in prop::collection::vec((any::<u16>(), any::<u8>()), 1..4),
        cut in any::<u16>(),
    ) {
        let mut bytes = match kind {
            0 => join_all(&run::<GCounter>(&steps).0).encode(),
            1 => join_all(&run::<PnCounter>(&steps).0).encode(),
            2 => join_all(&run::<LwwRegister>(&steps).0).encode(),
            3 => join_all(&run::<MvRegister>(&steps).0).encode(),
            4 => join_all(&run::<OrSet>(&steps).0).encode(),
            _ => join_all(&run::<LwwMap>(&steps).0).encode(),
        };
        prop_assert!(AnyCrdt::decode(&bytes).is_ok());
        for (position, byte) in edits {
            let index = usize::from(position) % bytes.len();
            bytes[index] = byte;
        }
        decode_is_total(&bytes)?;
        bytes.truncate(usize::from(cut) % (bytes.len() + 1));
        decode_is_total(&bytes)?;
    }
}
