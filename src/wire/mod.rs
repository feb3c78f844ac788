//! The wire: how two nodes talk over TCP, sans-IO (DESIGN.md §5). Bytes in, bytes out;
//! the engine owns the sockets.
//!
//! - [`frame`]: the fixed `#[repr(C)]` frame header (bytemuck), bounded lengths, payloads
//!   borrowed from the receive buffer;
//! - [`identity`]: the node's static X25519 key pair (NodeId = public key), stored 0600;
//! - [`handshake`]: the Hello each end sends in the Noise XX handshake, and negotiation
//!   of protocol version, features and frame limit;
//! - [`session`]: one authenticated session per connection (snow, Noise XX), with an
//!   optional plaintext transport that both ends must ask for;
//! - [`limits`]: token buckets, misbehaviour score, peer slots, handshake limiter.
//!
//! Decisions are recorded in `docs/adr/031-wire-and-sessions.md`.

pub mod config;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod identity;
pub mod limits;
pub mod session;

pub use config::WireConfig;
pub use error::WireError;
pub use frame::{
    decode_frame, encode_frame, Frame, FrameError, FrameHeader, FrameKind, GoAwayReason, DEFAULT_MAX_FRAME_LEN,
    HARD_MAX_FRAME_LEN, HEADER_LEN,
};
pub use handshake::{Features, Hello, Negotiated, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
pub use identity::{Identity, IdentityError};
pub use limits::{HandshakeLimiter, LimitsConfig, Misbehaviour, Offence, PeerLimits, PeerSlots, TokenBucket, Verdict};
pub use session::{Session, SessionEvent};
