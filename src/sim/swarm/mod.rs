//! The whole-node swarm (issue 9, ADR 080), after TigerBeetle's VOPR: each seed draws
//! a cluster of 1 to 9 nodes, a category mix (eventual, CRDT counters, strong, chain),
//! a workload and a fault mix ("swarm testing": each fault kind on or off per seed),
//! drives complete sans-IO nodes (the node core with its strong groups, durability on
//! a simulated disk, SWIM membership, the chain, network time) through a safety phase
//! with faults and a liveness phase without, and checks the invariants continuously
//! and at the end. A failing seed prints its plan, the last notable events and the
//! command that replays it.

pub mod byzantine;
pub mod envelope;
pub mod model;
pub mod node;
pub mod plan;
pub mod run;
pub mod summary;
pub mod world;

pub use plan::Plan;
pub use run::{run_seed, SeedReport, SwarmFailure};
pub use summary::{run_seeds, SwarmSummary};
