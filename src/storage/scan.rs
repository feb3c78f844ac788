//! Verifying one segment's bytes: the sans-IO heart of recovery.
//!
//! A scan walks records from the start of a segment, checking each one's checksum,
//! sequence number and `prev_hash`. It stops at the first record that fails and says
//! whether that looks like a **torn tail** (a damaged or incomplete record with no
//! intact record anywhere after it: what a crash in the middle of a write leaves) or
//! **corruption** (an intact record in the wrong place, or damage followed by intact
//! records). Recovery truncates the first only in the last segment and refuses the
//! second. The rule follows the classic write-ahead-log recovery of LevelDB/RocksDB's
//! "tolerate corrupted tail records" mode, tightened by the hash chain.

use super::error::CorruptReason;
use super::record::{decode_record, RecordDamage, RecordHash, RECORD_MAGIC};

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
    /// A damaged or incomplete record at `offset` with nothing intact after it.
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
            Err(damage) => return damaged_end(bytes, offset, damage, records, payload_max),
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
    payload_max: u32,
) -> SegmentScan {
    let end = if intact_record_after(bytes, offset + 1, payload_max) {
        ScanEnd::Corrupt { offset: offset as u64, reason: CorruptReason::DamagedBeforeValidRecords }
    } else {
        ScanEnd::Torn { offset: offset as u64, damage }
    };
    SegmentScan { records, valid_len: offset as u64, end }
}

/// Whether an intact record (magic and checksum hold) starts anywhere at or after
/// `from`. A crash leaves only garbage or zeros after the torn record; an intact one
/// there means damage in the middle.
fn intact_record_after(bytes: &[u8], from: usize, payload_max: u32) -> bool {
    let magic = RECORD_MAGIC.to_le_bytes();
    (from..bytes.len().saturating_sub(3))
        .filter(|&at| bytes[at..at + 4] == magic)
        .any(|at| decode_record(&bytes[at..], payload_max).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{encode_record, GENESIS_HASH, HEADER_LEN};

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
}
