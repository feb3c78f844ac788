//! The frame every swarm message travels in: a channel byte naming the protocol, the
//! sender's boot number and the receiver's boot as the sender knows it. Boot numbers
//! stand in for the engine's connections: a frame from an earlier boot of a peer, or
//! addressed to an earlier boot of the receiver, belongs to a connection that died
//! with that boot and is dropped (TCP never delivers across connections); a frame from
//! a newer boot tells the receiver that the peer restarted, so its session is reset.

pub use crate::node::Channel;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 1 + 4 + 4;

/// The receiver boot of a frame whose sender has not heard from the receiver yet: any
/// boot accepts it (a first contact, as a new connection would be).
pub const ANY_BOOT: u32 = u32::MAX;

/// Who a frame is from and for: the sender's boot, and the receiver's boot the sender
/// last heard of ([`ANY_BOOT`] before it heard anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boots {
    /// The sender's boot.
    pub from: u32,
    /// The receiver's boot, as the sender knows it.
    pub to: u32,
}

/// Frames `payload` for `channel`.
pub fn seal(channel: Channel, boots: Boots, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(channel.code());
    out.extend_from_slice(&boots.from.to_le_bytes());
    out.extend_from_slice(&boots.to.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The channel, boots and payload of a frame; `None` when it is not a frame.
pub fn open(bytes: &[u8]) -> Option<(Channel, Boots, &[u8])> {
    let (&code, rest) = bytes.split_first()?;
    let channel = Channel::from_code(code)?;
    let from = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let to = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?);
    Some((channel, Boots { from, to }, &rest[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip() {
        let boots = Boots { from: 7, to: 2 };
        let frame = seal(Channel::Chain, boots, b"block");
        assert_eq!(open(&frame), Some((Channel::Chain, boots, &b"block"[..])));
        assert_eq!(open(&[9, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(open(&[1, 0, 0, 0, 0, 0]), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = open(&bytes);
        }
    }
}
