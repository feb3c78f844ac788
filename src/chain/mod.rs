//! Chain mode: hash-chained blocks of transactions, validated, stored and synced from
//! peers (DESIGN.md "chain", issue 7, docs/adr/041-chain.md).
//!
//! - [`block`]: blocks (height, previous id, transactions' Merkle root, timestamp,
//!   proposer, Ed25519 signature) and their bounded codec;
//! - [`merkle`]: the transactions' root (RFC 6962-style domain-separated BLAKE3);
//! - [`validate`]: checks against the parent, with the reason for a rejection;
//! - [`store`]: [`Chain`] (blocks by id, main chain by height, fork choice,
//!   persistence through [`crate::storage::Log`]) and the [`ChainStore`] trait;
//! - [`locator`]: block locators, the common ancestor in one round trip;
//! - [`message`]: GetHeaders / Headers / GetBlocks / Blocks and their codec;
//! - [`sync`]: the responder and the requesting [`SyncSession`] (sans-IO);
//! - [`score`]: misbehaviour scores.

pub mod block;
pub mod locator;
pub mod merkle;
pub mod message;
pub mod score;
pub mod store;
pub mod sync;
pub mod validate;

#[cfg(test)]
mod tests;

pub use block::{Block, BlockDecodeError, BlockHeader, BlockId, BlockLimits};
pub use locator::{block_locator, find_common_ancestor, locator_heights, LocatorError, LOCATOR_LEN_MAX};
pub use message::{MessageError, SyncMessage};
pub use score::{Misbehaviour, PeerScores, BAN_SCORE};
pub use store::{BlockSource, Chain, ChainRecoveryError, ChainStore, InsertOutcome};
pub use sync::{respond, SyncConfig, SyncEvent, SyncSession};
pub use validate::{validate_block, validate_header, BlockError, ChainRules};
