//! A deterministic cluster of [`RaftGroup`]s for tests: virtual time in 1 ms steps,
//! message latency and loss, partitions, crashes and restarts from the journal, and
//! clients writing and reading registers whose history the checker verifies.
//!
//! Everything random comes from one seed, so a failing run is replayed by its seed.
//! A crash drops the member (its pending requests become unknown outcomes for the
//! clients); its journal survives, as the node's fsynced log does, and a restart
//! reopens the member from it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex};

use super::checker::{Op, OpKind};
use super::group::{GroupConfig, GroupEvent, Outcome, RaftGroup, Refusal, Ticket};
use super::storage::{Journal, MemJournal, Recovered};
use crate::sansio::SeededRng;

/// A journal the simulator keeps across a member's crash.
#[derive(Clone, Default)]
pub struct SharedJournal(pub Arc<Mutex<MemJournal>>);

impl SharedJournal {
    fn recovered(&self) -> Recovered {
        self.0.lock().map(|j| j.durable.clone()).unwrap_or_default()
    }
}

impl Journal for SharedJournal {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), String> {
        self.0.lock().map_err(|_| "poisoned".to_owned())?.append(records)
    }

    fn compact(&mut self, image: &[u8]) -> Result<(), String> {
        self.0.lock().map_err(|_| "poisoned".to_owned())?.compact(image)
    }
}

/// What a simulated run does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed of everything.
    pub seed: u64,
    /// Members (raft ids 1..=voters).
    pub voters: usize,
    /// Registers the clients use.
    pub registers: u64,
    /// Clients, each with one request outstanding at a time.
    pub clients: usize,
    /// Virtual milliseconds of faults and load.
    pub duration_ms: u64,
    /// Message latency, uniform in [1, max_latency_ms].
    pub max_latency_ms: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Inject partitions.
    pub partitions: bool,
    /// Inject crashes and restarts.
    pub crashes: bool,
    /// Mean milliseconds between fault injections.
    pub fault_every_ms: u64,
    /// Clients read with `get_stale` at whichever member they talk to, instead of
    /// ReadIndex at the leader: the checker must then find violations (its teeth).
    pub stale_reads: bool,
    /// The members' configuration (id and voters are set per member).
    pub group: GroupConfig,
}

impl SimConfig {
    /// Five voters, four registers, three clients, faults of every kind.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            voters: 5,
            registers: 4,
            clients: 3,
            duration_ms: 4_000,
            max_latency_ms: 5,
            loss: 0.05,
            partitions: true,
            crashes: true,
            fault_every_ms: 300,
            stale_reads: false,
            group: GroupConfig {
                tick_ms: 10,
                election_ticks: 10,
                heartbeat_ticks: 2,
                request_timeout_ms: 300,
                snapshot_every: 50,
                ..GroupConfig::default()
            },
        }
    }

    /// The election timeout in milliseconds.
    pub fn election_timeout_ms(&self) -> u64 {
        self.group.tick_ms * self.group.election_ticks as u64
    }
}

struct Member {
    group: Option<RaftGroup>,
    journal: SharedJournal,
    restarts: u64,
}

#[derive(Default)]
struct Client {
    target: usize,
    next_at: u64,
    /// (member index, ticket, history index)
    pending: Option<(usize, Ticket, usize)>,
}

/// (proposer, ticket, key, value) of an applied write.
type AppliedWrite = (u64, u64, Vec<u8>, Vec<u8>);

type InFlight = Reverse<(u64, u64, usize, usize, Vec<u8>)>;

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// The client history (for the checker).
    pub history: Vec<Op>,
    /// Writes acknowledged: (index, proposer, ticket).
    pub acknowledged: Vec<(u64, u64, u64)>,
    /// Safety violations found by the driver itself (diverging logs, lost entries).
    pub violations: Vec<String>,
    /// Milliseconds from the final heal to a leader known by a majority (None: never).
    pub leader_after_heal_ms: Option<u64>,
    /// Counters: requests answered at once with NotLeader / ReadOnly.
    pub refused_not_leader: u64,
    /// See above.
    pub refused_read_only: u64,
    /// Quorum-lost events reported by members.
    pub quorum_lost_events: u64,
    /// Snapshots restored from a leader, over all members.
    pub snapshots_restored: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Partitions injected.
    pub partitions: u64,
}

/// The cluster under test.
pub struct Cluster {
    config: SimConfig,
    now: u64,
    clock: u64,
    rng: SeededRng,
    members: Vec<Member>,
    network: BinaryHeap<InFlight>,
    sent: u64,
    side: Vec<u8>,
    clients: Vec<Client>,
    next_value: u64,
    /// Set for the final settling: clients start nothing new.
    clients_stopped: bool,
    /// Per member: index → every write it applied.
    applied: Vec<BTreeMap<u64, AppliedWrite>>,
    report: Report,
}

impl Cluster {
    /// Starts every member.
    pub fn new(config: SimConfig) -> Self {
        let mut rng = SeededRng::new(config.seed);
        let n = config.voters;
        let mut cluster = Cluster {
            now: 0,
            clock: 0,
            members: (0..n).map(|_| Member { group: None, journal: SharedJournal::default(), restarts: 0 }).collect(),
            network: BinaryHeap::new(),
            sent: 0,
            side: vec![0; n],
            clients: (0..config.clients).map(|_| Client { target: rng.index(n), ..Client::default() }).collect(),
            next_value: 1,
            clients_stopped: false,
            applied: vec![BTreeMap::new(); n],
            report: Report::default(),
            rng,
            config,
        };
        for i in 0..n {
            cluster.start(i);
        }
        cluster
    }

    fn start(&mut self, i: usize) {
        let member = &mut self.members[i];
        let mut config = self.config.group.clone();
        config.id = i as u64 + 1;
        config.voters = (1..=self.config.voters as u64).collect();
        let seed = self.config.seed ^ ((i as u64 + 1) << 40) ^ (member.restarts << 20);
        let recovered = member.journal.recovered();
        let group = RaftGroup::open(config, Box::new(member.journal.clone()), &recovered, SeededRng::new(seed), self.now);
        match group {
            Ok(group) => member.group = Some(group),
            Err(error) => self.report.violations.push(format!("member {} did not reopen: {error}", i + 1)),
        }
    }

    fn crash(&mut self, i: usize) {
        if self.members[i].group.take().is_some() {
            self.report.crashes += 1;
            self.members[i].restarts += 1;
            for client in &mut self.clients {
                if client.pending.is_some_and(|(m, _, _)| m == i) {
                    // The answer will never come: a write's outcome is unknown, a read read nothing.
                    if let Some((_, _, at)) = client.pending.take() {
                        drop_unanswered_read(&mut self.report.history[at]);
                    }
                }
            }
        }
    }

    /// The member with this index, if up.
    pub fn member(&self, i: usize) -> Option<&RaftGroup> {
        self.members[i].group.as_ref()
    }

    /// Runs the fault phase, then heals everything, restarts every member, and runs
    /// until a leader is known by a majority and every member has applied the same.
    pub fn run(mut self) -> Report {
        let election = self.config.election_timeout_ms();
        while self.now < self.config.duration_ms {
            self.inject_faults();
            self.step();
        }
        // Heal: every member up, one side, no loss.
        self.side.iter_mut().for_each(|s| *s = 0);
        for i in 0..self.members.len() {
            if self.members[i].group.is_none() {
                self.start(i);
            }
        }
        let healed_at = self.now;
        self.config.loss = 0.0;
        let deadline = healed_at + 30 * election;
        while self.now < deadline {
            self.step();
            if self.report.leader_after_heal_ms.is_none() && self.majority_leader().is_some() {
                self.report.leader_after_heal_ms = Some(self.now - healed_at);
            }
            if self.report.leader_after_heal_ms.is_some() && self.settled() {
                break;
            }
        }
        // Let the clients' last requests finish, then stop them and settle.
        self.clients_stopped = true;
        let quiet = self.now + 10 * election;
        while self.now < quiet && !(self.clients.iter().all(|c| c.pending.is_none()) && self.settled()) {
            self.step();
        }
        self.verify_logs();
        if !self.report.violations.is_empty() {
            for (i, m) in self.members.iter().enumerate() {
                if let Some(g) = &m.group {
                    self.report.violations.push(format!(
                        "member {}: leader {} term {} leads? {} commit {} applied {} log {} stats {:?}",
                        i + 1,
                        g.leader().unwrap_or(0),
                        g.term(),
                        g.is_leader(),
                        g.commit_index(),
                        g.applied_index(),
                        g.log_len(),
                        g.stats()
                    ));
                    if g.is_leader() {
                        self.report.violations.push(g.progress_summary());
                    }
                }
            }
        }
        for member in self.members.iter().flatten_groups() {
            self.report.snapshots_restored += member.stats().snapshots_restored;
        }
        self.report
    }

    fn majority_leader(&self) -> Option<u64> {
        let leader = self.members.iter().filter_map(|m| m.group.as_ref()).find(|g| g.is_leader())?.id();
        let knowing =
            self.members.iter().filter_map(|m| m.group.as_ref()).filter(|g| g.leader() == Some(leader)).count();
        (knowing * 2 > self.members.len()).then_some(leader)
    }

    fn settled(&self) -> bool {
        let groups: Vec<&RaftGroup> = self.members.iter().filter_map(|m| m.group.as_ref()).collect();
        let first = groups[0].applied_index();
        groups.iter().all(|g| g.applied_index() == first && g.commit_index() == first)
    }

    fn inject_faults(&mut self) {
        if !self.rng.chance(1.0 / self.config.fault_every_ms as f64) {
            return;
        }
        let n = self.members.len();
        match self.rng.below(4) {
            0 if self.config.partitions => {
                // A random split; the minority is 1 or 2 members (or everyone isolated).
                self.report.partitions += 1;
                if self.rng.chance(0.2) {
                    self.side = (0..n as u8).collect();
                } else {
                    let minority = 1 + self.rng.index(2);
                    let mut order: Vec<usize> = (0..n).collect();
                    self.rng.shuffle(&mut order);
                    self.side = vec![0; n];
                    order.iter().take(minority).for_each(|&i| self.side[i] = 1);
                }
            }
            1 => self.side.iter_mut().for_each(|s| *s = 0),
            2 if self.config.crashes => {
                let i = self.rng.index(n);
                self.crash(i);
            }
            3 if self.config.crashes => {
                if let Some(i) = (0..n).find(|&i| self.members[i].group.is_none()) {
                    self.start(i);
                }
            }
            _ => {}
        }
    }

    /// One virtual millisecond.
    fn step(&mut self) {
        self.now += 1;
        while let Some(Reverse((at, _, _, _, _))) = self.network.peek() {
            if *at > self.now {
                break;
            }
            let Some(Reverse((_, _, from, to, bytes))) = self.network.pop() else { break };
            if let Some(group) = self.members[to].group.as_mut() {
                if let Err(fault) = group.handle_message(self.now, from as u64 + 1, &bytes) {
                    self.report.violations.push(format!("an honest message was refused: {fault:?}"));
                }
            }
        }
        for i in 0..self.members.len() {
            if let Some(group) = self.members[i].group.as_mut() {
                if self.now >= group.poll_timeout() {
                    group.handle_timeout(self.now);
                }
            }
        }
        for c in 0..self.clients.len() {
            self.client_act(c);
        }
        for i in 0..self.members.len() {
            self.drain(i);
        }
    }

    fn client_act(&mut self, c: usize) {
        let client = &self.clients[c];
        if self.clients_stopped || client.pending.is_some() || self.now < client.next_at {
            return;
        }
        let target = client.target;
        let key = self.rng.below(self.config.registers);
        let write = self.rng.chance(0.5);
        let value = self.next_value;
        let Some(group) = self.members[target].group.as_mut() else {
            self.retarget(c, None);
            return;
        };
        if !write && self.config.stale_reads {
            let value = group.get_stale(&key.to_le_bytes()).and_then(|v| v.try_into().ok()).map(u64::from_le_bytes);
            let invoke = self.clock + 1;
            self.clock += 2;
            self.report.history.push(Op { key, kind: OpKind::Read(value), invoke, complete: Some(self.clock) });
            self.clients[c].next_at = self.now + 1 + self.rng.below(5);
            return;
        }
        let answer = if write {
            group.propose_put(self.now, &key.to_le_bytes(), &value.to_le_bytes())
        } else {
            group.read(self.now, &key.to_le_bytes())
        };
        match answer {
            Ok(ticket) => {
                self.clock += 1;
                let kind = if write { OpKind::Write(value) } else { OpKind::Read(None) };
                self.next_value += write as u64;
                self.report.history.push(Op { key, kind, invoke: self.clock, complete: None });
                self.clients[c].pending = Some((target, ticket, self.report.history.len() - 1));
            }
            Err(Refusal::NotLeader { leader }) => {
                self.report.refused_not_leader += 1;
                self.retarget(c, Some(leader as usize - 1));
            }
            Err(Refusal::ReadOnly) => {
                self.report.refused_read_only += 1;
                self.retarget(c, None);
            }
            Err(other) => self.report.violations.push(format!("unexpected refusal {other:?}")),
        }
    }

    fn retarget(&mut self, c: usize, to: Option<usize>) {
        let n = self.members.len();
        let next = to.unwrap_or_else(|| self.rng.index(n));
        let client = &mut self.clients[c];
        client.target = next;
        client.next_at = self.now + 1 + self.rng.below(10);
    }

    fn drain(&mut self, i: usize) {
        let Some(group) = self.members[i].group.as_mut() else { return };
        let mut out = Vec::new();
        loop {
            while let Some(t) = group.poll_transmit() {
                out.push(t);
            }
            // With `stage_persistence`, the leader's appends are out before its write.
            if !group.persist_staged() {
                break;
            }
        }
        for (to, bytes) in out {
            let to = to as usize - 1;
            if to >= self.side.len() || self.side[to] != self.side[i] || self.rng.chance(self.config.loss) {
                continue;
            }
            let at = self.now + 1 + self.rng.below(self.config.max_latency_ms);
            self.sent += 1;
            self.network.push(Reverse((at, self.sent, i, to, bytes)));
        }
        let mut outcomes = Vec::new();
        while let Some(outcome) = group.poll_outcome() {
            outcomes.push(outcome);
        }
        let mut events = Vec::new();
        while let Some(event) = group.poll_event() {
            events.push(event);
        }
        for (ticket, outcome) in outcomes {
            self.answer(i, ticket, outcome);
        }
        for event in events {
            self.observe(i, event);
        }
    }

    fn answer(&mut self, member: usize, ticket: Ticket, outcome: Outcome) {
        let Some(c) = self.clients.iter().position(|c| c.pending.is_some_and(|(m, t, _)| m == member && t == ticket))
        else {
            return;
        };
        let Some((_, _, at)) = self.clients[c].pending.take() else { return };
        self.clients[c].next_at = self.now + self.rng.below(5);
        let op = &mut self.report.history[at];
        match outcome {
            Outcome::Written { index } => {
                self.clock += 1;
                op.complete = Some(self.clock);
                self.report.acknowledged.push((index, member as u64 + 1, ticket));
            }
            Outcome::Read { value } => {
                self.clock += 1;
                op.complete = Some(self.clock);
                let value = value.and_then(|v| v.try_into().ok()).map(u64::from_le_bytes);
                op.kind = OpKind::Read(value);
            }
            Outcome::Failed { .. } | Outcome::VotersChanged { .. } => {
                drop_unanswered_read(op);
                self.retarget(c, None);
            }
        }
    }

    fn observe(&mut self, member: usize, event: GroupEvent) {
        match event {
            GroupEvent::Applied { index, proposer, ticket, key, value } => {
                let record = (proposer, ticket, key, value);
                match self.applied[member].get(&index) {
                    Some(seen) if *seen != record => self
                        .report
                        .violations
                        .push(format!("member {} applied two different entries at index {index}", member + 1)),
                    _ => {
                        self.applied[member].insert(index, record);
                    }
                }
            }
            GroupEvent::Quorum { reachable: false } => self.report.quorum_lost_events += 1,
            _ => {}
        }
    }

    /// State machine safety across members, no acknowledged write lost, and every
    /// member's final state equal to the union log applied in order.
    fn verify_logs(&mut self) {
        let mut union: BTreeMap<u64, AppliedWrite> = BTreeMap::new();
        for (m, log) in self.applied.iter().enumerate() {
            for (index, record) in log {
                if let Some(other) = union.get(index) {
                    if other != record {
                        self.report.violations.push(format!("member {} diverges at index {index}", m + 1));
                    }
                } else {
                    union.insert(*index, record.clone());
                }
            }
        }
        for &(index, proposer, ticket) in &self.report.acknowledged {
            if !union.get(&index).is_some_and(|r| r.0 == proposer && r.1 == ticket) {
                self.report.violations.push(format!("acknowledged write at {index} is not in the log"));
            }
        }
        let mut expected = super::command::Registers::default();
        for (index, (proposer, ticket, key, value)) in &union {
            expected.apply(
                *index,
                &super::command::Command {
                    proposer: *proposer,
                    ticket: *ticket,
                    key: key.clone(),
                    value: value.clone(),
                },
            );
        }
        for (m, member) in self.members.iter().enumerate() {
            if let Some(group) = &member.group {
                if group.registers() != &expected {
                    self.report.violations.push(format!(
                        "member {} ends with another state (applied {}, commit {}, {} keys; union has {} entries, last {:?})",
                        m + 1,
                        group.applied_index(),
                        group.commit_index(),
                        group.registers().len(),
                        union.len(),
                        union.keys().last()
                    ));
                }
            }
        }
    }
}

fn drop_unanswered_read(op: &mut Op) {
    if let OpKind::Read(_) = op.kind {
        op.complete = None; // The checker ignores reads without an answer.
    }
}

trait FlattenGroups<'a> {
    fn flatten_groups(self) -> Box<dyn Iterator<Item = &'a RaftGroup> + 'a>;
}

impl<'a, I: Iterator<Item = &'a Member> + 'a> FlattenGroups<'a> for I {
    fn flatten_groups(self) -> Box<dyn Iterator<Item = &'a RaftGroup> + 'a> {
        Box::new(self.filter_map(|m| m.group.as_ref()))
    }
}
