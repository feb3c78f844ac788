//! The stored form of one entry version, packed to keep per-entry overhead small.
//!
//! A [`Leaf`] holds the key and value in one allocation, the leaf digest, the first 64
//! bits of the key position (enough to route to any depth of the trie) and the version,
//! with the origin interned per shard. It is 80 bytes beside the key and value bytes.
//! A [`PreparedLeaf`] is a leaf whose hashing is done but whose origin is not yet
//! interned: preparation is pure and runs on any core; insertion runs on the shard.

use std::cmp::Ordering;

use super::digest::{self, Digest, KeyPosition};
use super::entry::{check_bounds, EntryRef, Version};
use super::error::StateError;
use super::node_id::NodeId;

/// One version of one entry as a shard stores it.
#[derive(Default)]
pub struct Leaf {
    data: Box<[u8]>,
    pub(crate) digest: Digest,
    pub(crate) position: u64,
    hlc: u64,
    counter: u64,
    pub(crate) origin_index: u32,
    key_len: u16,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<Leaf>() <= 80);

impl Leaf {
    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }

    /// The leaf digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The write's counter at its origin.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The version, given the origin that `origin_index` stands for.
    pub fn version(&self, origin: NodeId) -> Version {
        let tombstone = self.flags != 0;
        Version { hlc: self.hlc, origin, counter: self.counter, tombstone }
    }

    /// A borrowed entry view, given the resolved origin.
    pub fn entry(&self, origin: NodeId) -> EntryRef<'_> {
        EntryRef { key: self.key(), value: self.value(), version: self.version(origin), digest: &self.digest }
    }

    /// Trie order: key position, then key bytes (positions of distinct keys collide
    /// only with negligible probability, but the order must still be total).
    pub fn trie_cmp(&self, position: u64, key: &[u8]) -> Ordering {
        self.position.cmp(&position).then_with(|| self.key().cmp(key))
    }
}

/// A leaf whose hashes are computed, ready to be inserted into the shard that owns it.
pub struct PreparedLeaf {
    pub(crate) leaf: Leaf,
    pub(crate) origin: NodeId,
}

impl PreparedLeaf {
    /// Hashes one version of `key` for the category `category_id`.
    pub fn new(category_id: &[u8; 8], key: &[u8], value: &[u8], version: Version) -> Result<Self, StateError> {
        check_bounds(key, value)?;
        let position = KeyPosition::of(key).prefix();
        let value = if version.tombstone { &[][..] } else { value };
        let digest = digest::leaf_digest(category_id, key, &digest::value_hash(value), &version);
        let mut data = Vec::with_capacity(key.len() + value.len());
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        let leaf = Leaf {
            data: data.into_boxed_slice(),
            digest,
            position,
            hlc: version.hlc,
            counter: version.counter,
            origin_index: u32::MAX,
            key_len: key.len() as u16,
            flags: version.flags(),
        };
        Ok(PreparedLeaf { leaf, origin: version.origin })
    }

    /// The leaf digest.
    pub fn digest(&self) -> &Digest {
        &self.leaf.digest
    }

    /// The first 64 bits of the key position.
    pub fn position(&self) -> u64 {
        self.leaf.position
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        self.leaf.key()
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.leaf.version(self.origin)
    }
}
