//! State vectors (DESIGN.md §3): per category, the version vector and the Merkle root;
//! the node's state hash is the hash of all category roots.
//!
//! Two nodes first exchange state vectors. Equal roots mean equal categories; otherwise
//! the version vectors say which side is ahead, behind, or whether both wrote
//! concurrently, which the seed design's scalar versions could not tell apart.

use std::collections::BTreeMap;

use super::category::CategoryId;
use super::digest::{self, Digest};
use crate::time::{Causality, VersionVector};

/// What a node knows of one category.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CategoryVector {
    /// The category's identifier.
    pub id: CategoryId,
    /// Highest write counter seen from each origin.
    pub versions: VersionVector,
    /// The Merkle root.
    pub root: Digest,
    /// Entries stored, tombstones included.
    pub entries: u64,
}

/// The state vector of a node: one [`CategoryVector`] per category, by name.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StateVector {
    /// Categories by name.
    pub categories: BTreeMap<String, CategoryVector>,
}

impl StateVector {
    /// The node's overall state hash: the hash of every (category id, root) pair in
    /// category-name order. Empty categories count, so adding one changes the hash.
    pub fn state_hash(&self) -> Digest {
        digest::state_hash(self.categories.values().map(|c| (&c.id.0, &c.root)))
    }

    /// How `self`'s view of `category` relates to `other`'s: `Equal` when the roots
    /// agree, otherwise what the version vectors say. Equal vectors with different
    /// roots (the same writes, resolved differently) are `Concurrent`. A category one
    /// side lacks is compared with an empty one.
    pub fn compare_category(&self, other: &StateVector, category: &str) -> Causality {
        let empty = VersionVector::new();
        let mine = self.categories.get(category);
        let theirs = other.categories.get(category);
        let root = |c: Option<&CategoryVector>| c.map_or(Digest::EMPTY, |c| c.root);
        if root(mine) == root(theirs) {
            return Causality::Equal;
        }
        let mine = mine.map_or(&empty, |c| &c.versions);
        let theirs = theirs.map_or(&empty, |c| &c.versions);
        match mine.compare(theirs) {
            Causality::Equal => Causality::Concurrent,
            other => other,
        }
    }
}
