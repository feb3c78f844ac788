//! One seed's world: the simulator with its swarm nodes, each node's simulated disks,
//! the clients' ledger, the faults in force and the counters of every fault that
//! fired. `run` (src/sim/swarm/run.rs) drives it through the two phases.

use std::collections::{BTreeMap, VecDeque};

use super::byzantine::{Liar, LiarStats};
use super::model::{strong_value, Ledger, Written};
use super::node::{node_dir, HostError, NodeSetup, OpenError, SwarmEvent, SwarmNode};
use super::plan::Plan;
use crate::consensus::GroupConfig;
use crate::node::CoreConfig;
use crate::sim::disk::{DiskFaults, SimDisk};
use crate::sim::{sim_node_id, ClockModel, LinkProfile, Network, SimRng, Simulator};
use crate::state::{CategorySpec, MergeRule, Mode, NodeId, Priority};

/// The eventual last-writer-wins category.
pub const KV: &str = "kv";
/// The eventual CRDT counter category.
pub const COUNTERS: &str = "counters";
/// The strong category.
pub const STRONG: &str = "ledger";
/// Every clock starts this far from zero, so skew never clamps a clock at zero.
const CLOCK_BASE_MS: i64 = 10_000;
/// Converged honest nodes' network times agree within this (the skew drawn is up to
/// 5 s, the time role's samples are whole milliseconds over 1–10 ms links).
const TIME_AGREEMENT_MS: u64 = 250;
/// Trace lines kept for a failure report.
const TRACE_LINES: usize = 40;

/// How often each kind of fault fired.
pub type FaultCounts = BTreeMap<&'static str, u64>;

/// A durable write waiting for its acknowledgement.
#[derive(Clone, Debug)]
enum Ack {
    /// A put, delete or counter add (`kind` as in the workload's weights).
    Write { kind: usize, category: &'static str, key: Vec<u8>, written: Written, delta: i64 },
    /// A chain block.
    Block(crate::chain::BlockId),
}

/// An acknowledgement due at `at_ms`, if node `node` is still in boot `boot` then.
#[derive(Clone, Debug)]
struct PendingAck {
    at_ms: u64,
    node: u32,
    boot: u32,
    ack: Ack,
}

/// A fault with an end.
#[derive(Clone, Copy, Debug)]
enum Timed {
    Heal,
    Unclog(u32, u32),
}

/// One seed's world.
pub struct World {
    pub(super) plan: Plan,
    pub(super) sim: Simulator<SwarmNode>,
    pub(super) members: Vec<NodeId>,
    disks: Vec<SimDisk>,
    raft_disks: Vec<SimDisk>,
    boots: Vec<u32>,
    /// When each crashed node restarts.
    down_until: Vec<Option<u64>>,
    pub(super) ledger: Ledger,
    pub(super) counts: FaultCounts,
    rng: SimRng,
    timed: Vec<(u64, Timed)>,
    pub(super) faults_on: bool,
    trace: VecDeque<String>,
    /// The newest network time each running node reported (it must not go back).
    network_time: Vec<Option<u64>>,
    /// Events taken from nodes, with the simulated time they were raised.
    events: Vec<(u64, u32, SwarmEvent)>,
    /// Lies told by incarnations of liars that have since crashed.
    liar_stats: LiarStats,
    /// Durable writes whose acknowledgement the disk's latency delays.
    pending_acks: Vec<PendingAck>,
    /// Per node, when its newest acknowledgement is due (acknowledgements keep order).
    last_ack_ms: Vec<u64>,
    /// Per node, its data disk's misdirected writes when it last opened cleanly.
    misdirected_at_open: Vec<u64>,
}

impl World {
    /// Builds the cluster of `plan`, every node started empty.
    pub fn new(plan: Plan) -> Result<World, String> {
        let mut rng = SimRng::new(plan.seed);
        let members: Vec<NodeId> = (0..plan.nodes).map(sim_node_id).collect();
        let mut disks = Vec::new();
        let mut raft_disks = Vec::new();
        for _ in 0..plan.nodes {
            disks.push(SimDisk::new(rng.fork(), DiskFaults::default()));
            raft_disks.push(SimDisk::new(rng.fork(), DiskFaults::default()));
        }
        let mut world = World {
            network_time: vec![None; plan.nodes as usize],
            boots: vec![0; plan.nodes as usize],
            down_until: vec![None; plan.nodes as usize],
            sim: Simulator::new("swarm", plan.seed, Network::new(LinkProfile::default())),
            plan,
            members,
            disks,
            raft_disks,
            ledger: Ledger::default(),
            counts: FaultCounts::new(),
            rng,
            timed: Vec::new(),
            faults_on: false,
            trace: VecDeque::new(),
            events: Vec::new(),
            liar_stats: LiarStats::default(),
            pending_acks: Vec::new(),
            last_ack_ms: Vec::new(),
            misdirected_at_open: Vec::new(),
        };
        world.last_ack_ms = vec![0; world.plan.nodes as usize];
        world.misdirected_at_open = vec![0; world.plan.nodes as usize];
        world.sim.keep_unobserved();
        for index in 0..world.plan.nodes {
            let clock = world.draw_skew();
            let node = world.open_node(index, clock.local_ms(0)).map_err(|e| format!("node {index} does not start: {e:?}"))?;
            world.sim.add_node(world.members[index as usize], node);
            world.sim.set_clock(index, clock);
        }
        Ok(world)
    }

    // Nodes.

    fn core_config(&self) -> CoreConfig {
        let mut categories = vec![(KV.to_owned(), CategorySpec { priority: Priority::High, ..CategorySpec::default() })];
        if self.plan.counters {
            let spec = CategorySpec { priority: Priority::Medium, merge: MergeRule::Crdt, ..CategorySpec::default() };
            categories.push((COUNTERS.to_owned(), spec));
        }
        if self.plan.strong {
            categories.push((STRONG.to_owned(), CategorySpec { mode: Mode::Strong, ..CategorySpec::default() }));
        }
        CoreConfig {
            categories,
            anti_entropy_interval_ms: 1_000,
            sync_timeout_ms: 8_000,
            responder_idle_ms: 8_000,
            strong_voters: if self.plan.strong { self.members.clone() } else { Vec::new() },
            strong_group: GroupConfig {
                tick_ms: 50,
                election_ticks: 10,
                heartbeat_ticks: 2,
                request_timeout_ms: 2_000,
                snapshot_every: 200,
                ..GroupConfig::default()
            },
            ..CoreConfig::default()
        }
    }

    fn open_node(&mut self, index: u32, now: u64) -> Result<SwarmNode, OpenError> {
        let i = index as usize;
        let (disk, raft_disk) = (self.disks[i].clone(), self.raft_disks[i].clone());
        let liar = (!self.plan.honest(index)).then(|| {
            let chance = 0.05 + self.rng.unit() * 0.45;
            Liar::new(self.members[i], self.members.clone(), chance, self.rng.fork(), now)
        });
        let setup = NodeSetup {
            index,
            members: &self.members,
            core: self.core_config(),
            chain: self.plan.chain.then(|| super::node::ChainSetup::swarm(index)),
            boot: self.boots[i],
            disk: Box::new(move || Box::new(disk.clone())),
            raft_disk: Box::new(move || Box::new(raft_disk.clone())),
            liar,
        };
        SwarmNode::open(setup, now, self.rng.fork())
    }

    fn draw_skew(&mut self) -> ClockModel {
        let f = &self.plan.faults;
        let offset = if f.clock_skew_ms > 0 { self.rng.below(2 * f.clock_skew_ms as u64 + 1) as i64 - f.clock_skew_ms } else { 0 };
        let drift =
            if f.clock_drift_ppm > 0 { self.rng.below(2 * f.clock_drift_ppm as u64 + 1) as i64 - f.clock_drift_ppm } else { 0 };
        if offset != 0 {
            *self.counts.entry("clock.skew").or_default() += 1;
        }
        if drift != 0 {
            *self.counts.entry("clock.drift").or_default() += 1;
        }
        ClockModel { offset_ms: CLOCK_BASE_MS + offset, drift_ppm: drift }
    }

    /// Whether node `index` runs and has not stopped.
    pub fn up(&self, index: u32) -> bool {
        self.sim.process(index).is_some_and(|node| node.stopped().is_none())
    }

    pub(super) fn note(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t={} ms {line}", self.sim.now_ms()));
    }

    /// The last notable things that happened, oldest first.
    pub fn trace(&self) -> Vec<String> {
        self.trace.iter().cloned().collect()
    }

    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }

    /// Crashes node `index` (or records a fail-stop); it restarts after `down_ms`.
    pub(super) fn crash(&mut self, index: u32, down_ms: u64, why: &str) {
        let Some(node) = self.sim.process(index) else { return };
        if let Some(stats) = node.liar_stats() {
            self.liar_stats = add_liar_stats(self.liar_stats, stats);
        }
        self.sim.crash(index);
        let torn = self.plan.faults.torn_write * f64::from(u8::from(self.faults_on));
        self.disks[index as usize].crash(torn);
        self.raft_disks[index as usize].crash(torn);
        self.ledger.node_crashed(index);
        self.network_time[index as usize] = None;
        self.down_until[index as usize] = Some(self.sim.now_ms() + down_ms);
        self.note(format!("node {index} crashed ({why}), down {down_ms} ms"));
    }

    /// Restarts node `index` from its disks, checking that it recovered every write
    /// it acknowledged; storage found corrupt is wiped (the operator's repair).
    pub(super) fn restart(&mut self, index: u32) -> Result<(), String> {
        self.boots[index as usize] += 1;
        let now = self.sim.local_now_ms(index);
        let node = match self.open_node(index, now) {
            Ok(node) => node,
            Err(OpenError::Transient(why)) => {
                self.down_until[index as usize] = Some(self.sim.now_ms() + 200);
                self.note(format!("node {index} failed to start, retrying: {why}"));
                return Ok(());
            }
            Err(OpenError::Corrupt(why)) => {
                // Only a misdirected write may corrupt a log: anything else refused as
                // corrupt is a recovery bug, not a fault the swarm injected.
                let misdirected = self.disks[index as usize].stats().misdirected_writes;
                if misdirected == self.misdirected_at_open[index as usize] {
                    return Err(format!("node {index}'s storage was refused as corrupt, yet no write was misdirected: {why}"));
                }
                self.count("storage.corruption_detected");
                self.note(format!("node {index} storage corrupt, wiped: {why}"));
                self.disks[index as usize].wipe(&node_dir(index));
                self.wipe_ledger(index);
                self.down_until[index as usize] = Some(self.sim.now_ms());
                return Ok(());
            }
        };
        self.misdirected_at_open[index as usize] = self.disks[index as usize].stats().misdirected_writes;
        self.ledger
            .check_recovered(index, |category, key| node.stored(category, key))
            .and_then(|()| match node.chain() {
                Some(chain) => self.ledger.check_blocks(index, |id| chain.contains(id)),
                None => Ok(()),
            })?;
        self.down_until[index as usize] = None;
        self.count("node.restart");
        self.note(format!("node {index} restarted (boot {})", self.boots[index as usize]));
        self.sim.restart(index, node);
        self.handle_events()
    }

    /// Tells the ledger that node `index` lost its storage: its writes that another
    /// running honest node holds stay owed, the rest are at risk.
    fn wipe_ledger(&mut self, index: u32) {
        let sim = &self.sim;
        let plan = &self.plan;
        let others: Vec<&SwarmNode> =
            (0..plan.nodes).filter(|&i| i != index && plan.honest(i)).filter_map(|i| sim.process(i)).collect();
        // A copy survives on a running honest node, or in the log of the (honest)
        // node that acknowledged it while that node is down.
        let held = |category: &str, key: &[u8], written: &Written, acked_by: u32| {
            (acked_by != index && plan.honest(acked_by) && !sim.is_running(acked_by))
                || others.iter().any(|node| written.kept_by(node.stored(category, key).as_ref()).unwrap_or(false))
        };
        let block_held = |id: &crate::chain::BlockId| others.iter().any(|node| node.chain().is_some_and(|c| c.contains(id)));
        self.ledger.node_wiped(index, held, block_held);
    }

    /// Restarts every node whose downtime is over.
    pub(super) fn restart_due(&mut self) -> Result<(), String> {
        let now = self.sim.now_ms();
        for index in 0..self.plan.nodes {
            if self.down_until[index as usize].is_some_and(|at| at <= now) {
                self.restart(index)?;
            }
        }
        Ok(())
    }

    // Running.

    /// Runs the simulation to `until_ms`, then handles what the nodes reported.
    pub(super) fn run_to(&mut self, until_ms: u64) -> Result<(), String> {
        let events = &mut self.events;
        self.sim
            .run_until(until_ms, &mut |at, index, event| {
                events.push((at, index, event));
                Ok(())
            })
            .map_err(|failure| failure.message)?;
        self.handle_events()
    }

    /// Flushes node `index` after a host command, keeping its events.
    pub(super) fn flush(&mut self, index: u32) -> Result<(), String> {
        let events = &mut self.events;
        self.sim
            .flush_with(index, &mut |at, index, event| {
                events.push((at, index, event));
                Ok(())
            })
            .map_err(|failure| failure.message)?;
        self.handle_events()
    }

    fn handle_events(&mut self) -> Result<(), String> {
        let mut events = self.sim.take_unobserved();
        events.append(&mut self.events);
        events.sort_by_key(|(at, _, _)| *at);
        let mut stopped = Vec::new();
        for (at, index, event) in events {
            match event {
                SwarmEvent::Strong { ticket, result } => self.ledger.strong_finished(index, ticket, &result, at)?,
                // The node stops after this batch: answers it gave before stopping count.
                SwarmEvent::Stopped(why) => stopped.push((index, why)),
                SwarmEvent::Banned { peer, reason } => {
                    let Some(peer_index) = self.sim.index(&peer) else {
                        return Err(format!("node {index} disconnected a peer outside the cluster: {reason}"));
                    };
                    if self.plan.honest(index) && self.plan.honest(peer_index) {
                        return Err(format!("honest node {index} disconnected honest node {peer_index}: {reason}"));
                    }
                    self.note(format!("node {index} disconnected node {peer_index}: {reason}"));
                    self.count("byzantine.disconnected");
                }
            }
        }
        for (index, why) in stopped {
            self.count("node.fail_stop");
            let down = 50 + self.rng.below(500);
            self.crash(index, down, &format!("fail-stop: {why}"));
        }
        Ok(())
    }

    // Host commands, as clients issue them.

    /// One client operation of kind `kind` (an index into the workload's weights) at
    /// a random running honest node.
    pub(super) fn client_op(&mut self, kind: usize) -> Result<(), String> {
        let candidates: Vec<u32> = (0..self.plan.nodes).filter(|&i| self.plan.honest(i) && self.up(i)).collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let index = candidates[self.rng.index(candidates.len())];
        let key_index = self.rng.below(self.plan.workload.keys);
        let key = format!("k{key_index}").into_bytes();
        let now = self.sim.local_now_ms(index);
        let global = self.sim.now_ms();
        let node = self.sim.process_mut(index).ok_or("a running node vanished")?;
        match kind {
            0 | 1 | 2 => {
                let value: Vec<u8> = (0..1 + self.rng.below(48)).map(|_| self.rng.below(256) as u8).collect();
                let delta = 1 + self.rng.below(9) as i64;
                let (category, result) = match kind {
                    0 => (KV, node.put(now, KV, &key, &value).map(Some)),
                    1 => (KV, node.delete(now, KV, &key)),
                    _ => (COUNTERS, node.counter_add(now, COUNTERS, &key, delta).map(Some)),
                };
                let delta = if kind == 2 { delta } else { 0 };
                match result {
                    Ok(Some(version)) => {
                        let stored = node.stored(category, &key).ok_or("an acknowledged write is not stored")?;
                        if stored.version != version {
                            return Err(format!("node {index} acknowledged {version:?} but stores {:?}", stored.version));
                        }
                        let written = Written::of(&stored);
                        self.acknowledge_later(index, Ack::Write { kind, category, key, written, delta });
                    }
                    Ok(None) => {}
                    Err(HostError::NotDurable(_)) if kind == 2 => self.ledger.counter_added(index, &key, delta, false),
                    Err(_) => {}
                }
            }
            3 | 4 => {
                let value = (kind == 3).then(|| self.ledger.next_strong_value());
                let result = match value {
                    Some(value) => node.strong_put(now, STRONG, &key, &strong_value(value)),
                    None => node.strong_read(now, STRONG, &key),
                };
                if let Ok(ticket) = result {
                    self.ledger.strong_started(index, ticket, key_index, value, global);
                }
            }
            5 => {
                let transactions = vec![format!("tx {global} at node {index}").into_bytes()];
                if let Ok(id) = node.propose_block(now, transactions) {
                    self.acknowledge_later(index, Ack::Block(id));
                }
            }
            _ => {
                let held = node.stored(KV, &key);
                self.ledger.acked_ops[6] += 1;
                self.ledger.check_read(index, KV, &key, held.as_ref())?;
            }
        }
        self.acknowledge_due()?;
        self.flush(index)
    }

    /// Hands a durable write's acknowledgement to its client once the disk's latency
    /// has passed, in the node's order (its log is sequential). A node that crashes
    /// first never acknowledges it: the write is durable but the client was not told.
    fn acknowledge_later(&mut self, index: u32, ack: Ack) {
        let latency = self.disks[index as usize].take_latency_ms();
        let at_ms = (self.sim.now_ms() + latency).max(self.last_ack_ms[index as usize]);
        self.last_ack_ms[index as usize] = at_ms;
        self.pending_acks.push(PendingAck { at_ms, node: index, boot: self.boots[index as usize], ack });
    }

    /// Delivers every acknowledgement that is due.
    pub(super) fn acknowledge_due(&mut self) -> Result<(), String> {
        let now = self.sim.now_ms();
        if !self.pending_acks.iter().any(|pending| pending.at_ms <= now) {
            return Ok(());
        }
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_acks).into_iter().partition(|p| p.at_ms <= now);
        self.pending_acks = later;
        due.sort_by_key(|pending| pending.at_ms);
        for pending in due {
            let alive = self.up(pending.node) && self.boots[pending.node as usize] == pending.boot;
            match pending.ack {
                Ack::Write { kind, category, key, written, delta } if alive => {
                    self.ledger.acked_ops[kind] += 1;
                    self.ledger.write_acked(pending.node, category, &key, written)?;
                    if kind == 2 {
                        self.ledger.counter_added(pending.node, &key, delta, true);
                    }
                }
                Ack::Write { kind: 2, key, delta, .. } => self.ledger.counter_added(pending.node, &key, delta, false),
                Ack::Block(id) if alive => self.ledger.block_acked(pending.node, id),
                _ => self.count("node.crash_before_ack"),
            }
        }
        Ok(())
    }

    // Faults.

    /// Switches the seed's network and disk faults on.
    pub(super) fn faults_start(&mut self) {
        self.faults_on = true;
        let f = self.plan.faults.clone();
        let link = LinkProfile {
            latency_jitter_ms: 9 + f.reorder_jitter_ms,
            loss: f.loss,
            duplication: f.duplication,
            replay: f.replay,
            replay_delay_ms: 5_000,
            ..LinkProfile::default()
        };
        self.sim.network.default_link = link;
        let disk_faults = DiskFaults {
            write_error: f.disk_write_error,
            read_error: f.disk_read_error,
            misdirected_write: f.misdirected_write,
            full_disk: f.disk_capacity,
            latency_ms_max: f.disk_latency_ms,
            ..DiskFaults::default()
        };
        // Raft journals get every fault but misdirection (ADR 080); their latency is
        // not modelled (nothing waits on it outside the group).
        let raft_faults = DiskFaults { misdirected_write: 0.0, latency_ms_max: 0, ..disk_faults };
        for disk in &self.disks {
            disk.set_faults(disk_faults);
        }
        for disk in &self.raft_disks {
            disk.set_faults(raft_faults);
        }
    }

    /// Stops every fault: the network heals, links recover, disks stop failing.
    pub(super) fn faults_stop(&mut self) {
        self.faults_on = false;
        self.sim.network.default_link = LinkProfile::default();
        self.sim.network.heal();
        for (_, timed) in std::mem::take(&mut self.timed) {
            if let Timed::Unclog(from, to) = timed {
                self.sim.network.clear_link(from, to);
            }
        }
        for disk in self.disks.iter().chain(&self.raft_disks) {
            disk.set_faults(DiskFaults::default());
            disk.disarm_crash();
        }
        self.note("faults stopped".into());
    }

    /// Draws this step's faults (rates are per second; a step lasts `step_ms`).
    pub(super) fn inject_faults(&mut self, step_ms: u64) {
        let f = self.plan.faults.clone();
        let per_step = |rate: f64| rate * step_ms as f64 / 1_000.0;
        let now = self.sim.now_ms();
        let (partitioned, n) = (self.timed.iter().any(|(_, t)| matches!(t, Timed::Heal)), self.plan.nodes);
        if !partitioned && self.rng.chance(per_step(f.partition_rate)) {
            self.partition(n);
            let until = now + 300 + self.rng.below(4_000);
            self.timed.push((until, Timed::Heal));
        }
        if n > 1 && self.rng.chance(per_step(f.clog_rate)) {
            let from = self.rng.below(n as u64) as u32;
            let to = (from + 1 + self.rng.below(n as u64 - 1) as u32) % n;
            let slow = LinkProfile { latency_min_ms: 500 + self.rng.below(2_000), ..self.sim.network.default_link };
            self.sim.network.set_link(from, to, slow);
            self.timed.push((now + 500 + self.rng.below(3_000), Timed::Unclog(from, to)));
            self.count("net.clog");
            self.note(format!("link {from}->{to} clogged"));
        }
        if self.rng.chance(per_step(f.crash_rate)) {
            let index = self.rng.below(n as u64) as u32;
            if self.sim.is_running(index) && self.rng.chance(0.5) {
                self.count("node.crash");
                let down = 100 + self.rng.below(4_000);
                self.crash(index, down, "crash");
            } else if self.sim.is_running(index) {
                // The process dies in the middle of its next log write.
                self.disks[index as usize].crash_during_next_append();
                self.note(format!("node {index} will crash during its next write"));
            }
        }
        if self.rng.chance(per_step(f.clock_jump_rate)) {
            let index = self.rng.below(n as u64) as u32;
            let jump = (500 + self.rng.below(4_500)) as i64 * if self.rng.chance(0.5) { 1 } else { -1 };
            let mut clock = self.sim.clock(index);
            clock.offset_ms = (clock.offset_ms + jump).max(-CLOCK_BASE_MS / 2);
            self.sim.set_clock(index, clock);
            self.count("clock.jump");
            self.note(format!("node {index} clock jumped {jump} ms"));
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timed).into_iter().partition(|(at, _)| *at <= now);
        self.timed = later;
        for (_, timed) in due {
            match timed {
                Timed::Heal => {
                    self.sim.network.heal();
                    self.note("partition healed".into());
                }
                Timed::Unclog(from, to) => self.sim.network.clear_link(from, to),
            }
        }
    }

    fn partition(&mut self, n: u32) {
        match self.rng.below(3) {
            0 => {
                let cut = 1 + self.rng.below(u64::from(n - 1)) as u32;
                let mut order: Vec<u32> = (0..n).collect();
                self.rng.shuffle(&mut order);
                let side: Vec<u32> = order[..cut as usize].to_vec();
                self.sim.network.split(n, |node| u32::from(side.contains(&node)));
                self.count("net.partition.symmetric");
                self.note(format!("partition: {side:?} | rest"));
            }
            1 => {
                let from = self.rng.below(n as u64) as u32;
                let to = (from + 1 + self.rng.below(n as u64 - 1) as u32) % n;
                self.sim.network.cut_one_way(from, to);
                self.count("net.partition.one_way");
                self.note(format!("partition: one-way {from}->{to}"));
            }
            _ => {
                let node = self.rng.below(n as u64) as u32;
                self.sim.network.isolate(node);
                self.count("net.partition.isolate");
                self.note(format!("partition: node {node} isolated"));
            }
        }
    }

    // What the run loop asks.

    /// A draw from the world's generator.
    pub(super) fn chance(&mut self, probability: f64) -> bool {
        self.rng.chance(probability)
    }

    /// An index drawn with the given weights (`total` is their sum, > 0).
    pub(super) fn pick_weighted(&mut self, weights: &[u32], total: u64) -> usize {
        let mut draw = self.rng.below(total.max(1));
        for (index, &weight) in weights.iter().enumerate() {
            if draw < u64::from(weight) {
                return index;
            }
            draw -= u64::from(weight);
        }
        weights.len() - 1
    }

    /// Every down node restarts at the next chance.
    pub(super) fn restart_all_now(&mut self) {
        let now = self.sim.now_ms();
        for down in self.down_until.iter_mut().flatten() {
            *down = now;
        }
    }

    /// The honest nodes' indices.
    pub(super) fn honest_nodes(&self) -> Vec<u32> {
        (0..self.plan.nodes).filter(|&i| self.plan.honest(i)).collect()
    }

    /// The bounds the core's configuration sets: queue bytes, responders per peer,
    /// pending pushes, events.
    pub(super) fn bounds(&self) -> (usize, usize, usize, usize) {
        let config = self.core_config();
        (config.peer_queue_bytes, config.max_responders_per_peer, config.max_pending_push, config.max_events)
    }

    /// Network time must never go back on a running node.
    pub(super) fn check_network_time(&mut self, index: u32, now: u64) -> Result<(), String> {
        let newest = &mut self.network_time[index as usize];
        if let Some(before) = *newest {
            if now < before {
                return Err(format!("network time went back on node {index}: {before} ms, then {now} ms"));
            }
        }
        *newest = Some(now);
        Ok(())
    }

    /// Why the honest nodes have not converged yet, or `None` when they have.
    pub(super) fn divergence(&self) -> Option<String> {
        let honest = self.honest_nodes();
        if let Some(&down) = honest.iter().find(|&&i| !self.up(i)) {
            return Some(format!("node {down} is down"));
        }
        if !self.pending_acks.is_empty() {
            return Some(format!("{} acknowledgements pending", self.pending_acks.len()));
        }
        if self.ledger.strong_outstanding() > 0 {
            return Some(format!("{} strong requests unanswered", self.ledger.strong_outstanding()));
        }
        let nodes: Vec<(u32, &SwarmNode)> = honest.iter().filter_map(|&i| Some((i, self.sim.process(i)?))).collect();
        let (first_index, first) = nodes[0];
        for &(index, node) in &nodes[1..] {
            if node.core().state_hash() != first.core().state_hash() {
                return Some(format!(
                    "state hashes of nodes {first_index} and {index} differ: {}",
                    describe_difference(first, node)
                ));
            }
            if let (Some(a), Some(b)) = (first.chain(), node.chain()) {
                if a.head() != b.head() {
                    return Some(format!("chain heads of nodes {first_index} and {index} differ"));
                }
            }
        }
        if nodes.len() >= 3 {
            // Network time needs two peers besides the node itself to move.
            let times: Vec<u64> = nodes.iter().map(|&(i, node)| node.network_ms(self.sim.local_now_ms(i))).collect();
            let spread = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
            if spread > TIME_AGREEMENT_MS {
                return Some(format!("network times of the honest nodes are {spread} ms apart"));
            }
        }
        for &liar in &self.plan.byzantine {
            let liar_id = self.members[liar as usize];
            if let Some(&(index, _)) = nodes.iter().find(|(_, node)| !node.banned().contains(&liar_id)) {
                return Some(format!("honest node {index} still talks to the liar {liar}"));
            }
        }
        None
    }

    /// Every fault counter: the harness's own, the network's, the disks', the liars'.
    pub(super) fn fault_counts(&self) -> FaultCounts {
        let mut counts = self.counts.clone();
        let net = self.sim.stats();
        for (kind, value) in [
            ("net.loss", net.frames_lost),
            ("net.duplicate", net.frames_duplicated),
            ("net.replay", net.frames_replayed),
            ("net.reorder", net.frames_reordered),
            ("net.partitioned_frames", net.frames_partitioned),
        ] {
            *counts.entry(kind).or_default() += value;
        }
        for disk in self.disks.iter().chain(&self.raft_disks) {
            let stats = disk.stats();
            for (kind, value) in [
                ("disk.torn_write", stats.torn_writes),
                ("disk.write_error", stats.write_errors),
                ("disk.read_error", stats.read_errors),
                ("disk.misdirected_write", stats.misdirected_writes),
                ("disk.full", stats.full_disk_refusals),
                ("disk.latency", stats.latency_draws),
                ("node.crash_mid_write", stats.crashes_mid_write),
            ] {
                *counts.entry(kind).or_default() += value;
            }
        }
        let mut liars = self.liar_stats;
        for index in 0..self.plan.nodes {
            if let Some(stats) = self.sim.process(index).and_then(SwarmNode::liar_stats) {
                liars = add_liar_stats(liars, stats);
            }
        }
        *counts.entry("byzantine.corrupted_message").or_default() += liars.corrupted;
        *counts.entry("byzantine.forged_membership").or_default() += liars.forged_membership;
        *counts.entry("byzantine.flood_frame").or_default() += liars.flood_frames;
        counts.retain(|_, value| *value > 0);
        counts
    }
}

fn add_liar_stats(a: LiarStats, b: LiarStats) -> LiarStats {
    LiarStats {
        corrupted: a.corrupted + b.corrupted,
        forged_membership: a.forged_membership + b.forged_membership,
        flood_frames: a.flood_frames + b.flood_frames,
    }
}

/// Which categories two nodes disagree on, and what each sees of the other.
fn describe_difference(a: &SwarmNode, b: &SwarmNode) -> String {
    let mut out = Vec::new();
    for category in a.core().replica().categories() {
        let name = category.name();
        if a.core().category_root(name) != b.core().category_root(name) {
            let count = |node: &SwarmNode| node.core().replica().category(name).map_or(0, |c| c.len());
            out.push(format!("{name} ({} vs {} entries)", count(a), count(b)));
        }
    }
    let view = |node: &SwarmNode, other: &SwarmNode| {
        format!(
            "sessions {:?}, live members {}, banned {}, sees the other as {:?}, {:?}, {:?}",
            node.sessions().len(),
            node.swim().live_members().count(),
            node.banned().len(),
            node.swim().member(&other.id()),
            node.counters(),
            node.swim().stats()
        )
    };
    format!("categories {}; first: {}; second: {}", out.join(", "), view(a, b), view(b, a))
}
