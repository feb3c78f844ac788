//! Version vectors (Parker et al., 1983): for each origin, the highest write counter
//! seen from it. Comparing two vectors tells exactly whether one state has seen
//! everything the other has ("ahead", "behind", "equal") or neither has ("concurrent"),
//! which a scalar version number cannot.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::state::NodeId;

/// How two version vectors relate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Causality {
    /// Both have seen exactly the same writes.
    Equal,
    /// The left side has seen a strict subset of the right side's writes.
    Before,
    /// The left side has seen a strict superset of the right side's writes.
    After,
    /// Each side has seen a write the other has not.
    Concurrent,
}

/// A version vector: origin → highest counter seen. Absent origins count as 0.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct VersionVector {
    counters: BTreeMap<NodeId, u64>,
}

impl VersionVector {
    /// The empty vector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the write `counter` of `origin` has been seen.
    pub fn observe(&mut self, origin: NodeId, counter: u64) {
        if counter == 0 {
            return;
        }
        let slot = self.counters.entry(origin).or_insert(0);
        *slot = (*slot).max(counter);
    }

    /// The highest counter seen from `origin`.
    pub fn get(&self, origin: &NodeId) -> u64 {
        self.counters.get(origin).copied().unwrap_or(0)
    }

    /// The pointwise maximum of both vectors.
    pub fn merge(&mut self, other: &VersionVector) {
        for (origin, counter) in &other.counters {
            self.observe(*origin, *counter);
        }
    }

    /// `(origin, counter)` pairs in origin order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &u64)> {
        self.counters.iter()
    }

    /// Number of origins with a non-zero counter.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether no write has been seen.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// How `self` relates to `other`.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        let mut self_ahead = false;
        let mut other_ahead = false;
        let origins = self.counters.keys().chain(other.counters.keys());
        for origin in origins {
            match self.get(origin).cmp(&other.get(origin)) {
                Ordering::Greater => self_ahead = true,
                Ordering::Less => other_ahead = true,
                Ordering::Equal => {}
            }
        }
        match (self_ahead, other_ahead) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    #[test]
    fn compare_gives_equal_before_after_and_concurrent() {
        let mut a = VersionVector::new();
        let mut b = VersionVector::new();
        assert_eq!(a.compare(&b), Causality::Equal);
        a.observe(node(1), 2);
        assert_eq!(a.compare(&b), Causality::After);
        assert_eq!(b.compare(&a), Causality::Before);
        b.observe(node(2), 1);
        assert_eq!(a.compare(&b), Causality::Concurrent);
        a.merge(&b);
        b.merge(&a);
        assert_eq!(a.compare(&b), Causality::Equal);
        assert_eq!(a.get(&node(1)), 2);
        assert_eq!(a.get(&node(3)), 0);
    }

    #[test]
    fn observe_keeps_the_maximum_and_ignores_zero() {
        let mut vector = VersionVector::new();
        vector.observe(node(1), 5);
        vector.observe(node(1), 3);
        vector.observe(node(2), 0);
        assert_eq!(vector.get(&node(1)), 5);
        assert_eq!(vector.len(), 1);
    }
}
