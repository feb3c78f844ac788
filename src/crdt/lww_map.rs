//! A map of last-writer-wins slots (Shapiro et al. 2011, §3.2.1 applied per key).
//!
//! Every key holds the write with the largest [`Stamp`]; a removal is a write of "no
//! value", so that a concurrent older insert cannot bring the key back. Those removal
//! markers are one per key, bounded by [`MAX_ENTRIES`], and can be dropped once every
//! replica has seen them ([`LwwMap::prune_removed_before`], with a stamp the host knows
//! to be causally stable, e.g. the minimum of all replicas' acknowledged HLC). The
//! delta of a write is the map holding only that key.

use std::collections::BTreeMap;

use super::codec::{ActorTable, CrdtKind, MAX_ENTRIES};
use super::lww_register::Stamp;
use super::{Crdt, CrdtError, MAX_ELEMENT_LEN};
use crate::state::{NodeId, MAX_VALUE_LEN};
use crate::time::codec::{put_byte_string, put_varint, DecodeError, Reader};
use crate::time::HlcTimestamp;

const SLOT_REMOVED: u8 = 0;
const SLOT_VALUE: u8 = 1;

/// One key's last write: a value, or `None` for a removal.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Slot {
    stamp: Stamp,
    value: Option<Vec<u8>>,
}

/// A last-writer-wins map from byte keys to byte values.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LwwMap {
    slots: BTreeMap<Vec<u8>, Slot>,
}

impl LwwMap {
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.slots.get(key).and_then(|slot| slot.value.as_deref())
    }

    /// Present keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.slots.iter().filter_map(|(key, slot)| slot.value.as_deref().map(|value| (key.as_slice(), value)))
    }

    /// The number of present keys.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of removal markers held.
    pub fn removed_len(&self) -> usize {
        self.slots.values().filter(|slot| slot.value.is_none()).count()
    }

    /// Sets `key` to `value` at `hlc` by `writer`; returns the delta.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        hlc: HlcTimestamp,
        writer: NodeId,
    ) -> Result<LwwMap, CrdtError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(CrdtError::ValueTooLong { len: value.len() });
        }
        self.write(key, Slot { stamp: Stamp { hlc, writer }, value: Some(value) })
    }

    /// Removes `key` at `hlc` by `writer`; returns the delta.
    pub fn remove(&mut self, key: &[u8], hlc: HlcTimestamp, writer: NodeId) -> Result<LwwMap, CrdtError> {
        self.write(key, Slot { stamp: Stamp { hlc, writer }, value: None })
    }

    /// Drops removal markers older than `stable`. Only safe when every replica has
    /// seen every write stamped before `stable`; otherwise an old insert could return.
    pub fn prune_removed_before(&mut self, stable: HlcTimestamp) -> usize {
        let before = self.slots.len();
        self.slots.retain(|_, slot| slot.value.is_some() || slot.stamp.hlc >= stable);
        before - self.slots.len()
    }

    fn write(&mut self, key: &[u8], slot: Slot) -> Result<LwwMap, CrdtError> {
        if key.len() > MAX_ELEMENT_LEN {
            return Err(CrdtError::ElementTooLong { len: key.len() });
        }
        if !self.slots.contains_key(key) && self.slots.len() >= MAX_ENTRIES {
            return Err(CrdtError::TooManyEntries);
        }
        let delta = LwwMap { slots: BTreeMap::from([(key.to_vec(), slot)]) };
        self.merge(&delta);
        Ok(delta)
    }
}

impl Crdt for LwwMap {
    const KIND: CrdtKind = CrdtKind::LwwMap;

    fn merge(&mut self, other: &Self) {
        for (key, theirs) in &other.slots {
            match self.slots.get_mut(key) {
                // The value breaks a tie of stamps only for faulty writers (see
                // LwwRegister::merge); None sorts before any value.
                Some(ours) => {
                    if (theirs.stamp, &theirs.value) > (ours.stamp, &ours.value) {
                        ours.clone_from(theirs);
                    }
                }
                None => {
                    self.slots.insert(key.clone(), theirs.clone());
                }
            }
        }
    }

    /// `actors count:varint (key:bytes hlc:u64be writer:actor flag:u8 [value:bytes])*`.
    fn encode_body(&self, out: &mut Vec<u8>) {
        let table = ActorTable::collect(self.slots.values().map(|slot| &slot.stamp.writer));
        table.write(out);
        put_varint(out, self.slots.len() as u64);
        for (key, slot) in &self.slots {
            put_byte_string(out, key);
            slot.stamp.hlc.encode(out);
            table.write_actor(out, &slot.stamp.writer);
            match &slot.value {
                Some(value) => {
                    out.push(SLOT_VALUE);
                    put_byte_string(out, value);
                }
                None => out.push(SLOT_REMOVED),
            }
        }
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let table = ActorTable::read(reader)?;
        let count = reader.count("map keys", MAX_ENTRIES, 11)?;
        let mut slots: BTreeMap<Vec<u8>, Slot> = BTreeMap::new();
        for _ in 0..count {
            let key = reader.byte_string("key bytes", MAX_ELEMENT_LEN)?;
            if slots.last_key_value().is_some_and(|(last, _)| last.as_slice() >= key) {
                return Err(DecodeError::NotSorted("map keys"));
            }
            let hlc = HlcTimestamp(reader.u64_be()?);
            let writer = table.read_actor(reader)?;
            let value = match reader.u8()? {
                SLOT_REMOVED => None,
                SLOT_VALUE => Some(reader.byte_string("value bytes", MAX_VALUE_LEN)?.to_vec()),
                _ => return Err(DecodeError::Invalid("map slot flag")),
            };
            slots.insert(key.to_vec(), Slot { stamp: Stamp { hlc, writer }, value });
        }
        Ok(LwwMap { slots })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    #[test]
    fn last_write_per_key_wins_including_removals() {
        let mut a = LwwMap::new();
        a.insert(b"k", b"1".to_vec(), HlcTimestamp(1), node(1)).unwrap();
        let mut b = a.clone();
        let removal = b.remove(b"k", HlcTimestamp(3), node(2)).unwrap();
        let stale_insert = a.insert(b"k", b"2".to_vec(), HlcTimestamp(2), node(1)).unwrap();
        a.merge_delta(&removal);
        b.merge_delta(&stale_insert);
        assert_eq!(a, b);
        assert_eq!(a.get(b"k"), None);
        assert_eq!((a.len(), a.is_empty(), a.removed_len()), (0, true, 1));
    }

    #[test]
    fn pruning_drops_only_old_removals() {
        let mut map = LwwMap::new();
        map.insert(b"live", b"v".to_vec(), HlcTimestamp(1), node(1)).unwrap();
        map.remove(b"old", HlcTimestamp(2), node(1)).unwrap();
        map.remove(b"new", HlcTimestamp(9), node(1)).unwrap();
        assert_eq!(map.prune_removed_before(HlcTimestamp(5)), 1);
        assert_eq!(map.removed_len(), 1);
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&b"live"[..], &b"v"[..])]);
    }

    #[test]
    fn encoding_round_trips_and_refuses_bad_flags() {
        let mut map = LwwMap::new();
        map.insert(b"a", b"1".to_vec(), HlcTimestamp(7), node(1)).unwrap();
        map.remove(b"b", HlcTimestamp(8), node(2)).unwrap();
        let bytes = map.encode();
        assert_eq!(LwwMap::decode(&bytes), Ok(map.clone()));
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 7;
        assert_eq!(LwwMap::decode(&bad), Err(DecodeError::Invalid("map slot flag")));
        assert!(map.insert(&[0; MAX_ELEMENT_LEN + 1], Vec::new(), HlcTimestamp(9), node(1)).is_err());
    }
}
