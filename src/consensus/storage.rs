//! The Raft log of one group in memory ([`GroupStorage`], raft-rs's `Storage`), and
//! its journal: the records that make it durable and the replay that rebuilds it.
//!
//! raft-rs is sans-IO about storage too: each `Ready` hands over new entries, a new
//! hard state or a snapshot, which must be durable before the messages that depend
//! on them leave. The group writes them as journal records through a [`Journal`]
//! (the node's is the src/storage group-commit log, one per strong category; the
//! simulator's is a vector that survives a crash) and keeps the log in memory.
//! A compaction replaces the journal's prefix by an *image* (snapshot, hard state,
//! configuration, the entries after the snapshot): it maps onto `Log::write_snapshot`.
//!
//! Record payloads (one tag byte, then the body, integers little-endian):
//! ```text
//! 1 Entries    count u32, then count × (len u32, eraftpb::Entry protobuf)
//! 2 HardState  term u64, vote u64, commit u64
//! 3 Snapshot   eraftpb::Snapshot protobuf (metadata with conf state, and the data)
//! 4 ConfState  eraftpb::ConfState protobuf
//! ```
//! An image is `count u32, count × (len u32, record)`.

use std::cmp;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

const ENTRIES: u8 = 1;
const HARD_STATE: u8 = 2;
const SNAPSHOT: u8 = 3;
const CONF_STATE: u8 = 4;

/// Where a group's records go to be durable.
pub trait Journal: Send {
    /// Appends the records; returns only once they are durable.
    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), String>;
    /// Replaces everything appended so far by `image` (a compaction).
    fn compact(&mut self, image: &[u8]) -> Result<(), String>;
}

/// What a journal held at open: the latest image, then the records after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The latest compaction image.
    pub image: Option<Vec<u8>>,
    /// Records appended after it, in order.
    pub records: Vec<Vec<u8>>,
}

/// A journal in memory: what the simulator keeps across a crash.
#[derive(Clone, Debug, Default)]
pub struct MemJournal {
    /// What survives a crash.
    pub durable: Recovered,
    /// Compactions so far.
    pub compactions: u64,
}

impl Journal for MemJournal {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), String> {
        self.durable.records.extend(records.iter().cloned());
        Ok(())
    }

    fn compact(&mut self, image: &[u8]) -> Result<(), String> {
        self.durable = Recovered { image: Some(image.to_vec()), records: Vec::new() };
        self.compactions += 1;
        Ok(())
    }
}

/// Why a journal could not be replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayError(pub String);

/// One group's Raft log in memory: a snapshot, the entries after it, the hard state
/// and the voter configuration.
#[derive(Clone, Debug, Default)]
pub struct GroupStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl GroupStorage {
    /// A fresh log for a group whose first voters are `voters`.
    pub fn new(voters: &[u64]) -> Self {
        let mut storage = GroupStorage::default();
        storage.conf_state.voters = voters.to_vec();
        storage.snapshot.mut_metadata().set_conf_state(storage.conf_state.clone());
        storage
    }

    /// Rebuilds the log from a journal: the image, then the records in order.
    pub fn replay(voters: &[u64], recovered: &Recovered) -> Result<Self, ReplayError> {
        let mut storage = GroupStorage::new(voters);
        if let Some(image) = &recovered.image {
            for record in split_image(image)? {
                storage.replay_record(&record)?;
            }
        }
        for record in &recovered.records {
            storage.replay_record(record)?;
        }
        Ok(storage)
    }

    fn replay_record(&mut self, record: &[u8]) -> Result<(), ReplayError> {
        let bad = |what: &str| ReplayError(format!("journal record: {what}"));
        let (&tag, body) = record.split_first().ok_or_else(|| bad("empty"))?;
        match tag {
            ENTRIES => {
                let entries = decode_entries(body).ok_or_else(|| bad("entries"))?;
                self.append(&entries).map_err(|e| bad(&e))
            }
            HARD_STATE => {
                let mut hs = decode_hard_state(body).ok_or_else(|| bad("hard state"))?;
                hs.commit = cmp::max(hs.commit, self.hard_state.commit);
                self.hard_state = hs;
                Ok(())
            }
            SNAPSHOT => {
                let snapshot = Snapshot::parse_from_bytes(body).map_err(|_| bad("snapshot"))?;
                // An older snapshot than the log already holds changes nothing.
                let _ = self.apply_snapshot(snapshot);
                Ok(())
            }
            CONF_STATE => {
                self.conf_state = ConfState::parse_from_bytes(body).map_err(|_| bad("conf state"))?;
                Ok(())
            }
            _ => Err(bad("unknown tag")),
        }
    }

    /// The hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The current voter configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The latest snapshot (metadata and data).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Sets the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Sets the voter configuration.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Moves the commit index forward (never back).
    pub fn commit_to(&mut self, index: u64) {
        self.hard_state.commit = cmp::max(self.hard_state.commit, index);
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.get_metadata().index, |e| e.index)
    }

    /// Appends entries, dropping any suffix they overwrite (a new leader's log wins).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), String> {
        let Some(first) = entries.first() else { return Ok(()) };
        if first.index < self.first() {
            // Entries the snapshot already covers: keep only the part after it.
            let skip = (self.first() - first.index) as usize;
            return if skip < entries.len() { self.append(&entries[skip..]) } else { Ok(()) };
        }
        if first.index > self.last() + 1 {
            return Err(format!("gap: last {} then {}", self.last(), first.index));
        }
        let keep = (first.index - self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Replaces the log by a snapshot (received from the leader, or taken here).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), String> {
        let meta = snapshot.get_metadata();
        if meta.index < self.snapshot.get_metadata().index {
            return Err("snapshot out of date".into());
        }
        let index = meta.index;
        // Entries after the snapshot that agree with it stay (a local snapshot).
        let keep_from = self.entries.iter().position(|e| e.index > index);
        let agrees = self.term_of(index).ok() == Some(meta.term);
        self.entries = match (keep_from, agrees) {
            (Some(at), true) => self.entries.split_off(at),
            _ => Vec::new(),
        };
        self.hard_state.term = cmp::max(self.hard_state.term, meta.term);
        self.hard_state.commit = cmp::max(self.hard_state.commit, index);
        if !agrees || self.entries.is_empty() {
            self.conf_state = meta.get_conf_state().clone();
        }
        self.snapshot = snapshot;
        Ok(())
    }

    fn term_of(&self, index: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if index == meta.index {
            return Ok(meta.term);
        }
        if index < meta.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let offset = (index - self.first()) as usize;
        self.entries.get(offset).map(|e| e.term).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    /// The journal records that rebuild this whole log: an image for compaction.
    pub fn image(&self) -> Vec<u8> {
        let records = vec![
            snapshot_record(&self.snapshot),
            conf_state_record(&self.conf_state),
            hard_state_record(&self.hard_state),
            entries_record(&self.entries),
        ];
        let mut out = Vec::new();
        out.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for record in &records {
            out.extend_from_slice(&(record.len() as u32).to_le_bytes());
            out.extend_from_slice(record);
        }
        out
    }

    /// Entries held in memory (after the snapshot).
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
}

impl Storage for GroupStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = self.first();
        let mut out: Vec<Entry> = self.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.term_of(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

/// A snapshot of the state at `index` (of term `term`) under configuration `conf`.
pub fn make_snapshot(index: u64, term: u64, conf: &ConfState, data: Vec<u8>) -> Snapshot {
    let mut meta = SnapshotMetadata { index, term, ..SnapshotMetadata::default() };
    meta.set_conf_state(conf.clone());
    let mut snapshot = Snapshot::default();
    snapshot.set_metadata(meta);
    snapshot.data = data.into();
    snapshot
}

/// The record of new entries.
pub fn entries_record(entries: &[Entry]) -> Vec<u8> {
    let mut out = vec![ENTRIES];
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for entry in entries {
        let bytes = entry.write_to_bytes().unwrap_or_default();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// The record of a hard state.
pub fn hard_state_record(hs: &HardState) -> Vec<u8> {
    let mut out = vec![HARD_STATE];
    for field in [hs.term, hs.vote, hs.commit] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out
}

/// The record of a snapshot.
pub fn snapshot_record(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = vec![SNAPSHOT];
    out.extend_from_slice(&snapshot.write_to_bytes().unwrap_or_default());
    out
}

/// The record of a voter configuration.
pub fn conf_state_record(cs: &ConfState) -> Vec<u8> {
    let mut out = vec![CONF_STATE];
    out.extend_from_slice(&cs.write_to_bytes().unwrap_or_default());
    out
}

fn split_image(image: &[u8]) -> Result<Vec<Vec<u8>>, ReplayError> {
    let mut reader = Reader(image);
    let count = reader.u32().ok_or_else(|| ReplayError("image: count".into()))?;
    (0..count).map(|_| reader.chunk().map(<[u8]>::to_vec).ok_or_else(|| ReplayError("image: record".into()))).collect()
}

fn decode_entries(body: &[u8]) -> Option<Vec<Entry>> {
    let mut reader = Reader(body);
    let count = reader.u32()?;
    (0..count).map(|_| Entry::parse_from_bytes(reader.chunk()?).ok()).collect()
}

fn decode_hard_state(body: &[u8]) -> Option<HardState> {
    let mut reader = Reader(body);
    let (term, vote, commit) = (reader.u64()?, reader.u64()?, reader.u64()?);
    Some(HardState { term, vote, commit, ..HardState::default() })
}

/// A bounds-checked little-endian reader.
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    pub(crate) fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, data: vec![index as u8].into(), ..Entry::default() }
    }

    #[test]
    fn replay_rebuilds_entries_hard_state_and_overwrites() {
        let hs = HardState { term: 2, vote: 1, commit: 2, ..HardState::default() };
        let records = vec![
            entries_record(&[entry(1, 1), entry(2, 1), entry(3, 1)]),
            hard_state_record(&hs),
            // A new leader's log overwrites the uncommitted suffix from index 3 on.
            entries_record(&[entry(3, 2), entry(4, 2)]),
        ];
        let storage = GroupStorage::replay(&[1, 2, 3], &Recovered { image: None, records }).unwrap();
        assert_eq!(storage.last_index().unwrap(), 4);
        assert_eq!(storage.term(3).unwrap(), 2);
        assert_eq!(storage.hard_state(), &hs);
        let again = GroupStorage::replay(&[1, 2, 3], &Recovered { image: Some(storage.image()), records: vec![] });
        assert_eq!(again.unwrap().term(4).unwrap(), 2, "an image replays to the same log");
    }

    proptest! {
        #[test]
        fn arbitrary_journal_bytes_never_panic(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            image in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        ) {
            let _ = GroupStorage::replay(&[1], &Recovered { image, records });
        }
    }
}
