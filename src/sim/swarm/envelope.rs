//! The frame every swarm message travels in: a channel byte naming the protocol and
//! the sender's boot number. The boot number stands in for the engine's connection: a
//! frame from an earlier boot of a peer belongs to a connection that died with it and
//! is dropped (TCP never delivers across connections), and a frame from a newer boot
//! tells the receiver that the peer restarted, so its session state is reset.

/// Which protocol a frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    /// The node core (eventual categories, strong categories' Raft messages).
    Core,
    /// SWIM membership.
    Membership,
    /// Chain sync.
    Chain,
    /// Network time.
    Time,
}

impl Channel {
    fn code(self) -> u8 {
        match self {
            Channel::Core => 1,
            Channel::Membership => 2,
            Channel::Chain => 3,
            Channel::Time => 4,
        }
    }

    fn from_code(code: u8) -> Option<Channel> {
        Some(match code {
            1 => Channel::Core,
            2 => Channel::Membership,
            3 => Channel::Chain,
            4 => Channel::Time,
            _ => return None,
        })
    }
}

/// Bytes before the payload.
pub const HEADER_LEN: usize = 1 + 4;

/// Frames `payload` for `channel` from a sender in its `boot`.
pub fn seal(channel: Channel, boot: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(channel.code());
    out.extend_from_slice(&boot.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The channel, boot and payload of a frame; `None` when it is not a frame.
pub fn open(bytes: &[u8]) -> Option<(Channel, u32, &[u8])> {
    let (&code, rest) = bytes.split_first()?;
    let channel = Channel::from_code(code)?;
    let boot = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    Some((channel, boot, &rest[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip() {
        let frame = seal(Channel::Chain, 7, b"block");
        assert_eq!(open(&frame), Some((Channel::Chain, 7, &b"block"[..])));
        assert_eq!(open(&[9, 0, 0, 0, 0]), None);
        assert_eq!(open(&[1, 0]), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = open(&bytes);
        }
    }
}
