//! What a node keeps on disk, in its data directory's log (src/storage): one record per
//! acknowledged local write, and snapshots of the whole state.
//!
//! - **Local writes** (put, delete, counter add) are acknowledged to the host only once
//!   their record is durable: the host thread appends it to the group-commit log after
//!   the engine applied the write, so many writers share one fdatasync.
//! - **Everything else** (entries learnt from peers) reaches the disk through snapshots,
//!   taken periodically and at close; after a crash, what a peer taught us since the
//!   last snapshot is learnt again from the peers by anti-entropy.
//! - **Recovery** replays the newest snapshot and then every record after it, with
//!   last-writer-wins, so the order of records does not matter: two threads that append
//!   in the opposite order of their writes recover the same state.
//!
//! Record payload, version 1 (little-endian, fixed widths; every length is checked
//! against the state's bounds before anything is allocated):
//! `1u8 ‖ name_len u8 ‖ name ‖ key_len u32 ‖ key ‖ value_len u32 ‖ value ‖ hlc u64 ‖
//! counter u64 ‖ origin [32] ‖ flags u8`. A snapshot is `1u8` followed by the same
//! entry encodings back to back.

use std::fmt;

use crate::state::category::validate_name;
use crate::state::{Entry, NodeId, Version, MAX_KEY_LEN, MAX_VALUE_LEN};

/// The format byte of records and snapshots.
const FORMAT: u8 = 1;

/// Why a record or snapshot did not decode (the log's checksums passed, so this is a
/// bug or a record from a newer version).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DurableDecodeError {
    /// An unknown format byte.
    UnknownFormat(u8),
    /// The bytes end early.
    Truncated,
    /// A name, key or value out of bounds, or an impossible version.
    Invalid(&'static str),
}

impl fmt::Display for DurableDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableDecodeError::UnknownFormat(format) => {
                write!(f, "log record of unknown format {format}: written by a newer bhsync?")
            }
            DurableDecodeError::Truncated => write!(f, "log record truncated"),
            DurableDecodeError::Invalid(what) => write!(f, "log record invalid: {what}"),
        }
    }
}

impl std::error::Error for DurableDecodeError {}

/// Encodes one entry of `category` as a log record payload.
pub fn encode_record(category: &str, entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entry_len(category, entry));
    out.push(FORMAT);
    put_entry(&mut out, category, entry);
    out
}

/// Decodes a log record payload.
pub fn decode_record(bytes: &[u8]) -> Result<(String, Entry), DurableDecodeError> {
    let mut reader = Reader { bytes };
    reader.format()?;
    let decoded = reader.entry()?;
    if !reader.bytes.is_empty() {
        return Err(DurableDecodeError::Invalid("trailing bytes"));
    }
    Ok(decoded)
}

/// Encodes a snapshot of `entries` (category, entry) pairs.
pub fn encode_snapshot<'a>(entries: impl Iterator<Item = (&'a str, Entry)>) -> Vec<u8> {
    let mut out = vec![FORMAT];
    for (category, entry) in entries {
        put_entry(&mut out, category, &entry);
    }
    out
}

/// Decodes a snapshot, calling `each` for every (category, entry).
pub fn decode_snapshot(bytes: &[u8], mut each: impl FnMut(String, Entry)) -> Result<(), DurableDecodeError> {
    let mut reader = Reader { bytes };
    reader.format()?;
    while !reader.bytes.is_empty() {
        let (category, entry) = reader.entry()?;
        each(category, entry);
    }
    Ok(())
}

fn entry_len(category: &str, entry: &Entry) -> usize {
    1 + category.len() + 4 + entry.key.len() + 4 + entry.value.len() + 8 + 8 + 32 + 1
}

fn put_entry(out: &mut Vec<u8>, category: &str, entry: &Entry) {
    out.push(category.len() as u8);
    out.extend_from_slice(category.as_bytes());
    out.extend_from_slice(&(entry.key.len() as u32).to_le_bytes());
    out.extend_from_slice(&entry.key);
    out.extend_from_slice(&(entry.value.len() as u32).to_le_bytes());
    out.extend_from_slice(&entry.value);
    out.extend_from_slice(&entry.version.hlc.to_le_bytes());
    out.extend_from_slice(&entry.version.counter.to_le_bytes());
    out.extend_from_slice(&entry.version.origin.0);
    out.push(entry.version.flags());
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DurableDecodeError> {
        if self.bytes.len() < len {
            return Err(DurableDecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize, DurableDecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| DurableDecodeError::Truncated)?) as usize)
    }

    fn u64(&mut self) -> Result<u64, DurableDecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| DurableDecodeError::Truncated)?))
    }

    fn format(&mut self) -> Result<(), DurableDecodeError> {
        match self.take(1)?[0] {
            FORMAT => Ok(()),
            other => Err(DurableDecodeError::UnknownFormat(other)),
        }
    }

    fn entry(&mut self) -> Result<(String, Entry), DurableDecodeError> {
        let name_len = self.take(1)?[0] as usize;
        let name = std::str::from_utf8(self.take(name_len)?).map_err(|_| DurableDecodeError::Invalid("name"))?;
        validate_name(name).map_err(|_| DurableDecodeError::Invalid("category name"))?;
        let key_len = self.u32()?;
        if key_len > MAX_KEY_LEN {
            return Err(DurableDecodeError::Invalid("key too long"));
        }
        let key = self.take(key_len)?.to_vec();
        let value_len = self.u32()?;
        if value_len > MAX_VALUE_LEN {
            return Err(DurableDecodeError::Invalid("value too long"));
        }
        let value = self.take(value_len)?.to_vec();
        let (hlc, counter) = (self.u64()?, self.u64()?);
        let origin = NodeId(self.take(32)?.try_into().map_err(|_| DurableDecodeError::Truncated)?);
        let flags = self.take(1)?[0];
        let version =
            Version::from_parts(hlc, origin, counter, flags).map_err(|_| DurableDecodeError::Invalid("version"))?;
        Ok((name.to_owned(), Entry { key, value, version }))
    }
}

/// The whole state of `core` as snapshot bytes (every category, tombstones included).
pub fn snapshot_of(core: &super::NodeCore) -> Vec<u8> {
    let replica = core.replica();
    let mut entries = Vec::new();
    for category in replica.categories() {
        category.for_each_entry(&mut |entry| entries.push((category.name(), entry.to_entry())));
    }
    encode_snapshot(entries.into_iter())
}

/// Replays what a node's log recovered into `core`: the newest snapshot, then every
/// record after it, last writer wins (the engine's `Node::open` and the swarm's
/// simulated nodes both recover this way).
pub fn replay(
    recovery: &crate::storage::Recovery,
    core: &mut super::NodeCore,
    now: u64,
) -> Result<(), super::NodeError> {
    use super::NodeError;
    let mut restored: std::collections::BTreeMap<String, Vec<Entry>> = Default::default();
    if let Some(snapshot) = &recovery.snapshot {
        decode_snapshot(&snapshot.state, |category, entry| restored.entry(category).or_default().push(entry))
            .map_err(|error| NodeError::Io(format!("snapshot: {error}")))?;
    }
    for record in &recovery.records {
        let (category, entry) = decode_record(&record.payload)
            .map_err(|error| NodeError::Io(format!("log record {}: {error}", record.seq)))?;
        restored.entry(category).or_default().push(entry);
    }
    for (category, entries) in restored {
        // A category no longer configured is skipped: its records stay in the log.
        if core.category_root(&category).is_some() {
            core.restore(now, &category, &entries)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(key: &[u8], value: &[u8], tombstone: bool) -> Entry {
        Entry {
            key: key.to_vec(),
            value: value.to_vec(),
            version: Version { hlc: 7 << 16, origin: NodeId([3; 32]), counter: 9, tombstone },
        }
    }

    #[test]
    fn records_round_trip_including_tombstones() {
        for tombstone in [false, true] {
            let original = entry(b"key", if tombstone { b"" } else { b"value" }, tombstone);
            let bytes = encode_record("users", &original);
            assert_eq!(decode_record(&bytes), Ok(("users".to_owned(), original)));
        }
    }

    #[test]
    fn snapshots_round_trip() {
        let entries = vec![("a", entry(b"1", b"x", false)), ("b", entry(b"2", b"", true))];
        let bytes = encode_snapshot(entries.clone().into_iter());
        let mut decoded = Vec::new();
        decode_snapshot(&bytes, |category, entry| decoded.push((category, entry))).expect("decodes");
        let expected: Vec<(String, Entry)> = entries.into_iter().map(|(c, e)| (c.to_owned(), e)).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn every_cut_of_a_record_is_refused() {
        let bytes = encode_record("users", &entry(b"key", b"value", false));
        for cut in 0..bytes.len() {
            assert!(decode_record(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_record(&bytes);
            let _ = decode_snapshot(&bytes, |_, _| {});
        }
    }
}
