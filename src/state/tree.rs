//! The history-independent binary Merkle trie of one subtree.
//!
//! A node at depth `d` covers the key positions that share their first `d` bits. Its
//! shape depends only on how many leaves it holds ([`is_bucket`]):
//!
//! - at most [`BUCKET_CAPACITY`] leaves (or depth [`MAX_DEPTH`]): a *bucket*, whose
//!   hash covers its leaf digests in trie order;
//! - more: an *inner* node with two children split on bit `d`, whose hash covers the
//!   two child hashes in one BLAKE3 block;
//! - none: an empty node, hashed as 32 zero bytes.
//!
//! Because the rule is a function of the set of positions, inserting, updating and
//! removing in any order gives the same shape and the same hashes (history
//! independence). Buckets keep the trie shallow (about log2(n / 10) levels) and make a
//! leaf update cost one bucket hash plus one one-block hash per level: O(log n).
//! Mutations only mark nodes dirty; [`Node::rehash`] then recomputes each dirty node
//! once, so a batch of updates that share ancestors shares their rehash.

use std::cmp::Ordering;

use super::digest::{self, prefix_bit, Digest};
use super::leaf::Leaf;
use super::path::TreePath;

/// The most leaves a node holds before it splits. Measured with `cargo bench --bench
/// state`: 16 keeps a single-leaf update near 20 BLAKE3 blocks and membership proofs
/// under 1 KiB (docs/adr/002-merkle-trie.md).
pub const BUCKET_CAPACITY: usize = 16;

/// The deepest level: a node here is a bucket whatever its size. Positions are routed by
/// their first 64 bits; more than 16 keys sharing 64 position bits takes about 2^64
/// BLAKE3 evaluations to find.
pub const MAX_DEPTH: u32 = 64;

/// Whether a node at `depth` holding `count` leaves is a bucket.
#[inline]
pub fn is_bucket(depth: u32, count: usize) -> bool {
    count <= BUCKET_CAPACITY || depth >= MAX_DEPTH
}

/// A node of the trie: its cached hash, its leaf count and its contents.
pub struct Node {
    hash: Digest,
    count: u64,
    dirty: bool,
    kind: Kind,
}

enum Kind {
    Bucket(Vec<Leaf>),
    Inner(Box<[Node; 2]>),
}

impl Default for Node {
    fn default() -> Self {
        Node::empty()
    }
}

impl Node {
    /// An empty node.
    pub fn empty() -> Node {
        Node { hash: Digest::EMPTY, count: 0, dirty: false, kind: Kind::Bucket(Vec::new()) }
    }

    /// The node's hash; valid once [`Node::rehash`] has run after the last mutation.
    pub fn hash(&self) -> Digest {
        debug_assert!(!self.dirty, "hash read before rehash");
        self.hash
    }

    /// How many leaves the subtree holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The leaves, if this node is a bucket.
    pub fn bucket(&self) -> Option<&[Leaf]> {
        match &self.kind {
            Kind::Bucket(leaves) => Some(leaves),
            Kind::Inner(_) => None,
        }
    }

    /// The two children, if this node is an inner node.
    pub fn children(&self) -> Option<&[Node; 2]> {
        match &self.kind {
            Kind::Inner(children) => Some(children),
            Kind::Bucket(_) => None,
        }
    }

    /// Builds the subtree at `depth` from leaves sorted in trie order with no repeated
    /// key; `positions` holds their positions. Leaves are taken from `leaves` in order.
    pub fn build(depth: u32, positions: &[u64], leaves: &mut impl Iterator<Item = Leaf>) -> Node {
        let count = positions.len();
        let kind = if is_bucket(depth, count) {
            let bucket: Vec<Leaf> = leaves.by_ref().take(count).collect();
            debug_assert_eq!(bucket.len(), count);
            Kind::Bucket(bucket)
        } else {
            let split = positions.partition_point(|&p| !prefix_bit(p, depth));
            let left = Node::build(depth + 1, &positions[..split], leaves);
            let right = Node::build(depth + 1, &positions[split..], leaves);
            Kind::Inner(Box::new([left, right]))
        };
        Node { hash: Digest::EMPTY, count: count as u64, dirty: true, kind }
    }

    /// The leaf for `key` (at `position`), searching from this node at `depth`.
    pub fn get(&self, mut depth: u32, position: u64, key: &[u8]) -> Option<&Leaf> {
        let mut node = self;
        loop {
            match &node.kind {
                Kind::Bucket(leaves) => {
                    let found = leaves.binary_search_by(|leaf| leaf.trie_cmp(position, key));
                    return found.ok().map(|index| &leaves[index]);
                }
                Kind::Inner(children) => {
                    node = &children[prefix_bit(position, depth) as usize];
                    depth += 1;
                }
            }
        }
    }

    /// Inserts `leaf`, replacing the stored version of the same key, which is returned.
    pub fn upsert(&mut self, depth: u32, leaf: Leaf) -> Option<Leaf> {
        self.dirty = true;
        match &mut self.kind {
            Kind::Bucket(leaves) => {
                match leaves.binary_search_by(|stored| stored.trie_cmp(leaf.position, leaf.key())) {
                    Ok(index) => Some(std::mem::replace(&mut leaves[index], leaf)),
                    Err(index) => {
                        leaves.reserve_exact(1);
                        leaves.insert(index, leaf);
                        self.count += 1;
                        if !is_bucket(depth, leaves.len()) {
                            self.split(depth);
                        }
                        None
                    }
                }
            }
            Kind::Inner(children) => {
                let side = prefix_bit(leaf.position, depth) as usize;
                let replaced = children[side].upsert(depth + 1, leaf);
                if replaced.is_none() {
                    self.count += 1;
                }
                replaced
            }
        }
    }

    /// Inserts leaves sorted in trie order (`positions` holds their positions; later
    /// leaves of a repeated key replace earlier ones), in one descent that splits the
    /// batch at every level and hashes each touched node once on the way back up, while
    /// its children are still in cache. Nodes the batch does not reach must be clean.
    /// Returns how many leaves were new keys.
    pub fn merge_sorted(
        &mut self,
        depth: u32,
        positions: &[u64],
        leaves: &mut impl Iterator<Item = Leaf>,
        on_replaced: &mut impl FnMut(&Leaf),
    ) -> u64 {
        if positions.is_empty() {
            return 0;
        }
        let added = match &mut self.kind {
            Kind::Bucket(bucket) => {
                let before = bucket.len();
                for leaf in leaves.by_ref().take(positions.len()) {
                    match bucket.binary_search_by(|stored| stored.trie_cmp(leaf.position, leaf.key())) {
                        Ok(index) => on_replaced(&std::mem::replace(&mut bucket[index], leaf)),
                        Err(index) => bucket.insert(index, leaf),
                    }
                }
                if bucket.capacity() > bucket.len() {
                    bucket.shrink_to_fit();
                }
                let added = (bucket.len() - before) as u64;
                self.count += added;
                if !is_bucket(depth, bucket.len()) {
                    self.split(depth);
                }
                self.dirty = true;
                self.rehash();
                return added;
            }
            Kind::Inner(children) => {
                let split = positions.partition_point(|&p| !prefix_bit(p, depth));
                let left = children[0].merge_sorted(depth + 1, &positions[..split], leaves, on_replaced);
                let right = children[1].merge_sorted(depth + 1, &positions[split..], leaves, on_replaced);
                self.hash = digest::inner_hash(&children[0].hash, &children[1].hash);
                left + right
            }
        };
        self.count += added;
        self.dirty = false;
        added
    }

    /// Removes the leaf of `key` (at `position`) and returns it.
    pub fn remove(&mut self, depth: u32, position: u64, key: &[u8]) -> Option<Leaf> {
        let removed = match &mut self.kind {
            Kind::Bucket(leaves) => {
                let index = leaves.binary_search_by(|leaf| leaf.trie_cmp(position, key)).ok()?;
                let removed = leaves.remove(index);
                leaves.shrink_to_fit();
                removed
            }
            Kind::Inner(children) => {
                let side = prefix_bit(position, depth) as usize;
                children[side].remove(depth + 1, position, key)?
            }
        };
        self.dirty = true;
        self.count -= 1;
        if matches!(self.kind, Kind::Inner(_)) && is_bucket(depth, self.count as usize) {
            self.collapse();
        }
        Some(removed)
    }

    /// Recomputes the hash of every dirty node, each once, children first.
    pub fn rehash(&mut self) {
        if !self.dirty {
            return;
        }
        self.hash = match &mut self.kind {
            Kind::Bucket(leaves) if leaves.is_empty() => Digest::EMPTY,
            Kind::Bucket(leaves) => digest::bucket_hash(leaves.iter().map(|leaf| &leaf.digest)),
            Kind::Inner(children) => {
                children[0].rehash();
                children[1].rehash();
                digest::inner_hash(&children[0].hash, &children[1].hash)
            }
        };
        self.dirty = false;
    }

    /// The node at `path`, walking down from this node, which sits at `depth` on the
    /// same path. `None` when the path runs below a bucket.
    pub fn descend(&self, mut depth: u32, path: &TreePath) -> Option<&Node> {
        let mut node = self;
        while depth < path.len() {
            node = &node.children()?[path.bit(depth) as usize];
            depth += 1;
        }
        Some(node)
    }

    /// The node where a search for keys whose position starts with the `known_bits`
    /// leading bits of `position` ends: a bucket, or an inner node at depth
    /// `known_bits` when the trie goes deeper than the known bits.
    pub fn narrowest(&self, mut depth: u32, position: u64, known_bits: u32) -> &Node {
        let mut node = self;
        while depth < known_bits {
            let Some(children) = node.children() else { break };
            node = &children[prefix_bit(position, depth) as usize];
            depth += 1;
        }
        node
    }

    /// Calls `visit` for every leaf in trie order.
    pub fn for_each_leaf<'a>(&'a self, visit: &mut impl FnMut(&'a Leaf)) {
        match &self.kind {
            Kind::Bucket(leaves) => leaves.iter().for_each(visit),
            Kind::Inner(children) => {
                children[0].for_each_leaf(visit);
                children[1].for_each_leaf(visit);
            }
        }
    }

    /// The sibling hashes from this node down to the bucket holding `key`, top-down,
    /// and that bucket. `None` when the key is absent.
    pub fn proof_path(&self, mut depth: u32, position: u64, key: &[u8], siblings: &mut Vec<Digest>) -> Option<(&[Leaf], usize)> {
        let mut node = self;
        loop {
            match &node.kind {
                Kind::Bucket(leaves) => {
                    let index = leaves.binary_search_by(|leaf| leaf.trie_cmp(position, key)).ok()?;
                    return Some((leaves, index));
                }
                Kind::Inner(children) => {
                    let side = prefix_bit(position, depth) as usize;
                    siblings.push(children[1 - side].hash());
                    node = &children[side];
                    depth += 1;
                }
            }
        }
    }

    /// Recomputes the whole subtree from its leaves and checks every cached hash, count,
    /// shape rule and leaf placement. Returns the first inconsistency found.
    pub fn verify(&self, depth: u32, path: &TreePath) -> Result<Digest, &'static str> {
        debug_assert_eq!(depth, path.len());
        let (hash, count) = match &self.kind {
            Kind::Bucket(leaves) => {
                if !is_bucket(depth, leaves.len()) {
                    return Err("bucket over capacity");
                }
                check_bucket_order(leaves, path)?;
                let hash = if leaves.is_empty() { Digest::EMPTY } else { digest::bucket_hash(leaves.iter().map(|l| &l.digest)) };
                (hash, leaves.len() as u64)
            }
            Kind::Inner(children) => {
                if is_bucket(depth, self.count as usize) {
                    return Err("inner node that should be a bucket");
                }
                let left = children[0].verify(depth + 1, &path.child(false))?;
                let right = children[1].verify(depth + 1, &path.child(true))?;
                (digest::inner_hash(&left, &right), children[0].count + children[1].count)
            }
        };
        if count != self.count {
            return Err("leaf count mismatch");
        }
        if self.dirty || hash != self.hash {
            return Err("cached hash mismatch");
        }
        Ok(hash)
    }

    fn split(&mut self, depth: u32) {
        let Kind::Bucket(leaves) = std::mem::replace(&mut self.kind, Kind::Bucket(Vec::new())) else {
            unreachable!("split is only called on buckets");
        };
        let positions: Vec<u64> = leaves.iter().map(|leaf| leaf.position).collect();
        *self = Node::build(depth, &positions, &mut leaves.into_iter());
    }

    fn collapse(&mut self) {
        let mut leaves = Vec::with_capacity(self.count as usize);
        let old = std::mem::replace(&mut self.kind, Kind::Bucket(Vec::new()));
        drain_leaves(old, &mut leaves);
        self.kind = Kind::Bucket(leaves);
    }
}

fn drain_leaves(kind: Kind, out: &mut Vec<Leaf>) {
    match kind {
        Kind::Bucket(leaves) => out.extend(leaves),
        Kind::Inner(children) => {
            let [left, right] = *children;
            drain_leaves(left.kind, out);
            drain_leaves(right.kind, out);
        }
    }
}

fn check_bucket_order(leaves: &[Leaf], path: &TreePath) -> Result<(), &'static str> {
    for pair in leaves.windows(2) {
        if pair[0].trie_cmp(pair[1].position, pair[1].key()) != Ordering::Less {
            return Err("bucket out of trie order");
        }
    }
    if leaves.iter().any(|leaf| !path.contains(leaf.position)) {
        return Err("leaf outside its node's path");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{NodeId, PreparedLeaf, Version};

    fn leaf(i: u32) -> Leaf {
        let version = Version { hlc: 1, origin: NodeId::default(), counter: 1, tombstone: false };
        let mut leaf = PreparedLeaf::new(&[0; 8], &i.to_le_bytes(), b"v", version).unwrap().leaf;
        leaf.origin_index = 0;
        leaf
    }

    #[test]
    fn a_bucket_splits_past_capacity_and_collapses_back() {
        let mut root = Node::empty();
        for i in 0..=BUCKET_CAPACITY as u32 {
            assert!(root.upsert(0, leaf(i)).is_none());
        }
        root.rehash();
        assert!(root.children().is_some(), "17 leaves make an inner node");
        assert_eq!(root.count(), BUCKET_CAPACITY as u64 + 1);
        let removed = leaf(0);
        assert!(root.remove(0, removed.position, removed.key()).is_some());
        root.rehash();
        assert_eq!(root.bucket().map(<[Leaf]>::len), Some(BUCKET_CAPACITY));
        root.verify(0, &TreePath::ROOT).unwrap();
    }

    #[test]
    fn upsert_of_a_stored_key_returns_the_old_leaf_and_keeps_the_count() {
        let mut root = Node::empty();
        root.upsert(0, leaf(1));
        assert!(root.upsert(0, leaf(1)).is_some());
        assert_eq!(root.count(), 1);
        let probe = leaf(1);
        assert!(root.get(0, probe.position, probe.key()).is_some());
        assert!(root.get(0, probe.position, b"other").is_none());
    }

    #[test]
    fn verify_reports_a_stale_hash() {
        let mut root = Node::empty();
        root.upsert(0, leaf(1));
        root.rehash();
        root.hash = Digest([9; 32]);
        assert_eq!(root.verify(0, &TreePath::ROOT), Err("cached hash mismatch"));
    }
}
