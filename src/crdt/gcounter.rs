//! Grow-only counter (Shapiro, Preguiça, Baquero, Zawirski: "A comprehensive study of
//! Convergent and Commutative Replicated Data Types", INRIA RR-7506, 2011, §3.1.1).
//!
//! Each node counts its own increments; the value is the sum; the join is the
//! pointwise maximum. The delta of an increment is the single entry of the node that
//! incremented (Almeida et al. 2018, Fig. 2).

use std::collections::BTreeMap;

use super::codec::{CrdtKind, MAX_ACTORS};
use super::{Crdt, CrdtError};
use crate::state::NodeId;
use crate::time::codec::{put_varint, DecodeError, Reader};

/// A grow-only counter.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct GCounter {
    counts: BTreeMap<NodeId, u64>,
}

impl GCounter {
    /// The zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sum of every node's count (a `u128`: the sum of `u64`s can pass `u64::MAX`).
    pub fn value(&self) -> u128 {
        self.counts.values().map(|count| u128::from(*count)).sum()
    }

    /// The count of one node.
    pub fn count_of(&self, node: &NodeId) -> u64 {
        self.counts.get(node).copied().unwrap_or(0)
    }

    /// Nodes with a non-zero count, with their counts, in node order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &u64)> {
        self.counts.iter()
    }

    /// Adds `amount` to `node`'s count and returns the delta.
    pub fn increment(&mut self, node: NodeId, amount: u64) -> Result<GCounter, CrdtError> {
        let current = self.count_of(&node);
        let next = current.checked_add(amount).ok_or(CrdtError::CounterOverflow)?;
        if current == 0 && self.counts.len() >= MAX_ACTORS {
            return Err(CrdtError::TooManyEntries);
        }
        let mut delta = GCounter::new();
        if next > 0 {
            delta.counts.insert(node, next);
        }
        self.merge(&delta);
        debug_assert_eq!(self.count_of(&node), next);
        Ok(delta)
    }
}

impl Crdt for GCounter {
    const KIND: CrdtKind = CrdtKind::GCounter;

    fn merge(&mut self, other: &Self) {
        for (node, count) in &other.counts {
            let slot = self.counts.entry(*node).or_insert(0);
            *slot = (*slot).max(*count);
        }
    }

    /// `count:varint (node_id:[u8;32] count:varint)*`, nodes strictly increasing,
    /// counts non-zero. Each node appears once, so no actor table is needed.
    fn encode_body(&self, out: &mut Vec<u8>) {
        put_varint(out, self.counts.len() as u64);
        for (node, count) in &self.counts {
            out.extend_from_slice(node.as_bytes());
            put_varint(out, *count);
        }
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = reader.count("counter nodes", MAX_ACTORS, 33)?;
        let mut counter = GCounter::new();
        let mut previous: Option<NodeId> = None;
        for _ in 0..len {
            let node = reader.node_id()?;
            let count = reader.varint()?;
            if previous.is_some_and(|p| p >= node) {
                return Err(DecodeError::NotSorted("counter nodes"));
            }
            if count == 0 {
                return Err(DecodeError::Invalid("zero count"));
            }
            counter.counts.insert(node, count);
            previous = Some(node);
        }
        Ok(counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    #[test]
    fn increments_sum_and_merge_takes_the_maximum() {
        let mut a = GCounter::new();
        let mut b = GCounter::new();
        a.increment(node(1), 3).unwrap();
        b.increment(node(2), 4).unwrap();
        b.increment(node(1), 1).unwrap();
        a.merge(&b);
        assert_eq!(a.value(), 7);
        assert_eq!(a.count_of(&node(1)), 3);
        assert_eq!(a.iter().count(), 2);
    }

    #[test]
    fn delta_is_one_entry_and_has_the_same_effect() {
        let mut a = GCounter::new();
        a.increment(node(1), 5).unwrap();
        let delta = a.increment(node(1), 2).unwrap();
        assert_eq!(delta.iter().collect::<Vec<_>>(), [(&node(1), &7)]);
        let mut b = GCounter::new();
        b.merge_delta(&delta);
        assert_eq!(b, a);
        assert_eq!(a.increment(node(1), u64::MAX), Err(CrdtError::CounterOverflow));
    }

    #[test]
    fn encoding_round_trips_and_refuses_bad_input() {
        let mut counter = GCounter::new();
        counter.increment(node(1), 300).unwrap();
        let bytes = counter.encode();
        assert_eq!(bytes.len(), 2 + 1 + 32 + 2);
        assert_eq!(GCounter::decode(&bytes), Ok(counter));
        assert!(GCounter::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut zero = bytes.clone();
        *zero.last_mut().unwrap() = 0;
        zero.truncate(zero.len() - 1);
        zero.push(0);
        assert!(GCounter::decode(&zero).is_err());
        assert!(matches!(GCounter::decode(&[1, 2, 0]), Err(DecodeError::WrongKind { .. })));
    }
}
