//! Blocks: a fixed header (height, previous block id, transactions' Merkle root,
//! timestamp, proposer, signature) and a bounded list of transactions.
//!
//! ```text
//! header (176 bytes): height u64 · timestamp_ms u64 · prev_id [32] · tx_root [32]
//!                     · proposer [32] (Ed25519 public key = NodeId) · signature [64]
//! body: tx_count u32 · (tx_len u32 · tx bytes)*
//! ```
//!
//! The block id is BLAKE3 (keyed by a domain string) over the first 112 header bytes,
//! everything but the signature; the proposer signs the id with Ed25519
//! (ed25519-dalek, strict verification, so a signature cannot be malleated).

use bytemuck::{Pod, Zeroable};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::merkle::{transactions_root, Hash};
use crate::state::NodeId;

/// A block's identity.
pub type BlockId = Hash;

/// Bytes of an encoded header.
pub const HEADER_LEN: usize = std::mem::size_of::<BlockHeader>();
const SIGNED_LEN: usize = HEADER_LEN - 64;
const ID_CONTEXT: &str = "bhsync 2026 block id v1";

/// Bounds on what a peer can make us decode or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Transactions per block (10,000).
    pub transactions_max: u32,
    /// Bytes of one transaction (64 KiB).
    pub transaction_bytes_max: u32,
    /// Bytes of an encoded block (4 MiB).
    pub block_bytes_max: u32,
}

impl BlockLimits {
    /// The defaults, as a constant (the C header's bounds are checked against them).
    pub const DEFAULT: BlockLimits =
        BlockLimits { transactions_max: 10_000, transaction_bytes_max: 64 << 10, block_bytes_max: 4 << 20 };
}

impl Default for BlockLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A block header, read and written with bytemuck.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq, Eq)]
pub struct BlockHeader {
    /// Distance from genesis (genesis is 0).
    pub height: u64,
    /// The proposer's clock when it made the block, Unix milliseconds.
    pub timestamp_ms: u64,
    /// The id of the block before.
    pub prev_id: BlockId,
    /// [`transactions_root`] of the body.
    pub tx_root: Hash,
    /// The proposer's Ed25519 public key.
    pub proposer: [u8; 32],
    /// Ed25519 signature of the block id.
    pub signature: [u8; 64],
}

const _: () = assert!(HEADER_LEN == 176);

impl BlockHeader {
    /// The block id: BLAKE3 over every field but the signature.
    pub fn id(&self) -> BlockId {
        let bytes = bytemuck::bytes_of(self);
        let mut hasher = blake3::Hasher::new_derive_key(ID_CONTEXT);
        hasher.update(&bytes[..SIGNED_LEN]);
        *hasher.finalize().as_bytes()
    }

    /// The proposer as a node identity.
    pub fn proposer_id(&self) -> NodeId {
        NodeId(self.proposer)
    }

    /// Whether the signature is the proposer's over the id (strict Ed25519).
    pub fn signature_valid(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.proposer) else { return false };
        key.verify_strict(&self.id(), &Signature::from_bytes(&self.signature)).is_ok()
    }

    /// Decodes a header from exactly [`HEADER_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == HEADER_LEN).then(|| bytemuck::pod_read_unaligned(bytes))
    }
}

/// A block: header and transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, opaque bytes.
    pub transactions: Vec<Vec<u8>>,
}

/// Why bytes are not a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockDecodeError {
    /// The input ends early.
    Truncated,
    /// More transactions than [`BlockLimits::transactions_max`].
    TooManyTransactions,
    /// A transaction over [`BlockLimits::transaction_bytes_max`].
    TransactionTooLarge,
    /// The block exceeds [`BlockLimits::block_bytes_max`].
    BlockTooLarge,
    /// Bytes after the last transaction.
    TrailingBytes,
}

impl Block {
    /// Makes and signs the block after `parent` (genesis: `parent = None`).
    pub fn create(
        parent: Option<&BlockHeader>,
        transactions: Vec<Vec<u8>>,
        timestamp_ms: u64,
        key: &SigningKey,
    ) -> Self {
        let (height, prev_id) = parent.map_or((0, [0; 32]), |p| (p.height + 1, p.id()));
        let mut header = BlockHeader {
            height,
            timestamp_ms,
            prev_id,
            tx_root: transactions_root(&transactions),
            proposer: key.verifying_key().to_bytes(),
            signature: [0; 64],
        };
        header.signature = key.sign(&header.id()).to_bytes();
        Self { header, transactions }
    }

    /// The block id.
    pub fn id(&self) -> BlockId {
        self.header.id()
    }

    /// Bytes of the encoding.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + self.transactions.iter().map(|t| 4 + t.len()).sum::<usize>()
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(bytemuck::bytes_of(&self.header));
        out.extend_from_slice(&(self.transactions.len() as u32).to_le_bytes());
        for transaction in &self.transactions {
            out.extend_from_slice(&(transaction.len() as u32).to_le_bytes());
            out.extend_from_slice(transaction);
        }
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Decodes exactly one block from `bytes` within `limits`. Never panics; allocates
    /// at most what the input holds.
    pub fn decode(bytes: &[u8], limits: &BlockLimits) -> Result<Self, BlockDecodeError> {
        let (block, used) = Self::decode_prefix(bytes, limits)?;
        if used != bytes.len() {
            return Err(BlockDecodeError::TrailingBytes);
        }
        Ok(block)
    }

    /// Decodes one block from the start of `bytes`; returns it and the bytes used.
    pub fn decode_prefix(bytes: &[u8], limits: &BlockLimits) -> Result<(Self, usize), BlockDecodeError> {
        let mut reader = Reader { bytes, at: 0 };
        let header = BlockHeader::decode(reader.take(HEADER_LEN)?).ok_or(BlockDecodeError::Truncated)?;
        let count = reader.u32()?;
        if count > limits.transactions_max {
            return Err(BlockDecodeError::TooManyTransactions);
        }
        // Each transaction needs 4 bytes at least: bound the allocation by the input.
        let mut transactions = Vec::with_capacity((count as usize).min(reader.remaining() / 4));
        for _ in 0..count {
            let len = reader.u32()?;
            if len > limits.transaction_bytes_max {
                return Err(BlockDecodeError::TransactionTooLarge);
            }
            transactions.push(reader.take(len as usize)?.to_vec());
            if reader.at > limits.block_bytes_max as usize {
                return Err(BlockDecodeError::BlockTooLarge);
            }
        }
        Ok((Self { header, transactions }, reader.at))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], BlockDecodeError> {
        let end = self.at.checked_add(len).ok_or(BlockDecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(BlockDecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, BlockDecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_block_round_trips_and_its_signature_holds() {
        let genesis = Block::create(None, vec![], 0, &key(1));
        let block = Block::create(Some(&genesis.header), vec![b"tx1".to_vec(), vec![0; 300]], 10, &key(2));
        let decoded = Block::decode(&block.to_bytes(), &BlockLimits::default()).unwrap();
        assert_eq!(decoded, block);
        assert_eq!((decoded.header.height, decoded.header.prev_id), (1, genesis.id()));
        assert!(decoded.header.signature_valid());
        let mut forged = decoded.header;
        forged.timestamp_ms += 1;
        assert!(!forged.signature_valid(), "the signature covers every field");
    }

    #[test]
    fn bounds_are_enforced_before_allocation() {
        let block = Block::create(None, vec![vec![1; 100]; 3], 0, &key(1));
        let bytes = block.to_bytes();
        let tight = BlockLimits { transactions_max: 2, ..BlockLimits::default() };
        assert_eq!(Block::decode(&bytes, &tight), Err(BlockDecodeError::TooManyTransactions));
        let small = BlockLimits { transaction_bytes_max: 99, ..BlockLimits::default() };
        assert_eq!(Block::decode(&bytes, &small), Err(BlockDecodeError::TransactionTooLarge));
        assert_eq!(Block::decode(&bytes[..bytes.len() - 1], &BlockLimits::default()), Err(BlockDecodeError::Truncated));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Block::decode(&long, &BlockLimits::default()), Err(BlockDecodeError::TrailingBytes));
        let mut huge_count = bytes[..HEADER_LEN].to_vec();
        huge_count.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Block::decode(&huge_count, &BlockLimits::default()), Err(BlockDecodeError::TooManyTransactions));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(block) = Block::decode(&bytes, &BlockLimits::default()) {
                prop_assert_eq!(block.to_bytes(), bytes);
            }
        }
    }
}
