//! The conflict log: a bounded ring of the last resolutions, which the host reads to
//! audit what the resolver decided (DESIGN.md §1, "every resolution logged").
//!
//! Records hold version metadata and BLAKE3 digests of both values, not the values
//! themselves (up to 1 MiB each), so the log's memory is bounded by its capacity times
//! a key and a short error text. When full, the oldest record is dropped and counted.

use std::collections::VecDeque;

use crate::state::{MergeRule, Version};

/// The longest error text kept in a record; a host resolver's message is cut there.
pub const MAX_ERROR_LEN: usize = 256;

/// What a resolution decided.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The local version was kept.
    KeptLocal,
    /// The remote version was kept.
    KeptRemote,
    /// Both were replaced by a merged value of this many bytes.
    Merged {
        /// Length of the merged value.
        len: usize,
    },
    /// Nothing was decided: both versions stay stored. The text says why.
    Unresolved {
        /// The error, cut to [`MAX_ERROR_LEN`] bytes.
        error: String,
    },
}

/// One logged resolution.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConflictRecord {
    /// Position in the log since creation (0 for the first record ever appended).
    pub sequence: u64,
    /// The key in conflict.
    pub key: Vec<u8>,
    /// The local version.
    pub local: Version,
    /// The remote version.
    pub remote: Version,
    /// BLAKE3 of the local value.
    pub local_value_hash: [u8; 32],
    /// BLAKE3 of the remote value.
    pub remote_value_hash: [u8; 32],
    /// The category's strategy.
    pub strategy: MergeRule,
    /// What was decided.
    pub outcome: Outcome,
}

/// A ring buffer of the most recent [`ConflictRecord`]s.
#[derive(Clone, Debug)]
pub struct ConflictLog {
    records: VecDeque<ConflictRecord>,
    capacity: usize,
    appended: u64,
}

impl ConflictLog {
    /// A log that keeps the last `capacity` records (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ConflictLog { records: VecDeque::with_capacity(capacity), capacity, appended: 0 }
    }

    /// Appends a record, dropping the oldest when full; sets its sequence number.
    pub fn append(&mut self, mut record: ConflictRecord) {
        if let Outcome::Unresolved { error } = &mut record.outcome {
            truncate_utf8(error, MAX_ERROR_LEN);
        }
        record.sequence = self.appended;
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
        self.appended += 1;
        debug_assert!(self.records.len() <= self.capacity);
    }

    /// Records still held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &ConflictRecord> {
        self.records.iter()
    }

    /// Records with a sequence number at least `sequence`: what a host that has read
    /// up to `sequence − 1` has not seen yet (minus any dropped meanwhile).
    pub fn since(&self, sequence: u64) -> impl Iterator<Item = &ConflictRecord> {
        self.records.iter().filter(move |record| record.sequence >= sequence)
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records ever appended.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Records dropped to make room.
    pub fn dropped(&self) -> u64 {
        self.appended - self.records.len() as u64
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome) -> ConflictRecord {
        ConflictRecord {
            sequence: 99,
            key: b"k".to_vec(),
            local: Version::default(),
            remote: Version::default(),
            local_value_hash: [0; 32],
            remote_value_hash: [0; 32],
            strategy: MergeRule::Custom,
            outcome,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_the_dropped() {
        let mut log = ConflictLog::new(2);
        assert!(log.is_empty());
        for _ in 0..5 {
            log.append(record(Outcome::KeptLocal));
        }
        assert_eq!((log.len(), log.appended(), log.dropped()), (2, 5, 3));
        assert_eq!(log.iter().map(|r| r.sequence).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(log.since(4).count(), 1);
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let mut log = ConflictLog::new(1);
        log.append(record(Outcome::Unresolved { error: "é".repeat(200) }));
        let Some(Outcome::Unresolved { error }) = log.iter().next().map(|r| r.outcome.clone()) else {
            panic!("an unresolved record");
        };
        assert_eq!(error.len(), MAX_ERROR_LEN);
    }
}
