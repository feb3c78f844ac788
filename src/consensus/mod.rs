//! Strong categories: writes replicated through a Raft group of configured voters
//! (issue 8, docs/adr/070-strong-consistency.md), on tikv's raft-rs, which is sans-IO.
//!
//! - [`group`]: [`RaftGroup`], one member of one category's group, in the house shape;
//! - [`storage`]: the Raft log in memory and its journal (durable records, images);
//! - [`command`]: the entries' commands and the state they build ([`Registers`]);
//! - [`codec`]: raft messages on the wire, bounded and guarded;
//! The groups inside the node (the `Raft` channel, the replica mirror) are the node's
//! strong role (src/node/strong.rs): consensus knows nothing of the node.
//!
//! - [`checker`]: a linearizability checker for register histories (Wing & Gong, Lowe);
//! - [`sim`]: a deterministic cluster of groups with virtual time, loss, partitions,
//!   crashes and restarts, recording client histories for the checker.

pub mod checker;
pub mod codec;
pub mod command;
pub mod group;
pub mod sim;
pub mod storage;

pub use checker::{check_registers, CheckResult, Op, OpKind};
pub use codec::MessageFault;
pub use command::{Command, Registers};
pub use group::{GroupConfig, GroupError, GroupEvent, GroupStats, Outcome, RaftGroup, Refusal, Ticket};
pub use storage::{GroupStorage, Journal, MemJournal, Recovered};
