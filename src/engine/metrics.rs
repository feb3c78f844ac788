//! The engine's counters: what the network layer saw, including every kind of bad input,
//! so that an operator (and the tests) can tell a garbage sender from a slowloris client
//! from a handshake flood.

use crate::engine::io::IoStats;

/// Counters of one running node's engine. Monotonic since the node opened.
#[derive(Clone, Debug, Default)]
pub struct EngineMetrics {
    /// The IO backend's own figures (kind in use, fallback reason, probe, syscalls).
    pub io: Option<IoStats>,
    /// Connections accepted.
    pub accepted: u64,
    /// Outgoing dials started.
    pub dials: u64,
    /// Outgoing dials that failed.
    pub dial_failures: u64,
    /// Links closed because the node no longer needed them (outside its overlay's
    /// active view and quiet).
    pub links_closed_unneeded: u64,
    /// Handshakes completed.
    pub handshakes_completed: u64,
    /// Handshakes that failed (garbage, bad crypto, version mismatch).
    pub handshakes_failed: u64,
    /// Peers refused because their key is not in the allowlist.
    pub refused_allowlist: u64,
    /// Connections refused because `max_peers` were connected.
    pub refused_max_peers: u64,
    /// Connections refused because their source exceeded the handshake rate.
    pub refused_handshake_rate: u64,
    /// Connections closed because the handshake did not finish in time (slowloris).
    pub handshake_timeouts: u64,
    /// Established links closed because nothing arrived for the idle timeout.
    pub idle_timeouts: u64,
    /// Frames that did not decode or exceeded the frame bound, after the handshake.
    pub bad_frames: u64,
    /// Peer faults reported by the node core (invalid items, digest mismatches, …).
    pub peer_faults: u64,
    /// Peers disconnected for misbehaviour.
    pub disconnected_misbehaviour: u64,
    /// Peers disconnected because they did not read what we sent.
    pub disconnected_slow: u64,
    /// Duplicate links between the same two nodes closed.
    pub duplicate_links: u64,
    /// Frames received / sent.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received / sent on sockets (ciphertext).
    pub bytes_in: u64,
    /// Bytes sent on sockets.
    pub bytes_out: u64,
    /// Peers connected now.
    pub peers_connected: u64,
    /// Events dropped because the host did not poll.
    pub events_dropped: u64,
}
