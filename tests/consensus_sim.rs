//! Strong categories in the simulator (issue 8, ADR 070): five voters, clients
//! writing and reading registers, random partitions, crashes and restarts, message
//! loss, over many seeds. Every history must be linearizable, no acknowledged write
//! may be lost, the members must agree, and a leader must exist within 10 election
//! timeouts of the final heal. Reproduce a failure with its seed:
//! `cargo test --test consensus_sim -- --nocapture` prints each seed's figures.

use bhsync::consensus::sim::{Cluster, SimConfig};
use bhsync::consensus::{check_registers, CheckResult};

fn run_seed(config: SimConfig) {
    let seed = config.seed;
    let election = config.election_timeout_ms();
    let report = Cluster::new(config).run();
    let writes = report.history.iter().filter(|op| matches!(op.kind, bhsync::consensus::OpKind::Write(_))).count();
    println!(
        "seed {seed}: {} ops ({writes} writes, {} acknowledged), refused {} not-leader / {} read-only, \
         {} quorum-lost events, {} partitions, {} crashes, {} snapshots restored, leader {:?} ms after heal",
        report.history.len(),
        report.acknowledged.len(),
        report.refused_not_leader,
        report.refused_read_only,
        report.quorum_lost_events,
        report.partitions,
        report.crashes,
        report.snapshots_restored,
        report.leader_after_heal_ms,
    );
    assert!(report.violations.is_empty(), "seed {seed}: {:?}", report.violations);
    assert_eq!(check_registers(&report.history, 2_000_000), CheckResult::Linearizable, "seed {seed}");
    let leader = report.leader_after_heal_ms.unwrap_or(u64::MAX);
    assert!(leader <= 10 * election, "seed {seed}: leader {leader} ms after the heal");
    assert!(!report.acknowledged.is_empty(), "seed {seed}: no write was acknowledged");
}

#[test]
fn five_voters_under_partitions_crashes_and_loss_stay_linearizable() {
    for seed in 1..=12 {
        run_seed(SimConfig::new(seed));
    }
}

#[test]
fn without_faults_every_request_succeeds_at_the_leader() {
    let mut config = SimConfig::new(100);
    config.partitions = false;
    config.crashes = false;
    config.loss = 0.0;
    let report = Cluster::new(config).run();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(check_registers(&report.history, 2_000_000), CheckResult::Linearizable);
    assert!(report.acknowledged.len() > 100, "only {} writes", report.acknowledged.len());
}

/// More seeds: `CONSENSUS_SEEDS=500 cargo test --release --test consensus_sim -- --ignored --nocapture`.
#[test]
#[ignore = "hundreds of seeds: behind a flag, CONSENSUS_SEEDS=N with --ignored"]
fn many_seeds() {
    let seeds: u64 = std::env::var("CONSENSUS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    for seed in 1..=seeds {
        let mut config = SimConfig::new(seed);
        config.duration_ms = 8_000;
        config.group.stage_persistence = seed % 2 == 0;
        run_seed(config);
    }
}

#[test]
fn the_checker_catches_stale_reads_served_by_any_member() {
    // Reads from any member's local state are not linearizable under partitions:
    // some seed among a few must show it, or the checker has no teeth.
    let found = (1..=8).any(|seed| {
        let mut config = SimConfig::new(seed);
        config.stale_reads = true;
        config.crashes = false;
        let report = Cluster::new(config).run();
        matches!(check_registers(&report.history, 2_000_000), CheckResult::Violation { .. })
    });
    assert!(found, "stale reads passed the checker on seeds 1..=8");
}

#[test]
fn a_seed_replays_exactly() {
    let a = Cluster::new(SimConfig::new(5)).run();
    let b = Cluster::new(SimConfig::new(5)).run();
    assert_eq!(a.history, b.history, "seed 5 gave two different histories");
    assert_eq!(a.acknowledged, b.acknowledged);
}

/// Replays one seed: `CONSENSUS_SEED=S cargo test --test consensus_sim -- --ignored one_seed --nocapture`.
#[test]
#[ignore = "replays the seed a failure printed: CONSENSUS_SEED=S with --ignored"]
fn one_seed() {
    let seed: u64 = std::env::var("CONSENSUS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut config = SimConfig::new(seed);
    config.duration_ms = 8_000;
    run_seed(config);
}

#[test]
fn with_staged_persistence_as_the_engine_runs_it() {
    // The engine sends a leader's appends before its journal write (ADR 070).
    for seed in 13..=20 {
        let mut config = SimConfig::new(seed);
        config.group.stage_persistence = true;
        run_seed(config);
    }
}
