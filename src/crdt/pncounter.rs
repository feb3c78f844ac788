//! Increment/decrement counter (Shapiro et al. 2011, §3.1.2): two grow-only counters,
//! one of increments and one of decrements; the value is their difference.

use super::codec::CrdtKind;
use super::gcounter::GCounter;
use super::{Crdt, CrdtError};
use crate::state::NodeId;
use crate::time::codec::{DecodeError, Reader};

/// A counter that can go up and down.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PnCounter {
    /// The zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Increments minus decrements.
    pub fn value(&self) -> i128 {
        // Each side is at most MAX_ACTORS × u64::MAX < 2^76, so the difference fits.
        self.increments.value() as i128 - self.decrements.value() as i128
    }

    /// Adds `amount` at `node`; returns the delta.
    pub fn increment(&mut self, node: NodeId, amount: u64) -> Result<PnCounter, CrdtError> {
        let increments = self.increments.increment(node, amount)?;
        Ok(PnCounter { increments, decrements: GCounter::new() })
    }

    /// Subtracts `amount` at `node`; returns the delta.
    pub fn decrement(&mut self, node: NodeId, amount: u64) -> Result<PnCounter, CrdtError> {
        let decrements = self.decrements.increment(node, amount)?;
        Ok(PnCounter { increments: GCounter::new(), decrements })
    }
}

impl Crdt for PnCounter {
    const KIND: CrdtKind = CrdtKind::PnCounter;

    fn merge(&mut self, other: &Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }

    /// The increments' body, then the decrements' body.
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.increments.encode_body(out);
        self.decrements.encode_body(out);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let increments = GCounter::decode_body(reader)?;
        let decrements = GCounter::decode_body(reader)?;
        Ok(PnCounter { increments, decrements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    #[test]
    fn value_is_increments_minus_decrements_across_replicas() {
        let mut a = PnCounter::new();
        let mut b = PnCounter::new();
        a.increment(node(1), 10).unwrap();
        b.decrement(node(2), 15).unwrap();
        a.merge(&b);
        b.merge(&a);
        assert_eq!(a.value(), -5);
        assert_eq!(a, b);
    }

    #[test]
    fn deltas_carry_only_their_side() {
        let mut a = PnCounter::new();
        let up = a.increment(node(1), 2).unwrap();
        let down = a.decrement(node(1), 1).unwrap();
        assert_eq!((up.value(), down.value()), (2, -1));
        let mut b = PnCounter::new();
        b.merge_delta(&down);
        b.merge_delta(&up);
        assert_eq!(b, a);
        let bytes = a.encode();
        assert_eq!(PnCounter::decode(&bytes), Ok(a));
        assert!(PnCounter::decode(&bytes[..bytes.len() - 2]).is_err());
    }
}
