//! The node core, sans-IO (DESIGN.md §2): composes the protocols of one node — its
//! replica and merge rules, eager push of new writes, anti-entropy with every connected
//! peer in priority order, whole-category streaming, retries with backoff — behind
//! `handle_*` / `poll_*`. The engine drives it over real sockets, the simulator and
//! the tests with virtual time. Decisions: docs/adr/032-node-core.md.

mod apply;
pub mod backoff;
pub mod config;
mod core;
pub mod durable;
pub mod epoch;
mod handle;
mod inbound;
pub mod links;
pub mod machine;
pub mod message;
mod peer;
pub mod queue;
pub mod roles;
pub mod strong;
mod sync;
pub mod types;

pub use self::core::NodeCore;
pub use crate::engine::control::SyncResult;
pub use backoff::{Backoff, BackoffConfig};
pub use config::{Limits, NodeConfig};
pub use handle::{NetworkTime, Node, NodeMetrics};
pub use strong::{raft_id, StrongAnswer};
pub use machine::{Channel, Durable, Machine, MachineEvent, MachineFault, MachineFigures, MachineSetup};
pub use message::{DecodeError as MessageDecodeError, NodeMessage};
pub use types::{
    CategoryOutcome, CategoryReport, CoreConfig, CoreStats, FinishedSync, NodeError, NodeEvent, PeerFault, SyncError,
    ResourceUsage, SyncId, Transmit,
};
