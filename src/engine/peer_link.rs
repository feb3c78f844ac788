//! One TCP connection as the engine sees it: the socket's id in the backend, the
//! authenticated session running over it, and the limits that keep one peer from taking
//! more than its share (token buckets and a misbehaviour score).

use std::net::SocketAddr;

use crate::engine::io::ConnId;
use crate::state::NodeId;
use crate::wire::{PeerLimits, Session};

/// Which side opened the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// We dialled the peer.
    Outbound,
    /// The peer dialled us.
    Inbound,
}

/// One connection and what the engine knows about it.
pub struct PeerLink {
    /// The backend's id of the socket.
    pub conn: ConnId,
    /// Who opened it.
    pub direction: Direction,
    /// The remote address (for outbound links, the address dialled).
    pub addr: SocketAddr,
    /// The Noise session: handshake, then frames.
    pub session: Session,
    /// The authenticated peer, once the handshake finished.
    pub peer: Option<NodeId>,
    /// When the link was opened (for the handshake timeout).
    pub opened_ms: u64,
    /// When bytes last arrived (for the idle timeout).
    pub last_rx_ms: u64,
    /// When we last sent a Ping.
    pub last_ping_ms: u64,
    /// Token buckets and the misbehaviour score.
    pub limits: PeerLimits,
    /// Set once the link is being closed: no more frames are processed.
    pub closing: bool,
    /// The dial slot that opened this link, for outbound links.
    pub dial_slot: Option<usize>,
}
