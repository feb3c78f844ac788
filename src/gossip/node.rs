//! One gossip node: HyParView's views with Plumtree on top, behind the sans-IO
//! interface (`handle_*`, `poll_*`). View changes flow from HyParView to Plumtree
//! inside; frames and events flow out to the host through bounded queues.

use std::collections::VecDeque;

use super::config::GossipConfig;
use super::hyparview::{HyParView, ViewChange, ViewOutput, ViewStats};
use super::message::{GossipError, GossipMessage, MessageId};
use super::plumtree::{Plumtree, TreeStats};
use crate::sansio::{Process, SeededRng};
use crate::state::NodeId;

/// Frames waiting for the host at most; beyond, frames are dropped and counted, and
/// [`Gossip::broadcast`] refuses new work (back-pressure).
pub const MAX_OUTBOX: usize = 16_384;
/// Events waiting for the host at most; beyond, the oldest are dropped and counted.
pub const MAX_EVENTS: usize = 16_384;

/// What a gossip node reports to its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipEvent {
    /// A broadcast arrived (or was started here, with `hops` 0).
    Delivered {
        /// Its id.
        id: MessageId,
        /// Hops from the origin.
        hops: u32,
        /// The payload.
        payload: Vec<u8>,
    },
    /// A new overlay link.
    NeighborUp(NodeId),
    /// An overlay link went away.
    NeighborDown(NodeId),
}

/// Why a broadcast was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BroadcastError {
    /// The payload exceeds the configured maximum.
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The outbox is full: the host is not draining frames.
    Backpressure,
}

/// Why [`Gossip::handle_message_checked`] refused a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refused {
    /// It did not decode.
    Frame(GossipError),
    /// The host's check refused a new broadcast's payload.
    Payload,
}

/// Counters of the node and its two layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Frames that did not decode (oversized, truncated, unknown).
    pub frames_rejected: u64,
    /// Frames dropped because the outbox was full.
    pub frames_dropped: u64,
    /// Events dropped because the host did not poll.
    pub events_dropped: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Payloads the host's check refused (see [`Gossip::handle_message_checked`]).
    pub payloads_refused: u64,
    /// The overlay's counters.
    pub view: ViewStats,
    /// The broadcast tree's counters.
    pub tree: TreeStats,
}

/// A gossip node.
pub struct Gossip {
    config: GossipConfig,
    view: HyParView,
    tree: Plumtree,
    outbox: VecDeque<(NodeId, Vec<u8>)>,
    events: VecDeque<GossipEvent>,
    stats: GossipStats,
    last_rejection: Option<GossipError>,
}

impl Gossip {
    /// A node `me` with its own seeded generator.
    pub fn new(config: GossipConfig, me: NodeId, rng: SeededRng, now_ms: u64) -> Self {
        Gossip {
            view: HyParView::new(config.clone(), me, rng, now_ms),
            tree: Plumtree::new(config.clone(), me),
            config,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: GossipStats::default(),
            last_rejection: None,
        }
    }

    // Getters.

    /// Counters.
    pub fn stats(&self) -> GossipStats {
        GossipStats { view: self.view.stats(), tree: self.tree.stats(), ..self.stats }
    }
    /// The overlay views.
    pub fn view(&self) -> &HyParView {
        &self.view
    }
    /// The broadcast tree.
    pub fn tree(&self) -> &Plumtree {
        &self.tree
    }
    /// Why the last rejected frame was rejected.
    pub fn last_rejection(&self) -> Option<GossipError> {
        self.last_rejection
    }

    // Inputs and commands.

    /// Joins the overlay through `contact`.
    pub fn join(&mut self, now_ms: u64, contact: NodeId) {
        let mut out = ViewOutput::default();
        self.view.join(now_ms, contact, &mut out);
        self.apply_view_output(now_ms, out);
    }

    /// Broadcasts `payload` to every node; returns its id.
    pub fn broadcast(&mut self, now_ms: u64, payload: Vec<u8>) -> Result<MessageId, BroadcastError> {
        if payload.len() > self.config.max_payload_len {
            return Err(BroadcastError::PayloadTooLarge { len: payload.len(), max: self.config.max_payload_len });
        }
        if self.outbox.len() >= MAX_OUTBOX {
            return Err(BroadcastError::Backpressure);
        }
        let mut frames = Vec::new();
        self.tree.set_cluster_estimate(self.view.active().count() + self.view.passive().count() + 1);
        let delivery = self.tree.broadcast(now_ms, payload, &mut frames);
        self.push_frames(now_ms, frames);
        let id = delivery.id;
        self.push_event(GossipEvent::Delivered { id, hops: 0, payload: delivery.payload });
        Ok(id)
    }

    /// A frame from `from`.
    pub fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) {
        let _ = self.handle_message_checked(now_ms, from, bytes, |_| true);
    }

    /// A frame from `from`, where a new broadcast's payload is first given to `check`:
    /// a payload it refuses is neither delivered nor forwarded (so an honest node never
    /// relays what it would not accept, and a refused payload names its sender).
    /// `Err` when the frame did not decode or its payload was refused.
    pub fn handle_message_checked(
        &mut self,
        now_ms: u64,
        from: NodeId,
        bytes: &[u8],
        check: impl FnOnce(&[u8]) -> bool,
    ) -> Result<(), Refused> {
        let message = match GossipMessage::decode(bytes) {
            Ok(message) => message,
            Err(error) => {
                self.stats.frames_rejected += 1;
                self.last_rejection = Some(error);
                return Err(Refused::Frame(error));
            }
        };
        if let GossipMessage::Gossip { id, payload, .. } = &message {
            if !self.tree.has_seen(id) && !check(payload) {
                self.stats.payloads_refused += 1;
                return Err(Refused::Payload);
            }
        }
        self.view.heard_from(now_ms, from);
        match message {
            GossipMessage::Gossip { .. }
            | GossipMessage::IHave { .. }
            | GossipMessage::Graft { .. }
            | GossipMessage::Prune => {
                let mut frames = Vec::new();
                if let Some(delivery) = self.tree.handle(now_ms, from, message, &mut frames) {
                    self.push_event(GossipEvent::Delivered {
                        id: delivery.id,
                        hops: delivery.hops,
                        payload: delivery.payload,
                    });
                }
                self.push_frames(now_ms, frames);
            }
            view_message => {
                let mut out = ViewOutput::default();
                self.view.handle(now_ms, from, view_message, &mut out);
                self.apply_view_output(now_ms, out);
            }
        }
        Ok(())
    }

    /// The host lost its connection to `peer`: an active neighbour is replaced now.
    pub fn handle_link_down(&mut self, now_ms: u64, peer: NodeId) {
        let mut out = ViewOutput::default();
        self.view.link_failed(now_ms, peer, &mut out);
        self.apply_view_output(now_ms, out);
    }

    /// Membership vouches for `peer`: a candidate for the passive view.
    pub fn learn(&mut self, now_ms: u64, peer: NodeId) {
        self.view.learn(now_ms, peer);
    }

    /// `peer` is gone for good (banned): out of every view.
    pub fn forget(&mut self, now_ms: u64, peer: NodeId) {
        let mut out = ViewOutput::default();
        self.view.forget(peer, &mut out);
        self.apply_view_output(now_ms, out);
    }

    /// The deadline from [`Gossip::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let mut out = ViewOutput::default();
        self.view.handle_timeout(now_ms, &mut out);
        self.apply_view_output(now_ms, out);
        let mut frames = Vec::new();
        self.tree.handle_timeout(now_ms, &mut frames);
        self.push_frames(now_ms, frames);
    }

    // Outputs.

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.outbox.pop_front()
    }
    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        let view_ms = self.view.poll_timeout();
        Some(self.tree.poll_timeout().map_or(view_ms, |tree_ms| tree_ms.min(view_ms)))
    }
    /// The next event.
    pub fn poll_event(&mut self) -> Option<GossipEvent> {
        self.events.pop_front()
    }

    // Internals.

    fn apply_view_output(&mut self, now_ms: u64, out: ViewOutput) {
        for change in out.changes {
            match change {
                ViewChange::Up(peer) => {
                    self.tree.neighbor_up(peer);
                    self.push_event(GossipEvent::NeighborUp(peer));
                }
                ViewChange::Down(peer) => {
                    self.tree.neighbor_down(peer);
                    self.push_event(GossipEvent::NeighborDown(peer));
                }
            }
        }
        self.push_frames(now_ms, out.frames);
    }

    fn push_frames(&mut self, now_ms: u64, frames: Vec<(NodeId, GossipMessage)>) {
        for (to, message) in frames {
            if self.outbox.len() >= MAX_OUTBOX {
                self.stats.frames_dropped += 1;
                continue;
            }
            self.view.sent_to(now_ms, to);
            self.stats.frames_sent += 1;
            self.outbox.push_back((to, message.to_bytes()));
        }
    }

    fn push_event(&mut self, event: GossipEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }
}

impl Process for Gossip {
    type Event = GossipEvent;
    fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) {
        Gossip::handle_message(self, now_ms, from, bytes)
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        Gossip::handle_timeout(self, now_ms)
    }
    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        Gossip::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<u64> {
        Gossip::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<GossipEvent> {
        Gossip::poll_event(self)
    }
}
