//! The chain: every known block indexed by id, the main chain by height, fork choice,
//! and persistence of blocks through the storage log.
//!
//! **Fork choice** (docs/adr/041-chain.md): the head is the tip of the highest chain
//! (every block weighs the same: proposers are peers, not miners); between tips of
//! equal height the one with the lowest block id wins, so every node picks the same
//! head whatever order blocks arrived in. A longer branch causes a reorganisation:
//! the main chain is cut back to the fork point and follows the branch.

use std::collections::HashMap;

use super::block::{Block, BlockHeader, BlockId, BlockLimits};
use super::validate::{validate_block, BlockError, ChainRules};
use crate::storage::{Log, Recovery, StorageError};

/// What the sync protocol needs from a chain: its main chain by height and by id.
/// An in-memory index suffices (the fork tests use a synthetic one).
pub trait ChainStore {
    /// Height of the head.
    fn tip_height(&self) -> u64;
    /// Id of the main-chain block at `height`.
    fn id_at(&self, height: u64) -> Option<BlockId>;
    /// Height of `id` if it is on the main chain.
    fn main_height_of(&self, id: &BlockId) -> Option<u64>;
}

/// A chain that can also serve headers and blocks to peers.
pub trait BlockSource: ChainStore {
    /// The main-chain header at `height`.
    fn header_at(&self, height: u64) -> Option<BlockHeader>;
    /// The main-chain block at `height`.
    fn block_at(&self, height: u64) -> Option<Block>;
}

/// What inserting a block did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// It was already known.
    Duplicate,
    /// It extends the main chain.
    Extended,
    /// It is stored on a side branch that does not win fork choice.
    SideBranch,
    /// Its branch won: the main chain now follows it from `fork_height + 1`.
    Reorganized {
        /// The last height both branches share.
        fork_height: u64,
    },
}

/// Blocks by id, the main chain by height.
#[derive(Debug)]
pub struct Chain {
    blocks: HashMap<BlockId, Block>,
    main: Vec<BlockId>,
    main_index: HashMap<BlockId, u64>,
    rules: ChainRules,
    limits: BlockLimits,
    unpersisted: Vec<Vec<u8>>,
}

impl Chain {
    /// A chain holding only `genesis` (trusted: it is configuration, not input).
    pub fn new(genesis: Block, rules: ChainRules) -> Self {
        let id = genesis.id();
        let mut chain = Self {
            blocks: HashMap::new(),
            main: vec![id],
            main_index: HashMap::new(),
            rules,
            limits: BlockLimits::default(),
            unpersisted: Vec::new(),
        };
        chain.main_index.insert(id, 0);
        chain.blocks.insert(id, genesis);
        chain
    }

    /// Rebuilds a chain from what [`Log::open`] recovered: every block ever inserted,
    /// in insertion order (one log record each). They were validated before they were
    /// logged and the log's hash chain vouches for them, so signatures are not checked
    /// again; linkage is.
    pub fn recover(genesis: Block, rules: ChainRules, recovery: &Recovery) -> Result<Self, ChainRecoveryError> {
        let mut chain = Self::new(genesis, rules);
        for record in &recovery.records {
            let block = Block::decode(&record.payload, &chain.limits)
                .map_err(|_| ChainRecoveryError::Undecodable { seq: record.seq })?;
            chain.insert_unchecked(block).map_err(|reason| ChainRecoveryError::Invalid { seq: record.seq, reason })?;
        }
        chain.unpersisted.clear();
        Ok(chain)
    }

    /// Validates `block` against its parent and the rules, stores it and applies fork
    /// choice. The block is queued for [`Chain::persist`].
    pub fn insert(&mut self, block: Block, now_ms: u64) -> Result<InsertOutcome, BlockError> {
        let id = block.id();
        if self.blocks.contains_key(&id) {
            return Ok(InsertOutcome::Duplicate);
        }
        let parent = self.parent_of(&block)?;
        validate_block(&parent.header, &block, now_ms, &self.rules)?;
        Ok(self.store(id, block))
    }

    fn insert_unchecked(&mut self, block: Block) -> Result<InsertOutcome, BlockError> {
        let id = block.id();
        if self.blocks.contains_key(&id) {
            return Ok(InsertOutcome::Duplicate);
        }
        let parent = self.parent_of(&block)?;
        if block.header.height != parent.header.height + 1 {
            let expected = parent.header.height + 1;
            return Err(BlockError::WrongHeight { expected, found: block.header.height });
        }
        Ok(self.store(id, block))
    }

    fn parent_of(&self, block: &Block) -> Result<&Block, BlockError> {
        let prev_id = block.header.prev_id;
        self.blocks.get(&prev_id).ok_or(BlockError::UnknownParent { prev_id })
    }

    fn store(&mut self, id: BlockId, block: Block) -> InsertOutcome {
        let (height, prev_id) = (block.header.height, block.header.prev_id);
        self.unpersisted.push(block.to_bytes());
        self.blocks.insert(id, block);
        let (tip_height, tip_id) = (self.tip_height(), *self.main.last().expect("genesis"));
        if height == tip_height + 1 && prev_id == tip_id {
            self.main.push(id);
            self.main_index.insert(id, height);
            return InsertOutcome::Extended;
        }
        let wins = height > tip_height || (height == tip_height && id < tip_id);
        if !wins {
            return InsertOutcome::SideBranch;
        }
        InsertOutcome::Reorganized { fork_height: self.switch_to(id) }
    }

    /// Makes `tip` the head: walks back to the main chain, then swaps the branch in.
    fn switch_to(&mut self, tip: BlockId) -> u64 {
        let mut branch = Vec::new();
        let mut cursor = tip;
        while !self.main_index.contains_key(&cursor) {
            branch.push(cursor);
            cursor = self.blocks[&cursor].header.prev_id;
        }
        let fork_height = self.main_index[&cursor];
        for dropped in self.main.drain(fork_height as usize + 1..) {
            self.main_index.remove(&dropped);
        }
        for id in branch.into_iter().rev() {
            self.main_index.insert(id, self.main.len() as u64);
            self.main.push(id);
        }
        fork_height
    }

    /// Appends the blocks inserted since the last call to `log` (one group-committed
    /// batch); they are durable when this returns.
    pub fn persist(&mut self, log: &Log) -> Result<(), StorageError> {
        if self.unpersisted.is_empty() {
            return Ok(());
        }
        let payloads: Vec<&[u8]> = self.unpersisted.iter().map(Vec::as_slice).collect();
        log.append_batch(&payloads)?;
        self.unpersisted.clear();
        Ok(())
    }

    /// The head block.
    pub fn head(&self) -> &Block {
        &self.blocks[self.main.last().expect("genesis")]
    }

    /// A known block by id (main chain or not).
    pub fn block(&self, id: &BlockId) -> Option<&Block> {
        self.blocks.get(id)
    }

    /// The main-chain block at `height`.
    pub fn block_by_height(&self, height: u64) -> Option<&Block> {
        self.main.get(height as usize).map(|id| &self.blocks[id])
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: &BlockId) -> bool {
        self.blocks.contains_key(id)
    }

    /// Blocks known, on every branch.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Never true: genesis is always there.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The rules blocks are checked against.
    pub fn rules(&self) -> &ChainRules {
        &self.rules
    }

    /// The decoding bounds.
    pub fn limits(&self) -> &BlockLimits {
        &self.limits
    }
}

impl ChainStore for Chain {
    fn tip_height(&self) -> u64 {
        self.main.len() as u64 - 1
    }

    fn id_at(&self, height: u64) -> Option<BlockId> {
        self.main.get(height as usize).copied()
    }

    fn main_height_of(&self, id: &BlockId) -> Option<u64> {
        self.main_index.get(id).copied()
    }
}

impl BlockSource for Chain {
    fn header_at(&self, height: u64) -> Option<BlockHeader> {
        self.block_by_height(height).map(|b| b.header)
    }

    fn block_at(&self, height: u64) -> Option<Block> {
        self.block_by_height(height).cloned()
    }
}

/// Why a chain could not be rebuilt from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainRecoveryError {
    /// A record is not a block.
    Undecodable {
        /// The record.
        seq: u64,
    },
    /// A record's block does not fit the chain.
    Invalid {
        /// The record.
        seq: u64,
        /// Why.
        reason: BlockError,
    },
}

impl std::fmt::Display for ChainRecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Undecodable { seq } => write!(f, "log record {seq} is not a block"),
            Self::Invalid { seq, reason } => write!(f, "log record {seq}: {reason}"),
        }
    }
}

impl std::error::Error for ChainRecoveryError {}
