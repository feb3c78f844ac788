//! One seed's world: the simulator with its swarm nodes, each node's simulated disks,
//! the clients' ledger, the faults in force and the counters of every fault that
//! fired. `run` (src/sim/swarm/run.rs) drives it through the two phases.

use std::collections::{BTreeMap, VecDeque};

mod clients;
mod convergence;
mod faults;
mod lifecycle;

use clients::PendingAck;
use faults::{add_liar_stats, Timed};

use super::byzantine::{Liar, LiarStats};
use super::model::{strong_value, Ledger, Written};
use super::node::{node_dir, HostError, NodeSetup, OpenError, SwarmEvent, SwarmNode};
use super::plan::{ClientOp, Plan};
use crate::consensus::GroupConfig;
use crate::node::CoreConfig;
use crate::sim::disk::{DiskFaults, SimDisk};
use crate::sansio::SeededRng;
use crate::sim::{sim_node_id, ClockModel, LinkProfile, Network, Simulator};
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
    rng: SeededRng,
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
        let mut rng = SeededRng::new(plan.seed);
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

    pub(in crate::sim::swarm) fn note(&mut self, line: String) {
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

    // Running.

    /// Runs the simulation to `until_ms`, then handles what the nodes reported.
    pub(in crate::sim::swarm) fn run_to(&mut self, until_ms: u64) -> Result<(), String> {
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
    pub(in crate::sim::swarm) fn flush(&mut self, index: u32) -> Result<(), String> {
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
                SwarmEvent::Strong { ticket, result, .. } => self.ledger.strong_finished(index, ticket, &result, at)?,
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
                SwarmEvent::Membership(_) => {}
            }
        }
        for (index, why) in stopped {
            self.count("node.fail_stop");
            let down = 50 + self.rng.below(500);
            self.crash(index, down, &format!("fail-stop: {why}"));
        }
        Ok(())
    }

    // What the run loop asks.

    /// A draw from the world's generator.
    pub(in crate::sim::swarm) fn chance(&mut self, probability: f64) -> bool {
        self.rng.chance(probability)
    }

    /// A client operation drawn with the workload's weights.
    pub(in crate::sim::swarm) fn pick_op(&mut self) -> ClientOp {
        let weights = self.plan.workload.weights;
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut draw = self.rng.below(total.max(1));
        for (op, weight) in ClientOp::ALL.into_iter().zip(weights) {
            if draw < u64::from(weight) {
                return op;
            }
            draw -= u64::from(weight);
        }
        ClientOp::Read
    }

    /// The honest nodes' indices.
    pub(in crate::sim::swarm) fn honest_nodes(&self) -> Vec<u32> {
        (0..self.plan.nodes).filter(|&i| self.plan.honest(i)).collect()
    }

    /// The bounds the core's configuration sets: queue bytes, responders per peer,
    /// pending pushes, events.
    pub(in crate::sim::swarm) fn bounds(&self) -> (usize, usize, usize, usize) {
        let config = self.core_config();
        (config.peer_queue_bytes, config.max_responders_per_peer, config.max_pending_push, config.max_events)
    }

}

