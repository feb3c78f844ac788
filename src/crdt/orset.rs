//! Add-wins observed-remove set without tombstones (Bieniusa, Zawirski, Preguiça,
//! Shapiro, Baquero, Balegas, Duarte: "An Optimized Conflict-free Replicated Set",
//! arXiv:1210.3368, 2012), as the delta-state "AWSet" of Almeida et al. 2018 (§7.2,
//! Fig. 7).
//!
//! Each add tags the element with a fresh [`Dot`]; the state is the map from elements
//! to the dots that currently support them, plus the causal context of every dot ever
//! seen. A remove deletes the element's dots from the map, and the context remembers
//! that they existed, so no tombstone is kept: memory is the live elements, their
//! dots, and a version vector (plus the dots seen out of order). An add concurrent
//! with a remove carries a dot the remove had not seen, so the add wins.
//!
//! Deltas: `add(e)` gives `({e ↦ {d}}, {d} ∪ dots(e))` (the new dot replaces the
//! element's old dots); `remove(e)` gives `({}, dots(e))`.

use std::collections::{BTreeMap, BTreeSet};

use super::codec::{ActorTable, CrdtKind, MAX_ENTRIES};
use super::dot::{CausalContext, Dot};
use super::{Crdt, CrdtError, MAX_ELEMENT_LEN};
use crate::state::NodeId;
use crate::time::codec::{put_byte_string, put_varint, DecodeError, Reader};

/// An add-wins set of byte strings.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct OrSet {
    entries: BTreeMap<Vec<u8>, BTreeSet<Dot>>,
    context: CausalContext,
}

impl OrSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `element` is in the set.
    pub fn contains(&self, element: &[u8]) -> bool {
        self.entries.contains_key(element)
    }

    /// The elements, in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.keys().map(Vec::as_slice)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The dots this replica has seen.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Adds `element` at `node`; returns the delta.
    pub fn add(&mut self, node: NodeId, element: &[u8]) -> Result<OrSet, CrdtError> {
        if element.len() > MAX_ELEMENT_LEN {
            return Err(CrdtError::ElementTooLong { len: element.len() });
        }
        if !self.contains(element) && self.entries.len() >= MAX_ENTRIES {
            return Err(CrdtError::TooManyEntries);
        }
        let dot = self.context.next_dot(node).ok_or(CrdtError::DotsExhausted)?;
        let mut delta = OrSet::new();
        for old in self.entries.get(element).into_iter().flatten() {
            delta.context.insert(*old);
        }
        delta.context.insert(dot);
        delta.entries.insert(element.to_vec(), BTreeSet::from([dot]));
        self.merge(&delta);
        debug_assert!(self.contains(element));
        Ok(delta)
    }

    /// Removes `element` (every add this replica has seen); returns the delta. Removing
    /// an absent element gives an empty delta.
    pub fn remove(&mut self, element: &[u8]) -> OrSet {
        let mut delta = OrSet::new();
        for old in self.entries.get(element).into_iter().flatten() {
            delta.context.insert(*old);
        }
        self.merge(&delta);
        debug_assert!(!self.contains(element));
        delta
    }
}

impl Crdt for OrSet {
    const KIND: CrdtKind = CrdtKind::OrSet;

    /// Per element, a dot survives if both sides hold it, or if one side holds it and
    /// the other has not seen it (Almeida et al. 2018, join of causal dot maps).
    fn merge(&mut self, other: &Self) {
        let other_context = &other.context;
        self.entries.retain(|element, dots| {
            let theirs = other.entries.get(element);
            dots.retain(|dot| theirs.is_some_and(|t| t.contains(dot)) || !other_context.contains(dot));
            !dots.is_empty()
        });
        for (element, theirs) in &other.entries {
            let unseen = theirs.iter().filter(|dot| !self.context.contains(dot));
            match self.entries.get_mut(element) {
                Some(ours) => ours.extend(unseen),
                None => {
                    let fresh: BTreeSet<Dot> = unseen.copied().collect();
                    if !fresh.is_empty() {
                        self.entries.insert(element.clone(), fresh);
                    }
                }
            }
        }
        self.context.merge(other_context);
    }

    /// `actors count:varint (element:bytes dots)* context`, where
    /// `dots = count:varint dot*`.
    fn encode_body(&self, out: &mut Vec<u8>) {
        let dot_origins = self.entries.values().flatten().map(|dot| &dot.origin);
        let context_origins = self.context.version_vector().iter().map(|(origin, _)| origin);
        let cloud_origins = self.context.cloud().map(|dot| &dot.origin);
        let table = ActorTable::collect(dot_origins.chain(context_origins).chain(cloud_origins));
        table.write(out);
        put_varint(out, self.entries.len() as u64);
        for (element, dots) in &self.entries {
            put_byte_string(out, element);
            put_varint(out, dots.len() as u64);
            for dot in dots {
                table.write_dot(out, dot);
            }
        }
        table.write_context(out, &self.context);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let table = ActorTable::read(reader)?;
        let count = reader.count("set elements", MAX_ENTRIES, 4)?;
        let mut entries: BTreeMap<Vec<u8>, BTreeSet<Dot>> = BTreeMap::new();
        for _ in 0..count {
            let element = reader.byte_string("element bytes", MAX_ELEMENT_LEN)?;
            if entries.last_key_value().is_some_and(|(last, _)| last.as_slice() >= element) {
                return Err(DecodeError::NotSorted("set elements"));
            }
            let dots = table.read_dots(reader, "element dots")?;
            if dots.is_empty() {
                return Err(DecodeError::Invalid("element without dots"));
            }
            entries.insert(element.to_vec(), dots);
        }
        let context = table.read_context(reader)?;
        if !entries.values().flatten().all(|dot| context.contains(dot)) {
            return Err(DecodeError::Invalid("element dot outside the causal context"));
        }
        Ok(OrSet { entries, context })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    #[test]
    fn add_remove_and_contains() {
        let mut set = OrSet::new();
        set.add(node(1), b"x").unwrap();
        set.add(node(1), b"y").unwrap();
        assert!(set.contains(b"x") && set.len() == 2);
        set.remove(b"x");
        assert!(!set.contains(b"x"));
        assert_eq!(set.iter().collect::<Vec<_>>(), [&b"y"[..]]);
        assert!(set.remove(b"absent").context().is_empty());
        assert!(!set.is_empty());
    }

    #[test]
    fn a_concurrent_add_wins_over_a_remove() {
        let mut a = OrSet::new();
        let add = a.add(node(1), b"e").unwrap();
        let mut b = OrSet::new();
        b.merge_delta(&add);
        let removal = b.remove(b"e");
        let readd = a.add(node(1), b"e").unwrap();
        a.merge_delta(&removal);
        b.merge_delta(&readd);
        assert!(a.contains(b"e") && b.contains(b"e"));
        assert_eq!(a, b);
    }

    #[test]
    fn removes_leave_no_tombstones() {
        let mut set = OrSet::new();
        for round in 0..100u8 {
            set.add(node(1), &[round]).unwrap();
            set.remove(&[round]);
        }
        assert!(set.is_empty());
        assert_eq!(set.context().cloud_len(), 0);
        assert_eq!(set.context().version_vector().get(&node(1)), 100);
        assert_eq!(set.encode().len(), 2 + 1 + 32 + 1 + (1 + 2) + 1);
    }

    #[test]
    fn encoding_round_trips_and_refuses_uncovered_dots() {
        let mut set = OrSet::new();
        set.add(node(2), b"a").unwrap();
        set.add(node(1), b"b").unwrap();
        let bytes = set.encode();
        assert_eq!(OrSet::decode(&bytes), Ok(set.clone()));
        let mut uncovered = bytes[..bytes.len() - 6].to_vec();
        uncovered.extend_from_slice(&[0, 0]);
        assert_eq!(OrSet::decode(&uncovered), Err(DecodeError::Invalid("element dot outside the causal context")));
        assert_eq!(set.add(node(1), &[0; MAX_ELEMENT_LEN + 1]), Err(CrdtError::ElementTooLong { len: MAX_ELEMENT_LEN + 1 }));
    }
}
