//! Version vectors (Parker et al., 1983): for each origin, the highest write counter
//! seen from it. Comparing two vectors tells exactly whether one state has seen
//! everything the other has ("ahead", "behind", "equal") or neither has ("concurrent"),
//! which a scalar version number cannot.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::codec::{put_varint, DecodeError, Reader};
use crate::state::NodeId;

/// The most origins an encoded version vector may name. A guess at "every node that
/// ever wrote to one category" with a wide margin; it bounds decoding, not the network.
pub const MAX_ORIGINS: usize = 4096;

/// A vector clock. Vector clocks (Fidge 1988, Mattern 1989) count *events* per node and
/// version vectors count *writes* per origin, but the structure and its operations
/// (compare, pointwise-maximum merge, encoding) are identical, so bhsync uses one type
/// for both; the name says which role a value plays.
pub type VectorClock = VersionVector;

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

    /// Whether `self` has seen every write `other` has (equal or after).
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.counters.iter().all(|(origin, counter)| self.get(origin) >= *counter)
    }

    /// Appends the compact encoding: a varint origin count, then per origin in
    /// increasing order its 32-byte identity and a varint counter (never 0). The form
    /// is canonical: one vector, one byte string.
    pub fn encode(&self, out: &mut Vec<u8>) {
        debug_assert!(self.counters.len() <= MAX_ORIGINS, "a version vector outgrew MAX_ORIGINS");
        put_varint(out, self.counters.len() as u64);
        for (origin, counter) in &self.counters {
            debug_assert!(*counter > 0);
            out.extend_from_slice(origin.as_bytes());
            put_varint(out, *counter);
        }
    }

    /// Decodes exactly one vector from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let vector = Self::read(&mut reader)?;
        reader.finish()?;
        Ok(vector)
    }

    /// Reads one vector from `reader`: at most [`MAX_ORIGINS`] origins, strictly
    /// increasing, with non-zero counters.
    pub fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = reader.count("version vector origins", MAX_ORIGINS, 33)?;
        let mut vector = VersionVector::new();
        let mut previous: Option<NodeId> = None;
        for _ in 0..count {
            let origin = reader.node_id()?;
            let counter = reader.varint()?;
            if previous.is_some_and(|p| p >= origin) {
                return Err(DecodeError::NotSorted("version vector origins"));
            }
            if counter == 0 {
                return Err(DecodeError::Invalid("zero counter in a version vector"));
            }
            vector.counters.insert(origin, counter);
            previous = Some(origin);
        }
        Ok(vector)
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
    fn dominates_means_equal_or_after() {
        let mut a = VersionVector::new();
        let mut b = VersionVector::new();
        a.observe(node(1), 3);
        b.observe(node(1), 2);
        assert!(a.dominates(&b) && !b.dominates(&a) && a.dominates(&a));
        b.observe(node(2), 1);
        assert!(!a.dominates(&b));
    }

    #[test]
    fn encoding_round_trips_canonically() {
        let mut vector = VectorClock::new();
        vector.observe(node(2), 300);
        vector.observe(node(1), 1);
        let mut out = Vec::new();
        vector.encode(&mut out);
        assert_eq!(out.len(), 1 + (32 + 1) + (32 + 2));
        assert_eq!(VersionVector::decode(&out), Ok(vector));
        let mut empty = Vec::new();
        VersionVector::new().encode(&mut empty);
        assert_eq!(empty, [0]);
    }

    #[test]
    fn decode_refuses_disorder_zero_counters_and_huge_counts() {
        let mut out = vec![2];
        out.extend_from_slice(&[2; 32]);
        out.push(1);
        out.extend_from_slice(&[1; 32]);
        out.push(1);
        assert_eq!(VersionVector::decode(&out), Err(DecodeError::NotSorted("version vector origins")));
        let mut zero = vec![1];
        zero.extend_from_slice(&[1; 32]);
        zero.push(0);
        assert!(matches!(VersionVector::decode(&zero), Err(DecodeError::Invalid(_))));
        assert!(matches!(VersionVector::decode(&[0xff, 0xff, 0x03]), Err(DecodeError::TooMany { .. })));
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
