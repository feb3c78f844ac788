//! Gossip frames (HyParView membership of the overlay, Plumtree broadcast) and their
//! binary form: format version, kind, fields. Lists are bounded ([`MAX_IDS`],
//! [`MAX_SHUFFLE_NODES`]), the payload by [`MAX_PAYLOAD_LEN`] and the frame by
//! [`MAX_FRAME_LEN`]; decoding returns typed errors and never panics.

use crate::state::NodeId;
use crate::time::codec::{put_byte_string, put_varint, DecodeError, Reader};

/// The format version this code speaks.
pub const FORMAT_VERSION: u8 = 1;
/// The largest payload of one broadcast, bytes.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;
/// The largest frame, bytes.
pub const MAX_FRAME_LEN: usize = MAX_PAYLOAD_LEN + 1024;
/// Message ids in one IHAVE or GRAFT at most.
pub const MAX_IDS: usize = 1_024;
/// Node ids in one SHUFFLE or SHUFFLEREPLY at most.
pub const MAX_SHUFFLE_NODES: usize = 64;

/// A broadcast's identity: BLAKE3 of origin, origin's sequence number and payload.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of the `seq`th broadcast of `origin` carrying `payload`.
    pub fn of(origin: &NodeId, seq: u64, payload: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(origin.as_bytes());
        hasher.update(&seq.to_le_bytes());
        hasher.update(payload);
        MessageId(*hasher.finalize().as_bytes())
    }
}

/// One gossip frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum GossipMessage {
    /// HyParView JOIN: the sender wants into the overlay through us.
    Join,
    /// HyParView FORWARDJOIN: a random walk carrying a joiner.
    ForwardJoin {
        /// The joiner.
        joiner: NodeId,
        /// Remaining walk length.
        ttl: u8,
    },
    /// HyParView NEIGHBOR: please take me into your active view.
    Neighbor {
        /// High priority (the sender has no active neighbour): always accepted.
        high_priority: bool,
    },
    /// The answer to NEIGHBOR.
    NeighborReply {
        /// Whether the sender is now in the receiver's active view.
        accepted: bool,
    },
    /// HyParView DISCONNECT: I dropped you from my active view.
    Disconnect,
    /// HyParView SHUFFLE: a random walk carrying a sample of the origin's views.
    Shuffle {
        /// Who started it (the reply goes there).
        origin: NodeId,
        /// Remaining walk length.
        ttl: u8,
        /// The sample.
        nodes: Vec<NodeId>,
    },
    /// The answer to SHUFFLE: a sample of the receiver's passive view.
    ShuffleReply {
        /// The sample.
        nodes: Vec<NodeId>,
    },
    /// Keep-alive on a quiet active link.
    KeepAlive,
    /// The answer to a keep-alive.
    KeepAliveAck,
    /// Plumtree GOSSIP: eager push of a payload.
    Gossip {
        /// The broadcast's id.
        id: MessageId,
        /// Hops travelled, this one included.
        hops: u32,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Plumtree IHAVE: lazy announcements (id, hops the sender received it at).
    IHave {
        /// Announced ids.
        entries: Vec<(MessageId, u32)>,
    },
    /// Plumtree GRAFT: send me these and make our link eager.
    Graft {
        /// Wanted ids.
        ids: Vec<MessageId>,
    },
    /// Plumtree PRUNE: our link becomes lazy.
    Prune,
}

/// Why a gossip frame was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GossipError {
    /// The frame exceeds [`MAX_FRAME_LEN`].
    Oversized {
        /// Its length.
        len: usize,
    },
    /// Not a format version this code reads.
    UnknownVersion(u8),
    /// Unknown kind byte.
    UnknownKind(u8),
    /// A field did not decode (truncated, over its bound, trailing bytes, …).
    Decode(DecodeError),
}

impl From<DecodeError> for GossipError {
    fn from(error: DecodeError) -> Self {
        GossipError::Decode(error)
    }
}

impl std::fmt::Display for GossipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad gossip frame: {self:?}")
    }
}

impl std::error::Error for GossipError {}

impl GossipMessage {
    /// Whether this frame carries a broadcast payload (for the benchmark's counts).
    pub fn is_payload(&self) -> bool {
        matches!(self, GossipMessage::Gossip { .. })
    }

    /// Appends the frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        match self {
            GossipMessage::Join => out.push(0),
            GossipMessage::ForwardJoin { joiner, ttl } => {
                out.push(1);
                out.extend_from_slice(joiner.as_bytes());
                out.push(*ttl);
            }
            GossipMessage::Neighbor { high_priority } => {
                out.push(2);
                out.push(u8::from(*high_priority));
            }
            GossipMessage::NeighborReply { accepted } => {
                out.push(3);
                out.push(u8::from(*accepted));
            }
            GossipMessage::Disconnect => out.push(4),
            GossipMessage::Shuffle { origin, ttl, nodes } => {
                out.push(5);
                out.extend_from_slice(origin.as_bytes());
                out.push(*ttl);
                put_nodes(out, nodes);
            }
            GossipMessage::ShuffleReply { nodes } => {
                out.push(6);
                put_nodes(out, nodes);
            }
            GossipMessage::KeepAlive => out.push(7),
            GossipMessage::KeepAliveAck => out.push(8),
            GossipMessage::Gossip { id, hops, payload } => {
                out.push(9);
                out.extend_from_slice(&id.0);
                put_varint(out, u64::from(*hops));
                put_byte_string(out, payload);
            }
            GossipMessage::IHave { entries } => {
                out.push(10);
                debug_assert!(entries.len() <= MAX_IDS);
                put_varint(out, entries.len() as u64);
                for (id, hops) in entries {
                    out.extend_from_slice(&id.0);
                    put_varint(out, u64::from(*hops));
                }
            }
            GossipMessage::Graft { ids } => {
                out.push(11);
                debug_assert!(ids.len() <= MAX_IDS);
                put_varint(out, ids.len() as u64);
                for id in ids {
                    out.extend_from_slice(&id.0);
                }
            }
            GossipMessage::Prune => out.push(12),
        }
    }

    /// The frame as a new byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one frame.
    pub fn decode(bytes: &[u8]) -> Result<GossipMessage, GossipError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(GossipError::Oversized { len: bytes.len() });
        }
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != FORMAT_VERSION {
            return Err(GossipError::UnknownVersion(version));
        }
        let message = match reader.u8()? {
            0 => GossipMessage::Join,
            1 => GossipMessage::ForwardJoin { joiner: reader.node_id()?, ttl: reader.u8()? },
            2 => GossipMessage::Neighbor { high_priority: flag(&mut reader)? },
            3 => GossipMessage::NeighborReply { accepted: flag(&mut reader)? },
            4 => GossipMessage::Disconnect,
            5 => GossipMessage::Shuffle { origin: reader.node_id()?, ttl: reader.u8()?, nodes: nodes(&mut reader)? },
            6 => GossipMessage::ShuffleReply { nodes: nodes(&mut reader)? },
            7 => GossipMessage::KeepAlive,
            8 => GossipMessage::KeepAliveAck,
            9 => {
                let id = message_id(&mut reader)?;
                let hops = hops(&mut reader)?;
                let payload = reader.byte_string("gossip payload", MAX_PAYLOAD_LEN)?.to_vec();
                GossipMessage::Gossip { id, hops, payload }
            }
            10 => {
                let count = reader.count("ihave entries", MAX_IDS, 33)?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    entries.push((message_id(&mut reader)?, hops(&mut reader)?));
                }
                GossipMessage::IHave { entries }
            }
            11 => {
                let count = reader.count("graft ids", MAX_IDS, 32)?;
                let mut ids = Vec::with_capacity(count);
                for _ in 0..count {
                    ids.push(message_id(&mut reader)?);
                }
                GossipMessage::Graft { ids }
            }
            12 => GossipMessage::Prune,
            other => return Err(GossipError::UnknownKind(other)),
        };
        reader.finish()?;
        Ok(message)
    }
}

fn flag(reader: &mut Reader<'_>) -> Result<bool, GossipError> {
    match reader.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(GossipError::UnknownKind(other)),
    }
}

fn hops(reader: &mut Reader<'_>) -> Result<u32, GossipError> {
    let value = reader.varint()?;
    u32::try_from(value)
        .map_err(|_| GossipError::Decode(DecodeError::TooMany { what: "hops", count: value, max: u64::from(u32::MAX) }))
}

fn message_id(reader: &mut Reader<'_>) -> Result<MessageId, GossipError> {
    let mut id = [0u8; 32];
    id.copy_from_slice(reader.bytes(32)?);
    Ok(MessageId(id))
}

fn put_nodes(out: &mut Vec<u8>, nodes: &[NodeId]) {
    debug_assert!(nodes.len() <= MAX_SHUFFLE_NODES);
    put_varint(out, nodes.len() as u64);
    for node in nodes {
        out.extend_from_slice(node.as_bytes());
    }
}

fn nodes(reader: &mut Reader<'_>) -> Result<Vec<NodeId>, GossipError> {
    let count = reader.count("shuffle nodes", MAX_SHUFFLE_NODES, 32)?;
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        nodes.push(reader.node_id()?);
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let id = MessageId::of(&NodeId([1; 32]), 7, b"hello");
        let messages = [
            GossipMessage::Join,
            GossipMessage::ForwardJoin { joiner: NodeId([2; 32]), ttl: 6 },
            GossipMessage::Neighbor { high_priority: true },
            GossipMessage::NeighborReply { accepted: false },
            GossipMessage::Disconnect,
            GossipMessage::Shuffle { origin: NodeId([3; 32]), ttl: 2, nodes: vec![NodeId([4; 32])] },
            GossipMessage::ShuffleReply { nodes: vec![] },
            GossipMessage::KeepAlive,
            GossipMessage::KeepAliveAck,
            GossipMessage::Gossip { id, hops: 300, payload: b"hello".to_vec() },
            GossipMessage::IHave { entries: vec![(id, 4)] },
            GossipMessage::Graft { ids: vec![id, id] },
            GossipMessage::Prune,
        ];
        for message in messages {
            assert_eq!(GossipMessage::decode(&message.to_bytes()), Ok(message));
        }
    }

    #[test]
    fn oversized_payload_and_frame_are_typed_errors() {
        let big = GossipMessage::Gossip { id: MessageId([0; 32]), hops: 1, payload: vec![0; MAX_PAYLOAD_LEN + 1] };
        assert!(matches!(
            GossipMessage::decode(&big.to_bytes()),
            Err(GossipError::Decode(DecodeError::TooMany { .. }))
        ));
        let len = MAX_FRAME_LEN + 1;
        assert_eq!(GossipMessage::decode(&vec![1; len]), Err(GossipError::Oversized { len }));
        assert_eq!(GossipMessage::decode(&[1, 99]), Err(GossipError::UnknownKind(99)));
    }
}
