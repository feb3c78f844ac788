//! Verifying one segment's bytes: the sans-IO heart of recovery.
//!
//! A scan walks records from the start of a segment, checking each one's checksum,
//! sequence number and `prev_hash`. It stops at the first record that fails and says
//! whether that looks like a **torn tail** (what a crash in the middle of the last
//! write leaves) or **corruption** (an intact record in the wrong place, or damage that
//! acknowledged records may share). Recovery truncates the first only in the last
//! segment and refuses the second. The rule follows the classic write-ahead-log recovery
//! of LevelDB/RocksDB's "tolerate corrupted tail records" mode, tightened by the hash
//! chain and by the write boundaries the record magic marks (docs/adr/042):
//!
//! - damage with no intact record after it is a torn tail (the last write was cut short);
//! - damage followed only by intact *continuation* records ("BHLC", later sequence
//!   numbers) is a torn tail too: nothing after the damage starts a new write, so the
//!   damage and all after it lie inside the last write, whose sync never returned
//!   (a synced write would not be damaged by a crash), so none of it was acknowledged;
//! - damage followed by an intact record that starts a write ("BHLR") is corruption:
//!   the damaged bytes belong to an earlier write, which was acknowledged.

use super::error::CorruptReason;
use super::record::{decode_record, RecordDamage, RecordHash, WritePosition, RECORD_MAGIC, RECORD_MAGIC_CONTINUATION};

/// Where one verified record sits in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    /// Its sequence number.
    pub seq: u64,
    /// Byte offset of its header in the segment.
    pub offset: u64,
    /// Header plus payload bytes.
    pub len: u32,
    /// Its record hash.
    pub hash: RecordHash,
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belongs to a verified record.
    Clean,
    /// A damaged or incomplete record at `offset` inside the last write: nothing intact
    /// after it, or only continuation records of the same write.
    Torn {
        /// Where the valid prefix ends.
        offset: u64,
        /// What was wrong with the first bad record.
        damage: RecordDamage,
    },
    /// Damage that a crash cannot explain.
    Corrupt {
        /// Offset of the offending record.
        offset: u64,
        /// Why.
        reason: CorruptReason,
    },
}

/// The result of scanning one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// The verified records, in order.
    pub records: Vec<RecordPosition>,
    /// Bytes of the verified prefix.
    pub valid_len: u64,
    /// How the scan ended.
    pub end: ScanEnd,
}

impl SegmentScan {
    /// The hash of the last verified record, or `prev` if none.
    pub fn last_hash_or(&self, prev: RecordHash) -> RecordHash {
        self.records.last().map_or(prev, |record| record.hash)
    }
}

/// Scans `bytes`, expecting the first record to be `first_seq` and to carry
/// `expected_prev` (when known: `None` after older segments were compacted away).
pub fn scan_segment(bytes: &[u8], first_seq: u64, expected_prev: Option<RecordHash>, payload_max: u32) -> SegmentScan {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut prev = expected_prev;
    let mut seq = first_seq;
    while offset < bytes.len() {
        let record = match decode_record(&bytes[offset..], payload_max) {
            Ok(record) => record,
            Err(damage) => return damaged_end(bytes, offset, damage, records, seq, payload_max),
        };
        let reason = if record.header.seq != seq {
            Some(CorruptReason::WrongSequence { expected: seq, found: record.header.seq })
        } else if prev.is_some_and(|prev| prev != record.header.prev_hash) {
            Some(CorruptReason::BrokenChain)
        } else {
            None
        };
        if let Some(reason) = reason {
            let end = ScanEnd::Corrupt { offset: offset as u64, reason };
            return SegmentScan { records, valid_len: offset as u64, end };
        }
        let len = record.encoded_len() as u32;
        records.push(RecordPosition { seq, offset: offset as u64, len, hash: record.hash });
        prev = Some(record.hash);
        seq += 1;
        offset += len as usize;
    }
    SegmentScan { records, valid_len: offset as u64, end: ScanEnd::Clean }
}

fn damaged_end(
    bytes: &[u8],
    offset: usize,
    damage: RecordDamage,
    records: Vec<RecordPosition>,
    due_seq: u64,
    payload_max: u32,
) -> SegmentScan {
    let end = if inside_last_write(bytes, offset + 1, due_seq, payload_max) {
        ScanEnd::Torn { offset: offset as u64, damage }
    } else {
        ScanEnd::Corrupt { offset: offset as u64, reason: CorruptReason::DamagedBeforeValidRecords }
    };
    SegmentScan { records, valid_len: offset as u64, end }
}

/// Whether everything from `from` to the end can belong to the write that holds the
/// damaged record due as `due_seq`: every intact record (either magic, checksum holding)
/// starting at or after `from` continues a write ("BHLC") and carries a later sequence
/// number than the one before it. A crash leaves only garbage, zeros or the rest of the
/// torn write after the damage; an intact record starting a write means the damage sits
/// in an earlier, acknowledged write. An intact record is skipped whole, so a payload
/// that happens to hold a record's bytes is not read as one.
fn inside_last_write(bytes: &[u8], from: usize, due_seq: u64, payload_max: u32) -> bool {
    let magics = [RECORD_MAGIC.to_le_bytes(), RECORD_MAGIC_CONTINUATION.to_le_bytes()];
    let mut last_seq = due_seq;
    let mut at = from;
    while at + 4 <= bytes.len() {
        let magic_here = magics.iter().any(|magic| bytes[at..at + 4] == magic[..]);
        let record = if magic_here { decode_record(&bytes[at..], payload_max).ok() } else { None };
        let Some(record) = record else {
            at += 1;
            continue;
        };
        if record.position() == WritePosition::First || record.header.seq <= last_seq {
            return false;
        }
        last_seq = record.header.seq;
        at += record.encoded_len();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{encode_record, encode_record_at, GENESIS_HASH, HEADER_LEN};

    fn log_of(count: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        let mut prev = GENESIS_HASH;
        for seq in 1..=count {
            starts.push(bytes.len());
            prev = encode_record(&mut bytes, seq, &prev, format!("record {seq}").as_bytes());
        }
        (bytes, starts)
    }

    #[test]
    fn a_clean_segment_verifies_every_record() {
        let (bytes, _) = log_of(10);
        let scan = scan_segment(&bytes, 1, Some(GENESIS_HASH), 1024);
        assert_eq!((scan.records.len(), scan.end, scan.valid_len), (10, ScanEnd::Clean, bytes.len() as u64));
    }

    #[test]
    fn a_truncated_last_record_is_a_torn_tail() {
        let (bytes, starts) = log_of(10);
        for cut in [starts[9] + 1, starts[9] + HEADER_LEN, bytes.len() - 1] {
            let scan = scan_segment(&bytes[..cut], 1, Some(GENESIS_HASH), 1024);
            assert_eq!(scan.records.len(), 9, "cut at {cut}");
            assert!(matches!(scan.end, ScanEnd::Torn { offset, .. } if offset == starts[9] as u64));
        }
    }

    #[test]
    fn a_bit_flip_in_the_middle_is_corruption_not_a_tail() {
        let (mut bytes, starts) = log_of(10);
        bytes[starts[4] + 60] ^= 0x10;
        let scan = scan_segment(&bytes, 1, Some(GENESIS_HASH), 1024);
        let reason = CorruptReason::DamagedBeforeValidRecords;
        assert_eq!(scan.end, ScanEnd::Corrupt { offset: starts[4] as u64, reason });
    }

    #[test]
    fn a_bit_flip_in_the_last_record_is_a_torn_tail() {
        let (mut bytes, starts) = log_of(10);
        bytes[starts[9] + 3] ^= 0x01;
        let scan = scan_segment(&bytes, 1, Some(GENESIS_HASH), 1024);
        assert!(matches!(scan.end, ScanEnd::Torn { .. }));
        assert_eq!(scan.valid_len, starts[9] as u64);
    }

    #[test]
    fn reordered_and_duplicated_records_are_corruption() {
        let (bytes, starts) = log_of(4);
        let record = |i: usize| bytes[starts[i]..starts.get(i + 1).copied().unwrap_or(bytes.len())].to_vec();
        let reordered = [record(0), record(2), record(1), record(3)].concat();
        let scan = scan_segment(&reordered, 1, Some(GENESIS_HASH), 1024);
        let wrong = CorruptReason::WrongSequence { expected: 2, found: 3 };
        assert_eq!(scan.end, ScanEnd::Corrupt { offset: starts[1] as u64, reason: wrong });
        let duplicated = [record(0), record(1), record(1), record(2)].concat();
        let scan = scan_segment(&duplicated, 1, Some(GENESIS_HASH), 1024);
        assert!(matches!(scan.end, ScanEnd::Corrupt { reason: CorruptReason::WrongSequence { .. }, .. }));
    }

    #[test]
    fn a_record_from_another_chain_breaks_the_chain() {
        let (bytes, _) = log_of(3);
        let mut forged = bytes.clone();
        encode_record(&mut forged, 4, &[9; 32], b"forged");
        let scan = scan_segment(&forged, 1, Some(GENESIS_HASH), 1024);
        let end = ScanEnd::Corrupt { offset: bytes.len() as u64, reason: CorruptReason::BrokenChain };
        assert_eq!(scan.end, end);
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let (mut bytes, _) = log_of(3);
        let valid = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        let scan = scan_segment(&bytes, 1, Some(GENESIS_HASH), 1024);
        assert_eq!(scan.valid_len, valid);
        assert!(matches!(scan.end, ScanEnd::Torn { damage: RecordDamage::BadMagic, .. }));
    }

    /// Records 1..=`count`, written as writes of the given sizes (in order, cycling).
    fn log_in_writes(count: u64, sizes: &[u64]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        let mut prev = GENESIS_HASH;
        let mut left_in_write = 0;
        let mut sizes = sizes.iter().cycle();
        for seq in 1..=count {
            let position = if left_in_write == 0 {
                left_in_write = *sizes.next().expect("sizes");
                WritePosition::First
            } else {
                WritePosition::Continuation
            };
            left_in_write -= 1;
            starts.push(bytes.len());
            prev = encode_record_at(&mut bytes, position, seq, &prev, format!("record {seq}").as_bytes());
        }
        (bytes, starts)
    }

    #[test]
    fn a_clean_segment_of_batches_verifies_every_record() {
        let (bytes, _) = log_in_writes(10, &[1, 3, 2]);
        let scan = scan_segment(&bytes, 1, Some(GENESIS_HASH), 1024);
        assert_eq!((scan.records.len(), scan.end), (10, ScanEnd::Clean));
    }

    #[test]
    fn damage_in_the_last_write_followed_by_its_own_records_is_a_torn_tail() {
        // Writes: [1], [2 3 4], [5 6 7 8]; the last write is records 5..=8.
        let (bytes, starts) = log_in_writes(8, &[1, 3, 4]);
        for (damaged, kept) in [(4, 4), (5, 5), (6, 6), (7, 7)] {
            let mut torn = bytes.clone();
            torn[starts[damaged] + 60] ^= 0x08;
            let scan = scan_segment(&torn, 1, Some(GENESIS_HASH), 1024);
            assert!(matches!(scan.end, ScanEnd::Torn { offset, .. } if offset == starts[damaged] as u64), "{damaged}");
            assert_eq!(scan.records.len(), kept, "damage in record {}", damaged + 1);
        }
    }

    #[test]
    fn damage_followed_by_a_record_starting_a_write_is_corruption() {
        // Writes: [1 2 3], [4 5]; damage in the first write, the second starts after it.
        let (mut bytes, starts) = log_in_writes(5, &[3, 2]);
        bytes[starts[1] + 10] ^= 0x40;
        let scan = scan_segment(&bytes, 1, Some(GENESIS_HASH), 1024);
        let reason = CorruptReason::DamagedBeforeValidRecords;
        assert_eq!(scan.end, ScanEnd::Corrupt { offset: starts[1] as u64, reason });
    }

    #[test]
    fn a_continuation_record_that_is_no_later_than_the_damage_is_corruption() {
        // A stale continuation record (an earlier seq) cannot be the rest of the last write.
        let (mut bytes, starts) = log_in_writes(4, &[1, 3]);
        let stale = bytes[starts[2]..starts[3]].to_vec();
        bytes[starts[3] + 5] ^= 0x01;
        bytes.extend_from_slice(&stale);
        let scan = scan_segment(&bytes, 1, Some(GENESIS_HASH), 1024);
        assert!(matches!(scan.end, ScanEnd::Corrupt { reason: CorruptReason::DamagedBeforeValidRecords, .. }));
    }
}
