//! Dots and causal contexts (Almeida, Shoker, Baquero: "Delta State Replicated Data
//! Types", JPDC 2018, §4; Bieniusa et al.: "An Optimized Conflict-free Replicated Set",
//! 2012).
//!
//! A *dot* `(origin, counter)` names one write: the `counter`-th write made at
//! `origin`. A *causal context* is the set of dots a replica has seen, kept compact as
//! a version vector (every dot up to `vv[origin]`) plus a *dot cloud* of the dots seen
//! out of order. A removal needs no tombstone: a dot that is in the context but not in
//! the store was removed. The cloud is only as large as the gaps in what has been
//! delivered, and empties as the gaps fill.

use std::collections::BTreeSet;

use crate::state::NodeId;
use crate::time::VersionVector;

/// One write: the `counter`-th write made at `origin` (counters start at 1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Dot {
    /// The node that made the write.
    pub origin: NodeId,
    /// Its sequence number at that node.
    pub counter: u64,
}

/// A set of dots: a version vector plus the dots beyond it.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CausalContext {
    compact: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `dot` has been seen.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.compact.get(&dot.origin) >= dot.counter || self.cloud.contains(dot)
    }

    /// The dot of the next write at `origin`. A replica's own dots are contiguous, so
    /// its next dot follows its version vector entry.
    pub fn next_dot(&self, origin: NodeId) -> Option<Dot> {
        let counter = self.compact.get(&origin).checked_add(1)?;
        Some(Dot { origin, counter })
    }

    /// Adds one dot. The common case, the next dot of its origin, only moves the
    /// version vector.
    pub fn insert(&mut self, dot: Dot) {
        let seen = self.compact.get(&dot.origin);
        if dot.counter <= seen || self.cloud.contains(&dot) {
            return;
        }
        if dot.counter == seen + 1 {
            self.compact.observe(dot.origin, dot.counter);
            if !self.cloud.is_empty() {
                self.compact_origin(dot.origin);
            }
        } else {
            self.cloud.insert(dot);
        }
    }

    /// The union of both contexts. Costs O(size of `other` · log), not O(size of
    /// `self`): only origins that `other` names and that have dots in the cloud are
    /// compacted again.
    pub fn merge(&mut self, other: &CausalContext) {
        self.compact.merge(&other.compact);
        for dot in &other.cloud {
            self.insert(*dot);
        }
        if !self.cloud.is_empty() {
            for (origin, _) in other.compact.iter() {
                self.compact_origin(*origin);
            }
        }
    }

    /// The contiguous part.
    pub fn version_vector(&self) -> &VersionVector {
        &self.compact
    }

    /// The dots seen out of order, in increasing order.
    pub fn cloud(&self) -> impl Iterator<Item = &Dot> {
        self.cloud.iter()
    }

    /// The number of dots in the cloud.
    pub fn cloud_len(&self) -> usize {
        self.cloud.len()
    }

    /// Whether no dot has been seen.
    pub fn is_empty(&self) -> bool {
        self.compact.is_empty() && self.cloud.is_empty()
    }

    /// Rebuilds a context from decoded parts, normalising it.
    pub(crate) fn from_parts(compact: VersionVector, cloud: BTreeSet<Dot>) -> Self {
        let mut context = CausalContext { compact, cloud };
        context.compact();
        context
    }

    /// Moves cloud dots that extend the version vector into it and drops cloud dots it
    /// already covers, so that one set of dots has one representation (Almeida et al.
    /// §7.2 "compaction"); equality of contexts is then equality of dot sets.
    fn compact(&mut self) {
        let origins: BTreeSet<NodeId> = self.cloud.iter().map(|dot| dot.origin).collect();
        for origin in origins {
            self.compact_origin(origin);
        }
    }

    /// [`CausalContext::compact`] for the dots of one origin.
    fn compact_origin(&mut self, origin: NodeId) {
        let mut seen = self.compact.get(&origin);
        let covered: Vec<Dot> =
            self.cloud.range(Dot { origin, counter: 0 }..=Dot { origin, counter: seen }).copied().collect();
        for dot in covered {
            self.cloud.remove(&dot);
        }
        while seen < u64::MAX && self.cloud.remove(&Dot { origin, counter: seen + 1 }) {
            seen += 1;
        }
        self.compact.observe(origin, seen);
        // What stays in the cloud for this origin lies beyond a gap.
        let next = Dot { origin, counter: seen.saturating_add(1) };
        debug_assert!(seen == u64::MAX || self.cloud.range(Dot { origin, counter: 0 }..=next).next().is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(byte: u8, counter: u64) -> Dot {
        Dot { origin: NodeId([byte; 32]), counter }
    }

    #[test]
    fn out_of_order_dots_wait_in_the_cloud_until_the_gap_closes() {
        let mut context = CausalContext::new();
        assert!(context.is_empty());
        context.insert(dot(1, 3));
        context.insert(dot(1, 1));
        assert!(context.contains(&dot(1, 1)) && context.contains(&dot(1, 3)) && !context.contains(&dot(1, 2)));
        assert_eq!(context.cloud_len(), 1);
        context.insert(dot(1, 2));
        assert_eq!(context.cloud_len(), 0);
        assert_eq!(context.version_vector().get(&NodeId([1; 32])), 3);
        assert_eq!(context.next_dot(NodeId([1; 32])), Some(dot(1, 4)));
    }

    #[test]
    fn merge_is_the_union_in_canonical_form() {
        let mut a = CausalContext::new();
        let mut b = CausalContext::new();
        a.insert(dot(1, 1));
        a.insert(dot(2, 5));
        b.insert(dot(1, 2));
        b.insert(dot(2, 1));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.cloud().copied().collect::<Vec<_>>(), [dot(2, 5)]);
        let rebuilt = CausalContext::from_parts(ab.version_vector().clone(), [dot(2, 5), dot(1, 1)].into());
        assert_eq!(rebuilt, ab);
    }
}
