//! What one seed runs: the cluster, the categories, the workload and the faults, all
//! drawn from the seed. Each fault kind is switched on or off per seed ("swarm
//! testing", Groce et al., ISSTA 2012): a run with fewer kinds of faults goes deeper
//! into the ones it has, and the swarm as a whole still covers every kind.

use crate::sansio::SeededRng;

/// Rates and bounds of the faults one seed injects. Rates are per second of
/// simulated time; zero means the kind is off for this seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultMix {
    /// Probability that a frame is lost (≤ 0.3).
    pub loss: f64,
    /// Probability that a frame arrives twice (≤ 0.5).
    pub duplication: f64,
    /// Probability that a frame is replayed seconds later (≤ 0.5).
    pub replay: f64,
    /// Extra latency jitter, ms (reordering: frames overtake each other).
    pub reorder_jitter_ms: u64,
    /// Partitions per second (symmetric split, one-way cut, or one node isolated).
    pub partition_rate: f64,
    /// Clogged links per second (a link's latency rises to seconds for a while).
    pub clog_rate: f64,
    /// Crashes per second (the node restarts from its simulated disk later).
    pub crash_rate: f64,
    /// Clock jumps per second (a node's clock steps by up to ±5 s).
    pub clock_jump_rate: f64,
    /// Largest initial clock offset, ms.
    pub clock_skew_ms: i64,
    /// Largest clock drift, ppm.
    pub clock_drift_ppm: i64,
    /// Probability that a crash tears the unsynced tail of a file.
    pub torn_write: f64,
    /// Per-operation probability of a disk write error.
    pub disk_write_error: f64,
    /// Per-operation probability of a disk read error.
    pub disk_read_error: f64,
    /// Per-append probability of a misdirected write (the data log and the chain log;
    /// never a Raft journal: ADR 080).
    pub misdirected_write: f64,
    /// Bytes the data disk holds before it is full (`None`: no full disk).
    pub disk_capacity: Option<u64>,
    /// Largest disk latency, ms.
    pub disk_latency_ms: u64,
}

/// A client operation. Its position in [`ClientOp::ALL`] indexes the workload's
/// weights and the counts of acknowledged operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// A put in the eventual `kv` category.
    Put,
    /// A delete in `kv`.
    Delete,
    /// A counter increment in the CRDT category.
    CounterAdd,
    /// A write to the strong category.
    StrongWrite,
    /// A linearizable read of the strong category.
    StrongRead,
    /// A chain block.
    ChainBlock,
    /// A local read of `kv` (read your writes).
    Read,
}

impl ClientOp {
    /// Every operation, in weight order.
    pub const ALL: [ClientOp; 7] = [
        ClientOp::Put,
        ClientOp::Delete,
        ClientOp::CounterAdd,
        ClientOp::StrongWrite,
        ClientOp::StrongRead,
        ClientOp::ChainBlock,
        ClientOp::Read,
    ];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        ["put", "delete", "counter add", "strong write", "strong read", "chain block", "read"][self as usize]
    }
}

/// Relative weights of the client operations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    /// Client operations per second over the cluster.
    pub ops_per_sec: u64,
    /// Keys per category (small: conflicts are the point).
    pub keys: u64,
    /// Weights, in the order of [`ClientOp::ALL`].
    pub weights: [u32; 7],
}

/// One seed's run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The seed everything below was drawn from.
    pub seed: u64,
    /// Nodes in the cluster (1 to 9).
    pub nodes: u32,
    /// Whether an eventual CRDT counter category runs beside the eventual LWW one.
    pub counters: bool,
    /// Whether a strong category runs (every node a voter).
    pub strong: bool,
    /// Whether the chain runs.
    pub chain: bool,
    /// Nodes that lie (at most one, and only in clusters of four or more, so that the
    /// honest nodes still hold a Raft majority once they disconnect it).
    pub byzantine: Vec<u32>,
    /// The client operations.
    pub workload: Workload,
    /// The faults.
    pub faults: FaultMix,
    /// Length of the safety phase (faults on), ms.
    pub safety_ms: u64,
    /// Longest liveness phase (faults off) before convergence is a violation, ms.
    pub liveness_ms: u64,
}

impl Plan {
    /// Draws the plan of `seed`.
    pub fn draw(seed: u64) -> Plan {
        let mut rng = SeededRng::new(seed ^ 0x051A_4D0F_5EED);
        let nodes = 1 + rng.below(9) as u32;
        let counters = rng.chance(0.5);
        let strong = rng.chance(0.5);
        let chain = rng.chance(0.5);
        let byzantine = if nodes >= 4 && rng.chance(0.25) { vec![rng.below(nodes as u64) as u32] } else { Vec::new() };
        let workload = draw_workload(&mut rng, counters, strong, chain);
        let faults = draw_faults(&mut rng, nodes);
        let safety_ms = 4_000 + rng.below(8_001);
        Plan { seed, nodes, counters, strong, chain, byzantine, workload, faults, safety_ms, liveness_ms: 60_000 }
    }

    /// Whether node `index` is honest.
    pub fn honest(&self, index: u32) -> bool {
        !self.byzantine.contains(&index)
    }

    /// A one-line summary for reports and traces.
    pub fn summary(&self) -> String {
        let f = &self.faults;
        format!(
            "seed {} nodes {} counters {} strong {} chain {} byzantine {:?} ops/s {} keys {} safety {} ms | loss {:.2} dup {:.2} replay {:.2} partitions/s {:.2} clogs/s {:.2} crashes/s {:.2} jumps/s {:.2} skew {} ms drift {} ppm torn {:.2} disk w/r/mis {:.3}/{:.3}/{:.3} capacity {:?}",
            self.seed, self.nodes, self.counters, self.strong, self.chain, self.byzantine, self.workload.ops_per_sec,
            self.workload.keys, self.safety_ms, f.loss, f.duplication, f.replay, f.partition_rate, f.clog_rate,
            f.crash_rate, f.clock_jump_rate, f.clock_skew_ms, f.clock_drift_ppm, f.torn_write, f.disk_write_error,
            f.disk_read_error, f.misdirected_write, f.disk_capacity
        )
    }
}

fn draw_workload(rng: &mut SeededRng, counters: bool, strong: bool, chain: bool) -> Workload {
    let mut weight = |on: bool, most: u64| if on { 1 + rng.below(most) as u32 } else { 0 };
    let weights = [
        weight(true, 10),
        weight(true, 3),
        weight(counters, 6),
        weight(strong, 6),
        weight(strong, 4),
        weight(chain, 3),
        weight(true, 4),
    ];
    Workload { ops_per_sec: 20 + rng.below(181), keys: 4 + rng.below(60), weights }
}

/// A value in `0..=most` with probability `on`, else zero.
fn maybe(rng: &mut SeededRng, on: f64, most: f64) -> f64 {
    if rng.chance(on) {
        rng.unit() * most
    } else {
        0.0
    }
}

fn draw_faults(rng: &mut SeededRng, nodes: u32) -> FaultMix {
    let several = nodes > 1;
    FaultMix {
        loss: maybe(rng, 0.5, 0.3),
        duplication: maybe(rng, 0.5, 0.5),
        replay: maybe(rng, 0.5, 0.5),
        reorder_jitter_ms: if rng.chance(0.5) { rng.below(200) } else { 0 },
        partition_rate: if several { maybe(rng, 0.5, 0.5) } else { 0.0 },
        clog_rate: if several { maybe(rng, 0.5, 0.5) } else { 0.0 },
        crash_rate: maybe(rng, 0.6, 0.5),
        clock_jump_rate: maybe(rng, 0.5, 0.4),
        clock_skew_ms: if rng.chance(0.6) { rng.below(5_001) as i64 } else { 0 },
        clock_drift_ppm: if rng.chance(0.6) { rng.below(500) as i64 } else { 0 },
        torn_write: maybe(rng, 0.6, 1.0),
        disk_write_error: maybe(rng, 0.4, 0.02),
        disk_read_error: maybe(rng, 0.4, 0.05),
        misdirected_write: maybe(rng, 0.3, 0.01),
        disk_capacity: if rng.chance(0.2) { Some(16 * 1024 + rng.below(128 * 1024)) } else { None },
        disk_latency_ms: if rng.chance(0.5) { rng.below(20) } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_plan_and_the_swarm_covers_every_shape() {
        assert_eq!(Plan::draw(7), Plan::draw(7));
        let plans: Vec<Plan> = (0..400).map(Plan::draw).collect();
        assert!(plans.iter().any(|p| p.nodes == 1) && plans.iter().any(|p| p.nodes == 9));
        assert!(plans.iter().any(|p| !p.byzantine.is_empty()));
        assert!(plans.iter().all(|p| p.byzantine.is_empty() || p.nodes >= 4));
        assert!(plans.iter().all(|p| p.faults.loss <= 0.3 && p.faults.duplication <= 0.5 && p.faults.replay <= 0.5));
        assert!(plans.iter().any(|p| p.strong && p.chain && p.counters));
    }
}
