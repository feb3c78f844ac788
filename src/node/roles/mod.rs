//! The roles of a node beside its core: network time ([`TimeRole`]) and the chain
//! ([`ChainRole`]), each behind the [`Role`] interface, with the jump-proof elapsed
//! clock ([`LocalClock`]) they share; the address book ([`Addresses`]) through
//! which a node learns where its peers listen; and the overlay ([`overlay::Overlay`]:
//! HyParView's views, Plumtree's broadcasts).

pub mod addresses;
pub mod chain;
pub mod local_clock;
pub mod overlay;
pub mod role;
pub mod time;

pub use addresses::Addresses;
pub use chain::{ChainMessage, ChainRole};
pub use local_clock::LocalClock;
pub use role::{Fault, Role};
pub use time::{TimeConfig, TimeRole};
