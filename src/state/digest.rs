//! The hashing rules of the state: one place that says what every hash covers.
//!
//! All identities and integrity proofs use BLAKE3 in keyed mode, with one key per
//! purpose derived from a context string (BLAKE3's `derive_key`), so a leaf digest can
//! never be confused with a node hash or a key position. Layouts are fixed and
//! little-endian; changing any of them changes every root, so each context string
//! carries a version.
//!
//! ```text
//! key_position = BLAKE3-keyed(K_POSITION, key)
//! value_hash   = BLAKE3-keyed(K_VALUE, value)
//! leaf_digest  = BLAKE3-keyed(K_LEAF, category_id[8] ‖ key_len u32 ‖ key
//!                  ‖ hlc u64 ‖ counter u64 ‖ origin[32] ‖ flags u8 ‖ value_hash[32])
//! bucket_hash  = BLAKE3-keyed(K_BUCKET, leaf_digest ‖ leaf_digest ‖ …)   (trie order)
//! inner_hash   = BLAKE3-keyed(K_INNER, left_hash ‖ right_hash)           (one block)
//! empty node   = 32 zero bytes
//! ```

use std::fmt;
use std::sync::LazyLock;

use super::entry::Version;

/// A 32-byte BLAKE3 output: a leaf digest, a node hash, a root or a state hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[derive(bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The hash of an empty subtree.
    pub const EMPTY: Digest = Digest([0; 32]);

    /// The digest as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        super::node_id::hex(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", super::node_id::hex(&self.0[..8]))
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Self {
        Digest(*hash.as_bytes())
    }
}

fn derived(context: &str) -> [u8; 32] {
    blake3::derive_key(context, &[])
}

static K_POSITION: LazyLock<[u8; 32]> = LazyLock::new(|| derived("bhsync 2026 state key position v1"));
static K_VALUE: LazyLock<[u8; 32]> = LazyLock::new(|| derived("bhsync 2026 state value hash v1"));
static K_LEAF: LazyLock<[u8; 32]> = LazyLock::new(|| derived("bhsync 2026 state leaf digest v1"));
static K_BUCKET: LazyLock<[u8; 32]> = LazyLock::new(|| derived("bhsync 2026 state bucket hash v1"));
static K_INNER: LazyLock<[u8; 32]> = LazyLock::new(|| derived("bhsync 2026 state inner hash v1"));
static K_CATEGORY: LazyLock<[u8; 32]> = LazyLock::new(|| derived("bhsync 2026 category id v1"));
static K_STATE: LazyLock<[u8; 32]> = LazyLock::new(|| derived("bhsync 2026 state hash v1"));

/// Where a key lives in the trie: 256 uniformly distributed bits, read from the most
/// significant bit of the first byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KeyPosition(pub [u8; 32]);

impl KeyPosition {
    /// The position of `key`.
    pub fn of(key: &[u8]) -> Self {
        KeyPosition(*blake3::keyed_hash(&K_POSITION, key).as_bytes())
    }

    /// The first 64 bits, big-endian: enough to route any key to depth 64.
    pub fn prefix(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first)
    }
}

/// Bit `depth` (0 = most significant) of a 64-bit position prefix.
#[inline]
pub fn prefix_bit(prefix: u64, depth: u32) -> bool {
    debug_assert!(depth < 64);
    (prefix >> (63 - depth)) & 1 == 1
}

/// The hash of a value.
pub fn value_hash(value: &[u8]) -> Digest {
    blake3::keyed_hash(&K_VALUE, value).into()
}

/// The 8-byte identifier of a category, from its name.
pub fn category_id(name: &str) -> [u8; 8] {
    let hash = blake3::keyed_hash(&K_CATEGORY, name.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&hash.as_bytes()[..8]);
    id
}

/// Bytes of the leaf-digest input after the key: hlc, counter, origin, flags, value hash.
const LEAF_META_LEN: usize = 8 + 8 + 32 + 1 + 32;
/// Bytes of the leaf-digest input before the key: category id and key length.
const LEAF_HEAD_LEN: usize = 8 + 4;

/// The digest of one version of one entry (layout in the module docs). The input is
/// laid out in one stack buffer and hashed in one call, which measured faster than
/// feeding an incremental hasher field by field.
pub fn leaf_digest(category_id: &[u8; 8], key: &[u8], value_hash: &Digest, version: &Version) -> Digest {
    const SHORT_KEY: usize = 128;
    if key.len() <= SHORT_KEY {
        leaf_digest_in::<{ LEAF_HEAD_LEN + SHORT_KEY + LEAF_META_LEN }>(category_id, key, value_hash, version)
    } else {
        leaf_digest_in::<{ LEAF_HEAD_LEN + super::entry::MAX_KEY_LEN + LEAF_META_LEN }>(category_id, key, value_hash, version)
    }
}

fn leaf_digest_in<const N: usize>(category_id: &[u8; 8], key: &[u8], value_hash: &Digest, version: &Version) -> Digest {
    let mut input = [0u8; N];
    let key_end = LEAF_HEAD_LEN + key.len();
    let end = key_end + LEAF_META_LEN;
    assert!(end <= N, "a key over MAX_KEY_LEN reached leaf_digest");
    input[..8].copy_from_slice(category_id);
    input[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
    input[12..key_end].copy_from_slice(key);
    let meta = &mut input[key_end..end];
    meta[..8].copy_from_slice(&version.hlc.to_le_bytes());
    meta[8..16].copy_from_slice(&version.counter.to_le_bytes());
    meta[16..48].copy_from_slice(&version.origin.0);
    meta[48] = version.flags();
    meta[49..].copy_from_slice(&value_hash.0);
    blake3::keyed_hash(&K_LEAF, &input[..end]).into()
}

/// The hash of a bucket: its leaf digests in trie order. Buckets of up to 16 leaves
/// (all but the deepest) are hashed from one contiguous buffer.
pub fn bucket_hash<'a>(digests: impl IntoIterator<Item = &'a Digest>) -> Digest {
    let mut buffer = [0u8; 16 * 32];
    let mut len = 0;
    let mut hasher: Option<blake3::Hasher> = None;
    for digest in digests {
        if len == buffer.len() {
            hasher.get_or_insert_with(|| blake3::Hasher::new_keyed(&K_BUCKET)).update(&buffer);
            len = 0;
        }
        buffer[len..len + 32].copy_from_slice(&digest.0);
        len += 32;
    }
    match hasher {
        None => blake3::keyed_hash(&K_BUCKET, &buffer[..len]).into(),
        Some(mut hasher) => hasher.update(&buffer[..len]).finalize().into(),
    }
}

/// The hash of an inner node from its two children: exactly one BLAKE3 block.
pub fn inner_hash(left: &Digest, right: &Digest) -> Digest {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&left.0);
    block[32..].copy_from_slice(&right.0);
    blake3::keyed_hash(&K_INNER, &block).into()
}

/// The overall state hash from `(category id, root)` pairs in category-name order.
pub fn state_hash<'a>(roots: impl IntoIterator<Item = (&'a [u8; 8], &'a Digest)>) -> Digest {
    let mut hasher = blake3::Hasher::new_keyed(&K_STATE);
    for (id, root) in roots {
        hasher.update(id);
        hasher.update(&root.0);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeId;

    #[test]
    fn every_field_of_a_version_changes_the_leaf_digest() {
        let base = Version { hlc: 1, origin: NodeId([1; 32]), counter: 1, tombstone: false };
        let value = value_hash(b"v");
        let digest = leaf_digest(&[0; 8], b"k", &value, &base);
        let variants = [
            Version { hlc: 2, ..base },
            Version { origin: NodeId([2; 32]), ..base },
            Version { counter: 2, ..base },
            Version { tombstone: true, ..base },
        ];
        for variant in variants {
            assert_ne!(leaf_digest(&[0; 8], b"k", &value, &variant), digest);
        }
        assert_ne!(leaf_digest(&[1; 8], b"k", &value, &base), digest, "category is covered");
        assert_ne!(leaf_digest(&[0; 8], b"k2", &value, &base), digest, "key is covered");
        assert_ne!(leaf_digest(&[0; 8], b"k", &value_hash(b"w"), &base), digest, "value is covered");
    }

    #[test]
    fn long_keys_use_the_large_buffer_and_hash_the_same_way() {
        let version = Version::default();
        let key = vec![3u8; crate::state::MAX_KEY_LEN];
        let digest = leaf_digest(&[0; 8], &key, &Digest::EMPTY, &version);
        assert_ne!(digest, leaf_digest(&[0; 8], &key[..128], &Digest::EMPTY, &version));
    }

    #[test]
    fn bucket_hash_over_more_than_sixteen_digests_equals_the_one_shot_hash() {
        let digests: Vec<Digest> = (0..40u8).map(|i| Digest([i; 32])).collect();
        let concatenated: Vec<u8> = digests.iter().flat_map(|d| d.0).collect();
        let expected: Digest = blake3::keyed_hash(&K_BUCKET, &concatenated).into();
        assert_eq!(bucket_hash(&digests), expected);
        assert_eq!(bucket_hash(&digests[..3]), blake3::keyed_hash(&K_BUCKET, &concatenated[..96]).into());
    }

    #[test]
    fn domains_are_separated() {
        let block = [0u8; 64];
        assert_ne!(inner_hash(&Digest::EMPTY, &Digest::EMPTY), bucket_hash(&[Digest::EMPTY, Digest::EMPTY]));
        assert_ne!(value_hash(&block), Digest::from(blake3::hash(&block)));
    }
}
