//! Chain sync with peers, sans-IO: the responder is a pure function of the chain; the
//! requester is a [`SyncSession`] fed with messages and polled for what to send.
//!
//! Headers first (Bitcoin Core since 0.10): the requester sends its locator to one
//! peer, which answers in the same round trip with the common ancestor and up to 2,000
//! headers after it. The requester checks they connect, then fetches the bodies in
//! batches of at most 128 blocks, spread over every peer it has (at most 4 batches in
//! flight per peer), and checks each body against the header id before validating and
//! storing it. A block that fails validation raises its sender's score by 100 (a ban),
//! and its range is fetched from another peer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::block::{Block, BlockHeader, BlockId};
use super::locator::{block_locator, find_common_ancestor, LocatorError, LOCATOR_LEN_MAX};
use super::message::{SyncMessage, BLOCKS_PER_MESSAGE_MAX, HEADERS_PER_MESSAGE_MAX};
use super::score::{Misbehaviour, PeerScores};
use super::store::{BlockSource, Chain, ChainStore};
use crate::state::NodeId;

/// Answers one request from a peer; `Err` is the peer's offence.
pub fn respond(store: &impl BlockSource, request: &SyncMessage) -> Result<Option<SyncMessage>, Misbehaviour> {
    match request {
        SyncMessage::GetHeaders { locator, headers_max } => {
            let (ancestor_height, ancestor_id) = match find_common_ancestor(store, locator) {
                Ok(found) => found,
                Err(LocatorError::TooLong { .. }) => return Err(Misbehaviour::LocatorTooLong),
                // Different genesis: answer with nothing in common; the peer gives up.
                Err(LocatorError::NoCommonBlock) => return Ok(None),
            };
            let count = (*headers_max).min(HEADERS_PER_MESSAGE_MAX) as u64;
            let headers = (ancestor_height + 1..=ancestor_height + count).map_while(|h| store.header_at(h)).collect();
            Ok(Some(SyncMessage::Headers { ancestor_height, ancestor_id, tip_height: store.tip_height(), headers }))
        }
        SyncMessage::GetBlocks { from, count } => {
            if *count > BLOCKS_PER_MESSAGE_MAX {
                return Err(Misbehaviour::RequestTooLarge);
            }
            let end = from.saturating_add(*count as u64);
            let blocks = (*from..end).map_while(|height| store.block_at(height)).collect();
            Ok(Some(SyncMessage::Blocks { from: *from, blocks }))
        }
        SyncMessage::Headers { .. } | SyncMessage::Blocks { .. } => Err(Misbehaviour::Unsolicited),
    }
}

/// Settings of a [`SyncSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// Headers asked per round trip (2,000, Bitcoin's).
    pub headers_per_request: u16,
    /// Blocks per `GetBlocks` (128, Bitcoin's per-peer download window).
    pub blocks_per_request: u32,
    /// Batches in flight per peer (4: enough to hide one round trip behind transfer).
    pub requests_per_peer_max: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self { headers_per_request: HEADERS_PER_MESSAGE_MAX, blocks_per_request: 128, requests_per_peer_max: 4 }
    }
}

/// What a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// The common ancestor with the header peer, found in one round trip.
    AncestorFound {
        /// Its height.
        height: u64,
    },
    /// A peer misbehaved; `score` is its new score.
    Misbehaved {
        /// The peer.
        peer: NodeId,
        /// What it did.
        offence: Misbehaviour,
        /// Its score now.
        score: u32,
    },
    /// A peer reached the ban score; the session no longer talks to it.
    Banned {
        /// The peer.
        peer: NodeId,
    },
    /// Every block the header peer announced is stored; the head is at `height`.
    Done {
        /// Head height.
        height: u64,
    },
    /// No usable peer is left.
    NoPeers,
}

/// The requesting side of chain sync with one or more peers.
#[derive(Debug)]
pub struct SyncSession {
    config: SyncConfig,
    peers: Vec<NodeId>,
    header_peer: Option<NodeId>,
    awaiting_headers: bool,
    last_headers_full: bool,
    /// The last header of the previous round: the next round asks for headers after
    /// it (our main chain may still be a shorter branch that does not contain it).
    resume_from: Option<BlockId>,
    wanted: BTreeMap<u64, BlockId>,
    unrequested: VecDeque<(u64, u32)>,
    in_flight: BTreeMap<u64, (NodeId, u32)>,
    /// Requests dropped when the session restarted: their replies are ignored, not
    /// held against honest peers. Bounded by peers × requests in flight per peer.
    abandoned: BTreeSet<(NodeId, u64)>,
    arrived: BTreeMap<u64, (NodeId, Block)>,
    next_peer: usize,
    scores: PeerScores,
    outbox: VecDeque<(NodeId, SyncMessage)>,
    events: VecDeque<SyncEvent>,
    done: bool,
}

impl SyncSession {
    /// A session that will sync from `peers` (the first one serves headers).
    pub fn new(config: SyncConfig, peers: Vec<NodeId>) -> Self {
        assert!(config.blocks_per_request > 0 && config.blocks_per_request <= BLOCKS_PER_MESSAGE_MAX);
        assert!(config.headers_per_request > 0 && config.headers_per_request <= HEADERS_PER_MESSAGE_MAX);
        assert!(config.requests_per_peer_max > 0);
        Self {
            config,
            peers,
            header_peer: None,
            awaiting_headers: false,
            last_headers_full: false,
            resume_from: None,
            wanted: BTreeMap::new(),
            unrequested: VecDeque::new(),
            in_flight: BTreeMap::new(),
            abandoned: BTreeSet::new(),
            arrived: BTreeMap::new(),
            next_peer: 0,
            scores: PeerScores::default(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            done: false,
        }
    }

    /// Sends the locator of `chain` to the header peer.
    pub fn start(&mut self, chain: &impl ChainStore) {
        self.resume_from = None;
        self.request_headers(chain);
    }

    fn request_headers(&mut self, chain: &impl ChainStore) {
        self.done = false;
        self.header_peer = self.peers.first().copied();
        let Some(peer) = self.header_peer else {
            self.events.push_back(SyncEvent::NoPeers);
            return;
        };
        let mut locator = block_locator(chain);
        if let Some(resume) = self.resume_from {
            locator.insert(0, resume);
            locator.truncate(LOCATOR_LEN_MAX);
        }
        self.awaiting_headers = true;
        self.outbox
            .push_back((peer, SyncMessage::GetHeaders { locator, headers_max: self.config.headers_per_request }));
    }

    /// Whether the session finished.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The scores of the peers that misbehaved.
    pub fn scores(&self) -> &PeerScores {
        &self.scores
    }

    /// Handles the bytes of a message from `from`.
    pub fn handle_bytes(&mut self, chain: &mut Chain, now_ms: u64, from: NodeId, bytes: &[u8]) {
        match SyncMessage::decode(bytes, chain.limits()) {
            Ok(message) => self.handle_message(chain, now_ms, from, message),
            Err(error) => self.misbehaved(from, Misbehaviour::Malformed(error), chain),
        }
    }

    /// Handles a decoded message from `from`.
    pub fn handle_message(&mut self, chain: &mut Chain, now_ms: u64, from: NodeId, message: SyncMessage) {
        if self.scores.is_banned(&from) {
            return;
        }
        match message {
            SyncMessage::Headers { ancestor_height, ancestor_id, headers, .. } => {
                if !self.awaiting_headers || Some(from) != self.header_peer {
                    return self.misbehaved(from, Misbehaviour::Unsolicited, chain);
                }
                self.awaiting_headers = false;
                self.handle_headers(chain, from, ancestor_height, ancestor_id, headers);
            }
            SyncMessage::Blocks { from: height, blocks } => self.handle_blocks(chain, now_ms, from, height, blocks),
            // Requests are answered by `respond`, not by the session.
            SyncMessage::GetHeaders { .. } | SyncMessage::GetBlocks { .. } => {}
        }
        self.schedule();
        self.finish_round(chain);
    }

    fn handle_headers(
        &mut self,
        chain: &Chain,
        from: NodeId,
        ancestor_height: u64,
        ancestor_id: BlockId,
        headers: Vec<BlockHeader>,
    ) {
        let known = chain.block(&ancestor_id).is_some_and(|b| b.header.height == ancestor_height);
        if !known || !connected(ancestor_height, ancestor_id, &headers) {
            return self.misbehaved(from, Misbehaviour::HeadersDoNotConnect, chain);
        }
        self.events.push_back(SyncEvent::AncestorFound { height: ancestor_height });
        self.last_headers_full = headers.len() == self.config.headers_per_request as usize;
        self.resume_from = headers.last().map(BlockHeader::id);
        let missing: Vec<(u64, BlockId)> =
            headers.iter().map(|h| (h.height, h.id())).filter(|(_, id)| !chain.contains(id)).collect();
        for chunk in missing.chunks(self.config.blocks_per_request as usize) {
            self.unrequested.push_back((chunk[0].0, chunk.len() as u32));
        }
        self.wanted.extend(missing);
    }

    fn handle_blocks(&mut self, chain: &mut Chain, now_ms: u64, from: NodeId, height: u64, blocks: Vec<Block>) {
        let Some(&(asked, count)) = self.in_flight.get(&height).filter(|(peer, _)| *peer == from) else {
            if self.abandoned.remove(&(from, height)) {
                return;
            }
            return self.misbehaved(from, Misbehaviour::Unsolicited, chain);
        };
        debug_assert_eq!(asked, from);
        self.in_flight.remove(&height);
        let mut accepted = 0u32;
        for (offset, block) in blocks.into_iter().take(count as usize).enumerate() {
            let at = height + offset as u64;
            if self.wanted.get(&at) != Some(&block.id()) {
                self.unrequested.push_back((at, count - accepted));
                self.apply(chain, now_ms);
                // Blocks are asked for by height, and a peer serves its own main chain:
                // one on another branch answers honestly with other blocks. Only the
                // peer that announced these headers, or one whose block is not even
                // signed, misbehaves; any other is asked no more this round (found
                // while building the swarm's chain role, ADR 080).
                if Some(from) == self.header_peer || !block.header.signature_valid() {
                    return self.misbehaved(from, Misbehaviour::WrongBlock, chain);
                }
                if self.peers.len() > 1 {
                    self.peers.retain(|p| *p != from);
                }
                return self.schedule();
            }
            self.arrived.insert(at, (from, block));
            accepted += 1;
        }
        if accepted < count {
            self.unrequested.push_back((height + accepted as u64, count - accepted));
            if accepted == 0 && Some(from) == self.header_peer {
                // It announced these headers and cannot serve them.
                self.apply(chain, now_ms);
                return self.misbehaved(from, Misbehaviour::WrongBlock, chain);
            }
            if accepted == 0 && self.peers.len() > 1 {
                // Another peer may be on another branch: ask the others.
                self.peers.retain(|p| *p != from);
            }
        }
        self.apply(chain, now_ms);
    }

    /// Stores arrived blocks in height order.
    fn apply(&mut self, chain: &mut Chain, now_ms: u64) {
        while let Some((&height, _)) = self.wanted.first_key_value() {
            let Some((sender, block)) = self.arrived.remove(&height) else { break };
            match chain.insert(block, now_ms) {
                Ok(_) => {
                    self.wanted.remove(&height);
                }
                Err(reason) => {
                    self.unrequested.push_front((height, 1));
                    self.misbehaved(sender, Misbehaviour::InvalidBlock(reason), chain);
                    break;
                }
            }
        }
    }

    /// Hands unrequested ranges to peers with room, round robin.
    fn schedule(&mut self) {
        while let Some(&(from, count)) = self.unrequested.front() {
            let Some(peer) = self.peer_with_room() else { break };
            self.unrequested.pop_front();
            self.in_flight.insert(from, (peer, count));
            self.outbox.push_back((peer, SyncMessage::GetBlocks { from, count }));
        }
    }

    fn peer_with_room(&mut self) -> Option<NodeId> {
        for _ in 0..self.peers.len() {
            let peer = self.peers[self.next_peer % self.peers.len()];
            self.next_peer = self.next_peer.wrapping_add(1);
            let load = self.in_flight.values().filter(|(p, _)| *p == peer).count();
            if load < self.config.requests_per_peer_max {
                return Some(peer);
            }
        }
        None
    }

    /// When a round of headers is fully fetched: the next round, or done.
    fn finish_round(&mut self, chain: &Chain) {
        let idle = !self.awaiting_headers && self.in_flight.is_empty() && self.unrequested.is_empty();
        if !idle || !self.wanted.is_empty() || self.done || self.header_peer.is_none() {
            return;
        }
        if self.last_headers_full {
            self.request_headers(chain);
        } else {
            self.done = true;
            self.events.push_back(SyncEvent::Done { height: chain.tip_height() });
        }
    }

    fn misbehaved(&mut self, peer: NodeId, offence: Misbehaviour, chain: &Chain) {
        let score = self.scores.raise(peer, offence);
        self.events.push_back(SyncEvent::Misbehaved { peer, offence, score });
        if !self.scores.is_banned(&peer) {
            return;
        }
        self.events.push_back(SyncEvent::Banned { peer });
        self.peers.retain(|p| *p != peer);
        let lost: Vec<u64> = self.in_flight.iter().filter(|(_, (p, _))| *p == peer).map(|(h, _)| *h).collect();
        for height in lost {
            let (_, count) = self.in_flight.remove(&height).expect("listed");
            self.unrequested.push_back((height, count));
        }
        if self.peers.is_empty() {
            self.header_peer = None;
            self.events.push_back(SyncEvent::NoPeers);
        } else if self.header_peer == Some(peer) {
            self.wanted.clear();
            self.unrequested.clear();
            self.arrived.clear();
            let dropped = std::mem::take(&mut self.in_flight);
            self.abandoned.extend(dropped.into_iter().map(|(height, (peer, _))| (peer, height)));
            self.start(chain);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(NodeId, SyncMessage)> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }
}

/// Whether `headers` follow `ancestor` one height at a time, each naming the one before.
fn connected(ancestor_height: u64, ancestor_id: BlockId, headers: &[BlockHeader]) -> bool {
    let mut expected = (ancestor_height + 1, ancestor_id);
    headers.iter().all(|header| {
        let ok = header.height == expected.0 && header.prev_id == expected.1;
        expected = (header.height + 1, header.id());
        ok
    })
}
