//! The engine: the runtime that drives the sans-IO node core with real threads, real
//! sockets and io_uring (DESIGN.md §2).
//!
//! - [`io`]: the IO backends (io_uring, mio) behind one interface, with the fallback;
//! - [`driver`]: the control shard's loop, and [`control`] the state it drives: a
//!   [`crate::node::NodeCore`] over authenticated sessions, with [`dialer`] re-dialling;
//! - [`commands`]: the queues between host threads and the engine;
//! - [`shard_pool`]: the node's pinned shard threads, which hash and insert received
//!   batches next to the control thread;
//! - [`shard_runner`]: per-shard work on scoped pinned threads (the state benchmark);
//! - [`metrics`]: the engine's counters.

pub mod commands;
pub mod control;
pub mod dialer;
pub mod driver;
pub mod io;
pub mod metrics;
pub mod peer_link;
pub mod shard_pool;
pub mod shard_runner;

pub use shard_runner::pin_to_core;
