//! The log's record format: a fixed 56-byte header and the payload.
//!
//! ```text
//! offset  size  field
//!      0     4  magic: "BHLR" (0x524C_4842 LE) for the first record of a write,
//!               "BHLC" (0x434C_4842 LE) for every further record of the same write
//!      4     4  payload_len (u32 LE, at most LogConfig::record_bytes_max)
//!      8     8  seq (u64 LE; the first record of a log is 1)
//!     16    32  prev_hash: the BLAKE3 record hash of record seq-1 (zeros for record 1)
//!     48     8  checksum: xxh3-64 over bytes 0..48 and the payload
//!     56     n  payload
//! ```
//!
//! The *record hash* (what the next record carries) is BLAKE3 over bytes 0..48 and the
//! payload: it binds the sequence number, the previous hash and the content, so the
//! records form a hash chain (as in a Merkle–Damgård style log, or git's commit chain).
//! The checksum is the cheap test for a torn or bit-flipped record; the chain is what
//! proves order, catches reordered and duplicated records, and shows tampering.
//!
//! **Write boundaries** (docs/adr/042-batch-continuation-records.md). The log writes a
//! batch of records (one `append_batch`, or several writers' records gathered by group
//! commit) with one write and one `fdatasync`; the magic says where each write starts:
//! its first record carries "BHLR", the others "BHLC". Recovery uses it to tell a torn
//! last write (damage followed only by continuation records: nothing acknowledged is
//! damaged) from damage in acknowledged records. Logs written before the continuation
//! magic existed hold only "BHLR" records and read as before (each record its own write).
//! The magic is covered by the checksum and the hash like the rest of the header.

use bytemuck::{Pod, Zeroable};

/// A BLAKE3 hash linking one record to the next.
pub type RecordHash = [u8; 32];

/// The `prev_hash` of record 1.
pub const GENESIS_HASH: RecordHash = [0; 32];

/// "BHLR" little-endian: the first record of a write (and every record of older logs).
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"BHLR");

/// "BHLC" little-endian: a further record of the write that a "BHLR" record started.
pub const RECORD_MAGIC_CONTINUATION: u32 = u32::from_le_bytes(*b"BHLC");

/// Where a record sits in the write (one write and one sync) that put it on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePosition {
    /// The first record of a write: magic [`RECORD_MAGIC`].
    First,
    /// A further record of the same write: magic [`RECORD_MAGIC_CONTINUATION`].
    Continuation,
}

impl WritePosition {
    /// The magic that marks this position.
    pub fn magic(self) -> u32 {
        match self {
            Self::First => RECORD_MAGIC,
            Self::Continuation => RECORD_MAGIC_CONTINUATION,
        }
    }

    /// The position a magic marks, if it is one of the two.
    pub fn of_magic(magic: u32) -> Option<Self> {
        match magic {
            RECORD_MAGIC => Some(Self::First),
            RECORD_MAGIC_CONTINUATION => Some(Self::Continuation),
            _ => None,
        }
    }
}

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = std::mem::size_of::<RecordHeader>();

/// The bytes covered by the checksum and the hash, before the payload.
const SEALED_HEADER_LEN: usize = 48;

/// The fixed header, read and written with bytemuck (little-endian machines only, as
/// the rest of the crate's wire structs).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq, Eq)]
pub struct RecordHeader {
    /// [`RECORD_MAGIC`] or [`RECORD_MAGIC_CONTINUATION`] (see [`WritePosition`]).
    pub magic: u32,
    /// Payload bytes after the header.
    pub payload_len: u32,
    /// Position in the log, from 1.
    pub seq: u64,
    /// Record hash of the record before.
    pub prev_hash: RecordHash,
    /// xxh3-64 over the sealed header and the payload.
    pub checksum: u64,
}

const _: () = assert!(HEADER_LEN == 56);

/// Appends the record (`seq`, `prev_hash`, `payload`) as the first record of a write
/// (magic "BHLR") to `out` and returns its hash.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, prev_hash: &RecordHash, payload: &[u8]) -> RecordHash {
    encode_record_at(out, WritePosition::First, seq, prev_hash, payload)
}

/// Appends the record (`seq`, `prev_hash`, `payload`) with the magic of `position` to
/// `out` and returns its hash (which depends on the magic, as the checksum does).
pub fn encode_record_at(
    out: &mut Vec<u8>,
    position: WritePosition,
    seq: u64,
    prev_hash: &RecordHash,
    payload: &[u8],
) -> RecordHash {
    debug_assert!(payload.len() <= u32::MAX as usize, "payload bounded by the caller");
    let mut header = RecordHeader {
        magic: position.magic(),
        payload_len: payload.len() as u32,
        seq,
        prev_hash: *prev_hash,
        checksum: 0,
    };
    let sealed: [u8; SEALED_HEADER_LEN] = bytemuck::bytes_of(&header)[..SEALED_HEADER_LEN].try_into().expect("48");
    header.checksum = checksum(&sealed, payload);
    let hash = record_hash(&sealed, payload);
    out.extend_from_slice(bytemuck::bytes_of(&header));
    out.extend_from_slice(payload);
    hash
}

fn checksum(sealed: &[u8], payload: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(sealed);
    hasher.update(payload);
    hasher.digest()
}

fn record_hash(sealed: &[u8], payload: &[u8]) -> RecordHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(sealed);
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// One record read back from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedRecord<'a> {
    /// Its header.
    pub header: RecordHeader,
    /// Its payload, borrowed from the input.
    pub payload: &'a [u8],
    /// Its record hash.
    pub hash: RecordHash,
}

impl DecodedRecord<'_> {
    /// Header plus payload bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Whether it starts a write or continues one (its magic).
    pub fn position(&self) -> WritePosition {
        WritePosition::of_magic(self.header.magic).expect("decode_record accepts only the two magics")
    }
}

/// Why the bytes at some offset are not an intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordDamage {
    /// The input ends inside the header or the payload.
    Incomplete,
    /// The magic number is neither of the two.
    BadMagic,
    /// The length exceeds the configured bound.
    TooLong,
    /// The checksum does not match.
    BadChecksum,
}

/// Decodes the record at the start of `bytes`, refusing payloads over `payload_max`.
/// Never allocates and never panics on arbitrary input.
pub fn decode_record(bytes: &[u8], payload_max: u32) -> Result<DecodedRecord<'_>, RecordDamage> {
    let header_bytes = bytes.get(..HEADER_LEN).ok_or(RecordDamage::Incomplete)?;
    let header: RecordHeader = bytemuck::pod_read_unaligned(header_bytes);
    if WritePosition::of_magic(header.magic).is_none() {
        return Err(RecordDamage::BadMagic);
    }
    if header.payload_len > payload_max {
        return Err(RecordDamage::TooLong);
    }
    let end = HEADER_LEN + header.payload_len as usize;
    let payload = bytes.get(HEADER_LEN..end).ok_or(RecordDamage::Incomplete)?;
    let sealed = &header_bytes[..SEALED_HEADER_LEN];
    if checksum(sealed, payload) != header.checksum {
        return Err(RecordDamage::BadChecksum);
    }
    Ok(DecodedRecord { header, payload, hash: record_hash(sealed, payload) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_record_round_trips_and_its_hash_is_the_next_prev_hash() {
        let mut bytes = Vec::new();
        let first = encode_record(&mut bytes, 1, &GENESIS_HASH, b"hello");
        let split = bytes.len();
        encode_record(&mut bytes, 2, &first, b"world");
        let one = decode_record(&bytes, 1024).unwrap();
        assert_eq!((one.header.seq, one.payload, one.hash), (1, &b"hello"[..], first));
        let two = decode_record(&bytes[split..], 1024).unwrap();
        assert_eq!(two.header.prev_hash, first);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        for position in [WritePosition::First, WritePosition::Continuation] {
            let mut bytes = Vec::new();
            encode_record_at(&mut bytes, position, 7, &[3; 32], b"payload bytes");
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(decode_record(&flipped, 1024).is_err(), "{position:?}: flip of bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn a_continuation_record_decodes_with_its_position_and_its_own_hash() {
        let mut first = Vec::new();
        let mut continued = Vec::new();
        let hash = encode_record(&mut first, 2, &[1; 32], b"same");
        let other = encode_record_at(&mut continued, WritePosition::Continuation, 2, &[1; 32], b"same");
        assert_eq!(&continued[..4], b"BHLC");
        assert_ne!(hash, other, "the magic is part of what the hash covers");
        assert_eq!(decode_record(&first, 64).unwrap().position(), WritePosition::First);
        let decoded = decode_record(&continued, 64).unwrap();
        assert_eq!(
            (decoded.position(), decoded.hash, decoded.payload),
            (WritePosition::Continuation, other, &b"same"[..])
        );
        // Swapping the magic without resealing is a checksum failure, not the other kind.
        continued[..4].copy_from_slice(b"BHLR");
        assert_eq!(decode_record(&continued, 64), Err(RecordDamage::BadChecksum));
    }

    #[test]
    fn a_length_over_the_bound_is_refused_before_reading() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 1, &GENESIS_HASH, &[0; 100]);
        assert_eq!(decode_record(&bytes, 99), Err(RecordDamage::TooLong));
        assert_eq!(decode_record(&bytes[..60], 1000), Err(RecordDamage::Incomplete));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&bytes, 1 << 20);
        }
    }
}
