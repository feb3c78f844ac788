//! The log's behaviour end to end on real files: reopen gives exactly what was
//! acknowledged; torn tails are cut; a corrupt middle is refused untouched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// A fresh directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("bhsync-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn small_segments() -> LogConfig {
    LogConfig { segment_bytes_max: 4096, ..LogConfig::default() }
}

fn payload(seq: u64) -> Vec<u8> {
    format!("payload number {seq}").into_bytes()
}

fn fill(dir: &Path, count: u64, config: LogConfig) {
    let (log, _) = Log::open(dir, config).unwrap();
    for seq in 1..=count {
        assert_eq!(log.append(&payload(seq)).unwrap(), seq);
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn a_reopened_log_holds_exactly_the_acknowledged_records() {
    let dir = TempDir::new("reopen");
    fill(&dir.0, 100, small_segments());
    let (log, recovery) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!(recovery.records.len(), 100);
    assert!(recovery.records.iter().all(|r| r.payload == payload(r.seq)));
    assert!(segment_files(&dir.0).len() > 1, "small segments rotate");
    assert_eq!(log.append(b"next").unwrap(), 101, "numbering continues after reopen");
}

#[test]
fn concurrent_writers_share_syncs_and_every_ack_survives() {
    let dir = TempDir::new("group");
    let (log, _) = Log::open(&dir.0, LogConfig::default()).unwrap();
    let acked: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..16).map(|_| scope.spawn(|| (0..25).map(|_| log.append(b"x").unwrap()).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let stats = log.stats();
    assert_eq!(stats.records_durable, 400);
    assert!(stats.syncs <= 400);
    drop(log);
    // Group commit: each write (one sync) starts with one "BHLR" record, the rest continue it.
    let segment = segment_files(&dir.0).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let starts = record_offsets(&segment, 1).iter().filter(|&&at| &bytes[at..at + 4] == b"BHLR").count();
    assert_eq!((starts as u64, &bytes[..4]), (stats.syncs, &b"BHLR"[..]), "one write start per sync");
    let (_, recovery) = Log::open(&dir.0, LogConfig::default()).unwrap();
    let mut sorted = acked.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=400).collect::<Vec<_>>(), "every ack has its own sequence number");
    assert_eq!(recovery.head_seq, 400);
}

#[test]
fn a_snapshot_bounds_replay_and_deletes_covered_segments() {
    let dir = TempDir::new("snapshot");
    let (log, _) = Log::open(&dir.0, small_segments()).unwrap();
    for seq in 1..=200 {
        log.append(&payload(seq)).unwrap();
    }
    let before = segment_files(&dir.0).len();
    log.write_snapshot(150, b"state through 150").unwrap();
    assert!(segment_files(&dir.0).len() < before, "covered segments are deleted");
    assert!(matches!(log.write_snapshot(500, b"x"), Err(StorageError::NotDurable { seq: 500, .. })));
    drop(log);
    let (_, recovery) = Log::open(&dir.0, small_segments()).unwrap();
    let snapshot = recovery.snapshot.unwrap();
    assert_eq!((snapshot.through_seq, &snapshot.state[..]), (150, &b"state through 150"[..]));
    let seqs: Vec<u64> = recovery.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (151..=200).collect::<Vec<_>>());
}

#[test]
fn a_torn_tail_is_cut_once_and_the_log_goes_on() {
    let dir = TempDir::new("torn");
    fill(&dir.0, 10, LogConfig::default());
    let segment = segment_files(&dir.0).pop().unwrap();
    let intact = std::fs::read(&segment).unwrap();
    let mut torn = intact.clone();
    torn.extend_from_slice(&intact[..40]); // Half a header: an interrupted write.
    std::fs::write(&segment, &torn).unwrap();
    let (log, recovery) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!(recovery.torn_tail.as_ref().map(|t| t.bytes_dropped), Some(40));
    assert_eq!(std::fs::read(&segment).unwrap(), intact);
    assert_eq!(log.append(b"after").unwrap(), 11);
    drop(log);
    let (_, recovery) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!((recovery.torn_tail, recovery.head_seq), (None, 11));
}

#[test]
fn a_corrupt_middle_is_refused_and_nothing_is_changed() {
    let dir = TempDir::new("corrupt");
    fill(&dir.0, 10, LogConfig::default());
    let segment = segment_files(&dir.0).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[200] ^= 0x04;
    std::fs::write(&segment, &bytes).unwrap();
    let error = Log::open(&dir.0, LogConfig::default()).expect_err("refused");
    assert!(matches!(error, StorageError::Corrupt { reason: CorruptReason::DamagedBeforeValidRecords, .. }));
    assert!(error.to_string().contains("changed nothing"), "{error}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "recovery wrote nothing");
}

#[test]
fn damage_in_an_earlier_segment_is_refused() {
    let dir = TempDir::new("earlier");
    fill(&dir.0, 100, small_segments());
    let first = segment_files(&dir.0).remove(0);
    let bytes = std::fs::read(&first).unwrap();
    std::fs::write(&first, &bytes[..bytes.len() - 5]).unwrap();
    let error = Log::open(&dir.0, small_segments()).expect_err("refused");
    assert!(matches!(error, StorageError::Corrupt { reason: CorruptReason::DamagedInEarlierSegment, .. }));
}

#[test]
fn a_missing_segment_is_refused() {
    let dir = TempDir::new("missing");
    fill(&dir.0, 300, small_segments());
    let files = segment_files(&dir.0);
    assert!(files.len() >= 3, "a middle segment to remove");
    std::fs::remove_file(&files[1]).unwrap();
    let error = Log::open(&dir.0, small_segments()).expect_err("refused");
    assert!(matches!(error, StorageError::Corrupt { reason: CorruptReason::SegmentGap { .. }, .. }), "{error}");
    std::fs::remove_file(&files[0]).unwrap();
    let error = Log::open(&dir.0, small_segments()).expect_err("refused");
    assert!(matches!(error, StorageError::Corrupt { reason: CorruptReason::MissingPrefix, .. }), "{error}");
}

#[test]
fn two_logs_cannot_open_one_directory() {
    let dir = TempDir::new("lock");
    let (_first, _) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert!(matches!(Log::open(&dir.0, LogConfig::default()), Err(StorageError::Locked { .. })));
}

#[test]
fn the_uring_backend_writes_the_same_log_or_falls_back() {
    let (plain, uring) = (TempDir::new("plain"), TempDir::new("uring"));
    fill(&plain.0, 50, small_segments());
    let config = LogConfig { io: IoBackend::Uring, ..small_segments() };
    fill(&uring.0, 50, config.clone());
    let (log, recovery) = Log::open(&uring.0, config).unwrap();
    eprintln!("io_uring in use: {}", log.stats().uring);
    assert_eq!(recovery.head_seq, 50);
    let read = |dir: &Path| segment_files(dir).iter().map(|f| std::fs::read(f).unwrap()).collect::<Vec<_>>();
    assert_eq!(read(&plain.0), read(&uring.0), "both backends write identical bytes");
}

#[test]
fn oversized_records_are_refused_before_anything_is_written() {
    let dir = TempDir::new("large");
    let config = LogConfig { record_bytes_max: 10, ..LogConfig::default() };
    let (log, _) = Log::open(&dir.0, config).unwrap();
    assert_eq!(log.append(&[0; 11]), Err(StorageError::RecordTooLarge { len: 11, max: 10 }));
    assert_eq!(log.append(&[0; 10]), Ok(1));
}

/// Offsets of the records in `segment` (all intact).
fn record_offsets(segment: &Path, first_seq: u64) -> Vec<usize> {
    let bytes = std::fs::read(segment).unwrap();
    let scan = scan::scan_segment(&bytes, first_seq, None, LogConfig::default().record_bytes_max);
    assert_eq!(scan.end, scan::ScanEnd::Clean, "{}", segment.display());
    scan.records.iter().map(|r| r.offset as usize).collect()
}

/// Ten single-record writes, then one write of records 11..=14 (a batch).
fn fill_then_batch(dir: &Path) -> PathBuf {
    fill(dir, 10, LogConfig::default());
    let (log, _) = Log::open(dir, LogConfig::default()).unwrap();
    let batch: Vec<Vec<u8>> = (11..=14).map(payload).collect();
    let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    assert_eq!(log.append_batch(&slices).unwrap(), (11, 14));
    drop(log);
    segment_files(dir).pop().unwrap()
}

#[test]
fn a_batch_is_one_write_marked_by_its_magics() {
    let dir = TempDir::new("magics");
    let segment = fill_then_batch(&dir.0);
    let bytes = std::fs::read(&segment).unwrap();
    let magics: Vec<&[u8]> = record_offsets(&segment, 1).iter().map(|&at| &bytes[at..at + 4]).collect();
    let mut expected = vec![&b"BHLR"[..]; 11];
    expected.extend([&b"BHLC"[..]; 3]);
    assert_eq!(magics, expected);
}

#[test]
fn a_torn_last_batch_with_a_flipped_byte_recovers_the_records_before_the_damage() {
    // The flip lands in the batch's first, a middle, and its last record (records 11..=14).
    for damaged in [11u64, 12, 14] {
        let dir = TempDir::new("torn-batch");
        let segment = fill_then_batch(&dir.0);
        let offsets = record_offsets(&segment, 1);
        let mut bytes = std::fs::read(&segment).unwrap();
        let at = offsets[damaged as usize - 1];
        bytes[at + record::HEADER_LEN + 3] ^= 0x20;
        std::fs::write(&segment, &bytes).unwrap();
        let (log, recovery) =
            Log::open(&dir.0, LogConfig::default()).unwrap_or_else(|e| panic!("flip in record {damaged}: {e}"));
        let seqs: Vec<u64> = recovery.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..damaged).collect::<Vec<_>>(), "flip in record {damaged}");
        assert!(recovery.records.iter().all(|r| r.payload == payload(r.seq)));
        let tail = recovery.torn_tail.unwrap_or_else(|| panic!("flip in record {damaged}: no torn tail"));
        assert_eq!((tail.valid_len, tail.bytes_dropped), (at as u64, (bytes.len() - at) as u64));
        assert_eq!(log.append(b"after").unwrap(), damaged, "the log goes on after the cut");
    }
}

#[test]
fn damage_followed_by_a_record_starting_a_new_write_is_refused() {
    let dir = TempDir::new("batch-then-write");
    let segment = fill_then_batch(&dir.0);
    let (log, _) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!(log.append(b"a new write").unwrap(), 15);
    drop(log);
    let offsets = record_offsets(&segment, 1);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offsets[11] + 8] ^= 0x01; // Record 12, in the batch: acknowledged, as 15 came after.
    std::fs::write(&segment, &bytes).unwrap();
    let error = Log::open(&dir.0, LogConfig::default()).expect_err("refused");
    assert!(matches!(error, StorageError::Corrupt { reason: CorruptReason::DamagedBeforeValidRecords, .. }), "{error}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "recovery wrote nothing");
}

#[test]
fn an_old_format_log_of_first_records_only_still_opens() {
    let dir = TempDir::new("old-format");
    let log_dir = dir.0.join("log");
    std::fs::create_dir_all(&log_dir).unwrap();
    let mut bytes = Vec::new();
    let mut hash = GENESIS_HASH;
    let mut offsets = Vec::new();
    for seq in 1..=20 {
        offsets.push(bytes.len());
        hash = record::encode_record(&mut bytes, seq, &hash, &payload(seq));
    }
    let segment = disk::segment_path(&log_dir, 1);
    std::fs::write(&segment, &bytes).unwrap();
    let (log, recovery) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!((recovery.head_seq, recovery.head_hash, recovery.torn_tail), (20, hash, None));
    assert!(recovery.records.iter().all(|r| r.payload == payload(r.seq)));
    assert_eq!(log.append_batch(&[&b"x"[..], &b"y"[..]]).unwrap(), (21, 22));
    drop(log);
    let (_, recovery) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!(recovery.head_seq, 22);
    // Damage before intact old records is still refused: each of them started a write.
    bytes[offsets[18] + 70] ^= 0x02;
    std::fs::write(&segment, &bytes).unwrap();
    let error = Log::open(&dir.0, LogConfig::default()).expect_err("refused");
    assert!(matches!(error, StorageError::Corrupt { reason: CorruptReason::DamagedBeforeValidRecords, .. }), "{error}");
}
