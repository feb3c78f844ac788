//! Last-writer-wins register (Shapiro et al. 2011, §3.2.1) on hybrid logical time.
//!
//! Each write carries a [`Stamp`]: the writer's HLC timestamp with the writer's node
//! identity as the tiebreak, so two different writes never tie. The join keeps the
//! write with the larger stamp. With clocks synchronized by [`crate::time::network_time`]
//! the winner is the latest write in real time, and a concurrent write never loses to
//! one that happened before it (HLC respects causality). The delta of a write is the
//! register holding only that write.

use super::codec::CrdtKind;
use super::{Crdt, CrdtError};
use crate::state::{NodeId, MAX_VALUE_LEN};
use crate::time::codec::{put_byte_string, DecodeError, Reader};
use crate::time::HlcTimestamp;

/// Who wrote when: compared by HLC time, then by writer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Stamp {
    /// The writer's hybrid logical time at the write.
    pub hlc: HlcTimestamp,
    /// The writer.
    pub writer: NodeId,
}

impl Stamp {
    /// Appends 8 bytes of HLC (big-endian) and the 32-byte writer.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.hlc.encode(out);
        out.extend_from_slice(self.writer.as_bytes());
    }

    /// Reads a stamp.
    pub fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let hlc = HlcTimestamp(reader.u64_be()?);
        let writer = reader.node_id()?;
        Ok(Stamp { hlc, writer })
    }
}

/// A last-writer-wins register of bytes. The bottom state (never written) has the
/// zero stamp and an empty value.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LwwRegister {
    stamp: Stamp,
    value: Vec<u8>,
}

impl LwwRegister {
    /// A register that was never written.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current value; `None` if never written.
    pub fn value(&self) -> Option<&[u8]> {
        (self.stamp != Stamp::default()).then_some(self.value.as_slice())
    }

    /// The stamp of the current value.
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Writes `value` at `hlc` by `writer`; returns the delta. A stamp older than the
    /// current one gives a delta that changes nothing anywhere (it lost already).
    pub fn set(&mut self, value: Vec<u8>, hlc: HlcTimestamp, writer: NodeId) -> Result<LwwRegister, CrdtError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(CrdtError::ValueTooLong { len: value.len() });
        }
        let delta = LwwRegister { stamp: Stamp { hlc, writer }, value };
        self.merge(&delta);
        Ok(delta)
    }
}

impl Crdt for LwwRegister {
    const KIND: CrdtKind = CrdtKind::LwwRegister;

    fn merge(&mut self, other: &Self) {
        // Comparing the value after the stamp only matters for two different values
        // under one stamp, which honest writers never produce; it keeps the join
        // commutative even then.
        if (other.stamp, &other.value) > (self.stamp, &self.value) {
            self.stamp = other.stamp;
            self.value.clone_from(&other.value);
        }
    }

    /// `stamp value:bytes`.
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.stamp.encode(out);
        put_byte_string(out, &self.value);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let stamp = Stamp::read(reader)?;
        let value = reader.byte_string("value bytes", MAX_VALUE_LEN)?.to_vec();
        Ok(LwwRegister { stamp, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    #[test]
    fn later_hlc_wins_and_node_breaks_ties() {
        let mut a = LwwRegister::new();
        assert_eq!(a.value(), None);
        a.set(b"old".to_vec(), HlcTimestamp(10), node(9)).unwrap();
        let newer = LwwRegister::new().set(b"new".to_vec(), HlcTimestamp(11), node(1)).unwrap();
        a.merge(&newer);
        assert_eq!(a.value(), Some(&b"new"[..]));
        let tie = LwwRegister::new().set(b"tie".to_vec(), HlcTimestamp(11), node(2)).unwrap();
        a.merge(&tie);
        assert_eq!(a.value(), Some(&b"tie"[..]));
        assert_eq!(a.stamp(), Stamp { hlc: HlcTimestamp(11), writer: node(2) });
    }

    #[test]
    fn stale_writes_and_oversized_values() {
        let mut a = LwwRegister::new();
        a.set(b"x".to_vec(), HlcTimestamp(5), node(1)).unwrap();
        let stale = a.set(b"y".to_vec(), HlcTimestamp(4), node(1)).unwrap();
        assert_eq!(a.value(), Some(&b"x"[..]));
        assert_eq!(stale.value(), Some(&b"y"[..]));
        let too_long = vec![0; MAX_VALUE_LEN + 1];
        assert_eq!(a.set(too_long, HlcTimestamp(6), node(1)), Err(CrdtError::ValueTooLong { len: MAX_VALUE_LEN + 1 }));
    }

    #[test]
    fn encoding_round_trips() {
        let mut a = LwwRegister::new();
        a.set(b"value".to_vec(), HlcTimestamp(1 << 40), node(3)).unwrap();
        let bytes = a.encode();
        assert_eq!(bytes.len(), 2 + 8 + 32 + 1 + 5);
        assert_eq!(LwwRegister::decode(&bytes), Ok(a));
        assert!(LwwRegister::decode(&bytes[..40]).is_err());
    }
}
