//! A linearizability checker for histories of registers.
//!
//! The algorithm is Wing & Gong's search with Lowe's memoization ("Testing for
//! linearizability", 2017), as in Porcupine and Knossos: walk the history's call and
//! return events in time order; at a call, try to linearize that operation next (if
//! the register model allows it and the pair (set of linearized operations, state) was
//! not seen before), lifting it and its return out of the list; at a return whose
//! operation is not linearized yet, backtrack. Linked-list removal and reinsertion in
//! LIFO order ("dancing links") makes backtracking O(1).
//!
//! Registers are independent objects, so a history is linearizable iff each key's
//! sub-history is (locality, Herlihy & Wing 1990): keys are checked one at a time.
//! A write whose outcome is unknown (the client gave up, the node crashed) has no
//! return: it returns "at infinity", so it may be linearized anywhere after its call,
//! including after everything else — where it has no visible effect, i.e. never.
//! A read without an answer constrains nothing and is left out.

use std::collections::{BTreeMap, HashSet};

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Wrote this value (values should be unique per key for a sharp check).
    Write(u64),
    /// Read this value (`None`: the initial, never-written state).
    Read(Option<u64>),
}

/// One client operation on one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The register.
    pub key: u64,
    /// What it did.
    pub kind: OpKind,
    /// When it was invoked (any monotonic clock shared by all clients).
    pub invoke: u64,
    /// When its answer arrived; `None` when it never did (for a write: it may or may
    /// not have taken effect; a read without an answer is ignored).
    pub complete: Option<u64>,
}

/// The checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's history is linearizable.
    Linearizable,
    /// This key's history is not.
    Violation {
        /// The key.
        key: u64,
    },
    /// The search for this key went over the step budget.
    Unknown {
        /// The key.
        key: u64,
    },
}

/// Checks a history of register operations, spending at most `budget` search steps
/// per key.
pub fn check_registers(history: &[Op], budget: u64) -> CheckResult {
    let mut by_key: BTreeMap<u64, Vec<Op>> = BTreeMap::new();
    for op in history {
        if matches!(op.kind, OpKind::Read(_)) && op.complete.is_none() {
            continue;
        }
        by_key.entry(op.key).or_default().push(*op);
    }
    for (key, ops) in by_key {
        match check_one(&ops, budget) {
            Some(true) => {}
            Some(false) => return CheckResult::Violation { key },
            None => return CheckResult::Unknown { key },
        }
    }
    CheckResult::Linearizable
}

/// One event of the list: the call or the return of `op`.
struct Events {
    op: Vec<usize>,
    call: Vec<bool>,
    /// For a call: the index of its return.
    partner: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

const HEAD: usize = 0;

impl Events {
    /// Events 1..=2n in time order, a head at 0 and a tail at 2n+1.
    fn new(ops: &[Op]) -> Events {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke, false, i));
            order.push((op.complete.unwrap_or(u64::MAX), true, i));
        }
        // At equal times calls come first: the operations overlap (the permissive reading).
        order.sort();
        let n = order.len();
        let mut events = Events {
            op: vec![usize::MAX; n + 2],
            call: vec![false; n + 2],
            partner: vec![0; n + 2],
            next: (1..=n + 2).collect(),
            prev: (0..n + 2).map(|i| i.saturating_sub(1)).collect(),
        };
        let mut call_of = vec![0; ops.len()];
        for (position, &(_, is_return, op)) in order.iter().enumerate() {
            let at = position + 1;
            events.op[at] = op;
            events.call[at] = !is_return;
            if is_return {
                events.partner[call_of[op]] = at;
            } else {
                call_of[op] = at;
            }
        }
        events
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        self.prev[n] = i;
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

/// The register model: `Some(new state)` when `kind` is legal in `state`.
fn step(state: Option<u64>, kind: OpKind) -> Option<Option<u64>> {
    match kind {
        OpKind::Write(value) => Some(Some(value)),
        OpKind::Read(seen) => (seen == state).then_some(state),
    }
}

fn check_one(ops: &[Op], budget: u64) -> Option<bool> {
    let mut events = Events::new(ops);
    let tail = ops.len() * 2 + 1;
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut entry = events.next[HEAD];
    let mut steps = 0u64;
    while events.next[HEAD] != tail {
        steps += 1;
        if steps > budget {
            return None;
        }
        if entry == tail {
            return Some(false); // Unreachable with a well-formed list; be safe.
        }
        let op = events.op[entry];
        if events.call[entry] {
            if let Some(next_state) = step(state, ops[op].kind) {
                linearized[op / 64] |= 1 << (op % 64);
                if seen.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    events.lift(entry);
                    entry = events.next[HEAD];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = events.next[entry];
        } else {
            // A return whose operation is not linearized: undo the last choice.
            let Some((call, previous)) = stack.pop() else { return Some(false) };
            let op = events.op[call];
            linearized[op / 64] &= !(1 << (op % 64));
            state = previous;
            events.unlift(call);
            entry = events.next[call];
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: u64, value: u64, invoke: u64, complete: Option<u64>) -> Op {
        Op { key, kind: OpKind::Write(value), invoke, complete }
    }

    fn r(key: u64, value: Option<u64>, invoke: u64, complete: u64) -> Op {
        Op { key, kind: OpKind::Read(value), invoke, complete: Some(complete) }
    }

    #[test]
    fn sequential_histories_are_checked_against_the_register() {
        let good = [w(1, 1, 0, Some(1)), r(1, Some(1), 2, 3), w(1, 2, 4, Some(5)), r(1, Some(2), 6, 7)];
        assert_eq!(check_registers(&good, 10_000), CheckResult::Linearizable);
        let stale = [w(1, 1, 0, Some(1)), w(1, 2, 2, Some(3)), r(1, Some(1), 4, 5)];
        assert_eq!(check_registers(&stale, 10_000), CheckResult::Violation { key: 1 });
        let from_nowhere = [r(1, Some(9), 0, 1)];
        assert_eq!(check_registers(&from_nowhere, 10_000), CheckResult::Violation { key: 1 });
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // Two overlapping writes; reads after both see one, and then keep seeing it.
        let ok = [w(1, 1, 0, Some(10)), w(1, 2, 1, Some(9)), r(1, Some(1), 11, 12), r(1, Some(1), 13, 14)];
        assert_eq!(check_registers(&ok, 10_000), CheckResult::Linearizable);
        let flip = [w(1, 1, 0, Some(10)), w(1, 2, 1, Some(9)), r(1, Some(1), 11, 12), r(1, Some(2), 13, 14)];
        assert_eq!(check_registers(&flip, 10_000), CheckResult::Violation { key: 1 });
        // A read overlapping a write may see the old or the new value.
        let overlap = [w(1, 1, 0, Some(1)), w(1, 2, 2, Some(6)), r(1, Some(1), 3, 4), r(1, Some(2), 5, 7)];
        assert_eq!(check_registers(&overlap, 10_000), CheckResult::Linearizable);
    }

    #[test]
    fn a_write_with_unknown_outcome_may_or_may_not_have_happened() {
        let applied = [w(1, 1, 0, None), r(1, Some(1), 5, 6)];
        assert_eq!(check_registers(&applied, 10_000), CheckResult::Linearizable);
        let not_applied = [w(1, 1, 0, None), r(1, None, 5, 6)];
        assert_eq!(check_registers(&not_applied, 10_000), CheckResult::Linearizable);
        // But once seen it cannot be unseen.
        let unseen = [w(1, 1, 0, None), r(1, Some(1), 5, 6), r(1, None, 7, 8)];
        assert_eq!(check_registers(&unseen, 10_000), CheckResult::Violation { key: 1 });
    }

    #[test]
    fn keys_are_independent() {
        let history = [w(1, 1, 0, Some(1)), w(2, 5, 0, Some(1)), r(1, Some(1), 2, 3), r(2, Some(5), 2, 3)];
        assert_eq!(check_registers(&history, 10_000), CheckResult::Linearizable);
        let crossed = [w(1, 1, 0, Some(1)), r(2, Some(1), 2, 3)];
        assert_eq!(check_registers(&crossed, 10_000), CheckResult::Violation { key: 2 });
    }
}
