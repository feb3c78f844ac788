//! The interface between a driver (the engine, the simulator) and a protocol: a sans-IO
//! state machine in the style of quinn-proto (DESIGN.md §2). Inputs are `handle_*` calls that take the
//! current time; outputs are drained with `poll_*`.

use crate::state::NodeId;

/// A protocol state machine the simulator (or the engine) can drive. Time is in
/// milliseconds of the driver's clock; the process never reads a clock of its own.
pub trait Process {
    /// What the process reports to its host (a member died, a broadcast arrived, …).
    type Event;

    /// A frame arrived from `from`.
    fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]);

    /// The deadline last returned by [`Process::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now_ms: u64);

    /// The next frame to send, and to whom.
    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)>;

    /// The earliest time at which [`Process::handle_timeout`] must be called.
    fn poll_timeout(&self) -> Option<u64>;

    /// The next event for the host.
    fn poll_event(&mut self) -> Option<Self::Event>;
}
