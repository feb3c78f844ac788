//! A shard: the owner of a contiguous slice of a category's keyspace.
//!
//! The keyspace is cut into [`SUBTREE_COUNT`] subtrees by the first [`SUBTREE_BITS`]
//! bits of the key position. A shard owns whole subtrees, so it inserts and hashes
//! without touching any other shard's memory, and the engine can pin it to a core.
//! Origins (32-byte node ids) are interned per shard, which keeps a stored leaf at
//! 80 bytes and gives each shard its slice of the category's version vector.

use std::collections::HashMap;

use super::entry::EntryRef;
use super::leaf::{Leaf, PreparedLeaf};
use super::node_id::NodeId;
use super::tree::Node;
use crate::reconcile::{SetSketch, ShortId};
use crate::time::VersionVector;

/// Position bits that select a subtree.
pub const SUBTREE_BITS: u32 = 4;
/// Number of subtrees a category is cut into; also the most shards a category can have.
pub const SUBTREE_COUNT: usize = 1 << SUBTREE_BITS;
/// The largest shard count.
pub const MAX_SHARDS: usize = SUBTREE_COUNT;

/// The subtree that a key position belongs to.
#[inline]
pub fn subtree_of(position: u64) -> usize {
    (position >> (64 - SUBTREE_BITS)) as usize
}

/// The subtrees `[start, end)` that shard `shard` of `shard_count` owns.
pub fn subtree_range(shard: usize, shard_count: usize) -> std::ops::Range<usize> {
    debug_assert!(shard < shard_count && shard_count <= MAX_SHARDS);
    (shard * SUBTREE_COUNT / shard_count)..((shard + 1) * SUBTREE_COUNT / shard_count)
}

/// The shard (of `shard_count`) that owns subtree `subtree`: the inverse of
/// [`subtree_range`].
#[inline]
pub fn shard_of_subtree(subtree: usize, shard_count: usize) -> usize {
    debug_assert!(subtree < SUBTREE_COUNT && (1..=MAX_SHARDS).contains(&shard_count));
    ((subtree + 1) * shard_count - 1) / SUBTREE_COUNT
}

/// The interned origins of one shard, with the highest counter seen from each. Origins
/// arrive from peers, so the index uses std's keyed SipHash, which resists collision
/// flooding; its random keys affect memory layout only, never a result.
#[derive(Default)]
struct OriginTable {
    ids: Vec<NodeId>,
    max_counters: Vec<u64>,
    index: HashMap<NodeId, u32>,
}

impl OriginTable {
    fn intern(&mut self, origin: NodeId, counter: u64) -> u32 {
        // Batches usually come from one origin: check the last one before hashing.
        if let Some(last) = self.ids.len().checked_sub(1) {
            if self.ids[last] == origin {
                self.max_counters[last] = self.max_counters[last].max(counter);
                return last as u32;
            }
        }
        let next = self.ids.len() as u32;
        let index = *self.index.entry(origin).or_insert(next);
        if index == next {
            self.ids.push(origin);
            self.max_counters.push(0);
        }
        let max = &mut self.max_counters[index as usize];
        *max = (*max).max(counter);
        index
    }
}

/// One shard of a category: a range of subtrees and their origins.
pub struct Shard {
    first_subtree: usize,
    subtrees: Vec<Node>,
    origins: OriginTable,
    /// The reconciliation sketch of this shard's leaves, once enabled.
    sketch: Option<SetSketch>,
}

impl Shard {
    /// An empty shard owning `subtrees`.
    pub fn new(subtrees: std::ops::Range<usize>) -> Shard {
        assert!(subtrees.end <= SUBTREE_COUNT && subtrees.start < subtrees.end);
        let subtree_nodes = subtrees.clone().map(|_| Node::empty()).collect();
        Shard { first_subtree: subtrees.start, subtrees: subtree_nodes, origins: OriginTable::default(), sketch: None }
    }

    /// The subtrees this shard owns.
    pub fn subtree_range(&self) -> std::ops::Range<usize> {
        self.first_subtree..self.first_subtree + self.subtrees.len()
    }

    /// Whether a key at `position` belongs here.
    pub fn owns(&self, position: u64) -> bool {
        self.subtree_range().contains(&subtree_of(position))
    }

    /// The root node of subtree `subtree` (a global index this shard owns).
    pub fn subtree(&self, subtree: usize) -> &Node {
        &self.subtrees[subtree - self.first_subtree]
    }

    /// Number of entries stored.
    pub fn len(&self) -> u64 {
        self.subtrees.iter().map(Node::count).sum()
    }

    /// Whether the shard holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The node id behind an interned origin.
    pub fn origin(&self, origin_index: u32) -> NodeId {
        self.origins.ids[origin_index as usize]
    }

    /// The stored version of `key`.
    pub fn get(&self, position: u64, key: &[u8]) -> Option<EntryRef<'_>> {
        let leaf = self.subtree_node(position).get(SUBTREE_BITS, position, key)?;
        Some(self.entry(leaf))
    }

    /// A borrowed entry for a leaf of this shard.
    pub fn entry<'a>(&'a self, leaf: &'a Leaf) -> EntryRef<'a> {
        leaf.entry(self.origin(leaf.origin_index))
    }

    /// Inserts one version, replacing the stored version of the same key. The caller
    /// calls [`Shard::rehash`] before reading hashes.
    pub fn upsert(&mut self, prepared: PreparedLeaf) -> bool {
        debug_assert!(self.owns(prepared.leaf.position));
        let mut leaf = prepared.leaf;
        leaf.origin_index = self.origins.intern(prepared.origin, leaf.counter());
        let position = leaf.position;
        let added = ShortId::of(position, &leaf.digest);
        let replaced = self.subtree_node_mut(position).upsert(SUBTREE_BITS, leaf);
        if let Some(sketch) = &mut self.sketch {
            if let Some(old) = &replaced {
                sketch.remove(ShortId::of(old.position, &old.digest));
            }
            sketch.insert(added);
        }
        replaced.is_some()
    }

    /// Removes the stored version of `key`; the caller rehashes.
    pub fn remove(&mut self, position: u64, key: &[u8]) -> bool {
        let removed = self.subtree_node_mut(position).remove(SUBTREE_BITS, position, key);
        if let (Some(sketch), Some(old)) = (&mut self.sketch, &removed) {
            sketch.remove(ShortId::of(old.position, &old.digest));
        }
        removed.is_some()
    }

    /// Starts maintaining a reconciliation sketch of `capacity` coded symbols (built
    /// once from the stored leaves, then kept up to date by every mutation).
    pub fn enable_sketch(&mut self, capacity: usize) {
        if self.sketch.as_ref().is_some_and(|s| s.capacity() == capacity) {
            return;
        }
        let mut sketch = SetSketch::new(capacity);
        for node in &self.subtrees {
            node.for_each_leaf(&mut |leaf| sketch.insert(ShortId::of(leaf.position, &leaf.digest)));
        }
        self.sketch = Some(sketch);
    }

    /// The reconciliation sketch, if enabled.
    pub fn sketch(&self) -> Option<&SetSketch> {
        self.sketch.as_ref()
    }

    /// The stored leaf named by a short id, if any.
    pub fn find_short_id(&self, id: ShortId) -> Option<EntryRef<'_>> {
        let position = (id.position24() as u64) << 40;
        if !self.owns(position) {
            return None;
        }
        let node = self.subtree_node(position).narrowest(SUBTREE_BITS, position, 24);
        let mut found = None;
        node.for_each_leaf(&mut |leaf| {
            if found.is_none() && id.names(leaf.position, &leaf.digest) {
                found = Some(leaf);
            }
        });
        found.map(|leaf| self.entry(leaf))
    }

    /// Inserts a batch (a later version of a key in the batch replaces an earlier one)
    /// and rehashes each dirty node once. An empty shard is bulk-built from the sorted
    /// batch instead of inserting leaf by leaf.
    pub fn apply_batch(&mut self, batch: Vec<PreparedLeaf>) {
        self.apply_batches(vec![batch]);
    }

    /// [`Shard::apply_batch`] for a batch that arrives in parts (one per producing
    /// thread), taken in order.
    pub fn apply_batches(&mut self, parts: Vec<Vec<PreparedLeaf>>) {
        let total: usize = parts.iter().map(Vec::len).sum();
        if self.is_empty() && total > 1 {
            self.bulk_build(parts, total);
        } else {
            self.merge_batch(parts);
        }
        self.rehash();
    }

    /// Recomputes every dirty hash.
    pub fn rehash(&mut self) {
        self.subtrees.iter_mut().for_each(Node::rehash);
    }

    /// The shard's slice of the category's version vector.
    pub fn version_vector(&self) -> VersionVector {
        let mut vector = VersionVector::new();
        for (id, counter) in self.origins.ids.iter().zip(&self.origins.max_counters) {
            vector.observe(*id, *counter);
        }
        vector
    }

    fn subtree_node(&self, position: u64) -> &Node {
        &self.subtrees[subtree_of(position) - self.first_subtree]
    }

    fn subtree_node_mut(&mut self, position: u64) -> &mut Node {
        &mut self.subtrees[subtree_of(position) - self.first_subtree]
    }

    /// Interns the origins of a batch and sorts it in trie order, keeping only the last
    /// version of each key. Returns the leaves and their positions.
    fn sorted_leaves(&mut self, parts: Vec<Vec<PreparedLeaf>>, total: usize) -> (Vec<Leaf>, Vec<u64>) {
        let mut leaves: Vec<Leaf> = Vec::new();
        for part in parts {
            debug_assert!(part.iter().all(|p| self.owns(p.leaf.position)));
            let origins = &mut self.origins;
            let intern = |prepared: PreparedLeaf| {
                let mut leaf = prepared.leaf;
                leaf.origin_index = origins.intern(prepared.origin, leaf.counter());
                leaf
            };
            if leaves.is_empty() {
                // Collecting a mapped `vec::IntoIter` reuses its allocation in place.
                leaves = part.into_iter().map(intern).collect();
                leaves.reserve(total - leaves.len());
            } else {
                leaves.extend(part.into_iter().map(intern));
            }
        }
        // Stable sort, then keep the last of each run of equal keys: the batch order
        // decides between two versions of one key, as sequential upserts would.
        leaves.sort_by(|a, b| a.trie_cmp(b.position, b.key()));
        leaves.dedup_by(|later, earlier| {
            let same = later.position == earlier.position && later.key() == earlier.key();
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let positions = leaves.iter().map(|leaf| leaf.position).collect();
        (leaves, positions)
    }

    /// Calls `each(subtree node, its positions, leaves)` for every owned subtree with
    /// the slice of the sorted batch that falls into it.
    fn for_each_subtree_slice(&mut self, positions: &[u64], leaves: Vec<Leaf>, mut each: impl FnMut(&mut Node, &[u64], &mut std::vec::IntoIter<Leaf>)) {
        let mut source = leaves.into_iter();
        let mut start = 0;
        for (offset, node) in self.subtrees.iter_mut().enumerate() {
            let subtree = self.first_subtree + offset;
            let end = start + positions[start..].partition_point(|&p| subtree_of(p) == subtree);
            each(node, &positions[start..end], &mut source);
            start = end;
        }
        debug_assert_eq!(start, positions.len());
    }

    fn bulk_build(&mut self, parts: Vec<Vec<PreparedLeaf>>, total: usize) {
        let (leaves, positions) = self.sorted_leaves(parts, total);
        if let Some(sketch) = &mut self.sketch {
            leaves.iter().for_each(|leaf| sketch.insert(ShortId::of(leaf.position, &leaf.digest)));
        }
        self.for_each_subtree_slice(&positions, leaves, |node, slice, source| {
            *node = Node::build(SUBTREE_BITS, slice, source);
        });
    }

    fn merge_batch(&mut self, parts: Vec<Vec<PreparedLeaf>>) {
        let total = parts.iter().map(Vec::len).sum();
        let (leaves, positions) = self.sorted_leaves(parts, total);
        let mut sketch = self.sketch.take();
        if let Some(sketch) = &mut sketch {
            leaves.iter().for_each(|leaf| sketch.insert(ShortId::of(leaf.position, &leaf.digest)));
        }
        let mut on_replaced = |old: &Leaf| {
            if let Some(sketch) = &mut sketch {
                sketch.remove(ShortId::of(old.position, &old.digest));
            }
        };
        self.for_each_subtree_slice(&positions, leaves, |node, slice, source| {
            node.merge_sorted(SUBTREE_BITS, slice, source, &mut on_replaced);
        });
        self.sketch = sketch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subtree_belongs_to_exactly_the_shard_whose_range_holds_it() {
        for shard_count in 1..=MAX_SHARDS {
            let mut covered = 0;
            for shard in 0..shard_count {
                let range = subtree_range(shard, shard_count);
                assert!(!range.is_empty(), "{shard_count} shards: shard {shard} owns nothing");
                for subtree in range.clone() {
                    assert_eq!(shard_of_subtree(subtree, shard_count), shard);
                }
                covered += range.len();
            }
            assert_eq!(covered, SUBTREE_COUNT);
        }
    }

    #[test]
    fn subtree_of_reads_the_top_bits() {
        assert_eq!(subtree_of(0), 0);
        assert_eq!(subtree_of(u64::MAX), SUBTREE_COUNT - 1);
        assert_eq!(subtree_of(1 << 60), 1);
    }
}
