//! Applying entries that came from a peer, with the category's merge rule
//! (DESIGN.md §3: lww | a CRDT kind | custom).
//!
//! Last-writer-wins batches go through one prepare pass (the BLAKE3 hashes) and one
//! batched insertion, as `CategoryState::apply_prepared_lww` does: this is the bulk-sync
//! path. CRDT and custom categories resolve each key that exists on both sides with
//! different versions through [`crate::crdt::Resolver`]; the result is stored without
//! re-stamping when it equals the last writer's value (so two nodes that merged the same
//! states do not keep minting versions), and under a new local version otherwise (which
//! supersedes both, so it travels back and the other side converges). See ADR 032.

use crate::crdt::{Resolved, Side, VersionedValue};
use crate::state::{Digest, EntryRef, MergeRule, PreparedLeaf};
use crate::time::HlcTimestamp;

use super::core::NodeCore;
use super::message::{batch_digest, Batch, BatchWriter, WireEntry};
use super::types::{NodeEvent, PeerFault};

/// What applying a batch did.
pub(crate) struct Applied {
    /// The stored entries, re-encoded for relaying (when asked for).
    pub(crate) relay: Option<BatchWriter>,
}

impl NodeCore {
    /// Validates a received batch (bounds, digest) and applies it. Nothing is applied
    /// when any entry is invalid or the digest does not match.
    /// Applies one frame of a whole-category stream: as a push, without relaying, and
    /// reported as one [`NodeEvent::Streamed`] rather than one event per key.
    pub(crate) fn apply_stream_batch(
        &mut self,
        now_ms: u64,
        category: &str,
        batch: &Batch<'_>,
    ) -> Result<(), PeerFault> {
        self.streaming = true;
        let result = self.apply_batch(now_ms, category, batch.entries(), &batch.digest, false);
        self.streaming = false;
        result?;
        self.push_event(NodeEvent::Streamed { category: category.to_owned(), entries: batch.count as u64 });
        Ok(())
    }

    pub(crate) fn apply_batch<'e>(
        &mut self,
        now_ms: u64,
        category: &str,
        entries: impl Iterator<Item = WireEntry<'e>>,
        expected: &Digest,
        relay: bool,
    ) -> Result<Applied, PeerFault> {
        let spec = self.spec(category).ok_or_else(|| PeerFault::UnknownCategory(category.to_owned()))?.clone();
        let state = self.replica.category(category).ok_or_else(|| PeerFault::UnknownCategory(category.to_owned()))?;
        let entries: Vec<(&[u8], &[u8], crate::state::Version)> =
            entries.map(|entry| (entry.key, entry.value, entry.version)).collect();
        let prepared =
            state.prepare_all(&entries, self.executor.as_ref()).map_err(|e| PeerFault::InvalidItem(e.to_string()))?;
        if batch_digest(prepared.iter().map(PreparedLeaf::digest)) != *expected {
            return Err(PeerFault::DigestMismatch);
        }
        match spec.merge {
            MergeRule::LastWriterWins => Ok(self.apply_lww(now_ms, category, prepared, relay)),
            rule => Ok(self.apply_merging(now_ms, category, rule, prepared, relay)),
        }
    }

    fn apply_lww(&mut self, now_ms: u64, category: &str, prepared: Vec<PreparedLeaf>, relay: bool) -> Applied {
        let Some(state) = self.state_mut(category) else { return Applied { relay: None } };
        let mut winners: Vec<PreparedLeaf> = prepared
            .into_iter()
            .filter(|p| state.get(p.key()).map_or(true, |stored| p.version().lww_cmp(&stored.version).is_gt()))
            .collect();
        winners.sort_by(|a, b| a.version().lww_cmp(&b.version()));
        let relay_batch = relay.then(|| {
            let mut writer = BatchWriter::new();
            winners.iter().for_each(|p| writer.push(p.key(), p.leaf.value(), &p.version(), p.digest()));
            writer
        });
        let newest = winners.iter().map(|p| p.version().hlc).max();
        self.note_updates(category, winners.iter().map(PreparedLeaf::key));
        let count = winners.len() as u64;
        let executor = self.executor.clone();
        if let Some(state) = self.state_mut(category) {
            if !winners.is_empty() {
                state.apply_batch_on(winners, executor.as_ref());
            }
        }
        if let Some(hlc) = newest {
            // A refused far-future time still stores the version (it won on its merits)
            // but does not drag this node's clock along.
            let _ = self.hlc.observe(HlcTimestamp(hlc), self.physical_ms(now_ms));
        }
        self.stats.items_in += count;
        Applied { relay: relay_batch }
    }

    fn apply_merging(
        &mut self,
        now_ms: u64,
        category: &str,
        rule: MergeRule,
        prepared: Vec<PreparedLeaf>,
        relay: bool,
    ) -> Applied {
        let mut writer = relay.then(BatchWriter::new);
        let mut count = 0;
        for leaf in prepared {
            let remote = VersionedValue { value: leaf.leaf.value().to_vec(), version: leaf.version() };
            let key = leaf.key().to_vec();
            let digest = *leaf.digest();
            // Observed first, so that a version stamped while resolving is newer than both.
            let _ = self.hlc.observe(HlcTimestamp(remote.version.hlc), self.physical_ms(now_ms));
            let Some(state) = self.state_mut(category) else { break };
            let local = state.get(&key).map(|e| VersionedValue { value: e.value.to_vec(), version: e.version });
            match local {
                Some(local) if local.version == remote.version => continue,
                Some(local) if !local.version.tombstone && !remote.version.tombstone => {
                    let remote_wins = remote.version.lww_cmp(&local.version).is_gt();
                    if remote_wins {
                        state.upsert(leaf);
                    }
                    if let Some(stored) = self.resolve_after(now_ms, category, rule, &key, &local, &remote) {
                        writer.iter_mut().for_each(|w| w.push_ref(&stored.as_ref()));
                        count += 1;
                    } else if remote_wins {
                        writer.iter_mut().for_each(|w| w.push(&key, &remote.value, &remote.version, &digest));
                        count += 1;
                    }
                }
                Some(local) if remote.version.lww_cmp(&local.version).is_le() => continue,
                _ => {
                    state.upsert(leaf);
                    writer.iter_mut().for_each(|w| w.push(&key, &remote.value, &remote.version, &digest));
                    count += 1;
                }
            }
            self.note_updates(category, std::iter::once(&key[..]));
        }
        self.stats.items_in += count;
        Applied { relay: writer }
    }

    /// After the last-writer-wins winner of `local` and `remote` is stored, applies the
    /// category's rule. Returns the newly stamped entry when the result differs from the
    /// winner's value.
    pub(crate) fn resolve_after(
        &mut self,
        now_ms: u64,
        category: &str,
        rule: MergeRule,
        key: &[u8],
        local: &VersionedValue,
        remote: &VersionedValue,
    ) -> Option<OwnedStored> {
        let resolver = self.resolvers.entry(category.to_owned()).or_default();
        let resolved = resolver.resolve(rule, key, local, remote);
        let winner = if remote.version.lww_cmp(&local.version).is_gt() { remote } else { local };
        let (value, error) = match resolved {
            Resolved::Keep(Side::Local) => (local.value.clone(), None),
            Resolved::Keep(Side::Remote) => (remote.value.clone(), None),
            Resolved::Merged(value) => (value, None),
            Resolved::KeepBoth { error } => (winner.value.clone(), Some(error)),
        };
        self.stats.conflicts += 1;
        if error.is_some() {
            self.stats.conflicts_unresolved += 1;
        }
        let merged = value != winner.value;
        self.push_event(NodeEvent::Conflict { category: category.to_owned(), key: key.to_vec(), merged, error });
        if !merged {
            return None;
        }
        let floor = local.version.hlc.max(remote.version.hlc);
        let stamped = self.write_local_above(now_ms, category, key, &value, floor).ok()?;
        Some(OwnedStored { key: key.to_vec(), value, version: stamped.0, digest: stamped.1 })
    }

    fn note_updates<'k>(&mut self, category: &str, keys: impl Iterator<Item = &'k [u8]>) {
        if self.streaming {
            return;
        }
        for key in keys {
            if self.events.len() >= self.config.max_events {
                self.stats.events_dropped += 1;
                continue;
            }
            self.events.push_back(NodeEvent::Updated { category: category.to_owned(), key: key.to_vec() });
        }
    }
}

/// An entry this node stamped while resolving.
pub(crate) struct OwnedStored {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) version: crate::state::Version,
    pub(crate) digest: Digest,
}

impl OwnedStored {
    pub(crate) fn as_ref(&self) -> EntryRef<'_> {
        EntryRef { key: &self.key, value: &self.value, version: self.version, digest: &self.digest }
    }
}
