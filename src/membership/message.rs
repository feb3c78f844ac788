//! SWIM frames and their binary form.
//!
//! Layout: format version (1 byte), kind (1 byte), then the kind's fields; integers
//! are shortest-form LEB128 varints, node ids 32 raw bytes. Every frame ends with a
//! list of membership updates (the piggyback of SWIM §4.1, or the whole state in a
//! push-pull exchange). Decoding is bounded by [`MAX_FRAME_LEN`] and
//! [`MAX_UPDATES_PER_FRAME`], returns typed errors and never panics.

use crate::state::NodeId;
use crate::time::codec::{put_varint, DecodeError, Reader};

/// The format version this code speaks.
pub const FORMAT_VERSION: u8 = 1;
/// The largest frame, bytes (one UDP datagram of 64 KiB at most, as in memberlist).
pub const MAX_FRAME_LEN: usize = 65_507;
/// The most updates one frame carries (a push-pull of a larger group is sent in
/// rotating slices of this size).
pub const MAX_UPDATES_PER_FRAME: usize = 1_024;
/// The fewest bytes one encoded update takes (id, state, one-byte incarnation).
const MIN_UPDATE_LEN: usize = 34;

/// A member's state as others see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Answers probes.
    Alive,
    /// Missed a probe; dead unless it refutes in time.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left on purpose.
    Left,
}

impl MemberState {
    fn code(self) -> u8 {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Dead => 2,
            MemberState::Left => 3,
        }
    }
}

/// One gossiped fact about a member: its state at an incarnation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Update {
    /// Whom it is about.
    pub node: NodeId,
    /// The member's incarnation the fact refers to.
    pub incarnation: u64,
    /// The state.
    pub state: MemberState,
    /// For a suspicion: who suspects (Lifeguard counts independent accusers).
    pub from: Option<NodeId>,
}

/// One SWIM frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// Are you alive? (direct probe, or a relay's probe on behalf of another member).
    Ping {
        /// Probe sequence number, echoed in the ack.
        seq: u64,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// Yes: the answer to a ping, or a relay forwarding the target's answer.
    Ack {
        /// The sequence number of the probe answered.
        seq: u64,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// Please probe `target` for me and forward its ack (SWIM §3.1).
    PingReq {
        /// The requester's probe sequence number.
        seq: u64,
        /// The member to probe.
        target: NodeId,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// Push-pull: here is (a slice of) my state; reply with yours if `reply_wanted`.
    Sync {
        /// Whether the receiver should answer with its own state.
        reply_wanted: bool,
        /// Member records.
        updates: Vec<Update>,
    },
}

/// Why a SWIM frame was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MessageError {
    /// Longer than [`MAX_FRAME_LEN`].
    Oversized {
        /// The frame's length.
        len: usize,
    },
    /// Not a format version this code reads.
    UnknownVersion(u8),
    /// Unknown message kind.
    UnknownKind(u8),
    /// Unknown member state code.
    UnknownState(u8),
    /// A field did not decode.
    Decode(DecodeError),
}

impl From<DecodeError> for MessageError {
    fn from(error: DecodeError) -> Self {
        MessageError::Decode(error)
    }
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad membership frame: {self:?}")
    }
}

impl std::error::Error for MessageError {}

impl Message {
    /// Appends the frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        let updates = match self {
            Message::Ping { seq, updates } => {
                out.push(0);
                put_varint(out, *seq);
                updates
            }
            Message::Ack { seq, updates } => {
                out.push(1);
                put_varint(out, *seq);
                updates
            }
            Message::PingReq { seq, target, updates } => {
                out.push(2);
                put_varint(out, *seq);
                out.extend_from_slice(target.as_bytes());
                updates
            }
            Message::Sync { reply_wanted, updates } => {
                out.push(3);
                out.push(u8::from(*reply_wanted));
                updates
            }
        };
        debug_assert!(updates.len() <= MAX_UPDATES_PER_FRAME);
        put_varint(out, updates.len() as u64);
        for update in updates {
            out.extend_from_slice(update.node.as_bytes());
            out.push(update.state.code() | if update.from.is_some() { 0x80 } else { 0 });
            put_varint(out, update.incarnation);
            if let Some(from) = update.from {
                out.extend_from_slice(from.as_bytes());
            }
        }
    }

    /// The frame as a new byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one frame.
    pub fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(MessageError::Oversized { len: bytes.len() });
        }
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != FORMAT_VERSION {
            return Err(MessageError::UnknownVersion(version));
        }
        let message = match reader.u8()? {
            0 => Message::Ping { seq: reader.varint()?, updates: decode_updates(&mut reader)? },
            1 => Message::Ack { seq: reader.varint()?, updates: decode_updates(&mut reader)? },
            2 => {
                let seq = reader.varint()?;
                let target = reader.node_id()?;
                Message::PingReq { seq, target, updates: decode_updates(&mut reader)? }
            }
            3 => {
                let reply_wanted = match reader.u8()? {
                    0 => false,
                    1 => true,
                    other => return Err(MessageError::UnknownKind(other)),
                };
                Message::Sync { reply_wanted, updates: decode_updates(&mut reader)? }
            }
            other => return Err(MessageError::UnknownKind(other)),
        };
        reader.finish()?;
        Ok(message)
    }
}

fn decode_updates(reader: &mut Reader<'_>) -> Result<Vec<Update>, MessageError> {
    let count = reader.count("membership updates", MAX_UPDATES_PER_FRAME, MIN_UPDATE_LEN)?;
    let mut updates = Vec::with_capacity(count);
    for _ in 0..count {
        let node = reader.node_id()?;
        let code = reader.u8()?;
        let state = match code & 0x7f {
            0 => MemberState::Alive,
            1 => MemberState::Suspect,
            2 => MemberState::Dead,
            3 => MemberState::Left,
            _ => return Err(MessageError::UnknownState(code)),
        };
        let incarnation = reader.varint()?;
        let from = if code & 0x80 != 0 { Some(reader.node_id()?) } else { None };
        updates.push(Update { node, incarnation, state, from });
    }
    Ok(updates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let update = Update {
            node: NodeId([3; 32]),
            incarnation: 300,
            state: MemberState::Suspect,
            from: Some(NodeId([4; 32])),
        };
        let alive = Update { node: NodeId([5; 32]), incarnation: 0, state: MemberState::Alive, from: None };
        let messages = [
            Message::Ping { seq: 1, updates: vec![update, alive] },
            Message::Ack { seq: u64::MAX, updates: vec![] },
            Message::PingReq { seq: 9, target: NodeId([7; 32]), updates: vec![alive] },
            Message::Sync { reply_wanted: true, updates: vec![update] },
        ];
        for message in messages {
            assert_eq!(Message::decode(&message.to_bytes()), Ok(message));
        }
    }

    #[test]
    fn oversized_and_unknown_frames_are_typed_errors() {
        assert_eq!(
            Message::decode(&vec![1; MAX_FRAME_LEN + 1]),
            Err(MessageError::Oversized { len: MAX_FRAME_LEN + 1 })
        );
        assert_eq!(Message::decode(&[9, 0]), Err(MessageError::UnknownVersion(9)));
        assert_eq!(Message::decode(&[1, 42]), Err(MessageError::UnknownKind(42)));
        assert!(matches!(Message::decode(&[1, 0, 1, 200]), Err(MessageError::Decode(_))));
    }
}
