//! Multi-value register (Shapiro et al. 2011, §3.2.2), in the optimized form of
//! Almeida et al. 2018 (§7.3: a "dot function" with a causal context).
//!
//! Each write is tagged with a fresh [`Dot`]; its delta carries the new value and, in
//! its causal context, the dots of every value the writer had seen, so the join drops
//! exactly the values that the write overwrote. Writes that did not see each other
//! are concurrent and all survive; the reader (or a custom resolver) decides.

use std::collections::BTreeMap;

use super::codec::{ActorTable, CrdtKind, MAX_ENTRIES};
use super::dot::{CausalContext, Dot};
use super::{Crdt, CrdtError};
use crate::state::{NodeId, MAX_VALUE_LEN};
use crate::time::codec::{put_byte_string, put_varint, DecodeError, Reader};

/// A register that keeps every concurrently written value.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MvRegister {
    values: BTreeMap<Dot, Vec<u8>>,
    context: CausalContext,
}

impl MvRegister {
    /// A register that was never written.
    pub fn new() -> Self {
        Self::default()
    }

    /// The concurrent values, in dot order; empty if never written.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.values.values().map(Vec::as_slice)
    }

    /// The number of concurrent values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The dots this replica has seen.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Writes `value` at `node`, overwriting every value seen here; returns the delta.
    pub fn write(&mut self, node: NodeId, value: Vec<u8>) -> Result<MvRegister, CrdtError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(CrdtError::ValueTooLong { len: value.len() });
        }
        let dot = self.context.next_dot(node).ok_or(CrdtError::DotsExhausted)?;
        let mut context = CausalContext::new();
        for seen in self.values.keys() {
            context.insert(*seen);
        }
        context.insert(dot);
        let delta = MvRegister { values: BTreeMap::from([(dot, value)]), context };
        self.merge(&delta);
        debug_assert_eq!(self.values.len(), 1);
        Ok(delta)
    }
}

impl Crdt for MvRegister {
    const KIND: CrdtKind = CrdtKind::MvRegister;

    /// Keeps a value if both sides hold it, or if one side holds it and the other has
    /// not seen its dot (Almeida et al., join of dot functions).
    fn merge(&mut self, other: &Self) {
        self.values.retain(|dot, _| other.values.contains_key(dot) || !other.context.contains(dot));
        for (dot, value) in &other.values {
            if let Some(ours) = self.values.get_mut(dot) {
                // One dot, two values: only a faulty writer does this; keep the larger
                // so that the join stays commutative.
                if value > ours {
                    ours.clone_from(value);
                }
            } else if !self.context.contains(dot) {
                self.values.insert(*dot, value.clone());
            }
        }
        self.context.merge(&other.context);
    }

    /// `actors count:varint (dot value:bytes)* context`.
    fn encode_body(&self, out: &mut Vec<u8>) {
        let origins = self.values.keys().map(|dot| &dot.origin);
        let context_origins = self.context.version_vector().iter().map(|(origin, _)| origin);
        let cloud_origins = self.context.cloud().map(|dot| &dot.origin);
        let table = ActorTable::collect(origins.chain(context_origins).chain(cloud_origins));
        table.write(out);
        put_varint(out, self.values.len() as u64);
        for (dot, value) in &self.values {
            table.write_dot(out, dot);
            put_byte_string(out, value);
        }
        table.write_context(out, &self.context);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let table = ActorTable::read(reader)?;
        let count = reader.count("register values", MAX_ENTRIES, 3)?;
        let mut values = BTreeMap::new();
        for _ in 0..count {
            let dot = table.read_dot(reader)?;
            if values.last_key_value().is_some_and(|(last, _)| *last >= dot) {
                return Err(DecodeError::NotSorted("register values"));
            }
            let value = reader.byte_string("value bytes", MAX_VALUE_LEN)?.to_vec();
            values.insert(dot, value);
        }
        let context = table.read_context(reader)?;
        if !values.keys().all(|dot| context.contains(dot)) {
            return Err(DecodeError::Invalid("value dot outside the causal context"));
        }
        Ok(MvRegister { values, context })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    fn sorted(register: &MvRegister) -> Vec<Vec<u8>> {
        let mut values: Vec<Vec<u8>> = register.values().map(<[u8]>::to_vec).collect();
        values.sort();
        values
    }

    #[test]
    fn concurrent_writes_are_all_kept_and_a_later_write_replaces_them() {
        let mut a = MvRegister::new();
        let mut b = MvRegister::new();
        a.write(node(1), b"a".to_vec()).unwrap();
        b.write(node(2), b"b".to_vec()).unwrap();
        a.merge(&b);
        assert_eq!(sorted(&a), [b"a".to_vec(), b"b".to_vec()]);
        let delta = a.write(node(1), b"c".to_vec()).unwrap();
        b.merge_delta(&delta);
        assert_eq!(sorted(&b), [b"c".to_vec()]);
        assert_eq!((b.len(), b.is_empty()), (1, false));
        assert!(b.context().contains(&Dot { origin: node(2), counter: 1 }));
    }

    #[test]
    fn an_old_delta_arriving_late_does_not_resurrect() {
        let mut a = MvRegister::new();
        let first = a.write(node(1), b"1".to_vec()).unwrap();
        let second = a.write(node(1), b"2".to_vec()).unwrap();
        let mut b = MvRegister::new();
        b.merge_delta(&second);
        b.merge_delta(&first);
        assert_eq!(b, a);
        assert_eq!(sorted(&b), [b"2".to_vec()]);
    }

    #[test]
    fn encoding_round_trips_and_checks_the_context() {
        let mut a = MvRegister::new();
        a.write(node(1), b"x".to_vec()).unwrap();
        let mut b = MvRegister::new();
        b.write(node(2), b"y".to_vec()).unwrap();
        a.merge(&b);
        let bytes = a.encode();
        assert_eq!(MvRegister::decode(&bytes), Ok(a.clone()));
        // Drop the context: the values' dots are no longer covered.
        let mut broken = bytes[..bytes.len() - 2 * 3].to_vec();
        broken.extend_from_slice(&[0, 0]);
        assert!(MvRegister::decode(&broken).is_err());
        assert!(a.write(node(1), vec![0; MAX_VALUE_LEN + 1]).is_err());
    }
}
