//! One seed, start to end: the safety phase (faults and client operations, the
//! invariants checked as it goes), then the liveness phase (faults stopped, every
//! node restarted, no new operations) in which the honest nodes must converge within
//! a bounded simulated time, then the final checks against the clients' ledger.

use std::fmt;

use super::plan::Plan;
use super::world::{FaultCounts, World, COUNTERS};
use crate::consensus::checker::{check_registers, CheckResult};
use crate::membership::swim::MAX_MEMBERS;

/// Simulated time per step of the harness.
const STEP_MS: u64 = 10;
/// Resource bounds and clocks are checked this often.
const CHECK_EVERY_MS: u64 = 100;
/// Convergence is looked for this often in the liveness phase.
const CONVERGE_CHECK_MS: u64 = 250;
/// Search steps the linearizability checker may spend per key.
const CHECKER_BUDGET: u64 = 2_000_000;
/// Frames one node may have waiting to leave.
const OUTBOX_MAX: usize = 1_000_000;

/// What one seed did.
#[derive(Clone, Debug)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The plan, in one line.
    pub summary: String,
    /// Simulated time of the whole run, ms.
    pub simulated_ms: u64,
    /// The simulator's trace hash: two runs of a seed give the same.
    pub trace_hash: u64,
    /// Simulated time from the end of the faults to convergence, ms.
    pub converged_after_ms: u64,
    /// How often each fault kind fired.
    pub counts: FaultCounts,
    /// Client operations acknowledged, in the order of [`super::plan::ClientOp::ALL`].
    pub acked_ops: [u64; 7],
    /// Strong operations checked for linearizability.
    pub strong_ops: usize,
    /// Whether the linearizability search ran out of budget (then it proved nothing).
    pub linearizability_unknown: bool,
    /// Acknowledged writes put at risk by a detected storage corruption.
    pub at_risk: u64,
    /// Of those, the ones lost.
    pub lost_to_corruption: u64,
}

/// A violated invariant: the seed, what, when, and what led to it.
#[derive(Clone, Debug)]
pub struct SwarmFailure {
    /// The seed.
    pub seed: u64,
    /// The plan, in one line.
    pub summary: String,
    /// Simulated time of the violation, ms.
    pub at_ms: u64,
    /// The invariant and how it broke.
    pub message: String,
    /// The last notable events before it.
    pub trace: Vec<String>,
}

impl fmt::Display for SwarmFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "swarm seed {} violated an invariant at t={} ms: {}", self.seed, self.at_ms, self.message)?;
        writeln!(f, "plan: {}", self.summary)?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "replay: cargo run --release -- sim swarm --seed {}", self.seed)
    }
}

impl std::error::Error for SwarmFailure {}

/// Runs one seed.
pub fn run_seed(seed: u64) -> Result<SeedReport, SwarmFailure> {
    let plan = Plan::draw(seed);
    let summary = plan.summary();
    let mut world = World::new(plan).map_err(|message| SwarmFailure {
        seed,
        summary: summary.clone(),
        at_ms: 0,
        message,
        trace: Vec::new(),
    })?;
    match drive(&mut world) {
        Ok(report) => Ok(report),
        Err(message) => {
            Err(SwarmFailure { seed, summary, at_ms: world.sim.now_ms(), message, trace: world.trace() })
        }
    }
}

fn drive(world: &mut World) -> Result<SeedReport, String> {
    safety(world)?;
    let converged_after_ms = liveness(world)?;
    final_checks(world)?;
    let linearizability_unknown = check_linearizable(world)?;
    Ok(SeedReport {
        seed: world.plan.seed,
        summary: world.plan.summary(),
        simulated_ms: world.sim.now_ms(),
        trace_hash: world.sim.trace_hash(),
        converged_after_ms,
        counts: world.fault_counts(),
        acked_ops: world.ledger.acked_ops,
        strong_ops: world.ledger.history.len(),
        linearizability_unknown,
        at_risk: world.ledger.at_risk_writes,
        lost_to_corruption: world.ledger.lost_to_corruption,
    })
}

/// Faults on, clients busy, invariants checked as the run goes.
fn safety(world: &mut World) -> Result<(), String> {
    world.faults_start();
    let ops_per_step = world.plan.workload.ops_per_sec as f64 * STEP_MS as f64 / 1_000.0;
    while world.sim.now_ms() < world.plan.safety_ms {
        let next = world.sim.now_ms() + STEP_MS;
        world.run_to(next)?;
        world.acknowledge_due()?;
        world.restart_due()?;
        world.inject_faults(STEP_MS);
        let mut ops = ops_per_step.floor() as u64;
        if world.chance(ops_per_step.fract()) {
            ops += 1;
        }
        for _ in 0..ops {
            let op = world.pick_op();
            world.client_op(op)?;
        }
        if next % CHECK_EVERY_MS == 0 {
            check_running(world)?;
        }
    }
    Ok(())
}

/// Faults off, every node back, no new operations: the honest nodes must converge.
fn liveness(world: &mut World) -> Result<u64, String> {
    world.faults_stop();
    world.restart_all_now();
    let start = world.sim.now_ms();
    loop {
        let next = world.sim.now_ms() + CONVERGE_CHECK_MS;
        world.run_to(next)?;
        world.acknowledge_due()?;
        world.restart_due()?;
        check_running(world)?;
        match world.divergence() {
            None => return Ok(world.sim.now_ms() - start),
            Some(why) if world.sim.now_ms() - start > world.plan.liveness_ms => {
                return Err(format!(
                    "no convergence {} ms after the last fault: {why}",
                    world.sim.now_ms() - start
                ))
            }
            Some(_) => {}
        }
    }
}

/// Resource bounds and clocks of every running node.
fn check_running(world: &mut World) -> Result<(), String> {
    let config_bounds = world.bounds();
    for index in 0..world.plan.nodes {
        let local = world.sim.local_now_ms(index);
        let Some(node) = world.sim.process_mut(index) else { continue };
        let usage = node.core().resource_usage();
        let (queue_max, responders_max, pending_max, events_max) = config_bounds;
        if usage.peers > world.members.len()
            || usage.largest_queue_bytes > queue_max
            || usage.largest_responders > responders_max
            || usage.pending_push > pending_max
            || usage.events > events_max
            || node.outbox_len() > OUTBOX_MAX
            || node.swim().member_count() > MAX_MEMBERS
        {
            return Err(format!("node {index} exceeds a resource bound: {usage:?}, outbox {}", node.outbox_len()));
        }
        let network_now = node.time().now_ms(local);
        world.check_network_time(index, network_now)?;
    }
    Ok(())
}

/// Against the ledger, once converged.
fn final_checks(world: &mut World) -> Result<(), String> {
    let mut lost = 0;
    for index in world.honest_nodes() {
        let node = world.sim.process(index).ok_or("an honest node is down after convergence")?;
        lost = lost.max(world.ledger.check_final(index, |category, key| node.stored(category, key))?);
        if world.plan.counters {
            world.ledger.check_counters(index, |key| node.core().counter_get(COUNTERS, key).unwrap_or(0))?;
        }
        let unresolved = node.core().stats().conflicts_unresolved;
        if unresolved > 0 {
            return Err(format!("node {index} fell back to last-writer-wins on {unresolved} conflicts its CRDT rule failed"));
        }
        if let Some(chain) = node.chain() {
            chain.verify_all().map_err(|why| format!("node {index} holds an invalid chain: {why}"))?;
            world.ledger.check_blocks(index, |id| chain.contains(id))?;
        }
    }
    world.ledger.lost_to_corruption += lost;
    Ok(())
}

/// The strong categories' history must be linearizable; `Ok(true)` when the search
/// ran out of budget.
fn check_linearizable(world: &World) -> Result<bool, String> {
    match check_registers(&world.ledger.history, CHECKER_BUDGET) {
        CheckResult::Linearizable => Ok(false),
        CheckResult::Unknown { .. } => Ok(true),
        CheckResult::Violation { key } => {
            let ops: Vec<String> =
                world.ledger.history.iter().filter(|op| op.key == key).take(40).map(|op| format!("{op:?}")).collect();
            Err(format!("strong key k{key} is not linearizable; its operations:\n    {}", ops.join("\n    ")))
        }
    }
}
