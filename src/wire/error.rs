//! The errors of a session. Each one ends the session: the engine closes the connection,
//! and may count it as misbehaviour (see [`super::limits::Offence`]).

use super::frame::FrameError;
use crate::state::NodeId;
use std::fmt;

/// Why a session failed or refused an operation.
#[derive(Debug)]
pub enum WireError {
    /// The configuration is unusable (say which field and why).
    Config(&'static str),
    /// A frame in the decrypted stream is invalid.
    Frame(FrameError),
    /// A handshake message announces more than the handshake allows, or the handshake
    /// has taken more bytes than it may.
    HandshakeTooLarge,
    /// The Noise handshake failed (garbage, a wrong prologue, a tampered message).
    Handshake(snow::Error),
    /// The peer's Hello is malformed.
    BadHello(&'static str),
    /// The peer's protocol versions do not overlap ours.
    NoCommonVersion {
        /// Our supported range (min, max).
        ours: (u16, u16),
        /// The peer's supported range (min, max).
        theirs: (u16, u16),
    },
    /// One end wants a plaintext transport and the other does not: refused, so a
    /// benchmark never believes it measures plaintext while it measures encryption, and a
    /// node that requires encryption never falls back to plaintext.
    TransportMismatch {
        /// Whether we asked for plaintext.
        ours_plaintext: bool,
    },
    /// The peer's static key is not in our allowlist.
    NotAllowed(NodeId),
    /// The peer presented our own static key: we dialled ourselves.
    SelfConnection,
    /// We dialled one NodeId and another answered.
    UnexpectedPeer {
        /// The NodeId we dialled.
        expected: NodeId,
        /// The NodeId that answered.
        got: NodeId,
    },
    /// A transport message failed to authenticate or decrypt (tampering or corruption).
    Decrypt,
    /// A transport message's length prefix is impossible (shorter than the tag).
    BadMessageLength(u16),
    /// The caller handed in more bytes than [`super::Session::receive_capacity`] allowed:
    /// frames must be drained with `next_frame` between reads.
    ReceiveBufferFull,
    /// Frames can be sent only once the session is established.
    NotEstablished,
    /// The session failed earlier; it accepts nothing more.
    Closed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Config(why) => write!(f, "wire configuration: {why}"),
            WireError::Frame(e) => write!(f, "{e}"),
            WireError::HandshakeTooLarge => f.write_str("handshake exceeds its size bound"),
            WireError::Handshake(e) => write!(f, "noise handshake failed: {e}"),
            WireError::BadHello(why) => write!(f, "malformed hello: {why}"),
            WireError::NoCommonVersion { ours, theirs } => write!(
                f,
                "no common protocol version: we speak {}..={}, the peer {}..={}",
                ours.0, ours.1, theirs.0, theirs.1
            ),
            WireError::TransportMismatch { ours_plaintext: true } => {
                f.write_str("we require a plaintext transport and the peer does not allow it")
            }
            WireError::TransportMismatch { ours_plaintext: false } => {
                f.write_str("the peer requires a plaintext transport and we require encryption")
            }
            WireError::NotAllowed(peer) => write!(f, "peer {peer} is not in the allowlist"),
            WireError::SelfConnection => f.write_str("the peer presented our own static key (self-connection)"),
            WireError::UnexpectedPeer { expected, got } => write!(f, "dialled {expected}, but {got} answered"),
            WireError::Decrypt => f.write_str("transport message failed to authenticate"),
            WireError::BadMessageLength(len) => write!(f, "transport message length {len} is shorter than its tag"),
            WireError::ReceiveBufferFull => {
                f.write_str("receive buffer full: drain frames before handing in more bytes")
            }
            WireError::NotEstablished => f.write_str("session not established"),
            WireError::Closed => f.write_str("session closed after an earlier error"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<FrameError> for WireError {
    fn from(e: FrameError) -> Self {
        WireError::Frame(e)
    }
}
