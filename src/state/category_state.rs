//! The state of one category: its shards, combined into one root.
//!
//! Above depth [`SUBTREE_BITS`] the trie is not stored: its few nodes are combined from
//! the subtree roots by the same canonical rule the subtrees follow (a node holding at
//! most [`BUCKET_CAPACITY`] leaves is a bucket, otherwise an inner node), so the root is
//! the same whether one shard or sixteen hold the subtrees.

use super::category::{validate_name, CategoryId, CategorySpec};
use super::digest::{self, Digest, KeyPosition};
use super::entry::Entry;
use super::entry::{EntryRef, Version};
use super::error::StateError;
use super::leaf::PreparedLeaf;
use super::parallel::{Executor, Job};
use super::path::TreePath;
use super::proof::MembershipProof;
use super::shard::{shard_of_subtree, subtree_of, subtree_range, Shard, MAX_SHARDS, SUBTREE_BITS, SUBTREE_COUNT};
use super::tree::{is_bucket, Node, BUCKET_CAPACITY};
use crate::reconcile::{CodedSymbol, ShortId, ESTIMATOR_COUNTERS};
use crate::time::VersionVector;

/// What a node of the trie is, as seen from outside.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NodeShape {
    /// No leaf below.
    Empty,
    /// A bucket: its leaf digests in trie order.
    Bucket(Vec<Digest>),
    /// An inner node: the hashes of its two children.
    Inner {
        /// Hash of the child on bit 0.
        left: Digest,
        /// Hash of the child on bit 1.
        right: Digest,
    },
}

/// One node of a category's trie, addressed by path, for subtree comparison.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeView {
    /// Where the node is.
    pub path: TreePath,
    /// Its hash.
    pub hash: Digest,
    /// Leaves below it.
    pub count: u64,
    /// Its contents.
    pub shape: NodeShape,
}

/// The Merkle state of one category, split into shards.
pub struct CategoryState {
    name: String,
    id: CategoryId,
    spec: CategorySpec,
    shards: Vec<Shard>,
    root: Digest,
}

impl CategoryState {
    /// An empty category named `name` whose keyspace is split over `shard_count` shards.
    pub fn new(name: &str, spec: CategorySpec, shard_count: usize) -> Result<Self, StateError> {
        validate_name(name)?;
        if shard_count == 0 || shard_count > MAX_SHARDS {
            return Err(StateError::InvalidShardCount(shard_count));
        }
        let shards = (0..shard_count).map(|s| Shard::new(subtree_range(s, shard_count))).collect();
        Ok(CategoryState { name: name.to_owned(), id: CategoryId::of(name), spec, shards, root: Digest::EMPTY })
    }

    /// The category's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The category's identifier (hashed into every leaf digest).
    pub fn id(&self) -> CategoryId {
        self.id
    }

    /// The category's configuration.
    pub fn spec(&self) -> &CategorySpec {
        &self.spec
    }

    /// The Merkle root: equal for equal sets of entry versions, whatever the shard count.
    pub fn root(&self) -> Digest {
        self.root
    }

    /// Number of stored entries, tombstones included.
    pub fn len(&self) -> u64 {
        self.shards.iter().map(Shard::len).sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shards, for a driver that runs each on its own core. Call
    /// [`CategoryState::refresh_root`] after mutating them.
    pub fn shards_mut(&mut self) -> &mut [Shard] {
        &mut self.shards
    }

    /// The shards.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard that owns a key position.
    pub fn shard_index(&self, position: u64) -> usize {
        shard_of_subtree(subtree_of(position), self.shards.len())
    }

    /// Hashes one version of an entry of this category, ready for insertion.
    pub fn prepare(&self, key: &[u8], value: &[u8], version: Version) -> Result<PreparedLeaf, StateError> {
        PreparedLeaf::new(&self.id.0, key, value, version)
    }

    /// The stored version of `key`, tombstones included.
    pub fn get(&self, key: &[u8]) -> Option<EntryRef<'_>> {
        let position = KeyPosition::of(key).prefix();
        self.shards[self.shard_index(position)].get(position, key)
    }

    /// Stores one version, replacing any stored version of its key, and updates the root.
    pub fn upsert(&mut self, prepared: PreparedLeaf) {
        let shard = self.shard_index(prepared.position());
        self.shards[shard].upsert(prepared);
        self.shards[shard].rehash();
        self.refresh_root();
    }

    /// Removes `key` entirely (not a tombstone) and updates the root. Returns whether it
    /// was present.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let position = KeyPosition::of(key).prefix();
        let shard = self.shard_index(position);
        let removed = self.shards[shard].remove(position, key);
        self.shards[shard].rehash();
        self.refresh_root();
        removed
    }

    /// Applies a batch on the calling thread: routes each leaf to its shard, inserts,
    /// rehashes each dirty node once, updates the root.
    pub fn apply_batch(&mut self, batch: Vec<PreparedLeaf>) {
        for (shard, part) in self.route(batch).into_iter().enumerate() {
            if !part.is_empty() {
                self.shards[shard].apply_batch(part);
            }
        }
        self.refresh_root();
    }

    /// [`CategoryState::apply_batch`] with each shard's part inserted and rehashed as its
    /// own job on `executor` (the engine's shard threads).
    pub fn apply_batch_on(&mut self, batch: Vec<PreparedLeaf>, executor: &dyn Executor) {
        let parts = self.route(batch);
        let jobs: Vec<Job<'_>> = self
            .shards
            .iter_mut()
            .zip(parts)
            .filter(|(_, part)| !part.is_empty())
            .map(|(shard, part)| Box::new(move || shard.apply_batch(part)) as Job<'_>)
            .collect();
        executor.run(jobs);
        self.refresh_root();
    }

    /// Hashes many versions of entries of this category, cut into one chunk per thread
    /// of `executor`; the results keep the input order. Fails on the first invalid one.
    pub fn prepare_all<'e>(
        &self,
        entries: &[(&'e [u8], &'e [u8], Version)],
        executor: &dyn Executor,
    ) -> Result<Vec<PreparedLeaf>, StateError> {
        const MIN_CHUNK: usize = 256;
        let threads = executor.parallelism();
        if threads == 1 || entries.len() < 2 * MIN_CHUNK {
            return entries.iter().map(|&(key, value, version)| self.prepare(key, value, version)).collect();
        }
        let chunk = entries.len().div_ceil(threads).max(MIN_CHUNK);
        let mut outputs: Vec<Result<Vec<PreparedLeaf>, StateError>> =
            (0..entries.len().div_ceil(chunk)).map(|_| Ok(Vec::new())).collect();
        let jobs: Vec<Job<'_>> = entries
            .chunks(chunk)
            .zip(outputs.iter_mut())
            .map(|(part, output)| {
                Box::new(move || {
                    *output = part.iter().map(|&(key, value, version)| self.prepare(key, value, version)).collect();
                }) as Job<'_>
            })
            .collect();
        executor.run(jobs);
        let mut prepared = Vec::with_capacity(entries.len());
        for output in outputs {
            prepared.extend(output?);
        }
        Ok(prepared)
    }

    /// Splits a batch by owning shard.
    pub fn route(&self, batch: Vec<PreparedLeaf>) -> Vec<Vec<PreparedLeaf>> {
        let mut parts: Vec<Vec<PreparedLeaf>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for prepared in batch {
            parts[self.shard_index(prepared.position())].push(prepared);
        }
        parts
    }

    /// Recombines the root from the shards' subtree roots (at most 15 one-block hashes).
    pub fn refresh_root(&mut self) {
        self.root = self.combined(TreePath::ROOT).0;
    }

    /// The node at `path`, or `None` when the path runs below a bucket.
    pub fn node(&self, path: &TreePath) -> Option<NodeView> {
        // Above the subtree level, an ancestor holding few leaves is a combined bucket:
        // nothing exists below it in the canonical trie.
        for depth in 0..path.len().min(SUBTREE_BITS) {
            let ancestor = TreePath::new(path.bits(), depth).unwrap_or_default();
            let count: u64 = self.subtrees_under(&ancestor).map(|s| self.subtree(s).count()).sum();
            if count > 0 && is_bucket(depth, count as usize) {
                return None;
            }
        }
        if path.len() < SUBTREE_BITS {
            return Some(self.combined_view(path));
        }
        let subtree = (path.bits() >> (64 - SUBTREE_BITS)) as usize;
        let node = self.subtree(subtree).descend(SUBTREE_BITS, path)?;
        let shape = match (node.bucket(), node.children()) {
            (Some([]), _) => NodeShape::Empty,
            (Some(leaves), _) => NodeShape::Bucket(leaves.iter().map(|l| *l.digest()).collect()),
            (None, Some([left, right])) => NodeShape::Inner { left: left.hash(), right: right.hash() },
            (None, None) => unreachable!("a node is a bucket or has children"),
        };
        Some(NodeView { path: *path, hash: node.hash(), count: node.count(), shape })
    }

    /// Calls `visit` with every entry below `path`, in trie order. A path that runs
    /// below a bucket selects the bucket's leaves on that path.
    pub fn for_each_entry_under(&self, path: &TreePath, visit: &mut impl FnMut(EntryRef<'_>)) {
        for subtree in self.subtrees_under(path) {
            let shard = &self.shards[self.shard_of_subtree(subtree)];
            let node = deepest_toward(shard.subtree(subtree), path);
            node.for_each_leaf(&mut |leaf| {
                if path.contains(leaf.position) {
                    visit(shard.entry(leaf));
                }
            });
        }
    }

    /// Calls `visit` with every entry, in trie order.
    pub fn for_each_entry(&self, visit: &mut impl FnMut(EntryRef<'_>)) {
        self.for_each_entry_under(&TreePath::ROOT, visit);
    }

    /// A membership proof for the stored version of `key`: the sibling hashes from the
    /// root down to the bucket holding it, and that bucket's leaf digests.
    pub fn prove(&self, key: &[u8]) -> Option<MembershipProof> {
        let position = KeyPosition::of(key).prefix();
        let mut siblings = Vec::new();
        self.top_siblings(position, &mut siblings);
        if (siblings.len() as u32) < SUBTREE_BITS {
            return self.prove_in_top_bucket(position, key, siblings);
        }
        let subtree = subtree_of(position);
        let shard = &self.shards[self.shard_of_subtree(subtree)];
        let (leaves, index) = shard.subtree(subtree).proof_path(SUBTREE_BITS, position, key, &mut siblings)?;
        let digests = leaves.iter().map(|l| *l.digest()).collect();
        let version = shard.entry(&leaves[index]).version;
        Some(MembershipProof::new(self.id, version, digests, index, siblings))
    }

    /// Stores the versions that win last-writer-wins against what is stored (or whose
    /// key is new here); returns how many were stored and how many lost.
    pub fn apply_lww(&mut self, entries: &[Entry]) -> Result<(u64, u64), StateError> {
        let batch = entries.iter().map(|e| self.prepare(&e.key, &e.value, e.version)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.apply_prepared_lww(batch))
    }

    /// [`CategoryState::apply_lww`] for versions already hashed.
    pub fn apply_prepared_lww(&mut self, batch: Vec<PreparedLeaf>) -> (u64, u64) {
        let offered = batch.len() as u64;
        let mut winners: Vec<PreparedLeaf> = batch
            .into_iter()
            .filter(|p| self.get(p.key()).map_or(true, |stored| p.version().lww_cmp(&stored.version).is_gt()))
            .collect();
        // Two versions of one key in the batch: the batch keeps the last, so order by
        // last-writer-wins and the newest is last.
        winners.sort_by(|a, b| a.version().lww_cmp(&b.version()));
        let applied = winners.len() as u64;
        if !winners.is_empty() {
            self.apply_batch(winners);
        }
        (applied, offered - applied)
    }

    /// Starts maintaining the reconciliation sketch (`capacity` coded symbols per shard).
    /// Built once from the stored leaves; every later mutation updates it in O(log capacity).
    pub fn enable_sync_sketch(&mut self, capacity: usize) {
        self.shards.iter_mut().for_each(|shard| shard.enable_sketch(capacity));
    }

    /// How many coded symbols the sketch keeps (0 when not enabled).
    pub fn sketch_capacity(&self) -> usize {
        self.shards.iter().filter_map(Shard::sketch).map(|s| s.capacity()).min().unwrap_or(0)
    }

    /// The first `count` coded symbols of the category's sketch: the XOR of its shards'.
    pub fn sketch_symbols(&self, count: usize) -> Vec<CodedSymbol> {
        let count = count.min(self.sketch_capacity());
        let mut symbols = vec![CodedSymbol::default(); count];
        for sketch in self.shards.iter().filter_map(Shard::sketch) {
            for (mine, theirs) in symbols.iter_mut().zip(sketch.symbols(count)) {
                mine.xor(theirs);
            }
        }
        symbols
    }

    /// The difference-estimator counters of the category: the sum of its shards'.
    pub fn estimator_counters(&self) -> [i64; ESTIMATOR_COUNTERS] {
        let mut counters = [0i64; ESTIMATOR_COUNTERS];
        for sketch in self.shards.iter().filter_map(Shard::sketch) {
            counters.iter_mut().zip(sketch.counters()).for_each(|(mine, theirs)| *mine += theirs);
        }
        counters
    }

    /// The stored version named by a short id.
    pub fn find_short_id(&self, id: ShortId) -> Option<EntryRef<'_>> {
        let position = (id.position24() as u64) << 40;
        self.shards[self.shard_index(position)].find_short_id(id)
    }

    /// Calls `visit` with the short id of every leaf below `path`, in trie order.
    pub fn for_each_short_id_under(&self, path: &TreePath, visit: &mut impl FnMut(ShortId)) {
        for subtree in self.subtrees_under(path) {
            let shard = &self.shards[self.shard_of_subtree(subtree)];
            deepest_toward(shard.subtree(subtree), path).for_each_leaf(&mut |leaf| {
                if path.contains(leaf.position) {
                    visit(ShortId::of(leaf.position, &leaf.digest));
                }
            });
        }
    }

    /// A fingerprint of the versions below `path`: the root for the root path, else the
    /// bucket hash of their leaf digests in trie order (O(leaves below), for the rare
    /// sessions scoped below the root).
    pub fn scope_hash(&self, path: &TreePath) -> Digest {
        if path.is_empty() {
            return self.root;
        }
        let mut digests = Vec::new();
        self.for_each_entry_under(path, &mut |entry| digests.push(*entry.digest));
        if digests.is_empty() {
            Digest::EMPTY
        } else {
            digest::bucket_hash(&digests)
        }
    }

    /// Versions stored below `path`.
    pub fn count_under(&self, path: &TreePath) -> u64 {
        if path.is_empty() {
            return self.len();
        }
        let mut count = 0;
        self.for_each_short_id_under(path, &mut |_| count += 1);
        count
    }

    /// Recomputes every hash from the leaves and checks it against the cached ones
    /// ("verify integrity"). `Err` names the first inconsistency.
    pub fn verify_integrity(&self) -> Result<(), String> {
        for (index, shard) in self.shards.iter().enumerate() {
            for subtree in shard.subtree_range() {
                let path = TreePath::new((subtree as u64) << (64 - SUBTREE_BITS), SUBTREE_BITS).unwrap_or_default();
                shard
                    .subtree(subtree)
                    .verify(SUBTREE_BITS, &path)
                    .map_err(|why| format!("category {:?}, shard {index}, subtree {subtree}: {why}", self.name))?;
            }
        }
        let (root, _) = self.combined(TreePath::ROOT);
        if root != self.root {
            return Err(format!("category {:?}: cached root differs from the recomputed one", self.name));
        }
        Ok(())
    }

    /// The highest write counter seen from each origin in this category.
    pub fn version_vector(&self) -> VersionVector {
        let mut vector = VersionVector::new();
        for shard in &self.shards {
            vector.merge(&shard.version_vector());
        }
        vector
    }

    fn subtree(&self, subtree: usize) -> &Node {
        self.shards[self.shard_of_subtree(subtree)].subtree(subtree)
    }

    fn shard_of_subtree(&self, subtree: usize) -> usize {
        shard_of_subtree(subtree, self.shards.len())
    }

    /// Subtree indices below (or containing) `path`.
    fn subtrees_under(&self, path: &TreePath) -> std::ops::Range<usize> {
        if path.len() >= SUBTREE_BITS {
            let subtree = (path.bits() >> (64 - SUBTREE_BITS)) as usize;
            return subtree..subtree + 1;
        }
        let width = 1usize << (SUBTREE_BITS - path.len());
        let first = if path.is_empty() { 0 } else { (path.bits() >> (64 - SUBTREE_BITS)) as usize };
        first..first + width
    }

    /// Hash and leaf count of the combined node at `path` (above the subtree level).
    fn combined(&self, path: TreePath) -> (Digest, u64) {
        if path.len() >= SUBTREE_BITS {
            let node = self.subtree(self.subtrees_under(&path).start);
            return (node.hash(), node.count());
        }
        let count: u64 = self.subtrees_under(&path).map(|s| self.subtree(s).count()).sum();
        if count == 0 {
            return (Digest::EMPTY, 0);
        }
        if is_bucket(path.len(), count as usize) {
            return (digest::bucket_hash(self.bucket_digests(&path).iter()), count);
        }
        let (left, _) = self.combined(path.child(false));
        let (right, _) = self.combined(path.child(true));
        (digest::inner_hash(&left, &right), count)
    }

    fn combined_view(&self, path: &TreePath) -> NodeView {
        let (hash, count) = self.combined(*path);
        let shape = if count == 0 {
            NodeShape::Empty
        } else if is_bucket(path.len(), count as usize) {
            NodeShape::Bucket(self.bucket_digests(path))
        } else {
            NodeShape::Inner { left: self.combined(path.child(false)).0, right: self.combined(path.child(true)).0 }
        };
        NodeView { path: *path, hash, count, shape }
    }

    /// Leaf digests of a combined bucket: its subtrees are all buckets themselves.
    fn bucket_digests(&self, path: &TreePath) -> Vec<Digest> {
        let mut digests = Vec::with_capacity(BUCKET_CAPACITY);
        for subtree in self.subtrees_under(path) {
            if let Some(leaves) = self.subtree(subtree).bucket() {
                digests.extend(leaves.iter().map(|l| *l.digest()));
            }
        }
        digests
    }

    /// Sibling hashes along `position`'s path through the combined levels, top-down,
    /// stopping at a combined bucket or at the subtree level.
    fn top_siblings(&self, position: u64, siblings: &mut Vec<Digest>) {
        let mut path = TreePath::ROOT;
        while path.len() < SUBTREE_BITS {
            let (_, count) = self.combined(path);
            if is_bucket(path.len(), count as usize) {
                return;
            }
            let right = digest::prefix_bit(position, path.len());
            siblings.push(self.combined(path.child(!right)).0);
            path = path.child(right);
        }
    }

    fn prove_in_top_bucket(&self, position: u64, key: &[u8], siblings: Vec<Digest>) -> Option<MembershipProof> {
        let path = TreePath::of_position(position, siblings.len() as u32);
        let mut digests = Vec::new();
        let mut found = None;
        for subtree in self.subtrees_under(&path) {
            let shard = &self.shards[self.shard_of_subtree(subtree)];
            for leaf in shard.subtree(subtree).bucket().unwrap_or(&[]) {
                if leaf.position == position && leaf.key() == key {
                    found = Some((digests.len(), shard.entry(leaf).version));
                }
                digests.push(*leaf.digest());
            }
        }
        let (index, version) = found?;
        Some(MembershipProof::new(self.id, version, digests, index, siblings))
    }
}

/// The node below `root` (a subtree root) that `path` reaches before it ends or runs
/// into a bucket.
fn deepest_toward<'a>(root: &'a Node, path: &TreePath) -> &'a Node {
    let mut node = root;
    let mut depth = SUBTREE_BITS;
    while depth < path.len() {
        let Some(children) = node.children() else { break };
        node = &children[path.bit(depth) as usize];
        depth += 1;
    }
    node
}

const _: () = assert!(SUBTREE_COUNT == 1 << SUBTREE_BITS);
