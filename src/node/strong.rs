//! The node's strong role (consensus as a part of the node, DESIGN.md §2): strong
//! categories inside the node core: one [`RaftGroup`] per category whose
//! mode is `Mode::Strong`, its messages on the node's `Raft` channel, its applied
//! writes mirrored into the replica, its answers for the host.
//!
//! The core stays sans-IO: the groups' journals are handed in (in memory by default;
//! the engine attaches one src/storage `Log` per category with
//! [`NodeCore::attach_strong_journals`]). A strong category is left out of gossip and
//! anti-entropy: its entries change only by applying the Raft log, in log order, under
//! the version (hlc = counter = log index, origin = proposer), so every voter holds the
//! same entries and the same category root. Eventual-path messages that name a strong
//! category are a protocol fault.
//!
//! Raft ids are the first 8 bytes (little-endian) of the voters' node ids; the
//! configured voters must map to distinct, non-zero ids. Messages are accepted only
//! from configured voters, over the authenticated session the engine names.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use super::{CoreConfig, NodeCore, NodeError, NodeEvent, PeerFault};
use crate::consensus::group::{GroupConfig, GroupEvent, Outcome, RaftGroup, Refusal, Ticket};
use crate::consensus::storage::{Journal, MemJournal, Recovered};
use crate::sansio::SeededRng;
use crate::state::{Entry, Mode, NodeId, Priority, Version};
use crate::storage::{Log, LogConfig};

/// What a strong request produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrongAnswer {
    /// The write committed under this version (hlc = counter = log index).
    Written(Version),
    /// A linearizable read's value.
    Read(Option<Vec<u8>>),
    /// The voter change committed; the voters now.
    Voters(Vec<NodeId>),
}

/// The strong categories of one node core.
#[derive(Default)]
pub struct StrongGroups {
    voters: BTreeMap<u64, NodeId>,
    groups: BTreeMap<String, RaftGroup>,
    outcomes: VecDeque<(String, Ticket, Result<StrongAnswer, NodeError>)>,
}

/// The raft id of a node.
pub fn raft_id(node: &NodeId) -> u64 {
    u64::from_le_bytes(node.0[..8].try_into().unwrap_or([0; 8]))
}

impl StrongGroups {
    /// Opens a group (with an in-memory journal) per strong category of `config`.
    pub fn new(config: &CoreConfig, me: NodeId, rng: &mut SeededRng, now_ms: u64) -> Result<Self, NodeError> {
        let strong: Vec<&String> =
            config.categories.iter().filter(|(_, spec)| spec.mode == Mode::Strong).map(|(name, _)| name).collect();
        let mut this = StrongGroups::default();
        if strong.is_empty() {
            return Ok(this);
        }
        for voter in &config.strong_voters {
            let id = raft_id(voter);
            if id == 0 || this.voters.insert(id, *voter).is_some() {
                return Err(NodeError::InvalidConfig("strong voters must have distinct non-zero 8-byte id prefixes"));
            }
        }
        if !config.strong_voters.contains(&me) {
            return Err(NodeError::InvalidConfig("a node holding a strong category must be one of strong_voters"));
        }
        for name in strong {
            let group_config = this.group_config(config, me);
            let group = RaftGroup::open(
                group_config,
                Box::new(MemJournal::default()),
                &Recovered::default(),
                rng.fork(),
                now_ms,
            )
            .map_err(|e| NodeError::Io(e.to_string()))?;
            this.groups.insert(name.clone(), group);
        }
        Ok(this)
    }

    fn group_config(&self, config: &CoreConfig, me: NodeId) -> GroupConfig {
        GroupConfig {
            id: raft_id(&me),
            voters: self.voters.keys().copied().collect(),
            max_message_len: config.strong_group.max_message_len.min(config.max_message_len.saturating_sub(128)),
            ..config.strong_group.clone()
        }
    }

    /// Whether `category` is strong.
    pub fn is_strong(&self, category: &str) -> bool {
        self.groups.contains_key(category)
    }

    fn node_of(&self, id: u64) -> Option<NodeId> {
        self.voters.get(&id).copied()
    }

    fn error_of(&self, refusal: Refusal) -> NodeError {
        match refusal {
            Refusal::NotLeader { leader } => NodeError::NotLeader { leader: self.node_of(leader) },
            Refusal::ReadOnly => NodeError::ReadOnly,
            Refusal::TooLarge => NodeError::InvalidConfig("the write is over the strong group's max_command_len"),
            Refusal::Busy => NodeError::Busy,
            Refusal::Failed(why) => NodeError::Io(why),
        }
    }
}

/// A journal on the node's group-commit log: records are appended as log records,
/// an image is written as a log snapshot (recovery then replays only what follows).
pub struct LogJournal {
    log: Log,
}

impl Journal for LogJournal {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), String> {
        let payloads: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        self.log.append_batch(&payloads).map(|_| ()).map_err(|e| e.to_string())
    }

    fn compact(&mut self, image: &[u8]) -> Result<(), String> {
        let (head, _) = self.log.head();
        self.log.write_snapshot(head, image).map_err(|e| e.to_string())
    }
}

/// Opens (or creates) a strong category's journal in `dir`.
pub fn open_log_journal(dir: &Path) -> Result<(Box<dyn Journal>, Recovered), NodeError> {
    open_log_journal_on(Box::new(crate::storage::FsDisk), dir)
}

/// Opens (or creates) a strong category's journal in `dir` on `disk` (the simulator's
/// disk in the swarm).
pub fn open_log_journal_on(
    disk: Box<dyn crate::storage::Disk>,
    dir: &Path,
) -> Result<(Box<dyn Journal>, Recovered), NodeError> {
    let (log, recovery) = Log::open_on(disk, dir, LogConfig::default())
        .map_err(|e| NodeError::Io(format!("cannot open the raft log in {}: {e}", dir.display())))?;
    let recovered = Recovered {
        image: recovery.snapshot.map(|s| s.state),
        records: recovery.records.into_iter().map(|r| r.payload).collect(),
    };
    Ok((Box::new(LogJournal { log }), recovered))
}

/// The directory of a category's journal under a data directory (hex of the name,
/// so any valid name is a safe path).
pub fn journal_dir(data_dir: &Path, category: &str) -> std::path::PathBuf {
    data_dir.join("strong").join(crate::state::node_id::hex(category.as_bytes()))
}

impl NodeCore {
    /// Reopens every strong category's group on the journal `open` gives (the engine's
    /// durable logs), replaying what it recovered.
    pub fn attach_strong_journals(
        &mut self,
        now_ms: u64,
        mut open: impl FnMut(&str) -> Result<(Box<dyn Journal>, Recovered), NodeError>,
    ) -> Result<(), NodeError> {
        let names: Vec<String> = self.strong.groups.keys().cloned().collect();
        for name in names {
            let (journal, recovered) = open(&name)?;
            let config = self.strong.group_config(&self.config, self.me);
            let group = RaftGroup::open(config, journal, &recovered, self.rng.fork(), now_ms)
                .map_err(|e| NodeError::Io(format!("strong category {name:?}: {e}")))?;
            self.strong.groups.insert(name.clone(), group);
            self.mirror_all(&name);
        }
        self.strong_flush();
        Ok(())
    }

    /// Whether `category` is a strong category.
    pub fn is_strong(&self, category: &str) -> bool {
        self.strong.is_strong(category)
    }

    /// A strong category's group.
    pub fn strong_group(&self, category: &str) -> Option<&RaftGroup> {
        self.strong.groups.get(category)
    }

    /// Why a strong category's group stopped (its journal failed), if one did.
    pub fn strong_failure(&self) -> Option<&str> {
        self.strong.groups.values().find_map(RaftGroup::failure)
    }

    /// The other voters of the strong categories' groups: peers this node must keep
    /// links to whatever its overlay says (Raft talks to every voter).
    pub fn strong_peers(&self) -> Vec<NodeId> {
        self.strong.voters.values().copied().filter(|id| *id != self.me).collect()
    }

    /// The leader of a strong category's group, as this node knows it.
    pub fn strong_leader(&self, category: &str) -> Option<NodeId> {
        self.strong.groups.get(category)?.leader().and_then(|id| self.strong.node_of(id))
    }

    /// Proposes a write to a strong category; the answer comes from
    /// [`NodeCore::poll_strong_outcome`]. Refused at once when this node does not lead
    /// with a quorum in reach.
    pub fn strong_put(&mut self, now_ms: u64, category: &str, key: &[u8], value: &[u8]) -> Result<Ticket, NodeError> {
        crate::state::check_bounds(key, value)?;
        let result = self.group_mut(category)?.propose_put(now_ms, key, value);
        self.strong_flush();
        result.map_err(|r| self.strong.error_of(r))
    }

    /// Starts a linearizable read (ReadIndex) of a strong category.
    pub fn strong_read(&mut self, now_ms: u64, category: &str, key: &[u8]) -> Result<Ticket, NodeError> {
        let result = self.group_mut(category)?.read(now_ms, key);
        self.strong_flush();
        result.map_err(|r| self.strong.error_of(r))
    }

    /// Proposes adding or removing a voter of a strong category's group. The node id
    /// must be among the configured `strong_voters` of every node (messages are only
    /// accepted from those): configure the new voter everywhere first, then add it.
    pub fn strong_voter_change(
        &mut self,
        now_ms: u64,
        category: &str,
        node: NodeId,
        add: bool,
    ) -> Result<Ticket, NodeError> {
        if self.strong.node_of(raft_id(&node)) != Some(node) {
            return Err(NodeError::InvalidConfig("a voter change names a node outside strong_voters"));
        }
        let result = self.group_mut(category)?.propose_voter_change(now_ms, raft_id(&node), add);
        self.strong_flush();
        result.map_err(|r| self.strong.error_of(r))
    }

    /// The next answer to a strong request: (category, ticket, result).
    pub fn poll_strong_outcome(&mut self) -> Option<(String, Ticket, Result<StrongAnswer, NodeError>)> {
        self.strong.outcomes.pop_front()
    }

    fn group_mut(&mut self, category: &str) -> Result<&mut RaftGroup, NodeError> {
        if !self.strong.is_strong(category) {
            return Err(match self.spec(category) {
                Some(_) => NodeError::WrongMode(format!("{category:?} is not a strong category")),
                None => NodeError::UnknownCategory(category.to_owned()),
            });
        }
        self.strong.groups.get_mut(category).ok_or_else(|| NodeError::UnknownCategory(category.to_owned()))
    }

    /// A raft message from an authenticated peer.
    pub(crate) fn strong_message(
        &mut self,
        now_ms: u64,
        from: NodeId,
        category: &str,
        bytes: &[u8],
    ) -> Result<(), PeerFault> {
        let id = raft_id(&from);
        if self.strong.node_of(id) != Some(from) {
            return Err(PeerFault::Protocol("raft message from a node that is not a configured voter".into()));
        }
        let Some(group) = self.strong.groups.get_mut(category) else {
            return Err(PeerFault::Protocol(format!("raft message for {category:?}, not a strong category")));
        };
        let result = group.handle_message(now_ms, id, bytes);
        self.strong_flush();
        result.map_err(|fault| match fault {
            crate::consensus::MessageFault::Oversized => PeerFault::Oversized,
            crate::consensus::MessageFault::Malformed => PeerFault::Malformed("raft message".into()),
            crate::consensus::MessageFault::NotAVoter => PeerFault::Protocol("raft message not from a voter".into()),
        })
    }

    /// Ticks every group.
    pub(crate) fn strong_timeout(&mut self, now_ms: u64) {
        let mut any = false;
        for group in self.strong.groups.values_mut() {
            if now_ms >= group.poll_timeout() {
                group.handle_timeout(now_ms);
                any = true;
            }
        }
        if any {
            self.strong_flush();
        }
    }

    /// Writes the groups' staged `Ready`s to their journals (the engine calls it after
    /// sending what `poll_transmit` gave: a leader's fsync overlaps its followers').
    /// Returns whether anything was written (more may then be sent).
    pub fn strong_persist(&mut self) -> bool {
        let mut any = false;
        for group in self.strong.groups.values_mut() {
            any |= group.persist_staged();
        }
        if any {
            self.strong_flush();
        }
        any
    }

    /// Whether a group waits for [`NodeCore::strong_persist`].
    pub fn strong_staged(&self) -> bool {
        self.strong.groups.values().any(RaftGroup::has_staged)
    }

    /// The earliest group timer.
    pub(crate) fn strong_poll_timeout(&self) -> Option<u64> {
        self.strong.groups.values().map(RaftGroup::poll_timeout).min()
    }

    /// Moves the groups' messages into the peers' queues (critical priority; a peer
    /// not connected misses it and Raft resends), their events into the core's and
    /// the replica, their answers into the outcome queue.
    pub fn strong_flush(&mut self) {
        let names: Vec<String> = self.strong.groups.keys().cloned().collect();
        for name in names {
            let (mut transmits, mut events, mut outcomes) = (Vec::new(), Vec::new(), Vec::new());
            if let Some(group) = self.strong.groups.get_mut(&name) {
                while let Some(t) = group.poll_transmit() {
                    transmits.push(t);
                }
                while let Some(e) = group.poll_event() {
                    events.push(e);
                }
                while let Some(o) = group.poll_outcome() {
                    outcomes.push(o);
                }
            }
            for (to, bytes) in transmits {
                let Some(node) = self.strong.node_of(to) else { continue };
                let message = crate::node::message::encode_raft(&name, &bytes);
                if let Some(peer) = self.peers.get_mut(&node).filter(|p| p.connected) {
                    let _ = peer.queue.push(Priority::Critical, message);
                }
            }
            for event in events {
                self.strong_event(&name, event);
            }
            for (ticket, outcome) in outcomes {
                let result = match outcome {
                    Outcome::Written { index } => Ok(StrongAnswer::Written(self.strong_version(index, self.me))),
                    Outcome::Read { value } => Ok(StrongAnswer::Read(value)),
                    Outcome::VotersChanged { voters } => {
                        Ok(StrongAnswer::Voters(voters.iter().filter_map(|&id| self.strong.node_of(id)).collect()))
                    }
                    Outcome::Failed { maybe_applied: true, .. } => Err(NodeError::Indeterminate),
                    Outcome::Failed { refusal, .. } => Err(self.strong.error_of(refusal)),
                };
                self.strong.outcomes.push_back((name.clone(), ticket, result));
            }
        }
    }

    fn strong_version(&self, index: u64, origin: NodeId) -> Version {
        Version { hlc: index, origin, counter: index, tombstone: false }
    }

    fn strong_event(&mut self, category: &str, event: GroupEvent) {
        match event {
            GroupEvent::Applied { index, proposer, key, value, .. } => {
                let origin = self.strong.node_of(proposer).unwrap_or(NodeId([0; 32]));
                let entry = Entry { key: key.clone(), value, version: self.strong_version(index, origin) };
                if self.replica.restore(category, &[entry]).is_ok() {
                    self.push_event(NodeEvent::Updated { category: category.to_owned(), key });
                }
            }
            GroupEvent::Restored { .. } => self.mirror_all(category),
            GroupEvent::Leader { leader, term } => {
                let leader = leader.and_then(|id| self.strong.node_of(id));
                self.push_event(NodeEvent::Leader { category: category.to_owned(), leader, term });
            }
            GroupEvent::Quorum { reachable } => {
                self.push_event(NodeEvent::Partition { category: category.to_owned(), reachable });
            }
            GroupEvent::VotersChanged { .. } => {}
        }
    }

    /// Copies a group's whole state into the replica (after a snapshot or a replay).
    fn mirror_all(&mut self, category: &str) {
        let Some(group) = self.strong.groups.get(category) else { return };
        let entries: Vec<Entry> = group
            .registers()
            .iter()
            .map(|(key, register)| Entry {
                key: key.to_vec(),
                value: register.value.clone(),
                version: self
                    .strong_version(register.index, self.strong.node_of(register.proposer).unwrap_or(NodeId([0; 32]))),
            })
            .collect();
        let _ = self.replica.restore(category, &entries);
    }
}

/// The strong categories' names in a configuration.
pub fn strong_categories(categories: &[(String, crate::state::CategorySpec)]) -> Vec<String> {
    categories.iter().filter(|(_, spec)| spec.mode == Mode::Strong).map(|(name, _)| name.clone()).collect()
}
