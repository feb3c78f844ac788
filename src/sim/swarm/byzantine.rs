//! A lying node. It runs the honest code but corrupts what it sends: bytes flipped
//! in its anti-entropy, push, chain and time messages (a state vector or a sketch that
//! lies, items whose digests do not match, blocks that do not verify, impossible
//! clock readings), forged membership notices declaring honest members dead, and
//! floods of garbage. Its Raft messages pass unchanged: Raft tolerates crashes, not
//! lies, and the swarm checks what the honest nodes do about a liar, not a protocol
//! outside its fault model. The honest nodes must converge without it and disconnect
//! it (the floods make sure each of them sees something it must refuse).

use super::envelope::Channel;
use crate::membership::{MemberState, Message, Update};
use crate::node::message::{decode, NodeMessage};
use crate::sansio::SeededRng;
use crate::state::NodeId;

/// Counters of the lies told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiarStats {
    /// Messages sent with a byte flipped.
    pub corrupted: u64,
    /// Forged membership notices sent.
    pub forged_membership: u64,
    /// Garbage frames sent.
    pub flood_frames: u64,
}

/// The lying part of a byzantine node.
pub struct Liar {
    rng: SeededRng,
    me: NodeId,
    members: Vec<NodeId>,
    /// Probability that an outgoing message is corrupted.
    corrupt_chance: f64,
    next_lie_ms: u64,
    /// Garbage floods start only after this, so that until then the honest nodes must
    /// catch the liar by its corrupted messages alone.
    floods_from_ms: u64,
    stats: LiarStats,
}

/// Garbage frames sent to each member per flood, at most.
const FLOOD_FRAMES_MAX: u64 = 16;

impl Liar {
    /// A liar among `members`, corrupting each message with probability `corrupt_chance`.
    pub fn new(me: NodeId, members: Vec<NodeId>, corrupt_chance: f64, rng: SeededRng, now_ms: u64) -> Liar {
        let mut liar = Liar {
            rng,
            me,
            members,
            corrupt_chance,
            next_lie_ms: now_ms,
            floods_from_ms: now_ms,
            stats: LiarStats::default(),
        };
        liar.next_lie_ms = now_ms + 200 + liar.rng.below(800);
        liar.floods_from_ms = now_ms + 2_000 + liar.rng.below(6_000);
        liar
    }

    /// Counters.
    pub fn stats(&self) -> LiarStats {
        self.stats
    }

    /// When the liar next lies on its own.
    pub fn next_lie_ms(&self) -> u64 {
        self.next_lie_ms
    }

    /// What becomes of an honest message on its way out: corrupted or not.
    pub fn corrupt(&mut self, channel: Channel, _to: NodeId, mut payload: Vec<u8>) -> Option<Vec<u8>> {
        let raft = channel == Channel::Core && matches!(decode(&payload, usize::MAX), Ok(NodeMessage::Raft { .. }));
        if raft || channel == Channel::Membership || payload.is_empty() || !self.rng.chance(self.corrupt_chance) {
            return Some(payload);
        }
        let at = self.rng.index(payload.len());
        payload[at] ^= 1 << self.rng.below(8);
        self.stats.corrupted += 1;
        Some(payload)
    }

    /// The lies told at `now_ms`, if it is time: forged deaths and a flood to everyone.
    pub fn lies(&mut self, now_ms: u64, _peers: &[NodeId]) -> Vec<(Channel, NodeId, Vec<u8>)> {
        if now_ms < self.next_lie_ms {
            return Vec::new();
        }
        self.next_lie_ms = now_ms + 200 + self.rng.below(800);
        let others: Vec<NodeId> = self.members.iter().copied().filter(|&m| m != self.me).collect();
        let mut out = Vec::new();
        for &to in &others {
            if let Some(victim) = others.get(self.rng.index(others.len())).copied().filter(|&v| v != to) {
                out.push((Channel::Membership, to, self.forged_death(victim)));
                self.stats.forged_membership += 1;
            }
            if now_ms >= self.floods_from_ms && self.rng.chance(0.3) {
                for _ in 0..1 + self.rng.below(FLOOD_FRAMES_MAX) {
                    out.push((self.random_channel(), to, self.garbage()));
                    self.stats.flood_frames += 1;
                }
            }
        }
        out
    }

    fn forged_death(&mut self, victim: NodeId) -> Vec<u8> {
        // Sometimes a plausible incarnation, sometimes an absurd one.
        let incarnation = if self.rng.chance(0.5) { self.rng.below(1 << 36) } else { self.rng.next_u64() };
        let update = Update { node: victim, incarnation, state: MemberState::Dead, from: None };
        Message::Sync { reply_wanted: false, updates: vec![update] }.to_bytes()
    }

    fn random_channel(&mut self) -> Channel {
        [Channel::Core, Channel::Chain, Channel::Time][self.rng.index(3)]
    }

    /// Bytes no honest peer sends: a reserved first byte, then noise.
    fn garbage(&mut self) -> Vec<u8> {
        let len = 1 + self.rng.index(256);
        let mut bytes: Vec<u8> = (0..len).map(|_| self.rng.below(256) as u8).collect();
        bytes[0] = 0xFF;
        bytes
    }
}
