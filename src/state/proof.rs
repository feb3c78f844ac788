//! Membership proofs: evidence that one version of one entry is part of a category's
//! state, checked against the root alone, without the tree.
//!
//! A proof carries the entry's version, the leaf digests of the bucket that holds it and
//! the sibling hashes from the root down to that bucket. The verifier recomputes the key
//! position (which fixes the path), the leaf digest (from category, key, value and
//! version), the bucket hash and one inner hash per level, and compares with the root.
//!
//! Encoding (all integers little-endian), read with bytemuck and bounded before any
//! allocation:
//!
//! ```text
//! header  68 bytes  magic "BHPF", format 1, flags, bucket_len u16, index u16,
//!                   depth u8, reserved u8, category_id[8], hlc u64, counter u64, origin[32]
//! bucket  bucket_len × 32 bytes   leaf digests in trie order
//! path    depth × 32 bytes        sibling hashes, root first
//! ```

use bytemuck::{Pod, Zeroable};

use super::category::CategoryId;
use super::digest::{self, prefix_bit, Digest, KeyPosition};
use super::entry::{check_bounds, Version};
use super::error::StateError;
use super::node_id::NodeId;
use super::tree::MAX_DEPTH;

const MAGIC: [u8; 4] = *b"BHPF";
const FORMAT: u8 = 1;
/// The largest bucket a proof may carry. Buckets hold at most 16 leaves except at depth
/// 64, which an honest tree reaches only through a 64-bit position collision.
pub const MAX_PROOF_BUCKET: usize = 4096;
/// The longest encoded proof.
pub const MAX_PROOF_LEN: usize = HEADER_LEN + (MAX_PROOF_BUCKET + MAX_DEPTH as usize) * 32;
const HEADER_LEN: usize = std::mem::size_of::<ProofHeader>();

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct ProofHeader {
    magic: [u8; 4],
    format: u8,
    flags: u8,
    bucket_len: [u8; 2],
    index: [u8; 2],
    depth: u8,
    reserved: u8,
    category_id: [u8; 8],
    hlc: [u8; 8],
    counter: [u8; 8],
    origin: [u8; 32],
}

const _: () = assert!(HEADER_LEN == 68);

/// A proof that one entry version belongs to a category's state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MembershipProof {
    category: CategoryId,
    version: Version,
    bucket: Vec<Digest>,
    index: usize,
    siblings: Vec<Digest>,
}

impl MembershipProof {
    pub(crate) fn new(category: CategoryId, version: Version, bucket: Vec<Digest>, index: usize, siblings: Vec<Digest>) -> Self {
        debug_assert!(index < bucket.len() && siblings.len() <= MAX_DEPTH as usize);
        MembershipProof { category, version, bucket, index, siblings }
    }

    /// The version of the entry the proof is for.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// How many levels separate the root from the entry's bucket.
    pub fn depth(&self) -> usize {
        self.siblings.len()
    }

    /// Checks that `key` with `value` (at the proof's version) is in the state of
    /// `category` whose root is `root`.
    pub fn verify(&self, root: &Digest, category: &str, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        verify_parts(&self.parts(), root, CategoryId::of(category), key, value)
    }

    /// The encoded form.
    pub fn encode(&self) -> Vec<u8> {
        let header = ProofHeader {
            magic: MAGIC,
            format: FORMAT,
            flags: self.version.flags(),
            bucket_len: (self.bucket.len() as u16).to_le_bytes(),
            index: (self.index as u16).to_le_bytes(),
            depth: self.siblings.len() as u8,
            reserved: 0,
            category_id: self.category.0,
            hlc: self.version.hlc.to_le_bytes(),
            counter: self.version.counter.to_le_bytes(),
            origin: self.version.origin.0,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + (self.bucket.len() + self.siblings.len()) * 32);
        out.extend_from_slice(bytemuck::bytes_of(&header));
        out.extend_from_slice(bytemuck::cast_slice(&self.bucket));
        out.extend_from_slice(bytemuck::cast_slice(&self.siblings));
        out
    }

    /// Decodes an encoded proof; any malformation is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let parts = decode_parts(bytes)?;
        Ok(MembershipProof {
            category: parts.category,
            version: parts.version,
            bucket: parts.bucket.to_vec(),
            index: parts.index,
            siblings: parts.siblings.to_vec(),
        })
    }

    /// Decodes and verifies an encoded proof without copying it.
    pub fn verify_encoded(bytes: &[u8], root: &Digest, category: &str, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        verify_parts(&decode_parts(bytes)?, root, CategoryId::of(category), key, value)
    }

    fn parts(&self) -> ProofParts<'_> {
        ProofParts {
            category: self.category,
            version: self.version,
            bucket: &self.bucket,
            index: self.index,
            siblings: &self.siblings,
        }
    }
}

/// A proof's fields, borrowed from either an owned proof or an encoded buffer.
struct ProofParts<'a> {
    category: CategoryId,
    version: Version,
    bucket: &'a [Digest],
    index: usize,
    siblings: &'a [Digest],
}

fn decode_parts(bytes: &[u8]) -> Result<ProofParts<'_>, StateError> {
    if bytes.len() < HEADER_LEN {
        return Err(StateError::MalformedProof("shorter than its header"));
    }
    if bytes.len() > MAX_PROOF_LEN {
        return Err(StateError::MalformedProof("longer than the largest proof"));
    }
    let header: ProofHeader = bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN]);
    if header.magic != MAGIC || header.format != FORMAT || header.reserved != 0 {
        return Err(StateError::MalformedProof("unknown magic, format or reserved bits"));
    }
    let bucket_len = u16::from_le_bytes(header.bucket_len) as usize;
    let index = u16::from_le_bytes(header.index) as usize;
    let depth = header.depth as usize;
    if bucket_len == 0 || bucket_len > MAX_PROOF_BUCKET || index >= bucket_len || depth > MAX_DEPTH as usize {
        return Err(StateError::MalformedProof("bucket size, index or depth out of range"));
    }
    let body = &bytes[HEADER_LEN..];
    if body.len() != (bucket_len + depth) * 32 {
        return Err(StateError::MalformedProof("length does not match the header"));
    }
    let digests: &[Digest] = bytemuck::try_cast_slice(body).map_err(|_| StateError::MalformedProof("misaligned digests"))?;
    let origin = NodeId(header.origin);
    let version = Version::from_parts(u64::from_le_bytes(header.hlc), origin, u64::from_le_bytes(header.counter), header.flags)?;
    Ok(ProofParts {
        category: CategoryId(header.category_id),
        version,
        bucket: &digests[..bucket_len],
        index,
        siblings: &digests[bucket_len..],
    })
}

fn verify_parts(parts: &ProofParts<'_>, root: &Digest, category: CategoryId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
    check_bounds(key, value)?;
    if parts.category != category {
        return Err(StateError::ProofMismatch);
    }
    let leaf = digest::leaf_digest(&category.0, key, &digest::value_hash(value), &parts.version);
    if parts.bucket.get(parts.index) != Some(&leaf) {
        return Err(StateError::ProofMismatch);
    }
    let position = KeyPosition::of(key).prefix();
    let mut hash = digest::bucket_hash(parts.bucket);
    for (depth, sibling) in parts.siblings.iter().enumerate().rev() {
        hash = if prefix_bit(position, depth as u32) {
            digest::inner_hash(sibling, &hash)
        } else {
            digest::inner_hash(&hash, sibling)
        };
    }
    if &hash != root {
        return Err(StateError::ProofMismatch);
    }
    Ok(())
}
