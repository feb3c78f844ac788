//! Anti-entropy: syncs with peers, their sessions, the split fallback, whole-category
//! streams, retries.
//!
//! A sync with a peer reconciles every category, all at once, in priority order: the
//! sessions' frames go through the peer's weighted queue (src/node/queue.rs), so
//! critical categories get most of a busy link and low ones still progress. Per
//! category: one session over the whole keyspace (equal roots end it in one round
//! trip); when the responder's estimate shows one side empty or most of the set
//! different, the session is dropped and the category is streamed whole instead (and
//! verified by one more session); when a sketch cannot decode, the keyspace is split 16
//! ways and each part gets its own session, as `reconcile::in_process` does in memory.
//! A sync that fails is retried after an exponential backoff with jitter; one peer's
//! failure never holds up another's syncs, and since every peer is synced, an item
//! missing here is fetched from whichever peer has it.

use crate::reconcile::message::{self as rmsg, Message as RMessage};
use crate::reconcile::{estimate_difference, Initiator, SessionError};
use crate::state::{Digest, TreePath};

use super::core::NodeCore;
use super::message::{self, BatchWriter};
use super::peer::{CategorySync, Peer, PeerSync, Stream};
use super::types::{CategoryOutcome, NodeEvent, SyncError, SyncId};
use crate::state::NodeId;

/// Position bits added per split (as `reconcile::in_process`).
const SPLIT_BITS: u32 = 4;
/// Deepest cut of a category into stream parts.
const MAX_STREAM_DEPTH: u32 = 24;

impl NodeCore {
    /// Starts anti-entropy with `peer` now (all categories, priority order) and returns
    /// the sync's id; its end is reported by [`NodeEvent::SyncFinished`]. When a sync
    /// with the peer is already running, this one starts after it.
    pub fn sync_with(&mut self, now_ms: u64, peer: NodeId) -> SyncId {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        // A request while one is already queued joins it.
        if let Some(queued) = self.peers.get(&peer).and_then(|p| p.queued_explicit) {
            return queued;
        }
        let id = self.next_sync_id();
        let connected = self.peers.get(&peer).is_some_and(|p| p.connected);
        if !connected {
            let result = Err(SyncError::NotConnected);
            self.push_event(NodeEvent::SyncFinished { id, peer, result });
            return id;
        }
        if self.peers.get(&peer).is_some_and(|p| p.sync.is_some()) {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.queued_explicit = Some(id);
            }
            return id;
        }
        self.with_peer(peer, |core, p| core.start_sync(now_ms, peer, p, id, true));
        id
    }

    /// A connection to `peer` is up: sync with it at once.
    pub fn handle_peer_up(&mut self, now_ms: u64, peer: NodeId) {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        let (queue_bytes, retry) = (self.config.peer_queue_bytes, self.config.retry);
        let entry =
            self.peers.entry(peer).or_insert_with(|| Peer::new(queue_bytes, super::backoff::Backoff::new(retry)));
        if entry.connected {
            return;
        }
        entry.connected = true;
        self.push_event(NodeEvent::PeerUp(peer));
        let id = self.next_sync_id();
        self.with_peer(peer, |core, p| core.start_sync(now_ms, peer, p, id, false));
    }

    /// The connection to `peer` is down: its sync fails, its queue and sessions go.
    pub fn handle_peer_down(&mut self, now_ms: u64, peer: NodeId) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if !p.connected {
            return;
        }
        p.connected = false;
        p.queue.clear();
        p.responders.clear();
        p.streams.clear();
        p.streamed_ms.clear();
        p.retry_at_ms = None;
        let sync = p.sync.take();
        let queued = p.queued_explicit.take();
        if let Some(sync) = sync {
            self.stats.syncs_failed += 1;
            if sync.explicit {
                self.push_event(NodeEvent::SyncFinished { id: sync.id, peer, result: Err(SyncError::PeerDown) });
            }
        }
        if let Some(id) = queued {
            self.push_event(NodeEvent::SyncFinished { id, peer, result: Err(SyncError::PeerDown) });
        }
        self.push_event(NodeEvent::PeerDown(peer));
        let _ = now_ms;
    }

    /// Drives retransmissions, deadlines, periodic rounds and retries.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        self.strong_timeout(now_ms);
        let ids: Vec<NodeId> = self.peers.iter().filter(|(_, p)| p.connected).map(|(id, _)| *id).collect();
        for id in ids {
            self.with_peer(id, |core, peer| core.peer_timeout(now_ms, id, peer));
        }
    }

    /// When [`NodeCore::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.strong_poll_timeout());
        for peer in self.peers.values().filter(|p| p.connected) {
            match &peer.sync {
                None => consider(Some(peer.retry_at_ms.unwrap_or(peer.next_round_ms))),
                Some(sync) => {
                    consider(Some(sync.deadline_ms));
                    sync.sessions.values().for_each(|(_, _, s)| consider(s.poll_timeout()));
                    sync.categories.iter().for_each(|c| consider(c.awaiting_bulk_ms));
                }
            }
        }
        next
    }

    pub(crate) fn next_sync_id(&mut self) -> SyncId {
        let id = self.next_sync;
        self.next_sync = self.next_sync.wrapping_add(1).max(1);
        id
    }

    /// Runs `f` with the peer taken out of the map (so `f` may use all of `self`).
    pub(crate) fn with_peer<R>(&mut self, id: NodeId, f: impl FnOnce(&mut Self, &mut Peer) -> R) -> Option<R> {
        let mut peer = self.peers.remove(&id)?;
        let result = f(self, &mut peer);
        self.peers.insert(id, peer);
        Some(result)
    }

    fn peer_timeout(&mut self, now_ms: u64, id: NodeId, peer: &mut Peer) {
        let idle = self.config.responder_idle_ms;
        peer.responders.retain(|_, slot| now_ms < slot.last_ms.saturating_add(idle));
        let Some(sync) = peer.sync.as_mut() else {
            if now_ms >= peer.retry_at_ms.unwrap_or(peer.next_round_ms) {
                let sync_id = self.next_sync_id();
                self.start_sync(now_ms, id, peer, sync_id, false);
            }
            return;
        };
        if now_ms >= sync.deadline_ms {
            let sync = peer.sync.take();
            self.end_sync(now_ms, id, peer, sync, Some(SyncError::TimedOut));
            return;
        }
        let sessions: Vec<u32> = sync.sessions.keys().copied().collect();
        for session in sessions {
            let Some(index) = sync.sessions.get(&session).map(|s| s.0) else { continue };
            let (priority, name) = (sync.categories[index].priority, sync.categories[index].name.clone());
            if let Some((_, _, initiator)) = sync.sessions.get_mut(&session) {
                initiator.handle_timeout(now_ms);
                self.drain_initiator(priority, &name, initiator, &mut peer.queue);
            }
            self.after_session(now_ms, sync, session);
        }
        for category in sync.categories.iter_mut() {
            if category.awaiting_bulk_ms.is_some_and(|t| now_ms >= t) {
                category.awaiting_bulk_ms = None;
                category.failure = Some("peer stopped streaming".into());
            }
        }
        self.pump(now_ms, id, peer);
    }

    fn start_sync(&mut self, now_ms: u64, peer_id: NodeId, peer: &mut Peer, id: SyncId, explicit: bool) -> SyncId {
        let categories = self.order.iter().map(|name| CategorySync::new(name, self.specs[name].priority)).collect();
        let deadline_ms = now_ms.saturating_add(self.config.sync_timeout_ms);
        peer.sync = Some(PeerSync { id, explicit, deadline_ms, categories, sessions: Default::default() });
        peer.retry_at_ms = None;
        self.stats.syncs_started += 1;
        self.pump(now_ms, peer_id, peer);
        id
    }

    /// Starts sessions for pending scopes, up to the parallel bound per category, and
    /// ends the sync when every category is done.
    pub(crate) fn pump(&mut self, now_ms: u64, peer_id: NodeId, peer: &mut Peer) {
        let Some(mut sync) = peer.sync.take() else { return };
        for index in 0..sync.categories.len() {
            while sync.categories[index].running < self.config.max_parallel_scopes {
                let Some(scope) = sync.categories[index].pending_scopes.pop_front() else { break };
                self.start_session(now_ms, peer, &mut sync, index, scope);
            }
        }
        let done = sync.categories.iter().all(CategorySync::is_done);
        if done {
            self.end_sync(now_ms, peer_id, peer, Some(sync), None);
        } else {
            peer.sync = Some(sync);
        }
    }

    fn start_session(&mut self, now_ms: u64, peer: &mut Peer, sync: &mut PeerSync, index: usize, scope: TreePath) {
        let session = self.next_session;
        self.next_session = self.next_session.wrapping_add(1).max(1);
        let name = sync.categories[index].name.clone();
        let config = self.config.session.clone();
        let Some(state) = self.state_mut(&name) else { return };
        match Initiator::new_scoped(config, session, state, scope, now_ms) {
            Ok(mut initiator) => {
                self.drain_initiator(sync.categories[index].priority, &name, &mut initiator, &mut peer.queue);
                sync.categories[index].running += 1;
                sync.sessions.insert(session, (index, scope, initiator));
            }
            Err(error) => sync.categories[index].failure = Some(error.to_string()),
        }
    }

    pub(crate) fn drain_initiator(
        &mut self,
        priority: crate::state::Priority,
        category: &str,
        initiator: &mut Initiator,
        queue: &mut super::queue::PriorityQueue,
    ) {
        while let Some(frame) = initiator.poll_transmit() {
            // A refused frame is lost like a dropped packet: the session retransmits.
            let _ = queue.push(priority, message::encode_reconcile(false, category, &frame));
        }
    }

    /// Takes a finished session out: its report, its error, the split fallback.
    pub(crate) fn after_session(&mut self, now_ms: u64, sync: &mut PeerSync, session: u32) {
        let finished = sync.sessions.get(&session).is_some_and(|(_, _, s)| s.is_done());
        if !finished {
            return;
        }
        let Some((index, scope, initiator)) = sync.sessions.remove(&session) else { return };
        let category = &mut sync.categories[index];
        category.running = category.running.saturating_sub(1);
        let report = initiator.report();
        category.report.round_trips += report.round_trips;
        category.report.items_applied += report.items_applied;
        category.report.items_sent += report.items_sent;
        if report.items_applied + report.items_sent > 0 || report.difference > 0 {
            category.changed = true;
        }
        match initiator.error() {
            None => {}
            Some(SessionError::SketchExhausted { .. }) if scope.len() + SPLIT_BITS <= TreePath::MAX_LEN => {
                category.changed = true;
                for part in 0..(1u64 << SPLIT_BITS) {
                    let bits = scope.bits() | (part << (64 - scope.len() - SPLIT_BITS));
                    let child = TreePath::new(bits, scope.len() + SPLIT_BITS).unwrap_or(TreePath::ROOT);
                    category.pending_scopes.push_back(child);
                }
            }
            Some(error) => category.failure = Some(error.to_string()),
        }
        let _ = now_ms;
    }

    /// Ends a sync: the event (for the host's own syncs), the counters, the next round
    /// or the retry with backoff, and a queued host request.
    fn end_sync(
        &mut self,
        now_ms: u64,
        peer_id: NodeId,
        peer: &mut Peer,
        sync: Option<PeerSync>,
        error: Option<SyncError>,
    ) {
        let Some(sync) = sync else { return };
        let reports: Vec<_> = sync
            .categories
            .into_iter()
            .map(|mut c| {
                c.report.outcome = match (&c.failure, c.bulk_tried, c.changed) {
                    (Some(why), _, _) => CategoryOutcome::Failed(why.clone()),
                    (None, true, _) => CategoryOutcome::Bulk,
                    (None, false, true) => CategoryOutcome::Reconciled,
                    (None, false, false) => CategoryOutcome::Equal,
                };
                c.report
            })
            .collect();
        let failed = reports.iter().any(|r| matches!(r.outcome, CategoryOutcome::Failed(_)));
        let result = match error {
            Some(error) => Err(error),
            None if failed => Err(SyncError::CategoriesFailed(reports)),
            None => Ok(reports),
        };
        if self.finished_syncs.len() >= 1024 {
            self.finished_syncs.pop_front();
        }
        let reports_copy = match &result {
            Ok(reports) | Err(SyncError::CategoriesFailed(reports)) => reports.clone(),
            Err(_) => Vec::new(),
        };
        self.finished_syncs.push_back(super::types::FinishedSync {
            peer: peer_id,
            started_ms: sync.deadline_ms.saturating_sub(self.config.sync_timeout_ms),
            ended_ms: now_ms,
            ok: result.is_ok(),
            reports: reports_copy,
        });
        if result.is_ok() {
            self.stats.syncs_succeeded += 1;
            peer.backoff.reset();
        } else {
            self.stats.syncs_failed += 1;
            peer.retry_at_ms = Some(now_ms + peer.backoff.next_delay_ms(&mut self.rng));
        }
        peer.next_round_ms = now_ms + self.jittered_interval();
        if sync.explicit {
            self.push_event(NodeEvent::SyncFinished { id: sync.id, peer: peer_id, result });
        }
        if let Some(id) = peer.queued_explicit.take() {
            self.start_sync(now_ms, peer_id, peer, id, true);
        }
    }

    fn jittered_interval(&mut self) -> u64 {
        let interval = self.config.anti_entropy_interval_ms as f64;
        let jitter = self.config.anti_entropy_jitter.clamp(0.0, 1.0);
        (interval * (1.0 - jitter + 2.0 * jitter * self.rng.unit())).max(1.0) as u64
    }

    /// Looks at a responder's `Estimate` before the initiator does: one side empty or
    /// most of the set different means streaming beats sketching. Returns whether the
    /// session was replaced by streams.
    pub(crate) fn maybe_switch_to_bulk(&mut self, now_ms: u64, peer: &mut Peer, session: u32, frame: &[u8]) -> bool {
        let Some(sync) = peer.sync.as_mut() else { return false };
        let Some((index, scope, _)) = sync.sessions.get(&session) else { return false };
        let (index, scope) = (*index, *scope);
        if !scope.is_empty() || sync.categories[index].bulk_tried {
            return false;
        }
        let Ok(rmsg::Frame { message: RMessage::Estimate { count: theirs, counters, .. }, .. }) =
            rmsg::decode(frame, self.config.session.max_frame_len)
        else {
            return false;
        };
        let name = sync.categories[index].name.clone();
        let Some(state) = self.replica.category(&name) else { return false };
        let mine = state.len();
        let estimate = estimate_difference(&state.estimator_counters(), &counters);
        let larger = mine.max(theirs) as f64;
        if !(mine == 0 || theirs == 0 || estimate >= self.config.full_sync_threshold * larger) {
            return false;
        }
        sync.sessions.remove(&session);
        let sync_id = sync.id;
        let category = &mut sync.categories[index];
        category.running = category.running.saturating_sub(1);
        category.bulk_tried = true;
        category.changed = true;
        self.stats.bulk_syncs += 1;
        if theirs > 0 {
            category.awaiting_bulk_ms = Some(now_ms + self.config.session.retransmit_after_ms * 8);
            let _ = peer.queue.push(category.priority, message::encode_bulk_request(sync_id, &name));
        }
        if mine > 0 {
            category.sending_bulk = true;
            // A stream of the category already going to the peer (it asked first)
            // carries the whole category: adopt it rather than send it twice.
            if let Some(stream) = peer.streams.iter_mut().find(|s| s.category == name && s.owner.is_none()) {
                stream.owner = Some((sync_id, index));
            } else {
                let priority = category.priority;
                let stream = self.new_stream(sync_id, &name, priority, mine, Some((sync_id, index)));
                peer.streams.push_back(stream);
            }
        }
        if theirs == 0 && mine == 0 {
            category.pending_scopes.push_back(TreePath::ROOT);
        }
        true
    }

    pub(crate) fn new_stream(
        &self,
        sync: u32,
        category: &str,
        priority: crate::state::Priority,
        count: u64,
        owner: Option<(SyncId, usize)>,
    ) -> Stream {
        let mut depth = 0;
        while depth < MAX_STREAM_DEPTH && (count >> depth) > self.config.bulk_batch_entries as u64 {
            depth += 1;
        }
        Stream {
            sync,
            category: category.to_owned(),
            priority,
            depth,
            next_part: 0,
            seq: 0,
            compress: self.config.compress,
            reply: owner.is_none(),
            owner,
            also_answers: Vec::new(),
        }
    }

    /// A stream's frame arrived (or its last one): the awaiting category moves on to
    /// verification once its own stream is out too.
    pub(crate) fn bulk_progress(
        &mut self,
        now_ms: u64,
        peer_id: NodeId,
        peer: &mut Peer,
        sync_id: u32,
        category: &str,
        last: Option<Digest>,
    ) {
        let Some(sync) = peer.sync.as_mut().filter(|s| s.id == sync_id) else { return };
        let Some(c) = sync.categories.iter_mut().find(|c| c.name == category && c.awaiting_bulk_ms.is_some()) else {
            return;
        };
        if let Some(their_root) = last {
            c.awaiting_bulk_ms = None;
            // Equal roots need no verification session (and no sketch of the whole
            // category on this side, the costliest step left for a node filled by a stream).
            let equal = self.replica.category_root(&c.name) == their_root;
            if !c.sending_bulk && !equal {
                c.pending_scopes.push_back(TreePath::ROOT);
            }
            self.pump(now_ms, peer_id, peer);
        } else {
            c.awaiting_bulk_ms = Some(now_ms + self.config.session.retransmit_after_ms * 8);
        }
    }

    /// Adds frames of whole-category streams to peers whose queue has room at the
    /// stream's priority (the engine drains the queue as the link allows: backpressure).
    pub(crate) fn fill_streams(&mut self) {
        let ids: Vec<NodeId> = self.peers.iter().filter(|(_, p)| !p.streams.is_empty()).map(|(id, _)| *id).collect();
        for id in ids {
            self.with_peer(id, |core, peer| core.fill_peer_streams(id, peer));
        }
    }

    fn fill_peer_streams(&mut self, id: NodeId, peer: &mut Peer) {
        while let Some(mut stream) = peer.streams.pop_front() {
            if peer.queue.class_bytes(stream.priority) >= self.config.bulk_low_watermark_bytes {
                peer.streams.push_front(stream);
                return;
            }
            let last = self.stream_part(&mut stream, &mut peer.queue);
            if !last {
                peer.streams.push_front(stream);
                continue;
            }
            peer.streamed_ms.insert(stream.category.clone(), self.last_now_ms);
            for sync in stream.also_answers.drain(..) {
                let root = self.replica.category_root(&stream.category);
                let (bytes, _) =
                    message::encode_bulk(sync, 0, Some(&root), true, &stream.category, BatchWriter::new(), false);
                let _ = peer.queue.push(stream.priority, bytes);
            }
            if let Some((sync_id, index)) = stream.owner {
                if let Some(c) = peer.sync.as_mut().filter(|s| s.id == sync_id).map(|s| &mut s.categories[index]) {
                    c.sending_bulk = false;
                    if c.awaiting_bulk_ms.is_none() {
                        c.pending_scopes.push_back(TreePath::ROOT);
                    }
                }
                // Verification sessions start at the next timeout or message; start now.
                self.pump(self.last_now_ms, id, peer);
            }
        }
    }

    /// Queues the frames of the stream's next part; returns whether that was the last.
    fn stream_part(&mut self, stream: &mut Stream, queue: &mut super::queue::PriorityQueue) -> bool {
        let parts = 1u64 << stream.depth;
        let part = stream.next_part;
        stream.next_part += 1;
        let last_part = stream.next_part >= parts;
        let path = if stream.depth == 0 {
            TreePath::ROOT
        } else {
            TreePath::new(part << (64 - stream.depth), stream.depth).unwrap_or(TreePath::ROOT)
        };
        let budget =
            self.config.max_message_len.saturating_sub(256 + crate::state::MAX_KEY_LEN + crate::state::MAX_VALUE_LEN);
        let mut frames: Vec<BatchWriter> = vec![BatchWriter::new()];
        if let Some(state) = self.replica.category(&stream.category) {
            state.for_each_entry_under(&path, &mut |entry| {
                if frames.last().is_some_and(|w| w.body_len() > budget) {
                    frames.push(BatchWriter::new());
                }
                if let Some(writer) = frames.last_mut() {
                    writer.push_ref(&entry);
                }
            });
        }
        let frame_count = frames.len();
        for (i, writer) in frames.into_iter().enumerate() {
            let last = last_part && i + 1 == frame_count;
            if writer.is_empty() && !last {
                continue;
            }
            let count = writer.len();
            let root = last.then(|| self.replica.category_root(&stream.category));
            let (bytes, compressed) = message::encode_bulk(
                stream.sync,
                stream.seq,
                root.as_ref(),
                stream.reply,
                &stream.category,
                writer,
                stream.compress,
            );
            // Compression that did not pay on the first frame will not on the rest.
            if stream.seq == 0 && !compressed {
                stream.compress = false;
            }
            stream.seq = stream.seq.wrapping_add(1);
            self.stats.compressed_messages += compressed as u64;
            if queue.push(stream.priority, bytes).is_ok() {
                self.stats.items_out += count;
            }
        }
        last_part
    }
}
