//! Short ids: the 48-bit names of leaf versions that reconciliation sketches carry.
//!
//! A short id is the top 24 bits of the key position followed by 24 bits of the leaf
//! digest. The position half lets a node find the leaf in its trie without any extra
//! index and lets both sides pair two versions of the same key (an update is one
//! logical difference); the digest half tells versions of one key apart. Two different
//! keys share a short id with probability 2^-48 per pair; when it happens, the final
//! root comparison reports the difference instead of hiding it.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::state::Digest;

/// Bytes of a short id on the wire.
pub const SHORT_ID_LEN: usize = 6;

const CHECKSUM_SEED: u64 = 0x6268_7379_6e63_0001;
const MAPPING_SEED: u64 = 0x6268_7379_6e63_0002;
const SIGN_SEED: u64 = 0x6268_7379_6e63_0003;

/// A 48-bit short id (the top 16 bits are zero).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct ShortId(pub u64);

impl ShortId {
    /// The short id of the leaf with this position prefix and digest.
    pub fn of(position: u64, digest: &Digest) -> ShortId {
        let digest24 = u32::from_le_bytes([digest.0[0], digest.0[1], digest.0[2], 0]) as u64;
        ShortId(((position >> 40) << 24) | digest24)
    }

    /// The top 24 bits of the key position.
    pub fn position24(&self) -> u32 {
        (self.0 >> 24) as u32
    }

    /// Whether a leaf with this position prefix and digest has this short id.
    pub fn names(&self, position: u64, digest: &Digest) -> bool {
        ShortId::of(position, digest) == *self
    }

    /// The 32-bit checksum that marks a pure coded symbol.
    pub fn checksum(&self) -> u32 {
        xxh3_64_with_seed(&self.0.to_le_bytes(), CHECKSUM_SEED) as u32
    }

    /// The seed of this id's coded-symbol index sequence.
    pub fn mapping_seed(&self) -> u64 {
        xxh3_64_with_seed(&self.0.to_le_bytes(), MAPPING_SEED)
    }

    /// 64 independent ±1 signs for the difference estimator, one per bit.
    pub fn signs(&self) -> u64 {
        xxh3_64_with_seed(&self.0.to_le_bytes(), SIGN_SEED)
    }

    /// Big-endian wire form.
    pub fn to_bytes(self) -> [u8; SHORT_ID_LEN] {
        let bytes = self.0.to_be_bytes();
        [bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]
    }

    /// Reads the wire form.
    pub fn from_bytes(bytes: [u8; SHORT_ID_LEN]) -> ShortId {
        let mut full = [0u8; 8];
        full[2..].copy_from_slice(&bytes);
        ShortId(u64::from_be_bytes(full))
    }
}
