//! State diffs: which entry versions two states do not share, found by comparing their
//! tries by path ("compare trees", then "sync subtree" where they differ).
//!
//! The walk descends only where hashes differ, so its cost grows with the size of the
//! difference, not of the state. This in-process form compares two states that are
//! both at hand; the reconciliation protocol exchanges the same [`NodeView`]s over the
//! network.

use std::collections::HashSet;

use smallvec::SmallVec;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::category_state::{CategoryState, NodeShape, NodeView};
use super::digest::Digest;
use super::entry::Entry;
use super::path::TreePath;

/// The versions of one category that one side has and the other lacks.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StateDiff {
    /// The category the diff belongs to.
    pub category: String,
    /// Versions only the left (local) side holds.
    pub only_left: Vec<Entry>,
    /// Versions only the right (remote) side holds.
    pub only_right: Vec<Entry>,
}

impl StateDiff {
    /// Whether both sides hold the same versions.
    pub fn is_empty(&self) -> bool {
        self.only_left.is_empty() && self.only_right.is_empty()
    }
}

/// The paths of the smallest subtrees where `left` and `right` differ.
pub fn compare_trees(left: &CategoryState, right: &CategoryState) -> Vec<TreePath> {
    let mut differing = Vec::new();
    // Depth-first: at most one pending sibling per level, so 64 slots never spill.
    let mut pending: SmallVec<[TreePath; 64]> = SmallVec::new();
    pending.push(TreePath::ROOT);
    while let Some(path) = pending.pop() {
        let (Some(l), Some(r)) = (left.node(&path), right.node(&path)) else {
            differing.push(path);
            continue;
        };
        if l.hash == r.hash {
            continue;
        }
        if both_inner(&l, &r) {
            pending.push(path.child(true));
            pending.push(path.child(false));
        } else {
            differing.push(path);
        }
    }
    differing
}

/// The entry versions that `left` and `right` do not share.
pub fn state_diff(left: &CategoryState, right: &CategoryState) -> StateDiff {
    let mut diff = StateDiff { category: left.name().to_owned(), ..StateDiff::default() };
    for path in compare_trees(left, right) {
        let left_digests = digests_under(left, &path);
        let right_digests = digests_under(right, &path);
        collect_missing(left, &path, &right_digests, &mut diff.only_left);
        collect_missing(right, &path, &left_digests, &mut diff.only_right);
    }
    diff
}

fn both_inner(left: &NodeView, right: &NodeView) -> bool {
    matches!(left.shape, NodeShape::Inner { .. }) && matches!(right.shape, NodeShape::Inner { .. })
}

/// Leaf digests are BLAKE3 outputs, so an unseeded xxh3 spreads them evenly and keeps
/// the diff deterministic (no per-process random hash keys).
type DigestSet = HashSet<Digest, Xxh3DefaultBuilder>;

fn digests_under(state: &CategoryState, path: &TreePath) -> DigestSet {
    let mut digests = DigestSet::default();
    state.for_each_entry_under(path, &mut |entry| {
        digests.insert(*entry.digest);
    });
    digests
}

fn collect_missing(state: &CategoryState, path: &TreePath, other: &DigestSet, out: &mut Vec<Entry>) {
    state.for_each_entry_under(path, &mut |entry| {
        if !other.contains(entry.digest) {
            out.push(entry.to_entry());
        }
    });
}
