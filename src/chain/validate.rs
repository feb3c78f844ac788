//! Block validation against its parent, with the reason for a rejection.

use std::collections::BTreeSet;
use std::fmt;

use super::block::{Block, BlockHeader, BlockId};
use super::merkle::transactions_root;
use crate::state::NodeId;

/// The rules a block must follow besides connecting to its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRules {
    /// How far ahead of the local clock a timestamp may be (15 s: a guess at the
    /// network-time error bound after `time::network_time` filtering, plus margin).
    pub future_drift_ms_max: u64,
    /// Proposers allowed to sign blocks; `None` accepts any key.
    pub proposers: Option<BTreeSet<NodeId>>,
}

impl Default for ChainRules {
    fn default() -> Self {
        Self { future_drift_ms_max: 15_000, proposers: None }
    }
}

/// Why a block was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// Its parent is not known here (it does not connect).
    UnknownParent {
        /// The id it names as parent.
        prev_id: BlockId,
    },
    /// Its height is not its parent's plus one.
    WrongHeight {
        /// Parent height + 1.
        expected: u64,
        /// Its height.
        found: u64,
    },
    /// Its transactions do not hash to the header's root.
    BadTransactionRoot,
    /// The signature is not the proposer's over the block id.
    BadSignature,
    /// The proposer is not allowed to sign blocks.
    UnknownProposer {
        /// The proposer.
        proposer: NodeId,
    },
    /// The timestamp is before the parent's.
    TimestampBeforeParent,
    /// The timestamp is further in the future than the rules allow.
    TimestampInFuture,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownParent { prev_id } => write!(f, "does not connect: parent {} unknown", short(prev_id)),
            Self::WrongHeight { expected, found } => write!(f, "height {found}, expected {expected}"),
            Self::BadTransactionRoot => write!(f, "transactions do not match the header's Merkle root"),
            Self::BadSignature => write!(f, "bad proposer signature"),
            Self::UnknownProposer { proposer } => write!(f, "proposer {} not allowed", proposer.short()),
            Self::TimestampBeforeParent => write!(f, "timestamp before the parent's"),
            Self::TimestampInFuture => write!(f, "timestamp too far in the future"),
        }
    }
}

impl std::error::Error for BlockError {}

fn short(id: &BlockId) -> String {
    crate::state::node_id::hex(&id[..8])
}

/// Checks the header alone against its parent (linkage, height, time, proposer,
/// signature): what headers-first sync can check before the body arrives.
pub fn validate_header(
    parent: &BlockHeader,
    header: &BlockHeader,
    now_ms: u64,
    rules: &ChainRules,
) -> Result<(), BlockError> {
    if header.prev_id != parent.id() {
        return Err(BlockError::UnknownParent { prev_id: header.prev_id });
    }
    if header.height != parent.height + 1 {
        return Err(BlockError::WrongHeight { expected: parent.height + 1, found: header.height });
    }
    if header.timestamp_ms < parent.timestamp_ms {
        return Err(BlockError::TimestampBeforeParent);
    }
    if header.timestamp_ms > now_ms.saturating_add(rules.future_drift_ms_max) {
        return Err(BlockError::TimestampInFuture);
    }
    if rules.proposers.as_ref().is_some_and(|allowed| !allowed.contains(&header.proposer_id())) {
        return Err(BlockError::UnknownProposer { proposer: header.proposer_id() });
    }
    // Last: the most expensive check.
    if !header.signature_valid() {
        return Err(BlockError::BadSignature);
    }
    Ok(())
}

/// Checks a whole block against its parent.
pub fn validate_block(parent: &BlockHeader, block: &Block, now_ms: u64, rules: &ChainRules) -> Result<(), BlockError> {
    if transactions_root(&block.transactions) != block.header.tx_root {
        return Err(BlockError::BadTransactionRoot);
    }
    validate_header(parent, &block.header, now_ms, rules)
}
