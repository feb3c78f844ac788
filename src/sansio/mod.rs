//! Plumbing shared by every sans-IO state machine (DESIGN.md §2): the seeded
//! generator that replaces ambient randomness, and the [`Process`] trait through which
//! a driver — the engine with real sockets, or the simulator with virtual ones — feeds
//! a protocol its inputs and drains its outputs.
//!
//! It lives apart from [`crate::sim`] so that protocol code depends on this neutral
//! module only, never on the simulator, the node or the engine.

pub mod process;
pub mod rng;

pub use process::Process;
pub use rng::SeededRng;
