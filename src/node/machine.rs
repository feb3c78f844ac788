//! The whole node as one sans-IO state machine (DESIGN.md §2, issue 16): the node core
//! (eventual categories and the strong categories' Raft groups), SWIM membership with
//! Lifeguard deciding which peers the core holds sessions with, network time and the
//! chain as roles, and the bans of peers that sent what no honest peer sends.
//!
//! Every driver runs this one composition: the swarm (`sim::swarm`) with a simulated
//! network and disk, and — as it moves onto it — the engine with sockets and files.
//! The roles share the wire through a [`Channel`] byte. Durability is an output, in
//! the shape of raft-rs's `ready`/`advance`: a local write is applied in memory and
//! handed back with the log record that makes it durable ([`Durable`]); the driver
//! appends it and acknowledges the write only once the append returned, or calls
//! [`Machine::stop`] when storage failed (fail-stop).
//!
//! Method groups follow quinn-proto: getters, host commands, `handle_*` inputs, then
//! `poll_*` outputs. Nothing here touches a socket, a thread, a clock or a file of its
//! own (the chain role and the Raft journals reach storage through the `Disk` interface
//! the driver opened them on).

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;

use super::links::{Links, PlanInput};
use super::roles::overlay::{Overlay, OverlayFigures};
use super::roles::time::TimeStats;
use super::roles::{Addresses, ChainRole, Role, TimeConfig, TimeRole};
use super::strong::StrongAnswer;
use super::types::{FinishedSync, PeerFault, SyncId};
use super::{durable, NodeCore, NodeError, NodeEvent};
use crate::consensus::Ticket;
use crate::crdt::CustomResolver;
use crate::gossip::{GossipConfig, Refused};
use crate::membership::{MembershipEvent, Swim, SwimConfig};
use crate::sansio::SeededRng;
use crate::state::{Entry, NodeId, Version};

/// Which protocol of the node a frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    /// The node core (eventual categories, strong categories' Raft messages).
    Core,
    /// SWIM membership.
    Membership,
    /// Chain sync.
    Chain,
    /// Network time.
    Time,
    /// Where peers listen (the address book's exchange).
    Addresses,
    /// The overlay: HyParView's views and Plumtree's broadcasts of the core's pushes.
    Gossip,
}

impl Channel {
    /// The byte that names the channel on the wire.
    pub fn code(self) -> u8 {
        match self {
            Channel::Core => 1,
            Channel::Membership => 2,
            Channel::Chain => 3,
            Channel::Time => 4,
            Channel::Addresses => 5,
            Channel::Gossip => 6,
        }
    }

    /// The channel a byte names, if any.
    pub fn from_code(code: u8) -> Option<Channel> {
        Some(match code {
            1 => Channel::Core,
            2 => Channel::Membership,
            3 => Channel::Chain,
            4 => Channel::Time,
            5 => Channel::Addresses,
            6 => Channel::Gossip,
            _ => return None,
        })
    }
}

/// What the machine reports to its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineEvent {
    /// A strong request finished.
    Strong {
        /// The strong category.
        category: String,
        /// The ticket `strong_put`/`strong_read` returned.
        ticket: Ticket,
        /// Its answer.
        result: Result<StrongAnswer, NodeError>,
    },
    /// The node stopped on a storage error (fail-stop); the driver restarts it from
    /// what is durable.
    Stopped(String),
    /// This node disconnected `peer` for misbehaviour.
    Banned {
        /// The peer.
        peer: NodeId,
        /// What it sent.
        reason: String,
    },
    /// Membership's verdict on a member changed.
    Membership(MembershipEvent),
}

/// A frame no honest peer sends, by the channel it came on. The driver decides what
/// follows: the engine scores the peer and disconnects it past a threshold; the swarm
/// bans it at once ([`Machine::ban`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineFault {
    /// The node core's verdict.
    Core(PeerFault),
    /// A membership frame that does not decode.
    Membership,
    /// A chain frame, or one to a node without a chain.
    Chain(String),
    /// A network-time frame.
    Time(String),
    /// An address-book frame.
    Addresses(String),
    /// An overlay frame that does not decode, or a broadcast the core refused.
    Overlay(String),
}

impl std::fmt::Display for MachineFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MachineFault::Core(fault) => write!(f, "core: {fault:?}"),
            MachineFault::Membership => write!(f, "membership: a frame that does not decode"),
            MachineFault::Chain(why) => write!(f, "chain: {why}"),
            MachineFault::Time(why) => write!(f, "time: {why}"),
            MachineFault::Addresses(why) => write!(f, "{why}"),
            MachineFault::Overlay(why) => write!(f, "overlay: {why}"),
        }
    }
}

/// A local write applied in memory: `value` is its answer, acknowledged once `record`
/// is durable in the node's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable<T> {
    /// The answer to give once the record is durable.
    pub value: T,
    /// The log record to append first.
    pub record: Vec<u8>,
}

/// What a machine starts from. The driver builds the core (recovered from its log,
/// with the Raft journals attached) and opens the chain on its storage.
pub struct MachineSetup {
    /// The node core.
    pub core: NodeCore,
    /// The chain role, when the node runs a chain.
    pub chain: Option<ChainRole>,
    /// The chain category the role serves, when the host names it (the engine): the
    /// core holds no such category, and its writes go through [`Machine::propose_block`].
    pub chain_category: Option<String>,
    /// Membership settings.
    pub swim: SwimConfig,
    /// SWIM's starting incarnation: higher after every restart, so the node's new
    /// life refutes what peers still believe of the old one.
    pub incarnation: u64,
    /// Members known at start (the node itself may be among them). A driver that
    /// holds connections reports them with [`Machine::handle_link_up`]; the swarm,
    /// where any member can be reached, reports every member as linked.
    pub members: Vec<NodeId>,
    /// Network time settings.
    pub time: TimeConfig,
    /// The overlay's settings; its active view's capacity bounds the links the node
    /// keeps (see `node::links`).
    pub overlay: GossipConfig,
    /// Whether the node plans its links: it asks its driver to dial
    /// ([`Machine::poll_dial`]) and close ([`Machine::poll_close`]) connections. False
    /// where the driver links every member (the swarm).
    pub manage_links: bool,
}

/// Peers whose links the node keeps whatever the overlay says, at most.
pub const MAX_PINNED: usize = 256;

/// Membership events kept for the driver at most; beyond, newer ones are dropped
/// (membership's own state stays exact: the events only report it).
const MAX_EVENTS: usize = 4_096;

/// What the node's roles report for metrics and the health report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineFigures {
    /// Members membership counts alive (this node excluded).
    pub members_alive: usize,
    /// Members suspected.
    pub members_suspect: usize,
    /// Members declared dead.
    pub members_dead: usize,
    /// Members that left.
    pub members_left: usize,
    /// Lifeguard's local health multiplier (0 = healthy).
    pub local_health: u32,
    /// Whether membership sees this node on a minority side.
    pub partitioned: bool,
    /// This node's SWIM incarnation.
    pub incarnation: u64,
    /// Peers the core holds a session with.
    pub sessions: usize,
    /// Network time minus the local clock, in milliseconds.
    pub time_correction_ms: i64,
    /// Network time's counters (exchanges, adjustments, refusals and why).
    pub time: TimeStats,
    /// Peers linked now.
    pub links: usize,
    /// The overlay's views and broadcasts.
    pub overlay: OverlayFigures,
    /// Frames dropped because the link they waited for never came up.
    pub parked_dropped: u64,
    /// Visits to passive-view members started (anti-entropy beyond the active view).
    pub passive_visits: u64,
}

/// One node, sans-IO.
pub struct Machine {
    me: NodeId,
    core: NodeCore,
    swim: Swim,
    chain: Option<ChainRole>,
    chain_category: Option<String>,
    time: TimeRole,
    addresses: Addresses,
    overlay: Overlay,
    /// Peers the driver can reach now (connections in the engine), and the plans for
    /// them.
    links: Links,
    /// Peers whose links are kept whatever the overlay says: strong voters, and peers
    /// the host asked to link (`Machine::pin`).
    pinned: Vec<NodeId>,
    /// The latest time an input brought (outputs have none of their own).
    last_now_ms: u64,
    /// Peers membership declared dead or gone (until it sees them up again).
    dead: BTreeSet<NodeId>,
    /// Peers the core holds a session with: linked, not dead, not banned.
    sessions: BTreeSet<NodeId>,
    banned: BTreeSet<NodeId>,
    outbox: VecDeque<(NodeId, Channel, Vec<u8>)>,
    events: VecDeque<MachineEvent>,
    stopped: Option<String>,
}

impl Machine {
    /// A node from its parts. Sessions open as links come up.
    pub fn new(setup: MachineSetup, mut rng: SeededRng, now_ms: u64) -> Machine {
        let me = setup.core.id();
        let swim = Swim::new(setup.swim, me, setup.incarnation, rng.fork(), &setup.members, now_ms);
        let time = TimeRole::new(me, setup.time, rng.fork(), now_ms);
        let addresses = Addresses::new(me, rng.fork(), now_ms);
        let links = Links::new(setup.manage_links, rng.fork(), now_ms);
        let overlay = Overlay::new(setup.overlay, me, rng.fork(), now_ms);
        let mut core = setup.core;
        core.set_broadcast_by_host(true);
        let pinned = core.strong_peers();
        let mut machine = Machine {
            me,
            core,
            swim,
            chain: setup.chain,
            chain_category: setup.chain_category,
            time,
            addresses,
            overlay,
            links,
            pinned,
            last_now_ms: now_ms,
            dead: BTreeSet::new(),
            sessions: BTreeSet::new(),
            banned: BTreeSet::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stopped: None,
        };
        machine.pump(now_ms);
        machine
    }

    // ---- getters ----

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
    /// Network time (mutable: reading it moves its monotonic floor).
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
    /// The overlay's active view: the neighbours whose links the node keeps.
    pub fn overlay_active(&self) -> &BTreeSet<NodeId> {
        self.overlay.active()
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
    /// The stored version of a key, tombstones included.
    pub fn stored(&self, category: &str, key: &[u8]) -> Option<Entry> {
        self.core.stored(category, key)
    }
    /// Membership's and network time's figures.
    pub fn figures(&self) -> MachineFigures {
        let [alive, suspect, dead, left] = self.swim.count_by_state();
        MachineFigures {
            members_alive: alive,
            members_suspect: suspect,
            members_dead: dead,
            members_left: left,
            local_health: self.swim.local_health(),
            partitioned: self.swim.is_partitioned(),
            incarnation: self.swim.incarnation(),
            sessions: self.sessions.len(),
            time_correction_ms: self.time.correction_ms(),
            time: self.time.stats(),
            links: self.links.up().len(),
            overlay: self.overlay.figures(),
            parked_dropped: self.links.parked_dropped,
            passive_visits: self.links.visits_started,
        }
    }

    // ---- host commands ----

    /// A put, applied in memory; acknowledge it once its record is durable.
    pub fn put(
        &mut self,
        now_ms: u64,
        category: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<Durable<Version>, NodeError> {
        self.writable(category)?;
        let version = self.core.put(now_ms, category, key, value)?;
        self.durable(category, key, version)
    }

    /// A delete (a tombstone); `None` when there was nothing to delete (and nothing to
    /// make durable), else the tombstone's version.
    pub fn delete(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<Option<Durable<Version>>, NodeError> {
        self.writable(category)?;
        if !self.core.delete(now_ms, category, key)? {
            return Ok(None);
        }
        let version = self.stored_version(category, key)?;
        self.durable(category, key, version).map(Some)
    }

    /// A counter increment; the counter's new value and version.
    pub fn counter_add(
        &mut self,
        now_ms: u64,
        category: &str,
        key: &[u8],
        delta: i64,
    ) -> Result<Durable<(i64, Version)>, NodeError> {
        self.writable(category)?;
        let value = self.core.counter_add(now_ms, category, key, delta)?;
        let version = self.stored_version(category, key)?;
        self.durable(category, key, (value, version))
    }

    /// Starts a strong write; the answer comes as a [`MachineEvent::Strong`].
    pub fn strong_put(&mut self, now_ms: u64, category: &str, key: &[u8], value: &[u8]) -> Result<Ticket, NodeError> {
        self.usable()?;
        self.core.strong_put(now_ms, category, key, value)
    }

    /// Starts a linearizable read; the answer comes as a [`MachineEvent::Strong`].
    pub fn strong_read(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<Ticket, NodeError> {
        self.usable()?;
        self.core.strong_read(now_ms, category, key)
    }

    /// Proposes a chain block; its id once it is durable. A storage error stops the node.
    pub fn propose_block(
        &mut self,
        now_ms: u64,
        transactions: Vec<Vec<u8>>,
    ) -> Result<crate::chain::BlockId, NodeError> {
        self.usable()?;
        let chain = self.chain.as_mut().ok_or_else(|| NodeError::WrongMode("this node runs no chain".into()))?;
        match chain.propose(now_ms, transactions) {
            Ok(id) => Ok(id),
            // Refused before anything was stored (over the block limits): the node goes on.
            Err(why) if chain.failed().is_none() => Err(NodeError::InvalidBlock(why)),
            Err(why) => {
                self.stop(format!("chain: {why}"));
                Err(NodeError::Io(why))
            }
        }
    }

    /// Starts anti-entropy with `peer` now; its result comes as a core event.
    pub fn sync_with(&mut self, now_ms: u64, peer: NodeId) -> SyncId {
        self.core.sync_with(now_ms, peer)
    }

    /// Registers the host's resolver for a custom-merge category.
    pub fn set_resolver(&mut self, category: &str, resolver: CustomResolver) -> Result<(), NodeError> {
        self.core.set_resolver(category, resolver)
    }

    /// Starts adding or removing a voter of a strong category's group.
    pub fn strong_voter_change(
        &mut self,
        now_ms: u64,
        category: &str,
        node: NodeId,
        add: bool,
    ) -> Result<Ticket, NodeError> {
        self.usable()?;
        self.core.strong_voter_change(now_ms, category, node, add)
    }

    /// Moves the strong groups' ready work (answers, messages) forward.
    pub fn strong_flush(&mut self) {
        self.core.strong_flush();
    }

    /// Writes the strong leaders' staged entries to their journals; whether any were
    /// (their appends go out first, the write follows: Raft §10.2.1).
    pub fn strong_persist(&mut self) -> bool {
        self.core.strong_persist()
    }

    /// Whether strong leaders hold staged entries not yet journalled.
    pub fn strong_staged(&self) -> bool {
        self.core.strong_staged()
    }

    /// The chain of `category`: its role, or why there is none.
    fn chain_of(&self, category: &str) -> Result<&ChainRole, NodeError> {
        match (&self.chain, self.chain_category.as_deref()) {
            (Some(chain), Some(name)) if name == category => Ok(chain),
            _ => Err(NodeError::UnknownCategory(format!("{category} (no chain category of that name)"))),
        }
    }

    /// Appends `transactions` to the chain of `category` as a block signed by this node;
    /// its height and id once it is durable.
    pub fn chain_append(
        &mut self,
        now_ms: u64,
        category: &str,
        transactions: Vec<Vec<u8>>,
    ) -> Result<(u64, crate::chain::BlockId), NodeError> {
        self.chain_of(category)?;
        let id = self.propose_block(now_ms, transactions)?;
        let (height, head) = self.chain_head(category)?;
        // Just proposed on the head, under this node's lock of the state: it is the head.
        debug_assert_eq!(head, id, "a proposed block becomes the head");
        Ok((height, id))
    }

    /// The chain's head: its height and id.
    pub fn chain_head(&self, category: &str) -> Result<(u64, crate::chain::BlockId), NodeError> {
        Ok(self.chain_of(category)?.head())
    }

    /// The encoding of the main chain's block at `height`, if there is one.
    pub fn chain_block(&self, category: &str, height: u64) -> Result<Option<Vec<u8>>, NodeError> {
        Ok(self.chain_of(category)?.block_at(height))
    }

    /// The host closes the node on purpose: its neighbours are told it leaves (SWIM's
    /// `Left`), so they report it left at once instead of dead seconds later, and do
    /// not count it among the known members of the partition rule — a cluster scaled
    /// down cleanly does not leave its remaining nodes on a "minority side".
    pub fn leave(&mut self, now_ms: u64) {
        let kept = self.overlay.active().iter().chain(&self.pinned).copied();
        self.swim.set_probe_scope(self.links.probe_scope(kept));
        self.swim.leave(now_ms);
        self.pump(now_ms);
    }

    /// Stops the node (fail-stop) after its driver failed to make its state durable:
    /// it refuses every later command and ignores the network until restarted.
    pub fn stop(&mut self, why: String) {
        if self.stopped.is_none() {
            self.stopped = Some(why.clone());
            self.events.push_back(MachineEvent::Stopped(why));
        }
    }

    /// Disconnects `peer` for good, for a fault its driver detected (a frame it could
    /// not even route).
    pub fn ban(&mut self, now_ms: u64, peer: NodeId, reason: String) {
        if self.banned.insert(peer) {
            self.overlay.forget(now_ms, peer);
            self.refresh_session(now_ms, peer);
            self.events.push_back(MachineEvent::Banned { peer, reason });
        }
    }

    /// A local write to an eventual category is refused on a minority side when its
    /// partition policy says so (strong categories follow Raft's own rule).
    fn writable(&self, category: &str) -> Result<(), NodeError> {
        self.usable()?;
        if self.chain_category.as_deref() == Some(category) {
            return Err(NodeError::WrongMode(format!(
                "{category:?} is a chain category: append transactions as a block (chain_append)"
            )));
        }
        let policy = self.core.spec(category).map(|spec| spec.partition_policy).unwrap_or_default();
        if !self.swim.write_allowed(policy) {
            return Err(NodeError::ReadOnly);
        }
        Ok(())
    }

    fn usable(&self) -> Result<(), NodeError> {
        match &self.stopped {
            Some(why) => Err(NodeError::Io(format!("the node stopped after a storage error: {why}"))),
            None => Ok(()),
        }
    }

    fn stored_version(&self, category: &str, key: &[u8]) -> Result<Version, NodeError> {
        let entry =
            self.core.stored(category, key).ok_or_else(|| NodeError::Internal("the written entry vanished".into()))?;
        Ok(entry.version)
    }

    fn durable<T>(&self, category: &str, key: &[u8], value: T) -> Result<Durable<T>, NodeError> {
        let entry =
            self.core.stored(category, key).ok_or_else(|| NodeError::Internal("the written entry vanished".into()))?;
        Ok(Durable { value, record: durable::encode_record(category, &entry) })
    }

    // ---- inputs ----

    /// Keeps the link to `peer` whatever the overlay says: the host asked for it
    /// (`Node::connect`). Bounded: pins beyond [`MAX_PINNED`] are ignored.
    pub fn pin(&mut self, peer: NodeId) {
        if peer != self.me && !self.pinned.contains(&peer) && self.pinned.len() < MAX_PINNED {
            self.pinned.push(peer);
        }
    }

    /// A frame for `channel` from `from`; `Err` when it is one no honest peer sends.
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: NodeId,
        channel: Channel,
        payload: &[u8],
    ) -> Result<(), MachineFault> {
        if self.stopped.is_some() || self.banned.contains(&from) {
            return Ok(());
        }
        self.last_now_ms = self.last_now_ms.max(now_ms);
        if matches!(channel, Channel::Gossip | Channel::Membership) {
            self.links.note_needed(now_ms, from);
        }
        let result = self.dispatch(now_ms, from, channel, payload);
        self.pump(now_ms);
        result
    }

    /// The driver can reach `peer` now (a connection came up), which listens on
    /// `listens_on` when the driver proved it (the handshake over a connection from
    /// there). A peer membership does not know, or holds dead, is asked for its member
    /// list (SWIM's join).
    pub fn handle_link_up(&mut self, now_ms: u64, peer: NodeId, listens_on: Option<SocketAddr>) {
        if let Some(addr) = listens_on {
            self.addresses.observe(peer, addr);
        }
        if peer == self.me || self.links.is_up(&peer) {
            return;
        }
        self.last_now_ms = self.last_now_ms.max(now_ms);
        for (channel, payload) in self.links.link_up(now_ms, peer) {
            self.outbox.push_back((peer, channel, payload));
        }
        if self.swim.state_of(&peer).is_none() || self.dead.contains(&peer) {
            self.swim.join(peer);
        }
        self.overlay.handle_link_up(now_ms, peer);
        self.refresh_session(now_ms, peer);
        self.pump(now_ms);
    }

    /// The driver lost its connection to `peer`.
    pub fn handle_link_down(&mut self, now_ms: u64, peer: NodeId) {
        if self.links.is_up(&peer) {
            let neighbour = self.overlay.active().contains(&peer) || self.pinned.contains(&peer);
            let lost = neighbour && !self.dead.contains(&peer);
            self.links.link_down(now_ms, peer, lost);
            if lost && self.links.managed() {
                // A neighbour's link broke (crash, cut): check it now, not when its
                // turn in the probe round comes (up to a round of the view away).
                self.swim.set_probe_scope(self.links.probe_scope(self.overlay.active().iter().chain(&self.pinned).copied()));
                self.swim.probe_soon(peer);
            }
            self.overlay.handle_link_down(now_ms, peer);
            self.refresh_session(now_ms, peer);
            self.pump(now_ms);
        }
    }

    /// The peer restarted: its old connection is gone and a new one is up, so a
    /// session with it starts over.
    pub fn handle_peer_restart(&mut self, now_ms: u64, peer: NodeId) {
        if self.sessions.contains(&peer) {
            self.session_down(now_ms, peer);
            self.session_up(now_ms, peer);
        }
        self.pump(now_ms);
    }

    /// The deadline from [`Machine::poll_timeout`] passed (early calls are harmless).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.stopped.is_some() {
            return;
        }
        if self.core.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.core.handle_timeout(now_ms);
        }
        self.last_now_ms = self.last_now_ms.max(now_ms);
        let kept = self.overlay.active().iter().chain(&self.pinned).copied();
        self.swim.set_probe_scope(self.links.probe_scope(kept));
        if self.swim.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.swim.handle_timeout(now_ms);
        }
        self.refill_passive(now_ms);
        self.overlay.handle_timeout(now_ms, self.links.up());
        let peers: Vec<NodeId> = self.sessions.iter().copied().collect();
        if let Some(chain) = &mut self.chain {
            if chain.poll_timeout().is_some_and(|at| at <= now_ms) {
                chain.handle_timeout(now_ms, &peers);
            }
        }
        if self.time.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.time.handle_timeout(now_ms, &peers);
            self.core.set_clock_correction_ms(self.time.correction_ms());
        }
        if self.addresses.poll_timeout() <= now_ms {
            self.addresses.handle_timeout(now_ms, &peers);
        }
        // Bounded by membership's own table: a death it no longer tracks (reclaimed)
        // is forgotten here too, unless the member is still linked.
        let (swim, links) = (&self.swim, &self.links);
        self.dead.retain(|id| swim.state_of(id).is_some() || links.is_up(id));
        self.pump(now_ms);
        self.plan_links(now_ms);
    }

    /// A passive view that ran dry is refilled from membership's live members (not
    /// banned, not dead), so a node short of neighbours always has someone to ask.
    fn refill_passive(&mut self, now_ms: u64) {
        if self.overlay.passive().next().is_some() {
            return;
        }
        let (banned, dead) = (&self.banned, &self.dead);
        let live: Vec<NodeId> =
            self.swim.live_members().filter(|id| !banned.contains(id) && !dead.contains(id)).collect();
        for peer in live {
            self.overlay.learn(now_ms, peer);
        }
    }

    /// Dials what roles need and closes what they no longer do (see `node::links`).
    fn plan_links(&mut self, now_ms: u64) {
        let (dead, banned) = (&self.dead, &self.banned);
        let excluded = |id: &NodeId| dead.contains(id) || banned.contains(id);
        let input = PlanInput {
            active: self.overlay.active(),
            pinned: &self.pinned,
            known: self.addresses.known().collect(),
            excluded: &excluded,
        };
        self.links.plan(now_ms, input);
        let passive: Vec<NodeId> = self.overlay.passive().filter(|id| !excluded(id)).collect();
        self.links.visit(now_ms, &passive);
    }

    fn dispatch(&mut self, now_ms: u64, from: NodeId, channel: Channel, payload: &[u8]) -> Result<(), MachineFault> {
        match channel {
            Channel::Core => {
                if !self.sessions.contains(&from) {
                    return Ok(()); // No session (yet, or any more): not read.
                }
                self.core.handle_message(now_ms, from, payload).map_err(MachineFault::Core)
            }
            Channel::Membership => {
                let rejected = self.swim.stats().frames_rejected;
                self.swim.handle_message(now_ms, from, payload);
                if self.swim.stats().frames_rejected > rejected {
                    return Err(MachineFault::Membership);
                }
                Ok(())
            }
            Channel::Chain => match &mut self.chain {
                Some(chain) => {
                    chain.handle_message(now_ms, from, payload).map_err(|fault| MachineFault::Chain(fault.0))
                }
                None => Err(MachineFault::Chain("a chain frame to a node without a chain".into())),
            },
            Channel::Time => {
                let result =
                    self.time.handle_message(now_ms, from, payload).map_err(|fault| MachineFault::Time(fault.0));
                self.core.set_clock_correction_ms(self.time.correction_ms());
                result
            }
            Channel::Addresses => {
                self.addresses.handle_message(from, payload).map_err(|fault| MachineFault::Addresses(fault.0))
            }
            Channel::Gossip => {
                let core = &mut self.core;
                let mut refusal = None;
                let checked = self.overlay.handle_message(now_ms, from, payload, |push| {
                    refusal = core.handle_broadcast(now_ms, push).err();
                    refusal.is_none()
                });
                match checked {
                    Ok(()) => Ok(()),
                    Err(Refused::Payload) => Err(MachineFault::Core(refusal.unwrap_or(PeerFault::Oversized))),
                    Err(Refused::Frame(error)) => Err(MachineFault::Overlay(format!("{error:?}"))),
                }
            }
        }
    }

    /// Opens or closes the core's session with `peer` by the rule: linked, not dead,
    /// not banned.
    fn refresh_session(&mut self, now_ms: u64, peer: NodeId) {
        let wanted = self.links.is_up(&peer) && !self.dead.contains(&peer) && !self.banned.contains(&peer);
        if wanted {
            self.session_up(now_ms, peer);
        } else {
            self.session_down(now_ms, peer);
        }
    }

    fn session_up(&mut self, now_ms: u64, peer: NodeId) {
        if self.sessions.insert(peer) {
            self.core.handle_peer_up(now_ms, peer);
            self.addresses.handle_peer_up(peer);
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

    /// Moves every role's output into the outbox and the events, and follows
    /// membership's verdicts with the core's sessions.
    fn pump(&mut self, now_ms: u64) {
        while let Some(event) = self.swim.poll_event() {
            match event {
                MembershipEvent::MemberUp(peer) => {
                    self.dead.remove(&peer);
                    if !self.banned.contains(&peer) {
                        self.overlay.learn(now_ms, peer);
                    }
                    self.links.settled(&peer);
                    self.refresh_session(now_ms, peer);
                }
                MembershipEvent::MemberDead(peer) | MembershipEvent::MemberLeft(peer) => {
                    self.dead.insert(peer);
                    self.links.settled(&peer);
                    self.refresh_session(now_ms, peer);
                }
                _ => {}
            }
            if self.events.len() < MAX_EVENTS {
                self.events.push_back(MachineEvent::Membership(event));
            }
        }
        while let Some((category, ticket, result)) = self.core.poll_strong_outcome() {
            self.events.push_back(MachineEvent::Strong { category, ticket, result });
        }
        while let Some((to, bytes)) = self.swim.poll_transmit() {
            self.send(now_ms, Channel::Membership, to, bytes);
        }
        self.pump_overlay(now_ms);
        let mut chain_frames = Vec::new();
        if let Some(chain) = &mut self.chain {
            while let Some(frame) = chain.poll_transmit() {
                chain_frames.push(frame);
            }
        }
        for (to, bytes) in chain_frames {
            self.send(now_ms, Channel::Chain, to, bytes);
        }
        while let Some((to, bytes)) = self.time.poll_transmit() {
            self.send(now_ms, Channel::Time, to, bytes);
        }
        while let Some((to, bytes)) = self.addresses.poll_transmit() {
            self.send(now_ms, Channel::Addresses, to, bytes);
        }
        if let Some(why) = self.core.strong_failure() {
            self.stop(format!("raft journal: {why}"));
        }
        if let Some(why) = self.chain.as_ref().and_then(ChainRole::failed) {
            self.stop(format!("chain log: {why}"));
        }
    }

    /// The core's pushes onto the broadcast tree, and the overlay's frames out.
    fn pump_overlay(&mut self, now_ms: u64) {
        while let Some(push) = self.core.poll_broadcast() {
            self.overlay.broadcast(now_ms, push);
        }
        while let Some((to, bytes)) = self.overlay.poll_transmit() {
            self.send(now_ms, Channel::Gossip, to, bytes);
        }
        self.overlay.settle();
    }

    fn send(&mut self, now_ms: u64, channel: Channel, to: NodeId, payload: Vec<u8>) {
        if self.banned.contains(&to) {
            return;
        }
        if let Some((channel, payload)) = self.links.route(now_ms, to, channel, payload) {
            self.outbox.push_back((to, channel, payload));
        }
    }

    // ---- outputs ----

    /// The next frame to send: to whom, on which channel. The core's frames come first
    /// and are made only as they are taken, so a driver that stops taking while a link
    /// is full holds back bulk streams (back-pressure).
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Channel, Vec<u8>)> {
        if let Some(transmit) = self.core.poll_transmit() {
            return Some((transmit.to, Channel::Core, transmit.bytes));
        }
        if self.outbox.is_empty() && self.stopped.is_none() {
            self.pump_overlay(self.last_now_ms);
        }
        self.outbox.pop_front()
    }

    /// A member to dial (see `node::links`). A dial whose handshake proves another key
    /// just links that other node.
    pub fn poll_dial(&mut self) -> Option<(NodeId, SocketAddr)> {
        self.links.poll_dial()
    }

    /// A link no role needs any more: the driver closes it.
    pub fn poll_close(&mut self) -> Option<NodeId> {
        self.links.poll_close()
    }

    /// Whether the node has no neighbour yet: the driver keeps dialling its configured
    /// seeds only then (afterwards the overlay decides the links).
    pub fn seeking_seeds(&self) -> bool {
        self.overlay.active().is_empty()
    }

    /// The core's next event for the host (sync results, peers, fatal errors).
    pub fn poll_node_event(&mut self) -> Option<NodeEvent> {
        self.core.poll_event()
    }

    /// The next finished sync, for the metrics.
    pub fn poll_finished_sync(&mut self) -> Option<FinishedSync> {
        self.core.poll_finished_sync()
    }

    /// Frames waiting to leave.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The earliest time at which [`Machine::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.stopped.is_some() {
            return None;
        }
        let chain = self.chain.as_ref().and_then(Role::poll_timeout);
        let addresses = Some(self.addresses.poll_timeout());
        [
            self.core.poll_timeout(),
            self.swim.poll_timeout(),
            chain,
            self.time.poll_timeout(),
            addresses,
            self.overlay.poll_timeout(),
            self.links.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<MachineEvent> {
        self.events.pop_front()
    }
}
