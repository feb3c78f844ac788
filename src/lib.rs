//! bhsync — the synchronization engine of Blackhole nodes.
//!
//! Every node of a Blackhole network must hold the same state as the others: the same
//! data, the same state hashes, the same ordered updates where order matters. bhsync
//! provides the parts that get it there. This crate is organised by the shape described
//! in `DESIGN.md`:
//!
//! - [`state`]: categories, entries and the history-independent, sharded Merkle state
//!   (state hash, state diff, membership proofs, subtree access by path);
//! - [`time`]: version vectors, Lamport and hybrid logical clocks, network time;
//! - [`crdt`]: delta-state CRDTs and per-category conflict resolution;
//! - [`reconcile`]: set reconciliation sessions (rateless IBLT, difference estimation);
//! - [`membership`]: SWIM failure detection with Lifeguard, and partition detection;
//! - [`gossip`]: HyParView partial views and Plumtree broadcast trees;
//! - [`sansio`]: the seeded generator and the process trait every protocol shares;
//! - [`sim`]: the deterministic simulator that drives them with seeded faults;
//! - [`wire`]: frames, identities and Noise-authenticated sessions, sans-IO;
//! - [`node`]: the node core (sans-IO composition of the protocols) and the public
//!   [`node::Node`] handle of a running node;
//! - [`engine`]: the runtime that drives the node core over io_uring or mio sockets;
//! - [`storage`]: the hash-chained, group-committed log with snapshots and recovery;
//! - [`chain`]: hash-chained blocks, validation, fork choice and locator sync;
//! - [`metrics`]: the health report;
//! - [`ffi`]: the stable C ABI declared in `include/bhsync.h`.
//!
//! Protocol and state code is sans-IO: it never touches sockets, threads, clocks or
//! ambient randomness. Time arrives as an argument; threads and sockets live in [`engine`]
//! (and the blocking log in [`storage`]) only.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod chain;
pub mod consensus;
pub mod crdt;
pub mod engine;
pub mod ffi;
pub mod gossip;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod reconcile;
pub mod sansio;
pub mod sim;
pub mod state;
pub mod storage;
pub mod time;
pub mod wire;

pub use state::{
    CategorySpec, CategoryState, Digest, Entry, MembershipProof, NodeId, Replica, StateError,
    Version,
};
