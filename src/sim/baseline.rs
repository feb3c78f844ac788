//! The original design's dissemination, kept as the benchmark's reference (seed
//! document, `GossipProtocol`): the origin pushes to log2(N) random peers, every
//! receiver forwards a new message to 3 random peers while its TTL (10 hops) lasts, and
//! an LRU cache of recent ids suppresses repeats. Peers are drawn from the full member
//! list, which the naive design does not prune of silently crashed nodes.

use std::collections::{HashSet, VecDeque};

use super::{Process, SeededRng};
use crate::gossip::MessageId;
use crate::state::NodeId;

/// The original design's TTL, in hops.
pub const PUSH_TTL: u8 = 10;
/// Peers each forward goes to.
pub const PUSH_FANOUT: usize = 3;
/// Ids the dedupe cache holds (the original's LRU; its size is unstated, a guess).
pub const LRU_CAPACITY: usize = 10_000;

/// A delivery of the baseline: (id, hops).
pub type PushDelivery = (MessageId, u32);

/// One node of the original design.
pub struct PushGossip {
    me: NodeId,
    peers: Vec<NodeId>,
    rng: SeededRng,
    seen: HashSet<MessageId>,
    seen_order: VecDeque<MessageId>,
    outbox: VecDeque<(NodeId, Vec<u8>)>,
    events: VecDeque<PushDelivery>,
    seq: u64,
    /// Payload frames sent.
    pub payloads_sent: u64,
    /// Frames that did not decode.
    pub frames_rejected: u64,
}

impl PushGossip {
    /// A node that knows `peers` (all members, as the original's `peerStates`).
    pub fn new(me: NodeId, peers: Vec<NodeId>, rng: SeededRng) -> Self {
        let peers = peers.into_iter().filter(|id| *id != me).collect();
        PushGossip {
            me,
            peers,
            rng,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            seq: 0,
            payloads_sent: 0,
            frames_rejected: 0,
        }
    }

    /// Starts a broadcast: log2(N) random peers, TTL 10.
    pub fn broadcast(&mut self, payload: &[u8]) -> MessageId {
        self.seq += 1;
        let id = MessageId::of(&self.me, self.seq, payload);
        self.remember(id);
        self.events.push_back((id, 0));
        let fanout = ((self.peers.len() + 1) as f64).log2().floor().max(1.0) as usize;
        self.push(id, PUSH_TTL, 1, payload, fanout);
        id
    }

    fn remember(&mut self, id: MessageId) {
        if self.seen_order.len() >= LRU_CAPACITY {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id);
        self.seen_order.push_back(id);
    }

    fn push(&mut self, id: MessageId, ttl: u8, hops: u32, payload: &[u8], fanout: usize) {
        if self.peers.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(38 + payload.len());
        frame.push(ttl);
        frame.extend_from_slice(&hops.to_le_bytes());
        frame.extend_from_slice(&id.0);
        frame.extend_from_slice(payload);
        for _ in 0..fanout {
            let peer = self.peers[self.rng.index(self.peers.len())];
            self.payloads_sent += 1;
            self.outbox.push_back((peer, frame.clone()));
        }
    }
}

impl Process for PushGossip {
    type Event = PushDelivery;
    fn handle_message(&mut self, _now_ms: u64, _from: NodeId, bytes: &[u8]) {
        if bytes.len() < 37 || bytes.len() > 65_536 {
            self.frames_rejected += 1;
            return;
        }
        let ttl = bytes[0];
        let hops = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[5..37]);
        let id = MessageId(id);
        if self.seen.contains(&id) {
            return;
        }
        self.remember(id);
        self.events.push_back((id, hops));
        if ttl > 0 {
            self.push(id, ttl - 1, hops.saturating_add(1), &bytes[37..], PUSH_FANOUT);
        }
    }
    fn handle_timeout(&mut self, _now_ms: u64) {}
    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.outbox.pop_front()
    }
    fn poll_timeout(&self) -> Option<u64> {
        None
    }
    fn poll_event(&mut self) -> Option<PushDelivery> {
        self.events.pop_front()
    }
}
