//! A simulated disk under the storage layer (issue 9, after TigerBeetle's VOPR storage
//! faults): [`SimDisk`] implements [`Disk`] and [`AppendFile`] in memory, deterministically
//! (randomness only from a caller-seeded [`SeededRng`]), and injects the faults a real disk
//! shows: failed writes (EIO, possibly with a prefix landed unsynced), failed reads,
//! misdirected writes that report success, a full disk (ENOSPC), latency, and crashes that
//! drop or tear whatever was not synced.
//!
//! **Model.** A file is its current bytes (what reads see) and `durable_len`: the first
//! `durable_len` bytes survive a crash. Every successful sync in this model syncs the whole
//! file (as `fdatasync` does), so the durable bytes are always a prefix of the current
//! ones; only a failed append leaves bytes beyond it. `write_atomic` is durable at once
//! (rename semantics). Creating and removing directories and files is durable at once and
//! `sync_dir` is a no-op: this disk does not model lost directory entries (keep it
//! simple; the log syncs its directory anyway). Lock files are kept apart from the
//! files (a `LOCK` does not appear in `list`).
//!
//! **Processes.** Clones share one state, so a harness keeps a handle while a node's log
//! uses another, and the disk outlives a crashed node. [`SimDisk::crash`] is the process
//! dying: locks are released, and file handles and lock guards opened before it belong
//! to the dead process (their writes fail with EIO, their drop releases nothing).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ops::AddAssign;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sansio::SeededRng;
use crate::storage::{AppendFile, Disk, IoBackend};

/// Fault probabilities (per operation) and limits. All faults are off by default; change
/// them at any time with [`SimDisk::set_faults`] (e.g. off for a liveness phase).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskFaults {
    /// `append_durable`, `write_atomic` and `truncate` fail with EIO. A failed append may
    /// leave a random prefix of its bytes in the file, not synced.
    pub write_error: f64,
    /// `read` and `list` fail with EIO (transient: the next call may succeed).
    pub read_error: f64,
    /// An append reports success but its bytes land at a wrong, earlier offset of the
    /// same file; the intended range is left as zeros.
    pub misdirected_write: f64,
    /// A full disk: writes that would hold more than this many bytes in total fail with
    /// ENOSPC.
    pub full_disk: Option<u64>,
    /// Each operation draws a latency in `0..=latency_ms_max` (see [`SimDisk::take_latency_ms`]).
    pub latency_ms_max: u64,
    /// The memory bound: the disk never holds more bytes than this (ENOSPC beyond).
    pub capacity_bytes: u64,
}

impl Default for DiskFaults {
    fn default() -> Self {
        Self {
            write_error: 0.0,
            read_error: 0.0,
            misdirected_write: 0.0,
            full_disk: None,
            latency_ms_max: 0,
            capacity_bytes: 256 << 20,
        }
    }
}

impl DiskFaults {
    /// The bytes the disk may hold: the full-disk limit or the memory bound.
    fn limit(&self) -> u64 {
        self.full_disk.map_or(self.capacity_bytes, |full| full.min(self.capacity_bytes))
    }
}

/// How often each fault fired (and some volume counters), since the disk was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskFaultStats {
    /// Writes, atomic writes and truncations failed with EIO.
    pub write_errors: u64,
    /// Reads and listings failed with EIO.
    pub read_errors: u64,
    /// Appends that landed at a wrong offset while reporting success.
    pub misdirected_writes: u64,
    /// Writes refused with ENOSPC (full disk or memory bound).
    pub full_disk_refusals: u64,
    /// Crashes that kept a torn (partial, maybe bit-flipped) unsynced tail of some file.
    pub torn_writes: u64,
    /// Calls of [`SimDisk::crash`].
    pub crashes: u64,
    /// Appends the process died in the middle of (a prefix landed, unsynced).
    pub crashes_mid_write: u64,
    /// Operations that drew a latency.
    pub latency_draws: u64,
    /// Bytes that reached the medium (including partial and misdirected writes).
    pub bytes_written: u64,
    /// Successful syncs (appends, truncations, atomic writes).
    pub syncs: u64,
}

impl AddAssign for DiskFaultStats {
    fn add_assign(&mut self, other: Self) {
        self.write_errors += other.write_errors;
        self.read_errors += other.read_errors;
        self.misdirected_writes += other.misdirected_writes;
        self.full_disk_refusals += other.full_disk_refusals;
        self.torn_writes += other.torn_writes;
        self.crashes_mid_write += other.crashes_mid_write;
        self.crashes += other.crashes;
        self.latency_draws += other.latency_draws;
        self.bytes_written += other.bytes_written;
        self.syncs += other.syncs;
    }
}

/// One file: its current bytes; the first `durable_len` of them survive a crash.
#[derive(Debug, Default)]
struct SimFile {
    bytes: Vec<u8>,
    durable_len: usize,
}

struct Inner {
    rng: SeededRng,
    faults: DiskFaults,
    files: BTreeMap<PathBuf, SimFile>,
    dirs: BTreeSet<PathBuf>,
    /// Held locks: path to the id of the guard that holds it.
    locks: BTreeMap<PathBuf, u64>,
    next_lock_id: u64,
    /// Bumped by every crash: handles of an earlier epoch belong to a dead process.
    epoch: u64,
    latency_ms: u64,
    /// The process dies during its next append (see [`SimDisk::crash_during_next_append`]).
    crash_armed: bool,
    stats: DiskFaultStats,
}

/// An in-memory, fault-injecting, deterministic [`Disk`]. Clones share one disk.
#[derive(Clone)]
pub struct SimDisk {
    inner: Arc<Mutex<Inner>>,
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

/// `StorageError::io` recognises the raw ENOSPC as a full disk.
fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file or directory", path.display()))
}

impl SimDisk {
    /// An empty disk whose every random choice comes from `rng`.
    pub fn new(rng: SeededRng, faults: DiskFaults) -> Self {
        let inner = Inner {
            rng,
            faults,
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
            locks: BTreeMap::new(),
            next_lock_id: 0,
            epoch: 0,
            latency_ms: 0,
            crash_armed: false,
            stats: DiskFaultStats::default(),
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn state(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault settings (takes effect at the next operation).
    pub fn set_faults(&self, faults: DiskFaults) {
        self.state().faults = faults;
    }

    /// The current fault settings.
    pub fn faults(&self) -> DiskFaults {
        self.state().faults
    }

    /// Counters since the disk was made.
    pub fn stats(&self) -> DiskFaultStats {
        self.state().stats
    }

    /// Arms a crash in the middle of the next append: a random prefix of its bytes
    /// lands unsynced and the call fails (the process is dying); the harness then
    /// crashes the node, and [`SimDisk::crash`] may tear what landed. This is how a
    /// crash catches a write in flight, which a synchronous API cannot otherwise show.
    pub fn crash_during_next_append(&self) {
        self.state().crash_armed = true;
    }

    /// Cancels an armed crash (the faults stopped before the next append).
    pub fn disarm_crash(&self) {
        self.state().crash_armed = false;
    }

    /// Latency accumulated since the last call (the harness delays acknowledgements by it).
    pub fn take_latency_ms(&self) -> u64 {
        std::mem::take(&mut self.state().latency_ms)
    }

    /// Files on the disk.
    pub fn files(&self) -> usize {
        self.state().files.len()
    }

    /// Bytes currently held by all files.
    pub fn used_bytes(&self) -> u64 {
        self.state().used()
    }

    /// Removes every file under `dir` (an operator wiping a node whose storage was found
    /// corrupt). Directories and locks stay.
    pub fn wipe(&self, dir: &Path) {
        self.state().files.retain(|path, _| !path.starts_with(dir));
    }

    /// The process using the disk died: every file loses its unsynced bytes, or with
    /// probability `torn_chance` keeps a random non-empty prefix of them (a torn write),
    /// with a few bytes of that prefix flipped half of the time. What is left is durable.
    /// Locks are released; handles opened before become dead.
    pub fn crash(&self, torn_chance: f64) {
        let mut state = self.state();
        let Inner { rng, files, stats, .. } = &mut *state;
        let mut tore = false;
        for file in files.values_mut() {
            tore |= file.crash(rng, torn_chance);
        }
        stats.crashes += 1;
        stats.torn_writes += u64::from(tore);
        state.locks.clear();
        state.epoch += 1;
    }
}

impl SimFile {
    /// Applies a crash to this file; true if it kept a torn tail.
    fn crash(&mut self, rng: &mut SeededRng, torn_chance: f64) -> bool {
        let unsynced = self.bytes.len() - self.durable_len;
        let torn = unsynced > 0 && rng.chance(torn_chance);
        if torn {
            let keep = 1 + rng.index(unsynced);
            self.bytes.truncate(self.durable_len + keep);
            if rng.chance(0.5) {
                for _ in 0..=rng.below(3) {
                    let at = self.durable_len + rng.index(keep);
                    self.bytes[at] ^= 1 + rng.below(255) as u8;
                }
            }
        } else {
            self.bytes.truncate(self.durable_len);
        }
        self.durable_len = self.bytes.len();
        torn
    }

    /// Writes `bytes` at `offset` (zero-filling a gap) without syncing.
    fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset + bytes.len();
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[offset..end].copy_from_slice(bytes);
        // Unsynced bytes over durable ones: the model keeps durable bytes a prefix, so
        // the overwritten range counts as unsynced (a crash drops it). The log never
        // writes below its durable end, so this only guards the invariant.
        self.durable_len = self.durable_len.min(offset);
    }

    fn sync(&mut self) {
        self.durable_len = self.bytes.len();
    }
}

impl Inner {
    /// Every operation: draws its latency.
    fn operation(&mut self) {
        if self.faults.latency_ms_max > 0 {
            self.latency_ms += self.rng.below(self.faults.latency_ms_max + 1);
            self.stats.latency_draws += 1;
        }
    }

    /// Bytes held by all files (recomputed: a disk holds a handful of files).
    fn used(&self) -> u64 {
        self.files.values().map(|file| file.bytes.len() as u64).sum()
    }

    fn room(&self) -> u64 {
        self.faults.limit().saturating_sub(self.used())
    }

    fn read_fault(&mut self) -> io::Result<()> {
        if self.rng.chance(self.faults.read_error) {
            self.stats.read_errors += 1;
            return Err(eio());
        }
        Ok(())
    }

    fn write_fault(&mut self) -> bool {
        let fired = self.rng.chance(self.faults.write_error);
        self.stats.write_errors += u64::from(fired);
        fired
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty() || self.dirs.contains(dir)
    }

    fn parent_exists(&self, path: &Path) -> bool {
        path.parent().map_or(true, |parent| self.dir_exists(parent))
    }

    /// An append of `bytes` at `offset` of `path`: [`AppendFile::append_durable`].
    fn append(&mut self, path: &Path, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let Some(file_len) = self.files.get(path).map(|f| f.bytes.len()) else { return Err(not_found(path)) };
        let growth = (offset + bytes.len()).saturating_sub(file_len) as u64;
        // The bytes that fit: those over existing bytes plus the room left (less a gap).
        let room = self.room();
        let fit = match offset.checked_sub(file_len) {
            None => (file_len - offset) as u64 + room,
            Some(gap) if gap as u64 <= room => room - gap as u64,
            Some(_) => 0,
        };
        let fit = (bytes.len() as u64).min(fit) as usize;
        if std::mem::take(&mut self.crash_armed) {
            let landed = self.rng.index(bytes.len() + 1).min(fit);
            self.land(path, offset, &bytes[..landed]);
            self.stats.crashes_mid_write += 1;
            // The process is dead: its open files accept nothing more (no clean-up
            // truncate), so the prefix stays for the crash to tear.
            self.epoch += 1;
            return Err(io::Error::other("the process died during this write"));
        }
        if self.write_fault() {
            let landed = self.rng.index(bytes.len() + 1).min(fit);
            self.land(path, offset, &bytes[..landed]);
            return Err(eio());
        }
        if growth > self.room() {
            self.stats.full_disk_refusals += 1;
            self.land(path, offset, &bytes[..fit]);
            return Err(enospc());
        }
        // An empty file has no earlier bytes to hit: the fault cannot fire there.
        if offset > 0 && self.rng.chance(self.faults.misdirected_write) {
            self.misdirect(path, offset, bytes);
            return Ok(());
        }
        self.land(path, offset, bytes);
        self.file(path).sync();
        self.stats.syncs += 1;
        Ok(())
    }

    fn file(&mut self, path: &Path) -> &mut SimFile {
        self.files.get_mut(path).expect("checked by the caller")
    }

    fn land(&mut self, path: &Path, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.stats.bytes_written += bytes.len() as u64;
        self.file(path).write_at(offset, bytes);
    }

    /// The bytes meant for `offset..offset+n` land at a random earlier offset (wholly
    /// inside the earlier bytes when they are long enough, else at 0); the intended range
    /// reads as zeros; the file is synced and the call reports success.
    fn misdirect(&mut self, path: &Path, offset: usize, bytes: &[u8]) {
        let wrong = if offset >= bytes.len() { self.rng.index(offset - bytes.len() + 1) } else { 0 };
        self.stats.misdirected_writes += 1;
        self.stats.syncs += 1;
        self.stats.bytes_written += bytes.len() as u64;
        let file = self.file(path);
        file.write_at(offset, &vec![0; bytes.len()]);
        file.write_at(wrong, bytes);
        file.sync();
    }

    fn truncate(&mut self, path: &Path, len: u64) -> io::Result<()> {
        let Some(file_len) = self.files.get(path).map(|f| f.bytes.len() as u64) else { return Err(not_found(path)) };
        if self.write_fault() {
            return Err(eio());
        }
        if len > file_len && len - file_len > self.room() {
            self.stats.full_disk_refusals += 1;
            return Err(enospc());
        }
        let file = self.file(path);
        file.bytes.resize(len as usize, 0);
        file.sync();
        self.stats.syncs += 1;
        Ok(())
    }

    fn write_atomic(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if !self.parent_exists(path) {
            return Err(not_found(path));
        }
        if self.write_fault() {
            return Err(eio());
        }
        // The temporary file exists next to the old one until the rename.
        if bytes.len() as u64 > self.room() {
            self.stats.full_disk_refusals += 1;
            return Err(enospc());
        }
        self.stats.bytes_written += bytes.len() as u64;
        self.stats.syncs += 1;
        self.files.insert(path.to_path_buf(), SimFile { bytes: bytes.to_vec(), durable_len: bytes.len() });
        Ok(())
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        self.read_fault()?;
        if !self.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |path: &&PathBuf| path.parent() == Some(dir);
        let names = self.files.keys().filter(in_dir).chain(self.dirs.iter().filter(in_dir));
        Ok(names.filter_map(|path| path.file_name()).map(|name| name.to_string_lossy().into_owned()).collect())
    }
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("SimDisk")
            .field("files", &state.files.len())
            .field("used_bytes", &state.used())
            .field("stats", &state.stats)
            .finish()
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.operation();
        for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        let mut state = self.state();
        state.operation();
        if state.locks.contains_key(path) {
            return Ok(None);
        }
        let id = state.next_lock_id;
        state.next_lock_id += 1;
        state.locks.insert(path.to_path_buf(), id);
        Ok(Some(Box::new(SimLockGuard { inner: Arc::clone(&self.inner), path: path.to_path_buf(), id })))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut state = self.state();
        state.operation();
        state.list(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.state();
        state.operation();
        state.read_fault()?;
        state.files.get(path).map(|file| file.bytes.clone()).ok_or_else(|| not_found(path))
    }

    fn open_append(&self, path: &Path, _backend: IoBackend) -> io::Result<Box<dyn AppendFile>> {
        let mut state = self.state();
        state.operation();
        if !state.parent_exists(path) {
            return Err(not_found(path));
        }
        let len = state.files.entry(path.to_path_buf()).or_default().bytes.len() as u64;
        let epoch = state.epoch;
        Ok(Box::new(SimAppendFile { disk: self.clone(), path: path.to_path_buf(), len, epoch }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.state();
        state.operation();
        state.truncate(path, len)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        state.operation();
        state.write_atomic(path, bytes)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.operation();
        state.files.remove(path).map(drop).ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.operation();
        if state.dir_exists(dir) {
            Ok(())
        } else {
            Err(not_found(dir))
        }
    }
}

/// A lock held on a [`SimDisk`]; dropping it releases the lock unless a crash already
/// did (then someone else may hold it now).
struct SimLockGuard {
    inner: Arc<Mutex<Inner>>,
    path: PathBuf,
    id: u64,
}

impl Drop for SimLockGuard {
    fn drop(&mut self) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if state.locks.get(&self.path) == Some(&self.id) {
            state.locks.remove(&self.path);
        }
    }
}

/// A segment open for appending on a [`SimDisk`]. Like the real `PlainFile` it keeps its
/// own length and writes there (a `pwrite` at its end).
struct SimAppendFile {
    disk: SimDisk,
    path: PathBuf,
    len: u64,
    epoch: u64,
}

impl SimAppendFile {
    /// The disk's state, or EIO if this handle's process crashed since it was opened.
    fn live_state(&self) -> io::Result<MutexGuard<'_, Inner>> {
        let mut state = self.disk.state();
        if state.epoch != self.epoch {
            return Err(eio());
        }
        state.operation();
        Ok(state)
    }
}

impl AppendFile for SimAppendFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn append_durable(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.live_state()?.append(&self.path, self.len as usize, bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.live_state()?.truncate(&self.path, len)?;
        self.len = len;
        Ok(())
    }

    fn backend(&self) -> IoBackend {
        IoBackend::Plain
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::storage::record::{decode_record, encode_record, encode_record_at, WritePosition};
    use crate::storage::{Log, LogConfig, RecordHash, Recovery, StorageError, GENESIS_HASH};

    const DIR: &str = "/node";

    /// Small segments, so runs rotate and exercise more than one file.
    fn config() -> LogConfig {
        LogConfig { segment_bytes_max: 4096, ..LogConfig::default() }
    }

    fn open(disk: &SimDisk) -> Result<(Log, Recovery), StorageError> {
        Log::open_on(Box::new(disk.clone()), Path::new(DIR), config())
    }

    /// Opens, retrying transient faults (EIO on a read or on recovery's truncate).
    fn open_retrying(disk: &SimDisk, seed: u64) -> Result<(Log, Recovery), StorageError> {
        for _ in 0..100 {
            match open(disk) {
                Err(StorageError::Io { .. }) => continue,
                other => return other,
            }
        }
        panic!("seed {seed}: 100 opens failed in a row")
    }

    /// A unique payload of random length for operation `id`.
    fn payload(rng: &mut SeededRng, id: u64) -> Vec<u8> {
        let mut bytes = format!("op {id};").into_bytes();
        let extra = rng.below(200);
        bytes.extend((0..extra).map(|_| rng.below(256) as u8));
        bytes
    }

    /// The host state a snapshot through `seq` carries.
    fn state_of(seq: u64) -> Vec<u8> {
        format!("state through {seq}").into_bytes()
    }

    /// What the test appended: acknowledged records by sequence number, and the payloads
    /// of appends that failed (they may or may not survive).
    #[derive(Default)]
    struct Model {
        acked: BTreeMap<u64, Vec<u8>>,
        failed: BTreeSet<Vec<u8>>,
        /// Payloads written as a continuation of a write ("BHLC"), not its first record:
        /// the record hash covers the magic. Payloads are unique (they carry their id).
        continued: BTreeSet<Vec<u8>>,
        /// Append batches of up to three records (else one record per write).
        batches: bool,
    }

    impl Model {
        /// Every acknowledged record is recovered in order (or covered by the snapshot);
        /// nothing recovered was never appended; the snapshot and the chain recompute to
        /// the recovered hashes. What recovery handed back is durable from then on, so it
        /// joins the acknowledged records.
        fn check(&mut self, seed: u64, recovery: &Recovery) {
            let base = recovery.snapshot.as_ref().map_or(0, |s| s.through_seq);
            let mut scratch = Vec::new();
            let mut hash = GENESIS_HASH;
            for seq in 1..=base {
                let payload =
                    self.acked.get(&seq).unwrap_or_else(|| panic!("seed {seed}: snapshot covers unknown {seq}"));
                hash = self.encode(&mut scratch, seq, &hash, payload);
            }
            if let Some(snapshot) = &recovery.snapshot {
                assert_eq!(snapshot.head_hash, hash, "seed {seed}: snapshot through {base} is off the chain");
                assert_eq!(snapshot.state, state_of(base), "seed {seed}: snapshot state");
            }
            for (index, record) in recovery.records.iter().enumerate() {
                assert_eq!(record.seq, base + 1 + index as u64, "seed {seed}: records out of order");
                let acked = self.acked.get(&record.seq);
                let known =
                    acked == Some(&record.payload) || (acked.is_none() && self.failed.contains(&record.payload));
                assert!(known, "seed {seed}: record {} was never appended at that position", record.seq);
                hash = self.encode(&mut scratch, record.seq, &hash, &record.payload);
            }
            let head_seq = base + recovery.records.len() as u64;
            if let Some(seq) = self.acked.keys().find(|&&seq| seq > head_seq) {
                panic!("seed {seed}: acknowledged record {seq} lost (head {head_seq})");
            }
            assert_eq!((recovery.head_seq, recovery.head_hash), (head_seq, hash), "seed {seed}: chain");
            self.acked.retain(|&seq, _| seq <= head_seq);
            self.acked.extend(recovery.records.iter().map(|r| (r.seq, r.payload.clone())));
        }

        /// Encodes `payload` as the log wrote it (first of its write or a continuation).
        fn encode(&self, out: &mut Vec<u8>, seq: u64, prev: &RecordHash, payload: &[u8]) -> RecordHash {
            let continued = self.continued.contains(payload);
            let position = if continued { WritePosition::Continuation } else { WritePosition::First };
            encode_record_at(out, position, seq, prev, payload)
        }

        /// Appends up to `count` batches (of one record, or with `batches` sometimes two
        /// or three: one write each); stops at the first error.
        fn append(&mut self, log: &Log, rng: &mut SeededRng, count: u64, next_id: &mut u64) -> Option<StorageError> {
            for _ in 0..count {
                let size = if self.batches && rng.chance(0.3) { 2 + rng.below(2) } else { 1 };
                if let Err(error) = self.append_batch(log, rng, size, next_id) {
                    return Some(error);
                }
            }
            None
        }

        /// Appends one batch of `size` records (one write: one writer only).
        fn append_batch(
            &mut self,
            log: &Log,
            rng: &mut SeededRng,
            size: u64,
            next_id: &mut u64,
        ) -> Result<(), StorageError> {
            let batch: Vec<Vec<u8>> = (0..size).map(|i| payload(rng, *next_id + i)).collect();
            *next_id += size;
            self.continued.extend(batch.iter().skip(1).cloned());
            let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            match log.append_batch(&slices) {
                Ok((first, _)) => self.acked.extend((first..).zip(batch)),
                Err(error) => {
                    self.failed.extend(batch);
                    return Err(error);
                }
            }
            Ok(())
        }
    }

    /// Rounds of: open (checking recovery), append (batches of one to three records, each
    /// one write) until done or an error, maybe crash. A crash may tear the last batch
    /// anywhere, which recovery must cut as a torn tail (see
    /// `regression_torn_batch_with_a_flip_before_an_intact_record_is_a_torn_tail`).
    /// Returns the disk's counters, its latency and how many opens started from a snapshot.
    fn crash_run(seed: u64, faults: DiskFaults) -> (DiskFaultStats, u64, u64) {
        let mut rng = SeededRng::new(seed);
        let disk = SimDisk::new(rng.fork(), faults);
        let mut model = Model { batches: true, ..Model::default() };
        let (mut next_id, mut from_snapshot) = (0, 0);
        for _ in 0..6 {
            let (log, recovery) = open_retrying(&disk, seed).unwrap_or_else(|e| panic!("seed {seed}: open: {e}"));
            model.check(seed, &recovery);
            from_snapshot += u64::from(recovery.snapshot.is_some());
            let count = 1 + rng.below(25);
            let error = model.append(&log, &mut rng, count, &mut next_id);
            if let Some(error) = &error {
                assert!(matches!(error, StorageError::Io { .. }), "seed {seed}: unexpected error {error}");
            } else if rng.chance(0.3) {
                // May fail (EIO on the write, a read or a removal): the log keeps working.
                let head = log.head().0;
                let _ = log.write_snapshot(head, &state_of(head));
            }
            drop(log);
            // The process dies, or (after an error) the node just reopens the directory.
            if error.is_none() || rng.chance(0.5) {
                disk.crash(0.5);
            }
        }
        disk.set_faults(DiskFaults::default());
        let (_, recovery) = open(&disk).unwrap_or_else(|e| panic!("seed {seed}: final open: {e}"));
        model.check(seed, &recovery);
        (disk.stats(), disk.take_latency_ms(), from_snapshot)
    }

    #[test]
    fn acknowledged_records_survive_crashes_torn_writes_and_write_errors() {
        let (mut total, mut from_snapshot) = (DiskFaultStats::default(), 0);
        for seed in 0..200 {
            // Frequent errors make failed truncations (so unsynced tails) common too.
            let write_error = if seed % 2 == 0 { 0.05 } else { 0.3 };
            let (stats, _, snapshots) = crash_run(seed, DiskFaults { write_error, ..DiskFaults::default() });
            total += stats;
            from_snapshot += snapshots;
        }
        assert!(total.write_errors > 0 && total.torn_writes > 0, "faults fired: {total:?}");
        assert!(from_snapshot > 0, "no recovery started from a snapshot");
    }

    /// A failed batch write whose truncation failed too leaves its landed prefix unsynced;
    /// a crash then keeps a random part of it, flipping bytes half of the time. However
    /// torn, it is the last write and was never acknowledged: recovery must open, keep
    /// every acknowledged record and cut the rest, also when a damaged record of the batch
    /// comes before an intact one (which the scan once refused as corruption). Counts the
    /// seeds that tore that way, so the test shows it covers the case.
    #[test]
    fn a_crash_tearing_a_failed_batch_leaves_a_torn_tail() {
        let mut damage_before_intact = 0;
        for seed in 0..300 {
            let mut rng = SeededRng::new(seed);
            let disk = SimDisk::new(rng.fork(), DiskFaults::default());
            let (mut model, mut next_id) = (Model { batches: true, ..Model::default() }, 0);
            let (log, _) = open(&disk).unwrap();
            let count = 1 + rng.below(10);
            assert!(model.append(&log, &mut rng, count, &mut next_id).is_none(), "seed {seed}: no faults yet");
            // Every write fails: the batch (a random prefix of it lands) and its truncation.
            disk.set_faults(DiskFaults { write_error: 1.0, ..DiskFaults::default() });
            let size = 2 + rng.below(5);
            assert!(model.append_batch(&log, &mut rng, size, &mut next_id).is_err(), "seed {seed}");
            drop(log);
            disk.set_faults(DiskFaults::default());
            disk.crash(1.0);
            let before: BTreeMap<PathBuf, Vec<u8>> =
                disk.state().files.iter().map(|(path, file)| (path.clone(), file.bytes.clone())).collect();
            let (_, recovery) =
                open(&disk).unwrap_or_else(|e| panic!("seed {seed}: a crash made the log unopenable: {e}"));
            model.check(seed, &recovery);
            assert_eq!(recovery.head_seq, model.acked.len() as u64, "seed {seed}");
            if let Some(tail) = &recovery.torn_tail {
                let cut = &before[&tail.path][tail.valid_len as usize + 1..];
                let intact = |at| decode_record(&cut[at..], config().record_bytes_max).is_ok();
                damage_before_intact += u64::from((0..cut.len()).any(intact));
            }
        }
        assert!(damage_before_intact > 0, "no seed tore a batch with an intact record after the damage");
    }

    /// Appends `count` records with misdirected writes on, then recovers after a crash.
    /// Returns whether a misdirection fired and whether recovery refused.
    fn misdirected_run(seed: u64) -> (bool, bool) {
        let mut rng = SeededRng::new(seed);
        let faults = DiskFaults { misdirected_write: 0.02, ..DiskFaults::default() };
        let disk = SimDisk::new(rng.fork(), faults);
        let (mut model, mut next_id) = (Model { batches: true, ..Model::default() }, 0);
        let (log, _) = open(&disk).unwrap();
        assert!(model.append(&log, &mut rng, 40, &mut next_id).is_none(), "seed {seed}: only misdirection is on");
        drop(log);
        disk.crash(0.5);
        let misdirected = disk.stats().misdirected_writes > 0;
        match open(&disk) {
            Ok((_, recovery)) => {
                model.check(seed, &recovery);
                assert_eq!(recovery.records.len(), model.acked.len(), "seed {seed}: exactly the records written");
                (misdirected, false)
            }
            Err(StorageError::Corrupt { .. }) => (misdirected, true),
            Err(other) => panic!("seed {seed}: neither the records nor a corruption error: {other}"),
        }
    }

    #[test]
    fn misdirected_writes_are_detected_never_handed_back() {
        let (mut exact, mut refused, mut fired) = (0, 0, 0);
        for seed in 0..100 {
            let (misdirected, corrupt) = misdirected_run(seed);
            fired += u64::from(misdirected);
            // A misdirected write always leaves intact records out of place, which
            // recovery must see; without one, recovery must not invent damage.
            assert_eq!(corrupt, misdirected, "seed {seed}: misdirection fired: {misdirected}, refused: {corrupt}");
            if corrupt {
                refused += 1;
            } else {
                exact += 1;
            }
        }
        assert!(fired > 0 && exact > 0 && refused > 0, "fired {fired}, exact {exact}, refused {refused}");
    }

    #[test]
    fn a_full_disk_refuses_with_disk_full_and_loses_nothing_acknowledged() {
        for seed in 0..20 {
            let mut rng = SeededRng::new(seed);
            let limit = 3000 + rng.below(6000);
            let disk = SimDisk::new(rng.fork(), DiskFaults { full_disk: Some(limit), ..DiskFaults::default() });
            let (mut model, mut next_id) = (Model { batches: true, ..Model::default() }, 0);
            let (log, _) = open(&disk).unwrap();
            let error = model.append(&log, &mut rng, 1000, &mut next_id);
            assert!(matches!(error, Some(StorageError::DiskFull { .. })), "seed {seed}: {error:?}");
            assert!(matches!(log.append(b"more"), Err(StorageError::Failed { .. })), "seed {seed}");
            assert!(disk.used_bytes() <= limit, "seed {seed}");
            drop(log);
            disk.crash(0.5);
            let (log, recovery) = open(&disk).unwrap_or_else(|e| panic!("seed {seed}: reopen on a full disk: {e}"));
            model.check(seed, &recovery);
            assert_eq!(recovery.records.len(), model.acked.len(), "seed {seed}");
            drop(log);
            disk.set_faults(DiskFaults::default());
            let (log, _) = open(&disk).unwrap();
            assert!(model.append(&log, &mut rng, 5, &mut next_id).is_none(), "seed {seed}: space again");
            assert!(disk.stats().full_disk_refusals > 0);
        }
    }

    #[test]
    fn a_read_error_fails_the_open_and_a_later_open_succeeds() {
        let mut rng = SeededRng::new(4);
        let disk = SimDisk::new(rng.fork(), DiskFaults::default());
        let (mut model, mut next_id) = (Model::default(), 0);
        let (log, _) = open(&disk).unwrap();
        model.append(&log, &mut rng, 30, &mut next_id);
        drop(log);
        disk.set_faults(DiskFaults { read_error: 1.0, ..DiskFaults::default() });
        assert!(matches!(open(&disk), Err(StorageError::Io { .. })));
        disk.set_faults(DiskFaults { read_error: 0.3, ..DiskFaults::default() });
        let (_, recovery) = open_retrying(&disk, 4).unwrap();
        model.check(4, &recovery);
        assert_eq!(recovery.records.len(), model.acked.len());
        assert!(disk.stats().read_errors >= 2);
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped_or_the_process_crashes() {
        let disk = SimDisk::new(SeededRng::new(5), DiskFaults::default());
        let path = Path::new("/LOCK");
        let guard = disk.lock(path).unwrap().expect("free");
        assert!(disk.lock(path).unwrap().is_none(), "held");
        drop(guard);
        assert!(disk.lock(path).unwrap().is_some(), "released by the drop (and again by this one)");

        let (old, _) = open(&disk).unwrap();
        assert!(matches!(open(&disk), Err(StorageError::Locked { .. })));
        disk.crash(0.0);
        let (new, _) = open(&disk).expect("a crash releases the lock");
        assert!(old.append(b"from a dead process").is_err(), "a crashed process's handles are dead");
        drop(old);
        assert!(matches!(open(&disk), Err(StorageError::Locked { .. })), "a dead guard releases nothing");
        drop(new);
        assert!(open(&disk).is_ok());
    }

    #[test]
    fn one_seed_gives_one_run() {
        let faults = DiskFaults { write_error: 0.05, read_error: 0.05, latency_ms_max: 7, ..DiskFaults::default() };
        let first = crash_run(42, faults);
        assert_eq!(first, crash_run(42, faults), "replay: crash_run(42, {faults:?})");
        assert!(first.0.latency_draws > 0 && first.1 > 0);
        assert_ne!(first, crash_run(43, faults));
    }

    /// A failed append whose truncation also failed leaves an intact but unsynced record
    /// in the active segment; a reopen without a crash recovers it. If the log then
    /// rotates and syncs only the new segment, a crash drops the record from the old one
    /// and the acknowledged records after it sit behind a gap: recovery refuses them.
    /// Recovery must make what it hands back durable.
    #[test]
    fn regression_recovered_unsynced_record_then_rotation_then_crash() {
        // One record per segment: every append after the first rotates.
        let config = LogConfig { segment_bytes_max: 100, ..LogConfig::default() };
        let dir = Path::new(DIR);
        let segment_two = crate::storage::disk::segment_path(&dir.join("log"), 2);
        let mut reproduced = false;
        for seed in 0..2000 {
            let disk = SimDisk::new(SeededRng::new(seed), DiskFaults::default());
            let (log, _) = Log::open_on(Box::new(disk.clone()), dir, config.clone()).unwrap();
            log.append(b"a").unwrap();
            disk.set_faults(DiskFaults { write_error: 1.0, ..DiskFaults::default() });
            assert!(log.append(b"b").is_err());
            drop(log);
            disk.set_faults(DiskFaults::default());
            // Only the seeds where the whole failed record landed (and was not cut) apply.
            if disk.read(&segment_two).unwrap().len() != 57 {
                continue;
            }
            reproduced = true;
            let (log, recovery) = Log::open_on(Box::new(disk.clone()), dir, config.clone()).unwrap();
            assert_eq!(recovery.head_seq, 2, "seed {seed}: the landed record verifies");
            assert_eq!(log.append(b"c").unwrap(), 3, "seed {seed}");
            drop(log);
            disk.crash(0.0);
            let reopened = Log::open_on(Box::new(disk.clone()), dir, config.clone());
            let (_, recovery) = reopened.unwrap_or_else(|e| panic!("seed {seed}: acknowledged record 3 lost: {e}"));
            assert_eq!(recovery.head_seq, 3, "seed {seed}");
            assert_eq!(recovery.records[2].payload, b"c", "seed {seed}");
            break;
        }
        assert!(reproduced, "no seed landed the whole failed record");
    }

    /// A crash tears an unacknowledged two-record batch: the kept prefix holds all of it,
    /// with a byte of the first record flipped (the second is intact). Nothing acknowledged
    /// is damaged, yet the scan saw "damage followed by intact records" and refused the
    /// log as corrupt in the middle: the node could not restart after an ordinary crash.
    /// Fixed by marking write boundaries in the magic (docs/adr/042): the intact record is
    /// a continuation ("BHLC") of the damaged write, so the whole write is a torn tail.
    #[test]
    fn regression_torn_batch_with_a_flip_before_an_intact_record_is_a_torn_tail() {
        let disk = SimDisk::new(SeededRng::new(9), DiskFaults::default());
        let (log, _) = open(&disk).unwrap();
        for seq in 1..=3 {
            assert_eq!(log.append(format!("acknowledged {seq}").as_bytes()).unwrap(), seq);
        }
        let (head_seq, head_hash) = log.head();
        drop(log);
        // The batch the crash tore, as it was meant to be written.
        let mut batch = Vec::new();
        let hash = encode_record(&mut batch, head_seq + 1, &head_hash, b"unacknowledged 4");
        let second = batch.len();
        encode_record_at(&mut batch, WritePosition::Continuation, head_seq + 2, &hash, b"unacknowledged 5");
        batch[second - 3] ^= 0x20;
        {
            // What the crash left: the whole batch, durable now, with the flip.
            let mut state = disk.state();
            let file = state.files.values_mut().find(|f| !f.bytes.is_empty()).expect("the segment");
            file.bytes.extend_from_slice(&batch);
            file.sync();
        }
        let (_, recovery) = open(&disk).unwrap_or_else(|e| panic!("an ordinary crash made the log unopenable: {e}"));
        assert_eq!(recovery.head_seq, 3);
        assert_eq!(recovery.torn_tail.map(|t| t.bytes_dropped), Some(batch.len() as u64));
    }

    #[test]
    fn wipe_removes_a_nodes_files_only() {
        let disk = SimDisk::new(SeededRng::new(6), DiskFaults::default());
        let other = Path::new("/other");
        disk.create_dir_all(other).unwrap();
        disk.write_atomic(&other.join("x"), b"keep").unwrap();
        let (log, _) = open(&disk).unwrap();
        log.append(b"gone").unwrap();
        drop(log);
        assert_eq!(disk.files(), 2);
        disk.wipe(Path::new(DIR));
        assert_eq!(disk.files(), 1);
        let (_, recovery) = open(&disk).unwrap();
        assert_eq!(recovery.head_seq, 0);
        assert_eq!(disk.read(&other.join("x")).unwrap(), b"keep");
    }
}
