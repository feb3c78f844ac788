//! SWIM with Lifeguard in the deterministic simulator, with fixed seeds. A failure
//! prints its seed and the command that replays it.

use bhsync::sim::membership_scenarios as scenario;
use bhsync::sim::SimFailure;

fn ok<T>(result: Result<T, SimFailure>) -> T {
    result.unwrap_or_else(|failure| panic!("{failure}"))
}

#[test]
fn same_seed_gives_the_same_trace_twice() {
    let first = ok(scenario::crash_detection(5, 40, 0.01, 30_000));
    let second = ok(scenario::crash_detection(5, 40, 0.01, 30_000));
    let other = ok(scenario::crash_detection(6, 40, 0.01, 30_000));
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first, second);
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn crashed_node_is_declared_dead_by_every_live_node_within_bounded_time() {
    for seed in [1, 2] {
        let report = ok(scenario::crash_detection(seed, 100, 0.01, 20_000));
        let detection_ms = report.convergence_ms.unwrap_or(u64::MAX);
        println!("seed {seed}: crash known to all in {detection_ms} ms");
        assert!(detection_ms <= 10_000, "seed {seed}: {detection_ms} ms");
    }
}

#[test]
fn healthy_nodes_are_never_declared_dead_at_five_percent_loss() {
    let report = ok(scenario::lossy_run(3, 40, 0.05, 20 * 60_000));
    println!("{report:?}");
    assert_eq!(report.false_deaths, 0);
}

#[test]
fn two_way_split_longer_than_the_suspicion_timeout_re_merges_after_heal() {
    let report = ok(scenario::split_and_heal(4, 60, 60_000, 30_000));
    println!("re-merged {} ms after the heal", report.convergence_ms.unwrap_or(0));
}

#[test]
fn forged_stale_death_notices_never_evict_a_live_node() {
    let report = ok(scenario::forged_deaths(7, 30));
    assert!(report.stale_notices_ignored > 0);
}

#[test]
fn after_a_mass_restart_no_node_stays_dead_to_another() {
    let report = ok(scenario::mass_restart(8, 45, 40_000, 30_000));
    println!("all alive again {} ms after the restart", report.convergence_ms.unwrap_or(0));
}
