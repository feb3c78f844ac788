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

use std::collections::BTreeMap;
use std::sync::Arc;

use smallvec::SmallVec;

use super::codec::{ActorTable, CrdtKind, MAX_ENTRIES};
use super::dot::{CausalContext, Dot};
use super::{Crdt, CrdtError, MAX_ELEMENT_LEN};
use crate::state::NodeId;
use crate::time::codec::{put_byte_string, put_varint, DecodeError, Reader};

/// The dots supporting one element, sorted. Almost always one (each add supersedes
/// the dots it saw), so it lives inline without an allocation.
type Dots = SmallVec<[Dot; 1]>;

/// An add-wins set of byte strings.
///
/// Besides element → dots it keeps the inverse index origin → counter → element, so
/// that joining a delta costs O(size of the delta · log n) instead of a pass over
/// every element: the dots a delta's context covers are found by range queries on the
/// index. Keying the index by origin first keeps its comparisons on `u64` counters
/// rather than on 40-byte dots. Elements are shared between both maps (and between
/// replicas' copies) via `Arc`.
#[derive(Clone, Debug, Default)]
pub struct OrSet {
    entries: BTreeMap<Arc<[u8]>, Dots>,
    index: BTreeMap<NodeId, BTreeMap<u64, Arc<[u8]>>>,
    context: CausalContext,
}

impl PartialEq for OrSet {
    /// The index is derived from the entries, so it takes no part in equality.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.context == other.context
    }
}

impl Eq for OrSet {}

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
        self.entries.keys().map(|element| &**element)
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
        let shared: Arc<[u8]> = match self.entries.get_key_value(element) {
            Some((shared, old_dots)) => {
                old_dots.iter().for_each(|old| delta.context.insert(*old));
                shared.clone()
            }
            None => Arc::from(element),
        };
        delta.context.insert(dot);
        delta.insert_dot(dot, shared);
        self.merge(&delta);
        debug_assert!(self.contains(element) && self.holds(&dot));
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

    /// Whether a live element carries `dot`.
    fn holds(&self, dot: &Dot) -> bool {
        self.index.get(&dot.origin).is_some_and(|counters| counters.contains_key(&dot.counter))
    }

    /// Every live dot, in order.
    fn dots(&self) -> impl Iterator<Item = (Dot, &Arc<[u8]>)> {
        self.index.iter().flat_map(|(origin, counters)| {
            counters.iter().map(move |(counter, element)| (Dot { origin: *origin, counter: *counter }, element))
        })
    }

    fn insert_dot(&mut self, dot: Dot, element: Arc<[u8]>) {
        let dots = self.entries.entry(element.clone()).or_default();
        if let Err(position) = dots.binary_search(&dot) {
            dots.insert(position, dot);
        }
        let previous = self.index.entry(dot.origin).or_default().insert(dot.counter, element);
        debug_assert!(previous.is_none(), "a dot names one write");
    }

    fn remove_dot(&mut self, dot: &Dot) {
        let Some(counters) = self.index.get_mut(&dot.origin) else { return };
        let Some(element) = counters.remove(&dot.counter) else { return };
        if counters.is_empty() {
            self.index.remove(&dot.origin);
        }
        if let Some(dots) = self.entries.get_mut(&element) {
            if let Ok(position) = dots.binary_search(dot) {
                dots.remove(position);
            }
            if dots.is_empty() {
                self.entries.remove(&element);
            }
        }
    }
}

impl Crdt for OrSet {
    const KIND: CrdtKind = CrdtKind::OrSet;

    /// A dot survives if both sides hold it, or if one side holds it and the other has
    /// not seen it (Almeida et al. 2018, join of causal dot maps). Our dots that
    /// `other` has seen are found through its context; its dots we have not seen are
    /// added.
    fn merge(&mut self, other: &Self) {
        let mut dropped: Vec<Dot> = Vec::new();
        for (origin, max) in other.context.version_vector().iter() {
            let Some(counters) = self.index.get(origin) else { continue };
            let seen = counters.range(1..=*max).map(|(counter, _)| Dot { origin: *origin, counter: *counter });
            dropped.extend(seen.filter(|dot| !other.holds(dot)));
        }
        dropped.extend(other.context.cloud().filter(|dot| self.holds(dot) && !other.holds(dot)));
        for dot in &dropped {
            self.remove_dot(dot);
        }
        for (dot, element) in other.dots() {
            if !self.context.contains(&dot) && !self.holds(&dot) {
                self.insert_dot(dot, element.clone());
            }
        }
        self.context.merge(&other.context);
        debug_assert_eq!(self.dots().count(), self.entries.values().map(SmallVec::len).sum::<usize>());
    }

    /// `actors count:varint (element:bytes dots)* context`, where
    /// `dots = count:varint dot*`.
    fn encode_body(&self, out: &mut Vec<u8>) {
        let dot_origins = self.index.keys();
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
        let mut set = OrSet::new();
        let mut previous: Option<&[u8]> = None;
        for _ in 0..count {
            let element = reader.byte_string("element bytes", MAX_ELEMENT_LEN)?;
            if previous.is_some_and(|last| last >= element) {
                return Err(DecodeError::NotSorted("set elements"));
            }
            previous = Some(element);
            let dots = table.read_dots(reader, "element dots")?;
            if dots.is_empty() {
                return Err(DecodeError::Invalid("element without dots"));
            }
            let shared: Arc<[u8]> = Arc::from(element);
            for dot in dots {
                if set.holds(&dot) {
                    return Err(DecodeError::Invalid("one dot on two elements"));
                }
                set.insert_dot(dot, shared.clone());
            }
        }
        set.context = table.read_context(reader)?;
        if !set.dots().all(|(dot, _)| set.context.contains(&dot)) {
            return Err(DecodeError::Invalid("element dot outside the causal context"));
        }
        Ok(set)
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
        assert_eq!(
            set.add(node(1), &[0; MAX_ELEMENT_LEN + 1]),
            Err(CrdtError::ElementTooLong { len: MAX_ELEMENT_LEN + 1 })
        );
    }
}
