//! The chain sync messages and their codec. Every count is bounded before anything
//! is allocated; a locator of 10,000 hashes is refused from its length field alone.
//!
//! ```text
//! GetHeaders 0x01 · count u16 (≤ 64) · ids [32]×count · headers_max u16
//! Headers    0x02 · ancestor_height u64 · ancestor_id [32] · tip_height u64
//!                 · count u16 (≤ 2,000) · headers [176]×count
//! GetBlocks  0x03 · from u64 · count u32 (≤ 128)
//! Blocks     0x04 · from u64 · count u16 (≤ 128) · blocks (see block.rs)×count
//! ```

use super::block::{Block, BlockDecodeError, BlockHeader, BlockId, BlockLimits, HEADER_LEN};
use super::locator::LOCATOR_LEN_MAX;

/// Headers in one `Headers` message.
pub const HEADERS_PER_MESSAGE_MAX: u16 = 2_000;
/// Blocks asked for or sent in one message.
pub const BLOCKS_PER_MESSAGE_MAX: u32 = 128;

/// One chain sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// "Here is my chain (as a locator); send headers after our common ancestor."
    GetHeaders {
        /// Newest first, ending with genesis.
        locator: Vec<BlockId>,
        /// Headers wanted at most.
        headers_max: u16,
    },
    /// The common ancestor and the main-chain headers after it.
    Headers {
        /// Height of the newest locator entry on the responder's main chain.
        ancestor_height: u64,
        /// Its id.
        ancestor_id: BlockId,
        /// The responder's head height.
        tip_height: u64,
        /// Consecutive headers from `ancestor_height + 1`.
        headers: Vec<BlockHeader>,
    },
    /// Main-chain blocks `from .. from + count`.
    GetBlocks {
        /// First height.
        from: u64,
        /// How many.
        count: u32,
    },
    /// Main-chain blocks from `from`, consecutive (fewer than asked if the chain ends).
    Blocks {
        /// Height of the first.
        from: u64,
        /// The blocks.
        blocks: Vec<Block>,
    },
}

/// Why bytes are not a sync message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// The input ends early.
    Truncated,
    /// An unknown message tag.
    UnknownTag(u8),
    /// A locator over [`LOCATOR_LEN_MAX`] entries.
    LocatorTooLong {
        /// Entries announced.
        len: usize,
    },
    /// More headers or blocks than a message may carry.
    TooMany,
    /// A block that does not decode.
    BadBlock(BlockDecodeError),
    /// Bytes after the message.
    TrailingBytes,
}

impl SyncMessage {
    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::GetHeaders { locator, headers_max } => {
                out.push(1);
                out.extend_from_slice(&(locator.len() as u16).to_le_bytes());
                locator.iter().for_each(|id| out.extend_from_slice(id));
                out.extend_from_slice(&headers_max.to_le_bytes());
            }
            Self::Headers { ancestor_height, ancestor_id, tip_height, headers } => {
                out.push(2);
                out.extend_from_slice(&ancestor_height.to_le_bytes());
                out.extend_from_slice(ancestor_id);
                out.extend_from_slice(&tip_height.to_le_bytes());
                out.extend_from_slice(&(headers.len() as u16).to_le_bytes());
                headers.iter().for_each(|h| out.extend_from_slice(bytemuck::bytes_of(h)));
            }
            Self::GetBlocks { from, count } => {
                out.push(3);
                out.extend_from_slice(&from.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
            }
            Self::Blocks { from, blocks } => {
                out.push(4);
                out.extend_from_slice(&from.to_le_bytes());
                out.extend_from_slice(&(blocks.len() as u16).to_le_bytes());
                blocks.iter().for_each(|b| b.encode(&mut out));
            }
        }
        out
    }

    /// Decodes one message; never panics, allocates at most what the input holds.
    pub fn decode(bytes: &[u8], limits: &BlockLimits) -> Result<Self, MessageError> {
        let mut reader = Reader { bytes, at: 0 };
        let message = match reader.u8()? {
            1 => decode_get_headers(&mut reader)?,
            2 => decode_headers(&mut reader)?,
            3 => Self::GetBlocks { from: reader.u64()?, count: reader.u32()? },
            4 => decode_blocks(&mut reader, limits)?,
            tag => return Err(MessageError::UnknownTag(tag)),
        };
        if reader.at != bytes.len() {
            return Err(MessageError::TrailingBytes);
        }
        Ok(message)
    }
}

fn decode_get_headers(reader: &mut Reader<'_>) -> Result<SyncMessage, MessageError> {
    let len = reader.u16()? as usize;
    if len > LOCATOR_LEN_MAX {
        return Err(MessageError::LocatorTooLong { len });
    }
    let mut locator = Vec::with_capacity(len);
    for _ in 0..len {
        locator.push(reader.take(32)?.try_into().expect("32 bytes"));
    }
    Ok(SyncMessage::GetHeaders { locator, headers_max: reader.u16()? })
}

fn decode_headers(reader: &mut Reader<'_>) -> Result<SyncMessage, MessageError> {
    let ancestor_height = reader.u64()?;
    let ancestor_id = reader.take(32)?.try_into().expect("32 bytes");
    let tip_height = reader.u64()?;
    let count = reader.u16()?;
    if count > HEADERS_PER_MESSAGE_MAX {
        return Err(MessageError::TooMany);
    }
    let mut headers = Vec::with_capacity((count as usize).min(reader.remaining() / HEADER_LEN));
    for _ in 0..count {
        headers.push(BlockHeader::decode(reader.take(HEADER_LEN)?).ok_or(MessageError::Truncated)?);
    }
    Ok(SyncMessage::Headers { ancestor_height, ancestor_id, tip_height, headers })
}

fn decode_blocks(reader: &mut Reader<'_>, limits: &BlockLimits) -> Result<SyncMessage, MessageError> {
    let from = reader.u64()?;
    let count = reader.u16()? as u32;
    if count > BLOCKS_PER_MESSAGE_MAX {
        return Err(MessageError::TooMany);
    }
    let mut blocks = Vec::with_capacity((count as usize).min(reader.remaining() / HEADER_LEN));
    for _ in 0..count {
        let (block, used) = Block::decode_prefix(&reader.bytes[reader.at..], limits).map_err(MessageError::BadBlock)?;
        reader.at += used;
        blocks.push(block);
    }
    Ok(SyncMessage::Blocks { from, blocks })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], MessageError> {
        let end = self.at.checked_add(len).ok_or(MessageError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(MessageError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, MessageError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_locator_of_ten_thousand_hashes_is_refused_from_its_length() {
        let message = SyncMessage::GetHeaders { locator: vec![[1; 32]; 10_000], headers_max: 10 };
        let bytes = message.to_bytes();
        assert_eq!(
            SyncMessage::decode(&bytes, &BlockLimits::default()),
            Err(MessageError::LocatorTooLong { len: 10_000 })
        );
    }

    #[test]
    fn messages_round_trip() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let block = Block::create(None, vec![b"tx".to_vec()], 5, &key);
        let messages = [
            SyncMessage::GetHeaders { locator: vec![[1; 32], [2; 32]], headers_max: 2000 },
            SyncMessage::Headers {
                ancestor_height: 4,
                ancestor_id: [4; 32],
                tip_height: 9,
                headers: vec![block.header],
            },
            SyncMessage::GetBlocks { from: 5, count: 128 },
            SyncMessage::Blocks { from: 5, blocks: vec![block.clone(), block] },
        ];
        for message in messages {
            assert_eq!(SyncMessage::decode(&message.to_bytes(), &BlockLimits::default()), Ok(message));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(message) = SyncMessage::decode(&bytes, &BlockLimits::default()) {
                prop_assert_eq!(message.to_bytes(), bytes);
            }
        }
    }
}
