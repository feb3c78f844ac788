//! The byte-level reader and writer shared by every clock and CRDT encoding.
//!
//! Integers are unsigned LEB128 varints (as in Protocol Buffers), at most 10 bytes, and
//! only in their shortest form: an encoded value is hashed into a leaf digest
//! (DESIGN.md §3), so two encodings of one value would be two versions of one entry.
//! The [`Reader`] checks every length against the bytes that remain before it
//! allocates, so a decoder never allocates more than a small multiple of its input.

use std::fmt;

use crate::state::NodeId;

/// The longest varint: ⌈64 / 7⌉ bytes.
pub const MAX_VARINT_LEN: usize = 10;

/// Why bytes did not decode. Every decoder in `time` and `crdt` returns this.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// The input ended inside a field.
    UnexpectedEnd,
    /// A varint was longer than 10 bytes or exceeded `u64::MAX`.
    VarintOverflow,
    /// A varint was not in its shortest form.
    NonCanonicalVarint,
    /// Bytes were left after a complete value.
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// A count exceeded its bound (or the bytes that remain could not hold it).
    TooMany {
        /// What was being counted.
        what: &'static str,
        /// The count that was read.
        count: u64,
        /// The largest count accepted here.
        max: u64,
    },
    /// The format version byte is not one this build reads.
    UnsupportedVersion(u8),
    /// The kind tag names no known type.
    UnknownKind(u8),
    /// The kind tag names a known type, but not the one asked for.
    WrongKind {
        /// The tag the caller expected.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// A list that must be strictly increasing was not (duplicates or disorder).
    NotSorted(&'static str),
    /// A field held a value its type forbids.
    Invalid(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEnd => write!(f, "input ended inside a field"),
            DecodeError::VarintOverflow => write!(f, "varint longer than 10 bytes or above u64::MAX"),
            DecodeError::NonCanonicalVarint => write!(f, "varint not in its shortest form"),
            DecodeError::TrailingBytes { count } => write!(f, "{count} bytes after the end of the value"),
            DecodeError::TooMany { what, count, max } => write!(f, "{count} {what}, at most {max} accepted"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown kind tag {k}"),
            DecodeError::WrongKind { expected, found } => write!(f, "kind tag {found}, expected {expected}"),
            DecodeError::NotSorted(what) => write!(f, "{what} not strictly increasing"),
            DecodeError::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends `value` as a shortest-form LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The number of bytes `put_varint` writes for `value`.
pub fn varint_len(value: u64) -> usize {
    let bits = 64 - value.max(1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A bounds-checked cursor over an input slice.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, position: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        debug_assert!(self.position <= self.bytes.len());
        self.bytes.len() - self.position
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.position).ok_or(DecodeError::UnexpectedEnd)?;
        self.position += 1;
        Ok(byte)
    }

    /// The next `len` bytes, borrowed from the input.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    /// Eight bytes, big-endian.
    pub fn u64_be(&mut self) -> Result<u64, DecodeError> {
        let slice = self.bytes(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(slice);
        Ok(u64::from_be_bytes(array))
    }

    /// A 32-byte node identity.
    pub fn node_id(&mut self) -> Result<NodeId, DecodeError> {
        let slice = self.bytes(32)?;
        let mut array = [0u8; 32];
        array.copy_from_slice(slice);
        Ok(NodeId(array))
    }

    /// A shortest-form LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for index in 0..MAX_VARINT_LEN {
            let byte = self.u8()?;
            let payload = u64::from(byte & 0x7f);
            // The tenth byte may carry only the top bit of a u64.
            if index == MAX_VARINT_LEN - 1 && payload > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= payload << (7 * index);
            if byte & 0x80 == 0 {
                // A zero final byte after the first means a longer-than-needed form.
                if byte == 0 && index > 0 {
                    return Err(DecodeError::NonCanonicalVarint);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    /// A count of items that each take at least `min_item_len` bytes, bounded by `max`
    /// and by what the remaining input can hold, so the caller may allocate for it.
    pub fn count(&mut self, what: &'static str, max: usize, min_item_len: usize) -> Result<usize, DecodeError> {
        debug_assert!(min_item_len > 0);
        let count = self.varint()?;
        let fits = self.remaining() / min_item_len;
        let bound = max.min(fits) as u64;
        if count > bound {
            return Err(DecodeError::TooMany { what, count, max: bound });
        }
        Ok(count as usize)
    }

    /// A varint-length-prefixed byte string of at most `max` bytes.
    pub fn byte_string(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::TooMany { what, count: len, max: max as u64 });
        }
        self.bytes(len as usize)
    }

    /// Succeeds only if every byte has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// Appends a varint length prefix and the bytes.
pub fn put_byte_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_length() {
        for shift in 0..64 {
            for value in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
                let mut out = Vec::new();
                put_varint(&mut out, value);
                assert_eq!(out.len(), varint_len(value));
                let mut reader = Reader::new(&out);
                assert_eq!(reader.varint(), Ok(value));
                assert_eq!(reader.finish(), Ok(()));
            }
        }
    }

    #[test]
    fn varint_refuses_long_and_overflowing_forms() {
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), Err(DecodeError::NonCanonicalVarint));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(DecodeError::VarintOverflow));
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(Reader::new(&too_big).varint(), Err(DecodeError::VarintOverflow));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(DecodeError::UnexpectedEnd));
    }

    #[test]
    fn count_is_bounded_by_the_remaining_input() {
        let mut out = Vec::new();
        put_varint(&mut out, 1_000_000);
        out.extend_from_slice(&[0; 10]);
        let error = Reader::new(&out).count("items", usize::MAX, 1).unwrap_err();
        assert_eq!(error, DecodeError::TooMany { what: "items", count: 1_000_000, max: 10 });
        let mut reader = Reader::new(&out[..0]);
        assert_eq!(reader.count("items", 5, 1), Err(DecodeError::UnexpectedEnd));
    }

    #[test]
    fn byte_strings_node_ids_and_fixed_integers_read_back() {
        let mut out = Vec::new();
        put_byte_string(&mut out, b"abc");
        out.extend_from_slice(&[7; 32]);
        out.extend_from_slice(&42u64.to_be_bytes());
        let mut reader = Reader::new(&out);
        assert_eq!(reader.byte_string("key", 3), Ok(&b"abc"[..]));
        assert_eq!(reader.node_id(), Ok(NodeId([7; 32])));
        assert_eq!(reader.u64_be(), Ok(42));
        assert_eq!(reader.finish(), Ok(()));
        let mut short = Reader::new(&[5, 1, 2]);
        assert!(matches!(short.byte_string("key", 4), Err(DecodeError::TooMany { .. })));
        assert_eq!(Reader::new(&[1, 2]).finish(), Err(DecodeError::TrailingBytes { count: 2 }));
    }
}
