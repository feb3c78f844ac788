//! Raft messages on the wire: raft-rs's protobuf encoding (eraftpb::Message), decoded
//! only from configured voters, under a size bound, inside `catch_unwind`.
//!
//! raft-rs 0.7 depends on protobuf 2 whatever codec is chosen, and protobuf 2 has an
//! advisory for uncontrolled recursion on crafted input (RUSTSEC-2024-0437). ADR 070
//! says how it is contained: the engine hands the group only frames from an
//! authenticated session (Noise, src/wire) whose peer is a configured voter; frames
//! are bounded by `max_message_len`; `Message` nests at most a snapshot inside, so a
//! deep nesting is never valid and the decoder's stack use is bounded by the length
//! check; and any panic in decoding becomes a fault instead of an abort.

use std::panic::{catch_unwind, AssertUnwindSafe};

use protobuf::Message as _;
use raft::eraftpb::Message;

/// Why a peer's raft message was refused (nothing of it was applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageFault {
    /// Longer than the configured bound.
    Oversized,
    /// Not a valid message.
    Malformed,
    /// The sender is not a configured voter of the group, or the message claims
    /// another sender than the session it arrived on, or is not addressed here.
    NotAVoter,
}

/// The bytes of a message.
pub fn encode(message: &Message) -> Vec<u8> {
    message.write_to_bytes().unwrap_or_default()
}

/// Decodes a message that arrived from `from` for `me`.
pub fn decode(bytes: &[u8], max_len: usize, from: u64, me: u64) -> Result<Message, MessageFault> {
    if bytes.len() > max_len {
        return Err(MessageFault::Oversized);
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| Message::parse_from_bytes(bytes)));
    let message = match parsed {
        Ok(Ok(message)) => message,
        _ => return Err(MessageFault::Malformed),
    };
    if message.from != from || message.to != me {
        return Err(MessageFault::NotAVoter);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_message_claiming_another_sender_is_refused() {
        let message = Message { from: 2, to: 1, ..Message::default() };
        let bytes = encode(&message);
        assert!(decode(&bytes, 1 << 20, 2, 1).is_ok());
        assert_eq!(decode(&bytes, 1 << 20, 3, 1), Err(MessageFault::NotAVoter));
        assert_eq!(decode(&bytes, bytes.len() - 1, 2, 1), Err(MessageFault::Oversized));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, 1 << 20, 1, 2);
        }
    }
}
