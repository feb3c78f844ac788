//! HyParView (Leitão, Pereira, Rodrigues 2007): each node keeps a small symmetric
//! active view (its overlay links, over which broadcasts travel) and a larger passive
//! view (a reserve of addresses). JOIN and FORWARDJOIN random walks place a newcomer,
//! NEIGHBOR promotes a passive node when an active link fails, DISCONNECT drops a
//! link, SHUFFLE walks refresh the passive view.
//!
//! Two additions the paper leaves to TCP or does not need: a keep-alive on quiet
//! active links stands in for the connection's failure detection, and failed
//! neighbours are kept in a bounded known set and retried periodically, so an
//! overlay split by a partition re-links its two halves after the heal. Where a random
//! peer is chosen, the less recently contacted of two random candidates is taken
//! ("power of two choices"), biasing towards peers not contacted for longest.

use std::collections::VecDeque;

use super::config::GossipConfig;
use super::message::{GossipMessage, MAX_SHUFFLE_NODES};
use crate::sansio::SeededRng;
use crate::state::NodeId;

/// A change of the active view, for the broadcast layer above.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ViewChange {
    /// A link was added.
    Up(NodeId),
    /// A link was dropped.
    Down(NodeId),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewStats {
    /// Active neighbours declared failed after silence.
    pub neighbors_failed: u64,
    /// NEIGHBOR requests sent.
    pub neighbor_requests: u64,
    /// SHUFFLEs started.
    pub shuffles: u64,
    /// Reconnect attempts to failed neighbours.
    pub reconnect_attempts: u64,
    /// JOINs sent again because this node was stranded.
    pub rejoins: u64,
}

#[derive(Clone, Copy, Debug)]
struct Peer {
    id: NodeId,
    last_heard_ms: u64,
    last_sent_ms: u64,
}

/// Frames and view changes produced by one input.
#[derive(Default, Debug)]
pub struct ViewOutput {
    /// Frames to send.
    pub frames: Vec<(NodeId, GossipMessage)>,
    /// Active view changes.
    pub changes: Vec<ViewChange>,
}

/// The HyParView state of one node.
pub struct HyParView {
    config: GossipConfig,
    me: NodeId,
    rng: SeededRng,
    active: Vec<Peer>,
    passive: Vec<Peer>,
    pending_neighbor: Option<(NodeId, u64)>,
    /// Failed neighbours: (id, last reconnect attempt ms).
    known: VecDeque<(NodeId, u64)>,
    /// The nodes we joined through, to join again if we end up stranded.
    contacts: Vec<NodeId>,
    next_rejoin_ms: u64,
    /// NEIGHBOR requests refused in a row; escalates the next one to high priority.
    refusals_in_row: u32,
    /// When a view one short of full may ask a passive peer next (see `wants_promotion`).
    next_top_up_ms: u64,
    next_keepalive_ms: u64,
    next_shuffle_ms: u64,
    next_reconnect_ms: u64,
    stats: ViewStats,
}

impl HyParView {
    /// A node with empty views.
    pub fn new(config: GossipConfig, me: NodeId, mut rng: SeededRng, now_ms: u64) -> Self {
        assert!(config.active_view_capacity >= 2 && config.passive_view_capacity >= 1);
        let jitter_ms = rng.below(config.keepalive_interval_ms.max(1));
        HyParView {
            next_keepalive_ms: now_ms + jitter_ms,
            // The first shuffle soon after joining fills the passive view early.
            next_shuffle_ms: now_ms + 2 * config.keepalive_interval_ms + jitter_ms,
            next_reconnect_ms: now_ms + config.reconnect_interval_ms + jitter_ms,
            config,
            me,
            rng,
            active: Vec::new(),
            passive: Vec::new(),
            pending_neighbor: None,
            known: VecDeque::new(),
            contacts: Vec::new(),
            next_rejoin_ms: now_ms,
            refusals_in_row: 0,
            next_top_up_ms: now_ms,
            stats: ViewStats::default(),
        }
    }

    // Getters.

    /// The active view.
    pub fn active(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.active.iter().map(|peer| peer.id)
    }
    /// The passive view.
    pub fn passive(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.passive.iter().map(|peer| peer.id)
    }
    /// Whether `id` is an active neighbour.
    pub fn is_active(&self, id: &NodeId) -> bool {
        self.active.iter().any(|peer| peer.id == *id)
    }
    /// Counters.
    pub fn stats(&self) -> ViewStats {
        self.stats
    }

    // Inputs.

    /// Joins the overlay through `contact`.
    pub fn join(&mut self, now_ms: u64, contact: NodeId, out: &mut ViewOutput) {
        if contact != self.me {
            if self.contacts.len() < 8 && !self.contacts.contains(&contact) {
                self.contacts.push(contact);
            }
            self.add_passive(contact, now_ms);
            self.send(now_ms, contact, GossipMessage::Join, out);
        }
    }

    /// Any frame from `from` proves it is alive.
    pub fn heard_from(&mut self, now_ms: u64, from: NodeId) {
        if let Some(peer) = self.active.iter_mut().find(|peer| peer.id == from) {
            peer.last_heard_ms = now_ms;
        }
    }

    /// The transport lost its connection to `id` (a host that holds connections knows
    /// at once, where keep-alives would take `neighbor_failure_ms`): an active
    /// neighbour is failed and replaced from the passive view, as HyParView §4.3 does
    /// on a TCP failure; a pending NEIGHBOR request to it is given up.
    pub fn link_failed(&mut self, now_ms: u64, id: NodeId, out: &mut ViewOutput) {
        if self.pending_neighbor.is_some_and(|(pending, _)| pending == id) {
            self.pending_neighbor = None;
            self.passive.retain(|peer| peer.id != id);
        }
        if self.is_active(&id) {
            self.stats.neighbors_failed += 1;
            self.active.retain(|peer| peer.id != id);
            out.changes.push(ViewChange::Down(id));
            self.remember_failed(id, now_ms);
        }
    }

    /// Membership vouches for `id` (it is alive): a candidate for the passive view. So
    /// a node whose passive view ran dry (its contacts gone, its shuffles answered by
    /// nobody) still finds neighbours among the members it knows; seen in the swarm as
    /// two pairs of nodes holding only each other for a minute.
    pub fn learn(&mut self, now_ms: u64, id: NodeId) {
        self.add_passive(id, now_ms);
    }

    /// `id` is gone for good (the node banned it): out of both views, the failed
    /// neighbours and the contacts, never asked again.
    pub fn forget(&mut self, id: NodeId, out: &mut ViewOutput) {
        if self.pending_neighbor.is_some_and(|(pending, _)| pending == id) {
            self.pending_neighbor = None;
        }
        self.passive.retain(|peer| peer.id != id);
        self.known.retain(|(known, _)| *known != id);
        self.contacts.retain(|contact| *contact != id);
        if self.is_active(&id) {
            self.active.retain(|peer| peer.id != id);
            out.changes.push(ViewChange::Down(id));
        }
    }

    /// Notes a frame sent to an active neighbour by the layer above.
    pub fn sent_to(&mut self, now_ms: u64, to: NodeId) {
        if let Some(peer) = self.active.iter_mut().find(|peer| peer.id == to) {
            peer.last_sent_ms = now_ms;
        }
    }

    /// A HyParView frame from `from`.
    pub fn handle(&mut self, now_ms: u64, from: NodeId, message: GossipMessage, out: &mut ViewOutput) {
        match message {
            GossipMessage::Join => {
                self.add_active(now_ms, from, true, out);
                let walk = GossipMessage::ForwardJoin { joiner: from, ttl: self.config.active_random_walk_length };
                let others: Vec<NodeId> = self.active().filter(|id| *id != from).collect();
                for peer in others {
                    self.send(now_ms, peer, walk.clone(), out);
                }
            }
            GossipMessage::ForwardJoin { joiner, ttl } => self.forward_join(now_ms, from, joiner, ttl, out),
            GossipMessage::Neighbor { high_priority } => {
                let cut_by_partition = self.known.iter().any(|(id, _)| *id == from);
                let accepted =
                    high_priority || cut_by_partition || self.active.len() < self.config.active_view_capacity;
                if accepted {
                    self.add_active(now_ms, from, false, out);
                }
                self.send(now_ms, from, GossipMessage::NeighborReply { accepted }, out);
            }
            GossipMessage::NeighborReply { accepted } => {
                if self.pending_neighbor.is_some_and(|(id, _)| id == from) {
                    self.pending_neighbor = None;
                    self.refusals_in_row = if accepted { 0 } else { self.refusals_in_row + 1 };
                }
                if accepted {
                    self.add_active(now_ms, from, false, out);
                } else if self.is_active(&from) {
                    self.drop_active(now_ms, from, false, out);
                }
            }
            GossipMessage::Disconnect if self.is_active(&from) => self.drop_active(now_ms, from, false, out),
            GossipMessage::Shuffle { origin, ttl, nodes } => self.shuffle_step(now_ms, from, origin, ttl, nodes, out),
            GossipMessage::ShuffleReply { nodes } => self.integrate(now_ms, &nodes, &[]),
            GossipMessage::KeepAlive => {
                // A keep-alive from a node we do not hold as a neighbour means our views
                // disagree (a lost NEIGHBOR or DISCONNECT): tell it, so links stay symmetric.
                let answer =
                    if self.is_active(&from) { GossipMessage::KeepAliveAck } else { GossipMessage::Disconnect };
                self.send(now_ms, from, answer, out);
            }
            _ => {}
        }
    }

    /// Periodic work: keep-alives and failure detection, filling the active view,
    /// shuffles, reconnects.
    pub fn handle_timeout(&mut self, now_ms: u64, out: &mut ViewOutput) {
        if now_ms >= self.next_keepalive_ms {
            self.next_keepalive_ms = now_ms + self.config.keepalive_interval_ms;
            self.check_links(now_ms, out);
        }
        if self.pending_neighbor.is_some_and(|(_, deadline_ms)| now_ms >= deadline_ms) {
            if let Some((silent, _)) = self.pending_neighbor.take() {
                self.passive.retain(|peer| peer.id != silent);
            }
        }
        if self.wants_promotion(now_ms) {
            self.promote(now_ms, out);
        }
        let stranded = self.passive.is_empty() && self.active.len() < self.config.active_view_capacity;
        if stranded && now_ms >= self.next_rejoin_ms {
            // Nothing left to promote and few links: a small island (seen in simulation:
            // two nodes holding only each other). JOIN again through a contact or a
            // failed neighbour; a JOIN is always accepted and starts fresh walks.
            self.next_rejoin_ms = now_ms + self.config.reconnect_interval_ms;
            let candidates: Vec<NodeId> =
                self.contacts.iter().copied().chain(self.known.iter().map(|(id, _)| *id)).collect();
            if !candidates.is_empty() {
                let contact = candidates[self.rng.index(candidates.len())];
                self.stats.rejoins += 1;
                self.send(now_ms, contact, GossipMessage::Join, out);
            }
        }
        if now_ms >= self.next_shuffle_ms {
            self.next_shuffle_ms = now_ms + self.config.shuffle_interval_ms;
            self.start_shuffle(now_ms, out);
        }
        if now_ms >= self.next_reconnect_ms {
            self.next_reconnect_ms = now_ms + self.config.reconnect_interval_ms;
            self.reconnect(now_ms, out);
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> u64 {
        let mut deadline_ms = self.next_keepalive_ms.min(self.next_shuffle_ms).min(self.next_reconnect_ms);
        if let Some((_, pending_ms)) = self.pending_neighbor {
            deadline_ms = deadline_ms.min(pending_ms);
        }
        deadline_ms
    }

    // Internals.

    fn send(&mut self, now_ms: u64, to: NodeId, message: GossipMessage, out: &mut ViewOutput) {
        self.sent_to(now_ms, to);
        out.frames.push((to, message));
    }

    /// The less recently contacted of two random peers in `candidates`.
    fn pick_biased(&mut self, candidates: &[Peer]) -> Option<NodeId> {
        if candidates.is_empty() {
            return None;
        }
        let first = candidates[self.rng.index(candidates.len())];
        let second = candidates[self.rng.index(candidates.len())];
        Some(if second.last_sent_ms < first.last_sent_ms { second.id } else { first.id })
    }

    fn add_active(&mut self, now_ms: u64, id: NodeId, ask_back: bool, out: &mut ViewOutput) {
        if id == self.me || self.is_active(&id) {
            return;
        }
        if self.active.len() >= self.config.active_view_capacity {
            let victim = self.active[self.rng.index(self.active.len())].id;
            self.drop_active(now_ms, victim, true, out);
        }
        self.passive.retain(|peer| peer.id != id);
        self.known.retain(|(known, _)| *known != id);
        self.active.push(Peer { id, last_heard_ms: now_ms, last_sent_ms: 0 });
        out.changes.push(ViewChange::Up(id));
        if ask_back {
            self.send(now_ms, id, GossipMessage::Neighbor { high_priority: true }, out);
        }
        debug_assert!(self.active.len() <= self.config.active_view_capacity);
    }

    fn drop_active(&mut self, now_ms: u64, id: NodeId, notify: bool, out: &mut ViewOutput) {
        self.active.retain(|peer| peer.id != id);
        out.changes.push(ViewChange::Down(id));
        if notify {
            self.send(now_ms, id, GossipMessage::Disconnect, out);
        }
        self.add_passive(id, now_ms);
    }

    fn add_passive(&mut self, id: NodeId, now_ms: u64) {
        if id == self.me || self.is_active(&id) || self.passive.iter().any(|peer| peer.id == id) {
            return;
        }
        if self.passive.len() >= self.config.passive_view_capacity {
            let victim = self.rng.index(self.passive.len());
            self.passive.swap_remove(victim);
        }
        self.passive.push(Peer { id, last_heard_ms: now_ms, last_sent_ms: 0 });
    }

    fn forward_join(&mut self, now_ms: u64, from: NodeId, joiner: NodeId, ttl: u8, out: &mut ViewOutput) {
        if joiner == self.me {
            return;
        }
        if ttl == 0 || self.active.len() <= 1 {
            self.add_active(now_ms, joiner, true, out);
            return;
        }
        if ttl == self.config.passive_random_walk_length {
            self.add_passive(joiner, now_ms);
        }
        let candidates: Vec<Peer> = self.active.iter().copied().filter(|p| p.id != from && p.id != joiner).collect();
        match self.pick_biased(&candidates) {
            Some(next) => self.send(now_ms, next, GossipMessage::ForwardJoin { joiner, ttl: ttl - 1 }, out),
            None => self.add_active(now_ms, joiner, true, out),
        }
    }

    fn check_links(&mut self, now_ms: u64, out: &mut ViewOutput) {
        let failure_ms = self.config.neighbor_failure_ms;
        let failed: Vec<NodeId> =
            self.active.iter().filter(|p| now_ms >= p.last_heard_ms + failure_ms).map(|p| p.id).collect();
        for id in failed {
            self.stats.neighbors_failed += 1;
            self.active.retain(|peer| peer.id != id);
            out.changes.push(ViewChange::Down(id));
            self.remember_failed(id, now_ms);
        }
        let quiet: Vec<NodeId> = self
            .active
            .iter()
            .filter(|p| now_ms >= p.last_heard_ms + self.config.keepalive_interval_ms)
            .map(|p| p.id)
            .collect();
        for id in quiet {
            self.send(now_ms, id, GossipMessage::KeepAlive, out);
        }
    }

    fn remember_failed(&mut self, id: NodeId, now_ms: u64) {
        self.known.retain(|(known, _)| *known != id);
        if self.known.len() >= self.config.known_capacity {
            self.known.pop_front();
        }
        self.known.push_back((id, now_ms));
    }

    /// Whether to ask a passive peer to become a neighbour now. A view two or more short
    /// asks as soon as no request is pending. A view one short asks once per shuffle
    /// interval: the paper accepts a view that is not full, and asking eagerly churns
    /// (a high-priority request makes a full peer evict a neighbour, which is then one
    /// short and asks in turn; seen in a 24-node cluster as a dial and a close every few
    /// seconds per node), while an island whose members are all one short must still
    /// escape now and then.
    fn wants_promotion(&mut self, now_ms: u64) -> bool {
        let capacity = self.config.active_view_capacity;
        if self.active.len() >= capacity || self.pending_neighbor.is_some() {
            return false;
        }
        if self.active.len() + 1 < capacity {
            return true;
        }
        if now_ms < self.next_top_up_ms {
            return false;
        }
        self.next_top_up_ms = now_ms + self.config.shuffle_interval_ms;
        true
    }

    fn promote(&mut self, now_ms: u64, out: &mut ViewOutput) {
        let candidates = self.passive.clone();
        let Some(candidate) = self.pick_biased(&candidates) else { return };
        // The paper asks with high priority only when the active view is empty; we also
        // do at half capacity or below, and after three refusals in a row, or a small
        // island whose passive entries all point at full nodes would never escape (seen
        // in simulation: groups of two to four nodes holding only each other).
        let high_priority = self.active.len() <= self.config.active_view_capacity / 2 || self.refusals_in_row >= 3;
        self.stats.neighbor_requests += 1;
        self.pending_neighbor = Some((candidate, now_ms + self.config.neighbor_request_timeout_ms));
        if let Some(peer) = self.passive.iter_mut().find(|peer| peer.id == candidate) {
            peer.last_sent_ms = now_ms;
        }
        self.send(now_ms, candidate, GossipMessage::Neighbor { high_priority }, out);
    }

    fn start_shuffle(&mut self, now_ms: u64, out: &mut ViewOutput) {
        let candidates = self.active.clone();
        let Some(target) = self.pick_biased(&candidates) else { return };
        let mut nodes = vec![self.me];
        nodes.extend(self.sample(&self.active.clone(), self.config.shuffle_active_count, Some(target)));
        nodes.extend(self.sample(&self.passive.clone(), self.config.shuffle_passive_count, None));
        nodes.truncate(MAX_SHUFFLE_NODES);
        self.stats.shuffles += 1;
        let ttl = self.config.active_random_walk_length;
        self.send(now_ms, target, GossipMessage::Shuffle { origin: self.me, ttl, nodes }, out);
    }

    fn sample(&mut self, peers: &[Peer], count: usize, except: Option<NodeId>) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = peers.iter().map(|p| p.id).filter(|id| Some(*id) != except).collect();
        self.rng.shuffle(&mut ids);
        ids.truncate(count);
        ids
    }

    fn shuffle_step(
        &mut self,
        now_ms: u64,
        from: NodeId,
        origin: NodeId,
        ttl: u8,
        nodes: Vec<NodeId>,
        out: &mut ViewOutput,
    ) {
        if origin == self.me {
            return;
        }
        if ttl > 0 && self.active.len() > 1 {
            let candidates: Vec<Peer> =
                self.active.iter().copied().filter(|p| p.id != from && p.id != origin).collect();
            if let Some(next) = self.pick_biased(&candidates) {
                self.send(now_ms, next, GossipMessage::Shuffle { origin, ttl: ttl - 1, nodes }, out);
                return;
            }
        }
        let reply = self.sample(&self.passive.clone(), nodes.len().min(MAX_SHUFFLE_NODES), None);
        self.send(now_ms, origin, GossipMessage::ShuffleReply { nodes: reply.clone() }, out);
        self.integrate(now_ms, &nodes, &reply);
    }

    /// Adds shuffled-in `nodes` to the passive view, evicting first the ones we just
    /// sent away (`sent`), then random ones (HyParView §4.4).
    fn integrate(&mut self, now_ms: u64, nodes: &[NodeId], sent: &[NodeId]) {
        let mut sent: Vec<NodeId> = sent.to_vec();
        for &id in nodes.iter().take(MAX_SHUFFLE_NODES) {
            let present = id == self.me || self.is_active(&id) || self.passive.iter().any(|peer| peer.id == id);
            if present {
                continue;
            }
            if self.passive.len() >= self.config.passive_view_capacity {
                match sent.pop().and_then(|gone| self.passive.iter().position(|peer| peer.id == gone)) {
                    Some(position) => {
                        self.passive.swap_remove(position);
                    }
                    None => {
                        let victim = self.rng.index(self.passive.len());
                        self.passive.swap_remove(victim);
                    }
                }
            }
            self.passive.push(Peer { id, last_heard_ms: now_ms, last_sent_ms: 0 });
        }
    }

    /// Retries the failed neighbour tried longest ago: after a partition heals, the
    /// two sides find each other again through the links the partition cut.
    fn reconnect(&mut self, now_ms: u64, out: &mut ViewOutput) {
        let Some(index) = (0..self.known.len()).min_by_key(|&i| self.known[i].1) else { return };
        let id = self.known[index].0;
        self.known[index].1 = now_ms;
        self.stats.reconnect_attempts += 1;
        self.send(now_ms, id, GossipMessage::Neighbor { high_priority: false }, out);
    }
}
