//! The sans-IO node core: one node's state, its merge rules, gossip of new writes and
//! anti-entropy with every connected peer, behind the quinn-proto shape (DESIGN.md §2).
//!
//! The engine (or the simulator) calls `handle_peer_up/down`, `handle_message` and
//! `handle_timeout` with the current time, sends what `poll_transmit` yields, sleeps
//! until `poll_timeout`, and forwards `poll_event` to the host. Host commands (`put`,
//! `get`, `counter_add`, `sync_with`, …) act on the local replica and queue gossip.
//! Nothing here touches a socket, a thread, a clock or ambient randomness.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::crdt::{AnyCrdt, Crdt, CustomResolver, PnCounter, Resolver};
use crate::sansio::SeededRng;
use crate::state::parallel::{Executor, Inline};
use crate::state::{CategorySpec, CategoryState, Digest, Entry, EntryRef, MergeRule, NodeId, Replica, Version};
use crate::time::{Hlc, HlcTimestamp};

use super::message::{self, BatchWriter};
use super::peer::Peer;
use super::types::{CoreConfig, CoreStats, NodeError, NodeEvent, SyncId, Transmit};

/// Target size of one push message's body.
const PUSH_BATCH_BYTES: usize = 64 * 1024;
/// Pushes waiting for the host's broadcast tree at most; beyond, anti-entropy carries
/// the writes.
const MAX_PENDING_BROADCASTS: usize = 1_024;

/// One node's protocol logic, without IO.
pub struct NodeCore {
    pub(crate) config: CoreConfig,
    pub(crate) me: NodeId,
    pub(crate) rng: SeededRng,
    pub(crate) hlc: Hlc,
    pub(crate) replica: Replica,
    pub(crate) specs: BTreeMap<String, CategorySpec>,
    /// Category names in sync order: priority, then name.
    pub(crate) order: Vec<String>,
    pub(crate) resolvers: HashMap<String, Resolver>,
    pub(crate) peers: BTreeMap<NodeId, Peer>,
    pub(crate) pending_push: BTreeMap<String, Vec<BatchWriter>>,
    pub(crate) pending_push_count: usize,
    pub(crate) relays: Vec<(NodeId, u8, String, BatchWriter)>,
    /// Set when the host carries pushes on its broadcast tree (the machine's overlay):
    /// the core then hands each push over ([`NodeCore::poll_broadcast`]) instead of
    /// sending it to every session and relaying it.
    broadcast_by_host: bool,
    /// Pushes waiting for the host (bounded by [`MAX_PENDING_BROADCASTS`]).
    broadcasts: VecDeque<Vec<u8>>,
    pub(crate) events: VecDeque<NodeEvent>,
    pub(crate) stats: CoreStats,
    pub(crate) next_session: u32,
    pub(crate) next_sync: SyncId,
    pub(crate) round_robin: usize,
    /// The latest time seen, for work started from `poll_transmit` (which has none).
    pub(crate) last_now_ms: u64,
    /// Set while a stream frame is applied: per-key events are not emitted.
    pub(crate) streaming: bool,
    /// Where batches of received entries are hashed and inserted: inline by default,
    /// the engine's pinned shard threads in a running node.
    pub(crate) executor: Arc<dyn Executor>,
    /// Finished syncs not yet taken by the metrics (bounded: the oldest are dropped).
    pub(crate) finished_syncs: VecDeque<super::types::FinishedSync>,
    /// The Raft groups of strong categories (src/node/strong.rs).
    pub(crate) strong: crate::node::strong::StrongGroups,
    /// The slot this node's counter increments go to: its id in its storage epoch
    /// (`node::epoch`), so a node that lost its storage never writes into the slot its
    /// previous life filled.
    counter_slot: NodeId,
    clock_correction_ms: i64,
}

impl NodeCore {
    /// A core holding the configured categories, empty, writing as `me`.
    pub fn new(config: CoreConfig, me: NodeId, rng: SeededRng, now_ms: u64) -> Result<Self, NodeError> {
        if config.max_message_len < config.session.max_frame_len + 128 || config.bulk_batch_entries == 0 {
            return Err(NodeError::InvalidConfig("max_message_len must hold a session frame; bulk_batch_entries > 0"));
        }
        let mut replica = Replica::new(me, config.shard_count)?;
        let mut specs = BTreeMap::new();
        for (name, spec) in &config.categories {
            replica.add_category(name, spec.clone())?;
            specs.insert(name.clone(), spec.clone());
        }
        let mut rng = rng;
        let strong = crate::node::strong::StrongGroups::new(&config, me, &mut rng, now_ms)?;
        // Strong categories change only through their Raft log: no gossip, no anti-entropy.
        let mut order: Vec<String> = specs.keys().filter(|name| !strong.is_strong(name)).cloned().collect();
        order.sort_by_key(|name| (specs[name].priority, name.clone()));
        Ok(NodeCore {
            config,
            me,
            rng,
            hlc: Hlc::default(),
            replica,
            specs,
            order,
            resolvers: HashMap::new(),
            peers: BTreeMap::new(),
            pending_push: BTreeMap::new(),
            pending_push_count: 0,
            relays: Vec::new(),
            broadcast_by_host: false,
            broadcasts: VecDeque::new(),
            events: VecDeque::new(),
            stats: CoreStats::default(),
            next_session: 1,
            next_sync: 1,
            round_robin: 0,
            last_now_ms: now_ms,
            streaming: false,
            executor: Arc::new(Inline),
            finished_syncs: VecDeque::new(),
            strong,
            counter_slot: me,
            clock_correction_ms: 0,
        })
    }

    /// Counter increments from now on go to this node's slot of storage epoch `epoch`
    /// (see `node::epoch`); the driver sets it once, at open, before any write.
    pub fn set_storage_epoch(&mut self, epoch: u64) {
        self.counter_slot = super::epoch::counter_slot(&self.me, epoch);
    }

    /// The hybrid clock's physical time at the driver's `now_ms`: network time, the
    /// driver's clock plus the correction the time role agreed on with the peers (0
    /// until enough of them agree). The hybrid clock itself never goes back.
    pub(crate) fn physical_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.clock_correction_ms)
    }

    /// Network time minus the driver's clock: the hybrid clock reads network time.
    pub fn set_clock_correction_ms(&mut self, correction_ms: i64) {
        self.clock_correction_ms = correction_ms;
    }

    /// Runs the hashing and insertion of received batches on `executor` (the engine's
    /// shard threads); the results are the same as inline, only faster.
    pub fn set_executor(&mut self, executor: Arc<dyn Executor>) {
        self.executor = executor;
    }

    // ---- getters ----

    /// This node's identity.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The live value of `key` (tombstones read as absent).
    pub fn get(&self, category: &str, key: &[u8]) -> Option<EntryRef<'_>> {
        self.replica.get(category, key)
    }

    /// The value of the PN-counter stored under `key` (0 when absent).
    pub fn counter_get(&self, category: &str, key: &[u8]) -> Result<i64, NodeError> {
        self.check_crdt(category)?;
        Ok(self.read_counter(category, key)?.value().clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// Stores entries recovered from this node's own log or snapshot: last-writer-wins,
    /// without events or pushes (peers learn of them by anti-entropy), with the clock
    /// moved past them.
    pub fn restore(&mut self, now_ms: u64, category: &str, entries: &[Entry]) -> Result<(), NodeError> {
        self.replica.restore(category, entries)?;
        if let Some(newest) = entries.iter().map(|entry| entry.version.hlc).max() {
            let _ = self.hlc.observe(HlcTimestamp(newest), self.physical_ms(now_ms));
        }
        Ok(())
    }

    /// The stored version of `key`, tombstones included (what the log records).
    pub fn stored(&self, category: &str, key: &[u8]) -> Option<Entry> {
        self.replica.category(category)?.get(key).map(|entry| entry.to_entry())
    }

    /// The node's state hash.
    pub fn state_hash(&self) -> Digest {
        self.replica.state_hash()
    }

    /// One category's root, if the category exists.
    pub fn category_root(&self, category: &str) -> Option<Digest> {
        self.replica.category(category).map(CategoryState::root)
    }

    /// The replica.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// What the core holds now (each quantity has a bound in its configuration).
    pub fn resource_usage(&self) -> super::types::ResourceUsage {
        super::types::ResourceUsage {
            peers: self.peers.len(),
            largest_queue_bytes: self.peers.values().map(|peer| peer.queue.len_bytes()).max().unwrap_or(0),
            largest_responders: self.peers.values().map(|peer| peer.responders.len()).max().unwrap_or(0),
            pending_push: self.pending_push_count,
            events: self.events.len(),
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> CoreStats {
        self.stats.clone()
    }

    /// Peers whose connection is up.
    pub fn connected_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.iter().filter(|(_, p)| p.connected).map(|(id, _)| *id)
    }

    // ---- host commands ----

    /// Writes `value` under `key`, stamped with the node's hybrid logical clock.
    pub fn put(&mut self, now_ms: u64, category: &str, key: &[u8], value: &[u8]) -> Result<Version, NodeError> {
        self.check_not_strong(category)?;
        let spec = self.spec(category).ok_or_else(|| NodeError::UnknownCategory(category.to_owned()))?;
        if spec.merge == MergeRule::Crdt {
            AnyCrdt::decode(value).map_err(|e| NodeError::Crdt(e.to_string()))?;
        }
        Ok(self.write_local(now_ms, category, key, value)?.0)
    }

    /// Deletes `key` (a tombstone, so the deletion propagates); whether a value was live.
    pub fn delete(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<bool, NodeError> {
        self.check_not_strong(category)?;
        self.spec(category).ok_or_else(|| NodeError::UnknownCategory(category.to_owned()))?;
        if self.replica.get(category, key).is_none() {
            return Ok(false);
        }
        let hlc = self.stamp(now_ms)?.max(self.stored_hlc(category, key).saturating_add(1));
        let live = self.replica.delete(category, key, hlc)?;
        self.queue_push_of(category, key);
        Ok(live)
    }

    /// Adds `delta` to the PN-counter under `key` (a CRDT category); returns the new value.
    pub fn counter_add(&mut self, now_ms: u64, category: &str, key: &[u8], delta: i64) -> Result<i64, NodeError> {
        self.check_not_strong(category)?;
        self.check_crdt(category)?;
        let mut counter = self.read_counter(category, key)?;
        let result = if delta >= 0 {
            counter.increment(self.counter_slot, delta as u64)
        } else {
            counter.decrement(self.counter_slot, delta.unsigned_abs())
        };
        result.map_err(|e| NodeError::Crdt(e.to_string()))?;
        self.write_local(now_ms, category, key, &counter.encode())?;
        Ok(counter.value().clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// Registers the host's resolver for a custom-merge category.
    pub fn set_resolver(&mut self, category: &str, resolver: CustomResolver) -> Result<(), NodeError> {
        self.spec(category).ok_or_else(|| NodeError::UnknownCategory(category.to_owned()))?;
        self.resolvers.entry(category.to_owned()).or_default().set_custom(resolver);
        Ok(())
    }

    /// The conflict resolver (and its log) of a category, if one was used.
    pub fn resolver(&self, category: &str) -> Option<&Resolver> {
        self.resolvers.get(category)
    }

    // ---- outputs ----

    /// Hands pushes to the host's broadcast tree from now on (see
    /// [`NodeCore::poll_broadcast`]); pushes from peers are then never relayed here.
    pub fn set_broadcast_by_host(&mut self, by_host: bool) {
        self.broadcast_by_host = by_host;
    }

    /// The next push for the host to broadcast (a `Push` message whose hop count
    /// [`message::HOPS_CARRIED`] tells receivers not to relay it: the tree does).
    pub fn poll_broadcast(&mut self) -> Option<Vec<u8>> {
        self.flush_pushes();
        self.broadcasts.pop_front()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.strong_flush();
        self.flush_pushes();
        self.fill_streams();
        let ids: Vec<NodeId> = self.peers.iter().filter(|(_, p)| !p.queue.is_empty()).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            return None;
        }
        self.round_robin = self.round_robin.wrapping_add(1);
        let to = ids[self.round_robin % ids.len()];
        let (priority, bytes) = self.peers.get_mut(&to)?.queue.pop()?;
        self.stats.bytes_out += bytes.len() as u64;
        Some(Transmit { to, priority, bytes })
    }

    /// The next event for the host.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    // ---- internals shared by the other files ----

    pub(crate) fn spec(&self, category: &str) -> Option<&CategorySpec> {
        self.specs.get(category)
    }

    pub(crate) fn state_mut(&mut self, category: &str) -> Option<&mut CategoryState> {
        if !self.specs.contains_key(category) {
            return None;
        }
        self.replica.add_category(category, CategorySpec::default()).ok()
    }

    /// The next finished sync not yet taken, for the metrics (every sync, including
    /// the periodic anti-entropy the host never sees an event for).
    pub fn poll_finished_sync(&mut self) -> Option<super::types::FinishedSync> {
        self.finished_syncs.pop_front()
    }

    pub(crate) fn push_event(&mut self, event: NodeEvent) {
        if self.events.len() >= self.config.max_events {
            self.stats.events_dropped += 1;
        } else {
            self.events.push_back(event);
        }
    }

    /// Stores a local write under a fresh version and queues its push.
    pub(crate) fn write_local(
        &mut self,
        now_ms: u64,
        category: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(Version, Digest), NodeError> {
        self.write_local_above(now_ms, category, key, value, 0)
    }

    /// [`NodeCore::write_local`] with a version newer than `floor_hlc` whatever the
    /// clock says (a merge result must supersede both inputs, even one whose time the
    /// clock refused as too far ahead).
    pub(crate) fn write_local_above(
        &mut self,
        now_ms: u64,
        category: &str,
        key: &[u8],
        value: &[u8],
        floor_hlc: u64,
    ) -> Result<(Version, Digest), NodeError> {
        let floor_hlc = floor_hlc.max(self.stored_hlc(category, key));
        let hlc = self.stamp(now_ms)?.max(floor_hlc.saturating_add(1));
        let version = self.replica.put(category, key, value, hlc)?;
        let digest = self.replica.category(category).and_then(|c| c.get(key)).map_or(Digest::EMPTY, |e| *e.digest);
        self.queue_push_of(category, key);
        Ok((version, digest))
    }

    /// The clock of the version stored under `key` (0 when none). A local write is
    /// stamped above it: it supersedes what it overwrites even when that version came
    /// from a peer whose clock runs ahead of the bound the HLC accepts, so recovery's
    /// last-writer-wins replay and every peer order the two the way the writer saw
    /// them (found by the swarm, seed 112: a counter increment stamped below the
    /// merged state it replaced was undone by replay).
    fn stored_hlc(&self, category: &str, key: &[u8]) -> u64 {
        self.replica.category(category).and_then(|state| state.get(key)).map_or(0, |entry| entry.version.hlc)
    }

    fn stamp(&mut self, now_ms: u64) -> Result<u64, NodeError> {
        self.hlc.now(self.physical_ms(now_ms)).map(|t| t.0).map_err(|_| NodeError::InvalidConfig("clock out of range"))
    }

    fn queue_push_of(&mut self, category: &str, key: &[u8]) {
        if self.pending_push_count >= self.config.max_pending_push {
            self.stats.pushes_dropped += 1;
            return;
        }
        let Some(entry) = self.replica.category(category).and_then(|c| c.get(key)) else { return };
        let writers = self.pending_push.entry(category.to_owned()).or_default();
        // Pushes go in messages of about PUSH_BATCH_BYTES, so a burst of writes does
        // not hold the link in one message.
        if writers.last().map_or(true, |w| w.body_len() >= PUSH_BATCH_BYTES) {
            writers.push(BatchWriter::new());
        }
        if let Some(writer) = writers.last_mut() {
            writer.push_ref(&entry);
        }
        self.pending_push_count += 1;
    }

    /// Sends the writes since the last flush to every connected peer, one batch per
    /// category, and relays what pushes from peers changed here.
    fn flush_pushes(&mut self) {
        let pending = std::mem::take(&mut self.pending_push);
        self.pending_push_count = 0;
        for (category, writers) in pending {
            for writer in writers {
                self.broadcast(None, 0, &category, writer);
            }
        }
        for (from, hops, category, writer) in std::mem::take(&mut self.relays) {
            self.broadcast(Some(from), hops, &category, writer);
        }
    }

    fn broadcast(&mut self, except: Option<NodeId>, hops: u8, category: &str, writer: BatchWriter) {
        let count = writer.len();
        if count == 0 || !self.peers.values().any(|p| p.connected) {
            return;
        }
        let priority = self.spec(category).map(|s| s.priority).unwrap_or_default();
        let hops = if self.broadcast_by_host { message::HOPS_CARRIED } else { hops };
        let (bytes, compressed) = message::encode_push(hops, category, writer, self.config.compress);
        if bytes.len() > self.config.max_message_len {
            self.stats.pushes_dropped += 1;
            return;
        }
        if self.broadcast_by_host {
            if self.broadcasts.len() >= MAX_PENDING_BROADCASTS {
                self.stats.pushes_dropped += 1; // Anti-entropy carries it.
            } else {
                self.stats.items_out += count;
                self.stats.compressed_messages += compressed as u64;
                self.broadcasts.push_back(bytes);
            }
            return;
        }
        for (id, peer) in self.peers.iter_mut().filter(|(id, p)| p.connected && Some(**id) != except) {
            let _ = id;
            if peer.queue.push(priority, bytes.clone()).is_err() {
                self.stats.pushes_dropped += 1;
            } else {
                self.stats.items_out += count;
                self.stats.compressed_messages += compressed as u64;
            }
        }
    }

    /// Local writes of strong categories go through their Raft group (`strong_put`).
    fn check_not_strong(&self, category: &str) -> Result<(), NodeError> {
        if self.is_strong(category) {
            return Err(NodeError::WrongMode(format!(
                "{category:?} is strong: writes go through its Raft group (strong_put, or Node::put)"
            )));
        }
        Ok(())
    }

    fn check_crdt(&self, category: &str) -> Result<(), NodeError> {
        match self.spec(category) {
            None => Err(NodeError::UnknownCategory(category.to_owned())),
            Some(spec) if spec.merge != MergeRule::Crdt => {
                Err(NodeError::WrongMergeRule(format!("counters need a CRDT category; {category:?} is not one")))
            }
            Some(_) => Ok(()),
        }
    }

    fn read_counter(&self, category: &str, key: &[u8]) -> Result<PnCounter, NodeError> {
        match self.replica.get(category, key) {
            None => Ok(PnCounter::new()),
            Some(entry) => match AnyCrdt::decode(entry.value) {
                Ok(AnyCrdt::PnCounter(counter)) => Ok(counter),
                Ok(other) => Err(NodeError::Crdt(format!("key holds a {:?}, not a PN-counter", other.kind()))),
                Err(error) => Err(NodeError::Crdt(error.to_string())),
            },
        }
    }
}
