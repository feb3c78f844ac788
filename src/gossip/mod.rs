//! Dissemination: Plumtree broadcast trees (Leitão, Pereira, Rodrigues 2007, "Epidemic
//! Broadcast Trees") over HyParView partial views (Leitão, Pereira, Rodrigues 2007,
//! "HyParView: a membership protocol for reliable gossip-based broadcast"). Sans-IO:
//! the host delivers frames and time; randomness comes from a seeded generator.

pub mod config;
pub mod hyparview;
pub mod message;
pub mod node;
pub mod plumtree;

pub use config::{Dissemination, GossipConfig};
pub use message::{GossipError, GossipMessage, MessageId};
pub use node::{BroadcastError, Gossip, GossipEvent, GossipStats, Refused};
