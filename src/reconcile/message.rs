//! The reconciliation messages and their binary form.
//!
//! Every frame starts with a fixed 12-byte header (`#[repr(C)]`, read with bytemuck):
//! format version, message kind, reserved, session id and request sequence number.
//! Bodies use LEB128 varints and borrow their bulk (coded symbols, short ids, entry
//! bytes) from the frame. Decoding checks every length against the bytes present and
//! the configured frame cap before it allocates, and never panics.

use bytemuck::{Pod, Zeroable};

use super::short_id::{ShortId, SHORT_ID_LEN};
use super::sketch::{CodedSymbol, ESTIMATOR_COUNTERS};
use crate::state::{check_bounds, Digest, Entry, NodeId, TreePath, Version};

/// The format version this code speaks.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = std::mem::size_of::<FrameHeader>();
/// Bytes of one coded symbol on the wire: 6 of ids, 4 of checksums.
pub const SYMBOL_LEN: usize = SHORT_ID_LEN + 4;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct FrameHeader {
    version: u8,
    kind: u8,
    reserved: [u8; 2],
    session: [u8; 4],
    seq: [u8; 4],
}

const _: () = assert!(HEADER_LEN == 12);

/// One reconciliation message. Bulk fields borrow from the frame they were read from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message<'a> {
    /// Initiator: my category, the part of it reconciled, and that part's hash.
    Hello {
        /// The category's id.
        category: [u8; 8],
        /// The keys reconciled: those below this path (the root: all of them).
        scope: TreePath,
        /// The initiator's hash of the scope (the root, for the root scope).
        root: Digest,
        /// Its entry count in the scope.
        count: u64,
    },
    /// Responder: the roots are equal; nothing to do.
    Equal,
    /// Responder: the roots differ; here is my estimator.
    Estimate {
        /// The responder's root.
        root: Digest,
        /// Its entry count.
        count: u64,
        /// How many coded symbols it can compare at most.
        capacity: u32,
        /// Its tug-of-war counters.
        counters: Box<[i64; ESTIMATOR_COUNTERS]>,
    },
    /// Initiator: coded symbols `[start, start + n)` of a prefix of `total` symbols.
    Symbols {
        /// Index of the first symbol here.
        start: u32,
        /// Length of the whole prefix being sent.
        total: u32,
        /// `n` symbols of [`SYMBOL_LEN`] bytes.
        symbols: &'a [u8],
    },
    /// Responder: the prefix did not decode; send symbols up to `total`.
    More {
        /// The prefix length wanted.
        total: u32,
    },
    /// Responder: the symmetric difference.
    Decoded {
        /// Versions only the initiator holds, of keys the responder lacks: send them.
        you_send: &'a [u8],
        /// Versions the responder is about to send (it holds them, the initiator lacks them).
        you_receive: &'a [u8],
        /// Keys both seem to hold in different versions (same position prefix), so the
        /// newer side sends.
        conflicts: Vec<Conflict>,
        /// How many `Items` frames follow with this response.
        item_frames: u32,
    },
    /// Initiator: the responder's versions wanted (named by the initiator's conflicting
    /// short ids), and how many `Items` frames follow.
    Transfer {
        /// Conflicting short ids whose responder version is newer.
        request: &'a [u8],
        /// How many `Items` frames follow.
        item_frames: u32,
    },
    /// Entries, part `part` of `parts` of one request or response.
    Items {
        /// This frame's index.
        part: u32,
        /// Entries in this frame.
        entries: Vec<Entry>,
    },
    /// Responder: the session cannot go on (the code says why); it has ended.
    Abort {
        /// One of the `ABORT_*` codes.
        code: u8,
        /// A detail (for `ABORT_SKETCH_EXHAUSTED`, the symbols compared).
        detail: u32,
    },
    /// Responder: transfer done; my root now, and how many `Items` frames follow.
    Finished {
        /// The responder's root after applying what it received.
        root: Digest,
        /// How many `Items` frames follow with this response.
        item_frames: u32,
    },
}

/// Two versions whose short ids share a position prefix: probably one key, written
/// differently on each side. The full position tells the initiator for sure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conflict {
    /// The initiator's version.
    pub yours: ShortId,
    /// The responder's version.
    pub mine: ShortId,
    /// The responder's key position (first 64 bits).
    pub position: u64,
    /// The responder's hybrid logical time.
    pub hlc: u64,
}

/// Why a frame could not be decoded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MessageError {
    /// The frame is longer than the configured cap.
    Oversized {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The frame ends before its contents do.
    Truncated,
    /// Bytes are left after the contents.
    TrailingBytes,
    /// The format version is not one this code speaks.
    UnknownVersion(u8),
    /// The message kind is unknown.
    UnknownKind(u8),
    /// A field is out of its range.
    Invalid(&'static str),
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageError::Oversized { len, max } => write!(f, "frame of {len} bytes is over the cap of {max}"),
            MessageError::Truncated => write!(f, "frame is truncated"),
            MessageError::TrailingBytes => write!(f, "frame has trailing bytes"),
            MessageError::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            MessageError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            MessageError::Invalid(why) => write!(f, "invalid field: {why}"),
        }
    }
}

impl std::error::Error for MessageError {}

/// A decoded frame: who it belongs to and what it says.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame<'a> {
    /// The session it belongs to.
    pub session: u32,
    /// The request sequence number it carries or answers.
    pub seq: u32,
    /// The message.
    pub message: Message<'a>,
}

/// `Abort` code: the difference is too large for the sketch; split the scope.
pub const ABORT_SKETCH_EXHAUSTED: u8 = 1;
/// `Abort` code: the responder refused the session (another category, a protocol error).
pub const ABORT_REFUSED: u8 = 2;

mod kind {
    pub const HELLO: u8 = 1;
    pub const EQUAL: u8 = 2;
    pub const ESTIMATE: u8 = 3;
    pub const SYMBOLS: u8 = 4;
    pub const MORE: u8 = 5;
    pub const DECODED: u8 = 6;
    pub const TRANSFER: u8 = 7;
    pub const ITEMS: u8 = 8;
    pub const FINISHED: u8 = 9;
    pub const ABORT: u8 = 10;
}

/// The kind byte (frame offset 1) of an `Abort` frame.
pub const KIND_ABORT: u8 = kind::ABORT;

impl Message<'_> {
    fn kind(&self) -> u8 {
        match self {
            Message::Hello { .. } => kind::HELLO,
            Message::Equal => kind::EQUAL,
            Message::Estimate { .. } => kind::ESTIMATE,
            Message::Symbols { .. } => kind::SYMBOLS,
            Message::More { .. } => kind::MORE,
            Message::Decoded { .. } => kind::DECODED,
            Message::Transfer { .. } => kind::TRANSFER,
            Message::Items { .. } => kind::ITEMS,
            Message::Finished { .. } => kind::FINISHED,
            Message::Abort { .. } => kind::ABORT,
        }
    }

    /// Appends the frame for this message to `out`.
    pub fn encode(&self, session: u32, seq: u32, out: &mut Vec<u8>) {
        let header = FrameHeader {
            version: FORMAT_VERSION,
            kind: self.kind(),
            reserved: [0; 2],
            session: session.to_le_bytes(),
            seq: seq.to_le_bytes(),
        };
        out.extend_from_slice(bytemuck::bytes_of(&header));
        match self {
            Message::Hello { category, scope, root, count } => {
                out.extend_from_slice(category);
                out.push(scope.len() as u8);
                if !scope.is_empty() {
                    out.extend_from_slice(&scope.bits().to_le_bytes());
                }
                out.extend_from_slice(&root.0);
                put_varint(out, *count);
            }
            Message::Equal => {}
            Message::Estimate { root, count, capacity, counters } => {
                out.extend_from_slice(&root.0);
                put_varint(out, *count);
                put_varint(out, *capacity as u64);
                counters.iter().for_each(|&c| put_varint(out, zigzag(c)));
            }
            Message::Symbols { start, total, symbols } => {
                put_varint(out, *start as u64);
                put_varint(out, *total as u64);
                put_varint(out, (symbols.len() / SYMBOL_LEN) as u64);
                out.extend_from_slice(symbols);
            }
            Message::More { total } => put_varint(out, *total as u64),
            Message::Decoded { you_send, you_receive, conflicts, item_frames } => {
                put_ids(out, you_send);
                put_ids(out, you_receive);
                put_varint(out, conflicts.len() as u64);
                for conflict in conflicts {
                    out.extend_from_slice(&conflict.yours.to_bytes());
                    out.extend_from_slice(&conflict.mine.to_bytes());
                    out.extend_from_slice(&conflict.position.to_le_bytes());
                    put_varint(out, conflict.hlc);
                }
                put_varint(out, *item_frames as u64);
            }
            Message::Transfer { request, item_frames } => {
                put_ids(out, request);
                put_varint(out, *item_frames as u64);
            }
            Message::Items { part, entries } => {
                put_varint(out, *part as u64);
                put_compressed(out, &encode_entries(entries));
            }
            Message::Abort { code, detail } => {
                out.push(*code);
                put_varint(out, *detail as u64);
            }
            Message::Finished { root, item_frames } => {
                out.extend_from_slice(&root.0);
                put_varint(out, *item_frames as u64);
            }
        }
    }
}

/// The uncompressed body of an `Items` frame: the entry count, then each entry.
pub fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(entries.iter().map(entry_wire_len).sum::<usize>() + 10);
    put_varint(&mut raw, entries.len() as u64);
    entries.iter().for_each(|entry| put_entry(&mut raw, entry));
    raw
}

/// Bytes an entry takes in an `Items` frame (an upper bound).
pub fn entry_wire_len(entry: &Entry) -> usize {
    entry.key.len() + entry.value.len() + 3 + 4 + 10 + 10 + 32 + 1
}

/// Decodes one frame of at most `max_len` bytes.
pub fn decode(frame: &[u8], max_len: usize) -> Result<Frame<'_>, MessageError> {
    if frame.len() > max_len {
        return Err(MessageError::Oversized { len: frame.len(), max: max_len });
    }
    let header_bytes = frame.get(..HEADER_LEN).ok_or(MessageError::Truncated)?;
    let header: FrameHeader = bytemuck::pod_read_unaligned(header_bytes);
    if header.version != FORMAT_VERSION {
        return Err(MessageError::UnknownVersion(header.version));
    }
    if header.reserved != [0; 2] {
        return Err(MessageError::Invalid("reserved header bits set"));
    }
    let mut reader = Reader { bytes: &frame[HEADER_LEN..] };
    let message = decode_body(header.kind, &mut reader, max_len)?;
    if !reader.bytes.is_empty() {
        return Err(MessageError::TrailingBytes);
    }
    Ok(Frame { session: u32::from_le_bytes(header.session), seq: u32::from_le_bytes(header.seq), message })
}

fn decode_body<'a>(kind: u8, r: &mut Reader<'a>, max_len: usize) -> Result<Message<'a>, MessageError> {
    Ok(match kind {
        kind::HELLO => {
            let category = r.array()?;
            let scope_len = r.array::<1>()?[0] as u32;
            let bits = if scope_len == 0 { 0 } else { u64::from_le_bytes(r.array()?) };
            let scope = TreePath::new(bits, scope_len).ok_or(MessageError::Invalid("scope deeper than 64 bits"))?;
            if scope.bits() != bits {
                return Err(MessageError::Invalid("scope bits past its length"));
            }
            Message::Hello { category, scope, root: Digest(r.array()?), count: r.varint()? }
        }
        kind::ABORT => Message::Abort { code: r.array::<1>()?[0], detail: r.u32()? },
        kind::EQUAL => Message::Equal,
        kind::ESTIMATE => {
            let root = Digest(r.array()?);
            let count = r.varint()?;
            let capacity = r.u32()?;
            let mut counters = Box::new([0i64; ESTIMATOR_COUNTERS]);
            for counter in counters.iter_mut() {
                *counter = unzigzag(r.varint()?);
            }
            Message::Estimate { root, count, capacity, counters }
        }
        kind::SYMBOLS => {
            let (start, total) = (r.u32()?, r.u32()?);
            let count = r.bounded_count(SYMBOL_LEN)?;
            let symbols = r.take(count * SYMBOL_LEN)?;
            if start as u64 + count as u64 > total as u64 {
                return Err(MessageError::Invalid("symbol range"));
            }
            Message::Symbols { start, total, symbols }
        }
        kind::MORE => Message::More { total: r.u32()? },
        kind::DECODED => {
            let (you_send, you_receive) = (r.ids()?, r.ids()?);
            let count = r.bounded_count(2 * SHORT_ID_LEN + 8 + 1)?;
            let mut conflicts = Vec::with_capacity(count);
            for _ in 0..count {
                let (yours, mine) = (ShortId::from_bytes(r.array()?), ShortId::from_bytes(r.array()?));
                let position = u64::from_le_bytes(r.array()?);
                conflicts.push(Conflict { yours, mine, position, hlc: r.varint()? });
            }
            Message::Decoded { you_send, you_receive, conflicts, item_frames: r.u32()? }
        }
        kind::TRANSFER => Message::Transfer { request: r.ids()?, item_frames: r.u32()? },
        kind::ITEMS => {
            let part = r.u32()?;
            let raw = r.compressed(max_len)?;
            let mut body = Reader { bytes: &raw };
            // The smallest entry: two empty lengths, one-byte times, origin, flags.
            let count = body.bounded_count(1 + 1 + 1 + 1 + 32 + 1)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(body.entry()?);
            }
            if !body.bytes.is_empty() {
                return Err(MessageError::TrailingBytes);
            }
            Message::Items { part, entries }
        }
        kind::FINISHED => Message::Finished { root: Digest(r.array()?), item_frames: r.u32()? },
        other => return Err(MessageError::UnknownKind(other)),
    })
}

/// Iterates the short ids of a packed id list (as in `Decoded` and `Transfer`).
pub fn ids(packed: &[u8]) -> impl Iterator<Item = ShortId> + '_ {
    packed.chunks_exact(SHORT_ID_LEN).map(|chunk| {
        let mut bytes = [0u8; SHORT_ID_LEN];
        bytes.copy_from_slice(chunk);
        ShortId::from_bytes(bytes)
    })
}

/// Packs short ids for a message.
pub fn pack_ids(ids: impl IntoIterator<Item = ShortId>) -> Vec<u8> {
    ids.into_iter().flat_map(ShortId::to_bytes).collect()
}

/// Packs coded symbols for a `Symbols` message.
pub fn pack_symbols(symbols: &[CodedSymbol]) -> Vec<u8> {
    let mut out = Vec::with_capacity(symbols.len() * SYMBOL_LEN);
    for symbol in symbols {
        out.extend_from_slice(&ShortId(symbol.ids & 0xFFFF_FFFF_FFFF).to_bytes());
        out.extend_from_slice(&symbol.checksums.to_le_bytes());
    }
    out
}

/// Reads packed coded symbols.
pub fn unpack_symbols(packed: &[u8]) -> impl Iterator<Item = CodedSymbol> + '_ {
    packed.chunks_exact(SYMBOL_LEN).map(|chunk| {
        let mut id = [0u8; SHORT_ID_LEN];
        id.copy_from_slice(&chunk[..SHORT_ID_LEN]);
        let checksums = u32::from_le_bytes([chunk[6], chunk[7], chunk[8], chunk[9]]);
        CodedSymbol { ids: ShortId::from_bytes(id).0, checksums }
    })
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_ids(out: &mut Vec<u8>, packed: &[u8]) {
    put_varint(out, (packed.len() / SHORT_ID_LEN) as u64);
    out.extend_from_slice(packed);
}

fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    put_varint(out, entry.key.len() as u64);
    out.extend_from_slice(&entry.key);
    put_varint(out, entry.value.len() as u64);
    out.extend_from_slice(&entry.value);
    put_varint(out, entry.version.hlc);
    put_varint(out, entry.version.counter);
    out.extend_from_slice(&entry.version.origin.0);
    out.push(entry.version.flags());
}

/// Compression codes of an `Items` body.
mod codec {
    pub const RAW: u8 = 0;
    pub const ZSTD: u8 = 1;
}

/// Bodies shorter than this are sent raw: zstd's frame overhead would eat the gain.
const COMPRESS_MIN_LEN: usize = 256;
/// zstd level 1: ratio 5.4–6.1 on text and JSON batches at 325–460 MB/s compress plus
/// decompress on one core, against lz4's 3.5 at 900–1,400 MB/s (`cargo bench --bench
/// compression`, docs/adr/006-compression.md).
const ZSTD_LEVEL: i32 = 1;

/// Writes `raw` zstd-compressed when that saves at least an eighth, raw otherwise.
fn put_compressed(out: &mut Vec<u8>, raw: &[u8]) {
    if raw.len() >= COMPRESS_MIN_LEN {
        if let Ok(packed) = zstd::bulk::compress(raw, ZSTD_LEVEL) {
            if packed.len() < raw.len() - raw.len() / 8 {
                out.push(codec::ZSTD);
                put_varint(out, raw.len() as u64);
                out.extend_from_slice(&packed);
                return;
            }
        }
    }
    out.push(codec::RAW);
    out.extend_from_slice(raw);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], MessageError> {
        if self.bytes.len() < len {
            return Err(MessageError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn varint(&mut self) -> Result<u64, MessageError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first().ok_or(MessageError::Truncated)?;
            if shift == 63 && byte > 1 {
                return Err(MessageError::Invalid("varint overflows 64 bits"));
            }
            value |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MessageError::Invalid("varint longer than 10 bytes"))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        u32::try_from(self.varint()?).map_err(|_| MessageError::Invalid("value over 32 bits"))
    }

    /// A count of items each at least `min_item_len` bytes: refused when the frame could
    /// not hold that many, so no allocation exceeds what the frame carries.
    fn bounded_count(&mut self, min_item_len: usize) -> Result<usize, MessageError> {
        let count = self.varint()?;
        if count > (self.bytes.len() / min_item_len) as u64 {
            return Err(MessageError::Truncated);
        }
        Ok(count as usize)
    }

    /// The rest of the frame as written by `put_compressed`, decompressed into at most
    /// `max_len` bytes (a declared size over the cap is refused before any allocation).
    fn compressed(&mut self, max_len: usize) -> Result<std::borrow::Cow<'a, [u8]>, MessageError> {
        match self.array::<1>()?[0] {
            codec::RAW => Ok(std::borrow::Cow::Borrowed(std::mem::take(&mut self.bytes))),
            codec::ZSTD => {
                let raw_len = usize::try_from(self.varint()?).map_err(|_| MessageError::Truncated)?;
                if raw_len > max_len {
                    return Err(MessageError::Invalid("declared size over the frame cap"));
                }
                let packed = std::mem::take(&mut self.bytes);
                let raw = zstd::bulk::decompress(packed, raw_len).map_err(|_| MessageError::Invalid("corrupt zstd body"))?;
                if raw.len() != raw_len {
                    return Err(MessageError::Invalid("zstd body of the wrong size"));
                }
                Ok(std::borrow::Cow::Owned(raw))
            }
            _ => Err(MessageError::Invalid("unknown compression")),
        }
    }

    fn ids(&mut self) -> Result<&'a [u8], MessageError> {
        let count = self.bounded_count(SHORT_ID_LEN)?;
        self.take(count * SHORT_ID_LEN)
    }

    fn entry(&mut self) -> Result<Entry, MessageError> {
        let key_len = self.varint()?;
        let key = self.take(usize::try_from(key_len).map_err(|_| MessageError::Truncated)?)?;
        let value_len = self.varint()?;
        let value = self.take(usize::try_from(value_len).map_err(|_| MessageError::Truncated)?)?;
        check_bounds(key, value).map_err(|_| MessageError::Invalid("key or value over its bound"))?;
        let (hlc, counter) = (self.varint()?, self.varint()?);
        let origin = NodeId(self.array()?);
        let flags = self.array::<1>()?[0];
        let version = Version::from_parts(hlc, origin, counter, flags).map_err(|_| MessageError::Invalid("version flags"))?;
        if version.tombstone && !value.is_empty() {
            return Err(MessageError::Invalid("tombstone with a value"));
        }
        Ok(Entry { key: key.to_vec(), value: value.to_vec(), version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: Message<'_>) {
        let mut bytes = Vec::new();
        message.encode(7, 3, &mut bytes);
        let frame = decode(&bytes, 1 << 20).unwrap();
        assert_eq!((frame.session, frame.seq), (7, 3));
        assert_eq!(frame.message, message);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], 1 << 20).is_err(), "a frame cut at {cut} must not decode");
        }
    }

    #[test]
    fn every_message_round_trips_and_no_prefix_decodes() {
        let entry = Entry {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            version: Version { hlc: 300, origin: NodeId([4; 32]), counter: 2, tombstone: false },
        };
        let ids = pack_ids([ShortId(5), ShortId(0xFFFF_FFFF_FFFF)]);
        let symbols = pack_symbols(&[CodedSymbol { ids: 9, checksums: 10 }]);
        round_trip(Message::Hello { category: [1; 8], scope: TreePath::ROOT, root: Digest([2; 32]), count: 1_000_000 });
        let scope = TreePath::new(0xA5 << 56, 8).unwrap();
        round_trip(Message::Hello { category: [1; 8], scope, root: Digest([2; 32]), count: 7 });
        round_trip(Message::Abort { code: ABORT_SKETCH_EXHAUSTED, detail: 65_536 });
        round_trip(Message::Equal);
        let mut counters = Box::new([0i64; ESTIMATOR_COUNTERS]);
        counters[0] = -5;
        counters[63] = i64::MAX;
        round_trip(Message::Estimate { root: Digest([3; 32]), count: 9, capacity: 65_536, counters });
        round_trip(Message::Symbols { start: 0, total: 1, symbols: &symbols });
        round_trip(Message::More { total: 64 });
        round_trip(Message::Decoded { you_send: &ids, you_receive: &[], conflicts: vec![Conflict { yours: ShortId(1), mine: ShortId(2), position: 3, hlc: 99 }], item_frames: 2 });
        round_trip(Message::Transfer { request: &ids, item_frames: 0 });
        round_trip(Message::Items { part: 1, entries: vec![entry.clone()] });
        // The smallest entry (found by the fuzzer: a too-large lower bound refused it).
        let smallest = Entry { key: vec![], value: vec![], version: Version::default() };
        round_trip(Message::Items { part: 0, entries: vec![smallest.clone(), smallest] });
        // Large enough to be compressed.
        let many: Vec<Entry> = (0..50).map(|i| Entry { key: format!("key-{i}").into_bytes(), ..entry.clone() }).collect();
        let mut bytes = Vec::new();
        Message::Items { part: 0, entries: many.clone() }.encode(1, 1, &mut bytes);
        assert!(bytes.len() < many.iter().map(entry_wire_len).sum::<usize>() / 2, "compressed: {} bytes", bytes.len());
        round_trip(Message::Items { part: 0, entries: many });
        round_trip(Message::Finished { root: Digest([5; 32]), item_frames: 1 });
    }

    #[test]
    fn oversized_unknown_and_trailing_frames_are_refused() {
        let mut bytes = Vec::new();
        Message::Equal.encode(1, 1, &mut bytes);
        assert_eq!(decode(&bytes, 4), Err(MessageError::Oversized { len: 12, max: 4 }));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing, 100), Err(MessageError::TrailingBytes));
        let mut unknown = bytes.clone();
        unknown[1] = 77;
        assert_eq!(decode(&unknown, 100), Err(MessageError::UnknownKind(77)));
        unknown[0] = 9;
        assert_eq!(decode(&unknown, 100), Err(MessageError::UnknownVersion(9)));
    }

    #[test]
    fn a_huge_declared_count_is_refused_before_allocating() {
        let mut bytes = Vec::new();
        Message::Items { part: 0, entries: vec![] }.encode(1, 1, &mut bytes);
        bytes.truncate(bytes.len() - 1);
        put_varint(&mut bytes, u64::MAX / 2);
        assert_eq!(decode(&bytes, 1 << 20), Err(MessageError::Truncated));
    }
}
