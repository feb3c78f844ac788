//! The chain as a role of the node: a hash-chained block log ([`Chain`]) on the node's disk
//! (a [`Log`] over any [`Disk`]), blocks proposed locally and synced from peers with
//! the chain module's headers-first [`SyncSession`] and [`respond`].
//!
//! **Sync.** Every 200–500 ms of local time the role announces its head to each
//! connected peer. A peer whose announced head is unknown here and would win fork
//! choice (higher, or as high with a lower id) is synced from: one [`SyncSession`]
//! per such peer, holding only that peer, so headers and bodies come from the branch
//! the headers describe (a session spreading body requests over peers on different
//! branches would blame honest peers for "wrong" blocks). The block locator finds the
//! fork point, so a better head of equal height is pulled like a higher one.
//!
//! **Faults.** Every sync message travels in an envelope carrying a random session id;
//! replies to another (old, replayed) session are ignored. Of what a session reports,
//! only offences no honest peer commits are a [`Fault`]: undecodable bytes, an
//! oversized locator or request, headers that do not connect, and blocks failing
//! validation for a reason that does not depend on the receiver's clock or view
//! (signature, Merkle root, height, timestamp before its parent, proposer). A block
//! that differs from its header (the peer reorganised in between), an unsolicited
//! reply (the network duplicates frames), a timestamp too far ahead of the local clock
//! (skew) end the session quietly; the next announce retries.
//!
//! **Timestamps.** A block is stamped `max(local now, parent's timestamp)`, so it
//! never precedes its parent whatever the local clock did. Peers' blocks are checked
//! against the local clock with the rules' `future_drift_ms_max`;
//! [`ChainRole::recommended_rules`] sets it to 60 s, well above the swarm's skew plus
//! jumps (a few seconds each), and a block refused as "in the future" is fetched again
//! on a later announce, once the local clock has moved on.
//!
//! **Durability.** [`ChainRole::propose`] returns a block id only once the block (and
//! every block inserted before it) is durable. Synced blocks are persisted after each
//! message that stored some. A storage error makes the role refuse every later write
//! (propose and sync); the node stops, and its restart recovers what was durable.
//!
//! Envelope (little endian):
//!
//! ```text
//! Announce 0x01 · height u64 · head id [32]            (41 bytes)
//! Request  0x02 · session u64 · GetHeaders | GetBlocks  (chain::message codec)
//! Reply    0x03 · session u64 · Headers | Blocks        (chain::message codec)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use ed25519_dalek::SigningKey;

use super::local_clock::LocalClock;
use super::role::{Fault, Role};
use crate::chain::message::BLOCKS_PER_MESSAGE_MAX;
use crate::chain::{
    respond, validate_block, Block, BlockError, BlockId, Chain, ChainRules, ChainStore, Misbehaviour, SyncConfig,
    SyncEvent, SyncMessage, SyncSession,
};
use crate::sansio::SeededRng;
use crate::state::NodeId;
use crate::storage::{Disk, Log, LogConfig};

const ANNOUNCE: u8 = 1;
const REQUEST: u8 = 2;
const REPLY: u8 = 3;
const ANNOUNCE_LEN: usize = 41;

/// Shortest local time between two announces.
pub const ANNOUNCE_INTERVAL_MS: u64 = 200;
/// Random extra time between two announces (uniform in `0..=` this).
pub const ANNOUNCE_JITTER_MS: u64 = 300;
/// A session that makes no progress for this long (elapsed, jump-proof) is dropped.
pub const SESSION_TIMEOUT_MS: u64 = 3_000;
/// Sync sessions at once (one per peer at most).
pub const SESSIONS_MAX: usize = 8;
/// Messages queued for one peer; requests beyond it are not answered (the asker's
/// session times out and retries).
pub const OUTBOX_PER_PEER_MAX: usize = 64;
/// The future-timestamp tolerance of [`ChainRole::recommended_rules`].
pub const RECOMMENDED_FUTURE_DRIFT_MS: u64 = 60_000;

/// The settings every session uses: fewer headers and blocks per round trip than the
/// protocol allows, so one reply stays small (the swarm's frames are not megabytes).
pub const SYNC_CONFIG: SyncConfig =
    SyncConfig { headers_per_request: 500, blocks_per_request: 32, requests_per_peer_max: 2 };

/// A chain role message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainMessage {
    /// The sender's head.
    Announce {
        /// Its height.
        height: u64,
        /// Its id.
        id: BlockId,
    },
    /// A sync request for session `session`.
    Request {
        /// The asker's session id, echoed in the reply.
        session: u64,
        /// GetHeaders or GetBlocks.
        message: SyncMessage,
    },
    /// The answer to a request of session `session`.
    Reply {
        /// The session id of the request.
        session: u64,
        /// Headers or Blocks.
        message: SyncMessage,
    },
}

impl ChainMessage {
    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Announce { height, id } => {
                let mut out = Vec::with_capacity(ANNOUNCE_LEN);
                out.push(ANNOUNCE);
                out.extend_from_slice(&height.to_le_bytes());
                out.extend_from_slice(id);
                out
            }
            Self::Request { session, message } | Self::Reply { session, message } => {
                let tag = if matches!(self, Self::Request { .. }) { REQUEST } else { REPLY };
                let mut out = vec![tag];
                out.extend_from_slice(&session.to_le_bytes());
                out.extend_from_slice(&message.to_bytes());
                out
            }
        }
    }

    /// Decodes one message within the chain's block limits; never panics. A request
    /// must hold a request and a reply a reply.
    pub fn decode(bytes: &[u8], chain: &Chain) -> Result<Self, String> {
        let (&tag, rest) = bytes.split_first().ok_or("empty chain message")?;
        if tag == ANNOUNCE {
            if bytes.len() != ANNOUNCE_LEN {
                return Err(format!("announce of {} bytes", bytes.len()));
            }
            let height = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            return Ok(Self::Announce { height, id: rest[8..].try_into().expect("32 bytes") });
        }
        if tag != REQUEST && tag != REPLY {
            return Err(format!("unknown chain message tag {tag}"));
        }
        if rest.len() < 8 {
            return Err("truncated chain envelope".into());
        }
        let session = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let message = SyncMessage::decode(&rest[8..], chain.limits()).map_err(|e| format!("sync message: {e:?}"))?;
        let is_request = matches!(message, SyncMessage::GetHeaders { .. } | SyncMessage::GetBlocks { .. });
        match (tag, is_request) {
            (REQUEST, true) => Ok(Self::Request { session, message }),
            (REPLY, false) => Ok(Self::Reply { session, message }),
            _ => Err("a reply sent as a request or the reverse".into()),
        }
    }
}

/// What [`ChainRole::open`] recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Blocks read back from the log (every branch, genesis excluded).
    pub blocks_recovered: usize,
    /// Head height after recovery.
    pub head_height: u64,
    /// Head id after recovery.
    pub head_id: BlockId,
    /// Bytes of a torn last write that recovery cut off.
    pub torn_bytes_dropped: u64,
}

/// Counters of a [`ChainRole`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// Blocks proposed and acknowledged (durable).
    pub proposed: u64,
    /// Blocks stored from peers.
    pub blocks_synced: u64,
    /// Sync sessions started.
    pub sessions_started: u64,
    /// Sessions that fetched everything their peer announced.
    pub sessions_done: u64,
    /// Sessions ended early (a peer's reorganisation, skew, a ban, no answer in time).
    pub sessions_aborted: u64,
    /// Requests answered.
    pub requests_served: u64,
    /// Requests dropped because the peer's queue was full.
    pub requests_dropped: u64,
    /// Replies ignored (no session, another session's id).
    pub replies_ignored: u64,
    /// Faults returned.
    pub faults: u64,
}

#[derive(Debug)]
struct Session {
    id: u64,
    sync: SyncSession,
    deadline_ms: u64,
}

/// The chain role of one node.
pub struct ChainRole {
    chain: Chain,
    log: Log,
    genesis_id: BlockId,
    key: SigningKey,
    rng: SeededRng,
    clock: LocalClock,
    next_announce_ms: u64,
    sessions: BTreeMap<NodeId, Session>,
    outbox: VecDeque<(NodeId, Vec<u8>)>,
    failed: Option<String>,
    stats: ChainStats,
}

impl std::fmt::Debug for ChainRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRole").field("head", &self.head()).field("stats", &self.stats).finish()
    }
}

impl ChainRole {
    /// Default rules with the swarm's future-timestamp tolerance (60 s).
    pub fn recommended_rules() -> ChainRules {
        ChainRules { future_drift_ms_max: RECOMMENDED_FUTURE_DRIFT_MS, ..ChainRules::default() }
    }

    /// Opens the log in `dir` on `disk` and rebuilds the chain from it. A storage error
    /// or a log that is not a chain is an `Err` with the reason.
    pub fn open(
        disk: Box<dyn Disk>,
        dir: &Path,
        genesis: Block,
        rules: ChainRules,
        key: SigningKey,
        rng: SeededRng,
        now_ms: u64,
    ) -> Result<(ChainRole, RecoveryInfo), String> {
        let (log, recovery) =
            Log::open_on(disk, dir, LogConfig::default()).map_err(|e| format!("opening the chain log: {e}"))?;
        if recovery.snapshot.is_some() {
            return Err("the chain log has a snapshot, which the chain role never writes".into());
        }
        let genesis_id = genesis.id();
        let chain = Chain::recover(genesis, rules, &recovery).map_err(|e| format!("recovering the chain: {e}"))?;
        let info = RecoveryInfo {
            blocks_recovered: recovery.records.len(),
            head_height: chain.tip_height(),
            head_id: chain.head().id(),
            torn_bytes_dropped: recovery.torn_tail.as_ref().map_or(0, |t| t.bytes_dropped),
        };
        let role = ChainRole {
            chain,
            log,
            genesis_id,
            key,
            rng,
            clock: LocalClock::new(now_ms),
            next_announce_ms: 0,
            sessions: BTreeMap::new(),
            outbox: VecDeque::new(),
            failed: None,
            stats: ChainStats::default(),
        };
        Ok((role, info))
    }

    /// Makes, signs, stores and persists a block on the current head; its id once it is
    /// durable. After a storage error every call fails.
    pub fn propose(&mut self, now_ms: u64, transactions: Vec<Vec<u8>>) -> Result<BlockId, String> {
        if let Some(reason) = &self.failed {
            return Err(format!("the chain refuses writes after a storage error: {reason}"));
        }
        self.clock.observe(now_ms);
        self.check_limits(&transactions)?;
        let parent = self.chain.head().header;
        // Never before the parent, whatever the local clock did (it may have jumped).
        let timestamp_ms = now_ms.max(parent.timestamp_ms);
        let block = Block::create(Some(&parent), transactions, timestamp_ms, &self.key);
        let id = block.id();
        self.chain.insert(block, timestamp_ms).map_err(|e| format!("own block refused: {e}"))?;
        self.persist()?;
        self.stats.proposed += 1;
        // Tell peers soon rather than at the next periodic announce.
        self.next_announce_ms = self.clock.elapsed_ms();
        Ok(id)
    }

    fn check_limits(&self, transactions: &[Vec<u8>]) -> Result<(), String> {
        let limits = self.chain.limits();
        let bytes: usize =
            transactions.iter().map(|t| 4 + t.len()).sum::<usize>() + 4 + crate::chain::block::HEADER_LEN;
        if transactions.len() > limits.transactions_max as usize
            || transactions.iter().any(|t| t.len() > limits.transaction_bytes_max as usize)
            || bytes > limits.block_bytes_max as usize
        {
            return Err(format!(
                "a block of {} transactions, {bytes} bytes exceeds the block limits",
                transactions.len()
            ));
        }
        Ok(())
    }

    fn persist(&mut self) -> Result<(), String> {
        if let Err(error) = self.chain.persist(&self.log) {
            let reason = error.to_string();
            self.failed = Some(reason.clone());
            self.sessions.clear();
            return Err(format!("persisting the chain: {reason}"));
        }
        Ok(())
    }

    /// The head: height and id.
    pub fn head(&self) -> (u64, BlockId) {
        (self.chain.tip_height(), self.chain.head().id())
    }

    /// The encoding of the main chain's block at `height` (genesis at 0), if any.
    pub fn block_at(&self, height: u64) -> Option<Vec<u8>> {
        self.chain.block_by_height(height).map(Block::to_bytes)
    }

    /// Whether block `id` is stored (on any branch).
    pub fn contains(&self, id: &BlockId) -> bool {
        self.chain.contains(id)
    }

    /// Walks the main chain from genesis to the head: the configured genesis at
    /// height 0, then every block linking to its parent with the right height, a
    /// timestamp not before its parent's, a valid signature by an allowed proposer and
    /// a transactions' Merkle root matching its header.
    pub fn verify_all(&self) -> Result<(), String> {
        let genesis = self.chain.block_by_height(0).ok_or("no genesis")?;
        if genesis.id() != self.genesis_id {
            return Err("height 0 is not the configured genesis".into());
        }
        let mut parent = genesis;
        for height in 1..=self.chain.tip_height() {
            let block = self.chain.block_by_height(height).ok_or(format!("no block at height {height}"))?;
            // `u64::MAX` as "now": the future-timestamp check is about arrival, not validity.
            validate_block(&parent.header, block, u64::MAX, self.chain.rules())
                .map_err(|e| format!("block at height {height}: {e}"))?;
            parent = block;
        }
        if parent.id() != self.chain.head().id() {
            return Err("the walk did not end at the head".into());
        }
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> ChainStats {
        self.stats
    }

    /// Whether a storage error stopped writes.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Blocks known, on every branch (genesis included).
    pub fn block_count(&self) -> usize {
        self.chain.len()
    }

    fn fault(&mut self, reason: String) -> Fault {
        self.stats.faults += 1;
        Fault(reason)
    }

    fn handle_announce(&mut self, from: NodeId, height: u64, id: BlockId) -> Result<(), Fault> {
        if height == 0 && id != self.genesis_id {
            return Err(self.fault("announced another genesis".into()));
        }
        let (my_height, my_id) = self.head();
        let better = height > my_height || (height == my_height && id < my_id);
        if better && !self.chain.contains(&id) {
            self.start_session(from);
        }
        Ok(())
    }

    fn start_session(&mut self, peer: NodeId) {
        if self.failed.is_some() || self.sessions.contains_key(&peer) || self.sessions.len() >= SESSIONS_MAX {
            return;
        }
        let mut sync = SyncSession::new(SYNC_CONFIG, vec![peer]);
        sync.start(&self.chain);
        let session = Session { id: self.rng.next_u64(), sync, deadline_ms: 0 };
        self.sessions.insert(peer, session);
        self.stats.sessions_started += 1;
        self.pump(peer);
    }

    /// Sends what the session toward `peer` wants sent and pushes its deadline back.
    fn pump(&mut self, peer: NodeId) {
        let deadline_ms = self.clock.elapsed_ms() + SESSION_TIMEOUT_MS;
        let Some(session) = self.sessions.get_mut(&peer) else { return };
        session.deadline_ms = deadline_ms;
        while let Some((to, message)) = session.sync.poll_transmit() {
            let envelope = ChainMessage::Request { session: session.id, message };
            self.outbox.push_back((to, envelope.to_bytes()));
        }
    }

    fn handle_request(&mut self, from: NodeId, session: u64, request: SyncMessage) -> Result<(), Fault> {
        let reply = match respond(&self.chain, &request) {
            Ok(reply) => reply,
            Err(offence) => return Err(self.fault(format!("chain request: {offence:?}"))),
        };
        // `None`: no common block (another genesis); the asker's session times out.
        let Some(message) = reply else { return Ok(()) };
        if self.outbox.iter().filter(|(to, _)| *to == from).count() >= OUTBOX_PER_PEER_MAX {
            self.stats.requests_dropped += 1;
            return Ok(());
        }
        self.outbox.push_back((from, ChainMessage::Reply { session, message }.to_bytes()));
        self.stats.requests_served += 1;
        Ok(())
    }

    fn handle_reply(&mut self, now_ms: u64, from: NodeId, session: u64, reply: SyncMessage) -> Result<(), Fault> {
        let Some(current) = self.sessions.get_mut(&from).filter(|s| s.id == session) else {
            self.stats.replies_ignored += 1;
            return Ok(());
        };
        let before = self.chain.len();
        current.sync.handle_message(&mut self.chain, now_ms, from, reply);
        let mut outcome = Outcome::Continue;
        while let Some(event) = current.sync.poll_event() {
            outcome = outcome.max(classify(&event));
        }
        let stored = self.chain.len() - before;
        self.stats.blocks_synced += stored as u64;
        if stored > 0 {
            // A failure is recorded in `failed`; the peer did nothing wrong.
            let _ = self.persist();
        }
        match outcome {
            Outcome::Continue if self.sessions.contains_key(&from) => self.pump(from),
            Outcome::Continue => {}
            Outcome::Done => {
                self.sessions.remove(&from);
                self.stats.sessions_done += 1;
            }
            Outcome::Abort => {
                self.sessions.remove(&from);
                self.stats.sessions_aborted += 1;
            }
            Outcome::Fault(reason) => {
                self.sessions.remove(&from);
                self.stats.sessions_aborted += 1;
                return Err(self.fault(reason));
            }
        }
        Ok(())
    }
}

/// What a session event means for the role, least to most severe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Continue,
    Done,
    Abort,
    Fault(String),
}

fn classify(event: &SyncEvent) -> Outcome {
    match event {
        SyncEvent::AncestorFound { .. } => Outcome::Continue,
        SyncEvent::Done { .. } => Outcome::Done,
        SyncEvent::Banned { .. } | SyncEvent::NoPeers => Outcome::Abort,
        SyncEvent::Misbehaved { offence, .. } => match offence {
            // The network duplicates frames: a second copy of a reply is "unsolicited".
            Misbehaviour::Unsolicited => Outcome::Continue,
            // The peer reorganised (or restarted with fewer blocks) between headers
            // and bodies; or our clock is behind the proposer's.
            Misbehaviour::WrongBlock
            | Misbehaviour::InvalidBlock(BlockError::TimestampInFuture | BlockError::UnknownParent { .. }) => {
                Outcome::Abort
            }
            Misbehaviour::Malformed(_)
            | Misbehaviour::LocatorTooLong
            | Misbehaviour::RequestTooLarge
            | Misbehaviour::HeadersDoNotConnect
            | Misbehaviour::InvalidBlock(_) => Outcome::Fault(format!("chain sync: {offence:?}")),
        },
    }
}

impl Role for ChainRole {
    fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) -> Result<(), Fault> {
        self.clock.observe(now_ms);
        let message = match ChainMessage::decode(bytes, &self.chain) {
            Ok(message) => message,
            Err(reason) => return Err(self.fault(reason)),
        };
        match message {
            ChainMessage::Announce { height, id } => self.handle_announce(from, height, id),
            ChainMessage::Request { session, message } => self.handle_request(from, session, message),
            ChainMessage::Reply { session, message } => self.handle_reply(now_ms, from, session, message),
        }
    }

    fn handle_timeout(&mut self, now_ms: u64, peers: &[NodeId]) {
        self.clock.observe(now_ms);
        let elapsed = self.clock.elapsed_ms();
        let before = self.sessions.len();
        self.sessions.retain(|peer, session| session.deadline_ms > elapsed && peers.contains(peer));
        self.stats.sessions_aborted += (before - self.sessions.len()) as u64;
        if elapsed < self.next_announce_ms {
            return;
        }
        let (height, id) = self.head();
        let announce = ChainMessage::Announce { height, id }.to_bytes();
        for &peer in peers {
            if self.outbox.iter().filter(|(to, _)| *to == peer).count() < OUTBOX_PER_PEER_MAX {
                self.outbox.push_back((peer, announce.clone()));
            }
        }
        self.next_announce_ms = elapsed + ANNOUNCE_INTERVAL_MS + self.rng.below(ANNOUNCE_JITTER_MS + 1);
    }

    fn handle_peer_down(&mut self, peer: NodeId) {
        if self.sessions.remove(&peer).is_some() {
            self.stats.sessions_aborted += 1;
        }
        self.outbox.retain(|(to, _)| *to != peer);
    }

    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        let session_deadline = self.sessions.values().map(|s| s.deadline_ms).min();
        let next = session_deadline.map_or(self.next_announce_ms, |d| d.min(self.next_announce_ms));
        Some(self.clock.local_deadline(next))
    }
}

const _: () = assert!(SYNC_CONFIG.blocks_per_request <= BLOCKS_PER_MESSAGE_MAX);

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::storage::{AppendFile, FsDisk, IoBackend};

    const BASE_MS: u64 = 1_700_000_000_000;

    /// A frame in flight: (delivery time, sequence number, to, from, bytes), earliest first.
    type Frame = Reverse<(u64, u64, usize, usize, Vec<u8>)>;

    fn genesis() -> Block {
        Block::create(None, vec![], 0, &SigningKey::from_bytes(&[0xAA; 32]))
    }

    fn key(i: usize) -> SigningKey {
        SigningKey::from_bytes(&[i as u8 + 1; 32])
    }

    fn id(i: usize) -> NodeId {
        NodeId(key(i).verifying_key().to_bytes())
    }

    /// A fresh directory under the system temp dir, named by test, seed and pid.
    fn temp_dir(name: &str, seed: u64) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bhsync-chain-role-{name}-{seed}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn open(dir: &Path, i: usize, seed: u64, now_ms: u64) -> (ChainRole, RecoveryInfo) {
        let rng = SeededRng::new(seed * 100 + i as u64);
        let node_dir = dir.join(format!("node{i}"));
        ChainRole::open(Box::new(FsDisk), &node_dir, genesis(), ChainRole::recommended_rules(), key(i), rng, now_ms)
            .unwrap_or_else(|e| panic!("seed {seed}: node {i} does not open: {e}"))
    }

    /// Roles on a full mesh; node `i`'s local clock is `true time + offsets[i]`.
    /// Messages take 1–30 ms (so they are reordered), 5 % are delivered twice, and
    /// while `partitioned` nothing is delivered.
    struct Cluster {
        seed: u64,
        dir: PathBuf,
        roles: Vec<ChainRole>,
        offsets: Vec<i64>,
        acknowledged: Vec<Vec<BlockId>>,
        queue: BinaryHeap<Frame>,
        rng: SeededRng,
        seq: u64,
        true_ms: u64,
        partitioned: bool,
    }

    impl Cluster {
        fn new(name: &str, seed: u64, n: usize) -> Self {
            let dir = temp_dir(name, seed);
            let mut rng = SeededRng::new(seed);
            let offsets: Vec<i64> = (0..n).map(|_| rng.below(6_001) as i64 - 3_000).collect();
            let roles = (0..n).map(|i| open(&dir, i, seed, BASE_MS.saturating_add_signed(offsets[i])).0).collect();
            let queue = BinaryHeap::new();
            let acknowledged = vec![Vec::new(); n];
            Self { seed, dir, roles, offsets, acknowledged, queue, rng, seq: 0, true_ms: BASE_MS, partitioned: false }
        }

        fn local(&self, i: usize) -> u64 {
            self.true_ms.saturating_add_signed(self.offsets[i])
        }

        /// Runs `ms` of true time; each node proposes with probability `propose_rate`
        /// per millisecond. Returns early once every head agrees if `until_agreed`.
        fn run(&mut self, ms: u64, propose_rate: f64, until_agreed: bool) -> bool {
            let n = self.roles.len();
            let peers: Vec<Vec<NodeId>> = (0..n).map(|i| (0..n).filter(|&j| j != i).map(id).collect()).collect();
            for _ in 0..ms {
                self.true_ms += 1;
                while self.queue.peek().is_some_and(|Reverse(m)| m.0 <= self.true_ms) {
                    let Reverse((_, _, to, from, bytes)) = self.queue.pop().expect("peeked");
                    let now = self.local(to);
                    let result = self.roles[to].handle_message(now, id(from), &bytes);
                    assert_eq!(result, Ok(()), "seed {}: node {to} refused an honest message from {from}", self.seed);
                }
                #[allow(clippy::needless_range_loop)] // `self` is borrowed again inside
                for i in 0..n {
                    let now = self.local(i);
                    if self.rng.chance(propose_rate) {
                        let transactions = vec![format!("tx {i} at {}", self.true_ms).into_bytes()];
                        let block = self.roles[i].propose(now, transactions);
                        let block = block.unwrap_or_else(|e| panic!("seed {}: node {i} propose: {e}", self.seed));
                        self.acknowledged[i].push(block);
                    }
                    if self.roles[i].poll_timeout().is_some_and(|t| t <= now) {
                        self.roles[i].handle_timeout(now, &peers[i]);
                    }
                    while let Some((to, bytes)) = self.roles[i].poll_transmit() {
                        if self.partitioned {
                            continue;
                        }
                        let to = (0..n).find(|&j| id(j) == to).expect("a cluster node");
                        let copies = if self.rng.chance(0.05) { 2 } else { 1 };
                        for _ in 0..copies {
                            let at = self.true_ms + 1 + self.rng.below(30);
                            self.seq += 1;
                            self.queue.push(Reverse((at, self.seq, to, i, bytes.clone())));
                        }
                    }
                }
                if until_agreed && self.agreed() {
                    return true;
                }
            }
            self.agreed()
        }

        fn agreed(&self) -> bool {
            self.roles.iter().all(|r| r.head() == self.roles[0].head())
        }
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn forks_converge_to_one_valid_head_and_acknowledged_blocks_survive_a_restart() {
        for seed in 1..=3 {
            let mut cluster = Cluster::new("converge", seed, 4);
            // Partitioned: every node grows its own branch.
            cluster.partitioned = true;
            cluster.run(1_500, 0.003, false);
            let forks: Vec<(u64, BlockId)> = cluster.roles.iter().map(ChainRole::head).collect();
            assert!(forks.iter().any(|h| *h != forks[0]), "seed {seed}: forks formed {forks:?}");
            // Healed, still proposing, then quiet until the heads agree.
            cluster.partitioned = false;
            cluster.run(1_000, 0.002, false);
            // Local clocks jump by seconds, both ways.
            cluster.offsets[1] -= 4_000;
            cluster.offsets[2] += 4_000;
            cluster.run(1_000, 0.002, false);
            let agreed = cluster.run(20_000, 0.0, true);
            let heads: Vec<(u64, BlockId)> = cluster.roles.iter().map(ChainRole::head).collect();
            assert!(agreed, "seed {seed}: heads differ after healing: {heads:?}");
            for (i, role) in cluster.roles.iter().enumerate() {
                role.verify_all().unwrap_or_else(|e| panic!("seed {seed}: node {i}: {e}"));
                assert!(
                    role.stats().faults == 0 && role.failed().is_none(),
                    "seed {seed}: node {i} {:?}",
                    role.stats()
                );
            }
            assert!(cluster.roles.iter().any(|r| r.stats().blocks_synced > 0), "seed {seed}: something was synced");
            // Restart every node from its directory.
            for i in 0..cluster.roles.len() {
                let head = cluster.roles[i].head();
                let now = cluster.local(i);
                drop(cluster.roles.remove(i)); // releases the directory lock
                let (reopened, info) = open(&cluster.dir, i, seed + 1_000, now);
                assert_eq!((info.head_height, info.head_id), head, "seed {seed}: node {i} recovery info");
                cluster.roles.insert(i, reopened);
                let reopened = &cluster.roles[i];
                assert_eq!(reopened.head(), head, "seed {seed}: node {i} recovered another head");
                for block in &cluster.acknowledged[i] {
                    assert!(reopened.contains(block), "seed {seed}: node {i} lost an acknowledged block");
                }
                reopened.verify_all().unwrap_or_else(|e| panic!("seed {seed}: node {i} after restart: {e}"));
            }
        }
    }

    #[test]
    fn equal_heights_settle_on_the_lowest_id() {
        let seed = 11;
        let mut cluster = Cluster::new("tie", seed, 3);
        cluster.partitioned = true;
        let mut ids = Vec::new();
        for i in 0..3 {
            let now = cluster.local(i);
            ids.push(cluster.roles[i].propose(now, vec![vec![i as u8]]).unwrap());
        }
        cluster.run(10, 0.0, false);
        cluster.partitioned = false;
        assert!(cluster.run(10_000, 0.0, true), "seed {seed}: the heads agree");
        let lowest = *ids.iter().min().unwrap();
        for role in &cluster.roles {
            assert_eq!(role.head(), (1, lowest), "seed {seed}: fork choice picks the lowest id at equal height");
        }
    }

    /// A role at genesis, and a peer handle to play a (malicious) node by hand.
    fn lone_role(name: &str, seed: u64) -> (ChainRole, PathBuf) {
        let dir = temp_dir(name, seed);
        let (role, info) = open(&dir, 0, seed, BASE_MS);
        assert_eq!((info.blocks_recovered, info.head_height), (0, 0));
        (role, dir)
    }

    fn sent(role: &mut ChainRole) -> Vec<ChainMessage> {
        let chain = Chain::new(genesis(), ChainRules::default());
        std::iter::from_fn(|| role.poll_transmit())
            .map(|(_, bytes)| ChainMessage::decode(&bytes, &chain).unwrap())
            .collect()
    }

    #[test]
    fn a_peer_serving_a_block_with_a_bad_signature_is_a_fault() {
        let (mut role, dir) = lone_role("bad-signature", 1);
        let liar = id(9);
        let mut block = Block::create(Some(&genesis().header), vec![b"tx".to_vec()], BASE_MS, &key(9));
        block.header.signature[3] ^= 1; // the id does not cover the signature
        let announce = ChainMessage::Announce { height: 1, id: block.id() }.to_bytes();
        assert_eq!(role.handle_message(BASE_MS, liar, &announce), Ok(()));
        let [ChainMessage::Request { session, message: SyncMessage::GetHeaders { .. } }] = sent(&mut role)[..] else {
            panic!("a GetHeaders")
        };
        let headers = SyncMessage::Headers {
            ancestor_height: 0,
            ancestor_id: genesis().id(),
            tip_height: 1,
            headers: vec![block.header],
        };
        let reply = ChainMessage::Reply { session, message: headers }.to_bytes();
        assert_eq!(role.handle_message(BASE_MS + 5, liar, &reply), Ok(()));
        assert!(matches!(
            sent(&mut role)[..],
            [ChainMessage::Request { message: SyncMessage::GetBlocks { from: 1, count: 1 }, .. }]
        ));
        let blocks =
            ChainMessage::Reply { session, message: SyncMessage::Blocks { from: 1, blocks: vec![block.clone()] } };
        let fault = role.handle_message(BASE_MS + 10, liar, &blocks.to_bytes());
        assert!(fault.as_ref().is_err_and(|f| f.0.contains("BadSignature")), "{fault:?}");
        assert!(!role.contains(&block.id()));
        assert_eq!(role.head().0, 0);
        drop(role);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn malformed_and_oversized_messages_are_faults_and_replays_are_not() {
        let (mut role, dir) = lone_role("malformed", 2);
        let peer = id(5);
        let now = BASE_MS;
        assert!(role.handle_message(now, peer, &[]).is_err());
        assert!(role.handle_message(now, peer, &[7, 1, 2]).is_err());
        assert!(role.handle_message(now, peer, &[ANNOUNCE; 40]).is_err());
        let long = SyncMessage::GetHeaders { locator: vec![[1; 32]; 65], headers_max: 10 };
        assert!(role
            .handle_message(now, peer, &ChainMessage::Request { session: 1, message: long }.to_bytes())
            .is_err());
        let big = SyncMessage::GetBlocks { from: 0, count: BLOCKS_PER_MESSAGE_MAX + 1 };
        assert!(role
            .handle_message(now, peer, &ChainMessage::Request { session: 1, message: big }.to_bytes())
            .is_err());
        let swapped = ChainMessage::Request { session: 1, message: SyncMessage::Blocks { from: 0, blocks: vec![] } };
        assert!(role.handle_message(now, peer, &swapped.to_bytes()).is_err());
        let other_genesis = ChainMessage::Announce { height: 0, id: [0; 32] };
        assert!(role.handle_message(now, peer, &other_genesis.to_bytes()).is_err());
        // A reply to no session (a replay of an old one) is ignored.
        let stale = ChainMessage::Reply { session: 77, message: SyncMessage::Blocks { from: 1, blocks: vec![] } };
        assert_eq!(role.handle_message(now, peer, &stale.to_bytes()), Ok(()));
        assert_eq!(role.handle_message(now, peer, &stale.to_bytes()), Ok(()));
        assert_eq!(role.stats().replies_ignored, 2);
        // Requests are served, and the same request twice is served twice.
        let request = ChainMessage::Request { session: 3, message: SyncMessage::GetBlocks { from: 0, count: 2 } };
        assert_eq!(role.handle_message(now, peer, &request.to_bytes()), Ok(()));
        assert_eq!(role.handle_message(now, peer, &request.to_bytes()), Ok(()));
        let replies = sent(&mut role);
        assert_eq!(replies.len(), 2);
        assert!(
            matches!(&replies[0], ChainMessage::Reply { session: 3, message: SyncMessage::Blocks { blocks, .. } } if blocks.len() == 1)
        );
        assert_eq!(role.stats().faults, 7);
        drop(role);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn timestamps_never_precede_the_parent_when_the_clock_jumps_back() {
        let (mut role, dir) = lone_role("clock-jump", 3);
        let first = role.propose(BASE_MS, vec![b"a".to_vec()]).unwrap();
        let second = role.propose(BASE_MS - 5_000, vec![b"b".to_vec()]).unwrap();
        assert_ne!(first, second);
        assert_eq!(role.head(), (2, second));
        role.verify_all().unwrap();
        assert!(role.propose(BASE_MS, vec![vec![0; 70 << 10]]).is_err(), "a transaction over 64 KiB");
        assert!(role.failed().is_none(), "an oversized block is not a storage failure");
        drop(role);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mutated_messages_never_panic_the_role_and_what_a_peer_can_queue_is_bounded() {
        let seed = 21;
        let (mut role, dir) = lone_role("mutated", seed);
        for i in 0..5 {
            role.propose(BASE_MS + i, vec![vec![i as u8; 10]]).unwrap();
        }
        let mut rng = SeededRng::new(seed);
        let block = role.chain.block_by_height(3).unwrap().clone();
        let (height, head) = role.head();
        let valid = [
            ChainMessage::Announce { height: height + 1, id: [7; 32] },
            ChainMessage::Announce { height, id: head },
            ChainMessage::Request {
                session: 1,
                message: SyncMessage::GetHeaders { locator: vec![head, genesis().id()], headers_max: 100 },
            },
            ChainMessage::Request { session: 2, message: SyncMessage::GetBlocks { from: 1, count: 4 } },
            ChainMessage::Reply {
                session: 3,
                message: SyncMessage::Headers {
                    ancestor_height: 0,
                    ancestor_id: genesis().id(),
                    tip_height: 9,
                    headers: vec![block.header],
                },
            },
            ChainMessage::Reply { session: 4, message: SyncMessage::Blocks { from: 3, blocks: vec![block] } },
        ];
        let peers = [id(1), id(2), id(3)];
        for round in 0..3_000u64 {
            let mut bytes = valid[rng.index(valid.len())].to_bytes();
            match rng.below(4) {
                0 => {}
                1 => bytes.truncate(rng.index(bytes.len() + 1)),
                2 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.index(bytes.len());
                        bytes[at] ^= 1 << rng.below(8);
                    }
                }
                _ => bytes.extend((0..rng.below(40)).map(|_| rng.below(256) as u8)),
            }
            let peer = peers[rng.index(peers.len())];
            let now = BASE_MS + round;
            let _ = role.handle_message(now, peer, &bytes);
            if round % 7 == 0 {
                role.handle_timeout(now, &peers);
            }
            if round % 500 == 499 {
                // A slow node: the queue toward each peer stays bounded meanwhile.
                for peer in peers {
                    let queued = role.outbox.iter().filter(|(to, _)| *to == peer).count();
                    assert!(queued <= OUTBOX_PER_PEER_MAX + SESSIONS_MAX * 4, "seed {seed}: {queued} queued");
                }
                role.outbox.clear();
            }
            assert!(role.sessions.len() <= SESSIONS_MAX);
        }
        role.verify_all().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(role.head().0, 5, "seed {seed}: nothing forged was stored");
        let stats = role.stats();
        assert!(
            stats.faults > 500 && stats.requests_served > 300 && stats.sessions_started > 0,
            "seed {seed}: {stats:?}"
        );
        drop(role);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// [`FsDisk`] whose appends fail once `broken` is set (a full disk).
    struct BreakableDisk {
        broken: Arc<AtomicBool>,
    }

    struct BreakableFile {
        inner: Box<dyn AppendFile>,
        broken: Arc<AtomicBool>,
    }

    impl AppendFile for BreakableFile {
        fn len(&self) -> u64 {
            self.inner.len()
        }
        fn append_durable(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("disk full (test)"));
            }
            self.inner.append_durable(bytes)
        }
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.inner.truncate(len)
        }
        fn backend(&self) -> IoBackend {
            self.inner.backend()
        }
    }

    impl Disk for BreakableDisk {
        fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            FsDisk.create_dir_all(dir)
        }
        fn lock(&self, path: &Path) -> std::io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
            FsDisk.lock(path)
        }
        fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
            FsDisk.list(dir)
        }
        fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
            FsDisk.read(path)
        }
        fn open_append(&self, path: &Path, backend: IoBackend) -> std::io::Result<Box<dyn AppendFile>> {
            Ok(Box::new(BreakableFile { inner: FsDisk.open_append(path, backend)?, broken: self.broken.clone() }))
        }
        fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
            FsDisk.truncate(path, len)
        }
        fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
            FsDisk.write_atomic(path, bytes)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            FsDisk.remove(path)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            FsDisk.sync_dir(dir)
        }
    }

    #[test]
    fn a_storage_error_refuses_further_writes_and_a_restart_keeps_the_acknowledged() {
        let dir = temp_dir("storage-error", 4);
        let broken = Arc::new(AtomicBool::new(false));
        let disk = Box::new(BreakableDisk { broken: broken.clone() });
        let rules = ChainRole::recommended_rules();
        let (mut role, _) =
            ChainRole::open(disk, &dir, genesis(), rules.clone(), key(0), SeededRng::new(4), BASE_MS).unwrap();
        let kept = role.propose(BASE_MS, vec![b"kept".to_vec()]).unwrap();
        broken.store(true, Ordering::SeqCst);
        assert!(role.propose(BASE_MS + 1, vec![b"lost".to_vec()]).is_err());
        assert!(role.failed().is_some());
        broken.store(false, Ordering::SeqCst);
        assert!(role.propose(BASE_MS + 2, vec![b"refused".to_vec()]).is_err(), "no write after a failure");
        drop(role);
        let (reopened, info) =
            ChainRole::open(Box::new(FsDisk), &dir, genesis(), rules, key(0), SeededRng::new(5), BASE_MS).unwrap();
        assert_eq!((info.blocks_recovered, info.head_height, info.head_id), (1, 1, kept));
        assert!(reopened.contains(&kept));
        drop(reopened);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Found while writing this role (fixed in src/chain/sync.rs): a [`SyncSession`]
    /// with several peers fetches bodies by height from all of them, but `GetBlocks`
    /// serves the responder's *main chain* by height. A peer whose main chain is another
    /// branch answered honestly with its own blocks and was scored `WrongBlock` (banned
    /// after five batches). Now only the header peer, or an unsigned block, is scored.
    #[test]
    fn regression_multi_peer_sync_scores_an_honest_peer_on_another_branch() {
        let branch = |seed: usize| {
            let mut chain = Chain::new(genesis(), ChainRules::default());
            for _ in 0..40 {
                let parent = chain.head().header;
                let block = Block::create(Some(&parent), vec![vec![seed as u8]], parent.timestamp_ms + 1, &key(seed));
                chain.insert(block, BASE_MS).unwrap();
            }
            chain
        };
        let (a, b) = (branch(1), branch(2));
        let (peer_a, peer_b) = (id(1), id(2));
        let mut local = Chain::new(genesis(), ChainRules::default());
        let config = SyncConfig { blocks_per_request: 8, ..SyncConfig::default() };
        let mut session = SyncSession::new(config, vec![peer_a, peer_b]);
        session.start(&local);
        let mut rounds = 0;
        while let Some((to, request)) = session.poll_transmit() {
            rounds += 1;
            assert!(rounds < 1_000, "a loop");
            let store = if to == peer_a { &a } else { &b };
            if let Ok(Some(reply)) = respond(store, &request) {
                session.handle_message(&mut local, BASE_MS, to, reply);
            }
        }
        assert_eq!(local.head().id(), a.head().id(), "the sync itself completes from the header peer");
        assert_eq!(session.scores().score(&peer_b), 0, "peer B only served its own main chain, as asked");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let chain = Chain::new(genesis(), ChainRules::default());
            if let Ok(message) = ChainMessage::decode(&bytes, &chain) {
                prop_assert_eq!(message.to_bytes(), bytes);
            }
        }
    }
}
