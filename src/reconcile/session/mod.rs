//! Reconciliation sessions: one [`Initiator`] and one [`Responder`] per peer and
//! category, sans-IO in the manner of quinn-proto: `handle_frame(now, bytes, state)`
//! consumes a frame, `poll_transmit()` yields frames to send, `poll_timeout()` and
//! `handle_timeout(now)` drive retransmission, and the report says what happened.
//!
//! The exchange (initiator A, responder B):
//!
//! ```text
//! 1  A → B  Hello(root, count)             B → A  Equal | Estimate(root, counters)
//! 2  A → B  Symbols(first m coded symbols) B → A  More(m') | Decoded(…) + Items
//! 3  A → B  Transfer(request) + Items      B → A  Finished(root) + Items
//! ```
//!
//! Both sides know the difference after round trip 2; round trip 3 carries the entries
//! A sends and the newer versions A asked for, and is skipped when there are none.
//! Frames may be lost, duplicated or reordered: A retransmits its current request after
//! a timeout, B answers a repeated request from a cache, and every frame names its
//! session and request, so stale frames are ignored.

mod initiator;
mod responder;
mod scope;

pub use initiator::Initiator;
pub use responder::Responder;

use std::fmt;

use super::message::{entry_wire_len, Message, MessageError, HEADER_LEN};
use crate::state::{Entry, StateError, MAX_KEY_LEN, MAX_VALUE_LEN};

/// Limits and tuning of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The largest frame sent or accepted, in bytes. At least one largest entry.
    pub max_frame_len: usize,
    /// Retransmit the current request when no complete answer came in this long.
    pub retransmit_after_ms: u64,
    /// Give up after this many retransmissions of one request.
    pub max_retransmits: u32,
    /// Coded symbols the rateless IBLT needs per difference: about 1.38 measured at
    /// d = 1,000 (1.36 at 10,000; more for tiny differences, which `extra_symbols` covers).
    pub symbols_per_difference: f64,
    /// Standard deviations of the difference estimate (18% each) added as margin while
    /// the estimate is at most `small_difference`, where a short prefix that fails to
    /// decode would cost a third round trip.
    pub margin_small: f64,
    /// The margin above `small_difference`, where extra round trips are cheaper than
    /// extra symbols.
    pub margin_large: f64,
    /// The estimate up to which `margin_small` applies.
    pub small_difference: f64,
    /// Coded symbols always sent on top of the estimate (small differences peel less
    /// efficiently).
    pub extra_symbols: u32,
    /// Coded symbols each side maintains (bounds the largest difference resolved).
    pub sketch_capacity: usize,
    /// Frames held while waiting for the message that makes them checkable.
    pub max_buffered_frames: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_len: 2 << 20,
            retransmit_after_ms: 500,
            max_retransmits: 8,
            symbols_per_difference: 1.38,
            margin_small: 2.0,
            margin_large: 1.0,
            small_difference: 1_500.0,
            extra_symbols: 12,
            sketch_capacity: 1 << 16,
            max_buffered_frames: 256,
        }
    }
}

impl SessionConfig {
    /// How many coded symbols to send for an estimated difference of `estimate`.
    pub fn symbols_for(&self, estimate: f64) -> u32 {
        const ESTIMATOR_DEVIATION: f64 = 0.177; // sqrt(2 / 64 counters)
        let margin = if estimate <= self.small_difference { self.margin_small } else { self.margin_large };
        let symbols = self.symbols_per_difference * estimate * (1.0 + margin * ESTIMATOR_DEVIATION);
        (symbols.ceil() + self.extra_symbols as f64).min(u32::MAX as f64) as u32
    }

    fn check(&self) -> Result<(), SessionError> {
        let largest_entry = MAX_KEY_LEN + MAX_VALUE_LEN + 128;
        if self.max_frame_len < HEADER_LEN + largest_entry || self.sketch_capacity == 0 {
            return Err(SessionError::InvalidConfig("max_frame_len must hold the largest entry; sketch_capacity > 0"));
        }
        Ok(())
    }
}

/// Why a session ended without reconciling.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SessionError {
    /// The configuration cannot work.
    InvalidConfig(&'static str),
    /// A frame did not decode.
    Malformed(MessageError),
    /// A message arrived that the protocol does not allow at this point.
    Unexpected(&'static str),
    /// The peer is reconciling another category.
    CategoryMismatch,
    /// The peer sent an entry nobody advertised.
    UnadvertisedItem,
    /// The peer sent an entry that does not match what was advertised for it.
    DigestMismatch,
    /// The peer stopped answering.
    PeerUnresponsive,
    /// The difference is larger than the sketches can resolve.
    SketchExhausted {
        /// The symbols compared before giving up.
        symbols: u32,
    },
    /// The responder refused the session.
    Refused,
    /// Too many frames arrived ahead of the message that makes them checkable.
    TooManyBufferedFrames,
    /// Applying entries failed.
    State(StateError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::InvalidConfig(why) => write!(f, "invalid session configuration: {why}"),
            SessionError::Malformed(error) => write!(f, "malformed frame from peer: {error}"),
            SessionError::Unexpected(what) => write!(f, "peer broke the protocol: {what}"),
            SessionError::CategoryMismatch => write!(f, "peer is reconciling another category"),
            SessionError::UnadvertisedItem => write!(f, "peer sent an entry that was never advertised"),
            SessionError::DigestMismatch => write!(f, "peer sent an entry that does not match its advertised digest"),
            SessionError::PeerUnresponsive => write!(f, "peer stopped answering"),
            SessionError::SketchExhausted { symbols } => write!(
                f,
                "difference too large for the sketch ({symbols} symbols did not decode): raise sketch_capacity"
            ),
            SessionError::TooManyBufferedFrames => write!(f, "peer sent too many frames out of order"),
            SessionError::Refused => write!(f, "peer refused the session (another category, or a protocol error on its side)"),
            SessionError::State(error) => write!(f, "could not apply entries: {error}"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<MessageError> for SessionError {
    fn from(error: MessageError) -> Self {
        SessionError::Malformed(error)
    }
}

impl From<StateError> for SessionError {
    fn from(error: StateError) -> Self {
        SessionError::State(error)
    }
}

/// How a finished session left the two states.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The roots were equal from the start.
    Equal,
    /// The difference was exchanged and the roots now agree.
    Converged,
    /// The exchange finished but the roots still differ, with the reason.
    StillDifferent(String),
}

/// What a session did, for metrics and for the benchmark.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SessionReport {
    /// How it ended, once it has.
    pub outcome: Option<Outcome>,
    /// Requests the initiator made (each one round trip).
    pub round_trips: u32,
    /// Round trips until both sides knew the difference.
    pub round_trips_to_difference: u32,
    /// Bytes in both directions until both sides knew the difference (entry frames
    /// excluded).
    pub bytes_to_difference: u64,
    /// Size of the symmetric difference, in entry versions.
    pub difference: u64,
    /// Bytes sent, all frames.
    pub bytes_sent: u64,
    /// Bytes received, all frames.
    pub bytes_received: u64,
    /// Entries sent.
    pub items_sent: u64,
    /// Entries received and validated.
    pub items_received: u64,
    /// Entries stored (the others lost last-writer-wins).
    pub items_applied: u64,
    /// Requests retransmitted.
    pub retransmits: u32,
}

/// Splits `entries` into `Items` frames under the frame cap.
fn item_frames(entries: &[Entry], session: u32, seq: u32, max_frame_len: usize) -> Vec<Vec<u8>> {
    let budget = max_frame_len - HEADER_LEN - 24;
    let mut frames = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut size = 0;
        while end < entries.len() && (end == start || size + entry_wire_len(&entries[end]) <= budget) {
            size += entry_wire_len(&entries[end]);
            end += 1;
        }
        let mut frame = Vec::with_capacity(size + HEADER_LEN + 24);
        Message::Items { part: frames.len() as u32, entries: entries[start..end].to_vec() }.encode(session, seq, &mut frame);
        frames.push(frame);
        start = end;
    }
    frames
}

/// Tracks which `Items` parts of one response or request have arrived.
#[derive(Default)]
struct PartTracker {
    expected: Option<u32>,
    seen: std::collections::BTreeSet<u32>,
}

impl PartTracker {
    /// Records a part; `false` when it was already seen (a duplicate).
    fn record(&mut self, part: u32) -> bool {
        self.seen.insert(part)
    }

    fn complete(&self) -> bool {
        self.expected.is_some_and(|expected| self.seen.len() as u32 == expected)
    }
}
