//! The durable log: open (with recovery), append with group commit, snapshots.
//!
//! **Group commit** (DeWitt et al. 1984; the leader/follower form of MySQL's binlog
//! group commit): any number of threads call [`Log::append`]. Each encodes its record
//! into the shared pending buffer under a mutex (which fixes its sequence number and
//! chains it to the record before), then parks. Whoever finds no write in progress
//! becomes the leader: it takes the whole pending buffer, writes it with one write and
//! one `fdatasync` (or one linked io_uring WRITE+FSYNC), marks it durable and unparks
//! exactly the writers of that batch, plus one writer of the next batch to lead it. Records that arrive during that sync form the next batch, so under load
//! one sync acknowledges many writes. A call returns only once its record is durable.
//!
//! The first record of each pending buffer (so of each write) carries the magic "BHLR",
//! every later one "BHLC" (see `record`): recovery then knows where writes start and can
//! cut a torn last write whole. A batch never spans two segments (rotation happens
//! before the write, for the whole batch), so every segment starts with a "BHLR" record.
//!
//! A failed write (full disk, EFBIG, EIO) acknowledges nothing in its batch; the log
//! then refuses every later append with [`StorageError::Failed`], because its in-memory
//! chain ran ahead of the disk. Reopening recovers exactly what was made durable.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::Thread;

use super::disk::{segment_path, snapshot_path, AppendFile, Disk, FsDisk, IoBackend};
use super::error::StorageError;
use super::record::{decode_record, encode_record_at, RecordHash, WritePosition, GENESIS_HASH};
use super::recovery::{list_segments, load_snapshot, recover, Recovery, SegmentInfo};
use super::scan::scan_segment;
use super::snapshot::{encode_snapshot, Snapshot};

/// Settings of a [`Log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A new segment starts once the current one would exceed this (64 MiB).
    pub segment_bytes_max: u64,
    /// Largest payload accepted (16 MiB); also the bound recovery reads with.
    pub record_bytes_max: u32,
    /// Appends wait while this many bytes are already queued (8 MiB): back-pressure.
    pub pending_bytes_max: usize,
    /// Plain system calls or io_uring (which falls back to plain when unavailable).
    pub io: IoBackend,
    /// Snapshots kept (2: the newest and one fallback); segments covered by the
    /// oldest kept snapshot are deleted.
    pub snapshots_kept: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: 64 << 20,
            record_bytes_max: 16 << 20,
            pending_bytes_max: 8 << 20,
            io: IoBackend::Plain,
            snapshots_kept: 2,
        }
    }
}

/// Counters of a [`Log`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records acknowledged since open.
    pub records_durable: u64,
    /// Batches written (each one write and one data sync).
    pub syncs: u64,
    /// Bytes made durable since open.
    pub bytes_durable: u64,
    /// Highest durable sequence number.
    pub durable_seq: u64,
    /// Segment files in the directory.
    pub segments: u64,
    /// Snapshots written since open.
    pub snapshots: u64,
    /// Whether the io_uring path is in use (false: plain calls, maybe after fallback).
    pub uring: bool,
}

/// An append-only, segmented, hash-chained log in a data directory:
///
/// ```text
/// <dir>/LOCK                           flock'ed while a Log is open: one node per directory
/// <dir>/log/<first seq, 20 digits>.seg segments: records seq, seq+1, … (see `record`)
/// <dir>/snapshots/<seq, 20 digits>.snap  state through record seq (see `snapshot`)
/// <dir>/snapshots/*.tmp                a snapshot being written (ignored by recovery)
/// ```
pub struct Log {
    disk: Box<dyn Disk>,
    config: LogConfig,
    log_dir: PathBuf,
    snapshot_dir: PathBuf,
    state: Mutex<State>,
    /// Appends held back by a full pending buffer, or by a failure, wait here.
    room: Condvar,
    /// `State::durable_seq`, readable without the mutex: a woken writer whose record
    /// is durable returns without touching the lock (no herd on the mutex).
    durable_seq_hint: AtomicU64,
    snapshot_lock: Mutex<()>,
    _lock: Box<dyn Any + Send + Sync>,
}

struct State {
    next_seq: u64,
    last_hash: RecordHash,
    pending: Vec<u8>,
    durable_seq: u64,
    durable_hash: RecordHash,
    leader: bool,
    /// The writers whose records are in `pending`: parked until their batch is
    /// durable; the first is unparked to lead it when the batch before it ends.
    waiters: Vec<Thread>,
    /// The first failed write's error: returned to the appends of its batch and of
    /// the batches queued behind it; later appends get [`StorageError::Failed`].
    failed: Option<StorageError>,
    file: Option<Box<dyn AppendFile>>,
    segments: Vec<SegmentInfo>,
    stats: LogStats,
}

impl Log {
    /// Opens (creating if needed) the data directory `dir` on the real file system,
    /// verifies it and returns the log with what it recovered.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<(Log, Recovery), StorageError> {
        Self::open_on(Box::new(FsDisk), dir.as_ref(), config)
    }

    /// [`Log::open`] on any [`Disk`] (a simulated one in tests).
    pub fn open_on(disk: Box<dyn Disk>, dir: &Path, config: LogConfig) -> Result<(Log, Recovery), StorageError> {
        let (log_dir, snapshot_dir) = (dir.join("log"), dir.join("snapshots"));
        for path in [dir, &log_dir, &snapshot_dir] {
            disk.create_dir_all(path).map_err(|e| StorageError::io("create", path, e))?;
        }
        let lock_path = dir.join("LOCK");
        let lock = disk.lock(&lock_path).map_err(|e| StorageError::io("lock", &lock_path, e))?;
        let lock = lock.ok_or_else(|| StorageError::Locked { dir: dir.to_path_buf() })?;
        let snapshot = load_snapshot(disk.as_ref(), &snapshot_dir)?;
        let recovered = recover(disk.as_ref(), &log_dir, snapshot, config.record_bytes_max)?;
        let (recovery, mut segments) = (recovered.recovery, recovered.segments);
        if segments.is_empty() {
            let first_seq = recovery.head_seq + 1;
            segments.push(SegmentInfo { first_seq, path: segment_path(&log_dir, first_seq) });
        }
        let active = &segments.last().expect("one segment at least").path;
        let file = disk.open_append(active, config.io).map_err(|e| StorageError::io("open", active, e))?;
        let stats = LogStats {
            durable_seq: recovery.head_seq,
            segments: segments.len() as u64,
            uring: file.backend() == IoBackend::Uring,
            ..LogStats::default()
        };
        let state = State {
            next_seq: recovery.head_seq + 1,
            last_hash: recovery.head_hash,
            pending: Vec::new(),
            durable_seq: recovery.head_seq,
            durable_hash: recovery.head_hash,
            leader: false,
            waiters: Vec::new(),
            failed: None,
            file: Some(file),
            segments,
            stats,
        };
        let log = Log {
            disk,
            config,
            log_dir,
            snapshot_dir,
            state: Mutex::new(state),
            room: Condvar::new(),
            durable_seq_hint: AtomicU64::new(recovery.head_seq),
            snapshot_lock: Mutex::new(()),
            _lock: lock,
        };
        Ok((log, recovery))
    }

    /// Appends `payload` and returns its sequence number once it is durable.
    pub fn append(&self, payload: &[u8]) -> Result<u64, StorageError> {
        self.append_batch(&[payload]).map(|(_, last)| last)
    }

    /// Appends `payloads` as consecutive records and returns (first, last) sequence
    /// numbers once all are durable. An empty batch returns (next, next - 1).
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<(u64, u64), StorageError> {
        let max = self.config.record_bytes_max;
        if let Some(large) = payloads.iter().find(|p| p.len() > max as usize) {
            return Err(StorageError::RecordTooLarge { len: large.len(), max });
        }
        let mut state = self.lock_state();
        while state.pending.len() >= self.config.pending_bytes_max && state.leader && state.failed.is_none() {
            state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if let Some(error) = &state.failed {
            return Err(StorageError::Failed { first_error: error.to_string() });
        }
        let first = state.next_seq;
        for payload in payloads {
            let State { pending, next_seq, last_hash, .. } = &mut *state;
            // The pending buffer is written whole by one write: its first record starts
            // that write, every other one (of this batch or of other writers') continues it.
            let position = if pending.is_empty() { WritePosition::First } else { WritePosition::Continuation };
            *last_hash = encode_record_at(pending, position, *next_seq, last_hash, payload);
            *next_seq += 1;
        }
        let last = state.next_seq - 1;
        state.waiters.push(std::thread::current());
        self.wait_durable(state, last)?;
        Ok((first, last))
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `seq` is durable, leading a batch whenever no one else is.
    fn wait_durable<'a>(&'a self, mut state: MutexGuard<'a, State>, seq: u64) -> Result<(), StorageError> {
        loop {
            if state.durable_seq >= seq {
                return Ok(());
            }
            if let Some(error) = &state.failed {
                return Err(error.clone());
            }
            if !state.leader {
                state = self.lead_batch(state);
                continue;
            }
            drop(state);
            // An unpark that came before this park leaves a token: no lost wake-up.
            std::thread::park();
            if self.durable_seq_hint.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            state = self.lock_state();
        }
    }

    /// Writes everything pending as one batch; returns with the lock held again.
    fn lead_batch<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.leader = true;
        let batch = std::mem::take(&mut state.pending);
        let writers = std::mem::take(&mut state.waiters);
        let (first_seq, last_seq, last_hash) = (state.durable_seq + 1, state.next_seq - 1, state.last_hash);
        let mut file = state.file.take().expect("the file is here when no leader is writing");
        let active = state.segments.last().expect("an active segment").path.clone();
        drop(state);

        let written = self.write_batch(&mut file, &active, first_seq, &batch);

        let mut state = self.lock_state();
        state.file = Some(file);
        state.leader = false;
        match written {
            Ok(new_segment) => {
                state.segments.extend(new_segment);
                state.durable_seq = last_seq;
                state.durable_hash = last_hash;
                let stats = &mut state.stats;
                stats.records_durable += last_seq + 1 - first_seq;
                stats.syncs += 1;
                stats.bytes_durable += batch.len() as u64;
                stats.durable_seq = last_seq;
                self.durable_seq_hint.store(last_seq, Ordering::Release);
            }
            Err(error) => state.failed = Some(error),
        }
        state.stats.segments = state.segments.len() as u64;
        if state.pending.capacity() == 0 && state.pending.is_empty() {
            state.pending = batch;
            state.pending.clear();
        }
        // Wake one writer of the next batch to lead it (all of them after a failure)
        // and this batch's writers, outside the lock so they do not queue on it.
        let next_leader: Vec<Thread> = match state.failed {
            Some(_) => std::mem::take(&mut state.waiters),
            None => state.waiters.first().cloned().into_iter().collect(),
        };
        drop(state);
        // The next leader first: its write and sync overlap with the wake-ups below.
        let me = std::thread::current().id();
        next_leader.iter().chain(&writers).filter(|t| t.id() != me).for_each(Thread::unpark);
        self.room.notify_all();
        self.lock_state()
    }

    /// Rotates to a new segment if the batch would overflow the current one, then
    /// writes and syncs. Returns the new segment, if one was started.
    fn write_batch(
        &self,
        file: &mut Box<dyn AppendFile>,
        active: &Path,
        first_seq: u64,
        batch: &[u8],
    ) -> Result<Option<SegmentInfo>, StorageError> {
        let mut new_segment = None;
        let mut path = active.to_path_buf();
        if !file.is_empty() && file.len() + batch.len() as u64 > self.config.segment_bytes_max {
            path = segment_path(&self.log_dir, first_seq);
            *file = self.disk.open_append(&path, self.config.io).map_err(|e| StorageError::io("create", &path, e))?;
            new_segment = Some(SegmentInfo { first_seq, path: path.clone() });
        }
        let before = file.len();
        if let Err(error) = file.append_durable(batch) {
            // Best effort: leave no partial batch behind (recovery would cut it anyway).
            let _ = file.truncate(before);
            return Err(StorageError::io("append", &path, error));
        }
        Ok(new_segment)
    }

    /// Writes a snapshot of the host's state through record `through_seq` (which must
    /// be durable), then deletes snapshots beyond `snapshots_kept` and the segments the
    /// oldest kept snapshot covers. Recovery then replays only records after it.
    pub fn write_snapshot(&self, through_seq: u64, state_bytes: &[u8]) -> Result<(), StorageError> {
        let _one_at_a_time = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        let head_hash = self.hash_of(through_seq)?;
        let snapshot = Snapshot { through_seq, head_hash, state: state_bytes.to_vec() };
        let path = snapshot_path(&self.snapshot_dir, through_seq);
        let bytes = encode_snapshot(&snapshot);
        self.disk.write_atomic(&path, &bytes).map_err(|e| StorageError::io("write snapshot", &path, e))?;
        self.lock_state().stats.snapshots += 1;
        self.prune()
    }

    /// The record hash of durable record `seq`: from memory for the head, else read
    /// back from its segment.
    fn hash_of(&self, seq: u64) -> Result<RecordHash, StorageError> {
        let state = self.lock_state();
        if seq > state.durable_seq {
            return Err(StorageError::NotDurable { seq, durable_seq: state.durable_seq });
        }
        if seq == state.durable_seq {
            return Ok(state.durable_hash);
        }
        if seq == 0 {
            return Ok(GENESIS_HASH);
        }
        let segment = state.segments.iter().rev().find(|s| s.first_seq <= seq).cloned();
        drop(state);
        let segment = segment.ok_or(StorageError::NotDurable { seq, durable_seq: 0 })?;
        let bytes = self.disk.read(&segment.path).map_err(|e| StorageError::io("read", &segment.path, e))?;
        let scan = scan_segment(&bytes, segment.first_seq, None, self.config.record_bytes_max);
        let position = scan.records.iter().find(|r| r.seq == seq);
        let record = position.and_then(|p| decode_record(&bytes[p.offset as usize..], u32::MAX).ok());
        record.map(|r| r.hash).ok_or_else(|| StorageError::Io {
            op: "find record",
            path: segment.path.clone(),
            kind: std::io::ErrorKind::NotFound,
            message: format!("record {seq} not in its segment"),
        })
    }

    /// Deletes old snapshots and the segments wholly covered by the oldest kept one.
    fn prune(&self) -> Result<(), StorageError> {
        let names = self.disk.list(&self.snapshot_dir).map_err(|e| StorageError::io("list", &self.snapshot_dir, e))?;
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| super::disk::parse_numbered(n, "snap")).collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        let kept = self.config.snapshots_kept.max(1);
        for &old in seqs.iter().skip(kept) {
            let path = snapshot_path(&self.snapshot_dir, old);
            self.disk.remove(&path).map_err(|e| StorageError::io("remove", &path, e))?;
        }
        let Some(&covered) = seqs.get(kept.min(seqs.len()).saturating_sub(1)) else { return Ok(()) };
        let doomed: Vec<SegmentInfo> = {
            let state = self.lock_state();
            let segments = &state.segments;
            (0..segments.len().saturating_sub(1))
                .take_while(|&i| segments[i + 1].first_seq <= covered + 1)
                .map(|i| segments[i].clone())
                .collect()
        };
        for segment in &doomed {
            self.disk.remove(&segment.path).map_err(|e| StorageError::io("remove", &segment.path, e))?;
        }
        self.disk.sync_dir(&self.log_dir).map_err(|e| StorageError::io("sync", &self.log_dir, e))?;
        let mut state = self.lock_state();
        state.segments.drain(..doomed.len());
        state.stats.segments = state.segments.len() as u64;
        Ok(())
    }

    /// Counters since open.
    pub fn stats(&self) -> LogStats {
        self.lock_state().stats
    }

    /// The highest durable sequence number and its record hash.
    pub fn head(&self) -> (u64, RecordHash) {
        let state = self.lock_state();
        (state.durable_seq, state.durable_hash)
    }

    /// The segments currently in the directory, oldest first (re-listed from disk).
    pub fn segment_files(&self) -> Result<Vec<PathBuf>, StorageError> {
        Ok(list_segments(self.disk.as_ref(), &self.log_dir)?.into_iter().map(|s| s.path).collect())
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("dir", &self.log_dir).field("stats", &self.stats()).finish()
    }
}
