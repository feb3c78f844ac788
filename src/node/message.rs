//! The node-level wire format: what one node core sends another inside an
//! authenticated, encrypted connection (the engine frames and encrypts; this module only
//! gives the payload a shape).
//!
//! A message is a 1-byte channel tag and a body:
//!
//! ```text
//! 1 Reconcile    flags(1: bit 0 = for the initiator) · category · reconcile frame (src/reconcile)
//! 2 Push         hops(1) · category · batch                (new writes, eager push)
//! 3 BulkRequest  sync(u32 LE) · category                   ("stream me the whole category")
//! 4 Bulk         sync(u32 LE) · seq(u32 LE) · flags(1: bit 0 last, bit 1 reply) · category ·
//!                [root(32), on the last frame] · batch
//! 5 Raft         category · a raft message of the category's group (src/consensus, ADR 070)
//! category       len(1, 1..=64) · printable ASCII name
//! batch          digest(32) · codec(1: 0 raw, 1 zstd + varint raw length) · body
//! body           varint count · entries in the reconcile `Items` entry format
//! ```
//!
//! A batch's digest is BLAKE3 over the leaf digests of its entries in order: the receiver
//! recomputes every leaf digest anyway (to insert the entry), so checking costs one
//! hash of 32 bytes per entry and a corrupted or tampered batch is refused whole.
//! Entries decode as slices of the (decompressed) body: no allocation per entry.
//! Decoding checks every length against the bytes present and `max_len` before it
//! allocates, and never panics.

use std::borrow::Cow;

use crate::state::category::validate_name as validate_category_name;
use crate::state::{check_bounds, Digest, EntryRef, NodeId, Version};

/// Channel tags.
mod tag {
    pub const RECONCILE: u8 = 1;
    pub const PUSH: u8 = 2;
    pub const BULK_REQUEST: u8 = 3;
    pub const BULK: u8 = 4;
    pub const RAFT: u8 = 5;
}

mod codec {
    pub const RAW: u8 = 0;
    pub const ZSTD: u8 = 1;
}

/// Bodies shorter than this go raw: zstd's frame overhead would eat the gain.
const COMPRESS_MIN_LEN: usize = 256;
/// zstd level 1, as the reconciliation `Items` frames (docs/adr/006-compression.md).
const ZSTD_LEVEL: i32 = 1;
/// Bytes of an entry beside its key and value, at most (as `entry_wire_len` in reconcile).
pub const ENTRY_OVERHEAD: usize = 3 + 4 + 10 + 10 + 32 + 1;

/// Why a message could not be decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// Longer than the cap.
    Oversized {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Ends before its contents do.
    Truncated,
    /// Bytes left after the contents.
    TrailingBytes,
    /// Unknown channel tag.
    UnknownChannel(u8),
    /// A field is out of its range.
    Invalid(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Oversized { len, max } => write!(f, "message of {len} bytes is over the cap of {max}"),
            DecodeError::Truncated => f.write_str("message is truncated"),
            DecodeError::TrailingBytes => f.write_str("message has trailing bytes"),
            DecodeError::UnknownChannel(tag) => write!(f, "unknown channel {tag}"),
            DecodeError::Invalid(why) => write!(f, "invalid field: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A batch of entries as it travels: its digest and its (decompressed) body.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Batch<'a> {
    /// BLAKE3 over the leaf digests of the entries, in order.
    pub digest: Digest,
    /// Entry count, then the entries.
    pub body: Cow<'a, [u8]>,
    /// How many entries the body holds (checked at decode).
    pub count: usize,
}

impl Batch<'_> {
    /// The entries, borrowed from the body (validated at decode, so this never fails
    /// on a decoded batch; a hand-made one stops at its first malformed entry).
    pub fn entries(&self) -> impl Iterator<Item = WireEntry<'_>> + '_ {
        let mut reader = Reader { bytes: &self.body };
        let count = reader.varint().unwrap_or(0);
        (0..count).map_while(move |_| reader.entry().ok())
    }
}

/// One entry read from a batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WireEntry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value (empty for a tombstone).
    pub value: &'a [u8],
    /// The version.
    pub version: Version,
}

/// One node-level message; bulk fields borrow from the bytes it was read from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NodeMessage<'a> {
    /// A reconciliation frame of one category.
    Reconcile {
        /// For the receiver's initiator (else for its responder).
        to_initiator: bool,
        /// The category.
        category: &'a str,
        /// The reconciliation frame.
        frame: &'a [u8],
    },
    /// New writes, pushed eagerly.
    Push {
        /// Relays so far (0 from the writer).
        hops: u8,
        /// The category.
        category: &'a str,
        /// The entries.
        batch: Batch<'a>,
    },
    /// Asks the receiver to stream the whole category back.
    BulkRequest {
        /// The requester's sync id (echoed in the stream).
        sync: u32,
        /// The category.
        category: &'a str,
    },
    /// One frame of a whole-category stream.
    Bulk {
        /// The sync id it answers (or the sender's own, when unrequested).
        sync: u32,
        /// Frame number in the stream.
        seq: u32,
        /// On the last frame, the sender's category root when it was sent (the receiver
        /// skips verification when its root is the same).
        last: Option<Digest>,
        /// Whether the stream answers the receiver's `BulkRequest` (`sync` is then the
        /// receiver's id); otherwise it is unrequested and `sync` is the sender's.
        reply: bool,
        /// The category.
        category: &'a str,
        /// The entries.
        batch: Batch<'a>,
    },
    /// A raft message of a strong category's group (decoded by src/consensus).
    Raft {
        /// The category.
        category: &'a str,
        /// The raft message.
        bytes: &'a [u8],
    },
}

/// Builds batches straight from stored entries: no `Entry` per item.
pub struct BatchWriter {
    body: Vec<u8>,
    hasher: blake3::Hasher,
    count: u64,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> Self {
        BatchWriter { body: Vec::new(), hasher: blake3::Hasher::new(), count: 0 }
    }

    /// Appends one entry version; `digest` is its leaf digest.
    pub fn push(&mut self, key: &[u8], value: &[u8], version: &Version, digest: &Digest) {
        put_varint(&mut self.body, key.len() as u64);
        self.body.extend_from_slice(key);
        put_varint(&mut self.body, value.len() as u64);
        self.body.extend_from_slice(value);
        put_varint(&mut self.body, version.hlc);
        put_varint(&mut self.body, version.counter);
        self.body.extend_from_slice(&version.origin.0);
        self.body.push(version.flags());
        self.hasher.update(&digest.0);
        self.count += 1;
    }

    /// Appends a stored entry.
    pub fn push_ref(&mut self, entry: &EntryRef<'_>) {
        self.push(entry.key, entry.value, &entry.version, entry.digest);
    }

    /// Entries so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Body bytes so far (a bound on the encoded batch, plus 48).
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Writes the batch to `out`, compressed when `compress` and zstd saves an eighth.
    /// Returns whether it was compressed.
    fn finish(self, out: &mut Vec<u8>, compress: bool) -> bool {
        out.extend_from_slice(self.hasher.finalize().as_bytes());
        let mut raw = Vec::with_capacity(self.body.len() + 10);
        put_varint(&mut raw, self.count);
        raw.extend_from_slice(&self.body);
        if compress && raw.len() >= COMPRESS_MIN_LEN {
            if let Ok(packed) = zstd::bulk::compress(&raw, ZSTD_LEVEL) {
                if packed.len() < raw.len() - raw.len() / 8 {
                    out.push(codec::ZSTD);
                    put_varint(out, raw.len() as u64);
                    out.extend_from_slice(&packed);
                    return true;
                }
            }
        }
        out.push(codec::RAW);
        out.extend_from_slice(&raw);
        false
    }
}

/// The leaf-digest hash a batch carries, computed over digests in order.
pub fn batch_digest<'a>(digests: impl IntoIterator<Item = &'a Digest>) -> Digest {
    let mut hasher = blake3::Hasher::new();
    digests.into_iter().for_each(|d| {
        hasher.update(&d.0);
    });
    Digest(*hasher.finalize().as_bytes())
}

/// Encodes a `Reconcile` message.
pub fn encode_reconcile(to_initiator: bool, category: &str, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + category.len() + 3);
    out.push(tag::RECONCILE);
    out.push(to_initiator as u8);
    put_category(&mut out, category);
    out.extend_from_slice(frame);
    out
}

/// The hop count of a push carried by the host's broadcast tree (the machine's
/// Plumtree): above any relay bound, so the receiving core never relays it.
pub const HOPS_CARRIED: u8 = u8::MAX;

/// Encodes a `Push` message; returns it and whether the batch was compressed.
pub fn encode_push(hops: u8, category: &str, batch: BatchWriter, compress: bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(batch.body_len() + category.len() + 64);
    out.push(tag::PUSH);
    out.push(hops);
    put_category(&mut out, category);
    let compressed = batch.finish(&mut out, compress);
    (out, compressed)
}

/// Encodes a `BulkRequest` message.
pub fn encode_bulk_request(sync: u32, category: &str) -> Vec<u8> {
    let mut out = vec![tag::BULK_REQUEST];
    out.extend_from_slice(&sync.to_le_bytes());
    put_category(&mut out, category);
    out
}

/// Encodes a `Bulk` frame; returns it and whether the batch was compressed.
pub fn encode_bulk(
    sync: u32,
    seq: u32,
    last: Option<&Digest>,
    reply: bool,
    category: &str,
    batch: BatchWriter,
    compress: bool,
) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(batch.body_len() + category.len() + 64);
    out.push(tag::BULK);
    out.extend_from_slice(&sync.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(last.is_some() as u8 | (reply as u8) << 1);
    put_category(&mut out, category);
    if let Some(root) = last {
        out.extend_from_slice(&root.0);
    }
    let compressed = batch.finish(&mut out, compress);
    (out, compressed)
}

/// Encodes a `Raft` message.
pub fn encode_raft(category: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + category.len() + 2);
    out.push(tag::RAFT);
    put_category(&mut out, category);
    out.extend_from_slice(bytes);
    out
}

/// Re-encodes a decoded message (raw batches), for round-trip checks.
pub fn encode(message: &NodeMessage<'_>) -> Vec<u8> {
    let rebatch = |batch: &Batch<'_>| {
        let mut writer = BatchWriter::new();
        for entry in batch.entries() {
            writer.push(entry.key, entry.value, &entry.version, &Digest::EMPTY);
        }
        (writer, batch.digest)
    };
    let with_digest = |mut out: Vec<u8>, writer: BatchWriter, digest: Digest| {
        let start = out.len();
        writer.finish(&mut out, false);
        out[start..start + 32].copy_from_slice(&digest.0);
        out
    };
    match message {
        NodeMessage::Reconcile { to_initiator, category, frame } => encode_reconcile(*to_initiator, category, frame),
        NodeMessage::BulkRequest { sync, category } => encode_bulk_request(*sync, category),
        NodeMessage::Raft { category, bytes } => encode_raft(category, bytes),
        NodeMessage::Push { hops, category, batch } => {
            let mut out = vec![tag::PUSH, *hops];
            put_category(&mut out, category);
            let (writer, digest) = rebatch(batch);
            with_digest(out, writer, digest)
        }
        NodeMessage::Bulk { sync, seq, last, reply, category, batch } => {
            let mut out = vec![tag::BULK];
            out.extend_from_slice(&sync.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.push(last.is_some() as u8 | (*reply as u8) << 1);
            put_category(&mut out, category);
            if let Some(root) = last {
                out.extend_from_slice(&root.0);
            }
            let (writer, digest) = rebatch(batch);
            with_digest(out, writer, digest)
        }
    }
}

/// Decodes one message of at most `max_len` bytes (also the bound on a decompressed
/// batch).
pub fn decode(bytes: &[u8], max_len: usize) -> Result<NodeMessage<'_>, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::Oversized { len: bytes.len(), max: max_len });
    }
    let mut r = Reader { bytes };
    let message = match r.byte()? {
        tag::RECONCILE => {
            let flags = r.byte()?;
            if flags > 1 {
                return Err(DecodeError::Invalid("reconcile flags"));
            }
            let category = r.category()?;
            let frame = std::mem::take(&mut r.bytes);
            if frame.len() < crate::reconcile::message::HEADER_LEN {
                return Err(DecodeError::Truncated);
            }
            NodeMessage::Reconcile { to_initiator: flags == 1, category, frame }
        }
        tag::PUSH => {
            let hops = r.byte()?;
            let category = r.category()?;
            NodeMessage::Push { hops, category, batch: r.batch(max_len)? }
        }
        tag::BULK_REQUEST => {
            let sync = r.u32_le()?;
            NodeMessage::BulkRequest { sync, category: r.category()? }
        }
        tag::BULK => {
            let (sync, seq) = (r.u32_le()?, r.u32_le()?);
            let flags = r.byte()?;
            if flags > 3 {
                return Err(DecodeError::Invalid("bulk flags"));
            }
            let category = r.category()?;
            let last = if flags & 1 != 0 { Some(r.digest()?) } else { None };
            NodeMessage::Bulk { sync, seq, last, reply: flags & 2 != 0, category, batch: r.batch(max_len)? }
        }
        tag::RAFT => {
            let category = r.category()?;
            NodeMessage::Raft { category, bytes: std::mem::take(&mut r.bytes) }
        }
        other => return Err(DecodeError::UnknownChannel(other)),
    };
    if !r.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(message)
}

fn put_category(out: &mut Vec<u8>, category: &str) {
    debug_assert!(!category.is_empty() && category.len() <= 64);
    out.push(category.len() as u8);
    out.extend_from_slice(category.as_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32_le(&mut self) -> Result<u32, DecodeError> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(word))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err(DecodeError::Invalid("varint overflows 64 bits"));
            }
            value |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid("varint longer than 10 bytes"))
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)
    }

    fn category(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.byte()? as usize;
        let name = std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::Invalid("category name"))?;
        validate_category_name(name).map_err(|_| DecodeError::Invalid("category name"))?;
        Ok(name)
    }

    fn digest(&mut self) -> Result<Digest, DecodeError> {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(self.take(32)?);
        Ok(Digest(digest))
    }

    fn batch(&mut self, max_len: usize) -> Result<Batch<'a>, DecodeError> {
        let digest = self.digest()?;
        let body: Cow<'a, [u8]> = match self.byte()? {
            codec::RAW => Cow::Borrowed(std::mem::take(&mut self.bytes)),
            codec::ZSTD => {
                let raw_len = self.length()?;
                if raw_len > max_len {
                    return Err(DecodeError::Invalid("declared size over the cap"));
                }
                let packed = std::mem::take(&mut self.bytes);
                let raw =
                    zstd::bulk::decompress(packed, raw_len).map_err(|_| DecodeError::Invalid("corrupt zstd body"))?;
                if raw.len() != raw_len {
                    return Err(DecodeError::Invalid("zstd body of the wrong size"));
                }
                Cow::Owned(raw)
            }
            _ => return Err(DecodeError::Invalid("unknown compression")),
        };
        let count = check_body(&body)?;
        Ok(Batch { digest, body, count })
    }

    fn entry(&mut self) -> Result<WireEntry<'a>, DecodeError> {
        let key_len = self.length()?;
        let key = self.take(key_len)?;
        let value_len = self.length()?;
        let value = self.take(value_len)?;
        check_bounds(key, value).map_err(|_| DecodeError::Invalid("key or value over its bound"))?;
        let (hlc, counter) = (self.varint()?, self.varint()?);
        let mut origin = [0u8; 32];
        origin.copy_from_slice(self.take(32)?);
        let flags = self.byte()?;
        let version = Version::from_parts(hlc, NodeId(origin), counter, flags)
            .map_err(|_| DecodeError::Invalid("version flags"))?;
        if version.tombstone && !value.is_empty() {
            return Err(DecodeError::Invalid("tombstone with a value"));
        }
        Ok(WireEntry { key, value, version })
    }
}

/// Checks a batch body entry by entry; returns the entry count.
fn check_body(body: &[u8]) -> Result<usize, DecodeError> {
    let mut reader = Reader { bytes: body };
    let count = reader.varint()?;
    // Each entry takes at least 36 bytes: refuse a count the body cannot hold.
    if count > (reader.bytes.len() / 36) as u64 {
        return Err(DecodeError::Truncated);
    }
    for _ in 0..count {
        reader.entry()?;
    }
    if !reader.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn version(hlc: u64) -> Version {
        Version { hlc, origin: NodeId([7; 32]), counter: hlc + 1, tombstone: false }
    }

    fn batch_of(count: usize, value_len: usize) -> BatchWriter {
        let mut writer = BatchWriter::new();
        for i in 0..count {
            let key = format!("key-{i}");
            writer.push(key.as_bytes(), &vec![b'v'; value_len], &version(i as u64), &Digest([i as u8; 32]));
        }
        writer
    }

    #[test]
    fn every_message_round_trips_and_no_prefix_decodes() {
        let mut frame = Vec::new();
        crate::reconcile::Message::Equal.encode(3, 4, &mut frame);
        let (push, _) = encode_push(2, "users", batch_of(3, 5), false);
        let (bulk, _) = encode_bulk(9, 1, Some(&Digest([3; 32])), true, "users", batch_of(2, 0), false);
        let messages = [encode_reconcile(true, "users", &frame), push, encode_bulk_request(5, "a"), bulk];
        for bytes in &messages {
            let decoded = decode(bytes, 1 << 20).unwrap();
            assert_eq!(&encode(&decoded), bytes);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut], 1 << 20).is_err(), "cut at {cut} of {decoded:?} decoded");
            }
        }
    }

    #[test]
    fn a_compressible_batch_is_compressed_and_decodes_to_the_same_entries() {
        let (bytes, compressed) = encode_push(0, "c", batch_of(100, 100), true);
        assert!(compressed && bytes.len() < 100 * 100 / 4, "{} bytes", bytes.len());
        let NodeMessage::Push { batch, .. } = decode(&bytes, 1 << 20).unwrap() else { panic!("not a push") };
        assert_eq!(batch.count, 100);
        assert_eq!(batch.entries().count(), 100);
        assert!(batch.entries().all(|e| e.value.len() == 100));
    }

    #[test]
    fn bounds_are_enforced() {
        let (bytes, _) = encode_push(0, "c", batch_of(100, 100), true);
        assert!(matches!(decode(&bytes, 1000), Err(DecodeError::Invalid(_)) | Err(DecodeError::Oversized { .. })));
        assert_eq!(decode(&[9], 10), Err(DecodeError::UnknownChannel(9)));
        let mut bad_name = encode_bulk_request(1, "ab");
        bad_name[6] = b' ';
        assert_eq!(decode(&bad_name, 100), Err(DecodeError::Invalid("category name")));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(message) = decode(&bytes, 1 << 16) {
                let again = encode(&message);
                prop_assert_eq!(decode(&again, 1 << 16).map(|m| encode(&m)), Ok(again.clone()));
            }
        }

        #[test]
        fn mutated_messages_never_panic(index in 0usize..400, byte in any::<u8>()) {
            let (mut bytes, _) = encode_push(0, "c", batch_of(4, 10), false);
            let index = index % bytes.len();
            bytes[index] = byte;
            let _ = decode(&bytes, 1 << 16).map(|m| encode(&m));
        }
    }
}
