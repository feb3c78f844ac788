//! An in-memory replica: several categories under one node identity, with the
//! operations of the seed design's StateSync (state hash, state diff, apply diff,
//! verify consistency) and last-writer-wins writes.
//!
//! It is sans-IO: the caller passes the current time to every write. Timestamps are
//! kept strictly increasing per replica (a write at a time not after the last one
//! takes the last one plus one), and remote versions advance the replica's time, as a
//! hybrid logical clock's receive rule does; the full hybrid logical clock lives in
//! `time` once it exists.

use std::collections::BTreeMap;

use super::category::{validate_name, CategorySpec, Priority};
use super::category_state::CategoryState;
use super::diff::{self, StateDiff};
use super::digest::Digest;
use super::entry::{check_bounds, Entry, EntryRef, Version};
use super::error::StateError;
use super::node_id::NodeId;
use super::proof::MembershipProof;
use super::shard::MAX_SHARDS;
use super::vector::{CategoryVector, StateVector};
use crate::reconcile::{in_process, SessionConfig, SessionError, SessionReport};

/// How one category's reconciliation went: its name and its session's report or error.
pub type CategorySync = (String, Result<SessionReport, SessionError>);

/// What applying remote versions did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ApplyOutcome {
    /// Versions stored (new keys, or newer than the stored version).
    pub applied: u64,
    /// Versions ignored because the stored version is newer or the same.
    pub ignored: u64,
}

/// A node's state held in memory.
pub struct Replica {
    origin: NodeId,
    shard_count: usize,
    categories: BTreeMap<String, CategoryState>,
    last_hlc: u64,
    counter: u64,
}

impl Replica {
    /// An empty replica writing as `origin`, each category split over `shard_count`
    /// shards (1 to 16).
    pub fn new(origin: NodeId, shard_count: usize) -> Result<Self, StateError> {
        if shard_count == 0 || shard_count > MAX_SHARDS {
            return Err(StateError::InvalidShardCount(shard_count));
        }
        Ok(Replica { origin, shard_count, categories: BTreeMap::new(), last_hlc: 0, counter: 0 })
    }

    /// The identity this replica writes as.
    pub fn origin(&self) -> NodeId {
        self.origin
    }

    /// Adds a category; adding an existing one keeps it as it is.
    pub fn add_category(&mut self, name: &str, spec: CategorySpec) -> Result<&mut CategoryState, StateError> {
        validate_name(name)?;
        if !self.categories.contains_key(name) {
            let state = CategoryState::new(name, spec, self.shard_count)?;
            self.categories.insert(name.to_owned(), state);
        }
        self.categories.get_mut(name).ok_or_else(|| StateError::UnknownCategory(name.to_owned()))
    }

    /// The category named `name`.
    pub fn category(&self, name: &str) -> Option<&CategoryState> {
        self.categories.get(name)
    }

    /// All categories, by name.
    pub fn categories(&self) -> impl Iterator<Item = &CategoryState> {
        self.categories.values()
    }

    /// Writes `value` under `key` at time `now`. A category seen for the first time is
    /// created with the default spec (eventual, last-writer-wins, medium priority).
    pub fn put(&mut self, category: &str, key: &[u8], value: &[u8], now: u64) -> Result<Version, StateError> {
        self.write(category, key, value, now, false)
    }

    /// Deletes `key` at time `now` by writing a tombstone, so that the deletion
    /// propagates. Returns whether a live value was deleted.
    pub fn delete(&mut self, category: &str, key: &[u8], now: u64) -> Result<bool, StateError> {
        let live = self.get(category, key).is_some();
        if live {
            self.write(category, key, &[], now, true)?;
        }
        Ok(live)
    }

    /// The live value of `key`; `None` when absent or deleted.
    pub fn get(&self, category: &str, key: &[u8]) -> Option<EntryRef<'_>> {
        self.categories.get(category)?.get(key).filter(|entry| !entry.version.tombstone)
    }

    /// The root of one category, or of an empty category when it does not exist.
    pub fn category_root(&self, category: &str) -> Digest {
        self.categories.get(category).map_or(Digest::EMPTY, CategoryState::root)
    }

    /// The overall state hash: the hash of all category roots.
    pub fn state_hash(&self) -> Digest {
        self.state_vector().state_hash()
    }

    /// Version vector, root and size of every category.
    pub fn state_vector(&self) -> StateVector {
        let categories = self
            .categories
            .iter()
            .map(|(name, state)| {
                let vector = CategoryVector {
                    id: state.id(),
                    versions: state.version_vector(),
                    root: state.root(),
                    entries: state.len(),
                };
                (name.clone(), vector)
            })
            .collect();
        StateVector { categories }
    }

    /// A membership proof for the stored version of `key` (tombstones included).
    pub fn prove(&self, category: &str, key: &[u8]) -> Option<MembershipProof> {
        self.categories.get(category)?.prove(key)
    }

    /// The versions this replica and `other` do not share, per category present on
    /// either side; categories whose roots agree are skipped after one comparison.
    pub fn state_diff(&self, other: &Replica) -> Vec<StateDiff> {
        let mut names: Vec<&String> = self.categories.keys().chain(other.categories.keys()).collect();
        names.sort();
        names.dedup();
        let mut diffs = Vec::new();
        for name in names {
            let diff = match (self.categories.get(name), other.categories.get(name)) {
                (Some(mine), Some(theirs)) if mine.root() == theirs.root() => continue,
                (Some(mine), Some(theirs)) => diff::state_diff(mine, theirs),
                (Some(mine), None) => whole_category(mine, true),
                (None, Some(theirs)) => whole_category(theirs, false),
                (None, None) => continue,
            };
            diffs.push(diff);
        }
        diffs
    }

    /// Applies versions that another replica holds: each is stored if its key is new
    /// here or it wins last-writer-wins against the stored version.
    pub fn apply_remote(&mut self, category: &str, entries: &[Entry]) -> Result<ApplyOutcome, StateError> {
        let state = self.add_category(category, CategorySpec::default())?;
        let (applied, ignored) = state.apply_lww(entries)?;
        // Only versions now stored advance the clock: a rejected or losing version must
        // not drag local time along.
        let stored = |e: &&Entry| state.get(&e.key).is_some_and(|s| s.version == e.version);
        let newest = entries.iter().filter(stored).map(|e| e.version.hlc).max().unwrap_or(0);
        self.last_hlc = self.last_hlc.max(newest);
        Ok(ApplyOutcome { applied, ignored })
    }

    /// Applies the remote side of a diff made by `self.state_diff(remote)`.
    pub fn apply_state_diff(&mut self, diff: &StateDiff) -> Result<ApplyOutcome, StateError> {
        self.apply_remote(&diff.category, &diff.only_right)
    }

    /// Synchronizes with another replica held in the same process ("sync with peer"):
    /// both exchange the versions the other lacks, found by comparing their tries by
    /// path, and concurrent versions of a key resolve by last-writer-wins on both sides,
    /// so afterwards both have the same state hash. `applied` counts versions stored on
    /// either side, `ignored` those that lost.
    pub fn sync_with(&mut self, other: &mut Replica) -> Result<ApplyOutcome, StateError> {
        let mut total = ApplyOutcome::default();
        for diff in self.state_diff(other) {
            for outcome in [
                self.apply_remote(&diff.category, &diff.only_right)?,
                other.apply_remote(&diff.category, &diff.only_left)?,
            ] {
                total.applied += outcome.applied;
                total.ignored += outcome.ignored;
            }
        }
        Ok(total)
    }

    /// Reconciles every category either side holds with `other` through reconciliation
    /// sessions (this replica initiates; a category one side lacks is created empty
    /// there first). Categories go in priority order — critical, high, medium, low, then
    /// by name — and every category is reconciled on every call, so low priority is
    /// delayed, never starved: a category whose session fails gets its error in the
    /// result and the next category goes on. Returns one result per category, in that
    /// order.
    pub fn reconcile_with(
        &mut self,
        other: &mut Replica,
        config: &SessionConfig,
    ) -> Result<Vec<CategorySync>, StateError> {
        let priority = |name: &String| {
            let spec = self.categories.get(name).or_else(|| other.categories.get(name)).map(|c| c.spec().priority);
            (spec.unwrap_or_default(), name.clone())
        };
        let mut names: Vec<(Priority, String)> =
            self.categories.keys().chain(other.categories.keys()).map(priority).collect();
        names.sort();
        names.dedup();
        let names: Vec<String> = names.into_iter().map(|(_, name)| name).collect();
        let mut reports = Vec::with_capacity(names.len());
        for (index, name) in names.into_iter().enumerate() {
            let mine = self.add_category(&name, CategorySpec::default())?;
            let theirs = other.add_category(&name, CategorySpec::default())?;
            let report = in_process::reconcile(mine, theirs, config, index as u32 + 1);
            reports.push((name, report));
        }
        let newest = self.last_hlc.max(other.last_hlc);
        self.last_hlc = newest;
        other.last_hlc = newest;
        Ok(reports)
    }

    /// Checks every category's cached hashes against a full recomputation.
    pub fn verify_consistency(&self) -> Result<(), String> {
        self.categories.values().try_for_each(CategoryState::verify_integrity)
    }

    /// Stores versions recovered from this node's own log or snapshot (last-writer-wins)
    /// and moves the local clock and counter past every version this node wrote, so
    /// that writes after a restart are newer than writes before it.
    pub fn restore(&mut self, category: &str, entries: &[Entry]) -> Result<ApplyOutcome, StateError> {
        for entry in entries.iter().filter(|entry| entry.version.origin == self.origin) {
            self.counter = self.counter.max(entry.version.counter);
            self.last_hlc = self.last_hlc.max(entry.version.hlc);
        }
        self.apply_remote(category, entries)
    }

    fn write(&mut self, category: &str, key: &[u8], value: &[u8], now: u64, tombstone: bool) -> Result<Version, StateError> {
        check_bounds(key, value)?;
        let hlc = now.max(self.last_hlc.saturating_add(1));
        let version = Version { hlc, origin: self.origin, counter: self.counter + 1, tombstone };
        let state = self.add_category(category, CategorySpec::default())?;
        let prepared = state.prepare(key, value, version)?;
        state.upsert(prepared);
        self.last_hlc = hlc;
        self.counter += 1;
        Ok(version)
    }
}

/// A diff against a side that lacks the category entirely.
fn whole_category(state: &CategoryState, on_left: bool) -> StateDiff {
    let mut entries = Vec::new();
    state.for_each_entry(&mut |entry| entries.push(entry.to_entry()));
    let mut diff = StateDiff { category: state.name().to_owned(), ..StateDiff::default() };
    if on_left {
        diff.only_left = entries;
    } else {
        diff.only_right = entries;
    }
    diff
}
