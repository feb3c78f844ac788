//! The deterministic simulator (DESIGN.md §2, after TigerBeetle's VOPR): virtual time,
//! a seeded generator, thousands of sans-IO nodes in one process over a network model
//! with latency, loss, duplication, reordering, partitions, crashes and restarts, and
//! per-node clock offset and drift. One seed gives one run: the trace hash of two runs
//! of a seed is equal, and a failing run prints the command that replays it.
//!
//! Protocols plug in through [`Process`] and draw from a [`SeededRng`], both from the
//! neutral [`crate::sansio`] module.

pub mod baseline;
pub mod disk;
pub mod gossip_scenarios;
pub mod membership_scenarios;
pub mod network;
pub mod simulator;
pub mod swarm;

pub use disk::{DiskFaultStats, DiskFaults, SimDisk};
pub use network::{ClockModel, Fate, LinkProfile, Network};
pub use crate::sansio::{Process, SeededRng};
pub use simulator::{NetworkStats, SimFailure, Simulator};

/// A node id for simulated node `index`: the index in the first four bytes, the rest
/// fixed, so ids are distinct, stable across runs and readable in traces.
pub fn sim_node_id(index: u32) -> crate::state::NodeId {
    let mut bytes = [0xB5u8; 32];
    bytes[..4].copy_from_slice(&index.to_be_bytes());
    crate::state::NodeId(bytes)
}
