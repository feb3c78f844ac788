//! [`RaftGroup`]: one strong category's Raft group on one node, sans-IO.
//!
//! It wraps raft-rs's `RawNode` (Ongaro & Ousterhout, "In Search of an Understandable
//! Consensus Algorithm", 2014; pre-vote and check-quorum on, §9.6 of Ongaro's thesis)
//! in the house shape: `handle_message(now, from, bytes)`, `handle_timeout(now)`
//! (which ticks), host commands (`propose_put`, `read`, `propose_voter_change`) that
//! return a ticket or an immediate [`Refusal`], and `poll_transmit`, `poll_outcome`,
//! `poll_event`, `poll_timeout`. Each `Ready` is handled in raft-rs's order: entries,
//! hard state and snapshots go to the [`Journal`] (durable) before the messages that
//! depend on them leave; committed entries are applied to [`Registers`].
//!
//! Reads are linearizable through ReadIndex (raft-rs's `ReadOnlyOption::Safe`: the
//! leader confirms its leadership with a heartbeat round, then answers once it has
//! applied through the commit index it saw) — no clock assumption. `get_stale` reads
//! the local state without any check.
//!
//! Only a leader that has heard from a quorum within an election timeout accepts
//! writes and linearizable reads; anyone else answers at once: `NotLeader` with the
//! leader's id when it knows one, `ReadOnly` when it knows none (a minority side, or
//! an election under way). A request accepted and then cut off (leadership lost, no
//! commit within `request_timeout_ms`) is answered too: a write as *maybe applied*.
//!
//! raft-rs draws election timeouts from `rand::thread_rng`; the group overrides each
//! one it drew with one from its seeded [`SeededRng`], so a simulated run is reproducible.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType, Message};
use raft::{Config, ProgressState, RawNode, ReadOnlyOption, SnapshotStatus, StateRole, Storage};

use super::codec::{self, MessageFault};
use super::command::{Command, Registers};
use super::storage::{
    conf_state_record, entries_record, hard_state_record, make_snapshot, snapshot_record, GroupStorage, Journal,
    Recovered,
};
use crate::sansio::SeededRng;

/// Names one request to a group; its answer comes from `poll_outcome`.
pub type Ticket = u64;

/// The configuration of one group member.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// This member's raft id (not 0).
    pub id: u64,
    /// The configured voters (this member included, unless it joins later): the
    /// initial configuration of a fresh journal, and the ids messages are accepted from.
    pub voters: Vec<u64>,
    /// Start with no configuration and wait for the leader's snapshot (a voter being
    /// added to a running group).
    pub join: bool,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Ticks without a leader before an election (randomized in [n, 2n)).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// The largest raft message accepted (a snapshot travels in one message).
    pub max_message_len: usize,
    /// The largest key + value of a write.
    pub max_command_len: usize,
    /// A request not answered after this long fails (writes as maybe applied).
    pub request_timeout_ms: u64,
    /// A snapshot (and a compaction of the journal) every this many applied entries.
    pub snapshot_every: u64,
    /// Requests waiting for an answer at once; beyond, `Busy`.
    pub max_pending: usize,
    /// Events held for the host; beyond, they are dropped and counted.
    pub max_events: usize,
    /// Hold a leader's `Ready` after its appends are handed out, until the host calls
    /// `persist_staged` (after sending them): the leader's fsync then overlaps the
    /// followers'. Off: every `Ready` is finished at once (the simulator).
    pub stage_persistence: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            id: 1,
            voters: vec![1],
            join: false,
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_message_len: 16 << 20,
            max_command_len: 1 << 20,
            request_timeout_ms: 3_000,
            snapshot_every: 10_000,
            max_pending: 100_000,
            max_events: 1_000_000,
            stage_persistence: false,
        }
    }
}

/// Why a request was refused at once (nothing was proposed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another member leads: ask it.
    NotLeader {
        /// Its raft id.
        leader: u64,
    },
    /// No leader reachable (this side of a partition has no quorum, or an election
    /// is under way): only stale reads are served.
    ReadOnly,
    /// The command is larger than `max_command_len`.
    TooLarge,
    /// Too many requests pending, or a voter change already under way.
    Busy,
    /// The group stopped (its journal failed).
    Failed(String),
}

/// The answer to a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The write is committed and applied at this log index.
    Written {
        /// Its index.
        index: u64,
    },
    /// A linearizable read's value.
    Read {
        /// The value (`None`: never written).
        value: Option<Vec<u8>>,
    },
    /// The voter change is committed; the voters now.
    VotersChanged {
        /// The voters.
        voters: Vec<u64>,
    },
    /// The request lost its leader or timed out. A write (or voter change) may still
    /// be applied later (`maybe_applied`); a read read nothing.
    Failed {
        /// Why, as a refusal would say.
        refusal: Refusal,
        /// Whether the change may yet take effect.
        maybe_applied: bool,
    },
}

/// What the host hears about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// The leader this member knows changed.
    Leader {
        /// Its raft id, if any.
        leader: Option<u64>,
        /// The term.
        term: u64,
    },
    /// This member lost (`false`) or regained (`true`) contact with a quorum: the
    /// partition event.
    Quorum {
        /// Whether a quorum is reachable.
        reachable: bool,
    },
    /// A committed write was applied (in log order).
    Applied {
        /// Its log index.
        index: u64,
        /// Who proposed it.
        proposer: u64,
        /// The proposer's ticket.
        ticket: u64,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// The state was replaced by a leader's snapshot (through `index`): read it again
    /// with [`RaftGroup::registers`].
    Restored {
        /// The snapshot's index.
        index: u64,
    },
    /// The voter set changed.
    VotersChanged {
        /// The voters.
        voters: Vec<u64>,
    },
}

/// Why a group could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupError(pub String);

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft group: {}", self.0)
    }
}

impl std::error::Error for GroupError {}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Messages accepted.
    pub messages_in: u64,
    /// Messages refused (see [`MessageFault`]).
    pub messages_refused: u64,
    /// Messages handed to the host.
    pub messages_out: u64,
    /// Writes proposed here.
    pub proposed: u64,
    /// Entries applied.
    pub applied: u64,
    /// Snapshots taken here.
    pub snapshots: u64,
    /// Snapshots received from a leader.
    pub snapshots_restored: u64,
    /// Events dropped because the host did not poll.
    pub events_dropped: u64,
}

/// A `Ready` taken into memory whose journal write waits (see `stage_persistence`).
struct Staged {
    number: u64,
    records: Vec<Vec<u8>>,
    messages: Vec<Message>,
}

struct PendingRead {
    key: Vec<u8>,
    deadline: u64,
    index: Option<u64>,
}

/// One member of one strong category's Raft group.
pub struct RaftGroup {
    config: GroupConfig,
    raw: RawNode<GroupStorage>,
    journal: Box<dyn Journal>,
    registers: Registers,
    applied: u64,
    snapshot_index: u64,
    rng: SeededRng,
    next_ticket: Ticket,
    next_tick_ms: u64,
    pending_writes: BTreeMap<Ticket, u64>,
    pending_reads: BTreeMap<Ticket, PendingRead>,
    pending_conf: Option<(Ticket, u64)>,
    outbox: VecDeque<(u64, Vec<u8>)>,
    outcomes: VecDeque<(Ticket, Outcome)>,
    events: VecDeque<GroupEvent>,
    last_heard: BTreeMap<u64, u64>,
    known_leader: (u64, u64),
    quorum_reachable: bool,
    /// A `Ready` whose early messages went out and whose journal write waits for
    /// `persist_staged` (with `stage_persistence`).
    staged: Option<Staged>,
    /// The term and vote last written to the journal.
    persisted_term_vote: (u64, u64),
    /// Stepped since the last `Ready` was handled (see `defer`).
    unsettled: bool,
    last_now_ms: u64,
    /// Followers a snapshot was sent to, since when (ms).
    snapshot_sent: BTreeMap<u64, u64>,
    failed: Option<String>,
    stats: GroupStats,
}

impl RaftGroup {
    /// Opens a member from what its journal recovered (empty for a new one).
    pub fn open(
        config: GroupConfig,
        mut journal: Box<dyn Journal>,
        recovered: &Recovered,
        mut rng: SeededRng,
        now_ms: u64,
    ) -> Result<Self, GroupError> {
        check_config(&config)?;
        let initial: &[u64] = if config.join { &[] } else { &config.voters };
        let storage = GroupStorage::replay(initial, recovered).map_err(|e| GroupError(e.0))?;
        let fresh = recovered.image.is_none() && recovered.records.is_empty();
        if fresh {
            journal.append(&[conf_state_record(storage.conf_state())]).map_err(GroupError)?;
        }
        let snapshot = storage.latest_snapshot().clone();
        let registers = Registers::decode(&snapshot.data).ok_or_else(|| GroupError("snapshot data".into()))?;
        let applied = snapshot.get_metadata().index;
        let persisted_term_vote = (storage.hard_state().term, storage.hard_state().vote);
        let raft_config = Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            max_size_per_msg: (config.max_message_len / 4) as u64,
            max_inflight_msgs: 256,
            ..Config::default()
        };
        raft_config.validate().map_err(|e| GroupError(e.to_string()))?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_config, storage, &logger).map_err(|e| GroupError(e.to_string()))?;
        let next_ticket = rng.next_u64();
        let mut group = RaftGroup {
            next_tick_ms: now_ms + config.tick_ms,
            config,
            raw,
            journal,
            registers,
            applied,
            snapshot_index: applied,
            rng,
            next_ticket,
            pending_writes: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            pending_conf: None,
            outbox: VecDeque::new(),
            outcomes: VecDeque::new(),
            events: VecDeque::new(),
            last_heard: BTreeMap::new(),
            known_leader: (0, 0),
            quorum_reachable: false,
            snapshot_sent: BTreeMap::new(),
            unsettled: false,
            last_now_ms: now_ms,
            persisted_term_vote,
            staged: None,
            failed: None,
            stats: GroupStats::default(),
        };
        group.randomize_election_timeout();
        if group.voters() == [group.config.id] {
            // Alone: no one to wait for (and no election timeout to sit out at start).
            let _ = group.raw.campaign();
        }
        group.after_step(now_ms);
        Ok(group)
    }

    /// Gives the journal back (the simulator keeps it across a crash).
    pub fn into_journal(self) -> Box<dyn Journal> {
        self.journal
    }

    // ---- getters ----

    /// This member's raft id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&id| id != 0)
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The commit index.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The index applied to the registers.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The current voters.
    pub fn voters(&self) -> Vec<u64> {
        self.raw.store().conf_state().voters.clone()
    }

    /// The applied state.
    pub fn registers(&self) -> &Registers {
        &self.registers
    }

    /// A read of the local state, without any check (possibly stale).
    pub fn get_stale(&self, key: &[u8]) -> Option<&[u8]> {
        self.registers.get(key)
    }

    /// Why the group stopped (its journal failed), if it did: it then refuses every
    /// request and the host must reopen it from its journal.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Counters.
    pub fn stats(&self) -> GroupStats {
        self.stats.clone()
    }

    /// The leader's view of each follower (for failure messages).
    pub fn progress_summary(&self) -> String {
        let mut out = String::new();
        for (id, p) in self.raw.raft.prs().iter() {
            out.push_str(&format!(
                "[{id}: {:?} matched {} next {} paused {} pending_snap {}] ",
                p.state,
                p.matched,
                p.next_idx,
                p.is_paused(),
                p.pending_snapshot
            ));
        }
        out.push_str(&format!(
            "first {} last {}",
            self.raw.raft.raft_log.first_index(),
            self.raw.raft.raft_log.last_index()
        ));
        out
    }

    /// Entries held in memory after the latest snapshot.
    pub fn log_len(&self) -> usize {
        self.raw.store().entry_count()
    }

    // ---- inputs ----

    /// Consumes one message that arrived over an authenticated session from `from`.
    pub fn handle_message(&mut self, now_ms: u64, from: u64, bytes: &[u8]) -> Result<(), MessageFault> {
        let result = self.accept(from, bytes);
        let message = match result {
            Ok(message) => message,
            Err(fault) => {
                self.stats.messages_refused += 1;
                return Err(fault);
            }
        };
        self.stats.messages_in += 1;
        self.last_heard.insert(from, now_ms);
        if self.failed.is_none() {
            // Errors here are stale or misdirected messages raft-rs ignores anyway.
            let _ = self.raw.step(message);
            // At once, not at the deferred Ready: a tick before it would keep raft-rs's
            // own (unseeded) draw.
            self.randomize_election_timeout();
            self.defer(now_ms);
        }
        Ok(())
    }

    fn accept(&self, from: u64, bytes: &[u8]) -> Result<Message, MessageFault> {
        if from == self.config.id || !self.allowed_peers().contains(&from) {
            return Err(MessageFault::NotAVoter);
        }
        codec::decode(bytes, self.config.max_message_len, from, self.config.id)
    }

    fn allowed_peers(&self) -> BTreeSet<u64> {
        let cs = self.raw.store().conf_state();
        let mut ids: BTreeSet<u64> = self.config.voters.iter().copied().collect();
        ids.extend(cs.voters.iter().chain(&cs.voters_outgoing).chain(&cs.learners).copied());
        ids
    }

    /// Advances the clock: Raft ticks, request deadlines, the quorum watch.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.failed.is_some() {
            return;
        }
        let mut ticks = 0;
        while now_ms >= self.next_tick_ms {
            self.next_tick_ms += self.config.tick_ms;
            // After a long pause, a burst of ticks would only start a needless election
            // storm: catch up at most one election timeout.
            if ticks <= self.config.election_ticks {
                self.raw.tick();
                self.randomize_election_timeout();
                ticks += 1;
            }
        }
        self.expire(now_ms);
        self.retry_lost_snapshots(now_ms);
        self.after_step(now_ms);
    }

    /// raft-rs waits, after sending a snapshot, until the host reports how the send
    /// went; a lost message would stall that follower for good. A follower still
    /// waiting after an election timeout is reported failed, so the leader probes it
    /// and sends the snapshot again.
    fn retry_lost_snapshots(&mut self, now_ms: u64) {
        if !self.is_leader() {
            self.snapshot_sent.clear();
            return;
        }
        let window = self.config.tick_ms * self.config.election_ticks as u64;
        let waiting: BTreeSet<u64> =
            self.raw.raft.prs().iter().filter(|(_, p)| p.state == ProgressState::Snapshot).map(|(&id, _)| id).collect();
        self.snapshot_sent.retain(|id, _| waiting.contains(id));
        for id in waiting {
            let since = *self.snapshot_sent.entry(id).or_insert(now_ms);
            if since + window <= now_ms {
                self.snapshot_sent.remove(&id);
                self.raw.report_snapshot(id, SnapshotStatus::Failure);
            }
        }
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> u64 {
        self.next_tick_ms
    }

    // ---- host commands ----

    /// Proposes writing `value` under `key`.
    pub fn propose_put(&mut self, now_ms: u64, key: &[u8], value: &[u8]) -> Result<Ticket, Refusal> {
        self.check_serving(now_ms)?;
        if key.len() + value.len() > self.config.max_command_len {
            return Err(Refusal::TooLarge);
        }
        let ticket = self.take_ticket();
        let command = Command { proposer: self.config.id, ticket, key: key.to_vec(), value: value.to_vec() };
        if self.raw.propose(Vec::new(), command.encode()).is_err() {
            return Err(self.not_serving());
        }
        self.stats.proposed += 1;
        self.pending_writes.insert(ticket, now_ms + self.config.request_timeout_ms);
        self.defer(now_ms);
        Ok(ticket)
    }

    /// Starts a linearizable read of `key` (ReadIndex).
    pub fn read(&mut self, now_ms: u64, key: &[u8]) -> Result<Ticket, Refusal> {
        self.check_serving(now_ms)?;
        let ticket = self.take_ticket();
        self.pending_reads.insert(
            ticket,
            PendingRead { key: key.to_vec(), deadline: now_ms + self.config.request_timeout_ms, index: None },
        );
        self.raw.read_index(ticket.to_le_bytes().to_vec());
        self.defer(now_ms);
        Ok(ticket)
    }

    /// Proposes adding (`add`) or removing a voter: one change at a time, each a
    /// single-member change (Raft thesis §4.1), so any two majorities overlap.
    pub fn propose_voter_change(&mut self, now_ms: u64, node: u64, add: bool) -> Result<Ticket, Refusal> {
        self.check_serving(now_ms)?;
        if self.pending_conf.is_some() || node == 0 {
            return Err(Refusal::Busy);
        }
        let ticket = self.take_ticket();
        let mut change = ConfChange::default();
        change.set_change_type(if add { ConfChangeType::AddNode } else { ConfChangeType::RemoveNode });
        change.node_id = node;
        if self.raw.propose_conf_change(ticket.to_le_bytes().to_vec(), change).is_err() {
            return Err(Refusal::Busy);
        }
        self.pending_conf = Some((ticket, now_ms + self.config.request_timeout_ms));
        self.defer(now_ms);
        Ok(ticket)
    }

    /// Asks this member to campaign now (tests, and leadership transfer by hand).
    pub fn campaign(&mut self, now_ms: u64) {
        let _ = self.raw.campaign();
        self.after_step(now_ms);
    }

    // ---- outputs ----

    /// The next message: (raft id of the receiver, bytes).
    pub fn poll_transmit(&mut self) -> Option<(u64, Vec<u8>)> {
        self.settle();
        self.outbox.pop_front()
    }

    /// The next answer to a ticket.
    pub fn poll_outcome(&mut self) -> Option<(Ticket, Outcome)> {
        self.settle();
        self.outcomes.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.settle();
        self.events.pop_front()
    }

    // ---- internals ----

    fn take_ticket(&mut self) -> Ticket {
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.next_ticket
    }

    fn check_serving(&self, now_ms: u64) -> Result<(), Refusal> {
        if let Some(why) = &self.failed {
            return Err(Refusal::Failed(why.clone()));
        }
        if !self.is_leader() || !self.quorum_heard(now_ms) {
            return Err(self.not_serving());
        }
        if self.pending_writes.len() + self.pending_reads.len() >= self.config.max_pending {
            return Err(Refusal::Busy);
        }
        Ok(())
    }

    fn not_serving(&self) -> Refusal {
        match self.leader() {
            Some(leader) if leader != self.config.id => Refusal::NotLeader { leader },
            _ => Refusal::ReadOnly,
        }
    }

    /// Whether a quorum of voters (this one included) was heard from within an
    /// election timeout: a leader cut off from the majority refuses at once instead of
    /// accepting requests that cannot commit.
    fn quorum_heard(&self, now_ms: u64) -> bool {
        let window = self.config.tick_ms * self.config.election_ticks as u64;
        let voters = &self.raw.store().conf_state().voters;
        let heard = voters
            .iter()
            .filter(|&&v| v == self.config.id || self.last_heard.get(&v).is_some_and(|&t| t + window >= now_ms))
            .count();
        heard * 2 > voters.len()
    }

    fn randomize_election_timeout(&mut self) {
        if self.raw.raft.election_elapsed == 0 {
            let n = self.config.election_ticks;
            let timeout = n + self.rng.index(n);
            self.raw.raft.set_randomized_election_timeout(timeout);
        }
    }

    /// Messages and requests are stepped at once but their `Ready` is handled at the
    /// next poll: everything that arrived in one engine turn shares one journal write
    /// (one fsync) and one round of messages — group commit for Raft.
    fn defer(&mut self, now_ms: u64) {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        self.unsettled = true;
    }

    fn settle(&mut self) {
        if self.unsettled {
            self.unsettled = false;
            self.after_step(self.last_now_ms);
        }
    }

    fn after_step(&mut self, now_ms: u64) {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        self.unsettled = false;
        self.randomize_election_timeout();
        self.process_ready(now_ms);
        self.watch_leadership(now_ms);
    }

    fn expire(&mut self, now_ms: u64) {
        let refusal = self.not_serving();
        let expired: Vec<Ticket> = self.pending_writes.iter().filter(|(_, &d)| d <= now_ms).map(|(&t, _)| t).collect();
        for ticket in expired {
            self.pending_writes.remove(&ticket);
            self.outcomes.push_back((ticket, Outcome::Failed { refusal: refusal.clone(), maybe_applied: true }));
        }
        let expired: Vec<Ticket> =
            self.pending_reads.iter().filter(|(_, r)| r.deadline <= now_ms).map(|(&t, _)| t).collect();
        for ticket in expired {
            self.pending_reads.remove(&ticket);
            self.outcomes.push_back((ticket, Outcome::Failed { refusal: refusal.clone(), maybe_applied: false }));
        }
        if let Some((ticket, deadline)) = self.pending_conf {
            if deadline <= now_ms {
                self.pending_conf = None;
                self.outcomes.push_back((ticket, Outcome::Failed { refusal, maybe_applied: true }));
            }
        }
    }

    /// Reports leader changes and the quorum watch; fails what a lost leadership
    /// leaves pending.
    fn watch_leadership(&mut self, now_ms: u64) {
        let now = (self.raw.raft.leader_id, self.raw.raft.term);
        if now != self.known_leader {
            self.known_leader = now;
            self.push_event(GroupEvent::Leader { leader: self.leader(), term: now.1 });
        }
        if !self.is_leader() {
            self.fail_pending();
        }
        let reachable = match self.leader() {
            Some(id) if id == self.config.id => self.quorum_heard(now_ms),
            Some(id) => {
                let window = self.config.tick_ms * self.config.election_ticks as u64;
                self.last_heard.get(&id).is_some_and(|&t| t + window >= now_ms)
            }
            None => false,
        };
        if reachable != self.quorum_reachable {
            self.quorum_reachable = reachable;
            self.push_event(GroupEvent::Quorum { reachable });
        }
    }

    fn fail_pending(&mut self) {
        if self.pending_writes.is_empty() && self.pending_reads.is_empty() && self.pending_conf.is_none() {
            return;
        }
        let refusal = self.not_serving();
        for (ticket, _) in std::mem::take(&mut self.pending_writes) {
            self.outcomes.push_back((ticket, Outcome::Failed { refusal: refusal.clone(), maybe_applied: true }));
        }
        for (ticket, _) in std::mem::take(&mut self.pending_reads) {
            self.outcomes.push_back((ticket, Outcome::Failed { refusal: refusal.clone(), maybe_applied: false }));
        }
        if let Some((ticket, _)) = self.pending_conf.take() {
            self.outcomes.push_back((ticket, Outcome::Failed { refusal, maybe_applied: true }));
        }
    }

    fn push_event(&mut self, event: GroupEvent) {
        if self.events.len() >= self.config.max_events {
            self.stats.events_dropped += 1;
        } else {
            self.events.push_back(event);
        }
    }

    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            self.stats.messages_out += 1;
            self.outbox.push_back((message.to, codec::encode(&message)));
        }
    }

    fn fail(&mut self, why: String) {
        self.failed = Some(why.clone());
        self.outbox.clear();
        self.fail_pending();
        let refusal = Refusal::Failed(why);
        for (_, outcome) in self.outcomes.iter_mut() {
            if let Outcome::Failed { refusal: r, .. } = outcome {
                *r = refusal.clone();
            }
        }
    }

    /// Handles every `Ready` raft-rs has, in its documented order.
    fn process_ready(&mut self, _now_ms: u64) {
        self.write_staged();
        while self.failed.is_none() && self.staged.is_none() && self.raw.has_ready() {
            let mut ready = self.raw.ready();
            let early = ready.take_messages();
            let vote_changed = ready.hs().is_some_and(|hs| (hs.term, hs.vote) != self.persisted_term_vote);
            let writes = !ready.entries().is_empty() || vote_changed;
            let stage = self.config.stage_persistence && !early.is_empty() && ready.snapshot().is_empty() && writes;
            self.send(early);
            if stage {
                self.stage(ready);
                return;
            }
            self.finish_ready(ready);
        }
    }

    /// The leader's appends may leave before its own journal write (raft-rs's
    /// `messages`): the `Ready` is taken into memory at once (raft-rs's asynchronous
    /// `advance_append_async`), its records and the messages that need them wait for
    /// [`RaftGroup::persist_staged`], which the host calls after sending.
    fn stage(&mut self, mut ready: raft::Ready) {
        let committed = ready.take_committed_entries();
        self.apply(committed);
        let mut records = Vec::new();
        if !ready.entries().is_empty() {
            records.push(entries_record(ready.entries()));
            if let Err(why) = self.raw.mut_store().append(ready.entries()) {
                return self.fail(why);
            }
        }
        if let Some(hs) = ready.hs() {
            if (hs.term, hs.vote) != self.persisted_term_vote {
                records.push(hard_state_record(hs));
                self.persisted_term_vote = (hs.term, hs.vote);
            }
            self.raw.mut_store().set_hard_state(hs.clone());
        }
        for state in ready.take_read_states() {
            self.read_index_known(&state.request_ctx, state.index);
        }
        let messages = ready.take_persisted_messages();
        let number = ready.number();
        self.raw.advance_append_async(ready);
        self.raw.advance_apply();
        self.answer_reads();
        self.staged = Some(Staged { number, records, messages });
    }

    /// Writes a staged `Ready`'s records, sends what waited for them, and tells
    /// raft-rs they are durable.
    fn write_staged(&mut self) {
        let Some(staged) = self.staged.take() else { return };
        if let Err(why) = self.journal.append(&staged.records) {
            return self.fail(format!("journal: {why}"));
        }
        self.send(staged.messages);
        self.raw.on_persist_ready(staged.number);
    }

    /// Whether a `Ready` waits for [`RaftGroup::persist_staged`].
    pub fn has_staged(&self) -> bool {
        self.staged.is_some()
    }

    /// Writes the staged `Ready` to the journal and carries on (with
    /// `stage_persistence`, after the host sent what the group gave it). Returns whether
    /// there was one.
    pub fn persist_staged(&mut self) -> bool {
        if self.staged.is_none() {
            return false;
        }
        self.after_step(self.last_now_ms);
        true
    }

    /// The rest of a `Ready` after its early messages: journal, persisted messages,
    /// read states, advance, apply.
    fn finish_ready(&mut self, mut ready: raft::Ready) {
        let mut records = Vec::new();
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            records.push(snapshot_record(&snapshot));
            self.restore(snapshot);
        }
        let committed = ready.take_committed_entries();
        self.apply(committed);
        if !ready.entries().is_empty() {
            records.push(entries_record(ready.entries()));
            if let Err(why) = self.raw.mut_store().append(ready.entries()) {
                return self.fail(why);
            }
        }
        if let Some(hs) = ready.hs() {
            // Term and vote must be durable before anything is sent; the commit
            // index need not (Raft §5, volatile state: a restarted member learns it
            // again), so a change of commit alone costs no journal write.
            if (hs.term, hs.vote) != self.persisted_term_vote {
                records.push(hard_state_record(hs));
                self.persisted_term_vote = (hs.term, hs.vote);
            }
            self.raw.mut_store().set_hard_state(hs.clone());
        }
        if !records.is_empty() {
            if let Err(why) = self.journal.append(&records) {
                return self.fail(format!("journal: {why}"));
            }
        }
        self.send(ready.take_persisted_messages());
        for state in ready.take_read_states() {
            self.read_index_known(&state.request_ctx, state.index);
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().commit_to(commit);
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed);
        self.raw.advance_apply();
        self.answer_reads();
        self.maybe_snapshot();
    }

    fn restore(&mut self, snapshot: raft::eraftpb::Snapshot) {
        let index = snapshot.get_metadata().index;
        match Registers::decode(&snapshot.data) {
            Some(registers) => {
                let _ = self.raw.mut_store().apply_snapshot(snapshot);
                self.registers = registers;
                self.applied = index;
                self.snapshot_index = index;
                self.stats.snapshots_restored += 1;
                self.push_event(GroupEvent::Restored { index });
            }
            None => self.fail(format!("a leader's snapshot at {index} does not decode")),
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_command(&entry),
                EntryType::EntryConfChange => self.apply_conf_change(&entry),
                EntryType::EntryConfChangeV2 => {}
            }
            self.applied = entry.index;
            self.stats.applied += 1;
        }
    }

    fn apply_command(&mut self, entry: &Entry) {
        let Some(command) = Command::decode(&entry.data) else { return }; // A leader's empty entry.
        self.registers.apply(entry.index, &command);
        if command.proposer == self.config.id && self.pending_writes.remove(&command.ticket).is_some() {
            self.outcomes.push_back((command.ticket, Outcome::Written { index: entry.index }));
        }
        let Command { proposer, ticket, key, value } = command;
        self.push_event(GroupEvent::Applied { index: entry.index, proposer, ticket, key, value });
    }

    fn apply_conf_change(&mut self, entry: &Entry) {
        let Ok(change) = ConfChange::parse_from_bytes(&entry.data) else { return };
        let Ok(cs) = self.raw.apply_conf_change(&change) else { return };
        self.raw.mut_store().set_conf_state(cs.clone());
        if let Err(why) = self.journal.append(&[conf_state_record(&cs)]) {
            return self.fail(format!("journal: {why}"));
        }
        let voters = cs.voters.clone();
        let ticket = u64::from_le_bytes(entry.context.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default());
        if self.pending_conf.is_some_and(|(t, _)| t == ticket) {
            self.pending_conf = None;
            self.outcomes.push_back((ticket, Outcome::VotersChanged { voters: voters.clone() }));
        }
        self.push_event(GroupEvent::VotersChanged { voters });
    }

    fn read_index_known(&mut self, context: &[u8], index: u64) {
        let Some(ticket) = context.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) else { return };
        if let Some(read) = self.pending_reads.get_mut(&ticket) {
            read.index = Some(index);
        }
    }

    fn answer_reads(&mut self) {
        let applied = self.applied;
        let ready: Vec<Ticket> =
            self.pending_reads.iter().filter(|(_, r)| r.index.is_some_and(|i| i <= applied)).map(|(&t, _)| t).collect();
        for ticket in ready {
            if let Some(read) = self.pending_reads.remove(&ticket) {
                let value = self.registers.get(&read.key).map(<[u8]>::to_vec);
                self.outcomes.push_back((ticket, Outcome::Read { value }));
            }
        }
    }

    /// Every `snapshot_every` applied entries: snapshot the registers, drop the log
    /// before them, and compact the journal to an image.
    fn maybe_snapshot(&mut self) {
        if self.applied < self.snapshot_index + self.config.snapshot_every {
            return;
        }
        let index = self.applied;
        let Ok(term) = self.raw.store().term(index) else { return };
        let conf = self.raw.store().conf_state().clone();
        let snapshot = make_snapshot(index, term, &conf, self.registers.encode());
        if self.raw.mut_store().apply_snapshot(snapshot).is_err() {
            return;
        }
        self.snapshot_index = index;
        self.stats.snapshots += 1;
        let image = self.raw.store().image();
        if let Err(why) = self.journal.compact(&image) {
            self.fail(format!("journal compaction: {why}"));
        }
    }
}

fn check_config(config: &GroupConfig) -> Result<(), GroupError> {
    let bad = |why: &str| Err(GroupError(why.to_owned()));
    if config.id == 0 || config.voters.contains(&0) {
        return bad("raft ids must not be 0");
    }
    if config.voters.is_empty() {
        return bad("a group needs voters");
    }
    let distinct: BTreeSet<u64> = config.voters.iter().copied().collect();
    if distinct.len() != config.voters.len() {
        return bad("voters must be distinct");
    }
    if config.tick_ms == 0 || config.election_ticks <= config.heartbeat_ticks || config.heartbeat_ticks == 0 {
        return bad("need tick_ms > 0 and election_ticks > heartbeat_ticks > 0");
    }
    if config.snapshot_every == 0 {
        return bad("snapshot_every must be > 0");
    }
    Ok(())
}
