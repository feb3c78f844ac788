//! The overlay role: HyParView's partial views and Plumtree's broadcast tree
//! (src/gossip; Leitão, Pereira, Rodrigues 2007, both papers) inside the node. The
//! active view names the neighbours the node keeps links to (`node::links`), and the
//! node core's pushes travel on the tree: eager on tree links, announced lazily
//! (IHAVE) on the others and pulled (GRAFT) when the eager copy is late. A payload
//! is checked by the core before it is delivered or forwarded, so an honest node never
//! relays what it would refuse, and a refused payload names the peer that sent it.

use std::collections::BTreeSet;

use crate::gossip::{BroadcastError, Gossip, GossipConfig, GossipEvent, GossipStats, Refused};
use crate::sansio::SeededRng;
use crate::state::NodeId;

/// A node with an empty active view asks to join again no sooner than this.
const JOIN_RETRY_MS: u64 = 1_000;

/// The overlay's figures for metrics and the health report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverlayFigures {
    /// Neighbours in the active view.
    pub active: usize,
    /// The active view's capacity.
    pub active_max: usize,
    /// Members in the passive view.
    pub passive: usize,
    /// Broadcasts started here.
    pub broadcasts: u64,
    /// Broadcasts the host could not start (payload too large, back-pressure):
    /// anti-entropy carries what they held.
    pub broadcasts_dropped: u64,
    /// Broadcasts delivered here from peers.
    pub delivered: u64,
    /// Gossip's counters (payload frames and bytes sent, GRAFTs, PRUNEs…).
    pub gossip: GossipStats,
}

/// HyParView + Plumtree for one node.
pub struct Overlay {
    gossip: Gossip,
    capacity: usize,
    active: BTreeSet<NodeId>,
    last_join_ms: Option<u64>,
    broadcasts: u64,
    broadcasts_dropped: u64,
    delivered: u64,
}

impl Overlay {
    /// A node `me` outside any overlay yet.
    pub fn new(config: GossipConfig, me: NodeId, rng: SeededRng, now_ms: u64) -> Overlay {
        Overlay {
            capacity: config.active_view_capacity,
            gossip: Gossip::new(config, me, rng, now_ms),
            active: BTreeSet::new(),
            last_join_ms: None,
            broadcasts: 0,
            broadcasts_dropped: 0,
            delivered: 0,
        }
    }

    /// The active view: the neighbours whose links the node keeps.
    pub fn active(&self) -> &BTreeSet<NodeId> {
        &self.active
    }

    /// The passive view: members known, not linked for the overlay.
    pub fn passive(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.gossip.view().passive()
    }

    /// Figures for metrics and health.
    pub fn figures(&self) -> OverlayFigures {
        OverlayFigures {
            active: self.active.len(),
            active_max: self.capacity,
            passive: self.gossip.view().passive().count(),
            broadcasts: self.broadcasts,
            broadcasts_dropped: self.broadcasts_dropped,
            delivered: self.delivered,
            gossip: self.gossip.stats(),
        }
    }

    /// A link to `peer` came up: a node with no neighbour joins through it.
    pub fn handle_link_up(&mut self, now_ms: u64, peer: NodeId) {
        if self.active.is_empty() && self.last_join_ms.map_or(true, |at| now_ms >= at + JOIN_RETRY_MS) {
            self.last_join_ms = Some(now_ms);
            self.gossip.join(now_ms, peer);
        }
    }

    /// The link to `peer` broke: a neighbour is replaced from the passive view.
    pub fn handle_link_down(&mut self, now_ms: u64, peer: NodeId) {
        self.gossip.handle_link_down(now_ms, peer);
    }

    /// Membership holds `peer` alive: a candidate neighbour.
    pub fn learn(&mut self, now_ms: u64, peer: NodeId) {
        self.gossip.learn(now_ms, peer);
    }

    /// `peer` was banned: out of every view.
    pub fn forget(&mut self, now_ms: u64, peer: NodeId) {
        self.gossip.forget(now_ms, peer);
    }

    /// A frame from `from`; a new broadcast's payload is delivered only if `check`
    /// accepts it (it applies the payload).
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: NodeId,
        bytes: &[u8],
        check: impl FnOnce(&[u8]) -> bool,
    ) -> Result<(), Refused> {
        self.gossip.handle_message_checked(now_ms, from, bytes, check)
    }

    /// Broadcasts a push of the core.
    pub fn broadcast(&mut self, now_ms: u64, payload: Vec<u8>) {
        match self.gossip.broadcast(now_ms, payload) {
            Ok(_) => self.broadcasts += 1,
            Err(BroadcastError::PayloadTooLarge { .. } | BroadcastError::Backpressure) => self.broadcasts_dropped += 1,
        }
    }

    /// Periodic work; `linked`: peers the node holds links to, one of which a node with
    /// an empty active view joins through.
    pub fn handle_timeout(&mut self, now_ms: u64, linked: &BTreeSet<NodeId>) {
        if self.gossip.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.gossip.handle_timeout(now_ms);
        }
        if let Some(&peer) = linked.iter().next() {
            self.handle_link_up(now_ms, peer);
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.gossip.poll_timeout()
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.drain_events();
        self.gossip.poll_transmit()
    }

    /// Follows the active view from gossip's events (deliveries were applied by the
    /// check already).
    fn drain_events(&mut self) {
        while let Some(event) = self.gossip.poll_event() {
            match event {
                GossipEvent::NeighborUp(peer) => {
                    self.active.insert(peer);
                }
                GossipEvent::NeighborDown(peer) => {
                    self.active.remove(&peer);
                }
                GossipEvent::Delivered { hops, .. } => {
                    if hops > 0 {
                        self.delivered += 1;
                    }
                }
            }
        }
    }

    /// Brings the active view up to date (call after every input).
    pub fn settle(&mut self) {
        self.drain_events();
    }
}
