//! Misbehaviour scores: each offence adds points; at 100 the peer is banned.
//! The weights follow Bitcoin Core's `Misbehaving` (100 for an invalid block, which
//! bans at once; smaller ones for protocol violations that a buggy peer could commit).

use std::collections::BTreeMap;

use super::message::MessageError;
use super::validate::BlockError;
use crate::state::NodeId;

/// Score at which a peer is banned.
pub const BAN_SCORE: u32 = 100;

/// A peer's offence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A message that does not decode (includes a locator over 64 hashes).
    Malformed(MessageError),
    /// A locator longer than the bound.
    LocatorTooLong,
    /// A request over the per-message bounds.
    RequestTooLarge,
    /// A reply nobody asked for.
    Unsolicited,
    /// Headers that do not connect to our chain or to each other.
    HeadersDoNotConnect,
    /// A block that is not the one its header announced.
    WrongBlock,
    /// A block that fails validation.
    InvalidBlock(BlockError),
}

impl Misbehaviour {
    /// Points this offence adds.
    pub fn weight(&self) -> u32 {
        match self {
            Self::InvalidBlock(_) => 100,
            Self::LocatorTooLong | Self::HeadersDoNotConnect => 50,
            Self::Malformed(_) | Self::RequestTooLarge | Self::WrongBlock => 20,
            Self::Unsolicited => 10,
        }
    }
}

/// Scores of the peers that misbehaved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerScores {
    scores: BTreeMap<NodeId, u32>,
}

impl PeerScores {
    /// Adds `offence` to `peer`'s score and returns the new score.
    pub fn raise(&mut self, peer: NodeId, offence: Misbehaviour) -> u32 {
        let score = self.scores.entry(peer).or_default();
        *score = score.saturating_add(offence.weight());
        *score
    }

    /// The peer's score (0 if it never misbehaved).
    pub fn score(&self, peer: &NodeId) -> u32 {
        self.scores.get(peer).copied().unwrap_or(0)
    }

    /// Whether the peer reached [`BAN_SCORE`].
    pub fn is_banned(&self, peer: &NodeId) -> bool {
        self.score(peer) >= BAN_SCORE
    }
}
