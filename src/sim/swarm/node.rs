//! A whole simulated node: the one composed node ([`Machine`]: the node core with its
//! strong groups, SWIM membership, network time and the chain) driven the way a driver
//! drives it, behind one [`Process`] so the simulator runs it like any other protocol.
//!
//! This harness only adds what stands in for the engine and the machine's storage:
//! its log and snapshots on a simulated disk (the same record and snapshot codec and
//! the same recovery as `Node::open`; a local write is acknowledged only once its
//! record is durable, and a storage error stops the node, which the swarm restarts);
//! the envelope whose boot numbers stand in for connections; and, for a liar, its lies.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use super::byzantine::Liar;
use super::envelope::{self, Boots};
use crate::consensus::Ticket;
use crate::membership::{Swim, SwimConfig};
use crate::node::roles::{ChainRole, TimeConfig, TimeRole};
use crate::node::{durable, CoreConfig, Durable, Machine, MachineEvent, MachineSetup, NodeCore, NodeError};
use crate::sansio::{Process, SeededRng};
use crate::state::{Entry, NodeId, Version};
use crate::storage::{Disk, Log, LogConfig, StorageError};

/// Local snapshots of the whole state, so entries learnt from peers survive a crash.
const SNAPSHOT_EVERY_MS: u64 = 2_000;

/// What a swarm node reports to the harness: what its machine reports.
pub type SwarmEvent = MachineEvent;

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
    boot: u32,
    machine: Machine,
    log: Log,
    /// The newest boot seen from each peer.
    peer_boots: BTreeMap<NodeId, u32>,
    outbox: VecDeque<(NodeId, Vec<u8>)>,
    liar: Option<Liar>,
    next_snapshot_ms: u64,
    counters: NodeCounters,
}

/// The directory of node `index` on its disks.
pub fn node_dir(index: u32) -> PathBuf {
    PathBuf::from(format!("/node-{index}"))
}

impl SwarmNode {
    /// Starts a node from what its disks hold.
    pub fn open(setup: NodeSetup<'_>, now_ms: u64, mut rng: SeededRng) -> Result<SwarmNode, OpenError> {
        let me = setup.members[setup.index as usize];
        let dir = node_dir(setup.index);
        let (log, recovery) = Log::open_on((setup.disk)(), &dir.join("data"), LogConfig::default()).map_err(open_error)?;
        let mut core = NodeCore::new(setup.core, me, rng.fork(), now_ms).map_err(|e| OpenError::Corrupt(e.to_string()))?;
        // A new life of the storage (first start, or after a wipe) gets a fresh epoch,
        // unique per boot; a kept directory keeps its own.
        let fresh = (u64::from(setup.boot) << 32) | u64::from(setup.index);
        let epoch = crate::node::epoch::storage_epoch(&*(setup.disk)(), &dir.join("data"), fresh)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => OpenError::Corrupt(format!("storage epoch: {e}")),
                _ => OpenError::Transient(format!("storage epoch: {e}")),
            })?;
        core.set_storage_epoch(epoch);
        durable::replay(&recovery, &mut core, now_ms).map_err(|e| OpenError::Corrupt(e.to_string()))?;
        core.attach_strong_journals(now_ms, |category| {
            let journal_dir = crate::node::strong::journal_dir(&dir, category);
            crate::node::strong::open_log_journal_on((setup.raft_disk)(), &journal_dir)
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
        let mut machine = Machine::new(
            MachineSetup {
                core,
                chain,
                chain_category: None,
                swim: SwimConfig::default(),
                // SWIM needs a higher incarnation after every restart.
                incarnation: u64::from(setup.boot) << 32,
                members: setup.members.to_vec(),
                time: TimeConfig::default(),
                overlay: crate::gossip::GossipConfig {
                    max_payload_len: crate::gossip::message::MAX_PAYLOAD_LEN,
                    ..crate::gossip::GossipConfig::default()
                },
                manage_links: false,
            },
            rng,
            now_ms,
        );
        // No connections in the swarm: every member can be reached (the envelope's boots
        // stand in for connections that die with a restart).
        for &peer in setup.members {
            machine.handle_link_up(now_ms, peer, None);
        }
        let mut node = SwarmNode {
            boot: setup.boot,
            machine,
            log,
            peer_boots: BTreeMap::new(),
            outbox: VecDeque::new(),
            liar: setup.liar,
            next_snapshot_ms: now_ms + SNAPSHOT_EVERY_MS,
            counters: NodeCounters::default(),
        };
        node.collect();
        Ok(node)
    }

    // Getters.

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.machine.id()
    }
    /// The node core (state, strong groups, counters).
    pub fn core(&self) -> &NodeCore {
        self.machine.core()
    }
    /// The chain, when it runs.
    pub fn chain(&self) -> Option<&ChainRole> {
        self.machine.chain()
    }
    /// Network time.
    pub fn time(&mut self) -> &mut TimeRole {
        self.machine.time()
    }
    /// Network time at local clock reading `local_ms` (without the monotonic clamp).
    pub fn network_ms(&self, local_ms: u64) -> u64 {
        self.machine.network_ms(local_ms)
    }
    /// Membership.
    pub fn swim(&self) -> &Swim {
        self.machine.swim()
    }
    /// The overlay's active view.
    pub fn overlay_active(&self) -> &BTreeSet<NodeId> {
        self.machine.overlay_active()
    }
    /// Why the node stopped, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.machine.stopped()
    }
    /// Peers the core holds a session with.
    pub fn sessions(&self) -> &BTreeSet<NodeId> {
        self.machine.sessions()
    }
    /// Peers this node disconnected for misbehaviour.
    pub fn banned(&self) -> &BTreeSet<NodeId> {
        self.machine.banned()
    }
    /// Counters.
    pub fn counters(&self) -> NodeCounters {
        NodeCounters { bans: self.machine.banned().len() as u64, ..self.counters }
    }
    /// The lies told, if this node lies.
    pub fn liar_stats(&self) -> Option<super::byzantine::LiarStats> {
        self.liar.as_ref().map(Liar::stats)
    }

    /// Frames waiting to leave.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len() + self.machine.outbox_len()
    }
    /// The stored version of a key, tombstones included.
    pub fn stored(&self, category: &str, key: &[u8]) -> Option<Entry> {
        self.machine.stored(category, key)
    }

    // Host commands: the harness calls them, then flushes the node.

    /// A put, acknowledged once durable.
    pub fn put(&mut self, now_ms: u64, category: &str, key: &[u8], value: &[u8]) -> Result<Version, HostError> {
        let written = self.machine.put(now_ms, category, key, value).map_err(refused);
        self.make_durable(written)
    }

    /// A delete (a tombstone), acknowledged once durable; the tombstone's version, or
    /// `None` when there was nothing to delete.
    pub fn delete(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<Option<Version>, HostError> {
        match self.machine.delete(now_ms, category, key).map_err(refused)? {
            None => Ok(None),
            Some(written) => self.make_durable(Ok(written)).map(Some),
        }
    }

    /// A counter increment, acknowledged once durable; the counter's new version.
    pub fn counter_add(&mut self, now_ms: u64, category: &str, key: &[u8], delta: i64) -> Result<Version, HostError> {
        let written = self.machine.counter_add(now_ms, category, key, delta).map_err(refused);
        self.make_durable(written).map(|(_, version)| version)
    }

    /// Starts a strong write; the answer comes as a [`SwarmEvent::Strong`].
    pub fn strong_put(&mut self, now_ms: u64, category: &str, key: &[u8], value: &[u8]) -> Result<Ticket, NodeError> {
        self.machine.strong_put(now_ms, category, key, value)
    }

    /// Starts a linearizable read; the answer comes as a [`SwarmEvent::Strong`].
    pub fn strong_read(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<Ticket, NodeError> {
        self.machine.strong_read(now_ms, category, key)
    }

    /// Proposes a chain block, acknowledged once durable.
    pub fn propose_block(
        &mut self,
        now_ms: u64,
        transactions: Vec<Vec<u8>>,
    ) -> Result<crate::chain::BlockId, HostError> {
        let was_stopped = self.machine.stopped().is_some();
        let result = self.machine.propose_block(now_ms, transactions);
        self.collect();
        result.map_err(|error| match self.machine.stopped() {
            Some(_) if !was_stopped => HostError::NotDurable(error.to_string()),
            _ => refused(error),
        })
    }

    /// Appends a write's record to the log; on failure the node stops.
    fn make_durable<T>(&mut self, written: Result<Durable<T>, HostError>) -> Result<T, HostError> {
        let written = written?;
        if let Err(error) = self.log.append(&written.record) {
            let why = format!("log append: {error}");
            self.machine.stop(why.clone());
            self.collect();
            return Err(HostError::NotDurable(why));
        }
        self.collect();
        Ok(written.value)
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
                self.machine.handle_peer_restart(now_ms, from);
                true
            }
            Some(_) => true,
            None => {
                self.peer_boots.insert(from, boot);
                true
            }
        }
    }

    // Output.

    /// Seals what the machine wants sent (through the liar's hands, for a liar); the
    /// host-facing events of the core have no host here.
    fn collect(&mut self) {
        while self.machine.poll_node_event().is_some() {}
        while let Some((to, channel, payload)) = self.machine.poll_transmit() {
            let payload = match &mut self.liar {
                Some(liar) => match liar.corrupt(channel, to, payload) {
                    Some(payload) => payload,
                    None => continue,
                },
                None => payload,
            };
            let boots = self.boots_to(to);
            self.outbox.push_back((to, envelope::seal(channel, boots, &payload)));
        }
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
        if let Err(error) = self.log.write_snapshot(through, &durable::snapshot_of(self.machine.core())) {
            self.machine.stop(format!("snapshot: {error}"));
        }
    }
}

impl Process for SwarmNode {
    type Event = SwarmEvent;

    fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) {
        if self.machine.stopped().is_some() || self.machine.banned().contains(&from) {
            return;
        }
        let Some((channel, boots, payload)) = envelope::open(bytes) else {
            self.machine.ban(now_ms, from, "a frame without an envelope".into());
            return self.collect();
        };
        if !self.admit_boot(now_ms, from, boots.from) {
            return;
        }
        if boots.to != self.boot && boots.to != envelope::ANY_BOOT {
            // Addressed to an earlier incarnation of this node: its connection is gone. (The
            // sender's boot is learnt first, or two nodes that each hold a stale boot of
            // the other would drop each other's frames for ever: found by seed 362.)
            self.counters.stale_boot_frames += 1;
            return self.collect();
        }
        if let Err(fault) = self.machine.handle_message(now_ms, from, channel, payload) {
            self.machine.ban(now_ms, from, fault.to_string());
        }
        self.collect();
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        if self.machine.stopped().is_some() {
            return;
        }
        self.machine.handle_timeout(now_ms);
        if let Some(liar) = &mut self.liar {
            let peers: Vec<NodeId> = self.machine.sessions().iter().copied().collect();
            let lies = liar.lies(now_ms, &peers);
            for (channel, to, payload) in lies {
                // A liar dials afresh when it must: its lies reach any incarnation.
                let boots = Boots { from: self.boot, to: envelope::ANY_BOOT };
                self.outbox.push_back((to, envelope::seal(channel, boots, &payload)));
            }
        }
        self.snapshot_if_due(now_ms);
        self.collect();
    }

    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        if self.machine.stopped().is_some() {
            return None;
        }
        let liar = self.liar.as_ref().map(Liar::next_lie_ms);
        [self.machine.poll_timeout(), liar, Some(self.next_snapshot_ms)].into_iter().flatten().min()
    }

    fn poll_event(&mut self) -> Option<SwarmEvent> {
        self.machine.poll_event()
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
