//! Plumtree (Leitão, Pereira, Rodrigues 2007, "Epidemic Broadcast Trees"): payloads
//! travel eagerly along a spanning tree embedded in the overlay, and lazily (IHAVE
//! announcements) over every other link. A duplicate eager copy prunes its link to
//! lazy; a missing payload announced by IHAVE grafts the announcer's link back to
//! eager after a timeout, which also repairs the tree when a node fails.
//!
//! With [`Dissemination::Push`] the same state runs the seed design's push gossip
//! instead (no tree: see [`Plumtree::push`]), so that one node binary can be measured
//! both ways.
//!
//! Bounds: message ids are remembered (and payloads cached for GRAFTs) for a limited
//! time and up to a limited number; IHAVE entries are rate-limited per peer and
//! counted when dropped; announcements of missing messages are capped.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::config::{Dissemination, GossipConfig, PUSH_RELAY_FANOUT, PUSH_TTL_HOPS};
use super::message::{GossipMessage, MessageId, MAX_IDS};
use crate::state::NodeId;

/// Messages remembered for dedupe at most (besides the time bound).
pub const MAX_SEEN: usize = 1 << 20;
/// Missing messages tracked from announcements at most.
pub const MAX_MISSING: usize = 1 << 16;
/// Announcers remembered per missing message.
const MAX_ANNOUNCERS: usize = 8;
/// GRAFT attempts per missing message before it is left to anti-entropy.
const MAX_GRAFT_ATTEMPTS: u32 = 8;
/// Lazy announcements queued per peer at most (back-pressure: beyond, dropped and counted).
const MAX_LAZY_QUEUE: usize = 4 * MAX_IDS;

/// Counters, including the literature's measures' raw numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Payload frames sent (eager pushes and GRAFT answers).
    pub payloads_sent: u64,
    /// Bytes of the payloads in those frames.
    pub payload_bytes_sent: u64,
    /// Payloads received more than once.
    pub duplicates_received: u64,
    /// IHAVE entries sent.
    pub ihave_entries_sent: u64,
    /// IHAVE entries dropped by the per-peer rate limit.
    pub ihave_rate_limited: u64,
    /// Announcements ignored because too many messages were missing.
    pub missing_over_capacity: u64,
    /// Lazy announcements dropped because a peer's queue was full.
    pub lazy_dropped: u64,
    /// GRAFTs sent.
    pub grafts_sent: u64,
    /// PRUNEs sent.
    pub prunes_sent: u64,
}

/// A delivered broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: MessageId,
    /// Hops from the origin (0 at the origin).
    pub hops: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

struct Missing {
    announcers: VecDeque<(NodeId, u32)>,
    deadline_ms: u64,
    attempts: u32,
}

/// The Plumtree state of one node.
pub struct Plumtree {
    config: GossipConfig,
    me: NodeId,
    eager: Vec<NodeId>,
    lazy: Vec<NodeId>,
    /// Delivered ids → (hops, who sent it, payload), for dedupe, GRAFT answers and
    /// tree optimization; expire in order.
    seen: HashMap<MessageId, (u32, Option<NodeId>, Vec<u8>)>,
    seen_order: VecDeque<(u64, MessageId)>,
    /// Bytes of the payloads kept in `seen` (bounded by `max_retained_bytes`).
    retained_bytes: usize,
    missing: HashMap<MessageId, Missing>,
    missing_deadlines: BTreeSet<(u64, MessageId)>,
    lazy_queue: BTreeMap<NodeId, Vec<(MessageId, u32)>>,
    next_flush_ms: Option<u64>,
    /// Per-peer IHAVE budget: (window start ms, entries taken in it).
    ihave_budget: HashMap<NodeId, (u64, u32)>,
    next_seq: u64,
    stats: TreeStats,
    /// Push: the cluster's size as the views estimate it (for the origin's fanout).
    cluster_estimate: usize,
}

impl Plumtree {
    /// A node with no neighbours yet.
    pub fn new(config: GossipConfig, me: NodeId) -> Self {
        Plumtree {
            config,
            me,
            eager: Vec::new(),
            lazy: Vec::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            retained_bytes: 0,
            missing: HashMap::new(),
            missing_deadlines: BTreeSet::new(),
            lazy_queue: BTreeMap::new(),
            next_flush_ms: None,
            ihave_budget: HashMap::new(),
            next_seq: 0,
            stats: TreeStats::default(),
            cluster_estimate: 1,
        }
    }

    /// Push: how many nodes the cluster has, as far as this node can tell (its views
    /// and itself); the origin pushes to ⌈log2⌉ of it.
    pub fn set_cluster_estimate(&mut self, nodes: usize) {
        self.cluster_estimate = nodes.max(1);
    }

    /// Counters.
    pub fn stats(&self) -> TreeStats {
        self.stats
    }
    /// Eager (tree) neighbours.
    pub fn eager_peers(&self) -> &[NodeId] {
        &self.eager
    }
    /// Whether `id` was delivered here (and is still remembered).
    pub fn has_seen(&self, id: &MessageId) -> bool {
        self.seen.contains_key(id)
    }

    /// A new overlay link: it starts eager (the paper's initial tree is the overlay).
    pub fn neighbor_up(&mut self, peer: NodeId) {
        self.lazy.retain(|id| *id != peer);
        if !self.eager.contains(&peer) {
            self.eager.push(peer);
        }
    }

    /// A dropped overlay link.
    pub fn neighbor_down(&mut self, peer: NodeId) {
        self.eager.retain(|id| *id != peer);
        self.lazy.retain(|id| *id != peer);
        self.lazy_queue.remove(&peer);
        self.ihave_budget.remove(&peer);
    }

    /// Starts a broadcast of `payload` from this node.
    pub fn broadcast(&mut self, now_ms: u64, payload: Vec<u8>, out: &mut Vec<(NodeId, GossipMessage)>) -> Delivery {
        self.next_seq += 1;
        let id = MessageId::of(&self.me, self.next_seq, &payload);
        self.accept(now_ms, None, id, 0, payload.clone(), out);
        Delivery { id, hops: 0, payload }
    }

    /// A Plumtree frame from `from`; returns the delivery if it carried a new payload.
    pub fn handle(
        &mut self,
        now_ms: u64,
        from: NodeId,
        message: GossipMessage,
        out: &mut Vec<(NodeId, GossipMessage)>,
    ) -> Option<Delivery> {
        match message {
            GossipMessage::Gossip { id, hops, payload } => {
                if let Some(&(first_hops, parent, _)) = self.seen.get(&id) {
                    // A redundant eager copy: this link is not in the tree. Which link
                    // goes: the later copy's, unless it came a threshold of hops shorter
                    // than the first (random latencies let a long path win the race);
                    // then the tree keeps the short path and prunes the old parent.
                    self.stats.duplicates_received += 1;
                    if self.config.dissemination == Dissemination::Push {
                        return None;
                    }
                    let shorter = hops + self.config.optimization_threshold <= first_hops;
                    if let Some(parent) =
                        parent.filter(|p| shorter && *p != from && self.eager.contains(p) && self.eager.contains(&from))
                    {
                        self.make_lazy(parent);
                        self.stats.prunes_sent += 1;
                        out.push((parent, GossipMessage::Prune));
                        if let Some(entry) = self.seen.get_mut(&id) {
                            entry.0 = hops;
                            entry.1 = Some(from);
                        }
                        return None;
                    }
                    if self.eager.contains(&from) {
                        self.make_lazy(from);
                        self.stats.prunes_sent += 1;
                        out.push((from, GossipMessage::Prune));
                    }
                    return None;
                }
                if self.lazy.contains(&from) {
                    self.neighbor_up(from);
                }
                self.accept(now_ms, Some(from), id, hops, payload.clone(), out);
                return Some(Delivery { id, hops, payload });
            }
            GossipMessage::IHave { entries } => self.announced(now_ms, from, entries, out),
            GossipMessage::Graft { ids } => {
                if self.eager.contains(&from) || self.lazy.contains(&from) {
                    self.neighbor_up(from);
                }
                for id in ids {
                    if let Some((hops, _, payload)) = self.seen.get(&id) {
                        self.stats.payloads_sent += 1;
                        self.stats.payload_bytes_sent += payload.len() as u64;
                        out.push((from, GossipMessage::Gossip { id, hops: hops + 1, payload: payload.clone() }));
                    }
                }
            }
            GossipMessage::Prune => self.make_lazy(from),
            _ => {}
        }
        None
    }

    /// Graft timers, IHAVE flushes, expiry of remembered ids.
    pub fn handle_timeout(&mut self, now_ms: u64, out: &mut Vec<(NodeId, GossipMessage)>) {
        while let Some(&(deadline_ms, id)) = self.missing_deadlines.first() {
            if deadline_ms > now_ms {
                break;
            }
            self.missing_deadlines.remove(&(deadline_ms, id));
            self.graft_next(now_ms, id, out);
        }
        if self.next_flush_ms.is_some_and(|flush_ms| now_ms >= flush_ms) {
            self.next_flush_ms = None;
            self.flush_lazy(out);
        }
        self.expire(Some(now_ms));
    }

    /// Forgets ids older than `message_ttl_ms` at `now_ms` (when given), and the
    /// oldest beyond the count and byte bounds.
    fn expire(&mut self, now_ms: Option<u64>) {
        let ttl_ms = self.config.message_ttl_ms;
        while self.seen_order.front().is_some_and(|(at_ms, _)| now_ms.is_some_and(|now| now >= at_ms + ttl_ms))
            || self.seen_order.len() > MAX_SEEN
            || self.retained_bytes > self.config.max_retained_bytes
        {
            let Some((_, id)) = self.seen_order.pop_front() else { break };
            if let Some((_, _, payload)) = self.seen.remove(&id) {
                self.retained_bytes -= payload.len();
            }
        }
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let graft_ms = self.missing_deadlines.first().map(|(at_ms, _)| *at_ms);
        let expiry_ms = self.seen_order.front().map(|(at_ms, _)| at_ms + self.config.message_ttl_ms);
        [graft_ms, self.next_flush_ms, expiry_ms].into_iter().flatten().min()
    }

    fn make_lazy(&mut self, peer: NodeId) {
        if self.eager.contains(&peer) {
            self.eager.retain(|id| *id != peer);
            self.lazy.push(peer);
        }
    }

    /// Delivers a new message and pushes it on: eagerly to tree links, lazily elsewhere.
    fn accept(
        &mut self,
        now_ms: u64,
        from: Option<NodeId>,
        id: MessageId,
        hops: u32,
        payload: Vec<u8>,
        out: &mut Vec<(NodeId, GossipMessage)>,
    ) {
        if let Some(missing) = self.missing.remove(&id) {
            self.missing_deadlines.remove(&(missing.deadline_ms, id));
        }
        if self.config.dissemination == Dissemination::Push {
            self.push(from, id, hops, &payload, out);
            self.remember(now_ms, from, id, hops, payload);
            return;
        }
        for &peer in &self.eager {
            if Some(peer) != from {
                self.stats.payloads_sent += 1;
                self.stats.payload_bytes_sent += payload.len() as u64;
                out.push((peer, GossipMessage::Gossip { id, hops: hops + 1, payload: payload.clone() }));
            }
        }
        let lazy: Vec<NodeId> = self.lazy.iter().copied().filter(|peer| Some(*peer) != from).collect();
        for peer in lazy {
            let queue = self.lazy_queue.entry(peer).or_default();
            if queue.len() >= MAX_LAZY_QUEUE {
                self.stats.lazy_dropped += 1;
                continue;
            }
            queue.push((id, hops));
        }
        if !self.lazy_queue.is_empty() && self.next_flush_ms.is_none() {
            self.next_flush_ms = Some(now_ms + self.config.ihave_flush_interval_ms);
        }
        self.remember(now_ms, from, id, hops, payload);
    }

    /// Push: a new payload goes to ⌈log2 N⌉ neighbours from its origin, to
    /// [`PUSH_RELAY_FANOUT`] from a relay while it has travelled fewer than
    /// [`PUSH_TTL_HOPS`] hops, never back to its sender. The neighbours are drawn by the
    /// message id (a hash, so uniform and different per message) and this node's id:
    /// deterministic, with no generator to thread through.
    fn push(
        &mut self,
        from: Option<NodeId>,
        id: MessageId,
        hops: u32,
        payload: &[u8],
        out: &mut Vec<(NodeId, GossipMessage)>,
    ) {
        let fanout = match from {
            None => (self.cluster_estimate as f64).log2().ceil().max(1.0) as usize,
            Some(_) if hops < PUSH_TTL_HOPS => PUSH_RELAY_FANOUT,
            Some(_) => 0,
        };
        let mut neighbours: Vec<NodeId> =
            self.eager.iter().chain(&self.lazy).copied().filter(|peer| Some(*peer) != from).collect();
        neighbours.sort();
        neighbours.dedup();
        if neighbours.is_empty() || fanout == 0 {
            return;
        }
        let mut offset_bytes = [0u8; 8];
        offset_bytes.copy_from_slice(&id.0[..8]);
        let mut me_bytes = [0u8; 8];
        me_bytes.copy_from_slice(&self.me.as_bytes()[..8]);
        let offset = (u64::from_le_bytes(offset_bytes) ^ u64::from_le_bytes(me_bytes)) as usize % neighbours.len();
        for step in 0..fanout.min(neighbours.len()) {
            let peer = neighbours[(offset + step) % neighbours.len()];
            self.stats.payloads_sent += 1;
            self.stats.payload_bytes_sent += payload.len() as u64;
            out.push((peer, GossipMessage::Gossip { id, hops: hops + 1, payload: payload.to_vec() }));
        }
    }

    /// Remembers a delivered payload for dedupe (and GRAFT answers), within the bounds.
    fn remember(&mut self, now_ms: u64, from: Option<NodeId>, id: MessageId, hops: u32, payload: Vec<u8>) {
        self.retained_bytes += payload.len();
        self.seen.insert(id, (hops, from, payload));
        self.seen_order.push_back((now_ms, id));
        // The byte bound is kept at once: a burst of large payloads must not wait for
        // the next timeout to be forgotten.
        if self.retained_bytes > self.config.max_retained_bytes {
            self.expire(None);
        }
    }

    fn flush_lazy(&mut self, out: &mut Vec<(NodeId, GossipMessage)>) {
        for (peer, entries) in std::mem::take(&mut self.lazy_queue) {
            for chunk in entries.chunks(MAX_IDS) {
                self.stats.ihave_entries_sent += chunk.len() as u64;
                out.push((peer, GossipMessage::IHave { entries: chunk.to_vec() }));
            }
        }
    }

    /// Plumtree §3.8: the announcer is `threshold` hops closer to the origin than the
    /// node that sent us the eager copy; make it our parent instead (GRAFT without ids,
    /// PRUNE the old parent).
    fn maybe_optimize(
        &mut self,
        announcer: NodeId,
        announced_hops: u32,
        received_hops: u32,
        source: Option<NodeId>,
        out: &mut Vec<(NodeId, GossipMessage)>,
    ) {
        let Some(parent) = source else { return };
        let via_announcer = announced_hops + 1;
        if parent == announcer || received_hops < via_announcer + self.config.optimization_threshold {
            return;
        }
        if !self.lazy.contains(&announcer) || !self.eager.contains(&parent) {
            return;
        }
        self.neighbor_up(announcer);
        self.stats.grafts_sent += 1;
        out.push((announcer, GossipMessage::Graft { ids: Vec::new() }));
        self.make_lazy(parent);
        self.stats.prunes_sent += 1;
        out.push((parent, GossipMessage::Prune));
    }

    fn announced(
        &mut self,
        now_ms: u64,
        from: NodeId,
        entries: Vec<(MessageId, u32)>,
        out: &mut Vec<(NodeId, GossipMessage)>,
    ) {
        let (window_start_ms, taken) = self.ihave_budget.entry(from).or_insert((now_ms, 0));
        if now_ms >= *window_start_ms + 1_000 {
            *window_start_ms = now_ms;
            *taken = 0;
        }
        let room = self.config.ihave_rate_per_s.saturating_sub(*taken) as usize;
        let accepted = entries.len().min(room);
        *taken += accepted as u32;
        self.stats.ihave_rate_limited += (entries.len() - accepted) as u64;
        for (id, hops) in entries.into_iter().take(accepted) {
            if let Some(&(received_hops, source, _)) = self.seen.get(&id) {
                self.maybe_optimize(from, hops, received_hops, source, out);
                continue;
            }
            if let Some(missing) = self.missing.get_mut(&id) {
                if missing.announcers.len() < MAX_ANNOUNCERS
                    && !missing.announcers.iter().any(|(peer, _)| *peer == from)
                {
                    missing.announcers.push_back((from, hops));
                }
                continue;
            }
            if self.missing.len() >= MAX_MISSING {
                self.stats.missing_over_capacity += 1;
                continue;
            }
            let deadline_ms = now_ms + self.config.graft_timeout_ms;
            self.missing.insert(id, Missing { announcers: VecDeque::from([(from, hops)]), deadline_ms, attempts: 0 });
            self.missing_deadlines.insert((deadline_ms, id));
        }
    }

    /// The eager copy did not come in time: graft the next announcer (round-robin, so a
    /// lost GRAFT or answer is retried through another link).
    fn graft_next(&mut self, now_ms: u64, id: MessageId, out: &mut Vec<(NodeId, GossipMessage)>) {
        let Some(missing) = self.missing.get_mut(&id) else { return };
        let Some((peer, hops)) = missing.announcers.pop_front() else {
            self.missing.remove(&id);
            return;
        };
        missing.attempts += 1;
        if missing.attempts >= MAX_GRAFT_ATTEMPTS {
            self.missing.remove(&id);
        } else {
            missing.announcers.push_back((peer, hops));
            missing.deadline_ms = now_ms + self.config.graft_retry_timeout_ms;
            self.missing_deadlines.insert((missing.deadline_ms, id));
        }
        self.stats.grafts_sent += 1;
        if self.lazy.contains(&peer) || self.eager.contains(&peer) {
            self.neighbor_up(peer);
        }
        out.push((peer, GossipMessage::Graft { ids: vec![id] }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_node(me: u8, neighbours: &[u8]) -> Plumtree {
        let config = GossipConfig { dissemination: Dissemination::Push, ..GossipConfig::default() };
        let mut tree = Plumtree::new(config, NodeId([me; 32]));
        for &peer in neighbours {
            tree.neighbor_up(NodeId([peer; 32]));
        }
        tree
    }

    #[test]
    fn push_sends_log2_n_from_the_origin_three_from_a_relay_and_stops_at_the_ttl() {
        let mut origin = push_node(0, &[1, 2, 3, 4, 5, 6]);
        origin.set_cluster_estimate(32);
        let mut out = Vec::new();
        let delivery = origin.broadcast(0, b"x".to_vec(), &mut out);
        assert_eq!(out.len(), 5, "⌈log2 32⌉ = 5 neighbours");
        let targets: BTreeSet<NodeId> = out.iter().map(|(peer, _)| *peer).collect();
        assert_eq!(targets.len(), 5, "five distinct neighbours");

        let mut relay = push_node(9, &[0, 1, 2, 3, 4]);
        let mut out = Vec::new();
        let gossip = GossipMessage::Gossip { id: delivery.id, hops: 1, payload: b"x".to_vec() };
        assert!(relay.handle(0, NodeId([0; 32]), gossip.clone(), &mut out).is_some());
        assert_eq!(out.len(), PUSH_RELAY_FANOUT);
        assert!(out.iter().all(|(peer, _)| *peer != NodeId([0; 32])), "never back to the sender");

        // A duplicate is dropped: no PRUNE, nothing sent.
        let mut out = Vec::new();
        assert!(relay.handle(0, NodeId([1; 32]), gossip, &mut out).is_none());
        assert!(out.is_empty());
        assert_eq!(relay.stats().prunes_sent, 0);

        // At the TTL, delivered but not forwarded.
        let mut last = push_node(8, &[0, 1, 2, 3]);
        let mut out = Vec::new();
        let id = MessageId::of(&NodeId([7; 32]), 1, b"y");
        let at_ttl = GossipMessage::Gossip { id, hops: PUSH_TTL_HOPS, payload: b"y".to_vec() };
        assert!(last.handle(0, NodeId([0; 32]), at_ttl, &mut out).is_some());
        assert!(out.is_empty());
    }
}
