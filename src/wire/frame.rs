//! The frame: the unit the engine exchanges with a peer once a session is established.
//!
//! A frame is a fixed 12-byte `#[repr(C)]` header read and written with bytemuck
//! (DESIGN.md §2, "Zero copy") followed by `length` payload bytes:
//!
//! ```text
//! offset  size  field
//! 0       2     magic "BW"
//! 2       1     version (FRAME_VERSION = 1)
//! 3       1     kind (1 Data, 2 Ping, 3 Pong, 4 GoAway)
//! 4       1     flags (bit 0: payload is zstd-compressed; other bits must be 0)
//! 5       3     reserved, must be 0
//! 8       4     payload length, u32 little-endian
//! ```
//!
//! The decoder checks the header before it looks at the payload: a header announcing more
//! than the configured maximum is an error at once, so a peer cannot make us allocate or
//! wait for 4 GiB. Payloads are returned as slices borrowed from the caller's buffer.

use bytemuck::{Pod, Zeroable};
use std::fmt;

/// The length of the fixed frame header in bytes.
pub const HEADER_LEN: usize = std::mem::size_of::<FrameHeader>();
/// The frame format this code reads and writes.
pub const FRAME_VERSION: u8 = 1;
/// The default largest payload a frame may announce (4 MiB).
pub const DEFAULT_MAX_FRAME_LEN: u32 = 4 << 20;
/// The largest payload any configuration may allow (64 MiB): bounds memory per peer.
pub const HARD_MAX_FRAME_LEN: u32 = 64 << 20;
/// The largest payload of a control frame (Ping, Pong, GoAway): they carry a nonce or a
/// reason code and a short text, never data.
pub const MAX_CONTROL_PAYLOAD: usize = 256;
/// Flag bit: the payload is compressed with zstd (only once the ZSTD feature is negotiated).
pub const FLAG_ZSTD: u8 = 1;
const KNOWN_FLAGS: u8 = FLAG_ZSTD;
const MAGIC: [u8; 2] = *b"BW";

/// The fixed header in front of every frame. All fields are byte arrays, so the struct
/// has alignment 1 and can be cast from any position of a receive buffer.
#[derive(Clone, Copy, Pod, Zeroable, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct FrameHeader {
    magic: [u8; 2],
    version: u8,
    kind: u8,
    flags: u8,
    reserved: [u8; 3],
    length: [u8; 4],
}

const _: () = assert!(HEADER_LEN == 12);

/// What a frame carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A node-core payload (pushes, reconciliation, strong groups' Raft messages).
    Data = 1,
    /// A liveness probe; the payload (at most [`MAX_CONTROL_PAYLOAD`]) is echoed in a Pong.
    Ping = 2,
    /// The answer to a Ping, with the Ping's payload.
    Pong = 3,
    /// The sender closes the connection; the payload starts with a u16 LE [`GoAwayReason`].
    GoAway = 4,
    /// A membership (SWIM) message.
    Membership = 5,
    /// A chain sync message.
    Chain = 6,
    /// A network-time message.
    Time = 7,
    /// An address-book message (where peers listen).
    Addresses = 8,
    /// An overlay message (HyParView's views, Plumtree's broadcasts).
    Gossip = 9,
}

impl FrameKind {
    /// The kind for a header byte, if it names one.
    pub fn from_u8(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Data),
            2 => Some(FrameKind::Ping),
            3 => Some(FrameKind::Pong),
            4 => Some(FrameKind::GoAway),
            5 => Some(FrameKind::Membership),
            6 => Some(FrameKind::Chain),
            7 => Some(FrameKind::Time),
            8 => Some(FrameKind::Addresses),
            9 => Some(FrameKind::Gossip),
            _ => None,
        }
    }

    /// Whether this is a control frame, whose payload is bounded by [`MAX_CONTROL_PAYLOAD`].
    pub fn is_control(self) -> bool {
        matches!(self, FrameKind::Ping | FrameKind::Pong | FrameKind::GoAway)
    }
}

/// Why a peer closes the connection, carried by a GoAway frame. Codes not listed here
/// arrive as [`GoAwayReason::Other`], so a newer peer's reasons still decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum GoAwayReason {
    /// An orderly close.
    Normal,
    /// The node shuts down.
    Shutdown,
    /// We received something the protocol forbids.
    ProtocolError,
    /// The peer's misbehaviour score crossed the threshold.
    Misbehaviour,
    /// We have reached the maximum number of peers.
    TooManyPeers,
    /// The peer exceeded a rate limit for too long.
    RateLimited,
    /// Another code.
    Other(u16),
}

impl GoAwayReason {
    /// The code on the wire.
    pub fn code(self) -> u16 {
        match self {
            GoAwayReason::Normal => 0,
            GoAwayReason::Shutdown => 1,
            GoAwayReason::ProtocolError => 2,
            GoAwayReason::Misbehaviour => 3,
            GoAwayReason::TooManyPeers => 4,
            GoAwayReason::RateLimited => 5,
            GoAwayReason::Other(code) => code,
        }
    }

    /// The reason for a code on the wire.
    pub fn from_code(code: u16) -> GoAwayReason {
        match code {
            0 => GoAwayReason::Normal,
            1 => GoAwayReason::Shutdown,
            2 => GoAwayReason::ProtocolError,
            3 => GoAwayReason::Misbehaviour,
            4 => GoAwayReason::TooManyPeers,
            5 => GoAwayReason::RateLimited,
            other => GoAwayReason::Other(other),
        }
    }

    /// The payload of a GoAway frame with this reason.
    pub fn to_payload(self) -> [u8; 2] {
        self.code().to_le_bytes()
    }
}

/// Why bytes are not a valid frame. Every variant means the stream is corrupt or hostile:
/// the engine disconnects (and may record misbehaviour).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// The header does not start with the frame magic.
    BadMagic,
    /// The header names a frame format we do not read.
    UnsupportedVersion(u8),
    /// The header names no known kind.
    UnknownKind(u8),
    /// The header sets flag bits that have no meaning.
    UnknownFlags(u8),
    /// The reserved header bytes are not zero.
    ReservedNotZero,
    /// The header announces a payload longer than allowed.
    TooLong {
        /// The announced payload length.
        len: u32,
        /// The largest length allowed.
        max: u32,
    },
    /// A control frame announces more than [`MAX_CONTROL_PAYLOAD`] bytes.
    ControlTooLong(u32),
    /// A GoAway frame without its two-byte reason code.
    MissingGoAwayReason,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic => f.write_str("frame header: bad magic"),
            FrameError::UnsupportedVersion(v) => write!(f, "frame header: unsupported frame version {v}"),
            FrameError::UnknownKind(k) => write!(f, "frame header: unknown kind {k}"),
            FrameError::UnknownFlags(flags) => write!(f, "frame header: unknown flags {flags:#04x}"),
            FrameError::ReservedNotZero => f.write_str("frame header: reserved bytes are not zero"),
            FrameError::TooLong { len, max } => write!(f, "frame announces {len} bytes, more than the maximum {max}"),
            FrameError::ControlTooLong(len) => write!(f, "control frame announces {len} bytes"),
            FrameError::MissingGoAwayReason => f.write_str("GoAway frame without a reason code"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A decoded frame; the payload borrows the buffer it was decoded from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frame<'a> {
    /// What the frame carries.
    pub kind: FrameKind,
    /// The header flags ([`FLAG_ZSTD`]).
    pub flags: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// The reason of a GoAway frame (None for other kinds).
    pub fn goaway_reason(&self) -> Option<GoAwayReason> {
        if self.kind != FrameKind::GoAway || self.payload.len() < 2 {
            return None;
        }
        Some(GoAwayReason::from_code(u16::from_le_bytes([self.payload[0], self.payload[1]])))
    }

    /// The encoded length of this frame (header and payload).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

impl FrameHeader {
    /// A header for a payload of `len` bytes.
    pub fn new(kind: FrameKind, flags: u8, len: u32) -> FrameHeader {
        FrameHeader {
            magic: MAGIC,
            version: FRAME_VERSION,
            kind: kind as u8,
            flags,
            reserved: [0; 3],
            length: len.to_le_bytes(),
        }
    }

    /// The header as bytes.
    pub fn as_bytes(&self) -> &[u8; HEADER_LEN] {
        bytemuck::cast_ref(self)
    }

    /// The payload length the header announces.
    pub fn payload_len(&self) -> u32 {
        u32::from_le_bytes(self.length)
    }

    /// Reads the header at the start of `bytes` (None if fewer than [`HEADER_LEN`] bytes)
    /// and checks every field against `max_len`, before any payload is looked at.
    pub fn parse(bytes: &[u8], max_len: u32) -> Option<Result<(FrameKind, u8, u32), FrameError>> {
        let head = bytes.get(..HEADER_LEN)?;
        let header: &FrameHeader = bytemuck::from_bytes(head);
        Some(header.validate(max_len))
    }

    fn validate(&self, max_len: u32) -> Result<(FrameKind, u8, u32), FrameError> {
        if self.magic != MAGIC {
            return Err(FrameError::BadMagic);
        }
        if self.version != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion(self.version));
        }
        let kind = FrameKind::from_u8(self.kind).ok_or(FrameError::UnknownKind(self.kind))?;
        if self.flags & !KNOWN_FLAGS != 0 {
            return Err(FrameError::UnknownFlags(self.flags));
        }
        if self.reserved != [0; 3] {
            return Err(FrameError::ReservedNotZero);
        }
        let len = self.payload_len();
        check_len(kind, len, max_len)?;
        Ok((kind, self.flags, len))
    }
}

fn check_len(kind: FrameKind, len: u32, max_len: u32) -> Result<(), FrameError> {
    if len > max_len.min(HARD_MAX_FRAME_LEN) {
        return Err(FrameError::TooLong { len, max: max_len.min(HARD_MAX_FRAME_LEN) });
    }
    if kind.is_control() && len as usize > MAX_CONTROL_PAYLOAD {
        return Err(FrameError::ControlTooLong(len));
    }
    if kind == FrameKind::GoAway && len < 2 {
        return Err(FrameError::MissingGoAwayReason);
    }
    Ok(())
}

/// Appends one frame (header then payload) to `out`. Checks the same bounds as the
/// decoder, so we never send what a peer with the same limit would refuse.
pub fn encode_frame(
    out: &mut Vec<u8>,
    kind: FrameKind,
    flags: u8,
    payload: &[u8],
    max_len: u32,
) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLong { len: u32::MAX, max: max_len })?;
    check_len(kind, len, max_len)?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::UnknownFlags(flags));
    }
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(FrameHeader::new(kind, flags, len).as_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes the frame at the start of `bytes`: `Ok(None)` if more bytes are needed,
/// `Ok(Some((frame, consumed)))` once the whole frame is there, an error as soon as the
/// header is invalid (without waiting for the payload).
pub fn decode_frame(bytes: &[u8], max_len: u32) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(header) = FrameHeader::parse(bytes, max_len) else {
        return Ok(None);
    };
    let (kind, flags, len) = header?;
    let end = HEADER_LEN + len as usize;
    match bytes.get(HEADER_LEN..end) {
        Some(payload) => Ok(Some((Frame { kind, flags, payload }, end))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_frame_round_trips_and_borrows_its_payload() {
        let mut out = Vec::new();
        encode_frame(&mut out, FrameKind::Data, FLAG_ZSTD, b"hello", DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(out.len(), HEADER_LEN + 5);
        let (frame, used) = decode_frame(&out, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(
            (frame.kind, frame.flags, frame.payload, used),
            (FrameKind::Data, FLAG_ZSTD, &b"hello"[..], out.len())
        );
        assert_eq!(frame.payload.as_ptr(), out[HEADER_LEN..].as_ptr(), "payload must be borrowed, not copied");
    }

    #[test]
    fn a_header_announcing_4_gib_is_refused_before_the_payload_arrives() {
        let header = FrameHeader { length: u32::MAX.to_le_bytes(), ..FrameHeader::new(FrameKind::Data, 0, 0) };
        let err = decode_frame(header.as_bytes(), DEFAULT_MAX_FRAME_LEN).unwrap_err();
        assert_eq!(err, FrameError::TooLong { len: u32::MAX, max: DEFAULT_MAX_FRAME_LEN });
    }

    #[test]
    fn the_hard_cap_holds_whatever_the_configuration() {
        let header = FrameHeader::new(FrameKind::Data, 0, HARD_MAX_FRAME_LEN + 1);
        assert!(matches!(decode_frame(header.as_bytes(), u32::MAX), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn every_bad_header_field_has_its_error() {
        let good = FrameHeader::new(FrameKind::Ping, 0, 0);
        let cases: [(FrameHeader, FrameError); 6] = [
            (FrameHeader { magic: *b"XX", ..good }, FrameError::BadMagic),
            (FrameHeader { version: 9, ..good }, FrameError::UnsupportedVersion(9)),
            (FrameHeader { kind: 77, ..good }, FrameError::UnknownKind(77)),
            (FrameHeader { flags: 0x80, ..good }, FrameError::UnknownFlags(0x80)),
            (FrameHeader { reserved: [0, 1, 0], ..good }, FrameError::ReservedNotZero),
            (FrameHeader::new(FrameKind::GoAway, 0, 0), FrameError::MissingGoAwayReason),
        ];
        for (header, expected) in cases {
            assert_eq!(decode_frame(header.as_bytes(), 1024), Err(expected), "{header:?}");
        }
        let big_ping = FrameHeader::new(FrameKind::Ping, 0, 1000);
        assert_eq!(decode_frame(big_ping.as_bytes(), 4096), Err(FrameError::ControlTooLong(1000)));
    }

    #[test]
    fn an_incomplete_frame_asks_for_more_bytes() {
        let mut out = Vec::new();
        encode_frame(&mut out, FrameKind::Data, 0, &[7; 100], 1024).unwrap();
        for cut in 0..out.len() {
            assert_eq!(decode_frame(&out[..cut], 1024), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn goaway_carries_its_reason() {
        let mut out = Vec::new();
        encode_frame(&mut out, FrameKind::GoAway, 0, &GoAwayReason::TooManyPeers.to_payload(), 1024).unwrap();
        let (frame, _) = decode_frame(&out, 1024).unwrap().unwrap();
        assert_eq!(frame.goaway_reason(), Some(GoAwayReason::TooManyPeers));
        assert_eq!(GoAwayReason::from_code(900), GoAwayReason::Other(900));
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would() {
        let mut out = Vec::new();
        assert!(encode_frame(&mut out, FrameKind::Data, 0, &[0; 2000], 1000).is_err());
        assert!(encode_frame(&mut out, FrameKind::Pong, 0, &[0; 300], 1000).is_err());
        assert!(encode_frame(&mut out, FrameKind::Data, 0x40, &[], 1000).is_err());
        assert!(out.is_empty(), "a refused frame writes nothing");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_an_accepted_frame_reencodes_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((frame, used))) = decode_frame(&bytes, 1024) {
                let mut again = Vec::new();
                encode_frame(&mut again, frame.kind, frame.flags, frame.payload, 1024).unwrap();
                prop_assert_eq!(&again[..], &bytes[..used]);
            }
        }
    }
}
