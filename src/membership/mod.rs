//! Membership and failure detection: SWIM (Das, Gupta, Motivala 2002) with Lifeguard
//! (Dadgar, Phillips, Currey 2018), partition detection and the write policy on the
//! minority side. Sans-IO: the host (engine or simulator) delivers frames and time.

pub mod config;
pub mod message;
pub mod partition;
pub mod piggyback;
pub mod swim;

pub use config::SwimConfig;
pub use message::{MemberState, Message, MessageError, Update};
pub use partition::{PartitionChange, PartitionDetector};
pub use swim::{Member, MembershipEvent, Swim, SwimStats};
