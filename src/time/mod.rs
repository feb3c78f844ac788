//! Time and causality. For now: version vectors, which the state vector carries per
//! category. Clocks (Lamport, hybrid logical) and network time join here later.

pub mod version_vector;

pub use version_vector::{Causality, VersionVector};
