//! Recovery: from a data directory to a verified log head, the latest snapshot and the
//! records after it.
//!
//! Order of work: load the newest snapshot whose own hash holds; verify every segment
//! in order (names, sequence numbers, checksums, the hash chain, the snapshot's head
//! hash); only when all of it verifies, truncate a torn tail of the last segment (or, without
//! one, sync it: what recovery hands back is durable). A corrupt middle returns
//! [`StorageError::Corrupt`] before anything is written.

use std::path::{Path, PathBuf};

use super::disk::{parse_numbered, segment_path, Disk};
use super::error::{CorruptReason, StorageError};
use super::record::{RecordHash, GENESIS_HASH, HEADER_LEN};
use super::scan::{scan_segment, ScanEnd};
use super::snapshot::{decode_snapshot, Snapshot};

/// One record handed back by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// What recovery cut off the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Its length after the cut.
    pub valid_len: u64,
    /// Bytes removed.
    pub bytes_dropped: u64,
}

/// What [`crate::storage::Log::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The newest usable snapshot.
    pub snapshot: Option<Snapshot>,
    /// Every record after the snapshot (or all records), in order.
    pub records: Vec<LogRecord>,
    /// The torn tail that was removed, if any.
    pub torn_tail: Option<TornTail>,
    /// Sequence number of the last record (0 for an empty log).
    pub head_seq: u64,
    /// Its record hash.
    pub head_hash: RecordHash,
    /// Bytes of log verified.
    pub bytes_verified: u64,
}

/// A segment of the recovered log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The first sequence number it holds (from its name).
    pub first_seq: u64,
    /// Its path.
    pub path: PathBuf,
}

/// Recovery's result plus what the writer needs to continue.
pub(crate) struct Recovered {
    pub recovery: Recovery,
    pub segments: Vec<SegmentInfo>,
}

/// Newest valid snapshot in `dir`, with the names of those that did not decode.
pub(crate) fn load_snapshot(disk: &dyn Disk, dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    let names = disk.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|name| parse_numbered(name, "snap")).collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    for seq in seqs {
        let path = super::disk::snapshot_path(dir, seq);
        let bytes = disk.read(&path).map_err(|e| StorageError::io("read", &path, e))?;
        // A damaged snapshot is skipped for an older one; if segments it covered were
        // already deleted, the segment check below refuses with MissingPrefix.
        if let Ok(snapshot) = decode_snapshot(&bytes) {
            if snapshot.through_seq == seq {
                return Ok(Some(snapshot));
            }
        }
    }
    Ok(None)
}

/// Sorted segments of `log_dir`.
pub(crate) fn list_segments(disk: &dyn Disk, log_dir: &Path) -> Result<Vec<SegmentInfo>, StorageError> {
    let names = disk.list(log_dir).map_err(|e| StorageError::io("list", log_dir, e))?;
    let mut firsts: Vec<u64> = names.iter().filter_map(|name| parse_numbered(name, "seg")).collect();
    firsts.sort_unstable();
    Ok(firsts.into_iter().map(|first_seq| SegmentInfo { first_seq, path: segment_path(log_dir, first_seq) }).collect())
}

/// Verifies the log in `log_dir` against `snapshot`, truncates a torn tail (and syncs the
/// last segment), and returns the records after the snapshot.
pub(crate) fn recover(
    disk: &dyn Disk,
    log_dir: &Path,
    snapshot: Option<Snapshot>,
    payload_max: u32,
) -> Result<Recovered, StorageError> {
    let segments = list_segments(disk, log_dir)?;
    let snapshot_seq = snapshot.as_ref().map_or(0, |s| s.through_seq);
    let snapshot_hash = snapshot.as_ref().map_or(GENESIS_HASH, |s| s.head_hash);
    let mut walk = Walk::start(&segments, snapshot_seq, snapshot_hash)?;
    let mut records = Vec::new();
    let mut torn_tail = None;
    let mut last_len = 0;
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        let bytes = disk.read(&segment.path).map_err(|e| StorageError::io("read", &segment.path, e))?;
        torn_tail = walk.segment(segment, &bytes, last, payload_max, &mut records)?;
        last_len = bytes.len() as u64;
    }
    if walk.seq < snapshot_seq || (walk.seq == snapshot_seq && walk.hash != snapshot_hash) {
        let path = segments.last().map_or_else(|| log_dir.to_path_buf(), |s| s.path.clone());
        return Err(StorageError::Corrupt { path, offset: 0, reason: CorruptReason::SnapshotMismatch });
    }
    // Everything verified: only now is the torn tail cut (the one write recovery makes).
    // Without a tail the last segment is still synced (cut to its own length): after a
    // failed write whose truncation failed too, it may hold intact records that reads
    // see but that were never synced. Handing them back undurable would let the log
    // build on them (in a new segment, synced alone) and a crash leave a gap.
    let cut = match (&torn_tail, segments.last()) {
        (Some(tail), _) => Some((&tail.path, tail.valid_len)),
        (None, last) => last.map(|segment| (&segment.path, last_len)),
    };
    if let Some((path, len)) = cut {
        disk.truncate(path, len).map_err(|e| StorageError::io("truncate", path, e))?;
    }
    let recovery =
        Recovery { snapshot, records, torn_tail, head_seq: walk.seq, head_hash: walk.hash, bytes_verified: walk.bytes };
    Ok(Recovered { recovery, segments })
}

/// The position reached while walking the segments.
struct Walk {
    /// Last verified sequence number.
    seq: u64,
    /// Its hash, when known (unknown after compaction until the snapshot's position).
    hash: RecordHash,
    hash_known: bool,
    snapshot_seq: u64,
    snapshot_hash: RecordHash,
    bytes: u64,
}

impl Walk {
    fn start(segments: &[SegmentInfo], snapshot_seq: u64, snapshot_hash: RecordHash) -> Result<Self, StorageError> {
        let first = segments.first().map_or(snapshot_seq + 1, |s| s.first_seq);
        if first == 0 || first > snapshot_seq + 1 {
            let path = segments.first().map(|s| s.path.clone()).unwrap_or_default();
            return Err(StorageError::Corrupt { path, offset: 0, reason: CorruptReason::MissingPrefix });
        }
        let (hash, hash_known) = match first - 1 {
            0 => (GENESIS_HASH, true),
            seq if seq == snapshot_seq => (snapshot_hash, true),
            _ => (GENESIS_HASH, false),
        };
        Ok(Self { seq: first - 1, hash, hash_known, snapshot_seq, snapshot_hash, bytes: 0 })
    }

    fn segment(
        &mut self,
        segment: &SegmentInfo,
        bytes: &[u8],
        last: bool,
        payload_max: u32,
        records: &mut Vec<LogRecord>,
    ) -> Result<Option<TornTail>, StorageError> {
        let corrupt = |offset, reason| StorageError::Corrupt { path: segment.path.clone(), offset, reason };
        if segment.first_seq != self.seq + 1 {
            return Err(corrupt(0, CorruptReason::SegmentGap { expected: self.seq + 1, found: segment.first_seq }));
        }
        let expected_prev = self.hash_known.then_some(self.hash);
        let scan = scan_segment(bytes, segment.first_seq, expected_prev, payload_max);
        for position in &scan.records {
            if position.seq == self.snapshot_seq && position.hash != self.snapshot_hash {
                return Err(corrupt(position.offset, CorruptReason::SnapshotMismatch));
            }
            if position.seq > self.snapshot_seq {
                // Verified by the scan: the payload follows the header.
                let start = position.offset as usize + HEADER_LEN;
                let end = position.offset as usize + position.len as usize;
                records.push(LogRecord { seq: position.seq, payload: bytes[start..end].to_vec() });
            }
        }
        self.seq += scan.records.len() as u64;
        self.hash = scan.last_hash_or(self.hash);
        self.hash_known |= !scan.records.is_empty();
        self.bytes += scan.valid_len;
        match scan.end {
            ScanEnd::Clean => Ok(None),
            ScanEnd::Corrupt { offset, reason } => Err(corrupt(offset, reason)),
            ScanEnd::Torn { offset, .. } if !last => Err(corrupt(offset, CorruptReason::DamagedInEarlierSegment)),
            ScanEnd::Torn { offset, .. } => Ok(Some(TornTail {
                path: segment.path.clone(),
                valid_len: offset,
                bytes_dropped: bytes.len() as u64 - offset,
            })),
        }
    }
}
