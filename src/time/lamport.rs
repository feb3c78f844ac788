//! Lamport clocks (Lamport, "Time, Clocks, and the Ordering of Events in a Distributed
//! System", CACM 1978): a counter that ticks on every local event and jumps past every
//! counter it receives, so that if event a happened before event b, `C(a) < C(b)`.
//!
//! Ties between concurrent events are broken by the node identity, as in the paper's
//! total order "⇒": `(counter, node)` compared lexicographically. That order is
//! consistent with causality and total, but says nothing about concurrency; use a
//! [`VersionVector`](super::VersionVector) for that.

use std::fmt;

use super::codec::{put_varint, DecodeError, Reader};
use crate::state::NodeId;

/// Why a Lamport clock refused to advance.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LamportError {
    /// The counter is at `u64::MAX`; advancing would wrap and break the order.
    Exhausted,
}

impl fmt::Display for LamportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lamport counter exhausted (u64::MAX)")
    }
}

impl std::error::Error for LamportError {}

/// One Lamport timestamp. The derived order is the paper's total order: counter first,
/// then node identity as the tiebreak.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct LamportTimestamp {
    /// The logical time.
    pub counter: u64,
    /// The node whose event this is.
    pub node: NodeId,
}

impl LamportTimestamp {
    /// Appends the encoding: varint counter, then the 32-byte node identity.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.counter);
        out.extend_from_slice(self.node.as_bytes());
    }

    /// Decodes exactly one timestamp from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let timestamp = Self::read(&mut reader)?;
        reader.finish()?;
        Ok(timestamp)
    }

    /// Reads one timestamp from `reader`.
    pub fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let counter = reader.varint()?;
        let node = reader.node_id()?;
        Ok(LamportTimestamp { counter, node })
    }
}

/// The Lamport clock of one node.
#[derive(Clone, Debug)]
pub struct LamportClock {
    node: NodeId,
    counter: u64,
}

impl LamportClock {
    /// A clock for `node` that has seen no event.
    pub fn new(node: NodeId) -> Self {
        LamportClock { node, counter: 0 }
    }

    /// The last timestamp issued or observed, without advancing.
    pub fn current(&self) -> LamportTimestamp {
        LamportTimestamp { counter: self.counter, node: self.node }
    }

    /// A local event (or a send): advances the counter and stamps the event (rule IR1).
    pub fn tick(&mut self) -> Result<LamportTimestamp, LamportError> {
        self.counter = self.counter.checked_add(1).ok_or(LamportError::Exhausted)?;
        Ok(self.current())
    }

    /// A receive: jumps past the remote counter and stamps the receive event (rule
    /// IR2). A peer that sends `u64::MAX` exhausts nobody: the clock refuses instead.
    pub fn observe(&mut self, remote: LamportTimestamp) -> Result<LamportTimestamp, LamportError> {
        let next = self.counter.max(remote.counter).checked_add(1).ok_or(LamportError::Exhausted)?;
        debug_assert!(next > remote.counter && next > self.counter);
        self.counter = next;
        Ok(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    #[test]
    fn tick_strictly_increases() {
        let mut clock = LamportClock::new(node(1));
        let first = clock.tick().unwrap();
        let second = clock.tick().unwrap();
        assert!(second > first);
        assert_eq!(second.counter, 2);
        assert_eq!(clock.current(), second);
    }

    #[test]
    fn observe_jumps_past_the_remote_counter() {
        let mut clock = LamportClock::new(node(1));
        let received = clock.observe(LamportTimestamp { counter: 41, node: node(2) }).unwrap();
        assert_eq!(received.counter, 42);
        let older = clock.observe(LamportTimestamp { counter: 3, node: node(2) }).unwrap();
        assert_eq!(older.counter, 43);
    }

    #[test]
    fn ties_are_broken_by_node() {
        let a = LamportTimestamp { counter: 5, node: node(1) };
        let b = LamportTimestamp { counter: 5, node: node(2) };
        assert!(a < b);
        assert!(LamportTimestamp { counter: 6, node: node(0) } > b);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_wrap() {
        let mut clock = LamportClock::new(node(1));
        let remote = LamportTimestamp { counter: u64::MAX, node: node(2) };
        assert_eq!(clock.observe(remote), Err(LamportError::Exhausted));
        assert_eq!(clock.current().counter, 0);
    }

    #[test]
    fn encoding_round_trips_and_refuses_truncation() {
        let timestamp = LamportTimestamp { counter: 300, node: node(9) };
        let mut out = Vec::new();
        timestamp.encode(&mut out);
        assert_eq!(out.len(), 2 + 32);
        assert_eq!(LamportTimestamp::decode(&out), Ok(timestamp));
        assert_eq!(LamportTimestamp::decode(&out[..20]), Err(DecodeError::UnexpectedEnd));
    }
}
