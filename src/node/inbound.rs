//! Messages from peers: decoded with bounds, routed to sessions, responders, the
//! merge path and the stream machinery. Anything invalid is a [`PeerFault`] and
//! changes nothing; duplicates and stale frames (loss, reordering, retransmission)
//! are ignored quietly, since an honest peer on a lossy link produces them.

use crate::crdt::VersionedValue;
use crate::reconcile::message::{self as rmsg, Message as RMessage};
use crate::reconcile::{Responder, SessionError};
use crate::state::{Entry, MergeRule, NodeId};

use super::core::NodeCore;
use super::message::{self, DecodeError, NodeMessage};
use super::peer::{Peer, ResponderSlot};
use super::types::PeerFault;

const KIND_OFFSET: usize = 1;
const HELLO: u8 = 1;
const ESTIMATE: u8 = 3;
const DECODED: u8 = 6;
const ITEMS: u8 = 8;
/// Relay batches held between two polls.
const MAX_PENDING_RELAYS: usize = 1_024;

impl NodeCore {
    /// Consumes one message from `from`. A fault means nothing of the message was
    /// applied; the engine scores the peer.
    pub fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) -> Result<(), PeerFault> {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        self.stats.bytes_in += bytes.len() as u64;
        let result = self.dispatch(now_ms, from, bytes);
        if let Err(fault) = &result {
            self.stats.faults[fault.kind_index()] += 1;
        }
        result
    }

    /// Applies a push the host's broadcast tree delivered (from any member, through
    /// whichever neighbour forwarded it). A fault means nothing was applied, and the
    /// host neither delivers nor forwards the broadcast.
    pub fn handle_broadcast(&mut self, now_ms: u64, bytes: &[u8]) -> Result<(), PeerFault> {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        self.stats.bytes_in += bytes.len() as u64;
        let result = self.apply_broadcast(now_ms, bytes);
        if let Err(fault) = &result {
            self.stats.faults[fault.kind_index()] += 1;
        }
        result
    }

    fn apply_broadcast(&mut self, now_ms: u64, bytes: &[u8]) -> Result<(), PeerFault> {
        let decoded = message::decode(bytes, self.config.max_message_len).map_err(|error| match error {
            DecodeError::Oversized { .. } => PeerFault::Oversized,
            other => PeerFault::Malformed(other.to_string()),
        })?;
        let NodeMessage::Push { category, batch, .. } = decoded else {
            return Err(PeerFault::Protocol("a broadcast carries only pushes".into()));
        };
        if self.spec(category).is_none() {
            return Err(PeerFault::UnknownCategory(category.to_owned()));
        }
        if self.is_strong(category) {
            return Err(PeerFault::Protocol(format!("{category:?} is strong: it changes only through Raft")));
        }
        self.apply_batch(now_ms, category, batch.entries(), &batch.digest, false)?;
        Ok(())
    }

    fn dispatch(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) -> Result<(), PeerFault> {
        if !self.peers.get(&from).is_some_and(|p| p.connected) {
            return Ok(()); // A late message from a closed connection.
        }
        let decoded = message::decode(bytes, self.config.max_message_len).map_err(|error| match error {
            DecodeError::Oversized { .. } => PeerFault::Oversized,
            other => PeerFault::Malformed(other.to_string()),
        })?;
        let category = match &decoded {
            NodeMessage::Reconcile { category, .. }
            | NodeMessage::Push { category, .. }
            | NodeMessage::BulkRequest { category, .. }
            | NodeMessage::Bulk { category, .. }
            | NodeMessage::Raft { category, .. } => *category,
        };
        if self.spec(category).is_none() {
            return Err(PeerFault::UnknownCategory(category.to_owned()));
        }
        if let NodeMessage::Raft { category, bytes } = decoded {
            return self.strong_message(now_ms, from, category, bytes);
        }
        if self.is_strong(category) {
            return Err(PeerFault::Protocol(format!("{category:?} is strong: it changes only through Raft")));
        }
        match decoded {
            NodeMessage::Reconcile { to_initiator, category, frame } => self
                .with_peer(from, |core, peer| core.on_reconcile(now_ms, from, peer, to_initiator, category, frame))
                .unwrap_or(Ok(())),
            NodeMessage::Push { hops, category, batch } => {
                let relay = hops < self.config.max_push_hops;
                let applied = self.apply_batch(now_ms, category, batch.entries(), &batch.digest, relay)?;
                // Only versions that changed something here travel on: a duplicate is
                // never relayed, so relays cannot loop (and the hop bound caps them).
                if let Some(writer) = applied.relay.filter(|w| !w.is_empty()) {
                    // Held until the next poll; beyond the bound, anti-entropy carries them.
                    if self.relays.len() < MAX_PENDING_RELAYS {
                        self.relays.push((from, hops + 1, category.to_owned(), writer));
                    } else {
                        self.stats.pushes_dropped += 1;
                    }
                }
                Ok(())
            }
            NodeMessage::BulkRequest { sync, category } => {
                self.with_peer(from, |core, peer| core.on_bulk_request(peer, sync, category)).unwrap_or(Ok(()))
            }
            NodeMessage::Bulk { sync, last, reply, category, batch, .. } => {
                self.apply_stream_batch(now_ms, category, &batch)?;
                if reply {
                    self.with_peer(from, |core, peer| core.bulk_progress(now_ms, from, peer, sync, category, last));
                }
                Ok(())
            }
            NodeMessage::Raft { .. } => Ok(()), // Handled above.
        }
    }

    fn on_bulk_request(&mut self, peer: &mut Peer, sync: u32, category: &str) -> Result<(), PeerFault> {
        // A duplicated request (the network may duplicate) is served once, and a stream
        // of the category already going to the peer answers it too.
        if let Some(stream) = peer.streams.iter_mut().find(|s| s.category == category) {
            if stream.sync != sync && !stream.also_answers.contains(&sync) && stream.also_answers.len() < 4 {
                stream.also_answers.push(sync);
            }
            return Ok(());
        }
        // A stream of the category queued moments ago is still ahead in the queue (or
        // in flight): an empty last frame behind it answers the request, and the
        // requester's verification session repairs whatever the race left out.
        let recent = self.config.session.retransmit_after_ms * 4;
        if peer.streamed_ms.get(category).is_some_and(|t| self.last_now_ms < t + recent) {
            let priority = self.spec(category).map(|s| s.priority).unwrap_or_default();
            let root = self.replica.category_root(category);
            let (bytes, _) =
                message::encode_bulk(sync, 0, Some(&root), true, category, message::BatchWriter::new(), false);
            let _ = peer.queue.push(priority, bytes);
            return Ok(());
        }
        // Each sync of the peer asks for each category at most once.
        if peer.streams.len() >= 2 * self.order.len() {
            return Err(PeerFault::Flood);
        }
        let count = self.replica.category(category).map_or(0, |c| c.len());
        let priority = self.spec(category).map(|s| s.priority).unwrap_or_default();
        let stream = self.new_stream(sync, category, priority, count, None);
        peer.streams.push_back(stream);
        Ok(())
    }

    fn on_reconcile(
        &mut self,
        now_ms: u64,
        from: NodeId,
        peer: &mut Peer,
        to_initiator: bool,
        category: &str,
        frame: &[u8],
    ) -> Result<(), PeerFault> {
        let kind = frame[KIND_OFFSET];
        let session = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let mut items = if kind == ITEMS { self.items_of(frame) } else { Vec::new() };
        if to_initiator && kind == DECODED {
            // Items that overtook `Decoded` were buffered by the session and are applied
            // now: the merge rule must see them too (found by the swarm, seed 5650: a
            // counter increment replaced, not merged, after reordering).
            items.extend(Self::buffered_items(peer, session));
        }
        let before = self.before_apply(category, &items);
        let result = if to_initiator {
            self.frame_for_initiator(now_ms, from, peer, session, kind, category, frame)
        } else {
            self.frame_for_responder(now_ms, peer, session, kind, category, frame)
        };
        self.after_apply(now_ms, category, &items, before);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn frame_for_initiator(
        &mut self,
        now_ms: u64,
        from: NodeId,
        peer: &mut Peer,
        session: u32,
        kind: u8,
        category: &str,
        frame: &[u8],
    ) -> Result<(), PeerFault> {
        if kind == ESTIMATE && self.maybe_switch_to_bulk(now_ms, peer, session, frame) {
            self.pump(now_ms, from, peer);
            return Ok(());
        }
        let Some(mut sync) = peer.sync.take() else { return Ok(()) };
        let Some((index, _, initiator)) = sync.sessions.get_mut(&session) else {
            peer.sync = Some(sync);
            return Ok(()); // A stale frame of an ended session.
        };
        let index = *index;
        if sync.categories[index].name != category {
            peer.sync = Some(sync);
            return Err(PeerFault::Protocol("frame names another category than its session".into()));
        }
        let result = match self.state_mut(category) {
            Some(state) => initiator.handle_frame(now_ms, frame, state),
            None => Ok(()),
        };
        let priority = sync.categories[index].priority;
        self.drain_initiator(priority, category, initiator, &mut peer.queue);
        self.after_session(now_ms, &mut sync, session);
        peer.sync = Some(sync);
        self.pump(now_ms, from, peer);
        result.map_err(fault_of).or_else(|fault| fault.map_or(Ok(()), Err))
    }

    fn frame_for_responder(
        &mut self,
        now_ms: u64,
        peer: &mut Peer,
        session: u32,
        kind: u8,
        category: &str,
        frame: &[u8],
    ) -> Result<(), PeerFault> {
        if !peer.responders.contains_key(&session) {
            if kind != HELLO {
                return Ok(()); // A stale frame for a responder already dropped.
            }
            if peer.responders.len() >= self.config.max_responders_per_peer {
                peer.responders.retain(|_, slot| !slot.responder.is_done());
            }
            if peer.responders.len() >= self.config.max_responders_per_peer {
                return Err(PeerFault::Flood);
            }
            let responder =
                Responder::new(self.config.session.clone()).map_err(|e| PeerFault::Protocol(e.to_string()))?;
            peer.responders
                .insert(session, ResponderSlot { responder, category: category.to_owned(), last_ms: now_ms });
        }
        let Some(slot) = peer.responders.get_mut(&session) else { return Ok(()) };
        if slot.category != category {
            return Err(PeerFault::Protocol("frame names another category than its session".into()));
        }
        slot.last_ms = now_ms;
        let Some(state) = self.replica.add_category(category, Default::default()).ok() else { return Ok(()) };
        let result = slot.responder.handle_frame(frame, state);
        let priority = self.spec(category).map(|s| s.priority).unwrap_or_default();
        while let Some(out) = slot.responder.poll_transmit() {
            let _ = peer.queue.push(priority, message::encode_reconcile(true, category, &out));
        }
        result.map_err(fault_of).or_else(|fault| fault.map_or(Ok(()), Err))
    }

    /// The entries an initiator session buffered before its `Decoded` arrived.
    fn buffered_items(peer: &Peer, session: u32) -> Vec<Entry> {
        let sessions = peer.sync.as_ref().map(|sync| &sync.sessions);
        sessions.and_then(|s| s.get(&session)).map(|(_, _, initiator)| initiator.buffered_items()).unwrap_or_default()
    }

    /// The entries of an `Items` frame, read ahead of the session (which validates them).
    fn items_of(&self, frame: &[u8]) -> Vec<Entry> {
        match rmsg::decode(frame, self.config.session.max_frame_len) {
            Ok(rmsg::Frame { message: RMessage::Items { entries, .. }, .. }) => entries,
            _ => Vec::new(),
        }
    }

    /// For each arriving entry: the local version it may replace (merging categories
    /// need it after the session's last-writer-wins has run), and whether it is new here.
    fn before_apply(&self, category: &str, items: &[Entry]) -> Vec<(Option<VersionedValue>, bool)> {
        let Some(state) = self.replica.category(category) else { return Vec::new() };
        let merging = self.spec(category).is_some_and(|s| s.merge != MergeRule::LastWriterWins);
        items
            .iter()
            .map(|remote| match state.get(&remote.key) {
                None => (None, true),
                Some(local) if local.version == remote.version => (None, false),
                Some(local) => {
                    let keep = merging && !local.version.tombstone && !remote.version.tombstone;
                    (keep.then(|| VersionedValue { value: local.value.to_vec(), version: local.version }), true)
                }
            })
            .collect()
    }

    /// Counts and reports what the session stored, and applies the merge rule to keys
    /// where a remote version replaced a different local one.
    fn after_apply(
        &mut self,
        now_ms: u64,
        category: &str,
        items: &[Entry],
        before: Vec<(Option<VersionedValue>, bool)>,
    ) {
        let rule = self.spec(category).map(|s| s.merge).unwrap_or_default();
        for (remote, (local, new)) in items.iter().zip(before) {
            let stored = self.replica.category(category).and_then(|c| c.get(&remote.key)).map(|e| e.version);
            if !new || stored != Some(remote.version) {
                continue;
            }
            self.stats.items_in += 1;
            self.push_event(super::types::NodeEvent::Updated {
                category: category.to_owned(),
                key: remote.key.clone(),
            });
            let _ = self.hlc.observe(crate::time::HlcTimestamp(remote.version.hlc), self.physical_ms(now_ms));
            if let Some(local) = local {
                let remote_value = VersionedValue { value: remote.value.clone(), version: remote.version };
                self.resolve_after(now_ms, category, rule, &remote.key, &local, &remote_value);
            }
        }
    }
}

/// Which session errors are the peer's fault (the others come from loss, races or
/// limits on our side).
fn fault_of(error: SessionError) -> Option<PeerFault> {
    match error {
        SessionError::Malformed(e) => Some(PeerFault::Malformed(e.to_string())),
        SessionError::DigestMismatch => Some(PeerFault::DigestMismatch),
        SessionError::UnadvertisedItem => Some(PeerFault::InvalidItem("entry that was never advertised".into())),
        SessionError::State(e) => Some(PeerFault::InvalidItem(e.to_string())),
        SessionError::TooManyBufferedFrames => Some(PeerFault::Flood),
        SessionError::CategoryMismatch => Some(PeerFault::Protocol("category mismatch".into())),
        _ => None,
    }
}
