//! The whole-node swarm (issue 9), after TigerBeetle's VOPR: each seed draws a
//! cluster, a category mix, a workload and a fault mix, drives complete sans-IO nodes
//! (node core with its strong groups, durability on a simulated disk, membership, the
//! chain, network time) through a safety phase with faults and a liveness phase
//! without, and checks the invariants continuously and at the end.

pub mod chain_role;
pub mod local_clock;
pub mod role;
pub mod time_role;

pub use role::{Fault, Role};
