//! A whole simulated node: the node core the engine runs (eventual and strong
//! categories), its durability on a simulated disk (the same record and snapshot
//! codec and the same recovery as `Node::open`), SWIM membership deciding which peers
//! the core holds sessions with, the chain and network time as roles, all behind one
//! [`Process`] so the simulator drives it like any other protocol.
//!
//! What the engine does around the core is done here the way the engine does it: a
//! local write is acknowledged only once its record is durable; a peer that sends
//! anything invalid is disconnected (here: for the rest of the run) and counted; a
//! storage error stops the node (fail-stop), and the swarm restarts it from its disk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use super::byzantine::Liar;
use super::chain_role::ChainRole;
use super::envelope::{self, Boots, Channel};
use super::role::Role;
use super::time_role::{TimeConfig, TimeRole};
use crate::consensus::{StrongAnswer, Ticket};
use crate::membership::{MembershipEvent, Swim, SwimConfig};
use crate::node::{durable, CoreConfig, NodeCore, NodeError};
use crate::sim::{Process, SimRng};
use crate::state::{Entry, NodeId, Version};
use crate::storage::{Disk, Log, LogConfig, StorageError};

/// Local snapshots of the whole state, so entries learnt from peers survive a crash.
const SNAPSHOT_EVERY_MS: u64 = 2_000;

/// What a swarm node reports to the harness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwarmEvent {
    /// A strong request finished.
    Strong {
        /// The ticket `strong_put`/`strong_read` returned.
        ticket: Ticket,
        /// Its answer.
        result: Result<StrongAnswer, NodeError>,
    },
    /// The node stopped on a storage error (fail-stop); the harness restarts it.
    Stopped(String),
    /// This node disconnected `peer` for misbehaviour.
    Banned {
        /// The peer.
        peer: NodeId,
        /// What it sent.
        reason: String,
    },
}

/// Why a host command was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// Refused before anything changed.
    Refused(String),
    /// Applied in memory, but not made durable (the node stopped): the write may
    /// spread or vanish; it was not acknowledged.
    NotDurable(String),
}

/// What a node's chain starts from: the genesis every node shares, the rules, and
/// the node's own signing key.
pub struct ChainSetup {
    /// The shared genesis block.
    pub genesis: crate::chain::Block,
    /// Validation rules.
    pub rules: crate::chain::ChainRules,
    /// This node's proposer key.
    pub key: ed25519_dalek::SigningKey,
}

impl ChainSetup {
    /// The swarm's chain for node `index`: one genesis, a key derived from the index.
    pub fn swarm(index: u32) -> ChainSetup {
        let genesis = crate::chain::Block::create(None, Vec::new(), 0, &ed25519_dalek::SigningKey::from_bytes(&[0xAA; 32]));
        let mut secret = [0x5Au8; 32];
        secret[..4].copy_from_slice(&index.to_le_bytes());
        ChainSetup { genesis, rules: ChainRole::recommended_rules(), key: ed25519_dalek::SigningKey::from_bytes(&secret) }
    }
}

/// Why a node could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Its storage is damaged beyond a torn tail (detected corruption): an operator
    /// wipes the directory and the node rejoins empty.
    Corrupt(String),
    /// An IO error that may pass (a read fault): try again later.
    Transient(String),
}

/// Everything a node needs to start.
pub struct NodeSetup<'a> {
    /// Its index in the cluster (its directory and id).
    pub index: u32,
    /// Every member's id.
    pub members: &'a [NodeId],
    /// The core's configuration.
    pub core: CoreConfig,
    /// Whether the chain runs.
    pub chain: Option<ChainSetup>,
    /// Its boot number (0 at the first start, then one more per restart).
    pub boot: u32,
    /// The data disk (log, snapshots, chain).
    pub disk: Box<dyn Fn() -> Box<dyn Disk>>,
    /// The disk of its Raft journals.
    pub raft_disk: Box<dyn Fn() -> Box<dyn Disk>>,
    /// Whether it lies.
    pub liar: Option<Liar>,
}

/// Counters of one node's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Peers this node disconnected.
    pub bans: u64,
    /// Frames dropped because they came from a peer's earlier boot.
    pub stale_boot_frames: u64,
    /// Sessions reset because a peer restarted.
    pub session_resets: u64,
}

/// One simulated node.
pub struct SwarmNode {
    me: NodeId,
    boot: u32,
    core: NodeCore,
    log: Log,
    swim: Swim,
    chain: Option<ChainRole>,
    time: TimeRole,
    /// The newest boot seen from each peer.
    peer_boots: BTreeMap<NodeId, u32>,
    /// Peers the core holds a session with.
    sessions: BTreeSet<NodeId>,
    banned: BTreeSet<NodeId>,
    outbox: VecDeque<(NodeId, Vec<u8>)>,
    events: VecDeque<SwarmEvent>,
    liar: Option<Liar>,
    stopped: Option<String>,
    next_snapshot_ms: u64,
    counters: NodeCounters,
}

/// The directory of node `index` on its disks.
pub fn node_dir(index: u32) -> PathBuf {
    PathBuf::from(format!("/node-{index}"))
}

impl SwarmNode {
    /// Starts a node from what its disks hold.
    pub fn open(setup: NodeSetup<'_>, now_ms: u64, mut rng: SimRng) -> Result<SwarmNode, OpenError> {
        let me = setup.members[setup.index as usize];
        let dir = node_dir(setup.index);
        let (log, recovery) = Log::open_on((setup.disk)(), &dir.join("data"), LogConfig::default()).map_err(open_error)?;
        let mut core = NodeCore::new(setup.core, me, rng.fork(), now_ms).map_err(|e| OpenError::Corrupt(e.to_string()))?;
        durable::replay(&recovery, &mut core, now_ms).map_err(|e| OpenError::Corrupt(e.to_string()))?;
        core.attach_strong_journals(now_ms, |category| {
            let journal_dir = crate::consensus::strong::journal_dir(&dir, category);
            crate::consensus::strong::open_log_journal_on((setup.raft_disk)(), &journal_dir)
        })
        .map_err(|e| classify(e.to_string()))?;
        let chain = match setup.chain {
            Some(chain) => {
                let chain_dir = dir.join("chain");
                let (role, _) =
                    ChainRole::open((setup.disk)(), &chain_dir, chain.genesis, chain.rules, chain.key, rng.fork(), now_ms)
                        .map_err(classify)?;
                Some(role)
            }
            None => None,
        };
        // SWIM needs a higher incarnation after every restart.
        let incarnation = u64::from(setup.boot) << 32;
        let swim = Swim::new(SwimConfig::default(), me, incarnation, rng.fork(), setup.members, now_ms);
        let time = TimeRole::new(me, TimeConfig::default(), rng.fork(), now_ms);
        let mut node = SwarmNode {
            me,
            boot: setup.boot,
            core,
            log,
            swim,
            chain,
            time,
            peer_boots: BTreeMap::new(),
            sessions: BTreeSet::new(),
            banned: BTreeSet::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            liar: setup.liar,
            stopped: None,
            next_snapshot_ms: now_ms + SNAPSHOT_EVERY_MS,
            counters: NodeCounters::default(),
        };
        for &peer in setup.members.iter().filter(|&&peer| peer != me) {
            node.session_up(now_ms, peer);
        }
        node.pump(now_ms);
        Ok(node)
    }

    // Getters.

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }
    /// The node core (state, strong groups, counters).
    pub fn core(&self) -> &NodeCore {
        &self.core
    }
    /// The chain, when it runs.
    pub fn chain(&self) -> Option<&ChainRole> {
        self.chain.as_ref()
    }
    /// Network time.
    pub fn time(&mut self) -> &mut TimeRole {
        &mut self.time
    }
    /// Network time at local clock reading `local_ms` (without the monotonic clamp).
    pub fn network_ms(&self, local_ms: u64) -> u64 {
        self.time.network_ms(local_ms)
    }
    /// Membership.
    pub fn swim(&self) -> &Swim {
        &self.swim
    }
    /// Why the node stopped, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
    /// Peers the core holds a session with.
    pub fn sessions(&self) -> &BTreeSet<NodeId> {
        &self.sessions
    }
    /// Peers this node disconnected for misbehaviour.
    pub fn banned(&self) -> &BTreeSet<NodeId> {
        &self.banned
    }
    /// Counters.
    pub fn counters(&self) -> NodeCounters {
        self.counters
    }
    /// The lies told, if this node lies.
    pub fn liar_stats(&self) -> Option<super::byzantine::LiarStats> {
        self.liar.as_ref().map(Liar::stats)
    }

    /// Frames waiting to leave.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }
    /// The stored version of a key, tombstones included.
    pub fn stored(&self, category: &str, key: &[u8]) -> Option<Entry> {
        self.core.stored(category, key)
    }

    // Host commands: the harness calls them, then flushes the node.

    /// A put, acknowledged once durable.
    pub fn put(&mut self, now_ms: u64, category: &str, key: &[u8], value: &[u8]) -> Result<Version, HostError> {
        self.usable()?;
        let version = self.core.put(now_ms, category, key, value).map_err(refused)?;
        self.make_durable(category, key)?;
        Ok(version)
    }

    /// A delete (a tombstone), acknowledged once durable; the tombstone's version, or
    /// `None` when there was nothing to delete.
    pub fn delete(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<Option<Version>, HostError> {
        self.usable()?;
        if !self.core.delete(now_ms, category, key).map_err(refused)? {
            return Ok(None);
        }
        self.make_durable(category, key)?;
        Ok(self.core.stored(category, key).map(|entry| entry.version))
    }

    /// A counter increment, acknowledged once durable; the counter's new version.
    pub fn counter_add(&mut self, now_ms: u64, category: &str, key: &[u8], delta: i64) -> Result<Version, HostError> {
        self.usable()?;
        self.core.counter_add(now_ms, category, key, delta).map_err(refused)?;
        self.make_durable(category, key)?;
        self.core.stored(category, key).map(|entry| entry.version).ok_or_else(|| refused("the counter vanished"))
    }

    /// Starts a strong write; the answer comes as a [`SwarmEvent::Strong`].
    pub fn strong_put(&mut self, now_ms: u64, category: &str, key: &[u8], value: &[u8]) -> Result<Ticket, NodeError> {
        self.usable().map_err(|e| NodeError::Io(format!("{e:?}")))?;
        self.core.strong_put(now_ms, category, key, value)
    }

    /// Starts a linearizable read; the answer comes as a [`SwarmEvent::Strong`].
    pub fn strong_read(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<Ticket, NodeError> {
        self.usable().map_err(|e| NodeError::Io(format!("{e:?}")))?;
        self.core.strong_read(now_ms, category, key)
    }

    /// Proposes a chain block, acknowledged once durable.
    pub fn propose_block(
        &mut self,
        now_ms: u64,
        transactions: Vec<Vec<u8>>,
    ) -> Result<crate::chain::BlockId, HostError> {
        self.usable()?;
        let chain = self.chain.as_mut().ok_or_else(|| refused("no chain here"))?;
        let result = chain.propose(now_ms, transactions);
        result.map_err(|why| {
            self.stop(format!("chain: {why}"));
            HostError::NotDurable(why)
        })
    }

    fn usable(&self) -> Result<(), HostError> {
        match &self.stopped {
            Some(why) => Err(refused(format!("stopped: {why}"))),
            None => Ok(()),
        }
    }

    /// Appends the stored version of `key` to the log; on failure the node stops.
    fn make_durable(&mut self, category: &str, key: &[u8]) -> Result<(), HostError> {
        let entry = self.core.stored(category, key).ok_or_else(|| refused("the written entry vanished"))?;
        let record = durable::encode_record(category, &entry);
        if let Err(error) = self.log.append(&record) {
            let why = format!("log append: {error}");
            self.stop(why.clone());
            return Err(HostError::NotDurable(why));
        }
        Ok(())
    }

    fn stop(&mut self, why: String) {
        if self.stopped.is_none() {
            self.stopped = Some(why.clone());
            self.events.push_back(SwarmEvent::Stopped(why));
        }
    }

    // Sessions.

    fn session_up(&mut self, now_ms: u64, peer: NodeId) {
        if !self.banned.contains(&peer) && self.sessions.insert(peer) {
            self.core.handle_peer_up(now_ms, peer);
        }
    }

    fn session_down(&mut self, now_ms: u64, peer: NodeId) {
        if self.sessions.remove(&peer) {
            self.core.handle_peer_down(now_ms, peer);
            if let Some(chain) = &mut self.chain {
                chain.handle_peer_down(peer);
            }
            self.time.handle_peer_down(peer);
        }
    }

    fn ban(&mut self, now_ms: u64, peer: NodeId, reason: String) {
        if self.banned.insert(peer) {
            self.counters.bans += 1;
            self.session_down(now_ms, peer);
            self.events.push_back(SwarmEvent::Banned { peer, reason });
        }
    }

    /// Checks a frame's boot against the newest seen from `from`: `false` drops it.
    fn admit_boot(&mut self, now_ms: u64, from: NodeId, boot: u32) -> bool {
        match self.peer_boots.get(&from).copied() {
            Some(known) if boot < known => {
                self.counters.stale_boot_frames += 1;
                false
            }
            Some(known) if boot > known => {
                // The peer restarted: its old connection is gone, a new one is up.
                self.peer_boots.insert(from, boot);
                self.counters.session_resets += 1;
                if self.sessions.contains(&from) {
                    self.session_down(now_ms, from);
                    self.session_up(now_ms, from);
                }
                true
            }
            Some(_) => true,
            None => {
                self.peer_boots.insert(from, boot);
                true
            }
        }
    }

    fn dispatch(&mut self, now_ms: u64, from: NodeId, channel: Channel, payload: &[u8]) -> Result<(), String> {
        match channel {
            Channel::Core => {
                if !self.sessions.contains(&from) {
                    return Ok(()); // No session: the engine would not have read it.
                }
                self.core.handle_message(now_ms, from, payload).map_err(|fault| format!("core: {fault:?}"))
            }
            Channel::Membership => {
                let rejected = self.swim.stats().frames_rejected;
                self.swim.handle_message(now_ms, from, payload);
                if self.swim.stats().frames_rejected > rejected {
                    return Err("membership: a frame that does not decode".into());
                }
                Ok(())
            }
            Channel::Chain => match &mut self.chain {
                Some(chain) => chain.handle_message(now_ms, from, payload).map_err(|fault| format!("chain: {}", fault.0)),
                None => Err("chain: a chain frame to a node without a chain".into()),
            },
            Channel::Time => self.time.handle_message(now_ms, from, payload).map_err(|fault| format!("time: {}", fault.0)),
        }
    }

    // Output.

    /// Moves every role's output into the outbox and the events, and follows
    /// membership's verdicts with the core's sessions.
    fn pump(&mut self, now_ms: u64) {
        while let Some(event) = self.swim.poll_event() {
            match event {
                MembershipEvent::MemberUp(peer) => self.session_up(now_ms, peer),
                MembershipEvent::MemberDead(peer) | MembershipEvent::MemberLeft(peer) => self.session_down(now_ms, peer),
                _ => {}
            }
        }
        while let Some((_category, ticket, result)) = self.core.poll_strong_outcome() {
            self.events.push_back(SwarmEvent::Strong { ticket, result });
        }
        while self.core.poll_event().is_some() {}
        while let Some(transmit) = self.core.poll_transmit() {
            self.send(Channel::Core, transmit.to, transmit.bytes);
        }
        while let Some((to, bytes)) = self.swim.poll_transmit() {
            self.send(Channel::Membership, to, bytes);
        }
        if let Some(chain) = &mut self.chain {
            let mut frames = Vec::new();
            while let Some(frame) = chain.poll_transmit() {
                frames.push(frame);
            }
            for (to, bytes) in frames {
                self.send(Channel::Chain, to, bytes);
            }
        }
        while let Some((to, bytes)) = self.time.poll_transmit() {
            self.send(Channel::Time, to, bytes);
        }
        if let Some(why) = self.core.strong_failure() {
            self.stop(format!("raft journal: {why}"));
        }
        if let Some(why) = self.chain.as_ref().and_then(ChainRole::failed) {
            self.stop(format!("chain log: {why}"));
        }
    }

    fn send(&mut self, channel: Channel, to: NodeId, payload: Vec<u8>) {
        if self.banned.contains(&to) {
            return;
        }
        let payload = match &mut self.liar {
            Some(liar) => match liar.corrupt(channel, to, payload) {
                Some(payload) => payload,
                None => return,
            },
            None => payload,
        };
        let boots = self.boots_to(to);
        self.outbox.push_back((to, envelope::seal(channel, boots, &payload)));
    }

    fn boots_to(&self, to: NodeId) -> Boots {
        Boots { from: self.boot, to: self.peer_boots.get(&to).copied().unwrap_or(envelope::ANY_BOOT) }
    }

    fn snapshot_if_due(&mut self, now_ms: u64) {
        if now_ms < self.next_snapshot_ms {
            return;
        }
        self.next_snapshot_ms = now_ms + SNAPSHOT_EVERY_MS;
        // Records up to the head are applied: the state includes them.
        let (through, _) = self.log.head();
        if let Err(error) = self.log.write_snapshot(through, &durable::snapshot_of(&self.core)) {
            self.stop(format!("snapshot: {error}"));
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        self.sessions.iter().copied().collect()
    }
}

impl Process for SwarmNode {
    type Event = SwarmEvent;

    fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) {
        if self.stopped.is_some() || self.banned.contains(&from) {
            return;
        }
        let Some((channel, boots, payload)) = envelope::open(bytes) else {
            return self.ban(now_ms, from, "a frame without an envelope".into());
        };
        if !self.admit_boot(now_ms, from, boots.from) {
            return;
        }
        if boots.to != self.boot && boots.to != envelope::ANY_BOOT {
            // Addressed to an earlier incarnation of this node: its connection is gone. (The
            // sender's boot is learnt first, or two nodes that each hold a stale boot of
            // the other would drop each other's frames for ever: found by seed 362.)
            self.counters.stale_boot_frames += 1;
            return self.pump(now_ms);
        }
        if let Err(reason) = self.dispatch(now_ms, from, channel, payload) {
            self.ban(now_ms, from, reason);
        }
        self.pump(now_ms);
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        if self.stopped.is_some() {
            return;
        }
        if self.core.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.core.handle_timeout(now_ms);
        }
        if self.swim.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.swim.handle_timeout(now_ms);
        }
        let peers = self.peers();
        if let Some(chain) = &mut self.chain {
            if chain.poll_timeout().is_some_and(|at| at <= now_ms) {
                chain.handle_timeout(now_ms, &peers);
            }
        }
        if self.time.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.time.handle_timeout(now_ms, &peers);
        }
        if let Some(liar) = &mut self.liar {
            let lies = liar.lies(now_ms, &peers);
            for (channel, to, payload) in lies {
                // A liar dials afresh when it must: its lies reach any incarnation.
                let boots = Boots { from: self.boot, to: envelope::ANY_BOOT };
                self.outbox.push_back((to, envelope::seal(channel, boots, &payload)));
            }
        }
        self.snapshot_if_due(now_ms);
        self.pump(now_ms);
    }

    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        if self.stopped.is_some() {
            return None;
        }
        let chain = self.chain.as_ref().and_then(Role::poll_timeout);
        let liar = self.liar.as_ref().map(Liar::next_lie_ms);
        [self.core.poll_timeout(), self.swim.poll_timeout(), chain, self.time.poll_timeout(), liar, Some(self.next_snapshot_ms)]
            .into_iter()
            .flatten()
            .min()
    }

    fn poll_event(&mut self) -> Option<SwarmEvent> {
        self.events.pop_front()
    }
}

fn refused(why: impl ToString) -> HostError {
    HostError::Refused(why.to_string())
}

fn open_error(error: StorageError) -> OpenError {
    match error {
        StorageError::Corrupt { .. } => OpenError::Corrupt(error.to_string()),
        other => classify(other.to_string()),
    }
}

/// Errors that come back only as text: corruption names itself.
fn classify(why: String) -> OpenError {
    if why.contains("corrupt") || why.contains("Corrupt") {
        OpenError::Corrupt(why)
    } else {
        OpenError::Transient(why)
    }
}
