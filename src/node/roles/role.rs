//! One protocol inside the node (DESIGN.md §2): the chain and network time are roles
//! beside the node core and membership. Each role is a sans-IO state machine with its
//! own channel on the shared wire, so the node multiplexes them the way the engine
//! multiplexes frame kinds, and the engine and the swarm drive the very same roles.

use crate::state::NodeId;

/// A protocol fault: the peer sent something an honest peer never sends. The node
/// disconnects the sender (as the engine's misbehaviour score does) and counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault(pub String);

/// A sans-IO protocol role. Time is the node's local clock in milliseconds (it may
/// jump, drift and be skewed; the role must cope). `peers` are the peers the node
/// currently holds sessions with (membership decides), never including the node.
pub trait Role {
    /// A message for this role from `from` (the channel byte already removed).
    fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) -> Result<(), Fault>;

    /// The deadline from [`Role::poll_timeout`] passed (or the node woke for another
    /// reason: roles must tolerate early calls).
    fn handle_timeout(&mut self, now_ms: u64, peers: &[NodeId]);

    /// A session to `peer` went down: forget what is pending with it.
    fn handle_peer_down(&mut self, peer: NodeId);

    /// The next message to send, and to whom.
    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)>;

    /// The earliest local time at which [`Role::handle_timeout`] must be called.
    fn poll_timeout(&self) -> Option<u64>;
}
